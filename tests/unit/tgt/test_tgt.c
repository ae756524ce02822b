/*
 * test_tgt.c: unit tests of src/tgt driven in-process through
 * rpc_server_call_local(): SPDK result shapes (key order included) and
 * error codes for the bdev, lvol, nvmf and config methods on malloc bdevs,
 * plus allocation-failure injection over the whole method set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"
#include "tgt/tgt.h"
#include "tgt/tgt_internal.h"

struct env {
	struct ev_loop *loop;
	struct rpc_server *server;
	struct tgt *tgt;
};

struct res {
	bool done;
	int code;
	char message[256];
	char *json; /* compact result */
};

static void on_done(void *arg, json_t *result, int code, const char *message)
{
	struct res *r = arg;

	r->done = true;
	r->code = code;
	snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
	r->json = code ? NULL : json_encode_dup(result);
}

/* Runs one call to completion; returns the compact result (caller frees)
 * or NULL with *code / message filled. */
static char *call(struct env *e, const char *method, const char *params, int *code, char *msg)
{
	struct res r = { 0 };
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;
	int i;

	assert_true(!params || p);
	assert_int_equal(rpc_server_call_local(e->server, method, p, on_done, &r), 0);
	for (i = 0; !r.done && i < 10000; i++)
		ev_loop_run_once(e->loop, 10);
	assert_true(r.done);
	json_decref(p);
	if (code)
		*code = r.code;
	if (msg)
		strcpy(msg, r.message);
	return r.json;
}

static void ok(struct env *e, const char *method, const char *params, const char *expect)
{
	int code;
	char msg[256];
	char *j = call(e, method, params, &code, msg);

	if (!j)
		fail_msg("%s %s failed: %d %s", method, params ? params : "", code, msg);
	if (expect && strcmp(j, expect) != 0)
		fail_msg("%s:\n got    %s\n expect %s", method, j, expect);
	mem_free(j);
}

static void err(struct env *e, const char *method, const char *params, int ecode, const char *emsg)
{
	int code;
	char msg[256];
	char *j = call(e, method, params, &code, msg);

	if (j)
		fail_msg("%s unexpectedly succeeded: %s", method, j);
	assert_int_equal(code, ecode);
	assert_string_equal(msg, emsg);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct tgt_opts o = { .fault_injection = true };

	log_level_set(LOG_LEVEL_ERROR);
	assert_int_equal(ev_loop_create(&e->loop), 0);
	assert_int_equal(rpc_server_create(e->loop, &e->server), 0);
	assert_int_equal(rpc_server_register_builtins(e->server), 0);
	assert_int_equal(tgt_create(e->loop, e->server, &o, &e->tgt), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	tgt_destroy(e->tgt);
	rpc_server_destroy(e->server);
	ev_loop_destroy(e->loop);
	free(e);
	return 0;
}

static void test_malloc_bdev_shape(void **state)
{
	struct env *e = *state;

	ok(e, "bdev_malloc_create",
	   "{\"num_blocks\":2048,\"block_size\":512,\"name\":\"M0\",\"uuid\":\"690caeed-ffa9-4b9d-9a13-eaddc5f52c56\","
	   "\"md_interleave\":false,\"dif_is_head_of_md\":false}", "\"M0\"");
	ok(e, "bdev_get_bdevs", "{\"name\":\"M0\"}",
	   "[{\"name\":\"M0\",\"aliases\":[\"690caeed-ffa9-4b9d-9a13-eaddc5f52c56\"],\"product_name\":\"Malloc disk\","
	   "\"block_size\":512,\"num_blocks\":2048,\"preferred_write_alignment\":0,\"preferred_write_granularity\":0,"
	   "\"optimal_write_size\":0,\"preferred_unmap_alignment\":0,\"preferred_unmap_granularity\":0,"
	   "\"uuid\":\"690caeed-ffa9-4b9d-9a13-eaddc5f52c56\",\"numa_id\":-1,\"assigned_rate_limits\":"
	   "{\"rw_ios_per_sec\":0,\"rw_mbytes_per_sec\":0,\"r_mbytes_per_sec\":0,\"w_mbytes_per_sec\":0},"
	   "\"claimed\":false,\"zoned\":false,\"supported_io_types\":{\"read\":true,\"write\":true,\"unmap\":true,"
	   "\"flush\":true,\"reset\":true,\"nvme_admin\":false,\"nvme_io\":false,\"nvme_io_md\":false,"
	   "\"write_zeroes\":true,\"zcopy\":true,\"get_zone_info\":false,\"zone_management\":false,"
	   "\"zone_append\":false,\"compare\":true,\"compare_and_write\":false,\"abort\":true,\"seek_hole\":false,"
	   "\"seek_data\":false,\"copy\":true,\"nvme_iov_md\":false,\"nvme_nssr\":false,"
	   "\"write_uncorrectable\":false},\"driver_specific\":{}}]");
	err(e, "bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512,\"name\":\"M0\"}", -17, "File exists");
	err(e, "bdev_malloc_create", "{\"num_blocks\":8}", -32603, "spdk_json_decode_object failed");
	err(e, "bdev_get_bdevs", "{\"name\":\"nope\"}", -19, "No such device");
	/* unnamed: SPDK's counter of unnamed creates */
	ok(e, "bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512}", "\"Malloc0\"");
	ok(e, "bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512}", "\"Malloc1\"");
	ok(e, "bdev_malloc_delete", "{\"name\":\"M0\"}", "true");
	err(e, "bdev_malloc_delete", "{\"name\":\"M0\"}", -19, "No such device");
	err(e, "bdev_wait_for_examine", "{}", -32602, "bdev_wait_for_examine method requires no parameters");
	ok(e, "bdev_wait_for_examine", NULL, "true");
}

static void test_lvstore_on_malloc(void **state)
{
	struct env *e = *state;
	int code;
	char msg[256], *uuid, q[256];

	ok(e, "bdev_malloc_create", "{\"num_blocks\":2097152,\"block_size\":512,\"name\":\"Malloc0\"}", NULL);
	uuid = call(e, "bdev_lvol_create_lvstore", "{\"bdev_name\":\"Malloc0\",\"lvs_name\":\"lvs_m\"}", &code, msg);
	if (!uuid && code == -95)
		skip(); /* src/lvol not implemented yet in this tree */
	assert_non_null(uuid);
	snprintf(q, sizeof(q), "[{\"uuid\":%s,\"name\":\"lvs_m\",\"base_bdev\":\"Malloc0\",\"total_data_clusters\":255,"
		 "\"free_clusters\":255,\"block_size\":512,\"cluster_size\":4194304,\"max_growable_size\":137271181312}]",
		 uuid);
	ok(e, "bdev_lvol_get_lvstores", "{\"lvs_name\":\"lvs_m\"}", q);
	err(e, "bdev_lvol_create_lvstore", "{\"bdev_name\":\"Malloc0\",\"lvs_name\":\"x\"}", -1, "Operation not permitted");
	err(e, "bdev_lvol_get_lvstores", "{}", -22, "Invalid argument");
	ok(e, "bdev_lvol_create", "{\"lvol_name\":\"mvol\",\"size_in_mib\":100,\"lvs_name\":\"lvs_m\"}", NULL);
	err(e, "bdev_lvol_create", "{\"lvol_name\":\"mvol\",\"size_in_mib\":1,\"lvs_name\":\"lvs_m\"}", -17, "File exists");
	err(e, "bdev_lvol_create", "{\"lvol_name\":\"big\",\"size_in_mib\":4096,\"lvs_name\":\"lvs_m\"}", -32602,
	    "No space left on device");
	err(e, "bdev_lvol_snapshot", "{\"lvol_name\":\"lvs_m/none\",\"snapshot_name\":\"s\"}", -19, "No such device");
	ok(e, "bdev_lvol_snapshot", "{\"lvol_name\":\"lvs_m/mvol\",\"snapshot_name\":\"s\"}", NULL);
	ok(e, "bdev_lvol_clone", "{\"snapshot_name\":\"lvs_m/s\",\"clone_name\":\"c\"}", NULL);
	err(e, "bdev_lvol_delete", "{\"name\":\"lvs_m/s\"}", -32603, "Operation not permitted");
	ok(e, "bdev_lvol_delete_lvstore", "{\"lvs_name\":\"lvs_m\"}", "true");
	err(e, "bdev_lvol_delete_lvstore", "{\"lvs_name\":\"lvs_m\"}", -19, "No such device");
	ok(e, "bdev_get_bdevs", NULL, NULL);
	mem_free(uuid);
}

static void test_nvmf_shapes(void **state)
{
	struct env *e = *state;

	ok(e, "nvmf_get_subsystems", NULL,
	   "[{\"nqn\":\"nqn.2014-08.org.nvmexpress.discovery\",\"subtype\":\"Discovery\",\"listen_addresses\":[],"
	   "\"allow_any_host\":true,\"hosts\":[]}]");
	ok(e, "nvmf_create_transport", "{\"trtype\":\"TCP\",\"no_srq\":false,\"c2h_success\":true}", "true");
	err(e, "nvmf_create_transport", "{\"trtype\":\"TCP\"}", -32603, "Transport type 'TCP' already exists");
	err(e, "nvmf_create_transport", "{\"trtype\":\"PCIE\"}", -32602, "Invalid transport type 'PCIE'");
	err(e, "nvmf_create_transport", "{\"max_queue_depth\":1}", -32602, "Invalid parameters");
	ok(e, "nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:b\",\"allow_any_host\":true}", "true");
	ok(e, "nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"serial_number\":\"S1\"}", "true");
	err(e, "nvmf_create_subsystem", "{\"nqn\":\"bad\"}", -32603, "Unable to create subsystem bad");
	err(e, "nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:c\",\"bogus\":1}", -32602, "Invalid parameters");
	ok(e, "bdev_malloc_create", "{\"num_blocks\":64,\"block_size\":512,\"name\":\"N0\","
	   "\"uuid\":\"11111111-2222-4333-8444-555555555555\"}", NULL);
	ok(e, "nvmf_subsystem_add_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"namespace\":{\"bdev_name\":\"N0\"},\"extra\":1}",
	   "1");
	err(e, "nvmf_subsystem_add_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"namespace\":{\"bdev_name\":\"N0\"}}", -32602,
	    "Invalid parameters");
	err(e, "nvmf_subsystem_add_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:z\",\"namespace\":{\"bdev_name\":\"N0\"}}", -32602,
	    "Subsystem with NQN 'nqn.2016-06.io.spdk:z' not found");
	/* created without max_namespaces: SPDK has no limit and prints no key */
	ok(e, "nvmf_get_subsystems", "{\"nqn\":\"nqn.2016-06.io.spdk:a\"}",
	   "[{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"subtype\":\"NVMe\",\"listen_addresses\":[],\"allow_any_host\":false,"
	   "\"hosts\":[],\"serial_number\":\"S1\",\"model_number\":\"SPDK bdev Controller\","
	   "\"passthrough\":false,\"min_cntlid\":1,\"max_cntlid\":65519,\"dmrsl\":2097152,\"wzsl\":12,\"namespaces\":"
	   "[{\"nsid\":1,\"bdev_name\":\"N0\",\"name\":\"N0\",\"nguid\":\"11111111222243338444555555555555\","
	   "\"uuid\":\"11111111-2222-4333-8444-555555555555\"}]}]");
	ok(e, "nvmf_subsystem_remove_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"nsid\":1}", "true");
	err(e, "nvmf_subsystem_remove_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:a\",\"nsid\":1}", -32602, "Invalid parameters");
	ok(e, "nvmf_delete_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:a\"}", "true");
	err(e, "nvmf_delete_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:a\"}", -32602,
	    "Subsystem with NQN 'nqn.2016-06.io.spdk:a' not found");
}

static void test_config_roundtrip(void **state)
{
	struct env *e = *state;
	int code;
	char msg[256], *cfg, *cfg2;

	ok(e, "bdev_malloc_create", "{\"num_blocks\":64,\"block_size\":512,\"name\":\"C0\"}", NULL);
	ok(e, "nvmf_create_transport", "{\"trtype\":\"TCP\"}", NULL);
	ok(e, "nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:cfg\",\"allow_any_host\":true}", NULL);
	ok(e, "nvmf_subsystem_add_ns", "{\"nqn\":\"nqn.2016-06.io.spdk:cfg\",\"namespace\":{\"bdev_name\":\"C0\"}}", NULL);
	cfg = call(e, "save_config", NULL, &code, msg);
	assert_non_null(cfg);
	/* a second target loads it and saves the same thing */
	teardown(state);
	setup(state);
	e = *state;
	ok(e, "load_config", cfg, "true");
	cfg2 = call(e, "save_config", NULL, &code, msg);
	assert_non_null(cfg2);
	assert_string_equal(cfg, cfg2);
	err(e, "framework_get_config", "{\"name\":\"iscsi\"}", -32602, "Subsystem 'iscsi' not found");
	mem_free(cfg);
	mem_free(cfg2);
}

/* Every method, with allocation failures injected at every point of a
 * representative call: each call must still complete exactly once, with
 * no leak and no crash. */
static void test_alloc_failures(void **state)
{
	static const char *const calls[][2] = {
		{ "bdev_malloc_create", "{\"num_blocks\":64,\"block_size\":512,\"name\":\"F0\"}" },
		{ "bdev_get_bdevs", NULL },
		{ "bdev_get_iostat", "{\"names\":[\"F0\"]}" },
		{ "bdev_lvol_create_lvstore", "{\"bdev_name\":\"F0\",\"lvs_name\":\"fl\",\"cluster_sz\":4096}" },
		{ "bdev_lvol_create", "{\"lvol_name\":\"v\",\"size_in_mib\":0,\"lvs_name\":\"fl\"}" },
		{ "bdev_lvol_get_lvols", NULL },
		{ "nvmf_create_transport", "{\"trtype\":\"TCP\"}" },
		{ "nvmf_create_subsystem", "{\"nqn\":\"nqn.2016-06.io.spdk:f\"}" },
		{ "nvmf_get_subsystems", NULL },
		{ "framework_get_config", "{\"name\":\"nvmf\"}" },
		{ "disktgt_inject_fault", "{\"method\":\"x\",\"message\":\"m\"}" },
	};
	struct env *e = *state;
	size_t i;
	long n;

	for (i = 0; i < COMMON_ARRAY_SIZE(calls); i++) {
		for (n = 0; n < 40; n++) {
			struct res r = { 0 };
			json_t *p = calls[i][1] ? json_loads(calls[i][1], 0, NULL) : NULL;
			int k;

			mem_fault_set(n);
			if (rpc_server_call_local(e->server, calls[i][0], p, on_done, &r) == 0)
				for (k = 0; !r.done && k < 10000; k++)
					ev_loop_run_once(e->loop, 10);
			mem_fault_clear();
			json_decref(p);
			mem_free(r.json);
		}
	}
}

/* The listings' fast string writer gives exactly json_encode_string's
 * bytes (SPDK's escaping), for plain strings and every kind of escape, at
 * every position of an 8-byte word. */
static void test_put_str_matches_encoder(void **state)
{
	(void)state;
	static const char alpha[] = { 'a', 'Z', '0', '-', '/', '"', '\\', '\n', '\t', 0x1f, 0x7f,
				      (char)0x80, (char)0xc3, (char)0xa9, (char)0xff, ' ', '~', '!' };
	unsigned seed = 1;
	unsigned plain = 0;

	for (int it = 0; it < 200000; it++) {
		char str[40];
		int n = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 39;

		for (int i = 0; i < n; i++) {
			unsigned r = (seed = seed * 1103515245u + 12345u) >> 16;
			str[i] = (r & 3) ? alpha[(r >> 2) % 5] : alpha[(r >> 2) % sizeof(alpha)];
		}
		str[n] = '\0';
		struct json_buf a = { 0 }, b = { 0 };
		assert_int_equal(json_encode_string(&a, str, (size_t)n), 0);
		assert_int_equal(tgt_put_str(&b, str), 0);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
		plain += a.len == (size_t)n + 2;
		json_buf_free(&a);
		json_buf_free(&b);
	}
	assert_true(plain > 1000); /* both paths were taken */
	struct json_buf c = { 0 };
	assert_int_equal(tgt_put_str(&c, NULL), 0);
	assert_int_equal(c.len, 2);
	assert_memory_equal(c.data, "\"\"", 2);
	json_buf_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_malloc_bdev_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lvstore_on_malloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nvmf_shapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
		cmocka_unit_test(test_put_str_matches_encoder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
