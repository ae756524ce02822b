/*
 * aio.c: the file / block device bdev (SPDK's "AIO disk"), I/O through one
 * io_uring shared by every aio bdev. The ring's completions signal an
 * eventfd that sits in the event loop, so the loop never blocks on I/O.
 *
 * Requests are prepared into SQEs at once and submitted in one
 * io_uring_submit() per loop round (a deferred call). A request that finds
 * no free SQE, or would overrun the completion queue, waits in a FIFO and is
 * issued when completions free room. -EAGAIN/-EINTR results are reissued,
 * short reads/writes continue where they stopped. Write zeroes uses
 * fallocate(ZERO_RANGE) and unmap fallocate(PUNCH_HOLE); if the file system
 * or device refuses them, both fall back to writes of a shared zero buffer.
 * Flush is fdatasync. Files are opened without O_DIRECT, so buffers need
 * no alignment; durability comes from the flush.
 */
#include "bdev/bdev_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define AIO_RING_ENTRIES 256
#define AIO_ZERO_BUF (1u << 20)
#define AIO_MAX_CHUNK (1u << 30)
#define AIO_REQ_SLAB 128
#define AIO_CQE_BATCH 64

struct aio_disk {
	int fd;
	char *filename;
	bool readonly;
	uint32_t block_size_override;
	uint32_t block_size;
	bool zero_range_refused; /* fallocate(ZERO_RANGE) refused once: zero with writes */
	bool punch_refused;      /* fallocate(PUNCH_HOLE) refused once: zero with writes */
	bool dead;          /* unregistered with requests still in the ring */
	unsigned inflight;  /* requests taken and not completed */
	struct aio_disk *zombie_next;
};

struct aio_req {
	struct aio_disk *disk;
	enum bdev_io_type type;
	bool zero_by_write; /* this WRITE_ZEROES/UNMAP runs as zero writes */
	uint8_t *buf;
	uint64_t off, len, done;
	bdev_io_cb cb;
	void *cb_arg;
	struct aio_req *next;
};

static struct {
	bool ready;
	struct io_uring ring;
	int efd;
	struct ev_loop *loop;
	unsigned inflight;   /* SQEs prepared and not completed */
	unsigned cq_limit;
	unsigned unsubmitted;
	bool submit_scheduled;
	uint64_t gen;
	struct aio_req *pend_head, *pend_tail; /* waiting for an SQE */
	struct aio_req *free;
	void **slabs;
	size_t nslabs;
	uint8_t *zero_buf;
	struct aio_disk *zombies;
} ar = { .efd = -1 };

/* Test hook (bdev_aio_test_mangle); survives module fini. */
static struct {
	unsigned eagain_every, short_every, n_eagain, n_short;
} mangle;

void bdev_aio_test_mangle(unsigned eagain_every, unsigned short_every)
{
	mangle.eagain_every = eagain_every;
	mangle.short_every = short_every;
	mangle.n_eagain = mangle.n_short = 0;
}

static void aio_reap(void);

/* ---------------------------------------------------------- requests */

static struct aio_req *req_get(void)
{
	struct aio_req *r = ar.free;

	if (!r) {
		void **slabs = mem_realloc(ar.slabs, (ar.nslabs + 1) * sizeof(*slabs));
		if (!slabs)
			return NULL;
		ar.slabs = slabs;
		struct aio_req *slab = mem_alloc(AIO_REQ_SLAB * sizeof(*slab));
		if (!slab)
			return NULL;
		ar.slabs[ar.nslabs++] = slab;
		for (size_t i = 0; i < AIO_REQ_SLAB; i++) {
			slab[i].next = ar.free;
			ar.free = &slab[i];
		}
		r = ar.free;
	}
	ar.free = r->next;
	memset(r, 0, sizeof(*r));
	return r;
}

static void req_put(struct aio_req *r)
{
	r->next = ar.free;
	ar.free = r;
}

static void disk_free(struct aio_disk *d)
{
	if (d->fd >= 0)
		close(d->fd);
	mem_free(d->filename);
	mem_free(d);
}

static void zombie_release(struct aio_disk *d)
{
	for (struct aio_disk **pp = &ar.zombies; *pp; pp = &(*pp)->zombie_next) {
		if (*pp == d) {
			*pp = d->zombie_next;
			disk_free(d);
			return;
		}
	}
}

static void req_complete(struct aio_req *r, int status)
{
	struct aio_disk *d = r->disk;
	bdev_io_cb cb = r->cb;
	void *cb_arg = r->cb_arg;

	d->inflight--;
	req_put(r);
	if (d->dead) {
		if (d->inflight == 0)
			zombie_release(d);
		return;
	}
	cb(cb_arg, status);
}

/* -------------------------------------------------------------- ring */

static void aio_submit_now(void)
{
	if (ar.unsubmitted == 0)
		return;
	int rc = io_uring_submit(&ar.ring);
	if (rc >= 0) {
		ar.unsubmitted -= COMMON_MIN((unsigned)rc, ar.unsubmitted);
		if (rc == 0)
			ar.unsubmitted = 0;
	} else if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
		LOG_ERROR("bdev", "io_uring_submit failed err=%d", rc);
	}
}

static void aio_submit_defer_cb(struct ev_loop *loop, void *arg)
{
	if (!ar.ready || (uint64_t)(uintptr_t)arg != ar.gen)
		return;
	ar.submit_scheduled = false;
	aio_submit_now();
	/* Page-cache hits complete inside io_uring_enter: reap them now
	 * instead of waiting for the eventfd round trip. */
	if (io_uring_cq_ready(&ar.ring))
		aio_reap();
}

/* Prepares the SQE of the request's next step; false if the ring is full. */
static bool req_issue(struct aio_req *r)
{
	struct io_uring_sqe *sqe;
	uint64_t left = r->len - r->done;
	unsigned n = (unsigned)COMMON_MIN(left, (uint64_t)AIO_MAX_CHUNK);
	int fd = r->disk->fd;

	if (ar.inflight >= ar.cq_limit)
		return false;
	sqe = io_uring_get_sqe(&ar.ring);
	if (!sqe) {
		aio_submit_now();
		sqe = io_uring_get_sqe(&ar.ring);
		if (!sqe)
			return false;
	}
	/* test hook: issue only half, the kernel really transfers less */
	if (mangle.short_every && n > 1 && ++mangle.n_short % mangle.short_every == 0)
		n /= 2;
	switch (r->type) {
	case BDEV_IO_READ:
		io_uring_prep_read(sqe, fd, r->buf + r->done, n, r->off + r->done);
		break;
	case BDEV_IO_WRITE:
		io_uring_prep_write(sqe, fd, r->buf + r->done, n, r->off + r->done);
		break;
	case BDEV_IO_WRITE_ZEROES:
	case BDEV_IO_UNMAP:
		if (r->zero_by_write) {
			n = (unsigned)COMMON_MIN(left, (uint64_t)AIO_ZERO_BUF);
			io_uring_prep_write(sqe, fd, ar.zero_buf, n, r->off + r->done);
		} else {
			int mode = FALLOC_FL_KEEP_SIZE | (r->type == BDEV_IO_UNMAP ?
				   FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
			io_uring_prep_fallocate(sqe, fd, mode, r->off, r->len);
		}
		break;
	case BDEV_IO_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
	ar.inflight++;
	ar.unsubmitted++;
	if (!ar.submit_scheduled) {
		if (ev_defer(ar.loop, aio_submit_defer_cb, (void *)(uintptr_t)ar.gen) == 0)
			ar.submit_scheduled = true;
		else
			aio_submit_now();
	}
	return true;
}

static void req_issue_or_queue(struct aio_req *r)
{
	/* FIFO: nothing overtakes a request already waiting for room */
	if (!ar.pend_head && req_issue(r))
		return;
	r->next = NULL;
	if (ar.pend_tail)
		ar.pend_tail->next = r;
	else
		ar.pend_head = r;
	ar.pend_tail = r;
}

static void pending_issue(void)
{
	while (ar.pend_head) {
		struct aio_req *r = ar.pend_head;
		if (!req_issue(r))
			return;
		ar.pend_head = r->next;
		if (!ar.pend_head)
			ar.pend_tail = NULL;
	}
}

/* One CQE: finish the request or issue its next step. */
static void req_result(struct aio_req *r, int res)
{
	bool rw = r->type == BDEV_IO_READ || r->type == BDEV_IO_WRITE || r->zero_by_write;

	if (r->disk->dead) {
		req_complete(r, -ENODEV); /* dropped: nobody waits for it */
		return;
	}
	if (mangle.eagain_every && ++mangle.n_eagain % mangle.eagain_every == 0)
		res = -EAGAIN;
	if (res == -EAGAIN || res == -EINTR) {
		req_issue_or_queue(r);
		return;
	}
	if (res < 0 && (r->type == BDEV_IO_WRITE_ZEROES || r->type == BDEV_IO_UNMAP) &&
	    !r->zero_by_write && (res == -EOPNOTSUPP || res == -EINVAL || res == -ENOTTY)) {
		LOG_INFO("bdev", "fallocate refused, zeroing with writes file=%s err=%d",
			 r->disk->filename, res);
		if (r->type == BDEV_IO_UNMAP)
			r->disk->punch_refused = true;
		else
			r->disk->zero_range_refused = true;
		r->zero_by_write = true;
		r->done = 0;
		req_issue_or_queue(r);
		return;
	}
	if (res < 0) {
		req_complete(r, res);
		return;
	}
	if (!rw) {
		req_complete(r, 0);
		return;
	}
	if (res == 0) {
		/* no progress: past the end of a file that shrank */
		req_complete(r, -EIO);
		return;
	}
	r->done += (uint64_t)res;
	if (r->done < r->len)
		req_issue_or_queue(r);
	else
		req_complete(r, 0);
}

static void aio_reap(void)
{
	struct io_uring_cqe *cqes[AIO_CQE_BATCH];
	struct { struct aio_req *r; int res; } got[AIO_CQE_BATCH];
	unsigned n;

	do {
		n = io_uring_peek_batch_cqe(&ar.ring, cqes, AIO_CQE_BATCH);
		for (unsigned i = 0; i < n; i++) {
			got[i].r = io_uring_cqe_get_data(cqes[i]);
			got[i].res = cqes[i]->res;
		}
		io_uring_cq_advance(&ar.ring, n);
		ar.inflight -= n;
		for (unsigned i = 0; i < n; i++)
			req_result(got[i].r, got[i].res);
		pending_issue();
	} while (n == AIO_CQE_BATCH);
}

static void aio_efd_cb(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: a previous round reaped everything already */
	}
	aio_reap();
	aio_submit_now();
}

static int aio_ring_init(void)
{
	int err;

	if (ar.ready)
		return 0;
	ar.loop = bdev_module_loop();
	ar.zero_buf = mem_zalloc(AIO_ZERO_BUF);
	if (!ar.zero_buf)
		return -ENOMEM;
	err = io_uring_queue_init(AIO_RING_ENTRIES, &ar.ring, 0);
	if (err)
		goto fail_buf;
	ar.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ar.efd < 0) {
		err = -errno;
		goto fail_ring;
	}
	err = io_uring_register_eventfd(&ar.ring, ar.efd);
	if (err)
		goto fail_efd;
	err = ev_fd_add(ar.loop, ar.efd, EPOLLIN, aio_efd_cb, NULL);
	if (err)
		goto fail_efd;
	ar.cq_limit = ar.ring.cq.ring_entries;
	ar.gen++;
	ar.ready = true;
	return 0;
fail_efd:
	close(ar.efd);
	ar.efd = -1;
fail_ring:
	io_uring_queue_exit(&ar.ring);
fail_buf:
	mem_free(ar.zero_buf);
	ar.zero_buf = NULL;
	LOG_ERROR("bdev", "io_uring setup failed err=%d", err);
	return err;
}

void bdev_aio_module_fini(void)
{
	if (ar.ready) {
		ev_fd_remove(ar.loop, ar.efd);
		close(ar.efd);
		ar.efd = -1;
		io_uring_queue_exit(&ar.ring);
	}
	while (ar.zombies) {
		struct aio_disk *d = ar.zombies;
		ar.zombies = d->zombie_next;
		disk_free(d);
	}
	for (size_t i = 0; i < ar.nslabs; i++)
		mem_free(ar.slabs[i]);
	mem_free(ar.slabs);
	mem_free(ar.zero_buf);
	uint64_t gen = ar.gen + 1;
	memset(&ar, 0, sizeof(ar));
	ar.efd = -1;
	ar.gen = gen;
}

/* --------------------------------------------------------------- ops */

static int aio_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
		      uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	struct aio_disk *d = ctx;
	struct aio_req *r;

	if (d->readonly && type != BDEV_IO_READ && type != BDEV_IO_FLUSH) {
		cb(cb_arg, -EROFS);
		return 0;
	}
	r = req_get();
	if (!r)
		return -ENOMEM;
	r->disk = d;
	r->type = type;
	r->buf = buf;
	r->off = offset;
	r->len = len;
	r->cb = cb;
	r->cb_arg = cb_arg;
	r->zero_by_write = (type == BDEV_IO_WRITE_ZEROES && d->zero_range_refused) ||
			   (type == BDEV_IO_UNMAP && d->punch_refused);
	d->inflight++;
	req_issue_or_queue(r);
	return 0;
}

static void aio_destroy(void *ctx)
{
	struct aio_disk *d = ctx;

	/* Requests not yet in the ring are dropped; those in it finish later. */
	struct aio_req **pp = &ar.pend_head;
	ar.pend_tail = NULL;
	while (*pp) {
		struct aio_req *r = *pp;
		if (r->disk == d) {
			*pp = r->next;
			d->inflight--;
			req_put(r);
		} else {
			ar.pend_tail = r;
			pp = &r->next;
		}
	}
	if (d->inflight) {
		d->dead = true;
		d->zombie_next = ar.zombies;
		ar.zombies = d;
		return;
	}
	disk_free(d);
}

static const struct bdev_ops aio_ops = {
	.submit = aio_submit,
	.destroy = aio_destroy,
};

static struct aio_disk *aio_of(const struct bdev *bdev)
{
	return bdev && bdev->ops == &aio_ops ? bdev->ctx : NULL;
}

/* --------------------------------------------------------------- API */

/* Size in bytes and logical block size of an open file or block device. */
static int aio_probe(int fd, uint64_t *size, uint32_t *lbs)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		int ssz = 0;
		if (ioctl(fd, BLKGETSIZE64, size) != 0)
			return -errno;
		if (ioctl(fd, BLKSSZGET, &ssz) != 0 || ssz <= 0)
			ssz = 512;
		*lbs = (uint32_t)ssz;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	*lbs = 512;
	return 0;
}

int bdev_aio_create(const char *name, const char *filename, uint32_t block_size,
		    bool readonly, const char *uuid, struct bdev **out)
{
	struct aio_disk *d = NULL;
	struct bdev_params p = {0};
	uint64_t size;
	uint32_t lbs;
	int err;

	if (!name || !*name || !filename || !*filename)
		return -EINVAL;
	if (uuid && common_uuid_parse(uuid, NULL) != 0)
		return -EINVAL;
	if (bdev_name_taken(name) || (uuid && bdev_find(uuid)))
		return -EEXIST;
	if (block_size && (block_size < 512 || block_size > 65536 ||
			   (block_size & (block_size - 1))))
		return -EINVAL;

	d = mem_zalloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = -1;
	d->filename = mem_strdup(filename);
	if (!d->filename) {
		err = -ENOMEM;
		goto fail;
	}
	d->fd = open(filename, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (d->fd < 0) {
		err = -errno;
		goto fail;
	}
	err = aio_probe(d->fd, &size, &lbs);
	if (err)
		goto fail;
	if (block_size && block_size < lbs) {
		LOG_ERROR("bdev", "aio block size below the device's name=%s block_size=%u logical=%u",
			  name, block_size, lbs);
		err = -EINVAL;
		goto fail;
	}
	d->readonly = readonly;
	d->block_size_override = block_size;
	d->block_size = block_size ? block_size : lbs;
	if (size / d->block_size == 0) {
		LOG_ERROR("bdev", "aio file too small name=%s file=%s size=%llu", name, filename,
			  (unsigned long long)size);
		err = -EINVAL;
		goto fail;
	}
	err = aio_ring_init();
	if (err)
		goto fail;

	p.name = name;
	p.uuid = uuid;
	p.product_name = "AIO disk";
	p.block_size = d->block_size;
	p.num_blocks = size / d->block_size;
	p.ops = &aio_ops;
	p.ctx = d;
	err = bdev_register(&p, out);
	if (err)
		goto fail;
	LOG_INFO("bdev", "aio created name=%s file=%s block_size=%u num_blocks=%llu readonly=%d",
		 name, filename, d->block_size, (unsigned long long)p.num_blocks, readonly);
	return 0;
fail:
	disk_free(d);
	return err;
}

int bdev_aio_rescan(struct bdev *bdev)
{
	struct aio_disk *d = aio_of(bdev);
	uint64_t size, blocks;
	uint32_t lbs;
	int err;

	if (!d)
		return -ENODEV;
	err = aio_probe(d->fd, &size, &lbs);
	if (err)
		return err;
	blocks = size / d->block_size;
	if (blocks == bdev->num_blocks)
		return 0;
	if (blocks < bdev->num_blocks && bdev->claim_type != BDEV_CLAIM_NONE)
		return -EBUSY; /* shrinking under an lvstore or a namespace */
	bdev_num_blocks_set(bdev, blocks);
	return 0;
}

const char *bdev_aio_filename(const struct bdev *bdev)
{
	const struct aio_disk *d = aio_of(bdev);

	return d ? d->filename : NULL;
}

bool bdev_aio_readonly(const struct bdev *bdev)
{
	const struct aio_disk *d = aio_of(bdev);

	return d && d->readonly;
}

uint32_t bdev_aio_block_size_override(const struct bdev *bdev)
{
	const struct aio_disk *d = aio_of(bdev);

	return d ? d->block_size_override : 0;
}

int bdev_aio_delete(const char *name)
{
	struct bdev *bdev = bdev_find(name);

	if (!aio_of(bdev))
		return -ENODEV;
	return bdev_unregister(bdev);
}
