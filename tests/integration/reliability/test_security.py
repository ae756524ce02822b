"""Security checks (issue 9): the JSON-RPC socket and the DB files are 0600,
an NVMe/TCP host that is not on an lvol's list is refused while an allowed one
connects, and the agent never deletes (or renames) a volume it did not create:
foreign lvols, integer-named lvols without a row (orphans), foreign snapshots
and subsystems all survive many ticks and a delete flow, with one orphan event
and orphan collection off by default."""
import os
import stat
import subprocess
import time

from reliability_lib import record, require, tool

ALLOWED = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-4111-8111-000000000001"
OTHER = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-2222-4222-8222-000000000002"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_rpc_socket_is_0600(node):
    assert mode(node.sock) == 0o600, oct(mode(node.sock))


def test_db_files_are_0600(node):
    node.start_agent()
    node.wait_loaded()
    node.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", "--wait=30")
    found = []
    for suffix in ("", "-wal", "-shm"):
        p = node.db + suffix
        if os.path.exists(p):
            found.append(p)
            assert mode(p) == 0o600, "%s is %s" % (p, oct(mode(p)))
    assert node.db in found


def test_db_file_created_0600_even_with_a_lax_umask(tmpdir_short):
    require("diskctl")
    db = os.path.join(tmpdir_short, "lax.db")
    p = subprocess.run([tool("diskctl"), "--db", db, "node", "add", "n1", "--rpc-socket", "/tmp/x.sock"],
                       capture_output=True, text=True, preexec_fn=lambda: os.umask(0o000), timeout=60)
    assert p.returncode == 0, p.stderr
    assert mode(db) == 0o600, oct(mode(db))


def nvmeio(n, nqn, host, *cmd):
    trid = "traddr:127.0.0.1 trsvcid:%d subnqn:%s" % (n.port, nqn) + (" hostnqn:%s" % host if host else "")
    return subprocess.run([tool("nvmeio"), "-r", trid, "--timeout", "5000"] + list(cmd),
                          capture_output=True, text=True, timeout=60)


def test_nvme_tcp_host_not_allowed_is_refused(node):
    require("nvmeio")
    n = node
    n.start_agent()
    n.wait_loaded()
    i = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--host", ALLOWED, "--wait=30")
    nqn = [r for r in n.lvol_rows() if r["id"] == i][0]["nqn"]
    ok = nvmeio(n, nqn, ALLOWED, "write", "0", "4096", "7", "verify", "0", "4096", "7")
    assert ok.returncode == 0, ok.stderr
    refused = 0
    for host in (OTHER, None, "nqn.2026-11.io.diskengine:agent:n2", ALLOWED + "x"):
        p = nvmeio(n, nqn, host, "verify", "0", "4096", "7")
        assert p.returncode != 0, "host %s was let in" % host
        assert "connect" in p.stderr, p.stderr
        refused += 1
    sub = [s for s in n.rpc_ok("nvmf_get_subsystems") if s["nqn"] == nqn][0]
    assert not sub.get("allow_any_host"), sub
    record("security", check="host refusal", refused=refused)


def test_agent_never_deletes_what_it_did_not_create(node):
    n = node
    n.start_agent()
    n.wait_loaded()
    mine = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", "--wait=30")
    lvs = n.disk_row()["lvstore_uuid"]
    # created behind the agent's back: a foreign name, an integer name with no row
    # (an orphan by the naming scheme), a snapshot of the orphan, a foreign subsystem
    foreign = n.rpc_ok("bdev_lvol_create", {"lvol_name": "tenant-x", "size_in_mib": 4, "uuid": lvs,
                                            "thin_provision": True})
    orphan = n.rpc_ok("bdev_lvol_create", {"lvol_name": "4242", "size_in_mib": 4, "uuid": lvs,
                                           "thin_provision": True})
    snap = n.rpc_ok("bdev_lvol_snapshot", {"lvol_name": orphan, "snapshot_name": "snap-777"})
    n.rpc_ok("nvmf_create_subsystem", {"nqn": "nqn.2026-11.io.diskengine:lvol-4242", "serial_number": "X1"})
    n.rpc_ok("nvmf_create_subsystem", {"nqn": "nqn.2016-06.io.other:tenant-x"})
    # a delete flow and many ticks
    other = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", "--wait=30")
    n.ctl("lvol", "delete", other, "--wait=30")
    time.sleep(2.0)  # 10 ticks of 200 ms
    names = {x["uuid"]: x["name"] for x in n.rpc_ok("bdev_lvol_get_lvols", {"lvs_uuid": lvs})}
    for u, name in ((foreign, "tenant-x"), (orphan, "4242"), (snap, "snap-777")):
        assert names.get(u) == name, "%s (%s) was touched by the agent: %s" % (name, u, names)
    nqns = {s["nqn"] for s in n.rpc_ok("nvmf_get_subsystems")}
    assert "nqn.2016-06.io.other:tenant-x" in nqns
    events = n.q("SELECT kind, object, count, resolved_at FROM events WHERE kind = 'orphan'")
    print("orphan events: %s" % events)
    assert len(events) >= 1 and all(e["resolved_at"] == 0 for e in events), events
    assert not any("tenant-x" in e["object"] for e in events), "a foreign name judged an orphan"
    assert n.state_of(mine) == "READY"
    log = "".join(p.output() for p in n.agent_runs)
    assert "quarantine" not in log.lower(), "orphan collection ran though it is off by default"
    record("security", check="foreign volumes kept", volumes=3)
