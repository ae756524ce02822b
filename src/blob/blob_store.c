/*
 * blob_store.c: the store as a whole: format (init), load (clean: read the
 * bitmaps; dirty: rebuild them from the metadata pages and pick, per blob,
 * the newest complete and consistent chain), clean unload, destroy, grow,
 * and the metadata engine everything else uses: page allocation, chain
 * transactions, group-committed flushes, zeroing of superseded pages.
 * Crash-consistency argument: doc/ONDISK.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"

#define MOD "blob"
#define LOAD_CHUNK_PAGES 256u

static void bs_defer_done(blob_done_cb cb, void *arg, int status);

/* ---------------------------------------------------- small helpers */

static uint64_t md_offset(const struct blob_store *bs, uint64_t page)
{
	return (bs->super.md_start + page) * BLOB_PAGE_SIZE;
}

static uint64_t store_tag(const struct blob_store *bs)
{
	uint64_t t = 0;
	memcpy(&t, bs->super.uuid, 8);
	return t;
}

static uint32_t mask_pages_for(uint64_t nbits)
{
	return (uint32_t)COMMON_DIV_ROUND_UP(BS_MASK_HDR + COMMON_DIV_ROUND_UP(nbits, 8), BLOB_PAGE_SIZE);
}

static uint64_t mask_capacity(uint32_t pages)
{
	return ((uint64_t)pages * BLOB_PAGE_SIZE - BS_MASK_HDR) * 8;
}

struct defer_call {
	blob_done_cb cb;
	void *arg;
	int status;
};

static void defer_run(struct ev_loop *loop, void *arg)
{
	(void)loop;
	struct defer_call *d = arg;
	blob_done_cb cb = d->cb;
	void *cb_arg = d->arg;
	int st = d->status;
	mem_free(d);
	cb(cb_arg, st);
}

/* Runs cb later from the loop (public callbacks never run inside the call). */
static void bs_defer_done(blob_done_cb cb, void *arg, int status)
{
	struct defer_call *d = mem_zalloc(sizeof(*d));
	if (d) {
		d->cb = cb;
		d->arg = arg;
		d->status = status;
		if (ev_defer(bdev_module_loop(), defer_run, d) == 0)
			return;
		mem_free(d);
	}
	cb(arg, status); /* out of memory: run now rather than never */
}

void bs_defer_cb(blob_done_cb cb, void *arg, int status);
void bs_defer_cb(blob_done_cb cb, void *arg, int status)
{
	bs_defer_done(cb, arg, status);
}

/* ------------------------------------------------------ blob objects */

static uint64_t hash_slot(const struct blob_store *bs, uint64_t id)
{
	return (id * 0x9E3779B97F4A7C15ull) >> 20 & (bs->hash_size - 1);
}

struct blob *bs_blob_new(struct blob_store *bs, uint64_t id)
{
	struct blob *b = mem_zalloc(sizeof(*b));
	if (!b)
		return NULL;
	b->bs = bs;
	b->id = id;
	b->parent_id = BLOB_ID_NONE;
	return b;
}

static int hash_grow(struct blob_store *bs)
{
	uint64_t nsize = bs->hash_size ? bs->hash_size * 2 : 1024;
	struct blob **nh = mem_zalloc(sizeof(*nh) * nsize);
	if (!nh)
		return -ENOMEM;
	struct blob **old = bs->hash;
	uint64_t osize = bs->hash_size;
	bs->hash = nh;
	bs->hash_size = nsize;
	for (uint64_t i = 0; i < osize; i++) {
		struct blob *b = old[i];
		while (b) {
			struct blob *n = b->hnext;
			uint64_t s = hash_slot(bs, b->id);
			b->hnext = nh[s];
			nh[s] = b;
			b = n;
		}
	}
	mem_free(old);
	return 0;
}

/* Appends to the creation-order list and the id hash. */
void bs_blob_insert(struct blob_store *bs, struct blob *b)
{
	if (bs->nblobs + 1 > bs->hash_size / 2)
		(void)hash_grow(bs); /* on failure chains just get longer */
	uint64_t s = hash_slot(bs, b->id);
	b->hnext = bs->hash[s];
	bs->hash[s] = b;
	b->prev = bs->last;
	b->next = NULL;
	if (bs->last)
		bs->last->next = b;
	else
		bs->first = b;
	bs->last = b;
	bs->nblobs++;
	bs_bitmap_set(&bs->ids, b->id);
}

void bs_blob_remove(struct blob_store *bs, struct blob *b)
{
	struct blob **pp = &bs->hash[hash_slot(bs, b->id)];
	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	if (b->prev)
		b->prev->next = b->next;
	else
		bs->first = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		bs->last = b->prev;
	bs->nblobs--;
	bs_bitmap_clear(&bs->ids, b->id);
}

void bs_blob_free(struct blob *b)
{
	if (!b)
		return;
	mem_free(b->clusters);
	for (unsigned i = 0; i < b->nxattrs; i++) {
		mem_free(b->xattrs[i].name);
		mem_free(b->xattrs[i].value);
	}
	mem_free(b->xattrs);
	mem_free(b->children);
	mem_free(b->pages);
	mem_free(b);
}

void bs_blob_add_child(struct blob *parent, struct blob *child)
{
	if (parent->nchildren == parent->cap_children) {
		unsigned ncap = parent->cap_children ? parent->cap_children * 2 : 2;
		struct blob **nc = mem_realloc(parent->children, sizeof(*nc) * ncap);
		if (!nc) {
			LOG_ERROR(MOD, "out of memory linking a clone id=%llu", (unsigned long long)child->id);
			return;
		}
		parent->children = nc;
		parent->cap_children = ncap;
	}
	parent->children[parent->nchildren++] = child;
	child->parent = parent;
	child->parent_id = parent->id;
}

void bs_blob_del_child(struct blob *parent, struct blob *child)
{
	for (unsigned i = 0; i < parent->nchildren; i++) {
		if (parent->children[i] == child) {
			memmove(&parent->children[i], &parent->children[i + 1],
				sizeof(*parent->children) * (parent->nchildren - i - 1));
			parent->nchildren--;
			break;
		}
	}
	child->parent = NULL;
	child->parent_id = BLOB_ID_NONE;
}

void bs_blob_state(const struct blob *b, struct bs_md_state *st)
{
	memset(st, 0, sizeof(*st));
	st->flags = b->flags;
	st->num_clusters = b->num_clusters;
	st->clusters = b->clusters;
	st->parent_id = b->parent_id;
	st->create_seq = b->create_seq;
	st->xattrs = b->xattrs;
	st->nxattrs = b->nxattrs;
}

/* ---------------------------------------------------------- clusters */

uint64_t bs_cluster_alloc(struct blob_store *bs)
{
	uint64_t c = bs_bitmap_find_clear(&bs->clusters, bs->clusters.hint);
	if (c == UINT64_MAX || c == 0)
		return 0;
	bs_bitmap_set(&bs->clusters, c);
	bs->clusters.hint = c + 1;
	return c;
}

void bs_cluster_release(struct blob_store *bs, uint64_t c)
{
	if (c >= bs->super.reserved_clusters && c < bs->total_clusters)
		bs_bitmap_clear(&bs->clusters, c);
}

/*
 * Metadata pages are handed out lowest first (pages.hint = lowest page that
 * may be free): the prewritten start of the region is used before the rest
 * (see BS_INIT_PREWRITE_MAX), and a clean load reads fewer, denser runs.
 * Caller checked that a page is free.
 */
uint64_t bs_page_alloc(struct blob_store *bs)
{
	uint64_t p = bs_bitmap_find_clear(&bs->pages, bs->pages.hint);
	bs_bitmap_set(&bs->pages, p);
	bs->pages.hint = p + 1;
	return p;
}

void bs_page_release(struct blob_store *bs, uint64_t p)
{
	bs_bitmap_clear(&bs->pages, p);
	if (p < bs->pages.hint)
		bs->pages.hint = p;
}

void blob_store_set_clear_method(struct blob_store *bs, enum blob_clear_method m)
{
	bs->clear = m;
}

struct clear_ctx {
	struct blob_store *bs;
	uint32_t *list;
	uint64_t n;
	unsigned pending;
	blob_done_cb cb;
	void *arg;
};

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : (x > y);
}

static void clear_io_done(void *arg, int status)
{
	struct clear_ctx *c = arg;
	if (status)
		LOG_WARN(MOD, "clearing freed clusters failed status=%d (released anyway)", status);
	if (--c->pending > 0)
		return;
	struct blob_store *bs = c->bs;
	for (uint64_t i = 0; i < c->n; i++)
		bs_cluster_release(bs, c->list[i]);
	blob_done_cb cb = c->cb;
	void *arg2 = c->arg;
	mem_free(c->list);
	mem_free(c);
	bs_op_end(bs);
	cb(arg2, 0);
}

void bs_clusters_free(struct blob_store *bs, uint32_t *list, uint64_t n, blob_done_cb cb, void *arg)
{
	struct clear_ctx *c = NULL;
	if (bs->clear != BLOB_CLEAR_NONE && n > 0 && !bs->failed)
		c = mem_zalloc(sizeof(*c));
	if (!c) {
		for (uint64_t i = 0; i < n; i++)
			bs_cluster_release(bs, list[i]);
		mem_free(list);
		cb(arg, 0);
		return;
	}
	c->bs = bs;
	c->list = list;
	c->n = n;
	c->cb = cb;
	c->arg = arg;
	c->pending = 1;
	bs_op_begin(bs);
	if (n > 1)
		qsort(list, n, sizeof(*list), u32_cmp);
	for (uint64_t i = 0; i < n;) {
		uint64_t j = i + 1;
		while (j < n && list[j] == list[j - 1] + 1)
			j++;
		uint64_t off = (uint64_t)list[i] * bs->cluster_size, len = (j - i) * bs->cluster_size;
		c->pending++;
		int rc = bs->clear == BLOB_CLEAR_UNMAP ? bdev_unmap(bs->bdev, off, len, clear_io_done, c)
						       : bdev_write_zeroes(bs->bdev, off, len, clear_io_done, c);
		if (rc)
			c->pending--;
		i = j;
	}
	clear_io_done(c, 0);
}

uint64_t bs_free_clusters(const struct blob_store *bs)
{
	return bs->total_clusters - bs->clusters.nset;
}

/* ------------------------------------------------------ op tracking */

void bs_op_begin(struct blob_store *bs)
{
	bs->ops_inflight++;
}

static void run_waiters(struct bs_waiter **list)
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

static int add_waiter(struct bs_waiter **list, void (*fn)(void *), void *arg)
{
	struct bs_waiter *w = mem_zalloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->next = *list;
	*list = w;
	return 0;
}

static void free_now(struct ev_loop *loop, void *arg);

static void check_idle(struct blob_store *bs)
{
	bool idle = bs->ops_inflight == 0 && bs->zero_outstanding == 0 && !bs->flush_busy &&
		    !bs->wq_scheduled;
	if (idle && bs->idle_waiters)
		run_waiters(&bs->idle_waiters);
	if (idle && bs->freeing && !bs->free_queued) {
		bs->free_queued = true;
		if (ev_defer(bdev_module_loop(), free_now, bs) != 0)
			LOG_ERROR(MOD, "cannot queue the release of a store (leaked)");
	}
}

void bs_op_end(struct blob_store *bs)
{
	bs->ops_inflight--;
	check_idle(bs);
}

/* ------------------------------------------------------ group commit */

static void flush_start(struct blob_store *bs);

/* One device flush and the waiters it makes durable. */
struct flush_op {
	struct blob_store *bs;
	struct bs_flush_waiter *waiters;
	uint64_t zero_epoch; /* zero_epoch when it started */
};

static void flush_done(void *arg, int status)
{
	struct flush_op *fo = arg;
	struct blob_store *bs = fo->bs;
	struct bs_flush_waiter *w = fo->waiters;
	uint64_t epoch = fo->zero_epoch;
	mem_free(fo);
	bs->flush_inflight--;
	bs->flush_busy = bs->flush_inflight > 0;
	if (status == 0) {
		if (epoch > bs->zero_durable_epoch)
			bs->zero_durable_epoch = epoch;
	} else {
		if (!bs->failed)
			LOG_ERROR(MOD, "flush failed, store refuses changes bdev=%s status=%d",
				  bdev_name(bs->bdev), status);
		bs->failed = true;
	}
	if (bs->flush_next && bs->flush_inflight < BS_FLUSH_MAX_INFLIGHT)
		flush_start(bs);
	else if (!bs->flush_busy)
		check_idle(bs);
	/* nothing touches bs after the callbacks: one may free the store */
	while (w) {
		struct bs_flush_waiter *n = w->next;
		blob_done_cb cb = w->cb;
		void *cb_arg = w->arg;
		mem_free(w);
		cb(cb_arg, status);
		w = n;
	}
}

static void flush_start(struct blob_store *bs)
{
	struct flush_op *fo = mem_zalloc(sizeof(*fo));
	if (!fo) {
		/* fail this batch from the loop */
		struct bs_flush_waiter *w = bs->flush_next;
		bs->flush_next = bs->flush_next_tail = NULL;
		while (w) {
			struct bs_flush_waiter *n = w->next;
			bs_defer_done(w->cb, w->arg, -ENOMEM);
			mem_free(w);
			w = n;
		}
		return;
	}
	fo->bs = bs;
	fo->waiters = bs->flush_next;
	bs->flush_next = bs->flush_next_tail = NULL;
	fo->zero_epoch = bs->zero_epoch;
	bs->flush_inflight++;
	bs->flush_busy = true;
	int rc = bdev_flush(bs->bdev, flush_done, fo);
	if (rc) {
		/* complete from the loop like any I/O */
		struct defer_call *d = mem_zalloc(sizeof(*d));
		if (!d) {
			flush_done(fo, rc);
			return;
		}
		d->cb = flush_done;
		d->arg = fo;
		d->status = rc;
		if (ev_defer(bdev_module_loop(), defer_run, d) != 0) {
			mem_free(d);
			flush_done(fo, rc);
		}
	}
}

void bs_flush(struct blob_store *bs, blob_done_cb cb, void *arg)
{
	struct bs_flush_waiter *w = mem_zalloc(sizeof(*w));
	if (!w) {
		bs_defer_done(cb, arg, -ENOMEM);
		return;
	}
	w->cb = cb;
	w->arg = arg;
	if (bs->flush_next_tail)
		bs->flush_next_tail->next = w;
	else
		bs->flush_next = w;
	bs->flush_next_tail = w;
	if (bs->flush_inflight < BS_FLUSH_MAX_INFLIGHT)
		flush_start(bs);
}

/* ------------------------------------------------ md write batching */

/*
 * Metadata page writes queued during one loop round are sorted and merged
 * into one device write per run of adjacent pages (pipelined creates write
 * adjacent pages): far fewer I/Os. Completion order and crash semantics are
 * those of the individual writes (each page is self-validating).
 */
struct md_wr {
	uint32_t page;
	const uint8_t *buf;
	blob_done_cb cb;
	void *arg;
};

struct wr_run {
	uint8_t *buf; /* merged copy, NULL for a single page */
	unsigned n;
	struct md_wr m[];
};

#define WR_RUN_MAX 256u

static void wr_run_done(void *arg, int status)
{
	struct wr_run *r = arg;
	for (unsigned i = 0; i < r->n; i++)
		r->m[i].cb(r->m[i].arg, status);
	bs_dma_free(r->buf);
	mem_free(r);
}

static int md_wr_cmp(const void *a, const void *b)
{
	const struct md_wr *x = a, *y = b;
	return x->page < y->page ? -1 : (x->page > y->page);
}

static void wq_run(struct ev_loop *loop, void *arg)
{
	(void)loop;
	struct blob_store *bs = arg;
	struct md_wr *q = bs->wq;
	size_t n = bs->nwq;
	bs->wq = NULL;
	bs->nwq = bs->capwq = 0;
	bs->wq_scheduled = false;
	qsort(q, n, sizeof(*q), md_wr_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && j - i < WR_RUN_MAX && q[j].page == q[j - 1].page + 1)
			j++;
		unsigned cnt = (unsigned)(j - i);
		struct wr_run *r = mem_zalloc(sizeof(*r) + sizeof(struct md_wr) * cnt);
		uint8_t *buf = NULL;
		if (r && cnt > 1) {
			buf = bs_dma_alloc((size_t)cnt * BLOB_PAGE_SIZE);
			if (!buf) {
				mem_free(r);
				r = NULL;
			}
		}
		if (!r) {
			for (size_t k = i; k < j; k++)
				q[k].cb(q[k].arg, -ENOMEM);
			i = j;
			continue;
		}
		r->n = cnt;
		r->buf = buf;
		memcpy(r->m, q + i, sizeof(struct md_wr) * cnt);
		for (unsigned k = 0; buf && k < cnt; k++)
			memcpy(buf + (size_t)k * BLOB_PAGE_SIZE, q[i + k].buf, BLOB_PAGE_SIZE);
		const void *src = buf ? buf : q[i].buf;
		int rc = bdev_write(bs->bdev, src, md_offset(bs, q[i].page), (uint64_t)cnt * BLOB_PAGE_SIZE,
				    wr_run_done, r);
		if (rc)
			wr_run_done(r, rc);
		i = j;
	}
	mem_free(q);
	check_idle(bs);
}

/* Write one md page (buf valid until cb). cb runs from the loop. */
void bs_md_write(struct blob_store *bs, uint32_t page, const uint8_t *buf, blob_done_cb cb, void *arg)
{
	if (bs->nwq == bs->capwq) {
		size_t nc = bs->capwq ? bs->capwq * 2 : 64;
		struct md_wr *nq = mem_realloc(bs->wq, sizeof(*nq) * nc);
		if (!nq) {
			bs_defer_done(cb, arg, -ENOMEM);
			return;
		}
		bs->wq = nq;
		bs->capwq = nc;
	}
	bs->wq[bs->nwq++] = (struct md_wr){ .page = page, .buf = buf, .cb = cb, .arg = arg };
	if (!bs->wq_scheduled) {
		if (ev_defer(bdev_module_loop(), wq_run, bs) != 0) {
			bs->nwq--;
			bs_defer_done(cb, arg, -ENOMEM);
			return;
		}
		bs->wq_scheduled = true;
	}
}

/* --------------------------------------------------------- zeroing */

struct zero_ctx {
	struct blob_store *bs;
	uint32_t page;
};

static void zero_done(void *arg, int status)
{
	struct zero_ctx *z = arg;
	struct blob_store *bs = z->bs;
	if (status == 0) {
		bs_page_release(bs, z->page);
	} else {
		if (!bs->failed)
			LOG_ERROR(MOD, "md page zeroing failed page=%u status=%d", z->page, status);
		bs->failed = true; /* the page stays allocated: never reused */
	}
	mem_free(z);
	bs->zero_outstanding--;
	bs->zero_epoch++;
	if (bs->zero_outstanding == 0 && bs->zero_waiters)
		run_waiters(&bs->zero_waiters);
	check_idle(bs);
}

void bs_pages_zero(struct blob_store *bs, uint32_t *pages, unsigned npages)
{
	for (unsigned i = 0; i < npages; i++) {
		struct zero_ctx *z = mem_zalloc(sizeof(*z));
		if (!z) {
			bs->failed = true;
			continue;
		}
		z->bs = bs;
		z->page = pages[i];
		bs->zero_outstanding++;
		bs_md_write(bs, pages[i], bs->zero_page, zero_done, z);
	}
	mem_free(pages);
}

struct zd_ctx {
	struct blob_store *bs;
	blob_done_cb cb;
	void *arg;
};

static void zd_check(void *arg)
{
	struct zd_ctx *z = arg;
	struct blob_store *bs = z->bs;
	if (bs->zero_outstanding > 0) {
		if (add_waiter(&bs->zero_waiters, zd_check, z) == 0)
			return;
		bs_defer_done(z->cb, z->arg, -ENOMEM);
		mem_free(z);
		return;
	}
	blob_done_cb cb = z->cb;
	void *cb_arg = z->arg;
	mem_free(z);
	if (bs->zero_durable_epoch == bs->zero_epoch)
		cb(cb_arg, 0);
	else
		bs_flush(bs, cb, cb_arg);
}

void bs_zeroes_durable(struct blob_store *bs, blob_done_cb cb, void *arg)
{
	struct zd_ctx *z = mem_zalloc(sizeof(*z));
	if (!z) {
		bs_defer_done(cb, arg, -ENOMEM);
		return;
	}
	z->bs = bs;
	z->cb = cb;
	z->arg = arg;
	zd_check(z);
}

/* ------------------------------------------------------ transactions */

struct txn {
	struct blob_store *bs;
	unsigned n;
	struct blob *blobs[BS_TXN_MAX];
	uint8_t *bufs[BS_TXN_MAX];
	uint32_t *pages[BS_TXN_MAX];
	unsigned npages[BS_TXN_MAX];
	bool kills;
	uint64_t killv[BS_TXN_MAX];
	unsigned nkills;
	struct bs_md_state st[BS_TXN_MAX];
	uint64_t seq;
	unsigned pending;
	int status;
	blob_done_cb done;
	void *arg;
};

static void txn_free(struct txn *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		bs_dma_free(t->bufs[i]);
		mem_free(t->pages[i]);
	}
	mem_free(t);
}

static void txn_flushed(void *arg, int status)
{
	struct txn *t = arg;
	struct blob_store *bs = t->bs;
	if (status == 0 && t->status)
		status = t->status;
	if (status) {
		/* Outcome unknown (like a crash): keep the new pages
		 * allocated so they are never overwritten by this run. */
		bs->failed = true;
		blob_done_cb done = t->done;
		void *darg = t->arg;
		for (unsigned i = 0; i < t->n; i++) {
			bs_dma_free(t->bufs[i]);
			mem_free(t->pages[i]);
		}
		mem_free(t);
		done(darg, status);
		bs_op_end(bs);
		return;
	}
	for (unsigned i = 0; i < t->n; i++) {
		struct blob *b = t->blobs[i];
		if (b->npages)
			bs_pages_zero(bs, b->pages, b->npages);
		else
			mem_free(b->pages);
		b->pages = t->pages[i];
		b->npages = t->npages[i];
		t->pages[i] = NULL;
		b->seq = t->seq;
		b->has_kills = (i == 0 && t->kills);
	}
	blob_done_cb done = t->done;
	void *darg = t->arg;
	txn_free(t);
	done(darg, 0);
	bs_op_end(bs);
}

static void txn_write_done(void *arg, int status)
{
	struct txn *t = arg;
	if (status && !t->status)
		t->status = status;
	if (--t->pending > 0)
		return;
	for (unsigned i = 0; i < t->n; i++) {
		bs_dma_free(t->bufs[i]);
		t->bufs[i] = NULL;
	}
	if (t->status) {
		txn_flushed(t, t->status);
		return;
	}
	bs_flush(t->bs, txn_flushed, t);
}

static void txn_go(void *arg, int status)
{
	struct txn *t = arg;
	struct blob_store *bs = t->bs;
	int rc = status;
	if (!rc && bs->failed)
		rc = -EIO;
	unsigned total = 0;
	for (unsigned i = 0; !rc && i < t->n; i++) {
		uint64_t others[BS_TXN_MAX];
		unsigned no = 0;
		for (unsigned j = 0; j < t->n; j++)
			if (j != i)
				others[no++] = t->blobs[j]->id;
		struct bs_md_state st = t->st[i];
		st.members = no ? others : NULL;
		st.nmembers = no;
		st.kills = i == 0 ? t->killv : NULL;
		st.nkills = i == 0 ? t->nkills : 0;
		rc = bs_md_encode(&st, store_tag(bs), t->blobs[i]->id, t->seq, &t->bufs[i], &t->npages[i]);
		total += t->npages[i];
	}
	if (!rc && bs->pages.nbits - bs->pages.nset < total)
		rc = -ENOSPC;
	for (unsigned i = 0; !rc && i < t->n; i++) {
		t->pages[i] = mem_alloc(sizeof(uint32_t) * t->npages[i]);
		if (!t->pages[i])
			rc = -ENOMEM;
	}
	if (rc) {
		blob_done_cb done = t->done;
		void *darg = t->arg;
		txn_free(t);
		done(darg, rc);
		bs_op_end(bs);
		return;
	}
	for (unsigned i = 0; i < t->n; i++) {
		for (unsigned k = 0; k < t->npages[i]; k++) {
			uint64_t p = bs_page_alloc(bs);
			t->pages[i][k] = (uint32_t)p;
		}
	}
	t->pending = 1;
	for (unsigned i = 0; i < t->n; i++) {
		for (unsigned k = 0; k < t->npages[i]; k++) {
			t->pending++;
			bs_md_write(bs, t->pages[i][k], t->bufs[i] + (size_t)k * BLOB_PAGE_SIZE, txn_write_done, t);
		}
	}
	txn_write_done(t, 0);
}

void bs_txn_commit(struct blob_store *bs, struct bs_txn_member *m, unsigned n, const uint64_t *kills,
		   unsigned nkills, blob_done_cb done, void *arg)
{
	struct txn *t = mem_zalloc(sizeof(*t));
	if (!t || n == 0 || n > BS_TXN_MAX || nkills > BS_TXN_MAX) {
		mem_free(t);
		bs_defer_done(done, arg, t ? -EINVAL : -ENOMEM);
		return;
	}
	bs_op_begin(bs);
	t->bs = bs;
	t->n = n;
	t->done = done;
	t->arg = arg;
	t->kills = nkills > 0;
	t->nkills = nkills;
	for (unsigned i = 0; i < nkills; i++)
		t->killv[i] = kills[i];
	t->seq = bs->next_seq++;
	bool need_zero = false;
	for (unsigned i = 0; i < n; i++) {
		t->blobs[i] = m[i].blob;
		t->st[i] = m[i].st;
		if (m[i].blob->has_kills)
			need_zero = true;
	}
	/* A chain that carries kill records may only be replaced once the
	 * killed blobs' pages are durably zeroed (doc/ONDISK.md). */
	if (need_zero)
		bs_zeroes_durable(bs, txn_go, t);
	else
		txn_go(t, 0);
}

/* ---------------------------------------------------- super writes */

struct super_ctx {
	struct blob_store *bs;
	uint8_t *buf;
	blob_done_cb cb;
	void *arg;
};

static void super_flushed(void *arg, int status)
{
	struct super_ctx *s = arg;
	blob_done_cb cb = s->cb;
	void *cb_arg = s->arg;
	bs_dma_free(s->buf);
	mem_free(s);
	cb(cb_arg, status);
}

static void super_written(void *arg, int status)
{
	struct super_ctx *s = arg;
	if (status) {
		super_flushed(s, status);
		return;
	}
	bs_flush(s->bs, super_flushed, s);
}

/* Writes bs->super (super_seq bumped) and flushes. */
static void super_write(struct blob_store *bs, blob_done_cb cb, void *arg)
{
	struct super_ctx *s = mem_zalloc(sizeof(*s));
	uint8_t *buf = bs_dma_alloc(BLOB_PAGE_SIZE);
	if (!s || !buf) {
		mem_free(s);
		bs_dma_free(buf);
		bs_defer_done(cb, arg, -ENOMEM);
		return;
	}
	bs->super.super_seq++;
	bs_super_encode(&bs->super, buf);
	s->bs = bs;
	s->buf = buf;
	s->cb = cb;
	s->arg = arg;
	int rc = bdev_write(bs->bdev, buf, 0, BLOB_PAGE_SIZE, super_written, s);
	if (rc) {
		bs_dma_free(buf);
		mem_free(s);
		bs_defer_done(cb, arg, rc);
	}
}

/* -------------------------------------------------------- store alloc */

static struct blob_store *bs_alloc(struct bdev *bdev)
{
	struct blob_store *bs = mem_zalloc(sizeof(*bs));
	if (!bs)
		return NULL;
	bs->bdev = bdev;
	bs->zero_page = bs_dma_alloc(BLOB_PAGE_SIZE);
	if (!bs->zero_page || hash_grow(bs) != 0) {
		bs_dma_free(bs->zero_page);
		mem_free(bs->hash);
		mem_free(bs);
		return NULL;
	}
	bs->next_seq = 1;
	bs->next_create_seq = 1;
	return bs;
}

/* Sets up bitmaps from bs->super. */
static int bs_setup(struct blob_store *bs)
{
	struct bs_super *s = &bs->super;
	bs->cluster_size = s->cluster_size;
	bs->io_unit = s->io_unit;
	bs->total_clusters = s->total_clusters;
	bs->max_clusters = mask_capacity(s->cluster_mask_pages);
	int rc = bs_bitmap_init(&bs->clusters, s->total_clusters);
	if (!rc)
		rc = bs_bitmap_init(&bs->pages, s->md_pages);
	if (!rc)
		rc = bs_bitmap_init(&bs->ids, s->md_pages);
	if (rc)
		return rc;
	for (uint64_t c = 0; c < s->reserved_clusters; c++)
		bs_bitmap_set(&bs->clusters, c);
	bs->clusters.hint = s->reserved_clusters;
	return 0;
}

static void store_release(struct blob_store *bs);

static void free_now(struct ev_loop *loop, void *arg)
{
	(void)loop;
	store_release(arg);
}

/* Outstanding I/O still points at the store: it is released once idle. */
void blob_store_free(struct blob_store *bs)
{
	if (!bs || bs->freeing)
		return;
	bs->failed = true; /* nothing new starts */
	if (bs->ops_inflight == 0 && bs->zero_outstanding == 0 && !bs->flush_busy && !bs->wq_scheduled) {
		store_release(bs);
		return;
	}
	bs->freeing = true;
	check_idle(bs);
}

static void store_release(struct blob_store *bs)
{
	struct blob *b = bs->first;
	while (b) {
		struct blob *n = b->next;
		bs_blob_free(b);
		b = n;
	}
	bs_bitmap_fini(&bs->clusters);
	bs_bitmap_fini(&bs->pages);
	bs_bitmap_fini(&bs->ids);
	mem_free(bs->hash);
	mem_free(bs->wq);
	bs_dma_free(bs->zero_page);
	struct bs_waiter *w = bs->idle_waiters;
	while (w) {
		struct bs_waiter *n = w->next;
		mem_free(w);
		w = n;
	}
	mem_free(bs);
}

/* -------------------------------------------------------------- init */

/*
 * Metadata-region prewrite at format time. On a file, a metadata commit that
 * lands on a block the file system has not allocated yet (a hole, or an
 * unwritten fallocated extent) makes the commit's fdatasync a journal commit
 * for the allocation; on a block already written it is only a device flush
 * (measured on ext4/virtio: 722 / 528 / 215 us). So init writes real zeros
 * (plain writes, not WRITE_ZEROES: that becomes fallocate) over the masks and
 * the first md pages, several 1 MiB writes in flight, before the super block
 * write whose flush makes them durable. Like SPDK's bs_init, which clears the
 * metadata region, but bounded (BS_INIT_PREWRITE_MAX): a 1 TiB store with
 * 1 MiB clusters has 4 GiB of md pages. Pages are handed out lowest first
 * (bs_page_alloc), so the prewritten ones serve the first ~16,000 chains.
 * Nothing depends on the zeros for correctness: pages of another store carry
 * another tag, and a crash before the super write leaves no store.
 */
#ifndef BS_INIT_PREWRITE_MAX
#define BS_INIT_PREWRITE_MAX (64ull << 20)
#endif
#define BS_INIT_PREWRITE_CHUNK (1u << 20)
#define BS_INIT_PREWRITE_DEPTH 4u

struct init_ctx {
	struct blob_store *bs;
	blob_store_cb cb;
	void *arg;
	uint8_t *zbuf;        /* BS_INIT_PREWRITE_CHUNK zero bytes */
	uint64_t zoff, zend;  /* bytes still to write: [zoff, zend) */
	unsigned zinflight;
	int zstatus;
};

static void init_done(void *arg, int status)
{
	struct init_ctx *c = arg;
	struct blob_store *bs = c->bs;
	if (status) {
		blob_store_free(bs);
		bs = NULL;
	} else {
		LOG_INFO(MOD, "store initialised bdev=%s cluster_size=%llu data_clusters=%llu md_pages=%llu",
			 bdev_name(c->bs->bdev), (unsigned long long)c->bs->cluster_size,
			 (unsigned long long)blob_store_total_data_clusters(c->bs),
			 (unsigned long long)c->bs->super.md_pages);
	}
	c->cb(c->arg, bs, status);
	bs_dma_free(c->zbuf);
	mem_free(c);
}

static void init_prewrite_next(struct init_ctx *c);

static void init_prewrite_done(void *arg, int status)
{
	struct init_ctx *c = arg;
	c->zinflight--;
	if (status && !c->zstatus)
		c->zstatus = status;
	init_prewrite_next(c);
}

/* Keeps up to BS_INIT_PREWRITE_DEPTH zero writes in flight; then the super. */
static void init_prewrite_next(struct init_ctx *c)
{
	while (!c->zstatus && c->zoff < c->zend && c->zinflight < BS_INIT_PREWRITE_DEPTH) {
		uint64_t n = COMMON_MIN((uint64_t)BS_INIT_PREWRITE_CHUNK, c->zend - c->zoff);
		int rc = bdev_write(c->bs->bdev, c->zbuf, c->zoff, n, init_prewrite_done, c);
		if (rc) {
			c->zstatus = rc;
			break;
		}
		c->zoff += n;
		c->zinflight++;
	}
	if (c->zinflight > 0)
		return;
	if (c->zstatus) {
		bs_defer_done(init_done, c, c->zstatus);
		return;
	}
	super_write(c->bs, init_done, c);
}

int blob_store_init(struct bdev *bdev, const struct blob_store_opts *opts, blob_store_cb cb, void *cb_arg)
{
	uint64_t cs = opts && opts->cluster_size ? opts->cluster_size : BLOB_DEFAULT_CLUSTER_SIZE;
	uint32_t ratio = opts && opts->md_pages_ratio ? opts->md_pages_ratio : 100;
	uint32_t bsz = bdev_block_size(bdev);
	if (cs < BLOB_PAGE_SIZE || (cs & (cs - 1)) || cs > (1ull << 30) || bsz == 0 ||
	    bsz > BLOB_PAGE_SIZE || BLOB_PAGE_SIZE % bsz != 0 || ratio > 100000)
		return -EINVAL;
	uint64_t bytes = bdev_num_blocks(bdev) * bsz;
	uint64_t total = bytes / cs;

	struct blob_store *bs = bs_alloc(bdev);
	struct init_ctx *c = mem_zalloc(sizeof(*c));
	if (!bs || !c) {
		blob_store_free(bs);
		mem_free(c);
		return -ENOMEM;
	}
	struct bs_super *s = &bs->super;
	s->version = BS_VERSION;
	s->flags = 0; /* open = dirty */
	s->cluster_size = cs;
	s->total_clusters = total;
	s->page_size = BLOB_PAGE_SIZE;
	s->io_unit = bsz;
	s->md_pages = total * ratio / 100;
	if (s->md_pages == 0)
		s->md_pages = 1;
	if (s->md_pages > UINT32_MAX - 1)
		s->md_pages = UINT32_MAX - 1;
	s->page_mask_pages = mask_pages_for(s->md_pages);
	s->cluster_mask_pages = mask_pages_for(total ? total : 1);
	s->id_mask_pages = s->page_mask_pages;
	s->page_mask_start = 1;
	s->cluster_mask_start = s->page_mask_start + s->page_mask_pages;
	s->id_mask_start = s->cluster_mask_start + s->cluster_mask_pages;
	s->md_start = s->id_mask_start + s->id_mask_pages;
	uint64_t md_bytes = (s->md_start + s->md_pages) * BLOB_PAGE_SIZE;
	s->reserved_clusters = COMMON_DIV_ROUND_UP(md_bytes, cs);
	if (opts) {
		memcpy(s->uuid, opts->uuid, 16);
		memcpy(s->name, opts->name, BLOB_STORE_NAME_MAX);
		s->name[BLOB_STORE_NAME_MAX - 1] = '\0';
	}
	if (s->reserved_clusters >= total) {
		blob_store_free(bs);
		mem_free(c);
		return -ENOSPC;
	}
	int rc = bs_setup(bs);
	if (rc) {
		blob_store_free(bs);
		mem_free(c);
		return rc;
	}
	c->bs = bs;
	c->cb = cb;
	c->arg = cb_arg;
	/* md pages of an older store on this device carry another tag and
	 * are ignored; nothing needs erasing. The prewrite is for speed. */
	c->zoff = BLOB_PAGE_SIZE;
	c->zend = COMMON_MIN(md_offset(bs, s->md_pages), md_offset(bs, 0) + BS_INIT_PREWRITE_MAX);
	c->zbuf = bs_dma_alloc(BS_INIT_PREWRITE_CHUNK);
	if (!c->zbuf) {
		blob_store_free(bs);
		mem_free(c);
		return -ENOMEM;
	}
	init_prewrite_next(c);
	return 0;
}

/* -------------------------------------------------------------- load */

struct cand {
	uint32_t page;
	uint64_t id, seq;
	uint32_t index, count;
	uint32_t payload_len;
	uint8_t *payload; /* BS_MD_PAYLOAD bytes */
};

struct chain {
	uint64_t id, seq;
	unsigned first, count;  /* into the sorted cand array */
	bool rejected;
	bool decoded;
	int decode_rc;
	struct bs_md_state st;
};

struct load_ctx {
	struct blob_store *bs;
	blob_store_cb cb;
	void *arg;
	uint8_t *buf;
	bool dirty;
	uint8_t *masks;        /* clean load: the three mask regions */
	uint64_t chunk_next;   /* next md page to read */
	unsigned reads_inflight;
	int status;
	struct cand *cands;
	size_t ncands, capcands;
	uint64_t max_seq;
};

static void load_finish(struct load_ctx *l, int status)
{
	struct blob_store *bs = l->bs;
	for (size_t i = 0; i < l->ncands; i++)
		mem_free(l->cands[i].payload);
	mem_free(l->cands);
	bs_dma_free(l->buf);
	bs_dma_free(l->masks);
	if (status) {
		blob_store_free(bs);
		bs = NULL;
	}
	l->cb(l->arg, bs, status);
	mem_free(l);
}

static void load_super_dirtied(void *arg, int status)
{
	struct load_ctx *l = arg;
	if (status == 0)
		LOG_INFO(MOD, "store loaded bdev=%s blobs=%u dirty=%d free_clusters=%llu",
			 bdev_name(l->bs->bdev), l->bs->nblobs, l->dirty ? 1 : 0,
			 (unsigned long long)bs_free_clusters(l->bs));
	load_finish(l, status);
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->page < y->page ? -1 : (x->page > y->page);
}

static int chain_decode(struct load_ctx *l, struct chain *c)
{
	if (c->decoded)
		return c->decode_rc;
	c->decoded = true;
	size_t len = 0;
	for (unsigned i = 0; i < c->count; i++)
		len += l->cands[c->first + i].payload_len;
	uint8_t *s = mem_alloc(len ? len : 1);
	if (!s) {
		c->decode_rc = -ENOMEM;
		return c->decode_rc;
	}
	size_t off = 0;
	for (unsigned i = 0; i < c->count; i++) {
		struct cand *cd = &l->cands[c->first + i];
		memcpy(s + off, cd->payload, cd->payload_len);
		off += cd->payload_len;
	}
	c->decode_rc = bs_md_stream_decode(s, len, &c->st);
	mem_free(s);
	return c->decode_rc;
}

static int blob_create_seq_cmp(const void *a, const void *b)
{
	const struct blob *x = *(struct blob *const *)a, *y = *(struct blob *const *)b;
	if (x->create_seq != y->create_seq)
		return x->create_seq < y->create_seq ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id);
}

/* Picks one chain per blob id (see doc/ONDISK.md "Load"), builds blobs. */
static int load_select(struct load_ctx *l)
{
	struct blob_store *bs = l->bs;
	int rc = 0;
	if (l->ncands > 1)
		qsort(l->cands, l->ncands, sizeof(*l->cands), cand_cmp);

	/* group complete chains */
	struct chain *chains = NULL;
	size_t nchains = 0, capchains = 0;
	for (size_t i = 0; i < l->ncands;) {
		size_t j = i;
		while (j < l->ncands && l->cands[j].id == l->cands[i].id && l->cands[j].seq == l->cands[i].seq)
			j++;
		bool ok = (j - i) == l->cands[i].count;
		for (size_t k = i; ok && k < j; k++)
			if (l->cands[k].index != k - i || l->cands[k].count != l->cands[i].count)
				ok = false;
		if (ok) {
			if (nchains == capchains) {
				size_t nc = capchains ? capchains * 2 : 64;
				struct chain *n = mem_realloc(chains, sizeof(*n) * nc);
				if (!n) {
					rc = -ENOMEM;
					goto out;
				}
				chains = n;
				capchains = nc;
			}
			memset(&chains[nchains], 0, sizeof(chains[0]));
			chains[nchains].id = l->cands[i].id;
			chains[nchains].seq = l->cands[i].seq;
			chains[nchains].first = (unsigned)i;
			chains[nchains].count = (unsigned)(j - i);
			nchains++;
		}
		i = j;
	}

	/* per id: chains are adjacent, newest first. ids index the id space. */
	uint64_t nids = bs->super.md_pages;
	int64_t *sel = mem_alloc(sizeof(*sel) * nids);     /* chosen chain or -1 */
	int64_t *firstc = mem_alloc(sizeof(*firstc) * nids);
	uint64_t *killmax = mem_alloc(sizeof(*killmax) * nids);
	if (!sel || !firstc || !killmax) {
		rc = -ENOMEM;
		goto out2;
	}
	for (uint64_t i = 0; i < nids; i++)
		firstc[i] = -1;
	for (size_t i = nchains; i-- > 0;) {
		if (chains[i].id >= nids) {
			chains[i].rejected = true;
			continue;
		}
		firstc[chains[i].id] = (int64_t)i;
	}
	for (size_t i = 0; i < nchains; i++)
		if (!chains[i].rejected && chain_decode(l, &chains[i]) != 0)
			chains[i].rejected = true;

	/* fixpoint: kills, transaction members, parents */
	bool changed = true;
	unsigned rounds = 0;
	memset(killmax, 0, sizeof(*killmax) * nids);
	while (changed) {
		if (++rounds > 1000) {
			rc = -EUCLEAN;
			goto out2;
		}
		changed = false;
		for (uint64_t id = 0; id < nids; id++) {
			sel[id] = -1;
			for (int64_t c = firstc[id]; c >= 0 && (size_t)c < nchains && chains[c].id == id; c++) {
				if (chains[c].rejected)
					continue;
				if (chains[c].seq < killmax[id])
					break;
				sel[id] = c;
				break;
			}
		}
		uint64_t *nk = mem_zalloc(sizeof(*nk) * nids);
		if (!nk) {
			rc = -ENOMEM;
			goto out2;
		}
		for (uint64_t id = 0; id < nids; id++) {
			if (sel[id] < 0)
				continue;
			struct chain *c = &chains[sel[id]];
			for (unsigned k = 0; k < c->st.nkills; k++)
				if (c->st.kills[k] < nids && c->seq > nk[c->st.kills[k]])
					nk[c->st.kills[k]] = c->seq;
		}
		if (memcmp(nk, killmax, sizeof(*nk) * nids) != 0) {
			memcpy(killmax, nk, sizeof(*nk) * nids);
			changed = true;
		}
		mem_free(nk);
		if (changed)
			continue;
		for (uint64_t id = 0; id < nids; id++) {
			if (sel[id] < 0)
				continue;
			struct chain *c = &chains[sel[id]];
			bool bad = false;
			uint64_t p = c->st.parent_id;
			if (p != BLOB_ID_NONE && (p >= nids || sel[p] < 0 || p == id))
				bad = true;
			for (unsigned k = 0; !bad && k < c->st.nmembers; k++) {
				uint64_t m = c->st.members[k];
				if (m < nids && sel[m] >= 0 && chains[sel[m]].seq < c->seq)
					bad = true;
			}
			if (bad) {
				c->rejected = true;
				changed = true;
			}
		}
	}

	/* build blobs */
	struct blob **list = mem_alloc(sizeof(*list) * (nids ? nids : 1));
	if (!list) {
		rc = -ENOMEM;
		goto out2;
	}
	size_t nlist = 0;
	for (uint64_t id = 0; id < nids; id++) {
		if (sel[id] < 0)
			continue;
		struct chain *c = &chains[sel[id]];
		struct blob *b = bs_blob_new(bs, id);
		if (!b) {
			rc = -ENOMEM;
			break;
		}
		list[nlist++] = b;
		b->seq = c->seq;
		b->create_seq = c->st.create_seq;
		b->flags = c->st.flags;
		b->num_clusters = c->st.num_clusters;
		b->clusters = c->st.clusters;
		c->st.clusters = NULL;
		b->parent_id = c->st.parent_id;
		b->xattrs = c->st.xattrs;
		b->nxattrs = c->st.nxattrs;
		c->st.xattrs = NULL;
		c->st.nxattrs = 0;
		b->has_kills = c->st.nkills > 0;
		b->pages = mem_alloc(sizeof(uint32_t) * c->count);
		if (!b->pages) {
			rc = -ENOMEM;
			break;
		}
		b->npages = c->count;
		for (unsigned k = 0; k < c->count; k++) {
			b->pages[k] = l->cands[c->first + k].page;
			bs_bitmap_set(&bs->pages, b->pages[k]);
		}
		for (uint64_t i = 0; i < b->num_clusters; i++) {
			uint32_t pc = b->clusters[i];
			if (!pc)
				continue;
			if (pc < bs->super.reserved_clusters || pc >= bs->total_clusters ||
			    bs_bitmap_get(&bs->clusters, pc)) {
				LOG_ERROR(MOD, "load: bad or shared cluster blob=%llu cluster=%u",
					  (unsigned long long)id, pc);
				rc = -EUCLEAN;
				break;
			}
			bs_bitmap_set(&bs->clusters, pc);
			b->num_alloc++;
		}
		if (b->create_seq >= bs->next_create_seq)
			bs->next_create_seq = b->create_seq + 1;
		if (rc)
			break;
	}
	if (rc) {
		for (size_t i = 0; i < nlist; i++)
			bs_blob_free(list[i]);
		mem_free(list);
		goto out2;
	}
	qsort(list, nlist, sizeof(*list), blob_create_seq_cmp);
	for (size_t i = 0; i < nlist; i++)
		bs_blob_insert(bs, list[i]);
	for (size_t i = 0; i < nlist; i++) {
		struct blob *b = list[i];
		if (b->parent_id != BLOB_ID_NONE) {
			struct blob *p = blob_lookup(bs, b->parent_id);
			if (p)
				bs_blob_add_child(p, b);
		}
	}
	mem_free(list);

	/* garbage: valid pages of this store that no chosen chain uses */
	uint32_t *garbage = NULL;
	unsigned ngarbage = 0;
	for (size_t i = 0; i < l->ncands; i++) {
		uint32_t pg = l->cands[i].page;
		if (bs_bitmap_get(&bs->pages, pg))
			continue;
		uint32_t *ng = mem_realloc(garbage, sizeof(*ng) * (ngarbage + 1));
		if (!ng)
			break;
		garbage = ng;
		garbage[ngarbage++] = pg;
		bs_bitmap_set(&bs->pages, pg);
	}
	if (ngarbage) {
		LOG_INFO(MOD, "load: zeroing stale md pages count=%u", ngarbage);
		bs_pages_zero(bs, garbage, ngarbage);
	} else {
		mem_free(garbage);
	}
out2:
	mem_free(sel);
	mem_free(firstc);
	mem_free(killmax);
out:
	for (size_t i = 0; i < nchains; i++)
		bs_md_state_clear(&chains[i].st);
	mem_free(chains);
	return rc;
}

static void load_read_next(struct load_ctx *l);

static bool page_live_in_mask(const struct load_ctx *l, uint64_t p)
{
	const uint8_t *m = l->masks; /* page mask region comes first */
	return (m[BS_MASK_HDR + p / 8] >> (p % 8)) & 1;
}

struct chunk_ctx {
	struct load_ctx *l;
	uint64_t first;
	uint32_t n;
	uint8_t *buf;
};

static void load_chunk_done(void *arg, int status)
{
	struct chunk_ctx *ch = arg;
	struct load_ctx *l = ch->l;
	struct blob_store *bs = l->bs;
	l->reads_inflight--;
	if (status && !l->status)
		l->status = status;
	if (!status) {
		uint64_t tag = store_tag(bs);
		for (uint32_t i = 0; i < ch->n; i++) {
			const uint8_t *pg = ch->buf + (size_t)i * BLOB_PAGE_SIZE;
			struct bs_md_hdr h;
			if (bs_md_page_decode(pg, &h) != 0 || h.tag != tag)
				continue;
			if (h.seq > l->max_seq)
				l->max_seq = h.seq;
			if (l->ncands == l->capcands) {
				size_t nc = l->capcands ? l->capcands * 2 : 256;
				struct cand *n = mem_realloc(l->cands, sizeof(*n) * nc);
				if (!n) {
					l->status = -ENOMEM;
					break;
				}
				l->cands = n;
				l->capcands = nc;
			}
			struct cand *c = &l->cands[l->ncands];
			c->payload = mem_alloc(h.payload_len ? h.payload_len : 1);
			if (!c->payload) {
				l->status = -ENOMEM;
				break;
			}
			memcpy(c->payload, pg + BS_MD_HDR, h.payload_len);
			c->page = (uint32_t)(ch->first + i);
			c->id = h.id;
			c->seq = h.seq;
			c->index = h.index;
			c->count = h.count;
			c->payload_len = h.payload_len;
			l->ncands++;
		}
	}
	bs_dma_free(ch->buf);
	mem_free(ch);
	load_read_next(l);
}

static void load_read_next(struct load_ctx *l)
{
	struct blob_store *bs = l->bs;
	while (!l->status && l->reads_inflight < 4 && l->chunk_next < bs->super.md_pages) {
		uint64_t first = l->chunk_next;
		uint64_t end = COMMON_MIN(first + LOAD_CHUNK_PAGES, bs->super.md_pages);
		l->chunk_next = end;
		if (!l->dirty) {
			uint64_t lo = UINT64_MAX, hi = 0;
			for (uint64_t p = first; p < end; p++)
				if (page_live_in_mask(l, p)) {
					if (lo == UINT64_MAX)
						lo = p;
					hi = p + 1;
				}
			if (lo == UINT64_MAX)
				continue;
			first = lo;
			end = hi;
		}
		struct chunk_ctx *ch = mem_zalloc(sizeof(*ch));
		uint8_t *buf = bs_dma_alloc((end - first) * BLOB_PAGE_SIZE);
		if (!ch || !buf) {
			mem_free(ch);
			bs_dma_free(buf);
			l->status = -ENOMEM;
			break;
		}
		ch->l = l;
		ch->first = first;
		ch->n = (uint32_t)(end - first);
		ch->buf = buf;
		l->reads_inflight++;
		int rc = bdev_read(bs->bdev, buf, md_offset(bs, first), (end - first) * BLOB_PAGE_SIZE,
				   load_chunk_done, ch);
		if (rc) {
			l->reads_inflight--;
			bs_dma_free(buf);
			mem_free(ch);
			l->status = rc;
		}
	}
	if (l->reads_inflight > 0)
		return;
	if (l->status) {
		load_finish(l, l->status);
		return;
	}
	/* all md pages read */
	int rc = load_select(l);
	if (rc) {
		load_finish(l, rc);
		return;
	}
	if (!l->dirty) {
		/* cross-check the stored cluster mask against the chains */
		const uint8_t *cm = l->masks + (size_t)bs->super.page_mask_pages * BLOB_PAGE_SIZE;
		uint64_t mismatches = 0;
		for (uint64_t c = bs->super.reserved_clusters; c < bs->total_clusters; c++) {
			bool on = (cm[BS_MASK_HDR + c / 8] >> (c % 8)) & 1;
			if (on != bs_bitmap_get(&bs->clusters, c))
				mismatches++;
		}
		if (mismatches)
			LOG_WARN(MOD, "load: cluster mask disagrees with metadata clusters=%llu (using metadata)",
				 (unsigned long long)mismatches);
	}
	if (l->max_seq + 1 > bs->next_seq)
		bs->next_seq = l->max_seq + 1;
	if (bs->super.next_seq > bs->next_seq)
		bs->next_seq = bs->super.next_seq;
	bs->was_dirty = l->dirty;
	bs->super.flags &= ~BS_SUPER_FLAG_CLEAN;
	super_write(bs, load_super_dirtied, l);
}

static void load_masks_done(void *arg, int status)
{
	struct load_ctx *l = arg;
	struct blob_store *bs = l->bs;
	if (status) {
		load_finish(l, status);
		return;
	}
	const uint8_t *pm = l->masks;
	const uint8_t *cm = pm + (size_t)bs->super.page_mask_pages * BLOB_PAGE_SIZE;
	const uint8_t *im = cm + (size_t)bs->super.cluster_mask_pages * BLOB_PAGE_SIZE;
	if (crc32c(0, pm, (size_t)bs->super.page_mask_pages * BLOB_PAGE_SIZE) != bs->super.page_mask_crc ||
	    crc32c(0, cm, (size_t)bs->super.cluster_mask_pages * BLOB_PAGE_SIZE) != bs->super.cluster_mask_crc ||
	    crc32c(0, im, (size_t)bs->super.id_mask_pages * BLOB_PAGE_SIZE) != bs->super.id_mask_crc ||
	    pm[0] != BS_MASK_PAGES || cm[0] != BS_MASK_CLUSTERS || im[0] != BS_MASK_IDS) {
		LOG_WARN(MOD, "load: bitmaps fail their checksum, rebuilding from metadata bdev=%s",
			 bdev_name(bs->bdev));
		l->dirty = true;
	}
	load_read_next(l);
}

static void load_super_done(void *arg, int status)
{
	struct load_ctx *l = arg;
	struct blob_store *bs = l->bs;
	if (status) {
		load_finish(l, status);
		return;
	}
	int rc = bs_super_decode(l->buf, &bs->super);
	if (rc) {
		load_finish(l, rc);
		return;
	}
	struct bs_super *s = &bs->super;
	uint64_t bytes = bdev_num_blocks(bs->bdev) * bdev_block_size(bs->bdev);
	if (s->io_unit != bdev_block_size(bs->bdev) || s->total_clusters * s->cluster_size > bytes ||
	    s->md_start + s->md_pages < s->md_start ||
	    s->page_mask_start + s->page_mask_pages != s->cluster_mask_start ||
	    s->cluster_mask_start + s->cluster_mask_pages != s->id_mask_start ||
	    s->id_mask_start + s->id_mask_pages != s->md_start || s->page_mask_start != 1 ||
	    mask_pages_for(s->md_pages) > s->page_mask_pages) {
		LOG_ERROR(MOD, "load: super block does not fit the device bdev=%s", bdev_name(bs->bdev));
		load_finish(l, -EILSEQ);
		return;
	}
	rc = bs_setup(bs);
	if (rc) {
		load_finish(l, rc);
		return;
	}
	l->dirty = !(s->flags & BS_SUPER_FLAG_CLEAN);
	if (l->dirty) {
		load_read_next(l);
		return;
	}
	size_t mlen = (size_t)(s->page_mask_pages + s->cluster_mask_pages + s->id_mask_pages) * BLOB_PAGE_SIZE;
	l->masks = bs_dma_alloc(mlen);
	if (!l->masks) {
		load_finish(l, -ENOMEM);
		return;
	}
	rc = bdev_read(bs->bdev, l->masks, s->page_mask_start * BLOB_PAGE_SIZE, mlen, load_masks_done, l);
	if (rc)
		load_finish(l, rc);
}

int blob_store_load(struct bdev *bdev, blob_store_cb cb, void *cb_arg)
{
	uint64_t bytes = bdev_num_blocks(bdev) * bdev_block_size(bdev);
	if (bytes < BLOB_PAGE_SIZE || bdev_block_size(bdev) > BLOB_PAGE_SIZE ||
	    BLOB_PAGE_SIZE % bdev_block_size(bdev) != 0)
		return -EINVAL;
	struct load_ctx *l = mem_zalloc(sizeof(*l));
	struct blob_store *bs = bs_alloc(bdev);
	uint8_t *buf = bs_dma_alloc(BLOB_PAGE_SIZE);
	if (!l || !bs || !buf) {
		mem_free(l);
		blob_store_free(bs);
		bs_dma_free(buf);
		return -ENOMEM;
	}
	l->bs = bs;
	l->cb = cb;
	l->arg = cb_arg;
	l->buf = buf;
	int rc = bdev_read(bdev, buf, 0, BLOB_PAGE_SIZE, load_super_done, l);
	if (rc) {
		mem_free(l);
		blob_store_free(bs);
		bs_dma_free(buf);
	}
	return rc;
}

/* ------------------------------------------------------------ unload */

struct unload_ctx {
	struct blob_store *bs;
	blob_done_cb cb;
	void *arg;
	uint8_t *masks;
	bool destroy;
};

static void unload_finish_now(void *arg, int status)
{
	struct unload_ctx *u = arg;
	if (status)
		LOG_WARN(MOD, "unload failed (store left dirty) bdev=%s status=%d", bdev_name(u->bs->bdev), status);
	bs_dma_free(u->masks);
	store_release(u->bs);
	blob_done_cb cb = u->cb;
	void *cb_arg = u->arg;
	mem_free(u);
	cb(cb_arg, status);
}

/* The store is freed from the loop: callers up the stack (flush_done)
 * still touch it after calling us. */
static void unload_finish(void *arg, int status)
{
	bs_defer_done(unload_finish_now, arg, status);
}

static void encode_mask(uint8_t *region, uint8_t type, const struct bs_bitmap *bm)
{
	region[0] = type;
	uint32_t n = (uint32_t)bm->nbits;
	for (int i = 0; i < 4; i++)
		region[1 + i] = (uint8_t)(n >> (8 * i));
	for (uint64_t i = 0; i < bm->nbits; i++)
		if (bs_bitmap_get(bm, i))
			region[BS_MASK_HDR + i / 8] |= (uint8_t)(1u << (i % 8));
}

static void unload_masks_flushed(void *arg, int status)
{
	struct unload_ctx *u = arg;
	if (status) {
		unload_finish(u, status);
		return;
	}
	u->bs->super.flags |= BS_SUPER_FLAG_CLEAN;
	u->bs->super.next_seq = u->bs->next_seq;
	super_write(u->bs, unload_finish, u);
}

static void unload_masks_written(void *arg, int status)
{
	struct unload_ctx *u = arg;
	if (status) {
		unload_finish(u, status);
		return;
	}
	bs_flush(u->bs, u->destroy ? unload_finish : unload_masks_flushed, u);
}

static void unload_idle(void *arg)
{
	struct unload_ctx *u = arg;
	struct blob_store *bs = u->bs;
	struct bs_super *s = &bs->super;
	if (u->destroy) {
		uint8_t *z = u->masks; /* a zero super block: no store here */
		memset(z, 0, BLOB_PAGE_SIZE);
		int rc = bdev_write(bs->bdev, z, 0, BLOB_PAGE_SIZE, unload_masks_written, u);
		if (rc)
			bs_defer_done(unload_finish, u, rc);
		return;
	}
	if (bs->failed) {
		bs_defer_done(unload_finish, u, -EIO);
		return;
	}
	size_t plen = (size_t)s->page_mask_pages * BLOB_PAGE_SIZE;
	size_t clen = (size_t)s->cluster_mask_pages * BLOB_PAGE_SIZE;
	size_t ilen = (size_t)s->id_mask_pages * BLOB_PAGE_SIZE;
	uint8_t *m = u->masks;
	encode_mask(m, BS_MASK_PAGES, &bs->pages);
	encode_mask(m + plen, BS_MASK_CLUSTERS, &bs->clusters);
	encode_mask(m + plen + clen, BS_MASK_IDS, &bs->ids);
	s->page_mask_crc = crc32c(0, m, plen);
	s->cluster_mask_crc = crc32c(0, m + plen, clen);
	s->id_mask_crc = crc32c(0, m + plen + clen, ilen);
	int rc = bdev_write(bs->bdev, m, s->page_mask_start * BLOB_PAGE_SIZE, plen + clen + ilen,
			    unload_masks_written, u);
	if (rc)
		bs_defer_done(unload_finish, u, rc);
}

static int unload_common(struct blob_store *bs, bool destroy, blob_done_cb cb, void *cb_arg)
{
	struct unload_ctx *u = mem_zalloc(sizeof(*u));
	size_t mlen = (size_t)(bs->super.page_mask_pages + bs->super.cluster_mask_pages +
			       bs->super.id_mask_pages) * BLOB_PAGE_SIZE;
	uint8_t *m = bs_dma_alloc(COMMON_MAX(mlen, BLOB_PAGE_SIZE));
	if (!u || !m) {
		mem_free(u);
		bs_dma_free(m);
		return -ENOMEM;
	}
	u->bs = bs;
	u->cb = cb;
	u->arg = cb_arg;
	u->masks = m;
	u->destroy = destroy;
	if (bs->ops_inflight == 0 && bs->zero_outstanding == 0 && !bs->flush_busy) {
		unload_idle(u);
		return 0;
	}
	int rc = add_waiter(&bs->idle_waiters, unload_idle, u);
	if (rc) {
		mem_free(u);
		bs_dma_free(m);
	}
	return rc;
}

int blob_store_unload(struct blob_store *bs, blob_done_cb cb, void *cb_arg)
{
	return unload_common(bs, false, cb, cb_arg);
}

int blob_store_destroy(struct blob_store *bs, blob_done_cb cb, void *cb_arg)
{
	return unload_common(bs, true, cb, cb_arg);
}

/* ----------------------------------------------------- label / grow */

struct label_ctx {
	struct blob_store *bs;
	blob_done_cb cb;
	void *arg;
	char name[BLOB_STORE_NAME_MAX];
	struct bs_super old;
	bool grow;
};

static void label_written(void *arg, int status)
{
	struct label_ctx *c = arg;
	struct blob_store *bs = c->bs;
	if (status) {
		uint64_t ss = bs->super.super_seq;
		bs->super = c->old;
		bs->super.super_seq = ss;
		bs->failed = true;
	} else if (c->grow) {
		uint64_t old = bs->total_clusters;
		bs->total_clusters = bs->super.total_clusters;
		if (bs_bitmap_resize(&bs->clusters, bs->total_clusters) != 0) {
			bs->total_clusters = old;
			status = -ENOMEM;
		} else {
			LOG_INFO(MOD, "store grown bdev=%s clusters=%llu->%llu", bdev_name(bs->bdev),
				 (unsigned long long)old, (unsigned long long)bs->total_clusters);
		}
	}
	bs_lock_release(&bs->struct_lock);
	blob_done_cb cb = c->cb;
	void *cb_arg = c->arg;
	mem_free(c);
	cb(cb_arg, status);
	bs_op_end(bs);
}

static void label_locked(void *arg)
{
	struct label_ctx *c = arg;
	struct blob_store *bs = c->bs;
	c->old = bs->super;
	if (c->grow) {
		uint64_t bytes = bdev_num_blocks(bs->bdev) * bdev_block_size(bs->bdev);
		uint64_t nt = COMMON_MIN(bytes / bs->cluster_size, bs->max_clusters);
		if (nt <= bs->total_clusters) {
			bs_defer_done(label_written, c, 0);
			c->grow = false;
			return;
		}
		bs->super.total_clusters = nt;
	} else {
		memcpy(bs->super.name, c->name, BLOB_STORE_NAME_MAX);
	}
	super_write(bs, label_written, c);
}

static int label_start(struct blob_store *bs, const char *name, bool grow, blob_done_cb cb, void *cb_arg)
{
	if (bs->failed)
		return -EIO;
	if (!grow && (!name || strlen(name) >= BLOB_STORE_NAME_MAX))
		return -EINVAL;
	struct label_ctx *c = mem_zalloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bs = bs;
	c->cb = cb;
	c->arg = cb_arg;
	c->grow = grow;
	if (name)
		strncpy(c->name, name, BLOB_STORE_NAME_MAX - 1);
	bs_op_begin(bs);
	int rc = bs_lock_acquire(&bs->struct_lock, label_locked, c);
	if (rc) {
		bs_op_end(bs);
		mem_free(c);
	}
	return rc;
}

int blob_store_set_name(struct blob_store *bs, const char *name, blob_done_cb cb, void *cb_arg)
{
	return label_start(bs, name, false, cb, cb_arg);
}

int blob_store_grow(struct blob_store *bs, blob_done_cb cb, void *cb_arg)
{
	return label_start(bs, NULL, true, cb, cb_arg);
}

/* ----------------------------------------------------------- getters */

struct bdev *blob_store_bdev(const struct blob_store *bs) { return bs->bdev; }
uint64_t blob_store_cluster_size(const struct blob_store *bs) { return bs->cluster_size; }
uint64_t blob_store_total_data_clusters(const struct blob_store *bs)
{
	return bs->total_clusters - bs->super.reserved_clusters;
}
uint64_t blob_store_free_clusters(const struct blob_store *bs) { return bs_free_clusters(bs); }
uint64_t blob_store_max_growable_size(const struct blob_store *bs)
{
	return bs->max_clusters * bs->cluster_size;
}
uint32_t blob_store_io_unit(const struct blob_store *bs) { return bs->io_unit; }
const uint8_t *blob_store_uuid(const struct blob_store *bs) { return bs->super.uuid; }
const char *blob_store_name(const struct blob_store *bs) { return bs->super.name; }
bool blob_store_was_dirty(const struct blob_store *bs) { return bs->was_dirty; }
unsigned blob_store_blob_count(const struct blob_store *bs) { return bs->nblobs; }

uint64_t blob_store_mem_bytes(const struct blob_store *bs)
{
	uint64_t n = sizeof(*bs) + bs->hash_size * sizeof(void *);
	n += (bs->clusters.nbits + bs->pages.nbits + bs->ids.nbits) / 8;
	for (const struct blob *b = bs->first; b; b = b->next) {
		n += sizeof(*b) + b->num_clusters * sizeof(uint32_t) + b->npages * sizeof(uint32_t);
		n += b->cap_children * sizeof(void *) + b->nxattrs * sizeof(struct bs_xattr);
		for (unsigned i = 0; i < b->nxattrs; i++)
			n += strlen(b->xattrs[i].name) + 1 + b->xattrs[i].len;
	}
	return n;
}

struct blob *blob_first(const struct blob_store *bs) { return bs->first; }
struct blob *blob_next(const struct blob *blob) { return blob->next; }

struct blob *blob_lookup(const struct blob_store *bs, uint64_t id)
{
	if (!bs->hash_size)
		return NULL;
	for (struct blob *b = bs->hash[hash_slot(bs, id)]; b; b = b->hnext)
		if (b->id == id)
			return b;
	return NULL;
}

int blob_store_check(const struct blob_store *bs)
{
	struct bs_bitmap seen;
	if (bs_bitmap_init(&seen, bs->total_clusters) != 0)
		return -ENOMEM;
	int rc = 0;
	uint64_t alloc = 0;
	for (const struct blob *b = bs->first; b; b = b->next) {
		uint64_t n = 0;
		for (uint64_t i = 0; i < b->num_clusters; i++) {
			uint32_t c = b->clusters[i];
			if (!c)
				continue;
			n++;
			if (c < bs->super.reserved_clusters || c >= bs->total_clusters || bs_bitmap_get(&seen, c)) {
				LOG_ERROR(MOD, "check: cluster owned twice or out of range blob=%llu cluster=%u",
					  (unsigned long long)b->id, c);
				rc = -EUCLEAN;
				continue;
			}
			bs_bitmap_set(&seen, c);
			if (!bs_bitmap_get(&bs->clusters, c)) {
				LOG_ERROR(MOD, "check: cluster in use but free in bitmap cluster=%u", c);
				rc = -EUCLEAN;
			}
		}
		if (n != b->num_alloc) {
			LOG_ERROR(MOD, "check: allocation count blob=%llu counted=%llu kept=%llu",
				  (unsigned long long)b->id, (unsigned long long)n, (unsigned long long)b->num_alloc);
			rc = -EUCLEAN;
		}
		alloc += n;
		if (b->parent && b->parent->id != b->parent_id)
			rc = -EUCLEAN;
	}
	/* allocations in flight are the only allowed difference */
	if (bs->ops_inflight == 0 &&
	    alloc + bs->super.reserved_clusters + bs_free_clusters(bs) != bs->total_clusters) {
		LOG_ERROR(MOD, "check: free+allocated != total alloc=%llu free=%llu total=%llu",
			  (unsigned long long)alloc, (unsigned long long)bs_free_clusters(bs),
			  (unsigned long long)blob_store_total_data_clusters(bs));
		rc = -EUCLEAN;
	}
	bs_bitmap_fini(&seen);
	return rc;
}
