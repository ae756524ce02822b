/* tgt.c: placeholder until the target's method set lands (issue: disktgt). */
#include <errno.h>

#include "common/common.h"
#include "tgt/tgt.h"

struct tgt {
	struct ev_loop *loop;
};

int tgt_create(struct ev_loop *loop, struct rpc_server *server, const struct tgt_opts *opts,
	       struct tgt **out)
{
	struct tgt *t = mem_zalloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->loop = loop;
	*out = t;
	return 0;
}

int tgt_config_load(struct tgt *tgt, const char *path)
{
	return -ENOTSUP;
}

void tgt_destroy(struct tgt *tgt)
{
	mem_free(tgt);
}
