/* test_bdev_aio.c: unit tests of the io_uring file bdev with real temporary
 * files: create errors, data round trips checked against the file itself,
 * write zeroes / unmap / flush (incl. the zero-write fallback on tmpfs),
 * rescan, more requests than the ring holds, read-only, short reads. */
#include "bdev_test_util.h"

#include <fcntl.h>
#include <sys/stat.h>

static char t_path[256];

static int aio_setup(void **state)
{
	snprintf(t_path, sizeof(t_path), "/tmp/de-bdev-aio-XXXXXX");
	int fd = mkstemp(t_path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
	return t_setup(state);
}

static int aio_teardown(void **state)
{
	t_teardown(state);
	unlink(t_path);
	return 0;
}

static void file_read(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void test_create_errors(void **state)
{
	struct bdev *b, *b2;

	assert_int_equal(bdev_aio_create("a", "/tmp/de-no-such-file-xyz", 0, false, NULL, &b), -ENOENT);
	assert_int_equal(bdev_aio_create("a", t_path, 1000, false, NULL, &b), -EINVAL);
	assert_int_equal(bdev_aio_create("a", t_path, 0, false, "zzz", &b), -EINVAL);
	assert_int_equal(bdev_aio_create("a", "/tmp", 0, false, NULL, &b), -EISDIR);
	assert_int_equal(bdev_count(), 0);
	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b), 0);
	assert_int_equal(bdev_block_size(b), 512);
	assert_int_equal(bdev_num_blocks(b), 8192);
	assert_string_equal(bdev_product_name(b), "AIO disk");
	assert_string_equal(bdev_aio_filename(b), t_path);
	assert_int_equal(bdev_aio_block_size_override(b), 0);
	assert_false(bdev_aio_readonly(b));
	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b2), -EEXIST);
	assert_int_equal(bdev_aio_create("a2", t_path, 4096, false, NULL, &b2), 0);
	assert_int_equal(bdev_block_size(b2), 4096);
	assert_int_equal(bdev_num_blocks(b2), 1024);
	assert_int_equal(bdev_aio_block_size_override(b2), 4096);
	assert_null(bdev_aio_filename(NULL));
	assert_int_equal(bdev_malloc_delete("a2"), -ENODEV);
	assert_int_equal(bdev_aio_delete("a2"), 0);
	assert_int_equal(bdev_aio_delete("a2"), -ENODEV);

	/* too small for one block */
	int fd = open(t_path, O_RDWR);
	assert_int_equal(ftruncate(fd, 100), 0);
	close(fd);
	assert_int_equal(bdev_aio_create("small", t_path, 0, false, NULL, &b2), -EINVAL);
}

static void test_round_trip(void **state)
{
	struct bdev *b;
	size_t n = 2 << 20;
	uint8_t *w = malloc(n), *r = malloc(n);

	for (size_t i = 0; i < n; i++)
		w[i] = (uint8_t)(i * 13 + (i >> 12));
	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 1 << 20, n), 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 1 << 20, n), 0);
	assert_memory_equal(w, r, n);
	memset(r, 0, n);
	file_read(t_path, r, n, 1 << 20);
	assert_memory_equal(w, r, n);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 4096, 512), 0);
	assert_int_equal(r[0], 0);
	assert_int_equal(bdev_stat(b)->bytes_written, n);
	assert_int_equal(bdev_stat(b)->num_read_ops, 2);
	assert_int_equal(bdev_read(b, r, 4 << 20, 512, t_io_cb, NULL), -EINVAL);
	free(w);
	free(r);
}

static void zero_checks(const char *path)
{
	struct bdev *b;
	uint8_t w[65536], r[65536];

	memset(w, 0xab, sizeof(w));
	assert_int_equal(bdev_aio_create("z", path, 4096, false, NULL, &b), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 0, sizeof(w)), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 8192, 16384), 0);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 40960, 8192), 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 0, sizeof(r)), 0);
	for (size_t i = 0; i < sizeof(r); i++) {
		bool zero = (i >= 8192 && i < 24576) || (i >= 40960 && i < 49152);
		assert_int_equal(r[i], zero ? 0 : 0xab);
	}
	file_read(path, r, sizeof(r), 0);
	assert_int_equal(r[8192], 0);
	assert_int_equal(r[45000], 0);
	assert_int_equal(r[30000], 0xab);
	/* a zero range larger than the zero buffer of the fallback */
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, 3 << 20, sizeof(w)), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 1 << 20, 3 << 20), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, 3 << 20, sizeof(r)), 0);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(r[i], 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4 << 20); /* KEEP_SIZE */
	assert_int_equal(bdev_aio_delete("z"), 0);
}

static void test_zeroes_unmap_flush(void **state)
{
	zero_checks(t_path);
}

/* tmpfs refuses FALLOC_FL_ZERO_RANGE: the zero-write fallback runs. */
static void test_zero_fallback_tmpfs(void **state)
{
	char p[] = "/dev/shm/de-bdev-aio-XXXXXX";
	int fd = mkstemp(p);

	if (fd < 0) {
		skip();
		return;
	}
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
	zero_checks(p);
	unlink(p);
}

static void test_rescan(void **state)
{
	struct bdev *b;
	uint8_t w[4096], r[4096];

	assert_int_equal(bdev_aio_create("a", t_path, 4096, false, NULL, &b), 0);
	assert_int_equal(bdev_num_blocks(b), 1024);
	assert_int_equal(bdev_aio_rescan(b), 0);
	assert_int_equal(bdev_num_blocks(b), 1024);
	assert_int_equal(truncate(t_path, 8 << 20), 0);
	assert_int_equal(bdev_aio_rescan(b), 0);
	assert_int_equal(bdev_num_blocks(b), 2048);
	memset(w, 0x3c, sizeof(w));
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, w, (8 << 20) - 4096, 4096), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, (8 << 20) - 4096, 4096), 0);
	assert_memory_equal(w, r, 4096);
	/* shrinking a claimed bdev is refused */
	assert_int_equal(bdev_claim(b, BDEV_CLAIM_EXCL_WRITE, "lvol"), 0);
	assert_int_equal(truncate(t_path, 6 << 20), 0);
	assert_int_equal(bdev_aio_rescan(b), -EBUSY);
	assert_int_equal(bdev_num_blocks(b), 2048);
	/* a read past the shrunken end cannot make progress: -EIO, not a hang */
	assert_int_equal(t_rw(b, BDEV_IO_READ, r, (8 << 20) - 4096, 4096), -EIO);
	bdev_release(b);
	assert_int_equal(bdev_aio_rescan(b), 0);
	assert_int_equal(bdev_num_blocks(b), 1536);
	struct bdev *m;
	assert_int_equal(bdev_malloc_create("m", NULL, 8, 512, &m), 0);
	assert_int_equal(bdev_aio_rescan(m), -ENODEV);
}

struct many {
	int done, errors;
};

static void many_cb(void *arg, int status)
{
	struct many *m = arg;

	m->done++;
	if (status)
		m->errors++;
}

static void test_many_in_flight(void **state)
{
	struct bdev *b;
	enum { N = 1024 }; /* four times the ring */
	static uint8_t w[N][4096], r[N][4096];
	struct many m = {0};

	assert_int_equal(bdev_aio_create("a", t_path, 4096, false, NULL, &b), 0);
	for (int i = 0; i < N; i++) {
		memset(w[i], i & 0xff, 4096);
		w[i][0] = (uint8_t)(i >> 8);
		assert_int_equal(bdev_write(b, w[i], (uint64_t)i * 4096, 4096, many_cb, &m), 0);
	}
	assert_int_equal(m.done, 0);
	assert_int_equal(bdev_io_outstanding(b), N);
	t_wait(&m.done, N);
	assert_int_equal(m.errors, 0);
	m.done = 0;
	for (int i = 0; i < N; i++)
		assert_int_equal(bdev_read(b, r[i], (uint64_t)i * 4096, 4096, many_cb, &m), 0);
	assert_int_equal(bdev_flush(b, many_cb, &m), 0);
	t_wait(&m.done, N + 1);
	assert_int_equal(m.errors, 0);
	assert_memory_equal(w, r, sizeof(w));
	assert_int_equal(bdev_io_outstanding(b), 0);
}

static void test_readonly(void **state)
{
	struct bdev *b;
	uint8_t buf[512] = {1};

	assert_int_equal(bdev_aio_create("ro", t_path, 0, true, NULL, &b), 0);
	assert_true(bdev_aio_readonly(b));
	assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 0, 512), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, buf, 0, 512), -EROFS);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 0, 512), -EROFS);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, 0, 512), -EROFS);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
}

static void test_fini_with_io_in_flight(void **state)
{
	struct bdev *b;
	static uint8_t buf[64][4096];
	struct many m = {0};

	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(bdev_write(b, buf[i], (uint64_t)i * 4096, 4096, many_cb, &m), 0);
	assert_int_equal(bdev_unregister(b), -EBUSY);
	/* fini right away: nothing leaks, no callback after fini */
	bdev_module_fini();
	assert_int_equal(bdev_module_init(t_loop), 0);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(t_loop, 1);
	assert_true(m.done <= 64);
}

static void test_create_alloc_faults(void **state)
{
	struct bdev *b;
	int rc = -1;

	for (long n = 0; n < 40; n++) {
		mem_fault_set(n);
		rc = bdev_aio_create("a", t_path, 0, false, NULL, &b);
		mem_fault_clear();
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_null(bdev_find("a"));
		/* the ring may stay set up; a later fini releases it */
	}
	assert_int_equal(rc, 0);
	/* I/O with the request pool under faults */
	uint8_t buf[512];
	struct done d = {0};
	mem_fault_set(0);
	rc = bdev_read(b, buf, 0, 512, t_io_cb, &d);
	mem_fault_clear();
	assert_int_equal(rc, -ENOMEM);
	assert_int_equal(bdev_io_outstanding(b), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 0, 512), 0);
}

/* EAGAIN results and short transfers are redone until the request is whole. */
static void test_eagain_and_short(void **state)
{
	struct bdev *b;
	enum { N = 300 };
	static uint8_t w[N][8192], r[N][8192];
	struct many m = {0};

	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b), 0);
	bdev_aio_test_mangle(3, 2);
	for (int i = 0; i < N; i++) {
		memset(w[i], i & 0xff, sizeof(w[i]));
		w[i][100] = (uint8_t)(i >> 8);
		assert_int_equal(bdev_write(b, w[i], (uint64_t)i * 8192, 8192, many_cb, &m), 0);
	}
	assert_int_equal(bdev_write_zeroes(b, N * 8192, 65536, many_cb, &m), 0);
	assert_int_equal(bdev_flush(b, many_cb, &m), 0);
	t_wait(&m.done, N + 2);
	assert_int_equal(m.errors, 0);
	m.done = 0;
	for (int i = 0; i < N; i++)
		assert_int_equal(bdev_read(b, r[i], (uint64_t)i * 8192, 8192, many_cb, &m), 0);
	t_wait(&m.done, N);
	bdev_aio_test_mangle(0, 0);
	assert_int_equal(m.errors, 0);
	assert_memory_equal(w, r, sizeof(w));
	assert_int_equal(bdev_stat(b)->num_write_ops, N);
	assert_int_equal(bdev_stat(b)->bytes_read, (uint64_t)N * 8192);
}

/* No deferred call can be allocated: submission and completion still work. */
static void test_no_defer_memory(void **state)
{
	struct bdev *b;
	uint8_t buf[4096];
	struct many m = {0};

	assert_int_equal(bdev_aio_create("a", t_path, 0, false, NULL, &b), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, buf, 0, 4096), 0); /* pools warm */
	mem_fault_set(0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(bdev_read(b, buf, 0, 4096, many_cb, &m), 0);
	assert_int_equal(bdev_write(b, buf, 0, 4096, many_cb, &m), 0);
	assert_int_equal(bdev_flush(b, many_cb, &m), 0);
	t_wait(&m.done, 10);
	mem_fault_clear();
	assert_int_equal(m.errors, 0);
}

/* A real block device when DISKENGINE_TEST_BLOCKDEV names one (e.g. a loop
 * device over a scratch file; its data is overwritten). Skipped otherwise. */
static void test_block_device(void **state)
{
	const char *dev = getenv("DISKENGINE_TEST_BLOCKDEV");
	struct bdev *b;
	uint8_t w[8192], r[8192];

	if (!dev || !*dev) {
		skip();
		return;
	}
	assert_int_equal(bdev_aio_create("blk", dev, 0, false, NULL, &b), 0);
	assert_true(bdev_block_size(b) >= 512);
	assert_true(bdev_num_blocks(b) > 16);
	uint32_t bs = bdev_block_size(b);
	assert_true(bs <= 2048 || bs == 4096);
	size_t n = bs == 4096 ? 4 * 4096 : sizeof(w);
	uint8_t *wp = bs == 4096 ? malloc(n) : w, *rp = bs == 4096 ? malloc(n) : r;
	memset(wp, 0x6d, n);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE, wp, 0, n), 0);
	assert_int_equal(t_rw(b, BDEV_IO_WRITE_ZEROES, NULL, 0, bs), 0);
	assert_int_equal(t_rw(b, BDEV_IO_UNMAP, NULL, bs, bs), 0);
	assert_int_equal(t_rw(b, BDEV_IO_FLUSH, NULL, 0, 0), 0);
	assert_int_equal(t_rw(b, BDEV_IO_READ, rp, 0, n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rp[i], i < 2 * bs ? 0 : 0x6d);
	if (bs == 4096) {
		free(wp);
		free(rp);
	}
	assert_int_equal(bdev_aio_rescan(b), 0);
	assert_int_equal(bdev_aio_delete("blk"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_errors, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_zeroes_unmap_flush, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_zero_fallback_tmpfs, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_rescan, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_readonly, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_fini_with_io_in_flight, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_create_alloc_faults, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_eagain_and_short, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_no_defer_memory, aio_setup, aio_teardown),
		cmocka_unit_test_setup_teardown(test_block_device, aio_setup, aio_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
