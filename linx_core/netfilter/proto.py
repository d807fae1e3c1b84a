"""What the kernel can look at: protocol header fields (nftables src/proto.c), meta keys
(src/meta.c), conntrack keys (src/ct.c), and per family the hooks, chain types and standard
priorities (src/rule.c). Ids are the kernel's, from include/uapi/linux/netfilter/nf_tables.h,
netfilter.h and netfilter_bridge.h. Plain data, read by the parser, compiler and decoder.
"""
from . import types as T

# -- families (NFPROTO_*) and hooks (NF_INET_*, NF_ARP_*, NF_NETDEV_*)
FAMILIES = {"ip": 2, "ip6": 10, "inet": 1, "arp": 3, "bridge": 7, "netdev": 5}
FAMILY_NAMES = {v: k for k, v in FAMILIES.items()}

_INET_HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
HOOKS = {
    "ip": _INET_HOOKS, "ip6": _INET_HOOKS, "bridge": _INET_HOOKS,
    "inet": {**_INET_HOOKS, "ingress": 5},
    "arp": {"input": 0, "output": 1},             # nft_chain_filter registers no forward
    "netdev": {"ingress": 0, "egress": 1},
}
HOOK_NAMES = {fam: {v: k for k, v in hooks.items()} for fam, hooks in HOOKS.items()}
DEVICE_HOOKS = {("netdev", "ingress"), ("netdev", "egress"), ("inet", "ingress")}

# chain type -> families that have it, hooks it allows (None: any hook of the family)
CHAIN_TYPES = {
    "filter": (("ip", "ip6", "inet", "arp", "bridge", "netdev"), None),
    "nat": (("ip", "ip6", "inet"), ("prerouting", "input", "output", "postrouting")),
    "route": (("ip", "ip6", "inet"), ("output",)),
}

# Standard priorities (NF_IP_PRI_*, NF_BR_PRI_*), and where nft accepts each name.
STD_PRIOS = (("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0),
             ("security", 50), ("srcnat", 100))
BRIDGE_PRIOS = (("dstnat", -300), ("filter", -200), ("out", 100), ("srcnat", 300))


def prio_name_ok(name: str, value: int, family: str, hook: str) -> bool:
    """std_prio_family_hook_compat() of nftables src/rule.c."""
    if family == "bridge":
        return (name == "filter" or (name == "dstnat" and hook == "prerouting")
                or (name == "out" and hook == "output")
                or (name == "srcnat" and hook == "postrouting"))
    inet = family in ("ip", "ip6", "inet")
    if name == "filter":
        return inet or family in ("arp", "netdev")
    if name in ("raw", "mangle", "security"):
        return inet
    if name == "dstnat":
        return inet and hook == "prerouting"
    if name == "srcnat":
        return inet and hook == "postrouting"
    return False


def prio_lookup(name: str, family: str, hook: str):
    for n, v in (BRIDGE_PRIOS if family == "bridge" else STD_PRIOS):
        if n == name and prio_name_ok(n, v, family, hook):
            return v
    return None


def prio_format(value: int, family: str, hook: str) -> str:
    """prio2str(): the standard name within 10 of the value, with an offset."""
    for name, std in (BRIDGE_PRIOS if family == "bridge" else STD_PRIOS):
        if abs(value - std) <= 10:
            if not prio_name_ok(name, std, family, hook):
                break
            off = value - std
            return name + (f" + {off}" if off > 0 else f" - {-off}" if off < 0 else "")
    return str(value)


# -- payload headers. Base ids are NFT_PAYLOAD_LL_HEADER.. (0 link, 1 network, 2 transport).
LL, NH, TH = 0, 1, 2
BASE_NAMES = ("link", "network", "transport", "inner")


class Proto:
    """A protocol header: its base, its fields (bit offset, bit length, type) and how a
    header of the next layer is selected (the protocol key, a field or a meta key)."""

    __slots__ = ("name", "base", "fields", "key", "links", "offset")

    def __init__(self, name, base, fields, key=None, links=(), offset=0):
        self.name, self.base, self.key, self.offset = name, base, key, offset
        self.fields = {f[0]: (f[1], f[2], f[3]) for f in fields}
        self.links = dict(links)          # upper proto name -> protocol number

    def __repr__(self) -> str:
        return f"<proto {self.name}>"


def _i(bits):
    return T.integer(bits)


_L4_LINKS = (("icmp", 1), ("igmp", 2), ("icmpv6", 58), ("esp", 50), ("ah", 51), ("comp", 108),
             ("udp", 17), ("udplite", 136), ("tcp", 6), ("dccp", 33), ("sctp", 132))
_L3_LINKS = (("ip", 0x0800), ("arp", 0x0806), ("ip6", 0x86dd), ("vlan", 0x8100))
_PORTS = (("sport", 0, 16, T.INET_SERVICE), ("dport", 16, 16, T.INET_SERVICE))

PROTOS = {p.name: p for p in (
    Proto("ether", LL, (("daddr", 0, 48, T.ETHER), ("saddr", 48, 48, T.ETHER),
                        ("type", 96, 16, T.ETHERTYPE)), key="type", links=_L3_LINKS),
    Proto("vlan", LL, (("pcp", 0, 3, _i(3)), ("dei", 3, 1, _i(1)), ("cfi", 3, 1, _i(1)),
                       ("id", 4, 12, _i(12)), ("type", 16, 16, T.ETHERTYPE)),
          key="type", links=_L3_LINKS, offset=112),
    Proto("arp", NH, (("htype", 0, 16, _i(16)), ("ptype", 16, 16, T.ETHERTYPE),
                      ("hlen", 32, 8, _i(8)), ("plen", 40, 8, _i(8)),
                      ("operation", 48, 16, T.ARPOP), ("saddr ether", 64, 48, T.ETHER),
                      ("saddr ip", 112, 32, T.IPV4), ("daddr ether", 144, 48, T.ETHER),
                      ("daddr ip", 192, 32, T.IPV4))),
    Proto("ip", NH, (("version", 0, 4, _i(4)), ("hdrlength", 4, 4, _i(4)),
                     ("dscp", 8, 6, T.DSCP), ("ecn", 14, 2, T.ECN), ("length", 16, 16, _i(16)),
                     ("id", 32, 16, _i(16)), ("frag-off", 48, 16, _i(16)),
                     ("ttl", 64, 8, _i(8)), ("protocol", 72, 8, T.INET_PROTO),
                     ("checksum", 80, 16, _i(16)), ("saddr", 96, 32, T.IPV4),
                     ("daddr", 128, 32, T.IPV4)), key="meta l4proto", links=_L4_LINKS),
    Proto("ip6", NH, (("version", 0, 4, _i(4)), ("dscp", 4, 6, T.DSCP), ("ecn", 10, 2, T.ECN),
                      ("flowlabel", 12, 20, _i(20)), ("length", 32, 16, _i(16)),
                      ("nexthdr", 48, 8, T.INET_PROTO), ("hoplimit", 56, 8, _i(8)),
                      ("saddr", 64, 128, T.IPV6), ("daddr", 192, 128, T.IPV6)),
          key="meta l4proto", links=_L4_LINKS),
    Proto("icmp", TH, (("type", 0, 8, T.ICMP_TYPE), ("code", 8, 8, T.ICMP_CODE),
                       ("checksum", 16, 16, _i(16)), ("id", 32, 16, _i(16)),
                       ("sequence", 48, 16, _i(16)), ("gateway", 32, 32, _i(32)),
                       ("mtu", 48, 16, _i(16)))),
    Proto("icmpv6", TH, (("type", 0, 8, T.ICMP6_TYPE), ("code", 8, 8, T.ICMPV6_CODE),
                         ("checksum", 16, 16, _i(16)), ("parameter-problem", 32, 32, _i(32)),
                         ("mtu", 32, 32, _i(32)), ("id", 32, 16, _i(16)),
                         ("sequence", 48, 16, _i(16)), ("max-delay", 32, 16, _i(16)))),
    Proto("tcp", TH, (*_PORTS, ("sequence", 32, 32, _i(32)), ("ackseq", 64, 32, _i(32)),
                      ("doff", 96, 4, _i(4)), ("reserved", 100, 4, _i(4)),
                      ("flags", 104, 8, T.TCP_FLAG), ("window", 112, 16, _i(16)),
                      ("checksum", 128, 16, _i(16)), ("urgptr", 144, 16, _i(16)))),
    Proto("udp", TH, (*_PORTS, ("length", 32, 16, _i(16)), ("checksum", 48, 16, _i(16)))),
    Proto("udplite", TH, (*_PORTS, ("csumcov", 32, 16, _i(16)),
                          ("checksum", 48, 16, _i(16)))),
    Proto("sctp", TH, (*_PORTS, ("vtag", 32, 32, _i(32)), ("checksum", 64, 32, _i(32)))),
    Proto("dccp", TH, _PORTS),
    Proto("th", TH, _PORTS),
    Proto("esp", TH, (("spi", 0, 32, _i(32)), ("sequence", 32, 32, _i(32)))),
    Proto("ah", TH, (("nexthdr", 0, 8, T.INET_PROTO), ("hdrlength", 8, 8, _i(8)),
                     ("reserved", 16, 16, _i(16)), ("spi", 32, 32, _i(32)),
                     ("sequence", 64, 32, _i(32)))),
    Proto("comp", TH, (("nexthdr", 0, 8, T.INET_PROTO), ("flags", 8, 8, T.BITMASK),
                       ("cpi", 16, 16, _i(16)))),
    # Pseudo headers selecting what comes next without a header of their own (proto.c's
    # proto_inet, proto_netdev, proto_inet_service): the key is a meta key.
    Proto("inet", LL, (), key="meta nfproto", links=(("ip", 2), ("ip6", 10))),
    Proto("netdev", LL, (), key="meta protocol", links=_L3_LINKS),
    Proto("inet-service", TH, (), key="meta l4proto", links=_L4_LINKS),
)}

# ICMP fields valid only for some message types (proto.c's icmp_dep): nft adds a match on
# the type before them; "echo" means echo-request or echo-reply.
ICMP_DEPS = {("icmp", "id"): "echo", ("icmp", "sequence"): "echo", ("icmp", "gateway"): 5,
             ("icmp", "mtu"): 3, ("icmpv6", "parameter-problem"): 4, ("icmpv6", "mtu"): 2,
             ("icmpv6", "id"): "echo", ("icmpv6", "sequence"): "echo",
             ("icmpv6", "max-delay"): 130}
ICMP_ECHO = {"icmp": (0, 8), "icmpv6": (128, 129)}

# Which header each family's hook starts at (hook_proto_desc[] in proto.c).
FAMILY_BASE = {"ip": (NH, "ip"), "ip6": (NH, "ip6"), "arp": (NH, "arp"),
               "inet": (LL, "inet"), "bridge": (LL, "ether"), "netdev": (LL, "netdev")}

# -- meta keys (enum nft_meta_keys): name -> (id, type). iif/oif/... print unqualified.
_M = T.integer
META = {
    "length": (0, T.integer(32, T.HOST)), "protocol": (1, T.ETHERTYPE),
    "priority": (2, T.CLASSID), "mark": (3, T.MARK), "iif": (4, T.IFINDEX),
    "oif": (5, T.IFINDEX), "iifname": (6, T.IFNAME), "oifname": (7, T.IFNAME),
    "iiftype": (8, T.ARPHRD), "oiftype": (9, T.ARPHRD), "skuid": (10, T.UID),
    "skgid": (11, T.GID), "nftrace": (12, T.integer(1, T.HOST)), "rtclassid": (13, T.REALM),
    "secmark": (14, T.integer(32, T.HOST)), "nfproto": (15, T.NFPROTO),
    "l4proto": (16, T.INET_PROTO), "ibrname": (17, T.IFNAME), "obrname": (18, T.IFNAME),
    "pkttype": (19, T.PKTTYPE), "cpu": (20, T.integer(32, T.HOST)),
    "iifgroup": (21, T.DEVGROUP), "oifgroup": (22, T.DEVGROUP),
    "cgroup": (23, T.integer(32, T.HOST)), "random": (24, T.integer(32, T.BIG)),
    "ipsec": (25, T.BOOLEAN), "iifkind": (26, T.IFNAME), "oifkind": (27, T.IFNAME),
    "ibrpvid": (28, T.integer(16, T.HOST)), "ibrvproto": (29, T.ETHERTYPE),
    "sdif": (33, T.IFINDEX), "sdifname": (34, T.IFNAME),
}
META_BY_ID = {v[0]: k for k, v in META.items()}
META_UNQUALIFIED = frozenset(("iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"))
# Unqualified words the parser takes as meta keys (`iif lo`, `mark 1`): nft's grammar.
META_BARE = frozenset(("iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup", "mark",
                       "iiftype", "oiftype", "skuid", "skgid", "nftrace", "rtclassid",
                       "ibrname", "obrname", "pkttype", "cpu", "cgroup", "priority"))

# -- conntrack keys (enum nft_ct_keys): name -> (id, type or None when it depends on family)
CT = {
    "state": (0, T.CT_STATE), "direction": (1, T.CT_DIR), "status": (2, T.CT_STATUS),
    "mark": (3, T.MARK), "secmark": (4, T.integer(32, T.HOST)),
    "expiration": (5, T.CT_TIME), "helper": (6, T.CT_HELPER), "l3proto": (7, T.NFPROTO),
    "saddr": (8, None), "daddr": (9, None), "protocol": (10, T.INET_PROTO),
    "proto-src": (11, T.INET_SERVICE), "proto-dst": (12, T.INET_SERVICE),
    "packets": (14, T.integer(64, T.HOST)), "bytes": (15, T.integer(64, T.HOST)),
    "avgpkt": (16, T.integer(64, T.HOST)), "zone": (17, T.integer(16, T.HOST)),
    "id": (23, T.integer(32, T.BIG)),
}
CT_BY_ID = {v[0]: k for k, v in CT.items()}
CT_ADDR = {("ip", "saddr"): 19, ("ip", "daddr"): 20, ("ip6", "saddr"): 21,
           ("ip6", "daddr"): 22}
CT_ADDR_BY_ID = {v: k for k, v in CT_ADDR.items()}
CT_DIRS = {"original": 0, "reply": 1}

# -- fib (NFTA_FIB_F_*, enum nft_fib_result)
FIB_FLAGS = {"saddr": 1, "daddr": 2, "mark": 4, "iif": 8, "oif": 16}
FIB_RESULTS = {"oif": (1, T.IFINDEX), "oifname": (2, T.IFNAME), "type": (3, T.FIB_ADDR)}
FIB_PRESENT = 32
