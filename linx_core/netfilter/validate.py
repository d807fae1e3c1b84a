"""Family-aware checks of a ruleset, before anything is compiled or sent: what the kernel
would refuse with a bare EOPNOTSUPP or EINVAL is reported here at its file:line:col.

- a chain type exists in the table's family and allows the hook (nat has no forward
  hook, route only output; arp has no nat);
- the hook exists in the family; netdev hooks and inet ingress need a device;
- a policy belongs to a base chain;
- masquerade only in a nat postrouting chain, snat only in postrouting/input, dnat and
  redirect only in prerouting/output, and NAT only in nat chains;
- jump/goto name a regular chain of the same table;
- rule tags are unique in their table.
"""
from . import model as M
from . import proto as P
from .location import NftError, as_loc

NAT_HOOKS = {"masquerade": ("postrouting",), "snat": ("postrouting", "input"),
             "dnat": ("prerouting", "output"), "redirect": ("prerouting", "output")}


def validate(rs: M.Ruleset) -> None:
    for t in rs.tables.values():
        table(t)


def table(t: M.Table) -> None:
    tags = {}
    for c in t.chains.values():
        chain(t, c)
        for r in c.rules:
            if r.tag is not None:
                if r.tag in tags:
                    raise NftError(r.loc, f"duplicate rule tag {r.tag!r} (first used at "
                                          f"{as_loc(tags[r.tag])})")
                tags[r.tag] = r.loc
            for s in r.stmts:
                stmt(t, c, s)


def chain(t: M.Table, c: M.Chain) -> None:
    fam = t.family
    where = f"chain {c.name}"
    if not c.base:
        if c.policy is not None:
            raise NftError(c.loc, f"{where}: a policy needs a base chain "
                                  "(type ... hook ... priority ...)")
        return
    kinds = P.CHAIN_TYPES.get(c.type)
    if kinds is None:
        raise NftError(c.loc, f"{where}: unknown chain type {c.type!r} "
                              f"(filter, nat, route)")
    families, hooks = kinds
    if fam not in families:
        raise NftError(c.loc, f"{where}: chain type {c.type} is not valid in the {fam} "
                              f"family (it is in {', '.join(families)})")
    if c.hook not in P.HOOKS[fam]:
        raise NftError(c.loc, f"{where}: hook {c.hook!r} does not exist in the {fam} family "
                              f"({', '.join(P.HOOKS[fam])})")
    if hooks is not None and c.hook not in hooks:
        raise NftError(c.loc, f"{where}: a {c.type} chain cannot use the {c.hook} hook "
                              f"({', '.join(hooks)})")
    if (fam, c.hook) in P.DEVICE_HOOKS and not c.devices:
        raise NftError(c.loc, f"{where}: the {c.hook} hook needs a device "
                              f"(type {c.type} hook {c.hook} device NAME priority ...)")
    if c.devices and (fam, c.hook) not in P.DEVICE_HOOKS:
        raise NftError(c.loc, f"{where}: devices belong to netdev or inet ingress chains")
    if not -(1 << 31) <= c.priority < (1 << 31):
        raise NftError(c.loc, f"{where}: priority {c.priority} is out of range")


def stmt(t: M.Table, c: M.Chain, s) -> None:
    if isinstance(s, M.Nat):
        if c.base and c.type != "nat":
            raise NftError(s.loc, f"{s.kind} is only valid in a nat chain (chain {c.name} "
                                  f"is type {c.type})")
        hooks = NAT_HOOKS[s.kind]
        if c.base and c.hook not in hooks:
            raise NftError(s.loc, f"{s.kind} is only valid in {' or '.join(hooks)} chains "
                                  f"(chain {c.name} hooks {c.hook})")
    elif isinstance(s, M.VerdictStmt) and s.verdict.kind in ("jump", "goto"):
        target = t.chains.get(s.verdict.chain)
        if target is None:
            raise NftError(s.verdict.loc or s.loc, f"{s.verdict.kind}: no chain "
                                                   f"{s.verdict.chain!r} in table "
                                                   f"{t.family} {t.name}")
        if target.base:
            raise NftError(s.verdict.loc or s.loc, f"{s.verdict.kind}: {target.name} is a "
                                                   "base chain; jump to regular chains only")
