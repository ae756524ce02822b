/* test_rpc_poll.c: unit tests for the rpc server's poll mode
 * (rpc_server_set_poll_interval, SPDK's RPC poller emulation): a request
 * is read at one poll and answered at the next, so a sequential call costs
 * at least an interval while pipelined calls share polls; ordering, hooks,
 * reply flags, half-close and invalid input still behave; a connection
 * closed with replies held is dropped without a leak (ASan build).
 * Timing bounds are loose on purpose: the machine may be a busy shared VM. */
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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"
#include "rpc_test_srv.h"

#define POLL_US   20000u /* the interval under test */
#define POLL_MS   (POLL_US / 1000)
/* Lower bound on "one interval" (a poll that was due but not yet run when
 * the request was written shortens the wait a little). */
#define AT_LEAST_MS (POLL_MS * 3 / 4)

/* Requests held by the "hold" method, completed by the test. */
static struct rpc_request *held[16];
static int n_held;

static void m_echo(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_reply(req, params ? json_incref(params) : json_null());
}

static void m_hold(struct rpc_request *req, json_t *params, void *ctx)
{
	assert_true(n_held < 16);
	held[n_held++] = req;
}

static void register_methods(struct rpc_server *s)
{
	assert_int_equal(rpc_server_register_builtins(s), 0);
	assert_int_equal(rpc_server_register(s, "echo", m_echo, NULL, 0), 0);
	assert_int_equal(rpc_server_register(s, "hold", m_hold, NULL, 0), 0);
}

/* ==================================== one thread, server over a socketpair */

static void pf_methods(struct rpc_server *s)
{
	register_methods(s);
	assert_int_equal(rpc_server_set_poll_interval(s, POLL_US), 0);
}

static void reply_held(void)
{
	while (n_held > 0)
		rpc_request_reply(held[--n_held], json_true());
}

static int pf_setup(void **state)
{
	n_held = 0;
	*state = rpc_test_pair_open(pf_methods);
	return 0;
}

static int pf_teardown(void **state)
{
	rpc_test_pair_close(*state, reply_held);
	return 0;
}

static void pf_send(struct rpc_test_pair *f, const char *s)
{
	size_t len = strlen(s);

	assert_int_equal(write(f->fd, s, len), (ssize_t)len);
}

/* Runs the loop until `lines` reply lines arrived (or 5 s). */
static void pf_wait_lines(struct rpc_test_pair *f, unsigned lines)
{
	uint64_t deadline = clock_mono_ms() + 5000;

	while (rpc_test_pair_lines(f) < lines && clock_mono_ms() < deadline && !f->peer_closed)
		rpc_test_pair_turn(f, 5);
	assert_int_equal(rpc_test_pair_lines(f), lines);
}

/* Runs the loop for about `ms`. */
static void pf_run_for(struct rpc_test_pair *f, unsigned ms)
{
	uint64_t end = clock_mono_ms() + ms;

	while (clock_mono_ms() < end)
		rpc_test_pair_turn(f, 2);
}

static void pf_expect_closed(struct rpc_test_pair *f)
{
	uint64_t deadline = clock_mono_ms() + 5000;

	while (!f->peer_closed && clock_mono_ms() < deadline)
		rpc_test_pair_turn(f, 5);
	assert_true(f->peer_closed);
}

/* The interval can be changed or switched off only while the server has no
 * connection; off means answered at once again. */
static void test_poll_busy_and_off(void **state)
{
	struct rpc_test_pair *f = *state;
	uint64_t t0;

	assert_int_equal(rpc_server_set_poll_interval(f->s, 4000), -EBUSY);
	assert_int_equal(rpc_server_set_poll_interval(f->s, 0), -EBUSY);
	close(f->fd);
	f->fd = -1;
	pf_run_for(f, 3 * POLL_MS);
	assert_int_equal(rpc_server_connection_count(f->s), 0);
	assert_int_equal(rpc_server_set_poll_interval(f->s, 4000), 0);
	assert_int_equal(rpc_server_set_poll_interval(f->s, 0), 0);
	assert_int_equal(rpc_server_set_poll_interval(f->s, 0), 0);
	{
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
		f->fd = sv[1];
	}
	/* Off: the reply is written while the request is handled, in the
	 * first loop round. */
	t0 = clock_mono_ms();
	pf_send(f, "{\"method\":\"echo\",\"id\":1}");
	ev_loop_run_once(f->loop, 1000);
	rpc_test_pair_drain(f);
	assert_int_equal(rpc_test_pair_lines(f), 1);
	assert_true(clock_mono_ms() - t0 < 1000);
}

/* A reply is never written when its request is handled, nor when a held
 * request completes: only at the next poll, and in request order. */
static void test_poll_replies_wait_for_next_poll(void **state)
{
	struct rpc_test_pair *f = *state;
	uint64_t t0 = clock_mono_ms();

	pf_send(f, "{\"method\":\"hold\",\"id\":1}{\"method\":\"echo\",\"id\":2,\"params\":[2]}");
	while (n_held == 0 && clock_mono_ms() - t0 < 5000)
		rpc_test_pair_turn(f, 5);
	assert_int_equal(n_held, 1);
	/* id 2 is answered but waits behind id 1. */
	pf_run_for(f, 3 * POLL_MS);
	assert_int_equal(rpc_test_pair_lines(f), 0);
	rpc_request_reply(held[--n_held], json_string("one"));
	rpc_test_pair_drain(f);
	assert_int_equal(rpc_test_pair_lines(f), 0); /* not written at completion */
	pf_wait_lines(f, 2);
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"one\"}\n"
						   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":[2]}\n");
}

/* The client goes away while replies are held (at two moments: after the
 * poll that handled its requests, and before any poll read them): the
 * connection is closed at a later poll, the replies dropped, nothing
 * leaks (ASan), and completing a held request afterwards is valid. */
static void test_poll_close_with_replies_pending(void **state)
{
	struct rpc_test_pair *f = *state;
	uint64_t t0 = clock_mono_ms();
	int sv[2];

	pf_send(f, "{\"method\":\"echo\",\"id\":1,\"params\":{\"a\":\"b\"}}"
		   "[{\"method\":\"echo\",\"id\":2},{\"method\":\"spdk_get_version\",\"id\":3}]"
		   "{\"method\":\"hold\",\"id\":4}{\"method\":\"echo\",\"id\":5}");
	while (n_held == 0 && clock_mono_ms() - t0 < 5000)
		ev_loop_run_once(f->loop, 5);
	assert_int_equal(n_held, 1);
	close(f->fd);
	f->fd = -1;
	/* Second client: writes and closes before any poll. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
	{
		static const char two[] = "{\"method\":\"echo\",\"id\":1}{\"method\":\"hold\",\"id\":2}";

		assert_int_equal(write(sv[1], two, strlen(two)), (ssize_t)strlen(two));
	}
	close(sv[1]);
	pf_run_for(f, 5 * POLL_MS);
	assert_int_equal(rpc_server_connection_count(f->s), 0);
	assert_int_equal(n_held, 2);
	assert_false(rpc_request_connected(held[0]));
	rpc_request_reply(held[0], json_true());
	rpc_request_error(held[1], -5, "Input/output error");
	n_held = 0;
	pf_run_for(f, 2 * POLL_MS);
}

/* "poke" writes a request into another client's socket while the poll
 * handles requests: it arrives after the poll began, like a client that
 * answered a reply of (a) before (b) ran. */
static int poke_fd = -1;
static bool poked;

static void m_poke(struct rpc_request *req, json_t *params, void *ctx)
{
	static const char late[] = "{\"method\":\"hold\",\"id\":7}";

	assert_int_equal(write(poke_fd, late, strlen(late)), (ssize_t)strlen(late));
	poked = true;
	rpc_request_reply_true(req);
}

/* A request that was not in the socket when the poll began waits for the
 * next poll, even if it is there by the time the poll reads. */
static void test_poll_late_bytes_wait_for_next_poll(void **state)
{
	struct rpc_test_pair *f = *state;
	uint64_t t0 = clock_mono_ms();
	int sv[2];

	assert_int_equal(rpc_server_register(f->s, "poke", m_poke, NULL, 0), 0);
	/* Connections are polled newest first: f->fd's comes before sv's. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
	close(f->fd);
	f->fd = -1;
	pf_run_for(f, 3 * POLL_MS); /* f's first connection goes */
	{
		int sv2[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv2), 0);
		assert_int_equal(rpc_server_adopt_fd(f->s, sv2[0]), 0);
		f->fd = sv2[1];
	}
	poke_fd = sv[1];
	poked = false;
	pf_send(f, "{\"method\":\"poke\",\"id\":1}");
	while (!poked && clock_mono_ms() - t0 < 5000)
		ev_loop_run_once(f->loop, 5);
	assert_true(poked);
	/* That poll is over: the late request was not handled by it. */
	assert_int_equal(n_held, 0);
	while (n_held == 0 && clock_mono_ms() - t0 < 5000)
		ev_loop_run_once(f->loop, 5);
	assert_int_equal(n_held, 1);
	rpc_request_reply(held[--n_held], json_true());
	pf_wait_lines(f, 1);
	close(sv[1]);
	poke_fd = -1;
}

/* Half-close: every reply, then the close. */
static void test_poll_half_close(void **state)
{
	struct rpc_test_pair *f = *state;

	pf_send(f, "{\"method\":\"echo\",\"id\":1}{\"method\":\"echo\",\"id\":2}");
	shutdown(f->fd, SHUT_WR);
	pf_expect_closed(f);
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n"
						   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":null}\n");
	pf_run_for(f, 2 * POLL_MS);
	assert_int_equal(rpc_server_connection_count(f->s), 0);
}

/* Invalid JSON still closes the connection, after the replies before it. */
static void test_poll_invalid_json(void **state)
{
	struct rpc_test_pair *f = *state;

	pf_send(f, "{\"method\":\"echo\",\"id\":1}{\"method\":}");
	pf_expect_closed(f);
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n");
	assert_int_equal(rpc_server_connection_count(f->s), 0);
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

/* Fault-injection hooks: an error from the hook, a dropped reply. */
static void test_poll_hook_and_drop(void **state)
{
	struct rpc_test_pair *f = *state;

	hook_calls = 0;
	rpc_server_set_hook(f->s, test_hook, NULL);
	pf_send(f, "{\"method\":\"spdk_get_version\",\"id\":1}"
		   "{\"method\":\"echo\",\"id\":2,\"params\":{\"drop\":1}}"
		   "{\"method\":\"echo\",\"id\":3}");
	pf_wait_lines(f, 2);
	pf_run_for(f, 2 * POLL_MS);
	assert_int_equal(hook_calls, 3);
	assert_string_equal(json_buf_cstr(&f->in),
			    "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-5,\"message\":\"Input/output error\"}}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":null}\n");
	rpc_server_set_hook(f->s, NULL, NULL);
}

static bool exit_hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	if (strcmp(method, "echo") == 0)
		rpc_request_set_flags(req, RPC_REPLY_EXIT);
	return false;
}

/* RPC_REPLY_EXIT (in a child): the reply is written, then exit 1; the
 * request after it in the same write never runs. */
static void test_poll_exit_flag(void **state)
{
	struct rpc_test_pair *f = *state;
	uint64_t deadline;
	pid_t pid;
	int status;

	rpc_server_set_hook(f->s, exit_hook, NULL);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		for (;;)
			ev_loop_run_once(f->loop, 100);
	}
	pf_send(f, "{\"method\":\"echo\",\"id\":1,\"params\":[\"bye\"]}{\"method\":\"hold\",\"id\":2}");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	deadline = clock_mono_ms() + 2000;
	while (rpc_test_pair_lines(f) < 1 && clock_mono_ms() < deadline) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };

		poll(&p, 1, 50);
		rpc_test_pair_drain(f);
	}
	rpc_test_pair_drain(f);
	/* (EOF never comes: this process still holds the server's end.) */
	assert_string_equal(json_buf_cstr(&f->in), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[\"bye\"]}\n");
	rpc_server_set_hook(f->s, NULL, NULL);
}

/* ================================ server thread, blocking client over a socket */

static void srv_methods(struct rpc_test_srv *t)
{
	assert_int_equal(rpc_server_register_builtins(t->s), 0);
	assert_int_equal(rpc_server_register(t->s, "echo", m_echo, NULL, 0), 0);
	assert_int_equal(rpc_server_set_poll_interval(t->s, POLL_US), 0);
}

static int srv_setup(void **state)
{
	struct rpc_test_srv *t = calloc(1, sizeof(*t));

	t->setup = srv_methods;
	rpc_test_srv_start(t, "rpc-poll");
	*state = t;
	return 0;
}

static int srv_teardown(void **state)
{
	struct rpc_test_srv *t = *state;

	rpc_test_srv_stop(t);
	free(t);
	return 0;
}

/* Sequential calls cost at least an interval each; a burst of 32
 * pipelined calls is answered within a few intervals (32 sequential ones
 * would take at least 32). */
static void test_poll_sequential_and_pipelined(void **state)
{
	struct rpc_test_srv *t = *state;
	struct rpc_client *c;
	struct rpc_error err;
	uint64_t t0, dt, max_dt = 0, min_dt = UINT64_MAX;
	json_t *res;
	unsigned i;

	assert_int_equal(rpc_client_connect(t->path, 2000, &c), 0);
	for (i = 0; i < 5; i++) {
		t0 = clock_mono_us();
		assert_int_equal(rpc_client_call(c, "spdk_get_version", NULL, 5000, &res, &err), 0);
		dt = clock_mono_us() - t0;
		assert_non_null(json_object_get(res, "version"));
		json_decref(res);
		min_dt = COMMON_MIN(min_dt, dt);
		max_dt = COMMON_MAX(max_dt, dt);
	}
	print_message("poll %u ms: sequential call min %.1f ms max %.1f ms\n", POLL_MS,
		      min_dt / 1000.0, max_dt / 1000.0);
	assert_true(min_dt >= AT_LEAST_MS * 1000u);
	assert_true(max_dt < 1000000u); /* sanity only */

	t0 = clock_mono_us();
	rpc_client_cork(c);
	for (i = 0; i < 32; i++)
		assert_int_equal(rpc_client_send(c, i % 2 ? "echo" : "spdk_get_version",
						 i % 2 ? json_pack("[i]", (int)i) : NULL, NULL), 0);
	assert_int_equal(rpc_client_uncork(c), 0);
	for (i = 0; i < 32; i++) {
		uint64_t id;

		assert_int_equal(rpc_client_recv(c, 5000, &id, &res, &err), 0);
		json_decref(res);
	}
	dt = clock_mono_us() - t0;
	print_message("poll %u ms: 32 pipelined calls in %.1f ms\n", POLL_MS, dt / 1000.0);
	assert_true(dt >= AT_LEAST_MS * 1000u);
	assert_true(dt < 10u * POLL_US); /* 32 sequential calls: >= 32 intervals */
	rpc_client_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poll_busy_and_off, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_replies_wait_for_next_poll, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_close_with_replies_pending, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_late_bytes_wait_for_next_poll, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_half_close, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_invalid_json, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_hook_and_drop, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_exit_flag, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(test_poll_sequential_and_pipelined, srv_setup, srv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
