/*
 * fuzz_rpc_client.c: libFuzzer target for the client's reply path: the
 * client sends a few pipelined calls over a socketpair, the fuzzer's bytes
 * play the server's answer, then the peer hangs up. Every call must end in
 * a defined result (0, -EREMOTE, -EPROTO, a transport error), never a
 * crash, hang or leak.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "json/json.h"
#include "rpc/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;
	struct rpc_client *c;
	struct rpc_error err;
	int sv[2], calls;

	if (!once) {
		log_level_set(LOG_LEVEL_ERROR);
		signal(SIGPIPE, SIG_IGN);
		once = true;
	}
	if (size < 1 || size > 60000)
		return 0;
	calls = data[0] % 8 + 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	if (rpc_client_adopt_fd(sv[0], &c))
		abort();
	for (int i = 0; i < calls; i++)
		if (rpc_client_send(c, "spdk_get_version", i & 1 ? json_pack("{s:i}", "x", i) : NULL,
				    NULL))
			break;
	if (write(sv[1], data + 1, size - 1) < 0)
		abort();
	close(sv[1]);
	while (rpc_client_outstanding(c) > 0) {
		json_t *res = NULL;
		uint64_t id;
		int rc = rpc_client_recv(c, 1000, &id, (data[0] & 8) ? &res : NULL, &err);

		if (rc == 0 || rc == -EREMOTE) {
			json_decref(res);
			continue;
		}
		if (res)
			abort(); /* no result on failure */
		if (rc == -ETIMEDOUT)
			abort(); /* the peer hung up: must not wait */
		break;
	}
	rpc_client_destroy(c);
	return 0;
}
