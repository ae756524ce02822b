/*
 * fuzz_json_framer.c: differential libFuzzer target for the stream framer:
 * the values and the final verdict must be the same whether the input
 * arrives whole or cut at two fuzzer-chosen offsets, and every value must
 * survive an encode/parse round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "json/json.h"

struct result {
	char *vals[64];
	int n;
	int verdict;
};

static void run(const uint8_t *d, size_t len, const size_t *cuts, int ncuts, struct result *r)
{
	struct json_framer *f;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	if (json_framer_create(1024, &f))
		abort();
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		json_t *v;
		int rc;

		if (json_framer_feed(f, d + pos, end - pos))
			abort();
		pos = end;
		while ((rc = json_framer_next(f, &v, NULL, NULL)) == 1) {
			char *s = json_encode_dup(v);
			json_error_t e;
			json_t *back = json_loads(s, JSON_DECODE_ANY, &e);

			if (!back || !json_equal(back, v))
				abort();
			json_decref(back);
			json_decref(v);
			if (r->n < 64)
				r->vals[r->n++] = s;
			else
				mem_free(s);
		}
		r->verdict = rc;
		if (rc < 0)
			break;
	}
	json_framer_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result a, b;
	size_t cuts[2];

	if (size < 2)
		return 0;
	cuts[0] = data[0] % (size - 1);
	cuts[1] = cuts[0] + data[1] % (size - 1 - cuts[0] + 1);
	data += 2;
	size -= 2;
	if (cuts[1] > size)
		cuts[1] = size;
	if (cuts[0] > cuts[1])
		cuts[0] = cuts[1];
	run(data, size, NULL, 0, &a);
	run(data, size, cuts, 2, &b);
	/* An error stops at the first bad value either way; a split input may
	 * have hit the size bound earlier than the whole one did not, so
	 * compare values only up to the shorter list and verdicts only when
	 * neither is an error. */
	for (int i = 0; i < COMMON_MIN(a.n, b.n); i++)
		if (strcmp(a.vals[i], b.vals[i]))
			abort();
	if (a.verdict >= 0 && b.verdict >= 0 && a.n != b.n)
		abort();
	if ((a.verdict == -22) != (b.verdict == -22) && a.verdict != -90 && b.verdict != -90)
		abort();
	for (int i = 0; i < a.n; i++)
		mem_free(a.vals[i]);
	for (int i = 0; i < b.n; i++)
		mem_free(b.vals[i]);
	return 0;
}
