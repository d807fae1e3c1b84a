"""The nf_tables attribute layout as data: ids and codecs of every NFTA_* attribute linx
sends or reads (include/uapi/linux/netfilter/nf_tables.h), in the shared netlink codec's
Table form. nf_tables integers are in network byte order; nests carry NLA_F_NESTED, as
libmnl's mnl_attr_nest_start() sets it. The encoder and decoder both use these tables.
"""
import struct

from ..netlink.codec import Array, Dispatch, Table, be16, be32, be64, binary, strz
from ..netlink.errors import MalformedMessage

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFNL_BATCH_GENID = 1

# enum nf_tables_msg_types
MSG = {"newtable": 0, "gettable": 1, "deltable": 2, "newchain": 3, "getchain": 4,
       "delchain": 5, "newrule": 6, "getrule": 7, "delrule": 8, "newset": 9, "getset": 10,
       "delset": 11, "newsetelem": 12, "getsetelem": 13, "delsetelem": 14, "newgen": 15,
       "getgen": 16, "newobj": 18, "getobj": 19, "delobj": 20, "newflowtable": 22,
       "getflowtable": 23, "delflowtable": 24, "destroytable": 26}
MSG_NAMES = {v: k for k, v in MSG.items()}


def nested(name, rows):
    return Table(name, rows, nested_flag=True)


class _Data:
    """struct nft_data as an NFTA_DATA nest: bytes for NFTA_DATA_VALUE, a dict
    {"code": int, "chain": str} for NFTA_DATA_VERDICT."""

    nested_flag = True

    def __init__(self):
        verdict = nested("NFTA_VERDICT", ((1, "code", _S32), (2, "chain", strz)))
        self.table = Table("NFTA_DATA", ((1, "value", binary), (2, "verdict", verdict)))

    def encode(self, v) -> bytes:
        if isinstance(v, (bytes, bytearray)):
            return self.table.encode({"value": v})
        return self.table.encode({"verdict": v})

    def decode(self, raw: bytes):
        d = self.table.decode(raw)
        return d["value"] if "value" in d else d.get("verdict", {})


def _expr_tables():
    """NFTA_EXPR_DATA of each expression kind, by NFTA_EXPR_NAME."""
    data = _DATA
    inner = {}
    tables = {
        "immediate": ((1, "dreg", be32), (2, "data", data)),
        "payload": ((1, "dreg", be32), (2, "base", be32), (3, "offset", be32),
                    (4, "len", be32), (5, "sreg", be32), (6, "csum_type", be32),
                    (7, "csum_offset", be32), (8, "csum_flags", be32)),
        "meta": ((1, "dreg", be32), (2, "key", be32), (3, "sreg", be32)),
        "ct": ((1, "dreg", be32), (2, "key", be32), (3, "direction", _U8),
               (4, "sreg", be32)),
        "cmp": ((1, "sreg", be32), (2, "op", be32), (3, "data", _VALUE)),
        "bitwise": ((1, "sreg", be32), (2, "dreg", be32), (3, "len", be32),
                    (4, "mask", _VALUE), (5, "xor", _VALUE), (6, "op", be32),
                    (7, "data", _VALUE)),
        "byteorder": ((1, "sreg", be32), (2, "dreg", be32), (3, "op", be32),
                      (4, "len", be32), (5, "size", be32)),
        "range": ((1, "sreg", be32), (2, "op", be32), (3, "data_from", _VALUE),
                  (4, "data_to", _VALUE)),
        "lookup": ((1, "set", strz), (2, "sreg", be32), (3, "dreg", be32),
                   (4, "set_id", be32), (5, "flags", be32)),
        "counter": ((1, "bytes", be64), (2, "packets", be64)),
        "log": ((1, "group", be16), (2, "prefix", strz), (3, "snaplen", be32),
                (4, "qthreshold", be16), (5, "level", be32), (6, "flags", be32)),
        "limit": ((1, "rate", be64), (2, "unit", be64), (3, "burst", be32),
                  (4, "type", be32), (5, "flags", be32)),
        "quota": ((1, "bytes", be64), (2, "flags", be32), (4, "consumed", be64)),
        "reject": ((1, "type", be32), (2, "icmp_code", _U8)),
        "nat": ((1, "type", be32), (2, "family", be32), (3, "reg_addr_min", be32),
                (4, "reg_addr_max", be32), (5, "reg_proto_min", be32),
                (6, "reg_proto_max", be32), (7, "flags", be32)),
        "masq": ((1, "flags", be32), (2, "reg_proto_min", be32), (3, "reg_proto_max", be32)),
        "redir": ((1, "reg_proto_min", be32), (2, "reg_proto_max", be32), (3, "flags", be32)),
        "notrack": (),
        "fib": ((1, "dreg", be32), (2, "result", be32), (3, "flags", be32)),
        "queue": ((1, "num", be16), (2, "total", be16), (3, "flags", be16),
                  (4, "sreg_qnum", be32)),
        "flow_offload": ((1, "table_name", strz),),
        "synproxy": ((1, "mss", be16), (2, "wscale", _U8), (3, "flags", be32)),
        "tproxy": ((1, "family", be32), (2, "reg_addr", be32), (3, "reg_port", be32)),
        "objref": ((1, "imm_type", be32), (2, "imm_name", strz), (3, "set_sreg", be32),
                   (4, "set_name", strz), (5, "set_id", be32)),
        "numgen": ((1, "dreg", be32), (2, "modulus", be32), (3, "type", be32),
                   (4, "offset", be32)),
        "hash": ((1, "sreg", be32), (2, "dreg", be32), (3, "len", be32),
                 (4, "modulus", be32), (5, "seed", be32), (6, "offset", be32),
                 (7, "type", be32)),
    }
    for name, rows in tables.items():
        inner[name] = nested(f"NFTA_{name.upper()}", rows)
    expr = nested("NFTA_EXPR", ((1, "name", strz), (2, "data", Dispatch("name", inner))))
    dynset = nested("NFTA_DYNSET", (
        (1, "set_name", strz), (2, "set_id", be32), (3, "op", be32), (4, "sreg_key", be32),
        (5, "sreg_data", be32), (6, "timeout", be64), (7, "expr", expr), (9, "flags", be32),
        (10, "expressions", Array(expr, nested_flag=True))))
    inner["dynset"] = dynset
    return expr


class _Signed32:
    def encode(self, v):
        return (v & 0xffffffff).to_bytes(4, "big")

    def decode(self, raw):
        return int.from_bytes(raw[:4], "big", signed=True)


class _U8Codec:
    def encode(self, v):
        return bytes((v,))

    def decode(self, raw):
        return raw[0]


_S32, _U8 = _Signed32(), _U8Codec()
_DATA = _Data()
_VALUE = _DATA


def _build():
    expr = _expr_tables()
    hook = nested("NFTA_HOOK", ((1, "num", be32), (2, "priority", _S32), (3, "dev", strz),
                                (4, "devs", Array(strz, nested_flag=True))))
    table = Table("NFTA_TABLE", ((1, "name", strz), (2, "flags", be32), (3, "use", be32),
                                 (4, "handle", be64), (6, "userdata", binary),
                                 (7, "owner", be32)))
    chain = Table("NFTA_CHAIN", ((1, "table", strz), (2, "handle", be64), (3, "name", strz),
                                 (4, "hook", hook), (5, "policy", be32), (6, "use", be32),
                                 (7, "type", strz), (10, "flags", be32), (11, "id", be32),
                                 (12, "userdata", binary)))
    rule = Table("NFTA_RULE", ((1, "table", strz), (2, "chain", strz), (3, "handle", be64),
                               (4, "expressions", Array(expr, nested_flag=True)),
                               (7, "userdata", binary)))
    field = nested("NFTA_SET_FIELD", ((1, "len", be32),))
    desc = nested("NFTA_SET_DESC", ((1, "size", be32),
                                    (2, "concat", Array(field, nested_flag=True))))
    set_ = Table("NFTA_SET", ((1, "table", strz), (2, "name", strz), (3, "flags", be32),
                              (4, "key_type", be32), (5, "key_len", be32),
                              (6, "data_type", be32), (7, "data_len", be32),
                              (8, "policy", be32), (9, "desc", desc), (10, "id", be32),
                              (11, "timeout", be64), (12, "gc_interval", be32),
                              (13, "userdata", binary), (15, "obj_type", be32),
                              (16, "handle", be64), (17, "expr", expr),
                              (18, "expressions", Array(expr, nested_flag=True))))
    elem = nested("NFTA_SET_ELEM", ((1, "key", _VALUE), (2, "data", _DATA), (3, "flags", be32),
                                    (4, "timeout", be64), (5, "expiration", be64),
                                    (6, "userdata", binary), (7, "expr", expr),
                                    (9, "objref", strz), (10, "key_end", _VALUE),
                                    (11, "expressions", Array(expr, nested_flag=True))))
    setelem = Table("NFTA_SET_ELEM_LIST", ((1, "table", strz), (2, "set", strz),
                                           (3, "elements", Array(elem, nested_flag=True)),
                                           (4, "set_id", be32)))
    obj_data = {
        1: nested("NFTA_COUNTER", ((1, "bytes", be64), (2, "packets", be64))),
        2: nested("NFTA_QUOTA", ((1, "bytes", be64), (2, "flags", be32),
                                 (4, "consumed", be64))),
        3: nested("NFTA_CT_HELPER", ((1, "name", strz), (2, "l3proto", be16),
                                     (3, "l4proto", _U8))),
        4: nested("NFTA_LIMIT", ((1, "rate", be64), (2, "unit", be64), (3, "burst", be32),
                                 (4, "type", be32), (5, "flags", be32))),
        10: nested("NFTA_SYNPROXY", ((1, "mss", be16), (2, "wscale", _U8),
                                     (3, "flags", be32))),
    }
    obj = Table("NFTA_OBJ", ((1, "table", strz), (2, "name", strz), (3, "type", be32),
                             (4, "data", Dispatch("type", obj_data)), (5, "use", be32),
                             (6, "handle", be64), (8, "userdata", binary)))
    ft_hook = nested("NFTA_FLOWTABLE_HOOK", ((1, "num", be32), (2, "priority", _S32),
                                             (3, "devs", Array(strz, nested_flag=True))))
    flowtable = Table("NFTA_FLOWTABLE", ((1, "table", strz), (2, "name", strz),
                                         (3, "hook", ft_hook), (4, "use", be32),
                                         (5, "handle", be64), (7, "flags", be32)))
    return {"table": table, "chain": chain, "rule": rule, "set": set_, "setelem": setelem,
            "obj": obj, "flowtable": flowtable, "expr": expr, "elem": elem}


_TABLES = None


def tables() -> dict:
    """The attribute tables, built on first use (nothing runs at import)."""
    global _TABLES
    if _TABLES is None:
        _TABLES = _build()
    return _TABLES


def EXPR() -> Table:
    """NFTA_EXPR: one expression's name and data."""
    return tables()["expr"]


def ELEM() -> Table:
    """NFTA_SET_ELEM: one set element."""
    return tables()["elem"]


_EXPRS: dict = {}
_HDR = struct.Struct("=HH")


def walk(buf: bytes, off: int, end: int, what: str):
    """(type without the nested/byte-order flags, payload start, payload end) of each
    attribute in buf[off:end]; MalformedMessage naming `what` when one overruns."""
    unpack = _HDR.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(buf, off)
        if alen < 4 or off + alen > end:
            raise MalformedMessage(f"{what}: attribute length {alen} overruns")
        yield atype & 0x3fff, off + 4, off + alen
        off += (alen + 3) & ~3


_NAMES: dict = {}


def rule_attr(out: dict, atype: int, buf: bytes, start: int, stop: int) -> None:
    """NFTA_RULE's table (1), chain (2), handle (3) and userdata (7) into `out`, as
    tables()["rule"].decode gives them; other types are the caller's."""
    if atype == 1 or atype == 2:
        raw = buf[start:stop]
        name = _NAMES.get(raw)
        if name is None:
            name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if len(_NAMES) < 10_000:
                _NAMES[raw] = name
        out["table" if atype == 1 else "chain"] = name
    elif atype == 3:
        out["handle"] = int.from_bytes(buf[start:start + 8], "big")
    elif atype == 7:
        out["userdata"] = buf[start:stop]


def decode_rule(buf: bytes, off: int = 0) -> dict:
    """NFTA_RULE attributes, as tables()["rule"].decode gives them, faster: a dump of a big
    ruleset is mostly rules whose expressions repeat, so each distinct expression's bytes
    are decoded once (decode_exprs)."""
    out: dict = {}
    for atype, start, stop in walk(buf, off, len(buf), "NFTA_RULE"):
        if atype == 4:
            out["expressions"] = decode_exprs(buf, start, stop)
        else:
            rule_attr(out, atype, buf, start, stop)
    return out


def decode_exprs(buf: bytes, pos: int = 0, stop: int | None = None) -> list:
    """The expressions (NFTA_LIST_ELEM, each an NFTA_EXPR) in buf[pos:stop], as
    tables()["rule"] decodes NFTA_RULE_EXPRESSIONS; each distinct expression's bytes are
    decoded once (the dicts are shared: callers only read them)."""
    stop = len(buf) if stop is None else stop
    unpack = _HDR.unpack_from
    expr = EXPR()
    exprs = []
    while pos + 4 <= stop:
        elen, _ = unpack(buf, pos)
        if elen < 4 or pos + elen > stop:
            raise MalformedMessage("NFTA_RULE_EXPRESSIONS: element overruns")
        raw = buf[pos + 4:pos + elen]
        e = _EXPRS.get(raw)
        if e is None:
            e = _decode_expr(raw, expr)
            if len(_EXPRS) < 100_000:
                _EXPRS[raw] = e
        exprs.append(e)
        pos += (elen + 3) & ~3
    return exprs


def decode_setelems(buf: bytes, off: int = 0) -> dict:
    """NFTA_SET_ELEM_LIST attributes, as tables()["setelem"].decode gives them, faster for
    a big set: an element that is a key alone (NFTA_SET_ELEM_KEY holding one
    NFTA_DATA_VALUE, as nf_tables_fill_setelem() dumps a plain set's) is read in place,
    any other through the ELEM table."""
    table, elem = tables()["setelem"], ELEM()
    out: dict = {}
    unpack = _HDR.unpack_from
    for atype, start, stop in walk(buf, off, len(buf), "NFTA_SET_ELEM_LIST"):
        if atype != 3:
            out.update(table.decode(buf, start - 4, stop))
            continue
        elems = out["elements"] = []
        for etype, pos, end in walk(buf, start, stop, "NFTA_SET_ELEM_LIST_ELEMENTS"):
            if etype != 1:
                continue
            elen = end - pos + 4
            klen = ktype = vlen = vtype = 0
            if elen >= 12:
                (klen, ktype), (vlen, vtype) = unpack(buf, pos), unpack(buf, pos + 4)
            if klen == elen - 4 and ktype & 0x3fff == 1 and vtype & 0x3fff == 1 and \
                    vlen >= 4 and klen == 4 + ((vlen + 3) & ~3):
                elems.append({"key": buf[pos + 8:pos + 4 + vlen]})
            else:
                elems.append(elem.decode(buf[pos:end]))
    return out


_DROWS: dict = {}


def _decode_expr(raw: bytes, expr: Table) -> dict:
    """One NFTA_EXPR, as expr.decode(raw) gives it, with the common integer attributes
    converted directly."""
    unpack = _HDR.unpack_from
    name, data = None, None
    off, end = 0, len(raw)
    while off + 4 <= end:
        alen, atype = unpack(raw, off)
        if alen < 4 or off + alen > end:
            raise MalformedMessage(f"NFTA_EXPR: attribute length {alen} overruns")
        atype &= 0x3fff
        if atype == 1:
            name = raw[off + 4:off + alen].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif atype == 2:
            data = (off + 4, off + alen)
        off += (alen + 3) & ~3
    if name is None or data is None or name == "dynset":
        return expr.decode(raw)
    rows = _DROWS.get(name)
    if rows is None:
        inner = expr.rows[1][2].choices.get(name)
        if inner is None:
            return expr.decode(raw)
        rows = _DROWS[name] = {aid: (n, c) for aid, n, c in inner.rows}
    out = {}
    off, end = data
    try:
        while off + 4 <= end:
            alen, atype = unpack(raw, off)
            if alen < 4 or off + alen > end:
                raise MalformedMessage(f"NFTA_EXPR_DATA: attribute length {alen} overruns")
            row = rows.get(atype & 0x3fff)
            if row is not None:
                n, c = row
                v = raw[off + 4:off + alen]
                out[n] = int.from_bytes(v, "big") if c is be32 and len(v) == 4 else c.decode(v)
            off += (alen + 3) & ~3
    except MalformedMessage:
        raise
    except (struct.error, ValueError, TypeError, IndexError, KeyError) as e:
        raise MalformedMessage(f"{name}: {e}") from None
    return {"name": name, "data": out}


# message kind -> the table its attributes use
MSG_TABLE = {"newtable": "table", "deltable": "table", "destroytable": "table",
             "gettable": "table", "newchain": "chain", "getchain": "chain",
             "newrule": "rule", "getrule": "rule", "newset": "set", "getset": "set",
             "newsetelem": "setelem", "getsetelem": "setelem", "newobj": "obj",
             "getobj": "obj", "newflowtable": "flowtable", "getflowtable": "flowtable"}
