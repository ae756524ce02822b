/*
 * common.h: the one public header of src/common, the bottom of the dependency
 * graph (it depends on nothing of ours). It holds the small services every
 * other module uses:
 *
 *   log_*     one line per event: "<time> <level> <module>: message key=value"
 *   mem_*     allocation wrappers with fault injection for tests
 *   clock_*   monotonic and wall clocks
 *   common_uuid_*  RFC 4122 strings (lower case, 36 chars)
 *   size_*    human sizes ("10G", "512MiB") to bytes and back (powers of 2)
 *   crc32c    CRC-32C (Castagnoli), for metadata checksums and NVMe/TCP digests
 *   ev_*      the single-threaded epoll event loop (fds, timers, deferred calls)
 *
 * Conventions: functions return 0 or -errno; *_destroy(NULL) is a no-op.
 */
#ifndef DE_COMMON_H
#define DE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMMON_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define COMMON_MIN(a, b) ((a) < (b) ? (a) : (b))
#define COMMON_MAX(a, b) ((a) > (b) ? (a) : (b))
#define COMMON_DIV_ROUND_UP(a, b) (((a) + (b) - 1) / (b))

/* ---------------------------------------------------------------- log */

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Global threshold; messages above it are dropped. Default INFO. */
void log_level_set(enum log_level level);
enum log_level log_level_get(void);
/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
/* Writes one line to stderr with a single write(2), safe across threads. */
void log_write(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap);

#define LOG_ERROR(mod, ...) log_write(LOG_LEVEL_ERROR, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  log_write(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...)  log_write(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define LOG_DEBUG(mod, ...) do { if (log_level_get() >= LOG_LEVEL_DEBUG) \
	log_write(LOG_LEVEL_DEBUG, mod, __VA_ARGS__); } while (0)

/* ---------------------------------------------------------------- mem */

/* malloc/calloc/realloc/strdup that can be made to fail for tests. */
void *mem_alloc(size_t size);
void *mem_zalloc(size_t size);
void *mem_realloc(void *p, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
void mem_free(void *p);
/* Fault injection: after `countdown` more successful allocations, every
 * allocation fails (returns NULL) until mem_fault_clear(). countdown < 0
 * disables. Process-wide. */
void mem_fault_set(long countdown);
void mem_fault_clear(void);
/* Number of allocations made through mem_* so far (for fault-injection loops). */
unsigned long mem_alloc_count(void);

/* -------------------------------------------------------------- clock */

uint64_t clock_mono_ns(void);
uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* Seconds since the epoch (wall clock). */
int64_t clock_wall_s(void);
/* Milliseconds since the epoch (wall clock). */
int64_t clock_wall_ms(void);

/* --------------------------------------------------------------- uuid */

#define COMMON_UUID_STR_LEN 37 /* 36 chars + NUL */

/* Random (v4) UUID as a lower-case string. */
void common_uuid_generate(char out[COMMON_UUID_STR_LEN]);
/* 0 if `s` is a well-formed UUID string; the 16 bytes go to `bytes` if non-NULL. */
int common_uuid_parse(const char *s, uint8_t bytes[16]);
void common_uuid_unparse(const uint8_t bytes[16], char out[COMMON_UUID_STR_LEN]);

/* --------------------------------------------------------------- size */

/* "4096", "10G", "512MiB", "1.5G" (fraction allowed when the result is whole
 * bytes), suffixes B K KiB M MiB G GiB T TiB P PiB, case-insensitive, powers
 * of 2. -EINVAL on junk, negative or empty input; -ERANGE on overflow. */
int size_parse(const char *s, uint64_t *out);
/* "1.5 GiB"-style rendering into buf (at least 32 bytes). Returns buf. */
char *size_format(uint64_t bytes, char *buf, size_t len);

/* ------------------------------------------------------------- crc32c */

/* CRC-32C. Start with crc = 0; chain calls by passing the previous result. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* ----------------------------------------------------------------- ev */

/*
 * A single-threaded event loop over epoll. Ownership: the loop owns its
 * timer and defer records; the caller owns every fd it adds and must remove
 * it before closing it. Callbacks run on the loop's thread, one at a time,
 * and may add/remove fds, start/stop timers (including their own) and defer
 * work. An fd callback receives the epoll event mask (EPOLLIN, EPOLLOUT,
 * EPOLLERR, EPOLLHUP ...).
 */
struct ev_loop;
struct ev_timer;

typedef void (*ev_fd_cb)(struct ev_loop *loop, int fd, uint32_t events, void *arg);
typedef void (*ev_timer_cb)(struct ev_loop *loop, struct ev_timer *timer, void *arg);
typedef void (*ev_defer_cb)(struct ev_loop *loop, void *arg);

int ev_loop_create(struct ev_loop **out);
void ev_loop_destroy(struct ev_loop *loop);
/* Runs until ev_loop_stop(); returns 0, or -errno if epoll fails. */
int ev_loop_run(struct ev_loop *loop);
/* Waits at most timeout_ms (-1: forever) for events, dispatches once. */
int ev_loop_run_once(struct ev_loop *loop, int timeout_ms);
void ev_loop_stop(struct ev_loop *loop);
bool ev_loop_stopping(const struct ev_loop *loop);
/* After a round that dispatched work, keep polling without sleeping for up
 * to `us` microseconds (0, the default, never spins). A request that follows
 * its predecessor closely is then picked up without a wake-up; an idle loop
 * still sleeps, so idle CPU stays at zero. */
void ev_loop_set_spin(struct ev_loop *loop, unsigned us);

/* Level-triggered. -EEXIST if fd is already registered. */
int ev_fd_add(struct ev_loop *loop, int fd, uint32_t events, ev_fd_cb cb, void *arg);
int ev_fd_modify(struct ev_loop *loop, int fd, uint32_t events);
/* Safe to call from inside any callback, including fd's own. */
int ev_fd_remove(struct ev_loop *loop, int fd);

/* One-shot when period_ms == 0, else periodic. *out (optional) is valid
 * until the timer fires (one-shot) or ev_timer_stop(). */
int ev_timer_start(struct ev_loop *loop, uint64_t delay_ms, uint64_t period_ms,
		   ev_timer_cb cb, void *arg, struct ev_timer **out);
/* Stops and frees the timer; NULL is a no-op. Safe inside its own callback. */
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *timer);
/* Runs cb on the loop thread after the current dispatch round. */
int ev_defer(struct ev_loop *loop, ev_defer_cb cb, void *arg);

/* ------------------------------------------------------------- errors */

/* strerror text for a positive or negative errno (thread-safe, static string). */
const char *common_strerror(int err);

#endif /* DE_COMMON_H */
