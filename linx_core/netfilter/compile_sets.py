"""Sets and maps to nf_tables messages: NEWSET with its key/data types, flags and nft's
userdata, and the NEWSETELEM messages of its elements; anonymous sets (`{ 22, 80 }` in a
rule) and interval sets as the kernel's start/end element pairs (nftables src/intervals.c,
src/netlink.c's set and element builders)."""

from . import compile_exprs as exprs
from . import compile_stmts as stmts
from . import model as M
from . import types as T
from .location import NftError
from .nf_tables import (DATA_VERDICT, SET_ANONYMOUS, SET_CONSTANT, SET_INTERVAL, SET_MAP,
                        SET_TIMEOUT, SET_EVAL, SET_OBJECT, SET_CONCAT, SET_FLAG_BITS,
                        ELEM_INTERVAL_END, ELEM_CATCHALL, OBJ_TYPES, BYTEORDER, BATCH_ELEMS_BYTES,
                        udata, strz, reg_space)


def named_set(c, s: M.Set, dynamic_use: bool):
    flags = 0
    for f in s.flags:
        flags |= SET_FLAG_BITS[f]
    if dynamic_use:
        flags |= SET_EVAL
    if s.kind == "map":
        flags |= SET_OBJECT if s.objtype else SET_MAP
    if s.timeout:
        flags |= SET_TIMEOUT
    key = s.key
    data = s.data if s.kind == "map" and not s.objtype else None
    sid = c.next_set_id()
    c.set_ids[s.name] = sid
    attrs = set_attrs(c, s.name, sid, flags, key, data, objtype=s.objtype)
    if s.timeout:
        attrs["timeout"] = s.timeout
    if s.gc_interval:
        attrs["gc_interval"] = s.gc_interval
    if not flags & SET_CONSTANT:
        if s.policy == "memory":
            attrs["policy"] = 1
        if s.size:
            attrs["desc"] = {"size": s.size}
    if len(key) > 1 and flags & SET_INTERVAL:
        attrs["flags"] |= SET_CONCAT
        attrs.setdefault("desc", {})["concat"] = [{"len": t.size} for t in key]
    ud = [(0, (BYTEORDER[key_order(c, key)]).to_bytes(4, "little"))]
    if data is not None:
        ud.append((1, BYTEORDER[data_order(c, data)].to_bytes(4, "little")))
    if s.auto_merge:
        ud.append((2, (1).to_bytes(4, "little")))
    if data is not None:
        ud.append((6, (0).to_bytes(4, "little")))
    if s.comment is not None:
        ud.append((7, strz(s.comment)))
    attrs["userdata"] = udata(*ud)
    if s.counter:
        attrs["expr"] = {"name": "counter", "data": {}}
    c.message("newset", attrs, s.loc, f"set {c.fam} {c.tbl.name} {s.name}")
    if s.elements:
        elements(c, s.name, sid, s, s.elements, attrs["flags"], anonymous=False)


def key_order(c, key) -> str:
    return T.BIG if len(key) > 1 else key[0].order


def data_order(c, data) -> str:
    if data == "verdict":
        return T.BIG
    if isinstance(data, tuple):
        return T.BIG
    return data.order


def set_attrs(c, name, sid, flags, key, data, objtype=None) -> dict:
    klen = sum(reg_space(t.size) * 4 for t in key) if len(key) > 1 else key[0].size
    attrs = {"table": c.tbl.name, "name": name, "flags": flags,
             "key_type": T.concat_id(key) if len(key) > 1 else key[0].id,
             "key_len": klen}
    if data is not None:
        if data == "verdict":
            attrs["data_type"] = DATA_VERDICT
            attrs["data_len"] = 0
        elif isinstance(data, tuple):
            attrs["data_type"] = T.concat_id(data)
            attrs["data_len"] = sum(reg_space(t.size) * 4 for t in data)
        else:
            attrs["data_type"] = data.id
            attrs["data_len"] = data.size
    if objtype is not None:
        attrs["obj_type"] = OBJ_TYPES[objtype]
    attrs["id"] = sid
    return attrs


def anon_set(c, key_types, elems, data=None, loc=None):
    """An anonymous constant set for `{ ... }` in a rule; returns (name, id)."""
    key = key_types if isinstance(key_types, tuple) else (key_types,)
    flags = SET_ANONYMOUS | SET_CONSTANT
    interval = any(is_interval(elem_key(e)) for e in elems)
    if interval:
        flags |= SET_INTERVAL
    objtype = None
    if isinstance(data, str) and data != "verdict":     # an object map
        objtype, data = data, None
        flags |= SET_OBJECT
    elif data is not None:
        flags |= SET_MAP
    name = "__objmap%d" if objtype else "__map%d" if data is not None else "__set%d"
    sid = c.next_set_id()
    attrs = set_attrs(c, name, sid, flags, key, data, objtype)
    if len(key) > 1 and interval:
        attrs["flags"] |= SET_CONCAT
    c.message("newset", attrs, loc, f"anonymous set in {c.what}")
    n = elements(c, name, sid, None, elems, attrs["flags"], anonymous=True, key=key,
                 data=objtype or data)
    desc = {"size": n}
    if len(key) > 1 and interval:
        desc["concat"] = [{"len": t.size} for t in key]
    attrs["desc"] = desc
    ud = [(0, BYTEORDER[key_order(c, key)].to_bytes(4, "little"))]
    if data is not None:
        ud.append((1, BYTEORDER[data_order(c, data)].to_bytes(4, "little")))
    if interval and data is None:
        ud.append((2, (1).to_bytes(4, "little")))
    if data is not None:
        ud.append((6, (0).to_bytes(4, "little")))
    attrs["userdata"] = udata(*ud)
    return name, sid


def elements(c, name, sid, s, elems, flags, anonymous, key=None, data=None) -> int:
    """NEWSETELEM messages for `elems`; returns how many kernel elements they are."""
    if s is not None:
        key = s.key
        data = s.objtype or (s.data if s.kind == "map" else None)
    out = []
    if flags & SET_INTERVAL and len(key) == 1:
        out = interval_elements(c, key[0], elems, data, anonymous,
                                automerge=anonymous or (s is not None and s.auto_merge),
                                is_map=data is not None)
    else:
        for e in elems:
            out.append(elem(c, e, key, data, concat_interval=bool(flags & SET_CONCAT)))
    batch, size = [], 0
    for el in out:
        batch.append(el)
        size += 64 + sum(len(v) if isinstance(v, bytes) else 16 for v in el.values())
        if size > BATCH_ELEMS_BYTES:
            c.message("newsetelem", {"table": c.tbl.name, "set": name, "set_id": sid,
                                     "elements": batch}, None, f"elements of set {name}")
            batch, size = [], 0
    if batch:
        c.message("newsetelem", {"table": c.tbl.name, "set": name, "set_id": sid,
                                 "elements": batch}, None, f"elements of set {name}")
    return len(out)


def elem(c, e, key, data, concat_interval=False) -> dict:
    el = {}
    e, value, opts = M.unwrap_element(e)
    if isinstance(e, M.Catchall):
        el["flags"] = ELEM_CATCHALL
    elif len(key) > 1:
        if concat_interval:
            lo, hi = concat_bounds(c, e, key)
            el["key"] = lo
            el["key_end"] = hi
        else:
            el["key"] = exprs.concat_data(c, e, key)
    else:
        el["key"] = exprs.value_bytes(c, e, key[0])
    if value is not None:
        put_data(c, el, value, data)
    if opts is not None:
        if opts.timeout:
            el["timeout"] = opts.timeout
        if opts.expires:
            el["expiration"] = opts.expires
        if opts.comment is not None:
            el["userdata"] = udata((0, strz(opts.comment)))
        if opts.stmts:
            el["expr"] = stmts.stateful(c, opts.stmts[0])
    return el


def put_data(c, el, value, data):
    if isinstance(data, str) and data != "verdict":     # an object map
        el["objref"] = value.v
    else:
        el["data"] = data_value(c, value, data)


def data_value(c, value, data):
    if data == "verdict":
        return exprs.verdict_data(c, value)
    if isinstance(data, str):     # an object map: the object's name
        return value.v.encode() + b"\0"
    if isinstance(data, tuple):
        return exprs.concat_data(c, value, data)
    return exprs.value_bytes(c, value, data)


def interval_elements(c, typ, elems, data, anonymous, automerge, is_map):
    """set_to_intervals() of nftables src/intervals.c: sorted, merged ranges, each a
    start element and an end element (first key past the range) flagged INTERVAL_END;
    a leading end element at 0 when the first range does not start there."""
    bits = typ.bits
    top = (1 << bits) - 1
    ranges = []
    for e in elems:
        e, value, opts = M.unwrap_element(e)
        if isinstance(e, M.Catchall):
            continue
        lo, hi = bounds(c, e, typ)
        ranges.append([lo, hi, value, opts, e])
    ranges.sort(key=lambda r: r[0])
    if not is_map:
        merged = []
        for r in ranges:
            if merged:
                p = merged[-1]
                if p[0] <= r[0] and p[1] >= r[1]:
                    continue
                if r[0] <= p[1] or (automerge and r[0] - p[1] == 1):
                    if r[0] <= p[1] and not automerge:
                        raise NftError(r[4].loc, "conflicting intervals specified")
                    p[1] = max(p[1], r[1])
                    continue
            merged.append(r)
        ranges = merged
    nbytes = typ.size

    def kbytes(v):
        return v.to_bytes(nbytes, "big")

    out = []
    pending = None
    for n, (lo, hi, value, opts, e) in enumerate(ranges):
        if n == 0 and lo != 0:
            out.append({"key": kbytes(0), "flags": ELEM_INTERVAL_END})
        if pending is not None:
            if not anonymous or pending[0] != lo:
                out.append(pending[1])
        pending = None
        el = {"key": kbytes(lo)}
        if opts is not None and opts.timeout:
            el["timeout"] = opts.timeout
        ud = []
        if opts is not None and opts.comment is not None:
            ud.append((0, strz(opts.comment)))
        if hi != top:
            pending = (hi + 1, {"key": kbytes(hi + 1), "flags": ELEM_INTERVAL_END})
        else:       # NFTNL_SET_ELEM_F_INTERVAL_OPEN: the range runs to the end
            ud.append((1, (1).to_bytes(4, "little")))
        if ud:
            el["userdata"] = udata(*ud)
        if value is not None:
            put_data(c, el, value, data)
        out.append(el)
    if pending is not None:
        out.append(pending[1])
    return out


def bounds(c, e, typ):
    """(lo, hi) as unsigned numbers in network order (host-endian keys are swapped, as
    nft stores them so ranges compare as memcmp)."""
    if isinstance(e, M.Prefix):
        lo = num(c, e.value, typ)
        hi = lo | ((1 << (typ.bits - e.plen)) - 1)
        return lo, hi
    if isinstance(e, M.Range):
        return num(c, e.lo, typ), num(c, e.hi, typ)
    v = num(c, e, typ)
    return v, v


def num(c, e, typ) -> int:
    """An interval key as a number; stored big-endian whatever the type's byte order
    (nft swaps host-order keys so ranges compare as memcmp)."""
    b = exprs.value_bytes(c, e, typ)
    return int.from_bytes(b, "big" if typ.kind in ("str", "ifindex") else typ.order)


def concat_bounds(c, e, key):
    lo, hi = b"", b""
    for item, typ in zip(e.items, key):
        a, b = bounds(c, item, typ)
        n = reg_space(typ.size) * 4
        lo += a.to_bytes(typ.size, "big").ljust(n, b"\0")
        hi += b.to_bytes(typ.size, "big").ljust(n, b"\0")
    return lo, hi


def elem_key(e):
    return M.unwrap_element(e)[0]


def is_interval(e) -> bool:
    if isinstance(e, (M.Range, M.Prefix)):
        return True
    if isinstance(e, M.Concat):
        return any(isinstance(x, (M.Range, M.Prefix)) for x in e.items)
    return False
