/*
 * nvme_ctrlr.c: NVMe/TCP host controller: bring-up (admin Connect, CC.EN ->
 * CSTS.RDY, Identify, Number of Queues, I/O queue Connects), admin commands,
 * keep-alive, the blocking I/O API (read/write/write zeroes/flush/deallocate,
 * split into commands the controller accepts and pipelined on the first I/O
 * queue) and shutdown (CC.SHN -> CSTS.SHST) on destroy.
 */
#include "nvme/nvme_internal.h"

#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NVME_NS_CACHE_MAX 16
#define NVME_RANGE_WINDOW 32 /* commands in flight per queue */
#define NVME_RANGE_MAX_QUEUES 64
#define NVME_DEFAULT_MAX_XFER (1024u * 1024u)

struct nvme_ctrlr {
	char traddr[256];
	char trsvcid[32];
	char subnqn[NVME_NQN_FIELD_LEN];
	char hostnqn[NVME_NQN_FIELD_LEN];
	uint8_t hostid[16];
	uint32_t timeout_ms;
	uint32_t kato_ms;
	uint32_t io_queue_size;
	bool hdgst;
	bool ddgst;

	struct nvme_qpair *admin;
	struct nvme_qpair **io;
	uint32_t nio;
	uint32_t io_granted; /* I/O queues granted by Set Features (0 = not asked) */

	uint16_t cntlid;
	uint64_t cap;
	uint32_t vs;
	struct nvme_id_ctrlr *cdata;
	uint8_t wzsl;
	uint32_t max_xfer;
	uint32_t icd_max;
	uint16_t last_status;
	uint64_t last_ka_ms;
	bool ka_inflight;

	struct nvme_ns_info ns[NVME_NS_CACHE_MAX];
	uint32_t nns;
};

static void ctrlr_sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --------------------------------------------------------- admin commands */

static int maybe_keep_alive(struct nvme_ctrlr *ctrlr);

static int admin_cmd_raw(struct nvme_ctrlr *ctrlr, const struct nvme_sqe *sqe, void *buf,
			 uint32_t len, uint32_t timeout_ms, struct nvme_cqe *cqe_out)
{
	struct nvme_sync sync = { 0 };
	int rc;

	if (!ctrlr->admin || ctrlr->admin->dead)
		return -ECONNRESET;
	if (timeout_ms == 0)
		timeout_ms = ctrlr->timeout_ms;
	rc = nvme_qpair_submit(ctrlr->admin, sqe, buf, len, nvme_sync_cb, &sync);
	if (rc == -EAGAIN) {
		/* an async keep-alive may hold the only slot: drain it */
		nvme_qpair_poll(ctrlr->admin, (int)timeout_ms);
		rc = nvme_qpair_submit(ctrlr->admin, sqe, buf, len, nvme_sync_cb, &sync);
	}
	if (rc < 0)
		return rc;
	rc = nvme_qpair_wait(ctrlr->admin, &sync, timeout_ms);
	if (rc < 0)
		return rc;
	if (cqe_out)
		*cqe_out = sync.cqe;
	if (sync.status != 0) {
		ctrlr->last_status = sync.status;
		LOG_DEBUG(NVME_MOD, "admin command failed opc=0x%x status=0x%x (%s)", sqe->opc,
			  sync.status, nvme_status_str(sync.status));
		return -EIO;
	}
	return 0;
}

static int admin_cmd(struct nvme_ctrlr *ctrlr, const struct nvme_sqe *sqe, void *buf, uint32_t len,
		     uint32_t timeout_ms, struct nvme_cqe *cqe_out)
{
	int rc = maybe_keep_alive(ctrlr);

	if (rc < 0)
		return rc;
	return admin_cmd_raw(ctrlr, sqe, buf, len, timeout_ms, cqe_out);
}

int nvme_ctrlr_prop_get(struct nvme_ctrlr *ctrlr, uint32_t ofst, bool size8, uint64_t *value,
			uint32_t timeout_ms)
{
	struct nvme_fabrics_prop_get_cmd cmd;
	struct nvme_cqe cqe;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_PROPERTY_GET;
	cmd.attrib = size8 ? NVME_PROP_SIZE_8 : NVME_PROP_SIZE_4;
	cmd.ofst = ofst;
	rc = admin_cmd_raw(ctrlr, (const struct nvme_sqe *)&cmd, NULL, 0, timeout_ms, &cqe);
	if (rc < 0)
		return rc;
	*value = size8 ? ((uint64_t)cqe.dw1 << 32) | cqe.dw0 : cqe.dw0;
	return 0;
}

int nvme_ctrlr_prop_set(struct nvme_ctrlr *ctrlr, uint32_t ofst, bool size8, uint64_t value,
			uint32_t timeout_ms)
{
	struct nvme_fabrics_prop_set_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_PROPERTY_SET;
	cmd.attrib = size8 ? NVME_PROP_SIZE_8 : NVME_PROP_SIZE_4;
	cmd.ofst = ofst;
	cmd.value = size8 ? value : (uint32_t)value;
	return admin_cmd_raw(ctrlr, (const struct nvme_sqe *)&cmd, NULL, 0, timeout_ms, NULL);
}

int nvme_ctrlr_identify(struct nvme_ctrlr *ctrlr, uint8_t cns, uint32_t nsid, void *buf,
			uint32_t timeout_ms)
{
	struct nvme_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_IDENTIFY;
	sqe.nsid = nsid;
	sqe.cdw10 = cns;
	return admin_cmd(ctrlr, &sqe, buf, NVME_IDENTIFY_DATA_LEN, timeout_ms, NULL);
}

int nvme_ctrlr_get_log_page(struct nvme_ctrlr *ctrlr, uint8_t lid, uint32_t nsid, uint64_t offset,
			    void *buf, uint32_t len, uint32_t timeout_ms)
{
	struct nvme_sqe sqe;
	uint32_t numd;

	if (len == 0 || len % 4 != 0 || offset % 4 != 0)
		return -EINVAL;
	numd = len / 4 - 1;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_GET_LOG_PAGE;
	sqe.nsid = nsid;
	sqe.cdw10 = lid | ((numd & 0xFFFFu) << 16);
	sqe.cdw11 = numd >> 16;
	sqe.cdw12 = (uint32_t)offset;
	sqe.cdw13 = (uint32_t)(offset >> 32);
	return admin_cmd(ctrlr, &sqe, buf, len, timeout_ms, NULL);
}

static int feature_cmd(struct nvme_ctrlr *ctrlr, uint8_t opc, uint8_t fid, uint32_t cdw11,
		       uint32_t *dw0, uint32_t timeout_ms)
{
	struct nvme_sqe sqe;
	struct nvme_cqe cqe;
	int rc;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = opc;
	sqe.cdw10 = fid;
	sqe.cdw11 = cdw11;
	rc = admin_cmd(ctrlr, &sqe, NULL, 0, timeout_ms, &cqe);
	if (rc == 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

int nvme_ctrlr_get_feature(struct nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11, uint32_t *dw0,
			   uint32_t timeout_ms)
{
	return feature_cmd(ctrlr, NVME_OPC_GET_FEATURES, fid, cdw11, dw0, timeout_ms);
}

int nvme_ctrlr_set_feature(struct nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11, uint32_t *dw0,
			   uint32_t timeout_ms)
{
	return feature_cmd(ctrlr, NVME_OPC_SET_FEATURES, fid, cdw11, dw0, timeout_ms);
}

int nvme_ctrlr_keep_alive(struct nvme_ctrlr *ctrlr, uint32_t timeout_ms)
{
	struct nvme_sqe sqe;
	int rc;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_KEEP_ALIVE;
	rc = admin_cmd_raw(ctrlr, &sqe, NULL, 0, timeout_ms, NULL);
	if (rc == 0)
		ctrlr->last_ka_ms = clock_mono_ms();
	return rc;
}

static int maybe_keep_alive(struct nvme_ctrlr *ctrlr)
{
	if (ctrlr->kato_ms == 0 || ctrlr->ka_inflight)
		return 0;
	if (clock_mono_ms() - ctrlr->last_ka_ms < ctrlr->kato_ms / 2)
		return 0;
	return nvme_ctrlr_keep_alive(ctrlr, 0);
}

static void ka_async_cb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	struct nvme_ctrlr *ctrlr = arg;

	ctrlr->ka_inflight = false;
	if (status == 0)
		ctrlr->last_ka_ms = clock_mono_ms();
	else if (status != NVME_QPAIR_STATUS_ABORTED)
		LOG_WARN(NVME_MOD, "keep alive failed status=0x%x (%s)", status, nvme_status_str(status));
}

int nvme_ctrlr_poll_admin(struct nvme_ctrlr *ctrlr)
{
	int rc;

	if (!ctrlr->admin || ctrlr->admin->dead)
		return -ECONNRESET;
	if (ctrlr->kato_ms > 0 && !ctrlr->ka_inflight &&
	    clock_mono_ms() - ctrlr->last_ka_ms >= ctrlr->kato_ms / 2) {
		struct nvme_sqe sqe;

		memset(&sqe, 0, sizeof(sqe));
		sqe.opc = NVME_OPC_KEEP_ALIVE;
		if (nvme_qpair_submit(ctrlr->admin, &sqe, NULL, 0, ka_async_cb, ctrlr) == 0)
			ctrlr->ka_inflight = true;
	}
	rc = nvme_qpair_poll(ctrlr->admin, 0);
	return rc < 0 ? rc : 0;
}

/* --------------------------------------------------------- namespaces */

static struct nvme_ns_info *ns_cached(struct nvme_ctrlr *ctrlr, uint32_t nsid)
{
	for (uint32_t i = 0; i < ctrlr->nns; i++)
		if (ctrlr->ns[i].nsid == nsid)
			return &ctrlr->ns[i];
	return NULL;
}

int nvme_ns_info_get(struct nvme_ctrlr *ctrlr, uint32_t nsid, struct nvme_ns_info *out,
		     uint32_t timeout_ms)
{
	struct nvme_id_ns *ns;
	struct nvme_ns_info info;
	uint8_t *desc;
	uint32_t lbaf;
	int rc;

	ns = mem_zalloc(sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	rc = nvme_ctrlr_identify(ctrlr, NVME_CNS_NS, nsid, ns, timeout_ms);
	if (rc == -EIO && NVME_STATUS_SCT(ctrlr->last_status) == NVME_SCT_GENERIC &&
	    NVME_STATUS_SC(ctrlr->last_status) == NVME_SC_INVALID_NAMESPACE_OR_FORMAT)
		rc = -ENOENT;
	if (rc < 0)
		goto out;
	if (ns->ncap == 0) {
		rc = -ENOENT;
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.nsid = nsid;
	lbaf = ns->lbaf[NVME_NS_FLBAS_INDEX(ns->flbas)];
	if (NVME_LBAF_LBADS(lbaf) < 9 || NVME_LBAF_LBADS(lbaf) > 16) {
		LOG_WARN(NVME_MOD, "namespace has unsupported block size nsid=%u lbads=%u", nsid,
			 NVME_LBAF_LBADS(lbaf));
		rc = -ENOTSUP;
		goto out;
	}
	info.block_size = 1u << NVME_LBAF_LBADS(lbaf);
	info.num_blocks = ns->nsze;
	memcpy(info.nguid, ns->nguid, 16);
	memcpy(info.eui64, ns->eui64, 8);
	if (ctrlr->vs >= NVME_VS_1_3) {
		desc = (uint8_t *)ns;
		memset(desc, 0, NVME_IDENTIFY_DATA_LEN);
		if (nvme_ctrlr_identify(ctrlr, NVME_CNS_NS_ID_DESC_LIST, nsid, desc, timeout_ms) == 0) {
			uint32_t off = 0;

			while (off + sizeof(struct nvme_ns_id_desc) <= NVME_IDENTIFY_DATA_LEN) {
				struct nvme_ns_id_desc d;

				memcpy(&d, desc + off, sizeof(d));
				if (d.nidt == 0 || off + sizeof(d) + d.nidl > NVME_IDENTIFY_DATA_LEN)
					break;
				if (d.nidt == NVME_NIDT_UUID && d.nidl == NVME_NIDT_UUID_LEN)
					memcpy(info.uuid, desc + off + sizeof(d), 16);
				off += (uint32_t)sizeof(d) + d.nidl;
			}
		} else if (ctrlr->admin->dead) {
			rc = -ECONNRESET;
			goto out;
		}
	}
	*out = info;
	if (!ns_cached(ctrlr, nsid)) {
		if (ctrlr->nns == NVME_NS_CACHE_MAX)
			ctrlr->nns--;
		ctrlr->ns[ctrlr->nns++] = info;
	} else {
		*ns_cached(ctrlr, nsid) = info;
	}
out:
	mem_free(ns);
	return rc;
}

uint32_t nvme_ctrlr_ns_block_size(struct nvme_ctrlr *ctrlr, uint32_t nsid)
{
	struct nvme_ns_info *c = ns_cached(ctrlr, nsid), info;

	if (c)
		return c->block_size;
	if (nvme_ns_info_get(ctrlr, nsid, &info, 0) < 0)
		return 0;
	return info.block_size;
}

/* --------------------------------------------------------- connect */

static int connect_io_qpair(struct nvme_ctrlr *ctrlr, uint16_t qid, struct nvme_qpair **out)
{
	struct nvme_qpair *qp = NULL;
	uint32_t qsize = ctrlr->io_queue_size ? ctrlr->io_queue_size : NVME_DEFAULT_IO_QUEUE_SIZE;
	uint16_t status = 0, cntlid = 0;
	int fd, rc;

	if (qsize > NVME_CAP_MQES(ctrlr->cap) + 1)
		qsize = NVME_CAP_MQES(ctrlr->cap) + 1;
	if (ctrlr->cdata->maxcmd && qsize > ctrlr->cdata->maxcmd)
		qsize = ctrlr->cdata->maxcmd;
	if (qsize < 2)
		qsize = 2;
	fd = nvme_tcp_connect_fd(ctrlr->traddr, ctrlr->trsvcid, ctrlr->timeout_ms);
	if (fd < 0)
		return fd;
	rc = nvme_qpair_create(fd, qid, (uint16_t)(qsize - 1), &qp);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	qp->ctrlr = ctrlr;
	rc = nvme_qpair_icreq(qp, ctrlr->hdgst, ctrlr->ddgst, ctrlr->timeout_ms);
	if (rc < 0)
		goto fail;
	rc = nvme_qpair_fabrics_connect(qp, (uint16_t)(qsize - 1), 0, ctrlr->cntlid, ctrlr->hostid,
					ctrlr->subnqn, ctrlr->hostnqn, ctrlr->timeout_ms, &status,
					&cntlid);
	if (rc == -EIO)
		ctrlr->last_status = status;
	if (rc < 0)
		goto fail;
	qp->icd_max = ctrlr->icd_max;
	*out = qp;
	return 0;
fail:
	LOG_WARN(NVME_MOD, "i/o queue connect failed qid=%u err=%s", qid, common_strerror(rc));
	nvme_qpair_destroy(qp);
	return rc;
}

static int set_num_queues(struct nvme_ctrlr *ctrlr, uint32_t want)
{
	uint32_t dw0 = 0, nsqa, ncqa;
	int rc;

	rc = nvme_ctrlr_set_feature(ctrlr, NVME_FEAT_NUMBER_OF_QUEUES,
				    ((want - 1) & 0xFFFFu) | ((want - 1) << 16), &dw0, 0);
	if (rc < 0)
		return rc;
	nsqa = (dw0 & 0xFFFFu) + 1;
	ncqa = (dw0 >> 16) + 1;
	ctrlr->io_granted = COMMON_MIN(nsqa, ncqa);
	return 0;
}

static int connect_io_queues(struct nvme_ctrlr *ctrlr, uint32_t want)
{
	int rc;

	if (want == 0)
		return 0;
	if (ctrlr->io_granted == 0) {
		rc = set_num_queues(ctrlr, want);
		if (rc < 0)
			return rc;
	}
	if (want > ctrlr->io_granted) {
		LOG_WARN(NVME_MOD, "controller granted fewer I/O queues wanted=%u granted=%u", want,
			 ctrlr->io_granted);
		want = ctrlr->io_granted;
	}
	/* a previous on-demand attempt may have failed before any queue connected */
	for (uint32_t i = 0; i < ctrlr->nio; i++)
		nvme_qpair_destroy(ctrlr->io[i]);
	ctrlr->nio = 0;
	mem_free(ctrlr->io);
	ctrlr->io = mem_zalloc(sizeof(*ctrlr->io) * want);
	if (!ctrlr->io)
		return -ENOMEM;
	for (uint32_t i = 0; i < want; i++) {
		rc = connect_io_qpair(ctrlr, (uint16_t)(i + 1), &ctrlr->io[i]);
		if (rc < 0)
			return rc;
		ctrlr->nio++;
	}
	return 0;
}

static int enable_ctrlr(struct nvme_ctrlr *ctrlr)
{
	uint64_t v, deadline;
	int rc;

	rc = nvme_ctrlr_prop_get(ctrlr, NVME_REG_CAP, true, &ctrlr->cap, 0);
	if (rc < 0)
		return rc;
	rc = nvme_ctrlr_prop_get(ctrlr, NVME_REG_VS, false, &v, 0);
	if (rc < 0)
		return rc;
	ctrlr->vs = (uint32_t)v;
	rc = nvme_ctrlr_prop_get(ctrlr, NVME_REG_CC, false, &v, 0);
	if (rc < 0)
		return rc;
	if (v & NVME_CC_EN) {
		/* already enabled (should not happen on a fresh controller): reset first */
		rc = nvme_ctrlr_prop_set(ctrlr, NVME_REG_CC, false, v & ~(uint64_t)NVME_CC_EN, 0);
		if (rc < 0)
			return rc;
	}
	rc = nvme_ctrlr_prop_set(ctrlr, NVME_REG_CC, false, NVME_CC_ENABLE_VALUE, 0);
	if (rc < 0)
		return rc;
	deadline = clock_mono_ms() + ctrlr->timeout_ms;
	for (uint32_t delay = 1;; delay = COMMON_MIN(delay * 2, 50u)) {
		rc = nvme_ctrlr_prop_get(ctrlr, NVME_REG_CSTS, false, &v, 0);
		if (rc < 0)
			return rc;
		if (v & NVME_CSTS_CFS) {
			LOG_WARN(NVME_MOD, "controller fatal status while enabling subnqn=%s", ctrlr->subnqn);
			return -EIO;
		}
		if (v & NVME_CSTS_RDY)
			return 0;
		if (clock_mono_ms() >= deadline)
			return -ETIMEDOUT;
		ctrlr_sleep_ms(delay);
	}
}

static int identify_ctrlr(struct nvme_ctrlr *ctrlr)
{
	struct nvme_id_ctrlr_nvm *nvm;
	uint32_t mps = 1u << (12 + NVME_CAP_MPSMIN(ctrlr->cap));
	int rc;

	ctrlr->cdata = mem_zalloc(sizeof(*ctrlr->cdata));
	if (!ctrlr->cdata)
		return -ENOMEM;
	rc = nvme_ctrlr_identify(ctrlr, NVME_CNS_CTRLR, 0, ctrlr->cdata, 0);
	if (rc < 0)
		return rc;
	if (ctrlr->cdata->cntlid != ctrlr->cntlid)
		LOG_WARN(NVME_MOD, "identify cntlid differs from connect connect=%u identify=%u",
			 ctrlr->cntlid, ctrlr->cdata->cntlid);
	ctrlr->max_xfer = NVME_DEFAULT_MAX_XFER;
	if (ctrlr->cdata->mdts && ctrlr->cdata->mdts < 20 &&
	    ((uint64_t)mps << ctrlr->cdata->mdts) < ctrlr->max_xfer)
		ctrlr->max_xfer = mps << ctrlr->cdata->mdts;
	ctrlr->icd_max = ctrlr->cdata->ioccsz >= 4 ? ctrlr->cdata->ioccsz * 16 - 64 : 0;
	/* NVM command set limits (WZSL); optional, failures tolerated */
	nvm = mem_zalloc(sizeof(*nvm));
	if (!nvm)
		return -ENOMEM;
	if (ctrlr->vs >= NVME_VS_1_4 || (ctrlr->cap & NVME_CAP_CSS_IOCS)) {
		struct nvme_sqe sqe;

		memset(&sqe, 0, sizeof(sqe));
		sqe.opc = NVME_OPC_IDENTIFY;
		sqe.cdw10 = NVME_CNS_CSI_CTRLR;
		sqe.cdw11 = (uint32_t)NVME_CSI_NVM << 24;
		rc = admin_cmd(ctrlr, &sqe, nvm, sizeof(*nvm), 0, NULL);
		if (rc == 0)
			ctrlr->wzsl = nvm->wzsl;
		else if (rc != -EIO)
			goto out;
	}
	rc = 0;
out:
	mem_free(nvm);
	return rc;
}

static int fill_identity(struct nvme_ctrlr *ctrlr, const struct nvme_connect_opts *opts)
{
	char uuid[COMMON_UUID_STR_LEN];

	if (opts->hostid) {
		memcpy(ctrlr->hostid, opts->hostid, 16);
	} else {
		if (getrandom(ctrlr->hostid, 16, 0) != 16)
			return -EIO;
		ctrlr->hostid[6] = (uint8_t)((ctrlr->hostid[6] & 0x0F) | 0x40);
		ctrlr->hostid[8] = (uint8_t)((ctrlr->hostid[8] & 0x3F) | 0x80);
	}
	if (opts->hostnqn) {
		if (strlen(opts->hostnqn) > NVME_NQN_MAX_LEN)
			return -EINVAL;
		snprintf(ctrlr->hostnqn, sizeof(ctrlr->hostnqn), "%s", opts->hostnqn);
	} else {
		common_uuid_unparse(ctrlr->hostid, uuid);
		snprintf(ctrlr->hostnqn, sizeof(ctrlr->hostnqn), "nqn.2014-08.org.nvmexpress:uuid:%s",
			 uuid);
	}
	return 0;
}

int nvme_ctrlr_connect(const struct nvme_connect_opts *opts, struct nvme_ctrlr **out)
{
	struct nvme_ctrlr *ctrlr;
	uint16_t status = 0;
	int fd, rc;

	*out = NULL;
	if (!opts || !opts->traddr || !opts->subnqn || strlen(opts->subnqn) > NVME_NQN_MAX_LEN ||
	    strlen(opts->traddr) >= sizeof(ctrlr->traddr) ||
	    (opts->trsvcid && strlen(opts->trsvcid) >= sizeof(ctrlr->trsvcid)) ||
	    opts->io_queues > 0xFFFE || opts->io_queue_size > 65536)
		return -EINVAL;
	ctrlr = mem_zalloc(sizeof(*ctrlr));
	if (!ctrlr)
		return -ENOMEM;
	snprintf(ctrlr->traddr, sizeof(ctrlr->traddr), "%s", opts->traddr);
	snprintf(ctrlr->trsvcid, sizeof(ctrlr->trsvcid), "%s", opts->trsvcid ? opts->trsvcid : "4420");
	snprintf(ctrlr->subnqn, sizeof(ctrlr->subnqn), "%s", opts->subnqn);
	ctrlr->timeout_ms = opts->timeout_ms ? opts->timeout_ms : NVME_DEFAULT_TIMEOUT_MS;
	ctrlr->kato_ms = opts->kato_ms;
	ctrlr->io_queue_size = opts->io_queue_size;
	ctrlr->hdgst = opts->header_digest;
	ctrlr->ddgst = opts->data_digest;
	rc = fill_identity(ctrlr, opts);
	if (rc < 0)
		goto fail;

	fd = nvme_tcp_connect_fd(ctrlr->traddr, ctrlr->trsvcid, ctrlr->timeout_ms);
	if (fd < 0) {
		rc = fd;
		LOG_WARN(NVME_MOD, "tcp connect failed traddr=%s trsvcid=%s err=%s", ctrlr->traddr,
			 ctrlr->trsvcid, common_strerror(rc));
		goto fail;
	}
	rc = nvme_qpair_create(fd, 0, NVME_ADMIN_QUEUE_SIZE - 1, &ctrlr->admin);
	if (rc < 0) {
		close(fd);
		goto fail;
	}
	ctrlr->admin->ctrlr = ctrlr;
	rc = nvme_qpair_icreq(ctrlr->admin, ctrlr->hdgst, ctrlr->ddgst, ctrlr->timeout_ms);
	if (rc < 0)
		goto fail;
	rc = nvme_qpair_fabrics_connect(ctrlr->admin, NVME_ADMIN_QUEUE_SIZE - 1, ctrlr->kato_ms,
					NVME_CNTLID_DYNAMIC, ctrlr->hostid, ctrlr->subnqn,
					ctrlr->hostnqn, ctrlr->timeout_ms, &status, &ctrlr->cntlid);
	if (rc == -EIO)
		ctrlr->last_status = status;
	if (rc < 0)
		goto fail;
	ctrlr->last_ka_ms = clock_mono_ms();
	rc = enable_ctrlr(ctrlr);
	if (rc < 0)
		goto fail;
	rc = identify_ctrlr(ctrlr);
	if (rc < 0)
		goto fail;
	rc = connect_io_queues(ctrlr, opts->io_queues);
	if (rc < 0)
		goto fail;
	LOG_DEBUG(NVME_MOD, "connected traddr=%s trsvcid=%s subnqn=%s cntlid=%u io_queues=%u",
		  ctrlr->traddr, ctrlr->trsvcid, ctrlr->subnqn, ctrlr->cntlid, ctrlr->nio);
	*out = ctrlr;
	return 0;
fail:
	LOG_WARN(NVME_MOD, "connect failed traddr=%s trsvcid=%s subnqn=%s err=%s status=0x%x",
		 ctrlr->traddr, ctrlr->trsvcid, ctrlr->subnqn, common_strerror(rc), ctrlr->last_status);
	if (opts->status_out)
		*opts->status_out = ctrlr->last_status;
	if (ctrlr->admin)
		nvme_qpair_fail(ctrlr->admin, -ECONNABORTED); /* no shutdown handshake */
	nvme_ctrlr_destroy(ctrlr);
	return rc;
}

void nvme_ctrlr_destroy(struct nvme_ctrlr *ctrlr)
{
	if (!ctrlr)
		return;
	if (ctrlr->admin && !ctrlr->admin->dead) {
		uint32_t t = COMMON_MIN(ctrlr->timeout_ms, 5000u);
		uint64_t deadline = clock_mono_ms() + t, v = 0;

		if (nvme_ctrlr_prop_set(ctrlr, NVME_REG_CC, false, NVME_CC_SHUTDOWN_VALUE, t) == 0) {
			for (uint32_t delay = 1;; delay = COMMON_MIN(delay * 2, 50u)) {
				if (nvme_ctrlr_prop_get(ctrlr, NVME_REG_CSTS, false, &v, t) < 0)
					break;
				if ((v & NVME_CSTS_SHST_MASK) == NVME_CSTS_SHST_COMPLETE)
					break;
				if (clock_mono_ms() >= deadline) {
					LOG_WARN(NVME_MOD, "shutdown did not complete subnqn=%s",
						 ctrlr->subnqn);
					break;
				}
				ctrlr_sleep_ms(delay);
			}
		}
	}
	for (uint32_t i = 0; i < ctrlr->nio; i++)
		nvme_qpair_destroy(ctrlr->io[i]);
	mem_free(ctrlr->io);
	nvme_qpair_destroy(ctrlr->admin);
	mem_free(ctrlr->cdata);
	mem_free(ctrlr);
}

/* --------------------------------------------------------- accessors */

const struct nvme_id_ctrlr *nvme_ctrlr_data(const struct nvme_ctrlr *ctrlr)
{
	return ctrlr->cdata;
}

uint16_t nvme_ctrlr_cntlid(const struct nvme_ctrlr *ctrlr)
{
	return ctrlr->cntlid;
}

uint32_t nvme_ctrlr_max_xfer(const struct nvme_ctrlr *ctrlr)
{
	return ctrlr->max_xfer;
}

uint16_t nvme_ctrlr_last_status(const struct nvme_ctrlr *ctrlr)
{
	return ctrlr->last_status;
}

uint32_t nvme_ctrlr_num_qpairs(const struct nvme_ctrlr *ctrlr)
{
	return ctrlr->nio;
}

struct nvme_qpair *nvme_ctrlr_qpair(struct nvme_ctrlr *ctrlr, uint32_t i)
{
	return i < ctrlr->nio ? ctrlr->io[i] : NULL;
}

/* --------------------------------------------------------- blocking I/O */

static int io_qpair(struct nvme_ctrlr *ctrlr, struct nvme_qpair **out)
{
	int rc;

	if (ctrlr->nio == 0) {
		rc = connect_io_queues(ctrlr, 1);
		if (rc < 0)
			return rc;
		if (ctrlr->nio == 0)
			return -ENODEV;
	}
	if (ctrlr->io[0]->dead)
		return ctrlr->io[0]->dead_err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
	*out = ctrlr->io[0];
	return 0;
}

struct range_ctx {
	uint32_t inflight;
	uint16_t first_status;
	uint64_t completions;
};

static void range_cb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	struct range_ctx *r = arg;

	r->inflight--;
	r->completions++;
	if (status != 0 && r->first_status == 0)
		r->first_status = status;
}

/* Polls every I/O queue once; if nothing completed, waits up to wait_ms for
 * any socket to become readable. Returns completions or -ECONNRESET. */
static int poll_io_queues(struct nvme_ctrlr *ctrlr, int wait_ms)
{
	struct pollfd pfds[NVME_RANGE_MAX_QUEUES];
	uint32_t nq = COMMON_MIN(ctrlr->nio, (uint32_t)NVME_RANGE_MAX_QUEUES), np = 0;
	int total = 0;

	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < nq; i++) {
			int rc = nvme_qpair_poll(ctrlr->io[i], 0);

			if (rc < 0)
				return rc;
			total += rc;
		}
		if (total > 0 || wait_ms <= 0 || round == 1)
			return total;
		np = 0;
		for (uint32_t i = 0; i < nq; i++) {
			struct nvme_qpair *qp = ctrlr->io[i];

			if (qp->outstanding == 0 && qp->iov_head == qp->iov_tail)
				continue;
			pfds[np].fd = qp->fd;
			pfds[np].events = POLLIN | (qp->iov_head < qp->iov_tail ? POLLOUT : 0);
			pfds[np].revents = 0;
			np++;
		}
		if (np == 0)
			return 0;
		poll(pfds, np, wait_ms);
	}
	return total;
}

/* Runs opc over [offset, offset+len) in commands of at most max_blocks,
 * round-robin over the connected I/O queues with up to NVME_RANGE_WINDOW
 * commands in flight per queue. timeout_ms bounds the time without progress. */
static int run_range(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint8_t opc, uint64_t offset,
		     uint8_t *buf, uint64_t len, uint32_t timeout_ms)
{
	struct nvme_qpair *qp;
	struct nvme_ns_info *ns;
	struct range_ctx r = { 0 };
	uint64_t lba, end_lba, last_progress, seen = 0;
	uint32_t bs, max_blocks, window, nq, next_q = 0;
	bool dead = false, timed_out = false;
	int rc, sub_rc = 0;

	if (timeout_ms == 0)
		timeout_ms = ctrlr->timeout_ms;
	rc = maybe_keep_alive(ctrlr);
	if (rc < 0)
		return rc;
	bs = nvme_ctrlr_ns_block_size(ctrlr, nsid);
	if (bs == 0)
		return ctrlr->admin->dead ? -ECONNRESET : -ENOENT;
	ns = ns_cached(ctrlr, nsid);
	if (offset % bs || len % bs)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (ns && (offset / bs + len / bs > ns->num_blocks || offset / bs + len / bs < offset / bs))
		return -ERANGE;
	rc = io_qpair(ctrlr, &qp);
	if (rc < 0)
		return rc;
	nq = COMMON_MIN(ctrlr->nio, (uint32_t)NVME_RANGE_MAX_QUEUES);
	for (uint32_t i = 0; i < nq; i++)
		if (ctrlr->io[i]->dead)
			return ctrlr->io[i]->dead_err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
	if (opc == NVME_OPC_WRITE_ZEROES) {
		max_blocks = NVME_MAX_NLB;
		if (ctrlr->wzsl) {
			uint64_t lim = ((uint64_t)1 << (12 + NVME_CAP_MPSMIN(ctrlr->cap))) << ctrlr->wzsl;

			max_blocks = (uint32_t)COMMON_MIN((uint64_t)max_blocks, COMMON_MAX(lim / bs, 1));
		}
	} else {
		max_blocks = COMMON_MIN(NVME_MAX_NLB, COMMON_MAX(ctrlr->max_xfer / bs, 1u));
	}
	window = NVME_RANGE_WINDOW * nq;
	lba = offset / bs;
	end_lba = lba + len / bs;
	last_progress = clock_mono_ms();
	while (lba < end_lba || r.inflight > 0) {
		/* submit round-robin while there is room */
		for (uint32_t tries = 0; lba < end_lba && r.inflight < window && r.first_status == 0 &&
		     sub_rc == 0 && !dead && tries < nq;) {
			uint32_t n = (uint32_t)COMMON_MIN(end_lba - lba, (uint64_t)max_blocks);
			uint8_t *p = buf ? buf + (lba - offset / bs) * bs : NULL;

			qp = ctrlr->io[next_q];
			next_q = (next_q + 1) % nq;
			if (qp->dead) {
				dead = true;
				break;
			}
			if (qp->nfree == 0 || qp->outstanding >= NVME_RANGE_WINDOW) {
				tries++;
				continue;
			}
			tries = 0;
			if (opc == NVME_OPC_READ)
				sub_rc = nvme_qpair_read(qp, nsid, lba, n, p, range_cb, &r);
			else if (opc == NVME_OPC_WRITE)
				sub_rc = nvme_qpair_write(qp, nsid, lba, n, p, range_cb, &r);
			else
				sub_rc = nvme_qpair_write_zeroes(qp, nsid, lba, n, range_cb, &r);
			if (sub_rc < 0)
				break;
			r.inflight++;
			lba += n;
		}
		if (r.inflight == 0 && (r.first_status != 0 || sub_rc < 0 || dead))
			break;
		{
			uint64_t now = clock_mono_ms();
			int prc;

			if (r.completions != seen) {
				seen = r.completions;
				last_progress = now;
			}
			if (now - last_progress >= timeout_ms) {
				LOG_WARN(NVME_MOD, "i/o timed out opc=0x%x nsid=%u inflight=%u", opc, nsid,
					 r.inflight);
				for (uint32_t i = 0; i < nq; i++)
					nvme_qpair_fail(ctrlr->io[i], -ETIMEDOUT);
				timed_out = true;
				break;
			}
			prc = poll_io_queues(ctrlr, (int)(last_progress + timeout_ms - now));
			if (prc < 0) {
				/* one connection is gone: stop the others too (their
				 * commands complete as aborted) */
				dead = true;
				for (uint32_t i = 0; i < nq; i++)
					nvme_qpair_fail(ctrlr->io[i], -ECONNRESET);
			}
		}
	}
	if (timed_out)
		return -ETIMEDOUT;
	if (dead)
		return -ECONNRESET;
	if (r.first_status != 0) {
		if (r.first_status == NVME_QPAIR_STATUS_ABORTED)
			return -ECONNRESET;
		ctrlr->last_status = r.first_status;
		LOG_DEBUG(NVME_MOD, "i/o failed opc=0x%x nsid=%u status=0x%x (%s)", opc, nsid,
			  r.first_status, nvme_status_str(r.first_status));
		return -EIO;
	}
	return sub_rc;
}

int nvme_ns_read(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, void *buf, uint64_t len,
		 uint32_t timeout_ms)
{
	return run_range(ctrlr, nsid, NVME_OPC_READ, offset, buf, len, timeout_ms);
}

int nvme_ns_write(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, const void *buf,
		  uint64_t len, uint32_t timeout_ms)
{
	return run_range(ctrlr, nsid, NVME_OPC_WRITE, offset, (uint8_t *)buf, len, timeout_ms);
}

/* Zeroing for controllers without Write Zeroes: writes a zero buffer. */
static int write_zero_buffers(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset,
			      uint64_t len, uint32_t timeout_ms)
{
	uint32_t chunk = COMMON_MAX(ctrlr->max_xfer, 1024u * 1024u);
	uint8_t *zero = mem_zalloc(chunk);
	int rc = 0;

	if (!zero)
		return -ENOMEM;
	for (uint64_t done = 0; done < len && rc == 0;) {
		uint64_t n = COMMON_MIN((uint64_t)chunk, len - done);

		rc = run_range(ctrlr, nsid, NVME_OPC_WRITE, offset + done, zero, n, timeout_ms);
		done += n;
	}
	mem_free(zero);
	return rc;
}

int nvme_ns_write_zeroes(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, uint64_t len,
			 uint32_t timeout_ms)
{
	int rc;

	if (!(ctrlr->cdata->oncs & NVME_CTRLR_ONCS_WRITE_ZEROES))
		return write_zero_buffers(ctrlr, nsid, offset, len, timeout_ms);
	rc = run_range(ctrlr, nsid, NVME_OPC_WRITE_ZEROES, offset, NULL, len, timeout_ms);
	if (rc == -EIO && NVME_STATUS_SCT(ctrlr->last_status) == NVME_SCT_GENERIC &&
	    NVME_STATUS_SC(ctrlr->last_status) == NVME_SC_INVALID_OPCODE) {
		LOG_INFO(NVME_MOD, "write zeroes not supported, writing zero buffers nsid=%u", nsid);
		ctrlr->cdata->oncs &= (uint16_t)~NVME_CTRLR_ONCS_WRITE_ZEROES;
		rc = write_zero_buffers(ctrlr, nsid, offset, len, timeout_ms);
	}
	return rc;
}

static int io_cmd_sync(struct nvme_ctrlr *ctrlr, const struct nvme_sqe *sqe, void *data,
		       uint32_t len, uint32_t timeout_ms)
{
	struct nvme_qpair *qp;
	struct nvme_sync sync = { 0 };
	int rc;

	rc = maybe_keep_alive(ctrlr);
	if (rc < 0)
		return rc;
	rc = io_qpair(ctrlr, &qp);
	if (rc < 0)
		return rc;
	rc = nvme_qpair_submit(qp, sqe, data, len, nvme_sync_cb, &sync);
	if (rc < 0)
		return rc;
	rc = nvme_qpair_wait(qp, &sync, timeout_ms ? timeout_ms : ctrlr->timeout_ms);
	if (rc < 0)
		return rc;
	if (sync.status != 0) {
		ctrlr->last_status = sync.status;
		return -EIO;
	}
	return 0;
}

int nvme_ns_flush(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint32_t timeout_ms)
{
	struct nvme_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_FLUSH;
	sqe.nsid = nsid;
	return io_cmd_sync(ctrlr, &sqe, NULL, 0, timeout_ms);
}

int nvme_ns_deallocate(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, uint64_t len,
		       uint32_t timeout_ms)
{
	struct nvme_dsm_range *ranges;
	struct nvme_sqe sqe;
	uint32_t bs;
	uint64_t lba, end;
	int rc = 0;

	bs = nvme_ctrlr_ns_block_size(ctrlr, nsid);
	if (bs == 0)
		return ctrlr->admin->dead ? -ECONNRESET : -ENOENT;
	if (offset % bs || len % bs)
		return -EINVAL;
	ranges = mem_zalloc(sizeof(*ranges) * NVME_DSM_MAX_RANGES);
	if (!ranges)
		return -ENOMEM;
	lba = offset / bs;
	end = lba + len / bs;
	while (lba < end && rc == 0) {
		uint32_t nr = 0;

		while (lba < end && nr < NVME_DSM_MAX_RANGES) {
			uint32_t n = (uint32_t)COMMON_MIN(end - lba, (uint64_t)0x80000000u);

			ranges[nr].attributes = 0;
			ranges[nr].nlb = n;
			ranges[nr].slba = lba;
			nr++;
			lba += n;
		}
		memset(&sqe, 0, sizeof(sqe));
		sqe.opc = NVME_OPC_DATASET_MANAGEMENT;
		sqe.nsid = nsid;
		sqe.cdw10 = nr - 1;
		sqe.cdw11 = NVME_DSM_ATTR_DEALLOCATE;
		rc = io_cmd_sync(ctrlr, &sqe, ranges, nr * (uint32_t)sizeof(*ranges), timeout_ms);
	}
	mem_free(ranges);
	return rc;
}
