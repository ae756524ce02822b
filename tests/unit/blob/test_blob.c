/*
 * test_blob.c: unit tests of the blobstore on RAM and fault bdevs: SPDK's
 * cluster counts, thick/thin allocation, data path, snapshots and clones,
 * the delete rules, clean and dirty reload, xattrs, grow, parser checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static int setup(void **state)
{
	(void)state;
	h_setup();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* SPDK: 2 GiB/4 KiB blocks -> 511, 1 GiB/512 B -> 255, 1 GiB at 1 MiB -> 1019,
 * max_growable_size 137271181312 at 4 MiB clusters. */
static void test_cluster_counts(void **state)
{
	(void)state;
	struct { uint64_t bytes; uint32_t bsz; uint64_t cluster; uint64_t want; } cases[] = {
		{ 2 * GiB, 4096, 4 * MiB, 511 },
		{ 1 * GiB, 512, 4 * MiB, 255 },
		{ 1 * GiB, 512, 1 * MiB, 1019 },
	};
	for (unsigned i = 0; i < COMMON_ARRAY_SIZE(cases); i++) {
		struct bdev *bd;
		char name[32];
		snprintf(name, sizeof(name), "f%u", i);
		assert_int_equal(bdev_fault_create(name, cases[i].bytes / cases[i].bsz, cases[i].bsz, &bd), 0);
		struct blob_store *bs;
		assert_int_equal(h_init(bd, cases[i].cluster, 0, &bs), 0);
		assert_int_equal(blob_store_total_data_clusters(bs), cases[i].want);
		assert_int_equal(blob_store_free_clusters(bs), cases[i].want);
		if (cases[i].cluster == 4 * MiB)
			assert_int_equal(blob_store_max_growable_size(bs), 137271181312ull);
		assert_int_equal(h_unload(bs), 0);
		assert_int_equal(bdev_fault_delete(name), 0);
	}
}

static void test_thick_thin_data(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_fault_create("d", 64 * MiB / 512, 512, &bd), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 1 * MiB, 0, &bs), 0);
	uint64_t total = blob_store_total_data_clusters(bs);
	struct blob *thick, *thin;
	assert_int_equal(h_create(bs, 4, false, &thick), 0);
	assert_int_equal(blob_num_allocated_clusters(thick), 4);
	assert_int_equal(blob_store_free_clusters(bs), total - 4);
	assert_int_equal(h_create(bs, 100, true, &thin), 0);
	assert_int_equal(blob_num_allocated_clusters(thin), 0);
	/* too big thick: ENOSPC, nothing taken */
	assert_int_equal(h_create(bs, total, false, NULL), -ENOSPC);
	assert_int_equal(blob_store_free_clusters(bs), total - 4);

	uint8_t *w = malloc(2 * MiB), *r = malloc(2 * MiB);
	fill(w, 2 * MiB, 1);
	/* thin: unwritten reads zero; a write in the middle of a cluster keeps zeros around it */
	assert_int_equal(h_read(thin, r, 0, 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(h_write(thin, w, MiB + 4096, 8192), 0);
	assert_int_equal(blob_num_allocated_clusters(thin), 1);
	assert_int_equal(h_read(thin, r, MiB, 3 * 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	assert_memory_equal(r + 4096, w, 8192);
	/* write spanning two clusters */
	assert_int_equal(h_write(thin, w, 3 * MiB - 4096, 8192), 0);
	assert_int_equal(blob_num_allocated_clusters(thin), 3);
	assert_int_equal(h_read(thin, r, 3 * MiB - 4096, 8192), 0);
	assert_memory_equal(r, w, 8192);
	/* thick data */
	assert_int_equal(h_write(thick, w, 0, 2 * MiB), 0);
	assert_int_equal(h_read(thick, r, 0, 2 * MiB), 0);
	assert_memory_equal(r, w, 2 * MiB);
	/* write zeroes */
	assert_int_equal(h_wz(thick, 512, 1024), 0);
	assert_int_equal(h_read(thick, r, 0, 4096), 0);
	assert_memory_equal(r, w, 512);
	for (int i = 512; i < 1536; i++)
		assert_int_equal(r[i], 0);
	/* bad alignment / range */
	assert_int_equal(blob_write(thick, w, 100, 512, h_done_cb, NULL), -EINVAL);
	assert_int_equal(blob_write(thick, w, 4 * MiB, 512, h_done_cb, NULL), -EINVAL);
	assert_int_equal(blob_store_check(bs), 0);

	/* resize: thick grow takes clusters, shrink gives them back */
	assert_int_equal(h_resize(thick, 6), 0);
	assert_int_equal(blob_num_allocated_clusters(thick), 6);
	assert_int_equal(h_resize(thick, 1), 0);
	assert_int_equal(blob_num_allocated_clusters(thick), 1);
	assert_int_equal(h_resize(thick, 0), 0);
	assert_int_equal(h_resize(thin, 1000), 0);
	assert_int_equal(blob_num_allocated_clusters(thin), 3);
	assert_int_equal(h_resize(thick, total), -ENOSPC);
	assert_int_equal(blob_store_check(bs), 0);

	/* reload (clean) keeps everything */
	uint64_t thin_id = blob_id(thin), free_before = blob_store_free_clusters(bs);
	assert_int_equal(h_unload(bs), 0);
	assert_int_equal(h_load(bd, &bs), 0);
	assert_false(blob_store_was_dirty(bs));
	assert_int_equal(blob_store_free_clusters(bs), free_before);
	thin = blob_lookup(bs, thin_id);
	assert_non_null(thin);
	assert_int_equal(blob_num_clusters(thin), 1000);
	assert_int_equal(h_read(thin, r, MiB + 4096, 8192), 0);
	assert_memory_equal(r, w, 8192);
	assert_int_equal(blob_store_check(bs), 0);

	/* dirty reload: drop the store without unloading */
	blob_store_free(bs);
	assert_int_equal(h_load(bd, &bs), 0);
	assert_true(blob_store_was_dirty(bs));
	assert_int_equal(blob_store_free_clusters(bs), free_before);
	assert_int_equal(blob_store_check(bs), 0);
	assert_int_equal(h_unload(bs), 0);
	free(w);
	free(r);
}

static void test_snapshot_clone_rules(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_fault_create("s", 64 * MiB / 4096, 4096, &bd), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 1 * MiB, 0, &bs), 0);
	uint64_t total = blob_store_total_data_clusters(bs);
	struct blob *vol, *snap, *clone, *snap2;
	assert_int_equal(h_create(bs, 4, false, &vol), 0);
	uint8_t *w = malloc(MiB), *r = malloc(MiB);
	fill(w, MiB, 3);
	assert_int_equal(h_write(vol, w, 0, MiB), 0);

	assert_int_equal(h_snapshot(vol, &snap), 0);
	assert_true(blob_is_snapshot(snap));
	assert_true(blob_is_read_only(snap));
	assert_false(blob_is_thin(snap)); /* snapshot of a thick volume */
	assert_true(blob_is_thin(vol));   /* origin became a thin clone */
	assert_ptr_equal(blob_parent(vol), snap);
	assert_int_equal(blob_num_allocated_clusters(snap), 4);
	assert_int_equal(blob_num_allocated_clusters(vol), 0);
	assert_int_equal(blob_store_free_clusters(bs), total - 4);
	/* origin reads through the snapshot */
	assert_int_equal(h_read(vol, r, 0, MiB), 0);
	assert_memory_equal(r, w, MiB);
	/* a write to the origin copies the cluster first */
	uint8_t patch[4096];
	fill(patch, sizeof(patch), 9);
	assert_int_equal(h_write(vol, patch, 8192, 4096), 0);
	assert_int_equal(blob_num_allocated_clusters(vol), 1);
	assert_int_equal(h_read(vol, r, 0, MiB), 0);
	assert_memory_equal(r, w, 8192);
	assert_memory_equal(r + 8192, patch, 4096);
	assert_memory_equal(r + 12288, w + 12288, MiB - 12288);
	/* the snapshot is unchanged and read-only */
	assert_int_equal(h_read(snap, r, 0, MiB), 0);
	assert_memory_equal(r, w, MiB);
	assert_int_equal(h_write(snap, w, 0, 4096), -EPERM);
	assert_int_equal(h_resize(snap, 8), -EPERM);

	/* clone of a non-snapshot: EINVAL */
	assert_int_equal(h_clone(vol, NULL), -EINVAL);
	assert_int_equal(h_clone(snap, &clone), 0);
	assert_int_equal(blob_clone_count(snap), 2);
	assert_ptr_equal(blob_clone_get(snap, 0), vol);
	assert_ptr_equal(blob_clone_get(snap, 1), clone);
	/* two clones: EPERM */
	assert_int_equal(h_delete(snap), -EPERM);
	assert_int_equal(h_delete(clone), 0);
	assert_int_equal(blob_clone_count(snap), 1);
	/* one clone: the clone absorbs the snapshot */
	assert_int_equal(h_delete(snap), 0);
	assert_null(blob_parent(vol));
	assert_int_equal(blob_num_allocated_clusters(vol), 4);
	assert_int_equal(blob_store_free_clusters(bs), total - 4);
	assert_int_equal(h_read(vol, r, 0, MiB), 0);
	assert_memory_equal(r, w, 8192);
	assert_memory_equal(r + 8192, patch, 4096);
	assert_int_equal(blob_store_check(bs), 0);

	/* chain: snapshot, write, snapshot again, clone of the older one */
	assert_int_equal(h_snapshot(vol, &snap), 0);
	assert_int_equal(h_write(vol, patch, 0, 4096), 0);
	assert_int_equal(h_snapshot(vol, &snap2), 0);
	assert_ptr_equal(blob_parent(snap2), snap);
	assert_ptr_equal(blob_parent(vol), snap2);
	assert_int_equal(h_read(vol, r, 0, 4096), 0);
	assert_memory_equal(r, patch, 4096);
	/* inflate: every cluster allocated, no parent, thick */
	assert_int_equal(h_inflate(vol), 0);
	assert_null(blob_parent(vol));
	assert_false(blob_is_thin(vol));
	assert_int_equal(blob_num_allocated_clusters(vol), 4);
	assert_int_equal(h_read(vol, r, 0, 4096), 0);
	assert_memory_equal(r, patch, 4096);
	assert_int_equal(h_read(vol, r, 0, MiB), 0);
	assert_memory_equal(r + 12288, w + 12288, MiB - 12288); /* from the oldest snapshot */
	/* decouple a clone of snap2: only clusters the chain has */
	assert_int_equal(h_clone(snap2, &clone), 0);
	assert_int_equal(h_decouple(clone), 0);
	assert_null(blob_parent(clone));
	assert_true(blob_is_thin(clone));
	assert_int_equal(blob_num_allocated_clusters(clone), 4);
	assert_int_equal(blob_store_check(bs), 0);

	/* everything survives a dirty reload */
	uint64_t free_before = blob_store_free_clusters(bs);
	unsigned n = blob_store_blob_count(bs);
	blob_store_free(bs);
	assert_int_equal(h_load(bd, &bs), 0);
	assert_int_equal(blob_store_free_clusters(bs), free_before);
	assert_int_equal(blob_store_blob_count(bs), n);
	assert_int_equal(blob_store_check(bs), 0);
	assert_int_equal(h_unload(bs), 0);
	free(w);
	free(r);
}

static void test_xattrs_order_grow(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_fault_create("x", 32 * MiB / 512, 512, &bd), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 1 * MiB, 0, &bs), 0);
	struct blob *b[5];
	for (int i = 0; i < 5; i++)
		assert_int_equal(h_create(bs, 0, true, &b[i]), 0);
	assert_int_equal(h_set_xattr(b[2], "name", "hello"), 0);
	assert_int_equal(h_set_xattr(b[2], "name", "world"), 0);
	assert_int_equal(h_delete(b[1]), 0);
	uint64_t ids[4] = { blob_id(b[0]), blob_id(b[2]), blob_id(b[3]), blob_id(b[4]) };
	blob_store_free(bs);
	assert_int_equal(h_load(bd, &bs), 0);
	unsigned i = 0;
	for (struct blob *x = blob_first(bs); x; x = blob_next(x), i++)
		assert_int_equal(blob_id(x), ids[i]);
	assert_int_equal(i, 4);
	uint32_t len;
	const char *v = blob_xattr_get(blob_lookup(bs, ids[1]), "name", &len);
	assert_non_null(v);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "world", 5);
	assert_string_equal(blob_store_name(bs), "test");
	/* set name + grow: nothing to grow on the same device */
	struct h_wait w = {0};
	H_SYNC(blob_store_set_name(bs, "renamed", h_done_cb, &w), &w);
	assert_int_equal(w.status, 0);
	uint64_t total = blob_store_total_data_clusters(bs);
	memset(&w, 0, sizeof(w));
	H_SYNC(blob_store_grow(bs, h_done_cb, &w), &w);
	assert_int_equal(w.status, 0);
	assert_int_equal(blob_store_total_data_clusters(bs), total);
	assert_int_equal(h_unload(bs), 0);
	assert_int_equal(h_load(bd, &bs), 0);
	assert_string_equal(blob_store_name(bs), "renamed");
	assert_int_equal(h_unload(bs), 0);
	/* not a store */
	struct bdev *empty;
	assert_int_equal(bdev_fault_create("e", 8 * MiB / 512, 512, &empty), 0);
	assert_int_equal(h_load(empty, &bs), -EILSEQ);
}

static void test_many_blobs_multi_page(void **state)
{
	(void)state;
	struct bdev *bd;
	/* 4 KiB clusters: a 3000-cluster thin blob with scattered writes needs
	 * several metadata pages */
	assert_int_equal(bdev_fault_create("m", 64 * MiB / 512, 512, &bd), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 4096, 10, &bs), 0);
	struct blob *b;
	assert_int_equal(h_create(bs, 3000, true, &b), 0);
	uint8_t buf[512];
	for (unsigned i = 0; i < 3000; i += 2) {
		memset(buf, (int)(i & 0xff) | 1, sizeof(buf));
		assert_int_equal(h_write(b, buf, (uint64_t)i * 4096, 512), 0);
	}
	assert_int_equal(blob_num_allocated_clusters(b), 1500);
	blob_store_free(bs);
	assert_int_equal(h_load(bd, &bs), 0);
	b = blob_first(bs);
	assert_non_null(b);
	assert_int_equal(blob_num_allocated_clusters(b), 1500);
	for (unsigned i = 0; i < 3000; i += 250) {
		assert_int_equal(h_read(b, buf, (uint64_t)i * 4096, 512), 0);
		assert_int_equal(buf[0], (uint8_t)((i & 0xff) | 1));
	}
	assert_int_equal(blob_store_check(bs), 0);
	assert_int_equal(h_unload(bs), 0);
}

static void test_md_parser(void **state)
{
	(void)state;
	uint8_t page[BLOB_PAGE_SIZE];
	memset(page, 0, sizeof(page));
	assert_int_equal(blob_md_page_check(page, sizeof(page)), -EILSEQ);
	assert_int_equal(blob_md_page_check(page, 10), -EILSEQ);
	uint8_t s1[] = { 1, 28, 0, 0, 0 };
	assert_int_equal(blob_md_stream_check(s1, sizeof(s1)), -EILSEQ);
	uint8_t s2[33] = { 1, 28, 0, 0, 0 };
	assert_int_equal(blob_md_stream_check(s2, sizeof(s2)), 0);
	s2[5] = 0x80; /* unknown flag */
	assert_int_equal(blob_md_stream_check(s2, sizeof(s2)), -EILSEQ);
}

struct conc {
	unsigned inflight, failed;
};

static void conc_cb(void *arg, int status)
{
	struct conc *c = arg;
	c->inflight--;
	if (status)
		c->failed++;
}

static void conc_snap_cb(void *arg, struct blob *b, int status)
{
	struct h_wait *w = arg;
	w->blob = b;
	w->status = status;
	w->done = true;
}

/* Many writes in flight on a thin blob (several per cluster, disjoint
 * blocks), a snapshot taken while they run, a resize grow concurrently:
 * afterwards every block holds what was written to it, allocation counts
 * add up, and a dirty reload sees the same. */
static void test_concurrent_io(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_fault_create("c", 64 * MiB / 512, 512, &bd), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 64 * 1024, 0, &bs), 0);
	struct blob *b;
	const unsigned nclusters = 32, per = 8; /* 8 writes of 4 KiB per 64 KiB cluster */
	assert_int_equal(h_create(bs, nclusters, true, &b), 0);
	uint8_t *data = malloc((size_t)nclusters * 64 * 1024);
	fill(data, (size_t)nclusters * 64 * 1024, 5);
	struct conc c = {0};
	struct h_wait sw = {0}, rw = {0};
	unsigned order[256];
	for (unsigned i = 0; i < nclusters * per; i++)
		order[i] = i;
	for (unsigned i = nclusters * per - 1; i > 0; i--) {
		unsigned j = (unsigned)rand() % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned k = 0; k < nclusters * per; k++) {
		unsigned i = order[k];
		uint64_t off = (uint64_t)(i / per) * 64 * 1024 + (uint64_t)(i % per) * 8192;
		assert_int_equal(blob_write(b, data + off, off, 4096, conc_cb, &c), 0);
		c.inflight++;
		if (k == nclusters * per / 2) {
			assert_int_equal(blob_snapshot(b, NULL, 0, conc_snap_cb, &sw), 0);
			assert_int_equal(blob_resize(b, nclusters + 8, h_done_cb, &rw), 0);
		}
	}
	while (c.inflight || !sw.done || !rw.done)
		ev_loop_run_once(h_loop, 10);
	assert_int_equal(c.failed, 0);
	assert_int_equal(sw.status, 0);
	assert_int_equal(rw.status, 0);
	assert_int_equal(blob_num_clusters(b), nclusters + 8);
	uint64_t alloc = blob_num_allocated_clusters(b) + blob_num_allocated_clusters(sw.blob);
	assert_true(alloc >= nclusters && alloc <= 2 * nclusters);
	assert_int_equal(blob_store_free_clusters(bs), blob_store_total_data_clusters(bs) - alloc);
	uint8_t *r = malloc((size_t)nclusters * 64 * 1024);
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(h_read(b, r, 0, (uint64_t)nclusters * 64 * 1024), 0);
		for (unsigned i = 0; i < nclusters * per; i++) {
			uint64_t off = (uint64_t)(i / per) * 64 * 1024 + (uint64_t)(i % per) * 8192;
			assert_memory_equal(r + off, data + off, 4096);
			for (unsigned z = 4096; z < 8192; z++)
				assert_int_equal(r[off + z], 0);
		}
		assert_int_equal(blob_store_check(bs), 0);
		if (pass == 0) {
			uint64_t id = blob_id(b);
			blob_store_free(bs);
			h_spin(50);
			assert_int_equal(h_load(bd, &bs), 0);
			b = blob_lookup(bs, id);
			assert_non_null(b);
		}
	}
	assert_int_equal(h_unload(bs), 0);
	free(r);
	free(data);
}

/* An I/O error at every point of a typical sequence: callbacks report it,
 * nothing crashes or leaks, and the reloaded store is consistent. */
static void test_io_errors(void **state)
{
	(void)state;
	unsigned reloaded = 0;
	for (uint64_t n = 1; n <= 120; n++) {
		struct bdev *bd;
		assert_int_equal(bdev_fault_create("io", 32 * MiB / 512, 512, &bd), 0);
		struct blob_store *bs;
		assert_int_equal(h_init(bd, 1 * MiB, 0, &bs), 0);
		struct blob *base;
		assert_int_equal(h_create(bs, 2, true, &base), 0);
		struct bdev_fault_opts fo = { .fail_io_nth = n };
		assert_int_equal(bdev_fault_configure(bd, &fo), 0);
		uint8_t buf[4096];
		memset(buf, 9, sizeof(buf));
		struct blob *a = NULL, *sn = NULL, *cl = NULL;
		(void)h_create(bs, 3, false, &a);
		(void)h_write(base, buf, 0, 4096);
		(void)h_write(base, buf, MiB + 512, 1024);
		if (h_snapshot(base, &sn) == 0 && sn) {
			(void)h_write(base, buf, 4096, 4096);
			(void)h_clone(sn, &cl);
		}
		if (a)
			(void)h_resize(a, 1);
		(void)h_inflate(base);
		if (cl)
			(void)h_delete(cl);
		if (sn)
			(void)h_delete(sn);
		if (a)
			(void)h_delete(a);
		fo.fail_io_nth = 0;
		assert_int_equal(bdev_fault_configure(bd, &fo), 0);
		int urc = h_unload(bs);
		h_spin(20);
		assert_int_equal(h_load(bd, &bs), 0);
		assert_int_equal(blob_store_check(bs), 0);
		if (urc == 0)
			assert_false(blob_store_was_dirty(bs));
		reloaded++;
		assert_int_equal(h_unload(bs), 0);
		h_spin(20);
		assert_int_equal(bdev_fault_delete("io"), 0);
	}
	printf("io errors: %u failure points, every reload consistent\n", reloaded);
}

/* Allocation failure at every point of a typical sequence: no crash, no
 * leak (LeakSanitizer), and the store either works or reports errors. */
static void test_alloc_failures(void **state)
{
	(void)state;
	unsigned long ok_runs = 0;
	for (long n = 0; n < 400; n++) {
		char name[32];
		snprintf(name, sizeof(name), "af%ld", n);
		struct bdev *bd;
		assert_int_equal(bdev_malloc_create(name, NULL, 16 * MiB / 512, 512, &bd), 0);
		mem_fault_set(n);
		struct blob_store *bs = NULL;
		int rc = h_init(bd, 1 * MiB, 0, &bs);
		struct blob *a = NULL, *b = NULL, *sn = NULL, *cl = NULL;
		uint8_t buf[4096];
		memset(buf, 7, sizeof(buf));
		if (rc == 0) {
			(void)h_create(bs, 2, false, &a);
			(void)h_create(bs, 4, true, &b);
			if (b) {
				(void)h_write(b, buf, 4096, 4096);
				(void)h_snapshot(b, &sn);
			}
			if (sn)
				(void)h_clone(sn, &cl);
			if (a)
				(void)h_resize(a, 3);
			if (cl)
				(void)h_delete(cl);
			if (sn)
				(void)h_delete(sn);
			if (a || b)
				(void)h_set_xattr(a ? a : b, "k", "v");
		}
		mem_fault_clear();
		h_spin(20);
		if (bs && rc == 0) {
			if (h_unload(bs) == 0) {
				/* a clean reload must work after whatever happened */
				assert_int_equal(h_load(bd, &bs), 0);
				assert_int_equal(blob_store_check(bs), 0);
				assert_int_equal(h_unload(bs), 0);
				ok_runs++;
			} else {
				/* failed store: its reload decides, like after a crash */
				assert_int_equal(h_load(bd, &bs), 0);
				assert_int_equal(blob_store_check(bs), 0);
				blob_store_free(bs);
			}
		}
		h_spin(20);
		assert_int_equal(bdev_malloc_delete(name), 0);
	}
	printf("alloc failures: 400 fault points, %lu stores reloaded cleanly afterwards\n", ok_runs);
}

static int dev_io(struct bdev *bd, bool wr, void *buf, uint64_t off, uint64_t len)
{
	struct h_wait w = {0};
	H_SYNC(wr ? bdev_write(bd, buf, off, len, h_done_cb, &w) : bdev_read(bd, buf, off, len, h_done_cb, &w), &w);
	return w.status;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Init writes real zeros over the masks and md pages (so later md commits
 * overwrite blocks a file system has already allocated), and md pages are
 * handed out lowest first: a freed page is the next one used. 16 MiB at
 * 64 KiB clusters: 256 md pages at pages [4, 260). */
static void test_md_prewrite_lowest_first(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_malloc_create("pw", NULL, 16 * MiB / 512, 512, &bd), 0);
	size_t md_bytes = 259 * 4096;
	uint8_t *junk = malloc(16 * MiB), *rd = malloc(md_bytes);
	assert_non_null(junk);
	assert_non_null(rd);
	memset(junk, 0xAA, 16 * MiB);
	assert_int_equal(dev_io(bd, true, junk, 0, 16 * MiB), 0);
	struct blob_store *bs;
	assert_int_equal(h_init(bd, 64 * 1024, 0, &bs), 0);
	assert_int_equal(dev_io(bd, false, rd, 4096, md_bytes), 0);
	assert_true(all_zero(rd, md_bytes));
	/* the first data cluster was not touched */
	assert_int_equal(dev_io(bd, false, rd, 17 * 64 * 1024, 4096), 0);
	assert_int_equal(rd[0], 0xAA);

	struct blob *b[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(h_create(bs, 1, true, &b[i]), 0);
	uint64_t page1 = (4 + 1) * 4096;
	assert_int_equal(dev_io(bd, false, rd, page1, 4096), 0);
	assert_false(all_zero(rd, 4096));
	assert_int_equal(h_delete(b[1]), 0);
	assert_int_equal(dev_io(bd, false, rd, page1, 4096), 0);
	assert_true(all_zero(rd, 4096));
	struct blob *n;
	assert_int_equal(h_create(bs, 1, true, &n), 0);
	assert_int_equal(dev_io(bd, false, rd, page1, 4096), 0);
	assert_false(all_zero(rd, 4096)); /* the freed page, not page 4 */
	assert_int_equal(dev_io(bd, false, rd, (4 + 4) * 4096, 4096), 0);
	assert_true(all_zero(rd, 4096));
	assert_int_equal(h_unload(bs), 0);
	assert_int_equal(h_load(bd, &bs), 0);
	assert_int_equal(blob_store_blob_count(bs), 4);
	assert_int_equal(blob_store_check(bs), 0);
	assert_int_equal(h_unload(bs), 0);
	free(junk);
	free(rd);
	h_spin(20);
	assert_int_equal(bdev_malloc_delete("pw"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cluster_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thick_thin_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_clone_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattrs_order_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_blobs_multi_page, setup, teardown),
		cmocka_unit_test(test_md_parser),
		cmocka_unit_test_setup_teardown(test_concurrent_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_md_prewrite_lowest_first, setup, teardown),
	};
	h_unused();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
