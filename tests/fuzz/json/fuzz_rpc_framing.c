/*
 * fuzz_rpc_framing.c: libFuzzer target for the JSON-RPC server's byte path:
 * framing (src/json) + request validation, batches, dispatch, ordering and
 * connection teardown (src/rpc). The input is written to a real server
 * connection (a socketpair) in chunks whose size comes from the first byte,
 * with event-loop turns in between. Every reply line must be valid JSON,
 * and the bytes sent back must be identical with the server's fast request
 * path on and off (differential); sanitizers and the leak checker catch
 * the rest.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"

#define MAX_HELD 256

/* server.c, tests only: route every request through the full parse. */
extern bool rpc_server_no_fast_path;

static struct rpc_request *held[MAX_HELD];
static int n_held;

static void m_echo(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_reply(req, params ? json_incref(params) : NULL);
}

static void m_hold(struct rpc_request *req, json_t *params, void *ctx)
{
	if (n_held < MAX_HELD)
		held[n_held++] = req;
	else
		rpc_request_errno(req, -EBUSY);
}

static void later_cb(struct ev_loop *loop, void *arg)
{
	rpc_request_reply_true(arg);
}

static void m_later(struct rpc_request *req, json_t *params, void *ctx)
{
	if (ev_defer(rpc_server_loop(rpc_request_server(req)), later_cb, req))
		rpc_request_errno(req, -ENOMEM);
}

struct dparams {
	char *name;
	uint32_t size;
	int64_t off;
	bool thin;
	json_t *obj;
};

static const struct rpc_param dspec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct dparams, name), false },
	{ "size", RPC_PARAM_UINT32, offsetof(struct dparams, size), true },
	{ "off", RPC_PARAM_INT64, offsetof(struct dparams, off), true },
	{ "thin", RPC_PARAM_BOOL, offsetof(struct dparams, thin), true },
	{ "obj", RPC_PARAM_OBJECT, offsetof(struct dparams, obj), true },
};

static void m_decode(struct rpc_request *req, json_t *params, void *ctx)
{
	struct dparams p = { 0 };

	if (rpc_params_decode(params, dspec, COMMON_ARRAY_SIZE(dspec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	rpc_request_reply(req, json_pack("{s:s,s:I}", "name", p.name, "size", (json_int_t)p.size));
	rpc_params_free(dspec, COMMON_ARRAY_SIZE(dspec), &p);
}

static void m_raw(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_reply_raw(req, "{\"a\":[1,2]}", 11);
}

static bool hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	if (strcmp(method, "drop") == 0) {
		rpc_request_set_flags(req, RPC_REPLY_DROP);
		rpc_request_reply_true(req);
		return true;
	}
	return false;
}

/* Checks that what the server wrote is a sequence of JSON lines. */
static void check_output(struct json_buf *out)
{
	size_t start = 0;

	for (size_t i = 0; i < out->len; i++) {
		if (out->data[i] != '\n')
			continue;
		json_error_t e;
		json_t *v = json_loadb(out->data + start, i - start, JSON_DECODE_ANY, &e);

		if (!v || (!json_is_object(v) && !json_is_array(v)))
			abort();
		json_decref(v);
		start = i + 1;
	}
	json_buf_consume(out, start);
}

static void drain(int fd, struct json_buf *out, struct json_buf *all)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		json_buf_append(out, buf, (size_t)n);
		json_buf_append(all, buf, (size_t)n);
	}
	check_output(out);
}

/* One run of the input against a fresh server; every byte the server sent
 * goes to *all. */
static void run(const uint8_t *data, size_t size, size_t chunk, struct json_buf *all)
{
	struct ev_loop *loop = NULL;
	struct rpc_server *s = NULL;
	struct json_buf out = { 0 };
	size_t off = 0;
	int sv[2];

	if (ev_loop_create(&loop) || rpc_server_create(loop, &s))
		abort();
	rpc_server_set_max_request(s, 2048);
	if (rpc_server_register_builtins(s) || rpc_server_register(s, "echo", m_echo, NULL, 0) ||
	    rpc_server_register(s, "hold", m_hold, NULL, 0) ||
	    rpc_server_register(s, "later", m_later, NULL, 0) ||
	    rpc_server_register(s, "decode", m_decode, NULL, 0) ||
	    rpc_server_register(s, "raw", m_raw, NULL, 0) ||
	    rpc_server_register(s, "quiet", m_echo, NULL, RPC_FLAG_NO_PARAMS))
		abort();
	rpc_server_set_hook(s, hook, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) ||
	    rpc_server_adopt_fd(s, sv[0]))
		abort();
	while (off < size) {
		size_t len = COMMON_MIN(chunk, size - off);
		ssize_t n = write(sv[1], data + off, len);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break; /* server closed the connection */
		ev_loop_run_once(loop, 0);
		drain(sv[1], &out, all);
		/* Complete one held request now and then, out of order. */
		if (n_held > 1 && (off & 3) == 0) {
			struct rpc_request *r = held[0];

			memmove(held, held + 1, (size_t)(n_held - 1) * sizeof(held[0]));
			n_held--;
			rpc_request_reply(r, json_integer((json_int_t)off));
		}
	}
	for (int i = 0; i < 4; i++) {
		ev_loop_run_once(loop, 0);
		drain(sv[1], &out, all);
	}
	/* Half the time the client leaves with requests pending. */
	if (size & 1)
		close(sv[1]);
	while (n_held > 0)
		rpc_request_reply(held[--n_held], json_true());
	for (int i = 0; i < 4; i++) {
		ev_loop_run_once(loop, 0);
		if (!(size & 1))
			drain(sv[1], &out, all);
	}
	if (!(size & 1))
		close(sv[1]);
	rpc_server_destroy(s);
	for (int i = 0; i < 2; i++)
		ev_loop_run_once(loop, 0);
	ev_loop_destroy(loop);
	json_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;
	struct json_buf fast = { 0 }, full = { 0 };
	size_t chunk;

	if (!once) {
		/* Invalid input is logged once per connection: keep it quiet. */
		log_level_set(LOG_LEVEL_ERROR);
		signal(SIGPIPE, SIG_IGN);
		once = true;
	}
	if (size < 1)
		return 0;
	chunk = (size_t)(data[0] % 64) + 1;
	rpc_server_no_fast_path = false;
	run(data + 1, size - 1, chunk, &fast);
	rpc_server_no_fast_path = true;
	run(data + 1, size - 1, chunk, &full);
	rpc_server_no_fast_path = false;
	if (fast.len != full.len || (fast.len && memcmp(fast.data, full.data, fast.len)))
		abort();
	json_buf_free(&fast);
	json_buf_free(&full);
	return 0;
}
