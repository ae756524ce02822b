"""Snapshot / clone / resize / delete flows through the agent (issue 8's
scope as far as the target supports it), and the zero-intent rule: a thick
grow whose zeroing cannot run stays RESIZING with the reason, never READY."""
import time

import helpers
from agent_lib import assert_converged, our_lvols


def snaps(node):
    rows = node.ctl_json("snapshot", "list")
    return rows if isinstance(rows, list) else rows.get("snapshots", [])


def test_snapshot_clone_delete(node):
    node.start_agent()
    a = node.create("16MiB", wait=True)
    node.ctl("snapshot", "create", a, "--wait=20")
    s = snaps(node)
    assert len(s) == 1 and s[0]["state"] == "READY" and s[0]["uuid"]
    names = {lv["name"]: lv for lv in node.target_lvols()}
    assert names["snap-%d" % s[0]["id"]]["is_snapshot"] is True
    assert names["snap-%d" % s[0]["id"]]["uuid"] == s[0]["uuid"]
    c = int(node.ctl("clone", "create", s[0]["id"], "--wait=20").stdout.split()[0])
    assert node.lvol(c)["state"] == "READY"
    assert_converged(node, [a, c])
    node.ctl("lvol", "delete", c, "--wait=20")
    node.ctl("snapshot", "delete", s[0]["id"], "--wait=20")
    assert not [x for x in snaps(node) if x["state"] != "DELETED"]
    assert_converged(node, [a])
    assert not [lv for lv in node.target_lvols() if lv["name"].startswith("snap-")]


def test_snapshot_with_two_clones_refused_with_reason(node):
    node.start_agent()
    a = node.create("16MiB", wait=True)
    node.ctl("snapshot", "create", a, "--wait=20")
    sid = snaps(node)[0]["id"]
    c1 = int(node.ctl("clone", "create", sid, "--wait=20").stdout.split()[0])
    # The origin became a clone of the snapshot too (SPDK's rule): two clones.
    node.ctl("snapshot", "delete", sid)
    helpers.wait_for(lambda: "more than one clone" in ([x for x in snaps(node) if x["id"] == sid][0]["reason"] or ""),
                     15, what="refusal reason")
    calls = node.rpc_ok("fake_calls", {"method": "bdev_lvol_delete"}) if node.kind == "fake" else None
    time.sleep(1.0)
    s = [x for x in snaps(node) if x["id"] == sid][0]
    assert s["state"] == "DELETING"
    if calls is not None:  # retried per tick, not in a storm
        assert node.rpc_ok("fake_calls", {"method": "bdev_lvol_delete"}) - calls <= 8
    node.ctl("lvol", "delete", c1, "--wait=20")
    helpers.wait_for(lambda: not [x for x in snaps(node) if x["id"] == sid and x["state"] != "DELETED"],
                     20, what="snapshot deleted once one clone is left")
    assert_converged(node, [a])


def test_thin_resize_ready(node):
    node.start_agent()
    a = node.create("16MiB", thin=True, wait=True)
    node.ctl("lvol", "resize", a, "--size", "40MiB", "--wait=20")
    r = node.lvol(a)
    assert r["state"] == "READY" and r["real_size"] == 40 << 20
    bd = node.rpc_ok("bdev_get_bdevs", {"name": r["uuid"]})[0]
    assert bd["num_blocks"] * bd["block_size"] == 40 << 20
    assert_converged(node, [a])


def test_thick_shrink_with_allow_shrink(node):
    node.start_agent()
    a = node.create("32MiB", wait=True)
    p = node.ctl("lvol", "resize", a, "--size", "16MiB", "--wait=10", check=False)
    assert p.returncode != 0 and node.lvol(a)["state"] == "READY"  # refused without the flag
    node.ctl("lvol", "resize", a, "--size", "16MiB", "--allow-shrink", "--wait=20")
    r = node.lvol(a)
    assert r["state"] == "READY" and r["real_size"] == 16 << 20 and not r["zeroing"], r
    assert_converged(node, [a])


def test_thick_grow_without_data_path_stays_resizing(node):
    """The fake target has no NVMe/TCP data path: zeroing cannot run, so the
    row must stay RESIZING with the intent recorded and a reason - never
    READY with the new region unzeroed. (On disktgt it completes.)"""
    node.start_agent()
    a = node.create("16MiB", wait=True)
    node.ctl("lvol", "resize", a, "--size", "32MiB")
    if node.kind == "disktgt":
        helpers.wait_for(lambda: node.lvol(a)["state"] == "READY", 60, what="resize done")
        assert node.lvol(a)["real_size"] == 32 << 20
        assert not node.lvol(a)["zeroing"]
        return
    helpers.wait_for(lambda: "zeroing" in (node.lvol(a)["reason"] or ""), 15, what="zeroing reason")
    r = node.lvol(a)
    assert r["state"] == "RESIZING", r
    assert r["zeroing"], r  # the intent [16 MiB, 32 MiB) is persisted
    bd = node.rpc_ok("bdev_get_bdevs", {"name": r["uuid"]})[0]
    assert bd["num_blocks"] * bd["block_size"] == 32 << 20  # resized, not yet zeroed
    # A restart does not lose the intent.
    node.stop_agent()
    node.start_agent()
    time.sleep(1.0)
    r = node.lvol(a)
    assert r["state"] == "RESIZING" and r["zeroing"], r
    assert len(our_lvols(node)) == 1
