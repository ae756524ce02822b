"""Replay engine for SPDK's golden JSON-RPC transcripts (../shared/spdk-golden).

Each file holds one request and the response a real spdk_tgt gave. The replay
sends the same request to disktgt and compares the response structurally, in
key order, after mapping UUIDs by first appearance (SPDK's random UUIDs are
not ours). The mapping is kept across phases a -> c -> b, so it also checks
that lvstores and lvols come back with the same UUIDs after a restart.

Every tolerated difference is listed in ALLOWED_DIFFERENCES below, with its
reason. Nothing else may differ.
"""
import fnmatch
import json
import os
import re
import socket
import time

import helpers
from helpers import free_port  # noqa: F401 (used as golden.free_port)

GOLDEN_DIR = os.path.join(helpers.SHARED, "spdk-golden")
SPDK_AIO_FILE = "/var/tmp/golden/aio0.img"
SPDK_MISSING_FILE = "/var/tmp/golden/does-not-exist.img"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NGUID_RE = re.compile(r"^[0-9A-F]{32}$")
TRSVCID_RE = re.compile(r'("trsvcid":\s*")4420(")')


# ---------------------------------------------------------------------------
# THE list of allowed differences (the only place where any is tolerated).
# Each entry: (file glob, JSON path glob in the response, reason).
# A path is like "result.version" or "result[3]" ; "*" matches anything.
# Substituted, not tolerated: the test runs on its own temporary file and its
# own free TCP port, and puts them in place of SPDK's /var/tmp/golden/... and
# 4420 in the requests AND in the expected responses before comparing (so the
# path and the port are still compared; tests running side by side cannot
# collide on 4420).
# ---------------------------------------------------------------------------
ALLOWED_DIFFERENCES = [
    ("a02_rpc_get_methods*", "result*",
     "disktgt lists only the methods it implements (SPDK lists 229 incl. iSCSI, RAID, "
     "NVMe bdevs ...); checked instead: every one of ours is in SPDK's list, or is one of "
     "EXTRA_METHODS below, and every method of spec/spdk-rpc.md's table is present"),
]


def _path_match(path, pglob):
    rx = "^" + re.escape(pglob).replace(r"\*", ".*") + "$"
    return re.match(rx, path) is not None


def allowed(fname, path):
    for fglob, pglob, _ in ALLOWED_DIFFERENCES:
        if fnmatch.fnmatch(fname, fglob) and _path_match(path, pglob):
            return True
    return False


def golden_files(phase):
    names = sorted(f for f in os.listdir(GOLDEN_DIR) if f.startswith(phase) and f.endswith(".json"))
    out = []
    for n in names:
        with open(os.path.join(GOLDEN_DIR, n)) as fh:
            out.append((n, json.load(fh)))
    return out


def ordered(text):
    """Parse JSON keeping key order: objects become lists of (key, value)."""
    return json.loads(text, object_pairs_hook=lambda pairs: ("__obj__", pairs))


class UuidMap:
    """Bijective map SPDK UUID -> disktgt UUID, built by first appearance."""

    def __init__(self):
        self.fwd = {}
        self.rev = {}

    def bind(self, exp, act):
        if exp in self.fwd:
            return self.fwd[exp] == act
        if act in self.rev:
            return False
        self.fwd[exp] = act
        self.rev[act] = exp
        return True

    def subst(self, text):
        """Replace every known SPDK UUID (and its NGUID form) in text."""
        for e, a in self.fwd.items():
            text = text.replace(e, a)
            text = text.replace(e.replace("-", "").upper(), a.replace("-", "").upper())
        return text


def compare(exp, act, umap, path, diffs):
    """Structural, order-sensitive comparison of two `ordered()` values."""
    if isinstance(exp, tuple) and isinstance(act, tuple):
        ek = [k for k, _ in exp[1]]
        ak = [k for k, _ in act[1]]
        if ek != ak:
            diffs.append((path, "keys %s != %s" % (ek, ak)))
            # still compare common keys to report more
        ad = dict(act[1])
        for k, v in exp[1]:
            if k in ad:
                compare(v, ad[k], umap, "%s.%s" % (path, k) if path else k, diffs)
        return
    if isinstance(exp, list) and isinstance(act, list):
        if len(exp) != len(act):
            diffs.append((path, "list length %d != %d" % (len(exp), len(act))))
        for i, (e, a) in enumerate(zip(exp, act)):
            compare(e, a, umap, "%s[%d]" % (path, i), diffs)
        return
    if isinstance(exp, str) and isinstance(act, str):
        if UUID_RE.match(exp) and UUID_RE.match(act):
            if not umap.bind(exp, act):
                diffs.append((path, "uuid %s maps to %s, got %s" % (exp, umap.fwd.get(exp), act)))
            return
        if NGUID_RE.match(exp) and NGUID_RE.match(act):
            e = exp.lower()
            a = act.lower()
            eu = "%s-%s-%s-%s-%s" % (e[:8], e[8:12], e[12:16], e[16:20], e[20:])
            au = "%s-%s-%s-%s-%s" % (a[:8], a[8:12], a[12:16], a[16:20], a[20:])
            if not umap.bind(eu, au):
                diffs.append((path, "nguid %s does not match the uuid mapping (got %s)" % (exp, act)))
            return
        if exp != act:
            diffs.append((path, "%r != %r" % (exp, act)))
        return
    if type(exp) is not type(act) or exp != act:
        diffs.append((path, "%r != %r" % (exp, act)))


class Replayer:
    """Replays golden files against a disktgt socket."""

    def __init__(self, sock_path, aio_file, umap, rpcpy_format=False, port="4420"):
        self.sock_path = sock_path
        self.aio_file = aio_file
        self.port = str(port)
        self.umap = umap
        self.rpcpy = rpcpy_format
        self.conn = None
        self.report = []  # (file, [(path, why)]) with unallowed diffs

    # -- connections ----------------------------------------------------
    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock_path)
        return s

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    @staticmethod
    def _recv_values(s, count, buf=b""):
        """Reads `count` complete JSON values; returns ([raw bytes], rest)."""
        dec = json.JSONDecoder()
        out = []
        while len(out) < count:
            text = buf.decode(errors="replace")
            stripped = text.lstrip()
            if stripped:
                try:
                    _, end = dec.raw_decode(stripped)
                    skip = len(text) - len(stripped)
                    raw = text[skip:skip + end]
                    rest = text[skip + end:]
                    # SPDK ends each response with "\n": keep it with the value
                    if rest.startswith("\n"):
                        raw += "\n"
                        rest = rest[1:]
                    out.append(raw.encode())
                    buf = rest.encode()
                    continue
                except json.JSONDecodeError:
                    pass
            chunk = s.recv(1 << 22)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return out, buf

    # -- substitutions ----------------------------------------------------
    def _subst_port(self, text):
        return TRSVCID_RE.sub(lambda m: m.group(1) + self.port + m.group(2), text)

    def _subst_request(self, text):
        text = text.replace(SPDK_MISSING_FILE, os.path.join(os.path.dirname(self.aio_file), "does-not-exist.img"))
        text = text.replace(SPDK_AIO_FILE, self.aio_file)
        return self.umap.subst(self._subst_port(text))

    def _subst_expected(self, text):
        return self._subst_port(text.replace(SPDK_AIO_FILE, self.aio_file))

    # -- one file -----------------------------------------------------------
    def replay(self, fname, rec):
        diffs = []
        if rec["request"] is None:
            self._replay_raw(fname, rec, diffs)
        else:
            req = json.loads(self._subst_request(json.dumps(rec["request"])))
            if self.rpcpy:
                payload = json.dumps(req, indent=2).encode()
            else:
                payload = self._subst_request(rec["request_raw"]).encode()
            if self.conn is None:
                self.conn = self._connect()
            self.conn.sendall(payload)
            raws, rest = self._recv_values(self.conn, 1)
            assert rest == b"", "%s: extra bytes after the response: %r" % (fname, rest[:200])
            self._check(fname, rec, raws[0], diffs)
        bad = [(p, w) for p, w in diffs if not allowed(fname, p)]
        if bad:
            self.report.append((fname, bad))
        return diffs

    def _check(self, fname, rec, raw, diffs):
        text = raw.decode()
        if not text.endswith("\n"):
            diffs.append(("<raw>", "response does not end with a newline"))
        body = text.rstrip("\n")
        compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
        if compact != body:
            diffs.append(("<raw>", "response is not compact JSON: %r" % body[:200]))
        exp = ordered(self._subst_expected(rec["response_raw"]))
        act = ordered(body)
        compare(exp, act, self.umap, "", diffs)
        if fnmatch.fnmatch(fname, "a02_rpc_get_methods*"):
            self._check_methods(rec, json.loads(body), diffs)

    def _check_methods(self, rec, resp, diffs):
        """The replacement check for the rpc_get_methods allowed difference."""
        spdk = set(rec["response"]["result"])
        ours = resp.get("result", [])
        extra = [m for m in ours if m not in spdk and m not in EXTRA_METHODS]
        if extra:
            diffs.append(("<methods-check>", "methods SPDK does not have: %s" % extra))
        missing = [m for m in SPEC_METHODS if m not in ours]
        if missing:
            diffs.append(("<methods-check>", "spec methods missing: %s" % missing))
        if len(set(ours)) != len(ours):
            diffs.append(("<methods-check>", "duplicates in the method list"))

    def _replay_raw(self, fname, rec, diffs):
        """Hand-made raw payloads, each on its own connection (SPDK's framing rules)."""
        s = self._connect()
        try:
            s.sendall(self._subst_request(rec["request_raw"]).encode())
            if rec.get("server_closed_connection"):
                # the server must close without replying
                s.settimeout(10)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    diffs.append(("<raw>", "expected no reply before close, got %r" % data[:200]))
                return
            if rec["response_raw"] in ("", None):
                if rec["request_raw"].rstrip().endswith("}") or rec["request_raw"].rstrip().endswith("]"):
                    # complete value that needs no reply (notification): prove it
                    # by sending a sentinel; its reply must be the first thing back
                    s.sendall(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":"sentinel"}')
                    raws, _ = self._recv_values(s, 1)
                    if json.loads(raws[0])["id"] != "sentinel":
                        diffs.append(("<raw>", "a reply came for a notification: %r" % raws[0][:200]))
                else:
                    # truncated JSON: the server waits (no reply, connection kept open)
                    s.settimeout(0.3)
                    try:
                        data = s.recv(65536)
                        diffs.append(("<raw>", "expected the server to wait, got %r" % data[:200]))
                    except socket.timeout:
                        pass
                return
            raws, _ = self._recv_values(s, 1)
            self._check(fname, rec, raws[0], diffs)
        finally:
            s.close()


# Methods disktgt has that SPDK's target does not: rpc.py implements save_config and
# load_config on the client side (over framework_get_subsystems / framework_get_config and
# the individual methods); spec/spdk-rpc.md lists them as methods, so disktgt serves them
# too. disktgt_* are test-only (registered with --enable-fault-injection).
EXTRA_METHODS = {"save_config", "load_config", "disktgt_inject_fault", "disktgt_bdev_io"}

# Every method of spec/spdk-rpc.md's table (rpc_get_methods must list them).
SPEC_METHODS = [
    "spdk_get_version", "rpc_get_methods", "bdev_malloc_create", "bdev_malloc_delete",
    "bdev_aio_create", "bdev_aio_delete", "bdev_aio_rescan", "bdev_get_bdevs", "bdev_get_iostat",
    "bdev_wait_for_examine", "bdev_lvol_create_lvstore", "bdev_lvol_get_lvstores",
    "bdev_lvol_delete_lvstore", "bdev_lvol_rename_lvstore", "bdev_lvol_grow_lvstore",
    "bdev_lvol_create", "bdev_lvol_get_lvols", "bdev_lvol_resize", "bdev_lvol_delete",
    "bdev_lvol_snapshot", "bdev_lvol_clone", "bdev_lvol_rename", "bdev_lvol_inflate",
    "bdev_lvol_decouple_parent", "bdev_lvol_set_read_only", "nvmf_create_transport",
    "nvmf_get_transports", "nvmf_create_subsystem", "nvmf_delete_subsystem", "nvmf_get_subsystems",
    "nvmf_subsystem_add_listener", "nvmf_subsystem_remove_listener",
    "nvmf_subsystem_get_listeners", "nvmf_subsystem_get_controllers", "nvmf_subsystem_get_qpairs",
    "nvmf_subsystem_add_ns", "nvmf_subsystem_remove_ns", "nvmf_subsystem_add_host",
    "nvmf_subsystem_remove_host", "nvmf_get_stats", "framework_get_config", "save_config",
    "load_config", "framework_get_subsystems",
]
