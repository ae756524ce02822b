/* clock.c: monotonic and wall-clock readings. */
#include "common/common.h"

#include <time.h>

uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_us(void) { return clock_mono_ns() / 1000; }
uint64_t clock_mono_ms(void) { return clock_mono_ns() / 1000000; }

int64_t clock_wall_s(void) { return (int64_t)time(NULL); }

int64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
