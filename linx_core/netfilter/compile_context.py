"""The protocol context and the dependencies it implies (nftables src/evaluate.c,
src/payload.c, src/proto.c): `tcp dport` in an inet table first needs `meta l4proto tcp`,
unless an earlier match of the rule already established it."""

from . import model as M
from . import proto as P
from . import types as T
from .location import NftError


def evaluate(c, s):
    """The dependencies statement `s` needs, given what the rule established so far."""
    k = type(s)
    if k is M.Match:
        deps(c, s.left)
        if s.op in ("", "=="):
            update_ctx(c, s.left, s.right)
    elif k is M.Vmap or k is M.SetStmt or k is M.Meter:
        deps(c, s.key)
    elif k is M.Objref and isinstance(s.name, M.MapExpr):
        deps(c, s.name.key)
    elif k is M.MetaSet or k is M.CtSet:
        deps(c, s.expr)
    elif k is M.Nat:
        for part in (s.addr, s.port):
            if isinstance(part, M.MapExpr):
                deps(c, part.key)
            elif part is not None and not isinstance(part, (M.Value, M.Range, M.Prefix)):
                deps(c, part)
        if s.port is not None and s.kind in ("masquerade", "redirect") and \
                c.ctx.get(P.TH) is None:
            raise NftError(s.loc, "transport protocol mapping is only valid after "
                                  "transport protocol match")
    elif k is M.Reject:
        if s.kind == "tcp reset":
            if c.ctx.get(P.TH) != "tcp":
                dep_match(c, M.Meta("l4proto"), T.INET_PROTO, 6)
                c.ctx[P.TH] = "tcp"
        elif s.kind in ("icmp", "icmpv6") and c.fam in ("inet", "bridge", "netdev"):
            upper = "ip" if s.kind == "icmp" else "ip6"
            if c.ctx.get(P.NH) != upper:
                lower = {"inet": "inet", "bridge": "netdev", "netdev": "netdev"}[c.fam]
                add_dep(c, lower, upper, s)
    elif k is M.Tproxy:
        if c.ctx.get(P.TH) is None:
            raise NftError(s.loc, "transparent proxy support requires transport "
                                  "protocol match")


def deps(c, e):
    """The protocol dependencies of `e` (payload_gen_dependency() of nft's payload.c)."""
    if c.emitting:
        return
    if isinstance(e, M.Payload):
        payload_dep(c, e)
    elif isinstance(e, (M.Concat,)):
        for x in e.items:
            deps(c, x)
    elif isinstance(e, M.Binop):
        deps(c, e.left)
    elif isinstance(e, M.MapExpr):
        deps(c, e.key)
    elif isinstance(e, M.Hash) and e.expr is not None:
        deps(c, e.expr)


def payload_dep(c, e: M.Payload):
    desc = P.PROTOS[e.proto]
    if desc.name == "th":
        return
    base = desc.base
    if c.ctx.get(base) == desc.name:
        icmp_dep(c, e)
        return
    if base == P.LL:
        # Below the hook's own header (or beside inet/netdev's pseudo header) the
        # link layer is only known to be Ethernet on input: meta iiftype ether.
        if c.ctx.get(P.LL) != "ether":
            dep_match(c, M.Meta("iiftype"), T.ARPHRD, 1)
            c.ctx[P.LL] = "ether"
        if desc.name != "ether":
            add_dep(c, "ether", desc.name, e)
        return
    lower = c.ctx.get(base - 1)
    if lower is None and base == P.TH:
        if desc.name in ("icmp", "icmpv6"):
            ll = c.ctx.get(P.LL) or {"inet": "inet", "bridge": "ether",
                                     "netdev": "netdev"}.get(c.fam)
            upper = "ip6" if desc.name == "icmpv6" else "ip"
            if ll is not None:
                add_dep(c, ll, upper, e)
            lower = upper
        else:
            lower = "inet-service"
    if lower is None:
        raise NftError(e.loc, f"ambiguous payload specification: no "
                              f"{P.BASE_NAMES[base - 1]} protocol specified")
    if c.fam == "bridge" and lower == "ether" and desc.name in ("ip", "ip6"):
        lower = "netdev"
    add_dep(c, lower, desc.name, e)
    icmp_dep(c, e)


def icmp_dep(c, e: M.Payload):
    """Fields of some ICMP messages only: match the type first (payload.c's
    payload_gen_icmp_dependency)."""
    need = P.ICMP_DEPS.get((e.proto, e.field))
    if need is None:
        return
    typ = P.PROTOS[e.proto].fields["type"][2]
    echo = P.ICMP_ECHO[e.proto]
    if need == "echo":
        if c.icmp_type in echo:
            return
        c.pre.append(M.Match(M.Payload(e.proto, "type"), "",
                             M.SetLit(tuple(M.Value(typ, v) for v in echo))))
        return
    if c.icmp_type != need:
        c.pre.append(M.Match(M.Payload(e.proto, "type"), "", M.Value(typ, need)))
        c.icmp_type = need


_DEPS: dict = {}


def add_dep(c, lower, upper, e):
    """`meta l4proto tcp` before `tcp dport`: the match that says protocol `upper` sits
    above `lower`. One Match value per (lower, upper), shared by the rules that need it."""
    dep = _DEPS.get((lower, upper))
    if dep is None:
        ldesc = P.PROTOS[lower]
        num = ldesc.links.get(upper)
        if num is None:
            raise NftError(e.loc, f"conflicting protocols specified: {lower} vs. {upper}")
        key = ldesc.key
        if key.startswith("meta "):
            mkey = key[5:]
            left = M.Meta(mkey)
            typ = P.META[mkey][1]
        else:
            left = M.Payload(lower if lower != "netdev" else "ether", key)
            typ = ldesc.fields[key][2]
        dep = _DEPS[(lower, upper)] = (M.Match(left, "", M.Value(typ, num)),
                                       P.PROTOS[upper].base)
    c.pre.append(dep[0])
    c.ctx[dep[1]] = upper


def dep_match(c, left, typ, value):
    c.pre.append(M.Match(left, "", M.Value(typ, value)))


def update_ctx(c, left, right):
    """relational_expr_pctx_update(): `meta l4proto tcp` tells later payloads which
    header comes next, so they need no dependency of their own."""
    lt = type(left)
    if lt is M.Payload and left.proto in ("icmp", "icmpv6") and left.field == "type" and \
            isinstance(right, M.SetLit):
        echo = P.ICMP_ECHO[left.proto]
        if right.elems and all(isinstance(e, M.Value) and e.v in echo for e in right.elems):
            c.icmp_type = echo[0]
        return
    if not isinstance(right, M.Value) or not isinstance(right.v, int):
        return
    if lt is M.Meta:
        links = _links(("meta", left.key))
    elif lt is M.Payload:
        if left.proto in ("icmp", "icmpv6") and left.field == "type":
            c.icmp_type = right.v
        links = _links((left.proto, left.field))
    else:
        return
    hit = links.get(right.v)
    if hit is not None:
        c.ctx[P.PROTOS[hit[1]].base if hit[0] is None else hit[0]] = hit[1]


_LINKS: dict = {}


def _links(key) -> dict:
    """What a match of `key` (("meta", key) or (proto, field)) with a value establishes:
    {value: (header base, protocol)}, from the protocol descriptions' links."""
    links = _LINKS.get(key)
    if links is not None:
        return links
    links = {}
    kind, name = key
    if kind == "meta":
        for d in P.PROTOS.values():
            if d.key == f"meta {name}":
                for upper, num in d.links.items():
                    links.setdefault(num, (_base(upper), upper))
    else:
        d = P.PROTOS[kind]
        if d.key == name:
            for upper, num in d.links.items():
                links.setdefault(num, (_base(upper), upper))
        if kind in ("ip", "ip6") and name in ("protocol", "nexthdr"):
            for upper, num in d.links.items():
                links.setdefault(num, (P.TH, upper))
    _LINKS[key] = links
    return links


def _base(proto):
    """The header base of `proto`; None for a protocol linx has no description of (a
    match that establishes one fails as it did before: no such protocol)."""
    d = P.PROTOS.get(proto)
    return None if d is None else d.base
