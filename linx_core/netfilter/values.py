"""The values on the right of a match, typed by the expression on the left: constants
(`22`, `ssh`, `10.0.0.1`, `established,related`), prefixes, ranges, concatenations, verdicts,
and set literals with their elements (`{ 22, 80 }`, `{ 10.0.0.1 timeout 10s : accept }`);
after nftables' parser_bison.y (rhs_expr, set_expr, set_elem_expr). A symbol that is not
a value of its type is a located error here.
"""
from . import model as M
from . import statements as S
from . import types as T
from .location import NftError


def rhs(p, typ, op=""):
    t = p.peek()
    if t[0] == "{":
        return set_literal(p, typ, None)
    if t[0] == "@":
        p.next()
        return M.SetRef(t[1], loc=p.loc(t))
    if isinstance(typ, tuple):
        return concat_value(p, typ)
    if typ.kind == "bitmask" and op in ("", "==", "!="):
        return value_or_flags(p, typ, allow_range=True)
    return single(p, typ, allow_range=True)


def concat_value(p, types, allow_range=True):
    loc = p.loc()
    items = []
    for n, typ in enumerate(types):
        if n:
            p.expect(".", "'.' (the next field of the concatenation)")
        items.append(single(p, typ, allow_range=allow_range))
    return M.Concat(tuple(items), loc=loc)


def value_or_flags(p, typ, allow_range=False, paren=False):
    """A value, or for bitmask types a comma list of flags (`syn,ack`, `(syn|ack)`)."""
    if paren and p.at("("):
        p.next()
        v = value_or_flags(p, typ)
        acc = v.v if isinstance(v, (M.Value, M.Flags)) else 0
        while p.accept("|"):
            nxt = value_or_flags(p, typ)
            acc |= nxt.v
        p.expect(")", "')'")
        return M.Flags(typ, acc, loc=v.loc) if typ.kind == "bitmask" else M.Value(
            typ, acc, loc=v.loc)
    first = single(p, typ, allow_range=allow_range)
    if typ.kind != "bitmask" or not isinstance(first, M.Value):
        return first
    if not p.at(",", "|"):
        return M.Flags(typ, first.v, loc=first.loc)
    acc = first.v
    while p.at(",", "|"):
        p.next()
        acc |= single(p, typ).v
    return M.Flags(typ, acc, loc=first.loc)


def single(p, typ, allow_range=False, allow_prefix=True):
    """One value of `typ`, a prefix `addr/len` or a range `lo-hi`."""
    v = atom(p, typ)
    if allow_prefix and p.at("/") and typ.name in T.PREFIX_TYPES:
        p.next()
        plen = p.number("a prefix length")
        if plen > typ.bits:
            raise p.error(f"prefix length {plen} is longer than {typ.bits} bits",
                          p.peek(-1))
        mask = ((1 << plen) - 1) << (typ.bits - plen) if plen else 0
        return M.Prefix(M.Value(typ, v.v & mask, loc=v.loc), plen, loc=v.loc)
    if allow_range and p.at("-"):
        p.next()
        hi = atom(p, typ)
        if isinstance(v.v, int) and v.v > hi.v:
            raise NftError(v.loc, "range is empty: the first value is bigger than the "
                                  "second", 1)
        return M.Range(v, hi, loc=v.loc)
    return v


def atom(p, typ) -> M.Value:
    t = p.peek()
    kind, text = t[0], t[1]
    loc = p.loc(t)
    if typ is None:
        raise p.error("cannot tell the type of this value here")
    if isinstance(typ, tuple):
        raise p.error("a concatenation needs '.' separated values")
    if typ.kind == "verdict":
        return M.Value(T.VERDICT, S.verdict(p), loc=loc)
    try:
        if kind == "n" and typ.kind == "classid" and p.peek(1)[0] == ":":
            p.next()
            p.next()
            minor = p.next()
            return M.Value(typ, typ.parse(f"{text}:{minor[1]}"), loc=loc)
        if kind == "n":
            p.next()
            if typ.kind in ("str", "ifindex"):
                return M.Value(typ, str(text), loc=loc)
            if typ.kind == "time":
                return M.Value(typ, text * 1000, loc=loc)
            return M.Value(typ, typ.check_int(text), loc=loc)
        if kind in ("w", "q"):
            p.next()
            if kind == "w" and typ.kind not in ("str", "ifindex") and text[:1].isdigit() \
                    and typ.kind not in ("ipv4", "ipv6", "ether", "time") \
                    and text not in typ.symbols:
                raise T.BadValue(f"{text!r} is not a {typ.desc}")
            return M.Value(typ, typ.parse(text), loc=loc)
        if kind == "a":
            p.next()
            if typ.kind != "str":
                raise T.BadValue(f"wildcard {text!r} only matches interface names")
            return M.Value(typ, text, loc=loc)
    except T.BadValue as e:
        raise NftError(loc, str(e), len(str(text))) from None
    raise p.error(f"unexpected {p.describe(t)}, expected a {typ.desc}")


def set_literal(p, key_type, data_type):
    """`{ a, b-c, d/n, e . f, k : v, * : v }`; nested sets and $variables flatten."""
    t = p.expect("{", "'{'")
    elems = []
    elements_into(p, elems, key_type, data_type)
    return M.SetLit(tuple(elems), loc=p.loc(t))


def elements_into(p, elems, key_type, data_type):
    while True:
        p.skip_seps()
        if p.accept("}"):
            return
        if p.at("{"):
            p.next()
            elements_into(p, elems, key_type, data_type)
        else:
            elems.append(element(p, key_type, data_type))
        p.skip_seps()
        if not p.accept(","):
            p.skip_seps()
            p.expect("}", "',' or '}'")
            return


def element(p, key_type, data_type):
    loc = p.loc()
    t = p.peek()
    if t[0] == "a" and t[1] == "*":
        p.next()
        key = M.Catchall(loc=loc)
    elif isinstance(key_type, tuple):
        key = concat_value(p, key_type)
    elif key_type is not None and key_type.kind == "bitmask":
        key = single(p, key_type, allow_range=True)
    else:
        key = single(p, key_type, allow_range=True)
    timeout = expires = comment = None
    stmts = []
    while True:
        if p.at_word("timeout"):
            p.next()
            timeout = time_value(p)
        elif p.at_word("expires"):
            p.next()
            expires = time_value(p)
        elif p.at_word("comment"):
            p.next()
            comment = p.string()
        elif p.at_word("counter"):
            stmts.append(S.counter_stmt(p, p.loc()))
        elif p.at_word("limit"):
            stmts.append(S.limit_stmt(p, p.loc()))
        elif p.at_word("quota"):
            stmts.append(S.quota_stmt(p, p.loc()))
        else:
            break
    if timeout is not None or expires is not None or comment is not None or stmts:
        key = M.Elem(key, timeout, expires, comment, tuple(stmts), loc=loc)
    if data_type is not None:
        p.expect(":", "':' and the mapped value")
        if data_type == "verdict" or (isinstance(data_type, T.Type)
                                      and data_type.kind == "verdict"):
            data = S.verdict(p)
        elif isinstance(data_type, str) and data_type in ("counter", "quota", "limit",
                                                          "ct helper", "ct timeout",
                                                          "ct expectation", "synproxy"):
            data = M.Value(T.STRING, p.string("an object name"), loc=p.loc())
        elif isinstance(data_type, tuple):
            data = concat_value(p, data_type)
        else:
            data = single(p, data_type, allow_range=True)
        return M.Mapping(key, data, loc=loc)
    return key


def time_value(p) -> int:
    t = p.peek()
    if t[0] == "n":
        p.next()
        return t[1] * 1000
    text = p.word("a time (like 10s, 1h30m)")
    try:
        return T.parse_time(text)
    except T.BadValue as e:
        raise p.error(str(e), t) from None


def mapping(p, key_type, data_type):
    if p.peek()[0] == "@":
        t = p.next()
        return M.SetRef(t[1], loc=p.loc(t))
    return set_literal(p, key_type, data_type)
