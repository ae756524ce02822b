/*
 * tgt_nvmf.c: SPDK's NVMe-oF methods (nvmf_*): transports, subsystems,
 * listeners, namespaces, hosts, controllers, qpairs and stats. Kept in
 * memory by src/nvmf as SPDK keeps them (the agent re-ensures them).
 *
 * Errors as SPDK's nvmf RPCs report them: parameter decode failures are
 * -32602 "Invalid parameters" (not lvol's -32603), an unknown subsystem is
 * -32602 "Subsystem with NQN '<nqn>' not found", most other failures
 * -32602 "Invalid parameters" or -32603 with a fixed text.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "tgt/tgt_internal.h"

/* SPDK's defaults: 1 GiB of 512 B blocks per discard range, 2^12 minimum
 * pages (4 KiB) per write zeroes. */
#define TGT_DEFAULT_DMRSL 2097152
#define TGT_DEFAULT_WZSL 12

#define INVALID_PARAMS(req) rpc_request_error((req), RPC_ERROR_INVALID_PARAMS, RPC_MSG_INVALID_PARAMS)

static struct nvmf_subsystem *subsys_lookup(struct tgt *t, struct rpc_request *req, const char *nqn)
{
	struct nvmf_subsystem *s = nvmf_subsystem_find(t->nvmf, nqn);

	if (!s)
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Subsystem with NQN '%s' not found", nqn);
	return s;
}

/* The only target name SPDK's default app has is none (NULL): any given
 * tgt_name names a target that does not exist. */
static bool bad_tgt_name(struct rpc_request *req, const char *tgt_name)
{
	if (!tgt_name)
		return false;
	rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "NVMf target '%s' not found", tgt_name);
	return true;
}

/* Keeps only the keys of `spec` (SPDK's relaxed decoding ignores the rest). */
static json_t *relaxed(const json_t *params, const struct rpc_param *spec, size_t n)
{
	json_t *o;
	size_t i;

	if (!json_is_object(params))
		return json_incref((json_t *)params);
	o = json_object();
	for (i = 0; o && i < n; i++) {
		json_t *v = json_object_get(params, spec[i].name);

		if (v && json_object_set(o, spec[i].name, v)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

const struct tgt_nqn *tgt_subsys_extra(const struct nvmf_subsystem *s)
{
	return nvmf_subsystem_ctx(s);
}

bool tgt_subsys_no_max_ns(const struct nvmf_subsystem *s)
{
	const struct tgt_nqn *n = tgt_subsys_extra(s);

	return n && n->no_max_ns;
}

static void subsys_extra_unlink(struct tgt *t, struct tgt_nqn *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		t->subsys_extras = n->next;
	if (n->next)
		n->next->prev = n->prev;
	mem_free(n);
}

void tgt_subsys_forget_all(struct tgt *t)
{
	while (t->subsys_extras)
		subsys_extra_unlink(t, t->subsys_extras);
}

/* ------------------------------------------------------------ transports */

struct transport_params {
	char *trtype, *tgt_name;
	uint16_t max_queue_depth, max_io_qpairs_per_ctrlr, kas;
	uint32_t in_capsule_data_size, max_io_size, io_unit_size, max_aq_depth, num_shared_buffers,
		buf_cache_size, iobuf_small, iobuf_large, abort_timeout_sec, acceptor_poll_rate,
		ack_timeout, data_wr_pool_size, min_kato;
	int32_t sock_priority;
	bool dif_insert_or_strip, zcopy, disable_command_passthru, c2h_success;
	bool has_small, has_buf_cache;
};

#define TP(f) offsetof(struct transport_params, f)
static const struct rpc_param transport_spec[] = {
	{ "trtype", RPC_PARAM_STRING, TP(trtype), false },
	{ "max_queue_depth", RPC_PARAM_UINT16, TP(max_queue_depth), true },
	{ "max_io_qpairs_per_ctrlr", RPC_PARAM_UINT16, TP(max_io_qpairs_per_ctrlr), true },
	{ "in_capsule_data_size", RPC_PARAM_UINT32, TP(in_capsule_data_size), true },
	{ "max_io_size", RPC_PARAM_UINT32, TP(max_io_size), true },
	{ "io_unit_size", RPC_PARAM_UINT32, TP(io_unit_size), true },
	{ "max_aq_depth", RPC_PARAM_UINT32, TP(max_aq_depth), true },
	{ "num_shared_buffers", RPC_PARAM_UINT32, TP(num_shared_buffers), true },
	{ "buf_cache_size", RPC_PARAM_UINT32, TP(buf_cache_size), true },
	{ "iobuf_small_cache_size", RPC_PARAM_UINT32, TP(iobuf_small), true },
	{ "iobuf_large_cache_size", RPC_PARAM_UINT32, TP(iobuf_large), true },
	{ "dif_insert_or_strip", RPC_PARAM_BOOL, TP(dif_insert_or_strip), true },
	{ "abort_timeout_sec", RPC_PARAM_UINT32, TP(abort_timeout_sec), true },
	{ "zcopy", RPC_PARAM_BOOL, TP(zcopy), true },
	{ "tgt_name", RPC_PARAM_STRING, TP(tgt_name), true },
	{ "acceptor_poll_rate", RPC_PARAM_UINT32, TP(acceptor_poll_rate), true },
	{ "ack_timeout", RPC_PARAM_UINT32, TP(ack_timeout), true },
	{ "data_wr_pool_size", RPC_PARAM_UINT32, TP(data_wr_pool_size), true },
	{ "disable_command_passthru", RPC_PARAM_BOOL, TP(disable_command_passthru), true },
	{ "kas", RPC_PARAM_UINT16, TP(kas), true },
	{ "min_kato", RPC_PARAM_UINT32, TP(min_kato), true },
	/* TCP-specific keys SPDK's TCP transport decodes itself */
	{ "c2h_success", RPC_PARAM_BOOL, TP(c2h_success), true },
	{ "sock_priority", RPC_PARAM_INT32, TP(sock_priority), true },
};

static void m_create_transport(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct transport_params p = { 0 };
	struct nvmf_transport_opts o;
	json_t *known = relaxed(params, transport_spec, COMMON_ARRAY_SIZE(transport_spec));
	int rc;

	nvmf_transport_opts_init(&o);
	p.max_queue_depth = o.max_queue_depth;
	p.max_io_qpairs_per_ctrlr = o.max_io_qpairs_per_ctrlr;
	p.in_capsule_data_size = o.in_capsule_data_size;
	p.max_io_size = o.max_io_size;
	p.io_unit_size = o.io_unit_size;
	p.max_aq_depth = o.max_aq_depth;
	p.num_shared_buffers = o.num_shared_buffers;
	p.iobuf_small = o.buf_cache_size;
	p.iobuf_large = o.buf_cache_size;
	p.buf_cache_size = o.buf_cache_size;
	p.dif_insert_or_strip = o.dif_insert_or_strip;
	p.abort_timeout_sec = o.abort_timeout_sec;
	p.zcopy = o.zcopy;
	p.ack_timeout = o.ack_timeout;
	p.data_wr_pool_size = o.data_wr_pool_size;
	p.disable_command_passthru = o.disable_command_passthru;
	p.kas = (uint16_t)o.kas;
	p.min_kato = o.min_kato;
	p.c2h_success = o.c2h_success;
	p.sock_priority = o.sock_priority;
	if (!known || rpc_params_decode(known, transport_spec, COMMON_ARRAY_SIZE(transport_spec), &p)) {
		json_decref(known);
		INVALID_PARAMS(req);
		return;
	}
	json_decref(known);
	if (p.tgt_name) {
		rpc_request_error(req, RPC_ERROR_INTERNAL, "Unable to find a target.");
		goto out;
	}
	o.max_queue_depth = p.max_queue_depth;
	o.max_io_qpairs_per_ctrlr = p.max_io_qpairs_per_ctrlr;
	o.in_capsule_data_size = p.in_capsule_data_size;
	o.max_io_size = p.max_io_size;
	o.io_unit_size = p.io_unit_size;
	o.max_aq_depth = p.max_aq_depth;
	o.num_shared_buffers = p.num_shared_buffers;
	o.buf_cache_size = p.iobuf_small;
	o.dif_insert_or_strip = p.dif_insert_or_strip;
	o.zcopy = p.zcopy;
	o.abort_timeout_sec = p.abort_timeout_sec;
	o.ack_timeout = p.ack_timeout;
	o.data_wr_pool_size = p.data_wr_pool_size;
	o.disable_command_passthru = p.disable_command_passthru;
	o.kas = p.kas;
	o.min_kato = p.min_kato;
	o.c2h_success = p.c2h_success;
	o.sock_priority = p.sock_priority;
	if (nvmf_transport_find(t->nvmf, p.trtype)) {
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Transport type '%s' already exists", p.trtype);
		goto out;
	}
	rc = nvmf_transport_create(t->nvmf, p.trtype, &o, NULL);
	if (rc == -EPROTONOSUPPORT)
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Invalid transport type '%s'", p.trtype);
	else if (rc == -EEXIST)
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Transport type '%s' already exists", p.trtype);
	else if (rc)
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Transport type '%s' create failed", p.trtype);
	else
		rpc_request_reply_true(req);
out:
	rpc_params_free(transport_spec, COMMON_ARRAY_SIZE(transport_spec), &p);
}

static json_t *transport_json(const struct nvmf_transport *tr)
{
	const struct nvmf_transport_opts *o = nvmf_transport_opts(tr);

	return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:b,s:b,s:b,s:i,s:i,s:i,s:i,s:b,s:i,s:i}",
			 "trtype", nvmf_transport_trtype(tr), "max_queue_depth", (int)o->max_queue_depth,
			 "max_io_qpairs_per_ctrlr", (int)o->max_io_qpairs_per_ctrlr,
			 "in_capsule_data_size", (int)o->in_capsule_data_size,
			 "max_io_size", (int)o->max_io_size, "max_aq_depth", (int)o->max_aq_depth,
			 "iobuf_small_cache_size", (json_int_t)o->buf_cache_size,
			 "iobuf_large_cache_size", (json_int_t)o->buf_cache_size,
			 "dif_insert_or_strip", o->dif_insert_or_strip, "zcopy", o->zcopy,
			 "c2h_success", o->c2h_success, "sock_priority", (int)o->sock_priority,
			 "abort_timeout_sec", (int)o->abort_timeout_sec, "ack_timeout", (int)o->ack_timeout,
			 "data_wr_pool_size", (int)o->data_wr_pool_size,
			 "disable_command_passthru", o->disable_command_passthru, "kas", (int)o->kas,
			 "min_kato", (int)o->min_kato);
}

struct get_transports_params {
	char *trtype, *tgt_name;
};

static const struct rpc_param get_transports_spec[] = {
	{ "trtype", RPC_PARAM_STRING, offsetof(struct get_transports_params, trtype), true },
	{ "tgt_name", RPC_PARAM_STRING, offsetof(struct get_transports_params, tgt_name), true },
};

static void m_get_transports(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct get_transports_params p = { 0 };
	struct nvmf_transport *tr = NULL;
	json_t *arr;

	if (rpc_params_decode(params, get_transports_spec, COMMON_ARRAY_SIZE(get_transports_spec), &p)) {
		INVALID_PARAMS(req);
		return;
	}
	if (p.tgt_name) {
		rpc_request_error(req, RPC_ERROR_INTERNAL, "Unable to find a target.");
		goto out;
	}
	if (p.trtype) {
		tr = nvmf_transport_find(t->nvmf, p.trtype);
		if (!tr) {
			rpc_request_errno(req, -ENODEV);
			goto out;
		}
	}
	arr = json_array();
	if (tr) {
		if (arr && json_array_append_new(arr, transport_json(tr)))
			goto nomem;
	} else {
		for (tr = nvmf_transport_first(t->nvmf); arr && tr; tr = nvmf_transport_next(tr))
			if (json_array_append_new(arr, transport_json(tr)))
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
	rpc_params_free(get_transports_spec, COMMON_ARRAY_SIZE(get_transports_spec), &p);
}

/* ------------------------------------------------------------ subsystems */

struct create_subsys_params {
	char *nqn, *serial_number, *model_number, *tgt_name;
	uint32_t max_namespaces, dmrsl;
	uint64_t max_discard_size_kib, max_write_zeroes_size_kib;
	uint16_t min_cntlid, max_cntlid;
	uint8_t wzsl;
	bool allow_any_host, ana_reporting, passthrough, enable_nssr;
};

#define CS(f) offsetof(struct create_subsys_params, f)
static const struct rpc_param create_subsys_spec[] = {
	{ "nqn", RPC_PARAM_STRING, CS(nqn), false },
	{ "serial_number", RPC_PARAM_STRING, CS(serial_number), true },
	{ "model_number", RPC_PARAM_STRING, CS(model_number), true },
	{ "tgt_name", RPC_PARAM_STRING, CS(tgt_name), true },
	{ "max_namespaces", RPC_PARAM_UINT32, CS(max_namespaces), true },
	{ "allow_any_host", RPC_PARAM_BOOL, CS(allow_any_host), true },
	{ "ana_reporting", RPC_PARAM_BOOL, CS(ana_reporting), true },
	{ "min_cntlid", RPC_PARAM_UINT16, CS(min_cntlid), true },
	{ "max_cntlid", RPC_PARAM_UINT16, CS(max_cntlid), true },
	{ "max_discard_size_kib", RPC_PARAM_UINT64, CS(max_discard_size_kib), true },
	{ "max_write_zeroes_size_kib", RPC_PARAM_UINT64, CS(max_write_zeroes_size_kib), true },
	{ "dmrsl", RPC_PARAM_UINT32, CS(dmrsl), true },
	{ "wzsl", RPC_PARAM_UINT8, CS(wzsl), true },
	{ "passthrough", RPC_PARAM_BOOL, CS(passthrough), true },
	{ "enable_nssr", RPC_PARAM_BOOL, CS(enable_nssr), true },
};

static void m_create_subsystem(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct create_subsys_params p = { 0 };
	struct nvmf_subsystem_opts o = { 0 };
	struct nvmf_subsystem *s;
	int rc;

	p.min_cntlid = NVMF_MIN_CNTLID;
	p.max_cntlid = NVMF_MAX_CNTLID;
	p.max_discard_size_kib = UINT64_MAX;
	p.max_write_zeroes_size_kib = UINT64_MAX;
	p.dmrsl = TGT_DEFAULT_DMRSL;
	p.wzsl = TGT_DEFAULT_WZSL;
	if (rpc_params_decode(params, create_subsys_spec, COMMON_ARRAY_SIZE(create_subsys_spec), &p)) {
		INVALID_PARAMS(req);
		return;
	}
	/* SPDK's deprecated KiB spellings of dmrsl / wzsl */
	if (p.max_discard_size_kib != UINT64_MAX)
		p.dmrsl = (uint32_t)(p.max_discard_size_kib << 1);
	if (p.max_write_zeroes_size_kib != UINT64_MAX) {
		uint64_t k = p.max_write_zeroes_size_kib;

		if (k == 0) {
			p.wzsl = 0;
		} else if (k >= 8 && (k & (k - 1)) == 0) {
			for (p.wzsl = 0; (k >> 2) > (1ull << p.wzsl); p.wzsl++)
				;
		} else {
			rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Invalid max_write_zeroes_size_kib %llu",
					   (unsigned long long)k);
			goto out;
		}
	}
	if (p.tgt_name) {
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Unable to find target %s", p.tgt_name);
		goto out;
	}
	if (p.min_cntlid < NVMF_MIN_CNTLID || p.max_cntlid > NVMF_MAX_CNTLID || p.min_cntlid > p.max_cntlid) {
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Invalid cntlid range [%u-%u]",
				   p.min_cntlid, p.max_cntlid);
		goto out;
	}
	if ((p.serial_number && strlen(p.serial_number) > NVMF_SN_MAX_LEN) ||
	    (p.model_number && strlen(p.model_number) > NVMF_MN_MAX_LEN)) {
		INVALID_PARAMS(req);
		goto out;
	}
	if (p.passthrough) {
		/* No NVMe passthrough in disktgt (needs an NVMe bdev). */
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Unable to create subsystem %s", p.nqn);
		goto out;
	}
	o.serial_number = p.serial_number;
	o.model_number = p.model_number;
	o.allow_any_host = p.allow_any_host;
	o.max_namespaces = p.max_namespaces;
	o.min_cntlid = p.min_cntlid;
	o.max_cntlid = p.max_cntlid;
	o.ana_reporting = p.ana_reporting;
	{
		struct tgt_nqn *n = mem_zalloc(sizeof(*n));

		if (!n) {
			rpc_request_errno(req, -ENOMEM);
			goto out;
		}
		n->no_max_ns = p.max_namespaces == 0;
		n->dmrsl = p.dmrsl;
		n->wzsl = p.wzsl;
		rc = nvmf_subsystem_create(t->nvmf, p.nqn, &o, &s);
		if (rc) {
			mem_free(n);
		} else {
			n->next = t->subsys_extras;
			if (n->next)
				n->next->prev = n;
			t->subsys_extras = n;
			nvmf_subsystem_ctx_set(s, n);
		}
	}
	if (rc) {
		/* "exists" is the normal answer to a create-if-missing client: no noise */
		if (rc == -EEXIST)
			LOG_DEBUG(TGT_LOG, "subsystem exists nqn=%s", p.nqn);
		else
			LOG_WARN(TGT_LOG, "cannot create subsystem nqn=%s rc=%d (%s)", p.nqn, rc,
				 common_strerror(rc));
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Unable to create subsystem %s", p.nqn);
		goto out;
	}
	rpc_request_reply_true(req);
out:
	rpc_params_free(create_subsys_spec, COMMON_ARRAY_SIZE(create_subsys_spec), &p);
}

struct nqn_params {
	char *nqn, *tgt_name;
};

static const struct rpc_param nqn_spec[] = {
	{ "nqn", RPC_PARAM_STRING, offsetof(struct nqn_params, nqn), false },
	{ "tgt_name", RPC_PARAM_STRING, offsetof(struct nqn_params, tgt_name), true },
};

static void m_delete_subsystem(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct nqn_params p = { 0 };
	struct nvmf_subsystem *s;
	struct tgt_nqn *n;
	int rc;

	if (rpc_params_decode(params, nqn_spec, COMMON_ARRAY_SIZE(nqn_spec), &p)) {
		INVALID_PARAMS(req);
		return;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	s = subsys_lookup(t, req, p.nqn);
	if (!s)
		goto out;
	n = nvmf_subsystem_ctx(s);
	rc = nvmf_subsystem_destroy(s);
	if (rc) {
		rpc_request_errorf(req, RPC_ERROR_INTERNAL, "Subsystem destruction failed, rc %d", rc);
	} else {
		if (n)
			subsys_extra_unlink(t, n);
		rpc_request_reply_true(req);
	}
out:
	rpc_params_free(nqn_spec, COMMON_ARRAY_SIZE(nqn_spec), &p);
}

static json_t *addr_json(const struct nvmf_listen_addr *a)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "trtype", a->trtype, "adrfam", a->adrfam, "traddr",
			 a->traddr, "trsvcid", a->trsvcid);
}

static json_t *subsystem_json(const struct tgt *t, const struct nvmf_subsystem *s)
{
	json_t *o = json_object(), *la = json_array(), *hosts = json_array(), *nss = NULL;
	unsigned i, n;
	struct nvmf_ns *ns;
	int rc = 0;

	if (!o || !la || !hosts)
		goto fail;
	n = nvmf_subsystem_listener_count(s);
	for (i = 0; i < n; i++)
		rc |= json_array_append_new(la, addr_json(nvmf_subsystem_listener_get(s, i)));
	n = nvmf_subsystem_host_count(s);
	for (i = 0; i < n; i++)
		rc |= json_array_append_new(hosts, json_pack("{s:s}", "nqn", nvmf_subsystem_host_get(s, i)));
	rc |= tgt_set(o, "nqn", json_string(nvmf_subsystem_nqn(s)));
	rc |= tgt_set(o, "subtype", json_string(nvmf_subsystem_subtype(s) == NVMF_SUBTYPE_NVME ?
					       "NVMe" : "Discovery"));
	rc |= tgt_set(o, "listen_addresses", la);
	la = NULL;
	rc |= tgt_set(o, "allow_any_host", json_boolean(nvmf_subsystem_allow_any_host(s)));
	rc |= tgt_set(o, "hosts", hosts);
	hosts = NULL;
	if (nvmf_subsystem_subtype(s) == NVMF_SUBTYPE_NVME) {
		rc |= tgt_set(o, "serial_number", json_string(nvmf_subsystem_serial_number(s)));
		rc |= tgt_set(o, "model_number", json_string(nvmf_subsystem_model_number(s)));
		if (nvmf_subsystem_max_namespaces(s) && !tgt_subsys_no_max_ns(s))
			rc |= tgt_set(o, "max_namespaces", json_integer(nvmf_subsystem_max_namespaces(s)));
		rc |= tgt_set(o, "passthrough", json_false());
		rc |= tgt_set(o, "min_cntlid", json_integer(nvmf_subsystem_min_cntlid(s)));
		rc |= tgt_set(o, "max_cntlid", json_integer(nvmf_subsystem_max_cntlid(s)));
		{
			const struct tgt_nqn *x = tgt_subsys_extra(s);

			rc |= tgt_set(o, "dmrsl", json_integer(x ? x->dmrsl : TGT_DEFAULT_DMRSL));
			rc |= tgt_set(o, "wzsl", json_integer(x ? x->wzsl : TGT_DEFAULT_WZSL));
		}
		nss = json_array();
		for (ns = nvmf_subsystem_ns_first(s); nss && ns; ns = nvmf_subsystem_ns_next(ns)) {
			json_t *j = json_object();
			const char *bname = bdev_name(nvmf_ns_bdev(ns));

			rc |= tgt_set(j, "nsid", json_integer(nvmf_ns_nsid(ns)));
			rc |= tgt_set(j, "bdev_name", json_string(bname));
			rc |= tgt_set(j, "name", json_string(bname));
			rc |= tgt_set(j, "nguid", json_string(nvmf_ns_nguid(ns)));
			if (nvmf_ns_eui64(ns))
				rc |= tgt_set(j, "eui64", json_string(nvmf_ns_eui64(ns)));
			rc |= tgt_set(j, "uuid", json_string(nvmf_ns_uuid(ns)));
			rc |= json_array_append_new(nss, j);
		}
		rc |= tgt_set(o, "namespaces", nss);
	}
	if (rc)
		goto fail;
	return o;
fail:
	json_decref(la);
	json_decref(hosts);
	json_decref(o);
	return NULL;
}

static void m_get_subsystems(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct nqn_params p = { 0 };
	static const struct rpc_param spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct nqn_params, nqn), true },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct nqn_params, tgt_name), true },
	};
	struct nvmf_subsystem *s;
	json_t *arr;

	if (rpc_params_decode(params, spec, COMMON_ARRAY_SIZE(spec), &p)) {
		INVALID_PARAMS(req);
		return;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	arr = json_array();
	if (p.nqn) {
		s = subsys_lookup(t, req, p.nqn);
		if (!s) {
			json_decref(arr);
			goto out;
		}
		if (arr && json_array_append_new(arr, subsystem_json(t, s)))
			goto nomem;
	} else {
		for (s = nvmf_subsystem_first(t->nvmf); arr && s; s = nvmf_subsystem_next(s))
			if (json_array_append_new(arr, subsystem_json(t, s)))
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
	rpc_params_free(spec, COMMON_ARRAY_SIZE(spec), &p);
}

/* ------------------------------------------------------------- listeners */

struct listener_params {
	char *nqn, *tgt_name, *ana_state, *sock_impl;
	json_t *listen_address;
	bool secure_channel;
};

struct addr_params {
	char *trtype, *adrfam, *traddr, *trsvcid;
};

static const struct rpc_param addr_spec[] = {
	{ "trtype", RPC_PARAM_STRING, offsetof(struct addr_params, trtype), false },
	{ "adrfam", RPC_PARAM_STRING, offsetof(struct addr_params, adrfam), true },
	{ "traddr", RPC_PARAM_STRING, offsetof(struct addr_params, traddr), false },
	{ "trsvcid", RPC_PARAM_STRING, offsetof(struct addr_params, trsvcid), true },
};

/* Decodes listen_address; -EINVAL (decode) or -EBADMSG (bad address). */
static int decode_addr(const json_t *j, struct nvmf_listen_addr *out)
{
	struct addr_params a = { 0 };
	int rc;

	if (rpc_params_decode(j, addr_spec, COMMON_ARRAY_SIZE(addr_spec), &a))
		return -EINVAL;
	rc = nvmf_listen_addr_parse(a.trtype, a.adrfam, a.traddr, a.trsvcid ? a.trsvcid : "", out);
	rpc_params_free(addr_spec, COMMON_ARRAY_SIZE(addr_spec), &a);
	return rc ? -EBADMSG : 0;
}

static void listener_op(struct tgt *t, struct rpc_request *req, json_t *params, bool add)
{
	static const struct rpc_param add_spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct listener_params, nqn), false },
		{ "listen_address", RPC_PARAM_OBJECT, offsetof(struct listener_params, listen_address), false },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct listener_params, tgt_name), true },
		{ "secure_channel", RPC_PARAM_BOOL, offsetof(struct listener_params, secure_channel), true },
		{ "ana_state", RPC_PARAM_STRING, offsetof(struct listener_params, ana_state), true },
		{ "sock_impl", RPC_PARAM_STRING, offsetof(struct listener_params, sock_impl), true },
	};
	struct listener_params p = { 0 };
	size_t n = add ? COMMON_ARRAY_SIZE(add_spec) : 3;
	struct nvmf_listen_addr addr;
	struct nvmf_subsystem *s;
	json_t *known = add ? relaxed(params, add_spec, n) : json_incref(params);
	int rc;

	if (!known && params) {
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	rc = rpc_params_decode(known, add_spec, n, &p);
	json_decref(known);
	if (rc) {
		INVALID_PARAMS(req);
		return;
	}
	rc = decode_addr(p.listen_address, &addr);
	if (rc == -EINVAL) {
		INVALID_PARAMS(req);
		goto out;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	s = subsys_lookup(t, req, p.nqn);
	if (!s)
		goto out;
	if (rc) {
		INVALID_PARAMS(req);
		goto out;
	}
	if (add && p.secure_channel && nvmf_subsystem_allow_any_host(s)) {
		rpc_request_error(req, RPC_ERROR_INTERNAL,
				  "Cannot establish secure channel, when 'allow_any_host' is set");
		goto out;
	}
	rc = add ? nvmf_subsystem_listener_add(s, &addr) : nvmf_subsystem_listener_remove(s, &addr);
	if (rc) {
		if (rc == -EEXIST || rc == -ENOENT)
			LOG_DEBUG(TGT_LOG, "listener %s: nothing to do nqn=%s addr=%s:%s rc=%d",
				  add ? "add" : "remove", p.nqn, addr.traddr, addr.trsvcid, rc);
		else
			LOG_WARN(TGT_LOG, "listener %s failed nqn=%s addr=%s:%s rc=%d (%s)",
				 add ? "add" : "remove", p.nqn, addr.traddr, addr.trsvcid, rc,
				 common_strerror(rc));
		INVALID_PARAMS(req);
		goto out;
	}
	rpc_request_reply_true(req);
out:
	rpc_params_free(add_spec, n, &p);
}

static void m_add_listener(struct rpc_request *req, json_t *params, void *ctx)
{
	listener_op(ctx, req, params, true);
}

static void m_remove_listener(struct rpc_request *req, json_t *params, void *ctx)
{
	listener_op(ctx, req, params, false);
}

/* ------------------------------------------------------------ namespaces */

struct add_ns_params {
	char *nqn, *tgt_name;
	json_t *ns;
};

struct ns_params {
	char *bdev_name, *uuid, *nguid, *eui64, *ptpl_file;
	uint32_t nsid, anagrpid;
	bool no_auto_visible, hide_metadata;
};

static const struct rpc_param ns_spec[] = {
	{ "nsid", RPC_PARAM_UINT32, offsetof(struct ns_params, nsid), true },
	{ "bdev_name", RPC_PARAM_STRING, offsetof(struct ns_params, bdev_name), false },
	{ "ptpl_file", RPC_PARAM_STRING, offsetof(struct ns_params, ptpl_file), true },
	{ "nguid", RPC_PARAM_STRING, offsetof(struct ns_params, nguid), true },
	{ "eui64", RPC_PARAM_STRING, offsetof(struct ns_params, eui64), true },
	{ "uuid", RPC_PARAM_STRING, offsetof(struct ns_params, uuid), true },
	{ "anagrpid", RPC_PARAM_UINT32, offsetof(struct ns_params, anagrpid), true },
	{ "no_auto_visible", RPC_PARAM_BOOL, offsetof(struct ns_params, no_auto_visible), true },
	{ "hide_metadata", RPC_PARAM_BOOL, offsetof(struct ns_params, hide_metadata), true },
};

static bool hex_ok(const char *s, size_t digits)
{
	size_t n = 0;

	for (; *s; s++) {
		if (*s == '-')
			continue;
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
			return false;
		n++;
	}
	return n == digits;
}

static void m_add_ns(struct rpc_request *req, json_t *params, void *ctx)
{
	static const struct rpc_param spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct add_ns_params, nqn), false },
		{ "namespace", RPC_PARAM_OBJECT, offsetof(struct add_ns_params, ns), false },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct add_ns_params, tgt_name), true },
	};
	struct tgt *t = ctx;
	struct add_ns_params p = { 0 };
	struct ns_params n = { 0 };
	struct nvmf_ns_opts o = { 0 };
	struct nvmf_subsystem *s;
	json_t *known = relaxed(params, spec, COMMON_ARRAY_SIZE(spec));
	uint32_t nsid = 0;
	int rc;

	rc = known ? rpc_params_decode(known, spec, COMMON_ARRAY_SIZE(spec), &p) : -ENOMEM;
	json_decref(known);
	if (rc || rpc_params_decode(p.ns, ns_spec, COMMON_ARRAY_SIZE(ns_spec), &n)) {
		INVALID_PARAMS(req);
		goto out;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	s = subsys_lookup(t, req, p.nqn);
	if (!s)
		goto out;
	if (n.nguid && !hex_ok(n.nguid, 32)) {
		rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, "Invalid nguid");
		goto out;
	}
	if (n.eui64 && !hex_ok(n.eui64, 16)) {
		rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, "Invalid eui64");
		goto out;
	}
	o.nsid = n.nsid;
	o.uuid = n.uuid;
	o.nguid = n.nguid;
	o.eui64 = n.eui64;
	rc = nvmf_subsystem_ns_add(s, n.bdev_name, &o, &nsid);
	if (rc) {
		if (rc == -EPERM || rc == -EEXIST)
			LOG_DEBUG(TGT_LOG, "namespace not added nqn=%s bdev=%s rc=%d (%s)", p.nqn,
				  n.bdev_name, rc, common_strerror(rc));
		else
			LOG_WARN(TGT_LOG, "cannot add namespace nqn=%s bdev=%s rc=%d (%s)", p.nqn,
				 n.bdev_name, rc, common_strerror(rc));
		INVALID_PARAMS(req);
		goto out;
	}
	rpc_request_reply(req, json_integer(nsid));
out:
	rpc_params_free(ns_spec, COMMON_ARRAY_SIZE(ns_spec), &n);
	rpc_params_free(spec, COMMON_ARRAY_SIZE(spec), &p);
}

struct remove_ns_params {
	char *nqn, *tgt_name;
	uint32_t nsid;
};

static void m_remove_ns(struct rpc_request *req, json_t *params, void *ctx)
{
	static const struct rpc_param spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct remove_ns_params, nqn), false },
		{ "nsid", RPC_PARAM_UINT32, offsetof(struct remove_ns_params, nsid), false },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct remove_ns_params, tgt_name), true },
	};
	struct tgt *t = ctx;
	struct remove_ns_params p = { 0 };
	struct nvmf_subsystem *s;

	if (rpc_params_decode(params, spec, COMMON_ARRAY_SIZE(spec), &p)) {
		INVALID_PARAMS(req);
		return;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	s = subsys_lookup(t, req, p.nqn);
	if (!s)
		goto out;
	if (nvmf_subsystem_ns_remove(s, p.nsid))
		INVALID_PARAMS(req);
	else
		rpc_request_reply_true(req);
out:
	rpc_params_free(spec, COMMON_ARRAY_SIZE(spec), &p);
}

/* ----------------------------------------------------------------- hosts */

struct host_params {
	char *nqn, *host, *tgt_name, *dhchap_key, *dhchap_ctrlr_key, *psk;
	uint64_t timeout_ms;
};

static void host_op(struct tgt *t, struct rpc_request *req, json_t *params, bool add)
{
	static const struct rpc_param add_spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct host_params, nqn), false },
		{ "host", RPC_PARAM_STRING, offsetof(struct host_params, host), false },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct host_params, tgt_name), true },
		{ "dhchap_key", RPC_PARAM_STRING, offsetof(struct host_params, dhchap_key), true },
		{ "dhchap_ctrlr_key", RPC_PARAM_STRING, offsetof(struct host_params, dhchap_ctrlr_key), true },
		{ "psk", RPC_PARAM_STRING, offsetof(struct host_params, psk), true },
	};
	static const struct rpc_param rm_spec[] = {
		{ "nqn", RPC_PARAM_STRING, offsetof(struct host_params, nqn), false },
		{ "host", RPC_PARAM_STRING, offsetof(struct host_params, host), false },
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct host_params, tgt_name), true },
		{ "timeout_ms", RPC_PARAM_UINT64, offsetof(struct host_params, timeout_ms), true },
	};
	const struct rpc_param *spec = add ? add_spec : rm_spec;
	size_t n = add ? COMMON_ARRAY_SIZE(add_spec) : COMMON_ARRAY_SIZE(rm_spec);
	struct host_params p = { 0 };
	struct nvmf_subsystem *s;
	json_t *known = add ? relaxed(params, add_spec, n) : json_incref(params);
	int rc;

	rc = (known || !params) ? rpc_params_decode(known, spec, n, &p) : -ENOMEM;
	json_decref(known);
	if (rc) {
		INVALID_PARAMS(req);
		return;
	}
	if (bad_tgt_name(req, p.tgt_name))
		goto out;
	s = subsys_lookup(t, req, p.nqn);
	if (!s)
		goto out;
	if (add && (p.dhchap_key || p.dhchap_ctrlr_key)) {
		/* No keyring in disktgt: every key name is unknown. */
		INVALID_PARAMS(req);
		goto out;
	}
	rc = add ? nvmf_subsystem_host_add(s, p.host) : nvmf_subsystem_host_remove(s, p.host);
	if (rc)
		rpc_request_error(req, RPC_ERROR_INTERNAL, RPC_MSG_INTERNAL);
	else
		rpc_request_reply_true(req);
out:
	rpc_params_free(spec, n, &p);
}

static void m_add_host(struct rpc_request *req, json_t *params, void *ctx)
{
	host_op(ctx, req, params, true);
}

static void m_remove_host(struct rpc_request *req, json_t *params, void *ctx)
{
	host_op(ctx, req, params, false);
}

/* --------------------------------------- listeners, controllers, qpairs */

static struct nvmf_subsystem *query_subsys(struct tgt *t, struct rpc_request *req, json_t *params)
{
	struct nqn_params p = { 0 };
	struct nvmf_subsystem *s = NULL;

	if (rpc_params_decode(params, nqn_spec, COMMON_ARRAY_SIZE(nqn_spec), &p)) {
		INVALID_PARAMS(req);
		return NULL;
	}
	if (!bad_tgt_name(req, p.tgt_name))
		s = subsys_lookup(t, req, p.nqn);
	rpc_params_free(nqn_spec, COMMON_ARRAY_SIZE(nqn_spec), &p);
	return s;
}

static void m_get_listeners(struct rpc_request *req, json_t *params, void *ctx)
{
	struct nvmf_subsystem *s = query_subsys(ctx, req, params);
	json_t *arr;
	unsigned i, n;
	int rc = 0;

	if (!s)
		return;
	arr = json_array();
	n = nvmf_subsystem_listener_count(s);
	for (i = 0; arr && i < n; i++)
		rc |= json_array_append_new(arr, json_pack("{s:o}", "address",
							   addr_json(nvmf_subsystem_listener_get(s, i))));
	if (!arr || rc) {
		json_decref(arr);
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	rpc_request_reply(req, arr);
}

struct foreach_ctx {
	json_t *arr;
	json_t *hostnqns; /* cntlid (decimal string) -> hostnqn, for the qpairs */
	int rc;
};

static void ctrlr_hostnqn_cb(const struct nvmf_ctrlr_info *c, void *arg)
{
	struct foreach_ctx *f = arg;
	char key[16];

	snprintf(key, sizeof(key), "%u", (unsigned)c->cntlid);
	f->rc |= json_object_set_new(f->hostnqns, key, json_string(c->hostnqn));
}

static void ctrlr_cb(const struct nvmf_ctrlr_info *c, void *arg)
{
	struct foreach_ctx *f = arg;

	f->rc |= json_array_append_new(f->arr, json_pack("{s:i,s:s,s:s,s:s,s:i}", "cntlid", (int)c->cntlid,
							 "cntrltype", "io", "hostnqn", c->hostnqn,
							 "hostid", c->hostid, "num_io_qpairs",
							 (int)c->num_io_qpairs));
}

static void qpair_cb(const struct nvmf_qpair_info *q, void *arg)
{
	struct foreach_ctx *f = arg;
	const char *state = (q->state && !strcmp(q->state, "active")) ? "enabled" :
			    q->state ? q->state : "unknown";

	char key[16];
	const char *hostnqn;

	if (!strcmp(state, "deleting"))
		state = "deactivating";
	snprintf(key, sizeof(key), "%u", (unsigned)q->cntlid);
	hostnqn = json_string_value(json_object_get(f->hostnqns, key));
	f->rc |= json_array_append_new(f->arr, json_pack("{s:i,s:i,s:s,s:s,s:s,s:o,s:o}",
							 "cntlid", (int)q->cntlid, "qid", (int)q->qid,
							 "state", state, "thread", "nvmf_tgt_poll_group_000",
							 "hostnqn", hostnqn ? hostnqn : "",
							 "listen_address", addr_json(&q->listen_addr),
							 "peer_address", addr_json(&q->peer_addr)));
}

static void m_get_controllers(struct rpc_request *req, json_t *params, void *ctx)
{
	struct nvmf_subsystem *s = query_subsys(ctx, req, params);
	struct foreach_ctx f = { json_array(), NULL, 0 };

	if (!s) {
		json_decref(f.arr);
		return;
	}
	if (f.arr)
		nvmf_subsystem_ctrlr_foreach(s, ctrlr_cb, &f);
	if (!f.arr || f.rc) {
		json_decref(f.arr);
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	rpc_request_reply(req, f.arr);
}

static void m_get_qpairs(struct rpc_request *req, json_t *params, void *ctx)
{
	struct nvmf_subsystem *s = query_subsys(ctx, req, params);
	struct foreach_ctx f = { json_array(), json_object(), 0 };

	if (!s) {
		json_decref(f.arr);
		json_decref(f.hostnqns);
		return;
	}
	if (f.arr && f.hostnqns) {
		nvmf_subsystem_ctrlr_foreach(s, ctrlr_hostnqn_cb, &f);
		nvmf_subsystem_qpair_foreach(s, qpair_cb, &f);
	}
	json_decref(f.hostnqns);
	if (!f.arr || f.rc) {
		json_decref(f.arr);
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	rpc_request_reply(req, f.arr);
}

static void m_get_stats(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct nqn_params p = { 0 };
	static const struct rpc_param spec[] = {
		{ "tgt_name", RPC_PARAM_STRING, offsetof(struct nqn_params, tgt_name), true },
	};
	struct nvmf_stats st;
	struct nvmf_transport *tr;
	json_t *trs, *res;

	if (rpc_params_decode(params, spec, 1, &p)) {
		INVALID_PARAMS(req);
		return;
	}
	if (p.tgt_name) {
		rpc_request_error(req, RPC_ERROR_INTERNAL, "Unable to find a target.");
		goto out;
	}
	nvmf_tgt_stats(t->nvmf, &st);
	trs = json_array();
	for (tr = nvmf_transport_first(t->nvmf); trs && tr; tr = nvmf_transport_next(tr))
		json_array_append_new(trs, json_pack("{s:s}", "trtype", nvmf_transport_trtype(tr)));
	res = json_pack("{s:I,s:[{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}]}",
			"tick_rate", (json_int_t)st.tick_rate, "poll_groups",
			"name", "nvmf_tgt_poll_group_000",
			"admin_qpairs", (json_int_t)st.admin_qpairs, "io_qpairs", (json_int_t)st.io_qpairs,
			"current_admin_qpairs", (json_int_t)st.current_admin_qpairs,
			"current_io_qpairs", (json_int_t)st.current_io_qpairs,
			"pending_bdev_io", (json_int_t)st.pending_bdev_io,
			"completed_nvme_io", (json_int_t)st.completed_nvme_io, "transports", trs);
	if (!res)
		rpc_request_errno(req, -ENOMEM);
	else
		rpc_request_reply(req, res);
out:
	rpc_params_free(spec, 1, &p);
}

int tgt_nvmf_register(struct tgt *t)
{
	int rc = 0;

	rc |= tgt_method(t, "nvmf_subsystem_get_listeners", m_get_listeners, 0);
	rc |= tgt_method(t, "nvmf_subsystem_get_qpairs", m_get_qpairs, 0);
	rc |= tgt_method(t, "nvmf_subsystem_get_controllers", m_get_controllers, 0);
	rc |= tgt_method(t, "nvmf_get_stats", m_get_stats, 0);
	rc |= tgt_method(t, "nvmf_get_transports", m_get_transports, 0);
	rc |= tgt_method(t, "nvmf_create_transport", m_create_transport, 0);
	rc |= tgt_method(t, "nvmf_subsystem_remove_host", m_remove_host, 0);
	rc |= tgt_method(t, "nvmf_subsystem_add_host", m_add_host, 0);
	rc |= tgt_method(t, "nvmf_subsystem_remove_ns", m_remove_ns, 0);
	rc |= tgt_method(t, "nvmf_subsystem_add_ns", m_add_ns, 0);
	rc |= tgt_method(t, "nvmf_subsystem_remove_listener", m_remove_listener, 0);
	rc |= tgt_method(t, "nvmf_subsystem_add_listener", m_add_listener, 0);
	rc |= tgt_method(t, "nvmf_delete_subsystem", m_delete_subsystem, 0);
	rc |= tgt_method(t, "nvmf_create_subsystem", m_create_subsystem, 0);
	rc |= tgt_method(t, "nvmf_get_subsystems", m_get_subsystems, 0);
	return rc ? -EINVAL : 0;
}
