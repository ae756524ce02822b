/*
 * sqlite.c: the SQLite backend of the state store (the default, one file per
 * node or demo). WAL journal, busy timeout, foreign keys, file mode 0600.
 * Every write is one BEGIN IMMEDIATE transaction; desired-state writes bump
 * the row's generation and the store-wide change counter (meta 'changes')
 * that agents poll through db_change_counter(). Schema migrations live in
 * sqlite_schema.c.
 */
#include "db/db_backend.h"
#include "db/sqlite_private.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct db_ops sqlite_ops;

static struct sq *SQ(struct db *db)
{
	return db->impl;
}

/* ------------------------------------------------------------- errors */

int sq_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Fails with a message built from SQLite's own error for the handle. */
int sq_fail(struct db *db, int rc, const char *what)
{
	struct sq *s = SQ(db);
	int err = sq_errno(rc);

	if (err == 0)
		err = -EIO;
	if (err == -EAGAIN)
		return db_fail(db, err, "database %s is locked by another writer (waited %d ms)",
			       s->path, s->busy_ms);
	if (err == -EROFS)
		return db_fail(db, err, "database %s is read-only", s->path);
	if (err == -EIO || err == -ENOSPC)
		return db_fail(db, err, "%s failed on database %s: %s", what, s->path,
			       sqlite3_errmsg(s->h));
	return db_fail(db, err, "%s: %s", what, sqlite3_errmsg(s->h));
}

/* ---------------------------------------------------------- statements */

int sq_prepare(struct db *db, const char *sql, sqlite3_stmt **st)
{
	struct sq *s = SQ(db);
	size_t i;
	int rc;

	for (i = 0; i < s->ncache; i++) {
		if (!s->cache[i].busy && !strcmp(s->cache[i].sql, sql)) {
			s->cache[i].busy = true;
			*st = s->cache[i].st;
			return 0;
		}
	}
	rc = sqlite3_prepare_v3(s->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (rc != SQLITE_OK) {
		*st = NULL;
		return sq_fail(db, rc, "prepare");
	}
	if (s->ncache < SQ_CACHE_MAX) {
		char *copy = mem_strdup(sql);

		if (copy) { /* else simply not cached */
			s->cache[s->ncache].sql = copy;
			s->cache[s->ncache].st = *st;
			s->cache[s->ncache].busy = true;
			s->ncache++;
		}
	}
	return 0;
}

void sq_release(struct db *db, sqlite3_stmt *st)
{
	struct sq *s = SQ(db);
	size_t i;

	if (!st)
		return;
	for (i = 0; i < s->ncache; i++) {
		if (s->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			s->cache[i].busy = false;
			return;
		}
	}
	sqlite3_finalize(st);
}

int sq_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(SQ(db)->h, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		int err = sq_fail(db, rc, "exec");

		if (msg && sq_errno(rc) != -EAGAIN && sq_errno(rc) != -EROFS)
			db_fail(db, err, "%s", msg);
		sqlite3_free(msg);
		return err;
	}
	return 0;
}

int sq_begin(struct db *db)
{
	return sq_exec(db, "BEGIN IMMEDIATE");
}

int sq_commit(struct db *db)
{
	int rc = sqlite3_exec(SQ(db)->h, "COMMIT", NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		int err = sq_fail(db, rc, "commit");

		sqlite3_exec(SQ(db)->h, "ROLLBACK", NULL, NULL, NULL);
		return err;
	}
	return 0;
}

void sq_rollback(struct db *db)
{
	if (!sqlite3_get_autocommit(SQ(db)->h))
		sqlite3_exec(SQ(db)->h, "ROLLBACK", NULL, NULL, NULL);
}

/* Steps a statement that returns no rows; finalizes it. */
int sq_step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		int err = sq_fail(db, rc, what);

		sq_release(db, st);
		return err;
	}
	sq_release(db, st);
	return 0;
}

/* Truncates text to at most max-1 bytes at a UTF-8 boundary. */
void sq_bind_text_trunc(sqlite3_stmt *st, int idx, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= max) {
		n = max - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	sqlite3_bind_text(st, idx, s ? s : "", (int)n, SQLITE_TRANSIENT);
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	db_strlcpy(dst, (const char *)sqlite3_column_text(st, col), size);
}

static uint64_t col_u64(sqlite3_stmt *st, int col)
{
	int64_t v = sqlite3_column_int64(st, col);

	return v < 0 ? 0 : (uint64_t)v;
}

/* Bumps the store-wide desired-state change counter (inside a transaction). */
int sq_bump_changes(struct db *db)
{
	SQ(db)->dv_valid = false;
	return sq_exec(db, "UPDATE meta SET value = value + 1 WHERE key = 'changes'");
}

/* ---------------------------------------------------------- open/close */

static void sq_close(struct db *db)
{
	struct sq *s = SQ(db);

	if (s) {
		size_t i;

		for (i = 0; i < s->ncache; i++) {
			sqlite3_finalize(s->cache[i].st);
			mem_free(s->cache[i].sql);
		}
		/* st_dv and st_counter live in the cache (taken, never released) */
		sqlite3_close_v2(s->h);
		mem_free(s->path);
		mem_free(s);
	}
	mem_free(db);
}

static int sq_schema_version(struct db *db, int *out)
{
	return sq_schema_current(db, out);
}

static void sq_busy_timeout_set(struct db *db, int ms)
{
	struct sq *s = SQ(db);

	s->busy_ms = ms < 0 ? 0 : ms;
	sqlite3_busy_timeout(s->h, s->busy_ms);
}

static int sq_data_version(struct db *db, uint64_t *out)
{
	struct sq *s = SQ(db);
	int rc;

	if (!s->st_dv && (rc = sq_prepare(db, "PRAGMA data_version", &s->st_dv)) < 0)
		return rc;
	rc = sqlite3_step(s->st_dv);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s->st_dv);
		return sq_fail(db, rc, "data_version");
	}
	*out = col_u64(s->st_dv, 0);
	sqlite3_reset(s->st_dv);
	return 0;
}

static int sq_change_counter(struct db *db, uint64_t *out)
{
	struct sq *s = SQ(db);
	uint64_t udv = 0;
	int64_t dv;
	int rc;

	if ((rc = sq_data_version(db, &udv)) < 0)
		return rc;
	dv = (int64_t)udv;
	if (s->dv_valid && dv == s->dv) {
		*out = s->counter;
		return 0;
	}
	if (!s->st_counter &&
	    (rc = sq_prepare(db, "SELECT value FROM meta WHERE key = 'changes'", &s->st_counter)) < 0)
		return rc;
	rc = sqlite3_step(s->st_counter);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s->st_counter);
		return sq_fail(db, rc, "change counter");
	}
	s->counter = col_u64(s->st_counter, 0);
	sqlite3_reset(s->st_counter);
	s->dv = dv;
	s->dv_valid = true;
	*out = s->counter;
	return 0;
}

/* 0 when the directory holding `path` is writable. */
static int dir_writable(const char *path)
{
	char dir[DB_PATH_MAX * 4];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return access(".", W_OK);
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return access(dir, W_OK);
}

int db_sqlite_open(const char *path, bool create, struct db **out, char *err, size_t errlen)
{
	struct db *db = NULL;
	struct sq *s = NULL;
	struct stat sb;
	int rc, fd;

	*out = NULL;
	if (stat(path, &sb) != 0) {
		if (errno != ENOENT || !create) {
			rc = -errno;
			snprintf(err, errlen, "cannot open database %s: %s", path, common_strerror(rc));
			return rc;
		}
		/* Create it ourselves so the mode is 0600 (SQLite's WAL and shm
		 * files inherit the main file's permissions). */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "cannot create database %s: %s", path, common_strerror(rc));
			return rc;
		}
		if (fd >= 0)
			close(fd);
	} else if (S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "cannot open database %s: is a directory", path);
		return -EISDIR;
	}
	if (access(path, R_OK) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot read database %s: %s", path, common_strerror(rc));
		return rc;
	}
	if (access(path, W_OK) != 0) {
		snprintf(err, errlen, "database %s is read-only (no write permission)", path);
		return -EROFS;
	}
	if (dir_writable(path) != 0) {
		snprintf(err, errlen,
			 "directory of database %s is not writable (SQLite keeps its -wal and -shm files there)",
			 path);
		return -EROFS;
	}

	db = mem_zalloc(sizeof(*db));
	s = mem_zalloc(sizeof(*s));
	if (!db || !s)
		goto nomem;
	s->path = mem_strdup(path);
	if (!s->path)
		goto nomem;
	db->ops = &sqlite_ops;
	db->impl = s;
	s->busy_ms = 5000;

	rc = sqlite3_open_v2(path, &s->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int e = sq_errno(rc);

		snprintf(err, errlen, "cannot open database %s: %s", path,
			 s->h ? sqlite3_errmsg(s->h) : sqlite3_errstr(rc));
		db_close(db);
		return e ? e : -EIO;
	}
	sqlite3_extended_result_codes(s->h, 1);
	sqlite3_busy_timeout(s->h, s->busy_ms);
	rc = sq_schema_setup(db, create);
	if (rc < 0) {
		snprintf(err, errlen, "%s", db->errmsg);
		db_close(db);
		return rc;
	}
	*out = db;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	if (s) {
		mem_free(s->path);
		mem_free(s);
	}
	mem_free(db);
	return -ENOMEM;
}

/* --------------------------------------------------------------- nodes */

static int sq_node_add(struct db *db, const char *name, const char *rpc_socket,
		       const char *nqn_prefix, int64_t *id_out)
{
	sqlite3_stmt *st = NULL;
	int64_t now = clock_wall_ms();
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	rc = sq_prepare(db,
			"INSERT INTO nodes (name, rpc_socket, nqn_prefix, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?4)", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rpc_socket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, nqn_prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	rc = sq_step_done(db, st, "add node");
	if (rc == -EEXIST)
		rc = db_fail(db, rc, "node '%s' already exists", name);
	if (rc < 0)
		goto out;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(SQ(db)->h);
	if ((rc = sq_bump_changes(db)) < 0)
		goto out;
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

#define NODE_COLS "id, name, rpc_socket, nqn_prefix, last_seen, generation, created_at, updated_at"

static void node_from_row(sqlite3_stmt *st, struct db_node *n)
{
	memset(n, 0, sizeof(*n));
	n->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, n->name, sizeof(n->name));
	col_text(st, 2, n->rpc_socket, sizeof(n->rpc_socket));
	col_text(st, 3, n->nqn_prefix, sizeof(n->nqn_prefix));
	n->last_seen = sqlite3_column_int64(st, 4);
	n->generation = col_u64(st, 5);
	n->created_at = sqlite3_column_int64(st, 6);
	n->updated_at = sqlite3_column_int64(st, 7);
}

/* Generic "SELECT rows into a growing array" loop. */
typedef void (*row_fn)(sqlite3_stmt *st, void *elem);

static int collect(struct db *db, sqlite3_stmt *st, size_t elem_size, row_fn fn,
		   int (*post)(sqlite3_stmt *st, void *elem), void **out, size_t *count)
{
	char *arr = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	*count = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char *na = mem_realloc(arr, ncap * elem_size);

			if (!na) {
				rc = -ENOMEM;
				goto fail;
			}
			arr = na;
			cap = ncap;
		}
		fn(st, arr + n * elem_size);
		n++;
		if (post && (rc = post(st, arr + (n - 1) * elem_size)) < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		rc = sq_fail(db, rc, "query");
		goto fail;
	}
	sq_release(db, st);
	*out = arr;
	*count = n;
	return 0;
fail:
	sq_release(db, st);
	if (post == NULL)
		mem_free(arr);
	else /* only lvols have a post step (hosts): release what was built */
		db_lvol_list_free((struct db_lvol *)arr, n);
	if (rc == -ENOMEM)
		db_fail(db, rc, "out of memory");
	return rc;
}

static void node_row(sqlite3_stmt *st, void *e)
{
	node_from_row(st, e);
}

static int sq_node_get(struct db *db, const char *name, int64_t id, struct db_node *out)
{
	sqlite3_stmt *st = NULL;
	void *arr = NULL;
	size_t n = 0;
	int rc;

	rc = sq_prepare(db, "SELECT " NODE_COLS " FROM nodes WHERE name = ?1 OR id = ?2", &st);
	if (rc < 0)
		return rc;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, name ? -1 : id);
	rc = collect(db, st, sizeof(struct db_node), node_row, NULL, &arr, &n);
	if (rc < 0)
		return rc;
	if (n == 0) {
		mem_free(arr);
		if (name)
			return db_fail(db, -ENOENT, "no node named '%s'", name);
		return db_fail(db, -ENOENT, "no node with id %lld", (long long)id);
	}
	memcpy(out, arr, sizeof(*out));
	mem_free(arr);
	return 0;
}

static int sq_node_list(struct db *db, struct db_node **out, size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc = sq_prepare(db, "SELECT " NODE_COLS " FROM nodes ORDER BY name", &st);

	if (rc < 0)
		return rc;
	return collect(db, st, sizeof(struct db_node), node_row, NULL, (void **)out, count);
}

/* UPDATE ... WHERE id = ?; -ENOENT when no row matched. Binds via cb. */
static int update_one(struct db *db, const char *sql, const char *what, const char *kind,
		      int64_t id, void (*bind)(sqlite3_stmt *st, void *arg), void *arg, bool desired)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = sq_prepare(db, sql, &st)) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, clock_wall_ms());
	if (bind)
		bind(st, arg);
	if ((rc = sq_step_done(db, st, what)) < 0)
		goto out;
	if (sqlite3_changes(SQ(db)->h) == 0) {
		rc = db_fail(db, -ENOENT, "no %s with id %lld", kind, (long long)id);
		goto out;
	}
	if (desired && (rc = sq_bump_changes(db)) < 0)
		goto out;
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

static int sq_node_heartbeat(struct db *db, int64_t node_id)
{
	return update_one(db, "UPDATE nodes SET last_seen = ?2 WHERE id = ?1", "heartbeat", "node",
			  node_id, NULL, NULL, false);
}

/* --------------------------------------------------------------- disks */

static int sq_disk_add(struct db *db, const struct db_disk *spec, int64_t *id_out)
{
	char listen[DB_LISTEN_MAX * 64];
	sqlite3_stmt *st = NULL;
	struct db_node node;
	int64_t now = clock_wall_ms();
	const char *lvs = spec->lvstore[0] ? spec->lvstore : spec->name;
	int rc;

	db_listen_format(spec, listen, sizeof(listen));
	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = sq_node_get(db, spec->node, 0, &node)) < 0)
		goto out;
	/* Another disk of the node with the same lvstore name or base file? */
	rc = sq_prepare(db,
			"SELECT name, node_id = ?1 AND lvstore = ?2, node_id = ?1 AND path = ?3 "
			"FROM disks WHERE name = ?4 OR (node_id = ?1 AND (lvstore = ?2 OR path = ?3))",
			&st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, node.id);
	sqlite3_bind_text(st, 2, lvs, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, spec->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, spec->name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		char other[DB_NAME_MAX];

		col_text(st, 0, other, sizeof(other));
		if (!strcmp(other, spec->name))
			rc = db_fail(db, -EEXIST, "disk '%s' already exists", spec->name);
		else if (sqlite3_column_int(st, 1))
			rc = db_fail(db, -EEXIST, "lvstore name '%s' is already used by disk '%s' of node '%s'",
				     lvs, other, node.name);
		else
			rc = db_fail(db, -EEXIST, "path %s is already used by disk '%s' of node '%s'",
				     spec->path, other, node.name);
		sq_release(db, st);
		goto out;
	}
	sq_release(db, st);
	if (rc != SQLITE_DONE) {
		rc = sq_fail(db, rc, "add disk");
		goto out;
	}
	rc = sq_prepare(db,
			"INSERT INTO disks (name, node_id, path, is_device, lvstore, cluster_size, listen, "
			"interface, port, transport, created_at, updated_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, node.id);
	sqlite3_bind_text(st, 3, spec->path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, spec->is_device);
	sqlite3_bind_text(st, 5, lvs, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)(spec->cluster_size ? spec->cluster_size
							      : DB_CLUSTER_SIZE_DEFAULT));
	sqlite3_bind_text(st, 7, listen, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, spec->interface, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, spec->interface[0] ? (spec->port ? spec->port : DB_PORT_DEFAULT) : 0);
	sqlite3_bind_text(st, 10, db_transport_name(spec->transport), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, now);
	if ((rc = sq_step_done(db, st, "add disk")) < 0)
		goto out;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(SQ(db)->h);
	if ((rc = sq_bump_changes(db)) < 0)
		goto out;
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

#define DISK_COLS                                                                           \
	"d.id, d.name, d.node_id, n.name, d.path, d.is_device, d.lvstore, d.cluster_size, "  \
	"d.listen, d.interface, d.port, d.transport, d.lvstore_uuid, d.lvstore_state, "      \
	"d.capacity, d.free, d.observed_at, d.generation, d.created_at, d.updated_at "       \
	"FROM disks d JOIN nodes n ON n.id = d.node_id "

static void disk_row(sqlite3_stmt *st, void *e)
{
	struct db_disk *d = e;
	enum db_transport t = DB_TRANSPORT_TCP;

	memset(d, 0, sizeof(*d));
	d->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, d->name, sizeof(d->name));
	d->node_id = sqlite3_column_int64(st, 2);
	col_text(st, 3, d->node, sizeof(d->node));
	col_text(st, 4, d->path, sizeof(d->path));
	d->is_device = sqlite3_column_int(st, 5) != 0;
	col_text(st, 6, d->lvstore, sizeof(d->lvstore));
	d->cluster_size = col_u64(st, 7);
	db_listen_parse_all((const char *)sqlite3_column_text(st, 8), d);
	col_text(st, 9, d->interface, sizeof(d->interface));
	d->port = (uint16_t)sqlite3_column_int(st, 10);
	db_transport_parse((const char *)sqlite3_column_text(st, 11), &t);
	d->transport = t;
	col_text(st, 12, d->lvstore_uuid, sizeof(d->lvstore_uuid));
	d->lvstore_state = !strcmp((const char *)sqlite3_column_text(st, 13), "loaded")
				   ? DB_LVSTORE_LOADED
				   : DB_LVSTORE_ABSENT;
	d->capacity = col_u64(st, 14);
	d->free = col_u64(st, 15);
	d->observed_at = sqlite3_column_int64(st, 16);
	d->generation = col_u64(st, 17);
	d->created_at = sqlite3_column_int64(st, 18);
	d->updated_at = sqlite3_column_int64(st, 19);
}

static int sq_disk_get(struct db *db, const char *name, int64_t id, struct db_disk *out)
{
	sqlite3_stmt *st = NULL;
	void *arr = NULL;
	size_t n = 0;
	int rc;

	rc = sq_prepare(db, "SELECT " DISK_COLS "WHERE d.name = ?1 OR d.id = ?2", &st);
	if (rc < 0)
		return rc;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, name ? -1 : id);
	rc = collect(db, st, sizeof(struct db_disk), disk_row, NULL, &arr, &n);
	if (rc < 0)
		return rc;
	if (n == 0) {
		mem_free(arr);
		if (name)
			return db_fail(db, -ENOENT, "no disk named '%s'", name);
		return db_fail(db, -ENOENT, "no disk with id %lld", (long long)id);
	}
	memcpy(out, arr, sizeof(*out));
	mem_free(arr);
	return 0;
}

static int sq_disk_list(struct db *db, const char *node, struct db_disk **out, size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc = sq_prepare(db, "SELECT " DISK_COLS "WHERE ?1 IS NULL OR n.name = ?1 "
				"ORDER BY n.name, d.name", &st);

	if (rc < 0)
		return rc;
	if (node)
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	return collect(db, st, sizeof(struct db_disk), disk_row, NULL, (void **)out, count);
}

struct bind_args {
	const char *s;
	uint64_t a, b, c;
	int i;
};

static void bind_lvstore(sqlite3_stmt *st, void *arg)
{
	struct bind_args *b = arg;

	sqlite3_bind_text(st, 3, b->s, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)b->a);
}

static int sq_disk_set_lvstore(struct db *db, int64_t disk_id, const char *uuid,
			       uint64_t cluster_size)
{
	struct bind_args b = { .s = uuid, .a = cluster_size };

	return update_one(db,
			  "UPDATE disks SET lvstore_uuid = ?3, cluster_size = CASE WHEN ?4 > 0 "
			  "THEN ?4 ELSE cluster_size END, updated_at = ?2 WHERE id = ?1",
			  "set lvstore", "disk", disk_id, bind_lvstore, &b, false);
}

static void bind_observe(sqlite3_stmt *st, void *arg)
{
	struct bind_args *b = arg;

	sqlite3_bind_text(st, 3, b->s, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)b->a);
	sqlite3_bind_int64(st, 5, (int64_t)b->b);
}

static int sq_disk_observe(struct db *db, int64_t disk_id, enum db_lvstore_state state,
			   uint64_t capacity, uint64_t free_bytes)
{
	struct bind_args b = { .s = db_lvstore_state_name(state), .a = capacity, .b = free_bytes };

	if (state == DB_LVSTORE_ABSENT)
		return update_one(db,
				  "UPDATE disks SET lvstore_state = ?3, updated_at = ?2 WHERE id = ?1",
				  "observe disk", "disk", disk_id, bind_observe, &b, false);
	return update_one(db,
			  "UPDATE disks SET lvstore_state = ?3, capacity = ?4, free = ?5, "
			  "observed_at = ?2, updated_at = ?2 WHERE id = ?1",
			  "observe disk", "disk", disk_id, bind_observe, &b, false);
}

/* --------------------------------------------------------------- lvols */

#define LVOL_COLS                                                                             \
	"l.id, l.disk_id, d.name, d.node_id, n.name, l.size, l.real_size, l.thin, l.state, "    \
	"l.reason, l.uuid, l.nqn, l.hosts, IFNULL(l.clone_of, 0), l.zero_from, l.zero_to, "     \
	"l.zero_done, l.generation, l.created_at, l.updated_at "                               \
	"FROM lvols l JOIN disks d ON d.id = l.disk_id JOIN nodes n ON n.id = d.node_id "

static void lvol_row(sqlite3_stmt *st, void *e)
{
	struct db_lvol *l = e;
	enum db_lvol_state s = DB_LVOL_FAILED;

	memset(l, 0, sizeof(*l));
	l->id = sqlite3_column_int64(st, 0);
	l->disk_id = sqlite3_column_int64(st, 1);
	col_text(st, 2, l->disk, sizeof(l->disk));
	l->node_id = sqlite3_column_int64(st, 3);
	col_text(st, 4, l->node, sizeof(l->node));
	l->size = col_u64(st, 5);
	l->real_size = col_u64(st, 6);
	l->thin = sqlite3_column_int(st, 7) != 0;
	db_lvol_state_parse((const char *)sqlite3_column_text(st, 8), &s);
	l->state = s;
	col_text(st, 9, l->reason, sizeof(l->reason));
	col_text(st, 10, l->uuid, sizeof(l->uuid));
	col_text(st, 11, l->nqn, sizeof(l->nqn));
	l->clone_of = sqlite3_column_int64(st, 13);
	l->zero_from = col_u64(st, 14);
	l->zero_to = col_u64(st, 15);
	l->zero_done = col_u64(st, 16);
	l->generation = col_u64(st, 17);
	l->created_at = sqlite3_column_int64(st, 18);
	l->updated_at = sqlite3_column_int64(st, 19);
}

static int lvol_hosts(sqlite3_stmt *st, void *e)
{
	struct db_lvol *l = e;

	return db_split_words((const char *)sqlite3_column_text(st, 12), &l->hosts, &l->host_count);
}

static int sq_lvol_list(struct db *db, const struct db_lvol_filter *f, int64_t only_id,
			struct db_lvol **out, size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sq_prepare(db,
			"SELECT " LVOL_COLS
			"WHERE (?1 IS NULL OR n.name = ?1) AND (?2 IS NULL OR d.name = ?2) "
			"AND (?3 IS NULL OR l.state = ?3) AND (?4 OR l.state <> 'DELETED') "
			"AND (?5 = 0 OR l.id = ?5) ORDER BY l.id", &st);
	if (rc < 0)
		return rc;
	if (f->node)
		sqlite3_bind_text(st, 1, f->node, -1, SQLITE_STATIC);
	if (f->disk)
		sqlite3_bind_text(st, 2, f->disk, -1, SQLITE_STATIC);
	if (f->state != DB_LVOL_ANY)
		sqlite3_bind_text(st, 3, db_lvol_state_name(f->state), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, f->include_deleted || f->state == DB_LVOL_DELETED || only_id);
	sqlite3_bind_int64(st, 5, only_id);
	return collect(db, st, sizeof(struct db_lvol), lvol_row, lvol_hosts, (void **)out, count);
}

/* Reads one lvol inside a transaction (for the desired-state writes). */
static int lvol_load(struct db *db, int64_t id, struct db_lvol *out)
{
	struct db_lvol_filter f = { .state = DB_LVOL_ANY, .include_deleted = true };
	struct db_lvol *arr = NULL;
	size_t n = 0;
	int rc = sq_lvol_list(db, &f, id, &arr, &n);

	if (rc < 0)
		return rc;
	if (n == 0) {
		mem_free(arr);
		return db_fail(db, -ENOENT, "no lvol with id %lld", (long long)id);
	}
	*out = arr[0];
	mem_free(arr);
	return 0;
}

/*
 * Known free bytes of a disk minus thick space promised but not yet seen in
 * them: CREATING rows, the growth of RESIZING rows, and CREATING/READY rows
 * written after the disk's last observation (the target may have allocated
 * them after the agent read its free bytes) when that observation is live
 * (younger than DB_NODE_LIVE_MS: an older one means no agent runs, so
 * nothing is allocated in flight). Errs on the safe side for at most one
 * verify pass.
 */
static int disk_available(struct db *db, const struct db_disk *d, uint64_t *avail,
			  uint64_t *pending_out)
{
	sqlite3_stmt *st = NULL;
	uint64_t pending = 0;
	int rc;

	rc = sq_prepare(db,
			"SELECT size, real_size, state = 'RESIZING', updated_at > ?2 FROM lvols "
			"WHERE disk_id = ?1 AND thin = 0 AND (state IN ('CREATING', 'RESIZING') "
			"OR (state = 'READY' AND updated_at > ?2 AND ?2 >= ?3))", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, d->id);
	sqlite3_bind_int64(st, 2, d->observed_at);
	sqlite3_bind_int64(st, 3, clock_wall_ms() - DB_NODE_LIVE_MS);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		pending += db_pending_bytes(d, col_u64(st, 0), col_u64(st, 1),
					    sqlite3_column_int(st, 2), sqlite3_column_int(st, 3));
	sq_release(db, st);
	if (rc != SQLITE_DONE)
		return sq_fail(db, rc, "free space");
	*pending_out = pending;
	*avail = d->free > pending ? d->free - pending : 0;
	return 0;
}

/* Placement: the disk with the most available bytes among live nodes
 * (optionally one node) with a loaded lvstore. Runs inside the create's
 * write transaction. */
static int place(struct db *db, const char *node, uint64_t size, bool thin, struct db_disk *out)
{
	struct db_disk *disks = NULL;
	size_t n = 0, i, best = SIZE_MAX, candidates = 0;
	uint64_t best_avail = 0;
	int64_t now = clock_wall_ms();
	int rc;

	if (node && (rc = sq_node_get(db, node, 0, &(struct db_node){ 0 })) < 0)
		return rc;
	if ((rc = sq_disk_list(db, node, &disks, &n)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		struct db_node nd;
		uint64_t avail = 0, pending = 0;

		if (disks[i].lvstore_state != DB_LVSTORE_LOADED || !disks[i].observed_at)
			continue;
		if ((rc = sq_node_get(db, NULL, disks[i].node_id, &nd)) < 0)
			goto out;
		if (!nd.last_seen || now - nd.last_seen > DB_NODE_LIVE_MS)
			continue;
		candidates++;
		if ((rc = disk_available(db, &disks[i], &avail, &pending)) < 0)
			goto out;
		if (!thin && db_round_cluster(size, disks[i].cluster_size) > avail)
			continue;
		if (best == SIZE_MAX || avail > best_avail) {
			best = i;
			best_avail = avail;
		}
	}
	if (best == SIZE_MAX) {
		rc = db_place_none(db, node, candidates, size);
		goto out;
	}
	*out = disks[best];
	rc = 0;
out:
	db_disk_list_free(disks, n);
	return rc;
}

static int sq_lvol_create(struct db *db, const struct db_lvol_spec *spec, int64_t *id_out)
{
	sqlite3_stmt *st = NULL;
	struct db_disk disk;
	struct db_node node;
	uint64_t size = spec->size;
	bool thin = spec->thin;
	char *hosts = NULL;
	int64_t now = clock_wall_ms(), id;
	int rc;

	if ((rc = db_join_hosts(db, spec->hosts, spec->host_count, &hosts)) < 0)
		return rc;
	if ((rc = sq_begin(db)) < 0)
		goto out;
	if (spec->clone_of) {
		struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY, .include_deleted = true };
		struct db_snapshot *snaps = NULL;
		size_t n = 0;

		if ((rc = sqlite_ops.snapshot_list(db, &f, spec->clone_of, &snaps, &n)) < 0)
			goto out;
		if (n == 0) {
			mem_free(snaps);
			rc = db_fail(db, -ENOENT, "no snapshot with id %lld", (long long)spec->clone_of);
			goto out;
		}
		if (snaps[0].state != DB_SNAPSHOT_READY) {
			rc = db_fail(db, -EBUSY, "snapshot %lld is %s, not READY",
				     (long long)spec->clone_of, db_snapshot_state_name(snaps[0].state));
			mem_free(snaps);
			goto out;
		}
		size = snaps[0].size;
		rc = sq_disk_get(db, NULL, snaps[0].disk_id, &disk);
		mem_free(snaps);
		if (rc < 0)
			goto out;
		thin = true; /* a clone shares the snapshot's clusters */
	} else if (!spec->disk) {
		if ((rc = place(db, spec->node, size, thin, &disk)) < 0)
			goto out;
	} else {
		if ((rc = sq_disk_get(db, spec->disk, 0, &disk)) < 0)
			goto out;
		if (spec->node && strcmp(spec->node, disk.node)) {
			rc = db_fail(db, -EINVAL, "disk '%s' belongs to node '%s', not '%s'", disk.name,
				     disk.node, spec->node);
			goto out;
		}
		if (!thin && (rc = db_space_check(db, &disk, size, disk_available)) < 0)
			goto out;
	}
	if ((rc = sq_node_get(db, NULL, disk.node_id, &node)) < 0)
		goto out;
	rc = sq_prepare(db,
			"INSERT INTO lvols (disk_id, size, thin, state, hosts, clone_of, created_at, "
			"updated_at) VALUES (?1, ?2, ?3, 'CREATING', ?4, ?5, ?6, ?6)", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, disk.id);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	sqlite3_bind_int(st, 3, thin);
	sqlite3_bind_text(st, 4, hosts, -1, SQLITE_STATIC);
	if (spec->clone_of)
		sqlite3_bind_int64(st, 5, spec->clone_of);
	sqlite3_bind_int64(st, 6, now);
	if ((rc = sq_step_done(db, st, "create lvol")) < 0)
		goto out;
	id = sqlite3_last_insert_rowid(SQ(db)->h);
	rc = sq_prepare(db, "UPDATE lvols SET nqn = ?2 || ':lvol-' || id WHERE id = ?1", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, node.nqn_prefix, -1, SQLITE_STATIC);
	if ((rc = sq_step_done(db, st, "create lvol")) < 0)
		goto out;
	if ((rc = sq_bump_changes(db)) < 0)
		goto out;
	if ((rc = sq_commit(db)) == 0 && id_out)
		*id_out = id;
out:
	sq_rollback(db); /* no-op after a commit */
	mem_free(hosts);
	return rc;
}

static int lvol_desired_update(struct db *db, int64_t id, const char *sql, uint64_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sq_prepare(db, sql, &st);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, clock_wall_ms());
	sqlite3_bind_int64(st, 3, (int64_t)size);
	if ((rc = sq_step_done(db, st, "update lvol")) < 0)
		return rc;
	return sq_bump_changes(db);
}

static int sq_lvol_resize(struct db *db, int64_t id, uint64_t new_size, bool allow_shrink)
{
	struct db_lvol l = { 0 };
	struct db_disk disk;
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, id, &l)) < 0)
		goto out;
	if ((rc = db_resize_check(db, &l, new_size, allow_shrink)) != 0) {
		rc = rc > 0 ? 0 : rc; /* same size: nothing to do */
		goto out;
	}
	if (!l.thin && new_size > l.size) {
		uint64_t grow;

		if ((rc = sq_disk_get(db, NULL, l.disk_id, &disk)) < 0)
			goto out;
		grow = db_resize_growth(&l, &disk, new_size);
		if (grow && (rc = db_space_check(db, &disk, grow, disk_available)) < 0)
			goto out;
	}
	rc = lvol_desired_update(db, id,
				 "UPDATE lvols SET size = ?3, state = 'RESIZING', reason = '', "
				 "generation = generation + 1, updated_at = ?2 WHERE id = ?1",
				 new_size);
	if (rc < 0)
		goto out;
	db_lvol_clear(&l);
	return sq_commit(db);
out:
	db_lvol_clear(&l);
	sq_rollback(db);
	return rc;
}

static int sq_lvol_delete(struct db *db, int64_t id)
{
	struct db_lvol l = { 0 };
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, id, &l)) < 0)
		goto out;
	if ((rc = db_delete_check(db, &l)) != 0) {
		rc = rc > 0 ? 0 : rc; /* already DELETING */
		goto out;
	}
	rc = lvol_desired_update(db, id,
				 "UPDATE lvols SET state = 'DELETING', reason = '', "
				 "generation = generation + 1, updated_at = ?2 WHERE id = ?1", 0);
	if (rc < 0)
		goto out;
	db_lvol_clear(&l);
	return sq_commit(db);
out:
	db_lvol_clear(&l);
	sq_rollback(db);
	return rc;
}

static void bind_s3_a4(sqlite3_stmt *st, void *arg)
{
	struct bind_args *b = arg;

	if (b->s)
		sq_bind_text_trunc(st, 3, b->s, DB_REASON_MAX);
	else
		sqlite3_bind_text(st, 3, "", 0, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)b->a);
	sqlite3_bind_int64(st, 5, (int64_t)b->b);
	sqlite3_bind_int64(st, 6, (int64_t)b->c);
}

static int sq_lvol_set_uuid(struct db *db, int64_t id, const char *uuid, uint64_t real_size)
{
	struct bind_args b = { .s = uuid, .a = real_size };

	return update_one(db,
			  "UPDATE lvols SET uuid = ?3, real_size = CASE WHEN ?4 > 0 THEN ?4 "
			  "ELSE real_size END, updated_at = ?2 WHERE id = ?1",
			  "set lvol uuid", "lvol", id, bind_s3_a4, &b, false);
}

static int sq_lvol_set_real_size(struct db *db, int64_t id, uint64_t real_size)
{
	struct bind_args b = { .a = real_size };

	return update_one(db, "UPDATE lvols SET real_size = ?4, updated_at = ?2 WHERE id = ?1",
			  "set lvol size", "lvol", id, bind_s3_a4, &b, false);
}

static int sq_lvol_set_nqn(struct db *db, int64_t id, const char *nqn)
{
	struct bind_args b = { .s = nqn };

	return update_one(db, "UPDATE lvols SET nqn = ?3, updated_at = ?2 WHERE id = ?1",
			  "set lvol nqn", "lvol", id, bind_s3_a4, &b, false);
}

static int sq_lvol_set_reason(struct db *db, int64_t id, const char *reason)
{
	struct bind_args b = { .s = reason };

	return update_one(db, "UPDATE lvols SET reason = ?3, updated_at = ?2 WHERE id = ?1",
			  "set lvol reason", "lvol", id, bind_s3_a4, &b, false);
}

static int sq_lvol_zero_progress(struct db *db, int64_t id, uint64_t done)
{
	struct bind_args b = { .a = done };

	return update_one(db, "UPDATE lvols SET zero_done = ?4, updated_at = ?2 WHERE id = ?1",
			  "zero progress", "lvol", id, bind_s3_a4, &b, false);
}

/*
 * Conditional update: applies `sql` (?1 id, ?2 now, ?3 text, ?4..?6 ints,
 * ?7 expect_gen) only when the row's generation is still expect_gen
 * (0 = always); -ESTALE when it moved, -ENOENT when the row is gone.
 */
static int update_cond(struct db *db, const char *table, const char *kind, const char *sql,
		       int64_t id, uint64_t expect_gen, struct bind_args *b)
{
	sqlite3_stmt *st = NULL;
	char q[128];
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = sq_prepare(db, sql, &st)) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, clock_wall_ms());
	bind_s3_a4(st, b);
	sqlite3_bind_int64(st, 7, (int64_t)expect_gen);
	if ((rc = sq_step_done(db, st, "update")) < 0)
		goto out;
	if (sqlite3_changes(SQ(db)->h) == 0) {
		snprintf(q, sizeof(q), "SELECT generation FROM %s WHERE id = ?1", table);
		if ((rc = sq_prepare(db, q, &st)) < 0)
			goto out;
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			rc = db_fail(db, -ESTALE,
				     "%s %lld changed meanwhile (generation %lld, expected %llu)", kind,
				     (long long)id, (long long)sqlite3_column_int64(st, 0),
				     (unsigned long long)expect_gen);
		else if (rc == SQLITE_DONE)
			rc = db_fail(db, -ENOENT, "no %s with id %lld", kind, (long long)id);
		else
			rc = sq_fail(db, rc, "update");
		sq_release(db, st);
		goto out;
	}
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

static int sq_lvol_set_state(struct db *db, int64_t id, uint64_t expect_gen,
			     enum db_lvol_state state, const char *reason)
{
	struct bind_args b = { .s = reason };
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "UPDATE lvols SET state = '%s', reason = ?3, updated_at = ?2%s "
		 "WHERE id = ?1 AND (?7 = 0 OR generation = ?7)",
		 db_lvol_state_name(state),
		 state == DB_LVOL_DELETED ? ", zero_from = 0, zero_to = 0, zero_done = 0" : "");
	return update_cond(db, "lvols", "lvol", sql, id, expect_gen, &b);
}

static int sq_lvol_zero_begin(struct db *db, int64_t id, uint64_t expect_gen, uint64_t from,
			      uint64_t to)
{
	struct bind_args b = { .a = from, .b = to };

	return update_cond(db, "lvols", "lvol",
			   "UPDATE lvols SET zero_from = ?4, zero_to = ?5, zero_done = ?4, "
			   "updated_at = ?2 WHERE id = ?1 AND (?7 = 0 OR generation = ?7)",
			   id, expect_gen, &b);
}

static int sq_lvol_resize_done(struct db *db, int64_t id, uint64_t expect_gen, uint64_t real_size)
{
	struct bind_args b = { .a = real_size };

	return update_cond(db, "lvols", "lvol",
			   "UPDATE lvols SET zero_from = 0, zero_to = 0, zero_done = 0, "
			   "real_size = CASE WHEN ?4 > 0 THEN ?4 ELSE real_size END, "
			   "state = 'READY', reason = '', updated_at = ?2 "
			   "WHERE id = ?1 AND (?7 = 0 OR generation = ?7)",
			   id, expect_gen, &b);
}

/* ----------------------------------------------------------- snapshots */

#define SNAP_COLS                                                                        \
	"s.id, s.lvol_id, l.disk_id, d.name, d.node_id, n.name, s.size, s.state, s.reason, " \
	"s.uuid, s.generation, s.created_at, s.updated_at "                                \
	"FROM snapshots s JOIN lvols l ON l.id = s.lvol_id JOIN disks d ON d.id = l.disk_id " \
	"JOIN nodes n ON n.id = d.node_id "

static void snap_row(sqlite3_stmt *st, void *e)
{
	struct db_snapshot *s = e;
	enum db_snapshot_state state = DB_SNAPSHOT_FAILED;

	memset(s, 0, sizeof(*s));
	s->id = sqlite3_column_int64(st, 0);
	s->lvol_id = sqlite3_column_int64(st, 1);
	s->disk_id = sqlite3_column_int64(st, 2);
	col_text(st, 3, s->disk, sizeof(s->disk));
	s->node_id = sqlite3_column_int64(st, 4);
	col_text(st, 5, s->node, sizeof(s->node));
	s->size = col_u64(st, 6);
	db_snapshot_state_parse((const char *)sqlite3_column_text(st, 7), &state);
	s->state = state;
	col_text(st, 8, s->reason, sizeof(s->reason));
	col_text(st, 9, s->uuid, sizeof(s->uuid));
	s->generation = col_u64(st, 10);
	s->created_at = sqlite3_column_int64(st, 11);
	s->updated_at = sqlite3_column_int64(st, 12);
}

static int sq_snapshot_list(struct db *db, const struct db_snapshot_filter *f, int64_t only_id,
			    struct db_snapshot **out, size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sq_prepare(db,
			"SELECT " SNAP_COLS
			"WHERE (?1 IS NULL OR n.name = ?1) AND (?2 = 0 OR s.lvol_id = ?2) "
			"AND (?3 IS NULL OR s.state = ?3) AND (?4 OR s.state <> 'DELETED') "
			"AND (?5 = 0 OR s.id = ?5) ORDER BY s.id", &st);
	if (rc < 0)
		return rc;
	if (f->node)
		sqlite3_bind_text(st, 1, f->node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, f->lvol_id);
	if (f->state != DB_SNAPSHOT_ANY)
		sqlite3_bind_text(st, 3, db_snapshot_state_name(f->state), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, f->include_deleted || f->state == DB_SNAPSHOT_DELETED || only_id);
	sqlite3_bind_int64(st, 5, only_id);
	return collect(db, st, sizeof(struct db_snapshot), snap_row, NULL, (void **)out, count);
}

static int sq_snapshot_create(struct db *db, int64_t lvol_id, int64_t *id_out)
{
	struct db_lvol l = { 0 };
	sqlite3_stmt *st = NULL;
	int64_t now = clock_wall_ms();
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, lvol_id, &l)) < 0)
		goto out;
	if (l.state != DB_LVOL_READY) {
		rc = db_fail(db, l.state == DB_LVOL_DELETED ? -ENOENT : -EBUSY,
			     "lvol %lld is %s; snapshots are taken of READY lvols", (long long)lvol_id,
			     db_lvol_state_name(l.state));
		goto out;
	}
	rc = sq_prepare(db,
			"INSERT INTO snapshots (lvol_id, size, state, created_at, updated_at) "
			"VALUES (?1, ?2, 'CREATING', ?3, ?3)", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, lvol_id);
	sqlite3_bind_int64(st, 2, (int64_t)l.size);
	sqlite3_bind_int64(st, 3, now);
	if ((rc = sq_step_done(db, st, "create snapshot")) < 0)
		goto out;
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(SQ(db)->h);
	if ((rc = sq_bump_changes(db)) < 0)
		goto out;
	db_lvol_clear(&l);
	return sq_commit(db);
out:
	db_lvol_clear(&l);
	sq_rollback(db);
	return rc;
}

static int sq_snapshot_delete(struct db *db, int64_t id)
{
	struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY, .include_deleted = true };
	struct db_snapshot *snaps = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	if ((rc = sq_snapshot_list(db, &f, id, &snaps, &n)) < 0)
		goto out;
	if (n == 0) {
		rc = db_fail(db, -ENOENT, "no snapshot with id %lld", (long long)id);
		goto out;
	}
	if (snaps[0].state == DB_SNAPSHOT_DELETED) {
		rc = db_fail(db, -ENOENT, "snapshot %lld is already deleted", (long long)id);
		goto out;
	}
	if (snaps[0].state == DB_SNAPSHOT_DELETING) {
		rc = 0;
		goto out;
	}
	rc = sq_prepare(db,
			"UPDATE snapshots SET state = 'DELETING', reason = '', "
			"generation = generation + 1, updated_at = ?2 WHERE id = ?1", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, clock_wall_ms());
	if ((rc = sq_step_done(db, st, "delete snapshot")) < 0)
		goto out;
	if ((rc = sq_bump_changes(db)) < 0)
		goto out;
	mem_free(snaps);
	return sq_commit(db);
out:
	mem_free(snaps);
	sq_rollback(db);
	return rc;
}

static int sq_snapshot_set_uuid(struct db *db, int64_t id, const char *uuid)
{
	struct bind_args b = { .s = uuid };

	return update_one(db, "UPDATE snapshots SET uuid = ?3, updated_at = ?2 WHERE id = ?1",
			  "set snapshot uuid", "snapshot", id, bind_s3_a4, &b, false);
}

static int sq_snapshot_set_reason(struct db *db, int64_t id, const char *reason)
{
	struct bind_args b = { .s = reason };

	return update_one(db, "UPDATE snapshots SET reason = ?3, updated_at = ?2 WHERE id = ?1",
			  "set snapshot reason", "snapshot", id, bind_s3_a4, &b, false);
}

static int sq_snapshot_set_state(struct db *db, int64_t id, uint64_t expect_gen,
				 enum db_snapshot_state state, const char *reason)
{
	struct bind_args b = { .s = reason };
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "UPDATE snapshots SET state = '%s', reason = ?3, updated_at = ?2 "
		 "WHERE id = ?1 AND (?7 = 0 OR generation = ?7)",
		 db_snapshot_state_name(state));
	return update_cond(db, "snapshots", "snapshot", sql, id, expect_gen, &b);
}

/* -------------------------------------------------------------- events */

static int sq_event_raise(struct db *db, const char *node, const char *kind, const char *object,
			  const char *detail)
{
	sqlite3_stmt *st = NULL;
	int64_t now = clock_wall_ms();
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	rc = sq_prepare(db,
			"UPDATE events SET count = count + 1, last_seen = ?3, detail = ?4 "
			"WHERE kind = ?1 AND object = ?2 AND resolved_at = 0", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sq_bind_text_trunc(st, 4, detail, DB_REASON_MAX);
	if ((rc = sq_step_done(db, st, "raise event")) < 0)
		goto out;
	if (sqlite3_changes(SQ(db)->h) == 0) {
		rc = sq_prepare(db,
				"INSERT INTO events (node, kind, object, detail, first_seen, last_seen) "
				"VALUES (?1, ?2, ?3, ?4, ?5, ?5)", &st);
		if (rc < 0)
			goto out;
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, object, -1, SQLITE_STATIC);
		sq_bind_text_trunc(st, 4, detail, DB_REASON_MAX);
		sqlite3_bind_int64(st, 5, now);
		if ((rc = sq_step_done(db, st, "raise event")) < 0)
			goto out;
	}
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

static int sq_event_resolve(struct db *db, const char *kind, const char *object)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	rc = sq_prepare(db,
			"UPDATE events SET resolved_at = ?3 WHERE kind = ?1 AND object = ?2 "
			"AND resolved_at = 0", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, clock_wall_ms());
	if ((rc = sq_step_done(db, st, "resolve event")) < 0)
		goto out;
	return sq_commit(db);
out:
	sq_rollback(db);
	return rc;
}

static int sq_event_prune(struct db *db, const char *node, int64_t resolved_before, int *pruned)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sq_prepare(db,
			"DELETE FROM events WHERE resolved_at > 0 AND resolved_at < ?1 "
			"AND (?2 IS NULL OR node = ?2)", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, resolved_before);
	if (node)
		sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
	if ((rc = sq_step_done(db, st, "prune events")) < 0)
		return rc;
	*pruned = sqlite3_changes(SQ(db)->h);
	return 0;
}

static void event_row(sqlite3_stmt *st, void *e)
{
	struct db_event *ev = e;

	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, ev->node, sizeof(ev->node));
	col_text(st, 2, ev->kind, sizeof(ev->kind));
	col_text(st, 3, ev->object, sizeof(ev->object));
	col_text(st, 4, ev->detail, sizeof(ev->detail));
	ev->first_seen = sqlite3_column_int64(st, 5);
	ev->last_seen = sqlite3_column_int64(st, 6);
	ev->count = col_u64(st, 7);
	ev->resolved_at = sqlite3_column_int64(st, 8);
}

static int sq_event_list(struct db *db, bool include_resolved, struct db_event **out,
			 size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sq_prepare(db,
			"SELECT id, node, kind, object, detail, first_seen, last_seen, count, resolved_at "
			"FROM events WHERE ?1 OR resolved_at = 0 ORDER BY last_seen, id", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, include_resolved);
	return collect(db, st, sizeof(struct db_event), event_row, NULL, (void **)out, count);
}

static const struct db_ops sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.schema_version = sq_schema_version,
	.busy_timeout_set = sq_busy_timeout_set,
	.change_counter = sq_change_counter,
	.data_version = sq_data_version,
	.node_add = sq_node_add,
	.node_get = sq_node_get,
	.node_list = sq_node_list,
	.node_heartbeat = sq_node_heartbeat,
	.disk_add = sq_disk_add,
	.disk_get = sq_disk_get,
	.disk_list = sq_disk_list,
	.disk_set_lvstore = sq_disk_set_lvstore,
	.disk_observe = sq_disk_observe,
	.lvol_create = sq_lvol_create,
	.lvol_resize = sq_lvol_resize,
	.lvol_delete = sq_lvol_delete,
	.lvol_list = sq_lvol_list,
	.lvol_set_uuid = sq_lvol_set_uuid,
	.lvol_set_real_size = sq_lvol_set_real_size,
	.lvol_set_nqn = sq_lvol_set_nqn,
	.lvol_set_state = sq_lvol_set_state,
	.lvol_set_reason = sq_lvol_set_reason,
	.lvol_zero_begin = sq_lvol_zero_begin,
	.lvol_zero_progress = sq_lvol_zero_progress,
	.lvol_resize_done = sq_lvol_resize_done,
	.snapshot_create = sq_snapshot_create,
	.snapshot_delete = sq_snapshot_delete,
	.snapshot_list = sq_snapshot_list,
	.snapshot_set_uuid = sq_snapshot_set_uuid,
	.snapshot_set_state = sq_snapshot_set_state,
	.snapshot_set_reason = sq_snapshot_set_reason,
	.event_raise = sq_event_raise,
	.event_resolve = sq_event_resolve,
	.event_prune = sq_event_prune,
	.event_list = sq_event_list,
};
