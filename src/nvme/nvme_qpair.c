/*
 * nvme_qpair.c: one NVMe/TCP queue pair of the host library = one TCP
 * connection. Builds CapsuleCmd PDUs (in-capsule data when it fits), answers
 * R2T with H2CData PDUs, receives C2HData into the caller's buffer and
 * completes commands on CapsuleResp (or C2HData with SUCCESS). Nothing here
 * allocates per command: slots, headers and the send queue are preallocated.
 * Sending is batched (writev of everything queued), receiving reads as much as
 * the socket has and parses PDUs split or coalesced arbitrarily.
 */
#include "nvme/nvme_internal.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t zero_pad[128];

/* ------------------------------------------------------------ setup */

int nvme_qpair_create(int fd, uint16_t qid, uint16_t num_slots, struct nvme_qpair **out)
{
	struct nvme_qpair *qp;

	if (num_slots == 0 || num_slots >= NVME_SLOT_NONE)
		return -EINVAL;
	qp = mem_zalloc(sizeof(*qp));
	if (!qp)
		return -ENOMEM;
	qp->fd = -1;
	qp->qid = qid;
	qp->num_slots = num_slots;
	qp->iov_cap = (uint32_t)num_slots * 8 + 16;
	qp->slots = mem_zalloc(sizeof(*qp->slots) * num_slots);
	qp->free_stack = mem_zalloc(sizeof(*qp->free_stack) * num_slots);
	qp->iov = mem_zalloc(sizeof(*qp->iov) * qp->iov_cap);
	qp->meta = mem_zalloc(sizeof(*qp->meta) * qp->iov_cap);
	qp->rbuf = mem_alloc(NVME_RBUF_SIZE);
	if (!qp->slots || !qp->free_stack || !qp->iov || !qp->meta || !qp->rbuf) {
		nvme_qpair_destroy(qp);
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < num_slots; i++)
		qp->free_stack[i] = (uint16_t)(num_slots - 1 - i);
	qp->nfree = num_slots;
	qp->maxh2cdata = NVME_TCP_MIN_MAXH2CDATA;
	qp->icd_max = 0;
	qp->fd = fd;
	*out = qp;
	return 0;
}

void nvme_qpair_destroy(struct nvme_qpair *qp)
{
	if (!qp)
		return;
	if (!qp->dead && qp->slots && qp->free_stack)
		nvme_qpair_fail(qp, -ECONNABORTED);
	if (qp->fd >= 0)
		close(qp->fd);
	mem_free(qp->slots);
	mem_free(qp->free_stack);
	mem_free(qp->iov);
	mem_free(qp->meta);
	mem_free(qp->rbuf);
	mem_free(qp);
}

void nvme_qpair_fail(struct nvme_qpair *qp, int err)
{
	struct nvme_cqe cqe;

	if (qp->dead)
		return;
	qp->dead = true;
	qp->dead_err = err;
	if (qp->fd >= 0)
		shutdown(qp->fd, SHUT_RDWR);
	qp->iov_head = qp->iov_tail = 0;
	for (uint16_t i = 0; i < qp->num_slots; i++) {
		struct nvme_cmd *c = &qp->slots[i];

		if (!c->active)
			continue;
		c->active = false;
		c->send_refs = 0;
		qp->free_stack[qp->nfree++] = i;
		qp->outstanding--;
		memset(&cqe, 0, sizeof(cqe));
		cqe.cid = i;
		cqe.sqid = qp->qid;
		cqe.status = NVME_QPAIR_STATUS_ABORTED;
		if (c->cb)
			c->cb(c->arg, NVME_QPAIR_STATUS_ABORTED, &cqe);
	}
}

int nvme_tcp_connect_fd(const char *traddr, const char *trsvcid, uint32_t timeout_ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(traddr, trsvcid ? trsvcid : "4420", &hints, &res);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	rc = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			rc = 0;
			break;
		}
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto next;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		do {
			rc = poll(&pfd, 1, (int)timeout_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			rc = -ETIMEDOUT;
			goto next;
		}
		if (rc < 0) {
			rc = -errno;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr == 0) {
			rc = 0;
			break;
		}
		rc = -soerr;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return rc < 0 ? rc : fd;
}

/* Blocking helpers for the ICReq exchange only. */
static int write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			uint64_t now = clock_mono_ms();

			if (now >= deadline_ms)
				return -ETIMEDOUT;
			poll(&pfd, 1, (int)(deadline_ms - now));
			continue;
		}
		return -ECONNRESET;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len, uint64_t deadline_ms)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			uint64_t now = clock_mono_ms();

			if (now >= deadline_ms)
				return -ETIMEDOUT;
			poll(&pfd, 1, (int)(deadline_ms - now));
			continue;
		}
		return -ECONNRESET;
	}
	return 0;
}

int nvme_qpair_icreq(struct nvme_qpair *qp, bool hdgst, bool ddgst, uint32_t timeout_ms)
{
	struct nvme_tcp_ic_req req;
	struct nvme_tcp_ic_resp resp;
	uint64_t deadline = clock_mono_ms() + timeout_ms;
	uint8_t want = (uint8_t)((hdgst ? NVME_TCP_DGST_HDR : 0) | (ddgst ? NVME_TCP_DGST_DATA : 0));
	int rc;

	memset(&req, 0, sizeof(req));
	req.ch.pdu_type = NVME_TCP_PDU_IC_REQ;
	req.ch.hlen = NVME_TCP_IC_LEN;
	req.ch.plen = NVME_TCP_IC_LEN;
	req.pfv = NVME_TCP_PFV_1_0;
	req.hpda = 0;
	req.dgst = want;
	req.maxr2t = 0;
	rc = write_full(qp->fd, &req, sizeof(req), deadline);
	if (rc == 0)
		rc = read_full(qp->fd, &resp, sizeof(resp), deadline);
	if (rc < 0) {
		LOG_WARN(NVME_MOD, "icreq failed qid=%u err=%s", qp->qid, common_strerror(rc));
		return rc;
	}
	if (resp.ch.pdu_type != NVME_TCP_PDU_IC_RESP || resp.ch.plen != NVME_TCP_IC_LEN ||
	    resp.ch.hlen != NVME_TCP_IC_LEN || resp.pfv != 0 ||
	    resp.maxh2cdata < NVME_TCP_MIN_MAXH2CDATA || (resp.maxh2cdata % 4) != 0 ||
	    resp.cpda > 31 || (resp.dgst & ~want) != 0) {
		LOG_WARN(NVME_MOD, "bad icresp qid=%u type=%u plen=%u pfv=%u maxh2cdata=%u cpda=%u dgst=%u",
			 qp->qid, resp.ch.pdu_type, resp.ch.plen, resp.pfv, resp.maxh2cdata,
			 resp.cpda, resp.dgst);
		return -ECONNRESET;
	}
	qp->hdgst = (resp.dgst & NVME_TCP_DGST_HDR) != 0;
	qp->ddgst = (resp.dgst & NVME_TCP_DGST_DATA) != 0;
	qp->cpda = resp.cpda;
	qp->maxh2cdata = resp.maxh2cdata;
	return 0;
}

/* ------------------------------------------------------------ sending */

static void sendq_compact(struct nvme_qpair *qp)
{
	uint32_t n = qp->iov_tail - qp->iov_head;

	if (qp->iov_head == 0)
		return;
	memmove(qp->iov, qp->iov + qp->iov_head, n * sizeof(*qp->iov));
	memmove(qp->meta, qp->meta + qp->iov_head, n * sizeof(*qp->meta));
	qp->iov_head = 0;
	qp->iov_tail = n;
}

static void sendq_push(struct nvme_qpair *qp, const void *base, size_t len, uint16_t slot, bool h2c_end)
{
	if (qp->iov_tail == qp->iov_cap)
		sendq_compact(qp);
	/* capacity is num_slots*8+16 and each slot has at most 8 entries queued */
	qp->iov[qp->iov_tail].iov_base = (void *)base;
	qp->iov[qp->iov_tail].iov_len = len;
	qp->meta[qp->iov_tail].slot = slot;
	qp->meta[qp->iov_tail].h2c_end = h2c_end;
	qp->iov_tail++;
	if (slot != NVME_SLOT_NONE)
		qp->slots[slot].send_refs++;
}

static uint32_t pad_len(uint32_t hdr_total, uint8_t cpda)
{
	uint32_t align = ((uint32_t)cpda + 1) * 4;

	if (cpda == 0)
		return 0;
	return (align - hdr_total % align) % align;
}

/* Queues the next H2CData PDU of the current R2T of slot. */
static void queue_h2c(struct nvme_qpair *qp, uint16_t slot)
{
	struct nvme_cmd *c = &qp->slots[slot];
	uint32_t datal = COMMON_MIN(c->h2c_end - c->h2c_next, qp->maxh2cdata);
	uint32_t hdr_total = NVME_TCP_PSH24_HLEN + (qp->hdgst ? 4 : 0);
	uint32_t pad = pad_len(hdr_total, qp->cpda);
	bool last = c->h2c_next + datal == c->h2c_end;
	struct nvme_tcp_data_hdr *h = &c->h2c;

	memset(h, 0, sizeof(*h));
	h->ch.pdu_type = NVME_TCP_PDU_H2C_DATA;
	h->ch.flags = (uint8_t)((qp->hdgst ? NVME_TCP_FLAG_HDGSTF : 0) |
				(qp->ddgst ? NVME_TCP_FLAG_DDGSTF : 0) |
				(last ? NVME_TCP_FLAG_LAST_PDU : 0));
	h->ch.hlen = NVME_TCP_PSH24_HLEN;
	h->ch.pdo = (uint8_t)(hdr_total + pad);
	h->ch.plen = hdr_total + pad + datal + (qp->ddgst ? 4 : 0);
	h->cccid = slot;
	h->ttag = c->ttag;
	h->datao = c->h2c_next;
	h->datal = datal;
	if (qp->hdgst)
		nvme_put_le32(c->h2c_hdgst, nvme_tcp_digest(h, sizeof(*h)));
	sendq_push(qp, h, hdr_total, slot, false);
	if (pad)
		sendq_push(qp, zero_pad, pad, slot, false);
	if (qp->ddgst) {
		sendq_push(qp, c->buf + c->h2c_next, datal, slot, false);
		nvme_put_le32(c->h2c_ddgst, nvme_tcp_digest(c->buf + c->h2c_next, datal));
		sendq_push(qp, c->h2c_ddgst, 4, slot, true);
	} else {
		sendq_push(qp, c->buf + c->h2c_next, datal, slot, true);
	}
	c->h2c_next += datal;
}

/* Bookkeeping when a send-queue entry has been fully written. */
static void sent_entry(struct nvme_qpair *qp, uint32_t idx)
{
	struct nvme_iov_meta m = qp->meta[idx];
	struct nvme_cmd *c;

	if (m.slot == NVME_SLOT_NONE)
		return;
	c = &qp->slots[m.slot];
	c->send_refs--;
	if (m.h2c_end) {
		if (c->h2c_next < c->h2c_end)
			queue_h2c(qp, m.slot);
		else
			c->r2t_active = false;
	}
}

int nvme_qpair_flush(struct nvme_qpair *qp)
{
	if (qp->dead)
		return -ECONNRESET;
	while (qp->iov_head < qp->iov_tail) {
		uint32_t cnt = COMMON_MIN(qp->iov_tail - qp->iov_head, 512u);
		struct msghdr msg;
		ssize_t n;

		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = qp->iov + qp->iov_head;
		msg.msg_iovlen = cnt;
		n = sendmsg(qp->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			LOG_WARN(NVME_MOD, "send failed qid=%u err=%s", qp->qid, common_strerror(errno));
			nvme_qpair_fail(qp, -ECONNRESET);
			return -ECONNRESET;
		}
		while (n > 0) {
			struct iovec *v = &qp->iov[qp->iov_head];

			if ((size_t)n >= v->iov_len) {
				uint32_t idx = qp->iov_head++;

				n -= (ssize_t)v->iov_len;
				sent_entry(qp, idx);
			} else {
				v->iov_base = (uint8_t *)v->iov_base + n;
				v->iov_len -= (size_t)n;
				n = 0;
			}
		}
		if (qp->iov_head == qp->iov_tail)
			qp->iov_head = qp->iov_tail = 0;
	}
	return 0;
}

/* ------------------------------------------------------------ submit */

uint32_t nvme_qpair_free_slots(const struct nvme_qpair *qp)
{
	return qp->dead ? 0 : qp->nfree;
}

uint32_t nvme_qpair_outstanding(const struct nvme_qpair *qp)
{
	return qp->outstanding;
}

int nvme_qpair_fd(const struct nvme_qpair *qp)
{
	return qp->fd;
}

int nvme_qpair_submit(struct nvme_qpair *qp, const struct nvme_sqe *sqe, void *data, uint32_t len,
		      nvme_cmd_cb cb, void *arg)
{
	struct nvme_cmd *c;
	struct nvme_tcp_capsule_cmd *cap;
	uint16_t slot;
	uint8_t xfer;
	bool icd;
	uint32_t hdr_total, pad = 0;

	if (qp->dead)
		return -ECONNRESET;
	if (qp->nfree == 0)
		return -EAGAIN;
	if (len > 0 && !data)
		return -EINVAL;
	if (sqe->opc == NVME_OPC_FABRICS) {
		const struct nvme_fabrics_cmd *f = (const void *)sqe;

		xfer = f->fctype == NVME_FCTYPE_CONNECT ? NVME_XFER_HOST_TO_CTRLR : NVME_XFER_NONE;
		if (f->fctype == NVME_FCTYPE_AUTH_RECV)
			xfer = NVME_XFER_CTRLR_TO_HOST;
		else if (f->fctype == NVME_FCTYPE_AUTH_SEND)
			xfer = NVME_XFER_HOST_TO_CTRLR;
	} else {
		xfer = NVME_OPC_XFER(sqe->opc);
	}
	if (len == 0)
		xfer = NVME_XFER_NONE;
	if (xfer == NVME_XFER_BIDIRECTIONAL)
		return -EINVAL;

	slot = qp->free_stack[--qp->nfree];
	c = &qp->slots[slot];
	c->active = true;
	c->cb = cb;
	c->arg = arg;
	c->buf = data;
	c->len = len;
	c->xfer = xfer;
	c->r2t_active = false;
	c->send_refs = 0;
	c->c2h_done = 0;
	c->h2c_next = c->h2c_end = 0;
	qp->outstanding++;

	icd = xfer == NVME_XFER_HOST_TO_CTRLR &&
	      (len <= qp->icd_max ||
	       ((sqe->opc == NVME_OPC_FABRICS || qp->qid == 0) && len <= NVME_TCP_ADMIN_ICD_MAX));
	hdr_total = NVME_TCP_CAPSULE_CMD_HLEN + (qp->hdgst ? 4 : 0);
	cap = &c->cap;
	memset(&cap->ch, 0, sizeof(cap->ch));
	cap->sqe = *sqe;
	cap->sqe.cid = slot;
	cap->sqe.flags = (uint8_t)((sqe->flags & ~NVME_SQE_FLAGS_PSDT_MASK) | NVME_SQE_FLAGS_PSDT_SGL);
	memset(&cap->sqe.sgl1, 0, sizeof(cap->sqe.sgl1));
	cap->sqe.sgl1.length = len;
	cap->ch.pdu_type = NVME_TCP_PDU_CAPSULE_CMD;
	cap->ch.hlen = NVME_TCP_CAPSULE_CMD_HLEN;
	if (qp->hdgst)
		cap->ch.flags |= NVME_TCP_FLAG_HDGSTF;
	if (icd) {
		pad = pad_len(hdr_total, qp->cpda);
		cap->sqe.sgl1.id = NVME_SGL_ID_ICD;
		cap->ch.pdo = (uint8_t)(hdr_total + pad);
		cap->ch.plen = hdr_total + pad + len + (qp->ddgst ? 4 : 0);
		if (qp->ddgst)
			cap->ch.flags |= NVME_TCP_FLAG_DDGSTF;
	} else {
		cap->sqe.sgl1.id = NVME_SGL_ID_TRANSPORT;
		cap->ch.pdo = 0;
		cap->ch.plen = hdr_total;
	}
	c->icd = icd;
	if (qp->hdgst)
		nvme_put_le32(c->cap_hdgst, nvme_tcp_digest(cap, sizeof(*cap)));
	sendq_push(qp, cap, hdr_total, slot, false);
	if (icd) {
		if (pad)
			sendq_push(qp, zero_pad, pad, slot, false);
		sendq_push(qp, data, len, slot, false);
		if (qp->ddgst) {
			nvme_put_le32(c->cap_ddgst, nvme_tcp_digest(data, len));
			sendq_push(qp, c->cap_ddgst, 4, slot, false);
		}
	}
	return 0;
}

static int submit_rw(struct nvme_qpair *qp, uint8_t opc, uint32_t nsid, uint64_t lba,
		     uint32_t nblocks, void *buf, uint32_t len, nvme_cmd_cb cb, void *arg)
{
	struct nvme_sqe sqe;

	if (nblocks == 0 || nblocks > NVME_MAX_NLB)
		return -EINVAL;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = opc;
	sqe.nsid = nsid;
	sqe.cdw10 = (uint32_t)lba;
	sqe.cdw11 = (uint32_t)(lba >> 32);
	sqe.cdw12 = (nblocks - 1) & NVME_RW_NLB_MASK;
	return nvme_qpair_submit(qp, &sqe, buf, len, cb, arg);
}

int nvme_qpair_read(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
		    void *buf, nvme_cmd_cb cb, void *arg)
{
	uint32_t bs = qp->ctrlr ? nvme_ctrlr_ns_block_size(qp->ctrlr, nsid) : 512;

	if (bs == 0 || (uint64_t)nblocks * bs > UINT32_MAX)
		return -EINVAL;
	return submit_rw(qp, NVME_OPC_READ, nsid, lba, nblocks, buf, nblocks * bs, cb, arg);
}

int nvme_qpair_write(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
		     const void *buf, nvme_cmd_cb cb, void *arg)
{
	uint32_t bs = qp->ctrlr ? nvme_ctrlr_ns_block_size(qp->ctrlr, nsid) : 512;

	if (bs == 0 || (uint64_t)nblocks * bs > UINT32_MAX)
		return -EINVAL;
	return submit_rw(qp, NVME_OPC_WRITE, nsid, lba, nblocks, (void *)buf, nblocks * bs, cb, arg);
}

int nvme_qpair_write_zeroes(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
			    nvme_cmd_cb cb, void *arg)
{
	return submit_rw(qp, NVME_OPC_WRITE_ZEROES, nsid, lba, nblocks, NULL, 0, cb, arg);
}

int nvme_qpair_flush_cmd(struct nvme_qpair *qp, uint32_t nsid, nvme_cmd_cb cb, void *arg)
{
	struct nvme_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_FLUSH;
	sqe.nsid = nsid;
	return nvme_qpair_submit(qp, &sqe, NULL, 0, cb, arg);
}

/* ------------------------------------------------------------ receiving */

static void complete_slot(struct nvme_qpair *qp, uint16_t slot, const struct nvme_cqe *cqe)
{
	struct nvme_cmd *c = &qp->slots[slot];

	c->active = false;
	qp->free_stack[qp->nfree++] = slot;
	qp->outstanding--;
	qp->completions++;
	/* success (SCT 0 / SC 0) is reported as 0 even if M/DNR/CRD bits are set */
	if (c->cb)
		c->cb(c->arg, NVME_STATUS_IS_OK(cqe->status) ? 0 : (uint16_t)(cqe->status & 0xFFFEu), cqe);
}

static int protocol_error(struct nvme_qpair *qp, const char *what)
{
	LOG_WARN(NVME_MOD, "protocol error qid=%u what=\"%s\"", qp->qid, what);
	nvme_qpair_fail(qp, -ECONNRESET);
	return -ECONNRESET;
}

static struct nvme_cmd *active_slot(struct nvme_qpair *qp, uint16_t cid)
{
	if (cid >= qp->num_slots || !qp->slots[cid].active)
		return NULL;
	return &qp->slots[cid];
}

/* Handles a complete PDU header at hdr (hdr_total bytes incl. digest).
 * Returns 1 if a command completed, 0 otherwise, -ECONNRESET on error. */
static int handle_header(struct nvme_qpair *qp, const uint8_t *hdr, uint32_t hdr_total)
{
	struct nvme_tcp_ch ch;
	struct nvme_cmd *c;

	memcpy(&ch, hdr, sizeof(ch));
	switch (ch.pdu_type) {
	case NVME_TCP_PDU_CAPSULE_RESP: {
		struct nvme_tcp_capsule_resp r;

		memcpy(&r, hdr, sizeof(r));
		if (ch.plen != hdr_total)
			return protocol_error(qp, "capsule resp plen");
		c = active_slot(qp, r.cqe.cid);
		if (!c)
			return protocol_error(qp, "capsule resp for unknown cid");
		if (c->send_refs > 0 || c->r2t_active)
			return protocol_error(qp, "capsule resp before data was sent");
		if (c->xfer == NVME_XFER_CTRLR_TO_HOST && NVME_STATUS_IS_OK(r.cqe.status) &&
		    c->c2h_done != c->len)
			return protocol_error(qp, "successful read with short data");
		if (c->xfer == NVME_XFER_HOST_TO_CTRLR && !c->icd && NVME_STATUS_IS_OK(r.cqe.status) &&
		    c->h2c_next != c->len)
			return protocol_error(qp, "successful write without all data sent");
		complete_slot(qp, r.cqe.cid, &r.cqe);
		return 1;
	}
	case NVME_TCP_PDU_C2H_DATA: {
		struct nvme_tcp_data_hdr d;

		memcpy(&d, hdr, sizeof(d));
		c = active_slot(qp, d.cccid);
		if (!c || c->xfer != NVME_XFER_CTRLR_TO_HOST)
			return protocol_error(qp, "c2h data for unknown or non-read cid");
		if (d.datao != c->c2h_done || (uint64_t)d.datao + d.datal > c->len)
			return protocol_error(qp, "c2h data offset/length");
		if (ch.pdo < hdr_total || ch.plen != (uint64_t)ch.pdo + d.datal +
		    ((ch.flags & NVME_TCP_FLAG_DDGSTF) ? 4 : 0))
			return protocol_error(qp, "c2h data pdo/plen");
		if (qp->ddgst && d.datal > 0 && !(ch.flags & NVME_TCP_FLAG_DDGSTF))
			return protocol_error(qp, "c2h data digest flag missing");
		if ((ch.flags & NVME_TCP_FLAG_SUCCESS) && !(ch.flags & NVME_TCP_FLAG_LAST_PDU))
			return protocol_error(qp, "c2h SUCCESS without LAST_PDU");
		qp->rslot = d.cccid;
		qp->rflags = ch.flags;
		qp->rpad_left = ch.pdo - hdr_total;
		qp->rdata_left = d.datal;
		qp->rdata_off = d.datao;
		qp->rcrc = 0;
		qp->rddgst_have = 0;
		qp->rstate = NVME_RSTATE_PAD;
		return 0;
	}
	case NVME_TCP_PDU_R2T: {
		struct nvme_tcp_r2t r;

		memcpy(&r, hdr, sizeof(r));
		if (ch.plen != hdr_total)
			return protocol_error(qp, "r2t plen");
		c = active_slot(qp, r.cccid);
		if (!c || c->xfer != NVME_XFER_HOST_TO_CTRLR || c->icd || c->send_refs > 0)
			return protocol_error(qp, "r2t for unknown, non-write or in-capsule cid");
		if (c->r2t_active || r.r2tl == 0 || r.r2to != c->h2c_next ||
		    (uint64_t)r.r2to + r.r2tl > c->len)
			return protocol_error(qp, "r2t offset/length");
		c->r2t_active = true;
		c->ttag = r.ttag;
		c->h2c_end = r.r2to + r.r2tl;
		queue_h2c(qp, r.cccid);
		return 0;
	}
	case NVME_TCP_PDU_C2H_TERM_REQ: {
		struct nvme_tcp_term_req t;

		memcpy(&t, hdr, sizeof(t));
		LOG_WARN(NVME_MOD, "target terminated connection qid=%u fes=%u fei=%u",
			 qp->qid, t.fes, t.fei);
		nvme_qpair_fail(qp, -ECONNRESET);
		return -ECONNRESET;
	}
	default:
		return protocol_error(qp, "unexpected pdu type");
	}
}

static void finish_c2h(struct nvme_qpair *qp, int *completed)
{
	struct nvme_cmd *c = &qp->slots[qp->rslot];

	qp->rstate = NVME_RSTATE_HDR;
	if ((qp->rflags & NVME_TCP_FLAG_LAST_PDU) && (qp->rflags & NVME_TCP_FLAG_SUCCESS)) {
		struct nvme_cqe cqe;

		if (c->c2h_done != c->len) {
			protocol_error(qp, "c2h SUCCESS with short data");
			return;
		}
		memset(&cqe, 0, sizeof(cqe));
		cqe.cid = qp->rslot;
		cqe.sqid = qp->qid;
		complete_slot(qp, qp->rslot, &cqe);
		(*completed)++;
	}
}

/* Parses everything buffered. Returns completions or -ECONNRESET. */
static int parse_rbuf(struct nvme_qpair *qp)
{
	int completed = 0;

	while (!qp->dead) {
		uint32_t avail = qp->rlen - qp->rpos;
		const uint8_t *p = qp->rbuf + qp->rpos;

		switch (qp->rstate) {
		case NVME_RSTATE_HDR: {
			struct nvme_tcp_ch ch;
			uint32_t hdr_total;
			uint8_t want;
			int rc;

			if (avail < sizeof(ch))
				return completed;
			memcpy(&ch, p, sizeof(ch));
			want = nvme_tcp_pdu_hlen(ch.pdu_type);
			if (want == 0 || ch.hlen != want || ch.pdu_type == NVME_TCP_PDU_IC_RESP)
				return protocol_error(qp, "bad pdu type or hlen");
			hdr_total = ch.hlen;
			if (qp->hdgst && nvme_tcp_pdu_has_hdgst(ch.pdu_type)) {
				if (!(ch.flags & NVME_TCP_FLAG_HDGSTF))
					return protocol_error(qp, "header digest flag missing");
				hdr_total += 4;
			}
			if (ch.pdu_type == NVME_TCP_PDU_C2H_TERM_REQ) {
				if (ch.plen < ch.hlen || ch.plen > NVME_TCP_TERM_REQ_MAX_PLEN)
					return protocol_error(qp, "term req plen");
			} else if (ch.plen < hdr_total) {
				return protocol_error(qp, "plen below header");
			}
			if (avail < hdr_total)
				return completed;
			if (hdr_total > ch.hlen &&
			    nvme_tcp_digest(p, ch.hlen) != nvme_get_le32(p + ch.hlen))
				return protocol_error(qp, "header digest mismatch");
			qp->rpos += hdr_total;
			rc = handle_header(qp, p, hdr_total);
			if (rc < 0)
				return rc;
			completed += rc;
			break;
		}
		case NVME_RSTATE_PAD: {
			uint32_t n = COMMON_MIN(avail, qp->rpad_left);

			qp->rpos += n;
			qp->rpad_left -= n;
			if (qp->rpad_left > 0)
				return completed;
			qp->rstate = NVME_RSTATE_DATA;
			break;
		}
		case NVME_RSTATE_DATA: {
			struct nvme_cmd *c = &qp->slots[qp->rslot];
			uint32_t n = COMMON_MIN(avail, qp->rdata_left);

			if (qp->rdata_left > 0) {
				if (n == 0)
					return completed;
				memcpy(c->buf + qp->rdata_off, p, n);
				if (qp->rflags & NVME_TCP_FLAG_DDGSTF)
					qp->rcrc = crc32c(qp->rcrc, p, n);
				qp->rpos += n;
				qp->rdata_off += n;
				qp->rdata_left -= n;
				c->c2h_done += n;
				if (qp->rdata_left > 0)
					return completed;
			}
			if (qp->rflags & NVME_TCP_FLAG_DDGSTF)
				qp->rstate = NVME_RSTATE_DDGST;
			else
				finish_c2h(qp, &completed);
			break;
		}
		case NVME_RSTATE_DDGST: {
			uint32_t n = COMMON_MIN(avail, 4 - qp->rddgst_have);

			memcpy(qp->rddgst + qp->rddgst_have, p, n);
			qp->rddgst_have += n;
			qp->rpos += n;
			if (qp->rddgst_have < 4)
				return completed;
			if (nvme_get_le32(qp->rddgst) != qp->rcrc)
				return protocol_error(qp, "data digest mismatch");
			finish_c2h(qp, &completed);
			break;
		}
		}
	}
	return qp->dead ? -ECONNRESET : completed;
}

/* Reads what the socket has (non-blocking). Returns completions, or
 * -ECONNRESET. *got_bytes tells whether anything arrived. */
static int receive(struct nvme_qpair *qp, bool *got_bytes)
{
	int completed = 0;

	*got_bytes = false;
	for (int round = 0; round < 8 && !qp->dead; round++) {
		ssize_t n;

		/* Large C2H payload with an empty buffer: read straight into place. */
		if (qp->rstate == NVME_RSTATE_DATA && qp->rpos == qp->rlen &&
		    qp->rdata_left >= 8192 && !(qp->rflags & NVME_TCP_FLAG_DDGSTF)) {
			struct nvme_cmd *c = &qp->slots[qp->rslot];

			n = recv(qp->fd, c->buf + qp->rdata_off, qp->rdata_left, MSG_DONTWAIT);
			if (n > 0) {
				*got_bytes = true;
				qp->rdata_off += (uint32_t)n;
				qp->rdata_left -= (uint32_t)n;
				c->c2h_done += (uint32_t)n;
				if (qp->rdata_left == 0)
					finish_c2h(qp, &completed);
				continue;
			}
		} else {
			if (qp->rpos == qp->rlen) {
				qp->rpos = qp->rlen = 0;
			} else if (qp->rpos > NVME_RBUF_SIZE / 2) {
				memmove(qp->rbuf, qp->rbuf + qp->rpos, qp->rlen - qp->rpos);
				qp->rlen -= qp->rpos;
				qp->rpos = 0;
			}
			size_t want = NVME_RBUF_SIZE - qp->rlen;

			n = recv(qp->fd, qp->rbuf + qp->rlen, want, MSG_DONTWAIT);
			if (n > 0) {
				int rc;

				*got_bytes = true;
				qp->rlen += (uint32_t)n;
				rc = parse_rbuf(qp);
				if (rc < 0)
					return rc;
				completed += rc;
				if ((size_t)n < want)
					break; /* socket drained */
				continue;
			}
		}
		if (n == 0) {
			LOG_WARN(NVME_MOD, "connection closed by target qid=%u outstanding=%u",
				 qp->qid, qp->outstanding);
			nvme_qpair_fail(qp, -ECONNRESET);
			return -ECONNRESET;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			break;
		LOG_WARN(NVME_MOD, "recv failed qid=%u err=%s", qp->qid, common_strerror(errno));
		nvme_qpair_fail(qp, -ECONNRESET);
		return -ECONNRESET;
	}
	return completed;
}

int nvme_qpair_poll(struct nvme_qpair *qp, int timeout_ms)
{
	uint64_t deadline = timeout_ms > 0 ? clock_mono_ms() + (uint64_t)timeout_ms : 0;
	int total = 0;

	for (;;) {
		bool got;
		int rc;
		struct pollfd pfd;
		int wait;

		if (qp->dead)
			return -ECONNRESET;
		rc = nvme_qpair_flush(qp);
		if (rc < 0)
			return rc;
		rc = receive(qp, &got);
		if (rc < 0)
			return rc;
		total += rc;
		/* completions may have queued new sends (callbacks resubmitting) */
		rc = nvme_qpair_flush(qp);
		if (rc < 0)
			return rc;
		if (total > 0 || timeout_ms == 0)
			return total;
		if (got)
			continue;
		if (timeout_ms < 0) {
			wait = -1;
		} else {
			uint64_t now = clock_mono_ms();

			if (now >= deadline)
				return 0;
			wait = (int)(deadline - now);
		}
		pfd.fd = qp->fd;
		pfd.events = POLLIN | (qp->iov_head < qp->iov_tail ? POLLOUT : 0);
		pfd.revents = 0;
		rc = poll(&pfd, 1, wait);
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* ------------------------------------------------------------ sync helpers */

void nvme_sync_cb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	struct nvme_sync *s = arg;

	s->done = true;
	s->status = status;
	s->cqe = *cqe;
}

int nvme_qpair_wait(struct nvme_qpair *qp, struct nvme_sync *sync, uint32_t timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + timeout_ms;

	while (!sync->done) {
		uint64_t now = clock_mono_ms();
		int rc;

		if (now >= deadline) {
			LOG_WARN(NVME_MOD, "command timed out qid=%u timeout_ms=%u", qp->qid, timeout_ms);
			nvme_qpair_fail(qp, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		rc = nvme_qpair_poll(qp, (int)(deadline - now));
		if (rc < 0 && !sync->done)
			return rc;
	}
	if (sync->status == NVME_QPAIR_STATUS_ABORTED)
		return qp->dead_err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
	return 0;
}

int nvme_qpair_fabrics_connect(struct nvme_qpair *qp, uint16_t sqsize, uint32_t kato_ms,
			       uint16_t cntlid, const uint8_t hostid[16], const char *subnqn,
			       const char *hostnqn, uint32_t timeout_ms, uint16_t *status,
			       uint16_t *cntlid_out)
{
	struct nvme_fabrics_connect_cmd cmd;
	struct nvme_fabrics_connect_data *data;
	struct nvme_sync sync = { 0 };
	int rc;

	if (strlen(subnqn) > NVME_NQN_MAX_LEN || strlen(hostnqn) > NVME_NQN_MAX_LEN)
		return -EINVAL;
	data = mem_zalloc(sizeof(*data));
	if (!data)
		return -ENOMEM;
	memcpy(data->hostid, hostid, 16);
	data->cntlid = cntlid;
	snprintf(data->subnqn, sizeof(data->subnqn), "%s", subnqn);
	snprintf(data->hostnqn, sizeof(data->hostnqn), "%s", hostnqn);
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_CONNECT;
	cmd.recfmt = 0;
	cmd.qid = qp->qid;
	cmd.sqsize = sqsize;
	cmd.kato = kato_ms;
	rc = nvme_qpair_submit(qp, (const struct nvme_sqe *)&cmd, data, sizeof(*data), nvme_sync_cb,
			       &sync);
	if (rc == 0)
		rc = nvme_qpair_wait(qp, &sync, timeout_ms);
	mem_free(data);
	if (rc < 0)
		return rc;
	*status = sync.status;
	if (sync.status != 0) {
		LOG_WARN(NVME_MOD, "connect rejected qid=%u subnqn=%s hostnqn=%s status=0x%x (%s) dw0=0x%x",
			 qp->qid, subnqn, hostnqn, sync.status, nvme_status_str(sync.status),
			 sync.cqe.dw0);
		return -EIO;
	}
	*cntlid_out = (uint16_t)(sync.cqe.dw0 & 0xFFFF);
	return 0;
}
