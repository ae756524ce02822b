"""Fixtures of the agent's integration tests (helpers live in agent_lib.py).
`node` is parametrized over the target: "fake" (fake_spdk.py, always
available) and "disktgt" (the real target, skipped with a reason while a
method the agent needs is missing)."""
import os
import shutil
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402
from agent_lib import Node, disktgt_missing  # noqa: E402


@pytest.fixture(params=["fake", "disktgt"])
def node(request):
    kind = request.param
    missing = disktgt_missing()
    if kind == "disktgt" and missing is None:
        pytest.skip("disktgt is not built yet")
    if kind == "disktgt" and missing:
        pytest.skip("disktgt lacks methods the agent uses (helper C's work not landed): "
                    + ", ".join(missing))
    if kind == "fake" and missing == [] and not os.environ.get("DISKENGINE_STRESS"):
        pytest.skip("covered by the disktgt variant (the fake target runs with "
                    "DISKENGINE_STRESS=1, or when disktgt lacks a method)")
    yield from running_node(kind)


@pytest.fixture
def fake_node():
    """Always the fake target: for faults only it can make (a connection
    closed without a reply)."""
    yield from running_node("fake")


def running_node(kind):
    d = helpers.short_tmpdir("de-agent-")
    n = Node(kind, d)
    try:
        n.start_target()
        n.setup()
        yield n
        rc = n.close()
        assert rc in (0, None), "diskengine exited %s:\n%s" % (rc, n.agent_runs[-1].output()[-3000:])
    finally:
        if n.agent is not None or n.tgt is not None:
            n.stop_agent(signal.SIGKILL)
            n.stop_target(signal.SIGKILL)
        if os.environ.get("DISKENGINE_KEEP_TMP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)
