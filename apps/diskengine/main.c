/*
 * diskengine: the node agent. Parses the command line (and an optional
 * config file, flags win), then runs src/agent's loops until SIGTERM/SIGINT.
 * Exit codes: 0 clean stop, 1 error (one line on stderr), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/common.h"

static struct agent *the_agent;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: diskengine --db PATH|postgresql://... --node NAME [options]\n"
		"  --db PATH             state store (SQLite file or PostgreSQL URL)\n"
		"  --node NAME           this node's name as registered with diskctl node add\n"
		"  --rpc-socket PATH     target JSON-RPC socket (default: the node's registered one)\n"
		"  --tick DURATION       loop period (default 1s; 500ms, 2s, 1m ...)\n"
		"  --config FILE         key = value file (see doc/OPERATIONS.md); flags win\n"
		"  --metrics-listen ADDR Prometheus metrics on http://ADDR/metrics (IP:PORT)\n"
		"  --log-level LEVEL     error|warn|info|debug (default info)\n"
		"  --list-crash-points   print the crash point names and exit\n"
		"  --help                this text\n"
		"Environment: DISKENGINE_CRASH_AT=<name>[:<count>] exits at a crash point (tests).\n");
}

static void on_signal(int sig)
{
	(void)sig;
	if (the_agent)
		agent_stop(the_agent);
}

static int set_str(char *dst, size_t len, const char *v, const char *what)
{
	if (strlen(v) >= len) {
		fprintf(stderr, "diskengine: %s too long\n", what);
		return -1;
	}
	snprintf(dst, len, "%s", v);
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_DB = 256, OPT_NODE, OPT_SOCK, OPT_TICK, OPT_CONFIG, OPT_METRICS, OPT_LOG,
	       OPT_LIST, OPT_HELP };
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "node", required_argument, NULL, OPT_NODE },
		{ "rpc-socket", required_argument, NULL, OPT_SOCK },
		{ "tick", required_argument, NULL, OPT_TICK },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "list-crash-points", no_argument, NULL, OPT_LIST },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct agent_options file_opts, o;
	const char *config = NULL, *db = NULL, *node = NULL, *sock = NULL, *tick = NULL;
	const char *metrics = NULL, *level = NULL;
	char err[512] = "";
	struct sigaction sa;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB: db = optarg; break;
		case OPT_NODE: node = optarg; break;
		case OPT_SOCK: sock = optarg; break;
		case OPT_TICK: tick = optarg; break;
		case OPT_CONFIG: config = optarg; break;
		case OPT_METRICS: metrics = optarg; break;
		case OPT_LOG: level = optarg; break;
		case OPT_LIST:
			for (const char *const *p = agent_crash_points(); *p; p++)
				printf("%s\n", *p);
			return 0;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "diskengine: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "diskengine: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	agent_options_init(&file_opts);
	if (config && agent_config_load(config, &file_opts, err, sizeof(err)) != 0) {
		fprintf(stderr, "diskengine: config: %s\n", err);
		return 1;
	}
	o = file_opts;
	if ((db && set_str(o.db, sizeof(o.db), db, "--db")) ||
	    (node && set_str(o.node, sizeof(o.node), node, "--node")) ||
	    (sock && set_str(o.rpc_socket, sizeof(o.rpc_socket), sock, "--rpc-socket")) ||
	    (metrics && set_str(o.metrics_listen, sizeof(o.metrics_listen), metrics,
				"--metrics-listen")))
		return 2;
	if (tick && (agent_duration_parse(tick, &o.tick_ms) != 0 || o.tick_ms == 0)) {
		fprintf(stderr, "diskengine: bad --tick '%s' (e.g. 1s, 500ms)\n", tick);
		return 2;
	}
	if (level) {
		enum log_level l;

		if (log_level_parse(level, &l) != 0) {
			fprintf(stderr, "diskengine: bad --log-level '%s' (error|warn|info|debug)\n",
				level);
			return 2;
		}
		snprintf(o.log_level, sizeof(o.log_level), "%s", level);
	}
	if (!o.db[0] || !o.node[0]) {
		fprintf(stderr, "diskengine: --db and --node are required\n");
		usage(stderr);
		return 2;
	}

	rc = agent_create(&o, &the_agent, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "diskengine: %s\n", err[0] ? err : common_strerror(rc));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = agent_run(the_agent);
	agent_destroy(the_agent);
	the_agent = NULL;
	if (rc) {
		fprintf(stderr, "diskengine: %s\n", common_strerror(rc));
		return 1;
	}
	return 0;
}
