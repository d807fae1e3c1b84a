"""A big dump's rules, each shape decoded once. Rules of a generated or long-lived ruleset
mostly share their expressions and differ in the data they compare and their counters:
`ip saddr 192.168.0.1 tcp dport 1024 counter accept`, then ...0.2 ... 1025.

A rule's expressions (NFTA_RULE_EXPRESSIONS) are read as a Shape, the bytes rules share,
and the varying parts left out of it: a cmp's data, a counter's values. The first rule of
a shape is decoded in full (decode_rule), and the decoder says which statements are free:
made from one varying part alone, with no effect on how the rest of the rule reads
(RuleDecoder.relate, decode_stmts.counter). A varying part that is not free (`meta l4proto
tcp` says which header `th dport` reads) is part of the key. Every later rule of that
shape and key is the first one's statements with the free ones made from its own data.
"""
import struct

from ..netlink.errors import MalformedMessage
from . import decode_rule, wire
from . import model as M
from .decode_values import DecodeError

VARIANTS = 64          # keys (values of the parts that are not free) kept per shape
SAME_LENGTH = 8        # shapes of one length tried before the expressions are walked

_HDR = struct.Struct("=HH")
# The two expressions whose attributes vary from rule to rule, in the layout the kernel
# dumps them: nft_cmp_dump() puts sreg, op, then NFTA_CMP_DATA holding one
# NFTA_DATA_VALUE; nft_counter_do_dump() bytes then packets (and no pad attribute where
# unaligned 64-bit access is cheap). Expressions laid out otherwise are shared bytes.
_CMP_NAME = _HDR.pack(8, 1) + b"cmp\0"
_COUNTER_NAME = _HDR.pack(12, 1) + b"counter\0"
_COUNTER_HEADS = frozenset(_COUNTER_NAME + _HDR.pack(28, nest) + _HDR.pack(12, 1)
                           for nest in (2, 0x8002))
_COUNTER_PACKETS = _HDR.pack(12, 2)
_CMP_LENGTHS: dict = {}     # a cmp's first 36 bytes -> its length, or 0: not nft_cmp_dump's


def _cmp_length(head: bytes) -> int:
    """The length of a cmp that starts with `head` (36 bytes: everything up to its
    value), or 0 when it is not laid out as nft_cmp_dump() does."""
    unpack = _HDR.unpack_from
    (nlen, ntype), (slen, stype), (olen, otype), (dlen, dtype), (vlen, vtype) = (
        unpack(head, o) for o in (8, 12, 20, 28, 32))
    if (ntype & 0x3fff, slen, stype & 0x3fff, olen, otype & 0x3fff, dtype & 0x3fff,
            vtype & 0x3fff) != (2, 8, 1, 8, 2, 3, 1) or vlen < 4 or \
            dlen != 4 + ((vlen + 3) & ~3) or nlen != 20 + dlen:
        return 0
    return 8 + nlen


class Shape:
    """The bytes rules of this shape share: `checks`, runs of them as (offset, bytes) in
    the expressions; `holes`, the varying parts as (offset, end), or (offset, -1) for a
    counter (bytes at offset, packets 12 bytes on); `where`, the index of the expression
    each hole is in. A shape met again and again is matched by one regular expression,
    the runs literal and the holes groups (re does in C what checks does in Python)."""

    __slots__ = ("checks", "holes", "where", "hits", "pattern", "plan")

    def __init__(self, checks, holes, where):
        self.checks, self.holes, self.where = checks, holes, where
        self.hits, self.pattern, self.plan = 0, None, None

    def vary(self, buf: bytes, start: int, stop: int):
        """The varying parts of the expressions in buf[start:stop] (as long as this
        shape's) when they have this shape, else None. A cmp's part is its data bytes, a
        counter's (packets, bytes)."""
        if self.pattern is not None:
            m = self.pattern.fullmatch(buf, start, stop)
            if m is None:
                return None
            g = m.groups()
            if self.plan is None:
                return g
            return [g[i] if i >= 0 else (int.from_bytes(g[~i + 1], "big"),
                                         int.from_bytes(g[~i], "big")) for i in self.plan]
        startswith = buf.startswith
        for off, run in self.checks:
            if not startswith(run, start + off):
                return None
        out = []
        for off, end in self.holes:
            off += start
            if end < 0:
                out.append((int.from_bytes(buf[off + 12:off + 20], "big"),
                            int.from_bytes(buf[off:off + 8], "big")))
            else:
                out.append(buf[off:start + end])
        self.hits += 1
        if self.hits == 4:
            self._compile()
        return out

    def _compile(self):
        import re
        pieces = [(off, re.escape(run)) for off, run in self.checks]
        plan, group = [], 0
        for off, end in self.holes:
            if end < 0:                 # a counter: bytes, packets; (packets, bytes) out
                pieces += [(off, b"(.{8})"), (off + 12, b"(.{8})")]
                plan.append(~group)
                group += 2
            else:
                pieces.append((off, b"(.{%d})" % (end - off)))
                plan.append(group)
                group += 1
        pieces.sort()
        self.pattern = re.compile(b"".join(p for _, p in pieces), re.DOTALL)
        self.plan = plan if any(i < 0 for i in plan) else None


def _walk(buf: bytes, start: int, stop: int):
    """The shape of the expressions in buf[start:stop], walked: (shared runs, Shape
    arguments, the varying parts)."""
    unpack = _HDR.unpack_from
    startswith = buf.startswith
    runs, checks, holes, where, vary = [], [], [], [], []
    pos = seg = start
    i = 0
    while pos + 4 <= stop:
        elen = unpack(buf, pos)[0]
        if elen < 4 or pos + elen > stop:
            raise MalformedMessage("NFTA_RULE_EXPRESSIONS: element overruns")
        hole = None           # (offset, end of the part, end in Shape.holes)
        if startswith(_CMP_NAME, pos + 4) and elen > 40:
            head = buf[pos + 4:pos + 40]
            n = _CMP_LENGTHS.get(head)
            if n is None:
                n = _CMP_LENGTHS[head] = _cmp_length(head)
            if n == elen - 4:
                end = pos + 36 + unpack(buf, pos + 36)[0]
                hole = (pos + 40, end, end - start)
                vary.append(buf[pos + 40:end])
        elif elen == 44 and buf[pos + 4:pos + 24] in _COUNTER_HEADS and \
                startswith(_COUNTER_PACKETS, pos + 32):
            hole = (pos + 24, pos + 44, -1)
            checks.append((pos + 32 - start, _COUNTER_PACKETS))
            vary.append((int.from_bytes(buf[pos + 36:pos + 44], "big"),
                         int.from_bytes(buf[pos + 24:pos + 32], "big")))
        if hole is not None:
            runs.append(buf[seg:hole[0]])
            checks.append((seg - start, runs[-1]))
            holes.append((hole[0] - start, hole[2]))
            where.append(i)
            seg = hole[1]
        i += 1
        pos += (elen + 3) & ~3
    runs.append(buf[seg:stop])
    checks.append((seg - start, runs[-1]))
    return tuple(runs), (tuple(checks), tuple(holes), tuple(where)), vary


class Rules:
    """The rules of one dump: attrs() reads each NFTA_RULE message (in place of the
    attribute table's decode), rule() makes its Rule, in any order."""

    def __init__(self):
        self.shapes: dict = {}        # shared runs -> Shape
        self.by_length: dict = {}     # length of the expressions -> [Shape]
        # (family, table, Shape) -> (indexes into vary of the parts that are not free,
        #     {their values: (statements, ((vary index, statement index, maker), ...))})
        self.templates: dict = {}

    def attrs(self, buf: bytes, off: int = 0) -> dict:
        """NFTA_RULE attributes: "table", "chain", "handle", "userdata" as
        wire.decode_rule gives them, "shape", "vary" (its varying parts) and "raw" (the
        expressions' bytes) instead of the decoded expressions."""
        out: dict = {}
        for atype, start, stop in wire.walk(buf, off, len(buf), "NFTA_RULE"):
            if atype != 4:
                wire.rule_attr(out, atype, buf, start, stop)
                continue
            vary = None
            for shape in self.by_length.get(stop - start, ()):
                vary = shape.vary(buf, start, stop)
                if vary is not None:
                    break
            else:
                runs, args, vary = _walk(buf, start, stop)
                shape = self.shapes.get(runs)
                if shape is None:
                    shape = self.shapes[runs] = Shape(*args)
                    same = self.by_length.setdefault(stop - start, [])
                    if len(same) < SAME_LENGTH:
                        same.append(shape)
            out["shape"], out["vary"], out["raw"] = shape, vary, buf[start:stop]
        return out

    def rule(self, family: str, a: dict, sets: dict) -> M.Rule:
        """The rule of attributes `a` (from attrs()); `sets`: its table's KSets by name."""
        shape = a.get("shape")
        key = (family, a.get("table"), shape)
        entry = self.templates.get(key)
        if entry is not None:
            vary = a["vary"]
            template = entry[1].get(tuple([vary[k] for k in entry[0]]))
            if template is not None:
                stmts = template[0].copy()
                try:
                    for k, i, make in template[1]:
                        stmts[i] = make(vary[k])
                except (TypeError, ValueError, IndexError, OverflowError) as e:
                    raise DecodeError(f"rule in {family} {a.get('table')} {a.get('chain')}: "
                                      f"unexpected data ({type(e).__name__}: {e})") from None
                return decode_rule.made(a, stmts)
        dec = decode_rule.decoded(family, a, wire.decode_exprs(a.get("raw", b"")), sets)
        stmts = [s for s in dec.stmts if s is not None]
        if shape is not None:
            self.learn(key, shape, a["vary"], dec)
        return decode_rule.made(a, stmts)

    def learn(self, key, shape: Shape, vary: list, dec) -> None:
        """Keep a decoded rule as the template of its shape and the values of its parts
        that are not free."""
        at, stmts = {}, []
        for i, s in enumerate(dec.stmts):
            if s is not None:
                at[i] = len(stmts)
                stmts.append(s)
        fixed, free = [], []
        for k, j in enumerate(shape.where):
            f = dec.free.get(j)
            if f is not None and dec.stmts[f[0]] is f[1]:    # not merged or dropped since
                free.append((k, at[f[0]], f[2]))
            else:
                fixed.append(k)
        fixed = tuple(fixed)
        entry = self.templates.setdefault(key, (fixed, {}))
        if entry[0] == fixed and len(entry[1]) < VARIANTS:
            entry[1][tuple([vary[k] for k in fixed])] = (stmts, tuple(free))
