"""Fault injection (disktgt_inject_fault, --enable-fault-injection only) and
process-level crash behaviour: SIGTERM shuts down cleanly, SIGKILL loses
nothing that was acknowledged."""
import os
import re
import signal

import helpers
from tgt_lib import Target, call_err, call_ok, disktgt_binary, make_sparse

MIB = 1 << 20


def store(c, workdir, name="lvs0"):
    path = os.path.join(workdir, name + ".img")
    if not os.path.exists(path):
        make_sparse(path, 128 * MIB)
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio0", "block_size": 4096})
    return path


def reopen(target, path):
    c = target.client()
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio0", "block_size": 4096})
    call_ok(c, "bdev_wait_for_examine")
    return c


def last_load_dirty(target):
    """dirty flag of the last "store loaded" line of the blob layer's log."""
    lines = [l for l in target.proc.output().splitlines() if "store loaded bdev=" in l]
    assert lines, "no store load logged"
    m = re.search(r"dirty=(\d)", lines[-1])
    assert m, lines[-1]
    return m.group(1) == "1"


def names(c):
    return [lv["name"] for lv in call_ok(c, "bdev_lvol_get_lvols")]


def test_method_absent_without_flag(workdir):
    sock = os.path.join(workdir, "plain.sock")
    p = helpers.Proc([disktgt_binary(), "-r", sock], os.path.join(workdir, "plain.log"))
    try:
        helpers.wait_socket(sock, p)
        c = helpers.RpcClient(sock)
        assert c.call("disktgt_inject_fault", {"method": "x"})["error"]["code"] == -32601
        assert "disktgt_inject_fault" not in c.call("rpc_get_methods")["result"]
        c.close()
    finally:
        assert p.stop() == 0
        p.assert_clean()


def test_error_injection_next_n_calls(target, workdir):
    c = target.client()
    store(c, workdir)
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
    call_ok(c, "disktgt_inject_fault", {"method": "bdev_lvol_create", "action": "error", "count": 2,
                                        "code": -5, "message": "Input/output error"})
    args = {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "lvs0"}
    assert call_err(c, "bdev_lvol_create", args) == (-5, "Input/output error")
    assert call_err(c, "bdev_lvol_create", args) == (-5, "Input/output error")
    assert names(c) == []                      # the method did not run
    call_ok(c, "bdev_lvol_create", args)       # third call: back to normal
    assert names(c) == ["v"]
    # count 0 clears
    call_ok(c, "disktgt_inject_fault", {"method": "bdev_lvol_delete", "count": 5})
    call_ok(c, "disktgt_inject_fault", {"method": "bdev_lvol_delete", "count": 0})
    call_ok(c, "bdev_lvol_delete", {"name": "lvs0/v"})
    assert call_err(c, "disktgt_inject_fault", {"method": "x", "action": "bogus"})[0] == -32602


def test_drop_reply_runs_the_operation(target, workdir):
    c = target.client()
    store(c, workdir)
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
    call_ok(c, "disktgt_inject_fault", {"method": "bdev_lvol_create", "action": "drop_reply"})
    c.send_raw('{"jsonrpc":"2.0","id":100,"method":"bdev_lvol_create","params":'
               '{"lvol_name":"dropped","size_in_mib":4,"lvs_name":"lvs0"}}')
    # no reply ever comes for id 100; the next reply on the connection is 101's
    c.send_raw('{"jsonrpc":"2.0","id":101,"method":"spdk_get_version"}')
    resp, _ = c.recv_value()
    assert resp["id"] == 101
    # ... and the operation itself ran (the agent must treat a lost reply as "unknown")
    c2 = target.client()
    helpers.wait_for(lambda: names(c2) == ["dropped"], 10, what="dropped create to land")


def test_exit_after_reply_operation_is_durable(target, workdir):
    c = target.client()
    path = store(c, workdir)
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
    call_ok(c, "disktgt_inject_fault", {"method": "bdev_lvol_create", "action": "exit_after_reply"})
    uuid = call_ok(c, "bdev_lvol_create", {"lvol_name": "last", "size_in_mib": 4, "lvs_name": "lvs0"})
    helpers.wait_for(lambda: not target.proc.alive(), 20, what="disktgt exit")
    assert target.stop(expect_rc=None) != 0
    target.start()
    c = reopen(target, path)
    lv = call_ok(c, "bdev_lvol_get_lvols")
    assert [(x["name"], x["uuid"]) for x in lv] == [("last", uuid)]


def test_sigterm_clean_and_sigkill_loses_nothing_acknowledged(target, workdir):
    c = target.client()
    path = store(c, workdir)
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
    made = [call_ok(c, "bdev_lvol_create", {"lvol_name": "v%d" % i, "size_in_mib": 4, "lvs_name": "lvs0",
                                            "thin_provision": i % 2 == 0}) for i in range(6)]
    c.close()
    assert target.stop() == 0                   # SIGTERM: clean shutdown, exit 0
    target.start()
    c = reopen(target, path)
    assert [lv["uuid"] for lv in call_ok(c, "bdev_lvol_get_lvols")] == made
    assert not last_load_dirty(target)          # SIGTERM marked the store clean
    more = [call_ok(c, "bdev_lvol_create", {"lvol_name": "k%d" % i, "size_in_mib": 4, "lvs_name": "lvs0"})
            for i in range(4)]
    call_ok(c, "bdev_lvol_delete", {"name": "lvs0/v0"})
    c.close()
    target.proc.p.send_signal(signal.SIGKILL)
    target.proc.p.wait(20)
    target.stop(expect_rc=None)
    target.start()
    c = reopen(target, path)
    assert last_load_dirty(target)              # SIGKILL: dirty load, nothing lost
    assert [lv["uuid"] for lv in call_ok(c, "bdev_lvol_get_lvols")] == made[1:] + more
    st = call_ok(c, "bdev_lvol_get_lvstores")[0]
    thick = sum(1 for i in range(1, 6) if i % 2 == 1) + 4
    assert st["free_clusters"] == st["total_data_clusters"] - thick


def test_second_target_instance_uses_own_socket(workdir):
    # two targets side by side (separate sockets, no shared state)
    a = Target(workdir, "a")
    b = Target(workdir, "b")
    try:
        ca, cb = a.client(), b.client()
        call_ok(ca, "bdev_malloc_create", {"num_blocks": 64, "block_size": 512, "name": "OnlyA"})
        assert call_err(cb, "bdev_get_bdevs", {"name": "OnlyA"}) == (-19, "No such device")
    finally:
        a.stop()
        b.stop()


def test_sigterm_while_clients_keep_calling(target, workdir):
    """Requests arriving while tgt_destroy() waits for the stores to unload are
    answered with an error, never run against half-destroyed layers (F's report)."""
    import threading
    c = target.client()
    store(c, workdir)
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio0", "lvs_name": "lvs0"})
    call_ok(c, "nvmf_create_transport", {"trtype": "TCP"})
    stop = threading.Event()

    def hammer():
        try:
            h = target.client()
            while not stop.is_set():
                for m in ("nvmf_get_subsystems", "bdev_lvol_get_lvols", "bdev_get_bdevs"):
                    r = h.call(m)
                    if "error" in r:
                        assert r["error"]["message"] == "disktgt is shutting down"
        except (ConnectionError, OSError):
            pass

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        assert target.stop() == 0
    finally:
        stop.set()
        for th in threads:
            th.join(10)
