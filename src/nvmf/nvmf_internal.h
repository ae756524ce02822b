/*
 * nvmf_internal.h: private structures shared by the files of src/nvmf
 * (target objects, the NVMe/TCP connection and request slots, the
 * controller). Nothing outside src/nvmf may include it, except this
 * module's own unit tests and fuzzer.
 */
#ifndef DE_NVMF_INTERNAL_H
#define DE_NVMF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "nvme/nvme.h"
#include "nvmf/nvmf.h"

#define NVMF_LOG "nvmf"

/* ------------------------------------------------------------ objects */

struct nvmf_conn;
struct nvmf_ctrlr;
struct nvmf_req;

struct nvmf_transport {
	struct nvmf_tgt *tgt;
	struct nvmf_transport *next;
	char trtype[8];
	struct nvmf_transport_opts opts;
};

/* A listening socket, shared by every subsystem naming the address. */
struct nvmf_port {
	struct nvmf_tgt *tgt;
	struct nvmf_port *next;
	struct nvmf_listen_addr addr;
	int fd;
	unsigned refs;
};

struct nvmf_listener {
	struct nvmf_listen_addr addr;
	struct nvmf_port *port;
};

struct nvmf_ns {
	struct nvmf_subsystem *subsys;
	struct nvmf_ns *next; /* by nsid ascending */
	uint32_t nsid;
	struct bdev *bdev;
	uint8_t uuid[16];
	uint8_t nguid[16];
	uint8_t eui64[8];
	bool has_eui64;
	char uuid_str[COMMON_UUID_STR_LEN];
	char nguid_str[33];
	char eui64_str[17];
};

struct nvmf_subsystem {
	struct nvmf_tgt *tgt;
	struct nvmf_subsystem *next; /* discovery first, then by NQN */
	char nqn[NVMF_NQN_MAX_LEN + 1];
	enum nvmf_subtype subtype;
	char sn[NVMF_SN_MAX_LEN + 1];
	char mn[NVMF_MN_MAX_LEN + 1];
	bool allow_any_host;
	uint32_t max_ns;
	uint16_t min_cntlid, max_cntlid, next_cntlid;
	struct nvmf_ns *ns_list;
	struct nvmf_ns **ns_arr; /* [max_ns], index nsid-1 */
	unsigned ns_count;
	struct nvmf_listener *listeners;
	unsigned n_listeners;
	char **hosts;
	unsigned n_hosts;
	struct nvmf_ctrlr *ctrlrs; /* by cntlid ascending */
	void *ctx; /* the caller's (nvmf_subsystem_ctx_set) */
};

struct nvmf_tgt {
	struct ev_loop *loop;
	struct nvmf_transport *transports;
	struct nvmf_subsystem *subsystems;
	struct nvmf_subsystem *discovery;
	struct nvmf_port *ports;
	struct nvmf_conn *conns;
	struct nvmf_stats stats;
	uint64_t disc_genctr;
	bool destroying;
	uint8_t *rbuf; /* receive scratch buffer shared by all connections */
	/* Busy polling: while I/O keeps arriving the loop does not sleep in
	 * epoll_wait (a self-renewing deferred call keeps its timeout at 0),
	 * which saves a context switch per batch on the data path. */
	uint64_t busy_until_us;
	bool spin_scheduled;
	unsigned n_reap; /* closed connections whose deferred free could not be queued */
	uint64_t busy_poll_us; /* NVMF_BUSY_POLL_US, or $DISKENGINE_NVMF_BUSY_POLL_US (0 = off) */
	struct ev_timer *housekeeping; /* closes connections that never complete Connect */
	uint64_t connect_timeout_ms;   /* NVMF_CONNECT_TIMEOUT_MS or $DISKENGINE_NVMF_CONNECT_TIMEOUT_MS */
};

/* Off by default: measured on the shared 2-core machine, spinning halved IOPS
 * whenever other processes wanted the CPU (it burns the client's time slice);
 * on a dedicated core a few hundred us can save a wakeup per batch. */
#define NVMF_BUSY_POLL_US 0
#define NVMF_CONNECT_TIMEOUT_MS 10000 /* ICReq + Connect must happen within this */

/* ------------------------------------------------- NVMe/TCP connection */

enum nvmf_req_state {
	NVMF_REQ_FREE = 0,
	NVMF_REQ_WAIT_H2C,  /* R2T sent (or queued), waiting for H2CData */
	NVMF_REQ_EXEC,      /* executing (bdev I/O in flight, AER held ...) */
	NVMF_REQ_SENDING,   /* response queued on the socket */
};

/* One element of a connection's send queue: up to 6 iovecs. */
struct nvmf_send {
	struct nvmf_send *next;
	struct iovec iov[6];
	int iovcnt;
	size_t total;
	struct nvmf_req *req; /* NULL for connection-level PDUs */
	bool queued;
	bool release;         /* free req once written */
};

struct nvmf_req {
	struct nvmf_conn *conn;
	uint16_t idx;
	enum nvmf_req_state state;
	struct nvmf_req *next_free;
	uint8_t sqe[64];
	uint8_t cqe[16];
	uint8_t *buf;       /* data buffer, reused between commands */
	uint32_t buf_cap;
	/* Zero-copy read: the C2H data is zc_data (the bdev's own memory) instead
	 * of buf; zc_ref keeps it allocated until the send is written or dropped. */
	const uint8_t *zc_data;
	struct bdev_mem *zc_ref;
	uint32_t data_len;  /* bytes transferred by this command */
	uint32_t h2c_got;   /* bytes of H2C data received */
	bool c2h;           /* controller-to-host data to send on success */
	bool bdev_inflight;
	uint8_t hdr[32];    /* C2HData or R2T header (+HDGST) */
	uint8_t rsp[32];    /* CapsuleResp (+HDGST) */
	uint8_t ddgst[4];
	bool data_error;    /* data digest mismatch: fail with Data Transfer Error */
	uint32_t pending;   /* bdev I/Os outstanding for this command (DSM ranges) */
	int io_status;      /* first bdev error */
	bool fua_done;      /* the flush after a FUA write was issued */
	struct nvmf_send send;     /* the response */
	struct nvmf_send r2t_send; /* the R2T */
};

enum nvmf_rx_state {
	NVMF_RX_CH,     /* reading the 8-byte common header */
	NVMF_RX_PSH,    /* rest of the header (+HDGST) */
	NVMF_RX_PAD,    /* padding up to PDO */
	NVMF_RX_DATA,   /* PDU data into a request buffer (or discarded) */
	NVMF_RX_DDGST,  /* data digest */
	NVMF_RX_ERROR,  /* fatal error: ignore input until closed */
};

#define NVMF_RBUF_SIZE (64 * 1024)
/* Slots keep their data buffers between commands while the connection's
 * total stays under this; beyond it, buffers over 16 KiB are returned after
 * use (bounds memory with many queues doing large I/O). */
#define NVMF_CONN_BUF_CACHE (2u << 20)
#define NVMF_SMALL_BUF (16u << 10)

struct nvmf_conn {
	struct nvmf_tgt *tgt;
	const struct nvmf_transport_opts *opts; /* cached by conn_opts() */
	struct nvmf_conn *next, *prev; /* tgt->conns */
	int fd;
	struct nvmf_listen_addr local, peer;
	uint64_t created_ms;
	char local_traddr[64]; /* the connection's own local IP (getsockname) */
	bool ic_done;
	bool hdgst, ddgst;
	uint8_t hpda;
	bool closed;         /* fd closed, waiting for in-flight I/O */
	bool free_scheduled;
	bool free_pending;   /* free at the next reap (ev_defer failed) */
	bool flush_scheduled;
	bool want_out;       /* EPOLLOUT armed */
	bool fatal_after_send; /* close once the send queue drains */

	/* controller/queue (after Connect) */
	struct nvmf_ctrlr *ctrlr;
	struct nvmf_subsystem *subsys;
	uint16_t qid;
	uint16_t sqsize; /* 0's based */
	uint16_t sqhd;
	bool sqhd_disabled;
	bool connected;
	bool admin_counted, io_counted;

	/* receive */
	enum nvmf_rx_state rx;
	uint8_t hdr[160];
	size_t hdr_got, hdr_need;
	uint32_t plen, pdo, hlen;
	uint8_t ptype, pflags;
	size_t skip;            /* padding bytes to skip */
	uint8_t *data_dst;      /* NULL: discard */
	size_t data_need, data_got;
	uint32_t data_crc;
	uint8_t ddgst_buf[4];
	size_t ddgst_got;
	struct nvmf_req *rx_req; /* request receiving ICD or H2C data */
	bool rx_icd;             /* data is in-capsule (else H2C) */
	uint32_t h2c_datal;      /* length of the current H2C PDU */
	bool h2c_last;

	/* request slots */
	struct nvmf_req *reqs;
	unsigned nreqs;
	struct nvmf_req *free_reqs;
	unsigned inflight;       /* bdev I/O in flight */
	size_t buf_bytes;        /* data buffers kept by the slots */

	/* send queue */
	struct nvmf_send *sq_head, *sq_tail;
	size_t sq_off;            /* bytes of sq_head already written */
	unsigned sq_unflushed;    /* elements queued since the last flush */
	struct nvmf_send ctl_send; /* ICResp / C2HTermReq */
	uint8_t ctl_pdu[160];
};

/* Controller: created by an admin Connect, owns its queues' association. */
#define NVMF_MAX_AER 4
#define NVMF_CHANGED_NS_MAX 1024

struct nvmf_ctrlr {
	struct nvmf_subsystem *subsys;
	struct nvmf_ctrlr *next;
	uint16_t cntlid;
	char hostnqn[NVMF_NQN_MAX_LEN + 1];
	uint8_t hostid[16];
	struct nvmf_conn *admin;
	struct nvmf_conn **io; /* [max_io_qpairs + 1], index qid */
	uint32_t max_io;
	uint32_t num_io;
	uint32_t cc, csts;
	uint32_t kato_ms;
	struct ev_timer *ka_timer;
	uint64_t ka_last_ms;
	uint32_t aec;
	uint32_t nq_granted;   /* 0's based NSQA/NCQA granted (max_io - 1) */
	struct nvmf_req *aer[NVMF_MAX_AER];
	unsigned n_aer;
	bool ns_event_pending;   /* an NS attribute notice waits for an AER */
	bool ns_event_masked;    /* sent; masked until log page 0x04 read */
	bool disc_event_pending;
	bool disc_event_masked;
	uint32_t changed_ns[NVMF_CHANGED_NS_MAX];
	unsigned n_changed;
	bool changed_overflow;
	bool destroying;
};

/* ------------------------------------------------------- cross-file API */

/* tgt.c */
struct nvmf_transport *nvmf_tgt_tcp(struct nvmf_tgt *tgt);
int nvmf_port_get(struct nvmf_tgt *tgt, const struct nvmf_listen_addr *addr, struct nvmf_port **out);
void nvmf_port_put(struct nvmf_port *port);
bool nvmf_listen_addr_equal(const struct nvmf_listen_addr *a, const struct nvmf_listen_addr *b);

/* Marks data-path activity: keeps the loop polling for NVMF_BUSY_POLL_US. */
void nvmf_tgt_busy(struct nvmf_tgt *tgt);

/* subsystem.c */
void nvmf_ctrlr_ns_event(struct nvmf_ctrlr *c, uint32_t nsid);
void nvmf_ctrlr_disc_event(struct nvmf_ctrlr *c);
bool nvmf_subsystem_listens_on(const struct nvmf_subsystem *subsys, const struct nvmf_listen_addr *addr);
void nvmf_subsystem_ns_changed(struct nvmf_subsystem *subsys, uint32_t nsid);
void nvmf_tgt_discovery_changed(struct nvmf_tgt *tgt);

/* tcp.c: connection life cycle and send path */
/* Takes ownership of `fd` (a connected stream socket). */
int nvmf_conn_create(struct nvmf_tgt *tgt, int fd, const struct nvmf_listen_addr *local,
		     const struct nvmf_listen_addr *peer, struct nvmf_conn **out);
/* Closes the socket now; memory goes once in-flight bdev I/O completes. */
void nvmf_conn_close(struct nvmf_conn *conn, const char *why);
/* Frees connections left for reaping; call only with no connection on the stack. */
void nvmf_tgt_reap(struct nvmf_tgt *tgt);
/* Fatal protocol error: C2HTermReq with fes/fei then close. */
void nvmf_conn_fatal(struct nvmf_conn *conn, uint16_t fes, uint32_t fei);
/* Feeds received bytes through the PDU parser (also used by the fuzzer). */
void nvmf_conn_input(struct nvmf_conn *conn, const uint8_t *data, size_t len);
/* A bdev I/O of this connection finished (frees a closed connection at 0). */
void nvmf_conn_io_put(struct nvmf_conn *conn);
/* Completes `req`: CapsuleResp (after C2HData when req->c2h and success). */
void nvmf_req_complete(struct nvmf_req *req);
/* Status helpers: sets CQE status (sct, sc, dnr). */
void nvmf_req_set_status(struct nvmf_req *req, uint8_t sct, uint8_t sc, bool dnr);
/* Drops a zero-copy read's reference on the bdev memory (no-op without). */
void nvmf_req_zc_release(struct nvmf_req *req);
/* Ensures req->buf holds `len` bytes. -ENOMEM. */
int nvmf_req_buf_reserve(struct nvmf_req *req, uint32_t len);

/* ctrlr.c: command execution */
/* Runs a complete command capsule (data already received). */
void nvmf_cmd_exec(struct nvmf_req *req);
/* Detaches a closing connection from its controller (admin: destroys it). */
void nvmf_conn_detach(struct nvmf_conn *conn);
void nvmf_ctrlr_destroy(struct nvmf_ctrlr *ctrlr, const char *why);
/* Direction of data for a command: 0 none, 1 host->ctrl, 2 ctrl->host, 3 bidirectional */
int nvmf_cmd_xfer_dir(const uint8_t *sqe);

/* io.c */
void nvmf_io_exec(struct nvmf_req *req);

/* discovery.c */
/* local_traddr: the address the request came in on, shown instead of a
 * wildcard listener address (0.0.0.0 / ::); may be NULL or "". */
void nvmf_discovery_log(struct nvmf_tgt *tgt, const char *hostnqn, const char *local_traddr, uint8_t *buf,
			uint64_t offset, uint32_t len);

#endif /* DE_NVMF_INTERNAL_H */
