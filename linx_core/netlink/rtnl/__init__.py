"""rtnetlink (NETLINK_ROUTE): one module per object over the one transport (STYLE.md §1).

    link       RTM_*LINK   interfaces: list/get, add (veth, macvlan, ipvlan, vlan, bridge,
                           dummy, ifb), set (up/down, mtu, address, name, master, netns), delete
    address    RTM_*ADDR   interface addresses, v4 and v6
    route      RTM_*ROUTE  routes: list, get (kernel lookup), add/replace/delete, any table
    neighbour  RTM_*NEIGH  ARP/NDP entries
    rule       RTM_*RULE   policy-routing rules
    stats      RTM_GETSTATS rtnl_link_stats64 counters
    monitor    multicast events, decoded by the same codecs
    diff       pure: desired vs observed -> create/update/delete ops
    names      iproute2's names for protocols, tables, scopes, types

Each module has `decode(body)` for a message body, read verbs, and for every change a
`*_request(...)` that returns (type, flags, body) — a verb is data — so `linx net apply` can
pipeline the very requests the single verbs send.
"""
from .. import transport


def open(target=None) -> transport.Socket:
    """An rtnetlink socket in `target`'s network namespace (None: ours)."""
    return transport.open(transport.NETLINK_ROUTE, target)
