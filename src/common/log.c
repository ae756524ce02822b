/* log.c: one-line structured logging to stderr, thread-safe, with a level threshold. */
#include "common/common.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_threshold = LOG_LEVEL_INFO;
static const char *const log_names[] = { "error", "warn", "info", "debug" };

void log_level_set(enum log_level level) { atomic_store(&log_threshold, (int)level); }
enum log_level log_level_get(void) { return (enum log_level)atomic_load(&log_threshold); }

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(log_names); i++) {
		if (s && strcasecmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (s && strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -EINVAL;
}

void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if ((int)level > atomic_load(&log_threshold))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000,
		     log_names[level], module ? module : "-");
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	/* One write so lines from several threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, module, fmt, ap);
	va_end(ap);
}

const char *common_strerror(int err)
{
	if (err < 0)
		err = -err;
	/* strerrordesc_np is thread-safe and returns a static string. */
	const char *s = strerrordesc_np(err);
	return s ? s : "Unknown error";
}
