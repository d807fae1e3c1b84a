"""Diff two rulesets into the minimal Patch (the seed's Linx.Netfilter.Diff).

Identity: tables by (family, name), chains, sets and objects by name in their table, set
elements by value (no "modified": remove and add), rules by tag. A chain whose rules are
not all tagged falls back to position: same length, replace rule by rule; otherwise the
chain's rules are rebuilt (reconcile mode refuses that case, validate_for_reconcile()).

Kernel-kept state never counts as a difference: counter values, quota usage, element
expiry, handles. The diff is scoped to the tables `desired` names (and those it deletes):
other tables are never touched, so linx coexists with docker or firewalld.
"""
import dataclasses

from ..errors import UsageError
from . import model as M
from .location import as_loc
from .patch import Op, Patch


def diff(current: M.Ruleset, desired: M.Ruleset) -> Patch:
    ops = []
    for key in desired.deleted:
        if key in current.tables and key not in desired.tables:
            ops.append(Op("delete_table", key[0], key[1]))
    for key, dt in desired.tables.items():
        ct = current.tables.get(key)
        if ct is None:
            ops.append(Op("create_table", dt.family, dt.name, value=dt))
        else:
            ops.extend(_table(ct, dt))
    return Patch(ops).sort()


def validate_for_reconcile(rs: M.Ruleset) -> None:
    """Every chain with more than one rule tags all of them: without a stable identity the
    diff cannot tell an edited rule from a moved one."""
    if rs.flush:
        raise UsageError("flush ruleset", "not allowed with --mode reconcile (it would touch "
                                          "tables outside the file); use --mode replace")
    for t in rs.tables.values():
        for c in t.chains.values():
            if len(c.rules) > 1:
                for r in c.rules:
                    if r.tag is None:
                        where = f" at {as_loc(r.loc)}" if r.loc is not None else ""
                        raise UsageError(f"chain {t.family} {t.name} {c.name}",
                                         f"every rule needs a tag (comment \"tag:NAME\") for "
                                         f"--mode reconcile; untagged rule{where}")


def _table(ct: M.Table, dt: M.Table) -> list:
    fam, tn = dt.family, dt.name
    ops = []
    recreated = set()           # sets and chains deleted and created again
    for name, cs in ct.sets.items():
        ds = dt.sets.get(name)
        if ds is None:
            ops.append(Op("delete_set", fam, tn, name, cs))
        elif _decl(cs) != _decl(ds):
            ops += [Op("delete_set", fam, tn, name, cs), Op("create_set", fam, tn, name, ds)]
            recreated.add(name)
        else:
            have = {_elem_id(e): e for e in cs.elements}
            want = {_elem_id(e): e for e in ds.elements}
            gone = [e for k, e in have.items() if k not in want]
            new = [e for k, e in want.items() if k not in have]
            if gone:
                ops.append(Op("delete_elements", fam, tn, name, gone))
            if new:
                ops.append(Op("add_elements", fam, tn, name, new))
    for name, ds in dt.sets.items():
        if name not in ct.sets:
            ops.append(Op("create_set", fam, tn, name, ds))
    for key, co in ct.objects.items():
        do = dt.objects.get(key)
        if do is None or _obj(co) != _obj(do):
            ops.append(Op("delete_obj", fam, tn, key[1], co))
            if do is not None:
                ops.append(Op("create_obj", fam, tn, key[1], do))
                recreated.add(key[1])
    for key, do in dt.objects.items():
        if key not in ct.objects:
            ops.append(Op("create_obj", fam, tn, key[1], do))
    rebuilt = {}
    for name, cc in ct.chains.items():
        dc = dt.chains.get(name)
        if dc is None:
            ops.append(Op("delete_chain", fam, tn, name))
        elif dataclasses.replace(cc, rules=[]) != dataclasses.replace(dc, rules=[]):
            if dataclasses.replace(cc, rules=[], policy=None) == \
                    dataclasses.replace(dc, rules=[], policy=None):
                ops.append(Op("update_chain", fam, tn, name, dc))
            else:
                ops += [Op("delete_chain", fam, tn, name), Op("create_chain", fam, tn, name, dc)]
                rebuilt[name] = dc
                recreated.add(name)
    for name, dc in dt.chains.items():
        if name not in ct.chains:
            ops.append(Op("create_chain", fam, tn, name, dc))
            rebuilt[name] = dc
    for name, dc in dt.chains.items():
        if name in rebuilt:
            ops += [Op("create_rule", fam, tn, name, r) for r in dc.rules]
        elif name in ct.chains:
            ops += _rules(fam, tn, name, ct.chains[name].rules, dc.rules, recreated)
    return ops


def _rules(fam, tn, chain, cur: list, want: list, recreated: set) -> list:
    ops = []
    tagged = all(r.tag is not None for r in want)
    if not tagged or len(want) <= 1 and all(r.tag is None for r in cur):
        if len(cur) == len(want) and not (recreated and any(_refs(r) & recreated
                                                             for r in cur)):
            for c, w in zip(cur, want):
                if _norm(c) != _norm(w):
                    ops.append(Op("replace_rule", fam, tn, chain, w, handle=c.handle))
            return ops
        ops += [Op("delete_rule", fam, tn, chain, handle=c.handle) for c in cur]
        return ops + [Op("create_rule", fam, tn, chain, w) for w in want]
    by_tag = {}
    for i, c in enumerate(cur):
        if c.tag is None or c.tag in by_tag or recreated and _refs(c) & recreated:
            ops.append(Op("delete_rule", fam, tn, chain, handle=c.handle))
        else:
            by_tag[c.tag] = (i, c)
    wanted = {w.tag for w in want}
    for tag, (_, c) in by_tag.items():
        if tag not in wanted:
            ops.append(Op("delete_rule", fam, tn, chain, handle=c.handle))
    common = [w.tag for w in want if w.tag in by_tag]
    keep = _lis(common, {t: by_tag[t][0] for t in common})
    for tag in common:
        if tag not in keep:         # moved: deleted here, created at its new place below
            ops.append(Op("delete_rule", fam, tn, chain, handle=by_tag[tag][1].handle))
    for i, w in enumerate(want):
        if w.tag in keep:
            c = by_tag[w.tag][1]
            if _norm(c) != _norm(w):
                ops.append(Op("replace_rule", fam, tn, chain, w, handle=c.handle))
            continue
        anchor = next((by_tag[n.tag][1].handle for n in want[i + 1:] if n.tag in keep), None)
        ops.append(Op("create_rule", fam, tn, chain, w, before=anchor))
    return ops


def _lis(tags: list, pos: dict) -> set:
    """The longest run of `tags` already in kernel order: those rules stay where they are,
    the others move (patience sorting, O(n log n))."""
    import bisect
    tails, tail_idx, prev = [], [], [None] * len(tags)
    for i, t in enumerate(tags):
        p = pos[t]
        j = bisect.bisect_left(tails, p)
        if j == len(tails):
            tails.append(p)
            tail_idx.append(i)
        else:
            tails[j] = p
            tail_idx[j] = i
        prev[i] = tail_idx[j - 1] if j else None
    out = set()
    i = tail_idx[-1] if tail_idx else None
    while i is not None:
        out.add(tags[i])
        i = prev[i]
    return out


def _stateless(s):
    """A statement without the kernel's running state (counter values, quota usage)."""
    if isinstance(s, M.Counter):
        return M.Counter()
    if isinstance(s, M.Quota):
        return dataclasses.replace(s, used=0)
    return s


def _norm(r: M.Rule):
    return [_stateless(s) for s in r.stmts], r.comment, r.tag


def _elem_id(e) -> str:
    if isinstance(e, M.Elem):
        e = dataclasses.replace(e, expires=None, stmts=tuple(map(_stateless, e.stmts)))
        if e.timeout is None and e.comment is None and not e.stmts:
            e = e.key
    return repr(e)


def _decl(s: M.Set) -> M.Set:
    return dataclasses.replace(s, elements=[])


def _obj(o: M.Obj):
    spec = {k: v for k, v in o.spec.items() if k not in ("packets", "bytes", "used")} \
        if o.kind in ("counter", "quota") else o.spec
    if o.kind == "quota":
        spec["bytes"] = o.spec.get("bytes")
    return o.kind, o.name, spec, o.comment


def _refs(node) -> set:
    """Names of the sets, chains and objects a rule refers to (@set, jump/goto, named
    objects): recreating one of them needs the rule deleted first (EBUSY otherwise)."""
    out = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, M.SetRef):
            out.add(n.name)
        elif isinstance(n, M.Verdict) and n.chain:
            out.add(n.chain)
        elif isinstance(n, (M.SetStmt, M.Meter)):
            out.add(n.set if isinstance(n, M.SetStmt) else n.name)
        elif isinstance(n, M.Objref) and isinstance(n.name, str):
            out.add(n.name)
        if isinstance(n, (list, tuple)):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, type):
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n))
    return out
