/*
 * test_nvme.c: unit tests of src/nvme: wire structures and helpers, and the
 * host library against a scripted fake controller (fake_target.c) and raw
 * PDUs over a socketpair (fragmentation, protocol errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "fake_target.h"
#include "nvme/nvme.h"
#include "nvme/nvme_internal.h"

static struct fake_target tgt;
static char port_str[16];

static int setup_target(void **state)
{
	assert_int_equal(fake_target_start(&tgt, 8192, 512), 0);
	snprintf(port_str, sizeof(port_str), "%u", tgt.port);
	return 0;
}

static int teardown_target(void **state)
{
	fake_target_stop(&tgt);
	return 0;
}

static struct nvme_connect_opts base_opts(void)
{
	struct nvme_connect_opts o;

	memset(&o, 0, sizeof(o));
	o.traddr = "127.0.0.1";
	o.trsvcid = port_str;
	o.subnqn = "nqn.fake:sub";
	o.timeout_ms = 2000;
	return o;
}

static struct nvme_ctrlr *connect_ok(struct nvme_connect_opts *o)
{
	struct nvme_ctrlr *c = NULL;

	assert_int_equal(nvme_ctrlr_connect(o, &c), 0);
	assert_non_null(c);
	return c;
}

/* ------------------------------------------------------------ wire */

static void test_wire_layout(void **state)
{
	struct nvme_sqe sqe;
	uint8_t raw[64];
	uint16_t st;

	assert_int_equal(sizeof(struct nvme_tcp_ic_req), 128);
	assert_int_equal(sizeof(struct nvme_id_ctrlr), 4096);
	assert_int_equal(offsetof(struct nvme_id_ctrlr, kas), 320);
	assert_int_equal(offsetof(struct nvme_id_ctrlr, ioccsz), 1792);
	assert_int_equal(offsetof(struct nvme_id_ns, lbaf), 128);
	assert_int_equal(offsetof(struct nvme_discovery_log_entry, traddr), 512);

	/* SQE encodes little-endian at the spec offsets */
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = NVME_OPC_WRITE;
	sqe.cid = 0x1234;
	sqe.nsid = 7;
	sqe.sgl1.length = 4096;
	sqe.sgl1.id = NVME_SGL_ID_TRANSPORT;
	sqe.cdw10 = 0xAABBCCDD;
	sqe.cdw12 = 7;
	memcpy(raw, &sqe, 64);
	assert_int_equal(raw[0], 0x01);
	assert_int_equal(nvme_get_le16(raw + 2), 0x1234);
	assert_int_equal(nvme_get_le32(raw + 4), 7);
	assert_int_equal(nvme_get_le32(raw + 32), 4096);
	assert_int_equal(raw[39], 0x5A);
	assert_int_equal(raw[40], 0xDD);
	assert_int_equal(nvme_get_le32(raw + 48), 7);

	/* status encode/decode */
	st = NVME_STATUS_MAKE(1, NVME_SC_FABRIC_INVALID_HOST, 1);
	assert_int_equal(NVME_STATUS_SCT(st), 1);
	assert_int_equal(NVME_STATUS_SC(st), 0x84);
	assert_true(st & NVME_STATUS_DNR);
	assert_false(NVME_STATUS_IS_OK(st));
	assert_true(NVME_STATUS_IS_OK(NVME_STATUS_DNR));
	assert_string_equal(nvme_status_str(st), "connect invalid host");
	assert_string_equal(nvme_status_str(NVME_STATUS_MAKE(0, NVME_SC_LBA_OUT_OF_RANGE, 0)),
			    "lba out of range");

	/* CRC-32C check value */
	assert_int_equal(nvme_tcp_digest("123456789", 9), 0xE3069283u);

	/* per-type facts */
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_IC_REQ), 128);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_CAPSULE_CMD), 72);
	assert_int_equal(nvme_tcp_pdu_hlen(NVME_TCP_PDU_R2T), 24);
	assert_int_equal(nvme_tcp_pdu_hlen(0x08), 0);
	assert_true(nvme_tcp_pdu_has_hdgst(NVME_TCP_PDU_R2T));
	assert_false(nvme_tcp_pdu_has_ddgst(NVME_TCP_PDU_R2T));
	assert_false(nvme_tcp_pdu_has_hdgst(NVME_TCP_PDU_IC_RESP));
	assert_true(nvme_tcp_pdu_has_ddgst(NVME_TCP_PDU_C2H_DATA));
	assert_string_equal(nvme_tcp_pdu_type_str(NVME_TCP_PDU_C2H_TERM_REQ), "C2HTermReq");

	/* register bitfields */
	assert_int_equal(NVME_CAP_MQES(0x000000201401007FULL), 127);
	assert_int_equal(NVME_CAP_TO(0x000000201401007FULL), 20);
	assert_true(0x000000201401007FULL & NVME_CAP_CSS_NVM);
	assert_int_equal(NVME_CC_IOSQES(NVME_CC_ENABLE_VALUE), 6);
	assert_int_equal(NVME_CC_IOCQES(NVME_CC_ENABLE_VALUE), 4);
	assert_int_equal(NVME_CC_SHUTDOWN_VALUE & NVME_CC_SHN_MASK, NVME_CC_SHN_NORMAL);
	assert_int_equal(NVME_LBAF_LBADS(NVME_LBAF_MAKE(12, 0)), 12);
	assert_int_equal(NVME_AER_INFO(NVME_AER_MAKE(2, 0xF0, 0x70)), 0xF0);
}

/* ------------------------------------------------------------ connect */

static void test_connect_identify(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	struct nvme_ns_info ns;
	uint32_t dw0 = 0;
	uint8_t log[512];

	tgt.mode = FAKE_NORMAL;
	o.io_queues = 2;
	o.kato_ms = 10000;
	c = connect_ok(&o);
	assert_int_equal(nvme_ctrlr_cntlid(c), 1);
	assert_int_equal(nvme_ctrlr_data(c)->kas, 10);
	assert_string_equal(nvme_ctrlr_data(c)->subnqn, "nqn.fake:sub");
	assert_int_equal(nvme_ctrlr_num_qpairs(c), 2);
	assert_non_null(nvme_ctrlr_qpair(c, 1));
	assert_null(nvme_ctrlr_qpair(c, 2));
	assert_true(strncmp(tgt.last_hostnqn, "nqn.2014-08.org.nvmexpress:uuid:", 32) == 0);
	assert_int_equal(tgt.last_kato, 10000);
	assert_int_equal(tgt.io_connects, 2);
	assert_int_equal(nvme_ns_info_get(c, 1, &ns, 0), 0);
	assert_int_equal(ns.block_size, 512);
	assert_int_equal(ns.num_blocks, 8192);
	assert_int_equal(ns.uuid[0], 0x42);
	assert_int_equal(ns.nguid[0], 0xAB);
	assert_int_equal(nvme_ns_info_get(c, 2, &ns, 0), -ENOENT);
	assert_int_equal(nvme_ctrlr_get_feature(c, NVME_FEAT_KEEP_ALIVE_TIMER, 0, &dw0, 0), 0);
	assert_int_equal(dw0, 10000);
	assert_int_equal(nvme_ctrlr_get_feature(c, 0x42, 0, &dw0, 0), -EIO);
	assert_int_equal(NVME_STATUS_SC(nvme_ctrlr_last_status(c)), NVME_SC_INVALID_FIELD);
	assert_int_equal(nvme_ctrlr_get_log_page(c, NVME_LOG_HEALTH, 0xFFFFFFFF, 0, log, sizeof(log), 0), 0);
	assert_int_equal(log[0], NVME_LOG_HEALTH);
	assert_int_equal(nvme_ctrlr_get_log_page(c, NVME_LOG_HEALTH, 0, 0, log, 3, 0), -EINVAL);
	assert_int_equal(nvme_ctrlr_keep_alive(c, 0), 0);
	tgt.shutdown_seen = false;
	nvme_ctrlr_destroy(c);
	assert_true(tgt.shutdown_seen);
	nvme_ctrlr_destroy(NULL);
}

static void test_connect_errors(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c = (void *)1;

	/* invalid arguments */
	o.subnqn = NULL;
	assert_int_equal(nvme_ctrlr_connect(&o, &c), -EINVAL);
	assert_null(c);
	o = base_opts();

	/* rejected host */
	tgt.mode = FAKE_REJECT_CONNECT;
	assert_int_equal(nvme_ctrlr_connect(&o, &c), -EIO);
	assert_null(c);
	tgt.mode = FAKE_NORMAL;

	/* unknown subsystem */
	o.subnqn = "nqn.fake:other";
	assert_int_equal(nvme_ctrlr_connect(&o, &c), -EIO);
	o = base_opts();

	/* nobody listening: grab a free port by binding and closing */
	{
		struct fake_target t2;

		assert_int_equal(fake_target_start(&t2, 8, 512), 0);
		snprintf(port_str, sizeof(port_str), "%u", t2.port);
		fake_target_stop(&t2);
		assert_int_equal(nvme_ctrlr_connect(&o, &c), -ECONNREFUSED);
		snprintf(port_str, sizeof(port_str), "%u", tgt.port);
	}

	/* ICResp never comes */
	tgt.mode = FAKE_NO_ICRESP;
	o.timeout_ms = 200;
	assert_int_equal(nvme_ctrlr_connect(&o, &c), -ETIMEDOUT);
	tgt.mode = FAKE_NORMAL;
}

/* ------------------------------------------------------------ data path */

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 31 + seed) ^ (i >> 9));
}

static void roundtrip(struct nvme_ctrlr *c, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *w = malloc(len), *r = malloc(len);

	fill_pattern(w, len, seed);
	memset(r, 0xEE, len);
	assert_int_equal(nvme_ns_write(c, 1, off, w, len, 0), 0);
	assert_int_equal(nvme_ns_read(c, 1, off, r, len, 0), 0);
	assert_memory_equal(w, r, len);
	free(w);
	free(r);
}

static void test_rw_r2t(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint32_t h2c0 = tgt.h2c_pdus, r2t0 = tgt.r2t_count;

	tgt.ioccsz = 4; /* no in-capsule data */
	tgt.maxh2cdata = 4096;
	tgt.c2h_chunk = 3000; /* reads arrive in odd-sized PDUs */
	c = connect_ok(&o);
	roundtrip(c, 4096, 65536, 1);
	assert_int_equal(tgt.r2t_count - r2t0, 1);
	assert_int_equal(tgt.h2c_pdus - h2c0, 16);
	/* 1 MiB: split by max_xfer (MDTS 0 -> 1 MiB) into one command */
	roundtrip(c, 0, 1024 * 1024, 2);
	/* unaligned and out of range */
	assert_int_equal(nvme_ns_write(c, 1, 100, "x", 1, 0), -EINVAL);
	assert_int_equal(nvme_ns_read(c, 1, 8192 * 512, (uint8_t[512]){0}, 512, 0), -ERANGE);
	assert_int_equal(nvme_ns_read(c, 1, 0, NULL, 0, 0), 0);
	assert_int_equal(nvme_ns_flush(c, 1, 0), 0);
	nvme_ctrlr_destroy(c);
	tgt.c2h_chunk = 0;
}

static void test_rw_mdts_split(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;

	tgt.mdts = 1; /* 8 KiB per command */
	tgt.maxh2cdata = 8192;
	c = connect_ok(&o);
	assert_int_equal(nvme_ctrlr_max_xfer(c), 8192);
	roundtrip(c, 512, 100 * 1024, 3);
	nvme_ctrlr_destroy(c);
	tgt.mdts = 0;
	tgt.maxh2cdata = 4096;
}

static void test_rw_several_queues(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;

	memset(tgt.io_by_qid, 0, sizeof(tgt.io_by_qid));
	tgt.mdts = 1; /* 8 KiB per command: 64 commands per 512 KiB */
	tgt.maxh2cdata = 8192;
	o.io_queues = 3;
	c = connect_ok(&o);
	roundtrip(c, 0, 512 * 1024, 12);
	for (int q = 1; q <= 3; q++)
		assert_true(tgt.io_by_qid[q] > 0);
	assert_int_equal(tgt.io_by_qid[4], 0);
	/* a lost connection on one queue fails the range and the controller's I/O */
	tgt.mode = FAKE_CLOSE_ON_READ;
	{
		uint8_t *b = malloc(512 * 1024);

		assert_int_equal(nvme_ns_read(c, 1, 0, b, 512 * 1024, 0), -ECONNRESET);
		assert_int_equal(nvme_ns_read(c, 1, 0, b, 4096, 0), -ECONNRESET);
		free(b);
	}
	tgt.mode = FAKE_NORMAL;
	nvme_ctrlr_destroy(c);
	tgt.mdts = 0;
	tgt.maxh2cdata = 4096;
}

static void test_rw_icd_and_digests(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint32_t icd0 = tgt.icd_writes, r2t0 = tgt.r2t_count;

	tgt.ioccsz = 4 + 8192 / 16;
	o.header_digest = true;
	o.data_digest = true;
	c = connect_ok(&o);
	assert_true(tgt.digests_seen);
	roundtrip(c, 0, 8192, 4);       /* in-capsule */
	assert_int_equal(tgt.icd_writes - icd0, 1);
	assert_int_equal(tgt.r2t_count, r2t0);
	roundtrip(c, 8192, 16384, 5);   /* R2T */
	assert_int_equal(tgt.r2t_count - r2t0, 1);
	nvme_ctrlr_destroy(c);
	tgt.ioccsz = 4;
}

static void test_c2h_success_and_cpda(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;

	tgt.c2h_success = true;
	tgt.cpda = 3; /* host pads H2C data to 16 bytes */
	tgt.c2h_chunk = 1024;
	c = connect_ok(&o);
	roundtrip(c, 0, 32768, 6);
	nvme_ctrlr_destroy(c);
	tgt.c2h_success = false;
	tgt.cpda = 0;
	tgt.c2h_chunk = 0;
}

static void test_write_zeroes_split(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t *buf = malloc(1 << 20), *zero = calloc(1, 1 << 20);
	uint32_t wz0;

	c = connect_ok(&o);
	fill_pattern(buf, 1 << 20, 7);
	assert_int_equal(nvme_ns_write(c, 1, 0, buf, 1 << 20, 0), 0);
	/* whole namespace (8192 blocks) in one command */
	wz0 = tgt.wz_cmds;
	tgt.wz_max_nlb = 0;
	assert_int_equal(nvme_ns_write_zeroes(c, 1, 0, 1 << 20, 0), 0);
	assert_int_equal(tgt.wz_cmds - wz0, 1);
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, 1 << 20, 0), 0);
	assert_memory_equal(buf, zero, 1 << 20);
	nvme_ctrlr_destroy(c);

	/* WZSL = 1 -> 8 KiB = 16 blocks per command */
	tgt.wzsl = 1;
	c = connect_ok(&o);
	fill_pattern(buf, 1 << 20, 8);
	assert_int_equal(nvme_ns_write(c, 1, 0, buf, 1 << 20, 0), 0);
	wz0 = tgt.wz_cmds;
	tgt.wz_max_nlb = 0;
	assert_int_equal(nvme_ns_write_zeroes(c, 1, 4096, 65536, 0), 0);
	assert_int_equal(tgt.wz_cmds - wz0, 8);
	assert_int_equal(tgt.wz_max_nlb, 16);
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, 1 << 20, 0), 0);
	assert_memory_equal(buf + 4096, zero, 65536);
	assert_int_not_equal(buf[4095], 0);
	assert_int_not_equal(buf[4096 + 65536 + 1], 0);
	nvme_ctrlr_destroy(c);
	tgt.wzsl = 0;

	/* target error -> -EIO with the status kept */
	tgt.mode = FAKE_WZ_ERROR;
	c = connect_ok(&o);
	assert_int_equal(nvme_ns_write_zeroes(c, 1, 0, 4096, 0), -EIO);
	assert_int_equal(NVME_STATUS_SC(nvme_ctrlr_last_status(c)), NVME_SC_LBA_OUT_OF_RANGE);
	nvme_ctrlr_destroy(c);
	tgt.mode = FAKE_NORMAL;
	free(buf);
	free(zero);
}

static void test_wz_fallback(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t *buf = malloc(1 << 20), *zero = calloc(1, 1 << 20);

	for (int variant = 0; variant < 2; variant++) {
		uint32_t wz0 = tgt.wz_cmds;

		/* 0: WZ not advertised; 1: advertised but answered Invalid Opcode */
		tgt.wz_unadvertised = variant == 0;
		tgt.no_wz = variant == 1;
		c = connect_ok(&o);
		if (variant == 1) {
			/* pretend the controller advertised it: flip ONCS back on */
			((struct nvme_id_ctrlr *)nvme_ctrlr_data(c))->oncs |= NVME_CTRLR_ONCS_WRITE_ZEROES;
		}
		fill_pattern(buf, 1 << 20, 40);
		assert_int_equal(nvme_ns_write(c, 1, 0, buf, 1 << 20, 0), 0);
		assert_int_equal(nvme_ns_write_zeroes(c, 1, 4096, 600 * 1024, 0), 0);
		assert_int_equal(tgt.wz_cmds, wz0);
		assert_int_equal(nvme_ns_read(c, 1, 0, buf, 1 << 20, 0), 0);
		assert_memory_equal(buf + 4096, zero, 600 * 1024);
		assert_int_not_equal(buf[4095] | buf[4096 + 600 * 1024], 0);
		nvme_ctrlr_destroy(c);
	}
	tgt.wz_unadvertised = false;
	tgt.no_wz = false;
	free(buf);
	free(zero);
}

static void test_wz_16bit_nlb(void **state)
{
	struct fake_target big;
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	char port[16];

	/* 70000 blocks of 512 B: a full-device zero needs 2 commands (65536 + 4464) */
	assert_int_equal(fake_target_start(&big, 70000, 512), 0);
	snprintf(port, sizeof(port), "%u", big.port);
	o.trsvcid = port;
	c = connect_ok(&o);
	assert_int_equal(nvme_ns_write_zeroes(c, 1, 0, 70000ull * 512, 0), 0);
	assert_int_equal(big.wz_cmds, 2);
	assert_int_equal(big.wz_max_nlb, 65536);
	assert_int_equal(nvme_ns_deallocate(c, 1, 512, 4096, 0), 0);
	assert_int_equal(big.dsm_ranges, 1);
	nvme_ctrlr_destroy(c);
	fake_target_stop(&big);
}

/* ------------------------------------------------------------ failures */

static void test_io_queue_connect_retry(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t buf[512];

	/* no I/O queue at connect: the first I/O connects one on demand; when
	 * that fails the next call tries again (and nothing leaks) */
	c = connect_ok(&o);
	assert_int_equal(nvme_ctrlr_num_qpairs(c), 0);
	tgt.mode = FAKE_REJECT_CONNECT;
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), -EIO);
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), -EIO);
	tgt.mode = FAKE_NORMAL;
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), 0);
	assert_int_equal(nvme_ctrlr_num_qpairs(c), 1);
	nvme_ctrlr_destroy(c);
}

static void test_server_closes_mid_io(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t buf[4096];

	c = connect_ok(&o);
	tgt.mode = FAKE_CLOSE_ON_READ;
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), -ECONNRESET);
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), -ECONNRESET);
	tgt.mode = FAKE_NORMAL;
	nvme_ctrlr_destroy(c);
}

static void test_timeout(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t buf[4096];
	uint64_t t0;

	c = connect_ok(&o);
	tgt.mode = FAKE_HANG_ON_READ;
	t0 = clock_mono_ms();
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 200), -ETIMEDOUT);
	assert_true(clock_mono_ms() - t0 >= 190);
	assert_true(clock_mono_ms() - t0 < 5000); /* generous: loaded CI machines */
	/* the queue is unusable afterwards, and says so */
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 200), -ETIMEDOUT);
	tgt.mode = FAKE_NORMAL;
	nvme_ctrlr_destroy(c);
}

static void test_protocol_errors(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t buf[4096] = { 0 };

	tgt.mode = FAKE_NORMAL;
	c = connect_ok(&o);
	tgt.mode = FAKE_TERMREQ_ON_WRITE;
	assert_int_equal(nvme_ns_write(c, 1, 0, buf, sizeof(buf), 0), -ECONNRESET);
	nvme_ctrlr_destroy(c);

	tgt.mode = FAKE_NORMAL;
	c = connect_ok(&o);
	tgt.mode = FAKE_BAD_R2T;
	assert_int_equal(nvme_ns_write(c, 1, 0, buf, sizeof(buf), 0), -ECONNRESET);
	nvme_ctrlr_destroy(c);

	tgt.mode = FAKE_NORMAL;
	c = connect_ok(&o);
	tgt.mode = FAKE_CQE_UNKNOWN_CID;
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), -ECONNRESET);
	nvme_ctrlr_destroy(c);
	tgt.mode = FAKE_NORMAL;
}

static void test_keep_alive(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	uint8_t buf[512];
	uint32_t ka0;

	o.kato_ms = 100;
	c = connect_ok(&o);
	ka0 = tgt.ka_count;
	usleep(60 * 1000);
	assert_int_equal(nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0), 0);
	assert_true(tgt.ka_count - ka0 >= 1);
	/* async path */
	ka0 = tgt.ka_count;
	usleep(60 * 1000);
	assert_int_equal(nvme_ctrlr_poll_admin(c), 0);
	for (uint64_t t0 = clock_mono_ms(); tgt.ka_count == ka0 && clock_mono_ms() - t0 < 10000;) {
		usleep(2000);
		assert_int_equal(nvme_ctrlr_poll_admin(c), 0);
	}
	assert_true(tgt.ka_count > ka0);
	nvme_ctrlr_destroy(c);
}

/* ------------------------------------------------------------ async API */

struct acount {
	int done;
	int errors;
};

static void acb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	struct acount *a = arg;

	a->done++;
	if (status)
		a->errors++;
}

static void test_async_qpair(void **state)
{
	struct nvme_connect_opts o = base_opts();
	struct nvme_ctrlr *c;
	struct nvme_qpair *qp;
	struct acount a = { 0 };
	uint8_t *bufs = malloc(64 * 4096);
	int submitted = 0;

	o.io_queues = 1;
	o.io_queue_size = 17; /* 16 slots */
	c = connect_ok(&o);
	qp = nvme_ctrlr_qpair(c, 0);
	assert_int_equal(nvme_qpair_free_slots(qp), 16);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(nvme_qpair_write(qp, 1, (uint64_t)i * 8, 8, bufs + i * 4096, acb, &a), 0);
		submitted++;
	}
	assert_int_equal(nvme_qpair_read(qp, 1, 0, 8, bufs, acb, &a), -EAGAIN);
	assert_int_equal(nvme_qpair_outstanding(qp), 16);
	assert_int_equal(nvme_qpair_flush(qp), 0);
	while (a.done < submitted)
		assert_true(nvme_qpair_poll(qp, 1000) >= 0);
	assert_int_equal(a.errors, 0);
	assert_int_equal(nvme_qpair_outstanding(qp), 0);
	assert_int_equal(nvme_qpair_write_zeroes(qp, 1, 0, 8, acb, &a), 0);
	assert_int_equal(nvme_qpair_flush_cmd(qp, 1, acb, &a), 0);
	assert_int_equal(nvme_qpair_read(qp, 1, 9000, 8, bufs, acb, &a), 0); /* out of range */
	while (a.done < submitted + 3)
		assert_true(nvme_qpair_poll(qp, 1000) >= 0);
	assert_int_equal(a.errors, 1);
	assert_true(nvme_qpair_fd(qp) >= 0);
	nvme_ctrlr_destroy(c);
	free(bufs);
}

/* ------------------------------------------------------------ raw PDUs */

static void make_pair(struct nvme_qpair **qp, int *peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	assert_int_equal(nvme_qpair_create(sv[0], 1, 8, qp), 0);
	*peer = sv[1];
}

static void read_capsule(int peer, struct nvme_tcp_capsule_cmd *cap)
{
	assert_int_equal(recv(peer, cap, sizeof(*cap), MSG_WAITALL), (ssize_t)sizeof(*cap));
}

static void test_raw_fragmented_c2h(void **state)
{
	struct nvme_qpair *qp;
	struct nvme_tcp_capsule_cmd cap;
	struct acount a = { 0 };
	uint8_t buf[1024], data[1024], stream[2 * 24 + 1024 + 2 * 24];
	size_t n = 0;
	int peer;

	make_pair(&qp, &peer);
	/* two reads of 512 bytes each */
	assert_int_equal(nvme_qpair_read(qp, 1, 0, 1, buf, acb, &a), 0);
	assert_int_equal(nvme_qpair_read(qp, 1, 1, 1, buf + 512, acb, &a), 0);
	assert_int_equal(nvme_qpair_flush(qp), 0);
	read_capsule(peer, &cap);
	assert_int_equal(cap.ch.pdu_type, NVME_TCP_PDU_CAPSULE_CMD);
	assert_int_equal(cap.ch.plen, 72);
	assert_int_equal(cap.sqe.opc, NVME_OPC_READ);
	assert_int_equal(cap.sqe.sgl1.id, NVME_SGL_ID_TRANSPORT);
	assert_int_equal(cap.sqe.sgl1.length, 512);
	assert_int_equal(cap.sqe.flags & NVME_SQE_FLAGS_PSDT_MASK, NVME_SQE_FLAGS_PSDT_SGL);
	{
		uint16_t cid0 = cap.sqe.cid, cid1;

		read_capsule(peer, &cap);
		cid1 = cap.sqe.cid;
		assert_int_equal(cap.sqe.cdw10, 1);
		fill_pattern(data, sizeof(data), 9);
		for (int k = 0; k < 2; k++) {
			struct nvme_tcp_data_hdr d;
			struct nvme_tcp_capsule_resp r;

			memset(&d, 0, sizeof(d));
			d.ch.pdu_type = NVME_TCP_PDU_C2H_DATA;
			d.ch.flags = NVME_TCP_FLAG_LAST_PDU;
			d.ch.hlen = 24;
			d.ch.pdo = 24;
			d.ch.plen = 24 + 512;
			d.cccid = k ? cid1 : cid0;
			d.datal = 512;
			memcpy(stream + n, &d, 24);
			n += 24;
			memcpy(stream + n, data + k * 512, 512);
			n += 512;
			memset(&r, 0, sizeof(r));
			r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
			r.ch.hlen = 24;
			r.ch.plen = 24;
			r.cqe.cid = d.cccid;
			memcpy(stream + n, &r, 24);
			n += 24;
		}
	}
	/* one byte at a time */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(send(peer, stream + i, 1, 0), 1);
		assert_true(nvme_qpair_poll(qp, 0) >= 0);
	}
	assert_int_equal(a.done, 2);
	assert_int_equal(a.errors, 0);
	assert_memory_equal(buf, data, 1024);
	nvme_qpair_destroy(qp);
	close(peer);
}

/* 48 reads of 4 KiB answered in reverse order by ~200 KiB of C2HData +
 * CapsuleResp PDUs sent in ~62 KiB chunks: 15 answers per recv, a header
 * split across two recvs (kept and moved to the receive buffer's front),
 * every read completed once with its own data. */
static void test_raw_coalesced_c2h(void **state)
{
	enum { N = 48, LEN = 4096 };
	struct nvme_qpair *qp;
	struct nvme_tcp_capsule_cmd cap;
	struct acount a = { 0 };
	uint8_t *bufs = calloc(N, LEN), *data = malloc((size_t)N * LEN);
	uint8_t *stream = malloc((size_t)N * (LEN + 48));
	uint16_t cids[N];
	size_t n = 0, sent = 0;
	int sv[2], peer, idle = 0;

	assert_non_null(bufs);
	assert_non_null(data);
	assert_non_null(stream);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	assert_int_equal(nvme_qpair_create(sv[0], 1, N, &qp), 0);
	peer = sv[1];
	for (int i = 0; i < N; i++)
		assert_int_equal(nvme_qpair_read(qp, 1, (uint64_t)i * 8, 8, bufs + (size_t)i * LEN, acb, &a), 0);
	assert_int_equal(nvme_qpair_flush(qp), 0);
	for (int i = 0; i < N; i++) {
		read_capsule(peer, &cap); /* all flushed: a socketpair holds 48 capsules */
		assert_int_equal(cap.sqe.cdw10, (uint32_t)i * 8);
		cids[i] = cap.sqe.cid;
	}
	fill_pattern(data, (size_t)N * LEN, 17);
	/* answer in reverse order: completion order is the target's choice */
	for (int i = N - 1; i >= 0; i--) {
		struct nvme_tcp_data_hdr d;
		struct nvme_tcp_capsule_resp r;

		memset(&d, 0, sizeof(d));
		d.ch.pdu_type = NVME_TCP_PDU_C2H_DATA;
		d.ch.flags = NVME_TCP_FLAG_LAST_PDU;
		d.ch.hlen = 24;
		d.ch.pdo = 24;
		d.ch.plen = 24 + LEN;
		d.cccid = cids[i];
		d.datal = LEN;
		memcpy(stream + n, &d, 24);
		n += 24;
		memcpy(stream + n, data + (size_t)i * LEN, LEN);
		n += LEN;
		memset(&r, 0, sizeof(r));
		r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
		r.ch.hlen = 24;
		r.ch.plen = 24;
		r.cqe.cid = cids[i];
		memcpy(stream + n, &r, 24);
		n += 24;
	}
	/* chunks that end 10 bytes into a C2HData header (15 answers + 10):
	 * the host keeps the partial header and moves it to the buffer's front */
	while (sent < n && idle < 1000) {
		size_t chunk = COMMON_MIN(n - sent, (size_t)15 * (LEN + 48) + 10);
		ssize_t w = send(peer, stream + sent, chunk, 0);

		assert_int_equal(w, (ssize_t)chunk);
		sent += chunk;
		for (int quiet = 0; quiet < 2 && idle < 1000; idle++) {
			int rc = nvme_qpair_poll(qp, 0);
			assert_true(rc >= 0);
			quiet = rc > 0 ? 0 : quiet + 1;
		}
	}
	assert_int_equal(sent, n);
	assert_int_equal(a.done, N);
	assert_int_equal(a.errors, 0);
	assert_int_equal(nvme_qpair_outstanding(qp), 0);
	assert_memory_equal(bufs, data, (size_t)N * LEN);
	nvme_qpair_destroy(qp);
	close(peer);
	free(bufs);
	free(data);
	free(stream);
}

static void test_raw_errors(void **state)
{
	struct {
		const char *name;
		uint8_t type, hlen, flags;
		uint32_t plen;
	} cases[] = {
		{ "unknown type", 0x0F, 24, 0, 24 },
		{ "icresp after init", NVME_TCP_PDU_IC_RESP, 128, 0, 128 },
		{ "bad hlen", NVME_TCP_PDU_CAPSULE_RESP, 20, 0, 24 },
		{ "resp plen", NVME_TCP_PDU_CAPSULE_RESP, 24, 0, 28 },
		{ "c2h success w/o last", NVME_TCP_PDU_C2H_DATA, 24, NVME_TCP_FLAG_SUCCESS, 24 },
		{ "r2t for read", NVME_TCP_PDU_R2T, 24, 0, 24 },
		{ "termreq", NVME_TCP_PDU_C2H_TERM_REQ, 24, 0, 24 },
		{ "successful read without data", NVME_TCP_PDU_CAPSULE_RESP, 24, 0, 24 },
	};

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(cases); i++) {
		struct nvme_qpair *qp;
		struct nvme_tcp_capsule_cmd cap;
		struct acount a = { 0 };
		uint8_t buf[512], pdu[128];
		int peer, rc = 0;

		make_pair(&qp, &peer);
		assert_int_equal(nvme_qpair_read(qp, 1, 0, 1, buf, acb, &a), 0);
		assert_int_equal(nvme_qpair_flush(qp), 0);
		read_capsule(peer, &cap);
		memset(pdu, 0, sizeof(pdu));
		pdu[0] = cases[i].type;
		pdu[1] = cases[i].flags;
		pdu[2] = cases[i].hlen;
		pdu[3] = cases[i].type == NVME_TCP_PDU_C2H_DATA ? 24 : 0;
		nvme_put_le32(pdu + 4, cases[i].plen);
		nvme_put_le16(pdu + 8, cap.sqe.cid); /* cccid / cqe.dw0 */
		nvme_put_le16(pdu + 20, cap.sqe.cid); /* cqe.cid */
		nvme_put_le32(pdu + 16, 512); /* r2tl / datal */
		assert_int_equal(send(peer, pdu, cases[i].plen, 0), (ssize_t)cases[i].plen);
		for (int k = 0; k < 50 && rc >= 0; k++)
			rc = nvme_qpair_poll(qp, 20);
		if (rc != -ECONNRESET)
			fail_msg("case '%s' not rejected (rc=%d)", cases[i].name, rc);
		assert_int_equal(a.done, 1);
		assert_int_equal(a.errors, 1);
		assert_int_equal(nvme_qpair_read(qp, 1, 0, 1, buf, acb, &a), -ECONNRESET);
		nvme_qpair_destroy(qp);
		close(peer);
	}
}

static void test_raw_r2t_rules(void **state)
{
	struct nvme_qpair *qp;
	struct nvme_tcp_capsule_cmd cap;
	struct nvme_tcp_r2t r2t;
	struct acount a = { 0 };
	uint8_t buf[4096] = { 0 }, icd[4096];
	int peer, rc = 0;

	/* R2T for a write whose data went in-capsule is a protocol error */
	make_pair(&qp, &peer);
	qp->icd_max = 4096;
	assert_int_equal(nvme_qpair_write(qp, 1, 0, 8, buf, acb, &a), 0);
	assert_int_equal(nvme_qpair_flush(qp), 0);
	read_capsule(peer, &cap);
	assert_int_equal(cap.sqe.sgl1.id, NVME_SGL_ID_ICD);
	assert_int_equal(cap.ch.pdo, 72);
	assert_int_equal(cap.ch.plen, 72 + 4096);
	assert_int_equal(recv(peer, icd, sizeof(icd), MSG_WAITALL), (ssize_t)sizeof(icd));
	memset(&r2t, 0, sizeof(r2t));
	r2t.ch.pdu_type = NVME_TCP_PDU_R2T;
	r2t.ch.hlen = 24;
	r2t.ch.plen = 24;
	r2t.cccid = cap.sqe.cid;
	r2t.r2tl = 4096;
	assert_int_equal(send(peer, &r2t, sizeof(r2t), 0), (ssize_t)sizeof(r2t));
	for (int k = 0; k < 50 && rc >= 0; k++)
		rc = nvme_qpair_poll(qp, 20);
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(a.errors, 1);
	nvme_qpair_destroy(qp);
	close(peer);

	/* two R2Ts for one write (offsets 0 and 2048): the host sends each part,
	 * LAST_PDU on the last PDU of each R2T */
	a.done = a.errors = 0;
	make_pair(&qp, &peer);
	qp->maxh2cdata = 1024;
	assert_int_equal(nvme_qpair_write(qp, 1, 0, 8, buf, acb, &a), 0);
	assert_int_equal(nvme_qpair_flush(qp), 0);
	read_capsule(peer, &cap);
	assert_int_equal(cap.sqe.sgl1.id, NVME_SGL_ID_TRANSPORT);
	for (uint32_t part = 0; part < 2; part++) {
		r2t.cccid = cap.sqe.cid;
		r2t.ttag = (uint16_t)(7 + part);
		r2t.r2to = part * 2048;
		r2t.r2tl = 2048;
		assert_int_equal(send(peer, &r2t, sizeof(r2t), 0), (ssize_t)sizeof(r2t));
		for (int pdu = 0; pdu < 2; pdu++) {
			struct nvme_tcp_data_hdr h;
			uint8_t data[1024];

			assert_true(nvme_qpair_poll(qp, 0) >= 0);
			assert_int_equal(recv(peer, &h, sizeof(h), MSG_WAITALL), (ssize_t)sizeof(h));
			assert_int_equal(h.ch.pdu_type, NVME_TCP_PDU_H2C_DATA);
			assert_int_equal(h.ttag, 7 + part);
			assert_int_equal(h.datao, part * 2048 + pdu * 1024);
			assert_int_equal(h.datal, 1024);
			assert_int_equal(!!(h.ch.flags & NVME_TCP_FLAG_LAST_PDU), pdu == 1);
			assert_int_equal(recv(peer, data, sizeof(data), MSG_WAITALL), (ssize_t)sizeof(data));
		}
	}
	{
		struct nvme_tcp_capsule_resp r;

		memset(&r, 0, sizeof(r));
		r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
		r.ch.hlen = 24;
		r.ch.plen = 24;
		r.cqe.cid = cap.sqe.cid;
		assert_int_equal(send(peer, &r, sizeof(r), 0), (ssize_t)sizeof(r));
	}
	while (a.done == 0)
		assert_true(nvme_qpair_poll(qp, 1000) >= 0);
	assert_int_equal(a.errors, 0);
	nvme_qpair_destroy(qp);
	close(peer);
}

/* Digests: a header digest or data digest mismatch fails the queue; a good
 * one completes. */
static void test_raw_digests(void **state)
{
	for (int variant = 0; variant < 4; variant++) {
		struct nvme_qpair *qp;
		struct nvme_tcp_capsule_cmd cap;
		struct acount a = { 0 };
		uint8_t buf[512], data[512], hd[4], stream[64 + 512 + 64];
		struct nvme_tcp_data_hdr d;
		struct nvme_tcp_capsule_resp r;
		size_t n = 0;
		int peer, rc = 0;

		make_pair(&qp, &peer);
		qp->hdgst = true;
		qp->ddgst = true;
		assert_int_equal(nvme_qpair_read(qp, 1, 0, 1, buf, acb, &a), 0);
		assert_int_equal(nvme_qpair_flush(qp), 0);
		read_capsule(peer, &cap);
		assert_true(cap.ch.flags & NVME_TCP_FLAG_HDGSTF);
		assert_int_equal(cap.ch.plen, 76);
		assert_int_equal(recv(peer, hd, 4, MSG_WAITALL), 4);
		assert_int_equal(nvme_get_le32(hd), nvme_tcp_digest(&cap, 72));
		fill_pattern(data, sizeof(data), 3);
		memset(&d, 0, sizeof(d));
		d.ch.pdu_type = NVME_TCP_PDU_C2H_DATA;
		d.ch.flags = NVME_TCP_FLAG_LAST_PDU | NVME_TCP_FLAG_HDGSTF | NVME_TCP_FLAG_DDGSTF;
		d.ch.hlen = 24;
		d.ch.pdo = 28;
		d.ch.plen = 28 + 512 + 4;
		d.cccid = cap.sqe.cid;
		d.datal = 512;
		memcpy(stream + n, &d, 24);
		nvme_put_le32(stream + n + 24, nvme_tcp_digest(&d, 24) ^ (variant == 1 ? 1u : 0u));
		n += 28;
		memcpy(stream + n, data, 512);
		n += 512;
		nvme_put_le32(stream + n, nvme_tcp_digest(data, 512) ^ (variant == 2 ? 0x100u : 0u));
		n += 4;
		memset(&r, 0, sizeof(r));
		r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
		r.ch.flags = variant == 3 ? 0 : NVME_TCP_FLAG_HDGSTF; /* 3: flag missing */
		r.ch.hlen = 24;
		r.ch.plen = 28;
		r.cqe.cid = cap.sqe.cid;
		memcpy(stream + n, &r, 24);
		nvme_put_le32(stream + n + 24, nvme_tcp_digest(&r, 24));
		n += 28;
		assert_int_equal(send(peer, stream, n, 0), (ssize_t)n);
		for (int k = 0; k < 50 && rc >= 0 && a.done == 0; k++)
			rc = nvme_qpair_poll(qp, 20);
		assert_int_equal(a.done, 1);
		if (variant == 0) {
			assert_int_equal(a.errors, 0);
			assert_memory_equal(buf, data, 512);
		} else {
			assert_int_equal(rc, -ECONNRESET);
			assert_int_equal(a.errors, 1);
		}
		nvme_qpair_destroy(qp);
		close(peer);
	}
}

static uint16_t last_status;

static void status_cb(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	last_status = status;
	(*(int *)arg)++;
}

static void test_raw_status_bits(void **state)
{
	const uint16_t sent[] = { NVME_STATUS_DNR, NVME_STATUS_MORE | 1u /* phase */,
				  NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1) | 1u };
	const uint16_t want[] = { 0, 0, NVME_STATUS_MAKE(0, NVME_SC_INVALID_FIELD, 1) };

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(sent); i++) {
		struct nvme_qpair *qp;
		struct nvme_tcp_capsule_cmd cap;
		struct nvme_tcp_capsule_resp r;
		int peer, done = 0;

		make_pair(&qp, &peer);
		assert_int_equal(nvme_qpair_flush_cmd(qp, 1, status_cb, &done), 0);
		assert_int_equal(nvme_qpair_flush(qp), 0);
		read_capsule(peer, &cap);
		assert_int_equal(cap.sqe.opc, NVME_OPC_FLUSH);
		memset(&r, 0, sizeof(r));
		r.ch.pdu_type = NVME_TCP_PDU_CAPSULE_RESP;
		r.ch.hlen = 24;
		r.ch.plen = 24;
		r.cqe.cid = cap.sqe.cid;
		r.cqe.status = sent[i];
		assert_int_equal(send(peer, &r, sizeof(r), 0), (ssize_t)sizeof(r));
		while (done == 0)
			assert_true(nvme_qpair_poll(qp, 1000) >= 0);
		assert_int_equal(last_status, want[i]);
		nvme_qpair_destroy(qp);
		close(peer);
	}
}

static void test_raw_peer_close(void **state)
{
	struct nvme_qpair *qp;
	struct acount a = { 0 };
	uint8_t buf[512];
	int peer, rc = 0;

	make_pair(&qp, &peer);
	assert_int_equal(nvme_qpair_read(qp, 1, 0, 1, buf, acb, &a), 0);
	close(peer);
	for (int k = 0; k < 50 && rc >= 0; k++)
		rc = nvme_qpair_poll(qp, 20);
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(a.done, 1);
	assert_int_equal(nvme_qpair_free_slots(qp), 0);
	nvme_qpair_destroy(qp);
}

/* ------------------------------------------------------------ alloc faults */

static void test_alloc_faults(void **state)
{
	struct nvme_connect_opts o = base_opts();
	int ok = 0;

	o.io_queues = 1;
	for (long n = 0; n < 200 && !ok; n++) {
		struct nvme_ctrlr *c = NULL;
		int rc;

		mem_fault_set(n);
		rc = nvme_ctrlr_connect(&o, &c);
		mem_fault_clear();
		if (rc == 0) {
			uint8_t b[512];

			assert_int_equal(nvme_ns_read(c, 1, 0, b, sizeof(b), 0), 0);
			nvme_ctrlr_destroy(c);
			ok = 1;
		} else {
			assert_null(c);
		}
	}
	assert_true(ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_connect_identify),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_rw_r2t),
		cmocka_unit_test(test_rw_mdts_split),
		cmocka_unit_test(test_rw_several_queues),
		cmocka_unit_test(test_rw_icd_and_digests),
		cmocka_unit_test(test_c2h_success_and_cpda),
		cmocka_unit_test(test_write_zeroes_split),
		cmocka_unit_test(test_wz_fallback),
		cmocka_unit_test(test_wz_16bit_nlb),
		cmocka_unit_test(test_io_queue_connect_retry),
		cmocka_unit_test(test_server_closes_mid_io),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_async_qpair),
		cmocka_unit_test(test_raw_fragmented_c2h),
		cmocka_unit_test(test_raw_coalesced_c2h),
		cmocka_unit_test(test_raw_errors),
		cmocka_unit_test(test_raw_r2t_rules),
		cmocka_unit_test(test_raw_digests),
		cmocka_unit_test(test_raw_status_bits),
		cmocka_unit_test(test_raw_peer_close),
		cmocka_unit_test(test_alloc_faults),
	};

	log_level_set(getenv("NVME_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, setup_target, teardown_target);
}
