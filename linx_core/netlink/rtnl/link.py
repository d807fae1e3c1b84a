"""Network interfaces: RTM_NEWLINK/DELLINK/GETLINK, struct ifinfomsg and IFLA_*
(<linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>), IFF_* (<linux/if.h>).

The kind-specific part of a link (IFLA_LINKINFO -> IFLA_INFO_DATA) is dispatched on
IFLA_INFO_KIND, so a veth peer, a macvlan mode or a vlan id decode and encode through the
same tables.
"""
import errno
import os
import re
import struct
from dataclasses import dataclass, field

from ... import target as _target
from ...errors import UsageError
from ...ip import MAC
from .. import codec, transport
from ..codec import (NLM_F_CREATE, NLM_F_EXCL, Array, Dispatch, Table, lladdr, s32, strz, u8,
                     u16, u32, be16)
from ..errors import NetlinkError
from . import names

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
IFINFOMSG = struct.Struct("=BxHiII")    # family, pad, type, index, flags, change

# <linux/if.h> net_device_flags, in iproute2's print order (ip/ipaddress.c print_link_flags)
IFF = (("LOOPBACK", 0x8), ("BROADCAST", 0x2), ("POINTOPOINT", 0x10), ("MULTICAST", 0x1000),
       ("NOARP", 0x80), ("ALLMULTI", 0x200), ("PROMISC", 0x100), ("MASTER", 0x400),
       ("SLAVE", 0x800), ("DEBUG", 0x4), ("DYNAMIC", 0x8000), ("AUTOMEDIA", 0x4000),
       ("PORTSEL", 0x2000), ("NOTRAILERS", 0x20), ("UP", 0x1), ("LOWER_UP", 0x10000),
       ("DORMANT", 0x20000), ("ECHO", 0x40000))
IFF_UP, IFF_RUNNING = 0x1, 0x40
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
LINKMODES = ("DEFAULT", "DORMANT")
RTEXT_FILTER_SKIP_STATS = 8
IFNAMSIZ = 16
_BAD_NAME = re.compile(r"[/:\s]")

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}


class _Peer:
    """VETH_INFO_PEER: a whole ifinfomsg + IFLA_* message describing the other end."""

    def encode(self, value: dict) -> bytes:
        return IFINFOMSG.pack(0, 0, 0, 0, 0) + IFLA.encode(value)

    def decode(self, raw: bytes) -> dict:
        return IFLA.decode(raw, IFINFOMSG.size)


MACVLAN = Table("IFLA_MACVLAN", ((1, "mode", u32), (2, "flags", u16)))
IPVLAN = Table("IFLA_IPVLAN", ((1, "mode", u16), (2, "flags", u16)))
VLAN = Table("IFLA_VLAN", ((1, "id", u16), (5, "protocol", be16)))
VETH = Table("VETH_INFO", ((1, "peer", _Peer()),))
LINKINFO = Table("IFLA_INFO", (
    (1, "kind", strz),
    (2, "data", Dispatch("kind", {"macvlan": MACVLAN, "macvtap": MACVLAN, "ipvlan": IPVLAN,
                                  "ipvtap": IPVLAN, "vlan": VLAN, "veth": VETH})),
    (4, "slave_kind", strz),
))
IFLA = Table("IFLA", (
    (1, "address", lladdr),
    (2, "broadcast", lladdr),
    (3, "ifname", strz),
    (4, "mtu", u32),
    (5, "link", u32),
    (6, "qdisc", strz),
    (10, "master", u32),
    (13, "txqlen", u32),
    (16, "operstate", u8),
    (17, "linkmode", u8),
    (18, "linkinfo", LINKINFO),
    (19, "net_ns_pid", u32),
    (20, "ifalias", strz),
    (27, "group", u32),
    (28, "net_ns_fd", u32),
    (29, "ext_mask", u32),
    (30, "promiscuity", u32),
    (31, "num_tx_queues", u32),
    (32, "num_rx_queues", u32),
    (33, "carrier", u8),
    (37, "link_netnsid", s32),
    (50, "min_mtu", u32),
    (51, "max_mtu", u32),
    (53, "alt_ifname", strz),
    (52, "prop_list", Array(strz, 53, nested_flag=True)),
    (54, "perm_address", lladdr),
    (61, "allmulti", u32),
))

KINDS = ("veth", "macvlan", "ipvlan", "vlan", "bridge", "dummy", "ifb")


@dataclass(slots=True)
class Link:
    """A decoded interface: the ifinfomsg fields and the IFLA_* attributes by name."""
    index: int
    flags: int = 0
    type: int = 1
    family: int = 0
    change: int = 0
    attrs: dict = field(default_factory=dict)

    name = property(lambda self: self.attrs.get("ifname"))
    mtu = property(lambda self: self.attrs.get("mtu"))
    address = property(lambda self: self.attrs.get("address"))
    master = property(lambda self: self.attrs.get("master"))
    parent = property(lambda self: self.attrs.get("link"))
    kind = property(lambda self: (self.attrs.get("linkinfo") or {}).get("kind"))
    data = property(lambda self: (self.attrs.get("linkinfo") or {}).get("data"))

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def decode(body: bytes) -> Link:
    if len(body) < IFINFOMSG.size:
        raise codec.MalformedMessage(f"ifinfomsg of {len(body)} bytes")
    family, itype, index, flags, change = IFINFOMSG.unpack_from(body)
    return Link(index, flags, itype, family, change, IFLA.decode(body, IFINFOMSG.size))


# --- input checks, before any syscall ------------------------------------------------------

def check_name(name: str, where: str = "name") -> str:
    """An interface name the kernel accepts (dev_valid_name): 1..15 bytes, no '/', ':' or
    whitespace, not '.' or '..'."""
    if not name or len(name.encode()) >= IFNAMSIZ or name in (".", "..") or _BAD_NAME.search(name):
        raise UsageError(where, f"{name!r} is not a valid interface name "
                                f"(1-{IFNAMSIZ - 1} bytes, no '/', ':' or spaces)")
    return name


def check_mtu(mtu, where: str = "mtu") -> int:
    try:
        value = int(mtu)
    except (TypeError, ValueError):
        value = -1
    if not 0 < value <= 0xFFFFFFFF:
        raise UsageError(where, f"{mtu!r} is not an MTU (a positive number)")
    return value


# --- read verbs ----------------------------------------------------------------------------

def list(sock: transport.Socket) -> "list[Link]":
    body = IFINFOMSG.pack(0, 0, 0, 0, 0) + IFLA.encode({"ext_mask": RTEXT_FILTER_SKIP_STATS})
    return [decode(m.body) for m in transport.dump(sock, RTM_GETLINK, body, op="link show")
            if m.type == RTM_NEWLINK]


def get(sock: transport.Socket, name) -> Link:
    """By name (the kernel looks it up: IFLA_IFNAME, no dump) or by index."""
    if isinstance(name, int):
        index, attrs = name, {}
    else:
        index, attrs = 0, {"ifname": check_name(name, "dev")}
    body = IFINFOMSG.pack(0, 0, index, 0, 0) + IFLA.encode({**attrs, "ext_mask": RTEXT_FILTER_SKIP_STATS})
    try:
        msgs = transport.talk(sock, RTM_GETLINK, 0, body, op="link get", obj=str(name))
    except NetlinkError as e:
        if e.errno == errno.ENODEV:
            raise e.sharpen(f"no such interface \"{name}\"") from None
        raise
    return decode(msgs[0].body)


def index(sock: transport.Socket, name, what: str = "interface") -> int:
    """The ifindex of `name`; ENODEV says which name (and what it was for) was at fault."""
    try:
        return get(sock, name).index
    except NetlinkError as e:
        if e.errno == errno.ENODEV:
            raise NetlinkError("link get", str(name), e.errno,
                               f"no such {what} \"{name}\"") from None
        raise


# --- change verbs: each builds a request (type, flags, body), then talks -------------------

def add_request(name: str, kind: str, *, parent: int | None = None, peer: str | None = None,
                mode: str | None = None, vlan_id: int | None = None, mtu: int | None = None,
                address=None, netns_pid: int | None = None,
                peer_netns_pid: int | None = None) -> tuple[int, int, bytes]:
    """RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: `link add` fails with EEXIST like `ip link
    add`. Checks every argument first; parent is an ifindex (macvlan/ipvlan/vlan), looked up
    in the sender's netns. netns_pid creates the link in that process's netns, peer_netns_pid
    a veth's peer (IFLA_NET_NS_PID): no move, and the name need only be free there."""
    check_name(name)
    if kind not in KINDS:
        raise UsageError("type", f"{kind!r} is not a supported link type ({', '.join(KINDS)})")
    data = None
    if kind in ("macvlan", "ipvlan", "vlan") and parent is None:
        raise UsageError("link", f"a {kind} needs a parent interface (link DEV)")
    if kind not in ("macvlan", "ipvlan", "vlan") and parent is not None:
        raise UsageError("link", f"a {kind} has no parent interface")
    if mode is not None and kind not in ("macvlan", "ipvlan"):
        raise UsageError("mode", f"a {kind} has no mode")
    if vlan_id is not None and kind != "vlan":
        raise UsageError("id", f"a {kind} has no vlan id")
    if (peer is not None or peer_netns_pid is not None) and kind != "veth":
        raise UsageError("peer", f"a {kind} has no peer")
    if kind == "veth":
        data = {"peer": {"ifname": None if peer is None else check_name(peer, "peer"),
                         "net_ns_pid": peer_netns_pid}}
        if peer is None and peer_netns_pid is None:
            data = None
    elif kind == "macvlan":
        modes = MACVLAN_MODES
        mode = mode or "bridge"
        if mode not in modes:
            raise UsageError("mode", f"{mode!r} is not a macvlan mode ({', '.join(modes)})")
        data = {"mode": modes[mode]}
    elif kind == "ipvlan":
        mode = mode or "l3"
        if mode not in IPVLAN_MODES:
            raise UsageError("mode", f"{mode!r} is not an ipvlan mode ({', '.join(IPVLAN_MODES)})")
        data = {"mode": IPVLAN_MODES[mode]}
    elif kind == "vlan":
        try:
            vid = int(vlan_id)
        except (TypeError, ValueError):
            vid = -1
        if not 1 <= vid <= 4094:
            raise UsageError("id", f"{vlan_id!r} is not a vlan id (1..4094)")
        data = {"id": vid}
    attrs = {"ifname": name,
             "mtu": None if mtu is None else check_mtu(mtu),
             "address": None if address is None else MAC(address, "address"),
             "link": parent,
             "net_ns_pid": netns_pid,
             "linkinfo": {"kind": kind, "data": data}}
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, IFINFOMSG.pack(0, 0, 0, 0, 0) + IFLA.encode(attrs)


def add(sock: transport.Socket, name: str, kind: str, *, parent: str | None = None, **options) -> None:
    """Create a link. A kernel without the kind's driver answers EOPNOTSUPP ("Unknown device
    type"); that becomes `link type "X" is not supported by this kernel`."""
    parent_index = None if parent is None else index(sock, check_name(parent, "link"), "parent interface")
    request = add_request(name, kind, parent=parent_index, **options)
    talk(sock, request, "link add", name, kind)


def talk(sock, request, op: str, name: str, kind: str | None = None) -> None:
    """Send one link request, sharpening the kernel's bare errnos."""
    try:
        transport.talk(sock, *request, op=op, obj=name)
    except NetlinkError as e:
        raise sharpen(e, kind) from None


def sharpen(e: NetlinkError, kind: str | None) -> NetlinkError:
    if e.errno == errno.EOPNOTSUPP and kind and (e.detail in (None, "Unknown device type")):
        return NetlinkError(e.op, e.obj, e.errno,
                            f"link type \"{kind}\" is not supported by this kernel",
                            offset=e.offset, seq=e.seq, index=e.index)
    if e.errno == errno.EEXIST:
        return e.sharpen("an interface with this name already exists")
    if e.errno == errno.ENODEV:
        return e.sharpen(f"no such interface \"{e.obj}\"")
    if e.errno == errno.EBUSY:
        return e.sharpen("the interface is busy (enslaved elsewhere, or has upper devices "
                         "such as a macvlan)")
    return e


def set_request(ifindex: int, *, up: bool | None = None, mtu=None, address=None,
                name: str | None = None, master: int | None = None, netns_pid: int | None = None,
                netns_fd: int | None = None) -> tuple[int, int, bytes]:
    """RTM_NEWLINK on an existing index: only the given attributes change. `up` sets or
    clears IFF_UP through ifi_change; master 0 is nomaster."""
    flags = change = 0
    if up is not None:
        flags, change = (IFF_UP if up else 0), IFF_UP
    attrs = {"ifname": None if name is None else check_name(name, "name"),
             "mtu": None if mtu is None else check_mtu(mtu),
             "address": None if address is None else MAC(address, "address"),
             "master": master, "net_ns_pid": netns_pid, "net_ns_fd": netns_fd}
    return RTM_NEWLINK, 0, IFINFOMSG.pack(0, 0, ifindex, flags, change) + IFLA.encode(attrs)


def set(sock: transport.Socket, dev: str, *, master: str | None = None, netns=None, **changes) -> None:
    """Change a link. master: a name, or "" for nomaster. netns: a target (pid:N, a netns
    file path, an ip netns name, a session) — by pid when it is one (IFLA_NET_NS_PID),
    otherwise by an fd on the namespace file (IFLA_NET_NS_FD)."""
    ifindex = index(sock, dev)
    master_index = None
    if master is not None:
        master_index = 0 if master == "" else index(sock, check_name(master, "master"), "master interface")
    fd = pid = None
    if netns is not None:
        t = netns if isinstance(netns, _target.Target) else _target.parse(str(netns), "netns")
        if t.kind == "pid":
            pid = int(t.value)
        else:
            path = t.ns_path("net") or "/proc/self/ns/net"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise NetlinkError("link set", dev, e.errno, f"cannot open namespace {path}") from None
    try:
        request = set_request(ifindex, master=master_index, netns_pid=pid, netns_fd=fd, **changes)
        talk(sock, request, "link set", dev)
    finally:
        if fd is not None:
            os.close(fd)


def delete_request(ifindex: int) -> tuple[int, int, bytes]:
    return RTM_DELLINK, 0, IFINFOMSG.pack(0, 0, ifindex, 0, 0)


def delete(sock: transport.Socket, name: str) -> None:
    talk(sock, delete_request(index(sock, name)), "link del", name)


# --- ip -j shape ---------------------------------------------------------------------------

def flag_names(flags: int, mdown: bool = False) -> "list[str]":
    out = ["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING else []
    out += [name for name, bit in IFF if flags & bit]
    rest = flags & ~IFF_RUNNING & ~sum(bit for _, bit in IFF)
    if rest:
        out.append(f"{rest:x}")
    if mdown:
        out.append("M-DOWN")
    return out


def to_json(link: Link, by_index: dict) -> dict:
    """The object `ip -j link show` prints (ip/ipaddress.c print_linkinfo), same keys, same
    order; by_index maps ifindex -> Link to name the parent and master."""
    a = link.attrs
    out = {"ifindex": link.index}
    mdown = False
    if "link" in a:
        parent = a["link"]
        if not parent:
            out["link"] = None
        elif "link_netnsid" in a:
            out["link_index"] = parent
        else:
            other = by_index.get(parent)
            out["link"] = other.name if other else f"if{parent}"
            mdown = not (other.flags & IFF_UP) if other else True
    out["ifname"] = a.get("ifname")
    out["flags"] = flag_names(link.flags, mdown)
    if "mtu" in a:
        out["mtu"] = a["mtu"]
    if "qdisc" in a:
        out["qdisc"] = a["qdisc"]
    if "master" in a:
        master = by_index.get(a["master"])
        out["master"] = master.name if master else f"if{a['master']}"
    if "operstate" in a:
        state = a["operstate"]
        if state < len(OPERSTATES):
            out["operstate"] = OPERSTATES[state]
        else:
            out["operstate_index"] = state
    if "linkmode" in a:
        mode = a["linkmode"]
        if mode < len(LINKMODES):
            out["linkmode"] = LINKMODES[mode]
        else:
            out["linkmode_index"] = mode
    if "group" in a:
        out["group"] = names.n2a("group", a["group"])
    if a.get("txqlen"):
        out["txqlen"] = a["txqlen"]
    out["link_type"] = names.arphrd(link.type)
    for key in ("address", "broadcast"):
        if key in a:
            out[key] = _lladdr(a[key])
    if "broadcast" in a and link.flags & 0x10:
        out["link_pointtopoint"] = True
    if "perm_address" in a and a.get("perm_address") != a.get("address"):
        out["permaddr"] = _lladdr(a["perm_address"])
    if "link_netnsid" in a:
        out["link_netnsid"] = a["link_netnsid"]
    return out


def _lladdr(value) -> str:
    """ll_addr_n2a: hex bytes joined by ':'; IPv4-in-tunnel addresses as dotted quads."""
    if isinstance(value, MAC):
        return str(value)
    if len(value) == 4:
        return ".".join(str(b) for b in value)
    return value.hex(":")
