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
