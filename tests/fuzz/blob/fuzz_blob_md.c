/*
 * fuzz_blob_md.c: libFuzzer target for the blobstore's on-disk metadata.
 * First byte selects the mode:
 *   0: one 4 KiB metadata page (blob_md_page_check), input used as is;
 *   1: a descriptor stream (blob_md_stream_check);
 *   2: a whole store: the input becomes up to 16 metadata pages of a freshly
 *      formatted store (magic, store tag and checksum fixed up so the parser
 *      and the chain selection run), then blob_store_load + blob_store_check:
 *      the load may refuse the store but must never crash, leak or accept an
 *      inconsistent one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev.h"
#include "blob/blob.h"
#include "common/common.h"

#define PAGE 4096u
#define DEV_BLOCKS 4096u

static struct bdev *fz;

static struct ev_loop *loop;
static uint8_t *image;          /* formatted store, pristine */
static size_t image_len;
static uint64_t md_start;       /* byte offset of md page 0 */
static uint8_t tag[8];

struct w {
	bool done;
	int status;
	struct blob_store *bs;
};

static void bs_cb(void *arg, struct blob_store *bs, int status)
{
	struct w *x = arg;
	x->bs = bs;
	x->status = status;
	x->done = true;
}

static void done_cb(void *arg, int status)
{
	struct w *x = arg;
	x->status = status;
	x->done = true;
}

static void run(struct w *x)
{
	while (!x->done)
		ev_loop_run_once(loop, 0);
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* the page checksum covers the header after it and the payload */
static size_t page_crc_len(const uint8_t *pg)
{
	uint32_t plen = (uint32_t)(pg[32] | pg[33] << 8 | pg[34] << 16 | (uint32_t)pg[35] << 24);
	if (plen > PAGE - 48)
		plen = PAGE - 48;
	return 40 + plen;
}

static void setup_once(void)
{
	if (loop)
		return;
	log_level_set(LOG_LEVEL_ERROR);
	if (ev_loop_create(&loop) || bdev_module_init(loop))
		abort();
	struct bdev *bd;
	/* 2 MiB, 512-byte blocks, 16 KiB clusters, 32 md pages */
	if (bdev_malloc_create("fmt", NULL, DEV_BLOCKS, 512, &bd))
		abort();
	struct blob_store_opts o;
	memset(&o, 0, sizeof(o));
	o.cluster_size = 16 * 1024;
	o.md_pages_ratio = 25;
	for (int i = 0; i < 16; i++)
		o.uuid[i] = (uint8_t)(i * 17 + 3);
	memcpy(tag, o.uuid, 8);
	strcpy(o.name, "fuzz");
	struct w x = {0};
	if (blob_store_init(bd, &o, bs_cb, &x))
		abort();
	run(&x);
	if (x.status)
		abort();
	struct w u = {0};
	if (blob_store_unload(x.bs, done_cb, &u))
		abort();
	run(&u);
	image_len = DEV_BLOCKS * 512;
	image = malloc(image_len);
	struct w r = {0};
	if (bdev_read(bd, image, 0, image_len, done_cb, &r))
		abort();
	run(&r);
	/* md_start from the super block (offset 80) */
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | image[80 + i];
	md_start = v * PAGE;
	/* the fuzzed stores load dirty: clear CLEAN and fix the crc */
	image[12] &= (uint8_t)~1u;
	put32(image + 508, crc32c(0, image, 508));
	/* only the metadata area is rewritten per input */
	image_len = (size_t)(md_start + 16 * PAGE);
	if (bdev_malloc_create("fz", NULL, DEV_BLOCKS, 512, &fz))
		abort();
	bdev_malloc_delete("fmt");
}

static void fuzz_store(const uint8_t *data, size_t size)
{
	struct bdev *bd = fz;
	struct w wr = {0};
	uint8_t *img = malloc(image_len);
	memcpy(img, image, image_len);
	for (unsigned p = 0; p < 16 && size > 0; p++) {
		size_t n = size < PAGE - 8 ? size : PAGE - 8;
		uint8_t *pg = img + md_start + (uint64_t)p * PAGE;
		memset(pg, 0, PAGE);
		memcpy(pg + 8, data, n); /* header fields after magic/crc come from the input */
		data += n;
		size -= n;
		put32(pg, 0x4d424544u);
		memcpy(pg + 40, tag, 8);
		put32(pg + 4, crc32c(0, pg + 8, page_crc_len(pg)));
	}
	if (bdev_write(bd, img, 0, image_len, done_cb, &wr))
		abort();
	run(&wr);
	free(img);
	struct w x = {0};
	int rc = blob_store_load(bd, bs_cb, &x);
	if (rc == 0) {
		run(&x);
		if (x.status == 0) {
			if (blob_store_check(x.bs) != 0)
				abort(); /* accepted an inconsistent store */
			struct w u = {0};
			if (blob_store_unload(x.bs, done_cb, &u) == 0)
				run(&u);
		}
	}
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	if (size < 1)
		return 0;
	uint8_t mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		uint8_t page[PAGE];
		memset(page, 0, sizeof(page));
		memcpy(page, data, size < PAGE ? size : PAGE);
		(void)blob_md_page_check(page, PAGE);
		/* with a valid checksum too, so the stream parser is reached */
		put32(page, 0x4d424544u);
		put32(page + 4, crc32c(0, page + 8, page_crc_len(page)));
		(void)blob_md_page_check(page, PAGE);
	} else if (mode == 1) {
		(void)blob_md_stream_check(data, size);
	} else {
		fuzz_store(data, size);
	}
	return 0;
}
