/*
 * rpc_bench.c: JSON-RPC throughput of a target (disktgt or SPDK's spdk_tgt)
 * measured with diskengine's own client library: spdk_get_version calls per
 * second issued strictly one after another, pipelined on one connection at
 * several depths, and from several concurrent clients. Prints one line per
 * figure with SPDK's measured figure and the ratio beside it.
 *
 *   rpc-bench -r SOCKET [-t SECONDS] [-d 1,16,64,128] [-c CLIENTS] [-m METHOD] [-n] [-R N]
 *   (-n: skip the sequential figure; -R: run each figure N times and print
 *   the best, to see through other load on a shared machine)
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rpc/rpc.h"

/* SPDK v26.09-pre on a 2-core VM (shared/spec/spdk-rpc.md, "Timing"). */
#define SPDK_SEQUENTIAL 124.8
#define SPDK_PIPELINED_64 7839.0

static const char *g_sock;
static const char *g_method = "spdk_get_version";
static double g_seconds = 3.0;
static int g_repeat = 1;

static void die(const char *what, int rc)
{
	fprintf(stderr, "rpc-bench: %s: %s\n", what, common_strerror(rc));
	exit(1);
}

static double now_s(void)
{
	return (double)clock_mono_ns() / 1e9;
}

static double run_sequential(void)
{
	struct rpc_client *c;
	struct rpc_error err;
	double t0, end;
	long n = 0;
	int rc;

	rc = rpc_client_connect(g_sock, 5000, &c);
	if (rc)
		die("connect", rc);
	t0 = now_s();
	end = t0 + g_seconds;
	do {
		for (int i = 0; i < 64; i++) {
			rc = rpc_client_call(c, g_method, NULL, 5000, NULL, &err);
			if (rc)
				die(g_method, rc);
		}
		n += 64;
	} while (now_s() < end);
	end = now_s();
	rpc_client_destroy(c);
	return (double)n / (end - t0);
}

static double run_pipelined(int depth)
{
	struct rpc_client *c;
	struct rpc_error err;
	double t0, end;
	long done = 0;
	int rc;

	rc = rpc_client_connect(g_sock, 5000, &c);
	if (rc)
		die("connect", rc);
	t0 = now_s();
	end = t0 + g_seconds;
	/* Keep `depth` calls in flight; replies that arrived together are
	 * answered with one write of as many new calls. */
	rpc_client_cork(c);
	for (int i = 0; i < depth; i++) {
		rc = rpc_client_send(c, g_method, NULL, NULL);
		if (rc)
			die("send", rc);
	}
	for (;;) {
		int got = 0;

		do {
			rc = rpc_client_recv(c, 5000, NULL, NULL, &err);
			if (rc)
				die("recv", rc);
			got++;
		} while (rpc_client_ready(c));
		done += got;
		if (now_s() >= end)
			break;
		rpc_client_cork(c);
		while (got-- > 0) {
			rc = rpc_client_send(c, g_method, NULL, NULL);
			if (rc)
				die("send", rc);
		}
		rc = rpc_client_uncork(c);
		if (rc)
			die("send", rc);
	}
	while (rpc_client_outstanding(c) > 0) {
		rc = rpc_client_recv(c, 5000, NULL, NULL, &err);
		if (rc)
			die("recv", rc);
		done++;
	}
	end = now_s();
	rpc_client_destroy(c);
	return (double)done / (end - t0);
}

static void *client_thread(void *arg)
{
	double *out = arg;

	*out = run_sequential();
	return NULL;
}

static double run_concurrent(int clients)
{
	pthread_t th[256];
	double rate[256], total = 0;

	for (int i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, client_thread, &rate[i]);
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		total += rate[i];
	}
	return total;
}

static double best_of(double (*fn)(int), int arg)
{
	double best = 0;

	for (int i = 0; i < g_repeat; i++) {
		double r = fn(arg);

		if (r > best)
			best = r;
	}
	return best;
}

static double seq_fn(int unused)
{
	return run_sequential();
}

static void print_line(const char *what, double ours, double spdk)
{
	if (spdk > 0)
		printf("%-28s %10.0f calls/s   SPDK %7.0f calls/s   x%.0f\n", what, ours, spdk,
		       ours / spdk);
	else
		printf("%-28s %10.0f calls/s   SPDK       n/a\n", what, ours);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char depths_buf[128] = "1,16,64,128";
	int clients = 8, opt;
	bool sequential = true;
	char *tok, *save = NULL;

	while ((opt = getopt(argc, argv, "r:t:d:c:m:nR:h")) != -1) {
		switch (opt) {
		case 'r': g_sock = optarg; break;
		case 't': g_seconds = atof(optarg); break;
		case 'd': snprintf(depths_buf, sizeof(depths_buf), "%s", optarg); break;
		case 'c': clients = atoi(optarg); break;
		case 'm': g_method = optarg; break;
		case 'n': sequential = false; break;
		case 'R': g_repeat = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		default:
			fprintf(stderr, "usage: rpc-bench -r SOCKET [-t SECONDS] [-d 1,16,64,128] "
					"[-c CLIENTS] [-m METHOD] [-n] [-R N]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!g_sock || g_seconds <= 0 || clients < 0 || clients > 256) {
		fprintf(stderr, "rpc-bench: -r SOCKET is required\n");
		return 2;
	}
	printf("method %s, %.1f s per figure%s\n", g_method, g_seconds,
	       g_repeat > 1 ? ", best of several runs" : "");
	if (sequential)
		print_line("sequential", best_of(seq_fn, 0), SPDK_SEQUENTIAL);
	for (tok = strtok_r(depths_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int depth = atoi(tok);
		char label[64];

		if (depth < 1)
			continue;
		snprintf(label, sizeof(label), "pipelined depth %d", depth);
		print_line(label, best_of(run_pipelined, depth),
			   depth == 64 ? SPDK_PIPELINED_64 : depth == 1 ? SPDK_SEQUENTIAL : 0);
	}
	if (clients > 0) {
		char label[64];

		snprintf(label, sizeof(label), "%d clients, sequential", clients);
		print_line(label, best_of(run_concurrent, clients), 0);
	}
	return 0;
}
