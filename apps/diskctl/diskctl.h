/*
 * diskctl.h: private to apps/diskctl, the operator CLI. Shared types of its
 * files: the run context, the small option parser, output helpers and the
 * command entry points. Exit codes follow DESIGN.md: 0 done, 1 error (one
 * line on stderr), 2 usage, 3 --wait timed out.
 */
#ifndef DE_DISKCTL_H
#define DE_DISKCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

struct ctl;

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

#define CTL_ARG_MAX 4096       /* longer arguments are refused */
#define CTL_MULTI_MAX 64       /* values of one repeatable option */
#define CTL_POS_MAX 4          /* positional arguments of a command */
#define CTL_WAIT_DEFAULT_S 300

/* One option a command accepts. */
struct ctl_optspec {
	const char *name;      /* without "--" */
	int kind;              /* CTL_FLAG, CTL_VALUE, CTL_MULTI, CTL_OPTVALUE */
};
enum { CTL_FLAG = 0, CTL_VALUE, CTL_MULTI, CTL_OPTVALUE };

struct ctl_optval {
	bool set;
	const char *value;             /* CTL_VALUE / CTL_OPTVALUE (NULL: no value) */
	const char *multi[CTL_MULTI_MAX];
	size_t count;
};

struct ctl_args {
	const struct ctl_optspec *spec;
	size_t nspec;
	struct ctl_optval vals[16];
	const char *pos[CTL_POS_MAX];
	size_t npos;
};

/* One command: "lvol create" etc. */
struct ctl_cmd {
	const char *group;      /* "lvol"; NULL for top-level ("events", "status") */
	const char *name;
	const char *synopsis;   /* usage line after "diskctl " */
	const char *help;       /* what it does */
	const struct ctl_optspec *opts;
	size_t nopts;
	size_t min_pos, max_pos;
	bool reads;             /* read-only command (accepts --json for output) */
	int (*run)(struct ctl *ctl, struct ctl_args *a);
};

struct ctl {
	const char *db_path;
	bool json;
	struct db *db;
	const struct ctl_cmd *cmd;
};

/* Errors: print "diskctl: <message>" (one line) and return the exit code.
 * The last message is also kept (ctl_err_last) and, inside a batch, prefixed
 * with the batch's context ("line 7: "). */
int ctl_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The db's last error, mapped to exit 1. */
int ctl_db_err(struct ctl *ctl, int rc, const char *what);
int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ctl_err_last(void);          /* "" when none since ctl_err_context() */
void ctl_err_context(const char *prefix); /* also clears the last message */

/* Command line: global options out of words[] (--db refused unless db_ok),
 * then the command and its arguments. ctl_command returns CTL_RUN when *out
 * is ready to run, else an exit code (help printed: 0, bad input: 2). */
#define CTL_RUN (-1)
int ctl_globals(int n, char **words, bool db_ok, struct ctl *ctl, bool *help, char **rest,
		int *nrest);
int ctl_command(int nrest, char **rest, bool help, const struct ctl_cmd **out,
		struct ctl_args *args);

/* Options. */
const struct ctl_optval *ctl_opt(const struct ctl_args *a, const char *name);
const char *ctl_opt_str(const struct ctl_args *a, const char *name);
bool ctl_opt_flag(const struct ctl_args *a, const char *name);
int ctl_parse(const struct ctl_cmd *cmd, int argc, char **argv, struct ctl_args *a);

/* Value parsers: 0 or an exit code already reported. */
int ctl_parse_id(const struct ctl_cmd *cmd, const char *what, const char *s, int64_t *out);
int ctl_parse_size(const struct ctl_cmd *cmd, const char *what, const char *s, uint64_t *out);
int ctl_parse_wait(const struct ctl_cmd *cmd, const struct ctl_args *a, int *seconds);
/* Absolute version of a path (relative ones are joined to the cwd). */
int ctl_abs_path(const char *what, const char *in, char *out, size_t len);

/* Output. */
void ctl_json_print(json_t *v); /* steals v */
/* While arr is set, ctl_json_print appends to it instead of printing (a JSON
 * batch wraps each command's output); NULL prints again. */
void ctl_json_capture(json_t *arr);
const char *ctl_size(uint64_t bytes, char *buf, size_t len);
const char *ctl_age(int64_t ms, char *buf, size_t len);
json_t *ctl_lvol_json(const struct db_lvol *l);
json_t *ctl_snapshot_json(const struct db_snapshot *s);
json_t *ctl_disk_json(const struct db_disk *d);
json_t *ctl_node_json(const struct db_node *n, int64_t now_ms);
json_t *ctl_event_json(const struct db_event *e);

/* --wait: poll until the lvol / snapshot reaches `want` (exit code). */
int ctl_wait_lvol(struct ctl *ctl, int64_t id, enum db_lvol_state want, int seconds);
int ctl_wait_snapshot(struct ctl *ctl, int64_t id, enum db_snapshot_state want, int seconds);

/* The commands (cmd_setup.c, cmd_lvol.c, cmd_status.c; `batch`: commands
 * from stdin on one database connection, batch.c): an exit code. */
int ctl_node_add(struct ctl *ctl, struct ctl_args *a);
int ctl_node_list(struct ctl *ctl, struct ctl_args *a);
int ctl_disk_add(struct ctl *ctl, struct ctl_args *a);
int ctl_disk_list(struct ctl *ctl, struct ctl_args *a);
int ctl_lvol_create(struct ctl *ctl, struct ctl_args *a);
int ctl_lvol_resize(struct ctl *ctl, struct ctl_args *a);
int ctl_lvol_delete(struct ctl *ctl, struct ctl_args *a);
int ctl_lvol_list(struct ctl *ctl, struct ctl_args *a);
int ctl_lvol_show(struct ctl *ctl, struct ctl_args *a);
int ctl_snapshot_create(struct ctl *ctl, struct ctl_args *a);
int ctl_snapshot_delete(struct ctl *ctl, struct ctl_args *a);
int ctl_snapshot_list(struct ctl *ctl, struct ctl_args *a);
int ctl_clone_create(struct ctl *ctl, struct ctl_args *a);
int ctl_events(struct ctl *ctl, struct ctl_args *a);
int ctl_status(struct ctl *ctl, struct ctl_args *a);
int ctl_batch(struct ctl *ctl, struct ctl_args *a);

/* Command table (main.c). */
extern const struct ctl_cmd ctl_cmds[];
extern const size_t ctl_ncmds;

#endif /* DE_DISKCTL_H */
