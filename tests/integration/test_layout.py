"""DESIGN.md's dependency rules, checked on the source: a module may include
only the public headers of the modules it is allowed to use."""
import os
import re

from helpers import ROOT

# module -> modules whose headers it may include (besides its own)
ALLOWED = {
    "common": set(),
    "json": {"common"},
    "rpc": {"common", "json"},
    "bdev": {"common"},
    "blob": {"common", "bdev"},
    "lvol": {"common", "bdev", "blob"},
    "nvmf": {"common", "bdev", "nvme"},
    "nvme": {"common"},
    "tgt": {"common", "json", "rpc", "bdev", "blob", "lvol", "nvmf"},
    "db": {"common"},
    "agent": {"common", "json", "rpc", "nvme", "db"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def module_includes():
    for mod in ALLOWED:
        d = os.path.join(ROOT, "src", mod)
        for dirpath, _, files in os.walk(d):
            for f in files:
                if f.endswith((".c", ".h")):
                    path = os.path.join(dirpath, f)
                    with open(path, errors="replace") as fh:
                        for m in INCLUDE.finditer(fh.read()):
                            yield mod, path, m.group(1), m.group(2)


def test_dependency_direction():
    bad = []
    for mod, path, inc_mod, header in module_includes():
        if inc_mod == mod:
            continue
        if inc_mod not in ALLOWED:
            continue
        if inc_mod not in ALLOWED[mod]:
            bad.append("%s includes %s/%s" % (os.path.relpath(path, ROOT), inc_mod, header))
        elif header != inc_mod + ".h":
            bad.append("%s includes private header %s/%s" % (os.path.relpath(path, ROOT), inc_mod, header))
    assert not bad, "forbidden includes:\n" + "\n".join(bad)


def test_agent_never_sees_target_internals():
    # The agent talks to the target only over the wire, so it works with real SPDK.
    for mod, path, inc_mod, _ in module_includes():
        if mod == "agent":
            assert inc_mod not in ("bdev", "blob", "lvol", "nvmf", "tgt"), path


def test_checker_catches_a_violation(tmp_path):
    # The rule above must be able to fail: a forbidden include is seen by the regex.
    text = '#include "bdev/bdev.h"\n'
    m = INCLUDE.search(text)
    assert m and m.group(1) == "bdev" and "bdev" not in ALLOWED["agent"]
