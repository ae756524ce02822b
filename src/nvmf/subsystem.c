/*
 * subsystem.c: NVMe-oF subsystems of the target: creation and lookup by NQN,
 * namespaces (bdev claims, NGUID/UUID/EUI64), listeners and allowed hosts.
 */
#include "nvmf/nvmf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static bool printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

int nvmf_subsystem_create(struct nvmf_tgt *tgt, const char *nqn,
			  const struct nvmf_subsystem_opts *opts, struct nvmf_subsystem **out)
{
	struct nvmf_subsystem_opts o = { 0 };
	struct nvmf_subsystem *s;
	const char *sn, *mn;

	if (opts)
		o = *opts;
	if (nvmf_nqn_validate(nqn) != 0) {
		LOG_WARN(NVMF_LOG, "subsystem create refused: invalid NQN nqn=%s", nqn ? nqn : "(null)");
		return -EINVAL;
	}
	if (nvmf_subsystem_find(tgt, nqn)) {
		LOG_WARN(NVMF_LOG, "subsystem create refused: NQN exists nqn=%s", nqn);
		return -EEXIST;
	}
	sn = o.serial_number ? o.serial_number : NVMF_DEFAULT_SN;
	mn = o.model_number ? o.model_number : NVMF_DEFAULT_MN;
	if (!printable(sn, NVMF_SN_MAX_LEN) || !printable(mn, NVMF_MN_MAX_LEN)) {
		LOG_WARN(NVMF_LOG, "subsystem create refused: bad serial or model nqn=%s", nqn);
		return -EINVAL;
	}
	if (o.max_namespaces == 0)
		o.max_namespaces = NVMF_DEFAULT_MAX_NAMESPACES;
	if (o.max_namespaces > 65536)
		return -EINVAL;
	if (o.min_cntlid == 0)
		o.min_cntlid = NVMF_MIN_CNTLID;
	if (o.max_cntlid == 0)
		o.max_cntlid = NVMF_MAX_CNTLID;
	if (o.min_cntlid > o.max_cntlid || o.max_cntlid > NVMF_MAX_CNTLID)
		return -EINVAL;

	s = mem_zalloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ns_arr = mem_zalloc(sizeof(*s->ns_arr) * o.max_namespaces);
	if (!s->ns_arr) {
		mem_free(s);
		return -ENOMEM;
	}
	s->tgt = tgt;
	snprintf(s->nqn, sizeof(s->nqn), "%s", nqn);
	s->subtype = (!tgt->discovery && strcmp(nqn, NVMF_DISCOVERY_NQN) == 0) ? NVMF_SUBTYPE_DISCOVERY
									       : NVMF_SUBTYPE_NVME;
	snprintf(s->sn, sizeof(s->sn), "%s", sn);
	snprintf(s->mn, sizeof(s->mn), "%s", mn);
	s->allow_any_host = o.allow_any_host;
	s->max_ns = o.max_namespaces;
	s->min_cntlid = o.min_cntlid;
	s->max_cntlid = o.max_cntlid;
	s->next_cntlid = o.min_cntlid;

	if (s->subtype == NVMF_SUBTYPE_DISCOVERY) {
		s->allow_any_host = true;
		s->next = tgt->subsystems;
		tgt->subsystems = s;
		tgt->discovery = s;
	} else {
		struct nvmf_subsystem **pp = &tgt->subsystems;
		if (*pp && (*pp)->subtype == NVMF_SUBTYPE_DISCOVERY)
			pp = &(*pp)->next;
		while (*pp && strcmp((*pp)->nqn, nqn) < 0)
			pp = &(*pp)->next;
		s->next = *pp;
		*pp = s;
		LOG_INFO(NVMF_LOG, "subsystem created nqn=%s allow_any_host=%d max_namespaces=%u", nqn,
			 s->allow_any_host, s->max_ns);
	}
	nvmf_tgt_discovery_changed(tgt);
	if (out)
		*out = s;
	return 0;
}

int nvmf_subsystem_destroy(struct nvmf_subsystem *s)
{
	struct nvmf_tgt *tgt;

	if (!s)
		return 0;
	if (s->subtype == NVMF_SUBTYPE_DISCOVERY)
		return -EPERM;
	tgt = s->tgt;
	while (s->ctrlrs)
		nvmf_ctrlr_destroy(s->ctrlrs, "subsystem deleted");
	while (s->ns_list)
		nvmf_subsystem_ns_remove(s, s->ns_list->nsid);
	for (unsigned i = 0; i < s->n_listeners; i++)
		nvmf_port_put(s->listeners[i].port);
	for (unsigned i = 0; i < s->n_hosts; i++)
		mem_free(s->hosts[i]);
	for (struct nvmf_subsystem **pp = &tgt->subsystems; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (!tgt->destroying)
		LOG_INFO(NVMF_LOG, "subsystem deleted nqn=%s", s->nqn);
	mem_free(s->listeners);
	mem_free(s->hosts);
	mem_free(s->ns_arr);
	mem_free(s);
	if (!tgt->destroying)
		nvmf_tgt_discovery_changed(tgt);
	return 0;
}

struct nvmf_subsystem *nvmf_subsystem_find(struct nvmf_tgt *tgt, const char *nqn)
{
	if (!nqn)
		return NULL;
	for (struct nvmf_subsystem *s = tgt->subsystems; s; s = s->next)
		if (strcmp(s->nqn, nqn) == 0)
			return s;
	return NULL;
}

struct nvmf_subsystem *nvmf_subsystem_first(struct nvmf_tgt *tgt) { return tgt->subsystems; }
struct nvmf_subsystem *nvmf_subsystem_next(const struct nvmf_subsystem *s) { return s->next; }
const char *nvmf_subsystem_nqn(const struct nvmf_subsystem *s) { return s->nqn; }
enum nvmf_subtype nvmf_subsystem_subtype(const struct nvmf_subsystem *s) { return s->subtype; }
const char *nvmf_subsystem_serial_number(const struct nvmf_subsystem *s) { return s->sn; }
const char *nvmf_subsystem_model_number(const struct nvmf_subsystem *s) { return s->mn; }
uint32_t nvmf_subsystem_max_namespaces(const struct nvmf_subsystem *s) { return s->max_ns; }
uint16_t nvmf_subsystem_min_cntlid(const struct nvmf_subsystem *s) { return s->min_cntlid; }
uint16_t nvmf_subsystem_max_cntlid(const struct nvmf_subsystem *s) { return s->max_cntlid; }
void nvmf_subsystem_ctx_set(struct nvmf_subsystem *s, void *ctx) { s->ctx = ctx; }
void *nvmf_subsystem_ctx(const struct nvmf_subsystem *s) { return s->ctx; }
bool nvmf_subsystem_allow_any_host(const struct nvmf_subsystem *s) { return s->allow_any_host; }

void nvmf_subsystem_allow_any_host_set(struct nvmf_subsystem *s, bool allow)
{
	if (s->subtype == NVMF_SUBTYPE_DISCOVERY)
		return;
	s->allow_any_host = allow;
	nvmf_tgt_discovery_changed(s->tgt);
}

/* ---------------------------------------------------------- listeners */

bool nvmf_subsystem_listens_on(const struct nvmf_subsystem *s, const struct nvmf_listen_addr *addr)
{
	for (unsigned i = 0; i < s->n_listeners; i++)
		if (nvmf_listen_addr_equal(&s->listeners[i].addr, addr))
			return true;
	return false;
}

int nvmf_subsystem_listener_add(struct nvmf_subsystem *s, const struct nvmf_listen_addr *addr)
{
	struct nvmf_listen_addr a;
	struct nvmf_listener *nl;
	struct nvmf_port *port;
	int rc;

	rc = nvmf_listen_addr_parse(addr->trtype, addr->adrfam, addr->traddr, addr->trsvcid, &a);
	if (rc)
		return rc;
	if (!nvmf_transport_find(s->tgt, a.trtype))
		return -ENODEV;
	if (nvmf_subsystem_listens_on(s, &a))
		return -EEXIST;
	nl = mem_realloc(s->listeners, sizeof(*nl) * (s->n_listeners + 1));
	if (!nl)
		return -ENOMEM;
	s->listeners = nl;
	rc = nvmf_port_get(s->tgt, &a, &port);
	if (rc) {
		LOG_WARN(NVMF_LOG, "listener add failed nqn=%s traddr=%s trsvcid=%s err=%s", s->nqn, a.traddr,
			 a.trsvcid, common_strerror(rc));
		return rc;
	}
	nl[s->n_listeners].addr = a;
	nl[s->n_listeners].port = port;
	s->n_listeners++;
	nvmf_tgt_discovery_changed(s->tgt);
	return 0;
}

int nvmf_subsystem_listener_remove(struct nvmf_subsystem *s, const struct nvmf_listen_addr *addr)
{
	struct nvmf_listen_addr a;

	if (nvmf_listen_addr_parse(addr->trtype, addr->adrfam, addr->traddr, addr->trsvcid, &a) != 0)
		return -ENOENT;
	for (unsigned i = 0; i < s->n_listeners; i++) {
		if (!nvmf_listen_addr_equal(&s->listeners[i].addr, &a))
			continue;
		nvmf_port_put(s->listeners[i].port);
		memmove(&s->listeners[i], &s->listeners[i + 1], sizeof(s->listeners[0]) * (s->n_listeners - i - 1));
		s->n_listeners--;
		nvmf_tgt_discovery_changed(s->tgt);
		return 0;
	}
	return -ENOENT;
}

unsigned nvmf_subsystem_listener_count(const struct nvmf_subsystem *s) { return s->n_listeners; }

const struct nvmf_listen_addr *nvmf_subsystem_listener_get(const struct nvmf_subsystem *s, unsigned i)
{
	return i < s->n_listeners ? &s->listeners[i].addr : NULL;
}

/* --------------------------------------------------------- namespaces */

static int parse_hex(const char *s, uint8_t *out, size_t n)
{
	size_t got = 0;

	for (; *s; s++) {
		int v;
		if (*s == '-')
			continue;
		if (!isxdigit((unsigned char)*s) || got >= n * 2)
			return -EINVAL;
		v = isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10);
		if (got % 2 == 0)
			out[got / 2] = (uint8_t)(v << 4);
		else
			out[got / 2] |= (uint8_t)v;
		got++;
	}
	return got == n * 2 ? 0 : -EINVAL;
}

static void hex_upper(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = 0;
}

int nvmf_subsystem_ns_add(struct nvmf_subsystem *s, const char *name,
			  const struct nvmf_ns_opts *opts, uint32_t *nsid_out)
{
	struct nvmf_ns_opts o = { 0 };
	struct nvmf_ns *ns;
	struct bdev *bdev;
	uint32_t nsid;
	int rc;

	if (opts)
		o = *opts;
	if (s->subtype == NVMF_SUBTYPE_DISCOVERY)
		return -EINVAL;
	bdev = name ? bdev_find(name) : NULL;
	if (!bdev)
		return -ENODEV;
	if (o.nsid > s->max_ns || o.nsid == 0xFFFFFFFF)
		return -EINVAL;
	uint32_t bs = bdev_block_size(bdev);
	if (bs < 512 || (bs & (bs - 1)))
		return -EINVAL;
	if (o.nsid) {
		if (s->ns_arr[o.nsid - 1])
			return -EEXIST;
		nsid = o.nsid;
	} else {
		nsid = 0;
		for (uint32_t i = 0; i < s->max_ns; i++) {
			if (!s->ns_arr[i]) {
				nsid = i + 1;
				break;
			}
		}
		if (!nsid)
			return -ENOSPC;
	}
	ns = mem_zalloc(sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	rc = common_uuid_parse(o.uuid ? o.uuid : bdev_uuid(bdev), ns->uuid);
	if (rc) {
		rc = -EINVAL;
		goto fail;
	}
	if (o.nguid) {
		if (parse_hex(o.nguid, ns->nguid, 16)) {
			rc = -EINVAL;
			goto fail;
		}
	} else {
		memcpy(ns->nguid, ns->uuid, 16);
	}
	if (o.eui64) {
		if (parse_hex(o.eui64, ns->eui64, 8)) {
			rc = -EINVAL;
			goto fail;
		}
		ns->has_eui64 = true;
		hex_upper(ns->eui64, 8, ns->eui64_str);
	}
	rc = bdev_claim(bdev, BDEV_CLAIM_EXCL_WRITE, "NVMe-oF Target");
	if (rc) {
		rc = -EPERM;
		goto fail;
	}
	common_uuid_unparse(ns->uuid, ns->uuid_str);
	hex_upper(ns->nguid, 16, ns->nguid_str);
	ns->subsys = s;
	ns->nsid = nsid;
	ns->bdev = bdev;
	s->ns_arr[nsid - 1] = ns;
	struct nvmf_ns **pp = &s->ns_list;
	while (*pp && (*pp)->nsid < nsid)
		pp = &(*pp)->next;
	ns->next = *pp;
	*pp = ns;
	s->ns_count++;
	LOG_INFO(NVMF_LOG, "namespace added nqn=%s nsid=%u bdev=%s", s->nqn, nsid, bdev_name(bdev));
	nvmf_subsystem_ns_changed(s, nsid);
	if (nsid_out)
		*nsid_out = nsid;
	return 0;
fail:
	mem_free(ns);
	return rc;
}

int nvmf_subsystem_ns_remove(struct nvmf_subsystem *s, uint32_t nsid)
{
	struct nvmf_ns *ns;

	if (nsid == 0 || nsid > s->max_ns || !(ns = s->ns_arr[nsid - 1]))
		return -ENOENT;
	for (struct nvmf_ns **pp = &s->ns_list; *pp; pp = &(*pp)->next) {
		if (*pp == ns) {
			*pp = ns->next;
			break;
		}
	}
	s->ns_arr[nsid - 1] = NULL;
	s->ns_count--;
	bdev_release(ns->bdev);
	if (!s->tgt->destroying)
		LOG_INFO(NVMF_LOG, "namespace removed nqn=%s nsid=%u", s->nqn, nsid);
	mem_free(ns);
	nvmf_subsystem_ns_changed(s, nsid);
	return 0;
}

struct nvmf_ns *nvmf_subsystem_ns_first(const struct nvmf_subsystem *s) { return s->ns_list; }
struct nvmf_ns *nvmf_subsystem_ns_next(const struct nvmf_ns *ns) { return ns->next; }
unsigned nvmf_subsystem_ns_count(const struct nvmf_subsystem *s) { return s->ns_count; }

struct nvmf_ns *nvmf_subsystem_ns_find(const struct nvmf_subsystem *s, uint32_t nsid)
{
	if (nsid == 0 || nsid > s->max_ns)
		return NULL;
	return s->ns_arr[nsid - 1];
}

uint32_t nvmf_ns_nsid(const struct nvmf_ns *ns) { return ns->nsid; }
struct bdev *nvmf_ns_bdev(const struct nvmf_ns *ns) { return ns->bdev; }
const char *nvmf_ns_uuid(const struct nvmf_ns *ns) { return ns->uuid_str; }
const char *nvmf_ns_nguid(const struct nvmf_ns *ns) { return ns->nguid_str; }
const char *nvmf_ns_eui64(const struct nvmf_ns *ns) { return ns->has_eui64 ? ns->eui64_str : NULL; }

/* -------------------------------------------------------------- hosts */

int nvmf_subsystem_host_add(struct nvmf_subsystem *s, const char *hostnqn)
{
	char **h, *copy;

	if (nvmf_nqn_validate(hostnqn) != 0)
		return -EINVAL;
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i], hostnqn) == 0)
			return -EEXIST;
	copy = mem_strdup(hostnqn);
	if (!copy)
		return -ENOMEM;
	h = mem_realloc(s->hosts, sizeof(*h) * (s->n_hosts + 1));
	if (!h) {
		mem_free(copy);
		return -ENOMEM;
	}
	s->hosts = h;
	h[s->n_hosts++] = copy;
	LOG_INFO(NVMF_LOG, "host allowed nqn=%s host=%s", s->nqn, hostnqn);
	nvmf_tgt_discovery_changed(s->tgt);
	return 0;
}

int nvmf_subsystem_host_remove(struct nvmf_subsystem *s, const char *hostnqn)
{
	for (unsigned i = 0; i < s->n_hosts; i++) {
		if (strcmp(s->hosts[i], hostnqn) != 0)
			continue;
		mem_free(s->hosts[i]);
		memmove(&s->hosts[i], &s->hosts[i + 1], sizeof(s->hosts[0]) * (s->n_hosts - i - 1));
		s->n_hosts--;
		LOG_INFO(NVMF_LOG, "host removed nqn=%s host=%s", s->nqn, hostnqn);
		if (!s->allow_any_host) {
			struct nvmf_ctrlr *c = s->ctrlrs;
			while (c) {
				struct nvmf_ctrlr *next = c->next;
				if (strcmp(c->hostnqn, hostnqn) == 0)
					nvmf_ctrlr_destroy(c, "host removed");
				c = next;
			}
		}
		nvmf_tgt_discovery_changed(s->tgt);
		return 0;
	}
	return -ENOENT;
}

unsigned nvmf_subsystem_host_count(const struct nvmf_subsystem *s) { return s->n_hosts; }

const char *nvmf_subsystem_host_get(const struct nvmf_subsystem *s, unsigned i)
{
	return i < s->n_hosts ? s->hosts[i] : NULL;
}

bool nvmf_subsystem_host_allowed(const struct nvmf_subsystem *s, const char *hostnqn)
{
	if (s->allow_any_host)
		return true;
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i], hostnqn) == 0)
			return true;
	return false;
}

/* ------------------------------------------- controllers and qpairs */

void nvmf_subsystem_ctrlr_foreach(const struct nvmf_subsystem *s,
				  void (*cb)(const struct nvmf_ctrlr_info *info, void *arg), void *arg)
{
	for (struct nvmf_ctrlr *c = s->ctrlrs; c; c = c->next) {
		struct nvmf_ctrlr_info info;
		memset(&info, 0, sizeof(info));
		info.cntlid = c->cntlid;
		snprintf(info.hostnqn, sizeof(info.hostnqn), "%s", c->hostnqn);
		common_uuid_unparse(c->hostid, info.hostid);
		info.num_io_qpairs = c->num_io;
		cb(&info, arg);
	}
}

static void qpair_info(const struct nvmf_conn *conn, struct nvmf_qpair_info *info)
{
	memset(info, 0, sizeof(*info));
	info->cntlid = conn->ctrlr->cntlid;
	info->qid = conn->qid;
	info->state = conn->closed ? "deleting" : "active";
	info->listen_addr = conn->local;
	info->peer_addr = conn->peer;
}

void nvmf_subsystem_qpair_foreach(const struct nvmf_subsystem *s,
				  void (*cb)(const struct nvmf_qpair_info *info, void *arg), void *arg)
{
	for (struct nvmf_ctrlr *c = s->ctrlrs; c; c = c->next) {
		struct nvmf_qpair_info info;
		if (c->admin) {
			qpair_info(c->admin, &info);
			cb(&info, arg);
		}
		for (uint32_t q = 1; q <= c->max_io; q++) {
			if (!c->io[q])
				continue;
			qpair_info(c->io[q], &info);
			cb(&info, arg);
		}
	}
}

/* -------------------------------------------------------------- events */

void nvmf_subsystem_ns_changed(struct nvmf_subsystem *s, uint32_t nsid)
{
	for (struct nvmf_ctrlr *c = s->ctrlrs; c; c = c->next)
		nvmf_ctrlr_ns_event(c, nsid);
}

void nvmf_tgt_discovery_changed(struct nvmf_tgt *tgt)
{
	tgt->disc_genctr++;
	if (tgt->destroying || !tgt->discovery)
		return;
	for (struct nvmf_ctrlr *c = tgt->discovery->ctrlrs; c; c = c->next)
		nvmf_ctrlr_disc_event(c);
}
