"""Host library round trips on logical volumes exported by disktgt: thick,
thin (unwritten clusters read zero) and a clone of a snapshot (sees the
snapshot's data, writes stay private), plus Write Zeroes on each."""
from nvme_lib import nvmeio

MiB = 1 << 20


def ok(r):
    assert r.returncode == 0, "rc=%d\nstdout=%s\nstderr=%s" % (r.returncode, r.stdout, r.stderr)
    return r


def make_lvstore(t, size_mib=64):
    t.call("bdev_malloc_create", {"name": "LvBase", "num_blocks": size_mib * MiB // 512,
                                  "block_size": 512})
    t.call("bdev_lvol_create_lvstore", {"bdev_name": "LvBase", "lvs_name": "lvs",
                                        "cluster_sz": MiB})


def test_thick_lvol_roundtrip_and_zero(nvmf_tgt):
    make_lvstore(nvmf_tgt)
    nvmf_tgt.call("bdev_lvol_create", {"lvol_name": "thick", "size_in_mib": 8, "lvs_name": "lvs",
                                       "thin_provision": False})
    nqn = nvmf_tgt.subsystem(bdev_name="lvs/thick")
    tr = nvmf_tgt.trid(nqn)
    ok(nvmeio(tr, "write", 0, 8 * MiB, 11, "verify", 0, 8 * MiB, 11))
    ok(nvmeio(tr, "zero", MiB + 512, 3 * MiB, "check-zero", MiB + 512, 3 * MiB,
              "verify", 0, MiB + 512, 11, "verify", 4 * MiB + 512, 4 * MiB - 512, 11))


def test_thin_lvol_reads_zero_then_roundtrip(nvmf_tgt):
    make_lvstore(nvmf_tgt)
    nvmf_tgt.call("bdev_lvol_create", {"lvol_name": "thin", "size_in_mib": 16, "lvs_name": "lvs",
                                       "thin_provision": True})
    nqn = nvmf_tgt.subsystem(bdev_name="lvs/thin")
    tr = nvmf_tgt.trid(nqn)
    ok(nvmeio(tr, "check-zero", 0, 16 * MiB))
    # partial-cluster writes, across a cluster boundary, then the rest still reads zero
    ok(nvmeio(tr, "write", 4096, 8192, 21, "write", 3 * MiB - 4096, 8192, 22,
              "verify", 4096, 8192, 21, "verify", 3 * MiB - 4096, 8192, 22,
              "check-zero", 0, 4096, "check-zero", 4096 + 8192, 3 * MiB - 4096 - 4096 - 8192,
              "check-zero", 3 * MiB + 4096, 13 * MiB - 4096))
    ok(nvmeio(tr, "zero", 0, 16 * MiB, "check-zero", 0, 16 * MiB))


def test_clone_of_snapshot(nvmf_tgt):
    make_lvstore(nvmf_tgt)
    nvmf_tgt.call("bdev_lvol_create", {"lvol_name": "origin", "size_in_mib": 8, "lvs_name": "lvs",
                                       "thin_provision": True})
    nqn_o = nvmf_tgt.subsystem(bdev_name="lvs/origin")
    tr_o = nvmf_tgt.trid(nqn_o)
    ok(nvmeio(tr_o, "write", 0, 4 * MiB, 31))
    nvmf_tgt.call("bdev_lvol_snapshot", {"lvol_name": "lvs/origin", "snapshot_name": "snap"})
    nvmf_tgt.call("bdev_lvol_clone", {"snapshot_name": "lvs/snap", "clone_name": "clone"})
    nqn_c = nvmf_tgt.subsystem(bdev_name="lvs/clone")
    tr_c = nvmf_tgt.trid(nqn_c)
    # the clone sees the snapshot's data and zeroes beyond it
    ok(nvmeio(tr_c, "verify", 0, 4 * MiB, 31, "check-zero", 4 * MiB, 4 * MiB))
    # writes and zeroes on the clone stay private
    ok(nvmeio(tr_c, "write", MiB, MiB, 32, "zero", 3 * MiB, 4096,
              "verify", MiB, MiB, 32, "check-zero", 3 * MiB, 4096, "verify", 0, MiB, 31))
    ok(nvmeio(tr_o, "verify", 0, 4 * MiB, 31))
    # and the origin's new writes do not leak into the clone
    ok(nvmeio(tr_o, "write", 2 * MiB, 4096, 33))
    ok(nvmeio(tr_c, "verify", 2 * MiB, 4096, 31))
