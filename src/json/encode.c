/*
 * encode.c: the growable byte buffer and compact JSON encoding the way
 * SPDK's JSON writer produces it: no spaces, object keys in insertion order,
 * strings with \" \\ \b \f \n \r \t escapes, every other code point outside
 * 0x20..0x7E as \uXXXX (upper-case hex; surrogate pairs above U+FFFF), and
 * the JSON-RPC envelopes {"jsonrpc":"2.0","id":...,"result"|"error":...}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "json/json.h"

/* --------------------------------------------------------------- buf */

int json_buf_reserve(struct json_buf *b, size_t extra)
{
	size_t cap;
	char *nd;

	if (b->cap - b->len > extra)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len <= extra) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	nd = mem_realloc(b->data, cap);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->cap = cap;
	return 0;
}

int json_buf_append(struct json_buf *b, const void *data, size_t len)
{
	if (json_buf_reserve(b, len))
		return -ENOMEM;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int json_buf_append_str(struct json_buf *b, const char *s)
{
	return json_buf_append(b, s, strlen(s));
}

int json_buf_printf(struct json_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (json_buf_reserve(b, (size_t)n + 1))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void json_buf_consume(struct json_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

const char *json_buf_cstr(struct json_buf *b)
{
	if (json_buf_reserve(b, 1))
		return NULL;
	b->data[b->len] = '\0';
	return b->data;
}

void json_buf_reset(struct json_buf *b)
{
	b->len = 0;
}

void json_buf_free(struct json_buf *b)
{
	mem_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* ------------------------------------------------------------ encode */

static const char hex_upper[] = "0123456789ABCDEF";

static void put_u4(char *p, unsigned v)
{
	p[0] = '\\';
	p[1] = 'u';
	p[2] = hex_upper[(v >> 12) & 0xF];
	p[3] = hex_upper[(v >> 8) & 0xF];
	p[4] = hex_upper[(v >> 4) & 0xF];
	p[5] = hex_upper[v & 0xF];
}

/* Length of a valid UTF-8 sequence at p (1..4) and its code point, or 0. */
static int utf8_decode(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	unsigned char c = p[0];
	int n, i;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		v = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (end - p < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
	    (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

int json_encode_string(struct json_buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	if (json_buf_reserve(b, len + 2))
		return -ENOMEM;
	b->data[b->len++] = '"';
	while (p < end) {
		const unsigned char *run = p;
		char esc[12];
		size_t esc_len;
		uint32_t cp;
		int n;

		while (p < end && *p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
			p++;
		if (p > run && json_buf_append(b, run, (size_t)(p - run)))
			return -ENOMEM;
		if (p == end)
			break;
		n = utf8_decode(p, end, &cp);
		if (n == 0) {
			cp = *p; /* not UTF-8: escape the byte itself */
			n = 1;
		}
		p += n;
		esc[0] = '\\';
		esc_len = 2;
		switch (cp) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			if (cp < 0x10000) {
				put_u4(esc, cp);
				esc_len = 6;
			} else {
				uint32_t v = cp - 0x10000;

				put_u4(esc, 0xD800 + (v >> 10));
				put_u4(esc + 6, 0xDC00 + (v & 0x3FF));
				esc_len = 12;
			}
		}
		if (json_buf_append(b, esc, esc_len))
			return -ENOMEM;
	}
	return json_buf_append(b, "\"", 1);
}

static int encode_real(struct json_buf *b, double d)
{
	char tmp[64];
	int n;

	n = snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		n = snprintf(tmp, sizeof(tmp), "%.17g", d);
	if (!strpbrk(tmp, ".eEn") && n + 2 < (int)sizeof(tmp)) {
		tmp[n++] = '.';
		tmp[n++] = '0';
		tmp[n] = '\0';
	}
	return json_buf_append(b, tmp, (size_t)n);
}

static int encode_int(struct json_buf *b, long long v)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return json_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

int json_encode_value(struct json_buf *b, const json_t *v)
{
	if (!v)
		return json_buf_append(b, "null", 4);
	switch (json_typeof(v)) {
	case JSON_NULL:
		return json_buf_append(b, "null", 4);
	case JSON_TRUE:
		return json_buf_append(b, "true", 4);
	case JSON_FALSE:
		return json_buf_append(b, "false", 5);
	case JSON_INTEGER:
		return encode_int(b, (long long)json_integer_value(v));
	case JSON_REAL:
		return encode_real(b, json_real_value(v));
	case JSON_STRING:
		return json_encode_string(b, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		size_t i, n = json_array_size(v);

		if (json_buf_append(b, "[", 1))
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			if (i && json_buf_append(b, ",", 1))
				return -ENOMEM;
			if (json_encode_value(b, json_array_get(v, i)))
				return -ENOMEM;
		}
		return json_buf_append(b, "]", 1);
	}
	case JSON_OBJECT: {
		void *it = json_object_iter((json_t *)v);
		bool first = true;

		if (json_buf_append(b, "{", 1))
			return -ENOMEM;
		for (; it; it = json_object_iter_next((json_t *)v, it)) {
			const char *k = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
			size_t klen = json_object_iter_key_len(it);
#else
			size_t klen = strlen(k);
#endif
			if (!first && json_buf_append(b, ",", 1))
				return -ENOMEM;
			first = false;
			if (json_encode_string(b, k, klen) || json_buf_append(b, ":", 1) ||
			    json_encode_value(b, json_object_iter_value(it)))
				return -ENOMEM;
		}
		return json_buf_append(b, "}", 1);
	}
	}
	return -EINVAL;
}

char *json_encode_dup(const json_t *v)
{
	struct json_buf b = {0};

	if (json_encode_value(&b, v) || !json_buf_cstr(&b)) {
		json_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int encode_envelope(struct json_buf *b, const json_t *id)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";

	if (json_buf_append(b, head, sizeof(head) - 1))
		return -ENOMEM;
	return json_encode_value(b, id);
}

int json_encode_rpc_result(struct json_buf *b, const json_t *id, const json_t *result)
{
	size_t mark = b->len;

	if (encode_envelope(b, id) || json_buf_append(b, ",\"result\":", 10) ||
	    json_encode_value(b, result) || json_buf_append(b, "}", 1)) {
		b->len = mark;
		return -ENOMEM;
	}
	return 0;
}

int json_encode_rpc_error(struct json_buf *b, const json_t *id, int code, const char *message)
{
	size_t mark = b->len;

	if (!message)
		message = "";
	if (encode_envelope(b, id) || json_buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code) ||
	    json_encode_string(b, message, strlen(message)) || json_buf_append(b, "}}", 2)) {
		b->len = mark;
		return -ENOMEM;
	}
	return 0;
}

int json_encode_rpc_request(struct json_buf *b, const char *method, const json_t *id,
			    const json_t *params)
{
	size_t mark = b->len;

	if (json_buf_append_str(b, "{\"jsonrpc\":\"2.0\",\"method\":") ||
	    json_encode_string(b, method, strlen(method)))
		goto fail;
	if (id && (json_buf_append(b, ",\"id\":", 6) || json_encode_value(b, id)))
		goto fail;
	if (params && (json_buf_append(b, ",\"params\":", 10) || json_encode_value(b, params)))
		goto fail;
	if (json_buf_append(b, "}", 1))
		goto fail;
	return 0;
fail:
	b->len = mark;
	return -ENOMEM;
}
