"""Datatypes of nft values: how a symbol in the text becomes a value, how a value becomes
register bytes, and how it prints (nftables src/datatype.c, proto.c, meta.c, ct.c).

A value in the model is a plain Python value, typed by the expression it is compared with:
int for numbers, addresses and symbolic constants, str for strings and interface names.
Type ids are nft's `enum datatypes` (include/datatype.h), sent to the kernel as a set's
NFTA_SET_KEY_TYPE, concatenations packed 6 bits per field.
"""
import socket

BIG, HOST = "big", "little"
TYPE_BITS = 6


class BadValue(ValueError):
    """A symbol that is not a value of the expected type; the parser adds the location."""


class Type:
    __slots__ = ("name", "id", "bits", "order", "kind", "symbols", "names", "fmt", "desc")

    def __init__(self, name, id, bits, order=HOST, kind="int", symbols=(), fmt="%d", desc=None):
        self.name, self.id, self.bits, self.order, self.kind = name, id, bits, order, kind
        self.symbols = dict(symbols)                      # name -> value, in nft's table order
        self.names = {}                                   # value -> first name
        for k, v in symbols:
            self.names.setdefault(v, k)
        self.fmt, self.desc = fmt, desc or name

    def __repr__(self) -> str:
        return f"<type {self.name}>"

    @property
    def size(self) -> int:
        """Bytes in a register (rounded up)."""
        return (self.bits + 7) // 8

    # -- text -> value
    def parse(self, text: str):
        kind = self.kind
        if kind == "ipv4":     # inet_pton(3): what nft's getaddrinfo(NUMERICHOST) takes
            try:
                return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
            except OSError:
                raise BadValue(f"{text!r} is not an IPv4 address") from None
        if kind == "ipv6":
            try:
                return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
            except OSError:
                raise BadValue(f"{text!r} is not an IPv6 address") from None
        if kind == "ether":
            parts = text.split(":")
            if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
                raise BadValue(f"{text!r} is not an Ethernet address")
            try:
                return int("".join(p.rjust(2, "0") for p in parts), 16)
            except ValueError:
                raise BadValue(f"{text!r} is not an Ethernet address") from None
        if kind in ("str", "ifindex"):
            return text
        if kind == "time":
            return parse_time(text)
        if kind == "classid" and ":" in text:
            major, _, minor = text.partition(":")
            try:
                return (int(major or "0", 16) << 16) | int(minor or "0", 16)
            except ValueError:
                raise BadValue(f"{text!r} is not a tc handle (MAJOR:MINOR in hex)") from None
        if text in self.symbols:
            return self.symbols[text]
        if kind == "service":
            try:
                return socket.getservbyname(text)
            except OSError:
                raise BadValue(f"{text!r} is not a port number or a service name "
                               "in /etc/services") from None
        if kind == "proto":
            n = PROTO_KEYWORDS.get(text)
            if n is not None:
                return n
            n = _protocols()[0].get(text)
            if n is None:
                raise BadValue(f"{text!r} is not a protocol number or a name in /etc/protocols")
            return n
        raise BadValue(f"{text!r} is not a {self.desc}" + (
            f" (one of {', '.join(self.symbols)})" if 0 < len(self.symbols) <= 24 else ""))

    def check_int(self, n: int) -> int:
        if self.kind in ("str", "ifindex"):
            raise BadValue(f"{n} is not a {self.desc}")
        if n < 0 or n >> self.bits:
            raise BadValue(f"{n} is out of range for {self.desc} ({self.bits} bits)")
        return n

    # -- value -> register bytes
    def to_bytes(self, v, nbytes: int | None = None) -> bytes:
        n = self.size if nbytes is None else nbytes
        if isinstance(v, str):
            b = v.encode()
            return b.ljust(n, b"\0")[:n] if nbytes is not None or self.bits else b + b"\0"
        return v.to_bytes(n, self.order)

    def from_bytes(self, b: bytes):
        if self.kind in ("str", "ifindex"):
            return b.split(b"\0", 1)[0].decode(errors="replace")
        return int.from_bytes(b, self.order)

    # -- value -> text (nft list style)
    def format(self, v) -> str:
        kind = self.kind
        if kind == "ipv4":
            return socket.inet_ntop(socket.AF_INET, v.to_bytes(4, "big"))
        if kind == "ipv6":     # inet_ntop(3), as nft prints (::ffff:192.0.2.1)
            return socket.inet_ntop(socket.AF_INET6, v.to_bytes(16, "big"))
        if kind == "ether":
            return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))
        if kind in ("str", "ifindex"):
            return '"' + v + '"'
        if kind == "time":
            return format_time(v)
        if kind == "proto":
            return _protocols()[1].get(v, str(v))
        if kind == "bitmask":
            return self.format_flags(v)
        if kind == "classid":
            if v == 0xffffffff:
                return "root"
            if v == 0:
                return "none"
            return f"{v >> 16:x}:{v & 0xffff:x}"
        name = self.names.get(v)
        if name is not None:     # names from iproute2 tables print quoted
            return f'"{name}"' if self.name in ("devgroup", "mark", "realm") else name
        if self.fmt == "%d":
            return str(v)
        return self.fmt % v

    def format_flags(self, v: int) -> str:
        """`syn,ack`; nft's delinearizer splits a flag value into its bits."""
        if v in self.names:
            return self.names[v]
        out, rest = [], v
        bit = 1
        while bit <= v:          # lowest bit first, as nft's binop_tree_to_list order
            if rest & bit and bit in self.names:
                out.append(self.names[bit])
                rest &= ~bit
            bit <<= 1
        if rest or not out:
            out.append(self.fmt % rest)
        return ",".join(out)


_PROTOCOLS = None
# Protocol names nft's grammar knows as keywords, whatever /etc/protocols says.
PROTO_KEYWORDS = {"tcp": 6, "udp": 17, "udplite": 136, "esp": 50, "ah": 51, "icmp": 1,
                  "igmp": 2, "icmpv6": 58, "comp": 108, "dccp": 33, "sctp": 132}


def _protocols():
    """/etc/protocols as (name -> number, number -> first name), as getprotobyname(3) and
    getprotobynumber(3) see it; Python has no getprotobynumber."""
    global _PROTOCOLS
    if _PROTOCOLS is None:
        by_name, by_num = {}, {}
        try:
            with open("/etc/protocols") as f:
                for line in f:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2 and fields[1].isdigit():
                        n = int(fields[1])
                        for name in [fields[0], *fields[2:]]:
                            by_name.setdefault(name, n)
                        by_num.setdefault(n, fields[0])
        except OSError:
            pass
        _PROTOCOLS = (by_name, by_num)
    return _PROTOCOLS


def parse_time(text: str) -> int:
    """`1d2h3m4s5ms` -> milliseconds; a bare number is seconds (nft time_parse)."""
    if text.isdigit():
        return int(text) * 1000
    total, num = 0, ""
    i = 0
    units = {"d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
    seen = set()
    while i < len(text):
        c = text[i]
        if c.isdigit():
            num += c
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else c
        if unit not in units or not num or unit in seen:
            raise BadValue(f"{text!r} is not a time (like 1h30m, 10s, 500ms)")
        seen.add(unit)
        total += int(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise BadValue(f"{text!r} is not a time (like 1h30m, 10s, 500ms)")
    return total


def format_time(ms: int) -> str:
    """nft time_print(): `1d2h`, `30s`, `0s` never (prints nothing for zero parts)."""
    out = ""
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        n, ms = divmod(ms, size)
        if n:
            out += f"{n}{unit}"
    if ms:
        out += f"{ms}ms"
    return out


def _t(*args, **kw) -> Type:
    return Type(*args, **kw)


INTEGER = _t("integer", 4, 32)
STRING = _t("string", 5, 0, kind="str")
VERDICT = _t("verdict", 1, 32, kind="verdict")
NFPROTO = _t("nf_proto", 2, 8, symbols=(("ipv4", 2), ("ipv6", 10)), desc="netfilter protocol")
BITMASK = _t("bitmask", 3, 32, kind="bitmask", fmt="0x%x")
LLADDR = _t("ll_addr", 6, 0, BIG, kind="ether")
IPV4 = _t("ipv4_addr", 7, 32, BIG, kind="ipv4", desc="IPv4 address")
IPV6 = _t("ipv6_addr", 8, 128, BIG, kind="ipv6", desc="IPv6 address")
ETHER = _t("ether_addr", 9, 48, BIG, kind="ether", desc="Ethernet address")
ETHERTYPE = _t("ether_type", 10, 16, BIG, fmt="0x%04x", desc="Ethernet protocol", symbols=(
    ("ip", 0x0800), ("arp", 0x0806), ("ip6", 0x86dd), ("8021q", 0x8100), ("8021ad", 0x88a8),
    ("vlan", 0x8100)))
ARPOP = _t("arp_op", 11, 16, BIG, fmt="0x%04x", desc="ARP operation", symbols=(
    ("request", 1), ("reply", 2), ("rrequest", 3), ("rreply", 4), ("inrequest", 8),
    ("inreply", 9), ("nak", 10)))
INET_PROTO = _t("inet_proto", 12, 8, kind="proto", desc="Internet protocol")
INET_SERVICE = _t("inet_service", 13, 16, BIG, kind="service", desc="internet network service")
ICMP_TYPE = _t("icmp_type", 14, 8, desc="ICMP type", symbols=(
    ("echo-reply", 0), ("destination-unreachable", 3), ("source-quench", 4), ("redirect", 5),
    ("echo-request", 8), ("router-advertisement", 9), ("router-solicitation", 10),
    ("time-exceeded", 11), ("parameter-problem", 12), ("timestamp-request", 13),
    ("timestamp-reply", 14), ("info-request", 15), ("info-reply", 16),
    ("address-mask-request", 17), ("address-mask-reply", 18)))
TCP_FLAG = _t("tcp_flag", 15, 8, BIG, kind="bitmask", fmt="0x%x", desc="TCP flag", symbols=(
    ("fin", 1), ("syn", 2), ("rst", 4), ("psh", 8), ("ack", 16), ("urg", 32), ("ecn", 64),
    ("cwr", 128)))
TIME = _t("time", 18, 64, kind="time", desc="relative time")
CT_TIME = _t("time", 18, 32, kind="time", desc="relative time")      # ct expiration
MARK = _t("mark", 19, 32, fmt="0x%08x", desc="packet mark")
IFINDEX = _t("iface_index", 20, 32, kind="ifindex", desc="network interface index")
ARPHRD = _t("iface_type", 21, 16, fmt="0x%04x", desc="network interface type", symbols=(
    ("ether", 1), ("ppp", 0x200), ("ipip", 0x300), ("ipip6", 0x301), ("loopback", 0x304),
    ("sit", 0x308), ("ipgre", 0x30a)))
REALM = _t("realm", 22, 32, fmt="0x%08x", desc="routing realm")
CLASSID = _t("classid", 23, 32, kind="classid", desc="TC classid",
             symbols=(("root", 0xffffffff), ("none", 0)))
UID = _t("uid", 24, 32, desc="user ID")
GID = _t("gid", 25, 32, desc="group ID")
CT_STATE = _t("ct_state", 26, 32, kind="bitmask", fmt="0x%x", desc="conntrack state", symbols=(
    ("invalid", 1), ("new", 8), ("established", 2), ("related", 4), ("untracked", 64)))
CT_DIR = _t("ct_dir", 27, 8, desc="conntrack direction", symbols=(("original", 0), ("reply", 1)))
CT_STATUS = _t("ct_status", 28, 32, kind="bitmask", fmt="0x%x", desc="conntrack status",
               symbols=(("expected", 1), ("seen-reply", 2), ("assured", 4), ("confirmed", 8),
                        ("snat", 0x10), ("dnat", 0x20), ("dying", 0x200)))
ICMP6_TYPE = _t("icmpv6_type", 29, 8, desc="ICMPv6 type", symbols=(
    ("destination-unreachable", 1), ("packet-too-big", 2), ("time-exceeded", 3),
    ("parameter-problem", 4), ("echo-request", 128), ("echo-reply", 129),
    ("mld-listener-query", 130), ("mld-listener-report", 131), ("mld-listener-done", 132),
    ("mld-listener-reduction", 132), ("nd-router-solicit", 133), ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135), ("nd-neighbor-advert", 136), ("nd-redirect", 137),
    ("router-renumbering", 138), ("ind-neighbor-solicit", 141), ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143)))
PKTTYPE = _t("pkt_type", 31, 8, desc="packet type", symbols=(
    ("host", 0), ("unicast", 0), ("broadcast", 1), ("multicast", 2), ("other", 3)))
ICMP_CODE = _t("icmp_code", 32, 8, desc="icmp code", symbols=(
    ("net-unreachable", 0), ("host-unreachable", 1), ("prot-unreachable", 2),
    ("port-unreachable", 3), ("net-prohibited", 9), ("host-prohibited", 10),
    ("admin-prohibited", 13), ("frag-needed", 4)))
ICMPV6_CODE = _t("icmpv6_code", 33, 8, desc="icmpv6 code", symbols=(
    ("no-route", 0), ("admin-prohibited", 1), ("addr-unreachable", 3), ("port-unreachable", 4),
    ("policy-fail", 5), ("reject-route", 6)))
ICMPX_CODE = _t("icmpx_code", 34, 8, desc="icmpx code", symbols=(
    ("port-unreachable", 1), ("admin-prohibited", 3), ("no-route", 0), ("host-unreachable", 2)))
DEVGROUP = _t("devgroup", 35, 32, desc="device group", symbols=(("default", 0),))
DSCP = _t("dscp", 36, 6, BIG, fmt="0x%02x", desc="Differentiated Services Code Point", symbols=(
    ("cs0", 0), ("cs1", 8), ("cs2", 16), ("cs3", 24), ("cs4", 32), ("cs5", 40), ("cs6", 48),
    ("cs7", 56), ("df", 0), ("be", 0), ("lephb", 1), ("af11", 10), ("af12", 12), ("af13", 14),
    ("af21", 18), ("af22", 20), ("af23", 22), ("af31", 26), ("af32", 28), ("af33", 30),
    ("af41", 34), ("af42", 36), ("af43", 38), ("va", 44), ("ef", 46)))
ECN = _t("ecn", 37, 2, BIG, fmt="0x%01x", desc="Explicit Congestion Notification", symbols=(
    ("not-ect", 0), ("ect1", 1), ("ect0", 2), ("ce", 3)))
FIB_ADDR = _t("fib_addrtype", 38, 32, desc="fib address type", symbols=(
    ("unspec", 0), ("unicast", 1), ("local", 2), ("broadcast", 3), ("anycast", 4),
    ("multicast", 5), ("blackhole", 6), ("unreachable", 7), ("prohibit", 8)))
BOOLEAN = _t("boolean", 39, 1, desc="boolean type", symbols=(
    ("exists", 1), ("missing", 0), ("true", 1), ("false", 0)))
CT_EVENT = _t("ct_event", 40, 32, kind="bitmask", fmt="0x%x", desc="conntrack event bits",
              symbols=(("new", 1), ("related", 2), ("destroy", 4), ("reply", 8),
                       ("assured", 16), ("protoinfo", 32), ("helper", 64), ("mark", 128),
                       ("seqadj", 256), ("secmark", 512), ("label", 1024)))
CT_HELPER = _t("string", 5, 16 * 8, kind="str", desc="conntrack helper name")
IFNAME = _t("ifname", 41, 16 * 8, kind="str", desc="network interface name")

# Integer fields of protocol headers, by width: integer_type with the field's size.
_INTS: dict = {}


def xinteger(bits: int) -> Type:
    """A raw payload's value: an integer nft prints in hex (xinteger_type)."""
    key = (bits, "x")
    t = _INTS.get(key)
    if t is None:
        t = _INTS[key] = Type("integer", 4, bits, BIG, fmt="0x%x")
    return t


def integer(bits: int, order: str = BIG) -> Type:
    key = (bits, order)
    t = _INTS.get(key)
    if t is None:
        t = _INTS[key] = Type("integer", 4, bits, order)
    return t


BY_NAME = {t.name: t for t in (
    VERDICT, NFPROTO, BITMASK, INTEGER, STRING, LLADDR, IPV4, IPV6, ETHER, ETHERTYPE, ARPOP,
    INET_PROTO, INET_SERVICE, ICMP_TYPE, TCP_FLAG, TIME, MARK, IFINDEX, ARPHRD, REALM, CLASSID,
    UID, GID, CT_STATE, CT_DIR, CT_STATUS, ICMP6_TYPE, PKTTYPE, ICMP_CODE, ICMPV6_CODE,
    ICMPX_CODE, DEVGROUP, DSCP, ECN, FIB_ADDR, BOOLEAN, IFNAME)}
BY_ID = {t.id: t for t in BY_NAME.values()}
# Types nft prints a masked value of as a prefix (DTYPE_F_PREFIX): `0x00000010/28`.
PREFIX_TYPES = frozenset(("ipv4_addr", "ipv6_addr", "mark", "devgroup", "realm"))
BY_ID[4] = INTEGER
# Types a set may be declared with (`type NAME`); the others are internal or sized.
SET_TYPES = ("ipv4_addr", "ipv6_addr", "ether_addr", "inet_proto", "inet_service", "mark",
             "ifname", "iface_index", "ether_type", "icmp_type", "icmpv6_type", "ct_state",
             "tcp_flag", "nf_proto", "verdict", "arp_op", "pkt_type", "dscp", "ecn",
             "iface_type", "ct_status", "ct_dir", "fib_addrtype", "uid", "gid", "realm",
             "classid", "devgroup", "icmp_code", "icmpv6_code", "time", "boolean")


def concat_id(types) -> int:
    """NFTA_SET_KEY_TYPE of a concatenation: ids packed TYPE_BITS each, first highest."""
    v = 0
    for t in types:
        v = (v << TYPE_BITS) | t.id
    return v


def split_concat_id(v: int) -> list:
    out = []
    while v:
        out.append(v & ((1 << TYPE_BITS) - 1))
        v >>= TYPE_BITS
    return out[::-1]
