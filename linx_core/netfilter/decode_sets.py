"""Kernel sets back to the model: a set's attributes and types (key and data datatypes
from NFTA_SET_KEY_TYPE / DATA_TYPE and nft's set udata), and its elements as nft prints
them, interval start/end pairs joined again (nft's interval_map_decompose in
src/segtree.c). Anonymous sets become the literals of the rules that look them up.
"""
from . import decode_values as V
from . import model as M
from . import types as T
from .nf_tables import (DATA_VERDICT, ELEM_CATCHALL, ELEM_INTERVAL_END, SET_ANONYMOUS,
                        SET_CONSTANT, SET_EVAL, SET_INTERVAL, SET_MAP, SET_OBJECT,
                        SET_TIMEOUT)


class KSet:
    """A kernel set as dumped: its attributes, its types, and its elements."""

    def __init__(self, a: dict):
        self.a = a
        self.name = a["name"]
        self.flags = a.get("flags", 0)
        ud = V.udata(a.get("userdata") or b"")
        self.key = types_of(a.get("key_type", 0), a.get("key_len", 0), ud.get(0))
        dt = a.get("data_type")
        if self.flags & SET_MAP and dt is not None:
            self.data = "verdict" if dt == DATA_VERDICT else (
                types_of(dt, a.get("data_len", 0), ud.get(1)))
        else:
            self.data = None
        self.objtype = V.OBJ_KINDS.get(a.get("obj_type")) if self.flags & SET_OBJECT else None
        self.elements = []

    @property
    def anonymous(self) -> bool:
        return bool(self.flags & SET_ANONYMOUS)

    def data_type(self):
        if self.data == "verdict" or self.data is None:
            return self.data
        return self.data[0] if len(self.data) == 1 else tuple(self.data)


def types_of(tid: int, length: int, byteorder: bytes | None = None) -> list:
    """Datatypes of a set key or data; a plain integer takes its width from the length
    and its byte order from nft's set userdata (NFTNL_UDATA_SET_KEYBYTEORDER)."""
    ids = T.split_concat_id(tid) if tid >= 64 else [tid]
    order = T.HOST if byteorder and V.u32le(byteorder) == 1 else T.BIG
    out = []
    for i in ids:
        t = T.BY_ID.get(i)
        if t is None or (t is T.INTEGER and len(ids) == 1):
            t = T.integer(length * 8 or 32, order)
        out.append(t)
    return out


def set_model(ks: KSet, family: str) -> M.Set:
    a = ks.a
    flags = ks.flags
    kind = "map" if flags & (SET_MAP | SET_OBJECT) else "set"
    names = []
    if flags & SET_CONSTANT:
        names.append("constant")
    if flags & SET_EVAL:
        names.append("dynamic")
    if flags & SET_INTERVAL:
        names.append("interval")
    if flags & SET_TIMEOUT:
        names.append("timeout")
    ud = V.udata(a.get("userdata") or b"")
    desc = a.get("desc") or {}
    s = M.Set(ks.name, kind, tuple(ks.key),
              data=(ks.data if ks.data == "verdict" or ks.data is None
                    else ks.data[0] if len(ks.data) == 1 else tuple(ks.data)),
              flags=tuple(names), timeout=a.get("timeout"), gc_interval=a.get("gc_interval"),
              size=desc.get("size"), policy="memory" if a.get("policy") == 1 else None,
              auto_merge=bool(V.u32le(ud.get(2))), counter="expr" in a,
              comment=(ud[7].split(b"\0", 1)[0].decode(errors="replace") if 7 in ud else None),
              objtype=ks.objtype)
    s.elements = elements(ks)
    return s


def elements(ks: KSet) -> list:
    """Kernel elements back to what nft prints: interval start/end pairs become ranges,
    prefixes or single values (nft's interval_map_decompose)."""
    key = ks.key
    out = []
    interval = ks.flags & SET_INTERVAL and len(key) == 1
    raw = ks.elements
    if interval:
        typ = key[0]
        top = (1 << typ.bits) - 1
        items = sorted(raw, key=lambda e: (int.from_bytes(e.get("key", b""), "big"),
                                           0 if e.get("flags", 0) & ELEM_INTERVAL_END else 1))
        start = None
        for e in items:
            if e.get("flags", 0) & ELEM_CATCHALL:
                out.append(_with_data(ks, M.Catchall(), e))
                continue
            k = int.from_bytes(e["key"][:typ.size], "big")
            if e.get("flags", 0) & ELEM_INTERVAL_END:
                if start is not None:
                    out.append(_interval(ks, typ, start[0], k - 1, start[1]))
                    start = None
                continue
            if start is not None:      # open range, then a new start
                out.append(_interval(ks, typ, start[0], top, start[1]))
            start = (k, e)
        if start is not None:
            out.append(_interval(ks, typ, start[0], top, start[1]))
        return out
    one = key[0] if len(key) == 1 else None
    plain = one is not None and ks.data is None and ks.objtype is None and \
        one.kind not in ("str", "ifindex")
    for e in raw:
        if plain and len(e) == 1 and "key" in e:    # a key and nothing else: most of a big set
            out.append(M.Value(one, int.from_bytes(e["key"][:one.size], one.order)))
            continue
        if e.get("flags", 0) & ELEM_CATCHALL:
            k = M.Catchall()
        elif len(key) > 1:
            if "key_end" in e:
                k = _concat_range(key, e["key"], e["key_end"])
            else:
                k = M.Concat(tuple(M.Value(t, V.val(t, part))
                                   for t, part in zip(key, V.split(key, e["key"]))))
        else:
            k = M.Value(key[0], V.val(key[0], e["key"]))
        out.append(_with_data(ks, k, e))
    return out


def _concat_range(key, lo, hi):
    items = []
    for t, a, b in zip(key, V.split(key, lo), V.split(key, hi)):
        items.append(V.range_expr(t, int.from_bytes(a[:t.size], "big"),
                                 int.from_bytes(b[:t.size], "big")))
    return M.Concat(tuple(items))




def _interval(ks, t, lo, hi, e):
    return _with_data(ks, V.range_expr(t, lo, hi), e)


def _with_data(ks: KSet, key, e):
    opts = {}
    if e.get("timeout"):
        opts["timeout"] = e["timeout"]
    if e.get("expiration"):
        opts["expires"] = e["expiration"]
    ud = e.get("userdata")
    if ud:
        c = V.udata(ud).get(0)
        if c is not None:
            opts["comment"] = c.split(b"\0", 1)[0].decode(errors="replace")
    stmts = []
    for x in ([e["expr"]] if "expr" in e else e.get("expressions", [])):
        stmts.append(V.stateful(x))
    if opts or stmts:
        key = M.Elem(key, opts.get("timeout"), opts.get("expires"), opts.get("comment"),
                     tuple(stmts))
    if ks.objtype is not None and "objref" in e:
        return M.Mapping(key, M.Value(T.STRING, e["objref"]))
    if ks.data is not None and "data" in e:
        d = e["data"]
        if ks.data == "verdict":
            return M.Mapping(key, V.verdict(d))
        dt = ks.data
        if len(dt) > 1:
            return M.Mapping(key, M.Concat(tuple(M.Value(t, V.val(t, p))
                                                 for t, p in zip(dt, V.split(dt, d)))))
        return M.Mapping(key, M.Value(dt[0], V.val(dt[0], d)))
    return key

