/*
 * fuzz_host.c: libFuzzer target for the host side of NVMe/TCP (src/nvme):
 * the input is what a hostile controller sends back on a queue pair that has
 * a read, an R2T-driven write, a write zeroes and a flush outstanding (and,
 * when the first byte says so, the ICResp before them). The library must
 * fail the queue cleanly (callbacks run once, no crash, no leak).
 */
#include "common/common.h"
#include "nvme/nvme.h"
#include "nvme/nvme_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_done;

/* Structured mode: turns input records into well-formed-looking PDUs so the
 * fuzzer reaches deep parser states. Record: kind, flags, cid, corrupt, datao
 * (2 bytes), datal (2 bytes); then datal payload bytes (zero-filled if short). */
static size_t build_stream(const uint8_t *in, size_t n, bool hdgst, bool ddgst, uint8_t *out,
			   size_t cap)
{
	static const uint8_t kinds[] = { NVME_TCP_PDU_CAPSULE_RESP, NVME_TCP_PDU_C2H_DATA,
					 NVME_TCP_PDU_R2T, NVME_TCP_PDU_C2H_TERM_REQ, 0x0F };
	size_t o = 0;

	while (n >= 8) {
		uint8_t kind = kinds[in[0] % sizeof(kinds)], flags = in[1], corrupt = in[3];
		uint16_t cid = in[2] % 9;
		uint32_t datao = nvme_get_le16(in + 4), datal = nvme_get_le16(in + 6) % 9000;
		uint8_t hdr[24];
		uint32_t hl = 24 + (hdgst ? 4 : 0), pl;
		bool has_data = kind == NVME_TCP_PDU_C2H_DATA;

		in += 8;
		n -= 8;
		if (!has_data)
			datal = kind == NVME_TCP_PDU_R2T ? datal : 0;
		memset(hdr, 0, sizeof(hdr));
		hdr[0] = kind;
		hdr[1] = (uint8_t)((flags & 0x0C) | (hdgst ? NVME_TCP_FLAG_HDGSTF : 0) |
				   (ddgst && has_data && datal ? NVME_TCP_FLAG_DDGSTF : 0));
		hdr[2] = 24;
		hdr[3] = has_data ? (uint8_t)hl : 0;
		pl = hl + (has_data ? datal + ((hdr[1] & NVME_TCP_FLAG_DDGSTF) ? 4 : 0) : 0);
		if (corrupt & 1)
			pl ^= corrupt;
		nvme_put_le32(hdr + 4, pl);
		nvme_put_le16(hdr + 8, cid);
		nvme_put_le16(hdr + 20, cid); /* cqe.cid for CapsuleResp */
		if (kind == NVME_TCP_PDU_CAPSULE_RESP)
			nvme_put_le16(hdr + 22, (uint16_t)(corrupt & 2 ? 0x0004 : 0)); /* status */
		else {
			nvme_put_le32(hdr + 12, datao);
			nvme_put_le32(hdr + 16, datal);
		}
		if (o + sizeof(hdr) + 4 + datal + 4 > cap)
			break;
		memcpy(out + o, hdr, sizeof(hdr));
		o += sizeof(hdr);
		if (hdgst) {
			nvme_put_le32(out + o, nvme_tcp_digest(hdr, 24) ^ (corrupt & 4 ? 1u : 0u));
			o += 4;
		}
		if (has_data) {
			size_t take = datal < n ? datal : n;

			memset(out + o, 0, datal);
			memcpy(out + o, in, take);
			in += take;
			n -= take;
			if (hdr[1] & NVME_TCP_FLAG_DDGSTF) {
				nvme_put_le32(out + o + datal,
					      nvme_tcp_digest(out + o, datal) ^ (corrupt & 8 ? 1u : 0u));
				o += 4;
			}
			o += datal;
		}
	}
	return o;
}

static void cb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	(void)arg;
	(void)status;
	(void)cqe;
	g_done++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t rbuf[16384], wbuf[16384], stream[1 << 20];
	struct nvme_qpair *qp = NULL;
	int sv[2], submitted = 0;
	uint8_t mode;

	if (size < 1 || size > 65536)
		return 0;
	log_level_set(LOG_LEVEL_ERROR);
	mode = data[0];
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	{
		int big = 1 << 20;

		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	if (nvme_qpair_create(sv[0], 1, 8, &qp) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	g_done = 0;
	if (mode & 1) {
		size_t n = size < 128 ? size : 128;

		if (write(sv[1], data, n) != (ssize_t)n)
			goto out;
		data += n;
		size -= n;
		if (nvme_qpair_icreq(qp, mode & 2, mode & 4, 0) < 0)
			goto out;
	} else {
		qp->hdgst = mode & 2;
		qp->ddgst = mode & 4;
		qp->cpda = (mode >> 3) & 3;
		qp->maxh2cdata = 4096u << ((mode >> 5) & 3);
	}
	qp->icd_max = (mode & 0x80) ? 4096 : 0;
	if (nvme_qpair_read(qp, 1, 0, 16, rbuf, cb, NULL) == 0)
		submitted++;
	if (nvme_qpair_write(qp, 1, 0, 16, wbuf, cb, NULL) == 0)
		submitted++;
	if (nvme_qpair_write_zeroes(qp, 1, 0, 65536, cb, NULL) == 0)
		submitted++;
	if (nvme_qpair_flush_cmd(qp, 1, cb, NULL) == 0)
		submitted++;
	if (mode & 0x40) {
		size = build_stream(data, size, qp->hdgst, qp->ddgst, stream, sizeof(stream));
		data = stream;
	}
	/* feed without blocking: the host consumes while we write */
	for (size_t off = 0, round = 0; off < size && round < 4096; round++) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		char sink[65536];

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		if (nvme_qpair_poll(qp, 0) < 0)
			break;
		while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
	shutdown(sv[1], SHUT_WR); /* EOF after the input */
	for (int i = 0; i < 64; i++) {
		int rc = nvme_qpair_poll(qp, 0);
		char sink[65536];

		while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		if (rc < 0)
			break;
	}
out:
	nvme_qpair_destroy(qp);
	close(sv[1]);
	if (g_done != submitted)
		abort(); /* every command completes exactly once */
	return 0;
}
