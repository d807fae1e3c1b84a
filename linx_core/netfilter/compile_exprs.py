"""Expressions into registers (nftables src/netlink_linearize.c, netlink_gen_expr()):
what a payload, meta, ct, fib, concatenation, binop, hash, numgen or map lookup loads, how
many bytes it takes in the registers, and constants as the bytes the kernel compares."""

from . import compile_sets as sets
from . import model as M
from . import proto as P
from . import types as T
from .location import NftError
from .nf_tables import VERDICT_CODES, put_reg, reg_space


def value_bytes(c, e, typ, nbytes=None) -> bytes:
    if isinstance(e, M.Flags):
        return e.v.to_bytes(nbytes or typ.size, typ.order)
    if not isinstance(e, M.Value):
        raise NftError(getattr(e, "loc", None), "expected a single value here")
    v = e.v
    if typ.kind == "ifindex":
        v = c.ifindex(v, e.loc)
        return v.to_bytes(4, "little")
    if isinstance(v, str):
        n = nbytes or (typ.size if typ.bits else len(v) + 1)
        return v.encode().ljust(n, b"\0")[:n]
    return v.to_bytes(nbytes or typ.size, typ.order)


def concat_data(c, e, key) -> bytes:
    if not isinstance(e, M.Concat) or len(e.items) != len(key):
        raise NftError(getattr(e, "loc", None), "a concatenation value needs "
                                                f"{len(key)} '.' separated fields")
    out = b""
    for item, typ in zip(e.items, key):
        b = value_bytes(c, item, typ)
        out += b.ljust(reg_space(len(b)) * 4, b"\0")
    return out


def verdict_data(c, v: M.Verdict) -> dict:
    if v.kind in ("jump", "goto"):
        if v.chain not in c.tbl.chains:
            raise NftError(v.loc, f"{v.kind}: chain {v.chain} is not defined in table "
                                  f"{c.fam} {c.tbl.name}")
        return {"code": VERDICT_CODES[v.kind], "chain": v.chain}
    return {"code": VERDICT_CODES[v.kind]}


def expr_len(c, e) -> int:
    """Bytes the expression occupies in registers (a concatenation: each field rounded
    up to 32 bits)."""
    if isinstance(e, M.Concat):
        return sum(reg_space(expr_len(c, x)) * 4 for x in e.items)
    t = type_of(c, e)
    if isinstance(e, M.Payload) or isinstance(e, M.RawPayload):
        return (t.bits + 7) // 8
    if isinstance(e, M.Fib):        # fib_expr_alloc(): a u32 but for oifname
        return 16 if e.result == "oifname" and "present" not in e.flags else 4
    return t.size


def type_of(c, e):
    if isinstance(e, M.Payload):
        return P.PROTOS[e.proto].fields[e.field][2]
    if isinstance(e, M.Meta):
        return P.META[e.key][1]
    if isinstance(e, M.Ct):
        if e.key in ("saddr", "daddr"):
            return T.IPV4 if e.family == "ip" else T.IPV6
        return P.CT[e.key][1]
    if isinstance(e, M.Fib):
        if "present" in e.flags:
            return T.BOOLEAN
        return P.FIB_RESULTS[e.result][1]
    if isinstance(e, M.Binop):
        return type_of(c, e.left)
    if isinstance(e, M.RawPayload):
        return T.xinteger(e.bits)
    if isinstance(e, (M.Numgen, M.Hash)):
        return T.integer(32, T.HOST)
    if isinstance(e, M.Concat):
        return tuple(type_of(c, x) for x in e.items)
    if isinstance(e, M.MapExpr):
        return map_data(c, e.mapping)
    raise NftError(getattr(e, "loc", None), f"cannot load {type(e).__name__} here")


def load(c, e, dreg, nbytes=None):
    """Generate the expression that puts `e` in register slot `dreg`."""
    k = type(e)
    if k is M.Payload:
        desc = P.PROTOS[e.proto]
        off, bits, typ = desc.fields[e.field]
        off += desc.offset
        start = off // 8
        end = (off + bits + 7) // 8
        length = nbytes if nbytes is not None else end - start
        c.emit("payload", dreg=put_reg(dreg), base=desc.base, offset=start, len=length)
        if (off % 8 or bits % 8) and nbytes is None:
            total = (end - start) * 8
            shift = total - (off - start * 8) - bits
            mask = ((1 << bits) - 1) << shift
            c.emit("bitwise", sreg=put_reg(dreg), dreg=put_reg(dreg), op=0,
                   len=end - start, mask=mask.to_bytes(end - start, "big"),
                   xor=bytes(end - start))
    elif k is M.RawPayload:
        start = e.offset // 8
        end = (e.offset + e.bits + 7) // 8
        c.emit("payload", dreg=put_reg(dreg), base=e.base, offset=start,
               len=end - start)
        if e.offset % 8 or e.bits % 8:
            total = (end - start) * 8
            shift = total - (e.offset - start * 8) - e.bits
            mask = ((1 << e.bits) - 1) << shift
            c.emit("bitwise", sreg=put_reg(dreg), dreg=put_reg(dreg), op=0,
                   len=end - start, mask=mask.to_bytes(end - start, "big"),
                   xor=bytes(end - start))
    elif k is M.Meta:
        c.emit("meta", dreg=put_reg(dreg), key=P.META[e.key][0])
    elif k is M.Ct:
        if e.key in ("saddr", "daddr") and e.family:
            key = P.CT_ADDR[(e.family, e.key)]
        else:
            key = P.CT[e.key][0]
        d = {"dreg": put_reg(dreg), "key": key}
        if e.dir is not None:
            d["direction"] = P.CT_DIRS[e.dir]
        c.exprs.append({"name": "ct", "data": d})
    elif k is M.Fib:
        flags = 0
        for f in e.flags:
            flags |= P.FIB_PRESENT if f == "present" else P.FIB_FLAGS[f]
        c.emit("fib", dreg=put_reg(dreg), result=P.FIB_RESULTS[e.result][0],
               flags=flags)
    elif k is M.Concat:
        slot = dreg
        for x in e.items:
            load(c, x, slot)
            slot += reg_space(expr_len(c, x))
    elif k is M.Binop:
        binop(c, e, dreg)
    elif k is M.Numgen:
        c.emit("numgen", dreg=put_reg(dreg), modulus=e.mod,
               type=0 if e.mode == "inc" else 1, offset=e.offset)
    elif k is M.Hash:
        d = {}
        if e.kind == "jhash":
            sreg = c.get_reg(expr_len(c, e.expr))
            load(c, e.expr, sreg)
            c.release(expr_len(c, e.expr))
            d["sreg"] = put_reg(sreg)
            d["len"] = expr_len(c, e.expr)
        d["dreg"] = put_reg(dreg)
        d["modulus"] = e.mod
        if e.seed is not None:
            d["seed"] = e.seed
        d["offset"] = e.offset
        d["type"] = 0 if e.kind == "jhash" else 1
        c.exprs.append({"name": "hash", "data": d})
    elif k is M.MapExpr:
        map_lookup(c, e, dreg)
    elif k is M.Value:
        typ = e.type
        c.emit("immediate", dreg=put_reg(dreg), data=value_bytes(c, e, typ))
    elif k is M.Flags:
        c.emit("immediate", dreg=put_reg(dreg), data=value_bytes(c, e, e.type))
    else:
        raise NftError(getattr(e, "loc", None), f"cannot load {k.__name__} here")


def binop(c, e, dreg):
    """netlink_gen_bitwise(): a chain of & | ^ folds into one mask/xor pair."""
    if e.op in ("<<", ">>"):
        load(c, e.left, dreg)
        n = expr_len(c, e.left)
        c.emit("bitwise", sreg=put_reg(dreg), dreg=put_reg(dreg),
               op=1 if e.op == "<<" else 2, len=n,
               data=e.right.v.to_bytes(4, "little"))
        return
    chain = []
    left = e
    while isinstance(left, M.Binop) and left.op in ("&", "|", "^"):
        chain.append(left)
        left = left.left
    load(c, left, dreg)
    typ = type_of(c, left)
    n = expr_len(c, left)
    bits = n * 8
    full = (1 << bits) - 1
    mask, xor = full, 0
    for b in reversed(chain):
        val = int.from_bytes(value_bytes(c, b.right, typ, n), "big")
        if b.op == "&":
            m, x = val, 0
        elif b.op == "|":
            m, x = ~val & full, val
        else:
            m, x = full, val
        xor = (xor & m) ^ x
        mask &= m
    c.emit("bitwise", sreg=put_reg(dreg), dreg=put_reg(dreg), op=0, len=n,
           mask=mask.to_bytes(n, "big"), xor=xor.to_bytes(n, "big"))


def map_data(c, mapping):
    if isinstance(mapping, M.SetRef):
        s = lookup_set(c, mapping)
        return s.data
    return None


def lookup_set(c, ref: M.SetRef) -> M.Set:
    s = c.tbl.sets.get(ref.name)
    if s is None:
        raise NftError(ref.loc, f"set {ref.name} is not defined in table "
                                f"{c.fam} {c.tbl.name}")
    return s


def map_lookup(c, e: M.MapExpr, dreg, data_type=None):
    """`key map { k : v }`: the lookup writes the mapped value into dreg."""
    klen = expr_len(c, e.key)
    space = reg_space(klen) if isinstance(e.key, M.Concat) else 0
    c.reg_low += space
    load(c, e.key, dreg)
    c.reg_low -= space
    name, sid = set_for(c, e.mapping, key_types(c, e.key), data_type, e.loc)
    d = {"set": name, "sreg": put_reg(dreg), "dreg": put_reg(dreg)}
    if sid:
        d["set_id"] = sid
    c.exprs.append({"name": "lookup", "data": d})


def key_types(c, e):
    t = type_of(c, e)
    return t if isinstance(t, tuple) else (t,)


def set_for(c, mapping, key_types, data_type, loc):
    if isinstance(mapping, M.SetRef):
        lookup_set(c, mapping)
        return mapping.name, c.set_ids.get(mapping.name, 0)
    return sets.anon_set(c, key_types if len(key_types) > 1 else key_types[0],
                         mapping.elems, data_type, loc)
