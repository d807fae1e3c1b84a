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

_ELEM_OPTIONS = frozenset(("timeout", "expires", "comment", "counter", "limit", "quota"))


def rhs(p, typ, op=""):
    t = p.toks[p.i]
    if t[0] == "{":
        return set_literal(p, typ, None)
    if t[0] == "@":
        p.i += 1
        return M.SetRef(t[1], loc=t)
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
    k = p.toks[p.i][0]
    if k == "/" and allow_prefix and typ.name in T.PREFIX_TYPES:
        p.i += 1
        plen = p.number("a prefix length")
        if plen > typ.bits:
            raise p.error(f"prefix length {plen} is longer than {typ.bits} bits",
                          p.peek(-1))
        mask = ((1 << plen) - 1) << (typ.bits - plen) if plen else 0
        return M.Prefix(M.Value(typ, v.v & mask, loc=v.loc), plen, loc=v.loc)
    if k == "-" and allow_range:
        p.i += 1
        hi = atom(p, typ)
        if isinstance(v.v, int) and v.v > hi.v:
            raise NftError(v.loc, "range is empty: the first value is bigger than the "
                                  "second", 1)
        return M.Range(v, hi, loc=v.loc)
    return v


def atom(p, typ) -> M.Value:
    t = p.toks[p.i]
    kind, text = t[0], t[1]
    if typ is None:
        raise p.error("cannot tell the type of this value here")
    if isinstance(typ, tuple):
        raise p.error("a concatenation needs '.' separated values")
    tkind = typ.kind
    if tkind == "verdict":
        return M.Value(T.VERDICT, S.verdict(p), loc=t)
    try:
        if kind == "n":
            if tkind == "classid" and p.toks[p.i + 1][0] == ":":
                p.i += 2
                minor = p.next()
                return M.Value(typ, typ.parse(f"{text}:{minor[1]}"), loc=t)
            p.i += 1
            if tkind in ("str", "ifindex"):
                return M.Value(typ, str(text), loc=t)
            if tkind == "time":
                return M.Value(typ, text * 1000, loc=t)
            return M.Value(typ, typ.check_int(text), loc=t)
        if kind == "w" or kind == "q":
            p.i += 1
            if kind == "w" and tkind not in ("str", "ifindex") and text[:1].isdigit() \
                    and tkind not in ("ipv4", "ipv6", "ether", "time") \
                    and text not in typ.symbols:
                raise T.BadValue(f"{text!r} is not a {typ.desc}")
            return M.Value(typ, typ.parse(text), loc=t)
        if kind == "a":
            p.i += 1
            if tkind != "str":
                raise T.BadValue(f"wildcard {text!r} only matches interface names")
            return M.Value(typ, text, loc=t)
    except T.BadValue as e:
        raise NftError(t, str(e), len(str(text))) from None
    raise p.error(f"unexpected {p.describe(t)}, expected a {typ.desc}")


def set_literal(p, key_type, data_type):
    """`{ a, b-c, d/n, e . f, k : v, * : v }`; nested sets and $variables flatten."""
    t = p.expect("{", "'{'")
    elems = []
    elements_into(p, elems, key_type, data_type)
    return M.SetLit(tuple(elems), loc=t)


def elements_into(p, elems, key_type, data_type):
    toks = p.toks
    while True:
        while toks[p.i][0] == ";":
            p.i += 1
        k = toks[p.i][0]
        if k == "}":
            p.i += 1
            return
        if k == "{":
            p.i += 1
            elements_into(p, elems, key_type, data_type)
        else:
            elems.append(element(p, key_type, data_type))
        while toks[p.i][0] == ";":
            p.i += 1
        if toks[p.i][0] == ",":
            p.i += 1
        else:
            p.expect("}", "',' or '}'")
            return


def element(p, key_type, data_type):
    t = p.toks[p.i]
    if t[0] == "a" and t[1] == "*":
        p.i += 1
        key = M.Catchall(loc=t)
    elif isinstance(key_type, tuple):
        key = concat_value(p, key_type)
    else:
        key = single(p, key_type, allow_range=True)
    nt = p.toks[p.i]
    if nt[0] == "w" and nt[1] in _ELEM_OPTIONS:
        key = element_options(p, key, t)
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
        return M.Mapping(key, data, loc=t)
    return key


def element_options(p, key, loc):
    """`KEY timeout 10s expires 5s comment "x" counter ...`: an Elem around the key."""
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
    return M.Elem(key, timeout, expires, comment, tuple(stmts), loc=loc)


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
