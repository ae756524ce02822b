/*
 * metrics.c: the agent's Prometheus metrics (see metrics.h): counters kept
 * under one mutex in small label tables, rendered as the text exposition
 * format, served by libmicrohttpd's own thread when the build has it.
 */
#include "agent/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/common.h"

#ifdef DE_HAVE_MHD
#include <microhttpd.h>
#endif

#define LABELS_MAX 64
#define LABEL_LEN 64

/* Histogram bucket upper bounds in microseconds (Prometheus "le", seconds). */
static const uint64_t bucket_us[] = { 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
				      250000, 500000, 1000000, 2500000, 5000000, 10000000 };
#define N_BUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct series {
	char label[LABEL_LEN];
	uint64_t count;      /* calls, ticks, events */
	uint64_t errors;     /* rpc: error replies and transport failures */
	uint64_t us_sum;
	uint64_t us_max;
	uint64_t buckets[N_BUCKETS]; /* non-cumulative; rendered cumulative */
};

struct table {
	struct series v[LABELS_MAX];
	size_t n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool enabled;
static struct table ticks, rpcs, events, lag, dbt, verify_wall, verify_cpu;
static uint64_t lvol_states[6];
static bool have_states;

#ifdef DE_HAVE_MHD
static struct MHD_Daemon *daemon_h;
#endif

static const char *const state_names[6] = { "CREATING", "READY", "RESIZING", "DELETING",
					    "DELETED", "FAILED" };

/* The series for label (created on first use; the last slot absorbs overflow). */
static struct series *series_get(struct table *t, const char *label)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].label, label) == 0)
			return &t->v[i];
	if (t->n == LABELS_MAX)
		return &t->v[LABELS_MAX - 1];
	snprintf(t->v[t->n].label, LABEL_LEN, "%s", label);
	return &t->v[t->n++];
}

static void record(struct table *t, const char *label, bool ok, uint64_t us)
{
	struct series *s;

	if (!atomic_load(&enabled))
		return;
	pthread_mutex_lock(&lock);
	s = series_get(t, label ? label : "-");
	s->count++;
	if (!ok)
		s->errors++;
	s->us_sum += us;
	if (us > s->us_max)
		s->us_max = us;
	for (size_t i = 0; i < N_BUCKETS; i++) {
		if (us <= bucket_us[i]) {
			s->buckets[i]++;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

void metrics_tick(const char *loop, uint64_t us) { record(&ticks, loop, true, us); }
void metrics_rpc(const char *method, bool ok, uint64_t us) { record(&rpcs, method, ok, us); }
void metrics_event(const char *kind) { record(&events, kind, true, 0); }

void metrics_lag(uint64_t ms) { record(&lag, "", true, ms * 1000); }
void metrics_db(uint64_t us) { record(&dbt, "", true, us); }

void metrics_verify(bool full, uint64_t wall_us, uint64_t cpu_us)
{
	record(&verify_wall, full ? "full" : "light", true, wall_us);
	record(&verify_cpu, full ? "full" : "light", true, cpu_us);
}

void metrics_lvol_states(const uint64_t counts[6])
{
	if (!atomic_load(&enabled))
		return;
	pthread_mutex_lock(&lock);
	memcpy(lvol_states, counts, sizeof(lvol_states));
	have_states = true;
	pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ render */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *np = mem_realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

static double sec(uint64_t us) { return (double)us / 1e6; }

/* One histogram family: name_bucket/_sum/_count per series, then name_max_seconds. */
static void put_histogram(struct buf *b, const char *name, const char *key, const char *help,
			  const struct table *t)
{
	char lbl[LABEL_LEN + 80], sep[2] = "";

	put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < t->n; i++) {
		const struct series *x = &t->v[i];
		uint64_t cum = 0;

		if (key) {
			snprintf(lbl, sizeof(lbl), "%s=\"%s\"", key, x->label);
			sep[0] = ',';
		} else {
			lbl[0] = '\0';
			sep[0] = '\0';
		}
		for (size_t j = 0; j < N_BUCKETS; j++) {
			cum += x->buckets[j];
			put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lbl, sep, sec(bucket_us[j]),
			    (unsigned long long)cum);
		}
		put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lbl, sep,
		    (unsigned long long)x->count);
		put(b, "%s_sum%s%s%s %.6f\n", name, key ? "{" : "", lbl, key ? "}" : "",
		    sec(x->us_sum));
		put(b, "%s_count%s%s%s %llu\n", name, key ? "{" : "", lbl, key ? "}" : "",
		    (unsigned long long)x->count);
	}
	put(b, "# TYPE %s_max_seconds gauge\n", name);
	for (size_t i = 0; i < t->n; i++) {
		if (key)
			put(b, "%s_max_seconds{%s=\"%s\"} %.6f\n", name, key, t->v[i].label,
			    sec(t->v[i].us_max));
		else
			put(b, "%s_max_seconds %.6f\n", name, sec(t->v[i].us_max));
	}
}

char *metrics_render(void)
{
	struct buf b = { 0 };
	struct table empty1 = { .n = 1 }, empty2 = { .n = 1 };

	pthread_mutex_lock(&lock);
	put(&b, "# HELP diskengine_loop_ticks_total Loop passes run.\n"
		"# TYPE diskengine_loop_ticks_total counter\n");
	for (size_t i = 0; i < ticks.n; i++)
		put(&b, "diskengine_loop_ticks_total{loop=\"%s\"} %llu\n", ticks.v[i].label,
		    (unsigned long long)ticks.v[i].count);
	put_histogram(&b, "diskengine_loop_tick_seconds", "loop", "Duration of a loop pass.",
		      &ticks);
	put(&b, "# HELP diskengine_rpc_calls_total JSON-RPC calls to the target.\n"
		"# TYPE diskengine_rpc_calls_total counter\n");
	for (size_t i = 0; i < rpcs.n; i++) {
		put(&b, "diskengine_rpc_calls_total{method=\"%s\",result=\"ok\"} %llu\n",
		    rpcs.v[i].label, (unsigned long long)(rpcs.v[i].count - rpcs.v[i].errors));
		put(&b, "diskengine_rpc_calls_total{method=\"%s\",result=\"error\"} %llu\n",
		    rpcs.v[i].label, (unsigned long long)rpcs.v[i].errors);
	}
	put_histogram(&b, "diskengine_rpc_call_seconds", "method",
		      "JSON-RPC call latency (errors included).", &rpcs);
	put(&b, "# HELP diskengine_events_raised_total Events raised (deduplicated).\n"
		"# TYPE diskengine_events_raised_total counter\n");
	for (size_t i = 0; i < events.n; i++)
		put(&b, "diskengine_events_raised_total{kind=\"%s\"} %llu\n", events.v[i].label,
		    (unsigned long long)events.v[i].count);
	put_histogram(&b, "diskengine_ready_lag_seconds", NULL,
		      "Desired-state change to READY.", lag.n ? &lag : &empty1);
	put_histogram(&b, "diskengine_db_call_seconds", NULL,
		      "Timed DB calls (heartbeat, verify reads).", dbt.n ? &dbt : &empty2);
	put_histogram(&b, "diskengine_verify_seconds", "kind",
		      "Duration of one verify pass (RPC + DB + judging); kind=full also lists "
		      "bdevs and subsystems.", &verify_wall);
	put_histogram(&b, "diskengine_verify_cpu_seconds", "kind",
		      "CPU time of the provisioning thread during one verify pass.", &verify_cpu);
	if (have_states) {
		put(&b, "# HELP diskengine_lvols Lvols of this node by state (last verify).\n"
			"# TYPE diskengine_lvols gauge\n");
		for (size_t i = 0; i < 6; i++)
			put(&b, "diskengine_lvols{state=\"%s\"} %llu\n", state_names[i],
			    (unsigned long long)lvol_states[i]);
	}
	pthread_mutex_unlock(&lock);
	if (b.oom) {
		mem_free(b.p);
		return NULL;
	}
	return b.p;
}

/* ------------------------------------------------------------ server */

#ifdef DE_HAVE_MHD
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text;
	unsigned code = MHD_HTTP_OK;

	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(method, "GET") != 0) {
		text = mem_strdup("method not allowed\n");
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		text = mem_strdup("not found: try /metrics\n");
		code = MHD_HTTP_NOT_FOUND;
	} else {
		text = metrics_render();
	}
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	mem_free(text);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}
#endif

/* "IP:PORT" / "[IPv6]:PORT" -> sockaddr. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *port;
	char *end;
	long p;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		port = rb + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	p = strtol(port, &end, 10);
	if (!*port || *end || p < 1 || p > 65535)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	}
	return 0;
}

int metrics_addr_check(const char *listen_addr)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return parse_addr(listen_addr, &ss, &len);
}

int metrics_start(const char *listen_addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = parse_addr(listen_addr, &ss, &len);

	if (rc)
		return rc;
#ifdef DE_HAVE_MHD
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	atomic_store(&enabled, true);
	daemon_h = MHD_start_daemon(flags, ntohs(((struct sockaddr_in *)&ss)->sin_port), NULL, NULL,
				    handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				    MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
				    10u, MHD_OPTION_END);
	if (!daemon_h) {
		atomic_store(&enabled, false);
		return -EADDRINUSE;
	}
	LOG_INFO("agent", "metrics listening addr=%s path=/metrics", listen_addr);
	return 0;
#else
	return -ENOTSUP;
#endif
}

void metrics_stop(void)
{
#ifdef DE_HAVE_MHD
	if (daemon_h)
		MHD_stop_daemon(daemon_h);
	daemon_h = NULL;
#endif
	atomic_store(&enabled, false);
}
