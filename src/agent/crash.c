/*
 * crash.c: named crash points (issue 9's matrix). Every point between two
 * external effects (a JSON-RPC call, a DB write) has a name listed below;
 * DISKENGINE_CRASH_AT=<name>[:<count>] makes the process _exit() the
 * <count>-th time it passes that point. Compiled out (no-ops) when the build
 * has fault injection disabled.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const crash_points[] = {
	/* disk start-up */
	"disk.after_aio_create",
	"disk.after_lvstore_create",
	"disk.after_lvstore_record",
	/* provisioning */
	"provision.after_transport_create",
	"provision.after_subsystem_create",
	"provision.after_listener_add",
	"provision.after_host_add",
	"provision.after_lvol_create",
	"provision.after_uuid_record",
	"provision.after_ns_add",
	"provision.after_ready",
	"snapshot.after_create",
	"snapshot.after_uuid_record",
	"snapshot.after_ready",
	/* verify */
	"verify.after_disk_observe",
	"verify.after_reexport",
	/* resize */
	"resize.after_intent",
	"resize.after_resize",
	"resize.after_zero_chunk",
	"resize.before_done",
	"resize.after_done",
	/* delete */
	"delete.after_ns_remove",
	"delete.after_subsystem_delete",
	"delete.after_lvol_delete",
	"delete.after_finalize",
	"delete.after_snapshot_delete",
	NULL,
};

static char crash_name[128];
static long crash_count;
static atomic_long crash_seen;

const char *const *agent_crash_points(void)
{
	return crash_points;
}

static bool crash_known(const char *name)
{
	for (size_t i = 0; crash_points[i]; i++)
		if (strcmp(crash_points[i], name) == 0)
			return true;
	return false;
}

int agent_crash_init(void)
{
	const char *env = getenv("DISKENGINE_CRASH_AT");
	const char *colon;
	size_t len;

	crash_name[0] = '\0';
	crash_count = 1;
	atomic_store(&crash_seen, 0);
	if (!env || !*env)
		return 0;
#ifndef DE_FAULT_INJECTION
	LOG_WARN("agent", "DISKENGINE_CRASH_AT ignored: built without fault injection");
	return 0;
#endif
	colon = strchr(env, ':');
	len = colon ? (size_t)(colon - env) : strlen(env);
	if (len == 0 || len >= sizeof(crash_name))
		return -EINVAL;
	memcpy(crash_name, env, len);
	crash_name[len] = '\0';
	if (colon) {
		char *end;

		crash_count = strtol(colon + 1, &end, 10);
		if (*end || crash_count < 1) {
			crash_name[0] = '\0';
			return -EINVAL;
		}
	}
	if (!crash_known(crash_name)) {
		LOG_ERROR("agent", "unknown crash point name=%s (see --list-crash-points)", crash_name);
		crash_name[0] = '\0';
		return -EINVAL;
	}
	LOG_INFO("agent", "crash point armed name=%s count=%ld", crash_name, crash_count);
	return 0;
}

void agent_crash(const char *name)
{
#ifdef DE_FAULT_INJECTION
	if (crash_name[0] && strcmp(name, crash_name) == 0 &&
	    atomic_fetch_add(&crash_seen, 1) + 1 == crash_count) {
		LOG_WARN("agent", "crash point reached name=%s count=%ld: exiting", name, crash_count);
		_exit(AGENT_CRASH_EXIT);
	}
#else
	(void)name;
#endif
}
