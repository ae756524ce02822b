/*
 * tgt.h: disktgt's JSON-RPC method set (SPDK-compatible names, params,
 * results and error codes) over the bdev, lvol and nvmf layers, and the
 * SPDK-style JSON config loaded with `disktgt -c`.
 *
 * Ownership: struct tgt is owned by the caller of tgt_create() and must be
 * destroyed (tgt_destroy) before the rpc server and the event loop.
 */
#ifndef DE_TGT_H
#define DE_TGT_H

#include "common/common.h"

struct rpc_server;
struct tgt;

struct tgt_opts {
	bool fault_injection; /* register disktgt_inject_fault (tests only) */
};

/* Initialises the bdev/lvol/nvmf layers on `loop` and registers every
 * target method on `server`. */
int tgt_create(struct ev_loop *loop, struct rpc_server *server, const struct tgt_opts *opts,
	       struct tgt **out);
/* Loads an SPDK-style config ({"subsystems":[{"subsystem","config":[{method,params}]}]}).
 * Returns 0 or -errno; errors are logged with the failing method. */
int tgt_config_load(struct tgt *tgt, const char *path);
/* Clean shutdown: closes NVMe/TCP connections, marks every blobstore clean. */
void tgt_destroy(struct tgt *tgt);

#endif /* DE_TGT_H */
