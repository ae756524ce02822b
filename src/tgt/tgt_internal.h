/*
 * tgt_internal.h: private to src/tgt. The target context shared by the
 * method files (tgt_bdev.c, tgt_lvol.c, tgt_nvmf.c, tgt_config.c,
 * tgt_fault.c) and the small helpers they use to build SPDK-shaped JSON.
 */
#ifndef DE_TGT_INTERNAL_H
#define DE_TGT_INTERNAL_H

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "json/json.h"
#include "lvol/lvol.h"
#include "nvmf/nvmf.h"
#include "rpc/rpc.h"
#include "tgt/tgt.h"

#define TGT_LOG "tgt"

/* What bdev_aio_create was given (driver_specific.aio, save_config). */
struct tgt_aio {
	struct tgt_aio *next;
	char *name;
	char *filename;
	uint32_t block_size; /* as given (0 = auto) */
	bool readonly;
	bool fallocate;
	bool nowait;
};

/* What nvmf_create_subsystem was given that src/nvmf does not keep: no
 * max_namespaces (SPDK then has no limit and leaves the key out of
 * nvmf_get_subsystems), dmrsl / wzsl (reported as given). Reached through
 * the subsystem's ctx pointer; listed in struct tgt only to be freed. */
struct tgt_nqn {
	struct tgt_nqn *next, *prev;
	bool no_max_ns;
	uint32_t dmrsl;
	uint8_t wzsl;
};

/* One pending fault (disktgt_inject_fault). */
struct tgt_fault {
	struct tgt_fault *next;
	char *method;
	unsigned count;      /* calls still affected */
	int action;          /* TGT_FAULT_* */
	int code;            /* TGT_FAULT_ERROR */
	char *message;       /* TGT_FAULT_ERROR */
};

enum { TGT_FAULT_ERROR = 1, TGT_FAULT_DROP_REPLY, TGT_FAULT_EXIT_AFTER_REPLY };

struct tgt {
	struct ev_loop *loop;
	struct rpc_server *server;
	struct nvmf_tgt *nvmf;
	struct tgt_opts opts;
	struct tgt_aio *aios;
	struct tgt_fault *faults;
	struct tgt_nqn *subsys_extras; /* every subsystem's, see tgt_subsys_extra() */
	unsigned malloc_next;   /* SPDK names unnamed malloc bdevs MallocN */
	bool bdev_up, lvol_up;
	bool stopping;          /* tgt_destroy() runs: no method may touch the layers */
	/* Shared, immutable JSON pieces of bdev_get_bdevs objects (refcounted). */
	json_t *rate_limits;
	json_t *io_types_lvol, *io_types_lvol_ro, *io_types_malloc, *io_types_aio, *io_types_other;
	/* The same pieces pre-encoded (compact JSON text), for the fast writers. */
	struct get_bdevs_wait *waits; /* bdev_get_bdevs calls waiting (timeout_ms) */
	char *rate_limits_s;
	char *io_types_lvol_s, *io_types_lvol_ro_s, *io_types_malloc_s, *io_types_aio_s, *io_types_other_s;
	size_t rate_limits_n; /* their lengths */
	size_t io_types_lvol_n, io_types_lvol_ro_n, io_types_malloc_n, io_types_aio_n, io_types_other_n;
};

/* Subsystems created without max_namespaces (tgt_nvmf.c). */
/* Reached through the subsystem's ctx pointer: O(1) per subsystem, so
 * listing 10,000 subsystems stays linear. */
bool tgt_subsys_no_max_ns(const struct nvmf_subsystem *s);
const struct tgt_nqn *tgt_subsys_extra(const struct nvmf_subsystem *s);
/* Frees every extra (tgt_destroy; the subsystems may already be gone). */
void tgt_subsys_forget_all(struct tgt *t);

/* Completes (with -ENODEV) and frees every waiting bdev_get_bdevs. */
void tgt_bdev_waits_cancel(struct tgt *t);

/* Registration of each file's methods. */
int tgt_bdev_register(struct tgt *t);
int tgt_lvol_register(struct tgt *t);
int tgt_nvmf_register(struct tgt *t);
int tgt_config_register(struct tgt *t);
int tgt_fault_register(struct tgt *t);

/* Registers a method, logging a failure. */
int tgt_method(struct tgt *t, const char *name, rpc_handler_fn fn, unsigned flags);

/* bdev JSON (tgt_bdev.c). */
int tgt_bdev_shared_init(struct tgt *t);
void tgt_bdev_shared_fini(struct tgt *t);
/* Appends one bdev_get_bdevs object (fields and order as SPDK writes them) as compact JSON text (the fast path for big
 * listings, replied with rpc_request_reply_raw). 0 or -ENOMEM. */
int tgt_bdev_write(struct tgt *t, struct json_buf *b, struct bdev *bdev);
/* json_buf helpers: a string value, an unsigned number. */
int tgt_put_str(struct json_buf *b, const char *s);
int tgt_put_u64(struct json_buf *b, uint64_t v);

/* Appends n bytes: inline, one capacity check (the big listings write
 * ~1 KB per bdev in dozens of small pieces). 0 or -ENOMEM. */
static inline int tgt_put_mem(struct json_buf *b, const void *s, size_t n)
{
	if (b->cap - b->len <= n && json_buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

#define TGT_PUT(b, lit) tgt_put_mem((b), (lit), sizeof(lit) - 1)
/* Replies with the buffer's text (or -ENOMEM if rc) and frees the buffer. */
void tgt_reply_buf(struct rpc_request *req, struct json_buf *b, int rc);
struct tgt_aio *tgt_aio_find(struct tgt *t, const char *name);

/* Config (tgt_config.c): the {method, params} list of a subsystem. */
json_t *tgt_config_subsystem(struct tgt *t, const char *name);

/* JSON helpers that never fail silently: on ENOMEM they return -ENOMEM. */
static inline int tgt_set(json_t *obj, const char *key, json_t *v)
{
	return v ? json_object_set_new(obj, key, v) : -1;
}

#endif /* DE_TGT_INTERNAL_H */
