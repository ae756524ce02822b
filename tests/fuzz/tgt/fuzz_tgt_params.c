/*
 * fuzz_tgt_params.c: libFuzzer target for disktgt's parameter decoding and
 * handlers. Input: first byte picks a method, the rest is its params
 * (any JSON; invalid JSON means "no params"). Each input runs through
 * rpc_server_call_local() on a live target (malloc bdev, lvstore, lvol,
 * transport, subsystem created at start) and the loop runs until the call
 * completes. A crash, a sanitizer report, a leak or a call that never
 * completes is a failure.
 *
 * Kept out of the fuzzer's reach (side effects outside the process, or
 * unbounded memory): bdev_aio_create (opens files), load_config (could hold
 * any of these), listeners on non-loopback addresses, large malloc bdevs /
 * I/O, and bdev_get_bdevs' timeout_ms (a pending wait, by design).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "rpc/rpc.h"
#include "tgt/tgt.h"

static const char *const methods[] = {
	"bdev_malloc_create", "bdev_malloc_delete", "bdev_aio_delete", "bdev_aio_rescan",
	"bdev_get_bdevs", "bdev_get_iostat", "bdev_wait_for_examine", "bdev_lvol_create_lvstore",
	"bdev_lvol_get_lvstores", "bdev_lvol_delete_lvstore", "bdev_lvol_rename_lvstore",
	"bdev_lvol_grow_lvstore", "bdev_lvol_create", "bdev_lvol_get_lvols", "bdev_lvol_resize",
	"bdev_lvol_delete", "bdev_lvol_snapshot", "bdev_lvol_clone", "bdev_lvol_rename",
	"bdev_lvol_inflate", "bdev_lvol_decouple_parent", "bdev_lvol_set_read_only",
	"nvmf_create_transport", "nvmf_get_transports", "nvmf_create_subsystem",
	"nvmf_delete_subsystem", "nvmf_get_subsystems", "nvmf_subsystem_add_listener",
	"nvmf_subsystem_remove_listener", "nvmf_subsystem_get_listeners",
	"nvmf_subsystem_get_controllers", "nvmf_subsystem_get_qpairs", "nvmf_subsystem_add_ns",
	"nvmf_subsystem_remove_ns", "nvmf_subsystem_add_host", "nvmf_subsystem_remove_host",
	"nvmf_get_stats", "framework_get_config", "framework_get_subsystems", "save_config",
	"disktgt_inject_fault", "disktgt_bdev_io", "spdk_get_version", "rpc_get_methods",
};

static struct ev_loop *loop;
static struct rpc_server *server;
static struct tgt *target;
static unsigned runs;

struct done {
	bool done;
};

static void on_done(void *arg, json_t *result, int code, const char *message)
{
	((struct done *)arg)->done = true;
}

static void call(const char *method, json_t *params)
{
	struct done d = { false };
	int i;

	if (rpc_server_call_local(server, method, params, on_done, &d))
		return;
	for (i = 0; !d.done && i < 100000; i++)
		ev_loop_run_once(loop, 10);
	if (!d.done) {
		fprintf(stderr, "fuzz-tgt-params: %s never completed\n", method);
		abort();
	}
}

static void setup_call(const char *method, const char *params)
{
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;

	call(method, p);
	json_decref(p);
}

static void target_up(void)
{
	struct tgt_opts opts = { .fault_injection = true };

	if (ev_loop_create(&loop) || rpc_server_create(loop, &server) ||
	    rpc_server_register_builtins(server) || tgt_create(loop, server, &opts, &target))
		abort();
	setup_call("bdev_malloc_create", "{\"name\":\"Malloc0\",\"num_blocks\":4096,\"block_size\":4096}");
	setup_call("bdev_lvol_create_lvstore", "{\"bdev_name\":\"Malloc0\",\"lvs_name\":\"lvs0\",\"cluster_sz\":1048576}");
	setup_call("bdev_lvol_create", "{\"lvol_name\":\"v\",\"size_in_mib\":2,\"lvs_name\":\"lvs0\"}");
	setup_call("nvmf_create_transport", "{\"trtype\":\"TCP\"}");
	setup_call("nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:f\",\"allow_any_host\":true}");
}

static void target_down(void)
{
	tgt_destroy(target);
	rpc_server_destroy(server);
	ev_loop_destroy(loop);
	target = NULL;
	server = NULL;
	loop = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level_set(LOG_LEVEL_ERROR); /* keep the fuzzer's output readable */
	target_up();
	atexit(target_down);
	return 0;
}

static bool too_big(json_t *params)
{
	json_t *nb = json_object_get(params, "num_blocks"), *bs = json_object_get(params, "block_size");
	json_t *len = json_object_get(params, "length");

	if (json_is_number(nb) && json_number_value(nb) * (json_is_number(bs) ? json_number_value(bs) : 512) >
	    (double)(16u << 20))
		return true;
	if (json_is_number(len) && json_number_value(len) > (double)(1u << 20))
		return true;
	return false;
}

static bool non_loopback_listener(json_t *params)
{
	json_t *la = json_object_get(params, "listen_address");
	const char *a = json_string_value(json_object_get(la, "traddr"));

	return la && !(a && !strncmp(a, "127.", 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *method;
	json_t *params = NULL;

	if (size < 1)
		return 0;
	method = methods[data[0] % COMMON_ARRAY_SIZE(methods)];
	if (size > 1)
		params = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (json_is_object(params)) {
		json_object_del(params, "timeout_ms");
		if (too_big(params) || (strstr(method, "listener") && non_loopback_listener(params))) {
			json_decref(params);
			return 0;
		}
	}
	call(method, params);
	json_decref(params);
	/* Bound the state an input sequence can build up. */
	if (++runs % 2000 == 0) {
		target_down();
		target_up();
	}
	return 0;
}
