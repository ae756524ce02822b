"""Fixtures for the NVMe/TCP integration tests; the helpers live in
nvme_lib.py (import them from there, not from conftest)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nvme_lib import NvmfTarget  # noqa: E402
# Re-exported for files that still say `from conftest import ...` (works when
# this folder runs alone; a combined run needs `from nvme_lib import ...`).
from nvme_lib import (TOTAL_RE, diskperf, free_port, nvmeio, parse_total, tool,  # noqa: E402,F401
                      trid)


@pytest.fixture
def nvmf_tgt(disktgt):
    """A running disktgt with the TCP transport created (see NvmfTarget)."""
    proc, sock = disktgt
    t = NvmfTarget(proc, sock)
    yield t
    t.close()
