/*
 * io.c: the generic I/O path. Validates a request, wraps it in a pooled
 * struct bdev_io, hands it to the bdev's ops->submit and delivers the
 * completion: a completion that arrives while any submit is running (the
 * malloc and fault devices complete inside submit) is queued and delivered
 * from the loop by one deferred call per batch, so a caller's callback never
 * runs inside bdev_read()/bdev_write()/...; one that arrives from the loop
 * itself (io_uring completions) is delivered at once. Updates I/O stats.
 */
#include "bdev/bdev_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BDEV_IO_SLAB 256

static struct {
	uint64_t gen;
	struct bdev_io *free;
	void **slabs;
	size_t nslabs;
	struct bdev_io *cq_head, *cq_tail; /* completions waiting for the loop */
	bool cq_scheduled;
	unsigned submit_depth;
	int efd; /* wakes the loop when a deferred call cannot be allocated */
	struct ev_loop *loop;
} io = { .efd = -1 };

uint64_t bdev_tick_rate(void)
{
	return BDEV_TICK_RATE;
}

uint64_t bdev_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- pool */

static struct bdev_io *io_get(void)
{
	struct bdev_io *b = io.free;

	if (!b) {
		void **slabs = mem_realloc(io.slabs, (io.nslabs + 1) * sizeof(*slabs));
		if (!slabs)
			return NULL;
		io.slabs = slabs;
		struct bdev_io *slab = mem_alloc(BDEV_IO_SLAB * sizeof(*slab));
		if (!slab)
			return NULL;
		io.slabs[io.nslabs++] = slab;
		for (size_t i = 0; i < BDEV_IO_SLAB; i++) {
			slab[i].next = io.free;
			io.free = &slab[i];
		}
		b = io.free;
	}
	io.free = b->next;
	return b;
}

static void io_put(struct bdev_io *b)
{
	b->next = io.free;
	io.free = b;
}

/* ------------------------------------------------------- completion */

static void stat_account(struct bdev *bdev, enum bdev_io_type type, uint64_t len, uint64_t lat)
{
	struct bdev_io_stat *s = &bdev->stat;

	switch (type) {
	case BDEV_IO_READ:
		if (s->num_read_ops == 0 || lat < s->min_read_latency_ticks)
			s->min_read_latency_ticks = lat;
		if (lat > s->max_read_latency_ticks)
			s->max_read_latency_ticks = lat;
		s->bytes_read += len;
		s->num_read_ops++;
		s->read_latency_ticks += lat;
		break;
	case BDEV_IO_WRITE:
		if (s->num_write_ops == 0 || lat < s->min_write_latency_ticks)
			s->min_write_latency_ticks = lat;
		if (lat > s->max_write_latency_ticks)
			s->max_write_latency_ticks = lat;
		s->bytes_written += len;
		s->num_write_ops++;
		s->write_latency_ticks += lat;
		break;
	case BDEV_IO_UNMAP:
		if (s->num_unmap_ops == 0 || lat < s->min_unmap_latency_ticks)
			s->min_unmap_latency_ticks = lat;
		if (lat > s->max_unmap_latency_ticks)
			s->max_unmap_latency_ticks = lat;
		s->bytes_unmapped += len;
		s->num_unmap_ops++;
		s->unmap_latency_ticks += lat;
		break;
	default:
		break;
	}
}

static void io_finish(struct bdev_io *b)
{
	struct bdev *bdev = b->bdev;
	bdev_io_cb cb = b->cb;
	void *cb_arg = b->cb_arg;
	int status = b->status;

	if (status == 0 && b->type != BDEV_IO_FLUSH && b->type != BDEV_IO_WRITE_ZEROES)
		stat_account(bdev, b->type, b->len, bdev_ticks() - b->start_tick);
	else if (status != 0)
		bdev->stat.num_io_errors++;
	bdev->io_outstanding--;
	io_put(b);
	cb(cb_arg, status);
}

static void cq_drain(void)
{
	struct bdev_io *b = io.cq_head;

	io.cq_head = io.cq_tail = NULL;
	io.cq_scheduled = false;
	while (b) {
		struct bdev_io *next = b->next;
		io_finish(b);
		b = next;
	}
}

static void cq_defer_cb(struct ev_loop *loop, void *arg)
{
	if ((uint64_t)(uintptr_t)arg != io.gen)
		return; /* the module was torn down since */
	cq_drain();
}

static void cq_efd_cb(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing to read; the queue is drained anyway */
	}
	cq_drain();
	bdev_registry_kicked();
}

void bdev_loop_kick(void)
{
	uint64_t one = 1;

	if (write(io.efd, &one, sizeof(one)) < 0)
		LOG_ERROR("bdev", "cannot wake the loop errno=%d", errno);
}

static void cq_push(struct bdev_io *b)
{
	b->next = NULL;
	if (io.cq_tail)
		io.cq_tail->next = b;
	else
		io.cq_head = b;
	io.cq_tail = b;
	if (io.cq_scheduled)
		return;
	io.cq_scheduled = true;
	if (ev_defer(io.loop, cq_defer_cb, (void *)(uintptr_t)io.gen) != 0)
		bdev_loop_kick();
}

/* The callback every ops->submit gets. */
static void io_done(void *arg, int status)
{
	struct bdev_io *b = arg;

	b->status = status;
	if (io.submit_depth > 0)
		cq_push(b);
	else
		io_finish(b);
}

int bdev_io_module_init(void)
{
	int err;

	io.gen++;
	io.loop = bdev_module_loop();
	io.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io.efd < 0)
		return -errno;
	err = ev_fd_add(io.loop, io.efd, EPOLLIN, cq_efd_cb, NULL);
	if (err) {
		close(io.efd);
		io.efd = -1;
		return err;
	}
	return 0;
}

void bdev_io_module_fini(void)
{
	if (io.efd >= 0) {
		ev_fd_remove(io.loop, io.efd);
		close(io.efd);
		io.efd = -1;
	}
	for (size_t i = 0; i < io.nslabs; i++)
		mem_free(io.slabs[i]);
	mem_free(io.slabs);
	io.slabs = NULL;
	io.nslabs = 0;
	io.free = NULL;
	io.cq_head = io.cq_tail = NULL;
	io.cq_scheduled = false;
	io.submit_depth = 0;
	io.gen++;
}

/* ----------------------------------------------------------- submit */

static int io_check_range(const struct bdev *bdev, uint64_t offset, uint64_t len)
{
	uint64_t bs = bdev->block_size;
	uint64_t size = bdev->num_blocks * bs;

	if (len == 0 || offset % bs || len % bs)
		return -EINVAL;
	if (offset > size || len > size - offset)
		return -EINVAL;
	return 0;
}

static int io_submit(struct bdev *bdev, enum bdev_io_type type, void *buf, uint64_t offset,
		     uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	struct bdev_io *b;
	int err;

	if (!bdev || !cb)
		return -EINVAL;
	if (type != BDEV_IO_FLUSH) {
		err = io_check_range(bdev, offset, len);
		if (err)
			return err;
	}
	b = io_get();
	if (!b)
		return -ENOMEM;
	b->bdev = bdev;
	b->type = type;
	b->status = 0;
	b->len = len;
	b->cb = cb;
	b->cb_arg = cb_arg;
	b->start_tick = bdev_ticks();
	bdev->io_outstanding++;
	io.submit_depth++;
	err = bdev->ops->submit(bdev->ctx, type, buf, offset, len, io_done, b);
	io.submit_depth--;
	if (err) {
		bdev->io_outstanding--;
		io_put(b);
	}
	return err;
}

int bdev_read(struct bdev *bdev, void *buf, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	if (!buf)
		return -EINVAL;
	return io_submit(bdev, BDEV_IO_READ, buf, offset, len, cb, cb_arg);
}

int bdev_write(struct bdev *bdev, const void *buf, uint64_t offset, uint64_t len, bdev_io_cb cb,
	       void *cb_arg)
{
	if (!buf)
		return -EINVAL;
	return io_submit(bdev, BDEV_IO_WRITE, (void *)buf, offset, len, cb, cb_arg);
}

int bdev_write_zeroes(struct bdev *bdev, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	return io_submit(bdev, BDEV_IO_WRITE_ZEROES, NULL, offset, len, cb, cb_arg);
}

int bdev_unmap(struct bdev *bdev, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	return io_submit(bdev, BDEV_IO_UNMAP, NULL, offset, len, cb, cb_arg);
}

int bdev_flush(struct bdev *bdev, bdev_io_cb cb, void *cb_arg)
{
	return io_submit(bdev, BDEV_IO_FLUSH, NULL, 0, 0, cb, cb_arg);
}

int bdev_read_direct(struct bdev *bdev, uint64_t offset, uint64_t len, const void **ptr,
		     struct bdev_mem **ref)
{
	uint64_t start;
	int err;

	if (!bdev || !ptr || !ref)
		return -EINVAL;
	if (!bdev->ops->read_direct)
		return -ENOTSUP;
	err = io_check_range(bdev, offset, len);
	if (err)
		return err;
	start = bdev_ticks();
	err = bdev->ops->read_direct(bdev->ctx, offset, len, ptr, ref);
	if (err)
		return err;
	stat_account(bdev, BDEV_IO_READ, len, bdev_ticks() - start);
	return 0;
}
