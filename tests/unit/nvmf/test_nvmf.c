/*
 * test_nvmf.c: unit tests of src/nvmf. The target runs on an event loop in
 * the test's main thread; initiators (src/nvme's host library and the
 * byte-exact mini_host) run on a host thread, so the blocking host code and
 * the non-blocking target make progress together. Control-plane changes in
 * the middle of a host script (namespace removal ...) are posted back to the
 * loop thread with on_loop().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "common/common.h"
#include "mini_host.h"
#include "nvme/nvme.h"
#include "nvmf/nvmf.h"

#define SUBNQN "nqn.2016-06.io.spdk:cnode1"
#define SUBNQN2 "nqn.2016-06.io.spdk:cnode2"
#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
#define HOSTNQN_BAD "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"

static struct ev_loop *loop;
static struct nvmf_tgt *tgt;
static int port;
static char port_str[16];

/* ------------------------------------------------ host thread plumbing */

static pthread_mutex_t mb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mb_cond = PTHREAD_COND_INITIALIZER;
static void (*mb_fn)(void *);
static void *mb_arg;
static bool mb_done;
static atomic_bool host_done;

struct host_job {
	void (*fn)(void *);
	void *arg;
};

static void *host_main(void *p)
{
	struct host_job *j = p;

	j->fn(j->arg);
	atomic_store(&host_done, true);
	return NULL;
}

/* From the host thread: run fn(arg) on the loop thread and wait for it. */
static void on_loop(void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&mb_lock);
	mb_fn = fn;
	mb_arg = arg;
	mb_done = false;
	while (!mb_done)
		pthread_cond_wait(&mb_cond, &mb_lock);
	pthread_mutex_unlock(&mb_lock);
}

static void mailbox_poll(void)
{
	pthread_mutex_lock(&mb_lock);
	if (mb_fn) {
		void (*fn)(void *) = mb_fn;
		mb_fn = NULL;
		fn(mb_arg);
		mb_done = true;
		pthread_cond_broadcast(&mb_cond);
	}
	pthread_mutex_unlock(&mb_lock);
}

/* Runs fn on a host thread while the loop serves the target. */
static void run_host(void (*fn)(void *), void *arg)
{
	struct host_job j = { fn, arg };
	pthread_t th;

	atomic_store(&host_done, false);
	assert_int_equal(pthread_create(&th, NULL, host_main, &j), 0);
	while (!atomic_load(&host_done)) {
		ev_loop_run_once(loop, 1);
		mailbox_poll();
	}
	pthread_join(th, NULL);
	/* let the target notice closed sockets */
	for (int i = 0; i < 20; i++)
		ev_loop_run_once(loop, 1);
}

static void host_sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* ------------------------------------------------------------ fixture */

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

static struct nvmf_subsystem *make_subsys(const char *nqn, bool any_host, const char *bdev_name)
{
	struct nvmf_subsystem_opts so = { .serial_number = "SPDK00000000000001", .allow_any_host = any_host };
	struct nvmf_listen_addr a;
	struct nvmf_subsystem *s;

	assert_int_equal(nvmf_subsystem_create(tgt, nqn, &so, &s), 0);
	assert_int_equal(nvmf_listen_addr_parse("tcp", "ipv4", "127.0.0.1", port_str, &a), 0);
	assert_int_equal(nvmf_subsystem_listener_add(s, &a), 0);
	if (bdev_name)
		assert_int_equal(nvmf_subsystem_ns_add(s, bdev_name, NULL, NULL), 0);
	return s;
}

static int setup(void **state)
{
	struct nvmf_transport_opts o;

	assert_int_equal(ev_loop_create(&loop), 0);
	assert_int_equal(bdev_module_init(loop), 0);
	assert_int_equal(nvmf_tgt_create(loop, &tgt), 0);
	nvmf_transport_opts_init(&o);
	o.kas = 1;         /* 100 ms granularity */
	o.min_kato = 200;  /* short keep-alive for the expiry test */
	assert_int_equal(nvmf_transport_create(tgt, "tcp", &o, NULL), 0);
	port = free_port();
	snprintf(port_str, sizeof(port_str), "%d", port);
	assert_int_equal(bdev_malloc_create("Malloc0", NULL, 8192, 512, NULL), 0);
	assert_int_equal(bdev_malloc_create("Malloc1", NULL, 1024, 4096, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	nvmf_tgt_destroy(tgt);
	tgt = NULL;
	bdev_module_fini();
	ev_loop_destroy(loop);
	return 0;
}

/* ------------------------------------------------------ control plane */

static void test_nqn_validate(void **state)
{
	assert_int_equal(nvmf_nqn_validate("nqn.2016-06.io.spdk:cnode1"), 0);
	assert_int_equal(nvmf_nqn_validate(NVMF_DISCOVERY_NQN), 0);
	assert_int_equal(nvmf_nqn_validate("nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"), 0);
	assert_int_equal(nvmf_nqn_validate("nqn.2026-11.io.diskengine:lvol-42"), 0);
	assert_int_equal(nvmf_nqn_validate("not-an-nqn"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.16-06.io.spdk:x"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.2016-6.io.spdk:x"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.2016-06.1io.spdk:x"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.2016-06.io-.spdk:x"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.2014-08.org.nvmexpress:uuid:1111"), -EINVAL);
	assert_int_equal(nvmf_nqn_validate("nqn.2016"), -EINVAL);
	char long_nqn[300];
	memset(long_nqn, 'a', sizeof(long_nqn));
	memcpy(long_nqn, "nqn.2016-06.io.spdk:", 20);
	long_nqn[224] = 0;
	assert_int_equal(nvmf_nqn_validate(long_nqn), -EINVAL);
	long_nqn[223] = 0;
	assert_int_equal(nvmf_nqn_validate(long_nqn), 0);
}

static void test_subsystem_crud(void **state)
{
	struct nvmf_subsystem *a, *b, *s;

	assert_int_equal(nvmf_subsystem_create(tgt, "nqn.2016-06.io.spdk:zz", NULL, &a), 0);
	assert_int_equal(nvmf_subsystem_create(tgt, "nqn.2016-06.io.spdk:aa", NULL, &b), 0);
	assert_int_equal(nvmf_subsystem_create(tgt, "nqn.2016-06.io.spdk:aa", NULL, NULL), -EEXIST);
	assert_int_equal(nvmf_subsystem_create(tgt, "not-an-nqn", NULL, NULL), -EINVAL);
	struct nvmf_subsystem_opts so = { .serial_number = "012345678901234567890" };
	assert_int_equal(nvmf_subsystem_create(tgt, "nqn.2016-06.io.spdk:sn", &so, NULL), -EINVAL);
	/* discovery first, then sorted */
	s = nvmf_subsystem_first(tgt);
	assert_string_equal(nvmf_subsystem_nqn(s), NVMF_DISCOVERY_NQN);
	assert_int_equal(nvmf_subsystem_subtype(s), NVMF_SUBTYPE_DISCOVERY);
	assert_true(nvmf_subsystem_allow_any_host(s));
	assert_int_equal(nvmf_subsystem_destroy(s), -EPERM);
	s = nvmf_subsystem_next(s);
	assert_ptr_equal(s, b);
	assert_ptr_equal(nvmf_subsystem_next(s), a);
	assert_null(nvmf_subsystem_next(a));
	assert_string_equal(nvmf_subsystem_serial_number(a), NVMF_DEFAULT_SN);
	assert_string_equal(nvmf_subsystem_model_number(a), NVMF_DEFAULT_MN);
	assert_int_equal(nvmf_subsystem_max_namespaces(a), NVMF_DEFAULT_MAX_NAMESPACES);
	assert_int_equal(nvmf_subsystem_min_cntlid(a), 1);
	assert_int_equal(nvmf_subsystem_max_cntlid(a), 0xFFEF);
	assert_ptr_equal(nvmf_subsystem_find(tgt, "nqn.2016-06.io.spdk:zz"), a);
	assert_int_equal(nvmf_subsystem_destroy(a), 0);
	assert_int_equal(nvmf_subsystem_destroy(b), 0);
	assert_null(nvmf_subsystem_find(tgt, "nqn.2016-06.io.spdk:zz"));
	/* duplicate transport */
	assert_int_equal(nvmf_transport_create(tgt, "TCP", NULL, NULL), -EEXIST);
	assert_int_equal(nvmf_transport_create(tgt, "RDMA", NULL, NULL), -EPROTONOSUPPORT);
	assert_string_equal(nvmf_transport_trtype(nvmf_transport_first(tgt)), "TCP");
	assert_int_equal(nvmf_transport_opts(nvmf_transport_find(tgt, "tcp"))->max_io_size, 131072);
}

static void test_listeners(void **state)
{
	struct nvmf_subsystem *a, *b;
	struct nvmf_listen_addr l, bad;
	struct nvmf_tgt *t2;

	assert_int_equal(nvmf_listen_addr_parse("tcp", "ipv4", "127.0.0.1", port_str, &l), 0);
	assert_string_equal(l.trtype, "TCP");
	assert_string_equal(l.adrfam, "IPv4");
	assert_int_equal(nvmf_listen_addr_parse("tcp", "ipv4", "300.0.0.1", "1", &bad), -EINVAL);
	assert_int_equal(nvmf_listen_addr_parse("tcp", "ipv4", "127.0.0.1", "99999", &bad), -EINVAL);
	assert_int_equal(nvmf_listen_addr_parse("foo", "ipv4", "127.0.0.1", "1", &bad), -EINVAL);
	assert_int_equal(nvmf_subsystem_create(tgt, SUBNQN, NULL, &a), 0);
	assert_int_equal(nvmf_subsystem_create(tgt, SUBNQN2, NULL, &b), 0);
	assert_int_equal(nvmf_subsystem_listener_add(a, &l), 0);
	assert_int_equal(nvmf_subsystem_listener_add(a, &l), -EEXIST);
	assert_int_equal(nvmf_subsystem_listener_add(b, &l), 0); /* shared socket */
	assert_int_equal(nvmf_subsystem_listener_count(a), 1);
	assert_string_equal(nvmf_subsystem_listener_get(a, 0)->trsvcid, port_str);
	assert_null(nvmf_subsystem_listener_get(a, 1));
	assert_int_equal(nvmf_subsystem_listener_remove(a, &l), 0);
	assert_int_equal(nvmf_subsystem_listener_remove(a, &l), -ENOENT);
	/* still listening for b: a connection works */
	struct mh h;
	assert_int_equal(mh_open(&h, port), 0);
	mh_close(&h);
	assert_int_equal(nvmf_subsystem_destroy(a), 0);
	assert_int_equal(nvmf_subsystem_destroy(b), 0);
	/* the socket closed with its last user */
	assert_int_not_equal(mh_open(&h, port), 0);
	/* no transport yet */
	assert_int_equal(nvmf_tgt_create(loop, &t2), 0);
	assert_int_equal(nvmf_subsystem_create(t2, SUBNQN, NULL, &a), 0);
	assert_int_equal(nvmf_subsystem_listener_add(a, &l), -ENODEV);
	nvmf_tgt_destroy(t2);
}

static void test_namespaces(void **state)
{
	struct nvmf_subsystem *s, *s2;
	struct bdev *b0 = bdev_find("Malloc0"), *b1 = bdev_find("Malloc1");
	uint32_t nsid = 0;
	struct nvmf_ns *ns;
	char want[33];

	assert_int_equal(nvmf_subsystem_create(tgt, SUBNQN, NULL, &s), 0);
	assert_int_equal(nvmf_subsystem_create(tgt, SUBNQN2, NULL, &s2), 0);
	assert_int_equal(nvmf_subsystem_ns_add(s, "nope", NULL, NULL), -ENODEV);
	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc0", NULL, &nsid), 0);
	assert_int_equal(nsid, 1);
	assert_int_equal(bdev_claim_type(b0), BDEV_CLAIM_EXCL_WRITE);
	assert_string_equal(bdev_claim_module(b0), "NVMe-oF Target");
	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc0", NULL, NULL), -EPERM);
	assert_int_equal(nvmf_subsystem_ns_add(s2, "Malloc0", NULL, NULL), -EPERM);
	struct nvmf_ns_opts o = { .nsid = 1 };
	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc1", &o, NULL), -EEXIST);
	o.nsid = 33;
	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc1", &o, NULL), -EINVAL);
	o.nsid = 0;
	o.nguid = "zz";
	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc1", &o, NULL), -EINVAL);
	assert_int_equal(bdev_claim_type(b1), BDEV_CLAIM_NONE);
	o.nguid = NULL;
	o.nsid = 5;
	o.eui64 = "0011223344556677";
	assert_int_equal(nvmf_subsystem_ns_add(s, bdev_uuid(b1), &o, &nsid), 0);
	assert_int_equal(nsid, 5);
	assert_int_equal(nvmf_subsystem_ns_count(s), 2);
	ns = nvmf_subsystem_ns_first(s);
	assert_int_equal(nvmf_ns_nsid(ns), 1);
	assert_ptr_equal(nvmf_ns_bdev(ns), b0);
	assert_string_equal(nvmf_ns_uuid(ns), bdev_uuid(b0));
	/* NGUID = the UUID's bytes in upper-case hex, as SPDK prints it */
	size_t j = 0;
	for (const char *p = bdev_uuid(b0); *p; p++)
		if (*p != '-')
			want[j++] = (char)((*p >= 'a' && *p <= 'f') ? *p - 32 : *p);
	want[j] = 0;
	assert_string_equal(nvmf_ns_nguid(ns), want);
	assert_null(nvmf_ns_eui64(ns));
	ns = nvmf_subsystem_ns_next(ns);
	assert_int_equal(nvmf_ns_nsid(ns), 5);
	assert_string_equal(nvmf_ns_eui64(ns), "0011223344556677");
	assert_null(nvmf_subsystem_ns_next(ns));
	/* remove, and removal through the bdev */
	assert_int_equal(nvmf_subsystem_ns_remove(s, 9), -ENOENT);
	assert_int_equal(nvmf_subsystem_ns_remove(s, 5), 0);
	assert_int_equal(bdev_claim_type(b1), BDEV_CLAIM_NONE);
	assert_int_equal(nvmf_tgt_bdev_removed(tgt, b0), 1);
	assert_int_equal(bdev_claim_type(b0), BDEV_CLAIM_NONE);
	assert_int_equal(nvmf_subsystem_ns_count(s), 0);
	/* destroying a subsystem releases its claims */
	assert_int_equal(nvmf_subsystem_ns_add(s2, "Malloc0", NULL, NULL), 0);
	assert_int_equal(nvmf_subsystem_destroy(s2), 0);
	assert_int_equal(bdev_claim_type(b0), BDEV_CLAIM_NONE);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
	/* discovery subsystem holds no namespaces */
	assert_int_equal(nvmf_subsystem_ns_add(nvmf_subsystem_first(tgt), "Malloc0", NULL, NULL), -EINVAL);
}

static void test_hosts(void **state)
{
	struct nvmf_subsystem *s;

	assert_int_equal(nvmf_subsystem_create(tgt, SUBNQN, NULL, &s), 0);
	assert_false(nvmf_subsystem_allow_any_host(s));
	assert_false(nvmf_subsystem_host_allowed(s, HOSTNQN));
	assert_int_equal(nvmf_subsystem_host_add(s, "bad"), -EINVAL);
	assert_int_equal(nvmf_subsystem_host_add(s, HOSTNQN), 0);
	assert_int_equal(nvmf_subsystem_host_add(s, HOSTNQN), -EEXIST);
	assert_true(nvmf_subsystem_host_allowed(s, HOSTNQN));
	assert_int_equal(nvmf_subsystem_host_count(s), 1);
	assert_string_equal(nvmf_subsystem_host_get(s, 0), HOSTNQN);
	assert_int_equal(nvmf_subsystem_host_remove(s, HOSTNQN), 0);
	assert_int_equal(nvmf_subsystem_host_remove(s, HOSTNQN), -ENOENT);
	nvmf_subsystem_allow_any_host_set(s, true);
	assert_true(nvmf_subsystem_host_allowed(s, HOSTNQN_BAD));
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* ------------------------------------------------- through the wire */

struct rt_result {
	int rc_connect, rc_write, rc_read, rc_cmp, rc_wz, rc_wzread, rc_zero_cmp, rc_flush, rc_dealloc;
	int rc_big, rc_big_cmp, rc_oob;
	bool digests;
	uint16_t oob_status;
	uint32_t block_size;
};

static void host_roundtrip(void *arg)
{
	struct rt_result *r = arg;
	struct nvme_connect_opts o = { .traddr = "127.0.0.1", .trsvcid = port_str, .subnqn = SUBNQN,
				       .hostnqn = HOSTNQN, .io_queues = 2,
				       .header_digest = r->digests, .data_digest = r->digests };
	struct nvme_ctrlr *c = NULL;
	struct nvme_ns_info info;
	uint32_t len = 64 * 1024, big = 128 * 1024;
	uint8_t *w = malloc(big), *rd = malloc(big);

	r->rc_connect = nvme_ctrlr_connect(&o, &c);
	if (r->rc_connect)
		goto out;
	if (nvme_ns_info_get(c, 1, &info, 0) == 0)
		r->block_size = info.block_size;
	for (uint32_t i = 0; i < big; i++)
		w[i] = (uint8_t)(i * 7 + (i >> 9));
	r->rc_write = nvme_ns_write(c, 1, 4096, w, len, 0);
	r->rc_read = nvme_ns_read(c, 1, 4096, rd, len, 0);
	r->rc_cmp = memcmp(w, rd, len);
	r->rc_wz = nvme_ns_write_zeroes(c, 1, 8192, 8192, 0);
	r->rc_wzread = nvme_ns_read(c, 1, 4096, rd, len, 0);
	memset(w + 4096, 0, 8192);
	r->rc_zero_cmp = memcmp(w, rd, len);
	r->rc_flush = nvme_ns_flush(c, 1, 0);
	r->rc_dealloc = nvme_ns_deallocate(c, 1, 0, 4096, 0);
	/* one full MDTS transfer (R2T path on write) */
	for (uint32_t i = 0; i < big; i++)
		w[i] = (uint8_t)(i * 13 + 5);
	r->rc_big = nvme_ns_write(c, 1, 0, w, big, 0);
	if (!r->rc_big)
		r->rc_big = nvme_ns_read(c, 1, 0, rd, big, 0);
	r->rc_big_cmp = memcmp(w, rd, big);
	/* out of range */
	r->rc_oob = nvme_ns_read(c, 1, (uint64_t)info.num_blocks * info.block_size, rd, info.block_size, 0);
	r->oob_status = nvme_ctrlr_last_status(c);
out:
	nvme_ctrlr_destroy(c);
	free(w);
	free(rd);
}

static void roundtrip_on(const char *bdev_name, bool digests)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, bdev_name);
	struct rt_result r = { .digests = digests };
	struct nvmf_stats st0;

	nvmf_tgt_stats(tgt, &st0);
	run_host(host_roundtrip, &r);
	assert_int_equal(r.rc_connect, 0);
	assert_int_equal(r.block_size, bdev_block_size(bdev_find(bdev_name)));
	assert_int_equal(r.rc_write, 0);
	assert_int_equal(r.rc_read, 0);
	assert_int_equal(r.rc_cmp, 0);
	assert_int_equal(r.rc_wz, 0);
	assert_int_equal(r.rc_wzread, 0);
	assert_int_equal(r.rc_zero_cmp, 0);
	assert_int_equal(r.rc_flush, 0);
	assert_int_equal(r.rc_dealloc, 0);
	assert_int_equal(r.rc_big, 0);
	assert_int_equal(r.rc_big_cmp, 0);
	assert_int_not_equal(r.rc_oob, 0);
	struct nvmf_stats st;
	nvmf_tgt_stats(tgt, &st);
	assert_true(st.completed_nvme_io > 5);
	/* malloc reads are sent from the bdev's memory (3 reads), except with a
	 * data digest (copied, so digest and data agree) */
	assert_int_equal(st.zcopy_reads - st0.zcopy_reads, digests ? 0 : 3);
	assert_int_equal(st.current_io_qpairs, 0);
	assert_int_equal(st.pending_bdev_io, 0);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

static void test_roundtrip_malloc512(void **state) { roundtrip_on("Malloc0", false); }
static void test_roundtrip_malloc4k(void **state) { roundtrip_on("Malloc1", false); }
static void test_roundtrip_digests(void **state) { roundtrip_on("Malloc0", true); }

struct id_result {
	int rc_connect, rc_ns1, rc_ns2, rc_desc1, rc_desc2, rc_list, rc_ns_inactive, rc_kato;
	uint16_t cntlid;
	struct nvme_id_ctrlr cd;
	uint8_t ns1[4096], ns2[4096], desc1[4096], desc2[4096], list[4096], inactive[4096];
	uint32_t kato;
};

static void host_identify(void *arg)
{
	struct id_result *r = arg;
	struct nvme_connect_opts o = { .traddr = "127.0.0.1", .trsvcid = port_str, .subnqn = SUBNQN,
				       .hostnqn = HOSTNQN, .kato_ms = 5000 };
	struct nvme_ctrlr *c = NULL;

	r->rc_connect = nvme_ctrlr_connect(&o, &c);
	if (r->rc_connect)
		return;
	r->cntlid = nvme_ctrlr_cntlid(c);
	memcpy(&r->cd, nvme_ctrlr_data(c), sizeof(r->cd));
	r->rc_ns1 = nvme_ctrlr_identify(c, NVME_CNS_NS, 1, r->ns1, 0);
	r->rc_ns2 = nvme_ctrlr_identify(c, NVME_CNS_NS, 2, r->ns2, 0);
	r->rc_desc1 = nvme_ctrlr_identify(c, NVME_CNS_NS_ID_DESC_LIST, 1, r->desc1, 0);
	r->rc_desc2 = nvme_ctrlr_identify(c, NVME_CNS_NS_ID_DESC_LIST, 2, r->desc2, 0);
	r->rc_list = nvme_ctrlr_identify(c, NVME_CNS_ACTIVE_NS_LIST, 0, r->list, 0);
	r->rc_ns_inactive = nvme_ctrlr_identify(c, NVME_CNS_NS, 7, r->inactive, 0);
	r->rc_kato = nvme_ctrlr_get_feature(c, NVME_FEAT_KEEP_ALIVE_TIMER, 0, &r->kato, 0);
	nvme_ctrlr_destroy(c);
}

/* Finds descriptor `type` in an NS ID descriptor list; NULL if absent. */
static const uint8_t *find_desc(const uint8_t *list, uint8_t type, uint8_t *len)
{
	size_t off = 0;

	while (off + 4 <= 4096 && list[off]) {
		if (list[off] == type) {
			*len = list[off + 1];
			return list + off + 4;
		}
		off += 4 + list[off + 1];
	}
	return NULL;
}

static void test_identify_fields(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct id_result *r = calloc(1, sizeof(*r));
	uint8_t l;

	assert_int_equal(nvmf_subsystem_ns_add(s, "Malloc1", NULL, NULL), 0);
	run_host(host_identify, r);
	assert_int_equal(r->rc_connect, 0);
	/* the host-intolerance list of nvme-tcp.md 6.1 / 6.2, one field at a time */
	assert_int_equal(r->cd.cntlid, r->cntlid);
	assert_int_not_equal(r->cd.kas, 0);
	assert_int_equal(r->cd.sgls & 0x3, 1);
	assert_true(r->cd.sgls & NVME_CTRLR_SGLS_OFFSET);
	assert_true(r->cd.ioccsz >= 4);
	assert_int_equal(r->cd.ioccsz, 4 + 4096 / 16);
	assert_true(r->cd.iorcsz >= 1);
	assert_int_equal(r->cd.icdoff, 0);
	assert_int_not_equal(r->cd.maxcmd, 0);
	assert_int_equal(r->cd.cntrltype, NVME_CTRLR_CNTRLTYPE_IO);
	assert_int_equal(r->cd.mdts, 5);
	assert_int_equal(r->cd.ver, NVME_VS_1_3);
	assert_int_equal(r->cd.nn, 32);
	assert_true(r->cd.oncs & NVME_CTRLR_ONCS_WRITE_ZEROES);
	assert_true(r->cd.oncs & NVME_CTRLR_ONCS_DSM);
	assert_int_equal(r->cd.sqes, 0x66);
	assert_int_equal(r->cd.cqes, 0x44);
	assert_int_equal(r->cd.cmic & 3, 3);
	assert_true(r->cd.oaes & NVME_CTRLR_OAES_NS_ATTR);
	assert_int_equal(r->cd.aerl, 3);
	assert_memory_equal(r->cd.sn, "SPDK00000000000001  ", 20);
	assert_string_equal(r->cd.subnqn, SUBNQN);
	/* Identify NS */
	assert_int_equal(r->rc_ns1, 0);
	assert_int_equal(r->rc_ns2, 0);
	const struct nvme_id_ns *n1 = (const void *)r->ns1, *n2 = (const void *)r->ns2;
	assert_int_equal(n1->nsze, 8192);
	assert_int_not_equal(n1->ncap, 0);
	assert_int_equal(NVME_LBAF_LBADS(n1->lbaf[0]), 9);
	assert_int_equal(n2->nsze, 1024);
	assert_int_equal(NVME_LBAF_LBADS(n2->lbaf[0]), 12);
	assert_memory_not_equal(n1->nguid, n2->nguid, 16);
	static const uint8_t zero16[16];
	assert_memory_not_equal(n1->nguid, zero16, 16);
	/* CNS 0x03 works, NGUID/UUID identical to CNS 0 and unique */
	assert_int_equal(r->rc_desc1, 0);
	assert_int_equal(r->rc_desc2, 0);
	const uint8_t *g1 = find_desc(r->desc1, NVME_NIDT_NGUID, &l);
	assert_non_null(g1);
	assert_int_equal(l, 16);
	assert_memory_equal(g1, n1->nguid, 16);
	const uint8_t *g2 = find_desc(r->desc2, NVME_NIDT_NGUID, &l);
	assert_non_null(g2);
	assert_memory_not_equal(g1, g2, 16);
	const uint8_t *u1 = find_desc(r->desc1, NVME_NIDT_UUID, &l);
	assert_non_null(u1);
	uint8_t ub[16];
	assert_int_equal(common_uuid_parse(bdev_uuid(bdev_find("Malloc0")), ub), 0);
	assert_memory_equal(u1, ub, 16);
	assert_non_null(find_desc(r->desc1, NVME_NIDT_CSI, &l));
	/* active list */
	assert_int_equal(r->rc_list, 0);
	assert_int_equal(nvme_get_le32(r->list), 1);
	assert_int_equal(nvme_get_le32(r->list + 4), 2);
	assert_int_equal(nvme_get_le32(r->list + 8), 0);
	/* an inactive NSID reads as zeros */
	assert_int_equal(r->rc_ns_inactive, 0);
	assert_int_equal(((const struct nvme_id_ns *)r->inactive)->ncap, 0);
	/* KATO raised to KAS granularity; reported by Get Features */
	assert_int_equal(r->rc_kato, 0);
	assert_int_equal(r->kato, 5000);
	free(r);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* ------------------------------------------ hosts, keep-alive, events */

struct host_res {
	int rc, rc2, rc3, closed;
	uint16_t status, status2;
	struct nvme_cqe cqe, cqe2;
	uint8_t log[4096];
	int hooks;
};

static void host_disallowed(void *arg)
{
	struct host_res *r = arg;
	struct mh h;

	r->rc = mh_open(&h, port);
	if (!r->rc)
		r->rc = mh_icreq(&h, false, false);
	if (!r->rc)
		r->rc = mh_connect(&h, 0, 0xFFFF, SUBNQN, HOSTNQN_BAD, 0, &r->cqe);
	mh_close(&h);
	/* the allowed host gets in */
	r->rc2 = mh_admin_up(&h, port, SUBNQN, HOSTNQN, 0, NULL);
	mh_close(&h);
	/* unknown subsystem: invalid parameters, IATTR 1, IPO 256 */
	r->rc3 = mh_open(&h, port);
	if (!r->rc3)
		r->rc3 = mh_icreq(&h, false, false);
	if (!r->rc3)
		r->rc3 = mh_connect(&h, 0, 0xFFFF, "nqn.2016-06.io.spdk:nope", HOSTNQN, 0, &r->cqe2);
	mh_close(&h);
}

static void test_disallowed_host(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, false, "Malloc0");
	struct host_res r = { 0 };

	assert_int_equal(nvmf_subsystem_host_add(s, HOSTNQN), 0);
	run_host(host_disallowed, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(NVME_STATUS_SCT(r.cqe.status), NVME_SCT_COMMAND_SPECIFIC);
	assert_int_equal(NVME_STATUS_SC(r.cqe.status), NVME_SC_FABRIC_INVALID_HOST);
	assert_int_equal(r.rc2, 0);
	assert_int_equal(r.rc3, 0);
	assert_int_equal(NVME_STATUS_SC(r.cqe2.status), NVME_SC_FABRIC_INVALID_PARAM);
	assert_int_equal(r.cqe2.dw0, NVME_CONNECT_RSP_INVALID(1, 256));
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

static int ctrlr_count;
static void count_ctrlr(const struct nvmf_ctrlr_info *i, void *arg) { ctrlr_count++; }
static int qpair_count;
static void count_qpair(const struct nvmf_qpair_info *i, void *arg) { qpair_count++; }

static void snap_ctrlrs(void *arg)
{
	struct nvmf_subsystem *s = arg;

	ctrlr_count = 0;
	qpair_count = 0;
	nvmf_subsystem_ctrlr_foreach(s, count_ctrlr, NULL);
	nvmf_subsystem_qpair_foreach(s, count_qpair, NULL);
}

struct ka_args {
	struct nvmf_subsystem *s;
	int rc, closed, ctrlrs_before, ctrlrs_after, qpairs_before;
	int closed_alive;
};

static void host_keepalive(void *arg)
{
	struct ka_args *a = arg;
	struct mh h, alive;
	struct nvme_cqe cqe;

	/* KATO 1 s: generous against scheduling delays on a loaded machine */
	a->rc = mh_admin_up(&h, port, SUBNQN, HOSTNQN, 1000, NULL);
	if (!a->rc)
		a->rc = mh_admin_up(&alive, port, SUBNQN, HOSTNQN, 1000, NULL);
	if (a->rc)
		return;
	on_loop(snap_ctrlrs, a->s);
	a->ctrlrs_before = ctrlr_count;
	a->qpairs_before = qpair_count;
	/* `alive` sends Keep Alive every 100 ms; `h` stays silent */
	uint64_t end = clock_mono_ms() + 1600;
	while (clock_mono_ms() < end) {
		struct nvme_sqe ka = { .opc = NVME_OPC_KEEP_ALIVE };
		if (mh_cmd(&alive, &ka, NULL, 0, NULL, 0, 0, NULL, 0, &cqe) != 0)
			break;
		host_sleep_ms(100);
	}
	a->closed = mh_wait_closed(&h, 3000);
	a->closed_alive = mh_wait_closed(&alive, 10);
	on_loop(snap_ctrlrs, a->s);
	a->ctrlrs_after = ctrlr_count;
	mh_close(&h);
	mh_close(&alive);
}

static void test_keepalive_expiry(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct ka_args a = { .s = s };

	run_host(host_keepalive, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.ctrlrs_before, 2);
	assert_int_equal(a.qpairs_before, 2);
	assert_int_equal(a.closed, 1);      /* silent host dropped */
	assert_int_equal(a.closed_alive, 0); /* the other one kept */
	assert_int_equal(a.ctrlrs_after, 1);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

static void remove_ns1(void *arg)
{
	struct nvmf_subsystem *s = arg;

	nvmf_subsystem_ns_remove(s, 1);
}

struct aer_args {
	struct nvmf_subsystem *s;
	int rc, rc_aec, rc_log, rc_after;
	struct nvme_cqe aer_cqe, log_cqe;
	uint8_t log[4096];
	uint8_t id_after[4096];
	struct nvme_cqe id_cqe;
};

static void host_aer(void *arg)
{
	struct aer_args *a = arg;
	struct mh h;
	struct nvme_cqe cqe;
	uint8_t hdr[160];
	uint32_t dl;
	static uint8_t out[256];

	a->rc = mh_admin_up(&h, port, SUBNQN, HOSTNQN, 0, NULL);
	if (a->rc)
		return;
	struct nvme_sqe sf = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_ASYNC_EVENT_CONFIG,
			       .cdw11 = NVME_CTRLR_OAES_NS_ATTR };
	a->rc_aec = mh_cmd(&h, &sf, NULL, 0, NULL, 0, 0, NULL, 0, &cqe);
	if (!a->rc_aec && !NVME_STATUS_IS_OK(cqe.status))
		a->rc_aec = -EIO;
	/* submit an AER without waiting for it */
	struct nvme_sqe aer = { .opc = NVME_OPC_ASYNC_EVENT_REQUEST, .cid = 31,
				.flags = NVME_SQE_FLAGS_PSDT_SGL };
	aer.sgl1.id = NVME_SGL_ID_TRANSPORT;
	size_t n = mh_build_capsule(&h, &aer, NULL, 0, out);
	mh_send_all(&h, out, n);
	on_loop(remove_ns1, a->s);
	int t = mh_recv_pdu(&h, hdr, NULL, 0, &dl);
	if (t == NVME_TCP_PDU_CAPSULE_RESP)
		memcpy(&a->aer_cqe, hdr + 8, sizeof(a->aer_cqe));
	else
		a->rc = t < 0 ? t : -EPROTO;
	struct nvme_sqe gl = { .opc = NVME_OPC_GET_LOG_PAGE,
			       .cdw10 = NVME_LOG_CHANGED_NS_LIST | ((4096 / 4 - 1) << 16) };
	a->rc_log = mh_cmd(&h, &gl, NULL, 0, NULL, 0, 0, a->log, sizeof(a->log), &a->log_cqe);
	struct nvme_sqe id = { .opc = NVME_OPC_IDENTIFY, .nsid = 1, .cdw10 = NVME_CNS_NS_ID_DESC_LIST };
	a->rc_after = mh_cmd(&h, &id, NULL, 0, NULL, 0, 0, a->id_after, sizeof(a->id_after), &a->id_cqe);
	mh_close(&h);
}

static void test_aer_on_ns_remove(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct aer_args *a = calloc(1, sizeof(*a));

	a->s = s;
	run_host(host_aer, a);
	assert_int_equal(a->rc, 0);
	assert_int_equal(a->rc_aec, 0);
	assert_int_equal(a->aer_cqe.cid, 31);
	assert_true(NVME_STATUS_IS_OK(a->aer_cqe.status));
	assert_int_equal(NVME_AER_TYPE(a->aer_cqe.dw0), NVME_AER_TYPE_NOTICE);
	assert_int_equal(NVME_AER_INFO(a->aer_cqe.dw0), NVME_AER_NOTICE_NS_ATTR_CHANGED);
	assert_int_equal(NVME_AER_LID(a->aer_cqe.dw0), NVME_LOG_CHANGED_NS_LIST);
	assert_int_equal(a->rc_log, 0);
	assert_true(NVME_STATUS_IS_OK(a->log_cqe.status));
	assert_int_equal(nvme_get_le32(a->log), 1);
	assert_int_equal(nvme_get_le32(a->log + 4), 0);
	/* the removed namespace is gone for CNS 0x03 */
	assert_int_equal(a->rc_after, 0);
	assert_int_equal(NVME_STATUS_SC(a->id_cqe.status), NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
	free(a);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* --------------------------------------------- malformed and odd PDUs */

struct bad_args {
	int rc_good, rc_good_after, closed[8];
	int term_type[8];
	uint16_t term_fes[8];
};

static void host_malformed(void *arg)
{
	struct bad_args *a = arg;
	struct nvme_connect_opts o = { .traddr = "127.0.0.1", .trsvcid = port_str, .subnqn = SUBNQN,
				       .hostnqn = HOSTNQN, .io_queues = 1 };
	struct nvme_ctrlr *c = NULL;
	uint8_t buf[4096];

	a->rc_good = nvme_ctrlr_connect(&o, &c);
	for (int k = 0; k < 6; k++) {
		struct mh h;
		uint8_t pdu[256];
		size_t len = 0;
		memset(pdu, 0, sizeof(pdu));
		if (mh_open(&h, port) != 0)
			continue;
		switch (k) {
		case 0: /* capsule before ICReq */
			pdu[0] = NVME_TCP_PDU_CAPSULE_CMD;
			pdu[2] = 72;
			pdu[4] = 72;
			len = 72;
			break;
		case 1: /* ICReq with a bad HLEN */
			pdu[0] = NVME_TCP_PDU_IC_REQ;
			pdu[2] = 100;
			pdu[4] = 128;
			len = 128;
			break;
		case 2: /* ICReq with PFV 1 */
			pdu[0] = NVME_TCP_PDU_IC_REQ;
			pdu[2] = 128;
			pdu[4] = 128;
			pdu[8] = 1;
			len = 128;
			break;
		default:
			break;
		}
		if (k >= 3) {
			if (mh_icreq(&h, false, false) != 0)
				continue;
			if (k == 3) { /* unknown PDU type */
				pdu[0] = 0x0F;
				pdu[2] = 24;
				pdu[4] = 24;
				len = 24;
			} else if (k == 4) { /* H2CData with no R2T outstanding */
				pdu[0] = NVME_TCP_PDU_H2C_DATA;
				pdu[2] = 24;
				pdu[3] = 24;
				pdu[4] = 24 + 8;
				pdu[10] = 1; /* ttag */
				pdu[16] = 8; /* datal */
				len = 32;
			} else { /* capsule whose ICD length disagrees with the SGL */
				pdu[0] = NVME_TCP_PDU_CAPSULE_CMD;
				pdu[2] = 72;
				pdu[3] = 72;
				pdu[4] = 72 + 16;
				pdu[8] = NVME_OPC_FABRICS;
				pdu[8 + 4] = NVME_FCTYPE_CONNECT;
				pdu[8 + 24 + 8] = 32; /* sgl length 32 */
				pdu[8 + 24 + 15] = NVME_SGL_ID_ICD;
				len = 72 + 16;
			}
		}
		mh_send_all(&h, pdu, len);
		uint32_t dl;
		uint8_t hdr[160];
		a->term_type[k] = mh_recv_pdu(&h, hdr, NULL, 0, &dl);
		a->term_fes[k] = nvme_get_le16(hdr + 8);
		a->closed[k] = mh_wait_closed(&h, 2000);
		mh_close(&h);
	}
	/* everyone else is still served */
	if (!a->rc_good) {
		memset(buf, 0x5A, sizeof(buf));
		a->rc_good_after = nvme_ns_write(c, 1, 0, buf, sizeof(buf), 0);
		if (!a->rc_good_after)
			a->rc_good_after = nvme_ns_read(c, 1, 0, buf, sizeof(buf), 0);
	}
	nvme_ctrlr_destroy(c);
}

static void test_malformed_pdus(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct bad_args a = { 0 };
	static const uint16_t fes[6] = { 2, 1, 1, 1, 1, 1 };

	run_host(host_malformed, &a);
	assert_int_equal(a.rc_good, 0);
	for (int k = 0; k < 6; k++) {
		assert_int_equal(a.term_type[k], NVME_TCP_PDU_C2H_TERM_REQ);
		assert_int_equal(a.term_fes[k], fes[k]);
		assert_int_equal(a.closed[k], 1);
	}
	assert_int_equal(a.rc_good_after, 0);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

struct frag_args {
	int rc, rc_io, rc_cmp, rc_r2t, rc_r2t_cmp, rc_batch;
	uint16_t status_io;
	int batch_ok;
};

/* Connects an I/O queue of the controller of admin queue `cntlid`. */
static int io_up(struct mh *q, uint16_t cntlid, bool hd, bool dd)
{
	struct nvme_cqe cqe;
	int rc = mh_open(q, port);

	if (!rc)
		rc = mh_icreq(q, hd, dd);
	if (!rc)
		rc = mh_connect(q, 1, cntlid, SUBNQN, HOSTNQN, 0, &cqe);
	if (!rc && !NVME_STATUS_IS_OK(cqe.status))
		rc = -EIO;
	return rc;
}

static void host_fragments(void *arg)
{
	struct frag_args *a = arg;
	struct mh adm, q;
	uint16_t cntlid = 0;
	struct nvme_cqe cqe;
	uint8_t data[8192], rd[8192];
	static uint8_t out[8192 + 256];

	a->rc = mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid);
	if (!a->rc)
		a->rc = io_up(&q, cntlid, true, true);
	if (a->rc)
		return;
	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0xA5);
	/* a 4 KiB in-capsule write, sent one byte at a time */
	struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cid = 77, .flags = NVME_SQE_FLAGS_PSDT_SGL,
			      .cdw10 = 16, .cdw12 = 7 };
	size_t n = mh_build_capsule(&q, &w, data, 4096, out);
	for (size_t i = 0; i < n && !a->rc_io; i++)
		a->rc_io = mh_send_all(&q, out + i, 1);
	uint8_t hdr[160];
	uint32_t dl;
	int t = mh_recv_pdu(&q, hdr, NULL, 0, &dl);
	if (t != NVME_TCP_PDU_CAPSULE_RESP)
		a->rc_io = t < 0 ? t : -EPROTO;
	else
		a->status_io = ((struct nvme_cqe *)(hdr + 8))->status;
	struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cdw10 = 16, .cdw12 = 7 };
	if (!a->rc_io)
		a->rc_io = mh_cmd(&q, &r, NULL, 0, NULL, 0, 0, rd, 4096, &cqe);
	a->rc_cmp = memcmp(rd, data, 4096);
	/* an 8 KiB write through R2T, answered with 3 H2CData PDUs */
	struct nvme_sqe w2 = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw10 = 100, .cdw12 = 15 };
	a->rc_r2t = mh_cmd(&q, &w2, NULL, 0, data, sizeof(data), 3000, NULL, 0, &cqe);
	if (!a->rc_r2t && !NVME_STATUS_IS_OK(cqe.status))
		a->rc_r2t = -EIO;
	struct nvme_sqe r2 = { .opc = NVME_OPC_READ, .nsid = 1, .cdw10 = 100, .cdw12 = 15 };
	if (!a->rc_r2t)
		a->rc_r2t = mh_cmd(&q, &r2, NULL, 0, NULL, 0, 0, rd, sizeof(rd), &cqe);
	a->rc_r2t_cmp = memcmp(rd, data, sizeof(data));
	/* 16 flush commands coalesced into one send */
	size_t off = 0;
	for (int i = 0; i < 16; i++) {
		struct nvme_sqe f = { .opc = NVME_OPC_FLUSH, .nsid = 1, .cid = (uint16_t)(200 + i),
				      .flags = NVME_SQE_FLAGS_PSDT_SGL };
		f.sgl1.id = NVME_SGL_ID_TRANSPORT;
		off += mh_build_capsule(&q, &f, NULL, 0, out + off);
	}
	a->rc_batch = mh_send_all(&q, out, off);
	for (int i = 0; i < 16 && !a->rc_batch; i++) {
		t = mh_recv_pdu(&q, hdr, NULL, 0, &dl);
		if (t == NVME_TCP_PDU_CAPSULE_RESP && NVME_STATUS_IS_OK(((struct nvme_cqe *)(hdr + 8))->status))
			a->batch_ok++;
	}
	mh_close(&q);
	mh_close(&adm);
}

static void test_fragmented_and_r2t(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct frag_args a = { 0 };

	run_host(host_fragments, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.rc_io, 0);
	assert_true(NVME_STATUS_IS_OK(a.status_io));
	assert_int_equal(a.rc_cmp, 0);
	assert_int_equal(a.rc_r2t, 0);
	assert_int_equal(a.rc_r2t_cmp, 0);
	assert_int_equal(a.rc_batch, 0);
	assert_int_equal(a.batch_ok, 16);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* 64 reads of 64 KiB sent as one coalesced buffer (many capsules in one
 * recv), then the host does not read for a while: 4 MiB of answers cannot
 * fit the socket buffers, so the target's sendmsg() goes partial and it must
 * resume from the right byte on EPOLLOUT. Every answer must then arrive
 * whole, once, with the right data and a success CapsuleResp. */
#define BULK_N 64
#define BULK_LEN 65536u

struct bulk_args {
	int rc, rc_fill, rc_send, rc_recv;
	int data_ok, resp_ok, dup;
};

static uint8_t bulk_pattern(uint32_t i, uint32_t off)
{
	return (uint8_t)(i * 31 + off * 7 + (off >> 9));
}

static void host_bulk_reads(void *arg)
{
	struct bulk_args *a = arg;
	struct mh adm, q;
	uint16_t cntlid = 0;
	struct nvme_cqe cqe;
	uint8_t *buf = malloc(BULK_LEN), *out = malloc(BULK_N * 128);
	uint8_t hdr[160];
	bool seen_data[BULK_N] = { false }, seen_resp[BULK_N] = { false };
	size_t off = 0;

	a->rc = (buf && out) ? mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid) : -ENOMEM;
	if (!a->rc)
		a->rc = io_up(&q, cntlid, false, false);
	if (a->rc)
		goto out;
	/* fill Malloc1 (4 KiB blocks, 4 MiB): 64 KiB writes through R2T */
	for (uint32_t i = 0; i < BULK_N && !a->rc_fill; i++) {
		struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw10 = i * 16, .cdw12 = 15 };
		for (uint32_t k = 0; k < BULK_LEN; k++)
			buf[k] = bulk_pattern(i, k);
		a->rc_fill = mh_cmd(&q, &w, NULL, 0, buf, BULK_LEN, BULK_LEN, NULL, 0, &cqe);
		if (!a->rc_fill && !NVME_STATUS_IS_OK(cqe.status))
			a->rc_fill = -EIO;
	}
	if (a->rc_fill)
		goto close;
	for (uint32_t i = 0; i < BULK_N; i++) {
		struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cid = (uint16_t)(1000 + i),
				      .flags = NVME_SQE_FLAGS_PSDT_SGL, .cdw10 = i * 16, .cdw12 = 15 };
		r.sgl1.id = NVME_SGL_ID_TRANSPORT;
		r.sgl1.length = BULK_LEN;
		off += mh_build_capsule(&q, &r, NULL, 0, out + off);
	}
	a->rc_send = mh_send_all(&q, out, off);
	usleep(300 * 1000); /* let the target hit a full socket */
	for (int n = 0; n < 2 * BULK_N && !a->rc_send && !a->rc_recv; n++) {
		uint32_t dl = 0;
		int t = mh_recv_pdu(&q, hdr, buf, BULK_LEN, &dl);
		if (t == NVME_TCP_PDU_C2H_DATA) {
			const struct nvme_tcp_data_hdr *h = (const void *)hdr;
			uint32_t i = (uint32_t)h->cccid - 1000u, k;
			if (i >= BULK_N || seen_data[i] || dl != BULK_LEN || h->datao != 0) {
				a->dup++;
				continue;
			}
			seen_data[i] = true;
			for (k = 0; k < BULK_LEN && buf[k] == bulk_pattern(i, k); k++)
				;
			a->data_ok += k == BULK_LEN;
		} else if (t == NVME_TCP_PDU_CAPSULE_RESP) {
			const struct nvme_cqe *c = (const void *)(hdr + 8);
			uint32_t i = (uint32_t)c->cid - 1000u;
			if (i >= BULK_N || seen_resp[i] || !seen_data[i]) {
				a->dup++;
				continue;
			}
			seen_resp[i] = true;
			a->resp_ok += NVME_STATUS_IS_OK(c->status);
		} else {
			a->rc_recv = t < 0 ? t : -EPROTO;
		}
	}
close:
	mh_close(&q);
	mh_close(&adm);
out:
	free(buf);
	free(out);
}

static void test_partial_sends_bulk_reads(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc1");
	struct bulk_args a = { 0 };

	run_host(host_bulk_reads, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.rc_fill, 0);
	assert_int_equal(a.rc_send, 0);
	assert_int_equal(a.rc_recv, 0);
	assert_int_equal(a.dup, 0);
	assert_int_equal(a.data_ok, BULK_N);
	assert_int_equal(a.resp_ok, BULK_N);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* ------------------------------- zero-copy reads vs. bdev deletion */

/* ZC_N reads of ZC_LEN are executed (sent from the malloc bdev's memory)
 * while the host does not read: far more than the kernel buffers (host
 * SO_RCVBUF 64 KiB, sender at most tcp_wmem max, 4 MiB here), so most of
 * them wait in the target's send queue. Then the namespace is removed and
 * the bdev deleted (as bdev_malloc_delete over RPC does); the host must still
 * get every byte right. The bdev is 64 MiB: glibc mmaps it, so memory freed
 * under the queued sends would be unmapped and sendmsg would fail (EFAULT:
 * the connection closes) or ASan would report the use after free. */
#define ZC_N 100
#define ZC_LEN 131072u
#define ZC_BDEV "ZcBig"

struct zc_args {
	struct nvmf_subsystem *s;
	int rc, rc_fill, rc_send, rc_recv, rc_del, rc_after;
	uint64_t zc_at_delete, zc_before;
	int data_ok, resp_ok, dup;
	uint16_t after_status;
};

static uint8_t zc_pattern(uint32_t i, uint32_t off)
{
	return (uint8_t)(i * 37 + off * 3 + (off >> 12));
}

static void zc_delete_on_loop(void *arg)
{
	struct zc_args *a = arg;
	struct nvmf_stats st;

	nvmf_tgt_stats(tgt, &st);
	a->zc_at_delete = st.zcopy_reads - a->zc_before;
	a->rc_del = nvmf_subsystem_ns_remove(a->s, 1);
	if (!a->rc_del)
		a->rc_del = bdev_malloc_delete(ZC_BDEV);
}

static void host_zc_delete(void *arg)
{
	struct zc_args *a = arg;
	struct mh adm, q;
	uint16_t cntlid = 0;
	struct nvme_cqe cqe;
	uint8_t *buf = malloc(ZC_LEN), *out = malloc(ZC_N * 128);
	uint8_t hdr[160];
	bool seen_data[ZC_N] = { false }, seen_resp[ZC_N] = { false };
	size_t off = 0;
	int small = 64 * 1024;

	a->rc = (buf && out) ? mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid) : -ENOMEM;
	if (a->rc)
		goto out;
	a->rc = mh_open(&q, port);
	q.sqsize = ZC_N + 1;
	setsockopt(q.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (!a->rc)
		a->rc = mh_icreq(&q, false, false);
	if (!a->rc)
		a->rc = mh_connect(&q, 1, cntlid, SUBNQN, HOSTNQN, 0, &cqe);
	if (!a->rc && !NVME_STATUS_IS_OK(cqe.status))
		a->rc = -EIO;
	if (a->rc)
		goto close;
	for (uint32_t i = 0; i < ZC_N && !a->rc_fill; i++) {
		struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw10 = i * (ZC_LEN / 4096),
				      .cdw12 = ZC_LEN / 4096 - 1 };
		for (uint32_t k = 0; k < ZC_LEN; k++)
			buf[k] = zc_pattern(i, k);
		a->rc_fill = mh_cmd(&q, &w, NULL, 0, buf, ZC_LEN, ZC_LEN, NULL, 0, &cqe);
		if (!a->rc_fill && !NVME_STATUS_IS_OK(cqe.status))
			a->rc_fill = -EIO;
	}
	if (a->rc_fill)
		goto close;
	for (uint32_t i = 0; i < ZC_N; i++) {
		struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cid = (uint16_t)(2000 + i),
				      .flags = NVME_SQE_FLAGS_PSDT_SGL, .cdw10 = i * (ZC_LEN / 4096),
				      .cdw12 = ZC_LEN / 4096 - 1 };
		r.sgl1.id = NVME_SGL_ID_TRANSPORT;
		r.sgl1.length = ZC_LEN;
		off += mh_build_capsule(&q, &r, NULL, 0, out + off);
	}
	a->rc_send = mh_send_all(&q, out, off);
	usleep(300 * 1000); /* every read executed, the socket full */
	on_loop(zc_delete_on_loop, a);
	for (int n = 0; n < 2 * ZC_N && !a->rc_send && !a->rc_recv; n++) {
		uint32_t dl = 0;
		int t = mh_recv_pdu(&q, hdr, buf, ZC_LEN, &dl);
		if (t == NVME_TCP_PDU_C2H_DATA) {
			const struct nvme_tcp_data_hdr *h = (const void *)hdr;
			uint32_t i = (uint32_t)h->cccid - 2000u, k;
			if (i >= ZC_N || seen_data[i] || dl != ZC_LEN || h->datao != 0) {
				a->dup++;
				continue;
			}
			seen_data[i] = true;
			for (k = 0; k < ZC_LEN && buf[k] == zc_pattern(i, k); k++)
				;
			a->data_ok += k == ZC_LEN;
		} else if (t == NVME_TCP_PDU_CAPSULE_RESP) {
			const struct nvme_cqe *c = (const void *)(hdr + 8);
			uint32_t i = (uint32_t)c->cid - 2000u;
			if (i >= ZC_N || seen_resp[i] || !seen_data[i]) {
				a->dup++;
				continue;
			}
			seen_resp[i] = true;
			a->resp_ok += NVME_STATUS_IS_OK(c->status);
		} else {
			a->rc_recv = t < 0 ? t : -EPROTO;
		}
	}
	/* the connection lives on; the namespace is gone */
	if (!a->rc_recv) {
		struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .flags = NVME_SQE_FLAGS_PSDT_SGL };
		r.sgl1.id = NVME_SGL_ID_TRANSPORT;
		r.sgl1.length = 4096;
		a->rc_after = mh_cmd(&q, &r, NULL, 0, NULL, 0, 0, buf, ZC_LEN, &cqe);
		a->after_status = cqe.status;
	}
close:
	mh_close(&q);
	mh_close(&adm);
out:
	free(buf);
	free(out);
}

static void test_zcopy_reads_survive_bdev_delete(void **state)
{
	struct zc_args a = { 0 };
	struct nvmf_stats st;

	assert_int_equal(bdev_malloc_create(ZC_BDEV, NULL, 16384, 4096, NULL), 0); /* 64 MiB */
	a.s = make_subsys(SUBNQN, true, ZC_BDEV);
	nvmf_tgt_stats(tgt, &st);
	a.zc_before = st.zcopy_reads;
	run_host(host_zc_delete, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.rc_fill, 0);
	assert_int_equal(a.rc_send, 0);
	assert_int_equal(a.zc_at_delete, ZC_N); /* all executed (zero-copy) before the delete */
	assert_int_equal(a.rc_del, 0);          /* queued sends do not block the delete */
	assert_null(bdev_find(ZC_BDEV));
	assert_int_equal(a.rc_recv, 0);
	assert_int_equal(a.dup, 0);
	assert_int_equal(a.data_ok, ZC_N);
	assert_int_equal(a.resp_ok, ZC_N);
	assert_int_equal(a.rc_after, 0);
	assert_int_equal(NVME_STATUS_SC(a.after_status), NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
	assert_int_equal(nvmf_subsystem_destroy(a.s), 0);
}

struct disc_args {
	int rc, rc_id, rc_log, rc_hdr;
	struct nvme_id_ctrlr cd;
	uint8_t log[4096];
	uint8_t hdr[20];
};

static void host_discovery(void *arg)
{
	struct disc_args *a = arg;
	struct nvme_connect_opts o = { .traddr = "127.0.0.1", .trsvcid = port_str, .subnqn = NVME_DISCOVERY_NQN,
				       .hostnqn = HOSTNQN };
	struct nvme_ctrlr *c = NULL;

	a->rc = nvme_ctrlr_connect(&o, &c);
	if (a->rc)
		return;
	memcpy(&a->cd, nvme_ctrlr_data(c), sizeof(a->cd));
	/* libnvme's pattern: 20-byte header first, then entries from offset 1024 */
	a->rc_hdr = nvme_ctrlr_get_log_page(c, NVME_LOG_DISCOVERY, 0, 0, a->hdr, sizeof(a->hdr), 0);
	a->rc_log = nvme_ctrlr_get_log_page(c, NVME_LOG_DISCOVERY, 0, 0, a->log, sizeof(a->log), 0);
	nvme_ctrlr_destroy(c);
}

static void test_discovery(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct nvmf_subsystem *s2 = make_subsys(SUBNQN2, false, NULL); /* host not allowed: hidden */
	struct disc_args *a = calloc(1, sizeof(*a));

	run_host(host_discovery, a);
	assert_int_equal(a->rc, 0);
	assert_int_equal(a->cd.cntrltype, NVME_CTRLR_CNTRLTYPE_DISC);
	assert_string_equal(a->cd.subnqn, NVME_DISCOVERY_NQN);
	assert_int_equal(a->rc_hdr, 0);
	assert_int_equal(a->rc_log, 0);
	const struct nvme_discovery_log_header *h = (const void *)a->log;
	assert_int_equal(h->numrec, 1);
	assert_int_equal(h->recfmt, 0);
	assert_int_equal(nvme_get_le64(a->hdr), h->genctr);
	const struct nvme_discovery_log_entry *e = (const void *)(a->log + 1024);
	assert_int_equal(e->trtype, NVME_TRTYPE_TCP);
	assert_int_equal(e->adrfam, NVME_ADRFAM_IPV4);
	assert_int_equal(e->subtype, NVME_SUBTYPE_NVME);
	assert_string_equal(e->subnqn, SUBNQN);
	assert_memory_equal(e->traddr, "127.0.0.1 ", 10);
	assert_memory_equal(e->trsvcid, port_str, strlen(port_str));
	free(a);
	assert_int_equal(nvmf_subsystem_destroy(s2), 0);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

static void grow_malloc0(void *arg)
{
	struct bdev *b = bdev_find("Big"); /* 16384 blocks allocated, 8192 visible */

	bdev_num_blocks_set(b, 16384);
	*(int *)arg = nvmf_tgt_bdev_resized(tgt, b);
}

struct resize_args {
	int rc, n_resized;
	struct nvme_cqe aer, fua, rd;
	uint64_t nsze;
	int cmp, cmp_fua_kept, cmp_plain_lost;
};

static void power_loss(void *arg)
{
	bdev_fault_power_loss(bdev_find("F0"), 0.0, 1);
}

static void host_resize(void *arg)
{
	struct resize_args *a = arg;
	struct mh adm, q;
	struct nvme_cqe cqe;
	uint16_t cntlid = 0;
	uint8_t hdr[160], id[4096];
	uint32_t dl;
	static uint8_t out[256], data[4096], rd[4096];

	a->rc = mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid);
	if (a->rc)
		return;
	struct nvme_sqe sf = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_ASYNC_EVENT_CONFIG,
			       .cdw11 = NVME_CTRLR_OAES_NS_ATTR };
	mh_cmd(&adm, &sf, NULL, 0, NULL, 0, 0, NULL, 0, &cqe);
	struct nvme_sqe aer = { .opc = NVME_OPC_ASYNC_EVENT_REQUEST, .cid = 31, .flags = NVME_SQE_FLAGS_PSDT_SGL };
	aer.sgl1.id = NVME_SGL_ID_TRANSPORT;
	size_t n = mh_build_capsule(&adm, &aer, NULL, 0, out);
	mh_send_all(&adm, out, n);
	on_loop(grow_malloc0, &a->n_resized);
	if (mh_recv_pdu(&adm, hdr, NULL, 0, &dl) == NVME_TCP_PDU_CAPSULE_RESP)
		memcpy(&a->aer, hdr + 8, sizeof(a->aer));
	struct nvme_sqe idn = { .opc = NVME_OPC_IDENTIFY, .nsid = 1, .cdw10 = NVME_CNS_NS };
	if (mh_cmd(&adm, &idn, NULL, 0, NULL, 0, 0, id, sizeof(id), &cqe) == 0)
		a->nsze = ((struct nvme_id_ns *)id)->nsze;
	/* a FUA write in the new space, then read back */
	if (mh_open(&q, port) == 0 && mh_icreq(&q, false, false) == 0 &&
	    mh_connect(&q, 1, cntlid, SUBNQN, HOSTNQN, 0, &cqe) == 0) {
		memset(data, 0x77, sizeof(data));
		struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw10 = 16000, .cdw12 = 7 | NVME_RW_FUA };
		mh_cmd(&q, &w, data, sizeof(data), NULL, 0, 0, NULL, 0, &a->fua);
		struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cdw10 = 16000, .cdw12 = 7 };
		mh_cmd(&q, &r, NULL, 0, NULL, 0, 0, rd, sizeof(rd), &a->rd);
		a->cmp = memcmp(rd, data, sizeof(rd));
		/* on a device with a volatile cache, only the FUA write survives power loss */
		struct nvme_sqe wf = { .opc = NVME_OPC_WRITE, .nsid = 2, .cdw10 = 0, .cdw12 = 7 | NVME_RW_FUA };
		mh_cmd(&q, &wf, data, sizeof(data), NULL, 0, 0, NULL, 0, &cqe);
		struct nvme_sqe wp = { .opc = NVME_OPC_WRITE, .nsid = 2, .cdw10 = 8, .cdw12 = 7 };
		mh_cmd(&q, &wp, data, sizeof(data), NULL, 0, 0, NULL, 0, &cqe);
		on_loop(power_loss, NULL);
		struct nvme_sqe r0 = { .opc = NVME_OPC_READ, .nsid = 2, .cdw10 = 0, .cdw12 = 7 };
		mh_cmd(&q, &r0, NULL, 0, NULL, 0, 0, rd, sizeof(rd), &cqe);
		a->cmp_fua_kept = memcmp(rd, data, sizeof(rd));
		struct nvme_sqe r8 = { .opc = NVME_OPC_READ, .nsid = 2, .cdw10 = 8, .cdw12 = 7 };
		mh_cmd(&q, &r8, NULL, 0, NULL, 0, 0, rd, sizeof(rd), &cqe);
		a->cmp_plain_lost = memcmp(rd, data, sizeof(rd));
		mh_close(&q);
	}
	mh_close(&adm);
}

static void test_resize_event_and_fua(void **state)
{
	struct nvmf_subsystem *s;
	struct resize_args a = { 0 };

	assert_int_equal(bdev_malloc_create("Big", NULL, 16384, 512, NULL), 0);
	s = make_subsys(SUBNQN, true, NULL);
	/* shrink the visible size first, so growing it is a real change */
	bdev_num_blocks_set(bdev_find("Big"), 8192);
	assert_int_equal(nvmf_subsystem_ns_add(s, "Big", NULL, NULL), 0);
	assert_int_equal(bdev_fault_create("F0", 64, 512, NULL), 0);
	assert_int_equal(nvmf_subsystem_ns_add(s, "F0", NULL, NULL), 0);
	run_host(host_resize, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.n_resized, 1);
	assert_int_equal(a.aer.cid, 31);
	assert_int_equal(NVME_AER_TYPE(a.aer.dw0), NVME_AER_TYPE_NOTICE);
	assert_int_equal(NVME_AER_LID(a.aer.dw0), NVME_LOG_CHANGED_NS_LIST);
	assert_int_equal(a.nsze, 16384);
	assert_true(NVME_STATUS_IS_OK(a.fua.status));
	assert_true(NVME_STATUS_IS_OK(a.rd.status));
	assert_int_equal(a.cmp, 0);
	assert_int_equal(a.cmp_fua_kept, 0);
	assert_int_not_equal(a.cmp_plain_lost, 0);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* C2HData SUCCESS without CapsuleResp when the host disabled SQ flow
 * control (CATTR bit 2), SQHD 0xFFFF in that case, and C2H data padded to
 * the host's HPDA alignment. */
struct sqflow_args {
	int rc, rc_read, got_success, got_resp, pdo, cmp;
	uint16_t sqhd_connect;
};

static void host_sqflow(void *arg)
{
	struct sqflow_args *a = arg;
	struct mh adm, q;
	struct nvme_cqe cqe;
	uint16_t cntlid = 0;
	static uint8_t out[2048], data[4096], rd[4096];
	uint8_t hdr[160];
	uint32_t dl;

	a->rc = mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid);
	if (a->rc || (a->rc = mh_open(&q, port)) != 0)
		return;
	/* ICReq with HPDA 7: C2H data must start at a multiple of 32 bytes */
	struct nvme_tcp_ic_req ic = { .ch = { .pdu_type = NVME_TCP_PDU_IC_REQ, .hlen = 128, .plen = 128 }, .hpda = 7 };
	mh_send_all(&q, &ic, sizeof(ic));
	if (mh_recv_pdu(&q, hdr, NULL, 0, &dl) != NVME_TCP_PDU_IC_RESP) {
		a->rc = -EPROTO;
		return;
	}
	struct nvme_fabrics_connect_cmd cmd = { .opc = NVME_OPC_FABRICS, .fctype = NVME_FCTYPE_CONNECT, .cid = 1,
						.qid = 1, .sqsize = 31, .cattr = NVME_CONNECT_CATTR_DISABLE_SQ_FLOW };
	struct nvme_fabrics_connect_data d;
	memset(&d, 0, sizeof(d));
	d.cntlid = cntlid;
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", SUBNQN);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
	a->rc = mh_cmd(&q, (struct nvme_sqe *)&cmd, &d, sizeof(d), NULL, 0, 0, NULL, 0, &cqe);
	a->sqhd_connect = cqe.sqhd;
	memset(data, 0x42, sizeof(data));
	struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw12 = 7 };
	mh_cmd(&q, &w, data, sizeof(data), NULL, 0, 0, NULL, 0, &cqe);
	struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cid = 99, .cdw12 = 7, .flags = NVME_SQE_FLAGS_PSDT_SGL };
	r.sgl1.id = NVME_SGL_ID_TRANSPORT;
	r.sgl1.length = 4096;
	size_t n = mh_build_capsule(&q, &r, NULL, 0, out);
	mh_send_all(&q, out, n);
	int t = mh_recv_pdu(&q, hdr, rd, sizeof(rd), &dl);
	if (t == NVME_TCP_PDU_C2H_DATA) {
		a->got_success = (hdr[1] & NVME_TCP_FLAG_SUCCESS) != 0;
		a->pdo = hdr[3];
		a->cmp = memcmp(rd, data, sizeof(rd));
	} else {
		a->rc_read = t;
	}
	/* nothing else may follow: the next PDU must answer the next command */
	struct nvme_sqe ka = { .opc = NVME_OPC_FLUSH, .nsid = 1 };
	mh_cmd(&q, &ka, NULL, 0, NULL, 0, 0, NULL, 0, &cqe);
	a->got_resp = cqe.cid == 99;
	mh_close(&q);
	mh_close(&adm);
}

static void test_sqflow_disabled_and_hpda(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct sqflow_args a = { 0 };

	run_host(host_sqflow, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.rc_read, 0);
	assert_int_equal(a.sqhd_connect, 0xFFFF);
	assert_true(a.got_success);
	assert_int_equal(a.pdo, 32);
	assert_int_equal(a.cmp, 0);
	assert_false(a.got_resp);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

struct idle_args {
	int closed_idle, closed_half, open_connected;
};

static void host_idle(void *arg)
{
	struct idle_args *a = arg;
	struct mh idle, half, good;

	/* no ICReq at all; ICReq but no Connect; a connected one stays */
	if (mh_open(&idle, port) || mh_open(&half, port) || mh_icreq(&half, false, false))
		return;
	if (mh_admin_up(&good, port, SUBNQN, HOSTNQN, 0, NULL))
		return;
	a->closed_idle = mh_wait_closed(&idle, 6000);
	a->closed_half = mh_wait_closed(&half, 6000);
	a->open_connected = !mh_wait_closed(&good, 100);
	mh_close(&idle);
	mh_close(&half);
	mh_close(&good);
}

static void test_connect_timeout(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct idle_args a = { 0 };

	run_host(host_idle, &a); /* DISKENGINE_NVMF_CONNECT_TIMEOUT_MS=1500 (main) */
	assert_int_equal(a.closed_idle, 1);
	assert_int_equal(a.closed_half, 1);
	assert_true(a.open_connected);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

static void add_listener_cnode2(void *arg)
{
	struct nvmf_subsystem **out = arg;

	*out = make_subsys(SUBNQN2, true, NULL);
}

struct disc_aer_args {
	int rc;
	struct nvme_cqe aer;
	uint64_t numrec;
	struct nvmf_subsystem *s2;
};

static void host_disc_aer(void *arg)
{
	struct disc_aer_args *a = arg;
	struct mh h;
	struct nvme_cqe cqe;
	uint8_t hdr[160];
	uint32_t dl;
	static uint8_t out[128], log[4096];

	a->rc = mh_admin_up(&h, port, NVME_DISCOVERY_NQN, HOSTNQN, 0, NULL);
	if (a->rc)
		return;
	struct nvme_sqe sf = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_ASYNC_EVENT_CONFIG,
			       .cdw11 = NVME_CTRLR_OAES_DISC_CHANGE };
	mh_cmd(&h, &sf, NULL, 0, NULL, 0, 0, NULL, 0, &cqe);
	struct nvme_sqe aer = { .opc = NVME_OPC_ASYNC_EVENT_REQUEST, .cid = 31, .flags = NVME_SQE_FLAGS_PSDT_SGL };
	aer.sgl1.id = NVME_SGL_ID_TRANSPORT;
	size_t n = mh_build_capsule(&h, &aer, NULL, 0, out);
	mh_send_all(&h, out, n);
	on_loop(add_listener_cnode2, &a->s2);
	if (mh_recv_pdu(&h, hdr, NULL, 0, &dl) == NVME_TCP_PDU_CAPSULE_RESP)
		memcpy(&a->aer, hdr + 8, sizeof(a->aer));
	struct nvme_sqe gl = { .opc = NVME_OPC_GET_LOG_PAGE, .cdw10 = NVME_LOG_DISCOVERY | (1023u << 16) };
	if (mh_cmd(&h, &gl, NULL, 0, NULL, 0, 0, log, sizeof(log), &cqe) == 0)
		a->numrec = nvme_get_le64(log + 8);
	mh_close(&h);
}

static void test_discovery_change_event(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct disc_aer_args a = { 0 };

	run_host(host_disc_aer, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.aer.cid, 31);
	assert_int_equal(NVME_AER_TYPE(a.aer.dw0), NVME_AER_TYPE_NOTICE);
	assert_int_equal(NVME_AER_INFO(a.aer.dw0), NVME_AER_NOTICE_DISC_LOG_CHANGE);
	assert_int_equal(NVME_AER_LID(a.aer.dw0), NVME_LOG_DISCOVERY);
	assert_int_equal(a.numrec, 2);
	assert_int_equal(nvmf_subsystem_destroy(a.s2), 0);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* ------------------------------------------------ status codes, digests */

struct edge_args {
	int rc;
	uint16_t st[32];
	uint32_t dw0[32];
	uint64_t cap, vs, csts_after_shn;
	int term_hd, closed_hd;
	uint16_t fes_hd;
	uint16_t st_ddgst;
	int rc_ddgst;
};

static uint16_t edge_cmd(struct mh *h, struct nvme_sqe *sqe, uint32_t rlen, uint32_t *dw0)
{
	static uint8_t buf[8192];
	struct nvme_cqe cqe;

	if (mh_cmd(h, sqe, NULL, 0, NULL, 0, 0, rlen ? buf : NULL, rlen, &cqe) != 0)
		return 0xFFFF;
	if (dw0)
		*dw0 = cqe.dw0;
	return cqe.status;
}

static void host_edges(void *arg)
{
	struct edge_args *a = arg;
	struct mh adm, q, bad;
	uint16_t cntlid = 0;
	int i = 0;

	a->rc = mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid);
	if (a->rc)
		return;
	mh_prop_get(&adm, NVME_REG_CAP, true, &a->cap);
	mh_prop_get(&adm, NVME_REG_VS, false, &a->vs);
	struct nvme_sqe c0 = { .opc = NVME_OPC_IDENTIFY, .cdw10 = 0x08 };           /* CNS 8: invalid field */
	a->st[i++] = edge_cmd(&adm, &c0, 4096, NULL);
	struct nvme_sqe c1 = { .opc = NVME_OPC_IDENTIFY, .nsid = 0, .cdw10 = NVME_CNS_NS }; /* nsid 0 */
	a->st[i++] = edge_cmd(&adm, &c1, 4096, NULL);
	struct nvme_sqe c2 = { .opc = NVME_OPC_GET_LOG_PAGE, .cdw10 = 0x7F | (127u << 16) }; /* unknown LID */
	a->st[i++] = edge_cmd(&adm, &c2, 512, NULL);
	struct nvme_sqe c3 = { .opc = NVME_OPC_GET_FEATURES, .cdw10 = 0x55 };        /* unknown FID */
	a->st[i++] = edge_cmd(&adm, &c3, 0, NULL);
	struct nvme_sqe c4 = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_KEEP_ALIVE_TIMER, .cdw11 = 0 };
	a->st[i++] = edge_cmd(&adm, &c4, 0, NULL);                                   /* KATO 0 */
	struct nvme_sqe c5 = { .opc = 0x01 /* create SQ: not over fabrics */ };
	a->st[i++] = edge_cmd(&adm, &c5, 0, NULL);
	struct nvme_sqe c6 = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_NUMBER_OF_QUEUES | NVME_FEAT_SAVE,
			       .cdw11 = 0x00030003 };
	a->st[i++] = edge_cmd(&adm, &c6, 0, NULL);                                   /* SV */
	struct nvme_sqe c7 = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_NUMBER_OF_QUEUES, .cdw11 = 0x00030003 };
	a->st[i] = edge_cmd(&adm, &c7, 0, &a->dw0[i]);                               /* granted 127 */
	i++;
	struct nvme_sqe c8 = { .opc = NVME_OPC_GET_LOG_PAGE, .cdw10 = NVME_LOG_HEALTH | (127u << 16), .cdw12 = 2 };
	a->st[i++] = edge_cmd(&adm, &c8, 512, NULL);                                 /* unaligned offset */
	struct nvme_sqe c9 = { .opc = NVME_OPC_GET_LOG_PAGE, .cdw10 = NVME_LOG_FIRMWARE_SLOT | (127u << 16) };
	a->st[i++] = edge_cmd(&adm, &c9, 512, NULL);
	/* five AERs: the fifth exceeds AERL+1 = 4 */
	for (int k = 0; k < 5; k++) {
		static uint8_t out[128];
		struct nvme_sqe aer = { .opc = NVME_OPC_ASYNC_EVENT_REQUEST, .cid = (uint16_t)(500 + k),
					.flags = NVME_SQE_FLAGS_PSDT_SGL };
		aer.sgl1.id = NVME_SGL_ID_TRANSPORT;
		size_t n = mh_build_capsule(&adm, &aer, NULL, 0, out);
		mh_send_all(&adm, out, n);
	}
	uint8_t hdr[160];
	uint32_t dl;
	if (mh_recv_pdu(&adm, hdr, NULL, 0, &dl) == NVME_TCP_PDU_CAPSULE_RESP) {
		a->st[i] = ((struct nvme_cqe *)(hdr + 8))->status;
		a->dw0[i] = ((struct nvme_cqe *)(hdr + 8))->cid;
	}
	i++;
	/* I/O queue errors */
	if (mh_open(&q, port) == 0 && mh_icreq(&q, false, false) == 0) {
		struct nvme_cqe cqe;
		mh_connect(&q, 1, cntlid, SUBNQN, HOSTNQN, 0, &cqe);
		struct nvme_sqe r0 = { .opc = NVME_OPC_READ, .nsid = 9, .cdw12 = 0 };         /* bad nsid */
		a->st[i++] = edge_cmd(&q, &r0, 512, NULL);
		struct nvme_sqe r1 = { .opc = NVME_OPC_READ, .nsid = 1, .cdw10 = 8191, .cdw12 = 1 }; /* past end */
		a->st[i++] = edge_cmd(&q, &r1, 1024, NULL);
		struct nvme_sqe r2 = { .opc = NVME_OPC_READ, .nsid = 1, .cdw12 = 1 };           /* 2 blocks, 512 B SGL */
		a->st[i++] = edge_cmd(&q, &r2, 512, NULL);
		struct nvme_sqe r3 = { .opc = 0x05, .nsid = 1 };                                /* compare: not supported */
		a->st[i++] = edge_cmd(&q, &r3, 0, NULL);
		struct nvme_sqe r4 = { .opc = NVME_OPC_SET_FEATURES, .cdw10 = NVME_FEAT_NUMBER_OF_QUEUES,
				       .cdw11 = 0x00030003 };
		a->st[i++] = edge_cmd(&adm, &r4, 0, NULL); /* after I/O queues exist */
		mh_close(&q);
	}
	/* shutdown notification: SHST complete */
	struct nvme_cqe cqe;
	mh_prop_set(&adm, NVME_REG_CC, NVME_CC_SHUTDOWN_VALUE, &cqe);
	mh_prop_get(&adm, NVME_REG_CSTS, false, &a->csts_after_shn);
	mh_close(&adm);

	/* a header digest error is fatal for the connection (FES 3) */
	if (mh_open(&bad, port) == 0 && mh_icreq(&bad, true, true) == 0) {
		static uint8_t out[2048];
		struct nvme_sqe ka = { .opc = NVME_OPC_KEEP_ALIVE, .flags = NVME_SQE_FLAGS_PSDT_SGL };
		ka.sgl1.id = NVME_SGL_ID_TRANSPORT;
		size_t n = mh_build_capsule(&bad, &ka, NULL, 0, out);
		out[72] ^= 0xFF;
		mh_send_all(&bad, out, n);
		a->term_hd = mh_recv_pdu(&bad, hdr, NULL, 0, &dl);
		a->fes_hd = nvme_get_le16(hdr + 8);
		a->closed_hd = mh_wait_closed(&bad, 2000);
		mh_close(&bad);
	}
	/* a data digest error fails only the command (Data Transfer Error) */
	if (mh_open(&bad, port) == 0 && mh_icreq(&bad, false, true) == 0) {
		static uint8_t out[2048];
		struct nvme_fabrics_connect_cmd cmd = { .opc = NVME_OPC_FABRICS, .fctype = NVME_FCTYPE_CONNECT,
							.cid = 9, .sqsize = 31 };
		struct nvme_fabrics_connect_data d;
		memset(&d, 0, sizeof(d));
		d.cntlid = 0xFFFF;
		snprintf(d.subnqn, sizeof(d.subnqn), "%s", SUBNQN);
		snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
		size_t n = mh_build_capsule(&bad, (struct nvme_sqe *)&cmd, &d, sizeof(d), out);
		out[n - 1] ^= 0xFF;
		mh_send_all(&bad, out, n);
		int t = mh_recv_pdu(&bad, hdr, NULL, 0, &dl);
		a->rc_ddgst = t == NVME_TCP_PDU_CAPSULE_RESP ? 0 : -1;
		a->st_ddgst = ((struct nvme_cqe *)(hdr + 8))->status;
		mh_close(&bad);
	}
}

static void test_status_codes_and_digests(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct edge_args a = { 0 };
	int i = 0;

	run_host(host_edges, &a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(NVME_CAP_MQES(a.cap), 127);
	assert_true(a.cap & NVME_CAP_CQR);
	assert_true(a.cap & NVME_CAP_CSS_NVM);
	assert_int_equal(NVME_CAP_MPSMIN(a.cap), 0);
	assert_int_equal(a.vs, NVME_VS_1_3);
#define ST(sct_, sc_)                                              \
	do {                                                       \
		assert_int_equal(NVME_STATUS_SCT(a.st[i]), sct_);  \
		assert_int_equal(NVME_STATUS_SC(a.st[i]), sc_);    \
		i++;                                               \
	} while (0)
	ST(0, NVME_SC_INVALID_FIELD);
	ST(0, NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
	ST(1, NVME_SC_INVALID_LOG_PAGE);
	ST(0, NVME_SC_INVALID_FIELD);
	ST(0, NVME_SC_KEEP_ALIVE_INVALID);
	ST(0, NVME_SC_INVALID_OPCODE);
	ST(1, NVME_SC_FEATURE_NOT_SAVEABLE);
	assert_int_equal(a.dw0[i], (126u << 16) | 126u);
	ST(0, NVME_SC_SUCCESS);
	ST(0, NVME_SC_INVALID_FIELD);
	ST(0, NVME_SC_SUCCESS);
	assert_int_equal(a.dw0[i], 504); /* the fifth AER */
	ST(1, NVME_SC_ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED);
	ST(0, NVME_SC_INVALID_NAMESPACE_OR_FORMAT);
	ST(0, NVME_SC_LBA_OUT_OF_RANGE);
	ST(0, NVME_SC_DATA_SGL_LENGTH_INVALID);
	ST(0, NVME_SC_INVALID_OPCODE);
	ST(0, NVME_SC_COMMAND_SEQUENCE_ERROR);
#undef ST
	assert_int_equal(a.csts_after_shn & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_COMPLETE);
	assert_int_equal(a.term_hd, NVME_TCP_PDU_C2H_TERM_REQ);
	assert_int_equal(a.fes_hd, NVME_TCP_FES_HDGST_ERROR);
	assert_int_equal(a.closed_hd, 1);
	assert_int_equal(a.rc_ddgst, 0);
	assert_int_equal(NVME_STATUS_SC(a.st_ddgst), NVME_SC_DATA_TRANSFER_ERROR);
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

/* Allocation failures (mem_fault_set countdown n = 0..) while a host
 * connects and does I/O: the target refuses or drops connections but never
 * crashes or leaks (ASan/LSan check that). The host is mini_host, which does
 * not allocate, so the faults hit the target (and the loop) only. */
struct fault_args {
	int ok, failed;
};

static void arm_fault(void *arg)
{
	long n = (long)(intptr_t)arg;

	if (n < 0)
		mem_fault_clear();
	else
		mem_fault_set(n);
}

static int faulty_session(int timeout_ms)
{
	struct mh adm, q;
	struct nvme_cqe cqe;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	uint16_t cntlid = 0;
	static uint8_t data[8192], rd[8192];
	int rc;

	rc = mh_admin_up(&adm, port, SUBNQN, HOSTNQN, 0, &cntlid);
	if (rc) {
		mh_close(&adm);
		return rc;
	}
	rc = mh_open(&q, port);
	if (!rc) {
		setsockopt(q.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rc = mh_icreq(&q, false, false);
	}
	if (!rc)
		rc = mh_connect(&q, 1, cntlid, SUBNQN, HOSTNQN, 0, &cqe);
	if (!rc && !NVME_STATUS_IS_OK(cqe.status))
		rc = -EIO;
	memset(data, 0x3C, sizeof(data));
	struct nvme_sqe w = { .opc = NVME_OPC_WRITE, .nsid = 1, .cdw12 = 15 };
	if (!rc)
		rc = mh_cmd(&q, &w, NULL, 0, data, sizeof(data), 0, NULL, 0, &cqe);
	struct nvme_sqe r = { .opc = NVME_OPC_READ, .nsid = 1, .cdw12 = 15 };
	if (!rc)
		rc = mh_cmd(&q, &r, NULL, 0, NULL, 0, 0, rd, sizeof(rd), &cqe);
	if (!rc && (!NVME_STATUS_IS_OK(cqe.status) || memcmp(rd, data, sizeof(rd))))
		rc = -EIO;
	mh_close(&q);
	mh_close(&adm);
	return rc;
}

static void host_faulty(void *arg)
{
	struct fault_args *a = arg;

	for (long n = 0; n < 150; n++) {
		on_loop(arm_fault, (void *)(intptr_t)n);
		int rc = faulty_session(300);
		on_loop(arm_fault, (void *)(intptr_t)-1);
		if (rc)
			a->failed++;
		else
			a->ok++;
	}
	/* after the faults, a clean session works */
	if (faulty_session(5000) == 0)
		a->ok += 1000;
}

static void test_allocation_faults(void **state)
{
	struct nvmf_subsystem *s = make_subsys(SUBNQN, true, "Malloc0");
	struct fault_args a = { 0 };

	run_host(host_faulty, &a);
	mem_fault_clear();
	assert_true(a.failed > 0);  /* the faults did hit */
	assert_true(a.ok >= 1000);  /* and the target recovered */
	assert_int_equal(nvmf_subsystem_destroy(s), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nqn_validate),
		cmocka_unit_test_setup_teardown(test_subsystem_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_malloc512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_malloc4k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identify_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disallowed_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aer_on_ns_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_pdus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragmented_and_r2t, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_sends_bulk_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zcopy_reads_survive_bdev_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_codes_and_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocation_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize_event_and_fua, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sqflow_disabled_and_hpda, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_change_event, setup, teardown),
	};
	log_level_set(LOG_LEVEL_WARN);
	setenv("DISKENGINE_NVMF_CONNECT_TIMEOUT_MS", "1500", 1);
	if (getenv("NVMF_TEST_FILTER"))
		cmocka_set_test_filter(getenv("NVMF_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
