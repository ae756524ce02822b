/*
 * verify.c: verify (DESIGN.md loop 4), run from the provisioning thread at
 * most once per tick. Every pass: one bdev_lvol_get_lvstores and one
 * bdev_lvol_get_lvols per lvstore:
 *   - each disk's lvstore state (absent/loaded), capacity and free bytes;
 *   - each READY lvol: missing → drift event (never recreated);
 *   - lvols named in the agent's scheme without a live row → orphan event
 *     (optional two-step collection: quarantine rename, delete after grace);
 *   - CREATING rows are not judged, an absent lvstore judges nothing.
 * A full pass also lists nvmf_get_subsystems and bdev_get_bdevs (the only
 * listing with lvol sizes: bdev_lvol_get_lvols has none):
 *   - size differs from the row's real size → drift event;
 *   - namespace missing → re-export + event; listeners and hosts repaired.
 * Those two listings are the expensive part (about 1 KB per lvol in
 * bdev_get_bdevs), so a full pass runs when something may have changed: the
 * first pass, a new target connection (restart), an lvstore that was absent,
 * a disk's listen addresses changed, and otherwise at most every
 * max(tick, 20 x the last full pass's duration, verify_full option): at most
 * ~5 % of the thread's time. Small nodes still get a full pass every tick.
 * Between full passes a thick lvol's size is still checked every pass from
 * bdev_lvol_get_lvols: its allocated clusters x cluster size is its size; a
 * mismatch is confirmed with bdev_get_bdevs {name} for that lvol alone.
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
#include <time.h>

#include "agent/metrics.h"
#include "common/common.h"

/* A full pass is due at least this often, however slow it is. */
#define VERIFY_FULL_MAX_MS (300 * 1000ull)
/* Light passes confirm at most this many suspected size drifts each. */
#define VERIFY_CONFIRM_MAX 8

/* Sorted lookups into the view (bsearch by name), built once per pass. */
struct index {
	const struct spdk_lvol **lvols; /* all fetched lvstores, by (lvs uuid, name) */
	size_t n_lvols;
	const struct spdk_subsystem **subs;
	size_t n_subs;
	const struct spdk_bdev **bdevs;
	size_t n_bdevs;
};

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

static int cmp_lvol(const void *a, const void *b)
{
	const struct spdk_lvol *x = *(const struct spdk_lvol *const *)a;
	const struct spdk_lvol *y = *(const struct spdk_lvol *const *)b;
	int c = strcmp(x->lvs_uuid, y->lvs_uuid);

	return c ? c : strcmp(x->name, y->name);
}

static int cmp_sub(const void *a, const void *b)
{
	return strcmp((*(const struct spdk_subsystem *const *)a)->nqn,
		      (*(const struct spdk_subsystem *const *)b)->nqn);
}

static int cmp_bdev(const void *a, const void *b)
{
	return strcmp((*(const struct spdk_bdev *const *)a)->name,
		      (*(const struct spdk_bdev *const *)b)->name);
}

static void index_free(struct index *ix)
{
	mem_free(ix->lvols);
	mem_free(ix->subs);
	mem_free(ix->bdevs);
	memset(ix, 0, sizeof(*ix));
}

/* The lvols of every fetched lvstore (their lvs_uuid set to that lvstore's,
 * which is what they are looked up by), the subsystems and bdevs, sorted. */
static int index_build(struct index *ix, struct agent_view *v)
{
	size_t n = 0;

	memset(ix, 0, sizeof(*ix));
	for (size_t i = 0; i < v->lvstores.n; i++)
		if (v->lvols_ok[i])
			n += v->lvols[i].n;
	ix->lvols = mem_zalloc((n + 1) * sizeof(*ix->lvols));
	ix->subs = mem_zalloc((v->subsystems.n + 1) * sizeof(*ix->subs));
	ix->bdevs = mem_zalloc((v->bdevs.n + 1) * sizeof(*ix->bdevs));
	if (!ix->lvols || !ix->subs || !ix->bdevs) {
		index_free(ix);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->lvstores.n; i++) {
		for (size_t j = 0; v->lvols_ok[i] && j < v->lvols[i].n; j++) {
			struct spdk_lvol *tl = &v->lvols[i].v[j];

			snprintf(tl->lvs_uuid, sizeof(tl->lvs_uuid), "%s", v->lvstores.v[i].uuid);
			ix->lvols[ix->n_lvols++] = tl;
		}
	}
	for (size_t i = 0; i < v->subsystems.n; i++)
		ix->subs[ix->n_subs++] = &v->subsystems.v[i];
	for (size_t i = 0; i < v->bdevs.n; i++)
		ix->bdevs[ix->n_bdevs++] = &v->bdevs.v[i];
	qsort(ix->lvols, ix->n_lvols, sizeof(*ix->lvols), cmp_lvol);
	qsort(ix->subs, ix->n_subs, sizeof(*ix->subs), cmp_sub);
	qsort(ix->bdevs, ix->n_bdevs, sizeof(*ix->bdevs), cmp_bdev);
	return 0;
}

static const struct spdk_lvol *index_lvol(const struct index *ix, const char *lvs_uuid,
					  const char *name)
{
	struct spdk_lvol key, *kp = &key;
	const struct spdk_lvol **r;

	snprintf(key.lvs_uuid, sizeof(key.lvs_uuid), "%s", lvs_uuid);
	snprintf(key.name, sizeof(key.name), "%s", name);
	r = bsearch(&kp, ix->lvols, ix->n_lvols, sizeof(*ix->lvols), cmp_lvol);
	return r ? *r : NULL;
}

static const struct spdk_subsystem *index_sub(const struct index *ix, const char *nqn)
{
	struct spdk_subsystem key, *kp = &key;
	const struct spdk_subsystem **r;

	snprintf(key.nqn, sizeof(key.nqn), "%s", nqn);
	r = bsearch(&kp, ix->subs, ix->n_subs, sizeof(*ix->subs), cmp_sub);
	return r ? *r : NULL;
}

static const struct spdk_bdev *index_bdev(const struct index *ix, const char *name)
{
	struct spdk_bdev key, *kp = &key;
	const struct spdk_bdev **r;

	snprintf(key.name, sizeof(key.name), "%s", name);
	r = bsearch(&kp, ix->bdevs, ix->n_bdevs, sizeof(*ix->bdevs), cmp_bdev);
	return r ? *r : NULL;
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

/* Size of the lvol in the target against the row's real size: drift-size
 * raised or resolved. */
static void judge_size(struct agent_loop *l, const struct db_lvol *lv, const char *object,
		       uint64_t size)
{
	if (size != lv->real_size)
		agent_event_raise(l, "drift-size", object,
				  "lvol %" PRId64 " is %" PRIu64 " bytes in the target, "
				  "%" PRIu64 " in the DB", lv->id, size, lv->real_size);
	else
		agent_event_resolve(l, "drift-size", object);
}

/* Light pass: a thick lvol (not a snapshot or clone) has all its clusters
 * allocated, so num_allocated_clusters x cluster size is its size. A
 * mismatch is only a suspicion (a target may count differently): it is
 * confirmed with bdev_get_bdevs for this one lvol, at most *budget per pass. */
static void size_light(struct agent_loop *l, const struct db_lvol *lv, const char *object,
		       const struct spdk_lvol *tl, uint64_t cluster_size, unsigned *budget)
{
	struct spdk_bdev_list one = { 0 };

	if (tl->thin || tl->snapshot || tl->clone || !cluster_size)
		return; /* size not in the listing: the next full pass judges it */
	if (tl->num_allocated_clusters * cluster_size == lv->real_size) {
		agent_event_resolve(l, "drift-size", object);
		return;
	}
	if (!*budget || agent_event_open(l, "drift-size", object))
		return; /* known drift stays open until the sizes match again */
	(*budget)--;
	if (spdk_bdev_get(l->spdk, tl->uuid, &one) == 0 && one.n == 1) {
		struct db_lvol now = { 0 };

		/* A resize may have started since the rows were read: judge only
		 * a row still READY with the same generation and real size. */
		if (db_lvol_get(l->db, lv->id, &now) == 0 && now.state == DB_LVOL_READY &&
		    now.generation == lv->generation && now.real_size == lv->real_size)
			judge_size(l, lv, object, one.v[0].num_blocks * one.v[0].block_size);
		db_lvol_clear(&now);
	}
	spdk_bdev_list_free(&one);
}

static void verify_lvol(struct agent_loop *l, const struct db_disk *d, const struct db_lvol *lv,
			const struct agent_view *v, const struct index *ix, bool full,
			unsigned *budget)
{
	const struct spdk_subsystem *sub;
	const struct spdk_lvol *tl;
	const struct spdk_bdev *b;
	char name[32], object[DB_OBJECT_MAX], nqn[AGENT_NQN_MAX];
	int rc;

	snprintf(name, sizeof(name), "%" PRId64, lv->id);
	snprintf(object, sizeof(object), "lvol/%" PRId64, lv->id);
	tl = index_lvol(ix, d->lvstore_uuid, name);
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

	if (!full) {
		int idx = agent_view_lvstore(v, d->lvstore_uuid);

		if (lv->real_size && idx >= 0)
			size_light(l, lv, object, tl, v->lvstores.v[idx].cluster_size, budget);
		return; /* namespaces: the next full pass */
	}
	b = index_bdev(ix, tl->uuid);
	if (b && lv->real_size)
		judge_size(l, lv, object, b->num_blocks * b->block_size);

	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	sub = index_sub(ix, nqn);
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

/*
 * Subsystems of DELETED lvols. The delete loop removes the subsystem its
 * listing shows, but a re-export (verify_lvol, on a row read as READY just
 * before it was deleted) can create one after that listing, and then nothing
 * else would ever remove it. A DELETED row is final, so a subsystem named for
 * it goes. Rows of other states keep theirs: they are in some loop's hands.
 */
static void verify_stale_subsystems(struct agent_loop *l, const struct agent_view *v,
				    const struct rows *r)
{
	for (size_t i = 0; i < v->subsystems.n && !agent_stopping(l->agent); i++) {
		const char *nqn = v->subsystems.v[i].nqn;
		int64_t id = agent_nqn_lvol_id(l->nqn_prefix, nqn);
		struct db_lvol now = { 0 };
		int rc;

		if (id <= 0 || rows_lvol(r, id))
			continue; /* not ours, or a live row's */
		if (db_lvol_get(l->db, id, &now) == 0 && now.state == DB_LVOL_DELETED) {
			rc = spdk_nvmf_subsystem_delete(l->spdk, nqn);
			LOG_INFO("agent", "subsystem of DELETED lvol removed id=%" PRId64 " nqn=%s err=%s",
				 id, nqn, rc ? common_strerror(rc) : "none");
		}
		db_lvol_clear(&now);
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

/* FNV-1a over the disks' listen addresses as resolved now (an interface's
 * address may change): a change asks for a full pass, which repairs the
 * listeners of every subsystem. */
static uint64_t listen_sum(const struct db_disk *disks, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		struct spdk_listen_addr *a = NULL;
		size_t na = 0;

		h = (h ^ (uint64_t)disks[i].id) * 1099511628211ull;
		if (agent_disk_listeners(&disks[i], &a, &na) != 0)
			continue;
		for (size_t j = 0; j < na; j++) {
			const char *f[] = { a[j].trtype, a[j].adrfam, a[j].traddr, a[j].trsvcid };

			for (size_t k = 0; k < COMMON_ARRAY_SIZE(f); k++)
				for (const char *p = f[k]; ; p++) {
					h = (h ^ (unsigned char)*p) * 1099511628211ull;
					if (!*p)
						break;
				}
		}
		mem_free(a);
	}
	return h;
}

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Is a full pass (bdev + subsystem listings) due? See the top of the file. */
static bool full_due(struct agent_loop *l, uint64_t now_ms, uint64_t lsum)
{
	uint64_t every = COMMON_MAX(l->agent->opt.tick_ms, l->verify_full_cost_us * 20 / 1000);

	every = COMMON_MIN(every, VERIFY_FULL_MAX_MS);
	every = COMMON_MAX(every, l->agent->opt.verify_full_ms);
	if (!l->verify_full_at_ms)
		return true;
	if (spdk_client_connections(l->spdk) != l->verify_conns || lsum != l->verify_listen_sum)
		return true;
	return now_ms - l->verify_full_at_ms >= every;
}

void agent_verify(struct agent_loop *l)
{
	struct db_disk *disks = NULL;
	size_t n_disks = 0;
	struct rows r1 = { 0 }, r2 = { 0 };
	struct agent_view v = { 0 };
	struct index ix = { 0 };
	bool any_ready = false, full, absent = false;
	unsigned budget = VERIFY_CONFIRM_MAX;
	uint64_t t0, cpu0, lsum = 0;
	int rc;

	t0 = clock_mono_us();
	cpu0 = thread_cpu_us();
	rc = rows_read(l, &r1);
	metrics_db(clock_mono_us() - t0);
	if (rc)
		goto db_fail;
	for (size_t i = 0; i < r1.n_lvols; i++)
		if (r1.lvols[i].state == DB_LVOL_READY)
			any_ready = true;
	rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc)
		goto db_fail;
	lsum = listen_sum(disks, n_disks);
	full = full_due(l, t0 / 1000, lsum);
	rc = agent_view_fetch(l, &v, true, full, full && any_ready);
	if (rc)
		goto out;
	for (size_t i = 0; i < n_disks; i++)
		if (disks[i].lvstore_uuid[0] && agent_view_lvstore(&v, disks[i].lvstore_uuid) < 0)
			absent = true;
	if (!full && l->verify_absent && !absent) {
		/* An lvstore came back (target restarted, base bdev examined):
		 * its lvols' namespaces need the full pass now. */
		full = true;
		rc = spdk_nvmf_subsystem_get(l->spdk, &v.subsystems);
		if (rc == 0 && any_ready)
			rc = spdk_bdev_get(l->spdk, NULL, &v.bdevs);
		if (rc)
			goto out;
		v.have_subsystems = true;
		v.have_bdevs = any_ready;
	}
	db_disk_list_free(disks, n_disks);
	disks = NULL;
	n_disks = 0;
	rc = rows_read(l, &r2);
	if (rc)
		goto db_fail;
	/* Disks last: their lvstore uuids may just have been recorded. */
	rc = db_disk_list(l->db, l->node.name, &disks, &n_disks);
	if (rc)
		goto db_fail;
	rc = index_build(&ix, &v);
	if (rc)
		goto out;

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
		verify_lvol(l, d, lv, &v, &ix, full, &budget);
	}
	verify_orphans(l, disks, n_disks, &v, &r1, &r2);
	if (full && v.have_subsystems)
		verify_stale_subsystems(l, &v, &r2);
	{
		uint64_t counts[6] = { 0 };

		for (size_t i = 0; i < r2.n_lvols; i++)
			if ((int)r2.lvols[i].state >= 0 && (int)r2.lvols[i].state < 6)
				counts[r2.lvols[i].state]++;
		metrics_lvol_states(counts);
	}
	verify_resolve_stale(l, &v, disks, n_disks, &r2);
	{
		uint64_t wall = clock_mono_us() - t0;

		metrics_verify(full, wall, thread_cpu_us() - cpu0);
		if (full) {
			l->verify_full_at_ms = t0 / 1000;
			l->verify_full_cost_us = wall;
			l->verify_conns = spdk_client_connections(l->spdk);
			l->verify_listen_sum = lsum;
		}
		l->verify_absent = absent;
		LOG_DEBUG("agent", "verify full=%d lvols=%zu ms=%.1f", (int)full, r2.n_lvols,
			  (double)wall / 1000.0);
	}
	goto out;
db_fail:
	LOG_WARN("agent", "db read failed loop=verify err=%s db=\"%s\"", common_strerror(rc),
		 db_errmsg(l->db));
out:
	index_free(&ix);
	agent_view_free(&v);
	rows_free(&r1);
	rows_free(&r2);
	db_disk_list_free(disks, n_disks);
}
