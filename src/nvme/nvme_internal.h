/*
 * nvme_internal.h: private structures of the NVMe/TCP host library, shared by
 * nvme_qpair.c (one TCP connection = one queue pair: PDU send/receive, command
 * slots, R2T/H2CData, C2HData) and nvme_ctrlr.c (controller bring-up, admin
 * commands, the blocking API). Unit tests include it to drive a qpair over a
 * socketpair.
 */
#ifndef DE_NVME_INTERNAL_H
#define DE_NVME_INTERNAL_H

#include "nvme/nvme.h"

#include <sys/uio.h>

#define NVME_MOD "nvme"
#define NVME_ADMIN_QUEUE_SIZE 32
#define NVME_DEFAULT_IO_QUEUE_SIZE 128
#define NVME_DEFAULT_TIMEOUT_MS 10000
#define NVME_RBUF_SIZE (64 * 1024)
#define NVME_SLOT_NONE 0xFFFFu

/* One command slot; CID == slot index. Header storage lives here so that the
 * send queue can point at it until the bytes are on the wire. */
struct nvme_cmd {
	/* capsule header and its digest must stay adjacent (one iovec) */
	struct nvme_tcp_capsule_cmd cap;
	uint8_t cap_hdgst[4];
	uint8_t cap_ddgst[4];
	/* current H2CData PDU header + digest (adjacent) */
	struct nvme_tcp_data_hdr h2c;
	uint8_t h2c_hdgst[4];
	uint8_t h2c_ddgst[4];
	nvme_cmd_cb cb;
	void *arg;
	uint8_t *buf;
	uint32_t len;
	uint8_t xfer;     /* NVME_XFER_* */
	bool active;
	bool r2t_active;  /* an R2T is being served */
	bool icd;         /* write data went in-capsule (no R2T allowed) */
	uint16_t send_refs; /* send-queue entries still pointing at this slot */
	uint16_t ttag;
	uint32_t c2h_done;  /* bytes of C2H data received */
	uint32_t h2c_next;  /* next offset to send for the current R2T */
	uint32_t h2c_end;   /* end of the current R2T */
};

/* Send-queue entry metadata, parallel to the iovec array. */
struct nvme_iov_meta {
	uint16_t slot;   /* NVME_SLOT_NONE or the slot the bytes belong to */
	bool h2c_end;    /* last iovec of an H2CData PDU */
};

enum nvme_rstate {
	NVME_RSTATE_HDR = 0,
	NVME_RSTATE_PAD,
	NVME_RSTATE_DATA,
	NVME_RSTATE_DDGST,
};

struct nvme_qpair {
	int fd;
	uint16_t qid;
	uint16_t num_slots;
	struct nvme_cmd *slots;
	uint16_t *free_stack;
	uint16_t nfree;
	uint32_t outstanding;
	struct nvme_ctrlr *ctrlr; /* back pointer, may be NULL (tests) */

	/* negotiated in ICReq/ICResp */
	bool hdgst;
	bool ddgst;
	uint8_t cpda;
	uint32_t maxh2cdata;
	uint32_t icd_max; /* largest write sent in-capsule */

	bool dead;
	int dead_err;

	/* send queue */
	struct iovec *iov;
	struct nvme_iov_meta *meta;
	uint32_t iov_head;
	uint32_t iov_tail;
	uint32_t iov_cap;

	/* receive side */
	uint8_t *rbuf;
	uint32_t rpos;
	uint32_t rlen;
	enum nvme_rstate rstate;
	uint16_t rslot;
	uint8_t rflags;
	uint32_t rpad_left;
	uint32_t rdata_left;
	uint32_t rdata_off;
	uint32_t rcrc;
	uint8_t rddgst[4];
	uint32_t rddgst_have;

	/* statistics */
	uint64_t completions;
};

/* Allocates a qpair around a connected socket (ownership of fd passes to the
 * qpair, closed by nvme_qpair_destroy). num_slots commands may be in flight. */
int nvme_qpair_create(int fd, uint16_t qid, uint16_t num_slots, struct nvme_qpair **out);
void nvme_qpair_destroy(struct nvme_qpair *qp);
/* Exchanges ICReq/ICResp (blocking, with timeout). */
int nvme_qpair_icreq(struct nvme_qpair *qp, bool hdgst, bool ddgst, uint32_t timeout_ms);
/* Marks the qpair dead: closes nothing yet, completes all active commands with
 * NVME_QPAIR_STATUS_ABORTED. */
void nvme_qpair_fail(struct nvme_qpair *qp, int err);
/* Opens a TCP connection with a timeout. Returns fd or -errno. */
int nvme_tcp_connect_fd(const char *traddr, const char *trsvcid, uint32_t timeout_ms);
/* Waits for one submitted command (cb set by the caller to nvme_sync_cb). */
struct nvme_sync {
	bool done;
	uint16_t status;
	struct nvme_cqe cqe;
};
void nvme_sync_cb(void *arg, uint16_t status, const struct nvme_cqe *cqe);
/* Polls until sync->done or timeout; on timeout the qpair is failed. */
int nvme_qpair_wait(struct nvme_qpair *qp, struct nvme_sync *sync, uint32_t timeout_ms);
/* Fabrics Connect on a qpair (blocking). Returns 0, -EIO (status in *status), ... */
int nvme_qpair_fabrics_connect(struct nvme_qpair *qp, uint16_t sqsize, uint32_t kato_ms,
			       uint16_t cntlid, const uint8_t hostid[16], const char *subnqn,
			       const char *hostnqn, uint32_t timeout_ms, uint16_t *status,
			       uint16_t *cntlid_out);

/* Block size of a namespace from the controller's cache (looked up with
 * Identify on first use); 0 if unknown. */
uint32_t nvme_ctrlr_ns_block_size(struct nvme_ctrlr *ctrlr, uint32_t nsid);

#endif /* DE_NVME_INTERNAL_H */
