"""Helpers for disktgt's integration tests (tests/integration/tgt): a disktgt
process with fault injection enabled, sparse files, call shortcuts. A module
of its own name (not conftest) so that one pytest run over every area imports
the right helpers."""
import os

import pytest

import helpers


def disktgt_binary():
    """disktgt of the build under test; the tests skip while it cannot be built
    (its layers are written in parallel) instead of failing on a missing file."""
    try:
        return helpers.binary("disktgt")
    except FileNotFoundError:
        pytest.skip("disktgt is not built in " + helpers.build_dir())


class Target:
    """One disktgt process (fault-injection methods enabled) on its own socket."""

    def __init__(self, workdir, name="tgt", extra_args=()):
        self.workdir = workdir
        self.sock = os.path.join(workdir, name + ".sock")
        self.log = os.path.join(workdir, name + ".log")
        self.args = [disktgt_binary(), "-r", self.sock, "--enable-fault-injection"] + list(extra_args)
        self.proc = None
        self.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = helpers.Proc(self.args, self.log)
        helpers.wait_socket(self.sock, self.proc)

    def client(self):
        return helpers.RpcClient(self.sock)

    def stop(self, expect_rc=0):
        rc = self.proc.stop()
        self.proc.assert_clean()
        if expect_rc is not None:
            assert rc == expect_rc, "disktgt exited %s:\n%s" % (rc, self.proc.output()[-3000:])
        return rc

    def restart(self):
        self.stop()
        self.start()


def make_sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def call_ok(client, method, params=None):
    r = client.call(method, params)
    assert "error" not in r, "%s %s -> %s" % (method, params, r)
    return r["result"]


def call_err(client, method, params=None):
    r = client.call(method, params)
    assert "error" in r, "%s %s unexpectedly succeeded: %s" % (method, params, r)
    return r["error"]["code"], r["error"]["message"]
