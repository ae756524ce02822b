/*
 * provision_batch.c: the provisioning loop's fast path for many new lvols in
 * one pass. provision_lvol (provision.c) takes a row through its steps one
 * call at a time: ~8 round trips per lvol, which against SPDK (8 ms per
 * sequential call: its RPC poller answers every 4 ms) caps a node at ~20
 * creates/s. Here every step is one pipelined batch over all the rows
 * (spdk_call_many): create the subsystems, add the listeners, add the hosts,
 * create the lvols, read their sizes, record the UUIDs, add the namespaces,
 * mark READY. N new lvols then cost about eight round trips, not 8N.
 *
 * Only the plain case goes here, decided from the pass's full view: a row
 * never created (no UUID recorded, no lvol of its name, no subsystem of its
 * NQN), not a clone, that fits its lvstore. A batch holds at most one call
 * per subsystem (SPDK pauses a subsystem to change it and refuses a second
 * change meanwhile), and a step only starts once the previous one answered
 * for every row, so a row sees the same order of steps as provision_lvol and
 * the same crash points. A row whose step fails leaves the batch as it is:
 * provision.c fetches the view again and finishes it with provision_lvol
 * (create-if-missing, adopt), which also handles every error the way it
 * always does. A transport failure stops the pass like anywhere else.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/metrics.h"
#include "common/common.h"

/* One row in the batch. */
struct brow {
	struct agent_batch_row b;       /* first: out, id */
	struct db_lvol *lv;
	const struct db_disk *d;
	struct spdk_lvstore *lvs;
	struct spdk_listen_addr *addrs; /* the disk's listeners (owned) */
	size_t n_addrs;
	char nqn[AGENT_NQN_MAX];
	char name[32];
	char uuid[SPDK_UUID_LEN];
	uint64_t real_size;
};

static bool make_subsystem(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;
	char serial[24];

	agent_lvol_serial(r->lv->id, serial);
	req->method = "nvmf_create_subsystem";
	req->params = spdk_params_subsystem_create(r->nqn, serial, AGENT_MODEL, false, 0);
	return true;
}

static bool make_listener(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	if (k >= r->n_addrs)
		return false;
	req->method = "nvmf_subsystem_add_listener";
	req->params = spdk_params_listener(r->nqn, &r->addrs[k]);
	return true;
}

/* Host k: 0 is the agent's own host NQN, then the lvol's hosts. */
static bool make_host(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	if (k > r->lv->host_count)
		return false;
	req->method = "nvmf_subsystem_add_host";
	req->params = spdk_params_host(r->nqn, k == 0 ? l->host_nqn : r->lv->hosts[k - 1]);
	return true;
}

static bool make_lvol(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	req->method = "bdev_lvol_create";
	req->params = spdk_params_lvol_create(r->lvs->uuid, r->name, agent_size_mib(r->lv->size),
					      r->lv->thin);
	return true;
}

static int reply_lvol(void *row, const json_t *result)
{
	struct brow *r = row;

	return spdk_result_uuid(result, r->uuid);
}

static bool make_size(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	req->method = "bdev_get_bdevs";
	req->params = json_pack("{s:s}", "name", r->uuid);
	return true;
}

/* The target's size of the new lvol (what provision_lvol records too). */
static int reply_size(void *row, const json_t *result)
{
	struct brow *r = row;
	struct spdk_bdev_list bl = { 0 };
	int rc = spdk_parse_bdevs(result, &bl);

	if (rc == 0 && bl.n == 1)
		r->real_size = bl.v[0].num_blocks * bl.v[0].block_size;
	spdk_bdev_list_free(&bl);
	return rc;
}

static bool make_ns(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	req->method = "nvmf_subsystem_add_ns";
	req->params = spdk_params_ns_add(r->nqn, r->uuid, AGENT_NSID, r->uuid);
	return true;
}

#define STEP(make, reply, what, ran) \
	agent_batch_step(l, rows, sizeof(*rows), n, 0, make, reply, what, ran)

/* Is row lv the plain case (see the top of the file)? *free_clusters: what is
 * left in its lvstore for the rows taken so far. */
static bool plain(struct agent_loop *l, const struct agent_view *v, const struct db_disk *d,
		  const struct db_lvol *lv, int idx, uint64_t *free_clusters)
{
	const struct spdk_lvstore *lvs = &v->lvstores.v[idx];
	uint64_t cluster = lvs->cluster_size ? lvs->cluster_size : d->cluster_size;
	char name[32], nqn[AGENT_NQN_MAX];

	if (lv->clone_of || lv->uuid[0] || !v->lvols_ok[idx] || !cluster)
		return false;
	snprintf(name, sizeof(name), "%" PRId64, lv->id);
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	if (spdk_lvol_find_name(&v->lvols[idx], name) || spdk_subsystem_find(&v->subsystems, nqn))
		return false;
	if (!lv->thin) {
		uint64_t need = agent_size_real(lv->size, cluster) / cluster;

		if (need > free_clusters[idx])
			return false;
		free_clusters[idx] -= need;
	}
	return true;
}

int agent_provision_batch(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
			  struct db_lvol *lvols, size_t n_lvols, struct agent_view *v, bool *done,
			  bool *touched)
{
	struct brow *rows = NULL;
	uint64_t *free_clusters = NULL;
	size_t n = 0, max_addrs = 0, max_hosts = 0, ran;
	int rc = 0;

	*touched = false;
	if (!v->have_subsystems || !v->lvstores.n)
		return 0;
	rows = mem_zalloc(n_lvols * sizeof(*rows));
	free_clusters = mem_zalloc(v->lvstores.n * sizeof(*free_clusters));
	if (!rows || !free_clusters) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < v->lvstores.n; i++)
		free_clusters[i] = v->lvstores.v[i].free_clusters;
	for (size_t i = 0; i < n_lvols; i++) {
		struct db_lvol *lv = &lvols[i];
		const struct db_disk *d = agent_disk_find(disks, n_disks, lv->disk_id);
		struct brow *r = &rows[n];
		int idx = d ? agent_view_lvstore(v, d->lvstore_uuid) : -1;

		if (idx < 0 || !plain(l, v, d, lv, idx, free_clusters))
			continue;
		if (agent_nvmf_transport(l, d->transport) != 0 ||
		    agent_disk_listeners(d, &r->addrs, &r->n_addrs) != 0 || !r->n_addrs) {
			mem_free(r->addrs);
			r->addrs = NULL;
			continue;
		}
		r->b.id = lv->id;
		r->lv = lv;
		r->d = d;
		r->lvs = &v->lvstores.v[idx];
		snprintf(r->name, sizeof(r->name), "%" PRId64, lv->id);
		agent_lvol_nqn(l->nqn_prefix, lv->id, r->nqn);
		max_addrs = COMMON_MAX(max_addrs, r->n_addrs);
		max_hosts = COMMON_MAX(max_hosts, lv->host_count + 1);
		n++;
	}
	if (n < 2)
		goto out; /* nothing to gain: provision_lvol */
	*touched = true;
	LOG_INFO("agent", "lvol batch rows=%zu (every step pipelined)", n);

	if ((rc = STEP(make_subsystem, NULL, "subsystem", &ran)) != 0)
		goto out;
	if (ran)
		agent_crash("provision.after_subsystem_create");
	if ((rc = agent_batch_each(l, rows, sizeof(*rows), n, max_addrs, make_listener, "listener",
				   "provision.after_listener_add")) != 0)
		goto out;
	if ((rc = agent_batch_each(l, rows, sizeof(*rows), n, max_hosts, make_host, "host",
				   "provision.after_host_add")) != 0)
		goto out;
	if ((rc = STEP(make_lvol, reply_lvol, "lvol", &ran)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!rows[i].b.out)
			LOG_INFO("agent", "lvol created id=%" PRId64 " uuid=%s disk=%s size_mib=%" PRIu64
				 " thin=%d", rows[i].lv->id, rows[i].uuid, rows[i].d->name,
				 agent_size_mib(rows[i].lv->size), (int)rows[i].lv->thin);
	if (ran)
		agent_crash("provision.after_lvol_create");
	if ((rc = STEP(make_size, reply_size, "size", &ran)) != 0)
		goto out;

	for (size_t i = 0; i < n; i++) {
		struct brow *r = &rows[i];
		uint64_t cluster = r->lvs->cluster_size ? r->lvs->cluster_size : r->d->cluster_size;

		if (r->b.out)
			continue;
		if (!r->real_size)
			r->real_size = agent_size_real(r->lv->size, cluster);
		rc = db_lvol_set_uuid(l->db, r->lv->id, r->uuid, r->real_size);
		if (rc) {
			LOG_WARN("agent", "uuid not recorded id=%" PRId64 " err=%s db=\"%s\"", r->lv->id,
				 common_strerror(rc), db_errmsg(l->db));
			r->b.out = true;
			rc = 0;
			continue;
		}
		snprintf(r->lv->uuid, sizeof(r->lv->uuid), "%s", r->uuid);
		r->lv->real_size = r->real_size;
		if (!r->lv->thin) {
			uint64_t used = r->real_size / cluster;

			r->lvs->free_clusters = r->lvs->free_clusters > used ?
						r->lvs->free_clusters - used : 0;
		}
		agent_crash("provision.after_uuid_record");
	}

	if ((rc = STEP(make_ns, NULL, "namespace", &ran)) != 0)
		goto out;
	if (ran)
		agent_crash("provision.after_ns_add");
	for (size_t i = 0; i < n; i++) {
		struct brow *r = &rows[i];

		if (r->b.out)
			continue;
		if (agent_provision_ready(l, r->lv, r->nqn) == 0)
			done[r->lv - lvols] = true;
		else
			r->b.out = true;
	}
out:
	for (size_t i = 0; rows && i < n; i++)
		mem_free(rows[i].addrs);
	mem_free(rows);
	mem_free(free_clusters);
	return rc;
}
