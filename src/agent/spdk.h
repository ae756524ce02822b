/*
 * spdk.h (private to src/agent): typed calls of SPDK's JSON-RPC methods, the
 * only way the agent talks to a target (disktgt or a stock spdk_tgt). Each
 * call sends exactly the parameters SPDK decodes, parses the result into C
 * structs and maps SPDK's error replies to one negative errno:
 *
 *   -EEXIST     name/bdev/lvstore/lvol exists ("File exists", -17), transport
 *               "already exists", "Unable to create subsystem" (duplicate or
 *               bad NQN: the caller re-reads), duplicate add_host ("Internal error")
 *   -ENODEV     not found (-19 "No such device", "Subsystem ... not found")
 *   -ENOSPC     "No space left on device"
 *   -EINVAL     "Invalid argument" / nvmf "Invalid parameters" (ambiguous:
 *               duplicate listener, namespace add failure, unknown nsid)
 *   -EPERM      "Operation not permitted" (claimed bdev, snapshot with 2 clones)
 *   -ENOENT     -2 (AIO file missing)
 *   -EBADMSG    "spdk_json_decode_object failed" (we sent what SPDK refuses)
 *   -EOPNOTSUPP unknown method
 *   -EREMOTEIO  any other error reply
 * and two transport outcomes that are always transient:
 *   -ENOTCONN   target not reachable (socket missing, refused, reset, closed)
 *   -ETIMEDOUT  no reply in time: the outcome is UNKNOWN, re-read before acting
 * spdk_call_is_transient() tells them apart. The last error reply (code and
 * message) is kept in the client for logs.
 *
 * A client is one connection used by one thread; it reconnects lazily on the
 * next call after a transport failure and counts its connections, so callers
 * can re-ensure per-connection state (the transport) after a target restart.
 */
#ifndef DE_AGENT_SPDK_H
#define DE_AGENT_SPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SPDK_UUID_LEN 37
#define SPDK_NAME_LEN 256
#define SPDK_NQN_LEN 224

struct spdk_client;

struct spdk_lvstore {
	char uuid[SPDK_UUID_LEN];
	char name[SPDK_NAME_LEN];
	char base_bdev[SPDK_NAME_LEN];
	uint64_t total_data_clusters;
	uint64_t free_clusters;
	uint64_t block_size;
	uint64_t cluster_size;
};

struct spdk_lvol {
	char uuid[SPDK_UUID_LEN];
	char name[SPDK_NAME_LEN];  /* short name ("42"), alias is "<lvs>/<name>" */
	char lvs_uuid[SPDK_UUID_LEN];
	bool thin;
	bool snapshot;
	bool clone;
	uint64_t num_allocated_clusters;
};

struct spdk_bdev {
	char name[SPDK_NAME_LEN];  /* for an lvol: its UUID */
	uint64_t num_blocks;
	uint64_t block_size;
};

struct spdk_listen_addr {
	char trtype[16];   /* "TCP", "RDMA" */
	char adrfam[16];   /* "IPv4", "IPv6" */
	char traddr[64];
	char trsvcid[16];
};

struct spdk_ns {
	uint32_t nsid;
	char bdev_name[SPDK_NAME_LEN];
	char uuid[SPDK_UUID_LEN];
};

struct spdk_subsystem {
	char nqn[SPDK_NQN_LEN];
	bool allow_any_host;
	struct spdk_listen_addr *listeners;
	size_t n_listeners;
	char (*hosts)[SPDK_NQN_LEN];
	size_t n_hosts;
	struct spdk_ns *ns;
	size_t n_ns;
};

/* Lists returned by the get_* calls; owned by the caller, freed with the
 * matching *_free (NULL-safe, also resets the struct). */
struct spdk_lvstore_list { struct spdk_lvstore *v; size_t n; };
struct spdk_lvol_list { struct spdk_lvol *v; size_t n; };
struct spdk_bdev_list { struct spdk_bdev *v; size_t n; };
struct spdk_subsystem_list { struct spdk_subsystem *v; size_t n; };

void spdk_lvstore_list_free(struct spdk_lvstore_list *l);
void spdk_lvol_list_free(struct spdk_lvol_list *l);
void spdk_bdev_list_free(struct spdk_bdev_list *l);
void spdk_subsystem_list_free(struct spdk_subsystem_list *l);

/* ------------------------------------------------------------ client */

/* timeout_ms: per call. The socket is connected on the first call. */
int spdk_client_create(const char *socket_path, int timeout_ms, struct spdk_client **out);
void spdk_client_destroy(struct spdk_client *c);
/* Number of successful connects so far (changes when the client reconnected). */
uint64_t spdk_client_connections(const struct spdk_client *c);
/* Code and message of the last error reply ("" when none). */
int spdk_client_last_code(const struct spdk_client *c);
const char *spdk_client_last_message(const struct spdk_client *c);
/* Number of calls sent so far (tests and metrics). */
uint64_t spdk_client_calls(const struct spdk_client *c);

bool spdk_call_is_transient(int err);

/* Generic call: params stolen (may be NULL: omitted like rpc.py does);
 * *result (optional) is a new reference owned by the caller. */
int spdk_call(struct spdk_client *c, const char *method, json_t *params, json_t **result);

/* One call of a pipelined batch: method and params (stolen) in; rc (as
 * spdk_call's) and result (a new reference, the caller's; NULL on error) out. */
struct spdk_req {
	const char *method;
	json_t *params;
	int rc;
	json_t *result;
};
/* Sends all n requests at once on the one connection (in order; the target
 * may answer in any order), then collects every reply: n round trips become
 * one, which is what a target answering only every few ms (SPDK's RPC
 * poller) rewards. Each request gets its own rc. A transport failure (timeout,
 * lost connection: outcome unknown) gives every unanswered request that error
 * and drops the connection; the function returns it (else 0). Only for
 * requests that do not depend on each other's outcome. */
int spdk_call_many(struct spdk_client *c, struct spdk_req *reqs, size_t n);

/* Maps an error reply of `method` to a negative errno (table above). */
int spdk_error_classify(const char *method, int code, const char *message);

/* ------------------------------------------------------------- calls */

/* Params of the calls a provisioning batch pipelines (NULL on ENOMEM); the
 * single calls below use them too. */
json_t *spdk_params_lvol_create(const char *lvs_uuid, const char *name, uint64_t size_mib,
				bool thin);
json_t *spdk_params_subsystem_create(const char *nqn, const char *serial, const char *model,
				     bool allow_any_host, uint32_t max_namespaces);
json_t *spdk_params_listener(const char *nqn, const struct spdk_listen_addr *a);
json_t *spdk_params_host(const char *nqn, const char *host);
json_t *spdk_params_ns_add(const char *nqn, const char *bdev_name, uint32_t nsid, const char *uuid);
json_t *spdk_params_ns_remove(const char *nqn, uint32_t nsid);
json_t *spdk_params_subsystem_delete(const char *nqn);
json_t *spdk_params_lvol_delete(const char *name);
/* A bdev_lvol_create / clone / snapshot result: the new lvol's UUID (0, or
 * -EPROTO when it is not one). */
int spdk_result_uuid(const json_t *res, char uuid_out[SPDK_UUID_LEN]);

/* bdev_aio_create: block_size 0 = let the target choose. */
int spdk_bdev_aio_create(struct spdk_client *c, const char *filename, const char *name,
			 uint32_t block_size);
int spdk_bdev_wait_for_examine(struct spdk_client *c);
/* bdev_get_bdevs: name NULL = all bdevs. */
int spdk_bdev_get(struct spdk_client *c, const char *name, struct spdk_bdev_list *out);

int spdk_lvstore_create(struct spdk_client *c, const char *bdev_name, const char *lvs_name,
			uint64_t cluster_sz, char uuid_out[SPDK_UUID_LEN]);
/* At most one of uuid/name (both NULL: all lvstores). */
int spdk_lvstore_get(struct spdk_client *c, const char *uuid, const char *name,
		     struct spdk_lvstore_list *out);

int spdk_lvol_create(struct spdk_client *c, const char *lvs_uuid, const char *name,
		     uint64_t size_mib, bool thin, char uuid_out[SPDK_UUID_LEN]);
int spdk_lvol_get(struct spdk_client *c, const char *lvs_uuid, struct spdk_lvol_list *out);
int spdk_lvol_resize(struct spdk_client *c, const char *name, uint64_t size_mib);
int spdk_lvol_delete(struct spdk_client *c, const char *name);
int spdk_lvol_snapshot(struct spdk_client *c, const char *lvol_name, const char *snapshot_name,
		       char uuid_out[SPDK_UUID_LEN]);
int spdk_lvol_clone(struct spdk_client *c, const char *snapshot_name, const char *clone_name,
		    char uuid_out[SPDK_UUID_LEN]);
int spdk_lvol_rename(struct spdk_client *c, const char *old_name, const char *new_name);

int spdk_nvmf_transport_create(struct spdk_client *c, const char *trtype);
int spdk_nvmf_subsystem_create(struct spdk_client *c, const char *nqn, const char *serial,
			       const char *model, bool allow_any_host, uint32_t max_namespaces);
int spdk_nvmf_subsystem_delete(struct spdk_client *c, const char *nqn);
int spdk_nvmf_subsystem_get(struct spdk_client *c, struct spdk_subsystem_list *out);
/* nvmf_get_subsystems {nqn}: one subsystem (-ENODEV when it does not exist). */
int spdk_nvmf_subsystem_get_one(struct spdk_client *c, const char *nqn,
				struct spdk_subsystem_list *out);
int spdk_nvmf_listener_add(struct spdk_client *c, const char *nqn,
			   const struct spdk_listen_addr *addr);
int spdk_nvmf_listener_remove(struct spdk_client *c, const char *nqn,
			      const struct spdk_listen_addr *addr);
int spdk_nvmf_host_add(struct spdk_client *c, const char *nqn, const char *host);
/* nsid 0 = let the target choose; uuid NULL = none; *nsid_out optional. */
int spdk_nvmf_ns_add(struct spdk_client *c, const char *nqn, const char *bdev_name, uint32_t nsid,
		     const char *uuid, uint32_t *nsid_out);
int spdk_nvmf_ns_remove(struct spdk_client *c, const char *nqn, uint32_t nsid);

/* ----------------------------------------------------------- parsing */
/* Parse a result value (exposed for unit tests against golden bytes). */
int spdk_parse_lvstores(const json_t *result, struct spdk_lvstore_list *out);
int spdk_parse_lvols(const json_t *result, struct spdk_lvol_list *out);
int spdk_parse_bdevs(const json_t *result, struct spdk_bdev_list *out);
int spdk_parse_subsystems(const json_t *result, struct spdk_subsystem_list *out);

/* Lookups in parsed lists (NULL when absent). */
const struct spdk_lvstore *spdk_lvstore_find(const struct spdk_lvstore_list *l, const char *uuid);
const struct spdk_lvol *spdk_lvol_find_name(const struct spdk_lvol_list *l, const char *name);
const struct spdk_subsystem *spdk_subsystem_find(const struct spdk_subsystem_list *l,
						 const char *nqn);
const struct spdk_bdev *spdk_bdev_find(const struct spdk_bdev_list *l, const char *name);

#endif /* DE_AGENT_SPDK_H */
