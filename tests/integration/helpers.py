"""Shared helpers for integration tests: find binaries, start real processes,
talk JSON-RPC to a target the way SPDK's clients do. Area-specific fixtures
live in each area's own conftest.py (tests/integration/<area>/conftest.py)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_dir():
    b = os.environ.get("DISKENGINE_BUILD")
    if b:
        # relative to the repository (tests chdir into temporary directories)
        return b if os.path.isabs(b) else os.path.join(ROOT, b)
    for cand in ("build-asan", "build"):
        p = os.path.join(ROOT, cand)
        if os.path.isdir(p):
            return p
    raise RuntimeError("no build directory: run make asan or set DISKENGINE_BUILD")


def binary(name):
    """Path of an app built by Meson (apps/<name>/<name>) or a bench tool."""
    for sub in ("apps/%s/%s" % (name, name), "bench/%s" % name):
        p = os.path.join(build_dir(), sub)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name)


def short_tmpdir(prefix="de-"):
    """A directory under /tmp short enough for unix socket paths (108 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def wait_for(pred, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out waiting for " + what)


class Proc:
    """A real child process with its log captured to a file; stop() checks for
    sanitizer reports so a leak or UB in any started process fails the test.
    Every Proc is remembered so the session can kill what a test left behind."""

    started = []

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        e = dict(os.environ)
        if env:
            e.update(env)
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        Proc.started.append(self)

    def alive(self):
        return self.p.poll() is None

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    @classmethod
    def reap_leftovers(cls):
        """Kills every process a test started and never stopped; returns their commands."""
        left = [p for p in cls.started if p.alive()]
        for p in left:
            p.kill()
        cls.started = []
        return [" ".join(p.args[:3]) for p in left]

    def assert_clean(self):
        out = self.output()
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert bad not in out, "%s reported by %s:\n%s" % (bad, self.args[0], out[-4000:])


class RpcClient:
    """Raw JSON-RPC 2.0 client over a unix stream socket, framed as SPDK frames it."""

    def __init__(self, path, timeout=30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.dec = json.JSONDecoder()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def recv_value(self):
        """Next complete JSON value from the stream (bytes, parsed)."""
        while True:
            text = self.buf.decode(errors="replace").lstrip()
            if text:
                try:
                    obj, end = self.dec.raw_decode(text)
                    raw = text[:end].encode()
                    rest = text[end:]
                    self.buf = rest.encode()
                    return obj, raw
                except json.JSONDecodeError:
                    pass
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def call(self, method, params=None, raise_on_error=False):
        req = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            req["params"] = params
        self.next_id += 1
        self.send_raw(json.dumps(req))
        resp, _ = self.recv_value()
        if raise_on_error and "error" in resp:
            raise RuntimeError("%s: %s" % (method, resp["error"]))
        return resp


def wait_socket(path, proc=None, timeout=10.0):
    def ok():
        if proc is not None and not proc.alive():
            raise RuntimeError("process exited early:\n" + proc.output()[-3000:])
        if not os.path.exists(path):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_for(ok, timeout, what="socket " + path)
