"""disktgt methods that the golden transcripts do not cover, checked against
SPDK's documented behaviour (doc/jsonrpc.md and the RPC sources of SPDK
v26.09-pre): inflate, decouple_parent, set_read_only, rename_lvstore,
grow_lvstore, aio_rescan, add_host/remove_host, get_listeners/controllers/
qpairs, nvmf_get_stats, framework_get_config, bdev_get_iostat with `names`,
clear_method."""
import os

from tgt_lib import call_err, call_ok, make_sparse

MIB = 1 << 20
NQN = "nqn.2016-06.io.spdk:cnode7"
HOST = "nqn.2014-08.org.nvmexpress:uuid:0f8ee3e2-57b1-4b6c-9b5e-2a1f2d6b1c01"


def setup_store(target, workdir, size=256 * MIB, cluster=4 * MIB, name="lvs0"):
    c = target.client()
    path = make_sparse(os.path.join(workdir, name + ".img"), size)
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio_" + name, "block_size": 4096})
    uuid = call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "Aio_" + name, "lvs_name": name,
                                                   "cluster_sz": cluster})
    return c, path, uuid


def lvol(c, alias):
    lvs = alias.split("/")[0]
    for lv in call_ok(c, "bdev_lvol_get_lvols", {"lvs_name": lvs}):
        if lv["alias"] == alias:
            return lv
    return None


def write(c, name, offset, length, pattern=0x5A):
    return c.call("disktgt_bdev_io", {"name": name, "op": "write", "offset": offset,
                                      "length": length, "pattern": pattern})


def read(c, name, offset, length):
    return call_ok(c, "disktgt_bdev_io", {"name": name, "op": "read", "offset": offset,
                                          "length": length})


# ---------------------------------------------------------------- lvols

def test_inflate_clone_allocates_everything_and_drops_parent(target, workdir):
    c, _, _ = setup_store(target, workdir)
    call_ok(c, "bdev_lvol_create", {"lvol_name": "base", "size_in_mib": 16, "thin_provision": True,
                                    "lvs_name": "lvs0"})
    assert "error" not in write(c, "lvs0/base", 0, 4096, 0x11)
    call_ok(c, "bdev_lvol_snapshot", {"lvol_name": "lvs0/base", "snapshot_name": "snap"})
    call_ok(c, "bdev_lvol_clone", {"snapshot_name": "lvs0/snap", "clone_name": "cl"})
    assert lvol(c, "lvs0/cl")["is_clone"] is True
    assert call_ok(c, "bdev_lvol_inflate", {"name": "lvs0/cl"}) is True
    cl = lvol(c, "lvs0/cl")
    assert cl["is_clone"] is False
    assert cl["num_allocated_clusters"] == 4          # 16 MiB / 4 MiB, every cluster
    assert cl["is_thin_provisioned"] is False
    assert read(c, "lvs0/cl", 0, 4096)["byte"] == 0x11  # parent's data was copied
    bd = call_ok(c, "bdev_get_bdevs", {"name": "lvs0/snap"})[0]["driver_specific"]["lvol"]
    assert bd.get("clones") == ["base"]
    # a thick lvol that is not a clone: nothing to do, still true (spec)
    call_ok(c, "bdev_lvol_create", {"lvol_name": "thick", "size_in_mib": 8, "lvs_name": "lvs0"})
    assert call_ok(c, "bdev_lvol_inflate", {"name": "lvs0/thick"}) is True
    assert call_err(c, "bdev_lvol_inflate", {"name": "lvs0/nope"}) == (-19, "No such device")
    assert call_err(c, "bdev_lvol_inflate", {"name": "lvs0/thick", "x": 1}) == \
        (-32603, "spdk_json_decode_object failed")


def test_decouple_parent_copies_only_allocated_clusters(target, workdir):
    c, _, _ = setup_store(target, workdir)
    call_ok(c, "bdev_lvol_create", {"lvol_name": "base", "size_in_mib": 16, "thin_provision": True,
                                    "lvs_name": "lvs0"})
    assert "error" not in write(c, "lvs0/base", 4 * MIB, 4096, 0x22)   # cluster 1 only
    call_ok(c, "bdev_lvol_snapshot", {"lvol_name": "lvs0/base", "snapshot_name": "snap"})
    call_ok(c, "bdev_lvol_clone", {"snapshot_name": "lvs0/snap", "clone_name": "cl"})
    assert call_ok(c, "bdev_lvol_decouple_parent", {"name": "lvs0/cl"}) is True
    cl = lvol(c, "lvs0/cl")
    assert cl["is_clone"] is False
    assert cl["is_thin_provisioned"] is True
    assert cl["num_allocated_clusters"] == 1
    assert read(c, "lvs0/cl", 4 * MIB, 4096)["byte"] == 0x22
    assert read(c, "lvs0/cl", 0, 4096)["byte"] == 0
    assert call_err(c, "bdev_lvol_decouple_parent", {"name": "nope"}) == (-19, "No such device")


def test_set_read_only_blocks_writes_and_leaves_no_trace(target, workdir):
    c, _, _ = setup_store(target, workdir)
    call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 8, "lvs_name": "lvs0"})
    assert "error" not in write(c, "lvs0/v", 0, 4096)
    before_lv = lvol(c, "lvs0/v")
    before_bd = call_ok(c, "bdev_get_bdevs", {"name": "lvs0/v"})
    assert call_ok(c, "bdev_lvol_set_read_only", {"name": "lvs0/v"}) is True
    r = write(c, "lvs0/v", 0, 4096)
    assert "error" in r, r
    assert read(c, "lvs0/v", 0, 4096)["byte"] == 0x5A
    assert lvol(c, "lvs0/v") == before_lv
    assert call_ok(c, "bdev_get_bdevs", {"name": "lvs0/v"}) == before_bd
    assert call_err(c, "bdev_lvol_set_read_only", {"name": "lvs0/zz"}) == (-19, "No such device")


def test_read_only_survives_restart(target, workdir):
    c, _, _ = setup_store(target, workdir)
    call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 8, "lvs_name": "lvs0"})
    call_ok(c, "bdev_lvol_set_read_only", {"name": "lvs0/v"})
    c.close()
    target.restart()
    c = target.client()
    call_ok(c, "bdev_aio_create", {"filename": os.path.join(workdir, "lvs0.img"), "name": "Aio_lvs0",
                                   "block_size": 4096})
    call_ok(c, "bdev_wait_for_examine")
    assert "error" in write(c, "lvs0/v", 0, 4096)


def test_rename_lvstore_renames_every_alias(target, workdir):
    c, _, uuid = setup_store(target, workdir)
    lv_uuid = call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "lvs0"})
    assert call_ok(c, "bdev_lvol_rename_lvstore", {"old_name": "lvs0", "new_name": "lvsX"}) is True
    st = call_ok(c, "bdev_lvol_get_lvstores", {"uuid": uuid})[0]
    assert st["name"] == "lvsX"
    assert call_err(c, "bdev_lvol_get_lvstores", {"lvs_name": "lvs0"}) == (-19, "No such device")
    lv = call_ok(c, "bdev_lvol_get_lvols", {"lvs_uuid": uuid})[0]
    assert lv["alias"] == "lvsX/v" and lv["lvs"] == {"name": "lvsX", "uuid": uuid}
    bd = call_ok(c, "bdev_get_bdevs", {"name": "lvsX/v"})[0]
    assert bd["name"] == lv_uuid and bd["aliases"] == ["lvsX/v"]
    assert call_err(c, "bdev_get_bdevs", {"name": "lvs0/v"}) == (-19, "No such device")
    # SPDK: unknown store -> -ENOENT with its own text
    assert call_err(c, "bdev_lvol_rename_lvstore", {"old_name": "nope", "new_name": "x"}) == \
        (-2, "Lvol store nope not found")
    # onto an existing store name: failure from the completion
    setup_store(target, workdir, name="lvs1")
    assert call_err(c, "bdev_lvol_rename_lvstore", {"old_name": "lvsX", "new_name": "lvs1"}) == \
        (-32602, "File exists")


def test_aio_rescan_then_grow_lvstore(target, workdir):
    c, path, uuid = setup_store(target, workdir, size=64 * MIB)
    before = call_ok(c, "bdev_lvol_get_lvstores", {"uuid": uuid})[0]
    nb = call_ok(c, "bdev_get_bdevs", {"name": "Aio_lvs0"})[0]["num_blocks"]
    assert nb == 64 * MIB // 4096
    with open(path, "r+b") as f:
        f.truncate(128 * MIB)
    assert call_ok(c, "bdev_aio_rescan", {"name": "Aio_lvs0"}) is True
    assert call_ok(c, "bdev_get_bdevs", {"name": "Aio_lvs0"})[0]["num_blocks"] == 128 * MIB // 4096
    # the store does not grow by itself
    assert call_ok(c, "bdev_lvol_get_lvstores", {"uuid": uuid})[0]["total_data_clusters"] == \
        before["total_data_clusters"]
    assert call_ok(c, "bdev_lvol_grow_lvstore", {"lvs_name": "lvs0"}) is True
    after = call_ok(c, "bdev_lvol_get_lvstores", {"uuid": uuid})[0]
    assert after["total_data_clusters"] == before["total_data_clusters"] + 16
    assert after["free_clusters"] == before["free_clusters"] + 16
    assert call_err(c, "bdev_aio_rescan", {"name": "nope"}) == (-19, "No such device")
    assert call_err(c, "bdev_lvol_grow_lvstore", {"lvs_name": "nope"}) == (-19, "No such device")
    assert call_err(c, "bdev_lvol_grow_lvstore", {"lvs_name": "lvs0", "uuid": uuid}) == \
        (-22, "Invalid argument")


def test_clear_method_values(target, workdir):
    c = target.client()
    call_ok(c, "bdev_malloc_create", {"num_blocks": 16384, "block_size": 4096, "name": "M0"})
    assert call_err(c, "bdev_lvol_create_lvstore", {"bdev_name": "M0", "lvs_name": "l",
                                                    "clear_method": "bogus"}) == \
        (-22, "Invalid clear_method parameter")
    call_ok(c, "bdev_lvol_create_lvstore", {"bdev_name": "M0", "lvs_name": "l", "clear_method": "none"})
    for cm in ("none", "unmap", "write_zeroes", "WRITE_ZEROES"):
        call_ok(c, "bdev_lvol_create", {"lvol_name": "v_" + cm, "size_in_mib": 4, "lvs_name": "l",
                                        "clear_method": cm})
    assert call_err(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "l",
                                            "clear_method": "bogus"}) == (-22, "Invalid clean_method option")
    assert call_err(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "l",
                                            "clear_method": 3}) == (-32603, "spdk_json_decode_object failed")


# ----------------------------------------------------------------- bdevs

def test_iostat_names(target, workdir):
    c = target.client()
    call_ok(c, "bdev_malloc_create", {"num_blocks": 1024, "block_size": 4096, "name": "M0"})
    call_ok(c, "bdev_malloc_create", {"num_blocks": 1024, "block_size": 4096, "name": "M1"})
    call_ok(c, "bdev_wait_for_examine")
    # examine may have read the new bdev already (as SPDK's does): count deltas
    b0 = call_ok(c, "bdev_get_iostat", {"names": ["M1"]})["bdevs"][0]
    assert "error" not in write(c, "M1", 0, 8192)
    read(c, "M1", 0, 4096)
    st = call_ok(c, "bdev_get_iostat", {"names": ["M1"]})
    assert list(st)[:3] == ["tick_rate", "ticks", "bdevs"]
    assert st["tick_rate"] > 0
    assert [b["name"] for b in st["bdevs"]] == ["M1"]
    b = st["bdevs"][0]
    assert b["bytes_written"] - b0["bytes_written"] == 8192
    assert b["num_write_ops"] - b0["num_write_ops"] == 1
    assert b["bytes_read"] - b0["bytes_read"] == 4096 and b["num_read_ops"] - b0["num_read_ops"] == 1
    assert list(b) == ["name", "bytes_read", "num_read_ops", "bytes_written", "num_write_ops",
                       "bytes_unmapped", "num_unmap_ops", "bytes_copied", "num_copy_ops",
                       "read_latency_ticks", "max_read_latency_ticks", "min_read_latency_ticks",
                       "write_latency_ticks", "max_write_latency_ticks", "min_write_latency_ticks",
                       "unmap_latency_ticks", "max_unmap_latency_ticks", "min_unmap_latency_ticks",
                       "copy_latency_ticks", "max_copy_latency_ticks", "min_copy_latency_ticks",
                       "io_error"]
    assert b["io_error"] == {}
    everything = call_ok(c, "bdev_get_iostat")
    assert [x["name"] for x in everything["bdevs"]] == ["M0", "M1"]
    assert call_err(c, "bdev_get_iostat", {"names": ["nope"]}) == (-19, "No such device")
    # the old singular parameter is gone in this SPDK version (spec)
    assert call_err(c, "bdev_get_iostat", {"name": "M1"}) == (-32603, "spdk_json_decode_object failed")


def test_get_bdevs_timeout_waits_for_the_bdev(target, workdir):
    c = target.client()
    c2 = target.client()
    c.send_raw('{"jsonrpc":"2.0","id":1,"method":"bdev_get_bdevs","params":{"name":"Late","timeout_ms":5000}}')
    call_ok(c2, "bdev_malloc_create", {"num_blocks": 256, "block_size": 512, "name": "Late"})
    resp, _ = c.recv_value()
    assert resp["result"][0]["name"] == "Late"
    assert call_err(c2, "bdev_get_bdevs", {"name": "Never", "timeout_ms": 50}) == (-19, "No such device")


def test_claims_and_hot_remove_of_a_base_bdev(target, workdir):
    c, path, uuid = setup_store(target, workdir)
    base = call_ok(c, "bdev_get_bdevs", {"name": "Aio_lvs0"})[0]
    assert base["claimed"] is True and base["claim_type"] == "exclusive_write"
    call_ok(c, "bdev_malloc_create", {"num_blocks": 256, "block_size": 512, "name": "M"})
    m = call_ok(c, "bdev_get_bdevs", {"name": "M"})[0]
    assert m["claimed"] is False and "claim_type" not in m
    lv = call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "lvs0"})
    nvmf_setup(c)
    call_ok(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "lvs0/v"}})
    # SPDK hot-removes: the store is unloaded (not destroyed), its lvols and their
    # namespaces go away, and the same file brings everything back
    assert call_ok(c, "bdev_aio_delete", {"name": "Aio_lvs0"}) is True
    assert call_ok(c, "bdev_lvol_get_lvstores") == []
    assert call_err(c, "bdev_get_bdevs", {"name": lv}) == (-19, "No such device")
    assert call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"] == []
    call_ok(c, "bdev_aio_create", {"filename": path, "name": "Aio_lvs0", "block_size": 4096})
    call_ok(c, "bdev_wait_for_examine")
    assert call_ok(c, "bdev_lvol_get_lvstores")[0]["uuid"] == uuid
    assert call_ok(c, "bdev_get_bdevs", {"name": "lvs0/v"})[0]["name"] == lv
    assert call_err(c, "bdev_aio_delete", {"name": "M"}) == (-19, "No such device")  # not an aio bdev
    assert call_ok(c, "bdev_malloc_delete", {"name": "M"}) is True


# ------------------------------------------------------------------ nvmf

def nvmf_setup(c):
    call_ok(c, "nvmf_create_transport", {"trtype": "TCP"})
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": False,
                                         "serial_number": "DE000000000000000007"})


def test_hosts(target):
    c = target.client()
    nvmf_setup(c)
    assert call_ok(c, "nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST}) is True
    sub = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]
    assert sub["hosts"] == [{"nqn": HOST}] and sub["allow_any_host"] is False
    assert call_err(c, "nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST}) == (-32603, "Internal error")
    assert call_ok(c, "nvmf_subsystem_remove_host", {"nqn": NQN, "host": HOST}) is True
    assert call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["hosts"] == []
    assert call_err(c, "nvmf_subsystem_remove_host", {"nqn": NQN, "host": HOST}) == (-32603, "Internal error")
    assert call_err(c, "nvmf_subsystem_add_host", {"nqn": "nqn.2016-06.io.spdk:x", "host": HOST}) == \
        (-32602, "Subsystem with NQN 'nqn.2016-06.io.spdk:x' not found")
    assert call_err(c, "nvmf_subsystem_add_host", {"nqn": NQN}) == (-32602, "Invalid parameters")


def test_listeners_controllers_qpairs_stats(target):
    c = target.client()
    nvmf_setup(c)
    addr = {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "0"}
    # port 0 is refused by SPDK's address parsing? use a real free port instead
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
    s.close()
    addr["trsvcid"] = port
    call_ok(c, "nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": addr})
    ls = call_ok(c, "nvmf_subsystem_get_listeners", {"nqn": NQN})
    assert ls == [{"address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port}}]
    assert call_ok(c, "nvmf_subsystem_get_controllers", {"nqn": NQN}) == []
    assert call_ok(c, "nvmf_subsystem_get_qpairs", {"nqn": NQN}) == []
    for m in ("nvmf_subsystem_get_listeners", "nvmf_subsystem_get_controllers", "nvmf_subsystem_get_qpairs"):
        assert call_err(c, m, {"nqn": "nqn.2016-06.io.spdk:x"}) == \
            (-32602, "Subsystem with NQN 'nqn.2016-06.io.spdk:x' not found")
        assert call_err(c, m) == (-32602, "Invalid parameters")
    st = call_ok(c, "nvmf_get_stats")
    assert list(st) == ["tick_rate", "poll_groups"]
    pg = st["poll_groups"][0]
    assert pg["name"] == "nvmf_tgt_poll_group_000"
    for k in ("admin_qpairs", "io_qpairs", "current_admin_qpairs", "current_io_qpairs",
              "pending_bdev_io", "completed_nvme_io"):
        assert isinstance(pg[k], int)
    assert pg["transports"] == [{"trtype": "TCP"}]
    assert call_ok(c, "nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": addr}) is True
    assert call_ok(c, "nvmf_subsystem_get_listeners", {"nqn": NQN}) == []
    assert call_err(c, "nvmf_subsystem_remove_listener", {"nqn": NQN, "listen_address": addr}) == \
        (-32602, "Invalid parameters")


def test_namespace_options_and_exported_lvol_delete(target, workdir):
    c, _, _ = setup_store(target, workdir)
    nvmf_setup(c)
    u = call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "lvs0"})
    assert call_ok(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {
        "bdev_name": "lvs0/v", "nsid": 5, "eui64": "0011223344556677"}}) == 5
    ns = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"]
    assert ns == [{"nsid": 5, "bdev_name": u, "name": u, "nguid": u.replace("-", "").upper(),
                   "eui64": "0011223344556677", "uuid": u}]
    bd = call_ok(c, "bdev_get_bdevs", {"name": u})[0]
    assert bd["claimed"] is True and bd["claim_type"] == "exclusive_write"
    assert call_err(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "lvs0/v",
                                                                         "nguid": "xyz"}}) == \
        (-32602, "Invalid nguid")
    # deleting the exported lvol succeeds and the namespace disappears (SPDK)
    assert call_ok(c, "bdev_lvol_delete", {"name": "lvs0/v"}) is True
    assert call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"] == []


# ----------------------------------------------------------------- config

def test_framework_get_config_and_restart_with_it(target, workdir):
    c, path, uuid = setup_store(target, workdir)
    nvmf_setup(c)
    call_ok(c, "nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST})
    u = call_ok(c, "bdev_lvol_create", {"lvol_name": "v", "size_in_mib": 4, "lvs_name": "lvs0"})
    call_ok(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "lvs0/v"}})
    subs = call_ok(c, "framework_get_subsystems")
    assert [s["subsystem"] for s in subs] == ["bdev", "nvmf"]
    bcfg = call_ok(c, "framework_get_config", {"name": "bdev"})
    methods = [e["method"] for e in bcfg]
    assert methods == ["bdev_aio_create", "bdev_wait_for_examine"]   # lvols live on disk
    assert bcfg[0]["params"]["filename"] == path
    ncfg = call_ok(c, "framework_get_config", {"name": "nvmf"})
    assert [e["method"] for e in ncfg] == ["nvmf_create_transport", "nvmf_create_subsystem",
                                           "nvmf_subsystem_add_host", "nvmf_subsystem_add_ns"]
    assert call_err(c, "framework_get_config", {"name": "nope"}) == (-32602, "Subsystem 'nope' not found")
    assert call_err(c, "framework_get_config") == (-32602, "Invalid arguments")
    full = call_ok(c, "save_config")
    assert full == {"subsystems": [{"subsystem": "bdev", "config": bcfg},
                                   {"subsystem": "nvmf", "config": ncfg}]}
    # rpc.py's client-side load_config refuses a config with a method missing from
    # rpc_get_methods(current=True): everything we save must be listed there
    current = set(call_ok(c, "rpc_get_methods", {"current": True, "include_aliases": False}))
    assert {e["method"] for s in full["subsystems"] for e in s["config"]} <= current
    before = call_ok(c, "nvmf_get_subsystems")
    c.close()
    cfg_path = os.path.join(workdir, "config.json")
    import json
    with open(cfg_path, "w") as f:
        json.dump(full, f, indent=2)
    target.stop()
    target.args += ["-c", cfg_path]
    target.start()
    c = target.client()
    assert call_ok(c, "nvmf_get_subsystems") == before
    assert call_ok(c, "bdev_get_bdevs", {"name": "lvs0/v"})[0]["name"] == u
    assert call_ok(c, "bdev_get_bdevs", {"name": "Aio_lvs0"})[0]["uuid"] == bcfg[0]["params"]["uuid"]


def test_load_config_method(target, workdir):
    c = target.client()
    cfg = {"subsystems": [
        {"subsystem": "bdev", "config": [
            {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535}},
            {"method": "bdev_malloc_create", "params": {"name": "Mc", "num_blocks": 256, "block_size": 512}},
            {"method": "bdev_wait_for_examine"}]},
        {"subsystem": "nvmf", "config": [
            {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
            {"method": "nvmf_create_subsystem", "params": {"nqn": NQN, "allow_any_host": True}},
            {"method": "nvmf_subsystem_add_ns", "params": {"nqn": NQN, "namespace": {"bdev_name": "Mc"}}}]},
    ]}
    assert call_ok(c, "load_config", cfg) is True
    sub = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]
    assert [n["bdev_name"] for n in sub["namespaces"]] == ["Mc"]
    # a failing entry stops the load with that entry's error
    bad = {"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_malloc_delete", "params": {"name": "nope"}}]}]}
    assert call_err(c, "load_config", bad) == (-19, "No such device")


def test_config_file_errors_fail_startup(workdir):
    import helpers
    from tgt_lib import disktgt_binary
    bad = os.path.join(workdir, "bad.json")
    with open(bad, "w") as f:
        f.write('{"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_malloc_delete", '
                '"params": {"name": "x"}}]}]}')
    p = helpers.Proc([disktgt_binary(), "-r", os.path.join(workdir, "s.sock"), "-c", bad],
                     os.path.join(workdir, "bad.log"))
    rc = p.p.wait(30)
    p.log.close()
    assert rc != 0
    p.assert_clean()


SPDK_STYLE_CONFIG = {"subsystems": [
    {"subsystem": "keyring", "config": []},
    {"subsystem": "iobuf", "config": [{"method": "iobuf_set_options", "params": {
        "small_pool_count": 8192, "large_pool_count": 1024, "small_bufsize": 8192, "large_bufsize": 135168}}]},
    {"subsystem": "sock", "config": [
        {"method": "sock_set_default_impl", "params": {"impl_name": "posix"}},
        {"method": "sock_impl_set_options", "params": {"impl_name": "posix", "recv_buf_size": 2097152}}]},
    {"subsystem": "vmd", "config": []},
    {"subsystem": "accel", "config": [{"method": "accel_set_options", "params": {"small_cache_size": 128}}]},
    {"subsystem": "bdev", "config": [
        {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535, "bdev_io_cache_size": 256,
                                                  "bdev_auto_examine": True}},
        {"method": "bdev_raid_set_options", "params": {"process_window_size_kb": 1024}},
        {"method": "bdev_nvme_set_options", "params": {"action_on_timeout": "none"}},
        {"method": "bdev_nvme_set_hotplug", "params": {"period_us": 100000, "enable": False}},
        {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 8192, "block_size": 512,
                                                    "physical_block_size": 512,
                                                    "uuid": "aa5b8f6e-b67a-4506-b606-7fff5a859920",
                                                    "optimal_io_boundary": 0, "md_size": 0, "dif_type": 0,
                                                    "dif_is_head_of_md": False, "dif_pi_format": 0}},
        {"method": "bdev_wait_for_examine"}]},
    {"subsystem": "scsi", "config": None},
    {"subsystem": "nvmf", "config": [
        {"method": "nvmf_set_config", "params": {"discovery_filter": "match_any", "admin_cmd_passthru": {
            "identify_ctrlr": False}}},
        {"method": "nvmf_set_max_subsystems", "params": {"max_subsystems": 1024}},
        {"method": "nvmf_set_crdt", "params": {"crdt1": 0, "crdt2": 0, "crdt3": 0}},
        {"method": "nvmf_create_transport", "params": {"trtype": "TCP", "max_queue_depth": 128,
                                                       "max_io_qpairs_per_ctrlr": 127, "in_capsule_data_size": 4096,
                                                       "max_io_size": 131072, "io_unit_size": 131072,
                                                       "max_aq_depth": 128, "num_shared_buffers": 511,
                                                       "buf_cache_size": 4294967295, "dif_insert_or_strip": False,
                                                       "zcopy": False, "c2h_success": True, "sock_priority": 0,
                                                       "abort_timeout_sec": 1, "ack_timeout": 0,
                                                       "data_wr_pool_size": 0}},
        {"method": "nvmf_create_subsystem", "params": {"nqn": NQN, "allow_any_host": True,
                                                       "serial_number": "SPDK00000000000001",
                                                       "model_number": "SPDK bdev Controller", "max_namespaces": 32,
                                                       "min_cntlid": 1, "max_cntlid": 65519, "ana_reporting": False}},
        {"method": "nvmf_subsystem_add_ns", "params": {"nqn": NQN, "namespace": {
            "nsid": 1, "bdev_name": "Malloc0", "nguid": "AA5B8F6EB67A4506B6067FFF5A859920",
            "uuid": "aa5b8f6e-b67a-4506-b606-7fff5a859920", "no_auto_visible": False, "hide_metadata": False}}}]},
    {"subsystem": "nbd", "config": []},
    {"subsystem": "scheduler", "config": [{"method": "framework_set_scheduler", "params": {"name": "static"}}]},
]}


def test_start_with_an_spdk_saved_config(workdir):
    """A config saved by SPDK (with its framework tunables) starts disktgt: the
    tunables disktgt has no equivalent for are skipped, the rest is applied."""
    import json
    from tgt_lib import Target
    path = os.path.join(workdir, "spdk.json")
    with open(path, "w") as f:
        json.dump(SPDK_STYLE_CONFIG, f)
    t = Target(workdir, "cfg", ["-c", path])
    try:
        c = t.client()
        sub = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]
        assert sub["namespaces"] == [{"nsid": 1, "bdev_name": "Malloc0", "name": "Malloc0",
                                      "nguid": "AA5B8F6EB67A4506B6067FFF5A859920",
                                      "uuid": "aa5b8f6e-b67a-4506-b606-7fff5a859920"}]
        assert call_ok(c, "bdev_get_bdevs", {"name": "Malloc0"})[0]["uuid"] == "aa5b8f6e-b67a-4506-b606-7fff5a859920"
    finally:
        t.stop()


def test_delete_lvstore_with_exported_lvols(target, workdir):
    c, _, uuid = setup_store(target, workdir)
    nvmf_setup(c)
    for i in range(3):
        call_ok(c, "bdev_lvol_create", {"lvol_name": "v%d" % i, "size_in_mib": 4, "lvs_name": "lvs0"})
        call_ok(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "lvs0/v%d" % i}})
    assert len(call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"]) == 3
    assert call_ok(c, "bdev_lvol_delete_lvstore", {"uuid": uuid}) is True
    assert call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["namespaces"] == []
    base = call_ok(c, "bdev_get_bdevs", {"name": "Aio_lvs0"})[0]
    assert base["claimed"] is False and "claim_type" not in base
    assert [b["name"] for b in call_ok(c, "bdev_get_bdevs")] == ["Aio_lvs0"]


def test_shutdown_while_get_bdevs_waits(target):
    c = target.client()
    c.send_raw('{"jsonrpc":"2.0","id":1,"method":"bdev_get_bdevs","params":{"name":"Late","timeout_ms":600000}}')
    call_ok(target.client(), "spdk_get_version")   # the wait is registered by now
    assert target.stop() == 0                       # clean exit, nothing leaked (ASan)


def diskperf_binary():
    import pytest
    import helpers
    try:
        return helpers.binary("diskperf")
    except FileNotFoundError:
        pytest.skip("diskperf not built")


def test_controllers_qpairs_and_stats_with_a_connected_host(target, workdir):
    """A real NVMe/TCP host (diskperf) connected while we look: SPDK's shapes
    of nvmf_subsystem_get_controllers / get_qpairs and the stats counters."""
    import socket
    import subprocess
    import helpers
    perf = diskperf_binary()
    c = target.client()
    call_ok(c, "bdev_malloc_create", {"num_blocks": 8192, "block_size": 512, "name": "M"})
    nvmf_setup(c)
    call_ok(c, "nvmf_subsystem_add_host", {"nqn": NQN, "host": HOST})
    call_ok(c, "nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "M"}})
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
    s.close()
    call_ok(c, "nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
        "trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": port}})
    p = subprocess.Popen([perf, "-r", "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:%s subnqn:%s hostnqn:%s"
                          % (port, NQN, HOST), "-q", "4", "-o", "4096", "-w", "randread", "-t", "3", "-c", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        helpers.wait_for(lambda: len(call_ok(c, "nvmf_subsystem_get_qpairs", {"nqn": NQN})) >= 3, 10,
                         what="admin + 2 I/O qpairs")
        ctrls = call_ok(c, "nvmf_subsystem_get_controllers", {"nqn": NQN})
        assert len(ctrls) == 1
        ct = ctrls[0]
        assert list(ct) == ["cntlid", "cntrltype", "hostnqn", "hostid", "num_io_qpairs"]
        assert ct["hostnqn"] == HOST and ct["cntrltype"] == "io" and ct["num_io_qpairs"] == 2
        qps = call_ok(c, "nvmf_subsystem_get_qpairs", {"nqn": NQN})
        assert sorted(q["qid"] for q in qps) == [0, 1, 2]
        for q in qps:
            assert list(q) == ["cntlid", "qid", "state", "thread", "hostnqn", "listen_address", "peer_address"]
            assert q["cntlid"] == ct["cntlid"] and q["state"] == "enabled" and q["hostnqn"] == HOST
            assert q["listen_address"] == {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
                                           "trsvcid": port}
            assert q["peer_address"]["traddr"] == "127.0.0.1"
        pg = call_ok(c, "nvmf_get_stats")["poll_groups"][0]
        assert pg["current_admin_qpairs"] == 1 and pg["current_io_qpairs"] == 2
    finally:
        out = p.communicate(timeout=30)[0].decode(errors="replace")
    assert p.returncode == 0, out
    assert "Total:" in out
    st = call_ok(c, "nvmf_get_stats")["poll_groups"][0]
    assert st["admin_qpairs"] >= 1 and st["io_qpairs"] >= 2 and st["completed_nvme_io"] > 0
    io = call_ok(c, "bdev_get_iostat", {"names": ["M"]})["bdevs"][0]
    assert io["num_read_ops"] > 0


def test_pipelined_lvol_operations_keep_order(target, workdir):
    """128 requests in flight on one connection (as the bench and busy agents
    do): every reply comes back once, in request order, and the store agrees."""
    import json
    # 1 MiB clusters: one metadata page per cluster (SPDK's default ratio) bounds
    # the number of lvols, 512 of them here
    c, _, uuid = setup_store(target, workdir, size=512 * MIB, cluster=MIB)
    n = 300
    reqs = []
    for i in range(n):
        reqs.append({"jsonrpc": "2.0", "id": 1000 + i, "method": "bdev_lvol_create",
                     "params": {"lvol_name": "p%d" % i, "size_in_mib": 1, "thin_provision": True,
                                "lvs_name": "lvs0"}})
    reqs.append({"jsonrpc": "2.0", "id": 1000 + n, "method": "bdev_lvol_create",
                 "params": {"lvol_name": "p0", "size_in_mib": 1, "lvs_name": "lvs0"}})   # duplicate
    sent = got = 0
    replies = []
    while got < len(reqs):
        while sent < len(reqs) and sent - got < 128:
            c.send_raw(json.dumps(reqs[sent]))
            sent += 1
        r, _ = c.recv_value()
        replies.append(r)
        got += 1
    assert [r["id"] for r in replies] == [q["id"] for q in reqs]
    assert all("result" in r for r in replies[:n])
    assert replies[n]["error"] == {"code": -17, "message": "File exists"}
    lvols = call_ok(c, "bdev_lvol_get_lvols", {"lvs_uuid": uuid})
    assert [lv["name"] for lv in lvols] == ["p%d" % i for i in range(n)]
    assert [lv["uuid"] for lv in lvols] == [r["result"] for r in replies[:n]]


def test_max_namespaces_key_only_when_given(target):
    """rpc.py sends max_namespaces only when -n is given (golden a70 vs a72);
    SPDK's default is no limit and nvmf_get_subsystems then has no such key."""
    c = target.client()
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN + "x", "max_namespaces": 8})
    subs = call_ok(c, "nvmf_get_subsystems")
    assert "max_namespaces" not in subs[1] and subs[1]["nqn"] == NQN
    assert subs[2]["max_namespaces"] == 8
    call_ok(c, "nvmf_delete_subsystem", {"nqn": NQN})
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN, "max_namespaces": 4})
    assert call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]["max_namespaces"] == 4


def test_dmrsl_wzsl_as_given(target):
    c = target.client()
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN, "dmrsl": 100, "wzsl": 5})
    s = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN})[0]
    assert (s["dmrsl"], s["wzsl"]) == (100, 5)
    call_ok(c, "nvmf_create_subsystem", {"nqn": NQN + "k", "max_discard_size_kib": 1024,
                                         "max_write_zeroes_size_kib": 64})
    s = call_ok(c, "nvmf_get_subsystems", {"nqn": NQN + "k"})[0]
    assert (s["dmrsl"], s["wzsl"]) == (2048, 4)
    assert call_err(c, "nvmf_create_subsystem", {"nqn": NQN + "z", "max_write_zeroes_size_kib": 10}) == \
        (-32602, "Invalid max_write_zeroes_size_kib 10")
