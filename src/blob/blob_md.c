/*
 * blob_md.c: encoding and decoding of the on-disk structures of the
 * blobstore (super block, metadata pages and their descriptor stream), plus
 * the small helpers (bitmaps, waiter locks) the rest of src/blob uses.
 * Every decoder bounds-checks against its input: fuzzed by fuzz-blob-md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"

/* ------------------------------------------------------ dma buffers */

/* I/O buffers aligned for O_DIRECT files. */
void *bs_dma_alloc(size_t len)
{
	void *p = NULL;
	if (posix_memalign(&p, BLOB_PAGE_SIZE, len ? len : BLOB_PAGE_SIZE) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

void bs_dma_free(void *p)
{
	free(p);
}

/* ------------------------------------------------------ byte helpers */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* ------------------------------------------------------- super block */

void bs_super_encode(const struct bs_super *s, uint8_t *page)
{
	memset(page, 0, BLOB_PAGE_SIZE);
	memcpy(page, BS_SUPER_MAGIC, 8);
	put32(page + 8, s->version);
	put32(page + 12, s->flags);
	put64(page + 16, s->cluster_size);
	put64(page + 24, s->total_clusters);
	put32(page + 32, s->page_size);
	put32(page + 36, s->io_unit);
	put64(page + 40, s->cluster_mask_start);
	put32(page + 48, s->cluster_mask_pages);
	put32(page + 52, s->page_mask_pages);
	put64(page + 56, s->page_mask_start);
	put64(page + 64, s->id_mask_start);
	put32(page + 72, s->id_mask_pages);
	put64(page + 80, s->md_start);
	put64(page + 88, s->md_pages);
	put64(page + 96, s->reserved_clusters);
	put64(page + 104, s->next_seq);
	put64(page + 112, s->super_seq);
	put32(page + 120, s->cluster_mask_crc);
	put32(page + 124, s->page_mask_crc);
	put32(page + 128, s->id_mask_crc);
	memcpy(page + 136, s->uuid, 16);
	memcpy(page + 152, s->name, BLOB_STORE_NAME_MAX);
	put32(page + BS_SUPER_CRC_OFF, crc32c(0, page, BS_SUPER_CRC_OFF));
}

int bs_super_decode(const uint8_t *page, struct bs_super *s)
{
	if (memcmp(page, BS_SUPER_MAGIC, 8) != 0)
		return -EILSEQ;
	if (get32(page + BS_SUPER_CRC_OFF) != crc32c(0, page, BS_SUPER_CRC_OFF))
		return -EILSEQ;
	memset(s, 0, sizeof(*s));
	s->version = get32(page + 8);
	s->flags = get32(page + 12);
	s->cluster_size = get64(page + 16);
	s->total_clusters = get64(page + 24);
	s->page_size = get32(page + 32);
	s->io_unit = get32(page + 36);
	s->cluster_mask_start = get64(page + 40);
	s->cluster_mask_pages = get32(page + 48);
	s->page_mask_pages = get32(page + 52);
	s->page_mask_start = get64(page + 56);
	s->id_mask_start = get64(page + 64);
	s->id_mask_pages = get32(page + 72);
	s->md_start = get64(page + 80);
	s->md_pages = get64(page + 88);
	s->reserved_clusters = get64(page + 96);
	s->next_seq = get64(page + 104);
	s->super_seq = get64(page + 112);
	s->cluster_mask_crc = get32(page + 120);
	s->page_mask_crc = get32(page + 124);
	s->id_mask_crc = get32(page + 128);
	memcpy(s->uuid, page + 136, 16);
	memcpy(s->name, page + 152, BLOB_STORE_NAME_MAX);
	s->name[BLOB_STORE_NAME_MAX - 1] = '\0';
	if (s->version != BS_VERSION || s->page_size != BLOB_PAGE_SIZE)
		return -EILSEQ;
	if (s->cluster_size < BLOB_PAGE_SIZE || (s->cluster_size & (s->cluster_size - 1)) != 0 ||
	    s->cluster_size > (1ull << 30))
		return -EILSEQ;
	if (s->io_unit == 0 || s->io_unit > BLOB_PAGE_SIZE || BLOB_PAGE_SIZE % s->io_unit != 0)
		return -EILSEQ;
	if (s->md_pages == 0 || s->md_pages > UINT32_MAX || s->cluster_mask_pages == 0 ||
	    s->page_mask_pages == 0 || s->id_mask_pages == 0)
		return -EILSEQ;
	uint64_t cap = ((uint64_t)s->cluster_mask_pages * BLOB_PAGE_SIZE - BS_MASK_HDR) * 8;
	if (s->total_clusters > cap || s->reserved_clusters > s->total_clusters)
		return -EILSEQ;
	uint64_t md_end_bytes = (s->md_start + s->md_pages) * BLOB_PAGE_SIZE;
	if (s->md_start == 0 || md_end_bytes > s->reserved_clusters * s->cluster_size)
		return -EILSEQ;
	return 0;
}

/* --------------------------------------------------- metadata pages */

int bs_md_page_decode(const uint8_t *page, struct bs_md_hdr *hdr)
{
	if (get32(page) != BS_MD_MAGIC)
		return -EILSEQ;
	uint32_t plen = get32(page + 32);
	if (plen > BS_MD_PAYLOAD || get32(page + 4) != crc32c(0, page + 8, BS_MD_HDR - 8 + plen))
		return -EILSEQ;
	hdr->tag = get64(page + 40);
	hdr->id = get64(page + 8);
	hdr->seq = get64(page + 16);
	hdr->index = get32(page + 24);
	hdr->count = get32(page + 28);
	hdr->payload_len = get32(page + 32);
	if (hdr->count == 0 || hdr->index >= hdr->count || hdr->payload_len > BS_MD_PAYLOAD ||
	    hdr->seq == 0 || hdr->id == BLOB_ID_NONE)
		return -EILSEQ;
	return 0;
}

static size_t desc_size_extents(const struct bs_md_state *st, unsigned *nruns)
{
	unsigned n = 0;
	for (uint64_t i = 0; i < st->num_clusters; i++) {
		if (st->clusters[i] == 0)
			continue;
		if (i > 0 && st->clusters[i - 1] != 0 && st->clusters[i] == st->clusters[i - 1] + 1)
			continue;
		n++;
	}
	*nruns = n;
	return n ? 5 + (size_t)n * 12 : 0;
}

int bs_md_encode(const struct bs_md_state *st, uint64_t tag, uint64_t id, uint64_t seq, uint8_t **pages_out,
		 unsigned *npages_out)
{
	unsigned nruns;
	size_t len = 5 + 28;
	len += desc_size_extents(st, &nruns);
	for (unsigned i = 0; i < st->nxattrs; i++)
		len += 5 + 4 + strlen(st->xattrs[i].name) + st->xattrs[i].len;
	if (st->nmembers)
		len += 5 + 8 * (size_t)st->nmembers;
	if (st->nkills)
		len += 5 + 8 * (size_t)st->nkills;

	uint8_t *stream = mem_alloc(len);
	if (!stream)
		return -ENOMEM;
	uint8_t *p = stream;
	p[0] = BS_DESC_BLOB; put32(p + 1, 28);
	put32(p + 5, st->flags);
	put64(p + 9, st->num_clusters);
	put64(p + 17, st->parent_id);
	put64(p + 25, st->create_seq);
	p += 33;
	if (nruns) {
		p[0] = BS_DESC_EXTENTS; put32(p + 1, nruns * 12);
		p += 5;
		for (uint64_t i = 0; i < st->num_clusters;) {
			if (st->clusters[i] == 0) {
				i++;
				continue;
			}
			uint64_t j = i + 1;
			while (j < st->num_clusters && st->clusters[j] == st->clusters[j - 1] + 1 &&
			       st->clusters[j - 1] != 0)
				j++;
			put32(p, (uint32_t)i); put32(p + 4, st->clusters[i]); put32(p + 8, (uint32_t)(j - i));
			p += 12;
			i = j;
		}
	}
	for (unsigned i = 0; i < st->nxattrs; i++) {
		size_t nl = strlen(st->xattrs[i].name);
		p[0] = BS_DESC_XATTR; put32(p + 1, (uint32_t)(4 + nl + st->xattrs[i].len));
		put16(p + 5, (uint16_t)nl); put16(p + 7, (uint16_t)st->xattrs[i].len);
		memcpy(p + 9, st->xattrs[i].name, nl);
		if (st->xattrs[i].len)
			memcpy(p + 9 + nl, st->xattrs[i].value, st->xattrs[i].len);
		p += 9 + nl + st->xattrs[i].len;
	}
	if (st->nmembers) {
		p[0] = BS_DESC_TXN; put32(p + 1, 8 * st->nmembers);
		for (unsigned i = 0; i < st->nmembers; i++)
			put64(p + 5 + 8 * i, st->members[i]);
		p += 5 + 8 * (size_t)st->nmembers;
	}
	if (st->nkills) {
		p[0] = BS_DESC_KILLS; put32(p + 1, 8 * st->nkills);
		for (unsigned i = 0; i < st->nkills; i++)
			put64(p + 5 + 8 * i, st->kills[i]);
		p += 5 + 8 * (size_t)st->nkills;
	}

	unsigned npages = (unsigned)COMMON_DIV_ROUND_UP(len, BS_MD_PAYLOAD);
	uint8_t *pages = bs_dma_alloc((size_t)npages * BLOB_PAGE_SIZE);
	if (!pages) {
		mem_free(stream);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < npages; i++) {
		uint8_t *pg = pages + (size_t)i * BLOB_PAGE_SIZE;
		size_t off = (size_t)i * BS_MD_PAYLOAD;
		size_t n = COMMON_MIN(BS_MD_PAYLOAD, len - off);
		memset(pg, 0, BLOB_PAGE_SIZE);
		put32(pg, BS_MD_MAGIC);
		put64(pg + 40, tag);
		put64(pg + 8, id);
		put64(pg + 16, seq);
		put32(pg + 24, i);
		put32(pg + 28, npages);
		put32(pg + 32, (uint32_t)n);
		memcpy(pg + BS_MD_HDR, stream + off, n);
		put32(pg + 4, crc32c(0, pg + 8, BS_MD_HDR - 8 + n));
	}
	mem_free(stream);
	*pages_out = pages;
	*npages_out = npages;
	return 0;
}

void bs_md_state_clear(struct bs_md_state *st)
{
	mem_free(st->clusters);
	for (unsigned i = 0; i < st->nxattrs; i++) {
		mem_free(st->xattrs[i].name);
		mem_free(st->xattrs[i].value);
	}
	mem_free(st->xattrs);
	mem_free(st->members);
	mem_free(st->kills);
	memset(st, 0, sizeof(*st));
}

/* Upper bound of clusters in one blob: keeps a hostile page from making us
 * allocate absurd arrays (2^32 clusters is the extent format's limit). */
#define BS_MAX_BLOB_CLUSTERS (1ull << 26)

static int decode_ids(const uint8_t *p, uint32_t dlen, uint64_t **out, unsigned *n)
{
	if (dlen % 8 != 0 || *out)
		return -EILSEQ;
	unsigned cnt = dlen / 8;
	if (cnt == 0)
		return 0;
	uint64_t *v = mem_alloc(sizeof(*v) * cnt);
	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < cnt; i++)
		v[i] = get64(p + 8 * i);
	*out = v;
	*n = cnt;
	return 0;
}

int bs_md_stream_decode(const uint8_t *buf, size_t len, struct bs_md_state *st)
{
	memset(st, 0, sizeof(*st));
	size_t off = 0;
	bool have_blob = false;
	int rc = -EILSEQ;

	while (off < len) {
		if (len - off < 5)
			goto fail;
		uint8_t type = buf[off];
		uint32_t dlen = get32(buf + off + 1);
		if (dlen > len - off - 5)
			goto fail;
		const uint8_t *d = buf + off + 5;
		switch (type) {
		case BS_DESC_BLOB:
			if (have_blob || dlen != 28)
				goto fail;
			have_blob = true;
			st->flags = get32(d);
			st->num_clusters = get64(d + 4);
			st->parent_id = get64(d + 12);
			st->create_seq = get64(d + 20);
			if ((st->flags & ~BS_F_KNOWN) || st->num_clusters > BS_MAX_BLOB_CLUSTERS)
				goto fail;
			if (st->num_clusters) {
				/* num_clusters may be huge for a thin blob; the
				 * array is what a real blob of that size needs. */
				st->clusters = mem_zalloc(sizeof(uint32_t) * st->num_clusters);
				if (!st->clusters) {
					rc = -ENOMEM;
					goto fail;
				}
			}
			break;
		case BS_DESC_EXTENTS:
			if (!have_blob || dlen % 12 != 0)
				goto fail;
			for (uint32_t i = 0; i < dlen / 12; i++) {
				uint64_t ls = get32(d + 12 * i), ps = get32(d + 12 * i + 4);
				uint64_t cnt = get32(d + 12 * i + 8);
				if (cnt == 0 || ps == 0 || ls + cnt > st->num_clusters || ps + cnt > UINT32_MAX)
					goto fail;
				for (uint64_t k = 0; k < cnt; k++) {
					if (st->clusters[ls + k] != 0)
						goto fail;
					st->clusters[ls + k] = (uint32_t)(ps + k);
				}
			}
			break;
		case BS_DESC_XATTR: {
			if (dlen < 4)
				goto fail;
			uint16_t nl = get16(d), vl = get16(d + 2);
			if (nl == 0 || nl > BLOB_XATTR_NAME_MAX || vl > BLOB_XATTR_VALUE_MAX ||
			    (uint32_t)nl + vl + 4 != dlen || memchr(d + 4, '\0', nl))
				goto fail;
			struct bs_xattr *nx = mem_realloc(st->xattrs, sizeof(*nx) * (st->nxattrs + 1));
			if (!nx) {
				rc = -ENOMEM;
				goto fail;
			}
			st->xattrs = nx;
			struct bs_xattr *x = &nx[st->nxattrs];
			x->name = mem_strndup((const char *)d + 4, nl);
			x->value = mem_alloc(vl ? vl : 1);
			x->len = vl;
			if (!x->name || !x->value) {
				mem_free(x->name);
				mem_free(x->value);
				rc = -ENOMEM;
				goto fail;
			}
			memcpy(x->value, d + 4 + nl, vl);
			st->nxattrs++;
			break;
		}
		case BS_DESC_TXN:
			rc = decode_ids(d, dlen, &st->members, &st->nmembers);
			if (rc)
				goto fail;
			rc = -EILSEQ;
			break;
		case BS_DESC_KILLS:
			rc = decode_ids(d, dlen, &st->kills, &st->nkills);
			if (rc)
				goto fail;
			rc = -EILSEQ;
			break;
		default:
			goto fail;
		}
		off += 5 + (size_t)dlen;
	}
	if (!have_blob)
		goto fail;
	return 0;
fail:
	bs_md_state_clear(st);
	return rc;
}

int blob_md_page_check(const void *page, size_t len)
{
	struct bs_md_hdr h;
	if (len != BLOB_PAGE_SIZE)
		return -EILSEQ;
	int rc = bs_md_page_decode(page, &h);
	if (rc)
		return rc;
	if (h.count == 1) {
		struct bs_md_state st;
		rc = bs_md_stream_decode((const uint8_t *)page + BS_MD_HDR, h.payload_len, &st);
		if (rc == 0)
			bs_md_state_clear(&st);
	}
	return rc;
}

int blob_md_stream_check(const void *buf, size_t len)
{
	struct bs_md_state st;
	int rc = bs_md_stream_decode(buf, len, &st);
	if (rc == 0)
		bs_md_state_clear(&st);
	return rc;
}

/* ---------------------------------------------------------- bitmap */

int bs_bitmap_init(struct bs_bitmap *bm, uint64_t nbits)
{
	memset(bm, 0, sizeof(*bm));
	return bs_bitmap_resize(bm, nbits);
}

int bs_bitmap_resize(struct bs_bitmap *bm, uint64_t nbits)
{
	uint64_t oldw = COMMON_DIV_ROUND_UP(bm->nbits, 64), neww = COMMON_DIV_ROUND_UP(nbits, 64);
	if (nbits < bm->nbits)
		return -EINVAL;
	if (neww != oldw || !bm->words) {
		uint64_t *w = mem_realloc(bm->words, sizeof(uint64_t) * (neww ? neww : 1));
		if (!w)
			return -ENOMEM;
		memset(w + oldw, 0, sizeof(uint64_t) * ((neww ? neww : 1) - oldw));
		bm->words = w;
	}
	bm->nbits = nbits;
	return 0;
}

void bs_bitmap_fini(struct bs_bitmap *bm)
{
	mem_free(bm->words);
	memset(bm, 0, sizeof(*bm));
}

bool bs_bitmap_get(const struct bs_bitmap *bm, uint64_t i)
{
	return i < bm->nbits && (bm->words[i / 64] >> (i % 64)) & 1;
}

void bs_bitmap_set(struct bs_bitmap *bm, uint64_t i)
{
	if (!bs_bitmap_get(bm, i)) {
		bm->words[i / 64] |= 1ull << (i % 64);
		bm->nset++;
	}
}

void bs_bitmap_clear(struct bs_bitmap *bm, uint64_t i)
{
	if (bs_bitmap_get(bm, i)) {
		bm->words[i / 64] &= ~(1ull << (i % 64));
		bm->nset--;
	}
}

static uint64_t find_clear_range(const struct bs_bitmap *bm, uint64_t from, uint64_t to)
{
	uint64_t i = from;
	while (i < to) {
		uint64_t w = bm->words[i / 64];
		if (w == UINT64_MAX && i % 64 == 0) {
			i += 64;
			continue;
		}
		if (!((w >> (i % 64)) & 1))
			return i;
		i++;
	}
	return UINT64_MAX;
}

uint64_t bs_bitmap_find_clear(const struct bs_bitmap *bm, uint64_t from)
{
	if (bm->nset >= bm->nbits)
		return UINT64_MAX;
	if (from >= bm->nbits)
		from = 0;
	uint64_t r = find_clear_range(bm, from, bm->nbits);
	if (r == UINT64_MAX)
		r = find_clear_range(bm, 0, from);
	return r;
}

/* ------------------------------------------------------------ lock */

int bs_lock_acquire(struct bs_lock *lock, void (*fn)(void *), void *arg)
{
	if (!lock->held) {
		lock->held = true;
		fn(arg);
		return 0;
	}
	struct bs_waiter *w = mem_zalloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	if (lock->tail)
		lock->tail->next = w;
	else
		lock->head = w;
	lock->tail = w;
	return 0;
}

void bs_lock_release(struct bs_lock *lock)
{
	struct bs_waiter *w = lock->head;
	if (!w) {
		lock->held = false;
		return;
	}
	lock->head = w->next;
	if (!lock->head)
		lock->tail = NULL;
	void (*fn)(void *) = w->fn;
	void *arg = w->arg;
	mem_free(w);
	fn(arg);
}
