"""The agent's key flows on the PostgreSQL backend, with the real disktgt,
diskengine and diskctl (--db postgresql://...): create, resize, snapshot,
clone, delete to READY/DELETED, and the NOTIFY wake-up (no tick needed)."""
import time

import pytest

from fleet_lib import FleetNode, disktgt_missing, helpers  # noqa: I001 (sets sys.path)
from agent_lib import assert_converged


@pytest.fixture
def pg_node(pg_url, request):
    """One node on PostgreSQL; the agent tick is 1 s, or 60 s for tests
    marked slow_tick (then only NOTIFY wakes it)."""
    missing = disktgt_missing()
    if missing is None or missing:
        pytest.skip("disktgt not built or lacks methods: %s" % missing)
    d = helpers.short_tmpdir("de-fleet-")
    tick = "60s" if request.node.get_closest_marker("slow_tick") else "1s"
    n = FleetNode(pg_url, "n1", "d1", d, tick=tick)
    n.start_target()
    n.setup()
    yield n
    rc = n.close()
    assert rc in (0, None), "diskengine exited %s:\n%s" % (rc, n.agent_runs[-1].output()[-3000:])


def snaps(node):
    rows = node.ctl_json("snapshot", "list")
    return rows if isinstance(rows, list) else rows.get("snapshots", [])


def test_pg_create_resize_snapshot_clone_delete(pg_node):
    n = pg_node
    n.start_agent()
    helpers.wait_for(lambda: n.disk()["lvstore_state"] == "loaded", 30, 0.05, "lvstore loaded")
    a = n.create("16MiB", wait=True)
    assert n.lvol(a)["state"] == "READY"
    n.ctl("lvol", "resize", a, "--size", "32MiB", "--wait")
    assert n.lvol(a)["state"] == "READY" and n.lvol(a)["real_size"] >= 32 << 20
    n.ctl("snapshot", "create", a, "--wait=20")
    s = snaps(n)
    assert len(s) == 1 and s[0]["state"] == "READY" and s[0]["uuid"]
    c = int(n.ctl("clone", "create", s[0]["id"], "--wait=20").stdout.split()[0])
    assert n.lvol(c)["state"] == "READY"
    assert_converged(n, [a, c])
    n.ctl("lvol", "delete", c, "--wait=20")
    n.ctl("snapshot", "delete", s[0]["id"], "--wait=20")
    assert not [x for x in snaps(n) if x["state"] != "DELETED"]
    assert_converged(n, [a])
    n.ctl("lvol", "delete", a, "--wait=20")
    assert n.ctl_json("lvol", "show", a)["state"] == "DELETED"
    assert not [lv for lv in n.target_lvols() if lv["name"].isdigit()]


@pytest.mark.slow_tick
def test_pg_create_latency_with_notify(pg_node):
    """With a 60 s tick, create --wait returns in milliseconds: the agent
    was woken by NOTIFY. p50 under 30 ms is the bench's target (release
    build); here (ASan, loaded CI) the bound is loose but far below a tick."""
    n = pg_node
    n.start_agent()
    helpers.wait_for(lambda: n.disk()["lvstore_state"] == "loaded", 30, 0.05, "lvstore loaded")
    times = []
    for _ in range(8):
        t = time.monotonic()
        n.create("4MiB", wait=True)
        times.append(time.monotonic() - t)
    times.sort()
    assert times[len(times) // 2] < 2.0, times
