"""diskctl end to end against a real SQLite store: every command, --json
output parsed, --help on every level, --wait outcomes (READY, FAILED,
timeout, zeroing progress) with SQL playing the agent, and table-driven bad
input: exit code 1 or 2, exactly one line on stderr, the store unchanged."""
import json
import os
import sqlite3
import threading
import time

import pytest

import helpers

MiB = 1 << 20
GiB = 1 << 30


def js(ctl, *args):
    _, out, _ = ctl.run("--json", *args)
    return json.loads(out)


# ------------------------------------------------------------------ help

HELP_LEVELS = [[], ["node"], ["disk"], ["lvol"], ["snapshot"], ["clone"],
               ["node", "add"], ["node", "list"], ["disk", "add"], ["disk", "list"],
               ["lvol", "create"], ["lvol", "resize"], ["lvol", "delete"], ["lvol", "list"],
               ["lvol", "show"], ["snapshot", "create"], ["snapshot", "delete"], ["batch"],
               ["snapshot", "list"], ["clone", "create"], ["events"], ["status"]]


@pytest.mark.parametrize("words", HELP_LEVELS, ids=lambda w: "-".join(w) or "top")
def test_help_every_level(ctl, words):
    _, out, err = ctl.run(*(words + ["--help"]))
    assert out.startswith("usage: diskctl")
    assert err == ""
    assert not os.path.exists(ctl.db)  # help never opens the store


# ------------------------------------------------------- nodes and disks

def test_node_and_disk(ctl):
    ctl.run("node", "add", "n1", "--rpc-socket", "rel/tgt.sock", "--nqn-prefix", "nqn.2030-01.test.x")
    nodes = js(ctl, "node", "list")
    assert [n["name"] for n in nodes] == ["n1"]
    assert nodes[0]["rpc_socket"] == os.path.join(os.getcwd(), "rel/tgt.sock")
    assert nodes[0]["live"] is False and nodes[0]["last_seen"] == 0
    ctl.sql("UPDATE nodes SET last_seen=?", (int(time.time() * 1000),))
    assert js(ctl, "node", "list")[0]["live"] is True
    _, out, _ = ctl.run("node", "list")
    assert "n1" in out and "yes" in out

    ctl.run("disk", "add", "d1", "--node", "n1", "--file", "/tmp/d1.img", "--listen", "127.0.0.1:4420",
            "--listen", "[::1]:4420", "--cluster-size", "1MiB", "--lvstore", "lvs_d1")
    ctl.run("disk", "add", "d2", "--node", "n1", "--device", "/dev/nvme0n1", "--interface", "eth0",
            "--transport", "rdma")
    disks = js(ctl, "disk", "list")
    d1, d2 = disks
    assert d1["name"] == "d1" and d1["file"] == "/tmp/d1.img" and d1["lvstore"] == "lvs_d1"
    assert d1["listen"] == ["127.0.0.1:4420", "[::1]:4420"]
    assert d1["cluster_size"] == MiB and d1["transport"] == "TCP"
    assert d1["lvstore_state"] == "absent" and d1["capacity"] is None and d1["free"] is None
    assert d2["device"] == "/dev/nvme0n1" and d2["interface"] == "eth0" and d2["port"] == 4420
    assert d2["transport"] == "RDMA" and d2["lvstore"] == "d2"
    assert js(ctl, "disk", "list", "--node", "nX") == []
    _, out, _ = ctl.run("disk", "list")
    assert "lvs_d1" in out and "eth0:4420" in out


# ----------------------------------------------------------------- lvols

def test_lvol_create_list_show(fleet):
    ctl = fleet
    _, out, _ = ctl.run("lvol", "create", "--disk", "d2", "--size", "1.5G", "--thin",
                        "--host", "nqn.2014-08.org.nvmexpress:uuid:1", "--host", "nqn.2026-01.io.x:h2")
    assert out == "2\n"
    assert js(ctl, "lvol", "create", "--disk", "d1", "--size", "4096") == {"id": 3}
    lv = js(ctl, "lvol", "show", "2")
    assert lv["id"] == 2 and lv["name"] == "2" and lv["state"] == "CREATING"
    assert lv["size"] == 3 * GiB // 2 and lv["thin"] is True and lv["real_size"] is None
    assert lv["node"] == "n2" and lv["disk"] == "d2"
    assert lv["nqn"] == "nqn.2026-11.io.diskengine:lvol-2"
    assert lv["hosts"] == ["nqn.2014-08.org.nvmexpress:uuid:1", "nqn.2026-01.io.x:h2"]
    assert lv["generation"] == 1 and lv["zeroing"] is None and lv["uuid"] is None
    ids = [x["id"] for x in js(ctl, "lvol", "list")]
    assert ids == [1, 2, 3]
    assert [x["id"] for x in js(ctl, "lvol", "list", "--node", "n2")] == [2]
    assert [x["id"] for x in js(ctl, "lvol", "list", "--disk", "d1")] == [1, 3]
    assert [x["id"] for x in js(ctl, "lvol", "list", "--state", "ready")] == [1]
    _, out, _ = ctl.run("lvol", "show", "1")
    assert "READY" in out and "6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11" in out
    _, out, _ = ctl.run("lvol", "list")
    assert len(out.strip().splitlines()) == 4


def test_lvol_resize_and_delete(fleet):
    ctl = fleet
    ctl.run("lvol", "resize", "1", "--size", "128M")
    lv = js(ctl, "lvol", "show", "1")
    assert lv["state"] == "RESIZING" and lv["size"] == 128 * MiB and lv["generation"] == 2
    _, _, err = ctl.run("lvol", "resize", "1", "--size", "256M", rc=1)
    assert "RESIZING" in err
    ctl.sql("UPDATE lvols SET state='READY' WHERE id=1")
    ctl.run("lvol", "resize", "1", "--size", "32M", "--allow-shrink")
    assert js(ctl, "lvol", "show", "1")["size"] == 32 * MiB
    ctl.run("lvol", "delete", "1")
    ctl.run("lvol", "delete", "1")  # idempotent
    lv = js(ctl, "lvol", "show", "1")
    assert lv["state"] == "DELETING" and lv["generation"] == 4
    ctl.sql("UPDATE lvols SET state='DELETED' WHERE id=1")
    assert js(ctl, "lvol", "list") == []
    assert [x["id"] for x in js(ctl, "lvol", "list", "--all")] == [1]
    _, _, err = ctl.run("lvol", "delete", "1", rc=1)
    assert "already deleted" in err


def test_thick_create_refused_beyond_known_free(fleet):
    ctl = fleet
    ctl.sql("UPDATE disks SET lvstore_state='loaded', capacity=?, free=?, observed_at=1 WHERE name='d1'",
            (1 * GiB, 100 * MiB))
    before = ctl.dump()
    _, _, err = ctl.run("lvol", "create", "--disk", "d1", "--size", "101M", rc=1)
    assert "free" in err and len(err.splitlines()) == 1
    assert ctl.dump() == before
    ctl.run("lvol", "create", "--disk", "d1", "--size", "10G", "--thin")
    ctl.run("lvol", "create", "--disk", "d1", "--size", "100M")
    st = js(ctl, "status")
    d1 = st["nodes"][0]["disks"][0]
    assert d1["free"] == 100 * MiB and d1["capacity"] == GiB
    assert d1["lvols"]["CREATING"] == 2 and d1["lvols"]["READY"] == 1


def test_placement_without_disk(fleet):
    ctl = fleet
    now = int(time.time() * 1000)
    ctl.sql("UPDATE disks SET lvstore_state='loaded', capacity=?, free=?, observed_at=1 WHERE name='d1'", (GiB, 200 * MiB))
    ctl.sql("UPDATE disks SET lvstore_state='loaded', capacity=?, free=?, observed_at=1 WHERE name='d2'", (GiB, 900 * MiB))
    ctl.sql("UPDATE nodes SET last_seen=? WHERE name='n1'", (now,))
    _, _, err = ctl.run("lvol", "create", "--size", "500M", rc=1)  # n2 is silent, d1 too small
    assert "free" in err
    _, out, _ = ctl.run("lvol", "create", "--size", "100M")
    assert js(ctl, "lvol", "show", out.strip())["disk"] == "d1"
    ctl.sql("UPDATE nodes SET last_seen=? WHERE name='n2'", (now,))
    _, out, _ = ctl.run("lvol", "create", "--size", "500M")
    assert js(ctl, "lvol", "show", out.strip())["disk"] == "d2"
    _, out, _ = ctl.run("lvol", "create", "--size", "1M", "--node", "n1")
    assert js(ctl, "lvol", "show", out.strip())["disk"] == "d1"


def test_concurrent_writers_never_overcommit(fleet):
    """Twelve diskctl processes race for a disk with room for five: exactly five win."""
    ctl = fleet
    ctl.sql("UPDATE disks SET lvstore_state='loaded', capacity=?, free=?, observed_at=1 WHERE name='d1'", (GiB, 100 * MiB))
    procs = [ctl.popen("lvol", "create", "--disk", "d1", "--size", "20M") for _ in range(12)]
    rcs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        rcs.append(p.returncode)
        if p.returncode:
            assert b"free" in err and len(err.splitlines()) == 1, err
    assert sorted(rcs) == [0] * 5 + [1] * 7
    rows = ctl.sql("SELECT count(*), sum(size) FROM lvols WHERE state='CREATING'")
    assert rows == [(5, 100 * MiB)]


# ---------------------------------------------------- snapshots / clones

def test_snapshot_and_clone(fleet):
    ctl = fleet
    _, out, _ = ctl.run("snapshot", "create", "1")
    sid = int(out)
    snaps = js(ctl, "snapshot", "list")
    assert snaps[0]["id"] == sid and snaps[0]["lvol_id"] == 1 and snaps[0]["state"] == "CREATING"
    assert snaps[0]["name"] == "snap-%d" % sid and snaps[0]["size"] == 64 * MiB
    _, _, err = ctl.run("clone", "create", str(sid), rc=1)
    assert "not READY" in err
    ctl.sql("UPDATE snapshots SET state='READY', uuid='1f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11' WHERE id=?", (sid,))
    _, out, _ = ctl.run("clone", "create", str(sid), "--host", "nqn.2014-08.org.nvmexpress:uuid:9")
    cid = int(out)
    c = js(ctl, "lvol", "show", str(cid))
    assert c["clone_of"] == sid and c["thin"] is True and c["disk"] == "d1"
    assert c["hosts"] == ["nqn.2014-08.org.nvmexpress:uuid:9"]
    assert [s["id"] for s in js(ctl, "snapshot", "list", "--lvol", "1")] == [sid]
    assert js(ctl, "snapshot", "list", "--node", "n2") == []
    ctl.run("snapshot", "delete", str(sid))
    assert js(ctl, "snapshot", "list")[0]["state"] == "DELETING"
    _, out, _ = ctl.run("snapshot", "list")
    assert "DELETING" in out


# ------------------------------------------------------- events, status

def test_events_and_status(fleet):
    ctl = fleet
    now = int(time.time() * 1000)
    ctl.sql("INSERT INTO events (node, kind, object, detail, first_seen, last_seen, count) "
            "VALUES ('n1', 'drift-missing', 'lvol/1', 'lvol 1 missing in lvs d1', ?, ?, 7)", (now - 5000, now))
    ctl.sql("INSERT INTO events (node, kind, object, detail, first_seen, last_seen, count, resolved_at) "
            "VALUES ('n1', 'reexport', 'lvol/1', 'namespace re-added', ?, ?, 1, ?)", (now - 9000, now - 9000, now - 8000))
    ev = js(ctl, "events")
    assert len(ev) == 1 and ev[0]["kind"] == "drift-missing" and ev[0]["count"] == 7
    assert ev[0]["resolved_at"] is None
    assert len(js(ctl, "events", "--all")) == 2
    _, out, _ = ctl.run("events")
    assert "drift-missing" in out and "lvol/1" in out
    st = js(ctl, "status")
    assert [n["name"] for n in st["nodes"]] == ["n1", "n2"]
    n1 = st["nodes"][0]
    assert n1["events_open"] == 1 and n1["live"] is False
    assert n1["disks"][0]["lvols"]["READY"] == 1
    assert n1["disks"][0]["provisioned"] == 64 * MiB
    assert n1["disks"][0]["events_open"] == 1  # lvol/1 lives on d1
    assert st["nodes"][1]["disks"][0]["events_open"] == 0
    assert st["nodes"][1]["disks"][0]["name"] == "d2"
    assert len(st["events_open"]) == 1
    _, out, _ = ctl.run("status")
    assert "node n1" in out and "disk d1" in out and "READY 1" in out and "open events: 1" in out
    assert "open events (drift, orphans ...): 1" in out


def test_status_empty_store(ctl):
    assert js(ctl, "status") == {"nodes": [], "events_open": []}
    assert js(ctl, "lvol", "list") == []
    assert js(ctl, "snapshot", "list") == []
    assert js(ctl, "events", "--all") == []
    assert js(ctl, "node", "list") == []
    assert oct(os.stat(ctl.db).st_mode & 0o777) == "0o600"


# -------------------------------------------------------------- --wait

def wait_row(ctl, query, params=()):
    return helpers.wait_for(lambda: ctl.sql(query, params), timeout=10, what=query)


def test_wait_ready_latency(fleet):
    """--wait returns as soon as the agent marks READY (data_version polling, not a tick)."""
    ctl = fleet
    p = ctl.popen("lvol", "create", "--disk", "d1", "--size", "8M", "--wait=20")
    wait_row(ctl, "SELECT id FROM lvols WHERE id=2")
    time.sleep(0.05)
    t0 = time.time()
    ctl.sql("UPDATE lvols SET state='READY' WHERE id=2")
    out, err = p.communicate(timeout=20)
    dt = time.time() - t0
    assert p.returncode == 0, err
    assert out.decode() == "2\n"
    assert "lvol 2: CREATING" in err.decode() and "lvol 2: READY" in err.decode()
    assert dt < 1.0, dt


def test_wait_failed_reports_reason(fleet):
    ctl = fleet
    p = ctl.popen("lvol", "create", "--disk", "d1", "--size", "8M", "--wait")
    wait_row(ctl, "SELECT id FROM lvols WHERE id=2")
    ctl.sql("UPDATE lvols SET state='FAILED', reason='lvstore d1 has no room' WHERE id=2")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 1
    assert err.decode().splitlines()[-1] == "diskctl: lvol 2 FAILED: lvstore d1 has no room"


def test_wait_timeout_exit_3(fleet):
    ctl = fleet
    t0 = time.time()
    rc, out, err = ctl.run("lvol", "delete", "1", "--wait=1", rc=3)
    assert 0.9 < time.time() - t0 < 5
    assert "timed out" in err and "goes on" in err
    assert js(ctl, "lvol", "show", "1")["state"] == "DELETING"  # the operation stands


def test_wait_delete_and_snapshot(fleet):
    ctl = fleet
    p = ctl.popen("snapshot", "create", "1", "--wait=20")
    wait_row(ctl, "SELECT id FROM snapshots WHERE id=1")
    ctl.sql("UPDATE snapshots SET state='READY' WHERE id=1")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0 and out.decode() == "1\n", err
    p = ctl.popen("lvol", "delete", "1", "--wait=20")
    wait_row(ctl, "SELECT id FROM lvols WHERE id=1 AND state='DELETING'")
    ctl.sql("UPDATE lvols SET state='DELETED' WHERE id=1")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "DELETED" in err.decode()


def test_wait_resize_shows_zeroing_progress(fleet):
    ctl = fleet
    p = ctl.popen("lvol", "resize", "1", "--size", "128M", "--wait=30")
    wait_row(ctl, "SELECT id FROM lvols WHERE id=1 AND state='RESIZING'")
    lo, hi = 64 * MiB, 128 * MiB
    ctl.sql("UPDATE lvols SET zero_from=?, zero_to=?, zero_done=? WHERE id=1", (lo, hi, lo))
    for frac in (0.25, 0.5, 1.0):
        time.sleep(0.05)
        ctl.sql("UPDATE lvols SET zero_done=? WHERE id=1", (lo + int((hi - lo) * frac),))
    time.sleep(0.05)
    ctl.sql("UPDATE lvols SET zero_from=0, zero_to=0, zero_done=0, state='READY', real_size=? WHERE id=1", (hi,))
    out, err = p.communicate(timeout=30)
    err = err.decode()
    assert p.returncode == 0, err
    assert "zeroing 0%" in err and "zeroing 50%" in err and "zeroing 100%" in err
    assert "(32 MiB of 64 MiB)" in err
    assert err.splitlines()[-1] == "lvol 1: READY"


# ---------------------------------------------------------- bad input

LONG = "x" * 5000
BAD = [
    # (args, allowed exit codes)
    (["lvol", "create", "--disk", "d1", "--size", "-1G"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "0"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "99999999999999999999999"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "32000000T"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "2P"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "10X"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1.3B"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "１G"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", ""], {2}),
    (["lvol", "create", "--disk", "nope", "--size", "1G"], {1}),
    (["lvol", "create", "--disk", "d2", "--node", "n1", "--size", "1G"], {1}),
    (["lvol", "create", "--disk", "dé", "--size", "1G"], {1}),
    (["lvol", "create", "--disk", "d1\u202e", "--size", "1G"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--host", "not an nqn"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--host", "nqn.x:\u00e9"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--host", "nqn." + "a" * 300], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--host", "nqn.a:b", "--host", "nqn.a:b"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--bogus"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "-x"], {2}),
    (["lvol", "create", "--disk", "d1"], {2}),
    (["lvol", "create", "--size", "1G"], {1}),  # placement: no live node
    (["lvol", "create", "--size", "1G", "--node", "n9"], {1}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--size", "2G"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--thin=yes"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--wait=abc"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--wait=0"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "--wait=-5"], {2}),
    (["lvol", "create", "--disk", "d1", "--size", "1G", "extra"], {2}),
    (["lvol", "create", "--disk", LONG, "--size", "1G"], {2}),
    (["lvol", "create", "--disk", "d" * 64, "--size", "1G"], {1}),
    (["lvol", "resize", "999", "--size", "1G"], {1}),
    (["lvol", "resize", "abc", "--size", "1G"], {2}),
    (["lvol", "resize", "-1", "--size", "1G"], {2}),
    (["lvol", "resize", "0", "--size", "1G"], {2}),
    (["lvol", "resize", "1e3", "--size", "1G"], {2}),
    (["lvol", "resize", "99999999999999999999", "--size", "1G"], {2}),
    (["lvol", "resize", "1", "--size", "1M"], {1}),
    (["lvol", "resize", "1", "--size", "0"], {1}),
    (["lvol", "resize", "1", "--size", "5P"], {1}),
    (["lvol", "resize", "1"], {2}),
    (["lvol", "resize", "--size", "1G"], {2}),
    (["lvol", "delete", "999"], {1}),
    (["lvol", "delete"], {2}),
    (["lvol", "delete", "1", "2"], {2}),
    (["lvol", "show", "999"], {1}),
    (["lvol", "show", "x"], {2}),
    (["lvol", "list", "--state", "BOGUS"], {2}),
    (["lvol", "list", "--color"], {2}),
    (["lvol", "frob"], {2}),
    (["lvol"], {2}),
    (["frobnicate"], {2}),
    ([], {2}),
    (["snapshot", "create", "999"], {1}),
    (["snapshot", "create", "x1"], {2}),
    (["snapshot", "delete", "5"], {1}),
    (["snapshot", "list", "--lvol", "zero"], {2}),
    (["clone", "create", "5"], {1}),
    (["clone", "create", "1", "--host", "bad"], {1}),
    (["node", "add", "n1", "--rpc-socket", "/tmp/x.sock"], {1}),
    (["node", "add", "bad name", "--rpc-socket", "/tmp/x.sock"], {1}),
    (["node", "add", "n☃", "--rpc-socket", "/tmp/x.sock"], {1}),
    (["node", "add", "-n3", "--rpc-socket", "/tmp/x.sock"], {2}),
    (["node", "add", "n3"], {2}),
    (["node", "add", "n3", "--rpc-socket", "/tmp/" + "s" * 200], {1}),
    (["node", "add", "n3", "--rpc-socket", "/tmp/x\x01.sock"], {1}),
    (["node", "add", "n3", "--rpc-socket", LONG], {2}),
    (["node", "add", "n3", "--rpc-socket", "/tmp/x.sock", "--nqn-prefix", "iqn.1990"], {1}),
    (["node", "add", "n3", "--rpc-socket", "/tmp/x.sock", "--nqn-prefix", "nqn.x y"], {1}),
    (["disk", "add", "d3", "--node", "nX", "--file", "/tmp/d3", "--listen", "127.0.0.1:4420"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--device", "/dev/x", "--listen", "127.0.0.1:1"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--listen", "127.0.0.1:1"], {2}),
    (["disk", "add", "d3", "--file", "/tmp/d3", "--listen", "127.0.0.1:1"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:99999"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "localhost:4420"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--interface", "lo"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--interface", "lo", "--port", "0"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--interface", "lo", "--port", "70000"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--port", "1"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--interface", "a/b"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--interface", "x" * 20], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--lvstore", "a b"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--lvstore", "l" * 64], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--lvstore", "d1"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--cluster-size", "3000"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--cluster-size", "2G"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--cluster-size", "big"], {2}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d3", "--listen", "1.2.3.4:1", "--transport", "FC"], {2}),
    (["disk", "add", "d1", "--node", "n1", "--file", "/tmp/other", "--listen", "1.2.3.4:1"], {1}),
    (["disk", "add", "d3", "--node", "n1", "--file", "/tmp/d\x7f3", "--listen", "1.2.3.4:1"], {1}),
    (["events", "--all=1"], {2}),
    (["status", "now"], {2}),
    (["--db"], {2}),
]


@pytest.mark.parametrize("args,codes", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_changes_nothing(fleet, args, codes):
    ctl = fleet
    ctl.sql("UPDATE disks SET lvstore_state='loaded', capacity=?, free=?, observed_at=1 WHERE name='d1'",
            (GiB, 512 * MiB))
    before = ctl.dump()
    rc, out, err = ctl.run(*args, rc=None)
    assert rc in codes, "args %r: rc %d, want %s; stderr %r" % (args, rc, codes, err)
    lines = err.splitlines()
    assert len(lines) == 1, "args %r: stderr not one line: %r" % (args, err)
    assert lines[0].startswith("diskctl: ") and len(lines[0]) > 20
    assert out == ""
    assert ctl.dump() == before


def test_duplicate_db_option(ctl):
    rc, _, err = ctl.run("--db", ctl.db, "node", "list", rc=2)
    assert "twice" in err


def test_bad_database_files(ctl):
    junk = os.path.join(ctl.dir, "junk.db")
    with open(junk, "w") as f:
        f.write("definitely not an sqlite database, just text\n" * 10)
    for db, needle in ((junk, "not a database"), (ctl.dir, "directory"),
                       (os.path.join(ctl.dir, "no/such/dir.db"), "No such file"),
                       ("postgresql://localhost/x", "PostgreSQL")):
        rc, out, err = ctl.run("--db", db, "lvol", "list", rc=1, db=False)
        assert needle in err, err
        assert len(err.splitlines()) == 1


def test_readonly_database(fleet):
    ctl = fleet
    before = ctl.dump()
    if os.geteuid() == 0:
        os.chmod(ctl.dir, 0o755)
        os.chmod(ctl.db, 0o644)

        def drop():
            os.setgid(65534)
            os.setuid(65534)
        rc, _, err = ctl.run("lvol", "create", "--disk", "d1", "--size", "1G", rc=1, preexec_fn=drop)
    else:
        os.chmod(ctl.db, 0o400)
        rc, _, err = ctl.run("lvol", "create", "--disk", "d1", "--size", "1G", rc=1)
        os.chmod(ctl.db, 0o600)
    assert "read-only" in err and len(err.splitlines()) == 1
    assert ctl.dump() == before


def test_locked_database_waits_then_writes(fleet):
    """A writer holding the lock briefly delays diskctl (busy timeout), it does not fail it."""
    ctl = fleet
    con = sqlite3.connect(ctl.db, timeout=10, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: con.execute("COMMIT")).start()
    t0 = time.time()
    _, out, _ = ctl.run("lvol", "create", "--disk", "d1", "--size", "1M")
    assert out == "2\n" and time.time() - t0 >= 0.4
    con.close()


def test_locked_database_clear_error(fleet):
    """Held longer than the busy timeout (5 s): one clear line, exit 1, nothing written."""
    ctl = fleet
    before = ctl.dump()
    con = sqlite3.connect(ctl.db, timeout=10, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        _, _, err = ctl.run("lvol", "create", "--disk", "d1", "--size", "1M", rc=1)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert "locked" in err and len(err.splitlines()) == 1
    assert ctl.dump() == before


def test_default_db_path_and_env(ctl, tmpdir_short):
    env_db = os.path.join(tmpdir_short, "env.db")
    import subprocess
    e = ctl.env()
    e["DISKENGINE_DB"] = env_db
    p = subprocess.run([ctl.bin, "node", "add", "n1", "--rpc-socket", "/tmp/x.sock"], env=e, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(env_db)
    e.pop("DISKENGINE_DB")
    p = subprocess.run([ctl.bin, "--json", "node", "list"], env=e, capture_output=True, cwd=tmpdir_short)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []
    assert os.path.exists(os.path.join(tmpdir_short, "var", "diskengine.db"))


# ------------------------------------------------------- random junk

WORDS = ["node", "disk", "lvol", "snapshot", "clone", "events", "status", "add", "list", "create",
         "resize", "delete", "show", "--disk", "--size", "--thin", "--host", "--node", "--file",
         "--device", "--listen", "--interface", "--port", "--transport", "--lvstore", "--cluster-size",
         "--rpc-socket", "--nqn-prefix", "--allow-shrink", "--state", "--all", "--lvol", "--json",
         "--", "-", "--=", "--size=", "=", "d1", "d2", "n1", "n2", "1", "2", "0", "-1", "1G", "-1G",
         "4096", "1.5T", "18446744073709551616", "9" * 30, "nqn.2014-08.org.nvmexpress:uuid:1",
         "127.0.0.1:4420", "[::1]:1", "/tmp/x", "rel/x", "é", "\u202e", "☃", "\x01", "x" * 300,
         "READY", "ready", "TCP", "RDMA", "lo", "%s", "%n", "'; DROP TABLE lvols; --"]


def test_random_junk_never_crashes_or_half_writes(fleet):
    import random
    ctl = fleet
    rnd = random.Random(int(os.environ.get("DISKCTL_FUZZ_SEED", "1234")))
    n = 600 if os.environ.get("DISKENGINE_STRESS") else 120
    state = ctl.dump()
    for _ in range(n):
        args = [rnd.choice(WORDS) for _ in range(rnd.randint(0, 7))]
        rc, out, err = ctl.run(*args, rc=None, timeout=30)
        assert rc in (0, 1, 2), "args %r: rc %d\n%s" % (args, rc, err)
        now = ctl.dump()
        if rc != 0:
            assert len(err.splitlines()) == 1, "args %r: stderr %r" % (args, err)
            assert now == state, "args %r failed with rc %d but changed the store" % (args, rc)
        state = now
    # the store is still fully usable and consistent
    con = sqlite3.connect(ctl.db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    js(ctl, "status")


# ------------------------------------------------- crashes and I/O errors

def test_write_error_is_one_line_and_rolls_back(fleet):
    """A write that hits an I/O error (file size limit: EFBIG on the WAL) fails cleanly."""
    import resource
    import signal
    ctl = fleet
    before = ctl.dump()
    keep = sqlite3.connect(ctl.db)  # keeps -wal/-shm in place, as a running agent would
    keep.execute("SELECT count(*) FROM lvols").fetchall()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        for args in (["lvol", "create", "--disk", "d1", "--size", "1M"], ["lvol", "delete", "1"],
                     ["node", "add", "n3", "--rpc-socket", "/tmp/n3.sock"]):
            rc, out, err = ctl.run(*args, rc=1, preexec_fn=limit)
            assert len(err.splitlines()) == 1 and "I/O error" in err, err
            assert ctl.dump() == before
    finally:
        keep.close()
    _, out, _ = ctl.run("lvol", "create", "--disk", "d1", "--size", "1M")
    assert out == "2\n"


def test_sigkill_mid_write_never_leaves_half_rows(fleet):
    """diskctl killed at random points: every row is whole (nqn set in the same transaction)."""
    import random
    import signal
    ctl = fleet
    rnd = random.Random(7)
    for _ in range(6):
        procs = [ctl.popen("lvol", "create", "--disk", "d1", "--size", "1M", "--thin") for _ in range(8)]
        time.sleep(rnd.uniform(0.0, 0.03))
        for p in procs:
            if rnd.random() < 0.5:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.communicate(timeout=60)
    con = sqlite3.connect(ctl.db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT id, nqn, state, generation FROM lvols").fetchall()
        assert len(rows) >= 2
        for i, nqn, st, gen in rows:
            assert nqn == "nqn.2026-11.io.diskengine:lvol-%d" % i and gen == 1, rows
        changes = con.execute("SELECT value FROM meta WHERE key='changes'").fetchone()[0]
    finally:
        con.close()
    # every committed create moved the change counter (4 setup writes before)
    assert changes == 4 + 1 + (len(rows) - 1), (changes, len(rows))
