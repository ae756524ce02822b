/*
 * nvmf.h: the NVMe-oF target of disktgt (SPDK's "nvmf" layer, our own code).
 *
 * A target (struct nvmf_tgt) lives on one event loop and holds:
 *   - transports: only "TCP" is implemented (tuning options as SPDK's
 *     nvmf_create_transport / nvmf_get_transports report them);
 *   - subsystems keyed by NQN: the discovery subsystem (created with the
 *     target, cannot be deleted) and NVMe subsystems with namespaces (bdevs),
 *     listeners (a real TCP listening socket per address, shared between
 *     subsystems that name the same address) and allowed hosts;
 *   - controllers and queue pairs created by hosts through NVMe/TCP.
 *
 * Threading: everything runs on the loop given to nvmf_tgt_create(); no call
 * blocks. Data moves socket -> bdev async I/O -> socket.
 *
 * Errors: functions return 0 or -errno. The errno values are chosen so the
 * JSON-RPC layer can map them to SPDK's messages; each function lists them.
 *
 * Ownership: the target owns every transport, subsystem, namespace,
 * listener, host entry, controller and qpair. Pointers returned by lookups
 * and iterators stay valid until the object is removed/destroyed or the
 * target is destroyed. Strings passed in are copied.
 *
 * Bdevs: adding a namespace claims the bdev BDEV_CLAIM_EXCL_WRITE with module
 * "NVMe-oF Target"; removing the namespace releases the claim. Whoever is
 * about to unregister a bdev (lvol delete, bdev_malloc_delete ...) must call
 * nvmf_tgt_bdev_removed() first: it removes every namespace on that bdev
 * (hosts get a namespace-attribute-changed async event) and releases the
 * claim, so bdev_unregister() then succeeds. That reproduces SPDK, where
 * deleting an exported lvol succeeds and the namespace silently disappears.
 */
#ifndef DE_NVMF_H
#define DE_NVMF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

struct bdev;
struct nvmf_tgt;
struct nvmf_transport;
struct nvmf_subsystem;
struct nvmf_ns;

#define NVMF_DISCOVERY_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define NVMF_NQN_MAX_LEN 223    /* without the NUL */
#define NVMF_NQN_MIN_LEN 11
#define NVMF_SN_MAX_LEN 20
#define NVMF_MN_MAX_LEN 40
#define NVMF_DEFAULT_SN "00000000000000000000"
#define NVMF_DEFAULT_MN "SPDK bdev Controller"
#define NVMF_DEFAULT_MAX_NAMESPACES 32
#define NVMF_MIN_CNTLID 1
#define NVMF_MAX_CNTLID 0xFFEF

/* ----------------------------------------------------------- target */

/* Creates the target and its discovery subsystem. */
int nvmf_tgt_create(struct ev_loop *loop, struct nvmf_tgt **out);
/* Closes every connection and listener, removes every namespace (releasing
 * the bdev claims) and frees everything. Must run before bdev_module_fini().
 * Bdev I/O still in flight is waited for by running the loop briefly.
 * NULL is a no-op. */
void nvmf_tgt_destroy(struct nvmf_tgt *tgt);
struct ev_loop *nvmf_tgt_loop(const struct nvmf_tgt *tgt);

/* Removes every namespace (in every subsystem) whose bdev is `bdev`,
 * releasing its claim and sending namespace-attribute-changed events to
 * connected hosts. Returns how many namespaces were removed. */
int nvmf_tgt_bdev_removed(struct nvmf_tgt *tgt, struct bdev *bdev);

/* The size of `bdev` changed (lvol resize, aio rescan): hosts connected to
 * subsystems exporting it get a namespace-attribute-changed event so they
 * re-read Identify Namespace. Returns how many namespaces export it. */
int nvmf_tgt_bdev_resized(struct nvmf_tgt *tgt, struct bdev *bdev);

/* 0 if `nqn` is a valid NQN by SPDK's rules (length 11..223; either
 * "nqn.2014-08.org.nvmexpress:uuid:<uuid>" or "nqn.yyyy-mm.<reverse domain>"
 * optionally followed by ":<anything>"; the discovery NQN is valid);
 * -EINVAL otherwise. */
int nvmf_nqn_validate(const char *nqn);

/* -------------------------------------------------------- transports */

struct nvmf_transport_opts {
	uint32_t max_queue_depth;        /* 128; I/O queue entries (CAP.MQES+1) */
	uint32_t max_io_qpairs_per_ctrlr; /* 127 */
	uint32_t in_capsule_data_size;   /* 4096 (IOCCSZ = 4 + this/16) */
	uint32_t max_io_size;            /* 131072 (MDTS, MAXH2CDATA) */
	uint32_t io_unit_size;           /* 131072 */
	uint32_t max_aq_depth;           /* 128 */
	uint32_t num_shared_buffers;     /* 511 (accepted, reported) */
	uint32_t buf_cache_size;         /* UINT32_MAX (accepted, reported) */
	bool c2h_success;                /* true: C2HData SUCCESS when the host disabled SQ flow control */
	bool dif_insert_or_strip;        /* false (accepted, reported) */
	bool zcopy;                      /* false (accepted, reported) */
	int32_t sock_priority;           /* 0 */
	uint32_t abort_timeout_sec;      /* 1 */
	uint32_t ack_timeout;            /* 0 */
	uint32_t data_wr_pool_size;      /* 0 */
	bool disable_command_passthru;   /* false */
	uint32_t kas;                    /* 100: Identify KAS, in 100 ms units */
	uint32_t min_kato;               /* 10000 ms: a smaller host KATO is raised to this */
};

/* SPDK's defaults for `trtype` ("TCP", case-insensitive; other types get the
 * same defaults). */
void nvmf_transport_opts_init(struct nvmf_transport_opts *opts);
/* trtype is matched case-insensitively. -EEXIST if a transport of that type
 * exists ("Transport type 'TCP' already exists"); -EPROTONOSUPPORT for any
 * type but TCP; -EINVAL for unusable options (max_queue_depth < 2 or > 65536,
 * max_io_size not a multiple of 4096 or < 4096, max_aq_depth < 2). opts NULL
 * = defaults. */
int nvmf_transport_create(struct nvmf_tgt *tgt, const char *trtype,
			  const struct nvmf_transport_opts *opts, struct nvmf_transport **out);
/* Case-insensitive; NULL if none. */
struct nvmf_transport *nvmf_transport_find(struct nvmf_tgt *tgt, const char *trtype);
struct nvmf_transport *nvmf_transport_first(struct nvmf_tgt *tgt);
struct nvmf_transport *nvmf_transport_next(const struct nvmf_transport *t);
/* Canonical upper-case name: "TCP". */
const char *nvmf_transport_trtype(const struct nvmf_transport *t);
const struct nvmf_transport_opts *nvmf_transport_opts(const struct nvmf_transport *t);

/* -------------------------------------------------------- subsystems */

enum nvmf_subtype {
	NVMF_SUBTYPE_DISCOVERY, /* "Discovery" */
	NVMF_SUBTYPE_NVME,      /* "NVMe" */
};

struct nvmf_subsystem_opts {
	const char *serial_number; /* NULL: NVMF_DEFAULT_SN; printable ASCII, <= 20 */
	const char *model_number;  /* NULL: NVMF_DEFAULT_MN; printable ASCII, <= 40 */
	bool allow_any_host;
	uint32_t max_namespaces;   /* 0: NVMF_DEFAULT_MAX_NAMESPACES */
	uint16_t min_cntlid;       /* 0: NVMF_MIN_CNTLID */
	uint16_t max_cntlid;       /* 0: NVMF_MAX_CNTLID */
	bool ana_reporting;        /* accepted, not implemented */
};

/* -EINVAL: invalid NQN, serial, model or cntlid range; -EEXIST: NQN taken.
 * (SPDK answers both with "Unable to create subsystem <nqn>".) opts NULL =
 * defaults (allow_any_host false). */
int nvmf_subsystem_create(struct nvmf_tgt *tgt, const char *nqn,
			  const struct nvmf_subsystem_opts *opts, struct nvmf_subsystem **out);
/* Disconnects its controllers, removes its namespaces (releasing claims)
 * and drops its listener references. -EPERM for the discovery subsystem. */
int nvmf_subsystem_destroy(struct nvmf_subsystem *subsys);
/* Exact match; NULL if none ("Subsystem with NQN '<nqn>' not found"). */
struct nvmf_subsystem *nvmf_subsystem_find(struct nvmf_tgt *tgt, const char *nqn);
/* Discovery subsystem first, then the others sorted by NQN (strcmp). */
struct nvmf_subsystem *nvmf_subsystem_first(struct nvmf_tgt *tgt);
struct nvmf_subsystem *nvmf_subsystem_next(const struct nvmf_subsystem *subsys);

const char *nvmf_subsystem_nqn(const struct nvmf_subsystem *subsys);
enum nvmf_subtype nvmf_subsystem_subtype(const struct nvmf_subsystem *subsys);
const char *nvmf_subsystem_serial_number(const struct nvmf_subsystem *subsys);
const char *nvmf_subsystem_model_number(const struct nvmf_subsystem *subsys);
uint32_t nvmf_subsystem_max_namespaces(const struct nvmf_subsystem *subsys);
uint16_t nvmf_subsystem_min_cntlid(const struct nvmf_subsystem *subsys);
uint16_t nvmf_subsystem_max_cntlid(const struct nvmf_subsystem *subsys);
bool nvmf_subsystem_allow_any_host(const struct nvmf_subsystem *subsys);
void nvmf_subsystem_allow_any_host_set(struct nvmf_subsystem *subsys, bool allow);
/* One pointer for the caller's own per-subsystem data (NULL at create). The
 * caller owns what it points to and must free it around
 * nvmf_subsystem_destroy(); the library never reads it. */
void nvmf_subsystem_ctx_set(struct nvmf_subsystem *subsys, void *ctx);
void *nvmf_subsystem_ctx(const struct nvmf_subsystem *subsys);

/* --------------------------------------------------------- listeners */

/* Canonical spelling as nvmf_get_subsystems prints it: trtype "TCP",
 * adrfam "IPv4"/"IPv6", traddr an IP literal, trsvcid a decimal port. */
struct nvmf_listen_addr {
	char trtype[8];
	char adrfam[8];
	char traddr[64];
	char trsvcid[32];
};

/* Fills `out` from loose spellings (trtype/adrfam case-insensitive; adrfam
 * NULL/"" guessed from traddr). -EINVAL on a bad address, family or port. */
int nvmf_listen_addr_parse(const char *trtype, const char *adrfam, const char *traddr,
			   const char *trsvcid, struct nvmf_listen_addr *out);
/* Adds a listener; opens (or shares) the TCP listening socket.
 * -EEXIST: this subsystem already listens there ("Invalid parameters");
 * -ENODEV: no transport of that trtype created yet; -EINVAL: bad address;
 * -EADDRINUSE / other -errno: bind/listen failed. */
int nvmf_subsystem_listener_add(struct nvmf_subsystem *subsys, const struct nvmf_listen_addr *addr);
/* -ENOENT if not listening there. Connections already established through
 * the address keep running (as SPDK's do). The socket closes with its last user. */
int nvmf_subsystem_listener_remove(struct nvmf_subsystem *subsys, const struct nvmf_listen_addr *addr);
unsigned nvmf_subsystem_listener_count(const struct nvmf_subsystem *subsys);
/* In the order they were added; NULL if i is out of range. */
const struct nvmf_listen_addr *nvmf_subsystem_listener_get(const struct nvmf_subsystem *subsys, unsigned i);

/* -------------------------------------------------------- namespaces */

struct nvmf_ns_opts {
	uint32_t nsid;     /* 0: the lowest free NSID */
	const char *uuid;  /* NULL: the bdev's UUID */
	const char *nguid; /* NULL: derived from the UUID; else 32 hex digits ('-' ignored) */
	const char *eui64; /* NULL: none; else 16 hex digits ('-' ignored) */
};

/* Exports bdev `bdev_name` (name, alias or UUID) as a namespace; *nsid_out
 * (optional) receives the NSID. All failures are "Invalid parameters" in
 * SPDK: -ENODEV no such bdev; -EPERM bdev already claimed (by anyone,
 * including another namespace); -EEXIST nsid in use; -EINVAL nsid > max
 * namespaces, bad uuid/nguid/eui64, a block size that is not a power of
 * two, or the discovery subsystem; -ENOSPC no free nsid. Connected hosts get a namespace-attribute-changed event. */
int nvmf_subsystem_ns_add(struct nvmf_subsystem *subsys, const char *bdev_name,
			  const struct nvmf_ns_opts *opts, uint32_t *nsid_out);
/* -ENOENT: no such nsid. Releases the claim; hosts get an event. */
int nvmf_subsystem_ns_remove(struct nvmf_subsystem *subsys, uint32_t nsid);
/* By NSID ascending. */
struct nvmf_ns *nvmf_subsystem_ns_first(const struct nvmf_subsystem *subsys);
struct nvmf_ns *nvmf_subsystem_ns_next(const struct nvmf_ns *ns);
struct nvmf_ns *nvmf_subsystem_ns_find(const struct nvmf_subsystem *subsys, uint32_t nsid);
unsigned nvmf_subsystem_ns_count(const struct nvmf_subsystem *subsys);

uint32_t nvmf_ns_nsid(const struct nvmf_ns *ns);
struct bdev *nvmf_ns_bdev(const struct nvmf_ns *ns);
/* Lower-case UUID string (36 chars). */
const char *nvmf_ns_uuid(const struct nvmf_ns *ns);
/* 32 upper-case hex digits, as SPDK prints "nguid". */
const char *nvmf_ns_nguid(const struct nvmf_ns *ns);
/* 16 upper-case hex digits, or NULL when none was given. */
const char *nvmf_ns_eui64(const struct nvmf_ns *ns);

/* ------------------------------------------------------------- hosts */

/* -EINVAL: not a valid NQN; -EEXIST: already allowed (SPDK: "Internal error"). */
int nvmf_subsystem_host_add(struct nvmf_subsystem *subsys, const char *hostnqn);
/* -ENOENT if not present. Controllers of that host are disconnected. */
int nvmf_subsystem_host_remove(struct nvmf_subsystem *subsys, const char *hostnqn);
unsigned nvmf_subsystem_host_count(const struct nvmf_subsystem *subsys);
/* In the order they were added; NULL if out of range. */
const char *nvmf_subsystem_host_get(const struct nvmf_subsystem *subsys, unsigned i);
/* allow_any_host or listed. */
bool nvmf_subsystem_host_allowed(const struct nvmf_subsystem *subsys, const char *hostnqn);

/* --------------------------------------- controllers, qpairs, stats */

struct nvmf_ctrlr_info {
	uint16_t cntlid;
	char hostnqn[NVMF_NQN_MAX_LEN + 1];
	char hostid[COMMON_UUID_STR_LEN]; /* lower-case UUID */
	uint32_t num_io_qpairs;
};

struct nvmf_qpair_info {
	uint16_t cntlid;
	uint16_t qid;
	const char *state;                   /* "active" (connected) or "deleting" */
	struct nvmf_listen_addr listen_addr; /* local address of the connection */
	struct nvmf_listen_addr peer_addr;   /* remote address */
};

/* Calls cb once per live controller / qpair of the subsystem, by cntlid
 * then qid. The info is valid during the call only. */
void nvmf_subsystem_ctrlr_foreach(const struct nvmf_subsystem *subsys,
				  void (*cb)(const struct nvmf_ctrlr_info *info, void *arg), void *arg);
void nvmf_subsystem_qpair_foreach(const struct nvmf_subsystem *subsys,
				  void (*cb)(const struct nvmf_qpair_info *info, void *arg), void *arg);

/* nvmf_get_stats: one poll group ("nvmf_tgt_poll_group_000"). */
struct nvmf_stats {
	uint64_t admin_qpairs;         /* admin qpairs ever connected */
	uint64_t io_qpairs;            /* I/O qpairs ever connected */
	uint64_t current_admin_qpairs;
	uint64_t current_io_qpairs;
	uint64_t pending_bdev_io;      /* bdev I/O in flight now */
	uint64_t completed_nvme_io;    /* I/O commands completed */
	uint64_t zcopy_reads;          /* reads sent straight from the bdev's memory */
	uint64_t tick_rate;            /* ticks per second of the counters (1e9: ns) */
};
void nvmf_tgt_stats(const struct nvmf_tgt *tgt, struct nvmf_stats *out);

#endif /* DE_NVMF_H */
