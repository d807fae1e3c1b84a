"""Kernel data back to model values, shared by the set and the rule decoders: the error they
raise, the udata TLVs nft stores comments and type hints in (libnftnl's nftnl_udata), data
registers as typed values (nft's netlink_gen_data / delinearize of constants), verdicts,
and the stateful expressions (counter, limit, quota) that rules and set elements both carry.
"""
from ..netlink.errors import MalformedMessage
from . import model as M
from . import nf_tables as N
from . import types as T
from .listing import VERDICTS

UNITS = {v: k for k, v in N.UNIT_SECONDS.items()}
OBJ_KINDS = {v: k for k, v in N.OBJ_TYPES.items()}


class DecodeError(MalformedMessage):
    """Kernel state linx cannot read back into the model: an expression it does not know,
    or bytes that do not make a rule (EBADMSG, exit status 1)."""


def udata(raw: bytes) -> dict:
    """nftnl_udata TLVs (u8 type, u8 length, value) by type."""
    out, i = {}, 0
    while i + 2 <= len(raw):
        t, n = raw[i], raw[i + 1]
        out[t] = raw[i + 2:i + 2 + n]
        i += 2 + n
    return out


def comment(raw):
    """The comment (udata type 0) of a table, chain, rule or element, or None."""
    if not raw:
        return None
    c = udata(raw).get(0)
    return c.split(b"\0", 1)[0].decode(errors="replace") if c is not None else None


def u32le(b, default=0):
    return int.from_bytes(b[:4], "little") if b else default


def split(types, raw: bytes):
    """A concatenation's data into its parts: each part takes whole 32-bit registers."""
    out, off = [], 0
    for t in types:
        n = (t.size + 3) // 4 * 4
        out.append(raw[off:off + n])
        off += n
    return out


def val(t, raw: bytes):
    """The Python value of data of type t: a string, or an integer in t's byte order."""
    if t.kind in ("str", "ifindex"):
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    return int.from_bytes(raw[:t.size], t.order)


def typed(t, data: bytes, hton=False):
    """Data of type t as a value; `hton` when a byteorder expression swapped it into the
    register (the type's host order is then the reverse)."""
    if hton and t.order == T.HOST:
        data = data[::-1]
    if t.kind == "bitmask":
        return M.Value(t, int.from_bytes(data[:t.size], t.order))
    return M.Value(t, val(t, data))


def net_value(t, n: int):
    """An interval key (stored big-endian, host-order types swapped by nft) as a value."""
    if t.kind == "str":
        return n.to_bytes(t.size, "big").split(b"\0", 1)[0].decode(errors="replace")
    return n


def range_expr(t, lo: int, hi: int):
    """lo..hi as nft prints it: one value, a prefix when it is one, or a range."""
    if lo == hi:
        return M.Value(t, net_value(t, lo))
    if t.name in T.PREFIX_TYPES:
        span = hi - lo + 1
        if span & (span - 1) == 0 and lo & (span - 1) == 0:
            return M.Prefix(M.Value(t, lo), t.bits - span.bit_length() + 1)
    return M.Range(M.Value(t, net_value(t, lo)), M.Value(t, net_value(t, hi)))


def verdict(d: dict) -> M.Verdict:
    kind = VERDICTS.get(d.get("code"), "unknown")
    return M.Verdict(kind, d.get("chain"))


def limit(d: dict) -> M.Limit:
    """A limit expression; nft leaves out the default burst (5 packets, 0 bytes)."""
    is_bytes = d.get("type") == 1
    burst = d.get("burst", 0)
    return M.Limit(d.get("rate", 0), UNITS.get(d.get("unit"), "second"),
                   None if burst == (0 if is_bytes else 5) else burst, is_bytes,
                   bool(d.get("flags", 0) & 1))


def stateful(x: dict):
    """A counter, limit or quota expression (of a set element, a dynset or a rule)."""
    name, d = x["name"], x.get("data", {})
    if name == "counter":
        return M.Counter(d.get("packets", 0), d.get("bytes", 0))
    if name == "limit":
        return limit(d)
    if name == "quota":
        return M.Quota(d.get("bytes", 0), d.get("consumed", 0), bool(d.get("flags", 0) & 1))
    raise DecodeError(f"unknown stateful expression {name}")
