"""Which header a payload offset reads, and which matches nft added only as implied
dependencies: the protocol context of nftables' src/payload.c and src/proto.c. A match
on a protocol key (`meta l4proto tcp`, `ip protocol 6`, `meta nfproto ipv4`) says which
header comes next at a base; a later load of that header's field makes the match
redundant, and nft leaves it out when it lists the rule (payload_dependency_kill()).
Functions of the rule decoder `dec` (its ctx, deps, stmts and icmp_type).
"""
from . import decode_values as V
from . import model as M
from . import proto as P
from . import types as T


def payload_field(dec, r):
    """(field, type) a payload load in register r reads, by the header the context has at
    its base (payload_expr_complete()); a raw `@base,offset,length` when none fits. Naming
    the field kills the dependency that selected its header."""
    base, off, length = r.payload
    desc_name = dec.ctx.get(base)
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
        for fname, (foff, bits, typ) in ordered_fields(dec, name, desc):
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
                payload_dependency_kill(dec, base, name)
                need = P.ICMP_DEPS.get((name, fname))
                if need is not None and need != "echo" and need == dec.icmp_type:
                    kill_dep(dec, 3)
                return M.Payload(name, fname), typ
            if length < end - start and not (foff % 8 or bits % 8) and \
                    typ.kind in ("ipv4", "ipv6", "ether", "int"):
                r.prefix_of = (typ, end - start)
                payload_dependency_kill(dec, base, name)
                return M.Payload(name, fname), typ
    bits = length * 8
    return M.RawPayload(base, off * 8, bits), T.xinteger(bits)


def expand(dec, payload, data: bytes):
    """payload_match_expand(): one load and compare over adjacent fields (nft merges
    them when it compiles) back into one match per field."""
    base, off, length = payload
    name = dec.ctx.get(base) or ("th" if base == P.TH else "ether" if base == P.LL
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
                out.append((M.Payload(name, fname), V.typed(typ, chunk)))
                pos += bits
                break
        else:
            return None
    return out


def ordered_fields(dec, name, desc):
    """Header fields, those valid for the ICMP type already matched first (several
    ICMP fields share an offset: payload_expr_complete() picks by the type)."""
    items = list(desc.fields.items())
    if name not in ("icmp", "icmpv6") or dec.icmp_type is None:
        return items
    echo = P.ICMP_ECHO[name]

    def fits(f):
        need = P.ICMP_DEPS.get((name, f))
        return need == dec.icmp_type or (need == "echo" and dec.icmp_type in echo)
    return [x for x in items if fits(x[0])] + [x for x in items if not fits(x[0])]


def sensitive(left) -> bool:
    """Whether an equality match on `left` can change the protocol context, depending on
    its value (store_dep, and the ICMP type add_match keeps): a protocol key, `meta
    iiftype`, an ICMP type. Any other match's value changes nothing but itself."""
    if isinstance(left, M.Meta):
        return left.key in ("l4proto", "iiftype") or any(
            P.PROTOS[p].key == f"meta {left.key}" for p in ("inet", "netdev", "inet-service"))
    if isinstance(left, M.Payload):
        return P.PROTOS[left.proto].key == left.field or (
            left.proto in ("ip", "ip6") and left.field in ("protocol", "nexthdr")) or (
            left.proto in ("icmp", "icmpv6") and left.field == "type")
    return False


def store_dep(dec, left, value, idx):
    """A match on a protocol key tells which header comes next
    (relational_expr_pctx_update + payload_dependency_store)."""
    if isinstance(left, M.Meta) and left.key == "l4proto" and P.NH in dec.deps:
        meta_dependency_kill(dec, value)
    if isinstance(left, M.Meta):
        if left.key == "iiftype" and value == 1:
            dec.ctx[P.LL] = "ether"
            dec.deps[P.LL] = (idx, left)
            return
        for pname in ("inet", "netdev", "inet-service"):
            d = P.PROTOS[pname]
            if d.key == f"meta {left.key}":
                for upper, num in d.links.items():
                    if num == value and upper in P.PROTOS:   # igmp: no header known
                        b = P.PROTOS[upper].base
                        dec.ctx[b] = upper
                        dec.deps[b] = (idx, left)
                        return
    elif isinstance(left, M.Payload):
        d = P.PROTOS[left.proto]
        if (d.key == left.field) or (left.proto in ("ip", "ip6") and left.field in (
                "protocol", "nexthdr")):
            links = d.links if d.key == left.field else P.PROTOS[left.proto].links
            for upper, num in links.items():
                if num == value and upper in P.PROTOS:
                    b = P.PROTOS[upper].base
                    dec.ctx[b] = upper
                    dec.deps[b] = (idx, left)
                    return


def payload_dependency_kill(dec, base, proto):
    """payload_may_dependency_kill() of nft's payload.c: a payload of the next header
    makes the protocol match before it redundant, with its exceptions."""
    dep = dec.deps.get(base)
    if dep is None:
        return
    idx, left = dep
    if dec.fam in ("bridge", "netdev", "inet"):
        if isinstance(left, M.Payload) and P.PROTOS[left.proto].base == P.NH and \
                left.proto in ("ip", "ip6") and base == P.TH:
            return
        if isinstance(left, M.Payload) and P.PROTOS[left.proto].base == base:
            if base == P.LL:
                m = dec.stmts[idx]
                if left.proto == "vlan" or not (left.proto == "ether" and
                                                m.right.v == 0x8100):
                    return
    dec.stmts[idx] = None
    del dec.deps[base]


def meta_dependency_kill(dec, l4proto: int):
    """meta_may_dependency_kill(): `meta nfproto ipv4 meta l4proto icmp` is icmp."""
    idx, left = dec.deps[P.NH]
    m = dec.stmts[idx]
    nfproto = None
    if isinstance(left, M.Meta) and left.key == "nfproto":
        nfproto = m.right.v
    elif (isinstance(left, M.Meta) and left.key == "protocol") or (
            isinstance(left, M.Payload) and left.proto == "ether" and left.field == "type"):
        nfproto = {0x0800: 2, 0x86dd: 10}.get(m.right.v, 0)
    else:
        kill_dep(dec, P.NH)
        return
    if dec.fam in ("ip", "ip6"):
        kill = P.FAMILIES[dec.fam] == nfproto
    else:
        kill = (l4proto, nfproto) in ((1, 2), (58, 10))
    if kill:
        kill_dep(dec, P.NH)


def kill_dep(dec, base):
    """Drop the dependency match stored for `base`, if any."""
    dep = dec.deps.pop(base, None)
    if dep is not None:
        dec.stmts[dep[0]] = None
