/*
 * blob_ops.c: metadata operations on blobs: create, resize, delete (and the
 * snapshot-absorbing delete), snapshot, clone, inflate, decouple, read-only,
 * xattrs, and the getters. Each operation builds the new state, commits it
 * with bs_txn_commit() (durable before anything else happens) and only then
 * changes the in-memory objects and releases clusters.
 *
 * Locks, always taken in this order: store struct_lock (snapshot, clone,
 * absorb, inflate, decouple), freeze of the blob whose map changes, then
 * blob md_locks. Structural conditions are re-checked under the locks.
 */
#include <errno.h>
#include <string.h>

#include "blob/blob_internal.h"

#define MOD "blob"

enum op_kind {
	OP_CREATE, OP_RESIZE, OP_DELETE, OP_SNAPSHOT, OP_CLONE, OP_INFLATE, OP_DECOUPLE,
	OP_RDONLY, OP_XATTR,
};

struct op {
	enum op_kind kind;
	struct blob_store *bs;
	struct blob *b;       /* the blob operated on */
	struct blob *nb;      /* new blob (create, snapshot, clone) */
	struct blob *other;   /* absorb: the child */
	struct blob *dead;    /* absorb: the deleted snapshot, freed at the end */
	blob_done_cb done;
	blob_cb bdone;
	void *arg;
	uint64_t n;           /* resize target */
	struct bs_md_state st, st2;
	uint32_t *alloc;      /* clusters reserved for this op */
	uint64_t nalloc;
	bool struct_locked, frozen, frozen_other, locked, locked_other;
	/* copy loop (inflate / decouple) */
	uint64_t *copy_lc;
	uint64_t ncopy, icopy;
	uint8_t *buf;
	bool copied_flushed;
	int status;
	/* xattr */
	char *xname;
	void *xvalue;
	uint32_t xlen;
	bool xremove;
};


static void xattrs_free(struct bs_xattr *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		mem_free(x[i].name);
		mem_free(x[i].value);
	}
	mem_free(x);
}

static int xattrs_copy(const struct blob_xattr *in, unsigned n, struct bs_xattr **out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	struct bs_xattr *x = mem_zalloc(sizeof(*x) * n);
	if (!x)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		x[i].name = mem_strdup(in[i].name);
		x[i].value = mem_alloc(in[i].len ? in[i].len : 1);
		x[i].len = in[i].len;
		if (!x[i].name || !x[i].value) {
			xattrs_free(x, i + 1);
			return -ENOMEM;
		}
		if (in[i].len)
			memcpy(x[i].value, in[i].value, in[i].len);
	}
	*out = x;
	return 0;
}

static int xattrs_check(const struct blob_xattr *in, unsigned n)
{
	if (n > 64)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		size_t nl = in[i].name ? strlen(in[i].name) : 0;
		if (nl == 0 || nl > BLOB_XATTR_NAME_MAX || in[i].len > BLOB_XATTR_VALUE_MAX ||
		    (in[i].len && !in[i].value))
			return -EINVAL;
	}
	return 0;
}

static struct op *op_new(struct blob_store *bs, enum op_kind kind)
{
	struct op *o = mem_zalloc(sizeof(*o));
	if (!o)
		return NULL;
	o->kind = kind;
	o->bs = bs;
	bs_op_begin(bs);
	return o;
}

/* Release locks, give back reserved clusters, report (from the loop). */
static void op_finish(struct op *o, int status)
{
	struct blob_store *bs = o->bs;
	for (uint64_t i = 0; i < o->nalloc; i++)
		if (o->alloc[i])
			bs_cluster_release(bs, o->alloc[i]);
	mem_free(o->alloc);
	if (o->locked_other)
		bs_lock_release(&o->other->md_lock);
	if (o->locked)
		bs_lock_release(&o->b->md_lock);
	if (o->frozen_other)
		bs_blob_unfreeze(o->other);
	if (o->frozen)
		bs_blob_unfreeze(o->b);
	if (o->struct_locked)
		bs_lock_release(&bs->struct_lock);
	mem_free(o->st.clusters);
	mem_free(o->st2.clusters);
	if (o->st.xattrs)
		xattrs_free(o->st.xattrs, o->st.nxattrs);
	if (o->st2.xattrs)
		xattrs_free(o->st2.xattrs, o->st2.nxattrs);
	if (o->nb) {
		/* never inserted: give the id back */
		bs_bitmap_clear(&bs->ids, o->nb->id);
		bs_blob_free(o->nb);
	}
	mem_free(o->copy_lc);
	bs_dma_free(o->buf);
	mem_free(o->xname);
	mem_free(o->xvalue);
	if (o->bdone) {
		struct blob *res = o->status == 0 ? o->other : NULL;
		blob_cb cb = o->bdone;
		void *arg = o->arg;
		mem_free(o);
		bs_op_end(bs);
		cb(arg, status == 0 ? res : NULL, status);
		return;
	}
	blob_done_cb cb = o->done;
	void *arg = o->arg;
	mem_free(o);
	bs_op_end(bs);
	cb(arg, status);
}

static void op_finish_cb(void *arg, int status)
{
	op_finish(arg, status);
}

/* Every public completion goes through the loop. */
static void op_fail(struct op *o, int status)
{
	bs_defer_cb(op_finish_cb, o, status);
}

static uint64_t new_blob_id(struct blob_store *bs)
{
	uint64_t id = bs_bitmap_find_clear(&bs->ids, bs->ids.hint);
	if (id == UINT64_MAX)
		return BLOB_ID_NONE;
	bs_bitmap_set(&bs->ids, id);
	bs->ids.hint = id + 1;
	return id;
}

static uint32_t *clusters_copy(const uint32_t *src, uint64_t nsrc, uint64_t n)
{
	uint32_t *c = mem_zalloc(sizeof(uint32_t) * (n ? n : 1));
	if (c && src)
		memcpy(c, src, sizeof(uint32_t) * COMMON_MIN(nsrc, n));
	return c;
}

static uint64_t count_alloc(const uint32_t *c, uint64_t n)
{
	uint64_t k = 0;
	for (uint64_t i = 0; i < n; i++)
		k += c[i] != 0;
	return k;
}

/* Reserve `n` clusters into o->alloc; -ENOSPC if short. */
static int reserve(struct op *o, uint64_t n)
{
	if (n > bs_free_clusters(o->bs))
		return -ENOSPC;
	o->alloc = mem_zalloc(sizeof(uint32_t) * (n ? n : 1));
	if (!o->alloc)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		o->alloc[i] = (uint32_t)bs_cluster_alloc(o->bs);
		if (!o->alloc[i])
			return -ENOSPC;
		o->nalloc = i + 1;
	}
	return 0;
}

/* Ancestor's physical cluster for logical cluster lc (not b itself). */
static uint32_t ancestor_phys(const struct blob *b, uint64_t lc)
{
	for (const struct blob *x = b->parent; x; x = x->parent) {
		if (lc >= x->num_clusters)
			return 0;
		if (x->clusters[lc])
			return x->clusters[lc];
	}
	return 0;
}

/* ------------------------------------------------------------ create */

static void create_committed(void *arg, int status)
{
	struct op *o = arg;
	if (status) {
		op_finish(o, status);
		return;
	}
	struct blob *b = o->nb;
	o->nb = NULL;
	b->flags = o->st.flags;
	b->num_clusters = o->st.num_clusters;
	b->clusters = o->st.clusters;
	o->st.clusters = NULL;
	b->num_alloc = count_alloc(b->clusters, b->num_clusters);
	b->create_seq = o->st.create_seq;
	b->xattrs = o->st.xattrs;
	b->nxattrs = o->st.nxattrs;
	o->st.xattrs = NULL;
	o->nalloc = 0; /* clusters now belong to the blob */
	bs_blob_insert(o->bs, b);
	if (o->st.parent_id != BLOB_ID_NONE) {
		struct blob *p = blob_lookup(o->bs, o->st.parent_id);
		if (p)
			bs_blob_add_child(p, b);
	}
	o->other = b;
	o->status = 0;
	op_finish(o, 0);
}

int blob_create(struct blob_store *bs, const struct blob_create_opts *opts, blob_cb cb, void *cb_arg)
{
	if (!opts || xattrs_check(opts->xattrs, opts->num_xattrs) || opts->num_clusters > (1ull << 26))
		return -EINVAL;
	if (bs->failed)
		return -EIO;
	struct op *o = op_new(bs, OP_CREATE);
	if (!o)
		return -ENOMEM;
	o->bdone = cb;
	o->arg = cb_arg;
	int rc = xattrs_copy(opts->xattrs, opts->num_xattrs, &o->st.xattrs);
	if (rc) {
		mem_free(o);
		bs_op_end(bs);
		return rc;
	}
	o->st.nxattrs = opts->num_xattrs;
	o->st.flags = opts->thin ? BS_F_THIN : 0;
	o->st.num_clusters = opts->num_clusters;
	o->st.parent_id = BLOB_ID_NONE;
	o->st.create_seq = bs->next_create_seq++;
	o->st.clusters = clusters_copy(NULL, 0, opts->num_clusters);
	if (!o->st.clusters) {
		op_fail(o, -ENOMEM);
		return 0;
	}
	uint64_t id = new_blob_id(bs);
	if (id == BLOB_ID_NONE) {
		op_fail(o, -ENOSPC);
		return 0;
	}
	o->nb = bs_blob_new(bs, id);
	if (!o->nb) {
		bs_bitmap_clear(&bs->ids, id);
		op_fail(o, -ENOMEM);
		return 0;
	}
	if (!opts->thin) {
		rc = reserve(o, opts->num_clusters);
		if (rc) {
			op_fail(o, rc);
			return 0;
		}
		for (uint64_t i = 0; i < opts->num_clusters; i++)
			o->st.clusters[i] = o->alloc[i];
	}
	struct bs_txn_member m = { .blob = o->nb, .st = o->st };
	bs_txn_commit(bs, &m, 1, NULL, 0, create_committed, o);
	return 0;
}

/* ------------------------------------------------------------ resize */

static void resize_committed(void *arg, int status)
{
	struct op *o = arg;
	struct blob *b = o->b;
	if (status) {
		op_finish(o, status);
		return;
	}
	uint32_t *freed = NULL;
	uint64_t nfreed = 0;
	if (o->n < b->num_clusters) {
		freed = mem_alloc(sizeof(uint32_t) * (b->num_clusters - o->n));
		for (uint64_t i = o->n; i < b->num_clusters; i++) {
			if (!b->clusters[i])
				continue;
			if (freed)
				freed[nfreed++] = b->clusters[i];
			else
				bs_cluster_release(o->bs, b->clusters[i]);
		}
	}
	mem_free(b->clusters);
	b->clusters = o->st.clusters;
	o->st.clusters = NULL;
	b->num_clusters = o->n;
	b->num_alloc = count_alloc(b->clusters, b->num_clusters);
	o->nalloc = 0;
	bs_clusters_free(o->bs, freed, nfreed, op_finish_cb, o);
}

static void resize_locked(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b;
	o->locked = true;
	if (o->n == b->num_clusters) {
		op_fail(o, 0);
		return;
	}
	bs_blob_state(b, &o->st);
	o->st.xattrs = NULL; /* borrowed below: not ours to free */
	o->st.clusters = clusters_copy(b->clusters, b->num_clusters, o->n);
	if (!o->st.clusters) {
		op_fail(o, -ENOMEM);
		return;
	}
	if (o->n > b->num_clusters && !(b->flags & BS_F_THIN)) {
		int rc = reserve(o, o->n - b->num_clusters);
		if (rc) {
			op_fail(o, rc);
			return;
		}
		for (uint64_t i = b->num_clusters; i < o->n; i++)
			o->st.clusters[i] = o->alloc[i - b->num_clusters];
	}
	struct bs_txn_member m = { .blob = b, .st = o->st };
	m.st.num_clusters = o->n;
	m.st.xattrs = b->xattrs;
	m.st.nxattrs = b->nxattrs;
	bs_txn_commit(o->bs, &m, 1, NULL, 0, resize_committed, o);
}

static void resize_frozen(void *arg)
{
	struct op *o = arg;
	if (bs_lock_acquire(&o->b->md_lock, resize_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

int blob_resize(struct blob *blob, uint64_t num_clusters, blob_done_cb cb, void *cb_arg)
{
	if (num_clusters > (1ull << 26))
		return -EINVAL;
	struct op *o = op_new(blob->bs, OP_RESIZE);
	if (!o)
		return -ENOMEM;
	o->b = blob;
	o->n = num_clusters;
	o->done = cb;
	o->arg = cb_arg;
	if (blob->flags & BS_F_RDONLY) {
		op_fail(o, -EPERM);
		return 0;
	}
	if (num_clusters < blob->num_clusters) {
		o->frozen = true;
		if (bs_blob_freeze(blob, resize_frozen, o) != 0)
			op_fail(o, -ENOMEM);
		return 0;
	}
	resize_frozen(o);
	return 0;
}

/* ------------------------------------------------------------ delete */

struct erase_ctx {
	struct op *o;
	unsigned pending;
	int status;
};

static void delete_cleared(void *arg, int status)
{
	struct op *o = arg;
	bs_blob_remove(o->bs, o->b);
	bs_blob_free(o->b);
	o->b = NULL;
	op_finish(o, status);
}

static void delete_flushed(void *arg, int status)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *b = o->b;
	if (status) {
		bs->failed = true;
		op_finish(o, status);
		return;
	}
	for (unsigned i = 0; i < b->npages; i++)
		bs_page_release(bs, b->pages[i]);
	uint32_t *freed = mem_alloc(sizeof(uint32_t) * (b->num_alloc ? b->num_alloc : 1));
	uint64_t nfreed = 0;
	for (uint64_t i = 0; i < b->num_clusters; i++) {
		if (!b->clusters[i])
			continue;
		if (freed && nfreed < b->num_alloc)
			freed[nfreed++] = b->clusters[i];
		else
			bs_cluster_release(bs, b->clusters[i]);
	}
	if (b->parent)
		bs_blob_del_child(b->parent, b);
	bs_lock_release(&b->md_lock);
	o->locked = false;
	/* the blob object lives until its clusters are cleared (callers may
	 * still look at it until the callback) */
	bs_clusters_free(bs, freed, nfreed, delete_cleared, o);
}

static void erase_write_done(void *arg, int status)
{
	struct erase_ctx *e = arg;
	if (status && !e->status)
		e->status = status;
	if (--e->pending > 0)
		return;
	struct op *o = e->o;
	int st = e->status;
	mem_free(e);
	if (st) {
		delete_flushed(o, st);
		return;
	}
	bs_flush(o->bs, delete_flushed, o);
}

static void delete_zeroes_durable(void *arg, int status)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *b = o->b;
	if (status) {
		op_finish(o, status);
		return;
	}
	struct erase_ctx *e = mem_zalloc(sizeof(*e));
	if (!e) {
		op_finish(o, -ENOMEM);
		return;
	}
	e->o = o;
	e->pending = 1;
	for (unsigned i = 0; i < b->npages; i++) {
		e->pending++;
		bs_md_write(bs, b->pages[i], bs->zero_page, erase_write_done, e);
	}
	erase_write_done(e, 0);
}

static void absorb_start(struct op *o);
static void delete_start(struct op *o);

static void delete_locked(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b;
	o->locked = true;
	if (b->nchildren != 0) {
		/* became a snapshot meanwhile: decide again */
		bs_lock_release(&b->md_lock);
		o->locked = false;
		delete_start(o);
		return;
	}
	if (o->bs->failed) {
		op_fail(o, -EIO);
		return;
	}
	/* Stale chains of this blob must be durably zeroed before its live
	 * chain disappears (doc/ONDISK.md). */
	bs_zeroes_durable(o->bs, delete_zeroes_durable, o);
}

static void delete_start(struct op *o)
{
	struct blob *b = o->b;
	if (b->nchildren >= 2) {
		op_fail(o, -EPERM);
		return;
	}
	if (b->nchildren == 1) {
		absorb_start(o);
		return;
	}
	if (bs_lock_acquire(&b->md_lock, delete_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

int blob_delete(struct blob *blob, blob_done_cb cb, void *cb_arg)
{
	struct op *o = op_new(blob->bs, OP_DELETE);
	if (!o)
		return -ENOMEM;
	o->b = blob;
	o->done = cb;
	o->arg = cb_arg;
	delete_start(o);
	return 0;
}

/* absorb: b (snapshot) has exactly one child c; c takes b's clusters where
 * it has none and b's parent; b disappears. One chain (c) with a kill
 * record for b makes it atomic. */
static void absorb_cleared(void *arg, int status)
{
	struct op *o = arg;
	bs_blob_remove(o->bs, o->dead);
	bs_blob_free(o->dead);
	o->dead = NULL;
	op_finish(o, status);
}

static void absorb_committed(void *arg, int status)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *b = o->b, *c = o->other;
	if (status) {
		op_finish(o, status);
		return;
	}
	/* clusters of b not taken over go back to the pool */
	uint32_t *freed = mem_alloc(sizeof(uint32_t) * (b->num_clusters ? b->num_clusters : 1));
	uint64_t nfreed = 0;
	for (uint64_t i = 0; i < b->num_clusters; i++) {
		uint32_t pc = b->clusters[i];
		if (pc && !(i < c->num_clusters && o->st.clusters[i] == pc)) {
			if (freed)
				freed[nfreed++] = pc;
			else
				bs_cluster_release(bs, pc);
		}
	}
	mem_free(c->clusters);
	c->clusters = o->st.clusters;
	o->st.clusters = NULL;
	c->num_alloc = count_alloc(c->clusters, c->num_clusters);
	struct blob *gp = b->parent;
	bs_blob_del_child(b, c);
	if (gp) {
		bs_blob_del_child(gp, b);
		bs_blob_add_child(gp, c);
	}
	/* b's pages: zeroed in the background; c's kill record covers them
	 * until that is durable */
	bs_pages_zero(bs, b->pages, b->npages);
	b->pages = NULL;
	b->npages = 0;
	o->locked_other = false;
	bs_lock_release(&c->md_lock);
	o->locked = false;
	bs_lock_release(&b->md_lock);
	/* b is gone on disk; its object stays (empty) until the callback */
	if (b->num_clusters)
		memset(b->clusters, 0, sizeof(uint32_t) * b->num_clusters);
	b->num_alloc = 0;
	o->dead = b;
	o->b = c; /* unfreeze below targets nothing of b */
	o->frozen = o->frozen_other;
	o->frozen_other = false;
	bs_clusters_free(bs, freed, nfreed, absorb_cleared, o);
}

static void absorb_locked_child(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b, *c = o->other;
	o->locked_other = true;
	if (b->nchildren != 1 || b->children[0] != c) {
		op_fail(o, b->nchildren >= 2 ? -EPERM : -EAGAIN);
		return;
	}
	bs_blob_state(c, &o->st);
	o->st.xattrs = NULL;
	o->st.clusters = clusters_copy(c->clusters, c->num_clusters, c->num_clusters);
	if (!o->st.clusters) {
		op_fail(o, -ENOMEM);
		return;
	}
	for (uint64_t i = 0; i < c->num_clusters && i < b->num_clusters; i++)
		if (!o->st.clusters[i])
			o->st.clusters[i] = b->clusters[i];
	o->st.parent_id = b->parent_id;
	struct bs_txn_member m = { .blob = c, .st = o->st };
	m.st.xattrs = c->xattrs;
	m.st.nxattrs = c->nxattrs;
	uint64_t kill = b->id;
	bs_txn_commit(o->bs, &m, 1, &kill, 1, absorb_committed, o);
}

static void absorb_locked_self(void *arg)
{
	struct op *o = arg;
	o->locked = true;
	if (bs_lock_acquire(&o->other->md_lock, absorb_locked_child, o) != 0)
		op_fail(o, -ENOMEM);
}

static void absorb_frozen(void *arg)
{
	struct op *o = arg;
	if (bs_lock_acquire(&o->b->md_lock, absorb_locked_self, o) != 0)
		op_fail(o, -ENOMEM);
}

static void absorb_struct_locked(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b;
	o->struct_locked = true;
	if (b->nchildren != 1) {
		bs_lock_release(&o->bs->struct_lock);
		o->struct_locked = false;
		delete_start(o);
		return;
	}
	o->other = b->children[0];
	o->frozen_other = true;
	if (bs_blob_freeze(o->other, absorb_frozen, o) != 0)
		op_fail(o, -ENOMEM);
}

static void absorb_start(struct op *o)
{
	if (bs_lock_acquire(&o->bs->struct_lock, absorb_struct_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

/* ---------------------------------------------------------- snapshot */

static void snapshot_committed(void *arg, int status)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *origin = o->b, *s = o->nb;
	if (status) {
		op_finish(o, status);
		return;
	}
	o->nb = NULL;
	s->flags = o->st2.flags;
	s->num_clusters = o->st2.num_clusters;
	s->clusters = origin->clusters; /* the snapshot takes the clusters */
	s->num_alloc = origin->num_alloc;
	s->create_seq = o->st2.create_seq;
	s->xattrs = o->st2.xattrs;
	s->nxattrs = o->st2.nxattrs;
	o->st2.xattrs = NULL;
	origin->clusters = o->st.clusters; /* all zero */
	o->st.clusters = NULL;
	origin->num_alloc = 0;
	origin->flags |= BS_F_THIN;
	bs_blob_insert(bs, s);
	struct blob *gp = origin->parent;
	if (gp) {
		bs_blob_del_child(gp, origin);
		bs_blob_add_child(gp, s);
	}
	bs_blob_add_child(s, origin);
	o->other = s;
	op_finish(o, 0);
}

static void snapshot_locked(void *arg)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *origin = o->b;
	o->locked = true;
	if (origin->flags & BS_F_RDONLY) {
		op_fail(o, -EINVAL);
		return;
	}
	uint64_t id = new_blob_id(bs);
	if (id == BLOB_ID_NONE) {
		op_fail(o, -ENOSPC);
		return;
	}
	o->nb = bs_blob_new(bs, id);
	if (!o->nb) {
		bs_bitmap_clear(&bs->ids, id);
		op_fail(o, -ENOMEM);
		return;
	}
	/* snapshot: the origin's clusters, its parent, read-only */
	o->st2.flags = BS_F_RDONLY | BS_F_SNAPSHOT | (origin->flags & BS_F_THIN);
	o->st2.num_clusters = origin->num_clusters;
	o->st2.clusters = NULL; /* encoded from the origin's array, see below */
	o->st2.parent_id = origin->parent_id;
	o->st2.create_seq = bs->next_create_seq++;
	/* origin: empty thin clone of the snapshot */
	bs_blob_state(origin, &o->st);
	o->st.xattrs = NULL;
	o->st.clusters = clusters_copy(NULL, 0, origin->num_clusters);
	if (!o->st.clusters) {
		op_fail(o, -ENOMEM);
		return;
	}
	o->st.flags |= BS_F_THIN;
	o->st.parent_id = id;
	struct bs_txn_member m[2];
	m[0].blob = o->nb;
	m[0].st = o->st2;
	m[0].st.clusters = origin->clusters; /* untouched until commit: origin frozen + locked */
	m[1].blob = origin;
	m[1].st = o->st;
	m[1].st.xattrs = origin->xattrs;
	m[1].st.nxattrs = origin->nxattrs;
	bs_txn_commit(bs, m, 2, NULL, 0, snapshot_committed, o);
}

static void snapshot_frozen(void *arg)
{
	struct op *o = arg;
	if (bs_lock_acquire(&o->b->md_lock, snapshot_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

static void snapshot_struct_locked(void *arg)
{
	struct op *o = arg;
	o->struct_locked = true;
	o->frozen = true;
	if (bs_blob_freeze(o->b, snapshot_frozen, o) != 0)
		op_fail(o, -ENOMEM);
}

int blob_snapshot(struct blob *origin, const struct blob_xattr *xattrs, unsigned num_xattrs,
		  blob_cb cb, void *cb_arg)
{
	if (xattrs_check(xattrs, num_xattrs))
		return -EINVAL;
	struct op *o = op_new(origin->bs, OP_SNAPSHOT);
	if (!o)
		return -ENOMEM;
	o->b = origin;
	o->bdone = cb;
	o->arg = cb_arg;
	int rc = xattrs_copy(xattrs, num_xattrs, &o->st2.xattrs);
	if (rc) {
		mem_free(o);
		bs_op_end(origin->bs);
		return rc;
	}
	o->st2.nxattrs = num_xattrs;
	if (bs_lock_acquire(&origin->bs->struct_lock, snapshot_struct_locked, o) != 0)
		op_fail(o, -ENOMEM);
	return 0;
}

/* ------------------------------------------------------------- clone */

static void clone_locked(void *arg)
{
	struct op *o = arg;
	struct blob_store *bs = o->bs;
	struct blob *s = o->b;
	o->locked = true;
	if (!(s->flags & BS_F_RDONLY)) {
		op_fail(o, -EINVAL);
		return;
	}
	uint64_t id = new_blob_id(bs);
	if (id == BLOB_ID_NONE) {
		op_fail(o, -ENOSPC);
		return;
	}
	o->nb = bs_blob_new(bs, id);
	if (!o->nb) {
		bs_bitmap_clear(&bs->ids, id);
		op_fail(o, -ENOMEM);
		return;
	}
	o->st.flags = BS_F_THIN;
	o->st.num_clusters = s->num_clusters;
	o->st.clusters = clusters_copy(NULL, 0, s->num_clusters);
	o->st.parent_id = s->id;
	o->st.create_seq = bs->next_create_seq++;
	if (!o->st.clusters) {
		op_fail(o, -ENOMEM);
		return;
	}
	struct bs_txn_member m = { .blob = o->nb, .st = o->st };
	bs_txn_commit(bs, &m, 1, NULL, 0, create_committed, o);
}

static void clone_struct_locked(void *arg)
{
	struct op *o = arg;
	o->struct_locked = true;
	if (bs_lock_acquire(&o->b->md_lock, clone_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

int blob_clone(struct blob *snapshot, const struct blob_xattr *xattrs, unsigned num_xattrs,
	       blob_cb cb, void *cb_arg)
{
	if (xattrs_check(xattrs, num_xattrs))
		return -EINVAL;
	struct op *o = op_new(snapshot->bs, OP_CLONE);
	if (!o)
		return -ENOMEM;
	o->b = snapshot;
	o->bdone = cb;
	o->arg = cb_arg;
	int rc = xattrs_copy(xattrs, num_xattrs, &o->st.xattrs);
	if (rc) {
		mem_free(o);
		bs_op_end(snapshot->bs);
		return rc;
	}
	o->st.nxattrs = num_xattrs;
	if (bs_lock_acquire(&snapshot->bs->struct_lock, clone_struct_locked, o) != 0)
		op_fail(o, -ENOMEM);
	return 0;
}

/* --------------------------------------------------- inflate/decouple */

static void copy_committed(void *arg, int status)
{
	struct op *o = arg;
	struct blob *b = o->b;
	if (status) {
		op_finish(o, status);
		return;
	}
	mem_free(b->clusters);
	b->clusters = o->st.clusters;
	o->st.clusters = NULL;
	b->num_alloc = count_alloc(b->clusters, b->num_clusters);
	b->flags = o->st.flags;
	if (b->parent)
		bs_blob_del_child(b->parent, b);
	o->nalloc = 0;
	op_finish(o, 0);
}

static void copy_next(struct op *o);

static void copy_flushed(void *arg, int status)
{
	struct op *o = arg;
	if (status) {
		op_finish(o, status);
		return;
	}
	copy_next(o);
}

static void copy_io_done(void *arg, int status)
{
	struct op *o = arg;
	if (status) {
		op_finish(o, status);
		return;
	}
	o->icopy++;
	copy_next(o);
}

static void copy_read_done(void *arg, int status)
{
	struct op *o = arg;
	if (status) {
		op_finish(o, status);
		return;
	}
	uint64_t dst = o->alloc[o->icopy];
	int rc = bdev_write(o->bs->bdev, o->buf, dst * o->bs->cluster_size, o->bs->cluster_size,
			    copy_io_done, o);
	if (rc)
		op_finish(o, rc);
}

static void copy_next(struct op *o)
{
	struct blob_store *bs = o->bs;
	struct blob *b = o->b;
	if (o->icopy == o->ncopy && !o->copied_flushed) {
		/* copies durable before the new map points to them */
		o->copied_flushed = true;
		bs_flush(bs, copy_flushed, o);
		return;
	}
	if (o->icopy == o->ncopy) {
		for (uint64_t i = 0; i < o->ncopy; i++)
			o->st.clusters[o->copy_lc[i]] = o->alloc[i];
		o->st.parent_id = BLOB_ID_NONE;
		if (o->kind == OP_INFLATE)
			o->st.flags &= ~BS_F_THIN;
		struct bs_txn_member m = { .blob = b, .st = o->st };
		m.st.xattrs = b->xattrs;
		m.st.nxattrs = b->nxattrs;
		bs_txn_commit(bs, &m, 1, NULL, 0, copy_committed, o);
		return;
	}
	uint64_t lc = o->copy_lc[o->icopy];
	uint32_t src = ancestor_phys(b, lc);
	uint64_t dst = o->alloc[o->icopy];
	int rc;
	if (src)
		rc = bdev_read(bs->bdev, o->buf, (uint64_t)src * bs->cluster_size, bs->cluster_size,
			       copy_read_done, o);
	else
		rc = bdev_write_zeroes(bs->bdev, dst * bs->cluster_size, bs->cluster_size, copy_io_done, o);
	if (rc)
		op_fail(o, rc);
}

static void copy_locked(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b;
	o->locked = true;
	if (b->flags & BS_F_RDONLY) {
		op_fail(o, -EPERM);
		return;
	}
	bs_blob_state(b, &o->st);
	o->st.xattrs = NULL;
	o->st.clusters = clusters_copy(b->clusters, b->num_clusters, b->num_clusters);
	o->copy_lc = mem_alloc(sizeof(uint64_t) * (b->num_clusters ? b->num_clusters : 1));
	if (!o->st.clusters || !o->copy_lc) {
		op_fail(o, -ENOMEM);
		return;
	}
	for (uint64_t lc = 0; lc < b->num_clusters; lc++) {
		if (b->clusters[lc])
			continue;
		if (o->kind == OP_INFLATE || ancestor_phys(b, lc))
			o->copy_lc[o->ncopy++] = lc;
	}
	if (o->ncopy == 0 && !b->parent && (o->kind == OP_DECOUPLE || !(b->flags & BS_F_THIN))) {
		op_fail(o, 0); /* nothing to do (SPDK: inflate of a thick non-clone succeeds) */
		return;
	}
	int rc = reserve(o, o->ncopy);
	if (rc) {
		op_fail(o, rc);
		return;
	}
	o->buf = bs_dma_alloc(o->bs->cluster_size);
	if (!o->buf) {
		op_fail(o, -ENOMEM);
		return;
	}
	copy_next(o);
}

static void copy_frozen(void *arg)
{
	struct op *o = arg;
	if (bs_lock_acquire(&o->b->md_lock, copy_locked, o) != 0)
		op_fail(o, -ENOMEM);
}

static void copy_struct_locked(void *arg)
{
	struct op *o = arg;
	o->struct_locked = true;
	o->frozen = true;
	if (bs_blob_freeze(o->b, copy_frozen, o) != 0)
		op_fail(o, -ENOMEM);
}

static int copy_start(struct blob *blob, enum op_kind kind, blob_done_cb cb, void *cb_arg)
{
	struct op *o = op_new(blob->bs, kind);
	if (!o)
		return -ENOMEM;
	o->b = blob;
	o->done = cb;
	o->arg = cb_arg;
	if (bs_lock_acquire(&blob->bs->struct_lock, copy_struct_locked, o) != 0)
		op_fail(o, -ENOMEM);
	return 0;
}

int blob_inflate(struct blob *blob, blob_done_cb cb, void *cb_arg)
{
	return copy_start(blob, OP_INFLATE, cb, cb_arg);
}

int blob_decouple_parent(struct blob *blob, blob_done_cb cb, void *cb_arg)
{
	return copy_start(blob, OP_DECOUPLE, cb, cb_arg);
}

/* ------------------------------------------------ read-only / xattrs */

static void attr_committed(void *arg, int status)
{
	struct op *o = arg;
	struct blob *b = o->b;
	if (status) {
		op_finish(o, status);
		return;
	}
	b->flags = o->st.flags;
	if (o->kind == OP_XATTR) {
		xattrs_free(b->xattrs, b->nxattrs);
		b->xattrs = o->st.xattrs;
		b->nxattrs = o->st.nxattrs;
		o->st.xattrs = NULL;
	}
	op_finish(o, 0);
}

static void attr_locked(void *arg)
{
	struct op *o = arg;
	struct blob *b = o->b;
	o->locked = true;
	bs_blob_state(b, &o->st);
	o->st.clusters = NULL;
	o->st.xattrs = NULL;
	o->st.nxattrs = 0;
	struct bs_txn_member m = { .blob = b, .st = o->st };
	m.st.clusters = b->clusters; /* unchanged and locked */
	if (o->kind == OP_RDONLY) {
		if (b->flags & BS_F_RDONLY) {
			op_fail(o, 0);
			return;
		}
		o->st.flags |= BS_F_RDONLY;
		m.st.flags = o->st.flags;
		m.st.xattrs = b->xattrs;
		m.st.nxattrs = b->nxattrs;
	} else {
		/* new xattr list: all others + the changed one */
		struct bs_xattr *nx = mem_zalloc(sizeof(*nx) * (b->nxattrs + 1));
		if (!nx) {
			op_fail(o, -ENOMEM);
			return;
		}
		unsigned n = 0;
		bool failed = false;
		for (unsigned i = 0; i < b->nxattrs; i++) {
			if (strcmp(b->xattrs[i].name, o->xname) == 0)
				continue;
			nx[n].name = mem_strdup(b->xattrs[i].name);
			nx[n].value = mem_alloc(b->xattrs[i].len ? b->xattrs[i].len : 1);
			nx[n].len = b->xattrs[i].len;
			n++;
			if (!nx[n - 1].name || !nx[n - 1].value) {
				failed = true;
				break;
			}
			memcpy(nx[n - 1].value, b->xattrs[i].value, b->xattrs[i].len);
		}
		if (!failed && !o->xremove) {
			nx[n].name = o->xname;
			nx[n].value = o->xvalue;
			nx[n].len = o->xlen;
			o->xname = NULL;
			o->xvalue = NULL;
			n++;
		}
		o->st.xattrs = nx;
		o->st.nxattrs = n;
		if (failed) {
			op_fail(o, -ENOMEM);
			return;
		}
		m.st.xattrs = nx;
		m.st.nxattrs = n;
	}
	bs_txn_commit(o->bs, &m, 1, NULL, 0, attr_committed, o);
}

int blob_set_read_only(struct blob *blob, blob_done_cb cb, void *cb_arg)
{
	struct op *o = op_new(blob->bs, OP_RDONLY);
	if (!o)
		return -ENOMEM;
	o->b = blob;
	o->done = cb;
	o->arg = cb_arg;
	if (bs_lock_acquire(&blob->md_lock, attr_locked, o) != 0)
		op_fail(o, -ENOMEM);
	return 0;
}

int blob_set_xattr(struct blob *blob, const char *name, const void *value, uint32_t len,
		   blob_done_cb cb, void *cb_arg)
{
	if (!name || !*name || strlen(name) > BLOB_XATTR_NAME_MAX || len > BLOB_XATTR_VALUE_MAX)
		return -EINVAL;
	struct op *o = op_new(blob->bs, OP_XATTR);
	if (!o)
		return -ENOMEM;
	o->b = blob;
	o->done = cb;
	o->arg = cb_arg;
	o->xname = mem_strdup(name);
	o->xremove = value == NULL;
	o->xlen = value ? len : 0;
	o->xvalue = mem_alloc(len ? len : 1);
	if (!o->xname || !o->xvalue) {
		op_fail(o, -ENOMEM);
		return 0;
	}
	if (value && len)
		memcpy(o->xvalue, value, len);
	if (bs_lock_acquire(&blob->md_lock, attr_locked, o) != 0)
		op_fail(o, -ENOMEM);
	return 0;
}

/* ----------------------------------------------------------- getters */

uint64_t blob_id(const struct blob *blob) { return blob->id; }
uint64_t blob_num_clusters(const struct blob *blob) { return blob->num_clusters; }
uint64_t blob_num_allocated_clusters(const struct blob *blob) { return blob->num_alloc; }
bool blob_is_thin(const struct blob *blob) { return blob->flags & BS_F_THIN; }

void blob_prefetch(const struct blob *blob)
{
	/* flags .. nchildren: the first two cache lines */
	__builtin_prefetch(blob);
	__builtin_prefetch((const char *)blob + 64);
}
uint64_t blob_create_seq(const struct blob *blob) { return blob->create_seq; }
bool blob_is_read_only(const struct blob *blob) { return blob->flags & BS_F_RDONLY; }
bool blob_is_snapshot(const struct blob *blob)
{
	return (blob->flags & BS_F_SNAPSHOT) || ((blob->flags & BS_F_RDONLY) && blob->nchildren > 0);
}
struct blob *blob_parent(const struct blob *blob) { return blob->parent; }
unsigned blob_clone_count(const struct blob *blob) { return blob->nchildren; }
struct blob *blob_clone_get(const struct blob *blob, unsigned i)
{
	return i < blob->nchildren ? blob->children[i] : NULL;
}
void blob_set_ctx(struct blob *blob, void *ctx) { blob->ctx = ctx; }
void *blob_get_ctx(const struct blob *blob) { return blob->ctx; }

const void *blob_xattr_get(const struct blob *blob, const char *name, uint32_t *len)
{
	for (unsigned i = 0; i < blob->nxattrs; i++) {
		if (strcmp(blob->xattrs[i].name, name) == 0) {
			if (len)
				*len = blob->xattrs[i].len;
			return blob->xattrs[i].value;
		}
	}
	return NULL;
}

uint64_t blob_cluster_phys(const struct blob *blob, uint64_t i)
{
	return i < blob->num_clusters ? blob->clusters[i] : 0;
}
