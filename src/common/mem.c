/* mem.c: allocation wrappers; tests make the Nth allocation fail to exercise error paths. */
#include "common/common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long mem_countdown = -1; /* <0: no fault armed */
static _Atomic unsigned long mem_count;

static bool mem_should_fail(void)
{
	atomic_fetch_add(&mem_count, 1);
	long c = atomic_load(&mem_countdown);
	if (c < 0)
		return false;
	if (c == 0)
		return true;
	atomic_fetch_sub(&mem_countdown, 1);
	return false;
}

void mem_fault_set(long countdown) { atomic_store(&mem_countdown, countdown); }
void mem_fault_clear(void) { atomic_store(&mem_countdown, -1); }
unsigned long mem_alloc_count(void) { return atomic_load(&mem_count); }

void *mem_alloc(size_t size)
{
	if (mem_should_fail())
		return NULL;
	return malloc(size ? size : 1);
}

void *mem_zalloc(size_t size)
{
	if (mem_should_fail())
		return NULL;
	return calloc(1, size ? size : 1);
}

void *mem_realloc(void *p, size_t size)
{
	if (mem_should_fail())
		return NULL;
	return realloc(p, size ? size : 1);
}

char *mem_strdup(const char *s)
{
	if (!s || mem_should_fail())
		return NULL;
	return strdup(s);
}

char *mem_strndup(const char *s, size_t n)
{
	if (!s || mem_should_fail())
		return NULL;
	return strndup(s, n);
}

void mem_free(void *p) { free(p); }
