/*
 * lvol.c: logical volume stores and logical volumes on the blobstore, with
 * SPDK's names, UUIDs, rules and error split (see lvol.h). An lvol is a blob
 * with the xattrs "name" and "uuid", registered as a bdev; an lvstore is a
 * blobstore whose super block carries the store's name and UUID.
 */
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "blob/blob.h"
#include "lvol/lvol.h"

#define MOD "lvol"

struct lvol_store {
	struct blob_store *bs;
	struct bdev *base;
	char uuid[COMMON_UUID_STR_LEN];
	char name[LVOL_NAME_MAX];
	char base_name[BDEV_NAME_MAX];
	struct lvol *first, *last;
	unsigned nlvols;
	struct pending_name *pending;
	struct lvol_store *prev, *next;
	unsigned nops;      /* lvol operations in flight */
	bool closing;
};

struct lvol {
	struct lvol_store *lvs;
	struct blob *blob;
	struct bdev *bdev;
	char uuid[COMMON_UUID_STR_LEN];
	char name[LVOL_NAME_MAX];
	char alias[LVOL_ALIAS_MAX];
	struct lvol *prev, *next;
	uint64_t create_seq;  /* listing order (blob's, kept here) */
	bool deleting;
};

/* names reserved by operations in flight (create, snapshot, clone, rename) */
struct pending_name {
	char name[LVOL_NAME_MAX];
	struct pending_name *next;
};

/* a store being created: its name is taken */
struct pending_store {
	char name[LVOL_NAME_MAX];
	struct pending_store *next;
};

static struct {
	bool init;
	struct lvol_store *first, *last;
	struct pending_store *pending;
	lvol_bdev_remove_fn remove_fn;
	void *remove_arg;
} g;

static int lvol_bdev_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset, uint64_t len,
			    bdev_io_cb cb, void *cb_arg);
static const struct bdev_ops lvol_bdev_ops = {
	.submit = lvol_bdev_submit,
	.destroy = NULL,
};

/* ------------------------------------------------------------ helpers */

int lvol_clear_method_parse(const char *s, enum lvol_clear_method *out)
{
	if (strcmp(s, "none") == 0)
		*out = LVOL_CLEAR_NONE;
	else if (strcmp(s, "unmap") == 0)
		*out = LVOL_CLEAR_UNMAP;
	else if (strcmp(s, "write_zeroes") == 0)
		*out = LVOL_CLEAR_WRITE_ZEROES;
	else
		return -EINVAL;
	return 0;
}

static bool name_ok(const char *name)
{
	return name && name[0] && strlen(name) < LVOL_NAME_MAX;
}

struct defer_ctx {
	lvol_done_cb done;
	lvol_cb lcb;
	lvol_store_cb scb;
	void *arg;
	int status;
};

static void defer_run(struct ev_loop *loop, void *arg)
{
	(void)loop;
	struct defer_ctx *d = arg;
	if (d->done)
		d->done(d->arg, d->status);
	else if (d->lcb)
		d->lcb(d->arg, NULL, d->status);
	else if (d->scb)
		d->scb(d->arg, NULL, d->status);
	mem_free(d);
}

/* Report an asynchronous error from the loop. */
static int defer_error(lvol_done_cb done, lvol_cb lcb, void *arg, int status)
{
	struct defer_ctx *d = mem_zalloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->done = done;
	d->lcb = lcb;
	d->arg = arg;
	d->status = status;
	if (ev_defer(bdev_module_loop(), defer_run, d) != 0) {
		mem_free(d);
		return -ENOMEM;
	}
	return 0;
}

static struct lvol *lookup_name(const struct lvol_store *lvs, const char *name)
{
	char alias[LVOL_ALIAS_MAX];
	snprintf(alias, sizeof(alias), "%s/%s", lvs->name, name);
	struct bdev *b = bdev_find(alias);
	struct lvol *l = b ? lvol_from_bdev(b) : NULL;
	if (l && l->lvs == lvs && strcmp(l->name, name) == 0)
		return l;
	return NULL; /* every usable lvol has its alias registered */
}

static bool name_taken(const struct lvol_store *lvs, const char *name)
{
	if (lookup_name(lvs, name))
		return true;
	for (struct pending_name *p = lvs->pending; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return true;
	return false;
}

static int reserve_name(struct lvol_store *lvs, const char *name)
{
	struct pending_name *p = mem_zalloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->next = lvs->pending;
	lvs->pending = p;
	return 0;
}

static void release_name(struct lvol_store *lvs, const char *name)
{
	for (struct pending_name **pp = &lvs->pending; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct pending_name *p = *pp;
			*pp = p->next;
			mem_free(p);
			return;
		}
	}
}

static bool store_name_taken(const char *name)
{
	for (struct lvol_store *s = g.first; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return true;
	for (struct pending_store *p = g.pending; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return true;
	return false;
}

static void store_link(struct lvol_store *lvs)
{
	lvs->prev = g.last;
	if (g.last)
		g.last->next = lvs;
	else
		g.first = lvs;
	g.last = lvs;
}

static void store_unlink(struct lvol_store *lvs)
{
	if (lvs->prev)
		lvs->prev->next = lvs->next;
	else
		g.first = lvs->next;
	if (lvs->next)
		lvs->next->prev = lvs->prev;
	else
		g.last = lvs->prev;
}

/* Insert in creation order (blob create_seq); usually at the tail. */
static void lvol_link(struct lvol_store *lvs, struct lvol *l)
{
	uint64_t key = l->create_seq;
	struct lvol *after = lvs->last;
	while (after && after->create_seq > key)
		after = after->prev;
	l->prev = after;
	l->next = after ? after->next : lvs->first;
	if (l->next)
		l->next->prev = l;
	else
		lvs->last = l;
	if (after)
		after->next = l;
	else
		lvs->first = l;
	lvs->nlvols++;
}

static void lvol_unlink(struct lvol *l)
{
	struct lvol_store *lvs = l->lvs;
	if (l->prev)
		l->prev->next = l->next;
	else
		lvs->first = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		lvs->last = l->prev;
	lvs->nlvols--;
}

static uint64_t lvol_size_bytes(const struct lvol *l)
{
	return blob_num_clusters(l->blob) * blob_store_cluster_size(l->lvs->bs);
}

static void bdev_drop(struct lvol *l)
{
	if (!l->bdev)
		return;
	if (bdev_claim_type(l->bdev) != BDEV_CLAIM_NONE && g.remove_fn)
		g.remove_fn(l->bdev, g.remove_arg);
	if (bdev_claim_type(l->bdev) != BDEV_CLAIM_NONE)
		bdev_release(l->bdev);
	int rc = bdev_unregister(l->bdev);
	if (rc)
		LOG_ERROR(MOD, "cannot unregister lvol bdev name=%s rc=%d", l->uuid, rc);
	l->bdev = NULL;
}

static int bdev_make(struct lvol *l)
{
	struct bdev_params p = {
		.name = l->uuid,
		.uuid = l->uuid,
		.product_name = LVOL_PRODUCT_NAME,
		.block_size = blob_store_io_unit(l->lvs->bs),
		.num_blocks = lvol_size_bytes(l) / blob_store_io_unit(l->lvs->bs),
		.thin = blob_is_thin(l->blob),
		.ops = &lvol_bdev_ops,
		.ctx = l,
	};
	int rc = bdev_register(&p, &l->bdev);
	if (rc) {
		l->bdev = NULL;
		LOG_ERROR(MOD, "cannot register lvol bdev name=%s rc=%d", l->uuid, rc);
		return rc;
	}
	rc = bdev_alias_add(l->bdev, l->alias);
	if (rc)
		LOG_WARN(MOD, "cannot add alias alias=%s rc=%d", l->alias, rc);
	return 0;
}

static void set_alias(struct lvol *l)
{
	snprintf(l->alias, sizeof(l->alias), "%s/%s", l->lvs->name, l->name);
}

/* New lvol object for a blob carrying name/uuid xattrs; bdev registered. */
static struct lvol *lvol_attach(struct lvol_store *lvs, struct blob *blob)
{
	uint32_t nl = 0, ul = 0;
	const char *name = blob_xattr_get(blob, "name", &nl);
	const char *uuid = blob_xattr_get(blob, "uuid", &ul);
	if (!name || !uuid || nl == 0 || nl >= LVOL_NAME_MAX || ul != COMMON_UUID_STR_LEN - 1)
		return NULL;
	struct lvol *l = mem_zalloc(sizeof(*l));
	if (!l)
		return NULL;
	l->lvs = lvs;
	l->blob = blob;
	memcpy(l->name, name, nl);
	memcpy(l->uuid, uuid, ul);
	set_alias(l);
	l->create_seq = blob_create_seq(blob);
	blob_set_ctx(blob, l);
	lvol_link(lvs, l);
	(void)bdev_make(l);
	return l;
}

static void lvol_free(struct lvol *l)
{
	if (!l)
		return;
	bdev_drop(l);
	lvol_unlink(l);
	if (l->blob)
		blob_set_ctx(l->blob, NULL);
	mem_free(l);
}

static void store_free(struct lvol_store *lvs)
{
	while (lvs->first)
		lvol_free(lvs->first);
	while (lvs->pending) {
		struct pending_name *p = lvs->pending;
		lvs->pending = p->next;
		mem_free(p);
	}
	mem_free(lvs);
}

/* ------------------------------------------------------------ bdev I/O */

static int lvol_bdev_submit(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset, uint64_t len,
			    bdev_io_cb cb, void *cb_arg)
{
	struct lvol *l = ctx;
	if (l->deleting || !l->blob)
		return -ENODEV;
	switch (type) {
	case BDEV_IO_READ:
		return blob_read(l->blob, buf, offset, len, cb, cb_arg);
	case BDEV_IO_WRITE:
		return blob_write(l->blob, buf, offset, len, cb, cb_arg);
	case BDEV_IO_WRITE_ZEROES:
		return blob_write_zeroes(l->blob, offset, len, cb, cb_arg);
	case BDEV_IO_UNMAP:
		return blob_unmap(l->blob, offset, len, cb, cb_arg);
	case BDEV_IO_FLUSH:
		return blob_flush(l->blob, cb, cb_arg);
	}
	return -EINVAL;
}

/* ------------------------------------------------------------ module */

static void examine_loaded(void *arg, struct blob_store *bs, int status);

#define EXAMINE_MAX 64
static struct bdev *examining[EXAMINE_MAX];

static bool examining_del(struct bdev *bdev)
{
	for (unsigned i = 0; i < EXAMINE_MAX; i++) {
		if (examining[i] == bdev) {
			examining[i] = NULL;
			return true;
		}
	}
	return false;
}

static void lvol_examine(struct bdev *bdev, void *arg)
{
	(void)arg;
	bool busy = false;
	int slot = -1;
	for (int i = 0; i < EXAMINE_MAX; i++) {
		if (examining[i] == bdev)
			busy = true;
		if (!examining[i] && slot < 0)
			slot = i;
	}
	if (!g.init || busy || slot < 0 || lvol_from_bdev(bdev) || bdev_claim_type(bdev) != BDEV_CLAIM_NONE) {
		bdev_examine_done(bdev);
		return;
	}
	examining[slot] = bdev;
	int rc = blob_store_load(bdev, examine_loaded, bdev);
	if (rc) {
		examining[slot] = NULL;
		bdev_examine_done(bdev);
	}
}

static void examine_loaded(void *arg, struct blob_store *bs, int status)
{
	struct bdev *bdev = arg;
	(void)examining_del(bdev);
	if (status) {
		if (status != -EILSEQ)
			LOG_WARN(MOD, "examine: store on bdev=%s did not load status=%d", bdev_name(bdev), status);
		bdev_examine_done(bdev);
		return;
	}
	const char *name = blob_store_name(bs);
	if (!name_ok(name) || store_name_taken(name) ||
	    bdev_claim(bdev, BDEV_CLAIM_EXCL_WRITE, LVOL_MODULE_NAME) != 0) {
		LOG_ERROR(MOD, "examine: store on bdev=%s not opened (name clash or claimed) name=%s",
			  bdev_name(bdev), name);
		blob_store_free(bs);
		bdev_examine_done(bdev);
		return;
	}
	struct lvol_store *lvs = mem_zalloc(sizeof(*lvs));
	if (!lvs) {
		bdev_release(bdev);
		blob_store_free(bs);
		bdev_examine_done(bdev);
		return;
	}
	lvs->bs = bs;
	lvs->base = bdev;
	blob_store_set_clear_method(bs, BLOB_CLEAR_UNMAP); /* SPDK's default; not persisted */
	snprintf(lvs->name, sizeof(lvs->name), "%s", name);
	snprintf(lvs->base_name, sizeof(lvs->base_name), "%s", bdev_name(bdev));
	common_uuid_unparse(blob_store_uuid(bs), lvs->uuid);
	store_link(lvs);
	for (struct blob *b = blob_first(bs); b; b = blob_next(b))
		(void)lvol_attach(lvs, b);
	LOG_INFO(MOD, "lvstore loaded name=%s uuid=%s bdev=%s lvols=%u", lvs->name, lvs->uuid,
		 bdev_name(bdev), lvs->nlvols);
	bdev_examine_done(bdev);
}

/* bdev_module_init() forgets hooks, bdev_module_fini() does not: register
 * on every init; a second hook on the same bdev module is harmless because
 * examine skips bdevs already being loaded or claimed. */
int lvol_module_init(void)
{
	if (g.init)
		return 0;
	int rc = bdev_examine_register(lvol_examine, NULL);
	if (rc)
		return rc;
	g.init = true;
	return 0;
}

void lvol_module_set_remove_hook(lvol_bdev_remove_fn fn, void *arg)
{
	g.remove_fn = fn;
	g.remove_arg = arg;
}

void lvol_module_fini(void)
{
	while (g.first) {
		struct lvol_store *lvs = g.first;
		store_unlink(lvs);
		struct blob_store *bs = lvs->bs;
		struct bdev *base = lvs->base;
		store_free(lvs);
		blob_store_free(bs);
		if (bdev_claim_type(base) != BDEV_CLAIM_NONE)
			bdev_release(base);
	}
	while (g.pending) {
		struct pending_store *p = g.pending;
		g.pending = p->next;
		mem_free(p);
	}
	g.init = false; /* examine stays registered with the bdev module */
}

struct unload_all_ctx {
	lvol_done_cb cb;
	void *arg;
	int status;
};

static void unload_all_next(void *arg, int status)
{
	struct unload_all_ctx *u = arg;
	if (status && !u->status)
		u->status = status;
	struct lvol_store *lvs = g.first;
	while (lvs && lvs->closing)
		lvs = lvs->next;
	if (!lvs) {
		lvol_done_cb cb = u->cb;
		void *cb_arg = u->arg;
		int st = u->status;
		mem_free(u);
		cb(cb_arg, st);
		return;
	}
	int rc = lvol_store_unload(lvs, unload_all_next, u);
	if (rc)
		unload_all_next(u, rc);
}

int lvol_module_unload_all(lvol_done_cb cb, void *cb_arg)
{
	struct unload_all_ctx *u = mem_zalloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->cb = cb;
	u->arg = cb_arg;
	/* always complete from the loop */
	struct defer_ctx *d = mem_zalloc(sizeof(*d));
	if (!d) {
		mem_free(u);
		return -ENOMEM;
	}
	d->done = unload_all_next;
	d->arg = u;
	if (ev_defer(bdev_module_loop(), defer_run, d) != 0) {
		mem_free(d);
		mem_free(u);
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------ lvstore */

struct lvs_create_ctx {
	enum blob_clear_method clear;
	struct bdev *bdev;
	char name[LVOL_NAME_MAX];
	char uuid[COMMON_UUID_STR_LEN];
	lvol_store_cb cb;
	void *arg;
};

static void lvs_created(void *arg, struct blob_store *bs, int status)
{
	struct lvs_create_ctx *c = arg;
	for (struct pending_store **pp = &g.pending; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, c->name) == 0) {
			struct pending_store *p = *pp;
			*pp = p->next;
			mem_free(p);
			break;
		}
	}
	struct lvol_store *lvs = NULL;
	if (status == 0) {
		lvs = mem_zalloc(sizeof(*lvs));
		if (!lvs) {
			blob_store_free(bs);
			status = -ENOMEM;
		}
	}
	if (status) {
		bdev_release(c->bdev);
		c->cb(c->arg, NULL, status);
		mem_free(c);
		return;
	}
	lvs->bs = bs;
	lvs->base = c->bdev;
	blob_store_set_clear_method(bs, c->clear);
	snprintf(lvs->name, sizeof(lvs->name), "%s", c->name);
	snprintf(lvs->uuid, sizeof(lvs->uuid), "%s", c->uuid);
	snprintf(lvs->base_name, sizeof(lvs->base_name), "%s", bdev_name(c->bdev));
	store_link(lvs);
	LOG_INFO(MOD, "lvstore created name=%s uuid=%s bdev=%s data_clusters=%llu", lvs->name, lvs->uuid,
		 lvs->base_name, (unsigned long long)blob_store_total_data_clusters(bs));
	c->cb(c->arg, lvs, 0);
	mem_free(c);
}

int lvol_store_create(const struct lvol_store_opts *opts, lvol_store_cb cb, void *cb_arg)
{
	if (!opts || !opts->bdev_name)
		return -EINVAL;
	struct bdev *bdev = bdev_find(opts->bdev_name);
	if (!bdev)
		return -ENODEV;
	if (!name_ok(opts->name))
		return -EINVAL;
	if (store_name_taken(opts->name))
		return -EEXIST;
	if (bdev_claim_type(bdev) != BDEV_CLAIM_NONE)
		return -EPERM;
	uint64_t cs = opts->cluster_size ? opts->cluster_size : LVOL_DEFAULT_CLUSTER_SIZE;
	if (cs < 4096 || (cs & (cs - 1)) || cs < bdev_block_size(bdev))
		return -EINVAL;
	struct lvs_create_ctx *c = mem_zalloc(sizeof(*c));
	struct pending_store *p = mem_zalloc(sizeof(*p));
	if (!c || !p) {
		mem_free(c);
		mem_free(p);
		return -ENOMEM;
	}
	c->bdev = bdev;
	c->cb = cb;
	c->arg = cb_arg;
	c->clear = opts->clear_method == LVOL_CLEAR_NONE ? BLOB_CLEAR_NONE
		   : opts->clear_method == LVOL_CLEAR_WRITE_ZEROES ? BLOB_CLEAR_WRITE_ZEROES : BLOB_CLEAR_UNMAP;
	snprintf(c->name, sizeof(c->name), "%s", opts->name);
	common_uuid_generate(c->uuid);
	struct blob_store_opts bo;
	memset(&bo, 0, sizeof(bo));
	bo.cluster_size = cs;
	bo.md_pages_ratio = opts->md_pages_per_cluster_ratio;
	(void)common_uuid_parse(c->uuid, bo.uuid);
	snprintf(bo.name, sizeof(bo.name), "%s", opts->name);
	int rc = bdev_claim(bdev, BDEV_CLAIM_EXCL_WRITE, LVOL_MODULE_NAME);
	if (rc) {
		mem_free(c);
		mem_free(p);
		return -EPERM;
	}
	rc = blob_store_init(bdev, &bo, lvs_created, c);
	if (rc == -ENOSPC) {
		/* SPDK reports a device too small from the completion */
		mem_free(c);
		mem_free(p);
		bdev_release(bdev);
		struct defer_ctx *d = mem_zalloc(sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->scb = cb;
		d->arg = cb_arg;
		d->status = -ENOSPC;
		if (ev_defer(bdev_module_loop(), defer_run, d) != 0) {
			mem_free(d);
			return -ENOMEM;
		}
		return 0;
	}
	if (rc) {
		bdev_release(bdev);
		mem_free(c);
		mem_free(p);
		return rc;
	}
	snprintf(p->name, sizeof(p->name), "%s", opts->name);
	p->next = g.pending;
	g.pending = p;
	return 0;
}

struct lvs_close_ctx {
	struct lvol_store *lvs;
	lvol_done_cb cb;
	void *arg;
	bool destroy;
	struct ev_timer *timer;
};

static void lvs_closed(void *arg, int status)
{
	struct lvs_close_ctx *c = arg;
	struct lvol_store *lvs = c->lvs;
	struct bdev *base = lvs->base;
	if (bdev_claim_type(base) != BDEV_CLAIM_NONE)
		bdev_release(base);
	LOG_INFO(MOD, "lvstore %s name=%s uuid=%s status=%d", c->destroy ? "destroyed" : "unloaded",
		 lvs->name, lvs->uuid, status);
	lvs->bs = NULL;
	store_free(lvs);
	lvol_done_cb cb = c->cb;
	void *cb_arg = c->arg;
	mem_free(c);
	cb(cb_arg, status);
}

static bool store_io_idle(const struct lvol_store *lvs)
{
	for (const struct lvol *l = lvs->first; l; l = l->next)
		if (l->bdev && bdev_io_outstanding(l->bdev) > 0)
			return false;
	return true;
}

static void lvs_close_go(struct ev_loop *loop, struct ev_timer *timer, void *arg)
{
	(void)loop;
	(void)timer;
	struct lvs_close_ctx *c = arg;
	struct lvol_store *lvs = c->lvs;
	/* operations in flight finish first (they reference the store) */
	if (!store_io_idle(lvs) || lvs->nops > 0) {
		if (ev_timer_start(bdev_module_loop(), 1, 0, lvs_close_go, c, NULL) == 0)
			return;
	}
	struct blob_store *bs = lvs->bs;
	while (lvs->first)
		lvol_free(lvs->first);
	int rc = c->destroy ? blob_store_destroy(bs, lvs_closed, c) : blob_store_unload(bs, lvs_closed, c);
	if (rc) {
		blob_store_free(bs);
		lvs_closed(c, rc);
	}
}

static int lvs_close(struct lvol_store *lvs, bool destroy, lvol_done_cb cb, void *cb_arg)
{
	if (lvs->closing)
		return -EBUSY;
	struct lvs_close_ctx *c = mem_zalloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->lvs = lvs;
	c->cb = cb;
	c->arg = cb_arg;
	c->destroy = destroy;
	lvs->closing = true;
	store_unlink(lvs);
	for (struct lvol *l = lvs->first; l; l = l->next)
		l->deleting = true; /* refuse new I/O */
	if (ev_timer_start(bdev_module_loop(), 0, 0, lvs_close_go, c, NULL) != 0) {
		lvs->closing = false;
		store_link(lvs);
		for (struct lvol *l = lvs->first; l; l = l->next)
			l->deleting = false;
		mem_free(c);
		return -ENOMEM;
	}
	return 0;
}

int lvol_store_destroy(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg)
{
	return lvs_close(lvs, true, cb, cb_arg);
}

int lvol_store_unload(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg)
{
	return lvs_close(lvs, false, cb, cb_arg);
}

struct lvs_rename_ctx {
	struct lvol_store *lvs;
	char name[LVOL_NAME_MAX];
	lvol_done_cb cb;
	void *arg;
};

static void lvs_renamed(void *arg, int status)
{
	struct lvs_rename_ctx *c = arg;
	struct lvol_store *lvs = c->lvs;
	for (struct pending_store **pp = &g.pending; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, c->name) == 0) {
			struct pending_store *p = *pp;
			*pp = p->next;
			mem_free(p);
			break;
		}
	}
	if (status == 0) {
		snprintf(lvs->name, sizeof(lvs->name), "%s", c->name);
		for (struct lvol *l = lvs->first; l; l = l->next) {
			if (l->bdev)
				(void)bdev_alias_del(l->bdev, l->alias);
			set_alias(l);
			if (l->bdev)
				(void)bdev_alias_add(l->bdev, l->alias);
		}
	}
	lvol_done_cb cb = c->cb;
	void *cb_arg = c->arg;
	mem_free(c);
	cb(cb_arg, status);
}

int lvol_store_rename(struct lvol_store *lvs, const char *new_name, lvol_done_cb cb, void *cb_arg)
{
	if (!name_ok(new_name))
		return -EINVAL;
	if (strcmp(lvs->name, new_name) == 0)
		return defer_error(cb, NULL, cb_arg, 0);
	if (store_name_taken(new_name))
		return defer_error(cb, NULL, cb_arg, -EEXIST);
	struct lvs_rename_ctx *c = mem_zalloc(sizeof(*c));
	struct pending_store *p = mem_zalloc(sizeof(*p));
	if (!c || !p) {
		mem_free(c);
		mem_free(p);
		return -ENOMEM;
	}
	c->lvs = lvs;
	c->cb = cb;
	c->arg = cb_arg;
	snprintf(c->name, sizeof(c->name), "%s", new_name);
	int rc = blob_store_set_name(lvs->bs, new_name, lvs_renamed, c);
	if (rc) {
		mem_free(c);
		mem_free(p);
		return rc;
	}
	snprintf(p->name, sizeof(p->name), "%s", new_name);
	p->next = g.pending;
	g.pending = p;
	return 0;
}

int lvol_store_grow(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg)
{
	return blob_store_grow(lvs->bs, cb, cb_arg);
}

struct lvol_store *lvol_store_find_by_name(const char *name)
{
	if (!name)
		return NULL;
	for (struct lvol_store *s = g.first; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

struct lvol_store *lvol_store_find_by_uuid(const char *uuid)
{
	if (!uuid)
		return NULL;
	for (struct lvol_store *s = g.first; s; s = s->next)
		if (strcasecmp(s->uuid, uuid) == 0)
			return s;
	return NULL;
}

struct lvol_store *lvol_store_first(void) { return g.first; }
struct lvol_store *lvol_store_next(const struct lvol_store *lvs) { return lvs->next; }

void lvol_store_get_info(const struct lvol_store *lvs, struct lvol_store_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, lvs->uuid, sizeof(out->uuid));
	out->name = lvs->name;
	out->base_bdev = lvs->base_name;
	out->total_data_clusters = blob_store_total_data_clusters(lvs->bs);
	out->free_clusters = blob_store_free_clusters(lvs->bs);
	out->block_size = blob_store_io_unit(lvs->bs);
	out->cluster_size = blob_store_cluster_size(lvs->bs);
	out->max_growable_size = blob_store_max_growable_size(lvs->bs);
}

const char *lvol_store_name(const struct lvol_store *lvs) { return lvs->name; }
const char *lvol_store_uuid(const struct lvol_store *lvs) { return lvs->uuid; }
struct bdev *lvol_store_base_bdev(const struct lvol_store *lvs) { return lvs->base; }
uint64_t lvol_store_cluster_size(const struct lvol_store *lvs) { return blob_store_cluster_size(lvs->bs); }
unsigned lvol_store_lvol_count(const struct lvol_store *lvs) { return lvs->nlvols; }

/* --------------------------------------------------------------- lvol */

struct lvol_op {
	struct lvol_store *lvs;
	struct lvol *lvol;
	char name[LVOL_NAME_MAX];
	char uuid[COMMON_UUID_STR_LEN];
	bool reserved;
	lvol_cb lcb;
	lvol_done_cb done;
	void *arg;
	uint64_t size;
};

static struct lvol_op *op_new(struct lvol_store *lvs, const char *name)
{
	struct lvol_op *o = mem_zalloc(sizeof(*o));
	if (!o)
		return NULL;
	o->lvs = lvs;
	lvs->nops++;
	if (name) {
		snprintf(o->name, sizeof(o->name), "%s", name);
		if (reserve_name(lvs, name) != 0) {
			lvs->nops--;
			mem_free(o);
			return NULL;
		}
		o->reserved = true;
	}
	common_uuid_generate(o->uuid);
	return o;
}

static void op_end(struct lvol_op *o)
{
	if (o->reserved)
		release_name(o->lvs, o->name);
	o->lvs->nops--;
	mem_free(o);
}

/* a new blob (create, snapshot, clone) becomes an lvol */
static void new_blob_done(void *arg, struct blob *blob, int status)
{
	struct lvol_op *o = arg;
	struct lvol *l = NULL;
	if (o->reserved) {
		release_name(o->lvs, o->name);
		o->reserved = false;
	}
	if (status == 0) {
		l = lvol_attach(o->lvs, blob);
		if (!l || !l->bdev) {
			status = -ENOMEM;
			LOG_ERROR(MOD, "lvol created on disk but not usable name=%s", o->name);
		} else {
			LOG_INFO(MOD, "lvol created alias=%s uuid=%s clusters=%llu thin=%d", l->alias, l->uuid,
				 (unsigned long long)blob_num_clusters(blob), blob_is_thin(blob) ? 1 : 0);
		}
	}
	/* a snapshot origin may have become thin: not reflected in bdev */
	lvol_cb cb = o->lcb;
	void *cb_arg = o->arg;
	op_end(o);
	cb(cb_arg, status == 0 ? l : NULL, status);
}

static void name_xattrs(struct lvol_op *o, struct blob_xattr x[2])
{
	x[0].name = "name";
	x[0].value = o->name;
	x[0].len = (uint32_t)strlen(o->name);
	x[1].name = "uuid";
	x[1].value = o->uuid;
	x[1].len = (uint32_t)strlen(o->uuid);
}

int lvol_create(struct lvol_store *lvs, const char *name, uint64_t size_bytes, bool thin,
		enum lvol_clear_method clear_method, lvol_cb cb, void *cb_arg)
{
	(void)clear_method; /* the store's clear method applies */
	if (!lvs)
		return -ENODEV;
	if (!name_ok(name))
		return -EINVAL;
	if (lvs->closing)
		return -ENODEV;
	if (name_taken(lvs, name))
		return -EEXIST;
	uint64_t cs = blob_store_cluster_size(lvs->bs);
	uint64_t clusters = size_bytes / cs + (size_bytes % cs != 0);
	struct lvol_op *o = op_new(lvs, name);
	if (!o)
		return -ENOMEM;
	o->lcb = cb;
	o->arg = cb_arg;
	struct blob_xattr x[2];
	name_xattrs(o, x);
	struct blob_create_opts bo = { .num_clusters = clusters, .thin = thin, .xattrs = x, .num_xattrs = 2 };
	int rc = blob_create(lvs->bs, &bo, new_blob_done, o);
	if (rc) {
		op_end(o);
		return rc;
	}
	return 0;
}

static void resize_done(void *arg, int status)
{
	struct lvol_op *o = arg;
	struct lvol *l = o->lvol;
	if (status == 0 && l->bdev)
		bdev_num_blocks_set(l->bdev, lvol_size_bytes(l) / blob_store_io_unit(l->lvs->bs));
	lvol_done_cb cb = o->done;
	void *cb_arg = o->arg;
	op_end(o);
	cb(cb_arg, status);
}

int lvol_resize(struct lvol *lvol, uint64_t size_bytes, lvol_done_cb cb, void *cb_arg)
{
	if (!lvol || lvol->deleting)
		return -ENODEV;
	uint64_t cs = blob_store_cluster_size(lvol->lvs->bs);
	uint64_t clusters = size_bytes / cs + (size_bytes % cs != 0);
	struct lvol_op *o = op_new(lvol->lvs, NULL);
	if (!o)
		return -ENOMEM;
	o->lvol = lvol;
	o->done = cb;
	o->arg = cb_arg;
	int rc = blob_resize(lvol->blob, clusters, resize_done, o);
	if (rc)
		op_end(o);
	return rc;
}

static void delete_done(void *arg, int status)
{
	struct lvol_op *o = arg;
	struct lvol *l = o->lvol;
	if (status == 0) {
		LOG_INFO(MOD, "lvol deleted alias=%s uuid=%s", l->alias, l->uuid);
		l->blob = NULL;
		lvol_free(l);
	} else {
		l->deleting = false;
	}
	lvol_done_cb cb = o->done;
	void *cb_arg = o->arg;
	op_end(o);
	cb(cb_arg, status);
}

static void delete_wait_io(struct ev_loop *loop, struct ev_timer *timer, void *arg)
{
	(void)loop;
	(void)timer;
	struct lvol_op *o = arg;
	struct lvol *l = o->lvol;
	if (l->bdev && bdev_io_outstanding(l->bdev) > 0 &&
	    ev_timer_start(bdev_module_loop(), 1, 0, delete_wait_io, o, NULL) == 0)
		return;
	int rc = blob_delete(l->blob, delete_done, o);
	if (rc)
		delete_done(o, rc);
}

int lvol_delete(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	if (!lvol || lvol->deleting)
		return -ENODEV;
	if (blob_clone_count(lvol->blob) >= 2)
		return defer_error(cb, NULL, cb_arg, -EPERM);
	struct lvol_op *o = op_new(lvol->lvs, NULL);
	if (!o)
		return -ENOMEM;
	o->lvol = lvol;
	o->done = cb;
	o->arg = cb_arg;
	lvol->deleting = true; /* new I/O refused */
	if (ev_timer_start(bdev_module_loop(), 0, 0, delete_wait_io, o, NULL) != 0) {
		lvol->deleting = false;
		op_end(o);
		return -ENOMEM;
	}
	return 0;
}

int lvol_snapshot(struct lvol *origin, const char *name, lvol_cb cb, void *cb_arg)
{
	if (!origin || origin->deleting)
		return -ENODEV;
	if (!name_ok(name))
		return -EINVAL;
	if (name_taken(origin->lvs, name))
		return defer_error(NULL, cb, cb_arg, -EEXIST);
	struct lvol_op *o = op_new(origin->lvs, name);
	if (!o)
		return -ENOMEM;
	o->lcb = cb;
	o->arg = cb_arg;
	struct blob_xattr x[2];
	name_xattrs(o, x);
	int rc = blob_snapshot(origin->blob, x, 2, new_blob_done, o);
	if (rc)
		op_end(o);
	return rc;
}

int lvol_clone(struct lvol *snapshot, const char *name, lvol_cb cb, void *cb_arg)
{
	if (!snapshot || snapshot->deleting)
		return -ENODEV;
	if (!name_ok(name))
		return -EINVAL;
	if (name_taken(snapshot->lvs, name))
		return defer_error(NULL, cb, cb_arg, -EEXIST);
	if (!blob_is_read_only(snapshot->blob))
		return defer_error(NULL, cb, cb_arg, -EINVAL);
	struct lvol_op *o = op_new(snapshot->lvs, name);
	if (!o)
		return -ENOMEM;
	o->lcb = cb;
	o->arg = cb_arg;
	struct blob_xattr x[2];
	name_xattrs(o, x);
	int rc = blob_clone(snapshot->blob, x, 2, new_blob_done, o);
	if (rc)
		op_end(o);
	return rc;
}

static void rename_done(void *arg, int status)
{
	struct lvol_op *o = arg;
	struct lvol *l = o->lvol;
	if (o->reserved) {
		release_name(o->lvs, o->name);
		o->reserved = false;
	}
	if (status == 0) {
		if (l->bdev)
			(void)bdev_alias_del(l->bdev, l->alias);
		snprintf(l->name, sizeof(l->name), "%s", o->name);
		set_alias(l);
		if (l->bdev)
			(void)bdev_alias_add(l->bdev, l->alias);
	}
	lvol_done_cb cb = o->done;
	void *cb_arg = o->arg;
	op_end(o);
	cb(cb_arg, status);
}

int lvol_rename(struct lvol *lvol, const char *new_name, lvol_done_cb cb, void *cb_arg)
{
	if (!lvol || lvol->deleting)
		return -ENODEV;
	if (!name_ok(new_name))
		return -EINVAL;
	if (strcmp(lvol->name, new_name) == 0)
		return defer_error(cb, NULL, cb_arg, 0);
	if (name_taken(lvol->lvs, new_name))
		return defer_error(cb, NULL, cb_arg, -EEXIST);
	struct lvol_op *o = op_new(lvol->lvs, new_name);
	if (!o)
		return -ENOMEM;
	o->lvol = lvol;
	o->done = cb;
	o->arg = cb_arg;
	int rc = blob_set_xattr(lvol->blob, "name", new_name, (uint32_t)strlen(new_name), rename_done, o);
	if (rc)
		op_end(o);
	return rc;
}

static void simple_done(void *arg, int status)
{
	struct lvol_op *o = arg;
	lvol_done_cb cb = o->done;
	void *cb_arg = o->arg;
	op_end(o);
	cb(cb_arg, status);
}

static int simple_op(struct lvol *lvol, int (*fn)(struct blob *, blob_done_cb, void *), lvol_done_cb cb,
		     void *cb_arg)
{
	if (!lvol || lvol->deleting)
		return -ENODEV;
	struct lvol_op *o = op_new(lvol->lvs, NULL);
	if (!o)
		return -ENOMEM;
	o->lvol = lvol;
	o->done = cb;
	o->arg = cb_arg;
	int rc = fn(lvol->blob, simple_done, o);
	if (rc)
		op_end(o);
	return rc;
}

int lvol_inflate(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return simple_op(lvol, blob_inflate, cb, cb_arg);
}

int lvol_decouple_parent(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return simple_op(lvol, blob_decouple_parent, cb, cb_arg);
}

int lvol_set_read_only(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return simple_op(lvol, blob_set_read_only, cb, cb_arg);
}

/* ------------------------------------------------------------ lookups */

struct lvol *lvol_find(const char *uuid_or_alias)
{
	if (!uuid_or_alias)
		return NULL;
	struct bdev *b = bdev_find(uuid_or_alias);
	struct lvol *l = b ? lvol_from_bdev(b) : NULL;
	if (l)
		return l;
	/* alias "<lvs>/<name>": the store name has no '/' */
	const char *slash = strchr(uuid_or_alias, '/');
	if (!slash || (size_t)(slash - uuid_or_alias) >= LVOL_NAME_MAX)
		return NULL;
	char lvs_name[LVOL_NAME_MAX];
	memcpy(lvs_name, uuid_or_alias, (size_t)(slash - uuid_or_alias));
	lvs_name[slash - uuid_or_alias] = '\0';
	struct lvol_store *lvs = lvol_store_find_by_name(lvs_name);
	return lvs ? lvol_find_in_store(lvs, slash + 1) : NULL;
}

struct lvol *lvol_find_in_store(const struct lvol_store *lvs, const char *name)
{
	if (!lvs || !name)
		return NULL;
	return lookup_name(lvs, name);
}

struct lvol *lvol_from_bdev(const struct bdev *bdev)
{
	if (!bdev || bdev_get_ops(bdev) != &lvol_bdev_ops)
		return NULL;
	return bdev_ctx(bdev);
}

void lvol_prefetch(const struct lvol *lvol)
{
	for (size_t off = 0; off < sizeof(*lvol); off += 64)
		__builtin_prefetch((const char *)lvol + off);
}

void lvol_prefetch_blob(const struct lvol *lvol)
{
	blob_prefetch(lvol->blob);
}

struct lvol *lvol_first(const struct lvol_store *lvs) { return lvs ? lvs->first : NULL; }
struct lvol *lvol_next(const struct lvol *lvol) { return lvol->next; }

void lvol_get_info(const struct lvol *lvol, struct lvol_info *out)
{
	memset(out, 0, sizeof(*out));
	const struct blob *b = lvol->blob;
	memcpy(out->uuid, lvol->uuid, sizeof(out->uuid));
	out->name = lvol->name;
	out->alias = lvol->alias;
	out->thin = blob_is_thin(b);
	out->is_snapshot = blob_is_snapshot(b);
	struct blob *p = blob_parent(b);
	out->is_clone = p != NULL;
	out->read_only = blob_is_read_only(b);
	out->num_allocated_clusters = blob_num_allocated_clusters(b);
	out->size_bytes = lvol_size_bytes(lvol);
	out->block_size = blob_store_io_unit(lvol->lvs->bs);
	out->num_blocks = out->size_bytes / out->block_size;
	out->lvs_name = lvol->lvs->name;
	out->lvs_uuid = lvol->lvs->uuid;
	out->base_bdev = lvol->lvs->base_name;
	struct lvol *pl = p ? blob_get_ctx(p) : NULL;
	out->base_snapshot = pl ? pl->name : NULL;
	out->num_clones = blob_clone_count(b);
}

struct lvol *lvol_clone_get(const struct lvol *snapshot, unsigned i)
{
	struct blob *c = blob_clone_get(snapshot->blob, i);
	return c ? blob_get_ctx(c) : NULL;
}

struct lvol *lvol_parent(const struct lvol *lvol)
{
	struct blob *p = blob_parent(lvol->blob);
	return p ? blob_get_ctx(p) : NULL;
}

const char *lvol_name(const struct lvol *lvol) { return lvol->name; }
const char *lvol_uuid(const struct lvol *lvol) { return lvol->uuid; }
const char *lvol_alias(const struct lvol *lvol) { return lvol->alias; }
struct lvol_store *lvol_get_store(const struct lvol *lvol) { return lvol->lvs; }
struct bdev *lvol_bdev(const struct lvol *lvol) { return lvol->bdev; }
