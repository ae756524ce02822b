"""disktgt's JSON-RPC layer over its real unix socket: the SPDK golden
exchanges (byte-identical responses), framing leniencies, many concurrent
clients, pipelining order, the request size bound, the socket file rules and
a clean shutdown on SIGTERM/SIGINT."""
import glob
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import helpers

GOLDEN = os.path.join(helpers.SHARED, "spdk-golden")


def golden(prefix):
    files = glob.glob(os.path.join(GOLDEN, prefix + "_*.json"))
    assert len(files) == 1, prefix
    with open(files[0]) as f:
        return json.load(f)


def connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_line(s, buf=b""):
    """Bytes up to and including the next newline (SPDK ends every response with one)."""
    while b"\n" not in buf:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed; got %r" % buf)
        buf += chunk
    i = buf.index(b"\n") + 1
    return buf[:i], buf[i:]


def expect_silence(s, seconds):
    """Nothing arrives for `seconds` and the connection stays open."""
    s.settimeout(seconds)
    try:
        data = s.recv(65536)
    except socket.timeout:
        return
    finally:
        s.settimeout(10.0)
    raise AssertionError("expected silence, got %r" % data)


def methods(sock):
    c = helpers.RpcClient(sock)
    try:
        return c.call("rpc_get_methods", raise_on_error=True)["result"]
    finally:
        c.close()


@pytest.mark.parametrize("name", ["a01", "a83", "a84", "a85", "a86", "a89", "a90"])
def test_golden_byte_identical(disktgt, name):
    _, sock = disktgt
    g = golden(name)
    method = json.loads(g["request_raw"])["method"]
    if method not in ("spdk_get_version", "no_such_method") and method not in methods(sock):
        pytest.skip("%s needs %s, not registered in this build" % (name, method))
    s = connect(sock)
    s.sendall(g["request_raw"].encode())
    line, rest = recv_line(s)
    assert line == g["response_raw"].encode()
    assert rest == b""
    s.close()


def test_golden_a02_method_list(disktgt):
    _, sock = disktgt
    g = golden("a02")
    s = connect(sock)
    s.sendall(g["request_raw"].encode())
    line, _ = recv_line(s)
    resp = json.loads(line)
    assert list(resp) == ["jsonrpc", "id", "result"]
    assert resp["id"] == 2
    names = resp["result"]
    assert len(names) == len(set(names))
    # Like SPDK: most recently registered first, so the RPC layer's own two last.
    assert names[-2:] == ["spdk_get_version", "rpc_get_methods"]
    spdk = set(g["response"]["result"])
    # save_config/load_config are client-side in rpc.py; spdk-rpc.md lists them
    # as disktgt methods. disktgt_* are disktgt's own (fault injection).
    allowed = {"save_config", "load_config"}
    extra = [n for n in names if n not in spdk and n not in allowed and not n.startswith("disktgt_")]
    assert extra == [], "methods SPDK does not have: %s" % extra
    # The compact encoding of the list is what SPDK would write.
    assert line == (json.dumps(resp, separators=(",", ":")) + "\n").encode()


def test_golden_a87_truncated_waits(disktgt):
    _, sock = disktgt
    g = golden("a87")
    s = connect(sock)
    s.sendall(g["request_raw"].encode())
    expect_silence(s, 0.5)
    # The server was waiting: the rest of the value completes the request.
    s.sendall(b"}")
    line, _ = recv_line(s)
    assert line == golden("a01")["response_raw"].encode()


def test_golden_a88_invalid_closes(disktgt):
    proc, sock = disktgt
    g = golden("a88")
    s = connect(sock)
    s.sendall(g["request_raw"].encode())
    s.settimeout(5)
    assert s.recv(65536) == b""  # closed, no reply
    assert "jsonrpc parse request failed" in proc.output()


def test_golden_a91_notification_no_reply(disktgt):
    _, sock = disktgt
    s = connect(sock)
    s.sendall(golden("a91")["request_raw"].encode())
    expect_silence(s, 0.5)
    a01 = golden("a01")
    s.sendall(a01["request_raw"].encode())
    line, rest = recv_line(s)
    assert line == a01["response_raw"].encode() and rest == b""


def test_golden_a92_batch(disktgt):
    _, sock = disktgt
    g = golden("a92")
    s = connect(sock)
    s.sendall(g["request_raw"].encode())
    line, _ = recv_line(s)
    assert line.startswith(b"[") and line.endswith(b"]\n")
    resp = json.loads(line)
    assert len(resp) == 2
    first = golden("a01")["response_raw"].encode().rstrip(b"\n")
    assert line.startswith(b"[" + first + b",")
    assert resp[1]["id"] == 2 and list(resp[1])[:2] == ["jsonrpc", "id"]
    if "bdev_lvol_get_lvstores" in methods(sock):
        assert "result" in resp[1]
    assert line == (json.dumps(resp, separators=(",", ":")) + "\n").encode()


def test_rpc_py_style_pretty_request(disktgt):
    _, sock = disktgt
    s = connect(sock)
    req = {"jsonrpc": "2.0", "method": "spdk_get_version", "id": 1}
    s.sendall(json.dumps(req, indent=2).encode())
    line, _ = recv_line(s)
    assert line == golden("a01")["response_raw"].encode()


def test_many_concurrent_clients(disktgt):
    _, sock = disktgt
    n = int(os.environ.get("DISKENGINE_RPC_CLIENTS",
                           "1500" if os.environ.get("DISKENGINE_STRESS") else "300"))
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    socks = [connect(sock) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":"c%d"}' % i)
    for i, s in enumerate(socks):
        line, _ = recv_line(s)
        assert json.loads(line)["id"] == "c%d" % i
    for s in socks:
        s.close()
    # All of them are served, then gone; the server still answers.
    c = helpers.RpcClient(sock)
    assert c.call("spdk_get_version")["result"]["version"] == "SPDK v26.09-pre"
    c.close()


def test_pipelined_in_order(disktgt):
    _, sock = disktgt
    s = connect(sock)
    n = 3000
    reqs = []
    for i in range(n):
        m = ("spdk_get_version", "no_such_method", "rpc_get_methods")[i % 3]
        rid = i if i % 2 else "s%d" % i
        reqs.append(json.dumps({"jsonrpc": "2.0", "method": m, "id": rid}))
    s.sendall("".join(reqs).encode())
    buf = b""
    for i in range(n):
        line, buf = recv_line(s, buf)
        resp = json.loads(line)
        assert resp["id"] == (i if i % 2 else "s%d" % i)
        assert ("error" in resp) == (i % 3 == 1)
    s.close()


def test_oversize_request(disktgt):
    proc, sock = disktgt
    s = connect(sock)
    s.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1}')
    big = b'{"jsonrpc":"2.0","method":"echo","id":2,"params":{"x":"' + b"a" * (17 << 20)
    try:
        s.sendall(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before taking everything
    data = b""
    s.settimeout(20)
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    lines = data.split(b"\n")
    assert lines[0] == golden("a01")["response_raw"].encode().rstrip(b"\n")
    err = json.loads(lines[1])
    assert err["id"] is None
    assert err["error"]["code"] == -32600
    assert "too large" in err["error"]["message"]
    assert "request too large" in proc.output()


def test_stale_socket_replaced_and_mode(tmpdir_short):
    sock = os.path.join(tmpdir_short, "t.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)  # a socket file nobody listens on: left by a crash
    s.close()
    p = helpers.Proc([helpers.binary("disktgt"), "-r", sock], os.path.join(tmpdir_short, "1.log"))
    try:
        helpers.wait_socket(sock, p)
        assert os.stat(sock).st_mode & 0o777 == 0o600
        # A second target on a live socket refuses to start and says why.
        r = subprocess.run([helpers.binary("disktgt"), "-r", sock], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1
        assert "in use" in r.stderr
        assert helpers.RpcClient(sock).call("spdk_get_version")["id"] == 1
    finally:
        rc = p.stop(signal.SIGINT)
    p.assert_clean()
    assert rc == 0
    assert not os.path.exists(sock)


def test_sigterm_with_clients_connected(tmpdir_short):
    sock = os.path.join(tmpdir_short, "t.sock")
    p = helpers.Proc([helpers.binary("disktgt"), "-r", sock], os.path.join(tmpdir_short, "1.log"))
    helpers.wait_socket(sock, p)
    socks = [connect(sock) for _ in range(5)]
    socks[0].sendall(b'{"method":"spdk_get_version","id":1}{"method":"spdk_get_ver')
    recv_line(socks[0])
    t0 = time.time()
    rc = p.stop(signal.SIGTERM)
    assert rc == 0 and time.time() - t0 < 10
    p.assert_clean()
    for s in socks:
        s.settimeout(5)
        assert s.recv(100) == b""


def test_usage():
    r = subprocess.run([helpers.binary("disktgt"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "-r" in r.stdout
    r = subprocess.run([helpers.binary("disktgt")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([helpers.binary("disktgt"), "-r", "/tmp/x.sock", "--log-level", "loud"],
                       capture_output=True, text=True)
    assert r.returncode == 2


def start(tmpdir, *extra):
    sock = os.path.join(tmpdir, "t.sock")
    p = helpers.Proc([helpers.binary("disktgt"), "-r", sock] + list(extra),
                     os.path.join(tmpdir, "tgt.log"))
    helpers.wait_socket(sock, p)
    return p, sock


def stop_clean(p):
    rc = p.stop()
    p.assert_clean()
    assert rc == 0, p.output()[-3000:]


def test_fault_injection_only_when_enabled(tmpdir_short):
    p, sock = start(tmpdir_short)
    try:
        assert not [m for m in methods(sock) if m.startswith("disktgt_")]
    finally:
        stop_clean(p)
    os.unlink(os.path.join(tmpdir_short, "tgt.log"))
    p, sock = start(tmpdir_short, "--enable-fault-injection")
    try:
        assert "disktgt_inject_fault" in methods(sock)
    finally:
        stop_clean(p)


def test_config_file(tmpdir_short):
    cfg = os.path.join(tmpdir_short, "c.json")
    with open(cfg, "w") as f:
        json.dump({"subsystems": []}, f)
    p, sock = start(tmpdir_short, "-c", cfg)
    stop_clean(p)
    r = subprocess.run([helpers.binary("disktgt"), "-r", os.path.join(tmpdir_short, "x.sock"),
                        "-c", os.path.join(tmpdir_short, "missing.json")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "missing.json" in r.stderr
    assert not os.path.exists(os.path.join(tmpdir_short, "x.sock"))


def test_random_splits_many_connections(disktgt):
    """Streams of requests cut at random places, several connections
    interleaved: every reply arrives, in order, on the right connection.
    DISKENGINE_STRESS=1 runs it much longer."""
    import random
    _, sock = disktgt
    rnd = random.Random(1234)
    rounds = 20 if os.environ.get("DISKENGINE_STRESS") else 2
    for _ in range(rounds):
        conns = []
        for c in range(8):
            reqs, want = [], []
            for i in range(rnd.randint(1, 200)):
                kind = rnd.random()
                if kind < 0.6:
                    reqs.append(json.dumps({"jsonrpc": "2.0", "method": "spdk_get_version", "id": i},
                                           indent=rnd.choice([None, 2])))
                    want.append(i)
                elif kind < 0.8:
                    reqs.append(json.dumps({"method": "nope", "id": "s%d" % i}))
                    want.append("s%d" % i)
                else:
                    reqs.append(json.dumps([{"method": "spdk_get_version", "id": i},
                                            {"method": "spdk_get_version"}]))
                    want.append([i])
            data = "".join(r + rnd.choice(["", " ", "\n"]) for r in reqs).encode()
            conns.append([connect(sock), data, 0, want])
        while any(c[2] < len(c[1]) for c in conns):
            c = rnd.choice(conns)
            if c[2] < len(c[1]):
                n = rnd.randint(1, 300)
                c[0].sendall(c[1][c[2]:c[2] + n])
                c[2] += n
        for s, _, _, want in conns:
            buf, got = b"", []
            while len(got) < len(want):
                line, buf = recv_line(s, buf)
                v = json.loads(line)
                got.append([e["id"] for e in v] if isinstance(v, list) else v["id"])
            assert got == want
            expect_silence(s, 0.01)
            s.close()


def test_out_of_descriptors_recovers(tmpdir_short):
    """More clients than the target has file descriptors: accepting pauses
    (no busy loop, no crash) and resumes as clients leave; every request
    is answered."""
    sock = os.path.join(tmpdir_short, "t.sock")
    p = helpers.Proc(["sh", "-c", 'ulimit -n 48 && exec "$0" -r "$1"', helpers.binary("disktgt"), sock],
                     os.path.join(tmpdir_short, "tgt.log"))
    try:
        helpers.wait_socket(sock, p)
        n = 80
        socks = []
        for i in range(n):
            s = connect(sock)
            s.sendall(b'{"method":"spdk_get_version","id":%d}' % i)
            socks.append(s)
        answered = 0
        pending = list(range(n))
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            still = []
            for i in pending:
                socks[i].settimeout(0.05)
                try:
                    line, _ = recv_line(socks[i])
                except socket.timeout:
                    still.append(i)
                    continue
                assert json.loads(line)["id"] == i
                socks[i].close()  # frees a descriptor in the target
                answered += 1
            pending = still
        assert answered == n
        assert "accept failed" in p.output()  # the limit was really hit
        assert p.alive()
    finally:
        rc = p.stop()
    p.assert_clean()
    assert rc == 0
