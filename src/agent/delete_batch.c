/*
 * delete_batch.c: the delete loop's fast path for many lvols in one pass.
 * delete_one (delete.c) takes a row through its steps one call at a time
 * (namespace, subsystem, lvol: three round trips, 24 ms against SPDK's RPC
 * poller); here each step is one pipelined batch over every row (batch.c):
 * remove the namespaces, delete the subsystems, delete the lvols, finalize
 * the rows. Same order per row as delete_one, same crash points.
 *
 * Only the plain case, decided from the pass's view (lvols and subsystems of
 * a loaded lvstore): an lvol row whose target lvol, when there is one, is
 * the row's (same UUID, or none recorded). Snapshots, rows of an lvstore not
 * loaded, and rows whose step fails are left to delete_one, which runs after
 * this on a fresh view and keeps its own error handling and notes.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

struct drow {
	struct agent_batch_row b;           /* first: out, id */
	const struct db_lvol *lv;
	const struct spdk_subsystem *sub;   /* in the view; NULL: no subsystem */
	char nqn[AGENT_NQN_MAX];
	char uuid[SPDK_UUID_LEN];           /* the target lvol's; "": none */
	size_t disk;                        /* index in the disk list */
};

static bool make_ns_remove(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct drow *r = row;

	if (!r->sub || k >= r->sub->n_ns)
		return false;
	req->method = "nvmf_subsystem_remove_ns";
	req->params = spdk_params_ns_remove(r->nqn, r->sub->ns[k].nsid);
	return true;
}

static bool make_subsystem_delete(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct drow *r = row;

	if (!r->sub)
		return false;
	req->method = "nvmf_delete_subsystem";
	req->params = spdk_params_subsystem_delete(r->nqn);
	return true;
}

static bool make_lvol_delete(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct drow *r = row;

	if (!r->uuid[0])
		return false;
	req->method = "bdev_lvol_delete";
	req->params = spdk_params_lvol_delete(r->uuid);
	return true;
}

int agent_delete_batch(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
		       const struct db_lvol *lvols, size_t n_lvols, const struct agent_view *v,
		       bool *done, bool *disk_touched, bool *touched)
{
	struct drow *rows = NULL;
	size_t n = 0, max_ns = 0, ran;
	int rc = 0;

	*touched = false;
	if (!v->have_subsystems || n_lvols < 2)
		return 0;
	rows = mem_zalloc(n_lvols * sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	for (size_t i = 0; i < n_lvols; i++) {
		const struct db_lvol *lv = &lvols[i];
		const struct db_disk *d = agent_disk_find(disks, n_disks, lv->disk_id);
		int idx = d ? agent_view_lvstore(v, d->lvstore_uuid) : -1;
		struct drow *r = &rows[n];
		const struct spdk_lvol *tl;
		char name[32];

		if (idx < 0 || !v->lvols_ok[idx])
			continue;
		snprintf(name, sizeof(name), "%" PRId64, lv->id);
		tl = agent_view_lvol(v, d->lvstore_uuid, name);
		if (tl && lv->uuid[0] && strcmp(tl->uuid, lv->uuid) != 0)
			continue; /* not ours: delete_one says so */
		r->b.id = lv->id;
		r->lv = lv;
		r->disk = (size_t)(d - disks);
		agent_lvol_nqn(l->nqn_prefix, lv->id, r->nqn);
		r->sub = spdk_subsystem_find(&v->subsystems, r->nqn);
		if (tl)
			snprintf(r->uuid, sizeof(r->uuid), "%s", tl->uuid);
		if (r->sub)
			max_ns = COMMON_MAX(max_ns, r->sub->n_ns);
		n++;
	}
	if (n < 2)
		goto out;
	*touched = true;
	LOG_INFO("agent", "lvol delete batch rows=%zu (every step pipelined)", n);

	if ((rc = agent_batch_each(l, rows, sizeof(*rows), n, max_ns, make_ns_remove, "namespace",
				   "delete.after_ns_remove")) != 0)
		goto out;
	if ((rc = agent_batch_step(l, rows, sizeof(*rows), n, 0, 1, make_subsystem_delete, NULL,
				   "subsystem", &ran)) != 0)
		goto out;
	if (ran)
		agent_crash("delete.after_subsystem_delete");
	if ((rc = agent_batch_step(l, rows, sizeof(*rows), n, 0, 1, make_lvol_delete, NULL, "lvol",
				   &ran)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!rows[i].b.out && rows[i].uuid[0])
			LOG_INFO("agent", "lvol deleted id=%" PRId64 " uuid=%s", rows[i].b.id,
				 rows[i].uuid);
	if (ran)
		agent_crash("delete.after_lvol_delete");

	for (size_t i = 0; i < n; i++) {
		struct drow *r = &rows[i];
		int err;

		if (r->b.out)
			continue;
		disk_touched[r->disk] = true;
		err = db_lvol_set_state(l->db, r->b.id, r->lv->generation, DB_LVOL_DELETED, NULL);
		if (err) {
			LOG_WARN("agent", "lvol not finalized id=%" PRId64 " err=%s", r->b.id,
				 common_strerror(err));
			r->b.out = true;
			continue;
		}
		LOG_INFO("agent", "lvol finalized id=%" PRId64 " state=DELETED", r->b.id);
		done[r->lv - lvols] = true;
		agent_crash("delete.after_finalize");
	}
out:
	mem_free(rows);
	return rc;
}
