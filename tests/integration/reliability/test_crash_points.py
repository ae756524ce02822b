"""Agent crash-point matrix (issue 9): every name `diskengine --list-crash-points`
prints is armed with DISKENGINE_CRASH_AT in a node of its own (own sockets, DB,
disk file, NVMe/TCP port); one workload that passes every point is driven
through diskctl (a thick lvol filled with a pattern through NVMe/TCP and
deleted, create thick/thin, resize with zeroing over the stale clusters and
a check that the grown region reads zero, snapshot, clone, target restart
for re-export, delete clone/snapshot/lvol). The agent must exit
with code 86 at the point; it is restarted without the variable and the node
must converge: every row terminal, every READY lvol in the target with its
size and exported, no lvol without a row, DB free == target free, no open
drift/orphan events, blobstore free + allocated == total.

make test: all points once (count 1), several nodes in parallel.
DISKENGINE_STRESS=1: every point at counts 1..3 (later passes of the same
point: other lvols, other zero chunks), twice."""
import concurrent.futures
import os
import signal
import subprocess
import time

import pytest

import helpers
from reliability_lib import (CRASH_EXIT, STRESS, MiB, Node, crash_points, record, require,  # noqa: F401
                             tail, tool)

HOST = "nqn.2014-08.org.nvmexpress:uuid:0c6d9a5e-1c1b-4d53-9a0f-6b1bcbdc0001"
PARALLEL = int(os.environ.get("DISKENGINE_CRASH_PARALLEL", "3"))
# 12 MiB of zeroing in 4 MiB chunks (+8 MiB for the second lvol): resize.after_zero_chunk
# is reached several times.
AGENT_CONFIG = "zero_chunk = 4MiB\n"


class CrashRun:
    """Drives the workload; restarts the agent (unarmed) when it exits at the point."""

    def __init__(self, node, point, count, short=False, restart_sig=signal.SIGTERM):
        self.short = short  # stop after start-up (the matrix's self-test)
        self.restart_sig = restart_sig
        self.n = node
        self.point = point
        self.count = count
        self.crashed = 0
        self.unexpected = None

    def arm_env(self):
        return {"DISKENGINE_CRASH_AT": "%s:%d" % (self.point, self.count)}

    def poll_agent(self):
        a = self.n.agent
        if a is None or a.alive():
            return
        rc = a.p.returncode
        out = a.output()
        if rc == CRASH_EXIT and ("crash point reached name=%s" % self.point) in out and not self.crashed:
            self.crashed += 1
            self.n.agent = None
            self.n.start_agent()  # without the variable
            return
        raise RuntimeError("agent exited %s unexpectedly (point %s):\n%s" % (rc, self.point, out[-3000:]))

    def wait(self, pred, what, timeout=60):
        def ok():
            self.poll_agent()
            return pred()
        helpers.wait_for(ok, timeout, interval=0.05, what=what)

    def wait_lvol(self, i, states):
        states = (states,) if isinstance(states, str) else states
        self.wait(lambda: self.n.state_of(i) in states, "lvol %d %s (now %s)" % (i, states, self.n.state_of(i)))

    def wait_snap(self, i, states):
        states = (states,) if isinstance(states, str) else states
        self.wait(lambda: self.n.snap_state(i) in states, "snapshot %d %s" % (i, states))

    def exported(self):
        try:
            subs = {s["nqn"] for s in self.n.rpc_ok("nvmf_get_subsystems")}
        except Exception:  # noqa: BLE001 (target restarting)
            return False
        rows = [r for r in self.n.lvol_rows() if r["state"] == "READY"]
        return all(r["nqn"] in subs for r in rows)

    def nvmeio(self, lvol_id, *cmd):
        row = [r for r in self.n.lvol_rows() if r["id"] == lvol_id][0]
        trid = "traddr:127.0.0.1 trsvcid:%d subnqn:%s hostnqn:%s" % (self.n.port, row["nqn"], HOST)
        p = subprocess.run([tool("nvmeio"), "-r", trid, "--timeout", "10000"] + list(cmd),
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("nvmeio %s on lvol %d: %s" % (" ".join(cmd), lvol_id, p.stderr.strip()))

    def workload(self):
        n = self.n
        n.start_agent(env=self.arm_env())
        self.wait(lambda: n.disk_row()["lvstore_state"] == "loaded", "lvstore loaded")
        if self.short:
            return
        # a thick lvol full of a pattern, deleted: its clusters go to the next lvols
        p = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "16MiB", "--host", HOST)
        self.wait_lvol(p, "READY")
        self.nvmeio(p, "write", "0", str(16 * MiB), "77")
        n.ctl("lvol", "delete", p)
        self.wait_lvol(p, "DELETED")
        a = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--host", HOST)
        b = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "16MiB", "--thin", "--host", HOST)
        self.wait_lvol(a, "READY")
        self.wait_lvol(b, "READY")
        n.ctl("lvol", "resize", a, "--size", "16MiB")
        self.wait_lvol(a, "READY")
        # the grown region (3 zero chunks of 4 MiB, over the deleted lvol's pattern)
        # must read zero whatever crashed in between (issue 8)
        self.nvmeio(a, "check-zero", str(4 * MiB), str(12 * MiB))
        s = n.ctl_id("snapshot", "create", b)
        self.wait_snap(s, "READY")
        c = n.ctl_id("clone", "create", s)
        self.wait_lvol(c, "READY")
        # a second round of creates so points with count > 1 are reached again
        e = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin")
        self.wait_lvol(e, "READY")
        n.ctl("lvol", "resize", e, "--size", "12MiB")
        self.wait_lvol(e, "READY")
        # target restart (clean: SIGTERM while the agent polls it, which is how
        # 68b9d91's shutdown crash was found): nvmf config is lost, the agent
        # re-ensures the disk and re-exports. test_target_kill.py does SIGKILL.
        rc = n.stop_target(self.restart_sig)
        if self.restart_sig == signal.SIGTERM and rc != 0:
            raise RuntimeError("disktgt exited %s on SIGTERM:\n%s" % (rc, tail(n.tgt_runs[-1].log_path)))
        n.start_target()
        self.wait(self.exported, "re-export after target restart")
        n.ctl("lvol", "delete", c)
        self.wait_lvol(c, "DELETED")
        n.ctl("snapshot", "delete", s)
        self.wait_snap(s, "DELETED")
        n.ctl("lvol", "delete", a)
        self.wait_lvol(a, "DELETED")
        s2 = n.ctl_id("snapshot", "create", e)
        self.wait_snap(s2, "READY")
        n.ctl("snapshot", "delete", s2)
        self.wait_snap(s2, "DELETED")
        n.ctl("lvol", "delete", e)
        self.wait_lvol(e, "DELETED")


def run_point(point, count, report=True, short=False, restart_sig=signal.SIGTERM):
    """One node, one armed point; returns (outcome, detail)."""
    d = helpers.short_tmpdir("de-cp-")
    n = Node(d, tick="200ms", disk_size=256 * MiB, agent_config=AGENT_CONFIG)
    t0 = time.time()
    outcome, detail = "ok", ""
    try:
        n.start_target()
        n.setup()
        r = CrashRun(n, point, count, short, restart_sig)
        try:
            r.workload()
        except Exception as e:  # noqa: BLE001
            outcome, detail = "workload-failed", str(e)[-2500:]
        if outcome == "ok":
            v = n.wait_converged(timeout=30)
            if not r.crashed and count > 1:
                # points passed once by design (lvstore creation, ...): the
                # workload cannot reach a later pass; not a failure
                outcome, detail = "beyond-workload", "%s passed fewer than %d times" % (point, count)
            elif not r.crashed:
                outcome, detail = "not-reached", ("the workload never passed %s:%d (a new crash "
                                                  "point? add a step that reaches it to "
                                                  "CrashRun.workload)" % (point, count))
            elif v:
                outcome, detail = "violations", "; ".join(v)
        problems = n.close()
        if problems and outcome == "ok":
            outcome, detail = "process-error", "\n".join(problems)[-2500:]
        if outcome != "ok":
            detail += "\n--- last agent log:\n" + tail(n.agent_runs[-1].log_path if n.agent_runs else "", 2500)
    except Exception as e:  # noqa: BLE001
        outcome, detail = "setup-failed", str(e)[-2500:]
    finally:
        n.discard(keep=outcome != "ok" and bool(os.environ.get("DISKENGINE_KEEP_FAILED")))
    dt = time.time() - t0
    if report:
        record("crash_point", point=point, count=count, outcome=outcome, seconds=round(dt, 1),
               violations=detail.count(";") + 1 if outcome == "violations" else 0)
    return outcome, detail, dt


def run_matrix(cases):
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as ex:
        futs = {ex.submit(run_point, *case): (case[0], case[1], i) for i, case in enumerate(cases)}
        for f in concurrent.futures.as_completed(futs):
            results[futs[f]] = f.result()
    print("\n%-36s %5s %-16s %6s" % ("crash point", "count", "outcome", "secs"))
    for (p, c, _), (o, _, dt) in sorted(results.items()):
        print("%-36s %5d %-16s %6.1f" % (p, c, o, dt))
    bad = {k: v for k, v in results.items() if v[0] not in ("ok", "beyond-workload")}
    assert not bad, "\n\n".join("%s:%d -> %s: %s" % (k[0], k[1], v[0], v[1]) for k, v in sorted(bad.items()))
    return results


def test_crash_point_names_are_listed_and_stable():
    require("diskengine")
    names = crash_points()
    assert len(names) == len(set(names)) >= 20, names
    for prefix in ("disk.", "provision.", "snapshot.", "verify.", "resize.", "delete."):
        assert any(x.startswith(prefix) for x in names), "no %s* point: %s" % (prefix, names)


def test_crash_point_matrix():
    """All points, one pass (count 1), in parallel nodes."""
    require("disktgt", "diskengine", "diskctl", "nvmeio")
    run_matrix([(p, 1) for p in crash_points()])


@pytest.mark.skipif(not STRESS, reason="long variant: DISKENGINE_STRESS=1")
def test_crash_point_matrix_repeated():
    """Every point at counts 1..3, twice: the 2nd/3rd pass of a point hits other
    lvols, zero chunks and ticks; the second round restarts the target with SIGKILL
    instead of SIGTERM (dirty load). Points the workload passes fewer times by design
    (lvstore creation happens once) are "beyond-workload" at higher counts; count 1
    must always be reached."""
    require("disktgt", "diskengine", "diskctl", "nvmeio")
    cases = [(p, c) for p in crash_points() for c in (1, 2, 3)]
    # second round: the mid-workload target restart is a SIGKILL (dirty load)
    run_matrix(cases + [(p, c, True, False, signal.SIGKILL) for p, c in cases])


def test_crash_run_detects_a_point_never_reached():
    """The matrix can fail: a point armed at a count the workload never reaches is
    reported as not-reached instead of passing silently."""
    require("disktgt", "diskengine", "diskctl", "nvmeio")
    outcome, detail, _ = run_point("delete.after_finalize", 1, report=False, short=True)
    assert outcome == "not-reached", (outcome, detail)


def test_invariant_checker_sees_an_lvol_deleted_behind_the_agents_back(node):
    """The checker can fail: an lvol removed from the target directly is reported."""
    node.start_agent()
    node.wait_loaded()
    i = node.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--wait=30")
    assert node.wait_converged(timeout=30) == []
    row = node.lvol_rows()[0]
    node.rpc_ok("bdev_lvol_delete", {"name": row["uuid"]})
    time.sleep(0.5)
    v = node.converged_problems()
    assert any("missing in the target" in x for x in v), v
    assert any("drift-missing" in x for x in node.wait_converged(timeout=3)), "no drift event"
    node.ctl("lvol", "delete", i, "--wait=30")
    assert node.wait_converged(timeout=30) == []
    node.stop_agent(signal.SIGTERM)
