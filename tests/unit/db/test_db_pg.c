/* test_db_pg.c: unit tests for the PostgreSQL backend of src/db against a
 * real server: DE_TEST_PG_URL names its maintenance database (for example
 * postgresql://postgres@127.0.0.1:5433/postgres); each test creates a fresh
 * database there. Without the variable every test is skipped (the fleet
 * integration tests start a throw-away cluster and run this binary with it:
 * tests/integration/fleet/test_fleet_db_pg_unit.py). Covers migrations and
 * concurrent first opens, the operations and their error codes, -ESTALE,
 * event dedup, the placement race (no over-commit), NOTIFY wake-ups and a
 * server-side connection kill (transient -EAGAIN, then reconnected). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "common/common.h"
#include "db/db.h"
#include "db_checks.h"

#define MiB (1ull << 20)

struct fx {
	char url[512];
	struct db *db;
};

static int seq;

/* Runs one SQL command on the maintenance database (or url). */
static int admin(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return -1;
	}
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static int setup(void **state)
{
	const char *base = getenv("DE_TEST_PG_URL");
	struct fx *f;
	char name[64], sql[128], *slash;

	if (!base || !*base) {
		*state = NULL;
		return 0;
	}
	f = calloc(1, sizeof(*f));
	snprintf(name, sizeof(name), "u%d_%d", (int)getpid(), ++seq);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	if (admin(base, sql) != 0)
		return -1;
	snprintf(f->url, sizeof(f->url), "%s", base);
	slash = strrchr(f->url, '/');
	if (!slash || slash < f->url + 14)
		return -1;
	snprintf(slash + 1, sizeof(f->url) - (size_t)(slash + 1 - f->url), "%s", name);
	if (db_open(f->url, &f->db) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f) {
		db_close(f->db);
		free(f);
	}
	return 0;
}

#define NEED_PG(f)                                                      \
	do {                                                            \
		if (!(f)) {                                             \
			print_message("DE_TEST_PG_URL not set: skipped\n"); \
			skip();                                         \
		}                                                       \
	} while (0)

static void add_node_disks(struct db *db, const char *node, int ndisks, uint64_t free_bytes)
{
	struct db_node n;
	int i;

	assert_int_equal(db_node_add(db, node, "/tmp/x.sock", NULL, NULL), 0);
	assert_int_equal(db_node_get(db, node, &n), 0);
	assert_int_equal(db_node_heartbeat(db, n.id), 0);
	for (i = 0; i < ndisks; i++) {
		struct db_disk d;
		int64_t id = 0;

		memset(&d, 0, sizeof(d));
		snprintf(d.name, sizeof(d.name), "%s-d%d", node, i);
		snprintf(d.node, sizeof(d.node), "%s", node);
		snprintf(d.path, sizeof(d.path), "/tmp/%s-d%d.img", node, i);
		assert_int_equal(db_listen_parse("127.0.0.1:4420", &d.listen[0]), 0);
		d.listen_count = 1;
		assert_int_equal(db_disk_add(db, &d, &id), 0);
		assert_int_equal(db_disk_set_lvstore(db, id, "11111111-2222-3333-4444-555555555555",
						     4 * MiB), 0);
		assert_int_equal(db_disk_observe(db, id, DB_LVSTORE_LOADED, free_bytes, free_bytes), 0);
	}
}

static void test_migrations_and_reopen(void **state)
{
	struct fx *f = *state;
	struct db *again = NULL;
	int v = 0, v2 = 0;

	NEED_PG(f);
	assert_int_equal(db_schema_version(f->db, &v), 0);
	assert_true(v >= 2);
	assert_int_equal(db_open_existing(f->url, &again), 0);
	assert_int_equal(db_schema_version(again, &v2), 0);
	assert_int_equal(v, v2);
	db_close(again);
}

static void *open_close(void *arg)
{
	struct db *db = NULL;
	int rc = db_open(arg, &db);

	db_close(db);
	return (void *)(intptr_t)rc;
}

static void test_concurrent_first_open(void **state)
{
	struct fx *f = *state;
	char url[512], sql[96], *slash;
	pthread_t t[6];
	int i;

	NEED_PG(f);
	snprintf(url, sizeof(url), "%s", f->url);
	slash = strrchr(url, '/');
	snprintf(slash + 1, sizeof(url) - (size_t)(slash + 1 - url), "fresh%d", (int)getpid());
	snprintf(sql, sizeof(sql), "CREATE DATABASE fresh%d", (int)getpid());
	assert_int_equal(admin(getenv("DE_TEST_PG_URL"), sql), 0);
	for (i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&t[i], NULL, open_close, url), 0);
	for (i = 0; i < 6; i++) {
		void *ret = NULL;

		pthread_join(t[i], &ret);
		assert_int_equal((int)(intptr_t)ret, 0);
	}
}

static void test_operations(void **state)
{
	struct fx *f = *state;
	const char *hosts[] = { "nqn.2014-08.org.example:h1", "nqn.2014-08.org.example:h2" };
	struct db_lvol_spec s = { .disk = "a-d0", .size = 10 * MiB, .hosts = hosts, .host_count = 2 };
	struct db_event *ev = NULL;
	struct db_lvol l;
	struct db_snapshot sn;
	size_t n = 0;
	int64_t id = 0, sid = 0, cid = 0;

	NEED_PG(f);
	add_node_disks(f->db, "a", 1, 100 * MiB);
	assert_int_equal(db_node_add(f->db, "a", "/tmp/y.sock", NULL, NULL), -EEXIST);
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_CREATING);
	assert_int_equal(l.host_count, 2);
	assert_string_equal(l.hosts[1], hosts[1]);
	assert_string_equal(l.node, "a");
	{
		char want[DB_NQN_MAX];

		snprintf(want, sizeof(want), "%s:lvol-%lld", DB_NQN_PREFIX_DEFAULT, (long long)id);
		assert_string_equal(l.nqn, want); /* written with the row, from the node's prefix */
	}
	assert_int_equal(l.generation, 1);
	db_lvol_clear(&l);
	s.size = 200 * MiB;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	assert_non_null(strstr(db_errmsg(f->db), "free"));
	s.disk = "nope";
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOENT);
	/* agent: uuid, READY conditional on the generation */
	assert_int_equal(db_lvol_set_uuid(f->db, id, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", 12 * MiB), 0);
	assert_int_equal(db_lvol_set_state(f->db, id, 1, DB_LVOL_READY, NULL), 0);
	/* resize bumps the generation: a late write with the old one is stale */
	assert_int_equal(db_lvol_resize(f->db, id, 20 * MiB, false), 0);
	assert_int_equal(db_lvol_set_state(f->db, id, 1, DB_LVOL_READY, NULL), -ESTALE);
	assert_int_equal(db_lvol_zero_begin(f->db, id, 2, 12 * MiB, 20 * MiB), 0);
	assert_int_equal(db_lvol_zero_progress(f->db, id, 16 * MiB), 0);
	assert_int_equal(db_lvol_resize_done(f->db, id, 2, 20 * MiB), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_READY);
	assert_int_equal(l.zero_to, 0);
	assert_int_equal(l.real_size, 20 * MiB);
	db_lvol_clear(&l);
	assert_int_equal(db_lvol_resize(f->db, id, 4 * MiB, false), -EINVAL);
	/* snapshot + clone */
	assert_int_equal(db_snapshot_create(f->db, id, &sid), 0);
	assert_int_equal(db_snapshot_set_uuid(f->db, sid, "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"), 0);
	assert_int_equal(db_snapshot_set_state(f->db, sid, 1, DB_SNAPSHOT_READY, NULL), 0);
	assert_int_equal(db_snapshot_get(f->db, sid, &sn), 0);
	assert_int_equal(sn.state, DB_SNAPSHOT_READY);
	assert_int_equal(db_lvol_create(f->db, &(struct db_lvol_spec){ .clone_of = sid }, &cid), 0);
	assert_int_equal(db_lvol_get(f->db, cid, &l), 0);
	assert_true(l.thin);
	assert_int_equal(l.clone_of, sid);
	db_lvol_clear(&l);
	/* delete */
	assert_int_equal(db_lvol_delete(f->db, cid), 0);
	assert_int_equal(db_lvol_delete(f->db, cid), 0);
	assert_int_equal(db_lvol_set_state(f->db, cid, 0, DB_LVOL_DELETED, NULL), 0);
	assert_int_equal(db_lvol_delete(f->db, cid), -ENOENT);
	assert_int_equal(db_snapshot_delete(f->db, sid), 0);
	/* events: dedup while open, a new row after resolve */
	assert_int_equal(db_event_raise(f->db, "a", "drift-size", "lvol/1", "x"), 0);
	assert_int_equal(db_event_raise(f->db, "a", "drift-size", "lvol/1", "y \x01 \xff"), 0);
	assert_int_equal(db_event_list(f->db, false, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].count, 2);
	assert_string_equal(ev[0].detail, "y ? ?");
	db_event_list_free(ev, n);
	assert_int_equal(db_event_resolve(f->db, "drift-size", "lvol/1"), 0);
	assert_int_equal(db_event_raise(f->db, "a", "drift-size", "lvol/1", "z"), 0);
	assert_int_equal(db_event_list(f->db, true, &ev, &n), 0);
	assert_int_equal(n, 2);
	db_event_list_free(ev, n);
	db_check_events_prune(f->db, 0); /* none above */
}

struct racer {
	const char *url;
	int ok, nospc, other;
};

static void *race_creates(void *arg)
{
	struct racer *r = arg;
	struct db_lvol_spec s = { .size = 10 * MiB };
	struct db *db = NULL;
	int i;

	if (db_open(r->url, &db) != 0)
		return NULL;
	for (i = 0; i < 20; i++) {
		int rc = db_lvol_create(db, &s, NULL);

		if (rc == 0)
			r->ok++;
		else if (rc == -ENOSPC)
			r->nospc++;
		else
			r->other++;
	}
	db_close(db);
	return NULL;
}

/* Concurrent placed creates on their own connections: exactly what fits. */
static void test_placement_race(void **state)
{
	struct fx *f = *state;
	struct racer r[4];
	pthread_t t[4];
	int i, ok = 0, nospc = 0, other = 0;

	NEED_PG(f);
	add_node_disks(f->db, "a", 2, 100 * MiB);
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){ .url = f->url };
		assert_int_equal(pthread_create(&t[i], NULL, race_creates, &r[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += r[i].ok;
		nospc += r[i].nospc;
		other += r[i].other;
	}
	/* 10 MiB rounds up to 12 MiB of 4 MiB clusters: 8 fit per 100 MiB disk. */
	assert_int_equal(other, 0);
	assert_int_equal(ok, 16);
	assert_int_equal(nospc, 80 - 16);
}

/* NOTIFY: a desired-state write on another connection wakes a waiter at
 * once; an observed-state write (heartbeat) does not. */
static void test_change_wait_notify(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL;
	struct db_node n;
	uint64_t c0 = 0, now = 0, t;

	NEED_PG(f);
	assert_int_equal(db_open(f->url, &other), 0);
	add_node_disks(other, "a", 1, 100 * MiB);
	assert_int_equal(db_change_counter(f->db, &c0), 0);
	assert_int_equal(db_node_get(other, "a", &n), 0);
	assert_int_equal(db_node_heartbeat(other, n.id), 0);
	t = clock_mono_ms();
	assert_int_equal(db_change_wait(f->db, c0, 300, -1, &now), 0);
	assert_true(clock_mono_ms() - t >= 250);
	assert_int_equal(now, c0);
	assert_int_equal(db_lvol_create(other, &(struct db_lvol_spec){ .disk = "a-d0", .size = MiB },
					NULL), 0);
	t = clock_mono_ms();
	assert_int_equal(db_change_wait(f->db, c0, 5000, -1, &now), 1);
	assert_true(clock_mono_ms() - t < 1000);
	assert_true(now > c0);
	assert_int_equal(db_changes_since(f->db, now, NULL), 0);
	db_close(other);
}

/* db_change_filter: a handle filtered to node "b" and creates sleeps through
 * a create on node "a" and a resize on "b"; a create on "b" and a disk
 * registration (every node) wake it. Unfiltered handles see every change. */
static void test_change_filter(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL, *all = NULL;
	struct db_lvol_spec sa = { .disk = "a-d0", .size = MiB, .thin = true };
	struct db_lvol_spec sb = { .disk = "b-d0", .size = MiB, .thin = true };
	struct db_disk d = { .listen_count = 1 };
	uint64_t c0 = 0, a0 = 0, now = 0;
	int64_t id = 0;

	NEED_PG(f);
	assert_int_equal(db_open(f->url, &other), 0);
	assert_int_equal(db_open(f->url, &all), 0);
	add_node_disks(other, "a", 1, 100 * MiB);
	add_node_disks(other, "b", 1, 100 * MiB);
	assert_int_equal(db_lvol_create(other, &sb, &id), 0);
	assert_int_equal(db_lvol_set_state(other, id, 0, DB_LVOL_READY, NULL), 0);
	db_change_filter(f->db, "b", DB_CHANGE_CREATE);
	assert_int_equal(db_change_counter(f->db, &c0), 0);
	assert_int_equal(db_change_counter(all, &a0), 0);
	assert_int_equal(db_lvol_create(other, &sa, NULL), 0);
	assert_int_equal(db_lvol_resize(other, id, 2 * MiB, false), 0);
	assert_int_equal(db_change_wait(f->db, c0, 300, -1, &now), 0);
	assert_int_equal(now, c0);
	assert_int_equal(db_change_wait(all, a0, 5000, -1, &now), 1);
	assert_int_equal(db_lvol_create(other, &sb, NULL), 0);
	assert_int_equal(db_change_wait(f->db, c0, 5000, -1, &now), 1);
	c0 = now;
	snprintf(d.name, sizeof(d.name), "a-d9");
	snprintf(d.node, sizeof(d.node), "a");
	snprintf(d.path, sizeof(d.path), "/tmp/a-d9.img");
	snprintf(d.listen[0].traddr, sizeof(d.listen[0].traddr), "127.0.0.1");
	d.listen[0].port = 4499;
	assert_int_equal(db_disk_add(other, &d, NULL), 0);
	assert_int_equal(db_change_wait(f->db, c0, 5000, -1, &now), 1);
	db_close(all);
	db_close(other);
}

/* db_data_wait: blocks on the socket until another connection writes
 * anything (an observed write included), not only desired-state changes. */
static void test_data_wait_notify(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL;
	struct db_lvol_spec s = { .disk = "a-d0", .size = MiB, .thin = true };
	uint64_t d0 = 0, now = 0, t;
	int64_t id = 0;

	NEED_PG(f);
	assert_int_equal(db_open(f->url, &other), 0);
	add_node_disks(other, "a", 1, 100 * MiB);
	assert_int_equal(db_lvol_create(other, &s, &id), 0);
	assert_int_equal(db_data_version(f->db, &d0), 0);
	t = clock_mono_ms();
	assert_int_equal(db_data_wait(f->db, d0, 300, &now), 0);
	assert_true(clock_mono_ms() - t >= 250);
	assert_int_equal(now, d0);
	assert_int_equal(db_lvol_set_state(other, id, 0, DB_LVOL_READY, NULL), 0);
	t = clock_mono_ms();
	assert_int_equal(db_data_wait(f->db, d0, 5000, &now), 1);
	assert_true(clock_mono_ms() - t < 1000);
	assert_true(now != d0);
	db_close(other);
}

/* The server kills our session (as a restart would): the next call fails
 * with -EAGAIN and nothing else; a later call reconnects and works, and the
 * change counter is re-read (a change made meanwhile is not missed). */
static void test_reconnect_after_kill(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL;
	struct db_node *nodes = NULL;
	size_t n = 0;
	uint64_t c0 = 0, c1 = 0;
	int rc, tries;

	NEED_PG(f);
	add_node_disks(f->db, "a", 1, 100 * MiB);
	assert_int_equal(db_change_counter(f->db, &c0), 0);
	assert_int_equal(admin(getenv("DE_TEST_PG_URL"),
			       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
			       "WHERE datname LIKE 'u%' AND pid <> pg_backend_pid()"), 0);
	assert_int_equal(db_open(f->url, &other), 0);
	assert_int_equal(db_lvol_create(other, &(struct db_lvol_spec){ .disk = "a-d0", .size = MiB },
					NULL), 0);
	db_close(other);
	rc = db_node_list(f->db, &nodes, &n);
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(db_errmsg(f->db), "unreachable"));
	for (tries = 0; tries < 100; tries++) {
		rc = db_node_list(f->db, &nodes, &n);
		if (rc == 0)
			break;
		assert_int_equal(rc, -EAGAIN);
		usleep(20000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 1);
	db_node_list_free(nodes, n);
	assert_int_equal(db_change_counter(f->db, &c1), 0);
	assert_true(c1 > c0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placement_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_wait_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_wait_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_after_kill, setup, teardown),
	};

	log_level_set(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
