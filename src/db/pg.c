/*
 * pg.c: the PostgreSQL backend of the state store (a fleet: many agents and
 * diskctl processes on one server), selected by a postgresql:// URL. Same
 * semantics as sqlite.c:
 *   - every write is one transaction; desired-state writes bump meta
 *     'changes' (whose trigger NOTIFYs the agents, see pg_schema.c);
 *   - creates and grows lock their disk row (SELECT ... FOR UPDATE) before
 *     the free-space check, so concurrent creates never over-commit a thick
 *     disk; placement skips disks another create holds (SKIP LOCKED) and
 *     only waits when every candidate is taken;
 *   - db_change_counter() drains already-received notifications without a
 *     round trip; db_change_wait() blocks on the libpq socket;
 *   - a lost connection (server restart) fails the call with -EAGAIN, rolls
 *     back whatever was open server-side, and the next call reconnects with
 *     a doubling backoff (50 ms .. 2 s). Nothing half-written survives.
 */
#include "db/pg_private.h"

#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_ops pg_ops;

static struct pg *PG(struct db *db)
{
	return db->impl;
}

/* ----------------------------------------------------------- parameters */

#define PP_MAX 12

/* Text parameters for one statement. */
struct pp {
	const char *v[PP_MAX];
	char b[PP_MAX][24];
	int n;
};

static void pp_i(struct pp *p, int64_t x)
{
	snprintf(p->b[p->n], sizeof(p->b[0]), "%lld", (long long)x);
	p->v[p->n] = p->b[p->n];
	p->n++;
}

static void pp_u(struct pp *p, uint64_t x)
{
	pp_i(p, x > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)x);
}

static void pp_s(struct pp *p, const char *s)
{
	p->v[p->n++] = s;
}

static int64_t gi(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static uint64_t gu(const PGresult *r, int row, int col)
{
	int64_t v = gi(r, row, col);

	return v < 0 ? 0 : (uint64_t)v;
}

static void gs(const PGresult *r, int row, int col, char *dst, size_t size)
{
	db_strlcpy(dst, PQgetvalue(r, row, col), size);
}

/* ------------------------------------------------------- connection */

static void conn_lost(struct db *db)
{
	struct pg *p = PG(db);

	p->session_ready = false;
	p->listen_changes = false;
	p->listen_data = false;
	p->counter_valid = false;
	p->data_version++;
	if (!p->backoff_ms)
		p->backoff_ms = PG_BACKOFF_MIN_MS;
	p->next_try_ms = clock_mono_ms() + (uint64_t)p->backoff_ms;
	if (!p->down_logged)
		LOG_WARN("db", "postgresql connection lost err=\"%s\" (reconnecting with backoff)",
			 p->c ? PQerrorMessage(p->c) : "none");
	p->down_logged = true;
}

static int session_setup(struct db *db)
{
	struct pg *p = PG(db);
	char sql[96];
	PGresult *r;

	snprintf(sql, sizeof(sql), "SET lock_timeout = %d; SET client_min_messages = warning",
		 p->lock_ms);
	r = PQexec(p->c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return -EAGAIN;
	}
	PQclear(r);
	p->session_ready = true;
	return 0;
}

/* Makes sure the connection is up: reconnects when the backoff allows. */
static int conn_ensure(struct db *db)
{
	struct pg *p = PG(db);
	uint64_t now;

	if (p->c && PQstatus(p->c) == CONNECTION_OK) {
		if (!p->session_ready && session_setup(db) < 0) {
			conn_lost(db);
			return db_fail(db, -EAGAIN, "database server unreachable: %s",
				       PQerrorMessage(p->c));
		}
		return 0;
	}
	now = clock_mono_ms();
	if (now < p->next_try_ms)
		return db_fail(db, -EAGAIN, "database server unreachable (next reconnect in %llu ms)",
			       (unsigned long long)(p->next_try_ms - now));
	if (p->c)
		PQreset(p->c);
	else
		p->c = PQconnectdb(p->url);
	if (!p->c || PQstatus(p->c) != CONNECTION_OK) {
		int err = db_fail(db, -EAGAIN, "cannot connect to the PostgreSQL server: %s",
				  p->c ? PQerrorMessage(p->c) : "out of memory");

		p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
		if (p->backoff_ms > PG_BACKOFF_MAX_MS)
			p->backoff_ms = PG_BACKOFF_MAX_MS;
		p->next_try_ms = clock_mono_ms() + (uint64_t)p->backoff_ms;
		return err;
	}
	if (p->down_logged)
		LOG_INFO("db", "postgresql connection re-established");
	p->down_logged = false;
	p->backoff_ms = 0;
	p->session_ready = false;
	p->listen_changes = false;
	p->listen_data = false;
	p->counter_valid = false;
	p->data_version++;
	if (session_setup(db) < 0) {
		conn_lost(db);
		return db_fail(db, -EAGAIN, "database server unreachable: %s", PQerrorMessage(p->c));
	}
	return 0;
}

/* Maps a failed result to -errno (SQLSTATE classes). */
static int result_errno(struct db *db, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(PG(db)->c) != CONNECTION_OK)
		return -EAGAIN;
	if (!state)
		return -EIO;
	if (!strcmp(state, "23505"))
		return -EEXIST;
	if (!strcmp(state, "23503"))
		return -ENOENT;
	if (!strncmp(state, "23", 2) || !strncmp(state, "22", 2))
		return -EINVAL;
	if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03") ||
	    !strcmp(state, "57014") || !strncmp(state, "57P", 3) || !strncmp(state, "08", 2))
		return -EAGAIN;
	if (!strcmp(state, "53100"))
		return -ENOSPC;
	if (!strcmp(state, "53200"))
		return -ENOMEM;
	if (!strcmp(state, "25006"))
		return -EROFS;
	if (!strncmp(state, "42501", 5))
		return -EACCES;
	return -EIO;
}

int pg_query(struct db *db, const char *what, const char *sql, int n, const char *const *params,
	     PGresult **res)
{
	struct pg *p = PG(db);
	ExecStatusType st;
	PGresult *r;
	int rc;

	if (res)
		*res = NULL;
	if ((rc = conn_ensure(db)) < 0)
		return rc;
	if (n)
		r = PQexecParams(p->c, sql, n, NULL, params, NULL, NULL, 0);
	else
		r = PQexec(p->c, sql);
	st = PQresultStatus(r);
	p->sqlstate[0] = '\0';
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (res)
			*res = r;
		else
			PQclear(r);
		return 0;
	}
	if (r && PQresultErrorField(r, PG_DIAG_SQLSTATE))
		db_strlcpy(p->sqlstate, PQresultErrorField(r, PG_DIAG_SQLSTATE), sizeof(p->sqlstate));
	rc = result_errno(db, r);
	if (rc == -EAGAIN && PQstatus(p->c) != CONNECTION_OK) {
		db_fail(db, rc, "%s: database server unreachable: %s", what, PQerrorMessage(p->c));
		conn_lost(db);
	} else if (rc == -EAGAIN) {
		db_fail(db, rc, "%s: database busy (lock wait over %d ms or conflict): %s", what,
			p->lock_ms, PQresultErrorMessage(r));
	} else {
		char msg[300];

		db_strlcpy(msg, r ? PQresultErrorMessage(r) : PQerrorMessage(p->c), sizeof(msg));
		msg[strcspn(msg, "\n")] = '\0';
		db_fail(db, rc, "%s failed on the database: %s", what, msg);
	}
	PQclear(r);
	return rc;
}

int pg_begin(struct db *db)
{
	return pg_query(db, "begin", "BEGIN", 0, NULL, NULL);
}

int pg_commit(struct db *db)
{
	int rc = pg_query(db, "commit", "COMMIT", 0, NULL, NULL);

	if (rc < 0)
		pg_rollback(db);
	return rc;
}

void pg_rollback(struct db *db)
{
	struct pg *p = PG(db);

	if (p->c && PQstatus(p->c) == CONNECTION_OK &&
	    PQtransactionStatus(p->c) != PQTRANS_IDLE)
		PQclear(PQexec(p->c, "ROLLBACK"));
}

/* The transaction-local setting diskengine.wake is what the change trigger
 * appends to its NOTIFY payload: "<DB_CHANGE_* kinds> <node>" (node "" =
 * every node). */
static void wake_format(char *buf, size_t len, unsigned kinds, const char *node)
{
	snprintf(buf, len, "%u %s", kinds, node ? node : "");
}

/* Bumps the desired-state change counter inside the open transaction; its
 * trigger NOTIFYs the agents at commit, saying which node and kind of
 * change (agents of other nodes, and loops of other kinds, sleep on). */
static int bump_changes(struct db *db, unsigned kinds, const char *node)
{
	char wake[DB_NAME_MAX + 16];
	const char *v[1] = { wake };

	wake_format(wake, sizeof(wake), kinds, node);
	return pg_query(db, "change counter",
			"UPDATE meta SET value = value + 1 WHERE key = 'changes' AND "
			"set_config('diskengine.wake', $1, true) IS NOT NULL", 1, v, NULL);
}

/* One statement in its own transaction with its own params; rows affected in
 * *changed (may be NULL). An observed-state write is the statement alone (its
 * implicit transaction: one round trip); a desired one also bumps the change
 * counter (BEGIN, statement, bump, COMMIT). */
static int exec_tx(struct db *db, const char *what, const char *sql, struct pp *pp, bool desired,
		   int *changed)
{
	PGresult *r = NULL;
	int rc;

	if (!desired) {
		if ((rc = pg_query(db, what, sql, pp->n, pp->v, &r)) < 0)
			return rc;
		if (changed)
			*changed = atoi(PQcmdTuples(r));
		PQclear(r);
		return 0;
	}
	if ((rc = pg_begin(db)) < 0)
		return rc;
	if ((rc = pg_query(db, what, sql, pp->n, pp->v, &r)) < 0)
		goto out;
	if (changed)
		*changed = atoi(PQcmdTuples(r));
	PQclear(r);
	if (desired && (rc = bump_changes(db, DB_CHANGE_ALL, NULL)) < 0)
		goto out;
	return pg_commit(db);
out:
	pg_rollback(db);
	return rc;
}

/* ---------------------------------------------------------- open/close */

static void pg_close(struct db *db)
{
	struct pg *p = PG(db);

	if (p) {
		if (p->c)
			PQfinish(p->c);
		mem_free(p->url);
		mem_free(p);
	}
	mem_free(db);
}

int db_pg_open(const char *url, bool create, struct db **out, char *err, size_t errlen)
{
	struct db *db = NULL;
	struct pg *p = NULL;
	int rc;

	*out = NULL;
	if ((rc = pg_lib_load(err, errlen)) < 0)
		return rc;
	db = mem_zalloc(sizeof(*db));
	p = mem_zalloc(sizeof(*p));
	if (!db || !p || !(p->url = mem_strdup(url))) {
		if (p)
			mem_free(p->url);
		mem_free(p);
		mem_free(db);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	db->ops = &pg_ops;
	db->impl = p;
	p->lock_ms = 5000;
	p->c = PQconnectdb(url);
	if (!p->c || PQstatus(p->c) != CONNECTION_OK) {
		char msg[300];

		db_strlcpy(msg, p->c ? PQerrorMessage(p->c) : "out of memory", sizeof(msg));
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(err, errlen, "cannot connect to the PostgreSQL server: %s", msg);
		db_close(db);
		return -ECONNREFUSED;
	}
	if ((rc = session_setup(db)) < 0 || (rc = pg_schema_setup(db, create)) < 0) {
		snprintf(err, errlen, "%s", db->errmsg[0] ? db->errmsg : "session setup failed");
		db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

static int pg_schema_version(struct db *db, int *out)
{
	return pg_schema_current(db, out);
}

static void pg_busy_timeout_set(struct db *db, int ms)
{
	struct pg *p = PG(db);

	p->lock_ms = ms < 1 ? 1 : ms; /* 0 would mean "wait forever" to PostgreSQL */
	p->session_ready = false;     /* applied before the next statement */
}

/* ------------------------------------------------------------ wake-ups */

/* Does a change notification's " <kinds> <node>" (after the counter) pass
 * this handle's filter? No details (a writer of schema 2): yes. */
static bool change_wanted(const struct pg *p, const char *rest)
{
	unsigned long kinds;
	char *node = NULL;

	if (!p->want_kinds || !rest || *rest != ' ')
		return true;
	kinds = strtoul(rest + 1, &node, 10);
	if (!(kinds & p->want_kinds))
		return false;
	if (node && *node == ' ')
		node++;
	return !p->want_node[0] || !node || !*node || !strcmp(node, p->want_node);
}

static void pg_change_filter(struct db *db, const char *node, unsigned kinds)
{
	struct pg *p = PG(db);

	db_strlcpy(p->want_node, node ? node : "", sizeof(p->want_node));
	p->want_kinds = kinds & DB_CHANGE_ALL;
}

/* Takes notifications libpq already has (and whatever the socket holds,
 * without blocking). -EAGAIN when the connection broke. */
static int drain(struct db *db)
{
	struct pg *p = PG(db);
	PGnotify *n;

	if (!PQconsumeInput(p->c)) {
		db_fail(db, -EAGAIN, "database server unreachable: %s", PQerrorMessage(p->c));
		conn_lost(db);
		return -EAGAIN;
	}
	while ((n = PQnotifies(p->c)) != NULL) {
		if (!strcmp(n->relname, PG_CHANNEL_CHANGES)) {
			char *rest = NULL;
			uint64_t v = strtoull(n->extra, &rest, 10);

			if (v > p->counter && change_wanted(p, rest))
				p->counter = v;
		} else {
			p->data_version++;
		}
		PQfreemem(n);
	}
	return 0;
}

static int pg_change_counter(struct db *db, uint64_t *out)
{
	struct pg *p = PG(db);
	PGresult *r = NULL;
	int rc;

	if ((rc = conn_ensure(db)) < 0)
		return rc;
	if (!p->listen_changes) {
		if ((rc = pg_query(db, "listen", "LISTEN " PG_CHANNEL_CHANGES, 0, NULL, NULL)) < 0)
			return rc;
		p->listen_changes = true;
		p->counter_valid = false;
	}
	if (!p->counter_valid) {
		/* After LISTEN: a change committed from now on is notified. */
		rc = pg_query(db, "change counter", "SELECT value FROM meta WHERE key = 'changes'", 0,
			      NULL, &r);
		if (rc < 0)
			return rc;
		p->counter = PQntuples(r) ? gu(r, 0, 0) : 0;
		PQclear(r);
		p->counter_valid = true;
	}
	if ((rc = drain(db)) < 0)
		return rc;
	*out = p->counter;
	return 0;
}

static int pg_data_version(struct db *db, uint64_t *out)
{
	struct pg *p = PG(db);
	int rc;

	if ((rc = conn_ensure(db)) < 0)
		return rc;
	if (!p->listen_data) {
		if ((rc = pg_query(db, "listen", "LISTEN " PG_CHANNEL_DATA, 0, NULL, NULL)) < 0)
			return rc;
		p->listen_data = true;
	}
	if ((rc = drain(db)) < 0)
		return rc;
	*out = p->data_version;
	return 0;
}

/* Sleeps up to ms or until wake_fd is readable; true when woken by it. */
static bool fd_sleep(int wake_fd, int ms)
{
	struct pollfd pf = { .fd = wake_fd, .events = POLLIN };

	if (ms <= 0)
		return false;
	if (wake_fd < 0) {
		poll(NULL, 0, ms);
		return false;
	}
	return poll(&pf, 1, ms) > 0;
}

/* Blocks on the libpq socket until get() (which drains what arrived) moves
 * off since, the timeout passes or wake_fd is readable. */
static int socket_wait(struct db *db, int (*get)(struct db *db, uint64_t *out), uint64_t since,
		       int timeout_ms, int wake_fd, uint64_t *now)
{
	struct pg *p = PG(db);
	uint64_t start = clock_mono_ms(), v = 0;
	int rc;

	for (;;) {
		uint64_t el = clock_mono_ms() - start;
		int left = el >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)el;
		struct pollfd pf[2];

		rc = get(db, &v);
		if (rc < 0) {
			/* server away: don't spin; the caller retries later */
			fd_sleep(wake_fd, COMMON_MIN(left, PG_BACKOFF_MAX_MS));
			return rc;
		}
		if (now)
			*now = v;
		if (v != since)
			return 1;
		if (left <= 0)
			return 0;
		pf[0] = (struct pollfd){ .fd = PQsocket(p->c), .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
		if (poll(pf, wake_fd >= 0 ? 2 : 1, left) < 0 && errno != EINTR)
			return -errno;
		if (wake_fd >= 0 && (pf[1].revents & POLLIN))
			return 0;
	}
}

static int pg_change_wait(struct db *db, uint64_t since, int timeout_ms, int wake_fd,
			  uint64_t *now)
{
	return socket_wait(db, pg_change_counter, since, timeout_ms, wake_fd, now);
}

static int pg_data_wait(struct db *db, uint64_t since, int timeout_ms, uint64_t *now)
{
	return socket_wait(db, pg_data_version, since, timeout_ms, -1, now);
}

/* --------------------------------------------------------------- nodes */

static int pg_node_add(struct db *db, const char *name, const char *rpc_socket,
		       const char *nqn_prefix, int64_t *id_out)
{
	struct pp pp = { .n = 0 };
	PGresult *r = NULL;
	int rc;

	pp_s(&pp, name);
	pp_s(&pp, rpc_socket);
	pp_s(&pp, nqn_prefix);
	pp_i(&pp, clock_wall_ms());
	if ((rc = pg_begin(db)) < 0)
		return rc;
	rc = pg_query(db, "add node",
		      "INSERT INTO nodes (name, rpc_socket, nqn_prefix, created_at, updated_at) "
		      "VALUES ($1, $2, $3, $4::bigint, $4::bigint) RETURNING id", pp.n, pp.v, &r);
	if (rc == -EEXIST)
		rc = db_fail(db, rc, "node '%s' already exists", name);
	if (rc < 0)
		goto out;
	if (id_out)
		*id_out = gi(r, 0, 0);
	PQclear(r);
	if ((rc = bump_changes(db, DB_CHANGE_ALL, NULL)) < 0)
		goto out;
	return pg_commit(db);
out:
	pg_rollback(db);
	return rc;
}

#define NODE_COLS "id, name, rpc_socket, nqn_prefix, last_seen, generation, created_at, updated_at"

static void node_row(const PGresult *r, int i, void *e)
{
	struct db_node *n = e;

	memset(n, 0, sizeof(*n));
	n->id = gi(r, i, 0);
	gs(r, i, 1, n->name, sizeof(n->name));
	gs(r, i, 2, n->rpc_socket, sizeof(n->rpc_socket));
	gs(r, i, 3, n->nqn_prefix, sizeof(n->nqn_prefix));
	n->last_seen = gi(r, i, 4);
	n->generation = gu(r, i, 5);
	n->created_at = gi(r, i, 6);
	n->updated_at = gi(r, i, 7);
}

typedef void (*row_fn)(const PGresult *r, int i, void *elem);

/* Runs a query and converts its rows into a new array (mem_*). */
static int collect(struct db *db, const char *sql, struct pp *pp, size_t elem_size, row_fn fn,
		   int (*post)(const PGresult *r, int i, void *elem), void **out, size_t *count)
{
	PGresult *r = NULL;
	char *arr = NULL;
	int rc, n, i;

	*out = NULL;
	*count = 0;
	if ((rc = pg_query(db, "query", sql, pp->n, pp->v, &r)) < 0)
		return rc;
	n = PQntuples(r);
	if (n > 0) {
		arr = mem_zalloc((size_t)n * elem_size);
		if (!arr) {
			PQclear(r);
			return db_fail(db, -ENOMEM, "out of memory");
		}
	}
	for (i = 0; i < n; i++) {
		fn(r, i, arr + (size_t)i * elem_size);
		if (post && (rc = post(r, i, arr + (size_t)i * elem_size)) < 0) {
			PQclear(r);
			db_lvol_list_free((struct db_lvol *)arr, (size_t)i + 1);
			return db_fail(db, rc, "out of memory");
		}
	}
	PQclear(r);
	*out = arr;
	*count = (size_t)n;
	return 0;
}

static int pg_node_get(struct db *db, const char *name, int64_t id, struct db_node *out)
{
	struct pp pp = { .n = 0 };
	void *arr = NULL;
	size_t n = 0;
	int rc;

	pp_s(&pp, name);
	pp_i(&pp, name ? -1 : id);
	rc = collect(db, "SELECT " NODE_COLS " FROM nodes WHERE name = $1 OR id = $2::bigint", &pp,
		     sizeof(struct db_node), node_row, NULL, &arr, &n);
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

static int pg_node_list(struct db *db, struct db_node **out, size_t *count)
{
	struct pp pp = { .n = 0 };

	return collect(db, "SELECT " NODE_COLS " FROM nodes ORDER BY name", &pp,
		       sizeof(struct db_node), node_row, NULL, (void **)out, count);
}

/* UPDATE ... WHERE id = $1 in its own transaction; -ENOENT when no row. */
static int update_one(struct db *db, const char *what, const char *kind, const char *sql,
		      struct pp *pp, int64_t id, bool desired)
{
	int changed = 0, rc = exec_tx(db, what, sql, pp, desired, &changed);

	if (rc < 0)
		return rc;
	if (changed == 0)
		return db_fail(db, -ENOENT, "no %s with id %lld", kind, (long long)id);
	return 0;
}

static int pg_node_heartbeat(struct db *db, int64_t node_id)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, node_id);
	pp_i(&pp, clock_wall_ms());
	return update_one(db, "heartbeat", "node",
			  "UPDATE nodes SET last_seen = $2::bigint WHERE id = $1::bigint", &pp, node_id,
			  false);
}

/* --------------------------------------------------------------- disks */

static int pg_disk_add(struct db *db, const struct db_disk *spec, int64_t *id_out)
{
	char listen[DB_LISTEN_MAX * 64];
	struct pp pp = { .n = 0 }, q = { .n = 0 };
	struct db_node node;
	const char *lvs = spec->lvstore[0] ? spec->lvstore : spec->name;
	PGresult *r = NULL;
	int rc;

	db_listen_format(spec, listen, sizeof(listen));
	if ((rc = pg_begin(db)) < 0)
		return rc;
	/* serializes with other desired writers (meta row lock) */
	if ((rc = bump_changes(db, DB_CHANGE_ALL, NULL)) < 0)
		goto out;
	if ((rc = pg_node_get(db, spec->node, 0, &node)) < 0)
		goto out;
	pp_i(&q, node.id);
	pp_s(&q, lvs);
	pp_s(&q, spec->path);
	pp_s(&q, spec->name);
	rc = pg_query(db, "add disk",
		      "SELECT name, (node_id = $1::bigint AND lvstore = $2)::int, "
		      "(node_id = $1::bigint AND path = $3)::int FROM disks WHERE name = $4 "
		      "OR (node_id = $1::bigint AND (lvstore = $2 OR path = $3))", q.n, q.v, &r);
	if (rc < 0)
		goto out;
	if (PQntuples(r) > 0) {
		char other[DB_NAME_MAX];

		gs(r, 0, 0, other, sizeof(other));
		if (!strcmp(other, spec->name))
			rc = db_fail(db, -EEXIST, "disk '%s' already exists", spec->name);
		else if (gi(r, 0, 1))
			rc = db_fail(db, -EEXIST, "lvstore name '%s' is already used by disk '%s' of node '%s'",
				     lvs, other, node.name);
		else
			rc = db_fail(db, -EEXIST, "path %s is already used by disk '%s' of node '%s'",
				     spec->path, other, node.name);
		PQclear(r);
		goto out;
	}
	PQclear(r);
	pp_s(&pp, spec->name);
	pp_i(&pp, node.id);
	pp_s(&pp, spec->path);
	pp_i(&pp, spec->is_device);
	pp_s(&pp, lvs);
	pp_u(&pp, spec->cluster_size ? spec->cluster_size : DB_CLUSTER_SIZE_DEFAULT);
	pp_s(&pp, listen);
	pp_s(&pp, spec->interface);
	pp_i(&pp, spec->interface[0] ? (spec->port ? spec->port : DB_PORT_DEFAULT) : 0);
	pp_s(&pp, db_transport_name(spec->transport));
	pp_i(&pp, clock_wall_ms());
	rc = pg_query(db, "add disk",
		      "INSERT INTO disks (name, node_id, path, is_device, lvstore, cluster_size, listen, "
		      "interface, port, transport, created_at, updated_at) VALUES ($1, $2::bigint, $3, "
		      "$4::int, $5, $6::bigint, $7, $8, $9::int, $10, $11::bigint, $11::bigint) "
		      "RETURNING id", pp.n, pp.v, &r);
	if (rc == -EEXIST)
		rc = db_fail(db, rc, "disk '%s' already exists", spec->name);
	if (rc < 0)
		goto out;
	if (id_out)
		*id_out = gi(r, 0, 0);
	PQclear(r);
	return pg_commit(db);
out:
	pg_rollback(db);
	return rc;
}

#define DISK_COLS                                                                           \
	"d.id, d.name, d.node_id, n.name, d.path, d.is_device, d.lvstore, d.cluster_size, "  \
	"d.listen, d.interface, d.port, d.transport, d.lvstore_uuid, d.lvstore_state, "      \
	"d.capacity, d.free, d.observed_at, d.generation, d.created_at, d.updated_at "       \
	"FROM disks d JOIN nodes n ON n.id = d.node_id "

static void disk_row(const PGresult *r, int i, void *e)
{
	struct db_disk *d = e;
	enum db_transport t = DB_TRANSPORT_TCP;

	memset(d, 0, sizeof(*d));
	d->id = gi(r, i, 0);
	gs(r, i, 1, d->name, sizeof(d->name));
	d->node_id = gi(r, i, 2);
	gs(r, i, 3, d->node, sizeof(d->node));
	gs(r, i, 4, d->path, sizeof(d->path));
	d->is_device = gi(r, i, 5) != 0;
	gs(r, i, 6, d->lvstore, sizeof(d->lvstore));
	d->cluster_size = gu(r, i, 7);
	db_listen_parse_all(PQgetvalue(r, i, 8), d);
	gs(r, i, 9, d->interface, sizeof(d->interface));
	d->port = (uint16_t)gi(r, i, 10);
	db_transport_parse(PQgetvalue(r, i, 11), &t);
	d->transport = t;
	gs(r, i, 12, d->lvstore_uuid, sizeof(d->lvstore_uuid));
	d->lvstore_state = !strcmp(PQgetvalue(r, i, 13), "loaded") ? DB_LVSTORE_LOADED
								  : DB_LVSTORE_ABSENT;
	d->capacity = gu(r, i, 14);
	d->free = gu(r, i, 15);
	d->observed_at = gi(r, i, 16);
	d->generation = gu(r, i, 17);
	d->created_at = gi(r, i, 18);
	d->updated_at = gi(r, i, 19);
}

/* lock: "" or " FOR UPDATE OF d" (inside a write transaction). */
static int disk_get_lock(struct db *db, const char *name, int64_t id, struct db_disk *out,
			 bool lock)
{
	struct pp pp = { .n = 0 };
	void *arr = NULL;
	size_t n = 0;
	int rc;

	pp_s(&pp, name);
	pp_i(&pp, name ? -1 : id);
	rc = collect(db,
		     lock ? "SELECT " DISK_COLS "WHERE d.name = $1 OR d.id = $2::bigint FOR UPDATE OF d"
			  : "SELECT " DISK_COLS "WHERE d.name = $1 OR d.id = $2::bigint",
		     &pp, sizeof(struct db_disk), disk_row, NULL, &arr, &n);
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

static int pg_disk_get(struct db *db, const char *name, int64_t id, struct db_disk *out)
{
	return disk_get_lock(db, name, id, out, false);
}

static int pg_disk_list(struct db *db, const char *node, struct db_disk **out, size_t *count)
{
	struct pp pp = { .n = 0 };

	pp_s(&pp, node);
	return collect(db, "SELECT " DISK_COLS "WHERE $1::text IS NULL OR n.name = $1 "
			   "ORDER BY n.name, d.name", &pp, sizeof(struct db_disk), disk_row, NULL,
		       (void **)out, count);
}

static int pg_disk_set_lvstore(struct db *db, int64_t disk_id, const char *uuid,
			       uint64_t cluster_size)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, disk_id);
	pp_i(&pp, clock_wall_ms());
	pp_s(&pp, uuid);
	pp_u(&pp, cluster_size);
	return update_one(db, "set lvstore", "disk",
			  "UPDATE disks SET lvstore_uuid = $3, cluster_size = CASE WHEN $4::bigint > 0 "
			  "THEN $4::bigint ELSE cluster_size END, updated_at = $2::bigint "
			  "WHERE id = $1::bigint", &pp, disk_id, false);
}

static int pg_disk_observe(struct db *db, int64_t disk_id, enum db_lvstore_state state,
			   uint64_t capacity, uint64_t free_bytes)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, disk_id);
	pp_i(&pp, clock_wall_ms());
	pp_s(&pp, db_lvstore_state_name(state));
	if (state == DB_LVSTORE_ABSENT)
		return update_one(db, "observe disk", "disk",
				  "UPDATE disks SET lvstore_state = $3, updated_at = $2::bigint "
				  "WHERE id = $1::bigint", &pp, disk_id, false);
	pp_u(&pp, capacity);
	pp_u(&pp, free_bytes);
	return update_one(db, "observe disk", "disk",
			  "UPDATE disks SET lvstore_state = $3, capacity = $4::bigint, "
			  "free = $5::bigint, observed_at = $2::bigint, updated_at = $2::bigint "
			  "WHERE id = $1::bigint", &pp, disk_id, false);
}

/* --------------------------------------------------------------- lvols */

#define LVOL_COLS                                                                             \
	"l.id, l.disk_id, d.name, d.node_id, n.name, l.size, l.real_size, l.thin, l.state, "    \
	"l.reason, l.uuid, l.nqn, l.hosts, COALESCE(l.clone_of, 0), l.zero_from, l.zero_to, "   \
	"l.zero_done, l.generation, l.created_at, l.updated_at "                               \
	"FROM lvols l JOIN disks d ON d.id = l.disk_id JOIN nodes n ON n.id = d.node_id "

static void lvol_row(const PGresult *r, int i, void *e)
{
	struct db_lvol *l = e;
	enum db_lvol_state s = DB_LVOL_FAILED;

	memset(l, 0, sizeof(*l));
	l->id = gi(r, i, 0);
	l->disk_id = gi(r, i, 1);
	gs(r, i, 2, l->disk, sizeof(l->disk));
	l->node_id = gi(r, i, 3);
	gs(r, i, 4, l->node, sizeof(l->node));
	l->size = gu(r, i, 5);
	l->real_size = gu(r, i, 6);
	l->thin = gi(r, i, 7) != 0;
	db_lvol_state_parse(PQgetvalue(r, i, 8), &s);
	l->state = s;
	gs(r, i, 9, l->reason, sizeof(l->reason));
	gs(r, i, 10, l->uuid, sizeof(l->uuid));
	gs(r, i, 11, l->nqn, sizeof(l->nqn));
	l->clone_of = gi(r, i, 13);
	l->zero_from = gu(r, i, 14);
	l->zero_to = gu(r, i, 15);
	l->zero_done = gu(r, i, 16);
	l->generation = gu(r, i, 17);
	l->created_at = gi(r, i, 18);
	l->updated_at = gi(r, i, 19);
}

static int lvol_hosts(const PGresult *r, int i, void *e)
{
	struct db_lvol *l = e;

	return db_split_words(PQgetvalue(r, i, 12), &l->hosts, &l->host_count);
}

static int lvol_list_sql(struct db *db, const struct db_lvol_filter *f, int64_t only_id,
			 bool lock, struct db_lvol **out, size_t *count)
{
	struct pp pp = { .n = 0 };

	pp_s(&pp, f->node);
	pp_s(&pp, f->disk);
	pp_s(&pp, f->state != DB_LVOL_ANY ? db_lvol_state_name(f->state) : NULL);
	pp_i(&pp, f->include_deleted || f->state == DB_LVOL_DELETED || only_id);
	pp_i(&pp, only_id);
	return collect(db,
		       lock ? "SELECT " LVOL_COLS
			      "WHERE ($1::text IS NULL OR n.name = $1) AND ($2::text IS NULL OR d.name = $2) "
			      "AND ($3::text IS NULL OR l.state = $3) AND ($4::int <> 0 OR l.state <> 'DELETED') "
			      "AND ($5::bigint = 0 OR l.id = $5::bigint) ORDER BY l.id FOR UPDATE OF l"
			    : "SELECT " LVOL_COLS
			      "WHERE ($1::text IS NULL OR n.name = $1) AND ($2::text IS NULL OR d.name = $2) "
			      "AND ($3::text IS NULL OR l.state = $3) AND ($4::int <> 0 OR l.state <> 'DELETED') "
			      "AND ($5::bigint = 0 OR l.id = $5::bigint) ORDER BY l.id",
		       &pp, sizeof(struct db_lvol), lvol_row, lvol_hosts, (void **)out, count);
}

static int pg_lvol_list(struct db *db, const struct db_lvol_filter *f, int64_t only_id,
			struct db_lvol **out, size_t *count)
{
	return lvol_list_sql(db, f, only_id, false, out, count);
}

/* Reads (and row-locks) one lvol inside a write transaction. */
static int lvol_load(struct db *db, int64_t id, struct db_lvol *out)
{
	struct db_lvol_filter f = { .state = DB_LVOL_ANY, .include_deleted = true };
	struct db_lvol *arr = NULL;
	size_t n = 0;
	int rc = lvol_list_sql(db, &f, id, true, &arr, &n);

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
 * them (the caller holds the disk row lock): CREATING rows, the growth of
 * RESIZING rows, and CREATING/READY rows written after the disk's last
 * observation (the target may have allocated them after the agent read its
 * free bytes) when that observation is live (younger than DB_NODE_LIVE_MS:
 * an older one means no agent runs, so nothing is allocated in flight).
 * Errs on the safe side for at most one verify pass.
 */
static int disk_available(struct db *db, const struct db_disk *d, uint64_t *avail,
			  uint64_t *pending_out)
{
	struct pp pp = { .n = 0 };
	uint64_t pending = 0;
	PGresult *r = NULL;
	int rc, i;

	pp_i(&pp, d->id);
	pp_i(&pp, d->observed_at);
	pp_i(&pp, clock_wall_ms() - DB_NODE_LIVE_MS);
	rc = pg_query(db, "free space",
		      "SELECT size, real_size, state, (updated_at > $2::bigint)::int FROM lvols "
		      "WHERE disk_id = $1::bigint AND thin = 0 AND (state IN ('CREATING', 'RESIZING') "
		      "OR (state = 'READY' AND updated_at > $2::bigint AND $2::bigint >= $3::bigint))",
		      pp.n, pp.v, &r);
	if (rc < 0)
		return rc;
	for (i = 0; i < PQntuples(r); i++)
		pending += db_pending_bytes(d, gu(r, i, 0), gu(r, i, 1),
					    !strcmp(PQgetvalue(r, i, 2), "RESIZING"), gi(r, i, 3));
	PQclear(r);
	*pending_out = pending;
	*avail = d->free > pending ? d->free - pending : 0;
	return 0;
}

/* disk_available() of every placement candidate in one query (one round
 * trip instead of one per disk): pending[i] for disks[i]; the rows are locked
 * by the caller, so their observed_at is the one in the table. */
static int disks_pending(struct db *db, const struct db_disk *disks, size_t n, uint64_t *pending)
{
	struct pp pp = { .n = 0 };
	PGresult *r = NULL;
	char *ids;
	size_t i, off = 0, len = n * 22 + 3;
	int rc, k;

	if (!n)
		return 0; /* no candidates: pending may be NULL */
	memset(pending, 0, n * sizeof(*pending));
	ids = mem_zalloc(len);
	if (!ids)
		return db_fail(db, -ENOMEM, "out of memory");
	ids[off++] = '{';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(ids + off, len - off, "%s%lld", i ? "," : "",
					(long long)disks[i].id);
	snprintf(ids + off, len - off, "}");
	pp_s(&pp, ids);
	pp_i(&pp, clock_wall_ms() - DB_NODE_LIVE_MS);
	rc = pg_query(db, "free space",
		      "SELECT l.disk_id, l.size, l.real_size, (l.state = 'RESIZING')::int, "
		      "(l.updated_at > d.observed_at)::int FROM lvols l JOIN disks d ON d.id = l.disk_id "
		      "WHERE l.disk_id = ANY($1::bigint[]) AND l.thin = 0 AND "
		      "(l.state IN ('CREATING', 'RESIZING') OR (l.state = 'READY' AND "
		      "l.updated_at > d.observed_at AND d.observed_at >= $2::bigint))",
		      pp.n, pp.v, &r);
	mem_free(ids);
	if (rc < 0)
		return rc;
	for (k = 0; k < PQntuples(r); k++) {
		int64_t disk = gi(r, k, 0);

		for (i = 0; i < n; i++) {
			if (disks[i].id == disk) {
				pending[i] += db_pending_bytes(&disks[i], gu(r, k, 1), gu(r, k, 2),
							       gi(r, k, 3), gi(r, k, 4));
				break;
			}
		}
	}
	PQclear(r);
	return 0;
}

/*
 * Placement inside the create's transaction: among disks of live nodes with
 * a loaded lvstore, lock the candidates no other create holds (SKIP LOCKED)
 * and take the one with the most available bytes; when none of those fits
 * (or every candidate is held by another create), release them and wait for
 * all candidates (FOR UPDATE, id order) and decide then. The chosen disk
 * stays locked until commit, so its free-space check holds.
 */
static int place(struct db *db, const char *node, uint64_t size, bool thin, struct db_disk *out)
{
	static const char *const sql[2] = {
		"SELECT " DISK_COLS "WHERE d.lvstore_state = 'loaded' AND d.observed_at > 0 "
		"AND n.last_seen > $1::bigint AND ($2::text IS NULL OR n.name = $2) "
		"ORDER BY d.id FOR UPDATE OF d SKIP LOCKED",
		"SELECT " DISK_COLS "WHERE d.lvstore_state = 'loaded' AND d.observed_at > 0 "
		"AND n.last_seen > $1::bigint AND ($2::text IS NULL OR n.name = $2) "
		"ORDER BY d.id FOR UPDATE OF d",
	};
	struct db_disk *disks = NULL;
	size_t n = 0, i, best = SIZE_MAX;
	uint64_t best_avail = 0, *pending = NULL;
	int rc, pass;

	if (node && (rc = pg_node_get(db, node, 0, &(struct db_node){ 0 })) < 0)
		return rc;
	/* The first pass's locks are taken after a savepoint: when nothing it got
	 * fits, they are released before the second pass waits for all the
	 * candidates in id order (holding some while waiting for others would
	 * deadlock two placements). */
	if ((rc = pg_query(db, "place", "SAVEPOINT place", 0, NULL, NULL)) < 0)
		return rc;
	for (pass = 0; pass < 2 && best == SIZE_MAX; pass++) {
		struct pp pp = { .n = 0 };

		if (pass == 1 &&
		    (rc = pg_query(db, "place", "ROLLBACK TO SAVEPOINT place", 0, NULL, NULL)) < 0)
			goto out;
		pp_i(&pp, clock_wall_ms() - DB_NODE_LIVE_MS);
		pp_s(&pp, node);
		db_disk_list_free(disks, n);
		disks = NULL;
		n = 0;
		if ((rc = collect(db, sql[pass], &pp, sizeof(struct db_disk), disk_row, NULL,
				  (void **)&disks, &n)) < 0)
			goto out;
		mem_free(pending);
		pending = n ? mem_zalloc(n * sizeof(*pending)) : NULL;
		if (n && !pending) {
			rc = db_fail(db, -ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = disks_pending(db, disks, n, pending)) < 0)
			goto out;
		for (i = 0; i < n; i++) {
			uint64_t avail = disks[i].free > pending[i] ? disks[i].free - pending[i] : 0;

			if (!thin && db_round_cluster(size, disks[i].cluster_size) > avail)
				continue;
			if (best == SIZE_MAX || avail > best_avail) {
				best = i;
				best_avail = avail;
			}
		}
	}
	if (best == SIZE_MAX) {
		rc = db_place_none(db, node, n, size);
		goto out;
	}
	*out = disks[best];
	rc = 0;
out:
	mem_free(pending);
	db_disk_list_free(disks, n);
	return rc;
}

static int pg_snapshot_list(struct db *db, const struct db_snapshot_filter *f, int64_t only_id,
			    struct db_snapshot **out, size_t *count);

static int pg_lvol_create(struct db *db, const struct db_lvol_spec *spec, int64_t *id_out)
{
	struct pp pp = { .n = 0 };
	struct db_disk disk;
	char wake[DB_NAME_MAX + 16];
	uint64_t size = spec->size;
	bool thin = spec->thin;
	char *hosts = NULL;
	PGresult *r = NULL;
	int64_t id;
	int rc;

	if ((rc = db_join_hosts(db, spec->hosts, spec->host_count, &hosts)) < 0)
		return rc;
	if ((rc = pg_begin(db)) < 0)
		goto out;
	if (spec->clone_of) {
		struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY, .include_deleted = true };
		struct db_snapshot *snaps = NULL;
		size_t n = 0;

		if ((rc = pg_snapshot_list(db, &f, spec->clone_of, &snaps, &n)) < 0)
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
		rc = pg_disk_get(db, NULL, snaps[0].disk_id, &disk);
		mem_free(snaps);
		if (rc < 0)
			goto out;
		thin = true; /* a clone shares the snapshot's clusters */
	} else if (!spec->disk) {
		if ((rc = place(db, spec->node, size, thin, &disk)) < 0)
			goto out;
	} else {
		if ((rc = disk_get_lock(db, spec->disk, 0, &disk, true)) < 0)
			goto out;
		if (spec->node && strcmp(spec->node, disk.node)) {
			rc = db_fail(db, -EINVAL, "disk '%s' belongs to node '%s', not '%s'", disk.name,
				     disk.node, spec->node);
			goto out;
		}
		if (!thin && (rc = db_space_check(db, &disk, size, disk_available)) < 0)
			goto out;
	}
	pp_i(&pp, disk.id);
	pp_u(&pp, size);
	pp_i(&pp, thin);
	pp_s(&pp, hosts);
	if (spec->clone_of)
		pp_i(&pp, spec->clone_of);
	else
		pp_s(&pp, NULL);
	pp_i(&pp, clock_wall_ms());
	pp_i(&pp, disk.node_id);
	wake_format(wake, sizeof(wake), DB_CHANGE_CREATE, disk.node);
	pp_s(&pp, wake);
	/* One statement (one round trip): the id drawn first so the NQN
	 * (node prefix + id) is written with the row, and the change counter
	 * bumped (its trigger NOTIFYs the disk's node at commit). */
	rc = pg_query(db, "create lvol",
		      "WITH i AS (SELECT nextval(pg_get_serial_sequence('lvols', 'id')) AS id), "
		      "c AS (UPDATE meta SET value = value + 1 WHERE key = 'changes' AND "
		      "set_config('diskengine.wake', $8, true) IS NOT NULL) "
		      "INSERT INTO lvols (id, disk_id, size, thin, state, hosts, clone_of, nqn, "
		      "created_at, updated_at) SELECT i.id, $1::bigint, $2::bigint, $3::int, "
		      "'CREATING', $4, $5::bigint, n.nqn_prefix || ':lvol-' || i.id, $6::bigint, "
		      "$6::bigint FROM i JOIN nodes n ON n.id = $7::bigint RETURNING id",
		      pp.n, pp.v, &r);
	if (rc < 0)
		goto out;
	if (PQntuples(r) != 1) {
		PQclear(r);
		rc = db_fail(db, -ENOENT, "no node with id %lld", (long long)disk.node_id);
		goto out;
	}
	id = gi(r, 0, 0);
	PQclear(r);
	if ((rc = pg_commit(db)) == 0 && id_out)
		*id_out = id;
out:
	pg_rollback(db); /* no-op after a commit */
	mem_free(hosts);
	return rc;
}

static int lvol_desired_update(struct db *db, const struct db_lvol *l, unsigned kind,
			       const char *sql, uint64_t size, bool with_size)
{
	int64_t id = l->id;
	struct pp pp = { .n = 0 };
	int rc;

	pp_i(&pp, id);
	pp_i(&pp, clock_wall_ms());
	if (with_size)
		pp_u(&pp, size);
	if ((rc = pg_query(db, "update lvol", sql, pp.n, pp.v, NULL)) < 0)
		return rc;
	return bump_changes(db, kind, l->node);
}

static int pg_lvol_resize(struct db *db, int64_t id, uint64_t new_size, bool allow_shrink)
{
	struct db_lvol l = { 0 };
	struct db_disk disk;
	int rc;

	if ((rc = pg_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, id, &l)) < 0)
		goto out;
	if ((rc = db_resize_check(db, &l, new_size, allow_shrink)) != 0) {
		rc = rc > 0 ? 0 : rc; /* same size: nothing to do */
		goto out;
	}
	if (!l.thin && new_size > l.size) {
		uint64_t grow;

		if ((rc = disk_get_lock(db, NULL, l.disk_id, &disk, true)) < 0)
			goto out;
		grow = db_resize_growth(&l, &disk, new_size);
		if (grow && (rc = db_space_check(db, &disk, grow, disk_available)) < 0)
			goto out;
	}
	rc = lvol_desired_update(db, &l, DB_CHANGE_RESIZE,
				 "UPDATE lvols SET size = $3::bigint, state = 'RESIZING', reason = '', "
				 "generation = generation + 1, updated_at = $2::bigint WHERE id = $1::bigint",
				 new_size, true);
	if (rc < 0)
		goto out;
	db_lvol_clear(&l);
	return pg_commit(db);
out:
	db_lvol_clear(&l);
	pg_rollback(db);
	return rc;
}

static int pg_lvol_delete(struct db *db, int64_t id)
{
	struct db_lvol l = { 0 };
	int rc;

	if ((rc = pg_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, id, &l)) < 0)
		goto out;
	if ((rc = db_delete_check(db, &l)) != 0) {
		rc = rc > 0 ? 0 : rc; /* already DELETING */
		goto out;
	}
	rc = lvol_desired_update(db, &l, DB_CHANGE_DELETE,
				 "UPDATE lvols SET state = 'DELETING', reason = '', "
				 "generation = generation + 1, updated_at = $2::bigint WHERE id = $1::bigint",
				 0, false);
	if (rc < 0)
		goto out;
	db_lvol_clear(&l);
	return pg_commit(db);
out:
	db_lvol_clear(&l);
	pg_rollback(db);
	return rc;
}

/* id $1, now $2, text $3 */
static int set_text(struct db *db, const char *what, const char *kind, const char *sql, int64_t id,
		    const char *text)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, id);
	pp_i(&pp, clock_wall_ms());
	pp_s(&pp, text ? text : "");
	return update_one(db, what, kind, sql, &pp, id, false);
}

/* id $1, now $2, number $3 */
static int set_num(struct db *db, const char *what, const char *kind, const char *sql, int64_t id,
		   uint64_t v)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, id);
	pp_i(&pp, clock_wall_ms());
	pp_u(&pp, v);
	return update_one(db, what, kind, sql, &pp, id, false);
}

static int pg_lvol_set_uuid(struct db *db, int64_t id, const char *uuid, uint64_t real_size)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, id);
	pp_i(&pp, clock_wall_ms());
	pp_s(&pp, uuid);
	pp_u(&pp, real_size);
	return update_one(db, "set lvol uuid", "lvol",
			  "UPDATE lvols SET uuid = $3, real_size = CASE WHEN $4::bigint > 0 "
			  "THEN $4::bigint ELSE real_size END, updated_at = $2::bigint "
			  "WHERE id = $1::bigint", &pp, id, false);
}

static int pg_lvol_set_real_size(struct db *db, int64_t id, uint64_t real_size)
{
	return set_num(db, "set lvol size", "lvol",
		       "UPDATE lvols SET real_size = $3::bigint, updated_at = $2::bigint "
		       "WHERE id = $1::bigint", id, real_size);
}

static int pg_lvol_set_nqn(struct db *db, int64_t id, const char *nqn)
{
	return set_text(db, "set lvol nqn", "lvol",
			"UPDATE lvols SET nqn = $3, updated_at = $2::bigint WHERE id = $1::bigint", id,
			nqn);
}

static int pg_lvol_set_reason(struct db *db, int64_t id, const char *reason)
{
	return set_text(db, "set lvol reason", "lvol",
			"UPDATE lvols SET reason = $3, updated_at = $2::bigint WHERE id = $1::bigint",
			id, reason);
}

static int pg_lvol_zero_progress(struct db *db, int64_t id, uint64_t done)
{
	return set_num(db, "zero progress", "lvol",
		       "UPDATE lvols SET zero_done = $3::bigint, updated_at = $2::bigint "
		       "WHERE id = $1::bigint", id, done);
}

/*
 * Conditional update: `sql` has $1 id, $2 now, $3 expect_gen (0 = always)
 * and more params from `extra`; -ESTALE when the generation moved, -ENOENT
 * when the row is gone.
 */
static int update_cond(struct db *db, const char *table, const char *kind, const char *sql,
		       int64_t id, uint64_t expect_gen, struct pp *pp)
{
	struct pp q = { .n = 0 };
	char sel[96];
	PGresult *r = NULL;
	int changed = 0, rc;

	rc = exec_tx(db, "update", sql, pp, false, &changed);
	if (rc < 0 || changed)
		return rc;
	snprintf(sel, sizeof(sel), "SELECT generation FROM %s WHERE id = $1::bigint", table);
	pp_i(&q, id);
	if ((rc = pg_query(db, "update", sel, q.n, q.v, &r)) < 0)
		return rc;
	if (PQntuples(r) > 0)
		rc = db_fail(db, -ESTALE, "%s %lld changed meanwhile (generation %lld, expected %llu)",
			     kind, (long long)id, (long long)gi(r, 0, 0),
			     (unsigned long long)expect_gen);
	else
		rc = db_fail(db, -ENOENT, "no %s with id %lld", kind, (long long)id);
	PQclear(r);
	return rc;
}

static void pp_cond(struct pp *pp, int64_t id, uint64_t expect_gen)
{
	pp->n = 0;
	pp_i(pp, id);
	pp_i(pp, clock_wall_ms());
	pp_u(pp, expect_gen);
}

static int pg_lvol_set_state(struct db *db, int64_t id, uint64_t expect_gen,
			     enum db_lvol_state state, const char *reason)
{
	struct pp pp;
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "UPDATE lvols SET state = '%s', reason = $4, updated_at = $2::bigint%s "
		 "WHERE id = $1::bigint AND ($3::bigint = 0 OR generation = $3::bigint)",
		 db_lvol_state_name(state),
		 state == DB_LVOL_DELETED ? ", zero_from = 0, zero_to = 0, zero_done = 0" : "");
	pp_cond(&pp, id, expect_gen);
	pp_s(&pp, reason ? reason : "");
	return update_cond(db, "lvols", "lvol", sql, id, expect_gen, &pp);
}

static int pg_lvol_zero_begin(struct db *db, int64_t id, uint64_t expect_gen, uint64_t from,
			      uint64_t to)
{
	struct pp pp;

	pp_cond(&pp, id, expect_gen);
	pp_u(&pp, from);
	pp_u(&pp, to);
	return update_cond(db, "lvols", "lvol",
			   "UPDATE lvols SET zero_from = $4::bigint, zero_to = $5::bigint, "
			   "zero_done = $4::bigint, updated_at = $2::bigint WHERE id = $1::bigint "
			   "AND ($3::bigint = 0 OR generation = $3::bigint)",
			   id, expect_gen, &pp);
}

static int pg_lvol_resize_done(struct db *db, int64_t id, uint64_t expect_gen, uint64_t real_size)
{
	struct pp pp;

	pp_cond(&pp, id, expect_gen);
	pp_u(&pp, real_size);
	return update_cond(db, "lvols", "lvol",
			   "UPDATE lvols SET zero_from = 0, zero_to = 0, zero_done = 0, "
			   "real_size = CASE WHEN $4::bigint > 0 THEN $4::bigint ELSE real_size END, "
			   "state = 'READY', reason = '', updated_at = $2::bigint "
			   "WHERE id = $1::bigint AND ($3::bigint = 0 OR generation = $3::bigint)",
			   id, expect_gen, &pp);
}

/* ----------------------------------------------------------- snapshots */

#define SNAP_COLS                                                                        \
	"s.id, s.lvol_id, l.disk_id, d.name, d.node_id, n.name, s.size, s.state, s.reason, " \
	"s.uuid, s.generation, s.created_at, s.updated_at "                                \
	"FROM snapshots s JOIN lvols l ON l.id = s.lvol_id JOIN disks d ON d.id = l.disk_id " \
	"JOIN nodes n ON n.id = d.node_id "

static void snap_row(const PGresult *r, int i, void *e)
{
	struct db_snapshot *s = e;
	enum db_snapshot_state state = DB_SNAPSHOT_FAILED;

	memset(s, 0, sizeof(*s));
	s->id = gi(r, i, 0);
	s->lvol_id = gi(r, i, 1);
	s->disk_id = gi(r, i, 2);
	gs(r, i, 3, s->disk, sizeof(s->disk));
	s->node_id = gi(r, i, 4);
	gs(r, i, 5, s->node, sizeof(s->node));
	s->size = gu(r, i, 6);
	db_snapshot_state_parse(PQgetvalue(r, i, 7), &state);
	s->state = state;
	gs(r, i, 8, s->reason, sizeof(s->reason));
	gs(r, i, 9, s->uuid, sizeof(s->uuid));
	s->generation = gu(r, i, 10);
	s->created_at = gi(r, i, 11);
	s->updated_at = gi(r, i, 12);
}

static int pg_snapshot_list(struct db *db, const struct db_snapshot_filter *f, int64_t only_id,
			    struct db_snapshot **out, size_t *count)
{
	struct pp pp = { .n = 0 };

	pp_s(&pp, f->node);
	pp_i(&pp, f->lvol_id);
	pp_s(&pp, f->state != DB_SNAPSHOT_ANY ? db_snapshot_state_name(f->state) : NULL);
	pp_i(&pp, f->include_deleted || f->state == DB_SNAPSHOT_DELETED || only_id);
	pp_i(&pp, only_id);
	return collect(db,
		       "SELECT " SNAP_COLS
		       "WHERE ($1::text IS NULL OR n.name = $1) AND ($2::bigint = 0 OR s.lvol_id = $2::bigint) "
		       "AND ($3::text IS NULL OR s.state = $3) AND ($4::int <> 0 OR s.state <> 'DELETED') "
		       "AND ($5::bigint = 0 OR s.id = $5::bigint) ORDER BY s.id",
		       &pp, sizeof(struct db_snapshot), snap_row, NULL, (void **)out, count);
}

static int pg_snapshot_create(struct db *db, int64_t lvol_id, int64_t *id_out)
{
	struct db_lvol l = { 0 };
	struct pp pp = { .n = 0 };
	PGresult *r = NULL;
	int rc;

	if ((rc = pg_begin(db)) < 0)
		return rc;
	if ((rc = lvol_load(db, lvol_id, &l)) < 0)
		goto out;
	if (l.state != DB_LVOL_READY) {
		rc = db_fail(db, l.state == DB_LVOL_DELETED ? -ENOENT : -EBUSY,
			     "lvol %lld is %s; snapshots are taken of READY lvols", (long long)lvol_id,
			     db_lvol_state_name(l.state));
		goto out;
	}
	pp_i(&pp, lvol_id);
	pp_u(&pp, l.size);
	pp_i(&pp, clock_wall_ms());
	rc = pg_query(db, "create snapshot",
		      "INSERT INTO snapshots (lvol_id, size, state, created_at, updated_at) "
		      "VALUES ($1::bigint, $2::bigint, 'CREATING', $3::bigint, $3::bigint) RETURNING id",
		      pp.n, pp.v, &r);
	if (rc < 0)
		goto out;
	if (id_out)
		*id_out = gi(r, 0, 0);
	PQclear(r);
	if ((rc = bump_changes(db, DB_CHANGE_CREATE, l.node)) < 0)
		goto out;
	db_lvol_clear(&l);
	return pg_commit(db);
out:
	db_lvol_clear(&l);
	pg_rollback(db);
	return rc;
}

static int pg_snapshot_delete(struct db *db, int64_t id)
{
	struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY, .include_deleted = true };
	struct db_snapshot *snaps = NULL;
	struct pp pp = { .n = 0 }, lk = { .n = 0 };
	size_t n = 0;
	int rc;

	if ((rc = pg_begin(db)) < 0)
		return rc;
	pp_i(&lk, id);
	if ((rc = pg_query(db, "delete snapshot",
			   "SELECT id FROM snapshots WHERE id = $1::bigint FOR UPDATE", lk.n, lk.v,
			   NULL)) < 0)
		goto out;
	if ((rc = pg_snapshot_list(db, &f, id, &snaps, &n)) < 0)
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
	pp_i(&pp, id);
	pp_i(&pp, clock_wall_ms());
	rc = pg_query(db, "delete snapshot",
		      "UPDATE snapshots SET state = 'DELETING', reason = '', "
		      "generation = generation + 1, updated_at = $2::bigint WHERE id = $1::bigint",
		      pp.n, pp.v, NULL);
	if (rc < 0)
		goto out;
	if ((rc = bump_changes(db, DB_CHANGE_DELETE, snaps[0].node)) < 0)
		goto out;
	mem_free(snaps);
	return pg_commit(db);
out:
	mem_free(snaps);
	pg_rollback(db);
	return rc;
}

static int pg_snapshot_set_uuid(struct db *db, int64_t id, const char *uuid)
{
	return set_text(db, "set snapshot uuid", "snapshot",
			"UPDATE snapshots SET uuid = $3, updated_at = $2::bigint WHERE id = $1::bigint",
			id, uuid);
}

static int pg_snapshot_set_reason(struct db *db, int64_t id, const char *reason)
{
	return set_text(db, "set snapshot reason", "snapshot",
			"UPDATE snapshots SET reason = $3, updated_at = $2::bigint WHERE id = $1::bigint",
			id, reason);
}

static int pg_snapshot_set_state(struct db *db, int64_t id, uint64_t expect_gen,
				 enum db_snapshot_state state, const char *reason)
{
	struct pp pp;
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "UPDATE snapshots SET state = '%s', reason = $4, updated_at = $2::bigint "
		 "WHERE id = $1::bigint AND ($3::bigint = 0 OR generation = $3::bigint)",
		 db_snapshot_state_name(state));
	pp_cond(&pp, id, expect_gen);
	pp_s(&pp, reason ? reason : "");
	return update_cond(db, "snapshots", "snapshot", sql, id, expect_gen, &pp);
}

/* -------------------------------------------------------------- events */

static int pg_event_raise(struct db *db, const char *node, const char *kind, const char *object,
			  const char *detail)
{
	struct pp pp = { .n = 0 };

	pp_s(&pp, node);
	pp_s(&pp, kind);
	pp_s(&pp, object);
	pp_s(&pp, detail);
	pp_i(&pp, clock_wall_ms());
	/* one atomic upsert: two agents raising the same event cannot collide */
	return exec_tx(db, "raise event",
		       "INSERT INTO events (node, kind, object, detail, first_seen, last_seen) "
		       "VALUES ($1, $2, $3, $4, $5::bigint, $5::bigint) "
		       "ON CONFLICT (kind, object) WHERE resolved_at = 0 DO UPDATE SET "
		       "count = events.count + 1, last_seen = EXCLUDED.last_seen, "
		       "detail = EXCLUDED.detail", &pp, false, NULL);
}

static int pg_event_resolve(struct db *db, const char *kind, const char *object)
{
	struct pp pp = { .n = 0 };

	pp_s(&pp, kind);
	pp_s(&pp, object);
	pp_i(&pp, clock_wall_ms());
	return exec_tx(db, "resolve event",
		       "UPDATE events SET resolved_at = $3::bigint WHERE kind = $1 AND object = $2 "
		       "AND resolved_at = 0", &pp, false, NULL);
}

static int pg_event_prune(struct db *db, const char *node, int64_t resolved_before, int *pruned)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, resolved_before);
	pp_s(&pp, node);
	return exec_tx(db, "prune events",
		       "DELETE FROM events WHERE resolved_at > 0 AND resolved_at < $1::bigint "
		       "AND ($2::text IS NULL OR node = $2)", &pp, false, pruned);
}

static void event_row(const PGresult *r, int i, void *e)
{
	struct db_event *ev = e;

	memset(ev, 0, sizeof(*ev));
	ev->id = gi(r, i, 0);
	gs(r, i, 1, ev->node, sizeof(ev->node));
	gs(r, i, 2, ev->kind, sizeof(ev->kind));
	gs(r, i, 3, ev->object, sizeof(ev->object));
	gs(r, i, 4, ev->detail, sizeof(ev->detail));
	ev->first_seen = gi(r, i, 5);
	ev->last_seen = gi(r, i, 6);
	ev->count = gu(r, i, 7);
	ev->resolved_at = gi(r, i, 8);
}

static int pg_event_list(struct db *db, bool include_resolved, struct db_event **out,
			 size_t *count)
{
	struct pp pp = { .n = 0 };

	pp_i(&pp, include_resolved);
	return collect(db,
		       "SELECT id, node, kind, object, detail, first_seen, last_seen, count, resolved_at "
		       "FROM events WHERE $1::int <> 0 OR resolved_at = 0 ORDER BY last_seen, id",
		       &pp, sizeof(struct db_event), event_row, NULL, (void **)out, count);
}

static const struct db_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.schema_version = pg_schema_version,
	.busy_timeout_set = pg_busy_timeout_set,
	.change_counter = pg_change_counter,
	.data_version = pg_data_version,
	.change_wait = pg_change_wait,
	.change_filter = pg_change_filter,
	.data_wait = pg_data_wait,
	.node_add = pg_node_add,
	.node_get = pg_node_get,
	.node_list = pg_node_list,
	.node_heartbeat = pg_node_heartbeat,
	.disk_add = pg_disk_add,
	.disk_get = pg_disk_get,
	.disk_list = pg_disk_list,
	.disk_set_lvstore = pg_disk_set_lvstore,
	.disk_observe = pg_disk_observe,
	.lvol_create = pg_lvol_create,
	.lvol_resize = pg_lvol_resize,
	.lvol_delete = pg_lvol_delete,
	.lvol_list = pg_lvol_list,
	.lvol_set_uuid = pg_lvol_set_uuid,
	.lvol_set_real_size = pg_lvol_set_real_size,
	.lvol_set_nqn = pg_lvol_set_nqn,
	.lvol_set_state = pg_lvol_set_state,
	.lvol_set_reason = pg_lvol_set_reason,
	.lvol_zero_begin = pg_lvol_zero_begin,
	.lvol_zero_progress = pg_lvol_zero_progress,
	.lvol_resize_done = pg_lvol_resize_done,
	.snapshot_create = pg_snapshot_create,
	.snapshot_delete = pg_snapshot_delete,
	.snapshot_list = pg_snapshot_list,
	.snapshot_set_uuid = pg_snapshot_set_uuid,
	.snapshot_set_state = pg_snapshot_set_state,
	.snapshot_set_reason = pg_snapshot_set_reason,
	.event_raise = pg_event_raise,
	.event_resolve = pg_event_resolve,
	.event_prune = pg_event_prune,
	.event_list = pg_event_list,
};
