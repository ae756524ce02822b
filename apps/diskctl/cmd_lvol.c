/*
 * cmd_lvol.c: diskctl commands that write or show volumes: `lvol create |
 * resize | delete | list | show`, `snapshot create | delete | list` and
 * `clone create`. Writes go through db.h (validated there, one transaction
 * each); --wait then follows the row until the agent finishes.
 */
#include "diskctl.h"

#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Prints the new id (text: the bare number; json: {"id": N}). */
static void print_id(struct ctl *ctl, int64_t id)
{
	if (ctl->json) {
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(id));
		ctl_json_print(o);
	} else {
		printf("%" PRId64 "\n", id);
	}
	fflush(stdout);
}

static int create_common(struct ctl *ctl, struct ctl_args *a, struct db_lvol_spec *spec)
{
	const struct ctl_optval *hosts = ctl_opt(a, "host");
	int64_t id = 0;
	int wait_s, rc;

	if ((rc = ctl_parse_wait(ctl->cmd, a, &wait_s)) != 0)
		return rc;
	spec->hosts = hosts->multi;
	spec->host_count = hosts->count;
	rc = db_lvol_create(ctl->db, spec, &id);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "create");
	print_id(ctl, id);
	if (wait_s > 0)
		return ctl_wait_lvol(ctl, id, DB_LVOL_READY, wait_s);
	return EXIT_OK;
}

int ctl_lvol_create(struct ctl *ctl, struct ctl_args *a)
{
	struct db_lvol_spec spec = { 0 };
	int rc;

	if (!ctl_opt_str(a, "size"))
		return ctl_usage(ctl->cmd, "missing --size");
	if ((rc = ctl_parse_size(ctl->cmd, "size", ctl_opt_str(a, "size"), &spec.size)) != 0)
		return rc;
	spec.disk = ctl_opt_str(a, "disk");
	spec.node = ctl_opt_str(a, "node");
	spec.thin = ctl_opt_flag(a, "thin");
	return create_common(ctl, a, &spec);
}

int ctl_clone_create(struct ctl *ctl, struct ctl_args *a)
{
	struct db_lvol_spec spec = { 0 };
	int rc;

	if ((rc = ctl_parse_id(ctl->cmd, "snapshot id", a->pos[0], &spec.clone_of)) != 0)
		return rc;
	return create_common(ctl, a, &spec);
}

int ctl_lvol_resize(struct ctl *ctl, struct ctl_args *a)
{
	uint64_t size = 0;
	int64_t id = 0;
	int wait_s, rc;

	if ((rc = ctl_parse_id(ctl->cmd, "lvol id", a->pos[0], &id)) != 0)
		return rc;
	if (!ctl_opt_str(a, "size"))
		return ctl_usage(ctl->cmd, "missing --size");
	if ((rc = ctl_parse_size(ctl->cmd, "size", ctl_opt_str(a, "size"), &size)) != 0)
		return rc;
	if ((rc = ctl_parse_wait(ctl->cmd, a, &wait_s)) != 0)
		return rc;
	rc = db_lvol_resize(ctl->db, id, size, ctl_opt_flag(a, "allow-shrink"));
	if (rc < 0)
		return ctl_db_err(ctl, rc, "lvol resize");
	if (wait_s > 0)
		return ctl_wait_lvol(ctl, id, DB_LVOL_READY, wait_s);
	return EXIT_OK;
}

int ctl_lvol_delete(struct ctl *ctl, struct ctl_args *a)
{
	int64_t id = 0;
	int wait_s, rc;

	if ((rc = ctl_parse_id(ctl->cmd, "lvol id", a->pos[0], &id)) != 0)
		return rc;
	if ((rc = ctl_parse_wait(ctl->cmd, a, &wait_s)) != 0)
		return rc;
	rc = db_lvol_delete(ctl->db, id);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "lvol delete");
	if (wait_s > 0)
		return ctl_wait_lvol(ctl, id, DB_LVOL_DELETED, wait_s);
	return EXIT_OK;
}

static void lvol_row(const struct db_lvol *l)
{
	char s[32], r[32];

	printf("%-6" PRId64 " %-12s %-12s %-10s %-10s %-4s %-9s %-36s %s\n", l->id, l->node, l->disk,
	       ctl_size(l->size, s, sizeof(s)), l->real_size ? ctl_size(l->real_size, r, sizeof(r)) : "-",
	       l->thin ? "yes" : "no", db_lvol_state_name(l->state), l->uuid[0] ? l->uuid : "-",
	       l->reason);
}

int ctl_lvol_list(struct ctl *ctl, struct ctl_args *a)
{
	struct db_lvol_filter f = { .state = DB_LVOL_ANY };
	const char *state = ctl_opt_str(a, "state");
	struct db_lvol *arr = NULL;
	size_t n = 0, i;
	int rc;

	f.node = ctl_opt_str(a, "node");
	f.disk = ctl_opt_str(a, "disk");
	f.include_deleted = ctl_opt_flag(a, "all");
	if (state && db_lvol_state_parse(state, &f.state) < 0)
		return ctl_usage(ctl->cmd,
				 "invalid --state '%.32s': expected CREATING, READY, RESIZING, DELETING, DELETED or FAILED",
				 state);
	if ((rc = db_lvol_list(ctl->db, &f, &arr, &n)) < 0)
		return ctl_db_err(ctl, rc, "lvol list");
	if (ctl->json) {
		json_t *out = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(out, ctl_lvol_json(&arr[i]));
		ctl_json_print(out);
	} else {
		printf("%-6s %-12s %-12s %-10s %-10s %-4s %-9s %-36s %s\n", "ID", "NODE", "DISK", "SIZE",
		       "REAL", "THIN", "STATE", "UUID", "REASON");
		for (i = 0; i < n; i++)
			lvol_row(&arr[i]);
	}
	db_lvol_list_free(arr, n);
	return EXIT_OK;
}

int ctl_lvol_show(struct ctl *ctl, struct ctl_args *a)
{
	struct db_lvol l;
	int64_t id = 0;
	char s[32], age[32];
	size_t i;
	int rc;

	if ((rc = ctl_parse_id(ctl->cmd, "lvol id", a->pos[0], &id)) != 0)
		return rc;
	if ((rc = db_lvol_get(ctl->db, id, &l)) < 0)
		return ctl_db_err(ctl, rc, "lvol show");
	if (ctl->json) {
		ctl_json_print(ctl_lvol_json(&l));
		db_lvol_clear(&l);
		return EXIT_OK;
	}
	printf("id:          %" PRId64 "\n", l.id);
	printf("state:       %s\n", db_lvol_state_name(l.state));
	if (l.reason[0])
		printf("reason:      %s\n", l.reason);
	printf("node:        %s\n", l.node);
	printf("disk:        %s\n", l.disk);
	printf("size:        %s (%" PRIu64 " bytes)\n", ctl_size(l.size, s, sizeof(s)), l.size);
	if (l.real_size)
		printf("real size:   %s (%" PRIu64 " bytes)\n", ctl_size(l.real_size, s, sizeof(s)),
		       l.real_size);
	else
		printf("real size:   -\n");
	printf("thin:        %s\n", l.thin ? "yes" : "no");
	printf("uuid:        %s\n", l.uuid[0] ? l.uuid : "-");
	printf("nqn:         %s\n", l.nqn[0] ? l.nqn : "-");
	printf("hosts:       %s", l.host_count ? "" : "-");
	for (i = 0; i < l.host_count; i++)
		printf("%s%s", i ? " " : "", l.hosts[i]);
	printf("\n");
	if (l.clone_of)
		printf("clone of:    snapshot %" PRId64 "\n", l.clone_of);
	if (l.zero_to > l.zero_from) {
		uint64_t done = l.zero_done > l.zero_from ? l.zero_done - l.zero_from : 0;
		char t[32];

		printf("zeroing:     %s of %s done [%" PRIu64 ", %" PRIu64 ")\n",
		       ctl_size(done, s, sizeof(s)), ctl_size(l.zero_to - l.zero_from, t, sizeof(t)),
		       l.zero_from, l.zero_to);
	}
	printf("generation:  %" PRIu64 "\n", l.generation);
	printf("updated:     %s\n", ctl_age(l.updated_at, age, sizeof(age)));
	db_lvol_clear(&l);
	return EXIT_OK;
}

int ctl_snapshot_create(struct ctl *ctl, struct ctl_args *a)
{
	int64_t lvol = 0, id = 0;
	int wait_s, rc;

	if ((rc = ctl_parse_id(ctl->cmd, "lvol id", a->pos[0], &lvol)) != 0)
		return rc;
	if ((rc = ctl_parse_wait(ctl->cmd, a, &wait_s)) != 0)
		return rc;
	if ((rc = db_snapshot_create(ctl->db, lvol, &id)) < 0)
		return ctl_db_err(ctl, rc, "snapshot create");
	print_id(ctl, id);
	if (wait_s > 0)
		return ctl_wait_snapshot(ctl, id, DB_SNAPSHOT_READY, wait_s);
	return EXIT_OK;
}

int ctl_snapshot_delete(struct ctl *ctl, struct ctl_args *a)
{
	int64_t id = 0;
	int wait_s, rc;

	if ((rc = ctl_parse_id(ctl->cmd, "snapshot id", a->pos[0], &id)) != 0)
		return rc;
	if ((rc = ctl_parse_wait(ctl->cmd, a, &wait_s)) != 0)
		return rc;
	if ((rc = db_snapshot_delete(ctl->db, id)) < 0)
		return ctl_db_err(ctl, rc, "snapshot delete");
	if (wait_s > 0)
		return ctl_wait_snapshot(ctl, id, DB_SNAPSHOT_DELETED, wait_s);
	return EXIT_OK;
}

int ctl_snapshot_list(struct ctl *ctl, struct ctl_args *a)
{
	struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY };
	const char *lvol = ctl_opt_str(a, "lvol");
	struct db_snapshot *arr = NULL;
	size_t n = 0, i;
	char s[32];
	int rc;

	f.node = ctl_opt_str(a, "node");
	f.include_deleted = ctl_opt_flag(a, "all");
	if (lvol && (rc = ctl_parse_id(ctl->cmd, "lvol id", lvol, &f.lvol_id)) != 0)
		return rc;
	if ((rc = db_snapshot_list(ctl->db, &f, &arr, &n)) < 0)
		return ctl_db_err(ctl, rc, "snapshot list");
	if (ctl->json) {
		json_t *out = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(out, ctl_snapshot_json(&arr[i]));
		ctl_json_print(out);
	} else {
		printf("%-6s %-6s %-12s %-12s %-10s %-9s %-36s %s\n", "ID", "LVOL", "NODE", "DISK",
		       "SIZE", "STATE", "UUID", "REASON");
		for (i = 0; i < n; i++)
			printf("%-6" PRId64 " %-6" PRId64 " %-12s %-12s %-10s %-9s %-36s %s\n", arr[i].id,
			       arr[i].lvol_id, arr[i].node, arr[i].disk, ctl_size(arr[i].size, s, sizeof(s)),
			       db_snapshot_state_name(arr[i].state), arr[i].uuid[0] ? arr[i].uuid : "-",
			       arr[i].reason);
	}
	db_snapshot_list_free(arr, n);
	return EXIT_OK;
}
