/*
 * agent.c: the agent's lifecycle and loop threads. Each loop opens its own
 * DB handle, waits for its node row, connects to the node's target on its
 * own JSON-RPC connection and then runs its tick every tick_ms, or at once
 * when the DB's change counter moves (db_change_wait: SQLite polls it every
 * few ms, PostgreSQL waits for NOTIFY, filtered to changes on this node's
 * rows of the loop's kind: a create wakes the provisioning loop only).
 * agent_stop() wakes every thread through an eventfd; a thread finishes the
 * step it is in.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/metrics.h"
#include "common/common.h"

bool agent_stopping(const struct agent *a)
{
	return atomic_load(&a->stopping);
}

int agent_create(const struct agent_options *o, struct agent **out, char *err, size_t errlen)
{
	struct agent *a;
	int rc;

	if (!o->db[0]) {
		snprintf(err, errlen, "no database given (--db or db = in the config file)");
		return -EINVAL;
	}
	if (!o->node[0]) {
		snprintf(err, errlen, "no node name given (--node or node = in the config file)");
		return -EINVAL;
	}
	if (!o->tick_ms || !o->poll_ms || o->rpc_timeout_ms <= 0) {
		snprintf(err, errlen, "tick, poll and rpc timeout must be positive");
		return -EINVAL;
	}
	if (o->metrics_listen[0] && metrics_addr_check(o->metrics_listen) != 0) {
		snprintf(err, errlen, "bad metrics address '%s' (IP:PORT or [IPv6]:PORT)",
			 o->metrics_listen);
		return -EINVAL;
	}
	rc = agent_crash_init();
	if (rc) {
		snprintf(err, errlen, "bad DISKENGINE_CRASH_AT (see --list-crash-points)");
		return rc;
	}
	a = mem_zalloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->opt = *o;
	a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->stop_fd < 0) {
		rc = -errno;
		mem_free(a);
		snprintf(err, errlen, "eventfd: %s", common_strerror(rc));
		return rc;
	}
	atomic_init(&a->stopping, false);
	a->loops[0].name = "provision";
	a->loops[0].tick = agent_provision_tick;
	a->loops[1].name = "resize";
	a->loops[1].tick = agent_resize_tick;
	a->loops[2].name = "delete";
	a->loops[2].tick = agent_delete_tick;
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(a->loops); i++)
		a->loops[i].agent = a;
	*out = a;
	return 0;
}

void agent_stop(struct agent *a)
{
	uint64_t one = 1;
	ssize_t w;

	atomic_store(&a->stopping, true);
	w = write(a->stop_fd, &one, sizeof(one));
	(void)w;
}

/* Sleeps up to ms; false when stopping. */
static bool loop_sleep(struct agent_loop *l, uint64_t ms)
{
	struct pollfd p = { .fd = l->agent->stop_fd, .events = POLLIN };

	if (agent_stopping(l->agent))
		return false;
	poll(&p, 1, (int)COMMON_MIN(ms, (uint64_t)60000));
	return !agent_stopping(l->agent);
}

/* The desired-state changes that wake this loop before its tick. */
static unsigned loop_wake_kinds(const struct agent_loop *l)
{
	if (strcmp(l->name, "provision") == 0)
		return DB_CHANGE_CREATE;
	if (strcmp(l->name, "resize") == 0)
		return DB_CHANGE_RESIZE;
	return DB_CHANGE_DELETE;
}

/* Opens the DB and waits for the node row. 0, or -EINTR when stopping. */
static int loop_setup(struct agent_loop *l)
{
	const struct agent_options *o = &l->agent->opt;
	bool logged = false;
	int rc;

	for (;;) {
		if (!l->db) {
			rc = db_open(o->db, &l->db);
			if (rc) {
				l->db = NULL;
				if (!logged)
					LOG_ERROR("agent", "db open failed loop=%s db=%s err=%s", l->name,
						  o->db, common_strerror(rc));
				logged = true;
				if (!loop_sleep(l, o->tick_ms))
					return -EINTR;
				continue;
			}
			/* Wake only for changes on this node's rows of this loop's
			 * kind (PostgreSQL; SQLite wakes every loop). */
			db_change_filter(l->db, o->node, loop_wake_kinds(l));
		}
		rc = db_node_get(l->db, o->node, &l->node);
		if (rc == 0)
			break;
		if (!logged && strcmp(l->name, "provision") == 0)
			LOG_WARN("agent", "node not registered yet node=%s db=%s err=%s "
				 "(diskctl node add %s --rpc-socket PATH); waiting", o->node, o->db,
				 common_strerror(rc), o->node);
		logged = true;
		if (!loop_sleep(l, COMMON_MIN(o->tick_ms, (uint64_t)200)))
			return -EINTR;
	}
	snprintf(l->nqn_prefix, sizeof(l->nqn_prefix), "%s",
		 o->nqn_prefix[0] ? o->nqn_prefix
				  : (l->node.nqn_prefix[0] ? l->node.nqn_prefix : DB_NQN_PREFIX_DEFAULT));
	agent_host_nqn(l->nqn_prefix, l->node.name, l->host_nqn);
	rc = spdk_client_create(o->rpc_socket[0] ? o->rpc_socket : l->node.rpc_socket,
				o->rpc_timeout_ms, &l->spdk);
	if (rc)
		return rc;
	agent_events_load(l);
	if (strcmp(l->name, "provision") == 0)
		LOG_INFO("agent", "node ready node=%s rpc_socket=%s host_nqn=%s tick_ms=%llu",
			 l->node.name, o->rpc_socket[0] ? o->rpc_socket : l->node.rpc_socket,
			 l->host_nqn, (unsigned long long)o->tick_ms);
	return 0;
}

/* Heartbeat; a failure (DB locked by another writer, read-only, full) is
 * logged once per episode, and its end too. */
static void loop_heartbeat(struct agent_loop *l)
{
	uint64_t t0 = clock_mono_us();
	int rc = db_node_heartbeat(l->db, l->node.id);

	metrics_db(clock_mono_us() - t0);
	if (rc && !l->db_down) {
		LOG_WARN("agent", "heartbeat not recorded node=%s err=%s db=\"%s\" (the loops retry)",
			 l->node.name, common_strerror(rc), db_errmsg(l->db));
		l->db_down = true;
	} else if (rc == 0 && l->db_down) {
		LOG_INFO("agent", "heartbeat recorded again node=%s: database writable", l->node.name);
		l->db_down = false;
	}
}

static void *loop_main(void *arg)
{
	struct agent_loop *l = arg;
	const struct agent_options *o = &l->agent->opt;
	uint64_t seen = 0, next_tick;
	int rc;

	rc = loop_setup(l);
	if (rc)
		return NULL;
	db_change_counter(l->db, &seen);
	next_tick = 0;
	while (!agent_stopping(l->agent)) {
		uint64_t now = clock_mono_ms(), counter = 0;
		bool wake = false;

		if (!o->no_wakeup && db_changes_since(l->db, seen, &counter) == 1) {
			seen = counter;
			wake = true;
		}
		if (wake || now >= next_tick) {
			/* Refresh the node row (rpc socket, prefix are fixed per run). */
			if (strcmp(l->name, "provision") == 0 && now >= next_tick) {
				loop_heartbeat(l);
				agent_events_prune(l);
			}
			l->tick(l);
			l->ticks++;
			metrics_tick(l->name, (clock_mono_ms() - now) * 1000);
			LOG_DEBUG("agent", "tick loop=%s wake=%d ms=%llu", l->name, (int)wake,
				  (unsigned long long)(clock_mono_ms() - now));
			if (now >= next_tick)
				next_tick = clock_mono_ms() + o->tick_ms;
			continue;
		}
		/* Until the next tick, a desired-state change or agent_stop(). On
		 * SQLite this polls data_version every few ms inside; on
		 * PostgreSQL it waits for NOTIFY. The top of the loop sees a move.
		 * An error return has already slept (the loop never spins). */
		if (o->no_wakeup)
			loop_sleep(l, next_tick - now);
		else
			db_change_wait(l->db, seen, (int)COMMON_MIN(next_tick - now, (uint64_t)60000),
				       l->agent->stop_fd, NULL);
	}
	return NULL;
}

int agent_run(struct agent *a)
{
	size_t started = 0;
	int rc = 0;

	if (a->opt.log_level[0]) {
		enum log_level lvl;

		if (log_level_parse(a->opt.log_level, &lvl) == 0)
			log_level_set(lvl);
	}
	LOG_INFO("agent", "starting node=%s db=%s", a->opt.node, a->opt.db);
	if (a->opt.metrics_listen[0]) {
		rc = metrics_start(a->opt.metrics_listen);
		if (rc == -ENOTSUP)
			LOG_WARN("agent", "metrics endpoint not built (no libmicrohttpd); ignoring "
				 "metrics_listen=%s", a->opt.metrics_listen);
		else if (rc)
			LOG_ERROR("agent", "metrics endpoint not started addr=%s err=%s",
				  a->opt.metrics_listen, common_strerror(rc));
		rc = 0;
	}
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(a->loops); i++) {
		rc = -pthread_create(&a->loops[i].thread, NULL, loop_main, &a->loops[i]);
		if (rc) {
			LOG_ERROR("agent", "thread start failed loop=%s err=%s", a->loops[i].name,
				  common_strerror(rc));
			agent_stop(a);
			break;
		}
		a->loops[i].started = true;
		started++;
	}
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(a->loops); i++) {
		if (a->loops[i].started)
			pthread_join(a->loops[i].thread, NULL);
		a->loops[i].started = false;
	}
	metrics_stop();
	LOG_INFO("agent", "stopped node=%s loops=%zu", a->opt.node, started);
	return rc;
}

void agent_destroy(struct agent *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(a->loops); i++) {
		struct agent_loop *l = &a->loops[i];

		spdk_client_destroy(l->spdk);
		db_close(l->db);
		agent_events_free(&l->events);
		mem_free(l->noisy_disks);
		mem_free(l->backoff);
	}
	close(a->stop_fd);
	mem_free(a);
}
