/*
 * cmd_status.c: diskctl's overview commands: `events [--all]` (drift,
 * orphans, re-exports ... deduplicated rows written by the agents) and
 * `status` (per node and disk: liveness, capacity, free, lvols by state,
 * open events).
 */
#include "diskctl.h"

#include "common/common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_events(struct ctl *ctl, struct ctl_args *a)
{
	struct db_event *ev = NULL;
	size_t n = 0, i;
	char age[32];
	int rc;

	if ((rc = db_event_list(ctl->db, ctl_opt_flag(a, "all"), &ev, &n)) < 0)
		return ctl_db_err(ctl, rc, "events");
	if (ctl->json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, ctl_event_json(&ev[i]));
		ctl_json_print(arr);
	} else {
		printf("%-12s %-20s %-20s %-6s %-12s %-9s %s\n", "NODE", "KIND", "OBJECT", "COUNT",
		       "LAST_SEEN", "STATUS", "DETAIL");
		for (i = 0; i < n; i++)
			printf("%-12s %-20s %-20s %-6" PRIu64 " %-12s %-9s %s\n",
			       ev[i].node[0] ? ev[i].node : "-", ev[i].kind, ev[i].object, ev[i].count,
			       ctl_age(ev[i].last_seen, age, sizeof(age)),
			       ev[i].resolved_at ? "resolved" : "open", ev[i].detail);
	}
	db_event_list_free(ev, n);
	return EXIT_OK;
}

#define NSTATES (DB_LVOL_FAILED + 1)

struct disk_stats {
	size_t by_state[NSTATES];
	uint64_t provisioned; /* requested bytes of live lvols */
	size_t events_open;   /* open events about the disk or one of its lvols */
};

/* Index of the disk an event object ("disk/NAME", "lvol/ID") is about, or -1. */
static long event_disk(const struct db_event *e, const struct db_disk *disks, size_t nd,
		       const struct db_lvol *lvols, size_t nl)
{
	size_t i;

	if (!strncmp(e->object, "disk/", 5)) {
		for (i = 0; i < nd; i++)
			if (!strcmp(disks[i].name, e->object + 5))
				return (long)i;
	} else if (!strncmp(e->object, "lvol/", 5)) {
		long long id = atoll(e->object + 5);

		for (i = 0; i < nl; i++) {
			if (lvols[i].id != id)
				continue;
			for (size_t j = 0; j < nd; j++)
				if (disks[j].id == lvols[i].disk_id)
					return (long)j;
		}
	}
	return -1;
}

/* The fleet in one line (text; JSON: only creates *out): nodes live/total,
 * disks with a loaded lvstore, capacity and free bytes known, lvols by
 * state. */
static void fleet_summary(struct ctl *ctl, const struct db_node *nodes, size_t nn,
			  const struct db_disk *disks, size_t nd, const struct db_lvol *lvols,
			  size_t nl, int64_t now, json_t **out)
{
	size_t live = 0, loaded = 0, by_state[NSTATES] = { 0 }, i;
	uint64_t cap = 0, free_bytes = 0;
	char b1[32], b2[32];
	int s;

	for (i = 0; i < nn; i++)
		if (nodes[i].last_seen > 0 && now - nodes[i].last_seen <= DB_NODE_LIVE_MS)
			live++;
	for (i = 0; i < nd; i++) {
		if (disks[i].lvstore_state == DB_LVSTORE_LOADED)
			loaded++;
		if (disks[i].observed_at) {
			cap += disks[i].capacity;
			free_bytes += disks[i].free;
		}
	}
	for (i = 0; i < nl; i++)
		if ((int)lvols[i].state >= 0 && (int)lvols[i].state < NSTATES)
			by_state[lvols[i].state]++;
	if (ctl->json) {
		/* JSON callers sum the per-node objects (the shape stays as documented) */
		*out = json_object();
		return;
	}
	printf("fleet: %zu node%s (%zu live), %zu disk%s (%zu loaded), capacity %s, free %s, lvols:",
	       nn, nn == 1 ? "" : "s", live, nd, nd == 1 ? "" : "s", loaded,
	       ctl_size(cap, b1, sizeof(b1)), ctl_size(free_bytes, b2, sizeof(b2)));
	for (s = 0, i = 0; s < NSTATES; s++) {
		if (s == DB_LVOL_DELETED || !by_state[s])
			continue;
		printf(" %s %zu", db_lvol_state_name(s), by_state[s]);
		i++;
	}
	printf("%s\n", i ? "" : " none");
}

int ctl_status(struct ctl *ctl, struct ctl_args *a)
{
	struct db_lvol_filter lf = { .state = DB_LVOL_ANY };
	struct db_node *nodes = NULL;
	struct db_disk *disks = NULL;
	struct db_lvol *lvols = NULL;
	struct db_event *ev = NULL;
	struct disk_stats *st = NULL;
	size_t nn = 0, nd = 0, nl = 0, ne = 0, i, j, k;
	int64_t now = clock_wall_ms();
	json_t *out = NULL, *jnodes = NULL;
	int rc, code = EXIT_OK;
	char b1[32], b2[32], b3[32], age[32];

	(void)a;
	if ((rc = db_node_list(ctl->db, &nodes, &nn)) < 0 ||
	    (rc = db_disk_list(ctl->db, NULL, &disks, &nd)) < 0 ||
	    (rc = db_lvol_list(ctl->db, &lf, &lvols, &nl)) < 0 ||
	    (rc = db_event_list(ctl->db, false, &ev, &ne)) < 0) {
		code = ctl_db_err(ctl, rc, "status");
		goto out;
	}
	st = mem_zalloc((nd ? nd : 1) * sizeof(*st));
	if (!st) {
		code = ctl_err(EXIT_ERR, "out of memory");
		goto out;
	}
	for (i = 0; i < nl; i++) {
		for (j = 0; j < nd; j++) {
			if (disks[j].id == lvols[i].disk_id) {
				st[j].by_state[lvols[i].state]++;
				st[j].provisioned += lvols[i].size;
				break;
			}
		}
	}
	for (k = 0; k < ne; k++) {
		long di = event_disk(&ev[k], disks, nd, lvols, nl);

		if (di >= 0)
			st[di].events_open++;
	}
	fleet_summary(ctl, nodes, nn, disks, nd, lvols, nl, now, &out);
	if (ctl->json)
		jnodes = json_array();
	for (i = 0; i < nn; i++) {
		const struct db_node *n = &nodes[i];
		bool live = n->last_seen > 0 && now - n->last_seen <= DB_NODE_LIVE_MS;
		size_t open = 0;
		json_t *jn = NULL, *jd = NULL;

		for (k = 0; k < ne; k++)
			if (!strcmp(ev[k].node, n->name))
				open++;
		if (ctl->json) {
			jn = ctl_node_json(n, now);
			jd = json_array();
			json_object_set_new(jn, "events_open", json_integer((json_int_t)open));
		} else {
			printf("node %s: %s (last seen %s), %zu open event%s, rpc %s\n", n->name,
			       live ? "live" : "DOWN", ctl_age(n->last_seen, age, sizeof(age)), open,
			       open == 1 ? "" : "s", n->rpc_socket);
		}
		for (j = 0; j < nd; j++) {
			const struct db_disk *d = &disks[j];

			if (d->node_id != n->id)
				continue;
			if (ctl->json) {
				json_t *o = ctl_disk_json(d), *bs = json_object();
				int s;

				for (s = 0; s < NSTATES; s++)
					json_object_set_new(bs, db_lvol_state_name(s),
							    json_integer((json_int_t)st[j].by_state[s]));
				json_object_set_new(o, "lvols", bs);
				json_object_set_new(o, "provisioned",
						    json_integer((json_int_t)st[j].provisioned));
				json_object_set_new(o, "events_open",
						    json_integer((json_int_t)st[j].events_open));
				json_array_append_new(jd, o);
				continue;
			}
			printf("  disk %s: lvstore %s %s, capacity %s, free %s, provisioned %s\n", d->name,
			       d->lvstore, db_lvstore_state_name(d->lvstore_state),
			       d->observed_at ? ctl_size(d->capacity, b1, sizeof(b1)) : "?",
			       d->observed_at ? ctl_size(d->free, b2, sizeof(b2)) : "?",
			       ctl_size(st[j].provisioned, b3, sizeof(b3)));
			printf("    lvols:");
			int s, any = 0;

			for (s = 0; s < NSTATES; s++) {
				if (s == DB_LVOL_DELETED || !st[j].by_state[s])
					continue;
				printf(" %s %zu", db_lvol_state_name(s), st[j].by_state[s]);
				any = 1;
			}
			printf("%s\n", any ? "" : " none");
			if (st[j].events_open)
				printf("    open events (drift, orphans ...): %zu\n", st[j].events_open);
		}
		if (ctl->json) {
			json_object_set_new(jn, "disks", jd);
			json_array_append_new(jnodes, jn);
		}
	}
	if (ctl->json) {
		json_t *jev = json_array();

		for (k = 0; k < ne; k++)
			json_array_append_new(jev, ctl_event_json(&ev[k]));
		json_object_set_new(out, "nodes", jnodes);
		json_object_set_new(out, "events_open", jev);
		ctl_json_print(out);
	} else {
		if (nn == 0)
			printf("no nodes (add one with: diskctl node add NAME --rpc-socket PATH)\n");
		printf("open events: %zu%s\n", ne, ne ? " (diskctl events)" : "");
		for (k = 0; k < ne && k < 10; k++)
			printf("  %s %s: %s (x%" PRIu64 ")\n", ev[k].kind, ev[k].object, ev[k].detail,
			       ev[k].count);
	}
out:
	mem_free(st);
	db_node_list_free(nodes, nn);
	db_disk_list_free(disks, nd);
	db_lvol_list_free(lvols, nl);
	db_event_list_free(ev, ne);
	return code;
}
