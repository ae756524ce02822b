"""Host library (src/nvme) against a real disktgt over NVMe/TCP: identify,
pattern round trips (in-capsule, R2T, multi-command, digests, several
queues), Write Zeroes, host access control, and failure reporting."""
import os
import signal
import subprocess
import json

import pytest

import helpers
from nvme_lib import nvmeio, tool, trid, free_port


def ok(r):
    assert r.returncode == 0, "rc=%d\nstdout=%s\nstderr=%s" % (r.returncode, r.stdout, r.stderr)
    return r


def test_identify_fields(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=16, block_size=512)
    r = ok(nvmeio(nvmf_tgt.trid(nqn), "identify"))
    d = json.loads(r.stdout)
    assert d["cntlid"] == d["connect_cntlid"]
    assert d["kas"] != 0
    assert d["sgls"] & 0x3 == 0x1
    assert d["ioccsz"] >= 4 and d["iorcsz"] >= 1 and d["icdoff"] == 0
    assert d["maxcmd"] != 0 and d["nn"] >= 1
    assert d["oncs"] & 0x8, "Write Zeroes must be advertised"
    assert d["subnqn"] == nqn
    assert d["cntrltype"] == 1
    assert d["ns"]["block_size"] == 512
    assert d["ns"]["num_blocks"] == 16 * 2048
    assert int(d["ns"]["nguid"], 16) != 0


@pytest.mark.parametrize("block_size", [512, 4096])
def test_pattern_roundtrip(nvmf_tgt, block_size):
    nqn = nvmf_tgt.subsystem(size_mib=16, block_size=block_size)
    tr = nvmf_tgt.trid(nqn)
    # small (in-capsule or R2T), exactly MDTS-ish, larger than MDTS (split), unaligned to MiB
    steps = []
    for off, ln, seed in ((0, 4096, 1), (4096 * 3, 128 * 1024, 2), (1 << 20, 3 << 20, 3),
                          (16 * 1024 * 1024 - 8192, 8192, 4)):
        steps += ["write", off, ln, seed]
    for off, ln, seed in ((0, 4096, 1), (4096 * 3, 128 * 1024, 2), (1 << 20, 3 << 20, 3),
                          (16 * 1024 * 1024 - 8192, 8192, 4)):
        steps += ["verify", off, ln, seed]
    ok(nvmeio(tr, *steps))
    # a second connection sees the same data; a wrong seed is detected (the check can fail)
    ok(nvmeio(tr, "verify", 1 << 20, 3 << 20, 3))
    r = nvmeio(tr, "verify", 0, 4096, 99)
    assert r.returncode == 1 and "mismatch" in r.stderr


@pytest.mark.parametrize("digests", [["--hdgst"], ["--ddgst"], ["--hdgst", "--ddgst"]])
def test_digests_roundtrip(nvmf_tgt, digests):
    nqn = nvmf_tgt.subsystem(size_mib=8)
    tr = nvmf_tgt.trid(nqn)
    ok(nvmeio(tr, "write", 0, 1 << 20, 5, "verify", 0, 1 << 20, 5, opts=digests))


def test_several_queues(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=8)
    tr = nvmf_tgt.trid(nqn)
    ok(nvmeio(tr, "write", 0, 2 << 20, 6, "verify", 0, 2 << 20, 6, opts=["--queues", "4"]))


def test_write_zeroes_reads_back_zero(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=16)
    tr = nvmf_tgt.trid(nqn)
    ok(nvmeio(tr, "write", 0, 8 << 20, 7))
    # region not a power of two and not MiB-aligned, spanning several commands on small WZ limits
    ok(nvmeio(tr, "zero", 512 * 3, (5 << 20) + 512 * 5, "check-zero", 512 * 3, (5 << 20) + 512 * 5))
    # bytes around the zeroed region are untouched
    ok(nvmeio(tr, "verify", 0, 512 * 3, 7, "verify", 512 * 3 + (5 << 20) + 512 * 5,
              (8 << 20) - (512 * 3 + (5 << 20) + 512 * 5), 7))
    # the check can fail: the pattern region is not zero
    r = nvmeio(tr, "check-zero", 0, 4096)
    assert r.returncode == 1 and "mismatch" in r.stderr
    # whole namespace
    ok(nvmeio(tr, "zero", 0, 16 << 20, "check-zero", 0, 16 << 20, "flush"))


def test_out_of_range_is_refused(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    r = nvmeio(nvmf_tgt.trid(nqn), "zero", 4 << 20, 4096)
    assert r.returncode == 1 and "ERANGE" in r.stderr


def test_host_not_allowed_is_refused(nvmf_tgt):
    good = "nqn.2026-11.io.diskengine:agent:node1"
    bad = "nqn.2026-11.io.diskengine:agent:intruder"
    nqn = nvmf_tgt.subsystem(size_mib=4, allow_any_host=False, hosts=[good])
    r = nvmeio(nvmf_tgt.trid(nqn, bad), "identify")
    assert r.returncode == 1
    assert "connect failed: EIO" in r.stderr and "status=0x" in r.stderr, r.stderr
    ok(nvmeio(nvmf_tgt.trid(nqn, good), "write", 0, 4096, 1, "verify", 0, 4096, 1))


def test_unknown_subsystem_and_refused_port(nvmf_tgt):
    nvmf_tgt.subsystem(size_mib=4)
    r = nvmeio(trid(nvmf_tgt.port, "nqn.2026-11.io.diskengine:nope"), "identify")
    assert r.returncode == 1 and "EIO" in r.stderr
    r = nvmeio(trid(free_port(), "nqn.x"), "identify", opts=["--timeout", "2000"])
    assert r.returncode == 1 and "ECONNREFUSED" in r.stderr


def test_disconnect_removes_controller(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    ok(nvmeio(nvmf_tgt.trid(nqn), "write", 0, 4096, 1))
    helpers.wait_for(lambda: nvmf_tgt.controllers(nqn) == [], timeout=10,
                     what="controller gone after disconnect")


def test_target_killed_mid_io_reports_reset(tmpdir_short):
    """Killing the target while a host is writing ends the host with ECONNRESET
    (not a hang, not success)."""
    from nvme_lib import NvmfTarget
    sock = os.path.join(tmpdir_short, "tgt.sock")
    proc = helpers.Proc([helpers.binary("disktgt"), "-r", sock],
                        os.path.join(tmpdir_short, "disktgt.log"))
    try:
        helpers.wait_socket(sock, proc)
        t = NvmfTarget(proc, sock)
        nqn = t.subsystem(size_mib=256)
        args = ["write", 0, 256 << 20, 1, "verify", 0, 256 << 20, 1] * 4
        host = subprocess.Popen([tool("nvmeio"), "-r", t.trid(nqn), "--timeout", "5000"] +
                                [str(a) for a in args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # admin + I/O queue connected: the host is writing
        helpers.wait_for(lambda: len(t.call("nvmf_subsystem_get_qpairs", {"nqn": nqn})) >= 2,
                         timeout=20, what="host writing")
        proc.p.send_signal(signal.SIGKILL)
        out, err = host.communicate(timeout=30)
        assert host.returncode == 1, (out, err)
        assert "ECONNRESET" in err, err
    finally:
        proc.stop()


def test_parallel_hosts_distinct_regions(nvmf_tgt):
    """Several host processes (each with two I/O queues) write and verify
    their own region of one namespace at the same time."""
    nqn = nvmf_tgt.subsystem(size_mib=32)
    tr = nvmf_tgt.trid(nqn)
    procs = []
    for i in range(4):
        off = i * 8 * 1024 * 1024
        args = ["write", off, 8 << 20, 100 + i, "verify", off, 8 << 20, 100 + i,
                "zero", off + 4096, 1 << 20, "check-zero", off + 4096, 1 << 20,
                "verify", off, 4096, 100 + i]
        procs.append(subprocess.Popen([tool("nvmeio"), "-r", tr, "--queues", "2"] +
                                      [str(a) for a in args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # and every region still holds its own pattern afterwards
    for i in range(4):
        off = i * 8 * 1024 * 1024
        ok(nvmeio(tr, "verify", off + 4096 + (1 << 20), (7 << 20) - 4096, 100 + i))
