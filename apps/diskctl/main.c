/*
 * main.c: diskctl, the operator CLI. Writes desired state into the state
 * store and shows what the agents observed; never talks to a target. This
 * file holds the command table, help texts and dispatch; global options
 * (--db, --json, --help) are accepted anywhere on the line.
 */
#include "diskctl.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CTL_DB_DEFAULT "./var/diskengine.db"

#define OPTS(x) x, COMMON_ARRAY_SIZE(x)

static const struct ctl_optspec o_none[] = { { "", CTL_FLAG } };
static const struct ctl_optspec o_node_add[] = { { "rpc-socket", CTL_VALUE },
						 { "nqn-prefix", CTL_VALUE } };
static const struct ctl_optspec o_disk_add[] = {
	{ "node", CTL_VALUE },      { "file", CTL_VALUE },      { "device", CTL_VALUE },
	{ "lvstore", CTL_VALUE },   { "cluster-size", CTL_VALUE }, { "listen", CTL_MULTI },
	{ "interface", CTL_VALUE }, { "port", CTL_VALUE },      { "transport", CTL_VALUE },
};
static const struct ctl_optspec o_disk_list[] = { { "node", CTL_VALUE } };
static const struct ctl_optspec o_lvol_create[] = {
	{ "disk", CTL_VALUE }, { "size", CTL_VALUE },  { "thin", CTL_FLAG },
	{ "host", CTL_MULTI }, { "wait", CTL_OPTVALUE }, { "node", CTL_VALUE },
};
static const struct ctl_optspec o_lvol_resize[] = { { "size", CTL_VALUE },
						    { "allow-shrink", CTL_FLAG },
						    { "wait", CTL_OPTVALUE } };
static const struct ctl_optspec o_wait[] = { { "wait", CTL_OPTVALUE } };
static const struct ctl_optspec o_lvol_list[] = { { "node", CTL_VALUE }, { "disk", CTL_VALUE },
						  { "state", CTL_VALUE }, { "all", CTL_FLAG } };
static const struct ctl_optspec o_snap_list[] = { { "node", CTL_VALUE }, { "lvol", CTL_VALUE },
						  { "all", CTL_FLAG } };
static const struct ctl_optspec o_clone[] = { { "host", CTL_MULTI }, { "wait", CTL_OPTVALUE } };
static const struct ctl_optspec o_events[] = { { "all", CTL_FLAG } };
static const struct ctl_optspec o_batch[] = { { "keep-going", CTL_FLAG } };

const struct ctl_cmd ctl_cmds[] = {
	{ "node", "add", "node add NAME --rpc-socket PATH [--nqn-prefix NQN]",
	  "Register a storage node and the JSON-RPC socket of its target (disktgt or spdk_tgt).\n"
	  "  --rpc-socket PATH   the target's unix socket as the node's agent sees it\n"
	  "  --nqn-prefix NQN    prefix of subsystem NQNs (default " DB_NQN_PREFIX_DEFAULT ")",
	  OPTS(o_node_add), 1, 1, false, ctl_node_add },
	{ "node", "list", "node list [--json]", "List nodes with their liveness (agent heartbeat).",
	  o_none, 0, 0, 0, true, ctl_node_list },
	{ "disk", "add",
	  "disk add NAME --node NODE (--file PATH | --device DEV) [--lvstore NAME] [--cluster-size 4MiB] "
	  "(--listen IP:PORT ... | --interface IFNAME [--port 4420]) [--transport TCP|RDMA]",
	  "Register a disk of a node: the file or block device the agent turns into an lvstore, and\n"
	  "where the lvols of this disk are exported.\n"
	  "  --file PATH / --device DEV   base bdev (relative paths are made absolute)\n"
	  "  --lvstore NAME               lvstore name (default: the disk name)\n"
	  "  --cluster-size SIZE          lvstore cluster size (default 4MiB, power of two)\n"
	  "  --listen IP:PORT             listener address, repeatable ([IPv6]:PORT for IPv6)\n"
	  "  --interface IFNAME --port N  listen on every address of an interface (default port 4420)\n"
	  "  --transport TCP|RDMA         NVMe-oF transport (default TCP)",
	  OPTS(o_disk_add), 1, 1, false, ctl_disk_add },
	{ "disk", "list", "disk list [--node NODE] [--json]",
	  "List disks with the lvstore state, capacity and free space the agent observed.",
	  OPTS(o_disk_list), 0, 0, true, ctl_disk_list },
	{ "lvol", "create",
	  "lvol create [--disk DISK] --size SIZE [--thin] [--host NQN ...] [--node NODE] [--wait[=SECONDS]]",
	  "Create a logical volume; prints its id (its name in the target). Sizes take B, K/KiB,\n"
	  "M/MiB, G/GiB, T/TiB (powers of two). A thick volume larger than the disk's known free\n"
	  "space is refused. Without --disk it is placed on the disk with the most free space of a\n"
	  "live node (of NODE with --node); with --disk, --node checks the disk belongs to NODE.\n"
	  "--host allows an NVMe host NQN (repeatable); --wait follows it until READY (exit 3 on\n"
	  "timeout).",
	  OPTS(o_lvol_create), 0, 0, false, ctl_lvol_create },
	{ "lvol", "resize", "lvol resize ID --size SIZE [--allow-shrink] [--wait[=SECONDS]]",
	  "Change an lvol's size. Growing zeroes the new region before the lvol is READY again;\n"
	  "shrinking destroys data and is refused unless --allow-shrink is given. --wait shows the\n"
	  "zeroing progress.",
	  OPTS(o_lvol_resize), 1, 1, false, ctl_lvol_resize },
	{ "lvol", "delete", "lvol delete ID [--wait[=SECONDS]]",
	  "Delete an lvol (its namespace and subsystem first). --wait follows it until DELETED.",
	  OPTS(o_wait), 1, 1, false, ctl_lvol_delete },
	{ "lvol", "list", "lvol list [--node N] [--disk D] [--state S] [--all] [--json]",
	  "List lvols (DELETED ones only with --all or --state DELETED).", OPTS(o_lvol_list), 0, 0,
	  true, ctl_lvol_list },
	{ "lvol", "show", "lvol show ID [--json]", "Show one lvol in full.", o_none, 0, 1, 1, true,
	  ctl_lvol_show },
	{ "snapshot", "create", "snapshot create LVOL_ID [--wait[=SECONDS]]",
	  "Snapshot a READY lvol; prints the snapshot id (target name snap-<id>).", OPTS(o_wait), 1, 1,
	  false, ctl_snapshot_create },
	{ "snapshot", "delete", "snapshot delete ID [--wait[=SECONDS]]",
	  "Delete a snapshot. The target refuses while more than one clone depends on it.",
	  OPTS(o_wait), 1, 1, false, ctl_snapshot_delete },
	{ "snapshot", "list", "snapshot list [--node N] [--lvol ID] [--all] [--json]",
	  "List snapshots (DELETED ones only with --all).", OPTS(o_snap_list), 0, 0, true,
	  ctl_snapshot_list },
	{ "clone", "create", "clone create SNAPSHOT_ID [--host NQN ...] [--wait[=SECONDS]]",
	  "Create a thin lvol from a READY snapshot, exported like any other; prints its id.",
	  OPTS(o_clone), 1, 1, false, ctl_clone_create },
	{ NULL, "events", "events [--all] [--json]",
	  "Show open events (drift, orphans, re-exports, unreachable targets); --all includes\n"
	  "resolved ones. Repeats are counted on one row.",
	  OPTS(o_events), 0, 0, true, ctl_events },
	{ NULL, "status", "status [--json]",
	  "Per node and disk: liveness, capacity, free space, lvols by state, open events.", o_none, 0,
	  0, 0, true, ctl_status },
	{ NULL, "batch", "batch [--keep-going]",
	  "Run commands read from stdin, one per line, on one database connection: no process\n"
	  "start and no new connection per command, so a script or an orchestrator creating\n"
	  "many volumes pays neither. A line is a diskctl command line without 'diskctl' and\n"
	  "without --db: words split at blanks, '...' and \"...\" quote, # starts a comment.\n"
	  "Output is flushed after each command, so a program can write a line and read its\n"
	  "answer. With --json every command answers with one line:\n"
	  "  {\"line\": N, \"exit\": CODE, \"result\": <its --json output or null>, \"ms\": T}\n"
	  "and \"error\": MESSAGE when CODE is not 0 (errors also go to stderr, \"line N: \"\n"
	  "first). The batch stops at the first failing command and exits with its code;\n"
	  "--keep-going runs every line and exits with the first failure's code (0 if none).",
	  OPTS(o_batch), 0, 0, false, ctl_batch },
};
const size_t ctl_ncmds = COMMON_ARRAY_SIZE(ctl_cmds);

static const char *const groups[] = { "node", "disk", "lvol", "snapshot", "clone" };

static void main_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: diskctl [--db PATH|postgresql://...] [--json] <command> [args]\n\n"
		   "Operator CLI of diskengine: writes desired state into the database, shows what the\n"
		   "node agents observed. Default database: $DISKENGINE_DB or ./var/diskengine.db.\n\n"
		   "commands:\n");
	for (i = 0; i < ctl_ncmds; i++)
		fprintf(f, "  %s\n", ctl_cmds[i].synopsis);
	fprintf(f, "\nglobal options: --db PATH, --json (JSON output), --help (on every level)\n"
		   "exit codes: 0 done, 1 error, 2 usage, 3 --wait timed out (the operation goes on)\n");
}

static void group_help(const char *group)
{
	size_t i;

	printf("usage: diskctl %s <subcommand> ...\n\nsubcommands:\n", group);
	for (i = 0; i < ctl_ncmds; i++)
		if (ctl_cmds[i].group && !strcmp(ctl_cmds[i].group, group))
			printf("  %s\n", ctl_cmds[i].synopsis);
	printf("\n'diskctl %s <subcommand> --help' explains one.\n", group);
}

static void cmd_help(const struct ctl_cmd *c)
{
	printf("usage: diskctl %s\n\n%s\n", c->synopsis, c->help);
}

static bool is_group(const char *s)
{
	size_t i;

	for (i = 0; i < COMMON_ARRAY_SIZE(groups); i++)
		if (!strcmp(groups[i], s))
			return true;
	return false;
}

static const struct ctl_cmd *find_cmd(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < ctl_ncmds; i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];

		if ((group && c->group && !strcmp(c->group, group) && !strcmp(c->name, name)) ||
		    (!group && !c->group && !strcmp(c->name, name)))
			return c;
	}
	return NULL;
}

/* Scans the global options (--db, --json, --help; anywhere on the line, "--"
 * ends them) out of words[0..n): the rest go to rest[] in order. --db is
 * refused when db_ok is false (inside a batch). 0 or an exit code. */
int ctl_globals(int n, char **words, bool db_ok, struct ctl *ctl, bool *help, char **rest,
		int *nrest)
{
	int i;

	for (i = 0; i < n; i++) {
		const char *a = words[i];

		if (!strcmp(a, "--")) {
			/* everything after is for the command */
			for (; i < n; i++)
				rest[(*nrest)++] = words[i];
			break;
		}
		if (!strcmp(a, "--json")) {
			ctl->json = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			*help = true;
		} else if (!strcmp(a, "--db") || !strncmp(a, "--db=", 5)) {
			if (!db_ok)
				return ctl_usage(NULL, "--db is given once, to the batch itself");
			if (ctl->db_path)
				return ctl_usage(NULL, "option --db given twice");
			if (a[4] == '=')
				ctl->db_path = a + 5;
			else if (i + 1 >= n)
				return ctl_usage(NULL, "option --db needs a value");
			else
				ctl->db_path = words[++i];
		} else {
			rest[(*nrest)++] = words[i];
		}
	}
	return 0;
}

int ctl_command(int nrest, char **rest, bool help, const struct ctl_cmd **out,
		struct ctl_args *args)
{
	const struct ctl_cmd *cmd;
	int i;

	if (nrest == 0) {
		if (!help)
			return ctl_usage(NULL, "missing command");
		main_help(stdout);
		return EXIT_OK;
	}
	if (is_group(rest[0])) {
		if (nrest < 2 || rest[1][0] == '-') {
			if (!help)
				return ctl_usage(NULL, "'%s' needs a subcommand", rest[0]);
			group_help(rest[0]);
			return EXIT_OK;
		}
		cmd = find_cmd(rest[0], rest[1]);
		if (!cmd)
			return ctl_usage(NULL, "unknown command '%s %.64s'", rest[0], rest[1]);
		i = 2;
	} else {
		cmd = find_cmd(NULL, rest[0]);
		if (!cmd)
			return ctl_usage(NULL, "unknown command '%.64s'", rest[0]);
		i = 1;
	}
	if (help) {
		cmd_help(cmd);
		return EXIT_OK;
	}
	*out = cmd;
	/* Parse everything before touching the database: bad input changes nothing. */
	if ((i = ctl_parse(cmd, nrest - i, rest + i, args)) != 0)
		return i;
	return CTL_RUN;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	struct ctl_args args;
	const struct ctl_cmd *cmd = NULL;
	char **rest;
	int nrest = 0, rc, code;
	bool help = false;

	log_level_set(LOG_LEVEL_WARN);
	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return ctl_err(EXIT_ERR, "out of memory");
	if ((code = ctl_globals(argc - 1, argv + 1, true, &ctl, &help, rest, &nrest)) != 0)
		goto out;
	if ((code = ctl_command(nrest, rest, help, &cmd, &args)) != CTL_RUN)
		goto out;
	ctl.cmd = cmd;
	if (!ctl.db_path) {
		const char *env = getenv("DISKENGINE_DB");

		bool use_default = !env || !*env;

		ctl.db_path = use_default ? CTL_DB_DEFAULT : env;
		/* the default lives in ./var: create it like `make run` would */
		if (use_default && mkdir("./var", 0700) != 0 && errno != EEXIST) {
			code = ctl_err(EXIT_ERR, "cannot create ./var for %s: %s", CTL_DB_DEFAULT,
				       strerror(errno));
			goto out;
		}
	}
	if (!*ctl.db_path) {
		code = ctl_usage(NULL, "option --db needs a value");
		goto out;
	}
	rc = db_open(ctl.db_path, &ctl.db);
	if (rc < 0) {
		code = ctl_err(EXIT_ERR, "%s", db_open_errmsg());
		goto out;
	}
	code = cmd->run(&ctl, &args);
out:
	db_close(ctl.db);
	free(rest);
	if (fflush(stdout) != 0 && code == EXIT_OK)
		code = ctl_err(EXIT_ERR, "cannot write output");
	return code;
}
