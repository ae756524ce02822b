"""A hostile or broken target (issue 9, "slow and failing target"): a fake
JSON-RPC server on the node's socket answers the agent with garbage (invalid
JSON, wrong ids, results of the wrong type or shape, errors with odd codes,
huge or truncated replies, silence, closed connections). The agent must stay
up, log instead of crash, never mark a row FAILED on such answers, and
converge once the real disktgt takes the socket over."""
import json
import os
import random
import socket
import threading
import time

from reliability_lib import STRESS, record, rng

GARBAGE = [
    lambda req: b"this is not json\n",
    lambda req: b'{"jsonrpc":"2.0","id":' + str(req.get("id", 0) + 1000).encode() + b',"result":true}\n',
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": "not a list"}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": [1, "x", None, {}]}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"),
                            "result": [{"uuid": 5, "name": None, "free_clusters": "many",
                                        "cluster_size": -1, "total_data_clusters": 1e300}]}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": {"unexpected": "object"}}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": "x", "message": 7}}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": -2147483648,
                                                                            "message": "\u0000\ud7ff" * 50}}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id")}).encode(),
    lambda req: json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": "A" * (4 << 20)}).encode(),
    lambda req: b'{"jsonrpc":"2.0","id":' + str(req.get("id")).encode() + b',"result":[{"uuid":"',
    lambda req: None,  # silence (the agent's timeout)
    lambda req: b"",   # close the connection
    lambda req: b"[" * 10000,
    lambda req: json.dumps([{"jsonrpc": "2.0", "id": req.get("id"), "result": True}]).encode(),
]


class FakeTarget(threading.Thread):
    def __init__(self, path, r):
        super().__init__(daemon=True)
        self.path = path
        self.r = r
        self.stop = threading.Event()
        self.requests = 0
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.srv.bind(path)
        os.chmod(path, 0o600)
        self.srv.listen(16)
        self.srv.settimeout(0.1)

    def serve(self, c):
        c.settimeout(0.2)
        buf = b""
        dec = json.JSONDecoder()
        while not self.stop.is_set():
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            text = buf.decode(errors="replace").lstrip()
            try:
                req, end = dec.raw_decode(text)
            except ValueError:
                continue
            buf = text[end:].encode()
            self.requests += 1
            out = self.r.choice(GARBAGE)(req if isinstance(req, dict) else {})
            if out is None:
                continue
            if out == b"":
                c.close()
                return
            try:
                c.sendall(out)
            except OSError:
                return

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()
        self.srv.close()


def test_agent_survives_a_hostile_target(make_node):
    r = rng("hostile-target")
    n = make_node(start_target=False, agent_config="rpc_timeout = 500ms\n")
    fake = FakeTarget(n.sock, random.Random(r.random()))
    fake.start()
    n.start_agent()
    ids = [n.ctl_id("lvol", "create", "--disk", "d1", "--size", "8MiB"),
           n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin")]
    deadline = time.time() + (40 if STRESS else 6)
    while time.time() < deadline:
        n.check_alive()
        time.sleep(0.2)
    fake.stop.set()
    fake.join(5)
    n.check_alive()
    assert fake.requests >= 10, "the agent hardly talked to the fake target (%d requests)" % fake.requests
    failed = [x for x in n.lvol_rows() if x["state"] == "FAILED"]
    assert not failed, "garbage from the target made rows FAILED: %s" % failed
    # the real target takes the socket over; everything converges
    n.start_target()
    for i in ids:
        n.wait_state(i, "READY", timeout=60)
    v = n.wait_converged(timeout=30)
    assert v == [], v
    record("target_fault", action="garbage replies", methods=fake.requests)
    print("hostile target: %d garbage answers survived" % fake.requests)
