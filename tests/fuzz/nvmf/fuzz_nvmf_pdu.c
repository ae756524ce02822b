/*
 * fuzz_nvmf_pdu.c: libFuzzer target for the NVMe/TCP target: the PDU parser
 * (src/nvmf/tcp.c) and command dispatch (ctrlr.c, io.c, discovery.c).
 *
 * Input byte 0 picks a mode, byte 1 a chunk size; the rest is what a host
 * sends on one connection (a socketpair end handed to nvmf_conn_create):
 *   mode 0: raw bytes from the first byte of the connection;
 *   mode 1: after a valid ICReq + admin Connect + CC.EN (admin commands);
 *   mode 2: after a valid ICReq + I/O Connect to a controller that lives
 *           across inputs (I/O commands against a malloc namespace);
 *   mode 3: like 1 but to the discovery subsystem.
 * Bytes are fed in chunks of 1..256 to exercise PDU reassembly; bdev
 * completions and deferred sends run after each chunk. Every input ends by
 * closing the connection, so nothing may leak or crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "nvme/nvme.h"
#include "nvmf/nvmf.h"
#include "nvmf/nvmf_internal.h"

#define SUBNQN "nqn.2016-06.io.spdk:fuzz"
#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"

static struct ev_loop *loop;
static struct nvmf_tgt *tgt;
static struct nvmf_conn *admin; /* persistent admin queue for mode 2 */
static int admin_peer = -1;
static uint16_t admin_cntlid;

static void drain(int fd)
{
	uint8_t buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void spin(int peer)
{
	for (int i = 0; i < 4; i++) {
		ev_loop_run_once(loop, 0);
		if (peer >= 0)
			drain(peer);
	}
}

static size_t build_icreq(uint8_t *p)
{
	struct nvme_tcp_ic_req *ic = (void *)p;

	memset(ic, 0, sizeof(*ic));
	ic->ch.pdu_type = NVME_TCP_PDU_IC_REQ;
	ic->ch.hlen = 128;
	ic->ch.plen = 128;
	return 128;
}

static size_t build_connect(uint8_t *p, const char *subnqn, uint16_t qid, uint16_t cntlid)
{
	struct nvme_tcp_capsule_cmd *cc = (void *)p;
	struct nvme_fabrics_connect_cmd *cmd = (void *)&cc->sqe;
	struct nvme_fabrics_connect_data *d = (void *)(p + 72);

	memset(p, 0, 72 + 1024);
	cc->ch.pdu_type = NVME_TCP_PDU_CAPSULE_CMD;
	cc->ch.hlen = 72;
	cc->ch.pdo = 72;
	cc->ch.plen = 72 + 1024;
	cmd->opc = NVME_OPC_FABRICS;
	cmd->fctype = NVME_FCTYPE_CONNECT;
	cmd->cid = 1;
	cmd->sgl1.id = NVME_SGL_ID_ICD;
	cmd->sgl1.length = 1024;
	cmd->qid = qid;
	cmd->sqsize = 31;
	d->hostid[0] = 1;
	d->cntlid = cntlid;
	snprintf(d->subnqn, sizeof(d->subnqn), "%s", subnqn);
	snprintf(d->hostnqn, sizeof(d->hostnqn), "%s", HOSTNQN);
	return 72 + 1024;
}

static size_t build_enable(uint8_t *p)
{
	struct nvme_tcp_capsule_cmd *cc = (void *)p;
	struct nvme_fabrics_prop_set_cmd *cmd = (void *)&cc->sqe;

	memset(p, 0, 72);
	cc->ch.pdu_type = NVME_TCP_PDU_CAPSULE_CMD;
	cc->ch.hlen = 72;
	cc->ch.plen = 72;
	cmd->opc = NVME_OPC_FABRICS;
	cmd->fctype = NVME_FCTYPE_PROPERTY_SET;
	cmd->cid = 2;
	cmd->ofst = NVME_REG_CC;
	cmd->value = NVME_CC_ENABLE_VALUE;
	cmd->sgl1.id = NVME_SGL_ID_TRANSPORT;
	return 72;
}

static struct nvmf_conn *open_conn(int *peer)
{
	int sv[2];
	struct nvmf_conn *c = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
		return NULL;
	if (nvmf_conn_create(tgt, sv[0], NULL, NULL, &c) != 0) {
		close(sv[1]);
		return NULL;
	}
	*peer = sv[1];
	return c;
}

/* The target frees a connection it closed during spin(): look it up. */
static bool conn_alive(const struct nvmf_conn *c)
{
	for (const struct nvmf_conn *x = tgt->conns; x; x = x->next)
		if (x == c)
			return !x->closed;
	return false;
}

static void init(void)
{
	struct nvmf_subsystem *s;
	struct nvmf_subsystem_opts so = { .allow_any_host = true };
	uint8_t pre[2048];
	size_t n;

	log_level_set(LOG_LEVEL_ERROR);
	if (ev_loop_create(&loop) || bdev_module_init(loop) || nvmf_tgt_create(loop, &tgt) ||
	    nvmf_transport_create(tgt, "TCP", NULL, NULL) || nvmf_subsystem_create(tgt, SUBNQN, &so, &s) ||
	    bdev_malloc_create("Malloc0", NULL, 256, 512, NULL) ||
	    nvmf_subsystem_ns_add(s, "Malloc0", NULL, NULL)) {
		fprintf(stderr, "fuzz init failed\n");
		_exit(1);
	}
	admin = open_conn(&admin_peer);
	if (!admin)
		_exit(1);
	n = build_icreq(pre);
	n += build_connect(pre + n, SUBNQN, 0, 0xFFFF);
	n += build_enable(pre + n);
	nvmf_conn_input(admin, pre, n);
	spin(admin_peer);
	if (!admin->ctrlr) {
		fprintf(stderr, "fuzz init: admin connect failed\n");
		_exit(1);
	}
	admin_cntlid = admin->ctrlr->cntlid;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pre[2048];
	struct nvmf_conn *c;
	int peer = -1;
	size_t n = 0, chunk;
	uint8_t mode;

	if (!loop)
		init();
	if (size < 2)
		return 0;
	mode = data[0] & 3;
	chunk = (size_t)data[1] + 1;
	data += 2;
	size -= 2;
	c = open_conn(&peer);
	if (!c)
		return 0;
	if (mode == 1 || mode == 3) {
		n = build_icreq(pre);
		n += build_connect(pre + n, mode == 1 ? SUBNQN : NVMF_DISCOVERY_NQN, 0, 0xFFFF);
		n += build_enable(pre + n);
	} else if (mode == 2) {
		n = build_icreq(pre);
		n += build_connect(pre + n, SUBNQN, 1, admin_cntlid);
	}
	if (n && conn_alive(c)) {
		nvmf_conn_input(c, pre, n);
		spin(peer);
	}
	for (size_t off = 0; off < size && conn_alive(c); off += chunk) {
		nvmf_conn_input(c, data + off, COMMON_MIN(chunk, size - off));
		spin(peer);
	}
	if (conn_alive(c))
		nvmf_conn_close(c, "fuzz input done");
	spin(peer);
	close(peer);
	return 0;
}
