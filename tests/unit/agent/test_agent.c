/*
 * test_agent.c: unit tests of src/agent's pure parts: wire names, size
 * rounding, SPDK error mapping, result parsing against recorded SPDK
 * replies, config files, durations and crash point arming.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_int.h"
#include "agent/metrics.h"

static void test_names(void **state)
{
	char buf[AGENT_NQN_MAX], serial[24], snap[32];

	agent_lvol_nqn("nqn.2026-11.io.diskengine", 42, buf);
	assert_string_equal(buf, "nqn.2026-11.io.diskengine:lvol-42");
	agent_lvol_serial(42, serial);
	assert_string_equal(serial, "DE000000000000000042");
	assert_int_equal(strlen(serial), 20);
	agent_host_nqn("nqn.x", "node1", buf);
	assert_string_equal(buf, "nqn.x:agent:node1");
	agent_snapshot_name(7, snap);
	assert_string_equal(snap, "snap-7");

	assert_int_equal(agent_name_lvol_id("42"), 42);
	assert_int_equal(agent_name_lvol_id("042"), 0);
	assert_int_equal(agent_name_lvol_id("0"), 0);
	assert_int_equal(agent_name_lvol_id("-1"), 0);
	assert_int_equal(agent_name_lvol_id("4a"), 0);
	assert_int_equal(agent_name_lvol_id(""), 0);
	assert_int_equal(agent_name_lvol_id("vol_thick"), 0);
	assert_int_equal(agent_name_lvol_id("99999999999999999999999"), 0);
	assert_int_equal(agent_name_snapshot_id("snap-7"), 7);
	assert_int_equal(agent_name_snapshot_id("snap-"), 0);
	assert_int_equal(agent_name_snapshot_id("7"), 0);
	assert_int_equal(agent_nqn_lvol_id("nqn.p", "nqn.p:lvol-9"), 9);
	assert_int_equal(agent_nqn_lvol_id("nqn.p", "nqn.q:lvol-9"), 0);
	assert_int_equal(agent_nqn_lvol_id("nqn.p", "nqn.p:lvol-x"), 0);
}

static void test_sizes(void **state)
{
	assert_int_equal(agent_size_mib(0), 0);
	assert_int_equal(agent_size_mib(1), 1);
	assert_int_equal(agent_size_mib(MIB), 1);
	assert_int_equal(agent_size_mib(MIB + 1), 2);
	/* 1025 MiB on 4 MiB clusters -> 1028 MiB, as SPDK reports. */
	assert_int_equal(agent_size_real(1025 * MIB, 4 * MIB), 1028 * MIB);
	assert_int_equal(agent_size_real(1024 * MIB, 4 * MIB), 1024 * MIB);
	assert_int_equal(agent_size_real(1, 4 * MIB), 4 * MIB);
	assert_int_equal(agent_size_real(3 * MIB + 5, 0), 4 * MIB);
}

static void test_error_classify(void **state)
{
	assert_int_equal(spdk_error_classify("bdev_lvol_create", -17, "File exists"), -EEXIST);
	assert_int_equal(spdk_error_classify("bdev_lvol_create", -19, "No such device"), -ENODEV);
	assert_int_equal(spdk_error_classify("bdev_lvol_create", -32602, "No space left on device"),
			 -ENOSPC);
	assert_int_equal(spdk_error_classify("bdev_lvol_snapshot", -32602, "File exists"), -EEXIST);
	assert_int_equal(spdk_error_classify("nvmf_create_transport", -32603,
					     "Transport type 'TCP' already exists"), -EEXIST);
	assert_int_equal(spdk_error_classify("nvmf_create_subsystem", -32603,
					     "Unable to create subsystem nqn.x:lvol-1"), -EEXIST);
	assert_int_equal(spdk_error_classify("nvmf_subsystem_add_listener", -32602,
					     "Invalid parameters"), -EINVAL);
	assert_int_equal(spdk_error_classify("nvmf_subsystem_add_listener", -32602,
					     "Subsystem with NQN 'nqn.x' not found"), -ENODEV);
	assert_int_equal(spdk_error_classify("nvmf_subsystem_add_host", -32603, "Internal error"),
			 -EEXIST);
	assert_int_equal(spdk_error_classify("bdev_lvol_delete", -32603, "Internal error"),
			 -EREMOTEIO);
	assert_int_equal(spdk_error_classify("bdev_lvol_delete", -32603, "Operation not permitted"),
			 -EPERM);
	assert_int_equal(spdk_error_classify("x", -32601, "Method not found"), -EOPNOTSUPP);
	assert_int_equal(spdk_error_classify("x", -32603, "spdk_json_decode_object failed"),
			 -EBADMSG);
	assert_int_equal(spdk_error_classify("bdev_aio_create", -2, "No such file or directory"),
			 -ENOENT);
	/* A remote errno must never look like a transport outcome. */
	assert_false(spdk_call_is_transient(spdk_error_classify("x", -ETIMEDOUT, "t")));
	assert_false(spdk_call_is_transient(spdk_error_classify("x", -ENOTCONN, "t")));
	assert_true(spdk_call_is_transient(-ETIMEDOUT));
	assert_true(spdk_call_is_transient(-ENOTCONN));
	assert_false(spdk_call_is_transient(-EEXIST));
}

/* Replies recorded from a real spdk_tgt (shared/spdk-golden a35, a33, a81). */
static const char golden_lvstores[] =
	"[{\"uuid\":\"b43182bf-f2ba-4cdf-87de-6ae81172bb2d\",\"name\":\"lvs0\",\"base_bdev\":"
	"\"Aio0\",\"total_data_clusters\":511,\"free_clusters\":247,\"block_size\":4096,"
	"\"cluster_size\":4194304,\"max_growable_size\":137271181312}]";
static const char golden_lvols[] =
	"[{\"alias\":\"lvs0/vol_thick\",\"uuid\":\"515ae660-f842-42b4-bddf-6c78eed39b96\",\"name\":"
	"\"vol_thick\",\"is_thin_provisioned\":false,\"is_snapshot\":false,\"is_clone\":false,"
	"\"is_esnap_clone\":false,\"is_degraded\":false,\"num_allocated_clusters\":256,\"lvs\":"
	"{\"name\":\"lvs0\",\"uuid\":\"b43182bf-f2ba-4cdf-87de-6ae81172bb2d\"}},{\"alias\":"
	"\"lvs0/vol_thin\",\"uuid\":\"dc67335c-7846-4bf3-a798-1dae59b8f1e0\",\"name\":\"vol_thin\","
	"\"is_thin_provisioned\":true,\"is_snapshot\":false,\"is_clone\":false,\"is_esnap_clone\":"
	"false,\"is_degraded\":false,\"num_allocated_clusters\":0,\"lvs\":{\"name\":\"lvs0\","
	"\"uuid\":\"b43182bf-f2ba-4cdf-87de-6ae81172bb2d\"}}]";
static const char golden_subsystems[] =
	"[{\"nqn\":\"nqn.2014-08.org.nvmexpress.discovery\",\"subtype\":\"Discovery\","
	"\"listen_addresses\":[],\"allow_any_host\":true,\"hosts\":[]},{\"nqn\":"
	"\"nqn.2016-06.io.spdk:cnode1\",\"subtype\":\"NVMe\",\"listen_addresses\":[{\"trtype\":"
	"\"TCP\",\"adrfam\":\"IPv4\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"4420\"}],"
	"\"allow_any_host\":false,\"hosts\":[{\"nqn\":\"nqn.h:1\"}],\"serial_number\":"
	"\"SPDK00000000000001\",\"model_number\":\"SPDK bdev Controller\",\"max_namespaces\":32,"
	"\"namespaces\":[{\"nsid\":1,\"bdev_name\":\"515ae660-f842-42b4-bddf-6c78eed39b96\","
	"\"name\":\"515ae660-f842-42b4-bddf-6c78eed39b96\",\"nguid\":"
	"\"515AE660F84242B4BDDF6C78EED39B96\",\"uuid\":\"515ae660-f842-42b4-bddf-6c78eed39b96\"}]}]";

static json_t *load(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	assert_non_null(j);
	return j;
}

static void test_parse_golden(void **state)
{
	struct spdk_lvstore_list ls;
	struct spdk_lvol_list lv;
	struct spdk_subsystem_list ss;
	json_t *j;

	j = load(golden_lvstores);
	assert_int_equal(spdk_parse_lvstores(j, &ls), 0);
	json_decref(j);
	assert_int_equal(ls.n, 1);
	assert_string_equal(ls.v[0].name, "lvs0");
	assert_string_equal(ls.v[0].base_bdev, "Aio0");
	assert_int_equal(ls.v[0].total_data_clusters, 511);
	assert_int_equal(ls.v[0].free_clusters, 247);
	assert_int_equal(ls.v[0].cluster_size, 4194304);
	assert_non_null(spdk_lvstore_find(&ls, "b43182bf-f2ba-4cdf-87de-6ae81172bb2d"));
	assert_null(spdk_lvstore_find(&ls, "x"));
	spdk_lvstore_list_free(&ls);

	j = load(golden_lvols);
	assert_int_equal(spdk_parse_lvols(j, &lv), 0);
	json_decref(j);
	assert_int_equal(lv.n, 2);
	assert_string_equal(lv.v[1].name, "vol_thin");
	assert_true(lv.v[1].thin);
	assert_false(lv.v[0].thin);
	assert_int_equal(lv.v[0].num_allocated_clusters, 256);
	assert_string_equal(lv.v[0].lvs_uuid, "b43182bf-f2ba-4cdf-87de-6ae81172bb2d");
	assert_non_null(spdk_lvol_find_name(&lv, "vol_thick"));
	assert_null(spdk_lvol_find_name(&lv, "nope"));
	spdk_lvol_list_free(&lv);

	j = load(golden_subsystems);
	assert_int_equal(spdk_parse_subsystems(j, &ss), 0);
	json_decref(j);
	assert_int_equal(ss.n, 2);
	const struct spdk_subsystem *s = spdk_subsystem_find(&ss, "nqn.2016-06.io.spdk:cnode1");
	assert_non_null(s);
	assert_int_equal(s->n_listeners, 1);
	assert_string_equal(s->listeners[0].traddr, "127.0.0.1");
	assert_string_equal(s->listeners[0].trsvcid, "4420");
	assert_int_equal(s->n_hosts, 1);
	assert_string_equal(s->hosts[0], "nqn.h:1");
	assert_int_equal(s->n_ns, 1);
	assert_int_equal(s->ns[0].nsid, 1);
	assert_true(agent_subsystem_has_ns(s, "515ae660-f842-42b4-bddf-6c78eed39b96"));
	assert_false(agent_subsystem_has_ns(s, "dc67335c-7846-4bf3-a798-1dae59b8f1e0"));
	spdk_subsystem_list_free(&ss);

	/* Not a list: refused, nothing allocated. */
	j = load("{\"a\":1}");
	assert_int_equal(spdk_parse_lvols(j, &lv), -EPROTO);
	assert_int_equal(spdk_parse_subsystems(j, &ss), -EPROTO);
	json_decref(j);
}

static void test_parse_alloc_faults(void **state)
{
	struct spdk_subsystem_list ss;
	json_t *j = load(golden_subsystems);
	int ok = 0;

	for (long n = 0; n < 20; n++) {
		mem_fault_set(n);
		int rc = spdk_parse_subsystems(j, &ss);
		mem_fault_clear();
		if (rc == 0) {
			ok++;
			spdk_subsystem_list_free(&ss);
		} else {
			assert_int_equal(rc, -ENOMEM);
			assert_null(ss.v);
		}
	}
	assert_true(ok > 0);
	json_decref(j);
}

static void test_duration(void **state)
{
	uint64_t ms;

	assert_int_equal(agent_duration_parse("1s", &ms), 0);
	assert_int_equal(ms, 1000);
	assert_int_equal(agent_duration_parse("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(agent_duration_parse("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(agent_duration_parse("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(agent_duration_parse("3", &ms), 0);
	assert_int_equal(ms, 3000);
	assert_int_equal(agent_duration_parse("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(agent_duration_parse("7d", &ms), 0);
	assert_int_equal(ms, 7ull * 86400000);
	assert_int_equal(agent_duration_parse("-1s", &ms), -EINVAL);
	assert_int_equal(agent_duration_parse("1x", &ms), -EINVAL);
	assert_int_equal(agent_duration_parse("", &ms), -EINVAL);
	assert_int_equal(agent_duration_parse("s", &ms), -EINVAL);
	assert_int_equal(agent_duration_parse("nan", &ms), -EINVAL);
	assert_int_equal(agent_duration_parse("1e300", &ms), -ERANGE);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	return 0;
}

static void test_config(void **state)
{
	char path[] = "/tmp/de-agent-config-XXXXXX";
	struct agent_options o;
	char err[256];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	agent_options_init(&o);
	assert_int_equal(o.tick_ms, 1000);
	assert_false(o.orphan_collect);
	assert_int_equal(o.events_keep_ms, 7ull * 86400000);
	assert_int_equal(write_file(path,
		"# diskengine config\n"
		"db = /var/lib/diskengine/de.db\n"
		"node=node1   # trailing comment\n"
		"rpc_socket = \"/var/tmp/spdk.sock\"\n"
		"tick = 500ms\n\n"
		"rpc_timeout = 10s\n"
		"orphan_collect = on\n"
		"orphan_grace = 2h\n"
		"zero_chunk = 16MiB\n"
		"events_keep = 30d\n"
		"log_level = debug\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), 0);
	assert_string_equal(o.db, "/var/lib/diskengine/de.db");
	assert_string_equal(o.node, "node1");
	assert_string_equal(o.rpc_socket, "/var/tmp/spdk.sock");
	assert_int_equal(o.tick_ms, 500);
	assert_int_equal(o.rpc_timeout_ms, 10000);
	assert_true(o.orphan_collect);
	assert_int_equal(o.orphan_grace_s, 7200);
	assert_int_equal(o.zero_chunk, 16 * MIB);
	assert_int_equal(o.events_keep_ms, 30ull * 86400000);
	assert_string_equal(o.log_level, "debug");

	assert_int_equal(write_file(path, "node = a\nbogus = 1\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: unknown key 'bogus'"));
	assert_int_equal(write_file(path, "tick = 0\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":1: bad value for tick"));
	assert_int_equal(write_file(path, "just words\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -EINVAL);
	assert_int_equal(write_file(path, "orphan_collect = maybe\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -EINVAL);
	assert_int_equal(write_file(path, "log_level = loud\n"), 0);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -EINVAL);
	unlink(path);
	assert_int_equal(agent_config_load(path, &o, err, sizeof(err)), -ENOENT);
}

static void test_crash_points(void **state)
{
	const char *const *p = agent_crash_points();
	size_t n = 0;

	for (; p[n]; n++)
		for (size_t j = 0; j < n; j++)
			assert_string_not_equal(p[j], p[n]);
	assert_true(n >= 20);
	setenv("DISKENGINE_CRASH_AT", "no.such.point", 1);
	assert_int_equal(agent_crash_init(), -EINVAL);
	setenv("DISKENGINE_CRASH_AT", "provision.after_ns_add:0", 1);
	assert_int_equal(agent_crash_init(), -EINVAL);
	setenv("DISKENGINE_CRASH_AT", "provision.after_ns_add:2", 1);
	assert_int_equal(agent_crash_init(), 0);
	agent_crash("provision.after_ns_add"); /* first pass: no exit */
	agent_crash("provision.after_lvol_create");
	unsetenv("DISKENGINE_CRASH_AT");
	assert_int_equal(agent_crash_init(), 0);
	agent_crash("provision.after_ns_add");
}

static void test_options_validation(void **state)
{
	struct agent_options o;
	struct agent *a = NULL;
	char err[256];

	agent_options_init(&o);
	assert_int_equal(agent_create(&o, &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "database"));
	snprintf(o.db, sizeof(o.db), "/tmp/x.db");
	assert_int_equal(agent_create(&o, &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "node"));
	snprintf(o.node, sizeof(o.node), "n1");
	assert_int_equal(agent_create(&o, &a, err, sizeof(err)), 0);
	agent_stop(a);
	agent_destroy(a);
	agent_destroy(NULL);
}

static void test_metrics(void **state)
{
	char *text;

	assert_int_equal(metrics_addr_check("127.0.0.1:9580"), 0);
	assert_int_equal(metrics_addr_check("[::1]:9580"), 0);
	assert_int_equal(metrics_addr_check("127.0.0.1"), -EINVAL);
	assert_int_equal(metrics_addr_check("127.0.0.1:0"), -EINVAL);
	assert_int_equal(metrics_addr_check("127.0.0.1:70000"), -EINVAL);
	assert_int_equal(metrics_addr_check("host:80"), -EINVAL);
	assert_int_equal(metrics_addr_check("[::1:80"), -EINVAL);
	/* Not started: recording is a no-op, rendering still works. */
	metrics_rpc("bdev_lvol_create", true, 10);
	text = metrics_render();
	assert_non_null(text);
	assert_null(strstr(text, "bdev_lvol_create"));
	assert_non_null(strstr(text, "diskengine_ready_lag_seconds_count 0"));
	mem_free(text);
	metrics_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_error_classify),
		cmocka_unit_test(test_parse_golden),
		cmocka_unit_test(test_parse_alloc_faults),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_crash_points),
		cmocka_unit_test(test_options_validation),
		cmocka_unit_test(test_metrics),
	};
	log_level_set(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
