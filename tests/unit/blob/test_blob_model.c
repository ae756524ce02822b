/*
 * test_blob_model.c: model-based and crash tests of the blobstore.
 *
 * model: random sequences of create / resize / snapshot / clone / delete /
 *   inflate / decouple / read-only / write / write zeroes / read / reload
 *   (clean and dirty) run against an in-memory model; after every step the
 *   free clusters, every blob's size, flags, parent and allocation count
 *   match, and the touched blob's data reads back as the model says (all
 *   blobs after every reload).
 * crash: the same workload on the fault bdev with a power loss injected
 *   after a random number of device writes (dropping all or a random subset
 *   of unflushed writes, sometimes torn per block). Every reload must
 *   succeed and pass blob_store_check (no cluster owned twice, free +
 *   allocated = total); the store must equal the model after the last
 *   acknowledged operation, or after the interrupted one (never a mix).
 *
 * Sizes: CI default is small; DISKENGINE_STRESS=1 runs >= 20 seeds x 5,000
 * operations and >= 2,000 crash points. The test prints what it ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"

#ifndef MODEL_CS
#define MODEL_CS (16u * 1024)
#endif
#ifndef MODEL_BLK
#define MODEL_BLK 512u
#endif
#ifndef MODEL_CI_DIV
#define MODEL_CI_DIV 1      /* CI-size divisor for variants (full sizes need DISKENGINE_STRESS) */
#endif
#define CS MODEL_CS         /* cluster size */
#define BLK MODEL_BLK       /* device block size */
#define DEV_BYTES (512u * CS)  /* 512 clusters, 128 md pages (> MAXB blobs) */
#define MAXB 48             /* model slots */
#define MAXN 10             /* max clusters per blob */
#define ID_UNKNOWN (UINT64_MAX - 1)

struct cbuf {
	int ref;
	bool unknown; /* thick cluster never read back: bytes of whoever used it before */
	uint8_t d[CS];
};

struct mblob {
	bool live;
	uint64_t id;
	uint64_t n;
	bool thin, rdonly, snapshot;
	int parent;
	struct cbuf *c[MAXN];
};

struct model {
	struct mblob b[MAXB];
	uint64_t free;
};

static struct cbuf *cb_new(const uint8_t *src)
{
	struct cbuf *c = malloc(sizeof(*c));
	c->ref = 1;
	c->unknown = false;
	if (src)
		memcpy(c->d, src, CS);
	else
		memset(c->d, 0, CS);
	return c;
}
static struct cbuf *cb_get(struct cbuf *c) { if (c) c->ref++; return c; }
static void cb_put(struct cbuf *c) { if (c && --c->ref == 0) free(c); }

static void model_copy(struct model *dst, const struct model *src)
{
	*dst = *src;
	for (int i = 0; i < MAXB; i++)
		for (int k = 0; k < MAXN; k++)
			cb_get(dst->b[i].c[k]);
}

static void model_clear(struct model *m)
{
	for (int i = 0; i < MAXB; i++)
		for (int k = 0; k < MAXN; k++)
			cb_put(m->b[i].c[k]);
	memset(m, 0, sizeof(*m));
}

static int nchildren(const struct model *m, int i)
{
	int n = 0;
	for (int j = 0; j < MAXB; j++)
		if (m->b[j].live && m->b[j].parent == i)
			n++;
	return n;
}

/* ancestor's content for cluster lc (not i itself) */
static struct cbuf *anc(const struct model *m, int i, uint64_t lc)
{
	for (int p = m->b[i].parent; p >= 0; p = m->b[p].parent) {
		if (lc >= m->b[p].n)
			return NULL;
		if (m->b[p].c[lc])
			return m->b[p].c[lc];
	}
	return NULL;
}

static struct cbuf *view(const struct model *m, int i, uint64_t lc)
{
	return m->b[i].c[lc] ? m->b[i].c[lc] : anc(m, i, lc);
}

static struct cbuf *cb_unknown(void)
{
	struct cbuf *c = cb_new(NULL);
	c->unknown = true;
	return c;
}

static struct cbuf *cb_derive(const struct cbuf *a)
{
	struct cbuf *c = cb_new(a ? a->d : NULL);
	c->unknown = a && a->unknown;
	return c;
}

static int free_slot(const struct model *m)
{
	for (int i = 0; i < MAXB; i++)
		if (!m->b[i].live)
			return i;
	return -1;
}

static int live_count(const struct model *m)
{
	int n = 0;
	for (int i = 0; i < MAXB; i++)
		n += m->b[i].live;
	return n;
}

/* ------------------------------------------------------------ state */

struct ctx {
	struct bdev *bd;
	struct blob_store *bs;
	struct model m;
	uint64_t rng;
	bool crash_mode;
	unsigned long ops, checks, reloads;
	int last_kind;
	enum blob_clear_method clear;
};

static uint64_t rnd(struct ctx *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static int pick(struct ctx *c, bool (*ok)(const struct mblob *))
{
	int cand[MAXB], n = 0;
	for (int i = 0; i < MAXB; i++)
		if (c->m.b[i].live && (!ok || ok(&c->m.b[i])))
			cand[n++] = i;
	return n ? cand[rnd(c) % n] : -1;
}

static bool is_rw(const struct mblob *b) { return !b->rdonly; }
static bool is_ro(const struct mblob *b) { return b->rdonly; }

static struct blob *real(struct ctx *c, int i)
{
	return blob_lookup(c->bs, c->m.b[i].id);
}

/* Compare store and model. data_lenient: per block, data may instead equal
 * that model's. Returns 0 or a line number of the first mismatch. */
static int compare(struct ctx *c, struct model *m, const struct model *lenient, bool data_all, int only)
{
	struct blob_store *bs = c->bs;
	if (blob_store_check(bs) != 0)
		return __LINE__;
	if (blob_store_free_clusters(bs) != m->free)
		return __LINE__;
	if ((int)blob_store_blob_count(bs) != live_count(m))
		return __LINE__;
	/* resolve an unknown id (a create interrupted by a crash that persisted) */
	for (int i = 0; i < MAXB; i++) {
		if (!m->b[i].live || m->b[i].id != ID_UNKNOWN)
			continue;
		for (struct blob *x = blob_first(bs); x; x = blob_next(x)) {
			bool known = false;
			for (int j = 0; j < MAXB; j++)
				if (m->b[j].live && m->b[j].id == blob_id(x))
					known = true;
			if (!known) {
				m->b[i].id = blob_id(x);
				break;
			}
		}
		if (m->b[i].id == ID_UNKNOWN)
			return __LINE__;
	}
	uint8_t *buf = malloc(MAXN * CS);
	int bad = 0;
	for (int i = 0; i < MAXB && !bad; i++) {
		struct mblob *mb = &m->b[i];
		if (!mb->live)
			continue;
		struct blob *b = blob_lookup(bs, mb->id);
		if (!b) { bad = __LINE__; break; }
		uint64_t alloc = 0;
		for (uint64_t k = 0; k < mb->n; k++)
			alloc += mb->c[k] != NULL;
		if (blob_num_clusters(b) != mb->n || blob_num_allocated_clusters(b) != alloc ||
		    blob_is_thin(b) != mb->thin || blob_is_read_only(b) != mb->rdonly) {
			bad = __LINE__;
			break;
		}
		bool snap = mb->snapshot || (mb->rdonly && nchildren(m, i) > 0);
		if (blob_is_snapshot(b) != snap) { bad = __LINE__; break; }
		struct blob *p = blob_parent(b);
		if ((mb->parent < 0) != (p == NULL)) { bad = __LINE__; break; }
		if (p && blob_id(p) != m->b[mb->parent].id) { bad = __LINE__; break; }
		if ((!data_all && i != only) || mb->n == 0)
			continue;
		if (h_read(b, buf, 0, mb->n * CS) != 0) { bad = __LINE__; break; }
		static const uint8_t zeros[CS];
		for (uint64_t k = 0; k < mb->n && !bad; k++) {
			struct cbuf *vc = view(m, i, k);
			if (vc && vc->unknown) {
				/* learn what a thick cluster holds */
				memcpy(vc->d, buf + k * CS, CS);
				vc->unknown = false;
				continue;
			}
			const uint8_t *want = vc ? vc->d : zeros;
			const uint8_t *alt = NULL;
			if (lenient && lenient->b[i].live && k < lenient->b[i].n) {
				struct cbuf *ac = view(lenient, i, k);
				alt = ac && !ac->unknown ? ac->d : zeros;
			}
			for (uint64_t o = 0; o < CS; o += BLK) {
				const uint8_t *got = buf + k * CS + o;
				if (memcmp(got, want + o, BLK) == 0)
					continue;
				if (alt && memcmp(got, alt + o, BLK) == 0) {
					/* torn interrupted write: the model takes what is there */
					if (vc)
						memcpy(vc->d + o, got, BLK);
					continue;
				}
				if (getenv("BLOB_DEBUG_ALL"))
					fprintf(stderr, "data mismatch slot=%d id=%llu cluster=%llu off=%llu\n", i,
						(unsigned long long)mb->id, (unsigned long long)k, (unsigned long long)o);
				bad = __LINE__;
				break;
			}
		}
	}
	free(buf);
	c->checks++;
	return bad;
}

/* -------------------------------------------------------------- ops */

enum opk { O_CREATE, O_RESIZE, O_SNAP, O_CLONE, O_DELETE, O_WRITE, O_WZ, O_READ, O_RELOAD,
	   O_INFLATE, O_DECOUPLE, O_RDONLY, O_NKIND };

/* One random operation. Applies it to the store and (as predicted) to
 * `next` (a copy of c->m). Returns the store's status; *want the model's. */
static int do_op(struct ctx *c, struct model *next, int *want, int *touched)
{
	struct model *m = next;
	unsigned r = (unsigned)(rnd(c) % 100);
	enum opk k;
	if (r < 14) k = O_CREATE;
	else if (r < 22) k = O_RESIZE;
	else if (r < 30) k = O_SNAP;
	else if (r < 37) k = O_CLONE;
	else if (r < 47) k = O_DELETE;
	else if (r < 70) k = O_WRITE;
	else if (r < 76) k = O_WZ;
	else if (r < 86) k = O_READ;
	else if (r < 90) k = O_RELOAD;
	else if (r < 94) k = O_INFLATE;
	else if (r < 98) k = O_DECOUPLE;
	else k = O_RDONLY;
	*touched = -1;
	*want = 0;
	c->ops++;
	c->last_kind = (int)k;

	if ((k == O_CREATE || k == O_SNAP || k == O_CLONE) && live_count(m) >= MAXB - 2)
		k = O_DELETE;
	if (live_count(m) == 0)
		k = O_CREATE;

	switch (k) {
	case O_CREATE: {
		int s = free_slot(m);
		uint64_t n = rnd(c) % (MAXN - 2);
		bool thin = rnd(c) % 2;
		struct blob *b = NULL;
		if (!thin && n > m->free) {
			*want = -ENOSPC;
			return h_create(c->bs, n, thin, NULL);
		}
		struct mblob *mb = &m->b[s];
		memset(mb, 0, sizeof(*mb));
		mb->live = true;
		mb->id = ID_UNKNOWN;
		mb->n = n;
		mb->thin = thin;
		mb->parent = -1;
		if (!thin) {
			for (uint64_t i = 0; i < n; i++)
				mb->c[i] = cb_unknown(); /* content: whatever the cluster held */
			m->free -= n;
		}
		int rc = h_create(c->bs, n, thin, &b);
		if (rc == 0) {
			mb->id = blob_id(b);
			if (!thin) {
				/* thick clusters are not cleared: learn their bytes */
				uint8_t *buf = malloc(CS);
				for (uint64_t i = 0; i < n; i++) {
					if (h_read(b, buf, i * CS, CS) == 0) {
						memcpy(mb->c[i]->d, buf, CS);
						mb->c[i]->unknown = false;
					}
				}
				free(buf);
			}
		}
		*touched = s;
		return rc;
	}
	case O_RESIZE: {
		int i = pick(c, NULL);
		struct mblob *mb = &m->b[i];
		uint64_t n = rnd(c) % MAXN;
		*touched = i;
		if (mb->rdonly) {
			*want = -EPERM;
		} else if (n > mb->n && !mb->thin && n - mb->n > m->free) {
			*want = -ENOSPC;
		} else if (n > mb->n && !mb->thin) {
			/* new thick clusters: contents unknown until read back */
			for (uint64_t k2 = mb->n; k2 < n; k2++)
				mb->c[k2] = cb_unknown();
			m->free -= n - mb->n;
			uint64_t old = mb->n;
			mb->n = n;
			int rc = h_resize(real(c, i), n);
			if (rc == 0) {
				uint8_t *buf = malloc(CS);
				for (uint64_t k2 = old; k2 < n; k2++)
					if (h_read(real(c, i), buf, k2 * CS, CS) == 0) {
						memcpy(mb->c[k2]->d, buf, CS);
						mb->c[k2]->unknown = false;
					}
				free(buf);
			}
			return rc;
		} else {
			for (uint64_t k2 = n; k2 < mb->n; k2++) {
				if (mb->c[k2]) {
					m->free++;
					cb_put(mb->c[k2]);
					mb->c[k2] = NULL;
				}
			}
			mb->n = n;
		}
		return h_resize(real(c, i), n);
	}
	case O_SNAP: {
		int i = pick(c, NULL);
		struct mblob *o = &m->b[i];
		*touched = i;
		if (o->rdonly) {
			*want = -EINVAL;
			return h_snapshot(real(c, i), NULL);
		}
		int s = free_slot(m);
		struct mblob *sb = &m->b[s];
		memset(sb, 0, sizeof(*sb));
		sb->live = true;
		sb->id = ID_UNKNOWN;
		sb->n = o->n;
		sb->thin = o->thin;
		sb->rdonly = true;
		sb->snapshot = true;
		sb->parent = o->parent;
		memcpy(sb->c, o->c, sizeof(o->c));
		memset(o->c, 0, sizeof(o->c));
		o->thin = true;
		o->parent = s;
		struct blob *b = NULL;
		int rc = h_snapshot(real(c, i), &b);
		if (rc == 0)
			sb->id = blob_id(b);
		return rc;
	}
	case O_CLONE: {
		int i = pick(c, rnd(c) % 4 ? is_ro : NULL);
		if (i < 0)
			i = pick(c, NULL);
		*touched = i;
		if (!m->b[i].rdonly) {
			*want = -EINVAL;
			return h_clone(real(c, i), NULL);
		}
		int s = free_slot(m);
		struct mblob *cb = &m->b[s];
		memset(cb, 0, sizeof(*cb));
		cb->live = true;
		cb->id = ID_UNKNOWN;
		cb->n = m->b[i].n;
		cb->thin = true;
		cb->parent = i;
		struct blob *b = NULL;
		int rc = h_clone(real(c, i), &b);
		if (rc == 0)
			cb->id = blob_id(b);
		*touched = s;
		return rc;
	}
	case O_DELETE: {
		int i = pick(c, NULL);
		struct mblob *d = &m->b[i];
		int nc = nchildren(m, i);
		struct blob *b = real(c, i);
		if (nc >= 2) {
			*want = -EPERM;
			return h_delete(b);
		}
		if (nc == 1) {
			int ch = -1;
			for (int j = 0; j < MAXB; j++)
				if (m->b[j].live && m->b[j].parent == i)
					ch = j;
			struct mblob *cm = &m->b[ch];
			for (uint64_t lc = 0; lc < d->n; lc++) {
				if (!d->c[lc])
					continue;
				if (lc < cm->n && !cm->c[lc]) {
					cm->c[lc] = d->c[lc];
				} else {
					m->free++;
					cb_put(d->c[lc]);
				}
				d->c[lc] = NULL;
			}
			cm->parent = d->parent;
			*touched = ch;
		} else {
			for (uint64_t lc = 0; lc < d->n; lc++) {
				if (d->c[lc]) {
					m->free++;
					cb_put(d->c[lc]);
					d->c[lc] = NULL;
				}
			}
		}
		memset(d, 0, sizeof(*d));
		d->parent = -1;
		return h_delete(b);
	}
	case O_WRITE:
	case O_WZ: {
		int i = pick(c, is_rw);
		if (i < 0 || m->b[i].n == 0) {
			k = O_READ;
			goto do_read;
		}
		struct mblob *mb = &m->b[i];
		*touched = i;
		uint64_t size = mb->n * CS;
		uint64_t off = (rnd(c) % (size / BLK)) * BLK;
		uint64_t maxlen = c->crash_mode ? (CS - off % CS) : (size - off);
		uint64_t len = (1 + rnd(c) % COMMON_MIN(maxlen / BLK, 3 * CS / BLK)) * BLK;
		uint8_t *data = malloc(len);
		uint8_t tag = (uint8_t)rnd(c);
		for (uint64_t x = 0; x < len; x++)
			data[x] = (uint8_t)(tag + x * 13 + (x >> 9));
		int status = 0;
		for (uint64_t o = off; o < off + len;) {
			uint64_t lc = o / CS, co = o % CS, n = COMMON_MIN(off + len - o, CS - co);
			struct cbuf *a = mb->c[lc] ? mb->c[lc] : anc(m, i, lc);
			if (!mb->c[lc] && k == O_WZ && !a) {
				o += n;
				continue;
			}
			if (!mb->c[lc]) {
				if (m->free == 0) {
					status = -ENOSPC;
					o += n;
					continue;
				}
				m->free--;
			}
			struct cbuf *nb = cb_derive(a);
			if (k == O_WRITE)
				memcpy(nb->d + co, data + (o - off), n);
			else
				memset(nb->d + co, 0, n);
			cb_put(mb->c[lc]);
			mb->c[lc] = nb;
			o += n;
		}
		*want = status;
		struct blob *b = real(c, i);
		int rc = k == O_WRITE ? h_write(b, data, off, len) : h_wz(b, off, len);
		if (c->crash_mode && rc == 0)
			rc = h_flush(b); /* acknowledged = durable */
		free(data);
		return rc;
	}
	case O_READ:
	do_read: {
		int i = pick(c, NULL);
		*touched = i;
		return 0; /* compare() reads the touched blob */
	}
	case O_RELOAD: {
		c->reloads++;
		int rc = 0;
		if (rnd(c) % 2) {
			rc = h_unload(c->bs);
		} else {
			blob_store_free(c->bs);
			h_spin(50);
		}
		c->bs = NULL;
		for (int i = 0; i < 1000 && bdev_io_outstanding(c->bd) > 0; i++)
			h_spin(1);
		int lrc = h_load(c->bd, &c->bs);
		if (!lrc)
			blob_store_set_clear_method(c->bs, c->clear);
		if (lrc) {
			if (c->crash_mode && bdev_fault_crashed(c->bd)) {
				c->bs = NULL;
				return lrc;
			}
			fprintf(stderr, "reload failed rc=%d\n", lrc);
			fail();
		}
		*touched = -2; /* compare all */
		return rc;
	}
	case O_INFLATE:
	case O_DECOUPLE: {
		int i = pick(c, NULL);
		struct mblob *mb = &m->b[i];
		*touched = i;
		if (mb->rdonly) {
			*want = -EPERM;
		} else {
			uint64_t need = 0;
			for (uint64_t lc = 0; lc < mb->n; lc++)
				if (!mb->c[lc] && (k == O_INFLATE || anc(m, i, lc)))
					need++;
			if (need > m->free) {
				*want = -ENOSPC;
			} else {
				for (uint64_t lc = 0; lc < mb->n; lc++) {
					if (mb->c[lc])
						continue;
					struct cbuf *a = anc(m, i, lc);
					if (k == O_INFLATE || a)
						mb->c[lc] = cb_derive(a);
				}
				m->free -= need;
				mb->parent = -1;
				if (k == O_INFLATE)
					mb->thin = false;
			}
		}
		return k == O_INFLATE ? h_inflate(real(c, i)) : h_decouple(real(c, i));
	}
	case O_RDONLY: {
		int i = pick(c, NULL);
		*touched = i;
		m->b[i].rdonly = true;
		struct h_wait w = {0};
		H_SYNC(blob_set_read_only(real(c, i), h_done_cb, &w), &w);
		return w.status;
	}
	case O_NKIND:
		break;
	}
	return 0;
}

static void ctx_start(struct ctx *c, uint64_t seed, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	assert_int_equal(bdev_fault_create(name, DEV_BYTES / BLK, BLK, &c->bd), 0);
	assert_int_equal(h_init(c->bd, CS, 25, &c->bs), 0);
	c->clear = seed % 3 == 0 ? BLOB_CLEAR_NONE : seed % 3 == 1 ? BLOB_CLEAR_UNMAP : BLOB_CLEAR_WRITE_ZEROES;
	blob_store_set_clear_method(c->bs, c->clear);
	c->m.free = blob_store_free_clusters(c->bs);
	for (int i = 0; i < MAXB; i++)
		c->m.b[i].parent = -1;
}

static void ctx_stop(struct ctx *c, const char *name)
{
	if (c->bs)
		assert_int_equal(h_unload(c->bs), 0);
	model_clear(&c->m);
	h_spin(20);
	assert_int_equal(bdev_fault_delete(name), 0);
}

static unsigned env_stress(void)
{
	const char *s = getenv("DISKENGINE_STRESS");
	return s && *s && strcmp(s, "0") != 0;
}

static void test_model(void **state)
{
	(void)state;
	unsigned seeds = env_stress() ? 24 : 20;
	unsigned nops = env_stress() ? 5000 : 1000 / MODEL_CI_DIV;
	unsigned long total_ops = 0, checks = 0, reloads = 0;
	for (unsigned seed = 1; seed <= seeds; seed++) {
		struct ctx c;
		ctx_start(&c, seed, "model");
		for (unsigned op = 0; op < nops; op++) {
			struct model next;
			model_copy(&next, &c.m);
			int want = 0, touched = -1;
			int rc = do_op(&c, &next, &want, &touched);
			if (rc != want) {
				fprintf(stderr, "seed=%u op=%u: status %d, model says %d\n", seed, op, rc, want);
				fail();
			}
			if (rc == 0) {
				model_clear(&c.m);
				c.m = next;
			} else {
				model_clear(&next);
			}
			int bad = compare(&c, &c.m, NULL, touched == -2 || op % 100 == 99, touched);
			if (bad) {
				fprintf(stderr, "seed=%u op=%u: store differs from model (check at line %d)\n",
					seed, op, bad);
				fail();
			}
		}
		total_ops += c.ops;
		checks += c.checks;
		reloads += c.reloads;
		ctx_stop(&c, "model");
	}
	printf("model test: seeds=%u ops_per_seed=%u total_ops=%lu reloads=%lu state_checks=%lu%s\n", seeds,
	       nops, total_ops, reloads, checks, env_stress() ? " (stress)" : " (CI size; DISKENGINE_STRESS=1 for full)");
}

static void test_crash(void **state)
{
	(void)state;
	unsigned points = env_stress() ? 2500 : 600 / MODEL_CI_DIV;
	unsigned seeds = env_stress() ? 10 : 3;
	unsigned long done_points = 0, ops = 0, interrupted_applied = 0, interrupted_absent = 0, dirty = 0;
	for (unsigned seed = 1; seed <= seeds; seed++) {
		struct ctx c;
		ctx_start(&c, 1000 + seed, "crash");
		c.crash_mode = true;
		for (unsigned p = 0; p < points / seeds; p++) {
			struct bdev_fault_opts fo = {0};
			fo.crash_after_writes = 1 + rnd(&c) % 24;
			fo.torn_writes = rnd(&c) % 4 == 0;
			assert_int_equal(bdev_fault_configure(c.bd, &fo), 0);
			struct model next;
			int rc = 0, want = 0, touched = -1;
			bool crashed = false;
			for (unsigned i = 0; i < 40 && !crashed; i++) {
				model_copy(&next, &c.m);
				rc = do_op(&c, &next, &want, &touched);
				crashed = bdev_fault_crashed(c.bd);
				if (!crashed || rc == 0) {
					/* acknowledged (or refused before any I/O) */
					if (rc != want) {
						fprintf(stderr, "crash seed=%u point=%u: status %d, model %d\n", seed, p, rc, want);
						fail();
					}
					if (rc == 0) {
						model_clear(&c.m);
						c.m = next;
						memset(&next, 0, sizeof(next));
					} else {
						model_clear(&next);
					}
				}
				if (!crashed) {
					int bad = compare(&c, &c.m, NULL, getenv("BLOB_DEBUG_ALL") != NULL, touched);
					if (bad) {
						fprintf(stderr, "crash seed=%u point=%u: mismatch line %d op kind %d touched %d\n", seed, p, bad, c.last_kind, touched);
						fail();
					}
				}
			}
			if (!crashed) {
				/* force one: the next write hits the crash */
				fo.crash_after_writes = 1;
				assert_int_equal(bdev_fault_configure(c.bd, &fo), 0);
				model_copy(&next, &c.m);
				struct mblob *mb = &next.b[free_slot(&next)];
				memset(mb, 0, sizeof(*mb));
				mb->live = true;
				mb->id = ID_UNKNOWN;
				mb->thin = true;
				mb->parent = -1;
				want = 0;
				rc = c.bs ? h_create(c.bs, 0, true, NULL) : -EIO;
				assert_true(bdev_fault_crashed(c.bd));
				if (rc == 0) {
					fprintf(stderr, "create acknowledged on a crashed device\n");
					fail();
				}
			}
			/* power loss, then reload */
			if (c.bs) {
				blob_store_free(c.bs);
				c.bs = NULL;
			}
			for (int i = 0; i < 1000 && bdev_io_outstanding(c.bd) > 0; i++)
				h_spin(1);
			h_spin(10);
			double keep = (double)(rnd(&c) % 3) / 2.0;
			assert_int_equal(bdev_fault_power_loss(c.bd, keep, rnd(&c)), 0);
			int lrc = h_load(c.bd, &c.bs);
			if (!lrc)
				blob_store_set_clear_method(c.bs, c.clear);
			if (lrc) {
				fprintf(stderr, "crash seed=%u point=%u: reload failed rc=%d\n", seed, p, lrc);
				fail();
			}
			dirty += blob_store_was_dirty(c.bs);
			done_points++;
			/* interrupted op: either fully there (next) or not at all (c.m) */
			if (rc != 0) {
				struct model alt;
				model_copy(&alt, &next);
				int bad_next = compare(&c, &alt, &c.m, true, -1);
				if (!bad_next) {
					model_clear(&c.m);
					c.m = alt;
					interrupted_applied++;
				} else {
					model_clear(&alt);
					int bad_prev = compare(&c, &c.m, &next, true, -1);
					if (bad_prev) {
						fprintf(stderr, "crash seed=%u point=%u: store matches neither the state "
							"before (line %d) nor after (line %d) the interrupted op\n",
							seed, p, bad_prev, bad_next);
						fail();
					}
					interrupted_absent++;
				}
				model_clear(&next);
			} else {
				int bad = compare(&c, &c.m, NULL, true, -1);
				if (bad) {
					fprintf(stderr, "crash seed=%u point=%u: acknowledged state lost (line %d)\n",
						seed, p, bad);
					fail();
				}
			}
			ops += c.ops;
			c.ops = 0;
		}
		ctx_stop(&c, "crash");
	}
	printf("crash test: seeds=%u crash_points=%lu ops=%lu dirty_loads=%lu interrupted_op_applied=%lu "
	       "interrupted_op_absent=%lu%s\n", seeds, done_points, ops, dirty, interrupted_applied,
	       interrupted_absent, env_stress() ? " (stress)" : " (CI size; DISKENGINE_STRESS=1 for full)");
}

/* ------------------------------------------------ pipelined crashes */

/* One operation of a concurrent batch. */
struct pop {
	int kind;            /* 0 create, 1 delete, 2 resize */
	uint64_t key;        /* create: xattr "k" */
	uint64_t id;         /* delete/resize target */
	uint64_t n;          /* create/resize size */
	bool thin;
	bool done;
	int status;
	struct blob *res;
};

static void pop_done(void *arg, int status)
{
	struct pop *p = arg;
	p->status = status;
	p->done = true;
}

static void pop_blob_done(void *arg, struct blob *b, int status)
{
	struct pop *p = arg;
	p->res = b;
	p->status = status;
	p->done = true;
}

static uint64_t blob_key(const struct blob *b)
{
	uint32_t len = 0;
	const void *v = blob_xattr_get(b, "k", &len);
	uint64_t k = 0;
	if (v && len == sizeof(k))
		memcpy(&k, v, sizeof(k));
	return k;
}

/* Up to 48 creates / deletes / resizes in flight when the power fails:
 * after the reload, every acknowledged one is there, every other one is
 * either completely there or not at all, and the store checks clean. */
static void test_crash_pipelined(void **state)
{
	(void)state;
	unsigned rounds = env_stress() ? 600 : 150 / MODEL_CI_DIV;
	struct ctx c;
	ctx_start(&c, 77, "pcrash");
	uint64_t next_key = 1;
	unsigned long acked = 0, unacked_applied = 0, unacked_absent = 0;
	for (unsigned r = 0; r < rounds; r++) {
		struct pop ops[48];
		unsigned nops = 8 + (unsigned)(rnd(&c) % 40);
		memset(ops, 0, sizeof(ops));
		/* targets: distinct existing blobs */
		struct blob *cand[256];
		unsigned ncand = 0;
		for (struct blob *b = blob_first(c.bs); b && ncand < 256; b = blob_next(b))
			cand[ncand++] = b;
		struct bdev_fault_opts fo = {0};
		fo.crash_after_writes = 1 + rnd(&c) % 40;
		fo.torn_writes = rnd(&c) % 3 == 0;
		assert_int_equal(bdev_fault_configure(c.bd, &fo), 0);
		for (unsigned i = 0; i < nops; i++) {
			struct pop *p = &ops[i];
			unsigned k = (unsigned)(rnd(&c) % 3);
			if (k != 0 && ncand == 0)
				k = 0;
			if (ncand > 40)
				k = 1 + (unsigned)(rnd(&c) % 2);
			p->kind = (int)k;
			int rc;
			if (k == 0) {
				p->key = next_key++;
				p->n = rnd(&c) % 4;
				p->thin = rnd(&c) % 2;
				struct blob_xattr x = { .name = "k", .value = &p->key, .len = sizeof(p->key) };
				struct blob_create_opts o = { .num_clusters = p->n, .thin = p->thin, .xattrs = &x, .num_xattrs = 1 };
				rc = blob_create(c.bs, &o, pop_blob_done, p);
			} else {
				unsigned j = (unsigned)(rnd(&c) % ncand);
				struct blob *b = cand[j];
				cand[j] = cand[--ncand]; /* one op per blob */
				p->id = blob_id(b);
				p->key = blob_key(b);
				if (k == 1) {
					rc = blob_delete(b, pop_done, p);
				} else {
					p->n = rnd(&c) % 6;
					rc = blob_resize(b, p->n, pop_done, p);
				}
			}
			if (rc) {
				p->done = true;
				p->status = rc;
			}
		}
		for (;;) {
			bool all = true;
			for (unsigned i = 0; i < nops; i++)
				all = all && ops[i].done;
			if (all)
				break;
			ev_loop_run_once(h_loop, 1);
		}
		/* power loss (or not: then everything acknowledged must be there) */
		blob_store_free(c.bs);
		c.bs = NULL;
		for (int i = 0; i < 1000 && bdev_io_outstanding(c.bd) > 0; i++)
			h_spin(1);
		h_spin(10);
		double keep = (double)(rnd(&c) % 3) / 2.0;
		assert_int_equal(bdev_fault_power_loss(c.bd, keep, rnd(&c)), 0);
		int lrc = h_load(c.bd, &c.bs);
		if (!lrc)
			blob_store_set_clear_method(c.bs, c.clear);
		if (lrc) {
			fprintf(stderr, "pipelined crash round %u: reload failed %d\n", r, lrc);
			fail();
		}
		assert_int_equal(blob_store_check(c.bs), 0);
		for (unsigned i = 0; i < nops; i++) {
			struct pop *p = &ops[i];
			unsigned found = 0;
			struct blob *hit = NULL;
			for (struct blob *b = blob_first(c.bs); b; b = blob_next(b))
				if (blob_key(b) == p->key) {
					found++;
					hit = b;
				}
			bool ok;
			bool applied;
			if (p->kind == 0) {
				applied = found == 1;
				ok = found <= 1 && (!applied || (blob_num_clusters(hit) == p->n &&
								 blob_is_thin(hit) == p->thin));
			} else if (p->kind == 1) {
				applied = found == 0;
				ok = found <= 1;
			} else {
				applied = found == 1 && blob_num_clusters(hit) == p->n;
				ok = found == 1;
			}
			if (p->status == 0 && !applied)
				ok = false;
			if (!ok) {
				fprintf(stderr, "pipelined crash round %u op %u kind %d status %d: found %u\n", r, i,
					p->kind, p->status, found);
				fail();
			}
			if (p->status == 0)
				acked++;
			else if (applied)
				unacked_applied++;
			else
				unacked_absent++;
		}
	}
	c.m.free = blob_store_free_clusters(c.bs);
	ctx_stop(&c, "pcrash");
	printf("pipelined crash test: rounds(crash points)=%u ops_acknowledged=%lu unacknowledged_applied=%lu "
	       "unacknowledged_absent=%lu%s\n", rounds, acked, unacked_applied, unacked_absent,
	       env_stress() ? " (stress)" : " (CI size)");
}

static int setup(void **state)
{
	(void)state;
	h_setup();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_pipelined, setup, teardown),
	};
	h_unused();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
