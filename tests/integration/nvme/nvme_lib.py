"""Helpers for the NVMe/TCP integration tests (host side: test_host_*.py,
target side: test_target_*.py): a disktgt configured over JSON-RPC exactly as
an SPDK client would (NvmfTarget), and real host processes built from src/nvme
(nvmeio, diskperf). Import with `from nvme_lib import ...` (not from conftest:
every area has a conftest module and only one of them wins in a combined run)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import helpers  # noqa: E402
from helpers import free_port  # noqa: E402,F401 (re-exported to the tests)

TOTAL_RE = re.compile(
    r"^Total: (?P<iops>[0-9.]+) IOPS (?P<mibs>[0-9.]+) MiB/s avg (?P<avg>[0-9.]+) us "
    r"p50 (?P<p50>[0-9.]+) us p99 (?P<p99>[0-9.]+) us p99\.9 (?P<p999>[0-9.]+) us$")


def tool(name):
    """nvmeio lives in bench/nvme; apps via helpers.binary."""
    if name == "nvmeio":
        p = os.path.join(helpers.build_dir(), "bench", "nvme", "nvmeio")
        if os.path.exists(p):
            return p
        raise FileNotFoundError(p)
    return helpers.binary(name)


def trid(port, nqn, hostnqn=None, nsid=None):
    s = "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%d subnqn:%s" % (port, nqn)
    if hostnqn:
        s += " hostnqn:" + hostnqn
    if nsid:
        s += " ns:%d" % nsid
    return s


def nvmeio(tr, *args, opts=(), timeout=120):
    """Runs nvmeio; returns CompletedProcess (text)."""
    cmd = [tool("nvmeio"), "-r", tr] + list(opts) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def diskperf(tr, q, o, w, t, M=None, c=None, timeout=120):
    cmd = [tool("diskperf"), "-r", tr, "-q", str(q), "-o", str(o), "-w", w, "-t", str(t)]
    if M is not None:
        cmd += ["-M", str(M)]
    if c is not None:
        cmd += ["-c", str(c)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def parse_total(stdout):
    lines = [l for l in stdout.strip().splitlines() if l.strip()]
    assert lines, "no output"
    m = TOTAL_RE.match(lines[-1])
    assert m, "last line is not a Total line: %r" % lines[-1]
    return {k: float(v) for k, v in m.groupdict().items()}


class NvmfTarget:
    """A disktgt with a TCP transport; subsystem() exports a malloc bdev."""

    def __init__(self, proc, sock):
        self.proc = proc
        self.sock = sock
        self.rpc = helpers.RpcClient(sock)
        self.port = free_port()
        self.n = 0
        r = self.rpc.call("nvmf_create_transport", {"trtype": "TCP"})
        assert "error" not in r, r

    def call(self, method, params=None):
        r = self.rpc.call(method, params)
        assert "error" not in r, "%s: %s" % (method, r["error"])
        return r.get("result")

    def subsystem(self, nqn=None, size_mib=64, block_size=512, allow_any_host=True, hosts=(),
                  bdev_name=None, port=None):
        """Creates bdev + subsystem + namespace 1 + listener; returns the NQN."""
        self.n += 1
        nqn = nqn or "nqn.2026-11.io.diskengine:test-%d" % self.n
        if bdev_name is None:
            bdev_name = "Malloc%d" % self.n
            self.call("bdev_malloc_create", {"name": bdev_name,
                                             "num_blocks": size_mib * 1024 * 1024 // block_size,
                                             "block_size": block_size})
        self.call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": allow_any_host,
                                            "serial_number": "DE%018d" % self.n,
                                            "model_number": "diskengine test"})
        for h in hosts:
            self.call("nvmf_subsystem_add_host", {"nqn": nqn, "host": h})
        self.call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": bdev_name}})
        self.call("nvmf_subsystem_add_listener", {
            "nqn": nqn, "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                                           "traddr": "127.0.0.1",
                                           "trsvcid": str(port or self.port)}})
        return nqn

    def trid(self, nqn, hostnqn=None):
        return trid(self.port, nqn, hostnqn)

    def controllers(self, nqn):
        return self.call("nvmf_subsystem_get_controllers", {"nqn": nqn})

    def close(self):
        self.rpc.close()
