/*
 * server.c: the JSON-RPC server: unix socket listeners, connections on the
 * event loop, request validation the way SPDK's jsonrpc layer does it,
 * dispatch through the method table, and in-order responses.
 *
 * Each top-level JSON value read from a connection becomes a "slot" in the
 * connection's FIFO: one entry for a single request, one per element for a
 * batch array. A request writes its response text into its slot entry when
 * it completes (now or later); slots leave the FIFO in order once every
 * entry is complete, so responses go out in request order.
 *
 * A connection is reference counted: one reference while its socket is
 * open, one per request not yet completed. Closing the socket therefore
 * never invalidates a request a handler still holds.
 *
 * Poll mode (rpc_server_set_poll_interval, off by default) emulates SPDK's
 * RPC poller: connections are not watched by the loop; a timerfd on the
 * loop fires every interval, and each poll (a) collects and sends, on every
 * connection, what completed before it, then (b) reads and handles every
 * complete request waiting on every connection. "Waiting" means in the
 * socket when the poll began (FIONREAD, taken first): a client woken by
 * (a) that answers before (b) runs (it preempted us) waits for the next
 * poll, as it would with SPDK, whose poller owns its core. Replies produced
 * in (b), or between polls, sit in the connection's output past `out_ready`
 * until the next poll. Connections are closed only by the poll (or on a
 * read error), so a conn_pump from a completion never closes one while a
 * poll walks the list. New connections are accepted at once (the listener
 * stays on the loop): that costs nothing in timing, as their requests wait
 * for a poll.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"

#define MOD "rpc"

/* Back-pressure: stop reading a connection while this much output is
 * unsent or this many requests are unanswered. */
#define CONN_OUT_HIGH   (4u * 1024 * 1024)
#define CONN_SNDBUF_RAISE_AT (1u * 1024 * 1024) /* pending reply bytes */
#define CONN_SNDBUF_BIG (4 * 1024 * 1024)
#define CONN_SLOTS_HIGH 1024u
#define CONN_READ_SIZE  65536u
#define MAX_LISTENERS   4

struct rpc_method {
	char *name;
	rpc_handler_fn fn;
	void *ctx;
	unsigned flags;
};

struct rpc_listener {
	struct rpc_server *server;
	int fd;
	char *path;
	struct ev_timer *retry; /* accept paused after EMFILE */
};

struct rpc_slot {
	struct rpc_slot *next;
	unsigned n;         /* entries */
	unsigned remaining; /* entries whose request is not complete */
	bool batch;
	bool exit_after;    /* a request asked for RPC_REPLY_EXIT */
	struct json_buf entries[];
};

struct rpc_conn {
	struct rpc_conn *prev, *next;
	struct rpc_server *server; /* NULL once closed */
	int fd;                    /* -1 once closed */
	unsigned refs;
	struct json_framer *framer;
	struct json_buf out;
	size_t out_off;
	size_t out_ready;          /* poll mode: out[0, out_ready) may be sent now */
	size_t poll_budget;        /* poll mode: bytes waiting when this poll began */
	struct rpc_slot *head, *tail;
	unsigned n_slots;
	uint32_t ev_mask;          /* events currently registered */
	bool read_eof;             /* peer shut down its side */
	bool sndbuf_raised;        /* SO_SNDBUF raised for a multi-MB reply */
	bool close_after_flush;    /* oversize request answered: then close */
	bool out_broken;           /* a reply could not be queued: close once flushed */
	bool dispatching;          /* inside conn_process_input */
	bool exit_pending;         /* an RPC_REPLY_EXIT request completed: take nothing more */
	bool polled;               /* poll mode: served by the poll timer, not on the loop */
};

struct rpc_request {
	struct rpc_conn *conn;         /* NULL for a local call */
	struct rpc_server *local_server;
	rpc_local_cb local_cb;
	void *local_arg;
	struct rpc_slot *slot;
	unsigned index;
	json_t *id; /* NULL when absent */
	json_t *method_json; /* the method name string (a reference) */
	const char *method;  /* its text, or NULL before validation */
	unsigned flags;
	/* rpc_request_reply_raw_begin/end */
	struct json_buf *raw_out;    /* the reply stream's buffer, or NULL: raw_scratch */
	struct json_buf raw_scratch;
	size_t raw_mark;
	bool raw_direct;
};

struct rpc_server {
	struct ev_loop *loop;
	struct rpc_method *methods;
	size_t n_methods, cap_methods;
	struct rpc_listener listeners[MAX_LISTENERS];
	unsigned n_listeners;
	struct rpc_conn *conns;
	unsigned n_conns;
	rpc_hook_fn hook;
	void *hook_ctx;
	size_t max_request;
	uint64_t poll_us;          /* poll mode interval, 0 = off */
	int poll_fd;               /* its timerfd, -1 when off */
	bool polling;              /* inside server_poll */
};

static void conn_pump(struct rpc_conn *c);
static void conn_process_input(struct rpc_conn *c);

/* ============================================================ methods */

static struct rpc_method *method_find(const struct rpc_server *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i].name, name) == 0)
			return &s->methods[i];
	return NULL;
}

int rpc_server_register(struct rpc_server *s, const char *method, rpc_handler_fn fn, void *ctx,
			unsigned flags)
{
	struct rpc_method *m;

	if (!method || !*method || !fn)
		return -EINVAL;
	if (method_find(s, method))
		return -EEXIST;
	if (s->n_methods == s->cap_methods) {
		size_t cap = s->cap_methods ? s->cap_methods * 2 : 64;

		m = mem_realloc(s->methods, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		s->methods = m;
		s->cap_methods = cap;
	}
	m = &s->methods[s->n_methods];
	m->name = mem_strdup(method);
	if (!m->name)
		return -ENOMEM;
	m->fn = fn;
	m->ctx = ctx;
	m->flags = flags;
	s->n_methods++;
	return 0;
}

bool rpc_server_has_method(const struct rpc_server *s, const char *method)
{
	return method_find(s, method) != NULL;
}

json_t *rpc_server_method_names(const struct rpc_server *s)
{
	json_t *a = json_array();
	size_t i;

	if (!a)
		return NULL;
	for (i = s->n_methods; i > 0; i--) {
		if (json_array_append_new(a, json_string(s->methods[i - 1].name))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

void rpc_server_set_hook(struct rpc_server *s, rpc_hook_fn hook, void *ctx)
{
	s->hook = hook;
	s->hook_ctx = ctx;
}

void rpc_server_set_max_request(struct rpc_server *s, size_t bytes)
{
	s->max_request = bytes ? bytes : RPC_MAX_REQUEST_DEFAULT;
}

struct ev_loop *rpc_server_loop(const struct rpc_server *s)
{
	return s->loop;
}

unsigned rpc_server_connection_count(const struct rpc_server *s)
{
	return s->n_conns;
}

/* ======================================================== connections */

static void slot_free(struct rpc_slot *sl)
{
	unsigned i;

	for (i = 0; i < sl->n; i++)
		json_buf_free(&sl->entries[i]);
	mem_free(sl);
}

static void conn_free(struct rpc_conn *c)
{
	struct rpc_slot *sl;

	while ((sl = c->head)) {
		c->head = sl->next;
		slot_free(sl);
	}
	json_framer_destroy(c->framer);
	json_buf_free(&c->out);
	mem_free(c);
}

static void conn_unref(struct rpc_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static void conn_close(struct rpc_conn *c, const char *why)
{
	struct rpc_server *s = c->server;

	if (c->fd < 0)
		return;
	LOG_DEBUG(MOD, "connection closed fd=%d reason=%s", c->fd, why);
	if (!c->polled)
		ev_fd_remove(s->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	s->n_conns--;
	c->server = NULL;
	conn_unref(c);
}

static bool conn_can_read(const struct rpc_conn *c)
{
	return !c->read_eof && !c->close_after_flush && !c->exit_pending && !c->out_broken &&
	       c->n_slots < CONN_SLOTS_HIGH &&
	       c->out.len - c->out_off < CONN_OUT_HIGH;
}

static void conn_update_events(struct rpc_conn *c)
{
	uint32_t want = 0;

	if (c->fd < 0)
		return;
	if (conn_can_read(c))
		want |= EPOLLIN;
	if (c->out.len > c->out_off)
		want |= EPOLLOUT;
	if (want != c->ev_mask) {
		if (ev_fd_modify(c->server->loop, c->fd, want) == 0)
			c->ev_mask = want;
	}
}

/* Writes as much pending output as the socket takes (in poll mode only up
 * to out_ready). 0, or -errno when the connection is broken. */
static int conn_flush(struct rpc_conn *c)
{
	size_t end = c->polled ? c->out_ready : c->out.len;

	while (c->out_off < end) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, end - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* A multi-MB reply (a listing of 10,000 bdevs is
				 * 11 MB) through the default ~200 KB socket buffer
				 * takes ~50 wake-ups of each side: ask for more room
				 * (capped by net.core.wmem_max), once. */
				if (!c->sndbuf_raised && c->out.len - c->out_off > CONN_SNDBUF_RAISE_AT) {
					int sz = CONN_SNDBUF_BIG;

					c->sndbuf_raised = true;
					(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
					continue;
				}
				return 0;
			}
			return -errno;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off < c->out.len)
		return 0; /* poll mode: the rest is for the next poll */
	c->out_off = 0;
	c->out.len = 0;
	c->out_ready = 0;
	if (c->out.cap > CONN_OUT_HIGH)
		json_buf_free(&c->out);
	return 0;
}

/* RPC_REPLY_EXIT: push what is queued to the socket (bounded wait), then die. */
static void conn_exit_now(struct rpc_conn *c)
{
	uint64_t deadline = clock_mono_ms() + 2000;

	LOG_WARN(MOD, "exiting after reply as requested (fault injection)");
	c->out_ready = c->out.len; /* poll mode too: everything queued goes now */
	while (c->fd >= 0 && c->out_off < c->out.len && clock_mono_ms() < deadline) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };

		if (conn_flush(c) < 0)
			break;
		if (c->out_off < c->out.len)
			poll(&p, 1, 100);
	}
	_exit(1);
}

/* Moves completed head slots to the output buffer, in order. */
static void conn_collect(struct rpc_conn *c)
{
	struct rpc_slot *sl;

	while ((sl = c->head) && sl->remaining == 0) {
		c->head = sl->next;
		if (!c->head)
			c->tail = NULL;
		c->n_slots--;
		if (c->fd >= 0) {
			size_t mark = c->out.len;
			int rc = 0;

			if (!sl->batch) {
				if (sl->entries[0].len)
					rc = json_buf_append(&c->out, sl->entries[0].data,
							     sl->entries[0].len) ||
					     json_buf_append(&c->out, "\n", 1);
			} else {
				bool any = false;
				unsigned i;

				for (i = 0; i < sl->n && !rc; i++) {
					if (!sl->entries[i].len)
						continue;
					rc = json_buf_append(&c->out, any ? "," : "[", 1) ||
					     json_buf_append(&c->out, sl->entries[i].data,
							     sl->entries[i].len);
					any = true;
				}
				if (any && !rc)
					rc = json_buf_append(&c->out, "]\n", 2);
			}
			if (rc) {
				/* The stream must stay whole: drop the partial text and
				 * end the connection after what is already queued. */
				LOG_ERROR(MOD, "out of memory queueing a response fd=%d", c->fd);
				c->out.len = mark;
				c->out_broken = true;
			}
		}
		if (sl->exit_after) {
			slot_free(sl);
			conn_exit_now(c);
		}
		slot_free(sl);
	}
}

/* Sends what may go out and closes a finished connection. False if the
 * connection is closed. */
static bool conn_send(struct rpc_conn *c)
{
	int rc = conn_flush(c);

	if (rc < 0) {
		conn_close(c, "write failed");
		return false;
	}
	if (((c->read_eof || c->close_after_flush) && !c->head && c->out.len == 0) ||
	    (c->out_broken && c->out.len == 0)) {
		conn_close(c, c->read_eof ? "peer closed" : "request too large");
		return false;
	}
	return true;
}

/* Sends what is ready, closes a finished connection, re-arms reading. */
static void conn_pump(struct rpc_conn *c)
{
	bool could_read;

	if (c->dispatching)
		return; /* conn_process_input pumps when it is done */
	if (c->polled && c->fd >= 0)
		return; /* the next poll collects, sends and reads (server_poll) */
	could_read = conn_can_read(c);
	conn_collect(c);
	if (c->fd < 0)
		return;
	if (!conn_send(c))
		return;
	conn_update_events(c);
	/* Values buffered while reading was paused are processed now. */
	if (!could_read && conn_can_read(c) && json_framer_pending(c->framer))
		conn_process_input(c);
}

/* ========================================================== requests */

static struct rpc_slot *slot_new(struct rpc_conn *c, unsigned n, bool batch)
{
	struct rpc_slot *sl = mem_zalloc(sizeof(*sl) + n * sizeof(sl->entries[0]));

	if (!sl)
		return NULL;
	sl->n = n;
	sl->remaining = n;
	sl->batch = batch;
	if (c->tail)
		c->tail->next = sl;
	else
		c->head = sl;
	c->tail = sl;
	c->n_slots++;
	return sl;
}

static struct rpc_request *request_new(struct rpc_conn *c, struct rpc_slot *sl, unsigned index)
{
	struct rpc_request *req = mem_zalloc(sizeof(*req));

	if (!req)
		return NULL;
	req->conn = c;
	req->slot = sl;
	req->index = index;
	c->refs++;
	return req;
}

/* Ends a request: the entry text (if any) is already in place. */
static void request_finish(struct rpc_request *req)
{
	struct rpc_conn *c = req->conn;
	struct rpc_slot *sl = req->slot;

	if (!c) {
		json_decref(req->id);
		json_decref(req->method_json);
		mem_free(req);
		return;
	}
	if (req->flags & RPC_REPLY_DROP)
		json_buf_free(&sl->entries[req->index]);
	if (req->flags & RPC_REPLY_EXIT) {
		sl->exit_after = true;
		c->exit_pending = true;
	}
	sl->remaining--;
	json_decref(req->id);
	json_decref(req->method_json);
	mem_free(req);
	conn_pump(c);
	conn_unref(c);
}

/* A request without id, or with "id": null, gets no result reply (SPDK). */
static bool request_wants_result(const struct rpc_request *req)
{
	return req->id && !json_is_null(req->id);
}

/* Where a single request's reply text goes: straight into the connection's
 * output when nothing before it is pending (the common case), else into its
 * slot entry until the slots before it complete. *direct tells which. */
static struct json_buf *reply_buf(struct rpc_request *req, bool *direct)
{
	struct rpc_conn *c = req->conn;
	struct rpc_slot *sl = req->slot;

	*direct = !sl->batch && c->head == sl && c->fd >= 0;
	return *direct ? &c->out : &sl->entries[req->index];
}

static void reply_end(struct json_buf *b, bool direct, size_t mark)
{
	if (direct && b->len > mark && json_buf_append(b, "\n", 1))
		b->len = mark;
}

void rpc_request_reply(struct rpc_request *req, json_t *result)
{
	struct json_buf *e;
	bool direct;
	size_t mark;

	if (!req->conn) {
		req->local_cb(req->local_arg, result ? result : json_null(), 0, NULL);
		json_decref(result);
		request_finish(req);
		return;
	}
	if (request_wants_result(req) && !(req->flags & RPC_REPLY_DROP)) {
		e = reply_buf(req, &direct);
		mark = e->len;
		if (json_encode_rpc_result(e, req->id, result)) {
			LOG_ERROR(MOD, "out of memory encoding a result method=%s", req->method);
			e->len = mark;
			json_encode_rpc_error(e, req->id, RPC_ERROR_INTERNAL, RPC_MSG_INTERNAL);
		}
		reply_end(e, direct, mark);
	}
	json_decref(result);
	request_finish(req);
}

void rpc_request_reply_raw(struct rpc_request *req, const char *json, size_t len)
{
	static const char tail[] = "}";
	struct json_buf *e;
	size_t mark;

	if (!req->conn) {
		json_error_t jerr;
		json_t *v = json_loadb(json, len, JSON_DECODE_ANY, &jerr);

		if (!v) {
			rpc_request_error(req, RPC_ERROR_INTERNAL, RPC_MSG_INTERNAL);
			return;
		}
		rpc_request_reply(req, v);
		return;
	}
	if (request_wants_result(req) && !(req->flags & RPC_REPLY_DROP)) {
		bool direct;

		e = reply_buf(req, &direct);
		mark = e->len;
		/* The envelope with a null result, then the raw text spliced in
		 * where "null" would be. */
		if (json_encode_rpc_result(e, req->id, NULL) == 0) {
			e->len -= 5; /* "null}" */
			if (json_buf_append(e, json, len) || json_buf_append(e, tail, 1)) {
				e->len = mark;
				json_encode_rpc_error(e, req->id, RPC_ERROR_INTERNAL,
						      RPC_MSG_INTERNAL);
			}
		}
		reply_end(e, direct, mark);
	}
	request_finish(req);
}

struct json_buf *rpc_request_reply_raw_begin(struct rpc_request *req)
{
	req->raw_out = NULL;
	if (req->conn && request_wants_result(req) && !(req->flags & RPC_REPLY_DROP)) {
		struct json_buf *e = reply_buf(req, &req->raw_direct);

		req->raw_mark = e->len;
		/* the envelope with a null result, cut before "null}" */
		if (json_encode_rpc_result(e, req->id, NULL) == 0) {
			e->len -= 5;
			req->raw_out = e;
			return e;
		}
		e->len = req->raw_mark;
	}
	json_buf_reset(&req->raw_scratch);
	return &req->raw_scratch;
}

void rpc_request_reply_raw_end(struct rpc_request *req, int rc)
{
	struct json_buf *e = req->raw_out;

	if (!e) {
		struct json_buf s = req->raw_scratch;

		req->raw_scratch = (struct json_buf){ 0 };
		if (rc)
			rpc_request_errno(req, rc < 0 ? rc : -ENOMEM);
		else
			rpc_request_reply_raw(req, s.data ? s.data : "null", s.data ? s.len : 4);
		json_buf_free(&s);
		return;
	}
	if (rc || json_buf_append(e, "}", 1)) {
		e->len = req->raw_mark;
		rpc_request_errno(req, rc < 0 ? rc : -ENOMEM);
		return;
	}
	reply_end(e, req->raw_direct, req->raw_mark);
	request_finish(req);
}

void rpc_request_reply_true(struct rpc_request *req)
{
	rpc_request_reply(req, json_true());
}

void rpc_request_error(struct rpc_request *req, int code, const char *message)
{
	struct json_buf *e;

	if (!req->conn) {
		req->local_cb(req->local_arg, NULL, code, message ? message : "");
		request_finish(req);
		return;
	}
	/* SPDK answers errors even to notifications, with "id": null. */
	if (!(req->flags & RPC_REPLY_DROP)) {
		bool direct;
		size_t mark;

		e = reply_buf(req, &direct);
		mark = e->len;
		if (json_encode_rpc_error(e, req->id, code, message))
			LOG_ERROR(MOD, "out of memory encoding an error method=%s",
				  req->method ? req->method : "-");
		reply_end(e, direct, mark);
	}
	request_finish(req);
}

void rpc_request_errorf(struct rpc_request *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rpc_request_error(req, code, msg);
}

void rpc_request_errno(struct rpc_request *req, int neg_errno)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;

	rpc_request_error(req, -e, common_strerror(e));
}

void rpc_request_decode_failed(struct rpc_request *req)
{
	rpc_request_error(req, RPC_ERROR_INTERNAL, RPC_MSG_DECODE_FAILED);
}

const char *rpc_request_method(const struct rpc_request *req)
{
	return req->method ? req->method : "";
}

const json_t *rpc_request_id(const struct rpc_request *req)
{
	return req->id;
}

bool rpc_request_is_notification(const struct rpc_request *req)
{
	return !request_wants_result(req);
}

bool rpc_request_connected(const struct rpc_request *req)
{
	return !req->conn || req->conn->fd >= 0;
}

struct rpc_server *rpc_request_server(const struct rpc_request *req)
{
	return req->conn ? req->conn->server : req->local_server;
}

int rpc_server_call_local(struct rpc_server *s, const char *method, json_t *params,
			  rpc_local_cb cb, void *arg)
{
	struct rpc_request *req;
	struct rpc_method *m;

	if (!method || !cb)
		return -EINVAL;
	if (json_is_null(params))
		params = NULL;
	m = method_find(s, method);
	if (!m) {
		cb(arg, NULL, RPC_ERROR_METHOD_NOT_FOUND, RPC_MSG_METHOD_NOT_FOUND);
		return 0;
	}
	req = mem_zalloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->method_json = json_string(method);
	if (!req->method_json) {
		mem_free(req);
		return -ENOMEM;
	}
	req->method = json_string_value(req->method_json);
	req->id = json_integer(0);
	req->local_server = s;
	req->local_cb = cb;
	req->local_arg = arg;
	if ((m->flags & RPC_FLAG_NO_PARAMS) && params) {
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "%s method requires no parameters",
				   m->name);
		return 0;
	}
	m->fn(req, params, m->ctx);
	return 0;
}

void rpc_request_set_flags(struct rpc_request *req, unsigned reply_flags)
{
	req->flags = reply_flags;
}

unsigned rpc_request_flags(const struct rpc_request *req)
{
	return req->flags;
}

/* The parts of a request object that matter (references, or NULL). */
struct req_parts {
	json_t *method;
	json_t *id;
	json_t *params; /* NULL when absent or null */
};

static void parts_release(struct req_parts *p)
{
	json_decref(p->method);
	json_decref(p->id);
	json_decref(p->params);
	memset(p, 0, sizeof(*p));
}

/*
 * Checks a parsed request object the way SPDK's parse_single_request does.
 * Returns true if valid. When invalid, p->id is set only if SPDK would echo
 * it (its checks run in the order jsonrpc, method, id, params).
 */
static bool envelope_from_json(json_t *v, struct req_parts *p)
{
	json_t *version, *method, *id, *params;
	const char *key;
	json_t *val;

	if (!json_is_object(v))
		return false;
	json_object_foreach(v, key, val) {
		if (strcmp(key, "jsonrpc") && strcmp(key, "method") && strcmp(key, "params") &&
		    strcmp(key, "id"))
			return false;
	}
	version = json_object_get(v, "jsonrpc");
	if (version && (!json_is_string(version) || strcmp(json_string_value(version), "2.0")))
		return false;
	method = json_object_get(v, "method");
	if (!json_is_string(method))
		return false;
	id = json_object_get(v, "id");
	if (id) {
		if (!json_is_string(id) && !json_is_number(id) && !json_is_null(id))
			return false;
		p->id = json_incref(id);
	}
	params = json_object_get(v, "params");
	if (json_is_null(params))
		params = NULL;
	if (params && !json_is_object(params) && !json_is_array(params))
		return false;
	p->method = json_incref(method);
	p->params = json_incref(params);
	return true;
}

/* ---- fast path: the common request shapes without building the envelope */

/* Tests only: force every request through the full parse (differential fuzzing). */
bool rpc_server_no_fast_path;

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* End of the value starting at p in grammar-checked text. */
static const char *skip_value(const char *p, const char *e)
{
	bool in_str = false;
	int depth = 0;

	for (; p < e; p++) {
		char c = *p;

		if (in_str) {
			if (c == '\\') {
				p++;
			} else if (c == '"') {
				in_str = false;
				if (depth == 0)
					return p + 1;
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
			return p;
		}
	}
	return p;
}

/* A string value without escapes: its content, or NULL. */
static bool plain_string(const char *v, size_t n, const char **s, size_t *len)
{
	if (n < 2 || v[0] != '"' || v[n - 1] != '"' || memchr(v, '\\', n))
		return false;
	*s = v + 1;
	*len = n - 2;
	return true;
}

/*
 * The envelope of a request object read straight from its text: only the
 * params value goes through a full JSON parse. Handles the valid requests
 * of ordinary shape (known keys once each, no escapes in jsonrpc/method/id,
 * integer or string ids); returns false for anything else, with nothing
 * allocated, and the caller takes the full path, which gives the same result.
 */
static bool envelope_fast(const char *raw, size_t len, struct req_parts *p)
{
	static const char *const keys[] = { "jsonrpc", "method", "id", "params" };
	const char *e = raw + len, *cur = raw + 1;
	const char *vs[4] = { NULL }, *ve[4] = { NULL };
	const char *mstr, *str;
	size_t mlen, slen;

	if (rpc_server_no_fast_path || len < 2 || raw[0] != '{')
		return false;
	for (;;) {
		const char *k, *kend;
		size_t klen;
		int i;

		cur = skip_ws(cur, e);
		if (cur >= e || *cur == '}')
			break;
		if (*cur != '"')
			return false;
		k = cur + 1;
		kend = memchr(k, '"', (size_t)(e - k));
		if (!kend || memchr(k, '\\', (size_t)(kend - k)))
			return false;
		klen = (size_t)(kend - k);
		for (i = 0; i < 4; i++)
			if (strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0)
				break;
		if (i == 4 || vs[i])
			return false; /* unknown or repeated key: the full path decides */
		cur = skip_ws(kend + 1, e);
		if (cur >= e || *cur != ':')
			return false;
		cur = skip_ws(cur + 1, e);
		vs[i] = cur;
		ve[i] = skip_value(cur, e);
		cur = skip_ws(ve[i], e);
		if (cur < e && *cur == ',')
			cur++;
	}
	if (vs[0] && (ve[0] - vs[0] != 5 || memcmp(vs[0], "\"2.0\"", 5)))
		return false;
	if (!vs[1] || !plain_string(vs[1], (size_t)(ve[1] - vs[1]), &mstr, &mlen))
		return false;
	if (vs[2]) {
		size_t n = (size_t)(ve[2] - vs[2]);
		const char *q = vs[2] + (vs[2][0] == '-');

		if (n == 4 && memcmp(vs[2], "null", 4) == 0) {
			p->id = json_null();
		} else if (plain_string(vs[2], n, &str, &slen)) {
			p->id = json_stringn(str, slen);
			if (!p->id)
				goto fail;
		} else if (q < ve[2] && n <= 18 && strspn(q, "0123456789") >= (size_t)(ve[2] - q)) {
			p->id = json_integer(strtoll(vs[2], NULL, 10));
			if (!p->id)
				goto fail;
		} else {
			return false;
		}
	}
	p->method = json_stringn(mstr, mlen);
	if (!p->method)
		goto fail;
	if (vs[3]) {
		size_t n = (size_t)(ve[3] - vs[3]);

		if (n == 4 && memcmp(vs[3], "null", 4) == 0)
			return true;
		if (vs[3][0] != '{' && vs[3][0] != '[')
			goto fail;
		if (json_decode_value(vs[3], n, &p->params))
			goto fail;
	}
	return true;
fail:
	parts_release(p);
	return false;
}

/* Dispatches a validated request (takes the references in p). */
static void request_dispatch(struct rpc_server *s, struct rpc_request *req, struct req_parts *p)
{
	json_t *params = p->params;
	struct rpc_method *m;

	req->id = p->id;
	req->method_json = p->method;
	req->method = json_string_value(p->method);
	memset(p, 0, sizeof(*p));
	LOG_DEBUG(MOD, "request method=%s", req->method);
	if (s->hook && s->hook(req, req->method, params, s->hook_ctx))
		goto out;
	m = method_find(s, req->method);
	if (!m) {
		rpc_request_error(req, RPC_ERROR_METHOD_NOT_FOUND, RPC_MSG_METHOD_NOT_FOUND);
		goto out;
	}
	if ((m->flags & RPC_FLAG_NO_PARAMS) && params) {
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "%s method requires no parameters",
				   m->name);
		goto out;
	}
	m->fn(req, params, m->ctx);
out:
	json_decref(params);
}

/* Validates one parsed request object like SPDK's parse_single_request and
 * dispatches it. Always completes or hands over the request. */
static void request_handle(struct rpc_server *s, struct rpc_request *req, json_t *v)
{
	struct req_parts p = { 0 };

	if (envelope_from_json(v, &p)) {
		request_dispatch(s, req, &p);
		return;
	}
	req->id = p.id;
	p.id = NULL;
	parts_release(&p);
	rpc_request_error(req, RPC_ERROR_INVALID_REQUEST, RPC_MSG_INVALID_REQUEST);
}

/* A single request object recognised by envelope_fast(). */
static int conn_handle_fast(struct rpc_conn *c, struct req_parts *p)
{
	struct rpc_slot *sl = slot_new(c, 1, false);
	struct rpc_request *req;

	if (!sl) {
		parts_release(p);
		return -ENOMEM;
	}
	req = request_new(c, sl, 0);
	if (!req) {
		json_encode_rpc_error(&sl->entries[0], NULL, RPC_ERROR_INTERNAL, RPC_MSG_INTERNAL);
		sl->remaining = 0;
		parts_release(p);
		return 0;
	}
	request_dispatch(c->server, req, p);
	return 0;
}

/* One top-level value: a request, a batch array, or something invalid. */
static int conn_handle_value(struct rpc_conn *c, json_t *v)
{
	struct rpc_server *s = c->server;
	bool batch = json_is_array(v) && json_array_size(v) > 0;
	unsigned n = batch ? (unsigned)json_array_size(v) : 1;
	struct rpc_request **reqs, *single = NULL;
	struct rpc_slot *sl;
	unsigned i;

	sl = slot_new(c, n, batch);
	if (!sl)
		return -ENOMEM;
	reqs = n == 1 ? &single : mem_zalloc(n * sizeof(*reqs));
	for (i = 0; reqs && i < n; i++) {
		reqs[i] = request_new(c, sl, i);
		if (!reqs[i])
			break;
	}
	if (!reqs || i < n) {
		/* Complete what was created; the rest of the slot is filled with
		 * an internal error so the connection's order stays intact. */
		unsigned j;

		for (j = i; j < n; j++) {
			json_encode_rpc_error(&sl->entries[j], NULL, RPC_ERROR_INTERNAL,
					      RPC_MSG_INTERNAL);
			sl->remaining--;
		}
		for (j = 0; reqs && j < i; j++)
			rpc_request_error(reqs[j], RPC_ERROR_INTERNAL, RPC_MSG_INTERNAL);
		if (reqs != &single)
			mem_free(reqs);
		return 0;
	}
	if (!batch && !json_is_object(v))
		rpc_request_error(reqs[0], RPC_ERROR_INVALID_REQUEST, RPC_MSG_INVALID_REQUEST);
	else if (!batch)
		request_handle(s, reqs[0], v);
	else
		for (i = 0; i < n; i++)
			request_handle(s, reqs[i], json_array_get(v, i));
	if (reqs != &single)
		mem_free(reqs);
	return 0;
}

/* Takes complete values out of the framer while reading is allowed. */
static void conn_process_input(struct rpc_conn *c)
{
	c->refs++;
	c->dispatching = true;
	while (c->fd >= 0 && conn_can_read(c)) {
		struct req_parts parts = { 0 };
		const char *raw;
		size_t len;
		json_t *v;
		int rc = json_framer_next_raw(c->framer, &raw, &len);

		if (rc == 0)
			break;
		if (rc == 1 && envelope_fast(raw, len, &parts)) {
			rc = conn_handle_fast(c, &parts);
			if (rc == 0)
				continue;
		} else if (rc == 1) {
			rc = json_decode_value(raw, len, &v);
			if (rc == -EINVAL)
				json_framer_fail(c->framer);
			if (rc == 0) {
				rc = conn_handle_value(c, v);
				json_decref(v);
				if (rc == 0)
					continue;
			}
		}
		if (rc == -EMSGSIZE) {
			struct rpc_slot *sl = slot_new(c, 1, false);

			LOG_ERROR(MOD, "request too large fd=%d limit=%zu", c->fd,
				  json_framer_max_value(c->framer));
			if (sl) {
				char msg[96];

				snprintf(msg, sizeof(msg), "Request too large (limit %zu bytes)",
					 json_framer_max_value(c->framer));
				json_encode_rpc_error(&sl->entries[0], NULL,
						      RPC_ERROR_INVALID_REQUEST, msg);
				sl->remaining = 0;
			}
			c->close_after_flush = true;
			break;
		}
		/* -EINVAL or -ENOMEM: no resynchronisation point in a stream.
		 * Replies already complete still go out (best effort). */
		if (rc == -ENOMEM)
			LOG_ERROR(MOD, "out of memory handling a request fd=%d", c->fd);
		else
			LOG_ERROR(MOD, "jsonrpc parse request failed fd=%d", c->fd);
		c->dispatching = false;
		conn_collect(c);
		c->out_ready = c->out.len; /* poll mode too: the connection ends now */
		conn_flush(c);
		conn_close(c, "invalid JSON");
		conn_unref(c);
		return;
	}
	c->dispatching = false;
	conn_pump(c);
	conn_unref(c);
}

/* One read of at most `max` bytes, then the complete requests it brought
 * are handled. Returns the bytes read; 0 when there was nothing, at end of
 * stream or when the connection was closed. */
static size_t conn_read(struct rpc_conn *c, size_t max)
{
	/* Read into a scratch buffer, then copy: an idle connection's framer
	 * stays small (a few KiB) however many connections there are. */
	static char scratch[CONN_READ_SIZE];
	ssize_t n;

	n = recv(c->fd, scratch, COMMON_MIN(sizeof(scratch), max), MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		conn_close(c, "read failed");
		return 0;
	}
	if (n == 0) {
		c->read_eof = true;
		conn_pump(c);
		return 0;
	}
	if (json_framer_feed(c->framer, scratch, (size_t)n)) {
		LOG_ERROR(MOD, "out of memory reading a request fd=%d", c->fd);
		conn_close(c, "out of memory");
		return 0;
	}
	conn_process_input(c);
	return (size_t)n;
}

static void conn_event(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct rpc_conn *c = arg;

	c->refs++;
	if (events & EPOLLOUT)
		conn_pump(c);
	if (c->fd >= 0 && (events & EPOLLIN))
		conn_read(c, SIZE_MAX);
	if (c->fd >= 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN))
		conn_close(c, "hang-up");
	conn_unref(c);
}

int rpc_server_adopt_fd(struct rpc_server *s, int fd)
{
	struct rpc_conn *c = mem_zalloc(sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	rc = json_framer_create(s->max_request, &c->framer);
	if (rc)
		goto fail;
	c->fd = fd;
	c->server = s;
	c->refs = 1;
	c->polled = s->poll_us != 0;
	if (!c->polled) {
		c->ev_mask = EPOLLIN;
		rc = ev_fd_add(s->loop, fd, EPOLLIN, conn_event, c);
		if (rc)
			goto fail;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	LOG_DEBUG(MOD, "connection accepted fd=%d", fd);
	return 0;
fail:
	json_framer_destroy(c->framer);
	mem_free(c);
	return rc;
}

/* ========================================================= poll mode */

/* Start of a poll: how many bytes wait on c (all of them if unknown). */
static void conn_poll_measure(struct rpc_conn *c)
{
	int n = 0;

	if (ioctl(c->fd, FIONREAD, &n) != 0)
		c->poll_budget = SIZE_MAX;
	else
		c->poll_budget = n > 0 ? (size_t)n : 0;
}

/* (a) of a poll: what completed before it goes out; a finished connection
 * is closed. */
static void conn_poll_output(struct rpc_conn *c)
{
	conn_collect(c);
	c->out_ready = c->out.len;
	conn_send(c);
}

/* (b) of a poll: every complete request that waited on c when the poll
 * began is read and handled; the replies wait for the next poll. */
static void conn_poll_input(struct rpc_conn *c)
{
	c->refs++;
	/* Values left in the framer while reading was paused come first. */
	if (c->fd >= 0 && conn_can_read(c) && json_framer_pending(c->framer))
		conn_process_input(c);
	if (c->fd >= 0 && conn_can_read(c) && c->poll_budget == 0) {
		/* Nothing waited: only a hang-up is taken now (bytes that
		 * arrived since are for the next poll). */
		char b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n == 0)
			c->read_eof = true;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(c, "read failed");
	}
	while (c->fd >= 0 && conn_can_read(c) && c->poll_budget > 0) {
		size_t n = conn_read(c, c->poll_budget);

		if (n == 0)
			break;
		c->poll_budget -= n;
	}
	conn_unref(c);
}

/* The poll timer. Handling a request of one connection may complete a
 * request of another, but never closes it (conn_pump leaves polled
 * connections to the poll), so `next` stays valid. */
static void server_poll(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct rpc_server *s = arg;
	struct rpc_conn *c, *next;
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) != (ssize_t)sizeof(expirations))
		return; /* not due yet */
	if (s->polling)
		return; /* a handler ran the loop: this poll is skipped */
	s->polling = true;
	for (c = s->conns; c; c = c->next)
		conn_poll_measure(c);
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_poll_output(c);
	}
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_poll_input(c);
	}
	s->polling = false;
}

static void server_poll_stop(struct rpc_server *s)
{
	if (s->poll_fd < 0)
		return;
	ev_fd_remove(s->loop, s->poll_fd);
	close(s->poll_fd);
	s->poll_fd = -1;
	s->poll_us = 0;
}

int rpc_server_set_poll_interval(struct rpc_server *s, uint64_t us)
{
	struct itimerspec its = { 0 };
	int fd = -1, rc;

	if (s->n_conns > 0)
		return -EBUSY;
	if (us == 0) {
		server_poll_stop(s);
		return 0;
	}
	its.it_value.tv_sec = (time_t)(us / 1000000);
	its.it_value.tv_nsec = (long)(us % 1000000) * 1000;
	its.it_interval = its.it_value;
	if (s->poll_fd < 0) {
		fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			goto fail;
		}
		rc = ev_fd_add(s->loop, fd, EPOLLIN, server_poll, s);
		if (rc)
			goto fail;
		s->poll_fd = fd;
		fd = -1;
	}
	if (timerfd_settime(s->poll_fd, 0, &its, NULL) != 0) {
		rc = -errno;
		server_poll_stop(s);
		goto fail;
	}
	s->poll_us = us;
	LOG_INFO(MOD, "SPDK poller emulation: requests read and answered every interval_us=%llu",
		 (unsigned long long)us);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	LOG_ERROR(MOD, "cannot start the poll timer: %s", common_strerror(rc));
	return rc;
}

/* ========================================================== listeners */

static void listener_resume(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct rpc_listener *l = arg;

	l->retry = NULL;
	ev_fd_modify(loop, l->fd, EPOLLIN);
}

static void listener_event(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct rpc_listener *l = arg;
	struct rpc_server *s = l->server;
	int i;

	for (i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				LOG_ERROR(MOD, "accept failed, pausing 100 ms: %s",
					  common_strerror(errno));
				if (!l->retry) {
					ev_fd_modify(loop, fd, 0);
					ev_timer_start(loop, 100, 0, listener_resume, l, &l->retry);
				}
			}
			return;
		}
		if (rpc_server_adopt_fd(s, cfd)) {
			LOG_ERROR(MOD, "cannot set up connection fd=%d", cfd);
			close(cfd);
		}
	}
}

/* Removes a socket file nobody listens on any more; -EADDRINUSE if a live
 * server answers there. */
static int remove_stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	LOG_INFO(MOD, "replaced stale socket path=%s", path);
	return 0;
}

int rpc_server_listen(struct rpc_server *s, const char *path, unsigned mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_listener *l;
	mode_t old_umask;
	int fd = -1, rc;

	if (s->n_listeners == MAX_LISTENERS)
		return -ENOSPC;
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = remove_stale_socket(path);
	if (rc) {
		LOG_ERROR(MOD, "cannot use socket path=%s: %s", path, common_strerror(rc));
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old_umask = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (rc != 0) {
		rc = -errno;
		goto fail;
	}
	if (chmod(path, mode) != 0 || listen(fd, 1024) != 0) {
		rc = -errno;
		unlink(path);
		goto fail;
	}
	l = &s->listeners[s->n_listeners];
	l->server = s;
	l->fd = fd;
	l->path = mem_strdup(path);
	if (!l->path) {
		rc = -ENOMEM;
		unlink(path);
		goto fail;
	}
	rc = ev_fd_add(s->loop, fd, EPOLLIN, listener_event, l);
	if (rc) {
		mem_free(l->path);
		unlink(path);
		goto fail;
	}
	s->n_listeners++;
	LOG_INFO(MOD, "listening path=%s mode=%04o", path, mode);
	return 0;
fail:
	LOG_ERROR(MOD, "cannot listen path=%s: %s", path, common_strerror(rc));
	close(fd);
	return rc;
}

int rpc_server_create(struct ev_loop *loop, struct rpc_server **out)
{
	struct rpc_server *s = mem_zalloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->max_request = RPC_MAX_REQUEST_DEFAULT;
	s->poll_fd = -1;
	*out = s;
	return 0;
}

void rpc_server_destroy(struct rpc_server *s)
{
	unsigned i;
	size_t j;

	if (!s)
		return;
	for (i = 0; i < s->n_listeners; i++) {
		struct rpc_listener *l = &s->listeners[i];

		ev_timer_stop(s->loop, l->retry);
		ev_fd_remove(s->loop, l->fd);
		close(l->fd);
		unlink(l->path);
		mem_free(l->path);
	}
	while (s->conns)
		conn_close(s->conns, "server shutdown");
	server_poll_stop(s);
	for (j = 0; j < s->n_methods; j++)
		mem_free(s->methods[j].name);
	mem_free(s->methods);
	mem_free(s);
}
