/* bdev_test_util.h: shared helpers of the bdev unit tests (loop setup,
 * waiting for completions). Included by each test file of tests/unit/bdev. */
#ifndef BDEV_TEST_UTIL_H
#define BDEV_TEST_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bdev/bdev.h"

struct done {
	int calls;
	int status;
};

static struct ev_loop *t_loop;

static inline void t_io_cb(void *arg, int status)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
}

/* Runs the loop until *calls reaches want (or ~5 s pass). */
static inline void t_wait(int *calls, int want)
{
	for (int i = 0; i < 50000 && *calls < want; i++)
		ev_loop_run_once(t_loop, 10);
	assert_int_equal(*calls, want);
}

static inline int t_setup(void **state)
{
	log_level_set(LOG_LEVEL_WARN);
	assert_int_equal(ev_loop_create(&t_loop), 0);
	assert_int_equal(bdev_module_init(t_loop), 0);
	return 0;
}

static inline int t_teardown(void **state)
{
	/* Deliver whatever completions are queued, then tear down. */
	for (int i = 0; i < 3; i++)
		ev_loop_run_once(t_loop, 0);
	bdev_module_fini();
	ev_loop_destroy(t_loop);
	t_loop = NULL;
	mem_fault_clear();
	return 0;
}

/* Synchronous helpers: submit, then spin the loop to the completion. */
static inline int t_rw(struct bdev *b, enum bdev_io_type type, void *buf, uint64_t off, uint64_t len)
{
	struct done d = {0};
	int rc;

	switch (type) {
	case BDEV_IO_READ: rc = bdev_read(b, buf, off, len, t_io_cb, &d); break;
	case BDEV_IO_WRITE: rc = bdev_write(b, buf, off, len, t_io_cb, &d); break;
	case BDEV_IO_WRITE_ZEROES: rc = bdev_write_zeroes(b, off, len, t_io_cb, &d); break;
	case BDEV_IO_UNMAP: rc = bdev_unmap(b, off, len, t_io_cb, &d); break;
	default: rc = bdev_flush(b, t_io_cb, &d); break;
	}
	if (rc)
		return rc;
	assert_int_equal(d.calls, 0); /* never inline */
	t_wait(&d.calls, 1);
	return d.status;
}

#endif
