/*
 * fake_target.h: a tiny scripted NVMe/TCP controller for the host library's
 * unit tests (one thread per connection, blocking sockets, RAM namespace).
 * It is deliberately strict about what the host sends and can misbehave on
 * request (reject connect, close or hang mid-I/O, send a TermReq ...).
 */
#ifndef FAKE_TARGET_H
#define FAKE_TARGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum fake_mode {
	FAKE_NORMAL = 0,
	FAKE_REJECT_CONNECT,   /* admin connect answered SCT1/0x84 invalid host */
	FAKE_CLOSE_ON_READ,    /* closes the connection when a Read arrives */
	FAKE_HANG_ON_READ,     /* never answers a Read */
	FAKE_TERMREQ_ON_WRITE, /* answers a Write with C2HTermReq */
	FAKE_BAD_R2T,          /* R2T with an offset beyond the command */
	FAKE_NO_ICRESP,        /* never answers ICReq */
	FAKE_CQE_UNKNOWN_CID,  /* CapsuleResp with a CID that is not outstanding */
	FAKE_WZ_ERROR,         /* Write Zeroes fails with LBA out of range */
};

#define FAKE_MAX_CONNS 64 /* live at once; finished ones are reaped */

struct fake_conn;

struct fake_target {
	int lfd;
	uint16_t port;
	pthread_t accept_thread;
	pthread_mutex_t lock;
	bool stop;
	struct fake_conn *conns[FAKE_MAX_CONNS];
	int nconns;

	/* namespace */
	uint8_t *disk;
	uint32_t bs;
	uint64_t nblocks;

	/* knobs (set before connecting) */
	enum fake_mode mode;
	uint32_t maxh2cdata;
	uint32_t ioccsz;
	uint8_t mdts;
	uint8_t wzsl;
	uint32_t c2h_chunk; /* 0 = one C2HData PDU per read */
	bool c2h_success;   /* SUCCESS flag on the last C2HData, no CapsuleResp */
	uint8_t cpda;
	bool no_wz;         /* ONCS without Write Zeroes, WZ answered Invalid Opcode */
	bool wz_unadvertised; /* ONCS without Write Zeroes but WZ works */

	/* observations */
	uint32_t cc;
	bool shutdown_seen;
	uint32_t ka_count;
	uint32_t io_connects;
	uint32_t wz_cmds;
	uint32_t wz_max_nlb;
	uint32_t r2t_count;
	uint32_t h2c_pdus;
	uint32_t icd_writes;
	uint32_t dsm_ranges;
	uint32_t io_by_qid[8];
	uint32_t last_kato;
	char last_hostnqn[256];
	bool digests_seen;
};

/* Starts listening on 127.0.0.1:<ephemeral>. */
int fake_target_start(struct fake_target *t, uint64_t nblocks, uint32_t bs);
void fake_target_stop(struct fake_target *t);

#endif
