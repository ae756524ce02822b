/*
 * bench_blob.c: lvol/blobstore benchmark on a file (aio bdev): pipelined
 * lvol creates, resizes, snapshots (also sequential) and deletes per second
 * (each one durable: metadata
 * written and flushed before its callback, bdev registered), load time of a
 * store holding N lvols (clean and dirty), and memory per lvol. Prints
 * SPDK's figures beside ours (shared/spec/spdk-rpc.md).
 *
 * usage: bench_blob [--file PATH] [--count N] [--depth D] [--cluster BYTES]
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "lvol/lvol.h"

static struct ev_loop *loop;

struct pipe_state {
	unsigned inflight, done, failed;
	int first_err;
};

static void lvol_done(void *arg, struct lvol *l, int status)
{
	(void)l;
	struct pipe_state *p = arg;
	p->inflight--;
	p->done++;
	if (status) {
		p->failed++;
		if (!p->first_err)
			p->first_err = status;
	}
}

static void op_done(void *arg, int status)
{
	lvol_done(arg, NULL, status);
}

struct flag {
	bool done;
	int status;
	struct lvol_store *lvs;
};

static void flag_cb(void *arg, int status)
{
	struct flag *f = arg;
	f->status = status;
	f->done = true;
}

static void flag_lvs_cb(void *arg, struct lvol_store *lvs, int status)
{
	struct flag *f = arg;
	f->lvs = lvs;
	f->status = status;
	f->done = true;
}

static void flag_examine(void *arg)
{
	struct flag *f = arg;
	f->done = true;
}

static void wait_flag(struct flag *f)
{
	while (!f->done)
		ev_loop_run_once(loop, 10);
}

static void wait_examine(void)
{
	struct flag f = {0};
	if (bdev_wait_for_examine(flag_examine, &f) != 0)
		exit(1);
	wait_flag(&f);
}

static void drain(struct pipe_state *p, unsigned below)
{
	while (p->inflight >= below)
		ev_loop_run_once(loop, 10);
}

static double secs(uint64_t t0)
{
	return (double)(clock_mono_us() - t0) / 1e6;
}

#include <sys/resource.h>
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}


static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	unsigned count = 10000, depth = 128;
	uint64_t cluster = 1024 * 1024;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--file") && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
			depth = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--cluster") && i + 1 < argc)
			cluster = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: %s [--file PATH] [--count N] [--depth D] [--cluster BYTES]\n", argv[0]);
			return 2;
		}
	}
	log_level_set(LOG_LEVEL_WARN);
	char tmp[] = "/tmp/de-bench-blob-XXXXXX";
	if (!file) {
		int fd = mkstemp(tmp);
		if (fd < 0)
			return 1;
		close(fd);
		file = tmp;
	}
	/* md pages = clusters: enough for `count` lvols plus room */
	uint64_t bytes = ((uint64_t)count * 3 / 2 + 1024) * cluster;
	if (truncate(file, (off_t)bytes) != 0) {
		perror("truncate");
		return 1;
	}
	if (ev_loop_create(&loop) || bdev_module_init(loop) || lvol_module_init())
		return 1;
	struct bdev *bd;
	if (bdev_aio_create("Aio0", file, 0, false, NULL, &bd) != 0)
		return 1;
	wait_examine();
	struct flag f = {0};
	struct lvol_store_opts o = { .bdev_name = "Aio0", .name = "bench", .cluster_size = cluster };
	if (lvol_store_create(&o, flag_lvs_cb, &f) != 0)
		return 1;
	wait_flag(&f);
	if (f.status)
		return 1;
	struct lvol_store *lvs = f.lvs;
	printf("blob bench: file=%s lvols=%u depth=%u cluster=%llu bytes (aio, io_uring; every op durable)\n",
	       file, count, depth, (unsigned long long)cluster);
	{
		/* context: what one durable write costs on this device right now */
		void *pg = NULL;
		if (posix_memalign(&pg, 4096, 4096) != 0)
			return 1;
		memset(pg, 0, 4096);
		/* to a block already written (what an md commit meets: init
		 * prewrites the md pages), and to a hole (the file system allocates) */
		double lat[2][21];
		for (int kind = 0; kind < 2; kind++) {
			for (int i = -1; i < 21; i++) {
				struct flag wf = {0}, ff = {0};
				uint64_t off = kind == 0 ? bytes - 4096 : bytes - 4096 * (uint64_t)(i + 3);
				uint64_t t = clock_mono_us();
				if (bdev_write(bd, pg, off, 4096, flag_cb, &wf) != 0)
					return 1;
				wait_flag(&wf);
				if (bdev_flush(bd, flag_cb, &ff) != 0)
					return 1;
				wait_flag(&ff);
				if (i >= 0)
					lat[kind][i] = (double)(clock_mono_us() - t);
			}
			for (int i = 0; i < 21; i++)
				for (int j = i + 1; j < 21; j++)
					if (lat[kind][j] < lat[kind][i]) {
						double t = lat[kind][i];
						lat[kind][i] = lat[kind][j];
						lat[kind][j] = t;
					}
		}
		printf("device: 4 KiB write + flush p50 %.0f us to a written block (bounds a create at depth 1), "
		       "%.0f us to a hole\n", lat[0][10], lat[1][10]);
		free(pg);
	}

	/* creates */
	size_t heap0 = heap_used();
	struct pipe_state p = {0};
	char name[32];
	uint64_t t0 = clock_mono_us();
	double c0 = cpu_s();
	for (unsigned i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "%u", i);
		if (lvol_create(lvs, name, 4 * cluster, true, LVOL_CLEAR_DEFAULT, lvol_done, &p) != 0)
			return 1;
		p.inflight++;
		drain(&p, depth);
	}
	drain(&p, 1);
	double tc = secs(t0);
	size_t heap1 = heap_used();
	if (p.failed) {
		fprintf(stderr, "creates failed: %u (%s)\n", p.failed, common_strerror(p.first_err));
		return 1;
	}
	printf("creates:  %8.0f /s  (%u in %.2f s)   SPDK 10,000-14,000 /s -> ratio %.2fx of 12,000\n",
	       count / tc, count, tc, count / tc / 12000.0);
	const struct bdev_io_stat *st = bdev_stat(bd);
	printf("          device: %.2f writes and %.0f bytes written per create; loop thread cpu %.0f%% of wall\n",
	       (double)st->num_write_ops / count, (double)st->bytes_written / count, (cpu_s() - c0) / tc * 100);

	/* resizes */
	memset(&p, 0, sizeof(p));
	t0 = clock_mono_us();
	for (struct lvol *l = lvol_first(lvs); l; l = lvol_next(l)) {
		if (lvol_resize(l, 8 * cluster, op_done, &p) != 0)
			return 1;
		p.inflight++;
		drain(&p, depth);
	}
	drain(&p, 1);
	double tr = secs(t0);
	printf("resizes:  %8.0f /s  (%u in %.2f s)\n", count / tr, count, tr);

	/* snapshots: sequential (each waited for) and `depth` in flight, of
	 * extra thin lvols; afterwards those and their snapshots are deleted
	 * (not timed) so the rest of the bench sees `count` lvols */
	{
		const unsigned nseq = count / 20 ? count / 20 : 1, npipe = count / 5 ? count / 5 : 1;
		const unsigned nsn = nseq + npipe;
		struct pipe_state cp = {0};
		struct lvol **orig = malloc(sizeof(*orig) * nsn);
		if (!orig)
			return 1;
		for (unsigned i = 0; i < nsn; i++) {
			snprintf(name, sizeof(name), "s%u", i);
			if (lvol_create(lvs, name, 4 * cluster, true, LVOL_CLEAR_DEFAULT, lvol_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, depth);
		}
		drain(&cp, 1);
		for (unsigned i = 0; i < nsn; i++) {
			char full[48];
			snprintf(full, sizeof(full), "bench/s%u", i);
			if (!(orig[i] = lvol_find(full)))
				return 1;
		}
		memset(&cp, 0, sizeof(cp));
		t0 = clock_mono_us();
		double cs0 = cpu_s();
		for (unsigned i = 0; i < nseq; i++) {
			snprintf(name, sizeof(name), "S%u", i);
			if (lvol_snapshot(orig[i], name, lvol_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, 1);
		}
		double tss = secs(t0), css = cpu_s() - cs0;
		t0 = clock_mono_us();
		cs0 = cpu_s();
		for (unsigned i = nseq; i < nsn; i++) {
			snprintf(name, sizeof(name), "S%u", i);
			if (lvol_snapshot(orig[i], name, lvol_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, depth);
		}
		drain(&cp, 1);
		double tsp = secs(t0), csp = cpu_s() - cs0;
		if (cp.failed) {
			fprintf(stderr, "snapshots failed: %u (%s)\n", cp.failed, common_strerror(cp.first_err));
			return 1;
		}
		printf("snapshots: %7.0f /s sequential (%u, %.0f us CPU each), %.0f /s %u in flight (%u, %.0f us CPU each)"
		       "   SPDK 124.8 /s sequential\n", nseq / tss, nseq, css * 1e6 / nseq, npipe / tsp, depth, npipe,
		       csp * 1e6 / npipe);
		/* clean up: the origins (now clones) first, then their snapshots */
		memset(&cp, 0, sizeof(cp));
		for (unsigned i = 0; i < nsn; i++) {
			if (lvol_delete(orig[i], op_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, depth);
		}
		drain(&cp, 1);
		for (unsigned i = 0; i < nsn; i++) {
			char full[48];
			snprintf(full, sizeof(full), "bench/S%u", i);
			struct lvol *sl = lvol_find(full);
			if (!sl || lvol_delete(sl, op_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, depth);
		}
		drain(&cp, 1);
		free(orig);
		if (cp.failed) {
			fprintf(stderr, "snapshot clean-up failed: %u (%s)\n", cp.failed, common_strerror(cp.first_err));
			return 1;
		}
	}

	/* thin allocation: first writes into a fresh thin lvol, 32 in flight */
	{
		struct flag cf = {0};
		struct pipe_state cp = {0};
		const unsigned nal = 512;
		if (lvol_create(lvs, "alloc", (uint64_t)nal * cluster, true, LVOL_CLEAR_DEFAULT, lvol_done, &cp) != 0)
			return 1;
		cp.inflight++;
		drain(&cp, 1);
		(void)cf;
		struct lvol *al = lvol_find("bench/alloc");
		if (!al)
			return 1;
		void *buf = NULL;
		if (posix_memalign(&buf, 4096, 4096) != 0)
			return 1;
		memset(buf, 0x5a, 4096);
		memset(&cp, 0, sizeof(cp));
		t0 = clock_mono_us();
		for (unsigned i = 0; i < nal; i++) {
			if (bdev_write(lvol_bdev(al), buf, (uint64_t)i * cluster, 4096, op_done, &cp) != 0)
				return 1;
			cp.inflight++;
			drain(&cp, 32);
		}
		drain(&cp, 1);
		double ta = secs(t0);
		printf("thin allocating writes: %6.0f /s  (%u first writes of 4 KiB, each a new %llu-byte cluster, 32 in flight)\n",
		       nal / ta, nal, (unsigned long long)cluster);
		free(buf);
		memset(&cp, 0, sizeof(cp));
		if (lvol_delete(al, op_done, &cp) != 0)
			return 1;
		cp.inflight++;
		drain(&cp, 1);
	}

	/* data path: 4 KiB random I/O at QD32 on a thick lvol vs the base bdev itself */
	{
		struct pipe_state cp = {0};
		const uint64_t vsize = 64 * cluster;
		if (lvol_create(lvs, "data", vsize, false, LVOL_CLEAR_DEFAULT, lvol_done, &cp) != 0)
			return 1;
		cp.inflight++;
		drain(&cp, 1);
		struct lvol *dl = lvol_find("bench/data");
		if (!dl)
			return 1;
		uint8_t *bufs = NULL;
		if (posix_memalign((void **)&bufs, 4096, 32 * 4096) != 0)
			return 1;
		memset(bufs, 0x33, 32 * 4096);
		const unsigned nio = 50000;
		for (int target = 0; target < 2; target++) {
			struct bdev *tb = target == 0 ? lvol_bdev(dl) : bd;
			/* base bdev: the (unallocated) last clusters of the file, never the metadata */
			uint64_t base_off = target == 0 ? 0 : bytes - vsize;
			for (int wr = 1; wr >= 0; wr--) {
				memset(&cp, 0, sizeof(cp));
				uint64_t seed = 12345;
				t0 = clock_mono_us();
				for (unsigned i = 0; i < nio; i++) {
					seed = seed * 6364136223846793005ull + 1442695040888963407ull;
					uint64_t off = base_off + ((seed >> 20) % (vsize / 4096)) * 4096;
					uint8_t *b = bufs + (i % 32) * 4096;
					int rc = wr ? bdev_write(tb, b, off, 4096, op_done, &cp)
						    : bdev_read(tb, b, off, 4096, op_done, &cp);
					if (rc)
						return 1;
					cp.inflight++;
					drain(&cp, 32);
				}
				drain(&cp, 1);
				double tio = secs(t0);
				printf("4 KiB rand%-5s QD32: %8.0f IOPS on %s\n", wr ? "write" : "read", nio / tio,
				       target == 0 ? "a thick lvol" : "the base aio bdev (no lvol)");
			}
		}
		free(bufs);
		memset(&cp, 0, sizeof(cp));
		if (lvol_delete(dl, op_done, &cp) != 0)
			return 1;
		cp.inflight++;
		drain(&cp, 1);
	}

	/* memory */
	double per = (double)(heap1 - heap0) / count;
	printf("memory:   %8.0f bytes per lvol (heap growth over %u creates, lvol + blob + bdev registration)"
	       "   SPDK ~2,500 + 16 per cluster (ESTIMATE from its lvol/blob/bdev structs and xattr/alias"
	       " allocations, not measured) -> ratio %.2fx\n", per, count, per / (2500.0 + 16 * 4));

	/* load: clean */
	f = (struct flag){0};
	if (lvol_store_unload(lvs, flag_cb, &f) != 0)
		return 1;
	wait_flag(&f);
	if (bdev_aio_delete("Aio0") != 0)
		return 1;
	t0 = clock_mono_us();
	if (bdev_aio_create("Aio0", file, 0, false, NULL, &bd) != 0)
		return 1;
	wait_examine();
	double tl = secs(t0);
	lvs = lvol_store_find_by_name("bench");
	if (!lvs || lvol_store_lvol_count(lvs) != count)
		return 1;
	printf("load:     %8.1f ms  clean, %u lvols (target < 1,000 ms)\n", tl * 1000, count);
	/* load: dirty (process "killed": no unload) */
	lvol_module_fini();
	for (int i = 0; i < 100; i++)
		ev_loop_run_once(loop, 1);
	if (lvol_module_init() != 0 || bdev_aio_delete("Aio0") != 0)
		return 1;
	t0 = clock_mono_us();
	if (bdev_aio_create("Aio0", file, 0, false, NULL, &bd) != 0)
		return 1;
	wait_examine();
	tl = secs(t0);
	lvs = lvol_store_find_by_name("bench");
	if (!lvs || lvol_store_lvol_count(lvs) != count)
		return 1;
	printf("load:     %8.1f ms  dirty (bitmaps rebuilt from metadata), %u lvols\n", tl * 1000, count);

	/* deletes */
	memset(&p, 0, sizeof(p));
	t0 = clock_mono_us();
	struct lvol **all = malloc(sizeof(*all) * count);
	unsigned nall = 0;
	for (struct lvol *l = lvol_first(lvs); l && nall < count; l = lvol_next(l))
		all[nall++] = l;
	for (unsigned i = 0; i < nall; i++) {
		if (lvol_delete(all[i], op_done, &p) != 0)
			return 1;
		p.inflight++;
		drain(&p, depth);
	}
	drain(&p, 1);
	free(all);
	if (p.failed) {
		fprintf(stderr, "deletes failed: %u (%s)\n", p.failed, common_strerror(p.first_err));
		return 1;
	}
	double td = secs(t0);
	printf("deletes:  %8.0f /s  (%u in %.2f s)   SPDK 10,000-16,000 /s (create/delete, 128 in flight)\n",
	       count / td, count, td);

	f = (struct flag){0};
	if (lvol_store_destroy(lvs, flag_cb, &f) == 0)
		wait_flag(&f);
	lvol_module_fini();
	bdev_module_fini();
	ev_loop_destroy(loop);
	if (file == tmp)
		unlink(tmp);
	return 0;
}
