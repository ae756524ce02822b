/*
 * blob_internal.h: private structures of src/blob shared by its files
 * (format constants, in-memory store/blob, metadata transaction engine).
 * Not part of the public interface. On-disk layout: doc/ONDISK.md.
 */
#ifndef DE_BLOB_INTERNAL_H
#define DE_BLOB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "blob/blob.h"

/* ---------------------------------------------------------- format */

#define BS_SUPER_MAGIC "DEBLOBS1"
#define BS_VERSION 1u
#define BS_SUPER_CRC_OFF 508u        /* crc32c of bytes [0, 508) */
#define BS_SUPER_FLAG_CLEAN 1u

#define BS_MD_MAGIC 0x4d424544u     /* "DEBM" little endian */
#define BS_MD_HDR 48u               /* see doc/ONDISK.md */
#define BS_MD_PAYLOAD (BLOB_PAGE_SIZE - BS_MD_HDR)
#define BS_MASK_HDR 5u              /* type u8 + length-in-bits u32 */

enum bs_mask_type { BS_MASK_CLUSTERS = 1, BS_MASK_PAGES = 2, BS_MASK_IDS = 3 };

enum bs_desc_type {
	BS_DESC_BLOB = 1,    /* flags u32, num_clusters u64, parent u64, create_seq u64 */
	BS_DESC_EXTENTS = 2, /* n * (lstart u32, pstart u32, count u32) */
	BS_DESC_XATTR = 3,   /* name_len u16, value_len u16, name, value */
	BS_DESC_TXN = 4,     /* n * member id u64 (written with the same seq) */
	BS_DESC_KILLS = 5,   /* n * blob id u64 (deleted by this chain) */
};

#define BS_F_THIN 1u
#define BS_F_RDONLY 2u
#define BS_F_SNAPSHOT 4u
#define BS_F_KNOWN (BS_F_THIN | BS_F_RDONLY | BS_F_SNAPSHOT)

struct bs_super {
	uint32_t version;
	uint32_t flags;
	uint64_t cluster_size;
	uint64_t total_clusters;
	uint32_t page_size;
	uint32_t io_unit;
	uint64_t cluster_mask_start; uint32_t cluster_mask_pages;
	uint64_t page_mask_start;    uint32_t page_mask_pages;
	uint64_t id_mask_start;      uint32_t id_mask_pages;
	uint64_t md_start;           /* page index of md page 0 */
	uint64_t md_pages;
	uint64_t reserved_clusters;  /* clusters [0, reserved) hold metadata */
	uint64_t next_seq;
	uint64_t super_seq;
	uint32_t cluster_mask_crc, page_mask_crc, id_mask_crc;
	uint8_t uuid[16];
	char name[BLOB_STORE_NAME_MAX];
};

void bs_super_encode(const struct bs_super *s, uint8_t *page);
int bs_super_decode(const uint8_t *page, struct bs_super *s);

struct bs_xattr {
	char *name;
	void *value;
	uint32_t len;
};

/* What one chain (all md pages of one blob at one seq) describes. */
struct bs_md_state {
	uint32_t flags;
	uint64_t num_clusters;
	uint32_t *clusters;       /* num_clusters entries, 0 = unallocated */
	uint64_t parent_id;
	uint64_t create_seq;
	struct bs_xattr *xattrs;
	unsigned nxattrs;
	uint64_t *members;        /* other blobs of the same transaction */
	unsigned nmembers;
	uint64_t *kills;
	unsigned nkills;
};

/* Page header fields. */
struct bs_md_hdr {
	uint64_t tag;               /* store tag: first 8 bytes of the store uuid */
	uint64_t id;
	uint64_t seq;
	uint32_t index;
	uint32_t count;
	uint32_t payload_len;
};

/* Serialise `st` for blob `id` at `seq` into *pages_out (bs_dma_alloc'd,
 * npages * 4096 bytes; caller frees with bs_dma_free). */
void *bs_dma_alloc(size_t len);
void bs_dma_free(void *p);
int bs_md_encode(const struct bs_md_state *st, uint64_t tag, uint64_t id, uint64_t seq, uint8_t **pages_out,
		 unsigned *npages_out);
/* Header of one page: 0, or -EILSEQ (bad magic/crc/fields). */
int bs_md_page_decode(const uint8_t *page, struct bs_md_hdr *hdr);
/* Parse a concatenated payload stream into *st (allocations owned by st). */
int bs_md_stream_decode(const uint8_t *buf, size_t len, struct bs_md_state *st);
void bs_md_state_clear(struct bs_md_state *st);

/* ---------------------------------------------------------- bitmap */

struct bs_bitmap {
	uint64_t *words;
	uint64_t nbits;
	uint64_t nset;
	uint64_t hint;
};

int bs_bitmap_init(struct bs_bitmap *bm, uint64_t nbits);
int bs_bitmap_resize(struct bs_bitmap *bm, uint64_t nbits);
void bs_bitmap_fini(struct bs_bitmap *bm);
bool bs_bitmap_get(const struct bs_bitmap *bm, uint64_t i);
void bs_bitmap_set(struct bs_bitmap *bm, uint64_t i);
void bs_bitmap_clear(struct bs_bitmap *bm, uint64_t i);
/* First clear bit at or after `from` (wrapping), or UINT64_MAX. */
uint64_t bs_bitmap_find_clear(const struct bs_bitmap *bm, uint64_t from);

/* ------------------------------------------------------------ lock */

struct bs_waiter {
	void (*fn)(void *arg);
	void *arg;
	struct bs_waiter *next;
};

struct bs_lock {
	bool held;
	struct bs_waiter *head, *tail;
};

/* fn(arg) runs once the lock is ours (maybe at once). -ENOMEM. */
int bs_lock_acquire(struct bs_lock *lock, void (*fn)(void *), void *arg);
void bs_lock_release(struct bs_lock *lock);

/* --------------------------------------------------------- objects */

struct bs_io_req;

struct blob {
	struct blob_store *bs;
	uint64_t id;
	uint64_t seq;              /* seq of the durable chain */
	uint64_t create_seq;
	uint32_t flags;
	uint64_t num_clusters;
	uint32_t *clusters;
	uint64_t num_alloc;
	uint64_t parent_id;
	struct blob *parent;
	struct blob **children;
	unsigned nchildren, cap_children;
	struct bs_xattr *xattrs;
	unsigned nxattrs;
	uint32_t *pages;           /* md pages of the durable chain */
	unsigned npages;
	bool has_kills;            /* durable chain carries kill records */
	struct blob *prev, *next;  /* creation order */
	struct blob *hnext;        /* id hash chain */
	void *ctx;

	struct bs_lock md_lock;    /* one metadata change at a time */
	unsigned io_inflight;
	unsigned frozen;
	struct bs_io_req *io_wait_head, *io_wait_tail; /* queued while frozen */
	struct bs_waiter *idle_waiters;  /* freeze: wait for io_inflight == 0 */
	struct bs_alloc *allocs;   /* cluster allocations in flight */
	struct bs_alloc *alloc_ready; /* data durable, mapping not committed */
	bool alloc_commit_pending;
};

struct bs_flush_waiter {
	blob_done_cb cb;
	void *arg;
	struct bs_flush_waiter *next;
};

struct blob_store {
	struct bdev *bdev;
	struct bs_super super;
	uint64_t cluster_size;
	uint32_t io_unit;
	uint64_t total_clusters;
	uint64_t max_clusters;      /* capacity of the cluster mask */
	struct bs_bitmap clusters;  /* includes the reserved metadata clusters */
	struct bs_bitmap pages;     /* md pages in use (or being zeroed) */
	struct bs_bitmap ids;
	uint64_t next_seq;
	uint64_t next_create_seq;
	bool was_dirty;
	enum blob_clear_method clear;
	bool failed;               /* a metadata write failed: refuse changes */
	bool freeing, free_queued; /* blob_store_free(): release once idle */

	struct blob *first, *last;
	struct blob **hash;
	uint64_t hash_size;
	unsigned nblobs;

	struct bs_lock struct_lock; /* snapshot / clone / absorb / inflate */

	/* group commit */
	bool flush_busy;            /* flush_inflight > 0 */
	unsigned flush_inflight;
	struct bs_flush_waiter *flush_next, *flush_next_tail;

	/* zeroing of superseded md pages */
	unsigned zero_outstanding;
	uint64_t zero_epoch, zero_durable_epoch;
	struct bs_waiter *zero_waiters;
	uint8_t *zero_page;

	struct md_wr *wq;           /* md page writes of this loop round */
	size_t nwq, capwq;
	bool wq_scheduled;

	unsigned ops_inflight;      /* metadata ops + I/O requests */
	struct bs_waiter *idle_waiters;
};

/* store internals used by ops and io */
struct blob *bs_blob_new(struct blob_store *bs, uint64_t id);
void bs_blob_insert(struct blob_store *bs, struct blob *b);
void bs_blob_remove(struct blob_store *bs, struct blob *b);
void bs_blob_free(struct blob *b);
void bs_blob_add_child(struct blob *parent, struct blob *child);
void bs_blob_del_child(struct blob *parent, struct blob *child);
uint64_t bs_cluster_alloc(struct blob_store *bs);  /* 0 if none */
void bs_cluster_release(struct blob_store *bs, uint64_t c);
uint64_t bs_page_alloc(struct blob_store *bs);
void bs_page_release(struct blob_store *bs, uint64_t p);
/* Clear (store's clear method) then release clusters; cb(arg, 0) after.
 * Ownership of `list` passes. May call cb at once. */
void bs_clusters_free(struct blob_store *bs, uint32_t *list, uint64_t n, blob_done_cb cb, void *arg);
uint64_t bs_free_clusters(const struct blob_store *bs);
void bs_op_begin(struct blob_store *bs);
void bs_op_end(struct blob_store *bs);
/* Group commit: cb runs after a flush that started after this call. */
void bs_flush(struct blob_store *bs, blob_done_cb cb, void *arg);
/* cb runs once every superseded page's zeroing is durable. */
void bs_zeroes_durable(struct blob_store *bs, blob_done_cb cb, void *arg);
/* Zero md pages (ownership of `pages` passes); their bits clear when done. */
void bs_pages_zero(struct blob_store *bs, uint32_t *pages, unsigned npages);
/* One md page write, merged with adjacent ones of the same loop round. */
void bs_md_write(struct blob_store *bs, uint32_t page, const uint8_t *buf, blob_done_cb cb, void *arg);
void bs_blob_state(const struct blob *b, struct bs_md_state *st);

/* A metadata transaction: write chains for up to BS_TXN_MAX blobs at one
 * seq, flush, then call done(arg, status). On success the new pages become
 * the blobs' chains and the old ones are zeroed. */
#define BS_TXN_MAX 2
#ifndef BS_FLUSH_MAX_INFLIGHT
#define BS_FLUSH_MAX_INFLIGHT 2     /* device flushes in flight (group commit) */
#endif
struct bs_txn_member {
	struct blob *blob;          /* in-memory object (may be not yet inserted) */
	struct bs_md_state st;      /* the state to write (caller keeps ownership) */
};
/* Errors come through done (maybe synchronously). The states' arrays must
 * stay untouched until done runs. bs_op_begin/end are done inside. */
void bs_txn_commit(struct blob_store *bs, struct bs_txn_member *m, unsigned n, const uint64_t *kills,
		   unsigned nkills, blob_done_cb done, void *arg);
/* Public completion from the loop, never inside the caller's call. */
void bs_defer_cb(blob_done_cb cb, void *arg, int status);

/* freeze: block new I/O of a blob, fn once in-flight I/O drained */
int bs_blob_freeze(struct blob *b, void (*fn)(void *), void *arg);
void bs_blob_unfreeze(struct blob *b);
void bs_io_resubmit_waiting(struct blob *b);
void bs_blob_io_done(struct blob *b);

#endif /* DE_BLOB_INTERNAL_H */
