"""Policy-routing rules: RTM_NEWRULE/DELRULE/GETRULE, struct fib_rule_hdr, FRA_* and
FR_ACT_* (<linux/fib_rules.h>). Like rtmsg, the header's table is a u8; FRA_TABLE carries
any table."""
import errno
import struct
from dataclasses import dataclass, field

from ...errors import UsageError
from ...ip import AF_INET, AF_INET6, Subnet
from .. import codec, transport
from ..codec import NLM_F_CREATE, NLM_F_EXCL, Table, ipaddr, strz, u8, u32
from ..errors import NetlinkError
from . import names

RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res1, res2, action, flags
FR_ACT_UNSPEC, FR_ACT_TO_TBL, FR_ACT_GOTO, FR_ACT_NOP = 0, 1, 2, 3
FIB_RULE_INVERT = 0x2
RT_TABLE_MAIN = 254

FRA = Table("FRA", (
    (1, "dst", ipaddr),
    (2, "src", ipaddr),
    (3, "iifname", strz),
    (4, "goto", u32),
    (6, "priority", u32),
    (10, "fwmark", u32),
    (11, "flow", u32),
    (13, "suppress_ifgroup", u32),
    (14, "suppress_prefixlen", u32),
    (15, "table", u32),
    (16, "fwmask", u32),
    (17, "oifname", strz),
    (19, "l3mdev", u8),
    (21, "protocol", u8),
    (22, "ip_proto", u8),
))


@dataclass(slots=True)
class Rule:
    family: int
    dst_len: int = 0
    src_len: int = 0
    tos: int = 0
    header_table: int = 0
    res1: int = 0
    res2: int = 0
    action: int = FR_ACT_TO_TBL
    flags: int = 0
    attrs: dict = field(default_factory=dict)

    @property
    def table(self) -> int:
        return self.attrs.get("table", self.header_table)

    priority = property(lambda self: self.attrs.get("priority", 0))
    src = property(lambda self: self.attrs.get("src"))
    dst = property(lambda self: self.attrs.get("dst"))
    fwmark = property(lambda self: self.attrs.get("fwmark"))


def decode(body: bytes) -> Rule:
    if len(body) < FIB_RULE_HDR.size:
        raise codec.MalformedMessage(f"fib_rule_hdr of {len(body)} bytes")
    return Rule(*FIB_RULE_HDR.unpack_from(body), FRA.decode(body, FIB_RULE_HDR.size))


def list(sock: transport.Socket, family: int = 0) -> "list[Rule]":
    body = FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return [decode(m.body) for m in transport.dump(sock, RTM_GETRULE, body, op="rule show")
            if m.type == RTM_NEWRULE]


def request(verb: str, *, src=None, dst=None, fwmark=None, fwmask=None, table=None,
            priority=None, iif: str | None = None, oif: str | None = None, protocol=None,
            family: int | None = None, invert: bool = False) -> tuple[int, int, bytes]:
    """As `ip rule add|del` (ip/iprule.c iprule_modify): add is CREATE|EXCL with action
    "lookup", table main unless given; the family follows the prefixes, else IPv4."""
    if verb == "add":
        mtype, flags, action = RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, FR_ACT_TO_TBL
    elif verb == "del":
        mtype, flags, action = RTM_DELRULE, 0, FR_ACT_UNSPEC
    else:
        raise ValueError(verb)
    src = None if src is None or src == "all" else Subnet(src, where="from")
    dst = None if dst is None or dst == "all" else Subnet(dst, where="to")
    fams = {n.family for n in (src, dst) if n is not None}
    if len(fams) > 1:
        raise UsageError("to", f"{src} and {dst} are not of the same address family")
    fam = fams.pop() if fams else (family or AF_INET)
    if family and family != fam:
        raise UsageError("from" if src else "to", "address family does not match the one asked for")
    ext = None
    if table is not None:
        tid = names.table(table)
        hdr_table, ext = (tid, None) if tid < 256 else (0, tid)
        if verb == "del" and action == FR_ACT_UNSPEC:
            action = FR_ACT_TO_TBL
    else:
        hdr_table = RT_TABLE_MAIN if verb == "add" else 0
    attrs = {"src": src.address if src and src.prefix else None,
             "dst": dst.address if dst and dst.prefix else None,
             "priority": _number(priority, "priority", 0xFFFFFFFF),
             "fwmark": _number(fwmark, "fwmark", 0xFFFFFFFF),
             "fwmask": _number(fwmask, "fwmask", 0xFFFFFFFF),
             "table": ext, "iifname": iif, "oifname": oif,
             "protocol": None if protocol is None else names.protocol(protocol)}
    body = FIB_RULE_HDR.pack(fam, dst.prefix if dst else 0, src.prefix if src else 0, 0, hdr_table,
                             0, 0, action, FIB_RULE_INVERT if invert else 0) + FRA.encode(attrs)
    return mtype, flags, body


def build(**options) -> Rule:
    """The rule an `add` would install, as a value (a diff's desired side). Give a priority:
    without one the kernel picks it, and the key will not match."""
    return decode(request("add", **options)[2])


def _number(value, where: str, limit: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value, 0) if isinstance(value, str) else int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= limit:
        raise UsageError(where, f"{value!r} is not a number 0..{limit}")
    return number


def change(sock: transport.Socket, verb: str, **options) -> None:
    try:
        transport.talk(sock, *request(verb, **options), op=f"rule {verb}",
                       obj=" ".join(f"{k} {v}" for k, v in options.items() if v is not None))
    except NetlinkError as e:
        if e.errno == errno.EEXIST:
            raise e.sharpen("the rule already exists") from None
        if e.errno == errno.ENOENT:
            raise e.sharpen("no such rule") from None
        raise


def add(sock, **options) -> None:
    change(sock, "add", **options)


def delete(sock, **options) -> None:
    change(sock, "del", **options)


def to_json(rule: Rule) -> dict:
    """The object `ip -j rule show` prints (ip/iprule.c print_rule)."""
    a = rule.attrs
    host_len = 32 if rule.family == AF_INET else 128 if rule.family == AF_INET6 else -1
    out = {"priority": a.get("priority", 0)}
    if rule.flags & FIB_RULE_INVERT:
        out["not"] = None
    if "src" in a:
        out["src"] = str(a["src"])
        if rule.src_len != host_len:
            out["srclen"] = rule.src_len
    elif rule.src_len:
        out["src"], out["srclen"] = "0", rule.src_len
    else:
        out["src"] = "all"
    if "dst" in a:
        out["dst"] = str(a["dst"])
        if rule.dst_len != host_len:
            out["dstlen"] = rule.dst_len
    elif rule.dst_len:
        out["dst"], out["dstlen"] = "0", rule.dst_len
    if rule.tos:
        out["tos"] = f"0x{rule.tos:02x}"
    if "fwmark" in a or "fwmask" in a:
        out["fwmark"] = hex(a.get("fwmark", 0))
        if a.get("fwmask", 0xFFFFFFFF) != 0xFFFFFFFF:
            out["fwmask"] = hex(a["fwmask"])
    if "iifname" in a:
        out["iif"] = a["iifname"]
    if "oifname" in a:
        out["oif"] = a["oifname"]
    if a.get("l3mdev"):
        out["l3mdev"] = None
    table = rule.table
    if table:
        out["table"] = names.n2a("rt_tables", table)
        if a.get("suppress_prefixlen", 0xFFFFFFFF) != 0xFFFFFFFF:
            out["suppress_prefixlen"] = a["suppress_prefixlen"]
    if rule.action == FR_ACT_GOTO:
        out["goto"] = a["goto"] if "goto" in a else "none"
    elif rule.action == FR_ACT_NOP:
        out["nop"] = None
    elif rule.action != FR_ACT_TO_TBL:
        out["action"] = names.ROUTE_TYPES.get(rule.action, str(rule.action))
    proto = a.get("protocol")
    if proto and proto != 2:
        out["protocol"] = names.n2a("rt_protos", proto)
    return out
