"""DB faults (issue 9): SQLite locked by another writer for longer than the
busy timeout, the DB's file system made read-only, and the DB's file system
full. In each case the agent logs one clear line, does not crash, loses no
state (nothing FAILED, no orphan from a create whose UUID could not be
recorded), and finishes the work once the DB is writable again.

Read-only and full use a small tmpfs mounted for the DB (root only; skipped
with the reason otherwise)."""
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import helpers
from reliability_lib import STRESS, record

LOCK_SECONDS = 10 if STRESS else 8  # the DB layer's busy timeout is 5 s: at least one write times out


@contextlib.contextmanager
def tmpfs(size="4m"):
    d = helpers.short_tmpdir("de-dbfs-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", d],
                       capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs for the DB (needs root/CAP_SYS_ADMIN): %s" % p.stderr.strip())
    try:
        yield d
    finally:
        subprocess.run(["mount", "-o", "remount,rw", d], capture_output=True)
        subprocess.run(["umount", "-l", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def agent_log(n):
    return "".join(p.output() for p in n.agent_runs)


def test_db_locked_by_another_writer(node):
    n = node
    n.start_agent()
    n.wait_loaded()
    n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", "--wait=30")
    n.stop_target(signal.SIGKILL)  # the next create waits for the target
    i = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "8MiB")
    con = sqlite3.connect(n.db, timeout=10, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE meta SET value = value WHERE key = 'changes'")
    released = threading.Event()

    def release():
        time.sleep(LOCK_SECONDS)
        con.execute("ROLLBACK")
        released.set()
    t = threading.Thread(target=release)
    t.start()
    try:
        n.start_target()
        # diskctl while locked: one line, exit 1 (or it waited for the lock and succeeded)
        p = n.ctl("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", check=False)
        assert p.returncode in (0, 1), p.stderr
        if p.returncode == 1:
            assert len(p.stderr.strip().splitlines()) == 1 and "locked" in p.stderr, p.stderr
        released.wait(LOCK_SECONDS + 5)
    finally:
        t.join()
        con.close()
    n.check_alive()
    n.wait_state(i, "READY", timeout=60)
    assert n.wait_converged(timeout=30) == []
    record("db_fault", fault="locked", seconds=LOCK_SECONDS)
    log = agent_log(n)
    # one clear line (the heartbeat write times out first; fixed in a1605c6)
    assert "locked by another writer" in log, log[-3000:]


def test_db_read_only_file_system(make_node):
    """The DB's volume comes back read-only across an agent restart (a file
    system cannot be remounted read-only under a process writing to it, so
    that is the case an operator meets). The agent must say so in one clear
    line and neither crash nor touch the target state; diskctl writes are
    refused in one line; once writable, a new agent finishes the pending work."""
    with tmpfs() as mnt:
        n = make_node(db_path=os.path.join(mnt, "de.db"))
        n.start_agent()
        n.wait_loaded()
        n.ctl_id("lvol", "create", "--disk", "d1", "--size", "4MiB", "--thin", "--wait=30")
        n.stop_target(signal.SIGKILL)
        i = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "8MiB")
        assert n.stop_agent() == 0
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        n.start_target()
        a = n.start_agent()
        helpers.wait_for(lambda: "read-only" in a.output().lower() or not a.alive(), 20,
                         what="a read-only log line")
        time.sleep(1.0)
        out = a.output()
        assert "read-only" in out.lower(), out[-2000:]
        for bad in ("ERROR: AddressSanitizer", "runtime error:"):
            assert bad not in out
        if not a.alive():
            assert a.p.returncode == 1, "agent exit %s on a read-only DB" % a.p.returncode
            n.agent = None
        # nothing done behind the DB's back: no lvol created while it could not be recorded
        lvs = n.rpc_ok("bdev_lvol_get_lvstores")
        names = [x["name"] for s in lvs for x in n.rpc_ok("bdev_lvol_get_lvols", {"lvs_uuid": s["uuid"]})]
        print("agent on a read-only DB: %s; target lvols %s" % (
            "alive" if n.agent else "exited 1", names))
        p = n.ctl("lvol", "create", "--disk", "d1", "--size", "4MiB", check=False)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "read-only" in p.stderr, p.stderr
        subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
        if n.agent is None:
            n.start_agent()
        n.wait_state(i, "READY", timeout=60)
        v = n.wait_converged(timeout=30)
        assert v == [], v
        problems = n.close()
        assert not problems, problems
    record("db_fault", fault="read-only")


def test_db_file_system_full(make_node):
    with tmpfs("3m") as mnt:
        n = make_node(db_path=os.path.join(mnt, "de.db"))
        n.start_agent()
        n.wait_loaded()
        n.stop_target(signal.SIGKILL)
        i = n.ctl_id("lvol", "create", "--disk", "d1", "--size", "8MiB")
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        n.start_target()
        helpers.wait_for(lambda: "full" in agent_log(n).lower(), 30, what="a disk-full log line")
        time.sleep(1.0)
        n.check_alive()
        assert n.state_of(i) in ("CREATING", "READY")
        os.unlink(filler)
        n.wait_state(i, "READY", timeout=60)
        v = n.wait_converged(timeout=30)
        assert v == [], v
        problems = n.close()
        assert not problems, problems
    record("db_fault", fault="full")
