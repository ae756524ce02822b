/*
 * harness.h: helpers shared by the blob unit tests: an event loop with the
 * bdev module, and synchronous wrappers that run the loop until an
 * asynchronous blob operation completes.
 */
#ifndef DE_TEST_BLOB_HARNESS_H
#define DE_TEST_BLOB_HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev.h"
#include "blob/blob.h"
#include "common/common.h"

struct h_wait {
	bool done;
	int status;
	struct blob *blob;
	struct blob_store *bs;
};

static struct ev_loop *h_loop;

static void h_setup(void)
{
	if (ev_loop_create(&h_loop) != 0 || bdev_module_init(h_loop) != 0) {
		fprintf(stderr, "harness: cannot start loop\n");
		abort();
	}
}

static void h_teardown(void)
{
	for (int i = 0; i < 100; i++)
		ev_loop_run_once(h_loop, 0);
	bdev_module_fini();
	ev_loop_destroy(h_loop);
	h_loop = NULL;
}

static void h_run(struct h_wait *w)
{
	for (unsigned i = 0; !w->done; i++) {
		ev_loop_run_once(h_loop, 10);
		if (i > 10000000) {
			fprintf(stderr, "harness: operation never completed\n");
			abort();
		}
	}
}

/* Drain deferred work / background I/O. */
static void h_spin(unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++)
		ev_loop_run_once(h_loop, 0);
}

static void h_done_cb(void *arg, int status)
{
	struct h_wait *w = arg;
	w->status = status;
	w->done = true;
}

static void h_blob_cb(void *arg, struct blob *blob, int status)
{
	struct h_wait *w = arg;
	w->blob = blob;
	w->status = status;
	w->done = true;
}

static void h_bs_cb(void *arg, struct blob_store *bs, int status)
{
	struct h_wait *w = arg;
	w->bs = bs;
	w->status = status;
	w->done = true;
}

#define H_SYNC(call, w) do { int _rc = (call); if (_rc) { (w)->status = _rc; (w)->done = true; } else h_run(w); } while (0)

static int h_init(struct bdev *bdev, uint64_t cluster, uint32_t ratio, struct blob_store **out)
{
	struct h_wait w = {0};
	struct blob_store_opts o;
	memset(&o, 0, sizeof(o));
	o.cluster_size = cluster;
	o.md_pages_ratio = ratio;
	snprintf(o.name, sizeof(o.name), "test");
	o.uuid[0] = (uint8_t)rand();
	o.uuid[1] = (uint8_t)rand();
	H_SYNC(blob_store_init(bdev, &o, h_bs_cb, &w), &w);
	*out = w.bs;
	return w.status;
}

static int h_load(struct bdev *bdev, struct blob_store **out)
{
	struct h_wait w = {0};
	H_SYNC(blob_store_load(bdev, h_bs_cb, &w), &w);
	*out = w.bs;
	return w.status;
}

static int h_unload(struct blob_store *bs)
{
	struct h_wait w = {0};
	H_SYNC(blob_store_unload(bs, h_done_cb, &w), &w);
	return w.status;
}

static int h_create(struct blob_store *bs, uint64_t clusters, bool thin, struct blob **out)
{
	struct h_wait w = {0};
	struct blob_create_opts o = { .num_clusters = clusters, .thin = thin };
	H_SYNC(blob_create(bs, &o, h_blob_cb, &w), &w);
	if (out)
		*out = w.blob;
	return w.status;
}

static int h_resize(struct blob *b, uint64_t n)
{
	struct h_wait w = {0};
	H_SYNC(blob_resize(b, n, h_done_cb, &w), &w);
	return w.status;
}

static int h_delete(struct blob *b)
{
	struct h_wait w = {0};
	H_SYNC(blob_delete(b, h_done_cb, &w), &w);
	return w.status;
}

static int h_snapshot(struct blob *b, struct blob **out)
{
	struct h_wait w = {0};
	H_SYNC(blob_snapshot(b, NULL, 0, h_blob_cb, &w), &w);
	if (out)
		*out = w.blob;
	return w.status;
}

static int h_clone(struct blob *b, struct blob **out)
{
	struct h_wait w = {0};
	H_SYNC(blob_clone(b, NULL, 0, h_blob_cb, &w), &w);
	if (out)
		*out = w.blob;
	return w.status;
}

static int h_inflate(struct blob *b)
{
	struct h_wait w = {0};
	H_SYNC(blob_inflate(b, h_done_cb, &w), &w);
	return w.status;
}

static int h_decouple(struct blob *b)
{
	struct h_wait w = {0};
	H_SYNC(blob_decouple_parent(b, h_done_cb, &w), &w);
	return w.status;
}

static int h_write(struct blob *b, const void *buf, uint64_t off, uint64_t len)
{
	struct h_wait w = {0};
	H_SYNC(blob_write(b, buf, off, len, h_done_cb, &w), &w);
	return w.status;
}

static int h_wz(struct blob *b, uint64_t off, uint64_t len)
{
	struct h_wait w = {0};
	H_SYNC(blob_write_zeroes(b, off, len, h_done_cb, &w), &w);
	return w.status;
}

static int h_read(struct blob *b, void *buf, uint64_t off, uint64_t len)
{
	struct h_wait w = {0};
	H_SYNC(blob_read(b, buf, off, len, h_done_cb, &w), &w);
	return w.status;
}

static int h_flush(struct blob *b)
{
	struct h_wait w = {0};
	H_SYNC(blob_flush(b, h_done_cb, &w), &w);
	return w.status;
}

static int h_set_xattr(struct blob *b, const char *name, const char *value)
{
	struct h_wait w = {0};
	H_SYNC(blob_set_xattr(b, name, value, value ? (uint32_t)strlen(value) : 0, h_done_cb, &w), &w);
	return w.status;
}

static inline void h_unused(void)
{
	(void)h_setup; (void)h_teardown; (void)h_spin; (void)h_init; (void)h_load; (void)h_unload;
	(void)h_create; (void)h_resize; (void)h_delete; (void)h_snapshot; (void)h_clone; (void)h_inflate;
	(void)h_decouple; (void)h_write; (void)h_wz; (void)h_read; (void)h_flush; (void)h_set_xattr;
}

#endif
