"""Three storage nodes (three disktgt + three diskengine agents, own sockets
and NVMe/TCP ports on loopback) on one PostgreSQL database: placed creates
all READY with the right free space per disk, concurrent diskctl writers
never over-commit a thick disk, a killed node's rows wait while the others
go on, and a PostgreSQL restart mid-run converges. DISKENGINE_STRESS=1 runs
3,000 creates instead of 300."""
import json
import os
import signal
import subprocess
import time

import pytest

from fleet_lib import FleetNode, disktgt_missing, helpers, parallel  # noqa: I001

STRESS = bool(os.environ.get("DISKENGINE_STRESS"))
N_CREATES = 3000 if STRESS else 300
MiB = 1 << 20


class Fleet:
    def __init__(self, url, n=3, disk_size=1 << 30):
        self.url = url
        self.nodes = []
        for i in range(1, n + 1):
            d = helpers.short_tmpdir("de-fleet%d-" % i)
            self.nodes.append(FleetNode(url, "n%d" % i, "d%d" % i, d, tick="1s",
                                        disk_size=disk_size))

    def start(self):
        for n in self.nodes:
            n.start_target()
            n.setup()
            n.start_agent()
        helpers.wait_for(lambda: all(r["lvstore_state"] == "loaded" and r["free"]
                                     for r in self.disks().values()), 60, 0.1, "lvstores loaded")
        helpers.wait_for(lambda: all(r["live"] for r in self.node_rows()), 30, 0.1, "nodes live")

    def ctl(self, *args, check=True):
        return self.nodes[0].ctl(*args, check=check)

    def disks(self):
        rows = self.nodes[0].ctl_json("disk", "list")
        rows = rows if isinstance(rows, list) else rows.get("disks", [])
        return {r["name"]: r for r in rows}

    def node_rows(self):
        rows = self.nodes[0].ctl_json("node", "list")
        return rows if isinstance(rows, list) else rows.get("nodes", [])

    def lvols(self):
        return self.nodes[0].lvols()

    def close(self):
        bad = []
        for n in self.nodes:
            rc = n.close()
            if rc not in (0, None):
                bad.append((n.name, rc, n.agent_runs[-1].output()[-2000:]))
        assert not bad, bad


@pytest.fixture
def fleet(pg_url):
    missing = disktgt_missing()
    if missing is None or missing:
        pytest.skip("disktgt not built or lacks methods: %s" % missing)
    f = Fleet(pg_url, disk_size=(8 << 30) if STRESS else (1 << 30))
    try:
        f.start()
        yield f
        f.close()
    finally:
        for n in f.nodes:
            n.stop_agent(signal.SIGKILL)
            n.stop_target(signal.SIGKILL)


def create_placed(fleet, size="4MiB"):
    p = fleet.ctl("lvol", "create", "--size", size, check=False)
    return int(p.stdout.split()[0]) if p.returncode == 0 else p


def wait_all_ready(fleet, expect, timeout):
    def ok():
        rows = [r for r in fleet.lvols() if r["id"] in expect]
        assert not [r for r in rows if r["state"] == "FAILED"], rows
        return len(rows) == len(expect) and all(r["state"] == "READY" for r in rows)
    helpers.wait_for(ok, timeout, 0.2, "all lvols READY")


def assert_free_right(fleet, before, per_disk_bytes):
    """DB free == the target's lvstore free == free before minus what the
    disk's thick lvols take, on every disk."""
    def ok():
        disks = fleet.disks()
        for n in fleet.nodes:
            lvs = n.rpc_ok("bdev_lvol_get_lvstores")[0]
            tgt_free = lvs["free_clusters"] * lvs["cluster_size"]
            want = before[n.disk_name] - per_disk_bytes.get(n.disk_name, 0)
            if disks[n.disk_name]["free"] != tgt_free or tgt_free != want:
                return False
        return True
    try:
        helpers.wait_for(ok, 20, 0.2, "free space right on every disk")
    except TimeoutError:
        raise AssertionError("free space: before %s, taken %s, now %s" % (
            before, per_disk_bytes, {k: v["free"] for k, v in fleet.disks().items()}))


def test_fleet_placed_creates_all_ready(fleet):
    before = {k: v["free"] for k, v in fleet.disks().items()}
    t = time.monotonic()
    ids = parallel(lambda _: create_placed(fleet), list(range(N_CREATES)), workers=4)
    bad = [p for p in ids if not isinstance(p, int)]
    assert not bad, "refused creates: %s" % [(p.returncode, p.stderr) for p in bad[:3]]
    wait_all_ready(fleet, set(ids), 180 if not STRESS else 900)
    took = time.monotonic() - t
    rows = [r for r in fleet.lvols() if r["id"] in set(ids)]
    per_disk = {}
    for r in rows:
        per_disk[r["disk"]] = per_disk.get(r["disk"], 0) + 4 * MiB
    # placement by most free space spreads over every disk
    for name in before:
        assert per_disk.get(name, 0) >= N_CREATES * 4 * MiB // 6, per_disk
    # every lvol exists once in its node's target, exported
    for n in fleet.nodes:
        names = sorted(int(lv["name"]) for lv in n.target_lvols() if lv["name"].isdigit())
        assert names == sorted(r["id"] for r in rows if r["node"] == n.name)
    assert_free_right(fleet, before, per_disk)
    print("fleet: %d creates READY in %.1f s (%.0f/s)" % (N_CREATES, took, N_CREATES / took))


def test_fleet_concurrent_writers_never_overcommit(fleet):
    d = fleet.disks()["d2"]
    free = d["free"]
    size = (free // 10) // (4 * MiB) * (4 * MiB)

    def one(_):
        p = fleet.ctl("lvol", "create", "--disk", "d2", "--size", "%dB" % size, check=False)
        return int(p.stdout.split()[0]) if p.returncode == 0 else p.stderr
    res = parallel(one, list(range(16)), workers=8)
    ok = [r for r in res if isinstance(r, int)]
    refused = [r for r in res if not isinstance(r, int)]
    assert len(ok) * size <= free, (len(ok), size, free)
    assert 1 <= len(ok) <= 10 and len(refused) >= 6, res
    assert all("free" in r for r in refused), refused
    wait_all_ready(fleet, set(ok), 60)
    assert_free_right(fleet, {"d1": fleet.disks()["d1"]["free"],
                              "d2": free, "d3": fleet.disks()["d3"]["free"]},
                      {"d2": len(ok) * size})


def test_fleet_node_down_rows_wait_others_unaffected(fleet):
    dead = fleet.nodes[1]
    dead.stop_agent(signal.SIGKILL)
    waiting = [dead.create("4MiB") for _ in range(3)]
    others = [n.create("4MiB") for n in (fleet.nodes[0], fleet.nodes[2]) for _ in range(3)]
    wait_all_ready(fleet, set(others), 30)
    rows = {r["id"]: r for r in fleet.lvols()}
    assert all(rows[i]["state"] == "CREATING" for i in waiting), [rows[i] for i in waiting]
    dead.start_agent()
    wait_all_ready(fleet, set(waiting), 30)


def test_fleet_postgresql_restart_mid_run(fleet, pg_cluster):
    ids = parallel(lambda _: create_placed(fleet), list(range(30)), workers=3)
    pg_cluster.restart()  # fast shutdown: every agent connection is cut
    more = []
    deadline = time.monotonic() + 30
    while len(more) < 30 and time.monotonic() < deadline:
        r = create_placed(fleet)
        if isinstance(r, int):
            more.append(r)
    assert len(more) == 30
    wait_all_ready(fleet, set(ids) | set(more), 60)
    for n in fleet.nodes:
        assert n.agent.alive(), n.agent.output()[-2000:]
    logs = "".join(n.agent.output() for n in fleet.nodes)
    assert "connection lost" in logs and "re-established" in logs
    # heartbeats resumed: every node is live again
    helpers.wait_for(lambda: all(r["live"] for r in fleet.node_rows()), 10, 0.2, "nodes live")


class BatchClient:
    """A `diskctl --json batch --keep-going` co-process on the fleet's database."""

    def __init__(self, url):
        self.p = subprocess.Popen([helpers.binary("diskctl"), "--db", url, "--json", "batch",
                                   "--keep-going"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)

    def run(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        err = self.p.stderr.read().decode()
        assert "Sanitizer" not in err and "runtime error:" not in err, err
        return rc, err


def test_fleet_batch_clients_create_and_wait(fleet):
    """Two connected clients place thick creates with --wait at once: every
    answer is READY by NOTIFY, ids distinct, free space right on every disk."""
    before = {k: v["free"] for k, v in fleet.disks().items()}

    def client(_):
        b = BatchClient(fleet.url)
        out = [b.run("lvol create --size 4MiB --wait=30") for _ in range(15)]
        assert b.close()[0] == 0
        return out
    answers = [a for part in parallel(client, [0, 1], workers=2) for a in part]
    assert all(a["exit"] == 0 for a in answers), [a for a in answers if a["exit"]][:3]
    ids = [a["result"]["id"] for a in answers]
    assert len(set(ids)) == 30
    rows = {r["id"]: r for r in fleet.lvols()}
    assert all(rows[i]["state"] == "READY" for i in ids)
    per_disk = {}
    for i in ids:
        per_disk[rows[i]["disk"]] = per_disk.get(rows[i]["disk"], 0) + 4 * MiB
    assert_free_right(fleet, before, per_disk)


def test_fleet_batch_survives_postgresql_restart(fleet, pg_cluster):
    """A batch keeps its process across a server restart: the commands while
    the server is away fail alone (exit 1, "unreachable"), later ones
    reconnect and succeed."""
    b = BatchClient(fleet.url)
    try:
        first = b.run("lvol create --size 4MiB --thin")
        assert first["exit"] == 0, first
        pg_cluster.restart()
        answers = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a = b.run("lvol create --size 4MiB --thin --wait=30")
            answers.append(a)
            if a["exit"] == 0:
                break
            assert a["exit"] == 1 and "unreachable" in a["error"], a
            time.sleep(0.05)
        assert answers[-1]["exit"] == 0, answers[-3:]
        rows = {r["id"]: r for r in fleet.lvols()}
        assert rows[answers[-1]["result"]["id"]]["state"] == "READY"
    finally:
        rc, err = b.close()
    assert rc == (0 if len(answers) == 1 else 1), err
