"""Read a network namespace's nf_tables state back into a ruleset model (`linx nft
pull`): dump tables, chains, sets and their elements, objects, flowtables and rules (the
GET* dumps nft's cache.c does for `list ruleset`), then decode. Listing order is the
kernel's, per table: objects, named sets, flowtables, chains with their rules."""
import errno as _errno

from ..errors import KernelError
from . import bulk, decode_shapes, decoder, model as M, wire
from .proto import FAMILIES, FAMILY_NAMES


def _dump(sock, kind: str, family: int = 0, attrs: dict | None = None, decode=None):
    from ..netlink import nfnl
    table = wire.tables()[wire.MSG_TABLE[kind]]
    body = table.encode(attrs) if attrs else b""
    decode = decode or table.decode
    out = []
    for msg in nfnl.dump(sock, wire.MSG[kind], family, body, op=f"nft {kind}"):
        if len(msg.body) < 4:
            continue
        out.append((FAMILY_NAMES.get(msg.body[0]), decode(msg.body, 4)))
    return out


def pull(target=None, table: tuple | None = None) -> M.Ruleset:
    """The ruleset of `target`'s netns; with table=(family, name), just that table
    (ENOENT, exit 1, when it does not exist, as nft's `list table` fails)."""
    from ..netlink import nfnl
    fam_id = FAMILIES[table[0]] if table else 0
    with bulk(), nfnl.open(target) as sock:
        tables = _dump(sock, "gettable", fam_id)
        chains = _dump(sock, "getchain", fam_id)
        sets = _dump(sock, "getset", fam_id)
        objs = _dump(sock, "getobj", fam_id)
        fts = _dump(sock, "getflowtable", fam_id)
        shapes = decode_shapes.Rules()
        rules = _dump(sock, "getrule", fam_id, decode=shapes.attrs)
        elems = {}
        for fam, s in sets:
            if table and (fam, s["table"]) != table:
                continue
            found = []
            for _, m in _dump(sock, "getsetelem", FAMILIES[fam],
                              {"table": s["table"], "set": s["name"]},
                              decode=wire.decode_setelems):
                found.extend(m.get("elements", []))
            elems[(fam, s["table"], s["name"])] = found
    with bulk():
        return _assemble(tables, chains, sets, objs, fts, rules, elems, table, shapes)


def _assemble(tables, chains, sets, objs, fts, rules, elems, table, shapes) -> M.Ruleset:
    rs = M.Ruleset()
    for fam, a in tables:
        if table and (fam, a["name"]) != table:
            continue
        rs.tables[(fam, a["name"])] = decoder.table(fam, a)
    if table and table not in rs.tables:
        raise KernelError("nft", "list table", f"{table[0]} {table[1]}", _errno.ENOENT)
    ksets: dict = {}
    for fam, a in sets:
        t = rs.tables.get((fam, a["table"]))
        if t is None:
            continue
        ks = decoder.KSet(a)
        ks.elements = elems.get((fam, a["table"], a["name"]), [])
        ksets.setdefault((fam, a["table"]), {})[ks.name] = ks
        if not ks.anonymous:
            t.sets[ks.name] = decoder.set_model(ks, fam)
    for fam, a in objs:
        t = rs.tables.get((fam, a["table"]))
        if t is not None:
            o = decoder.obj(a)
            t.objects[(o.kind, o.name)] = o
    for fam, a in fts:
        t = rs.tables.get((fam, a["table"]))
        if t is not None:
            t.flowtables[a["name"]] = decoder.flowtable(a)
    for fam, a in chains:
        t = rs.tables.get((fam, a["table"]))
        if t is not None:
            t.chains[a["name"]] = decoder.chain(fam, a)
    for fam, a in rules:
        t = rs.tables.get((fam, a["table"]))
        if t is None or a["chain"] not in t.chains:
            continue
        t.chains[a["chain"]].rules.append(
            shapes.rule(fam, a, ksets.get((fam, a["table"]), {})))
    return rs
