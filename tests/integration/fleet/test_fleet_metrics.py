"""diskengine --metrics-listen on a PostgreSQL node: /metrics is fetched over
HTTP, parsed as the Prometheus text format (every sample line checked), and
the counters move as work happens (ticks, RPC calls, READY lag, DB calls,
lvols by state)."""
import re
import urllib.request

import pytest

from fleet_lib import FleetNode, disktgt_missing, free_port, helpers  # noqa: I001

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)( \d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse(text):
    """{(name, frozenset(labels)): value}; fails on any malformed line."""
    out = {}
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            assert parts[1] in ("HELP", "TYPE"), line
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = {}
        if m.group(3):
            rest = m.group(3)
            while rest:
                lm = LABEL.match(rest)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                rest = rest[lm.end():]
        v = m.group(4)
        value = float("inf") if v == "+Inf" else float(v)
        key = (m.group(1), frozenset(labels.items()))
        assert key not in out, "duplicate sample %r" % line
        out[key] = value
    return out, types


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def check_histograms(samples, types):
    for name, t in types.items():
        if t != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append(
                    (float("inf") if le == "+Inf" else float(le), v))
        for labels, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), "%s buckets not cumulative" % name
            assert buckets[-1][0] == float("inf")
            assert buckets[-1][1] == samples.get((name + "_count", labels)), name


@pytest.fixture
def metrics_node(pg_url):
    missing = disktgt_missing()
    if missing is None or missing:
        pytest.skip("disktgt not built or lacks methods: %s" % missing)
    d = helpers.short_tmpdir("de-fmet-")
    n = FleetNode(pg_url, "n1", "d1", d, tick="1s")
    n.start_target()
    n.setup()
    yield n
    rc = n.close()
    assert rc in (0, None), n.agent_runs[-1].output()[-3000:]


def test_metrics_counters_move(metrics_node):
    n = metrics_node
    port = free_port()
    n.start_agent(extra=["--metrics-listen", "127.0.0.1:%d" % port])
    url = "http://127.0.0.1:%d/metrics" % port

    def scrape():
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
            assert r.headers.get("Content-Type", "").startswith("text/plain")
            return parse(r.read().decode())
    try:
        helpers.wait_for(lambda: _ok(scrape), 20, 0.1, "metrics endpoint")
    except TimeoutError:
        pytest.fail("no /metrics:\n" + n.agent.output()[-2000:])
    helpers.wait_for(lambda: n.disk()["lvstore_state"] == "loaded", 30, 0.05, "lvstore loaded")
    s0, types = scrape()
    check_histograms(s0, types)
    ids = [n.create("4MiB", wait=True) for _ in range(3)]

    def moved():
        s1, t1 = scrape()
        check_histograms(s1, t1)
        return (get(s1, "diskengine_rpc_calls_total", method="bdev_lvol_create", result="ok")
                >= get(s0, "diskengine_rpc_calls_total", method="bdev_lvol_create", result="ok") + 3
                and get(s1, "diskengine_loop_ticks_total", loop="provision")
                > get(s0, "diskengine_loop_ticks_total", loop="provision")
                and get(s1, "diskengine_lvols", state="READY") == len(ids)
                and (get(s1, "diskengine_ready_lag_seconds_count")
                     >= get(s0, "diskengine_ready_lag_seconds_count") + 3)
                and db_calls(s1) > db_calls(s0))
    helpers.wait_for(moved, 20, 0.2, "counters moved")


def db_calls(samples):
    """DB calls counted (histogram _count, or the older plain counter)."""
    return max(get(samples, "diskengine_db_call_seconds_count"),
               get(samples, "diskengine_db_calls_total"))


def _ok(scrape):
    try:
        scrape()
        return True
    except OSError:
        return False

