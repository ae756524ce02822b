"""Issue 8's isolation property on disktgt: a thick lvol grown over clusters
that held a deleted volume's data reads zero in the new region after the
agent's resize (zero intent + NVMe/TCP Write Zeroes). The control case (the
same grow done behind the agent's back, no zero step) shows the stale
pattern, proving the test can fail."""
import os

import pytest

import helpers

MIB = 1 << 20


def bdev_io(node, name, op, offset, length, pattern=None):
    p = {"name": name, "op": op, "offset": offset, "length": length}
    if pattern is not None:
        p["pattern"] = pattern
    return node.rpc_ok("disktgt_bdev_io", p)


def stale_setup(node):
    """Fills a 32 MiB thick lvol with 0xAB, deletes it, creates an 8 MiB thick
    one; returns its id (its growth will reuse the dirty clusters).

    The lvstore is made beforehand with clear_method "none" (the agent adopts
    it by name), so a deleted volume's clusters keep their bytes, as they do on
    SPDK stores created that way or on devices whose unmap does not zero: the
    case the zero step exists for."""
    node.rpc_ok("bdev_aio_create", {"filename": node.disk_file, "name": "d1"})
    node.rpc_ok("bdev_lvol_create_lvstore", {"bdev_name": "d1", "lvs_name": "d1",
                                             "clear_method": "none"})
    node.start_agent()
    a = node.create("32MiB", wait=True)
    bdev_io(node, node.lvol(a)["uuid"], "write", 0, 32 * MIB, 0xAB)
    assert bdev_io(node, node.lvol(a)["uuid"], "read", 0, 32 * MIB)["byte"] == 0xAB
    b = node.create("8MiB", wait=True)
    # Take every remaining cluster with a volume the agent does not manage, so
    # the grow can only be served from the deleted volume's clusters (the
    # allocator is next-fit and would otherwise hand out never-written ones).
    lvs = [s for s in node.rpc_ok("bdev_lvol_get_lvstores") if s["name"] == "d1"][0]
    free_mib = lvs["free_clusters"] * lvs["cluster_size"] // MIB
    node.rpc_ok("bdev_lvol_create", {"lvs_name": "d1", "lvol_name": "filler",
                                     "size_in_mib": free_mib})
    node.ctl("lvol", "delete", a, "--wait=20")
    return b


def test_grow_reads_zero_in_new_region(node):
    if node.kind != "disktgt":
        pytest.skip("needs the target's data path (disktgt_bdev_io, NVMe/TCP)")
    b = stale_setup(node)
    node.ctl("lvol", "resize", b, "--size", "40MiB", "--wait=60")
    r = node.lvol(b)
    assert r["state"] == "READY" and r["real_size"] == 40 * MIB and not r["zeroing"]
    assert bdev_io(node, r["uuid"], "read", 8 * MIB, 32 * MIB)["byte"] == 0
    assert "zeroing id=%d start=%d end=%d" % (b, 8 * MIB, 40 * MIB) in node.agent.output()


def test_control_grow_without_zero_shows_stale_data(node):
    if node.kind != "disktgt":
        pytest.skip("needs the target's data path (disktgt_bdev_io, NVMe/TCP)")
    b = stale_setup(node)
    uuid = node.lvol(b)["uuid"]
    node.stop_agent()
    node.rpc_ok("bdev_lvol_resize", {"name": uuid, "size_in_mib": 40})
    got = bdev_io(node, uuid, "read", 8 * MIB, 32 * MIB)["byte"]
    assert got in (0xAB, -1), got  # stale bytes of the deleted volume


def test_zeroing_resumes_after_crash(node):
    """Killed in the middle of zeroing (after the 3rd of 8 chunks): the
    restarted agent resumes at the recorded progress, not at the start."""
    if node.kind != "disktgt":
        pytest.skip("needs the target's NVMe/TCP data path")
    conf = os.path.join(node.dir, "agent.conf")
    with open(conf, "w") as f:
        f.write("zero_chunk = 4MiB\n")
    node.start_agent(extra=["--config", conf])
    b = node.create("8MiB", wait=True)
    node.stop_agent()
    node.start_agent(env={"DISKENGINE_CRASH_AT": "resize.after_zero_chunk:3"},
                     extra=["--config", conf])
    node.ctl("lvol", "resize", b, "--size", "40MiB")
    helpers.wait_for(lambda: not node.agent.alive(), 30, what="crash in zeroing")
    assert node.agent.p.returncode == 86
    r = node.lvol(b)
    assert r["state"] == "RESIZING" and r["zeroing"], r
    first_run = len(node.agent.output())
    node.agent = None
    node.start_agent(extra=["--config", conf])
    helpers.wait_for(lambda: node.lvol(b)["state"] == "READY", 30, what="resize done")
    log = node.agent.output()[first_run:]  # the log file is shared by both runs
    start = 8 * MIB + 3 * 4 * MIB
    assert "zeroing id=%d start=%d end=%d" % (b, start, 40 * MIB) in log, log[-3000:]
    assert "zeroing id=%d start=%d " % (b, 8 * MIB) not in log
    assert bdev_io(node, node.lvol(b)["uuid"], "read", 8 * MIB, 32 * MIB)["byte"] == 0
