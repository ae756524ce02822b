"""Runs the PostgreSQL backend's cmocka tests (tests/unit/db/test_db_pg.c)
against the throw-away cluster: migrations, operations, the placement race,
NOTIFY wake-ups, a killed session (transient -EAGAIN, then reconnected)."""
import os
import subprocess

import pytest

from fleet_lib import helpers  # noqa: I001


def test_db_pg_unit(pg_cluster):
    exe = os.path.join(helpers.build_dir(), "tests", "unit", "db", "test_db_pg")
    if not os.path.exists(exe):
        pytest.skip("test_db_pg not built (no libpq?)")
    env = dict(os.environ, DE_TEST_PG_URL=pg_cluster.url("postgres"),
               CMOCKA_MESSAGE_OUTPUT="stdout")
    p = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "SKIPPED" not in out and "PASSED  ] 8 test(s)" in out, out
