/*
 * nvmeio: a small command-line driver of the NVMe/TCP host library, used by
 * the integration tests and bench/nvme/run to talk to a real target:
 *
 *   nvmeio -r 'traddr:IP trsvcid:PORT subnqn:NQN [hostnqn:NQN] [ns:N]'
 *          [--timeout MS] [--hdgst] [--ddgst] [--queues N] CMD ARGS... [CMD ARGS...]
 *
 * Commands (run in order; sizes accept K/M/G suffixes):
 *   identify                   print controller/namespace facts as JSON
 *   write OFF LEN SEED         write a deterministic pattern
 *   verify OFF LEN SEED        read back and compare with the pattern
 *   zero OFF LEN               Write Zeroes
 *   check-zero OFF LEN         read back and require all zero bytes
 *   deallocate OFF LEN         Dataset Management deallocate
 *   flush                      Flush
 *   zero-bench LEN             time Write Zeroes of [0, LEN) and print GiB/s
 * Exit: 0 ok, 1 failure (one line on stderr naming the errno, e.g. ECONNRESET),
 * 2 usage.
 */
#include "common/common.h"
#include "nvme/nvme.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *errno_name(int rc)
{
	switch (-rc) {
	case ECONNRESET: return "ECONNRESET";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EIO: return "EIO";
	case EINVAL: return "EINVAL";
	case ERANGE: return "ERANGE";
	case ENOENT: return "ENOENT";
	case ENOMEM: return "ENOMEM";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	default: return "E?";
	}
}

static uint8_t pattern_byte(uint64_t off, uint32_t seed)
{
	uint32_t w = (uint32_t)((off >> 2) * 0x9E3779B1u) ^ (seed * 0x85EBCA6Bu) ^ (uint32_t)(off >> 34);

	return (uint8_t)(w >> ((off & 3) * 8));
}

static int parse_size(const char *s, uint64_t *out)
{
	if (size_parse(s, out) < 0) {
		fprintf(stderr, "nvmeio: bad size '%s'\n", s);
		return -EINVAL;
	}
	return 0;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void json_str(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		if (s[i] == '"' || s[i] == '\\')
			putchar('\\');
		putchar((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?');
	}
	putchar('"');
}

static int cmd_identify(struct nvme_ctrlr *c, uint32_t nsid, uint32_t timeout)
{
	const struct nvme_id_ctrlr *id = nvme_ctrlr_data(c);
	struct nvme_ns_info ns;
	char nguid[33], uuid[33], eui[17];
	uint64_t vs = 0;
	int rc;

	rc = nvme_ns_info_get(c, nsid, &ns, timeout);
	if (rc < 0)
		return rc;
	rc = nvme_ctrlr_prop_get(c, NVME_REG_VS, false, &vs, timeout);
	if (rc < 0)
		return rc;
	hex(ns.nguid, 16, nguid);
	hex(ns.uuid, 16, uuid);
	hex(ns.eui64, 8, eui);
	printf("{\"cntlid\": %u, \"connect_cntlid\": %u, \"vs\": %u, \"ver\": %u, \"kas\": %u, "
	       "\"sgls\": %u, \"ioccsz\": %u, \"iorcsz\": %u, \"icdoff\": %u, \"mdts\": %u, "
	       "\"maxcmd\": %u, \"nn\": %u, \"oncs\": %u, \"vwc\": %u, \"cmic\": %u, "
	       "\"cntrltype\": %u, \"sqes\": %u, \"cqes\": %u, \"aerl\": %u, \"lpa\": %u, ",
	       id->cntlid, nvme_ctrlr_cntlid(c), (unsigned)vs, id->ver, id->kas, id->sgls, id->ioccsz,
	       id->iorcsz, id->icdoff, id->mdts, id->maxcmd, id->nn, id->oncs, id->vwc, id->cmic,
	       id->cntrltype, id->sqes, id->cqes, id->aerl, id->lpa);
	printf("\"subnqn\": ");
	json_str(id->subnqn, sizeof(id->subnqn));
	printf(", \"sn\": ");
	json_str(id->sn, sizeof(id->sn));
	printf(", \"mn\": ");
	json_str(id->mn, sizeof(id->mn));
	printf(", \"fr\": ");
	json_str(id->fr, sizeof(id->fr));
	printf(", \"ns\": {\"nsid\": %u, \"block_size\": %u, \"num_blocks\": %llu, "
	       "\"nguid\": \"%s\", \"uuid\": \"%s\", \"eui64\": \"%s\"}}\n",
	       ns.nsid, ns.block_size, (unsigned long long)ns.num_blocks, nguid, uuid, eui);
	return 0;
}

static int cmd_write(struct nvme_ctrlr *c, uint32_t nsid, uint64_t off, uint64_t len, uint32_t seed,
		     uint32_t timeout, bool zero_check, bool verify)
{
	const uint64_t chunk = 4u * 1024 * 1024;
	uint8_t *buf = malloc(chunk);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t done = 0; done < len && rc == 0; done += chunk) {
		uint64_t n = COMMON_MIN(chunk, len - done);

		if (!verify && !zero_check) {
			for (uint64_t i = 0; i < n; i++)
				buf[i] = pattern_byte(off + done + i, seed);
			rc = nvme_ns_write(c, nsid, off + done, buf, n, timeout);
			continue;
		}
		memset(buf, 0xA5, n);
		rc = nvme_ns_read(c, nsid, off + done, buf, n, timeout);
		for (uint64_t i = 0; rc == 0 && i < n; i++) {
			uint8_t want = zero_check ? 0 : pattern_byte(off + done + i, seed);

			if (buf[i] != want) {
				fprintf(stderr, "nvmeio: mismatch at offset %llu: got 0x%02x want 0x%02x\n",
					(unsigned long long)(off + done + i), buf[i], want);
				rc = 1;
			}
		}
	}
	free(buf);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nvmeio -r 'traddr:IP trsvcid:PORT subnqn:NQN [hostnqn:NQN] [ns:N]'\n"
		   "              [--timeout MS] [--hdgst] [--ddgst] [--queues N] CMD ARGS...\n"
		   "commands: identify | write OFF LEN SEED | verify OFF LEN SEED | zero OFF LEN |\n"
		   "          check-zero OFF LEN | deallocate OFF LEN | flush | zero-bench LEN\n");
}

int main(int argc, char **argv)
{
	static char traddr[256], trsvcid[32] = "4420", subnqn[256], hostnqn[256];
	struct nvme_connect_opts o;
	struct nvme_ctrlr *c = NULL;
	uint32_t nsid = 1, timeout = 10000;
	uint16_t status = 0;
	int i = 1, rc;

	memset(&o, 0, sizeof(o));
	log_level_set(getenv("NVMEIO_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
			char *copy = strdup(argv[++i]), *save = NULL, *tok;

			for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
				char *v = strchr(tok, ':');

				if (!v)
					continue;
				*v++ = '\0';
				if (strcasecmp(tok, "traddr") == 0)
					snprintf(traddr, sizeof(traddr), "%s", v);
				else if (strcasecmp(tok, "trsvcid") == 0)
					snprintf(trsvcid, sizeof(trsvcid), "%s", v);
				else if (strcasecmp(tok, "subnqn") == 0)
					snprintf(subnqn, sizeof(subnqn), "%s", v);
				else if (strcasecmp(tok, "hostnqn") == 0)
					snprintf(hostnqn, sizeof(hostnqn), "%s", v);
				else if (strcasecmp(tok, "ns") == 0)
					nsid = (uint32_t)strtoul(v, NULL, 10);
			}
			free(copy);
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			timeout = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--hdgst") == 0) {
			o.header_digest = true;
		} else if (strcmp(argv[i], "--ddgst") == 0) {
			o.data_digest = true;
		} else if (strcmp(argv[i], "--queues") == 0 && i + 1 < argc) {
			o.io_queues = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!traddr[0] || !subnqn[0] || i >= argc) {
		usage(stderr);
		return 2;
	}
	o.traddr = traddr;
	o.trsvcid = trsvcid;
	o.subnqn = subnqn;
	o.hostnqn = hostnqn[0] ? hostnqn : NULL;
	o.timeout_ms = timeout;
	o.status_out = &status;
	rc = nvme_ctrlr_connect(&o, &c);
	if (rc < 0) {
		fprintf(stderr, "nvmeio: connect failed: %s %s status=0x%x (%s)\n", errno_name(rc),
			common_strerror(rc), status, nvme_status_str(status));
		return 1;
	}
	while (i < argc && rc == 0) {
		const char *cmd = argv[i++];
		uint64_t a = 0, b = 0, s = 0;
		int need = 0;

		if (!strcmp(cmd, "write") || !strcmp(cmd, "verify"))
			need = 3;
		else if (!strcmp(cmd, "zero") || !strcmp(cmd, "check-zero") || !strcmp(cmd, "deallocate"))
			need = 2;
		else if (!strcmp(cmd, "zero-bench"))
			need = 1;
		else if (strcmp(cmd, "identify") && strcmp(cmd, "flush")) {
			fprintf(stderr, "nvmeio: unknown command '%s'\n", cmd);
			rc = 2;
			break;
		}
		if (i + need > argc) {
			fprintf(stderr, "nvmeio: %s needs %d arguments\n", cmd, need);
			rc = 2;
			break;
		}
		if ((need >= 1 && parse_size(argv[i], &a) < 0) ||
		    (need >= 2 && parse_size(argv[i + 1], &b) < 0) ||
		    (need >= 3 && parse_size(argv[i + 2], &s) < 0)) {
			rc = 2;
			break;
		}
		i += need;
		if (!strcmp(cmd, "identify")) {
			rc = cmd_identify(c, nsid, timeout);
		} else if (!strcmp(cmd, "write")) {
			rc = cmd_write(c, nsid, a, b, (uint32_t)s, timeout, false, false);
		} else if (!strcmp(cmd, "verify")) {
			rc = cmd_write(c, nsid, a, b, (uint32_t)s, timeout, false, true);
		} else if (!strcmp(cmd, "check-zero")) {
			rc = cmd_write(c, nsid, a, b, 0, timeout, true, true);
		} else if (!strcmp(cmd, "zero")) {
			rc = nvme_ns_write_zeroes(c, nsid, a, b, timeout);
		} else if (!strcmp(cmd, "deallocate")) {
			rc = nvme_ns_deallocate(c, nsid, a, b, timeout);
		} else if (!strcmp(cmd, "flush")) {
			rc = nvme_ns_flush(c, nsid, timeout);
		} else {
			uint64_t t0 = clock_mono_us(), dt;

			rc = nvme_ns_write_zeroes(c, nsid, 0, a, timeout);
			dt = clock_mono_us() - t0;
			if (rc == 0)
				printf("zeroed %llu bytes in %.3f s: %.2f GiB/s\n", (unsigned long long)a,
				       dt / 1e6, (double)a / (1024.0 * 1024 * 1024) / (dt / 1e6));
		}
		if (rc < 0)
			fprintf(stderr, "nvmeio: %s failed: %s %s status=0x%x (%s)\n", cmd, errno_name(rc),
				common_strerror(rc), nvme_ctrlr_last_status(c),
				nvme_status_str(nvme_ctrlr_last_status(c)));
	}
	fflush(stdout);
	nvme_ctrlr_destroy(c);
	return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}
