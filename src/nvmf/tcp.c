/*
 * tcp.c: the NVMe/TCP transport of the target: one connection per queue
 * pair, a byte-stream PDU parser (PDUs may be split or coalesced anyhow by
 * TCP), request slots preallocated per connection, and a send queue flushed
 * with one sendmsg() per batch.
 *
 * Receive: everything readable is read into the target's scratch buffer and
 * fed through nvmf_conn_input(); headers are assembled in conn->hdr, data is
 * copied straight into the request's buffer. Send: responses are queued as
 * iovec lists (header, padding, data, digest, CapsuleResp) and written at the
 * end of the loop round, so completions of one round share a syscall.
 * A protocol error sends a C2HTermReq and closes only that connection.
 */
#include "nvmf/nvmf_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NVMF_SEND_IOV_MAX 128
#define NVMF_READS_PER_EVENT 8
/* Responses are written at the end of the loop round, or as soon as this
 * many are queued on an I/O queue (the host can then start on the first ones
 * while the target still works on the rest of a big batch). Smaller values
 * measured worse on the shared 2-core machine (more wakeups per I/O);
 * $DISKENGINE_NVMF_FLUSH_BATCH overrides it for experiments. */
static unsigned flush_batch = 64;

static const uint8_t zero_pad[128];

static void conn_flush(struct nvmf_conn *conn);
static void conn_start_cmd(struct nvmf_req *req);

static uint32_t tcp_digest(const void *buf, size_t len)
{
	return crc32c(0, buf, len);
}

/* The TCP transport's options, looked up once per connection (transports
 * are never destroyed while the target lives). */
static const struct nvmf_transport_opts *conn_opts(struct nvmf_conn *conn)
{
	static struct nvmf_transport_opts defaults;
	struct nvmf_transport *t;

	if (conn->opts)
		return conn->opts;
	t = nvmf_tgt_tcp(conn->tgt);
	if (t) {
		conn->opts = &t->opts;
		return conn->opts;
	}
	if (defaults.max_queue_depth == 0)
		nvmf_transport_opts_init(&defaults);
	return &defaults;
}

/* ------------------------------------------------------- life cycle */

static void conn_free(struct ev_loop *loop, void *arg)
{
	struct nvmf_conn *conn = arg;
	struct nvmf_tgt *tgt = conn->tgt;

	if (conn->prev)
		conn->prev->next = conn->next;
	else
		tgt->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	for (unsigned i = 0; i < conn->nreqs; i++) {
		nvmf_req_zc_release(&conn->reqs[i]);
		mem_free(conn->reqs[i].buf);
	}
	mem_free(conn->reqs);
	mem_free(conn);
	if (!tgt->conns && tgt->rbuf) {
		mem_free(tgt->rbuf);
		tgt->rbuf = NULL;
	}
}

static void conn_maybe_free(struct nvmf_conn *conn)
{
	if (!conn->closed || conn->inflight || conn->free_scheduled || conn->free_pending)
		return;
	if (ev_defer(conn->tgt->loop, conn_free, conn) == 0) {
		conn->free_scheduled = true;
		return;
	}
	/* no memory for the deferred call: the next reap frees it */
	conn->free_pending = true;
	conn->tgt->n_reap++;
}

void nvmf_tgt_reap(struct nvmf_tgt *tgt)
{
	struct nvmf_conn *c = tgt->conns;

	while (c && tgt->n_reap) {
		struct nvmf_conn *next = c->next;
		if (c->free_pending) {
			tgt->n_reap--;
			conn_free(tgt->loop, c);
		}
		c = next;
	}
}

static void conn_event(struct ev_loop *loop, int fd, uint32_t events, void *arg);

void nvmf_conn_io_put(struct nvmf_conn *conn)
{
	conn->inflight--;
	conn_maybe_free(conn);
}

int nvmf_conn_create(struct nvmf_tgt *tgt, int fd, const struct nvmf_listen_addr *local,
		     const struct nvmf_listen_addr *peer, struct nvmf_conn **out)
{
	struct nvmf_conn *conn = mem_zalloc(sizeof(*conn));
	const struct nvmf_transport_opts *o;
	int rc = -ENOMEM;

	if (!conn)
		goto fail;
	conn->tgt = tgt;
	conn->fd = fd;
	conn->created_ms = clock_mono_ms();
	o = conn_opts(conn);
	conn->nreqs = COMMON_MAX(o->max_queue_depth, o->max_aq_depth);
	conn->reqs = mem_zalloc(sizeof(*conn->reqs) * conn->nreqs);
	if (!conn->reqs)
		goto fail;
	if (!tgt->rbuf) {
		tgt->rbuf = mem_alloc(NVMF_RBUF_SIZE);
		if (!tgt->rbuf)
			goto fail;
	}
	for (unsigned i = conn->nreqs; i-- > 0;) {
		struct nvmf_req *r = &conn->reqs[i];
		r->conn = conn;
		r->idx = (uint16_t)i;
		r->send.req = r;
		r->r2t_send.req = r;
		r->next_free = conn->free_reqs;
		conn->free_reqs = r;
	}
	if (local)
		conn->local = *local;
	if (peer)
		conn->peer = *peer;
	conn->rx = NVMF_RX_CH;
	const char *fb = getenv("DISKENGINE_NVMF_FLUSH_BATCH");
	if (fb && atoi(fb) > 0)
		flush_batch = (unsigned)atoi(fb);
	rc = ev_fd_add(tgt->loop, fd, EPOLLIN, conn_event, conn);
	if (rc)
		goto fail;
	conn->next = tgt->conns;
	if (tgt->conns)
		tgt->conns->prev = conn;
	tgt->conns = conn;
	LOG_DEBUG(NVMF_LOG, "connection accepted peer=%s:%s", conn->peer.traddr, conn->peer.trsvcid);
	if (out)
		*out = conn;
	return 0;
fail:
	close(fd);
	if (conn)
		mem_free(conn->reqs);
	mem_free(conn);
	return rc;
}

void nvmf_conn_close(struct nvmf_conn *conn, const char *why)
{
	if (conn->closed)
		return;
	conn->closed = true;
	conn->rx = NVMF_RX_ERROR;
	if (conn->fd >= 0) {
		ev_fd_remove(conn->tgt->loop, conn->fd);
		close(conn->fd);
		conn->fd = -1;
	}
	if (conn->connected)
		LOG_INFO(NVMF_LOG, "qpair closed nqn=%s cntlid=%u qid=%u reason=\"%s\"",
			 conn->subsys ? conn->subsys->nqn : "-", conn->ctrlr ? conn->ctrlr->cntlid : 0,
			 conn->qid, why);
	else
		LOG_DEBUG(NVMF_LOG, "connection closed peer=%s:%s reason=\"%s\"", conn->peer.traddr,
			  conn->peer.trsvcid, why);
	/* Drop the send queue. */
	for (struct nvmf_send *s = conn->sq_head; s;) {
		struct nvmf_send *next = s->next;
		s->queued = false;
		s->next = NULL;
		if (s->req)
			nvmf_req_zc_release(s->req);
		s = next;
	}
	conn->sq_head = conn->sq_tail = NULL;
	nvmf_conn_detach(conn);
	conn_maybe_free(conn);
}

/* ------------------------------------------------------------- send */

static void send_queue(struct nvmf_conn *conn, struct nvmf_send *s)
{
	s->total = 0;
	for (int i = 0; i < s->iovcnt; i++)
		s->total += s->iov[i].iov_len;
	s->next = NULL;
	s->queued = true;
	if (conn->sq_tail)
		conn->sq_tail->next = s;
	else
		conn->sq_head = s;
	conn->sq_tail = s;
}

void nvmf_req_zc_release(struct nvmf_req *req)
{
	if (!req->zc_ref)
		return;
	bdev_mem_put(req->zc_ref);
	req->zc_ref = NULL;
	req->zc_data = NULL;
}

static void req_free(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;

	nvmf_req_zc_release(req);

	if (req->buf_cap > NVMF_SMALL_BUF && conn->buf_bytes > NVMF_CONN_BUF_CACHE) {
		conn->buf_bytes -= req->buf_cap;
		mem_free(req->buf);
		req->buf = NULL;
		req->buf_cap = 0;
	}
	req->state = NVMF_REQ_FREE;
	req->next_free = conn->free_reqs;
	conn->free_reqs = req;
}

static void send_done(struct nvmf_conn *conn, struct nvmf_send *s)
{
	s->queued = false;
	if (s->release && s->req)
		req_free(s->req);
}

static void conn_flush(struct nvmf_conn *conn)
{
	struct iovec iov[NVMF_SEND_IOV_MAX];

	conn->sq_unflushed = 0;
	while (conn->sq_head && !conn->closed) {
		int n = 0;
		size_t skip = conn->sq_off;
		for (struct nvmf_send *s = conn->sq_head; s && n + 6 <= NVMF_SEND_IOV_MAX; s = s->next) {
			for (int i = 0; i < s->iovcnt; i++) {
				size_t len = s->iov[i].iov_len;
				if (skip >= len) {
					skip -= len;
					continue;
				}
				iov[n].iov_base = (uint8_t *)s->iov[i].iov_base + skip;
				iov[n].iov_len = len - skip;
				skip = 0;
				n++;
			}
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(conn->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			nvmf_conn_close(conn, "send failed");
			return;
		}
		size_t done = (size_t)w + conn->sq_off;
		while (conn->sq_head && done >= conn->sq_head->total) {
			struct nvmf_send *s = conn->sq_head;
			done -= s->total;
			conn->sq_head = s->next;
			if (!conn->sq_head)
				conn->sq_tail = NULL;
			send_done(conn, s);
		}
		conn->sq_off = done;
	}
	if (conn->closed)
		return;
	bool want = conn->sq_head != NULL;
	if (want != conn->want_out) {
		conn->want_out = want;
		ev_fd_modify(conn->tgt->loop, conn->fd, EPOLLIN | (want ? EPOLLOUT : 0));
	}
}

static void flush_deferred(struct ev_loop *loop, void *arg)
{
	struct nvmf_conn *conn = arg;

	conn->flush_scheduled = false;
	if (!conn->closed)
		conn_flush(conn);
	conn_maybe_free(conn);
}

static void conn_schedule_flush(struct nvmf_conn *conn)
{
	if (conn->flush_scheduled || conn->closed)
		return;
	conn->flush_scheduled = true;
	if (ev_defer(conn->tgt->loop, flush_deferred, conn) != 0) {
		conn->flush_scheduled = false;
		conn_flush(conn);
	}
}

void nvmf_conn_fatal(struct nvmf_conn *conn, uint16_t fes, uint32_t fei)
{
	struct nvme_tcp_term_req *t = (void *)conn->ctl_pdu;
	size_t copy;

	if (conn->closed)
		return;
	LOG_WARN(NVMF_LOG, "protocol error, closing connection peer=%s:%s fes=%u fei=%u pdu_type=%u",
		 conn->peer.traddr, conn->peer.trsvcid, fes, fei, conn->ptype);
	conn->rx = NVMF_RX_ERROR;
	if (!conn->ctl_send.queued) {
		copy = COMMON_MIN(conn->hdr_got, (size_t)NVME_TCP_TERM_REQ_MAX_COPY);
		memset(t, 0, sizeof(*t));
		t->ch.pdu_type = NVME_TCP_PDU_C2H_TERM_REQ;
		t->ch.hlen = NVME_TCP_PSH24_HLEN;
		t->ch.plen = (uint32_t)(NVME_TCP_PSH24_HLEN + copy);
		t->fes = fes;
		t->fei = fei;
		memcpy(conn->ctl_pdu + NVME_TCP_PSH24_HLEN, conn->hdr, copy);
		conn->ctl_send.iov[0].iov_base = conn->ctl_pdu;
		conn->ctl_send.iov[0].iov_len = NVME_TCP_PSH24_HLEN + copy;
		conn->ctl_send.iovcnt = 1;
		conn->ctl_send.req = NULL;
		conn->ctl_send.release = false;
		send_queue(conn, &conn->ctl_send);
		conn_flush(conn);
	}
	nvmf_conn_close(conn, "protocol error");
}

/* ------------------------------------------------------ completion */

void nvmf_req_set_status(struct nvmf_req *req, uint8_t sct, uint8_t sc, bool dnr)
{
	struct nvme_cqe *cqe = (void *)req->cqe;

	cqe->status = NVME_STATUS_MAKE(sct, sc, dnr);
}

int nvmf_req_buf_reserve(struct nvmf_req *req, uint32_t len)
{
	uint32_t cap;
	uint8_t *b;

	if (len <= req->buf_cap)
		return 0;
	cap = (len + 4095u) & ~4095u;
	b = mem_alloc(cap);
	if (!b)
		return -ENOMEM;
	req->conn->buf_bytes -= req->buf_cap;
	mem_free(req->buf);
	req->buf = b;
	req->buf_cap = cap;
	req->conn->buf_bytes += cap;
	return 0;
}

void nvmf_req_complete(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvme_sqe *sqe = (void *)req->sqe;
	struct nvme_cqe *cqe = (void *)req->cqe;
	struct nvmf_send *s = &req->send;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	bool ok = NVME_STATUS_IS_OK(cqe->status);
	bool skip_resp = false;

	if (conn->closed) {
		nvmf_req_zc_release(req);
		req->state = NVMF_REQ_FREE;
		return; /* the slot array goes with the connection */
	}
	cqe->cid = sqe->cid;
	cqe->sqid = conn->qid;
	if (conn->sqhd_disabled) {
		cqe->sqhd = 0xFFFF;
	} else {
		conn->sqhd = (uint16_t)((conn->sqhd + 1) % ((uint32_t)conn->sqsize + 1));
		cqe->sqhd = conn->sqhd;
	}
	s->iovcnt = 0;
	if (req->c2h && ok && req->data_len) {
		struct nvme_tcp_data_hdr *h = (void *)req->hdr;
		uint32_t align = ((uint32_t)conn->hpda + 1) * 4;
		uint32_t pdo = ((NVME_TCP_PSH24_HLEN + hd + align - 1) / align) * align;
		uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;

		memset(h, 0, sizeof(*h));
		h->ch.pdu_type = NVME_TCP_PDU_C2H_DATA;
		h->ch.flags = NVME_TCP_FLAG_LAST_PDU | (hd ? NVME_TCP_FLAG_HDGSTF : 0) |
			      (dd ? NVME_TCP_FLAG_DDGSTF : 0);
		if (conn->sqhd_disabled && conn_opts(conn)->c2h_success && cqe->dw0 == 0 && cqe->dw1 == 0) {
			h->ch.flags |= NVME_TCP_FLAG_SUCCESS;
			skip_resp = true;
		}
		h->ch.hlen = NVME_TCP_PSH24_HLEN;
		h->ch.pdo = (uint8_t)pdo;
		h->ch.plen = pdo + req->data_len + dd;
		h->cccid = sqe->cid;
		h->datao = 0;
		h->datal = req->data_len;
		if (hd)
			nvme_put_le32(req->hdr + NVME_TCP_PSH24_HLEN, tcp_digest(h, NVME_TCP_PSH24_HLEN));
		s->iov[s->iovcnt].iov_base = req->hdr;
		s->iov[s->iovcnt++].iov_len = NVME_TCP_PSH24_HLEN + hd;
		if (pdo > NVME_TCP_PSH24_HLEN + hd) {
			s->iov[s->iovcnt].iov_base = (void *)zero_pad;
			s->iov[s->iovcnt++].iov_len = pdo - NVME_TCP_PSH24_HLEN - hd;
		}
		const uint8_t *data = req->zc_ref ? req->zc_data : req->buf;
		s->iov[s->iovcnt].iov_base = (void *)data;
		s->iov[s->iovcnt++].iov_len = req->data_len;
		if (dd) {
			nvme_put_le32(req->ddgst, tcp_digest(data, req->data_len));
			s->iov[s->iovcnt].iov_base = req->ddgst;
			s->iov[s->iovcnt++].iov_len = NVME_TCP_DIGEST_LEN;
		}
	}
	if (!skip_resp) {
		struct nvme_tcp_capsule_resp *r = (void *)req->rsp;
		r->ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
		r->ch.flags = hd ? NVME_TCP_FLAG_HDGSTF : 0;
		r->ch.hlen = NVME_TCP_PSH24_HLEN;
		r->ch.pdo = 0;
		r->ch.plen = NVME_TCP_PSH24_HLEN + hd;
		memcpy(&r->cqe, cqe, sizeof(*cqe));
		if (hd)
			nvme_put_le32(req->rsp + NVME_TCP_PSH24_HLEN, tcp_digest(r, NVME_TCP_PSH24_HLEN));
		s->iov[s->iovcnt].iov_base = req->rsp;
		s->iov[s->iovcnt++].iov_len = NVME_TCP_PSH24_HLEN + hd;
	}
	req->state = NVMF_REQ_SENDING;
	s->release = true;
	send_queue(conn, s);
	/* (I/O queues only: on the admin queue a failed send could destroy the
	 * controller under a caller that still uses it) */
	if (++conn->sq_unflushed >= flush_batch && conn->qid)
		conn_flush(conn);
	else
		conn_schedule_flush(conn);
}

static void send_r2t(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	struct nvme_sqe *sqe = (void *)req->sqe;
	struct nvme_tcp_r2t *r = (void *)req->hdr;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	struct nvmf_send *s = &req->r2t_send;

	memset(r, 0, sizeof(*r));
	r->ch.pdu_type = NVME_TCP_PDU_R2T;
	r->ch.flags = hd ? NVME_TCP_FLAG_HDGSTF : 0;
	r->ch.hlen = NVME_TCP_PSH24_HLEN;
	r->ch.plen = NVME_TCP_PSH24_HLEN + hd;
	r->cccid = sqe->cid;
	r->ttag = (uint16_t)(req->idx + 1);
	r->r2to = req->h2c_got;
	r->r2tl = req->data_len - req->h2c_got;
	if (hd)
		nvme_put_le32(req->hdr + NVME_TCP_PSH24_HLEN, tcp_digest(r, NVME_TCP_PSH24_HLEN));
	s->iov[0].iov_base = req->hdr;
	s->iov[0].iov_len = NVME_TCP_PSH24_HLEN + hd;
	s->iovcnt = 1;
	s->release = false;
	req->state = NVMF_REQ_WAIT_H2C;
	send_queue(conn, s);
	conn_schedule_flush(conn);
}

/* Completes a request that never reached execution (bad SGL, ...). */
static void req_fail(struct nvmf_req *req, uint8_t sct, uint8_t sc)
{
	req->c2h = false;
	nvmf_req_set_status(req, sct, sc, true);
	nvmf_req_complete(req);
}

/* ----------------------------------------------------------- receive */

static void rx_reset(struct nvmf_conn *conn)
{
	conn->rx = NVMF_RX_CH;
	conn->hdr_got = 0;
	conn->rx_req = NULL;
	conn->data_dst = NULL;
}

static void handle_icreq(struct nvmf_conn *conn)
{
	const struct nvme_tcp_ic_req *ic = (const void *)conn->hdr;
	struct nvme_tcp_ic_resp *rsp = (void *)conn->ctl_pdu;

	if (ic->pfv != NVME_TCP_PFV_1_0) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 8);
		return;
	}
	if (ic->hpda > 31) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 10);
		return;
	}
	conn->hpda = ic->hpda;
	conn->hdgst = (ic->dgst & NVME_TCP_DGST_HDR) != 0;
	conn->ddgst = (ic->dgst & NVME_TCP_DGST_DATA) != 0;
	memset(rsp, 0, sizeof(*rsp));
	rsp->ch.pdu_type = NVME_TCP_PDU_IC_RESP;
	rsp->ch.hlen = NVME_TCP_IC_LEN;
	rsp->ch.plen = NVME_TCP_IC_LEN;
	rsp->pfv = NVME_TCP_PFV_1_0;
	rsp->cpda = 0;
	rsp->dgst = ic->dgst & (NVME_TCP_DGST_HDR | NVME_TCP_DGST_DATA);
	rsp->maxh2cdata = conn_opts(conn)->max_io_size;
	conn->ctl_send.iov[0].iov_base = rsp;
	conn->ctl_send.iov[0].iov_len = NVME_TCP_IC_LEN;
	conn->ctl_send.iovcnt = 1;
	conn->ctl_send.req = NULL;
	conn->ctl_send.release = false;
	send_queue(conn, &conn->ctl_send);
	conn_schedule_flush(conn);
	conn->ic_done = true;
	rx_reset(conn);
}

/* Validates the 8-byte common header; sets hdr_need. false = fatal sent. */
static bool check_ch(struct nvmf_conn *conn)
{
	const struct nvme_tcp_ch *ch = (const void *)conn->hdr;
	uint32_t hd;

	conn->ptype = ch->pdu_type;
	conn->pflags = ch->flags;
	conn->hlen = ch->hlen;
	conn->pdo = ch->pdo;
	conn->plen = ch->plen;
	if (!conn->ic_done) {
		if (ch->pdu_type != NVME_TCP_PDU_IC_REQ) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_PDU_SEQUENCE_ERROR, 0);
			return false;
		}
		if (ch->hlen != NVME_TCP_IC_LEN) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 2);
			return false;
		}
		if (ch->plen != NVME_TCP_IC_LEN) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 4);
			return false;
		}
		conn->hdr_need = NVME_TCP_IC_LEN;
		return true;
	}
	switch (ch->pdu_type) {
	case NVME_TCP_PDU_CAPSULE_CMD:
		if (ch->hlen != NVME_TCP_CAPSULE_CMD_HLEN) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 2);
			return false;
		}
		break;
	case NVME_TCP_PDU_H2C_DATA:
		if (ch->hlen != NVME_TCP_PSH24_HLEN) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 2);
			return false;
		}
		break;
	case NVME_TCP_PDU_H2C_TERM_REQ:
		if (ch->hlen != NVME_TCP_PSH24_HLEN || ch->plen < NVME_TCP_PSH24_HLEN ||
		    ch->plen > NVME_TCP_TERM_REQ_MAX_PLEN) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 4);
			return false;
		}
		conn->hdr_need = ch->plen; /* header plus the copied bytes */
		return true;
	case NVME_TCP_PDU_IC_REQ:
		nvmf_conn_fatal(conn, NVME_TCP_FES_PDU_SEQUENCE_ERROR, 0);
		return false;
	default:
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 0);
		return false;
	}
	/* CapsuleCmd or H2CData: digests as negotiated. */
	if (!!(ch->flags & NVME_TCP_FLAG_HDGSTF) != conn->hdgst) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 1);
		return false;
	}
	hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	if (ch->plen < ch->hlen + hd) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 4);
		return false;
	}
	if (ch->plen > ch->hlen + hd) {
		/* data follows */
		uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
		if (!!(ch->flags & NVME_TCP_FLAG_DDGSTF) != conn->ddgst) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 1);
			return false;
		}
		if (ch->pdo < ch->hlen + hd || (uint64_t)ch->pdo + dd >= ch->plen) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 3);
			return false;
		}
		if (ch->plen - ch->pdo - dd > conn_opts(conn)->max_io_size + NVME_TCP_ADMIN_ICD_MAX) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_DATA_LIMIT_EXCEEDED, 4);
			return false;
		}
	} else if (ch->pdo != 0 && ch->pdo != ch->plen) {
		/* no data: PDO is 0 (some hosts put PLEN there) */
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 3);
		return false;
	}
	conn->hdr_need = ch->hlen + hd;
	return true;
}

/* Begins the data phase of the current PDU into dst (NULL: discard). */
static void rx_data_begin(struct nvmf_conn *conn, uint8_t *dst, size_t len)
{
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;

	conn->skip = conn->pdo - (conn->hlen + hd);
	conn->data_dst = dst;
	conn->data_need = len;
	conn->data_got = 0;
	conn->data_crc = 0;
	conn->ddgst_got = 0;
	conn->rx = conn->skip ? NVMF_RX_PAD : NVMF_RX_DATA;
}

static void handle_capsule(struct nvmf_conn *conn)
{
	const struct nvme_tcp_capsule_cmd *cc = (const void *)conn->hdr;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	struct nvmf_req *req = conn->free_reqs;
	uint32_t icd = 0;

	if (!req) {
		/* more commands outstanding than the queue holds */
		nvmf_conn_fatal(conn, NVME_TCP_FES_PDU_SEQUENCE_ERROR, 0);
		return;
	}
	conn->free_reqs = req->next_free;
	req->next_free = NULL;
	req->state = NVMF_REQ_EXEC;
	memcpy(req->sqe, &cc->sqe, sizeof(req->sqe));
	memset(req->cqe, 0, sizeof(req->cqe));
	req->data_len = 0;
	req->h2c_got = 0;
	req->c2h = false;
	req->data_error = false;
	req->bdev_inflight = false;
	if (conn->plen > conn->hlen + hd)
		icd = conn->plen - conn->pdo - dd;
	if (icd) {
		const struct nvme_sgl_desc *sgl = &cc->sqe.sgl1;
		bool admin = conn->qid == 0 || cc->sqe.opc == NVME_OPC_FABRICS || !conn->connected;
		uint32_t limit = admin ? NVME_TCP_ADMIN_ICD_MAX
				       : COMMON_MAX(conn_opts(conn)->in_capsule_data_size, 4096u);

		if (sgl->id != NVME_SGL_ID_ICD) {
			req_free(req);
			nvmf_conn_fatal(conn, NVME_TCP_FES_UNSUPPORTED_PARAMETER, 8 + 24 + 15);
			return;
		}
		if (sgl->length != icd) {
			req_free(req);
			nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 4);
			return;
		}
		if (icd > limit) {
			req_free(req);
			nvmf_conn_fatal(conn, NVME_TCP_FES_DATA_LIMIT_EXCEEDED, 4);
			return;
		}
		if (nvmf_req_buf_reserve(req, icd) != 0) {
			req_free(req);
			nvmf_conn_close(conn, "out of memory");
			return;
		}
		req->data_len = icd;
		conn->rx_req = req;
		conn->rx_icd = true;
		rx_data_begin(conn, req->buf, icd);
		return;
	}
	rx_reset(conn);
	conn_start_cmd(req);
}

/* Decides the data movement of a command without in-capsule data. */
static void conn_start_cmd(struct nvmf_req *req)
{
	struct nvmf_conn *conn = req->conn;
	const struct nvme_sqe *sqe = (const void *)req->sqe;
	const struct nvme_sgl_desc *sgl = &sqe->sgl1;
	int dir = nvmf_cmd_xfer_dir(req->sqe);

	if (req->data_len) {
		/* in-capsule data received */
		if (dir != NVME_XFER_HOST_TO_CTRLR) {
			req_fail(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD);
			return;
		}
		if (sgl->address != 0) {
			req_fail(req, NVME_SCT_GENERIC, NVME_SC_INVALID_SGL_OFFSET);
			return;
		}
		if (req->data_error) {
			req_fail(req, NVME_SCT_GENERIC, NVME_SC_DATA_TRANSFER_ERROR);
			return;
		}
		nvmf_cmd_exec(req);
		return;
	}
	if (dir == NVME_XFER_BIDIRECTIONAL) {
		req_fail(req, NVME_SCT_GENERIC, NVME_SC_INVALID_OPCODE);
		return;
	}
	if (dir == NVME_XFER_NONE || sgl->length == 0) {
		nvmf_cmd_exec(req);
		return;
	}
	if (sgl->id != NVME_SGL_ID_TRANSPORT) {
		req_fail(req, NVME_SCT_GENERIC, NVME_SC_SGL_DESCRIPTOR_TYPE_INVALID);
		return;
	}
	if (sgl->length > conn_opts(conn)->max_io_size) {
		req_fail(req, NVME_SCT_GENERIC, NVME_SC_DATA_SGL_LENGTH_INVALID);
		return;
	}
	if (nvmf_req_buf_reserve(req, sgl->length) != 0) {
		req_fail(req, NVME_SCT_GENERIC, NVME_SC_INTERNAL_DEVICE_ERROR);
		return;
	}
	req->data_len = sgl->length;
	if (dir == NVME_XFER_CTRLR_TO_HOST) {
		req->c2h = true;
		nvmf_cmd_exec(req);
		return;
	}
	send_r2t(req);
}

static void handle_h2c(struct nvmf_conn *conn)
{
	const struct nvme_tcp_data_hdr *h = (const void *)conn->hdr;
	uint32_t hd = conn->hdgst ? NVME_TCP_DIGEST_LEN : 0;
	uint32_t dd = conn->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	struct nvmf_req *req;

	if (h->ttag == 0 || h->ttag > conn->nreqs || conn->reqs[h->ttag - 1].state != NVMF_REQ_WAIT_H2C) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 10);
		return;
	}
	req = &conn->reqs[h->ttag - 1];
	if (h->cccid != ((const struct nvme_sqe *)req->sqe)->cid) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 8);
		return;
	}
	if (conn->plen <= conn->hlen + hd || h->datal == 0 || h->datal != conn->plen - conn->pdo - dd) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_INVALID_HEADER_FIELD, 16);
		return;
	}
	if (h->datao != req->h2c_got || (uint64_t)h->datao + h->datal > req->data_len) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_DATA_OUT_OF_RANGE, 12);
		return;
	}
	if (h->datal > conn_opts(conn)->max_io_size) {
		nvmf_conn_fatal(conn, NVME_TCP_FES_DATA_LIMIT_EXCEEDED, 16);
		return;
	}
	conn->rx_req = req;
	conn->rx_icd = false;
	conn->h2c_datal = h->datal;
	rx_data_begin(conn, req->buf + h->datao, h->datal);
}

static void handle_psh(struct nvmf_conn *conn)
{
	if (conn->ptype == NVME_TCP_PDU_IC_REQ) {
		handle_icreq(conn);
		return;
	}
	if (conn->ptype == NVME_TCP_PDU_H2C_TERM_REQ) {
		LOG_INFO(NVMF_LOG, "host terminated connection peer=%s:%s fes=%u", conn->peer.traddr,
			 conn->peer.trsvcid, nvme_get_le16(conn->hdr + 8));
		nvmf_conn_close(conn, "H2CTermReq");
		return;
	}
	if (conn->hdgst) {
		uint32_t want = nvme_get_le32(conn->hdr + conn->hlen);
		if (tcp_digest(conn->hdr, conn->hlen) != want) {
			nvmf_conn_fatal(conn, NVME_TCP_FES_HDGST_ERROR, 0);
			return;
		}
	}
	if (conn->ptype == NVME_TCP_PDU_CAPSULE_CMD)
		handle_capsule(conn);
	else
		handle_h2c(conn);
}

/* The data (and digest) of the current PDU has been received. */
static void rx_data_done(struct nvmf_conn *conn)
{
	struct nvmf_req *req = conn->rx_req;

	if (conn->ddgst && nvme_get_le32(conn->ddgst_buf) != conn->data_crc)
		req->data_error = true;
	rx_reset(conn);
	if (conn->rx_icd) {
		conn_start_cmd(req);
		return;
	}
	req->h2c_got += conn->h2c_datal;
	if (req->h2c_got < req->data_len)
		return;
	req->state = NVMF_REQ_EXEC;
	if (req->data_error) {
		req_fail(req, NVME_SCT_GENERIC, NVME_SC_DATA_TRANSFER_ERROR);
		return;
	}
	nvmf_cmd_exec(req);
}

void nvmf_conn_input(struct nvmf_conn *conn, const uint8_t *p, size_t len)
{
	while (len > 0 && !conn->closed && conn->rx != NVMF_RX_ERROR) {
		size_t n;

		switch (conn->rx) {
		case NVMF_RX_CH:
			n = COMMON_MIN(len, 8 - conn->hdr_got);
			memcpy(conn->hdr + conn->hdr_got, p, n);
			conn->hdr_got += n;
			p += n;
			len -= n;
			if (conn->hdr_got < 8)
				break;
			if (!check_ch(conn))
				return;
			conn->rx = NVMF_RX_PSH;
			/* fall through */
		case NVMF_RX_PSH:
			n = COMMON_MIN(len, conn->hdr_need - conn->hdr_got);
			memcpy(conn->hdr + conn->hdr_got, p, n);
			conn->hdr_got += n;
			p += n;
			len -= n;
			if (conn->hdr_got < conn->hdr_need)
				break;
			handle_psh(conn);
			break;
		case NVMF_RX_PAD:
			n = COMMON_MIN(len, conn->skip);
			conn->skip -= n;
			p += n;
			len -= n;
			if (!conn->skip)
				conn->rx = NVMF_RX_DATA;
			break;
		case NVMF_RX_DATA:
			n = COMMON_MIN(len, conn->data_need - conn->data_got);
			if (conn->data_dst)
				memcpy(conn->data_dst + conn->data_got, p, n);
			if (conn->ddgst)
				conn->data_crc = crc32c(conn->data_crc, p, n);
			conn->data_got += n;
			p += n;
			len -= n;
			if (conn->data_got < conn->data_need)
				break;
			if (conn->ddgst) {
				conn->rx = NVMF_RX_DDGST;
				break;
			}
			rx_data_done(conn);
			break;
		case NVMF_RX_DDGST:
			n = COMMON_MIN(len, 4 - conn->ddgst_got);
			memcpy(conn->ddgst_buf + conn->ddgst_got, p, n);
			conn->ddgst_got += n;
			p += n;
			len -= n;
			if (conn->ddgst_got == 4)
				rx_data_done(conn);
			break;
		case NVMF_RX_ERROR:
			return;
		}
	}
}

static void conn_event(struct ev_loop *loop, int fd, uint32_t events, void *arg)
{
	struct nvmf_conn *conn = arg;
	struct nvmf_tgt *tgt = conn->tgt;

	if (tgt->n_reap)
		nvmf_tgt_reap(tgt); /* never conn itself: it is live */
	if (events & EPOLLOUT)
		conn_flush(conn);
	if (conn->closed)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (conn->connected && conn->qid)
			nvmf_tgt_busy(tgt);
		for (int i = 0; i < NVMF_READS_PER_EVENT && !conn->closed; i++) {
			ssize_t n = recv(fd, tgt->rbuf, NVMF_RBUF_SIZE, MSG_DONTWAIT);
			if (n > 0) {
				nvmf_conn_input(conn, tgt->rbuf, (size_t)n);
				if ((size_t)n < NVMF_RBUF_SIZE)
					break;
				continue;
			}
			if (n == 0) {
				nvmf_conn_close(conn, "peer closed");
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				nvmf_conn_close(conn, "receive failed");
			break;
		}
	}
	if (!conn->closed && conn->sq_head)
		conn_flush(conn);
}
