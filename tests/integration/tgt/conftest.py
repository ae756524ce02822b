"""Fixtures for disktgt's integration tests (helpers live in tgt_lib.py)."""
import shutil

import pytest

import helpers
from tgt_lib import Target


@pytest.fixture
def workdir():
    d = helpers.short_tmpdir("de-tgt-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def target(workdir):
    t = Target(workdir)
    yield t
    if t.proc.alive():
        t.stop()
    else:
        t.proc.assert_clean()
