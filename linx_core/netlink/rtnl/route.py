"""Routes: RTM_NEWROUTE/DELROUTE/GETROUTE, struct rtmsg and RTA_* (<linux/rtnetlink.h>).

rtmsg.rtm_table is a u8, so a table above 255 rides in RTA_TABLE with the header byte
RT_TABLE_UNSPEC (iproute2 does the same); Route.table reads whichever is there. rtm_protocol
is the ownership tag a reconciler manages its own routes by (see diff.py).
"""
import errno
import struct
from socket import inet_ntop

from ...errors import UsageError
from ...ip import AF_INET, AF_INET6, IP, Subnet
from .. import codec, transport
from ..codec import (NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, CStruct, Table,
                     binary, ipaddr, u8, u32)
from ..errors import NetlinkError
from . import names

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RT_TABLE_UNSPEC, RT_TABLE_MAIN = 0, 254
RTPROT_UNSPEC, RTPROT_BOOT = 0, 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST, RT_SCOPE_NOWHERE = 0, 253, 254, 255
RTN_UNSPEC, RTN_UNICAST, RTN_LOCAL = 0, 1, 2
RTM_F_CLONED = 0x200

# rtm_flags in iproute2's print order (ip/iproute.c print_rt_flags)
RT_FLAGS = (("dead", 0x1), ("onlink", 0x4), ("pervasive", 0x2), ("offload", 0x8), ("trap", 0x40),
            ("notify", 0x100), ("linkdown", 0x10), ("unresolved", 0x20), ("rt_offload", 0x4000),
            ("rt_trap", 0x8000), ("rt_offload_failed", 0x20000000))

RTA = Table("RTA", (
    (1, "dst", ipaddr),
    (2, "src", ipaddr),
    (3, "iif", u32),
    (4, "oif", u32),
    (5, "gateway", ipaddr),
    (6, "priority", u32),
    (7, "prefsrc", ipaddr),
    (8, "metrics", binary),
    (9, "multipath", binary),
    (11, "flow", u32),
    (12, "cacheinfo", CStruct("=IIiIIIII", ("clntref", "lastuse", "expires", "error", "used",
                                            "id", "ts", "tsage"))),
    (15, "table", u32),
    (16, "mark", u32),
    (20, "pref", u8),
    (25, "uid", u32),
    (26, "ttl_propagate", u8),
    (30, "nh_id", u32),
))

VERBS = {"add": (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL),
         "replace": (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE),
         "change": (RTM_NEWROUTE, NLM_F_REPLACE),
         "append": (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND),
         "del": (RTM_DELROUTE, 0)}


class Route:
    """A decoded route: `hdr`, the rtmsg fields as a tuple (read them by name through the
    properties), and `attrs`, the RTA_* attributes by name. Two slots, because a listing
    builds one per route and there can be a million."""

    __slots__ = ("hdr", "attrs")

    def __init__(self, hdr: tuple, attrs: dict):
        self.hdr, self.attrs = hdr, attrs

    family = property(lambda self: self.hdr[0])
    dst_len = property(lambda self: self.hdr[1])
    src_len = property(lambda self: self.hdr[2])
    tos = property(lambda self: self.hdr[3])
    header_table = property(lambda self: self.hdr[4])
    protocol = property(lambda self: self.hdr[5])
    scope = property(lambda self: self.hdr[6])
    type = property(lambda self: self.hdr[7])
    flags = property(lambda self: self.hdr[8])

    @property
    def table(self) -> int:
        """The effective table: RTA_TABLE when present (any table), else the header byte."""
        return self.attrs.get("table", self.hdr[4])

    dst = property(lambda self: self.attrs.get("dst"))
    gateway = property(lambda self: self.attrs.get("gateway"))
    oif = property(lambda self: self.attrs.get("oif"))
    metric = property(lambda self: self.attrs.get("priority"))
    prefsrc = property(lambda self: self.attrs.get("prefsrc"))

    def __repr__(self) -> str:
        return f"Route({self.hdr!r}, {self.attrs!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Route) and (self.hdr, self.attrs) == (other.hdr, other.attrs)


def decode(body: bytes) -> Route:
    if len(body) < 12:
        raise codec.MalformedMessage(f"rtmsg of {len(body)} bytes")
    return Route(RTMSG.unpack_from(body), RTA.decode(body, 12))


def _table_fields(table: int) -> tuple[int, int | None]:
    """(header byte, RTA_TABLE): small tables in the header, all of them in RTA_TABLE."""
    return (table, None) if table < 256 else (RT_TABLE_UNSPEC, table)


def _dump_body(family: int, table: int | None) -> bytes:
    """Kernel-side filters under strict dump checking: the family, and the table."""
    hdr, ext = _table_fields(table) if table else (0, None)
    return RTMSG.pack(family, 0, 0, 0, hdr, 0, 0, 0, 0) + RTA.encode({"table": ext})


def _keep(msgs, table: int | None):
    """Routes, without the cached clones (as `ip route show`), of `table` when given."""
    for m in msgs:
        if m.type == RTM_NEWROUTE:
            r = decode(m.body)
            if not r.hdr[8] & RTM_F_CLONED and (not table or r.table == table):
                yield r


def list(sock: transport.Socket, family: int = 0, table: int | None = None) -> "list[Route]":
    """Routes of `family` (0: all), of one table when given; redone if the dump was torn."""
    msgs = transport.dump(sock, RTM_GETROUTE, _dump_body(family, table), op="route show")
    return [*_keep(msgs, table)]


def iterate(sock: transport.Socket, family: int = 0, table: int | None = None):
    """As list(), streamed: routes as the kernel sends them (a full table can be a million),
    DumpInterrupted at the end if it was torn. Read it to the end before the next request."""
    return _keep(transport.dump_iter(sock, RTM_GETROUTE, _dump_body(family, table),
                                     op="route show"), table)


def get(sock: transport.Socket, dst, *, src=None, oif: int | None = None, iif: int | None = None,
        mark: int | None = None) -> Route:
    """The kernel's lookup for `dst` (`ip route get`): RTM_GETROUTE without NLM_F_DUMP and
    with RTA_DST; an unroutable destination is ENETUNREACH."""
    address = IP(dst, "to")
    if src is not None and IP(src, "from").family != address.family:
        raise UsageError("from", f"{src} and {address} are not of the same address family")
    body = RTMSG.pack(address.family, address.bits, 0 if src is None else address.bits, 0, 0, 0, 0, 0, 0)
    body += RTA.encode({"dst": address, "src": src, "oif": oif, "iif": iif, "mark": mark})
    try:
        msgs = transport.talk(sock, RTM_GETROUTE, 0, body, op="route get", obj=str(address))
    except NetlinkError as e:
        if e.errno == errno.ENETUNREACH:
            raise e.sharpen(f"no route to {address}") from None
        raise
    return decode(msgs[0].body)


def request(verb: str, dst, *, via=None, oif: int | None = None, table=None, protocol=None,
            metric=None, scope=None, type: str | None = None, prefsrc=None,
            family: int | None = None, onlink: bool = False) -> tuple[int, int, bytes]:
    """The RTM_NEWROUTE/DELROUTE request for `verb` (VERBS), with iproute2's defaults
    (ip/iproute.c iproute_modify): main table; for a change, protocol boot, unicast, scope
    link when there is no gateway, universe otherwise; for a delete nothing that would narrow
    the match beyond what was given. dst is a prefix (`10.0.0.0/24`, a bare address is a host
    route) or "default"; its family and the gateway's must agree. Everything but the
    destination is checked and encoded once per set of options (_options): a batch of routes
    shares them."""
    mtype, flags = VERBS[verb]
    gateway = via if via is None or isinstance(via, IP) else IP(via, "via")
    if isinstance(dst, Subnet):
        net = dst
    elif dst == "default":
        fam = gateway.family if gateway is not None else (family or AF_INET)
        net = Subnet("0.0.0.0/0" if fam == AF_INET else "::/0")
    else:
        net = Subnet(dst, where="to")
    raw, prefix = net.address.bytes, net.prefix
    if gateway is not None and len(gateway.bytes) != len(raw):
        raise UsageError("via", f"gateway {gateway} and destination {net} are not of the same "
                                "address family")
    net_family = AF_INET if len(raw) == 4 else AF_INET6
    if family and family != net_family:
        raise UsageError("to", f"{net} is not an {'IPv4' if family == AF_INET else 'IPv6'} prefix")
    if prefix < len(raw) * 8 and net.host_bits():
        raise UsageError("to", f"{net} has host bits set (did you mean {net.network()}/{net.prefix}?)")
    key = (verb, gateway and gateway.bytes, table, protocol, metric, scope, type, prefsrc, oif, onlink)
    try:
        opts = _options_cache.get(key)
    except TypeError:                           # an unhashable option: checked below as any other
        key, opts = None, None
    if opts is None:
        opts = _options(verb, gateway, table, protocol, metric, scope, type, prefsrc, oif, onlink)
        if key is not None and len(_options_cache) < 256:
            _options_cache[key] = opts
    hdr, table_attr, tail, src = opts
    if src is not None and len(src.bytes) != len(raw):
        raise UsageError("src", f"{src} and {net} are not of the same address family")
    if prefix:
        return mtype, flags, b"".join((RTMSG.pack(net_family, prefix, *hdr), table_attr,
                                       _RTA_HDR.pack(4 + len(raw), 1), raw, tail))
    return mtype, flags, RTMSG.pack(net_family, prefix, *hdr) + table_attr + tail   # no RTA_DST: default


_options_cache: dict = {}
_RTA_HDR = struct.Struct("=HH")


def _options(verb, gateway, table, protocol, metric, scope, type, prefsrc, oif, onlink) -> tuple:
    """What request() sends besides the destination: (rtmsg fields after dst_len, RTA_TABLE,
    the attributes after RTA_DST, the preferred source), checked."""
    if type is None:
        rtype = RTN_UNSPEC if verb == "del" else RTN_UNICAST
    else:
        rtype = names.route_type(type)
    table = RT_TABLE_MAIN if table is None else names.table(table)
    if table == RT_TABLE_UNSPEC:
        raise UsageError("table", "0 (unspec) is not a routing table")
    hdr_table, ext_table = _table_fields(table)
    if protocol is not None:
        proto = names.protocol(protocol)
    else:
        proto = RTPROT_UNSPEC if verb == "del" else RTPROT_BOOT
    if scope is not None:
        rscope = names.scope(scope)
    elif rtype in (RTN_LOCAL, 10):
        rscope = RT_SCOPE_HOST
    elif rtype in (3, 4, 5):
        rscope = RT_SCOPE_LINK
    elif verb == "del":
        rscope = RT_SCOPE_NOWHERE
    elif gateway is None and rtype == RTN_UNICAST:
        rscope = RT_SCOPE_LINK
    else:
        rscope = RT_SCOPE_UNIVERSE
    if metric is not None:
        try:
            metric = int(metric)
        except (TypeError, ValueError):
            metric = -1
        if not 0 <= metric <= 0xFFFFFFFF:
            raise UsageError("metric", "expected a number 0..4294967295")
    if prefsrc is not None:
        prefsrc = IP(prefsrc, "src")
    hdr = (0, 0, hdr_table, proto, rscope, rtype, 0x4 if onlink else 0)
    tail = RTA.encode({"gateway": gateway, "priority": metric, "prefsrc": prefsrc, "oif": oif})
    return hdr, RTA.encode({"table": ext_table}), tail, prefsrc


def with_oif(body: bytes, oif: int) -> bytes:
    """A request body with RTA_OIF added (`dev` named in a batch, resolved at send time)."""
    return body + _RTA_OIF.pack(8, 4, oif)


_RTA_OIF = struct.Struct("=HHI")        # nla_len, nla_type RTA_OIF, the index


def build(dst, **options) -> Route:
    """The Route an `add` with these options would install, as a value (for a diff's desired
    side): the request's own body, decoded."""
    return decode(request("add", dst, **options)[2])


def change(sock: transport.Socket, verb: str, dst, **options) -> None:
    """add (strict: EEXIST on a duplicate), replace (upsert), change, append or del."""
    req = request(verb, dst, **options)
    try:
        transport.talk(sock, *req, op=f"route {verb}", obj=str(dst))
    except NetlinkError as e:
        raise sharpen(e) from None


def add(sock, dst, **options) -> None:
    change(sock, "add", dst, **options)


def replace(sock, dst, **options) -> None:
    change(sock, "replace", dst, **options)


def delete(sock, dst, **options) -> None:
    change(sock, "del", dst, **options)


def sharpen(e: NetlinkError) -> NetlinkError:
    if e.errno == errno.EEXIST:
        return e.sharpen("the route already exists (use replace to overwrite it)")
    if e.errno == errno.ESRCH:
        return e.sharpen("no such route")
    if e.errno == errno.ENETUNREACH:
        return e.sharpen("network is unreachable (no route to the gateway)")
    return e


_flag_names: dict = {0: ()}


def flag_names(flags: int) -> "list[str]":
    names_ = _flag_names.get(flags)
    if names_ is None:
        names_ = _flag_names[flags] = tuple(name for name, bit in RT_FLAGS if flags & bit)
    return [*names_]


def to_json(route: Route, by_index: dict, table_filter: int | None = None) -> dict:
    """The object `ip -j route show` prints (ip/iproute.c print_route), same keys in the
    same order. `table_filter` is the table asked for: ip prints the table only when it
    shows several (`table all`) and it is not main. Written for speed (a listing can be
    100k routes): one pass, no property calls."""
    family, dst_len, src_len, tos, htable, proto, scope, rtype, flags = route.hdr
    a = route.attrs
    out = {}
    if rtype != RTN_UNICAST:
        out["type"] = names.ROUTE_TYPES.get(rtype, str(rtype))
    host_len = 32 if family == AF_INET else 128
    dst = a.get("dst")
    if dst is not None:
        text = inet_ntop(family, dst.bytes)
        out["dst"] = text if dst_len == host_len else f"{text}/{dst_len}"
    elif dst_len:
        out["dst"] = f"0/{dst_len} "
    else:
        out["dst"] = "default"
    if "src" in a:
        text = inet_ntop(family, a["src"].bytes)
        out["from"] = text if src_len == host_len else f"{text}/{src_len}"
    elif src_len:
        out["src"] = f"0/{src_len}"
    if "nh_id" in a:
        out["nhid"] = a["nh_id"]
    if tos:
        out["tos"] = f"0x{tos:02x}"
    gateway = a.get("gateway")
    if gateway is not None:
        out["gateway"] = inet_ntop(family, gateway.bytes)
    oif = a.get("oif")
    if oif is not None:
        link = by_index.get(oif)
        out["dev"] = link.name if link is not None else f"if{oif}"
    table = a.get("table", htable)
    if table and table != RT_TABLE_MAIN and not table_filter:
        out["table"] = names.n2a("rt_tables", table)
    if not flags & RTM_F_CLONED:
        if proto != RTPROT_BOOT:
            out["protocol"] = names.n2a("rt_protos", proto)
        if scope != RT_SCOPE_UNIVERSE:
            out["scope"] = names.n2a("rt_scopes", scope)
    prefsrc = a.get("prefsrc")
    if prefsrc is not None:
        out["prefsrc"] = inet_ntop(family, prefsrc.bytes)
    if "priority" in a:
        out["metric"] = a["priority"]
    out["flags"] = flag_names(flags)
    if not a.keys() <= _PLAIN:
        _to_json_rare(out, family, flags, a, by_index)
    return out


_PLAIN = frozenset(("table", "dst", "gateway", "oif", "priority", "prefsrc", "src", "nh_id"))


def _to_json_rare(out: dict, family: int, flags: int, a: dict, by_index: dict) -> None:
    """The attributes a plain unicast route does not carry."""
    if a.get("mark"):
        out["mark"] = a["mark"]
    if "uid" in a:
        out["uid"] = a["uid"]
    if family == AF_INET and flags & RTM_F_CLONED:
        out["cache"] = [name for name, bit in (("local", 0x80000000), ("reject", 0x1000000))
                        if flags & bit]
    ci = a.get("cacheinfo")
    if ci and family in (AF_INET, AF_INET6):
        if ci.get("expires"):
            out["expires"] = int(ci["expires"] / 100)
        if ci.get("error"):
            out["error"] = ci["error"]
    if "iif" in a:
        out["iif"] = _ifname(by_index, a["iif"])
    if "pref" in a:
        out["pref"] = {0x3: "low", 0x0: "medium", 0x1: "high"}.get(a["pref"], a["pref"])
    if "ttl_propagate" in a:
        out["ttl-propogate"] = bool(a["ttl_propagate"])


def _ifname(by_index: dict, index: int) -> str:
    link = by_index.get(index)
    return link.name if link is not None else f"if{index}"
