/*
 * diskperf: NVMe/TCP load generator in the spirit of SPDK's perf tool.
 *
 *   diskperf -r 'trtype:TCP adrfam:IPv4 traddr:IP trsvcid:PORT subnqn:NQN [hostnqn:NQN]'
 *            -q DEPTH -o BYTES -w randread|randwrite|read|write|randrw [-M READ_PERCENT]
 *            -t SECONDS [-c QUEUES] [-n IOS] [-H] [-I]
 *
 * One thread drives every queue pair through the host library's asynchronous
 * API: completions are reaped in batches, each one immediately resubmits, and
 * everything queued is sent with one sendmsg per queue and loop round. No
 * allocation happens per I/O (buffers and task records are preallocated).
 * Latency goes into a log-linear histogram (about 3 % resolution).
 * Output: a progress line each second, then the `Total:` line (DESIGN.md).
 */
#include "common/common.h"
#include "nvme/nvme.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PERF_MAX_QUEUES 64
#define PERF_MAX_DEPTH 4096
/* When nothing has arrived, diskperf keeps polling (one recv per round) for
 * up to PERF_SPIN_NS before it sleeps in poll(), and calls sched_yield()
 * between empty rounds. On an otherwise idle machine the yield returns at
 * once and the spin catches the answer without a wake-up: a sleeping vCPU of
 * this VM takes hundreds of microseconds to wake (QD1 fell from ~35k to
 * 2.5-5k IOPS and QD32 from ~310k to 40-150k when diskperf slept as soon as
 * recent idle periods looked long). On a busy machine the yield hands the
 * CPU to whoever is runnable (the target, other work) instead of burning it.
 * An adaptive rule based on measured idle periods was tried and removed: once
 * it slept, every idle period included the slow wake-up, so it never spun
 * again. */
#define PERF_SPIN_NS 200000u
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (64u * HIST_SUB)

enum workload { WL_READ, WL_WRITE, WL_RANDREAD, WL_RANDWRITE, WL_RANDRW, WL_RW };

struct perf_opts {
	char traddr[256];
	char trsvcid[32];
	char subnqn[NVME_NQN_FIELD_LEN];
	char hostnqn[NVME_NQN_FIELD_LEN];
	uint32_t depth;
	uint32_t io_size;
	enum workload wl;
	int read_pct;
	uint32_t seconds;
	uint64_t max_ios; /* -n: stop after this many I/Os (0: run for -t seconds) */
	uint32_t queues;
	uint32_t nsid;
	bool hdgst;
	bool ddgst;
};

struct perf_task {
	struct perf_queue *q;
	uint8_t *buf;
	uint64_t submit_ns;
	bool is_read;
};

struct perf_queue {
	struct nvme_qpair *qp;
	struct perf_task *tasks;
	uint32_t depth;
	uint32_t inflight;
};

struct perf {
	struct perf_opts o;
	struct nvme_ctrlr *ctrlr;
	struct perf_queue queues[PERF_MAX_QUEUES];
	uint32_t nqueues;
	uint8_t *bufs;
	uint32_t block_size;
	uint64_t ns_blocks;
	uint64_t units;      /* number of io_size units in the namespace */
	uint32_t blocks_per_io;
	uint64_t seq_next;
	uint64_t submitted;
	uint64_t rng;
	bool stopping;

	/* statistics */
	uint64_t ios;
	uint64_t errors;
	uint16_t first_error;
	uint64_t lat_sum_ns;
	uint64_t hist[HIST_BUCKETS];
};

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: diskperf -r 'trtype:TCP adrfam:IPv4 traddr:IP trsvcid:PORT subnqn:NQN [hostnqn:NQN]'\n"
		"                -q DEPTH -o BYTES -w randread|randwrite|read|write|randrw [-M READ_PERCENT]\n"
		"                -t SECONDS [-c QUEUES] [-n IOS]\n"
		"\n"
		"  -r  transport ID of the NVMe/TCP subsystem (keys: trtype adrfam traddr trsvcid\n"
		"      subnqn hostnqn ns; only trtype TCP is supported)\n"
		"  -q  I/Os kept in flight in total, spread over the queues\n"
		"  -o  I/O size in bytes (a multiple of the namespace block size; K/M suffixes ok)\n"
		"  -w  access pattern; randrw mixes random reads and writes (-M, default 50);\n"
		"      rw is the sequential mix\n"
		"  -M  percentage of reads for randrw/rw (0-100)\n"
		"  -t  run time in seconds\n"
		"  -c  number of I/O queue pairs (TCP connections), default 1\n"
		"  -n  stop after IOS I/Os (or after -t seconds, whichever comes first);\n"
		"      with -w write and IOS = namespace size / -o it writes every block once\n"
		"  -H  enable the NVMe/TCP header digest; -I  enable the data digest\n"
		"  -h, --help  this text\n"
		"\n"
		"Prints a progress line each second and finally:\n"
		"  Total: <IOPS> IOPS <MiB/s> MiB/s avg <us> us p50 <us> us p99 <us> us p99.9 <us> us\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "diskperf: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'diskperf --help'.\n");
	return 2;
}

/* "trtype:TCP adrfam:IPv4 traddr:1.2.3.4 trsvcid:4420 subnqn:nqn..." */
static int parse_trid(const char *s, struct perf_opts *o)
{
	char *copy = mem_strdup(s), *save = NULL, *tok;
	bool have_type = false;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *colon = strchr(tok, ':'), *val;

		if (!colon) {
			fprintf(stderr, "diskperf: -r: '%s' is not key:value\n", tok);
			rc = -EINVAL;
			break;
		}
		*colon = '\0';
		val = colon + 1;
		if (strcasecmp(tok, "trtype") == 0) {
			if (strcasecmp(val, "TCP") != 0) {
				fprintf(stderr, "diskperf: -r: trtype '%s' not supported (only TCP)\n", val);
				rc = -EINVAL;
				break;
			}
			have_type = true;
		} else if (strcasecmp(tok, "adrfam") == 0) {
			if (strcasecmp(val, "IPv4") != 0 && strcasecmp(val, "IPv6") != 0) {
				fprintf(stderr, "diskperf: -r: adrfam '%s' must be IPv4 or IPv6\n", val);
				rc = -EINVAL;
				break;
			}
		} else if (strcasecmp(tok, "traddr") == 0) {
			snprintf(o->traddr, sizeof(o->traddr), "%s", val);
		} else if (strcasecmp(tok, "trsvcid") == 0) {
			snprintf(o->trsvcid, sizeof(o->trsvcid), "%s", val);
		} else if (strcasecmp(tok, "subnqn") == 0) {
			if (strlen(val) > NVME_NQN_MAX_LEN) {
				fprintf(stderr, "diskperf: -r: subnqn too long\n");
				rc = -EINVAL;
				break;
			}
			snprintf(o->subnqn, sizeof(o->subnqn), "%s", val);
		} else if (strcasecmp(tok, "hostnqn") == 0) {
			if (strlen(val) > NVME_NQN_MAX_LEN) {
				fprintf(stderr, "diskperf: -r: hostnqn too long\n");
				rc = -EINVAL;
				break;
			}
			snprintf(o->hostnqn, sizeof(o->hostnqn), "%s", val);
		} else if (strcasecmp(tok, "ns") == 0) {
			o->nsid = (uint32_t)strtoul(val, NULL, 10);
		} else {
			fprintf(stderr, "diskperf: -r: unknown key '%s'\n", tok);
			rc = -EINVAL;
			break;
		}
	}
	mem_free(copy);
	if (rc == 0 && (!have_type || !o->traddr[0] || !o->subnqn[0])) {
		fprintf(stderr, "diskperf: -r needs at least trtype:TCP traddr:... subnqn:...\n");
		rc = -EINVAL;
	}
	return rc;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return false;
	*out = (uint32_t)v;
	return true;
}

static int parse_args(int argc, char **argv, struct perf_opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_r = false, have_q = false, have_o = false, have_w = false, have_t = false;
	int ch, m = -1;

	memset(o, 0, sizeof(*o));
	snprintf(o->trsvcid, sizeof(o->trsvcid), "4420");
	o->queues = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":r:q:o:w:M:t:c:n:HIh", longopts, NULL)) != -1) {
		uint32_t v;

		switch (ch) {
		case 'r':
			if (parse_trid(optarg, o) < 0)
				return 2;
			have_r = true;
			break;
		case 'q':
			if (!parse_u32(optarg, 1, PERF_MAX_DEPTH, &o->depth))
				return usage_error("-q must be 1..4096, got '%s'", optarg);
			have_q = true;
			break;
		case 'o': {
			uint64_t sz;

			if (size_parse(optarg, &sz) < 0 || sz == 0 || sz > 16u * 1024 * 1024)
				return usage_error("-o must be a size of 1 byte to 16 MiB, got '%s'", optarg);
			o->io_size = (uint32_t)sz;
			have_o = true;
			break;
		}
		case 'w':
			if (strcmp(optarg, "read") == 0)
				o->wl = WL_READ;
			else if (strcmp(optarg, "write") == 0)
				o->wl = WL_WRITE;
			else if (strcmp(optarg, "randread") == 0)
				o->wl = WL_RANDREAD;
			else if (strcmp(optarg, "randwrite") == 0)
				o->wl = WL_RANDWRITE;
			else if (strcmp(optarg, "randrw") == 0)
				o->wl = WL_RANDRW;
			else if (strcmp(optarg, "rw") == 0)
				o->wl = WL_RW; /* sequential mix, as in SPDK's perf */
			else
				return usage_error("-w must be randread|randwrite|read|write|randrw, got '%s'",
						   optarg);
			have_w = true;
			break;
		case 'M':
			if (!parse_u32(optarg, 0, 100, &v))
				return usage_error("-M must be 0..100, got '%s'", optarg);
			m = (int)v;
			break;
		case 't':
			if (!parse_u32(optarg, 1, 86400, &o->seconds))
				return usage_error("-t must be 1..86400 seconds, got '%s'", optarg);
			have_t = true;
			break;
		case 'c':
			if (!parse_u32(optarg, 1, PERF_MAX_QUEUES, &o->queues))
				return usage_error("-c must be 1..64, got '%s'", optarg);
			break;
		case 'n': {
			char *end;

			errno = 0;
			o->max_ios = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || o->max_ios == 0)
				return usage_error("-n must be a positive number of I/Os, got '%s'", optarg);
			break;
		}
		case 'H':
			o->hdgst = true;
			break;
		case 'I':
			o->ddgst = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			return usage_error("option -%s needs a value", (char[]){ (char)optopt, 0 });
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!have_r || !have_q || !have_o || !have_w || !have_t)
		return usage_error("%s", "-r, -q, -o, -w and -t are required");
	if (m >= 0 && o->wl != WL_RANDRW && o->wl != WL_RW)
		return usage_error("%s", "-M only applies to -w randrw or rw");
	o->read_pct = m >= 0 ? m : 50;
	if (o->wl == WL_READ || o->wl == WL_RANDREAD)
		o->read_pct = 100;
	else if (o->wl == WL_WRITE || o->wl == WL_RANDWRITE)
		o->read_pct = 0;
	if (o->depth < o->queues)
		return usage_error("%s", "-q must be at least the number of queues (-c)");
	return 0;
}

/* ---------------------------------------------------------------- stats */

static uint32_t hist_index(uint64_t v)
{
	uint32_t e;

	if (v < HIST_SUB)
		return (uint32_t)v;
	e = 63u - (uint32_t)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	return (e - HIST_SUB_BITS + 1) * HIST_SUB + (uint32_t)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* Middle of a bucket's value range. */
static double hist_value(uint32_t idx)
{
	uint32_t e, sub;
	double lo, width;

	if (idx < HIST_SUB)
		return idx;
	e = idx / HIST_SUB - 1 + HIST_SUB_BITS;
	sub = idx % HIST_SUB;
	width = (double)(1ull << (e - HIST_SUB_BITS));
	lo = (double)(1ull << e) + sub * width;
	return lo + width / 2;
}

static double hist_percentile(const uint64_t *hist, uint64_t total, double pct)
{
	uint64_t want = (uint64_t)((double)total * pct / 100.0), seen = 0;

	if (total == 0)
		return 0;
	if (want >= total)
		want = total - 1;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return hist_value(i);
	}
	return 0;
}

/* ---------------------------------------------------------------- I/O */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(struct perf *p)
{
	/* xorshift64* */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 2685821657736338717ull;
}

static struct perf *g_perf;

static void io_done(void *arg, uint16_t status, const struct nvme_cqe *cqe);

/* now: the time of submission (the completion that resubmits passes its own). */
static int submit_one(struct perf *p, struct perf_task *t, uint64_t now)
{
	uint64_t unit;
	int rc;

	if (p->o.max_ios && p->submitted >= p->o.max_ios)
		return 0; /* -n reached: nothing more to submit */
	if (p->o.wl == WL_READ || p->o.wl == WL_WRITE || p->o.wl == WL_RW) {
		unit = p->seq_next++;
		if (p->seq_next >= p->units)
			p->seq_next = 0;
	} else {
		unit = rng_next(p) % p->units;
	}
	if (p->o.read_pct == 100)
		t->is_read = true;
	else if (p->o.read_pct == 0)
		t->is_read = false;
	else
		t->is_read = (int)(rng_next(p) % 100) < p->o.read_pct;
	t->submit_ns = now;
	if (t->is_read)
		rc = nvme_qpair_read(t->q->qp, p->o.nsid, unit * p->blocks_per_io, p->blocks_per_io,
				     t->buf, io_done, t);
	else
		rc = nvme_qpair_write(t->q->qp, p->o.nsid, unit * p->blocks_per_io, p->blocks_per_io,
				      t->buf, io_done, t);
	if (rc == 0) {
		t->q->inflight++;
		p->submitted++;
	}
	return rc;
}

static void io_done(void *arg, uint16_t status, const struct nvme_cqe *cqe)
{
	struct perf_task *t = arg;
	struct perf *p = g_perf;
	uint64_t now = now_ns();
	uint64_t lat = now - t->submit_ns;

	t->q->inflight--;
	if (status != 0) {
		if (p->errors++ == 0)
			p->first_error = status;
		return;
	}
	p->ios++;
	p->lat_sum_ns += lat;
	p->hist[hist_index(lat)]++;
	if (!p->stopping)
		submit_one(p, t, now);
}

/* One round over all queues; waits up to wait_ms in poll() when idle. */
static int poll_round(struct perf *p, int wait_ms)
{
	int total = 0;

	for (uint32_t i = 0; i < p->nqueues; i++) {
		int rc = nvme_qpair_poll(p->queues[i].qp, 0);

		if (rc < 0)
			return rc;
		total += rc;
	}
	if (total == 0 && wait_ms > 0) {
		struct pollfd pfds[PERF_MAX_QUEUES];

		for (uint32_t i = 0; i < p->nqueues; i++) {
			pfds[i].fd = nvme_qpair_fd(p->queues[i].qp);
			pfds[i].events = POLLIN;
			pfds[i].revents = 0;
		}
		poll(pfds, p->nqueues, wait_ms);
	}
	return total;
}

static int setup(struct perf *p)
{
	struct nvme_connect_opts co;
	struct nvme_ns_info ns;
	uint32_t per_q, extra;
	uint64_t buf_bytes;
	uint16_t status = 0;
	int rc;

	memset(&co, 0, sizeof(co));
	co.traddr = p->o.traddr;
	co.trsvcid = p->o.trsvcid;
	co.subnqn = p->o.subnqn;
	co.hostnqn = p->o.hostnqn[0] ? p->o.hostnqn : NULL;
	co.io_queues = p->o.queues;
	per_q = p->o.depth / p->o.queues;
	extra = p->o.depth % p->o.queues;
	co.io_queue_size = per_q + (extra ? 1 : 0) + 1;
	co.kato_ms = 10000;
	co.timeout_ms = 10000;
	co.status_out = &status;
	co.header_digest = p->o.hdgst;
	co.data_digest = p->o.ddgst;
	rc = nvme_ctrlr_connect(&co, &p->ctrlr);
	if (rc < 0) {
		fprintf(stderr, "diskperf: cannot connect to %s:%s subnqn %s: %s%s%s\n", p->o.traddr,
			p->o.trsvcid, p->o.subnqn, common_strerror(rc),
			rc == -EIO ? " - " : "",
			rc == -EIO ? nvme_status_str(status) : "");
		return rc;
	}
	if (nvme_ctrlr_num_qpairs(p->ctrlr) < p->o.queues) {
		fprintf(stderr, "diskperf: controller granted only %u of %u I/O queues\n",
			nvme_ctrlr_num_qpairs(p->ctrlr), p->o.queues);
		return -ENOSPC;
	}
	if (p->o.nsid == 0) {
		uint32_t *list = mem_zalloc(NVME_IDENTIFY_DATA_LEN);

		if (!list)
			return -ENOMEM;
		rc = nvme_ctrlr_identify(p->ctrlr, NVME_CNS_ACTIVE_NS_LIST, 0, list, 0);
		p->o.nsid = rc == 0 && list[0] ? list[0] : 1;
		mem_free(list);
	}
	rc = nvme_ns_info_get(p->ctrlr, p->o.nsid, &ns, 0);
	if (rc < 0) {
		fprintf(stderr, "diskperf: namespace %u: %s\n", p->o.nsid,
			rc == -ENOENT ? "not found" : common_strerror(rc));
		return rc;
	}
	p->block_size = ns.block_size;
	p->ns_blocks = ns.num_blocks;
	if (p->o.io_size % ns.block_size != 0) {
		fprintf(stderr, "diskperf: -o %u is not a multiple of the block size %u\n", p->o.io_size,
			ns.block_size);
		return -EINVAL;
	}
	if (p->o.io_size > nvme_ctrlr_max_xfer(p->ctrlr) || p->o.io_size / ns.block_size > NVME_MAX_NLB) {
		fprintf(stderr, "diskperf: -o %u exceeds the controller's maximum transfer size %u\n",
			p->o.io_size, nvme_ctrlr_max_xfer(p->ctrlr));
		return -EINVAL;
	}
	p->blocks_per_io = p->o.io_size / ns.block_size;
	p->units = ns.num_blocks / p->blocks_per_io;
	if (p->units == 0) {
		fprintf(stderr, "diskperf: namespace is smaller than one I/O\n");
		return -EINVAL;
	}
	buf_bytes = (uint64_t)p->o.depth * p->o.io_size;
	if (posix_memalign((void **)&p->bufs, 4096, buf_bytes) != 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < buf_bytes; i++)
		p->bufs[i] = (uint8_t)(i * 7 + (i >> 12));
	p->nqueues = p->o.queues;
	for (uint32_t i = 0, next = 0; i < p->nqueues; i++) {
		struct perf_queue *q = &p->queues[i];

		q->qp = nvme_ctrlr_qpair(p->ctrlr, i);
		q->depth = per_q + (i < extra ? 1 : 0);
		if (q->depth > nvme_qpair_free_slots(q->qp)) {
			fprintf(stderr, "diskperf: queue depth %u exceeds what the controller allows (%u)\n",
				q->depth, nvme_qpair_free_slots(q->qp));
			return -EINVAL;
		}
		q->tasks = mem_zalloc(sizeof(*q->tasks) * q->depth);
		if (!q->tasks)
			return -ENOMEM;
		for (uint32_t k = 0; k < q->depth; k++, next++) {
			q->tasks[k].q = q;
			q->tasks[k].buf = p->bufs + (uint64_t)next * p->o.io_size;
		}
	}
	p->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)now_ns();
	if (p->rng == 0)
		p->rng = 1;
	return 0;
}

static void teardown(struct perf *p)
{
	nvme_ctrlr_destroy(p->ctrlr);
	for (uint32_t i = 0; i < p->nqueues; i++)
		mem_free(p->queues[i].tasks);
	free(p->bufs);
}

static uint32_t total_inflight(const struct perf *p)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->nqueues; i++)
		n += p->queues[i].inflight;
	return n;
}

static int run(struct perf *p)
{
	uint64_t start, end, next_report, last_ios = 0, last_lat = 0, last_t, t;
	uint64_t idle_since = 0; /* when the current idle period began, 0: not idle */
	uint32_t sec = 0;
	int rc;

	for (uint32_t i = 0; i < p->nqueues; i++) {
		for (uint32_t k = 0; k < p->queues[i].depth; k++) {
			rc = submit_one(p, &p->queues[i].tasks[k], now_ns());
			if (rc < 0) {
				fprintf(stderr, "diskperf: submit failed: %s\n", common_strerror(rc));
				return rc;
			}
		}
	}
	start = now_ns();
	last_t = start;
	end = start + (uint64_t)p->o.seconds * 1000000000ull;
	next_report = start + 1000000000ull;
	t = start;
	for (;;) {
		/* spin (yielding) for up to PERF_SPIN_NS of idleness, then sleep */
		uint64_t t0 = t;

		rc = poll_round(p, idle_since && t - idle_since >= PERF_SPIN_NS ? 1 : 0);
		t = now_ns();
		if (rc > 0) {
			idle_since = 0;
		} else if (rc == 0) {
			if (!idle_since)
				idle_since = t0;
			sched_yield();
		}
		if (rc < 0) {
			fprintf(stderr, "diskperf: connection lost: %s\n", common_strerror(rc));
			return rc;
		}
		if (p->errors && total_inflight(p) == 0) /* every I/O failed */
			break;
		if (p->o.max_ios && p->submitted >= p->o.max_ios && total_inflight(p) == 0)
			break; /* -n I/Os done */
		if (t >= next_report) {
			double dt = (double)(t - last_t) / 1e9;
			uint64_t dios = p->ios - last_ios;
			double iops = (double)dios / dt;

			sec++;
			printf("[%3us] %12.2f IOPS %10.2f MiB/s avg %10.2f us\n", sec, iops,
			       iops * p->o.io_size / (1024.0 * 1024.0),
			       dios ? (double)(p->lat_sum_ns - last_lat) / (double)dios / 1000.0 : 0.0);
			fflush(stdout);
			last_ios = p->ios;
			last_lat = p->lat_sum_ns;
			last_t = t;
			next_report += 1000000000ull;
			if (nvme_ctrlr_poll_admin(p->ctrlr) < 0) {
				fprintf(stderr, "diskperf: admin connection lost\n");
				return -ECONNRESET;
			}
		}
		if (t >= end || g_interrupted)
			break;
	}
	end = now_ns();
	p->stopping = true;
	/* drain: completions after the end do not count */
	{
		uint64_t ios = p->ios, lat = p->lat_sum_ns, deadline = end + 10000000000ull;
		uint64_t *hist = mem_alloc(sizeof(p->hist));

		if (hist)
			memcpy(hist, p->hist, sizeof(p->hist));
		while (total_inflight(p) > 0 && now_ns() < deadline) {
			if (poll_round(p, 10) < 0)
				break;
		}
		p->ios = ios;
		p->lat_sum_ns = lat;
		if (hist) {
			memcpy(p->hist, hist, sizeof(p->hist));
			mem_free(hist);
		}
	}
	{
		double secs = (double)(end - start) / 1e9;
		double iops = (double)p->ios / secs;

		printf("Total: %.2f IOPS %.2f MiB/s avg %.2f us p50 %.2f us p99 %.2f us p99.9 %.2f us\n",
		       iops, iops * p->o.io_size / (1024.0 * 1024.0),
		       p->ios ? (double)p->lat_sum_ns / (double)p->ios / 1000.0 : 0.0,
		       hist_percentile(p->hist, p->ios, 50.0) / 1000.0,
		       hist_percentile(p->hist, p->ios, 99.0) / 1000.0,
		       hist_percentile(p->hist, p->ios, 99.9) / 1000.0);
		fflush(stdout);
	}
	if (p->errors) {
		fprintf(stderr, "diskperf: %" PRIu64 " I/O errors, first: status 0x%x (%s)\n", p->errors,
			p->first_error, nvme_status_str(p->first_error));
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct perf perf;
	struct sigaction sa;
	int rc;

	rc = parse_args(argc, argv, &perf.o);
	if (rc != 0)
		return rc;
	log_level_set(LOG_LEVEL_ERROR);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	g_perf = &perf;
	rc = setup(&perf);
	if (rc == -ENOMEM)
		fprintf(stderr, "diskperf: out of memory for %u x %u byte buffers\n", perf.o.depth,
			perf.o.io_size);
	if (rc == 0)
		rc = run(&perf);
	teardown(&perf);
	return rc == 0 ? 0 : 1;
}
