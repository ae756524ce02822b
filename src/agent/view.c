/*
 * view.c: the agent's view of the target for one pass: the lvstores, the
 * lvols of each (one bdev_lvol_get_lvols per lvstore, never one call per
 * lvol), the NVMe-oF subsystems and, for size checks, the bdevs.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <string.h>

#include "common/common.h"

void agent_view_free(struct agent_view *v)
{
	if (!v)
		return;
	if (v->lvols) {
		for (size_t i = 0; i < v->lvstores.n; i++)
			spdk_lvol_list_free(&v->lvols[i]);
	}
	mem_free(v->lvols);
	mem_free(v->lvols_ok);
	spdk_lvstore_list_free(&v->lvstores);
	spdk_subsystem_list_free(&v->subsystems);
	spdk_bdev_list_free(&v->bdevs);
	memset(v, 0, sizeof(*v));
}

int agent_view_fetch(struct agent_loop *l, struct agent_view *v, bool want_lvols,
		     bool want_subsystems, bool want_bdevs)
{
	int rc;

	memset(v, 0, sizeof(*v));
	rc = spdk_lvstore_get(l->spdk, NULL, NULL, &v->lvstores);
	if (rc)
		goto fail;
	v->lvols = mem_zalloc((v->lvstores.n + 1) * sizeof(*v->lvols));
	v->lvols_ok = mem_zalloc((v->lvstores.n + 1) * sizeof(*v->lvols_ok));
	if (!v->lvols || !v->lvols_ok) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; want_lvols && i < v->lvstores.n; i++) {
		rc = spdk_lvol_get(l->spdk, v->lvstores.v[i].uuid, &v->lvols[i]);
		if (rc == -ENODEV)
			continue; /* unloaded between the two calls: judged absent */
		if (rc)
			goto fail;
		v->lvols_ok[i] = true;
	}
	if (want_subsystems) {
		rc = spdk_nvmf_subsystem_get(l->spdk, &v->subsystems);
		if (rc)
			goto fail;
		v->have_subsystems = true;
	}
	if (want_bdevs) {
		rc = spdk_bdev_get(l->spdk, NULL, &v->bdevs);
		if (rc)
			goto fail;
		v->have_bdevs = true;
	}
	return 0;
fail:
	agent_view_free(v);
	return rc;
}

int agent_view_lvstore(const struct agent_view *v, const char *uuid)
{
	if (!uuid || !*uuid)
		return -1;
	for (size_t i = 0; i < v->lvstores.n; i++)
		if (strcmp(v->lvstores.v[i].uuid, uuid) == 0)
			return (int)i;
	return -1;
}

const struct spdk_lvol *agent_view_lvol(const struct agent_view *v, const char *lvs_uuid,
					const char *name)
{
	int i = agent_view_lvstore(v, lvs_uuid);

	if (i < 0 || !v->lvols_ok[i])
		return NULL;
	return spdk_lvol_find_name(&v->lvols[i], name);
}
