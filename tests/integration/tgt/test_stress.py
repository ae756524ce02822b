"""Long variants (DISKENGINE_STRESS=1 only): thousands of lvols through the
RPC layer, a restart in the middle, and the listings before and after it."""
import json
import os

import pytest

from tgt_lib import call_ok, make_sparse

MIB = 1 << 20
pytestmark = pytest.mark.skipif(os.environ.get("DISKENGINE_STRESS") != "1",
                                reason="long variant: DISKENGINE_STRESS=1")


def pipelined(c, reqs, depth=128):
    out = []
    sent = 0
    while len(out) < len(reqs):
        while sent < len(reqs) and sent - len(out) < depth:
            method, params = reqs[sent]
            c.send_raw(json.dumps({"jsonrpc": "2.0", "id": sent + 1, "method": method, "params": params}))
            sent += 1
        r, _ = c.recv_value()
        assert "error" not in r, r
        out.append(r["result"])
    return out


def test_5000_lvols_survive_a_restart_byte_identical(target, workdir):
    n = 5000
    path = make_sparse(os.path.join(workdir, "big.img"), 8 << 30)
    c = target.client()
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio0", "block_size": 4096})
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0", "cluster_sz": MIB})
    free0 = call_ok(c, "bdev_lvol_get_lvstores")[0]["free_clusters"]
    pipelined(c, [("bdev_lvol_create", {"lvol_name": str(i), "size_in_mib": 1 + i % 3,
                                        "thin_provision": i % 2 == 0, "lvs_name": "lvs0"})
                  for i in range(n)])
    # every 10th gets a snapshot, every 20th a clone of it
    pipelined(c, [("bdev_lvol_snapshot", {"lvol_name": "lvs0/%d" % i, "snapshot_name": "snap-%d" % i})
                  for i in range(0, n, 10)])
    pipelined(c, [("bdev_lvol_clone", {"snapshot_name": "lvs0/snap-%d" % i, "clone_name": "clone-%d" % i})
                  for i in range(0, n, 20)])
    c.send_raw('{"jsonrpc":"2.0","id":"L","method":"bdev_lvol_get_lvols"}')
    _, before = c.recv_value()
    stores_before = call_ok(c, "bdev_lvol_get_lvstores")
    c.close()
    target.restart()
    c = target.client()
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio0", "block_size": 4096})
    call_ok(c, "bdev_wait_for_examine")
    c.send_raw('{"jsonrpc":"2.0","id":"L","method":"bdev_lvol_get_lvols"}')
    _, after = c.recv_value()
    assert after == before
    assert call_ok(c, "bdev_lvol_get_lvstores") == stores_before
    # delete everything (clones first, then the origins, then the snapshots)
    lv = json.loads(after)["result"]
    order = [x for x in lv if x["is_clone"] and not x["is_snapshot"]] + \
        [x for x in lv if not x["is_clone"] and not x["is_snapshot"]] + [x for x in lv if x["is_snapshot"]]
    pipelined(c, [("bdev_lvol_delete", {"name": x["uuid"]}) for x in order])
    assert call_ok(c, "bdev_lvol_get_lvols") == []
    assert call_ok(c, "bdev_lvol_get_lvstores")[0]["free_clusters"] == free0


def test_nvme_tcp_writes_exhaust_lvs0_like_spdk_perf(workdir):
    """What happened between golden phases a and c, over NVMe/TCP this time:
    random 4 KiB writes to cnode1's nsid 1 (vol_thick, a thin clone of snap2
    after a58) until lvs0 has no free cluster; vol_thick then holds 247
    clusters and further writes fail with SPDK's status (sct 0, sc 6)."""
    import subprocess
    import time
    import golden
    import helpers
    from tgt_lib import Target
    try:
        perf = helpers.binary("diskperf")
    except FileNotFoundError:
        pytest.skip("diskperf not built")
    aio = make_sparse(os.path.join(workdir, "aio0.img"), 2 << 30)
    t = Target(workdir)
    try:
        port = golden.free_port()
        r = golden.Replayer(t.sock, aio, golden.UuidMap(), port=port)
        for fname, rec in golden.golden_files("a"):
            r.replay(fname, rec)
        r.close()
        assert not r.report, r.report
        c = t.client()
        trid = ("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%d subnqn:nqn.2016-06.io.spdk:cnode1 ns:1"
                % port)
        deadline = time.time() + 300
        out = ""
        while call_ok(c, "bdev_lvol_get_lvstores", {"lvs_name": "lvs0"})[0]["free_clusters"] > 0:
            assert time.time() < deadline, "lvs0 still has free clusters:\n" + out
            p = subprocess.run([perf, "-r", trid, "-q", "32", "-o", "4096", "-w", "randwrite", "-t", "5"],
                               capture_output=True, text=True, timeout=120)
            out = p.stdout + p.stderr
            assert t.proc.alive(), t.proc.output()[-3000:]
        # one more run: every write that needs a new cluster now fails, as in SPDK
        p = subprocess.run([perf, "-r", trid, "-q", "8", "-o", "4096", "-w", "randwrite", "-t", "2"],
                           capture_output=True, text=True, timeout=120)
        # diskperf prints the CQE status field: sct 0 / sc 6 (Internal Device Error) is 0xc
        assert "I/O errors" in p.stdout + p.stderr and "0xc" in p.stdout + p.stderr, p.stdout + p.stderr
        vol = [lv for lv in call_ok(c, "bdev_lvol_get_lvols", {"lvs_name": "lvs0"}) if lv["name"] == "vol_thick"]
        assert vol[0]["num_allocated_clusters"] == 247
    finally:
        t.stop()
