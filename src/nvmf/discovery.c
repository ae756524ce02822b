/*
 * discovery.c: the discovery log page (Get Log Page 0x70 on the discovery
 * controller): one entry per (subsystem the host may access, listener),
 * plus the discovery subsystem's own listeners as "current discovery
 * subsystem" entries. Any dword-aligned window of the page can be read.
 */
#include "nvmf/nvmf_internal.h"

#include <stdio.h>

static void space_pad(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, COMMON_MIN(l, n));
}

static bool wildcard(const char *traddr)
{
	return strcmp(traddr, "0.0.0.0") == 0 || strcmp(traddr, "::") == 0;
}

static void entry_fill(struct nvme_discovery_log_entry *e, const struct nvmf_subsystem *s,
		       const struct nvmf_listen_addr *a, uint16_t portid, const char *local_traddr)
{
	memset(e, 0, sizeof(*e));
	e->trtype = NVME_TRTYPE_TCP;
	e->adrfam = strcmp(a->adrfam, "IPv6") == 0 ? NVME_ADRFAM_IPV6 : NVME_ADRFAM_IPV4;
	if (s->subtype == NVMF_SUBTYPE_DISCOVERY) {
		e->subtype = NVME_SUBTYPE_DISCOVERY_CURRENT;
		e->eflags = NVME_DISC_EFLAGS_DUPRETINFO | NVME_DISC_EFLAGS_EPCSD;
	} else {
		e->subtype = NVME_SUBTYPE_NVME;
	}
	e->treq = NVME_TREQ_SECURE_CHANNEL_NOT_REQUIRED;
	e->portid = portid;
	e->cntlid = 0xFFFF;
	e->asqsz = 128;
	space_pad(e->trsvcid, sizeof(e->trsvcid), a->trsvcid);
	snprintf(e->subnqn, sizeof(e->subnqn), "%s", s->nqn);
	/* never advertise a wildcard: hosts could not connect to it */
	space_pad(e->traddr, sizeof(e->traddr),
		  wildcard(a->traddr) && local_traddr && *local_traddr ? local_traddr : a->traddr);
	e->tsas[0] = 0; /* no security */
}

/* Copies the part of [rec_off, rec_off+1024) that overlaps the window. */
static void window_copy(uint8_t *buf, uint64_t offset, uint32_t len, uint64_t rec_off, const void *rec)
{
	uint64_t lo = COMMON_MAX(offset, rec_off);
	uint64_t hi = COMMON_MIN(offset + len, rec_off + 1024);

	if (lo >= hi)
		return;
	memcpy(buf + (lo - offset), (const uint8_t *)rec + (lo - rec_off), hi - lo);
}

void nvmf_discovery_log(struct nvmf_tgt *tgt, const char *hostnqn, const char *local_traddr, uint8_t *buf,
			uint64_t offset, uint32_t len)
{
	struct nvme_discovery_log_entry e;
	struct nvme_discovery_log_header h;
	uint64_t n = 0;

	memset(buf, 0, len);
	for (struct nvmf_subsystem *s = tgt->subsystems; s; s = s->next) {
		if (!nvmf_subsystem_host_allowed(s, hostnqn))
			continue;
		for (unsigned i = 0; i < s->n_listeners; i++) {
			uint64_t rec_off = 1024 * (n + 1);
			if (rec_off < offset + len && rec_off + 1024 > offset) {
				entry_fill(&e, s, &s->listeners[i].addr, (uint16_t)i, local_traddr);
				window_copy(buf, offset, len, rec_off, &e);
			}
			n++;
		}
	}
	memset(&h, 0, sizeof(h));
	h.genctr = tgt->disc_genctr;
	h.numrec = n;
	h.recfmt = 0;
	window_copy(buf, offset, len, 0, &h);
}
