/*
 * verify.c: verify (DESIGN.md loop 4), run from the provisioning thread at
 * most once per tick. One bdev_lvol_get_lvstores, one bdev_lvol_get_lvols
 * per lvstore, one nvmf_get_subsystems (and one bdev_get_bdevs for sizes):
 *   - each disk's lvstore state (absent/loaded), capacity and free bytes;
 *   - each READY lvol: missing → drift event (never recreated), size differs
 *     → drift event, namespace missing → re-export + event;
 *   - lvols named in the agent's scheme without a live row → orphan event
 *     (optional two-step collection: quarantine rename, delete after grace);
 *   - CREATING rows are not judged, an absent lvstore judges nothing.
 *
 * Races with the other loops (a delete finishing, a resize) are avoided by
 * reading the rows before AND after listing the target: an lvol is judged
 * only if its row was READY with the same generation both times, and a name
 * is an orphan only if it had no live row both times.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/metrics.h"
#include "common/common.h"

struct rows {
	struct db_lvol *lvols;
	size_t n_lvols;
	struct db_snapshot *snaps;
	size_t n_snaps;
};

static void rows_free(struct rows *r)
{
	db_lvol_list_free(r->lvols, r->n_lvols);
	db_snapshot_list_free(r->snaps, r->n_snaps);
	memset(r, 0, sizeof(*r));
}

static int rows_read(struct agent_loop *l, struct rows *r)
{
	struct db_lvol_filter lf = { .node = l->node.name, .state = DB_LVOL_ANY };
	struct db_snapshot_filter sf = { .node = l->node.name, .state = DB_SNAPSHOT_ANY };
	int rc;

	memset(r, 0, sizeof(*r));
	rc = db_lvol_list(l->db, &lf, &r->lvols, &r->n_lvols);
	if (rc == 0)
		rc = db_snapshot_list(l->db, &sf, &r->snaps, &r->n_snaps);
	if (rc)
		rows_free(r);
	return rc;
}

/* Rows are ordered by id. */
static const struct db_lvol *rows_lvol(const struct rows *r, int64_t id)
{
	size_t lo = 0, hi = r->n_lvols;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (r->lvols[mid].id == id)
			return &r->lvols[mid];
		if (r->lvols[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Not sorted after all? Fall back to a scan. */
	for (size_t i = 0; i < r->n_lvols; i++)
		if (r->lvols[i].id == id)
			return &r->lvols[i];
	return NULL;
}

static const struct db_snapshot *rows_snap(const struct rows *r, int64_t id)
{
	for (size_t i = 0; i < r->n_snaps; i++)
		if (r->snaps[i].id == id)
			return &r->snaps[i];
	return NULL;
}

static bool lvol_live(const struct db_lvol *x)
{
	return x && x->state != DB_LVOL_DELETED;
}

static bool snap_live(const struct db_snapshot *x)
{
	return x && x->state != DB_SNAPSHOT_DELETED;
}

static void verify_disks(struct agent_loop *l, const struct db_disk *disks, size_t n,
			 const struct agent_view *v)
{
	for (size_t i = 0; i < n; i++) {
		const struct db_disk *d = &disks[i];
		char object[DB_OBJECT_MAX];
		int idx, rc;

		if (!d->lvstore_uuid[0])
			continue; /* not initialised yet: disks_ensure reports it */
		snprintf(object, sizeof(object), "disk/%s", d->name);
		idx = agent_view_lvstore(v, d->lvstore_uuid);
		if (idx < 0) {
			if (d->lvstore_state != DB_LVSTORE_ABSENT || !d->observed_at)
				db_disk_observe(l->db, d->id, DB_LVSTORE_ABSENT, 0, 0);
			agent_event_raise(l, "lvstore-absent", object,
					  "lvstore %s of disk %s is not loaded in the target; "
					  "its lvols are not judged and deletes wait",
					  d->lvstore_uuid, d->name);
			continue;
		}
		const struct spdk_lvstore *s = &v->lvstores.v[idx];
		uint64_t cap = s->total_data_clusters * s->cluster_size;
		uint64_t free_b = s->free_clusters * s->cluster_size;

		if (d->lvstore_state != DB_LVSTORE_LOADED || d->capacity != cap ||
		    d->free != free_b || !d->observed_at) {
			rc = db_disk_observe(l->db, d->id, DB_LVSTORE_LOADED, cap, free_b);
			if (rc == 0) {
				LOG_DEBUG("agent", "disk observed disk=%s capacity=%" PRIu64
					  " free=%" PRIu64, d->name, cap, free_b);
				agent_crash("verify.after_disk_observe");
			}
		}
		agent_event_resolve(l, "lvstore-absent", object);
	}
}

static void verify_lvol(struct agent_loop *l, const struct db_disk *d, const struct db_lvol *lv,
			const struct agent_view *v)
{
	const struct spdk_subsystem *sub;
	const struct spdk_lvol *tl;
	const struct spdk_bdev *b;
	char name[32], object[DB_OBJECT_MAX], nqn[AGENT_NQN_MAX];
	int rc;

	snprintf(name, sizeof(name), "%" PRId64, lv->id);
	snprintf(object, sizeof(object), "lvol/%" PRId64, lv->id);
	tl = agent_view_lvol(v, d->lvstore_uuid, name);
	if (!tl) {
		agent_event_raise(l, "drift-missing", object,
				  "READY lvol %" PRId64 " (uuid %s) is missing from lvstore %s of "
				  "disk %s; not recreated (its data would be lost silently)",
				  lv->id, lv->uuid, d->lvstore_uuid, d->name);
		return;
	}
	agent_event_resolve(l, "drift-missing", object);
	if (lv->uuid[0] && strcmp(tl->uuid, lv->uuid) != 0) {
		agent_event_raise(l, "drift-uuid", object,
				  "lvol %" PRId64 " in the target has uuid %s, the DB says %s; "
				  "not exported", lv->id, tl->uuid, lv->uuid);
		return;
	}
	agent_event_resolve(l, "drift-uuid", object);

	b = spdk_bdev_find(&v->bdevs, tl->uuid);
	if (b && lv->real_size) {
		uint64_t size = b->num_blocks * b->block_size;

		if (size != lv->real_size)
			agent_event_raise(l, "drift-size", object,
					  "lvol %" PRId64 " is %" PRIu64 " bytes in the target, "
					  "%" PRIu64 " in the DB", lv->id, size, lv->real_size);
		else
			agent_event_resolve(l, "drift-size", object);
	}

	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	sub = spdk_subsystem_find(&v->subsystems, nqn);
	rc = agent_nvmf_ensure(l, d, lv, sub);
	if (rc)
		return;
	if (sub && agent_subsystem_has_ns(sub, tl->uuid))
		return;
	struct db_lvol copy = *lv;

	snprintf(copy.uuid, sizeof(copy.uuid), "%s", tl->uuid);
	rc = agent_nvmf_export(l, &copy, sub);
	if (rc)
		return;
	agent_event_note(l, "reexport", object,
			 "namespace of READY lvol %" PRId64 " was missing from %s (target "
			 "restarted?); re-exported", lv->id, nqn);
	agent_crash("verify.after_reexport");
}

/* Quarantine name: "quarantine-<name>-<unix time>"; *t_out = the time. */
static bool quarantine_parse(const char *name, int64_t *t_out)
{
	const char *dash;
	char *end;

	if (strncmp(name, "quarantine-", 11) != 0)
		return false;
	dash = strrchr(name, '-');
	if (!dash || dash < name + 11)
		return false;
	*t_out = strtoll(dash + 1, &end, 10);
	return *end == '\0' && *t_out > 0;
}

static void orphan_found(struct agent_loop *l, const struct db_disk *d, const struct spdk_lvol *tl,
			 const char *object)
{
	agent_event_raise(l, "orphan", object,
			  "%s %s (uuid %s) in lvstore %s of disk %s has no live row; %s",
			  tl->snapshot ? "snapshot" : "lvol", tl->name, tl->uuid, d->lvstore_uuid,
			  d->name,
			  l->agent->opt.orphan_collect ? "quarantined, deleted after the grace period"
						       : "left alone (orphan collection is off)");
	if (l->agent->opt.orphan_collect) {
		char qname[SPDK_NAME_LEN + 48];

		snprintf(qname, sizeof(qname), "quarantine-%s-%lld", tl->name,
			 (long long)clock_wall_s());
		if (spdk_lvol_rename(l->spdk, tl->uuid, qname) == 0)
			LOG_WARN("agent", "orphan quarantined uuid=%s name=%s", tl->uuid, qname);
	}
}

static void verify_orphans(struct agent_loop *l, const struct db_disk *disks, size_t n,
			   const struct agent_view *v, const struct rows *r1, const struct rows *r2)
{
	for (size_t i = 0; i < n; i++) {
		const struct db_disk *d = &disks[i];
		int idx = agent_view_lvstore(v, d->lvstore_uuid);

		if (idx < 0 || !v->lvols_ok[idx])
			continue;
		for (size_t j = 0; j < v->lvols[idx].n; j++) {
			const struct spdk_lvol *tl = &v->lvols[idx].v[j];
			char object[DB_OBJECT_MAX];
			int64_t id, t;

			if ((id = agent_name_lvol_id(tl->name)) != 0) {
				snprintf(object, sizeof(object), "lvol/%" PRId64, id);
				if (lvol_live(rows_lvol(r1, id)) || lvol_live(rows_lvol(r2, id)))
					agent_event_resolve(l, "orphan", object);
				else
					orphan_found(l, d, tl, object);
			} else if ((id = agent_name_snapshot_id(tl->name)) != 0) {
				snprintf(object, sizeof(object), "snapshot/%" PRId64, id);
				if (snap_live(rows_snap(r1, id)) || snap_live(rows_snap(r2, id)))
					agent_event_resolve(l, "orphan", object);
				else
					orphan_found(l, d, tl, object);
			} else if (l->agent->opt.orphan_collect && quarantine_parse(tl->name, &t) &&
				   clock_wall_s() - t >= (int64_t)l->agent->opt.orphan_grace_s) {
				if (spdk_lvol_delete(l->spdk, tl->uuid) == 0)
					LOG_WARN("agent", "quarantined orphan deleted uuid=%s name=%s",
						 tl->uuid, tl->name);
			}
		}
	}
}

/* Open drift/orphan events whose object no longer needs them. */
static void verify_resolve_stale(struct agent_loop *l, const struct agent_view *v,
				 const struct db_disk *disks, size_t n, const struct rows *r2)
{
	static const char *const kinds[] = { "drift-missing", "drift-size", "drift-uuid",
					     "orphan" };
	bool all_loaded = true;

	for (size_t i = 0; i < n; i++) {
		int idx = agent_view_lvstore(v, disks[i].lvstore_uuid);

		if (disks[i].lvstore_uuid[0] && (idx < 0 || !v->lvols_ok[idx]))
			all_loaded = false;
	}
	for (size_t i = 0; i < l->events.n;) {
		struct agent_event_key *k = &l->events.v[i];
		bool ours = false, stale = false;
		int64_t id = 0;

		for (size_t j = 0; j < COMMON_ARRAY_SIZE(kinds); j++)
			if (strcmp(k->kind, kinds[j]) == 0)
				ours = true;
		if (ours && strncmp(k->object, "lvol/", 5) == 0)
			id = strtoll(k->object + 5, NULL, 10);
		if (ours && id > 0 && strcmp(k->kind, "orphan") != 0) {
			/* Drift on a row that is no longer READY (deleted, resizing). */
			const struct db_lvol *x = rows_lvol(r2, id);

			stale = !x || x->state == DB_LVOL_DELETING || x->state == DB_LVOL_DELETED;
		} else if (ours && strcmp(k->kind, "orphan") == 0 && all_loaded) {
			/* Still an orphan? verify_orphans re-raised (kept) it if so; a
			 * name gone from every loaded lvstore resolves it. */
			bool present = false;
			const char *name = strchr(k->object, '/');
			char want[40];

			if (name && strncmp(k->object, "snapshot/", 9) == 0)
				snprintf(want, sizeof(want), "snap-%s", name + 1);
			else if (name)
				snprintf(want, sizeof(want), "%s", name + 1);
			for (size_t d = 0; name && d < n; d++)
				if (agent_view_lvol(v, disks[d].lvstore_uuid, want))
					present = true;
			stale = name && !present;
		}
		if (stale) {
			char kind[DB_KIND_MAX], object[DB_OBJECT_MAX];

			snprintf(kind, sizeof(kind), "%s", k->kind);
			snprintf(object, sizeof(object), "%s", k->object);
			agent_event_resolve(l, kind, object); /* removes entry i */
			continue;
		}
		i++;
	}
}

void agent_verify(struct agent_loop *l)
{
	struct db_disk *disks = NULL;
	size_t n_disks = 0;
	struct rows r1 = { 0 }, r2 = { 0 };
	struct agent_view v = { 0 };
	bool any_ready = false;
	uint64_t t0;
	int rc;

	t0 = clock_mono_us();
	rc = rows_read(l, &r1);
	metrics_db(clock_mono_us() - t0);
	if (rc)
		goto db_fail;
	for (size_t i = 0; i < r1.n_lvols; i++)
		if (r1.lvols[i].state == DB_LVOL_READY)
			any_ready = true;
	rc = agent_view_fetch(l, &v, true, true, any_ready);
	if (rc)
		goto out;
	rc = rows_read(l, &r2);
	if (rc)
		goto db_fail;
	/* Disks last: their lvstore uuids may just have been recorded. */
	rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc)
		goto db_fail;

	verify_disks(l, disks, n_disks, &v);
	for (size_t i = 0; i < r2.n_lvols && !agent_stopping(l->agent); i++) {
		const struct db_lvol *lv = &r2.lvols[i];
		const struct db_lvol *before = rows_lvol(&r1, lv->id);
		const struct db_disk *d;
		int idx;

		if (lv->state != DB_LVOL_READY || !before || before->state != DB_LVOL_READY ||
		    before->generation != lv->generation || before->real_size != lv->real_size)
			continue;
		d = agent_disk_find(disks, n_disks, lv->disk_id);
		if (!d)
			continue;
		idx = agent_view_lvstore(&v, d->lvstore_uuid);
		if (idx < 0 || !v.lvols_ok[idx])
			continue; /* absent lvstore: nothing is judged */
		verify_lvol(l, d, lv, &v);
	}
	verify_orphans(l, disks, n_disks, &v, &r1, &r2);
	{
		uint64_t counts[6] = { 0 };

		for (size_t i = 0; i < r2.n_lvols; i++)
			if ((int)r2.lvols[i].state >= 0 && (int)r2.lvols[i].state < 6)
				counts[r2.lvols[i].state]++;
		metrics_lvol_states(counts);
	}
	verify_resolve_stale(l, &v, disks, n_disks, &r2);
	goto out;
db_fail:
	LOG_WARN("agent", "db read failed loop=verify err=%s db=\"%s\"", common_strerror(rc),
		 db_errmsg(l->db));
out:
	agent_view_free(&v);
	rows_free(&r1);
	rows_free(&r2);
	db_disk_list_free(disks, n_disks);
}
