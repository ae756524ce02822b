"""Verify's two kinds of pass (src/agent/verify.c): every tick a light pass
(bdev_lvol_get_lvstores + bdev_lvol_get_lvols per lvstore), and a full pass
(plus bdev_get_bdevs and nvmf_get_subsystems) when it is due. Size drift
must still be found: from the full pass's bdev listing, and between full
passes for thick lvols from their allocated clusters (confirmed with
bdev_get_bdevs for that one lvol). `verify_full = 1h` keeps the agent on
light passes after its first full one, so these tests see each path alone."""
import os
import time
import urllib.request

import helpers
from agent_lib import assert_converged, free_port, open_events


def conf(node, text):
    p = os.path.join(node.dir, "verify.conf")
    with open(p, "w") as f:
        f.write(text)
    return p


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def calls(m, method):
    return m.get('diskengine_rpc_calls_total{method="%s",result="ok"}' % method, 0)


def test_size_drift_thin_found_by_full_pass(node):
    """A thin lvol's size is only in bdev_get_bdevs: a small node gets a full
    pass every tick, so a resize behind the agent's back is one event, and
    resizing back resolves it."""
    node.start_agent()
    i = node.create("8MiB", thin=True, wait=True)
    uuid = node.lvol(i)["uuid"]
    node.rpc_ok("bdev_lvol_resize", {"name": uuid, "size_in_mib": 16})
    helpers.wait_for(lambda: open_events(node, "drift-size", "lvol/%d" % i), 10, what="drift-size event")
    time.sleep(1.0)  # several ticks: still one event
    ev = open_events(node, "drift-size", "lvol/%d" % i)
    assert len(ev) == 1 and ev[0]["count"] == 1, ev
    assert node.lvol(i)["state"] == "READY"
    node.rpc_ok("bdev_lvol_resize", {"name": uuid, "size_in_mib": 8})
    helpers.wait_for(lambda: all(e["resolved_at"] for e in open_events(node, "drift-size")), 10,
                     what="drift-size resolved")


def test_size_drift_thick_found_between_full_passes(node):
    """Only the first pass is full: a thick lvol grown behind the agent's
    back is still found (allocated clusters x cluster size differs, one
    bdev_get_bdevs {name} confirms), and no full listing was made for it."""
    port = free_port()
    node.start_agent(extra=["--config", conf(node, "verify_full = 1h\n"),
                            "--metrics-listen", "127.0.0.1:%d" % port])
    i = node.create("8MiB", wait=True)
    j = node.create("8MiB", wait=True)
    helpers.wait_for(lambda: metrics(port).get('diskengine_verify_seconds_count{kind="light"}', 0) >= 2, 10,
                     what="light passes")
    m0 = metrics(port)
    node.rpc_ok("bdev_lvol_resize", {"name": node.lvol(i)["uuid"], "size_in_mib": 12})
    helpers.wait_for(lambda: open_events(node, "drift-size", "lvol/%d" % i), 10, what="drift-size event")
    time.sleep(1.0)
    m1 = metrics(port)
    ev = open_events(node, "drift-size")
    assert [(e["object"], e["count"]) for e in ev] == [("lvol/%d" % i, 1)], ev
    assert m1['diskengine_verify_seconds_count{kind="full"}'] == 1, m1
    assert m1['diskengine_verify_seconds_count{kind="light"}'] > m0['diskengine_verify_seconds_count{kind="light"}']
    # no full listing: one confirmation of the one lvol (bdev_get_bdevs {name}),
    # not repeated while the drift stays open
    assert calls(m1, "nvmf_get_subsystems") == calls(m0, "nvmf_get_subsystems")
    assert calls(m1, "bdev_get_bdevs") - calls(m0, "bdev_get_bdevs") == 1, (m0, m1)
    assert node.lvol(j)["state"] == "READY"


def test_light_passes_find_missing_and_orphans(node):
    """Between full passes (verify_full = 1h) a deleted lvol and an orphan
    are still found every tick from bdev_lvol_get_lvols."""
    node.start_agent(extra=["--config", conf(node, "verify_full = 1h\n")])
    i = node.create("8MiB", wait=True)
    time.sleep(0.6)
    node.rpc_ok("bdev_lvol_delete", {"name": node.lvol(i)["uuid"]})
    lvs = node.rpc_ok("bdev_lvol_get_lvstores")[0]["uuid"]
    node.rpc_ok("bdev_lvol_create", {"lvol_name": "777", "size_in_mib": 4, "uuid": lvs, "thin_provision": True})
    helpers.wait_for(lambda: open_events(node, "drift-missing", "lvol/%d" % i), 10, what="drift-missing")
    helpers.wait_for(lambda: open_events(node, "orphan", "lvol/777"), 10, what="orphan")


def test_target_restart_forces_full_pass(node):
    """A new target connection (restart: NVMe-oF config is not persistent)
    makes the next pass full, whatever verify_full says: every namespace
    is re-exported once."""
    node.start_agent(extra=["--config", conf(node, "verify_full = 1h\n")])
    ids = [node.create("8MiB", thin=bool(k % 2)) for k in range(3)]
    node.wait_all("READY")
    time.sleep(0.6)
    node.stop_target()
    node.start_target()
    helpers.wait_for(lambda: len([n for n in node.subsystems() if ":lvol-" in n]) == len(ids) and
                     all(s["namespaces"] for s in node.subsystems().values()),
                     30, interval=0.2, what="re-export")
    assert_converged(node, ids)
    ev = open_events(node, "reexport")
    assert sorted(e["object"] for e in ev) == sorted("lvol/%d" % k for k in ids), ev


def test_subsystem_of_deleted_lvol_removed(node):
    """A subsystem named for a DELETED lvol (what a re-export racing the
    delete loop leaves: the delete loop listed the target before the
    re-export made it) is removed by the next full verify pass."""
    node.start_agent()
    keep = node.create("8MiB", wait=True)
    gone = node.create("8MiB", wait=True)
    node.ctl("lvol", "delete", gone, "--wait=30")
    nqn = "nqn.2026-11.io.diskengine:lvol-%d" % gone
    assert nqn not in node.subsystems()
    node.rpc_ok("nvmf_create_subsystem", {"nqn": nqn, "serial_number": "DE%018d" % gone,
                                          "model_number": "diskengine lvol"})
    node.stop_agent()
    node.start_agent()  # its first verify pass is a full one
    helpers.wait_for(lambda: nqn not in node.subsystems(), 15, 0.1, "stale subsystem removed")
    assert "subsystem of DELETED lvol removed id=%d" % gone in node.agent.output()
    assert_converged(node, [keep])
