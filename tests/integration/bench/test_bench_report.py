"""bench/mkreport on a synthetic set of figures (no real benchmark runs):
report.json fields, the Markdown table, PNG charts; and bench/run-all's
parsers on sample lines in the formats the bench/<area>/run scripts print."""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MKREPORT = os.path.join(ROOT, "bench", "mkreport")
RUNALL = os.path.join(ROOT, "bench", "run-all")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SYNTH = {
    "machine": {"cpu_model": "Test CPU", "cores": 2, "memory_mib": 4096, "kernel": "6.1.0",
                "compiler": "gcc 12.2.0", "git_commit": "0123456789abcdef", "date": "2026-11-25 19:00 UTC",
                "loadavg_start": 3.5, "loadavg_end": 2.0, "mode": "quick"},
    "figures": [
        {"id": "rpc.seq", "area": "rpc", "name": "JSON-RPC calls, sequential", "unit": "calls/s",
         "better": "higher", "runs": [30000, 20000, 40000], "spdk": 124.8,
         "target": {"op": ">=", "value": 20000}},
        {"id": "nvme.rr", "area": "nvme", "name": "randread 4 KiB QD32", "unit": "IOPS",
         "better": "higher", "runs": [150000], "spdk": 371000, "target": {"op": ">=", "value": 200000}},
        {"id": "tgt.lv", "area": "tgt", "name": "get_lvols p50 | 10000", "unit": "ms", "better": "lower",
         "runs": [5.5, 4.0, 6.0, 5.0], "spdk": 11.0, "spdk_text": "11 @1,000",
         "target": {"op": "<", "value": 20}, "note": "SPDK at 1,000"},
        {"id": "blob.resize", "area": "blob", "name": "lvol resize", "unit": "ops/s", "better": "higher",
         "runs": [21000, 22000], "spdk": None, "target": None},
    ],
    "missing": ["something not measured"],
    "problems": ["bench/x run 1: exit code 1"],
    "scaling": [{"lvols": 100, "creates_per_s": 200, "verify_ms": 0.5},
                {"lvols": 1000, "creates_per_s": 180, "verify_ms": 3.0},
                {"lvols": 10000, "creates_per_s": 150, "verify_ms": 30.0}],
}


def run_mkreport(tmp, data, *extra):
    inp = os.path.join(tmp, "figures.json")
    with open(inp, "w") as f:
        json.dump(data, f)
    out = os.path.join(tmp, "report")
    r = subprocess.run([sys.executable, MKREPORT, "--in", inp, "--out", out] + list(extra),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    with open(os.path.join(out, "report.md")) as f:
        md = f.read()
    return out, rep, md, r.stdout


def test_json_figures(tmp_path):
    out, rep, md, stdout = run_mkreport(str(tmp_path), SYNTH, "--no-charts")
    assert rep["machine"]["cpu_model"] == "Test CPU"
    assert rep["machine"]["loadavg_start"] == 3.5
    f = {x["id"]: x for x in rep["figures"]}
    seq = f["rpc.seq"]
    assert (seq["median"], seq["min"], seq["max"], seq["n"]) == (30000, 20000, 40000, 3)
    assert seq["ratio"] == pytest.approx(30000 / 124.8)
    assert seq["status"] == "PASS"
    assert f["nvme.rr"]["status"] == "FAIL"
    assert f["nvme.rr"]["ratio"] == pytest.approx(150000 / 371000)
    lv = f["tgt.lv"]
    assert lv["median"] == 5.25
    assert lv["ratio"] == pytest.approx(11.0 / 5.25)  # lower is better: SPDK/ours
    assert lv["status"] == "PASS"
    assert f["blob.resize"]["ratio"] is None and f["blob.resize"]["status"] == "-"
    assert rep["summary"] == {"figures": 4, "with_spdk": 3, "pass": 2, "fail": 1, "no_target": 1}
    assert "something not measured" in rep["missing"]
    assert rep["problems"] == ["bench/x run 1: exit code 1"]


def test_markdown_table(tmp_path):
    out, rep, md, stdout = run_mkreport(str(tmp_path), SYNTH, "--no-charts")
    lines = [l for l in md.splitlines() if l.startswith("|")]
    assert lines[0].startswith("| figure |") and "SPDK" in lines[0] and "ratio" in lines[0]
    rows = [l for l in lines[2:] if not l.startswith("| **bench/")]
    assert len(rows) == 4
    assert len(lines) == 2 + 4 + 4  # one heading row per area
    cols = {len(r.strip("|").split("|")) for r in lines}
    assert cols == {8}, "a cell broke the table: %s" % cols  # the '|' in a name is escaped
    seq = next(r for r in rows if "sequential" in r)
    assert "30,000" in seq and "125" in seq and "240x" in seq and "PASS" in seq
    rr = next(r for r in rows if "randread" in r)
    assert "0.40x" in rr and "FAIL" in rr and "371,000" in rr
    assert "11 @1,000" in md and "Test CPU" in md and "something not measured" in md
    assert "bench/x run 1: exit code 1" in md and "PROBLEM: bench/x" in stdout
    assert "figure" in stdout and "30,000" in stdout  # the table is printed too


def test_png_charts(tmp_path):
    if not shutil.which("gnuplot"):
        pytest.skip("gnuplot not installed (scripts/install-deps)")
    out, rep, md, stdout = run_mkreport(str(tmp_path), SYNTH)
    assert set(rep["charts"]) == {"compare.png", "ratio.png", "scaling.png"}
    for c in rep["charts"]:
        with open(os.path.join(out, c), "rb") as f:
            head = f.read(8)
        assert head == PNG_MAGIC, c
        assert os.path.getsize(os.path.join(out, c)) > 2000, c
        assert "](%s)" % c in md


def test_no_scaling_is_reported_missing(tmp_path):
    if not shutil.which("gnuplot"):
        pytest.skip("gnuplot not installed (scripts/install-deps)")
    data = dict(SYNTH, scaling=[])
    out, rep, md, stdout = run_mkreport(str(tmp_path), data)
    assert "scaling.png" not in rep["charts"]
    assert any("scaling" in m for m in rep["missing"])
    assert not os.path.exists(os.path.join(out, "scaling.png"))


def load_runall():
    loader = importlib.machinery.SourceFileLoader("bench_run_all", RUNALL)
    spec = importlib.util.spec_from_loader("bench_run_all", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# One sample line per figure kind, in the format each bench/<area>/run prints.
SAMPLES = {
    "rpc": ("sequential                        33814 calls/s   SPDK     125 calls/s   x271\n"
            "pipelined depth 64               213504 calls/s   SPDK    7839 calls/s   x27\n"
            "8 clients, sequential             47732 calls/s   SPDK       n/a\n"
            "disktgt idle: 0.5 % of one core over 1 s; RSS 2.0 MiB (SPDK: 100 % of its core)\n"
            "listing: bdev_lvol_get_lvols p50 1.55 ms with 1000 lvols (SPDK 11 ms)\n"
            "listing: bdev_get_bdevs p50 45.58 ms with 1001 bdevs (SPDK 28-47 ms)\n"
            "snapshot: sequential 541 /s (100), 128 in flight 1000 /s (400) (SPDK: 124.8 /s sequential)\n"
            "footprint: RSS 7.7 MiB with 2000 lvols (500 of them snapshots), 2877 bytes per lvol over the "
            "empty lvstore; idle CPU 0.0 % of one core over 1 s\n"
            "lvol create, sequential: 984 /s (500; SPDK 124.8 /s -> 7.9x, target >= 10x), disktgt CPU 305 us each;"
            " load 5.1\n"
            "lvol delete, sequential: 1312 /s (500; SPDK 124.8 /s -> 10.5x), disktgt CPU 250 us each\n"
            "listing: bdev_lvol_get_lvols p50 4.40 ms with 10000 lvols (5 runs; target < 20 ms: met), disktgt CPU"
            " 1.8 ms per call; load 5.0\n"
            "listing: bdev_get_bdevs p50 12.60 ms with 10001 bdevs (5 runs; target < 20 ms: met), disktgt CPU"
            " 4.6 ms per call; load 5.0\n",
            {"rpc.seq_create_disk": 984, "rpc.seq_create_disk_cpu": 305, "rpc.seq_delete_disk": 1312,
             "rpc.bdev_lvol_get_lvols_10000": 4.4, "rpc.bdev_lvol_get_lvols_10000_cpu": 1.8,
             "rpc.bdev_get_bdevs_10001": 12.6, "rpc.bdev_get_bdevs_10001_cpu": 4.6,
             "rpc.seq": 33814, "rpc.pipe64": 213504, "rpc.clients8": 47732, "rpc.idle_cpu": 0.5,
             "rpc.get_lvols_1000": 1.55, "rpc.get_bdevs_1001": 45.58, "rpc.snap_seq": 541, "rpc.snap_pipe": 1000,
             "rpc.rss_lvols": 7.7, "rpc.rss_per_lvol": 2877, "rpc.idle_cpu_lvols": 0.0}),
    "blob": ("blob bench: file=/tmp/x lvols=10000 depth=128 cluster=1048576 bytes\n"
             "creates:     21753 /s  (2000 in 0.09 s)   SPDK 10,000-14,000 /s -> ratio 1.81x of 12,000\n"
             "snapshots:    1522 /s sequential (50, 300 us CPU each), 1574 /s 128 in flight (200, 280 us CPU"
             " each)   SPDK 124.8 /s sequential\n"
             "memory:       1460 bytes per lvol (heap growth)\n"
             "load:         41.8 ms  clean, 10000 lvols (target < 1,000 ms)\n",
             {"blob.snap_seq": 1522, "blob.snap_pipe": 1574, "blob.create": 21753, "blob.mem_per_lvol": 1460, "blob.load_clean": 41.8}),
    "tgt": ("metric                                        disktgt disk disktgt tmpfs              SPDK  ratio\n"
            "lvol create, sequential (calls/s)                      983          1667             124.8  7.88x\n"
            "  disktgt CPU per create, sequential (us)              305            85                 -  -\n"
            "lvstore create, 1 TiB sparse file (ms)                70.0          56.0                 -  -\n"
            "bdev_lvol_get_lvols p50, 10000 lvols (ms)*             3.16          1.07         11 @1,000  -\n"
            "  disktgt CPU per bdev_get_bdevs (ms)                 4.70          4.60                 -  -\n",
            {"tgt.cpu_seq_create.disk": 305, "tgt.lvs_init_1t.tmpfs": 56.0, "tgt.cpu_get_bdevs.disk": 4.7,
             "tgt.seq_create.disk": 983, "tgt.seq_create.tmpfs": 1667, "tgt.get_lvols.tmpfs": 1.07}),
    "nvme": ("malloc     randread      4K  32        82571      322.5     387.4    4390.9    7929.9       371000    0.22"
             "    202.8      57      4.22       2.98    3 117180-140243\n"
             "thick lvol write        128K   8         2884      360.6    2760.5   11141.1   37224.4            -       -\n"
             "malloc     write zeroes: zeroed 134217728 bytes in 0.275 s: 0.45 GiB/s\n",
             {"nvme.malloc.randread.4k.qd32.tgt_us": 4.22, "nvme.malloc.randread.4k.qd32.perf_us": 2.98,
              "nvme.malloc.randread.4k.qd32.iops": 82571, "nvme.thick_lvol.write.128k.qd8.mibs": 360.6,
              "nvme.malloc.zeroes": 0.45}),
    "agent": ("zeroing: 10 GiB grow of a thick lvol READY in 1.2 s: 8.22 GiB/s (NVMe/TCP)\n"
              "create --wait latency: n=50 p50 22.4 ms p99 138.0 ms max 138.0 ms\n"
              "throughput: 200 creates (thick/thin mixed) submitted in 5.13 s, all READY after 5.27 s: 38 creates/s\n"
              "scaling: lvols=100 creates_per_s=210.5 verify_ms=0.8\n"
              "scaling: lvols=1000 creates_per_s=190 verify_ms=nan\n"
              "spdk timing: target answers like spdk_tgt (--rpc-poll-interval 4ms, one call 6.2 ms); create --wait "
              "n=10 p50 77.8 ms p99 97.1 ms; agent alone 100 CREATING rows READY in 4.88 s: 20.5 creates/s\n"
              "create --wait latency tick-only: n=30 p50 376.3 ms p99 967.7 ms max 967.7 ms (wakeup = off, tick 1 s)\n"
              "resources: lvols=1000 agent idle cpu 6.66 % rss 21.4 MiB; agent busy cpu 35 % rss peak 21.4 MiB; "
              "disktgt rss 11.2 MiB idle cpu 0.67 % (target=disktgt)\n"
              "agent throughput: 3000 creates (CREATING rows inserted in 3 steps, node 0 -> 3000 lvols) in 6.61 s: "
              "454 creates/s, 0.65 ms agent CPU per create\n",
              {"agent.zeroing": 8.22, "agent.create_p50": 22.4, "agent.throughput": 38,
               "agent.scale100.creates_per_s": 210.5, "agent.scale100.verify_ms": 0.8,
               "agent.scale1000.creates_per_s": 190, "agent.create_tick_p50": 376.3,
               "agent.res1000.idle_cpu": 6.66, "agent.res1000.idle_rss": 21.4, "agent.res1000.tgt_rss": 11.2,
               "agent.bulk3000": 454, "agent.bulk3000_cpu": 0.65,
               "agent.spdk_create_p50": 77.8, "agent.spdk_alone": 20.5}),
    "fleet": ("create latency (NOTIFY, diskctl --wait, 30 samples): p50 12.5 ms p99 40.0 ms max 41.0 ms; "
              "agent created->READY p50 5 ms p99 9 ms\n"
              "create latency (NOTIFY, connected client: diskctl batch, 30 samples): p50 8.2 ms p99 20.6 ms "
              "max 20.6 ms; in diskctl p50 8.0 ms\n"
              "fleet throughput: 300 placed creates on 3 nodes READY in 3.0 s = 100 creates/s (submitted)\n"
              "fleet throughput (4 diskctl batch clients): 300 placed creates on 3 nodes READY in 2.5 s = "
              "120 creates/s (submitted in 2.4 s = 124/s; thick lvols per disk so far d1=200)\n",
              {"fleet.create_p50": 12.5, "fleet.throughput": 100, "fleet.create_p50_connected": 8.2,
               "fleet.create_p99_connected": 20.6, "fleet.throughput_batch": 120}),
}


@pytest.mark.parametrize("area", sorted(SAMPLES))
def test_parsers(area):
    mod = load_runall()
    text, want = SAMPLES[area]
    got = {f["id"]: f for f in mod.PARSERS[area](text)}
    for k, v in want.items():
        assert k in got, "%s: %s not parsed (got %s)" % (area, k, sorted(got))
        assert got[k]["value"] == pytest.approx(v)
        assert got[k]["unit"] and got[k]["name"]


def test_scaling_points_from_agent_lines():
    mod = load_runall()
    figs = mod.parse_agent(SAMPLES["agent"][0])
    assert "agent.scale1000.verify_ms" not in {f["id"] for f in figs}  # nan = not measured
    byid = {}
    for f in figs:
        f["runs"] = [f.pop("value")]
        byid[f["id"]] = f
    byid["agent.scale100.creates_per_s"]["runs"] += [100.0, 300.0]
    pts = mod.scaling_points(byid.values())
    assert pts == [{"lvols": 100, "creates_per_s": 210.5, "verify_ms": 0.8},
                   {"lvols": 1000, "creates_per_s": 190.0}]


def test_targets_follow_the_issue():
    mod = load_runall()
    rpc = {f["id"]: f for f in mod.parse_rpc(SAMPLES["rpc"][0])}
    assert rpc["rpc.seq"]["target"] == {"op": ">=", "value": 20000}
    assert rpc["rpc.pipe64"]["target"] == {"op": ">=", "value": 100000}
    assert rpc["rpc.pipe64"]["spdk"] == 7839
    nv = {f["id"]: f for f in mod.parse_nvme(SAMPLES["nvme"][0])}
    assert nv["nvme.malloc.randread.4k.qd32.iops"]["target"] == {"op": ">=", "value": 200000}
    blob = {f["id"]: f for f in mod.parse_blob(SAMPLES["blob"][0])}
    assert blob["blob.load_clean"]["target"] == {"op": "<", "value": 1000}
    tgt = {f["id"]: f for f in mod.parse_tgt(SAMPLES["tgt"][0])}
    assert tgt["tgt.get_lvols.disk"]["target"] == {"op": "<", "value": 20}
    assert rpc["rpc.seq_create_disk"]["target"] == {"op": ">=", "value": 1248.0}
    assert rpc["rpc.bdev_get_bdevs_10001"]["target"] == {"op": "<", "value": 20}
