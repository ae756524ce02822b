/*
 * tgt_fault.c: test-only methods, registered only when disktgt runs with
 * --enable-fault-injection (tgt_opts.fault_injection):
 *
 *   disktgt_inject_fault {method, action, count, code, message}
 *       the next `count` calls of `method` (default 1):
 *         "error"            fail with {code, message} (the method does not run)
 *         "drop_reply"       run, but the reply is never sent
 *         "exit_after_reply" run, send the reply, then the process exits
 *                            (what was acknowledged is durable: lvol
 *                            operations complete only once on disk)
 *       count 0 (or action "clear") removes the faults of `method`.
 *   disktgt_bdev_io {name, op, offset, length, pattern}
 *       one I/O through a bdev's data path (op: read, write, write_zeroes,
 *       unmap, flush); write fills the buffer with byte `pattern`; read
 *       answers {"crc32c": N, "byte": B} (B = the single byte value of the
 *       whole range, or -1 when it is not uniform). Lets tests fill a thin
 *       lvol or check read-only / inflate behaviour without NVMe/TCP.
 */
#include <errno.h>
#include <string.h>

#include "tgt/tgt_internal.h"

#define TGT_IO_MAX (64u << 20)

static bool fault_hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct tgt_fault **pp, *f;

	for (pp = &t->faults; (f = *pp); pp = &f->next)
		if (!strcmp(f->method, method) && f->count > 0)
			break;
	if (!f)
		return false;
	f->count--;
	LOG_INFO(TGT_LOG, "fault injected method=%s action=%d left=%u", method, f->action, f->count);
	switch (f->action) {
	case TGT_FAULT_ERROR:
		rpc_request_error(req, f->code, f->message ? f->message : "");
		break;
	case TGT_FAULT_DROP_REPLY:
		rpc_request_set_flags(req, rpc_request_flags(req) | RPC_REPLY_DROP);
		break;
	case TGT_FAULT_EXIT_AFTER_REPLY:
		rpc_request_set_flags(req, rpc_request_flags(req) | RPC_REPLY_EXIT);
		break;
	}
	if (f->count == 0) {
		int action = f->action;

		*pp = f->next;
		mem_free(f->method);
		mem_free(f->message);
		mem_free(f);
		return action == TGT_FAULT_ERROR;
	}
	return f->action == TGT_FAULT_ERROR;
}

struct fault_params {
	char *method, *action, *message;
	uint32_t count;
	int32_t code;
};

static const struct rpc_param fault_spec[] = {
	{ "method", RPC_PARAM_STRING, offsetof(struct fault_params, method), false },
	{ "action", RPC_PARAM_STRING, offsetof(struct fault_params, action), true },
	{ "count", RPC_PARAM_UINT32, offsetof(struct fault_params, count), true },
	{ "code", RPC_PARAM_INT32, offsetof(struct fault_params, code), true },
	{ "message", RPC_PARAM_STRING, offsetof(struct fault_params, message), true },
};

static void clear_faults(struct tgt *t, const char *method)
{
	struct tgt_fault **pp = &t->faults, *f;

	while ((f = *pp)) {
		if (!strcmp(f->method, method)) {
			*pp = f->next;
			mem_free(f->method);
			mem_free(f->message);
			mem_free(f);
		} else {
			pp = &f->next;
		}
	}
}

static void m_inject_fault(struct rpc_request *req, json_t *params, void *ctx)
{
	struct tgt *t = ctx;
	struct fault_params p = { 0 };
	struct tgt_fault *f, **tail;
	int action;

	p.count = 1;
	p.code = RPC_ERROR_INTERNAL;
	if (rpc_params_decode(params, fault_spec, COMMON_ARRAY_SIZE(fault_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	if (!p.action || !strcmp(p.action, "error"))
		action = TGT_FAULT_ERROR;
	else if (!strcmp(p.action, "drop_reply"))
		action = TGT_FAULT_DROP_REPLY;
	else if (!strcmp(p.action, "exit_after_reply"))
		action = TGT_FAULT_EXIT_AFTER_REPLY;
	else if (!strcmp(p.action, "clear"))
		action = 0;
	else {
		rpc_request_errorf(req, RPC_ERROR_INVALID_PARAMS, "Unknown action '%s'", p.action);
		goto out;
	}
	if (action == 0 || p.count == 0) {
		clear_faults(t, p.method);
		rpc_request_reply_true(req);
		goto out;
	}
	f = mem_zalloc(sizeof(*f));
	if (!f || !(f->method = mem_strdup(p.method)) ||
	    (p.message && !(f->message = mem_strdup(p.message)))) {
		if (f)
			mem_free(f->method);
		mem_free(f);
		rpc_request_errno(req, -ENOMEM);
		goto out;
	}
	if (action == TGT_FAULT_ERROR && !f->message && !(f->message = mem_strdup(common_strerror(-EIO)))) {
		mem_free(f->method);
		mem_free(f);
		rpc_request_errno(req, -ENOMEM);
		goto out;
	}
	f->count = p.count;
	f->action = action;
	f->code = p.code;
	for (tail = &t->faults; *tail; tail = &(*tail)->next)
		;
	*tail = f;
	LOG_INFO(TGT_LOG, "fault armed method=%s action=%s count=%u", p.method,
		 p.action ? p.action : "error", p.count);
	rpc_request_reply_true(req);
out:
	rpc_params_free(fault_spec, COMMON_ARRAY_SIZE(fault_spec), &p);
}

/* ------------------------------------------------------------ bdev_io */

struct io_params {
	char *name, *op;
	uint64_t offset, length;
	uint32_t pattern;
};

static const struct rpc_param io_spec[] = {
	{ "name", RPC_PARAM_STRING, offsetof(struct io_params, name), false },
	{ "op", RPC_PARAM_STRING, offsetof(struct io_params, op), false },
	{ "offset", RPC_PARAM_UINT64, offsetof(struct io_params, offset), true },
	{ "length", RPC_PARAM_UINT64, offsetof(struct io_params, length), true },
	{ "pattern", RPC_PARAM_UINT32, offsetof(struct io_params, pattern), true },
};

struct io_ctx {
	struct rpc_request *req;
	uint8_t *buf;
	uint64_t len;
	bool read;
};

static void io_done(void *arg, int status)
{
	struct io_ctx *c = arg;

	if (status) {
		rpc_request_errno(c->req, status);
	} else if (c->read) {
		int byte = c->len ? c->buf[0] : -1;
		uint64_t i;

		for (i = 1; i < c->len && byte >= 0; i++)
			if (c->buf[i] != (uint8_t)byte)
				byte = -1;
		rpc_request_reply(c->req, json_pack("{s:I,s:i}", "crc32c",
						    (json_int_t)crc32c(0, c->buf, c->len), "byte", byte));
	} else {
		rpc_request_reply_true(c->req);
	}
	mem_free(c->buf);
	mem_free(c);
}

static void m_bdev_io(struct rpc_request *req, json_t *params, void *ctx)
{
	struct io_params p = { 0 };
	struct io_ctx *c = NULL;
	struct bdev *bdev;
	int rc;

	if (rpc_params_decode(params, io_spec, COMMON_ARRAY_SIZE(io_spec), &p)) {
		rpc_request_decode_failed(req);
		return;
	}
	bdev = bdev_find(p.name);
	if (!bdev) {
		rpc_request_errno(req, -ENODEV);
		goto out;
	}
	if (p.length > TGT_IO_MAX) {
		rpc_request_errno(req, -E2BIG);
		goto out;
	}
	c = mem_zalloc(sizeof(*c));
	if (!c)
		goto nomem;
	c->req = req;
	c->len = p.length;
	if (!strcmp(p.op, "read") || !strcmp(p.op, "write")) {
		c->buf = mem_alloc(p.length ? p.length : 1);
		if (!c->buf)
			goto nomem;
		memset(c->buf, (int)(p.pattern & 0xff), p.length);
	}
	if (!strcmp(p.op, "read")) {
		c->read = true;
		rc = bdev_read(bdev, c->buf, p.offset, p.length, io_done, c);
	} else if (!strcmp(p.op, "write")) {
		rc = bdev_write(bdev, c->buf, p.offset, p.length, io_done, c);
	} else if (!strcmp(p.op, "write_zeroes")) {
		rc = bdev_write_zeroes(bdev, p.offset, p.length, io_done, c);
	} else if (!strcmp(p.op, "unmap")) {
		rc = bdev_unmap(bdev, p.offset, p.length, io_done, c);
	} else if (!strcmp(p.op, "flush")) {
		rc = bdev_flush(bdev, io_done, c);
	} else {
		mem_free(c);
		rpc_request_decode_failed(req);
		goto out;
	}
	if (rc) {
		mem_free(c->buf);
		mem_free(c);
		rpc_request_errno(req, rc);
	}
	goto out;
nomem:
	if (c)
		mem_free(c->buf);
	mem_free(c);
	rpc_request_errno(req, -ENOMEM);
out:
	rpc_params_free(io_spec, COMMON_ARRAY_SIZE(io_spec), &p);
}

int tgt_fault_register(struct tgt *t)
{
	int rc = 0;

	rc |= tgt_method(t, "disktgt_bdev_io", m_bdev_io, 0);
	rc |= tgt_method(t, "disktgt_inject_fault", m_inject_fault, 0);
	if (!rc)
		rpc_server_set_hook(t->server, fault_hook, t);
	return rc ? -EINVAL : 0;
}
