/*
 * json.h: the one public header of src/json, the JSON-RPC framing layer.
 *
 * SPDK's JSON-RPC runs over a unix stream socket with no length prefix: the
 * peer writes concatenated JSON values. This module turns such a byte stream
 * back into values and writes responses the way SPDK does:
 *
 *   json_framer_*   incremental stream parser. Bytes go in as they are read
 *                   (any split, many values per read); complete values come
 *                   out as jansson json_t. It tells apart "incomplete, wait
 *                   for more" from "invalid, close the connection" and bounds
 *                   the size of a single value. Each byte is scanned once
 *                   (O(n) overall, no reparse from the start on every read).
 *   json_buf_*      a growable byte buffer.
 *   json_encode_*   compact encoding with SPDK's string escaping (every byte
 *                   outside printable ASCII as \uXXXX), keys in insertion
 *                   order, and the JSON-RPC envelopes with the key order
 *                   jsonrpc, id, result|error.
 *
 * Values are jansson json_t (reference counted). Conventions: functions
 * return 0 or -errno; *_destroy(NULL) is a no-op.
 */
#ifndef DE_JSON_H
#define DE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ------------------------------------------------------------ framer */

/* Default bound on one value (a single request or response). */
#define JSON_FRAME_MAX_DEFAULT (16u * 1024 * 1024)
/* Maximum nesting depth of arrays/objects; deeper input is invalid. */
#define JSON_FRAME_MAX_DEPTH 512

struct json_framer;

/* max_value: the largest accepted single value in bytes (0 = default). */
int json_framer_create(size_t max_value, struct json_framer **out);
void json_framer_destroy(struct json_framer *f);

/*
 * Zero-copy input: returns a writable area of at least `want` bytes at the
 * end of the buffered input (grows the buffer if needed); after read(2)ing
 * into it, call json_framer_commit() with the number of bytes read.
 * Returns NULL on allocation failure.
 */
void *json_framer_space(struct json_framer *f, size_t want);
void json_framer_commit(struct json_framer *f, size_t n);
/* Copying input: appends len bytes. 0 or -ENOMEM. */
int json_framer_feed(struct json_framer *f, const void *data, size_t len);

/*
 * Takes the next complete value out of the buffered input.
 *   1          *out is a new value (caller owns the reference)
 *   0          no complete value yet (only whitespace or a partial value is
 *              buffered): feed more bytes
 *   -EINVAL    the input is not JSON (the stream cannot be resynchronised:
 *              close the connection). Sticky.
 *   -EMSGSIZE  the value being received is larger than max_value. Sticky.
 *   -ENOMEM    allocation failure
 * Optionally *raw / *raw_len point at the value's exact bytes in the
 * framer's buffer (valid until the next call on the framer); pass NULL if
 * not needed. Numbers jansson cannot hold (integers beyond 64 bits, reals
 * beyond double range) do not fail the value: big integers come out as
 * reals and out-of-range reals as 1.5, so an integer field decoding them
 * fails the way SPDK's decoders do; every other integer stays an integer.
 */
int json_framer_next(struct json_framer *f, json_t **out, const char **raw, size_t *raw_len);
/* Like json_framer_next() without building a json_t: *raw / *raw_len are the
 * exact bytes of the next value, whose grammar has been checked (jansson's
 * extra checks, UTF-8 and integer range, are not made). Valid until the next
 * call on the framer. */
int json_framer_next_raw(struct json_framer *f, const char **raw, size_t *raw_len);
/* Parses one value's text the way json_framer_next() does (numbers beyond
 * jansson's range included). 0 with *out (caller owns), -EINVAL, -ENOMEM. */
int json_decode_value(const char *text, size_t len, json_t **out);
/* Marks the stream invalid (sticky -EINVAL), for a caller of
 * json_framer_next_raw() whose own parse of the value failed. Returns -EINVAL. */
int json_framer_fail(struct json_framer *f);
/* Bytes buffered but not yet returned as a value (whitespace included). */
size_t json_framer_pending(const struct json_framer *f);
/* Sticky error (-EINVAL, -EMSGSIZE) or 0. */
int json_framer_error(const struct json_framer *f);
size_t json_framer_max_value(const struct json_framer *f);

/* --------------------------------------------------------------- buf */

struct json_buf {
	char *data; /* not NUL-terminated unless json_buf_cstr() was called */
	size_t len;
	size_t cap;
};

/* Zero-initialised struct json_buf is an empty buffer. */
int json_buf_reserve(struct json_buf *b, size_t extra);
int json_buf_append(struct json_buf *b, const void *data, size_t len);
int json_buf_append_str(struct json_buf *b, const char *s);
int json_buf_printf(struct json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (moves the rest to the front). */
void json_buf_consume(struct json_buf *b, size_t n);
/* NUL-terminates (not counted in len) and returns data ("" when empty), or NULL on ENOMEM. */
const char *json_buf_cstr(struct json_buf *b);
void json_buf_reset(struct json_buf *b);  /* len = 0, keeps memory */
void json_buf_free(struct json_buf *b);   /* releases memory, back to empty */

/* ------------------------------------------------------------ encode */

/* Compact encoding of any value (SPDK escaping, keys in insertion order).
 * NULL encodes as null. 0 or -ENOMEM. */
int json_encode_value(struct json_buf *b, const json_t *v);
/* A JSON string literal for a C string of `len` bytes (UTF-8 expected;
 * invalid bytes are escaped as \u00XX). */
int json_encode_string(struct json_buf *b, const char *s, size_t len);
/* Convenience: a new NUL-terminated mem_alloc'd string (caller mem_free()s), or NULL. */
char *json_encode_dup(const json_t *v);

/* {"jsonrpc":"2.0","id":ID,"result":RESULT}   (no trailing newline)
 * id NULL encodes as null; result NULL encodes as null. */
int json_encode_rpc_result(struct json_buf *b, const json_t *id, const json_t *result);
/* {"jsonrpc":"2.0","id":ID,"error":{"code":CODE,"message":MESSAGE}} */
int json_encode_rpc_error(struct json_buf *b, const json_t *id, int code, const char *message);
/* {"jsonrpc":"2.0","method":METHOD,"id":ID[,"params":PARAMS]}
 * id NULL: a notification (no id member); params NULL: omitted. */
int json_encode_rpc_request(struct json_buf *b, const char *method, const json_t *id,
			    const json_t *params);

#endif /* DE_JSON_H */
