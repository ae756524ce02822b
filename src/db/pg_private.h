/*
 * pg_private.h: private to src/db: the PostgreSQL backend's handle state and
 * the helpers shared by pg.c and pg_schema.c.
 */
#ifndef DE_DB_PG_PRIVATE_H
#define DE_DB_PG_PRIVATE_H

#include "db/db_backend.h"

#include <libpq-fe.h>

#define PG_CHANNEL_CHANGES "diskengine_changes" /* payload: the new change counter */
#define PG_CHANNEL_DATA "diskengine_data"       /* any disk/lvol/snapshot write */
#define PG_BACKOFF_MIN_MS 50
#define PG_BACKOFF_MAX_MS 2000

struct pg {
	PGconn *c;
	char *url;
	int lock_ms;            /* lock_timeout (the busy timeout) */
	bool session_ready;     /* session settings applied on this connection */
	bool listen_changes;    /* LISTEN diskengine_changes active on this connection */
	bool listen_data;       /* LISTEN diskengine_data active on this connection */
	bool counter_valid;     /* counter read after the last (re)connect */
	uint64_t counter;       /* last known change counter */
	uint64_t data_version;  /* local: data notifications and reconnects seen */
	int backoff_ms;         /* reconnect backoff (0 = connected) */
	uint64_t next_try_ms;   /* monotonic time of the next reconnect attempt */
	bool down_logged;
	char want_node[DB_NAME_MAX]; /* change filter: this node's rows only ("" = any) */
	unsigned want_kinds;    /* change filter: DB_CHANGE_* (0 = not set: all) */
	char sqlstate[6];       /* SQLSTATE of the last failed statement ("" = none) */
};

/* Runs sql with n text parameters (NULL = SQL NULL). With res, the result is
 * the caller's (PQclear). 0 or -errno with db->errmsg set; a lost connection
 * gives -EAGAIN and the next call reconnects (with backoff). */
int pg_query(struct db *db, const char *what, const char *sql, int n, const char *const *params,
	     PGresult **res);
int pg_begin(struct db *db);
int pg_commit(struct db *db);
void pg_rollback(struct db *db);

/* pg_schema.c */
int pg_schema_setup(struct db *db, bool create);
int pg_schema_current(struct db *db, int *out);
int pg_schema_latest(void);

#endif /* DE_DB_PG_PRIVATE_H */
