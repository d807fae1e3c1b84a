"""Kernel state -> ruleset model: the dumps of tables, chains, sets, elements, objects,
flowtables and rules, decoded and raised from kernel expressions back to nft statements,
as nftables' src/netlink.c and src/netlink_delinearize.c do, so the formatter prints what
`nft list ruleset` prints.

Raising a rule walks its expressions with a register file (what each register holds),
turns cmp/lookup/range on a register into matches, resolves payload offsets to header
fields through the protocol context the earlier matches established, and drops the
dependencies nft adds implicitly (`meta l4proto tcp` before `tcp dport`), under nft's
rules for when a dependency is implied (payload_dependency_kill()).
"""
from ..netlink.errors import MalformedMessage
from . import model as M
from . import proto as P
from . import types as T
from .compiler import DATA_VERDICT, ELEM_CATCHALL, ELEM_INTERVAL_END
from .listing import VERDICTS

SET_ANONYMOUS, SET_CONSTANT, SET_INTERVAL, SET_MAP = 0x1, 0x2, 0x4, 0x8
SET_TIMEOUT, SET_EVAL, SET_OBJECT, SET_CONCAT = 0x10, 0x20, 0x40, 0x80
OBJ_KINDS = {1: "counter", 2: "quota", 3: "ct helper", 4: "limit", 7: "ct timeout",
             9: "ct expectation", 10: "synproxy"}
UNITS = {1: "second", 60: "minute", 3600: "hour", 86400: "day", 604800: "week"}
LOG_LEVELS = {0: "emerg", 1: "alert", 2: "crit", 3: "err", 4: "warn", 5: "notice",
              6: "info", 7: "debug", 8: "audit"}
CMP_OPS = {0: "", 1: "!=", 2: "<", 3: "<=", 4: ">", 5: ">="}


class DecodeError(MalformedMessage):
    """Kernel state linx cannot read back into the model: an expression it does not know,
    or bytes that do not make a rule (EBADMSG, exit status 1)."""


def _udata(raw: bytes) -> dict:
    out, i = {}, 0
    while i + 2 <= len(raw):
        t, n = raw[i], raw[i + 1]
        out[t] = raw[i + 2:i + 2 + n]
        i += 2 + n
    return out


def _comment(raw):
    if not raw:
        return None
    c = _udata(raw).get(0)
    return c.split(b"\0", 1)[0].decode(errors="replace") if c is not None else None


def _u32le(b, default=0):
    return int.from_bytes(b[:4], "little") if b else default


# ---------------------------------------------------------------- objects

def table(family: str, a: dict) -> M.Table:
    flags = tuple(f for bit, f in ((1, "dormant"), (2, "owner"), (4, "persist"))
                  if a.get("flags", 0) & bit)
    t = M.Table(family, a["name"], flags, _comment(a.get("userdata")))
    if a.get("owner"):
        t.progname = _progname(a["owner"])
    return t


def _progname(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "-"


def chain(family: str, a: dict) -> M.Chain:
    c = M.Chain(a["name"], comment=_comment(a.get("userdata")))
    hook = a.get("hook")
    if hook is not None and "type" in a:
        c.type = a["type"]
        c.hook = P.HOOK_NAMES[family].get(hook["num"], "unknown")
        c.priority = hook.get("priority", 0)
        c.policy = "drop" if a.get("policy") == 0 else "accept"
        if "dev" in hook:
            c.devices = (hook["dev"],)
        elif hook.get("devs"):
            c.devices = tuple(hook["devs"])
    if a.get("flags", 0) & 4:
        c.offload = True
    return c


def obj(a: dict) -> M.Obj:
    kind = OBJ_KINDS.get(a["type"], f"object type {a['type']}")
    d = a.get("data") or {}
    spec: dict = {}
    if kind == "counter":
        spec = {"packets": d.get("packets", 0), "bytes": d.get("bytes", 0)}
    elif kind == "quota":
        spec = {"bytes": d.get("bytes", 0), "used": d.get("consumed", 0),
                "over": bool(d.get("flags", 0) & 1)}
    elif kind == "limit":
        is_bytes = d.get("type") == 1
        burst = d.get("burst", 0)
        spec = {"rate": d.get("rate", 0), "unit": UNITS.get(d.get("unit"), "second"),
                "bytes": is_bytes, "over": bool(d.get("flags", 0) & 1),
                "burst": None if burst == (0 if is_bytes else 5) else burst}
    elif kind == "ct helper":
        spec = {"type": d.get("name", ""), "protocol": "tcp" if d.get("l4proto") == 6
                else "udp", "l3proto": P.FAMILY_NAMES.get(d.get("l3proto"), "ip")}
    elif kind == "synproxy":
        fl = d.get("flags", 0)
        if fl & 1:
            spec["mss"] = d.get("mss", 0)
        if fl & 2:
            spec["wscale"] = d.get("wscale", 0)
        flags = [f for bit, f in ((8, "timestamp"), (4, "sack-perm")) if fl & bit]
        if flags:
            spec["flags"] = flags
    return M.Obj(kind, a["name"], spec, _comment(a.get("userdata")))


def flowtable(a: dict) -> M.Flowtable:
    hook = a.get("hook") or {}
    fl = a.get("flags", 0)
    return M.Flowtable(a["name"], "ingress", hook.get("priority", 0),
                       tuple(hook.get("devs") or ()), bool(fl & 1), bool(fl & 2))


class KSet:
    """A kernel set as dumped: its attributes, its types, and its elements."""

    def __init__(self, a: dict):
        self.a = a
        self.name = a["name"]
        self.flags = a.get("flags", 0)
        ud = _udata(a.get("userdata") or b"")
        self.key = _types_of(a.get("key_type", 0), a.get("key_len", 0), ud.get(0))
        dt = a.get("data_type")
        if self.flags & SET_MAP and dt is not None:
            self.data = "verdict" if dt == DATA_VERDICT else (
                _types_of(dt, a.get("data_len", 0), ud.get(1)))
        else:
            self.data = None
        self.objtype = OBJ_KINDS.get(a.get("obj_type")) if self.flags & SET_OBJECT else None
        self.elements = []

    @property
    def anonymous(self) -> bool:
        return bool(self.flags & SET_ANONYMOUS)

    def key_type(self):
        return self.key[0] if len(self.key) == 1 else tuple(self.key)

    def data_type(self):
        if self.data == "verdict" or self.data is None:
            return self.data
        return self.data[0] if len(self.data) == 1 else tuple(self.data)


def _types_of(tid: int, length: int, byteorder: bytes | None = None) -> list:
    """Datatypes of a set key or data; a plain integer takes its width from the length
    and its byte order from nft's set userdata (NFTNL_UDATA_SET_KEYBYTEORDER)."""
    ids = T.split_concat_id(tid) if tid >= 64 else [tid]
    order = T.HOST if byteorder and _u32le(byteorder) == 1 else T.BIG
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
    ud = _udata(a.get("userdata") or b"")
    desc = a.get("desc") or {}
    s = M.Set(ks.name, kind, tuple(ks.key),
              data=(ks.data if ks.data == "verdict" or ks.data is None
                    else ks.data[0] if len(ks.data) == 1 else tuple(ks.data)),
              flags=tuple(names), timeout=a.get("timeout"), gc_interval=a.get("gc_interval"),
              size=desc.get("size"), policy="memory" if a.get("policy") == 1 else None,
              auto_merge=bool(_u32le(ud.get(2))), counter="expr" in a,
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
    for e in raw:
        if e.get("flags", 0) & ELEM_CATCHALL:
            k = M.Catchall()
        elif len(key) > 1:
            if "key_end" in e:
                k = _concat_range(key, e["key"], e["key_end"])
            else:
                k = M.Concat(tuple(M.Value(t, _val(t, part))
                                   for t, part in zip(key, _split(key, e["key"]))))
        else:
            k = M.Value(key[0], _val(key[0], e["key"]))
        out.append(_with_data(ks, k, e))
    return out


def _concat_range(key, lo, hi):
    items = []
    for t, a, b in zip(key, _split(key, lo), _split(key, hi)):
        items.append(_range_expr(t, int.from_bytes(a[:t.size], "big"),
                                 int.from_bytes(b[:t.size], "big")))
    return M.Concat(tuple(items))


def _split(types, raw: bytes):
    out, off = [], 0
    for t in types:
        n = (t.size + 3) // 4 * 4
        out.append(raw[off:off + n])
        off += n
    return out


def _val(t, raw: bytes):
    if t.kind in ("str", "ifindex"):
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    return int.from_bytes(raw[:t.size], t.order)


def _net(t, n: int):
    """An interval key (stored big-endian, host-order types swapped by nft) as a value."""
    if t.kind == "str":
        return n.to_bytes(t.size, "big").split(b"\0", 1)[0].decode(errors="replace")
    return n


def _range_expr(t, lo: int, hi: int):
    if lo == hi:
        return M.Value(t, _net(t, lo))
    if t.name in T.PREFIX_TYPES:
        span = hi - lo + 1
        if span & (span - 1) == 0 and lo & (span - 1) == 0:
            return M.Prefix(M.Value(t, lo), t.bits - span.bit_length() + 1)
    return M.Range(M.Value(t, _net(t, lo)), M.Value(t, _net(t, hi)))


def _interval(ks, t, lo, hi, e):
    return _with_data(ks, _range_expr(t, lo, hi), e)


def _with_data(ks: KSet, key, e):
    opts = {}
    if e.get("timeout"):
        opts["timeout"] = e["timeout"]
    if e.get("expiration"):
        opts["expires"] = e["expiration"]
    ud = e.get("userdata")
    if ud:
        c = _udata(ud).get(0)
        if c is not None:
            opts["comment"] = c.split(b"\0", 1)[0].decode(errors="replace")
    stmts = []
    for x in ([e["expr"]] if "expr" in e else e.get("expressions", [])):
        stmts.append(_stateful(x))
    if opts or stmts:
        key = M.Elem(key, opts.get("timeout"), opts.get("expires"), opts.get("comment"),
                     tuple(stmts))
    if ks.objtype is not None and "objref" in e:
        return M.Mapping(key, M.Value(T.STRING, e["objref"]))
    if ks.data is not None and "data" in e:
        d = e["data"]
        if ks.data == "verdict":
            return M.Mapping(key, _verdict(d))
        dt = ks.data
        if len(dt) > 1:
            return M.Mapping(key, M.Concat(tuple(M.Value(t, _val(t, p))
                                                 for t, p in zip(dt, _split(dt, d)))))
        return M.Mapping(key, M.Value(dt[0], _val(dt[0], d)))
    return key


def _verdict(d: dict) -> M.Verdict:
    kind = VERDICTS.get(d.get("code"), "unknown")
    return M.Verdict(kind, d.get("chain"))


def _stateful(x: dict):
    name, d = x["name"], x.get("data", {})
    if name == "counter":
        return M.Counter(d.get("packets", 0), d.get("bytes", 0))
    if name == "limit":
        is_bytes = d.get("type") == 1
        burst = d.get("burst", 0)
        return M.Limit(d.get("rate", 0), UNITS.get(d.get("unit"), "second"),
                       None if burst == (0 if is_bytes else 5) else burst, is_bytes,
                       bool(d.get("flags", 0) & 1))
    if name == "quota":
        return M.Quota(d.get("bytes", 0), d.get("consumed", 0), bool(d.get("flags", 0) & 1))
    raise DecodeError(f"unknown stateful expression {name}")


# ---------------------------------------------------------------- rules

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

    def decode(self, exprs) -> list:
        for e in exprs:
            f = getattr(self, "x_" + e["name"], None)
            if f is None:
                raise DecodeError(f"unsupported expression {e['name']}")
            f(e.get("data", {}))
        return [s for s in self.stmts if s is not None]

    # -- loads
    def x_payload(self, d):
        if "sreg" in d:
            raise DecodeError("payload write (mangling) statements are not supported")
        self.regs[d["dreg"]] = Reg(None, d["len"], (d["base"], d["offset"], d["len"]))

    def x_meta(self, d):
        key = P.META_BY_ID.get(d["key"])
        if key is None:
            raise DecodeError(f"unknown meta key {d['key']}")
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
                raise DecodeError(f"unknown ct key {key}")
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
            self.stmts.append(M.VerdictStmt(_verdict(d["data"])))
            return
        self.regs[d["dreg"]] = Reg(("imm", d["data"]))

    def x_bitwise(self, d):
        r = self.regs.get(d["sreg"])
        if r is None:
            raise DecodeError("bitwise on an empty register")
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
            raise DecodeError("cmp on an empty register")
        op = CMP_OPS[d["op"]]
        data = d["data"]
        self.match_value(r, op, data)

    def x_range(self, d):
        r = self.regs[d["sreg"]]
        left, typ = self.left_of(r)
        lo = self.typed(typ, d["data_from"], r.hton)
        hi = self.typed(typ, d["data_to"], r.hton)
        self.add_match(M.Match(left, "!=" if d["op"] == 1 else "", M.Range(lo, hi)))

    def x_lookup(self, d):
        r = self.regs.get(d["sreg"])
        ks = self.sets.get(d["set"])
        if ks is None:
            raise DecodeError(f"lookup in unknown set {d['set']}")
        if r is None:
            raise DecodeError("lookup on an empty register")
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

    def mapping_of(self, ks: KSet):
        if ks.anonymous and not (ks.flags & SET_EVAL):
            return M.SetLit(tuple(elements(ks)))
        return M.SetRef(ks.name)

    def span(self, sreg: int, nbytes: int):
        """The expression(s) in `nbytes` of registers from sreg: a concatenation when one
        register's field is shorter."""
        slot, items, got = _slot(sreg), [], 0
        while got < nbytes:
            r = self.regs.get(_reg(slot))
            if r is None:
                raise DecodeError("hash over an empty register")
            e, typ = self.left_of(r)
            items.append(e)
            n = (typ.size + 3) // 4 * 4
            got += n
            slot += n // 4
        return items[0] if len(items) == 1 else M.Concat(tuple(items))

    def concat_or_single(self, sreg: int, ks: KSet):
        """The key a lookup reads: one register, or consecutive ones for a concatenation
        (32-bit register slots, reg 1 = slots 0-3, reg 9.. = slot 1..)."""
        if len(ks.key) == 1:
            r = self.regs[sreg]
            left, _ = self.left_of(r, ks.key[0])
            return left
        slot = _slot(sreg)
        items = []
        for t in ks.key:
            reg = _reg(slot)
            r = self.regs.get(reg)
            if r is None:
                raise DecodeError("concatenation with an empty register")
            left, _ = self.left_of(r, t)
            items.append(left)
            slot += (t.size + 3) // 4
        return M.Concat(tuple(items))

    # -- statements
    def x_counter(self, d):
        self.stmts.append(M.Counter(d.get("packets", 0), d.get("bytes", 0)))

    def x_limit(self, d):
        self.stmts.append(_stateful({"name": "limit", "data": d}))

    def x_quota(self, d):
        self.stmts.append(_stateful({"name": "quota", "data": d}))

    def x_log(self, d):
        flags = []
        fl = d.get("flags", 0)
        if fl & 0x2f == 0x2f:
            flags = ["all"]
        else:
            for bit, name in ((1, "tcp sequence"), (2, "tcp options"), (4, "ip options"),
                              (8, "skuid"), (0x20, "ether")):
                if fl & bit:
                    flags.append(name)
        level = LOG_LEVELS.get(d["level"]) if "level" in d else None
        self.stmts.append(M.Log(d.get("prefix"), None if level == "warn" else level,
                                d.get("group"), d.get("snaplen") or None if "group" in d
                                else None, d.get("qthreshold") or None if "group" in d
                                else None, tuple(flags)))

    def x_reject(self, d):
        typ, code = d.get("type", 0), d.get("icmp_code", 0)
        if typ == 1:
            if self.fam in ("ip", "ip6"):
                self.kill_dep(P.TH)
            self.stmts.append(M.Reject("tcp reset"))
            return
        if typ == 2:
            self.stmts.append(M.Reject(None) if code == 1 else
                              M.Reject("icmpx", M.Value(T.ICMPX_CODE, code)))
            return
        if self.fam == "ip":
            self.stmts.append(M.Reject(None) if code == 3 else
                              M.Reject("icmp", M.Value(T.ICMP_CODE, code)))
            return
        if self.fam == "ip6":
            self.stmts.append(M.Reject(None) if code == 4 else
                              M.Reject("icmpv6", M.Value(T.ICMPV6_CODE, code)))
            return
        nh = self.ctx.get(P.NH)
        self.kill_dep(P.NH)
        if nh == "ip6":
            self.stmts.append(M.Reject("icmpv6", M.Value(T.ICMPV6_CODE, code)))
        else:
            self.stmts.append(M.Reject("icmp", M.Value(T.ICMP_CODE, code)))

    def x_nat(self, d):
        kind = ("snat", "dnat")[d["type"]]
        fam = P.FAMILY_NAMES.get(d.get("family"), "ip")
        self.nat(kind, d, fam)

    def x_masq(self, d):
        self.nat("masquerade", d, None)

    def x_redir(self, d):
        self.nat("redirect", d, None)

    def nat(self, kind, d, fam):
        atype = T.IPV6 if fam == "ip6" else T.IPV4
        flags = tuple(f for bit, f in ((4, "random"), (16, "fully-random"), (8, "persistent"))
                      if d.get("flags", 0) & bit)
        flags = tuple(f for f in ("random", "fully-random", "persistent") if f in flags)
        addr = port = None
        family = fam if self.fam == "inet" else None
        concat = False
        amin, amax = d.get("reg_addr_min"), d.get("reg_addr_max")
        if amin:
            r = self.regs[amin]
            if isinstance(r.expr, M.MapExpr):
                addr = r.expr
                pmin = d.get("reg_proto_min")
                if pmin and pmin != amin:
                    concat = True
                    family = fam
                self.stmts.append(M.Nat(kind, family, addr, None, flags, concat))
                return
            addr = self.value_of(amin, atype)
            if amax and amax != amin:
                hi = self.value_of(amax, atype)
                addr = _range_expr(atype, addr.v, hi.v)
        pmin, pmax = d.get("reg_proto_min"), d.get("reg_proto_max")
        if pmin:
            r = self.regs[pmin]
            if isinstance(r.expr, M.MapExpr):
                port = r.expr
            else:
                port = self.value_of(pmin, T.INET_SERVICE)
                if pmax and pmax != pmin:
                    port = M.Range(port, self.value_of(pmax, T.INET_SERVICE))
        self.stmts.append(M.Nat(kind, family if addr is not None else None, addr, port,
                                flags, concat))

    def x_notrack(self, d):
        self.stmts.append(M.Notrack())

    def x_queue(self, d):
        num = d.get("num", 0)
        total = d.get("total", 1)
        flags = tuple(f for bit, f in ((1, "bypass"), (2, "fanout")) if d.get("flags", 0) & bit)
        t = T.integer(16, T.HOST)
        q = M.Range(M.Value(t, num), M.Value(t, num + total - 1)) if total > 1 else \
            M.Value(t, num)
        self.stmts.append(M.Queue(q, flags))

    def x_flow_offload(self, d):
        self.stmts.append(M.FlowOffload(d["table_name"]))

    def x_synproxy(self, d):
        fl = d.get("flags", 0)
        flags = tuple(f for bit, f in ((8, "timestamp"), (4, "sack-perm")) if fl & bit)
        self.stmts.append(M.Synproxy(d.get("mss") if fl & 1 else None,
                                     d.get("wscale") if fl & 2 else None, flags))

    def x_tproxy(self, d):
        fam = P.FAMILY_NAMES.get(d.get("family")) if d.get("family") else None
        atype = T.IPV6 if (fam or self.fam) == "ip6" else T.IPV4
        addr = self.value_of(d["reg_addr"], atype) if "reg_addr" in d else None
        port = self.value_of(d["reg_port"], T.INET_SERVICE) if "reg_port" in d else None
        self.stmts.append(M.Tproxy(fam if self.fam == "inet" else None, addr, port))

    def x_objref(self, d):
        if "set_name" in d:
            ks = self.sets.get(d["set_name"])
            left = self.concat_or_single(d["set_sreg"], ks)
            kind = ks.objtype or "counter"
            self.stmts.append(M.Objref(kind, M.MapExpr(left, self.mapping_of(ks))))
            return
        kind = OBJ_KINDS.get(d["imm_type"], "counter")
        self.stmts.append(M.Objref(kind, d["imm_name"]))

    def x_dynset(self, d):
        ks = self.sets.get(d["set_name"])
        if ks is None:
            raise DecodeError(f"dynset on unknown set {d['set_name']}")
        key = self.concat_or_single(d["sreg_key"], ks)
        inner = [d["expr"]] if "expr" in d else d.get("expressions", [])
        stmts = tuple(_stateful(x) for x in inner)
        if ks.anonymous and ks.flags & SET_EVAL:        # a meter
            size = (ks.a.get("desc") or {}).get("size")
            self.stmts.append(M.Meter(ks.name, key, stmts[0] if stmts else None,
                                      d.get("timeout"), size))
            return
        data = None
        if "sreg_data" in d:
            data = self.value_of(d["sreg_data"], ks.data_type())
        op = ("add", "update", "delete")[d.get("op", 0)]
        self.stmts.append(M.SetStmt(op, ks.name, key, d.get("timeout"), stmts, data))

    # -- helpers
    def resolve(self, r: Reg):
        left, _ = self.left_of(r)
        return left

    def expr_of(self, reg):
        return self.resolve(self.regs[reg])

    def value_of(self, reg: int, typ):
        """The value a set statement or nat writes: an immediate constant, or an
        expression (`meta mark set ct mark`)."""
        r = self.regs.get(reg)
        if r is None:
            raise DecodeError("statement reads an empty register")
        if isinstance(r.expr, tuple) and r.expr[0] == "imm":
            if isinstance(typ, tuple):
                return M.Concat(tuple(M.Value(t, _val(t, p))
                                      for t, p in zip(typ, _split(typ, r.expr[1]))))
            return M.Value(typ, _val(typ, r.expr[1]) if typ.kind != "ifindex"
                           else int.from_bytes(r.expr[1][:4], "little"))
        return self.resolve(r)

    def left_of(self, r: Reg, want=None):
        """(expression, its type) for a register, payload offsets resolved to a field."""
        if r.payload is not None and r.expr is None:
            e, typ = self.payload_field(r)
        else:
            e = r.expr
            if isinstance(e, tuple):
                raise DecodeError("a constant where an expression was expected")
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
        raise DecodeError(f"no type for {e!r}")

    def payload_field(self, r: Reg):
        base, off, length = r.payload
        desc_name = self.ctx.get(base)
        if base == P.TH and desc_name is None:
            desc_name = "th"
        if base == P.LL and desc_name not in ("ether", "vlan"):
            desc_name = None      # no iiftype/ether dependency: the link layer is unknown
        candidates = [desc_name] if desc_name else []
        if desc_name == "ether":
            candidates.append("vlan")
        for name in candidates:
            desc = P.PROTOS.get(name)
            if desc is None:
                continue
            for fname, (foff, bits, typ) in self.ordered_fields(name, desc):
                foff += desc.offset
                start, end = foff // 8, (foff + bits + 7) // 8
                if start != off:
                    continue
                if end - start == length:
                    if foff % 8 or bits % 8:
                        if r.mask is None:
                            continue
                        shift = length * 8 - (foff - start * 8) - bits
                        want = (((1 << bits) - 1) << shift).to_bytes(length, "big")
                        if bytes(r.mask) != want:
                            continue
                        r.field_mask = True
                        r.shift = shift
                    self.payload_dependency_kill(base, name)
                    need = P.ICMP_DEPS.get((name, fname))
                    if need is not None and need != "echo" and need == self.icmp_type:
                        self.kill_dep(3)
                    return M.Payload(name, fname), typ
                if length < end - start and not (foff % 8 or bits % 8) and \
                        typ.kind in ("ipv4", "ipv6", "ether", "int"):
                    r.prefix_of = (typ, end - start)
                    self.payload_dependency_kill(base, name)
                    return M.Payload(name, fname), typ
        bits = length * 8
        return M.RawPayload(base, off * 8, bits), T.xinteger(bits)

    def expand(self, payload, data: bytes):
        """payload_match_expand(): one load and compare over adjacent fields (nft merges
        them when it compiles) back into one match per field."""
        base, off, length = payload
        name = self.ctx.get(base) or ("th" if base == P.TH else "ether" if base == P.LL
                                      else None)
        desc = P.PROTOS.get(name) if name else None
        if desc is None:
            return None
        pos, end, out = off * 8, (off + length) * 8, []
        while pos < end:
            for fname, (foff, bits, typ) in desc.fields.items():
                foff += desc.offset
                if foff == pos and bits % 8 == 0 and pos + bits <= end:
                    chunk = data[(pos - off * 8) // 8:(pos - off * 8 + bits) // 8]
                    out.append((M.Payload(name, fname), self.typed(typ, chunk)))
                    pos += bits
                    break
            else:
                return None
        return out

    def ordered_fields(self, name, desc):
        """Header fields, those valid for the ICMP type already matched first (several
        ICMP fields share an offset: payload_expr_complete() picks by the type)."""
        items = list(desc.fields.items())
        if name not in ("icmp", "icmpv6") or self.icmp_type is None:
            return items
        echo = P.ICMP_ECHO[name]

        def fits(f):
            need = P.ICMP_DEPS.get((name, f))
            return need == self.icmp_type or (need == "echo" and self.icmp_type in echo)
        return [x for x in items if fits(x[0])] + [x for x in items if not fits(x[0])]

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

    def typed(self, typ, data: bytes, hton=False):
        if hton and typ.order == T.HOST:
            data = data[::-1]
        if typ.kind == "bitmask":
            return M.Value(typ, int.from_bytes(data[:typ.size], typ.order))
        return M.Value(typ, _val(typ, data))

    def match_value(self, r: Reg, op, data: bytes):
        left, typ = self.left_of(r) if r.expr is not None or r.payload is not None else (
            None, None)
        if left is None:
            raise DecodeError("cmp on a constant")
        if r.payload is not None and r.expr is None and r.mask is None and \
                isinstance(left, M.RawPayload):
            parts = self.expand(r.payload, data)
            if parts:
                for field, value in parts:
                    self.payload_dependency_kill(r.payload[0], field.proto)
                    self.add_match(M.Match(field, op, value))
                return
        prefix = r.prefix_of
        if prefix is not None:         # a shorter load: a byte-aligned prefix
            ftyp, full = prefix
            v = int.from_bytes(data.ljust(full, b"\0")[:full], "big")
            self.add_match(M.Match(left, op, M.Prefix(M.Value(ftyp, v), len(data) * 8)))
            return
        if r.field_mask:
            v = int.from_bytes(data, "big") >> r.shift
            right = M.Value(typ, v)
            if typ.kind == "bitmask" and op == "":
                right = M.Flags(typ, v)
            self.add_match(M.Match(left, op, right))
            return
        if isinstance(left, M.Binop) and left.op == "&" and r.mask is not None:
            m = left.right
            z = int.from_bytes(data, "big") == 0
            mval = int.from_bytes(r.mask, typ.order)
            if typ.name in T.PREFIX_TYPES and _is_prefix_mask(mval, len(r.mask) * 8) and \
                    not isinstance(left.left, M.Binop) and mval:
                plen = bin(mval).count("1")
                self.add_match(M.Match(left.left, op, M.Prefix(self.typed(typ, data), plen)))
                return
            if typ.kind == "bitmask" and op == "!=" and z:
                self.add_match(M.Match(left.left, "", M.Flags(typ, m.v)))
                return
            right = self.typed(typ, data, r.hton)
            if typ.kind == "bitmask":
                right = M.Flags(typ, right.v)
            self.add_match(M.Match(left, op or "==", right))
            return
        if isinstance(left, M.Binop):
            right = self.typed(typ, data, r.hton)
            self.add_match(M.Match(left, op or "==", right))
            return
        if typ.kind in ("ipv4", "ipv6") and len(data) < typ.size:
            # a compare on the first bytes only: a byte-aligned prefix
            v = int.from_bytes(data.ljust(typ.size, b"\0"), "big")
            self.add_match(M.Match(left, op, M.Prefix(M.Value(typ, v), len(data) * 8)))
            return
        if typ.kind == "str" and len(data) < typ.size and not data.endswith(b"\0"):
            self.add_match(M.Match(left, op, M.Value(typ, data.decode(errors="replace") + "*")))
            return
        if typ.kind == "ifindex":
            idx = int.from_bytes(data[:4], "little")
            self.add_match(M.Match(left, op, M.Value(typ, _ifname(idx))))
            return
        right = self.typed(typ, data, r.hton)
        if typ.kind == "bitmask" and op in ("", "=="):
            right = M.Flags(typ, right.v)
            op = "=="
        self.add_match(M.Match(left, op, right))

    def add_match(self, m: M.Match):
        left = m.left
        prev = self.stmts[-1] if self.stmts else None
        if m.op == "<=" and isinstance(prev, M.Match) and prev.op == ">=" and \
                prev.left == left and isinstance(m.right, M.Value):
            # cmp gte + cmp lte on one register: a range (nft's range_expr merge)
            self.stmts[-1] = M.Match(left, "", M.Range(prev.right, m.right))
            return
        idx = len(self.stmts)
        self.stmts.append(m)
        if m.op == "" and isinstance(m.right, M.Value) and isinstance(m.right.v, int):
            self.store_dep(left, m.right.v, idx)
            if isinstance(left, M.Payload) and left.proto in ("icmp", "icmpv6") and \
                    left.field == "type":
                # payload_dependency_store_icmp_type(): echo types are never implied
                v = 8 if left.proto == "icmp" and m.right.v == 0 else m.right.v
                self.icmp_type = v
                if v not in P.ICMP_ECHO[left.proto]:
                    self.deps[3] = (idx, left)

    def store_dep(self, left, value, idx):
        """A match on a protocol key tells which header comes next
        (relational_expr_pctx_update + payload_dependency_store)."""
        if isinstance(left, M.Meta) and left.key == "l4proto" and P.NH in self.deps:
            self.meta_dependency_kill(value)
        if isinstance(left, M.Meta):
            if left.key == "iiftype" and value == 1:
                self.ctx[P.LL] = "ether"
                self.deps[P.LL] = (idx, left)
                return
            for pname in ("inet", "netdev", "inet-service"):
                d = P.PROTOS[pname]
                if d.key == f"meta {left.key}":
                    for upper, num in d.links.items():
                        if num == value:
                            b = P.PROTOS[upper].base
                            self.ctx[b] = upper
                            self.deps[b] = (idx, left)
                            return
        elif isinstance(left, M.Payload):
            d = P.PROTOS[left.proto]
            if (d.key == left.field) or (left.proto in ("ip", "ip6") and left.field in (
                    "protocol", "nexthdr")):
                links = d.links if d.key == left.field else P.PROTOS[left.proto].links
                for upper, num in links.items():
                    if num == value:
                        b = P.PROTOS[upper].base
                        self.ctx[b] = upper
                        self.deps[b] = (idx, left)
                        return

    def payload_dependency_kill(self, base, proto):
        """payload_may_dependency_kill() of nft's payload.c: a payload of the next header
        makes the protocol match before it redundant, with its exceptions."""
        dep = self.deps.get(base)
        if dep is None:
            return
        idx, left = dep
        if self.fam in ("bridge", "netdev", "inet"):
            if isinstance(left, M.Payload) and P.PROTOS[left.proto].base == P.NH and \
                    left.proto in ("ip", "ip6") and base == P.TH:
                return
            if isinstance(left, M.Payload) and P.PROTOS[left.proto].base == base:
                if base == P.LL:
                    m = self.stmts[idx]
                    if left.proto == "vlan" or not (left.proto == "ether" and
                                                    m.right.v == 0x8100):
                        return
        self.stmts[idx] = None
        del self.deps[base]

    def meta_dependency_kill(self, l4proto: int):
        """meta_may_dependency_kill(): `meta nfproto ipv4 meta l4proto icmp` is icmp."""
        idx, left = self.deps[P.NH]
        m = self.stmts[idx]
        nfproto = None
        if isinstance(left, M.Meta) and left.key == "nfproto":
            nfproto = m.right.v
        elif (isinstance(left, M.Meta) and left.key == "protocol") or (
                isinstance(left, M.Payload) and left.proto == "ether" and left.field == "type"):
            nfproto = {0x0800: 2, 0x86dd: 10}.get(m.right.v, 0)
        else:
            self.kill_dep(P.NH)
            return
        if self.fam in ("ip", "ip6"):
            kill = P.FAMILIES[self.fam] == nfproto
        else:
            kill = (l4proto, nfproto) in ((1, 2), (58, 10))
        if kill:
            self.kill_dep(P.NH)

    def kill_dep(self, base):
        dep = self.deps.pop(base, None)
        if dep is not None:
            self.stmts[dep[0]] = None


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


def rule(family: str, a: dict, sets: dict) -> M.Rule:
    try:
        stmts = RuleDecoder(family, sets).decode(a.get("expressions", []))
    except DecodeError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        # expressions in an order or shape nft never makes
        raise DecodeError(f"rule in {family} {a.get('table')} {a.get('chain')}: "
                          f"unexpected expressions ({type(e).__name__}: {e})") from None
    comment = _comment(a.get("userdata"))
    tag = None
    if comment is not None:
        from .parser import TAG_RE
        m = TAG_RE.match(comment)
        if m:
            tag, comment = m.group(1), m.group(2)
    return M.Rule(stmts, comment, tag, handle=a.get("handle"))
