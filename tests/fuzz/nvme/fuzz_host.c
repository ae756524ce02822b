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

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_done;

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
	static uint8_t rbuf[16384], wbuf[16384];
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
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		goto out;
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
