/*
 * tgt_bdev.c: SPDK's bdev methods: bdev_malloc_create/delete,
 * bdev_aio_create/delete/rescan, bdev_get_bdevs (same fields and key order
 * as SPDK), bdev_get_iostat, bdev_wait_for_examine.
 */
#include <errno.h>
#include <string.h>

#include "tgt/tgt_internal.h"

/* ------------------------------------------------------------ shared JSON */

static const char *const io_type_names[] = {
	"read", "write", "unmap", "flush", "reset", "nvme_admin", "nvme_io", "nvme_io_md",
	"write_zeroes", "zcopy", "get_zone_info", "zone_management", "zone_append", "compare",
	"compare_and_write", "abort", "seek_hole", "seek_data", "copy", "nvme_iov_md", "nvme_nssr",
	"write_uncorrectable",
};

/* `yes` lists the io types reported true (SPDK's per-driver answers). */
static json_t *io_types_new(const char *const *yes)
{
	json_t *o = json_object();
	size_t i, j;

	if (!o)
		return NULL;
	for (i = 0; i < COMMON_ARRAY_SIZE(io_type_names); i++) {
		bool v = false;

		for (j = 0; yes[j]; j++)
			if (!strcmp(yes[j], io_type_names[i]))
				v = true;
		if (json_object_set_new(o, io_type_names[i], json_boolean(v))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int tgt_bdev_shared_init(struct tgt *t)
{
	static const char *const lvol[] = { "read", "write", "unmap", "reset", "write_zeroes",
					    "seek_hole", "seek_data", NULL };
	static const char *const lvol_ro[] = { "read", "reset", "seek_hole", "seek_data", NULL };
	static const char *const mal[] = { "read", "write", "unmap", "flush", "reset", "write_zeroes",
					   "zcopy", "compare", "abort", "copy", NULL };
	static const char *const aio[] = { "read", "write", "flush", "reset", "write_zeroes", NULL };
	static const char *const other[] = { "read", "write", "flush", "reset", "write_zeroes", NULL };

	t->rate_limits = json_pack("{s:i,s:i,s:i,s:i}", "rw_ios_per_sec", 0, "rw_mbytes_per_sec", 0,
				   "r_mbytes_per_sec", 0, "w_mbytes_per_sec", 0);
	t->io_types_lvol = io_types_new(lvol);
	t->io_types_lvol_ro = io_types_new(lvol_ro);
	t->io_types_malloc = io_types_new(mal);
	t->io_types_aio = io_types_new(aio);
	t->io_types_other = io_types_new(other);
	if (!t->rate_limits || !t->io_types_lvol || !t->io_types_lvol_ro || !t->io_types_malloc ||
	    !t->io_types_aio || !t->io_types_other)
		return -ENOMEM;
	t->rate_limits_s = json_encode_dup(t->rate_limits);
	t->io_types_lvol_s = json_encode_dup(t->io_types_lvol);
	t->io_types_lvol_ro_s = json_encode_dup(t->io_types_lvol_ro);
	t->io_types_malloc_s = json_encode_dup(t->io_types_malloc);
	t->io_types_aio_s = json_encode_dup(t->io_types_aio);
	t->io_types_other_s = json_encode_dup(t->io_types_other);
	if (!t->rate_limits_s || !t->io_types_lvol_s || !t->io_types_lvol_ro_s || !t->io_types_malloc_s ||
	    !t->io_types_aio_s || !t->io_types_other_s)
		return -ENOMEM;
	t->rate_limits_n = strlen(t->rate_limits_s);
	t->io_types_lvol_n = strlen(t->io_types_lvol_s);
	t->io_types_lvol_ro_n = strlen(t->io_types_lvol_ro_s);
	t->io_types_malloc_n = strlen(t->io_types_malloc_s);
	t->io_types_aio_n = strlen(t->io_types_aio_s);
	t->io_types_other_n = strlen(t->io_types_other_s);
	return 0;
}

void tgt_bdev_shared_fini(struct tgt *t)
{
	json_decref(t->rate_limits);
	json_decref(t->io_types_lvol);
	json_decref(t->io_types_lvol_ro);
	json_decref(t->io_types_malloc);
	json_decref(t->io_types_aio);
	json_decref(t->io_types_other);
	mem_free(t->rate_limits_s);
	mem_free(t->io_types_lvol_s);
	mem_free(t->io_types_lvol_ro_s);
	mem_free(t->io_types_malloc_s);
	mem_free(t->io_types_aio_s);
	mem_free(t->io_types_other_s);
}

/* True if any of the 8 bytes in v is < 0x20, '"', '\\' or >= 0x7F (SWAR:
 * "has a zero byte" tests on v and on v xor each special byte). */
static inline bool word_needs_escape(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t lt20 = (v - ones * 0x20) & ~v;
	uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\'), del = v ^ (ones * 0x7F);
	uint64_t eq = ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((del - ones) & ~del);

	return ((lt20 | eq) & high) || (v & high);
}

/* Names and UUIDs rarely need escaping: strlen, a word-at-a-time check,
 * and a plain string is copied with its quotes (a byte loop over 10,000
 * bdevs' strings was a fifth of bdev_get_bdevs). */
int tgt_put_str(struct json_buf *b, const char *s)
{
	const char *p = s ? s : "";
	size_t n = strlen(p), i = 0;
	char *d;

	for (; i + 8 <= n; i += 8) {
		uint64_t v;

		memcpy(&v, p + i, 8);
		if (word_needs_escape(v))
			return json_encode_string(b, p, n);
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\')
			return json_encode_string(b, p, n);
	}
	if (b->cap - b->len <= n + 2 && json_buf_reserve(b, n + 2))
		return -ENOMEM;
	d = b->data + b->len;
	d[0] = '"';
	memcpy(d + 1, p, n);
	d[n + 1] = '"';
	b->len += n + 2;
	return 0;
}

int tgt_put_u64(struct json_buf *b, uint64_t v)
{
	char tmp[24], *e = tmp + sizeof(tmp), *p = e;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return tgt_put_mem(b, p, (size_t)(e - p));
}

void tgt_reply_buf(struct rpc_request *req, struct json_buf *b, int rc)
{
	if (rc)
		rpc_request_errno(req, -ENOMEM);
	else
		rpc_request_reply_raw(req, b->data, b->len);
	json_buf_free(b);
}

#define PUT(lit) TGT_PUT(b, lit)

static int write_lvol_driver(struct json_buf *b, const struct lvol *lv, const struct lvol_info *ip)
{
	const struct lvol_info i = *ip;
	unsigned k;
	int rc = 0;

	rc |= PUT("{\"lvol\":{\"lvol_store_uuid\":");
	rc |= tgt_put_str(b, i.lvs_uuid);
	rc |= PUT(",\"base_bdev\":");
	rc |= tgt_put_str(b, i.base_bdev);
	rc |= i.thin ? PUT(",\"thin_provision\":true") : PUT(",\"thin_provision\":false");
	rc |= PUT(",\"num_allocated_clusters\":");
	rc |= tgt_put_u64(b, i.num_allocated_clusters);
	rc |= i.is_snapshot ? PUT(",\"snapshot\":true") : PUT(",\"snapshot\":false");
	rc |= i.is_clone ? PUT(",\"clone\":true") : PUT(",\"clone\":false");
	if (i.is_snapshot && i.num_clones > 0) {
		rc |= PUT(",\"clones\":[");
		for (k = 0; k < i.num_clones; k++) {
			struct lvol *c = lvol_clone_get(lv, k);

			if (k)
				rc |= PUT(",");
			rc |= tgt_put_str(b, c ? lvol_name(c) : "");
		}
		rc |= PUT("]");
	}
	if (i.is_clone && i.base_snapshot) {
		rc |= PUT(",\"base_snapshot\":");
		rc |= tgt_put_str(b, i.base_snapshot);
	}
	rc |= i.is_esnap_clone ? PUT(",\"esnap_clone\":true}}") : PUT(",\"esnap_clone\":false}}");
	return rc;
}

static int write_aio_driver(struct json_buf *b, const struct tgt_aio *a)
{
	int rc = 0;

	rc |= PUT("{\"aio\":{\"filename\":");
	rc |= tgt_put_str(b, a->filename);
	rc |= a->block_size ? PUT(",\"block_size_override\":true") : PUT(",\"block_size_override\":false");
	rc |= a->readonly ? PUT(",\"readonly\":true") : PUT(",\"readonly\":false");
	rc |= a->fallocate ? PUT(",\"fallocate\":true") : PUT(",\"fallocate\":false");
	rc |= a->nowait ? PUT(",\"nowait\":true}}") : PUT(",\"nowait\":false}}");
	return rc;
}

int tgt_bdev_write(struct tgt *t, struct json_buf *b, struct bdev *bdev)
{
	const char *name = bdev_name(bdev), *uuid = bdev_uuid(bdev);
	const char *product = bdev_product_name(bdev);
	struct lvol *lv = lvol_from_bdev(bdev);
	struct tgt_aio *aio = lv ? NULL : tgt_aio_find(t, name);
	bool is_malloc = !lv && !aio && product && !strcmp(product, "Malloc disk");
	bool first = true;
	struct lvol_info li;
	unsigned i, n;
	int rc = 0;

	rc |= PUT("{\"name\":");
	rc |= tgt_put_str(b, name);
	rc |= PUT(",\"aliases\":[");
	if (strcmp(name, uuid) != 0) {
		rc |= tgt_put_str(b, uuid);
		first = false;
	}
	n = bdev_alias_count(bdev);
	for (i = 0; i < n; i++) {
		const char *al = bdev_alias_get(bdev, i);

		if (!al || !strcmp(al, uuid))
			continue;
		if (!first)
			rc |= PUT(",");
		rc |= tgt_put_str(b, al);
		first = false;
	}
	rc |= PUT("],\"product_name\":");
	rc |= tgt_put_str(b, product);
	rc |= PUT(",\"block_size\":");
	rc |= tgt_put_u64(b, bdev_block_size(bdev));
	rc |= PUT(",\"num_blocks\":");
	rc |= tgt_put_u64(b, bdev_num_blocks(bdev));
	rc |= PUT(",\"preferred_write_alignment\":0,\"preferred_write_granularity\":0,"
		  "\"optimal_write_size\":0,\"preferred_unmap_alignment\":0,"
		  "\"preferred_unmap_granularity\":0,\"uuid\":");
	rc |= tgt_put_str(b, uuid);
	if (is_malloc)
		rc |= PUT(",\"numa_id\":-1");
	rc |= PUT(",\"assigned_rate_limits\":");
	rc |= tgt_put_mem(b, t->rate_limits_s, t->rate_limits_n);
	if (bdev_claim_type(bdev) == BDEV_CLAIM_EXCL_WRITE)
		rc |= PUT(",\"claimed\":true,\"claim_type\":\"exclusive_write\"");
	else if (bdev_claim_type(bdev) != BDEV_CLAIM_NONE)
		rc |= PUT(",\"claimed\":true");
	else
		rc |= PUT(",\"claimed\":false");
	rc |= PUT(",\"zoned\":false,\"supported_io_types\":");
	if (lv) {
		lvol_get_info(lv, &li);
		if (li.is_snapshot)
			rc |= tgt_put_mem(b, t->io_types_lvol_ro_s, t->io_types_lvol_ro_n);
		else
			rc |= tgt_put_mem(b, t->io_types_lvol_s, t->io_types_lvol_n);
	} else if (aio) {
		rc |= tgt_put_mem(b, t->io_types_aio_s, t->io_types_aio_n);
	} else if (is_malloc) {
		rc |= tgt_put_mem(b, t->io_types_malloc_s, t->io_types_malloc_n);
	} else {
		rc |= tgt_put_mem(b, t->io_types_other_s, t->io_types_other_n);
	}
	rc |= PUT(",\"driver_specific\":");
	if (lv)
		rc |= write_lvol_driver(b, lv, &li);
	else if (aio)
		rc |= write_aio_driver(b, aio);
	else
		rc |= PUT("{}");
	rc |= PUT("}");
	return rc ? -ENOMEM : 0;
}

struct tgt_aio *tgt_aio_find(struct tgt *t, const char *name)
{
	struct tgt_aio *a;

	for (a = t->aios; a; a = a->next)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

/* ----------------------------------------------------------- bdev_malloc */

struct malloc_params {
	char *name, *uuid;
	uint64_t num_blocks;
	uint32_t block_size, physical_block_size, optimal_io_boundary, md_size, dif_pi_format;
	int32_t dif_type, numa_id;
	bool md_interleave, dif_is_head_of_md;
};

static const struct rpc_param malloc_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct malloc_params, name), true },
	{ "uuid", RPC_PARAM_STRING, offsetof(struct malloc_params, uuid), true },
	{ "num_blocks", RPC_PARAM_UINT64, offsetof(struct malloc_params, num_blocks), false },
	{ "block_size", RPC_PARAM_UINT32, offsetof(struct malloc_params, block_size), false },
	{ "physical_block_size", RPC_PARAM_UINT32, offsetof(struct malloc_params, physical_block_size), true },
	{ "optimal_io_boundary", RPC_PARAM_UINT32, offsetof(struct malloc_params, optimal_io_boundary), true },
	{ "md_size", RPC_PARAM_UINT32, offsetof(struct malloc_params, md_size), true },
	{ "md_interleave", RPC_PARAM_BOOL, offsetof(struct malloc_params, md_interleave), true },
	{ "dif_type", RPC_PARAM_INT32, offsetof(struct malloc_params, dif_type), true },
	{ "dif_is_head_of_md", RPC_PARAM_BOOL, offsetof(struct malloc_params, dif_is_head_of_md), true },
	{ "dif_pi_format", RPC_PARAM_UINT32, offsetof(struct malloc_params, dif_pi_format), true },
	{ "numa_id", RPC_PARAM_INT32, offsetof(struct malloc_params, numa_id), true },
};

static void m_bdev_malloc_create(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct malloc_params p = { 0 };
	char gen[32];
	const char *name;
	struct bdev *bdev;
	int rc;

	if (rpc_params_decode(params, malloc_spec, COMMON_ARRAY_SIZE(malloc_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (p.block_size % 512 != 0 || p.block_size == 0) {
		rpc_request_errorf(req, -EINVAL, "Data block size %u is not a multiple of 512", p.block_size);
		goto out;
	}
	if (p.md_size || p.dif_type) {
		/* No metadata / protection information in disktgt. */
		rpc_request_errno(req, -ENOTSUP);
		goto out;
	}
	name = p.name;
	if (!name) {
		/* SPDK: a counter of unnamed creates, no search for a free name */
		snprintf(gen, sizeof(gen), "Malloc%u", t->malloc_next++);
		name = gen;
	}
	rc = bdev_malloc_create(name, p.uuid, p.num_blocks, p.block_size, &bdev);
	if (rc) {
		rpc_request_errno(req, rc);
		goto out;
	}
	LOG_INFO(TGT_LOG, "malloc bdev created name=%s blocks=%llu block_size=%u", name,
		 (unsigned long long)p.num_blocks, p.block_size);
	rpc_request_reply(req, json_string(bdev_name(bdev)));
out:
	rpc_params_free(malloc_spec, COMMON_ARRAY_SIZE(malloc_spec), &p);
}

struct name_params {
	char *name;
};

static const struct rpc_param name_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct name_params, name), false },
};

static void aio_forget(struct tgt *t, const char *name);

/* bdev_malloc_delete / bdev_aio_delete: SPDK hot-removes the bdev: an
 * lvstore on it is unloaded (not destroyed: re-creating the bdev brings it
 * back), namespaces on it disappear, then the bdev goes. */
struct remove_ctx {
	struct tgt *t;
	struct rpc_request *req;
	bool aio;
	char name[BDEV_NAME_MAX];
};

static void remove_finish(struct remove_ctx *c, int status)
{
	struct bdev *bdev = status ? NULL : bdev_find(c->name);
	int rc = status;

	if (!rc && !bdev)
		rc = -ENODEV;
	if (!rc) {
		if (bdev_claim_type(bdev) != BDEV_CLAIM_NONE)
			nvmf_tgt_bdev_removed(c->t->nvmf, bdev);
		rc = bdev_unregister(bdev);
	}
	if (!rc && c->aio)
		aio_forget(c->t, c->name);
	if (rc)
		rpc_request_errno(c->req, rc);
	else
		rpc_request_reply_true(c->req);
	mem_free(c);
}

static void remove_unloaded(void *arg, int status)
{
	struct remove_ctx *c = arg;

	if (status)
		LOG_ERROR(TGT_LOG, "lvstore unload before bdev delete failed bdev=%s rc=%d", c->name, status);
	remove_finish(c, status);
}

static void tgt_bdev_remove(struct tgt *t, struct rpc_request *req, struct bdev *bdev, bool aio)
{
	struct remove_ctx *c = mem_zalloc(sizeof(*c));
	struct lvol_store *lvs;
	int rc;

	if (!c) {
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	c->t = t;
	c->req = req;
	c->aio = aio;
	snprintf(c->name, sizeof(c->name), "%s", bdev_name(bdev));
	for (lvs = lvol_store_first(); lvs; lvs = lvol_store_next(lvs)) {
		if (lvol_store_base_bdev(lvs) == bdev) {
			LOG_INFO(TGT_LOG, "hot remove: unloading lvstore name=%s of bdev=%s",
				 lvol_store_name(lvs), c->name);
			rc = lvol_store_unload(lvs, remove_unloaded, c);
			if (rc)
				remove_finish(c, rc);
			return;
		}
	}
	remove_finish(c, 0);
}

static void m_bdev_malloc_delete(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct name_params p = { 0 };
	struct bdev *bdev;
	const char *product;

	if (rpc_params_decode(params, name_spec, 1, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	bdev = bdev_find(p.name);
	product = bdev ? bdev_product_name(bdev) : NULL;
	if (!bdev || !product || strcmp(product, "Malloc disk") != 0) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	tgt_bdev_remove(t, req, bdev, false);
out:
	rpc_params_free(name_spec, 1, &p);
}

/* -------------------------------------------------------------- bdev_aio */

struct aio_params {
	char *filename, *name, *uuid;
	uint32_t block_size;
	bool readonly, fallocate, nowait;
};

static const struct rpc_param aio_spec[] = {
	{ "filename", RPC_PARAM_STRING, offsetof(struct aio_params, filename), false },
	{ "name", RPC_PARAM_STRING, offsetof(struct aio_params, name), false },
	{ "block_size", RPC_PARAM_UINT32, offsetof(struct aio_params, block_size), true },
	{ "readonly", RPC_PARAM_BOOL, offsetof(struct aio_params, readonly), true },
	{ "fallocate", RPC_PARAM_BOOL, offsetof(struct aio_params, fallocate), true },
	{ "nowait", RPC_PARAM_BOOL, offsetof(struct aio_params, nowait), true },
	{ "uuid", RPC_PARAM_STRING, offsetof(struct aio_params, uuid), true },
};

static void m_bdev_aio_create(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct aio_params p = { 0 };
	struct tgt_aio *a = NULL;
	struct bdev *bdev;
	int rc;

	if (rpc_params_decode(params, aio_spec, COMMON_ARRAY_SIZE(aio_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	a = mem_zalloc(sizeof(*a));
	if (a) {
		a->name = mem_strdup(p.name);
		a->filename = mem_strdup(p.filename);
	}
	if (!a || !a->name || !a->filename) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = bdev_aio_create(p.name, p.filename, p.block_size, p.readonly, p.uuid, &bdev);
	if (rc)
		goto fail;
	a->block_size = p.block_size;
	a->readonly = p.readonly;
	a->fallocate = p.fallocate;
	a->nowait = p.nowait;
	a->next = t->aios;
	t->aios = a;
	LOG_INFO(TGT_LOG, "aio bdev created name=%s file=%s", p.name, p.filename);
	rpc_request_reply(req, json_string(bdev_name(bdev)));
	rpc_params_free(aio_spec, COMMON_ARRAY_SIZE(aio_spec), &p);
	return;
fail:
	if (a) {
		mem_free(a->name);
		mem_free(a->filename);
		mem_free(a);
	}
	rpc_request_errno(req, rc);
	rpc_params_free(aio_spec, COMMON_ARRAY_SIZE(aio_spec), &p);
}

static void aio_forget(struct tgt *t, const char *name)
{
	struct tgt_aio **pp, *a;

	for (pp = &t->aios; (a = *pp); pp = &a->next) {
		if (!strcmp(a->name, name)) {
			*pp = a->next;
			mem_free(a->name);
			mem_free(a->filename);
			mem_free(a);
			return;
		}
	}
}

static void m_bdev_aio_delete(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct name_params p = { 0 };
	struct bdev *bdev;

	if (rpc_params_decode(params, name_spec, 1, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	bdev = bdev_find(p.name);
	if (!bdev || !bdev_aio_filename(bdev)) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	tgt_bdev_remove(t, req, bdev, true);
out:
	rpc_params_free(name_spec, 1, &p);
}

static void m_bdev_aio_rescan(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct name_params p = { 0 };
	struct bdev *bdev;
	int rc;

	if (rpc_params_decode(params, name_spec, 1, &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	bdev = bdev_find(p.name);
	if (!bdev || !bdev_aio_filename(bdev)) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	rc = bdev_aio_rescan(bdev);
	if (rc) {
		rpc_request_errno(req, rc);
	} else {
		nvmf_tgt_bdev_resized(t->nvmf, bdev); /* hosts get a namespace-changed AEN */
		rpc_request_reply_true(req);
	}
out:
	rpc_params_free(name_spec, 1, &p);
}

/* -------------------------------------------------------- bdev_get_bdevs */

struct get_bdevs_params {
	char *name;
	uint64_t timeout_ms;
};

static const struct rpc_param get_bdevs_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct get_bdevs_params, name), true },
	{ "timeout_ms", RPC_PARAM_UINT64, offsetof(struct get_bdevs_params, timeout_ms), true },
};

/* A bdev_get_bdevs waiting (timeout_ms) for its bdev to appear. */
struct get_bdevs_wait {
	struct get_bdevs_wait *next;
	struct tgt *t;
	struct rpc_request *req;
	struct ev_timer *timer;
	char *name;
	uint64_t deadline_ms;
};

static void wait_unlink(struct get_bdevs_wait *w)
{
	struct get_bdevs_wait **pp;

	for (pp = &w->t->waits; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
}

void tgt_bdev_waits_cancel(struct tgt *t)
{
	struct get_bdevs_wait *w;

	while ((w = t->waits)) {
		t->waits = w->next;
		ev_timer_stop(t->loop, w->timer);
		rpc_request_errno(w->req, -ENODEV);
		mem_free(w->name);
		mem_free(w);
	}
}

static void reply_one_bdev(struct tgt *t, struct rpc_request *req, struct bdev *bdev)
{
	struct json_buf b = { 0 };
	int rc = json_buf_append(&b, "[", 1);

	rc |= tgt_bdev_write(t, &b, bdev);
	rc |= json_buf_append(&b, "]", 1);
	tgt_reply_buf(req, &b, rc);
}

static void get_bdevs_poll(struct ev_loop *loop, struct ev_timer *timer, void *arg)
{
	struct get_bdevs_wait *w = arg;
	struct bdev *bdev = bdev_find(w->name);

	if (!bdev && clock_mono_ms() < w->deadline_ms)
		return;
	ev_timer_stop(loop, timer);
	wait_unlink(w);
	if (bdev)
		reply_one_bdev(w->t, w->req, bdev);
	else
		rpc_request_errno(w->req, -ENODEV);
	mem_free(w->name);
	mem_free(w);
}

static void prefetch_lines(const void *p, size_t len)
{
	for (size_t off = 0; off < len; off += 64)
		__builtin_prefetch((const char *)p + off);
}

/* While bdev i is written: bdev i+3's struct is fetched, bdev i+2's
 * strings and lvol (its struct is in by then), bdev i+1's blob and alias
 * (its lvol is in). Every load here hits lines fetched an iteration
 * earlier, so nothing stalls. The struct's size is private to src/bdev:
 * 256 bytes covers the fields read (a prefetch past the end is harmless). */
static void bdev_prefetch_ahead(const struct bdev *bdev)
{
	const struct bdev *n1 = bdev_next(bdev);
	const struct bdev *n2 = n1 ? bdev_next(n1) : NULL;
	const struct bdev *n3 = n2 ? bdev_next(n2) : NULL;
	struct lvol *lv;

	if (n3)
		prefetch_lines(n3, 256);
	if (n2) {
		__builtin_prefetch(bdev_name(n2));
		__builtin_prefetch(bdev_product_name(n2));
		lv = lvol_from_bdev(n2);
		if (lv)
			lvol_prefetch(lv);
	}
	if (n1) {
		if (bdev_alias_count(n1))
			__builtin_prefetch(bdev_alias_get(n1, 0));
		lv = lvol_from_bdev(n1);
		if (lv)
			lvol_prefetch_blob(lv);
	}
}

static void m_bdev_get_bdevs(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct get_bdevs_params p = { 0 };
	struct bdev *bdev;

	if (rpc_params_decode(params, get_bdevs_spec, COMMON_ARRAY_SIZE(get_bdevs_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (p.name) {
		bdev = bdev_find(p.name);
		if (bdev) {
			reply_one_bdev(t, req, bdev);
		} else if (p.timeout_ms > 0) {
			struct get_bdevs_wait *w = mem_zalloc(sizeof(*w));

			if (w) {
				w->t = t;
				w->req = req;
				w->deadline_ms = clock_mono_ms() + p.timeout_ms;
			}
			if (!w || !(w->name = mem_strdup(p.name)) ||
			    ev_timer_start(t->loop, 5, 5, get_bdevs_poll, w, &w->timer)) {
				if (w)
					mem_free(w->name);
				mem_free(w);
				rpc_request_errno(req, -ENOMEM);
			} else {
				w->next = t->waits;
				t->waits = w;
			}
		} else {
			rpc_request_errno(req, -ENODEV);
		}
		goto out;
	}
	{
		/* written straight into the reply stream: no copy of the ~1 KB
		 * per bdev */
		struct json_buf *b = rpc_request_reply_raw_begin(req);
		int rc;

		rc = json_buf_reserve(b, (size_t)bdev_count() * 1100 + 2);
		rc |= TGT_PUT(b, "[");
		/* Memory latency, not formatting, is the cost at 10,000 bdevs:
		 * a three-stage prefetch (see bdev_prefetch_ahead). */
		for (bdev = bdev_first(); !rc && bdev; bdev = bdev_next(bdev)) {
			bdev_prefetch_ahead(bdev);
			if (bdev != bdev_first())
				rc |= TGT_PUT(b, ",");
			rc |= tgt_bdev_write(t, b, bdev);
		}
		rc |= TGT_PUT(b, "]");
		rpc_request_reply_raw_end(req, rc ? -ENOMEM : 0);
	}
out:
	rpc_params_free(get_bdevs_spec, COMMON_ARRAY_SIZE(get_bdevs_spec), &p);
}

/* ------------------------------------------------------- bdev_get_iostat */

struct iostat_params {
	json_t *names;
	bool per_channel;
};

static const struct rpc_param iostat_spec[] = {
	{ "names", RPC_PARAM_ARRAY, offsetof(struct iostat_params, names), true },
	{ "per_channel", RPC_PARAM_BOOL, offsetof(struct iostat_params, per_channel), true },
};

static json_t *iostat_json(struct bdev *bdev)
{
	const struct bdev_io_stat *s = bdev_stat(bdev);

#define U(x) ((json_int_t)(x))
	/* SPDK adds queue_depth* / io_time only when queue-depth sampling is
	 * enabled (never here), and driver_specific only for drivers with device
	 * stats (NVMe): neither appears for malloc, aio or lvol bdevs. */
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I,s:I,s:I,s:{}}",
			 "name", bdev_name(bdev),
			 "bytes_read", U(s->bytes_read), "num_read_ops", U(s->num_read_ops),
			 "bytes_written", U(s->bytes_written), "num_write_ops", U(s->num_write_ops),
			 "bytes_unmapped", U(s->bytes_unmapped), "num_unmap_ops", U(s->num_unmap_ops),
			 "bytes_copied", U(s->bytes_copied), "num_copy_ops", U(s->num_copy_ops),
			 "read_latency_ticks", U(s->read_latency_ticks),
			 "max_read_latency_ticks", U(s->max_read_latency_ticks),
			 "min_read_latency_ticks", U(s->min_read_latency_ticks),
			 "write_latency_ticks", U(s->write_latency_ticks),
			 "max_write_latency_ticks", U(s->max_write_latency_ticks),
			 "min_write_latency_ticks", U(s->min_write_latency_ticks),
			 "unmap_latency_ticks", U(s->unmap_latency_ticks),
			 "max_unmap_latency_ticks", U(s->max_unmap_latency_ticks),
			 "min_unmap_latency_ticks", U(s->min_unmap_latency_ticks),
			 "copy_latency_ticks", U(0), "max_copy_latency_ticks", U(0),
			 "min_copy_latency_ticks", U(0), "io_error");
#undef U
}

static void m_bdev_get_iostat(struct rpc_request *req, json_t *params, void *ctx)
{
	struct iostat_params p = { 0 };
	struct bdev *bdev;
	json_t *res = NULL, *arr;
	size_t i;

	if (rpc_params_decode(params, iostat_spec, COMMON_ARRAY_SIZE(iostat_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (p.names) {
		for (i = 0; i < json_array_size(p.names); i++) {
			if (!json_is_string(json_array_get(p.names, i))) {
				rpc_request_decode_failed(req);
				goto out;
			}
		}
	}
	arr = json_array();
	res = json_pack("{s:I,s:I,s:o}", "tick_rate", (json_int_t)bdev_tick_rate(),
			"ticks", (json_int_t)bdev_ticks(), "bdevs", arr);
	if (!res)
		goto nomem;
	if (p.names && json_array_size(p.names) > 0) {
		for (i = 0; i < json_array_size(p.names); i++) {
			bdev = bdev_find(json_string_value(json_array_get(p.names, i)));
			if (!bdev) {
				json_decref(res);
				rpc_request_errno(req, -ENODEV);
				goto out;
			}
			if (json_array_append_new(arr, iostat_json(bdev)))
				goto nomem;
		}
	} else {
		for (bdev = bdev_first(); bdev; bdev = bdev_next(bdev))
			if (json_array_append_new(arr, iostat_json(bdev)))
				goto nomem;
	}
	rpc_request_reply(req, res);
	goto out;
nomem:
	json_decref(res);
	rpc_request_errno(req, -ENOMEM);
out:
	rpc_params_free(iostat_spec, COMMON_ARRAY_SIZE(iostat_spec), &p);
}

/* ------------------------------------------------- bdev_wait_for_examine */

static void examine_done(void *arg)
{
	rpc_request_reply_true(arg);
}

static void m_bdev_wait_for_examine(struct rpc_request *req, json_t *params, void *ctx)
{
	int rc = bdev_wait_for_examine(examine_done, req);

	if (rc)
		rpc_request_errno(req, rc);
}

int tgt_bdev_register(struct tgt *t)
{
	int rc = 0;

	rc |= tgt_method(t, "bdev_wait_for_examine", m_bdev_wait_for_examine, RPC_FLAG_NO_PARAMS);
	rc |= tgt_method(t, "bdev_get_iostat", m_bdev_get_iostat, 0);
	rc |= tgt_method(t, "bdev_get_bdevs", m_bdev_get_bdevs, 0);
	rc |= tgt_method(t, "bdev_aio_delete", m_bdev_aio_delete, 0);
	rc |= tgt_method(t, "bdev_aio_rescan", m_bdev_aio_rescan, 0);
	rc |= tgt_method(t, "bdev_aio_create", m_bdev_aio_create, 0);
	rc |= tgt_method(t, "bdev_malloc_delete", m_bdev_malloc_delete, 0);
	rc |= tgt_method(t, "bdev_malloc_create", m_bdev_malloc_create, 0);
	return rc ? -EINVAL : 0;
}
