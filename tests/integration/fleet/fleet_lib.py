"""Helpers of the fleet tests: storage nodes (a disktgt + a diskengine agent
each, own sockets and ports on loopback) sharing one PostgreSQL database,
driven through diskctl. Built on the agent tests' Node (agent_lib.py)."""
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agent"))
import helpers  # noqa: E402
from agent_lib import Node, disktgt_missing, free_port  # noqa: E402,F401


class FleetNode(Node):
    """Node `name` with disk `disk` on a shared database URL."""

    def __init__(self, db_url, name, disk, d, tick="1s", disk_size=1 << 30):
        super().__init__("disktgt", d, tick=tick, disk_size=disk_size, db=db_url)
        self.name = name
        self.disk_name = disk

    def start_agent(self, env=None, extra=()):
        log = os.path.join(self.dir, "agent.log")
        args = [helpers.binary("diskengine"), "--db", self.db, "--node", self.name,
                "--tick", self.tick] + list(extra)
        self.agent = helpers.Proc(args, log, env=env)
        self.agent_runs.append(self.agent)
        return self.agent

    def setup(self):
        self.ctl("node", "add", self.name, "--rpc-socket", self.sock)
        self.ctl("disk", "add", self.disk_name, "--node", self.name, "--file", self.disk_file,
                 "--listen", "127.0.0.1:%d" % self.port)

    def create(self, size, thin=False, wait=False, hosts=(), disk=None):
        args = ["lvol", "create", "--disk", disk or self.disk_name, "--size", size]
        if thin:
            args.append("--thin")
        for h in hosts:
            args += ["--host", h]
        if wait:
            args.append("--wait=30")
        out = self.ctl(*args).stdout.strip().splitlines()
        return int(out[0].split()[-1])

    def disk(self):
        rows = self.ctl_json("disk", "list")
        if isinstance(rows, dict):
            rows = rows.get("disks", [])
        return [r for r in rows if r["name"] == self.disk_name][0]

    def lvstore_free(self):
        return self.rpc_ok("bdev_lvol_get_lvstores")[0]


def parallel(fn, items, workers=4):
    """Runs fn(item) on `workers` threads; returns results in item order."""
    out = [None] * len(items)
    errs = []
    lock = threading.Lock()
    idx = iter(range(len(items)))

    def run():
        while True:
            with lock:
                i = next(idx, None)
            if i is None:
                return
            try:
                out[i] = fn(items[i])
            except Exception as e:  # noqa: BLE001 - reported below
                errs.append(e)
    ts = [threading.Thread(target=run) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out
