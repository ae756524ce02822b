/*
 * rpc_test_srv.c: the JSON-RPC test servers (see rpc_test_srv.h): one on a
 * thread behind a unix socket, one over a socketpair in the test's thread.
 */
#include "rpc_test_srv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
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

struct rpc_test_pair *rpc_test_pair_open(void (*methods)(struct rpc_server *s))
{
	struct rpc_test_pair *f = calloc(1, sizeof(*f));
	int sv[2];

	assert_non_null(f);
	assert_int_equal(ev_loop_create(&f->loop), 0);
	assert_int_equal(rpc_server_create(f->loop, &f->s), 0);
	methods(f->s);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(rpc_server_adopt_fd(f->s, sv[0]), 0);
	f->fd = sv[1];
	return f;
}

void rpc_test_pair_close(struct rpc_test_pair *f, void (*after)(void))
{
	if (f->fd >= 0)
		close(f->fd);
	rpc_server_destroy(f->s);
	if (after)
		after();
	ev_loop_destroy(f->loop);
	json_buf_free(&f->in);
	free(f);
}

void rpc_test_pair_drain(struct rpc_test_pair *f)
{
	char buf[65536];
	ssize_t n = -1;

	while (f->fd >= 0 && (n = read(f->fd, buf, sizeof(buf))) > 0)
		json_buf_append(&f->in, buf, (size_t)n);
	if (n == 0)
		f->peer_closed = true;
}

void rpc_test_pair_turn(struct rpc_test_pair *f, int timeout_ms)
{
	ev_loop_run_once(f->loop, timeout_ms);
	rpc_test_pair_drain(f);
}

unsigned rpc_test_pair_lines(const struct rpc_test_pair *f)
{
	unsigned n = 0;

	for (size_t i = 0; i < f->in.len; i++)
		n += f->in.data[i] == '\n';
	return n;
}
