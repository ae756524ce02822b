/*
 * blob.h: the blobstore: a crash-safe store of "blobs" (arrays of clusters)
 * on one bdev. It knows nothing of JSON, lvol names or UUID strings: names
 * are opaque xattrs. Format and crash-consistency argument: doc/ONDISK.md.
 *
 *   - super block, cluster size (default 4 MiB), metadata pages (4 KiB,
 *     crc32c, sequence numbers), bitmaps (clusters, md pages, blob ids),
 *     clean flag. Clean load reads the bitmaps; dirty load rebuilds them.
 *   - thick blobs take clusters at once; thin blobs allocate on first write
 *     and persist the new mapping BEFORE the write completes.
 *   - snapshots / clones by back reference (parent blob id); reads of an
 *     unallocated cluster return the parent's data or zeros.
 *   - every metadata change is durable (written + flushed) before its
 *     callback runs; concurrent changes share flushes (group commit).
 *
 * Threading: single event loop (the bdev loop). All operations are
 * asynchronous; sync return values are argument errors only (the callback
 * then never runs).
 *
 * Ownership: the store owns its blobs; a struct blob pointer is valid until
 * the blob is deleted or the store is unloaded/freed.
 */
#ifndef DE_BLOB_H
#define DE_BLOB_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "common/common.h"

#define BLOB_PAGE_SIZE 4096u
#define BLOB_DEFAULT_CLUSTER_SIZE (4u * 1024 * 1024)
#define BLOB_ID_NONE UINT64_MAX
#define BLOB_STORE_NAME_MAX 64   /* bytes, NUL included */
#define BLOB_XATTR_NAME_MAX 255
#define BLOB_XATTR_VALUE_MAX 1024

struct blob_store;
struct blob;

typedef void (*blob_store_cb)(void *cb_arg, struct blob_store *bs, int status);
typedef void (*blob_cb)(void *cb_arg, struct blob *blob, int status);
typedef void (*blob_done_cb)(void *cb_arg, int status);

struct blob_store_opts {
	uint64_t cluster_size;        /* 0 = 4 MiB */
	uint32_t md_pages_ratio;      /* md pages per 100 clusters; 0 = 100 */
	uint8_t uuid[16];             /* store identity, kept in the super block */
	char name[BLOB_STORE_NAME_MAX];
};

/* Format the bdev and open the store. -ENOSPC if too small. */
int blob_store_init(struct bdev *bdev, const struct blob_store_opts *opts, blob_store_cb cb, void *cb_arg);
/* Open a store. Status -EILSEQ: no store on this bdev (bad magic/crc);
 * -EIO read errors; -EUCLEAN metadata inconsistent. */
int blob_store_load(struct bdev *bdev, blob_store_cb cb, void *cb_arg);
/* Clean close: waits for in-flight work, writes bitmaps and the clean flag,
 * then frees the store (also on error). */
int blob_store_unload(struct blob_store *bs, blob_done_cb cb, void *cb_arg);
/* Frees memory without writing (crash simulation, or after a failed
 * device). In-flight operations must be finished. */
void blob_store_free(struct blob_store *bs);
/* Erase the super block (store gone), flush, free the store. */
int blob_store_destroy(struct blob_store *bs, blob_done_cb cb, void *cb_arg);
/* Rename the store label (super block write). */
int blob_store_set_name(struct blob_store *bs, const char *name, blob_done_cb cb, void *cb_arg);
/* Take the bdev's current size into account (up to the cluster bitmap's
 * capacity). */
int blob_store_grow(struct blob_store *bs, blob_done_cb cb, void *cb_arg);

/* What happens to clusters a delete / shrink / absorb frees, before they
 * return to the pool (SPDK's clear_method; not persisted, default NONE):
 * the operation completes after the clearing. */
enum blob_clear_method { BLOB_CLEAR_NONE = 0, BLOB_CLEAR_UNMAP, BLOB_CLEAR_WRITE_ZEROES };
void blob_store_set_clear_method(struct blob_store *bs, enum blob_clear_method m);

struct bdev *blob_store_bdev(const struct blob_store *bs);
uint64_t blob_store_cluster_size(const struct blob_store *bs);
uint64_t blob_store_total_data_clusters(const struct blob_store *bs);
uint64_t blob_store_free_clusters(const struct blob_store *bs);
uint64_t blob_store_max_growable_size(const struct blob_store *bs);
uint32_t blob_store_io_unit(const struct blob_store *bs);
const uint8_t *blob_store_uuid(const struct blob_store *bs);
const char *blob_store_name(const struct blob_store *bs);
bool blob_store_was_dirty(const struct blob_store *bs); /* last load rebuilt the bitmaps */
unsigned blob_store_blob_count(const struct blob_store *bs);
/* Bytes of RAM used by the store's bookkeeping (bench). */
uint64_t blob_store_mem_bytes(const struct blob_store *bs);
/* Self-check for tests: bitmaps agree with blob maps, no cluster owned
 * twice, free + allocated = total. 0 or -EUCLEAN (logged). */
int blob_store_check(const struct blob_store *bs);

/* Blobs in creation order (reload keeps it). */
struct blob *blob_first(const struct blob_store *bs);
struct blob *blob_next(const struct blob *blob);
struct blob *blob_lookup(const struct blob_store *bs, uint64_t id);

struct blob_xattr {
	const char *name;
	const void *value;
	uint32_t len;
};

struct blob_create_opts {
	uint64_t num_clusters;
	bool thin;
	const struct blob_xattr *xattrs;
	unsigned num_xattrs;
};

/* Status -ENOSPC (thick, or no free md page / blob id). */
int blob_create(struct blob_store *bs, const struct blob_create_opts *opts, blob_cb cb, void *cb_arg);
/* Grow or shrink. Thick: -ENOSPC if clusters are short. Read-only: -EPERM. */
int blob_resize(struct blob *blob, uint64_t num_clusters, blob_done_cb cb, void *cb_arg);
/* Deletes the blob and frees its clusters. A blob with 2+ clones: -EPERM;
 * with exactly one clone, that clone absorbs this blob's clusters and its
 * parent (atomically). The pointer is invalid once cb runs with 0. The
 * caller must have stopped I/O to this blob. */
int blob_delete(struct blob *blob, blob_done_cb cb, void *cb_arg);
/* Atomically: a new read-only snapshot takes the origin's clusters, the
 * origin becomes an (empty, thin) clone of it. */
int blob_snapshot(struct blob *origin, const struct blob_xattr *xattrs, unsigned num_xattrs,
		  blob_cb cb, void *cb_arg);
/* A thin clone of a snapshot (read-only blob). -EINVAL if not read-only. */
int blob_clone(struct blob *snapshot, const struct blob_xattr *xattrs, unsigned num_xattrs,
	       blob_cb cb, void *cb_arg);
/* Allocate every cluster (copy parent data / zeros), drop the parent, thick. */
int blob_inflate(struct blob *blob, blob_done_cb cb, void *cb_arg);
/* Copy the clusters the parent chain holds, drop the parent. */
int blob_decouple_parent(struct blob *blob, blob_done_cb cb, void *cb_arg);
int blob_set_read_only(struct blob *blob, blob_done_cb cb, void *cb_arg);
/* value NULL removes. Persisted. */
int blob_set_xattr(struct blob *blob, const char *name, const void *value, uint32_t len,
		   blob_done_cb cb, void *cb_arg);

uint64_t blob_id(const struct blob *blob);
uint64_t blob_num_clusters(const struct blob *blob);
uint64_t blob_num_allocated_clusters(const struct blob *blob);
bool blob_is_thin(const struct blob *blob);
/* Hint: the fields the accessors read will be needed soon (big listings
 * walk 10,000 blobs; each first touch is a cache miss otherwise). */
void blob_prefetch(const struct blob *blob);
/* Creation order key (persisted; a snapshot gets a new one). */
uint64_t blob_create_seq(const struct blob *blob);
bool blob_is_read_only(const struct blob *blob);
bool blob_is_snapshot(const struct blob *blob);
struct blob *blob_parent(const struct blob *blob);
unsigned blob_clone_count(const struct blob *blob);
/* Children in the order they became children; i < blob_clone_count(). */
struct blob *blob_clone_get(const struct blob *blob, unsigned i);
/* NULL if absent; *len set. */
const void *blob_xattr_get(const struct blob *blob, const char *name, uint32_t *len);
/* Physical cluster of logical cluster i (0 = not allocated). For tests. */
uint64_t blob_cluster_phys(const struct blob *blob, uint64_t i);
/* User pointer (the lvol layer hangs its struct here). */
void blob_set_ctx(struct blob *blob, void *ctx);
void *blob_get_ctx(const struct blob *blob);

/* Data path: offsets/lengths in bytes, multiples of the io unit (the base
 * bdev's block size), within the blob. Writes needing a new cluster
 * allocate it and persist the mapping before completing (-ENOSPC when the
 * store is full). Reads of unallocated space: parent data or zeros. */
int blob_read(struct blob *blob, void *buf, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg);
int blob_write(struct blob *blob, const void *buf, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg);
int blob_write_zeroes(struct blob *blob, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg);
int blob_unmap(struct blob *blob, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg);
int blob_flush(struct blob *blob, blob_done_cb cb, void *cb_arg);

/* Metadata page parser (fuzz entry point): validates one 4 KiB page; 0 if
 * well formed, -EILSEQ otherwise. Never reads outside `page`. */
int blob_md_page_check(const void *page, size_t len);
/* Parses a concatenated descriptor stream (what a chain's pages carry);
 * 0 or -EILSEQ. Never reads outside `buf`. */
int blob_md_stream_check(const void *buf, size_t len);

#endif /* DE_BLOB_H */
