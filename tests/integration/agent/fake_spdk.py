#!/usr/bin/python3
"""A small fake SPDK target for the agent's tests: speaks SPDK's JSON-RPC
wire format on a unix socket (concatenated JSON values in, compact JSON plus
"\\n" out, errors exactly as shared/spdk-golden records them) for the methods
the agent uses, with lvstores persisted in a state file per base file (they
come back after a restart once bdev_aio_create names the same file, like
SPDK's examine), nvmf state in memory only (lost on restart, like SPDK).

Fault injection, same interface as disktgt --enable-fault-injection:
  disktgt_inject_fault {method, action, count, code, message, delay_ms}
    action "error" (reply {code, message}, the method does not run),
    "drop_reply" (run, never reply), "exit_after_reply" (run, reply, exit),
    "delay" (run, reply after delay_ms), "close" (close the connection
    without running), "clear".
Extra test helpers: fake_calls {method?} -> number of calls seen per method.

usage: fake_spdk.py -r SOCKET --state FILE
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid as uuidlib

MIB = 1 << 20
BLOCK = 4096


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def decode_failed():
    return RpcError(-32603, "spdk_json_decode_object failed")


def params_check(params, required, optional=()):
    params = params or {}
    if not isinstance(params, dict):
        raise decode_failed()
    for k in params:
        if k not in required and k not in optional:
            raise decode_failed()
    for k in required:
        if k not in params:
            raise decode_failed()
    return params


class Target:
    def __init__(self, state_path):
        self.state_path = state_path
        self.lock = threading.Lock()
        self.bdevs = {}          # aio bdev name -> {filename, block_size, num_blocks}
        self.lvstores = {}       # loaded lvstore uuid -> store dict (persisted per filename)
        self.transports = []
        self.subsystems = {}     # nqn -> dict
        self.faults = {}         # method -> list of fault dicts
        self.calls = {}
        self.persist = {}
        if os.path.exists(state_path):
            with open(state_path) as f:
                self.persist = json.load(f)

    # ------------------------------------------------------------ persistence
    def save(self):
        for s in self.lvstores.values():
            self.persist[s["filename"]] = s
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.persist, f)
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------ lookups
    def store_by(self, uuid=None, name=None):
        if uuid is not None and name is not None:
            raise RpcError(-22, "Invalid argument")
        for s in self.lvstores.values():
            if (uuid is not None and s["uuid"] == uuid) or (name is not None and s["name"] == name):
                return s
        raise RpcError(-19, "No such device")

    def find_lvol(self, name):
        """By uuid or alias lvs/name; returns (store, lvol) or raises -19."""
        for s in self.lvstores.values():
            for lv in s["lvols"]:
                if lv["uuid"] == name or "%s/%s" % (s["name"], lv["name"]) == name:
                    return s, lv
        raise RpcError(-19, "No such device")

    def free_clusters(self, s):
        used = sum(lv["allocated"] for lv in s["lvols"])
        return s["total"] - used

    # ------------------------------------------------------------ views
    def lvol_json(self, s, lv):
        return {"alias": "%s/%s" % (s["name"], lv["name"]), "uuid": lv["uuid"], "name": lv["name"],
                "is_thin_provisioned": lv["thin"], "is_snapshot": lv["snapshot"],
                "is_clone": lv.get("parent") is not None, "is_esnap_clone": False,
                "is_degraded": False, "num_allocated_clusters": lv["allocated"],
                "lvs": {"name": s["name"], "uuid": s["uuid"]}}

    def store_json(self, s):
        return {"uuid": s["uuid"], "name": s["name"], "base_bdev": s["base_bdev"],
                "total_data_clusters": s["total"], "free_clusters": self.free_clusters(s),
                "block_size": BLOCK, "cluster_size": s["cluster_size"],
                "max_growable_size": s["total"] * s["cluster_size"] * 64}

    # ------------------------------------------------------------ methods
    def m_spdk_get_version(self, p):
        if p is not None:
            raise RpcError(-32602, "spdk_get_version method requires no parameters")
        return {"version": "SPDK v26.09-pre (fake)", "fields": {"major": 26, "minor": 9, "patch": 0, "suffix": "-pre"}}

    def m_rpc_get_methods(self, p):
        return sorted(m[2:] for m in dir(self) if m.startswith("m_"))

    def m_bdev_aio_create(self, p):
        p = params_check(p, ("filename", "name"), ("block_size", "readonly", "fallocate", "nowait", "uuid"))
        if not os.path.exists(p["filename"]):
            raise RpcError(-2, "No such file or directory")
        if p["name"] in self.bdevs:
            raise RpcError(-17, "File exists")
        bs = p.get("block_size") or 512
        self.bdevs[p["name"]] = {"filename": p["filename"], "block_size": bs,
                                 "num_blocks": os.path.getsize(p["filename"]) // bs}
        # examine: a store persisted on this file comes back
        s = self.persist.get(p["filename"])
        if s is not None:
            s["base_bdev"] = p["name"]
            self.lvstores[s["uuid"]] = s
        return p["name"]

    def m_bdev_aio_delete(self, p):
        p = params_check(p, ("name",))
        if p["name"] not in self.bdevs:
            raise RpcError(-19, "No such device")
        for u, s in list(self.lvstores.items()):
            if s["base_bdev"] == p["name"]:
                del self.lvstores[u]
        del self.bdevs[p["name"]]
        return True

    def m_bdev_wait_for_examine(self, p):
        if p is not None:
            raise RpcError(-32602, "bdev_wait_for_examine method requires no parameters")
        return True

    def claimed_set(self):
        return {ns["bdev_name"] for sub in self.subsystems.values() for ns in sub["namespaces"]}

    def lvol_bdev_json(self, s, lv, claimed):
        return {"name": lv["uuid"], "aliases": ["%s/%s" % (s["name"], lv["name"])],
                "product_name": "Logical Volume", "block_size": BLOCK,
                "num_blocks": lv["size_clusters"] * s["cluster_size"] // BLOCK,
                "uuid": lv["uuid"], "claimed": lv["uuid"] in claimed}

    def m_bdev_get_bdevs(self, p):
        p = params_check(p, (), ("name", "timeout_ms"))
        claimed = self.claimed_set()
        if "name" in p:
            try:
                s, lv = self.find_lvol(p["name"])
                return [self.lvol_bdev_json(s, lv, claimed)]
            except RpcError:
                pass
        out = []
        for name, b in self.bdevs.items():
            out.append({"name": name, "aliases": [], "product_name": "AIO disk",
                        "block_size": b["block_size"], "num_blocks": b["num_blocks"],
                        "claimed": any(s["base_bdev"] == name for s in self.lvstores.values())})
        for s in self.lvstores.values():
            for lv in s["lvols"]:
                out.append(self.lvol_bdev_json(s, lv, claimed))
        if "name" in p:
            out = [b for b in out if b["name"] == p["name"] or p["name"] in b.get("aliases", [])]
            if not out:
                raise RpcError(-19, "No such device")
        return out

    def m_bdev_lvol_create_lvstore(self, p):
        p = params_check(p, ("bdev_name", "lvs_name"), ("cluster_sz", "clear_method", "num_md_pages_per_cluster_ratio"))
        b = self.bdevs.get(p["bdev_name"])
        if b is None:
            raise RpcError(-19, "No such device")
        if any(s["name"] == p["lvs_name"] for s in self.lvstores.values()):
            raise RpcError(-17, "File exists")
        if any(s["base_bdev"] == p["bdev_name"] for s in self.lvstores.values()):
            raise RpcError(-1, "Operation not permitted")
        cs = p.get("cluster_sz") or 4 * MIB
        total = b["num_blocks"] * b["block_size"] // cs - 1
        s = {"uuid": str(uuidlib.uuid4()), "name": p["lvs_name"], "base_bdev": p["bdev_name"],
             "filename": b["filename"], "cluster_size": cs, "total": max(total, 0), "lvols": []}
        self.lvstores[s["uuid"]] = s
        self.save()
        return s["uuid"]

    def m_bdev_lvol_get_lvstores(self, p):
        p = params_check(p, (), ("uuid", "lvs_name"))
        if "uuid" in p or "lvs_name" in p:
            return [self.store_json(self.store_by(p.get("uuid"), p.get("lvs_name")))]
        return [self.store_json(s) for s in self.lvstores.values()]

    def m_bdev_lvol_create(self, p):
        p = params_check(p, ("lvol_name", "size_in_mib"), ("uuid", "lvs_name", "thin_provision", "clear_method"))
        if "uuid" not in p and "lvs_name" not in p:
            raise RpcError(-22, "Invalid argument")
        s = self.store_by(p.get("uuid"), p.get("lvs_name"))
        if any(lv["name"] == p["lvol_name"] for lv in s["lvols"]):
            raise RpcError(-17, "File exists")
        clusters = -(-p["size_in_mib"] * MIB // s["cluster_size"])
        thin = bool(p.get("thin_provision"))
        if not thin and clusters > self.free_clusters(s):
            raise RpcError(-32602, "No space left on device")
        lv = {"uuid": str(uuidlib.uuid4()), "name": p["lvol_name"], "thin": thin, "snapshot": False,
              "parent": None, "size_clusters": clusters, "allocated": 0 if thin else clusters}
        s["lvols"].append(lv)
        self.save()
        return lv["uuid"]

    def m_bdev_lvol_get_lvols(self, p):
        p = params_check(p, (), ("lvs_uuid", "lvs_name"))
        if "lvs_uuid" in p or "lvs_name" in p:
            stores = [self.store_by(p.get("lvs_uuid"), p.get("lvs_name"))]
        else:
            stores = list(self.lvstores.values())
        return [self.lvol_json(s, lv) for s in stores for lv in s["lvols"]]

    def m_bdev_lvol_resize(self, p):
        p = params_check(p, ("name", "size_in_mib"))
        s, lv = self.find_lvol(p["name"])
        clusters = -(-p["size_in_mib"] * MIB // s["cluster_size"])
        if not lv["thin"]:
            grow = clusters - lv["allocated"]
            if grow > self.free_clusters(s):
                raise RpcError(-32602, "No space left on device")
            lv["allocated"] = clusters
        lv["size_clusters"] = clusters
        self.save()
        return True

    def m_bdev_lvol_delete(self, p):
        p = params_check(p, ("name",))
        s, lv = self.find_lvol(p["name"])
        clones = [x for x in s["lvols"] if x.get("parent") == lv["uuid"]]
        if len(clones) > 1:
            raise RpcError(-32603, "Operation not permitted")
        for c in clones:
            c["parent"] = None
        s["lvols"].remove(lv)
        for sub in self.subsystems.values():
            sub["namespaces"] = [n for n in sub["namespaces"] if n["bdev_name"] != lv["uuid"]]
        self.save()
        return True

    def m_bdev_lvol_snapshot(self, p):
        p = params_check(p, ("lvol_name", "snapshot_name"))
        s, lv = self.find_lvol(p["lvol_name"])
        if any(x["name"] == p["snapshot_name"] for x in s["lvols"]):
            raise RpcError(-32602, "File exists")
        snap = {"uuid": str(uuidlib.uuid4()), "name": p["snapshot_name"], "thin": False, "snapshot": True,
                "parent": None, "size_clusters": lv["size_clusters"], "allocated": lv["allocated"]}
        lv["allocated"] = 0
        lv["thin"] = True
        lv["parent"] = snap["uuid"]
        s["lvols"].append(snap)
        self.save()
        return snap["uuid"]

    def m_bdev_lvol_clone(self, p):
        p = params_check(p, ("snapshot_name", "clone_name"))
        s, snap = self.find_lvol(p["snapshot_name"])
        if not snap["snapshot"]:
            raise RpcError(-32602, "Invalid argument")
        if any(x["name"] == p["clone_name"] for x in s["lvols"]):
            raise RpcError(-32602, "File exists")
        lv = {"uuid": str(uuidlib.uuid4()), "name": p["clone_name"], "thin": True, "snapshot": False,
              "parent": snap["uuid"], "size_clusters": snap["size_clusters"], "allocated": 0}
        s["lvols"].append(lv)
        self.save()
        return lv["uuid"]

    def m_bdev_lvol_rename(self, p):
        p = params_check(p, ("old_name", "new_name"))
        s, lv = self.find_lvol(p["old_name"])
        if any(x["name"] == p["new_name"] for x in s["lvols"]):
            raise RpcError(-32602, "File exists")
        lv["name"] = p["new_name"]
        self.save()
        return True

    def m_nvmf_create_transport(self, p):
        p = params_check(p, ("trtype",), ("max_queue_depth", "max_io_qpairs_per_ctrlr", "in_capsule_data_size",
                                          "max_io_size", "io_unit_size", "c2h_success", "zcopy", "no_srq",
                                          "dif_insert_or_strip", "no_wr_batching", "disable_mappable_bar0",
                                          "disable_adaptive_irq", "disable_shadow_doorbells",
                                          "disable_command_passthru"))
        t = p["trtype"].upper()
        if t in self.transports:
            raise RpcError(-32603, "Transport type '%s' already exists" % p["trtype"])
        self.transports.append(t)
        return True

    def m_nvmf_get_transports(self, p):
        return [{"trtype": t} for t in self.transports]

    def m_nvmf_create_subsystem(self, p):
        p = params_check(p, ("nqn",), ("serial_number", "model_number", "allow_any_host", "max_namespaces",
                                       "ana_reporting", "passthrough", "enable_nssr", "min_cntlid", "max_cntlid"))
        nqn = p["nqn"]
        if nqn in self.subsystems or not nqn.startswith("nqn.") or len(nqn) > 223:
            raise RpcError(-32603, "Unable to create subsystem %s" % nqn)
        self.subsystems[nqn] = {"nqn": nqn, "subtype": "NVMe", "listen_addresses": [],
                                "allow_any_host": bool(p.get("allow_any_host", False)), "hosts": [],
                                "serial_number": p.get("serial_number", "00000000000000000000"),
                                "model_number": p.get("model_number", "SPDK bdev Controller"),
                                "max_namespaces": p.get("max_namespaces", 32), "namespaces": []}
        return True

    def sub(self, nqn):
        s = self.subsystems.get(nqn)
        if s is None:
            raise RpcError(-32602, "Subsystem with NQN '%s' not found" % nqn)
        return s

    def m_nvmf_delete_subsystem(self, p):
        p = params_check(p, ("nqn",), ("tgt_name",))
        self.sub(p["nqn"])
        del self.subsystems[p["nqn"]]
        return True

    def m_nvmf_get_subsystems(self, p):
        p = params_check(p, (), ("nqn", "tgt_name"))
        disc = {"nqn": "nqn.2014-08.org.nvmexpress.discovery", "subtype": "Discovery",
                "listen_addresses": [], "allow_any_host": True, "hosts": []}
        subs = [self.subsystems[k] for k in sorted(self.subsystems)]
        if "nqn" in p:
            return [self.sub(p["nqn"])]
        return [disc] + subs

    def m_nvmf_subsystem_add_listener(self, p):
        p = params_check(p, ("nqn", "listen_address"), ("secure_channel", "tgt_name", "ana_state"))
        sub = self.sub(p["nqn"])
        a = params_check(p["listen_address"], ("trtype", "traddr"), ("adrfam", "trsvcid"))
        if a["trtype"].upper() not in self.transports:
            raise RpcError(-32602, "Invalid parameters")
        for x in sub["listen_addresses"]:
            if x["traddr"] == a["traddr"] and x["trsvcid"] == a.get("trsvcid"):
                raise RpcError(-32602, "Invalid parameters")
        sub["listen_addresses"].append({"trtype": a["trtype"].upper(), "adrfam": a.get("adrfam", "IPv4"),
                                        "traddr": a["traddr"], "trsvcid": a.get("trsvcid", "4420")})
        return True

    def m_nvmf_subsystem_remove_listener(self, p):
        p = params_check(p, ("nqn", "listen_address"), ("tgt_name",))
        sub = self.sub(p["nqn"])
        a = params_check(p["listen_address"], ("trtype", "traddr"), ("adrfam", "trsvcid"))
        keep = [x for x in sub["listen_addresses"]
                if not (x["traddr"] == a["traddr"] and x["trsvcid"] == a.get("trsvcid"))]
        if len(keep) == len(sub["listen_addresses"]):
            raise RpcError(-32602, "Invalid parameters")
        sub["listen_addresses"] = keep
        return True

    def m_nvmf_subsystem_add_host(self, p):
        p = params_check(p, ("nqn", "host"), ("tgt_name", "psk", "dhchap_key", "dhchap_ctrlr_key"))
        sub = self.sub(p["nqn"])
        if any(h["nqn"] == p["host"] for h in sub["hosts"]):
            raise RpcError(-32603, "Internal error")
        sub["hosts"].append({"nqn": p["host"]})
        return True

    def m_nvmf_subsystem_add_ns(self, p):
        p = params_check(p, ("nqn", "namespace"), ("tgt_name",))
        sub = self.sub(p["nqn"])
        ns = params_check(p["namespace"], ("bdev_name",), ("nsid", "uuid", "nguid", "eui64", "no_auto_visible",
                                                           "hide_metadata", "ptpl_file", "anagrpid"))
        try:
            _, lv = self.find_lvol(ns["bdev_name"])
        except RpcError:
            raise RpcError(-32602, "Invalid parameters")
        if lv["uuid"] in self.claimed_set():
            raise RpcError(-32602, "Invalid parameters")
        nsid = ns.get("nsid") or 0
        used = {n["nsid"] for n in sub["namespaces"]}
        if nsid in used:
            raise RpcError(-32602, "Invalid parameters")
        if nsid == 0:
            nsid = 1
            while nsid in used:
                nsid += 1
        u = ns.get("uuid", lv["uuid"])
        sub["namespaces"].append({"nsid": nsid, "bdev_name": lv["uuid"], "name": lv["uuid"],
                                  "nguid": u.replace("-", "").upper(), "uuid": u})
        sub["namespaces"].sort(key=lambda n: n["nsid"])
        return nsid

    def m_nvmf_subsystem_remove_ns(self, p):
        p = params_check(p, ("nqn", "nsid"), ("tgt_name",))
        sub = self.sub(p["nqn"])
        before = len(sub["namespaces"])
        sub["namespaces"] = [n for n in sub["namespaces"] if n["nsid"] != p["nsid"]]
        if len(sub["namespaces"]) == before:
            raise RpcError(-32602, "Invalid parameters")
        return True

    def m_disktgt_inject_fault(self, p):
        p = params_check(p, ("method",), ("action", "count", "code", "message", "delay_ms"))
        action = p.get("action", "error")
        count = p.get("count", 1)
        if action == "clear" or count == 0:
            self.faults.pop(p["method"], None)
            return True
        self.faults.setdefault(p["method"], []).append(
            {"action": action, "count": count, "code": p.get("code", -32603),
             "message": p.get("message", "Internal error"), "delay_ms": p.get("delay_ms", 0)})
        return True

    def m_fake_calls(self, p):
        p = params_check(p, (), ("method",))
        if "method" in p:
            return self.calls.get(p["method"], 0)
        return dict(self.calls)

    # ------------------------------------------------------------ dispatch
    def take_fault(self, method):
        lst = self.faults.get(method)
        if not lst:
            return None
        f = lst[0]
        f["count"] -= 1
        if f["count"] <= 0:
            lst.pop(0)
        return f

    def handle(self, req):
        """Returns (response or None, after) where after is None/'exit'/'close'/('delay', s)."""
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}, None
        rid = req.get("id")
        method = req["method"]
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            fault = self.take_fault(method) if method != "disktgt_inject_fault" else None
            if fault and fault["action"] == "close":
                return None, "close"
            if fault and fault["action"] == "error":
                return {"jsonrpc": "2.0", "id": rid, "error": {"code": fault["code"], "message": fault["message"]}}, None
            fn = getattr(self, "m_" + method, None)
            if fn is None:
                resp = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}
            else:
                try:
                    resp = {"jsonrpc": "2.0", "id": rid, "result": fn(req.get("params"))}
                except RpcError as e:
                    resp = {"jsonrpc": "2.0", "id": rid, "error": {"code": e.code, "message": e.message}}
        if "id" not in req:
            return None, None
        if fault and fault["action"] == "drop_reply":
            return None, None
        if fault and fault["action"] == "exit_after_reply":
            return resp, "exit"
        if fault and fault["action"] == "delay":
            return resp, ("delay", fault["delay_ms"] / 1000.0)
        return resp, None


def serve_conn(tgt, conn):
    dec = json.JSONDecoder()
    buf = ""
    try:
        while True:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data.decode(errors="replace")
            while True:
                s = buf.lstrip()
                if not s:
                    buf = ""
                    break
                try:
                    req, end = dec.raw_decode(s)
                except json.JSONDecodeError:
                    if s[0] not in "{[":
                        return  # invalid JSON: close without reply
                    break      # truncated: wait for more
                buf = s[end:]
                resp, after = tgt.handle(req)
                if after == "close":
                    return
                if isinstance(after, tuple):
                    time.sleep(after[1])
                if resp is not None:
                    conn.sendall((json.dumps(resp, separators=(",", ":")) + "\n").encode())
                if after == "exit":
                    os._exit(1)
    except OSError:
        return
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", required=True, help="unix socket path")
    ap.add_argument("--state", required=True, help="lvstore persistence file")
    a = ap.parse_args()
    tgt = Target(a.state)
    if os.path.exists(a.r):
        os.unlink(a.r)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(a.r)
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: (os.unlink(a.r) if os.path.exists(a.r) else None, os._exit(0)))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_conn, args=(tgt, conn), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
