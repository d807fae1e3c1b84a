"""Neighbours — the ARP (IPv4) and NDP (IPv6) tables: RTM_NEWNEIGH/DELNEIGH/GETNEIGH,
struct ndmsg, NDA_* and NUD_* (<linux/neighbour.h>)."""
import errno
import struct
from dataclasses import dataclass, field

from ...errors import UsageError
from ...ip import IP, MAC
from .. import codec, transport
from ..codec import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, CStruct, Table, ipaddr, lladdr, u8, u16, u32
from ..errors import NetlinkError
from . import link, names

RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NDMSG = struct.Struct("=BxxxiHBB")   # family, pad, pad, ifindex, state, flags, type

# NUD_* in iproute2's print order (ip/ipneigh.c print_neigh_state)
NUD = (("INCOMPLETE", 0x01), ("REACHABLE", 0x02), ("STALE", 0x04), ("DELAY", 0x08),
       ("PROBE", 0x10), ("FAILED", 0x20), ("NOARP", 0x40), ("PERMANENT", 0x80))
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_PROXY, NTF_EXT_LEARNED, NTF_OFFLOADED, NTF_ROUTER = 0x08, 0x10, 0x20, 0x80

NDA = Table("NDA", (
    (1, "dst", ipaddr),
    (2, "lladdr", lladdr),
    (3, "cacheinfo", CStruct("=IIII", ("confirmed", "used", "updated", "refcnt"))),
    (4, "probes", u32),
    (5, "vlan", u16),
    (8, "ifindex", u32),
    (9, "master", u32),
    (12, "protocol", u8),
    (15, "flags_ext", u32),
))

VERBS = {"add": (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL),
         "replace": (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE),
         "change": (RTM_NEWNEIGH, NLM_F_REPLACE),
         "del": (RTM_DELNEIGH, 0)}


@dataclass(slots=True)
class Neighbour:
    ifindex: int
    family: int
    state: int = 0
    flags: int = 0
    type: int = 0
    attrs: dict = field(default_factory=dict)

    dst = property(lambda self: self.attrs.get("dst"))
    lladdr = property(lambda self: self.attrs.get("lladdr"))


def decode(body: bytes) -> Neighbour:
    if len(body) < NDMSG.size:
        raise codec.MalformedMessage(f"ndmsg of {len(body)} bytes")
    family, ifindex, state, flags, ntype = NDMSG.unpack_from(body)
    return Neighbour(ifindex, family, state, flags, ntype, NDA.decode(body, NDMSG.size))


def list(sock: transport.Socket, ifindex: int = 0, family: int = 0, *,
         all_states: bool = False) -> "list[Neighbour]":
    """The entries `ip neigh show` lists: NOARP ones (the kernel's own, e.g. multicast)
    left out unless all_states."""
    body = NDMSG.pack(family, 0, 0, 0, 0) + NDA.encode({"ifindex": ifindex or None})
    out = []
    for m in transport.dump(sock, RTM_GETNEIGH, body, op="neighbour show"):
        if m.type != RTM_NEWNEIGH:
            continue
        n = decode(m.body)
        if ifindex and n.ifindex != ifindex:
            continue
        if all_states or n.state & ~NUD_NOARP or n.flags & (NTF_PROXY | NTF_EXT_LEARNED):
            out.append(n)
    return out


def request(verb: str, ifindex: int, dst, lladdr=None, *, state: str | None = None,
            router: bool = False) -> tuple[int, int, bytes]:
    """As `ip neigh add`: state PERMANENT unless given, family from the address."""
    mtype, flags = VERBS[verb]
    address = IP(dst, "to")
    nud = NUD_PERMANENT
    if state is not None:
        states = {name.lower(): bit for name, bit in NUD} | {"none": 0}
        if state.lower() not in states:
            raise UsageError("nud", f"{state!r} is not a neighbour state ({', '.join(states)})")
        nud = states[state.lower()]
    if verb != "del" and lladdr is None and nud in (NUD_PERMANENT, NUD_NOARP):
        raise UsageError("lladdr", "a permanent neighbour needs a link-layer address")
    attrs = {"dst": address, "lladdr": None if lladdr is None else MAC(lladdr, "lladdr")}
    body = NDMSG.pack(address.family, ifindex, nud, NTF_ROUTER if router else 0, 0) + NDA.encode(attrs)
    return mtype, flags, body


def with_index(body: bytes, index: int) -> bytes:
    """A request body with the interface index set in its header (at offset 4)."""
    return body[:4] + struct.pack("=i", index) + body[8:]


def build(ifindex: int, dst, lladdr, **options) -> Neighbour:
    """The entry an `add` would install, as a value (a diff's desired side)."""
    return decode(request("add", ifindex, dst, lladdr, **options)[2])


def change(sock: transport.Socket, verb: str, ifindex: int, dst, lladdr=None, **options) -> None:
    try:
        transport.talk(sock, *request(verb, ifindex, dst, lladdr, **options),
                       op=f"neighbour {verb}", obj=str(dst))
    except NetlinkError as e:
        raise sharpen(e) from None


def add(sock, ifindex: int, dst, lladdr, **options) -> None:
    change(sock, "add", ifindex, dst, lladdr, **options)


def delete(sock, ifindex: int, dst) -> None:
    change(sock, "del", ifindex, dst)


def sharpen(e: NetlinkError) -> NetlinkError:
    if e.errno == errno.EEXIST:
        return e.sharpen("the neighbour entry already exists (use replace to overwrite it)")
    if e.errno == errno.ENOENT:
        return e.sharpen("no such neighbour entry")
    return e


def to_json(n: Neighbour, by_index: dict, dev_filter: bool = False) -> dict:
    """The object `ip -j neigh show` prints (ip/ipneigh.c print_neigh)."""
    a = n.attrs
    out = {}
    if "dst" in a:
        out["dst"] = str(a["dst"])
    if not dev_filter and n.ifindex:
        other = by_index.get(n.ifindex)
        out["dev"] = other.name if other else f"if{n.ifindex}"
    if "lladdr" in a:
        out["lladdr"] = link._lladdr(a["lladdr"])
    for name, bit in (("router", NTF_ROUTER), ("proxy", NTF_PROXY),
                      ("extern_learn", NTF_EXT_LEARNED), ("offload", NTF_OFFLOADED)):
        if n.flags & bit:
            out[name] = None
    if n.state:
        out["state"] = [name for name, bit in NUD if n.state & bit]
    if a.get("protocol"):
        out["protocol"] = names.n2a("rt_protos", a["protocol"])
    return out
