/*
 * disktgt: the storage target. Serves SPDK's JSON-RPC protocol on a unix
 * socket (-r) and NVMe/TCP; the method set lives in src/tgt, the RPC server
 * in src/rpc. This file only wires them to an event loop and handles
 * start-up options (among them --rpc-poll-interval, SPDK's RPC timing) and
 * SIGTERM/SIGINT (clean shutdown, exit 0).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/common.h"
#include "rpc/rpc.h"
#include "tgt/tgt.h"

#define MOD "disktgt"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: disktgt -r SOCKET [-c CONFIG.json] [--log-level error|warn|info|debug]\n"
		"               [--rpc-poll-interval DURATION] [--enable-fault-injection] [--help]\n"
		"  -r, --rpc-socket PATH   JSON-RPC unix socket (mode 0600; a stale file is replaced)\n"
		"  -c, --config PATH       SPDK-style JSON config to load at start\n"
		"  -L, --log-level L       error, warn, info (default) or debug\n"
		"  --rpc-poll-interval DURATION\n"
		"                          emulate SPDK's RPC poller: requests are read and answered\n"
		"                          only every DURATION; 4ms is SPDK's; default 0 = answer at\n"
		"                          once (DURATION: 4ms, 500us, 1s; a bare number is us)\n"
		"  --enable-fault-injection  register disktgt_inject_fault (tests only)\n"
		"  -h, --help              this text\n");
}

#define DISKTGT_POLL_MAX_US 60000000ull /* 60 s */

/* "4ms", "500us", "1s", "0"; a bare number is microseconds. 0 or -EINVAL. */
static int disktgt_duration_parse(const char *s, uint64_t *us_out)
{
	uint64_t v = 0, mult;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > DISKTGT_POLL_MAX_US)
			return -EINVAL;
	}
	if (*p == '\0' || strcmp(p, "us") == 0)
		mult = 1;
	else if (strcmp(p, "ms") == 0)
		mult = 1000;
	else if (strcmp(p, "s") == 0)
		mult = 1000000;
	else
		return -EINVAL;
	if (v * mult > DISKTGT_POLL_MAX_US)
		return -EINVAL;
	*us_out = v * mult;
	return 0;
}

static void on_signal(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		LOG_INFO(MOD, "signal received sig=%u, shutting down", si.ssi_signo);
	ev_loop_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rpc-socket", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "enable-fault-injection", no_argument, NULL, 'F' },
		{ "rpc-poll-interval", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tgt_opts topts = { 0 };
	const char *sock_path = NULL, *config = NULL;
	struct rpc_server *server = NULL;
	struct ev_loop *loop = NULL;
	struct tgt *tgt = NULL;
	uint64_t poll_us = 0;
	int sfd = -1, rc, opt, status = 1;
	sigset_t mask;

	while ((opt = getopt_long(argc, argv, "r:c:L:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			sock_path = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'L': {
			enum log_level l;

			if (log_level_parse(optarg, &l)) {
				fprintf(stderr, "disktgt: bad --log-level '%s'\n", optarg);
				return 2;
			}
			log_level_set(l);
			break;
		}
		case 'F':
			topts.fault_injection = true;
			break;
		case 'P':
			if (disktgt_duration_parse(optarg, &poll_us)) {
				fprintf(stderr, "disktgt: bad --rpc-poll-interval '%s' (want e.g. 4ms, "
					"500us or 0; at most 60s)\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!sock_path || optind != argc) {
		usage(stderr);
		return 2;
	}

	/* Every RPC client and NVMe/TCP queue is a descriptor: use what the
	 * hard limit allows rather than the usual 1024 soft limit. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "disktgt: signalfd: %s\n", strerror(errno));
		return 1;
	}

	rc = ev_loop_create(&loop);
	if (rc == 0) {
		/* Poll 50 us after each busy round: back-to-back requests skip a
		 * wake-up; an idle target still sleeps (0 % CPU). */
		ev_loop_set_spin(loop, 50);
		rc = ev_fd_add(loop, sfd, EPOLLIN, on_signal, NULL);
	}
	if (rc == 0)
		rc = rpc_server_create(loop, &server);
	if (rc == 0)
		rc = rpc_server_register_builtins(server);
	if (rc == 0 && poll_us)
		rc = rpc_server_set_poll_interval(server, poll_us);
	if (rc) {
		fprintf(stderr, "disktgt: start-up failed: %s\n", common_strerror(rc));
		goto out;
	}
	rc = tgt_create(loop, server, &topts, &tgt);
	if (rc) {
		fprintf(stderr, "disktgt: target initialisation failed: %s\n", common_strerror(rc));
		goto out;
	}
	if (config) {
		rc = tgt_config_load(tgt, config);
		if (rc) {
			fprintf(stderr, "disktgt: cannot load config %s: %s\n", config,
				common_strerror(rc));
			goto out;
		}
	}
	/* Listen last: once the socket exists, every method is there. */
	rc = rpc_server_listen(server, sock_path, 0600);
	if (rc) {
		fprintf(stderr, "disktgt: cannot listen on %s: %s\n", sock_path, common_strerror(rc));
		goto out;
	}
	LOG_INFO(MOD, "ready socket=%s pid=%d", sock_path, (int)getpid());
	rc = ev_loop_run(loop);
	if (rc) {
		fprintf(stderr, "disktgt: event loop failed: %s\n", common_strerror(rc));
		goto out;
	}
	status = 0;
out:
	/* Stop taking requests first, then the target completes what it holds. */
	tgt_destroy(tgt);
	rpc_server_destroy(server);
	if (loop && sfd >= 0)
		ev_fd_remove(loop, sfd);
	ev_loop_destroy(loop);
	if (sfd >= 0)
		close(sfd);
	if (status == 0)
		LOG_INFO(MOD, "stopped");
	return status;
}
