/*
 * fault.c: the fault-injecting test bdev (RAM with a volatile write cache).
 *
 * Two sparse images of the device: `cur` (what reads see: every write taken
 * so far) and `dur` (what survives a power loss: the state at the last
 * flush). Both are arrays of 16 KiB chunks allocated on first write; a
 * missing chunk reads as zeros. Every write (WRITE, WRITE_ZEROES, UNMAP)
 * since the last flush is a pending record holding its own copy of the data
 * (NULL for zeros), so a power loss can re-apply any subset of them in
 * order; the exact rules are in bdev.h. Everything happens inside submit
 * (the generic layer defers completions), so it is fast and deterministic.
 */
#include "bdev/bdev_internal.h"

#include <errno.h>
#include <string.h>

#define FAULT_CHUNK (16u * 1024u)

struct fault_rec {
	uint64_t off, len;
	uint8_t *data; /* NULL: zeros */
};

struct fault_disk {
	uint64_t size;
	uint32_t block_size;
	uint64_t nchunks;
	uint8_t **cur, **dur;

	struct fault_rec *recs;
	size_t nrecs, caprecs;

	struct bdev_fault_opts opts;
	uint64_t ios_since_cfg, writes_since_cfg;
	uint64_t write_count;
	bool crashed;
};

/* ------------------------------------------------------------ images */

static void img_read(uint8_t **img, uint64_t off, uint8_t *buf, uint64_t len)
{
	while (len) {
		uint64_t c = off / FAULT_CHUNK, in = off % FAULT_CHUNK;
		uint64_t n = COMMON_MIN(len, FAULT_CHUNK - in);
		if (img[c])
			memcpy(buf, img[c] + in, n);
		else
			memset(buf, 0, n);
		off += n;
		buf += n;
		len -= n;
	}
}

/* data NULL: zeros. Chunks that data lands in must exist (img_reserve). */
static void img_write(uint8_t **img, uint64_t off, const uint8_t *data, uint64_t len)
{
	while (len) {
		uint64_t c = off / FAULT_CHUNK, in = off % FAULT_CHUNK;
		uint64_t n = COMMON_MIN(len, FAULT_CHUNK - in);
		if (data)
			memcpy(img[c] + in, data, n);
		else if (img[c])
			memset(img[c] + in, 0, n);
		off += n;
		if (data)
			data += n;
		len -= n;
	}
}

/* Copy a range from one image to the other (chunks of `to` must exist
 * wherever `from` has one). */
static void img_copy(uint8_t **to, uint8_t **from, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t c = off / FAULT_CHUNK, in = off % FAULT_CHUNK;
		uint64_t n = COMMON_MIN(len, FAULT_CHUNK - in);
		if (from[c])
			memcpy(to[c] + in, from[c] + in, n);
		else if (to[c])
			memset(to[c] + in, 0, n);
		off += n;
		len -= n;
	}
}

/* Makes sure both images have every chunk of the range, so a later write,
 * flush or power loss never allocates. Chunks come in pairs: either both
 * images have chunk c or neither does (img_copy relies on it), so a pair is
 * only installed once both halves are allocated. */
static int img_reserve(struct fault_disk *f, uint64_t off, uint64_t len)
{
	for (uint64_t c = off / FAULT_CHUNK; c <= (off + len - 1) / FAULT_CHUNK; c++) {
		uint8_t *cur, *dur;

		if (f->cur[c])
			continue;
		cur = mem_zalloc(FAULT_CHUNK);
		dur = mem_zalloc(FAULT_CHUNK);
		if (!cur || !dur) {
			mem_free(cur);
			mem_free(dur);
			return -ENOMEM;
		}
		f->cur[c] = cur;
		f->dur[c] = dur;
	}
	return 0;
}

/* ----------------------------------------------------------- records */

static void recs_clear(struct fault_disk *f)
{
	for (size_t i = 0; i < f->nrecs; i++)
		mem_free(f->recs[i].data);
	f->nrecs = 0;
}

/* Takes a write: reserves memory first so that nothing changes on failure. */
static int fault_take_write(struct fault_disk *f, const void *buf, uint64_t off, uint64_t len)
{
	uint8_t *copy = NULL;
	int err;

	if (f->nrecs == f->caprecs) {
		size_t cap = f->caprecs ? f->caprecs * 2 : 64;
		struct fault_rec *r = mem_realloc(f->recs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		f->recs = r;
		f->caprecs = cap;
	}
	if (buf) {
		err = img_reserve(f, off, len);
		if (err)
			return err;
		copy = mem_alloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
	}
	img_write(f->cur, off, copy, len);
	f->recs[f->nrecs].off = off;
	f->recs[f->nrecs].len = len;
	f->recs[f->nrecs].data = copy;
	f->nrecs++;
	f->write_count++;
	f->writes_since_cfg++;
	if (f->opts.crash_after_writes && f->writes_since_cfg >= f->opts.crash_after_writes) {
		f->crashed = true;
		LOG_DEBUG("bdev", "fault device crashed writes=%llu",
			  (unsigned long long)f->write_count);
	}
	return 0;
}

static void fault_flush(struct fault_disk *f)
{
	for (size_t i = 0; i < f->nrecs; i++)
		img_copy(f->dur, f->cur, f->recs[i].off, f->recs[i].len);
	recs_clear(f);
}

/* ------------------------------------------------------------- ops */

static int fault_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
			uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	struct fault_disk *f = ctx;
	int status = 0;

	f->ios_since_cfg++;
	if (f->crashed || (f->opts.fail_io_nth && f->ios_since_cfg == f->opts.fail_io_nth)) {
		cb(cb_arg, -EIO);
		return 0;
	}
	switch (type) {
	case BDEV_IO_READ:
		img_read(f->cur, offset, buf, len);
		break;
	case BDEV_IO_WRITE:
		status = fault_take_write(f, buf, offset, len);
		break;
	case BDEV_IO_WRITE_ZEROES:
	case BDEV_IO_UNMAP:
		status = fault_take_write(f, NULL, offset, len);
		break;
	case BDEV_IO_FLUSH:
		fault_flush(f);
		break;
	default:
		return -EINVAL;
	}
	if (status)
		return status; /* -ENOMEM: refused, nothing changed */
	cb(cb_arg, 0);
	return 0;
}

static void fault_destroy(void *ctx)
{
	struct fault_disk *f = ctx;

	if (!f)
		return;
	recs_clear(f);
	mem_free(f->recs);
	for (uint64_t c = 0; c < f->nchunks; c++) {
		if (f->cur)
			mem_free(f->cur[c]);
		if (f->dur)
			mem_free(f->dur[c]);
	}
	mem_free(f->cur);
	mem_free(f->dur);
	mem_free(f);
}

static const struct bdev_ops fault_ops = {
	.submit = fault_submit,
	.destroy = fault_destroy,
};

static struct fault_disk *fault_of(const struct bdev *bdev)
{
	return bdev && bdev->ops == &fault_ops ? bdev->ctx : NULL;
}

/* ------------------------------------------------------------- API */

int bdev_fault_create(const char *name, uint64_t num_blocks, uint32_t block_size, struct bdev **out)
{
	struct fault_disk *f;
	struct bdev_params p = {0};
	int err;

	if (!name || block_size == 0 || block_size % 512 || block_size > 65536 ||
	    num_blocks == 0 || num_blocks > (UINT64_MAX / 2) / block_size)
		return -EINVAL;
	if (bdev_name_taken(name))
		return -EEXIST;
	f = mem_zalloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->size = num_blocks * block_size;
	f->block_size = block_size;
	f->nchunks = COMMON_DIV_ROUND_UP(f->size, FAULT_CHUNK);
	if (f->nchunks > SIZE_MAX / sizeof(uint8_t *)) {
		err = -EINVAL;
		goto fail;
	}
	f->cur = mem_zalloc(f->nchunks * sizeof(uint8_t *));
	f->dur = mem_zalloc(f->nchunks * sizeof(uint8_t *));
	if (!f->cur || !f->dur) {
		err = -ENOMEM;
		goto fail;
	}
	p.name = name;
	p.product_name = "Fault disk";
	p.block_size = block_size;
	p.num_blocks = num_blocks;
	p.ops = &fault_ops;
	p.ctx = f;
	err = bdev_register(&p, out);
	if (err)
		goto fail;
	return 0;
fail:
	fault_destroy(f);
	return err;
}

int bdev_fault_configure(struct bdev *bdev, const struct bdev_fault_opts *opts)
{
	struct fault_disk *f = fault_of(bdev);

	if (!f || !opts)
		return -EINVAL;
	f->opts = *opts;
	f->ios_since_cfg = 0;
	f->writes_since_cfg = 0;
	return 0;
}

int bdev_fault_power_loss(struct bdev *bdev, double keep_fraction, uint64_t seed)
{
	struct fault_disk *f = fault_of(bdev);
	uint64_t rng = seed;
	uint64_t threshold;

	if (!f)
		return -EINVAL;
	if (!(keep_fraction > 0.0))
		keep_fraction = 0.0;
	if (keep_fraction > 1.0)
		keep_fraction = 1.0;
	/* survive when the 53-bit draw is below keep_fraction * 2^53 */
	threshold = (uint64_t)(keep_fraction * 9007199254740992.0);

	/* Back to the durable state over every pending range... */
	for (size_t i = 0; i < f->nrecs; i++)
		img_copy(f->cur, f->dur, f->recs[i].off, f->recs[i].len);
	/* ...then the survivors, in the order they were taken. */
	for (size_t i = 0; i < f->nrecs; i++) {
		struct fault_rec *r = &f->recs[i];
		if (!f->opts.torn_writes) {
			if ((bdev_rand_next(&rng) >> 11) < threshold)
				img_write(f->cur, r->off, r->data, r->len);
			continue;
		}
		for (uint64_t o = 0; o < r->len; o += f->block_size) {
			if ((bdev_rand_next(&rng) >> 11) < threshold)
				img_write(f->cur, r->off + o, r->data ? r->data + o : NULL,
					  f->block_size);
		}
	}
	/* What is on the media now is durable. */
	for (size_t i = 0; i < f->nrecs; i++)
		img_copy(f->dur, f->cur, f->recs[i].off, f->recs[i].len);
	LOG_DEBUG("bdev", "fault power loss name=%s pending=%zu keep=%.3f seed=%llu", bdev->name,
		  f->nrecs, keep_fraction, (unsigned long long)seed);
	recs_clear(f);
	bool torn = f->opts.torn_writes;
	memset(&f->opts, 0, sizeof(f->opts));
	f->opts.torn_writes = torn;
	f->crashed = false;
	f->ios_since_cfg = 0;
	f->writes_since_cfg = 0;
	return 0;
}

uint64_t bdev_fault_write_count(const struct bdev *bdev)
{
	const struct fault_disk *f = fault_of(bdev);

	return f ? f->write_count : 0;
}

bool bdev_fault_crashed(const struct bdev *bdev)
{
	const struct fault_disk *f = fault_of(bdev);

	return f && f->crashed;
}

uint64_t bdev_fault_pending_count(const struct bdev *bdev)
{
	const struct fault_disk *f = fault_of(bdev);

	return f ? f->nrecs : 0;
}

int bdev_fault_delete(const char *name)
{
	struct bdev *bdev = bdev_find(name);

	if (!fault_of(bdev))
		return -ENODEV;
	return bdev_unregister(bdev);
}
