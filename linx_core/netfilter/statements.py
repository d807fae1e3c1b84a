"""A rule and its statements: matches (`left op right`), verdicts, vmap, and the
statements counter, log, limit, quota, reject, snat/dnat/masquerade/redirect, queue,
notrack, meta/ct set, set add/update, meter, flow add, synproxy, tproxy; after nftables'
parser_bison.y (rule, stmt and its *_stmt rules).

Rule tags (linx's stable rule identity, see README "Rule tags") are written in the rule's
comment: `comment "tag:NAME"` or `comment "tag:NAME rest of the comment"`.
"""

from . import expressions as E
from . import model as M
from . import proto as P
from . import types as T
from . import values as V
from .location import NftError

VERDICTS = ("accept", "drop", "continue", "return", "jump", "goto", "queue")
OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", ">": ">",
       "gt": ">", "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}
TIME_UNITS = ("second", "minute", "hour", "day", "week")
BYTE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 ** 2, "gbytes": 1024 ** 3}
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit")
LOG_FLAGS = ("tcp sequence", "tcp options", "ip options", "skuid", "ether", "all")
_RULE_END = frozenset((";", "}", "eof"))


def rule(p) -> M.Rule:
    toks = p.toks
    start = toks[p.i]
    stmts = []
    comment = None
    while True:
        t = toks[p.i]
        if t[0] in _RULE_END:
            break
        if t[1] == "comment" and t[0] == "w":
            p.i += 1
            comment = p.string("a quoted comment")
            break
        stmts.append(statement(p))
    if not stmts:
        if start[0] == "eof":
            raise p.error("unexpected end of file, expected '}'", start)
        raise p.error("empty rule", start)
    tag, comment = M.split_tag(comment)
    t = toks[p.i]
    if t[0] not in _RULE_END:
        raise p.error(f"unexpected {p.describe(t)}, expected end of rule")
    return M.Rule(stmts, comment=comment, tag=tag, loc=start)


def statement(p):
    toks = p.toks
    t = toks[p.i]
    kind, w = t[0], t[1]
    if kind == "w":
        handler = _STMTS.get(w)         # a verdict or a statement keyword
        if handler is not None:
            return handler(p, t)
        if w in E.UNSUPPORTED:
            raise p.error(f"{E.UNSUPPORTED[w]}: not supported by linx")
        if w in ("add", "update", "delete") and toks[p.i + 1][0] == "@":
            return set_stmt(p, t)
        if w == "tcp" and toks[p.i + 1][0] == "w" and toks[p.i + 1][1] in ("option",
                                                                           "options"):
            raise p.error("tcp option: not supported by linx")
    elif kind not in ("@", "$", "("):
        raise p.error(f"unexpected {p.describe(t)}, expected a statement")
    left = E.expr(p)
    nt = toks[p.i]
    if nt[0] == "w":
        if nt[1] == "set":
            return set_value_stmt(p, left, t)
        if nt[1] == "vmap":
            p.i += 1
            mapping = V.mapping(p, E.type_of(p, left), "verdict")
            return M.Vmap(left, mapping, loc=t)
    return relational(p, left, t)


def verdict_or_queue(p, loc):
    if p.toks[p.i][1] == "queue":
        return queue_stmt(p, loc)
    return M.VerdictStmt(verdict(p), loc=loc)


def verdict(p) -> M.Verdict:
    t = p.toks[p.i]
    w = p.word("a verdict")
    if w in ("accept", "drop", "continue", "return"):
        return M.Verdict(w, loc=t)
    if w in ("jump", "goto"):
        return M.Verdict(w, p.name("a chain name"), loc=t)
    if w == "queue":
        return M.Verdict("queue", loc=t)
    raise p.error(f"unexpected '{w}', expected a verdict (accept, drop, continue, "
                  "return, jump CHAIN, goto CHAIN)", t)


def relational(p, left, loc):
    t = p.toks[p.i]
    op = ""
    if (t[0] in OPS and t[0] != "w") or (t[0] == "w" and t[1] in OPS):
        op = OPS[t[1]]
        p.i += 1
    typ = E.type_of(p, left)
    if isinstance(left, M.Fib) and left.result == "oif" and p.at_word("exists",
                                                                      "missing"):
        left = M.Fib(left.flags + ("present",) if "present" not in left.flags
                     else left.flags, left.result, loc=left.loc)
        typ = T.BOOLEAN
    right = V.rhs(p, typ, op)
    bitmask = isinstance(typ, T.Type) and typ.kind == "bitmask"
    if bitmask and p.toks[p.i][0] == "/":
        # `tcp flags syn / syn,ack`: the value under a mask.
        p.i += 1
        mask = V.value_or_flags(p, typ)
        left = M.Binop("&", left, mask, loc=left.loc)
        op = op or "=="
    if op == "==" and not isinstance(left, M.Binop) and not (
            isinstance(right, M.Flags) or (bitmask and isinstance(right, M.Value))):
        op = ""
    if op == "" and isinstance(left, M.Binop):
        op = "=="
    if op in ("<", ">", "<=", ">=") and not isinstance(right, M.Value):
        raise NftError(right.loc or loc, f"'{op}' compares with a single value")
    return M.Match(left, op, right, loc=loc)


def set_value_stmt(p, left, loc):
    p.next()   # set
    if isinstance(left, M.Meta):
        typ = P.META[left.key][1]
        return M.MetaSet(left.key, stmt_value(p, typ), loc=loc)
    if isinstance(left, M.Ct):
        if left.key in ("helper",) or left.key in ("timeout", "expectation"):
            return M.Objref(f"ct {left.key}", p.string("an object name"), loc=loc)
        if left.key not in ("mark", "zone", "event", "secmark", "label"):
            raise NftError(loc, f"ct {left.key} cannot be set")
        if left.key == "event":
            return M.CtSet("event", V.value_or_flags(p, T.CT_EVENT), left.dir, loc=loc)
        typ = E.type_of(p, left)
        return M.CtSet(left.key, stmt_value(p, typ), left.dir, loc=loc)
    raise NftError(loc, "payload set statements (mangling): not supported by linx")


def stmt_value(p, typ):
    """The value of a set statement: a constant, or an expression (`meta mark`,
    `tcp dport map { ... }`, `ct mark & 0xff`)."""
    t = p.peek()
    if t[0] == "w" and (t[1] in E.PROTO_WORDS or t[1] in ("meta", "ct", "numgen",
                                                          "jhash", "symhash", "fib")
                        or t[1] in P.META_BARE) or t[0] == "@" and t[1] in ("ll", "nh",
                                                                            "th"):
        e = E.expr(p)
        if p.at_word("map"):
            p.next()
            mapping = V.mapping(p, E.type_of(p, e), typ)
            e = M.MapExpr(e, mapping, loc=e.loc)
        return e
    v = V.value_or_flags(p, typ, paren=True)
    while p.at("|", "&", "^") or p.at_word("or", "and", "xor"):
        raise p.error("expressions on constants are not supported; write the value")
    return v


def set_stmt(p, loc):
    op = p.next()[1]
    st = p.next()
    name = st[1]
    s = p.table.sets.get(name) if p.table else None
    if s is None:
        raise p.error(f"set {name} is not defined in this table", st)
    p.expect("{", "'{'")
    key = E.expr(p)
    timeout = None
    stmts = []
    data = None
    while True:
        if p.at_word("timeout"):
            p.next()
            timeout = V.time_value(p)
        elif p.at_word("counter"):
            stmts.append(counter_stmt(p, p.loc()))
        elif p.at_word("limit"):
            stmts.append(limit_stmt(p, p.loc()))
        elif p.at_word("quota"):
            stmts.append(quota_stmt(p, p.loc()))
        elif p.at(":"):
            p.next()
            data = stmt_value(p, s.data)
        else:
            break
    p.expect("}", "'}'")
    return M.SetStmt(op, name, key, timeout, tuple(stmts), data, loc=loc)


def counter_stmt(p, loc):
    p.i += 1
    t = p.toks[p.i]
    if t[0] == "w" and t[1] == "name":
        p.i += 1
        return M.Objref("counter", name_or_map(p, "counter"), loc=loc)
    packets = nbytes = None
    if t[0] == "w" and t[1] == "packets":
        p.i += 1
        packets = p.number()
        p.expect("bytes", "'bytes'")
        nbytes = p.number()
    return M.Counter(packets, nbytes, loc=loc)


def name_or_map(p, kind):
    t = p.peek()
    if t[0] == "q" or (t[0] == "w" and t[1] not in E.PROTO_WORDS and t[1] not in (
            "meta", "ct") and t[1] not in P.META_BARE):
        p.next()
        return t[1]
    e = E.expr(p)
    p.expect("map", "'map'")
    return M.MapExpr(e, V.mapping(p, E.type_of(p, e), kind), loc=e.loc)


def log_stmt(p, loc):
    p.next()
    log = M.Log(loc=loc)
    flags = []
    while True:
        if p.at_word("prefix"):
            p.next()
            log.prefix = p.string("a quoted prefix")
        elif p.at_word("level"):
            p.next()
            lt = p.peek()
            log.level = p.word("a log level")
            if log.level not in LOG_LEVELS:
                raise p.error(f"unknown log level {log.level!r}", lt)
        elif p.at_word("group"):
            p.next()
            log.group = p.number()
        elif p.at_word("snaplen"):
            p.next()
            log.snaplen = p.number()
        elif p.at_word("queue-threshold"):
            p.next()
            log.qthreshold = p.number()
        elif p.at_word("flags"):
            p.next()
            ft = p.peek()
            f = p.word("a log flag")
            if f in ("tcp", "ip"):
                sub = [p.word(f"{f} log flags")]
                while p.accept(","):
                    sub.append(p.word(f"{f} log flags"))
                names = [f"{f} {x}" for x in sub]
            else:
                names = [f]
            for name in names:
                if name not in LOG_FLAGS:
                    raise p.error(f"unknown log flag {name!r}", ft)
                flags.append(name)
        else:
            break
    log.flags = tuple(flags)
    if log.group is not None and log.level is not None:
        raise NftError(loc, "log: level and group are mutually exclusive")
    return log


def rate_value(p):
    """`10/second`, `10 mbytes/second`, `1/minute`."""
    n = p.number("a rate")
    t = p.peek()
    if t[0] == "w" and "/" in t[1]:
        p.next()
        unit, per = t[1].split("/", 1)
        if unit not in BYTE_UNITS or per not in TIME_UNITS:
            raise p.error(f"bad rate unit {t[1]!r}", t)
        return n * BYTE_UNITS[unit], per, True
    if t[0] == "w" and t[1] in BYTE_UNITS:
        p.next()
        p.expect("/", "'/'")
        per = p.word("second, minute, hour, day or week")
        if per not in TIME_UNITS:
            raise p.error(f"bad time unit {per!r}", p.peek(-1))
        return n * BYTE_UNITS[t[1]], per, True
    p.expect("/", "'/'")
    pt = p.peek()
    per = p.word("second, minute, hour, day or week")
    if per not in TIME_UNITS:
        raise p.error(f"bad time unit {per!r}", pt)
    return n, per, False


def limit_stmt(p, loc):
    p.next()
    if p.at_word("name"):
        p.next()
        return M.Objref("limit", name_or_map(p, "limit"), loc=loc)
    p.expect("rate", "'rate'")
    over = bool(p.accept("over"))
    if p.at_word("until"):
        p.next()
    rate, unit, is_bytes = rate_value(p)
    burst = None
    if p.at_word("burst"):
        p.next()
        burst = p.number("a burst size")
        bt = p.peek()
        bunit = p.word("packets or a byte unit") if bt[0] == "w" else (
            "bytes" if is_bytes else "packets")
        if is_bytes:
            if bunit not in BYTE_UNITS:
                raise p.error("burst of a byte rate is in bytes, kbytes, mbytes", bt)
            burst *= BYTE_UNITS[bunit]
        elif bunit != "packets":
            raise p.error("burst of a packet rate is in packets", bt)
    if burst == (0 if is_bytes else 5):      # the kernel's default, which nft omits
        burst = None
    return M.Limit(rate, unit, burst, is_bytes, over, loc=loc)


def quota_stmt(p, loc):
    p.next()
    if p.at_word("name"):
        p.next()
        return M.Objref("quota", name_or_map(p, "quota"), loc=loc)
    return M.Quota(*quota_args(p), loc=loc)


def quota_args(p) -> tuple:
    """`[over|until] AMOUNT UNIT [used AMOUNT UNIT]`, as a statement and as a named quota:
    (bytes, used, over)."""
    over = False
    if p.at_word("over", "until"):
        over = p.next()[1] == "over"
    amount = byte_amount(p)
    used = 0
    if p.at_word("used"):
        p.next()
        used = byte_amount(p)
    return amount, used, over


def byte_amount(p) -> int:
    n = p.number("an amount")
    ut = p.peek()
    unit = p.word("bytes, kbytes, mbytes or gbytes")
    if unit not in BYTE_UNITS:
        raise p.error(f"unknown byte unit {unit!r}", ut)
    return n * BYTE_UNITS[unit]


def reject_stmt(p, loc):
    p.next()
    if not p.at_word("with"):
        return M.Reject(loc=loc)
    p.next()
    t = p.peek()
    kind = p.word("icmp, icmpv6, icmpx or tcp")
    if kind == "tcp":
        p.expect("reset", "'reset'")
        return M.Reject("tcp reset", loc=loc)
    typ = {"icmp": T.ICMP_CODE, "icmpv6": T.ICMPV6_CODE, "icmpx": T.ICMPX_CODE}.get(kind)
    if typ is None:
        raise p.error(f"unexpected '{kind}', expected icmp, icmpv6, icmpx or tcp", t)
    if kind == "icmpv6" and p.family in ("ip",):
        raise p.error("reject with icmpv6 in an ip table", t)
    if kind == "icmp" and p.family == "ip6":
        raise p.error("reject with icmp in an ip6 table", t)
    p.accept("type")
    return M.Reject(kind, V.atom(p, typ), loc=loc)


def nat_stmt(p, loc):
    kind = p.next()[1]
    family = None
    if kind in ("snat", "dnat") and p.at_word("ip", "ip6") and p.peek(1)[0] == "w" \
            and p.peek(1)[1] in ("to", "addr"):
        family = p.next()[1]
    fam = family or (p.family if p.family in ("ip", "ip6") else None)
    atype = T.IPV6 if fam == "ip6" else T.IPV4
    addr = port = None
    concat = False
    if kind in ("snat", "dnat"):
        if not p.accept("to"):
            raise p.error(f"{kind}: expected 'to' and an address")
        if p.at(":"):
            p.next()
            port = nat_port(p)
        else:
            addr, port, concat = nat_addr(p, atype, fam)
    elif p.at_word("to"):
        p.next()
        if kind == "redirect" and p.peek()[0] == "n":
            port = nat_port(p)
        else:
            p.expect(":", "':' and a port")
            port = nat_port(p)
    flags = []
    while p.at_word("random", "fully-random", "persistent", "netmap"):
        flags.append(p.next()[1])
        if not p.accept(","):
            continue
    return M.Nat(kind, family, addr, port, tuple(flags), concat, loc=loc)


def nat_addr(p, atype, fam):
    t = p.peek()
    if t[0] == "w" and (t[1] in E.PROTO_WORDS or t[1] in ("meta", "ct", "numgen",
                                                        "jhash", "symhash")
                        or t[1] in P.META_BARE):
        e = E.expr(p)
        p.expect("map", "'map'")
        if fam is None:
            raise p.error("nat with a map in an inet table needs 'ip' or 'ip6' "
                          "(dnat ip to ...)", t)
        if p.peek()[0] == "@":
            return M.MapExpr(e, V.mapping(p, E.type_of(p, e), atype), loc=e.loc), None, \
                False
        # `{ k : addr . port }` maps to a concatenation: address and port at once.
        start = p.i
        lit = V.set_literal(p, E.type_of(p, e), atype) if not map_has_concat_data(p) \
            else None
        if lit is not None:
            return M.MapExpr(e, lit, loc=e.loc), None, False
        p.i = start
        lit = V.set_literal(p, E.type_of(p, e), (atype, T.INET_SERVICE))
        return M.MapExpr(e, lit, loc=e.loc), None, True
    if t[0] == "w" and t[1].startswith("[") is False and fam is None and ":" in t[1]:
        fam = "ip6"
    if fam is None:
        # inet table: the address tells the family
        fam = "ip6" if t[0] == "w" and ":" in t[1] else "ip"
        atype = T.IPV6 if fam == "ip6" else T.IPV4
    addr = V.single(p, atype, allow_range=True)
    port = None
    if p.at(":"):
        p.next()
        port = nat_port(p)
    return addr, port, False


def map_has_concat_data(p) -> bool:
    """Looking ahead in `{ k : v ... }`: is v written `addr . port`?"""
    depth, j = 0, p.i
    seen_colon = False
    while True:
        t = p.toks[j]
        if t[0] == "{":
            depth += 1
        elif t[0] == "}":
            depth -= 1
            if depth == 0:
                return False
        elif t[0] == ":" and depth == 1:
            seen_colon = True
        elif t[0] == "," and depth == 1:
            seen_colon = False
        elif t[0] == "." and depth == 1 and seen_colon:
            return True
        elif t[0] == "eof":
            return False
        j += 1


def nat_port(p):
    t = p.peek()
    if t[0] == "w" and (t[1] in E.PROTO_WORDS or t[1] in ("meta", "ct")):
        e = E.expr(p)
        if p.at_word("map"):
            p.next()
            return M.MapExpr(e, V.mapping(p, E.type_of(p, e), T.INET_SERVICE), loc=e.loc)
        return e
    return V.single(p, T.INET_SERVICE, allow_range=True)


def queue_stmt(p, loc):
    p.next()
    num = None
    flags = []
    while True:
        if p.at_word("num"):
            p.next()
            num = V.single(p, T.integer(16, T.HOST), allow_range=True)
        elif p.at_word("flags"):
            p.next()
            flags.append(p.word("bypass or fanout"))
            while p.accept(","):
                flags.append(p.word("bypass or fanout"))
        elif p.at_word("bypass", "fanout"):
            flags.append(p.next()[1])
            p.accept(",")
        elif p.at_word("to"):
            p.next()
            num = V.single(p, T.integer(16, T.HOST), allow_range=True)
        else:
            break
    for f in flags:
        if f not in ("bypass", "fanout"):
            raise NftError(loc, f"unknown queue flag {f!r}")
    if num is None:
        num = M.Value(T.integer(16, T.HOST), 0, loc=loc)
    return M.Queue(num, tuple(flags), loc=loc)


def notrack_stmt(p, loc):
    p.next()
    return M.Notrack(loc=loc)


def meter_stmt(p, loc):
    p.next()
    name = p.name("a meter name")
    size = None
    if p.at_word("size"):
        p.next()
        size = p.number()
    p.expect("{", "'{'")
    key = E.expr(p)
    timeout = None
    if p.at_word("timeout"):
        p.next()
        timeout = V.time_value(p)
    st = p.peek()
    if not p.at_word("counter", "limit", "quota"):
        raise p.error("meter: expected a counter, limit or quota statement", st)
    stmt = _STMTS[st[1]](p, p.loc())
    p.expect("}", "'}'")
    return M.Meter(name, key, stmt, timeout, size or 65535, loc=loc)


def flow_stmt(p, loc):
    p.next()
    if not p.accept("add") and not p.accept("offload"):
        raise p.error("flow: expected add @flowtable")
    t = p.peek()
    if t[0] != "@":
        raise p.error("flow add: expected @flowtable")
    p.next()
    return M.FlowOffload(t[1], loc=loc)


def synproxy_stmt(p, loc):
    p.next()
    sp = M.Synproxy(loc=loc)
    flags = []
    while True:
        if p.at_word("mss"):
            p.next()
            sp.mss = p.number()
        elif p.at_word("wscale"):
            p.next()
            sp.wscale = p.number()
        elif p.at_word("timestamp", "sack-perm"):
            flags.append(p.next()[1])
        elif p.at_word("name"):
            p.next()
            return M.Objref("synproxy", name_or_map(p, "synproxy"), loc=loc)
        else:
            break
    sp.flags = tuple(f for f in ("timestamp", "sack-perm") if f in flags)
    return sp


def tproxy_stmt(p, loc):
    p.next()
    family = None
    if p.at_word("ip", "ip6"):
        family = p.next()[1]
    p.expect("to", "'to'")
    fam = family or (p.family if p.family in ("ip", "ip6") else None)
    addr = port = None
    if p.at(":"):
        p.next()
        port = V.single(p, T.INET_SERVICE)
    else:
        atype = T.IPV6 if fam == "ip6" else T.IPV4
        if fam is None:
            raise p.error("tproxy to an address in an inet table needs ip or ip6 "
                          "(tproxy ip to ...)")
        addr = V.single(p, atype)
        if p.accept(":"):
            port = V.single(p, T.INET_SERVICE)
    return M.Tproxy(family, addr, port, loc=loc)


def dup_stmt(p, loc):
    p.next()
    raise NftError(loc, "dup: not supported by linx")


def fwd_stmt(p, loc):
    p.next()
    raise NftError(loc, "fwd: not supported by linx")


_STMTS = dict.fromkeys(VERDICTS, verdict_or_queue)
_STMTS.update({
    "counter": counter_stmt, "log": log_stmt, "limit": limit_stmt, "quota": quota_stmt,
    "reject": reject_stmt, "snat": nat_stmt, "dnat": nat_stmt, "masquerade": nat_stmt,
    "redirect": nat_stmt, "notrack": notrack_stmt, "meter": meter_stmt, "flow": flow_stmt,
    "synproxy": synproxy_stmt, "tproxy": tproxy_stmt, "dup": dup_stmt, "fwd": fwd_stmt,
})
