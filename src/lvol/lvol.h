/*
 * lvol.h: logical volume stores and logical volumes (SPDK's "lvol" layer,
 * our own code) on top of the blobstore (src/blob).
 *
 * An lvol store (lvstore) lives on one base bdev, which it claims
 * (BDEV_CLAIM_EXCL_WRITE, module "lvol"). Every lvol is a blob in that store
 * and is registered as a bdev: name = lvol UUID, alias = "<lvs name>/<lvol
 * name>", product_name "Logical Volume", thin flag = thin provisioning.
 *
 * Loading: lvol_module_init() registers a bdev examine hook; when a bdev that
 * holds a store appears (bdev_aio_create on a file written earlier) the store
 * and all its lvols come back with the same UUIDs, names, snapshot/clone
 * links and allocation counts. bdev_wait_for_examine() waits for that.
 *
 * Threading: everything runs on the bdev module's event loop. Every operation
 * that changes the store is asynchronous: its metadata is durable (written and
 * flushed) before the callback runs.
 *
 * Errors are split the way SPDK splits them, so the RPC layer can reproduce
 * SPDK's codes:
 *   - returned by the call itself (the callback then NEVER runs):
 *       -ENODEV   unknown bdev / store / lvol
 *       -EEXIST   lvstore name exists (lvol_store_create),
 *                 lvol name exists in the store (lvol_create)
 *       -EPERM    base bdev already claimed (lvol_store_create)
 *       -EINVAL   invalid arguments (empty / too long name, bad cluster size)
 *       -ENOMEM
 *   - delivered through the callback (status):
 *       -ENOSPC   lvol_create / lvol_resize / inflate without enough clusters
 *       -EEXIST   snapshot / clone / rename onto an existing name
 *       -EINVAL   clone of a non-snapshot
 *       -EPERM    delete of a snapshot with two or more clones
 *       -EIO      the base device failed
 *
 * Semantics (SPDK's): sizes round UP to whole clusters; size 0 is allowed;
 * names may contain '/'; thin lvols may over-commit the store, thick ones
 * beyond the free clusters fail with -ENOSPC; a snapshot makes the origin a
 * clone of the (read-only) snapshot; a snapshot with exactly one clone may be
 * deleted (the clone absorbs its clusters and takes over its parent); with
 * two or more it cannot (-EPERM).
 *
 * Ownership: the module owns every store and lvol. Pointers stay valid until
 * the object is deleted (or its store unloaded); callbacks receive pointers
 * they do not own. Strings returned by getters are valid until the next
 * rename of that object.
 */
#ifndef DE_LVOL_H
#define DE_LVOL_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "common/common.h"

#define LVOL_NAME_MAX 64          /* lvstore and lvol names: 1..63 bytes */
#define LVOL_ALIAS_MAX (2 * LVOL_NAME_MAX)
#define LVOL_DEFAULT_CLUSTER_SIZE (4u * 1024 * 1024)
#define LVOL_MODULE_NAME "lvol"   /* claim module of the base bdev */
#define LVOL_PRODUCT_NAME "Logical Volume"

struct lvol_store;
struct lvol;

/* The lvstore's clear method (SPDK's, not persisted: a loaded store uses
 * unmap) is applied to clusters freed by delete / shrink before they return
 * to the pool. The per-lvol argument of lvol_create is accepted and ignored. */
enum lvol_clear_method {
	LVOL_CLEAR_DEFAULT = 0, /* lvstore: unmap; lvol: unmap */
	LVOL_CLEAR_NONE,
	LVOL_CLEAR_UNMAP,
	LVOL_CLEAR_WRITE_ZEROES,
};

/* "none" | "unmap" | "write_zeroes" -> enum; -EINVAL otherwise. */
int lvol_clear_method_parse(const char *s, enum lvol_clear_method *out);

typedef void (*lvol_store_cb)(void *cb_arg, struct lvol_store *lvs, int status);
typedef void (*lvol_cb)(void *cb_arg, struct lvol *lvol, int status);
typedef void (*lvol_done_cb)(void *cb_arg, int status);
/* Called synchronously just before an lvol's bdev is unregistered (delete
 * of the lvol or of its store) while the bdev is claimed, e.g. by an nvmf
 * namespace: the hook should drop the namespace and bdev_release() it. If it
 * is still claimed afterwards, the lvol module releases the claim itself.
 * The delete always goes on (SPDK: the namespace silently disappears). */
typedef void (*lvol_bdev_remove_fn)(struct bdev *bdev, void *arg);

/* ---------------------------------------------------------- module */

/* After bdev_module_init(). Registers the examine hook. */
int lvol_module_init(void);
/* Unload every store cleanly (bitmaps written, clean flag set), unregister
 * the lvol bdevs, release the base bdevs; cb runs when done (status of the
 * first failure). Call before bdev_module_fini() on an orderly shutdown. */
int lvol_module_unload_all(lvol_done_cb cb, void *cb_arg);
/* Frees everything without writing (stores stay "dirty": the next load
 * rebuilds the bitmaps, which is always safe). Unregisters lvol bdevs. */
void lvol_module_fini(void);
void lvol_module_set_remove_hook(lvol_bdev_remove_fn fn, void *arg);

/* --------------------------------------------------------- lvstore */

struct lvol_store_opts {
	const char *bdev_name;     /* required */
	const char *name;          /* required, 1..63 bytes, unique */
	uint64_t cluster_size;     /* bytes, 0 = 4 MiB; power of 2, >= 4096 and >= block size */
	enum lvol_clear_method clear_method;
	uint32_t md_pages_per_cluster_ratio; /* percent, 0 = 100 (one md page per cluster) */
};

struct lvol_store_info {
	char uuid[COMMON_UUID_STR_LEN];
	const char *name;
	const char *base_bdev;
	uint64_t total_data_clusters;
	uint64_t free_clusters;
	uint32_t block_size;
	uint64_t cluster_size;
	uint64_t max_growable_size; /* bytes */
};

/* cb gets the new store (its UUID: lvol_store_uuid()). Sync errors: -ENODEV
 * (bdev), -EEXIST (name), -EPERM (bdev claimed), -EINVAL. Async: -ENOSPC
 * (bdev too small for metadata + one cluster), -EIO. */
int lvol_store_create(const struct lvol_store_opts *opts, lvol_store_cb cb, void *cb_arg);
/* Deletes every lvol of the store, erases the store's super block,
 * releases the base bdev and frees the store. */
int lvol_store_destroy(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg);
/* Hot remove of the base bdev (SPDK: store unloaded, not destroyed): clean
 * unload, lvol bdevs unregistered (remove hook called), base released; a
 * later examine of the bdev brings everything back. */
int lvol_store_unload(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg);
/* Async -EEXIST if another store has the name; lvol aliases follow. Same
 * name as now: success, nothing written. */
int lvol_store_rename(struct lvol_store *lvs, const char *new_name, lvol_done_cb cb, void *cb_arg);
/* After the base bdev grew (bdev_aio_rescan): adds data clusters, up to
 * max_growable_size. */
int lvol_store_grow(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg);

struct lvol_store *lvol_store_find_by_name(const char *name);
struct lvol_store *lvol_store_find_by_uuid(const char *uuid);
/* Stores in creation/load order. */
struct lvol_store *lvol_store_first(void);
struct lvol_store *lvol_store_next(const struct lvol_store *lvs);

void lvol_store_get_info(const struct lvol_store *lvs, struct lvol_store_info *out);
const char *lvol_store_name(const struct lvol_store *lvs);
const char *lvol_store_uuid(const struct lvol_store *lvs);
struct bdev *lvol_store_base_bdev(const struct lvol_store *lvs);
uint64_t lvol_store_cluster_size(const struct lvol_store *lvs);
unsigned lvol_store_lvol_count(const struct lvol_store *lvs);

/* ------------------------------------------------------------ lvol */

struct lvol_info {
	char uuid[COMMON_UUID_STR_LEN];
	const char *name;
	const char *alias;          /* "<lvs name>/<name>" */
	bool thin;                  /* is_thin_provisioned / thin_provision */
	bool is_snapshot;
	bool is_clone;
	bool is_esnap_clone;        /* always false */
	bool is_degraded;           /* always false */
	bool read_only;             /* not shown by SPDK listings */
	uint64_t num_allocated_clusters;
	uint64_t size_bytes;        /* whole clusters */
	uint64_t num_blocks;        /* size_bytes / block size */
	uint32_t block_size;
	const char *lvs_name;
	const char *lvs_uuid;
	const char *base_bdev;      /* name of the store's base bdev */
	const char *base_snapshot;  /* clone: parent snapshot's name, else NULL */
	unsigned num_clones;        /* snapshot: lvol_clone_get(lvol, i) */
};

/* size_bytes rounds up to whole clusters. Sync: -EEXIST (name in the store),
 * -EINVAL (name). Async: -ENOSPC (thick without enough free clusters). */
int lvol_create(struct lvol_store *lvs, const char *name, uint64_t size_bytes, bool thin,
		enum lvol_clear_method clear_method, lvol_cb cb, void *cb_arg);
/* Grow or shrink (rounds up to whole clusters). Async -ENOSPC when a thick
 * lvol cannot grow. Resizing a snapshot: -EPERM (async). */
int lvol_resize(struct lvol *lvol, uint64_t size_bytes, lvol_done_cb cb, void *cb_arg);
/* Async -EPERM for a snapshot with 2+ clones. Claimed bdev: see
 * lvol_bdev_remove_fn. The lvol pointer is invalid once cb runs with 0. */
int lvol_delete(struct lvol *lvol, lvol_done_cb cb, void *cb_arg);
/* New read-only snapshot `name` in the same store; the origin becomes its
 * clone. Async -EEXIST on a name clash. */
int lvol_snapshot(struct lvol *origin, const char *name, lvol_cb cb, void *cb_arg);
/* Thin clone of a snapshot. Async -EINVAL if `snapshot` is not one, -EEXIST. */
int lvol_clone(struct lvol *snapshot, const char *name, lvol_cb cb, void *cb_arg);
/* new_name is the short name. Async -EEXIST on a clash. */
int lvol_rename(struct lvol *lvol, const char *new_name, lvol_done_cb cb, void *cb_arg);
/* Allocate every cluster (copying the parent's data) and drop the parent.
 * Thick non-clone: success, nothing to do. Async -ENOSPC. */
int lvol_inflate(struct lvol *lvol, lvol_done_cb cb, void *cb_arg);
/* Copy only the clusters the parent chain has allocated, drop the parent. */
int lvol_decouple_parent(struct lvol *lvol, lvol_done_cb cb, void *cb_arg);
/* Writes then fail with -EPERM; persistent; invisible in listings. */
int lvol_set_read_only(struct lvol *lvol, lvol_done_cb cb, void *cb_arg);

/* By UUID or alias "<lvs>/<name>" (names may hold '/': the store name is the
 * part before the first '/'). NULL if none. */
struct lvol *lvol_find(const char *uuid_or_alias);
struct lvol *lvol_find_in_store(const struct lvol_store *lvs, const char *name);
/* The lvol behind an lvol bdev; NULL for any other bdev. */
struct lvol *lvol_from_bdev(const struct bdev *bdev);

/* Creation order (rename keeps the position; reload keeps the order). */
struct lvol *lvol_first(const struct lvol_store *lvs);
struct lvol *lvol_next(const struct lvol *lvol);

void lvol_get_info(const struct lvol *lvol, struct lvol_info *out);
/* Prefetch hints for listings that walk thousands of lvols: the lvol's own
 * fields (names, UUID, links), and (once those are in) its blob's. */
void lvol_prefetch(const struct lvol *lvol);
void lvol_prefetch_blob(const struct lvol *lvol);
/* Clones of a snapshot, in the order they became clones; i < num_clones. */
struct lvol *lvol_clone_get(const struct lvol *snapshot, unsigned i);
struct lvol *lvol_parent(const struct lvol *lvol); /* snapshot of a clone, or NULL */
const char *lvol_name(const struct lvol *lvol);
const char *lvol_uuid(const struct lvol *lvol);
const char *lvol_alias(const struct lvol *lvol);
struct lvol_store *lvol_get_store(const struct lvol *lvol);
struct bdev *lvol_bdev(const struct lvol *lvol);

#endif /* DE_LVOL_H */
