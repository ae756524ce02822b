/*
 * bench_bdev.c: microbenchmark of the bdev I/O path (not a test). Random
 * 4 KiB reads or writes at a fixed queue depth for a short time on a malloc,
 * fault or aio bdev; prints IOPS and the mean latency.
 *   bench_bdev [malloc|fault|aio FILE] [read|write] [qd] [seconds]
 * BENCH_MB=N sets the size of a malloc/fault device (default 256).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bdev/bdev.h"

#define IO_SIZE 4096

struct slot {
	struct bench *b;
	uint8_t *buf;
};

struct bench {
	struct bdev *bdev;
	bool write;
	uint64_t blocks; /* in IO_SIZE units */
	uint64_t rng;
	uint64_t done, errors;
	bool stop;
	unsigned inflight;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void io_cb(void *arg, int status);

static void issue(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t off = (next_rand(&b->rng) % b->blocks) * IO_SIZE;
	int rc = b->write ? bdev_write(b->bdev, s->buf, off, IO_SIZE, io_cb, s)
			  : bdev_read(b->bdev, s->buf, off, IO_SIZE, io_cb, s);

	if (rc) {
		fprintf(stderr, "submit failed: %s\n", common_strerror(rc));
		exit(1);
	}
	b->inflight++;
}

static void io_cb(void *arg, int status)
{
	struct slot *s = arg;
	struct bench *b = s->b;

	b->inflight--;
	b->done++;
	if (status)
		b->errors++;
	if (!b->stop)
		issue(s);
}

int main(int argc, char **argv)
{
	const char *kind = argc > 1 ? argv[1] : "malloc";
	int a = 2;
	const char *file = NULL;
	struct ev_loop *loop;
	struct bench b = { .rng = 88172645463325252ull };
	int rc;

	if (strcmp(kind, "aio") == 0) {
		if (argc < 3) {
			fprintf(stderr, "usage: bench_bdev aio FILE [read|write] [qd] [seconds]\n");
			return 2;
		}
		file = argv[a++];
	}
	b.write = argc > a && strcmp(argv[a], "write") == 0;
	a++;
	unsigned qd = argc > a ? (unsigned)atoi(argv[a]) : 128;
	a++;
	double secs = argc > a ? atof(argv[a]) : 2.0;

	log_level_set(LOG_LEVEL_WARN);
	if (ev_loop_create(&loop) || bdev_module_init(loop))
		return 1;
	uint64_t mb = getenv("BENCH_MB") ? strtoull(getenv("BENCH_MB"), NULL, 10) : 256;
	if (strcmp(kind, "malloc") == 0)
		rc = bdev_malloc_create("bench", NULL, (mb << 20) / 512, 512, &b.bdev);
	else if (strcmp(kind, "fault") == 0)
		rc = bdev_fault_create("bench", (mb << 20) / 512, 512, &b.bdev);
	else
		rc = bdev_aio_create("bench", file, 0, false, NULL, &b.bdev);
	if (rc) {
		fprintf(stderr, "create failed: %s\n", common_strerror(rc));
		return 1;
	}
	b.blocks = bdev_num_blocks(b.bdev) * bdev_block_size(b.bdev) / IO_SIZE;

	struct slot *slots = calloc(qd, sizeof(*slots));
	for (unsigned i = 0; i < qd; i++) {
		slots[i].b = &b;
		slots[i].buf = calloc(1, IO_SIZE);
		memset(slots[i].buf, (int)i, IO_SIZE);
	}
	uint64_t t0 = clock_mono_ns();
	for (unsigned i = 0; i < qd; i++)
		issue(&slots[i]);
	while (clock_mono_ns() - t0 < (uint64_t)(secs * 1e9))
		ev_loop_run_once(loop, 10);
	b.stop = true;
	uint64_t t1 = clock_mono_ns();
	uint64_t done = b.done;
	while (b.inflight)
		ev_loop_run_once(loop, 10);
	double el = (double)(t1 - t0) / 1e9;
	const struct bdev_io_stat *st = bdev_stat(b.bdev);
	uint64_t ops = b.write ? st->num_write_ops : st->num_read_ops;
	uint64_t lat = b.write ? st->write_latency_ticks : st->read_latency_ticks;
	printf("%s %s qd=%u: %.0f IOPS %.1f MiB/s avg %.1f us errors=%llu\n", kind,
	       b.write ? "randwrite" : "randread", qd, done / el, done * IO_SIZE / el / 1048576.0,
	       ops ? (double)lat / ops / 1000.0 : 0.0, (unsigned long long)b.errors);
	bdev_module_fini();
	ev_loop_destroy(loop);
	for (unsigned i = 0; i < qd; i++)
		free(slots[i].buf);
	free(slots);
	return 0;
}
