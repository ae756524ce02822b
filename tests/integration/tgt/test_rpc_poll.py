"""disktgt --rpc-poll-interval: the emulation of SPDK's RPC timing (a poller
every 4 ms reads a request in one poll and answers it in the next; see
shared/spec/spdk-rpc.md "Timing of the real target"). Sequential calls cost
about two intervals, pipelined calls share polls, bad option values are
rejected with exit 2, and fault injection and asynchronous methods still
work. Timing bounds are loose: the machine may be a busy shared VM running
the ASan build."""
import json
import os
import statistics
import subprocess
import time

import helpers
from tgt_lib import Target, call_err, call_ok, disktgt_binary, make_sparse

MIB = 1 << 20


def poll_target(workdir, interval="4ms", name="tgt"):
    return Target(workdir, name, extra_args=["--rpc-poll-interval", interval])


def pipelined(c, requests):
    """Sends every request in one write, then reads the replies in order."""
    c.send_raw("".join(json.dumps(r) for r in requests))
    out = []
    for r in requests:
        resp, _ = c.recv_value()
        assert resp["id"] == r["id"], resp
        out.append(resp)
    return out


def test_sequential_and_pipelined_timing(workdir):
    t = poll_target(workdir)
    try:
        c = t.client()
        c.call("spdk_get_version")  # connection warmed up
        lat = []
        for _ in range(40):
            t0 = time.perf_counter()
            r = c.call("spdk_get_version")
            lat.append(time.perf_counter() - t0)
            assert r["result"]["version"].startswith("SPDK")
        median = statistics.median(lat)
        print("4ms poll: sequential spdk_get_version median %.2f ms (%.1f calls/s)"
              % (median * 1e3, 1 / median))
        assert 0.003 <= median <= 0.040, lat

        reqs = [{"jsonrpc": "2.0", "method": "spdk_get_version", "id": 1000 + i} for i in range(64)]
        t0 = time.perf_counter()
        replies = pipelined(c, reqs)
        elapsed = time.perf_counter() - t0
        print("4ms poll: 64 pipelined calls in %.2f ms (sequential would be ~%.0f ms)"
              % (elapsed * 1e3, 64 * median * 1e3))
        assert all("result" in r for r in replies)
        assert elapsed < 64 * median / 4, (elapsed, median)
        c.close()
    finally:
        t.stop()


def test_bad_values_rejected(workdir):
    sock = os.path.join(workdir, "bad.sock")
    for bad in ["", "x", "4m", "4 ms", " 4ms", "-1", "4ms5", "1.5ms", "0x10", "61s",
                "99999999999999999999"]:
        p = subprocess.run([disktgt_binary(), "-r", sock, "--rpc-poll-interval", bad],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "--rpc-poll-interval" in lines[0], (bad, p.stderr)
        assert not os.path.exists(sock)


def test_help_documents_the_option():
    p = subprocess.run([disktgt_binary(), "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "--rpc-poll-interval DURATION" in p.stdout
    assert "emulate SPDK's RPC poller" in p.stdout


def test_other_good_values(workdir):
    for value in ("500us", "2000", "0"):
        t = poll_target(workdir, value, name="v" + value)
        try:
            c = t.client()
            assert "result" in c.call("spdk_get_version")
            c.close()
        finally:
            t.stop()


def test_async_methods_pipelined(workdir):
    """lvol creates complete later (metadata written to the aio file):
    pipelined, every reply arrives, in order, and each one is true."""
    t = poll_target(workdir)
    try:
        c = t.client()
        path = make_sparse(os.path.join(workdir, "lvs.img"), 128 * MIB)
        call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio0", "block_size": 4096})
        call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
        reqs = [{"jsonrpc": "2.0", "method": "bdev_lvol_create", "id": 10 + i,
                 "params": {"lvol_name": "v%d" % i, "size_in_mib": 4, "lvs_name": "lvs0",
                            "thin_provision": True}} for i in range(32)]
        replies = pipelined(c, reqs)
        assert all("result" in r for r in replies), [r for r in replies if "error" in r][:3]
        names = sorted(lv["name"] for lv in call_ok(c, "bdev_lvol_get_lvols"))
        assert names == sorted("v%d" % i for i in range(32))
        c.close()
    finally:
        t.stop()


def test_fault_injection_still_works(workdir):
    t = poll_target(workdir)
    try:
        c = t.client()
        call_ok(c, "disktgt_inject_fault", {"method": "bdev_malloc_create", "action": "error",
                                            "code": -5, "message": "Input/output error"})
        args = {"num_blocks": 64, "block_size": 512, "name": "M0"}
        assert call_err(c, "bdev_malloc_create", args) == (-5, "Input/output error")
        call_ok(c, "bdev_malloc_create", args)
        # drop_reply: the method runs, no reply; the next reply is the next call's
        call_ok(c, "disktgt_inject_fault", {"method": "bdev_malloc_delete", "action": "drop_reply"})
        c.send_raw('{"jsonrpc":"2.0","id":100,"method":"bdev_malloc_delete","params":{"name":"M0"}}')
        c.send_raw('{"jsonrpc":"2.0","id":101,"method":"spdk_get_version"}')
        resp, _ = c.recv_value()
        assert resp["id"] == 101
        assert call_err(c, "bdev_get_bdevs", {"name": "M0"}) == (-19, "No such device")
        # exit_after_reply: the reply arrives, then the process exits
        call_ok(c, "disktgt_inject_fault", {"method": "spdk_get_version", "action": "exit_after_reply"})
        assert "result" in c.call("spdk_get_version")
        helpers.wait_for(lambda: not t.proc.alive(), 20, what="disktgt exit")
        assert t.stop(expect_rc=None) != 0
    finally:
        if t.proc.alive():
            t.stop()
