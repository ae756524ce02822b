/*
 * rpc.h: the one public header of src/rpc: an SPDK-compatible JSON-RPC 2.0
 * server on a unix stream socket, driven by the common event loop, and a
 * blocking client library.
 *
 * Server. Single-threaded: every call below and every handler runs on the
 * loop's thread. Requests are framed by src/json (concatenated JSON values,
 * batches, notifications); invalid JSON closes the connection without a
 * reply, truncated JSON waits, a request larger than the limit gets a
 * -32600 error and the connection is closed. Responses on one connection go
 * out in request order, even when handlers complete out of order. A
 * connection whose client stops reading stops being read (bounded memory).
 *
 * Handlers complete each request exactly once, now (inside the handler) or
 * later (from any later loop callback), with rpc_request_reply() or
 * rpc_request_error*(). If the client has disconnected meanwhile the
 * completion is still valid; its output is discarded. Notifications (no id,
 * or "id": null) are dispatched and completed normally; a result is not
 * sent, an error is (with "id": null), exactly as SPDK does. A client that
 * shuts down its sending side still gets every reply, then the close.
 *
 * Client. Blocking, one per thread, no event loop. See rpc_client_call().
 */
#ifndef DE_RPC_H
#define DE_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/common.h"

struct json_buf;

/* JSON-RPC error codes (the SPDK handlers also use -errno as a code). */
#define RPC_ERROR_PARSE            (-32700)
#define RPC_ERROR_INVALID_REQUEST  (-32600)
#define RPC_ERROR_METHOD_NOT_FOUND (-32601)
#define RPC_ERROR_INVALID_PARAMS   (-32602)
#define RPC_ERROR_INTERNAL         (-32603)

/* SPDK's default texts for the codes above. */
#define RPC_MSG_INVALID_REQUEST    "Invalid request"
#define RPC_MSG_METHOD_NOT_FOUND   "Method not found"
#define RPC_MSG_INVALID_PARAMS     "Invalid parameters"
#define RPC_MSG_INTERNAL           "Internal error"
#define RPC_MSG_DECODE_FAILED      "spdk_json_decode_object failed"

/* Default bound on one request (bytes); see rpc_server_set_max_request(). */
#define RPC_MAX_REQUEST_DEFAULT (16u * 1024 * 1024)

/* ============================================================ server */

struct rpc_server;
struct rpc_request;

/* params: borrowed (valid during the call only; json_incref to keep it),
 * NULL when the request has no "params" or "params": null. */
typedef void (*rpc_handler_fn)(struct rpc_request *req, json_t *params, void *ctx);

/* Dispatch hook (fault injection): called for every well-formed request
 * before the method lookup. Return true if the hook consumed the request
 * (it must then complete it exactly once); false to dispatch normally. */
typedef bool (*rpc_hook_fn)(struct rpc_request *req, const char *method, json_t *params,
			    void *ctx);

/* Registration flags. */
#define RPC_FLAG_NO_PARAMS 0x1u /* params given → -32602 "<method> method requires no parameters" */

/* Per-request reply flags (fault injection). */
#define RPC_REPLY_DROP 0x1u /* the handler runs; its reply is not sent */
#define RPC_REPLY_EXIT 0x2u /* _exit(1) right after the reply is written (or would have been) */

int rpc_server_create(struct ev_loop *loop, struct rpc_server **out);
/* Listens on a unix socket at `path` (a stale socket file is replaced) with
 * file mode `mode` (e.g. 0600). May be called more than once. */
int rpc_server_listen(struct rpc_server *s, const char *path, unsigned mode);
/* Serves an already connected stream socket (takes ownership of fd, which
 * must be non-blocking): socketpair-based tests, fuzzing, socket activation. */
int rpc_server_adopt_fd(struct rpc_server *s, int fd);
/* Closes listeners and connections, unlinks the socket files. Requests still
 * pending in handlers stay valid: their later completion is discarded and
 * frees them. NULL is a no-op. */
void rpc_server_destroy(struct rpc_server *s);

/* Adds a method. -EEXIST if already registered, -EINVAL on a bad name. */
int rpc_server_register(struct rpc_server *s, const char *method, rpc_handler_fn fn, void *ctx,
			unsigned flags);
bool rpc_server_has_method(const struct rpc_server *s, const char *method);
/* What spdk_get_version reports: SPDK clients check it, so it names the
 * SPDK release whose RPC behaviour disktgt reproduces. */
#define RPC_SPDK_VERSION_STRING "SPDK v26.09-pre"
#define RPC_SPDK_VERSION_MAJOR  26
#define RPC_SPDK_VERSION_MINOR  9
#define RPC_SPDK_VERSION_PATCH  0
#define RPC_SPDK_VERSION_SUFFIX "-pre"

/* Registers the rpc layer's own methods: spdk_get_version and rpc_get_methods.
 * Call it first so that, as in SPDK, they come last in rpc_get_methods. */
int rpc_server_register_builtins(struct rpc_server *s);
/* Method names as a new JSON array of strings (caller owns), in SPDK's
 * order (most recently registered first), or NULL on ENOMEM. */
json_t *rpc_server_method_names(const struct rpc_server *s);
void rpc_server_set_hook(struct rpc_server *s, rpc_hook_fn hook, void *ctx);

/* Runs a method without a connection (config loading): cb is called exactly
 * once, now or later from the loop, with the result (borrowed; code 0,
 * message NULL) or an error (result NULL). The hook is not called. An
 * unknown method calls cb with -32601 at once. Returns 0 (cb will be / was
 * called) or -errno (cb not called). */
typedef void (*rpc_local_cb)(void *arg, json_t *result, int code, const char *message);
int rpc_server_call_local(struct rpc_server *s, const char *method, json_t *params,
			  rpc_local_cb cb, void *arg);
/* Bound on one request in bytes (default RPC_MAX_REQUEST_DEFAULT); applies to
 * connections accepted afterwards. */
void rpc_server_set_max_request(struct rpc_server *s, size_t bytes);
/* SPDK timing emulation. Real SPDK serves its RPC socket from a poller (every
 * 4 ms): a request is read in one poll and its reply is sent in the next,
 * so a strictly sequential call costs two intervals while a pipelining
 * client gets many calls answered per poll. With `us` > 0 connections are
 * no longer served when they become readable: every `us` microseconds the
 * server first sends, on every connection, the replies completed since the
 * previous poll, then reads and handles every complete request that was
 * waiting on every connection when the poll began (their replies go out at
 * the next poll). Everything else (ordering, batches, back-pressure, hooks
 * and reply flags, local calls) is unchanged. 0 (the default) answers at
 * once. Call it before the server has connections: 0, -EBUSY if it has
 * some, or -errno (timerfd). */
int rpc_server_set_poll_interval(struct rpc_server *s, uint64_t us);
struct ev_loop *rpc_server_loop(const struct rpc_server *s);
/* Connections currently open (for tests and stats). */
unsigned rpc_server_connection_count(const struct rpc_server *s);

/* --- completing a request (each request exactly once) --- */

/* result: stolen (NULL means JSON null). Frees req. */
void rpc_request_reply(struct rpc_request *req, json_t *result);
/* Result given as already-serialised compact JSON text (copied; len bytes,
 * must be one valid JSON value, written as is). For big listings. Frees req. */
void rpc_request_reply_raw(struct rpc_request *req, const char *json, size_t len);
/* The same without the copy (multi-MB listings): append the result text to
 * the buffer begin returns (the reply stream itself when it can be, else a
 * scratch buffer), then call end exactly once: rc 0 sends it, rc < 0 drops
 * it and replies that errno as rpc_request_errno does. end frees req. */
struct json_buf *rpc_request_reply_raw_begin(struct rpc_request *req);
void rpc_request_reply_raw_end(struct rpc_request *req, int rc);
/* Convenience: reply `true` (SPDK's usual result for actions). */
void rpc_request_reply_true(struct rpc_request *req);
/* Error reply {"code":code,"message":message}. Frees req. */
void rpc_request_error(struct rpc_request *req, int code, const char *message);
void rpc_request_errorf(struct rpc_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Negative errno as the code with strerror text: rpc_request_errno(req, -ENODEV)
 * → {"code":-19,"message":"No such device"} (SPDK's synchronous failures). */
void rpc_request_errno(struct rpc_request *req, int neg_errno);
/* -32603 "spdk_json_decode_object failed". */
void rpc_request_decode_failed(struct rpc_request *req);

/* --- request accessors (valid until the request is completed) --- */

const char *rpc_request_method(const struct rpc_request *req);
/* The request id (borrowed; NULL for a notification). */
const json_t *rpc_request_id(const struct rpc_request *req);
bool rpc_request_is_notification(const struct rpc_request *req);
/* False once the client's connection is gone (the reply will be discarded). */
bool rpc_request_connected(const struct rpc_request *req);
struct rpc_server *rpc_request_server(const struct rpc_request *req);
void rpc_request_set_flags(struct rpc_request *req, unsigned reply_flags);
unsigned rpc_request_flags(const struct rpc_request *req);

/* --- SPDK-style parameter decoding --- */

enum rpc_param_type {
	RPC_PARAM_STRING, /* char * (mem_strdup'd copy; rpc_params_free releases it) */
	RPC_PARAM_INT32,  /* int32_t */
	RPC_PARAM_UINT32, /* uint32_t */
	RPC_PARAM_INT64,  /* int64_t */
	RPC_PARAM_UINT64, /* uint64_t */
	RPC_PARAM_BOOL,   /* bool */
	RPC_PARAM_OBJECT, /* json_t * (new reference; rpc_params_free releases it) */
	RPC_PARAM_ARRAY,  /* json_t * (new reference) */
	RPC_PARAM_ANY,    /* json_t * (new reference), any type including null */
	RPC_PARAM_UINT16, /* uint16_t */
	RPC_PARAM_UINT8,  /* uint8_t */
};

struct rpc_param {
	const char *name;
	enum rpc_param_type type;
	size_t offset; /* offsetof(struct my_params, field) */
	bool optional;
};

/*
 * Decodes `params` (must be an object) into the struct at `out` following
 * SPDK's spdk_json_decode_object rules: any unknown key, missing required
 * key or wrong type fails the whole call. Numbers: integer-valued JSON
 * numbers in the field's range (16, 16.0, 1.6e1); a string where a number
 * is expected, a fraction, a negative value for an unsigned field, or an
 * out-of-range value fails. Booleans only true/false (not 0/1 or strings);
 * null is accepted only for RPC_PARAM_ANY. Fields absent from params are
 * left untouched (initialise defaults first; STRING and json_t fields must
 * start as NULL: apply their defaults after decoding). params NULL (absent): 0 if
 * every spec entry is optional, else -EINVAL.
 * Returns 0 or -EINVAL (or -ENOMEM); on failure the caller replies
 * rpc_request_decode_failed(req). On failure nothing needs freeing; on
 * success release with rpc_params_free().
 */
int rpc_params_decode(const json_t *params, const struct rpc_param *spec, size_t n, void *out);
/* Frees the STRING copies and drops the json_t references decoded into `out`
 * and sets those fields to NULL (safe to call twice and on untouched fields
 * that are NULL). */
void rpc_params_free(const struct rpc_param *spec, size_t n, void *out);

/* ============================================================ client */

struct rpc_client;

struct rpc_error {
	int code;
	char message[256];
};

/* Connects to the unix socket at `path`, retrying while the server's backlog
 * is full, for at most timeout_ms (<0: default 10 s). 0 or -errno
 * (-ENOENT, -ECONNREFUSED, -ETIMEDOUT, ...). */
int rpc_client_connect(const char *path, int timeout_ms, struct rpc_client **out);
/* A client over an already connected stream socket (takes ownership of fd;
 * made non-blocking): tests, fuzzing, socketpairs. */
int rpc_client_adopt_fd(int fd, struct rpc_client **out);
void rpc_client_destroy(struct rpc_client *c);

/*
 * One call: sends {"jsonrpc":"2.0","method":method,"id":N[,"params":params]}
 * and waits for the reply with the same id.
 *   params: stolen; NULL = omitted (as rpc.py does for empty params).
 *   timeout_ms: <0 waits forever.
 *   result: on 0, *result is the result value (caller owns); may be NULL to
 *           discard it.
 * Returns
 *   0           success
 *   -EREMOTE    the server replied with an error; *err filled (if err non-NULL)
 *   -ETIMEDOUT  no reply in time: the outcome is UNKNOWN (the call may have
 *               run). The connection is closed so a late reply can never be
 *               taken for another call's; later calls return -ENOTCONN.
 *   -EBUSY      pipelined requests (rpc_client_send) are still unanswered
 *   -EPROTO     the server sent something that is not a valid response
 *               (connection closed)
 *   other -errno: transport failure (-ECONNRESET, -EPIPE, -ENOTCONN, ...);
 *               the outcome is unknown too if the request was sent.
 */
int rpc_client_call(struct rpc_client *c, const char *method, json_t *params, int timeout_ms,
		    json_t **result, struct rpc_error *err);

/* Pipelining: send several requests, then receive the replies in order.
 * rpc_client_send: params stolen; *id (optional) receives the request id.
 * 0 or -errno. Blocks only while the socket is full (reading replies
 * meanwhile, so it cannot deadlock with the server). */
int rpc_client_send(struct rpc_client *c, const char *method, json_t *params, uint64_t *id);
/* Receives the next reply: *id its id; returns 0 (*result, caller owns; may be
 * NULL to discard), -EREMOTE (*err), -ETIMEDOUT (connection closed; every
 * outstanding request has an unknown outcome), -EAGAIN (nothing outstanding)
 * or another -errno. */
int rpc_client_recv(struct rpc_client *c, int timeout_ms, uint64_t *id, json_t **result,
		    struct rpc_error *err);
/* Batching for pipelined sends: after rpc_client_cork(), rpc_client_send()
 * only queues its request; rpc_client_uncork() writes everything queued in
 * one go (0 or -errno). rpc_client_recv() flushes the queue itself first. */
void rpc_client_cork(struct rpc_client *c);
int rpc_client_uncork(struct rpc_client *c);
/* True if a complete reply has already been received (rpc_client_recv will
 * not block); never blocks or reads the socket itself. */
bool rpc_client_ready(struct rpc_client *c);
/* Requests sent and not yet received. */
unsigned rpc_client_outstanding(const struct rpc_client *c);
bool rpc_client_connected(const struct rpc_client *c);
/* Timeout for blocking sends (default 30 s). */
void rpc_client_set_send_timeout(struct rpc_client *c, int timeout_ms);

#endif /* DE_RPC_H */
