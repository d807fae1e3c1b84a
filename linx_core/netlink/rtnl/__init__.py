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

Each module has `decode(body)` for a message body, `list`/`get` read verbs, `to_json` (the
object `ip -j` prints), and for every change a request builder that returns
(type, flags, body) — `request(verb, ...)`, for links `add_request`/`set_request`/
`delete_request`; a verb is data — so `linx net apply` pipelines the very requests the single
verbs send, and `build(...)` turns one into the value a diff's desired side holds.
"""
from .. import transport


def open(target=None) -> transport.Socket:
    """An rtnetlink socket in `target`'s network namespace (None: ours)."""
    return transport.open(transport.NETLINK_ROUTE, target)
