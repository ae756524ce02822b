/*
 * rpc_test_srv.h: a JSON-RPC server (src/rpc) on its own event loop in a
 * thread, listening on a unix socket, for unit tests that drive it with a
 * real blocking client (tests/unit/rpc, tests/unit/agent). The test fills in
 * the hooks; both run in the server thread.
 */
#ifndef DE_TEST_RPC_SRV_H
#define DE_TEST_RPC_SRV_H

#include <pthread.h>
#include <stdatomic.h>

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

#endif /* DE_TEST_RPC_SRV_H */
