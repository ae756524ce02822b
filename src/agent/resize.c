/*
 * resize.c: the resize loop (DESIGN.md loop 2). For every lvol in RESIZING:
 * read the target's current size; FIRST persist the zeroing intent
 * (zero_from = current, zero_to = new size); then bdev_lvol_resize (skipped
 * when the target already has the size); then zero [zero_done, zero_to)
 * through NVMe/TCP Write Zeroes on the lvol's own subsystem (the agent's
 * host NQN is allowed there), recording progress after each chunk so a
 * restart resumes; only then clear the intent and mark READY. Any failure
 * leaves the row RESIZING with the reason; a later tick finishes it, so the
 * zero is never lost. Thin lvols need no zeroing (unallocated clusters read
 * zero and a first write allocates a zeroed cluster).
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "nvme/nvme.h"

static struct agent_backoff *backoff_find(struct agent_loop *l, int64_t id)
{
	for (size_t i = 0; i < l->n_backoff; i++)
		if (l->backoff[i].id == id)
			return &l->backoff[i];
	return NULL;
}

bool agent_backoff_ready(struct agent_loop *l, int64_t id)
{
	struct agent_backoff *b = backoff_find(l, id);

	return !b || clock_mono_ms() >= b->next_ms;
}

void agent_backoff_fail(struct agent_loop *l, int64_t id)
{
	struct agent_backoff *b = backoff_find(l, id);

	if (!b) {
		struct agent_backoff *v = mem_realloc(l->backoff, (l->n_backoff + 1) * sizeof(*v));

		if (!v)
			return;
		l->backoff = v;
		b = &v[l->n_backoff++];
		b->id = id;
		b->delay_ms = 0;
	}
	b->delay_ms = b->delay_ms ? COMMON_MIN(b->delay_ms * 2, (uint64_t)60000) : 1000;
	b->next_ms = clock_mono_ms() + b->delay_ms;
}

void agent_backoff_clear(struct agent_loop *l, int64_t id)
{
	struct agent_backoff *b = backoff_find(l, id);

	if (b)
		*b = l->backoff[--l->n_backoff];
}

static void note(struct agent_loop *l, const struct db_lvol *lv, const char *reason)
{
	if (strcmp(lv->reason, reason) == 0)
		return;
	LOG_WARN("agent", "resize waiting id=%" PRId64 " reason=\"%s\"", lv->id, reason);
	db_lvol_set_reason(l->db, lv->id, reason);
}

static int lvol_size(struct agent_loop *l, const char *uuid, uint64_t *out)
{
	struct spdk_bdev_list b;
	int rc = spdk_bdev_get(l->spdk, uuid, &b);

	if (rc == 0 && b.n != 1)
		rc = -ENODEV;
	if (rc == 0)
		*out = b.v[0].num_blocks * b.v[0].block_size;
	spdk_bdev_list_free(&b);
	return rc;
}

/* Picks the listener to zero through: a loopback address when the disk has
 * one (same host), else the first. */
static int zero_target(const struct db_disk *d, struct spdk_listen_addr *out)
{
	struct spdk_listen_addr *a = NULL;
	size_t n = 0, pick = 0;
	int rc = agent_disk_listeners(d, &a, &n);

	if (rc)
		return rc;
	if (!n) {
		mem_free(a);
		return -EADDRNOTAVAIL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(a[i].traddr, "127.", 4) == 0 || strcmp(a[i].traddr, "::1") == 0) {
			pick = i;
			break;
		}
	*out = a[pick];
	if (strcmp(out->traddr, "0.0.0.0") == 0)
		snprintf(out->traddr, sizeof(out->traddr), "127.0.0.1");
	mem_free(a);
	return 0;
}

int agent_zero_range(struct agent_loop *l, const struct db_disk *d, struct db_lvol *lv)
{
	struct nvme_connect_opts o = { 0 };
	struct nvme_ctrlr *ctrlr = NULL;
	struct spdk_listen_addr addr;
	char nqn[AGENT_NQN_MAX];
	uint64_t chunk = l->agent->opt.zero_chunk;
	int rc;

	rc = zero_target(d, &addr);
	if (rc)
		return rc;
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	o.traddr = addr.traddr;
	o.trsvcid = addr.trsvcid;
	o.subnqn = nqn;
	o.hostnqn = l->host_nqn;
	o.io_queues = 1;
	o.timeout_ms = (uint32_t)l->agent->opt.nvme_timeout_ms;
	LOG_INFO("agent", "zeroing id=%" PRId64 " start=%" PRIu64 " end=%" PRIu64 " traddr=%s trsvcid=%s",
		 lv->id, lv->zero_done, lv->zero_to, addr.traddr, addr.trsvcid);
	rc = nvme_ctrlr_connect(&o, &ctrlr);
	if (rc)
		return rc;
	while (lv->zero_done < lv->zero_to && !agent_stopping(l->agent)) {
		uint64_t len = COMMON_MIN(chunk, lv->zero_to - lv->zero_done);

		rc = nvme_ns_write_zeroes(ctrlr, AGENT_NSID, lv->zero_done, len,
					  (uint32_t)l->agent->opt.nvme_timeout_ms);
		if (rc)
			break;
		lv->zero_done += len;
		rc = db_lvol_zero_progress(l->db, lv->id, lv->zero_done);
		if (rc)
			break;
		agent_crash("resize.after_zero_chunk");
	}
	nvme_ctrlr_destroy(ctrlr);
	if (rc == 0 && lv->zero_done < lv->zero_to)
		rc = -EINTR; /* stopping */
	return rc;
}

/* Returns a transient error to stop the pass, else 0. */
static int resize_one(struct agent_loop *l, const struct db_disk *d, struct db_lvol *lv,
		      const struct agent_view *v)
{
	const struct spdk_lvstore *s;
	const struct spdk_subsystem *sub;
	char nqn[AGENT_NQN_MAX], why[DB_REASON_MAX];
	uint64_t cur = 0, want;
	int idx, rc;

	idx = agent_view_lvstore(v, d->lvstore_uuid);
	if (idx < 0) {
		note(l, lv, "lvstore not loaded in the target; resize deferred");
		return 0;
	}
	s = &v->lvstores.v[idx];
	if (!lv->uuid[0]) {
		note(l, lv, "lvol has no uuid recorded");
		return 0;
	}
	rc = lvol_size(l, lv->uuid, &cur);
	if (rc) {
		if (spdk_call_is_transient(rc))
			return rc;
		note(l, lv, "lvol missing in the target; resize impossible");
		return 0;
	}
	want = agent_size_real(lv->size, s->cluster_size);

	/* 1. Intent first (only for a thick grow without one pending). */
	if (!lv->thin && lv->zero_to <= lv->zero_from && cur < want) {
		rc = db_lvol_zero_begin(l->db, lv->id, lv->generation, cur, want);
		if (rc) {
			LOG_WARN("agent", "zero intent not recorded id=%" PRId64 " err=%s", lv->id,
				 common_strerror(rc));
			return 0;
		}
		lv->zero_from = lv->zero_done = cur;
		lv->zero_to = want;
		LOG_INFO("agent", "zero intent recorded id=%" PRId64 " from=%" PRIu64 " to=%" PRIu64,
			 lv->id, cur, want);
		agent_crash("resize.after_intent");
	}

	/* 2. Resize unless the target already has the size. */
	if (cur != want) {
		rc = spdk_lvol_resize(l->spdk, lv->uuid, agent_size_mib(lv->size));
		if (rc) {
			if (spdk_call_is_transient(rc))
				return rc;
			snprintf(why, sizeof(why), "bdev_lvol_resize failed: %s (%s)",
				 common_strerror(rc), spdk_client_last_message(l->spdk));
			note(l, lv, why);
			return 0;
		}
		LOG_INFO("agent", "lvol resized id=%" PRId64 " from=%" PRIu64 " size_mib=%" PRIu64,
			 lv->id, cur, agent_size_mib(lv->size));
		agent_crash("resize.after_resize");
		rc = lvol_size(l, lv->uuid, &cur);
		if (rc)
			return spdk_call_is_transient(rc) ? rc : 0;
	}

	/* 3. Zero the new region through the lvol's own subsystem. */
	if (lv->zero_to > lv->zero_from && lv->zero_done < lv->zero_to) {
		if (lv->zero_to > cur)
			lv->zero_to = cur;
		agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
		sub = spdk_subsystem_find(&v->subsystems, nqn);
		rc = agent_nvmf_ensure(l, d, lv, sub);
		if (rc == 0)
			rc = agent_nvmf_export(l, lv, sub);
		if (rc) {
			if (spdk_call_is_transient(rc))
				return rc;
			note(l, lv, "export for zeroing not ready");
			return 0;
		}
		if (!agent_backoff_ready(l, lv->id))
			return 0;
		rc = agent_zero_range(l, d, lv);
		if (rc && rc != -EINTR)
			agent_backoff_fail(l, lv->id);
		if (rc) {
			snprintf(why, sizeof(why), "zeroing [%" PRIu64 ", %" PRIu64 ") stopped at %"
				 PRIu64 ": %s; retried", lv->zero_from, lv->zero_to, lv->zero_done,
				 common_strerror(rc));
			if (rc != -EINTR)
				note(l, lv, why);
			return 0;
		}
		agent_backoff_clear(l, lv->id);
		LOG_INFO("agent", "zeroed id=%" PRId64 " from=%" PRIu64 " to=%" PRIu64, lv->id,
			 lv->zero_from, lv->zero_to);
	}

	/* 4. Clear the intent, record the size, READY. */
	agent_crash("resize.before_done");
	rc = db_lvol_resize_done(l->db, lv->id, lv->generation, cur);
	if (rc) {
		LOG_WARN("agent", "resize not finalized id=%" PRId64 " err=%s", lv->id,
			 common_strerror(rc));
		return 0;
	}
	LOG_INFO("agent", "lvol ready id=%" PRId64 " real_size=%" PRIu64 " (resized)", lv->id, cur);
	agent_crash("resize.after_done");
	return 0;
}

void agent_resize_tick(struct agent_loop *l)
{
	struct db_disk *disks = NULL;
	struct db_lvol *lvols = NULL;
	size_t n_disks = 0, n_lvols = 0;
	struct agent_view v = { 0 };
	int rc;

	rc = db_lvol_list_by_state(l->db, l->node.name, DB_LVOL_RESIZING, &lvols, &n_lvols);
	if (rc == 0 && n_lvols)
		rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc) {
		LOG_WARN("agent", "db read failed loop=resize err=%s db=\"%s\"", common_strerror(rc),
			 db_errmsg(l->db));
		goto out;
	}
	if (!n_lvols)
		goto out;
	rc = agent_view_fetch(l, &v, false, true, false);
	if (rc)
		goto out;
	for (size_t i = 0; i < n_lvols && !agent_stopping(l->agent); i++) {
		const struct db_disk *d = agent_disk_find(disks, n_disks, lvols[i].disk_id);

		if (!d)
			continue;
		if (resize_one(l, d, &lvols[i], &v))
			break;
	}
out:
	agent_view_free(&v);
	db_disk_list_free(disks, n_disks);
	db_lvol_list_free(lvols, n_lvols);
}
