/*
 * tgt_config.c: SPDK's configuration methods and the `-c config.json` load.
 *
 *   framework_get_subsystems  the subsystems with a config ("bdev", "nvmf")
 *   framework_get_config      {method, params} list of one subsystem; lvols
 *                             are not listed (they live on disk and come
 *                             back when their base bdev is examined)
 *   save_config / load_config rpc.py implements these client side over the
 *                             two methods above; disktgt also offers them
 *                             as methods ({"subsystems":[...]} out / in).
 *
 * Loading runs each {method, params} entry through the server's method
 * table (rpc_server_call_local), in order, waiting for each completion.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tgt/tgt_internal.h"

static const char *const subsystem_names[] = { "bdev", "nvmf" };

static int add_entry(json_t *list, const char *method, json_t *params)
{
	json_t *e = params ? json_pack("{s:s,s:o}", "method", method, "params", params) :
			     json_pack("{s:s}", "method", method);

	return e ? json_array_append_new(list, e) : -1;
}

static int bdev_config(struct tgt *t, json_t *list)
{
	struct bdev *b;
	int rc = 0;

	for (b = bdev_first(); b; b = bdev_next(b)) {
		const char *prod = bdev_product_name(b);
		struct tgt_aio *a;

		if (lvol_from_bdev(b))
			continue;
		a = tgt_aio_find(t, bdev_name(b));
		if (a) {
			/* SPDK's order; block_size only when it was given at create */
			json_t *pa = json_pack("{s:s}", "name", bdev_name(b));

			if (pa && a->block_size)
				rc |= json_object_set_new(pa, "block_size", json_integer(bdev_block_size(b)));
			if (pa) {
				rc |= json_object_set_new(pa, "filename", json_string(a->filename));
				rc |= json_object_set_new(pa, "readonly", json_boolean(a->readonly));
				rc |= json_object_set_new(pa, "fallocate", json_boolean(a->fallocate));
				rc |= json_object_set_new(pa, "uuid", json_string(bdev_uuid(b)));
				rc |= json_object_set_new(pa, "nowait", json_boolean(a->nowait));
			}
			rc |= add_entry(list, "bdev_aio_create", pa);
		} else if (prod && !strcmp(prod, "Malloc disk")) {
			rc |= add_entry(list, "bdev_malloc_create",
					json_pack("{s:s,s:I,s:i,s:i,s:s,s:i,s:i,s:i,s:b,s:i,s:i}",
						  "name", bdev_name(b), "num_blocks",
						  (json_int_t)bdev_num_blocks(b), "block_size",
						  (int)bdev_block_size(b), "physical_block_size",
						  (int)bdev_block_size(b), "uuid", bdev_uuid(b),
						  "optimal_io_boundary", 0, "md_size", 0, "dif_type", 0,
						  "dif_is_head_of_md", 0, "dif_pi_format", 0, "numa_id", -1));
		}
	}
	rc |= add_entry(list, "bdev_wait_for_examine", NULL);
	return rc;
}

static json_t *addr_obj(const struct nvmf_listen_addr *a)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "trtype", a->trtype, "adrfam", a->adrfam, "traddr",
			 a->traddr, "trsvcid", a->trsvcid);
}

static int nvmf_config(struct tgt *t, json_t *list)
{
	struct nvmf_transport *tr;
	struct nvmf_subsystem *s;
	struct nvmf_ns *ns;
	unsigned i;
	int rc = 0;

	for (tr = nvmf_transport_first(t->nvmf); tr; tr = nvmf_transport_next(tr)) {
		const struct nvmf_transport_opts *o = nvmf_transport_opts(tr);

		rc |= add_entry(list, "nvmf_create_transport",
				json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:b,s:b,s:i,s:i,s:i,s:i,s:b,s:i,s:i}",
					  "trtype", nvmf_transport_trtype(tr),
					  "max_queue_depth", (int)o->max_queue_depth,
					  "max_io_qpairs_per_ctrlr", (int)o->max_io_qpairs_per_ctrlr,
					  "in_capsule_data_size", (int)o->in_capsule_data_size,
					  "max_io_size", (int)o->max_io_size,
					  "io_unit_size", (int)o->io_unit_size,
					  "max_aq_depth", (int)o->max_aq_depth,
					  "iobuf_small_cache_size", (json_int_t)o->buf_cache_size,
					  "iobuf_large_cache_size", (json_int_t)o->buf_cache_size,
					  "dif_insert_or_strip", o->dif_insert_or_strip, "zcopy", o->zcopy,
					  "c2h_success", o->c2h_success, "sock_priority", (int)o->sock_priority,
					  "abort_timeout_sec", (int)o->abort_timeout_sec,
					  "ack_timeout", (int)o->ack_timeout,
					  "data_wr_pool_size", (int)o->data_wr_pool_size,
					  "disable_command_passthru", o->disable_command_passthru,
					  "kas", (int)o->kas, "min_kato", (int)o->min_kato));
	}
	for (s = nvmf_subsystem_first(t->nvmf); s; s = nvmf_subsystem_next(s)) {
		const char *nqn = nvmf_subsystem_nqn(s);

		if (nvmf_subsystem_subtype(s) != NVMF_SUBTYPE_NVME)
			continue;
		rc |= add_entry(list, "nvmf_create_subsystem",
				json_pack("{s:s,s:b,s:s,s:s,s:i,s:i,s:i,s:b}", "nqn", nqn,
					  "allow_any_host", nvmf_subsystem_allow_any_host(s),
					  "serial_number", nvmf_subsystem_serial_number(s),
					  "model_number", nvmf_subsystem_model_number(s),
					  "max_namespaces", tgt_subsys_no_max_ns(s) ? 0 :
					  (int)nvmf_subsystem_max_namespaces(s),
					  "min_cntlid", (int)nvmf_subsystem_min_cntlid(s),
					  "max_cntlid", (int)nvmf_subsystem_max_cntlid(s),
					  "ana_reporting", 0));
		for (i = 0; i < nvmf_subsystem_listener_count(s); i++)
			rc |= add_entry(list, "nvmf_subsystem_add_listener",
					json_pack("{s:s,s:o,s:b}", "nqn", nqn, "listen_address",
						  addr_obj(nvmf_subsystem_listener_get(s, i)),
						  "secure_channel", 0));
		for (i = 0; i < nvmf_subsystem_host_count(s); i++)
			rc |= add_entry(list, "nvmf_subsystem_add_host",
					json_pack("{s:s,s:s}", "nqn", nqn, "host",
						  nvmf_subsystem_host_get(s, i)));
		for (ns = nvmf_subsystem_ns_first(s); ns; ns = nvmf_subsystem_ns_next(ns))
			rc |= add_entry(list, "nvmf_subsystem_add_ns",
					json_pack("{s:s,s:{s:i,s:s,s:s,s:s,s:b}}", "nqn", nqn, "namespace",
						  "nsid", (int)nvmf_ns_nsid(ns),
						  "bdev_name", bdev_name(nvmf_ns_bdev(ns)),
						  "nguid", nvmf_ns_nguid(ns), "uuid", nvmf_ns_uuid(ns),
						  "no_auto_visible", 0));
	}
	return rc;
}

json_t *tgt_config_subsystem(struct tgt *t, const char *name)
{
	json_t *list = json_array();
	int rc = -1;

	if (!list)
		return NULL;
	if (!strcmp(name, "bdev"))
		rc = bdev_config(t, list);
	else if (!strcmp(name, "nvmf"))
		rc = nvmf_config(t, list);
	if (rc) {
		json_decref(list);
		return NULL;
	}
	return list;
}

static bool subsystem_known(const char *name)
{
	size_t i;

	for (i = 0; i < COMMON_ARRAY_SIZE(subsystem_names); i++)
		if (!strcmp(subsystem_names[i], name))
			return true;
	return false;
}

struct get_config_params {
	char *name;
};

static const struct rpc_param get_config_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct get_config_params, name), false },
};

static void m_framework_get_config(struct rpc_request *req, json_t *params, void *ctx)
{
	struct get_config_params p = { 0 };
	json_t *list;

	if (rpc_params_decode(params, get_config_spec, 1, &p)) {
		rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, "Invalid arguments");
		return;
	}
	if (!subsystem_known(p.name)) {
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Subsystem '%s' not found", p.name);
		goto out;
	}
	list = tgt_config_subsystem(ctx, p.name);
	if (list)
		rpc_request_reply(req, list);
	else
		rpc_request_errno(req, -ENOMEM);
out:
	rpc_params_free(get_config_spec, 1, &p);
}

static void m_framework_get_subsystems(struct rpc_request *req, json_t *params, void *ctx)
{
	json_t *r = json_pack("[{s:s,s:[]},{s:s,s:[s]}]", "subsystem", "bdev", "depends_on",
			      "subsystem", "nvmf", "depends_on", "bdev");

	if (r)
		rpc_request_reply(req, r);
	else
		rpc_request_errno(req, -ENOMEM);
}

static json_t *full_config(struct tgt *t)
{
	json_t *subs = json_array(), *res;
	size_t i;

	for (i = 0; subs && i < COMMON_ARRAY_SIZE(subsystem_names); i++) {
		json_t *list = tgt_config_subsystem(t, subsystem_names[i]);
		json_t *e = list ? json_pack("{s:s,s:o}", "subsystem", subsystem_names[i], "config", list) :
				   NULL;

		if (!e || json_array_append_new(subs, e)) {
			json_decref(subs);
			return NULL;
		}
	}
	res = subs ? json_pack("{s:o}", "subsystems", subs) : NULL;
	return res;
}

static void m_save_config(struct tgt *t, struct rpc_request *req)
{
	json_t *c = full_config(t);

	if (c)
		rpc_request_reply(req, c);
	else
		rpc_request_errno(req, -ENOMEM);
}

static void h_save_config(struct rpc_request *req, json_t *params, void *ctx)
{
	m_save_config(ctx, req);
}

/* ---------------------------------------------------------------- loading */

/* Applies the entries of a config one after another, in order, each
 * possibly completing later from the loop. Owns its reference to config. */
struct loader {
	struct tgt *t;
	json_t *config;
	size_t sub, ent;
	int busy;         /* 1: entry running, 2: running and will resume us */
	bool done;
	int code;         /* first failure (JSON-RPC code), 0 = ok */
	char message[256];
	struct rpc_request *req; /* load_config request, NULL for -c */
	bool abandoned;          /* -c gave up waiting: the loader frees itself */
};

/* Methods SPDK writes into configs that disktgt has no equivalent for; they
 * only tune SPDK internals, so skipping them changes nothing observable. */
static bool skippable(const char *m)
{
	static const char *const suffixes[] = { "_set_options", "_set_config", "_set_max_subsystems",
						"_set_crdt", "_set_hotplug" };
	static const char *const exact[] = { "framework_set_scheduler", "sock_set_default_impl",
					     "vmd_enable", "framework_start_init" };
	size_t i, ml = strlen(m);

	for (i = 0; i < COMMON_ARRAY_SIZE(exact); i++)
		if (!strcmp(m, exact[i]))
			return true;
	for (i = 0; i < COMMON_ARRAY_SIZE(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);

		if (ml >= sl && !strcmp(m + ml - sl, suffixes[i]))
			return true;
	}
	return false;
}

static int validate_config(const json_t *c)
{
	json_t *subs = json_object_get(c, "subsystems");
	size_t i;

	if (!json_is_array(subs))
		return -EINVAL;
	for (i = 0; i < json_array_size(subs); i++) {
		json_t *s = json_array_get(subs, i);
		json_t *cfg = json_object_get(s, "config");

		if (!json_is_object(s) || !json_is_string(json_object_get(s, "subsystem")))
			return -EINVAL;
		if (cfg && !json_is_array(cfg) && !json_is_null(cfg))
			return -EINVAL;
	}
	return 0;
}

static void loader_step(struct loader *l);

static void loader_finish(struct loader *l)
{
	l->done = true;
	if (!l->req && !l->abandoned)
		return; /* tgt_config_load() polls `done` */
	if (!l->req) {
		json_decref(l->config);
		mem_free(l);
		return;
	}
	if (l->code)
		rpc_request_error(l->req, l->code, l->message);
	else
		rpc_request_reply_true(l->req);
	json_decref(l->config);
	mem_free(l);
}

static void loader_resume(struct ev_loop *loop, void *arg)
{
	loader_step(arg);
}

static void loader_entry_done(void *arg, json_t *result, int code, const char *message)
{
	struct loader *l = arg;
	bool resume = l->busy == 2;

	l->busy = 0;
	if (code && !l->code) {
		l->code = code;
		snprintf(l->message, sizeof(l->message), "%s", message ? message : "");
	}
	if (resume && ev_defer(l->t->loop, loader_resume, l)) {
		LOG_ERROR(TGT_LOG, "config: cannot schedule the next entry");
		if (!l->code) {
			l->code = -ENOMEM;
			snprintf(l->message, sizeof(l->message), "%s", common_strerror(-ENOMEM));
		}
		loader_finish(l);
	}
}

static void loader_step(struct loader *l)
{
	json_t *subs = json_object_get(l->config, "subsystems");

	if (l->t->stopping && !l->code) {
		l->code = RPC_ERROR_INTERNAL;
		snprintf(l->message, sizeof(l->message), "disktgt is shutting down");
	}
	while (!l->code && l->sub < json_array_size(subs)) {
		json_t *cfg = json_object_get(json_array_get(subs, l->sub), "config");
		json_t *e, *params;
		const char *method;
		int rc;

		if (l->ent >= json_array_size(cfg)) {
			l->sub++;
			l->ent = 0;
			continue;
		}
		e = json_array_get(cfg, l->ent++);
		method = json_string_value(json_object_get(e, "method"));
		params = json_object_get(e, "params");
		if (!method) {
			l->code = RPC_ERROR_INVALID_PARAMS;
			snprintf(l->message, sizeof(l->message), "config entry without a method");
			break;
		}
		if (!rpc_server_has_method(l->t->server, method)) {
			if (skippable(method)) {
				LOG_INFO(TGT_LOG, "config: skipping SPDK tuning method=%s", method);
				continue;
			}
			l->code = RPC_ERROR_METHOD_NOT_FOUND;
			snprintf(l->message, sizeof(l->message), "Unknown method %s in the config", method);
			break;
		}
		if (json_is_object(params) && json_object_size(params) == 0)
			params = NULL; /* rpc.py omits empty params */
		l->busy = 1;
		rc = rpc_server_call_local(l->t->server, method, params, loader_entry_done, l);
		if (rc) {
			l->busy = 0;
			l->code = rc;
			snprintf(l->message, sizeof(l->message), "%s", common_strerror(rc));
			break;
		}
		if (l->busy) {
			l->busy = 2; /* completes later; loader_entry_done resumes us */
			return;
		}
		if (l->code)
			LOG_ERROR(TGT_LOG, "config: method=%s failed code=%d message=\"%s\"", method,
				  l->code, l->message);
	}
	loader_finish(l);
}

int tgt_config_load(struct tgt *t, const char *path)
{
	struct loader *l;
	json_error_t jerr;
	uint64_t deadline = clock_mono_ms() + 600000;
	json_t *config;
	int rc = 0;

	config = json_load_file(path, 0, &jerr);
	if (!config) {
		LOG_ERROR(TGT_LOG, "config: cannot parse file=%s line=%d error=\"%s\"", path, jerr.line,
			  jerr.text);
		return access(path, R_OK) ? -errno : -EINVAL;
	}
	if (validate_config(config)) {
		LOG_ERROR(TGT_LOG, "config: file=%s is not {\"subsystems\":[{subsystem, config}]}", path);
		json_decref(config);
		return -EINVAL;
	}
	l = mem_zalloc(sizeof(*l));
	if (!l) {
		json_decref(config);
		return -ENOMEM;
	}
	l->t = t;
	l->config = config;
	loader_step(l);
	while (!l->done && clock_mono_ms() < deadline)
		ev_loop_run_once(t->loop, 100);
	if (!l->done) {
		/* An entry still runs and holds the loader: it frees itself when done. */
		LOG_ERROR(TGT_LOG, "config: file=%s timed out", path);
		l->abandoned = true;
		return -ETIMEDOUT;
	}
	if (l->code) {
		LOG_ERROR(TGT_LOG, "config: file=%s failed code=%d message=\"%s\"", path, l->code, l->message);
		rc = l->code < 0 && l->code > -4096 ? l->code : -EINVAL;
	} else {
		LOG_INFO(TGT_LOG, "config loaded file=%s", path);
	}
	json_decref(l->config);
	mem_free(l);
	return rc;
}

/* load_config as a method: params are the config object itself. */
static void h_load_config(struct rpc_request *req, json_t *params, void *ctx)
{
	struct loader *l;

	if (!params || validate_config(params)) {
		rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, RPC_MSG_INVALID_PARAMS);
		return;
	}
	l = mem_zalloc(sizeof(*l));
	if (!l) {
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	l->t = ctx;
	l->req = req;
	l->config = json_deep_copy(params);
	if (!l->config) {
		mem_free(l);
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	loader_step(l);
}

int tgt_config_register(struct tgt *t)
{
	int rc = 0;

	rc |= tgt_method(t, "framework_get_subsystems", m_framework_get_subsystems, RPC_FLAG_NO_PARAMS);
	rc |= tgt_method(t, "framework_get_config", m_framework_get_config, 0);
	rc |= tgt_method(t, "save_config", h_save_config, RPC_FLAG_NO_PARAMS);
	rc |= tgt_method(t, "load_config", h_load_config, 0);
	return rc ? -EINVAL : 0;
}
