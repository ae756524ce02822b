/*
 * db.h: the one public header of src/db, the desired/observed state store
 * shared by diskctl (writes desired state) and the diskengine agent (reads
 * desired state, writes observed state).
 *
 * One interface, several backends: a `struct db` is an opaque handle whose
 * operations go through a private vtable. db_open() picks the backend from
 * its argument: a plain path opens/creates an SQLite file (WAL, busy timeout,
 * foreign keys, mode 0600); "postgresql://..." (or "postgres://") selects
 * PostgreSQL (libpq; -ENOTSUP when built without it): a lost server
 * connection makes calls fail with -EAGAIN and is re-established with
 * backoff by a later call. Callers never see SQL.
 *
 * Threads: a handle is used by one thread at a time. Each agent loop opens its
 * own handle.
 *
 * Errors: every function returns 0 or -errno. On failure db_errmsg() holds one
 * human line saying what and why (for diskctl to print). Common codes:
 *   -ENOENT  no such row            -EEXIST  name already taken
 *   -EINVAL  bad value (name, size) -ENOSPC  thick lvol larger than known free
 *   -EBUSY   wrong state for the request (e.g. resize while DELETING)
 *   -ESTALE  conditional write lost: the row's generation moved (re-read)
 *   -EAGAIN  database locked for longer than the busy timeout
 *   -EROFS / -EACCES  database file not writable / not readable
 *   -EIO     any other backend failure       -ENOMEM
 *
 * generation: each row's generation is bumped by every DESIRED-state change
 * (diskctl: create, resize, delete, snapshot, clone). The agent's
 * observed-state writes (uuid, real size, READY, FAILED, zero progress ...)
 * never bump it; they set updated_at. Agent state transitions are conditional
 * on the generation it read (expect_gen), so an operator's delete during a
 * create is never clobbered by a late READY. expect_gen == 0 means "always".
 *
 * Times are milliseconds since the epoch (0 = never). Sizes are bytes.
 *
 * Free text from agents (reasons, event details) is never refused: control
 * characters and invalid UTF-8 become '?', and it is cut to DB_REASON_MAX-1
 * bytes at a character boundary. Names, paths and NQNs are validated strictly.
 *
 * Ownership: list functions allocate an array the caller frees with the
 * matching *_list_free(); db_lvol_get() fills a caller-owned struct whose
 * heap fields are released by db_lvol_clear(). String pointers passed in are
 * only borrowed for the call.
 */
#ifndef DE_DB_H
#define DE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_NAME_MAX 64        /* node/disk/lvstore names: 1..63 chars [A-Za-z0-9._-], first alnum */
#define DB_PATH_MAX 1024      /* socket / file / device paths, NUL included */
#define DB_NQN_MAX 224        /* NVMe NQN: up to 223 bytes */
#define DB_UUID_LEN 37        /* 36 chars + NUL; "" when unknown */
#define DB_REASON_MAX 512     /* reason / event detail text, truncated */
#define DB_KIND_MAX 48        /* event kind */
#define DB_OBJECT_MAX 128     /* event object, e.g. "lvol/42", "disk/d1" */
#define DB_IFNAME_MAX 16      /* IFNAMSIZ */
#define DB_LISTEN_MAX 8       /* explicit listen addresses per disk */
#define DB_HOSTS_MAX 64       /* allowed host NQNs per lvol */
#define DB_TRADDR_MAX 46      /* INET6_ADDRSTRLEN */
#define DB_NQN_PREFIX_DEFAULT "nqn.2026-11.io.diskengine"
#define DB_CLUSTER_SIZE_DEFAULT (4ull << 20)
#define DB_PORT_DEFAULT 4420
#define DB_LVOL_SIZE_MAX (1ull << 50) /* 1 PiB: anything larger is refused as absurd */
#define DB_NODE_LIVE_MS 30000 /* a node whose heartbeat is older is shown (and placed) as down */

struct db;

/* ------------------------------------------------------------------ enums */

enum db_lvol_state {
	DB_LVOL_ANY = -1, /* filter only */
	DB_LVOL_CREATING = 0,
	DB_LVOL_READY,
	DB_LVOL_RESIZING,
	DB_LVOL_DELETING,
	DB_LVOL_DELETED,
	DB_LVOL_FAILED,
};

enum db_snapshot_state {
	DB_SNAPSHOT_ANY = -1, /* filter only */
	DB_SNAPSHOT_CREATING = 0,
	DB_SNAPSHOT_READY,
	DB_SNAPSHOT_DELETING,
	DB_SNAPSHOT_DELETED,
	DB_SNAPSHOT_FAILED,
};

enum db_lvstore_state { DB_LVSTORE_ABSENT = 0, DB_LVSTORE_LOADED };
enum db_transport { DB_TRANSPORT_TCP = 0, DB_TRANSPORT_RDMA };

/* Upper-case names as stored and printed ("CREATING", "absent", "TCP"). */
const char *db_lvol_state_name(enum db_lvol_state s);
const char *db_snapshot_state_name(enum db_snapshot_state s);
const char *db_lvstore_state_name(enum db_lvstore_state s);
const char *db_transport_name(enum db_transport t);
/* Case-insensitive parse; -EINVAL on anything else. */
int db_lvol_state_parse(const char *s, enum db_lvol_state *out);
int db_snapshot_state_parse(const char *s, enum db_snapshot_state *out);
int db_transport_parse(const char *s, enum db_transport *out);

/* ------------------------------------------------------------------- rows */

struct db_node {
	int64_t id;
	char name[DB_NAME_MAX];
	char rpc_socket[DB_PATH_MAX];
	char nqn_prefix[DB_NQN_MAX];   /* default DB_NQN_PREFIX_DEFAULT */
	int64_t last_seen;             /* agent heartbeat, 0 = never */
	uint64_t generation;
	int64_t created_at, updated_at;
};

struct db_listen {
	char traddr[DB_TRADDR_MAX];    /* "127.0.0.1", "::1" (no brackets) */
	uint16_t port;
	bool ipv6;                     /* adrfam IPv6 (else IPv4) */
};

struct db_disk {
	int64_t id;
	char name[DB_NAME_MAX];
	int64_t node_id;
	char node[DB_NAME_MAX];
	char path[DB_PATH_MAX];        /* file or block device for the base bdev */
	bool is_device;                /* --device (else --file) */
	char lvstore[DB_NAME_MAX];     /* lvstore name (default: the disk name) */
	uint64_t cluster_size;         /* desired at creation; observed once loaded */
	/* Listeners: either explicit addresses or an interface + port. */
	struct db_listen listen[DB_LISTEN_MAX];
	size_t listen_count;
	char interface[DB_IFNAME_MAX]; /* "" when explicit addresses are used */
	uint16_t port;                 /* for interface; DB_PORT_DEFAULT */
	enum db_transport transport;
	/* Observed by the agent. */
	char lvstore_uuid[DB_UUID_LEN];
	enum db_lvstore_state lvstore_state;
	uint64_t capacity;             /* bytes, valid when observed_at != 0 */
	uint64_t free;                 /* bytes, valid when observed_at != 0 */
	int64_t observed_at;
	uint64_t generation;
	int64_t created_at, updated_at;
};

struct db_lvol {
	int64_t id;                    /* decimal string = lvol name in the target */
	int64_t disk_id;
	char disk[DB_NAME_MAX];
	int64_t node_id;
	char node[DB_NAME_MAX];
	uint64_t size;                 /* requested bytes */
	uint64_t real_size;            /* as reported by the target, 0 until known */
	bool thin;
	enum db_lvol_state state;
	char reason[DB_REASON_MAX];    /* "" when none */
	char uuid[DB_UUID_LEN];        /* "" until known */
	char nqn[DB_NQN_MAX];          /* "<node nqn prefix>:lvol-<id>", set at create */
	char **hosts;                  /* allowed host NQNs (heap, see db_lvol_clear) */
	size_t host_count;
	int64_t clone_of;              /* parent snapshot id for clones, 0 = none */
	/* Resize zeroing intent: active when zero_to > zero_from. */
	uint64_t zero_from, zero_to, zero_done;
	uint64_t generation;
	int64_t created_at, updated_at;
};

struct db_snapshot {
	int64_t id;                    /* name in the target: "snap-<id>" */
	int64_t lvol_id;
	int64_t disk_id;
	char disk[DB_NAME_MAX];
	int64_t node_id;
	char node[DB_NAME_MAX];
	uint64_t size;                 /* the lvol's size when requested */
	enum db_snapshot_state state;
	char reason[DB_REASON_MAX];
	char uuid[DB_UUID_LEN];
	uint64_t generation;
	int64_t created_at, updated_at;
};

struct db_event {
	int64_t id;
	char node[DB_NAME_MAX];        /* "" when not node-specific */
	char kind[DB_KIND_MAX];
	char object[DB_OBJECT_MAX];
	char detail[DB_REASON_MAX];
	int64_t first_seen, last_seen, resolved_at; /* resolved_at 0 = open */
	uint64_t count;
};

/* ------------------------------------------------------ open / close etc */

/* Opens (creating if needed, then migrating to the current schema) the store
 * named by url_or_path. *out is owned by the caller (db_close). */
int db_open(const char *url_or_path, struct db **out);
/* As db_open, but never creates or migrates: for read-only tools and tests.
 * -ENOENT when the file does not exist. */
int db_open_existing(const char *url_or_path, struct db **out);
void db_close(struct db *db);
/* Why the last failed db_open/db_open_existing of the calling thread failed
 * (one line, "" if none): there is no handle to ask. */
const char *db_open_errmsg(void);
/* Last error text of this handle ("" when none). Valid until the next call. */
const char *db_errmsg(const struct db *db);
/* Schema version of the open store. */
int db_schema_version(struct db *db, int *out);
/* Busy timeout in ms for lock waits (default 5000). */
void db_busy_timeout_set(struct db *db, int ms);

/*
 * Wake-ups: a cheap counter that moves whenever DESIRED state changes
 * (any diskctl write), not on observed-state writes (heartbeats, READY,
 * events), so agent loops can poll it every few ms and tick at once when it
 * moves. SQLite: PRAGMA data_version first (no I/O), the counter row only
 * when that changed. PostgreSQL: LISTEN/NOTIFY (a trigger notifies each
 * change; reading the counter only drains what the socket already holds).
 */
int db_change_counter(struct db *db, uint64_t *out);
/*
 * Wake-up filter of this handle (agent loops): only desired-state changes of
 * rows on `node` (NULL = any node) whose kind is in `kinds` (DB_CHANGE_*) move
 * the counter as this handle sees it; changes that concern every node (node
 * and disk registration) always do. PostgreSQL: the NOTIFY payload names the
 * node and the kind, the rest are dropped unread, so a create on one node
 * wakes only that node's provisioning loop. SQLite: ignored (one counter;
 * every loop sees every change).
 */
enum db_change_kind {
	DB_CHANGE_CREATE = 1, /* lvol, clone, snapshot created */
	DB_CHANGE_RESIZE = 2,
	DB_CHANGE_DELETE = 4, /* lvol, snapshot deleted */
	DB_CHANGE_ALL = 7,
};
void db_change_filter(struct db *db, const char *node, unsigned kinds);
/* 1 if the counter differs from `since` (new value in *now), 0 if not. */
int db_changes_since(struct db *db, uint64_t since, uint64_t *now);
/*
 * Blocks until the change counter differs from `since` (1, new value in
 * *now), timeout_ms passed or wake_fd (-1 = none) became readable (0), or
 * the store is unreachable (-errno after sleeping up to timeout_ms, so a
 * caller's loop never spins). SQLite: polls the counter every 5 ms inside;
 * PostgreSQL: waits on the connection's socket for NOTIFY (no polling).
 */
int db_change_wait(struct db *db, uint64_t since, int timeout_ms, int wake_fd, uint64_t *now);
/* Moves whenever ANY other connection commits anything (observed writes
 * included): a cheap "re-read now" hint for pollers such as diskctl --wait. */
int db_data_version(struct db *db, uint64_t *out);
/*
 * Blocks until db_data_version() differs from `since` (1, new value in *now)
 * or timeout_ms passed (0); -errno when the store is unreachable (after
 * sleeping up to timeout_ms). PostgreSQL waits on the connection's socket for
 * the data NOTIFY (a write is seen the moment it commits, no polling);
 * SQLite polls data_version every 1 ms (5 ms after the first 100 ms of a call).
 */
int db_data_wait(struct db *db, uint64_t since, int timeout_ms, uint64_t *now);

/* Validators used by every writer (and by diskctl before writing). */
bool db_name_valid(const char *name);       /* node, disk, lvstore names */
bool db_nqn_valid(const char *nqn);         /* "nqn." prefix, printable ASCII, <= 223 */
/* "IP:PORT" or "[IPv6]:PORT" into *out; -EINVAL on junk. */
int db_listen_parse(const char *s, struct db_listen *out);

/* ------------------------------------------------------------------ nodes */

/* nqn_prefix NULL = default. -EEXIST if the name is taken. */
int db_node_add(struct db *db, const char *name, const char *rpc_socket, const char *nqn_prefix,
		int64_t *id_out);
int db_node_get(struct db *db, const char *name, struct db_node *out);
int db_node_get_by_id(struct db *db, int64_t id, struct db_node *out);
int db_node_list(struct db *db, struct db_node **out, size_t *count);
void db_node_list_free(struct db_node *nodes, size_t count);
/* Agent: last_seen = now. Not a desired-state change. */
int db_node_heartbeat(struct db *db, int64_t node_id);

/* ------------------------------------------------------------------ disks */

/* Desired fields of *spec are used (name, node, path, is_device, lvstore
 * ("" = the disk name), cluster_size (0 = default), listen/interface/port,
 * transport); ids and observed fields are ignored. */
int db_disk_add(struct db *db, const struct db_disk *spec, int64_t *id_out);
int db_disk_get(struct db *db, const char *name, struct db_disk *out);
int db_disk_get_by_id(struct db *db, int64_t id, struct db_disk *out);
/* node NULL = all disks. */
int db_disk_list(struct db *db, const char *node, struct db_disk **out, size_t *count);
void db_disk_list_free(struct db_disk *disks, size_t count);
/* Agent start-up: lvstore created/adopted. uuid required; cluster_size 0 keeps. */
int db_disk_set_lvstore(struct db *db, int64_t disk_id, const char *lvstore_uuid,
			uint64_t cluster_size);
/* Agent verify / delete loop: observed lvstore state and space. When state is
 * ABSENT, capacity and free are ignored (last known values kept). */
int db_disk_observe(struct db *db, int64_t disk_id, enum db_lvstore_state state,
		    uint64_t capacity, uint64_t free_bytes);

/* ------------------------------------------------------------------ lvols */

struct db_lvol_spec {
	const char *disk;          /* NULL: placement (below); ignored for clones */
	uint64_t size;             /* required unless clone_of != 0 */
	bool thin;
	const char *const *hosts;  /* allowed host NQNs */
	size_t host_count;
	int64_t clone_of;          /* snapshot id: clone (disk/size from the snapshot) */
	const char *node;          /* with disk: must be the disk's node; without: place there */
};

/* diskctl: new lvol in CREATING. Without a disk it is placed, in the same
 * transaction (so concurrent creates cannot over-commit), on the disk with
 * the most known free space (free minus pending thick creates) among live
 * nodes (heartbeat within DB_NODE_LIVE_MS) whose lvstore is loaded.
 * Refuses (nothing written) unknown disk,
 * size 0 or > DB_LVOL_SIZE_MAX, bad NQNs, a thick size larger than the disk's
 * known free bytes minus pending thick creates (-ENOSPC), a clone of a
 * snapshot that is not READY (-EBUSY). */
int db_lvol_create(struct db *db, const struct db_lvol_spec *spec, int64_t *id_out);
/* diskctl: READY -> RESIZING with a new requested size. Smaller than the
 * current size: -EINVAL unless allow_shrink. Same size: 0, nothing changed. */
int db_lvol_resize(struct db *db, int64_t id, uint64_t new_size, bool allow_shrink);
/* diskctl: any live state -> DELETING. Already DELETING: 0. DELETED: -ENOENT. */
int db_lvol_delete(struct db *db, int64_t id);

int db_lvol_get(struct db *db, int64_t id, struct db_lvol *out);
/* Releases the heap fields of one struct db_lvol (not the struct). */
void db_lvol_clear(struct db_lvol *lvol);

struct db_lvol_filter {
	const char *node;          /* NULL = any */
	const char *disk;          /* NULL = any */
	enum db_lvol_state state;  /* DB_LVOL_ANY = any */
	bool include_deleted;      /* with state ANY: also DELETED rows */
};
/* Ordered by id. */
int db_lvol_list(struct db *db, const struct db_lvol_filter *f, struct db_lvol **out,
		 size_t *count);
int db_lvol_list_by_state(struct db *db, const char *node, enum db_lvol_state state,
			  struct db_lvol **out, size_t *count);
void db_lvol_list_free(struct db_lvol *lvols, size_t count);

/* Agent writes (observed state; never bump generation). */
/* uuid (required) and real size (0 = keep); state unchanged, unconditional. */
int db_lvol_set_uuid(struct db *db, int64_t id, const char *uuid, uint64_t real_size);
int db_lvol_set_real_size(struct db *db, int64_t id, uint64_t real_size);
int db_lvol_set_nqn(struct db *db, int64_t id, const char *nqn);
/* State transition, conditional on expect_gen (-ESTALE). reason NULL clears it.
 * To DELETED: also clears the zero intent. */
int db_lvol_set_state(struct db *db, int64_t id, uint64_t expect_gen, enum db_lvol_state state,
		      const char *reason);
/* Reason only (transient error note), state unchanged. NULL clears. */
int db_lvol_set_reason(struct db *db, int64_t id, const char *reason);
/* Resize: persist the zeroing intent [from, to) before resizing; zero_done = from. */
int db_lvol_zero_begin(struct db *db, int64_t id, uint64_t expect_gen, uint64_t from, uint64_t to);
/* Zeroing progress: bytes in [zero_from, done) are zero. */
int db_lvol_zero_progress(struct db *db, int64_t id, uint64_t done);
/* Resize finished: clear the intent, record real_size (0 = keep), READY, reason
 * cleared, in one transaction; conditional on expect_gen. */
int db_lvol_resize_done(struct db *db, int64_t id, uint64_t expect_gen, uint64_t real_size);

/* -------------------------------------------------------------- snapshots */

/* diskctl: snapshot of a READY lvol, in CREATING. */
int db_snapshot_create(struct db *db, int64_t lvol_id, int64_t *id_out);
/* diskctl: -> DELETING (already DELETING: 0; DELETED: -ENOENT). */
int db_snapshot_delete(struct db *db, int64_t id);
int db_snapshot_get(struct db *db, int64_t id, struct db_snapshot *out);

struct db_snapshot_filter {
	const char *node;              /* NULL = any */
	int64_t lvol_id;               /* 0 = any */
	enum db_snapshot_state state;  /* DB_SNAPSHOT_ANY = any */
	bool include_deleted;
};
int db_snapshot_list(struct db *db, const struct db_snapshot_filter *f,
		     struct db_snapshot **out, size_t *count);
int db_snapshot_list_by_state(struct db *db, const char *node, enum db_snapshot_state state,
			      struct db_snapshot **out, size_t *count);
void db_snapshot_list_free(struct db_snapshot *snaps, size_t count);
/* Agent writes. */
int db_snapshot_set_uuid(struct db *db, int64_t id, const char *uuid);
int db_snapshot_set_state(struct db *db, int64_t id, uint64_t expect_gen,
			  enum db_snapshot_state state, const char *reason);
int db_snapshot_set_reason(struct db *db, int64_t id, const char *reason);

/* ----------------------------------------------------------------- events */

/* Upsert: an open row with the same (kind, object) gets count++, last_seen =
 * now and the new detail; otherwise a new row. node may be NULL. */
int db_event_raise(struct db *db, const char *node, const char *kind, const char *object,
		   const char *detail);
/* Sets resolved_at on the open (kind, object) row; no open row: 0. */
int db_event_resolve(struct db *db, const char *kind, const char *object);
/* Deletes the events of node (NULL: of every node) resolved before
 * resolved_before (ms since the epoch); open ones are never deleted. *pruned
 * (may be NULL): rows deleted. */
int db_event_prune(struct db *db, const char *node, int64_t resolved_before, int *pruned);
/* Ordered by last_seen, newest last. include_resolved false: open rows only. */
int db_event_list(struct db *db, bool include_resolved, struct db_event **out, size_t *count);
void db_event_list_free(struct db_event *events, size_t count);

#endif /* DE_DB_H */
