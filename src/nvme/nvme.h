/*
 * nvme.h: the one public header of src/nvme.
 *
 * Part 1 - NVMe and NVMe/TCP wire definitions shared by the host library
 * (this module) and the target (src/nvmf): PDU headers, SQE/CQE, SGL
 * descriptors, Fabrics commands, register offsets, Identify structures,
 * log pages, features, status codes, discovery log. All structures are
 * packed, little-endian on the wire; the build only supports little-endian
 * hosts (checked below), so fields can be read directly. The nvme_get_le* and
 * nvme_put_le* helpers are for byte buffers at arbitrary offsets.
 * Facts: shared/spec/nvme-tcp.md (section numbers quoted in comments).
 *
 * Part 2 - the NVMe/TCP host library: a blocking controller API (agent
 * zeroing, tests) and an asynchronous queue-pair API (diskperf).
 */
#ifndef DE_NVME_H
#define DE_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "diskengine's NVMe wire structures assume a little-endian host"
#endif

#define NVME_PACKED __attribute__((packed))
#define NVME_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size")
#define NVME_ASSERT_OFF(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " offset")

/* ------------------------------------------------------ byte helpers */

static inline uint16_t nvme_get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t nvme_get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t nvme_get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void nvme_put_le16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void nvme_put_le32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void nvme_put_le64(void *p, uint64_t v) { memcpy(p, &v, 8); }

/* ============================================================ NVMe/TCP */

/* PDU types (1.2) */
enum nvme_tcp_pdu_type {
	NVME_TCP_PDU_IC_REQ = 0x00,
	NVME_TCP_PDU_IC_RESP = 0x01,
	NVME_TCP_PDU_H2C_TERM_REQ = 0x02,
	NVME_TCP_PDU_C2H_TERM_REQ = 0x03,
	NVME_TCP_PDU_CAPSULE_CMD = 0x04,
	NVME_TCP_PDU_CAPSULE_RESP = 0x05,
	NVME_TCP_PDU_H2C_DATA = 0x06,
	NVME_TCP_PDU_C2H_DATA = 0x07,
	NVME_TCP_PDU_R2T = 0x09,
};

/* Common header FLAGS (1.1) */
#define NVME_TCP_FLAG_HDGSTF   0x01u /* header digest present */
#define NVME_TCP_FLAG_DDGSTF   0x02u /* data digest present */
#define NVME_TCP_FLAG_LAST_PDU 0x04u /* H2CData / C2HData: last PDU of the transfer */
#define NVME_TCP_FLAG_SUCCESS  0x08u /* C2HData only: no CapsuleResp follows */

/* ICReq/ICResp DGST bits */
#define NVME_TCP_DGST_HDR  0x01u
#define NVME_TCP_DGST_DATA 0x02u

#define NVME_TCP_DIGEST_LEN 4
#define NVME_TCP_IC_LEN 128          /* ICReq/ICResp HLEN == PLEN */
#define NVME_TCP_CAPSULE_CMD_HLEN 72 /* CH + SQE */
#define NVME_TCP_PSH24_HLEN 24       /* CapsuleResp, H2C/C2H data, R2T, TermReq */
#define NVME_TCP_TERM_REQ_MAX_PLEN 152
#define NVME_TCP_TERM_REQ_MAX_COPY 128
#define NVME_TCP_MIN_MAXH2CDATA 4096
#define NVME_TCP_PFV_1_0 0
#define NVME_TCP_DEFAULT_PORT 4420
#define NVME_TCP_DISCOVERY_PORT 8009
/* In-capsule data allowed for Fabrics/admin commands regardless of IOCCSZ (1.8). */
#define NVME_TCP_ADMIN_ICD_MAX 8192

/* Fatal error status of TermReq PDUs (1.6) */
enum nvme_tcp_fes {
	NVME_TCP_FES_INVALID_HEADER_FIELD = 0x01,
	NVME_TCP_FES_PDU_SEQUENCE_ERROR = 0x02,
	NVME_TCP_FES_HDGST_ERROR = 0x03,
	NVME_TCP_FES_DATA_OUT_OF_RANGE = 0x04,
	NVME_TCP_FES_DATA_LIMIT_EXCEEDED = 0x05, /* also R2T limit exceeded */
	NVME_TCP_FES_UNSUPPORTED_PARAMETER = 0x06,
};

/* Common header, first 8 bytes of every PDU (1.1). */
struct nvme_tcp_ch {
	uint8_t pdu_type;
	uint8_t flags;
	uint8_t hlen;
	uint8_t pdo;
	uint32_t plen;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_ch, 8);

struct nvme_tcp_ic_req {
	struct nvme_tcp_ch ch;
	uint16_t pfv;
	uint8_t hpda;    /* 0's based dwords */
	uint8_t dgst;    /* NVME_TCP_DGST_* */
	uint32_t maxr2t; /* 0's based */
	uint8_t rsvd16[112];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_ic_req, 128);
NVME_ASSERT_OFF(struct nvme_tcp_ic_req, maxr2t, 12);

struct nvme_tcp_ic_resp {
	struct nvme_tcp_ch ch;
	uint16_t pfv;
	uint8_t cpda;
	uint8_t dgst;
	uint32_t maxh2cdata;
	uint8_t rsvd16[112];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_ic_resp, 128);
NVME_ASSERT_OFF(struct nvme_tcp_ic_resp, maxh2cdata, 12);

/* H2CTermReq / C2HTermReq header; followed by <=128 bytes of the bad header. */
struct nvme_tcp_term_req {
	struct nvme_tcp_ch ch;
	uint16_t fes;
	uint32_t fei;
	uint8_t rsvd14[10];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_term_req, 24);
NVME_ASSERT_OFF(struct nvme_tcp_term_req, fei, 10);

/* H2CData and C2HData header (1.5). ttag is reserved in C2HData. */
struct nvme_tcp_data_hdr {
	struct nvme_tcp_ch ch;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t datao;
	uint32_t datal;
	uint32_t rsvd20;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_data_hdr, 24);
NVME_ASSERT_OFF(struct nvme_tcp_data_hdr, datal, 16);

struct nvme_tcp_r2t {
	struct nvme_tcp_ch ch;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t r2to;
	uint32_t r2tl;
	uint32_t rsvd20;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_r2t, 24);

/* ================================================================ SGL */

/* Descriptor type byte (high nibble type, low nibble subtype) (1.9). */
#define NVME_SGL_TYPE_DATA_BLOCK 0x0u
#define NVME_SGL_TYPE_KEYED_DATA_BLOCK 0x4u
#define NVME_SGL_TYPE_TRANSPORT_DATA_BLOCK 0x5u
#define NVME_SGL_SUBTYPE_ADDRESS 0x0u
#define NVME_SGL_SUBTYPE_OFFSET 0x1u
#define NVME_SGL_SUBTYPE_TRANSPORT 0xAu
#define NVME_SGL_ID(type, subtype) ((uint8_t)(((type) << 4) | (subtype)))
/* In-capsule data: Data Block, Offset subtype (address = offset in ICD, 0). */
#define NVME_SGL_ID_ICD 0x01u
/* Data moved by R2T/H2CData or C2HData; length 0 for no data. */
#define NVME_SGL_ID_TRANSPORT 0x5Au

struct nvme_sgl_desc {
	uint64_t address;
	uint32_t length;
	uint8_t rsvd12[3];
	uint8_t id; /* NVME_SGL_ID_* */
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_sgl_desc, 16);

/* Keyed SGL data block (RDMA; defined for completeness). */
struct nvme_sgl_keyed_desc {
	uint64_t address;
	uint8_t length[3];
	uint32_t key;
	uint8_t id;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_sgl_keyed_desc, 16);

/* ======================================================== SQE and CQE */

#define NVME_SQE_FLAGS_FUSE_MASK 0x03u
#define NVME_SQE_FLAGS_PSDT_SGL  0x40u /* PSDT=01b: SGL for data */
#define NVME_SQE_FLAGS_PSDT_MASK 0xC0u

struct nvme_sqe {
	uint8_t opc;
	uint8_t flags;
	uint16_t cid;
	uint32_t nsid; /* Fabrics: byte 4 is FCTYPE */
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	struct nvme_sgl_desc sgl1;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_sqe, 64);
NVME_ASSERT_OFF(struct nvme_sqe, sgl1, 24);
NVME_ASSERT_OFF(struct nvme_sqe, cdw10, 40);

/* CQE status field (bit 0 = phase, reserved over fabrics). */
#define NVME_STATUS_SC(s)   (((s) >> 1) & 0xFFu)
#define NVME_STATUS_SCT(s)  (((s) >> 9) & 0x7u)
#define NVME_STATUS_CRD(s)  (((s) >> 12) & 0x3u)
#define NVME_STATUS_MORE    0x4000u
#define NVME_STATUS_DNR     0x8000u
#define NVME_STATUS_MAKE(sct, sc, dnr) \
	((uint16_t)((((sct) & 0x7u) << 9) | (((sc) & 0xFFu) << 1) | ((dnr) ? NVME_STATUS_DNR : 0u)))
/* true if SCT and SC are both 0 */
#define NVME_STATUS_IS_OK(s) ((((s) >> 1) & 0x7FFu) == 0)

struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_cqe, 16);

/* CapsuleCmd = CH + SQE [+HDGST] [+pad] [+ICD] [+DDGST] */
struct nvme_tcp_capsule_cmd {
	struct nvme_tcp_ch ch;
	struct nvme_sqe sqe;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_capsule_cmd, 72);

/* CapsuleResp = CH + CQE [+HDGST] */
struct nvme_tcp_capsule_resp {
	struct nvme_tcp_ch ch;
	struct nvme_cqe cqe;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_tcp_capsule_resp, 24);

/* ========================================================= status codes */

enum nvme_sct {
	NVME_SCT_GENERIC = 0x0,
	NVME_SCT_COMMAND_SPECIFIC = 0x1,
	NVME_SCT_MEDIA = 0x2,
	NVME_SCT_PATH = 0x3,
	NVME_SCT_VENDOR = 0x7,
};

/* SCT 0 */
enum nvme_sc_generic {
	NVME_SC_SUCCESS = 0x00,
	NVME_SC_INVALID_OPCODE = 0x01,
	NVME_SC_INVALID_FIELD = 0x02,
	NVME_SC_COMMAND_ID_CONFLICT = 0x03,
	NVME_SC_DATA_TRANSFER_ERROR = 0x04,
	NVME_SC_ABORTED_POWER_LOSS = 0x05,
	NVME_SC_INTERNAL_DEVICE_ERROR = 0x06,
	NVME_SC_ABORTED_BY_REQUEST = 0x07,
	NVME_SC_ABORTED_SQ_DELETION = 0x08,
	NVME_SC_INVALID_NAMESPACE_OR_FORMAT = 0x0B,
	NVME_SC_COMMAND_SEQUENCE_ERROR = 0x0C,
	NVME_SC_INVALID_SGL_SEG_DESCRIPTOR = 0x0D,
	NVME_SC_INVALID_NUM_SGL_DESCIRPTORS = 0x0E,
	NVME_SC_DATA_SGL_LENGTH_INVALID = 0x0F,
	NVME_SC_METADATA_SGL_LENGTH_INVALID = 0x10,
	NVME_SC_SGL_DESCRIPTOR_TYPE_INVALID = 0x11,
	NVME_SC_INVALID_SGL_OFFSET = 0x16,
	NVME_SC_KEEP_ALIVE_INVALID = 0x1A,
	NVME_SC_TRANSIENT_TRANSPORT_ERROR = 0x22,
	NVME_SC_LBA_OUT_OF_RANGE = 0x80,
	NVME_SC_CAPACITY_EXCEEDED = 0x81,
	NVME_SC_NAMESPACE_NOT_READY = 0x82,
};

/* SCT 1 */
enum nvme_sc_command_specific {
	NVME_SC_INVALID_QUEUE_IDENTIFIER = 0x01,
	NVME_SC_INVALID_QUEUE_SIZE = 0x02,
	NVME_SC_ABORT_COMMAND_LIMIT_EXCEEDED = 0x03,
	NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED = 0x05,
	NVME_SC_INVALID_LOG_PAGE = 0x09,
	NVME_SC_FEATURE_NOT_SAVEABLE = 0x0D,
	NVME_SC_FEATURE_NOT_CHANGEABLE = 0x0E,
	/* Fabrics (2.1) */
	NVME_SC_FABRIC_INCOMPATIBLE_FORMAT = 0x80,
	NVME_SC_FABRIC_CONTROLLER_BUSY = 0x81,
	NVME_SC_FABRIC_INVALID_PARAM = 0x82,
	NVME_SC_FABRIC_RESTART_DISCOVERY = 0x83,
	NVME_SC_FABRIC_INVALID_HOST = 0x84,
	NVME_SC_FABRIC_INVALID_QUEUE_TYPE = 0x85,
	NVME_SC_FABRIC_LOG_RESTART_DISCOVERY = 0x90,
	NVME_SC_FABRIC_AUTH_REQUIRED = 0x91,
};

/* SCT 2 */
enum nvme_sc_media {
	NVME_SC_WRITE_FAULTS = 0x80,
	NVME_SC_UNRECOVERED_READ_ERROR = 0x81,
};

/* ============================================================ opcodes */

enum nvme_admin_opcode {
	NVME_OPC_DELETE_IO_SQ = 0x00,
	NVME_OPC_CREATE_IO_SQ = 0x01,
	NVME_OPC_GET_LOG_PAGE = 0x02,
	NVME_OPC_DELETE_IO_CQ = 0x04,
	NVME_OPC_CREATE_IO_CQ = 0x05,
	NVME_OPC_IDENTIFY = 0x06,
	NVME_OPC_ABORT = 0x08,
	NVME_OPC_SET_FEATURES = 0x09,
	NVME_OPC_GET_FEATURES = 0x0A,
	NVME_OPC_ASYNC_EVENT_REQUEST = 0x0C,
	NVME_OPC_KEEP_ALIVE = 0x18,
	NVME_OPC_FABRICS = 0x7F,
};

enum nvme_io_opcode {
	NVME_OPC_FLUSH = 0x00,
	NVME_OPC_WRITE = 0x01,
	NVME_OPC_READ = 0x02,
	NVME_OPC_WRITE_UNCORRECTABLE = 0x04,
	NVME_OPC_COMPARE = 0x05,
	NVME_OPC_WRITE_ZEROES = 0x08,
	NVME_OPC_DATASET_MANAGEMENT = 0x09,
};

/* Data direction from opcode bits 1:0 (1.8). */
#define NVME_OPC_XFER(opc) ((opc) & 0x3u)
#define NVME_XFER_NONE 0u
#define NVME_XFER_HOST_TO_CTRLR 1u
#define NVME_XFER_CTRLR_TO_HOST 2u
#define NVME_XFER_BIDIRECTIONAL 3u

/* Read/Write/Write Zeroes CDW12 */
#define NVME_RW_NLB_MASK 0xFFFFu /* 0's based */
#define NVME_RW_DEAC (1u << 25)  /* Write Zeroes: deallocate */
#define NVME_RW_FUA  (1u << 30)
#define NVME_RW_LR   (1u << 31)
#define NVME_MAX_NLB 65536u      /* blocks per command (16-bit 0's based) */

/* Dataset Management CDW11 attributes and range entry */
#define NVME_DSM_ATTR_IDR 0x1u
#define NVME_DSM_ATTR_IDW 0x2u
#define NVME_DSM_ATTR_DEALLOCATE 0x4u
#define NVME_DSM_MAX_RANGES 256u

struct nvme_dsm_range {
	uint32_t attributes;
	uint32_t nlb; /* 1-based */
	uint64_t slba;
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_dsm_range, 16);

/* ============================================================= Fabrics */

enum nvme_fabrics_fctype {
	NVME_FCTYPE_PROPERTY_SET = 0x00,
	NVME_FCTYPE_CONNECT = 0x01,
	NVME_FCTYPE_PROPERTY_GET = 0x04,
	NVME_FCTYPE_AUTH_SEND = 0x05,
	NVME_FCTYPE_AUTH_RECV = 0x06,
	NVME_FCTYPE_DISCONNECT = 0x08,
};

/* Generic view of a Fabrics SQE: opcode 0x7F, FCTYPE at byte 4. */
struct nvme_fabrics_cmd {
	uint8_t opc;
	uint8_t flags;
	uint16_t cid;
	uint8_t fctype;
	uint8_t rsvd5[35];
	uint8_t specific[24];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_fabrics_cmd, 64);

#define NVME_CONNECT_CATTR_DISABLE_SQ_FLOW 0x04u

struct nvme_fabrics_connect_cmd {
	uint8_t opc;
	uint8_t flags;
	uint16_t cid;
	uint8_t fctype;
	uint8_t rsvd5[19];
	struct nvme_sgl_desc sgl1;
	uint16_t recfmt;
	uint16_t qid;
	uint16_t sqsize; /* 0's based */
	uint8_t cattr;
	uint8_t rsvd47;
	uint32_t kato; /* ms */
	uint8_t rsvd52[12];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_fabrics_connect_cmd, 64);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, sgl1, 24);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, recfmt, 40);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, qid, 42);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, sqsize, 44);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, cattr, 46);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_cmd, kato, 48);

#define NVME_NQN_FIELD_LEN 256
#define NVME_NQN_MAX_LEN 223 /* without NUL */
#define NVME_DISCOVERY_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define NVME_CNTLID_DYNAMIC 0xFFFFu

/* Connect data, 1024 bytes, always in-capsule. */
struct nvme_fabrics_connect_data {
	uint8_t hostid[16];
	uint16_t cntlid;
	uint8_t rsvd18[238];
	char subnqn[NVME_NQN_FIELD_LEN];
	char hostnqn[NVME_NQN_FIELD_LEN];
	uint8_t rsvd768[256];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_fabrics_connect_data, 1024);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_data, cntlid, 16);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_data, subnqn, 256);
NVME_ASSERT_OFF(struct nvme_fabrics_connect_data, hostnqn, 512);

/* Connect response DW0: success -> CNTLID in 15:0; invalid param -> IPO 15:0, IATTR 23:16 */
#define NVME_CONNECT_RSP_ATR  (1u << 17)
#define NVME_CONNECT_RSP_ASCR (1u << 18)
#define NVME_CONNECT_RSP_INVALID(iattr, ipo) ((uint32_t)(((iattr) & 0xFFu) << 16) | ((ipo) & 0xFFFFu))
/* IATTR: 0 = field in the SQE, 1 = field in the connect data */

/* Property Get: ATTRIB (bits 2:0: 0 = 4 bytes, 1 = 8 bytes) at 40, OFST at 44. */
#define NVME_PROP_SIZE_4 0u
#define NVME_PROP_SIZE_8 1u

struct nvme_fabrics_prop_get_cmd {
	uint8_t opc;
	uint8_t flags;
	uint16_t cid;
	uint8_t fctype;
	uint8_t rsvd5[19];
	struct nvme_sgl_desc sgl1;
	uint8_t attrib;
	uint8_t rsvd41[3];
	uint32_t ofst;
	uint8_t rsvd48[16];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_fabrics_prop_get_cmd, 64);
NVME_ASSERT_OFF(struct nvme_fabrics_prop_get_cmd, attrib, 40);
NVME_ASSERT_OFF(struct nvme_fabrics_prop_get_cmd, ofst, 44);

struct nvme_fabrics_prop_set_cmd {
	uint8_t opc;
	uint8_t flags;
	uint16_t cid;
	uint8_t fctype;
	uint8_t rsvd5[19];
	struct nvme_sgl_desc sgl1;
	uint8_t attrib;
	uint8_t rsvd41[3];
	uint32_t ofst;
	uint64_t value;
	uint8_t rsvd56[8];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_fabrics_prop_set_cmd, 64);
NVME_ASSERT_OFF(struct nvme_fabrics_prop_set_cmd, value, 48);

/* =================================================== registers (2.3) */

#define NVME_REG_CAP  0x00u /* 8 bytes */
#define NVME_REG_VS   0x08u
#define NVME_REG_CC   0x14u
#define NVME_REG_CSTS 0x1Cu
#define NVME_REG_NSSR 0x20u
#define NVME_REG_CRTO 0x68u

/* CAP */
#define NVME_CAP_MQES(cap)   ((uint32_t)((cap) & 0xFFFFu))
#define NVME_CAP_CQR         (1ull << 16)
#define NVME_CAP_AMS_SHIFT   17
#define NVME_CAP_TO(cap)     ((uint32_t)(((cap) >> 24) & 0xFFu)) /* 500 ms units */
#define NVME_CAP_TO_SHIFT    24
#define NVME_CAP_DSTRD(cap)  ((uint32_t)(((cap) >> 32) & 0xFu))
#define NVME_CAP_NSSRS       (1ull << 36)
#define NVME_CAP_CSS_NVM     (1ull << 37)
#define NVME_CAP_CSS_IOCS    (1ull << 43)
#define NVME_CAP_CSS_NOIO    (1ull << 44)
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xFu))
#define NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xFu))
#define NVME_CAP_CRWMS       (1ull << 59)
#define NVME_CAP_CRIMS       (1ull << 60)

/* CC */
#define NVME_CC_EN            0x1u
#define NVME_CC_CSS_SHIFT     4
#define NVME_CC_CSS_MASK      (0x7u << 4)
#define NVME_CC_MPS_SHIFT     7
#define NVME_CC_MPS_MASK      (0xFu << 7)
#define NVME_CC_AMS_SHIFT     11
#define NVME_CC_AMS_MASK      (0x7u << 11)
#define NVME_CC_SHN_SHIFT     14
#define NVME_CC_SHN_MASK      (0x3u << 14)
#define NVME_CC_SHN_NONE      (0x0u << 14)
#define NVME_CC_SHN_NORMAL    (0x1u << 14)
#define NVME_CC_SHN_ABRUPT    (0x2u << 14)
#define NVME_CC_IOSQES_SHIFT  16
#define NVME_CC_IOSQES_MASK   (0xFu << 16)
#define NVME_CC_IOCQES_SHIFT  20
#define NVME_CC_IOCQES_MASK   (0xFu << 20)
#define NVME_CC_CRIME         (1u << 24)
#define NVME_CC_IOSQES(cc)    (((cc) >> 16) & 0xFu)
#define NVME_CC_IOCQES(cc)    (((cc) >> 20) & 0xFu)
/* EN | IOSQES 6 | IOCQES 4 | CSS NVM | MPS 4 KiB | AMS 0 */
#define NVME_CC_ENABLE_VALUE   0x00460001u
#define NVME_CC_SHUTDOWN_VALUE 0x00464001u

/* CSTS */
#define NVME_CSTS_RDY            0x1u
#define NVME_CSTS_CFS            0x2u
#define NVME_CSTS_SHST_MASK      (0x3u << 2)
#define NVME_CSTS_SHST_NORMAL    (0x0u << 2)
#define NVME_CSTS_SHST_OCCURRING (0x1u << 2)
#define NVME_CSTS_SHST_COMPLETE  (0x2u << 2)
#define NVME_CSTS_NSSRO          (1u << 4)

/* VS */
#define NVME_VS(major, minor, ter) ((uint32_t)(((major) << 16) | ((minor) << 8) | (ter)))
#define NVME_VS_1_3 NVME_VS(1, 3, 0)
#define NVME_VS_1_4 NVME_VS(1, 4, 0)

/* ============================================================ Identify */

/* CDW10 bits 7:0 CNS, 31:16 CNTID; CDW11 bits 31:24 CSI */
enum nvme_identify_cns {
	NVME_CNS_NS = 0x00,
	NVME_CNS_CTRLR = 0x01,
	NVME_CNS_ACTIVE_NS_LIST = 0x02,
	NVME_CNS_NS_ID_DESC_LIST = 0x03,
	NVME_CNS_NVMSET_LIST = 0x04,
	NVME_CNS_CSI_NS = 0x05,
	NVME_CNS_CSI_CTRLR = 0x06,
	NVME_CNS_CSI_ACTIVE_NS_LIST = 0x07,
	NVME_CNS_CS_INDEP_NS = 0x08,
};
#define NVME_IDENTIFY_DATA_LEN 4096u
#define NVME_CSI_NVM 0x00u

#define NVME_CTRLR_CMIC_MULTI_PORT  0x01u
#define NVME_CTRLR_CMIC_MULTI_CTRLR 0x02u
#define NVME_CTRLR_CMIC_ANA         0x08u
#define NVME_CTRLR_CNTRLTYPE_IO     1u
#define NVME_CTRLR_CNTRLTYPE_DISC   2u
#define NVME_CTRLR_CNTRLTYPE_ADMIN  3u
#define NVME_CTRLR_LPA_EXT_DATA     0x04u
#define NVME_CTRLR_LPA_CSES         0x02u
#define NVME_CTRLR_ONCS_COMPARE     0x0001u
#define NVME_CTRLR_ONCS_WRITE_UNC   0x0002u
#define NVME_CTRLR_ONCS_DSM         0x0004u
#define NVME_CTRLR_ONCS_WRITE_ZEROES 0x0008u
#define NVME_CTRLR_ONCS_TIMESTAMP   0x0040u
#define NVME_CTRLR_VWC_PRESENT      0x01u
#define NVME_CTRLR_VWC_NO_BROADCAST_FLUSH 0x04u /* bits 2:1 = 10b */
#define NVME_CTRLR_SGLS_SUPPORTED   0x00000001u /* bits 1:0 = 01b */
#define NVME_CTRLR_SGLS_KEYED       0x00000004u
#define NVME_CTRLR_SGLS_OFFSET      0x00100000u
#define NVME_CTRLR_SGLS_TRANSPORT_DATA_BLOCK 0x00200000u
#define NVME_CTRLR_CTRATT_HOSTID_128 0x00000001u
#define NVME_CTRLR_OAES_NS_ATTR     0x00000100u
#define NVME_CTRLR_OAES_DISC_CHANGE 0x80000000u

/* Power state descriptor, 32 bytes (content unused here). */
struct nvme_power_state {
	uint8_t raw[32];
} NVME_PACKED;

/* Identify Controller data (CNS 0x01), 4096 bytes (3.3). */
struct nvme_id_ctrlr {
	uint16_t vid;
	uint16_t ssvid;
	char sn[20];
	char mn[40];
	char fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic;
	uint8_t mdts; /* log2(max transfer / 4 KiB); 0 = unlimited */
	uint16_t cntlid;
	uint32_t ver;
	uint32_t rtd3r;
	uint32_t rtd3e;
	uint32_t oaes;
	uint32_t ctratt;
	uint16_t rrls;
	uint8_t rsvd102[9];
	uint8_t cntrltype;
	uint8_t fguid[16];
	uint16_t crdt1;
	uint16_t crdt2;
	uint16_t crdt3;
	uint8_t rsvd134[122];
	/* 256: admin command set attributes */
	uint16_t oacs;
	uint8_t acl;
	uint8_t aerl;
	uint8_t frmw;
	uint8_t lpa;
	uint8_t elpe;
	uint8_t npss;
	uint8_t avscc;
	uint8_t apsta;
	uint16_t wctemp;
	uint16_t cctemp;
	uint16_t mtfa;
	uint32_t hmpre;
	uint32_t hmmin;
	uint8_t tnvmcap[16];
	uint8_t unvmcap[16];
	uint32_t rpmbs;
	uint16_t edstt;
	uint8_t dsto;
	uint8_t fwug;
	uint16_t kas; /* 100 ms units */
	uint16_t hctma;
	uint16_t mntmt;
	uint16_t mxtmt;
	uint32_t sanicap;
	uint32_t hmminds;
	uint16_t hmmaxd;
	uint16_t nsetidmax;
	uint16_t endgidmax;
	uint8_t anatt;
	uint8_t anacap;
	uint32_t anagrpmax;
	uint32_t nanagrpid;
	uint32_t pels;
	uint8_t rsvd356[156];
	/* 512: NVM command set attributes */
	uint8_t sqes;
	uint8_t cqes;
	uint16_t maxcmd;
	uint32_t nn;
	uint16_t oncs;
	uint16_t fuses;
	uint8_t fna;
	uint8_t vwc;
	uint16_t awun;
	uint16_t awupf;
	uint8_t nvscc;
	uint8_t nwpc;
	uint16_t acwu;
	uint16_t rsvd534;
	uint32_t sgls;
	uint32_t mnan;
	uint8_t rsvd544[224];
	char subnqn[NVME_NQN_FIELD_LEN];
	uint8_t rsvd1024[768];
	/* 1792: NVMe over Fabrics attributes */
	uint32_t ioccsz; /* 16-byte units */
	uint32_t iorcsz; /* 16-byte units */
	uint16_t icdoff;
	uint8_t fcatt;
	uint8_t msdbd;
	uint16_t ofcs;
	uint8_t rsvd1806[242];
	struct nvme_power_state psd[32];
	uint8_t vs[1024];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_id_ctrlr, 4096);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, cmic, 76);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, mdts, 77);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, cntlid, 78);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, ver, 80);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, oaes, 92);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, ctratt, 96);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, cntrltype, 111);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, crdt1, 128);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, oacs, 256);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, lpa, 261);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, wctemp, 266);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, kas, 320);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, pels, 352);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, sqes, 512);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, maxcmd, 514);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, nn, 516);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, oncs, 520);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, vwc, 525);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, awupf, 528);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, acwu, 532);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, sgls, 536);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, subnqn, 768);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, ioccsz, 1792);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, iorcsz, 1796);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, icdoff, 1800);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, fcatt, 1802);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, msdbd, 1803);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, ofcs, 1804);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, psd, 2048);
NVME_ASSERT_OFF(struct nvme_id_ctrlr, vs, 3072);

/* I/O command set specific Identify Controller, NVM (CNS 0x06, CSI 0). Limits in
 * units of the minimum page size (4 KiB) as a power of two; 0 = no limit. */
struct nvme_id_ctrlr_nvm {
	uint8_t vsl;
	uint8_t wzsl;
	uint8_t wusl;
	uint8_t dmrl;
	uint32_t dmrsl;
	uint64_t dmsl;
	uint8_t rsvd16[4080];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_id_ctrlr_nvm, 4096);

/* LBA format: bits 15:0 MS, 23:16 LBADS (log2 block size), 25:24 RP */
#define NVME_LBAF_MS(f)    ((f) & 0xFFFFu)
#define NVME_LBAF_LBADS(f) (((f) >> 16) & 0xFFu)
#define NVME_LBAF_MAKE(lbads, ms) ((uint32_t)(((lbads) & 0xFFu) << 16) | ((ms) & 0xFFFFu))
#define NVME_NS_FLBAS_INDEX(f) ((f) & 0xFu)
#define NVME_NS_NMIC_SHARED 0x01u
#define NVME_NS_DLFEAT_READ_ZEROES 0x01u /* bits 2:0 = 001b */
#define NVME_NS_DLFEAT_WZ_DEAC 0x08u

/* Identify Namespace data (CNS 0x00), 4096 bytes (3.4). */
struct nvme_id_ns {
	uint64_t nsze;
	uint64_t ncap;
	uint64_t nuse;
	uint8_t nsfeat;
	uint8_t nlbaf; /* 0's based */
	uint8_t flbas;
	uint8_t mc;
	uint8_t dpc;
	uint8_t dps;
	uint8_t nmic;
	uint8_t rescap;
	uint8_t fpi;
	uint8_t dlfeat;
	uint16_t nawun;
	uint16_t nawupf;
	uint16_t nacwu;
	uint16_t nabsn;
	uint16_t nabo;
	uint16_t nabspf;
	uint16_t noiob;
	uint8_t nvmcap[16];
	uint16_t npwg;
	uint16_t npwa;
	uint16_t npdg;
	uint16_t npda;
	uint16_t nows;
	uint8_t rsvd74[18];
	uint32_t anagrpid;
	uint8_t rsvd96[3];
	uint8_t nsattr;
	uint16_t nvmsetid;
	uint16_t endgid;
	uint8_t nguid[16];
	uint8_t eui64[8];
	uint32_t lbaf[16];
	uint8_t rsvd192[3712];
	uint8_t vs[192];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_id_ns, 4096);
NVME_ASSERT_OFF(struct nvme_id_ns, nsfeat, 24);
NVME_ASSERT_OFF(struct nvme_id_ns, nmic, 30);
NVME_ASSERT_OFF(struct nvme_id_ns, dlfeat, 33);
NVME_ASSERT_OFF(struct nvme_id_ns, noiob, 46);
NVME_ASSERT_OFF(struct nvme_id_ns, npwg, 64);
NVME_ASSERT_OFF(struct nvme_id_ns, anagrpid, 92);
NVME_ASSERT_OFF(struct nvme_id_ns, nguid, 104);
NVME_ASSERT_OFF(struct nvme_id_ns, eui64, 120);
NVME_ASSERT_OFF(struct nvme_id_ns, lbaf, 128);
NVME_ASSERT_OFF(struct nvme_id_ns, vs, 3904);

/* Namespace identification descriptor list (CNS 0x03): entries of a 4-byte
 * header followed by NIDL bytes of identifier; a zero NIDT ends the list. */
enum nvme_nidt {
	NVME_NIDT_EUI64 = 0x01, /* 8 bytes */
	NVME_NIDT_NGUID = 0x02, /* 16 bytes */
	NVME_NIDT_UUID = 0x03,  /* 16 bytes */
	NVME_NIDT_CSI = 0x04,   /* 1 byte */
};
#define NVME_NIDT_EUI64_LEN 8
#define NVME_NIDT_NGUID_LEN 16
#define NVME_NIDT_UUID_LEN 16
#define NVME_NIDT_CSI_LEN 1

struct nvme_ns_id_desc {
	uint8_t nidt;
	uint8_t nidl;
	uint16_t rsvd2;
	/* uint8_t nid[nidl] follows */
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_ns_id_desc, 4);

#define NVME_ACTIVE_NS_LIST_MAX 1024u /* u32 NSIDs in a 4 KiB page */

/* ============================================================ log pages */

/* Get Log Page CDW10: 7:0 LID, 14:8 LSP, 15 RAE, 31:16 NUMDL; CDW11 15:0 NUMDU;
 * CDW12/13 offset (LPOL/LPOU). Length = (NUMD + 1) * 4. */
enum nvme_log_id {
	NVME_LOG_ERROR = 0x01,
	NVME_LOG_HEALTH = 0x02,
	NVME_LOG_FIRMWARE_SLOT = 0x03,
	NVME_LOG_CHANGED_NS_LIST = 0x04,
	NVME_LOG_COMMAND_EFFECTS = 0x05,
	NVME_LOG_ANA = 0x0C,
	NVME_LOG_DISCOVERY = 0x70,
};
#define NVME_LOG_RAE (1u << 15)
#define NVME_LOG_ERROR_ENTRY_LEN 64u
#define NVME_LOG_HEALTH_LEN 512u
#define NVME_LOG_FIRMWARE_SLOT_LEN 512u
#define NVME_LOG_CHANGED_NS_LIST_LEN 4096u

/* ============================================================ features */

/* Set/Get Features CDW10: 7:0 FID, 31 SV (set); Get: 10:8 SEL. Value CDW11. */
enum nvme_feature_id {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MANAGEMENT = 0x02,
	NVME_FEAT_TEMPERATURE_THRESHOLD = 0x04,
	NVME_FEAT_ERROR_RECOVERY = 0x05,
	NVME_FEAT_VOLATILE_WRITE_CACHE = 0x06,
	NVME_FEAT_NUMBER_OF_QUEUES = 0x07,
	NVME_FEAT_INTERRUPT_COALESCING = 0x08,
	NVME_FEAT_INTERRUPT_VECTOR_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMICITY = 0x0A,
	NVME_FEAT_ASYNC_EVENT_CONFIG = 0x0B,
	NVME_FEAT_TIMESTAMP = 0x0E,
	NVME_FEAT_KEEP_ALIVE_TIMER = 0x0F,
	NVME_FEAT_HOST_IDENTIFIER = 0x81,
};
#define NVME_FEAT_SAVE (1u << 31)

/* Asynchronous event completion DW0 */
#define NVME_AER_TYPE(dw0) ((dw0) & 0x7u)
#define NVME_AER_INFO(dw0) (((dw0) >> 8) & 0xFFu)
#define NVME_AER_LID(dw0)  (((dw0) >> 16) & 0xFFu)
#define NVME_AER_TYPE_ERROR 0u
#define NVME_AER_TYPE_SMART 1u
#define NVME_AER_TYPE_NOTICE 2u
#define NVME_AER_NOTICE_NS_ATTR_CHANGED 0x00u
#define NVME_AER_NOTICE_DISC_LOG_CHANGE 0xF0u
#define NVME_AER_MAKE(type, info, lid) ((uint32_t)((type) & 0x7u) | ((uint32_t)(info) << 8) | ((uint32_t)(lid) << 16))

/* ====================================================== discovery (5) */

#define NVME_TRTYPE_RDMA 1u
#define NVME_TRTYPE_FC 2u
#define NVME_TRTYPE_TCP 3u
#define NVME_ADRFAM_IPV4 1u
#define NVME_ADRFAM_IPV6 2u
#define NVME_SUBTYPE_DISCOVERY_REFERRAL 1u
#define NVME_SUBTYPE_NVME 2u
#define NVME_SUBTYPE_DISCOVERY_CURRENT 3u
#define NVME_TREQ_SECURE_CHANNEL_NOT_SPECIFIED 0u
#define NVME_TREQ_SECURE_CHANNEL_REQUIRED 1u
#define NVME_TREQ_SECURE_CHANNEL_NOT_REQUIRED 2u
#define NVME_DISC_EFLAGS_DUPRETINFO 0x1u
#define NVME_DISC_EFLAGS_EPCSD 0x2u

struct nvme_discovery_log_header {
	uint64_t genctr;
	uint64_t numrec;
	uint16_t recfmt;
	uint8_t dlpf;
	uint8_t rsvd19;
	uint32_t tdlpl;
	uint8_t rsvd24[1000];
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_discovery_log_header, 1024);
NVME_ASSERT_OFF(struct nvme_discovery_log_header, recfmt, 16);

struct nvme_discovery_log_entry {
	uint8_t trtype;
	uint8_t adrfam;
	uint8_t subtype;
	uint8_t treq;
	uint16_t portid;
	uint16_t cntlid;
	uint16_t asqsz;
	uint16_t eflags;
	uint8_t rsvd12[20];
	char trsvcid[32];   /* space padded */
	uint8_t rsvd64[192];
	char subnqn[256];   /* NUL terminated */
	char traddr[256];   /* space padded */
	uint8_t tsas[256];  /* TCP: byte 0 SECTYPE */
} NVME_PACKED;
NVME_ASSERT_SIZE(struct nvme_discovery_log_entry, 1024);
NVME_ASSERT_OFF(struct nvme_discovery_log_entry, trsvcid, 32);
NVME_ASSERT_OFF(struct nvme_discovery_log_entry, subnqn, 256);
NVME_ASSERT_OFF(struct nvme_discovery_log_entry, traddr, 512);
NVME_ASSERT_OFF(struct nvme_discovery_log_entry, tsas, 768);

/* ================================================== PDU helper functions */

/* CRC-32C digest as used by NVMe/TCP (header over HLEN bytes, data over data bytes). */
uint32_t nvme_tcp_digest(const void *buf, size_t len);

/* Length of the fixed header of a PDU type (HLEN), 0 for an unknown type. */
uint8_t nvme_tcp_pdu_hlen(uint8_t pdu_type);
/* Whether a PDU type may carry a header / data digest once enabled (1.7). */
bool nvme_tcp_pdu_has_hdgst(uint8_t pdu_type);
bool nvme_tcp_pdu_has_ddgst(uint8_t pdu_type);

/* Human-readable names, for logs. Never NULL. */
const char *nvme_tcp_pdu_type_str(uint8_t pdu_type);
const char *nvme_status_str(uint16_t status);

/* ================================================= host library (part 2) */

/*
 * Host NVMe/TCP library. Threading: a controller and its queue pairs are used
 * by one thread at a time (no internal locking); separate controllers are
 * independent. Errors: -ECONNREFUSED/-EHOSTUNREACH (cannot connect),
 * -ETIMEDOUT (no answer in time), -ECONNRESET (connection lost or protocol
 * violation by the target; the controller must then be destroyed),
 * -EIO (the command completed with an NVMe error status; the status is
 * available from nvme_ctrlr_last_status()), -EINVAL (bad argument),
 * -ENOMEM.
 */
struct nvme_ctrlr;
struct nvme_qpair;

struct nvme_connect_opts {
	const char *traddr;   /* IPv4/IPv6 literal or host name */
	const char *trsvcid;  /* port, default "4420" */
	const char *subnqn;   /* required */
	const char *hostnqn;  /* default: "nqn.2014-08.org.nvmexpress:uuid:<random>" */
	const uint8_t *hostid; /* 16 bytes, NULL: random */
	uint32_t io_queues;   /* I/O queue pairs to connect at once (0 = none) */
	uint32_t io_queue_size; /* entries per I/O queue, 0 = 128 (clamped to CAP.MQES+1) */
	uint32_t kato_ms;     /* keep-alive timeout sent in Connect; 0 = none */
	uint32_t timeout_ms;  /* per step of connect and per admin command; 0 = 10000 */
	bool header_digest;
	bool data_digest;
	uint16_t *status_out; /* optional: NVMe status when a command of the connect
			       * sequence failed (-EIO), e.g. Connect rejected */
};

/* Connects the admin queue, enables the controller (CC.EN -> CSTS.RDY),
 * identifies it and connects opts->io_queues I/O queue pairs.
 * On success *out is owned by the caller (nvme_ctrlr_destroy). */
int nvme_ctrlr_connect(const struct nvme_connect_opts *opts, struct nvme_ctrlr **out);
/* Normal shutdown (CC.SHN, wait CSTS.SHST), closes every queue, frees. NULL ok. */
void nvme_ctrlr_destroy(struct nvme_ctrlr *ctrlr);

/* Identify data cached at connect time (valid until destroy). */
const struct nvme_id_ctrlr *nvme_ctrlr_data(const struct nvme_ctrlr *ctrlr);
uint16_t nvme_ctrlr_cntlid(const struct nvme_ctrlr *ctrlr);
/* Max bytes per read/write command: MDTS, capped at 1 MiB. */
uint32_t nvme_ctrlr_max_xfer(const struct nvme_ctrlr *ctrlr);
/* NVMe status of the last failed command run through the blocking API (0 if none). */
uint16_t nvme_ctrlr_last_status(const struct nvme_ctrlr *ctrlr);

/* Namespace facts from Identify Namespace. */
struct nvme_ns_info {
	uint32_t nsid;
	uint32_t block_size;
	uint64_t num_blocks;
	uint8_t nguid[16];
	uint8_t eui64[8];
	uint8_t uuid[16]; /* from the ns id descriptor list, zero if absent */
};

/* Blocking admin commands on the admin queue. buf receives 4096 bytes. */
int nvme_ctrlr_identify(struct nvme_ctrlr *ctrlr, uint8_t cns, uint32_t nsid, void *buf,
			uint32_t timeout_ms);
int nvme_ctrlr_get_log_page(struct nvme_ctrlr *ctrlr, uint8_t lid, uint32_t nsid, uint64_t offset,
			    void *buf, uint32_t len, uint32_t timeout_ms);
int nvme_ctrlr_get_feature(struct nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11, uint32_t *dw0,
			   uint32_t timeout_ms);
int nvme_ctrlr_set_feature(struct nvme_ctrlr *ctrlr, uint8_t fid, uint32_t cdw11, uint32_t *dw0,
			   uint32_t timeout_ms);
int nvme_ctrlr_keep_alive(struct nvme_ctrlr *ctrlr, uint32_t timeout_ms);
int nvme_ctrlr_prop_get(struct nvme_ctrlr *ctrlr, uint32_t ofst, bool size8, uint64_t *value,
			uint32_t timeout_ms);
int nvme_ctrlr_prop_set(struct nvme_ctrlr *ctrlr, uint32_t ofst, bool size8, uint64_t value,
			uint32_t timeout_ms);
/* Identify Namespace (+ descriptor list when VS >= 1.3). */
int nvme_ns_info_get(struct nvme_ctrlr *ctrlr, uint32_t nsid, struct nvme_ns_info *out,
		     uint32_t timeout_ms);

/* Blocking I/O over the controller's I/O queues (one is connected on demand
 * if opts->io_queues was 0; commands go round-robin over all of them, up to
 * 32 in flight per queue). Offsets and lengths are bytes and must be
 * multiples of the namespace block size (-EINVAL), inside the namespace
 * (-ERANGE); long requests are split into commands the controller accepts
 * (MDTS, 65536 blocks, WZSL for write zeroes). After -ETIMEDOUT or
 * -ECONNRESET the I/O queues stay unusable: destroy the controller. */
int nvme_ns_read(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, void *buf, uint64_t len,
		 uint32_t timeout_ms);
int nvme_ns_write(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, const void *buf,
		  uint64_t len, uint32_t timeout_ms);
/* timeout_ms bounds the time without progress, not the whole range. A
 * controller without Write Zeroes gets zero-filled writes instead. */
int nvme_ns_write_zeroes(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, uint64_t len,
			 uint32_t timeout_ms);
int nvme_ns_flush(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint32_t timeout_ms);
/* Deallocate [offset, offset+len) with Dataset Management. */
int nvme_ns_deallocate(struct nvme_ctrlr *ctrlr, uint32_t nsid, uint64_t offset, uint64_t len,
		       uint32_t timeout_ms);

/* ------------------------------------------------ asynchronous qpairs */

/* Completion callback: status is the NVMe status field without the phase
 * bit (0 = success; CQE status with SCT 0/SC 0 is always reported as 0) or,
 * for a transport failure, NVME_QPAIR_STATUS_ABORTED (the qpair is dead). */
#define NVME_QPAIR_STATUS_ABORTED 0xFFFFu
typedef void (*nvme_cmd_cb)(void *arg, uint16_t status, const struct nvme_cqe *cqe);

/* Number of I/O queue pairs connected by nvme_ctrlr_connect. */
uint32_t nvme_ctrlr_num_qpairs(const struct nvme_ctrlr *ctrlr);
/* I/O queue pair i (0-based, qid i+1); owned by the controller. */
struct nvme_qpair *nvme_ctrlr_qpair(struct nvme_ctrlr *ctrlr, uint32_t i);
/* Socket fd of a qpair (for poll/epoll by the caller). */
int nvme_qpair_fd(const struct nvme_qpair *qp);
/* Free command slots. */
uint32_t nvme_qpair_free_slots(const struct nvme_qpair *qp);

/* Queue an I/O command (no syscall until nvme_qpair_flush / nvme_qpair_poll).
 * buf must stay valid until cb runs. -EAGAIN when no slot is free,
 * -ECONNRESET when the qpair is dead. */
int nvme_qpair_read(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
		    void *buf, nvme_cmd_cb cb, void *arg);
int nvme_qpair_write(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
		     const void *buf, nvme_cmd_cb cb, void *arg);
int nvme_qpair_write_zeroes(struct nvme_qpair *qp, uint32_t nsid, uint64_t lba, uint32_t nblocks,
			    nvme_cmd_cb cb, void *arg);
int nvme_qpair_flush_cmd(struct nvme_qpair *qp, uint32_t nsid, nvme_cmd_cb cb, void *arg);
/* Any command; data (len bytes, direction from the opcode) may be NULL. */
int nvme_qpair_submit(struct nvme_qpair *qp, const struct nvme_sqe *sqe, void *data, uint32_t len,
		      nvme_cmd_cb cb, void *arg);
/* Sends queued PDUs (non-blocking). 0 or -ECONNRESET. */
int nvme_qpair_flush(struct nvme_qpair *qp);
/* Sends pending data, receives and completes what has arrived, waiting at
 * most timeout_ms (0 = do not wait, -1 = forever) for the first event.
 * Returns the number of completions (>= 0) or -ECONNRESET. */
int nvme_qpair_poll(struct nvme_qpair *qp, int timeout_ms);
/* Commands submitted and not yet completed. */
uint32_t nvme_qpair_outstanding(const struct nvme_qpair *qp);
/* For long-running async users: sends a Keep Alive on the admin queue when
 * half of KATO has passed and processes admin completions without waiting.
 * 0 or -ECONNRESET. */
int nvme_ctrlr_poll_admin(struct nvme_ctrlr *ctrlr);

#endif /* DE_NVME_H */
