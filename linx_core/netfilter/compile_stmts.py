"""Statements other than matches and NAT: verdicts and verdict maps, counter/limit/
quota, log, reject, meta/ct set, notrack, set add/update and meters (dynset), queue, flow
offload, synproxy, named object references (nftables src/netlink_linearize.c,
netlink_gen_stmt())."""

from . import compile_context as pctx
from . import compile_exprs as exprs
from . import compile_sets as sets
from . import model as M
from . import proto as P
from . import types as T
from .location import NftError
from .nf_tables import (REG_VERDICT, SET_ANONYMOUS, SET_TIMEOUT, SET_EVAL, OBJ_TYPES, LOG_LEVELS,
                        LOG_FLAG_BITS, UNIT_SECONDS, BYTEORDER, udata, put_reg)


_VERDICTS: dict = {}
_COUNTER = {"name": "counter", "data": {}}


def s_verdict(c, s: M.VerdictStmt):
    """One shared expression per verdict (see compile_match._field_load)."""
    v = s.verdict
    data = exprs.verdict_data(c, v)
    e = _VERDICTS.get((v.kind, v.chain))
    if e is None:
        e = _VERDICTS[(v.kind, v.chain)] = {"name": "immediate",
                                            "data": {"dreg": REG_VERDICT, "data": data}}
    c.exprs.append(e)


def s_vmap(c, s: M.Vmap):
    pctx.deps(c, s.key)
    n = exprs.expr_len(c, s.key)
    concat = isinstance(s.key, M.Concat)
    sreg = c.get_reg(n if concat else 16)
    exprs.load(c, s.key, sreg)
    key = exprs.key_types(c, s.key)
    if isinstance(s.mapping, M.SetRef):
        st = exprs.lookup_set(c, s.mapping)
        if st.data != "verdict":
            raise NftError(s.mapping.loc, f"map {st.name} does not map to verdicts")
    name, sid = exprs.set_for(c, s.mapping, key, "verdict", s.loc)
    d = {"set": name, "sreg": put_reg(sreg), "dreg": REG_VERDICT}
    if sid:
        d["set_id"] = sid
    c.exprs.append({"name": "lookup", "data": d})
    c.release(n if concat else 16)


def stateful(c, s) -> dict:
    k = type(s)
    if k is M.Counter:
        d = {}
        if s.bytes:
            d["bytes"] = s.bytes
        if s.packets:
            d["packets"] = s.packets
        return {"name": "counter", "data": d}
    if k is M.Limit:
        burst = s.burst if s.burst is not None else (0 if s.bytes else 5)
        return {"name": "limit", "data": {"rate": s.rate, "unit": UNIT_SECONDS[s.unit],
                                          "burst": burst, "type": 1 if s.bytes else 0,
                                          "flags": 1 if s.over else 0}}
    if k is M.Quota:
        return {"name": "quota", "data": {"bytes": s.bytes, "consumed": s.used,
                                          "flags": 1 if s.over else 0}}
    raise NftError(s.loc, "expected a counter, limit or quota statement")


def s_stateful(c, s):
    if type(s) is M.Counter and not s.bytes and not s.packets:
        c.exprs.append(_COUNTER)
        return
    e = stateful(c, s)
    if e["name"] == "limit" and e["data"]["burst"] == 0:
        del e["data"]["burst"]
    c.exprs.append(e)


def s_log(c, s: M.Log):
    d = {}
    if s.prefix is not None:
        d["prefix"] = s.prefix
    if s.group is not None:
        d["group"] = s.group
        if s.snaplen is not None:
            d["snaplen"] = s.snaplen
        if s.qthreshold is not None:
            d["qthreshold"] = s.qthreshold
    else:
        if s.level is not None:
            d["level"] = LOG_LEVELS[s.level]
        flags = 0
        for f in s.flags:
            flags |= LOG_FLAG_BITS[f]
        if flags:
            d["flags"] = flags
    c.exprs.append({"name": "log", "data": d})


def s_reject(c, s: M.Reject):
    fam = c.fam
    if s.kind == "tcp reset":
        c.emit("reject", type=1, icmp_code=0)
    elif s.kind is None:
        if fam == "ip":
            c.emit("reject", type=0, icmp_code=3)
        elif fam == "ip6":
            c.emit("reject", type=0, icmp_code=4)
        else:
            c.emit("reject", type=2, icmp_code=1)
    elif s.kind == "icmpx":
        c.emit("reject", type=2, icmp_code=s.code.v)
    else:
        c.emit("reject", type=0, icmp_code=s.code.v)


def s_meta_set(c, s: M.MetaSet):
    typ = P.META[s.key][1]
    pctx.deps(c, s.expr)
    sreg = c.get_reg()
    set_value(c, s.expr, typ, sreg)
    c.release()
    c.emit("meta", sreg=put_reg(sreg), key=P.META[s.key][0])


def set_value(c, e, typ, sreg):
    if isinstance(e, (M.Value, M.Flags)):
        c.emit("immediate", dreg=put_reg(sreg), data=exprs.value_bytes(c, e, typ))
    elif isinstance(e, M.MapExpr):
        exprs.map_lookup(c, e, sreg, typ)
    else:
        exprs.load(c, e, sreg)


def s_ct_set(c, s: M.CtSet):
    if s.key == "event":
        typ = T.BITMASK
    else:
        typ = P.CT[s.key][1]
    pctx.deps(c, s.expr)
    sreg = c.get_reg()
    set_value(c, s.expr, typ, sreg)
    c.release()
    d = {"sreg": put_reg(sreg), "key": 19 if s.key == "event" else P.CT[s.key][0]}
    if s.key == "event":
        d["key"] = 18
    if s.dir is not None:
        d["direction"] = P.CT_DIRS[s.dir]
    c.exprs.append({"name": "ct", "data": d})


def s_notrack(c, s):
    c.emit("notrack")


def _key_reg(c, key) -> int:
    """Load a dynset's key into a register (a concatenation takes as many as it needs) and
    return it; the register is free again once the dynset has read it."""
    n = exprs.expr_len(c, key)
    size = n if isinstance(key, M.Concat) else 16
    kreg = c.get_reg(size)
    exprs.load(c, key, kreg)
    c.release(size)
    return kreg


def s_set(c, s: M.SetStmt):
    st = exprs.lookup_set(c, M.SetRef(s.set, loc=s.loc))
    pctx.deps(c, s.key)
    d = {"sreg_key": put_reg(_key_reg(c, s.key))}
    if s.data is not None:
        dreg = c.get_reg()
        set_value(c, s.data, st.data, dreg)
        c.release()
        d["sreg_data"] = put_reg(dreg)
    d["op"] = {"add": 0, "update": 1, "delete": 2}[s.op]
    d["set_name"] = s.set
    d["set_id"] = c.set_ids.get(s.set, 0)
    if s.timeout:
        d["timeout"] = s.timeout
    if len(s.stmts) == 1:
        d["expr"] = stateful(c, s.stmts[0])
    elif s.stmts:
        d["expressions"] = [stateful(c, x) for x in s.stmts]
        d["flags"] = 1
    c.exprs.append({"name": "dynset", "data": d})


def s_meter(c, s: M.Meter):
    pctx.deps(c, s.key)
    key = exprs.key_types(c, s.key)
    flags = SET_ANONYMOUS | SET_EVAL
    if s.timeout:
        flags |= SET_TIMEOUT
    sid = c.next_set_id()
    attrs = sets.set_attrs(c, s.name, sid, flags, key, None)
    attrs["desc"] = {"size": s.size or 65535}
    attrs["userdata"] = udata((0, BYTEORDER[sets.key_order(c, key)].to_bytes(4, "little")))
    c.message("newset", attrs, s.loc, f"meter {s.name}")
    d = {"sreg_key": put_reg(_key_reg(c, s.key))}
    if s.timeout:
        d["timeout"] = s.timeout
    d["op"] = 1 if s.timeout else 0
    d["set_name"] = s.name
    d["set_id"] = sid
    d["expr"] = stateful(c, s.stmt)
    c.exprs.append({"name": "dynset", "data": d})


def s_queue(c, s: M.Queue):
    d = {}
    lo = hi = 0
    if isinstance(s.num, M.Range):
        lo, hi = s.num.lo.v, s.num.hi.v
    elif s.num is not None:
        lo = hi = s.num.v
    d["num"] = lo
    d["total"] = hi - lo + 1
    flags = (1 if "bypass" in s.flags else 0) | (2 if "fanout" in s.flags else 0)
    if flags:
        d["flags"] = flags
    c.exprs.append({"name": "queue", "data": d})


def s_flow(c, s: M.FlowOffload):
    if s.flowtable not in c.tbl.flowtables:
        raise NftError(s.loc, f"flowtable {s.flowtable} is not defined in table "
                              f"{c.fam} {c.tbl.name}")
    c.emit("flow_offload", table_name=s.flowtable)


def s_synproxy(c, s: M.Synproxy):
    flags = (1 if s.mss is not None else 0) | (2 if s.wscale is not None else 0)
    for f in s.flags:
        flags |= {"sack-perm": 4, "timestamp": 8}[f]
    c.emit("synproxy", mss=s.mss or 0, wscale=s.wscale or 0, flags=flags)


def s_objref(c, s: M.Objref):
    otype = OBJ_TYPES[s.kind]
    if isinstance(s.name, M.MapExpr):
        pctx.deps(c, s.name.key)
        n = exprs.expr_len(c, s.name.key)
        concat = isinstance(s.name.key, M.Concat)
        kreg = c.get_reg(n if concat else 16)
        exprs.load(c, s.name.key, kreg)
        c.release(n if concat else 16)
        name, sid = exprs.set_for(c, s.name.mapping, exprs.key_types(c, s.name.key), s.kind,
                                  s.loc)
        d = {"set_sreg": kreg, "set_name": name}
        if sid:
            d["set_id"] = sid
        c.exprs.append({"name": "objref", "data": d})
        return
    c.emit("objref", imm_type=otype, imm_name=s.name)
