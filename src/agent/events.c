/*
 * events.c: operator-visible events, deduplicated. A condition (kind,
 * object) is raised once while it lasts: the loop remembers which ones it
 * has open (seeded from the DB after a restart), so a lasting drift gives one
 * row, not one per tick. A one-off fact (a re-export) is raised and resolved
 * at once, giving one row per occurrence.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/metrics.h"
#include "common/common.h"

static ssize_t events_find(const struct agent_events *e, const char *kind, const char *object)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->v[i].kind, kind) == 0 && strcmp(e->v[i].object, object) == 0)
			return (ssize_t)i;
	return -1;
}

static int events_add(struct agent_events *e, const char *kind, const char *object)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		struct agent_event_key *v = mem_realloc(e->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	snprintf(e->v[e->n].kind, sizeof(e->v[e->n].kind), "%s", kind);
	snprintf(e->v[e->n].object, sizeof(e->v[e->n].object), "%s", object);
	e->n++;
	return 0;
}

void agent_events_free(struct agent_events *e)
{
	mem_free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

bool agent_event_open(const struct agent_loop *l, const char *kind, const char *object)
{
	return events_find(&l->events, kind, object) >= 0;
}

void agent_events_load(struct agent_loop *l)
{
	struct db_event *ev = NULL;
	size_t n = 0;

	if (db_event_list(l->db, false, &ev, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ev[i].node, l->node.name) != 0)
			continue;
		if (events_find(&l->events, ev[i].kind, ev[i].object) < 0)
			events_add(&l->events, ev[i].kind, ev[i].object);
	}
	db_event_list_free(ev, n);
}

static void event_vraise(struct agent_loop *l, bool resolve, const char *kind, const char *object,
			 const char *fmt, va_list ap)
{
	char detail[DB_REASON_MAX];
	int rc;

	if (!resolve && events_find(&l->events, kind, object) >= 0)
		return;
	vsnprintf(detail, sizeof(detail), fmt, ap);
	rc = db_event_raise(l->db, l->node.name, kind, object, detail);
	if (rc) {
		/* Not remembered: the next tick tries again. */
		LOG_WARN("agent", "event not recorded kind=%s object=%s err=%s db=\"%s\"", kind,
			 object, common_strerror(rc), db_errmsg(l->db));
		return;
	}
	LOG_WARN("agent", "event kind=%s object=%s detail=\"%s\"", kind, object, detail);
	metrics_event(kind);
	if (resolve) {
		rc = db_event_resolve(l->db, kind, object);
		if (rc)
			LOG_WARN("agent", "event not resolved kind=%s object=%s err=%s", kind,
				 object, common_strerror(rc));
		return;
	}
	events_add(&l->events, kind, object);
}

void agent_event_raise(struct agent_loop *l, const char *kind, const char *object,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_vraise(l, false, kind, object, fmt, ap);
	va_end(ap);
}

void agent_event_note(struct agent_loop *l, const char *kind, const char *object,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_vraise(l, true, kind, object, fmt, ap);
	va_end(ap);
}

void agent_event_resolve(struct agent_loop *l, const char *kind, const char *object)
{
	ssize_t i = events_find(&l->events, kind, object);
	int rc;

	if (i < 0)
		return;
	rc = db_event_resolve(l->db, kind, object);
	if (rc) {
		LOG_WARN("agent", "event not resolved kind=%s object=%s err=%s", kind, object,
			 common_strerror(rc));
		return;
	}
	LOG_INFO("agent", "event resolved kind=%s object=%s", kind, object);
	l->events.v[i] = l->events.v[l->events.n - 1];
	l->events.n--;
}

void agent_events_prune(struct agent_loop *l)
{
	const struct agent_options *o = &l->agent->opt;
	uint64_t now = clock_mono_ms(), every;
	int n = 0, rc;

	if (!o->events_keep_ms || now < l->events_prune_at_ms)
		return;
	every = COMMON_MIN(COMMON_MAX(o->events_keep_ms / 10, o->tick_ms), (uint64_t)3600000);
	l->events_prune_at_ms = now + every;
	rc = db_event_prune(l->db, l->node.name, clock_wall_ms() - (int64_t)o->events_keep_ms, &n);
	if (rc) {
		/* the next heartbeat tries again */
		l->events_prune_at_ms = now + o->tick_ms;
		LOG_DEBUG("agent", "events not pruned err=%s db=\"%s\"", common_strerror(rc),
			  db_errmsg(l->db));
		return;
	}
	if (n > 0)
		LOG_INFO("agent", "events pruned node=%s count=%d resolved_before_ms_ago=%llu",
			 l->node.name, n, (unsigned long long)o->events_keep_ms);
}
