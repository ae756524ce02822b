/*
 * sqlite_schema.c: the SQLite schema as a list of numbered migrations and the
 * code that applies the missing ones, each in its own transaction, recording
 * it in schema_migrations. A store written by a newer binary is refused.
 * Append new migrations at the end; never edit an applied one.
 */
#include "db/sqlite_private.h"

#include "common/common.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define WAL_NOTADB_RETRY_MS 200 /* how long a half-created file may look like no database */

static const char *const migrations[] = {
	/* 1: the tables. Sizes are bytes, times are ms since the epoch. */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT INTO meta (key, value) VALUES ('changes', 0);"
	"CREATE TABLE nodes ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" rpc_socket TEXT NOT NULL,"
	" nqn_prefix TEXT NOT NULL,"
	" last_seen INTEGER NOT NULL DEFAULT 0,"
	" generation INTEGER NOT NULL DEFAULT 1,"
	" created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE disks ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" node_id INTEGER NOT NULL REFERENCES nodes(id),"
	" path TEXT NOT NULL,"
	" is_device INTEGER NOT NULL DEFAULT 0,"
	" lvstore TEXT NOT NULL,"
	" cluster_size INTEGER NOT NULL CHECK (cluster_size > 0),"
	" listen TEXT NOT NULL DEFAULT '',"
	" interface TEXT NOT NULL DEFAULT '',"
	" port INTEGER NOT NULL DEFAULT 0,"
	" transport TEXT NOT NULL DEFAULT 'TCP' CHECK (transport IN ('TCP', 'RDMA')),"
	" lvstore_uuid TEXT NOT NULL DEFAULT '',"
	" lvstore_state TEXT NOT NULL DEFAULT 'absent' CHECK (lvstore_state IN ('absent', 'loaded')),"
	" capacity INTEGER NOT NULL DEFAULT 0,"
	" free INTEGER NOT NULL DEFAULT 0,"
	" observed_at INTEGER NOT NULL DEFAULT 0,"
	" generation INTEGER NOT NULL DEFAULT 1,"
	" created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	" UNIQUE (node_id, lvstore));"
	"CREATE TABLE lvols ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" disk_id INTEGER NOT NULL REFERENCES disks(id),"
	" size INTEGER NOT NULL CHECK (size > 0),"
	" real_size INTEGER NOT NULL DEFAULT 0,"
	" thin INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL CHECK (state IN ('CREATING', 'READY', 'RESIZING', 'DELETING',"
	"  'DELETED', 'FAILED')),"
	" reason TEXT NOT NULL DEFAULT '',"
	" uuid TEXT NOT NULL DEFAULT '',"
	" nqn TEXT NOT NULL DEFAULT '',"
	" hosts TEXT NOT NULL DEFAULT '',"
	" clone_of INTEGER REFERENCES snapshots(id),"
	" zero_from INTEGER NOT NULL DEFAULT 0,"
	" zero_to INTEGER NOT NULL DEFAULT 0,"
	" zero_done INTEGER NOT NULL DEFAULT 0,"
	" generation INTEGER NOT NULL DEFAULT 1,"
	" created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE snapshots ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" lvol_id INTEGER NOT NULL REFERENCES lvols(id),"
	" size INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL CHECK (state IN ('CREATING', 'READY', 'DELETING', 'DELETED',"
	"  'FAILED')),"
	" reason TEXT NOT NULL DEFAULT '',"
	" uuid TEXT NOT NULL DEFAULT '',"
	" generation INTEGER NOT NULL DEFAULT 1,"
	" created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" node TEXT NOT NULL DEFAULT '',"
	" kind TEXT NOT NULL,"
	" object TEXT NOT NULL,"
	" detail TEXT NOT NULL DEFAULT '',"
	" first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	" count INTEGER NOT NULL DEFAULT 1,"
	" resolved_at INTEGER NOT NULL DEFAULT 0);",

	/* 2: indexes for the agent's per-state scans and event dedup. */
	"CREATE INDEX lvols_by_state ON lvols (state, disk_id);"
	"CREATE INDEX lvols_by_disk ON lvols (disk_id);"
	"CREATE INDEX snapshots_by_state ON snapshots (state);"
	"CREATE INDEX snapshots_by_lvol ON snapshots (lvol_id);"
	"CREATE UNIQUE INDEX events_open ON events (kind, object) WHERE resolved_at = 0;"
	"CREATE INDEX events_by_last_seen ON events (last_seen);",

	/* 3: PostgreSQL's wake-up payload (node and kind of a change); nothing
	 * to change here (SQLite agents poll one counter). Kept so both backends
	 * number their schema the same. */
	"SELECT 1;",
};

int sq_schema_latest(void)
{
	return (int)COMMON_ARRAY_SIZE(migrations);
}

int sq_schema_current(struct db *db, int *out)
{
	struct sq *s = db->impl;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(s->h,
				"SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				"AND name = 'schema_migrations'", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, "read schema version");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return sq_fail(db, rc, "read schema version");
	}
	if (sqlite3_column_int(st, 0) == 0) {
		sqlite3_finalize(st);
		*out = 0;
		return 0;
	}
	sqlite3_finalize(st);
	if ((rc = sq_prepare(db, "SELECT IFNULL(MAX(version), 0) FROM schema_migrations", &st)) < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = sq_fail(db, rc, "read schema version");
		sq_release(db, st);
		return rc;
	}
	*out = sqlite3_column_int(st, 0);
	sq_release(db, st);
	return 0;
}

static int apply(struct db *db, int version)
{
	sqlite3_stmt *st = NULL;
	int cur, rc;

	if ((rc = sq_begin(db)) < 0)
		return rc;
	/* Another process may have migrated while we waited for the lock. */
	if ((rc = sq_schema_current(db, &cur)) < 0)
		goto out;
	if (cur >= version) {
		rc = 0;
		goto out;
	}
	if ((rc = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			      "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")) < 0)
		goto out;
	if ((rc = sq_exec(db, migrations[version - 1])) < 0)
		goto out;
	rc = sq_prepare(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int(st, 1, version);
	sqlite3_bind_int64(st, 2, clock_wall_ms());
	if ((rc = sq_step_done(db, st, "record migration")) < 0)
		goto out;
	if ((rc = sq_commit(db)) < 0)
		return rc;
	LOG_INFO("db", "schema migrated version=%d", version);
	return 0;
out:
	sq_rollback(db);
	return rc;
}

/*
 * Switches the store to WAL. Connections opening a brand-new file at once
 * race here: SQLite answers BUSY without calling the busy handler when
 * waiting could deadlock (two readers of the rollback-journal file both
 * wanting the exclusive lock that changes the journal mode), and a reader can
 * see the first page of a file another connection is creating half written
 * (NOTADB). Both are retried, BUSY for busy_ms, NOTADB briefly (a file that is
 * really not a database fails fast).
 */
static int wal_enable(struct db *db)
{
	struct sq *s = db->impl;
	uint64_t start = clock_mono_ms();
	unsigned pause_us = 500;

	for (;;) {
		int rc = sqlite3_exec(s->h, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
		uint64_t waited = clock_mono_ms() - start;

		if (rc == SQLITE_OK)
			return 0;
		rc = sqlite3_extended_errcode(s->h);
		if (!(((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) &&
		      waited < (uint64_t)s->busy_ms) &&
		    !((rc & 0xff) == SQLITE_NOTADB && waited < WAL_NOTADB_RETRY_MS))
			return sq_fail(db, rc, "switch to WAL");
		usleep(pause_us);
		pause_us = pause_us < 8000 ? pause_us * 2 : pause_us;
	}
}

int sq_schema_setup(struct db *db, bool create)
{
	struct sq *s = db->impl;
	int cur = 0, latest = sq_schema_latest(), v, rc;

	/* WAL lets readers (diskctl list, other agent loops) run during a write. */
	if ((rc = wal_enable(db)) < 0)
		return db_fail(db, rc, "cannot use database %s: %s", s->path, db->errmsg);
	if ((rc = sq_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")) < 0)
		return rc;
	if ((rc = sq_schema_current(db, &cur)) < 0)
		return db_fail(db, rc, "cannot use database %s: %s", s->path, db->errmsg);
	if (cur > latest)
		return db_fail(db, -EPROTO,
			       "database %s has schema version %d, newer than this program knows (%d)",
			       s->path, cur, latest);
	if (cur == latest)
		return 0;
	if (!create)
		return db_fail(db, -EPROTO,
			       "database %s has schema version %d, expected %d (open it read-write to migrate)",
			       s->path, cur, latest);
	for (v = cur + 1; v <= latest; v++) {
		if ((rc = apply(db, v)) < 0)
			return db_fail(db, rc, "migration %d of %s failed: %s", v, s->path, db->errmsg);
	}
	return 0;
}
