/* test_json.c: unit tests for src/json: stream framing (splits at every
 * offset, many values per read, bad JSON, oversize input, O(n) feeding) and
 * SPDK-style encoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/common.h"
#include "json/json.h"

/* A multi-request stream like rpc.py/SPDK clients send: pretty-printed,
 * compact, a batch, a notification, strings with escapes and unicode. */
static const char stream[] =
	"{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"spdk_get_version\",\n  \"id\": 1\n}"
	"{\"jsonrpc\":\"2.0\",\"method\":\"bdev_lvol_create\",\"id\":\"x\\\"y\","
	"\"params\":{\"lvol_name\":\"a/b \\u00e9\\n\",\"size_in_mib\":-1.5e+3,\"t\":true,"
	"\"f\":false,\"n\":null,\"l\":[1,[2,{}],[]]}}"
	"  \r\n\t"
	"[{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"b\"}]"
	"{\"method\":\"c\",\"id\":0}";
#define STREAM_VALUES 4

/* Feeds `data` cut at the given offsets, collecting every complete value as
 * compact text into out[] (caller frees). Returns the count or -errno. */
static int frame_all(const char *data, size_t len, const size_t *cuts, size_t ncuts, char **out,
		     int max)
{
	struct json_framer *f;
	size_t pos = 0, i;
	int n = 0, rc;

	assert_int_equal(json_framer_create(0, &f), 0);
	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		assert_int_equal(json_framer_feed(f, data + pos, end - pos), 0);
		pos = end;
		for (;;) {
			json_t *v;

			rc = json_framer_next(f, &v, NULL, NULL);
			if (rc < 0) {
				json_framer_destroy(f);
				return rc;
			}
			if (rc == 0)
				break;
			assert_true(n < max);
			out[n++] = json_encode_dup(v);
			json_decref(v);
		}
	}
	json_framer_destroy(f);
	return n;
}

static void free_all(char **v, int n)
{
	for (int i = 0; i < n; i++)
		mem_free(v[i]);
}

static void test_framer_whole_stream(void **state)
{
	char *v[8];
	int n = frame_all(stream, strlen(stream), NULL, 0, v, 8);

	assert_int_equal(n, STREAM_VALUES);
	assert_string_equal(v[0], "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1}");
	assert_non_null(strstr(v[1], "\"a/b \\u00E9\\n\""));
	assert_non_null(strstr(v[1], "\"l\":[1,[2,{}],[]]"));
	assert_true(v[2][0] == '[');
	assert_string_equal(v[3], "{\"method\":\"c\",\"id\":0}");
	free_all(v, n);
}

/* The same values come out whatever the split: every single cut offset,
 * and byte-by-byte. */
static void test_framer_split_every_offset(void **state)
{
	size_t len = strlen(stream), cut;
	char *ref[8], *v[8];
	int nref = frame_all(stream, len, NULL, 0, ref, 8);

	assert_int_equal(nref, STREAM_VALUES);
	for (cut = 0; cut <= len; cut++) {
		int n = frame_all(stream, len, &cut, 1, v, 8);

		assert_int_equal(n, nref);
		for (int i = 0; i < n; i++)
			assert_string_equal(v[i], ref[i]);
		free_all(v, n);
	}
	{
		size_t *cuts = malloc(len * sizeof(*cuts));
		int n;

		for (cut = 0; cut < len; cut++)
			cuts[cut] = cut;
		n = frame_all(stream, len, cuts, len, v, 8);
		assert_int_equal(n, nref);
		for (int i = 0; i < n; i++)
			assert_string_equal(v[i], ref[i]);
		free_all(v, n);
		free(cuts);
	}
	/* Two cuts at every pair of offsets in a shorter stream. */
	{
		const char *s2 = "{\"a\":[1,2.5e-3,\"\\ud83d\\ude00\"]}[true]\"s\"";
		size_t l2 = strlen(s2), c[2];
		char *r2[4];
		int n2 = frame_all(s2, l2, NULL, 0, r2, 4);

		assert_int_equal(n2, 3);
		for (c[0] = 0; c[0] <= l2; c[0]++) {
			for (c[1] = c[0]; c[1] <= l2; c[1]++) {
				int n = frame_all(s2, l2, c, 2, v, 8);

				assert_int_equal(n, n2);
				for (int i = 0; i < n; i++)
					assert_string_equal(v[i], r2[i]);
				free_all(v, n);
			}
		}
		free_all(r2, n2);
	}
	free_all(ref, nref);
}

static int frame_one(const char *s, size_t max, json_t **out)
{
	struct json_framer *f;
	int rc;

	assert_int_equal(json_framer_create(max, &f), 0);
	assert_int_equal(json_framer_feed(f, s, strlen(s)), 0);
	rc = json_framer_next(f, out, NULL, NULL);
	json_framer_destroy(f);
	return rc;
}

static void test_framer_incomplete(void **state)
{
	static const char *incomplete[] = {
		"", "   \n", "{", "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1",
		"[1,2", "\"abc", "\"a\\", "\"\\u12", "tru", "nul", "-", "12", "1.5", "1e5", "{\"a\"",
		"{\"a\":", "[{\"a\":[", "{\"a\":1,",
	};
	json_t *v;

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(incomplete); i++) {
		int rc = frame_one(incomplete[i], 0, &v);

		if (rc != 0)
			fail_msg("'%s' gave %d, expected incomplete", incomplete[i], rc);
		assert_null(v);
	}
}

static void test_framer_invalid(void **state)
{
	static const char *bad[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":spdk_get_version,\"id\":1}", /* a88 */
		"}", "]", "{]", "[}", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "[,1]", "{,}", "{1:2}",
		"\"a\nb\"", "\"\\x\"", "\"\\u12g4\"", "-a", "1.e5", "[1.]", "01x", "truex", "nulL",
		"{\"a\":01}", "[1 2]", "{\"a\":1 \"b\":2}", "@", "\"\xff\"", "\"\\u0000\"",
	};
	json_t *v;

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(bad); i++) {
		struct json_framer *f;
		int rc;

		assert_int_equal(json_framer_create(0, &f), 0);
		assert_int_equal(json_framer_feed(f, bad[i], strlen(bad[i])), 0);
		/* "01x": a 0 first, then invalid. */
		do {
			rc = json_framer_next(f, &v, NULL, NULL);
			json_decref(v);
		} while (rc == 1);
		if (rc != -EINVAL)
			fail_msg("'%s' gave %d, expected -EINVAL", bad[i], rc);
		/* Sticky. */
		assert_int_equal(json_framer_feed(f, "{}", 2), 0);
		assert_int_equal(json_framer_next(f, &v, NULL, NULL), -EINVAL);
		assert_int_equal(json_framer_error(f), -EINVAL);
		json_framer_destroy(f);
	}
}

/* Integers beyond 64 bits do not break the stream (SPDK's parser takes
 * them); they come out as reals, every other integer stays an integer. */
static void test_framer_big_integers(void **state)
{
	json_t *v;
	char *s;

	assert_int_equal(frame_one("{\"id\":7,\"params\":{\"size\":99999999999999999999,"
				   "\"l\":[1,-2,18446744073709551616,2.5,3.0]}}", 0, &v), 1);
	s = json_encode_dup(v);
	assert_string_equal(s, "{\"id\":7,\"params\":{\"size\":1e+20,"
			       "\"l\":[1,-2,1.8446744073709552e+19,2.5,3]}}");
	mem_free(s);
	assert_true(json_is_integer(json_object_get(v, "id")));
	json_decref(v);
	/* Beyond double range too: such numbers read as 1.5 (no integer field
	 * takes them); strings that look like numbers are left alone. */
	assert_int_equal(frame_one("{\"a\":1e400,\"b\":\"1e400 \\\" 1e999\",\"c\":[-1E999,2,0.5]}", 0, &v), 1);
	s = json_encode_dup(v);
	assert_string_equal(s, "{\"a\":1.5,\"b\":\"1e400 \\\" 1e999\",\"c\":[1.5,2,0.5]}");
	mem_free(s);
	json_decref(v);
}

static void test_framer_depth_limit(void **state)
{
	size_t n = JSON_FRAME_MAX_DEPTH;
	char *s = malloc(2 * n + 3);
	json_t *v;

	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';
	assert_int_equal(frame_one(s, 0, &v), 1);
	json_decref(v);
	memset(s, '[', n + 1);
	memset(s + n + 1, ']', n + 1);
	s[2 * n + 2] = '\0';
	assert_int_equal(frame_one(s, 0, &v), -EINVAL);
	free(s);
}

static void test_framer_scalars_and_raw(void **state)
{
	struct json_framer *f;
	const char *raw;
	size_t raw_len;
	json_t *v;

	assert_int_equal(json_framer_create(0, &f), 0);
	assert_int_equal(json_framer_feed(f, " 42 \"s\"true null -0.5e1[]", strlen(" 42 \"s\"true null -0.5e1[]")), 0);
	assert_int_equal(json_framer_next(f, &v, &raw, &raw_len), 1);
	assert_int_equal(json_integer_value(v), 42);
	assert_int_equal(raw_len, 2);
	assert_memory_equal(raw, "42", 2);
	json_decref(v);
	assert_int_equal(json_framer_next(f, &v, &raw, &raw_len), 1);
	assert_string_equal(json_string_value(v), "s");
	assert_int_equal(raw_len, 3);
	json_decref(v);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_true(json_is_true(v));
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_true(json_is_null(v));
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_true(json_real_value(v) == -5.0);
	json_decref(v);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_true(json_is_array(v));
	json_decref(v);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 0);
	assert_int_equal(json_framer_pending(f), 0);
	json_framer_destroy(f);
}

static void test_framer_oversize(void **state)
{
	struct json_framer *f;
	char big[300];
	json_t *v;

	/* A complete value over the limit. */
	memset(big, 'a', sizeof(big));
	big[0] = '"';
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(frame_one(big, 100, &v), -EMSGSIZE);
	/* A value still arriving, already over the limit: refused early. */
	assert_int_equal(json_framer_create(100, &f), 0);
	assert_int_equal(json_framer_feed(f, big, 150), 0);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), -EMSGSIZE);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), -EMSGSIZE);
	json_framer_destroy(f);
	/* Exactly at the limit is fine; whitespace does not count. */
	assert_int_equal(json_framer_create(100, &f), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(json_framer_feed(f, "   \n", 4), 0);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 0);
	memset(big, ' ', sizeof(big));
	big[0] = '"';
	big[99] = '"';
	assert_int_equal(json_framer_feed(f, big, 100), 0);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	json_decref(v);
	json_framer_destroy(f);
}

/* 8 MiB value fed 16 bytes at a time, then 20,000 small values fed in one
 * piece: must be linear (a reparse per read would take minutes). */
static void test_framer_linear(void **state)
{
	size_t n = 8u << 20, i;
	char *s = malloc(n);
	struct json_framer *f;
	uint64_t t0 = clock_mono_ms();
	json_t *v;
	int count = 0;

	s[0] = '[';
	for (i = 1; i + 3 < n; i += 2) {
		s[i] = '1';
		s[i + 1] = ',';
	}
	s[i++] = '1';
	while (i < n - 1)
		s[i++] = ' ';
	s[n - 1] = ']';
	assert_int_equal(json_framer_create(16u << 20, &f), 0);
	for (i = 0; i < n; i += 16) {
		assert_int_equal(json_framer_feed(f, s + i, COMMON_MIN(16, n - i)), 0);
		if (i + 16 < n)
			assert_int_equal(json_framer_next(f, &v, NULL, NULL), 0);
	}
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_true(json_array_size(v) > 4000000);
	json_decref(v);
	json_framer_destroy(f);
	free(s);

	{
		struct json_buf b = { 0 };

		for (i = 0; i < 20000; i++)
			json_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":%zu}", i);
		assert_int_equal(json_framer_create(0, &f), 0);
		assert_int_equal(json_framer_feed(f, b.data, b.len), 0);
		while (json_framer_next(f, &v, NULL, NULL) == 1) {
			assert_int_equal(json_integer_value(json_object_get(v, "id")), count);
			count++;
			json_decref(v);
		}
		assert_int_equal(count, 20000);
		json_framer_destroy(f);
		json_buf_free(&b);
	}
	assert_true(clock_mono_ms() - t0 < 30000);
}

static void test_framer_space_commit(void **state)
{
	struct json_framer *f;
	json_t *v;
	char *p;

	assert_int_equal(json_framer_create(0, &f), 0);
	p = json_framer_space(f, 65536);
	assert_non_null(p);
	memcpy(p, "{\"a\":1}{\"b\"", 11);
	json_framer_commit(f, 11);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	json_decref(v);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 0);
	p = json_framer_space(f, 10);
	memcpy(p, ":2}", 3);
	json_framer_commit(f, 3);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	assert_int_equal(json_integer_value(json_object_get(v, "b")), 2);
	json_decref(v);
	json_framer_destroy(f);
}

static void test_framer_next_raw(void **state)
{
	struct json_framer *f;
	const char *raw;
	size_t len;
	json_t *v;

	assert_int_equal(json_framer_create(0, &f), 0);
	assert_int_equal(json_framer_feed(f, " {\"a\": [1, \"}\"]}\n[2", 19), 0);
	assert_int_equal(json_framer_next_raw(f, &raw, &len), 1);
	assert_int_equal(len, 15);
	assert_memory_equal(raw, "{\"a\": [1, \"}\"]}", 15);
	assert_int_equal(json_framer_next_raw(f, &raw, &len), 0);
	assert_int_equal(json_framer_feed(f, "]x", 2), 0);
	assert_int_equal(json_framer_next(f, &v, NULL, NULL), 1);
	json_decref(v);
	assert_int_equal(json_framer_next_raw(f, &raw, &len), -EINVAL);
	json_framer_destroy(f);
}

static void test_framer_alloc_failure(void **state)
{
	/* Every allocation point fails once in turn; no crash, no leak. */
	for (long k = 0; k < 10; k++) {
		struct json_framer *f = NULL;
		json_t *v = NULL;

		mem_fault_set(k);
		if (json_framer_create(0, &f) == 0) {
			if (json_framer_feed(f, "{\"a\":[1,2]}", 11) == 0 &&
			    json_framer_next(f, &v, NULL, NULL) == 1)
				json_decref(v);
			json_framer_destroy(f);
		}
		mem_fault_clear();
	}
}

/* ------------------------------------------------------------ encode */

static void check_encode(json_t *v, const char *want)
{
	char *s = json_encode_dup(v);

	assert_non_null(s);
	assert_string_equal(s, want);
	mem_free(s);
	json_decref(v);
}

static void test_encode_spdk_escaping(void **state)
{
	check_encode(json_string("a/b"), "\"a/b\"");
	check_encode(json_string("q\"b\\s\b\f\n\r\t"), "\"q\\\"b\\\\s\\b\\f\\n\\r\\t\"");
	check_encode(json_string("\x01\x1f\x7f"), "\"\\u0001\\u001F\\u007F\"");
	check_encode(json_string("\xc3\xa9"), "\"\\u00E9\"");            /* é */
	check_encode(json_string("\xe2\x82\xac"), "\"\\u20AC\"");         /* € */
	check_encode(json_string("\xf0\x9f\x98\x80"), "\"\\uD83D\\uDE00\""); /* U+1F600 */
	{
		struct json_buf b = { 0 };

		/* Invalid UTF-8 bytes are escaped one by one. */
		assert_int_equal(json_encode_string(&b, "a\xff\xc3", 3), 0);
		assert_int_equal(b.len, strlen("\"a\\u00FF\\u00C3\""));
		assert_memory_equal(b.data, "\"a\\u00FF\\u00C3\"", b.len);
		json_buf_free(&b);
	}
}

static void test_encode_values(void **state)
{
	json_t *o = json_object();

	json_object_set_new(o, "z", json_integer(1));
	json_object_set_new(o, "a", json_integer(-2));
	json_object_set_new(o, "m", json_pack("[n,b,b,f,f,s]", 1, 0, 1.5, 16.0, ""));
	json_object_set_new(o, "big", json_integer(137271181312));
	check_encode(o, "{\"z\":1,\"a\":-2,\"m\":[null,true,false,1.5,16.0,\"\"],\"big\":137271181312}");
	check_encode(json_object(), "{}");
	check_encode(json_array(), "[]");
	check_encode(json_real(0.1), "0.1");
	check_encode(json_real(1e300), "1e+300");
}

static void test_encode_rpc(void **state)
{
	struct json_buf b = { 0 };
	json_t *id = json_integer(7), *sid = json_string("abc");
	json_t *params = json_pack("{s:s}", "name", "Malloc0");

	assert_int_equal(json_encode_rpc_result(&b, id, json_true()), 0);
	assert_string_equal(json_buf_cstr(&b), "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":true}");
	json_buf_reset(&b);
	assert_int_equal(json_encode_rpc_error(&b, sid, -32601, "Method not found"), 0);
	assert_string_equal(json_buf_cstr(&b),
			    "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"error\":{\"code\":-32601,"
			    "\"message\":\"Method not found\"}}");
	json_buf_reset(&b);
	assert_int_equal(json_encode_rpc_error(&b, NULL, -19, "No such device"), 0);
	assert_string_equal(json_buf_cstr(&b),
			    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-19,"
			    "\"message\":\"No such device\"}}");
	json_buf_reset(&b);
	assert_int_equal(json_encode_rpc_request(&b, "bdev_get_bdevs", id, params), 0);
	assert_string_equal(json_buf_cstr(&b),
			    "{\"jsonrpc\":\"2.0\",\"method\":\"bdev_get_bdevs\",\"id\":7,"
			    "\"params\":{\"name\":\"Malloc0\"}}");
	json_buf_reset(&b);
	assert_int_equal(json_encode_rpc_request(&b, "spdk_get_version", NULL, NULL), 0);
	assert_string_equal(json_buf_cstr(&b), "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}");
	json_buf_free(&b);
	json_decref(id);
	json_decref(sid);
	json_decref(params);
}

static void test_buf(void **state)
{
	struct json_buf b = { 0 };

	assert_string_equal(json_buf_cstr(&b), "");
	assert_int_equal(json_buf_append_str(&b, "hello "), 0);
	assert_int_equal(json_buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_string_equal(json_buf_cstr(&b), "hello 42-x");
	json_buf_consume(&b, 6);
	assert_string_equal(json_buf_cstr(&b), "42-x");
	json_buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	mem_fault_set(0);
	for (int i = 0; i < 20 && json_buf_append(&b, "0123456789abcdef0123456789abcdef", 32) == 0; i++)
		;
	mem_fault_clear();
	json_buf_free(&b);
	json_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framer_whole_stream),
		cmocka_unit_test(test_framer_split_every_offset),
		cmocka_unit_test(test_framer_incomplete),
		cmocka_unit_test(test_framer_invalid),
		cmocka_unit_test(test_framer_big_integers),
		cmocka_unit_test(test_framer_depth_limit),
		cmocka_unit_test(test_framer_scalars_and_raw),
		cmocka_unit_test(test_framer_oversize),
		cmocka_unit_test(test_framer_linear),
		cmocka_unit_test(test_framer_space_commit),
		cmocka_unit_test(test_framer_next_raw),
		cmocka_unit_test(test_framer_alloc_failure),
		cmocka_unit_test(test_encode_spdk_escaping),
		cmocka_unit_test(test_encode_values),
		cmocka_unit_test(test_encode_rpc),
		cmocka_unit_test(test_buf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
