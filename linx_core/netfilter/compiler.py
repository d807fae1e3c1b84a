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

This module is the driver (tables, chains, objects, flowtables, each rule's evaluate ->
reduce -> linearize) and holds the state of one compilation; the steps live by concept,
as functions of that state: compile_context (protocol dependencies), compile_match
(relational matches, payload merging), compile_exprs (loads into registers, constants),
compile_stmts (the other statements), compile_nat (NAT, tproxy), compile_sets (sets, maps,
elements); the kernel's numbers are in nf_tables.
"""
from dataclasses import dataclass

from . import compile_context as pctx
from . import compile_match as match
from . import compile_nat as nat
from . import compile_sets as sets
from . import compile_stmts as stmts
from . import model as M
from . import proto as P
from .location import NftError
from .nf_tables import (OBJ_TYPES, REG_1, SET_CONCAT, SET_INTERVAL, TABLE_FLAGS, UNIT_SECONDS,
                        reg_space, strz, udata)

__all__ = ["Compiler", "Msg", "compile", "OBJ_TYPES", "SET_CONCAT", "SET_INTERVAL"]  # patch.py's


@dataclass(slots=True)
class Msg:
    kind: str          # newtable newchain newrule newset newsetelem newobj newflowtable,
                       # deltable
    family: str
    attrs: dict
    loc: object = None
    what: str = ""     # `rule inet t input`, for errors


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


def drop_table(family: str, name: str, loc=None) -> list[Msg]:
    """Delete a table that may not exist: add it (a no-op when it does) and delete it, in
    the same batch, as nft scripts do. NFT_MSG_DESTROYTABLE says this in one message, but
    only kernels from 6.3 know it (older ones answer EINVAL)."""
    what = f"table {family} {name}"
    return [Msg("newtable", family, {"name": name}, loc, what),
            Msg("deltable", family, {"name": name}, loc, what)]


class Compiler:
    """One compilation: the messages so far, the table being compiled (`fam`, `tbl`, the ids
    of its sets), and for the rule being compiled its expressions, the lowest free register
    and the protocol context."""

    def __init__(self, ruleset: M.Ruleset, ifindex=None):
        self.rs = ruleset
        self.ifindex = Ifindex(ifindex or _host_ifindex)
        self.set_id = 0
        self.msgs: list[Msg] = []

    def next_set_id(self) -> int:
        self.set_id += 1
        return self.set_id

    def compile(self) -> list[Msg]:
        out = self.msgs
        if self.rs.flush:
            out.append(Msg("deltable", "unspec", {}, what="ruleset"))
        for fam, name in self.rs.deleted:
            out += drop_table(fam, name)
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
            sets.named_set(self, s, s.name in dynamic)
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
        expanded = self.pre = []       # each statement after the dependencies it needs
        evaluate = pctx.evaluate
        for s in r.stmts:
            evaluate(self, s)
            expanded.append(s)
        self.emitting = True
        get = STMT.get
        for s in match.reduce(expanded, self.fam):
            handler = get(type(s))
            if handler is None:
                raise NftError(s.loc, f"{type(s).__name__}: not supported by linx")
            handler(self, s)
        attrs = {"table": self.tbl.name, "chain": c.name, "expressions": self.exprs}
        comment = r.comment
        if r.tag is not None:
            comment = f"tag:{r.tag}" + (f" {comment}" if comment else "")
        if comment is not None:
            attrs["userdata"] = udata((0, strz(comment)))
        self.msgs.append(Msg("newrule", self.fam, attrs, r.loc, self.what))

    def message(self, kind: str, attrs: dict, loc, what: str) -> None:
        self.msgs.append(Msg(kind, self.fam, attrs, loc, what))

    def emit(self, name, **data):
        self.exprs.append({"name": name, "data": data})

    def get_reg(self, nbytes=16) -> int:
        slot = self.reg_low
        self.reg_low += reg_space(nbytes)
        return slot

    def release(self, nbytes=16):
        self.reg_low -= reg_space(nbytes)

    # the steps patch.py composes a minimal change from
    def named_set(self, s: M.Set, dynamic_use: bool):
        sets.named_set(self, s, dynamic_use)

    def elements(self, name, sid, s, elems, flags, anonymous, key=None, data=None) -> int:
        return sets.elements(self, name, sid, s, elems, flags, anonymous, key, data)


STMT = {
    M.Match: match.s_match, M.VerdictStmt: stmts.s_verdict, M.Vmap: stmts.s_vmap,
    M.Counter: stmts.s_stateful, M.Limit: stmts.s_stateful,
    M.Quota: stmts.s_stateful, M.Log: stmts.s_log, M.Reject: stmts.s_reject,
    M.Nat: nat.s_nat, M.MetaSet: stmts.s_meta_set, M.CtSet: stmts.s_ct_set,
    M.Notrack: stmts.s_notrack, M.SetStmt: stmts.s_set, M.Meter: stmts.s_meter,
    M.Queue: stmts.s_queue, M.FlowOffload: stmts.s_flow,
    M.Synproxy: stmts.s_synproxy, M.Tproxy: nat.s_tproxy,
    M.Objref: stmts.s_objref,
}


def compile(ruleset: M.Ruleset, ifindex=None) -> list[Msg]:
    return Compiler(ruleset, ifindex).compile()
