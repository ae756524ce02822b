/*
 * io.c: NVM command set I/O of the target (Read, Write, Flush, Write Zeroes,
 * Dataset Management deallocate), translated to asynchronous bdev calls. The
 * data buffer is the request slot's own; nothing is allocated per I/O. Reads
 * of a bdev that exposes its memory (malloc) are sent from it directly.
 */
#include "nvmf/nvmf_internal.h"

#include <errno.h>

static void io_status_set(struct nvmf_req *req, int status)
{
	if (status == 0)
		return;
	req->c2h = false;
	if (status == -EINVAL)
		nvmf_req_set_status(req, NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD, true);
	else
		nvmf_req_set_status(req, NVME_SCT_GENERIC, NVME_SC_INTERNAL_DEVICE_ERROR, false);
}

static void io_done(void *arg, int status);

/* A write with FUA completes only once its data is durable: flush after it. */
static bool fua_flush(struct nvmf_req *req, int status)
{
	const struct nvme_sqe *sqe = (const void *)req->sqe;
	struct nvmf_ns *ns;

	if (status || sqe->opc != NVME_OPC_WRITE || !(sqe->cdw12 & NVME_RW_FUA) || req->fua_done ||
	    req->conn->closed)
		return false;
	req->fua_done = true;
	ns = nvmf_subsystem_ns_find(req->conn->subsys, sqe->nsid);
	if (!ns)
		return false;
	if (bdev_flush(ns->bdev, io_done, req) != 0)
		return false;
	req->pending++;
	req->conn->inflight++;
	return true;
}

static void io_done(void *arg, int status)
{
	struct nvmf_req *req = arg;
	struct nvmf_conn *conn = req->conn;

	if (status && !req->io_status)
		req->io_status = status;
	if (req->pending == 1 && fua_flush(req, req->io_status)) {
		req->pending--;
		nvmf_conn_io_put(conn);
		return;
	}
	if (--req->pending > 0) {
		nvmf_conn_io_put(conn);
		return;
	}
	io_status_set(req, req->io_status);
	conn->tgt->stats.completed_nvme_io++;
	nvmf_req_complete(req);
	nvmf_conn_io_put(conn);
}

static void io_fail(struct nvmf_req *req, uint8_t sc, bool dnr)
{
	req->c2h = false;
	nvmf_req_set_status(req, NVME_SCT_GENERIC, sc, dnr);
	nvmf_req_complete(req);
}

/* Counts a submitted bdev I/O, or records a synchronous refusal. */
static void io_submitted(struct nvmf_req *req, int rc)
{
	if (rc == 0) {
		req->pending++;
		req->conn->inflight++;
	} else if (!req->io_status) {
		req->io_status = rc;
	}
}

/* Called after the last submission: completes at once if nothing is in flight. */
static void io_submit_end(struct nvmf_req *req)
{
	if (req->pending > 0)
		return;
	io_status_set(req, req->io_status);
	nvmf_req_complete(req);
}

static bool lba_range_ok(struct bdev *bdev, uint64_t slba, uint64_t nlb)
{
	uint64_t nb = bdev_num_blocks(bdev);

	return slba < nb && nlb <= nb - slba;
}

/* Zero-copy read: the C2HData PDU's iovec points into the bdev's memory
 * (malloc), so the kernel's copy into the socket is the only one. Not with a
 * data digest: a write to the same blocks between computing the CRC and the
 * kernel's copy would turn into a digest error at the host, so those reads
 * copy into the slot buffer first (CRC and data then agree). Completes the
 * request and returns true, or false when the bdev cannot (-ENOTSUP). */
static bool read_direct(struct nvmf_req *req, struct bdev *bdev, uint64_t offset)
{
	const void *p;

	if (req->conn->ddgst || !req->c2h)
		return false;
	if (bdev_read_direct(bdev, offset, req->data_len, &p, &req->zc_ref) != 0)
		return false;
	req->zc_data = p;
	req->conn->tgt->stats.completed_nvme_io++;
	req->conn->tgt->stats.zcopy_reads++;
	nvmf_req_complete(req);
	return true;
}

void nvmf_io_exec(struct nvmf_req *req)
{
	const struct nvme_sqe *sqe = (const void *)req->sqe;
	struct nvmf_subsystem *s = req->conn->subsys;
	struct nvmf_ns *ns = nvmf_subsystem_ns_find(s, sqe->nsid);
	struct bdev *bdev;
	uint64_t slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
	uint64_t nlb = (uint64_t)(sqe->cdw12 & NVME_RW_NLB_MASK) + 1;
	uint32_t bs;

	req->pending = 0;
	req->io_status = 0;
	req->fua_done = false;
	if (!ns) {
		io_fail(req, NVME_SC_INVALID_NAMESPACE_OR_FORMAT, true);
		return;
	}
	bdev = ns->bdev;
	bs = bdev_block_size(bdev);
	switch (sqe->opc) {
	case NVME_OPC_READ:
	case NVME_OPC_WRITE:
		if (!lba_range_ok(bdev, slba, nlb)) {
			io_fail(req, NVME_SC_LBA_OUT_OF_RANGE, true);
			return;
		}
		if (nlb * bs != req->data_len) {
			io_fail(req, NVME_SC_DATA_SGL_LENGTH_INVALID, true);
			return;
		}
		if (sqe->opc == NVME_OPC_READ && read_direct(req, bdev, slba * bs))
			return;
		if (sqe->opc == NVME_OPC_READ)
			io_submitted(req, bdev_read(bdev, req->buf, slba * bs, req->data_len, io_done, req));
		else
			io_submitted(req, bdev_write(bdev, req->buf, slba * bs, req->data_len, io_done, req));
		break;
	case NVME_OPC_WRITE_ZEROES:
		if (!lba_range_ok(bdev, slba, nlb)) {
			io_fail(req, NVME_SC_LBA_OUT_OF_RANGE, true);
			return;
		}
		io_submitted(req, bdev_write_zeroes(bdev, slba * bs, nlb * bs, io_done, req));
		break;
	case NVME_OPC_FLUSH:
		io_submitted(req, bdev_flush(bdev, io_done, req));
		break;
	case NVME_OPC_DATASET_MANAGEMENT: {
		uint32_t nr = (sqe->cdw10 & 0xFF) + 1;
		if ((uint64_t)nr * sizeof(struct nvme_dsm_range) > req->data_len) {
			io_fail(req, NVME_SC_DATA_SGL_LENGTH_INVALID, true);
			return;
		}
		if (!(sqe->cdw11 & NVME_DSM_ATTR_DEALLOCATE))
			break;
		for (uint32_t i = 0; i < nr; i++) {
			const struct nvme_dsm_range *r = (const void *)(req->buf + i * sizeof(*r));
			if (r->nlb == 0)
				continue;
			if (!lba_range_ok(bdev, r->slba, r->nlb)) {
				if (!req->io_status) {
					/* ranges already submitted still complete; report the error */
					nvmf_req_set_status(req, NVME_SCT_GENERIC, NVME_SC_LBA_OUT_OF_RANGE, true);
					req->io_status = 1;
				}
				break;
			}
			io_submitted(req, bdev_unmap(bdev, r->slba * bs, (uint64_t)r->nlb * bs, io_done, req));
		}
		if (req->io_status == 1) {
			req->io_status = 0; /* status already set */
			if (req->pending == 0) {
				nvmf_req_complete(req);
				return;
			}
		}
		break;
	}
	default:
		io_fail(req, NVME_SC_INVALID_OPCODE, true);
		return;
	}
	req->c2h = req->c2h && sqe->opc == NVME_OPC_READ;
	io_submit_end(req);
}
