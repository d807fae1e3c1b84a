"""What a table holds: chains (base chain type, hook, priority, policy, devices; their
rules), sets and maps (type, flags, timeout, size, elements), named objects (counter,
quota, limit, ct helper, synproxy) and flowtables; after nftables' parser_bison.y
(table_block, chain_block, set_block, map_block, obj blocks, flowtable_block).
"""
from . import expressions as E
from . import model as M
from . import proto as P
from . import statements as S
from . import types as T
from . import values as V
from .location import NftError

SET_FLAGS = ("constant", "interval", "timeout", "dynamic")
OBJ_KINDS = ("counter", "quota", "limit")
CT_OBJ_KINDS = ("helper", "timeout", "expectation")
_CHAIN_WORDS = frozenset(("type", "policy", "comment", "flags", "devices"))


def table_body(p, tbl):
    p.with_table(tbl)
    while True:
        p.skip_seps()
        t = p.peek()
        if t[0] == "}":
            p.next()
            return
        if t[0] != "w":
            raise p.error(f"unexpected {p.describe(t)}, expected chain, set, map, "
                          "flowtable, counter, quota, limit, ct, flags or comment")
        w = t[1]
        p.next()
        if w == "chain":
            chain_decl(p, tbl, "add", t)
        elif w in ("set", "map"):
            set_decl(p, tbl, w, "add", t)
        elif w in OBJ_KINDS or w in ("flowtable", "synproxy") or (
                w == "ct" and p.at_word(*CT_OBJ_KINDS)):
            object_decl(p, tbl, w, "add", t)
        elif w == "flags":
            flags = [p.word("a table flag")]
            while p.accept(","):
                flags.append(p.word("a table flag"))
            for f in flags:
                if f not in ("dormant", "owner", "persist"):
                    raise p.error(f"unknown table flag {f!r} (dormant, owner, persist)",
                                  p.peek(-1))
            tbl.flags = tuple(dict.fromkeys(tbl.flags + tuple(flags)))
        elif w == "comment":
            tbl.comment = p.string()
        elif w in E.UNSUPPORTED:
            raise p.error(f"{E.UNSUPPORTED[w]}: not supported by linx", t)
        else:
            raise p.error(f"unexpected '{w}' in a table, expected chain, set, map, "
                          "flowtable, counter, quota, limit, ct, flags or comment", t)
        p.end_item()


def chain_decl(p, tbl, verb, t):
    name_t = p.peek()
    name = p.name("a chain name")
    chain = tbl.chains.get(name)
    if chain is None:
        chain = tbl.chains[name] = M.Chain(name, loc=p.loc(name_t))
    elif verb == "create":
        raise p.error(f"chain {name} exists already (create)", name_t)
    if p.accept("{"):
        chain_body(p, tbl, chain)


def chain_body(p, tbl, chain):
    toks = p.toks
    rules = chain.rules
    while True:
        t = toks[p.i]
        while t[0] == ";":
            p.i += 1
            t = toks[p.i]
        if t[0] == "}":
            p.i += 1
            if chain.hook is not None and chain.policy is None:
                chain.policy = "accept"      # the kernel's default, as nft lists it
            return
        if not (t[0] == "w" and t[1] in _CHAIN_WORDS and chain_setting(p, tbl, chain, t)):
            rules.append(S.rule(p))
        p.end_item()


def chain_setting(p, tbl, chain, t) -> bool:
    """`type ... hook ... priority ...`, `policy`, `comment`, `flags offload`, `devices =`:
    True when t starts one of them (and it was read), False for a rule."""
    w, nt = t[1], p.peek(1)
    if w == "type":
        p.next()
        chain_hook(p, tbl, chain, t)
    elif w == "policy":
        p.next()
        chain.policy = p.word("accept or drop")
        if chain.policy not in ("accept", "drop"):
            raise p.error("policy: expected accept or drop", nt)
    elif w == "comment" and nt[0] in ("q", "w"):
        p.next()
        chain.comment = p.string()
    elif w == "flags" and nt[1] == "offload":
        p.i += 2
        chain.offload = True
    elif w == "devices" and nt[0] == "=":
        p.i += 2
        chain.devices = device_list(p)
    else:
        return False
    return True


def chain_hook(p, tbl, chain, t):
    chain.type = p.word("a chain type (filter, nat, route)")
    p.expect("hook", "'hook'")
    chain.hook = p.word("a hook name")
    if p.accept("device"):
        chain.devices = (p.name("a device name"),)
    elif p.at_word("devices"):
        p.next()
        p.expect("=", "'='")
        chain.devices = device_list(p)
    p.expect("priority", "'priority'")
    chain.priority = priority(p, tbl.family, chain.hook)


def device_list(p):
    if p.peek()[0] == "$":
        raise p.error("undefined variable")
    p.expect("{", "'{'")
    devs = []
    while True:
        p.skip_seps()
        if p.accept("}"):
            return tuple(devs)
        devs.append(p.name("a device name"))
        p.skip_seps()
        if not p.accept(","):
            p.skip_seps()
            p.expect("}", "',' or '}'")
            return tuple(devs)


def priority(p, family, hook) -> int:
    t = p.peek()
    sign = -1 if p.accept("-") else 1
    if t[0] == "w" or (sign < 0 and p.peek()[0] == "w"):
        wt = p.peek()
        name = p.next()[1]
        base = P.prio_lookup(name, family, hook)
        if base is None:
            raise p.error(f"'{name}' is not a standard priority for {family} {hook}",
                          wt)
        if p.at("+", "-"):
            op = p.next()[0]
            off = p.number("a priority offset")
            base = base + off if op == "+" else base - off
        return base
    n = p.number("a priority (a number or raw, mangle, dstnat, filter, security, "
                 "srcnat)")
    return sign * n


def set_decl(p, tbl, kind, verb, t):
    name_t = p.peek()
    name = p.name("a set name")
    if name in tbl.sets:
        if verb == "create":
            raise p.error(f"set {name} exists already (create)", name_t)
        s = tbl.sets[name]
        if p.at("{"):
            p.next()
            p.skip_block()
        return
    s = M.Set(name, kind, loc=p.loc(name_t))
    p.expect("{", "'{'")
    while True:
        p.skip_seps()
        it = p.peek()
        if it[0] == "}":
            p.next()
            break
        w = p.word("type, flags, timeout, size, elements, ...")
        if w == "type":
            set_type(p, s, kind)
        elif w == "typeof":
            raise p.error("typeof: not supported by linx yet; use type", it)
        elif w == "flags":
            flags = [p.word("a set flag")]
            while p.accept(","):
                flags.append(p.word("a set flag"))
            for f in flags:
                if f not in SET_FLAGS:
                    raise p.error(f"unknown set flag {f!r} ({', '.join(SET_FLAGS)})",
                                  p.peek(-1))
            s.flags = tuple(dict.fromkeys(s.flags + tuple(flags)))
        elif w == "timeout":
            s.timeout = V.time_value(p)
        elif w == "gc-interval":
            s.gc_interval = V.time_value(p)
        elif w == "size":
            s.size = p.number("a size")
        elif w == "policy":
            s.policy = p.word("performance or memory")
            if s.policy not in ("performance", "memory"):
                raise p.error("policy: expected performance or memory", p.peek(-1))
        elif w == "auto-merge":
            s.auto_merge = True
        elif w == "counter":
            s.counter = True
        elif w == "comment":
            s.comment = p.string()
        elif w == "elements":
            p.expect("=", "'='")
            if not s.key:
                raise p.error(f"set {name}: declare its type before its elements", it)
            lit = V.set_literal(p, key_type(p, s), data_type(p, s))
            s.elements.extend(lit.elems)
        else:
            raise p.error(f"unexpected '{w}' in a {kind}, expected type, flags, "
                          "timeout, gc-interval, size, policy, counter, comment, "
                          "elements", it)
        p.end_item()
    if not s.key:
        raise NftError(s.loc, f"{kind} {name} has no type")
    if s.timeout and "timeout" not in s.flags:     # a default timeout implies the flag
        s.flags = s.flags + ("timeout",)
    tbl.sets[name] = s


def set_type(p, s, kind):
    s.key = tuple(type_list(p))
    if kind == "map":
        p.expect(":", "':' and the mapped type")
        if p.at_word("interval"):
            raise p.error("interval maps: not supported by linx")
        if p.at_word(*OBJ_KINDS, "synproxy"):
            s.objtype = p.next()[1]
        elif p.at_word("ct"):
            p.next()
            s.objtype = "ct " + p.word("helper, timeout or expectation")
        elif p.at_word("verdict"):
            p.next()
            s.data = "verdict"
        else:
            types = type_list(p)
            s.data = types[0] if len(types) == 1 else tuple(types)


def type_list(p):
    out = []
    while True:
        t = p.peek()
        name = p.word("a datatype")
        typ = T.BY_NAME.get(name)
        if typ is None or name not in T.SET_TYPES:
            raise p.error(f"unknown datatype {name!r}", t)
        out.append(typ)
        if not p.accept("."):
            return out


def key_type(p, s):
    return s.key[0] if len(s.key) == 1 else tuple(s.key)


def data_type(p, s):
    if s.kind != "map":
        return None
    return s.objtype or s.data


def object_decl(p, tbl, kind, verb, t, already_kind=False):
    if kind == "ct" and not already_kind:
        kind = "ct " + p.next()[1]
    name_t = p.peek()
    name = p.name(f"a {kind} name")
    loc = p.loc(name_t)
    if kind == "flowtable":
        ft = M.Flowtable(name, loc=loc)
        p.expect("{", "'{'")
        flowtable_body(p, tbl, ft)
        tbl.flowtables[name] = ft
        return
    spec = {}
    comment = None
    if p.accept("{"):
        comment = object_body(p, kind, spec)
    elif kind not in ("counter",):
        raise p.error(f"{kind} {name}: expected '{{' and its settings")
    if kind == "counter":
        spec.setdefault("packets", 0)
        spec.setdefault("bytes", 0)
    if kind == "ct helper":
        spec.setdefault("l3proto", tbl.family)     # nft's default: the table's family
    if (kind, name) in tbl.objects and verb == "create":
        raise p.error(f"{kind} {name} exists already (create)", name_t)
    tbl.objects[(kind, name)] = M.Obj(kind, name, spec, comment, loc=loc)


def object_body(p, kind, spec):
    comment = None
    while True:
        p.skip_seps()
        t = p.peek()
        if t[0] == "}":
            p.next()
            return comment
        if p.at_word("comment"):
            p.next()
            comment = p.string()
        elif kind == "counter":
            if p.at_word("packets"):
                p.next()
                spec["packets"] = p.number()
                if p.at_word("bytes"):
                    p.next()
                    spec["bytes"] = p.number()
            elif p.at_word("bytes"):
                p.next()
                spec["bytes"] = p.number()
            else:
                raise p.error("counter: expected packets N bytes N")
        elif kind == "quota":
            amount, used, over = S.quota_args(p)
            spec.update(over=over, bytes=amount, used=used)
        elif kind == "limit":
            p.expect("rate", "'rate'")
            spec["over"] = bool(p.accept("over"))
            rate, unit, is_bytes = S.rate_value(p)
            spec.update(rate=rate, unit=unit, bytes=is_bytes, burst=None)
            if p.at_word("burst"):
                p.next()
                b = p.number()
                bu = p.word("packets or a byte unit")
                if is_bytes:
                    if bu not in S.BYTE_UNITS:
                        raise p.error("burst of a byte rate is in bytes units",
                                      p.peek(-1))
                    b *= S.BYTE_UNITS[bu]
                elif bu != "packets":
                    raise p.error("burst of a packet rate is in packets", p.peek(-1))
                spec["burst"] = None if b == (0 if is_bytes else 5) else b
        elif kind == "ct helper":
            if p.at_word("type"):
                p.next()
                spec["type"] = p.string("a helper name")
                p.expect("protocol", "'protocol'")
                pt = p.peek()
                proto = p.word("tcp or udp")
                if proto not in ("tcp", "udp"):
                    raise p.error("ct helper protocol: expected tcp or udp", pt)
                spec["protocol"] = proto
            elif p.at_word("l3proto"):
                p.next()
                lt = p.peek()
                spec["l3proto"] = p.word("ip, ip6 or inet")
                if spec["l3proto"] not in ("ip", "ip6", "inet"):
                    raise p.error("l3proto: expected ip or ip6", lt)
            else:
                raise p.error("ct helper: expected type \"NAME\" protocol P or "
                              "l3proto")
        elif kind == "synproxy":
            if p.at_word("mss"):
                p.next()
                spec["mss"] = p.number()
            elif p.at_word("wscale"):
                p.next()
                spec["wscale"] = p.number()
            elif p.at_word("timestamp", "sack-perm"):
                while p.at_word("timestamp", "sack-perm"):
                    spec.setdefault("flags", [])
                    spec["flags"].append(p.next()[1])
            else:
                raise p.error("synproxy: expected mss, wscale, timestamp or sack-perm")
        else:
            raise p.error(f"{kind} objects: not supported by linx")
        p.end_item()


def flowtable_body(p, tbl, ft):
    while True:
        p.skip_seps()
        t = p.peek()
        if t[0] == "}":
            p.next()
            return
        w = p.word("hook, devices, flags or counter")
        if w == "hook":
            ht = p.peek()
            ft.hook = p.word("ingress")
            if ft.hook != "ingress":
                raise p.error("flowtable hook: expected ingress", ht)
            p.expect("priority", "'priority'")
            ft.priority = priority(p, "netdev", "ingress")
        elif w == "devices":
            p.expect("=", "'='")
            ft.devices = device_list(p)
        elif w == "flags":
            ft.offload = p.word("offload") == "offload"
        elif w == "counter":
            ft.counter = True
        else:
            raise p.error(f"unexpected '{w}' in a flowtable", t)
        p.end_item()
