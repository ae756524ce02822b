"""diskperf against a real disktgt: CLI contract (DESIGN.md), progress lines,
the Total line, workloads, several queues, and clear errors."""
import re
import subprocess

import pytest

from nvme_lib import diskperf, parse_total, tool, trid, free_port


@pytest.mark.parametrize("w,extra", [("randread", {}), ("randwrite", {}), ("read", {}), ("rw", {"M": 30}),
                                     ("write", {}), ("randrw", {"M": 70})])
def test_workloads(nvmf_tgt, w, extra):
    nqn = nvmf_tgt.subsystem(size_mib=16)
    r = diskperf(nvmf_tgt.trid(nqn), q=8, o=4096, w=w, t=2, **extra)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    progress = [l for l in lines if re.match(r"^\[\s*\d+s\]", l)]
    assert len(progress) >= 1, r.stdout
    tot = parse_total(r.stdout)
    assert tot["iops"] > 0 and tot["mibs"] > 0
    assert 0 < tot["p50"] <= tot["p99"] <= tot["p999"]
    assert abs(tot["mibs"] - tot["iops"] * 4096 / 1048576) <= 0.02 * tot["mibs"] + 0.01


def test_digests(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=16)
    r = subprocess.run([tool("diskperf"), "-r", nvmf_tgt.trid(nqn), "-q", "4", "-o", "65536",
                        "-w", "randrw", "-t", "1", "-H", "-I"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert parse_total(r.stdout)["iops"] > 0


def test_several_queues_large_io(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=32)
    r = diskperf(nvmf_tgt.trid(nqn), q=8, o=131072, w="write", t=1, c=2)
    assert r.returncode == 0, r.stderr
    tot = parse_total(r.stdout)
    assert tot["iops"] > 0


def test_usage_and_errors(nvmf_tgt):
    r = subprocess.run([tool("diskperf"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: diskperf" in r.stdout
    for bad in (["-q", "1"],
                ["-r", "trtype:TCP traddr:127.0.0.1 subnqn:x", "-q", "0", "-o", "4096", "-w",
                 "randread", "-t", "1"],
                ["-r", "trtype:RDMA traddr:127.0.0.1 subnqn:x", "-q", "1", "-o", "4096", "-w",
                 "randread", "-t", "1"],
                ["-r", "trtype:TCP traddr:127.0.0.1 subnqn:x", "-q", "1", "-o", "4096", "-w",
                 "sideways", "-t", "1"]):
        r = subprocess.run([tool("diskperf")] + bad, capture_output=True, text=True)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.startswith("diskperf: "), r.stderr
    # nothing listening: exit 1, one clear line
    r = diskperf(trid(free_port(), "nqn.x"), q=1, o=4096, w="randread", t=1)
    assert r.returncode == 1
    assert "cannot connect" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # I/O size not a multiple of the block size
    nqn = nvmf_tgt.subsystem(size_mib=4, block_size=4096)
    r = diskperf(nvmf_tgt.trid(nqn), q=1, o=512, w="randread", t=1)
    assert r.returncode == 1 and "block size" in r.stderr


def test_target_killed_during_run(tmpdir_short):
    """diskperf ends with exit 1 and one clear line when the target dies."""
    import os
    import signal
    import helpers
    from nvme_lib import NvmfTarget
    sock = os.path.join(tmpdir_short, "tgt.sock")
    proc = helpers.Proc([helpers.binary("disktgt"), "-r", sock],
                        os.path.join(tmpdir_short, "disktgt.log"))
    try:
        helpers.wait_socket(sock, proc)
        t = NvmfTarget(proc, sock)
        nqn = t.subsystem(size_mib=16)
        perf = subprocess.Popen([tool("diskperf"), "-r", t.trid(nqn), "-q", "8", "-o", "4096",
                                 "-w", "randread", "-t", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = perf.stdout.readline()  # the first progress line: I/O is running
        assert first.startswith("["), first
        proc.p.send_signal(signal.SIGKILL)
        out, err = perf.communicate(timeout=30)
        assert perf.returncode == 1, (out, err)
        assert err.startswith("diskperf: ") and "lost" in err, err
    finally:
        proc.stop()


@pytest.mark.skipif(not __import__("os").environ.get("DISKENGINE_STRESS"),
                    reason="long run: set DISKENGINE_STRESS=1")
def test_stress_long_mixed_run(nvmf_tgt):
    """60 s of 4 queues x 32 mixed random I/O, then a pattern round trip on
    the same namespace still works (no corruption of the target's state)."""
    from nvme_lib import nvmeio
    nqn = nvmf_tgt.subsystem(size_mib=64)
    tr = nvmf_tgt.trid(nqn)
    r = diskperf(tr, q=128, o=4096, w="randrw", t=60, M=50, c=4, timeout=180)
    assert r.returncode == 0, r.stderr
    assert parse_total(r.stdout)["iops"] > 0
    r = nvmeio(tr, "write", 0, 8 << 20, 9, "verify", 0, 8 << 20, 9)
    assert r.returncode == 0, r.stderr


def test_io_errors_reported(nvmf_tgt):
    """A thin lvol larger than its lvstore runs out of clusters: diskperf
    reports the I/O errors and exits 1."""
    nvmf_tgt.call("bdev_malloc_create", {"name": "Tiny", "num_blocks": 8 * 2048, "block_size": 512})
    nvmf_tgt.call("bdev_lvol_create_lvstore", {"bdev_name": "Tiny", "lvs_name": "tiny",
                                               "cluster_sz": 1 << 20})
    nvmf_tgt.call("bdev_lvol_create", {"lvol_name": "big", "size_in_mib": 64, "lvs_name": "tiny",
                                       "thin_provision": True})
    nqn = nvmf_tgt.subsystem(bdev_name="tiny/big")
    r = diskperf(nvmf_tgt.trid(nqn), q=8, o=4096, w="randwrite", t=2)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "I/O errors" in r.stderr, r.stderr
    parse_total(r.stdout)  # the summary is still printed


def test_io_count_limit_writes_each_block_once(nvmf_tgt):
    """-n: a sequential write of exactly namespace/-o I/Os covers every block once and
    ends as soon as they complete (bench/nvme uses it for thin-lvol first writes)."""
    nqn = nvmf_tgt.subsystem(size_mib=16, block_size=4096)
    bdev = "Malloc%d" % nvmf_tgt.n

    def stat():
        return [b for b in nvmf_tgt.call("bdev_get_iostat")["bdevs"] if b["name"] == bdev][0]
    before = stat()["num_write_ops"]
    r = subprocess.run([tool("diskperf"), "-r", nvmf_tgt.trid(nqn), "-q", "8", "-o", "131072",
                        "-w", "write", "-t", "60", "-n", "128"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    tot = parse_total(r.stdout)
    after = stat()
    assert after["num_write_ops"] - before == 128
    assert after["bytes_written"] >= 16 << 20
    # the rate is over the time the 128 I/Os took, not over -t
    assert tot["iops"] > 128 / 30.0
    for bad in ("0", "-5", "x"):
        r = subprocess.run([tool("diskperf"), "-r", nvmf_tgt.trid(nqn), "-q", "1", "-o", "4096",
                            "-w", "write", "-t", "1", "-n", bad], capture_output=True, text=True)
        assert r.returncode == 2 and "-n must be" in r.stderr, (bad, r.stderr)
