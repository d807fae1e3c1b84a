"""The expressions a match or a statement starts from: protocol header fields (`tcp
dport`, `@nh,96,32`), meta, ct, fib, numgen and hashes, binary operations on them and
concatenations; after nftables' parser_bison.y (primary_expr, payload_expr, meta_expr,
ct_expr, fib_expr). type_of() says which datatype the value on the other side has, so the
values module can read `ssh` as a port and `established` as a conntrack state.
"""
from . import model as M
from . import proto as P
from . import types as T
from . import values as V

BINOPS = {"&": "&", "and": "&", "|": "|", "or": "|", "^": "^", "xor": "^", "<<": "<<",
          "lshift": "<<", ">>": ">>", "rshift": ">>"}
_BINOP_KINDS = frozenset(("w", "&", "|", "^", "<<", ">>"))
PROTO_WORDS = frozenset(("ether", "vlan", "arp", "ip", "ip6", "icmp", "icmpv6", "tcp", "udp",
                         "udplite", "sctp", "dccp", "th", "esp", "ah", "comp"))
UNSUPPORTED = {
    "osf": "osf (OS fingerprint) matches", "exthdr": "IPv6 extension header matches",
    "hbh": "IPv6 extension header matches", "rt": "routing header / rt expressions",
    "rt0": "IPv6 extension header matches", "rt2": "IPv6 extension header matches",
    "srh": "IPv6 extension header matches", "frag": "IPv6 extension header matches",
    "dst": "IPv6 extension header matches", "mh": "IPv6 extension header matches",
    "ipsec": "ipsec matches", "socket": "socket matches", "igmp": "igmp matches",
    "secmark": "secmark (this kernel has no secmark support)", "xt": "xt (iptables) statements",
    "tunnel": "tunnel matches", "inner": "inner header matches", "cgroupv2": "cgroupv2 matches",
    "last": "last statements", "connlimit": "connlimit", "gre": "gre matches",
    "vxlan": "vxlan matches", "geneve": "geneve matches",
}


def expr(p):
    """concatenation of binop expressions: `ip saddr . tcp dport`, `meta mark & 0xff`."""
    first = binop_expr(p)
    if p.toks[p.i][0] != ".":
        return first
    items = [first]
    while p.toks[p.i][0] == ".":
        p.i += 1
        items.append(binop_expr(p))
    return M.Concat(tuple(items), loc=first.loc)


def binop_expr(p):
    left = primary(p)
    toks = p.toks
    while True:
        t = toks[p.i]
        if t[0] not in _BINOP_KINDS:
            return left
        op = BINOPS.get(t[1])
        if op is None:
            return left
        p.i += 1
        typ = type_of(p, left)
        if op in ("<<", ">>"):
            right = M.Value(T.integer(32, T.HOST), p.number("a shift amount"))
        else:
            right = V.value_or_flags(p, typ, paren=True)
        left = M.Binop(op, left, right, loc=left.loc)


def primary(p):
    t = p.toks[p.i]
    kind, w = t[0], t[1]
    loc = t
    if kind == "(":
        p.next()
        e = expr(p)
        p.expect(")", "')'")
        return e
    if kind == "@":
        base = {"ll": 0, "nh": 1, "th": 2}.get(w)
        if base is None:
            raise p.error(f"unexpected @{w}, expected a raw payload (@ll, @nh, @th)")
        p.next()
        p.expect(",", "','")
        off = p.number("a bit offset")
        p.expect(",", "','")
        bits = p.number("a bit length")
        if bits == 0 or bits > 128:
            raise p.error("raw payload length must be 1..128 bits", p.peek(-1))
        return M.RawPayload(base, off, bits, loc=loc)
    if kind != "w":
        raise p.error(f"unexpected {p.describe(t)}, expected an expression")
    p.i += 1
    if w in PROTO_WORDS:
        return payload(p, w, loc)
    if w == "meta":
        kt = p.peek()
        key = p.word("a meta key")
        if key not in P.META:
            raise p.error(f"unknown meta key {key!r}", kt)
        return M.Meta(key, loc=loc)
    if w in P.META_BARE:
        return M.Meta(w, loc=loc)
    if w == "ct":
        return ct_expr(p, loc)
    if w == "fib":
        return fib_expr(p, loc)
    if w == "numgen":
        mode = p.word("inc or random")
        if mode not in ("inc", "random"):
            raise p.error("numgen: expected inc or random", p.peek(-1))
        p.expect("mod", "'mod'")
        mod = p.number()
        off = p.number() if p.accept("offset") else 0
        return M.Numgen(mode, mod, off, loc=loc)
    if w in ("jhash", "symhash"):
        inner = expr(p) if w == "jhash" else None
        p.expect("mod", "'mod'")
        mod = p.number()
        seed = p.number() if w == "jhash" and p.accept("seed") else None
        off = p.number() if p.accept("offset") else 0
        return M.Hash(w, inner, mod, seed, off, loc=loc)
    if w in UNSUPPORTED:
        raise p.error(f"{UNSUPPORTED[w]}: not supported by linx", t)
    raise p.error(f"unexpected '{w}', expected a statement or an expression "
                  "(ip, tcp, meta, ct, ...)", t)


def payload(p, proto, loc):
    desc = P.PROTOS[proto]
    t = p.toks[p.i]
    if t[0] != "w":
        raise p.error(f"unexpected {p.describe(t)}, expected a {proto} header field")
    field = t[1]
    if proto == "arp" and field in ("saddr", "daddr"):
        p.i += 1
        sub = p.word("ether or ip")
        field = f"{field} {sub}"
        if field not in desc.fields:
            raise p.error(f"unknown arp field {field!r}", p.peek(-1))
        return M.Payload(proto, field, loc=loc)
    if field not in desc.fields:
        raise p.error(f"unknown {proto} header field {field!r} (one of "
                      f"{', '.join(desc.fields)})")
    p.i += 1
    return M.Payload(proto, field, loc=loc)


def ct_expr(p, loc):
    d = None
    if p.at_word("original", "reply"):
        d = p.next()[1]
    fam = None
    if p.at_word("ip", "ip6") and p.peek(1)[0] == "w" and p.peek(1)[1] in (
            "saddr", "daddr"):
        fam = p.next()[1]
    kt = p.peek()
    key = p.word("a conntrack key")
    if key not in P.CT and key not in ("label", "event", "expectation", "count"):
        raise p.error(f"unknown conntrack key {key!r}", kt)
    if key in ("label", "count"):
        raise p.error(f"ct {key}: not supported by linx", kt)
    if key in ("saddr", "daddr") and d is None:
        raise p.error(f"ct {key} needs a direction: ct original {key}", kt)
    if key in ("saddr", "daddr") and fam is None:
        if p.family in ("ip", "ip6"):
            fam = p.family
        else:
            raise p.error(f"cannot determine ip protocol version, use "
                          f"\"ct {d} ip {key}\" or \"ct {d} ip6 {key}\"", kt)
    return M.Ct(key, d, fam, loc=loc)


def fib_expr(p, loc):
    flags = [p.word("a fib flag (saddr, daddr, mark, iif, oif)")]
    while p.accept("."):
        flags.append(p.word("a fib flag"))
    for f in flags:
        if f not in P.FIB_FLAGS:
            raise p.error(f"unknown fib flag {f!r}", p.peek(-1))
    rt = p.peek()
    result = p.word("oif, oifname or type")
    if result not in P.FIB_RESULTS:
        raise p.error(f"unknown fib result {result!r} (oif, oifname, type)", rt)
    order = list(P.FIB_FLAGS)
    return M.Fib(tuple(sorted(flags, key=order.index)), result, loc=loc)


def type_of(p, e):
    """The datatype a value compared with `e` has (a tuple for a concatenation)."""
    if isinstance(e, M.Payload):
        return P.PROTOS[e.proto].fields[e.field][2]
    if isinstance(e, M.Meta):
        return P.META[e.key][1]
    if isinstance(e, M.Ct):
        if e.key in ("saddr", "daddr"):
            return T.IPV4 if e.family == "ip" else T.IPV6
        if e.key == "event":
            return T.BITMASK
        if e.key == "expectation":
            return T.STRING
        return P.CT[e.key][1]
    if isinstance(e, M.Fib):
        if e.result == "oif" and "present" in e.flags:
            return T.BOOLEAN
        return P.FIB_RESULTS[e.result][1]
    if isinstance(e, M.Concat):
        return tuple(type_of(p, x) for x in e.items)
    if isinstance(e, M.Binop):
        return type_of(p, e.left)
    if isinstance(e, M.RawPayload):
        return T.xinteger(e.bits)
    if isinstance(e, (M.Numgen, M.Hash)):
        return T.integer(32, T.HOST)
    if isinstance(e, M.MapExpr):
        return map_data_type(p, e)
    raise p.error("cannot use this expression here", None)


def map_data_type(p, e):
    if isinstance(e.mapping, M.SetRef):
        s = p.table.sets.get(e.mapping.name)
        if s is not None and s.data is not None:
            return s.data
    return None
