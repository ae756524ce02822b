/*
 * db.c: the backend-independent half of the state store: db_open() picks a
 * backend, every public call validates its arguments here (names, sizes,
 * NQNs, paths) and then dispatches through the backend's vtable. Enum names,
 * validators and small helpers shared by backends live here too.
 */
#include "db/db_backend.h"

#include "common/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------- helpers */

int db_fail(struct db *db, int err, const char *fmt, ...)
{
	char buf[sizeof(db->errmsg)];
	va_list ap;

	if (db) {
		/* via a copy: callers may pass db->errmsg itself as an argument */
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		memcpy(db->errmsg, buf, sizeof(buf));
	}
	return err;
}

void db_err_clear(struct db *db)
{
	if (db)
		db->errmsg[0] = '\0';
}

const char *db_errmsg(const struct db *db)
{
	return db ? db->errmsg : "no database handle";
}

void db_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n;

	if (!size)
		return;
	if (!src)
		src = "";
	n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void db_free_words(char **w, size_t count)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < count; i++)
		mem_free(w[i]);
	mem_free(w);
}

int db_split_words(const char *s, char ***out, size_t *count)
{
	char **w = NULL;
	size_t n = 0, cap = 0;
	const char *p = s ? s : "";

	*out = NULL;
	*count = 0;
	while (*p) {
		const char *e;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		e = p;
		while (*e && *e != ' ')
			e++;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			char **nw = mem_realloc(w, ncap * sizeof(*w));

			if (!nw)
				goto nomem;
			w = nw;
			cap = ncap;
		}
		w[n] = mem_strndup(p, (size_t)(e - p));
		if (!w[n])
			goto nomem;
		n++;
		p = e;
	}
	*out = w;
	*count = n;
	return 0;
nomem:
	db_free_words(w, n);
	return -ENOMEM;
}

/* ------------------------------------------------- rules both backends keep */

void db_listen_format(const struct db_disk *d, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < d->listen_count && off < len; i++) {
		const struct db_listen *l = &d->listen[i];
		int n = l->ipv6 ? snprintf(buf + off, len - off, "%s[%s]:%u", i ? " " : "", l->traddr,
					   l->port)
				: snprintf(buf + off, len - off, "%s%s:%u", i ? " " : "", l->traddr,
					   l->port);

		if (n < 0)
			break;
		off += (size_t)n;
	}
}

void db_listen_parse_all(const char *s, struct db_disk *d)
{
	char buf[DB_LISTEN_MAX * 64];
	char *save = NULL, *tok;

	d->listen_count = 0;
	db_strlcpy(buf, s ? s : "", sizeof(buf));
	for (tok = strtok_r(buf, " ", &save); tok && d->listen_count < DB_LISTEN_MAX;
	     tok = strtok_r(NULL, " ", &save)) {
		if (db_listen_parse(tok, &d->listen[d->listen_count]) == 0)
			d->listen_count++;
	}
}

int db_join_hosts(struct db *db, const char *const *hosts, size_t n, char **out)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(hosts[i]) + 1;
	s = mem_zalloc(len);
	if (!s)
		return db_fail(db, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, hosts[i]);
	}
	*out = s;
	return 0;
}

uint64_t db_round_cluster(uint64_t size, uint64_t cluster)
{
	if (!cluster)
		return size;
	return COMMON_DIV_ROUND_UP(size, cluster) * cluster;
}

uint64_t db_pending_bytes(const struct db_disk *d, uint64_t size, uint64_t real_size,
			  bool resizing, bool written_after_observation)
{
	uint64_t want = db_round_cluster(size, d->cluster_size);
	uint64_t have = real_size;

	if (!resizing && written_after_observation)
		have = 0; /* written after the observation: not in d->free yet */
	return want > have ? want - have : 0;
}

int db_space_check(struct db *db, const struct db_disk *d, uint64_t need,
		   int (*available)(struct db *db, const struct db_disk *d, uint64_t *avail,
				    uint64_t *pending))
{
	uint64_t avail = 0, pending = 0;
	char a[32], b[32], c[32];
	int rc;

	if (!d->observed_at || d->lvstore_state != DB_LVSTORE_LOADED)
		return 0; /* free space unknown: the agent judges placement */
	if ((rc = available(db, d, &avail, &pending)) < 0)
		return rc;
	need = db_round_cluster(need, d->cluster_size);
	if (need > avail) {
		if (pending)
			return db_fail(db, -ENOSPC,
				       "disk '%s' has %s free (%s of it promised to pending creates), %s needed",
				       d->name, size_format(d->free, a, sizeof(a)),
				       size_format(pending, b, sizeof(b)), size_format(need, c, sizeof(c)));
		return db_fail(db, -ENOSPC, "disk '%s' has %s free, %s needed", d->name,
			       size_format(d->free, a, sizeof(a)), size_format(need, c, sizeof(c)));
	}
	return 0;
}

int db_resize_check(struct db *db, const struct db_lvol *l, uint64_t new_size, bool allow_shrink)
{
	char a[32], b[32];

	if (l->state == DB_LVOL_DELETED || l->state == DB_LVOL_DELETING)
		return db_fail(db, -ENOENT, "lvol %lld is %s", (long long)l->id,
			       db_lvol_state_name(l->state));
	if (l->state != DB_LVOL_READY)
		return db_fail(db, -EBUSY, "lvol %lld is %s; it can be resized once READY",
			       (long long)l->id, db_lvol_state_name(l->state));
	if (new_size == l->size)
		return 1; /* nothing to do */
	if (new_size < l->size && !allow_shrink)
		return db_fail(db, -EINVAL,
			       "shrinking lvol %lld from %s to %s destroys data; pass --allow-shrink",
			       (long long)l->id, size_format(l->size, a, sizeof(a)),
			       size_format(new_size, b, sizeof(b)));
	return 0;
}

uint64_t db_resize_growth(const struct db_lvol *l, const struct db_disk *d, uint64_t new_size)
{
	uint64_t have = l->real_size ? l->real_size : db_round_cluster(l->size, d->cluster_size);
	uint64_t want = db_round_cluster(new_size, d->cluster_size);

	return want > have ? want - have : 0;
}

int db_delete_check(struct db *db, const struct db_lvol *l)
{
	if (l->state == DB_LVOL_DELETED)
		return db_fail(db, -ENOENT, "lvol %lld is already deleted", (long long)l->id);
	return l->state == DB_LVOL_DELETING ? 1 : 0;
}

int db_place_none(struct db *db, const char *node, size_t candidates, uint64_t size)
{
	char a[32];

	if (!candidates)
		return db_fail(db, -ENOENT,
			       "no disk to place the lvol on: no live node%s%s with a loaded lvstore",
			       node ? " " : "", node ? node : "");
	return db_fail(db, -ENOSPC, "no disk on a live node has %s free",
		       size_format(size, a, sizeof(a)));
}

/* --------------------------------------------------------------- enums */

static const char *const lvol_state_names[] = {
	"CREATING", "READY", "RESIZING", "DELETING", "DELETED", "FAILED",
};
static const char *const snapshot_state_names[] = {
	"CREATING", "READY", "DELETING", "DELETED", "FAILED",
};

const char *db_lvol_state_name(enum db_lvol_state s)
{
	if ((int)s < 0 || (size_t)s >= COMMON_ARRAY_SIZE(lvol_state_names))
		return "ANY";
	return lvol_state_names[s];
}

const char *db_snapshot_state_name(enum db_snapshot_state s)
{
	if ((int)s < 0 || (size_t)s >= COMMON_ARRAY_SIZE(snapshot_state_names))
		return "ANY";
	return snapshot_state_names[s];
}

const char *db_lvstore_state_name(enum db_lvstore_state s)
{
	return s == DB_LVSTORE_LOADED ? "loaded" : "absent";
}

const char *db_transport_name(enum db_transport t)
{
	return t == DB_TRANSPORT_RDMA ? "RDMA" : "TCP";
}

int db_lvol_state_parse(const char *s, enum db_lvol_state *out)
{
	size_t i;

	for (i = 0; s && i < COMMON_ARRAY_SIZE(lvol_state_names); i++) {
		if (!strcasecmp(s, lvol_state_names[i])) {
			*out = (enum db_lvol_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

int db_snapshot_state_parse(const char *s, enum db_snapshot_state *out)
{
	size_t i;

	for (i = 0; s && i < COMMON_ARRAY_SIZE(snapshot_state_names); i++) {
		if (!strcasecmp(s, snapshot_state_names[i])) {
			*out = (enum db_snapshot_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

int db_transport_parse(const char *s, enum db_transport *out)
{
	if (s && !strcasecmp(s, "TCP")) {
		*out = DB_TRANSPORT_TCP;
		return 0;
	}
	if (s && !strcasecmp(s, "RDMA")) {
		*out = DB_TRANSPORT_RDMA;
		return 0;
	}
	return -EINVAL;
}

/* ---------------------------------------------------------- validators */

bool db_name_valid(const char *name)
{
	size_t i, n;

	if (!name)
		return false;
	n = strlen(name);
	if (n == 0 || n >= DB_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool printable_ascii(const char *s, bool allow_space)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || (!allow_space && c == ' '))
			return false;
	}
	return true;
}

bool db_nqn_valid(const char *nqn)
{
	size_t n;

	if (!nqn)
		return false;
	n = strlen(nqn);
	if (n < 5 || n >= DB_NQN_MAX || strncmp(nqn, "nqn.", 4) != 0)
		return false;
	return printable_ascii(nqn, false);
}

/* Valid UTF-8 without control characters: what a path may hold here. */
static bool path_text_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned char c = *p;
		int extra;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			extra = 1;
		else if ((c & 0xf0) == 0xe0)
			extra = 2;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			extra = 3;
		else
			return false;
		p++;
		while (extra--) {
			if ((*p & 0xc0) != 0x80)
				return false;
			p++;
		}
	}
	return true;
}

/*
 * Free text written by agents (reasons, event details) may quote what a
 * target said. It is never refused: control characters and invalid UTF-8
 * become '?', and it is cut at a character boundary to fit `len`.
 */
static const char *text_clean(const char *in, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	if (!in)
		return NULL;
	while (*p && o + 1 < len) {
		unsigned char c = *p;
		size_t extra = 0, k;

		if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			extra = 1;
		else if ((c & 0xf0) == 0xe0)
			extra = 2;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			extra = 3;
		for (k = 1; extra && k <= extra; k++)
			if ((p[k] & 0xc0) != 0x80)
				extra = 0;
		if (!extra) {
			out[o++] = '?';
			p++;
			continue;
		}
		if (o + extra + 1 >= len)
			break;
		memcpy(out + o, p, extra + 1);
		o += extra + 1;
		p += extra + 1;
	}
	out[o] = '\0';
	return out;
}

static int check_path(struct db *db, const char *what, const char *path, size_t max)
{
	if (!path || !*path)
		return db_fail(db, -EINVAL, "%s is empty", what);
	if (strlen(path) >= max)
		return db_fail(db, -EINVAL, "%s is too long (%zu bytes, at most %zu)", what,
			       strlen(path), max - 1);
	if (path[0] != '/')
		return db_fail(db, -EINVAL, "%s '%s' is not an absolute path", what, path);
	if (!path_text_valid(path))
		return db_fail(db, -EINVAL, "%s contains control characters or invalid UTF-8", what);
	return 0;
}

static int check_name(struct db *db, const char *what, const char *name)
{
	if (!name || !*name)
		return db_fail(db, -EINVAL, "%s name is empty", what);
	if (!db_name_valid(name))
		return db_fail(db, -EINVAL,
			       "invalid %s name (1-%d chars of A-Z a-z 0-9 . _ -, starting with a letter or digit)",
			       what, DB_NAME_MAX - 1);
	return 0;
}

int db_listen_parse(const char *s, struct db_listen *out)
{
	char host[DB_TRADDR_MAX + 2];
	const char *colon, *port_s;
	unsigned char buf[16];
	size_t hlen;
	char *end;
	long port;

	if (!s || !*s)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hlen = (size_t)(rb - s - 1);
		if (hlen == 0 || hlen >= DB_TRADDR_MAX)
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		port_s = rb + 2;
		if (inet_pton(AF_INET6, host, buf) != 1)
			return -EINVAL;
		out->ipv6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= DB_TRADDR_MAX)
			return -EINVAL;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
		if (inet_pton(AF_INET, host, buf) != 1)
			return -EINVAL;
	}
	if (!isdigit((unsigned char)port_s[0]))
		return -EINVAL;
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return -EINVAL;
	db_strlcpy(out->traddr, host, sizeof(out->traddr));
	out->port = (uint16_t)port;
	return 0;
}

/* ---------------------------------------------------------------- open */

static bool is_pg_url(const char *s)
{
	return !strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11);
}

static __thread char open_err[512];

const char *db_open_errmsg(void)
{
	return open_err;
}

static int open_common(const char *url_or_path, bool create, struct db **out)
{
	int rc;

	*out = NULL;
	open_err[0] = '\0';
	if (!url_or_path || !*url_or_path) {
		snprintf(open_err, sizeof(open_err), "no database path given");
		return -EINVAL;
	}
	if (is_pg_url(url_or_path)) {
#ifdef DE_HAVE_LIBPQ
		rc = db_pg_open(url_or_path, create, out, open_err, sizeof(open_err));
		if (rc < 0)
			LOG_DEBUG("db", "open failed backend=postgresql err=\"%s\"", open_err);
		return rc;
#else
		snprintf(open_err, sizeof(open_err),
			 "cannot open %.64s...: built without PostgreSQL support (libpq)", url_or_path);
		return -ENOTSUP;
#endif
	}
	rc = db_sqlite_open(url_or_path, create, out, open_err, sizeof(open_err));
	if (rc < 0 && !open_err[0])
		snprintf(open_err, sizeof(open_err), "cannot open database %s: %s", url_or_path,
			 common_strerror(rc));
	if (rc < 0)
		LOG_DEBUG("db", "open failed path=%s err=\"%s\"", url_or_path, open_err);
	return rc;
}

int db_open(const char *url_or_path, struct db **out)
{
	return open_common(url_or_path, true, out);
}

int db_open_existing(const char *url_or_path, struct db **out)
{
	return open_common(url_or_path, false, out);
}

void db_close(struct db *db)
{
	if (!db)
		return;
	db->ops->close(db);
}

int db_schema_version(struct db *db, int *out)
{
	db_err_clear(db);
	return db->ops->schema_version(db, out);
}

void db_busy_timeout_set(struct db *db, int ms)
{
	db->ops->busy_timeout_set(db, ms);
}

int db_change_counter(struct db *db, uint64_t *out)
{
	return db->ops->change_counter(db, out);
}

int db_data_version(struct db *db, uint64_t *out)
{
	return db->ops->data_version(db, out);
}

/*
 * The wait of backends without a blocking one: reads the version with get()
 * every fast_ms for the first 100 ms of the call, then every slow_ms, until it differs
 * from since (1), timeout_ms passed or wake_fd is readable (0). An error
 * sleeps out the timeout first (callers' loops never spin).
 */
static int poll_wait(struct db *db, int (*get)(struct db *db, uint64_t *out), uint64_t since,
		     int timeout_ms, int wake_fd, int fast_ms, int slow_ms, uint64_t *now)
{
	uint64_t start = clock_mono_ms();

	for (;;) {
		uint64_t v = 0, el;
		struct pollfd pf = { .fd = wake_fd, .events = POLLIN };
		int rc = get(db, &v), left, step;

		el = clock_mono_ms() - start;
		left = el >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)el;
		if (rc < 0) {
			if (left > 0)
				poll(&pf, wake_fd >= 0 ? 1 : 0, left);
			return rc;
		}
		if (now)
			*now = v;
		if (v != since)
			return 1;
		if (left <= 0)
			return 0;
		step = el < 100 ? fast_ms : slow_ms;
		if (poll(&pf, wake_fd >= 0 ? 1 : 0, left < step ? left : step) > 0)
			return 0;
	}
}

int db_change_wait(struct db *db, uint64_t since, int timeout_ms, int wake_fd, uint64_t *now)
{
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (db->ops->change_wait)
		return db->ops->change_wait(db, since, timeout_ms, wake_fd, now);
	return poll_wait(db, db->ops->change_counter, since, timeout_ms, wake_fd, 5, 5, now);
}

int db_data_wait(struct db *db, uint64_t since, int timeout_ms, uint64_t *now)
{
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (db->ops->data_wait)
		return db->ops->data_wait(db, since, timeout_ms, now);
	return poll_wait(db, db->ops->data_version, since, timeout_ms, -1, 1, 5, now);
}

void db_change_filter(struct db *db, const char *node, unsigned kinds)
{
	if (db->ops->change_filter)
		db->ops->change_filter(db, node, kinds);
}

int db_changes_since(struct db *db, uint64_t since, uint64_t *now)
{
	uint64_t v = 0;
	int rc = db->ops->change_counter(db, &v);

	if (rc < 0)
		return rc;
	if (now)
		*now = v;
	return v != since ? 1 : 0;
}

/* --------------------------------------------------------------- nodes */

int db_node_add(struct db *db, const char *name, const char *rpc_socket, const char *nqn_prefix,
		int64_t *id_out)
{
	int rc;

	db_err_clear(db);
	if ((rc = check_name(db, "node", name)) < 0)
		return rc;
	if ((rc = check_path(db, "rpc socket path", rpc_socket, 108)) < 0)
		return rc;
	if (nqn_prefix) {
		/* room for ":lvol-<id>" and ":agent:<node>" */
		if (!db_nqn_valid(nqn_prefix) || strlen(nqn_prefix) > DB_NQN_MAX - 1 - 72)
			return db_fail(db, -EINVAL,
				       "invalid NQN prefix (must start with \"nqn.\", printable ASCII without spaces, at most %d bytes)",
				       DB_NQN_MAX - 1 - 72);
	}
	return db->ops->node_add(db, name, rpc_socket, nqn_prefix ? nqn_prefix : DB_NQN_PREFIX_DEFAULT,
				 id_out);
}

int db_node_get(struct db *db, const char *name, struct db_node *out)
{
	db_err_clear(db);
	if (!name)
		return db_fail(db, -EINVAL, "node name missing");
	return db->ops->node_get(db, name, 0, out);
}

int db_node_get_by_id(struct db *db, int64_t id, struct db_node *out)
{
	db_err_clear(db);
	return db->ops->node_get(db, NULL, id, out);
}

int db_node_list(struct db *db, struct db_node **out, size_t *count)
{
	db_err_clear(db);
	return db->ops->node_list(db, out, count);
}

void db_node_list_free(struct db_node *nodes, size_t count)
{
	(void)count;
	mem_free(nodes);
}

int db_node_heartbeat(struct db *db, int64_t node_id)
{
	db_err_clear(db);
	return db->ops->node_heartbeat(db, node_id);
}

/* --------------------------------------------------------------- disks */

int db_disk_add(struct db *db, const struct db_disk *spec, int64_t *id_out)
{
	size_t i;
	int rc;

	db_err_clear(db);
	if ((rc = check_name(db, "disk", spec->name)) < 0)
		return rc;
	if ((rc = check_name(db, "node", spec->node)) < 0)
		return rc;
	if ((rc = check_path(db, spec->is_device ? "device path" : "file path", spec->path,
			     DB_PATH_MAX)) < 0)
		return rc;
	if (spec->lvstore[0] && (rc = check_name(db, "lvstore", spec->lvstore)) < 0)
		return rc;
	if (spec->cluster_size) {
		if (spec->cluster_size < 4096 || (spec->cluster_size & (spec->cluster_size - 1)) ||
		    spec->cluster_size > (1ull << 30))
			return db_fail(db, -EINVAL,
				       "cluster size must be a power of two between 4KiB and 1GiB");
	}
	if (spec->listen_count > DB_LISTEN_MAX)
		return db_fail(db, -EINVAL, "too many listen addresses (at most %d)", DB_LISTEN_MAX);
	if (spec->listen_count && spec->interface[0])
		return db_fail(db, -EINVAL, "give either listen addresses or an interface, not both");
	if (!spec->listen_count && !spec->interface[0])
		return db_fail(db, -EINVAL, "a disk needs listen addresses or an interface");
	for (i = 0; i < spec->listen_count; i++) {
		const struct db_listen *l = &spec->listen[i];
		unsigned char buf[16];

		if (!l->port || inet_pton(l->ipv6 ? AF_INET6 : AF_INET, l->traddr, buf) != 1)
			return db_fail(db, -EINVAL, "invalid listen address '%s'", l->traddr);
	}
	if (spec->interface[0]) {
		size_t n = strnlen(spec->interface, DB_IFNAME_MAX);

		if (n >= DB_IFNAME_MAX || !printable_ascii(spec->interface, false) ||
		    strchr(spec->interface, '/') || strchr(spec->interface, ':'))
			return db_fail(db, -EINVAL, "invalid interface name");
		if (!spec->port)
			return db_fail(db, -EINVAL, "invalid port 0");
	}
	if (spec->transport != DB_TRANSPORT_TCP && spec->transport != DB_TRANSPORT_RDMA)
		return db_fail(db, -EINVAL, "invalid transport");
	return db->ops->disk_add(db, spec, id_out);
}

int db_disk_get(struct db *db, const char *name, struct db_disk *out)
{
	db_err_clear(db);
	if (!name)
		return db_fail(db, -EINVAL, "disk name missing");
	return db->ops->disk_get(db, name, 0, out);
}

int db_disk_get_by_id(struct db *db, int64_t id, struct db_disk *out)
{
	db_err_clear(db);
	return db->ops->disk_get(db, NULL, id, out);
}

int db_disk_list(struct db *db, const char *node, struct db_disk **out, size_t *count)
{
	db_err_clear(db);
	return db->ops->disk_list(db, node, out, count);
}

void db_disk_list_free(struct db_disk *disks, size_t count)
{
	(void)count;
	mem_free(disks);
}

int db_disk_set_lvstore(struct db *db, int64_t disk_id, const char *lvstore_uuid,
			uint64_t cluster_size)
{
	db_err_clear(db);
	if (!lvstore_uuid || common_uuid_parse(lvstore_uuid, NULL) != 0)
		return db_fail(db, -EINVAL, "invalid lvstore uuid");
	return db->ops->disk_set_lvstore(db, disk_id, lvstore_uuid, cluster_size);
}

int db_disk_observe(struct db *db, int64_t disk_id, enum db_lvstore_state state,
		    uint64_t capacity, uint64_t free_bytes)
{
	db_err_clear(db);
	if (state != DB_LVSTORE_ABSENT && state != DB_LVSTORE_LOADED)
		return db_fail(db, -EINVAL, "invalid lvstore state");
	if (capacity > INT64_MAX || free_bytes > INT64_MAX)
		return db_fail(db, -EINVAL, "size out of range");
	return db->ops->disk_observe(db, disk_id, state, capacity, free_bytes);
}

/* --------------------------------------------------------------- lvols */

static int check_size(struct db *db, uint64_t size)
{
	char b[32];

	if (size == 0)
		return db_fail(db, -EINVAL, "size must be greater than zero");
	if (size > DB_LVOL_SIZE_MAX)
		return db_fail(db, -EINVAL, "size %s is larger than the maximum %s",
			       size_format(size, b, sizeof(b)), "1 PiB");
	return 0;
}

int db_lvol_create(struct db *db, const struct db_lvol_spec *spec, int64_t *id_out)
{
	size_t i, j;
	int rc;

	db_err_clear(db);
	if (spec->clone_of < 0)
		return db_fail(db, -EINVAL, "invalid snapshot id");
	if (!spec->clone_of) {
		if (spec->disk && (rc = check_name(db, "disk", spec->disk)) < 0)
			return rc;
		if ((rc = check_size(db, spec->size)) < 0)
			return rc;
	}
	if (spec->node && (rc = check_name(db, "node", spec->node)) < 0)
		return rc;
	if (spec->host_count > DB_HOSTS_MAX)
		return db_fail(db, -EINVAL, "too many hosts (at most %d)", DB_HOSTS_MAX);
	for (i = 0; i < spec->host_count; i++) {
		if (!db_nqn_valid(spec->hosts[i]))
			return db_fail(db, -EINVAL,
				       "invalid host NQN (must start with \"nqn.\", printable ASCII without spaces, at most %d bytes)",
				       DB_NQN_MAX - 1);
		for (j = 0; j < i; j++)
			if (!strcmp(spec->hosts[i], spec->hosts[j]))
				return db_fail(db, -EINVAL, "host NQN %s given twice", spec->hosts[i]);
	}
	return db->ops->lvol_create(db, spec, id_out);
}

int db_lvol_resize(struct db *db, int64_t id, uint64_t new_size, bool allow_shrink)
{
	int rc;

	db_err_clear(db);
	if ((rc = check_size(db, new_size)) < 0)
		return rc;
	return db->ops->lvol_resize(db, id, new_size, allow_shrink);
}

int db_lvol_delete(struct db *db, int64_t id)
{
	db_err_clear(db);
	return db->ops->lvol_delete(db, id);
}

void db_lvol_clear(struct db_lvol *lvol)
{
	if (!lvol)
		return;
	db_free_words(lvol->hosts, lvol->host_count);
	lvol->hosts = NULL;
	lvol->host_count = 0;
}

int db_lvol_get(struct db *db, int64_t id, struct db_lvol *out)
{
	struct db_lvol_filter f = { .state = DB_LVOL_ANY, .include_deleted = true };
	struct db_lvol *arr = NULL;
	size_t n = 0;
	int rc;

	db_err_clear(db);
	memset(out, 0, sizeof(*out));
	rc = db->ops->lvol_list(db, &f, id, &arr, &n);
	if (rc < 0)
		return rc;
	if (n == 0) {
		mem_free(arr);
		return db_fail(db, -ENOENT, "no lvol with id %lld", (long long)id);
	}
	*out = arr[0]; /* takes over the hosts array */
	mem_free(arr);
	return 0;
}

int db_lvol_list(struct db *db, const struct db_lvol_filter *f, struct db_lvol **out,
		 size_t *count)
{
	struct db_lvol_filter all = { .state = DB_LVOL_ANY };

	db_err_clear(db);
	return db->ops->lvol_list(db, f ? f : &all, 0, out, count);
}

int db_lvol_list_by_state(struct db *db, const char *node, enum db_lvol_state state,
			  struct db_lvol **out, size_t *count)
{
	struct db_lvol_filter f = { .node = node, .state = state };

	db_err_clear(db);
	return db->ops->lvol_list(db, &f, 0, out, count);
}

void db_lvol_list_free(struct db_lvol *lvols, size_t count)
{
	size_t i;

	if (!lvols)
		return;
	for (i = 0; i < count; i++)
		db_lvol_clear(&lvols[i]);
	mem_free(lvols);
}

static int check_uuid(struct db *db, const char *uuid)
{
	if (!uuid || common_uuid_parse(uuid, NULL) != 0)
		return db_fail(db, -EINVAL, "invalid uuid");
	return 0;
}

int db_lvol_set_uuid(struct db *db, int64_t id, const char *uuid, uint64_t real_size)
{
	int rc;

	db_err_clear(db);
	if ((rc = check_uuid(db, uuid)) < 0)
		return rc;
	if (real_size > INT64_MAX)
		return db_fail(db, -EINVAL, "size out of range");
	return db->ops->lvol_set_uuid(db, id, uuid, real_size);
}

int db_lvol_set_real_size(struct db *db, int64_t id, uint64_t real_size)
{
	db_err_clear(db);
	if (real_size > INT64_MAX)
		return db_fail(db, -EINVAL, "size out of range");
	return db->ops->lvol_set_real_size(db, id, real_size);
}

int db_lvol_set_nqn(struct db *db, int64_t id, const char *nqn)
{
	db_err_clear(db);
	if (!db_nqn_valid(nqn))
		return db_fail(db, -EINVAL, "invalid NQN");
	return db->ops->lvol_set_nqn(db, id, nqn);
}

int db_lvol_set_state(struct db *db, int64_t id, uint64_t expect_gen, enum db_lvol_state state,
		      const char *reason)
{
	char clean[DB_REASON_MAX];

	db_err_clear(db);
	if ((int)state < DB_LVOL_CREATING || state > DB_LVOL_FAILED)
		return db_fail(db, -EINVAL, "invalid lvol state");
	return db->ops->lvol_set_state(db, id, expect_gen, state,
				       text_clean(reason, clean, sizeof(clean)));
}

int db_lvol_set_reason(struct db *db, int64_t id, const char *reason)
{
	char clean[DB_REASON_MAX];

	db_err_clear(db);
	return db->ops->lvol_set_reason(db, id, text_clean(reason, clean, sizeof(clean)));
}

int db_lvol_zero_begin(struct db *db, int64_t id, uint64_t expect_gen, uint64_t from, uint64_t to)
{
	db_err_clear(db);
	if (from > to || to > INT64_MAX)
		return db_fail(db, -EINVAL, "invalid zero range");
	return db->ops->lvol_zero_begin(db, id, expect_gen, from, to);
}

int db_lvol_zero_progress(struct db *db, int64_t id, uint64_t done)
{
	db_err_clear(db);
	if (done > INT64_MAX)
		return db_fail(db, -EINVAL, "invalid zero progress");
	return db->ops->lvol_zero_progress(db, id, done);
}

int db_lvol_resize_done(struct db *db, int64_t id, uint64_t expect_gen, uint64_t real_size)
{
	db_err_clear(db);
	if (real_size > INT64_MAX)
		return db_fail(db, -EINVAL, "size out of range");
	return db->ops->lvol_resize_done(db, id, expect_gen, real_size);
}

/* ----------------------------------------------------------- snapshots */

int db_snapshot_create(struct db *db, int64_t lvol_id, int64_t *id_out)
{
	db_err_clear(db);
	return db->ops->snapshot_create(db, lvol_id, id_out);
}

int db_snapshot_delete(struct db *db, int64_t id)
{
	db_err_clear(db);
	return db->ops->snapshot_delete(db, id);
}

int db_snapshot_get(struct db *db, int64_t id, struct db_snapshot *out)
{
	struct db_snapshot_filter f = { .state = DB_SNAPSHOT_ANY, .include_deleted = true };
	struct db_snapshot *arr = NULL;
	size_t n = 0;
	int rc;

	db_err_clear(db);
	memset(out, 0, sizeof(*out));
	rc = db->ops->snapshot_list(db, &f, id, &arr, &n);
	if (rc < 0)
		return rc;
	if (n == 0) {
		mem_free(arr);
		return db_fail(db, -ENOENT, "no snapshot with id %lld", (long long)id);
	}
	*out = arr[0];
	mem_free(arr);
	return 0;
}

int db_snapshot_list(struct db *db, const struct db_snapshot_filter *f,
		     struct db_snapshot **out, size_t *count)
{
	struct db_snapshot_filter all = { .state = DB_SNAPSHOT_ANY };

	db_err_clear(db);
	return db->ops->snapshot_list(db, f ? f : &all, 0, out, count);
}

int db_snapshot_list_by_state(struct db *db, const char *node, enum db_snapshot_state state,
			      struct db_snapshot **out, size_t *count)
{
	struct db_snapshot_filter f = { .node = node, .state = state };

	db_err_clear(db);
	return db->ops->snapshot_list(db, &f, 0, out, count);
}

void db_snapshot_list_free(struct db_snapshot *snaps, size_t count)
{
	(void)count;
	mem_free(snaps);
}

int db_snapshot_set_uuid(struct db *db, int64_t id, const char *uuid)
{
	int rc;

	db_err_clear(db);
	if ((rc = check_uuid(db, uuid)) < 0)
		return rc;
	return db->ops->snapshot_set_uuid(db, id, uuid);
}

int db_snapshot_set_state(struct db *db, int64_t id, uint64_t expect_gen,
			  enum db_snapshot_state state, const char *reason)
{
	char clean[DB_REASON_MAX];

	db_err_clear(db);
	if ((int)state < DB_SNAPSHOT_CREATING || state > DB_SNAPSHOT_FAILED)
		return db_fail(db, -EINVAL, "invalid snapshot state");
	return db->ops->snapshot_set_state(db, id, expect_gen, state,
					   text_clean(reason, clean, sizeof(clean)));
}

int db_snapshot_set_reason(struct db *db, int64_t id, const char *reason)
{
	char clean[DB_REASON_MAX];

	db_err_clear(db);
	return db->ops->snapshot_set_reason(db, id, text_clean(reason, clean, sizeof(clean)));
}

/* -------------------------------------------------------------- events */

int db_event_raise(struct db *db, const char *node, const char *kind, const char *object,
		   const char *detail)
{
	char clean[DB_REASON_MAX];

	db_err_clear(db);
	if (!kind || !*kind || strlen(kind) >= DB_KIND_MAX || !printable_ascii(kind, false))
		return db_fail(db, -EINVAL, "invalid event kind");
	if (!object || !*object || strlen(object) >= DB_OBJECT_MAX || !path_text_valid(object))
		return db_fail(db, -EINVAL, "invalid event object");
	text_clean(detail ? detail : "", clean, sizeof(clean));
	if (node && *node && !db_name_valid(node))
		return db_fail(db, -EINVAL, "invalid node name");
	return db->ops->event_raise(db, node ? node : "", kind, object, clean);
}

int db_event_resolve(struct db *db, const char *kind, const char *object)
{
	db_err_clear(db);
	if (!kind || !object)
		return db_fail(db, -EINVAL, "event kind and object required");
	return db->ops->event_resolve(db, kind, object);
}

int db_event_prune(struct db *db, const char *node, int64_t resolved_before, int *pruned)
{
	int n = 0, rc;

	db_err_clear(db);
	if (pruned)
		*pruned = 0;
	if (node && !db_name_valid(node))
		return db_fail(db, -EINVAL, "invalid node name");
	rc = db->ops->event_prune(db, node, resolved_before, &n);
	if (pruned)
		*pruned = rc < 0 ? 0 : n;
	return rc;
}

int db_event_list(struct db *db, bool include_resolved, struct db_event **out, size_t *count)
{
	db_err_clear(db);
	return db->ops->event_list(db, include_resolved, out, count);
}

void db_event_list_free(struct db_event *events, size_t count)
{
	(void)count;
	mem_free(events);
}
