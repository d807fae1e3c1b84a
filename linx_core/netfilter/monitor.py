"""Live ruleset events (`linx nft monitor`): the NFNLGRP_NFTABLES multicast group
(include/uapi/linux/netfilter/nfnetlink.h) of a network namespace.

After each commit the kernel broadcasts one message per entity it created or deleted, then
NFT_MSG_NEWGEN with the new generation and the committer's pid and name
(nf_tables_commit() -> nf_tables_gen_notify()). The monitor holds entity events until that
NEWGEN and emits them stamped with it, then the new_gen event itself.

Snapshot + tail without a race: subscribe first, then read the generation, pull, and read
the generation again (pull again if it moved); events of generations up to the snapshot's
are already in it and are dropped, later ones are not. ENOBUFS (the kernel dropped events
because the socket buffer was full, netlink(7)) is a resync_needed event: the consumer's
view is no longer exact and it must pull again.
"""
import errno as _errno
from dataclasses import dataclass, field

from ..netlink.errors import NetlinkError
from . import decoder, formatter, wire
from .proto import FAMILIES, FAMILY_NAMES

NFNLGRP_NFTABLES = 7
RCVBUF = 4 << 20
OPS = {"newtable": "new_table", "deltable": "del_table", "newchain": "new_chain",
       "delchain": "del_chain", "newrule": "new_rule", "delrule": "del_rule",
       "newset": "new_set", "delset": "del_set", "newsetelem": "new_set_element",
       "delsetelem": "del_set_element", "newobj": "new_obj", "delobj": "del_obj",
       "newflowtable": "new_flowtable", "delflowtable": "del_flowtable", "newgen": "new_gen"}
_TABLE_OF = {"table": "table", "chain": "chain", "rule": "rule", "set": "set",
             "setelem": "setelem", "obj": "obj", "flowtable": "flowtable"}


@dataclass(slots=True)
class Event:
    """op is one of OPS' values or "resync_needed"; gen/pid/proc come from the commit's
    NEWGEN; entity holds the object's names and, for rules and elements, nft text."""
    op: str
    gen: int | None = None
    pid: int | None = None
    proc: str | None = None
    family: str | None = None
    entity: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"op": self.op, "gen": self.gen, "pid": self.pid, "proc": self.proc,
                "family": self.family, **self.entity}

    def text(self) -> str:
        """nft monitor's shape: `add rule inet fw input handle 4 tcp dport 22 accept`."""
        e = self.entity
        if self.op == "resync_needed":
            return "# resync needed: events were lost (ENOBUFS); pull again"
        if self.op == "new_gen":
            return f"# new generation {self.gen} by process {self.pid} ({self.proc})"
        verb = "add" if self.op.startswith("new") else "delete"
        kind = self.op.split("_", 1)[1].replace("_", " ")
        if kind == "set element":
            kind = "element"
        where = f"{self.family} {e.get('table', '')}".rstrip()
        if kind == "table":
            return f"{verb} table {self.family} {e['name']}"
        if kind == "rule":
            text = f"{verb} rule {where} {e['chain']} handle {e['handle']}"
            return text + (f" {e['rule']}" if e.get("rule") else "")
        if kind == "element":
            return f"{verb} element {where} {e['set']} {{ {', '.join(e['elements'])} }}"
        return f"{verb} {kind} {where} {e.get('name', '')}".rstrip()


class Monitor:
    """A subscription in `target`'s netns. events() yields Event values as they come."""

    def __init__(self, target=None, rcvbuf: int = RCVBUF):
        from ..netlink import nfnl
        self.target = target
        self.sock = nfnl.open(target)
        self.sock.set_buffers(rcvbuf)
        self.sock.add_membership(NFNLGRP_NFTABLES)
        self.after = None           # drop generations up to this one (the snapshot's)
        self.pending = []
        self.sets = {}              # (family, table) -> {name: decoder.KSet}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def snapshot(self):
        """(gen, Ruleset) consistent with the event stream: later events have gen > gen."""
        from ..netlink import nfnl
        from . import pull
        with nfnl.open(self.target) as s:
            gen = nfnl.getgen(s)["id"]
            while True:
                rs = pull.pull(self.target)
                again = nfnl.getgen(s)["id"]
                if again == gen:
                    break
                gen = again
        self.after = gen
        self.pending = []
        self.sets = {}
        return gen, rs

    def events(self):
        """Events forever (the caller stops iterating); entity events of one commit come
        out together, when its NEWGEN arrives."""
        while True:
            try:
                msgs = self.sock.recv()
            except NetlinkError as e:
                if e.errno != _errno.ENOBUFS:
                    raise
                self.pending = []
                self.sets = {}
                yield Event("resync_needed")
                continue
            for msg in msgs:
                yield from self._message(msg)

    def _message(self, msg):
        if msg.type >> 8 != wire.NFNL_SUBSYS_NFTABLES or len(msg.body) < 4:
            return
        kind = wire.MSG_NAMES.get(msg.type & 0xff)
        if kind == "newgen":
            from ..netlink.nfnl import GEN_ATTRS
            g = GEN_ATTRS.decode(msg.body, 4)
            gen, pid, proc = g.get("id"), g.get("proc_pid"), g.get("proc_name")
            pending, self.pending = self.pending, []
            if self.after is not None and gen is not None and gen <= self.after:
                return
            for ev in pending:
                ev.gen, ev.pid, ev.proc = gen, pid, proc
                yield ev
            yield Event("new_gen", gen, pid, proc)
            return
        if kind not in OPS:
            return
        family = FAMILY_NAMES.get(msg.body[0], str(msg.body[0]))
        what = kind[3:]
        a = (wire.decode_rule(msg.body, 4) if what == "rule"
             else wire.tables()[_TABLE_OF[what]].decode(msg.body, 4))
        ev = Event(OPS[kind], family=family, entity=self._entity(what, kind, family, a))
        if ev.entity is not None:
            self.pending.append(ev)

    def _entity(self, what, kind, family, a) -> dict | None:
        if what == "table":
            return {"name": a.get("name")}
        if what in ("chain", "set", "obj", "flowtable"):
            if what == "set":
                ks = decoder.KSet(a)
                sets = self.sets.setdefault((family, a.get("table")), {})
                if kind == "newset":
                    sets[ks.name] = ks
                else:
                    sets.pop(ks.name, None)
                if ks.anonymous:
                    return None          # part of the rule that uses it
            return {"table": a.get("table"), "name": a.get("name")}
        if what == "rule":
            out = {"table": a.get("table"), "chain": a.get("chain"),
                   "handle": a.get("handle")}
            try:
                sets = self._sets_for(family, a)
                r = decoder.rule(family, a, sets)
                out["rule"] = formatter.format_rule(r, family).strip()
                out["tag"] = r.tag
            except (decoder.DecodeError, KeyError, NetlinkError):
                out["rule"] = None      # refers to sets already gone
            return out
        # set elements
        sets = self.sets.setdefault((family, a.get("table")), {})
        ks = sets.get(a.get("set")) or self._load_set(family, a.get("table"), a.get("set"))
        if ks is not None and ks.anonymous:
            if kind == "newsetelem":
                ks.elements.extend(a.get("elements", []))
            return None
        out = {"table": a.get("table"), "set": a.get("set")}
        if ks is None:
            out["elements"] = [e.get("key", b"").hex() for e in a.get("elements", [])]
            return out
        one = decoder.KSet(ks.a)
        one.elements = a.get("elements", [])
        out["elements"] = [formatter.fmt_elem(e, family) for e in decoder.elements(one)]
        return out

    def _sets_for(self, family, a) -> dict:
        sets = self.sets.setdefault((family, a.get("table")), {})
        for e in a.get("expressions", ()):
            name = e["data"].get("set") if e["name"] in ("lookup", "dynset", "objref") else None
            if name and name not in sets:
                self._load_set(family, a.get("table"), name)
        return sets

    def _load_set(self, family, table, name):
        """A set the stream has not shown (it predates the subscription): ask the kernel,
        with its elements when anonymous (a rule's `{ ... }` is printed from them)."""
        from ..netlink import nfnl, transport
        fam = FAMILIES.get(family, 0)
        body = wire.tables()["set"].encode({"table": table, "name": name})
        with nfnl.open(self.target) as s:
            try:
                replies = transport.talk(s, nfnl.msg_type(wire.MSG["getset"]), 0,
                                         nfnl.nfgenmsg(fam) + body, op="nft getset")
            except NetlinkError:
                return None
            ks = None
            for m in replies:
                if (m.type & 0xff) == wire.MSG["newset"]:
                    ks = decoder.KSet(wire.tables()["set"].decode(m.body, 4))
            if ks is None:
                return None
            if ks.anonymous:
                for m in nfnl.dump(s, wire.MSG["getsetelem"], fam,
                                   wire.tables()["setelem"].encode({"table": table,
                                                                    "set": name})):
                    ks.elements.extend(wire.tables()["setelem"].decode(m.body, 4)
                                       .get("elements", []))
        self.sets.setdefault((family, table), {})[name] = ks
        return ks
