/*
 * params.c: SPDK-style parameter decoding (spdk_json_decode_object rules):
 * the params object must contain only known keys, every required key, and
 * values of the declared type, or the whole call fails.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "rpc/rpc.h"

static const struct rpc_param *spec_find(const struct rpc_param *spec, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(spec[i].name, key) == 0)
			return &spec[i];
	return NULL;
}

/* An integer-valued JSON number within [min, max] (as doubles for reals). */
static int number_get(const json_t *v, bool is_signed, long long smin, long long smax,
		      unsigned long long umax, long long *s_out, unsigned long long *u_out)
{
	if (json_is_integer(v)) {
		long long x = json_integer_value(v);

		if (is_signed) {
			if (x < smin || x > smax)
				return -EINVAL;
			*s_out = x;
		} else {
			if (x < 0 || (unsigned long long)x > umax)
				return -EINVAL;
			*u_out = (unsigned long long)x;
		}
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		if (!isfinite(d) || d != trunc(d))
			return -EINVAL;
		if (is_signed) {
			/* 2^63 is exactly representable; smin/smax of smaller
			 * types are exact too. */
			if (d < (double)smin || d >= -(double)smin)
				return -EINVAL;
			if ((long long)d > smax)
				return -EINVAL;
			*s_out = (long long)d;
		} else {
			if (d < 0 || d >= 18446744073709551616.0)
				return -EINVAL;
			if ((unsigned long long)d > umax)
				return -EINVAL;
			*u_out = (unsigned long long)d;
		}
		return 0;
	}
	return -EINVAL;
}

static int field_decode(const struct rpc_param *p, const json_t *v, char *base)
{
	void *dst = base + p->offset;
	unsigned long long u = 0;
	long long s = 0;

	switch (p->type) {
	case RPC_PARAM_STRING: {
		char *copy;

		if (!json_is_string(v))
			return -EINVAL;
		copy = mem_strndup(json_string_value(v), json_string_length(v));
		if (!copy)
			return -ENOMEM;
		*(char **)dst = copy;
		return 0;
	}
	case RPC_PARAM_BOOL:
		if (!json_is_boolean(v))
			return -EINVAL;
		*(bool *)dst = json_is_true(v);
		return 0;
	case RPC_PARAM_INT32:
		if (number_get(v, true, INT32_MIN, INT32_MAX, 0, &s, &u))
			return -EINVAL;
		*(int32_t *)dst = (int32_t)s;
		return 0;
	case RPC_PARAM_INT64:
		if (number_get(v, true, INT64_MIN, INT64_MAX, 0, &s, &u))
			return -EINVAL;
		*(int64_t *)dst = (int64_t)s;
		return 0;
	case RPC_PARAM_UINT8:
		if (number_get(v, false, 0, 0, UINT8_MAX, &s, &u))
			return -EINVAL;
		*(uint8_t *)dst = (uint8_t)u;
		return 0;
	case RPC_PARAM_UINT16:
		if (number_get(v, false, 0, 0, UINT16_MAX, &s, &u))
			return -EINVAL;
		*(uint16_t *)dst = (uint16_t)u;
		return 0;
	case RPC_PARAM_UINT32:
		if (number_get(v, false, 0, 0, UINT32_MAX, &s, &u))
			return -EINVAL;
		*(uint32_t *)dst = (uint32_t)u;
		return 0;
	case RPC_PARAM_UINT64:
		if (number_get(v, false, 0, 0, UINT64_MAX, &s, &u))
			return -EINVAL;
		*(uint64_t *)dst = (uint64_t)u;
		return 0;
	case RPC_PARAM_OBJECT:
	case RPC_PARAM_ARRAY:
	case RPC_PARAM_ANY:
		if ((p->type == RPC_PARAM_OBJECT && !json_is_object(v)) ||
		    (p->type == RPC_PARAM_ARRAY && !json_is_array(v)))
			return -EINVAL;
		*(json_t **)dst = json_incref((json_t *)v);
		return 0;
	}
	return -EINVAL;
}

static bool type_owns_memory(enum rpc_param_type t)
{
	return t == RPC_PARAM_STRING || t == RPC_PARAM_OBJECT || t == RPC_PARAM_ARRAY ||
	       t == RPC_PARAM_ANY;
}

void rpc_params_free(const struct rpc_param *spec, size_t n, void *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		void *dst = (char *)out + spec[i].offset;

		if (spec[i].type == RPC_PARAM_STRING) {
			mem_free(*(char **)dst);
			*(char **)dst = NULL;
		} else if (type_owns_memory(spec[i].type)) {
			json_decref(*(json_t **)dst);
			*(json_t **)dst = NULL;
		}
	}
}

int rpc_params_decode(const json_t *params, const struct rpc_param *spec, size_t n, void *out)
{
	const char *key;
	json_t *val;
	size_t i;
	int rc = 0;

	if (!params) {
		for (i = 0; i < n; i++)
			if (!spec[i].optional)
				return -EINVAL;
		return 0;
	}
	if (!json_is_object(params))
		return -EINVAL;
	/* Validate everything first so that a failure leaves `out` untouched. */
	json_object_foreach((json_t *)params, key, val) {
		const struct rpc_param *p = spec_find(spec, n, key);

		if (!p)
			return -EINVAL;
	}
	for (i = 0; i < n; i++)
		if (!spec[i].optional && !json_object_get(params, spec[i].name))
			return -EINVAL;
	/* Decode into a scratch copy of each owned field's slot so a type error
	 * in a later field does not leave earlier copies behind. */
	json_object_foreach((json_t *)params, key, val) {
		const struct rpc_param *p = spec_find(spec, n, key);
		union {
			char *s;
			json_t *j;
			uint64_t u;
			int64_t i;
			bool b;
		} scratch;
		struct rpc_param tmp = *p;

		memset(&scratch, 0, sizeof(scratch));
		tmp.offset = 0;
		rc = field_decode(&tmp, val, (char *)&scratch);
		if (type_owns_memory(p->type)) {
			if (p->type == RPC_PARAM_STRING)
				mem_free(scratch.s);
			else
				json_decref(scratch.j);
		}
		if (rc)
			return rc;
	}
	/* Everything is valid: decode for real. */
	json_object_foreach((json_t *)params, key, val) {
		rc = field_decode(spec_find(spec, n, key), val, out);
		if (rc) {
			rpc_params_free(spec, n, out);
			return rc;
		}
	}
	return 0;
}
