/* test_rpc.c: unit tests for src/rpc: SPDK parameter decoding, the server
 * (validation rules, batches, notifications, ordering of asynchronous
 * completions, pipelining, oversize and invalid input, fault-injection
 * hooks and flags, disconnects with requests pending, local calls) and the
 * blocking client (errors, timeouts, pipelining, server closing mid-call). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"
#include "rpc_test_srv.h"

/* ============================================================ params */

struct p_all {
	char *name;
	int32_t i32;
	uint32_t u32;
	int64_t i64;
	uint64_t u64;
	uint16_t u16;
	uint8_t u8;
	bool flag;
	json_t *obj;
	json_t *arr;
	json_t *any;
};

static const struct rpc_param p_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct p_all, name), false },
	{ "i32", RPC_PARAM_INT32, offsetof(struct p_all, i32), true },
	{ "u32", RPC_PARAM_UINT32, offsetof(struct p_all, u32), true },
	{ "i64", RPC_PARAM_INT64, offsetof(struct p_all, i64), true },
	{ "u64", RPC_PARAM_UINT64, offsetof(struct p_all, u64), true },
	{ "u16", RPC_PARAM_UINT16, offsetof(struct p_all, u16), true },
	{ "u8", RPC_PARAM_UINT8, offsetof(struct p_all, u8), true },
	{ "flag", RPC_PARAM_BOOL, offsetof(struct p_all, flag), true },
	{ "obj", RPC_PARAM_OBJECT, offsetof(struct p_all, obj), true },
	{ "arr", RPC_PARAM_ARRAY, offsetof(struct p_all, arr), true },
	{ "any", RPC_PARAM_ANY, offsetof(struct p_all, any), true },
};
#define NSPEC COMMON_ARRAY_SIZE(p_spec)

static int decode_str(const char *text, struct p_all *out)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
	int rc;

	if (!v)
		fail_msg("bad test JSON %s: %s", text, e.text);
	memset(out, 0, sizeof(*out));
	out->i32 = 77;
	rc = rpc_params_decode(v, p_spec, NSPEC, out);
	json_decref(v);
	return rc;
}

static void test_params_ok(void **state)
{
	struct p_all p;

	assert_int_equal(decode_str("{\"name\":\"lvs0/a\",\"i32\":-5,\"u32\":4294967295,"
				    "\"i64\":-9223372036854775808,\"u64\":9223372036854775807,"
				    "\"u16\":65535,\"u8\":255,\"flag\":true,\"obj\":{\"a\":1},"
				    "\"arr\":[1],\"any\":null}", &p), 0);
	assert_string_equal(p.name, "lvs0/a");
	assert_int_equal(p.i32, -5);
	assert_int_equal(p.u32, 4294967295u);
	assert_true(p.i64 == INT64_MIN);
	assert_true(p.u64 == INT64_MAX);
	assert_int_equal(p.u16, 65535);
	assert_int_equal(p.u8, 255);
	assert_true(p.flag);
	assert_true(json_is_object(p.obj));
	assert_true(json_is_array(p.arr));
	assert_true(json_is_null(p.any));
	rpc_params_free(p_spec, NSPEC, &p);
	assert_null(p.name);
	assert_null(p.obj);
	rpc_params_free(p_spec, NSPEC, &p);

	/* Integer-valued reals are numbers too (SPDK splits the number text). */
	assert_int_equal(decode_str("{\"name\":\"x\",\"u32\":16.0,\"i64\":1.6e1,\"u64\":1e19}", &p), 0);
	assert_int_equal(p.u32, 16);
	assert_int_equal(p.i64, 16);
	assert_true(p.u64 == 10000000000000000000ull);
	assert_int_equal(p.i32, 77); /* absent: untouched */
	rpc_params_free(p_spec, NSPEC, &p);
}

static void test_params_fail(void **state)
{
	static const char *bad[] = {
		"{\"name\":\"v\",\"i32\":\"sixteen\"}",  /* a84: string for a number */
		"{\"name\":\"v\",\"bogus\":1}",         /* a85: unknown key */
		"{\"i32\":1}",                         /* a28: missing required */
		"{\"name\":1}",                        /* number for a string */
		"{\"name\":null}",                     /* null for a string */
		"{\"name\":\"v\",\"u32\":-1}",          /* negative for unsigned */
		"{\"name\":\"v\",\"u64\":-1}",
		"{\"name\":\"v\",\"u8\":256}",
		"{\"name\":\"v\",\"u16\":65536}",
		"{\"name\":\"v\",\"u32\":4294967296}",
		"{\"name\":\"v\",\"i32\":2147483648}",
		"{\"name\":\"v\",\"i32\":-2147483649}",
		"{\"name\":\"v\",\"u32\":1.5}",         /* fraction */
		"{\"name\":\"v\",\"u64\":1.8446744073709552e19}",
		"{\"name\":\"v\",\"i64\":9.3e18}",
		"{\"name\":\"v\",\"flag\":1}",          /* 0/1 is not a bool */
		"{\"name\":\"v\",\"flag\":\"true\"}",
		"{\"name\":\"v\",\"obj\":[]}",
		"{\"name\":\"v\",\"arr\":{}}",
		"{\"name\":\"v\",\"u32\":true}",
		"[\"v\"]",                             /* params as an array */
		"\"v\"",
	};
	struct p_all p;

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(bad); i++) {
		int rc = decode_str(bad[i], &p);

		if (rc != -EINVAL)
			fail_msg("%s decoded (rc %d)", bad[i], rc);
		/* Nothing to free on failure, nothing written. */
		assert_null(p.name);
		assert_null(p.obj);
		assert_int_equal(p.i32, 77);
	}
	/* A type error after a valid string key leaves no copy behind. */
	assert_int_equal(decode_str("{\"name\":\"v\",\"obj\":{},\"flag\":0}", &p), -EINVAL);
	assert_null(p.name);
	assert_null(p.obj);
}

static void test_params_absent(void **state)
{
	struct p_all p = { 0 };

	assert_int_equal(rpc_params_decode(NULL, p_spec, NSPEC, &p), -EINVAL);
	assert_int_equal(rpc_params_decode(NULL, p_spec + 1, NSPEC - 1, &p), 0);
	{
		json_t *empty = json_object();

		assert_int_equal(rpc_params_decode(empty, p_spec + 1, NSPEC - 1, &p), 0);
		json_decref(empty);
	}
}

/* ============================================ server over a socketpair */

/* Requests held by the "hold" method, completed by the test. */
static struct rpc_request *held[64];
static int n_held;

static void m_echo(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_reply(req, params ? json_incref(params) : json_null());
}

static void m_fail(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_errno(req, -ENODEV);
}

static void m_hold(struct rpc_request *req, json_t *params, void *ctx)
{
	assert_true(n_held < 64);
	held[n_held++] = req;
}

static void m_raw(struct rpc_request *req, json_t *params, void *ctx)
{
	static const char txt[] = "[{\"name\":\"x\"},1]";

	rpc_request_reply_raw(req, txt, sizeof(txt) - 1);
}

static void m_decode(struct rpc_request *req, json_t *params, void *ctx)
{
	struct p_all p = { 0 };

	if (rpc_params_decode(params, p_spec, NSPEC, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	rpc_request_reply(req, json_string(p.name));
	rpc_params_free(p_spec, NSPEC, &p);
}

static void m_noparams(struct rpc_request *req, json_t *params, void *ctx)
{
	assert_null(params);
	rpc_request_reply_true(req);
}

static void fx_register(struct rpc_server *s)
{
	assert_int_equal(rpc_server_register_builtins(s), 0);
	assert_int_equal(rpc_server_register(s, "echo", m_echo, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "fail", m_fail, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "hold", m_hold, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "raw", m_raw, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "decode", m_decode, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "noparams", m_noparams, NULL, RPC_FLAG_NO_PARAMS), 0);
	assert_int_equal(rpc_server_register(s, "echo", m_echo, NULL, 0), -EEXIST);
	assert_int_equal(rpc_server_register(s, "", m_echo, NULL, 0), -EINVAL);
}

/* Requests still held complete after the server is gone: valid. */
static void reply_held(void)
{
	while (n_held > 0)
		rpc_request_reply(held[--n_held], json_true());
}

static int fx_setup(void **state)
{
	n_held = 0;
	*state = rpc_test_pair_open(fx_register);
	return 0;
}

static int fx_teardown(void **state)
{
	rpc_test_pair_close(*state, reply_held);
	return 0;
}

static void fx_send(struct rpc_test_pair *f, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(f->fd, p, len);

		if (n < 0) {
			assert_true(errno == EAGAIN);
			rpc_test_pair_turn(f, 10);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void fx_send_str(struct rpc_test_pair *f, const char *s)
{
	fx_send(f, s, strlen(s));
}

/* Runs the loop until `lines` response lines arrived (or 3 s). */
static const char *fx_wait_lines(struct rpc_test_pair *f, unsigned lines)
{
	uint64_t deadline = clock_mono_ms() + 3000;

	while (rpc_test_pair_lines(f) < lines && clock_mono_ms() < deadline && !f->peer_closed)
		rpc_test_pair_turn(f, 5);
	return json_buf_cstr(&f->in);
}

/* Runs the loop a little and asserts nothing more arrived. */
static void fx_expect_quiet(struct rpc_test_pair *f, unsigned lines)
{
	for (int i = 0; i < 10; i++)
		rpc_test_pair_turn(f, 2);
	assert_int_equal(rpc_test_pair_lines(f), lines);
}

static void fx_expect_closed(struct rpc_test_pair *f)
{
	uint64_t deadline = clock_mono_ms() + 3000;

	while (!f->peer_closed && clock_mono_ms() < deadline)
		rpc_test_pair_turn(f, 5);
	assert_true(f->peer_closed);
}

static void expect_reply(struct rpc_test_pair *f, const char *req, const char *want)
{
	size_t before = f->in.len;
	unsigned lines = rpc_test_pair_lines(f);

	fx_send_str(f, req);
	fx_wait_lines(f, lines + 1);
	if (f->in.len - before != strlen(want) || memcmp(f->in.data + before, want, strlen(want)))
		fail_msg("request %s\n  got  %.*s\n  want %s", req, (int)(f->in.len - before),
			 f->in.data + before, want);
}

#define VERSION_RESULT \
	"{\"version\":\"SPDK v26.09-pre\",\"fields\":{\"major\":26,\"minor\":9,\"patch\":0,\"suffix\":\"-pre\"}}"

static void test_server_golden(void **state)
{
	struct rpc_test_pair *f = *state;

	/* a01, a83, a86, a89, a90 */
	expect_reply(f, "{\"jsonrpc\": \"2.0\", \"method\": \"spdk_get_version\", \"id\": 1}",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" VERSION_RESULT "}\n");
	expect_reply(f, "{\"jsonrpc\": \"2.0\", \"method\": \"no_such_method\", \"id\": 83}",
		     "{\"jsonrpc\":\"2.0\",\"id\":83,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}\n");
	expect_reply(f, "{\"jsonrpc\": \"2.0\", \"method\": \"spdk_get_version\", \"id\": 86, \"params\": {\"x\": 1}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":86,\"error\":{\"code\":-32602,\"message\":\"spdk_get_version method requires no parameters\"}}\n");
	expect_reply(f, "{\"method\":\"spdk_get_version\",\"id\":1}",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" VERSION_RESULT "}\n");
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":\"abc\"}",
		     "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":" VERSION_RESULT "}\n");
	/* a84 / a85 through the decode helper. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"decode\",\"id\":84,\"params\":{\"name\":\"v\",\"i32\":\"sixteen\"}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":84,\"error\":{\"code\":-32603,\"message\":\"spdk_json_decode_object failed\"}}\n");
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"decode\",\"id\":85,\"params\":{\"name\":\"v\",\"bogus\":1}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":85,\"error\":{\"code\":-32603,\"message\":\"spdk_json_decode_object failed\"}}\n");
	/* A number beyond 64 bits: a decode failure like SPDK's, not a close. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"decode\",\"id\":87,\"params\":{\"name\":\"v\",\"u64\":99999999999999999999}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":87,\"error\":{\"code\":-32603,\"message\":\"spdk_json_decode_object failed\"}}\n");
	/* a87: truncated JSON just waits. */
	fx_send_str(f, "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1");
	fx_expect_quiet(f, 8);
	assert_false(f->peer_closed);
	/* ...and completes when the rest arrives. */
	fx_send_str(f, "}");
	fx_wait_lines(f, 9);
	assert_int_equal(rpc_test_pair_lines(f), 9);
}

static void test_server_invalid_json_closes(void **state)
{
	struct rpc_test_pair *f = *state;

	/* a88: a reply for the valid request before, nothing for the bad one. */
	fx_send_str(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1}"
		       "{\"jsonrpc\":\"2.0\",\"method\":spdk_get_version,\"id\":1}");
	fx_expect_closed(f);
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n");
	assert_int_equal(rpc_server_connection_count(f->s), 0);
}

static void test_server_notifications(void **state)
{
	struct rpc_test_pair *f = *state;

	/* a91: no reply to a successful notification, nor with "id": null. */
	fx_send_str(f, "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}");
	fx_send_str(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":null}");
	fx_expect_quiet(f, 0);
	/* SPDK still answers errors, with "id": null. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}",
		     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}\n");
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"fail\"}",
		     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-19,\"message\":\"No such device\"}}\n");
}

static void test_server_invalid_requests(void **state)
{
	struct rpc_test_pair *f = *state;
	static const char *inv = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid request\"}}\n";

	expect_reply(f, "{\"jsonrpc\":\"1.0\",\"method\":\"echo\",\"id\":1}", inv);
	expect_reply(f, "{\"jsonrpc\":2,\"method\":\"echo\",\"id\":1}", inv);
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":1}", inv);
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"id\":1}", inv);
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":{}}", inv);
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1,\"extra\":1}", inv);
	expect_reply(f, "42 ", inv);
	expect_reply(f, "\"str\"", inv);
	expect_reply(f, "[]", inv);
	/* params of the wrong type: the id is already known, so it is echoed. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":9,\"params\":\"x\"}",
		     "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32600,\"message\":\"Invalid request\"}}\n");
	/* "params": null is no params; {} is params. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"noparams\",\"id\":2,\"params\":null}",
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":true}\n");
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"noparams\",\"id\":3,\"params\":{}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"noparams method requires no parameters\"}}\n");
	/* Array params reach the handler. */
	expect_reply(f, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":4,\"params\":[1,\"a\"]}",
		     "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":[1,\"a\"]}\n");
	/* Number id forms. */
	expect_reply(f, "{\"method\":\"echo\",\"id\":-3}", "{\"jsonrpc\":\"2.0\",\"id\":-3,\"result\":null}\n");
	expect_reply(f, "{\"method\":\"echo\",\"id\":1.5}", "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":null}\n");
	/* Raw results are spliced in as is. */
	expect_reply(f, "{\"method\":\"raw\",\"id\":5}", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":[{\"name\":\"x\"},1]}\n");
	/* rpc_get_methods: bad params are -32602 "Invalid parameters" in SPDK. */
	expect_reply(f, "{\"method\":\"rpc_get_methods\",\"id\":6,\"params\":{\"current\":1}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-32602,\"message\":\"Invalid parameters\"}}\n");
	expect_reply(f, "{\"method\":\"rpc_get_methods\",\"id\":7,\"params\":{\"current\":true,\"include_aliases\":false}}",
		     "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[\"noparams\",\"decode\",\"raw\",\"hold\",\"fail\",\"echo\",\"spdk_get_version\",\"rpc_get_methods\"]}\n");
	assert_false(f->peer_closed);
}

extern bool rpc_server_no_fast_path; /* server.c, tests only */

/* The fast request path (envelope read from the text) answers exactly like
 * the full parse, for every shape of request. */
static void test_server_fast_path_equivalence(void **state)
{
	static const char *const reqs[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1}",
		"{ \"id\" : 2 , \"method\" : \"echo\" , \"params\" : { \"a\" : [1, \"x\"] } }",
		"{\"method\":\"\\u0073pdk_get_version\",\"id\":3}",
		"{\"method\":\"echo\",\"id\":-0}",
		"{\"method\":\"echo\",\"id\":123456789012345678}",
		"{\"method\":\"echo\",\"id\":1234567890123456789}",
		"{\"method\":\"echo\",\"id\":123456789012345678901}",
		"{\"method\":\"echo\",\"id\":1.5}",
		"{\"method\":\"echo\",\"id\":1e2}",
		"{\"method\":\"echo\",\"id\":\"s\"}",
		"{\"method\":\"echo\",\"id\":\"\\u00e9\"}",
		"{\"method\":\"echo\",\"id\":\"\xc3\xa9\"}",
		"{\"method\":\"nope\",\"id\":null}",
		"{\"method\":\"echo\",\"id\":true}",
		"{\"method\":\"echo\",\"id\":[1]}",
		"{\"method\":\"echo\",\"id\":4,\"id\":5}",
		"{\"method\":\"echo\",\"method\":\"fail\",\"id\":6}",
		"{\"method\":\"echo\",\"id\":7,\"params\":null}",
		"{\"method\":\"noparams\",\"id\":8,\"params\":{}}",
		"{\"method\":\"noparams\",\"id\":9,\"params\":[]}",
		"{\"method\":\"echo\",\"id\":10,\"params\":5}",
		"{\"method\":\"echo\",\"id\":11,\"params\":\"x\"}",
		"{\"jsonrpc\":\"1.0\",\"method\":\"echo\",\"id\":12}",
		"{\"jsonrpc\":\"2\\u002e0\",\"method\":\"echo\",\"id\":13}",
		"{\"jsonrpc\":2.0,\"method\":\"echo\",\"id\":14}",
		"{\"method\":\"echo\",\"id\":15,\"extra\":1}",
		"{\"method\":5,\"id\":16}",
		"{\"id\":17}",
		"{}",
		"{\"method\":\"echo\",\"id\":18,\"params\":{\"big\":1e400,\"n\":99999999999999999999}}",
		"{\"method\":\"decode\",\"id\":19,\"params\":{\"name\":\"v\",\"u64\":18446744073709551616}}",
		"{\"method\":\"echo\",\"params\":{\"k\":\"}\\\"]\"},\"id\":20}",
		"{\"method\":\"echo\"}",
		"{\"method\":\"fail\"}",
		"{\"method\":\"echo\\\"\",\"id\":21}",
		"[{\"method\":\"echo\",\"id\":22},{\"method\":\"echo\",\"id\":\"x\"}]",
		"{\"method\":\"echo\",\"id\":23,\"params\":{\"s\":\"\xff\"}}",
	};
	struct rpc_test_pair *f = *state;
	char *out[2];

	for (int mode = 0; mode < 2; mode++) {
		rpc_server_no_fast_path = mode == 1;
		json_buf_reset(&f->in);
		for (size_t i = 0; i < COMMON_ARRAY_SIZE(reqs) - 1; i++) {
			unsigned before = rpc_test_pair_lines(f);

			fx_send_str(f, reqs[i]);
			for (int t = 0; t < 6; t++)
				rpc_test_pair_turn(f, 1);
			(void)before;
		}
		/* The last one is invalid UTF-8: the connection is closed. */
		fx_send_str(f, reqs[COMMON_ARRAY_SIZE(reqs) - 1]);
		fx_expect_closed(f);
		out[mode] = strdup(json_buf_cstr(&f->in));
		/* A fresh connection for the second round. */
		{
			int sv[2];

			assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
			close(f->fd);
			assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
			f->fd = sv[1];
			f->peer_closed = false;
		}
	}
	rpc_server_no_fast_path = false;
	assert_string_equal(out[0], out[1]);
	assert_non_null(strstr(out[0], "\"id\":1234567890123456789,"));
	assert_non_null(strstr(out[0], "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":null}"));
	assert_non_null(strstr(out[0], "{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-19"));
	free(out[0]);
	free(out[1]);
}

static void test_server_batch(void **state)
{
	struct rpc_test_pair *f = *state;

	/* a92 shape. */
	expect_reply(f, "[{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":2}]",
		     "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" VERSION_RESULT "},"
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-19,\"message\":\"No such device\"}}]\n");
	/* Notifications leave no entry; invalid members get id null. */
	expect_reply(f, "[{\"method\":\"echo\"},{\"method\":\"echo\",\"id\":\"b\"},5]",
		     "[{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"result\":null},"
		     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid request\"}}]\n");
	/* A batch of notifications only: no reply at all. */
	fx_send_str(f, "[{\"method\":\"echo\"},{\"method\":\"echo\"}]");
	fx_expect_quiet(f, 2);
	/* An asynchronous member holds the whole batch, in member order. */
	fx_send_str(f, "[{\"method\":\"hold\",\"id\":1},{\"method\":\"echo\",\"id\":2}]");
	fx_expect_quiet(f, 2);
	assert_int_equal(n_held, 1);
	rpc_request_reply(held[--n_held], json_string("late"));
	fx_wait_lines(f, 3);
	assert_non_null(strstr(json_buf_cstr(&f->in),
			       "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"late\"},{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":null}]\n"));
}

/* Split at every byte offset of a multi-request stream: same replies. */
static void test_server_split_every_offset(void **state)
{
	static const char reqs[] =
		"{\"jsonrpc\": \"2.0\", \"method\": \"spdk_get_version\", \"id\": 1}"
		"[{\"method\":\"echo\",\"id\":2,\"params\":{\"s\":\"\\u00e9}]\"}},{\"method\":\"nope\",\"id\":3}]"
		"\n{\"method\":\"echo\"}"
		"{\"method\":\"echo\",\"id\":\"four\",\"params\":[1.5,-2e3,true,null]}";
	struct rpc_test_pair *f = *state;
	char *want;
	size_t len = strlen(reqs);

	fx_send(f, reqs, len);
	fx_wait_lines(f, 3);
	assert_int_equal(rpc_test_pair_lines(f), 3);
	want = strdup(json_buf_cstr(&f->in));
	for (size_t cut = 1; cut < len; cut++) {
		json_buf_reset(&f->in);
		fx_send(f, reqs, cut);
		rpc_test_pair_turn(f, 0);
		rpc_test_pair_turn(f, 0);
		fx_send(f, reqs + cut, len - cut);
		fx_wait_lines(f, 3);
		if (strcmp(json_buf_cstr(&f->in), want))
			fail_msg("cut at %zu:\n%s\nwant\n%s", cut, f->in.data, want);
	}
	/* And one byte per loop turn. */
	json_buf_reset(&f->in);
	for (size_t i = 0; i < len; i++) {
		fx_send(f, reqs + i, 1);
		rpc_test_pair_turn(f, 0);
	}
	fx_wait_lines(f, 3);
	assert_string_equal(json_buf_cstr(&f->in), want);
	free(want);
}

/* Responses go out in request order even when completions do not. */
static void test_server_order(void **state)
{
	struct rpc_test_pair *f = *state;
	const char *out;

	fx_send_str(f, "{\"method\":\"hold\",\"id\":1}{\"method\":\"hold\",\"id\":2}"
		       "{\"method\":\"echo\",\"id\":3}{\"method\":\"hold\",\"id\":4}");
	fx_expect_quiet(f, 0);
	assert_int_equal(n_held, 3);
	rpc_request_reply(held[2], json_integer(4)); /* id 4 first: nothing yet */
	fx_expect_quiet(f, 0);
	rpc_request_reply(held[1], json_integer(2)); /* id 2: still waiting for 1 */
	fx_expect_quiet(f, 0);
	rpc_request_error(held[0], -1, "Operation not permitted");
	n_held = 0;
	out = fx_wait_lines(f, 4);
	assert_string_equal(out,
			    "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"Operation not permitted\"}}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":2}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":null}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":4}\n");
}

/* 5,000 pipelined requests in one write: all answered, in order. */
static void test_server_pipelined(void **state)
{
	struct rpc_test_pair *f = *state;
	struct json_buf b = { 0 };
	struct json_framer *fr;
	unsigned i, n = 5000;
	json_t *v;

	for (i = 0; i < n; i++)
		json_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":%u}",
				i % 3 ? "echo" : "spdk_get_version", i);
	fx_send(f, b.data, b.len);
	fx_wait_lines(f, n);
	assert_int_equal(rpc_test_pair_lines(f), n);
	assert_int_equal(json_framer_create(0, &fr), 0);
	json_framer_feed(fr, f->in.data, f->in.len);
	for (i = 0; i < n; i++) {
		assert_int_equal(json_framer_next(fr, &v, NULL, NULL), 1);
		assert_int_equal(json_integer_value(json_object_get(v, "id")), i);
		json_decref(v);
	}
	json_framer_destroy(fr);
	json_buf_free(&b);
}

/* A client that writes and never reads: the server stops reading it once
 * its unsent output is large (bounded memory), and resumes when the client
 * reads; every reply arrives, in order. */
static void test_server_backpressure(void **state)
{
	struct rpc_test_pair *f = *state;
	char req[1200], pad[1024];
	unsigned sent = 0, stalls = 0;
	struct json_framer *fr;
	json_t *v;

	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	while (stalls < 50 && sent < 100000) {
		int n = snprintf(req, sizeof(req), "{\"method\":\"echo\",\"id\":%u,\"params\":[\"%s\"]}",
				 sent, pad);
		ssize_t w = write(f->fd, req, (size_t)n);

		if (w == n) {
			sent++;
			stalls = 0;
		} else {
			assert_true(w < 0 && errno == EAGAIN); /* whole small writes only */
			stalls++;
		}
		ev_loop_run_once(f->loop, 0);
	}
	/* The client's writes stalled: the server stopped reading long
	 * before 100,000 requests (about 100 MiB of replies). */
	assert_true(stalls >= 50);
	assert_true(sent < 20000);
	assert_int_equal(json_framer_create(0, &fr), 0);
	for (unsigned got = 0; got < sent;) {
		char buf[65536];
		ssize_t n;

		ev_loop_run_once(f->loop, 1);
		while ((n = read(f->fd, buf, sizeof(buf))) > 0)
			json_framer_feed(fr, buf, (size_t)n);
		while (json_framer_next(fr, &v, NULL, NULL) == 1) {
			assert_int_equal(json_integer_value(json_object_get(v, "id")), got);
			got++;
			json_decref(v);
		}
	}
	json_framer_destroy(fr);
}

static void test_server_oversize(void **state)
{
	struct rpc_test_pair *f = *state;
	char big[5000];

	rpc_server_destroy(f->s);
	assert_int_equal(rpc_server_create(f->loop, &f->s), 0);
	fx_register(f->s);
	rpc_server_set_max_request(f->s, 4096);
	{
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		close(f->fd);
		assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
		f->fd = sv[1];
	}
	/* A request before the big one is still answered (even when it
	 * completes later), then the error. */
	fx_send_str(f, "{\"method\":\"hold\",\"id\":1}");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"method\":\"echo\",\"id\":2,\"params\":\"", 34);
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '}';
	fx_send(f, big, sizeof(big));
	fx_expect_quiet(f, 0);
	assert_false(f->peer_closed);
	assert_int_equal(n_held, 1);
	rpc_request_reply(held[--n_held], json_null());
	fx_expect_closed(f);
	assert_string_equal(json_buf_cstr(&f->in),
			    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
			    "\"message\":\"Request too large (limit 4096 bytes)\"}}\n");
}

/* The client goes away with requests pending; completing them later is
 * valid, the replies are discarded, nothing leaks. */
static void test_server_disconnect_pending(void **state)
{
	struct rpc_test_pair *f = *state;

	fx_send_str(f, "{\"method\":\"hold\",\"id\":1}[{\"method\":\"hold\",\"id\":2},{\"method\":\"echo\",\"id\":3}]");
	fx_expect_quiet(f, 0);
	assert_int_equal(n_held, 2);
	close(f->fd);
	f->fd = -1;
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(f->loop, 2);
	assert_int_equal(rpc_server_connection_count(f->s), 0);
	assert_false(rpc_request_connected(held[0]));
	rpc_request_reply(held[0], json_true());
	rpc_request_error(held[1], -5, "x");
	n_held = 0;
}

/* Half-close: the client shuts down writing after its requests; SPDK
 * answers what it got, then closes. */
static void test_server_half_close(void **state)
{
	struct rpc_test_pair *f = *state;

	fx_send_str(f, "{\"method\":\"hold\",\"id\":1}{\"method\":\"echo\",\"id\":2}");
	shutdown(f->fd, SHUT_WR);
	fx_expect_quiet(f, 0);
	rpc_request_reply(held[--n_held], json_true());
	fx_expect_closed(f);
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":true}\n"
						   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":null}\n");
}

static int hook_calls;

static bool test_hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	hook_calls++;
	if (strcmp(method, "spdk_get_version") == 0) {
		rpc_request_error(req, -5, "Input/output error");
		return true;
	}
	if (strcmp(method, "echo") == 0 && params && json_object_get(params, "drop"))
		rpc_request_set_flags(req, RPC_REPLY_DROP);
	return false;
}

static void test_server_hook_and_drop(void **state)
{
	struct rpc_test_pair *f = *state;

	rpc_server_set_hook(f->s, test_hook, NULL);
	expect_reply(f, "{\"method\":\"spdk_get_version\",\"id\":1}",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-5,\"message\":\"Input/output error\"}}\n");
	/* Dropped reply: the handler ran, nothing is sent, later ones flow. */
	fx_send_str(f, "{\"method\":\"echo\",\"id\":2,\"params\":{\"drop\":1}}");
	expect_reply(f, "{\"method\":\"echo\",\"id\":3}", "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":null}\n");
	assert_int_equal(hook_calls, 3);
	assert_int_equal(rpc_test_pair_lines(f), 2);
	rpc_server_set_hook(f->s, NULL, NULL);
}

/* RPC_REPLY_EXIT in a child process: the reply is written, then exit 1. */
static char mark_path[64];

static bool exit_hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	if (strcmp(method, "mark") == 0) {
		/* Leaves a trace that this request ran. */
		FILE *fp = fopen(mark_path, "w");

		if (fp)
			fclose(fp);
		rpc_request_reply_true(req);
		return true;
	}
	rpc_request_set_flags(req, RPC_REPLY_EXIT);
	return false;
}

static void test_server_exit_flag(void **state)
{
	struct rpc_test_pair *f = *state;
	pid_t pid;
	int status;

	snprintf(mark_path, sizeof(mark_path), "/tmp/de-rpc-mark-%d", (int)getpid());
	unlink(mark_path);
	rpc_server_set_hook(f->s, exit_hook, NULL);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		for (;;)
			ev_loop_run_once(f->loop, 100);
	}
	/* The second request, in the same write, must never run. */
	fx_send_str(f, "{\"method\":\"echo\",\"id\":1,\"params\":[\"bye\"]}"
		       "{\"method\":\"mark\",\"id\":2}");
	{
		uint64_t deadline = clock_mono_ms() + 5000;
		char buf[512];
		ssize_t n;

		/* (EOF never comes: this process still holds the server's end.) */
		while (rpc_test_pair_lines(f) < 1 && clock_mono_ms() < deadline) {
			struct pollfd p = { .fd = f->fd, .events = POLLIN };

			poll(&p, 1, 50);
			n = read(f->fd, buf, sizeof(buf));
			if (n > 0)
				json_buf_append(&f->in, buf, (size_t)n);
			else if (n == 0)
				f->peer_closed = true;
		}
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	{
		char buf[512];
		ssize_t n;

		usleep(50000);
		while ((n = read(f->fd, buf, sizeof(buf))) > 0)
			json_buf_append(&f->in, buf, (size_t)n);
	}
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[\"bye\"]}\n");
	assert_int_equal(access(mark_path, F_OK), -1);
	rpc_server_set_hook(f->s, NULL, NULL);
}

struct local_result {
	int calls;
	int code;
	char *text;
};

static void local_cb(void *arg, json_t *result, int code, const char *message)
{
	struct local_result *r = arg;

	r->calls++;
	r->code = code;
	r->text = result ? json_encode_dup(result) : mem_strdup(message);
}

static void test_server_call_local(void **state)
{
	struct rpc_test_pair *f = *state;
	struct local_result r = { 0 };
	json_t *p = json_pack("{s:s}", "name", "lvs0");

	assert_int_equal(rpc_server_call_local(f->s, "decode", p, local_cb, &r), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.text, "\"lvs0\"");
	mem_free(r.text);
	assert_int_equal(rpc_server_call_local(f->s, "nope", NULL, local_cb, &r), 0);
	assert_int_equal(r.code, RPC_ERROR_METHOD_NOT_FOUND);
	mem_free(r.text);
	assert_int_equal(rpc_server_call_local(f->s, "spdk_get_version", p, local_cb, &r), 0);
	assert_int_equal(r.code, RPC_ERROR_INVALID_PARAMS);
	mem_free(r.text);
	assert_int_equal(rpc_server_call_local(f->s, "raw", NULL, local_cb, &r), 0);
	assert_string_equal(r.text, "[{\"name\":\"x\"},1]");
	mem_free(r.text);
	assert_int_equal(rpc_server_call_local(f->s, "hold", NULL, local_cb, &r), 0);
	assert_int_equal(r.calls, 4);
	rpc_request_errno(held[--n_held], -ENOSPC);
	assert_int_equal(r.calls, 5);
	assert_int_equal(r.code, -ENOSPC);
	assert_string_equal(r.text, "No space left on device");
	mem_free(r.text);
	json_decref(p);
}

/* Allocation failures at every point of a request's life: no crash, no leak. */
static void test_server_alloc_faults(void **state)
{
	struct rpc_test_pair *f = *state;

	for (long k = 0; k < 60; k++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		close(f->fd);
		f->fd = sv[1];
		f->peer_closed = false;
		mem_fault_set(k);
		if (rpc_server_adopt_fd(f->s, sv[0]) != 0) {
			close(sv[0]);
			mem_fault_clear();
			continue;
		}
		fx_send_str(f, "[{\"method\":\"echo\",\"id\":1,\"params\":{\"a\":\"b\"}},{\"method\":\"fail\",\"id\":2}]"
			       "{\"method\":\"hold\",\"id\":3}{\"method\":\"echo\",\"id\":4}");
		for (int i = 0; i < 4; i++)
			rpc_test_pair_turn(f, 1);
		mem_fault_clear();
		while (n_held > 0)
			rpc_request_reply(held[--n_held], json_true());
		for (int i = 0; i < 4; i++)
			rpc_test_pair_turn(f, 1);
	}
	mem_fault_clear();
}

static void test_server_many_connections(void **state)
{
	struct rpc_test_pair *f = *state;
	enum { N = 300 };
	int fds[N];

	for (int i = 0; i < N; i++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
		fds[i] = sv[1];
		char req[64];
		int n = snprintf(req, sizeof(req), "{\"method\":\"echo\",\"id\":%d}", i);

		assert_int_equal(write(fds[i], req, (size_t)n), n);
	}
	assert_int_equal(rpc_server_connection_count(f->s), N + 1);
	for (int i = 0; i < 20; i++)
		ev_loop_run_once(f->loop, 5);
	for (int i = 0; i < N; i++) {
		char buf[128], want[128];
		ssize_t n = read(fds[i], buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = '\0';
		snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":null}\n", i);
		assert_string_equal(buf, want);
		close(fds[i]);
	}
	for (int i = 0; i < 20; i++)
		ev_loop_run_once(f->loop, 1);
	assert_int_equal(rpc_server_connection_count(f->s), 1);
}

/* ================================================ client + real socket */

static void m_slow(struct rpc_request *req, json_t *params, void *ctx);

static void srv_methods(struct rpc_test_srv *t)
{
	fx_register(t->s);
	assert_int_equal(rpc_server_register(t->s, "slow", m_slow, NULL, 0), 0);
}

static void srv_after(struct rpc_test_srv *t)
{
	while (n_held > 0)
		rpc_request_reply(held[--n_held], json_true());
	/* let timers of "slow" fire */
	for (int i = 0; i < 30; i++)
		ev_loop_run_once(t->loop, 20);
}

static void slow_done(struct ev_loop *loop, struct ev_timer *timer, void *arg)
{
	rpc_request_reply(arg, json_string("slow"));
}

/* Replies after 300 ms. */
static void m_slow(struct rpc_request *req, json_t *params, void *ctx)
{
	ev_timer_start(rpc_server_loop(rpc_request_server(req)), 300, 0, slow_done, req, NULL);
}

static int srv_setup(void **state)
{
	struct rpc_test_srv *t = calloc(1, sizeof(*t));

	n_held = 0;
	t->setup = srv_methods;
	t->after = srv_after;
	rpc_test_srv_start(t, "rpc-test");
	*state = t;
	return 0;
}

static int srv_teardown(void **state)
{
	struct rpc_test_srv *t = *state;

	rpc_test_srv_stop(t);
	assert_int_equal(access(t->path, F_OK), -1); /* socket file removed */
	free(t);
	return 0;
}

static void test_client_calls(void **state)
{
	struct rpc_test_srv *t = *state;
	struct rpc_client *c;
	struct rpc_error err;
	json_t *res;

	assert_int_equal(rpc_client_connect(t->path, 1000, &c), 0);
	assert_int_equal(rpc_client_call(c, "spdk_get_version", NULL, 2000, &res, &err), 0);
	assert_string_equal(json_string_value(json_object_get(res, "version")), "SPDK v26.09-pre");
	json_decref(res);
	/* Error reply: code and message to the caller. */
	assert_int_equal(rpc_client_call(c, "fail", NULL, 2000, &res, &err), -EREMOTE);
	assert_null(res);
	assert_int_equal(err.code, -19);
	assert_string_equal(err.message, "No such device");
	assert_int_equal(rpc_client_call(c, "nope", json_object(), 2000, &res, &err), -EREMOTE);
	assert_int_equal(err.code, -32601);
	assert_string_equal(err.message, "Method not found");
	assert_int_equal(rpc_client_call(c, "decode", json_pack("{s:s,s:i}", "name", "v", "u8", 300),
					 2000, &res, &err), -EREMOTE);
	assert_int_equal(err.code, -32603);
	assert_string_equal(err.message, "spdk_json_decode_object failed");
	/* Params are sent and the result returned; NULL result discards. */
	assert_int_equal(rpc_client_call(c, "echo", json_pack("{s:[i,s]}", "k", 1, "\xc3\xa9"),
					 2000, &res, &err), 0);
	{
		char *s = json_encode_dup(res);

		assert_string_equal(s, "{\"k\":[1,\"\\u00E9\"]}");
		mem_free(s);
	}
	json_decref(res);
	assert_int_equal(rpc_client_call(c, "echo", NULL, 2000, NULL, NULL), 0);
	assert_true(rpc_client_connected(c));
	rpc_client_destroy(c);
}

static void test_client_timeout_unknown(void **state)
{
	struct rpc_test_srv *t = *state;
	struct rpc_client *c;
	struct rpc_error err;
	json_t *res = (json_t *)1;
	uint64_t t0;

	assert_int_equal(rpc_client_connect(t->path, 1000, &c), 0);
	t0 = clock_mono_ms();
	assert_int_equal(rpc_client_call(c, "slow", NULL, 100, &res, &err), -ETIMEDOUT);
	assert_true(clock_mono_ms() - t0 >= 100);
	assert_true(clock_mono_ms() - t0 < 1000);
	assert_null(res);
	/* The connection is gone: the late reply cannot be mistaken. */
	assert_false(rpc_client_connected(c));
	assert_int_equal(rpc_client_call(c, "echo", NULL, 1000, &res, &err), -ENOTCONN);
	rpc_client_destroy(c);
	/* A new connection works; the late reply went nowhere. */
	assert_int_equal(rpc_client_connect(t->path, 1000, &c), 0);
	assert_int_equal(rpc_client_call(c, "slow", NULL, 2000, &res, &err), 0);
	assert_string_equal(json_string_value(res), "slow");
	json_decref(res);
	rpc_client_destroy(c);
}

static void test_client_pipelining(void **state)
{
	struct rpc_test_srv *t = *state;
	struct rpc_client *c;
	struct rpc_error err;
	uint64_t id, first = 0;
	json_t *res;
	int i, n = 2000;

	assert_int_equal(rpc_client_connect(t->path, 1000, &c), 0);
	assert_int_equal(rpc_client_recv(c, 10, &id, &res, &err), -EAGAIN);
	for (i = 0; i < n; i++) {
		assert_int_equal(rpc_client_send(c, i % 7 ? "echo" : "fail",
						 json_pack("[i]", i), &id), 0);
		if (i == 0)
			first = id;
		else
			assert_true(id == first + (uint64_t)i);
	}
	assert_int_equal(rpc_client_outstanding(c), n);
	/* A plain call is refused while pipelined replies are pending. */
	assert_int_equal(rpc_client_call(c, "echo", NULL, 1000, &res, &err), -EBUSY);
	for (i = 0; i < n; i++) {
		int rc = rpc_client_recv(c, 2000, &id, &res, &err);

		assert_true(id == first + (uint64_t)i);
		if (i % 7) {
			assert_int_equal(rc, 0);
			assert_int_equal(json_integer_value(json_array_get(res, 0)), i);
			json_decref(res);
		} else {
			assert_int_equal(rc, -EREMOTE);
			assert_int_equal(err.code, -19);
		}
	}
	assert_int_equal(rpc_client_outstanding(c), 0);
	assert_int_equal(rpc_client_call(c, "echo", NULL, 1000, NULL, &err), 0);
	rpc_client_destroy(c);
}

/* Allocation failures anywhere in a client call (and, since the fault is
 * process-wide, in the server thread too): errors, never a crash or leak;
 * afterwards everything works again. */
static void test_client_alloc_faults(void **state)
{
	struct rpc_test_srv *t = *state;
	struct rpc_client *c;
	struct rpc_error err;
	json_t *res;

	for (long k = 0; k < 30; k++) {
		json_t *params = json_pack("{s:[i,s]}", "k", 1, "v");

		mem_fault_set(k);
		if (rpc_client_connect(t->path, 1000, &c) == 0) {
			int rc = rpc_client_call(c, "echo", params, 300, &res, &err);

			params = NULL;
			if (rc == 0)
				json_decref(res);
			rpc_client_destroy(c);
		}
		mem_fault_clear();
		json_decref(params);
	}
	assert_int_equal(rpc_client_connect(t->path, 1000, &c), 0);
	assert_int_equal(rpc_client_call(c, "echo", json_pack("[i]", 5), 2000, &res, &err), 0);
	assert_int_equal(json_integer_value(json_array_get(res, 0)), 5);
	json_decref(res);
	rpc_client_destroy(c);
}

static void test_client_connect_errors(void **state)
{
	struct rpc_client *c = NULL;
	char path[108];
	int fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_int_equal(rpc_client_connect("/tmp/de-rpc-no-such.sock", 100, &c), -ENOENT);
	/* A socket file nobody listens on. */
	snprintf(path, sizeof(path), "/tmp/de-rpc-dead-%d.sock", (int)getpid());
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(rpc_client_connect(path, 100, &c), -ECONNREFUSED);
	unlink(path);
	{
		char longp[200];

		memset(longp, 'x', sizeof(longp) - 1);
		longp[sizeof(longp) - 1] = '\0';
		assert_int_equal(rpc_client_connect(longp, 100, &c), -ENAMETOOLONG);
	}
}

/* A fake server: accepts one connection, reads one request, then does
 * `mode`: 0 close, 1 send garbage, 2 reply with a wrong id. */
struct fake {
	pthread_t th;
	int lfd;
	int mode;
	char path[108];
};

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	int cfd = accept(fk->lfd, NULL, NULL);
	char buf[4096];

	if (cfd < 0)
		return NULL;
	(void)!read(cfd, buf, sizeof(buf));
	if (fk->mode == 1)
		(void)!write(cfd, "}{", 2);
	else if (fk->mode == 2)
		(void)!write(cfd, "{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":1}\n", 38);
	close(cfd);
	return NULL;
}

static int fake_call(int mode, struct rpc_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake fk = { .mode = mode };
	struct rpc_client *c;
	json_t *res;
	int rc;

	snprintf(fk.path, sizeof(fk.path), "/tmp/de-rpc-fake-%d.sock", (int)getpid());
	unlink(fk.path);
	fk.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, fk.path);
	assert_int_equal(bind(fk.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fk.lfd, 4), 0);
	pthread_create(&fk.th, NULL, fake_main, &fk);
	assert_int_equal(rpc_client_connect(fk.path, 1000, &c), 0);
	rc = rpc_client_call(c, "spdk_get_version", NULL, 3000, &res, err);
	assert_false(rpc_client_connected(c));
	assert_int_equal(rpc_client_call(c, "spdk_get_version", NULL, 3000, &res, err), -ENOTCONN);
	rpc_client_destroy(c);
	pthread_join(fk.th, NULL);
	close(fk.lfd);
	unlink(fk.path);
	return rc;
}

static void test_client_server_closes_mid_call(void **state)
{
	struct rpc_error err;

	assert_int_equal(fake_call(0, &err), -ECONNRESET);
	assert_int_equal(fake_call(1, &err), -EPROTO);
	assert_int_equal(fake_call(2, &err), -EPROTO);
}

/* Replies in other shapes than disktgt's (spaces, key order, string codes)
 * still decode; a reply for the wrong id is a protocol error. */
static void test_client_reply_shapes(void **state)
{
	static const char replies[] =
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":[1,2]}}\n"
		"{ \"result\": true, \"id\": 2, \"jsonrpc\": \"2.0\" }"
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"Invalid parameters\",\"data\":1}}"
		"{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":null}"
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":1}";
	struct rpc_client *c;
	struct rpc_error err;
	json_t *res;
	uint64_t id;
	int sv[2];
	char sink[4096];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(rpc_client_adopt_fd(sv[0], &c), 0);
	rpc_client_cork(c);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rpc_client_send(c, "m", NULL, NULL), 0);
	assert_false(rpc_client_ready(c));
	assert_int_equal(rpc_client_uncork(c), 0);
	assert_true(read(sv[1], sink, sizeof(sink)) > 0);
	assert_int_equal(write(sv[1], replies, sizeof(replies) - 1), (ssize_t)sizeof(replies) - 1);
	assert_int_equal(rpc_client_recv(c, 1000, &id, &res, &err), 0);
	assert_int_equal(id, 1);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(res, "a"), 1)), 2);
	json_decref(res);
	assert_true(rpc_client_ready(c));
	assert_int_equal(rpc_client_recv(c, 1000, &id, &res, &err), 0);
	assert_int_equal(id, 2);
	assert_true(json_is_true(res));
	assert_int_equal(rpc_client_recv(c, 1000, &id, &res, &err), -EREMOTE);
	assert_int_equal(err.code, -32602);
	assert_string_equal(err.message, "Invalid parameters");
	assert_int_equal(rpc_client_recv(c, 1000, &id, &res, &err), 0);
	assert_true(json_is_null(res));
	assert_int_equal(rpc_client_recv(c, 1000, &id, &res, &err), -EPROTO);
	assert_false(rpc_client_connected(c));
	rpc_client_destroy(c);
	close(sv[1]);
}

/* The server's socket: stale file replaced, a live one refused, mode 0600. */
static void test_server_listen_rules(void **state)
{
	struct rpc_test_srv *t = *state;
	struct ev_loop *loop;
	struct rpc_server *s;
	char path[108];
	struct stat st;
	int fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ev_loop_create(&loop), 0);
	assert_int_equal(rpc_server_create(loop, &s), 0);
	assert_int_equal(rpc_server_listen(s, t->path, 0600), -EADDRINUSE);
	snprintf(path, sizeof(path), "/tmp/de-rpc-stale-%d.sock", (int)getpid());
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(rpc_server_listen(s, path, 0660), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	rpc_server_destroy(s);
	assert_int_equal(access(path, F_OK), -1);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_ok),
		cmocka_unit_test(test_params_fail),
		cmocka_unit_test(test_params_absent),
		cmocka_unit_test_setup_teardown(test_server_golden, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_invalid_json_closes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_notifications, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_invalid_requests, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_fast_path_equivalence, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_batch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_split_every_offset, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_pipelined, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_backpressure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_oversize, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_disconnect_pending, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_half_close, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_hook_and_drop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_exit_flag, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_call_local, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_alloc_faults, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_many_connections, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_client_calls, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_timeout_unknown, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_pipelining, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_alloc_faults, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_listen_rules, srv_setup, srv_teardown),
		cmocka_unit_test(test_client_connect_errors),
		cmocka_unit_test(test_client_reply_shapes),
		cmocka_unit_test(test_client_server_closes_mid_call),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
