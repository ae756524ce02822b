/*
 * tgt.c: disktgt's target context: brings the bdev, lvol and nvmf layers up
 * on the event loop, registers every SPDK-compatible JSON-RPC method (the
 * method files tgt_*.c), and shuts everything down cleanly (stores marked
 * clean) in tgt_destroy().
 */
#include <errno.h>
#include <string.h>

#include "tgt/tgt_internal.h"

int tgt_method(struct tgt *t, const char *name, rpc_handler_fn fn, unsigned flags)
{
	int rc = rpc_server_register(t->server, name, fn, t, flags);

	if (rc)
		LOG_ERROR(TGT_LOG, "cannot register method=%s rc=%d", name, rc);
	return rc;
}

/* lvol delete of an exported lvol: the namespace silently disappears (SPDK). */
static void tgt_lvol_bdev_removed(struct bdev *bdev, void *arg)
{
	struct tgt *t = arg;
	int n = nvmf_tgt_bdev_removed(t->nvmf, bdev);

	if (n > 0)
		LOG_INFO(TGT_LOG, "removed namespaces of deleted bdev name=%s count=%d", bdev_name(bdev), n);
}

int tgt_create(struct ev_loop *loop, struct rpc_server *server, const struct tgt_opts *opts,
	       struct tgt **out)
{
	struct tgt *t;
	int rc;

	t = mem_zalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->server = server;
	if (opts)
		t->opts = *opts;

	rc = bdev_module_init(loop);
	if (rc)
		goto fail;
	t->bdev_up = true;
	rc = lvol_module_init();
	if (rc == -ENOTSUP) {
		/* A build whose lvol layer is a stub: serve everything else. */
		LOG_WARN(TGT_LOG, "lvol module not available, lvol methods will fail");
	} else if (rc) {
		goto fail;
	} else {
		t->lvol_up = true;
	}
	rc = nvmf_tgt_create(loop, &t->nvmf);
	if (rc)
		goto fail;
	lvol_module_set_remove_hook(tgt_lvol_bdev_removed, t);
	rc = tgt_bdev_shared_init(t);
	if (rc)
		goto fail;

	if (!rpc_server_has_method(server, "spdk_get_version")) {
		rc = rpc_server_register_builtins(server);
		if (rc)
			goto fail;
	}
	rc = tgt_bdev_register(t);
	if (!rc)
		rc = tgt_lvol_register(t);
	if (!rc)
		rc = tgt_nvmf_register(t);
	if (!rc)
		rc = tgt_config_register(t);
	if (!rc && t->opts.fault_injection)
		rc = tgt_fault_register(t);
	if (rc)
		goto fail;
	*out = t;
	return 0;
fail:
	LOG_ERROR(TGT_LOG, "target start failed rc=%d (%s)", rc, common_strerror(rc));
	tgt_destroy(t);
	return rc;
}

struct tgt_unload_wait {
	bool done;
	int status;
};

static void tgt_examined(void *arg)
{
	*(bool *)arg = true;
}

static void tgt_unload_done(void *arg, int status)
{
	struct tgt_unload_wait *w = arg;

	w->status = status;
	w->done = true;
}

/* While tgt_destroy() runs the loop (waiting for examine and unload), the
 * RPC server still reads requests: answer them without running anything. */
static bool tgt_stopping_hook(struct rpc_request *req, const char *method, json_t *params, void *ctx)
{
	rpc_request_error(req, RPC_ERROR_INTERNAL, "disktgt is shutting down");
	return true;
}

void tgt_destroy(struct tgt *t)
{
	struct tgt_aio *a;
	struct tgt_fault *f;

	if (!t)
		return;
	t->stopping = true;
	if (t->server)
		rpc_server_set_hook(t->server, tgt_stopping_hook, t);
	tgt_bdev_waits_cancel(t);
	/* Namespaces first (they hold claims on lvol bdevs). */
	nvmf_tgt_destroy(t->nvmf);
	t->nvmf = NULL;
	if (t->lvol_up) {
		struct tgt_unload_wait w = { false, 0 };
		uint64_t deadline = clock_mono_ms() + 60000;
		bool examined = false;

		/* A store still being examined (loaded) would be abandoned. */
		if (bdev_wait_for_examine(tgt_examined, &examined) == 0)
			while (!examined && clock_mono_ms() < deadline)
				ev_loop_run_once(t->loop, 100);
		if (lvol_module_unload_all(tgt_unload_done, &w) == 0) {
			while (!w.done && clock_mono_ms() < deadline)
				ev_loop_run_once(t->loop, 100);
			if (!w.done)
				LOG_ERROR(TGT_LOG, "lvol unload timed out: stores stay dirty");
			else if (w.status)
				LOG_ERROR(TGT_LOG, "lvol unload failed rc=%d", w.status);
			else
				LOG_INFO(TGT_LOG, "every lvstore unloaded clean");
		}
		lvol_module_fini();
	}
	if (t->bdev_up)
		bdev_module_fini();
	tgt_bdev_shared_fini(t);
	while ((a = t->aios)) {
		t->aios = a->next;
		mem_free(a->name);
		mem_free(a->filename);
		mem_free(a);
	}
	tgt_subsys_forget_all(t);
	while ((f = t->faults)) {
		t->faults = f->next;
		mem_free(f->method);
		mem_free(f->message);
		mem_free(f);
	}
	mem_free(t);
}
