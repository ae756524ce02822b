/*
 * rpc_test_srv.h: a JSON-RPC server (src/rpc) on its own event loop in a
 * thread, listening on a unix socket, for unit tests that drive it with a
 * real blocking client (tests/unit/rpc, tests/unit/agent). The test fills in
 * the hooks; both run in the server thread. And the single-threaded kind: a
 * server whose one connection is a socketpair, the test holding the other
 * end and turning the loop itself.
 */
#ifndef DE_TEST_RPC_SRV_H
#define DE_TEST_RPC_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "json/json.h"

struct ev_loop;
struct rpc_server;

struct rpc_test_srv {
	char path[108];                 /* the socket: /tmp/de-<name>-<pid>.sock */
	struct ev_loop *loop;
	struct rpc_server *s;
	/* Registers methods (and settings) before the server listens. */
	void (*setup)(struct rpc_test_srv *t);
	/* Optional: after the server is destroyed, before its loop is
	 * (complete the requests the test's handlers still hold). */
	void (*after)(struct rpc_test_srv *t);
	void *ctx;                      /* the test's */
	pthread_t th;
	atomic_bool stop;
	atomic_int ready;
};

/* Starts the thread and returns once the socket listens. */
void rpc_test_srv_start(struct rpc_test_srv *t, const char *name);
/* Stops and joins it. */
void rpc_test_srv_stop(struct rpc_test_srv *t);

/* A server and the client end of its one connection, in this thread. */
struct rpc_test_pair {
	struct ev_loop *loop;
	struct rpc_server *s;
	int fd;                 /* the client's end */
	struct json_buf in;     /* what the server wrote */
	bool peer_closed;
};

/* methods(s) registers what the test needs (and settings that must come
 * before a connection), then the socketpair is adopted. */
struct rpc_test_pair *rpc_test_pair_open(void (*methods)(struct rpc_server *s));
/* Closes the client end and the server; after() (may be NULL) completes the
 * requests the test still holds, then the loop goes. */
void rpc_test_pair_close(struct rpc_test_pair *f, void (*after)(void));
/* Reads whatever the server wrote, without running the loop. */
void rpc_test_pair_drain(struct rpc_test_pair *f);
/* One loop round (at most timeout_ms), then the drain. */
void rpc_test_pair_turn(struct rpc_test_pair *f, int timeout_ms);
/* Reply lines received so far. */
unsigned rpc_test_pair_lines(const struct rpc_test_pair *f);

#endif /* DE_TEST_RPC_SRV_H */
