/*
 * builtin.c: the methods that belong to the RPC layer itself, as in SPDK:
 * spdk_get_version and rpc_get_methods.
 */
#include <errno.h>
#include <stddef.h>

#include "common/common.h"
#include "rpc/rpc.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* The result never changes: written once, sent as raw text. */
static const char version_result[] =
	"{\"version\":\"" RPC_SPDK_VERSION_STRING "\",\"fields\":{\"major\":" STR(RPC_SPDK_VERSION_MAJOR)
	",\"minor\":" STR(RPC_SPDK_VERSION_MINOR) ",\"patch\":" STR(RPC_SPDK_VERSION_PATCH)
	",\"suffix\":\"" RPC_SPDK_VERSION_SUFFIX "\"}}";

static void builtin_get_version(struct rpc_request *req, json_t *params, void *ctx)
{
	rpc_request_reply_raw(req, version_result, sizeof(version_result) - 1);
}

struct get_methods_params {
	bool current;
	bool include_aliases;
};

static const struct rpc_param get_methods_spec[] = {
	{ "current", RPC_PARAM_BOOL, offsetof(struct get_methods_params, current), true },
	{ "include_aliases", RPC_PARAM_BOOL, offsetof(struct get_methods_params, include_aliases),
	  true },
};

static void builtin_get_methods(struct rpc_request *req, json_t *params, void *ctx)
{
	struct get_methods_params p = { 0 };
	struct rpc_server *s = ctx;
	json_t *names;

	/* SPDK answers a decode failure here with -32602, not -32603. */
	if (params && rpc_params_decode(params, get_methods_spec,
					COMMON_ARRAY_SIZE(get_methods_spec), &p)) {
		rpc_request_error(req, RPC_ERROR_INVALID_PARAMS, RPC_MSG_INVALID_PARAMS);
		return;
	}
	/* Every method is callable at runtime and there are no deprecated
	 * aliases, so `current` and `include_aliases` change nothing. */
	names = rpc_server_method_names(s);
	if (!names) {
		rpc_request_errno(req, -ENOMEM);
		return;
	}
	rpc_request_reply(req, names);
}

int rpc_server_register_builtins(struct rpc_server *s)
{
	int rc;

	/* SPDK lists methods most recent first; registering these two first
	 * puts them at the end of rpc_get_methods like in SPDK. */
	rc = rpc_server_register(s, "rpc_get_methods", builtin_get_methods, s, 0);
	if (rc == 0)
		rc = rpc_server_register(s, "spdk_get_version", builtin_get_version, s,
					 RPC_FLAG_NO_PARAMS);
	return rc;
}
