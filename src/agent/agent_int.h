/*
 * agent_int.h (private to src/agent): what the agent's files share: the
 * agent and loop structs, the target view, wire names, events, crash points.
 */
#ifndef DE_AGENT_INT_H
#define DE_AGENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"
#include "agent/spdk.h"
#include "common/common.h"
#include "db/db.h"

#define AGENT_MODEL "diskengine lvol"
#define AGENT_NSID 1u
#define MIB (1024ull * 1024)
/* A provisioning pass with more CREATING rows than this lists the target once. */
#define AGENT_BULK_ROWS 32

struct agent_loop;

typedef void (*agent_tick_fn)(struct agent_loop *l);

struct agent_event_key {
	char kind[DB_KIND_MAX];
	char object[DB_OBJECT_MAX];
};

/* Open events this loop raised (dedup: raise once, resolve once). */
struct agent_events {
	struct agent_event_key *v;
	size_t n, cap;
};

/* Retry backoff per row (zeroing failures): 1 s doubling up to 60 s. */
struct agent_backoff {
	int64_t id;
	uint64_t next_ms;
	uint64_t delay_ms;
};

struct agent_loop {
	struct agent *agent;
	const char *name;          /* "provision", "resize", "delete" */
	agent_tick_fn tick;
	pthread_t thread;
	bool started;
	struct db *db;
	struct spdk_client *spdk;
	struct db_node node;       /* this node's row (refreshed each tick) */
	char host_nqn[AGENT_NQN_MAX];
	char nqn_prefix[AGENT_NQN_MAX];
	uint64_t connections_seen; /* spdk connections when the transport was ensured */
	bool transport_ok[2];      /* per enum db_transport, for this connection */
	struct agent_events events;
	uint64_t last_verify_ms;
	uint64_t ticks;
	bool target_down;          /* last tick could not reach the target */
	unsigned down_passes;      /* passes in a row that could not reach it */
	bool db_down;              /* last heartbeat write failed */
	/* Disk problems already logged (bitmap by disk index would be fragile:
	 * keep the disk ids). */
	int64_t *noisy_disks;
	size_t n_noisy;
	struct agent_backoff *backoff;
	size_t n_backoff;
	/* Verify (verify.c): when the last full pass ran, what it cost, and what
	 * forces the next one (a new target connection, changed listeners, an
	 * lvstore that was absent). */
	uint64_t verify_full_at_ms;
	uint64_t verify_full_cost_us;
	uint64_t verify_conns;
	uint64_t verify_listen_sum;
	bool verify_absent;
	uint64_t events_prune_at_ms; /* next pruning of resolved events (events.c) */
};

struct agent {
	struct agent_options opt;
	int stop_fd;               /* eventfd: readable once agent_stop() ran */
	atomic_bool stopping;
	struct agent_loop loops[3];
};

/* ----------------------------------------------------------- loops */
bool agent_stopping(const struct agent *a);
void agent_provision_tick(struct agent_loop *l);
void agent_resize_tick(struct agent_loop *l);
void agent_delete_tick(struct agent_loop *l);
void agent_verify(struct agent_loop *l);

/* ----------------------------------------------------------- names */
/* "<prefix>:lvol-<id>" */
void agent_lvol_nqn(const char *prefix, int64_t id, char out[AGENT_NQN_MAX]);
/* "DE" + id zero-padded to 18 digits (NVMe serial: 20 chars). */
void agent_lvol_serial(int64_t id, char out[24]);
/* "<prefix>:agent:<node>" */
void agent_host_nqn(const char *prefix, const char *node, char out[AGENT_NQN_MAX]);
/* "snap-<id>" */
void agent_snapshot_name(int64_t id, char out[32]);
/* Names in the agent's scheme: "42" -> lvol 42, "snap-7" -> snapshot 7.
 * Return the id, or 0 when the name is not ours (leading zeros, junk). */
int64_t agent_name_lvol_id(const char *name);
int64_t agent_name_snapshot_id(const char *name);
/* If nqn is "<prefix>:lvol-<id>", the id, else 0. */
int64_t agent_nqn_lvol_id(const char *prefix, const char *nqn);
/* Bytes rounded up to MiB, in MiB. */
uint64_t agent_size_mib(uint64_t bytes);
/* Bytes the target will give for `bytes`: MiB, then whole clusters. */
uint64_t agent_size_real(uint64_t bytes, uint64_t cluster_size);

/* ---------------------------------------------------------- events */
/* Raise once per open condition (kind, object); later calls are no-ops
 * until agent_event_resolve(). Logs one line when raised. */
void agent_event_raise(struct agent_loop *l, const char *kind, const char *object,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Raise and resolve at once: a one-off fact (e.g. "re-exported"). */
void agent_event_note(struct agent_loop *l, const char *kind, const char *object,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void agent_event_resolve(struct agent_loop *l, const char *kind, const char *object);
bool agent_event_open(const struct agent_loop *l, const char *kind, const char *object);
/* Seeds the set with the DB's open events of these kinds (after a restart). */
void agent_events_load(struct agent_loop *l);
/* Deletes this node's events resolved longer than events_keep ago; runs at
 * start and then every events_keep / 10 (at least a tick, at most an hour). */
void agent_events_prune(struct agent_loop *l);
void agent_events_free(struct agent_events *e);

/* ----------------------------------------------------- crash points */
/* Exits the process if DISKENGINE_CRASH_AT names this point (and the count
 * is reached). `name` must be one of agent_crash_points(). */
void agent_crash(const char *name);

/* ----------------------------------------------------- target view */
/* One consistent-enough snapshot of the target taken at the start of a pass. */
struct agent_view {
	struct spdk_lvstore_list lvstores;
	struct spdk_lvol_list *lvols;     /* per lvstore (same index), NULL entries not fetched */
	bool *lvols_ok;
	struct spdk_subsystem_list subsystems;
	bool have_subsystems;
	struct spdk_bdev_list bdevs;
	bool have_bdevs;
};
void agent_view_free(struct agent_view *v);
/* get_lvstores (+ get_lvols for each, when want_lvols) (+ subsystems) (+ bdevs). */
int agent_view_fetch(struct agent_loop *l, struct agent_view *v, bool want_lvols,
		     bool want_subsystems, bool want_bdevs);
/* Index of the lvstore with this uuid in v->lvstores, or -1. */
int agent_view_lvstore(const struct agent_view *v, const char *uuid);
/* The lvol named `name` in lvstore `lvs_uuid`, or NULL (lvols not fetched: NULL). */
const struct spdk_lvol *agent_view_lvol(const struct agent_view *v, const char *lvs_uuid,
					const char *name);

/* ------------------------------------------------------- nvmf/disk */
/* The disk's listen addresses as SPDK listen_address objects (interface
 * resolved now). *out owned by the caller (mem_free). */
int agent_disk_listeners(const struct db_disk *d, struct spdk_listen_addr **out, size_t *n);
/* Subsystem for lvol: transport, subsystem, listeners, hosts (create what is
 * missing according to `sub` = the subsystem as last listed, NULL = absent). */
int agent_nvmf_ensure(struct agent_loop *l, const struct db_disk *d, const struct db_lvol *lv,
		      const struct spdk_subsystem *sub);
/* add_ns(nsid 1, uuid = lvol uuid) unless `sub` already has it. */
int agent_nvmf_export(struct agent_loop *l, const struct db_lvol *lv,
		      const struct spdk_subsystem *sub);
bool agent_subsystem_has_ns(const struct spdk_subsystem *sub, const char *bdev_uuid);
/* nvmf_create_transport once per connection to the target (0 or -errno). */
int agent_nvmf_transport(struct agent_loop *l, enum db_transport t);
/* A permanent error: the row goes to FAILED with this reason (generation
 * checked). */
void agent_lvol_fail(struct agent_loop *l, const struct db_lvol *lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The end of an lvol's provisioning: its NQN recorded, READY (generation
 * checked; a row changed meanwhile is undone). 0 when READY. */
int agent_provision_ready(struct agent_loop *l, const struct db_lvol *lv, const char *nqn);
/* batch.c: one pipelined step over the rows of a batch. Each row struct
 * starts with this; `out` rows are skipped, a failed call sets it. */
struct agent_batch_row {
	bool out;
	int64_t id;
	int rc;                 /* why it left: the error of its first failed call */
	size_t k;               /* and which call that was */
};
/* Fills *req for row r's call k (k: which of its calls: a listener, a host,
 * or one of the independent calls a step makes together); false: no such
 * call for this row. */
typedef bool (*agent_batch_make)(struct agent_loop *l, void *row, size_t k, struct spdk_req *req);
/* Takes a successful reply's result (borrowed); 0, or -errno to fail the row. */
typedef int (*agent_batch_reply)(void *row, size_t k, const json_t *result);
/* Calls k0 .. k0+nk-1 of every row in one batch (they must not depend on
 * each other); a row leaves the batch when one of its calls fails. *ran:
 * calls that succeeded. Returns a transport failure, else 0. */
int agent_batch_step(struct agent_loop *l, void *rows, size_t row_size, size_t n, size_t k0,
		     size_t nk, agent_batch_make make, agent_batch_reply reply, const char *what,
		     size_t *ran);
/* The step for k = 0 .. count-1 (at most one call per subsystem per batch);
 * crash_point (may be NULL) after each batch that changed something. */
int agent_batch_each(struct agent_loop *l, void *rows, size_t row_size, size_t n, size_t count,
		     agent_batch_make make, const char *what, const char *crash_point);

/* provision_batch.c: the plain new rows of a pass, independent calls
 * together and every step pipelined over all of them; done[i] set for the
 * rows made READY. *stale: a row left the batch part-way (fetch the view
 * again before provision_lvol). A transient error stops the pass. */
int agent_provision_batch(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
			  struct db_lvol *lvols, size_t n_lvols, struct agent_view *v, bool *done,
			  bool *stale);
/* delete_batch.c: the plain DELETING lvols of a pass, every step pipelined
 * over all of them; done[i] for the rows finalized, disk_touched[disk index]
 * for their disks. *touched: the target was changed (the view is stale). */
int agent_delete_batch(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
		       const struct db_lvol *lvols, size_t n_lvols, const struct agent_view *v,
		       bool *done, bool *disk_touched, bool *touched);
/* Disks: base bdev + lvstore ensured (create or adopt); v is refreshed. */
void agent_disks_ensure(struct agent_loop *l, struct db_disk *disks, size_t n,
			struct agent_view *v);
const struct db_disk *agent_disk_find(const struct db_disk *disks, size_t n, int64_t id);
/* Logging helper: log a per-disk problem once until it clears. */
bool agent_noisy_once(struct agent_loop *l, int64_t disk_id, bool problem);

/* Backoff: may row `id` be retried now? A failure doubles its delay; a
 * success forgets it. */
bool agent_backoff_ready(struct agent_loop *l, int64_t id);
void agent_backoff_fail(struct agent_loop *l, int64_t id);
void agent_backoff_clear(struct agent_loop *l, int64_t id);

/* Zeroing through NVMe/TCP Write Zeroes (resize loop). */
int agent_zero_range(struct agent_loop *l, const struct db_disk *d, struct db_lvol *lv);

#endif /* DE_AGENT_INT_H */
