/*
 * sqlite_private.h: private to src/db: the SQLite backend's handle state and
 * the helpers shared by sqlite.c and sqlite_schema.c.
 */
#ifndef DE_DB_SQLITE_PRIVATE_H
#define DE_DB_SQLITE_PRIVATE_H

#include "db/db_backend.h"

#include <sqlite3.h>

#define SQ_CACHE_MAX 64

/* Prepared statements are kept per handle (preparing the joins costs more
 * than running them); sq_release() resets a cached one for the next use. */
struct sq_cached {
	char *sql;
	sqlite3_stmt *st;
	bool busy;
};

struct sq {
	sqlite3 *h;
	struct sq_cached cache[SQ_CACHE_MAX];
	size_t ncache;
	char *path;
	int busy_ms;
	sqlite3_stmt *st_dv;      /* PRAGMA data_version (cached) */
	sqlite3_stmt *st_counter; /* the change counter row (cached) */
	int64_t dv;               /* data_version when counter was read */
	bool dv_valid;
	uint64_t counter;
};

int sq_errno(int rc);
int sq_fail(struct db *db, int rc, const char *what);
/* A statement for `sql` (cached); give it back with sq_release(). */
int sq_prepare(struct db *db, const char *sql, sqlite3_stmt **st);
/* Resets and unbinds a cached statement, finalizes any other. NULL: no-op. */
void sq_release(struct db *db, sqlite3_stmt *st);
int sq_exec(struct db *db, const char *sql);
int sq_begin(struct db *db);
int sq_commit(struct db *db);
void sq_rollback(struct db *db);
int sq_step_done(struct db *db, sqlite3_stmt *st, const char *what);
void sq_bind_text_trunc(sqlite3_stmt *st, int idx, const char *s, size_t max);
int sq_bump_changes(struct db *db);

/* sqlite_schema.c: pragmas + migrations to the latest version (create:
 * allowed to create/migrate; else -EPROTO when not current). */
int sq_schema_setup(struct db *db, bool create);
int sq_schema_current(struct db *db, int *out);
/* Number of the newest migration this binary knows. */
int sq_schema_latest(void);

#endif /* DE_DB_SQLITE_PRIVATE_H */
