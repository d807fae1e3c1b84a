"""Ruleset model -> canonical nft text, exactly as `nft list ruleset` prints it (nftables
src/rule.c table_print/chain_print/set_print/obj_print, src/statement.c *_stmt_print,
src/expression.c *_expr_print), so `linx nft pull` can be compared with nft byte for byte and
`linx nft fmt` writes what nft would show. Elements print sorted the way nft sorts them
(src/mergesort.c); comments, blank lines and symbolic spellings (`ssh`) are not kept.
"""
from . import model as M
from . import proto as P
from . import types as T

BYTE_UNITS = ("bytes", "kbytes", "mbytes")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def format_ruleset(rs: M.Ruleset) -> str:
    out = []
    if rs.flush:
        out.append("flush ruleset\n")
    for fam, name in rs.deleted:
        out.append(f"destroy table {fam} {name}\n")
    for t in rs.tables.values():
        out.append(format_table(t))
    return "".join(out)


def format_table(t: M.Table) -> str:
    lines = [f"table {t.family} {t.name} {{"]
    if "owner" in t.flags:
        lines[0] += f" # progname {t.progname or 'linx'}"
    blocks = []
    head = []
    flags = [f for f in ("dormant", "owner", "persist") if f in t.flags]
    if flags:
        head.append("\tflags " + ",".join(flags))
    if t.comment is not None:
        head.append(f'\tcomment "{t.comment}"')
    for o in t.objects.values():
        blocks.append(format_object(o))
    for s in t.sets.values():
        if s.kind != "meter":
            blocks.append(format_set(s, t.family))
    for ft in t.flowtables.values():
        blocks.append(format_flowtable(ft))
    for c in t.chains.values():
        blocks.append(format_chain(c, t.family))
    # nft puts a blank line after the flags line but not after the comment line.
    body = "\n".join(head)
    if head:
        body += "\n\n" if flags and blocks else "\n"
    body += "\n".join(blocks)
    if body and not body.endswith("\n"):
        body += "\n"
    return lines[0] + "\n" + body + "}\n"


def format_chain(c: M.Chain, family: str) -> str:
    s = f"\tchain {c.name} {{"
    if c.comment is not None:
        s += f'\n\t\tcomment "{c.comment}"'
    s += "\n"
    if c.hook is not None:
        s += f"\t\ttype {c.type} hook {c.hook}"
        if len(c.devices) == 1:
            s += f' device "{c.devices[0]}"'
        elif c.devices:
            s += " devices = { " + ", ".join(c.devices) + " }"
        s += f" priority {P.prio_format(c.priority, family, c.hook)};"
        s += f" policy {c.policy or 'accept'};"
        if c.offload:
            s += " flags offload;"
        s += "\n"
    if not c.rules:
        return s + "\t}\n"
    # one join: appending to a growing string copies it for each of 10,000 rules
    rules = "\n\t\t".join([format_rule(r, family) for r in c.rules])
    return f"{s}\t\t{rules}\n\t}}\n"


def format_rule(r: M.Rule, family: str = "inet") -> str:
    text = " ".join([fmt_stmt(s, family) for s in r.stmts])
    comment = r.comment
    if r.tag is not None:
        comment = f"tag:{r.tag}" + (f" {comment}" if comment else "")
    if comment is not None:
        text += f' comment "{comment}"'
    return text


# ---------------------------------------------------------------- sets

def format_set(s: M.Set, family: str) -> str:
    out = [f"\t{s.kind} {s.name} {{", "\t\t" + set_type_text(s)]
    if "constant" not in s.flags:
        if s.policy not in (None, "performance"):
            out.append(f"\t\tpolicy {s.policy}")
        if s.size:
            out.append(f"\t\tsize {s.size}")
    # nft leaves the line out when timeout is the only flag and a default timeout is set,
    # but prints every flag when it prints the line.
    flags = [f for f in ("constant", "dynamic", "interval", "timeout") if f in s.flags]
    if [f for f in flags if not (f == "timeout" and s.timeout)]:
        out.append("\t\tflags " + ",".join(flags))
    if s.counter:
        out.append("\t\tcounter")
    if s.auto_merge:
        out.append("\t\tauto-merge")
    if s.timeout:
        out.append(f"\t\ttimeout {T.format_time(s.timeout)}")
    if s.gc_interval:
        out.append(f"\t\tgc-interval {T.format_time(s.gc_interval)}")
    if s.comment is not None:
        out.append(f'\t\tcomment "{s.comment}"')
    if s.elements:
        key = s.key[0] if len(s.key) == 1 else None
        out.append("\t\telements = " + fmt_elements(s.elements, key, named=True,
                                                    family=family))
    out.append("\t}")
    return "\n".join(out) + "\n"


def set_type_text(s: M.Set) -> str:
    text = "type " + " . ".join(t.name for t in s.key)
    if s.kind == "map":
        if s.objtype:
            text += f" : {s.objtype}"
        elif s.data == "verdict":
            text += " : verdict"
        elif isinstance(s.data, tuple):
            text += " : " + " . ".join(t.name for t in s.data)
        elif s.data is not None:
            text += f" : {s.data.name}"
    return text


_SHORT = {"nf_proto", "integer", "arp_op", "inet_proto", "inet_service", "tcp_flag",
          "dccp_pkttype", "mark", "iface_index", "classid", "uid", "gid", "ct_dir"}
_PAIRS = {"ipv4_addr", "ct_state", "ct_status", "pkt_type"}


def fmt_elements(elems, key_type, named=False, family="inet") -> str:
    """`{ a, b }`; a named set wraps lines the way nft's calculate_delim() does."""
    wrap, per_line = ",\n\t\t\t     ", 1
    if not named:
        per_line = 0
    elif key_type is not None and key_type.name in _SHORT:
        per_line = 5
    elif key_type is not None and key_type.name in _PAIRS:
        per_line = 2
    texts = _plain_texts(elems)
    if texts is None:
        texts = [fmt_elem(e, family) for e in sorted(elems, key=elem_sort_key)]
    if per_line:
        return "{ " + wrap.join([", ".join(texts[i:i + per_line])
                                 for i in range(0, len(texts), per_line)]) + " }"
    return "{ " + ", ".join(texts) + " }"


def _plain_texts(elems):
    """The texts, in order, of elements that are all integer values of one type (a big
    set of addresses or ports), sorted by value as elem_sort_key would and formatted as
    fmt_expr would, without their calls per element; None for any other elements."""
    if not elems or type(elems[0]) is not M.Value:
        return None
    t, value = elems[0].type, M.Value
    if t.kind == "verdict":
        return None
    for e in elems:
        if type(e) is not value or e.type is not t or type(e.v) is not int:
            return None
    fmt = t.format
    return [fmt(v) for v in sorted([e.v for e in elems])]


def fmt_elem(e, family="inet") -> str:
    if isinstance(e, M.Mapping):
        return f"{fmt_elem(e.key, family)} : {fmt_expr(e.data, family)}"
    if isinstance(e, M.Elem):
        s = fmt_expr(e.key, family)
        for st in e.stmts:
            s += " " + fmt_stmt(st, family)
        if e.timeout:
            s += f" timeout {T.format_time(e.timeout)}"
        if e.expires:
            s += f" expires {T.format_time(e.expires)}"
        if e.comment is not None:
            s += f' comment "{e.comment}"'
        return s
    return fmt_expr(e, family)


def elem_sort_key(e):
    """expr_msort_value() of nftables src/mergesort.c."""
    while isinstance(e, (M.Mapping, M.Elem)):
        e = e.key
    if isinstance(e, M.Catchall):
        return 1 << 4096
    if isinstance(e, M.Concat):
        data = b"".join(_sort_bytes(x) for x in e.items)
        return int.from_bytes(data, "little")
    return _sort_num(e)


def _sort_num(e):
    if isinstance(e, M.Range):
        return _sort_num(e.lo)
    if isinstance(e, M.Prefix):
        return _sort_num(e.value)
    if isinstance(e, (M.Value, M.Flags)):
        if isinstance(e.v, str):
            return int.from_bytes(e.v.encode(), "little")
        if isinstance(e.v, int):
            return e.v
    return 0


def _sort_bytes(e):
    if isinstance(e, M.Range):
        e = e.lo
    if isinstance(e, M.Prefix):
        e = e.value
    t = e.type
    if isinstance(e.v, str):
        n = t.size if t.bits else len(e.v) + 1
        return e.v.encode().ljust(n, b"\0")[:n]
    return e.v.to_bytes(t.size, t.order)


# ---------------------------------------------------------------- objects, flowtables

def get_rate(n: int):
    if not n:
        return 0, "bytes"
    unit = 0
    while unit < 2 and n % 1024 == 0:
        n //= 1024
        unit += 1
    return n, BYTE_UNITS[unit]


def format_object(o: M.Obj) -> str:
    s = f"\t{o.kind} {o.name} {{"
    if o.comment is not None:
        s += f'\n\t\tcomment "{o.comment}"'
    sp = o.spec
    if o.kind == "counter":
        s += f"\n\t\tpackets {sp.get('packets', 0)} bytes {sp.get('bytes', 0)}\n"
    elif o.kind == "quota":
        n, unit = get_rate(sp["bytes"])
        s += f"\n\t\t{'over ' if sp.get('over') else ''}{n} {unit}"
        if sp.get("used"):
            n, unit = get_rate(sp["used"])
            s += f" used {n} {unit}"
        s += "\n"
    elif o.kind == "limit":
        s += "\n\t\t" + _limit_text(sp["rate"], sp["unit"], sp.get("burst"), sp.get("bytes"),
                                    sp.get("over")) + "\n"
    elif o.kind == "ct helper":
        s += f"\n\t\ttype \"{sp['type']}\" protocol {sp['protocol']}\n"
        s += f"\t\tl3proto {sp.get('l3proto', 'ip')}\n"
    elif o.kind == "synproxy":
        if "mss" in sp:
            s += f"\n\t\tmss {sp['mss']}"
        if "wscale" in sp:
            s += f"\n\t\twscale {sp['wscale']}"
        fl = sp.get("flags", ())
        if fl:
            s += "\n\t\t" + (" timestamp" if "timestamp" in fl else "").strip() + (
                " sack-perm" if "sack-perm" in fl else "")
        s += "\n"
    return s + "\t}\n"


def format_flowtable(ft: M.Flowtable) -> str:
    s = f"\tflowtable {ft.name} {{\n"
    s += f"\t\thook {ft.hook} priority {P.prio_format(ft.priority, 'netdev', ft.hook)}\n"
    if ft.devices:
        s += "\t\tdevices = { " + ", ".join(ft.devices) + " }\n"
    if ft.offload:
        s += "\t\tflags offload\n"
    if ft.counter:
        s += "\t\tcounter\n"
    return s + "\t}\n"


# ---------------------------------------------------------------- statements

def _limit_text(rate, unit, burst, is_bytes, over) -> str:
    o = "over " if over else ""
    if not is_bytes:
        s = f"rate {o}{rate}/{unit}"
        if burst and burst != 5:
            s += f" burst {burst} packets"
        return s
    n, u = get_rate(rate)
    s = f"rate {o}{n} {u}/{unit}"
    if burst:
        n, u = get_rate(burst)
        s += f" burst {n} {u}"
    return s


def fmt_stmt(s, family="inet", stateless=False) -> str:
    k = type(s)
    if k is M.Match:
        return fmt_match(s, family)
    if k is M.VerdictStmt:
        return fmt_verdict(s.verdict)
    if k is M.Counter:
        if stateless or s.packets is None:
            return "counter"
        return f"counter packets {s.packets} bytes {s.bytes}"
    if k is M.Vmap:
        return f"{fmt_expr(s.key, family)} vmap {fmt_mapping(s.mapping, family)}"
    if k is M.Log:
        t = "log"
        if s.prefix is not None:
            t += f' prefix "{s.prefix}"'
        if s.group is not None:
            t += f" group {s.group}"
        if s.snaplen is not None:
            t += f" snaplen {s.snaplen}"
        if s.qthreshold is not None:
            t += f" queue-threshold {s.qthreshold}"
        if s.level is not None and s.level != "warn":
            t += f" level {s.level}"
        fl = s.flags
        if "all" in fl:
            t += " flags all"
        else:
            if "tcp sequence" in fl or "tcp options" in fl:
                t += " flags tcp " + ",".join(x[4:] for x in ("tcp sequence", "tcp options")
                                             if x in fl)
            if "ip options" in fl:
                t += " flags ip options"
            if "skuid" in fl:
                t += " flags skuid"
            if "ether" in fl:
                t += " flags ether"
        return t
    if k is M.Limit:
        return "limit " + _limit_text(s.rate, s.unit, s.burst, s.bytes, s.over)
    if k is M.Quota:
        n, u = get_rate(s.bytes)
        t = f"quota {'over ' if s.over else ''}{n} {u}"
        if s.used and not stateless:
            n, u = get_rate(s.used)
            t += f" used {n} {u}"
        return t
    if k is M.Reject:
        if s.kind is None:
            return "reject"
        if s.kind == "tcp reset":
            return "reject with tcp reset"
        return f"reject with {s.kind} {fmt_expr(s.code, family)}"
    if k is M.Nat:
        return fmt_nat(s, family)
    if k is M.MetaSet:
        key = s.key if s.key in P.META_UNQUALIFIED else f"meta {s.key}"
        return f"{key} set {fmt_expr(s.expr, family)}"
    if k is M.CtSet:
        d = f"{s.dir} " if s.dir else ""
        return f"ct {d}{s.key} set {fmt_expr(s.expr, family)}"
    if k is M.Notrack:
        return "notrack"
    if k is M.SetStmt:
        t = f"{s.op} @{s.set} {{ {fmt_expr(s.key, family)}"
        if s.timeout:
            t += f" timeout {T.format_time(s.timeout)}"
        for x in s.stmts:
            t += " " + fmt_stmt(x, family, stateless=True)
        if s.data is not None:
            t += f" : {fmt_expr(s.data, family)}"
        return t + " }"
    if k is M.Meter:
        t = f"meter {s.name} size {s.size or 65535} {{ {fmt_expr(s.key, family)}"
        if s.timeout:
            t += f" timeout {T.format_time(s.timeout)}"
        return t + f" {fmt_stmt(s.stmt, family, stateless=True)} }}"
    if k is M.Queue:
        t = "queue"
        d = " flags "
        for f in ("bypass", "fanout"):
            if f in s.flags:
                t += d + f
                d = ","
        return t + " to " + (fmt_expr(s.num, family) if s.num is not None else "0")
    if k is M.FlowOffload:
        return f"flow add @{s.flowtable}"
    if k is M.Synproxy:
        t = "synproxy"
        if s.mss is not None:
            t += f" mss {s.mss}"
        if s.wscale is not None:
            t += f" wscale {s.wscale}"
        for f in s.flags:
            t += f" {f}"
        return t
    if k is M.Tproxy:
        t = "tproxy"
        if s.family is not None and family == "inet":
            t += f" {s.family}"
        t += " to"
        if s.addr is not None:
            a = fmt_expr(s.addr, family)
            t += f" [{a}]" if s.addr.type.kind == "ipv6" and s.port is not None else f" {a}"
        if s.port is not None:
            t += ("" if s.addr is not None else " ") + ":" + fmt_expr(s.port, family)
        return t
    if k is M.Objref:
        if s.kind.startswith("ct "):
            return f"{s.kind} set {fmt_name(s.name, family)}"
        return f"{s.kind} name {fmt_name(s.name, family)}"
    raise ValueError(f"cannot format {s!r}")


def fmt_name(name, family) -> str:
    if isinstance(name, str):
        return f'"{name}"'
    return fmt_expr(name, family)


def fmt_nat(s, family) -> str:
    t = s.kind
    if s.addr is not None or s.port is not None:
        if s.family is not None:
            t += f" {s.family}"
        t += " to"
    if s.addr is not None:
        a = s.addr
        if s.port is not None and isinstance(a, M.Value) and a.type.kind == "ipv6":
            t += f" [{fmt_expr(a, family)}]"
        elif s.port is not None and isinstance(a, M.Range) and a.lo.type.kind == "ipv6":
            t += f" [{fmt_expr(a.lo, family)}]-[{fmt_expr(a.hi, family)}]"
        else:
            t += " " + fmt_expr(a, family)
    if s.port is not None:
        if s.addr is None:
            t += " "
        t += ":" + fmt_expr(s.port, family)
    d = " "
    for f in ("random", "fully-random", "persistent"):
        if f in s.flags:
            t += d + f
            d = ","
    return t


def fmt_verdict(v: M.Verdict) -> str:
    if v.kind in ("jump", "goto"):
        return f"{v.kind} {v.chain}"
    return v.kind


def fmt_match(s: M.Match, family) -> str:
    left, right = s.left, s.right
    if (isinstance(left, M.Binop) and left.op == "&" and isinstance(left.right, M.Flags)
            and isinstance(right, M.Flags) and s.op in ("==", "", "!=")):
        op = "!= " if s.op == "!=" else ""
        return f"{fmt_expr(left.left, family)} {op}{fmt_expr(right, family)} / " \
               f"{fmt_expr(left.right, family)}"
    lt = fmt_expr(left, family)
    rt = fmt_expr(right, family)
    if s.op:
        return f"{lt} {s.op} {rt}"
    return f"{lt} {rt}"


_PREC = {"<<": 1, ">>": 1, "&": 2, "^": 3, "|": 4}


def fmt_expr(e, family="inet") -> str:
    k = type(e)
    if k is M.Value:
        if e.type.kind == "verdict":
            return fmt_verdict(e.v)
        if e.type.kind == "str" and isinstance(e.v, str) and e.v.endswith("*"):
            return f'"{e.v}"'
        return e.type.format(e.v)
    if k is M.Flags:
        return e.type.format_flags(e.v)
    if k is M.Payload:
        return f"{e.proto} {e.field}"
    if k is M.Meta:
        return e.key if e.key in P.META_UNQUALIFIED else f"meta {e.key}"
    if k is M.Ct:
        t = "ct "
        if e.dir:
            t += f"{e.dir} "
            if e.family and e.key in ("saddr", "daddr"):
                t += f"{e.family} "
        return t + e.key
    if k is M.Concat:
        return " . ".join(fmt_expr(x, family) for x in e.items)
    if k is M.Prefix:
        return f"{fmt_expr(e.value, family)}/{e.plen}"
    if k is M.Range:
        return f"{fmt_expr(e.lo, family)}-{fmt_expr(e.hi, family)}"
    if k is M.SetLit:
        return fmt_elements(e.elems, None)
    if k is M.SetRef:
        return f"@{e.name}"
    if k is M.MapExpr:
        return f"{fmt_expr(e.key, family)} map {fmt_mapping(e.mapping, family)}"
    if k is M.Binop:
        lt = fmt_expr(e.left, family)
        if isinstance(e.left, M.Binop) and _PREC[e.op] < _PREC[e.left.op]:
            lt = f"({lt})"
        return f"{lt} {e.op} {fmt_expr(e.right, family)}"
    if k is M.Fib:
        flags = [f for f in e.flags if f != "present"]
        return "fib " + " . ".join(flags) + f" {e.result}"
    if k is M.Verdict:
        return fmt_verdict(e)
    if k is M.Catchall:
        return "*"
    if k is M.RawPayload:
        return f"@{('ll', 'nh', 'th')[e.base]},{e.offset},{e.bits}"
    if k is M.Numgen:
        t = f"numgen {e.mode} mod {e.mod}"
        return t + (f" offset {e.offset}" if e.offset else "")
    if k is M.Hash:
        if e.kind == "symhash":
            t = f"symhash mod {e.mod}"
        else:
            t = f"jhash {fmt_expr(e.expr, family)} mod {e.mod}"
            if e.seed:
                t += f" seed 0x{e.seed:x}"
        return t + (f" offset {e.offset}" if e.offset else "")
    if k is M.Elem or k is M.Mapping:
        return fmt_elem(e, family)
    raise ValueError(f"cannot format {e!r}")


def fmt_mapping(m, family) -> str:
    if isinstance(m, M.SetRef):
        return f"@{m.name}"
    return fmt_elements(m.elems, None, family=family)


def to_json(rs: M.Ruleset) -> dict:
    """A JSON document of a ruleset: stable keys, rules and elements as nft text."""
    tables = []
    for t in rs.tables.values():
        tables.append({
            "family": t.family, "name": t.name, "flags": list(t.flags), "comment": t.comment,
            "objects": [{"kind": o.kind, "name": o.name, **o.spec} for o in t.objects.values()],
            "sets": [{"kind": s.kind, "name": s.name, "type": set_type_text(s)[5:],
                      "flags": list(s.flags), "elements": [fmt_elem(e, t.family) for e in
                                                           sorted(s.elements,
                                                                  key=elem_sort_key)]}
                     for s in t.sets.values() if s.kind != "meter"],
            "chains": [{"name": c.name, "type": c.type, "hook": c.hook,
                        "priority": c.priority, "policy": c.policy,
                        "devices": list(c.devices),
                        "rules": [{"rule": " ".join(fmt_stmt(s, t.family) for s in r.stmts),
                                   "comment": r.comment, "tag": r.tag, "handle": r.handle}
                                  for r in c.rules]}
                       for c in t.chains.values()],
        })
    return {"tables": tables}
