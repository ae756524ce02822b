"""Target side of NVMe/TCP (src/nvmf) in a real disktgt, driven by a byte-exact
Python initiator (RawHost below) where src/nvme's host cannot express the case:
async events on namespace removal, keep-alive expiry, exact Connect status
codes, malformed PDUs, discovery log, and what the nvmf RPCs report about
live connections."""
import socket
import struct
import time

import pytest

import helpers
from nvme_lib import nvmeio, free_port

HOST = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
OTHER_HOST = "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"

PDU_ICRESP, PDU_C2H_TERM, PDU_CMD, PDU_RESP, PDU_H2C, PDU_C2H, PDU_R2T = 1, 3, 4, 5, 6, 7, 9


def sqe(opc, cid=0, nsid=0, sgl_id=0x5A, sgl_len=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, fctype=None,
        tail=None):
    """64-byte SQE. For Fabrics commands pass fctype and the 24 bytes at 40.. in tail."""
    head = struct.pack("<BBH", opc, 0x40, cid)
    if fctype is not None:
        head += struct.pack("<B3x", fctype) + b"\0" * 16
    else:
        head += struct.pack("<I", nsid) + b"\0" * 16
    sgl = struct.pack("<QI3xB", 0, sgl_len, sgl_id)
    rest = tail if tail is not None else struct.pack("<6I", cdw10, cdw11, cdw12, cdw13, 0, 0)
    s = head + sgl + rest
    assert len(s) == 64
    return s


class RawHost:
    """A minimal blocking NVMe/TCP initiator (no digests)."""

    def __init__(self, port, timeout=5.0, addr="127.0.0.1"):
        self.s = socket.create_connection((addr, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cid = 0
        self.cntlid = None

    def close(self):
        self.s.close()

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionResetError("target closed the connection")
            b += c
        return b

    def icreq(self):
        self.s.sendall(struct.pack("<BBBBI", 0, 0, 128, 0, 128) + b"\0" * 120)
        r = self.recv_exact(128)
        t, _, hlen, _, plen = struct.unpack_from("<BBBBI", r)
        pfv, cpda, dgst, maxh2c = struct.unpack_from("<HBBI", r, 8)
        assert (t, hlen, plen, pfv, cpda, dgst) == (PDU_ICRESP, 128, 128, 0, 0, 0)
        assert maxh2c >= 4096 and maxh2c % 4 == 0

    def recv_pdu(self):
        ch = self.recv_exact(8)
        t, flags, hlen, pdo, plen = struct.unpack("<BBBBI", ch)
        rest = self.recv_exact(plen - 8)
        hdr = ch + rest[:hlen - 8]
        data = rest[pdo - 8:] if pdo else b""
        return t, flags, hdr, data

    def send_cmd(self, s, icd=b""):
        if icd:
            pdu = struct.pack("<BBBBI", PDU_CMD, 0, 72, 72, 72 + len(icd)) + s + icd
        else:
            pdu = struct.pack("<BBBBI", PDU_CMD, 0, 72, 0, 72) + s
        self.s.sendall(pdu)

    def next_cid(self):
        self.cid += 1
        return self.cid

    def wait_resp(self, cid):
        """Collects C2H data until the CapsuleResp of cid; returns (dw0, dw1, status, data)."""
        data = b""
        while True:
            t, flags, hdr, d = self.recv_pdu()
            if t == PDU_C2H:
                data += d
                continue
            if t == PDU_C2H_TERM:
                raise ConnectionAbortedError("C2HTermReq fes=%d" % struct.unpack_from("<H", hdr, 8)[0])
            assert t == PDU_RESP, "unexpected PDU type %d" % t
            dw0, dw1, sqhd, sqid, rcid, status = struct.unpack_from("<IIHHHH", hdr, 8)
            assert rcid == cid
            return dw0, dw1, status, data

    def cmd(self, opc, nsid=0, rlen=0, icd=b"", **kw):
        cid = self.next_cid()
        if icd:
            self.send_cmd(sqe(opc, cid, nsid, sgl_id=0x01, sgl_len=len(icd), **kw), icd)
        else:
            self.send_cmd(sqe(opc, cid, nsid, sgl_len=rlen, **kw))
        return self.wait_resp(cid)

    def connect(self, subnqn, hostnqn=HOST, qid=0, cntlid=0xFFFF, kato=0, sqsize=31):
        cid = self.next_cid()
        tail = struct.pack("<HHHBxI12x", 0, qid, sqsize, 0, kato)
        data = bytes(range(1, 17)) + struct.pack("<H", cntlid) + b"\0" * 238
        data += subnqn.encode().ljust(256, b"\0") + hostnqn.encode().ljust(256, b"\0") + b"\0" * 256
        self.send_cmd(sqe(0x7F, cid, sgl_id=0x01, sgl_len=1024, fctype=1, tail=tail), data)
        dw0, dw1, status, _ = self.wait_resp(cid)
        if status == 0 and qid == 0:
            self.cntlid = dw0 & 0xFFFF
        return dw0, status

    def prop_set(self, ofst, value):
        cid = self.next_cid()
        self.send_cmd(sqe(0x7F, cid, fctype=0, tail=struct.pack("<B3xIQ8x", 0, ofst, value)))
        return self.wait_resp(cid)[2]

    def prop_get(self, ofst, size8=False):
        cid = self.next_cid()
        self.send_cmd(sqe(0x7F, cid, fctype=4, tail=struct.pack("<B3xI16x", 1 if size8 else 0, ofst)))
        dw0, dw1, status, _ = self.wait_resp(cid)
        assert status == 0
        return dw0 | (dw1 << 32)

    def admin_up(self, subnqn, hostnqn=HOST, kato=0):
        self.icreq()
        dw0, status = self.connect(subnqn, hostnqn, kato=kato)
        assert status == 0, "connect status 0x%x" % status
        assert self.prop_set(0x14, 0x00460001) == 0
        assert self.prop_get(0x1C) & 1 == 1
        return self.cntlid

    def closed_within(self, seconds):
        """True if the target closes the connection within `seconds`."""
        self.s.settimeout(seconds)
        end = time.time() + seconds
        try:
            while time.time() < end:
                if not self.s.recv(4096):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True
        finally:
            self.s.settimeout(5.0)
        return False


def sc(status):
    return (status >> 1) & 0xFF


def sct(status):
    return (status >> 9) & 0x7


def listen(call, nqn, port):
    call("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


# ------------------------------------------------------------------ events

@pytest.mark.parametrize("how", ["remove_ns", "delete_bdev"])
def test_namespace_removal_sends_async_event(nvmf_tgt, how):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    bdev = nvmf_tgt.call("nvmf_get_subsystems", {"nqn": nqn})[0]["namespaces"][0]["bdev_name"]
    h = RawHost(nvmf_tgt.port)
    h.admin_up(nqn)
    assert h.cmd(0x09, cdw10=0x0B, cdw11=0x100)[2] == 0          # AEC: namespace attribute notices
    h.send_cmd(sqe(0x0C, 31))                                   # AER, held by the target
    h.s.settimeout(0.3)
    with pytest.raises((socket.timeout, TimeoutError)):
        h.recv_exact(1)                                         # nothing happens on its own
    h.s.settimeout(5.0)
    if how == "remove_ns":
        nvmf_tgt.call("nvmf_subsystem_remove_ns", {"nqn": nqn, "nsid": 1})
    else:
        nvmf_tgt.call("bdev_malloc_delete", {"name": bdev})
    dw0, dw1, status, _ = h.wait_resp(31)
    assert status == 0
    assert dw0 & 0x7 == 2 and (dw0 >> 8) & 0xFF == 0 and (dw0 >> 16) & 0xFF == 0x04
    dw0, dw1, status, log = h.cmd(0x02, rlen=4096, cdw10=0x04 | (1023 << 16))
    assert status == 0 and struct.unpack_from("<II", log) == (1, 0)
    # gone from Identify and from the RPC view
    assert sc(h.cmd(0x06, nsid=1, rlen=4096, cdw10=0x03)[2]) == 0x0B
    assert "namespaces" not in nvmf_tgt.call("nvmf_get_subsystems", {"nqn": nqn})[0] or \
        nvmf_tgt.call("nvmf_get_subsystems", {"nqn": nqn})[0]["namespaces"] == []
    h.close()


def test_keep_alive_expiry_drops_controller(disktgt):
    proc, sock = disktgt
    rpc = helpers.RpcClient(sock)

    def call(m, p=None):
        r = rpc.call(m, p)
        assert "error" not in r, r
        return r["result"]

    call("nvmf_create_transport", {"trtype": "TCP", "kas": 1, "min_kato": 1000})
    call("bdev_malloc_create", {"name": "M0", "num_blocks": 2048, "block_size": 512})
    nqn = "nqn.2026-11.io.diskengine:ka"
    port = free_port()
    call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True})
    call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": "M0"}})
    listen(call, nqn, port)
    silent, alive = RawHost(port), RawHost(port)
    silent.admin_up(nqn, kato=300)                 # raised to min_kato: 1 s
    alive.admin_up(nqn, kato=1000)
    # Get Features KATO reports the effective value
    assert alive.cmd(0x0A, cdw10=0x0F)[0] == 1000
    assert silent.cmd(0x0A, cdw10=0x0F)[0] == 1000
    assert len(call("nvmf_subsystem_get_controllers", {"nqn": nqn})) == 2
    end = time.time() + 1.6
    while time.time() < end:                       # `alive` keeps sending Keep Alive
        assert alive.cmd(0x18)[2] == 0
        time.sleep(0.1)
    assert silent.closed_within(3.0)
    ctrlrs = call("nvmf_subsystem_get_controllers", {"nqn": nqn})
    assert [c["cntlid"] for c in ctrlrs] == [alive.cntlid]
    assert alive.cmd(0x18)[2] == 0
    silent.close()
    alive.close()
    rpc.close()


# ------------------------------------------------------------ connect rules

def test_connect_status_codes(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4, allow_any_host=False, hosts=[HOST])
    h = RawHost(nvmf_tgt.port)
    h.icreq()
    dw0, status = h.connect(nqn, OTHER_HOST)
    assert (sct(status), sc(status)) == (1, 0x84)              # Invalid Host
    dw0, status = h.connect("nqn.2026-11.io.diskengine:nope", HOST)
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == (1 << 16 | 256)
    dw0, status = h.connect(nqn, HOST, sqsize=0)
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == 44
    # an I/O queue before any admin queue names no live controller
    dw0, status = h.connect(nqn, HOST, qid=1, cntlid=7)
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == (1 << 16 | 16)
    dw0, status = h.connect(nqn, HOST)
    assert status == 0 and 1 <= dw0 <= 0xFFEF
    # commands before CC.EN=1 are refused
    assert sc(h.cmd(0x06, rlen=4096, cdw10=1)[2]) == 0x0C
    h.close()
    # the allowed host list is live: removing the host drops its controller
    h2 = RawHost(nvmf_tgt.port)
    h2.admin_up(nqn, HOST)
    nvmf_tgt.call("nvmf_subsystem_remove_host", {"nqn": nqn, "host": HOST})
    assert h2.closed_within(3.0)
    h2.close()


def test_cntlids_unique_and_identify_matches(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    hosts = [RawHost(nvmf_tgt.port) for _ in range(3)]
    ids = [h.admin_up(nqn) for h in hosts]
    assert len(set(ids)) == 3
    for h, cntlid in zip(hosts, ids):
        data = h.cmd(0x06, rlen=4096, cdw10=1)[3]
        assert struct.unpack_from("<H", data, 78)[0] == cntlid
        h.close()


# ------------------------------------------------------ malformed and views

def test_malformed_pdu_closes_only_that_connection(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    good = RawHost(nvmf_tgt.port)
    cntlid = good.admin_up(nqn)
    io = RawHost(nvmf_tgt.port)
    io.icreq()
    assert io.connect(nqn, qid=1, cntlid=cntlid)[1] == 0
    payload = bytes(range(256)) * 2
    assert io.cmd(0x01, nsid=1, icd=payload, cdw10=8, cdw12=0)[2] == 0
    for garbage in (b"\x04" + b"\xff" * 200,                  # capsule with HLEN 255
                    struct.pack("<BBBBI", 0, 0, 128, 0, 128) + b"\x01" + b"\0" * 119,  # PFV 1
                    b"GET / HTTP/1.1\r\n\r\n"):
        bad = RawHost(nvmf_tgt.port)
        bad.s.sendall(garbage)
        t, _, hdr, _ = bad.recv_pdu()
        assert t == PDU_C2H_TERM
        assert bad.closed_within(3.0)
        bad.close()
    # the others keep working, on both queues
    assert io.cmd(0x02, nsid=1, rlen=512, cdw10=8, cdw12=0)[3] == payload
    assert good.cmd(0x18)[2] == 0
    io.close()
    good.close()
    assert nvmf_tgt.proc.alive()


def test_rpc_views_of_live_connections(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    adm = RawHost(nvmf_tgt.port)
    cntlid = adm.admin_up(nqn)
    ios = []
    for qid in (1, 2):
        q = RawHost(nvmf_tgt.port)
        q.icreq()
        assert q.connect(nqn, qid=qid, cntlid=cntlid)[1] == 0
        ios.append(q)
    ctrlrs = nvmf_tgt.call("nvmf_subsystem_get_controllers", {"nqn": nqn})
    assert len(ctrlrs) == 1
    assert ctrlrs[0]["cntlid"] == cntlid and ctrlrs[0]["hostnqn"] == HOST
    assert ctrlrs[0]["num_io_qpairs"] == 2
    qps = nvmf_tgt.call("nvmf_subsystem_get_qpairs", {"nqn": nqn})
    assert sorted(q["qid"] for q in qps) == [0, 1, 2]
    assert all(q["cntlid"] == cntlid for q in qps)
    assert all(q["listen_address"]["trsvcid"] == str(nvmf_tgt.port) for q in qps)
    st = nvmf_tgt.call("nvmf_get_stats")
    pg = st["poll_groups"][0]
    assert pg["current_admin_qpairs"] == 1 and pg["current_io_qpairs"] == 2
    # I/O is counted
    before = pg.get("completed_nvme_io", 0)
    for _ in range(5):
        ios[0].cmd(0x02, nsid=1, rlen=512, cdw10=0, cdw12=0)
    pg = nvmf_tgt.call("nvmf_get_stats")["poll_groups"][0]
    if "completed_nvme_io" in pg:
        assert pg["completed_nvme_io"] >= before + 5
    for q in ios:
        q.close()
    adm.close()
    helpers.wait_for(lambda: nvmf_tgt.call("nvmf_subsystem_get_controllers", {"nqn": nqn}) == [],
                     what="controller gone after disconnect")


def test_discovery_log_page(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    hidden = nvmf_tgt.subsystem(size_mib=4, allow_any_host=False)   # this host may not see it
    h = RawHost(nvmf_tgt.port)
    h.admin_up(DISCOVERY_NQN)
    ident = h.cmd(0x06, rlen=4096, cdw10=1)[3]
    assert ident[111] == 2                                             # CNTRLTYPE discovery
    assert ident[768:768 + len(DISCOVERY_NQN)] == DISCOVERY_NQN.encode()
    # libnvme reads the 20-byte header first, then entries from 1024
    hdr = h.cmd(0x02, rlen=20, cdw10=0x70 | (4 << 16))[3]
    genctr, numrec, recfmt = struct.unpack_from("<QQH", hdr)
    assert numrec == 1 and recfmt == 0
    entries = h.cmd(0x02, rlen=4096, cdw10=0x70 | (1023 << 16), cdw12=1024)[3]
    trtype, adrfam, subtype = entries[0], entries[1], entries[2]
    assert (trtype, adrfam, subtype) == (3, 1, 2)
    assert entries[32:64].decode().strip() == str(nvmf_tgt.port)
    assert entries[256:512].rstrip(b"\0").decode() == nqn
    assert entries[512:768].decode().strip() == "127.0.0.1"
    assert hidden.encode() not in entries
    # KATO and AEC are the only features; I/O queues are refused
    assert h.cmd(0x0A, cdw10=0x0F)[2] == 0
    assert sc(h.cmd(0x0A, cdw10=0x07)[2]) == 0x02
    h.close()


def test_shutdown_with_live_connections_and_io(nvmf_tgt):
    """disktgt stops cleanly (fixture checks exit 0 and no sanitizer report)
    while hosts are connected, AERs are held and a write waits for its data."""
    nqn = nvmf_tgt.subsystem(size_mib=4)
    adm = RawHost(nvmf_tgt.port)
    cntlid = adm.admin_up(nqn)
    adm.send_cmd(sqe(0x0C, 31))                     # held AER
    io = RawHost(nvmf_tgt.port)
    io.icreq()
    assert io.connect(nqn, qid=1, cntlid=cntlid)[1] == 0
    io.send_cmd(sqe(0x01, 5, 1, sgl_len=8192, cdw12=15))   # write via R2T; data never sent
    t, _, hdr, _ = io.recv_pdu()
    assert t == PDU_R2T
    half = RawHost(nvmf_tgt.port)                   # connection without ICReq yet
    half.s.sendall(b"\0\0")
    assert nvmf_tgt.proc.stop() == 0
    for h in (adm, io, half):
        assert h.closed_within(3.0)
        h.close()


def test_ipv6_listener_and_listener_removal(nvmf_tgt):
    nqn = nvmf_tgt.subsystem(size_mib=4)
    port6 = free_port()
    nvmf_tgt.call("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv6", "traddr": "::1", "trsvcid": str(port6)}})
    h = RawHost(port6, addr="::1")
    h.admin_up(nqn)
    qps = nvmf_tgt.call("nvmf_subsystem_get_qpairs", {"nqn": nqn})
    assert qps[0]["listen_address"]["adrfam"] == "IPv6" and qps[0]["listen_address"]["traddr"] == "::1"
    # removing the listener keeps the established connection, refuses new ones
    nvmf_tgt.call("nvmf_subsystem_remove_listener", {"nqn": nqn, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv6", "traddr": "::1", "trsvcid": str(port6)}})
    assert h.cmd(0x18)[2] == 0
    with pytest.raises(OSError):
        RawHost(port6, addr="::1", timeout=2.0)
    # a subsystem only answers on its own listeners (the IPv4 one still works)
    other = nvmf_tgt.subsystem(size_mib=4, port=free_port())
    g = RawHost(nvmf_tgt.port)
    g.icreq()
    dw0, status = g.connect(other)
    assert (sct(status), sc(status)) == (1, 0x82)
    h.close()
    g.close()


def test_aio_namespace_roundtrip(nvmf_tgt, tmpdir_short):
    """An aio bdev (io_uring completions arrive from the loop, not deferred) exported and used
    through NVMe/TCP: pattern write/verify on 2 queues, Write Zeroes, flush, deallocate."""
    import os
    path = os.path.join(tmpdir_short, "aio.img")
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    nvmf_tgt.call("bdev_aio_create", {"filename": path, "name": "AioT", "block_size": 4096})
    nqn = nvmf_tgt.subsystem(bdev_name="AioT")
    r = nvmeio(nvmf_tgt.trid(nqn), "write", 0, 4 << 20, 11, "verify", 0, 4 << 20, 11,
               "zero", 8192, 16384, "check-zero", 8192, 16384, "flush", "deallocate", 0, 4096,
               opts=["--queues", "2"])
    assert r.returncode == 0, r.stderr
    # the data is in the file
    with open(path, "rb") as f:
        f.seek(8192)
        assert f.read(16384) == b"\0" * 16384
        f.seek(4 << 20)
        assert f.read(4096) == b"\0" * 4096
        f.seek(32768)
        assert f.read(4096) != b"\0" * 4096       # the written pattern reached the file


def test_subsystem_lifecycle_with_hosts(nvmf_tgt):
    """cntlid range limits, I/O connect rules, and deleting a subsystem under connected hosts."""
    nqn = "nqn.2026-11.io.diskengine:cntlid"
    nvmf_tgt.call("bdev_malloc_create", {"name": "McL", "num_blocks": 2048, "block_size": 512})
    nvmf_tgt.call("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True,
                                            "min_cntlid": 5, "max_cntlid": 6})
    nvmf_tgt.call("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {"bdev_name": "McL"}})
    listen(nvmf_tgt.call, nqn, nvmf_tgt.port)
    a, b, c = RawHost(nvmf_tgt.port), RawHost(nvmf_tgt.port), RawHost(nvmf_tgt.port)
    for h in (a, b, c):
        h.icreq()
    assert a.connect(nqn) == (5, 0)
    assert b.connect(nqn) == (6, 0)
    dw0, status = c.connect(nqn)
    assert (sct(status), sc(status)) == (1, 0x81)             # Controller Busy: range exhausted
    # an I/O queue before CC.EN=1 is refused (IPO = QID offset), then accepted
    q = RawHost(nvmf_tgt.port)
    q.icreq()
    dw0, status = q.connect(nqn, qid=1, cntlid=5)
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == 42
    assert a.prop_set(0x14, 0x00460001) == 0
    assert q.connect(nqn, qid=1, cntlid=5)[1] == 0
    q2 = RawHost(nvmf_tgt.port)
    q2.icreq()
    dw0, status = q2.connect(nqn, qid=1, cntlid=5)           # duplicate QID
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == 42
    dw0, status = q2.connect(nqn, qid=1, cntlid=5, hostnqn=OTHER_HOST)   # other host's controller
    assert (sct(status), sc(status)) == (1, 0x82) and dw0 == (1 << 16 | 16)
    # deleting the subsystem closes every connection of it and frees the bdev claim
    nvmf_tgt.call("nvmf_delete_subsystem", {"nqn": nqn})
    for h in (a, b, q):
        assert h.closed_within(3.0)
    bd = nvmf_tgt.call("bdev_get_bdevs", {"name": "McL"})[0]
    assert bd["claimed"] is False
    for h in (a, b, c, q, q2):
        h.close()


# ------------------------------------------- zero-copy reads vs. bdev delete

def nvmeio_pattern(off, length, seed):
    """nvmeio's write pattern (bench/nvme/nvmeio.c pattern_byte) for offsets < 16 GiB."""
    assert off % 4 == 0 and length % 4 == 0
    s = (seed * 0x85EBCA6B) & 0xFFFFFFFF
    first = off // 4
    return struct.pack("<%dI" % (length // 4),
                       *[((j * 0x9E3779B1) & 0xFFFFFFFF) ^ s for j in range(first, first + length // 4)])


def test_bdev_delete_with_zero_copy_reads_queued(nvmf_tgt):
    """Reads of a malloc namespace are sent straight from the bdev's memory.
    With 96 x 128 KiB of them executed but not yet read by the host (far more
    than the kernel buffers: host SO_RCVBUF 64 KiB), bdev_malloc_delete must
    succeed at once and every queued byte must still arrive intact (the 64 MiB
    buffer is mmapped by glibc: freed early, sendmsg would fail with EFAULT
    and the connection would drop)."""
    n, length = 96, 128 * 1024
    nqn = nvmf_tgt.subsystem(size_mib=64, block_size=4096)
    bdev = nvmf_tgt.call("nvmf_get_subsystems", {"nqn": nqn})[0]["namespaces"][0]["bdev_name"]
    r = nvmeio(nvmf_tgt.trid(nqn), "write", 0, n * length, 7)
    assert r.returncode == 0, r.stderr
    adm = RawHost(nvmf_tgt.port)
    adm.admin_up(nqn)
    q = RawHost(nvmf_tgt.port, timeout=10.0)
    q.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    q.icreq()
    _, status = q.connect(nqn, qid=1, cntlid=adm.cntlid, sqsize=127)
    assert status == 0
    blocks = length // 4096
    q.s.sendall(b"".join(
        struct.pack("<BBBBI", PDU_CMD, 0, 72, 0, 72) +
        sqe(0x02, 100 + i, 1, sgl_len=length, cdw10=i * blocks, cdw12=blocks - 1) for i in range(n)))
    time.sleep(0.5)                                             # all executed, the socket full
    assert nvmf_tgt.call("bdev_malloc_delete", {"name": bdev}) is True
    assert bdev not in [b["name"] for b in nvmf_tgt.call("bdev_get_bdevs")]
    data, status = {}, {}
    while len(status) < n:
        t, flags, hdr, d = q.recv_pdu()
        if t == PDU_C2H:
            cid, _, datao, datal = struct.unpack_from("<HHII", hdr, 8)
            assert datao == 0 and datal == length and cid not in data
            data[cid] = d
        else:
            assert t == PDU_RESP, "unexpected PDU type %d" % t
            cid, st = struct.unpack_from("<HH", hdr, 8 + 12)
            assert cid in data and cid not in status
            status[cid] = st
    assert all(st == 0 for st in status.values())
    for i in range(n):
        assert data[100 + i] == nvmeio_pattern(i * length, length, 7), "read %d: wrong data" % i
    # the queue lives on; the namespace is gone
    assert sc(q.cmd(0x02, nsid=1, rlen=4096, cdw12=0)[2]) == 0x0B
    q.close()
    adm.close()
