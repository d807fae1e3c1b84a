"""Desired vs observed rtnetlink state -> the create/update/delete ops that converge them.
Pure: lists of decoded objects in, a list of (op, object) out; applying and ordering are
the reconciler's.

Ownership decides what may be deleted:
- routes, two-way: rtm_protocol tags every route with its writer, so the observed routes
  carrying our protocol are ours and the rest (connected routes, DHCP, other daemons) are
  never seen;
- addresses, links, rules, neighbours, three-way: nothing in the kernel says who made them,
  so only an observed item whose key is in `owned` (the keys this reconciler applied before,
  as kubectl's last-applied configuration) is deleted; foreign state is left alone.

Keys and mutable values (a changed value is an update, applied with the replace verb):
    route      (table, family, dst | "default", dst_len, metric)   gateway
               (no metric is the kernel's default: 0, or 1024 for IPv6)
    address    (index, family, address, prefixlen)                 -
    neighbour  (ifindex, dst)                                      lladdr
    rule       (priority, family, src, src_len, dst, dst_len, fwmark, table)  -
    link       name                                                -
"""
from ...ip import AF_INET6
from . import names

CREATE, UPDATE, DELETE = "create", "update", "delete"
RT_SCOPE_UNIVERSE = 0


def _no_value(item):
    return None


def two_way(desired, observed, key, value=_no_value) -> list:
    """Every observed item not desired is deletable: `observed` is already what we own."""
    return three_way(desired, observed, None, key, value)


def three_way(desired, observed, owned, key, value=_no_value) -> list:
    """Creates for desired keys not observed, updates where the value differs, deletes for
    observed keys not desired that are in `owned` (None: all of them)."""
    seen = {}
    for item in observed:
        seen.setdefault(key(item), item)
    wanted = {}
    for item in desired:
        wanted.setdefault(key(item), item)
    ops = []
    for k, item in wanted.items():
        if k not in seen:
            ops.append((CREATE, item))
        elif value(item) != value(seen[k]):
            ops.append((UPDATE, item))
    for k, item in seen.items():
        if k not in wanted and (owned is None or k in owned):
            ops.append((DELETE, item))
    return ops


def route_key(r) -> tuple:
    """A dst_len of 0 is the default route whether or not RTA_DST is there (the kernel
    leaves it out, a desired 0.0.0.0/0 may carry it)."""
    dst = "default" if r.dst_len == 0 else r.dst
    metric = r.metric
    if metric is None:   # the kernel's default: 0 for IPv4, IP6_RT_PRIO_USER (1024) for IPv6
        metric = 1024 if r.family == AF_INET6 else 0
    return (r.table, r.family, dst, r.dst_len, metric)


def routes(desired, observed, protocol) -> list:
    proto = names.protocol(protocol)
    return two_way(desired, [r for r in observed if r.protocol == proto], route_key,
                   lambda r: r.gateway)


def address_key(a) -> tuple:
    return (a.index, a.family, a.address, a.prefixlen)


def addresses(desired, observed, owned) -> list:
    """Link-local and host-scope addresses (fe80::/64, the kernel's own) are dropped first."""
    return three_way(desired, [a for a in observed if a.scope == RT_SCOPE_UNIVERSE], owned,
                     address_key)


def neighbour_key(n) -> tuple:
    return (n.ifindex, n.dst)


def neighbours(desired, observed, owned) -> list:
    return three_way(desired, observed, owned, neighbour_key, lambda n: n.lladdr)


def rule_key(r) -> tuple:
    return (r.priority, r.family, r.src, r.src_len, r.dst, r.dst_len, r.fwmark, r.table)


def rules(desired, observed, owned) -> list:
    return three_way(desired, observed, owned, rule_key)


def link_key(link) -> str:
    return link.name


def links(desired, observed, owned) -> list:
    """Existence only; reconciling a link's attributes is a separate concern."""
    return three_way(desired, observed, owned, link_key)
