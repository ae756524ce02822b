/*
 * tgt.c: the nvmf target object, its transports, NQN validation, listen
 * address parsing and the shared TCP listening sockets ("ports").
 */
#include "nvmf/nvmf_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- target */

int nvmf_tgt_create(struct ev_loop *loop, struct nvmf_tgt **out)
{
	struct nvmf_tgt *tgt = mem_zalloc(sizeof(*tgt));
	struct nvmf_subsystem *disc;
	int rc;

	if (!tgt)
		return -ENOMEM;
	tgt->loop = loop;
	tgt->busy_poll_us = NVMF_BUSY_POLL_US;
	const char *bp = getenv("DISKENGINE_NVMF_BUSY_POLL_US");
	if (bp && *bp)
		tgt->busy_poll_us = strtoull(bp, NULL, 10);
	tgt->connect_timeout_ms = NVMF_CONNECT_TIMEOUT_MS;
	const char *ct = getenv("DISKENGINE_NVMF_CONNECT_TIMEOUT_MS");
	if (ct && strtoull(ct, NULL, 10) > 0)
		tgt->connect_timeout_ms = strtoull(ct, NULL, 10);
	tgt->stats.tick_rate = 1000000000ull;
	tgt->disc_genctr = 1;
	struct nvmf_subsystem_opts o = { .allow_any_host = true, .max_namespaces = 0 };
	rc = nvmf_subsystem_create(tgt, NVMF_DISCOVERY_NQN, &o, &disc);
	if (rc) {
		mem_free(tgt);
		return rc;
	}
	*out = tgt;
	return 0;
}

struct ev_loop *nvmf_tgt_loop(const struct nvmf_tgt *tgt)
{
	return tgt->loop;
}

void nvmf_tgt_destroy(struct nvmf_tgt *tgt)
{
	if (!tgt)
		return;
	tgt->destroying = true;
	ev_timer_stop(tgt->loop, tgt->housekeeping);
	tgt->housekeeping = NULL;
	/* Subsystems first: their controllers and connections go with them. */
	while (tgt->subsystems) {
		struct nvmf_subsystem *s = tgt->subsystems;
		if (s == tgt->discovery)
			tgt->discovery = NULL;
		if (s->subtype == NVMF_SUBTYPE_DISCOVERY)
			s->subtype = NVMF_SUBTYPE_NVME; /* allow destroy */
		nvmf_subsystem_destroy(s);
	}
	/* Connections not yet associated with a controller. */
	for (struct nvmf_conn *c = tgt->conns; c; c = c->next)
		if (!c->closed)
			nvmf_conn_close(c, "target shutdown");
	/* Wait for bdev I/O still in flight so no callback touches freed memory. */
	uint64_t deadline = clock_mono_ms() + 5000;
	while ((tgt->conns || tgt->spin_scheduled) && clock_mono_ms() < deadline) {
		ev_loop_run_once(tgt->loop, 10);
		nvmf_tgt_reap(tgt);
	}
	if (tgt->conns)
		LOG_WARN(NVMF_LOG, "target destroyed with connections still waiting for I/O");
	while (tgt->ports) {
		struct nvmf_port *p = tgt->ports;
		p->refs = 1;
		nvmf_port_put(p);
	}
	while (tgt->transports) {
		struct nvmf_transport *t = tgt->transports;
		tgt->transports = t->next;
		mem_free(t);
	}
	if (!tgt->conns)
		mem_free(tgt->rbuf); /* else still used by a connection that outlived the wait */
	mem_free(tgt);
}

static void tgt_spin(struct ev_loop *loop, void *arg)
{
	struct nvmf_tgt *tgt = arg;

	tgt->spin_scheduled = false;
	if (tgt->n_reap)
		nvmf_tgt_reap(tgt);
	if (tgt->destroying || clock_mono_us() >= tgt->busy_until_us)
		return;
	if (ev_defer(loop, tgt_spin, tgt) == 0)
		tgt->spin_scheduled = true;
}

void nvmf_tgt_busy(struct nvmf_tgt *tgt)
{
	if (!tgt->busy_poll_us)
		return;
	tgt->busy_until_us = clock_mono_us() + tgt->busy_poll_us;
	if (tgt->spin_scheduled || tgt->destroying)
		return;
	if (ev_defer(tgt->loop, tgt_spin, tgt) == 0)
		tgt->spin_scheduled = true;
}

int nvmf_tgt_bdev_removed(struct nvmf_tgt *tgt, struct bdev *bdev)
{
	int n = 0;

	for (struct nvmf_subsystem *s = tgt->subsystems; s; s = s->next) {
		struct nvmf_ns *ns = s->ns_list;
		while (ns) {
			struct nvmf_ns *next = ns->next;
			if (ns->bdev == bdev) {
				LOG_INFO(NVMF_LOG, "namespace removed with its bdev nqn=%s nsid=%u bdev=%s",
					 s->nqn, ns->nsid, bdev_name(bdev));
				nvmf_subsystem_ns_remove(s, ns->nsid);
				n++;
			}
			ns = next;
		}
	}
	return n;
}

int nvmf_tgt_bdev_resized(struct nvmf_tgt *tgt, struct bdev *bdev)
{
	int n = 0;

	for (struct nvmf_subsystem *s = tgt->subsystems; s; s = s->next) {
		for (struct nvmf_ns *ns = s->ns_list; ns; ns = ns->next) {
			if (ns->bdev != bdev)
				continue;
			LOG_INFO(NVMF_LOG, "namespace resized nqn=%s nsid=%u blocks=%llu", s->nqn, ns->nsid,
				 (unsigned long long)bdev_num_blocks(bdev));
			nvmf_subsystem_ns_changed(s, ns->nsid);
			n++;
		}
	}
	return n;
}

void nvmf_tgt_stats(const struct nvmf_tgt *tgt, struct nvmf_stats *out)
{
	*out = tgt->stats;
	out->current_admin_qpairs = 0;
	out->current_io_qpairs = 0;
	out->pending_bdev_io = 0;
	for (struct nvmf_conn *c = tgt->conns; c; c = c->next) {
		out->pending_bdev_io += c->inflight;
		if (c->closed || !c->connected)
			continue;
		if (c->qid == 0)
			out->current_admin_qpairs++;
		else
			out->current_io_qpairs++;
	}
}

/* --------------------------------------------------------------- NQN */

static bool nqn_domain_valid(const char *s, size_t len)
{
	/* Reverse domain: labels separated by '.', each starting with a
	 * letter, containing letters, digits and '-', not ending with '-'. */
	size_t i = 0;

	if (len == 0)
		return false;
	while (i < len) {
		size_t start = i;
		if (!isalpha((unsigned char)s[i]))
			return false;
		while (i < len && s[i] != '.') {
			if (!isalnum((unsigned char)s[i]) && s[i] != '-')
				return false;
			i++;
		}
		if (s[i - 1] == '-' || i == start)
			return false;
		if (i < len) {
			i++; /* the dot */
			if (i == len)
				return false;
		}
	}
	return true;
}

static bool utf8_valid(const unsigned char *s)
{
	while (*s) {
		int n;
		if (*s < 0x80)
			n = 0;
		else if ((*s & 0xE0) == 0xC0)
			n = 1;
		else if ((*s & 0xF0) == 0xE0)
			n = 2;
		else if ((*s & 0xF8) == 0xF0)
			n = 3;
		else
			return false;
		s++;
		for (int i = 0; i < n; i++, s++)
			if ((*s & 0xC0) != 0x80)
				return false;
	}
	return true;
}

int nvmf_nqn_validate(const char *nqn)
{
	static const char uuid_pre[] = "nqn.2014-08.org.nvmexpress:uuid:";
	size_t len;

	if (!nqn)
		return -EINVAL;
	len = strlen(nqn);
	if (len < NVMF_NQN_MIN_LEN || len > NVMF_NQN_MAX_LEN)
		return -EINVAL;
	if (strncasecmp(nqn, uuid_pre, sizeof(uuid_pre) - 1) == 0) {
		if (len != sizeof(uuid_pre) - 1 + 36)
			return -EINVAL;
		return common_uuid_parse(nqn + sizeof(uuid_pre) - 1, NULL) == 0 ? 0 : -EINVAL;
	}
	if (strncmp(nqn, "nqn.", 4) != 0)
		return -EINVAL;
	/* nqn.yyyy-mm. */
	if (len < 12)
		return -EINVAL;
	for (int i = 4; i < 8; i++)
		if (!isdigit((unsigned char)nqn[i]))
			return -EINVAL;
	if (nqn[8] != '-' || !isdigit((unsigned char)nqn[9]) || !isdigit((unsigned char)nqn[10]) || nqn[11] != '.')
		return -EINVAL;
	const char *dom = nqn + 12;
	const char *colon = strchr(dom, ':');
	size_t dlen = colon ? (size_t)(colon - dom) : strlen(dom);
	if (!nqn_domain_valid(dom, dlen))
		return -EINVAL;
	if (colon && !utf8_valid((const unsigned char *)colon + 1))
		return -EINVAL;
	return 0;
}

/* --------------------------------------------------------- transports */

void nvmf_transport_opts_init(struct nvmf_transport_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_queue_depth = 128;
	o->max_io_qpairs_per_ctrlr = 127;
	o->in_capsule_data_size = 4096;
	o->max_io_size = 131072;
	o->io_unit_size = 131072;
	o->max_aq_depth = 128;
	o->num_shared_buffers = 511;
	o->buf_cache_size = UINT32_MAX;
	o->c2h_success = true;
	o->abort_timeout_sec = 1;
	o->kas = 100;
	o->min_kato = 10000;
}

int nvmf_transport_create(struct nvmf_tgt *tgt, const char *trtype,
			  const struct nvmf_transport_opts *opts, struct nvmf_transport **out)
{
	struct nvmf_transport *t;
	struct nvmf_transport_opts o;

	if (!trtype || strcasecmp(trtype, "TCP") != 0)
		return -EPROTONOSUPPORT;
	if (nvmf_transport_find(tgt, trtype))
		return -EEXIST;
	if (opts)
		o = *opts;
	else
		nvmf_transport_opts_init(&o);
	if (o.max_queue_depth < 2 || o.max_queue_depth > 65536 || o.max_aq_depth < 2 ||
	    o.max_aq_depth > 65536 || o.max_io_size < 4096 || o.max_io_size % 4096 ||
	    o.max_io_size > (64u << 20) || o.in_capsule_data_size % 16 ||
	    o.in_capsule_data_size > o.max_io_size || o.max_io_qpairs_per_ctrlr == 0 ||
	    o.max_io_qpairs_per_ctrlr > 65534 || o.kas == 0 || o.kas > 0xFFFF)
		return -EINVAL;
	t = mem_zalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tgt = tgt;
	snprintf(t->trtype, sizeof(t->trtype), "TCP");
	t->opts = o;
	t->next = tgt->transports;
	tgt->transports = t;
	LOG_INFO(NVMF_LOG, "transport created trtype=TCP max_queue_depth=%u max_io_size=%u in_capsule_data_size=%u",
		 o.max_queue_depth, o.max_io_size, o.in_capsule_data_size);
	if (out)
		*out = t;
	return 0;
}

struct nvmf_transport *nvmf_transport_find(struct nvmf_tgt *tgt, const char *trtype)
{
	for (struct nvmf_transport *t = tgt->transports; t; t = t->next)
		if (trtype && strcasecmp(t->trtype, trtype) == 0)
			return t;
	return NULL;
}

struct nvmf_transport *nvmf_transport_first(struct nvmf_tgt *tgt) { return tgt->transports; }
struct nvmf_transport *nvmf_transport_next(const struct nvmf_transport *t) { return t->next; }
const char *nvmf_transport_trtype(const struct nvmf_transport *t) { return t->trtype; }
const struct nvmf_transport_opts *nvmf_transport_opts(const struct nvmf_transport *t) { return &t->opts; }

struct nvmf_transport *nvmf_tgt_tcp(struct nvmf_tgt *tgt)
{
	return nvmf_transport_find(tgt, "TCP");
}

/* ---------------------------------------------------- listen addresses */

int nvmf_listen_addr_parse(const char *trtype, const char *adrfam, const char *traddr,
			   const char *trsvcid, struct nvmf_listen_addr *out)
{
	unsigned char tmp[16];
	bool v6;
	char *end;
	long port;

	memset(out, 0, sizeof(*out));
	if (!trtype || !traddr || !trsvcid)
		return -EINVAL;
	if (strcasecmp(trtype, "TCP") == 0)
		snprintf(out->trtype, sizeof(out->trtype), "TCP");
	else if (strcasecmp(trtype, "RDMA") == 0)
		snprintf(out->trtype, sizeof(out->trtype), "RDMA");
	else
		return -EINVAL;
	if (!adrfam || !*adrfam)
		v6 = strchr(traddr, ':') != NULL;
	else if (strcasecmp(adrfam, "IPv4") == 0)
		v6 = false;
	else if (strcasecmp(adrfam, "IPv6") == 0)
		v6 = true;
	else
		return -EINVAL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, traddr, tmp) != 1 || strlen(traddr) >= sizeof(out->traddr))
		return -EINVAL;
	errno = 0;
	port = strtol(trsvcid, &end, 10);
	if (errno || end == trsvcid || *end || port < 0 || port > 65535)
		return -EINVAL;
	snprintf(out->adrfam, sizeof(out->adrfam), v6 ? "IPv6" : "IPv4");
	snprintf(out->traddr, sizeof(out->traddr), "%s", traddr);
	snprintf(out->trsvcid, sizeof(out->trsvcid), "%ld", port);
	return 0;
}

bool nvmf_listen_addr_equal(const struct nvmf_listen_addr *a, const struct nvmf_listen_addr *b)
{
	return strcmp(a->trtype, b->trtype) == 0 && strcmp(a->adrfam, b->adrfam) == 0 &&
	       strcmp(a->traddr, b->traddr) == 0 && strcmp(a->trsvcid, b->trsvcid) == 0;
}

/* ------------------------------------------------------------- ports */

static void sockaddr_to_addr(const struct sockaddr_storage *ss, struct nvmf_listen_addr *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->trtype, sizeof(a->trtype), "TCP");
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		snprintf(a->adrfam, sizeof(a->adrfam), "IPv6");
		inet_ntop(AF_INET6, &s6->sin6_addr, a->traddr, sizeof(a->traddr));
		snprintf(a->trsvcid, sizeof(a->trsvcid), "%u", ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;
		snprintf(a->adrfam, sizeof(a->adrfam), "IPv4");
		inet_ntop(AF_INET, &s4->sin_addr, a->traddr, sizeof(a->traddr));
		snprintf(a->trsvcid, sizeof(a->trsvcid), "%u", ntohs(s4->sin_port));
	}
}

/* Once a second while connections exist: drop those that never got to a
 * completed Connect (a half-open socket must not hold memory forever). */
static void tgt_housekeeping(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct nvmf_tgt *tgt = arg;
	uint64_t now = clock_mono_ms();

	if (!tgt->conns) {
		ev_timer_stop(loop, t);
		tgt->housekeeping = NULL;
		return;
	}
	for (struct nvmf_conn *c = tgt->conns; c; c = c->next)
		if (!c->closed && !c->connected && now - c->created_ms > tgt->connect_timeout_ms)
			nvmf_conn_close(c, "no Connect in time");
}

static void port_accept(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct nvmf_port *port = arg;

	if (port->tgt->n_reap)
		nvmf_tgt_reap(port->tgt);
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				LOG_WARN(NVMF_LOG, "accept failed addr=%s:%s err=%s", port->addr.traddr,
					 port->addr.trsvcid, common_strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct nvmf_listen_addr peer;
		sockaddr_to_addr(&ss, &peer);
		struct nvmf_conn *conn = NULL;
		struct sockaddr_storage ls;
		struct nvmf_listen_addr local;
		socklen_t lsl = sizeof(ls);
		memset(&local, 0, sizeof(local));
		if (getsockname(cfd, (struct sockaddr *)&ls, &lsl) == 0)
			sockaddr_to_addr(&ls, &local);
		if (nvmf_conn_create(port->tgt, cfd, &port->addr, &peer, &conn) != 0) {
			LOG_WARN(NVMF_LOG, "connection refused (out of memory) peer=%s:%s", peer.traddr, peer.trsvcid);
			continue;
		}
		snprintf(conn->local_traddr, sizeof(conn->local_traddr), "%s", local.traddr);
		if (!port->tgt->housekeeping) {
			uint64_t period = COMMON_MIN(1000, port->tgt->connect_timeout_ms);
			ev_timer_start(loop, period, period, tgt_housekeeping, port->tgt, &port->tgt->housekeeping);
		}
	}
}

int nvmf_port_get(struct nvmf_tgt *tgt, const struct nvmf_listen_addr *addr, struct nvmf_port **out)
{
	struct nvmf_port *p;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = -1, rc, one = 1;

	for (p = tgt->ports; p; p = p->next) {
		if (nvmf_listen_addr_equal(&p->addr, addr)) {
			p->refs++;
			*out = p;
			return 0;
		}
	}
	memset(&ss, 0, sizeof(ss));
	if (strcmp(addr->adrfam, "IPv6") == 0) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)atoi(addr->trsvcid));
		if (inet_pton(AF_INET6, addr->traddr, &s6->sin6_addr) != 1)
			return -EINVAL;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)atoi(addr->trsvcid));
		if (inet_pton(AF_INET, addr->traddr, &s4->sin_addr) != 1)
			return -EINVAL;
		sl = sizeof(*s4);
	}
	p = mem_zalloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 512) != 0) {
		rc = -errno;
		goto fail;
	}
	p->tgt = tgt;
	p->addr = *addr;
	p->fd = fd;
	p->refs = 1;
	rc = ev_fd_add(tgt->loop, fd, EPOLLIN, port_accept, p);
	if (rc)
		goto fail;
	p->next = tgt->ports;
	tgt->ports = p;
	LOG_INFO(NVMF_LOG, "listening trtype=TCP adrfam=%s traddr=%s trsvcid=%s", addr->adrfam, addr->traddr,
		 addr->trsvcid);
	*out = p;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	mem_free(p);
	return rc;
}

void nvmf_port_put(struct nvmf_port *port)
{
	struct nvmf_tgt *tgt = port->tgt;

	if (--port->refs > 0)
		return;
	for (struct nvmf_port **pp = &tgt->ports; *pp; pp = &(*pp)->next) {
		if (*pp == port) {
			*pp = port->next;
			break;
		}
	}
	ev_fd_remove(tgt->loop, port->fd);
	close(port->fd);
	LOG_INFO(NVMF_LOG, "stopped listening traddr=%s trsvcid=%s", port->addr.traddr, port->addr.trsvcid);
	mem_free(port);
}
