/*
 * agent.h: the one public header of src/agent, the diskengine node agent.
 *
 * The agent reads desired state for one node from the state store (src/db)
 * and drives the node's target (disktgt or a stock SPDK spdk_tgt) over
 * JSON-RPC until the target matches, writing observed state back
 * (DESIGN.md "The agent's loops"). It runs three loops, each a thread with
 * its own DB handle and its own JSON-RPC connection:
 *
 *   provisioning  disks (base bdev + lvstore, create or adopt), CREATING lvols
 *                 and snapshots, then verify (drift, orphans, re-export,
 *                 capacity/free) at most once per tick
 *   resize        RESIZING lvols: persisted zeroing intent, resize, NVMe/TCP
 *                 Write Zeroes of the new region, READY
 *   delete        DELETING lvols and snapshots: namespace, subsystem, lvol;
 *                 never finalized while the lvstore is not loaded
 *
 * Each loop ticks every tick_ms and at once when desired state changes
 * (db_change_counter polled every poll_ms). Transient errors (target down,
 * timeout) never change a row's state; a timeout means "unknown": the next
 * tick re-reads the target before acting again.
 *
 * Crash points (fault injection, DESIGN.md / issue 9): every point between
 * two external effects has a name; DISKENGINE_CRASH_AT=<name>[:<count>]
 * makes the process _exit(AGENT_CRASH_EXIT) the <count>-th time (default 1)
 * it reaches that point.
 */
#ifndef DE_AGENT_H
#define DE_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PATH_MAX 1024
#define AGENT_NAME_MAX 64
#define AGENT_NQN_MAX 224
#define AGENT_TICK_MS_DEFAULT 1000
#define AGENT_POLL_MS_DEFAULT 5
#define AGENT_RPC_TIMEOUT_MS_DEFAULT 30000
#define AGENT_NVME_TIMEOUT_MS_DEFAULT 30000
#define AGENT_ORPHAN_GRACE_S_DEFAULT 3600
#define AGENT_ZERO_CHUNK_DEFAULT (64ull << 20)
#define AGENT_EVENTS_KEEP_MS_DEFAULT (7ull * 24 * 3600 * 1000)
#define AGENT_CRASH_EXIT 86

struct agent;

struct agent_options {
	char db[AGENT_PATH_MAX];          /* path or postgresql:// URL (required) */
	char node[AGENT_NAME_MAX];        /* this node's name (required) */
	char rpc_socket[AGENT_PATH_MAX];  /* "" = the node row's rpc_socket */
	char nqn_prefix[AGENT_NQN_MAX];   /* "" = the node row's nqn_prefix */
	uint64_t tick_ms;                 /* loop period */
	uint64_t poll_ms;                 /* wake-up poll period */
	int rpc_timeout_ms;               /* per JSON-RPC call */
	int nvme_timeout_ms;              /* per NVMe command while zeroing */
	uint64_t zero_chunk;              /* bytes zeroed between two progress writes */
	bool orphan_collect;              /* quarantine + delete orphans (off by default) */
	uint64_t orphan_grace_s;          /* quarantine -> delete after this long */
	char metrics_listen[128];         /* "" = no metrics endpoint */
	char log_level[16];               /* "" = unchanged */
	bool no_wakeup;                   /* tick only: ignore desired-state changes
					   * between ticks (benchmarks; default off) */
	uint64_t verify_full_ms;          /* least time between two full verifies
					   * (bdev + subsystem listings); 0 = adaptive */
	uint64_t events_keep_ms;          /* this node's resolved events older than
					   * this are deleted; 0 = kept forever */
};

/* Defaults for everything; db and node empty. */
void agent_options_init(struct agent_options *o);

/*
 * Loads a config file of `key = value` lines ('#' comments, blank lines):
 *   db, node, rpc_socket, nqn_prefix, tick (duration: 500ms, 1s, 2m),
 *   poll (duration), rpc_timeout (duration), nvme_timeout (duration),
 *   zero_chunk (size), orphan_collect (on/off/true/false/yes/no/1/0),
 *   orphan_grace (duration), metrics_listen, log_level, wakeup (on/off, default
 *   on), verify_full (duration, least time between full verifies, default 0 =
 *   adaptive: see verify.c), events_keep (duration, how long this node's
 *   resolved events are kept, default 7d; 0 = forever).
 * Unknown keys and bad values fail with -EINVAL and one line in err
 * ("FILE:LINE: what"). Values already set in *o are overwritten.
 */
int agent_config_load(const char *path, struct agent_options *o, char *err, size_t errlen);
/* Durations: "250ms", "1s", "1.5s", "2m", "1h", "7d", a bare number is seconds. */
int agent_duration_parse(const char *s, uint64_t *ms_out);

/* Validates options (db, node set, tick > 0 ...). On failure err says why. */
int agent_create(const struct agent_options *o, struct agent **out, char *err, size_t errlen);
/* Runs the loops until agent_stop(); returns 0 on a clean stop or -errno. */
int agent_run(struct agent *a);
/* Asks agent_run() to return: loops finish the step they are in (no new
 * external effect is started). Async-signal-safe. */
void agent_stop(struct agent *a);
void agent_destroy(struct agent *a);

/* Crash points: the names, NULL-terminated, in a stable order. */
const char *const *agent_crash_points(void);
/* Reads DISKENGINE_CRASH_AT (called by agent_create; tests may call it). */
int agent_crash_init(void);

#endif /* DE_AGENT_H */
