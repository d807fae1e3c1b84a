"""A patch: the ordered mutations that take one ruleset to another (diff.py makes it), and
its messages for one nf_tables batch (reconcile.py sends them).

Op order is the dependency order inside one batch (the seed's Patch.sort): deletes of
dependents before what they depend on, creates the other way round, rule replaces after
the chains and sets they may name exist. A rule is replaced in place with NLM_F_REPLACE on
its kernel handle and created at a position with NFTA_RULE_POSITION (nf_tables_newrule()
in net/netfilter/nf_tables_api.c: with APPEND after that handle, without it before).
"""
from dataclasses import dataclass

from ..netlink.codec import NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE
from . import compiler, encoder, formatter, wire
from . import model as M

ORDER = ("delete_rule", "delete_elements", "delete_chain", "delete_set", "delete_obj",
         "delete_table", "create_table", "create_obj", "create_set", "create_chain",
         "update_chain", "add_elements", "replace_rule", "create_rule")
_RANK = {k: i for i, k in enumerate(ORDER)}


@dataclass(slots=True)
class Op:
    """kind is one of ORDER. name is the chain, set or object; value the Table, Chain,
    Set, Obj, Rule or element list; handle the kernel's rule handle for replace/delete;
    before the handle a created rule goes in front of (None: appended)."""
    kind: str
    family: str
    table: str
    name: str | None = None
    value: object = None
    handle: int | None = None
    before: int | None = None


@dataclass(slots=True)
class Patch:
    ops: list

    @property
    def empty(self) -> bool:
        return not self.ops

    def sort(self) -> "Patch":
        """Stable: ops of one kind keep their order (rule creates rely on it)."""
        return Patch(sorted(self.ops, key=lambda o: _RANK[o.kind]))

    def summary(self) -> str:
        """`3 ops: 1 create, 1 replace, 1 delete`, as the seed's Patch inspects."""
        counts = {}
        for o in self.ops:
            verb = o.kind.split("_")[0]
            verb = {"add": "create", "update": "replace"}.get(verb, verb)
            counts[verb] = counts.get(verb, 0) + 1
        n = len(self.ops)
        parts = ", ".join(f"{c} {v}{'s' if c > 1 else ''}" for v, c in counts.items())
        return f"{n} op{'s' if n != 1 else ''}: {parts}"


def describe(op: Op) -> str:
    """One line of nft-like text for an op."""
    where = f"{op.family} {op.table}"
    k = op.kind
    if k in ("create_table", "delete_table"):
        return f"{k.replace('_', ' ')} {where}"
    if k in ("create_chain", "delete_chain", "update_chain"):
        return f"{k.replace('_', ' ')} {where} {op.name}"
    if k in ("create_set", "delete_set"):
        kind = op.value.kind if op.value is not None else "set"
        return f"{k.split('_')[0]} {kind} {where} {op.name}"
    if k in ("create_obj", "delete_obj"):
        return f"{k.split('_')[0]} {op.value.kind} {where} {op.name}"
    if k in ("add_elements", "delete_elements"):
        elems = ", ".join(formatter.fmt_elem(e, op.family) for e in op.value)
        return f"{k.split('_')[0]} element {where} {op.name} {{ {elems} }}"
    if k == "delete_rule":
        return f"delete rule {where} {op.name} handle {op.handle}"
    text = formatter.format_rule(op.value, op.family).strip()
    if k == "replace_rule":
        return f"replace rule {where} {op.name} handle {op.handle} {text}"
    pos = f"insert rule {where} {op.name} position {op.before}" if op.before is not None \
        else f"add rule {where} {op.name}"
    return f"{pos} {text}"


def to_json(patch: Patch) -> list:
    out = []
    for op in patch.ops:
        d = {"op": op.kind, "family": op.family, "table": op.table}
        if op.name is not None:
            d["name"] = op.name
        if op.handle is not None:
            d["handle"] = op.handle
        if op.before is not None:
            d["before"] = op.before
        if isinstance(op.value, M.Rule):
            d["rule"] = formatter.format_rule(op.value, op.family).strip()
            d["tag"] = op.value.tag
        elif op.kind.endswith("_elements"):
            d["elements"] = [formatter.fmt_elem(e, op.family) for e in op.value]
        d["text"] = describe(op)
        out.append(d)
    return out


def messages(patch: Patch, desired: M.Ruleset, ifindex=None) -> tuple[list, list]:
    """(compiler.Msg list, wire (type, flags, body) list), in patch order; the Msg list
    names the object of each wire message for error reports."""
    c = compiler.Compiler(desired, ifindex=ifindex)
    msgs, out = [], []
    for op in patch.ops:
        t = desired.tables.get((op.family, op.table))
        if t is not None:
            c.fam, c.tbl, c.set_ids = op.family, t, {}
        start = len(c.msgs)
        if op.kind == "create_table":
            c.table(op.value)
        elif op.kind in ("create_chain", "update_chain"):
            c.msgs.append(c.chain(op.value))
        elif op.kind == "create_obj":
            c.msgs.append(c.obj(op.value))
        elif op.kind == "create_set":
            dynamic = any(isinstance(s, M.SetStmt) and s.set == op.name
                          for ch in t.chains.values() for r in ch.rules for s in r.stmts)
            c.named_set(op.value, dynamic)
        elif op.kind in ("add_elements", "delete_elements"):
            s = t.sets[op.name]
            c.elements(op.name, None, s, op.value, _set_flags(s), anonymous=False)
            for m in c.msgs[start:]:
                m.attrs["set_id"] = None
                m.kind = "newsetelem" if op.kind == "add_elements" else "delsetelem"
        elif op.kind in ("create_rule", "replace_rule"):
            c.rule(t.chains[op.name], op.value)
        else:
            new = _delete_msg(op)
            msgs.append(new)
            out.append(_encode_del(new))
            continue
        for m in c.msgs[start:]:
            msgs.append(m)
            out.append(_encode(m, op if m.kind == "newrule" else None))
    return msgs, out


def _set_flags(s: M.Set) -> int:
    """The flag bits compiler.elements() looks at: interval, and concat for an interval
    set with a concatenated key."""
    f = compiler.SET_INTERVAL if "interval" in s.flags else 0
    if f and len(s.key) > 1:
        f |= compiler.SET_CONCAT
    return f


def _nla(aid: int, payload: bytes) -> bytes:
    return encoder._nla(aid, payload)


def _encode(m, op: Op | None):
    if m.kind == "delsetelem":
        return encoder.msg_type("delsetelem"), 0, encoder.encode_elements(m)
    if op is None:
        return encoder.encode(m)
    body = encoder.encode_rule(m)
    if op.kind == "replace_rule":
        return (encoder.msg_type("newrule"), NLM_F_REPLACE,
                body + _nla(3, op.handle.to_bytes(8, "big")))     # NFTA_RULE_HANDLE
    if op.before is not None:
        return (encoder.msg_type("newrule"), NLM_F_CREATE,
                body + _nla(6, op.before.to_bytes(8, "big")))     # NFTA_RULE_POSITION
    return encoder.msg_type("newrule"), NLM_F_CREATE | NLM_F_APPEND, body


_DEL = {"delete_table": ("deltable", "table"), "delete_chain": ("delchain", "chain"),
        "delete_set": ("delset", "set"), "delete_obj": ("delobj", "obj"),
        "delete_rule": ("delrule", "rule")}


def _delete_msg(op: Op) -> compiler.Msg:
    kind, _ = _DEL[op.kind]
    if op.kind == "delete_table":
        attrs = {"name": op.table}
    elif op.kind == "delete_rule":
        attrs = {"table": op.table, "chain": op.name, "handle": op.handle}
    else:
        attrs = {"table": op.table, "name": op.name}
        if op.kind == "delete_obj":
            attrs["type"] = compiler.OBJ_TYPES[op.value.kind]
    return compiler.Msg(kind, op.family, attrs, None, describe(op))


def _encode_del(m: compiler.Msg):
    table = wire.tables()[dict(_DEL.values())[m.kind]]
    body = encoder.nfgenmsg(encoder.family_id(m.family)) + table.encode(m.attrs)
    return (wire.NFNL_SUBSYS_NFTABLES << 8) | wire.MSG[m.kind], 0, body
