/*
 * bdev.h: block devices of the target (SPDK's "bdev" layer, our own code).
 *
 * A bdev is a named array of blocks with asynchronous I/O. Kinds:
 *   - aio:    a file or block device, I/O through io_uring (never blocks the loop)
 *   - malloc: RAM
 *   - fault:  RAM device for tests: fail the Nth I/O, simulate power loss
 *             (drop every write not yet flushed, or keep a random subset)
 *   - virtual bdevs registered by upper layers (an lvol is a bdev) through
 *     struct bdev_ops.
 *
 * Threading: everything runs on the one event-loop thread given to
 * bdev_module_init(). Completions are ALWAYS delivered later from the loop,
 * never from inside the submitting call, so a completion may submit again.
 *
 * Ownership: the registry owns every registered bdev; bdev_unregister()
 * destroys it (calling ops->destroy(ctx)). Pointers returned by lookups are
 * valid until the bdev is unregistered. I/O buffers belong to the caller and
 * must stay valid until the completion runs.
 *
 * Offsets and lengths are in BYTES and must be multiples of the block size
 * (otherwise -EINVAL, synchronously). Read, write, write zeroes and unmap
 * need len > 0 and offset + len <= size (else -EINVAL). A flush reaches
 * ops->submit with offset 0 and len 0. Claims never block I/O.
 *
 * I/O stats count successful I/O only (SPDK does the same): reads, writes,
 * unmaps; write zeroes and flush are not counted. Latency is in ticks of
 * bdev_tick_rate() per second, measured from submit to completion.
 *
 * Zero-copy reads (SPDK's bdev zcopy / "get buffer" idea, synchronous here):
 * a bdev whose blocks live in memory (malloc) can hand out a pointer to them
 * with bdev_read_direct() instead of copying into a caller buffer. The caller
 * gets a reference (struct bdev_mem) that keeps that memory allocated until
 * bdev_mem_put(), even if the bdev is unregistered meanwhile (the memory then
 * outlives the bdev; nothing else of the bdev may be used). The bytes are NOT
 * a snapshot: a write, write zeroes or unmap of the same blocks before the
 * caller has consumed them may show through (old data, new data or a mix per
 * byte), as with SPDK's zcopy; callers that need a stable image (a checksum
 * computed separately from the send, say) must copy.
 */
#ifndef DE_BDEV_H
#define DE_BDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

#define BDEV_NAME_MAX 256

struct bdev;
struct bdev_mem; /* a reference on a bdev's memory (bdev_read_direct) */

enum bdev_io_type {
	BDEV_IO_READ,
	BDEV_IO_WRITE,
	BDEV_IO_WRITE_ZEROES,
	BDEV_IO_UNMAP, /* deallocate; later reads return zeros */
	BDEV_IO_FLUSH, /* make every completed write durable */
};

enum bdev_claim_type {
	BDEV_CLAIM_NONE = 0,
	BDEV_CLAIM_EXCL_WRITE, /* SPDK "exclusive_write": lvstore on its base, nvmf namespace */
};

/* status: 0 or -errno (-EIO, -ENOSPC for a thin lvol out of clusters ...). */
typedef void (*bdev_io_cb)(void *cb_arg, int status);
/* Called by bdev_wait_for_examine() once no examine is in flight. */
typedef void (*bdev_done_cb)(void *cb_arg);

/* Per-bdev I/O counters (bdev_get_iostat). */
struct bdev_io_stat {
	uint64_t bytes_read, num_read_ops;
	uint64_t bytes_written, num_write_ops;
	uint64_t bytes_unmapped, num_unmap_ops;
	uint64_t bytes_copied, num_copy_ops;
	uint64_t read_latency_ticks, write_latency_ticks, unmap_latency_ticks;
	uint64_t max_read_latency_ticks, min_read_latency_ticks;
	uint64_t max_write_latency_ticks, min_write_latency_ticks;
	uint64_t max_unmap_latency_ticks, min_unmap_latency_ticks;
	uint64_t num_io_errors; /* completions with a non-zero status */
};

/* What a virtual bdev implements. submit() returns 0 when the I/O was taken
 * (cb will run exactly once, later) or -errno when refused (cb never runs). */
struct bdev_ops {
	int (*submit)(void *ctx, enum bdev_io_type type, void *buf, uint64_t offset,
		      uint64_t len, bdev_io_cb cb, void *cb_arg);
	/* Called once from bdev_unregister(); may be NULL. */
	void (*destroy)(void *ctx);
	/* Optional (NULL: bdev_read_direct gives -ENOTSUP): range already checked;
	 * sets *ptr to the bytes at offset and *ref to a new reference. */
	int (*read_direct)(void *ctx, uint64_t offset, uint64_t len, const void **ptr,
			   struct bdev_mem **ref);
};

struct bdev_params {
	const char *name;         /* required, unique among names and aliases */
	const char *uuid;         /* NULL: generate one */
	const char *product_name; /* "Malloc disk", "AIO disk", "Logical Volume" */
	uint32_t block_size;
	uint64_t num_blocks;
	bool thin;                /* reported as-is by bdev_get_bdevs */
	const struct bdev_ops *ops;
	void *ctx;                /* handed to ops */
};

/* Examine hook (the lvol module loads an lvstore found on a new bdev).
 * `start` is called for every bdev registered from now on; it must call
 * bdev_examine_done(bdev) exactly once, now or later. */
typedef void (*bdev_examine_fn)(struct bdev *bdev, void *arg);

/* ---------------------------------------------------------- module */

int bdev_module_init(struct ev_loop *loop);
/* Unregisters every bdev (last registered first) and releases io_uring. */
void bdev_module_fini(void);
struct ev_loop *bdev_module_loop(void);
int bdev_examine_register(bdev_examine_fn start, void *arg);
void bdev_examine_done(struct bdev *bdev);
/* cb runs (later, from the loop) once no examine is pending. */
int bdev_wait_for_examine(bdev_done_cb cb, void *cb_arg);
/* Examine hooks are started from the loop (a deferred call after
 * bdev_register() returns), one bdev at a time in registration order.
 * A bdev whose examine has started and not finished cannot be unregistered
 * (-EBUSY); one whose examine has not started yet can (it is skipped). */
unsigned bdev_examine_pending(void);

/* Tick clock of the I/O stats: ticks per second and the current tick
 * (bdev_get_iostat's tick_rate and ticks). Nanoseconds of CLOCK_MONOTONIC. */
#define BDEV_TICK_RATE 1000000000ull
uint64_t bdev_tick_rate(void);
uint64_t bdev_ticks(void);

/* -------------------------------------------------------- registry */

int bdev_register(const struct bdev_params *params, struct bdev **out);
/* -EBUSY if claimed, if I/O is outstanding or if its examine is running.
 * Destroys the bdev. */
int bdev_unregister(struct bdev *bdev);
/* By name, alias or UUID string; NULL if none. */
struct bdev *bdev_find(const char *name);
/* Registration order. */
struct bdev *bdev_first(void);
struct bdev *bdev_next(const struct bdev *bdev);
unsigned bdev_count(void);

int bdev_alias_add(struct bdev *bdev, const char *alias); /* -EEXIST on clash */
int bdev_alias_del(struct bdev *bdev, const char *alias);
unsigned bdev_alias_count(const struct bdev *bdev);
const char *bdev_alias_get(const struct bdev *bdev, unsigned i);

const char *bdev_name(const struct bdev *bdev);
const char *bdev_uuid(const struct bdev *bdev);
const char *bdev_product_name(const struct bdev *bdev);
uint32_t bdev_block_size(const struct bdev *bdev);
uint64_t bdev_num_blocks(const struct bdev *bdev);
bool bdev_is_thin(const struct bdev *bdev);
void *bdev_ctx(const struct bdev *bdev);
const struct bdev_ops *bdev_get_ops(const struct bdev *bdev);
const struct bdev_io_stat *bdev_stat(const struct bdev *bdev);
void bdev_stat_reset(struct bdev *bdev);
/* I/O taken by the bdev whose completion has not run yet. */
unsigned bdev_io_outstanding(const struct bdev *bdev);
/* Size change (lvol resize, aio rescan). */
void bdev_num_blocks_set(struct bdev *bdev, uint64_t num_blocks);

/* One claim at a time. -EPERM if already claimed. `module` is a static
 * string ("lvol", "NVMe-oF Target") reported by bdev_get_bdevs. */
int bdev_claim(struct bdev *bdev, enum bdev_claim_type type, const char *module);
void bdev_release(struct bdev *bdev);
enum bdev_claim_type bdev_claim_type(const struct bdev *bdev);
const char *bdev_claim_module(const struct bdev *bdev);

/* --------------------------------------------------------------- I/O */

int bdev_read(struct bdev *bdev, void *buf, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg);
int bdev_write(struct bdev *bdev, const void *buf, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg);
int bdev_write_zeroes(struct bdev *bdev, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg);
int bdev_unmap(struct bdev *bdev, uint64_t offset, uint64_t len, bdev_io_cb cb, void *cb_arg);
int bdev_flush(struct bdev *bdev, bdev_io_cb cb, void *cb_arg);

/* Zero-copy read (see the top of this file): synchronous, no callback. On 0,
 * *ptr points at the len bytes at offset (contiguous) and *ref holds them
 * until bdev_mem_put(*ref); the read is counted in the I/O stats.
 * -ENOTSUP if the bdev cannot (only malloc can), -EINVAL on a bad range
 * (same rules as bdev_read) or NULL arguments. */
int bdev_read_direct(struct bdev *bdev, uint64_t offset, uint64_t len, const void **ptr,
		     struct bdev_mem **ref);
/* Drops a reference from bdev_read_direct(); NULL is a no-op. */
void bdev_mem_put(struct bdev_mem *ref);

/* ---------------------------------------------------------- kinds */

/* block_size: a multiple of 512 up to 64 KiB; num_blocks > 0. NULL name:
 * "MallocN" with the first free N (SPDK's default). -EEXIST on a name or
 * UUID clash, -EINVAL on bad sizes or a malformed uuid. */
int bdev_malloc_create(const char *name, const char *uuid, uint64_t num_blocks,
		       uint32_t block_size, struct bdev **out);
/* -ENODEV if there is no malloc bdev of that name (by name or alias),
 * -EBUSY if it is claimed. */
int bdev_malloc_delete(const char *name);
/* block_size 0: the device's logical block size (512 for a regular file).
 * -ENOENT if the file is missing, -EEXIST on a name clash. */
int bdev_aio_create(const char *name, const char *filename, uint32_t block_size,
		    bool readonly, const char *uuid, struct bdev **out);
/* Re-reads the size of the file/device; the bdev grows. */
int bdev_aio_rescan(struct bdev *bdev);
const char *bdev_aio_filename(const struct bdev *bdev); /* NULL if not aio */
bool bdev_aio_readonly(const struct bdev *bdev);
/* Block size given at create (0 if none: detected). */
uint32_t bdev_aio_block_size_override(const struct bdev *bdev);
/* -ENODEV if there is no aio bdev of that name, -EBUSY if claimed. */
int bdev_aio_delete(const char *name);
/* Tests only: from now on every `eagain_every`-th io_uring result is taken
 * as -EAGAIN (the I/O did happen; redoing it is harmless) and every
 * `short_every`-th read/write is issued for half its length (a real short
 * transfer), so the resubmit paths run. 0 = off. */
void bdev_aio_test_mangle(unsigned eagain_every, unsigned short_every);

/*
 * Test device (RAM, volatile write cache semantics: a write is durable only
 * after a later FLUSH). Storage is sparse (memory grows with data written),
 * so creating even a large device is cheap.
 *
 * "Writes" are WRITE, WRITE_ZEROES and UNMAP; each is one pending record
 * from the moment it is taken (its data is visible to reads at once) until
 * the next FLUSH, which makes every record taken before it durable.
 *
 * Power loss (bdev_fault_power_loss): the device becomes "durable image +
 * the surviving pending records re-applied in the order they were taken".
 * Each record survives independently with probability keep_fraction (a
 * seeded PRNG: same seed, same records, same result). So when a block was
 * written twice since the last flush, the older write may survive while the
 * newer one is lost (the block then holds the OLDER data), both may survive
 * (newer data) or neither (durable data). With torn_writes each BLOCK of a
 * record survives on its own instead (a multi-block write may be torn; a
 * single block never is).
 *
 * Failures: fail_io_nth fails one I/O (any type, flush included) with -EIO
 * without touching data. crash_after_writes = N: the first N writes from
 * the configure call are taken normally; from then on the device is
 * "crashed": every I/O fails with -EIO and nothing becomes durable, until
 * bdev_fault_power_loss() is called.
 */
struct bdev_fault_opts {
	uint64_t fail_io_nth;   /* 1-based: the Nth I/O from now fails with -EIO; 0 = never */
	uint64_t crash_after_writes; /* power loss after this many writes; 0 = never */
	bool torn_writes;       /* power loss keeps/drops single blocks, not whole writes */
};
int bdev_fault_create(const char *name, uint64_t num_blocks, uint32_t block_size, struct bdev **out);
int bdev_fault_configure(struct bdev *bdev, const struct bdev_fault_opts *opts);
/* Simulated power loss: drop every unflushed write (keep_fraction 0.0) or
 * keep a random subset of them (seeded); afterwards the device holds what
 * survived and accepts I/O again (fail_io_nth and crash_after_writes are
 * disarmed). keep_fraction is clamped to [0, 1]. */
int bdev_fault_power_loss(struct bdev *bdev, double keep_fraction, uint64_t seed);
/* Number of writes completed so far (to pick crash points). Counts writes
 * taken since the device was created (failed ones are not counted). */
uint64_t bdev_fault_write_count(const struct bdev *bdev);
/* True once crash_after_writes has triggered (until power loss). */
bool bdev_fault_crashed(const struct bdev *bdev);
/* Unflushed writes (pending records). */
uint64_t bdev_fault_pending_count(const struct bdev *bdev);
/* -ENODEV if there is no fault bdev of that name, -EBUSY if claimed. */
int bdev_fault_delete(const char *name);

#endif /* DE_BDEV_H */
