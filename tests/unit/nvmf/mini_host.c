/* mini_host.c: see mini_host.h. */
#include "mini_host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"

int mh_open(struct mh *h, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int one = 1;

	memset(h, 0, sizeof(*h));
	h->next_cid = 1;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -errno;
	setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = -errno;
		close(h->fd);
		h->fd = -1;
		return e;
	}
	return 0;
}

void mh_close(struct mh *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

int mh_send_all(struct mh *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(h->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(struct mh *h, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(h->fd, p, len, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mh_icreq(struct mh *h, bool hd, bool dd)
{
	struct nvme_tcp_ic_req ic;
	struct nvme_tcp_ic_resp rsp;
	int rc;

	memset(&ic, 0, sizeof(ic));
	ic.ch.pdu_type = NVME_TCP_PDU_IC_REQ;
	ic.ch.hlen = 128;
	ic.ch.plen = 128;
	ic.dgst = (uint8_t)((hd ? NVME_TCP_DGST_HDR : 0) | (dd ? NVME_TCP_DGST_DATA : 0));
	rc = mh_send_all(h, &ic, sizeof(ic));
	if (rc)
		return rc;
	rc = recv_all(h, &rsp, sizeof(rsp));
	if (rc)
		return rc;
	if (rsp.ch.pdu_type != NVME_TCP_PDU_IC_RESP || rsp.ch.plen != 128 || rsp.pfv != 0 || rsp.cpda != 0 ||
	    rsp.dgst != ic.dgst || rsp.maxh2cdata < 4096 || rsp.maxh2cdata % 4)
		return -EPROTO;
	h->hd = hd;
	h->dd = dd;
	return 0;
}

int mh_recv_pdu(struct mh *h, uint8_t *hdr, uint8_t *data, size_t cap, uint32_t *data_len)
{
	struct nvme_tcp_ch *ch = (void *)hdr;
	uint32_t hd, dd, dlen;
	int rc;

	*data_len = 0;
	rc = recv_all(h, hdr, 8);
	if (rc)
		return rc;
	if (ch->hlen < 8 || ch->hlen > 128 || ch->plen < ch->hlen)
		return -EPROTO;
	hd = (ch->flags & NVME_TCP_FLAG_HDGSTF) ? 4 : 0;
	if (ch->pdu_type == NVME_TCP_PDU_C2H_TERM_REQ) {
		rc = recv_all(h, hdr + 8, ch->plen - 8);
		return rc ? rc : ch->pdu_type;
	}
	rc = recv_all(h, hdr + 8, ch->hlen - 8 + hd);
	if (rc)
		return rc;
	if (hd && crc32c(0, hdr, ch->hlen) != nvme_get_le32(hdr + ch->hlen))
		return -EBADMSG;
	if (ch->plen == ch->hlen + hd)
		return ch->pdu_type;
	dd = (ch->flags & NVME_TCP_FLAG_DDGSTF) ? 4 : 0;
	if (ch->pdo < ch->hlen + hd || ch->plen < ch->pdo + dd)
		return -EPROTO;
	uint8_t pad[256];
	if (ch->pdo > ch->hlen + hd) {
		rc = recv_all(h, pad, ch->pdo - ch->hlen - hd);
		if (rc)
			return rc;
	}
	dlen = ch->plen - ch->pdo - dd;
	if (dlen > cap)
		return -EMSGSIZE;
	rc = recv_all(h, data, dlen);
	if (rc)
		return rc;
	if (dd) {
		uint8_t d[4];
		rc = recv_all(h, d, 4);
		if (rc)
			return rc;
		if (crc32c(0, data, dlen) != nvme_get_le32(d))
			return -EBADMSG;
	}
	*data_len = dlen;
	return ch->pdu_type;
}

size_t mh_build_capsule(struct mh *h, const struct nvme_sqe *sqe, const void *icd, uint32_t icd_len, uint8_t *out)
{
	struct nvme_tcp_capsule_cmd *cc = (void *)out;
	uint32_t hd = h->hd ? 4 : 0, dd = (h->dd && icd_len) ? 4 : 0;
	size_t len = 72 + hd;

	memset(cc, 0, sizeof(*cc));
	cc->ch.pdu_type = NVME_TCP_PDU_CAPSULE_CMD;
	cc->ch.flags = (uint8_t)((hd ? NVME_TCP_FLAG_HDGSTF : 0) | (dd ? NVME_TCP_FLAG_DDGSTF : 0));
	cc->ch.hlen = 72;
	cc->sqe = *sqe;
	if (icd_len) {
		cc->ch.pdo = (uint8_t)(72 + hd);
		cc->sqe.sgl1.id = NVME_SGL_ID_ICD;
		cc->sqe.sgl1.address = 0;
		cc->sqe.sgl1.length = icd_len;
	}
	cc->ch.plen = (uint32_t)(72 + hd + icd_len + dd);
	if (hd)
		nvme_put_le32(out + 72, crc32c(0, out, 72));
	if (icd_len) {
		memcpy(out + len, icd, icd_len);
		len += icd_len;
		if (dd) {
			nvme_put_le32(out + len, crc32c(0, icd, icd_len));
			len += 4;
		}
	}
	return len;
}

static int send_h2c(struct mh *h, uint16_t cid, uint16_t ttag, const uint8_t *data, uint32_t off, uint32_t len,
		    uint32_t chunk)
{
	uint8_t pdu[64];

	while (len) {
		uint32_t n = chunk && chunk < len ? chunk : len;
		struct nvme_tcp_data_hdr *d = (void *)pdu;
		uint32_t hd = h->hd ? 4 : 0, dd = h->dd ? 4 : 0;
		int rc;

		memset(pdu, 0, sizeof(pdu));
		d->ch.pdu_type = NVME_TCP_PDU_H2C_DATA;
		d->ch.flags = (uint8_t)((hd ? NVME_TCP_FLAG_HDGSTF : 0) | (dd ? NVME_TCP_FLAG_DDGSTF : 0) |
					(n == len ? NVME_TCP_FLAG_LAST_PDU : 0));
		d->ch.hlen = 24;
		d->ch.pdo = (uint8_t)(24 + hd);
		d->ch.plen = 24 + hd + n + dd;
		d->cccid = cid;
		d->ttag = ttag;
		d->datao = off;
		d->datal = n;
		if (hd)
			nvme_put_le32(pdu + 24, crc32c(0, pdu, 24));
		rc = mh_send_all(h, pdu, 24 + hd);
		if (!rc)
			rc = mh_send_all(h, data + off, n);
		if (!rc && dd) {
			uint8_t c[4];
			nvme_put_le32(c, crc32c(0, data + off, n));
			rc = mh_send_all(h, c, 4);
		}
		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int mh_cmd(struct mh *h, struct nvme_sqe *sqe, const void *icd, uint32_t icd_len, const void *h2c,
	   uint32_t h2c_len, uint32_t chunk, void *rdata, uint32_t rcap, struct nvme_cqe *cqe)
{
	static uint8_t out[72 + 4 + 8192 + 4];
	uint8_t hdr[160];
	uint32_t got = 0;
	size_t len;
	int rc;

	if (icd_len > 8192)
		return -EINVAL;
	sqe->cid = h->next_cid++;
	sqe->flags |= NVME_SQE_FLAGS_PSDT_SGL;
	if (!icd_len) {
		sqe->sgl1.id = NVME_SGL_ID_TRANSPORT;
		sqe->sgl1.length = h2c_len ? h2c_len : rcap;
	}
	len = mh_build_capsule(h, sqe, icd, icd_len, out);
	rc = mh_send_all(h, out, len);
	if (rc)
		return rc;
	for (;;) {
		uint32_t dl = 0;
		uint8_t *dst = rdata ? (uint8_t *)rdata + got : NULL;
		int t = mh_recv_pdu(h, hdr, dst, rdata ? rcap - got : 0, &dl);
		if (t < 0)
			return t;
		if (t == NVME_TCP_PDU_C2H_DATA) {
			got += dl;
			const struct nvme_tcp_data_hdr *d = (const void *)hdr;
			if (d->ch.flags & NVME_TCP_FLAG_SUCCESS) {
				memset(cqe, 0, sizeof(*cqe));
				cqe->cid = sqe->cid;
				return 0;
			}
			continue;
		}
		if (t == NVME_TCP_PDU_R2T) {
			const struct nvme_tcp_r2t *r = (const void *)hdr;
			if (!h2c || r->r2to + r->r2tl > h2c_len)
				return -EPROTO;
			rc = send_h2c(h, r->cccid, r->ttag, h2c, r->r2to, r->r2tl, chunk);
			if (rc)
				return rc;
			continue;
		}
		if (t == NVME_TCP_PDU_CAPSULE_RESP) {
			memcpy(cqe, hdr + 8, sizeof(*cqe));
			if (cqe->cid != sqe->cid)
				return -EPROTO;
			return 0;
		}
		if (t == NVME_TCP_PDU_C2H_TERM_REQ)
			return -ECONNABORTED;
		return -EPROTO;
	}
}

int mh_connect(struct mh *h, uint16_t qid, uint16_t cntlid, const char *subnqn, const char *hostnqn,
	       uint32_t kato, struct nvme_cqe *cqe)
{
	struct nvme_fabrics_connect_cmd cmd;
	struct nvme_fabrics_connect_data d;

	memset(&cmd, 0, sizeof(cmd));
	memset(&d, 0, sizeof(d));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_CONNECT;
	cmd.qid = qid;
	cmd.sqsize = h->sqsize ? h->sqsize : 31;
	cmd.kato = kato;
	for (int i = 0; i < 16; i++)
		d.hostid[i] = (uint8_t)(i + 1);
	d.cntlid = cntlid;
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", subnqn);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", hostnqn);
	return mh_cmd(h, (struct nvme_sqe *)&cmd, &d, sizeof(d), NULL, 0, 0, NULL, 0, cqe);
}

int mh_prop_set(struct mh *h, uint32_t ofst, uint32_t value, struct nvme_cqe *cqe)
{
	struct nvme_fabrics_prop_set_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_PROPERTY_SET;
	cmd.ofst = ofst;
	cmd.value = value;
	return mh_cmd(h, (struct nvme_sqe *)&cmd, NULL, 0, NULL, 0, 0, NULL, 0, cqe);
}

int mh_prop_get(struct mh *h, uint32_t ofst, bool size8, uint64_t *value)
{
	struct nvme_fabrics_prop_get_cmd cmd;
	struct nvme_cqe cqe;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_OPC_FABRICS;
	cmd.fctype = NVME_FCTYPE_PROPERTY_GET;
	cmd.attrib = size8 ? 1 : 0;
	cmd.ofst = ofst;
	rc = mh_cmd(h, (struct nvme_sqe *)&cmd, NULL, 0, NULL, 0, 0, NULL, 0, &cqe);
	if (rc)
		return rc;
	if (!NVME_STATUS_IS_OK(cqe.status))
		return -EIO;
	*value = cqe.dw0 | ((uint64_t)cqe.dw1 << 32);
	return 0;
}

int mh_admin_up(struct mh *h, int port, const char *subnqn, const char *hostnqn, uint32_t kato,
		uint16_t *cntlid)
{
	struct nvme_cqe cqe;
	int rc;

	rc = mh_open(h, port);
	if (!rc)
		rc = mh_icreq(h, false, false);
	if (!rc)
		rc = mh_connect(h, 0, 0xFFFF, subnqn, hostnqn, kato, &cqe);
	if (rc)
		return rc;
	if (!NVME_STATUS_IS_OK(cqe.status))
		return cqe.status;
	if (cntlid)
		*cntlid = (uint16_t)cqe.dw0;
	rc = mh_prop_set(h, NVME_REG_CC, NVME_CC_ENABLE_VALUE, &cqe);
	if (rc)
		return rc;
	return NVME_STATUS_IS_OK(cqe.status) ? 0 : cqe.status;
}

int mh_wait_closed(struct mh *h, int timeout_ms)
{
	uint8_t buf[4096];
	struct pollfd p = { .fd = h->fd, .events = POLLIN };
	uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int64_t left = (int64_t)(end - clock_mono_ms());
		if (left <= 0)
			return 0;
		int r = poll(&p, 1, (int)left);
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		ssize_t n = recv(h->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return 1;
		if (n < 0 && errno == ECONNRESET)
			return 1;
	}
}
