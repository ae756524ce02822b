/*
 * malloc.c: the RAM bdev (SPDK's "Malloc disk"). Every I/O is a memcpy or
 * memset done inside submit; the generic layer defers the completion. Flush
 * has nothing to do. This is the fast path NVMe/TCP benchmarks run through.
 * Reads can also be zero-copy (bdev_read_direct: a pointer into the buffer);
 * the buffer is reference-counted so a reader still sending from it when the
 * bdev is deleted keeps it alive until bdev_mem_put().
 */
#include "bdev/bdev_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A reference on a disk's memory (bdev.h). Only malloc gives direct reads,
 * so the type lives here: the disk holds one reference while registered,
 * every bdev_read_direct() one more; the memory goes with the last. */
struct bdev_mem {
	unsigned refs;
};

struct malloc_disk {
	struct bdev_mem mem; /* one reference for the bdev, one per direct read */
	uint8_t *data;
	uint64_t size;
};

static int malloc_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
			 uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	struct malloc_disk *m = ctx;

	switch (type) {
	case BDEV_IO_READ:
		memcpy(buf, m->data + offset, len);
		break;
	case BDEV_IO_WRITE:
		memcpy(m->data + offset, buf, len);
		break;
	case BDEV_IO_WRITE_ZEROES:
	case BDEV_IO_UNMAP:
		memset(m->data + offset, 0, len);
		break;
	case BDEV_IO_FLUSH:
		break;
	default:
		return -EINVAL;
	}
	cb(cb_arg, 0);
	return 0;
}

static int malloc_read_direct(void *ctx, uint64_t offset, uint64_t len, const void **ptr,
			      struct bdev_mem **ref)
{
	struct malloc_disk *m = ctx;

	(void)len;
	*ptr = m->data + offset;
	m->mem.refs++;
	*ref = &m->mem;
	return 0;
}

void bdev_mem_put(struct bdev_mem *ref)
{
	struct malloc_disk *m = (struct malloc_disk *)ref;

	if (!ref || --ref->refs > 0)
		return;
	mem_free(m->data);
	mem_free(m);
}

/* The bdev's reference; direct readers may keep the memory a while longer. */
static void malloc_destroy(void *ctx)
{
	struct malloc_disk *m = ctx;

	bdev_mem_put(&m->mem);
}

static const struct bdev_ops malloc_ops = {
	.submit = malloc_submit,
	.destroy = malloc_destroy,
	.read_direct = malloc_read_direct,
};

int bdev_malloc_create(const char *name, const char *uuid, uint64_t num_blocks,
		       uint32_t block_size, struct bdev **out)
{
	struct malloc_disk *m = NULL;
	struct bdev_params p = {0};
	char auto_name[32];
	int err;

	if (block_size == 0 || block_size % 512 || block_size > 65536 || num_blocks == 0)
		return -EINVAL;
	if (num_blocks > SIZE_MAX / block_size)
		return -EINVAL;
	if (uuid && common_uuid_parse(uuid, NULL) != 0)
		return -EINVAL;
	if (!name) {
		for (unsigned i = 0;; i++) {
			snprintf(auto_name, sizeof(auto_name), "Malloc%u", i);
			if (!bdev_name_taken(auto_name))
				break;
		}
		name = auto_name;
	}
	if (bdev_name_taken(name) || (uuid && bdev_find(uuid)))
		return -EEXIST;

	m = mem_zalloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->mem.refs = 1;
	m->size = num_blocks * block_size;
	m->data = mem_zalloc(m->size);
	if (!m->data) {
		err = -ENOMEM;
		goto fail;
	}
	p.name = name;
	p.uuid = uuid;
	p.product_name = "Malloc disk";
	p.block_size = block_size;
	p.num_blocks = num_blocks;
	p.ops = &malloc_ops;
	p.ctx = m;
	err = bdev_register(&p, out);
	if (err)
		goto fail;
	LOG_INFO("bdev", "malloc created name=%s num_blocks=%llu block_size=%u", name,
		 (unsigned long long)num_blocks, block_size);
	return 0;
fail:
	malloc_destroy(m);
	return err;
}

int bdev_malloc_delete(const char *name)
{
	struct bdev *bdev = bdev_find(name);

	if (!bdev || bdev->ops != &malloc_ops)
		return -ENODEV;
	return bdev_unregister(bdev);
}
