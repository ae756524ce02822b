/*
 * disk.c: node start-up for each disk (DESIGN.md): the base bdev
 * (bdev_aio_create on the configured file or device) and the lvstore on it,
 * created the first time, adopted when present, its UUID and cluster size
 * recorded. Runs at the start of every provisioning pass for disks whose
 * lvstore is not loaded (new disk, target restarted). A disk whose lvstore
 * UUID is recorded never gets a new lvstore: that would destroy its data;
 * it is reported absent until the target loads it.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

const struct db_disk *agent_disk_find(const struct db_disk *disks, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (disks[i].id == id)
			return &disks[i];
	return NULL;
}

bool agent_noisy_once(struct agent_loop *l, int64_t disk_id, bool problem)
{
	size_t i;

	for (i = 0; i < l->n_noisy; i++)
		if (l->noisy_disks[i] == disk_id)
			break;
	if (!problem) {
		if (i == l->n_noisy)
			return false;
		l->noisy_disks[i] = l->noisy_disks[--l->n_noisy];
		return true;
	}
	if (i < l->n_noisy)
		return false;
	int64_t *v = mem_realloc(l->noisy_disks, (l->n_noisy + 1) * sizeof(*v));
	if (!v)
		return true;
	l->noisy_disks = v;
	v[l->n_noisy++] = disk_id;
	return true;
}

static const struct spdk_lvstore *lvstore_by_name(const struct agent_view *v, const char *name)
{
	for (size_t i = 0; i < v->lvstores.n; i++)
		if (strcmp(v->lvstores.v[i].name, name) == 0)
			return &v->lvstores.v[i];
	return NULL;
}

static const struct spdk_lvstore *lvstore_by_bdev(const struct agent_view *v, const char *bdev)
{
	for (size_t i = 0; i < v->lvstores.n; i++)
		if (strcmp(v->lvstores.v[i].base_bdev, bdev) == 0)
			return &v->lvstores.v[i];
	return NULL;
}

static int refresh_lvstores(struct agent_loop *l, struct agent_view *v)
{
	struct spdk_lvstore_list fresh;
	int rc = spdk_lvstore_get(l->spdk, NULL, NULL, &fresh);

	if (rc)
		return rc;
	/* Lvol lists are per lvstore index: drop them, callers re-fetch. */
	if (v->lvols) {
		for (size_t i = 0; i < v->lvstores.n; i++)
			spdk_lvol_list_free(&v->lvols[i]);
	}
	mem_free(v->lvols);
	mem_free(v->lvols_ok);
	spdk_lvstore_list_free(&v->lvstores);
	v->lvstores = fresh;
	v->lvols = mem_zalloc((fresh.n + 1) * sizeof(*v->lvols));
	v->lvols_ok = mem_zalloc((fresh.n + 1) * sizeof(*v->lvols_ok));
	if (!v->lvols || !v->lvols_ok)
		return -ENOMEM;
	for (size_t i = 0; i < fresh.n; i++) {
		rc = spdk_lvol_get(l->spdk, fresh.v[i].uuid, &v->lvols[i]);
		if (rc == 0)
			v->lvols_ok[i] = true;
		else if (rc != -ENODEV)
			return rc;
	}
	return 0;
}

static void record_lvstore(struct agent_loop *l, struct db_disk *d, const struct spdk_lvstore *s)
{
	int rc = db_disk_set_lvstore(l->db, d->id, s->uuid, s->cluster_size);

	if (rc) {
		LOG_WARN("agent", "lvstore not recorded disk=%s uuid=%s err=%s db=\"%s\"", d->name,
			 s->uuid, common_strerror(rc), db_errmsg(l->db));
		return;
	}
	snprintf(d->lvstore_uuid, sizeof(d->lvstore_uuid), "%s", s->uuid);
	d->cluster_size = s->cluster_size;
	LOG_INFO("agent", "lvstore recorded disk=%s lvstore=%s uuid=%s cluster_size=%llu", d->name,
		 s->name, s->uuid, (unsigned long long)s->cluster_size);
	agent_crash("disk.after_lvstore_record");
}

/* One disk. Returns 0 when its lvstore is loaded (view refreshed as needed). */
static int disk_ensure(struct agent_loop *l, struct db_disk *d, struct agent_view *v)
{
	const char *lvs_name = d->lvstore[0] ? d->lvstore : d->name;
	const struct spdk_lvstore *s;
	char uuid[SPDK_UUID_LEN], object[DB_OBJECT_MAX];
	int rc;

	if (agent_view_lvstore(v, d->lvstore_uuid) >= 0)
		return 0;
	snprintf(object, sizeof(object), "disk/%s", d->name);
	/* Base bdev: create-if-missing (-EEXIST: it exists, examine ran or runs). */
	rc = spdk_bdev_aio_create(l->spdk, d->path, d->name, 0);
	if (rc && rc != -EEXIST) {
		if (spdk_call_is_transient(rc))
			return rc;
		agent_event_raise(l, "disk-error", object,
				  "bdev_aio_create %s on %s failed: %s (%s)", d->name, d->path,
				  common_strerror(rc), spdk_client_last_message(l->spdk));
		return rc;
	}
	if (rc == 0) {
		LOG_INFO("agent", "base bdev created disk=%s path=%s", d->name, d->path);
		agent_crash("disk.after_aio_create");
	}
	rc = spdk_bdev_wait_for_examine(l->spdk);
	if (rc && rc != -EOPNOTSUPP)
		return rc;
	rc = refresh_lvstores(l, v);
	if (rc)
		return rc;
	if (d->lvstore_uuid[0]) {
		/* Known store: only the target can bring it back. */
		if (agent_view_lvstore(v, d->lvstore_uuid) >= 0) {
			agent_event_resolve(l, "disk-error", object);
			return 0;
		}
		return -ENODEV;
	}
	/* First time: adopt by name or by base bdev, else create. */
	s = lvstore_by_name(v, lvs_name);
	if (s && strcmp(s->base_bdev, d->name) != 0) {
		agent_event_raise(l, "disk-error", object,
				  "lvstore name %s is taken by bdev %s, not %s", lvs_name,
				  s->base_bdev, d->name);
		return -EEXIST;
	}
	if (!s)
		s = lvstore_by_bdev(v, d->name);
	if (s) {
		LOG_INFO("agent", "lvstore adopted disk=%s lvstore=%s uuid=%s", d->name, s->name,
			 s->uuid);
		record_lvstore(l, d, s);
		agent_event_resolve(l, "disk-error", object);
		return d->lvstore_uuid[0] ? 0 : -EAGAIN;
	}
	rc = spdk_lvstore_create(l->spdk, d->name, lvs_name, d->cluster_size, uuid);
	if (rc) {
		if (!spdk_call_is_transient(rc) && rc != -EEXIST && rc != -EPERM)
			agent_event_raise(l, "disk-error", object,
					  "bdev_lvol_create_lvstore %s on %s failed: %s (%s)",
					  lvs_name, d->name, common_strerror(rc),
					  spdk_client_last_message(l->spdk));
		return rc; /* -EEXIST / -EPERM: adopted on the next pass */
	}
	LOG_INFO("agent", "lvstore created disk=%s lvstore=%s uuid=%s", d->name, lvs_name, uuid);
	agent_crash("disk.after_lvstore_create");
	rc = refresh_lvstores(l, v);
	if (rc)
		return rc;
	s = lvstore_by_name(v, lvs_name);
	if (!s)
		return -EAGAIN;
	record_lvstore(l, d, s);
	agent_event_resolve(l, "disk-error", object);
	return 0;
}

void agent_disks_ensure(struct agent_loop *l, struct db_disk *disks, size_t n,
			struct agent_view *v)
{
	for (size_t i = 0; i < n && !agent_stopping(l->agent); i++) {
		int rc = disk_ensure(l, &disks[i], v);

		if (rc == 0) {
			if (agent_noisy_once(l, disks[i].id, false))
				LOG_INFO("agent", "disk ready disk=%s", disks[i].name);
			continue;
		}
		if (spdk_call_is_transient(rc))
			return;
		if (agent_noisy_once(l, disks[i].id, true))
			LOG_WARN("agent", "disk not ready disk=%s path=%s lvstore_uuid=%s err=%s",
				 disks[i].name, disks[i].path,
				 disks[i].lvstore_uuid[0] ? disks[i].lvstore_uuid : "-",
				 common_strerror(rc));
	}
}
