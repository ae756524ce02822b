/*
 * names.c: the names the agent puts on the wire (DESIGN.md "Names on the
 * wire"): lvol and snapshot names, subsystem NQNs, serial numbers, the
 * agent's host NQN, and size rounding. Other tools and hosts depend on them.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agent_lvol_nqn(const char *prefix, int64_t id, char out[AGENT_NQN_MAX])
{
	snprintf(out, AGENT_NQN_MAX, "%s:lvol-%" PRId64, prefix, id);
}

void agent_lvol_serial(int64_t id, char out[24])
{
	snprintf(out, 24, "DE%018" PRId64, id);
}

void agent_host_nqn(const char *prefix, const char *node, char out[AGENT_NQN_MAX])
{
	snprintf(out, AGENT_NQN_MAX, "%s:agent:%s", prefix, node);
}

void agent_snapshot_name(int64_t id, char out[32])
{
	snprintf(out, 32, "snap-%" PRId64, id);
}

/* Strict positive decimal without leading zeros or sign; 0 if not. */
static int64_t parse_id(const char *s)
{
	int64_t v = 0;

	if (!s || *s < '1' || *s > '9')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

int64_t agent_name_lvol_id(const char *name)
{
	return parse_id(name);
}

int64_t agent_name_snapshot_id(const char *name)
{
	if (!name || strncmp(name, "snap-", 5) != 0)
		return 0;
	return parse_id(name + 5);
}

int64_t agent_nqn_lvol_id(const char *prefix, const char *nqn)
{
	size_t n = strlen(prefix);

	if (strncmp(nqn, prefix, n) != 0 || strncmp(nqn + n, ":lvol-", 6) != 0)
		return 0;
	return parse_id(nqn + n + 6);
}

uint64_t agent_size_mib(uint64_t bytes)
{
	return bytes / MIB + (bytes % MIB ? 1 : 0);
}

uint64_t agent_size_real(uint64_t bytes, uint64_t cluster_size)
{
	uint64_t b = agent_size_mib(bytes) * MIB;

	if (!cluster_size)
		return b;
	return (b / cluster_size + (b % cluster_size ? 1 : 0)) * cluster_size;
}
