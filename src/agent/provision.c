/*
 * provision.c: the provisioning loop (DESIGN.md loop 1). For every lvol of
 * this node in CREATING: placement → ensure_nvmf_ready → bdev_lvol_create
 * (or adopt) → record the UUID and real size → nvmf_subsystem_add_ns →
 * READY. Snapshots in CREATING are taken here too. Every step is
 * create-if-missing against the listing taken at the start of the pass, so a
 * crash between two steps is finished by the next pass; a timeout stops the
 * pass (outcome unknown: the next pass re-reads). Verify runs at most once
 * per tick from here.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/metrics.h"
#include "common/common.h"

/* Sets the row's reason (a note while it stays in its state) when it changed. */
static void lvol_note(struct agent_loop *l, const struct db_lvol *lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void lvol_note(struct agent_loop *l, const struct db_lvol *lv, const char *fmt, ...)
{
	char reason[DB_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (strcmp(reason, lv->reason) == 0)
		return;
	LOG_INFO("agent", "lvol waiting id=%" PRId64 " reason=\"%s\"", lv->id, reason);
	db_lvol_set_reason(l->db, lv->id, reason);
}

void agent_lvol_fail(struct agent_loop *l, const struct db_lvol *lv, const char *fmt, ...)
{
	char reason[DB_REASON_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	rc = db_lvol_set_state(l->db, lv->id, lv->generation, DB_LVOL_FAILED, reason);
	if (rc == 0)
		LOG_WARN("agent", "lvol failed id=%" PRId64 " reason=\"%s\"", lv->id, reason);
	else
		LOG_WARN("agent", "lvol not marked failed id=%" PRId64 " err=%s", lv->id,
			 common_strerror(rc));
}

/* Re-fetches the lvols of one lvstore into the view (after "File exists"). */
static int view_refresh_lvols(struct agent_loop *l, struct agent_view *v, int idx)
{
	struct spdk_lvol_list fresh;
	int rc = spdk_lvol_get(l->spdk, v->lvstores.v[idx].uuid, &fresh);

	if (rc)
		return rc;
	spdk_lvol_list_free(&v->lvols[idx]);
	v->lvols[idx] = fresh;
	v->lvols_ok[idx] = true;
	return 0;
}

/* Real size of a bdev in bytes, 0 if unknown. */
static uint64_t bdev_size(struct agent_loop *l, const char *name)
{
	struct spdk_bdev_list b;
	uint64_t size = 0;

	if (spdk_bdev_get(l->spdk, name, &b) == 0 && b.n == 1)
		size = b.v[0].num_blocks * b.v[0].block_size;
	spdk_bdev_list_free(&b);
	return size;
}

/*
 * The READY write lost its race (the row's generation moved: an operator
 * deleted it meanwhile). If the row is already DELETED, the delete loop has
 * finished without seeing what this pass created: remove it (we created it,
 * its row is gone, nothing else can own it). DELETING: the delete loop will.
 */
static void provision_undo(struct agent_loop *l, const struct db_lvol *lv)
{
	struct db_lvol now = { 0 };
	char nqn[AGENT_NQN_MAX];

	if (db_lvol_get(l->db, lv->id, &now) != 0)
		return;
	if (now.state == DB_LVOL_DELETED && lv->uuid[0]) {
		agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
		LOG_WARN("agent", "lvol deleted while being created id=%" PRId64 ": removing it",
			 lv->id);
		spdk_nvmf_subsystem_delete(l->spdk, nqn);
		spdk_lvol_delete(l->spdk, lv->uuid);
	} else {
		LOG_INFO("agent", "lvol changed while being created id=%" PRId64 " state=%s",
			 lv->id, db_lvol_state_name(now.state));
	}
	db_lvol_clear(&now);
}

int agent_provision_ready(struct agent_loop *l, const struct db_lvol *lv, const char *nqn)
{
	int rc;

	if (strcmp(lv->nqn, nqn) != 0)
		db_lvol_set_nqn(l->db, lv->id, nqn);
	rc = db_lvol_set_state(l->db, lv->id, lv->generation, DB_LVOL_READY, NULL);
	if (rc == -ESTALE) {
		provision_undo(l, lv);
		return rc;
	}
	if (rc) {
		LOG_WARN("agent", "lvol not marked ready id=%" PRId64 " err=%s db=\"%s\"", lv->id,
			 common_strerror(rc), db_errmsg(l->db));
		return rc;
	}
	LOG_INFO("agent", "lvol ready id=%" PRId64 " uuid=%s nqn=%s real_size=%" PRIu64, lv->id,
		 lv->uuid, nqn, lv->real_size);
	if (lv->updated_at > 0 && clock_wall_ms() >= lv->updated_at)
		metrics_lag((uint64_t)(clock_wall_ms() - lv->updated_at));
	agent_crash("provision.after_ready");
	return 0;
}

/*
 * Lookups for one row. A pass over many rows lists the target once (view);
 * a pass over a few asks for just those names, so a create costs the same
 * with 10 or 10,000 lvols on the node.
 */
static int lvol_lookup(struct agent_loop *l, const struct agent_view *v, int idx, const char *name,
		       char uuid[SPDK_UUID_LEN], uint64_t *size)
{
	const struct spdk_lvstore *lvs = &v->lvstores.v[idx];
	struct spdk_bdev_list b;
	char alias[2 * SPDK_NAME_LEN + 2];
	int rc;

	*size = 0;
	if (v->lvols_ok[idx]) {
		const struct spdk_lvol *x = spdk_lvol_find_name(&v->lvols[idx], name);

		if (!x)
			return 0;
		snprintf(uuid, SPDK_UUID_LEN, "%s", x->uuid);
		return 1;
	}
	snprintf(alias, sizeof(alias), "%s/%s", lvs->name, name);
	rc = spdk_bdev_get(l->spdk, alias, &b);
	if (rc == -ENODEV)
		return 0;
	if (rc == 0 && b.n == 1 && strlen(b.v[0].name) < SPDK_UUID_LEN) {
		memcpy(uuid, b.v[0].name, strlen(b.v[0].name) + 1);
		*size = b.v[0].num_blocks * b.v[0].block_size;
		rc = 1;
	} else if (rc == 0) {
		rc = -EPROTO;
	}
	spdk_bdev_list_free(&b);
	return rc;
}

/* *out: the subsystem (in the view or in *one), NULL when absent. */
static int sub_lookup(struct agent_loop *l, const struct agent_view *v, const char *nqn,
		      struct spdk_subsystem_list *one, const struct spdk_subsystem **out)
{
	int rc;

	*out = NULL;
	if (v->have_subsystems) {
		*out = spdk_subsystem_find(&v->subsystems, nqn);
		return 0;
	}
	rc = spdk_nvmf_subsystem_get_one(l->spdk, nqn, one);
	if (rc == -ENODEV)
		return 0;
	if (rc == 0) {
		*out = &one->v[0];
		return 0;
	}
	if (spdk_call_is_transient(rc))
		return rc;
	/* A target that answers a missing NQN some other way: list them all. */
	rc = spdk_nvmf_subsystem_get(l->spdk, one);
	if (rc == 0)
		*out = spdk_subsystem_find(one, nqn);
	return rc;
}

/* One CREATING lvol. Returns a transient error to stop the pass, else 0. */
static int provision_lvol(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
			  struct db_lvol *lv, struct agent_view *v)
{
	const struct db_disk *d = agent_disk_find(disks, n_disks, lv->disk_id);
	const struct spdk_subsystem *sub = NULL;
	struct spdk_subsystem_list one = { 0 };
	struct spdk_lvstore *lvs;
	char name[32], nqn[AGENT_NQN_MAX], uuid[SPDK_UUID_LEN] = "";
	struct db_snapshot parent = { 0 };
	uint64_t real_size = 0, cluster;
	bool created = false;
	int idx, rc, found;

	if (!d) {
		agent_lvol_fail(l, lv, "disk %s is not a disk of node %s", lv->disk, l->node.name);
		return 0;
	}
	idx = agent_view_lvstore(v, d->lvstore_uuid);
	if (idx < 0) {
		lvol_note(l, lv, "waiting for lvstore of disk %s to be loaded", d->name);
		return 0;
	}
	lvs = &v->lvstores.v[idx];
	cluster = lvs->cluster_size ? lvs->cluster_size : d->cluster_size;
	snprintf(name, sizeof(name), "%" PRId64, lv->id);
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	found = lvol_lookup(l, v, idx, name, uuid, &real_size);
	if (found < 0)
		return spdk_call_is_transient(found) ? found : 0;

	if (lv->clone_of && !found) {
		rc = db_snapshot_get(l->db, lv->clone_of, &parent);
		if (rc || parent.state != DB_SNAPSHOT_READY || !parent.uuid[0]) {
			lvol_note(l, lv, "waiting for snapshot %" PRId64 " to be READY", lv->clone_of);
			return 0;
		}
	}
	/* Placement: a thick lvol must fit in the lvstore's free space. */
	if (!found && !lv->thin && !lv->clone_of) {
		uint64_t need = agent_size_real(lv->size, cluster);
		uint64_t total = lvs->total_data_clusters * cluster;
		uint64_t avail = lvs->free_clusters * cluster;

		if (need > total) {
			agent_lvol_fail(l, lv, "size %" PRIu64 " larger than the lvstore of disk %s "
				  "(%" PRIu64 " bytes)", need, d->name, total);
			return 0;
		}
		if (need > avail) {
			agent_lvol_fail(l, lv, "not enough free space on disk %s: need %" PRIu64
				  ", free %" PRIu64, d->name, need, avail);
			return 0;
		}
	}

	rc = sub_lookup(l, v, nqn, &one, &sub);
	if (rc == 0)
		rc = agent_nvmf_ensure(l, d, lv, sub);
	if (rc) {
		if (!spdk_call_is_transient(rc))
			lvol_note(l, lv, "export not ready: %s (%s)", common_strerror(rc),
				  spdk_client_last_message(l->spdk));
		goto out;
	}

	if (!found) {
		if (lv->clone_of)
			rc = spdk_lvol_clone(l->spdk, parent.uuid, name, uuid);
		else
			rc = spdk_lvol_create(l->spdk, lvs->uuid, name, agent_size_mib(lv->size),
					      lv->thin, uuid);
		if (rc == -EEXIST) {
			/* Created by an earlier pass whose reply was lost: adopt. */
			rc = view_refresh_lvols(l, v, idx);
			if (rc == 0)
				rc = lvol_lookup(l, v, idx, name, uuid, &real_size) == 1 ? 0 : -EAGAIN;
			if (rc)
				goto out;
			LOG_INFO("agent", "lvol adopted id=%" PRId64 " uuid=%s", lv->id, uuid);
		} else if (rc == -ENOSPC) {
			agent_lvol_fail(l, lv, "no space left on disk %s", d->name);
			rc = 0;
			goto out;
		} else if (rc) {
			if (!spdk_call_is_transient(rc))
				lvol_note(l, lv, "bdev_lvol_%s failed: %s (%s)",
					  lv->clone_of ? "clone" : "create", common_strerror(rc),
					  spdk_client_last_message(l->spdk));
			goto out;
		} else {
			created = true;
			LOG_INFO("agent", "lvol created id=%" PRId64 " uuid=%s disk=%s size_mib=%" PRIu64
				 " thin=%d", lv->id, uuid, d->name, agent_size_mib(lv->size),
				 (int)lv->thin);
			agent_crash("provision.after_lvol_create");
		}
	}

	if (!real_size)
		real_size = bdev_size(l, uuid);
	if (!real_size)
		real_size = agent_size_real(lv->size, cluster);
	if (strcmp(lv->uuid, uuid) != 0 || lv->real_size != real_size) {
		rc = db_lvol_set_uuid(l->db, lv->id, uuid, real_size);
		if (rc) {
			LOG_WARN("agent", "uuid not recorded id=%" PRId64 " err=%s db=\"%s\"", lv->id,
				 common_strerror(rc), db_errmsg(l->db));
			rc = 0;
			goto out;
		}
		snprintf(lv->uuid, sizeof(lv->uuid), "%s", uuid);
		lv->real_size = real_size;
		agent_crash("provision.after_uuid_record");
	}
	if (created && !lv->thin && !lv->clone_of && cluster) {
		uint64_t used = real_size / cluster;

		lvs->free_clusters = lvs->free_clusters > used ? lvs->free_clusters - used : 0;
	}

	rc = agent_nvmf_export(l, lv, sub);
	if (rc) {
		if (!spdk_call_is_transient(rc))
			lvol_note(l, lv, "namespace not added: %s (%s)", common_strerror(rc),
				  spdk_client_last_message(l->spdk));
		goto out;
	}
	agent_crash("provision.after_ns_add");
	agent_provision_ready(l, lv, nqn);
	rc = 0;
out:
	spdk_subsystem_list_free(&one);
	return spdk_call_is_transient(rc) ? rc : 0;
}

/* One CREATING snapshot: bdev_lvol_snapshot (or adopt "snap-<id>"), READY. */
static int provision_snapshot(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
			      const struct db_snapshot *s, struct agent_view *v)
{
	const struct db_disk *d = agent_disk_find(disks, n_disks, s->disk_id);
	const struct spdk_lvol *existing;
	struct db_lvol origin = { 0 };
	char name[32], uuid[SPDK_UUID_LEN] = "";
	int idx, rc;

	if (!d)
		return 0;
	idx = agent_view_lvstore(v, d->lvstore_uuid);
	if (idx < 0)
		return 0;
	agent_snapshot_name(s->id, name);
	existing = agent_view_lvol(v, d->lvstore_uuid, name);
	if (existing) {
		snprintf(uuid, sizeof(uuid), "%s", existing->uuid);
	} else {
		rc = db_lvol_get(l->db, s->lvol_id, &origin);
		if (rc || !origin.uuid[0]) {
			db_lvol_clear(&origin);
			return 0;
		}
		rc = spdk_lvol_snapshot(l->spdk, origin.uuid, name, uuid);
		db_lvol_clear(&origin);
		if (rc == -EEXIST) {
			rc = view_refresh_lvols(l, v, idx);
			if (rc)
				return spdk_call_is_transient(rc) ? rc : 0;
			existing = agent_view_lvol(v, d->lvstore_uuid, name);
			if (!existing)
				return 0;
			snprintf(uuid, sizeof(uuid), "%s", existing->uuid);
		} else if (rc) {
			if (spdk_call_is_transient(rc))
				return rc;
			if (rc == -ENOSPC || rc == -ENODEV) {
				db_snapshot_set_state(l->db, s->id, s->generation, DB_SNAPSHOT_FAILED,
						      rc == -ENOSPC ? "no space left"
								    : "origin lvol not found");
				return 0;
			}
			db_snapshot_set_reason(l->db, s->id, spdk_client_last_message(l->spdk));
			return 0;
		} else {
			LOG_INFO("agent", "snapshot created id=%" PRId64 " uuid=%s lvol=%" PRId64,
				 s->id, uuid, s->lvol_id);
			agent_crash("snapshot.after_create");
		}
	}
	if (strcmp(s->uuid, uuid) != 0) {
		rc = db_snapshot_set_uuid(l->db, s->id, uuid);
		if (rc)
			return 0;
		agent_crash("snapshot.after_uuid_record");
	}
	rc = db_snapshot_set_state(l->db, s->id, s->generation, DB_SNAPSHOT_READY, NULL);
	if (rc == 0) {
		LOG_INFO("agent", "snapshot ready id=%" PRId64 " uuid=%s", s->id, uuid);
		agent_crash("snapshot.after_ready");
	}
	return 0;
}

static void target_state(struct agent_loop *l, int rc)
{
	char object[DB_OBJECT_MAX];

	snprintf(object, sizeof(object), "node/%s", l->node.name);
	if (rc && spdk_call_is_transient(rc)) {
		/* Three passes in a row: not a restart of a second. */
		if (++l->down_passes == 3)
			agent_event_raise(l, "target-unreachable", object,
					  "target at %s did not answer (%s); retrying every tick",
					  l->node.rpc_socket, common_strerror(rc));
		l->target_down = true;
		return;
	}
	l->down_passes = 0;
	if (l->target_down || agent_event_open(l, "target-unreachable", object))
		agent_event_resolve(l, "target-unreachable", object);
	l->target_down = false;
}

void agent_provision_tick(struct agent_loop *l)
{
	struct db_disk *disks = NULL;
	struct db_lvol *lvols = NULL;
	struct db_snapshot *snaps = NULL;
	size_t n_disks = 0, n_lvols = 0, n_snaps = 0;
	struct agent_view v = { 0 };
	bool *done = NULL;
	uint64_t now = clock_mono_ms();
	bool verify_due = now - l->last_verify_ms >= l->agent->opt.tick_ms || !l->last_verify_ms;
	bool bulk;
	int rc;

	rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc)
		goto db_fail;
	rc = db_lvol_list_by_state(l->db, l->node.name, DB_LVOL_CREATING, &lvols, &n_lvols);
	if (rc)
		goto db_fail;
	rc = db_snapshot_list_by_state(l->db, l->node.name, DB_SNAPSHOT_CREATING, &snaps, &n_snaps);
	if (rc)
		goto db_fail;
	if (!n_disks)
		goto out;
	if (!n_lvols && !n_snaps && !verify_due)
		goto out;

	/* Many rows: list the target once; a few: look up just their names. */
	bulk = n_lvols > AGENT_BULK_ROWS;
	rc = agent_view_fetch(l, &v, bulk || n_snaps, bulk, false);
	target_state(l, rc);
	if (rc)
		goto out;
	agent_disks_ensure(l, disks, n_disks, &v);

	/* New lvols: independent calls together, every step pipelined over all
	 * of them (provision_batch.c); what the batch did not finish goes
	 * through provision_lvol below, on a fresh view. */
	if (n_lvols && !agent_stopping(l->agent)) {
		bool stale = false;

		done = mem_zalloc(n_lvols * sizeof(*done));
		if (!done)
			goto out;
		rc = agent_provision_batch(l, disks, n_disks, lvols, n_lvols, &v, done, &stale);
		if (rc) {
			target_state(l, rc);
			goto out;
		}
		if (stale) {
			agent_view_free(&v);
			rc = agent_view_fetch(l, &v, bulk || n_snaps, bulk, false);
			target_state(l, rc);
			if (rc)
				goto out;
		}
	}
	for (size_t i = 0; i < n_lvols && !agent_stopping(l->agent); i++) {
		if (done && done[i])
			continue;
		rc = provision_lvol(l, disks, n_disks, &lvols[i], &v);
		if (rc) {
			target_state(l, rc);
			goto out;
		}
	}
	for (size_t i = 0; i < n_snaps && !agent_stopping(l->agent); i++) {
		rc = provision_snapshot(l, disks, n_disks, &snaps[i], &v);
		if (rc) {
			target_state(l, rc);
			goto out;
		}
	}
	if (verify_due && !agent_stopping(l->agent)) {
		l->last_verify_ms = now;
		agent_verify(l);
	}
	goto out;
db_fail:
	LOG_WARN("agent", "db read failed loop=provision err=%s db=\"%s\"", common_strerror(rc),
		 db_errmsg(l->db));
out:
	mem_free(done);
	agent_view_free(&v);
	db_disk_list_free(disks, n_disks);
	db_lvol_list_free(lvols, n_lvols);
	db_snapshot_list_free(snaps, n_snaps);
}
