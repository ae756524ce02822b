/*
 * cmd_setup.c: diskctl commands for the fleet's static layout:
 * `node add|list` and `disk add|list`.
 */
#include "diskctl.h"

#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int ctl_node_add(struct ctl *ctl, struct ctl_args *a)
{
	const char *sock = ctl_opt_str(a, "rpc-socket");
	char path[DB_PATH_MAX];
	int64_t id = 0;
	int rc;

	if (!sock)
		return ctl_usage(ctl->cmd, "missing --rpc-socket");
	if ((rc = ctl_abs_path("--rpc-socket", sock, path, sizeof(path))) != 0)
		return rc;
	rc = db_node_add(ctl->db, a->pos[0], path, ctl_opt_str(a, "nqn-prefix"), &id);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "node add");
	if (ctl->json) {
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(id));
		json_object_set_new(o, "name", json_string(a->pos[0]));
		ctl_json_print(o);
	}
	return EXIT_OK;
}

int ctl_node_list(struct ctl *ctl, struct ctl_args *a)
{
	struct db_node *nodes = NULL;
	int64_t now = clock_wall_ms();
	size_t n = 0, i;
	char age[32];
	int rc;

	(void)a;
	if ((rc = db_node_list(ctl->db, &nodes, &n)) < 0)
		return ctl_db_err(ctl, rc, "node list");
	if (ctl->json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, ctl_node_json(&nodes[i], now));
		ctl_json_print(arr);
	} else {
		printf("%-20s %-6s %-12s %s\n", "NAME", "LIVE", "LAST_SEEN", "RPC_SOCKET");
		for (i = 0; i < n; i++) {
			bool live = nodes[i].last_seen > 0 && now - nodes[i].last_seen <= DB_NODE_LIVE_MS;

			printf("%-20s %-6s %-12s %s\n", nodes[i].name, live ? "yes" : "no",
			       ctl_age(nodes[i].last_seen, age, sizeof(age)), nodes[i].rpc_socket);
		}
	}
	db_node_list_free(nodes, n);
	return EXIT_OK;
}

int ctl_disk_add(struct ctl *ctl, struct ctl_args *a)
{
	const char *file = ctl_opt_str(a, "file"), *dev = ctl_opt_str(a, "device");
	const char *lvs = ctl_opt_str(a, "lvstore"), *node = ctl_opt_str(a, "node");
	const char *iface = ctl_opt_str(a, "interface"), *port = ctl_opt_str(a, "port");
	const char *cs = ctl_opt_str(a, "cluster-size"), *tr = ctl_opt_str(a, "transport");
	const struct ctl_optval *listen = ctl_opt(a, "listen");
	struct db_disk d;
	int64_t id = 0;
	size_t i;
	int rc;

	memset(&d, 0, sizeof(d));
	if (!node)
		return ctl_usage(ctl->cmd, "missing --node");
	if (!!file == !!dev)
		return ctl_usage(ctl->cmd, "give exactly one of --file PATH or --device DEV");
	if (listen->count && iface)
		return ctl_usage(ctl->cmd, "give either --listen or --interface, not both");
	if (!listen->count && !iface)
		return ctl_usage(ctl->cmd, "missing --listen IP:PORT or --interface IFNAME");
	if (port && !iface)
		return ctl_usage(ctl->cmd, "--port goes with --interface (use --listen IP:PORT)");
	if (listen->count > DB_LISTEN_MAX)
		return ctl_usage(ctl->cmd, "too many --listen addresses (at most %d)", DB_LISTEN_MAX);
	if (strlen(a->pos[0]) >= sizeof(d.name) || strlen(node) >= sizeof(d.node))
		return ctl_err(EXIT_ERR, "invalid name (at most %d characters)", DB_NAME_MAX - 1);
	snprintf(d.name, sizeof(d.name), "%s", a->pos[0]);
	snprintf(d.node, sizeof(d.node), "%s", node);
	d.is_device = dev != NULL;
	if ((rc = ctl_abs_path(dev ? "--device" : "--file", dev ? dev : file, d.path,
			       sizeof(d.path))) != 0)
		return rc;
	if (lvs) {
		if (strlen(lvs) >= sizeof(d.lvstore) || !*lvs)
			return ctl_err(EXIT_ERR, "invalid lvstore name (1-%d characters)", DB_NAME_MAX - 1);
		snprintf(d.lvstore, sizeof(d.lvstore), "%s", lvs);
	}
	if (cs && (rc = ctl_parse_size(ctl->cmd, "cluster size", cs, &d.cluster_size)) != 0)
		return rc;
	if (cs && d.cluster_size == 0)
		return ctl_err(EXIT_ERR, "cluster size must be a power of two between 4KiB and 1GiB");
	for (i = 0; i < listen->count; i++) {
		if (db_listen_parse(listen->multi[i], &d.listen[i]) < 0)
			return ctl_usage(ctl->cmd, "invalid --listen '%.64s': expected IPv4:PORT or [IPv6]:PORT",
					 listen->multi[i]);
	}
	d.listen_count = listen->count;
	if (iface) {
		if (!*iface || strlen(iface) >= sizeof(d.interface))
			return ctl_err(EXIT_ERR, "invalid interface name '%.64s'", iface);
		snprintf(d.interface, sizeof(d.interface), "%s", iface);
		d.port = DB_PORT_DEFAULT;
		if (port) {
			char *end;
			long p;

			errno = 0;
			p = strtol(port, &end, 10);
			if (errno || *end || p < 1 || p > 65535 || port[0] < '0' || port[0] > '9')
				return ctl_usage(ctl->cmd, "invalid --port '%.32s': expected 1-65535", port);
			d.port = (uint16_t)p;
		}
	}
	if (tr && db_transport_parse(tr, &d.transport) < 0)
		return ctl_usage(ctl->cmd, "invalid --transport '%.32s': expected TCP or RDMA", tr);
	rc = db_disk_add(ctl->db, &d, &id);
	if (rc < 0)
		return ctl_db_err(ctl, rc, "disk add");
	if (ctl->json) {
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(id));
		json_object_set_new(o, "name", json_string(d.name));
		ctl_json_print(o);
	}
	return EXIT_OK;
}

int ctl_disk_list(struct ctl *ctl, struct ctl_args *a)
{
	struct db_disk *disks = NULL;
	size_t n = 0, i;
	char c[32], f[32], where[96];
	int rc;

	if ((rc = db_disk_list(ctl->db, ctl_opt_str(a, "node"), &disks, &n)) < 0)
		return ctl_db_err(ctl, rc, "disk list");
	if (ctl->json) {
		json_t *arr = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(arr, ctl_disk_json(&disks[i]));
		ctl_json_print(arr);
	} else {
		printf("%-16s %-16s %-16s %-8s %-10s %-10s %-5s %-24s %s\n", "NAME", "NODE", "LVSTORE",
		       "STATE", "CAPACITY", "FREE", "TRANS", "LISTEN", "PATH");
		for (i = 0; i < n; i++) {
			const struct db_disk *d = &disks[i];

			if (d->interface[0])
				snprintf(where, sizeof(where), "%s:%u", d->interface, d->port);
			else if (d->listen_count)
				snprintf(where, sizeof(where), d->listen[0].ipv6 ? "[%s]:%u%s" : "%s:%u%s",
					 d->listen[0].traddr, d->listen[0].port,
					 d->listen_count > 1 ? ",..." : "");
			else
				snprintf(where, sizeof(where), "-");
			printf("%-16s %-16s %-16s %-8s %-10s %-10s %-5s %-24s %s\n", d->name, d->node,
			       d->lvstore, db_lvstore_state_name(d->lvstore_state),
			       d->observed_at ? ctl_size(d->capacity, c, sizeof(c)) : "?",
			       d->observed_at ? ctl_size(d->free, f, sizeof(f)) : "?",
			       db_transport_name(d->transport), where, d->path);
		}
	}
	db_disk_list_free(disks, n);
	return EXIT_OK;
}
