"""Kernel state -> ruleset model: the dumps of tables, chains, sets, elements, objects,
flowtables and rules, decoded back to what nft prints, as nftables' src/netlink.c and
src/netlink_delinearize.c do. This module decodes the objects and is the entry point;
by concept, the rest is in
  decode_values   data registers, verdicts, udata, stateful expressions; DecodeError
  decode_sets     sets and maps, their types and elements (intervals joined again)
  decode_rule     a rule's expressions -> statements: registers, loads, relations
  decode_context  payload fields and the protocol context; implied dependencies dropped
  decode_stmts    the statement expressions (counter, log, nat, reject, dynset, ...)
  decode_shapes   a big dump's rules, each shape decoded once (the pull fast path)
"""
from . import decode_values as V
from . import model as M
from . import proto as P
from .decode_rule import rule
from .decode_sets import KSet, elements, set_model
from .decode_values import DecodeError

__all__ = ["DecodeError", "KSet", "chain", "elements", "flowtable", "obj", "rule", "set_model",
           "table"]

def table(family: str, a: dict) -> M.Table:
    flags = tuple(f for bit, f in ((1, "dormant"), (2, "owner"), (4, "persist"))
                  if a.get("flags", 0) & bit)
    t = M.Table(family, a["name"], flags, V.comment(a.get("userdata")))
    if a.get("owner"):
        t.progname = _progname(a["owner"])
    return t


def _progname(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "-"


def chain(family: str, a: dict) -> M.Chain:
    c = M.Chain(a["name"], comment=V.comment(a.get("userdata")))
    hook = a.get("hook")
    if hook is not None and "type" in a:
        c.type = a["type"]
        c.hook = P.HOOK_NAMES[family].get(hook["num"], "unknown")
        c.priority = hook.get("priority", 0)
        c.policy = "drop" if a.get("policy") == 0 else "accept"
        if "dev" in hook:
            c.devices = (hook["dev"],)
        elif hook.get("devs"):
            c.devices = tuple(hook["devs"])
    if a.get("flags", 0) & 4:
        c.offload = True
    return c


def obj(a: dict) -> M.Obj:
    kind = V.OBJ_KINDS.get(a["type"], f"object type {a['type']}")
    d = a.get("data") or {}
    spec: dict = {}
    if kind == "counter":
        spec = {"packets": d.get("packets", 0), "bytes": d.get("bytes", 0)}
    elif kind == "quota":
        spec = {"bytes": d.get("bytes", 0), "used": d.get("consumed", 0),
                "over": bool(d.get("flags", 0) & 1)}
    elif kind == "limit":
        is_bytes = d.get("type") == 1
        burst = d.get("burst", 0)
        spec = {"rate": d.get("rate", 0), "unit": V.UNITS.get(d.get("unit"), "second"),
                "bytes": is_bytes, "over": bool(d.get("flags", 0) & 1),
                "burst": None if burst == (0 if is_bytes else 5) else burst}
    elif kind == "ct helper":
        spec = {"type": d.get("name", ""), "protocol": "tcp" if d.get("l4proto") == 6
                else "udp", "l3proto": P.FAMILY_NAMES.get(d.get("l3proto"), "ip")}
    elif kind == "synproxy":
        fl = d.get("flags", 0)
        if fl & 1:
            spec["mss"] = d.get("mss", 0)
        if fl & 2:
            spec["wscale"] = d.get("wscale", 0)
        flags = [f for bit, f in ((8, "timestamp"), (4, "sack-perm")) if fl & bit]
        if flags:
            spec["flags"] = flags
    return M.Obj(kind, a["name"], spec, V.comment(a.get("userdata")))


def flowtable(a: dict) -> M.Flowtable:
    hook = a.get("hook") or {}
    fl = a.get("flags", 0)
    return M.Flowtable(a["name"], "ingress", hook.get("priority", 0),
                       tuple(hook.get("devs") or ()), bool(fl & 1), bool(fl & 2))

