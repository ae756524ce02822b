/*
 * test_spdk_many.c: spdk_call_many (src/agent/spdk_conn.c) against a real
 * JSON-RPC server (src/rpc) on a unix socket in a thread: every reply goes to
 * its own request whatever the order the server answers in, error replies
 * are classified per request, an empty batch is a no-op; a server that stops
 * answering gives every unanswered request -ETIMEDOUT (outcome unknown) and a
 * dropped connection, and the next batch reconnects.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/spdk.h"
#include "common/common.h"
#include "rpc/rpc.h"
#include "rpc_test_srv.h"

/* The test's state beside the server (rpc_test_srv.ctx). */
struct srv {
	struct rpc_test_srv t;         /* first: the hooks get it */
	struct rpc_request *held;      /* "later": answered after the next "now" */
	json_t *held_v;
	struct rpc_request *muted[64]; /* "quiet": requests never answered */
	int n_muted;
};

/* "later" {"v": X}: held, answered with X when the next "now" comes. */
static void m_later(struct rpc_request *req, json_t *params, void *ctx)
{
	struct srv *s = ctx;

	s->held = req;
	s->held_v = json_incref(json_object_get(params, "v"));
}

/* "now" {"v": X}: answers the held request first, then itself with X. */
static void m_now(struct rpc_request *req, json_t *params, void *ctx)
{
	struct srv *s = ctx;

	if (s->held) {
		rpc_request_reply(s->held, s->held_v);
		s->held = NULL;
		s->held_v = NULL;
	}
	rpc_request_reply(req, json_incref(json_object_get(params, "v")));
}

/* "nvmf_create_subsystem": -32602 "Invalid parameters" (SPDK's "exists"). */
static void m_fail(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_error(req, -32602, "Invalid parameters");
}

static void m_quiet(struct rpc_request *req, json_t *params, void *ctx)
{
	struct srv *s = ctx;

	if (s->n_muted < 64)
		s->muted[s->n_muted++] = req;
}

static void srv_methods(struct rpc_test_srv *rt)
{
	struct srv *t = (struct srv *)rt;

	assert_int_equal(rpc_server_register(rt->s, "later", m_later, t, 0), 0);
	assert_int_equal(rpc_server_register(rt->s, "now", m_now, t, 0), 0);
	assert_int_equal(rpc_server_register(rt->s, "nvmf_create_subsystem", m_fail, t, 0), 0);
	assert_int_equal(rpc_server_register(rt->s, "quiet", m_quiet, t, 0), 0);
}

/* Requests still held are completed (and discarded) so nothing leaks. */
static void srv_after(struct rpc_test_srv *rt)
{
	struct srv *t = (struct srv *)rt;

	if (t->held) {
		json_decref(t->held_v);
		rpc_request_reply_true(t->held);
	}
	for (int i = 0; i < t->n_muted; i++)
		rpc_request_reply_true(t->muted[i]);
}

static int setup(void **state)
{
	struct srv *t = calloc(1, sizeof(*t));

	t->t.setup = srv_methods;
	t->t.after = srv_after;
	rpc_test_srv_start(&t->t, "spdk-many");
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct srv *t = *state;

	rpc_test_srv_stop(&t->t);
	free(t);
	return 0;
}

static void req_set(struct spdk_req *r, const char *method, int v)
{
	r->method = method;
	r->params = json_pack("{s:i}", "v", v);
}

static void test_replies_in_any_order(void **state)
{
	struct srv *t = *state;
	struct spdk_client *c;
	struct spdk_req r[5];

	assert_int_equal(spdk_client_create(t->t.path, 2000, &c), 0);
	/* the server answers "later" only after the following "now" */
	req_set(&r[0], "later", 10);
	req_set(&r[1], "now", 11);
	req_set(&r[2], "nvmf_create_subsystem", 12);
	req_set(&r[3], "later", 13);
	req_set(&r[4], "now", 14);
	assert_int_equal(spdk_call_many(c, r, 5), 0);
	for (int i = 0; i < 5; i++) {
		if (i == 2)
			continue;
		assert_int_equal(r[i].rc, 0);
		assert_int_equal(json_integer_value(r[i].result), 10 + i);
		json_decref(r[i].result);
	}
	/* the error reply is classified like spdk_call's */
	assert_int_equal(r[2].rc, spdk_error_classify("nvmf_create_subsystem", -32602,
						      "Invalid parameters"));
	assert_null(r[2].result);
	assert_string_equal(spdk_client_last_message(c), "Invalid parameters");
	assert_int_equal(spdk_client_calls(c), 5);
	assert_int_equal(spdk_client_connections(c), 1);
	/* nothing to send: nothing happens */
	assert_int_equal(spdk_call_many(c, r, 0), 0);
	assert_int_equal(spdk_client_calls(c), 5);
	spdk_client_destroy(c);
}

static void test_no_answer_is_outcome_unknown(void **state)
{
	struct srv *t = *state;
	struct spdk_client *c;
	struct spdk_req r[3];

	assert_int_equal(spdk_client_create(t->t.path, 300, &c), 0);
	req_set(&r[0], "now", 1);
	req_set(&r[1], "quiet", 2);
	req_set(&r[2], "quiet", 3);
	assert_int_equal(spdk_call_many(c, r, 3), -ETIMEDOUT);
	assert_int_equal(r[0].rc, 0);
	json_decref(r[0].result);
	assert_int_equal(r[1].rc, -ETIMEDOUT);
	assert_int_equal(r[2].rc, -ETIMEDOUT);
	assert_true(spdk_call_is_transient(r[1].rc));
	/* the connection was dropped: the next batch connects again */
	req_set(&r[0], "now", 7);
	assert_int_equal(spdk_call_many(c, r, 1), 0);
	assert_int_equal(json_integer_value(r[0].result), 7);
	json_decref(r[0].result);
	assert_int_equal(spdk_client_connections(c), 2);
	spdk_client_destroy(c);
}

static void test_target_down(void **state)
{
	struct spdk_client *c;
	struct spdk_req r[2];

	assert_int_equal(spdk_client_create("/tmp/de-spdk-many-nobody.sock", 300, &c), 0);
	req_set(&r[0], "now", 1);
	req_set(&r[1], "now", 2);
	assert_int_equal(spdk_call_many(c, r, 2), -ENOTCONN);
	assert_int_equal(r[0].rc, -ENOTCONN);
	assert_int_equal(r[1].rc, -ENOTCONN);
	assert_null(r[0].params); /* consumed even when not sent */
	spdk_client_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replies_in_any_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_answer_is_outcome_unknown, setup, teardown),
		cmocka_unit_test(test_target_down),
	};

	log_level_set(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
