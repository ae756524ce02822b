/*
 * registry.c: the bdev registry. Module init/fini, register/unregister,
 * lookups by name, alias or UUID (one hash table over all three, since they
 * share one namespace as in SPDK), registration-order iteration, aliases,
 * claims and the examine hooks with bdev_wait_for_examine().
 */
#include "bdev/bdev_internal.h"

#include <errno.h>
#include <string.h>

#define BDEV_MAX_EXAMINE_HOOKS 8

struct name_entry {
	const char *key; /* points into the bdev (name, alias or uuid) */
	struct bdev *bdev;
	struct name_entry *next;
};

struct examine_hook {
	bdev_examine_fn start;
	void *arg;
};

struct examine_waiter {
	bdev_done_cb cb;
	void *cb_arg;
	struct examine_waiter *next;
};

static struct {
	bool inited;
	uint64_t gen; /* bumped by init: stale deferred calls see a new value */
	struct ev_loop *loop;
	struct bdev *head, *tail;
	unsigned count;

	struct name_entry **buckets;
	size_t nbuckets, nentries;

	struct examine_hook hooks[BDEV_MAX_EXAMINE_HOOKS];
	unsigned nhooks;
	struct bdev *exq_head, *exq_tail; /* bdevs whose examine has not started */
	unsigned examine_pending;
	bool examine_scheduled;
	struct examine_waiter *waiters;
	bool waiters_scheduled;
	bool examine_kicked, waiters_kicked; /* run from the eventfd, not a defer */
} reg;

/* ------------------------------------------------------------ names */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ull;
	}
	return h;
}

static struct name_entry *name_lookup(const char *key)
{
	if (!reg.nbuckets)
		return NULL;
	for (struct name_entry *e = reg.buckets[name_hash(key) & (reg.nbuckets - 1)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static int names_grow(void)
{
	size_t n = reg.nbuckets ? reg.nbuckets * 2 : 256;
	struct name_entry **b = mem_zalloc(n * sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < reg.nbuckets; i++) {
		struct name_entry *e = reg.buckets[i];
		while (e) {
			struct name_entry *next = e->next;
			size_t slot = name_hash(e->key) & (n - 1);
			e->next = b[slot];
			b[slot] = e;
			e = next;
		}
	}
	mem_free(reg.buckets);
	reg.buckets = b;
	reg.nbuckets = n;
	return 0;
}

static int name_insert(const char *key, struct bdev *bdev)
{
	struct name_entry *e;

	if (name_lookup(key))
		return -EEXIST;
	if (reg.nentries >= reg.nbuckets && names_grow() != 0 && !reg.nbuckets)
		return -ENOMEM; /* a failed grow is fine while there are buckets */
	e = mem_alloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t slot = name_hash(key) & (reg.nbuckets - 1);
	e->key = key;
	e->bdev = bdev;
	e->next = reg.buckets[slot];
	reg.buckets[slot] = e;
	reg.nentries++;
	return 0;
}

static void name_remove(const char *key)
{
	if (!reg.nbuckets)
		return;
	struct name_entry **pp = &reg.buckets[name_hash(key) & (reg.nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) == 0) {
			struct name_entry *e = *pp;
			*pp = e->next;
			mem_free(e);
			reg.nentries--;
			return;
		}
	}
}

bool bdev_name_taken(const char *name)
{
	return name_lookup(name) != NULL;
}

static bool name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strlen(name);
	return n > 0 && n < BDEV_NAME_MAX;
}

struct bdev *bdev_find(const char *name)
{
	struct name_entry *e;
	char norm[COMMON_UUID_STR_LEN];
	uint8_t raw[16];

	if (!name || !reg.inited)
		return NULL;
	e = name_lookup(name);
	if (e)
		return e->bdev;
	/* A UUID in another spelling (upper case). */
	if (common_uuid_parse(name, raw) == 0) {
		common_uuid_unparse(raw, norm);
		e = name_lookup(norm);
		if (e)
			return e->bdev;
	}
	return NULL;
}

/* ----------------------------------------------------------- module */

int bdev_module_init(struct ev_loop *loop)
{
	int err;

	if (!loop)
		return -EINVAL;
	if (reg.inited)
		return -EALREADY;
	uint64_t gen = reg.gen + 1;
	memset(&reg, 0, sizeof(reg));
	reg.gen = gen;
	reg.loop = loop;
	reg.inited = true;
	err = bdev_io_module_init();
	if (err) {
		reg.inited = false;
		return err;
	}
	return 0;
}

static void bdev_destroy(struct bdev *bdev);

void bdev_module_fini(void)
{
	if (!reg.inited)
		return;
	while (reg.tail)
		bdev_destroy(reg.tail);
	bdev_aio_module_fini();
	while (reg.waiters) {
		struct examine_waiter *w = reg.waiters;
		reg.waiters = w->next;
		mem_free(w);
	}
	mem_free(reg.buckets);
	reg.buckets = NULL;
	reg.nbuckets = 0;
	bdev_io_module_fini();
	reg.inited = false;
	reg.loop = NULL;
}

struct ev_loop *bdev_module_loop(void)
{
	return reg.loop;
}

/* ---------------------------------------------------------- examine */

static void waiters_run(struct ev_loop *loop, void *arg)
{
	if (!reg.inited || (uint64_t)(uintptr_t)arg != reg.gen)
		return;
	reg.waiters_scheduled = false;
	if (reg.examine_pending)
		return; /* new bdevs came; waiters wait for them too */
	struct examine_waiter *w = reg.waiters;
	reg.waiters = NULL;
	while (w) {
		struct examine_waiter *next = w->next;
		w->cb(w->cb_arg);
		mem_free(w);
		w = next;
	}
}

/* Runs fn from the loop: a deferred call, or when that cannot be allocated,
 * a wake-up of the module's eventfd (bdev_registry_kicked runs it). */
static void registry_defer(ev_defer_cb fn, bool *kicked)
{
	if (ev_defer(reg.loop, fn, (void *)(uintptr_t)reg.gen) == 0)
		return;
	*kicked = true;
	bdev_loop_kick();
}

static void waiters_schedule(void)
{
	if (!reg.waiters || reg.waiters_scheduled || reg.examine_pending)
		return;
	reg.waiters_scheduled = true;
	registry_defer(waiters_run, &reg.waiters_kicked);
}

static void exq_remove(struct bdev *bdev)
{
	if (bdev->examine_prev)
		bdev->examine_prev->examine_next = bdev->examine_next;
	else
		reg.exq_head = bdev->examine_next;
	if (bdev->examine_next)
		bdev->examine_next->examine_prev = bdev->examine_prev;
	else
		reg.exq_tail = bdev->examine_prev;
	bdev->examine_prev = bdev->examine_next = NULL;
	bdev->examine_queued = false;
}

static void examine_run(struct ev_loop *loop, void *arg)
{
	if (!reg.inited || (uint64_t)(uintptr_t)arg != reg.gen)
		return;
	reg.examine_scheduled = false;
	while (reg.exq_head) {
		struct bdev *bdev = reg.exq_head;
		unsigned n = bdev->examine_hooks;
		exq_remove(bdev);
		bdev->examine_starting = true; /* no unregister between two hooks */
		for (unsigned i = 0; i < n; i++)
			reg.hooks[i].start(bdev, reg.hooks[i].arg);
		bdev->examine_starting = false;
	}
}

void bdev_registry_kicked(void)
{
	if (reg.examine_kicked) {
		reg.examine_kicked = false;
		examine_run(reg.loop, (void *)(uintptr_t)reg.gen);
	}
	if (reg.waiters_kicked) {
		reg.waiters_kicked = false;
		waiters_run(reg.loop, (void *)(uintptr_t)reg.gen);
	}
}

int bdev_examine_register(bdev_examine_fn start, void *arg)
{
	if (!reg.inited || !start)
		return -EINVAL;
	if (reg.nhooks == BDEV_MAX_EXAMINE_HOOKS)
		return -ENOSPC;
	reg.hooks[reg.nhooks].start = start;
	reg.hooks[reg.nhooks].arg = arg;
	reg.nhooks++;
	return 0;
}

void bdev_examine_done(struct bdev *bdev)
{
	if (!bdev || bdev->examine_left == 0 || bdev->examine_queued) {
		LOG_ERROR("bdev", "examine_done without examine bdev=%s", bdev ? bdev->name : "(null)");
		return;
	}
	bdev->examine_left--;
	reg.examine_pending--;
	if (reg.examine_pending == 0)
		waiters_schedule();
}

unsigned bdev_examine_pending(void)
{
	return reg.examine_pending;
}

int bdev_wait_for_examine(bdev_done_cb cb, void *cb_arg)
{
	struct examine_waiter *w, **pp;

	if (!reg.inited || !cb)
		return -EINVAL;
	w = mem_zalloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->cb_arg = cb_arg;
	for (pp = &reg.waiters; *pp; pp = &(*pp)->next)
		;
	*pp = w;
	waiters_schedule();
	return 0;
}

/* ---------------------------------------------------------- registry */

static void bdev_free(struct bdev *bdev)
{
	if (!bdev)
		return;
	for (unsigned i = 0; i < bdev->num_aliases; i++)
		mem_free(bdev->aliases[i]);
	mem_free(bdev->aliases);
	mem_free(bdev->product_name);
	mem_free(bdev->name);
	mem_free(bdev);
}

int bdev_register(const struct bdev_params *params, struct bdev **out)
{
	struct bdev *bdev = NULL;
	uint8_t raw[16];
	bool uuid_is_name;
	int err;

	if (!reg.inited)
		return -EINVAL;
	if (!params || !name_valid(params->name) || !params->ops || !params->ops->submit ||
	    params->block_size == 0)
		return -EINVAL;
	if (params->num_blocks > UINT64_MAX / params->block_size)
		return -EINVAL;
	if (params->uuid && common_uuid_parse(params->uuid, raw) != 0)
		return -EINVAL;
	if (name_lookup(params->name))
		return -EEXIST;

	bdev = mem_zalloc(sizeof(*bdev));
	if (!bdev)
		return -ENOMEM;
	if (params->uuid)
		common_uuid_unparse(raw, bdev->uuid);
	else
		common_uuid_generate(bdev->uuid);
	uuid_is_name = strcmp(bdev->uuid, params->name) == 0;
	if (!uuid_is_name && name_lookup(bdev->uuid)) {
		err = -EEXIST;
		goto fail;
	}
	bdev->name = mem_strdup(params->name);
	bdev->product_name = mem_strdup(params->product_name ? params->product_name : "");
	if (!bdev->name || !bdev->product_name) {
		err = -ENOMEM;
		goto fail;
	}
	bdev->block_size = params->block_size;
	bdev->num_blocks = params->num_blocks;
	bdev->thin = params->thin;
	bdev->ops = params->ops;
	bdev->ctx = params->ctx;

	err = name_insert(bdev->name, bdev);
	if (err)
		goto fail;
	if (!uuid_is_name) {
		err = name_insert(bdev->uuid, bdev);
		if (err) {
			name_remove(bdev->name);
			goto fail;
		}
	}

	bdev->prev = reg.tail;
	if (reg.tail)
		reg.tail->next = bdev;
	else
		reg.head = bdev;
	reg.tail = bdev;
	reg.count++;

	if (reg.nhooks) {
		bdev->examine_queued = true;
		bdev->examine_hooks = reg.nhooks;
		bdev->examine_left = reg.nhooks;
		reg.examine_pending += reg.nhooks;
		bdev->examine_prev = reg.exq_tail;
		if (reg.exq_tail)
			reg.exq_tail->examine_next = bdev;
		else
			reg.exq_head = bdev;
		reg.exq_tail = bdev;
		if (!reg.examine_scheduled) {
			reg.examine_scheduled = true;
			registry_defer(examine_run, &reg.examine_kicked);
		}
	}
	LOG_DEBUG("bdev", "registered name=%s uuid=%s block_size=%u num_blocks=%llu",
		  bdev->name, bdev->uuid, bdev->block_size, (unsigned long long)bdev->num_blocks);
	if (out)
		*out = bdev;
	return 0;
fail:
	bdev_free(bdev);
	return err;
}

/* Removes a bdev without any check (unregister and module fini). */
static void bdev_destroy(struct bdev *bdev)
{
	if (bdev->examine_queued)
		exq_remove(bdev);
	reg.examine_pending -= bdev->examine_left;
	bdev->examine_left = 0;

	name_remove(bdev->name);
	if (strcmp(bdev->uuid, bdev->name) != 0)
		name_remove(bdev->uuid);
	for (unsigned i = 0; i < bdev->num_aliases; i++)
		name_remove(bdev->aliases[i]);

	if (bdev->prev)
		bdev->prev->next = bdev->next;
	else
		reg.head = bdev->next;
	if (bdev->next)
		bdev->next->prev = bdev->prev;
	else
		reg.tail = bdev->prev;
	reg.count--;

	LOG_DEBUG("bdev", "unregistered name=%s", bdev->name);
	if (bdev->ops->destroy)
		bdev->ops->destroy(bdev->ctx);
	bdev_free(bdev);
	if (reg.examine_pending == 0)
		waiters_schedule();
}

int bdev_unregister(struct bdev *bdev)
{
	if (!bdev)
		return -EINVAL;
	if (bdev->claim_type != BDEV_CLAIM_NONE || bdev->io_outstanding)
		return -EBUSY;
	if ((bdev->examine_left && !bdev->examine_queued) || bdev->examine_starting)
		return -EBUSY;
	bdev_destroy(bdev);
	return 0;
}

struct bdev *bdev_first(void) { return reg.head; }
struct bdev *bdev_next(const struct bdev *bdev) { return bdev ? bdev->next : NULL; }
unsigned bdev_count(void) { return reg.count; }

/* ----------------------------------------------------------- aliases */

int bdev_alias_add(struct bdev *bdev, const char *alias)
{
	char *copy;
	char **arr;
	int err;

	if (!bdev || !name_valid(alias))
		return -EINVAL;
	if (name_lookup(alias))
		return -EEXIST;
	copy = mem_strdup(alias);
	if (!copy)
		return -ENOMEM;
	arr = mem_realloc(bdev->aliases, (bdev->num_aliases + 1) * sizeof(*arr));
	if (!arr) {
		mem_free(copy);
		return -ENOMEM;
	}
	bdev->aliases = arr;
	err = name_insert(copy, bdev);
	if (err) {
		mem_free(copy);
		return err;
	}
	arr[bdev->num_aliases++] = copy;
	return 0;
}

int bdev_alias_del(struct bdev *bdev, const char *alias)
{
	if (!bdev || !alias)
		return -EINVAL;
	for (unsigned i = 0; i < bdev->num_aliases; i++) {
		if (strcmp(bdev->aliases[i], alias) == 0) {
			name_remove(bdev->aliases[i]);
			mem_free(bdev->aliases[i]);
			memmove(&bdev->aliases[i], &bdev->aliases[i + 1],
				(bdev->num_aliases - i - 1) * sizeof(char *));
			bdev->num_aliases--;
			return 0;
		}
	}
	return -ENOENT;
}

unsigned bdev_alias_count(const struct bdev *bdev) { return bdev->num_aliases; }

const char *bdev_alias_get(const struct bdev *bdev, unsigned i)
{
	return i < bdev->num_aliases ? bdev->aliases[i] : NULL;
}

/* ---------------------------------------------------------- accessors */

const char *bdev_name(const struct bdev *bdev) { return bdev->name; }
const char *bdev_uuid(const struct bdev *bdev) { return bdev->uuid; }
const char *bdev_product_name(const struct bdev *bdev) { return bdev->product_name; }
uint32_t bdev_block_size(const struct bdev *bdev) { return bdev->block_size; }
uint64_t bdev_num_blocks(const struct bdev *bdev) { return bdev->num_blocks; }
bool bdev_is_thin(const struct bdev *bdev) { return bdev->thin; }
void *bdev_ctx(const struct bdev *bdev) { return bdev->ctx; }
const struct bdev_ops *bdev_get_ops(const struct bdev *bdev) { return bdev->ops; }
const struct bdev_io_stat *bdev_stat(const struct bdev *bdev) { return &bdev->stat; }
void bdev_stat_reset(struct bdev *bdev) { memset(&bdev->stat, 0, sizeof(bdev->stat)); }
unsigned bdev_io_outstanding(const struct bdev *bdev) { return bdev->io_outstanding; }

void bdev_num_blocks_set(struct bdev *bdev, uint64_t num_blocks)
{
	if (num_blocks != bdev->num_blocks)
		LOG_INFO("bdev", "size change name=%s num_blocks=%llu new_num_blocks=%llu", bdev->name,
			 (unsigned long long)bdev->num_blocks, (unsigned long long)num_blocks);
	bdev->num_blocks = num_blocks;
}

/* ------------------------------------------------------------ claims */

int bdev_claim(struct bdev *bdev, enum bdev_claim_type type, const char *module)
{
	if (!bdev || type == BDEV_CLAIM_NONE)
		return -EINVAL;
	if (bdev->claim_type != BDEV_CLAIM_NONE)
		return -EPERM;
	bdev->claim_type = type;
	bdev->claim_module = module ? module : "";
	return 0;
}

void bdev_release(struct bdev *bdev)
{
	if (!bdev)
		return;
	bdev->claim_type = BDEV_CLAIM_NONE;
	bdev->claim_module = NULL;
}

enum bdev_claim_type bdev_claim_type(const struct bdev *bdev) { return bdev->claim_type; }
const char *bdev_claim_module(const struct bdev *bdev) { return bdev->claim_module; }
