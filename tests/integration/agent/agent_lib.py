"""Helpers of the agent's integration tests (a uniquely named module: every
area has a conftest.py, so tests import from here, never from conftest):
a node made of real processes (a target, diskctl, diskengine) on a fresh DB
(an SQLite file, or a fresh PostgreSQL database: Node(db=URL)), the target
probe, and the convergence invariants. Tests see the DB only through diskctl,
so every assertion holds for both backends."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import helpers  # noqa: E402
from pg_lib import free_port  # noqa: E402,F401 (one definition, shared with bench/fleet)

FAKE = os.path.join(HERE, "fake_spdk.py")

# Every method the agent calls; the disktgt variant needs all of them.
AGENT_METHODS = [
    "bdev_aio_create", "bdev_wait_for_examine", "bdev_get_bdevs", "bdev_lvol_create_lvstore",
    "bdev_lvol_get_lvstores", "bdev_lvol_create", "bdev_lvol_get_lvols", "bdev_lvol_resize",
    "bdev_lvol_delete", "bdev_lvol_snapshot", "bdev_lvol_clone", "nvmf_create_transport",
    "nvmf_create_subsystem", "nvmf_delete_subsystem", "nvmf_get_subsystems",
    "nvmf_subsystem_add_listener", "nvmf_subsystem_remove_listener", "nvmf_subsystem_add_host",
    "nvmf_subsystem_add_ns",
    "nvmf_subsystem_remove_ns", "disktgt_inject_fault",
]


def tgt_binary():
    """disktgt of the build under test (DISKENGINE_DISKTGT overrides, for development)."""
    return os.environ.get("DISKENGINE_DISKTGT") or helpers.binary("disktgt")


def have_binary(name):
    if name == "disktgt" and os.environ.get("DISKENGINE_DISKTGT"):
        return os.path.exists(os.environ["DISKENGINE_DISKTGT"])
    try:
        helpers.binary(name)
        return True
    except (FileNotFoundError, RuntimeError):
        return False


class Node:
    """One storage node: target + agent + the DB, driven through diskctl."""

    def __init__(self, kind, d, tick="200ms", disk_size=2 << 30, db=None):
        self.kind = kind
        self.dir = d
        # an SQLite file in the node's directory, or a postgresql:// URL
        self.db = db or os.path.join(d, "de.db")
        self.sock = os.path.join(d, "tgt.sock")
        self.disk_file = os.path.join(d, "disk0.img")
        self.state = os.path.join(d, "fake-state.json")
        self.port = free_port()
        self.tick = tick
        self.tgt = None
        self.agent = None
        self.agent_runs = []
        self.tgt_runs = []
        with open(self.disk_file, "wb") as f:
            f.truncate(disk_size)

    # -------------------------------------------------------------- processes
    @property
    def backend(self):
        return "postgresql" if self.db.startswith(("postgresql:", "postgres:")) else "sqlite"

    def start_target(self, extra=()):
        """extra: more disktgt arguments (e.g. --rpc-poll-interval 4ms)."""
        log = os.path.join(self.dir, "target.log")
        if self.kind == "fake":
            args = ["/usr/bin/python3", FAKE, "-r", self.sock, "--state", self.state]
        else:
            args = [tgt_binary(), "-r", self.sock, "--enable-fault-injection"] + list(extra)
        self.tgt = helpers.Proc(args, log)
        self.tgt_runs.append(self.tgt)
        helpers.wait_socket(self.sock, self.tgt)
        return self.tgt

    def stop_target(self, sig=signal.SIGTERM):
        if self.tgt is not None:
            self.tgt.stop(sig)
            self.tgt = None

    def start_agent(self, env=None, extra=()):
        log = os.path.join(self.dir, "agent.log")
        args = [helpers.binary("diskengine"), "--db", self.db, "--node", "n1",
                "--tick", self.tick] + list(extra)
        self.agent = helpers.Proc(args, log, env=env)
        self.agent_runs.append(self.agent)
        return self.agent

    def stop_agent(self, sig=signal.SIGTERM):
        rc = None
        if self.agent is not None:
            rc = self.agent.stop(sig)
            self.agent = None
        return rc

    def close(self):
        rc_agent = self.stop_agent()
        self.stop_target()
        for p in self.agent_runs:
            p.assert_clean()
        return rc_agent

    # -------------------------------------------------------------- diskctl
    def ctl(self, *args, check=True, timeout=60):
        cmd = [helpers.binary("diskctl"), "--db", self.db] + [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("diskctl %s -> %d\n%s%s" % (" ".join(map(str, args)), p.returncode,
                                                           p.stdout, p.stderr))
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def setup(self):
        self.ctl("node", "add", "n1", "--rpc-socket", self.sock)
        self.ctl("disk", "add", "d1", "--node", "n1", "--file", self.disk_file,
                 "--listen", "127.0.0.1:%d" % self.port)

    def create(self, size, thin=False, wait=False, hosts=()):
        args = ["lvol", "create", "--disk", "d1", "--size", size]
        if thin:
            args.append("--thin")
        for h in hosts:
            args += ["--host", h]
        if wait:
            args.append("--wait=30")
        out = self.ctl(*args).stdout.strip().splitlines()
        return int(out[0].split()[-1])

    def lvols(self, state=None):
        rows = self.ctl_json("lvol", "list")
        if isinstance(rows, dict):
            rows = rows.get("lvols", rows.get("items", []))
        if state:
            rows = [r for r in rows if r["state"] == state]
        return rows

    def lvol(self, lvol_id):
        return self.ctl_json("lvol", "show", lvol_id)

    def events(self, all_=True):
        rows = self.ctl_json("events", *(["--all"] if all_ else []))
        if isinstance(rows, dict):
            rows = rows.get("events", [])
        return rows

    def disk(self):
        rows = self.ctl_json("disk", "list")
        if isinstance(rows, dict):
            rows = rows.get("disks", [])
        return [r for r in rows if r["name"] == "d1"][0]

    # -------------------------------------------------------------- target
    def rpc(self, method, params=None):
        c = helpers.RpcClient(self.sock, timeout=30)
        try:
            return c.call(method, params)
        finally:
            c.close()

    def rpc_ok(self, method, params=None):
        r = self.rpc(method, params)
        assert "error" not in r, "%s: %s" % (method, r)
        return r["result"]

    def target_lvols(self):
        out = []
        for s in self.rpc_ok("bdev_lvol_get_lvstores"):
            out += self.rpc_ok("bdev_lvol_get_lvols", {"lvs_uuid": s["uuid"]})
        return out

    def subsystems(self):
        return {s["nqn"]: s for s in self.rpc_ok("nvmf_get_subsystems") if s.get("subtype") != "Discovery"}

    def inject(self, method, action="error", count=1, code=-32602, message="Invalid parameters"):
        self.rpc_ok("disktgt_inject_fault", {"method": method, "action": action, "count": count,
                                             "code": code, "message": message})

    def wait_all(self, state, ids=None, timeout=60):
        def ok():
            rows = self.lvols()
            if ids is not None:
                rows = [r for r in rows if r["id"] in ids]
            return rows and all(r["state"] == state for r in rows)
        helpers.wait_for(ok, timeout, interval=0.1, what="all lvols %s" % state)


def require(kind):
    for b in ("diskctl", "diskengine") + (("disktgt",) if kind == "disktgt" else ()):
        if not have_binary(b):
            pytest.skip("%s is not built yet" % b)


def disktgt_missing_methods(d):
    """Starts a throw-away disktgt and lists the agent's methods it lacks
    (not registered, or registered but answering "not supported")."""
    sock = os.path.join(d, "probe.sock")
    img = os.path.join(d, "probe.img")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    p = helpers.Proc([tgt_binary(), "-r", sock, "--enable-fault-injection"],
                     os.path.join(d, "probe.log"))
    missing = []
    try:
        helpers.wait_socket(sock, p)
        c = helpers.RpcClient(sock)
        have = set(c.call("rpc_get_methods")["result"])
        missing = [m for m in AGENT_METHODS if m not in have]
        steps = [
            ("bdev_aio_create", {"filename": img, "name": "probe0"}),
            ("bdev_lvol_create_lvstore", {"bdev_name": "probe0", "lvs_name": "probe"}),
            ("bdev_lvol_create", {"lvol_name": "1", "size_in_mib": 4, "lvs_name": "probe"}),
            ("nvmf_create_transport", {"trtype": "TCP"}),
            ("nvmf_create_subsystem", {"nqn": "nqn.2026-11.io.probe:1"}),
            ("nvmf_subsystem_add_ns", {"nqn": "nqn.2026-11.io.probe:1",
                                       "namespace": {"bdev_name": "probe/1"}}),
        ]
        for method, params in steps:
            if method in missing:
                continue
            r = c.call(method, params)
            err = r.get("error")
            if err and (err.get("code") == -95 or "not supported" in err.get("message", "")):
                missing.append(method + " (answers: %s)" % err.get("message"))
        c.close()
    finally:
        p.stop()
    return missing


# ------------------------------------------------------------------ invariants

def our_lvols(node):
    """Target lvols named in the agent's scheme (decimal ids)."""
    return [lv for lv in node.target_lvols() if lv["name"].isdigit()]


def assert_converged(node, expect_ready):
    """Every row READY, exported once, no duplicate or orphan in the target,
    free bytes in the DB equal to the target's."""
    rows = {r["id"]: r for r in node.lvols()}
    assert sorted(rows) == sorted(expect_ready), rows.keys()
    tl = our_lvols(node)
    names = [lv["name"] for lv in tl]
    assert len(names) == len(set(names)), "duplicate lvols: %s" % names
    assert sorted(int(n) for n in names) == sorted(rows), "orphans or missing: %s" % names
    by_name = {lv["name"]: lv for lv in tl}
    subs = node.subsystems()
    for i, r in rows.items():
        assert r["state"] == "READY", r
        assert r["uuid"] == by_name[str(i)]["uuid"]
        assert r["nqn"] == "nqn.2026-11.io.diskengine:lvol-%d" % i
        sub = subs[r["nqn"]]
        assert [ns["nsid"] for ns in sub["namespaces"]] == [1], sub
        assert sub["namespaces"][0]["bdev_name"] == r["uuid"]
        assert sub["serial_number"] == "DE%018d" % i
        assert sub["model_number"] == "diskengine lvol"
        assert sub["allow_any_host"] is False
        assert any(h["nqn"] == "nqn.2026-11.io.diskengine:agent:n1" for h in sub["hosts"])
        assert [(a["traddr"], a["trsvcid"]) for a in sub["listen_addresses"]] == \
            [("127.0.0.1", str(node.port))]
    ours = [n for n in subs if ":lvol-" in n]
    assert len(ours) == len(rows), "stray subsystems: %s" % ours
    wait_free_synced(node)


def wait_free_synced(node, timeout=10):
    def ok():
        s = node.rpc_ok("bdev_lvol_get_lvstores")[0]
        return node.disk()["free"] == s["free_clusters"] * s["cluster_size"]
    helpers.wait_for(ok, timeout, interval=0.1, what="DB free == target free")


def open_events(node, kind=None, obj=None):
    return [e for e in node.events(all_=True)
            if (kind is None or e["kind"] == kind) and (obj is None or e["object"] == obj)]


_probe = {}


def disktgt_missing():
    """The agent's methods disktgt lacks (probed once per session); None when
    disktgt is not built."""
    require("fake")
    if "missing" not in _probe:
        try:
            require("disktgt")
        except pytest.skip.Exception:
            _probe["missing"] = None
            return None
        d = helpers.short_tmpdir("de-probe-")
        try:
            _probe["missing"] = disktgt_missing_methods(d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return _probe["missing"]
