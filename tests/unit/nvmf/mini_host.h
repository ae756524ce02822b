/*
 * mini_host.h: a deliberately small, blocking NVMe/TCP initiator for the
 * nvmf unit tests. Unlike src/nvme it lets a test send exactly the bytes it
 * wants (fragmented, coalesced, malformed, R2T-driven writes, held AERs).
 * Runs on a host thread; never touches cmocka (results are returned).
 */
#ifndef NVMF_TEST_MINI_HOST_H
#define NVMF_TEST_MINI_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvme/nvme.h"

struct mh {
	int fd;
	bool hd, dd;
	uint16_t next_cid;
	uint16_t sqsize; /* 0's based SQSIZE for mh_connect (0: 31); set after mh_open */
};

/* TCP connect to 127.0.0.1:port with a 5 s receive timeout. 0 or -errno. */
int mh_open(struct mh *h, int port);
void mh_close(struct mh *h);
/* ICReq with digest bits; reads and checks ICResp. */
int mh_icreq(struct mh *h, bool hd, bool dd);
int mh_send_all(struct mh *h, const void *buf, size_t len);
/* Receives one PDU: header (hlen + hdgst) into hdr (>= 160 bytes), data into
 * data (capacity cap) . Returns the PDU type or -errno (-ECONNRESET on EOF). */
int mh_recv_pdu(struct mh *h, uint8_t *hdr, uint8_t *data, size_t cap, uint32_t *data_len);
/* Builds a CapsuleCmd PDU (+ICD) into out; returns its length. */
size_t mh_build_capsule(struct mh *h, const struct nvme_sqe *sqe, const void *icd, uint32_t icd_len, uint8_t *out);
/* Sends sqe (with in-capsule data if icd), answers R2Ts from h2c (h2c_len
 * bytes, split into chunk-sized H2CData PDUs), collects C2H data into rdata
 * and returns the CQE. 0 or -errno. */
int mh_cmd(struct mh *h, struct nvme_sqe *sqe, const void *icd, uint32_t icd_len, const void *h2c,
	   uint32_t h2c_len, uint32_t chunk, void *rdata, uint32_t rcap, struct nvme_cqe *cqe);
/* Connect (qid, cntlid 0xFFFF for admin) with the given NQNs; *cqe out. */
int mh_connect(struct mh *h, uint16_t qid, uint16_t cntlid, const char *subnqn, const char *hostnqn,
	       uint32_t kato, struct nvme_cqe *cqe);
int mh_prop_set(struct mh *h, uint32_t ofst, uint32_t value, struct nvme_cqe *cqe);
int mh_prop_get(struct mh *h, uint32_t ofst, bool size8, uint64_t *value);
/* ICReq + admin connect + enable. Returns the connect status (0 = ok) or -errno. */
int mh_admin_up(struct mh *h, int port, const char *subnqn, const char *hostnqn, uint32_t kato,
		uint16_t *cntlid);
/* 1 if the peer closed the connection within timeout_ms (after draining any
 * pending PDUs), 0 if still open, -errno on error. */
int mh_wait_closed(struct mh *h, int timeout_ms);

#endif
