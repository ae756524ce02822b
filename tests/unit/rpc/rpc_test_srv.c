/*
 * rpc_test_srv.c: the threaded JSON-RPC test server (see rpc_test_srv.h).
 */
#include "rpc_test_srv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"
#include "rpc/rpc.h"

static void *srv_main(void *arg)
{
	struct rpc_test_srv *t = arg;

	assert_int_equal(ev_loop_create(&t->loop), 0);
	assert_int_equal(rpc_server_create(t->loop, &t->s), 0);
	t->setup(t);
	assert_int_equal(rpc_server_listen(t->s, t->path, 0600), 0);
	atomic_store(&t->ready, 1);
	while (!atomic_load(&t->stop))
		ev_loop_run_once(t->loop, 20);
	rpc_server_destroy(t->s);
	if (t->after)
		t->after(t);
	ev_loop_destroy(t->loop);
	return NULL;
}

void rpc_test_srv_start(struct rpc_test_srv *t, const char *name)
{
	snprintf(t->path, sizeof(t->path), "/tmp/de-%s-%d.sock", name, (int)getpid());
	atomic_store(&t->stop, false);
	atomic_store(&t->ready, 0);
	assert_int_equal(pthread_create(&t->th, NULL, srv_main, t), 0);
	while (!atomic_load(&t->ready))
		usleep(1000);
}

void rpc_test_srv_stop(struct rpc_test_srv *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->th, NULL);
}
