/*
 * metrics.h (private to src/agent): Prometheus metrics of the agent, served
 * on GET /metrics at --metrics-listen ADDR by libmicrohttpd when the build
 * has it. Every recording function is thread-safe and a cheap no-op until
 * metrics_start() succeeded.
 *
 * Exposed (prefix diskengine_; "histogram" = _bucket{le} cumulative, _sum,
 * _count, plus a _max_seconds gauge; buckets 0.5 ms .. 10 s):
 *   loop_ticks_total{loop}, loop_tick_seconds{loop} histogram
 *   rpc_calls_total{method,result}, rpc_call_seconds{method} histogram
 *   events_raised_total{kind}
 *   ready_lag_seconds histogram               (desired change -> READY)
 *   db_call_seconds histogram
 *   verify_seconds{kind}, verify_cpu_seconds{kind} histograms  (kind: light, full)
 *   lvols{state}                              (from the last verify)
 */
#ifndef DE_AGENT_METRICS_H
#define DE_AGENT_METRICS_H

#include <stdbool.h>
#include <stdint.h>

/* "IP:PORT" or "[IPv6]:PORT". 0, -EINVAL (bad address), -ENOTSUP (built
 * without libmicrohttpd), -EADDRINUSE / -errno (cannot listen). */
int metrics_start(const char *listen_addr);
void metrics_stop(void);
/* 0 if listen_addr parses ("IP:PORT" / "[IPv6]:PORT"), else -EINVAL. */
int metrics_addr_check(const char *listen_addr);

void metrics_tick(const char *loop, uint64_t us);
void metrics_rpc(const char *method, bool ok, uint64_t us);
void metrics_event(const char *kind);
void metrics_lag(uint64_t ms);
void metrics_db(uint64_t us);
/* One verify pass: wall time and the thread's CPU time; full = with the
 * bdev and subsystem listings (see verify.c). */
void metrics_verify(bool full, uint64_t wall_us, uint64_t cpu_us);
/* Counts indexed by enum db_lvol_state (CREATING .. FAILED). */
void metrics_lvol_states(const uint64_t counts[6]);

/* The exposition text (for tests and the HTTP handler); caller frees with
 * mem_free. NULL on ENOMEM. */
char *metrics_render(void);

#endif /* DE_AGENT_METRICS_H */
