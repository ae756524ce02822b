/*
 * spdk_conn.c: the agent's connection to the target: one blocking JSON-RPC
 * client (src/rpc) per loop thread, connected lazily, dropped after any
 * transport failure and reconnected on the next call. Maps the outcome of
 * every call to the errno space described in spdk.h.
 */
#include "agent/spdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/metrics.h"
#include "common/common.h"
#include "rpc/rpc.h"

struct spdk_client {
	char *path;
	int timeout_ms;
	struct rpc_client *rpc;
	uint64_t connections;
	uint64_t calls;
	int last_code;
	char last_message[256];
	bool down_logged;
};

int spdk_client_create(const char *socket_path, int timeout_ms, struct spdk_client **out)
{
	struct spdk_client *c = mem_zalloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->path = mem_strdup(socket_path);
	if (!c->path) {
		mem_free(c);
		return -ENOMEM;
	}
	c->timeout_ms = timeout_ms;
	*out = c;
	return 0;
}

void spdk_client_destroy(struct spdk_client *c)
{
	if (!c)
		return;
	rpc_client_destroy(c->rpc);
	mem_free(c->path);
	mem_free(c);
}

uint64_t spdk_client_connections(const struct spdk_client *c) { return c->connections; }
int spdk_client_last_code(const struct spdk_client *c) { return c->last_code; }
const char *spdk_client_last_message(const struct spdk_client *c) { return c->last_message; }
uint64_t spdk_client_calls(const struct spdk_client *c) { return c->calls; }

static int client_ensure(struct spdk_client *c)
{
	int rc;

	if (c->rpc && rpc_client_connected(c->rpc))
		return 0;
	rpc_client_destroy(c->rpc);
	c->rpc = NULL;
	/* Short connect timeout: a missing target is the common transient case. */
	rc = rpc_client_connect(c->path, COMMON_MIN(c->timeout_ms, 1000), &c->rpc);
	if (rc) {
		c->rpc = NULL;
		if (!c->down_logged)
			LOG_WARN("agent", "target unreachable socket=%s err=%s", c->path,
				 common_strerror(rc));
		c->down_logged = true;
		return -ENOTCONN;
	}
	if (c->down_logged)
		LOG_INFO("agent", "target reachable socket=%s", c->path);
	c->down_logged = false;
	c->connections++;
	return 0;
}

/* An error reply of `method`: kept as the last error, mapped to -errno. */
static int remote_error(struct spdk_client *c, const char *method, const struct rpc_error *err)
{
	int rc = spdk_error_classify(method, err->code, err->message);

	c->last_code = err->code;
	snprintf(c->last_message, sizeof(c->last_message), "%s", err->message);
	LOG_DEBUG("agent", "rpc error method=%s code=%d message=\"%s\" err=%d", method, err->code,
		  err->message, rc);
	return rc;
}

int spdk_call(struct spdk_client *c, const char *method, json_t *params, json_t **result)
{
	struct rpc_error err = { 0 };
	json_t *res = NULL;
	uint64_t t0;
	int rc;

	if (result)
		*result = NULL;
	rc = client_ensure(c);
	if (rc) {
		json_decref(params);
		return rc;
	}
	c->calls++;
	t0 = clock_mono_us();
	rc = rpc_client_call(c->rpc, method, params, c->timeout_ms, &res, &err);
	metrics_rpc(method, rc == 0, clock_mono_us() - t0);
	if (rc == 0) {
		if (result)
			*result = res;
		else
			json_decref(res);
		return 0;
	}
	if (rc == -EREMOTE)
		return remote_error(c, method, &err);
	/* Transport failure: drop the connection; the next call reconnects. */
	rpc_client_destroy(c->rpc);
	c->rpc = NULL;
	if (rc == -ETIMEDOUT) {
		LOG_WARN("agent", "rpc timeout method=%s timeout_ms=%d (outcome unknown)", method,
			 c->timeout_ms);
		return -ETIMEDOUT;
	}
	LOG_WARN("agent", "rpc transport failure method=%s err=%s", method, common_strerror(rc));
	return -ENOTCONN;
}

/* The error of an unanswered request after a transport failure. */
static int transport_rc(int rc)
{
	return rc == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
}

int spdk_call_many(struct spdk_client *c, struct spdk_req *reqs, size_t n)
{
	uint64_t first = 0, id, t0;
	size_t i, sent = 0, got = 0;
	int rc;

	for (i = 0; i < n; i++) {
		reqs[i].rc = 1; /* no reply yet */
		reqs[i].result = NULL;
	}
	if (!n)
		return 0;
	rc = client_ensure(c);
	t0 = clock_mono_us();
	if (rc == 0)
		rpc_client_cork(c->rpc);
	for (i = 0; rc == 0 && i < n; i++) {
		rc = rpc_client_send(c->rpc, reqs[i].method, reqs[i].params, &id);
		reqs[i].params = NULL; /* stolen, sent or not */
		if (rc == 0 && sent++ == 0)
			first = id;
		c->calls++;
	}
	for (; i < n; i++) {
		json_decref(reqs[i].params);
		reqs[i].params = NULL;
	}
	if (rc == 0)
		rc = rpc_client_uncork(c->rpc);
	while (rc == 0 && got < sent) {
		struct rpc_error err = { 0 };
		json_t *res = NULL;
		int r = rpc_client_recv(c->rpc, c->timeout_ms, &id, &res, &err);

		if (r != 0 && r != -EREMOTE) {
			rc = r;
			break;
		}
		/* ids of one client are consecutive */
		if (id < first || id - first >= sent) {
			json_decref(res);
			rc = -EPROTO;
			break;
		}
		i = (size_t)(id - first);
		got++;
		metrics_rpc(reqs[i].method, r == 0, clock_mono_us() - t0);
		if (r == 0) {
			reqs[i].rc = 0;
			reqs[i].result = res;
			continue;
		}
		reqs[i].rc = remote_error(c, reqs[i].method, &err);
	}
	if (rc == 0)
		return 0;
	/* Transport failure: every request without a reply has an unknown outcome. */
	for (i = 0; i < n; i++)
		if (reqs[i].rc == 1)
			reqs[i].rc = transport_rc(rc);
	if (c->rpc) {
		if (rc == -ETIMEDOUT)
			LOG_WARN("agent", "rpc timeout in a batch of %zu calls timeout_ms=%d (outcome "
				 "unknown for %zu)", n, c->timeout_ms, sent - got);
		else
			LOG_WARN("agent", "rpc transport failure in a batch of %zu calls err=%s (outcome "
				 "unknown for %zu)", n, common_strerror(rc), sent - got);
		rpc_client_destroy(c->rpc);
		c->rpc = NULL;
	}
	return transport_rc(rc);
}
