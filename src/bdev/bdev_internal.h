/*
 * bdev_internal.h: private to src/bdev. The bdev record, the module state
 * shared by registry.c and io.c, and the hooks the kinds (malloc.c, aio.c,
 * fault.c) use. Nothing outside src/bdev may include this.
 */
#ifndef DE_BDEV_INTERNAL_H
#define DE_BDEV_INTERNAL_H

#include "bdev/bdev.h"

struct bdev {
	char *name;
	char uuid[COMMON_UUID_STR_LEN];
	char *product_name;
	uint32_t block_size;
	uint64_t num_blocks;
	bool thin;
	const struct bdev_ops *ops;
	void *ctx;

	char **aliases;
	unsigned num_aliases;

	enum bdev_claim_type claim_type;
	const char *claim_module;

	struct bdev_io_stat stat;
	unsigned io_outstanding;

	/* Examine: queued = not started yet; examine_left = hooks not done. */
	bool examine_queued;
	bool examine_starting; /* inside the loop calling the hooks' start */
	unsigned examine_hooks; /* hooks to start (those registered before it) */
	unsigned examine_left;
	struct bdev *examine_prev, *examine_next; /* queue of not-started examines */

	struct bdev *prev, *next; /* registration order */
};

/* One I/O in flight through the generic layer (pooled, never freed before
 * bdev_module_fini). */
struct bdev_io {
	struct bdev *bdev;
	enum bdev_io_type type;
	int status;
	uint64_t len;
	uint64_t start_tick;
	bdev_io_cb cb;
	void *cb_arg;
	struct bdev_io *next; /* free list or completion queue */
};

/* io.c */
int bdev_io_module_init(void);
void bdev_io_module_fini(void);
/* Wakes the loop through the module's eventfd: it then drains completions
 * and calls bdev_registry_kicked(). For when ev_defer() cannot allocate. */
void bdev_loop_kick(void);

/* registry.c: runs examine/waiter work that could not be deferred. */
void bdev_registry_kicked(void);

/* registry.c: a name is free among names, aliases and UUIDs. */
bool bdev_name_taken(const char *name);

/* aio.c: releases the shared io_uring (after every aio bdev is gone). */
void bdev_aio_module_fini(void);

/* Small deterministic PRNG (splitmix64) for the fault device. */
static inline uint64_t bdev_rand_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif /* DE_BDEV_INTERNAL_H */
