"""nft text -> ruleset model: a recursive-descent parser over tokenizer tokens, one method
per construct, after the grammar of nftables' src/parser_bison.y (the slice linx supports).

A file is a list of commands (`flush ruleset`, `table ... { }`, `add rule ...`, `delete
table ...`); they are applied in order to one Ruleset value, as nft applies them to its
cache, so the result is what the kernel would hold. `include` and `define`/`$var` are
resolved while tokens are read. Values are typed by what they are compared with, so a
symbol (`ssh`, `established`, `eth0`) becomes its value here, and a bad one is reported at
its file:line:col.

Rule tags (linx's stable rule identity, see README "Rule tags") are written in the rule's
comment: `comment "tag:NAME"` or `comment "tag:NAME rest of the comment"`.
"""
import glob
import os
import re

from . import bulk, model as M
from . import proto as P
from . import types as T
from .location import NftError, Source
from .tokenizer import tokenize

TAG_RE = re.compile(r"tag:([A-Za-z_][A-Za-z0-9_.-]*)(?: (.*))?\Z", re.S)
VERDICTS = ("accept", "drop", "continue", "return", "jump", "goto", "queue")
OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", ">": ">",
       "gt": ">", "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}
BINOPS = {"&": "&", "and": "&", "|": "|", "or": "|", "^": "^", "xor": "^", "<<": "<<",
          "lshift": "<<", ">>": ">>", "rshift": ">>"}
TIME_UNITS = ("second", "minute", "hour", "day", "week")
BYTE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 ** 2, "gbytes": 1024 ** 3}
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit")
LOG_FLAGS = ("tcp sequence", "tcp options", "ip options", "skuid", "ether", "all")
SET_FLAGS = ("constant", "interval", "timeout", "dynamic")
OBJ_KINDS = ("counter", "quota", "limit")
CT_OBJ_KINDS = ("helper", "timeout", "expectation")
PROTO_WORDS = frozenset(("ether", "vlan", "arp", "ip", "ip6", "icmp", "icmpv6", "tcp", "udp",
                         "udplite", "sctp", "dccp", "th", "esp", "ah", "comp"))
UNSUPPORTED = {
    "osf": "osf (OS fingerprint) matches", "exthdr": "IPv6 extension header matches",
    "hbh": "IPv6 extension header matches", "rt": "routing header / rt expressions",
    "rt0": "IPv6 extension header matches", "rt2": "IPv6 extension header matches",
    "srh": "IPv6 extension header matches", "frag": "IPv6 extension header matches",
    "dst": "IPv6 extension header matches", "mh": "IPv6 extension header matches",
    "ipsec": "ipsec matches", "socket": "socket matches", "igmp": "igmp matches",
    "secmark": "secmark (this kernel has no secmark support)", "xt": "xt (iptables) statements",
    "tunnel": "tunnel matches", "inner": "inner header matches", "cgroupv2": "cgroupv2 matches",
    "last": "last statements", "connlimit": "connlimit", "gre": "gre matches",
    "vxlan": "vxlan matches", "geneve": "geneve matches",
}


class Parser:
    def __init__(self, tokens, ruleset=None):
        self.toks = tokens
        self.i = 0
        self.rs = ruleset if ruleset is not None else M.Ruleset()
        self.family = None          # family of the table being parsed (for ct saddr)
        self.table = None

    # ------------------------------------------------------------ token helpers
    def peek(self, k=0):
        return self.toks[self.i + k]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, *values) -> bool:
        t = self.toks[self.i]
        return t[0] in ("w", ";", "eof") and t[1] in values or (
            t[0] not in ("w", "n", "q", "a", "$", "@") and t[0] in values)

    def at_word(self, *words) -> bool:
        t = self.toks[self.i]
        return t[0] == "w" and t[1] in words

    def accept(self, *values):
        if self.at(*values):
            return self.next()
        return None

    def loc(self, t=None):
        """Where a construct starts: its first token (location.as_loc makes the Loc)."""
        return t if t is not None else self.toks[self.i]

    def error(self, message, t=None):
        t = t if t is not None else self.toks[self.i]
        width = len(str(t[1])) if t[0] in ("w", "n") else 1
        return NftError(self.loc(t), message, width)

    def describe(self, t) -> str:
        kind, value = t[0], t[1]
        if kind == "eof":
            return "end of file"
        if kind == ";":
            return "end of statement"
        if kind == "q":
            return f'"{value}"'
        if kind == "@":
            return f"@{value}"
        return f"'{value}'"

    def expect(self, value, what=None):
        t = self.toks[self.i]
        if (t[0] == value and t[0] not in ("w", "n", "q")) or (t[0] == "w" and t[1] == value):
            self.i += 1
            return t
        raise self.error(f"unexpected {self.describe(t)}, expected {what or repr(value)}")

    def word(self, what="a name"):
        t = self.toks[self.i]
        if t[0] == "w":
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def name(self, what="a name"):
        """Identifiers; nft also takes quoted strings as names."""
        t = self.toks[self.i]
        if t[0] in ("w", "q"):
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def number(self, what="a number"):
        t = self.toks[self.i]
        if t[0] == "n":
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def string(self, what="a quoted string"):
        t = self.toks[self.i]
        if t[0] in ("q", "w"):
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def end_of_stmt(self) -> bool:
        return self.toks[self.i][0] in (";", "}", "eof")

    def skip_seps(self):
        while self.toks[self.i][0] == ";":
            self.i += 1

    def end_item(self):
        t = self.toks[self.i]
        if t[0] == ";":
            self.i += 1
        elif t[0] not in ("}", "eof"):
            raise self.error(f"unexpected {self.describe(t)}, expected end of statement")

    # ------------------------------------------------------------ commands
    def parse_file(self) -> M.Ruleset:
        while True:
            self.skip_seps()
            if self.peek()[0] == "eof":
                return self.rs
            self.command()
            self.end_item()

    def family_opt(self) -> str:
        if self.at_word(*P.FAMILIES) and self.peek(1)[0] in ("w", "q"):
            return self.next()[1]
        return "ip"

    def command(self):
        t = self.peek()
        if t[0] != "w":
            raise self.error(f"unexpected {self.describe(t)}, expected a command "
                             "(table, add, delete, flush, ...)")
        verb = t[1]
        if verb in ("add", "create", "insert", "delete", "destroy", "flush"):
            self.next()
        else:
            verb = "add"
        what_t = self.peek()
        what = what_t[1] if what_t[0] == "w" else None
        if verb == "flush" and what == "ruleset":
            self.next()
            fam = self.next()[1] if self.at_word(*P.FAMILIES) else None
            if fam is None:
                self.rs.flush = True
                self.rs.deleted.clear()
                self.rs.tables.clear()
            else:
                for key in [k for k in self.rs.tables if k[0] == fam]:
                    del self.rs.tables[key]
            return
        if what in ("list", "reset", "monitor", "rename", "replace", "export", "import",
                    "describe", "get") and verb == "add":
            raise self.error(f"'{what}' is not a ruleset command; linx reads rulesets only")
        if what == "table":
            self.next()
            return self.cmd_table(verb, what_t)
        if what == "chain":
            self.next()
            return self.cmd_chain(verb, what_t)
        if what == "rule":
            self.next()
            return self.cmd_rule(verb, what_t)
        if what in ("set", "map"):
            self.next()
            return self.cmd_set(verb, what, what_t)
        if what == "element":
            self.next()
            return self.cmd_element(verb, what_t)
        if what in OBJ_KINDS or what in ("flowtable", "synproxy") or (
                what == "ct" and self.peek(1)[0] == "w" and self.peek(1)[1] in CT_OBJ_KINDS):
            self.next()
            return self.cmd_object(verb, what, what_t)
        if what == "include" and verb == "add":
            raise self.error("include: could not be resolved")
        raise self.error(f"unexpected {self.describe(what_t)}, expected table, chain, rule, "
                         "set, map, element, counter, quota, limit, ct, flowtable")

    def get_table(self, fam, name, t):
        tbl = self.rs.tables.get((fam, name))
        if tbl is None:
            raise self.error(f"table {fam} {name} is not defined in this file "
                             "(linx applies whole files; declare it first)", t)
        return tbl

    def cmd_table(self, verb, t):
        fam = self.family_opt()
        name_t = self.peek()
        name = self.name("a table name")
        key = (fam, name)
        if verb in ("delete", "destroy"):
            if key in self.rs.tables:
                del self.rs.tables[key]
            if key not in self.rs.deleted:
                self.rs.deleted.append(key)
            return
        if verb == "flush":
            tbl = self.get_table(fam, name, name_t)
            for c in tbl.chains.values():
                c.rules.clear()
            for s in tbl.sets.values():
                s.elements.clear()
            return
        if verb == "create" and key in self.rs.tables:
            raise self.error(f"table {fam} {name} exists already (create)", name_t)
        tbl = self.rs.tables.get(key)
        if tbl is None:
            tbl = self.rs.tables[key] = M.Table(fam, name, loc=self.loc(name_t))
        if self.accept("{"):
            self.table_body(tbl)

    def with_table(self, tbl):
        self.table, self.family = tbl, tbl.family

    def table_body(self, tbl):
        self.with_table(tbl)
        while True:
            self.skip_seps()
            t = self.peek()
            if t[0] == "}":
                self.next()
                return
            if t[0] != "w":
                raise self.error(f"unexpected {self.describe(t)}, expected chain, set, map, "
                                 "flowtable, counter, quota, limit, ct, flags or comment")
            w = t[1]
            self.next()
            if w == "chain":
                self.chain_decl(tbl, "add", t)
            elif w in ("set", "map"):
                self.set_decl(tbl, w, "add", t)
            elif w in OBJ_KINDS or w in ("flowtable", "synproxy") or (
                    w == "ct" and self.at_word(*CT_OBJ_KINDS)):
                self.object_decl(tbl, w, "add", t)
            elif w == "flags":
                flags = [self.word("a table flag")]
                while self.accept(","):
                    flags.append(self.word("a table flag"))
                for f in flags:
                    if f not in ("dormant", "owner", "persist"):
                        raise self.error(f"unknown table flag {f!r} (dormant, owner, persist)",
                                         self.peek(-1))
                tbl.flags = tuple(dict.fromkeys(tbl.flags + tuple(flags)))
            elif w == "comment":
                tbl.comment = self.string()
            elif w in UNSUPPORTED:
                raise self.error(f"{UNSUPPORTED[w]}: not supported by linx", t)
            else:
                raise self.error(f"unexpected '{w}' in a table, expected chain, set, map, "
                                 "flowtable, counter, quota, limit, ct, flags or comment", t)
            self.end_item()

    def table_chain_spec(self):
        fam = self.family_opt()
        tt = self.peek()
        tbl = self.get_table(fam, self.name("a table name"), tt)
        self.with_table(tbl)
        return tbl

    def cmd_chain(self, verb, t):
        tbl = self.table_chain_spec()
        name_t = self.peek()
        name = self.name("a chain name")
        if verb in ("delete", "destroy"):
            if name not in tbl.chains:
                if verb == "destroy":
                    return
                raise self.error(f"chain {name} is not defined in this file", name_t)
            del tbl.chains[name]
            return
        if verb == "flush":
            chain = tbl.chains.get(name)
            if chain is None:
                raise self.error(f"chain {name} is not defined in this file", name_t)
            chain.rules.clear()
            return
        self.i -= 1
        self.chain_decl(tbl, verb, t)

    def chain_decl(self, tbl, verb, t):
        name_t = self.peek()
        name = self.name("a chain name")
        chain = tbl.chains.get(name)
        if chain is None:
            chain = tbl.chains[name] = M.Chain(name, loc=self.loc(name_t))
        elif verb == "create":
            raise self.error(f"chain {name} exists already (create)", name_t)
        if self.accept("{"):
            self.chain_body(tbl, chain)

    def chain_body(self, tbl, chain):
        while True:
            self.skip_seps()
            t = self.peek()
            if t[0] == "}":
                self.next()
                if chain.hook is not None and chain.policy is None:
                    chain.policy = "accept"      # the kernel's default, as nft lists it
                return
            if t[0] == "w" and t[1] == "type":
                self.next()
                self.chain_hook(tbl, chain, t)
            elif t[0] == "w" and t[1] == "policy":
                self.next()
                pt = self.peek()
                chain.policy = self.word("accept or drop")
                if chain.policy not in ("accept", "drop"):
                    raise self.error("policy: expected accept or drop", pt)
            elif t[0] == "w" and t[1] == "comment" and self.peek(1)[0] in ("q", "w"):
                self.next()
                chain.comment = self.string()
            elif t[0] == "w" and t[1] == "flags" and self.peek(1)[1] == "offload":
                self.next()
                self.next()
                chain.offload = True
            elif t[0] == "w" and t[1] == "devices" and self.peek(1)[0] == "=":
                self.next()
                self.next()
                chain.devices = self.device_list()
            else:
                chain.rules.append(self.rule())
            self.end_item()

    def chain_hook(self, tbl, chain, t):
        chain.type = self.word("a chain type (filter, nat, route)")
        self.expect("hook", "'hook'")
        chain.hook = self.word("a hook name")
        if self.accept("device"):
            chain.devices = (self.name("a device name"),)
        elif self.at_word("devices"):
            self.next()
            self.expect("=", "'='")
            chain.devices = self.device_list()
        self.expect("priority", "'priority'")
        chain.priority = self.priority(tbl.family, chain.hook)

    def device_list(self):
        if self.peek()[0] == "$":
            raise self.error("undefined variable")
        self.expect("{", "'{'")
        devs = []
        while True:
            self.skip_seps()
            if self.accept("}"):
                return tuple(devs)
            devs.append(self.name("a device name"))
            self.skip_seps()
            if not self.accept(","):
                self.skip_seps()
                self.expect("}", "',' or '}'")
                return tuple(devs)

    def priority(self, family, hook) -> int:
        t = self.peek()
        sign = -1 if self.accept("-") else 1
        if t[0] == "w" or (sign < 0 and self.peek()[0] == "w"):
            wt = self.peek()
            name = self.next()[1]
            base = P.prio_lookup(name, family, hook)
            if base is None:
                raise self.error(f"'{name}' is not a standard priority for {family} {hook}",
                                 wt)
            if self.at("+", "-"):
                op = self.next()[0]
                off = self.number("a priority offset")
                base = base + off if op == "+" else base - off
            return base
        n = self.number("a priority (a number or raw, mangle, dstnat, filter, security, "
                        "srcnat)")
        return sign * n

    # ------------------------------------------------------------ rules
    def cmd_rule(self, verb, t):
        tbl = self.table_chain_spec()
        ct = self.peek()
        cname = self.name("a chain name")
        chain = tbl.chains.get(cname)
        if chain is None:
            raise self.error(f"chain {cname} is not defined in this file", ct)
        if verb in ("delete", "destroy", "flush", "create"):
            raise self.error(f"{verb} rule: needs kernel handles; not supported in a ruleset "
                             "file", t)
        if self.at_word("position", "handle", "index"):
            raise self.error(f"{self.peek()[1]}: rule positions are not supported; "
                             "rules are added in file order")
        rule = self.rule()
        if verb == "insert":
            chain.rules.insert(0, rule)
        else:
            chain.rules.append(rule)

    def rule(self) -> M.Rule:
        start = self.peek()
        stmts = []
        comment = None
        while not self.end_of_stmt():
            if self.at_word("comment"):
                self.next()
                comment = self.string("a quoted comment")
                break
            stmts.append(self.statement())
        if not stmts:
            if start[0] == "eof":
                raise self.error("unexpected end of file, expected '}'", start)
            raise self.error("empty rule", start)
        tag = None
        if comment is not None:
            m = TAG_RE.match(comment)
            if m:
                tag, comment = m.group(1), m.group(2)
        self.end_item_rule()
        return M.Rule(stmts, comment=comment, tag=tag, loc=self.loc(start))

    def end_item_rule(self):
        t = self.peek()
        if t[0] not in (";", "}", "eof"):
            raise self.error(f"unexpected {self.describe(t)}, expected end of rule")

    def statement(self):
        t = self.peek()
        kind, w = t[0], t[1]
        loc = self.loc(t)
        if kind == "w":
            if w in VERDICTS:
                return self.verdict_or_queue(loc)
            handler = _STMTS.get(w)
            if handler is not None:
                return handler(self, loc)
            if w in UNSUPPORTED:
                raise self.error(f"{UNSUPPORTED[w]}: not supported by linx")
            if w in ("add", "update", "delete") and self.peek(1)[0] == "@":
                return self.set_stmt(loc)
            if w == "tcp" and self.peek(1)[0] == "w" and self.peek(1)[1] in ("option",
                                                                           "options"):
                raise self.error("tcp option: not supported by linx")
        if kind not in ("w", "@", "$") and kind != "(":
            raise self.error(f"unexpected {self.describe(t)}, expected a statement")
        left = self.expr()
        if self.at_word("set"):
            return self.set_value_stmt(left, loc)
        if self.at_word("vmap"):
            self.next()
            mapping = self.mapping(self.type_of(left), "verdict")
            return M.Vmap(left, mapping, loc=loc)
        return self.relational(left, loc)

    def verdict_or_queue(self, loc):
        w = self.peek()[1]
        if w == "queue":
            return self.queue_stmt(loc)
        return M.VerdictStmt(self.verdict(), loc=loc)

    def verdict(self) -> M.Verdict:
        t = self.peek()
        w = self.word("a verdict")
        loc = self.loc(t)
        if w in ("jump", "goto"):
            return M.Verdict(w, self.name("a chain name"), loc=loc)
        if w in ("accept", "drop", "continue", "return"):
            return M.Verdict(w, loc=loc)
        if w == "queue":
            return M.Verdict("queue", loc=loc)
        raise self.error(f"unexpected '{w}', expected a verdict (accept, drop, continue, "
                         "return, jump CHAIN, goto CHAIN)", t)

    # ------------------------------------------------------------ expressions
    def expr(self):
        """concatenation of binop expressions: `ip saddr . tcp dport`, `meta mark & 0xff`."""
        first = self.binop_expr()
        if not self.at("."):
            return first
        items = [first]
        while self.accept("."):
            items.append(self.binop_expr())
        return M.Concat(tuple(items), loc=first.loc)

    def binop_expr(self):
        left = self.primary()
        while True:
            t = self.peek()
            op = BINOPS.get(t[1]) if t[0] in ("w", "&", "|", "^", "<<", ">>") else None
            if op is None:
                return left
            self.next()
            typ = self.type_of(left)
            if op in ("<<", ">>"):
                right = M.Value(T.integer(32, T.HOST), self.number("a shift amount"))
            else:
                right = self.value_or_flags(typ, paren=True)
            left = M.Binop(op, left, right, loc=left.loc)

    def primary(self):
        t = self.peek()
        kind, w = t[0], t[1]
        loc = self.loc(t)
        if kind == "(":
            self.next()
            e = self.expr()
            self.expect(")", "')'")
            return e
        if kind == "@":
            base = {"ll": 0, "nh": 1, "th": 2}.get(w)
            if base is None:
                raise self.error(f"unexpected @{w}, expected a raw payload (@ll, @nh, @th)")
            self.next()
            self.expect(",", "','")
            off = self.number("a bit offset")
            self.expect(",", "','")
            bits = self.number("a bit length")
            if bits == 0 or bits > 128:
                raise self.error("raw payload length must be 1..128 bits", self.peek(-1))
            return M.RawPayload(base, off, bits, loc=loc)
        if kind != "w":
            raise self.error(f"unexpected {self.describe(t)}, expected an expression")
        self.next()
        if w in PROTO_WORDS:
            return self.payload(w, loc)
        if w == "meta":
            kt = self.peek()
            key = self.word("a meta key")
            if key not in P.META:
                raise self.error(f"unknown meta key {key!r}", kt)
            return M.Meta(key, loc=loc)
        if w in P.META_BARE:
            return M.Meta(w, loc=loc)
        if w == "ct":
            return self.ct_expr(loc)
        if w == "fib":
            return self.fib_expr(loc)
        if w == "numgen":
            mode = self.word("inc or random")
            if mode not in ("inc", "random"):
                raise self.error("numgen: expected inc or random", self.peek(-1))
            self.expect("mod", "'mod'")
            mod = self.number()
            off = self.number() if self.accept("offset") else 0
            return M.Numgen(mode, mod, off, loc=loc)
        if w in ("jhash", "symhash"):
            inner = self.expr() if w == "jhash" else None
            self.expect("mod", "'mod'")
            mod = self.number()
            seed = self.number() if w == "jhash" and self.accept("seed") else None
            off = self.number() if self.accept("offset") else 0
            return M.Hash(w, inner, mod, seed, off, loc=loc)
        if w in UNSUPPORTED:
            raise self.error(f"{UNSUPPORTED[w]}: not supported by linx", t)
        raise self.error(f"unexpected '{w}', expected a statement or an expression "
                         "(ip, tcp, meta, ct, ...)", t)

    def payload(self, proto, loc):
        desc = P.PROTOS[proto]
        t = self.peek()
        if t[0] != "w":
            raise self.error(f"unexpected {self.describe(t)}, expected a {proto} header field")
        field = t[1]
        if proto == "arp" and field in ("saddr", "daddr"):
            self.next()
            sub = self.word("ether or ip")
            field = f"{field} {sub}"
            if field not in desc.fields:
                raise self.error(f"unknown arp field {field!r}", self.peek(-1))
            return M.Payload(proto, field, loc=loc)
        if field not in desc.fields:
            raise self.error(f"unknown {proto} header field {field!r} (one of "
                             f"{', '.join(desc.fields)})")
        self.next()
        return M.Payload(proto, field, loc=loc)

    def ct_expr(self, loc):
        d = None
        if self.at_word("original", "reply"):
            d = self.next()[1]
        fam = None
        if self.at_word("ip", "ip6") and self.peek(1)[0] == "w" and self.peek(1)[1] in (
                "saddr", "daddr"):
            fam = self.next()[1]
        kt = self.peek()
        key = self.word("a conntrack key")
        if key not in P.CT and key not in ("label", "event", "expectation", "count"):
            raise self.error(f"unknown conntrack key {key!r}", kt)
        if key in ("label", "count"):
            raise self.error(f"ct {key}: not supported by linx", kt)
        if key in ("saddr", "daddr") and d is None:
            raise self.error(f"ct {key} needs a direction: ct original {key}", kt)
        if key in ("saddr", "daddr") and fam is None:
            if self.family in ("ip", "ip6"):
                fam = self.family
            else:
                raise self.error(f"cannot determine ip protocol version, use "
                                 f"\"ct {d} ip {key}\" or \"ct {d} ip6 {key}\"", kt)
        return M.Ct(key, d, fam, loc=loc)

    def fib_expr(self, loc):
        flags = [self.word("a fib flag (saddr, daddr, mark, iif, oif)")]
        while self.accept("."):
            flags.append(self.word("a fib flag"))
        for f in flags:
            if f not in P.FIB_FLAGS:
                raise self.error(f"unknown fib flag {f!r}", self.peek(-1))
        rt = self.peek()
        result = self.word("oif, oifname or type")
        if result not in P.FIB_RESULTS:
            raise self.error(f"unknown fib result {result!r} (oif, oifname, type)", rt)
        order = list(P.FIB_FLAGS)
        return M.Fib(tuple(sorted(flags, key=order.index)), result, loc=loc)

    def type_of(self, e):
        """The datatype a value compared with `e` has (a tuple for a concatenation)."""
        if isinstance(e, M.Payload):
            return P.PROTOS[e.proto].fields[e.field][2]
        if isinstance(e, M.Meta):
            return P.META[e.key][1]
        if isinstance(e, M.Ct):
            if e.key in ("saddr", "daddr"):
                return T.IPV4 if e.family == "ip" else T.IPV6
            if e.key == "event":
                return T.BITMASK
            if e.key == "expectation":
                return T.STRING
            return P.CT[e.key][1]
        if isinstance(e, M.Fib):
            if e.result == "oif" and "present" in e.flags:
                return T.BOOLEAN
            return P.FIB_RESULTS[e.result][1]
        if isinstance(e, M.Concat):
            return tuple(self.type_of(x) for x in e.items)
        if isinstance(e, M.Binop):
            return self.type_of(e.left)
        if isinstance(e, M.RawPayload):
            return T.xinteger(e.bits)
        if isinstance(e, (M.Numgen, M.Hash)):
            return T.integer(32, T.HOST)
        if isinstance(e, M.MapExpr):
            return self.map_data_type(e)
        raise self.error("cannot use this expression here", None)

    def map_data_type(self, e):
        if isinstance(e.mapping, M.SetRef):
            s = self.table.sets.get(e.mapping.name)
            if s is not None and s.data is not None:
                return s.data
        return None

    # ------------------------------------------------------------ values
    def relational(self, left, loc):
        t = self.peek()
        op = ""
        if (t[0] in OPS and t[0] != "w") or (t[0] == "w" and t[1] in OPS):
            op = OPS[t[1]]
            self.next()
        typ = self.type_of(left)
        if isinstance(left, M.Fib) and left.result == "oif" and self.at_word("exists",
                                                                              "missing"):
            left = M.Fib(left.flags + ("present",) if "present" not in left.flags
                         else left.flags, left.result, loc=left.loc)
            typ = T.BOOLEAN
        right = self.rhs(typ, op)
        if isinstance(typ, T.Type) and typ.kind == "bitmask" and self.at("/"):
            # `tcp flags syn / syn,ack`: the value under a mask.
            self.next()
            mask = self.value_or_flags(typ)
            left = M.Binop("&", left, mask, loc=left.loc)
            op = op or "=="
        if op == "==" and not isinstance(left, M.Binop) and not (
                isinstance(right, M.Flags) or (isinstance(right, M.Value)
                                              and isinstance(typ, T.Type)
                                              and typ.kind == "bitmask")):
            op = ""
        if op == "" and isinstance(left, M.Binop):
            op = "=="
        if op in ("<", ">", "<=", ">=") and not isinstance(right, M.Value):
            raise NftError(right.loc or loc, f"'{op}' compares with a single value")
        return M.Match(left, op, right, loc=loc)

    def rhs(self, typ, op=""):
        t = self.peek()
        if t[0] == "{":
            return self.set_literal(typ, None)
        if t[0] == "@":
            self.next()
            return M.SetRef(t[1], loc=self.loc(t))
        if isinstance(typ, tuple):
            return self.concat_value(typ)
        if typ.kind == "bitmask" and op in ("", "==", "!="):
            return self.value_or_flags(typ, allow_range=True)
        return self.single(typ, allow_range=True)

    def concat_value(self, types, allow_range=True):
        loc = self.loc()
        items = []
        for n, typ in enumerate(types):
            if n:
                self.expect(".", "'.' (the next field of the concatenation)")
            items.append(self.single(typ, allow_range=allow_range))
        return M.Concat(tuple(items), loc=loc)

    def value_or_flags(self, typ, allow_range=False, paren=False):
        """A value, or for bitmask types a comma list of flags (`syn,ack`, `(syn|ack)`)."""
        if paren and self.at("("):
            self.next()
            v = self.value_or_flags(typ)
            acc = v.v if isinstance(v, (M.Value, M.Flags)) else 0
            while self.accept("|"):
                nxt = self.value_or_flags(typ)
                acc |= nxt.v
            self.expect(")", "')'")
            return M.Flags(typ, acc, loc=v.loc) if typ.kind == "bitmask" else M.Value(
                typ, acc, loc=v.loc)
        first = self.single(typ, allow_range=allow_range)
        if typ.kind != "bitmask" or not isinstance(first, M.Value):
            return first
        if not self.at(",", "|"):
            return M.Flags(typ, first.v, loc=first.loc)
        acc = first.v
        while self.at(",", "|"):
            self.next()
            acc |= self.single(typ).v
        return M.Flags(typ, acc, loc=first.loc)

    def single(self, typ, allow_range=False, allow_prefix=True):
        """One value of `typ`, a prefix `addr/len` or a range `lo-hi`."""
        v = self.atom(typ)
        if allow_prefix and self.at("/") and typ.name in T.PREFIX_TYPES:
            self.next()
            plen = self.number("a prefix length")
            if plen > typ.bits:
                raise self.error(f"prefix length {plen} is longer than {typ.bits} bits",
                                 self.peek(-1))
            mask = ((1 << plen) - 1) << (typ.bits - plen) if plen else 0
            return M.Prefix(M.Value(typ, v.v & mask, loc=v.loc), plen, loc=v.loc)
        if allow_range and self.at("-"):
            self.next()
            hi = self.atom(typ)
            if isinstance(v.v, int) and v.v > hi.v:
                raise NftError(v.loc, "range is empty: the first value is bigger than the "
                                      "second", 1)
            return M.Range(v, hi, loc=v.loc)
        return v

    def atom(self, typ) -> M.Value:
        t = self.peek()
        kind, text = t[0], t[1]
        loc = self.loc(t)
        if typ is None:
            raise self.error("cannot tell the type of this value here")
        if isinstance(typ, tuple):
            raise self.error("a concatenation needs '.' separated values")
        if typ.kind == "verdict":
            return M.Value(T.VERDICT, self.verdict(), loc=loc)
        try:
            if kind == "n" and typ.kind == "classid" and self.peek(1)[0] == ":":
                self.next()
                self.next()
                minor = self.next()
                return M.Value(typ, typ.parse(f"{text}:{minor[1]}"), loc=loc)
            if kind == "n":
                self.next()
                if typ.kind in ("str", "ifindex"):
                    return M.Value(typ, str(text), loc=loc)
                if typ.kind == "time":
                    return M.Value(typ, text * 1000, loc=loc)
                return M.Value(typ, typ.check_int(text), loc=loc)
            if kind in ("w", "q"):
                self.next()
                if kind == "w" and typ.kind not in ("str", "ifindex") and text[:1].isdigit() \
                        and typ.kind not in ("ipv4", "ipv6", "ether", "time") \
                        and text not in typ.symbols:
                    raise T.BadValue(f"{text!r} is not a {typ.desc}")
                return M.Value(typ, typ.parse(text), loc=loc)
            if kind == "a":
                self.next()
                if typ.kind != "str":
                    raise T.BadValue(f"wildcard {text!r} only matches interface names")
                return M.Value(typ, text, loc=loc)
        except T.BadValue as e:
            raise NftError(loc, str(e), len(str(text))) from None
        raise self.error(f"unexpected {self.describe(t)}, expected a {typ.desc}")

    # ------------------------------------------------------------ set literals
    def set_literal(self, key_type, data_type):
        """`{ a, b-c, d/n, e . f, k : v, * : v }`; nested sets and $variables flatten."""
        t = self.expect("{", "'{'")
        elems = []
        self.elements_into(elems, key_type, data_type)
        return M.SetLit(tuple(elems), loc=self.loc(t))

    def elements_into(self, elems, key_type, data_type):
        while True:
            self.skip_seps()
            if self.accept("}"):
                return
            if self.at("{"):
                self.next()
                self.elements_into(elems, key_type, data_type)
            else:
                elems.append(self.element(key_type, data_type))
            self.skip_seps()
            if not self.accept(","):
                self.skip_seps()
                self.expect("}", "',' or '}'")
                return

    def element(self, key_type, data_type):
        loc = self.loc()
        t = self.peek()
        if t[0] == "a" and t[1] == "*":
            self.next()
            key = M.Catchall(loc=loc)
        elif isinstance(key_type, tuple):
            key = self.concat_value(key_type)
        elif key_type is not None and key_type.kind == "bitmask":
            key = self.single(key_type, allow_range=True)
        else:
            key = self.single(key_type, allow_range=True)
        timeout = expires = comment = None
        stmts = []
        while True:
            if self.at_word("timeout"):
                self.next()
                timeout = self.time_value()
            elif self.at_word("expires"):
                self.next()
                expires = self.time_value()
            elif self.at_word("comment"):
                self.next()
                comment = self.string()
            elif self.at_word("counter"):
                stmts.append(self.counter_stmt(self.loc()))
            elif self.at_word("limit"):
                stmts.append(self.limit_stmt(self.loc()))
            elif self.at_word("quota"):
                stmts.append(self.quota_stmt(self.loc()))
            else:
                break
        if timeout is not None or expires is not None or comment is not None or stmts:
            key = M.Elem(key, timeout, expires, comment, tuple(stmts), loc=loc)
        if data_type is not None:
            self.expect(":", "':' and the mapped value")
            if data_type == "verdict" or (isinstance(data_type, T.Type)
                                          and data_type.kind == "verdict"):
                data = self.verdict()
            elif isinstance(data_type, str) and data_type in ("counter", "quota", "limit",
                                                              "ct helper", "ct timeout",
                                                              "ct expectation", "synproxy"):
                data = M.Value(T.STRING, self.string("an object name"), loc=self.loc())
            elif isinstance(data_type, tuple):
                data = self.concat_value(data_type)
            else:
                data = self.single(data_type, allow_range=True)
            return M.Mapping(key, data, loc=loc)
        return key

    def time_value(self) -> int:
        t = self.peek()
        if t[0] == "n":
            self.next()
            return t[1] * 1000
        text = self.word("a time (like 10s, 1h30m)")
        try:
            return T.parse_time(text)
        except T.BadValue as e:
            raise self.error(str(e), t) from None

    def mapping(self, key_type, data_type):
        if self.peek()[0] == "@":
            t = self.next()
            return M.SetRef(t[1], loc=self.loc(t))
        return self.set_literal(key_type, data_type)

    # ------------------------------------------------------------ statements
    def set_value_stmt(self, left, loc):
        self.next()   # set
        if isinstance(left, M.Meta):
            typ = P.META[left.key][1]
            return M.MetaSet(left.key, self.stmt_value(typ), loc=loc)
        if isinstance(left, M.Ct):
            if left.key in ("helper",) or left.key in ("timeout", "expectation"):
                return M.Objref(f"ct {left.key}", self.string("an object name"), loc=loc)
            if left.key not in ("mark", "zone", "event", "secmark", "label"):
                raise NftError(loc, f"ct {left.key} cannot be set")
            if left.key == "event":
                return M.CtSet("event", self.value_or_flags(T.CT_EVENT), left.dir, loc=loc)
            typ = self.type_of(left)
            return M.CtSet(left.key, self.stmt_value(typ), left.dir, loc=loc)
        raise NftError(loc, "payload set statements (mangling): not supported by linx")

    def stmt_value(self, typ):
        """The value of a set statement: a constant, or an expression (`meta mark`,
        `tcp dport map { ... }`, `ct mark & 0xff`)."""
        t = self.peek()
        if t[0] == "w" and (t[1] in PROTO_WORDS or t[1] in ("meta", "ct", "numgen",
                                                            "jhash", "symhash", "fib")
                            or t[1] in P.META_BARE) or t[0] == "@" and t[1] in ("ll", "nh",
                                                                                "th"):
            e = self.expr()
            if self.at_word("map"):
                self.next()
                mapping = self.mapping(self.type_of(e), typ)
                e = M.MapExpr(e, mapping, loc=e.loc)
            return e
        v = self.value_or_flags(typ, paren=True)
        while self.at("|", "&", "^") or self.at_word("or", "and", "xor"):
            raise self.error("expressions on constants are not supported; write the value")
        return v

    def set_stmt(self, loc):
        op = self.next()[1]
        st = self.next()
        name = st[1]
        s = self.table.sets.get(name) if self.table else None
        if s is None:
            raise self.error(f"set {name} is not defined in this table", st)
        self.expect("{", "'{'")
        key = self.expr()
        timeout = None
        stmts = []
        data = None
        while True:
            if self.at_word("timeout"):
                self.next()
                timeout = self.time_value()
            elif self.at_word("counter"):
                stmts.append(self.counter_stmt(self.loc()))
            elif self.at_word("limit"):
                stmts.append(self.limit_stmt(self.loc()))
            elif self.at_word("quota"):
                stmts.append(self.quota_stmt(self.loc()))
            elif self.at(":"):
                self.next()
                data = self.stmt_value(s.data)
            else:
                break
        self.expect("}", "'}'")
        return M.SetStmt(op, name, key, timeout, tuple(stmts), data, loc=loc)

    def counter_stmt(self, loc):
        self.next()
        if self.at_word("name"):
            self.next()
            return M.Objref("counter", self.name_or_map("counter"), loc=loc)
        packets = nbytes = None
        if self.at_word("packets"):
            self.next()
            packets = self.number()
            self.expect("bytes", "'bytes'")
            nbytes = self.number()
        return M.Counter(packets, nbytes, loc=loc)

    def name_or_map(self, kind):
        t = self.peek()
        if t[0] == "q" or (t[0] == "w" and t[1] not in PROTO_WORDS and t[1] not in (
                "meta", "ct") and t[1] not in P.META_BARE):
            self.next()
            return t[1]
        e = self.expr()
        self.expect("map", "'map'")
        return M.MapExpr(e, self.mapping(self.type_of(e), kind), loc=e.loc)

    def log_stmt(self, loc):
        self.next()
        log = M.Log(loc=loc)
        flags = []
        while True:
            if self.at_word("prefix"):
                self.next()
                log.prefix = self.string("a quoted prefix")
            elif self.at_word("level"):
                self.next()
                lt = self.peek()
                log.level = self.word("a log level")
                if log.level not in LOG_LEVELS:
                    raise self.error(f"unknown log level {log.level!r}", lt)
            elif self.at_word("group"):
                self.next()
                log.group = self.number()
            elif self.at_word("snaplen"):
                self.next()
                log.snaplen = self.number()
            elif self.at_word("queue-threshold"):
                self.next()
                log.qthreshold = self.number()
            elif self.at_word("flags"):
                self.next()
                ft = self.peek()
                f = self.word("a log flag")
                if f in ("tcp", "ip"):
                    sub = [self.word(f"{f} log flags")]
                    while self.accept(","):
                        sub.append(self.word(f"{f} log flags"))
                    names = [f"{f} {x}" for x in sub]
                else:
                    names = [f]
                for name in names:
                    if name not in LOG_FLAGS:
                        raise self.error(f"unknown log flag {name!r}", ft)
                    flags.append(name)
            else:
                break
        log.flags = tuple(flags)
        if log.group is not None and log.level is not None:
            raise NftError(loc, "log: level and group are mutually exclusive")
        return log

    def rate(self):
        """`10/second`, `10 mbytes/second`, `1/minute`."""
        n = self.number("a rate")
        t = self.peek()
        if t[0] == "w" and "/" in t[1]:
            self.next()
            unit, per = t[1].split("/", 1)
            if unit not in BYTE_UNITS or per not in TIME_UNITS:
                raise self.error(f"bad rate unit {t[1]!r}", t)
            return n * BYTE_UNITS[unit], per, True
        if t[0] == "w" and t[1] in BYTE_UNITS:
            self.next()
            self.expect("/", "'/'")
            per = self.word("second, minute, hour, day or week")
            if per not in TIME_UNITS:
                raise self.error(f"bad time unit {per!r}", self.peek(-1))
            return n * BYTE_UNITS[t[1]], per, True
        self.expect("/", "'/'")
        pt = self.peek()
        per = self.word("second, minute, hour, day or week")
        if per not in TIME_UNITS:
            raise self.error(f"bad time unit {per!r}", pt)
        return n, per, False

    def limit_stmt(self, loc):
        self.next()
        if self.at_word("name"):
            self.next()
            return M.Objref("limit", self.name_or_map("limit"), loc=loc)
        self.expect("rate", "'rate'")
        over = bool(self.accept("over"))
        if self.at_word("until"):
            self.next()
        rate, unit, is_bytes = self.rate()
        burst = None
        if self.at_word("burst"):
            self.next()
            burst = self.number("a burst size")
            bt = self.peek()
            bunit = self.word("packets or a byte unit") if bt[0] == "w" else (
                "bytes" if is_bytes else "packets")
            if is_bytes:
                if bunit not in BYTE_UNITS:
                    raise self.error("burst of a byte rate is in bytes, kbytes, mbytes", bt)
                burst *= BYTE_UNITS[bunit]
            elif bunit != "packets":
                raise self.error("burst of a packet rate is in packets", bt)
        if burst == (0 if is_bytes else 5):      # the kernel's default, which nft omits
            burst = None
        return M.Limit(rate, unit, burst, is_bytes, over, loc=loc)

    def quota_stmt(self, loc):
        self.next()
        if self.at_word("name"):
            self.next()
            return M.Objref("quota", self.name_or_map("quota"), loc=loc)
        over = False
        if self.at_word("over", "until"):
            over = self.next()[1] == "over"
        amount = self.byte_amount()
        used = 0
        if self.at_word("used"):
            self.next()
            used = self.byte_amount()
        return M.Quota(amount, used, over, loc=loc)

    def byte_amount(self) -> int:
        n = self.number("an amount")
        ut = self.peek()
        unit = self.word("bytes, kbytes, mbytes or gbytes")
        if unit not in BYTE_UNITS:
            raise self.error(f"unknown byte unit {unit!r}", ut)
        return n * BYTE_UNITS[unit]

    def reject_stmt(self, loc):
        self.next()
        if not self.at_word("with"):
            return M.Reject(loc=loc)
        self.next()
        t = self.peek()
        kind = self.word("icmp, icmpv6, icmpx or tcp")
        if kind == "tcp":
            self.expect("reset", "'reset'")
            return M.Reject("tcp reset", loc=loc)
        typ = {"icmp": T.ICMP_CODE, "icmpv6": T.ICMPV6_CODE, "icmpx": T.ICMPX_CODE}.get(kind)
        if typ is None:
            raise self.error(f"unexpected '{kind}', expected icmp, icmpv6, icmpx or tcp", t)
        if kind == "icmpv6" and self.family in ("ip",):
            raise self.error("reject with icmpv6 in an ip table", t)
        if kind == "icmp" and self.family == "ip6":
            raise self.error("reject with icmp in an ip6 table", t)
        self.accept("type")
        return M.Reject(kind, self.atom(typ), loc=loc)

    def nat_stmt(self, loc):
        kind = self.next()[1]
        family = None
        if kind in ("snat", "dnat") and self.at_word("ip", "ip6") and self.peek(1)[0] == "w" \
                and self.peek(1)[1] in ("to", "addr"):
            family = self.next()[1]
        fam = family or (self.family if self.family in ("ip", "ip6") else None)
        atype = T.IPV6 if fam == "ip6" else T.IPV4
        addr = port = None
        concat = False
        if kind in ("snat", "dnat"):
            if not self.accept("to"):
                raise self.error(f"{kind}: expected 'to' and an address")
            if self.at(":"):
                self.next()
                port = self.nat_port()
            else:
                addr, port, concat = self.nat_addr(atype, fam)
        elif self.at_word("to"):
            self.next()
            if kind == "redirect" and self.peek()[0] == "n":
                port = self.nat_port()
            else:
                self.expect(":", "':' and a port")
                port = self.nat_port()
        flags = []
        while self.at_word("random", "fully-random", "persistent", "netmap"):
            flags.append(self.next()[1])
            if not self.accept(","):
                continue
        return M.Nat(kind, family, addr, port, tuple(flags), concat, loc=loc)

    def nat_addr(self, atype, fam):
        t = self.peek()
        if t[0] == "w" and (t[1] in PROTO_WORDS or t[1] in ("meta", "ct", "numgen",
                                                          "jhash", "symhash")
                            or t[1] in P.META_BARE):
            e = self.expr()
            self.expect("map", "'map'")
            if fam is None:
                raise self.error("nat with a map in an inet table needs 'ip' or 'ip6' "
                                 "(dnat ip to ...)", t)
            if self.peek()[0] == "@":
                return M.MapExpr(e, self.mapping(self.type_of(e), atype), loc=e.loc), None, \
                    False
            # `{ k : addr . port }` maps to a concatenation: address and port at once.
            start = self.i
            lit = self.set_literal(self.type_of(e), atype) if not self.map_has_concat_data() \
                else None
            if lit is not None:
                return M.MapExpr(e, lit, loc=e.loc), None, False
            self.i = start
            lit = self.set_literal(self.type_of(e), (atype, T.INET_SERVICE))
            return M.MapExpr(e, lit, loc=e.loc), None, True
        if t[0] == "w" and t[1].startswith("[") is False and fam is None and ":" in t[1]:
            fam = "ip6"
        if fam is None:
            # inet table: the address tells the family
            fam = "ip6" if t[0] == "w" and ":" in t[1] else "ip"
            atype = T.IPV6 if fam == "ip6" else T.IPV4
        addr = self.single(atype, allow_range=True)
        port = None
        if self.at(":"):
            self.next()
            port = self.nat_port()
        return addr, port, False

    def map_has_concat_data(self) -> bool:
        """Looking ahead in `{ k : v ... }`: is v written `addr . port`?"""
        depth, j = 0, self.i
        seen_colon = False
        while True:
            t = self.toks[j]
            if t[0] == "{":
                depth += 1
            elif t[0] == "}":
                depth -= 1
                if depth == 0:
                    return False
            elif t[0] == ":" and depth == 1:
                seen_colon = True
            elif t[0] == "," and depth == 1:
                seen_colon = False
            elif t[0] == "." and depth == 1 and seen_colon:
                return True
            elif t[0] == "eof":
                return False
            j += 1

    def nat_port(self):
        t = self.peek()
        if t[0] == "w" and (t[1] in PROTO_WORDS or t[1] in ("meta", "ct")):
            e = self.expr()
            if self.at_word("map"):
                self.next()
                return M.MapExpr(e, self.mapping(self.type_of(e), T.INET_SERVICE), loc=e.loc)
            return e
        return self.single(T.INET_SERVICE, allow_range=True)

    def queue_stmt(self, loc):
        self.next()
        num = None
        flags = []
        while True:
            if self.at_word("num"):
                self.next()
                num = self.single(T.integer(16, T.HOST), allow_range=True)
            elif self.at_word("flags"):
                self.next()
                flags.append(self.word("bypass or fanout"))
                while self.accept(","):
                    flags.append(self.word("bypass or fanout"))
            elif self.at_word("bypass", "fanout"):
                flags.append(self.next()[1])
                self.accept(",")
            elif self.at_word("to"):
                self.next()
                num = self.single(T.integer(16, T.HOST), allow_range=True)
            else:
                break
        for f in flags:
            if f not in ("bypass", "fanout"):
                raise NftError(loc, f"unknown queue flag {f!r}")
        if num is None:
            num = M.Value(T.integer(16, T.HOST), 0, loc=loc)
        return M.Queue(num, tuple(flags), loc=loc)

    def notrack_stmt(self, loc):
        self.next()
        return M.Notrack(loc=loc)

    def meter_stmt(self, loc):
        self.next()
        name = self.name("a meter name")
        size = None
        if self.at_word("size"):
            self.next()
            size = self.number()
        self.expect("{", "'{'")
        key = self.expr()
        timeout = None
        if self.at_word("timeout"):
            self.next()
            timeout = self.time_value()
        st = self.peek()
        if not self.at_word("counter", "limit", "quota"):
            raise self.error("meter: expected a counter, limit or quota statement", st)
        stmt = _STMTS[st[1]](self, self.loc())
        self.expect("}", "'}'")
        return M.Meter(name, key, stmt, timeout, size or 65535, loc=loc)

    def flow_stmt(self, loc):
        self.next()
        if not self.accept("add") and not self.accept("offload"):
            raise self.error("flow: expected add @flowtable")
        t = self.peek()
        if t[0] != "@":
            raise self.error("flow add: expected @flowtable")
        self.next()
        return M.FlowOffload(t[1], loc=loc)

    def synproxy_stmt(self, loc):
        self.next()
        sp = M.Synproxy(loc=loc)
        flags = []
        while True:
            if self.at_word("mss"):
                self.next()
                sp.mss = self.number()
            elif self.at_word("wscale"):
                self.next()
                sp.wscale = self.number()
            elif self.at_word("timestamp", "sack-perm"):
                flags.append(self.next()[1])
            elif self.at_word("name"):
                self.next()
                return M.Objref("synproxy", self.name_or_map("synproxy"), loc=loc)
            else:
                break
        sp.flags = tuple(f for f in ("timestamp", "sack-perm") if f in flags)
        return sp

    def tproxy_stmt(self, loc):
        self.next()
        family = None
        if self.at_word("ip", "ip6"):
            family = self.next()[1]
        self.expect("to", "'to'")
        fam = family or (self.family if self.family in ("ip", "ip6") else None)
        addr = port = None
        if self.at(":"):
            self.next()
            port = self.single(T.INET_SERVICE)
        else:
            atype = T.IPV6 if fam == "ip6" else T.IPV4
            if fam is None:
                raise self.error("tproxy to an address in an inet table needs ip or ip6 "
                                 "(tproxy ip to ...)")
            addr = self.single(atype)
            if self.accept(":"):
                port = self.single(T.INET_SERVICE)
        return M.Tproxy(family, addr, port, loc=loc)

    def dup_stmt(self, loc):
        self.next()
        raise NftError(loc, "dup: not supported by linx")

    def fwd_stmt(self, loc):
        self.next()
        raise NftError(loc, "fwd: not supported by linx")

    # ------------------------------------------------------------ sets and maps
    def cmd_set(self, verb, what, t):
        tbl = self.table_chain_spec()
        name_t = self.peek()
        name = self.name("a set name")
        if verb in ("delete", "destroy"):
            if name not in tbl.sets:
                if verb == "destroy":
                    return
                raise self.error(f"set {name} is not defined in this file", name_t)
            del tbl.sets[name]
            return
        if verb == "flush":
            s = tbl.sets.get(name)
            if s is None:
                raise self.error(f"set {name} is not defined in this file", name_t)
            s.elements.clear()
            return
        self.i -= 1
        self.set_decl(tbl, what, verb, t)

    def set_decl(self, tbl, kind, verb, t):
        name_t = self.peek()
        name = self.name("a set name")
        if name in tbl.sets:
            if verb == "create":
                raise self.error(f"set {name} exists already (create)", name_t)
            s = tbl.sets[name]
            if self.at("{"):
                self.next()
                self.skip_block()
            return
        s = M.Set(name, kind, loc=self.loc(name_t))
        self.expect("{", "'{'")
        while True:
            self.skip_seps()
            it = self.peek()
            if it[0] == "}":
                self.next()
                break
            w = self.word("type, flags, timeout, size, elements, ...")
            if w == "type":
                self.set_type(s, kind)
            elif w == "typeof":
                raise self.error("typeof: not supported by linx yet; use type", it)
            elif w == "flags":
                flags = [self.word("a set flag")]
                while self.accept(","):
                    flags.append(self.word("a set flag"))
                for f in flags:
                    if f not in SET_FLAGS:
                        raise self.error(f"unknown set flag {f!r} ({', '.join(SET_FLAGS)})",
                                         self.peek(-1))
                s.flags = tuple(dict.fromkeys(s.flags + tuple(flags)))
            elif w == "timeout":
                s.timeout = self.time_value()
            elif w == "gc-interval":
                s.gc_interval = self.time_value()
            elif w == "size":
                s.size = self.number("a size")
            elif w == "policy":
                s.policy = self.word("performance or memory")
                if s.policy not in ("performance", "memory"):
                    raise self.error("policy: expected performance or memory", self.peek(-1))
            elif w == "auto-merge":
                s.auto_merge = True
            elif w == "counter":
                s.counter = True
            elif w == "comment":
                s.comment = self.string()
            elif w == "elements":
                self.expect("=", "'='")
                if not s.key:
                    raise self.error(f"set {name}: declare its type before its elements", it)
                lit = self.set_literal(self.key_type(s), self.data_type(s))
                s.elements.extend(lit.elems)
            else:
                raise self.error(f"unexpected '{w}' in a {kind}, expected type, flags, "
                                 "timeout, gc-interval, size, policy, counter, comment, "
                                 "elements", it)
            self.end_item()
        if not s.key:
            raise NftError(s.loc, f"{kind} {name} has no type")
        if s.timeout and "timeout" not in s.flags:     # a default timeout implies the flag
            s.flags = s.flags + ("timeout",)
        tbl.sets[name] = s

    def skip_block(self):
        depth = 1
        while depth:
            t = self.next()
            if t[0] == "{":
                depth += 1
            elif t[0] == "}":
                depth -= 1
            elif t[0] == "eof":
                raise self.error("unexpected end of file, expected '}'", t)

    def set_type(self, s, kind):
        s.key = tuple(self.type_list())
        if kind == "map":
            self.expect(":", "':' and the mapped type")
            if self.at_word("interval"):
                raise self.error("interval maps: not supported by linx")
            if self.at_word(*OBJ_KINDS, "synproxy"):
                s.objtype = self.next()[1]
            elif self.at_word("ct"):
                self.next()
                s.objtype = "ct " + self.word("helper, timeout or expectation")
            elif self.at_word("verdict"):
                self.next()
                s.data = "verdict"
            else:
                types = self.type_list()
                s.data = types[0] if len(types) == 1 else tuple(types)

    def type_list(self):
        out = []
        while True:
            t = self.peek()
            name = self.word("a datatype")
            typ = T.BY_NAME.get(name)
            if typ is None or name not in T.SET_TYPES:
                raise self.error(f"unknown datatype {name!r}", t)
            out.append(typ)
            if not self.accept("."):
                return out

    def key_type(self, s):
        return s.key[0] if len(s.key) == 1 else tuple(s.key)

    def data_type(self, s):
        if s.kind != "map":
            return None
        return s.objtype or s.data

    def cmd_element(self, verb, t):
        tbl = self.table_chain_spec()
        st = self.peek()
        name = self.name("a set name")
        s = tbl.sets.get(name)
        if s is None:
            raise self.error(f"set {name} is not defined in this file", st)
        lit = self.set_literal(self.key_type(s), self.data_type(s) if verb not in (
            "delete", "destroy") else None)
        if verb in ("delete", "destroy"):
            gone = {_elem_key(e) for e in lit.elems}
            s.elements[:] = [e for e in s.elements if _elem_key(e) not in gone]
        else:
            s.elements.extend(lit.elems)

    # ------------------------------------------------------------ objects, flowtables
    def cmd_object(self, verb, what, t):
        if what == "ct":
            what = "ct " + self.next()[1]
        tbl = self.table_chain_spec()
        name_t = self.peek()
        name = self.name("an object name")
        if verb in ("delete", "destroy"):
            store = tbl.flowtables if what == "flowtable" else tbl.objects
            key = name if what == "flowtable" else (what, name)
            if key not in store:
                if verb == "destroy":
                    return
                raise self.error(f"{what} {name} is not defined in this file", name_t)
            del store[key]
            return
        self.i -= 1
        self.object_decl(tbl, what, verb, t, already_kind=True)

    def object_decl(self, tbl, kind, verb, t, already_kind=False):
        if kind == "ct" and not already_kind:
            kind = "ct " + self.next()[1]
        name_t = self.peek()
        name = self.name(f"a {kind} name")
        loc = self.loc(name_t)
        if kind == "flowtable":
            ft = M.Flowtable(name, loc=loc)
            self.expect("{", "'{'")
            self.flowtable_body(tbl, ft)
            tbl.flowtables[name] = ft
            return
        spec = {}
        comment = None
        if self.accept("{"):
            comment = self.object_body(kind, spec)
        elif kind not in ("counter",):
            raise self.error(f"{kind} {name}: expected '{{' and its settings")
        if kind == "counter":
            spec.setdefault("packets", 0)
            spec.setdefault("bytes", 0)
        if kind == "ct helper":
            spec.setdefault("l3proto", tbl.family)     # nft's default: the table's family
        if (kind, name) in tbl.objects and verb == "create":
            raise self.error(f"{kind} {name} exists already (create)", name_t)
        tbl.objects[(kind, name)] = M.Obj(kind, name, spec, comment, loc=loc)

    def object_body(self, kind, spec):
        comment = None
        while True:
            self.skip_seps()
            t = self.peek()
            if t[0] == "}":
                self.next()
                return comment
            if self.at_word("comment"):
                self.next()
                comment = self.string()
            elif kind == "counter":
                if self.at_word("packets"):
                    self.next()
                    spec["packets"] = self.number()
                    if self.at_word("bytes"):
                        self.next()
                        spec["bytes"] = self.number()
                elif self.at_word("bytes"):
                    self.next()
                    spec["bytes"] = self.number()
                else:
                    raise self.error("counter: expected packets N bytes N")
            elif kind == "quota":
                over = False
                if self.at_word("over", "until"):
                    over = self.next()[1] == "over"
                spec["over"] = over
                spec["bytes"] = self.byte_amount()
                spec["used"] = 0
                if self.at_word("used"):
                    self.next()
                    spec["used"] = self.byte_amount()
            elif kind == "limit":
                self.expect("rate", "'rate'")
                spec["over"] = bool(self.accept("over"))
                rate, unit, is_bytes = self.rate()
                spec.update(rate=rate, unit=unit, bytes=is_bytes, burst=None)
                if self.at_word("burst"):
                    self.next()
                    b = self.number()
                    bu = self.word("packets or a byte unit")
                    if is_bytes:
                        if bu not in BYTE_UNITS:
                            raise self.error("burst of a byte rate is in bytes units",
                                             self.peek(-1))
                        b *= BYTE_UNITS[bu]
                    elif bu != "packets":
                        raise self.error("burst of a packet rate is in packets", self.peek(-1))
                    spec["burst"] = None if b == (0 if is_bytes else 5) else b
            elif kind == "ct helper":
                if self.at_word("type"):
                    self.next()
                    spec["type"] = self.string("a helper name")
                    self.expect("protocol", "'protocol'")
                    pt = self.peek()
                    p = self.word("tcp or udp")
                    if p not in ("tcp", "udp"):
                        raise self.error("ct helper protocol: expected tcp or udp", pt)
                    spec["protocol"] = p
                elif self.at_word("l3proto"):
                    self.next()
                    lt = self.peek()
                    spec["l3proto"] = self.word("ip, ip6 or inet")
                    if spec["l3proto"] not in ("ip", "ip6", "inet"):
                        raise self.error("l3proto: expected ip or ip6", lt)
                else:
                    raise self.error("ct helper: expected type \"NAME\" protocol P or "
                                     "l3proto")
            elif kind == "synproxy":
                if self.at_word("mss"):
                    self.next()
                    spec["mss"] = self.number()
                elif self.at_word("wscale"):
                    self.next()
                    spec["wscale"] = self.number()
                elif self.at_word("timestamp", "sack-perm"):
                    while self.at_word("timestamp", "sack-perm"):
                        spec.setdefault("flags", [])
                        spec["flags"].append(self.next()[1])
                else:
                    raise self.error("synproxy: expected mss, wscale, timestamp or sack-perm")
            else:
                raise self.error(f"{kind} objects: not supported by linx")
            self.end_item()

    def flowtable_body(self, tbl, ft):
        while True:
            self.skip_seps()
            t = self.peek()
            if t[0] == "}":
                self.next()
                return
            w = self.word("hook, devices, flags or counter")
            if w == "hook":
                ht = self.peek()
                ft.hook = self.word("ingress")
                if ft.hook != "ingress":
                    raise self.error("flowtable hook: expected ingress", ht)
                self.expect("priority", "'priority'")
                ft.priority = self.priority("netdev", "ingress")
            elif w == "devices":
                self.expect("=", "'='")
                ft.devices = self.device_list()
            elif w == "flags":
                ft.offload = self.word("offload") == "offload"
            elif w == "counter":
                ft.counter = True
            else:
                raise self.error(f"unexpected '{w}' in a flowtable", t)
            self.end_item()


def _elem_key(e):
    if isinstance(e, M.Mapping):
        e = e.key
    if isinstance(e, M.Elem):
        e = e.key
    return repr(e)


_STMTS = {
    "counter": Parser.counter_stmt, "log": Parser.log_stmt, "limit": Parser.limit_stmt,
    "quota": Parser.quota_stmt, "reject": Parser.reject_stmt, "snat": Parser.nat_stmt,
    "dnat": Parser.nat_stmt, "masquerade": Parser.nat_stmt, "redirect": Parser.nat_stmt,
    "notrack": Parser.notrack_stmt, "meter": Parser.meter_stmt, "flow": Parser.flow_stmt,
    "synproxy": Parser.synproxy_stmt, "tproxy": Parser.tproxy_stmt, "dup": Parser.dup_stmt,
    "fwd": Parser.fwd_stmt,
}


# ---------------------------------------------------------------- preprocessing

def _expand(tokens, source_dir, variables, depth):
    """Resolve `include "FILE"` (relative to the including file, globs allowed) and
    `define NAME = VALUE` / `$NAME`, returning a flat token list (nft's scanner and
    parser do the same while reading)."""
    out = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        at_start = not out or out[-1][0] in (";", "{")
        if at_start and t[0] == "w" and t[1] == "include":
            pt = tokens[i + 1]
            if pt[0] != "q":
                raise NftError(pt[3].loc(pt[2]), "include: expected a quoted file name")
            for tok in _include(pt, source_dir, variables, depth):
                out.append(tok)
            i += 2
            continue
        if at_start and t[0] == "w" and t[1] in ("define", "redefine", "undefine"):
            nt = tokens[i + 1]
            if nt[0] != "w":
                raise NftError(nt[3].loc(nt[2]), f"{t[1]}: expected a variable name")
            if t[1] == "undefine":
                if nt[1] not in variables:
                    raise NftError(nt[3].loc(nt[2]), f"undefine: ${nt[1]} is not defined")
                del variables[nt[1]]
                i += 2
                continue
            eq = tokens[i + 2]
            if eq[0] != "=":
                raise NftError(eq[3].loc(eq[2]), f"{t[1]} {nt[1]}: expected '='")
            j, depth_b = i + 3, 0
            body = []
            while True:
                bt = tokens[j]
                if bt[0] == "eof" or (bt[0] == ";" and depth_b == 0):
                    break
                if bt[0] == "{":
                    depth_b += 1
                elif bt[0] == "}":
                    if depth_b == 0:
                        break
                    depth_b -= 1
                if bt[0] == "$":
                    body.extend(_var(bt, variables))
                else:
                    body.append(bt)
                j += 1
            if not body:
                raise NftError(eq[3].loc(eq[2]), f"define {nt[1]}: empty value")
            if t[1] == "define" and nt[1] in variables:
                raise NftError(nt[3].loc(nt[2]), f"${nt[1]} is already defined "
                                                  "(use redefine)")
            variables[nt[1]] = body
            i = j
            continue
        if t[0] == "$":
            out.extend(_var(t, variables))
            i += 1
            continue
        if t[0] == "eof" and depth:
            break
        if t[0] == ";" and out and out[-1][0] == ";":
            i += 1
            continue
        out.append(t)
        i += 1
    return out


def _var(t, variables):
    body = variables.get(t[1])
    if body is None:
        raise NftError(t[3].loc(t[2]), f"${t[1]} is not defined", len(t[1]) + 1)
    return body


def _include(pt, source_dir, variables, depth):
    path = pt[1]
    if depth > 16:
        raise NftError(pt[3].loc(pt[2]), "include: nested too deeply")
    # Relative to the including file first, then to the working directory.
    full = path if os.path.isabs(path) else os.path.join(source_dir, path)
    if not os.path.isabs(path) and not glob.glob(full) and glob.glob(path):
        full = path
    names = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
    out = []
    for name in names:
        try:
            with open(name) as f:
                text = f.read()
        except OSError as e:
            raise NftError(pt[3].loc(pt[2]), f"include {path!r}: {e.strerror}",
                           len(path) + 2) from None
        src = Source(name, text)
        toks = tokenize(src)
        out.extend(_expand(toks, os.path.dirname(name), variables, depth + 1))
    return out


def parse(text: str, name: str = "<stdin>", ruleset=None) -> M.Ruleset:
    """Parse nft text into a Ruleset; NftError (a UsageError) names file:line:col."""
    src = Source(name, text)
    base = os.path.dirname(os.path.abspath(name)) if name not in ("<stdin>", "-") else \
        os.getcwd()
    with bulk():
        tokens = _expand(tokenize(src), base, {}, 0)
        return Parser(tokens, ruleset).parse_file()


def parse_file(path: str) -> M.Ruleset:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise NftError(None, f"{path}: {e.strerror}") from None
    return parse(text, path)
