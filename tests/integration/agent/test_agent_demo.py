"""make run (scripts/run-demo) without a terminal: creates ./var, starts
both daemons, registers the node and disk, creates volumes, prints status,
stops both cleanly after DEMO_SECONDS; a second run reuses the state. On
both backends: the demo's SQLite file, or a PostgreSQL database (DEMO_DB)."""
import os
import shutil
import subprocess

import pytest

import helpers
from agent_lib import FAKE, disktgt_missing, free_port, tgt_binary

DEMO = os.path.join(helpers.ROOT, "scripts", "run-demo")


def fake_build(d):
    """A build-dir layout whose disktgt is the fake target."""
    b = os.path.join(d, "build")
    for app in ("disktgt", "diskengine", "diskctl"):
        os.makedirs(os.path.join(b, "apps", app))
    with open(os.path.join(b, "apps", "disktgt", "disktgt"), "w") as f:
        f.write('#!/bin/sh\nexec /usr/bin/python3 %s -r "$2" --state %s/fake-state.json\n' % (FAKE, d))
    os.chmod(os.path.join(b, "apps", "disktgt", "disktgt"), 0o755)
    for app in ("diskengine", "diskctl"):
        os.symlink(helpers.binary(app), os.path.join(b, "apps", app, app))
    return b


def real_build(d):
    b = os.path.join(d, "build")
    for app in ("disktgt", "diskengine", "diskctl"):
        os.makedirs(os.path.join(b, "apps", app))
        os.symlink(tgt_binary() if app == "disktgt" else helpers.binary(app),
                   os.path.join(b, "apps", app, app))
    return b


@pytest.mark.parametrize("kind", ["fake", "disktgt"])
def test_run_demo_twice(kind, backend):
    missing = disktgt_missing()
    if kind == "disktgt" and missing is None:
        pytest.skip("disktgt is not built yet")
    if kind == "disktgt" and missing:
        pytest.skip("disktgt lacks methods the agent uses: " + ", ".join(missing))
    if kind == "fake" and missing == [] and not os.environ.get("DISKENGINE_STRESS"):
        pytest.skip("covered by the disktgt variant (fake with DISKENGINE_STRESS=1)")
    d = helpers.short_tmpdir("de-demo-")
    try:
        build = fake_build(d) if kind == "fake" else real_build(d)
        env = dict(os.environ, DEMO_SECONDS="1", DEMO_PORT=str(free_port()))
        url = backend.new_db()
        if url:
            env["DEMO_DB"] = url
        runs = []
        for _ in range(2):
            p = subprocess.run([DEMO, build], cwd=d, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stdout + p.stderr
            runs.append(p.stdout)
        var = os.path.join(d, "var")
        assert os.path.getsize(os.path.join(var, "disk0.img")) == 8 << 30
        assert os.stat(os.path.join(var, "disk0.img")).st_blocks * 512 < 1 << 30  # sparse
        for out in runs:
            assert "lvols: READY 3" in out, out
            assert "diskengine stopped (exit 0)" in out and "disktgt stopped (exit 0)" in out, out
            assert "Drive it" in out
        assert "created sparse 8 GiB" in runs[0] and "created sparse" not in runs[1]
        log = open(os.path.join(var, "diskengine.log")).read()
        assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log
    finally:
        shutil.rmtree(d, ignore_errors=True)
