/*
 * blob_io.c: the data path of blobs. A request is split at cluster
 * boundaries; allocated clusters map straight to the base bdev, reads of
 * unallocated ones come from the nearest ancestor that has the cluster or
 * are zeros. A write (or write zeroes over an ancestor's data) to an
 * unallocated cluster allocates one, fills it completely (ancestor data or
 * zeros around the new data), commits the new mapping (metadata durable)
 * and only then completes.
 *
 * While a blob is frozen (snapshot, shrink, inflate) new requests wait in a
 * queue; bs_blob_freeze() calls back once in-flight requests drained.
 */
#include <errno.h>
#include <string.h>

#include "blob/blob_internal.h"

#define MOD "blob"

enum io_kind { IO_READ, IO_WRITE, IO_WZ };

struct bs_io_req {
	struct blob *blob;
	enum io_kind kind;
	uint8_t *buf;
	uint64_t off, len;
	blob_done_cb cb;
	void *arg;
	unsigned pending;
	int status;
	struct bs_io_req *next;
};

/* one cluster's worth of a request */
struct seg {
	struct bs_io_req *req;
	uint64_t lc;
	uint64_t coff, len;  /* within the cluster */
	uint8_t *buf;        /* NULL: zeros */
	struct seg *next;    /* waiting on an allocation */
};

struct bs_alloc {
	struct blob *blob;
	uint64_t lc;
	uint32_t cluster;
	struct seg *seg;     /* the segment that triggered it */
	struct seg *waiters;
	uint8_t *cbuf;       /* full-cluster buffer (ancestor copy) */
	unsigned pending;
	int status;
	struct bs_alloc *next;
	struct bs_alloc *rnext;  /* b->alloc_ready */
};

static void seg_start(struct seg *s);

/* ----------------------------------------------------------- freeze */

static void run_list(struct bs_waiter **list)
{
	struct bs_waiter *w = *list;
	*list = NULL;
	while (w) {
		struct bs_waiter *n = w->next;
		void (*fn)(void *) = w->fn;
		void *arg = w->arg;
		mem_free(w);
		fn(arg);
		w = n;
	}
}

int bs_blob_freeze(struct blob *b, void (*fn)(void *), void *arg)
{
	b->frozen++;
	if (b->io_inflight == 0) {
		fn(arg);
		return 0;
	}
	struct bs_waiter *w = mem_zalloc(sizeof(*w));
	if (!w) {
		b->frozen--;
		return -ENOMEM;
	}
	w->fn = fn;
	w->arg = arg;
	w->next = b->idle_waiters;
	b->idle_waiters = w;
	return 0;
}

static void req_dispatch(struct bs_io_req *r);

void bs_blob_unfreeze(struct blob *b)
{
	if (--b->frozen > 0)
		return;
	bs_io_resubmit_waiting(b);
}

void bs_io_resubmit_waiting(struct blob *b)
{
	struct bs_io_req *r = b->io_wait_head;
	b->io_wait_head = b->io_wait_tail = NULL;
	while (r) {
		struct bs_io_req *n = r->next;
		r->next = NULL;
		req_dispatch(r);
		r = n;
	}
}

void bs_blob_io_done(struct blob *b)
{
	b->io_inflight--;
	if (b->io_inflight == 0 && b->idle_waiters)
		run_list(&b->idle_waiters);
}

/* -------------------------------------------------------- requests */

static void req_put(struct bs_io_req *r, int status)
{
	if (status && !r->status)
		r->status = status;
	if (--r->pending > 0)
		return;
	struct blob *b = r->blob;
	struct blob_store *bs = b->bs;
	blob_done_cb cb = r->cb;
	void *arg = r->arg;
	int st = r->status;
	mem_free(r);
	bs_blob_io_done(b);
	bs_op_end(bs);
	cb(arg, st);
}

static void seg_io_done(void *arg, int status)
{
	struct seg *s = arg;
	struct bs_io_req *r = s->req;
	mem_free(s);
	req_put(r, status);
}

static uint32_t phys_of(const struct blob *b, uint64_t lc, bool self)
{
	for (const struct blob *x = self ? b : b->parent; x; x = x->parent) {
		if (lc >= x->num_clusters)
			return 0;
		if (x->clusters[lc])
			return x->clusters[lc];
	}
	return 0;
}

/* ------------------------------------------------------- allocation */

static void alloc_finish(struct bs_alloc *a, int status)
{
	struct blob *b = a->blob;
	struct bs_alloc **pp = &b->allocs;
	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	if (status && a->cluster)
		bs_cluster_release(b->bs, a->cluster);
	bs_dma_free(a->cbuf);
	struct seg *s = a->seg;
	struct seg *w = a->waiters;
	mem_free(a);
	seg_io_done(s, status);
	/* waiters run again: now allocated (or they try themselves) */
	while (w) {
		struct seg *n = w->next;
		w->next = NULL;
		seg_start(w);
		w = n;
	}
}

/*
 * Allocations whose data is durable wait in b->alloc_ready; one metadata
 * transaction commits all of them (concurrent first writes to a thin blob
 * share a commit instead of queueing one by one on the md lock).
 */
struct alloc_batch {
	struct blob *b;
	struct bs_alloc *list;
	uint32_t *newmap;
	unsigned n;
};

static void alloc_schedule(struct blob *b);

static void alloc_batch_committed(void *arg, int status)
{
	struct alloc_batch *ab = arg;
	struct blob *b = ab->b;
	if (status == 0) {
		mem_free(b->clusters);
		b->clusters = ab->newmap;
		ab->newmap = NULL;
		b->num_alloc += ab->n;
		for (struct bs_alloc *a = ab->list; a; a = a->rnext)
			a->cluster = 0; /* owned by the blob now */
	}
	b->alloc_commit_pending = false;
	bs_lock_release(&b->md_lock);
	if (b->alloc_ready && !b->alloc_commit_pending)
		alloc_schedule(b);
	struct bs_alloc *a = ab->list;
	mem_free(ab->newmap);
	mem_free(ab);
	while (a) {
		struct bs_alloc *n = a->rnext;
		alloc_finish(a, status);
		a = n;
	}
}

static void alloc_commit_locked(void *arg)
{
	struct blob *b = arg;
	struct alloc_batch *ab = mem_zalloc(sizeof(*ab));
	uint32_t *map = ab ? mem_alloc(sizeof(uint32_t) * (b->num_clusters ? b->num_clusters : 1)) : NULL;
	int rc = b->bs->failed ? -EIO : 0;
	if (!rc && (!ab || !map))
		rc = -ENOMEM;
	if (rc) {
		struct bs_alloc *a = b->alloc_ready;
		b->alloc_ready = NULL;
		b->alloc_commit_pending = false;
		bs_lock_release(&b->md_lock);
		mem_free(ab);
		mem_free(map);
		while (a) {
			struct bs_alloc *n = a->rnext;
			alloc_finish(a, rc);
			a = n;
		}
		return;
	}
	ab->b = b;
	ab->list = b->alloc_ready;
	b->alloc_ready = NULL;
	ab->newmap = map;
	if (b->num_clusters)
		memcpy(map, b->clusters, sizeof(uint32_t) * b->num_clusters);
	for (struct bs_alloc *a = ab->list; a; a = a->rnext) {
		map[a->lc] = a->cluster;
		ab->n++;
	}
	struct bs_txn_member m;
	bs_blob_state(b, &m.st);
	m.blob = b;
	m.st.clusters = map;
	bs_txn_commit(b->bs, &m, 1, NULL, 0, alloc_batch_committed, ab);
}

static void alloc_schedule(struct blob *b)
{
	b->alloc_commit_pending = true;
	if (bs_lock_acquire(&b->md_lock, alloc_commit_locked, b) != 0) {
		b->alloc_commit_pending = false;
		struct bs_alloc *a = b->alloc_ready;
		b->alloc_ready = NULL;
		while (a) {
			struct bs_alloc *n = a->rnext;
			alloc_finish(a, -ENOMEM);
			a = n;
		}
	}
}

static void alloc_data_flushed(void *arg, int status)
{
	struct bs_alloc *a = arg;
	if (status) {
		alloc_finish(a, status);
		return;
	}
	struct blob *b = a->blob;
	a->rnext = b->alloc_ready;
	b->alloc_ready = a;
	if (!b->alloc_commit_pending)
		alloc_schedule(b);
}

static void alloc_data_done(void *arg, int status)
{
	struct bs_alloc *a = arg;
	if (status && !a->status)
		a->status = status;
	if (--a->pending > 0)
		return;
	if (a->status) {
		alloc_finish(a, a->status);
		return;
	}
	/* the filled cluster must be durable before a mapping points to it */
	bs_flush(a->blob->bs, alloc_data_flushed, a);
}

/* A sub-I/O the bdev refused: it will never complete. */
static void sub_check(struct bs_alloc *a, int rc)
{
	if (rc) {
		a->pending--;
		if (!a->status)
			a->status = rc;
	}
}

static void alloc_ancestor_read(void *arg, int status)
{
	struct bs_alloc *a = arg;
	struct blob_store *bs = a->blob->bs;
	struct seg *s = a->seg;
	if (status) {
		alloc_finish(a, status);
		return;
	}
	if (s->buf)
		memcpy(a->cbuf + s->coff, s->buf, s->len);
	else
		memset(a->cbuf + s->coff, 0, s->len);
	a->pending = 1;
	int rc = bdev_write(bs->bdev, a->cbuf, (uint64_t)a->cluster * bs->cluster_size, bs->cluster_size,
			    alloc_data_done, a);
	if (rc) {
		alloc_finish(a, rc);
		return;
	}
}

static void seg_allocate(struct seg *s)
{
	struct blob *b = s->req->blob;
	struct blob_store *bs = b->bs;
	for (struct bs_alloc *x = b->allocs; x; x = x->next) {
		if (x->lc == s->lc) {
			s->next = x->waiters;
			x->waiters = s;
			return;
		}
	}
	struct bs_alloc *a = mem_zalloc(sizeof(*a));
	if (!a) {
		seg_io_done(s, -ENOMEM);
		return;
	}
	a->blob = b;
	a->lc = s->lc;
	a->seg = s;
	a->next = b->allocs;
	b->allocs = a;
	a->cluster = (uint32_t)bs_cluster_alloc(bs);
	if (!a->cluster) {
		alloc_finish(a, -ENOSPC);
		return;
	}
	uint64_t base = (uint64_t)a->cluster * bs->cluster_size;
	uint32_t anc = phys_of(b, s->lc, false);
	if (anc) {
		a->cbuf = bs_dma_alloc(bs->cluster_size);
		if (!a->cbuf) {
			alloc_finish(a, -ENOMEM);
			return;
		}
		int rc = bdev_read(bs->bdev, a->cbuf, (uint64_t)anc * bs->cluster_size, bs->cluster_size,
				   alloc_ancestor_read, a);
		if (rc)
			alloc_finish(a, rc);
		return;
	}
	/* no ancestor data: new data plus zeros around it */
	a->pending = 1;
	if (s->coff > 0) {
		a->pending++;
		sub_check(a, bdev_write_zeroes(bs->bdev, base, s->coff, alloc_data_done, a));
	}
	if (s->coff + s->len < bs->cluster_size) {
		a->pending++;
		sub_check(a, bdev_write_zeroes(bs->bdev, base + s->coff + s->len,
					       bs->cluster_size - s->coff - s->len, alloc_data_done, a));
	}
	a->pending++;
	sub_check(a, s->buf ? bdev_write(bs->bdev, s->buf, base + s->coff, s->len, alloc_data_done, a)
			    : bdev_write_zeroes(bs->bdev, base + s->coff, s->len, alloc_data_done, a));
	alloc_data_done(a, 0);
}

/* ---------------------------------------------------------- segments */

static void seg_start(struct seg *s)
{
	struct bs_io_req *r = s->req;
	struct blob *b = r->blob;
	struct blob_store *bs = b->bs;
	uint32_t own = s->lc < b->num_clusters ? b->clusters[s->lc] : 0;
	int rc = 0;
	switch (r->kind) {
	case IO_READ: {
		uint32_t pc = phys_of(b, s->lc, true);
		if (!pc) {
			memset(s->buf, 0, s->len);
			seg_io_done(s, 0);
			return;
		}
		rc = bdev_read(bs->bdev, s->buf, (uint64_t)pc * bs->cluster_size + s->coff, s->len, seg_io_done, s);
		break;
	}
	case IO_WRITE:
		if (!own) {
			seg_allocate(s);
			return;
		}
		rc = bdev_write(bs->bdev, s->buf, (uint64_t)own * bs->cluster_size + s->coff, s->len, seg_io_done, s);
		break;
	case IO_WZ:
		if (!own) {
			if (phys_of(b, s->lc, false)) {
				seg_allocate(s);
				return;
			}
			seg_io_done(s, 0); /* already reads as zeros */
			return;
		}
		rc = bdev_write_zeroes(bs->bdev, (uint64_t)own * bs->cluster_size + s->coff, s->len, seg_io_done, s);
		break;
	}
	if (rc)
		seg_io_done(s, rc);
}

static void req_dispatch(struct bs_io_req *r)
{
	struct blob *b = r->blob;
	struct blob_store *bs = b->bs;
	if (b->frozen) {
		if (b->io_wait_tail)
			b->io_wait_tail->next = r;
		else
			b->io_wait_head = r;
		b->io_wait_tail = r;
		return;
	}
	b->io_inflight++;
	bs_op_begin(bs);
	r->pending = 1;
	if (r->kind != IO_READ && (b->flags & BS_F_RDONLY)) {
		req_put(r, -EPERM);
		return;
	}
	if (r->off + r->len > b->num_clusters * bs->cluster_size) {
		req_put(r, -EINVAL); /* shrunk while queued */
		return;
	}
	uint64_t off = r->off, end = r->off + r->len;
	while (off < end) {
		uint64_t lc = off / bs->cluster_size;
		uint64_t coff = off % bs->cluster_size;
		uint64_t n = COMMON_MIN(end - off, bs->cluster_size - coff);
		struct seg *s = mem_zalloc(sizeof(*s));
		if (!s) {
			if (!r->status)
				r->status = -ENOMEM;
			break;
		}
		s->req = r;
		s->lc = lc;
		s->coff = coff;
		s->len = n;
		s->buf = r->buf ? r->buf + (off - r->off) : NULL;
		r->pending++;
		seg_start(s);
		off += n;
	}
	req_put(r, 0);
}

static int req_submit(struct blob *b, enum io_kind kind, void *buf, uint64_t off, uint64_t len,
		      blob_done_cb cb, void *arg)
{
	struct blob_store *bs = b->bs;
	if (len == 0 || off % bs->io_unit || len % bs->io_unit || off + len < off ||
	    off + len > b->num_clusters * bs->cluster_size || (kind != IO_WZ && !buf))
		return -EINVAL;
	struct bs_io_req *r = mem_zalloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->blob = b;
	r->kind = kind;
	r->buf = buf;
	r->off = off;
	r->len = len;
	r->cb = cb;
	r->arg = arg;
	req_dispatch(r);
	return 0;
}

int blob_read(struct blob *blob, void *buf, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg)
{
	return req_submit(blob, IO_READ, buf, offset, len, cb, cb_arg);
}

int blob_write(struct blob *blob, const void *buf, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg)
{
	return req_submit(blob, IO_WRITE, (void *)buf, offset, len, cb, cb_arg);
}

int blob_write_zeroes(struct blob *blob, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg)
{
	return req_submit(blob, IO_WZ, NULL, offset, len, cb, cb_arg);
}

int blob_unmap(struct blob *blob, uint64_t offset, uint64_t len, blob_done_cb cb, void *cb_arg)
{
	/* Same contract as the bdev's: later reads return zeros. */
	return req_submit(blob, IO_WZ, NULL, offset, len, cb, cb_arg);
}

int blob_flush(struct blob *blob, blob_done_cb cb, void *cb_arg)
{
	return bdev_flush(blob->bs->bdev, cb, cb_arg);
}
