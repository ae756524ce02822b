/*
 * batch.c: one step of a pipelined batch over many rows (provision_batch.c,
 * delete_batch.c). A step sends one call per row still in the batch, all at
 * once (spdk_call_many), then hands each reply to the row: a row whose call
 * failed leaves the batch, for the loop's one-by-one path to finish with its
 * usual error handling. Rows are the caller's structs, each starting with a
 * struct agent_batch_row.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <inttypes.h>

#include "common/common.h"

int agent_batch_step(struct agent_loop *l, void *rows, size_t row_size, size_t n, size_t k0,
		     size_t nk, agent_batch_make make, agent_batch_reply reply, const char *what,
		     size_t *ran)
{
	size_t cap = (n ? n : 1) * (nk ? nk : 1);
	struct spdk_req *reqs = mem_zalloc(cap * sizeof(*reqs));
	size_t *which = mem_zalloc(cap * sizeof(*which)), *kk = mem_zalloc(cap * sizeof(*kk));
	size_t m = 0;
	int rc = 0;

	*ran = 0;
	if (!reqs || !which || !kk) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct agent_batch_row *r = (struct agent_batch_row *)((char *)rows + i * row_size);

		for (size_t k = k0; k < k0 + nk && !r->out; k++) {
			if (!make(l, r, k, &reqs[m]))
				continue;
			if (!reqs[m].params) {
				r->out = true; /* out of memory: one by one */
				continue;
			}
			which[m] = i;
			kk[m++] = k;
		}
	}
	if (m)
		rc = spdk_call_many(l->spdk, reqs, m);
	for (size_t j = 0; j < m; j++) {
		struct agent_batch_row *r = (struct agent_batch_row *)((char *)rows +
								      which[j] * row_size);

		if (reqs[j].rc == 0 && reply)
			reqs[j].rc = reply(r, kk[j], reqs[j].result);
		if (reqs[j].rc == 0) {
			(*ran)++;
		} else if (!r->out) {
			if (!spdk_call_is_transient(reqs[j].rc))
				LOG_INFO("agent", "batch step failed id=%" PRId64 " step=%s err=%s: "
					 "finished one by one", r->id, what, common_strerror(reqs[j].rc));
			r->out = true;
			r->rc = reqs[j].rc;
			r->k = kk[j];
		}
		json_decref(reqs[j].result);
	}
out:
	mem_free(reqs);
	mem_free(which);
	mem_free(kk);
	return rc;
}

int agent_batch_each(struct agent_loop *l, void *rows, size_t row_size, size_t n, size_t count,
		     agent_batch_make make, const char *what, const char *crash_point)
{
	for (size_t k = 0; k < count; k++) {
		size_t ran = 0;
		int rc = agent_batch_step(l, rows, row_size, n, k, 1, make, NULL, what, &ran);

		if (rc)
			return rc;
		if (ran && crash_point)
			agent_crash(crash_point);
	}
	return 0;
}
