/* lvol.c: TEMPORARY stubs of every lvol.h function (real module lands next). */
#include <errno.h>
#include "lvol/lvol.h"

int lvol_clear_method_parse(const char *s, enum lvol_clear_method *out)
{
	return -ENOTSUP;
}

int lvol_module_init(void)
{
	return -ENOTSUP;
}

int lvol_module_unload_all(lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

void lvol_module_fini(void)
{
}

void lvol_module_set_remove_hook(lvol_bdev_remove_fn fn, void *arg)
{
}

int lvol_store_create(const struct lvol_store_opts *opts, lvol_store_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_store_destroy(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_store_rename(struct lvol_store *lvs, const char *new_name, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_store_grow(struct lvol_store *lvs, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

struct lvol_store *lvol_store_find_by_name(const char *name)
{
	return NULL;
}

struct lvol_store *lvol_store_find_by_uuid(const char *uuid)
{
	return NULL;
}

struct lvol_store *lvol_store_first(void)
{
	return NULL;
}

struct lvol_store *lvol_store_next(const struct lvol_store *lvs)
{
	return NULL;
}

void lvol_store_get_info(const struct lvol_store *lvs, struct lvol_store_info *out)
{
}

const char *lvol_store_name(const struct lvol_store *lvs)
{
	return NULL;
}

const char *lvol_store_uuid(const struct lvol_store *lvs)
{
	return NULL;
}

struct bdev *lvol_store_base_bdev(const struct lvol_store *lvs)
{
	return NULL;
}

uint64_t lvol_store_cluster_size(const struct lvol_store *lvs)
{
	return 0;
}

unsigned lvol_store_lvol_count(const struct lvol_store *lvs)
{
	return 0;
}

int lvol_create(struct lvol_store *lvs, const char *name, uint64_t size_bytes, bool thin,
		enum lvol_clear_method clear_method, lvol_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_resize(struct lvol *lvol, uint64_t size_bytes, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_delete(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_snapshot(struct lvol *origin, const char *name, lvol_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_clone(struct lvol *snapshot, const char *name, lvol_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_rename(struct lvol *lvol, const char *new_name, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_inflate(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_decouple_parent(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

int lvol_set_read_only(struct lvol *lvol, lvol_done_cb cb, void *cb_arg)
{
	return -ENOTSUP;
}

struct lvol *lvol_find(const char *uuid_or_alias)
{
	return NULL;
}

struct lvol *lvol_find_in_store(const struct lvol_store *lvs, const char *name)
{
	return NULL;
}

struct lvol *lvol_from_bdev(const struct bdev *bdev)
{
	return NULL;
}

struct lvol *lvol_first(const struct lvol_store *lvs)
{
	return NULL;
}

struct lvol *lvol_next(const struct lvol *lvol)
{
	return NULL;
}

void lvol_get_info(const struct lvol *lvol, struct lvol_info *out)
{
}

struct lvol *lvol_clone_get(const struct lvol *snapshot, unsigned i)
{
	return NULL;
}

struct lvol *lvol_parent(const struct lvol *lvol)
{
	return NULL;
}

const char *lvol_name(const struct lvol *lvol)
{
	return NULL;
}

const char *lvol_uuid(const struct lvol *lvol)
{
	return NULL;
}

const char *lvol_alias(const struct lvol *lvol)
{
	return NULL;
}

struct lvol_store *lvol_get_store(const struct lvol *lvol)
{
	return NULL;
}

struct bdev *lvol_bdev(const struct lvol *lvol)
{
	return NULL;
}
