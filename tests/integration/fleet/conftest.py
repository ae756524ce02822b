"""Fixtures of the fleet tests (helpers live in fleet_lib.py; the PostgreSQL
harness in ../agent/pg_lib.py, shared with the agent tests): one throw-away
PostgreSQL cluster per session (skipped with the reason when the server
binaries are absent) and a fresh database per test."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agent"))
from pg_lib import pg_cluster  # noqa: E402,F401 (the session fixture)


@pytest.fixture
def pg_url(pg_cluster):  # noqa: F811
    """postgresql:// URL of a fresh, empty database."""
    return pg_cluster.create_db()
