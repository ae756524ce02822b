"""bench/agent/bulk.py: the fast path of bench/agent: a node with N lvols
built without the agent, so the 10,000-lvol points fit the bench budget.

  - lvols and their NVMe-oF subsystems are created in disktgt (or the fake
    target) with pipelined JSON-RPC (128 in flight, the same calls and
    parameters the agent makes: bdev_lvol_create thin 4 MiB named by the row
    id, nvmf_create_subsystem, add_listener, add_host, add_ns);
  - their READY rows are inserted into the SQLite DB in one transaction,
    copied from a row the agent made itself (same columns, nqn, real size);
  - CREATING rows for "agent alone" throughput are inserted the same way
    (what `diskctl lvol create` writes, without one process per create).

Helpers for the processes (start, CPU time and RSS from /proc) are here too.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "integration"))
from helpers import free_port  # noqa: E402,F401 (bench/agent/run uses bulk.free_port)

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Rpc:
    """One JSON-RPC connection; call() one at a time, pipeline() many."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""
        self.next_id = 1

    def close(self):
        self.s.close()

    def _read_one(self):
        # Replies are compact JSON followed by one newline (SPDK's framing).
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                if line.strip():
                    return json.loads(line)
                continue
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("target closed the connection")
            self.buf += chunk

    def call(self, method, params=None):
        return self.pipeline([(method, params)])[0]

    def pipeline(self, calls, depth=128):
        """Results in order; raises on the first error reply."""
        out = [None] * len(calls)
        ids = {}
        sent = done = 0
        while done < len(calls):
            chunk = []
            while sent < len(calls) and sent - done < depth:
                m, p = calls[sent]
                req = {"jsonrpc": "2.0", "id": self.next_id, "method": m}
                if p is not None:
                    req["params"] = p
                ids[self.next_id] = sent
                self.next_id += 1
                chunk.append(json.dumps(req, separators=(",", ":")))
                sent += 1
            if chunk:
                self.s.sendall("".join(chunk).encode())
            r = self._read_one()
            i = ids.pop(r["id"])
            if "error" in r:
                raise RuntimeError("%s %s: %s" % (calls[i][0], calls[i][1], r["error"]))
            out[i] = r["result"]
            done += 1
        return out


def add_ready(sock, db, n_add, thin=True, size_mib=4):
    """Adds n_add READY lvols (target + DB) to the node of `db`, modelled on
    its first READY row (made by the agent). Returns seconds taken."""
    t0 = time.perf_counter()
    con = sqlite3.connect(db, timeout=30)
    con.row_factory = sqlite3.Row
    model = con.execute("SELECT * FROM lvols WHERE state='READY' ORDER BY id LIMIT 1").fetchone()
    disk = con.execute("SELECT * FROM disks WHERE id=?", (model["disk_id"],)).fetchone()
    node = con.execute("SELECT * FROM nodes WHERE id=?", (disk["node_id"],)).fetchone()
    first = (con.execute("SELECT MAX(id) FROM lvols").fetchone()[0] or 0) + 1
    ids = list(range(first, first + n_add))
    prefix = node["nqn_prefix"]
    host = "%s:agent:%s" % (prefix, node["name"])
    addr, port = disk["listen"].split(",")[0].rsplit(":", 1)
    rpc = Rpc(sock)
    try:
        uuids = rpc.pipeline([("bdev_lvol_create", {"lvol_name": str(i), "size_in_mib": size_mib,
                                                    "uuid": disk["lvstore_uuid"],
                                                    "thin_provision": thin}) for i in ids])
        calls = []
        for i, u in zip(ids, uuids):
            nqn = "%s:lvol-%d" % (prefix, i)
            calls += [("nvmf_create_subsystem", {"nqn": nqn, "serial_number": "DE%018d" % i,
                                                 "model_number": "diskengine lvol",
                                                 "allow_any_host": False}),
                      ("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": {
                          "trtype": "TCP", "adrfam": "IPv4", "traddr": addr, "trsvcid": port}}),
                      ("nvmf_subsystem_add_host", {"nqn": nqn, "host": host}),
                      ("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": u, "nsid": 1,
                                                                           "uuid": u}})]
        rpc.pipeline(calls)
    finally:
        rpc.close()
    cols = [k for k in model.keys()]
    now = int(time.time() * 1000)
    rows = []
    for i, u in zip(ids, uuids):
        r = dict(model)
        r.update(id=i, uuid=u, nqn="%s:lvol-%d" % (prefix, i), size=size_mib << 20,
                 real_size=size_mib << 20, thin=1 if thin else 0, created_at=now, updated_at=now)
        rows.append(tuple(r[c] for c in cols))
    with con:
        con.executemany("INSERT INTO lvols (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                        rows)
    con.close()
    return time.perf_counter() - t0


def add_creating(db, n_add, size_mib=4, thin=True):
    """Inserts n_add CREATING rows (as diskctl lvol create does) in one
    transaction; returns their ids."""
    con = sqlite3.connect(db, timeout=30)
    disk_id = con.execute("SELECT id FROM disks ORDER BY id LIMIT 1").fetchone()[0]
    now = int(time.time() * 1000)
    with con:
        cur = con.execute("SELECT COALESCE(MAX(id), 0) FROM lvols")
        first = cur.fetchone()[0] + 1
        con.executemany("INSERT INTO lvols (id, disk_id, size, thin, state, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, 'CREATING', ?, ?)",
                        [(first + k, disk_id, size_mib << 20, 1 if thin else 0, now, now)
                         for k in range(n_add)])
        # diskctl bumps the change counter so agents wake up; do the same.
        try:
            con.execute("UPDATE meta SET value = value + 1 WHERE key = 'changes'")
        except sqlite3.Error:
            pass
    con.close()
    return list(range(first, first + n_add))


def count_state(db, state):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM lvols WHERE state=?", (state,)).fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- processes

def proc_cpu_s(pid):
    """utime + stime of a process, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def proc_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def wait_socket(path, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("target exited early")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.02)
    raise RuntimeError("no socket " + path)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def stop(p, sig=signal.SIGTERM, timeout=60):
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
