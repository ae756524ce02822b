/* nvme_wire.c: small helpers over the NVMe/TCP wire definitions of nvme.h
 * (digests, per-PDU-type header facts, names for logs). Shared by host and target. */
#include "nvme/nvme.h"

#include "common/common.h"

#include <stdio.h>

uint32_t nvme_tcp_digest(const void *buf, size_t len)
{
	return crc32c(0, buf, len);
}

uint8_t nvme_tcp_pdu_hlen(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_IC_REQ:
	case NVME_TCP_PDU_IC_RESP:
		return NVME_TCP_IC_LEN;
	case NVME_TCP_PDU_CAPSULE_CMD:
		return NVME_TCP_CAPSULE_CMD_HLEN;
	case NVME_TCP_PDU_H2C_TERM_REQ:
	case NVME_TCP_PDU_C2H_TERM_REQ:
	case NVME_TCP_PDU_CAPSULE_RESP:
	case NVME_TCP_PDU_H2C_DATA:
	case NVME_TCP_PDU_C2H_DATA:
	case NVME_TCP_PDU_R2T:
		return NVME_TCP_PSH24_HLEN;
	default:
		return 0;
	}
}

bool nvme_tcp_pdu_has_hdgst(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_CAPSULE_CMD:
	case NVME_TCP_PDU_CAPSULE_RESP:
	case NVME_TCP_PDU_H2C_DATA:
	case NVME_TCP_PDU_C2H_DATA:
	case NVME_TCP_PDU_R2T:
		return true;
	default:
		return false;
	}
}

bool nvme_tcp_pdu_has_ddgst(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_CAPSULE_CMD:
	case NVME_TCP_PDU_H2C_DATA:
	case NVME_TCP_PDU_C2H_DATA:
		return true;
	default:
		return false;
	}
}

const char *nvme_tcp_pdu_type_str(uint8_t pdu_type)
{
	switch (pdu_type) {
	case NVME_TCP_PDU_IC_REQ: return "ICReq";
	case NVME_TCP_PDU_IC_RESP: return "ICResp";
	case NVME_TCP_PDU_H2C_TERM_REQ: return "H2CTermReq";
	case NVME_TCP_PDU_C2H_TERM_REQ: return "C2HTermReq";
	case NVME_TCP_PDU_CAPSULE_CMD: return "CapsuleCmd";
	case NVME_TCP_PDU_CAPSULE_RESP: return "CapsuleResp";
	case NVME_TCP_PDU_H2C_DATA: return "H2CData";
	case NVME_TCP_PDU_C2H_DATA: return "C2HData";
	case NVME_TCP_PDU_R2T: return "R2T";
	default: return "unknown";
	}
}

static const char *generic_sc_str(uint8_t sc)
{
	switch (sc) {
	case NVME_SC_SUCCESS: return "success";
	case NVME_SC_INVALID_OPCODE: return "invalid opcode";
	case NVME_SC_INVALID_FIELD: return "invalid field";
	case NVME_SC_COMMAND_ID_CONFLICT: return "command id conflict";
	case NVME_SC_DATA_TRANSFER_ERROR: return "data transfer error";
	case NVME_SC_INTERNAL_DEVICE_ERROR: return "internal error";
	case NVME_SC_ABORTED_BY_REQUEST: return "aborted";
	case NVME_SC_INVALID_NAMESPACE_OR_FORMAT: return "invalid namespace";
	case NVME_SC_COMMAND_SEQUENCE_ERROR: return "command sequence error";
	case NVME_SC_DATA_SGL_LENGTH_INVALID: return "data sgl length invalid";
	case NVME_SC_SGL_DESCRIPTOR_TYPE_INVALID: return "sgl descriptor type invalid";
	case NVME_SC_INVALID_SGL_OFFSET: return "invalid sgl offset";
	case NVME_SC_KEEP_ALIVE_INVALID: return "keep alive timer invalid";
	case NVME_SC_TRANSIENT_TRANSPORT_ERROR: return "transient transport error";
	case NVME_SC_LBA_OUT_OF_RANGE: return "lba out of range";
	case NVME_SC_CAPACITY_EXCEEDED: return "capacity exceeded";
	case NVME_SC_NAMESPACE_NOT_READY: return "namespace not ready";
	default: return "generic error";
	}
}

static const char *specific_sc_str(uint8_t sc)
{
	switch (sc) {
	case NVME_SC_INVALID_QUEUE_IDENTIFIER: return "invalid queue identifier";
	case NVME_SC_INVALID_QUEUE_SIZE: return "invalid queue size";
	case NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED: return "aer limit exceeded";
	case NVME_SC_INVALID_LOG_PAGE: return "invalid log page";
	case NVME_SC_FEATURE_NOT_SAVEABLE: return "feature not saveable";
	case NVME_SC_FABRIC_INCOMPATIBLE_FORMAT: return "connect incompatible format";
	case NVME_SC_FABRIC_CONTROLLER_BUSY: return "connect controller busy";
	case NVME_SC_FABRIC_INVALID_PARAM: return "connect invalid parameters";
	case NVME_SC_FABRIC_INVALID_HOST: return "connect invalid host";
	case NVME_SC_FABRIC_INVALID_QUEUE_TYPE: return "invalid queue type";
	case NVME_SC_FABRIC_AUTH_REQUIRED: return "authentication required";
	default: return "command specific error";
	}
}

const char *nvme_status_str(uint16_t status)
{
	uint8_t sct = NVME_STATUS_SCT(status), sc = NVME_STATUS_SC(status);

	if (status == NVME_QPAIR_STATUS_ABORTED)
		return "aborted (transport)";
	switch (sct) {
	case NVME_SCT_GENERIC: return generic_sc_str(sc);
	case NVME_SCT_COMMAND_SPECIFIC: return specific_sc_str(sc);
	case NVME_SCT_MEDIA:
		return sc == NVME_SC_UNRECOVERED_READ_ERROR ? "unrecovered read error" : "media error";
	case NVME_SCT_PATH: return "path error";
	default: return "vendor error";
	}
}
