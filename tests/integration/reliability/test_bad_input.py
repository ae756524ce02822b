"""Bad input, table-driven (issue 9):

* diskctl: every command with missing, wrong-typed, negative, overflowing,
  unicode and over-long values in each slot: exit 1 or 2, exactly one line on
  stderr, nothing on stdout, the DB byte-for-byte unchanged (iterdump).
* disktgt: every method of the SPDK table with each required parameter
  missing, each parameter of the wrong type, an unknown key and params that
  are not an object: -32603 "spdk_json_decode_object failed" (SPDK's rule),
  and the server answers the next call.
* config files with junk: disktgt -c and diskengine --config refuse with one
  clear line, no sanitizer report, no hang."""
import concurrent.futures
import json
import os
import sqlite3
import subprocess

import pytest

import helpers
from reliability_lib import record, require, tool

LONG = "a" * 5000
IDS = ["", "abc", "-1", "0", "1.5", "0x10", "1e3", "99999999999999999999999", "9223372036854775808",
       "\u0661", "\uff11", "1\u00e9", LONG, "1" * 5000, "--", "1 2"]
SIZES = ["", "abc", "-1", "-4MiB", "0", "0B", "1.5.5G", "99999999999999999999", "18446744073709551616",
         "17179869184TiB", "1Q", "1GiBB", "\uff11G", "4\u00a0MiB", "1" * 5000, "M", "-0", "inf", "nan"]
NAMES = ["", LONG, "na me", "x/y", "\n", "tab\there", "\u00f1\u00f8", "\u202e", "a;DROP TABLE lvols;--"]
LISTENS = ["", "1.2.3.4", "1.2.3.4:99999", "1.2.3.4:-1", "300.1.1.1:4420", "abc:def", ":4420",
           "127.0.0.1:", "[::1]:x", LONG + ":4420", "\u0661.2.3.4:4420"]
NQNS = ["", "not an nqn", "nqn." + "a" * 300, "nqn.2014-08.org.\u00e9x:h\n", LONG]
CLUSTERS = ["0", "3", "-4MiB", "abc", "1T", "4097", "99999999999999999999"]


def diskctl_cases():
    """(argv, why) pairs; every one must be refused."""
    c = []
    for v in IDS:
        for cmd in (["lvol", "show"], ["lvol", "delete"], ["snapshot", "create"], ["snapshot", "delete"],
                    ["clone", "create"]):
            c.append((cmd + [v], "id %r" % v[:20]))
        c.append((["lvol", "resize", v, "--size", "64MiB"], "resize id %r" % v[:20]))
    for cmd in (["lvol", "show"], ["lvol", "delete"], ["lvol", "resize"], ["snapshot", "create"],
                ["snapshot", "delete"], ["clone", "create"]):
        c.append((cmd, "missing id"))
        c.append((cmd + ["424242"], "unknown id"))
    for v in SIZES:
        c.append((["lvol", "create", "--disk", "d1", "--size", v], "create size %r" % v[:20]))
        c.append((["lvol", "resize", "1", "--size", v], "resize size %r" % v[:20]))
    c.append((["lvol", "create", "--disk", "d1"], "missing --size"))
    c.append((["lvol", "create", "--disk", "d1", "--size"], "--size without value"))
    c.append((["lvol", "resize", "1"], "resize without --size"))
    c.append((["lvol", "create", "--size", "8MiB", "--disk"], "--disk without value"))
    for v in NAMES:
        c.append((["lvol", "create", "--disk", v, "--size", "8MiB"], "disk name %r" % v[:20]))
        c.append((["disk", "add", v, "--node", "n1", "--file", "/tmp/x.img", "--listen", "127.0.0.1:4420"],
                  "disk add name %r" % v[:20]))
        c.append((["node", "add", v, "--rpc-socket", "/tmp/x.sock"], "node add name %r" % v[:20]))
        c.append((["disk", "add", "dx", "--node", v or "nope", "--file", "/tmp/x.img", "--listen",
                   "127.0.0.1:4420"], "disk add node %r" % v[:20]))
    for v in LISTENS:
        c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img", "--listen", v],
                  "listen %r" % v[:20]))
    for v in CLUSTERS:
        c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img", "--listen",
                   "127.0.0.1:4420", "--cluster-size", v], "cluster size %r" % v))
    for v in ("", "-1", "0", "65536", "99999999999", "abc", "\uff11"):
        c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img", "--interface", "lo",
                   "--port", v], "port %r" % v))
    for v in ("", "UDP", "tcp\n", LONG):
        c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img", "--listen",
                   "127.0.0.1:4420", "--transport", v], "transport %r" % v[:20]))
    c.append((["disk", "add", "dx", "--node", "n1", "--listen", "127.0.0.1:4420"], "no --file/--device"))
    c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img"], "no --listen/--interface"))
    c.append((["disk", "add", "dx", "--node", "n1", "--file", "/tmp/x.img", "--device", "/dev/null",
               "--listen", "127.0.0.1:4420"], "both --file and --device"))
    c.append((["disk", "add", "dx", "--node", "n1", "--file", "", "--listen", "127.0.0.1:4420"], "empty file"))
    c.append((["disk", "add", "dx", "--node", "n1", "--file", "/" + LONG, "--listen", "127.0.0.1:4420"],
              "long file"))
    c.append((["node", "add", "n9", "--rpc-socket", ""], "empty socket"))
    c.append((["node", "add", "n9", "--rpc-socket", "/tmp/" + LONG], "socket path > 108"))
    c.append((["node", "add", "n9"], "missing --rpc-socket"))
    for v in NQNS:
        c.append((["lvol", "create", "--disk", "d1", "--size", "8MiB", "--host", v], "host %r" % v[:20]))
        c.append((["node", "add", "n9", "--rpc-socket", "/tmp/n9.sock", "--nqn-prefix", v],
                  "nqn prefix %r" % v[:20]))
    for v in ("BOGUS", "", "ready\n", LONG):
        c.append((["lvol", "list", "--state", v], "list state %r" % v[:20]))
    for v in ("", "-1", "abc", "99999999999999999999", "\uff11"):
        c.append((["lvol", "create", "--disk", "d1", "--size", "4MiB", "--wait=" + v], "wait %r" % v))
    c += [
        ([], "no command"), (["lvol"], "no subcommand"), (["lvol", "frobnicate"], "unknown subcommand"),
        (["frobnicate"], "unknown command"), (["lvol", "create", "--disk", "d1", "--size", "8MiB", "--bogus"],
                                              "unknown flag"),
        (["lvol", "create", "--disk", "d1", "--size", "8MiB", "extra"], "extra argument"),
        (["lvol", "create", "--disk", "d1", "--size", "8MiB", "--size", "4MiB", "--thin=yes"], "flag value"),
        (["lvol", "resize", "1", "--size", "4MiB"], "shrink without --allow-shrink"),
        (["node", "add", "n1", "--rpc-socket", "/tmp/n1.sock"], "duplicate node"),
        (["disk", "add", "d1", "--node", "n1", "--file", "/tmp/y.img", "--listen", "127.0.0.1:4420"],
         "duplicate disk"),
    ]
    return c


def build_store(d):
    db = os.path.join(d, "state.db")

    def ctl(*a):
        p = subprocess.run([tool("diskctl"), "--db", db] + list(a), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (a, p.stderr)
        return p.stdout
    ctl("node", "add", "n1", "--rpc-socket", os.path.join(d, "n1.sock"))
    ctl("disk", "add", "d1", "--node", "n1", "--file", os.path.join(d, "d1.img"), "--listen", "127.0.0.1:4420")
    ctl("lvol", "create", "--disk", "d1", "--size", "64MiB")
    con = sqlite3.connect(db)
    # play the agent: lvol 1 READY, the disk observed with 1 GiB free
    con.execute("UPDATE lvols SET state='READY', uuid='6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11', "
                "real_size=67108864, nqn='nqn.2026-11.io.diskengine:lvol-1' WHERE id=1")
    con.execute("UPDATE disks SET lvstore_state='loaded', capacity=1073741824, free=1006632960, "
                "lvstore_uuid='0b1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11'")
    con.commit()
    con.close()
    ctl("snapshot", "create", "1")
    con = sqlite3.connect(db)
    con.execute("UPDATE snapshots SET state='READY', uuid='1b1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11' WHERE id=1")
    con.commit()
    con.close()
    return db


def dump(db):
    con = sqlite3.connect(db)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def test_diskctl_bad_input_table(tmpdir_short):
    require("diskctl")
    db = build_store(tmpdir_short)
    before = dump(db)
    cases = diskctl_cases()
    env = dict(os.environ)
    env.pop("DISKENGINE_DB", None)

    def run(case):
        argv, why = case
        p = subprocess.run([tool("diskctl"), "--db", db] + argv, capture_output=True, timeout=60, env=env)
        err = p.stderr.decode(errors="replace")
        problems = []
        if p.returncode not in (1, 2):
            problems.append("exit %d" % p.returncode)
        lines = err.strip("\n").split("\n") if err.strip() else []
        if p.returncode == 2 and len(lines) >= 1:
            pass  # usage errors may print the usage text after the error line
        elif len(lines) != 1:
            problems.append("%d stderr lines" % len(lines))
        if p.stdout.strip():
            problems.append("stdout %r" % p.stdout[:80])
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if bad in err:
                problems.append(bad)
        if len(err) > 4096 and p.returncode != 2:
            problems.append("stderr of %d bytes" % len(err))
        return why, argv, problems, err.strip()[:200]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(run, cases))
    bad = ["%s %s: %s (stderr: %r)" % (why, [a[:30] for a in argv], pr, err)
           for why, argv, pr, err in results if pr]
    after = dump(db)
    record("bad_input", target="diskctl", cases=len(cases), failures=len(bad))
    print("diskctl bad inputs tried: %d" % len(cases))
    assert not bad, "%d of %d refused badly:\n" % (len(bad), len(cases)) + "\n".join(bad[:60])
    assert after == before, "a refused command changed the DB"


# ------------------------------------------------------------------ disktgt RPC

S, I, O = "string", "int", "object"
# method -> (required {param: type}, optional typed params checked for wrong types)
RPC_TABLE = {
    "bdev_malloc_create": ({"num_blocks": I, "block_size": I}, {"name": S}),
    "bdev_malloc_delete": ({"name": S}, {}),
    "bdev_aio_create": ({"filename": S, "name": S}, {"block_size": I}),
    "bdev_aio_delete": ({"name": S}, {}),
    "bdev_aio_rescan": ({"name": S}, {}),
    "bdev_get_bdevs": ({}, {"name": S, "timeout_ms": I}),
    "bdev_lvol_create_lvstore": ({"bdev_name": S, "lvs_name": S}, {"cluster_sz": I}),
    "bdev_lvol_get_lvstores": ({}, {"uuid": S, "lvs_name": S}),
    "bdev_lvol_delete_lvstore": ({}, {"uuid": S, "lvs_name": S}),
    "bdev_lvol_rename_lvstore": ({"old_name": S, "new_name": S}, {}),
    "bdev_lvol_grow_lvstore": ({}, {"uuid": S, "lvs_name": S}),
    "bdev_lvol_create": ({"lvol_name": S, "size_in_mib": I}, {"lvs_name": S, "uuid": S}),
    "bdev_lvol_get_lvols": ({}, {"lvs_uuid": S, "lvs_name": S}),
    "bdev_lvol_resize": ({"name": S, "size_in_mib": I}, {}),
    "bdev_lvol_delete": ({"name": S}, {}),
    "bdev_lvol_snapshot": ({"lvol_name": S, "snapshot_name": S}, {}),
    "bdev_lvol_clone": ({"snapshot_name": S, "clone_name": S}, {}),
    "bdev_lvol_rename": ({"old_name": S, "new_name": S}, {}),
    "bdev_lvol_inflate": ({"name": S}, {}),
    "bdev_lvol_decouple_parent": ({"name": S}, {}),
    "bdev_lvol_set_read_only": ({"name": S}, {}),
    "nvmf_create_transport": ({"trtype": "trtype"}, {"max_queue_depth": I}),
    "nvmf_get_transports": ({}, {"trtype": S}),
    "nvmf_create_subsystem": ({"nqn": S}, {"serial_number": S, "model_number": S}),
    "nvmf_delete_subsystem": ({"nqn": S}, {}),
    "nvmf_get_subsystems": ({}, {"nqn": S}),
    "nvmf_subsystem_add_listener": ({"nqn": S, "listen_address": O}, {}),
    "nvmf_subsystem_remove_listener": ({"nqn": S, "listen_address": O}, {}),
    "nvmf_subsystem_get_listeners": ({"nqn": S}, {}),
    "nvmf_subsystem_get_controllers": ({"nqn": S}, {}),
    "nvmf_subsystem_get_qpairs": ({"nqn": S}, {}),
    "nvmf_subsystem_add_ns": ({"nqn": S, "namespace": O}, {}),
    "nvmf_subsystem_remove_ns": ({"nqn": S, "nsid": I}, {}),
    "nvmf_subsystem_add_host": ({"nqn": S, "host": S}, {}),
    "nvmf_subsystem_remove_host": ({"nqn": S, "host": S}, {}),
    "framework_get_config": ({"name": S}, {}),
    "bdev_get_iostat": ({}, {"per_channel": "bool"}),
}
VALID = {S: "x0", "trtype": "TCP", I: 8, O: {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "4420"},
         "bool": True}
WRONG = {S: [123, ["x"], {"a": 1}], "trtype": [123, ["TCP"]], I: ["8", [8], -1, 1.5], O: ["x", [1], 5], "bool": ["yes", 2]}
DECODE = (-32603, "spdk_json_decode_object failed")
# SPDK's nvmf RPCs (lib/nvmf/nvmf_rpc.c) answer a decode failure with -32602
# "Invalid parameters" instead (src/tgt/tgt_nvmf.c follows them), and several
# decode relaxed (unknown keys ignored), so unknown keys are not judged there.
NVMF_DECODE = (-32602, "Invalid parameters")
# Cases where SPDK's own decoder marks the parameter optional: any error is right.
ANY_ERROR = {
    ("bdev_lvol_clone", "missing clone_name"): "SPDK decodes clone_name as optional, fails later",
}


def expected_error(method, why):
    if (method, why) in ANY_ERROR:
        return None
    if method == "framework_get_config":
        return (-32602, "Invalid arguments")  # SPDK's lib/init/subsystem_rpc.c answers so
    if method.startswith("nvmf_"):
        return "skip" if why == "unknown key" else NVMF_DECODE
    return DECODE


def rpc_cases():
    c = []
    for m, (req, opt) in RPC_TABLE.items():
        base = {k: VALID[t] for k, t in req.items()}
        if m == "nvmf_subsystem_add_ns":
            base["namespace"] = {"bdev_name": "x0"}
        for k in req:
            p = dict(base)
            del p[k]
            c.append((m, p, "missing %s" % k))
        for k, t in list(req.items()) + list(opt.items()):
            for w in WRONG[t]:
                if t == I and k in ("size_in_mib", "num_blocks", "block_size") and w == -1:
                    continue  # SPDK decodes these as uint64: -1 is a decode failure too, kept below
                p = dict(base)
                p[k] = w
                c.append((m, p, "%s=%r" % (k, w)))
        p = dict(base)
        p["no_such_key"] = 1
        c.append((m, p, "unknown key"))
        if req:
            c.append((m, None, "params omitted"))
    c.append(("nvmf_subsystem_add_ns", {"nqn": "x0", "namespace": {}}, "namespace.bdev_name missing"))
    c.append(("nvmf_subsystem_add_ns", {"nqn": "x0", "namespace": {"bdev_name": 5}}, "namespace.bdev_name int"))
    c.append(("nvmf_subsystem_add_listener", {"nqn": "x0", "listen_address": {"trtype": 1}},
              "listen_address.trtype int"))
    return c


def test_disktgt_rpc_bad_params_table(disktgt):
    proc, sock = disktgt
    cases = rpc_cases()
    c = helpers.RpcClient(sock, timeout=10)
    have = set(c.call("rpc_get_methods")["result"])
    bad, tried = [], 0
    for m, params, why in cases:
        if m not in have:
            bad.append("%s: not registered" % m)
            continue
        tried += 1
        try:
            r = c.call(m, params)
        except (ConnectionError, OSError) as e:
            bad.append("%s %s: connection closed (%s)" % (m, why, e))
            assert proc.alive(), "disktgt died on %s %s:\n%s" % (m, why, proc.output()[-3000:])
            c = helpers.RpcClient(sock, timeout=10)
            continue
        err = r.get("error")
        want = expected_error(m, why)
        if want == "skip":
            pass
        elif not err:
            bad.append("%s %s: accepted -> %s" % (m, why, json.dumps(r.get("result"))[:80]))
        elif want and (err.get("code"), err.get("message")) != want:
            bad.append("%s %s: %s (want %s)" % (m, why, err, want))
        assert proc.alive(), "disktgt died on %s %s:\n%s" % (m, why, proc.output()[-3000:])
    # params that are not an object at all
    for m in sorted(RPC_TABLE):
        for params in ([1, 2], "x", 7):
            tried += 1
            try:
                r = c.call(m, params)
            except (ConnectionError, OSError) as e:
                bad.append("%s params=%r: connection closed (%s)" % (m, params, e))
                c = helpers.RpcClient(sock, timeout=10)
                continue
            if "error" not in r:
                bad.append("%s params=%r accepted" % (m, params))
    assert "result" in c.call("spdk_get_version")
    c.close()
    record("bad_input", target="rpc", cases=tried, failures=len(bad))
    print("disktgt bad RPC params tried: %d" % tried)
    assert not bad, "%d of %d:\n" % (len(bad), tried) + "\n".join(bad[:80])


# 2**63 is not here: it fits SPDK's uint64 decoders (decoding succeeds there).
BIG_NUMBERS = ["18446744073709551616", "-9223372036854775809", "1e400",
               "123456789012345678901234567890", "-1", "1.5"]


def test_disktgt_big_integers_get_an_answer(disktgt):
    """A number outside uint64 (or negative, fractional, beyond double range) is
    valid JSON: SPDK's parser keeps it and its uint64 decoder refuses it (-32603
    "spdk_json_decode_object failed"). The connection must not be closed without
    an answer (it was, until e133f97/a09d1dc: REQUEST-A-from-F.md)."""
    proc, sock = disktgt
    bad = []
    for num in BIG_NUMBERS:
        c = helpers.RpcClient(sock, timeout=5)
        c.send_raw('{"jsonrpc":"2.0","id":1,"method":"bdev_lvol_resize",'
                   '"params":{"name":"x","size_in_mib":%s}}' % num)
        try:
            r, _ = c.recv_value()
            if (r.get("error", {}).get("code"), r.get("error", {}).get("message")) != DECODE:
                bad.append("%s: %s" % (num, r))
        except (ConnectionError, OSError) as e:
            bad.append("%s: no answer (%s)" % (num, e))
        c.close()
    assert proc.alive()
    assert not bad, bad


# ------------------------------------------------------------------ config files

JUNK = [
    ("empty", b""),
    ("not json", b"this is not json"),
    ("truncated", b'{"subsystems": [{"subsystem": "bdev", "config": ['),
    ("wrong top type", b"[1, 2, 3]"),
    ("subsystems not a list", b'{"subsystems": 5}'),
    ("config not a list", b'{"subsystems": [{"subsystem": "bdev", "config": "x"}]}'),
    ("unknown method", b'{"subsystems": [{"subsystem": "bdev", "config": [{"method": "no_such", "params": {}}]}]}'),
    ("bad params", b'{"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_malloc_create", '
                   b'"params": {"num_blocks": "x", "block_size": 512}}]}]}'),
    ("method not a string", b'{"subsystems": [{"subsystem": "bdev", "config": [{"method": 7}]}]}'),
    ("binary", bytes(range(256)) * 4),
    ("nul inside", b'{"subsystems": [\x00]}'),
    ("deep nesting", b"[" * 100000 + b"]" * 100000),
    ("huge string", b'{"subsystems": "' + b"a" * (8 << 20) + b'"}'),
]
AGENT_JUNK = [
    ("unknown key", "bogus = 1\n"),
    ("no equals", "tick 1s\n"),
    ("bad duration", "tick = soon\n"),
    ("negative duration", "tick = -1s\n"),
    ("zero tick", "tick = 0\n"),
    ("overflow duration", "tick = 99999999999999999999999h\n"),
    ("bad size", "zero_chunk = lots\n"),
    ("bad bool", "orphan_collect = maybe\n"),
    ("long line", "node = " + "n" * 100000 + "\n"),
    ("binary", "".join(chr(i) for i in range(1, 256)) + "\n"),
    ("unicode key", "t\u00efck = 1s\n"),
    ("bad log level", "log_level = chatty\n"),
]


@pytest.mark.parametrize("name,data", JUNK, ids=[j[0] for j in JUNK])
def test_disktgt_config_junk(tmpdir_short, name, data):
    require("disktgt")
    cfg = os.path.join(tmpdir_short, "c.json")
    with open(cfg, "wb") as f:
        f.write(data)
    sock = os.path.join(tmpdir_short, "t.sock")
    p = subprocess.run([tool("disktgt"), "-r", sock, "-c", cfg], capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace")
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert bad not in out, out[-3000:]
    if name == "empty":
        # SPDK treats an empty file as a JSON error too; either refuse or ignore, never crash
        assert p.returncode in (0, 1), out[-2000:]
    else:
        assert p.returncode == 1, "exit %d for %s:\n%s" % (p.returncode, name, out[-2000:])
    assert len(out) < 4096, "config error printed %d bytes" % len(out)
    record("bad_input", target="disktgt-config", cases=1, failures=0)


@pytest.mark.parametrize("name,data", AGENT_JUNK, ids=[j[0] for j in AGENT_JUNK])
def test_diskengine_config_junk(tmpdir_short, name, data):
    require("diskengine")
    cfg = os.path.join(tmpdir_short, "agent.conf")
    with open(cfg, "w") as f:
        f.write(data)
    p = subprocess.run([tool("diskengine"), "--db", os.path.join(tmpdir_short, "x.db"), "--node", "n1",
                        "--config", cfg], capture_output=True, timeout=60, env=dict(os.environ, DISKENGINE_CRASH_AT=""))
    err = p.stderr.decode(errors="replace")
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert bad not in err, err[-3000:]
    assert p.returncode in (1, 2), "exit %d for %s:\n%s" % (p.returncode, name, err[-2000:])
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and cfg in lines[0] and len(err) < 4096, err[-2000:]
    record("bad_input", target="diskengine-config", cases=1, failures=0)
