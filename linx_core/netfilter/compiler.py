"""Ruleset model -> nf_tables messages: what nft's evaluate.c and netlink_linearize.c do
between its parser and the kernel, for the constructs linx supports.

Each rule's statements become kernel expressions (payload, meta, cmp, lookup, ...) in
registers, with the protocol dependencies nft adds (`tcp dport` in an inet table first
checks `meta l4proto tcp`); anonymous sets (`{ 22, 80 }`) become sets of their own, sent
just before the rule; interval sets are turned into the kernel's start/end elements.

The output is a list of Msg: the message kind, its family, its attributes as plain dicts in
the vocabulary of encoder.py (names of the NFTA_* attributes), and the source location it
came from, so a kernel refusal can name the line. No I/O; interface names in `iif`/`oif`
are resolved through the `ifindex` callable the caller passes (the target netns's view).
"""
from dataclasses import dataclass

from . import model as M
from . import proto as P
from . import types as T
from .location import NftError

# enum nft_registers / NFT_REG32_*; nft_verdicts; NFT_DATA_VERDICT
REG_VERDICT, REG_1, REG32_00 = 0, 1, 8
VERDICT_CODES = {"continue": -1, "break": -2, "jump": -3, "goto": -4, "return": -5,
                 "drop": 0, "accept": 1, "queue": 3}
DATA_VERDICT = 0xffffff00
CMP_OPS = {"": 0, "==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
# NFT_SET_* flags
SET_ANONYMOUS, SET_CONSTANT, SET_INTERVAL, SET_MAP = 0x1, 0x2, 0x4, 0x8
SET_TIMEOUT, SET_EVAL, SET_OBJECT, SET_CONCAT, SET_EXPR = 0x10, 0x20, 0x40, 0x80, 0x100
SET_FLAG_BITS = {"constant": SET_CONSTANT, "interval": SET_INTERVAL, "timeout": SET_TIMEOUT,
                 "dynamic": SET_EVAL}
ELEM_INTERVAL_END, ELEM_CATCHALL = 1, 2
OBJ_TYPES = {"counter": 1, "quota": 2, "ct helper": 3, "limit": 4, "ct timeout": 7,
             "ct expectation": 9, "synproxy": 10}
TABLE_FLAGS = {"dormant": 1, "owner": 2, "persist": 4}
LOG_LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5,
              "info": 6, "debug": 7, "audit": 8}
LOG_FLAG_BITS = {"tcp sequence": 1, "tcp options": 2, "ip options": 4, "skuid": 8,
                 "ether": 0x20, "all": 0x2f}     # NF_LOG_* of nf_log.h
NAT_TYPES = {"snat": 0, "dnat": 1}
NAT_FLAGS = {"random": 4, "persistent": 8, "fully-random": 16}
NF_NAT_RANGE_PROTO_SPECIFIED = 2
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
# nft's enum byteorder, stored in set userdata
BYTEORDER = {T.HOST: 1, T.BIG: 2}
BATCH_ELEMS_BYTES = 48 * 1024       # NEWSETELEM payload per message (attributes are u16)


@dataclass(slots=True)
class Msg:
    kind: str          # newtable newchain newrule newset newsetelem newobj newflowtable,
                       # deltable destroytable
    family: str
    attrs: dict
    loc: object = None
    what: str = ""     # `rule inet t input`, for errors


def udata(*items) -> bytes:
    """libnftnl's udata TLVs: type u8, length u8, value (include/libnftnl/udata.h)."""
    out = bytearray()
    for typ, value in items:
        out += bytes((typ, len(value))) + value
    return bytes(out)


def strz(s: str) -> bytes:
    return s.encode() + b"\0"


def _put_reg(slot: int) -> int:
    """netlink_put_register(): a 32-bit slot as the 128-bit register name when aligned."""
    idx = slot - REG_1
    return REG_1 + idx // 4 if idx % 4 == 0 else REG32_00 + idx


def reg_space(nbytes: int) -> int:
    return (nbytes + 3) // 4


class Ifindex:
    """Resolves interface names for `iif`/`oif` (nft resolves them when it evaluates)."""

    def __init__(self, lookup):
        self.lookup = lookup

    def __call__(self, name, loc):
        idx = self.lookup(name)
        if idx is None:
            raise NftError(loc, f"interface {name!r} does not exist")
        return idx


def _host_ifindex(name):
    import socket
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


class Compiler:
    def __init__(self, ruleset: M.Ruleset, ifindex=None):
        self.rs = ruleset
        self.ifindex = Ifindex(ifindex or _host_ifindex)
        self.set_id = 0
        self.msgs: list[Msg] = []

    def next_set_id(self) -> int:
        self.set_id += 1
        return self.set_id

    # ------------------------------------------------------------ ruleset
    def compile(self) -> list[Msg]:
        out = self.msgs
        if self.rs.flush:
            out.append(Msg("deltable", "unspec", {}, what="ruleset"))
        for fam, name in self.rs.deleted:
            out.append(Msg("destroytable", fam, {"name": name}, what=f"table {fam} {name}"))
        for t in self.rs.tables.values():
            self.table(t)
        return out

    def table(self, t: M.Table):
        self.fam = t.family
        self.tbl = t
        self.set_ids = {}
        out = self.msgs
        attrs = {"name": t.name}
        flags = 0
        for f in t.flags:
            flags |= TABLE_FLAGS[f]
        attrs["flags"] = flags
        if t.comment is not None:
            attrs["userdata"] = udata((0, strz(t.comment)))
        out.append(Msg("newtable", t.family, attrs, t.loc, f"table {t.family} {t.name}"))
        for c in t.chains.values():
            out.append(self.chain(c))
        for o in t.objects.values():
            out.append(self.obj(o))
        dynamic = {s.set for c in t.chains.values() for r in c.rules for s in r.stmts
                   if isinstance(s, M.SetStmt)}
        for s in t.sets.values():
            self.named_set(s, s.name in dynamic)
        for ft in t.flowtables.values():
            out.append(self.flowtable(ft))
        for c in t.chains.values():
            for r in c.rules:
                self.rule(c, r)

    def chain(self, c: M.Chain) -> Msg:
        attrs = {"table": self.tbl.name, "name": c.name}
        if c.base:
            hook = {"num": P.HOOKS[self.fam][c.hook], "priority": c.priority}
            if len(c.devices) == 1:
                hook["dev"] = c.devices[0]
            elif c.devices:
                hook["devs"] = list(c.devices)
            attrs["hook"] = hook
            attrs["policy"] = 0 if c.policy == "drop" else 1
            attrs["type"] = c.type
        if c.offload:
            attrs["flags"] = 4
        if c.comment is not None:
            attrs["userdata"] = udata((0, strz(c.comment)))
        return Msg("newchain", self.fam, attrs, c.loc, f"chain {self.fam} {self.tbl.name} {c.name}")

    def obj(self, o: M.Obj) -> Msg:
        sp = o.spec
        data: dict
        if o.kind == "counter":
            data = {"bytes": sp.get("bytes", 0), "packets": sp.get("packets", 0)}
        elif o.kind == "quota":
            data = {"bytes": sp["bytes"], "flags": 1 if sp.get("over") else 0,
                    "consumed": sp.get("used", 0)}
        elif o.kind == "limit":
            burst = sp.get("burst")
            if burst is None:
                burst = 0 if sp.get("bytes") else 5
            data = {"rate": sp["rate"], "unit": UNIT_SECONDS[sp["unit"]], "burst": burst,
                    "type": 1 if sp.get("bytes") else 0, "flags": 1 if sp.get("over") else 0}
        elif o.kind == "ct helper":
            l3 = sp.get("l3proto") or self.fam    # nft: the table's family by default
            data = {"name": sp["type"], "l3proto": P.FAMILIES[l3],
                    "l4proto": 6 if sp["protocol"] == "tcp" else 17}
        elif o.kind == "synproxy":
            flags = (1 if "mss" in sp else 0) | (2 if "wscale" in sp else 0)
            for f in sp.get("flags", ()):
                flags |= {"sack-perm": 4, "timestamp": 8}[f]
            data = {"mss": sp.get("mss", 0), "wscale": sp.get("wscale", 0), "flags": flags}
        else:
            raise NftError(o.loc, f"{o.kind} objects: not supported by linx")
        attrs = {"table": self.tbl.name, "name": o.name, "type": OBJ_TYPES[o.kind],
                 "data": data}
        if o.comment is not None:
            attrs["userdata"] = udata((0, strz(o.comment)))
        return Msg("newobj", self.fam, attrs, o.loc, f"{o.kind} {self.fam} {self.tbl.name} {o.name}")

    def flowtable(self, ft: M.Flowtable) -> Msg:
        attrs = {"table": self.tbl.name, "name": ft.name,
                 "hook": {"num": 0, "priority": ft.priority, "devs": list(ft.devices)},
                 "flags": (1 if ft.offload else 0) | (2 if ft.counter else 0)}
        return Msg("newflowtable", self.fam, attrs, ft.loc,
                   f"flowtable {self.fam} {self.tbl.name} {ft.name}")

    # ------------------------------------------------------------ sets
    def named_set(self, s: M.Set, dynamic_use: bool):
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
        sid = self.next_set_id()
        self.set_ids[s.name] = sid
        attrs = self.set_attrs(s.name, sid, flags, key, data, objtype=s.objtype)
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
        ud = [(0, (BYTEORDER[self.key_order(key)]).to_bytes(4, "little"))]
        if data is not None:
            ud.append((1, BYTEORDER[self.data_order(data)].to_bytes(4, "little")))
        if s.auto_merge:
            ud.append((2, (1).to_bytes(4, "little")))
        if data is not None:
            ud.append((6, (0).to_bytes(4, "little")))
        if s.comment is not None:
            ud.append((7, strz(s.comment)))
        attrs["userdata"] = udata(*ud)
        if s.counter:
            attrs["expr"] = {"name": "counter", "data": {}}
        self.msgs.append(Msg("newset", self.fam, attrs, s.loc,
                             f"set {self.fam} {self.tbl.name} {s.name}"))
        if s.elements:
            self.elements(s.name, sid, s, s.elements, attrs["flags"], anonymous=False)

    def key_order(self, key) -> str:
        return T.BIG if len(key) > 1 else key[0].order

    def data_order(self, data) -> str:
        if data == "verdict":
            return T.BIG
        if isinstance(data, tuple):
            return T.BIG
        return data.order

    def set_attrs(self, name, sid, flags, key, data, objtype=None) -> dict:
        klen = sum(reg_space(t.size) * 4 for t in key) if len(key) > 1 else key[0].size
        attrs = {"table": self.tbl.name, "name": name, "flags": flags,
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

    def anon_set(self, key_types, elems, data=None, loc=None):
        """An anonymous constant set for `{ ... }` in a rule; returns (name, id)."""
        key = key_types if isinstance(key_types, tuple) else (key_types,)
        flags = SET_ANONYMOUS | SET_CONSTANT
        interval = any(_is_interval(_elem_key(e)) for e in elems)
        if interval:
            flags |= SET_INTERVAL
        objtype = None
        if isinstance(data, str) and data != "verdict":     # an object map
            objtype, data = data, None
            flags |= SET_OBJECT
        elif data is not None:
            flags |= SET_MAP
        name = "__objmap%d" if objtype else "__map%d" if data is not None else "__set%d"
        sid = self.next_set_id()
        attrs = self.set_attrs(name, sid, flags, key, data, objtype)
        if len(key) > 1 and interval:
            attrs["flags"] |= SET_CONCAT
        msg = Msg("newset", self.fam, attrs, loc, f"anonymous set in {self.what}")
        self.msgs.append(msg)
        n = self.elements(name, sid, None, elems, attrs["flags"], anonymous=True, key=key,
                          data=objtype or data)
        desc = {"size": n}
        if len(key) > 1 and interval:
            desc["concat"] = [{"len": t.size} for t in key]
        attrs["desc"] = desc
        ud = [(0, BYTEORDER[self.key_order(key)].to_bytes(4, "little"))]
        if data is not None:
            ud.append((1, BYTEORDER[self.data_order(data)].to_bytes(4, "little")))
        if interval and data is None:
            ud.append((2, (1).to_bytes(4, "little")))
        if data is not None:
            ud.append((6, (0).to_bytes(4, "little")))
        attrs["userdata"] = udata(*ud)
        return name, sid

    def elements(self, name, sid, s, elems, flags, anonymous, key=None, data=None) -> int:
        """NEWSETELEM messages for `elems`; returns how many kernel elements they are."""
        if s is not None:
            key = s.key
            data = s.objtype or (s.data if s.kind == "map" else None)
        out = []
        if flags & SET_INTERVAL and len(key) == 1:
            out = self.interval_elements(key[0], elems, data, anonymous,
                                         automerge=anonymous or (s is not None and s.auto_merge),
                                         is_map=data is not None)
        else:
            for e in elems:
                out.append(self.elem(e, key, data, concat_interval=bool(flags & SET_CONCAT)))
        batch, size = [], 0
        for el in out:
            batch.append(el)
            size += 64 + sum(len(v) if isinstance(v, bytes) else 16 for v in el.values())
            if size > BATCH_ELEMS_BYTES:
                self.msgs.append(Msg("newsetelem", self.fam,
                                     {"table": self.tbl.name, "set": name, "set_id": sid,
                                      "elements": batch}, None, f"elements of set {name}"))
                batch, size = [], 0
        if batch:
            self.msgs.append(Msg("newsetelem", self.fam,
                                 {"table": self.tbl.name, "set": name, "set_id": sid,
                                  "elements": batch}, None, f"elements of set {name}"))
        return len(out)

    def elem(self, e, key, data, concat_interval=False) -> dict:
        el = {}
        value = None
        if isinstance(e, M.Mapping):
            value, e = e.data, e.key
        opts = None
        if isinstance(e, M.Elem):
            opts, e = e, e.key
        if isinstance(e, M.Catchall):
            el["flags"] = ELEM_CATCHALL
        elif len(key) > 1:
            if concat_interval:
                lo, hi = self.concat_bounds(e, key)
                el["key"] = lo
                el["key_end"] = hi
            else:
                el["key"] = self.concat_data(e, key)
        else:
            el["key"] = self.value_bytes(e, key[0])
        if value is not None:
            self.put_data(el, value, data)
        if opts is not None:
            if opts.timeout:
                el["timeout"] = opts.timeout
            if opts.expires:
                el["expiration"] = opts.expires
            if opts.comment is not None:
                el["userdata"] = udata((0, strz(opts.comment)))
            if opts.stmts:
                el["expr"] = self.stateful(opts.stmts[0])
        return el

    def put_data(self, el, value, data):
        if isinstance(data, str) and data != "verdict":     # an object map
            el["objref"] = value.v
        else:
            el["data"] = self.data_value(value, data)

    def data_value(self, value, data):
        if data == "verdict":
            return self.verdict_data(value)
        if isinstance(data, str):     # an object map: the object's name
            return value.v.encode() + b"\0"
        if isinstance(data, tuple):
            return self.concat_data(value, data)
        return self.value_bytes(value, data)

    def verdict_data(self, v: M.Verdict) -> dict:
        if v.kind in ("jump", "goto"):
            if v.chain not in self.tbl.chains:
                raise NftError(v.loc, f"{v.kind}: chain {v.chain} is not defined in table "
                                      f"{self.fam} {self.tbl.name}")
            return {"code": VERDICT_CODES[v.kind], "chain": v.chain}
        return {"code": VERDICT_CODES[v.kind]}

    def interval_elements(self, typ, elems, data, anonymous, automerge, is_map):
        """set_to_intervals() of nftables src/intervals.c: sorted, merged ranges, each a
        start element and an end element (first key past the range) flagged INTERVAL_END;
        a leading end element at 0 when the first range does not start there."""
        bits = typ.bits
        top = (1 << bits) - 1
        ranges = []
        for e in elems:
            value = None
            if isinstance(e, M.Mapping):
                value, e = e.data, e.key
            opts = None
            if isinstance(e, M.Elem):
                opts, e = e, e.key
            if isinstance(e, M.Catchall):
                continue
            lo, hi = self.bounds(e, typ)
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
                self.put_data(el, value, data)
            out.append(el)
        if pending is not None:
            out.append(pending[1])
        return out

    def bounds(self, e, typ):
        """(lo, hi) as unsigned numbers in network order (host-endian keys are swapped, as
        nft stores them so ranges compare as memcmp)."""
        if isinstance(e, M.Prefix):
            lo = self.num(e.value, typ)
            hi = lo | ((1 << (typ.bits - e.plen)) - 1)
            return lo, hi
        if isinstance(e, M.Range):
            return self.num(e.lo, typ), self.num(e.hi, typ)
        v = self.num(e, typ)
        return v, v

    def num(self, e, typ) -> int:
        """An interval key as a number; stored big-endian whatever the type's byte order
        (nft swaps host-order keys so ranges compare as memcmp)."""
        b = self.value_bytes(e, typ)
        return int.from_bytes(b, "big" if typ.kind in ("str", "ifindex") else typ.order)

    def concat_bounds(self, e, key):
        lo, hi = b"", b""
        for item, typ in zip(e.items, key):
            a, b = self.bounds(item, typ)
            n = reg_space(typ.size) * 4
            lo += a.to_bytes(typ.size, "big").ljust(n, b"\0")
            hi += b.to_bytes(typ.size, "big").ljust(n, b"\0")
        return lo, hi

    def concat_data(self, e, key) -> bytes:
        if not isinstance(e, M.Concat) or len(e.items) != len(key):
            raise NftError(getattr(e, "loc", None), "a concatenation value needs "
                                                    f"{len(key)} '.' separated fields")
        out = b""
        for item, typ in zip(e.items, key):
            b = self.value_bytes(item, typ)
            out += b.ljust(reg_space(len(b)) * 4, b"\0")
        return out

    def value_bytes(self, e, typ, nbytes=None) -> bytes:
        if isinstance(e, M.Flags):
            return e.v.to_bytes(nbytes or typ.size, typ.order)
        if not isinstance(e, M.Value):
            raise NftError(getattr(e, "loc", None), "expected a single value here")
        v = e.v
        if typ.kind == "ifindex":
            v = self.ifindex(v, e.loc)
            return v.to_bytes(4, "little")
        if isinstance(v, str):
            n = nbytes or (typ.size if typ.bits else len(v) + 1)
            return v.encode().ljust(n, b"\0")[:n]
        return v.to_bytes(nbytes or typ.size, typ.order)

    # ------------------------------------------------------------ rules
    def rule(self, c: M.Chain, r: M.Rule):
        """evaluate (dependencies, protocol context) -> reduce (merge adjacent payload
        matches) -> linearize, the order nft's evaluate.c, rule.c stmt_reduce() and
        netlink_linearize.c apply."""
        self.what = f"rule in {self.fam} {self.tbl.name} {c.name}"
        self.exprs = []
        self.reg_low = REG_1
        self.ctx = {}
        base, desc = P.FAMILY_BASE[self.fam]
        self.ctx[base] = desc
        self.icmp_type = None
        self.emitting = False
        expanded = []
        for s in r.stmts:
            self.pre = []
            self.evaluate(s)
            expanded.extend(self.pre)
            expanded.append(s)
        self.emitting = True
        for s in _reduce(expanded, self.fam):
            self.stmt(s)
        attrs = {"table": self.tbl.name, "chain": c.name, "expressions": self.exprs}
        comment = r.comment
        if r.tag is not None:
            comment = f"tag:{r.tag}" + (f" {comment}" if comment else "")
        if comment is not None:
            attrs["userdata"] = udata((0, strz(comment)))
        self.msgs.append(Msg("newrule", self.fam, attrs, r.loc, self.what))

    def evaluate(self, s):
        """The dependencies statement `s` needs, given what the rule established so far."""
        k = type(s)
        if k is M.Match:
            self.deps(s.left)
            if s.op in ("", "=="):
                self.update_ctx(s.left, s.right)
        elif k is M.Vmap or k is M.SetStmt or k is M.Meter:
            self.deps(s.key)
        elif k is M.Objref and isinstance(s.name, M.MapExpr):
            self.deps(s.name.key)
        elif k is M.MetaSet or k is M.CtSet:
            self.deps(s.expr)
        elif k is M.Nat:
            for part in (s.addr, s.port):
                if isinstance(part, M.MapExpr):
                    self.deps(part.key)
                elif part is not None and not isinstance(part, (M.Value, M.Range, M.Prefix)):
                    self.deps(part)
            if s.port is not None and s.kind in ("masquerade", "redirect") and \
                    self.ctx.get(P.TH) is None:
                raise NftError(s.loc, "transport protocol mapping is only valid after "
                                      "transport protocol match")
        elif k is M.Reject:
            if s.kind == "tcp reset":
                if self.ctx.get(P.TH) != "tcp":
                    self.dep_match(M.Meta("l4proto"), T.INET_PROTO, 6)
                    self.ctx[P.TH] = "tcp"
            elif s.kind in ("icmp", "icmpv6") and self.fam in ("inet", "bridge", "netdev"):
                upper = "ip" if s.kind == "icmp" else "ip6"
                if self.ctx.get(P.NH) != upper:
                    lower = {"inet": "inet", "bridge": "netdev", "netdev": "netdev"}[self.fam]
                    self.add_dep(lower, upper, s)
        elif k is M.Tproxy:
            if self.ctx.get(P.TH) is None:
                raise NftError(s.loc, "transparent proxy support requires transport "
                                      "protocol match")

    def emit(self, name, **data):
        self.exprs.append({"name": name, "data": data})

    def get_reg(self, nbytes=16) -> int:
        slot = self.reg_low
        self.reg_low += reg_space(nbytes)
        return slot

    def release(self, nbytes=16):
        self.reg_low -= reg_space(nbytes)

    def stmt(self, s):
        k = type(s)
        handler = _STMT.get(k)
        if handler is None:
            raise NftError(s.loc, f"{k.__name__}: not supported by linx")
        handler(self, s)

    # -- expressions that load a register
    def expr_len(self, e) -> int:
        """Bytes the expression occupies in registers (a concatenation: each field rounded
        up to 32 bits)."""
        if isinstance(e, M.Concat):
            return sum(reg_space(self.expr_len(x)) * 4 for x in e.items)
        t = self.type_of(e)
        if isinstance(e, M.Payload) or isinstance(e, M.RawPayload):
            return (t.bits + 7) // 8
        if isinstance(e, M.Fib):        # fib_expr_alloc(): a u32 but for oifname
            return 16 if e.result == "oifname" and "present" not in e.flags else 4
        return t.size

    def type_of(self, e):
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
            return self.type_of(e.left)
        if isinstance(e, M.RawPayload):
            return T.xinteger(e.bits)
        if isinstance(e, (M.Numgen, M.Hash)):
            return T.integer(32, T.HOST)
        if isinstance(e, M.Concat):
            return tuple(self.type_of(x) for x in e.items)
        if isinstance(e, M.MapExpr):
            return self.map_data(e.mapping)
        raise NftError(getattr(e, "loc", None), f"cannot load {type(e).__name__} here")

    def deps(self, e):
        """The protocol dependencies of `e` (payload_gen_dependency() of nft's payload.c)."""
        if self.emitting:
            return
        if isinstance(e, M.Payload):
            self.payload_dep(e)
        elif isinstance(e, (M.Concat,)):
            for x in e.items:
                self.deps(x)
        elif isinstance(e, M.Binop):
            self.deps(e.left)
        elif isinstance(e, M.MapExpr):
            self.deps(e.key)
        elif isinstance(e, M.Hash) and e.expr is not None:
            self.deps(e.expr)

    def payload_dep(self, e: M.Payload):
        desc = P.PROTOS[e.proto]
        if desc.name == "th":
            return
        base = desc.base
        if self.ctx.get(base) == desc.name:
            self.icmp_dep(e)
            return
        if base == P.LL:
            # Below the hook's own header (or beside inet/netdev's pseudo header) the
            # link layer is only known to be Ethernet on input: meta iiftype ether.
            if self.ctx.get(P.LL) != "ether":
                self.dep_match(M.Meta("iiftype"), T.ARPHRD, 1)
                self.ctx[P.LL] = "ether"
            if desc.name != "ether":
                self.add_dep("ether", desc.name, e)
            return
        lower = self.ctx.get(base - 1)
        if lower is None and base == P.TH:
            if desc.name in ("icmp", "icmpv6"):
                ll = self.ctx.get(P.LL) or {"inet": "inet", "bridge": "ether",
                                            "netdev": "netdev"}.get(self.fam)
                upper = "ip6" if desc.name == "icmpv6" else "ip"
                if ll is not None:
                    self.add_dep(ll, upper, e)
                lower = upper
            else:
                lower = "inet-service"
        if lower is None:
            raise NftError(e.loc, f"ambiguous payload specification: no "
                                  f"{P.BASE_NAMES[base - 1]} protocol specified")
        if self.fam == "bridge" and lower == "ether" and desc.name in ("ip", "ip6"):
            lower = "netdev"
        self.add_dep(lower, desc.name, e)
        self.icmp_dep(e)

    def icmp_dep(self, e: M.Payload):
        """Fields of some ICMP messages only: match the type first (payload.c's
        payload_gen_icmp_dependency)."""
        need = P.ICMP_DEPS.get((e.proto, e.field))
        if need is None:
            return
        typ = P.PROTOS[e.proto].fields["type"][2]
        echo = P.ICMP_ECHO[e.proto]
        if need == "echo":
            if self.icmp_type in echo:
                return
            self.pre.append(M.Match(M.Payload(e.proto, "type"), "",
                                    M.SetLit(tuple(M.Value(typ, v) for v in echo))))
            return
        if self.icmp_type != need:
            self.pre.append(M.Match(M.Payload(e.proto, "type"), "", M.Value(typ, need)))
            self.icmp_type = need

    def add_dep(self, lower, upper, e):
        ldesc = P.PROTOS[lower]
        num = ldesc.links.get(upper)
        if num is None:
            raise NftError(e.loc, f"conflicting protocols specified: {lower} vs. {upper}")
        key = ldesc.key
        if key.startswith("meta "):
            mkey = key[5:]
            left = M.Meta(mkey)
            typ = P.META[mkey][1]
        else:
            left = M.Payload(lower if lower != "netdev" else "ether", key)
            typ = ldesc.fields[key][2]
        self.dep_match(left, typ, num)
        self.ctx[P.PROTOS[upper].base] = upper

    def dep_match(self, left, typ, value):
        self.pre.append(M.Match(left, "", M.Value(typ, value)))

    def update_ctx(self, left, right):
        """relational_expr_pctx_update(): `meta l4proto tcp` tells later payloads which
        header comes next, so they need no dependency of their own."""
        if isinstance(left, M.Payload) and left.proto in ("icmp", "icmpv6") and \
                left.field == "type" and isinstance(right, M.SetLit):
            echo = P.ICMP_ECHO[left.proto]
            if right.elems and all(isinstance(e, M.Value) and e.v in echo for e in right.elems):
                self.icmp_type = echo[0]
            return
        if not isinstance(right, M.Value) or not isinstance(right.v, int):
            return
        if isinstance(left, M.Meta):
            key = left.key
            for name, d in P.PROTOS.items():
                if d.key == f"meta {key}":
                    for upper, num in d.links.items():
                        if num == right.v:
                            self.ctx[P.PROTOS[upper].base] = upper
                            return
        elif isinstance(left, M.Payload):
            if left.proto in ("icmp", "icmpv6") and left.field == "type":
                self.icmp_type = right.v
            d = P.PROTOS[left.proto]
            if d.key == left.field:
                for upper, num in d.links.items():
                    if num == right.v:
                        self.ctx[P.PROTOS[upper].base] = upper
                        return
            if left.proto in ("ip", "ip6") and left.field in ("protocol", "nexthdr"):
                for upper, num in P.PROTOS[left.proto].links.items():
                    if num == right.v:
                        self.ctx[P.TH] = upper
                        return

    def load(self, e, dreg, nbytes=None):
        """Generate the expression that puts `e` in register slot `dreg`."""
        k = type(e)
        if k is M.Payload:
            desc = P.PROTOS[e.proto]
            off, bits, typ = desc.fields[e.field]
            off += desc.offset
            start = off // 8
            end = (off + bits + 7) // 8
            length = nbytes if nbytes is not None else end - start
            self.emit("payload", dreg=_put_reg(dreg), base=desc.base, offset=start, len=length)
            if (off % 8 or bits % 8) and nbytes is None:
                total = (end - start) * 8
                shift = total - (off - start * 8) - bits
                mask = ((1 << bits) - 1) << shift
                self.emit("bitwise", sreg=_put_reg(dreg), dreg=_put_reg(dreg), op=0,
                          len=end - start, mask=mask.to_bytes(end - start, "big"),
                          xor=bytes(end - start))
        elif k is M.RawPayload:
            start = e.offset // 8
            end = (e.offset + e.bits + 7) // 8
            self.emit("payload", dreg=_put_reg(dreg), base=e.base, offset=start,
                      len=end - start)
            if e.offset % 8 or e.bits % 8:
                total = (end - start) * 8
                shift = total - (e.offset - start * 8) - e.bits
                mask = ((1 << e.bits) - 1) << shift
                self.emit("bitwise", sreg=_put_reg(dreg), dreg=_put_reg(dreg), op=0,
                          len=end - start, mask=mask.to_bytes(end - start, "big"),
                          xor=bytes(end - start))
        elif k is M.Meta:
            self.emit("meta", dreg=_put_reg(dreg), key=P.META[e.key][0])
        elif k is M.Ct:
            if e.key in ("saddr", "daddr") and e.family:
                key = P.CT_ADDR[(e.family, e.key)]
            else:
                key = P.CT[e.key][0]
            d = {"dreg": _put_reg(dreg), "key": key}
            if e.dir is not None:
                d["direction"] = P.CT_DIRS[e.dir]
            self.exprs.append({"name": "ct", "data": d})
        elif k is M.Fib:
            flags = 0
            for f in e.flags:
                flags |= P.FIB_PRESENT if f == "present" else P.FIB_FLAGS[f]
            self.emit("fib", dreg=_put_reg(dreg), result=P.FIB_RESULTS[e.result][0],
                      flags=flags)
        elif k is M.Concat:
            slot = dreg
            for x in e.items:
                self.load(x, slot)
                slot += reg_space(self.expr_len(x))
        elif k is M.Binop:
            self.binop(e, dreg)
        elif k is M.Numgen:
            self.emit("numgen", dreg=_put_reg(dreg), modulus=e.mod,
                      type=0 if e.mode == "inc" else 1, offset=e.offset)
        elif k is M.Hash:
            d = {}
            if e.kind == "jhash":
                sreg = self.get_reg(self.expr_len(e.expr))
                self.load(e.expr, sreg)
                self.release(self.expr_len(e.expr))
                d["sreg"] = _put_reg(sreg)
                d["len"] = self.expr_len(e.expr)
            d["dreg"] = _put_reg(dreg)
            d["modulus"] = e.mod
            if e.seed is not None:
                d["seed"] = e.seed
            d["offset"] = e.offset
            d["type"] = 0 if e.kind == "jhash" else 1
            self.exprs.append({"name": "hash", "data": d})
        elif k is M.MapExpr:
            self.map_lookup(e, dreg)
        elif k is M.Value:
            typ = e.type
            self.emit("immediate", dreg=_put_reg(dreg), data=self.value_bytes(e, typ))
        elif k is M.Flags:
            self.emit("immediate", dreg=_put_reg(dreg), data=self.value_bytes(e, e.type))
        else:
            raise NftError(getattr(e, "loc", None), f"cannot load {k.__name__} here")

    def binop(self, e, dreg):
        """netlink_gen_bitwise(): a chain of & | ^ folds into one mask/xor pair."""
        if e.op in ("<<", ">>"):
            self.load(e.left, dreg)
            n = self.expr_len(e.left)
            self.emit("bitwise", sreg=_put_reg(dreg), dreg=_put_reg(dreg),
                      op=1 if e.op == "<<" else 2, len=n,
                      data=e.right.v.to_bytes(4, "little"))
            return
        chain = []
        left = e
        while isinstance(left, M.Binop) and left.op in ("&", "|", "^"):
            chain.append(left)
            left = left.left
        self.load(left, dreg)
        typ = self.type_of(left)
        n = self.expr_len(left)
        bits = n * 8
        full = (1 << bits) - 1
        mask, xor = full, 0
        for b in reversed(chain):
            val = int.from_bytes(self.value_bytes(b.right, typ, n), "big")
            if b.op == "&":
                m, x = val, 0
            elif b.op == "|":
                m, x = ~val & full, val
            else:
                m, x = full, val
            xor = (xor & m) ^ x
            mask &= m
        self.emit("bitwise", sreg=_put_reg(dreg), dreg=_put_reg(dreg), op=0, len=n,
                  mask=mask.to_bytes(n, "big"), xor=xor.to_bytes(n, "big"))

    def map_data(self, mapping):
        if isinstance(mapping, M.SetRef):
            s = self.lookup_set(mapping)
            return s.data
        return None

    def lookup_set(self, ref: M.SetRef) -> M.Set:
        s = self.tbl.sets.get(ref.name)
        if s is None:
            raise NftError(ref.loc, f"set {ref.name} is not defined in table "
                                    f"{self.fam} {self.tbl.name}")
        return s

    def map_lookup(self, e: M.MapExpr, dreg, data_type=None):
        """`key map { k : v }`: the lookup writes the mapped value into dreg."""
        klen = self.expr_len(e.key)
        space = reg_space(klen) if isinstance(e.key, M.Concat) else 0
        self.reg_low += space
        self.load(e.key, dreg)
        self.reg_low -= space
        name, sid = self.set_for(e.mapping, self.key_types(e.key), data_type, e.loc)
        d = {"set": name, "sreg": _put_reg(dreg), "dreg": _put_reg(dreg)}
        if sid:
            d["set_id"] = sid
        self.exprs.append({"name": "lookup", "data": d})

    def key_types(self, e):
        t = self.type_of(e)
        return t if isinstance(t, tuple) else (t,)

    def set_for(self, mapping, key_types, data_type, loc):
        if isinstance(mapping, M.SetRef):
            self.lookup_set(mapping)
            return mapping.name, self.set_ids.get(mapping.name, 0)
        return self.anon_set(key_types if len(key_types) > 1 else key_types[0],
                             mapping.elems, data_type, loc)

    # -- statements
    def s_match(self, s: M.Match):
        left, right, op = s.left, s.right, s.op
        if isinstance(left, _Merged):
            sreg = self.get_reg()
            self.emit("payload", dreg=_put_reg(sreg), base=left.base, offset=left.offset // 8,
                      len=left.bits // 8)
            self.emit("cmp", sreg=_put_reg(sreg), op=CMP_OPS[op], data=right)
            self.release()
            return
        typ = self.type_of(left)
        if isinstance(right, (M.SetLit, M.SetRef)):
            n = self.expr_len(left)
            sreg = self.get_reg(n if isinstance(left, M.Concat) else 16)
            self.load(left, sreg)
            if self.needs_hton(left, typ, right):
                self.emit("byteorder", sreg=_put_reg(sreg), dreg=_put_reg(sreg), op=1,
                          len=typ.size, size=_swap_size(typ.bits))
            key = typ if isinstance(typ, tuple) else (typ,)
            shift = _field_shift(left)
            if shift and isinstance(right, M.SetLit):
                # the field sits `shift` bits up in the loaded bytes; so do the elements
                right = M.SetLit(tuple(_shift_elem(e, shift) for e in right.elems), loc=right.loc)
            name, sid = self.set_for(right, key, None, s.loc)
            d = {"set": name, "sreg": _put_reg(sreg)}
            if sid:
                d["set_id"] = sid
            if op == "!=":
                d["flags"] = 1
            self.exprs.append({"name": "lookup", "data": d})
            self.release(n if isinstance(left, M.Concat) else 16)
            return
        if isinstance(right, M.Range):
            sreg = self.get_reg()
            self.load(left, sreg)
            lo = self.value_bytes(right.lo, typ)
            hi = self.value_bytes(right.hi, typ)
            if typ.order == T.HOST and typ.size > 1:
                self.emit("byteorder", sreg=_put_reg(sreg), dreg=_put_reg(sreg), op=1,
                          len=typ.size, size=_swap_size(typ.bits))
                lo, hi = lo[::-1], hi[::-1]
            if op == "!=":
                self.emit("range", sreg=_put_reg(sreg), op=1, data_from=lo, data_to=hi)
            else:
                self.emit("cmp", sreg=_put_reg(sreg), op=5, data=lo)
                self.emit("cmp", sreg=_put_reg(sreg), op=3, data=hi)
            self.release()
            return
        if isinstance(right, M.Prefix):
            sreg = self.get_reg()
            plen = right.plen
            val = self.value_bytes(right.value, typ)
            if plen and plen % 8 == 0 and typ.order == T.BIG:
                self.load(left, sreg, nbytes=plen // 8)
                data = val[:plen // 8]
            else:
                self.load(left, sreg)
                mask = (((1 << plen) - 1) << (typ.bits - plen)).to_bytes(typ.size, typ.order)
                self.emit("bitwise", sreg=_put_reg(sreg), dreg=_put_reg(sreg), op=0,
                          len=typ.size, mask=mask, xor=bytes(typ.size))
                data = val
            self.emit("cmp", sreg=_put_reg(sreg), op=CMP_OPS[op], data=data)
            self.release()
            return
        if isinstance(right, M.Value) and isinstance(right.v, str) and right.v.endswith("*") \
                and typ.kind == "str":
            sreg = self.get_reg()
            self.load(left, sreg)
            prefix = right.v[:-1].encode()
            self.emit("cmp", sreg=_put_reg(sreg), op=CMP_OPS[op], data=prefix)
            self.release()
            return
        if isinstance(right, M.Concat):
            n = self.expr_len(left)
            sreg = self.get_reg(n)
            self.load(left, sreg)
            self.emit("cmp", sreg=_put_reg(sreg), op=CMP_OPS[op],
                      data=self.concat_data(right, typ))
            self.release(n)
            return
        # a single value
        sreg = self.get_reg()
        bitmask = isinstance(typ, T.Type) and typ.kind == "bitmask"
        if bitmask and op == "" and not isinstance(left, M.Binop):
            self.load(left, sreg)
            n = self.expr_len(left)
            self.emit("bitwise", sreg=_put_reg(sreg), dreg=_put_reg(sreg), op=0, len=n,
                      mask=self.value_bytes(right, typ, n), xor=bytes(n))
            self.emit("cmp", sreg=_put_reg(sreg), op=1, data=bytes(n))
            self.release()
            return
        self.load(left, sreg)
        data = self.shifted(left, right, typ)
        if op in ("<", ">", "<=", ">=") and typ.order == T.HOST and typ.size > 1:
            self.emit("byteorder", sreg=_put_reg(sreg), dreg=_put_reg(sreg), op=1,
                      len=typ.size, size=_swap_size(typ.bits))
            data = data[::-1]
        self.emit("cmp", sreg=_put_reg(sreg), op=CMP_OPS[op], data=data)
        self.release()

    def shifted(self, left, right, typ) -> bytes:
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
            return self.value_bytes(right, typ, end - start)
        if isinstance(base, M.RawPayload):
            start = base.offset // 8
            end = (base.offset + base.bits + 7) // 8
            shift = (end - start) * 8 - (base.offset - start * 8) - base.bits
            return (right.v << shift).to_bytes(end - start, "big")
        return self.value_bytes(right, typ, self.expr_len(base) if isinstance(
            base, M.Fib) else None)

    def needs_hton(self, left, typ, right) -> bool:
        """Interval sets on host-order keys hold network-order keys (so ranges compare)."""
        if isinstance(typ, tuple) or typ.order != T.HOST or typ.size <= 1:
            return False
        if isinstance(right, M.SetLit):
            return any(_is_interval(_elem_key(e)) for e in right.elems)
        s = self.tbl.sets.get(right.name)
        return s is not None and "interval" in s.flags

    def s_verdict(self, s: M.VerdictStmt):
        v = s.verdict
        self.emit("immediate", dreg=REG_VERDICT, data=self.verdict_data(v))

    def s_vmap(self, s: M.Vmap):
        self.deps(s.key)
        n = self.expr_len(s.key)
        concat = isinstance(s.key, M.Concat)
        sreg = self.get_reg(n if concat else 16)
        self.load(s.key, sreg)
        key = self.key_types(s.key)
        if isinstance(s.mapping, M.SetRef):
            st = self.lookup_set(s.mapping)
            if st.data != "verdict":
                raise NftError(s.mapping.loc, f"map {st.name} does not map to verdicts")
        name, sid = self.set_for(s.mapping, key, "verdict", s.loc)
        d = {"set": name, "sreg": _put_reg(sreg), "dreg": REG_VERDICT}
        if sid:
            d["set_id"] = sid
        self.exprs.append({"name": "lookup", "data": d})
        self.release(n if concat else 16)

    def stateful(self, s) -> dict:
        k = type(s)
        if k is M.Counter:
            d = {}
            if s.bytes:
                d["bytes"] = s.bytes
            if s.packets:
                d["packets"] = s.packets
            return {"name": "counter", "data": d}
        if k is M.Limit:
            burst = s.burst if s.burst is not None else (0 if s.bytes else 5)
            return {"name": "limit", "data": {"rate": s.rate, "unit": UNIT_SECONDS[s.unit],
                                              "burst": burst, "type": 1 if s.bytes else 0,
                                              "flags": 1 if s.over else 0}}
        if k is M.Quota:
            return {"name": "quota", "data": {"bytes": s.bytes, "consumed": s.used,
                                              "flags": 1 if s.over else 0}}
        raise NftError(s.loc, "expected a counter, limit or quota statement")

    def s_stateful(self, s):
        e = self.stateful(s)
        if e["name"] == "limit" and e["data"]["burst"] == 0:
            del e["data"]["burst"]
        self.exprs.append(e)

    def s_log(self, s: M.Log):
        d = {}
        if s.prefix is not None:
            d["prefix"] = s.prefix
        if s.group is not None:
            d["group"] = s.group
            if s.snaplen is not None:
                d["snaplen"] = s.snaplen
            if s.qthreshold is not None:
                d["qthreshold"] = s.qthreshold
        else:
            if s.level is not None:
                d["level"] = LOG_LEVELS[s.level]
            flags = 0
            for f in s.flags:
                flags |= LOG_FLAG_BITS[f]
            if flags:
                d["flags"] = flags
        self.exprs.append({"name": "log", "data": d})

    def s_reject(self, s: M.Reject):
        fam = self.fam
        if s.kind == "tcp reset":
            self.emit("reject", type=1, icmp_code=0)
        elif s.kind is None:
            if fam == "ip":
                self.emit("reject", type=0, icmp_code=3)
            elif fam == "ip6":
                self.emit("reject", type=0, icmp_code=4)
            else:
                self.emit("reject", type=2, icmp_code=1)
        elif s.kind == "icmpx":
            self.emit("reject", type=2, icmp_code=s.code.v)
        else:
            self.emit("reject", type=0, icmp_code=s.code.v)

    def s_nat(self, s: M.Nat):
        fam = s.family or (self.fam if self.fam in ("ip", "ip6") else None)
        if fam is None and s.addr is not None:
            a = s.addr.lo if isinstance(s.addr, M.Range) else s.addr
            fam = "ip6" if isinstance(a, M.Value) and a.type.kind == "ipv6" else "ip"
        if fam is None:
            fam = "ip"
        if s.kind in ("snat", "dnat"):
            name, d = "nat", {"type": NAT_TYPES[s.kind], "family": P.FAMILIES[fam]}
        else:
            name, d = ("masq" if s.kind == "masquerade" else "redir"), {}
        flags = 0
        for f in s.flags:
            flags |= NAT_FLAGS[f]
        if s.port is not None:
            flags |= NF_NAT_RANGE_PROTO_SPECIFIED
        if flags:
            d["flags"] = flags
        regs = 0
        atype = T.IPV6 if fam == "ip6" else T.IPV4
        if s.addr is not None:
            amin = self.get_reg()
            regs += 1
            if isinstance(s.addr, M.Range):
                amax = self.get_reg()
                regs += 1
                self.load(M.Value(atype, s.addr.lo.v), amin)
                self.load(M.Value(atype, s.addr.hi.v), amax)
                d["reg_addr_min"] = _put_reg(amin)
                d["reg_addr_max"] = _put_reg(amax)
            elif isinstance(s.addr, M.Prefix):
                amax = self.get_reg()
                regs += 1
                lo = s.addr.value.v
                hi = lo | ((1 << (atype.bits - s.addr.plen)) - 1)
                self.load(M.Value(atype, lo), amin)
                self.load(M.Value(atype, hi), amax)
                d["reg_addr_min"] = _put_reg(amin)
                d["reg_addr_max"] = _put_reg(amax)
            elif isinstance(s.addr, M.MapExpr):
                data = (atype, T.INET_SERVICE) if s.concat else atype
                self.map_lookup(s.addr, amin, data)
                d["reg_addr_min"] = _put_reg(amin)
                if s.concat:
                    d["reg_proto_min"] = _put_reg(amin + reg_space(atype.size))
            else:
                self.load(M.Value(atype, s.addr.v), amin)
                d["reg_addr_min"] = _put_reg(amin)
        if s.port is not None:
            pmin = self.get_reg()
            regs += 1
            key_min = "reg_proto_min"
            key_max = "reg_proto_max"
            if isinstance(s.port, M.Range):
                pmax = self.get_reg()
                regs += 1
                self.load(s.port.lo, pmin)
                self.load(s.port.hi, pmax)
                d[key_min] = _put_reg(pmin)
                d[key_max] = _put_reg(pmax)
            elif isinstance(s.port, M.MapExpr):
                self.map_lookup(s.port, pmin, T.INET_SERVICE)
                d[key_min] = _put_reg(pmin)
            elif isinstance(s.port, M.Value):
                self.load(s.port, pmin)
                d[key_min] = _put_reg(pmin)
            else:
                self.load(s.port, pmin)
                d[key_min] = _put_reg(pmin)
        for _ in range(regs):
            self.release()
        self.exprs.append({"name": name, "data": _nat_order(name, d)})

    def s_meta_set(self, s: M.MetaSet):
        typ = P.META[s.key][1]
        self.deps(s.expr)
        sreg = self.get_reg()
        self.set_value(s.expr, typ, sreg)
        self.release()
        self.emit("meta", sreg=_put_reg(sreg), key=P.META[s.key][0])

    def set_value(self, e, typ, sreg):
        if isinstance(e, (M.Value, M.Flags)):
            self.emit("immediate", dreg=_put_reg(sreg), data=self.value_bytes(e, typ))
        elif isinstance(e, M.MapExpr):
            self.map_lookup(e, sreg, typ)
        else:
            self.load(e, sreg)

    def s_ct_set(self, s: M.CtSet):
        if s.key == "event":
            typ = T.BITMASK
        else:
            typ = P.CT[s.key][1]
        self.deps(s.expr)
        sreg = self.get_reg()
        self.set_value(s.expr, typ, sreg)
        self.release()
        d = {"sreg": _put_reg(sreg), "key": 19 if s.key == "event" else P.CT[s.key][0]}
        if s.key == "event":
            d["key"] = 18
        if s.dir is not None:
            d["direction"] = P.CT_DIRS[s.dir]
        self.exprs.append({"name": "ct", "data": d})

    def s_notrack(self, s):
        self.emit("notrack")

    def s_set(self, s: M.SetStmt):
        st = self.lookup_set(M.SetRef(s.set, loc=s.loc))
        self.deps(s.key)
        n = self.expr_len(s.key)
        concat = isinstance(s.key, M.Concat)
        kreg = self.get_reg(n if concat else 16)
        self.load(s.key, kreg)
        self.release(n if concat else 16)
        d = {"sreg_key": _put_reg(kreg)}
        if s.data is not None:
            dreg = self.get_reg()
            self.set_value(s.data, st.data, dreg)
            self.release()
            d["sreg_data"] = _put_reg(dreg)
        d["op"] = {"add": 0, "update": 1, "delete": 2}[s.op]
        d["set_name"] = s.set
        d["set_id"] = self.set_ids.get(s.set, 0)
        if s.timeout:
            d["timeout"] = s.timeout
        if len(s.stmts) == 1:
            d["expr"] = self.stateful(s.stmts[0])
        elif s.stmts:
            d["expressions"] = [self.stateful(x) for x in s.stmts]
            d["flags"] = 1
        self.exprs.append({"name": "dynset", "data": d})

    def s_meter(self, s: M.Meter):
        self.deps(s.key)
        key = self.key_types(s.key)
        flags = SET_ANONYMOUS | SET_EVAL
        if s.timeout:
            flags |= SET_TIMEOUT
        sid = self.next_set_id()
        attrs = self.set_attrs(s.name, sid, flags, key, None)
        attrs["desc"] = {"size": s.size or 65535}
        attrs["userdata"] = udata((0, BYTEORDER[self.key_order(key)].to_bytes(4, "little")))
        self.msgs.append(Msg("newset", self.fam, attrs, s.loc, f"meter {s.name}"))
        n = self.expr_len(s.key)
        concat = isinstance(s.key, M.Concat)
        kreg = self.get_reg(n if concat else 16)
        self.load(s.key, kreg)
        self.release(n if concat else 16)
        d = {"sreg_key": _put_reg(kreg)}
        if s.timeout:
            d["timeout"] = s.timeout
        d["op"] = 1 if s.timeout else 0
        d["set_name"] = s.name
        d["set_id"] = sid
        d["expr"] = self.stateful(s.stmt)
        self.exprs.append({"name": "dynset", "data": d})

    def s_queue(self, s: M.Queue):
        d = {}
        lo = hi = 0
        if isinstance(s.num, M.Range):
            lo, hi = s.num.lo.v, s.num.hi.v
        elif s.num is not None:
            lo = hi = s.num.v
        d["num"] = lo
        d["total"] = hi - lo + 1
        flags = (1 if "bypass" in s.flags else 0) | (2 if "fanout" in s.flags else 0)
        if flags:
            d["flags"] = flags
        self.exprs.append({"name": "queue", "data": d})

    def s_flow(self, s: M.FlowOffload):
        if s.flowtable not in self.tbl.flowtables:
            raise NftError(s.loc, f"flowtable {s.flowtable} is not defined in table "
                                  f"{self.fam} {self.tbl.name}")
        self.emit("flow_offload", table_name=s.flowtable)

    def s_synproxy(self, s: M.Synproxy):
        flags = (1 if s.mss is not None else 0) | (2 if s.wscale is not None else 0)
        for f in s.flags:
            flags |= {"sack-perm": 4, "timestamp": 8}[f]
        self.emit("synproxy", mss=s.mss or 0, wscale=s.wscale or 0, flags=flags)

    def s_tproxy(self, s: M.Tproxy):
        fam = s.family or (self.fam if self.fam in ("ip", "ip6") else None)
        d = {"family": P.FAMILIES[fam] if fam else 0}
        regs = 0
        if s.addr is not None:
            areg = self.get_reg()
            regs += 1
            self.load(s.addr, areg)
            d["reg_addr"] = _put_reg(areg)
        if s.port is not None:
            preg = self.get_reg()
            regs += 1
            self.load(s.port, preg)
            d["reg_port"] = _put_reg(preg)
        for _ in range(regs):
            self.release()
        self.exprs.append({"name": "tproxy", "data": d})

    def s_objref(self, s: M.Objref):
        otype = OBJ_TYPES[s.kind]
        if isinstance(s.name, M.MapExpr):
            self.deps(s.name.key)
            n = self.expr_len(s.name.key)
            concat = isinstance(s.name.key, M.Concat)
            kreg = self.get_reg(n if concat else 16)
            self.load(s.name.key, kreg)
            self.release(n if concat else 16)
            name, sid = self.set_for(s.name.mapping, self.key_types(s.name.key), s.kind,
                                     s.loc)
            d = {"set_sreg": kreg, "set_name": name}
            if sid:
                d["set_id"] = sid
            self.exprs.append({"name": "objref", "data": d})
            return
        self.emit("objref", imm_type=otype, imm_name=s.name)


@dataclass(slots=True)
class _Merged:
    """Adjacent payload fields loaded and compared as one (payload_expr_join())."""
    base: int
    offset: int        # bits
    bits: int
    protocol: bool = False


def _payload_span(e):
    """(base, bit offset, bit length, is the protocol key) of a payload field."""
    if isinstance(e, _Merged):
        return e.base, e.offset, e.bits, e.protocol
    desc = P.PROTOS[e.proto]
    off, bits, _ = desc.fields[e.field]
    key = desc.key == e.field or (e.proto in ("ip", "ip6") and e.field in ("protocol",
                                                                          "nexthdr"))
    return desc.base, off + desc.offset, bits, key


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


def _reduce(stmts, family):
    """stmt_reduce() of nft's rule.c: drop `meta protocol ip` in an ip table and merge
    equality matches on adjacent payload fields into one load and compare."""
    out = list(stmts)
    run = []

    def flush():
        if len(run) > 1:
            _merge(out, run)
        run.clear()
    for i, s in enumerate(stmts):
        if not isinstance(s, M.Match):
            flush()
            continue
        if not isinstance(s.right, (M.Value, M.Flags)):
            continue
        if isinstance(s.left, M.Payload) and s.op in ("", "==", "!="):
            run.append(i)
        elif isinstance(s.left, M.Meta) and s.left.key == "protocol" and s.op in ("", "=="):
            if (family, s.right.v) in (("ip", 0x0800), ("ip6", 0x86dd)):
                out[i] = None
    flush()
    return [s for s in out if s is not None]


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


def _swap_size(bits: int) -> int:
    return 8 if bits % 64 == 0 else 4 if bits % 32 == 0 else 2


def _nat_order(name, d):
    """Attributes in libnftnl's order (nftnl_expr_nat_build)."""
    order = ("type", "family", "reg_addr_min", "reg_addr_max", "reg_proto_min",
             "reg_proto_max", "flags")
    return {k: d[k] for k in order if k in d}


def _elem_key(e):
    if isinstance(e, M.Mapping):
        e = e.key
    if isinstance(e, M.Elem):
        e = e.key
    return e


def _is_interval(e) -> bool:
    if isinstance(e, (M.Range, M.Prefix)):
        return True
    if isinstance(e, M.Concat):
        return any(isinstance(x, (M.Range, M.Prefix)) for x in e.items)
    return False


_STMT = {
    M.Match: Compiler.s_match, M.VerdictStmt: Compiler.s_verdict, M.Vmap: Compiler.s_vmap,
    M.Counter: Compiler.s_stateful, M.Limit: Compiler.s_stateful,
    M.Quota: Compiler.s_stateful, M.Log: Compiler.s_log, M.Reject: Compiler.s_reject,
    M.Nat: Compiler.s_nat, M.MetaSet: Compiler.s_meta_set, M.CtSet: Compiler.s_ct_set,
    M.Notrack: Compiler.s_notrack, M.SetStmt: Compiler.s_set, M.Meter: Compiler.s_meter,
    M.Queue: Compiler.s_queue, M.FlowOffload: Compiler.s_flow,
    M.Synproxy: Compiler.s_synproxy, M.Tproxy: Compiler.s_tproxy,
    M.Objref: Compiler.s_objref,
}


def compile(ruleset: M.Ruleset, ifindex=None) -> list[Msg]:
    return Compiler(ruleset, ifindex).compile()
