"""Interface counters: RTM_GETSTATS with struct if_stats_msg (<linux/rtnetlink.h>) asking
for IFLA_STATS_LINK_64, a struct rtnl_link_stats64 (<linux/if_link.h>). Read-only: no
CAP_NET_ADMIN needed.

The struct grew at its end (rx_otherhost_dropped in 5.19); older kernels' shorter payloads
decode with the missing counters absent, newer kernels' longer ones keep what we know.
"""
import struct
from dataclasses import dataclass, field

from .. import codec, transport
from ..codec import CStruct, Table

RTM_NEWSTATS, RTM_GETSTATS = 92, 94
IF_STATS_MSG = struct.Struct("=BBHiI")   # family, pad1, pad2, ifindex, filter_mask
IFLA_STATS_LINK_64 = 1

COUNTERS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
            "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
            "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
            "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
            "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
            "rx_nohandler", "rx_otherhost_dropped")
LINK64 = CStruct("=" + "Q" * len(COUNTERS), COUNTERS)
IFLA_STATS = Table("IFLA_STATS", ((IFLA_STATS_LINK_64, "link64", LINK64),))


@dataclass(slots=True)
class Stats:
    ifindex: int
    family: int = 0
    filter_mask: int = 0
    attrs: dict = field(default_factory=dict)

    @property
    def link(self) -> dict:
        """The rtnl_link_stats64 counters by name."""
        return self.attrs.get("link64", {})


def decode(body: bytes) -> Stats:
    if len(body) < IF_STATS_MSG.size:
        raise codec.MalformedMessage(f"if_stats_msg of {len(body)} bytes")
    family, _, _, ifindex, mask = IF_STATS_MSG.unpack_from(body)
    return Stats(ifindex, family, mask, IFLA_STATS.decode(body, IF_STATS_MSG.size))


def _request(ifindex: int) -> bytes:
    return IF_STATS_MSG.pack(0, 0, 0, ifindex, 1 << (IFLA_STATS_LINK_64 - 1))


def list(sock: transport.Socket) -> "list[Stats]":
    return [decode(m.body) for m in transport.dump(sock, RTM_GETSTATS, _request(0), op="stats show")
            if m.type == RTM_NEWSTATS]


def get(sock: transport.Socket, ifindex: int) -> Stats:
    msgs = transport.talk(sock, RTM_GETSTATS, 0, _request(ifindex), op="stats get", obj=f"if{ifindex}")
    return decode(msgs[0].body)


def to_json(stats: Stats) -> dict:
    """`ip -j -s link show`'s "stats64" object (ip/ipaddress.c print_link_stats64's default
    fields), plus every other counter under its rtnl_link_stats64 name."""
    c = stats.link
    rx = {"bytes": c.get("rx_bytes"), "packets": c.get("rx_packets"), "errors": c.get("rx_errors"),
          "dropped": c.get("rx_dropped"), "over_errors": c.get("rx_over_errors"),
          "multicast": c.get("multicast")}
    tx = {"bytes": c.get("tx_bytes"), "packets": c.get("tx_packets"), "errors": c.get("tx_errors"),
          "dropped": c.get("tx_dropped"), "carrier_errors": c.get("tx_carrier_errors"),
          "collisions": c.get("collisions")}
    return {"rx": rx, "tx": tx, "counters": dict(c)}
