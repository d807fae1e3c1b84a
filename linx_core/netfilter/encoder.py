"""Compiled messages -> nfnetlink requests: the nfgenmsg header, the NFTA_* attributes
(wire.py tables) and the flags nft sends with each kind (nftables src/mnl.c): NLM_F_CREATE
on every add, NLM_F_APPEND on rules, nothing on deletions."""
import struct

from ..netlink.codec import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, Scalar
from . import wire
from .proto import FAMILIES

FLAGS = {"newtable": NLM_F_CREATE, "newchain": NLM_F_CREATE,
         "newrule": NLM_F_CREATE | NLM_F_APPEND, "newset": NLM_F_CREATE,
         "newsetelem": NLM_F_CREATE, "newobj": NLM_F_CREATE, "newflowtable": NLM_F_CREATE,
         "deltable": 0}


def nfgenmsg(family: int, res_id: int = 0) -> bytes:
    """struct nfgenmsg: family, NFNETLINK_V0, res_id in network order (nfnetlink.h)."""
    return bytes((family, 0)) + res_id.to_bytes(2, "big")


def family_id(name: str) -> int:
    return 0 if name == "unspec" else FAMILIES[name]


def msg_type(kind: str) -> int:
    return (wire.NFNL_SUBSYS_NFTABLES << 8) | wire.MSG[kind]


def encode(msg, exclusive: bool = False) -> tuple[int, int, bytes]:
    """One compiler.Msg as (nlmsg type, flags, body)."""
    flags = FLAGS[msg.kind] | (NLM_F_EXCL if exclusive and msg.kind == "newtable" else 0)
    if msg.kind == "newrule":
        body = encode_rule(msg)
    elif msg.kind == "newsetelem":
        body = encode_elements(msg)
    else:
        table = wire.tables()[wire.MSG_TABLE[msg.kind]]
        body = nfgenmsg(family_id(msg.family)) + table.encode(msg.attrs)
    return msg_type(msg.kind), flags, body


def encode_all(msgs) -> list[tuple[int, int, bytes]]:
    return [encode(m) for m in msgs]


# ---- fast paths: rules and set elements are most of a big batch. Their attributes go
# through the same wire tables, but each attribute kind gets a ready-made encoder (its
# header packed once), and each distinct expression is encoded once and reused (large
# rulesets repeat `meta load l4proto`, `cmp eq 6`, `counter`, `accept` ...).

_NLA = struct.Struct("=HH")
_NESTED = 0x8000
_EXPR_CACHE: dict = {}
_BY_ID: dict = {}
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def _nla(aid: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _NLA.pack(n, aid) + payload + _PAD[n & 3]


def _key(v):
    if isinstance(v, dict):
        return tuple((k, _key(x)) for k, x in v.items())
    if isinstance(v, list):
        return tuple(_key(x) for x in v)
    return v


def encode_expr(e: dict) -> bytes:
    """One NFTA_LIST_ELEM holding an expression, from the cache when seen before: the
    same object (the compiler shares the expressions rules repeat), or an equal one."""
    hit = _BY_ID.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    d = e["data"]
    if e["name"] == "cmp" and tuple(d) == _CMP_KEYS and type(d["data"]) is bytes:
        b = _cmp(d)
    else:
        b = _by_value(e)
    if len(_BY_ID) < 100_000:
        _BY_ID[id(e)] = (e, b)      # holding e: its id is not reused while cached
    return b


def _by_value(e: dict) -> bytes:
    """An expression encoded once per distinct value (attribute names and values)."""
    k = (e["name"], *e["data"].items())
    try:
        b = _EXPR_CACHE.get(k)
    except TypeError:           # a verdict, an inner expression: dicts and lists
        k = (e["name"], *((n, tuple(v.items()) if type(v) is dict else v)
                          for n, v in e["data"].items()))
        try:
            b = _EXPR_CACHE.get(k)
        except TypeError:
            k = _key(e)
            b = _EXPR_CACHE.get(k)
    if b is None:
        b = _nla(1 | _NESTED, _encode_expr(e))
        if len(_EXPR_CACHE) < 100_000:
            _EXPR_CACHE[k] = b
    return b


_CMP_KEYS = ("sreg", "op", "data")
_CMP_NAME = _NLA.pack(8, 1) + b"cmp\0"
_CMP_REGS: dict = {}


def _cmp(d: dict) -> bytes:
    """A cmp against a constant, the expression that differs from rule to rule, packed
    directly: NFTA_CMP_SREG, NFTA_CMP_OP, NFTA_CMP_DATA holding one NFTA_DATA_VALUE (the
    bytes wire.EXPR() gives, in its attribute order)."""
    regs = _CMP_REGS.get((d["sreg"], d["op"]))
    if regs is None:
        regs = _CMP_REGS[(d["sreg"], d["op"])] = (
            _NLA.pack(8, 1) + d["sreg"].to_bytes(4, "big") +
            _NLA.pack(8, 2) + d["op"].to_bytes(4, "big"))
    v = d["data"]
    n = 4 + len(v)
    value = _NLA.pack(n, 1) + v + _PAD[n & 3]
    data = regs + _NLA.pack(4 + len(value), 3 | _NESTED) + value
    return (_NLA.pack(16 + len(data), 1 | _NESTED) + _CMP_NAME +
            _NLA.pack(4 + len(data), 2 | _NESTED) + data)


def _attr_encoder(aid: int, codec):
    """value -> the whole attribute (header, payload, padding) for one wire-table row."""
    if isinstance(codec, Scalar) and codec.fmt[0] == ">":
        size = codec._st.size
        head = _NLA.pack(4 + size, aid)
        pad = _PAD[(4 + size) & 3]
        return lambda v: head + v.to_bytes(size, "big") + pad
    if codec is wire._DATA:     # NFTA_DATA: a value nest, or a verdict through the table
        def data(v):
            if type(v) is bytes:
                return _nla(aid | _NESTED, _nla(1, v))
            return _nla(aid | _NESTED, codec.encode(v))
        return data
    flag = _NESTED if getattr(codec, "nested_flag", False) else 0
    encode = codec.encode
    return lambda v: _nla(aid | flag, encode(v))


_ROWS: dict = {}
_NAMES: dict = {}


def _encode_expr(e: dict) -> bytes:
    """NFTA_EXPR_NAME and NFTA_EXPR_DATA, from the wire table's rows (the same bytes as
    wire.EXPR().encode(e), without its generic dispatch)."""
    name = e["name"]
    rows = _ROWS.get(name)
    if rows is None:
        inner = wire.EXPR().rows[1][2].choices[name]
        rows = _ROWS[name] = {n: _attr_encoder(aid, c) for aid, n, c in inner.rows}
        _NAMES[name] = _nla(1, name.encode() + b"\0")
    body = b"".join([rows[k](v) for k, v in e["data"].items()])
    return _NAMES[name] + _NLA.pack(4 + len(body), 2 | _NESTED) + body


_RULE_HEADS: dict = {}


def encode_rule(msg) -> bytes:
    a = msg.attrs
    key = (msg.family, a["table"], a["chain"])
    head = _RULE_HEADS.get(key)
    if head is None:
        head = _RULE_HEADS[key] = (nfgenmsg(family_id(msg.family)) +
                                   _nla(1, a["table"].encode() + b"\0") +
                                   _nla(2, a["chain"].encode() + b"\0"))
    get = _BY_ID.get
    parts = []
    for e in a["expressions"]:
        hit = get(id(e))
        parts.append(hit[1] if hit is not None and hit[0] is e else encode_expr(e))
    exprs = b"".join(parts)
    body = head + _NLA.pack(4 + len(exprs), 4 | _NESTED) + exprs
    if a.get("userdata"):
        body += _nla(7, a["userdata"])
    return body


def encode_elements(msg) -> bytes:
    """NEWSETELEM: plain elements (a key, maybe flags) are packed directly."""
    a = msg.attrs
    generic = wire.ELEM()
    out = []
    for el in a["elements"]:
        if len(el) == 1 and "key" in el:
            out.append(_nla(1 | _NESTED, _nla(1 | _NESTED, _nla(1, el["key"]))))
        elif len(el) == 2 and "key" in el and "flags" in el:
            out.append(_nla(1 | _NESTED, _nla(1 | _NESTED, _nla(1, el["key"])) +
                            _nla(3, el["flags"].to_bytes(4, "big"))))
        else:
            out.append(_nla(1 | _NESTED, generic.encode(el)))
    parts = [nfgenmsg(family_id(msg.family)), _nla(1, a["table"].encode() + b"\0"),
             _nla(2, a["set"].encode() + b"\0")]
    if a.get("set_id") is not None:
        parts.append(_nla(4, a["set_id"].to_bytes(4, "big")))
    parts.append(_nla(3 | _NESTED, b"".join(out)))
    return b"".join(parts)
