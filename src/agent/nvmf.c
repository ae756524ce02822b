/*
 * nvmf.c: the agent's NVMe-oF export of an lvol (DESIGN.md
 * "ensure_nvmf_ready"): transport, one subsystem per lvol (serial, model,
 * no allow_any_host), one listener per address of the disk (an interface is
 * resolved to its addresses now), the agent's host NQN plus the lvol's hosts,
 * then namespace 1 = the lvol with its UUID. Each step only creates what the
 * last listing did not show, so it is safe on every tick.
 */
#include "agent/agent_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

static void listen_fill(struct spdk_listen_addr *a, const struct db_disk *d, const char *traddr,
			bool ipv6, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->trtype, sizeof(a->trtype), "%s", db_transport_name(d->transport));
	snprintf(a->adrfam, sizeof(a->adrfam), "%s", ipv6 ? "IPv6" : "IPv4");
	snprintf(a->traddr, sizeof(a->traddr), "%s", traddr);
	snprintf(a->trsvcid, sizeof(a->trsvcid), "%u", (unsigned)port);
}

int agent_disk_listeners(const struct db_disk *d, struct spdk_listen_addr **out, size_t *n)
{
	struct spdk_listen_addr *v;
	struct ifaddrs *ifa = NULL, *p;
	size_t cnt = 0, cap;

	*out = NULL;
	*n = 0;
	if (!d->interface[0]) {
		v = mem_zalloc((d->listen_count + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < d->listen_count; i++)
			listen_fill(&v[cnt++], d, d->listen[i].traddr, d->listen[i].ipv6,
				    d->listen[i].port);
		*out = v;
		*n = cnt;
		return 0;
	}
	if (getifaddrs(&ifa) != 0)
		return -errno;
	cap = 1;
	for (p = ifa; p; p = p->ifa_next)
		cap++;
	v = mem_zalloc(cap * sizeof(*v));
	if (!v) {
		freeifaddrs(ifa);
		return -ENOMEM;
	}
	for (p = ifa; p; p = p->ifa_next) {
		char buf[INET6_ADDRSTRLEN];

		if (!p->ifa_addr || strcmp(p->ifa_name, d->interface) != 0)
			continue;
		if (p->ifa_addr->sa_family == AF_INET) {
			const struct sockaddr_in *s = (const struct sockaddr_in *)p->ifa_addr;

			inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
			listen_fill(&v[cnt++], d, buf, false, d->port);
		} else if (p->ifa_addr->sa_family == AF_INET6) {
			const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)p->ifa_addr;

			/* Link-local addresses need a scope id hosts cannot use. */
			if (IN6_IS_ADDR_LINKLOCAL(&s->sin6_addr))
				continue;
			inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
			listen_fill(&v[cnt++], d, buf, true, d->port);
		}
	}
	freeifaddrs(ifa);
	*out = v;
	*n = cnt;
	return 0;
}

static bool sub_has_listener(const struct spdk_subsystem *sub, const struct spdk_listen_addr *a)
{
	for (size_t i = 0; sub && i < sub->n_listeners; i++) {
		const struct spdk_listen_addr *x = &sub->listeners[i];

		if (strcasecmp(x->trtype, a->trtype) == 0 && strcmp(x->traddr, a->traddr) == 0 &&
		    strcmp(x->trsvcid, a->trsvcid) == 0)
			return true;
	}
	return false;
}

static bool sub_has_host(const struct spdk_subsystem *sub, const char *host)
{
	for (size_t i = 0; sub && i < sub->n_hosts; i++)
		if (strcmp(sub->hosts[i], host) == 0)
			return true;
	return false;
}

bool agent_subsystem_has_ns(const struct spdk_subsystem *sub, const char *bdev_uuid)
{
	for (size_t i = 0; sub && i < sub->n_ns; i++)
		if (strcmp(sub->ns[i].bdev_name, bdev_uuid) == 0 ||
		    strcmp(sub->ns[i].uuid, bdev_uuid) == 0)
			return true;
	return false;
}

int agent_nvmf_transport(struct agent_loop *l, enum db_transport t)
{
	int rc;

	if (l->connections_seen != spdk_client_connections(l->spdk)) {
		/* New connection: the target may have restarted (nvmf state is
		 * not persistent), so ensure the transport again. */
		l->connections_seen = spdk_client_connections(l->spdk);
		l->transport_ok[0] = l->transport_ok[1] = false;
	}
	if (l->transport_ok[t])
		return 0;
	rc = spdk_nvmf_transport_create(l->spdk, db_transport_name(t));
	if (rc && rc != -EEXIST) {
		LOG_WARN("agent", "nvmf transport trtype=%s err=%s message=\"%s\"",
			 db_transport_name(t), common_strerror(rc), spdk_client_last_message(l->spdk));
		return rc;
	}
	if (rc == 0) {
		LOG_INFO("agent", "nvmf transport created trtype=%s", db_transport_name(t));
		agent_crash("provision.after_transport_create");
	}
	l->transport_ok[t] = true;
	return 0;
}

int agent_nvmf_ensure(struct agent_loop *l, const struct db_disk *d, const struct db_lvol *lv,
		      const struct spdk_subsystem *sub)
{
	struct spdk_listen_addr *addrs = NULL;
	char nqn[AGENT_NQN_MAX], serial[24];
	size_t n_addrs = 0;
	int rc;

	rc = agent_nvmf_transport(l, d->transport);
	if (rc)
		return rc;
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	if (!sub) {
		agent_lvol_serial(lv->id, serial);
		rc = spdk_nvmf_subsystem_create(l->spdk, nqn, serial, AGENT_MODEL, false, 0);
		if (rc && rc != -EEXIST)
			return rc;
		if (rc == 0)
			agent_crash("provision.after_subsystem_create");
	}
	rc = agent_disk_listeners(d, &addrs, &n_addrs);
	if (rc)
		return rc;
	for (size_t i = 0; i < n_addrs; i++) {
		if (sub_has_listener(sub, &addrs[i]))
			continue;
		rc = spdk_nvmf_listener_add(l->spdk, nqn, &addrs[i]);
		if (rc) {
			LOG_WARN("agent", "listener not added nqn=%s traddr=%s trsvcid=%s err=%s "
				 "message=\"%s\"", nqn, addrs[i].traddr, addrs[i].trsvcid,
				 common_strerror(rc), spdk_client_last_message(l->spdk));
			goto out;
		}
		agent_crash("provision.after_listener_add");
	}
	/* Listeners on addresses the disk no longer has (an interface's address
	 * changed). Never all of them: no address at all is more likely a down
	 * interface than an intent. */
	for (size_t i = 0; sub && n_addrs && i < sub->n_listeners; i++) {
		const struct spdk_listen_addr *x = &sub->listeners[i];
		struct spdk_subsystem want = { .listeners = addrs, .n_listeners = n_addrs };

		if (sub_has_listener(&want, x))
			continue;
		rc = spdk_nvmf_listener_remove(l->spdk, nqn, x);
		if (rc && spdk_call_is_transient(rc))
			goto out;
		LOG_INFO("agent", "stale listener removed nqn=%s traddr=%s trsvcid=%s err=%d", nqn,
			 x->traddr, x->trsvcid, rc);
	}
	if (!sub_has_host(sub, l->host_nqn)) {
		rc = spdk_nvmf_host_add(l->spdk, nqn, l->host_nqn);
		if (rc && rc != -EEXIST)
			goto out;
		agent_crash("provision.after_host_add");
	}
	for (size_t i = 0; i < lv->host_count; i++) {
		if (sub_has_host(sub, lv->hosts[i]))
			continue;
		rc = spdk_nvmf_host_add(l->spdk, nqn, lv->hosts[i]);
		if (rc && rc != -EEXIST)
			goto out;
		agent_crash("provision.after_host_add");
	}
	rc = 0;
out:
	mem_free(addrs);
	return rc;
}

int agent_nvmf_export(struct agent_loop *l, const struct db_lvol *lv,
		      const struct spdk_subsystem *sub)
{
	char nqn[AGENT_NQN_MAX];
	int rc;

	if (agent_subsystem_has_ns(sub, lv->uuid))
		return 0;
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	for (size_t i = 0; sub && i < sub->n_ns; i++) {
		if (sub->ns[i].nsid != AGENT_NSID)
			continue;
		/* Namespace 1 holds another bdev (a stale export): replace it. */
		LOG_WARN("agent", "stale namespace nqn=%s nsid=1 bdev=%s lvol_uuid=%s", nqn,
			 sub->ns[i].bdev_name, lv->uuid);
		rc = spdk_nvmf_ns_remove(l->spdk, nqn, AGENT_NSID);
		if (rc && rc != -EINVAL)
			return rc;
	}
	rc = spdk_nvmf_ns_add(l->spdk, nqn, lv->uuid, AGENT_NSID, lv->uuid, NULL);
	if (rc)
		LOG_WARN("agent", "namespace not added nqn=%s bdev=%s err=%s message=\"%s\"", nqn,
			 lv->uuid, common_strerror(rc), spdk_client_last_message(l->spdk));
	return rc;
}
