/*
 * provision_batch.c: the provisioning loop's path for new lvols. One call at
 * a time (provision_lvol, provision.c) a create is about nine round trips,
 * which against SPDK (8 ms per sequential call: its RPC poller answers every
 * 4 ms) makes a create ~75 ms and a node ~20 creates/s. Here the calls that
 * do not depend on each other go out together, and every step is one
 * pipelined batch over all the rows of the pass (batch.c):
 *
 *   lookups         bdev_get_bdevs <lvstore>/<id> + nvmf_get_subsystems <nqn>
 *                   per row (skipped when the pass listed the target)
 *   create          nvmf_create_subsystem + bdev_lvol_create
 *   listeners       nvmf_subsystem_add_listener (+ bdev_get_bdevs <uuid>: the
 *                   size, with the first listener)
 *   hosts           nvmf_subsystem_add_host (the agent's host NQN, then the
 *                   lvol's hosts)
 *   record          the UUID and real size in the DB
 *   export          nvmf_subsystem_add_ns
 *   READY           in the DB
 *
 * so one new lvol is six round trips with the lvstore listing, and N new
 * lvols about as many, not 9N. A batch holds at most one change per
 * subsystem (SPDK pauses a subsystem to change it and refuses a second change
 * meanwhile), and a step starts only once the previous one answered for every
 * row.
 *
 * Only the plain case goes here: a row never created (no UUID recorded, no
 * lvol of its name, no subsystem of its NQN), not a clone, that fits its
 * lvstore. A row whose step fails leaves the batch as it is: provision.c
 * fetches the view again and finishes it with provision_lvol (create-if-
 * missing, adopt), which also handles every error the way it always did. A
 * transport failure stops the pass like anywhere else.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

/* Subsystem (k 0) and lvol (k 1) together: different objects. */
static bool make_create(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	return k == 0 ? make_subsystem(l, row, k, req) : make_lvol(l, row, k, req);
}

static int reply_create(void *row, size_t k, const json_t *result)
{
	struct brow *r = row;

	return k == 1 ? spdk_result_uuid(result, r->uuid) : 0;
}

/* The first listener (k 0) and the new lvol's size (k 1) together. */
static bool make_listener_size(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	if (k == 0)
		return make_listener(l, row, 0, req);
	req->method = "bdev_get_bdevs";
	req->params = json_pack("{s:s}", "name", r->uuid);
	return true;
}

/* The target's size of the new lvol (what provision_lvol records too). */
static int reply_listener_size(void *row, size_t k, const json_t *result)
{
	struct brow *r = row;
	struct spdk_bdev_list bl = { 0 };
	int rc;

	if (k == 0)
		return 0;
	rc = spdk_parse_bdevs(result, &bl);
	if (rc == 0 && bl.n == 1)
		r->real_size = bl.v[0].num_blocks * bl.v[0].block_size;
	spdk_bdev_list_free(&bl);
	return rc;
}

/* Listener k (from the second on: the first went with the size). */
static bool make_more_listeners(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	return k > 0 && make_listener(l, row, k, req);
}

static bool make_ns(struct agent_loop *l, void *row, size_t k, struct spdk_req *req)
{
	struct brow *r = row;

	req->method = "nvmf_subsystem_add_ns";
	req->params = spdk_params_ns_add(r->nqn, r->uuid, AGENT_NSID, r->uuid);
	return true;
}

#define STEP(nk, make, reply, what, ran) \
	agent_batch_step(l, rows, sizeof(*rows), n, 0, nk, make, reply, what, ran)

/* Is row lv the plain case (see the top of the file)? 0 no, 1 yes, 2 yes if
 * the lookups find neither its lvol nor its subsystem (the pass did not list
 * them). *free_clusters: what is left in its lvstore for the rows taken. */
static int plain(struct agent_loop *l, const struct agent_view *v, const struct db_disk *d,
		 const struct db_lvol *lv, int idx, uint64_t *free_clusters)
{
	const struct spdk_lvstore *lvs = &v->lvstores.v[idx];
	uint64_t cluster = lvs->cluster_size ? lvs->cluster_size : d->cluster_size;
	bool listed = v->lvols_ok[idx] && v->have_subsystems;
	char name[32], nqn[AGENT_NQN_MAX];

	if (lv->clone_of || lv->uuid[0] || !cluster)
		return 0;
	snprintf(name, sizeof(name), "%" PRId64, lv->id);
	agent_lvol_nqn(l->nqn_prefix, lv->id, nqn);
	if (listed && (spdk_lvol_find_name(&v->lvols[idx], name) ||
		       spdk_subsystem_find(&v->subsystems, nqn)))
		return 0;
	if (!lv->thin) {
		uint64_t need = agent_size_real(lv->size, cluster) / cluster;

		if (need > free_clusters[idx])
			return 0;
		free_clusters[idx] -= need;
	}
	return listed ? 1 : 2;
}

/* Lookups of the rows the pass did not list (lookup set): their lvol by
 * alias and their subsystem by NQN, both calls of every row in one batch. A
 * row stays only when both say "no such device"; any other answer leaves it
 * to provision_lvol, which looks again. Returns a transport failure. */
static int lookups(struct agent_loop *l, struct brow *rows, size_t n, const bool *lookup)
{
	struct spdk_req *reqs = mem_zalloc(2 * n * sizeof(*reqs));
	size_t *which = mem_zalloc(2 * n * sizeof(*which)), m = 0;
	int rc = 0;

	if (!reqs || !which) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char alias[2 * SPDK_NAME_LEN + 2];

		if (!lookup[i])
			continue;
		snprintf(alias, sizeof(alias), "%s/%s", rows[i].lvs->name, rows[i].name);
		reqs[m].method = "bdev_get_bdevs";
		reqs[m].params = json_pack("{s:s}", "name", alias);
		which[m++] = i;
		reqs[m].method = "nvmf_get_subsystems";
		reqs[m].params = json_pack("{s:s}", "nqn", rows[i].nqn);
		which[m++] = i;
	}
	rc = spdk_call_many(l->spdk, reqs, m);
	for (size_t j = 0; j < m; j++) {
		if (reqs[j].rc != -ENODEV)
			rows[which[j]].b.out = true; /* found, or unsure: one by one */
		json_decref(reqs[j].result);
	}
out:
	mem_free(reqs);
	mem_free(which);
	return rc;
}

int agent_provision_batch(struct agent_loop *l, const struct db_disk *disks, size_t n_disks,
			  struct db_lvol *lvols, size_t n_lvols, struct agent_view *v, bool *done,
			  bool *stale)
{
	struct brow *rows = NULL;
	uint64_t *free_clusters = NULL;
	bool *lookup = NULL, any_lookup = false;
	size_t n = 0, max_addrs = 0, max_hosts = 0, ran;
	int rc = 0;

	*stale = false;
	if (!v->lvstores.n || !n_lvols)
		return 0;
	rows = mem_zalloc(n_lvols * sizeof(*rows));
	lookup = mem_zalloc(n_lvols * sizeof(*lookup));
	free_clusters = mem_zalloc(v->lvstores.n * sizeof(*free_clusters));
	if (!rows || !lookup || !free_clusters) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < v->lvstores.n; i++)
		free_clusters[i] = v->lvstores.v[i].free_clusters;
	for (size_t i = 0; i < n_lvols; i++) {
		struct db_lvol *lv = &lvols[i];
		const struct db_disk *d = agent_disk_find(disks, n_disks, lv->disk_id);
		struct brow *r = &rows[n];
		int idx = d ? agent_view_lvstore(v, d->lvstore_uuid) : -1, how;

		if (idx < 0 || (how = plain(l, v, d, lv, idx, free_clusters)) == 0)
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
		lookup[n] = how == 2;
		any_lookup |= how == 2;
		max_addrs = COMMON_MAX(max_addrs, r->n_addrs);
		max_hosts = COMMON_MAX(max_hosts, lv->host_count + 1);
		n++;
	}
	if (!n)
		goto out;
	if (any_lookup && (rc = lookups(l, rows, n, lookup)) != 0)
		goto out;
	/* Rows the lookups found are provision_lvol's and unchanged: no need for
	 * a fresh view because of them. */
	for (size_t i = 0; i < n; i++)
		if (rows[i].b.out)
			rows[i].b.id = -1;
	if (n > 1)
		LOG_INFO("agent", "lvol batch rows=%zu (every step pipelined)", n);

	if ((rc = STEP(2, make_create, reply_create, "create", &ran)) != 0)
		goto out;
	/* No space for the lvol: permanent, as provision_lvol says it (the
	 * subsystem stays for the delete loop, as there). */
	for (size_t i = 0; i < n; i++) {
		struct brow *r = &rows[i];

		if (r->b.out && r->b.id >= 0 && r->b.rc == -ENOSPC && r->b.k == 1) {
			agent_lvol_fail(l, r->lv, "no space left on disk %s", r->d->name);
			done[r->lv - lvols] = true;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!rows[i].b.out)
			LOG_INFO("agent", "lvol created id=%" PRId64 " uuid=%s disk=%s size_mib=%" PRIu64
				 " thin=%d", rows[i].lv->id, rows[i].uuid, rows[i].d->name,
				 agent_size_mib(rows[i].lv->size), (int)rows[i].lv->thin);
	if (ran) {
		agent_crash("provision.after_subsystem_create");
		agent_crash("provision.after_lvol_create");
	}
	if ((rc = STEP(2, make_listener_size, reply_listener_size, "listener", &ran)) != 0)
		goto out;
	if (ran)
		agent_crash("provision.after_listener_add");
	if ((rc = agent_batch_each(l, rows, sizeof(*rows), n, max_addrs, make_more_listeners,
				   "listener", "provision.after_listener_add")) != 0)
		goto out;
	if ((rc = agent_batch_each(l, rows, sizeof(*rows), n, max_hosts, make_host, "host",
				   "provision.after_host_add")) != 0)
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

	if ((rc = STEP(1, make_ns, NULL, "namespace", &ran)) != 0)
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
	/* A row that entered the batch and left it part-way changed the target. */
	for (size_t i = 0; i < n; i++)
		if (rows[i].b.id >= 0 && !done[rows[i].lv - lvols])
			*stale = true;
	for (size_t i = 0; rows && i < n; i++)
		mem_free(rows[i].addrs);
	mem_free(rows);
	mem_free(lookup);
	mem_free(free_clusters);
	return rc;
}
