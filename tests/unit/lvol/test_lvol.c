/*
 * test_lvol.c: unit tests of the lvol layer: SPDK's semantics as recorded in
 * the golden transcripts (cluster counts, rounding, the sync/async error
 * split, snapshot/clone/delete rules, rename, bdev registration), reload
 * through the examine hook, persistence across a process restart on a real
 * file (aio), and 10,000 lvols in one store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "lvol/lvol.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static struct ev_loop *loop;

struct w {
	bool done;
	int status;
	struct lvol *lvol;
	struct lvol_store *lvs;
};

static void run(struct w *x)
{
	while (!x->done)
		ev_loop_run_once(loop, 10);
}

static void done_cb(void *arg, int status)
{
	struct w *x = arg;
	x->status = status;
	x->done = true;
}

static void lvol_cb_(void *arg, struct lvol *l, int status)
{
	struct w *x = arg;
	x->lvol = l;
	x->status = status;
	x->done = true;
}

static void lvs_cb_(void *arg, struct lvol_store *s, int status)
{
	struct w *x = arg;
	x->lvs = s;
	x->status = status;
	x->done = true;
}

static void examine_cb(void *arg)
{
	struct w *x = arg;
	x->done = true;
}

/* sync return value, else the callback's status */
#define SYNC(call, x) ({ int _rc = (call); if (_rc == 0) run(x); else (x)->done = true; _rc ? _rc : (x)->status; })

static int mk_lvs(const char *bdev, const char *name, uint64_t cluster, struct lvol_store **out)
{
	struct w x = {0};
	struct lvol_store_opts o = { .bdev_name = bdev, .name = name, .cluster_size = cluster };
	int rc = SYNC(lvol_store_create(&o, lvs_cb_, &x), &x);
	if (out)
		*out = x.lvs;
	return rc;
}

static int mk(struct lvol_store *lvs, const char *name, uint64_t size, bool thin, struct lvol **out)
{
	struct w x = {0};
	int rc = SYNC(lvol_create(lvs, name, size, thin, LVOL_CLEAR_DEFAULT, lvol_cb_, &x), &x);
	if (out)
		*out = x.lvol;
	return rc;
}

static int snap(struct lvol *l, const char *name, struct lvol **out)
{
	struct w x = {0};
	int rc = SYNC(lvol_snapshot(l, name, lvol_cb_, &x), &x);
	if (out)
		*out = x.lvol;
	return rc;
}

static int clone_(struct lvol *l, const char *name, struct lvol **out)
{
	struct w x = {0};
	int rc = SYNC(lvol_clone(l, name, lvol_cb_, &x), &x);
	if (out)
		*out = x.lvol;
	return rc;
}

static int del(struct lvol *l)
{
	struct w x = {0};
	return SYNC(lvol_delete(l, done_cb, &x), &x);
}

static int resize(struct lvol *l, uint64_t size)
{
	struct w x = {0};
	return SYNC(lvol_resize(l, size, done_cb, &x), &x);
}

static int ren(struct lvol *l, const char *name)
{
	struct w x = {0};
	return SYNC(lvol_rename(l, name, done_cb, &x), &x);
}

static void wait_examine(void)
{
	struct w x = {0};
	assert_int_equal(bdev_wait_for_examine(examine_cb, &x), 0);
	run(&x);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(ev_loop_create(&loop), 0);
	assert_int_equal(bdev_module_init(loop), 0);
	assert_int_equal(lvol_module_init(), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lvol_module_fini();
	for (int i = 0; i < 100; i++)
		ev_loop_run_once(loop, 0);
	bdev_module_fini();
	ev_loop_destroy(loop);
	return 0;
}

static void test_golden_semantics(void **state)
{
	(void)state;
	struct bdev *aio, *mal;
	assert_int_equal(bdev_fault_create("Aio0", 2 * GiB / 4096, 4096, &aio), 0);
	assert_int_equal(bdev_malloc_create("Malloc0", NULL, 1 * GiB / 512, 512, &mal), 0);
	wait_examine();
	struct lvol_store *lvs, *lvs_m;
	assert_int_equal(mk_lvs("Aio0", "lvs0", 0, &lvs), 0);
	assert_int_equal(mk_lvs("Malloc0", "lvs_m", 0, &lvs_m), 0);
	assert_int_equal(common_uuid_parse(lvol_store_uuid(lvs), NULL), 0);
	struct lvol_store_info si;
	lvol_store_get_info(lvs, &si);
	assert_int_equal(si.total_data_clusters, 511);
	assert_int_equal(si.free_clusters, 511);
	assert_int_equal(si.block_size, 4096);
	assert_int_equal(si.cluster_size, 4 * MiB);
	assert_int_equal(si.max_growable_size, 137271181312ull);
	assert_string_equal(si.base_bdev, "Aio0");
	lvol_store_get_info(lvs_m, &si);
	assert_int_equal(si.total_data_clusters, 255);
	/* sync errors */
	assert_int_equal(mk_lvs("Aio0", "lvs0", 0, NULL), -EEXIST);
	assert_int_equal(mk_lvs("Aio0", "other", 0, NULL), -EPERM);
	assert_int_equal(mk_lvs("Nope", "x", 0, NULL), -ENODEV);
	assert_string_equal(bdev_claim_module(aio), LVOL_MODULE_NAME);
	assert_ptr_equal(lvol_store_find_by_name("lvs0"), lvs);
	assert_ptr_equal(lvol_store_find_by_uuid(lvol_store_uuid(lvs)), lvs);

	struct lvol *thick, *thin, *small, *big, *zero, *ab, *s1, *c1, *s2;
	assert_int_equal(mk(lvs, "vol_thick", 1 * GiB, false, &thick), 0);
	assert_int_equal(mk(lvs, "vol_thin", 1 * GiB, true, &thin), 0);
	assert_int_equal(mk(lvs, "vol_small", 16 * MiB, false, &small), 0);
	assert_int_equal(mk(lvs, "vol_thick", 4 * MiB, false, NULL), -EEXIST);
	assert_int_equal(mk(lvs, "too_big", 2 * GiB, false, NULL), -ENOSPC);
	assert_int_equal(mk(lvs, "vol_thin_big", 8 * GiB, true, &big), 0);
	assert_int_equal(mk(lvs, "vol_zero", 0, false, &zero), 0);
	assert_int_equal(mk(lvs, "a/b", 16 * MiB, false, &ab), 0);
	assert_string_equal(lvol_alias(ab), "lvs0/a/b");
	assert_ptr_equal(lvol_find("lvs0/a/b"), ab);
	assert_ptr_equal(lvol_find(lvol_uuid(ab)), ab);
	lvol_store_get_info(lvs, &si);
	assert_int_equal(si.free_clusters, 511 - 256 - 4 - 4);
	/* bdev registration */
	struct bdev *bd = bdev_find("lvs0/vol_thick");
	assert_non_null(bd);
	assert_ptr_equal(lvol_from_bdev(bd), thick);
	assert_string_equal(bdev_name(bd), lvol_uuid(thick));
	assert_string_equal(bdev_product_name(bd), LVOL_PRODUCT_NAME);
	assert_int_equal(bdev_num_blocks(bd), 262144);
	assert_true(bdev_is_thin(bdev_find("lvs0/vol_thin")));
	/* iteration in creation order */
	const char *order[] = { "vol_thick", "vol_thin", "vol_small", "vol_thin_big", "vol_zero", "a/b" };
	unsigned i = 0;
	for (struct lvol *l = lvol_first(lvs); l; l = lvol_next(l), i++)
		assert_string_equal(lvol_name(l), order[i]);
	assert_int_equal(i, 6);

	/* resize: grow thick/thin, shrink, too big, rounding */
	assert_int_equal(resize(thick, 1536 * MiB), 0);
	assert_int_equal(resize(thin, 2048 * MiB), 0);
	assert_int_equal(resize(thick, 1024 * MiB), 0);
	assert_int_equal(resize(thick, 4 * GiB), -ENOSPC);
	assert_int_equal(resize(big, 1025 * MiB), 0);
	struct lvol_info li;
	lvol_get_info(big, &li);
	assert_int_equal(li.size_bytes, 1028 * MiB);
	assert_int_equal(bdev_num_blocks(lvol_bdev(big)), 1028 * MiB / 4096);

	/* snapshot / clone */
	assert_int_equal(snap(thin, "snap1", &s1), 0);
	assert_int_equal(snap(thin, "snap1", NULL), -EEXIST);
	assert_int_equal(clone_(s1, "clone1", &c1), 0);
	assert_int_equal(clone_(thick, "clone_x", NULL), -EINVAL);
	assert_int_equal(clone_(s1, "clone1", NULL), -EEXIST);
	lvol_get_info(s1, &li);
	assert_true(li.is_snapshot);
	assert_true(li.thin);
	assert_int_equal(li.num_clones, 2);
	assert_ptr_equal(lvol_clone_get(s1, 0), thin);
	assert_ptr_equal(lvol_clone_get(s1, 1), c1);
	lvol_get_info(thin, &li);
	assert_true(li.is_clone);
	assert_string_equal(li.base_snapshot, "snap1");
	assert_int_equal(del(s1), -EPERM);
	assert_int_equal(del(c1), 0);
	assert_int_equal(snap(thick, "snap2", &s2), 0);
	lvol_get_info(thick, &li);
	assert_true(li.thin);
	assert_true(li.is_clone);
	lvol_get_info(s2, &li);
	assert_false(li.thin);
	assert_int_equal(li.num_allocated_clusters, 256);
	assert_int_equal(del(s1), 0); /* exactly one clone: absorbed */
	lvol_get_info(thin, &li);
	assert_false(li.is_clone);
	assert_null(lvol_find("lvs0/snap1"));
	assert_int_equal(del(zero), 0);

	/* rename */
	assert_int_equal(ren(small, "vol_small2"), 0);
	assert_string_equal(lvol_alias(small), "lvs0/vol_small2");
	assert_ptr_equal(lvol_find("lvs0/vol_small2"), small);
	assert_null(bdev_find("lvs0/vol_small"));
	assert_int_equal(ren(small, "vol_thin"), -EEXIST);

	/* delete of a claimed lvol succeeds */
	assert_int_equal(bdev_claim(lvol_bdev(big), BDEV_CLAIM_EXCL_WRITE, "NVMe-oF Target"), 0);
	assert_int_equal(del(big), 0);

	/* store rename moves every alias */
	struct w x = {0};
	assert_int_equal(SYNC(lvol_store_rename(lvs, "lvs_m", done_cb, &x), &x), -EEXIST);
	memset(&x, 0, sizeof(x));
	assert_int_equal(SYNC(lvol_store_rename(lvs, "lvsR", done_cb, &x), &x), 0);
	assert_ptr_equal(lvol_find("lvsR/vol_small2"), small);

	/* destroy with lvols */
	memset(&x, 0, sizeof(x));
	assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
	assert_null(lvol_store_find_by_name("lvsR"));
	assert_int_equal(bdev_claim_type(aio), BDEV_CLAIM_NONE);
	assert_null(bdev_find("lvsR/vol_thin"));
}

/* What a store looks like, as text, to compare across reloads. */
static void describe(struct lvol_store *lvs, char *out, size_t len)
{
	size_t n = 0;
	struct lvol_store_info si;
	lvol_store_get_info(lvs, &si);
	n += (size_t)snprintf(out + n, len - n, "%s %s %llu/%llu\n", si.uuid, si.name,
			      (unsigned long long)si.free_clusters, (unsigned long long)si.total_data_clusters);
	for (struct lvol *l = lvol_first(lvs); l && n < len; l = lvol_next(l)) {
		struct lvol_info li;
		lvol_get_info(l, &li);
		n += (size_t)snprintf(out + n, len - n, "%s %s thin=%d snap=%d clone=%d alloc=%llu size=%llu base=%s clones=%u\n",
				      li.uuid, li.alias, li.thin, li.is_snapshot, li.is_clone,
				      (unsigned long long)li.num_allocated_clusters, (unsigned long long)li.size_bytes,
				      li.base_snapshot ? li.base_snapshot : "-", li.num_clones);
	}
}

static void build_store(const char *file, bool clean, int fd_out)
{
	struct bdev *bd;
	assert_int_equal(bdev_aio_create("Aio0", file, 0, false, NULL, &bd), 0);
	wait_examine();
	struct lvol_store *lvs;
	assert_int_equal(mk_lvs("Aio0", "lvs0", 0, &lvs), 0);
	struct lvol *a, *b, *s, *c;
	assert_int_equal(mk(lvs, "vol_thick", 64 * MiB, false, &a), 0);
	assert_int_equal(mk(lvs, "vol_thin", 64 * MiB, true, &b), 0);
	assert_int_equal(mk(lvs, "a/b", 4 * MiB, false, NULL), 0);
	assert_int_equal(snap(a, "snap", &s), 0);
	assert_int_equal(clone_(s, "clone", &c), 0);
	assert_int_equal(ren(b, "vol_thin2"), 0);
	/* data through the bdev: allocates in the thin one */
	void *buf = NULL;
	assert_int_equal(posix_memalign(&buf, 4096, 8192), 0);
	memset(buf, 0xab, 8192);
	struct w x = {0};
	assert_int_equal(bdev_write(lvol_bdev(b), buf, 4 * MiB, 8192, done_cb, &x), 0);
	run(&x);
	assert_int_equal(x.status, 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(bdev_write(lvol_bdev(c), buf, 0, 8192, done_cb, &x), 0);
	run(&x);
	assert_int_equal(x.status, 0);
	free(buf);
	char desc[4096];
	describe(lvs, desc, sizeof(desc));
	assert_true(write(fd_out, desc, strlen(desc)) == (ssize_t)strlen(desc));
	if (clean) {
		memset(&x, 0, sizeof(x));
		assert_int_equal(lvol_module_unload_all(done_cb, &x), 0);
		run(&x);
		assert_int_equal(x.status, 0);
	}
}

/* persistence across a process restart on a real file: the child builds a
 * store and exits (after a clean unload, or without any); the parent loads
 * it through bdev_aio_create + examine and must see the same thing. */
static void restart_case(bool clean)
{
	char file[] = "/tmp/de-lvol-test-XXXXXX";
	int fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * GiB), 0);
	close(fd);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* a fresh process (exec): fork alone would share epoll/io_uring */
		close(pfd[0]);
		char fdstr[16];
		snprintf(fdstr, sizeof(fdstr), "%d", pfd[1]);
		execl("/proc/self/exe", "test_lvol", "--build-child", file, clean ? "clean" : "killed", fdstr,
		      (char *)NULL);
		_exit(9);
	}
	close(pfd[1]);
	char want[4096] = {0};
	size_t n = 0;
	ssize_t r;
	while ((r = read(pfd[0], want + n, sizeof(want) - 1 - n)) > 0)
		n += (size_t)r;
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(n > 0);

	struct bdev *bd;
	assert_int_equal(bdev_aio_create("Aio0", file, 0, false, NULL, &bd), 0);
	wait_examine();
	struct lvol_store *lvs = lvol_store_find_by_name("lvs0");
	assert_non_null(lvs);
	char got[4096];
	describe(lvs, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fprintf(stderr, "before restart:\n%safter:\n%s", want, got);
	assert_string_equal(got, want);
	/* reading back the data */
	void *buf = NULL;
	assert_int_equal(posix_memalign(&buf, 4096, 8192), 0);
	struct w x = {0};
	assert_int_equal(bdev_read(bdev_find("lvs0/vol_thin2"), buf, 4 * MiB, 8192, done_cb, &x), 0);
	run(&x);
	assert_int_equal(((uint8_t *)buf)[100], 0xab);
	free(buf);
	memset(&x, 0, sizeof(x));
	assert_int_equal(SYNC(lvol_store_unload(lvs, done_cb, &x), &x), 0);
	assert_int_equal(bdev_aio_delete("Aio0"), 0);
	unlink(file);
}

static void test_restart_clean(void **state)
{
	(void)state;
	restart_case(true);
}

static void test_restart_killed(void **state)
{
	(void)state;
	restart_case(false);
}

struct many {
	unsigned inflight, done, failed;
};

static void many_cb(void *arg, struct lvol *l, int status)
{
	(void)l;
	struct many *m = arg;
	m->inflight--;
	m->done++;
	if (status)
		m->failed++;
}

/* 10,000 lvols in one store on a file, created pipelined, reloaded through
 * examine (clean) and again after a simulated kill (dirty). */
static void test_ten_thousand(void **state)
{
	(void)state;
	const char *e = getenv("DISKENGINE_STRESS");
	const unsigned N = 10000;
	(void)e;
	char file[] = "/tmp/de-lvol-10k-XXXXXX";
	int fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 * GiB), 0); /* sparse; 1 MiB clusters: 16,384 md pages */
	close(fd);
	struct bdev *bd;
	assert_int_equal(bdev_aio_create("Aio0", file, 0, false, NULL, &bd), 0);
	wait_examine();
	struct lvol_store *lvs;
	assert_int_equal(mk_lvs("Aio0", "big", 1 * MiB, &lvs), 0);
	struct many m = {0};
	char name[32];
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "%u", i);
		assert_int_equal(lvol_create(lvs, name, MiB, i % 2, LVOL_CLEAR_DEFAULT, many_cb, &m), 0);
		m.inflight++;
		while (m.inflight >= 128)
			ev_loop_run_once(loop, 10);
	}
	while (m.inflight)
		ev_loop_run_once(loop, 10);
	assert_int_equal(m.failed, 0);
	assert_int_equal(lvol_store_lvol_count(lvs), N);
	struct lvol_store_info si;
	lvol_store_get_info(lvs, &si);
	uint64_t free_before = si.free_clusters;
	char first_uuid[COMMON_UUID_STR_LEN];
	snprintf(first_uuid, sizeof(first_uuid), "%s", lvol_uuid(lvol_first(lvs)));

	for (int round = 0; round < 2; round++) {
		struct w x = {0};
		if (round == 0) {
			assert_int_equal(SYNC(lvol_store_unload(lvs, done_cb, &x), &x), 0);
		} else {
			lvol_module_fini(); /* no unload: the store stays dirty */
			for (int i = 0; i < 50; i++)
				ev_loop_run_once(loop, 1);
			assert_int_equal(lvol_module_init(), 0);
		}
		assert_int_equal(bdev_aio_delete("Aio0"), 0);
		uint64_t t0 = clock_mono_us();
		assert_int_equal(bdev_aio_create("Aio0", file, 0, false, NULL, &bd), 0);
		wait_examine();
		uint64_t t1 = clock_mono_us();
		lvs = lvol_store_find_by_name("big");
		assert_non_null(lvs);
		assert_int_equal(lvol_store_lvol_count(lvs), N);
		lvol_store_get_info(lvs, &si);
		assert_int_equal(si.free_clusters, free_before);
		assert_string_equal(lvol_uuid(lvol_first(lvs)), first_uuid);
		assert_non_null(lvol_find("big/9999"));
		printf("10000 lvols: %s load %.1f ms\n", round == 0 ? "clean" : "dirty", (t1 - t0) / 1000.0);
	}
	struct w x = {0};
	assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
	assert_int_equal(bdev_aio_delete("Aio0"), 0);
	unlink(file);
}

struct ack_pipe {
	int fd;
	unsigned inflight;
};

static void ack_cb(void *arg, struct lvol *l, int status)
{
	struct ack_pipe *a = arg;
	a->inflight--;
	if (status == 0) {
		char line[80];
		int n = snprintf(line, sizeof(line), "%s\n", lvol_name(l));
		if (write(a->fd, line, (size_t)n) != n)
			_exit(5);
	}
}

/* Child role (exec'd): create a store on `file`, then pipelined creates
 * forever, writing each acknowledged name to `fd`. */
static int kill_child(const char *file, int fd)
{
	if (ev_loop_create(&loop) != 0 || bdev_module_init(loop) != 0 || lvol_module_init() != 0)
		return 3;
	log_level_set(LOG_LEVEL_WARN);
	struct bdev *bd;
	if (bdev_aio_create("K", file, 0, false, NULL, &bd) != 0)
		return 4;
	wait_examine();
	struct lvol_store *lvs;
	if (mk_lvs("K", "kill", MiB, &lvs) != 0)
		return 6;
	if (write(fd, "ready\n", 6) != 6)
		return 7;
	struct ack_pipe a = { .fd = fd };
	char name[32];
	for (unsigned i = 0;; i++) {
		snprintf(name, sizeof(name), "v%u", i);
		if (lvol_create(lvs, name, (i % 3) * MiB, i % 2, LVOL_CLEAR_DEFAULT, ack_cb, &a) == 0)
			a.inflight++;
		while (a.inflight >= 64)
			ev_loop_run_once(loop, 10);
	}
}

/* SIGKILL of a process in the middle of pipelined creates on a file: every
 * create it acknowledged is there after the reload, free + allocated adds
 * up. Several kill points. */
static void test_kill_during_creates(void **state)
{
	(void)state;
	for (int round = 0; round < 4; round++) {
		char file[] = "/tmp/de-lvol-kill-XXXXXX";
		int fd = mkstemp(file);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 4 * GiB), 0);
		close(fd);
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* a fresh process: fork alone would share the parent's
			 * epoll and io_uring instances */
			close(pfd[0]);
			char fdstr[16];
			snprintf(fdstr, sizeof(fdstr), "%d", pfd[1]);
			execl("/proc/self/exe", "test_lvol", "--kill-child", file, fdstr, (char *)NULL);
			_exit(9);
		}
		close(pfd[1]);
		/* read acks until the kill point */
		char buf[1 << 16];
		size_t have = 0;
		unsigned lines = 0, kill_after = 200 + (unsigned)round * 700;
		while (lines < kill_after + 1) {
			ssize_t r = read(pfd[0], buf + have, sizeof(buf) - 1 - have);
			assert_true(r > 0);
			for (ssize_t i = 0; i < r; i++)
				lines += buf[have + (size_t)i] == '\n';
			have += (size_t)r;
			if (have > sizeof(buf) - 256)
				break;
		}
		kill(pid, SIGKILL);
		/* everything acknowledged before the kill is in the pipe */
		ssize_t r;
		while (have < sizeof(buf) - 1 && (r = read(pfd[0], buf + have, sizeof(buf) - 1 - have)) > 0)
			have += (size_t)r;
		buf[have] = '\0';
		close(pfd[0]);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);

		struct bdev *bd;
		assert_int_equal(bdev_aio_create("K", file, 0, false, NULL, &bd), 0);
		wait_examine();
		struct lvol_store *lvs = lvol_store_find_by_name("kill");
		assert_non_null(lvs);
		unsigned acked = 0;
		char *save = NULL;
		for (char *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
			if (strcmp(ln, "ready") == 0)
				continue;
			if (!lvol_find_in_store(lvs, ln)) {
				fprintf(stderr, "acknowledged lvol %s lost after SIGKILL\n", ln);
				fail();
			}
			acked++;
		}
		uint64_t alloc = 0;
		for (struct lvol *l = lvol_first(lvs); l; l = lvol_next(l)) {
			struct lvol_info li;
			lvol_get_info(l, &li);
			alloc += li.num_allocated_clusters;
		}
		struct lvol_store_info si;
		lvol_store_get_info(lvs, &si);
		assert_int_equal(si.free_clusters + alloc, si.total_data_clusters);
		assert_true(lvol_store_lvol_count(lvs) >= acked);
		printf("kill during creates: %u acknowledged, %u present after reload\n", acked,
		       lvol_store_lvol_count(lvs));
		struct w x = {0};
		assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
		assert_int_equal(bdev_aio_delete("K"), 0);
		unlink(file);
	}
}

/* the lvstore clear method: freed clusters are unmapped (default) or kept */
static void test_clear_method(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_fault_create("CM", 64 * MiB / 4096, 4096, &bd), 0);
	wait_examine();
	for (int mode = 0; mode < 2; mode++) {
		struct w x = {0};
		struct lvol_store_opts o = { .bdev_name = "CM", .name = "cm", .cluster_size = MiB,
					     .clear_method = mode == 0 ? LVOL_CLEAR_DEFAULT : LVOL_CLEAR_NONE };
		assert_int_equal(SYNC(lvol_store_create(&o, lvs_cb_, &x), &x), 0);
		struct lvol_store *lvs = x.lvs;
		struct lvol *a, *b;
		assert_int_equal(mk(lvs, "a", MiB, false, &a), 0);
		void *buf = NULL;
		assert_int_equal(posix_memalign(&buf, 4096, 4096), 0);
		memset(buf, 0xaa, 4096);
		memset(&x, 0, sizeof(x));
		assert_int_equal(bdev_write(lvol_bdev(a), buf, 0, 4096, done_cb, &x), 0);
		run(&x);
		assert_int_equal(del(a), 0);
		struct lvol_store_info si;
		lvol_store_get_info(lvs, &si);
		/* b takes every free cluster, a's old one included */
		assert_int_equal(mk(lvs, "b", si.free_clusters * MiB, false, &b), 0);
		unsigned seen = 0;
		for (uint64_t cl = 0; cl < si.free_clusters; cl++) {
			memset(buf, 0x11, 4096);
			memset(&x, 0, sizeof(x));
			assert_int_equal(bdev_read(lvol_bdev(b), buf, cl * MiB, 4096, done_cb, &x), 0);
			run(&x);
			seen += ((uint8_t *)buf)[0] == 0xaa;
		}
		assert_int_equal(seen, mode == 0 ? 0 : 1);
		free(buf);
		memset(&x, 0, sizeof(x));
		assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
	}
}

/* grow after the file grew (bdev_aio_rescan), persistent across reload */
static void test_grow(void **state)
{
	(void)state;
	char file[] = "/tmp/de-lvol-grow-XXXXXX";
	int fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * MiB), 0);
	struct bdev *bd;
	assert_int_equal(bdev_aio_create("G", file, 0, false, NULL, &bd), 0);
	wait_examine();
	struct lvol_store *lvs;
	assert_int_equal(mk_lvs("G", "g", 0, &lvs), 0);
	struct lvol_store_info si;
	lvol_store_get_info(lvs, &si);
	assert_int_equal(si.total_data_clusters, 15);
	assert_int_equal(mk(lvs, "v", 8 * MiB, false, NULL), 0);
	assert_int_equal(ftruncate(fd, 256 * MiB), 0);
	close(fd);
	assert_int_equal(bdev_aio_rescan(bd), 0);
	struct w x = {0};
	assert_int_equal(SYNC(lvol_store_grow(lvs, done_cb, &x), &x), 0);
	lvol_store_get_info(lvs, &si);
	assert_int_equal(si.total_data_clusters, 63);
	assert_int_equal(si.free_clusters, 61);
	memset(&x, 0, sizeof(x));
	assert_int_equal(SYNC(lvol_store_unload(lvs, done_cb, &x), &x), 0);
	assert_int_equal(bdev_aio_delete("G"), 0);
	assert_int_equal(bdev_aio_create("G", file, 0, false, NULL, &bd), 0);
	wait_examine();
	lvs = lvol_store_find_by_name("g");
	assert_non_null(lvs);
	lvol_store_get_info(lvs, &si);
	assert_int_equal(si.total_data_clusters, 63);
	assert_int_equal(si.free_clusters, 61);
	assert_int_equal(mk(lvs, "w", 200 * MiB, false, NULL), 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
	assert_int_equal(bdev_aio_delete("G"), 0);
	unlink(file);
}

/* destroying / unloading a store while creates and deletes are in flight */
static void test_close_with_ops_in_flight(void **state)
{
	(void)state;
	struct bdev *bd;
	assert_int_equal(bdev_malloc_create("M2", NULL, 256 * MiB / 512, 512, &bd), 0);
	wait_examine();
	for (int round = 0; round < 2; round++) {
		struct lvol_store *lvs;
		assert_int_equal(mk_lvs("M2", "busy", 1 * MiB, &lvs), 0);
		struct lvol *keep;
		assert_int_equal(mk(lvs, "keep", MiB, false, &keep), 0);
		struct many m = {0};
		char name[32];
		for (unsigned i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "v%u", i);
			assert_int_equal(lvol_create(lvs, name, MiB, i % 2, LVOL_CLEAR_DEFAULT, many_cb, &m), 0);
			m.inflight++;
		}
		struct w dx = {0};
		assert_int_equal(lvol_delete(keep, done_cb, &dx), 0);
		struct w x = {0};
		if (round == 0)
			assert_int_equal(lvol_store_destroy(lvs, done_cb, &x), 0);
		else
			assert_int_equal(lvol_store_unload(lvs, done_cb, &x), 0);
		assert_int_equal(mk(lvs, "late", MiB, false, NULL), -ENODEV);
		run(&x);
		assert_int_equal(x.status, 0);
		assert_true(dx.done);
		assert_int_equal(m.inflight, 0);
		assert_null(lvol_store_find_by_name("busy"));
		assert_int_equal(bdev_claim_type(bd), BDEV_CLAIM_NONE);
		assert_null(bdev_find("busy/v3"));
		if (round == 1) {
			/* the unloaded store comes back with the lvols created before */
			assert_int_equal(bdev_malloc_delete("M2"), 0);
		}
	}
}

/* allocation failures at every point of store/lvol operations */
static void test_alloc_failures(void **state)
{
	(void)state;
	for (long n = 0; n < 300; n++) {
		struct bdev *bd;
		assert_int_equal(bdev_malloc_create("M", NULL, 64 * MiB / 512, 512, &bd), 0);
		wait_examine();
		mem_fault_set(n);
		struct lvol_store *lvs = NULL;
		struct lvol *a = NULL, *s = NULL, *c = NULL;
		if (mk_lvs("M", "fl", 1 * MiB, &lvs) == 0 && lvs) {
			(void)mk(lvs, "a", 4 * MiB, false, &a);
			if (a) {
				(void)snap(a, "s", &s);
				(void)resize(a, 8 * MiB);
				(void)ren(a, "a2");
			}
			if (s)
				(void)clone_(s, "c", &c);
			if (c)
				(void)del(c);
		}
		mem_fault_clear();
		for (int i = 0; i < 20; i++)
			ev_loop_run_once(loop, 0);
		lvs = lvol_store_find_by_name("fl");
		if (lvs) {
			struct w x = {0};
			assert_int_equal(SYNC(lvol_store_destroy(lvs, done_cb, &x), &x), 0);
		}
		for (int i = 0; i < 20; i++)
			ev_loop_run_once(loop, 0);
		assert_int_equal(bdev_claim_type(bd), BDEV_CLAIM_NONE);
		assert_int_equal(bdev_malloc_delete("M"), 0);
	}
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--build-child") == 0) {
		if (ev_loop_create(&loop) != 0 || bdev_module_init(loop) != 0 || lvol_module_init() != 0)
			return 3;
		build_store(argv[2], strcmp(argv[3], "clean") == 0, atoi(argv[4]));
		_exit(0); /* no cleanup: like a killed process unless "clean" unloaded */
	}
	if (argc == 4 && strcmp(argv[1], "--kill-child") == 0)
		return kill_child(argv[2], atoi(argv[3]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_golden_semantics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ten_thousand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_during_creates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_ops_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
