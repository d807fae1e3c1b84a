"""A rule's kernel expressions back to nft statements, as nftables'
src/netlink_delinearize.c does: walk the expressions with a register file (what each
register holds), turn cmp/lookup/range on a register into matches, and let the protocol
context (decode_context) name payload fields and drop the dependencies nft adds
implicitly. Expression kinds are a lookup table, as netlink_delinearize.c's
netlink_parsers[] is: the loads and relations here, the statements in decode_stmts.
"""
from . import decode_context as C
from . import decode_sets as S
from . import decode_stmts as X
from . import decode_values as V
from . import model as M
from . import nf_tables as N
from . import proto as P
from . import types as T

CMP_OPS = {0: "", 1: "!=", 2: "<", 3: "<=", 4: ">", 5: ">="}


class Reg:
    """What a register holds: an expression, and how it was transformed on the way."""

    __slots__ = ("expr", "mask", "xor", "hton", "nbytes", "payload", "field_mask", "shift",
                 "prefix_of")

    def __init__(self, expr, nbytes=None, payload=None):
        self.expr, self.nbytes, self.payload = expr, nbytes, payload
        self.mask = self.xor = self.prefix_of = None
        self.hton = self.field_mask = False
        self.shift = 0


class RuleDecoder:
    """One rule's expressions -> statements (netlink_delinearize.c)."""

    def __init__(self, family: str, sets: dict):
        self.fam = family
        self.sets = sets
        self.regs: dict = {}
        self.stmts: list = []
        self.ctx = {}
        base, desc = P.FAMILY_BASE[family]
        self.ctx[base] = desc
        self.deps: dict = {}          # base -> index in stmts of the match that set it
        self.icmp_type = None
        self.cur = 0                  # index of the expression being decoded
        # expression index -> (index in stmts, the statement, a function of the
        # expression's varying part that makes the statement): see relate()
        self.free: dict = {}

    def decode(self, exprs) -> list:
        parsers = PARSERS
        for i, e in enumerate(exprs):
            f = parsers.get(e["name"])
            if f is None:
                raise V.DecodeError(f"unsupported expression {e['name']}")
            self.cur = i
            f(self, e.get("data", {}))
        return [s for s in self.stmts if s is not None]

    # -- loads
    def x_payload(self, d):
        if "sreg" in d:
            raise V.DecodeError("payload write (mangling) statements are not supported")
        self.regs[d["dreg"]] = Reg(None, d["len"], (d["base"], d["offset"], d["len"]))

    def x_meta(self, d):
        key = P.META_BY_ID.get(d["key"])
        if key is None:
            raise V.DecodeError(f"unknown meta key {d['key']}")
        if "sreg" in d:
            typ = P.META[key][1]
            self.stmts.append(M.MetaSet(key, self.value_of(d["sreg"], typ)))
            return
        self.regs[d["dreg"]] = Reg(M.Meta(key))

    def x_ct(self, d):
        key = d["key"]
        fam = None
        if key in P.CT_ADDR_BY_ID:
            fam, name = P.CT_ADDR_BY_ID[key]
        elif key == 18:
            name = "event"
        else:
            name = P.CT_BY_ID.get(key)
            if name is None:
                raise V.DecodeError(f"unknown ct key {key}")
        direction = ("original", "reply")[d["direction"]] if "direction" in d else None
        if "sreg" in d:
            typ = T.CT_EVENT if name == "event" else P.CT[name][1]
            v = self.value_of(d["sreg"], typ)
            if isinstance(v, M.Value) and typ.kind == "bitmask":
                v = M.Flags(typ, v.v)
            self.stmts.append(M.CtSet(name, v, direction))
            return
        if name in ("saddr", "daddr") and fam is None:
            fam = self.fam if self.fam in ("ip", "ip6") else "ip"
        self.regs[d["dreg"]] = Reg(M.Ct(name, direction, fam if name in ("saddr", "daddr")
                                        else None))

    def x_fib(self, d):
        flags = [n for n, bit in P.FIB_FLAGS.items() if d["flags"] & bit]
        if d["flags"] & P.FIB_PRESENT:
            flags.append("present")
        result = {v[0]: k for k, v in P.FIB_RESULTS.items()}[d["result"]]
        self.regs[d["dreg"]] = Reg(M.Fib(tuple(flags), result))

    def x_numgen(self, d):
        self.regs[d["dreg"]] = Reg(M.Numgen("inc" if d.get("type", 0) == 0 else "random",
                                            d["modulus"], d.get("offset", 0)))

    def x_hash(self, d):
        if d.get("type", 0) == 1:
            e = M.Hash("symhash", None, d["modulus"], None, d.get("offset", 0))
        else:
            e = M.Hash("jhash", self.span(d["sreg"], d["len"]), d["modulus"], d.get("seed"),
                       d.get("offset", 0))
        self.regs[d["dreg"]] = Reg(e)

    def x_immediate(self, d):
        if d["dreg"] == 0:
            self.stmts.append(M.VerdictStmt(V.verdict(d["data"])))
            return
        self.regs[d["dreg"]] = Reg(("imm", d["data"]))

    def x_bitwise(self, d):
        r = self.regs.get(d["sreg"])
        if r is None:
            raise V.DecodeError("bitwise on an empty register")
        op = d.get("op", 0)
        if op != 0:
            base = self.resolve(r)
            n = int.from_bytes(d["data"][:4], "little")
            nr = Reg(M.Binop("<<" if op == 1 else ">>", base,
                             M.Value(T.integer(32, T.HOST), n)))
            self.regs[d["dreg"]] = nr
            return
        nr = Reg(r.expr, r.nbytes, r.payload)
        nr.hton = r.hton
        nr.mask, nr.xor = d["mask"], d["xor"]
        if r.mask is not None:     # a second bitwise: fold
            nr.expr = self.resolve(r)
            nr.payload = None
        self.regs[d["dreg"]] = nr

    def x_byteorder(self, d):
        r = self.regs.get(d["sreg"])
        nr = Reg(r.expr, r.nbytes, r.payload)
        nr.mask, nr.xor = r.mask, r.xor
        nr.hton = d["op"] == 1
        self.regs[d["dreg"]] = nr

    # -- matches
    def x_cmp(self, d):
        r = self.regs.get(d["sreg"])
        if r is None:
            raise V.DecodeError("cmp on an empty register")
        op = CMP_OPS[d["op"]]
        data = d["data"]
        self.match_value(r, op, data)

    def x_range(self, d):
        r = self.regs[d["sreg"]]
        left, typ = self.left_of(r)
        lo = V.typed(typ, d["data_from"], r.hton)
        hi = V.typed(typ, d["data_to"], r.hton)
        self.add_match(M.Match(left, "!=" if d["op"] == 1 else "", M.Range(lo, hi)))

    def x_lookup(self, d):
        r = self.regs.get(d["sreg"])
        ks = self.sets.get(d["set"])
        if ks is None:
            raise V.DecodeError(f"lookup in unknown set {d['set']}")
        if r is None:
            raise V.DecodeError("lookup on an empty register")
        left = self.concat_or_single(d["sreg"], ks)
        mapping = self.mapping_of(ks)
        if r.field_mask and r.shift and isinstance(mapping, M.SetLit):
            mapping = M.SetLit(tuple(_unshift(e, r.shift) for e in mapping.elems))
        if isinstance(left, M.Payload) and left.proto in ("icmp", "icmpv6") and \
                left.field == "type" and isinstance(mapping, M.SetLit) and mapping.elems:
            # payload_icmp_check(): a set of types tells which fields follow
            first = min(e.v for e in mapping.elems if isinstance(e, M.Value))
            self.icmp_type = 8 if left.proto == "icmp" and first == 0 else first
        if "dreg" in d:
            if d["dreg"] == 0:
                self.stmts.append(M.Vmap(left, mapping))
            else:
                self.regs[d["dreg"]] = Reg(M.MapExpr(left, mapping))
            return
        self.add_match(M.Match(left, "!=" if d.get("flags", 0) & 1 else "", mapping))

    def mapping_of(self, ks: S.KSet):
        if ks.anonymous and not (ks.flags & N.SET_EVAL):
            return M.SetLit(tuple(S.elements(ks)))
        return M.SetRef(ks.name)

    def span(self, sreg: int, nbytes: int):
        """The expression(s) in `nbytes` of registers from sreg: a concatenation when one
        register's field is shorter."""
        slot, items, got = _slot(sreg), [], 0
        while got < nbytes:
            r = self.regs.get(_reg(slot))
            if r is None:
                raise V.DecodeError("hash over an empty register")
            e, typ = self.left_of(r)
            items.append(e)
            n = (typ.size + 3) // 4 * 4
            got += n
            slot += n // 4
        return items[0] if len(items) == 1 else M.Concat(tuple(items))

    def concat_or_single(self, sreg: int, ks: S.KSet):
        """The key a lookup reads: one register, or consecutive ones for a concatenation
        (32-bit register slots, reg 1 = slots 0-3, reg 9.. = slot 1..)."""
        if len(ks.key) == 1:
            r = self.regs[sreg]
            left, _ = self.left_of(r)
            return left
        slot = _slot(sreg)
        items = []
        for t in ks.key:
            reg = _reg(slot)
            r = self.regs.get(reg)
            if r is None:
                raise V.DecodeError("concatenation with an empty register")
            left, _ = self.left_of(r)
            items.append(left)
            slot += (t.size + 3) // 4
        return M.Concat(tuple(items))

    # -- registers
    def resolve(self, r: Reg):
        left, _ = self.left_of(r)
        return left

    def value_of(self, reg: int, typ):
        """The value a set statement or nat writes: an immediate constant, or an
        expression (`meta mark set ct mark`)."""
        r = self.regs.get(reg)
        if r is None:
            raise V.DecodeError("statement reads an empty register")
        if isinstance(r.expr, tuple) and r.expr[0] == "imm":
            if isinstance(typ, tuple):
                return M.Concat(tuple(M.Value(t, V.val(t, p))
                                      for t, p in zip(typ, V.split(typ, r.expr[1]))))
            return M.Value(typ, V.val(typ, r.expr[1]) if typ.kind != "ifindex"
                           else int.from_bytes(r.expr[1][:4], "little"))
        return self.resolve(r)

    def left_of(self, r: Reg):
        """(expression, its type) for a register, payload offsets resolved to a field."""
        if r.payload is not None and r.expr is None:
            e, typ = C.payload_field(self, r)
        else:
            e = r.expr
            if isinstance(e, tuple):
                raise V.DecodeError("a constant where an expression was expected")
            typ = self.type_of(e)
        if r.mask is not None and not r.field_mask:
            e = self.binop(e, typ, r.mask, r.xor)
        return e, typ

    def type_of(self, e):
        if isinstance(e, M.Meta):
            return P.META[e.key][1]
        if isinstance(e, M.Ct):
            if e.key in ("saddr", "daddr"):
                return T.IPV6 if e.family == "ip6" else T.IPV4
            if e.key == "event":
                return T.CT_EVENT
            return P.CT[e.key][1]
        if isinstance(e, M.Fib):
            if "present" in e.flags:
                return T.BOOLEAN
            return P.FIB_RESULTS[e.result][1]
        if isinstance(e, M.Payload):
            return P.PROTOS[e.proto].fields[e.field][2]
        if isinstance(e, M.Binop):
            return self.type_of(e.left)
        if isinstance(e, (M.Numgen, M.Hash)):
            return T.integer(32, T.HOST)
        if isinstance(e, M.RawPayload):
            return T.xinteger(e.bits)
        if isinstance(e, M.MapExpr):
            return None
        raise V.DecodeError(f"no type for {e!r}")

    def binop(self, e, typ, mask, xor):
        n = len(mask)
        m = int.from_bytes(mask, "big")
        x = int.from_bytes(xor, "big")
        full = (1 << (n * 8)) - 1

        def val(v):
            v = v.to_bytes(n, "big")
            if typ.kind == "bitmask":
                return M.Flags(typ, int.from_bytes(v, typ.order))
            return M.Value(typ, int.from_bytes(v, typ.order))
        if x == 0:
            return M.Binop("&", e, val(m))
        if m == full:
            return M.Binop("^", e, val(x))
        if m | x == full and m & x == 0:
            return M.Binop("|", e, val(x))
        return M.Binop("|", M.Binop("&", e, val(m | x)), val(x))

    def match_value(self, r: Reg, op, data: bytes):
        """cmp `op` data on register r: a match, its right side typed by what r holds."""
        left, typ = self.left_of(r) if r.expr is not None or r.payload is not None else (
            None, None)
        if left is None:
            raise V.DecodeError("cmp on a constant")
        if r.payload is not None and r.expr is None and r.mask is None and \
                isinstance(left, M.RawPayload):
            parts = C.expand(self, r.payload, data)
            if parts:
                for field, value in parts:
                    C.payload_dependency_kill(self, r.payload[0], field.proto)
                    self.add_match(M.Match(field, op, value))
                return
        hton = r.hton
        prefix = r.prefix_of
        if prefix is not None:         # a shorter load: a byte-aligned prefix
            ftyp, full = prefix
            return self.relate(left, op, data, lambda d: M.Prefix(
                M.Value(ftyp, int.from_bytes(d.ljust(full, b"\0")[:full], "big")), len(d) * 8))
        if r.field_mask:
            shift = r.shift
            if typ.kind == "bitmask" and op == "":
                return self.relate(left, op, data,
                                   lambda d: M.Flags(typ, int.from_bytes(d, "big") >> shift))
            return self.relate(left, op, data,
                               lambda d: M.Value(typ, int.from_bytes(d, "big") >> shift))
        if isinstance(left, M.Binop) and left.op == "&" and r.mask is not None:
            mval = int.from_bytes(r.mask, typ.order)
            if typ.name in T.PREFIX_TYPES and _is_prefix_mask(mval, len(r.mask) * 8) and \
                    not isinstance(left.left, M.Binop) and mval:
                plen = bin(mval).count("1")
                return self.relate(left.left, op, data,
                                   lambda d: M.Prefix(V.typed(typ, d), plen))
            if typ.kind == "bitmask" and op == "!=":
                if int.from_bytes(data, "big") == 0:
                    self.add_match(M.Match(left.left, "", M.Flags(typ, left.right.v)))
                else:
                    self.add_match(M.Match(left, op, M.Flags(typ, V.typed(typ, data, hton).v)))
                return
            if typ.kind == "bitmask":
                return self.relate(left, op or "==", data,
                                   lambda d: M.Flags(typ, V.typed(typ, d, hton).v))
            return self.relate(left, op or "==", data, lambda d: V.typed(typ, d, hton))
        if isinstance(left, M.Binop):
            return self.relate(left, op or "==", data, lambda d: V.typed(typ, d, hton))
        if typ.kind in ("ipv4", "ipv6") and len(data) < typ.size:
            # a compare on the first bytes only: a byte-aligned prefix
            size = typ.size
            return self.relate(left, op, data, lambda d: M.Prefix(
                M.Value(typ, int.from_bytes(d.ljust(size, b"\0"), "big")), len(d) * 8))
        if typ.kind == "str" and len(data) < typ.size:
            if data.endswith(b"\0"):
                self.add_match(M.Match(left, op, V.typed(typ, data, hton)))
            else:             # a wildcard: `iifname "eth*"`
                self.add_match(M.Match(left, op, M.Value(
                    typ, data.decode(errors="replace") + "*")))
            return
        if typ.kind == "ifindex":
            return self.relate(left, op, data, lambda d: M.Value(
                typ, _ifname(int.from_bytes(d[:4], "little"))))
        if typ.kind == "bitmask" and op in ("", "=="):
            return self.relate(left, "==", data,
                               lambda d: M.Flags(typ, V.typed(typ, d, hton).v))
        return self.relate(left, op, data, lambda d: V.typed(typ, d, hton))

    def relate(self, left, op, data: bytes, right):
        """Add the match `left op right(data)`. When its value cannot change the protocol
        context (C.sensitive), `right` is all that depends on the data: it is kept in
        self.free, so decode_shapes can build the match of a rule of the same shape
        from that rule's own data."""
        m = M.Match(left, op, right(data))
        idx = self.add_match(m)
        if idx is not None and not (op == "" and C.sensitive(left)):
            self.free[self.cur] = (idx, m, lambda d: M.Match(left, op, right(d)))

    def add_match(self, m: M.Match):
        """Append a match (its index), or merge it into the match before (None)."""
        left = m.left
        prev = self.stmts[-1] if self.stmts else None
        if m.op == "<=" and isinstance(prev, M.Match) and prev.op == ">=" and \
                prev.left == left and isinstance(m.right, M.Value):
            # cmp gte + cmp lte on one register: a range (nft's range_expr merge)
            self.stmts[-1] = M.Match(left, "", M.Range(prev.right, m.right))
            return None
        idx = len(self.stmts)
        self.stmts.append(m)
        if m.op == "" and isinstance(m.right, M.Value) and isinstance(m.right.v, int):
            C.store_dep(self, left, m.right.v, idx)
            if isinstance(left, M.Payload) and left.proto in ("icmp", "icmpv6") and \
                    left.field == "type":
                # payload_dependency_store_icmp_type(): echo types are never implied
                v = 8 if left.proto == "icmp" and m.right.v == 0 else m.right.v
                self.icmp_type = v
                if v not in P.ICMP_ECHO[left.proto]:
                    self.deps[3] = (idx, left)
        return idx


def _unshift(e, shift):
    if isinstance(e, M.Value):
        return M.Value(e.type, e.v >> shift)
    if isinstance(e, M.Range):
        return M.Range(_unshift(e.lo, shift), _unshift(e.hi, shift))
    if isinstance(e, M.Elem):
        return M.Elem(_unshift(e.key, shift), e.timeout, e.expires, e.comment, e.stmts)
    if isinstance(e, M.Mapping):
        return M.Mapping(_unshift(e.key, shift), e.data)
    return e


def _is_prefix_mask(m: int, bits: int) -> bool:
    inv = ~m & ((1 << bits) - 1)
    return inv & (inv + 1) == 0


def _slot(reg: int) -> int:
    return (reg - 1) * 4 if reg < 8 else reg - 8


def _reg(slot: int) -> int:
    return 1 + slot // 4 if slot % 4 == 0 else 8 + slot


def _ifname(idx: int) -> str:
    import socket
    try:
        return socket.if_indextoname(idx)
    except OSError:
        return str(idx)


PARSERS = {
    "payload": RuleDecoder.x_payload, "meta": RuleDecoder.x_meta, "ct": RuleDecoder.x_ct,
    "fib": RuleDecoder.x_fib, "numgen": RuleDecoder.x_numgen, "hash": RuleDecoder.x_hash,
    "immediate": RuleDecoder.x_immediate, "bitwise": RuleDecoder.x_bitwise,
    "byteorder": RuleDecoder.x_byteorder, "cmp": RuleDecoder.x_cmp,
    "range": RuleDecoder.x_range, "lookup": RuleDecoder.x_lookup,
    "counter": X.counter, "limit": X.limit, "quota": X.quota, "log": X.log,
    "reject": X.reject, "nat": X.nat, "masq": X.masq, "redir": X.redir,
    "notrack": X.notrack, "queue": X.queue, "flow_offload": X.flow_offload,
    "synproxy": X.synproxy, "tproxy": X.tproxy, "objref": X.objref, "dynset": X.dynset,
}


def rule(family: str, a: dict, sets: dict) -> M.Rule:
    """A rule from its NFTA_RULE attributes (expressions decoded, as wire.decode_rule
    gives them); `sets` are the table's KSets by name (anonymous ones included)."""
    dec = decoded(family, a, a.get("expressions", []), sets)
    return made(a, [s for s in dec.stmts if s is not None])


def decoded(family: str, a: dict, exprs: list, sets: dict) -> RuleDecoder:
    """The decoder after walking a rule's expressions: its statements (None where a
    dependency was dropped) and which of them are free."""
    dec = RuleDecoder(family, sets)
    try:
        dec.decode(exprs)
    except V.DecodeError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        # expressions in an order or shape nft never makes
        raise V.DecodeError(f"rule in {family} {a.get('table')} {a.get('chain')}: "
                            f"unexpected expressions ({type(e).__name__}: {e})") from None
    return dec


def made(a: dict, stmts: list) -> M.Rule:
    """The rule with these statements and the comment, tag and handle of attributes a."""
    tag, comment = M.split_tag(V.comment(a.get("userdata")))
    return M.Rule(stmts, comment, tag, handle=a.get("handle"))
