"""Fixtures shared by every integration area; see helpers.py."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def reap_processes():
    """No process outlives the test session, whatever a test forgot to stop."""
    yield
    left = helpers.Proc.reap_leftovers()
    if left:
        sys.stderr.write("\nkilled processes left running by tests: %s\n" % "; ".join(left))


@pytest.fixture
def tmpdir_short():
    d = helpers.short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def disktgt(tmpdir_short):
    """A running disktgt on a fresh socket; yields (proc, socket_path)."""
    sock = os.path.join(tmpdir_short, "tgt.sock")
    proc = helpers.Proc([helpers.binary("disktgt"), "-r", sock], os.path.join(tmpdir_short, "disktgt.log"))
    helpers.wait_socket(sock, proc)
    yield proc, sock
    rc = proc.stop()
    proc.assert_clean()
    assert rc == 0, "disktgt exited %s:\n%s" % (rc, proc.output()[-3000:])
