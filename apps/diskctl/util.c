/*
 * util.c: diskctl's plumbing: one-line errors with the right exit code, the
 * option parser (--name VALUE, --name=VALUE, repeatable options, --wait[=S]),
 * value parsers (ids, sizes, paths) and JSON/text output helpers.
 */
#include "diskctl.h"

#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- errors */

/* Replaces control characters so an error stays one line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* The batch context of error lines and the last message (a JSON batch puts
 * it into the command's result). diskctl is single-threaded. */
static char err_prefix[64];
static char err_last[1024];

const char *ctl_err_last(void)
{
	return err_last;
}

void ctl_err_context(const char *prefix)
{
	snprintf(err_prefix, sizeof(err_prefix), "%s", prefix ? prefix : "");
	err_last[0] = '\0';
}

int ctl_err(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_last, sizeof(err_last), fmt, ap);
	va_end(ap);
	one_line(err_last);
	fprintf(stderr, "diskctl: %s%s\n", err_prefix, err_last);
	return code;
}

int ctl_db_err(struct ctl *ctl, int rc, const char *what)
{
	const char *msg = ctl->db ? db_errmsg(ctl->db) : "";

	if (msg && *msg)
		return ctl_err(EXIT_ERR, "%s", msg);
	return ctl_err(EXIT_ERR, "%s: %s", what, common_strerror(rc));
}

int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...)
{
	char buf[sizeof(err_last) - 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (cmd)
		return ctl_err(EXIT_USAGE, "%s (usage: diskctl %s)", buf, cmd->synopsis);
	return ctl_err(EXIT_USAGE, "%s (see diskctl --help)", buf);
}

/* ------------------------------------------------------------ options */

static int spec_index(const struct ctl_args *a, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < a->nspec; i++)
		if (strlen(a->spec[i].name) == len && !strncmp(a->spec[i].name, name, len))
			return (int)i;
	return -1;
}

const struct ctl_optval *ctl_opt(const struct ctl_args *a, const char *name)
{
	int i = spec_index(a, name, strlen(name));

	return i < 0 ? NULL : &a->vals[i];
}

const char *ctl_opt_str(const struct ctl_args *a, const char *name)
{
	const struct ctl_optval *v = ctl_opt(a, name);

	return v && v->set ? v->value : NULL;
}

bool ctl_opt_flag(const struct ctl_args *a, const char *name)
{
	const struct ctl_optval *v = ctl_opt(a, name);

	return v && v->set;
}

int ctl_parse(const struct ctl_cmd *cmd, int argc, char **argv, struct ctl_args *a)
{
	bool only_pos = false;
	int i;

	memset(a, 0, sizeof(*a));
	a->spec = cmd->opts;
	a->nspec = cmd->nopts;
	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq, *name;
		struct ctl_optval *v;
		size_t nlen;
		int k;

		if (strlen(arg) > CTL_ARG_MAX)
			return ctl_usage(cmd, "argument too long (%zu bytes, at most %d)", strlen(arg),
					 CTL_ARG_MAX);
		if (!only_pos && !strcmp(arg, "--")) {
			only_pos = true;
			continue;
		}
		if (only_pos || arg[0] != '-' || arg[1] == '\0') {
			if (a->npos >= cmd->max_pos)
				return ctl_usage(cmd, "unexpected argument '%.64s'", arg);
			a->pos[a->npos++] = arg;
			continue;
		}
		if (arg[1] != '-')
			return ctl_usage(cmd, "unknown option '%.64s'", arg);
		name = arg + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		k = spec_index(a, name, nlen);
		if (k < 0)
			return ctl_usage(cmd, "unknown option '--%.*s'", (int)(nlen > 64 ? 64 : nlen), name);
		v = &a->vals[k];
		switch (cmd->opts[k].kind) {
		case CTL_FLAG:
			if (eq)
				return ctl_usage(cmd, "option --%s takes no value", cmd->opts[k].name);
			v->set = true;
			break;
		case CTL_OPTVALUE:
			if (v->set)
				return ctl_usage(cmd, "option --%s given twice", cmd->opts[k].name);
			v->set = true;
			v->value = eq ? eq + 1 : NULL;
			break;
		case CTL_VALUE:
		case CTL_MULTI: {
			const char *val;

			if (eq) {
				val = eq + 1;
			} else {
				if (i + 1 >= argc)
					return ctl_usage(cmd, "option --%s needs a value", cmd->opts[k].name);
				val = argv[++i];
				if (strlen(val) > CTL_ARG_MAX)
					return ctl_usage(cmd, "argument too long (%zu bytes, at most %d)",
							 strlen(val), CTL_ARG_MAX);
			}
			if (cmd->opts[k].kind == CTL_VALUE) {
				if (v->set)
					return ctl_usage(cmd, "option --%s given twice", cmd->opts[k].name);
				v->value = val;
			} else {
				if (v->count >= CTL_MULTI_MAX)
					return ctl_usage(cmd, "option --%s given too often", cmd->opts[k].name);
				v->multi[v->count++] = val;
			}
			v->set = true;
			break;
		}
		}
	}
	if (a->npos < cmd->min_pos)
		return ctl_usage(cmd, "missing argument");
	return 0;
}

/* ------------------------------------------------------- value parsers */

int ctl_parse_id(const struct ctl_cmd *cmd, const char *what, const char *s, int64_t *out)
{
	const char *p;
	uint64_t v = 0;

	if (!s || !*s)
		return ctl_usage(cmd, "missing %s", what);
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return ctl_usage(cmd, "invalid %s '%.64s': expected a positive integer", what, s);
		if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
			return ctl_usage(cmd, "invalid %s '%.64s': too large", what, s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v == 0)
		return ctl_usage(cmd, "invalid %s '0': ids start at 1", what);
	*out = (int64_t)v;
	return 0;
}

int ctl_parse_size(const struct ctl_cmd *cmd, const char *what, const char *s, uint64_t *out)
{
	int rc;

	if (!s)
		return ctl_usage(cmd, "missing --%s", what);
	rc = size_parse(s, out);
	if (rc == -ERANGE)
		return ctl_usage(cmd, "invalid %s '%.64s': too large", what, s);
	if (rc < 0)
		return ctl_usage(cmd, "invalid %s '%.64s': expected bytes or a number with B, K, M, G, T (e.g. 10G, 512MiB)",
				 what, s);
	return 0;
}

int ctl_parse_wait(const struct ctl_cmd *cmd, const struct ctl_args *a, int *seconds)
{
	const struct ctl_optval *v = ctl_opt(a, "wait");
	const char *p;
	long n = 0;

	*seconds = -1;
	if (!v || !v->set)
		return 0;
	if (!v->value) {
		*seconds = CTL_WAIT_DEFAULT_S;
		return 0;
	}
	if (!*v->value)
		return ctl_usage(cmd, "invalid --wait value: expected seconds");
	for (p = v->value; *p; p++) {
		if (*p < '0' || *p > '9' || n > 1000000)
			return ctl_usage(cmd, "invalid --wait value '%.32s': expected seconds (1-604800)",
					 v->value);
		n = n * 10 + (*p - '0');
	}
	if (n < 1 || n > 604800)
		return ctl_usage(cmd, "invalid --wait value '%.32s': expected seconds (1-604800)", v->value);
	*seconds = (int)n;
	return 0;
}

int ctl_abs_path(const char *what, const char *in, char *out, size_t len)
{
	char cwd[PATH_MAX];
	int n;

	if (!in || !*in)
		return ctl_err(EXIT_USAGE, "%s is empty", what);
	if (in[0] == '/') {
		n = snprintf(out, len, "%s", in);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return ctl_err(EXIT_ERR, "cannot resolve %s: %s", what, strerror(errno));
		while (in[0] == '.' && in[1] == '/')
			in += 2;
		n = snprintf(out, len, "%s/%s", strcmp(cwd, "/") ? cwd : "", in);
	}
	if (n < 0 || (size_t)n >= len)
		return ctl_err(EXIT_ERR, "%s is too long (at most %zu bytes)", what, len - 1);
	return 0;
}

/* -------------------------------------------------------------- output */

static json_t *json_capture;

void ctl_json_capture(json_t *arr)
{
	json_capture = arr;
}

void ctl_json_print(json_t *v)
{
	char *s;

	if (!v) {
		ctl_err(EXIT_ERR, "out of memory");
		return;
	}
	if (json_capture) {
		json_array_append_new(json_capture, v);
		return;
	}
	s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	json_decref(v);
}

const char *ctl_size(uint64_t bytes, char *buf, size_t len)
{
	return size_format(bytes, buf, len);
}

const char *ctl_age(int64_t ms, char *buf, size_t len)
{
	int64_t now = clock_wall_ms(), d;

	if (ms <= 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	d = (now - ms) / 1000;
	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(buf, len, "%" PRId64 "s ago", d);
	else if (d < 7200)
		snprintf(buf, len, "%" PRId64 "m ago", d / 60);
	else if (d < 172800)
		snprintf(buf, len, "%" PRId64 "h ago", d / 3600);
	else
		snprintf(buf, len, "%" PRId64 "d ago", d / 86400);
	return buf;
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *ctl_lvol_json(const struct db_lvol *l)
{
	json_t *o = json_object(), *hosts = json_array();
	size_t i;

	if (!o || !hosts) {
		json_decref(o);
		json_decref(hosts);
		return NULL;
	}
	for (i = 0; i < l->host_count; i++)
		json_array_append_new(hosts, json_string(l->hosts[i]));
	json_object_set_new(o, "id", json_integer(l->id));
	json_object_set_new(o, "name", json_sprintf("%" PRId64, l->id));
	json_object_set_new(o, "node", json_string(l->node));
	json_object_set_new(o, "disk", json_string(l->disk));
	json_object_set_new(o, "state", json_string(db_lvol_state_name(l->state)));
	json_object_set_new(o, "reason", str_or_null(l->reason));
	json_object_set_new(o, "size", json_integer((json_int_t)l->size));
	json_object_set_new(o, "real_size", l->real_size ? json_integer((json_int_t)l->real_size)
							 : json_null());
	json_object_set_new(o, "thin", json_boolean(l->thin));
	json_object_set_new(o, "uuid", str_or_null(l->uuid));
	json_object_set_new(o, "nqn", str_or_null(l->nqn));
	json_object_set_new(o, "hosts", hosts);
	json_object_set_new(o, "clone_of", l->clone_of ? json_integer(l->clone_of) : json_null());
	if (l->zero_to > l->zero_from) {
		json_t *z = json_object();

		json_object_set_new(z, "from", json_integer((json_int_t)l->zero_from));
		json_object_set_new(z, "to", json_integer((json_int_t)l->zero_to));
		json_object_set_new(z, "done", json_integer((json_int_t)l->zero_done));
		json_object_set_new(o, "zeroing", z);
	} else {
		json_object_set_new(o, "zeroing", json_null());
	}
	json_object_set_new(o, "generation", json_integer((json_int_t)l->generation));
	json_object_set_new(o, "created_at", json_integer(l->created_at));
	json_object_set_new(o, "updated_at", json_integer(l->updated_at));
	return o;
}

json_t *ctl_snapshot_json(const struct db_snapshot *s)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "id", json_integer(s->id));
	json_object_set_new(o, "name", json_sprintf("snap-%" PRId64, s->id));
	json_object_set_new(o, "lvol_id", json_integer(s->lvol_id));
	json_object_set_new(o, "node", json_string(s->node));
	json_object_set_new(o, "disk", json_string(s->disk));
	json_object_set_new(o, "state", json_string(db_snapshot_state_name(s->state)));
	json_object_set_new(o, "reason", str_or_null(s->reason));
	json_object_set_new(o, "size", json_integer((json_int_t)s->size));
	json_object_set_new(o, "uuid", str_or_null(s->uuid));
	json_object_set_new(o, "generation", json_integer((json_int_t)s->generation));
	json_object_set_new(o, "created_at", json_integer(s->created_at));
	json_object_set_new(o, "updated_at", json_integer(s->updated_at));
	return o;
}

json_t *ctl_disk_json(const struct db_disk *d)
{
	json_t *o = json_object(), *listen = json_array();
	size_t i;

	if (!o || !listen) {
		json_decref(o);
		json_decref(listen);
		return NULL;
	}
	for (i = 0; i < d->listen_count; i++) {
		const struct db_listen *l = &d->listen[i];

		json_array_append_new(listen, l->ipv6 ? json_sprintf("[%s]:%u", l->traddr, l->port)
						      : json_sprintf("%s:%u", l->traddr, l->port));
	}
	json_object_set_new(o, "id", json_integer(d->id));
	json_object_set_new(o, "name", json_string(d->name));
	json_object_set_new(o, "node", json_string(d->node));
	json_object_set_new(o, d->is_device ? "device" : "file", json_string(d->path));
	json_object_set_new(o, "lvstore", json_string(d->lvstore));
	json_object_set_new(o, "cluster_size", json_integer((json_int_t)d->cluster_size));
	json_object_set_new(o, "listen", listen);
	json_object_set_new(o, "interface", str_or_null(d->interface));
	json_object_set_new(o, "port", d->interface[0] ? json_integer(d->port) : json_null());
	json_object_set_new(o, "transport", json_string(db_transport_name(d->transport)));
	json_object_set_new(o, "lvstore_uuid", str_or_null(d->lvstore_uuid));
	json_object_set_new(o, "lvstore_state", json_string(db_lvstore_state_name(d->lvstore_state)));
	json_object_set_new(o, "capacity", d->observed_at ? json_integer((json_int_t)d->capacity)
							  : json_null());
	json_object_set_new(o, "free", d->observed_at ? json_integer((json_int_t)d->free) : json_null());
	json_object_set_new(o, "observed_at", json_integer(d->observed_at));
	return o;
}

json_t *ctl_node_json(const struct db_node *n, int64_t now_ms)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "id", json_integer(n->id));
	json_object_set_new(o, "name", json_string(n->name));
	json_object_set_new(o, "rpc_socket", json_string(n->rpc_socket));
	json_object_set_new(o, "nqn_prefix", json_string(n->nqn_prefix));
	json_object_set_new(o, "last_seen", json_integer(n->last_seen));
	json_object_set_new(o, "live", json_boolean(n->last_seen > 0 &&
						    now_ms - n->last_seen <= DB_NODE_LIVE_MS));
	return o;
}

json_t *ctl_event_json(const struct db_event *e)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "id", json_integer(e->id));
	json_object_set_new(o, "node", str_or_null(e->node));
	json_object_set_new(o, "kind", json_string(e->kind));
	json_object_set_new(o, "object", json_string(e->object));
	json_object_set_new(o, "detail", json_string(e->detail));
	json_object_set_new(o, "count", json_integer((json_int_t)e->count));
	json_object_set_new(o, "first_seen", json_integer(e->first_seen));
	json_object_set_new(o, "last_seen", json_integer(e->last_seen));
	json_object_set_new(o, "resolved_at", e->resolved_at ? json_integer(e->resolved_at)
							     : json_null());
	return o;
}
