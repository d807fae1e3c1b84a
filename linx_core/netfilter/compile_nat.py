"""snat, dnat, masquerade, redirect and tproxy: addresses and ports loaded into
registers, the nat expression pointing at them (nftables src/netlink_linearize.c,
netlink_gen_nat_stmt(), netlink_gen_tproxy_stmt())."""

from . import compile_exprs as exprs
from . import model as M
from . import proto as P
from . import types as T
from .nf_tables import NAT_TYPES, NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED, put_reg, reg_space


def s_nat(c, s: M.Nat):
    fam = s.family or (c.fam if c.fam in ("ip", "ip6") else None)
    if fam is None and s.addr is not None:
        a = s.addr.lo if isinstance(s.addr, M.Range) else s.addr
        fam = "ip6" if isinstance(a, M.Value) and a.type.kind == "ipv6" else "ip"
    if fam is None:
        fam = "ip"
    if s.kind in ("snat", "dnat"):
        name, d = "nat", {"type": NAT_TYPES[s.kind], "family": P.FAMILIES[fam]}
    else:
        name, d = ("masq" if s.kind == "masquerade" else "redir"), {}
    flags = 0
    for f in s.flags:
        flags |= NAT_FLAGS[f]
    if s.port is not None:
        flags |= NF_NAT_RANGE_PROTO_SPECIFIED
    if flags:
        d["flags"] = flags
    regs = 0
    atype = T.IPV6 if fam == "ip6" else T.IPV4
    if s.addr is not None:
        amin = c.get_reg()
        regs += 1
        if isinstance(s.addr, M.Range):
            amax = c.get_reg()
            regs += 1
            exprs.load(c, M.Value(atype, s.addr.lo.v), amin)
            exprs.load(c, M.Value(atype, s.addr.hi.v), amax)
            d["reg_addr_min"] = put_reg(amin)
            d["reg_addr_max"] = put_reg(amax)
        elif isinstance(s.addr, M.Prefix):
            amax = c.get_reg()
            regs += 1
            lo = s.addr.value.v
            hi = lo | ((1 << (atype.bits - s.addr.plen)) - 1)
            exprs.load(c, M.Value(atype, lo), amin)
            exprs.load(c, M.Value(atype, hi), amax)
            d["reg_addr_min"] = put_reg(amin)
            d["reg_addr_max"] = put_reg(amax)
        elif isinstance(s.addr, M.MapExpr):
            data = (atype, T.INET_SERVICE) if s.concat else atype
            exprs.map_lookup(c, s.addr, amin, data)
            d["reg_addr_min"] = put_reg(amin)
            if s.concat:
                d["reg_proto_min"] = put_reg(amin + reg_space(atype.size))
        else:
            exprs.load(c, M.Value(atype, s.addr.v), amin)
            d["reg_addr_min"] = put_reg(amin)
    if s.port is not None:
        pmin = c.get_reg()
        regs += 1
        key_min = "reg_proto_min"
        key_max = "reg_proto_max"
        if isinstance(s.port, M.Range):
            pmax = c.get_reg()
            regs += 1
            exprs.load(c, s.port.lo, pmin)
            exprs.load(c, s.port.hi, pmax)
            d[key_min] = put_reg(pmin)
            d[key_max] = put_reg(pmax)
        elif isinstance(s.port, M.MapExpr):
            exprs.map_lookup(c, s.port, pmin, T.INET_SERVICE)
            d[key_min] = put_reg(pmin)
        elif isinstance(s.port, M.Value):
            exprs.load(c, s.port, pmin)
            d[key_min] = put_reg(pmin)
        else:
            exprs.load(c, s.port, pmin)
            d[key_min] = put_reg(pmin)
    for _ in range(regs):
        c.release()
    c.exprs.append({"name": name, "data": _nat_order(name, d)})


def _nat_order(name, d):
    """Attributes in libnftnl's order (nftnl_expr_nat_build)."""
    order = ("type", "family", "reg_addr_min", "reg_addr_max", "reg_proto_min",
             "reg_proto_max", "flags")
    return {k: d[k] for k in order if k in d}


def s_tproxy(c, s: M.Tproxy):
    fam = s.family or (c.fam if c.fam in ("ip", "ip6") else None)
    d = {"family": P.FAMILIES[fam] if fam else 0}
    regs = 0
    if s.addr is not None:
        areg = c.get_reg()
        regs += 1
        exprs.load(c, s.addr, areg)
        d["reg_addr"] = put_reg(areg)
    if s.port is not None:
        preg = c.get_reg()
        regs += 1
        exprs.load(c, s.port, preg)
        d["reg_port"] = put_reg(preg)
    for _ in range(regs):
        c.release()
    c.exprs.append({"name": "tproxy", "data": d})
