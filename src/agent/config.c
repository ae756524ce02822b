/*
 * config.c: agent options: defaults, the `key = value` config file and
 * duration parsing. Command-line flags are applied by apps/diskengine after
 * the file, so they win.
 */
#include "agent/agent_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

void agent_options_init(struct agent_options *o)
{
	memset(o, 0, sizeof(*o));
	o->tick_ms = AGENT_TICK_MS_DEFAULT;
	o->poll_ms = AGENT_POLL_MS_DEFAULT;
	o->rpc_timeout_ms = AGENT_RPC_TIMEOUT_MS_DEFAULT;
	o->nvme_timeout_ms = AGENT_NVME_TIMEOUT_MS_DEFAULT;
	o->zero_chunk = AGENT_ZERO_CHUNK_DEFAULT;
	o->orphan_grace_s = AGENT_ORPHAN_GRACE_S_DEFAULT;
	o->events_keep_ms = AGENT_EVENTS_KEEP_MS_DEFAULT;
}

int agent_duration_parse(const char *s, uint64_t *ms_out)
{
	static const struct { const char *suffix; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	char *end;
	double v;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (*end == '\0') {
		v *= 1000;
	} else {
		size_t i;

		for (i = 0; i < COMMON_ARRAY_SIZE(units); i++)
			if (strcmp(end, units[i].suffix) == 0)
				break;
		if (i == COMMON_ARRAY_SIZE(units))
			return -EINVAL;
		v *= units[i].ms;
	}
	if (v > 1e15)
		return -ERANGE;
	*ms_out = (uint64_t)(v + 0.5);
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "on", "true", "yes" };
	static const char *const no[] = { "0", "off", "false", "no" };

	for (size_t i = 0; i < COMMON_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_str(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* Applies one key; 0, -ENOENT (unknown key) or -EINVAL/-ERANGE (bad value). */
static int config_apply(struct agent_options *o, const char *key, const char *val)
{
	uint64_t ms;
	int rc;

	if (strcmp(key, "db") == 0)
		return set_str(o->db, sizeof(o->db), val);
	if (strcmp(key, "node") == 0)
		return set_str(o->node, sizeof(o->node), val);
	if (strcmp(key, "rpc_socket") == 0)
		return set_str(o->rpc_socket, sizeof(o->rpc_socket), val);
	if (strcmp(key, "nqn_prefix") == 0)
		return set_str(o->nqn_prefix, sizeof(o->nqn_prefix), val);
	if (strcmp(key, "metrics_listen") == 0)
		return set_str(o->metrics_listen, sizeof(o->metrics_listen), val);
	if (strcmp(key, "log_level") == 0) {
		enum log_level l;

		if (log_level_parse(val, &l))
			return -EINVAL;
		return set_str(o->log_level, sizeof(o->log_level), val);
	}
	if (strcmp(key, "orphan_collect") == 0)
		return parse_bool(val, &o->orphan_collect);
	if (strcmp(key, "wakeup") == 0) {
		bool on;

		rc = parse_bool(val, &on);
		if (rc == 0)
			o->no_wakeup = !on;
		return rc;
	}
	if (strcmp(key, "verify_full") == 0)
		return agent_duration_parse(val, &o->verify_full_ms);
	if (strcmp(key, "events_keep") == 0)
		return agent_duration_parse(val, &o->events_keep_ms);
	if (strcmp(key, "zero_chunk") == 0) {
		uint64_t b;

		rc = size_parse(val, &b);
		if (rc)
			return rc;
		if (b < 4096)
			return -EINVAL;
		o->zero_chunk = b;
		return 0;
	}
	if (strcmp(key, "tick") == 0 || strcmp(key, "poll") == 0 ||
	    strcmp(key, "rpc_timeout") == 0 || strcmp(key, "nvme_timeout") == 0 ||
	    strcmp(key, "orphan_grace") == 0) {
		rc = agent_duration_parse(val, &ms);
		if (rc)
			return rc;
		if (key[0] == 't') {
			if (ms == 0)
				return -EINVAL;
			o->tick_ms = ms;
		} else if (key[0] == 'p') {
			if (ms == 0)
				return -EINVAL;
			o->poll_ms = ms;
		} else if (key[0] == 'r' || key[0] == 'n') {
			if (ms == 0 || ms > 3600000)
				return -EINVAL;
			*(key[0] == 'r' ? &o->rpc_timeout_ms : &o->nvme_timeout_ms) = (int)ms;
		} else {
			o->orphan_grace_s = ms / 1000;
		}
		return 0;
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int agent_config_load(const char *path, struct agent_options *o, char *err, size_t errlen)
{
	char line[2048];
	unsigned lineno = 0;
	FILE *f;
	int rc = 0;

	f = fopen(path, "r");
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, common_strerror(rc));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		char *key, *val, *eq, *hash;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			rc = -EINVAL;
			goto out;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected key = value", path, lineno);
			rc = -EINVAL;
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		/* Optional double quotes around the value. */
		if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		rc = config_apply(o, key, val);
		if (rc == -ENOENT) {
			snprintf(err, errlen, "%s:%u: unknown key '%s'", path, lineno, key);
			rc = -EINVAL;
			goto out;
		}
		if (rc) {
			snprintf(err, errlen, "%s:%u: bad value for %s: '%s'", path, lineno, key, val);
			rc = -EINVAL;
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
	}
out:
	fclose(f);
	return rc;
}
