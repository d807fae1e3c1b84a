"""Interface addresses: RTM_NEWADDR/DELADDR/GETADDR, struct ifaddrmsg and IFA_*
(<linux/if_addr.h>). IPv4 and IPv6 alike; the family comes from the address."""
import errno
import struct
from dataclasses import dataclass, field

from ...errors import UsageError
from ...ip import AF_INET, AF_INET6, IP, Subnet
from .. import codec, transport
from ..codec import NLM_F_CREATE, NLM_F_EXCL, CStruct, Table, ipaddr, strz, u8, u32
from ..errors import NetlinkError
from . import names

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
IFADDRMSG = struct.Struct("=BBBBI")     # family, prefixlen, flags, scope, index
RT_SCOPE_UNIVERSE, RT_SCOPE_HOST = 0, 254

# <linux/if_addr.h> IFA_F_*, in iproute2's print order (ip/ipaddress.c ifa_flag_names)
IFA_F = (("secondary", 0x01), ("temporary", 0x01), ("nodad", 0x02), ("optimistic", 0x04),
         ("dadfailed", 0x08), ("home", 0x10), ("deprecated", 0x20), ("tentative", 0x40),
         ("permanent", 0x80), ("mngtmpaddr", 0x100), ("noprefixroute", 0x200),
         ("autojoin", 0x400), ("stable-privacy", 0x800))

IFA = Table("IFA", (
    (1, "address", ipaddr),
    (2, "local", ipaddr),
    (3, "label", strz),
    (4, "broadcast", ipaddr),
    (5, "anycast", ipaddr),
    (6, "cacheinfo", CStruct("=IIII", ("preferred", "valid", "cstamp", "tstamp"))),
    (7, "multicast", ipaddr),
    (8, "flags", u32),
    (9, "rt_priority", u32),
    (11, "proto", u8),
))


@dataclass(slots=True)
class Address:
    """A decoded address: ifaddrmsg fields and IFA_* attributes. `address` is IFA_LOCAL
    when present (the interface's own address; IFA_ADDRESS is the peer on point-to-point
    links), as ip shows it."""
    index: int
    family: int
    prefixlen: int
    scope: int = 0
    flags: int = 0
    attrs: dict = field(default_factory=dict)

    @property
    def address(self) -> IP:
        return self.attrs.get("local") or self.attrs.get("address")

    @property
    def subnet(self) -> Subnet:
        return Subnet(self.address, self.prefixlen)

    @property
    def all_flags(self) -> int:
        """IFA_FLAGS (32 bits) when present, else the 8-bit header field."""
        return self.attrs.get("flags", self.flags)


def decode(body: bytes) -> Address:
    if len(body) < IFADDRMSG.size:
        raise codec.MalformedMessage(f"ifaddrmsg of {len(body)} bytes")
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(body)
    return Address(index, family, prefixlen, scope, flags, IFA.decode(body, IFADDRMSG.size))


def list(sock: transport.Socket, index: int = 0, family: int = 0) -> "list[Address]":
    """Every address, or one interface's (filtered by the kernel: strict dump checking)."""
    body = IFADDRMSG.pack(family, 0, 0, 0, index)
    return [a for a in (decode(m.body) for m in transport.dump(sock, RTM_GETADDR, body, op="address show")
                        if m.type == RTM_NEWADDR)
            if not index or a.index == index]


def request(verb: str, index: int, subnet, *, label: str | None = None, broadcast=None,
            scope=None) -> tuple[int, int, bytes]:
    """RTM_NEWADDR (NLM_F_CREATE|NLM_F_EXCL, like `ip addr add`) or RTM_DELADDR. As ip
    does, IFA_LOCAL and IFA_ADDRESS both carry the address, and 127/8 gets host scope."""
    net = Subnet(subnet, where="address")
    if scope is not None:
        scope = names.scope(scope)
    if verb == "add":
        mtype, flags = RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL
        if scope is None:
            scope = RT_SCOPE_HOST if net.family == AF_INET and net.address.bytes[0] == 127 else RT_SCOPE_UNIVERSE
    elif verb == "del":
        mtype, flags = RTM_DELADDR, 0
    else:
        raise ValueError(verb)
    if broadcast is not None:
        if net.family != AF_INET:
            raise UsageError("broadcast", "only IPv4 addresses have a broadcast address")
        broadcast = net.broadcast() if broadcast == "+" else IP(broadcast, "broadcast")
        if broadcast.family != AF_INET:
            raise UsageError("broadcast", f"{broadcast} is not an IPv4 address")
    if label is not None and len(label.encode()) >= 16:
        raise UsageError("label", f"{label!r} is longer than 15 bytes")
    attrs = {"local": net.address, "address": net.address, "label": label, "broadcast": broadcast}
    return mtype, flags, IFADDRMSG.pack(net.family, net.prefix, 0, scope or 0, index) + IFA.encode(attrs)


def with_index(body: bytes, index: int) -> bytes:
    """A request body with the interface index set in its header (at offset 4)."""
    return body[:4] + struct.pack("=i", index) + body[8:]


def build(index: int, subnet, **options) -> Address:
    """The Address an `add` would assign, as a value (a diff's desired side)."""
    return decode(request("add", index, subnet, **options)[2])


def add(sock: transport.Socket, index: int, subnet, **options) -> None:
    _talk(sock, request("add", index, subnet, **options), "address add", subnet)


def delete(sock: transport.Socket, index: int, subnet) -> None:
    _talk(sock, request("del", index, subnet), "address del", subnet)


def _talk(sock, req, op, subnet) -> None:
    try:
        transport.talk(sock, *req, op=op, obj=str(subnet))
    except NetlinkError as e:
        raise sharpen(e) from None


def sharpen(e: NetlinkError) -> NetlinkError:
    if e.errno == errno.EEXIST:
        return e.sharpen("the interface already has this address")
    if e.errno == errno.EADDRNOTAVAIL:
        return e.sharpen("the interface has no such address")
    return e


def to_json(addr: Address) -> dict:
    """One entry of `ip -j addr show`'s addr_info (ip/ipaddress.c print_addrinfo and
    print_ifa_flags), same keys in the same order."""
    a = addr.attrs
    out = {"family": {AF_INET: "inet", AF_INET6: "inet6"}.get(addr.family, str(addr.family))}
    local, peer = a.get("local") or a.get("address"), a.get("address") or a.get("local")
    if local is not None:
        out["local"] = str(local)
        if peer != local:
            out["address"] = str(peer)
        out["prefixlen"] = addr.prefixlen
        if "rt_priority" in a:
            out["metric"] = a["rt_priority"]
    for key in ("broadcast", "anycast", "multicast"):
        if key in a:
            out[key] = str(a[key])
    out["scope"] = names.n2a("rt_scopes", addr.scope)
    flags = addr.all_flags
    for name, bit in IFA_F:
        if bit == 0x80:
            if not flags & bit:
                out["dynamic"] = True
        elif flags & bit:
            out["temporary" if bit == 0x01 and addr.family == AF_INET6 else name] = True
        flags &= ~bit
    if flags:
        out["ifa_flags"] = f"{flags:02x}"
    if "proto" in a:
        out["protocol"] = names.n2a("rt_addrprotos", a["proto"])
    if "label" in a:
        out["label"] = a["label"]
    ci = a.get("cacheinfo")
    if ci:
        out["valid_life_time"] = ci["valid"]
        out["preferred_life_time"] = ci["preferred"]
    return out
