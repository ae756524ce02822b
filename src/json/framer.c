/*
 * framer.c: splits a byte stream of concatenated JSON values into values.
 *
 * A small pushdown automaton validates the JSON grammar one byte at a time
 * and remembers where it stopped, so bytes are scanned exactly once however
 * the input is split across reads. It tells "incomplete" (wait for more)
 * from "invalid" (the stream cannot be resynchronised). When it sees the end
 * of a top-level value, jansson parses exactly that slice.
 *
 * Buffer: [0, consumed) already returned, [value_start, scan) the value
 * being scanned, [scan, len) not scanned yet. Returned bytes are dropped
 * (memmove of the unscanned tail) only when new input arrives, so many
 * values per read cost one move, and a large value received in many reads
 * is never moved more than once.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "json/json.h"

enum scan_state {
	S_TOP,         /* between top-level values */
	S_VALUE,       /* a value must start here (after ':' or ',' in an array) */
	S_ARRAY_FIRST, /* after '[': a value or ']' */
	S_OBJ_FIRST,   /* after '{': a key or '}' */
	S_OBJ_KEY,     /* after ',' in an object: a key */
	S_COLON,       /* after a key */
	S_AFTER,       /* after a value inside a container: ',' or the closer */
	S_STR,         /* inside a string */
	S_STR_ESC,     /* after a backslash */
	S_STR_U,       /* inside \uXXXX (u_left hex digits to go) */
	S_NUM_MINUS,   /* after '-' */
	S_NUM_ZERO,    /* a leading 0 */
	S_NUM_INT,     /* integer digits */
	S_NUM_DOT,     /* after '.' */
	S_NUM_FRAC,    /* fraction digits */
	S_NUM_E,       /* after 'e' */
	S_NUM_ESIGN,   /* after 'e+' / 'e-' */
	S_NUM_EXP,     /* exponent digits */
	S_LIT,         /* inside true / false / null */
};

struct json_framer {
	char *buf;
	size_t len;
	size_t cap;
	size_t consumed;
	size_t scan;
	size_t value_start;
	size_t max_value;
	int error;

	enum scan_state state;
	bool str_is_key;
	unsigned u_left;
	const char *lit;  /* the literal being matched */
	unsigned lit_pos; /* next char of lit to match */
	unsigned depth;
	uint8_t stack[JSON_FRAME_MAX_DEPTH]; /* 1 = object, 0 = array */
};

int json_framer_create(size_t max_value, struct json_framer **out)
{
	struct json_framer *f = mem_zalloc(sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->max_value = max_value ? max_value : JSON_FRAME_MAX_DEFAULT;
	f->state = S_TOP;
	*out = f;
	return 0;
}

void json_framer_destroy(struct json_framer *f)
{
	if (!f)
		return;
	mem_free(f->buf);
	mem_free(f);
}

size_t json_framer_pending(const struct json_framer *f)
{
	return f->len - f->consumed;
}

int json_framer_error(const struct json_framer *f)
{
	return f->error;
}

size_t json_framer_max_value(const struct json_framer *f)
{
	return f->max_value;
}

/* Drops returned bytes from the front. */
static void framer_compact(struct json_framer *f)
{
	size_t n = f->consumed;

	if (n == 0)
		return;
	memmove(f->buf, f->buf + n, f->len - n);
	f->len -= n;
	f->scan -= n;
	f->value_start = f->value_start >= n ? f->value_start - n : 0;
	f->consumed = 0;
}

void *json_framer_space(struct json_framer *f, size_t want)
{
	if (want == 0)
		want = 1;
	framer_compact(f);
	/* Give back the memory of a big value once it has been taken out. */
	if (f->len == 0 && f->cap > (256u << 10) && want <= (64u << 10)) {
		mem_free(f->buf);
		f->buf = NULL;
		f->cap = 0;
	}
	if (f->cap - f->len < want) {
		size_t cap = f->cap ? f->cap : 4096;
		char *nb;

		while (cap - f->len < want)
			cap *= 2;
		nb = mem_realloc(f->buf, cap);
		if (!nb)
			return NULL;
		f->buf = nb;
		f->cap = cap;
	}
	return f->buf + f->len;
}

void json_framer_commit(struct json_framer *f, size_t n)
{
	f->len += n;
}

int json_framer_feed(struct json_framer *f, const void *data, size_t len)
{
	void *p;

	if (len == 0)
		return 0;
	p = json_framer_space(f, len);
	if (!p)
		return -ENOMEM;
	memcpy(p, data, len);
	json_framer_commit(f, len);
	return 0;
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A value just ended (its last byte was consumed). Returns true when it was
 * a top-level value. */
static bool value_done(struct json_framer *f)
{
	if (f->depth == 0) {
		f->state = S_TOP;
		return true;
	}
	f->state = S_AFTER;
	return false;
}

/* Starts a value at byte c. Returns 0, or -EINVAL if c cannot start one. */
static int value_begin(struct json_framer *f, unsigned char c)
{
	switch (c) {
	case '{':
	case '[':
		if (f->depth >= JSON_FRAME_MAX_DEPTH)
			return -EINVAL;
		f->stack[f->depth++] = c == '{';
		f->state = c == '{' ? S_OBJ_FIRST : S_ARRAY_FIRST;
		return 0;
	case '"':
		f->str_is_key = false;
		f->state = S_STR;
		return 0;
	case '-':
		f->state = S_NUM_MINUS;
		return 0;
	case '0':
		f->state = S_NUM_ZERO;
		return 0;
	case 't':
		f->lit = "true";
		break;
	case 'f':
		f->lit = "false";
		break;
	case 'n':
		f->lit = "null";
		break;
	default:
		if (c >= '1' && c <= '9') {
			f->state = S_NUM_INT;
			return 0;
		}
		return -EINVAL;
	}
	f->lit_pos = 1;
	f->state = S_LIT;
	return 0;
}

/* Closes the innermost container with c (']' or '}'). */
static int container_end(struct json_framer *f, unsigned char c)
{
	if (f->depth == 0 || f->stack[f->depth - 1] != (c == '}'))
		return -EINVAL;
	f->depth--;
	return 0;
}

/*
 * Scans from f->scan. Returns 1 with *end set (one past the value's last
 * byte) when a top-level value is complete, 0 when the input ran out,
 * -EINVAL on a grammar error.
 */
static int framer_scan(struct json_framer *f, size_t *end)
{
	while (f->scan < f->len) {
		size_t pos = f->scan;
		unsigned char c = (unsigned char)f->buf[pos];

		switch (f->state) {
		case S_TOP:
			if (is_ws(c)) {
				f->scan++;
				f->consumed = f->scan; /* skip whitespace for good */
				continue;
			}
			f->value_start = pos;
			if (value_begin(f, c))
				return -EINVAL;
			break;
		case S_VALUE:
			if (is_ws(c))
				break;
			if (value_begin(f, c))
				return -EINVAL;
			break;
		case S_ARRAY_FIRST:
			if (is_ws(c))
				break;
			if (c == ']') {
				f->depth--;
				f->scan++;
				if (value_done(f)) {
					*end = f->scan;
					return 1;
				}
				continue;
			}
			if (value_begin(f, c))
				return -EINVAL;
			break;
		case S_OBJ_FIRST:
		case S_OBJ_KEY:
			if (is_ws(c))
				break;
			if (c == '}' && f->state == S_OBJ_FIRST) {
				f->depth--;
				f->scan++;
				if (value_done(f)) {
					*end = f->scan;
					return 1;
				}
				continue;
			}
			if (c != '"')
				return -EINVAL;
			f->str_is_key = true;
			f->state = S_STR;
			break;
		case S_COLON:
			if (is_ws(c))
				break;
			if (c != ':')
				return -EINVAL;
			f->state = S_VALUE;
			break;
		case S_AFTER:
			if (is_ws(c))
				break;
			if (c == ',') {
				f->state = f->stack[f->depth - 1] ? S_OBJ_KEY : S_VALUE;
				break;
			}
			if (c == ']' || c == '}') {
				if (container_end(f, c))
					return -EINVAL;
				f->scan++;
				if (value_done(f)) {
					*end = f->scan;
					return 1;
				}
				continue;
			}
			return -EINVAL;
		case S_STR:
			/* Fast path: plain characters need no state change. */
			if (c >= 0x20 && c != '"' && c != '\\') {
				const unsigned char *p = (const unsigned char *)f->buf + pos + 1;
				const unsigned char *e = (const unsigned char *)f->buf + f->len;

				while (p < e && *p >= 0x20 && *p != '"' && *p != '\\')
					p++;
				f->scan = (size_t)(p - (const unsigned char *)f->buf);
				continue;
			}
			if (c == '"') {
				f->scan++;
				if (f->str_is_key) {
					f->state = S_COLON;
					continue;
				}
				if (value_done(f)) {
					*end = f->scan;
					return 1;
				}
				continue;
			}
			if (c == '\\')
				f->state = S_STR_ESC;
			else if (c < 0x20)
				return -EINVAL;
			break;
		case S_STR_ESC:
			if (c == 'u') {
				f->u_left = 4;
				f->state = S_STR_U;
			} else if (c && strchr("\"\\/bfnrt", c)) {
				f->state = S_STR;
			} else {
				return -EINVAL;
			}
			break;
		case S_STR_U:
			if (!is_hex(c))
				return -EINVAL;
			if (--f->u_left == 0)
				f->state = S_STR;
			break;
		case S_NUM_MINUS:
			if (c == '0')
				f->state = S_NUM_ZERO;
			else if (is_digit(c))
				f->state = S_NUM_INT;
			else
				return -EINVAL;
			break;
		case S_NUM_ZERO:
		case S_NUM_INT:
			if (is_digit(c) && f->state == S_NUM_INT)
				break;
			if (c == '.') {
				f->state = S_NUM_DOT;
				break;
			}
			if (c == 'e' || c == 'E') {
				f->state = S_NUM_E;
				break;
			}
			goto number_end;
		case S_NUM_DOT:
			if (!is_digit(c))
				return -EINVAL;
			f->state = S_NUM_FRAC;
			break;
		case S_NUM_FRAC:
			if (is_digit(c))
				break;
			if (c == 'e' || c == 'E') {
				f->state = S_NUM_E;
				break;
			}
			goto number_end;
		case S_NUM_E:
			if (c == '+' || c == '-') {
				f->state = S_NUM_ESIGN;
				break;
			}
			/* fall through */
		case S_NUM_ESIGN:
			if (!is_digit(c))
				return -EINVAL;
			f->state = S_NUM_EXP;
			break;
		case S_NUM_EXP:
			if (is_digit(c))
				break;
			goto number_end;
		case S_LIT:
			if ((unsigned char)f->lit[f->lit_pos] != c)
				return -EINVAL;
			f->lit_pos++;
			f->scan++;
			if (f->lit[f->lit_pos] == '\0' && value_done(f)) {
				*end = f->scan;
				return 1;
			}
			continue;
		}
		f->scan++;
		continue;

number_end:
		/* The number ended just before c; c is looked at again in the
		 * state that follows the number. */
		if (value_done(f)) {
			*end = pos;
			return 1;
		}
		continue;
	}
	return 0;
}

/* Finds the next complete value: 1 with [*start, *end), 0, or -errno. */
static int framer_take(struct json_framer *f, size_t *start, size_t *end)
{
	int rc;

	if (f->error)
		return f->error;
	rc = framer_scan(f, end);
	if (rc < 0) {
		f->error = -EINVAL;
		return f->error;
	}
	if (rc == 0) {
		if (f->state != S_TOP && f->len - f->value_start > f->max_value) {
			f->error = -EMSGSIZE;
			return f->error;
		}
		return 0;
	}
	if (*end - f->value_start > f->max_value) {
		f->error = -EMSGSIZE;
		return f->error;
	}
	*start = f->value_start;
	return 1;
}

static void framer_advance(struct json_framer *f, size_t end)
{
	f->consumed = end;
	f->value_start = end;
}

int json_framer_next_raw(struct json_framer *f, const char **raw, size_t *raw_len)
{
	size_t start = 0, end = 0;
	int rc = framer_take(f, &start, &end);

	if (rc != 1)
		return rc;
	*raw = f->buf + start;
	*raw_len = end - start;
	framer_advance(f, end);
	return 1;
}

/* After a parse with JSON_DECODE_INT_AS_REAL: integer-valued reals that an
 * int64 holds exactly become integers again. */
static void restore_integers(json_t *v)
{
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *e = json_array_get(v, i);
			double d = json_real_value(e);

			if (json_is_real(e) && d > -9007199254740992.0 && d < 9007199254740992.0 &&
			    d == trunc(d))
				json_array_set_new(v, i, json_integer((json_int_t)d));
			else
				restore_integers(e);
		}
	} else if (json_is_object(v)) {
		for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
			json_t *e = json_object_iter_value(it);
			double d = json_real_value(e);

			if (json_is_real(e) && d > -9007199254740992.0 && d < 9007199254740992.0 &&
			    d == trunc(d))
				json_object_iter_set_new(v, it, json_integer((json_int_t)d));
			else
				restore_integers(e);
		}
	}
}

/* A copy of text (mem_alloc'd) where every number outside strings that
 * overflows a double is replaced by 1.5. */
static char *rewrite_huge_numbers(const char *text, size_t len, size_t *out_len)
{
	char *out = mem_alloc(len + 1);
	bool in_str = false;
	size_t i = 0, o = 0;

	if (!out)
		return NULL;
	while (i < len) {
		char c = text[i];

		if (in_str) {
			out[o++] = c;
			if (c == '\\' && i + 1 < len)
				out[o++] = text[++i];
			else if (c == '"')
				in_str = false;
			i++;
			continue;
		}
		if (c == '"')
			in_str = true;
		if (c == '-' || (c >= '0' && c <= '9')) {
			char tok[64];
			size_t n = 0, j = i;

			while (j < len && strchr("+-.eE0123456789", text[j]))
				j++;
			n = j - i;
			if (n < sizeof(tok)) {
				memcpy(tok, text + i, n);
				tok[n] = '\0';
			}
			errno = 0;
			if (n >= sizeof(tok) || (fabs(strtod(tok, NULL)) == HUGE_VAL && errno == ERANGE)) {
				memcpy(out + o, "1.5", 3);
				o += 3;
				i = j;
				continue;
			}
			memcpy(out + o, text + i, n);
			o += n;
			i = j;
			continue;
		}
		out[o++] = c;
		i++;
	}
	*out_len = o;
	return out;
}

/*
 * jansson refuses integers beyond 64 bits; SPDK's parser takes them (its
 * decoders then reject out-of-range values). So a value with such a number
 * is parsed again with every integer as a real, and the ordinary integers
 * are put back: the request reaches its handler, whose decoding fails like
 * SPDK's instead of the connection being closed.
 */
static json_t *load_big_numbers(const char *text, size_t len)
{
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);

	if (!v) {
		/* Still refused: a number beyond double range (1e400). Such
		 * numbers become 1.5, which no integer field accepts either. */
		char *copy = rewrite_huge_numbers(text, len, &len);

		if (copy) {
			v = json_loadb(copy, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
			mem_free(copy);
		}
	}
	if (v && (json_is_array(v) || json_is_object(v)))
		restore_integers(v);
	return v;
}

int json_decode_value(const char *text, size_t len, json_t **out)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (!v && json_error_code(&jerr) == json_error_numeric_overflow)
		v = load_big_numbers(text, len);
	if (!v) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		/* Grammar was fine but jansson refused it: invalid UTF-8, a \u0000
		 * escape. */
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int json_framer_next(struct json_framer *f, json_t **out, const char **raw, size_t *raw_len)
{
	size_t start = 0, end = 0;
	int rc;

	*out = NULL;
	rc = framer_take(f, &start, &end);
	if (rc != 1)
		return rc;
	rc = json_decode_value(f->buf + start, end - start, out);
	if (rc == -EINVAL)
		f->error = rc;
	if (rc)
		return rc;
	if (raw)
		*raw = f->buf + start;
	if (raw_len)
		*raw_len = end - start;
	framer_advance(f, end);
	return 1;
}

int json_framer_fail(struct json_framer *f)
{
	f->error = -EINVAL;
	return f->error;
}
