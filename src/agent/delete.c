/*
 * delete.c: the delete loop (DESIGN.md loop 3). For every lvol or snapshot
 * of this node in DELETING: if its lvstore is not loaded, defer ("not found"
 * would mean "unknown", never "gone"); else remove the namespace and the
 * subsystem first, then bdev_lvol_delete; a name absent from the loaded
 * lvstore's listing means already deleted → DELETED. Afterwards the disk's
 * free bytes are re-synced from bdev_lvol_get_lvstores.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

static void note(struct agent_loop *l, bool snapshot, int64_t id, const char *old_reason,
		 const char *reason)
{
	if (strcmp(old_reason, reason) == 0)
		return;
	LOG_INFO("agent", "%s delete waiting id=%" PRId64 " reason=\"%s\"",
		 snapshot ? "snapshot" : "lvol", id, reason);
	if (snapshot)
		db_snapshot_set_reason(l->db, id, reason);
	else
		db_lvol_set_reason(l->db, id, reason);
}

/* Namespace(s) then subsystem of lvol `id`. */
static int unexport(struct agent_loop *l, int64_t id, const struct agent_view *v)
{
	char nqn[AGENT_NQN_MAX];
	const struct spdk_subsystem *sub;
	int rc;

	agent_lvol_nqn(l->nqn_prefix, id, nqn);
	sub = spdk_subsystem_find(&v->subsystems, nqn);
	if (!sub)
		return 0;
	for (size_t i = 0; i < sub->n_ns; i++) {
		rc = spdk_nvmf_ns_remove(l->spdk, nqn, sub->ns[i].nsid);
		if (rc && rc != -EINVAL && rc != -ENODEV)
			return rc;
		agent_crash("delete.after_ns_remove");
	}
	rc = spdk_nvmf_subsystem_delete(l->spdk, nqn);
	if (rc && rc != -ENODEV && rc != -EINVAL)
		return rc;
	LOG_INFO("agent", "subsystem deleted nqn=%s", nqn);
	agent_crash("delete.after_subsystem_delete");
	return 0;
}

static void resync_free(struct agent_loop *l, const struct db_disk *d)
{
	struct spdk_lvstore_list s;

	if (spdk_lvstore_get(l->spdk, d->lvstore_uuid, NULL, &s) == 0 && s.n == 1) {
		const struct spdk_lvstore *x = &s.v[0];

		db_disk_observe(l->db, d->id, DB_LVSTORE_LOADED,
				x->total_data_clusters * x->cluster_size,
				x->free_clusters * x->cluster_size);
	}
	spdk_lvstore_list_free(&s);
}

/* Returns a transient error to stop the pass; 1 if a row was finalized. */
static int delete_one(struct agent_loop *l, const struct db_disk *d, bool snapshot, int64_t id,
		      const char *uuid, uint64_t gen, const char *reason,
		      const struct agent_view *v)
{
	const struct spdk_lvol *tl;
	char name[40];
	int idx, rc;

	idx = agent_view_lvstore(v, d->lvstore_uuid);
	if (idx < 0 || !v->lvols_ok[idx]) {
		note(l, snapshot, id, reason, "lvstore not loaded in the target; delete deferred");
		return 0;
	}
	if (!snapshot) {
		rc = unexport(l, id, v);
		if (rc) {
			if (spdk_call_is_transient(rc))
				return rc;
			note(l, false, id, reason, spdk_client_last_message(l->spdk));
			return 0;
		}
	}
	if (snapshot)
		agent_snapshot_name(id, name);
	else
		snprintf(name, sizeof(name), "%" PRId64, id);
	tl = agent_view_lvol(v, d->lvstore_uuid, name);
	if (tl && uuid[0] && strcmp(tl->uuid, uuid) != 0) {
		/* Same name, another volume: not ours to delete. */
		LOG_WARN("agent", "%s %s has uuid %s, the row says %s: not deleted",
			 snapshot ? "snapshot" : "lvol", name, tl->uuid, uuid);
		tl = NULL;
	}
	if (tl) {
		rc = spdk_lvol_delete(l->spdk, tl->uuid);
		if (rc && rc != -ENODEV) {
			char why[DB_REASON_MAX];

			if (spdk_call_is_transient(rc))
				return rc;
			if (rc == -EPERM && snapshot)
				snprintf(why, sizeof(why), "snapshot has more than one clone; "
					 "delete or inflate its clones first");
			else
				snprintf(why, sizeof(why), "bdev_lvol_delete failed: %s (%s)",
					 common_strerror(rc), spdk_client_last_message(l->spdk));
			note(l, snapshot, id, reason, why);
			return 0;
		}
		LOG_INFO("agent", "%s deleted id=%" PRId64 " uuid=%s", snapshot ? "snapshot" : "lvol",
			 id, tl->uuid);
		agent_crash(snapshot ? "delete.after_snapshot_delete" : "delete.after_lvol_delete");
	}
	if (snapshot)
		rc = db_snapshot_set_state(l->db, id, gen, DB_SNAPSHOT_DELETED, NULL);
	else
		rc = db_lvol_set_state(l->db, id, gen, DB_LVOL_DELETED, NULL);
	if (rc) {
		LOG_WARN("agent", "%s not finalized id=%" PRId64 " err=%s",
			 snapshot ? "snapshot" : "lvol", id, common_strerror(rc));
		return 0;
	}
	LOG_INFO("agent", "%s finalized id=%" PRId64 " state=DELETED", snapshot ? "snapshot" : "lvol",
		 id);
	agent_crash("delete.after_finalize");
	return 1;
}

void agent_delete_tick(struct agent_loop *l)
{
	struct db_disk *disks = NULL;
	struct db_lvol *lvols = NULL;
	struct db_snapshot *snaps = NULL;
	size_t n_disks = 0, n_lvols = 0, n_snaps = 0;
	struct agent_view v = { 0 };
	bool *touched = NULL, *done = NULL;
	int rc;

	rc = db_lvol_list_by_state(l->db, l->node.name, DB_LVOL_DELETING, &lvols, &n_lvols);
	if (rc == 0)
		rc = db_snapshot_list_by_state(l->db, l->node.name, DB_SNAPSHOT_DELETING, &snaps,
					       &n_snaps);
	if (rc == 0 && (n_lvols || n_snaps))
		rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc) {
		LOG_WARN("agent", "db read failed loop=delete err=%s db=\"%s\"", common_strerror(rc),
			 db_errmsg(l->db));
		goto out;
	}
	if (!n_lvols && !n_snaps)
		goto out;
	touched = mem_zalloc((n_disks + 1) * sizeof(*touched));
	if (!touched)
		goto out;
	rc = agent_view_fetch(l, &v, true, n_lvols > 0, false);
	if (rc)
		goto out;

	/* Many lvols: every step pipelined over all of them; the rest one by
	 * one below, on a fresh view. */
	if (n_lvols > 1) {
		bool batched = false;

		done = mem_zalloc(n_lvols * sizeof(*done));
		if (!done)
			goto out;
		rc = agent_delete_batch(l, disks, n_disks, lvols, n_lvols, &v, done, touched,
					&batched);
		if (rc)
			goto out;
		if (batched) {
			agent_view_free(&v);
			if ((rc = agent_view_fetch(l, &v, true, true, false)) != 0)
				goto out;
		}
	}
	/* Lvols first: a snapshot's clones are usually deleted with it. */
	for (size_t i = 0; i < n_lvols && !agent_stopping(l->agent); i++) {
		const struct db_lvol *lv = &lvols[i];
		const struct db_disk *d = agent_disk_find(disks, n_disks, lv->disk_id);

		if (!d || (done && done[i]))
			continue;
		rc = delete_one(l, d, false, lv->id, lv->uuid, lv->generation, lv->reason, &v);
		if (rc < 0)
			goto out;
		if (rc > 0)
			touched[d - disks] = true;
	}
	for (size_t i = 0; i < n_snaps && !agent_stopping(l->agent); i++) {
		const struct db_snapshot *s = &snaps[i];
		const struct db_disk *d = agent_disk_find(disks, n_disks, s->disk_id);

		if (!d)
			continue;
		rc = delete_one(l, d, true, s->id, s->uuid, s->generation, s->reason, &v);
		if (rc < 0)
			goto out;
		if (rc > 0)
			touched[d - disks] = true;
	}
out:
	for (size_t i = 0; touched && i < n_disks; i++)
		if (touched[i])
			resync_free(l, &disks[i]);
	mem_free(touched);
	mem_free(done);
	agent_view_free(&v);
	db_disk_list_free(disks, n_disks);
	db_lvol_list_free(lvols, n_lvols);
	db_snapshot_list_free(snaps, n_snaps);
}
