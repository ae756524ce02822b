/* test_bdev_fault.c: unit tests of the fault-injecting test bdev: volatile
 * write cache, power loss (drop all, keep all, seeded subsets, overwritten
 * blocks, torn writes), fail the Nth I/O, crash after N writes. */
#include "bdev_test_util.h"

#define BS 512

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
	memset(p, v, n);
}

static uint8_t block_val(struct bdev *b, uint64_t blk)
{
	uint8_t r[BS];

	assert_int_equal(t_rw(b, BDEV_IO_READ, r, blk * BS, BS), 0);
	for (int i = 1; i < BS; i++)
		assert_int_equal(r[i], r[0]);
	return r[0];
}

static void put(struct bdev *b, uint64_t blk, uint64_t nblk, uint8_t v)
{
	uint8_t w[BS * 8];

	assert_true(nblk <= 8);
	fill(w, sizeof(w), v);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, blk * BS, nblk * BS), 0);
}

static void test_volatile_cache(void **state)
{
	struct bdev *b;

	assert_int_equal(bdev_fault_create("f", 1024, BS, &b), 0);
	assert_string_equal(bdev_product_name(b), "Fault disk");
	assert_int_equal(block_val(b, 5), 0);
	put(b, 5, 1, 0xaa);
	put(b, 600, 2, 0xbb);
	assert_int_equal(block_val(b, 5), 0xaa); /* visible before flush */
	assert_int_equal(bdev_fault_pending_count(b), 2);
	assert_int_equal(bdev_fault_write_count(b), 2);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(bdev_fault_pending_count(b), 0);
	put(b, 5, 1, 0xcc);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 600 * BS, BS), 0);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 601 * BS, BS), 0);
	put(b, 7, 1, 0xdd);
	assert_int_equal(block_val(b, 600), 0);
	assert_int_equal(bdev_fault_write_count(b), 6);

	assert_int_equal(bdev_fault_power_loss(b, 0.0, 1), 0);
	assert_int_equal(block_val(b, 5), 0xaa);
	assert_int_equal(block_val(b, 600), 0xbb);
	assert_int_equal(block_val(b, 601), 0xbb);
	assert_int_equal(block_val(b, 7), 0);
	assert_int_equal(bdev_fault_pending_count(b), 0);

	/* keep everything */
	put(b, 5, 1, 0x11);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 600 * BS, 2 * BS), 0);
	assert_int_equal(bdev_fault_power_loss(b, 1.0, 1), 0);
	assert_int_equal(block_val(b, 5), 0x11);
	assert_int_equal(block_val(b, 600), 0);
	/* and what survived is durable now */
	assert_int_equal(bdev_fault_power_loss(b, 0.0, 1), 0);
	assert_int_equal(block_val(b, 5), 0x11);
	assert_int_equal(block_val(b, 601), 0);
}

/* Durable A, then B and C written to the same block without a flush: a
 * power loss leaves A, B or C; the same seed gives the same outcome. */
static void test_overwrite_outcomes(void **state)
{
	struct bdev *b;
	int seen[256] = {0};

	assert_int_equal(bdev_fault_create("f", 16, BS, &b), 0);
	for (uint64_t seed = 0; seed < 200; seed++) {
		put(b, 3, 1, 0xa0);
		assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
		put(b, 3, 1, 0xb0);
		put(b, 3, 1, 0xc0);
		assert_int_equal(bdev_fault_power_loss(b, 0.5, seed), 0);
		uint8_t v = block_val(b, 3);
		assert_true(v == 0xa0 || v == 0xb0 || v == 0xc0);
		seen[v]++;

		/* determinism */
		put(b, 3, 1, 0xa0);
		assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
		put(b, 3, 1, 0xb0);
		put(b, 3, 1, 0xc0);
		assert_int_equal(bdev_fault_power_loss(b, 0.5, seed), 0);
		assert_int_equal(block_val(b, 3), v);
	}
	assert_true(seen[0xa0] > 20);
	assert_true(seen[0xb0] > 20); /* the older write survived, the newer was lost */
	assert_true(seen[0xc0] > 60);
}

static void test_torn_writes(void **state)
{
	struct bdev *b;
	struct bdev_fault_opts o = { .torn_writes = false };
	int torn = 0;

	assert_int_equal(bdev_fault_create("f", 64, BS, &b), 0);
	assert_int_equal(bdev_fault_configure(b, &o), 0);
	for (uint64_t seed = 0; seed < 50; seed++) {
		put(b, 8, 8, 0x10);
		assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
		put(b, 8, 8, 0x20);
		assert_int_equal(bdev_fault_power_loss(b, 0.5, seed), 0);
		uint8_t first = block_val(b, 8);
		for (int i = 1; i < 8; i++)
			assert_int_equal(block_val(b, 8 + i), first); /* whole write or nothing */
	}
	o.torn_writes = true;
	assert_int_equal(bdev_fault_configure(b, &o), 0);
	for (uint64_t seed = 0; seed < 50; seed++) {
		put(b, 8, 8, 0x10);
		assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
		put(b, 8, 8, 0x20);
		assert_int_equal(bdev_fault_power_loss(b, 0.5, seed), 0);
		uint8_t first = block_val(b, 8);
		for (int i = 1; i < 8; i++) {
			uint8_t v = block_val(b, 8 + i);
			assert_true(v == 0x10 || v == 0x20);
			if (v != first)
				torn++;
		}
	}
	assert_true(torn > 0);
}

static void test_fail_nth(void **state)
{
	struct bdev *b;
	struct bdev_fault_opts o = { .fail_io_nth = 3 };
	uint8_t w[BS], r[BS];

	assert_int_equal(bdev_fault_create("f", 16, BS, &b), 0);
	put(b, 1, 1, 0x01);
	assert_int_equal(bdev_fault_configure(b, &o), 0);
	fill(w, BS, 0x02);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 0, BS), 0);          /* 1 */
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);       /* 2 */
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, BS, BS), -EIO);     /* 3: fails */
	assert_int_equal(block_val(b, 1), 0x01);                      /* 4: data unchanged */
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, BS, BS), 0);        /* 5 */
	assert_int_equal(block_val(b, 1), 0x02);
	assert_int_equal(bdev_fault_write_count(b), 2); /* the failed one is not counted */
	assert_int_equal(bdev_stat(b)->num_write_ops, 2);
}

static void test_crash_after_writes(void **state)
{
	struct bdev *b;
	struct bdev_fault_opts o = { .crash_after_writes = 3 };
	uint8_t r[BS];

	assert_int_equal(bdev_fault_create("f", 16, BS, &b), 0);
	put(b, 0, 1, 0x01);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(bdev_fault_configure(b, &o), 0);
	put(b, 1, 1, 0x02);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	put(b, 2, 1, 0x03);
	assert_false(bdev_fault_crashed(b));
	put(b, 3, 1, 0x04); /* third write: taken, then the power goes */
	assert_true(bdev_fault_crashed(b));
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), -EIO);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 0, BS), -EIO);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, r, 0, BS), -EIO);
	assert_int_equal(bdev_fault_write_count(b), 4);
	assert_int_equal(bdev_fault_power_loss(b, 0.0, 9), 0);
	assert_false(bdev_fault_crashed(b));
	assert_int_equal(block_val(b, 0), 0x01);
	assert_int_equal(block_val(b, 1), 0x02);
	assert_int_equal(block_val(b, 2), 0);
	assert_int_equal(block_val(b, 3), 0);
	/* disarmed: writes work again */
	for (int i = 0; i < 5; i++)
		put(b, 4, 1, 0x05);
	assert_false(bdev_fault_crashed(b));
}

static void test_big_sparse(void **state)
{
	struct bdev *b;
	uint8_t w[4096], r[4096];
	uint64_t last = (16ull << 30) - 4096;

	/* 16 GiB costs only the chunk tables */
	assert_int_equal(bdev_fault_create("big", (16ull << 30) / 4096, 4096, &b), 0);
	fill(w, sizeof(w), 0x5a);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, last, 4096), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, last, 4096), 0);
	assert_memory_equal(w, r, 4096);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 0, 4096), 0);
	assert_int_equal(r[0], 0);
	/* a write across a chunk boundary */
	uint8_t *big = malloc(256 * 1024), *big2 = malloc(256 * 1024);
	for (size_t i = 0; i < 256 * 1024; i++)
		big[i] = (uint8_t)(i * 31);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, big, 61440, 256 * 1024), 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 65536, 4096), 0);
	assert_int_equal(bdev_fault_power_loss(b, 0.0, 0), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, big2, 61440, 256 * 1024), 0);
	assert_memory_equal(big, big2, 256 * 1024);
	free(big);
	free(big2);
	assert_int_equal(bdev_fault_delete("big"), 0);
	assert_int_equal(bdev_fault_delete("big"), -ENODEV);
}

static void test_write_enomem(void **state)
{
	struct bdev *b;
	uint8_t w[BS];
	struct done d = {0};
	int rc = -1;

	assert_int_equal(bdev_fault_create("f", 1024, BS, &b), 0);
	fill(w, BS, 0x77);
	for (long n = 0; n < 10; n++) {
		mem_fault_set(n);
		rc = bdev_write(b, w, 700 * BS, BS, t_io_cb, &d);
		mem_fault_clear();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(bdev_fault_pending_count(b), 0);
		assert_int_equal(block_val(b, 700), 0);
	}
	assert_int_equal(rc, 0);
	t_wait(&d.calls, 1);
	assert_int_equal(block_val(b, 700), 0x77);
	assert_int_equal(bdev_fault_power_loss(b, 0.0, 0), 0);
	assert_int_equal(block_val(b, 700), 0);
	assert_int_equal(bdev_fault_configure(NULL, &(struct bdev_fault_opts){0}), -EINVAL);
}

/* A write refused for lack of memory part-way through reserving its chunks
 * must leave both images as they were: a later zero write and flush of the
 * same chunk used to find `cur` allocated but `dur` not, and crash. */
static void test_write_enomem_then_flush(void **state)
{
	uint8_t w[BS];

	(void)state;
	fill(w, BS, 0x5a);
	for (long n = 0; n < 8; n++) {
		struct bdev *b;
		struct done d = {0};
		char name[16];
		int rc;

		snprintf(name, sizeof(name), "f%ld", n);
		assert_int_equal(bdev_fault_create(name, 1024, BS, &b), 0);
		mem_fault_set(n);
		rc = bdev_write(b, w, 300 * BS, BS, t_io_cb, &d);
		mem_fault_clear();
		if (rc == 0)
			t_wait(&d.calls, 1);
		else
			assert_int_equal(rc, -ENOMEM);
		assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 300 * BS, BS), 0);
		assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
		assert_int_equal(block_val(b, 300), 0);
		assert_int_equal(bdev_fault_power_loss(b, 1.0, 0), 0);
		assert_int_equal(block_val(b, 300), 0);
	}
}

/*
 * Random model check: blocks hold a one-byte "version" (every byte of the
 * block). The model keeps each block's durable value and every value pending
 * since the last flush. After a power loss each block must hold its durable
 * value or one of its pending values; keep 0 gives exactly the durable
 * image, keep 1 exactly the latest. Two devices fed the same operations and
 * the same seed end identical.
 */
#define MB 64
struct model {
	uint8_t dur[MB], cur[MB];
	uint8_t pend[MB][64];
	int npend[MB];
};

static void model_write(struct model *m, int blk, int n, uint8_t v)
{
	for (int i = blk; i < blk + n; i++) {
		m->cur[i] = v;
		if (m->npend[i] < 64)
			m->pend[i][m->npend[i]++] = v;
	}
}

static void test_random_model(void **state)
{
	struct bdev *a, *b;
	struct model m;
	uint64_t rng = 12345;
	uint8_t buf[8 * BS];
	uint8_t ver = 1;

	assert_int_equal(bdev_fault_create("a", MB, BS, &a), 0);
	assert_int_equal(bdev_fault_create("b", MB, BS, &b), 0);
	memset(&m, 0, sizeof(m));
	int rounds = getenv("DISKENGINE_STRESS") ? 20000 : 300;
	for (int round = 0; round < rounds; round++) {
		/* odd rounds: single blocks survive on their own (torn writes) */
		struct bdev_fault_opts o = { .torn_writes = round & 1 };
		assert_int_equal(bdev_fault_configure(a, &o), 0);
		assert_int_equal(bdev_fault_configure(b, &o), 0);
		int nops = (int)(rng_next(&rng) % 12);
		for (int k = 0; k < nops; k++) {
			int blk = (int)(rng_next(&rng) % MB);
			int n = 1 + (int)(rng_next(&rng) % 8);
			if (blk + n > MB)
				n = MB - blk;
			unsigned op = rng_next(&rng) % 10;
			if (op < 6) {
				ver = ver == 255 ? 1 : ver + 1;
				memset(buf, ver, sizeof(buf));
				assert_int_equal(t_rw(a, BDEV_IO_WRITE, buf, blk * BS, n * BS), 0);
				assert_int_equal(t_rw(b, BDEV_IO_WRITE, buf, blk * BS, n * BS), 0);
				model_write(&m, blk, n, ver);
			} else if (op < 8) {
				enum bdev_io_type t = op == 6 ? BDEV_IO_WRITE_ZEROES : BDEV_IO_UNMAP;
				assert_int_equal(t_rw(a, t, NULL, blk * BS, n * BS), 0);
				assert_int_equal(t_rw(b, t, NULL, blk * BS, n * BS), 0);
				model_write(&m, blk, n, 0);
			} else if (op == 8) {
				assert_int_equal(t_rw(a, BDEV_IO_FLUSH, NULL, 0, 0), 0);
				assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
				memcpy(m.dur, m.cur, MB);
				memset(m.npend, 0, sizeof(m.npend));
			} else {
				int i = (int)(rng_next(&rng) % MB);
				assert_int_equal(block_val(a, i), m.cur[i]);
			}
		}
		double keep = (double)(rng_next(&rng) % 5) / 4.0; /* 0, .25, .5, .75, 1 */
		uint64_t seed = rng_next(&rng);
		assert_int_equal(bdev_fault_power_loss(a, keep, seed), 0);
		assert_int_equal(bdev_fault_power_loss(b, keep, seed), 0);
		for (int i = 0; i < MB; i++) {
			uint8_t v = block_val(a, i);
			assert_int_equal(block_val(b, i), v);
			if (keep == 0.0) {
				assert_int_equal(v, m.dur[i]);
			} else if (keep == 1.0) {
				assert_int_equal(v, m.cur[i]);
			} else {
				bool ok = v == m.dur[i];
				for (int j = 0; j < m.npend[i] && !ok; j++)
					ok = v == m.pend[i][j];
				assert_true(ok);
			}
			m.dur[i] = m.cur[i] = v;
			m.npend[i] = 0;
		}
		assert_int_equal(bdev_fault_pending_count(a), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_volatile_cache, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_overwrite_outcomes, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_torn_writes, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_fail_nth, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_writes, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_big_sparse, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_write_enomem, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_write_enomem_then_flush, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_random_model, t_setup, t_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
