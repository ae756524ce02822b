/*
 * tgt.h: disktgt's JSON-RPC method set (SPDK-compatible names, params,
 * results and error codes) over the bdev, lvol and nvmf layers, and the
 * SPDK-style JSON config loaded with `disktgt -c`.
 *
 * Methods (src/tgt/tgt_*.c): every method of shared/spec/spdk-rpc.md, with
 * SPDK v26.09-pre's parameter names, result shapes (key order included) and
 * error codes; shared/spdk-golden is replayed against it by
 * tests/integration/tgt/test_golden_replay.py. Beyond SPDK's target:
 * save_config / load_config as methods (rpc.py does them client side) and,
 * only with tgt_opts.fault_injection (disktgt --enable-fault-injection):
 *   disktgt_inject_fault {method, action: error|drop_reply|exit_after_reply|clear,
 *                         count (1), code (-32603), message}
 *       the next `count` calls of `method` fail with {code, message} without
 *       running, or run but get no reply, or run, reply and then the process
 *       exits (the operation is durable: lvol completions come after the
 *       metadata is on disk);
 *   disktgt_bdev_io {name, op: read|write|write_zeroes|unmap|flush, offset,
 *                    length, pattern}
 *       one I/O through a bdev's data path (read answers {crc32c, byte}).
 *
 * Deviations kept on purpose: bdev_aio_delete / bdev_malloc_delete of a base
 * bdev unload its lvstore (SPDK's hot remove); nvmf_get_subsystems reports
 * passthrough false (no NVMe passthrough: creating one fails) and SPDK's
 * default dmrsl/wzsl; rpc_get_methods lists only what disktgt implements.
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
