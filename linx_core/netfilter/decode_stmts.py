"""The statement expressions of a rule back to nft statements (the *_parse functions
of nftables' src/netlink_delinearize.c for counter, limit, quota, log, reject, nat,
masq, redir, notrack, queue, flow_offload, synproxy, tproxy, objref, dynset). Each takes
the rule decoder (its registers and statements so far) and the expression's attributes.
"""
from . import decode_context as C
from . import decode_values as V
from . import model as M
from . import nf_tables as N
from . import proto as P
from . import types as T

LOG_LEVELS = {v: k for k, v in N.LOG_LEVELS.items()}


def counter(dec, d):
    """A counter's values vary from rule to rule: free, made from (packets, bytes) (the
    varying part wire.decode_rule_shape gives for a counter)."""
    c = M.Counter(d.get("packets", 0), d.get("bytes", 0))
    dec.free[dec.cur] = (len(dec.stmts), c, _counter)
    dec.stmts.append(c)


def _counter(values) -> M.Counter:
    return M.Counter(*values)


def limit(dec, d):
    dec.stmts.append(V.limit(d))


def quota(dec, d):
    dec.stmts.append(V.stateful({"name": "quota", "data": d}))


def log(dec, d):
    flags = []
    fl = d.get("flags", 0)
    if fl & 0x2f == 0x2f:
        flags = ["all"]
    else:
        for bit, name in ((1, "tcp sequence"), (2, "tcp options"), (4, "ip options"),
                          (8, "skuid"), (0x20, "ether")):
            if fl & bit:
                flags.append(name)
    level = LOG_LEVELS.get(d["level"]) if "level" in d else None
    dec.stmts.append(M.Log(d.get("prefix"), None if level == "warn" else level,
                           d.get("group"), d.get("snaplen") or None if "group" in d
                           else None, d.get("qthreshold") or None if "group" in d
                           else None, tuple(flags)))


def reject(dec, d):
    typ, code = d.get("type", 0), d.get("icmp_code", 0)
    if typ == 1:
        if dec.fam in ("ip", "ip6"):
            C.kill_dep(dec, P.TH)
        dec.stmts.append(M.Reject("tcp reset"))
        return
    if typ == 2:
        dec.stmts.append(M.Reject(None) if code == 1 else
                         M.Reject("icmpx", M.Value(T.ICMPX_CODE, code)))
        return
    if dec.fam == "ip":
        dec.stmts.append(M.Reject(None) if code == 3 else
                         M.Reject("icmp", M.Value(T.ICMP_CODE, code)))
        return
    if dec.fam == "ip6":
        dec.stmts.append(M.Reject(None) if code == 4 else
                         M.Reject("icmpv6", M.Value(T.ICMPV6_CODE, code)))
        return
    nh = dec.ctx.get(P.NH)
    C.kill_dep(dec, P.NH)
    if nh == "ip6":
        dec.stmts.append(M.Reject("icmpv6", M.Value(T.ICMPV6_CODE, code)))
    else:
        dec.stmts.append(M.Reject("icmp", M.Value(T.ICMP_CODE, code)))


def nat(dec, d):
    kind = ("snat", "dnat")[d["type"]]
    fam = P.FAMILY_NAMES.get(d.get("family"), "ip")
    _nat(dec, kind, d, fam)


def masq(dec, d):
    _nat(dec, "masquerade", d, None)


def redir(dec, d):
    _nat(dec, "redirect", d, None)


def _nat(dec, kind, d, fam):
    atype = T.IPV6 if fam == "ip6" else T.IPV4
    flags = tuple(f for bit, f in ((4, "random"), (16, "fully-random"), (8, "persistent"))
                  if d.get("flags", 0) & bit)
    flags = tuple(f for f in ("random", "fully-random", "persistent") if f in flags)
    addr = port = None
    family = fam if dec.fam == "inet" else None
    concat = False
    amin, amax = d.get("reg_addr_min"), d.get("reg_addr_max")
    if amin:
        r = dec.regs[amin]
        if isinstance(r.expr, M.MapExpr):
            addr = r.expr
            pmin = d.get("reg_proto_min")
            if pmin and pmin != amin:
                concat = True
                family = fam
            dec.stmts.append(M.Nat(kind, family, addr, None, flags, concat))
            return
        addr = dec.value_of(amin, atype)
        if amax and amax != amin:
            hi = dec.value_of(amax, atype)
            addr = V.range_expr(atype, addr.v, hi.v)
    pmin, pmax = d.get("reg_proto_min"), d.get("reg_proto_max")
    if pmin:
        r = dec.regs[pmin]
        if isinstance(r.expr, M.MapExpr):
            port = r.expr
        else:
            port = dec.value_of(pmin, T.INET_SERVICE)
            if pmax and pmax != pmin:
                port = M.Range(port, dec.value_of(pmax, T.INET_SERVICE))
    dec.stmts.append(M.Nat(kind, family if addr is not None else None, addr, port,
                           flags, concat))


def notrack(dec, d):
    dec.stmts.append(M.Notrack())


def queue(dec, d):
    num = d.get("num", 0)
    total = d.get("total", 1)
    flags = tuple(f for bit, f in ((1, "bypass"), (2, "fanout")) if d.get("flags", 0) & bit)
    t = T.integer(16, T.HOST)
    q = M.Range(M.Value(t, num), M.Value(t, num + total - 1)) if total > 1 else \
        M.Value(t, num)
    dec.stmts.append(M.Queue(q, flags))


def flow_offload(dec, d):
    dec.stmts.append(M.FlowOffload(d["table_name"]))


def synproxy(dec, d):
    fl = d.get("flags", 0)
    flags = tuple(f for bit, f in ((8, "timestamp"), (4, "sack-perm")) if fl & bit)
    dec.stmts.append(M.Synproxy(d.get("mss") if fl & 1 else None,
                                d.get("wscale") if fl & 2 else None, flags))


def tproxy(dec, d):
    fam = P.FAMILY_NAMES.get(d.get("family")) if d.get("family") else None
    atype = T.IPV6 if (fam or dec.fam) == "ip6" else T.IPV4
    addr = dec.value_of(d["reg_addr"], atype) if "reg_addr" in d else None
    port = dec.value_of(d["reg_port"], T.INET_SERVICE) if "reg_port" in d else None
    dec.stmts.append(M.Tproxy(fam if dec.fam == "inet" else None, addr, port))


def objref(dec, d):
    if "set_name" in d:
        ks = dec.sets.get(d["set_name"])
        left = dec.concat_or_single(d["set_sreg"], ks)
        kind = ks.objtype or "counter"
        dec.stmts.append(M.Objref(kind, M.MapExpr(left, dec.mapping_of(ks))))
        return
    kind = V.OBJ_KINDS.get(d["imm_type"], "counter")
    dec.stmts.append(M.Objref(kind, d["imm_name"]))


def dynset(dec, d):
    ks = dec.sets.get(d["set_name"])
    if ks is None:
        raise V.DecodeError(f"dynset on unknown set {d['set_name']}")
    key = dec.concat_or_single(d["sreg_key"], ks)
    inner = [d["expr"]] if "expr" in d else d.get("expressions", [])
    stmts = tuple(V.stateful(x) for x in inner)
    if ks.anonymous and ks.flags & N.SET_EVAL:        # a meter
        size = (ks.a.get("desc") or {}).get("size")
        dec.stmts.append(M.Meter(ks.name, key, stmts[0] if stmts else None,
                                 d.get("timeout"), size))
        return
    data = None
    if "sreg_data" in d:
        data = dec.value_of(d["sreg_data"], ks.data_type())
    op = ("add", "update", "delete")[d.get("op", 0)]
    dec.stmts.append(M.SetStmt(op, ks.name, key, d.get("timeout"), stmts, data))
