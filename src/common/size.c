/* size.c: human-readable sizes (powers of 2) to bytes and back. */
#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *suffix;
	unsigned shift;
} size_units[] = {
	{ "", 0 },    { "b", 0 },    { "k", 10 },  { "kb", 10 }, { "kib", 10 },
	{ "m", 20 },  { "mb", 20 },  { "mib", 20 }, { "g", 30 }, { "gb", 30 },
	{ "gib", 30 }, { "t", 40 },  { "tb", 40 }, { "tib", 40 }, { "p", 50 },
	{ "pb", 50 }, { "pib", 50 },
};

int size_parse(const char *s, uint64_t *out)
{
	uint64_t whole = 0, frac = 0, frac_div = 1;
	const char *p = s;
	int shift = -1;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL; /* empty, negative, or junk */
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (whole > (UINT64_MAX - d) / 10)
			return -ERANGE;
		whole = whole * 10 + d;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (frac_div >= 1000000000000ull)
				return -EINVAL; /* absurd precision */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	size_t n = strlen(p);
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	for (size_t i = 0; i < COMMON_ARRAY_SIZE(size_units); i++) {
		if (strlen(size_units[i].suffix) == n && strncasecmp(p, size_units[i].suffix, n) == 0) {
			shift = (int)size_units[i].shift;
			break;
		}
	}
	if (shift < 0)
		return -EINVAL;
	if (shift > 0 && whole > (UINT64_MAX >> shift))
		return -ERANGE;
	uint64_t bytes = whole << shift;
	if (frac) {
		/* The fraction must come out as whole bytes: 1.5K ok, 1.3B not. */
		unsigned __int128 f = ((unsigned __int128)frac << shift);
		if (f % frac_div)
			return -EINVAL;
		uint64_t add = (uint64_t)(f / frac_div);
		if (bytes > UINT64_MAX - add)
			return -ERANGE;
		bytes += add;
	}
	*out = bytes;
	return 0;
}

char *size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	double v = (double)bytes;

	while (v >= 1024.0 && i + 1 < COMMON_ARRAY_SIZE(names)) {
		v /= 1024.0;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else if (bytes % (1ull << (10 * i)) == 0)
		snprintf(buf, len, "%llu %s", (unsigned long long)(bytes >> (10 * i)), names[i]);
	else
		snprintf(buf, len, "%.1f %s", v, names[i]);
	return buf;
}
