"""Fixtures for the diskctl integration tests: a fresh SQLite state store per
test, a runner for the real diskctl binary, and direct SQL access that plays
the agent's part (observed-state writes) so diskctl can be tested alone."""
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import helpers  # noqa: E402

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Ctl:
    def __init__(self, tmpdir):
        self.dir = tmpdir
        self.db = os.path.join(tmpdir, "state.db")
        self.bin = helpers.binary("diskctl")

    def env(self):
        e = dict(os.environ)
        e.pop("DISKENGINE_DB", None)
        return e

    def run(self, *args, rc=0, db=True, timeout=60, preexec_fn=None):
        argv = [self.bin] + (["--db", self.db] if db else []) + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=self.env(),
                           preexec_fn=preexec_fn)
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        for bad in SANITIZER_MARKS:
            assert bad not in err, "%s in diskctl %s:\n%s" % (bad, args, err[-4000:])
        if rc is not None:
            assert p.returncode == rc, "diskctl %s: rc %d (want %s)\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), p.returncode, rc, out, err)
        return p.returncode, out, err

    def popen(self, *args):
        argv = [self.bin, "--db", self.db] + [str(a) for a in args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())

    def sql(self, query, params=()):
        """Plays the agent: one statement in its own transaction."""
        con = sqlite3.connect(self.db, timeout=10)
        try:
            cur = con.execute(query, params)
            rows = cur.fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def dump(self):
        """Everything in the store, to prove a refused command changed nothing."""
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()


@pytest.fixture
def ctl(tmpdir_short):
    return Ctl(tmpdir_short)


def build_fleet(ctl):
    sock = os.path.join(ctl.dir, "n1.sock")
    ctl.run("node", "add", "n1", "--rpc-socket", sock)
    ctl.run("node", "add", "n2", "--rpc-socket", os.path.join(ctl.dir, "n2.sock"))
    ctl.run("disk", "add", "d1", "--node", "n1", "--file", os.path.join(ctl.dir, "d1.img"),
            "--listen", "127.0.0.1:4420")
    ctl.run("disk", "add", "d2", "--node", "n2", "--file", os.path.join(ctl.dir, "d2.img"),
            "--interface", "lo", "--port", "4421")
    _, out, _ = ctl.run("lvol", "create", "--disk", "d1", "--size", "64MiB")
    assert out.strip() == "1"
    ctl.sql("UPDATE lvols SET state='READY', uuid='6f1c2f0e-7a54-4a3e-9d36-1c1b7e3f0a11', "
            "real_size=67108864 WHERE id=1")


@pytest.fixture(scope="session")
def fleet_template():
    """The fleet store built once through diskctl; each test gets a copy."""
    d = helpers.short_tmpdir("de-fleet-")
    c = Ctl(d)
    build_fleet(c)
    yield c.db
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleet(ctl, fleet_template):
    """Two nodes, a disk on each, lvol 1 READY on d1 (as if an agent ran)."""
    shutil.copyfile(fleet_template, ctl.db)
    os.chmod(ctl.db, 0o600)
    return ctl
