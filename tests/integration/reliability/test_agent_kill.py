"""Agent SIGKILLed at random moments (between the named crash points too:
in the middle of an RPC, a DB transaction, a zeroing command) while the mixed
workload of test_target_kill runs; under stress the target is killed as well,
alternating. After each kill the agent is restarted; at the end the node must
converge and every acknowledged NVMe/TCP write must read back.

make test: 5 agent kills. DISKENGINE_STRESS=1: 40 agent kills + 20 target kills."""
import signal
import time

import pytest

import helpers
from reliability_lib import STRESS, MiB, Node, record, require, rng
from test_target_kill import Workload, verify_acked


def run(agent_kills, target_kills, seed_name):
    require("disktgt", "diskengine", "diskctl", "nvmeio")
    r = rng(seed_name)
    d = helpers.short_tmpdir("de-akill-")
    n = Node(d, tick="200ms", disk_size=256 * MiB, agent_config="zero_chunk = 4MiB\n")
    plan = ["agent"] * agent_kills + ["target"] * target_kills
    r.shuffle(plan)
    done = {"agent": 0, "target": 0}
    try:
        n.start_target()
        n.setup()
        n.start_agent()
        n.wait_loaded()
        w = Workload(n, r)
        w.start()
        for what in plan:
            time.sleep(r.uniform(0.05, 1.0))
            assert w.error is None, w.error
            if what == "agent":
                n.check_alive()
                n.stop_agent(signal.SIGKILL)
                time.sleep(r.uniform(0, 0.2))
                n.start_agent()
            else:
                n.stop_target(signal.SIGKILL)
                time.sleep(r.uniform(0, 0.2))
                n.start_target()
            done[what] += 1
        time.sleep(r.uniform(0.3, 1.0))
        w.stop.set()
        w.join(120)
        assert w.error is None, w.error

        def settled():
            n.check_alive()
            return all(x["state"] in ("READY", "DELETED", "FAILED") for x in n.lvol_rows() + n.snap_rows())
        helpers.wait_for(settled, 90, interval=0.1, what="every row terminal after the last kill")
        v = n.wait_converged(timeout=60)
        v += ["row FAILED after kills: %s" % x for x in n.lvol_rows() + n.snap_rows() if x["state"] == "FAILED"]
        bad, checked = verify_acked(n, w.acked)
        v += bad
        print("agent kills %d, target kills %d, ops %s, acknowledged slots checked %d" % (
            done["agent"], done["target"], w.ops, checked))
        record("agent_kill", kills=done["agent"], target_kills=done["target"], violations=len(v),
               acked_checked=checked)
        assert not v, "\n".join(v) + "\n--- agent log:\n" + n.agent.output()[-3000:]
        problems = n.close()
        assert not problems, "\n".join(problems)
    finally:
        n.discard()


def test_agent_sigkill_during_mixed_workload():
    run(5, 0, "agent-kill")


@pytest.mark.skipif(not STRESS, reason="long variant: DISKENGINE_STRESS=1")
def test_agent_and_target_sigkill_interleaved_long():
    run(40, 20, "agent-target-kill-long")
