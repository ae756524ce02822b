/*
 * ctrlr.c: the NVMe-oF controller of the target: Fabrics commands (Connect,
 * Property Get/Set), admin commands (Identify, Get Log Page, Set/Get
 * Features, Asynchronous Event Request, Keep Alive, Abort), keep-alive
 * timeout enforcement and namespace-change events. Values follow
 * shared/spec/nvme-tcp.md sections 2, 3 and 6.
 */
#include "nvmf/nvmf_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define NVMF_VS NVME_VS_1_3
#define NVMF_FR "0.1.0"
#define NVMF_CAP_TO 30 /* 15 s in 500 ms units */
#define NVMF_DISC_KATO_MS 120000u

static void ctrlr_ka_timer(struct ev_loop *loop, struct ev_timer *t, void *arg);

static struct nvme_sqe *req_sqe(struct nvmf_req *req) { return (struct nvme_sqe *)req->sqe; }
static struct nvme_cqe *req_cqe(struct nvmf_req *req) { return (struct nvme_cqe *)req->cqe; }

static void req_status(struct nvmf_req *req, uint8_t sct, uint8_t sc)
{
	nvmf_req_set_status(req, sct, sc, sct != NVME_SCT_GENERIC || sc != NVME_SC_SUCCESS);
	if (sc != NVME_SC_SUCCESS || sct != NVME_SCT_GENERIC)
		req->c2h = false;
}

static void req_done(struct nvmf_req *req, uint8_t sct, uint8_t sc)
{
	req_status(req, sct, sc);
	nvmf_req_complete(req);
}

static void connect_invalid(struct nvmf_req *req, uint8_t iattr, uint16_t ipo)
{
	req_cqe(req)->dw0 = NVME_CONNECT_RSP_INVALID(iattr, ipo);
	req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_FABRIC_INVALID_PARAM);
}

int nvmf_cmd_xfer_dir(const uint8_t *sqe_bytes)
{
	const struct nvme_sqe *sqe = (const void *)sqe_bytes;

	if (sqe->opc == NVME_OPC_FABRICS) {
		switch (sqe_bytes[4]) {
		case NVME_FCTYPE_CONNECT:
		case NVME_FCTYPE_AUTH_SEND:
			return NVME_XFER_HOST_TO_CTRLR;
		case NVME_FCTYPE_AUTH_RECV:
			return NVME_XFER_CTRLR_TO_HOST;
		default:
			return NVME_XFER_NONE;
		}
	}
	return NVME_OPC_XFER(sqe->opc);
}

/* ------------------------------------------------------ controllers */

static bool cntlid_used(const struct nvmf_subsystem *s, uint16_t id)
{
	for (struct nvmf_ctrlr *c = s->ctrlrs; c; c = c->next)
		if (c->cntlid == id)
			return true;
	return false;
}

static int cntlid_alloc(struct nvmf_subsystem *s, uint16_t *out)
{
	uint32_t span = (uint32_t)s->max_cntlid - s->min_cntlid + 1;

	for (uint32_t i = 0; i < span; i++) {
		uint16_t id = s->next_cntlid;
		s->next_cntlid = id >= s->max_cntlid ? s->min_cntlid : (uint16_t)(id + 1);
		if (!cntlid_used(s, id)) {
			*out = id;
			return 0;
		}
	}
	return -EBUSY;
}

static void ctrlr_link(struct nvmf_subsystem *s, struct nvmf_ctrlr *c)
{
	struct nvmf_ctrlr **pp = &s->ctrlrs;

	while (*pp && (*pp)->cntlid < c->cntlid)
		pp = &(*pp)->next;
	c->next = *pp;
	*pp = c;
}

void nvmf_ctrlr_destroy(struct nvmf_ctrlr *c, const char *why)
{
	struct nvmf_subsystem *s = c->subsys;

	if (c->destroying)
		return;
	c->destroying = true;
	if (!s->tgt->destroying)
		LOG_INFO(NVMF_LOG, "controller destroyed nqn=%s cntlid=%u host=%s reason=\"%s\"", s->nqn, c->cntlid,
			 c->hostnqn, why);
	ev_timer_stop(s->tgt->loop, c->ka_timer);
	c->ka_timer = NULL;
	for (struct nvmf_ctrlr **pp = &s->ctrlrs; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	for (uint32_t q = 1; q <= c->max_io; q++)
		if (c->io[q])
			nvmf_conn_close(c->io[q], why);
	if (c->admin)
		nvmf_conn_close(c->admin, why);
	mem_free(c->io);
	mem_free(c);
}

void nvmf_conn_detach(struct nvmf_conn *conn)
{
	struct nvmf_ctrlr *c = conn->ctrlr;

	if (!c)
		return;
	conn->ctrlr = NULL;
	if (conn->qid == 0) {
		/* AERs held on this queue die with it */
		c->n_aer = 0;
		c->admin = NULL;
		nvmf_ctrlr_destroy(c, "admin queue closed");
		return;
	}
	if (conn->qid <= c->max_io && c->io[conn->qid] == conn) {
		c->io[conn->qid] = NULL;
		c->num_io--;
	}
}

static void ctrlr_ka_touch(struct nvmf_ctrlr *c)
{
	c->ka_last_ms = clock_mono_ms();
}

static void ctrlr_ka_start(struct nvmf_ctrlr *c)
{
	struct ev_loop *loop = c->subsys->tgt->loop;
	uint64_t period;

	ev_timer_stop(loop, c->ka_timer);
	c->ka_timer = NULL;
	ctrlr_ka_touch(c);
	if (!c->kato_ms)
		return;
	period = COMMON_MAX(c->kato_ms / 4, 10u);
	if (ev_timer_start(loop, period, period, ctrlr_ka_timer, c, &c->ka_timer) != 0)
		c->ka_timer = NULL;
}

static void ctrlr_ka_timer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct nvmf_ctrlr *c = arg;

	if (clock_mono_ms() - c->ka_last_ms <= c->kato_ms)
		return;
	LOG_WARN(NVMF_LOG, "keep-alive timeout nqn=%s cntlid=%u host=%s kato_ms=%u", c->subsys->nqn, c->cntlid,
		 c->hostnqn, c->kato_ms);
	nvmf_ctrlr_destroy(c, "keep-alive timeout");
}

/* Effective KATO: raised to the transport minimum, rounded up to KAS units. */
static uint32_t kato_effective(struct nvmf_conn *conn, uint32_t kato)
{
	const struct nvmf_transport *t = nvmf_tgt_tcp(conn->tgt);
	uint32_t min = t ? t->opts.min_kato : 10000;
	uint32_t unit = (t ? t->opts.kas : 100) * 100;

	if (kato == 0)
		return 0;
	if (kato < min)
		kato = min;
	return ((kato + unit - 1) / unit) * unit;
}

/* ------------------------------------------------------------- events */

static void ctrlr_deliver_events(struct nvmf_ctrlr *c)
{
	while (c->n_aer > 0) {
		uint32_t dw0;
		if (c->ns_event_pending && !c->ns_event_masked) {
			c->ns_event_pending = false;
			c->ns_event_masked = true;
			dw0 = NVME_AER_MAKE(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_NS_ATTR_CHANGED,
					    NVME_LOG_CHANGED_NS_LIST);
		} else if (c->disc_event_pending && !c->disc_event_masked) {
			c->disc_event_pending = false;
			c->disc_event_masked = true;
			dw0 = NVME_AER_MAKE(NVME_AER_TYPE_NOTICE, NVME_AER_NOTICE_DISC_LOG_CHANGE, NVME_LOG_DISCOVERY);
		} else {
			return;
		}
		struct nvmf_req *req = c->aer[0];
		memmove(&c->aer[0], &c->aer[1], sizeof(c->aer[0]) * (c->n_aer - 1));
		c->n_aer--;
		req_cqe(req)->dw0 = dw0;
		LOG_INFO(NVMF_LOG, "async event sent nqn=%s cntlid=%u dw0=0x%08x", c->subsys->nqn, c->cntlid, dw0);
		req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
	}
}

void nvmf_ctrlr_ns_event(struct nvmf_ctrlr *c, uint32_t nsid)
{
	if (c->destroying || c->subsys->subtype == NVMF_SUBTYPE_DISCOVERY)
		return;
	bool found = false;
	for (unsigned i = 0; i < c->n_changed; i++)
		if (c->changed_ns[i] == nsid)
			found = true;
	if (!found) {
		if (c->n_changed < NVMF_CHANGED_NS_MAX)
			c->changed_ns[c->n_changed++] = nsid;
		else
			c->changed_overflow = true;
	}
	if (!(c->aec & NVME_CTRLR_OAES_NS_ATTR))
		return;
	c->ns_event_pending = true;
	ctrlr_deliver_events(c);
}

void nvmf_ctrlr_disc_event(struct nvmf_ctrlr *c)
{
	if (c->destroying || !(c->aec & NVME_CTRLR_OAES_DISC_CHANGE))
		return;
	c->disc_event_pending = true;
	ctrlr_deliver_events(c);
}

/* ------------------------------------------------------------ Connect */

static void fabrics_connect(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvmf_tgt *tgt = conn->tgt;
	const struct nvme_fabrics_connect_cmd *cmd = (const void *)req->sqe;
	const struct nvme_fabrics_connect_data *d = (const void *)req->buf;
	const struct nvmf_transport *t = nvmf_tgt_tcp(tgt);
	uint32_t max_qd = t ? t->opts.max_queue_depth : 128;
	uint32_t max_aq = t ? t->opts.max_aq_depth : 128;
	uint32_t max_io = t ? t->opts.max_io_qpairs_per_ctrlr : 127;
	struct nvmf_subsystem *s;
	struct nvmf_ctrlr *c;
	char subnqn[NVME_NQN_FIELD_LEN], hostnqn[NVME_NQN_FIELD_LEN];

	if (conn->connected) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
		return;
	}
	if (req->data_len < sizeof(*d)) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_DATA_SGL_LENGTH_INVALID);
		return;
	}
	if (cmd->recfmt != 0) {
		req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_FABRIC_INCOMPATIBLE_FORMAT);
		return;
	}
	if (!memchr(d->subnqn, 0, sizeof(d->subnqn)) || strnlen(d->subnqn, sizeof(d->subnqn)) > NVME_NQN_MAX_LEN) {
		connect_invalid(req, 1, 256);
		return;
	}
	if (!memchr(d->hostnqn, 0, sizeof(d->hostnqn)) || strnlen(d->hostnqn, sizeof(d->hostnqn)) > NVME_NQN_MAX_LEN) {
		connect_invalid(req, 1, 512);
		return;
	}
	memcpy(subnqn, d->subnqn, sizeof(subnqn));
	memcpy(hostnqn, d->hostnqn, sizeof(hostnqn));
	s = nvmf_subsystem_find(tgt, subnqn);
	if (!s || (s->subtype == NVMF_SUBTYPE_NVME && conn->local.trtype[0] &&
		   !nvmf_subsystem_listens_on(s, &conn->local))) {
		LOG_WARN(NVMF_LOG, "connect refused: unknown subsystem or not listening here nqn=%s host=%s", subnqn,
			 hostnqn);
		connect_invalid(req, 1, 256);
		return;
	}
	if (!nvmf_subsystem_host_allowed(s, hostnqn)) {
		LOG_WARN(NVMF_LOG, "connect refused: host not allowed nqn=%s host=%s", subnqn, hostnqn);
		req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_FABRIC_INVALID_HOST);
		return;
	}
	if (cmd->sqsize == 0 || cmd->sqsize > (cmd->qid == 0 ? max_aq : max_qd) - 1 ||
	    cmd->sqsize >= conn->nreqs) {
		connect_invalid(req, 0, 44);
		return;
	}
	if (cmd->qid == 0) {
		uint16_t cntlid;
		if (d->cntlid != NVME_CNTLID_DYNAMIC) {
			connect_invalid(req, 1, 16);
			return;
		}
		if (cntlid_alloc(s, &cntlid) != 0) {
			req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_FABRIC_CONTROLLER_BUSY);
			return;
		}
		c = mem_zalloc(sizeof(*c));
		if (c)
			c->io = mem_zalloc(sizeof(*c->io) * (max_io + 1));
		if (!c || !c->io) {
			if (c)
				mem_free(c);
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INTERNAL_DEVICE_ERROR);
			return;
		}
		c->subsys = s;
		c->cntlid = cntlid;
		c->max_io = s->subtype == NVMF_SUBTYPE_DISCOVERY ? 0 : max_io;
		c->nq_granted = max_io ? max_io - 1 : 0;
		memcpy(c->hostnqn, hostnqn, sizeof(c->hostnqn) - 1); /* length checked above */
		c->hostnqn[sizeof(c->hostnqn) - 1] = 0;
		memcpy(c->hostid, d->hostid, 16);
		c->admin = conn;
		c->kato_ms = kato_effective(conn, cmd->kato);
		if (!c->kato_ms && s->subtype == NVMF_SUBTYPE_DISCOVERY)
			c->kato_ms = NVMF_DISC_KATO_MS;
		ctrlr_link(s, c);
		ctrlr_ka_start(c);
		tgt->stats.admin_qpairs++;
		LOG_INFO(NVMF_LOG, "controller created nqn=%s cntlid=%u host=%s peer=%s:%s kato_ms=%u", s->nqn, cntlid,
			 hostnqn, conn->peer.traddr, conn->peer.trsvcid, c->kato_ms);
	} else {
		c = NULL;
		for (struct nvmf_ctrlr *x = s->ctrlrs; x; x = x->next)
			if (x->cntlid == d->cntlid)
				c = x;
		if (!c || strcmp(c->hostnqn, hostnqn) != 0) {
			connect_invalid(req, 1, 16);
			return;
		}
		if (s->subtype == NVMF_SUBTYPE_DISCOVERY) {
			connect_invalid(req, 0, 42);
			return;
		}
		if (!(c->cc & NVME_CC_EN) || NVME_CC_IOSQES(c->cc) != 6 || NVME_CC_IOCQES(c->cc) != 4) {
			connect_invalid(req, 0, 42);
			return;
		}
		if (cmd->qid > c->max_io) {
			req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_INVALID_QUEUE_IDENTIFIER);
			return;
		}
		if (c->io[cmd->qid]) {
			connect_invalid(req, 0, 42);
			return;
		}
		c->io[cmd->qid] = conn;
		c->num_io++;
		tgt->stats.io_qpairs++;
		LOG_DEBUG(NVMF_LOG, "io qpair connected nqn=%s cntlid=%u qid=%u sqsize=%u", s->nqn, c->cntlid,
			  cmd->qid, cmd->sqsize);
	}
	conn->ctrlr = c;
	conn->subsys = s;
	conn->qid = cmd->qid;
	conn->sqsize = cmd->sqsize;
	conn->sqhd = 0;
	conn->sqhd_disabled = (cmd->cattr & NVME_CONNECT_CATTR_DISABLE_SQ_FLOW) != 0;
	conn->connected = true;
	req_cqe(req)->dw0 = c->cntlid;
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

/* ---------------------------------------------------------- properties */

static uint64_t ctrlr_cap(struct nvmf_conn *conn)
{
	const struct nvmf_transport *t = nvmf_tgt_tcp(conn->tgt);
	uint64_t mqes = (t ? t->opts.max_queue_depth : 128) - 1;

	return mqes | NVME_CAP_CQR | ((uint64_t)NVMF_CAP_TO << NVME_CAP_TO_SHIFT) | NVME_CAP_CSS_NVM;
}

static void prop_get(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvmf_ctrlr *c = conn->ctrlr;
	const struct nvme_fabrics_prop_get_cmd *cmd = (const void *)req->sqe;
	bool size8 = (cmd->attrib & 0x7) == NVME_PROP_SIZE_8;
	uint64_t v;

	if ((cmd->attrib & 0x7) > NVME_PROP_SIZE_8) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	switch (cmd->ofst) {
	case NVME_REG_CAP:
		v = ctrlr_cap(conn);
		break;
	case NVME_REG_CAP + 4:
		if (size8) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			return;
		}
		v = ctrlr_cap(conn) >> 32;
		break;
	case NVME_REG_VS:
		v = NVMF_VS;
		break;
	case NVME_REG_CC:
		v = c->cc;
		break;
	case NVME_REG_CSTS:
		v = c->csts;
		break;
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	/* only CAP is an 8-byte register; a 4-byte read of CAP gives its low half */
	if (size8 && cmd->ofst != NVME_REG_CAP) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	if (!size8)
		v &= 0xFFFFFFFFu;
	req_cqe(req)->dw0 = (uint32_t)v;
	req_cqe(req)->dw1 = (uint32_t)(v >> 32);
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

static void ctrlr_disable_io(struct nvmf_ctrlr *c)
{
	for (uint32_t q = 1; q <= c->max_io; q++)
		if (c->io[q])
			nvmf_conn_close(c->io[q], "controller disabled");
}

static void prop_set(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvmf_ctrlr *c = conn->ctrlr;
	const struct nvme_fabrics_prop_set_cmd *cmd = (const void *)req->sqe;
	uint32_t cc, old;

	if (conn->qid != 0 || cmd->ofst != NVME_REG_CC || (cmd->attrib & 0x7) != NVME_PROP_SIZE_4) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	cc = (uint32_t)cmd->value;
	old = c->cc;
	c->cc = cc;
	if ((cc & NVME_CC_EN) && !(old & NVME_CC_EN)) {
		bool disc = c->subsys->subtype == NVMF_SUBTYPE_DISCOVERY;
		if ((cc & NVME_CC_MPS_MASK) || (cc & NVME_CC_AMS_MASK) || (cc & NVME_CC_CSS_MASK) ||
		    (!disc && (NVME_CC_IOSQES(cc) != 6 || NVME_CC_IOCQES(cc) != 4))) {
			LOG_WARN(NVMF_LOG, "controller fatal status: bad CC nqn=%s cntlid=%u cc=0x%08x",
				 c->subsys->nqn, c->cntlid, cc);
			c->csts |= NVME_CSTS_CFS;
		} else {
			c->csts = NVME_CSTS_RDY;
		}
	} else if (!(cc & NVME_CC_EN) && (old & NVME_CC_EN)) {
		c->csts &= ~(uint32_t)(NVME_CSTS_RDY | NVME_CSTS_CFS | NVME_CSTS_SHST_MASK);
		ctrlr_disable_io(c);
	}
	if ((cc & NVME_CC_SHN_MASK) && !(old & NVME_CC_SHN_MASK)) {
		c->csts = (c->csts & ~(uint32_t)NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_COMPLETE;
		LOG_INFO(NVMF_LOG, "controller shutdown nqn=%s cntlid=%u", c->subsys->nqn, c->cntlid);
	} else if (!(cc & NVME_CC_SHN_MASK)) {
		c->csts &= ~(uint32_t)NVME_CSTS_SHST_MASK;
	}
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

static void fabrics_exec(struct nvmf_req *req)
{
	uint8_t fctype = req->sqe[4];

	if (fctype == NVME_FCTYPE_CONNECT) {
		fabrics_connect(req);
		return;
	}
	if (!req->conn->connected) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
		return;
	}
	switch (fctype) {
	case NVME_FCTYPE_PROPERTY_GET:
		prop_get(req);
		return;
	case NVME_FCTYPE_PROPERTY_SET:
		prop_set(req);
		return;
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE);
		return;
	}
}

/* ------------------------------------------------------------ Identify */

static void pad_copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, COMMON_MIN(l, n));
}

static void identify_ctrlr(struct nvmf_req *req, uint8_t *buf)
{
	struct nvmf_conn *conn = req->conn;
	struct nvmf_ctrlr *c = conn->ctrlr;
	struct nvmf_subsystem *s = c->subsys;
	const struct nvmf_transport *t = nvmf_tgt_tcp(conn->tgt);
	struct nvmf_transport_opts o;
	struct nvme_id_ctrlr *id = (void *)buf;
	bool disc = s->subtype == NVMF_SUBTYPE_DISCOVERY;
	uint32_t mdts = 0;

	if (t)
		o = t->opts;
	else
		nvmf_transport_opts_init(&o);
	while ((4096u << mdts) < o.max_io_size)
		mdts++;
	pad_copy(id->sn, sizeof(id->sn), s->sn);
	pad_copy(id->mn, sizeof(id->mn), s->mn);
	pad_copy(id->fr, sizeof(id->fr), NVMF_FR);
	id->rab = 6;
	id->cmic = NVME_CTRLR_CMIC_MULTI_PORT | NVME_CTRLR_CMIC_MULTI_CTRLR;
	id->mdts = (uint8_t)mdts;
	id->cntlid = c->cntlid;
	id->ver = NVMF_VS;
	id->oaes = disc ? NVME_CTRLR_OAES_DISC_CHANGE : NVME_CTRLR_OAES_NS_ATTR;
	id->ctratt = NVME_CTRLR_CTRATT_HOSTID_128;
	id->cntrltype = disc ? NVME_CTRLR_CNTRLTYPE_DISC : NVME_CTRLR_CNTRLTYPE_IO;
	id->acl = 3;
	id->aerl = NVMF_MAX_AER - 1;
	id->frmw = 0x03; /* slot 1 read-only, 1 slot */
	id->lpa = NVME_CTRLR_LPA_EXT_DATA;
	id->elpe = 0;
	id->wctemp = 0x0157;
	id->cctemp = 0x0175;
	id->kas = (uint16_t)o.kas;
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->maxcmd = (uint16_t)o.max_queue_depth;
	id->nn = disc ? 0 : s->max_ns;
	id->oncs = disc ? 0 : (NVME_CTRLR_ONCS_DSM | NVME_CTRLR_ONCS_WRITE_ZEROES);
	id->vwc = disc ? 0 : (NVME_CTRLR_VWC_PRESENT | NVME_CTRLR_VWC_NO_BROADCAST_FLUSH);
	id->sgls = NVME_CTRLR_SGLS_SUPPORTED | NVME_CTRLR_SGLS_OFFSET;
	snprintf(id->subnqn, sizeof(id->subnqn), "%s", s->nqn);
	id->ioccsz = (64 + o.in_capsule_data_size) / 16;
	id->iorcsz = 1;
	id->icdoff = 0;
	id->fcatt = 0;
	id->msdbd = 1;
	id->ofcs = 0;
}

static void identify_ns(struct nvmf_ns *ns, uint8_t *buf)
{
	struct nvme_id_ns *id = (void *)buf;
	uint32_t bs = bdev_block_size(ns->bdev);
	uint32_t lbads = 0;

	while ((1u << lbads) < bs)
		lbads++;
	id->nsze = bdev_num_blocks(ns->bdev);
	id->ncap = id->nsze;
	id->nuse = id->nsze;
	id->nlbaf = 0;
	id->flbas = 0;
	id->nmic = NVME_NS_NMIC_SHARED;
	id->dlfeat = NVME_NS_DLFEAT_READ_ZEROES;
	memcpy(id->nguid, ns->nguid, 16);
	if (ns->has_eui64)
		memcpy(id->eui64, ns->eui64, 8);
	id->lbaf[0] = NVME_LBAF_MAKE(lbads, 0);
}

static size_t ns_desc_put(uint8_t *buf, size_t off, uint8_t type, const void *id, uint8_t len)
{
	if (off + 4 + len > NVME_IDENTIFY_DATA_LEN)
		return off;
	buf[off] = type;
	buf[off + 1] = len;
	memcpy(buf + off + 4, id, len);
	return off + 4 + len;
}

static void admin_identify(struct nvmf_req *req)
{
	struct nvmf_ctrlr *c = req->conn->ctrlr;
	struct nvmf_subsystem *s = c->subsys;
	const struct nvme_sqe *sqe = req_sqe(req);
	uint8_t cns = sqe->cdw10 & 0xFF;
	uint8_t page[NVME_IDENTIFY_DATA_LEN];
	struct nvmf_ns *ns;

	if (!req->c2h || req->data_len == 0) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_DATA_SGL_LENGTH_INVALID);
		return;
	}
	memset(page, 0, sizeof(page));
	if (s->subtype == NVMF_SUBTYPE_DISCOVERY && cns != NVME_CNS_CTRLR) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	switch (cns) {
	case NVME_CNS_CTRLR:
		identify_ctrlr(req, page);
		break;
	case NVME_CNS_NS:
		if (sqe->nsid == 0 || sqe->nsid > s->max_ns) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
			return;
		}
		ns = nvmf_subsystem_ns_find(s, sqe->nsid);
		if (ns)
			identify_ns(ns, page);
		break;
	case NVME_CNS_ACTIVE_NS_LIST: {
		unsigned n = 0;
		if (sqe->nsid >= 0xFFFFFFFEu) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
			return;
		}
		for (ns = s->ns_list; ns && n < NVME_ACTIVE_NS_LIST_MAX; ns = ns->next)
			if (ns->nsid > sqe->nsid)
				nvme_put_le32(page + 4 * n++, ns->nsid);
		break;
	}
	case NVME_CNS_NS_ID_DESC_LIST: {
		size_t off = 0;
		uint8_t csi = NVME_CSI_NVM;
		ns = nvmf_subsystem_ns_find(s, sqe->nsid);
		if (!ns) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
			return;
		}
		if (ns->has_eui64)
			off = ns_desc_put(page, off, NVME_NIDT_EUI64, ns->eui64, NVME_NIDT_EUI64_LEN);
		off = ns_desc_put(page, off, NVME_NIDT_NGUID, ns->nguid, NVME_NIDT_NGUID_LEN);
		off = ns_desc_put(page, off, NVME_NIDT_UUID, ns->uuid, NVME_NIDT_UUID_LEN);
		ns_desc_put(page, off, NVME_NIDT_CSI, &csi, NVME_NIDT_CSI_LEN);
		break;
	}
	case NVME_CNS_CSI_CTRLR:
		if ((sqe->cdw11 >> 24) != NVME_CSI_NVM) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			return;
		}
		break; /* all zero: no extra limits */
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	memset(req->buf, 0, req->data_len);
	memcpy(req->buf, page, COMMON_MIN(req->data_len, sizeof(page)));
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

/* ------------------------------------------------------- Get Log Page */

static void admin_get_log_page(struct nvmf_req *req)
{
	struct nvmf_ctrlr *c = req->conn->ctrlr;
	struct nvmf_subsystem *s = c->subsys;
	const struct nvme_sqe *sqe = req_sqe(req);
	uint8_t lid = sqe->cdw10 & 0xFF;
	bool rae = (sqe->cdw10 & NVME_LOG_RAE) != 0;
	uint64_t numd = (((uint64_t)(sqe->cdw11 & 0xFFFF) << 16) | (sqe->cdw10 >> 16)) + 1;
	uint64_t len = numd * 4;
	uint64_t offset = sqe->cdw12 | ((uint64_t)sqe->cdw13 << 32);
	bool disc = s->subtype == NVMF_SUBTYPE_DISCOVERY;
	uint64_t page_len;

	if (!req->c2h || offset % 4 || len > req->data_len) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	/* the whole SGL length is sent; bytes past NUMD (and past the page) are zero */
	memset(req->buf, 0, req->data_len);
	if (disc && lid != NVME_LOG_DISCOVERY) {
		req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_INVALID_LOG_PAGE);
		return;
	}
	switch (lid) {
	case NVME_LOG_ERROR:
		page_len = NVME_LOG_ERROR_ENTRY_LEN;
		break;
	case NVME_LOG_HEALTH:
		page_len = NVME_LOG_HEALTH_LEN;
		break;
	case NVME_LOG_FIRMWARE_SLOT: {
		uint8_t fw[NVME_LOG_FIRMWARE_SLOT_LEN];
		page_len = sizeof(fw);
		memset(fw, 0, sizeof(fw));
		fw[0] = 1;
		pad_copy((char *)fw + 8, 8, NVMF_FR);
		if (offset < page_len)
			memcpy(req->buf, fw + offset, COMMON_MIN(len, page_len - offset));
		break;
	}
	case NVME_LOG_CHANGED_NS_LIST: {
		uint8_t list[NVME_LOG_CHANGED_NS_LIST_LEN];
		page_len = sizeof(list);
		memset(list, 0, sizeof(list));
		if (c->changed_overflow)
			nvme_put_le32(list, 0xFFFFFFFFu);
		else
			for (unsigned i = 0; i < c->n_changed; i++)
				nvme_put_le32(list + 4 * i, c->changed_ns[i]);
		if (offset < page_len)
			memcpy(req->buf, list + offset, COMMON_MIN(len, page_len - offset));
		if (!rae) {
			c->n_changed = 0;
			c->changed_overflow = false;
			c->ns_event_masked = false;
		}
		break;
	}
	case NVME_LOG_DISCOVERY:
		if (!disc) {
			req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_INVALID_LOG_PAGE);
			return;
		}
		page_len = UINT64_MAX; /* any offset: entries past the end read as zero */
		nvmf_discovery_log(s->tgt, c->hostnqn, req->conn->local_traddr, req->buf, offset, (uint32_t)len);
		if (!rae)
			c->disc_event_masked = false;
		break;
	default:
		req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_INVALID_LOG_PAGE);
		return;
	}
	if (offset >= page_len) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
	ctrlr_deliver_events(c);
}

/* ------------------------------------------------------------ Features */

static void admin_set_features(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvmf_ctrlr *c = conn->ctrlr;
	const struct nvme_sqe *sqe = req_sqe(req);
	uint8_t fid = sqe->cdw10 & 0xFF;
	bool disc = c->subsys->subtype == NVMF_SUBTYPE_DISCOVERY;

	if (sqe->cdw10 & NVME_FEAT_SAVE) {
		req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_FEATURE_NOT_SAVEABLE);
		return;
	}
	if (disc && fid != NVME_FEAT_KEEP_ALIVE_TIMER && fid != NVME_FEAT_ASYNC_EVENT_CONFIG) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	switch (fid) {
	case NVME_FEAT_NUMBER_OF_QUEUES:
		if ((sqe->cdw11 & 0xFFFF) == 0xFFFF || (sqe->cdw11 >> 16) == 0xFFFF) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			return;
		}
		if (c->num_io > 0) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
			return;
		}
		req_cqe(req)->dw0 = (c->nq_granted << 16) | c->nq_granted;
		break;
	case NVME_FEAT_ASYNC_EVENT_CONFIG:
		c->aec = sqe->cdw11;
		break;
	case NVME_FEAT_KEEP_ALIVE_TIMER:
		if (sqe->cdw11 == 0) {
			req_done(req, NVME_SCT_GENERIC, NVME_SC_KEEP_ALIVE_INVALID);
			return;
		}
		c->kato_ms = kato_effective(conn, sqe->cdw11);
		ctrlr_ka_start(c);
		break;
	case NVME_FEAT_VOLATILE_WRITE_CACHE:
		if (!(sqe->cdw11 & 1)) {
			/* the cache cannot be turned off */
			req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			return;
		}
		break;
	case NVME_FEAT_TEMPERATURE_THRESHOLD:
		break;
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

static void admin_get_features(struct nvmf_req *req)
{
	struct nvmf_ctrlr *c = req->conn->ctrlr;
	const struct nvme_sqe *sqe = req_sqe(req);
	uint8_t fid = sqe->cdw10 & 0xFF;
	bool disc = c->subsys->subtype == NVMF_SUBTYPE_DISCOVERY;
	uint32_t v = 0;

	if (disc && fid != NVME_FEAT_KEEP_ALIVE_TIMER && fid != NVME_FEAT_ASYNC_EVENT_CONFIG) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	switch (fid) {
	case NVME_FEAT_NUMBER_OF_QUEUES:
		v = (c->nq_granted << 16) | c->nq_granted;
		break;
	case NVME_FEAT_ASYNC_EVENT_CONFIG:
		v = c->aec;
		break;
	case NVME_FEAT_KEEP_ALIVE_TIMER:
		v = c->kato_ms;
		break;
	case NVME_FEAT_VOLATILE_WRITE_CACHE:
		v = 1;
		break;
	case NVME_FEAT_TEMPERATURE_THRESHOLD:
		v = 0x0157;
		break;
	case NVME_FEAT_ARBITRATION:
	case NVME_FEAT_POWER_MANAGEMENT:
	case NVME_FEAT_ERROR_RECOVERY:
	case NVME_FEAT_INTERRUPT_COALESCING:
	case NVME_FEAT_WRITE_ATOMICITY:
		v = 0;
		break;
	case NVME_FEAT_INTERRUPT_VECTOR_CONFIG:
		v = sqe->cdw11 & 0xFFFF;
		break;
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	req->c2h = false;
	req_cqe(req)->dw0 = v;
	req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
}

/* --------------------------------------------------------------- admin */

static void admin_exec(struct nvmf_req *req)
{
	struct nvmf_ctrlr *c = req->conn->ctrlr;
	const struct nvme_sqe *sqe = req_sqe(req);

	ctrlr_ka_touch(c);
	if (!(c->cc & NVME_CC_EN) || !(c->csts & NVME_CSTS_RDY)) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
		return;
	}
	if (sqe->flags & NVME_SQE_FLAGS_FUSE_MASK) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
		return;
	}
	switch (sqe->opc) {
	case NVME_OPC_IDENTIFY:
		admin_identify(req);
		return;
	case NVME_OPC_GET_LOG_PAGE:
		admin_get_log_page(req);
		return;
	case NVME_OPC_SET_FEATURES:
		admin_set_features(req);
		return;
	case NVME_OPC_GET_FEATURES:
		admin_get_features(req);
		return;
	case NVME_OPC_ASYNC_EVENT_REQUEST:
		if (c->n_aer >= NVMF_MAX_AER) {
			req_done(req, NVME_SCT_COMMAND_SPECIFIC, NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED);
			return;
		}
		req->c2h = false;
		c->aer[c->n_aer++] = req;
		ctrlr_deliver_events(c);
		return;
	case NVME_OPC_KEEP_ALIVE:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
		return;
	case NVME_OPC_ABORT:
		req_cqe(req)->dw0 = 1; /* not aborted */
		req_done(req, NVME_SCT_GENERIC, NVME_SC_SUCCESS);
		return;
	default:
		req_done(req, NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE);
		return;
	}
}

void nvmf_cmd_exec(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	const struct nvme_sqe *sqe = req_sqe(req);

	if (sqe->opc == NVME_OPC_FABRICS) {
		fabrics_exec(req);
		return;
	}
	if (!conn->connected || !conn->ctrlr) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
		return;
	}
	if (conn->qid == 0) {
		admin_exec(req);
		return;
	}
	if (!(conn->ctrlr->cc & NVME_CC_EN) || (conn->ctrlr->csts & NVME_CSTS_SHST_MASK)) {
		req_done(req, NVME_SCT_GENERIC, NVME_SC_COMMAND_SEQUENCE_ERROR);
		return;
	}
	nvmf_io_exec(req);
}
