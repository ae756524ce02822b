"""The provisioning loop's batch path (src/agent/provision_batch.c): many new
lvols in one pass, every step pipelined over all of them. Rows are queued
while the agent is stopped, so its first pass sees them all at once. The
plain rows go through the batch; a row whose lvol or subsystem already
exists, and a row whose step fails, are finished one by one in the same
pass; a crash at every provisioning point of a batch converges after a
restart; against a target with SPDK's RPC timing the batch is what makes
100 creates take well under a second instead of ~8 s."""
import os
import subprocess
import time

import pytest

import helpers
from agent_lib import Node, assert_converged, disktgt_missing

AGENT_HOST = "nqn.2026-11.io.diskengine:agent:n1"
EXTRA_HOST = "nqn.2014-08.org.example:host-a"


def queue_creates(node, n, hosts_every=5):
    """n CREATING rows through one `diskctl batch` (the agent is stopped):
    thick and thin, every hosts_every-th with an extra allowed host."""
    lines = []
    for i in range(n):
        args = "lvol create --disk d1 --size %dMiB" % (4 + 4 * (i % 3))
        if i % 2:
            args += " --thin"
        if hosts_every and i % hosts_every == 0:
            args += " --host " + EXTRA_HOST
        lines.append(args)
    p = subprocess.run([helpers.binary("diskctl"), "--db", node.db, "batch"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [int(x) for x in p.stdout.split()]


def check_hosts(node, ids, with_extra):
    subs = node.subsystems()
    for i in ids:
        hosts = sorted(h["nqn"] for h in subs["nqn.2026-11.io.diskengine:lvol-%d" % i]["hosts"])
        want = sorted([AGENT_HOST] + ([EXTRA_HOST] if i in with_extra else []))
        assert hosts == want, (i, hosts)


def test_bulk_pass_with_adopted_and_failed_steps(node):
    node.start_agent()
    first = node.create("4MiB", wait=True)
    node.stop_agent()
    ids = queue_creates(node, 60)
    with_extra = set(ids[::5])
    # Two rows not plain: lvol already in the target (a crash before its UUID
    # was recorded), subsystem already there (a crash after creating it).
    lvs = node.rpc_ok("bdev_lvol_get_lvstores")[0]
    node.rpc_ok("bdev_lvol_create", {"lvol_name": str(ids[3]), "size_in_mib": 16,
                                     "uuid": lvs["uuid"], "thin_provision": True})
    node.rpc_ok("nvmf_create_subsystem", {"nqn": "nqn.2026-11.io.diskengine:lvol-%d" % ids[4],
                                          "serial_number": "DE%018d" % ids[4],
                                          "model_number": "diskengine lvol"})
    if node.kind == "disktgt":
        # one step of the batch fails for one row: finished one by one
        node.inject("nvmf_subsystem_add_listener", count=1)
        node.inject("bdev_lvol_create", count=1, code=-32603, message="Internal error")
    node.start_agent()
    node.wait_all("READY", ids=ids, timeout=60)
    assert_converged(node, [first] + ids)
    check_hosts(node, ids, with_extra)
    out = node.agent.output()
    assert "lvol batch rows=" in out
    assert out.count("lvol created") >= len(ids) - 1
    if node.kind == "disktgt":
        assert "finished one by one" in out


@pytest.fixture
def spdk_timed_node(backend):
    if disktgt_missing() != []:
        pytest.skip("needs disktgt")
    d = helpers.short_tmpdir("de-agent-")
    n = Node("disktgt", d, tick="200ms", db=backend.new_db())
    try:
        n.start_target(extra=["--rpc-poll-interval", "4ms"])
        n.setup()
        yield n
        assert n.close() in (0, None)
    finally:
        n.stop_agent()
        n.stop_target()
        subprocess.run(["rm", "-rf", d])


def test_bulk_pass_against_spdk_rpc_timing(spdk_timed_node):
    """8 ms per sequential call: one by one, a create takes ~8 calls (~65 ms),
    so 100 of them ~6.5 s; batched, the pass is a dozen round trips."""
    node = spdk_timed_node
    node.start_agent()
    node.create("4MiB", wait=True)
    node.stop_agent()
    ids = queue_creates(node, 100)
    t0 = time.monotonic()
    node.start_agent()
    node.wait_all("READY", ids=ids, timeout=60)
    took = time.monotonic() - t0
    assert "lvol batch rows=100" in node.agent.output()
    assert took < 3.0, "100 creates took %.2f s against SPDK timing" % took
    print("100 creates against SPDK RPC timing: %.2f s" % took)
    assert_converged(node, [1] + ids)


def crash_then_restart(node, point, batch_line):
    """Starts the agent with DISKENGINE_CRASH_AT=point; it must die there
    (exit 86) inside a batch (its log line), then runs again without it."""
    a = node.start_agent(env=dict(os.environ, DISKENGINE_CRASH_AT=point))
    helpers.wait_for(lambda: not a.alive(), 30, 0.05, "agent to crash at %s" % point)
    assert a.p.returncode == 86, a.output()[-2000:]
    assert "crash point reached name=%s" % point in a.output()
    assert batch_line in a.output()
    node.agent = None
    node.start_agent()


BATCH_POINTS = ["provision.after_subsystem_create", "provision.after_listener_add",
                "provision.after_host_add", "provision.after_lvol_create",
                "provision.after_uuid_record", "provision.after_ns_add", "provision.after_ready"]


@pytest.mark.parametrize("point", BATCH_POINTS)
def test_bulk_pass_crash_converges(node, point):
    """The agent dies at a crash point inside a batch; restarted, it finishes
    every row, with nothing duplicated or orphaned."""
    if node.kind == "fake":
        pytest.skip("the disktgt variant covers it")
    node.start_agent()
    first = node.create("4MiB", wait=True)
    node.stop_agent()
    ids = queue_creates(node, 40)
    crash_then_restart(node, point, "lvol batch rows=40")
    node.wait_all("READY", ids=ids, timeout=60)
    assert_converged(node, [first] + ids)


def queue_deletes(node, ids):
    p = subprocess.run([helpers.binary("diskctl"), "--db", node.db, "batch"],
                       input="".join("lvol delete %d\n" % i for i in ids), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def assert_deleted(node, keep):
    """Only `keep` rows left, the target holds exactly their lvols and
    subsystems, and the DB's free space is the target's."""
    helpers.wait_for(lambda: sorted(r["id"] for r in node.lvols()) == sorted(keep), 60, 0.1,
                     "deletes finalized")
    assert_converged(node, keep)


def ready_lvols(node, n):
    node.start_agent()
    first = node.create("4MiB", wait=True)
    node.stop_agent()
    ids = queue_creates(node, n)
    node.start_agent()
    node.wait_all("READY", ids=ids, timeout=60)
    node.stop_agent()
    return first, ids


def test_bulk_delete_pass(node):
    first, ids = ready_lvols(node, 40)
    # one lvol already gone from the target (deleted behind the agent's back)
    gone = node.lvol(ids[5])["uuid"]
    node.rpc_ok("bdev_lvol_delete", {"name": gone})
    if node.kind == "disktgt":
        node.inject("bdev_lvol_delete", count=1, code=-32603, message="Internal error")
    queue_deletes(node, ids)
    node.start_agent()
    assert_deleted(node, [first])
    out = node.agent.output()
    assert "lvol delete batch rows=40" in out
    if node.kind == "disktgt":
        assert "finished one by one" in out


def test_bulk_delete_against_spdk_rpc_timing(spdk_timed_node):
    node = spdk_timed_node
    first, ids = ready_lvols(node, 100)
    queue_deletes(node, ids)
    t0 = time.monotonic()
    node.start_agent()
    assert_deleted(node, [first])
    took = time.monotonic() - t0
    assert "lvol delete batch rows=100" in node.agent.output()
    assert took < 3.0, "100 deletes took %.2f s against SPDK timing" % took
    print("100 deletes against SPDK RPC timing: %.2f s" % took)


DELETE_POINTS = ["delete.after_ns_remove", "delete.after_subsystem_delete",
                 "delete.after_lvol_delete", "delete.after_finalize"]


@pytest.mark.parametrize("point", DELETE_POINTS)
def test_bulk_delete_crash_converges(node, point):
    if node.kind == "fake":
        pytest.skip("the disktgt variant covers it")
    first, ids = ready_lvols(node, 40)
    queue_deletes(node, ids)
    crash_then_restart(node, point, "lvol delete batch rows=40")
    assert_deleted(node, [first])
