"""`diskctl batch`: commands from stdin on one connection. Text and JSON
answers, word splitting, comments, stop at the first failure (later lines
not run, the store unchanged by them), --keep-going, what a batch refuses,
and the co-process use: a line written, its answer read before the next
line is written, --wait inside a batch (SQL plays the agent)."""
import json
import subprocess
import time

import helpers

MiB = 1 << 20


def batch(ctl, text, *opts, rc=0, json_mode=False):
    argv = [ctl.bin, "--db", ctl.db] + (["--json"] if json_mode else []) + ["batch"] + list(opts)
    p = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=60, env=ctl.env())
    out, err = p.stdout.decode(), p.stderr.decode()
    assert "Sanitizer" not in err and "runtime error:" not in err, err
    assert p.returncode == rc, "rc %d (want %d)\nstdout: %s\nstderr: %s" % (p.returncode, rc, out, err)
    return out, err


def answers(out):
    return [json.loads(line) for line in out.splitlines()]


def test_text_mode_runs_every_line(fleet):
    out, err = batch(fleet, "# two volumes\n\nlvol create --disk d1 --size 8MiB\n"
                            "   lvol create --disk d1 --size 16MiB --host 'nqn.2014-08.org.x:a#b'  # c\n"
                            "lvol show 3 --json\n")
    lines = out.splitlines()
    assert lines[:2] == ["2", "3"]
    shown = json.loads("\n".join(lines[2:]))  # --json on one line of a text batch
    assert shown["size"] == 16 * MiB and shown["hosts"] == ["nqn.2014-08.org.x:a#b"]
    assert err == ""


def test_json_mode_one_line_per_command(fleet):
    out, err = batch(fleet, 'lvol create --disk d1 --size 8MiB\nlvol list\n'
                            'lvol resize 1 --size 128MiB\nnode list\n', json_mode=True)
    a = answers(out)
    assert [x["line"] for x in a] == [1, 2, 3, 4]
    assert all(x["exit"] == 0 and "error" not in x and x["ms"] >= 0 for x in a)
    assert a[0]["result"] == {"id": 2}
    assert sorted(l["id"] for l in a[1]["result"]) == [1, 2]
    assert a[2]["result"] is None  # resize prints nothing
    assert [n["name"] for n in a[3]["result"]] == ["n1", "n2"]
    assert fleet.sql("SELECT size, state FROM lvols WHERE id=1") == [(128 * MiB, "RESIZING")]
    assert err == ""


def test_quoting(fleet):
    fleet.run("disk", "add", "d3", "--node", "n1", "--file", "/tmp/a b/c'd\".img",
              "--listen", "127.0.0.1:4430")
    out, _ = batch(fleet, 'disk list --node "n1"\n', json_mode=True)
    files = [d["file"] for d in answers(out)[0]["result"]]
    assert "/tmp/a b/c'd\".img" in files
    # one path written three ways in a batch reaches the store as one string
    spellings = [r'"/tmp/x y/c\"d%d.img"', "'/tmp/x y/c\"d%d.img'", r'/tmp/x\ y/c\"d%d.img']
    batch(fleet, "".join("disk add q%d --node n2 --file %s --listen 127.0.0.1:%d\n"
                         % (i, sp % i, 4440 + i) for i, sp in enumerate(spellings)))
    rows = fleet.sql("SELECT path FROM disks WHERE name LIKE 'q%' ORDER BY name")
    assert rows == [('/tmp/x y/c"d%d.img' % i,) for i in range(3)]


def test_stops_at_first_failure(fleet):
    before = fleet.dump()
    out, err = batch(fleet, "lvol create --disk nosuch --size 8MiB\n"
                            "lvol create --disk d1 --size 8MiB\n", rc=1)
    assert out == ""
    assert err.splitlines()[0].startswith("diskctl: line 1: ")
    assert "stopped at line 1" in err and "not run" in err
    assert fleet.dump() == before  # line 2 never ran


def test_keep_going_runs_all_and_reports_first(fleet):
    out, err = batch(fleet, "lvol frobnicate\nlvol create --disk nosuch --size 8MiB\n"
                            "lvol create --disk d1 --size 8MiB\n", "--keep-going",
                     rc=2, json_mode=True)
    a = answers(out)
    assert [x["exit"] for x in a] == [2, 1, 0]
    assert "unknown command" in a[0]["error"] and "nosuch" in a[1]["error"]
    assert a[2]["result"] == {"id": 2}
    assert "3 commands, 2 failed (first at line 1, exit 2)" in err


def test_refusals(fleet):
    before = fleet.dump()
    bad = ["batch", "lvol list --db /tmp/other.db", "lvol show '1", 'lvol show "1',
           "lvol list --help", "lvol create --size 8MiB --disk d1 " + "x " * 300,
           "lvol create --size lots --disk d1", "x" * 70000]
    out, err = batch(fleet, "\n".join(bad) + "\n", "--keep-going", rc=2, json_mode=True)
    a = answers(out)
    assert [x["line"] for x in a] == list(range(1, len(bad) + 1))
    assert all(x["exit"] == 2 for x in a), a
    msgs = [x["error"] for x in a]
    assert "another batch" in msgs[0] and "--db" in msgs[1]
    assert "unterminated ' quote" in msgs[2] and 'unterminated " quote' in msgs[3]
    assert "--help" in msgs[4] and "too many words" in msgs[5]
    assert "size" in msgs[6] and "longer than" in msgs[7]
    assert fleet.dump() == before


def test_nul_byte_refused(fleet):
    out, _ = batch(fleet, "lvol show 1\0 x\nlvol show 1\n", "--keep-going", rc=2, json_mode=True)
    a = answers(out)
    assert a[0]["exit"] == 2 and "NUL" in a[0]["error"]
    assert a[1]["exit"] == 0 and a[1]["result"]["id"] == 1


def test_text_help_inside_batch(fleet):
    out, _ = batch(fleet, "lvol create --help\n")
    assert out.startswith("usage: diskctl lvol create")


def test_coprocess_answers_each_line_before_the_next(fleet):
    """A program writes one line, reads its answer, then writes the next: the
    answer must arrive while stdin is still open (flushed per command)."""
    p = subprocess.Popen([fleet.bin, "--db", fleet.db, "--json", "batch"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fleet.env(), bufsize=0)
    try:
        for i in range(2, 7):
            p.stdin.write(b"lvol create --disk d1 --size 8MiB\n")
            ans = json.loads(p.stdout.readline())
            assert ans["exit"] == 0 and ans["result"] == {"id": i}
        # --wait inside a batch: the answer comes when the agent (SQL here) is done
        p.stdin.write(b"lvol create --disk d1 --size 8MiB --wait=20\n")
        helpers.wait_for(lambda: fleet.sql("SELECT id FROM lvols WHERE id=7"), 10, 0.01, "row 7")
        time.sleep(0.1)
        fleet.sql("UPDATE lvols SET state='READY' WHERE id=7")
        t0 = time.time()
        ans = json.loads(p.stdout.readline())
        assert ans["exit"] == 0 and ans["result"] == {"id": 7}
        assert time.time() - t0 < 2
        p.stdin.close()
        assert p.wait(timeout=10) == 0
        err = p.stderr.read().decode()
        assert "lvol 7: CREATING" in err and "lvol 7: READY" in err  # progress stays on stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_wait_failure_inside_batch_carries_reason(fleet):
    p = subprocess.Popen([fleet.bin, "--db", fleet.db, "--json", "batch"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fleet.env(), bufsize=0)
    try:
        p.stdin.write(b"lvol create --disk d1 --size 8MiB --wait=20\nlvol show 1\n")
        p.stdin.close()
        helpers.wait_for(lambda: fleet.sql("SELECT id FROM lvols WHERE id=2"), 10, 0.01, "row 2")
        fleet.sql("UPDATE lvols SET state='FAILED', reason='no room' WHERE id=2")
        out = p.stdout.read().decode()
        assert p.wait(timeout=10) == 1
        a = answers(out)
        assert len(a) == 1  # stopped: line 2 not run
        assert a[0]["result"] == {"id": 2} and a[0]["error"] == "lvol 2 FAILED: no room"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
