/* test_bdev_core.c: unit tests of the bdev registry (names, aliases, UUIDs,
 * claims, examine), the generic I/O path (validation, deferred completions,
 * stats) and the malloc bdev. */
#include "bdev_test_util.h"

/* ------------------------------------------------------------ registry */

static void test_register_lookup(void **state)
{
	struct bdev *a, *b, *c;

	assert_int_equal(bdev_malloc_create("m0", NULL, 16, 512, &a), 0);
	assert_int_equal(bdev_malloc_create("m1", "6F1D7E0A-1111-4222-8333-444455556666", 16, 4096, &b), 0);
	assert_string_equal(bdev_uuid(b), "6f1d7e0a-1111-4222-8333-444455556666");
	assert_ptr_equal(bdev_find("m0"), a);
	assert_ptr_equal(bdev_find("m1"), b);
	assert_ptr_equal(bdev_find(bdev_uuid(a)), a);
	assert_ptr_equal(bdev_find("6F1D7E0A-1111-4222-8333-444455556666"), b);
	assert_null(bdev_find("nope"));
	assert_null(bdev_find(NULL));
	assert_int_equal(bdev_count(), 2);
	assert_string_equal(bdev_product_name(a), "Malloc disk");
	assert_int_equal(bdev_block_size(b), 4096);
	assert_int_equal(bdev_num_blocks(b), 16);

	/* duplicates: name, uuid, name equal to another's uuid */
	assert_int_equal(bdev_malloc_create("m0", NULL, 16, 512, &c), -EEXIST);
	assert_int_equal(bdev_malloc_create("m2", bdev_uuid(a), 16, 512, &c), -EEXIST);
	assert_int_equal(bdev_malloc_create(bdev_uuid(b), NULL, 16, 512, &c), -EEXIST);
	assert_int_equal(bdev_malloc_create("m2", "not-a-uuid", 16, 512, &c), -EINVAL);
	assert_int_equal(bdev_malloc_create("m2", NULL, 0, 512, &c), -EINVAL);
	assert_int_equal(bdev_malloc_create("m2", NULL, 16, 500, &c), -EINVAL);
	assert_int_equal(bdev_malloc_create("", NULL, 16, 512, &c), -EINVAL);
	assert_int_equal(bdev_count(), 2);

	/* registration order */
	assert_int_equal(bdev_malloc_create(NULL, NULL, 8, 512, &c), 0);
	assert_string_equal(bdev_name(c), "Malloc0");
	assert_ptr_equal(bdev_first(), a);
	assert_ptr_equal(bdev_next(a), b);
	assert_ptr_equal(bdev_next(b), c);
	assert_null(bdev_next(c));

	assert_int_equal(bdev_malloc_delete("m1"), 0);
	assert_null(bdev_find("6f1d7e0a-1111-4222-8333-444455556666"));
	assert_ptr_equal(bdev_next(a), c);
	assert_int_equal(bdev_malloc_delete("m1"), -ENODEV);
	/* the name and uuid can be reused */
	assert_int_equal(bdev_malloc_create("m1", "6f1d7e0a-1111-4222-8333-444455556666", 16, 512, &b), 0);
	assert_ptr_equal(bdev_next(c), b);
}

static int null_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
		       uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	cb(cb_arg, 0);
	return 0;
}

static int destroyed;
static void count_destroy(void *ctx) { destroyed++; }
static const struct bdev_ops null_ops = { .submit = null_submit, .destroy = count_destroy };

static void test_virtual_uuid_name(void **state)
{
	/* An lvol's name is its UUID and its alias lvs/name. */
	const char *u = "11111111-2222-4333-8444-555555555555";
	struct bdev_params p = { .name = u, .uuid = u, .product_name = "Logical Volume",
				 .block_size = 512, .num_blocks = 100, .thin = true,
				 .ops = &null_ops };
	struct bdev *b, *m;

	destroyed = 0;
	assert_int_equal(bdev_register(&p, &b), 0);
	assert_true(bdev_is_thin(b));
	assert_int_equal(bdev_alias_add(b, "lvs/vol"), 0);
	assert_ptr_equal(bdev_find("lvs/vol"), b);
	assert_ptr_equal(bdev_find(u), b);
	assert_int_equal(bdev_alias_count(b), 1);
	assert_string_equal(bdev_alias_get(b, 0), "lvs/vol");
	assert_null(bdev_alias_get(b, 1));
	assert_int_equal(bdev_alias_add(b, "lvs/vol"), -EEXIST);
	assert_int_equal(bdev_alias_add(b, u), -EEXIST);
	assert_int_equal(bdev_malloc_create("lvs/vol", NULL, 8, 512, &m), -EEXIST);
	assert_int_equal(bdev_malloc_create("x", NULL, 8, 512, &m), 0);
	assert_int_equal(bdev_alias_add(m, "lvs/vol"), -EEXIST);
	assert_int_equal(bdev_alias_add(m, "x"), -EEXIST);

	/* rename = add new alias, delete the old */
	assert_int_equal(bdev_alias_add(b, "lvs2/vol"), 0);
	assert_int_equal(bdev_alias_del(b, "lvs/vol"), 0);
	assert_int_equal(bdev_alias_del(b, "lvs/vol"), -ENOENT);
	assert_null(bdev_find("lvs/vol"));
	assert_ptr_equal(bdev_find("lvs2/vol"), b);
	assert_int_equal(bdev_alias_add(m, "lvs/vol"), 0);
	assert_ptr_equal(bdev_find("lvs/vol"), m);

	assert_int_equal(bdev_unregister(b), 0);
	assert_int_equal(destroyed, 1);
	assert_null(bdev_find(u));
	assert_null(bdev_find("lvs2/vol"));
	assert_ptr_equal(bdev_find("lvs/vol"), m);
}

static void test_many_bdevs(void **state)
{
	char name[32];
	struct bdev *b;

	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		assert_int_equal(bdev_malloc_create(name, NULL, 1, 512, &b), 0);
		snprintf(name, sizeof(name), "alias/%d", i);
		assert_int_equal(bdev_alias_add(b, name), 0);
	}
	assert_int_equal(bdev_count(), 3000);
	for (int i = 0; i < 3000; i += 7) {
		snprintf(name, sizeof(name), "alias/%d", i);
		b = bdev_find(name);
		assert_non_null(b);
		snprintf(name, sizeof(name), "b%d", i);
		assert_string_equal(bdev_name(b), name);
		assert_ptr_equal(bdev_find(bdev_uuid(b)), b);
	}
	for (int i = 0; i < 3000; i += 2) {
		snprintf(name, sizeof(name), "b%d", i);
		assert_int_equal(bdev_malloc_delete(name), 0);
	}
	assert_int_equal(bdev_count(), 1500);
	unsigned n = 0;
	for (b = bdev_first(); b; b = bdev_next(b)) {
		snprintf(name, sizeof(name), "b%u", 2 * n + 1);
		assert_string_equal(bdev_name(b), name);
		n++;
	}
	assert_int_equal(n, 1500);
	/* fini frees the rest (LeakSanitizer checks) */
}

static void test_claims(void **state)
{
	struct bdev *b;
	char buf[512] = {0};

	assert_int_equal(bdev_malloc_create("c", NULL, 8, 512, &b), 0);
	assert_int_equal(bdev_claim_type(b), BDEV_CLAIM_NONE);
	assert_null(bdev_claim_module(b));
	assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "lvol"), 0);
	assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "NVMe-oF Target"), -EPERM);
	assert_string_equal(bdev_claim_module(b), "lvol");
	assert_int_equal(bdev_claim_type(b), BDEV_CLAIM_EXCL_WRITE);
	/* claims do not block I/O */
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, buf, 0, 512), 0);
	assert_int_equal(bdev_malloc_delete("c"), -EBUSY);
	assert_int_equal(bdev_unregister(b), -EBUSY);
	bdev_release(b);
	assert_int_equal(bdev_claim_type(b), BDEV_CLAIM_NONE);
	assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "NVMe-oF Target"), 0);
	bdev_release(b);
	assert_int_equal(bdev_malloc_delete("c"), 0);
}

/* ------------------------------------------------------------ examine */

static struct bdev *examined[16];
static int nexamined;
static bool examine_async;

static void examine_start(struct bdev *b, void *arg)
{
	examined[nexamined++] = b;
	if (!examine_async) {
		bdev_examine_done(b);
		/* done, but other hooks still have to start on it */
		assert_int_equal(bdev_unregister(b), -EBUSY);
	}
}

static void waited(void *arg)
{
	(*(int *)arg)++;
}

static void test_examine(void **state)
{
	struct bdev *a, *b, *early;
	int w = 0;

	nexamined = 0;
	examine_async = true;
	/* registered before the hook: never examined */
	assert_int_equal(bdev_malloc_create("early", NULL, 8, 512, &early), 0);
	assert_int_equal(bdev_examine_register(examine_start, NULL), 0);
	assert_int_equal(bdev_wait_for_examine(waited, &w), 0);
	assert_int_equal(w, 0); /* deferred even when nothing is pending */
	t_wait(&w, 1);

	assert_int_equal(bdev_malloc_create("a", NULL, 8, 512, &a), 0);
	assert_int_equal(bdev_malloc_create("b", NULL, 8, 512, &b), 0);
	assert_int_equal(nexamined, 0); /* started from the loop, not inside register */
	assert_int_equal(bdev_examine_pending(), 2);
	assert_int_equal(bdev_wait_for_examine(waited, &w), 0);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(t_loop, 0);
	assert_int_equal(nexamined, 2);
	assert_ptr_equal(examined[0], a);
	assert_ptr_equal(examined[1], b);
	assert_int_equal(w, 1); /* still pending */
	assert_int_equal(bdev_unregister(a), -EBUSY); /* examine running */
	bdev_examine_done(a);
	ev_loop_run_once(t_loop, 0);
	assert_int_equal(w, 1);
	bdev_examine_done(b);
	t_wait(&w, 2);
	assert_int_equal(bdev_examine_pending(), 0);

	/* a bdev unregistered before its examine started is skipped */
	examine_async = false;
	assert_int_equal(bdev_malloc_create("c", NULL, 8, 512, &a), 0);
	assert_int_equal(bdev_examine_pending(), 1);
	assert_int_equal(bdev_malloc_delete("c"), 0);
	assert_int_equal(bdev_examine_pending(), 0);
	assert_int_equal(bdev_malloc_create("d", NULL, 8, 512, &a), 0);
	assert_int_equal(bdev_wait_for_examine(waited, &w), 0);
	t_wait(&w, 3);
	assert_int_equal(nexamined, 3);
	assert_ptr_equal(examined[2], a);
	(void)early;
}

/* An examine that finds something registers new bdevs (an lvstore's lvols),
 * which are examined too; the wait ends only after all of them. */
static int nested_seen;
static void nested_done_later(struct ev_loop *loop, void *arg)
{
	bdev_examine_done(arg);
}

static void nested_start(struct bdev *b, void *arg)
{
	nested_seen++;
	if (strcmp(bdev_name(b), "base") == 0) {
		struct bdev_params p = { .name = "child", .block_size = 512, .num_blocks = 4,
					 .ops = &null_ops };
		struct bdev *c;
		assert_int_equal(bdev_register(&p, &c), 0);
		assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "lvol"), 0);
	}
	/* finish later, from the loop */
	assert_int_equal(ev_defer(t_loop, nested_done_later, b), 0);
}

static void test_examine_nested(void **state)
{
	struct bdev *b;
	int w = 0;

	assert_int_equal(bdev_examine_register(nested_start, NULL), 0);
	assert_int_equal(bdev_malloc_create("base", NULL, 8, 512, &b), 0);
	assert_int_equal(bdev_wait_for_examine(waited, &w), 0);
	t_wait(&w, 1);
	assert_int_equal(nested_seen, 2);
	assert_non_null(bdev_find("child"));
	assert_int_equal(bdev_examine_pending(), 0);
	assert_int_equal(bdev_claim_type(b), BDEV_CLAIM_EXCL_WRITE);
	/* fini with a claimed base: forced, reverse order */
}

/* -------------------------------------------------------------- I/O */

static void test_io_validation(void **state)
{
	struct bdev *b;
	struct done d = {0};
	char buf[8192];

	assert_int_equal(bdev_malloc_create("v", NULL, 8, 512, &b), 0);
	assert_int_equal(bdev_read(b, buf, 1, 512, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 0, 511, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 0, 0, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 4096, 512, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 3584, 1024, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, UINT64_MAX - 511, 512, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_write(b, buf, 512, UINT64_MAX - 511, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_write(b, NULL, 0, 512, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 0, 512, NULL, NULL), -EINVAL);
	assert_int_equal(bdev_unmap(b, 0, 4608, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_write_zeroes(b, 512, 3, t_io_cb, &d), -EINVAL);
	assert_int_equal(bdev_read(b, buf, 3584, 512, t_io_cb, &d), 0);
	assert_int_equal(d.calls, 0);
	t_wait(&d.calls, 1);
	assert_int_equal(d.status, 0);
	assert_int_equal(bdev_io_outstanding(b), 0);
}

struct chain {
	struct bdev *b;
	char buf[512];
	int left;
	int depth, max_depth;
	int done;
};

static void chain_cb(void *arg, int status)
{
	struct chain *c = arg;

	assert_int_equal(status, 0);
	c->depth++;
	if (c->depth > c->max_depth)
		c->max_depth = c->depth;
	if (--c->left > 0)
		assert_int_equal(bdev_read(c->b, c->buf, 0, 512, chain_cb, c), 0);
	else
		c->done = 1;
	c->depth--;
}

static void test_completion_never_inline(void **state)
{
	struct bdev *b;
	struct chain c = { .left = 1000 };

	assert_int_equal(bdev_malloc_create("n", NULL, 8, 512, &b), 0);
	c.b = b;
	assert_int_equal(bdev_read(b, c.buf, 0, 512, chain_cb, &c), 0);
	assert_int_equal(c.max_depth, 0);
	t_wait(&c.done, 1);
	assert_int_equal(c.max_depth, 1); /* each completion runs from the loop, no recursion */
}

static void test_malloc_data(void **state)
{
	struct bdev *b;
	uint8_t w[8192], r[8192];

	assert_int_equal(bdev_malloc_create("d", NULL, 64, 4096, &b), 0);
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 0, 8192), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 4096 * 62, 8192), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 4096 * 62, 8192), 0);
	assert_memory_equal(w, r, 8192);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 4096 * 62, 4096), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 4096 * 62, 8192), 0);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	assert_memory_equal(w + 4096, r + 4096, 4096);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 4096 * 63, 4096), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 4096 * 63, 4096), 0);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
}

/* bdev_read_direct: a pointer into malloc memory, -ENOTSUP elsewhere, the
 * same range rules as bdev_read, counted as a read, and a reference that
 * keeps the memory past the bdev's deletion. */
static void test_read_direct(void **state)
{
	struct bdev *b, *f, *v;
	struct bdev_mem *ref = NULL, *ref2 = NULL;
	const void *p = NULL;
	uint8_t w[8192];
	struct bdev_params vp = { .name = "vd", .block_size = 512, .num_blocks = 8, .ops = &null_ops };

	assert_int_equal(bdev_malloc_create("zd", NULL, 64, 4096, &b), 0);
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 11 + 1);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 4096 * 10, 8192), 0);
	bdev_stat_reset(b);
	assert_int_equal(bdev_read_direct(b, 4096 * 10, 8192, &p, &ref), 0);
	assert_non_null(ref);
	assert_memory_equal(p, w, 8192);
	assert_int_equal(bdev_stat(b)->num_read_ops, 1);
	assert_int_equal(bdev_stat(b)->bytes_read, 8192);
	assert_int_equal(bdev_io_outstanding(b), 0); /* synchronous: nothing in flight */
	/* not a snapshot: a later write shows through (documented) */
	memset(w, 0xA5, 4096);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 4096 * 10, 4096), 0);
	assert_int_equal(((const uint8_t *)p)[0], 0xA5);
	bdev_mem_put(ref);
	bdev_mem_put(NULL);

	/* range and argument checks (nothing counted, no reference taken) */
	ref = NULL;
	assert_int_equal(bdev_read_direct(b, 0, 0, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 512, 4096, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 0, 4096 + 512, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 4096 * 63, 8192, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 4096 * 64, 4096, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, UINT64_MAX - 4095, 4096, &p, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 0, 4096, NULL, &ref), -EINVAL);
	assert_int_equal(bdev_read_direct(b, 0, 4096, &p, NULL), -EINVAL);
	assert_int_equal(bdev_read_direct(NULL, 0, 4096, &p, &ref), -EINVAL);
	assert_null(ref);
	assert_int_equal(bdev_read_direct(b, 4096 * 63, 4096, &p, &ref), 0); /* last block */
	bdev_mem_put(ref);
	assert_int_equal(bdev_stat(b)->num_read_ops, 2);

	/* kinds without it */
	assert_int_equal(bdev_fault_create("zf", 16, 512, &f), 0);
	assert_int_equal(bdev_read_direct(f, 0, 512, &p, &ref), -ENOTSUP);
	assert_int_equal(bdev_register(&vp, &v), 0);
	assert_int_equal(bdev_read_direct(v, 0, 512, &p, &ref), -ENOTSUP);

	/* lifetime: references keep the memory after the bdev is deleted. 64 MiB
	 * is above glibc's largest mmap threshold, so a premature free would
	 * unmap it and the reads below would crash (ASan: use after free). */
	assert_int_equal(bdev_malloc_create("zbig", NULL, 16384, 4096, &b), 0);
	memset(w, 0x3C, 4096);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 64ull << 20 >> 1, 4096), 0);
	assert_int_equal(bdev_read_direct(b, 64ull << 20 >> 1, 4096, &p, &ref), 0);
	assert_int_equal(bdev_read_direct(b, 64ull << 20 >> 1, 4096, &p, &ref2), 0);
	assert_ptr_equal(ref, ref2);
	assert_int_equal(bdev_malloc_delete("zbig"), 0); /* a reference is not I/O: no -EBUSY */
	assert_null(bdev_find("zbig"));
	assert_memory_equal(p, w, 4096);
	bdev_mem_put(ref);
	assert_memory_equal(p, w, 4096);
	bdev_mem_put(ref2); /* the memory goes now */
}

static void test_stats(void **state)
{
	struct bdev *b;
	char buf[4096] = {0};
	const struct bdev_io_stat *s;

	assert_int_equal(bdev_tick_rate(), 1000000000ull);
	uint64_t t0 = bdev_ticks();
	assert_true(bdev_ticks() >= t0);
	assert_int_equal(bdev_malloc_create("s", NULL, 64, 512, &b), 0);
	s = bdev_stat(b);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, buf, 0, 4096), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, buf, 0, 512), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 0, 1024), 0);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 0, 2048), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 0, 2048), 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(s->num_write_ops, 2);
	assert_int_equal(s->bytes_written, 4608);
	assert_int_equal(s->num_read_ops, 1);
	assert_int_equal(s->bytes_read, 1024);
	assert_int_equal(s->num_unmap_ops, 1);
	assert_int_equal(s->bytes_unmapped, 2048);
	assert_true(s->min_unmap_latency_ticks > 0);
	assert_int_equal(s->min_unmap_latency_ticks, s->max_unmap_latency_ticks);
	assert_int_equal(s->num_io_errors, 0);
	assert_true(s->write_latency_ticks > 0);
	assert_true(s->min_write_latency_ticks <= s->max_write_latency_ticks);
	assert_true(s->min_read_latency_ticks > 0);
	assert_true(s->max_read_latency_ticks >= s->min_read_latency_ticks);
	assert_true(s->write_latency_ticks >= s->max_write_latency_ticks);
	bdev_stat_reset(b);
	assert_int_equal(s->num_write_ops, 0);
}

static void test_num_blocks_set(void **state)
{
	struct bdev *b;
	char buf[512];
	struct done d = {0};
	struct bdev_params p = { .name = "v", .block_size = 512, .num_blocks = 4, .ops = &null_ops };

	assert_int_equal(bdev_register(&p, &b), 0);
	assert_int_equal(bdev_read(b, buf, 2048, 512, t_io_cb, &d), -EINVAL);
	bdev_num_blocks_set(b, 8);
	assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 2048, 512), 0);
}

/* Holds completions until released: checks unregister refuses while I/O is out. */
static bdev_io_cb held_cb;
static void *held_arg;
static int hold_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
		       uint64_t len, bdev_io_cb cb, void *cb_arg)
{
	if (type == BDEV_IO_UNMAP)
		return -ENOTSUP;
	held_cb = cb;
	held_arg = cb_arg;
	return 0;
}
static const struct bdev_ops hold_ops = { .submit = hold_submit };

static void test_outstanding_and_refusal(void **state)
{
	struct bdev *b;
	char buf[512];
	struct done d = {0};
	struct bdev_params p = { .name = "h", .block_size = 512, .num_blocks = 4, .ops = &hold_ops };

	assert_int_equal(bdev_register(&p, &b), 0);
	assert_int_equal(bdev_unmap(b, 0, 512, t_io_cb, &d), -ENOTSUP);
	assert_int_equal(bdev_io_outstanding(b), 0);
	assert_int_equal(bdev_read(b, buf, 0, 512, t_io_cb, &d), 0);
	assert_int_equal(bdev_io_outstanding(b), 1);
	assert_int_equal(bdev_unregister(b), -EBUSY);
	/* completion from the loop context (not inside submit): delivered at once */
	held_cb(held_arg, -EIO);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, -EIO);
	assert_int_equal(bdev_stat(b)->num_read_ops, 0); /* failures are not counted */
	assert_int_equal(bdev_stat(b)->num_io_errors, 1);
	assert_int_equal(bdev_unregister(b), 0);
}

static void test_module_fini_order(void **state)
{
	struct bdev_params p = { .block_size = 512, .num_blocks = 4, .ops = &null_ops };
	struct bdev *b;

	destroyed = 0;
	p.name = "x1";
	assert_int_equal(bdev_register(&p, &b), 0);
	p.name = "x2";
	assert_int_equal(bdev_register(&p, &b), 0);
	assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "lvol"), 0);
	bdev_module_fini();
	assert_int_equal(destroyed, 2);
	assert_int_equal(bdev_count(), 0);
	assert_int_equal(bdev_module_init(t_loop), 0);
	assert_int_equal(bdev_module_init(t_loop), -EALREADY);
}

/* Allocation failures on every create path: no leak, no half registration. */
static void test_alloc_faults(void **state)
{
	struct bdev *b;
	int rc, ok = 0;

	for (long n = 0; n < 40 && !ok; n++) {
		mem_fault_set(n);
		rc = bdev_malloc_create("f", NULL, 16, 512, &b);
		mem_fault_clear();
		if (rc == 0) {
			ok = 1;
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_null(bdev_find("f"));
		assert_int_equal(bdev_count(), 0);
	}
	assert_true(ok);
	/* alias add and I/O under faults */
	for (long n = 0; n < 10; n++) {
		mem_fault_set(n);
		rc = bdev_alias_add(b, "al");
		mem_fault_clear();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_null(bdev_find("al"));
	}
	assert_ptr_equal(bdev_find("al"), b);
	/* a completion whose deferred call cannot be allocated still arrives */
	{
		char buf[512];
		struct done d = {0};
		assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 0, 512), 0); /* pool warmed */
		mem_fault_set(0);
		assert_int_equal(bdev_read(b, buf, 0, 512, t_io_cb, &d), 0);
		mem_fault_clear();
		assert_int_equal(d.calls, 0);
		t_wait(&d.calls, 1);
		assert_int_equal(d.status, 0);
	}
	ok = 0;
	for (long n = 0; n < 40 && !ok; n++) {
		mem_fault_set(n);
		rc = bdev_fault_create("ff", 64, 512, &b);
		mem_fault_clear();
		if (rc == 0)
			ok = 1;
		else
			assert_int_equal(rc, -ENOMEM);
	}
	assert_true(ok);
	for (long n = 0; n < 10; n++) {
		struct done d = {0};
		mem_fault_set(n);
		rc = bdev_wait_for_examine(waited, &d.calls);
		mem_fault_clear();
		if (rc == 0) {
			t_wait(&d.calls, 1);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_lookup, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_virtual_uuid_name, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_many_bdevs, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_claims, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_examine, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_examine_nested, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_io_validation, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_completion_never_inline, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_malloc_data, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_read_direct, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_stats, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_num_blocks_set, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_outstanding_and_refusal, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_module_fini_order, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_faults, t_setup, t_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
