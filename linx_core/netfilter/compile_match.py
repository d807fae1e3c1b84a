"""Relational matches (`left op right`) to load + cmp/range/lookup/bitwise expressions
(nftables src/netlink_linearize.c, netlink_gen_relational()), and the statement reduction
that merges equality matches on adjacent payload fields into one load and compare
(src/rule.c stmt_reduce(), src/payload.c payload_expr_join())."""

from dataclasses import dataclass

from . import compile_exprs as exprs
from . import compile_sets as sets
from . import model as M
from . import proto as P
from . import types as T
from .nf_tables import CMP_OPS, put_reg


_ORDERED = frozenset(("<", ">", "<=", ">="))
_LOADS: dict = {}
_CMPS: dict = {}


def _field_load(left, sreg):
    """The expressions that load header field or meta key `left` into slot `sreg`, built
    once per (field, slot) and shared by every rule that loads it, and how a constant
    compared with it is laid out: (expressions, type, constant length or None, bit
    shift). Expressions are values: nothing changes one once emitted, so rules share
    them (as they share the cmp of `meta l4proto tcp`), and the encoder encodes each
    shared one once."""
    if type(left) is M.Meta:
        key = ("meta", left.key, sreg)
        hit = _LOADS.get(key)
        if hit is None:
            mkey, typ = P.META[left.key][:2]
            hit = _LOADS[key] = (({"name": "meta", "data": {"dreg": put_reg(sreg),
                                                             "key": mkey}},), typ, None, 0)
        return hit
    key = (left.proto, left.field, sreg)
    hit = _LOADS.get(key)
    if hit is None:
        exprs_ = []
        desc = P.PROTOS[left.proto]
        off, bits, typ = desc.fields[left.field]
        off += desc.offset
        start, end = off // 8, (off + bits + 7) // 8
        r = put_reg(sreg)
        exprs_.append({"name": "payload", "data": {"dreg": r, "base": desc.base,
                                                   "offset": start, "len": end - start}})
        shift = 0
        if off % 8 or bits % 8:
            shift = (end - start) * 8 - (off - start * 8) - bits
            mask = ((1 << bits) - 1) << shift
            exprs_.append({"name": "bitwise", "data": {
                "sreg": r, "dreg": r, "op": 0, "len": end - start,
                "mask": mask.to_bytes(end - start, "big"), "xor": bytes(end - start)}})
        hit = _LOADS[key] = (tuple(exprs_), typ, end - start, shift)
    return hit


def s_match(c, s: M.Match):
    left, right, op = s.left, s.right, s.op
    lt = type(left)
    if type(right) is M.Value and (lt is M.Payload or lt is M.Meta):
        # the common shape, `tcp dport 22`: a shared load, then one cmp
        sreg = c.reg_low
        loads, typ, nbytes, shift = _field_load(left, sreg)
        v = right.v
        if not ((op == "" and typ.kind == "bitmask") or
                (op in _ORDERED and typ.order == T.HOST and typ.size > 1) or
                (type(v) is str and v.endswith("*") and typ.kind == "str")):
            if shift:
                data = (v << shift).to_bytes(nbytes, "big")
            elif type(v) is int and typ.kind != "ifindex":
                data = v.to_bytes(nbytes or typ.size, typ.order)
            else:
                data = exprs.value_bytes(c, right, typ, nbytes)
            key = (sreg, op, data)
            cmp = _CMPS.get(key)
            if cmp is None:
                cmp = {"name": "cmp", "data": {"sreg": put_reg(sreg), "op": CMP_OPS[op],
                                               "data": data}}
                if len(_CMPS) < 100_000:
                    _CMPS[key] = cmp
            out = c.exprs
            out.extend(loads)
            out.append(cmp)
            return
    if isinstance(left, _Merged):
        sreg = c.get_reg()
        c.emit("payload", dreg=put_reg(sreg), base=left.base, offset=left.offset // 8,
               len=left.bits // 8)
        c.emit("cmp", sreg=put_reg(sreg), op=CMP_OPS[op], data=right)
        c.release()
        return
    typ = exprs.type_of(c, left)
    if isinstance(right, (M.SetLit, M.SetRef)):
        n = exprs.expr_len(c, left)
        sreg = c.get_reg(n if isinstance(left, M.Concat) else 16)
        exprs.load(c, left, sreg)
        if needs_hton(c, left, typ, right):
            c.emit("byteorder", sreg=put_reg(sreg), dreg=put_reg(sreg), op=1,
                   len=typ.size, size=_swap_size(typ.bits))
        key = typ if isinstance(typ, tuple) else (typ,)
        shift = _field_shift(left)
        if shift and isinstance(right, M.SetLit):
            # the field sits `shift` bits up in the loaded bytes; so do the elements
            right = M.SetLit(tuple(_shift_elem(e, shift) for e in right.elems), loc=right.loc)
        name, sid = exprs.set_for(c, right, key, None, s.loc)
        d = {"set": name, "sreg": put_reg(sreg)}
        if sid:
            d["set_id"] = sid
        if op == "!=":
            d["flags"] = 1
        c.exprs.append({"name": "lookup", "data": d})
        c.release(n if isinstance(left, M.Concat) else 16)
        return
    if isinstance(right, M.Range):
        sreg = c.get_reg()
        exprs.load(c, left, sreg)
        lo = exprs.value_bytes(c, right.lo, typ)
        hi = exprs.value_bytes(c, right.hi, typ)
        if typ.order == T.HOST and typ.size > 1:
            c.emit("byteorder", sreg=put_reg(sreg), dreg=put_reg(sreg), op=1,
                   len=typ.size, size=_swap_size(typ.bits))
            lo, hi = lo[::-1], hi[::-1]
        if op == "!=":
            c.emit("range", sreg=put_reg(sreg), op=1, data_from=lo, data_to=hi)
        else:
            c.emit("cmp", sreg=put_reg(sreg), op=5, data=lo)
            c.emit("cmp", sreg=put_reg(sreg), op=3, data=hi)
        c.release()
        return
    if isinstance(right, M.Prefix):
        sreg = c.get_reg()
        plen = right.plen
        val = exprs.value_bytes(c, right.value, typ)
        if plen and plen % 8 == 0 and typ.order == T.BIG:
            exprs.load(c, left, sreg, nbytes=plen // 8)
            data = val[:plen // 8]
        else:
            exprs.load(c, left, sreg)
            mask = (((1 << plen) - 1) << (typ.bits - plen)).to_bytes(typ.size, typ.order)
            c.emit("bitwise", sreg=put_reg(sreg), dreg=put_reg(sreg), op=0,
                   len=typ.size, mask=mask, xor=bytes(typ.size))
            data = val
        c.emit("cmp", sreg=put_reg(sreg), op=CMP_OPS[op], data=data)
        c.release()
        return
    if isinstance(right, M.Value) and isinstance(right.v, str) and right.v.endswith("*") \
            and typ.kind == "str":
        sreg = c.get_reg()
        exprs.load(c, left, sreg)
        prefix = right.v[:-1].encode()
        c.emit("cmp", sreg=put_reg(sreg), op=CMP_OPS[op], data=prefix)
        c.release()
        return
    if isinstance(right, M.Concat):
        n = exprs.expr_len(c, left)
        sreg = c.get_reg(n)
        exprs.load(c, left, sreg)
        c.emit("cmp", sreg=put_reg(sreg), op=CMP_OPS[op],
               data=exprs.concat_data(c, right, typ))
        c.release(n)
        return
    # a single value
    sreg = c.get_reg()
    bitmask = isinstance(typ, T.Type) and typ.kind == "bitmask"
    if bitmask and op == "" and not isinstance(left, M.Binop):
        exprs.load(c, left, sreg)
        n = exprs.expr_len(c, left)
        c.emit("bitwise", sreg=put_reg(sreg), dreg=put_reg(sreg), op=0, len=n,
               mask=exprs.value_bytes(c, right, typ, n), xor=bytes(n))
        c.emit("cmp", sreg=put_reg(sreg), op=1, data=bytes(n))
        c.release()
        return
    exprs.load(c, left, sreg)
    data = shifted(c, left, right, typ)
    if op in ("<", ">", "<=", ">=") and typ.order == T.HOST and typ.size > 1:
        c.emit("byteorder", sreg=put_reg(sreg), dreg=put_reg(sreg), op=1,
               len=typ.size, size=_swap_size(typ.bits))
        data = data[::-1]
    c.emit("cmp", sreg=put_reg(sreg), op=CMP_OPS[op], data=data)
    c.release()


def shifted(c, left, right, typ) -> bytes:
    """A constant compared with a bit field sits where the field is in the loaded bytes
    (payload_shift_value())."""
    base = left.left if isinstance(left, M.Binop) else left
    if isinstance(base, M.Payload):
        desc = P.PROTOS[base.proto]
        off, bits, _ = desc.fields[base.field]
        off += desc.offset
        start = off // 8
        end = (off + bits + 7) // 8
        if off % 8 or bits % 8:
            shift = (end - start) * 8 - (off - start * 8) - bits
            v = right.v if isinstance(right, (M.Value, M.Flags)) else 0
            return (v << shift).to_bytes(end - start, "big")
        return exprs.value_bytes(c, right, typ, end - start)
    if isinstance(base, M.RawPayload):
        start = base.offset // 8
        end = (base.offset + base.bits + 7) // 8
        shift = (end - start) * 8 - (base.offset - start * 8) - base.bits
        return (right.v << shift).to_bytes(end - start, "big")
    return exprs.value_bytes(c, right, typ, exprs.expr_len(c, base) if isinstance(
        base, M.Fib) else None)


def needs_hton(c, left, typ, right) -> bool:
    """Interval sets on host-order keys hold network-order keys (so ranges compare)."""
    if isinstance(typ, tuple) or typ.order != T.HOST or typ.size <= 1:
        return False
    if isinstance(right, M.SetLit):
        return any(sets.is_interval(sets.elem_key(e)) for e in right.elems)
    s = c.tbl.sets.get(right.name)
    return s is not None and "interval" in s.flags


def _swap_size(bits: int) -> int:
    return 8 if bits % 64 == 0 else 4 if bits % 32 == 0 else 2


@dataclass(slots=True)
class _Merged:
    """Adjacent payload fields loaded and compared as one (payload_expr_join())."""
    base: int
    offset: int        # bits
    bits: int
    protocol: bool = False


_SPANS: dict = {}


def _payload_span(e):
    """(base, bit offset, bit length, is the protocol key) of a payload field."""
    if isinstance(e, _Merged):
        return e.base, e.offset, e.bits, e.protocol
    span = _SPANS.get((e.proto, e.field))
    if span is None:
        desc = P.PROTOS[e.proto]
        off, bits, _ = desc.fields[e.field]
        key = desc.key == e.field or (e.proto in ("ip", "ip6") and
                                      e.field in ("protocol", "nexthdr"))
        span = _SPANS[(e.proto, e.field)] = (desc.base, off + desc.offset, bits, key)
    return span


def _can_merge(a, b) -> bool:
    """payload_can_merge() of nft's payload.c."""
    (b1, o1, l1, _), (b2, o2, l2, _) = a, b
    if b1 != b2 or o1 + l1 != o2:
        return False
    if o1 % 8 or l1 % 8 or o2 % 8 or l2 % 8:
        return False
    total = l1 + l2
    if total > 128:
        return False
    return total <= 32 or b1 == P.LL or l1 > 32 or l2 > 32


_EQ_NE = frozenset(("", "==", "!="))


def reduce(stmts, family):
    """stmt_reduce() of nft's rule.c: drop `meta protocol ip` in an ip table and merge
    equality matches on adjacent payload fields into one load and compare."""
    out = list(stmts)
    run = []
    bases = set()       # fields merge only within one header: no repeated base, no merge
    mergeable = changed = False
    for i, s in enumerate(stmts):
        if type(s) is not M.Match:
            if mergeable:
                _merge(out, run)
                changed = True
            run, bases, mergeable = [], set(), False
            continue
        if type(s.right) is not M.Value and type(s.right) is not M.Flags:
            continue
        lt = type(s.left)
        if lt is M.Payload and s.op in _EQ_NE:
            base = _payload_span(s.left)[0]
            mergeable = mergeable or base in bases
            bases.add(base)
            run.append(i)
        elif lt is M.Meta and s.left.key == "protocol" and s.op in ("", "=="):
            if (family, s.right.v) in (("ip", 0x0800), ("ip6", 0x86dd)):
                out[i] = None
                changed = True
    if mergeable:
        _merge(out, run)
        changed = True
    return [s for s in out if s is not None] if changed else out


def _merge(out, run):
    items = sorted(run, key=lambda i: _payload_span(out[i].left)[:2])
    last = items[0]
    for i in items[1:]:
        a, b = out[last], out[i]
        sa, sb = _payload_span(a.left), _payload_span(b.left)
        if not _can_merge(sa, sb) or (a.op or "==") != (b.op or "=="):
            last = i
            continue
        data = _field_bytes(a) + _field_bytes(b)
        merged = _Merged(sa[0], sa[1], sa[2] + sb[2], sa[3] or sb[3])
        keep, drop = (i, last) if sb[3] else (last, i)
        out[keep] = M.Match(merged, a.op, data, loc=a.loc)
        out[drop] = None
        last = keep


def _field_bytes(m) -> bytes:
    if isinstance(m.left, _Merged):
        return m.right
    desc = P.PROTOS[m.left.proto]
    _, bits, typ = desc.fields[m.left.field]
    v = m.right.v
    if isinstance(v, str):
        return v.encode().ljust(bits // 8, b"\0")
    return v.to_bytes(bits // 8, typ.order)


def _field_shift(e) -> int:
    if not isinstance(e, M.Payload):
        return 0
    desc = P.PROTOS[e.proto]
    off, bits, _ = desc.fields[e.field]
    off += desc.offset
    if not (off % 8 or bits % 8):
        return 0
    start, end = off // 8, (off + bits + 7) // 8
    return (end - start) * 8 - (off - start * 8) - bits


def _shift_elem(e, shift):
    if isinstance(e, M.Value):
        return M.Value(e.type, e.v << shift, loc=e.loc)
    if isinstance(e, M.Range):
        return M.Range(_shift_elem(e.lo, shift), _shift_elem(e.hi, shift), loc=e.loc)
    if isinstance(e, M.Elem):
        return M.Elem(_shift_elem(e.key, shift), e.timeout, e.expires, e.comment, e.stmts)
    return e
