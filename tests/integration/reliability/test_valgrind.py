"""valgrind memcheck over the end-to-end smoke (scripts/valgrind-smoke) with
the non-sanitizer build: zero "definitely lost" bytes and zero errors in
disktgt, diskengine and every diskctl run. Slow (minutes), so it runs only
under DISKENGINE_STRESS=1 or DISKENGINE_VALGRIND=1."""
import os
import re
import subprocess

import pytest

from reliability_lib import STRESS, record

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SCRIPT = os.path.join(ROOT, "scripts", "valgrind-smoke")


@pytest.mark.skipif(not (STRESS or os.environ.get("DISKENGINE_VALGRIND") == "1"),
                    reason="slow: runs under DISKENGINE_STRESS=1 or DISKENGINE_VALGRIND=1")
def test_valgrind_smoke_has_no_leaks():
    build = (os.environ.get("DISKENGINE_VALGRIND_BUILD") or os.environ.get("DISKENGINE_RELEASE_BUILD")
             or os.path.join(ROOT, "build"))
    p = subprocess.run([SCRIPT, "--build", build], capture_output=True, text=True, timeout=1800)
    print(p.stdout[-6000:])
    if p.returncode == 77:
        pytest.skip(p.stdout.strip().splitlines()[-1])
    runs = len(re.findall(r"^valgrind ", p.stdout, re.M))
    leaks = len(re.findall(r"FAIL$", p.stdout, re.M))
    record("valgrind", runs=runs, failing=leaks, ok=p.returncode == 0)
    assert p.returncode == 0, p.stdout[-8000:] + p.stderr[-2000:]
    assert runs >= 3
