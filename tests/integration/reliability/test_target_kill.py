"""Target crash (issue 9): disktgt is SIGKILLed at random moments while a mixed
workload runs (diskctl creates / resizes / snapshots / deletes, NVMe/TCP
pattern writes through nvmeio), then restarted on the same disk file. The
agent must never die or mark anything FAILED; after the last restart the node
converges (every invariant of conftest.Node.converged_problems, including
blobstore free + allocated == total), and every write the target acknowledged
reads back through NVMe/TCP.

make test: 5 kills. DISKENGINE_STRESS=1: 60 kills."""
import signal
import subprocess
import threading
import time

import pytest

import helpers
from reliability_lib import STRESS, MiB, Node, record, require, rng, tool  # noqa: F401

HOST = "nqn.2014-08.org.nvmexpress:uuid:7a1d9c3e-0b62-4f0a-8d1e-5c3b2a190001"
SLOT = 64 * 1024
SLOTS = 8 * MiB // SLOT  # writes stay inside the smallest lvol's first 8 MiB


class Workload(threading.Thread):
    def __init__(self, node, r):
        super().__init__(daemon=True)
        self.n = node
        self.r = r
        self.stop = threading.Event()
        self.error = None
        self.acked = {}       # lvol id -> {slot: seed}
        self.next_slot = {}   # lvol id -> next free slot
        self.fail_reasons = {}  # first words of nvmeio errors -> count
        self.ops = {"create": 0, "resize": 0, "snapshot": 0, "delete": 0, "snapshot_delete": 0,
                    "write_acked": 0, "write_failed": 0, "refused": 0}

    def ctl(self, *args):
        p = self.n.ctl(*args, check=False)
        if p.returncode not in (0, 1):
            raise RuntimeError("diskctl %s -> %d: %s" % (args, p.returncode, p.stderr))
        if p.returncode == 1:
            self.ops["refused"] += 1
            if len(p.stderr.strip().splitlines()) != 1:
                raise RuntimeError("diskctl %s: not one stderr line: %r" % (args, p.stderr))
        return p

    def write(self, row):
        i = row["id"]
        slot = self.next_slot.get(i, 0)
        if slot >= SLOTS:
            return
        self.next_slot[i] = slot + 1
        seed = self.r.randrange(1, 1 << 30)
        trid = "traddr:127.0.0.1 trsvcid:%d subnqn:%s hostnqn:%s" % (self.n.port, row["nqn"], HOST)
        p = subprocess.run([tool("nvmeio"), "-r", trid, "--timeout", "3000", "write", str(slot * SLOT),
                            str(SLOT), str(seed)], capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            self.acked.setdefault(i, {})[slot] = seed
            self.ops["write_acked"] += 1
        else:
            self.ops["write_failed"] += 1  # outcome unknown: the slot is never reused or checked
            err = p.stderr.strip().splitlines()
            self.fail_reasons[err[-1][:80] if err else "rc %d" % p.returncode] = 1 + self.fail_reasons.get(err[-1][:80] if err else "rc %d" % p.returncode, 0)

    def step(self):
        rows = self.n.lvol_rows()
        ready = [x for x in rows if x["state"] == "READY"]
        live = [x for x in rows if x["state"] not in ("DELETED", "FAILED")]
        snaps = [s for s in self.n.snap_rows() if s["state"] == "READY"]
        op = self.r.random()
        if op < 0.25 and len(live) < 10:
            thin = self.r.random() < 0.5
            args = ["lvol", "create", "--disk", "d1", "--size", "16MiB" if thin else "8MiB", "--host", HOST]
            if thin:
                args.append("--thin")
            self.ctl(*args)
            self.ops["create"] += 1
        elif op < 0.35 and ready:
            x = self.r.choice(ready)
            self.ctl("lvol", "resize", x["id"], "--size", str(x["size"] + 4 * MiB))
            self.ops["resize"] += 1
        elif op < 0.42 and ready and len(snaps) < 4:
            self.ctl("snapshot", "create", self.r.choice(ready)["id"])
            self.ops["snapshot"] += 1
        elif op < 0.50 and len(ready) > 2:
            x = self.r.choice(ready)
            self.ctl("lvol", "delete", x["id"])
            self.acked.pop(x["id"], None)
            self.ops["delete"] += 1
        elif op < 0.55 and snaps:
            self.ctl("snapshot", "delete", self.r.choice(snaps)["id"])
            self.ops["snapshot_delete"] += 1
        elif ready:
            self.write(self.r.choice(ready))
        else:
            time.sleep(0.05)

    def run(self):
        try:
            while not self.stop.is_set():
                self.step()
        except Exception as e:  # noqa: BLE001
            self.error = e


def verify_acked(n, acked):
    """Reads every acknowledged slot of every still-READY lvol back through NVMe/TCP."""
    bad = []
    rows = {r["id"]: r for r in n.lvol_rows()}
    checked = 0
    for i, slots in sorted(acked.items()):
        r = rows.get(i)
        if not r or r["state"] != "READY" or not slots:
            continue
        trid = "traddr:127.0.0.1 trsvcid:%d subnqn:%s hostnqn:%s" % (n.port, r["nqn"], HOST)
        cmd = [tool("nvmeio"), "-r", trid, "--timeout", "10000"]
        for slot, seed in sorted(slots.items()):
            cmd += ["verify", str(slot * SLOT), str(SLOT), str(seed)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        checked += len(slots)
        if p.returncode != 0:
            bad.append("lvol %d: acknowledged writes do not read back: %s" % (i, p.stderr.strip()[-500:]))
    return bad, checked


def run_kills(kills, seed_name):
    require("disktgt", "diskengine", "diskctl", "nvmeio")
    r = rng(seed_name)
    d = helpers.short_tmpdir("de-kill-")
    n = Node(d, tick="200ms", disk_size=256 * MiB)
    survived = 0
    try:
        n.start_target()
        n.setup()
        n.start_agent()
        n.wait_loaded()
        w = Workload(n, r)
        w.start()
        for k in range(kills):
            time.sleep(r.uniform(0.1, 1.2))
            assert w.error is None, w.error
            n.check_alive()
            n.stop_target(signal.SIGKILL)
            time.sleep(r.uniform(0, 0.3))
            n.start_target()
            survived += 1
        time.sleep(r.uniform(0.3, 1.0))
        w.stop.set()
        w.join(120)
        assert w.error is None, w.error
        n.check_alive()

        def settled():
            n.check_alive()
            return all(x["state"] in ("READY", "DELETED", "FAILED") for x in n.lvol_rows() + n.snap_rows())
        helpers.wait_for(settled, 90, interval=0.1, what="every row terminal after the last kill")
        failed = [x for x in n.lvol_rows() + n.snap_rows() if x["state"] == "FAILED"]
        v = n.wait_converged(timeout=60)
        v += ["row FAILED after target kills: %s" % x for x in failed]
        bad, checked = verify_acked(n, w.acked)
        v += bad
        print("kills survived %d, ops %s, acknowledged slots checked %d" % (survived, w.ops, checked))
        print("write failures (unknown outcome): %s" % w.fail_reasons)
        record("target_kill", kills=kills, survived=survived, violations=len(v), ops=w.ops,
               acked_checked=checked)
        assert not v, "\n".join(v) + "\n--- agent log:\n" + n.agent.output()[-3000:]
        assert checked > 0 or w.ops["write_failed"] > 0, "no NVMe/TCP write was even tried"
        problems = n.close()
        assert not problems, "\n".join(problems)
    finally:
        n.discard()


def test_target_sigkill_during_mixed_workload():
    run_kills(5, "target-kill")


@pytest.mark.skipif(not STRESS, reason="long variant: DISKENGINE_STRESS=1")
def test_target_sigkill_during_mixed_workload_long():
    run_kills(60, "target-kill-long")
