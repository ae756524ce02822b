/* test_common.c: unit tests for src/common (sizes, crc32c, uuid, mem faults, event loop). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"

static void test_size_parse(void **state)
{
	uint64_t v;

	assert_int_equal(size_parse("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(size_parse("10G", &v), 0);
	assert_int_equal(v, 10ull << 30);
	assert_int_equal(size_parse("512MiB", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(size_parse("1.5k", &v), 0);
	assert_int_equal(v, 1536);
	assert_int_equal(size_parse(" 2 TiB ", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(size_parse("1B", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(size_parse("-1G", &v), -EINVAL);
	assert_int_equal(size_parse("", &v), -EINVAL);
	assert_int_equal(size_parse("G", &v), -EINVAL);
	assert_int_equal(size_parse("12X", &v), -EINVAL);
	assert_int_equal(size_parse("1.3B", &v), -EINVAL);
	assert_int_equal(size_parse("99999999999999999999", &v), -ERANGE);
	assert_int_equal(size_parse("20000000P", &v), -ERANGE);
	assert_int_equal(size_parse(NULL, &v), -EINVAL);
}

static void test_size_format(void **state)
{
	char buf[32];

	assert_string_equal(size_format(512, buf, sizeof(buf)), "512 B");
	assert_string_equal(size_format(4ull << 20, buf, sizeof(buf)), "4 MiB");
	assert_string_equal(size_format(1536ull << 20, buf, sizeof(buf)), "1.5 GiB");
}

static void test_crc32c(void **state)
{
	/* RFC 3720 test vectors. */
	uint8_t zeros[32] = { 0 }, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aa);
	assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43);
	assert_int_equal(crc32c(0, inc, 32), 0x46dd794e);
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283);
	/* Chaining equals one pass. */
	assert_int_equal(crc32c(crc32c(0, "12345", 5), "6789", 4), 0xe3069283);
}

static void test_uuid(void **state)
{
	char a[COMMON_UUID_STR_LEN], b[COMMON_UUID_STR_LEN];
	uint8_t bytes[16];

	common_uuid_generate(a);
	common_uuid_generate(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(common_uuid_parse(a, bytes), 0);
	common_uuid_unparse(bytes, b);
	assert_string_equal(a, b);
	assert_int_equal(common_uuid_parse("not-a-uuid", NULL), -EINVAL);
	assert_int_equal(common_uuid_parse("", NULL), -EINVAL);
}

static void test_mem_fault(void **state)
{
	mem_fault_set(2);
	void *a = mem_alloc(8), *b = mem_zalloc(8), *c = mem_strdup("x");
	mem_fault_clear();
	assert_non_null(a);
	assert_non_null(b);
	assert_null(c);
	mem_free(a);
	mem_free(b);
	mem_free(NULL);
}

static void test_log_level(void **state)
{
	enum log_level l;

	assert_int_equal(log_level_parse("DEBUG", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("loud", &l), -EINVAL);
	assert_string_equal(common_strerror(-ENODEV), "No such device");
	assert_string_equal(common_strerror(EEXIST), "File exists");
}

struct ev_probe {
	int fired;
	int order[8];
	int norder;
	struct ev_timer *periodic;
	int pipefd[2];
	int reads;
};

static void on_timer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct ev_probe *p = arg;
	p->order[p->norder++] = 1;
	p->fired++;
}

static void on_periodic(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct ev_probe *p = arg;
	if (++p->fired == 3) {
		ev_timer_stop(loop, t); /* stop from inside its own callback */
		ev_loop_stop(loop);
	}
}

static void on_defer(struct ev_loop *loop, void *arg)
{
	struct ev_probe *p = arg;
	p->order[p->norder++] = 2;
}

static void on_read(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct ev_probe *p = arg;
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	p->reads++;
	ev_fd_remove(loop, fd); /* remove self during dispatch */
}

static void on_read_keep(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	(*(int *)arg)++;
}

static void test_ev_loop(void **state)
{
	struct ev_loop *loop;
	struct ev_probe p = { 0 };
	struct ev_timer *cancelled;

	assert_int_equal(ev_loop_create(&loop), 0);
	assert_int_equal(ev_timer_start(loop, 0, 0, on_timer, &p, NULL), 0);
	assert_int_equal(ev_timer_start(loop, 10000, 0, on_timer, &p, &cancelled), 0);
	ev_timer_stop(loop, cancelled);
	assert_int_equal(ev_defer(loop, on_defer, &p), 0);
	assert_int_equal(ev_loop_run_once(loop, 0), 0);
	assert_int_equal(p.fired, 1);
	assert_int_equal(p.norder, 2);
	assert_int_equal(p.order[0], 1); /* timers before defers */
	assert_int_equal(p.order[1], 2);

	assert_int_equal(pipe(p.pipefd), 0);
	assert_int_equal(ev_fd_add(loop, p.pipefd[0], 0x001 /* EPOLLIN */, on_read, &p), 0);
	assert_int_equal(ev_fd_add(loop, p.pipefd[0], 0x001, on_read, &p), -EEXIST);
	assert_int_equal(write(p.pipefd[1], "ab", 2), 2);
	assert_int_equal(ev_loop_run_once(loop, 1000), 0);
	assert_int_equal(ev_loop_run_once(loop, 0), 0);
	assert_int_equal(p.reads, 1); /* removed after the first read */
	assert_int_equal(ev_fd_remove(loop, p.pipefd[0]), -ENOENT);

	p.fired = 0;
	assert_int_equal(ev_timer_start(loop, 1, 1, on_periodic, &p, NULL), 0);
	uint64_t t0 = clock_mono_ms();
	assert_int_equal(ev_loop_run(loop), 0);
	assert_int_equal(p.fired, 3);
	assert_true(clock_mono_ms() - t0 < 1000);
	close(p.pipefd[0]);
	close(p.pipefd[1]);
	ev_loop_destroy(loop);
	ev_loop_destroy(NULL);
}

static void on_noop_defer(struct ev_loop *loop, void *arg)
{
	(*(int *)arg)++;
}

static void test_ev_spin(void **state)
{
	struct ev_loop *loop;
	int pipefd[2], ran = 0;
	char c;

	assert_int_equal(ev_loop_create(&loop), 0);
	assert_int_equal(pipe(pipefd), 0);
	/* Without spin, an idle round sleeps for its whole timeout. */
	uint64_t t0 = clock_mono_ms();
	assert_int_equal(ev_loop_run_once(loop, 60), 0);
	assert_true(clock_mono_ms() - t0 >= 50);

	/* With spin, a round right after a busy one does not sleep... */
	ev_loop_set_spin(loop, 200000); /* 200 ms: generous for a loaded CI machine */
	assert_int_equal(ev_fd_add(loop, pipefd[0], 0x001, on_read_keep, &ran), 0);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	assert_int_equal(ev_loop_run_once(loop, 1000), 0); /* busy round */
	assert_int_equal(ran, 1);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	t0 = clock_mono_ms();
	assert_int_equal(ev_loop_run_once(loop, 5000), 0);
	assert_true(clock_mono_ms() - t0 < 1000);
	/* ...and work arriving during the spin is still dispatched. */
	assert_int_equal(ev_defer(loop, on_noop_defer, &ran), 0);
	assert_int_equal(ev_loop_run_once(loop, 5000), 0);
	assert_int_equal(ran, 2);

	/* Once the spin window has passed, the loop sleeps again. */
	ev_loop_set_spin(loop, 1000); /* 1 ms */
	usleep(5000);
	t0 = clock_mono_ms();
	assert_int_equal(ev_loop_run_once(loop, 60), 0);
	assert_true(clock_mono_ms() - t0 >= 50);
	ev_fd_remove(loop, pipefd[0]);
	close(pipefd[0]);
	close(pipefd[1]);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parse), cmocka_unit_test(test_size_format),
		cmocka_unit_test(test_crc32c),     cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_mem_fault),  cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_ev_loop),    cmocka_unit_test(test_ev_spin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
