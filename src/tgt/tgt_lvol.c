/*
 * tgt_lvol.c: SPDK's lvol methods (bdev_lvol_*): lvstore create / list /
 * delete / rename / grow, lvol create / list / resize / delete / snapshot /
 * clone / rename / inflate / decouple_parent / set_read_only.
 *
 * Error codes follow SPDK's split: failures found in the handler use the
 * negative errno as the JSON-RPC code with strerror text; failures reported
 * by the lvol layer's completion use -32602 with the strerror text, except
 * bdev_lvol_delete whose completion failures use -32603.
 */
#include <errno.h>
#include <string.h>

#include "tgt/tgt_internal.h"

#define MIB (1024ull * 1024)

/* ------------------------------------------------------------ helpers */

/* SPDK's vbdev_get_lvol_store_by_uuid_xor_name(). */
static int lvs_lookup(const char *uuid, const char *name, struct lvol_store **out)
{
	struct lvol_store *lvs;

	if ((uuid && name) || (!uuid && !name))
		return -EINVAL;
	lvs = uuid ? lvol_store_find_by_uuid(uuid) : lvol_store_find_by_name(name);
	if (!lvs)
		return -ENODEV;
	*out = lvs;
	return 0;
}

/* An lvol by bdev name / alias / UUID (SPDK: spdk_bdev_get_by_name + vbdev). */
static struct lvol *lvol_lookup(const char *name)
{
	struct bdev *bdev = bdev_find(name);
	struct lvol *lv = bdev ? lvol_from_bdev(bdev) : NULL;

	return lv ? lv : lvol_find(name);
}

static void async_error(struct rpc_request *req, int status)
{
	rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, common_strerror(status));
}

static void done_true(void *arg, int status)
{
	if (status)
		async_error(arg, status);
	else
		rpc_request_reply_true(arg);
}

static void done_uuid(void *arg, struct lvol *lv, int status)
{
	if (status)
		async_error(arg, status);
	else
		rpc_request_reply(arg, json_string(lvol_uuid(lv)));
}

static json_t *lvs_json(const struct lvol_store *lvs)
{
	struct lvol_store_info i;

	lvol_store_get_info(lvs, &i);
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "uuid", i.uuid, "name", i.name,
			 "base_bdev", i.base_bdev, "total_data_clusters", (json_int_t)i.total_data_clusters,
			 "free_clusters", (json_int_t)i.free_clusters, "block_size", (json_int_t)i.block_size,
			 "cluster_size", (json_int_t)i.cluster_size,
			 "max_growable_size", (json_int_t)i.max_growable_size);
}

#define PUT(lit) TGT_PUT(b, lit)

/* A UUID string needs no escaping: copy it with its quotes. */
static int put_uuid(struct json_buf *b, const char *u)
{
	size_t n = strlen(u);
	int rc = json_buf_reserve(b, n + 2);

	if (rc)
		return rc;
	b->data[b->len++] = '"';
	memcpy(b->data + b->len, u, n);
	b->len += n;
	b->data[b->len++] = '"';
	return 0;
}

/* Appends `"key":true` / `"key":false` with a leading comma. */
static int put_bool(struct json_buf *b, const char *key_t, size_t lt, const char *key_f, size_t lf, bool v)
{
	return v ? tgt_put_mem(b, key_t, lt) : tgt_put_mem(b, key_f, lf);
}

#define PUT_BOOL(key, v) put_bool(b, ",\"" key "\":true", sizeof(",\"" key "\":true") - 1, \
				  ",\"" key "\":false", sizeof(",\"" key "\":false") - 1, (v))

/* One bdev_lvol_get_lvols entry, written straight as compact JSON (this
 * listing must stay fast with 10,000 lvols). `lvs_tail` is the store's
 * pre-rendered `,"lvs":{"name":..,"uuid":..}}`. */
static int lvol_write(struct json_buf *b, const struct lvol *lv, const struct json_buf *lvs_tail)
{
	struct lvol_info i;
	int rc = 0;

	lvol_get_info(lv, &i);
	rc |= PUT("{\"alias\":");
	rc |= tgt_put_str(b, i.alias);
	rc |= PUT(",\"uuid\":");
	rc |= put_uuid(b, i.uuid);
	rc |= PUT(",\"name\":");
	rc |= tgt_put_str(b, i.name);
	rc |= PUT_BOOL("is_thin_provisioned", i.thin);
	rc |= PUT_BOOL("is_snapshot", i.is_snapshot);
	rc |= PUT_BOOL("is_clone", i.is_clone);
	rc |= PUT_BOOL("is_esnap_clone", i.is_esnap_clone);
	rc |= PUT_BOOL("is_degraded", i.is_degraded);
	rc |= PUT(",\"num_allocated_clusters\":");
	rc |= tgt_put_u64(b, i.num_allocated_clusters);
	rc |= tgt_put_mem(b, lvs_tail->data, lvs_tail->len);
	return rc ? -ENOMEM : 0;
}

/* ------------------------------------------------------------ lvstores */

struct create_lvs_params {
	char *bdev_name, *lvs_name, *clear_method;
	uint32_t cluster_sz, ratio, md_page_size;
};

static const struct rpc_param create_lvs_spec[] = {
	{ "bdev_name", RPC_PARAM_STRING, offsetof(struct create_lvs_params, bdev_name), false },
	{ "lvs_name", RPC_PARAM_STRING, offsetof(struct create_lvs_params, lvs_name), false },
	{ "cluster_sz", RPC_PARAM_UINT32, offsetof(struct create_lvs_params, cluster_sz), true },
	{ "clear_method", RPC_PARAM_STRING, offsetof(struct create_lvs_params, clear_method), true },
	{ "num_md_pages_per_cluster_ratio", RPC_PARAM_UINT32, offsetof(struct create_lvs_params, ratio), true },
	{ "md_page_size", RPC_PARAM_UINT32, offsetof(struct create_lvs_params, md_page_size), true },
};

static void lvs_created(void *arg, struct lvol_store *lvs, int status)
{
	if (status) {
		async_error(arg, status);
		return;
	}
	LOG_INFO(TGT_LOG, "lvstore created name=%s uuid=%s", lvol_store_name(lvs), lvol_store_uuid(lvs));
	rpc_request_reply(arg, json_string(lvol_store_uuid(lvs)));
}

/* SPDK's clear_method spellings are case-insensitive. */
static int clear_method_parse(const char *s, enum lvol_clear_method *out)
{
	if (!strcasecmp(s, "none"))
		*out = LVOL_CLEAR_NONE;
	else if (!strcasecmp(s, "unmap"))
		*out = LVOL_CLEAR_UNMAP;
	else if (!strcasecmp(s, "write_zeroes"))
		*out = LVOL_CLEAR_WRITE_ZEROES;
	else
		return -EINVAL;
	return 0;
}

static void m_create_lvstore(struct rpc_request *req, json_t *params, void *ctx)
{
	struct create_lvs_params p = { 0 };
	struct lvol_store_opts o = { 0 };
	int rc;

	if (rpc_params_decode(params, create_lvs_spec, COMMON_ARRAY_SIZE(create_lvs_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	o.bdev_name = p.bdev_name;
	o.name = p.lvs_name;
	o.cluster_size = p.cluster_sz;
	o.md_pages_per_cluster_ratio = p.ratio;
	o.clear_method = LVOL_CLEAR_UNMAP;
	if (p.clear_method && clear_method_parse(p.clear_method, &o.clear_method)) {
		rpc_request_error(req, -EINVAL, "Invalid clear_method parameter");
		goto out;
	}
	if (p.md_page_size && p.md_page_size != 4096) {
		rpc_request_errno(req, -EINVAL);
		goto out;
	}
	rc = lvol_store_create(&o, lvs_created, req);
	if (rc)
		rpc_request_errno(req, rc);
out:
	rpc_params_free(create_lvs_spec, COMMON_ARRAY_SIZE(create_lvs_spec), &p);
}

struct lvs_sel_params {
	char *uuid, *lvs_name;
};

static const struct rpc_param lvs_sel_spec[] = {
	{ "uuid", RPC_PARAM_STRING, offsetof(struct lvs_sel_params, uuid), true },
	{ "lvs_name", RPC_PARAM_STRING, offsetof(struct lvs_sel_params, lvs_name), true },
};

static void m_get_lvstores(struct rpc_request *req, json_t *params, void *ctx)
{
	struct lvs_sel_params p = { 0 };
	struct lvol_store *lvs = NULL;
	json_t *arr;
	int rc;

	if (rpc_params_decode(params, lvs_sel_spec, COMMON_ARRAY_SIZE(lvs_sel_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (params) {
		rc = lvs_lookup(p.uuid, p.lvs_name, &lvs);
		if (rc) {
			rpc_request_errno(req, rc);
			goto out;
		}
	}
	arr = json_array();
	if (lvs) {
		if (arr && json_array_append_new(arr, lvs_json(lvs)))
			goto nomem;
	} else {
		for (lvs = lvol_store_first(); arr && lvs; lvs = lvol_store_next(lvs))
			if (json_array_append_new(arr, lvs_json(lvs)))
				goto nomem;
	}
	if (!arr) {
		rpc_request_errno(req, -ENOMEM);
		goto out;
	}
	rpc_request_reply(req, arr);
	goto out;
nomem:
	json_decref(arr);
	rpc_request_errno(req, -ENOMEM);
out:
	rpc_params_free(lvs_sel_spec, COMMON_ARRAY_SIZE(lvs_sel_spec), &p);
}

/* Shared shape of delete_lvstore / grow_lvstore. */
static void lvs_op(struct rpc_request *req, json_t *params,
		   int (*op)(struct lvol_store *, lvol_done_cb, void *))
{
	struct lvs_sel_params p = { 0 };
	struct lvol_store *lvs = NULL;
	int rc;

	if (rpc_params_decode(params, lvs_sel_spec, COMMON_ARRAY_SIZE(lvs_sel_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	rc = lvs_lookup(p.uuid, p.lvs_name, &lvs);
	if (!rc)
		rc = op(lvs, done_true, req);
	if (rc)
		rpc_request_errno(req, rc);
	rpc_params_free(lvs_sel_spec, COMMON_ARRAY_SIZE(lvs_sel_spec), &p);
}

static void m_delete_lvstore(struct rpc_request *req, json_t *params, void *ctx)
{
	lvs_op(req, params, lvol_store_destroy);
}

static void m_grow_lvstore(struct rpc_request *req, json_t *params, void *ctx)
{
	lvs_op(req, params, lvol_store_grow);
}

struct rename_params {
	char *old_name, *new_name;
};

static const struct rpc_param rename_spec[] = {
	{ "old_name", RPC_PARAM_STRING, offsetof(struct rename_params, old_name), false },
	{ "new_name", RPC_PARAM_STRING, offsetof(struct rename_params, new_name), false },
};

static void m_rename_lvstore(struct rpc_request *req, json_t *params, void *ctx)
{
	struct rename_params p = { 0 };
	struct lvol_store *lvs;
	int rc;

	if (rpc_params_decode(params, rename_spec, COMMON_ARRAY_SIZE(rename_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	lvs = lvol_store_find_by_name(p.old_name);
	if (!lvs) {
		rpc_request_errorf(req, -ENOENT, "Lvol store %s not found", p.old_name);
		goto out;
	}
	rc = lvol_store_rename(lvs, p.new_name, done_true, req);
	if (rc)
		async_error(req, rc); /* SPDK reports every rename failure from the callback */
out:
	rpc_params_free(rename_spec, COMMON_ARRAY_SIZE(rename_spec), &p);
}

/* --------------------------------------------------------------- lvols */

struct create_params {
	char *uuid, *lvs_name, *lvol_name, *clear_method;
	uint64_t size_in_mib;
	bool thin;
};

static const struct rpc_param create_spec[] = {
	{ "uuid", RPC_PARAM_STRING, offsetof(struct create_params, uuid), true },
	{ "lvs_name", RPC_PARAM_STRING, offsetof(struct create_params, lvs_name), true },
	{ "lvol_name", RPC_PARAM_STRING, offsetof(struct create_params, lvol_name), false },
	{ "size_in_mib", RPC_PARAM_UINT64, offsetof(struct create_params, size_in_mib), false },
	{ "thin_provision", RPC_PARAM_BOOL, offsetof(struct create_params, thin), true },
	{ "clear_method", RPC_PARAM_STRING, offsetof(struct create_params, clear_method), true },
};

static void m_lvol_create(struct rpc_request *req, json_t *params, void *ctx)
{
	struct create_params p = { 0 };
	enum lvol_clear_method cm = LVOL_CLEAR_DEFAULT;
	struct lvol_store *lvs = NULL;
	int rc;

	if (rpc_params_decode(params, create_spec, COMMON_ARRAY_SIZE(create_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	rc = lvs_lookup(p.uuid, p.lvs_name, &lvs);
	if (rc) {
		rpc_request_errno(req, rc);
		goto out;
	}
	if (p.clear_method && clear_method_parse(p.clear_method, &cm)) {
		rpc_request_error(req, -EINVAL, "Invalid clean_method option");
		goto out;
	}
	if (p.size_in_mib > UINT64_MAX / MIB) {
		rpc_request_errno(req, -EINVAL);
		goto out;
	}
	rc = lvol_create(lvs, p.lvol_name, p.size_in_mib * MIB, p.thin, cm, done_uuid, req);
	if (rc)
		rpc_request_errno(req, rc);
out:
	rpc_params_free(create_spec, COMMON_ARRAY_SIZE(create_spec), &p);
}

struct get_lvols_params {
	char *lvs_uuid, *lvs_name;
};

static const struct rpc_param get_lvols_spec[] = {
	{ "lvs_uuid", RPC_PARAM_STRING, offsetof(struct get_lvols_params, lvs_uuid), true },
	{ "lvs_name", RPC_PARAM_STRING, offsetof(struct get_lvols_params, lvs_name), true },
};

static int append_lvols(struct json_buf *b, const struct lvol_store *lvs, bool *first)
{
	struct json_buf tail = { 0 };
	struct lvol *lv;
	int rc = 0;

	rc |= json_buf_append_str(&tail, ",\"lvs\":{\"name\":");
	rc |= tgt_put_str(&tail, lvol_store_name(lvs));
	rc |= json_buf_append_str(&tail, ",\"uuid\":");
	rc |= tgt_put_str(&tail, lvol_store_uuid(lvs));
	rc |= json_buf_append_str(&tail, "}}");
	/* Memory latency, not formatting, is the cost at 10,000 lvols: the
	 * lvol two ahead and the blob of the next one are prefetched. */
	lv = lvol_first(lvs);
	if (lv)
		lvol_prefetch(lv);
	if (lv && lvol_next(lv))
		lvol_prefetch(lvol_next(lv));
	for (; !rc && lv; lv = lvol_next(lv)) {
		struct lvol *n1 = lvol_next(lv), *n2 = n1 ? lvol_next(n1) : NULL;

		if (n2)
			lvol_prefetch(n2);
		if (n1)
			lvol_prefetch_blob(n1);
		if (!*first)
			rc |= TGT_PUT(b, ",");
		*first = false;
		rc |= lvol_write(b, lv, &tail);
	}
	json_buf_free(&tail);
	return rc ? -ENOMEM : 0;
}

static void m_get_lvols(struct rpc_request *req, json_t *params, void *ctx)
{
	struct get_lvols_params p = { 0 };
	struct lvol_store *lvs = NULL;
	int rc = 0;

	if (rpc_params_decode(params, get_lvols_spec, COMMON_ARRAY_SIZE(get_lvols_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (params) {
		rc = lvs_lookup(p.lvs_uuid, p.lvs_name, &lvs);
		if (rc) {
			rpc_request_errno(req, rc);
			goto out;
		}
	}
	{
		/* written straight into the reply stream: no copy */
		struct json_buf *b = rpc_request_reply_raw_begin(req);
		bool first = true;
		unsigned n = 0;
		struct lvol_store *s;
		uint64_t t0 = clock_mono_us();
		size_t len0 = b->len;

		(void)ctx;
		for (s = lvol_store_first(); s; s = lvol_store_next(s))
			n += lvol_store_lvol_count(s);
		rc = json_buf_reserve(b, (size_t)n * 320 + 2);
		rc |= TGT_PUT(b, "[");
		if (lvs) {
			rc |= append_lvols(b, lvs, &first);
		} else {
			for (lvs = lvol_store_first(); !rc && lvs; lvs = lvol_store_next(lvs))
				rc |= append_lvols(b, lvs, &first);
		}
		rc |= TGT_PUT(b, "]");
		LOG_DEBUG(TGT_LOG, "bdev_lvol_get_lvols lvols=%u bytes=%zu us=%llu", n, b->len - len0,
			  (unsigned long long)(clock_mono_us() - t0));
		rpc_request_reply_raw_end(req, rc ? -ENOMEM : 0);
	}
out:
	rpc_params_free(get_lvols_spec, COMMON_ARRAY_SIZE(get_lvols_spec), &p);
}

struct resize_params {
	char *name;
	uint64_t size_in_mib;
};

static const struct rpc_param resize_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct resize_params, name), false },
	{ "size_in_mib", RPC_PARAM_UINT64, offsetof(struct resize_params, size_in_mib), false },
};

struct resize_ctx {
	struct tgt *t;
	struct rpc_request *req;
	struct lvol *lv;
};

static void resize_done(void *arg, int status)
{
	struct resize_ctx *c = arg;

	if (status) {
		async_error(c->req, status);
	} else {
		/* SPDK sends connected hosts a namespace-attribute-changed AEN. */
		nvmf_tgt_bdev_resized(c->t->nvmf, lvol_bdev(c->lv));
		rpc_request_reply_true(c->req);
	}
	mem_free(c);
}

static void m_lvol_resize(struct rpc_request *req, json_t *params, void *ctx)
{
	struct resize_params p = { 0 };
	struct resize_ctx *c;
	struct lvol *lv;
	int rc;

	if (rpc_params_decode(params, resize_spec, COMMON_ARRAY_SIZE(resize_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	lv = lvol_lookup(p.name);
	if (!lv) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	if (p.size_in_mib > UINT64_MAX / MIB) {
		async_error(req, -EINVAL);
		goto out;
	}
	c = mem_zalloc(sizeof(*c));
	if (!c) {
		rpc_request_errno(req, -ENOMEM);
		goto out;
	}
	c->t = ctx;
	c->req = req;
	c->lv = lv;
	rc = lvol_resize(lv, p.size_in_mib * MIB, resize_done, c);
	if (rc)
		resize_done(c, rc); /* SPDK: every resize failure comes from the callback */
out:
	rpc_params_free(resize_spec, COMMON_ARRAY_SIZE(resize_spec), &p);
}

struct name_params {
	char *name;
};

static const struct rpc_param name_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct name_params, name), false },
};

static void delete_done(void *arg, int status)
{
	if (status)
		rpc_request_error(arg, RPC_ERROR_INTERNAL, common_strerror(status));
	else
		rpc_request_reply_true(arg);
}

/* Shape of the one-name lvol operations. */
static void lvol_name_op(struct rpc_request *req, json_t *params,
			 int (*op)(struct lvol *, lvol_done_cb, void *), lvol_done_cb cb)
{
	struct name_params p = { 0 };
	struct lvol *lv;
	int rc;

	if (rpc_params_decode(params, name_spec, 1, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	lv = lvol_lookup(p.name);
	if (!lv) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	rc = op(lv, cb, req);
	if (rc)
		cb(req, rc);
out:
	rpc_params_free(name_spec, 1, &p);
}

static void m_lvol_delete(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_op(req, params, lvol_delete, delete_done);
}

static void m_lvol_inflate(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_op(req, params, lvol_inflate, done_true);
}

static void m_lvol_decouple(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_op(req, params, lvol_decouple_parent, done_true);
}

static void m_lvol_set_read_only(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_op(req, params, lvol_set_read_only, done_true);
}

/* snapshot and clone: look up the lvol named by the first param, create a
 * new one named by the second. A missing second name is SPDK's async
 * -EINVAL (clone_name is optional in its decoder). */
struct name_pair_params {
	char *source, *name;
};

static const struct rpc_param snapshot_spec[] = {
	{ "lvol_name", RPC_PARAM_STRING, offsetof(struct name_pair_params, source), false },
	{ "snapshot_name", RPC_PARAM_STRING, offsetof(struct name_pair_params, name), false },
};

static const struct rpc_param clone_spec[] = {
	{ "snapshot_name", RPC_PARAM_STRING, offsetof(struct name_pair_params, source), false },
	{ "clone_name", RPC_PARAM_STRING, offsetof(struct name_pair_params, name), true },
};

static void lvol_name_pair_op(struct rpc_request *req, json_t *params,
			      const struct rpc_param *spec, size_t nspec,
			      int (*op)(struct lvol *, const char *, lvol_cb, void *))
{
	struct name_pair_params p = { 0 };
	struct lvol *lv;
	int rc;

	if (rpc_params_decode(params, spec, nspec, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	lv = lvol_lookup(p.source);
	if (!lv) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	rc = p.name ? op(lv, p.name, done_uuid, req) : -EINVAL;
	if (rc)
		async_error(req, rc);
out:
	rpc_params_free(spec, nspec, &p);
}

static void m_lvol_snapshot(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_pair_op(req, params, snapshot_spec, COMMON_ARRAY_SIZE(snapshot_spec), lvol_snapshot);
}

static void m_lvol_clone(struct rpc_request *req, json_t *params, void *ctx)
{
	lvol_name_pair_op(req, params, clone_spec, COMMON_ARRAY_SIZE(clone_spec), lvol_clone);
}

static void m_lvol_rename(struct rpc_request *req, json_t *params, void *ctx)
{
	struct rename_params p = { 0 };
	struct lvol *lv;
	int rc;

	if (rpc_params_decode(params, rename_spec, COMMON_ARRAY_SIZE(rename_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	lv = lvol_lookup(p.old_name);
	if (!lv) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	rc = lvol_rename(lv, p.new_name, done_true, req);
	if (rc)
		async_error(req, rc);
out:
	rpc_params_free(rename_spec, COMMON_ARRAY_SIZE(rename_spec), &p);
}

int tgt_lvol_register(struct tgt *t)
{
	int rc = 0;

	rc |= tgt_method(t, "bdev_lvol_grow_lvstore", m_grow_lvstore, 0);
	rc |= tgt_method(t, "bdev_lvol_get_lvols", m_get_lvols, 0);
	rc |= tgt_method(t, "bdev_lvol_get_lvstores", m_get_lvstores, 0);
	rc |= tgt_method(t, "bdev_lvol_delete", m_lvol_delete, 0);
	rc |= tgt_method(t, "bdev_lvol_set_read_only", m_lvol_set_read_only, 0);
	rc |= tgt_method(t, "bdev_lvol_resize", m_lvol_resize, 0);
	rc |= tgt_method(t, "bdev_lvol_decouple_parent", m_lvol_decouple, 0);
	rc |= tgt_method(t, "bdev_lvol_inflate", m_lvol_inflate, 0);
	rc |= tgt_method(t, "bdev_lvol_rename", m_lvol_rename, 0);
	rc |= tgt_method(t, "bdev_lvol_clone", m_lvol_clone, 0);
	rc |= tgt_method(t, "bdev_lvol_snapshot", m_lvol_snapshot, 0);
	rc |= tgt_method(t, "bdev_lvol_create", m_lvol_create, 0);
	rc |= tgt_method(t, "bdev_lvol_delete_lvstore", m_delete_lvstore, 0);
	rc |= tgt_method(t, "bdev_lvol_rename_lvstore", m_rename_lvstore, 0);
	rc |= tgt_method(t, "bdev_lvol_create_lvstore", m_create_lvstore, 0);
	return rc ? -EINVAL : 0;
}
