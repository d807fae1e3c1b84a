"""rtnetlink multicast events (`ip monitor`): RTM_NEW*/DEL* notifications on the RTNLGRP_*
groups (<linux/rtnetlink.h>), decoded by the same codecs as the listings.

Multicast is lossy: when our receive buffer overflows the kernel drops notifications and
the next recv fails with ENOBUFS (netlink(7)). That is reported as a RESYNC event, never
swallowed: events are wake-up hints, and a consumer that needs the truth re-lists.
"""
import errno
from dataclasses import dataclass

from .. import transport
from ..errors import NetlinkError
from . import address, link, neighbour, route, rule

# RTNLGRP_*: links, neighbours, IPv4/IPv6 addresses, routes and rules
GROUPS = {"link": (1,), "neigh": (3,), "addr": (5, 9), "route": (7, 11), "rule": (8, 19)}

OPS = {16: ("new_link", link.decode), 17: ("del_link", link.decode),
       20: ("new_addr", address.decode), 21: ("del_addr", address.decode),
       24: ("new_route", route.decode), 25: ("del_route", route.decode),
       28: ("new_neigh", neighbour.decode), 29: ("del_neigh", neighbour.decode),
       32: ("new_rule", rule.decode), 33: ("del_rule", rule.decode)}

RESYNC = "resync-needed"


@dataclass(slots=True)
class Event:
    """op: new_link, del_addr, ... or RESYNC (resource None), or "unknown" (resource is the
    message type)."""
    op: str
    resource: object = None


def open(target=None, objects=tuple(GROUPS)) -> transport.Socket:
    """A socket subscribed to the groups of `objects` (keys of GROUPS)."""
    sock = transport.open(transport.NETLINK_ROUTE, target)
    try:
        for name in objects:
            for group in GROUPS[name]:
                sock.add_membership(group)
    except BaseException:
        sock.close()
        raise
    return sock


def events(sock: transport.Socket):
    """Yield Events forever (until the socket is closed or the caller stops)."""
    while True:
        try:
            msgs = sock.recv()
        except NetlinkError as e:
            if e.errno == errno.ENOBUFS:
                yield Event(RESYNC)
                continue
            raise
        for msg in msgs:
            known = OPS.get(msg.type)
            if known is None:
                yield Event("unknown", msg.type)
            else:
                yield Event(known[0], known[1](msg.body))
