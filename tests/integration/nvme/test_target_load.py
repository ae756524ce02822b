"""Many connections and queues at once on one disktgt (target side): several
diskperf processes, each with several queue pairs, against two subsystems at
the same time, plus a verifying writer; everyone makes progress, data stays
right, and the RPC views go back to empty afterwards."""
import json
import subprocess

import helpers
from nvme_lib import tool, parse_total, nvmeio


def test_many_connections_and_queues(nvmf_tgt):
    a = nvmf_tgt.subsystem(size_mib=32, block_size=4096)
    b = nvmf_tgt.subsystem(size_mib=32, block_size=512)
    procs = []
    for nqn, w in ((a, "randread"), (a, "randwrite"), (b, "randrw"), (b, "randread")):
        cmd = [tool("diskperf"), "-r", nvmf_tgt.trid(nqn), "-q", "64", "-o", "4096", "-w", w, "-t", "3",
               "-c", "4"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    # the queues show up while they run (2 diskperf x (admin + 4 I/O) on a)
    helpers.wait_for(lambda: len(nvmf_tgt.call("nvmf_subsystem_get_qpairs", {"nqn": a})) >= 10,
                     what="qpairs visible", timeout=20)
    # meanwhile a writer/verifier (diskperf writes random data anywhere in a and b: keep the
    # verifier on a separate subsystem)
    c = nvmf_tgt.subsystem(size_mib=8)
    r = nvmeio(nvmf_tgt.trid(c), "write", 0, 4 << 20, 7, "verify", 0, 4 << 20, 7, opts=["--queues", "4"])
    assert r.returncode == 0, r.stderr
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert parse_total(out)["iops"] > 100
    for nqn in (a, b, c):
        helpers.wait_for(lambda: nvmf_tgt.call("nvmf_subsystem_get_qpairs", {"nqn": nqn}) == [],
                         what="qpairs gone", timeout=10)
    st = nvmf_tgt.call("nvmf_get_stats")["poll_groups"][0]
    assert st["current_io_qpairs"] == 0 and st["current_admin_qpairs"] == 0
    assert st["io_qpairs"] >= 16
    assert nvmf_tgt.proc.alive()
