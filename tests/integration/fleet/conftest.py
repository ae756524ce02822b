"""Fixtures of the fleet tests (helpers live in fleet_lib.py and pg_lib.py):
one throw-away PostgreSQL cluster per session (skipped with the reason when
the server binaries are absent) and a fresh database per test."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_lib  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster():
    why = pg_lib.skip_reason()
    if why:
        pytest.skip(why)
    c = pg_lib.PgCluster().init().start()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture
def pg_url(pg_cluster):
    """postgresql:// URL of a fresh, empty database."""
    return pg_cluster.create_db()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow_tick: agent tick 60 s (only NOTIFY wakes it)")
