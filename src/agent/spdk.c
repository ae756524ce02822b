/*
 * spdk.c: typed SPDK JSON-RPC calls for the agent (see spdk.h): parameter
 * objects exactly as SPDK decodes them, result parsing, error mapping.
 * The connection itself is in spdk_conn.c.
 */
#include "agent/spdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

bool spdk_call_is_transient(int err)
{
	return err == -ENOTCONN || err == -ETIMEDOUT;
}

int spdk_error_classify(const char *method, int code, const char *message)
{
	const char *m = message ? message : "";

	if (code == -32601)
		return -EOPNOTSUPP;
	if (code < 0 && code > -200) {
		/* Synchronous handler failure: the code is the negative errno.
		 * Keep transport errnos out of this space. */
		if (code == -ENOTCONN || code == -ETIMEDOUT)
			return -EREMOTEIO;
		return code;
	}
	if (strstr(m, "decode_object failed"))
		return -EBADMSG;
	if (strstr(m, "File exists") || strstr(m, "already exists"))
		return -EEXIST;
	if (strstr(m, "Unable to create subsystem"))
		return -EEXIST;
	if (strstr(m, "No space left"))
		return -ENOSPC;
	if (strstr(m, "No such device") || strstr(m, "not found"))
		return -ENODEV;
	if (strstr(m, "Operation not permitted"))
		return -EPERM;
	if (strstr(m, "Invalid argument") || strstr(m, "Invalid parameters"))
		return -EINVAL;
	if (strcmp(m, "Internal error") == 0 && method &&
	    strcmp(method, "nvmf_subsystem_add_host") == 0)
		return -EEXIST;
	return -EREMOTEIO;
}

/* ----------------------------------------------------------- parsing */

static void copy_str(char *dst, size_t len, const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	snprintf(dst, len, "%s", s ? s : "");
}

static uint64_t get_u64(const json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (uint64_t)v : 0;
}

static bool get_bool(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

void spdk_lvstore_list_free(struct spdk_lvstore_list *l)
{
	if (!l)
		return;
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

void spdk_lvol_list_free(struct spdk_lvol_list *l)
{
	if (!l)
		return;
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

void spdk_bdev_list_free(struct spdk_bdev_list *l)
{
	if (!l)
		return;
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

void spdk_subsystem_list_free(struct spdk_subsystem_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		mem_free(l->v[i].listeners);
		mem_free(l->v[i].hosts);
		mem_free(l->v[i].ns);
	}
	mem_free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Allocates an array of n elements of `size` (at least one, so NULL means ENOMEM). */
static void *alloc_array(size_t n, size_t size)
{
	return mem_zalloc((n ? n : 1) * size);
}

int spdk_parse_lvstores(const json_t *result, struct spdk_lvstore_list *out)
{
	size_t i;
	json_t *e;

	out->v = NULL;
	out->n = 0;
	if (!json_is_array(result))
		return -EPROTO;
	out->v = alloc_array(json_array_size(result), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(result, i, e) {
		struct spdk_lvstore *s = &out->v[out->n];

		if (!json_is_object(e))
			continue;
		copy_str(s->uuid, sizeof(s->uuid), e, "uuid");
		copy_str(s->name, sizeof(s->name), e, "name");
		copy_str(s->base_bdev, sizeof(s->base_bdev), e, "base_bdev");
		s->total_data_clusters = get_u64(e, "total_data_clusters");
		s->free_clusters = get_u64(e, "free_clusters");
		s->block_size = get_u64(e, "block_size");
		s->cluster_size = get_u64(e, "cluster_size");
		out->n++;
	}
	return 0;
}

int spdk_parse_lvols(const json_t *result, struct spdk_lvol_list *out)
{
	size_t i;
	json_t *e;

	out->v = NULL;
	out->n = 0;
	if (!json_is_array(result))
		return -EPROTO;
	out->v = alloc_array(json_array_size(result), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(result, i, e) {
		struct spdk_lvol *l = &out->v[out->n];

		if (!json_is_object(e))
			continue;
		copy_str(l->uuid, sizeof(l->uuid), e, "uuid");
		copy_str(l->name, sizeof(l->name), e, "name");
		copy_str(l->lvs_uuid, sizeof(l->lvs_uuid), json_object_get(e, "lvs"), "uuid");
		l->thin = get_bool(e, "is_thin_provisioned");
		l->snapshot = get_bool(e, "is_snapshot");
		l->clone = get_bool(e, "is_clone");
		l->num_allocated_clusters = get_u64(e, "num_allocated_clusters");
		out->n++;
	}
	return 0;
}

int spdk_parse_bdevs(const json_t *result, struct spdk_bdev_list *out)
{
	size_t i;
	json_t *e;

	out->v = NULL;
	out->n = 0;
	if (!json_is_array(result))
		return -EPROTO;
	out->v = alloc_array(json_array_size(result), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(result, i, e) {
		struct spdk_bdev *b = &out->v[out->n];

		if (!json_is_object(e))
			continue;
		copy_str(b->name, sizeof(b->name), e, "name");
		b->num_blocks = get_u64(e, "num_blocks");
		b->block_size = get_u64(e, "block_size");
		out->n++;
	}
	return 0;
}

static int parse_subsystem(const json_t *e, struct spdk_subsystem *s)
{
	json_t *arr, *x;
	size_t i;

	copy_str(s->nqn, sizeof(s->nqn), e, "nqn");
	s->allow_any_host = get_bool(e, "allow_any_host");

	arr = json_object_get(e, "listen_addresses");
	s->listeners = alloc_array(json_array_size(arr), sizeof(*s->listeners));
	if (!s->listeners)
		return -ENOMEM;
	json_array_foreach(arr, i, x) {
		struct spdk_listen_addr *a = &s->listeners[s->n_listeners++];

		copy_str(a->trtype, sizeof(a->trtype), x, "trtype");
		copy_str(a->adrfam, sizeof(a->adrfam), x, "adrfam");
		copy_str(a->traddr, sizeof(a->traddr), x, "traddr");
		copy_str(a->trsvcid, sizeof(a->trsvcid), x, "trsvcid");
	}

	arr = json_object_get(e, "hosts");
	s->hosts = alloc_array(json_array_size(arr), sizeof(*s->hosts));
	if (!s->hosts)
		return -ENOMEM;
	json_array_foreach(arr, i, x) {
		/* SPDK lists hosts as objects {"nqn": ...}; accept plain strings too. */
		const char *h = json_is_string(x) ? json_string_value(x)
						   : json_string_value(json_object_get(x, "nqn"));
		if (h)
			snprintf(s->hosts[s->n_hosts++], SPDK_NQN_LEN, "%s", h);
	}

	arr = json_object_get(e, "namespaces");
	s->ns = alloc_array(json_array_size(arr), sizeof(*s->ns));
	if (!s->ns)
		return -ENOMEM;
	json_array_foreach(arr, i, x) {
		struct spdk_ns *n = &s->ns[s->n_ns++];

		n->nsid = (uint32_t)get_u64(x, "nsid");
		copy_str(n->bdev_name, sizeof(n->bdev_name), x, "bdev_name");
		copy_str(n->uuid, sizeof(n->uuid), x, "uuid");
	}
	return 0;
}

int spdk_parse_subsystems(const json_t *result, struct spdk_subsystem_list *out)
{
	size_t i;
	json_t *e;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (!json_is_array(result))
		return -EPROTO;
	out->v = alloc_array(json_array_size(result), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(result, i, e) {
		if (!json_is_object(e))
			continue;
		/* n counts the entry before parsing so a partial one is freed too. */
		rc = parse_subsystem(e, &out->v[out->n++]);
		if (rc) {
			spdk_subsystem_list_free(out);
			return rc;
		}
	}
	return 0;
}

const struct spdk_lvstore *spdk_lvstore_find(const struct spdk_lvstore_list *l, const char *uuid)
{
	for (size_t i = 0; l && uuid && i < l->n; i++)
		if (strcmp(l->v[i].uuid, uuid) == 0)
			return &l->v[i];
	return NULL;
}

const struct spdk_lvol *spdk_lvol_find_name(const struct spdk_lvol_list *l, const char *name)
{
	for (size_t i = 0; l && name && i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

const struct spdk_subsystem *spdk_subsystem_find(const struct spdk_subsystem_list *l,
						 const char *nqn)
{
	for (size_t i = 0; l && nqn && i < l->n; i++)
		if (strcmp(l->v[i].nqn, nqn) == 0)
			return &l->v[i];
	return NULL;
}

const struct spdk_bdev *spdk_bdev_find(const struct spdk_bdev_list *l, const char *name)
{
	for (size_t i = 0; l && name && i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* ------------------------------------------------------------- calls */

/* Builds an object from key/value pairs; NULL on ENOMEM. Values are stolen
 * (json_pack's "o"), so a failed build leaks nothing. */
static int call_true(struct spdk_client *c, const char *method, json_t *params)
{
	json_t *res = NULL;
	int rc;

	if (!params)
		return -ENOMEM;
	rc = spdk_call(c, method, params, &res);
	json_decref(res);
	return rc;
}

int spdk_result_uuid(const json_t *res, char uuid_out[SPDK_UUID_LEN])
{
	const char *s = json_string_value(res);

	if (!s || common_uuid_parse(s, NULL) != 0)
		return -EPROTO;
	if (uuid_out)
		snprintf(uuid_out, SPDK_UUID_LEN, "%s", s);
	return 0;
}

static int call_uuid(struct spdk_client *c, const char *method, json_t *params,
		     char uuid_out[SPDK_UUID_LEN])
{
	json_t *res = NULL;
	int rc;

	if (!params)
		return -ENOMEM;
	rc = spdk_call(c, method, params, &res);
	if (rc == 0)
		rc = spdk_result_uuid(res, uuid_out);
	json_decref(res);
	return rc;
}

int spdk_bdev_aio_create(struct spdk_client *c, const char *filename, const char *name,
			 uint32_t block_size)
{
	json_t *p = json_pack("{s:s, s:s}", "filename", filename, "name", name);

	if (p && block_size)
		json_object_set_new(p, "block_size", json_integer(block_size));
	return call_true(c, "bdev_aio_create", p);
}

int spdk_bdev_wait_for_examine(struct spdk_client *c)
{
	json_t *res = NULL;
	int rc = spdk_call(c, "bdev_wait_for_examine", NULL, &res);

	json_decref(res);
	return rc;
}

int spdk_bdev_get(struct spdk_client *c, const char *name, struct spdk_bdev_list *out)
{
	json_t *res = NULL, *p = NULL;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (name) {
		p = json_pack("{s:s}", "name", name);
		if (!p)
			return -ENOMEM;
	}
	rc = spdk_call(c, "bdev_get_bdevs", p, &res);
	if (rc == 0)
		rc = spdk_parse_bdevs(res, out);
	json_decref(res);
	return rc;
}

int spdk_lvstore_create(struct spdk_client *c, const char *bdev_name, const char *lvs_name,
			uint64_t cluster_sz, char uuid_out[SPDK_UUID_LEN])
{
	json_t *p = json_pack("{s:s, s:s}", "bdev_name", bdev_name, "lvs_name", lvs_name);

	if (p && cluster_sz)
		json_object_set_new(p, "cluster_sz", json_integer((json_int_t)cluster_sz));
	return call_uuid(c, "bdev_lvol_create_lvstore", p, uuid_out);
}

int spdk_lvstore_get(struct spdk_client *c, const char *uuid, const char *name,
		     struct spdk_lvstore_list *out)
{
	json_t *res = NULL, *p = NULL;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (uuid)
		p = json_pack("{s:s}", "uuid", uuid);
	else if (name)
		p = json_pack("{s:s}", "lvs_name", name);
	if ((uuid || name) && !p)
		return -ENOMEM;
	rc = spdk_call(c, "bdev_lvol_get_lvstores", p, &res);
	if (rc == 0)
		rc = spdk_parse_lvstores(res, out);
	json_decref(res);
	return rc;
}

json_t *spdk_params_lvol_create(const char *lvs_uuid, const char *name, uint64_t size_mib,
				bool thin)
{
	return json_pack("{s:s, s:I, s:s, s:b}", "lvol_name", name, "size_in_mib",
			 (json_int_t)size_mib, "uuid", lvs_uuid, "thin_provision", thin);
}

int spdk_lvol_create(struct spdk_client *c, const char *lvs_uuid, const char *name,
		     uint64_t size_mib, bool thin, char uuid_out[SPDK_UUID_LEN])
{
	return call_uuid(c, "bdev_lvol_create", spdk_params_lvol_create(lvs_uuid, name, size_mib, thin),
			 uuid_out);
}

int spdk_lvol_get(struct spdk_client *c, const char *lvs_uuid, struct spdk_lvol_list *out)
{
	json_t *res = NULL, *p = NULL;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (lvs_uuid) {
		p = json_pack("{s:s}", "lvs_uuid", lvs_uuid);
		if (!p)
			return -ENOMEM;
	}
	rc = spdk_call(c, "bdev_lvol_get_lvols", p, &res);
	if (rc == 0)
		rc = spdk_parse_lvols(res, out);
	json_decref(res);
	return rc;
}

int spdk_lvol_resize(struct spdk_client *c, const char *name, uint64_t size_mib)
{
	return call_true(c, "bdev_lvol_resize",
			 json_pack("{s:s, s:I}", "name", name, "size_in_mib", (json_int_t)size_mib));
}

json_t *spdk_params_lvol_delete(const char *name)
{
	return json_pack("{s:s}", "name", name);
}

int spdk_lvol_delete(struct spdk_client *c, const char *name)
{
	return call_true(c, "bdev_lvol_delete", spdk_params_lvol_delete(name));
}

int spdk_lvol_snapshot(struct spdk_client *c, const char *lvol_name, const char *snapshot_name,
		       char uuid_out[SPDK_UUID_LEN])
{
	return call_uuid(c, "bdev_lvol_snapshot",
			 json_pack("{s:s, s:s}", "lvol_name", lvol_name,
				   "snapshot_name", snapshot_name), uuid_out);
}

int spdk_lvol_clone(struct spdk_client *c, const char *snapshot_name, const char *clone_name,
		    char uuid_out[SPDK_UUID_LEN])
{
	return call_uuid(c, "bdev_lvol_clone",
			 json_pack("{s:s, s:s}", "snapshot_name", snapshot_name,
				   "clone_name", clone_name), uuid_out);
}

int spdk_lvol_rename(struct spdk_client *c, const char *old_name, const char *new_name)
{
	return call_true(c, "bdev_lvol_rename",
			 json_pack("{s:s, s:s}", "old_name", old_name, "new_name", new_name));
}

int spdk_nvmf_transport_create(struct spdk_client *c, const char *trtype)
{
	return call_true(c, "nvmf_create_transport", json_pack("{s:s}", "trtype", trtype));
}

json_t *spdk_params_subsystem_create(const char *nqn, const char *serial, const char *model,
				     bool allow_any_host, uint32_t max_namespaces)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:b}", "nqn", nqn, "serial_number", serial,
			      "model_number", model, "allow_any_host", allow_any_host);

	if (p && max_namespaces)
		json_object_set_new(p, "max_namespaces", json_integer(max_namespaces));
	return p;
}

int spdk_nvmf_subsystem_create(struct spdk_client *c, const char *nqn, const char *serial,
			       const char *model, bool allow_any_host, uint32_t max_namespaces)
{
	return call_true(c, "nvmf_create_subsystem",
			 spdk_params_subsystem_create(nqn, serial, model, allow_any_host,
						      max_namespaces));
}

json_t *spdk_params_subsystem_delete(const char *nqn)
{
	return json_pack("{s:s}", "nqn", nqn);
}

int spdk_nvmf_subsystem_delete(struct spdk_client *c, const char *nqn)
{
	return call_true(c, "nvmf_delete_subsystem", spdk_params_subsystem_delete(nqn));
}

int spdk_nvmf_subsystem_get(struct spdk_client *c, struct spdk_subsystem_list *out)
{
	json_t *res = NULL;
	int rc;

	out->v = NULL;
	out->n = 0;
	rc = spdk_call(c, "nvmf_get_subsystems", NULL, &res);
	if (rc == 0)
		rc = spdk_parse_subsystems(res, out);
	json_decref(res);
	return rc;
}

int spdk_nvmf_subsystem_get_one(struct spdk_client *c, const char *nqn,
				struct spdk_subsystem_list *out)
{
	json_t *res = NULL, *p = json_pack("{s:s}", "nqn", nqn);
	int rc;

	out->v = NULL;
	out->n = 0;
	if (!p)
		return -ENOMEM;
	rc = spdk_call(c, "nvmf_get_subsystems", p, &res);
	if (rc == 0)
		rc = spdk_parse_subsystems(res, out);
	if (rc == 0 && (out->n != 1 || strcmp(out->v[0].nqn, nqn) != 0)) {
		spdk_subsystem_list_free(out);
		rc = -EPROTO;
	}
	json_decref(res);
	return rc;
}

json_t *spdk_params_listener(const char *nqn, const struct spdk_listen_addr *a)
{
	return json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "nqn", nqn, "listen_address", "trtype",
			 a->trtype, "adrfam", a->adrfam, "traddr", a->traddr, "trsvcid", a->trsvcid);
}

int spdk_nvmf_listener_add(struct spdk_client *c, const char *nqn,
			   const struct spdk_listen_addr *a)
{
	return call_true(c, "nvmf_subsystem_add_listener", spdk_params_listener(nqn, a));
}

int spdk_nvmf_listener_remove(struct spdk_client *c, const char *nqn,
			      const struct spdk_listen_addr *a)
{
	return call_true(c, "nvmf_subsystem_remove_listener", spdk_params_listener(nqn, a));
}

json_t *spdk_params_host(const char *nqn, const char *host)
{
	return json_pack("{s:s, s:s}", "nqn", nqn, "host", host);
}

int spdk_nvmf_host_add(struct spdk_client *c, const char *nqn, const char *host)
{
	return call_true(c, "nvmf_subsystem_add_host", spdk_params_host(nqn, host));
}

json_t *spdk_params_ns_add(const char *nqn, const char *bdev_name, uint32_t nsid, const char *uuid)
{
	json_t *ns = json_pack("{s:s}", "bdev_name", bdev_name);

	if (!ns)
		return NULL;
	if (nsid)
		json_object_set_new(ns, "nsid", json_integer(nsid));
	if (uuid)
		json_object_set_new(ns, "uuid", json_string(uuid));
	return json_pack("{s:s, s:o}", "nqn", nqn, "namespace", ns);
}

int spdk_nvmf_ns_add(struct spdk_client *c, const char *nqn, const char *bdev_name, uint32_t nsid,
		     const char *uuid, uint32_t *nsid_out)
{
	json_t *p = spdk_params_ns_add(nqn, bdev_name, nsid, uuid), *res = NULL;
	int rc;

	if (!p)
		return -ENOMEM;
	rc = spdk_call(c, "nvmf_subsystem_add_ns", p, &res);
	if (rc == 0) {
		if (!json_is_integer(res))
			rc = -EPROTO;
		else if (nsid_out)
			*nsid_out = (uint32_t)json_integer_value(res);
	}
	json_decref(res);
	return rc;
}

json_t *spdk_params_ns_remove(const char *nqn, uint32_t nsid)
{
	return json_pack("{s:s, s:i}", "nqn", nqn, "nsid", (int)nsid);
}

int spdk_nvmf_ns_remove(struct spdk_client *c, const char *nqn, uint32_t nsid)
{
	return call_true(c, "nvmf_subsystem_remove_ns", spdk_params_ns_remove(nqn, nsid));
}
