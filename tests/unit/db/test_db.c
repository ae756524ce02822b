/* test_db.c: unit tests for src/db (SQLite backend): migrations, every
 * operation, generations and conditional writes, the change counter, event
 * dedup, lock contention, read-only files and allocation failures. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db.h"
#include "db_checks.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct fx {
	char dir[64];
	char path[128];
	struct db *db;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/de-dbtest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
	if (db_open(f->path, &f->db) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[160];

	mem_fault_clear();
	db_close(f->db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* node n1 + disk d1 (lvstore lvs1, 4 MiB clusters, 127.0.0.1:4420). */
static void add_node_disk(struct db *db)
{
	struct db_disk d;

	assert_int_equal(db_node_add(db, "n1", "/tmp/n1.sock", NULL, NULL), 0);
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "d1");
	strcpy(d.node, "n1");
	strcpy(d.path, "/tmp/d1.img");
	strcpy(d.lvstore, "lvs1");
	d.listen_count = 1;
	assert_int_equal(db_listen_parse("127.0.0.1:4420", &d.listen[0]), 0);
	assert_int_equal(db_disk_add(db, &d, NULL), 0);
}

static int64_t create_lvol(struct db *db, uint64_t size, bool thin)
{
	struct db_lvol_spec s = { .disk = "d1", .size = size, .thin = thin };
	int64_t id = 0;

	assert_int_equal(db_lvol_create(db, &s, &id), 0);
	assert_true(id > 0);
	return id;
}

/* ------------------------------------------------------------ open */

static void test_open_fresh_and_reopen(void **state)
{
	struct fx *f = *state;
	struct stat sb;
	char wal[160];
	int v = 0;

	assert_int_equal(db_schema_version(f->db, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	add_node_disk(f->db);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0); /* WAL mode */
	assert_int_equal(sb.st_mode & 0777, 0600);
	db_close(f->db);
	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(db_schema_version(f->db, &v), 0);
	assert_int_equal(v, 3);
	struct db_node n;
	assert_int_equal(db_node_get(f->db, "n1", &n), 0);
	assert_string_equal(n.rpc_socket, "/tmp/n1.sock");
	assert_string_equal(n.nqn_prefix, DB_NQN_PREFIX_DEFAULT);
	/* open_existing works on a current store, refuses a missing one. */
	struct db *db2 = NULL;
	assert_int_equal(db_open_existing(f->path, &db2), 0);
	db_close(db2);
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/nope.db", f->dir);
	assert_int_equal(db_open_existing(missing, &db2), -ENOENT);
	assert_null(db2);
	assert_int_equal(access(missing, F_OK), -1);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct db *db = NULL;
	char p[160];
	int fd;

#ifdef DE_HAVE_LIBPQ
	/* nothing listens on port 1: refused at once, with the server's words */
	assert_int_equal(db_open("postgresql://127.0.0.1:1/x?connect_timeout=2", &db),
			 -ECONNREFUSED);
	assert_non_null(strstr(db_open_errmsg(), "cannot connect"));
#else
	assert_int_equal(db_open("postgresql://localhost/x", &db), -ENOTSUP);
#endif
	assert_int_equal(db_open(f->dir, &db), -EISDIR);
	assert_int_equal(db_open("", &db), -EINVAL);
	snprintf(p, sizeof(p), "%s/nodir/x.db", f->dir);
	assert_int_equal(db_open(p, &db), -ENOENT);
	/* Not a database. */
	snprintf(p, sizeof(p), "%s/junk.db", f->dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not sqlite at all, just some text....", 45), 45);
	close(fd);
	assert_int_equal(db_open(p, &db), -EIO);
	assert_null(db);
	/* Schema from the future is refused. */
	sqlite3 *h;
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "INSERT INTO schema_migrations VALUES (99, 0)", 0, 0, 0),
			 SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(db_open(f->path, &db), -EPROTO);
}

/* Opening a file we may not write must fail with a clear -EROFS. As root
 * (CI containers) the check runs in a child that dropped to "nobody". */
static int readonly_check(const char *path)
{
	struct db *db = NULL;
	int rc = db_open(path, &db);

	if (rc == 0)
		db_close(db);
	return rc;
}

static void test_open_readonly(void **state)
{
	struct fx *f = *state;
	int status = 0;
	pid_t pid;

	db_close(f->db);
	f->db = NULL;
	if (geteuid() != 0) {
		assert_int_equal(chmod(f->path, 0400), 0);
		assert_int_equal(readonly_check(f->path), -EROFS);
		assert_int_equal(chmod(f->path, 0600), 0);
	} else {
		assert_int_equal(chmod(f->dir, 0755), 0);
		assert_int_equal(chmod(f->path, 0644), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(2);
			_exit(readonly_check(f->path) == -EROFS ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		/* A writable file in a directory we may not write: also refused. */
		assert_int_equal(chmod(f->path, 0666), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(2);
			_exit(readonly_check(f->path) == -EROFS &&
			      strstr(db_open_errmsg(), "directory") ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_int_equal(chmod(f->path, 0600), 0);
	}
	assert_int_equal(db_open(f->path, &f->db), 0);
}

static void test_migrate_from_v1(void **state)
{
	struct fx *f = *state;
	struct db *db = NULL;
	sqlite3 *h;
	int v = 0;

	/* Simulate a store written by a binary that only knew migration 1. */
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h,
				      "DROP INDEX lvols_by_state; DROP INDEX lvols_by_disk;"
				      "DROP INDEX snapshots_by_state; DROP INDEX snapshots_by_lvol;"
				      "DROP INDEX events_open; DROP INDEX events_by_last_seen;"
				      "DELETE FROM schema_migrations WHERE version >= 2", 0, 0, 0),
			 SQLITE_OK);
	sqlite3_close(h);
	db_close(f->db);
	f->db = NULL;
	assert_int_equal(db_open_existing(f->path, &db), -EPROTO);
	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(db_schema_version(f->db, &v), 0);
	assert_int_equal(v, 3);
	/* The dedup index is back: two open events with one (kind, object) cannot exist. */
	assert_int_equal(db_event_raise(f->db, NULL, "k", "o", "x"), 0);
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(h,
					  "INSERT INTO events (kind, object, first_seen, last_seen) "
					  "VALUES ('k', 'o', 1, 1)", 0, 0, 0),
			     SQLITE_OK);
	sqlite3_close(h);
}

/* Several agent loops (threads) opening a brand-new store at once: one
 * migrates, the others wait and find it current. */
static void *open_fresh(void *arg)
{
	struct db *db = NULL;
	intptr_t rc = db_open(arg, &db);

	if (rc == 0) {
		int v = 0;

		rc = db_schema_version(db, &v);
		if (rc == 0 && v != 3)
			rc = -EPROTO;
		db_close(db);
	}
	return (void *)rc;
}

static void test_concurrent_first_open(void **state)
{
	struct fx *f = *state;
	char path[160];
	pthread_t t[6];
	void *ret;
	int i, round;

	for (round = 0; round < 30; round++) {
		snprintf(path, sizeof(path), "%s/fresh%d.db", f->dir, round);
		for (i = 0; i < 6; i++)
			assert_int_equal(pthread_create(&t[i], NULL, open_fresh, path), 0);
		for (i = 0; i < 6; i++) {
			pthread_join(t[i], &ret);
			assert_int_equal((intptr_t)ret, 0);
		}
	}
}

/* ----------------------------------------------------- nodes, disks */

static void test_nodes(void **state)
{
	struct fx *f = *state;
	struct db_node *nodes = NULL, n;
	size_t cnt = 0;
	int64_t id = 0;

	assert_int_equal(db_node_add(f->db, "n2", "/run/n2.sock", "nqn.2024-01.com.example", &id), 0);
	assert_true(id > 0);
	assert_int_equal(db_node_add(f->db, "n1", "/run/n1.sock", NULL, NULL), 0);
	assert_int_equal(db_node_add(f->db, "n1", "/run/x.sock", NULL, NULL), -EEXIST);
	assert_non_null(strstr(db_errmsg(f->db), "already exists"));
	assert_int_equal(db_node_add(f->db, "bad name", "/run/x.sock", NULL, NULL), -EINVAL);
	assert_int_equal(db_node_add(f->db, "n\xc3\xa9", "/run/x.sock", NULL, NULL), -EINVAL);
	assert_int_equal(db_node_add(f->db, "-n", "/run/x.sock", NULL, NULL), -EINVAL);
	assert_int_equal(db_node_add(f->db, "n3", "relative.sock", NULL, NULL), -EINVAL);
	assert_int_equal(db_node_add(f->db, "n3", "/run/x.sock", "iqn.bad", NULL), -EINVAL);
	char longname[80];
	memset(longname, 'a', 64);
	longname[64] = '\0';
	assert_int_equal(db_node_add(f->db, longname, "/run/x.sock", NULL, NULL), -EINVAL);
	longname[63] = '\0';
	assert_int_equal(db_node_add(f->db, longname, "/run/x.sock", NULL, NULL), 0);

	assert_int_equal(db_node_list(f->db, &nodes, &cnt), 0);
	assert_int_equal(cnt, 3);
	assert_string_equal(nodes[1].name, "n1"); /* ordered by name */
	assert_string_equal(nodes[2].name, "n2");
	assert_string_equal(nodes[2].nqn_prefix, "nqn.2024-01.com.example");
	db_node_list_free(nodes, cnt);

	assert_int_equal(db_node_get(f->db, "n2", &n), 0);
	assert_int_equal(n.id, id);
	assert_int_equal(n.last_seen, 0);
	assert_int_equal(db_node_heartbeat(f->db, id), 0);
	assert_int_equal(db_node_get_by_id(f->db, id, &n), 0);
	assert_true(n.last_seen > 0);
	assert_int_equal(db_node_heartbeat(f->db, 999), -ENOENT);
	assert_int_equal(db_node_get(f->db, "zz", &n), -ENOENT);
	assert_non_null(strstr(db_errmsg(f->db), "zz"));
}

static void test_disks(void **state)
{
	struct fx *f = *state;
	struct db_disk d, got, *arr = NULL;
	size_t cnt = 0;
	int64_t id = 0;

	add_node_disk(f->db);
	assert_int_equal(db_node_add(f->db, "n2", "/tmp/n2.sock", NULL, NULL), 0);
	assert_int_equal(db_disk_get(f->db, "d1", &got), 0);
	assert_string_equal(got.node, "n1");
	assert_string_equal(got.lvstore, "lvs1");
	assert_int_equal(got.cluster_size, DB_CLUSTER_SIZE_DEFAULT);
	assert_int_equal(got.listen_count, 1);
	assert_string_equal(got.listen[0].traddr, "127.0.0.1");
	assert_int_equal(got.listen[0].port, 4420);
	assert_false(got.listen[0].ipv6);
	assert_int_equal(got.transport, DB_TRANSPORT_TCP);
	assert_int_equal(got.lvstore_state, DB_LVSTORE_ABSENT);
	assert_int_equal(got.observed_at, 0);
	assert_string_equal(got.lvstore_uuid, "");

	memset(&d, 0, sizeof(d));
	strcpy(d.name, "d2");
	strcpy(d.node, "n1");
	strcpy(d.path, "/dev/nvme0n1");
	d.is_device = true;
	d.cluster_size = 1 * MiB;
	d.listen_count = 2;
	assert_int_equal(db_listen_parse("10.0.0.1:4421", &d.listen[0]), 0);
	assert_int_equal(db_listen_parse("[fe80::1]:4422", &d.listen[1]), 0);
	d.transport = DB_TRANSPORT_RDMA;
	assert_int_equal(db_disk_add(f->db, &d, &id), 0);
	assert_int_equal(db_disk_get_by_id(f->db, id, &got), 0);
	assert_string_equal(got.lvstore, "d2"); /* defaults to the disk name */
	assert_int_equal(got.listen_count, 2);
	assert_true(got.listen[1].ipv6);
	assert_string_equal(got.listen[1].traddr, "fe80::1");
	assert_int_equal(got.listen[1].port, 4422);
	assert_int_equal(got.transport, DB_TRANSPORT_RDMA);
	assert_true(got.is_device);

	/* Duplicates and bad input. */
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EEXIST); /* name */
	strcpy(d.name, "d3");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EEXIST); /* same path on n1 */
	assert_non_null(strstr(db_errmsg(f->db), "d2"));
	strcpy(d.path, "/dev/nvme1n1");
	strcpy(d.lvstore, "lvs1");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EEXIST); /* lvstore name on n1 */
	strcpy(d.node, "n2");
	assert_int_equal(db_disk_add(f->db, &d, NULL), 0); /* fine on another node */
	strcpy(d.name, "d4");
	strcpy(d.node, "nx");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -ENOENT);
	strcpy(d.node, "n2");
	strcpy(d.lvstore, "lvs4");
	strcpy(d.path, "/dev/nvme4n1");
	d.cluster_size = 3000;
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL);
	d.cluster_size = 0;
	strcpy(d.interface, "eth0");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL); /* both */
	d.listen_count = 0;
	d.port = 4430;
	assert_int_equal(db_disk_add(f->db, &d, NULL), 0);
	assert_int_equal(db_disk_get(f->db, "d4", &got), 0);
	assert_string_equal(got.interface, "eth0");
	assert_int_equal(got.port, 4430);
	assert_int_equal(got.listen_count, 0);
	strcpy(d.name, "d5");
	strcpy(d.lvstore, "lvs5");
	strcpy(d.path, "/dev/x5");
	d.interface[0] = '\0';
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL); /* neither */
	strcpy(d.path, "dev/x5");
	strcpy(d.interface, "eth0");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL); /* relative */
	strcpy(d.path, "/dev/x\n5");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL);
	strcpy(d.path, "/dev/x\xff");
	assert_int_equal(db_disk_add(f->db, &d, NULL), -EINVAL);

	assert_int_equal(db_disk_list(f->db, "n1", &arr, &cnt), 0);
	assert_int_equal(cnt, 2);
	db_disk_list_free(arr, cnt);
	assert_int_equal(db_disk_list(f->db, NULL, &arr, &cnt), 0);
	assert_int_equal(cnt, 4);
	db_disk_list_free(arr, cnt);

	/* Observed state. */
	assert_int_equal(db_disk_get(f->db, "d1", &got), 0);
	assert_int_equal(db_disk_set_lvstore(f->db, got.id, "not-a-uuid", 0), -EINVAL);
	assert_int_equal(db_disk_set_lvstore(f->db, got.id, "0b5e2f4a-1c9d-4e7f-8a6b-3c2d1e0f9a8b",
					     0), 0);
	assert_int_equal(db_disk_observe(f->db, got.id, DB_LVSTORE_LOADED, 8 * GiB, 6 * GiB), 0);
	assert_int_equal(db_disk_get(f->db, "d1", &got), 0);
	assert_string_equal(got.lvstore_uuid, "0b5e2f4a-1c9d-4e7f-8a6b-3c2d1e0f9a8b");
	assert_int_equal(got.cluster_size, DB_CLUSTER_SIZE_DEFAULT); /* 0 keeps */
	assert_int_equal(got.lvstore_state, DB_LVSTORE_LOADED);
	assert_int_equal(got.capacity, 8 * GiB);
	assert_int_equal(got.free, 6 * GiB);
	assert_true(got.observed_at > 0);
	assert_int_equal(db_disk_observe(f->db, got.id, DB_LVSTORE_ABSENT, 0, 0), 0);
	assert_int_equal(db_disk_get(f->db, "d1", &got), 0);
	assert_int_equal(got.lvstore_state, DB_LVSTORE_ABSENT);
	assert_int_equal(got.free, 6 * GiB); /* last known kept */
	assert_int_equal(db_disk_observe(f->db, 999, DB_LVSTORE_ABSENT, 0, 0), -ENOENT);
}

static void test_listen_parse(void **state)
{
	struct db_listen l;

	assert_int_equal(db_listen_parse("127.0.0.1:4420", &l), 0);
	assert_int_equal(db_listen_parse("[::1]:1", &l), 0);
	assert_true(l.ipv6);
	assert_int_equal(db_listen_parse("127.0.0.1", &l), -EINVAL);
	assert_int_equal(db_listen_parse("127.0.0.1:0", &l), -EINVAL);
	assert_int_equal(db_listen_parse("127.0.0.1:65536", &l), -EINVAL);
	assert_int_equal(db_listen_parse("127.0.0.1:-1", &l), -EINVAL);
	assert_int_equal(db_listen_parse("127.0.0.1:44x", &l), -EINVAL);
	assert_int_equal(db_listen_parse("300.0.0.1:4420", &l), -EINVAL);
	assert_int_equal(db_listen_parse("::1:4420", &l), -EINVAL);
	assert_int_equal(db_listen_parse("[::1:4420", &l), -EINVAL);
	assert_int_equal(db_listen_parse("host:4420", &l), -EINVAL);
	assert_int_equal(db_listen_parse("", &l), -EINVAL);
}

/* ------------------------------------------------------------ lvols */

static void test_lvol_lifecycle(void **state)
{
	struct fx *f = *state;
	const char *hosts[] = { "nqn.2014-08.org.nvmexpress:uuid:1", "nqn.2026-01.io.example:h2" };
	struct db_lvol_spec s = { .disk = "d1", .size = 10 * MiB + 1, .hosts = hosts, .host_count = 2 };
	struct db_lvol l;
	int64_t id = 0;

	add_node_disk(f->db);
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_CREATING);
	assert_int_equal(l.size, 10 * MiB + 1);
	assert_int_equal(l.real_size, 0);
	assert_int_equal(l.generation, 1);
	assert_string_equal(l.nqn, DB_NQN_PREFIX_DEFAULT ":lvol-1");
	assert_string_equal(l.disk, "d1");
	assert_string_equal(l.node, "n1");
	assert_int_equal(l.host_count, 2);
	assert_string_equal(l.hosts[1], hosts[1]);
	assert_string_equal(l.uuid, "");
	assert_int_equal(l.clone_of, 0);
	assert_true(l.created_at > 0);
	db_lvol_clear(&l);
	db_lvol_clear(&l); /* idempotent */

	/* Agent: uuid + real size, then READY conditional on the generation. */
	assert_int_equal(db_lvol_set_uuid(f->db, id, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11",
					  12 * MiB), 0);
	assert_int_equal(db_lvol_set_state(f->db, id, 1, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_READY);
	assert_int_equal(l.real_size, 12 * MiB);
	assert_int_equal(l.generation, 1); /* observed writes never bump it */
	assert_string_equal(l.uuid, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11");
	db_lvol_clear(&l);

	/* Resize: desired write bumps generation; a stale agent write loses. */
	assert_int_equal(db_lvol_resize(f->db, id, 5 * MiB, false), -EINVAL);
	assert_non_null(strstr(db_errmsg(f->db), "--allow-shrink"));
	assert_int_equal(db_lvol_resize(f->db, id, 10 * MiB + 1, false), 0); /* same: no-op */
	assert_int_equal(db_lvol_resize(f->db, id, 0, false), -EINVAL);
	assert_int_equal(db_lvol_resize(f->db, id, DB_LVOL_SIZE_MAX + 1, false), -EINVAL);
	assert_int_equal(db_lvol_resize(f->db, id, 20 * MiB, false), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_RESIZING);
	assert_int_equal(l.generation, 2);
	assert_int_equal(l.size, 20 * MiB);
	db_lvol_clear(&l);
	assert_int_equal(db_lvol_resize(f->db, id, 30 * MiB, false), -EBUSY);
	assert_int_equal(db_lvol_set_state(f->db, id, 1, DB_LVOL_READY, NULL), -ESTALE);
	assert_int_equal(db_lvol_zero_begin(f->db, id, 1, 12 * MiB, 20 * MiB), -ESTALE);
	assert_int_equal(db_lvol_zero_begin(f->db, id, 2, 20 * MiB, 12 * MiB), -EINVAL);
	assert_int_equal(db_lvol_zero_begin(f->db, id, 2, 12 * MiB, 20 * MiB), 0);
	assert_int_equal(db_lvol_zero_progress(f->db, id, 16 * MiB), 0);
	assert_int_equal(db_lvol_set_reason(f->db, id, "bad\nline"), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_string_equal(l.reason, "bad?line");
	db_lvol_clear(&l);
	assert_int_equal(db_lvol_set_reason(f->db, id, "nvme connect refused"), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.zero_from, 12 * MiB);
	assert_int_equal(l.zero_to, 20 * MiB);
	assert_int_equal(l.zero_done, 16 * MiB);
	assert_int_equal(l.state, DB_LVOL_RESIZING);
	assert_string_equal(l.reason, "nvme connect refused");
	db_lvol_clear(&l);
	assert_int_equal(db_lvol_resize_done(f->db, id, 1, 20 * MiB), -ESTALE);
	assert_int_equal(db_lvol_resize_done(f->db, id, 2, 20 * MiB), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_READY);
	assert_int_equal(l.zero_to, 0);
	assert_int_equal(l.zero_from, 0);
	assert_int_equal(l.real_size, 20 * MiB);
	assert_string_equal(l.reason, "");
	db_lvol_clear(&l);
	/* Shrink with permission. */
	assert_int_equal(db_lvol_resize(f->db, id, 8 * MiB, true), 0);
	assert_int_equal(db_lvol_resize_done(f->db, id, 3, 8 * MiB), 0);

	/* Delete: any live state -> DELETING, idempotent; DELETED is gone. */
	assert_int_equal(db_lvol_delete(f->db, id), 0);
	assert_int_equal(db_lvol_delete(f->db, id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_int_equal(l.state, DB_LVOL_DELETING);
	assert_int_equal(l.generation, 4);
	db_lvol_clear(&l);
	assert_int_equal(db_lvol_resize(f->db, id, 30 * MiB, false), -ENOENT);
	assert_int_equal(db_lvol_set_state(f->db, id, 3, DB_LVOL_READY, NULL), -ESTALE);
	assert_int_equal(db_lvol_set_state(f->db, id, 4, DB_LVOL_DELETED, NULL), 0);
	assert_int_equal(db_lvol_delete(f->db, id), -ENOENT);
	assert_int_equal(db_lvol_get(f->db, 42, &l), -ENOENT);
	assert_int_equal(db_lvol_set_state(f->db, 42, 0, DB_LVOL_READY, NULL), -ENOENT);
	assert_int_equal(db_lvol_set_uuid(f->db, 42, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11", 0),
			 -ENOENT);
	assert_int_equal(db_lvol_set_uuid(f->db, id, "xyz", 0), -EINVAL);
	assert_int_equal(db_lvol_set_nqn(f->db, id, "nqn.2026-11.io.diskengine:lvol-x"), 0);
	assert_int_equal(db_lvol_set_nqn(f->db, id, "bad nqn"), -EINVAL);
	assert_int_equal(db_lvol_set_real_size(f->db, id, 1), 0);
}

static void test_lvol_create_bad_input(void **state)
{
	struct fx *f = *state;
	const char *bad_host[] = { "host with space" };
	const char *dup_host[] = { "nqn.a.b:c", "nqn.a.b:c" };
	struct db_lvol_spec s = { .disk = "d1", .size = MiB };
	struct db_lvol *arr = NULL;
	size_t cnt = 0;

	add_node_disk(f->db);
	s.size = 0;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.size = DB_LVOL_SIZE_MAX + 1;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.size = MiB;
	s.disk = "nope";
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOENT);
	assert_non_null(strstr(db_errmsg(f->db), "nope"));
	s.disk = "d\xe2\x98\x83";
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.disk = "d1";
	s.hosts = bad_host;
	s.host_count = 1;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.hosts = dup_host;
	s.host_count = 2;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.host_count = DB_HOSTS_MAX + 1;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	s.host_count = 0;
	s.clone_of = 7;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOENT);
	s.clone_of = -1;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -EINVAL);
	/* Nothing was written. */
	assert_int_equal(db_lvol_list(f->db, NULL, &arr, &cnt), 0);
	assert_int_equal(cnt, 0);
	db_lvol_list_free(arr, cnt);
}

static void test_lvol_space_check(void **state)
{
	struct fx *f = *state;
	struct db_lvol_spec s = { .disk = "d1" };
	struct db_disk d;
	int64_t a, b;

	add_node_disk(f->db);
	/* Unknown free space: anything goes (the agent judges). */
	s.size = 100 * GiB;
	assert_int_equal(db_lvol_create(f->db, &s, &a), 0);
	assert_int_equal(db_lvol_delete(f->db, a), 0);
	assert_int_equal(db_disk_get(f->db, "d1", &d), 0);
	assert_int_equal(db_disk_observe(f->db, d.id, DB_LVSTORE_LOADED, 128 * MiB, 100 * MiB), 0);
	s.size = 101 * MiB;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	assert_non_null(strstr(db_errmsg(f->db), "d1"));
	s.size = 61 * MiB; /* rounds to 64 MiB of clusters */
	assert_int_equal(db_lvol_create(f->db, &s, &a), 0);
	s.size = 40 * MiB; /* 100 - 64 pending = 36 left */
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	assert_non_null(strstr(db_errmsg(f->db), "pending"));
	s.size = 36 * MiB;
	assert_int_equal(db_lvol_create(f->db, &s, &b), 0);
	s.thin = true;
	s.size = 10 * GiB; /* thin: not checked */
	assert_int_equal(db_lvol_create(f->db, &s, NULL), 0);
	/* The agent created a, free re-synced; growing b past free is refused. */
	assert_int_equal(db_lvol_set_uuid(f->db, a, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11", 64 * MiB), 0);
	assert_int_equal(db_lvol_set_state(f->db, a, 0, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_lvol_set_uuid(f->db, b, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a12", 36 * MiB), 0);
	assert_int_equal(db_lvol_set_state(f->db, b, 0, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_disk_observe(f->db, d.id, DB_LVSTORE_LOADED, 128 * MiB, 0), 0);
	assert_int_equal(db_lvol_resize(f->db, b, 40 * MiB, false), -ENOSPC);
	assert_int_equal(db_disk_observe(f->db, d.id, DB_LVSTORE_LOADED, 128 * MiB, 4 * MiB), 0);
	assert_int_equal(db_lvol_resize(f->db, b, 40 * MiB, false), 0);
}

/* The agent allocated a thick lvol after it last read the disk's free bytes:
 * until its next observation that space still counts as taken, so a create
 * landing in between cannot over-commit. */
static void test_space_allocated_after_observation(void **state)
{
	struct fx *f = *state;
	struct db_lvol_spec s = { .disk = "d1", .size = 64 * MiB };
	struct db_disk d;
	int64_t a;

	add_node_disk(f->db);
	assert_int_equal(db_disk_get(f->db, "d1", &d), 0);
	assert_int_equal(db_disk_observe(f->db, d.id, DB_LVSTORE_LOADED, 128 * MiB, 100 * MiB), 0);
	assert_int_equal(db_lvol_create(f->db, &s, &a), 0);
	usleep(3000); /* strictly after the observation */
	assert_int_equal(db_lvol_set_uuid(f->db, a, "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11", 64 * MiB), 0);
	s.size = 40 * MiB; /* 100 free - 64 allocated but not yet observed = 36 */
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	assert_int_equal(db_lvol_set_state(f->db, a, 0, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	usleep(3000);
	assert_int_equal(db_disk_observe(f->db, d.id, DB_LVSTORE_LOADED, 128 * MiB, 36 * MiB), 0);
	assert_int_equal(db_lvol_create(f->db, &s, NULL), -ENOSPC);
	s.size = 36 * MiB;
	assert_int_equal(db_lvol_create(f->db, &s, NULL), 0);
}

static void test_lvol_lists(void **state)
{
	struct fx *f = *state;
	struct db_lvol_filter flt = { .state = DB_LVOL_ANY };
	struct db_lvol *arr = NULL;
	struct db_disk d;
	size_t cnt = 0;
	int64_t ids[5];
	int i;

	add_node_disk(f->db);
	assert_int_equal(db_node_add(f->db, "n2", "/tmp/n2.sock", "nqn.2000-01.x.y", NULL), 0);
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "e1");
	strcpy(d.node, "n2");
	strcpy(d.path, "/tmp/e1.img");
	strcpy(d.interface, "lo");
	d.port = 4420;
	assert_int_equal(db_disk_add(f->db, &d, NULL), 0);
	for (i = 0; i < 4; i++)
		ids[i] = create_lvol(f->db, MiB, i & 1);
	struct db_lvol_spec s = { .disk = "e1", .size = MiB };
	assert_int_equal(db_lvol_create(f->db, &s, &ids[4]), 0);
	assert_int_equal(db_lvol_set_state(f->db, ids[0], 0, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_lvol_set_state(f->db, ids[1], 0, DB_LVOL_DELETED, NULL), 0);
	assert_int_equal(db_lvol_set_state(f->db, ids[2], 0, DB_LVOL_FAILED, "no space"), 0);

	assert_int_equal(db_lvol_list_by_state(f->db, "n1", DB_LVOL_CREATING, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	assert_int_equal(arr[0].id, ids[3]);
	assert_true(arr[0].thin);
	db_lvol_list_free(arr, cnt);
	assert_int_equal(db_lvol_list_by_state(f->db, "n2", DB_LVOL_CREATING, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	assert_string_equal(arr[0].nqn, "nqn.2000-01.x.y:lvol-5");
	db_lvol_list_free(arr, cnt);
	assert_int_equal(db_lvol_list(f->db, &flt, &arr, &cnt), 0);
	assert_int_equal(cnt, 4); /* DELETED hidden */
	db_lvol_list_free(arr, cnt);
	flt.include_deleted = true;
	assert_int_equal(db_lvol_list(f->db, &flt, &arr, &cnt), 0);
	assert_int_equal(cnt, 5);
	db_lvol_list_free(arr, cnt);
	flt.include_deleted = false;
	flt.disk = "d1";
	flt.state = DB_LVOL_FAILED;
	assert_int_equal(db_lvol_list(f->db, &flt, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	assert_string_equal(arr[0].reason, "no space");
	db_lvol_list_free(arr, cnt);
	assert_int_equal(db_lvol_list_by_state(f->db, "n1", DB_LVOL_DELETED, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	db_lvol_list_free(arr, cnt);
	assert_int_equal(db_lvol_list_by_state(f->db, "nobody", DB_LVOL_ANY, &arr, &cnt), 0);
	assert_int_equal(cnt, 0);
	db_lvol_list_free(arr, cnt);
}

static void test_state_names(void **state)
{
	enum db_lvol_state ls;
	enum db_snapshot_state ss;
	enum db_transport t;

	assert_string_equal(db_lvol_state_name(DB_LVOL_RESIZING), "RESIZING");
	assert_int_equal(db_lvol_state_parse("ready", &ls), 0);
	assert_int_equal(ls, DB_LVOL_READY);
	assert_int_equal(db_lvol_state_parse("RDY", &ls), -EINVAL);
	assert_int_equal(db_snapshot_state_parse("DELETING", &ss), 0);
	assert_int_equal(ss, DB_SNAPSHOT_DELETING);
	assert_int_equal(db_transport_parse("rdma", &t), 0);
	assert_int_equal(t, DB_TRANSPORT_RDMA);
	assert_int_equal(db_transport_parse("FC", &t), -EINVAL);
	assert_string_equal(db_lvstore_state_name(DB_LVSTORE_LOADED), "loaded");
	assert_true(db_nqn_valid("nqn.2014-08.org.nvmexpress.discovery"));
	assert_false(db_nqn_valid("nqn."));
	assert_false(db_nqn_valid(NULL));
}

/* Placement without a disk: most available space on a live node. */
static void add_disk(struct db *db, const char *name, const char *node)
{
	struct db_disk d;

	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "%s", name);
	snprintf(d.node, sizeof(d.node), "%s", node);
	snprintf(d.path, sizeof(d.path), "/tmp/%s.img", name);
	snprintf(d.interface, sizeof(d.interface), "lo");
	d.port = 4420;
	assert_int_equal(db_disk_add(db, &d, NULL), 0);
}

static void observe(struct db *db, const char *disk, uint64_t free_bytes)
{
	struct db_disk d;

	assert_int_equal(db_disk_get(db, disk, &d), 0);
	assert_int_equal(db_disk_observe(db, d.id, DB_LVSTORE_LOADED, 10 * GiB, free_bytes), 0);
}

static void test_lvol_placement(void **state)
{
	struct fx *f = *state;
	struct db_lvol_spec s = { .size = 100 * MiB };
	struct db_node n;
	struct db_lvol l;
	int64_t id;

	assert_int_equal(db_node_add(f->db, "a", "/tmp/a.sock", NULL, NULL), 0);
	assert_int_equal(db_node_add(f->db, "b", "/tmp/b.sock", NULL, NULL), 0);
	add_disk(f->db, "a1", "a");
	add_disk(f->db, "a2", "a");
	add_disk(f->db, "b1", "b");
	/* Nobody live yet. */
	assert_int_equal(db_lvol_create(f->db, &s, &id), -ENOENT);
	assert_non_null(strstr(db_errmsg(f->db), "live"));
	observe(f->db, "a1", 1 * GiB);
	observe(f->db, "a2", 3 * GiB);
	observe(f->db, "b1", 5 * GiB);
	assert_int_equal(db_node_get(f->db, "a", &n), 0);
	assert_int_equal(db_node_heartbeat(f->db, n.id), 0);
	/* b is silent: its bigger disk is not chosen. */
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_string_equal(l.disk, "a2");
	db_lvol_clear(&l);
	assert_int_equal(db_node_get(f->db, "b", &n), 0);
	assert_int_equal(db_node_heartbeat(f->db, n.id), 0);
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_string_equal(l.disk, "b1");
	db_lvol_clear(&l);
	/* Restricted to a node; pending thick creates count against free space. */
	s.node = "a";
	s.size = 3000 * MiB; /* a2 has 3 GiB - 100 MiB pending = 2972 MiB */
	assert_int_equal(db_lvol_create(f->db, &s, &id), -ENOSPC);
	s.size = 2800 * MiB;
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_string_equal(l.disk, "a2");
	db_lvol_clear(&l);
	s.size = 1 * GiB; /* a1 fits exactly */
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	assert_int_equal(db_lvol_get(f->db, id, &l), 0);
	assert_string_equal(l.disk, "a1");
	db_lvol_clear(&l);
	s.thin = true;
	s.size = 100 * GiB; /* thin: the most available, whatever the size */
	assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
	s.node = "zz";
	assert_int_equal(db_lvol_create(f->db, &s, &id), -ENOENT);
	/* --disk with a node that is not the disk's. */
	s.node = "b";
	s.disk = "a1";
	assert_int_equal(db_lvol_create(f->db, &s, &id), -EINVAL);
	assert_non_null(strstr(db_errmsg(f->db), "belongs to node 'a'"));
}

/* Concurrent writers (own connections) never over-commit a thick disk. */
struct racer {
	const char *path;
	int ok, nospc;
};

static void *race_creates(void *arg)
{
	struct racer *r = arg;
	struct db_lvol_spec s = { .size = 10 * MiB };
	struct db *db = NULL;
	int i;

	if (db_open(r->path, &db) != 0)
		return NULL;
	for (i = 0; i < 20; i++) {
		int rc = db_lvol_create(db, &s, NULL);

		if (rc == 0)
			r->ok++;
		else if (rc == -ENOSPC)
			r->nospc++;
	}
	db_close(db);
	return NULL;
}

static void test_placement_race(void **state)
{
	struct fx *f = *state;
	struct racer r[4];
	pthread_t t[4];
	struct db_node n;
	int i, ok = 0, nospc = 0;

	assert_int_equal(db_node_add(f->db, "a", "/tmp/a.sock", NULL, NULL), 0);
	add_disk(f->db, "a1", "a");
	add_disk(f->db, "a2", "a");
	observe(f->db, "a1", 100 * MiB);
	observe(f->db, "a2", 100 * MiB);
	assert_int_equal(db_node_get(f->db, "a", &n), 0);
	assert_int_equal(db_node_heartbeat(f->db, n.id), 0);
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){ .path = f->path };
		assert_int_equal(pthread_create(&t[i], NULL, race_creates, &r[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += r[i].ok;
		nospc += r[i].nospc;
	}
	/* 10 MiB rounds up to 12 MiB of 4 MiB clusters: 8 fit per 100 MiB disk. */
	assert_int_equal(ok, 16);
	assert_int_equal(nospc, 80 - 16);
}

/* ---------------------------------------------------- snapshots, clones */

static void test_snapshots_and_clones(void **state)
{
	struct fx *f = *state;
	struct db_snapshot s, *arr = NULL;
	struct db_lvol l;
	size_t cnt = 0;
	int64_t lv, sid = 0, cid = 0;

	add_node_disk(f->db);
	lv = create_lvol(f->db, 8 * MiB, false);
	assert_int_equal(db_snapshot_create(f->db, lv, &sid), -EBUSY); /* CREATING */
	assert_int_equal(db_snapshot_create(f->db, 99, &sid), -ENOENT);
	assert_int_equal(db_lvol_set_state(f->db, lv, 1, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_snapshot_create(f->db, lv, &sid), 0);
	assert_int_equal(db_snapshot_get(f->db, sid, &s), 0);
	assert_int_equal(s.state, DB_SNAPSHOT_CREATING);
	assert_int_equal(s.lvol_id, lv);
	assert_int_equal(s.size, 8 * MiB);
	assert_string_equal(s.node, "n1");
	assert_string_equal(s.disk, "d1");

	struct db_lvol_spec cs = { .clone_of = sid };
	assert_int_equal(db_lvol_create(f->db, &cs, &cid), -EBUSY); /* not READY yet */
	assert_int_equal(db_snapshot_set_uuid(f->db, sid, "1f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11"), 0);
	assert_int_equal(db_snapshot_set_state(f->db, sid, 1, DB_SNAPSHOT_READY, NULL), 0);
	assert_int_equal(db_lvol_create(f->db, &cs, &cid), 0);
	assert_int_equal(db_lvol_get(f->db, cid, &l), 0);
	assert_int_equal(l.clone_of, sid);
	assert_true(l.thin);
	assert_int_equal(l.size, 8 * MiB);
	assert_string_equal(l.disk, "d1");
	db_lvol_clear(&l);

	assert_int_equal(db_snapshot_list_by_state(f->db, "n1", DB_SNAPSHOT_READY, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	assert_string_equal(arr[0].uuid, "1f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11");
	db_snapshot_list_free(arr, cnt);

	assert_int_equal(db_snapshot_delete(f->db, sid), 0);
	assert_int_equal(db_snapshot_delete(f->db, sid), 0);
	assert_int_equal(db_snapshot_get(f->db, sid, &s), 0);
	assert_int_equal(s.generation, 2);
	assert_int_equal(db_snapshot_set_reason(f->db, sid, "snapshot has more than one clone"), 0);
	assert_int_equal(db_snapshot_set_state(f->db, sid, 1, DB_SNAPSHOT_DELETED, NULL), -ESTALE);
	assert_int_equal(db_snapshot_set_state(f->db, sid, 2, DB_SNAPSHOT_DELETED, NULL), 0);
	assert_int_equal(db_snapshot_delete(f->db, sid), -ENOENT);
	struct db_snapshot_filter flt = { .state = DB_SNAPSHOT_ANY };
	assert_int_equal(db_snapshot_list(f->db, &flt, &arr, &cnt), 0);
	assert_int_equal(cnt, 0);
	db_snapshot_list_free(arr, cnt);
	flt.include_deleted = true;
	flt.lvol_id = lv;
	assert_int_equal(db_snapshot_list(f->db, &flt, &arr, &cnt), 0);
	assert_int_equal(cnt, 1);
	db_snapshot_list_free(arr, cnt);
	assert_int_equal(db_snapshot_set_uuid(f->db, 77, "1f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11"),
			 -ENOENT);
}

/* ----------------------------------------------------------- events */

static void test_events_dedup(void **state)
{
	struct fx *f = *state;
	struct db_event *ev = NULL;
	size_t cnt = 0;

	assert_int_equal(db_event_raise(f->db, "n1", "drift-missing", "lvol/4", "gone"), 0);
	assert_int_equal(db_event_raise(f->db, "n1", "drift-missing", "lvol/4", "still gone"), 0);
	assert_int_equal(db_event_raise(f->db, NULL, "orphan", "lvs1/77", NULL), 0);
	assert_int_equal(db_event_list(f->db, false, &ev, &cnt), 0);
	assert_int_equal(cnt, 2);
	assert_string_equal(ev[0].kind, "drift-missing");
	assert_int_equal(ev[0].count, 2);
	assert_string_equal(ev[0].detail, "still gone");
	assert_string_equal(ev[0].node, "n1");
	assert_true(ev[0].last_seen >= ev[0].first_seen);
	assert_int_equal(ev[0].resolved_at, 0);
	db_event_list_free(ev, cnt);

	assert_int_equal(db_event_resolve(f->db, "drift-missing", "lvol/4"), 0);
	assert_int_equal(db_event_resolve(f->db, "drift-missing", "lvol/4"), 0);
	assert_int_equal(db_event_raise(f->db, "n1", "drift-missing", "lvol/4", "again"), 0);
	assert_int_equal(db_event_list(f->db, false, &ev, &cnt), 0);
	assert_int_equal(cnt, 2);
	db_event_list_free(ev, cnt);
	assert_int_equal(db_event_list(f->db, true, &ev, &cnt), 0);
	assert_int_equal(cnt, 3);
	assert_true(ev[0].resolved_at > 0);
	db_event_list_free(ev, cnt);

	assert_int_equal(db_event_raise(f->db, NULL, "", "x", NULL), -EINVAL);
	assert_int_equal(db_event_raise(f->db, NULL, "k", "", NULL), -EINVAL);
	assert_int_equal(db_event_raise(f->db, "bad node", "k", "o", NULL), -EINVAL);
	/* Junk from a target is cleaned, not refused. */
	assert_int_equal(db_event_raise(f->db, NULL, "k2", "o", "a\x01" "b\xff" "c\xe2\x98\x83" "d\xe2\x98"), 0);
	assert_int_equal(db_event_list(f->db, false, &ev, &cnt), 0);
	assert_string_equal(ev[cnt - 1].detail, "a?b?c\xe2\x98\x83" "d??");
	db_event_list_free(ev, cnt);
	/* Long details are truncated, not refused. */
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(db_event_raise(f->db, NULL, "k", "o", big), 0);
	assert_int_equal(db_event_list(f->db, false, &ev, &cnt), 0);
	assert_int_equal(strlen(ev[cnt - 1].detail), DB_REASON_MAX - 1);
	db_event_list_free(ev, cnt);
	db_check_events_prune(f->db, 1); /* lvol/4 above */
}

/* ---------------------------------------------------- change counter */

static void test_change_counter(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL;
	uint64_t c0 = 0, c1 = 0, now = 0;
	int64_t id;

	assert_int_equal(db_open(f->path, &other), 0);
	assert_int_equal(db_change_counter(other, &c0), 0);
	add_node_disk(f->db);
	assert_int_equal(db_changes_since(other, c0, &c1), 1);
	assert_true(c1 > c0);
	assert_int_equal(db_changes_since(other, c1, &now), 0);
	/* Observed-state writes do not move it (but do move data_version). */
	struct db_node n;
	uint64_t dv0 = 0, dv1 = 0;
	assert_int_equal(db_data_version(other, &dv0), 0);
	assert_int_equal(db_node_get(f->db, "n1", &n), 0);
	assert_int_equal(db_node_heartbeat(f->db, n.id), 0);
	assert_int_equal(db_data_version(other, &dv1), 0);
	assert_int_not_equal(dv0, dv1);
	assert_int_equal(db_event_raise(f->db, NULL, "k", "o", NULL), 0);
	assert_int_equal(db_changes_since(other, c1, &now), 0);
	id = create_lvol(f->db, MiB, true);
	assert_int_equal(db_changes_since(other, c1, &now), 1);
	c1 = now;
	assert_int_equal(db_lvol_set_state(other, id, 1, DB_LVOL_READY, NULL), 0);
	assert_int_equal(db_changes_since(other, c1, &now), 0);
	assert_int_equal(db_changes_since(f->db, c1, &now), 0);
	/* A writer sees its own desired writes too. */
	assert_int_equal(db_lvol_delete(other, id), 0);
	assert_int_equal(db_changes_since(other, c1, &now), 1);
	assert_int_equal(db_changes_since(f->db, c1, &now), 1);
	db_close(other);
}

/* db_data_wait: returns 1 as soon as another connection commits anything
 * (an observed write too), 0 after the timeout when nothing was written. */
static void test_data_wait(void **state)
{
	struct fx *f = *state;
	struct db *other = NULL;
	struct db_node n;
	uint64_t d0 = 0, now = 0, t;

	assert_int_equal(db_open(f->path, &other), 0);
	add_node_disk(f->db);
	assert_int_equal(db_data_version(other, &d0), 0);
	t = clock_mono_ms();
	assert_int_equal(db_data_wait(other, d0, 200, &now), 0);
	assert_true(clock_mono_ms() - t >= 190);
	assert_int_equal(now, d0);
	assert_int_equal(db_node_get(f->db, "n1", &n), 0);
	assert_int_equal(db_node_heartbeat(f->db, n.id), 0);
	t = clock_mono_ms();
	assert_int_equal(db_data_wait(other, d0, 5000, &now), 1);
	assert_true(clock_mono_ms() - t < 1000);
	assert_int_not_equal(now, d0);
	db_close(other);
}

/* A long-lived reader (an agent loop polling with cached statements) must
 * not pin a read transaction: otherwise checkpoints cannot restart the WAL
 * and it grows without bound while another handle writes. */
static void test_cached_reader_does_not_pin_wal(void **state)
{
	struct fx *f = *state;
	struct db_lvol_spec s = { .disk = "d1", .size = MiB, .thin = true };
	struct db *reader = NULL;
	struct db_lvol *arr = NULL;
	struct db_lvol l;
	struct stat sb;
	char wal[160];
	uint64_t c = 0;
	size_t n = 0;
	int64_t id = 0;
	int i;

	add_node_disk(f->db);
	assert_int_equal(db_open(f->path, &reader), 0);
	for (i = 0; i < 3000; i++) {
		assert_int_equal(db_lvol_create(f->db, &s, &id), 0);
		if (i % 10 == 0) {
			assert_int_equal(db_changes_since(reader, c, &c), 1);
			assert_int_equal(db_lvol_list_by_state(reader, "n1", DB_LVOL_READY, &arr, &n), 0);
			db_lvol_list_free(arr, n);
			assert_int_equal(db_lvol_get(reader, id, &l), 0);
			db_lvol_clear(&l);
		}
	}
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size < 16 * (off_t)MiB); /* ~4 MiB: the WAL was restarted */
	db_close(reader);
}

/* ----------------------------------------------------- lock contention */

struct holder {
	const char *path;
	int hold_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool locked;
};

static void *hold_lock(void *arg)
{
	struct holder *h = arg;
	sqlite3 *c;

	if (sqlite3_open(h->path, &c) != SQLITE_OK)
		return NULL;
	sqlite3_exec(c, "BEGIN IMMEDIATE", 0, 0, 0);
	pthread_mutex_lock(&h->mu);
	h->locked = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	usleep((useconds_t)h->hold_ms * 1000);
	sqlite3_exec(c, "COMMIT", 0, 0, 0);
	sqlite3_close(c);
	return NULL;
}

static void run_with_lock_held(struct fx *f, int hold_ms, int busy_ms, int expect)
{
	struct holder h = { .path = f->path, .hold_ms = hold_ms };
	struct db_node *nodes = NULL;
	size_t cnt = 0;
	pthread_t t;
	int rc;

	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.cv, NULL);
	assert_int_equal(pthread_create(&t, NULL, hold_lock, &h), 0);
	pthread_mutex_lock(&h.mu);
	while (!h.locked)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	db_busy_timeout_set(f->db, busy_ms);
	rc = db_node_add(f->db, "nb", "/tmp/nb.sock", NULL, NULL);
	assert_int_equal(rc, expect);
	if (rc == -EAGAIN)
		assert_non_null(strstr(db_errmsg(f->db), "locked"));
	/* Readers are never blocked by the writer (WAL). */
	assert_int_equal(db_node_list(f->db, &nodes, &cnt), 0);
	db_node_list_free(nodes, cnt);
	pthread_join(t, NULL);
	pthread_mutex_destroy(&h.mu);
	pthread_cond_destroy(&h.cv);
}

static void test_busy_timeout_error(void **state)
{
	struct fx *f = *state;
	struct db_node n;

	run_with_lock_held(f, 400, 50, -EAGAIN);
	assert_int_equal(db_node_get(f->db, "nb", &n), -ENOENT); /* nothing written */
}

static void test_busy_retried(void **state)
{
	struct fx *f = *state;
	struct db_node n;

	run_with_lock_held(f, 100, 5000, 0);
	assert_int_equal(db_node_get(f->db, "nb", &n), 0);
}

/* ------------------------------------------------- allocation faults */

static int fault_workload(const char *path)
{
	const char *hosts[] = { "nqn.2014-08.org.nvmexpress:uuid:1", "nqn.x.y:z" };
	struct db_lvol_spec s = { .disk = "d1", .size = MiB, .hosts = hosts, .host_count = 2 };
	struct db *db = NULL;
	struct db_lvol *arr = NULL;
	struct db_event *ev = NULL;
	struct db_disk *disks = NULL;
	struct db_node *nodes = NULL;
	struct db_lvol l;
	size_t cnt;
	int64_t id = 0;
	int rc;

	if ((rc = db_open(path, &db)) < 0)
		return rc;
	if ((rc = db_lvol_create(db, &s, &id)) < 0)
		goto out;
	if ((rc = db_lvol_list_by_state(db, "n1", DB_LVOL_CREATING, &arr, &cnt)) < 0)
		goto out;
	db_lvol_list_free(arr, cnt);
	if ((rc = db_lvol_get(db, id, &l)) < 0)
		goto out;
	db_lvol_clear(&l);
	if ((rc = db_event_raise(db, "n1", "k", "o", "d")) < 0)
		goto out;
	if ((rc = db_event_list(db, true, &ev, &cnt)) < 0)
		goto out;
	db_event_list_free(ev, cnt);
	if ((rc = db_disk_list(db, NULL, &disks, &cnt)) < 0)
		goto out;
	db_disk_list_free(disks, cnt);
	if ((rc = db_node_list(db, &nodes, &cnt)) < 0)
		goto out;
	db_node_list_free(nodes, cnt);
	if ((rc = db_lvol_set_state(db, id, 0, DB_LVOL_READY, "ok")) < 0)
		goto out;
	int64_t sid = 0;
	struct db_snapshot snap, *snaps = NULL;
	if ((rc = db_snapshot_create(db, id, &sid)) < 0)
		goto out;
	if ((rc = db_snapshot_get(db, sid, &snap)) < 0)
		goto out;
	if ((rc = db_snapshot_list_by_state(db, "n1", DB_SNAPSHOT_CREATING, &snaps, &cnt)) < 0)
		goto out;
	db_snapshot_list_free(snaps, cnt);
	if ((rc = db_snapshot_delete(db, sid)) < 0)
		goto out;
	struct db_lvol_spec placed = { .size = MiB, .thin = true, .node = "n1" };
	rc = db_lvol_create(db, &placed, NULL);
	if (rc < 0 && rc != -ENOENT) /* n1 is not live: refused, cleanly */
		goto out;
	if ((rc = db_event_resolve(db, "k", "o")) < 0)
		goto out;
	rc = db_lvol_delete(db, id);
out:
	db_close(db);
	return rc;
}

static void test_alloc_faults(void **state)
{
	struct fx *f = *state;
	unsigned long before, total;
	long k;
	int rc, failures = 0;

	add_node_disk(f->db);
	before = mem_alloc_count();
	assert_int_equal(fault_workload(f->path), 0);
	total = mem_alloc_count() - before;
	assert_true(total > 5);
	for (k = 0; k < (long)total; k++) {
		mem_fault_set(k);
		rc = fault_workload(f->path);
		mem_fault_clear();
		assert_true(rc == 0 || rc == -ENOMEM);
		if (rc == -ENOMEM)
			failures++;
	}
	assert_true(failures > 0);
	/* The store is still consistent and usable. */
	assert_int_equal(fault_workload(f->path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_fresh_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disks, setup, teardown),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test_setup_teardown(test_lvol_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lvol_create_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lvol_space_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_space_allocated_after_observation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lvol_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lvol_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placement_race, setup, teardown),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test_setup_teardown(test_snapshots_and_clones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached_reader_does_not_pin_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_timeout_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_faults, setup, teardown),
	};

	log_level_set(LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
