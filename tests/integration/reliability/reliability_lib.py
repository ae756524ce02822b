"""Shared code of the reliability suite (issue 9): a node made of real processes
(disktgt with fault injection, diskengine, diskctl) on its own socket, DB and
disk file, plus the invariant checker every test ends with and a recorder of
figures for scripts/stress's summary table.

Figures: when DISKENGINE_RELIABILITY_REPORT names a file, each test appends
JSON lines to it ({"kind": "crash_point" | "target_kill" | "bad_input" |
"violation" | ..., ...}); scripts/stress aggregates them."""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import helpers  # noqa: E402
from helpers import free_port  # noqa: E402

STRESS = os.environ.get("DISKENGINE_STRESS") == "1"
MiB = 1 << 20
CRASH_EXIT = 86
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# Event kinds that must not stay open once the system has converged.
BAD_OPEN_EVENTS = ("drift-missing", "drift-size", "drift-uuid", "orphan", "lvstore-absent",
                   "target-unreachable", "disk-error")

_report_lock = threading.Lock()


def record(kind, **fields):
    """Appends one figure for scripts/stress (no-op unless the report file is set)."""
    path = os.environ.get("DISKENGINE_RELIABILITY_REPORT")
    if not path:
        return
    fields["kind"] = kind
    with _report_lock, open(path, "a") as f:
        f.write(json.dumps(fields) + "\n")


def tool(name):
    """Path of a built program of the build under test (apps/* or bench/*/name)."""
    try:
        return helpers.binary(name)
    except FileNotFoundError:
        pass
    for dirpath, _, files in os.walk(os.path.join(helpers.build_dir(), "bench")):
        if name in files:
            return os.path.join(dirpath, name)
    raise FileNotFoundError(name)


def require(*names):
    for n in names:
        try:
            tool(n)
        except (FileNotFoundError, RuntimeError):
            pytest.skip("%s is not built (build dir %s)" % (n, helpers.build_dir()))


def crash_points():
    p = subprocess.run([tool("diskengine"), "--list-crash-points"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


class CtlError(RuntimeError):
    pass


class Node:
    """One storage node: disktgt + diskengine + a SQLite DB, driven through diskctl.
    Everything lives in its own short directory, so nodes run side by side."""

    def __init__(self, d, tick="200ms", disk_size=512 * MiB, agent_config=None, db_path=None):
        self.dir = d
        self.db = db_path or os.path.join(d, "de.db")
        self.sock = os.path.join(d, "tgt.sock")
        self.disk_file = os.path.join(d, "disk0.img")
        self.port = free_port()
        self.tick = tick
        self.tgt = None
        self.agent = None
        self.agent_runs = []
        self.tgt_runs = []
        self.config = None
        if agent_config:
            self.config = os.path.join(d, "agent.conf")
            with open(self.config, "w") as f:
                f.write(agent_config)
        with open(self.disk_file, "wb") as f:
            f.truncate(disk_size)

    # ------------------------------------------------------------ processes
    def start_target(self, fault_injection=True, extra=()):
        n = self.tgt_seq = getattr(self, "tgt_seq", -1) + 1
        args = [tool("disktgt"), "-r", self.sock] + (["--enable-fault-injection"] if fault_injection else [])
        args += list(extra)
        self.tgt = helpers.Proc(args, os.path.join(self.dir, "target.%d.log" % n))
        self.tgt_runs.append(self.tgt)
        helpers.wait_socket(self.sock, self.tgt, timeout=30)
        return self.tgt

    def stop_target(self, sig=signal.SIGTERM):
        rc = None
        if self.tgt is not None:
            rc = self.tgt.stop(sig)
            self.tgt = None
        return rc

    def start_agent(self, env=None, extra=()):
        n = self.agent_seq = getattr(self, "agent_seq", -1) + 1
        args = [tool("diskengine"), "--db", self.db, "--node", "n1", "--tick", self.tick]
        if self.config:
            args += ["--config", self.config]
        args += list(extra)
        e = {"DISKENGINE_CRASH_AT": ""}
        e.update(env or {})
        self.agent = helpers.Proc(args, os.path.join(self.dir, "agent.%d.log" % n), env=e)
        self.agent_runs.append(self.agent)
        return self.agent

    def stop_agent(self, sig=signal.SIGTERM):
        rc = None
        if self.agent is not None:
            rc = self.agent.stop(sig)
            self.agent = None
        return rc

    def close(self):
        """Stops both; returns the list of problems (exit codes, sanitizer reports)."""
        problems = []
        rc = self.stop_agent()
        if rc not in (None, 0):
            problems.append("diskengine exited %s on SIGTERM" % rc)
        rc = self.stop_target()
        if rc not in (None, 0):
            problems.append("disktgt exited %s on SIGTERM" % rc)
        for p in self.agent_runs + self.tgt_runs:
            out = p.output()
            for bad in SANITIZER_MARKS:
                if bad in out:
                    problems.append("%s in %s (%s):\n%s" % (bad, p.args[0], p.log_path, out[-3000:]))
        return problems

    def kill_all(self):
        if self.agent is not None:
            self.agent.kill()
            self.agent = None
        if self.tgt is not None:
            self.tgt.kill()
            self.tgt = None

    def discard(self, keep=False):
        """Kills both processes, then removes the node's directory unless
        keep or DISKENGINE_KEEP_TMP asks to keep it (then prints its path)."""
        self.kill_all()
        if keep or os.environ.get("DISKENGINE_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ diskctl
    def ctl(self, *args, check=True, timeout=120):
        cmd = [tool("diskctl"), "--db", self.db] + [str(a) for a in args]
        env = dict(os.environ)
        env.pop("DISKENGINE_DB", None)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        for bad in SANITIZER_MARKS:
            assert bad not in p.stderr, "%s in diskctl %s:\n%s" % (bad, args, p.stderr[-3000:])
        if check and p.returncode != 0:
            raise CtlError("diskctl %s -> %d\n%s%s" % (" ".join(map(str, args)), p.returncode,
                                                     p.stdout, p.stderr))
        return p

    def ctl_id(self, *args):
        return int(self.ctl(*args).stdout.strip().splitlines()[0].split()[-1])

    def setup(self, cluster_size=None):
        self.ctl("node", "add", "n1", "--rpc-socket", self.sock)
        extra = ["--cluster-size", cluster_size] if cluster_size else []
        self.ctl("disk", "add", "d1", "--node", "n1", "--file", self.disk_file,
                 "--listen", "127.0.0.1:%d" % self.port, *extra)

    # ------------------------------------------------------------ the DB (read side)
    def q(self, sql, params=()):
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def lvol_rows(self):
        return self.q("SELECT * FROM lvols ORDER BY id")

    def snap_rows(self):
        return self.q("SELECT * FROM snapshots ORDER BY id")

    def disk_row(self):
        return self.q("SELECT * FROM disks WHERE name='d1'")[0]

    def open_events(self):
        return self.q("SELECT kind, object, detail FROM events WHERE resolved_at = 0")

    def state_of(self, lvol_id):
        r = self.q("SELECT state FROM lvols WHERE id=?", (lvol_id,))
        return r[0]["state"] if r else None

    def snap_state(self, snap_id):
        r = self.q("SELECT state FROM snapshots WHERE id=?", (snap_id,))
        return r[0]["state"] if r else None

    # ------------------------------------------------------------ the target
    def rpc(self, method, params=None, timeout=30):
        c = helpers.RpcClient(self.sock, timeout=timeout)
        try:
            return c.call(method, params)
        finally:
            c.close()

    def rpc_ok(self, method, params=None):
        r = self.rpc(method, params)
        assert "error" not in r, "%s: %s" % (method, r)
        return r["result"]

    def inject(self, method, action="error", count=1, code=-32602, message="Invalid parameters"):
        self.rpc_ok("disktgt_inject_fault", {"method": method, "action": action, "count": count,
                                             "code": code, "message": message})

    def wait_loaded(self, timeout=60):
        def ok():
            self.check_alive()
            d = self.disk_row()
            return d["lvstore_state"] == "loaded" and d["capacity"] > 0
        helpers.wait_for(ok, timeout, interval=0.05, what="lvstore loaded")

    def check_alive(self):
        if self.agent is not None and not self.agent.alive():
            raise RuntimeError("agent exited %s:\n%s" % (self.agent.p.returncode, self.agent.output()[-3000:]))

    def wait_state(self, lvol_id, states, timeout=60, snapshot=False):
        states = (states,) if isinstance(states, str) else tuple(states)
        get = self.snap_state if snapshot else self.state_of

        def ok():
            self.check_alive()
            return get(lvol_id) in states
        helpers.wait_for(ok, timeout, interval=0.05,
                         what="%s %s in %s (now %s)" % ("snapshot" if snapshot else "lvol", lvol_id,
                                                        states, get(lvol_id)))

    # ------------------------------------------------------------ invariants
    def converged_problems(self, allowed_events=()):
        """Every invariant of issue 9, checked once; returns a list of violations."""
        v = []
        lvols = self.lvol_rows()
        snaps = self.snap_rows()
        disk = self.disk_row()
        for r in lvols:
            if r["state"] not in ("READY", "DELETED", "FAILED"):
                v.append("lvol %d not terminal: %s" % (r["id"], r["state"]))
            if r["state"] == "FAILED" and not r["reason"]:
                v.append("lvol %d FAILED without a reason" % r["id"])
            if r["state"] == "READY" and (r["zero_to"] or r["zero_from"]):
                v.append("lvol %d READY with a zeroing intent left [%d,%d)" % (r["id"], r["zero_from"], r["zero_to"]))
        for s in snaps:
            if s["state"] not in ("READY", "DELETED", "FAILED"):
                v.append("snapshot %d not terminal: %s" % (s["id"], s["state"]))
        try:
            stores = self.rpc_ok("bdev_lvol_get_lvstores")
            tl = []
            for s in stores:
                tl += self.rpc_ok("bdev_lvol_get_lvols", {"lvs_uuid": s["uuid"]})
            bdevs = {b["name"]: b for b in self.rpc_ok("bdev_get_bdevs")}
            subs = {s["nqn"]: s for s in self.rpc_ok("nvmf_get_subsystems")}
        except Exception as e:  # noqa: BLE001
            return v + ["target not readable: %s" % e]
        store = [s for s in stores if s["name"] == disk["lvstore"]]
        if len(store) != 1:
            return v + ["lvstore %s not loaded in the target" % disk["lvstore"]]
        store = store[0]
        if disk["lvstore_uuid"] != store["uuid"]:
            v.append("disk lvstore_uuid %s != target %s" % (disk["lvstore_uuid"], store["uuid"]))
        tfree = store["free_clusters"] * store["cluster_size"]
        if disk["free"] != tfree:
            v.append("DB free %d != target free %d" % (disk["free"], tfree))
        if disk["lvstore_state"] != "loaded":
            v.append("disk lvstore_state %s" % disk["lvstore_state"])
        # blobstore accounting: the clusters owned by lvols + free = total (thick ones
        # own all their clusters, thin ones num_allocated_clusters).
        owned = sum(x["num_allocated_clusters"] for x in tl)
        if owned + store["free_clusters"] != store["total_data_clusters"]:
            v.append("blobstore: allocated %d + free %d != total %d" % (
                owned, store["free_clusters"], store["total_data_clusters"]))
        by_uuid = {x["uuid"]: x for x in tl}
        by_name = {x["name"]: x for x in tl}
        for r in lvols:
            if r["state"] != "READY":
                continue
            t = by_uuid.get(r["uuid"])
            if t is None:
                v.append("READY lvol %d (uuid %s) missing in the target" % (r["id"], r["uuid"]))
                continue
            if t["name"] != str(r["id"]):
                v.append("lvol %d has target name %s" % (r["id"], t["name"]))
            b = bdevs.get(r["uuid"])
            size = b["num_blocks"] * b["block_size"] if b else -1
            if size != r["real_size"] or r["real_size"] < r["size"]:
                v.append("lvol %d size: DB size %d real %d, target %d" % (r["id"], r["size"], r["real_size"], size))
            s = subs.get(r["nqn"])
            if s is None:
                v.append("READY lvol %d not exported (%s missing)" % (r["id"], r["nqn"]))
            else:
                ns = [n for n in s.get("namespaces", []) if n.get("nsid") == 1]
                if not ns or ns[0].get("bdev_name") != r["uuid"]:
                    v.append("lvol %d: subsystem %s namespace 1 is %s" % (r["id"], r["nqn"], ns))
        live = {str(r["id"]) for r in lvols if r["state"] not in ("DELETED",)}
        live_snaps = {"snap-%d" % s["id"] for s in snaps if s["state"] not in ("DELETED",)}
        for name, t in by_name.items():
            if t.get("is_snapshot"):
                if name not in live_snaps:
                    v.append("snapshot %s in the target without a live row" % name)
            elif name not in live:
                v.append("lvol %s in the target without a live row" % name)
        for r in lvols:
            if r["state"] == "DELETED" and r["nqn"] and r["nqn"] in subs:
                v.append("DELETED lvol %d still has subsystem %s" % (r["id"], r["nqn"]))
        for s in snaps:
            if s["state"] == "READY" and s["uuid"] not in by_uuid:
                v.append("READY snapshot %d missing in the target" % s["id"])
        for e in self.open_events():
            if e["kind"] in BAD_OPEN_EVENTS and e["kind"] not in allowed_events:
                v.append("open event %s %s: %s" % (e["kind"], e["object"], e["detail"]))
        return v

    def wait_converged(self, timeout=60, allowed_events=()):
        """Waits until the invariants hold (the agent needs a tick or two after the
        last state change); returns the violations still seen at the deadline."""
        deadline = time.time() + timeout
        v = []
        while time.time() < deadline:
            if self.agent is not None and not self.agent.alive():
                return ["agent died: rc %s" % self.agent.p.returncode]
            v = self.converged_problems(allowed_events)
            if not v:
                return []
            time.sleep(0.2)
        return v


def rng(name):
    """A seeded random generator; the seed is printed so a failure can be replayed."""
    seed = int(os.environ.get("DISKENGINE_SEED", "0")) or random.randrange(1 << 30)
    print("%s seed=%d (DISKENGINE_SEED=%d replays)" % (name, seed, seed))
    return random.Random(seed)


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-n:]
    except OSError:
        return ""


NAME_RE = re.compile(r"^\d+$")
