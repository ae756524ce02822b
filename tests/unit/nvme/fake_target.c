/* fake_target.c: scripted NVMe/TCP controller for unit tests (see fake_target.h). */
#include "fake_target.h"

#include "nvme/nvme.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fake_conn {
	struct fake_target *t;
	pthread_t thread;
	bool done;
	int fd;
	bool hdgst;
	bool ddgst;
	uint16_t qid;
	/* capsules that arrived while waiting for H2CData (host pipelining) */
	struct pending {
		struct nvme_sqe sqe;
		uint8_t *icd;
		uint32_t icd_len;
	} pend[256];
	int npend;
};

static int read_capsule_rest(struct fake_conn *c, const struct nvme_tcp_ch *ch, struct nvme_sqe *sqe,
			     uint8_t *icd, uint32_t *icd_len);

static int rd(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int wr(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends a 24-byte-header PDU (+hdgst) with optional data (+ddgst). */
static int send_pdu24(struct fake_conn *c, void *hdr, const void *data, uint32_t dlen)
{
	struct nvme_tcp_ch *ch = hdr;
	uint8_t buf[24 + 4 + 4];
	uint32_t hl = 24;
	bool hd = c->hdgst && nvme_tcp_pdu_has_hdgst(ch->pdu_type);
	bool dd = c->ddgst && dlen > 0 && nvme_tcp_pdu_has_ddgst(ch->pdu_type);

	ch->hlen = 24;
	if (hd)
		ch->flags |= NVME_TCP_FLAG_HDGSTF;
	if (dd)
		ch->flags |= NVME_TCP_FLAG_DDGSTF;
	ch->pdo = dlen ? (uint8_t)(24 + (hd ? 4 : 0)) : 0;
	ch->plen = 24 + (hd ? 4 : 0) + dlen + (dd ? 4 : 0);
	memcpy(buf, hdr, 24);
	if (hd) {
		nvme_put_le32(buf + 24, nvme_tcp_digest(buf, 24));
		hl += 4;
	}
	if (wr(c->fd, buf, hl) < 0)
		return -1;
	if (dlen && wr(c->fd, data, dlen) < 0)
		return -1;
	if (dd) {
		uint8_t d[4];

		nvme_put_le32(d, nvme_tcp_digest(data, dlen));
		if (wr(c->fd, d, 4) < 0)
			return -1;
	}
	return 0;
}

static int send_resp(struct fake_conn *c, uint16_t cid, uint16_t status, uint32_t dw0, uint32_t dw1)
{
	struct nvme_tcp_capsule_resp r;

	memset(&r, 0, sizeof(r));
	r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
	r.cqe.cid = cid;
	r.cqe.status = status;
	r.cqe.dw0 = dw0;
	r.cqe.dw1 = dw1;
	r.cqe.sqid = c->qid;
	return send_pdu24(c, &r, NULL, 0);
}

static int send_c2h(struct fake_conn *c, uint16_t cid, const uint8_t *data, uint32_t len)
{
	struct fake_target *t = c->t;
	uint32_t chunk = t->c2h_chunk ? t->c2h_chunk : len, off = 0;

	while (off < len) {
		struct nvme_tcp_data_hdr d;
		uint32_t n = len - off < chunk ? len - off : chunk;

		memset(&d, 0, sizeof(d));
		d.ch.pdu_type = NVME_TCP_PDU_C2H_DATA;
		d.cccid = cid;
		d.datao = off;
		d.datal = n;
		if (off + n == len) {
			d.ch.flags |= NVME_TCP_FLAG_LAST_PDU;
			if (t->c2h_success)
				d.ch.flags |= NVME_TCP_FLAG_SUCCESS;
		}
		if (send_pdu24(c, &d, data + off, n) < 0)
			return -1;
		off += n;
	}
	if (t->c2h_success)
		return 0;
	return send_resp(c, cid, 0, 0, 0);
}

/* Receives write data through R2T/H2CData. */
static int recv_h2c(struct fake_conn *c, uint16_t cid, uint8_t *buf, uint32_t len)
{
	struct fake_target *t = c->t;
	struct nvme_tcp_r2t r;
	uint32_t got = 0;

	memset(&r, 0, sizeof(r));
	r.ch.pdu_type = NVME_TCP_PDU_R2T;
	r.cccid = cid;
	r.ttag = 0x55;
	r.r2to = t->mode == FAKE_BAD_R2T ? len + 4096 : 0;
	r.r2tl = len;
	if (send_pdu24(c, &r, NULL, 0) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	t->r2t_count++;
	pthread_mutex_unlock(&t->lock);
	while (got < len) {
		struct nvme_tcp_data_hdr d;
		uint8_t hd[4], pad[256], dd[4];
		uint32_t hdr_total;

		if (rd(c->fd, &d.ch, sizeof(d.ch)) < 0)
			return -1;
		if (d.ch.pdu_type == NVME_TCP_PDU_CAPSULE_CMD && c->npend < 256) {
			struct pending *pe = &c->pend[c->npend];

			pe->icd = malloc(1024 * 1024);
			if (read_capsule_rest(c, &d.ch, &pe->sqe, pe->icd, &pe->icd_len) < 0) {
				free(pe->icd);
				return -1;
			}
			c->npend++;
			continue;
		}
		if (rd(c->fd, (uint8_t *)&d + 8, sizeof(d) - 8) < 0)
			return -1;
		if (d.ch.pdu_type != NVME_TCP_PDU_H2C_DATA || d.cccid != cid || d.ttag != 0x55 ||
		    d.datao != got || d.datal == 0 || d.datao + d.datal > len ||
		    d.datal > t->maxh2cdata)
			return -1;
		hdr_total = 24;
		if (c->hdgst) {
			if (rd(c->fd, hd, 4) < 0 || nvme_get_le32(hd) != nvme_tcp_digest(&d, 24))
				return -1;
			hdr_total += 4;
		}
		if (d.ch.pdo < hdr_total || d.ch.pdo - hdr_total > sizeof(pad) ||
		    rd(c->fd, pad, d.ch.pdo - hdr_total) < 0)
			return -1;
		if (rd(c->fd, buf + got, d.datal) < 0)
			return -1;
		if (c->ddgst) {
			if (rd(c->fd, dd, 4) < 0 ||
			    nvme_get_le32(dd) != nvme_tcp_digest(buf + got, d.datal))
				return -1;
		}
		got += d.datal;
		if ((got == len) != ((d.ch.flags & NVME_TCP_FLAG_LAST_PDU) != 0))
			return -1;
		pthread_mutex_lock(&t->lock);
		t->h2c_pdus++;
		pthread_mutex_unlock(&t->lock);
	}
	return 0;
}

static void fill_id_ctrlr(struct fake_target *t, struct nvme_id_ctrlr *id)
{
	memset(id, 0, sizeof(*id));
	memcpy(id->sn, "FAKE0000000000000001", 20);
	memset(id->mn, ' ', sizeof(id->mn));
	memcpy(id->mn, "fake", 4);
	id->cntlid = 1;
	id->ver = NVME_VS_1_4;
	id->mdts = t->mdts;
	id->kas = 10;
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->maxcmd = 128;
	id->nn = 1;
	id->oncs = NVME_CTRLR_ONCS_DSM |
		   (t->no_wz || t->wz_unadvertised ? 0 : NVME_CTRLR_ONCS_WRITE_ZEROES);
	id->sgls = NVME_CTRLR_SGLS_SUPPORTED | NVME_CTRLR_SGLS_OFFSET;
	id->ioccsz = t->ioccsz;
	id->iorcsz = 1;
	id->cntrltype = NVME_CTRLR_CNTRLTYPE_IO;
	snprintf(id->subnqn, sizeof(id->subnqn), "nqn.fake:sub");
}

static int handle_capsule(struct fake_conn *c, struct nvme_sqe *sqe, uint8_t *icd, uint32_t icd_len)
{
	struct fake_target *t = c->t;
	uint8_t *page;
	int rc = 0;

	if (sqe->opc == NVME_OPC_FABRICS) {
		struct nvme_fabrics_cmd *f = (void *)sqe;

		if (f->fctype == NVME_FCTYPE_CONNECT) {
			struct nvme_fabrics_connect_cmd *cc = (void *)sqe;
			struct nvme_fabrics_connect_data *d = (void *)icd;

			if (icd_len != 1024 || sqe->sgl1.id != NVME_SGL_ID_ICD)
				return -1;
			c->qid = cc->qid;
			pthread_mutex_lock(&t->lock);
			snprintf(t->last_hostnqn, sizeof(t->last_hostnqn), "%s", d->hostnqn);
			if (cc->qid)
				t->io_connects++;
			else
				t->last_kato = cc->kato;
			pthread_mutex_unlock(&t->lock);
			if (t->mode == FAKE_REJECT_CONNECT)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(1, NVME_SC_FABRIC_INVALID_HOST, 1),
						 0, 0);
			if (strcmp(d->subnqn, "nqn.fake:sub") != 0)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(1, NVME_SC_FABRIC_INVALID_PARAM, 1),
						 NVME_CONNECT_RSP_INVALID(1, 256), 0);
			if (cc->qid != 0 && d->cntlid != 1)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(1, NVME_SC_FABRIC_INVALID_PARAM, 1),
						 NVME_CONNECT_RSP_INVALID(1, 16), 0);
			return send_resp(c, sqe->cid, 0, 1, 0);
		}
		if (f->fctype == NVME_FCTYPE_PROPERTY_GET) {
			struct nvme_fabrics_prop_get_cmd *g = (void *)sqe;
			uint64_t v = 0;

			switch (g->ofst) {
			case NVME_REG_CAP: v = 0x000000201401007FULL; break;
			case NVME_REG_VS: v = NVME_VS_1_4; break;
			case NVME_REG_CC: v = t->cc; break;
			case NVME_REG_CSTS:
				v = (t->cc & NVME_CC_EN) ? NVME_CSTS_RDY : 0;
				if (t->cc & NVME_CC_SHN_MASK)
					v |= NVME_CSTS_SHST_COMPLETE;
				break;
			default:
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1), 0, 0);
			}
			return send_resp(c, sqe->cid, 0, (uint32_t)v, (uint32_t)(v >> 32));
		}
		if (f->fctype == NVME_FCTYPE_PROPERTY_SET) {
			struct nvme_fabrics_prop_set_cmd *s = (void *)sqe;

			if (s->ofst != NVME_REG_CC)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1), 0, 0);
			pthread_mutex_lock(&t->lock);
			t->cc = (uint32_t)s->value;
			if (t->cc & NVME_CC_SHN_MASK)
				t->shutdown_seen = true;
			pthread_mutex_unlock(&t->lock);
			return send_resp(c, sqe->cid, 0, 0, 0);
		}
		return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_OPCODE, 1), 0, 0);
	}
	if (c->qid == 0) {
		switch (sqe->opc) {
		case NVME_OPC_IDENTIFY: {
			uint8_t cns = sqe->cdw10 & 0xFF;

			if (sqe->sgl1.id != NVME_SGL_ID_TRANSPORT || sqe->sgl1.length != 4096)
				return -1;
			page = calloc(1, 4096);
			if (cns == NVME_CNS_CTRLR) {
				fill_id_ctrlr(t, (void *)page);
			} else if (cns == NVME_CNS_NS) {
				struct nvme_id_ns *ns = (void *)page;

				if (sqe->nsid != 1) {
					free(page);
					return send_resp(c, sqe->cid,
							 NVME_STATUS_MAKE(0, NVME_SC_INVALID_NAMESPACE_OR_FORMAT, 1), 0, 0);
				}
				ns->nsze = ns->ncap = ns->nuse = t->nblocks;
				ns->lbaf[0] = NVME_LBAF_MAKE(t->bs == 4096 ? 12 : 9, 0);
				ns->nguid[0] = 0xAB;
			} else if (cns == NVME_CNS_NS_ID_DESC_LIST) {
				page[0] = NVME_NIDT_UUID;
				page[1] = 16;
				memset(page + 4, 0x42, 16);
			} else if (cns == NVME_CNS_CSI_CTRLR) {
				page[1] = t->wzsl;
			} else {
				free(page);
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1), 0, 0);
			}
			rc = send_c2h(c, sqe->cid, page, 4096);
			free(page);
			return rc;
		}
		case NVME_OPC_SET_FEATURES:
			if ((sqe->cdw10 & 0xFF) == NVME_FEAT_NUMBER_OF_QUEUES)
				return send_resp(c, sqe->cid, 0, (3u << 16) | 3u, 0);
			return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1), 0, 0);
		case NVME_OPC_GET_FEATURES:
			if ((sqe->cdw10 & 0xFF) == NVME_FEAT_KEEP_ALIVE_TIMER)
				return send_resp(c, sqe->cid, 0, t->last_kato, 0);
			return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1), 0, 0);
		case NVME_OPC_KEEP_ALIVE:
			pthread_mutex_lock(&t->lock);
			t->ka_count++;
			pthread_mutex_unlock(&t->lock);
			return send_resp(c, sqe->cid, 0, 0, 0);
		case NVME_OPC_GET_LOG_PAGE: {
			uint32_t len = (((sqe->cdw10 >> 16) | (sqe->cdw11 << 16)) + 1) * 4;

			if (len != sqe->sgl1.length || len > 65536)
				return -1;
			page = calloc(1, len);
			page[0] = (uint8_t)(sqe->cdw10 & 0xFF);
			rc = send_c2h(c, sqe->cid, page, len);
			free(page);
			return rc;
		}
		default:
			return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_OPCODE, 1), 0, 0);
		}
	}
	/* I/O queue */
	{
		uint64_t slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
		uint32_t nlb = (sqe->cdw12 & 0xFFFF) + 1;
		uint64_t bytes = (uint64_t)nlb * t->bs;

		if (t->mode == FAKE_CQE_UNKNOWN_CID)
			return send_resp(c, (uint16_t)(sqe->cid + 1000), 0, 0, 0);
		pthread_mutex_lock(&t->lock);
		if (c->qid < 8)
			t->io_by_qid[c->qid]++;
		pthread_mutex_unlock(&t->lock);
		if (sqe->nsid != 1)
			return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_NAMESPACE_OR_FORMAT, 1), 0, 0);
		switch (sqe->opc) {
		case NVME_OPC_READ:
			if (t->mode == FAKE_CLOSE_ON_READ)
				return -1;
			if (t->mode == FAKE_HANG_ON_READ)
				return 0;
			if (slba + nlb > t->nblocks)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_LBA_OUT_OF_RANGE, 1), 0, 0);
			if (sqe->sgl1.length != bytes || sqe->sgl1.id != NVME_SGL_ID_TRANSPORT)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_DATA_SGL_LENGTH_INVALID, 1), 0, 0);
			page = malloc(bytes);
			pthread_mutex_lock(&t->lock);
			memcpy(page, t->disk + slba * t->bs, bytes);
			pthread_mutex_unlock(&t->lock);
			rc = send_c2h(c, sqe->cid, page, (uint32_t)bytes);
			free(page);
			return rc;
		case NVME_OPC_WRITE:
		case NVME_OPC_DATASET_MANAGEMENT: {
			uint32_t len = sqe->sgl1.length;

			if (t->mode == FAKE_TERMREQ_ON_WRITE) {
				struct nvme_tcp_term_req tr;

				memset(&tr, 0, sizeof(tr));
				tr.ch.pdu_type = NVME_TCP_PDU_C2H_TERM_REQ;
				tr.ch.hlen = 24;
				tr.ch.plen = 24;
				tr.fes = NVME_TCP_FES_INVALID_HEADER_FIELD;
				wr(c->fd, &tr, sizeof(tr));
				return -1;
			}
			if (sqe->opc == NVME_OPC_WRITE && len != bytes)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_DATA_SGL_LENGTH_INVALID, 1), 0, 0);
			page = malloc(len);
			if (icd) {
				if (icd_len != len || sqe->sgl1.id != NVME_SGL_ID_ICD)
					return -1;
				memcpy(page, icd, len);
				pthread_mutex_lock(&t->lock);
				t->icd_writes++;
				pthread_mutex_unlock(&t->lock);
			} else if (sqe->sgl1.id != NVME_SGL_ID_TRANSPORT || recv_h2c(c, sqe->cid, page, len) < 0) {
				free(page);
				return -1;
			}
			pthread_mutex_lock(&t->lock);
			if (sqe->opc == NVME_OPC_WRITE) {
				if (slba + nlb <= t->nblocks)
					memcpy(t->disk + slba * t->bs, page, bytes);
			} else {
				uint32_t nr = (sqe->cdw10 & 0xFF) + 1;
				struct nvme_dsm_range *rg = (void *)page;

				for (uint32_t i = 0; i < nr && (i + 1) * 16 <= len; i++) {
					if (rg[i].slba + rg[i].nlb <= t->nblocks)
						memset(t->disk + rg[i].slba * t->bs, 0,
						       (uint64_t)rg[i].nlb * t->bs);
					t->dsm_ranges++;
				}
			}
			pthread_mutex_unlock(&t->lock);
			free(page);
			if (sqe->opc == NVME_OPC_WRITE && slba + nlb > t->nblocks)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_LBA_OUT_OF_RANGE, 1), 0, 0);
			return send_resp(c, sqe->cid, 0, 0, 0);
		}
		case NVME_OPC_WRITE_ZEROES:
			if (sqe->sgl1.length != 0)
				return -1;
			if (t->no_wz || t->wz_unadvertised)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_OPCODE, 1), 0, 0);
			if (t->mode == FAKE_WZ_ERROR || slba + nlb > t->nblocks)
				return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_LBA_OUT_OF_RANGE, 1), 0, 0);
			pthread_mutex_lock(&t->lock);
			t->wz_cmds++;
			if (nlb > t->wz_max_nlb)
				t->wz_max_nlb = nlb;
			memset(t->disk + slba * t->bs, 0, bytes);
			pthread_mutex_unlock(&t->lock);
			return send_resp(c, sqe->cid, 0, 0, 0);
		case NVME_OPC_FLUSH:
			return send_resp(c, sqe->cid, 0, 0, 0);
		default:
			return send_resp(c, sqe->cid, NVME_STATUS_MAKE(0, NVME_SC_INVALID_OPCODE, 1), 0, 0);
		}
	}
}

static int read_capsule_rest(struct fake_conn *c, const struct nvme_tcp_ch *chp, struct nvme_sqe *sqe,
			     uint8_t *icd, uint32_t *icd_len)
{
	struct nvme_tcp_ch ch = *chp;
	uint8_t hdr[72];
	uint32_t hdr_total = 72;

	*icd_len = 0;
	if (ch.pdu_type != NVME_TCP_PDU_CAPSULE_CMD || ch.hlen != 72)
		return -1;
	memcpy(hdr, &ch, 8);
	if (rd(c->fd, hdr + 8, 64) < 0)
		return -1;
	if (c->hdgst) {
		uint8_t d[4];

		if (!(ch.flags & NVME_TCP_FLAG_HDGSTF) || rd(c->fd, d, 4) < 0 ||
		    nvme_get_le32(d) != nvme_tcp_digest(hdr, 72))
			return -1;
		hdr_total += 4;
	}
	memcpy(sqe, hdr + 8, 64);
	if (ch.plen > hdr_total) {
		uint8_t pad[256];

		if (ch.pdo < hdr_total || ch.pdo - hdr_total > sizeof(pad) ||
		    rd(c->fd, pad, ch.pdo - hdr_total) < 0)
			return -1;
		*icd_len = ch.plen - ch.pdo - ((ch.flags & NVME_TCP_FLAG_DDGSTF) ? 4 : 0);
		if (*icd_len > 1024 * 1024 || rd(c->fd, icd, *icd_len) < 0)
			return -1;
		if (ch.flags & NVME_TCP_FLAG_DDGSTF) {
			uint8_t d[4];

			if (rd(c->fd, d, 4) < 0 || nvme_get_le32(d) != nvme_tcp_digest(icd, *icd_len))
				return -1;
		}
	}
	return 0;
}

static void *conn_main(void *arg)
{
	struct fake_conn *c = arg;
	struct fake_target *t = c->t;
	uint8_t *icd = malloc(1024 * 1024 + 64);

	for (;;) {
		struct nvme_tcp_ch ch;

		if (rd(c->fd, &ch, sizeof(ch)) < 0)
			break;
		if (ch.pdu_type == NVME_TCP_PDU_IC_REQ) {
			struct nvme_tcp_ic_req req;
			struct nvme_tcp_ic_resp resp;

			memcpy(&req, &ch, 8);
			if (ch.hlen != 128 || ch.plen != 128 || rd(c->fd, (uint8_t *)&req + 8, 120) < 0)
				break;
			if (t->mode == FAKE_NO_ICRESP) {
				char x;

				(void)!recv(c->fd, &x, 1, 0); /* wait for the host to give up */
				break;
			}
			memset(&resp, 0, sizeof(resp));
			resp.ch.pdu_type = NVME_TCP_PDU_IC_RESP;
			resp.ch.hlen = 128;
			resp.ch.plen = 128;
			resp.dgst = req.dgst;
			resp.cpda = t->cpda;
			resp.maxh2cdata = t->maxh2cdata;
			c->hdgst = req.dgst & NVME_TCP_DGST_HDR;
			c->ddgst = req.dgst & NVME_TCP_DGST_DATA;
			if (req.dgst) {
				pthread_mutex_lock(&t->lock);
				t->digests_seen = true;
				pthread_mutex_unlock(&t->lock);
			}
			if (wr(c->fd, &resp, sizeof(resp)) < 0)
				break;
			continue;
		}
		{
			struct nvme_sqe sqe;
			uint32_t icd_len = 0;

			if (read_capsule_rest(c, &ch, &sqe, icd, &icd_len) < 0)
				break;
			if (handle_capsule(c, &sqe, icd_len ? icd : NULL, icd_len) < 0)
				break;
		}
		while (c->npend > 0) {
			struct pending pe = c->pend[0];
			int rc;

			memmove(&c->pend[0], &c->pend[1], sizeof(c->pend[0]) * (size_t)(c->npend - 1));
			c->npend--;
			rc = handle_capsule(c, &pe.sqe, pe.icd_len ? pe.icd : NULL, pe.icd_len);
			free(pe.icd);
			if (rc < 0)
				goto out;
		}
	}
out:
	for (int i = 0; i < c->npend; i++)
		free(c->pend[i].icd);
	free(icd);
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&t->lock);
	c->done = true;
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void reap(struct fake_target *t, bool all)
{
	int j = 0;

	for (int i = 0; i < t->nconns; i++) {
		struct fake_conn *c = t->conns[i];
		bool done;

		if (all)
			shutdown(c->fd, SHUT_RDWR);
		pthread_mutex_lock(&t->lock);
		done = c->done;
		pthread_mutex_unlock(&t->lock);
		if (all || done) {
			pthread_join(c->thread, NULL);
			close(c->fd);
			free(c);
		} else {
			t->conns[j++] = c;
		}
	}
	t->nconns = j;
}

static void *accept_main(void *arg)
{
	struct fake_target *t = arg;

	for (;;) {
		int fd = accept(t->lfd, NULL, NULL), one = 1;
		struct fake_conn *c;
		bool stop;

		if (fd < 0)
			break;
		pthread_mutex_lock(&t->lock);
		stop = t->stop;
		pthread_mutex_unlock(&t->lock);
		reap(t, false);
		if (stop || t->nconns == FAKE_MAX_CONNS) {
			close(fd);
			break;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		c->t = t;
		c->fd = fd;
		t->conns[t->nconns++] = c;
		pthread_create(&c->thread, NULL, conn_main, c);
	}
	return NULL;
}

int fake_target_start(struct fake_target *t, uint64_t nblocks, uint32_t bs)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->bs = bs;
	t->nblocks = nblocks;
	t->disk = calloc(nblocks, bs);
	t->maxh2cdata = 4096;
	t->ioccsz = 4;
	t->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(t->lfd, 16) < 0)
		return -errno;
	getsockname(t->lfd, (struct sockaddr *)&sa, &sl);
	t->port = ntohs(sa.sin_port);
	pthread_create(&t->accept_thread, NULL, accept_main, t);
	return 0;
}

void fake_target_stop(struct fake_target *t)
{
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_mutex_unlock(&t->lock);
	shutdown(t->lfd, SHUT_RDWR);
	pthread_join(t->accept_thread, NULL);
	close(t->lfd);
	reap(t, true);
	free(t->disk);
	pthread_mutex_destroy(&t->lock);
}
