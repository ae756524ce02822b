"""Fixtures of the reliability suite; the shared code (Node, invariant checker,
figure recorder) is in reliability_lib.py, imported by the test modules."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import helpers  # noqa: E402
from reliability_lib import Node, require  # noqa: E402


@pytest.fixture
def make_node():
    """Factory: make_node(**Node kwargs) -> a set-up node (target running, node and
    disk registered); the test starts the agent. Every node is stopped at the end
    and must have exited cleanly without sanitizer reports."""
    require("disktgt", "diskengine", "diskctl")
    made = []

    def make(start_target=True, **kw):
        d = helpers.short_tmpdir("de-rel-")
        n = Node(d, **kw)
        made.append(n)
        if start_target:
            n.start_target()
        n.setup()
        return n
    try:
        yield make
        problems = []
        for n in made:
            problems += n.close()
        assert not problems, "\n".join(problems)
    finally:
        for n in made:
            n.discard()


@pytest.fixture
def node(make_node):
    """A set-up node with default options; the test starts the agent."""
    return make_node()
