/*
 * pg_private.h: private to src/db: the PostgreSQL backend's handle state and
 * the helpers shared by pg.c and pg_schema.c.
 */
#ifndef DE_DB_PG_PRIVATE_H
#define DE_DB_PG_PRIVATE_H

#include "db/db_backend.h"

#include <libpq-fe.h>

/* libpq is loaded on first use (pg_lib.c): the functions pg.c and
 * pg_schema.c call, as pointers with libpq's own prototypes. Add a name here
 * before using a new PQ* function. */
#define PG_LIB_FUNCS(X) \
	X(PQconnectdb) \
	X(PQfinish) \
	X(PQreset) \
	X(PQstatus) \
	X(PQtransactionStatus) \
	X(PQerrorMessage) \
	X(PQsocket) \
	X(PQexec) \
	X(PQexecParams) \
	X(PQconsumeInput) \
	X(PQnotifies) \
	X(PQfreemem) \
	X(PQresultStatus) \
	X(PQresultErrorMessage) \
	X(PQresultErrorField) \
	X(PQntuples) \
	X(PQgetvalue) \
	X(PQcmdTuples) \
	X(PQclear)

struct pg_lib {
#define X(name) __typeof__(name) *name;
	PG_LIB_FUNCS(X)
#undef X
};
extern struct pg_lib pg_lib;

/* Loads libpq once per process: 0, or -ENOTSUP with the reason in err. */
int pg_lib_load(char *err, size_t errlen);

#ifndef PG_LIB_NO_MACROS
#define PQconnectdb (pg_lib.PQconnectdb)
#define PQfinish (pg_lib.PQfinish)
#define PQreset (pg_lib.PQreset)
#define PQstatus (pg_lib.PQstatus)
#define PQtransactionStatus (pg_lib.PQtransactionStatus)
#define PQerrorMessage (pg_lib.PQerrorMessage)
#define PQsocket (pg_lib.PQsocket)
#define PQexec (pg_lib.PQexec)
#define PQexecParams (pg_lib.PQexecParams)
#define PQconsumeInput (pg_lib.PQconsumeInput)
#define PQnotifies (pg_lib.PQnotifies)
#define PQfreemem (pg_lib.PQfreemem)
#define PQresultStatus (pg_lib.PQresultStatus)
#define PQresultErrorMessage (pg_lib.PQresultErrorMessage)
#define PQresultErrorField (pg_lib.PQresultErrorField)
#define PQntuples (pg_lib.PQntuples)
#define PQgetvalue (pg_lib.PQgetvalue)
#define PQcmdTuples (pg_lib.PQcmdTuples)
#define PQclear (pg_lib.PQclear)
#endif

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
