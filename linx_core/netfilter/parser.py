"""nft text -> ruleset model: a recursive-descent parser over tokenizer tokens, one function
per construct, after the grammar of nftables' src/parser_bison.y (the slice linx supports).

A file is a list of commands (`flush ruleset`, `table ... { }`, `add rule ...`, `delete
table ...`); they are applied in order to one Ruleset value, as nft applies them to its
cache, so the result is what the kernel would hold. `include` and `define`/`$var` are
resolved on the tokens first (preprocess). Values are typed by what they are compared
with, so a symbol (`ssh`, `established`, `eth0`) becomes its value here, and a bad one is
reported at its file:line:col.

This module is the command layer and the entry points; the constructs live in
declarations (tables, chains, sets, objects, flowtables), statements (rules), expressions
and values, all functions over one cursor.Cursor.
"""
import os

from . import bulk, model as M
from . import declarations as D
from . import preprocess
from . import proto as P
from . import statements as S
from . import values as V
from .cursor import Cursor
from .location import NftError, Source
from .tokenizer import tokenize


def commands(p) -> M.Ruleset:
    while True:
        p.skip_seps()
        if p.peek()[0] == "eof":
            return p.rs
        command(p)
        p.end_item()


def family_opt(p) -> str:
    if p.at_word(*P.FAMILIES) and p.peek(1)[0] in ("w", "q"):
        return p.next()[1]
    return "ip"


def command(p):
    t = p.peek()
    if t[0] != "w":
        raise p.error(f"unexpected {p.describe(t)}, expected a command "
                      "(table, add, delete, flush, ...)")
    verb = t[1]
    if verb in ("add", "create", "insert", "delete", "destroy", "flush"):
        p.next()
    else:
        verb = "add"
    what_t = p.peek()
    what = what_t[1] if what_t[0] == "w" else None
    if verb == "flush" and what == "ruleset":
        p.next()
        fam = p.next()[1] if p.at_word(*P.FAMILIES) else None
        if fam is None:
            p.rs.flush = True
            p.rs.deleted.clear()
            p.rs.tables.clear()
        else:
            for key in [k for k in p.rs.tables if k[0] == fam]:
                del p.rs.tables[key]
        return
    if what in ("list", "reset", "monitor", "rename", "replace", "export", "import",
                "describe", "get") and verb == "add":
        raise p.error(f"'{what}' is not a ruleset command; linx reads rulesets only")
    if what == "table":
        p.next()
        return cmd_table(p, verb, what_t)
    if what == "chain":
        p.next()
        return cmd_chain(p, verb, what_t)
    if what == "rule":
        p.next()
        return cmd_rule(p, verb, what_t)
    if what in ("set", "map"):
        p.next()
        return cmd_set(p, verb, what, what_t)
    if what == "element":
        p.next()
        return cmd_element(p, verb, what_t)
    if what in D.OBJ_KINDS or what in ("flowtable", "synproxy") or (
            what == "ct" and p.peek(1)[0] == "w" and p.peek(1)[1] in D.CT_OBJ_KINDS):
        p.next()
        return cmd_object(p, verb, what, what_t)
    if what == "include" and verb == "add":
        raise p.error("include: could not be resolved")
    raise p.error(f"unexpected {p.describe(what_t)}, expected table, chain, rule, "
                  "set, map, element, counter, quota, limit, ct, flowtable")


def get_table(p, fam, name, t):
    tbl = p.rs.tables.get((fam, name))
    if tbl is None:
        raise p.error(f"table {fam} {name} is not defined in this file "
                      "(linx applies whole files; declare it first)", t)
    return tbl


def cmd_table(p, verb, t):
    fam = family_opt(p)
    name_t = p.peek()
    name = p.name("a table name")
    key = (fam, name)
    if verb in ("delete", "destroy"):
        if key in p.rs.tables:
            del p.rs.tables[key]
        if key not in p.rs.deleted:
            p.rs.deleted.append(key)
        return
    if verb == "flush":
        tbl = get_table(p, fam, name, name_t)
        for c in tbl.chains.values():
            c.rules.clear()
        for s in tbl.sets.values():
            s.elements.clear()
        return
    if verb == "create" and key in p.rs.tables:
        raise p.error(f"table {fam} {name} exists already (create)", name_t)
    tbl = p.rs.tables.get(key)
    if tbl is None:
        tbl = p.rs.tables[key] = M.Table(fam, name, loc=p.loc(name_t))
    if p.accept("{"):
        D.table_body(p, tbl)


def table_chain_spec(p):
    fam = family_opt(p)
    tt = p.peek()
    tbl = get_table(p, fam, p.name("a table name"), tt)
    p.with_table(tbl)
    return tbl


def cmd_chain(p, verb, t):
    tbl = table_chain_spec(p)
    name = p.name("a chain name")
    if not delete_or_flush(p, verb, "chain", tbl.chains, name, lambda c: c.rules.clear()):
        D.chain_decl(p, tbl, verb, t)


def delete_or_flush(p, verb, what, store, key, flush=None) -> bool:
    """`delete|destroy|flush WHAT TABLE NAME` (NAME just read) on what this file declared:
    True when done; False, with NAME given back, when the command declares instead."""
    name_t = p.peek(-1)
    if verb in ("delete", "destroy"):
        if key in store:
            del store[key]
        elif verb == "delete":
            raise p.error(f"{what} {name_t[1]} is not defined in this file", name_t)
        return True
    if verb == "flush" and flush is not None:
        if key not in store:
            raise p.error(f"{what} {name_t[1]} is not defined in this file", name_t)
        flush(store[key])
        return True
    p.i -= 1
    return False


def cmd_rule(p, verb, t):
    tbl = table_chain_spec(p)
    ct = p.peek()
    cname = p.name("a chain name")
    chain = tbl.chains.get(cname)
    if chain is None:
        raise p.error(f"chain {cname} is not defined in this file", ct)
    if verb in ("delete", "destroy", "flush", "create"):
        raise p.error(f"{verb} rule: needs kernel handles; not supported in a ruleset "
                      "file", t)
    if p.at_word("position", "handle", "index"):
        raise p.error(f"{p.peek()[1]}: rule positions are not supported; "
                      "rules are added in file order")
    rule = S.rule(p)
    if verb == "insert":
        chain.rules.insert(0, rule)
    else:
        chain.rules.append(rule)


def cmd_set(p, verb, what, t):
    tbl = table_chain_spec(p)
    name = p.name("a set name")
    if not delete_or_flush(p, verb, "set", tbl.sets, name, lambda s: s.elements.clear()):
        D.set_decl(p, tbl, what, verb, t)


def cmd_element(p, verb, t):
    tbl = table_chain_spec(p)
    st = p.peek()
    name = p.name("a set name")
    s = tbl.sets.get(name)
    if s is None:
        raise p.error(f"set {name} is not defined in this file", st)
    lit = V.set_literal(p, D.key_type(p, s), D.data_type(p, s) if verb not in (
        "delete", "destroy") else None)
    if verb in ("delete", "destroy"):
        gone = {_elem_key(e) for e in lit.elems}
        s.elements[:] = [e for e in s.elements if _elem_key(e) not in gone]
    else:
        s.elements.extend(lit.elems)


def cmd_object(p, verb, what, t):
    if what == "ct":
        what = "ct " + p.next()[1]
    tbl = table_chain_spec(p)
    name = p.name("an object name")
    store, key = (tbl.flowtables, name) if what == "flowtable" else (tbl.objects, (what, name))
    if not delete_or_flush(p, verb, what, store, key):
        D.object_decl(p, tbl, what, verb, t, already_kind=True)


def _elem_key(e):
    return repr(M.unwrap_element(e)[0])


def parse(text: str, name: str = "<stdin>", ruleset=None) -> M.Ruleset:
    """Parse nft text into a Ruleset; NftError (a UsageError) names file:line:col."""
    src = Source(name, text)
    base = os.path.dirname(os.path.abspath(name)) if name not in ("<stdin>", "-") else \
        os.getcwd()
    with bulk():
        tokens = tokenize(src)
        if "$" in text or "include" in text or "define" in text:
            tokens = preprocess.expand(tokens, base, {}, 0)
        return commands(Cursor(tokens, ruleset))


def parse_file(path: str) -> M.Ruleset:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise NftError(None, f"{path}: {e.strerror}") from None
    return parse(text, path)
