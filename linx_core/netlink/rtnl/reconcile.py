"""Addresses and routes on existing interfaces, converged in one ordered pass (the spec's
Linx.Netlink.Rtnl.Reconcile): observe with fresh listings, diff with diff.py, apply.

Desired state is authored by interface name; indices are ephemeral, so they are resolved
against a fresh link list every pass. Links themselves (creating a veth, its MTU, up/down)
are lifecycle and out of scope: a missing interface stops the pass before anything is done.

Ownership (diff.py): routes by rtm_protocol (default 76, "L"), two-way — every route this
source installs carries it, a route of any other protocol is invisible to it and never
touched; addresses three-way, by last_applied {"addresses": {key: text}} of the addresses
this run installed, so an address that merely appeared is left alone.

Order follows the kernel's layering: address creates (a gateway must be reachable), route
creates and updates, route deletes, address deletes. Fail-fast: the first refusal stops the
pass and the ops after it are pending; the next pass converges.
"""
import errno
from dataclasses import dataclass

from ...errors import UsageError
from ...ip import AF_INET, AF_INET6, Subnet
from ... import reconcile as _reconcile
from ... import target as _target
from .. import transport
from ..errors import NetlinkError
from . import address, diff, link, monitor, names, route
from . import open as _open

DEFAULT_PROTOCOL = 76     # ASCII "L", the seed's default_protocol/0
RT_TABLE_MAIN = 254
KEYS = ("netns", "protocol", "addresses", "routes")
ROUTE_KEYS = ("to", "via", "table", "metric")


@dataclass(frozen=True)
class RouteSpec:
    """A desired route: the body of its request (sent with add or replace flags) and the
    Route it decodes to (the diff's desired side)."""
    body: bytes
    built: object


class NetSource:
    """[net]: the addresses and routes of one network namespace."""

    def __init__(self, key: str, target: _target.Target, protocol: int = DEFAULT_PROTOCOL,
                 addresses=(), routes=()):
        self.key, self.target, self.scope = key, target, str(target)
        self.protocol = protocol
        self.addresses = list(addresses)    # [(dev, Subnet)]
        self.routes = list(routes)          # [RouteSpec]

    def released(self) -> "NetSource":
        return NetSource(self.key, self.target, self.protocol)

    def subscribe(self) -> _reconcile.Hints:
        """Links (an interface appearing makes an address placeable), addresses, routes."""
        return _reconcile.Hints(monitor.open(self.target, ("link", "addr", "route")))

    def plan(self, last_applied: dict) -> list:
        """Each op's item is (address key or None, the request that does it), built here
        from fresh listings, so apply only sends."""
        owned = last_applied.get("addresses", {})
        with _open(self.target) as sock:
            links = link.list(sock)
            observed_addresses = address.list(sock)
            observed_routes = route.list(sock)
        index = {l.name: l.index for l in links}
        name = {l.index: l.name for l in links}
        desired, adds = [], {}
        for dev, subnet in self.addresses:
            if dev not in index:
                raise NetlinkError("reconcile", f"{self.key}.addresses.{dev}", errno.ENODEV,
                                   f"no interface {dev} in {self.target} (links are not "
                                   "created by reconcile); nothing applied")
            req = address.request("add", index[dev], subnet)
            a = address.decode(req[2])
            desired.append(a)
            adds[diff.address_key(a)] = req
        a_ops = diff.addresses(desired, observed_addresses, owned)
        specs = {diff.route_key(r.built): r for r in self.routes}
        r_ops = diff.routes([r.built for r in self.routes], observed_routes, self.protocol)

        def address_op(verb, a):
            key = diff.address_key(a)
            req = adds[key] if verb == diff.CREATE else address.request("del", a.index, a.subnet)
            return _reconcile.Op(verb, f"address {a.subnet} dev {name.get(a.index, f'if{a.index}')}",
                                 item=(key, req))

        def route_op(verb, r):
            if verb == diff.DELETE:             # an observed route of ours: exactly that one
                dst = Subnet(r.dst, r.dst_len) if r.dst_len else "default"
                req = route.request("del", dst, via=r.gateway, table=r.table, protocol=r.protocol,
                                    metric=r.metric, family=r.family)
            else:
                # add, not replace, for a create: a route of another protocol with the same
                # key must stay (EEXIST, reported); an update replaces ours in place
                # (NLM_F_REPLACE): one RTM_NEWROUTE, no delete.
                req = (*route.VERBS["add" if verb == diff.CREATE else "replace"], specs[diff.route_key(r)].body)
            return _reconcile.Op(verb, "route " + _route_text(r), item=(None, req))

        return ([address_op(v, a) for v, a in a_ops if v == diff.CREATE] +
                [route_op(v, r) for v, r in r_ops if v != diff.DELETE] +
                [route_op(v, r) for v, r in r_ops if v == diff.DELETE] +
                [address_op(v, a) for v, a in a_ops if v == diff.DELETE])

    def apply(self, plan: list, last_applied: dict) -> _reconcile.Report:
        """One request at a time, each acknowledged before the next is sent: pipelining
        would let the kernel run requests after a refused one (it handles every message of
        a sendmsg), a delete after a failed create included."""
        report = _reconcile.Report(self.key)
        owned = dict(last_applied.get("addresses", {}))
        if plan:
            with _open(self.target) as sock:
                for i, op in enumerate(plan):
                    key, req = op.item
                    try:
                        transport.talk(sock, *req)
                    except NetlinkError as e:
                        report.failed.append((op, self._sharpen(op, e)))
                        report.pending = plan[i + 1:]
                        break
                    report.applied.append(op)
                    if key is not None and op.verb == diff.CREATE:
                        owned[key] = op.obj.removeprefix("address ")
                    elif key is not None:
                        owned.pop(key, None)
        report.last_applied = {"addresses": owned}
        report.owned = {"addresses": sorted(owned.values())}
        return report

    def _sharpen(self, op, e: NetlinkError) -> NetlinkError:
        if op.item[0] is not None:
            e = address.sharpen(e)
        elif op.verb == diff.CREATE and e.errno == errno.EEXIST:
            e = e.sharpen(f"a route with this destination, table and metric exists without proto "
                          f"{self.protocol}: not linx's, left alone")
        else:
            e = route.sharpen(e)
        return e.sharpen(None, op=f"reconcile {op.verb}", obj=op.obj)


def _route_text(r) -> str:
    """As ip prints it: `10.50.0.0/24 via 10.0.0.1 table 100 metric 50 proto 76`."""
    out = f"{r.dst}/{r.dst_len}" if r.dst_len else "default"
    if r.gateway is not None:
        out += f" via {r.gateway}"
    if r.table != RT_TABLE_MAIN:
        out += f" table {names.n2a('rt_tables', r.table)}"
    if r.metric is not None:
        out += f" metric {r.metric}"
    return out + f" proto {names.n2a('rt_protos', r.protocol)}"


# -- the [net] section of a desired-state file ----------------------------------------------

def section(body, where: str) -> NetSource:
    """Validate [net] (no syscall): netns, protocol, [net.addresses] DEV = ["ADDR/LEN", ...],
    [[net.routes]] to/via/table/metric. A UsageError names the key."""
    if not isinstance(body, dict):
        raise UsageError(where, "expected a table")
    for key in body:
        if key not in KEYS:
            raise UsageError(f"{where}.{key}", f"unknown key (expected one of {', '.join(KEYS)})")
    netns = body.get("netns")
    if netns is not None and not isinstance(netns, str):
        raise UsageError(f"{where}.netns", f"{netns!r}: expected a target (host, pid:N, a netns "
                                           "name, a namespace file, a session)")
    target = _target.parse(netns, f"{where}.netns")
    proto = body.get("protocol", DEFAULT_PROTOCOL)
    if isinstance(proto, bool) or not isinstance(proto, (int, str)):
        raise UsageError(f"{where}.protocol", f"{proto!r}: expected a number or a protocol name")
    proto = names.protocol(proto, f"{where}.protocol")
    if proto <= 2:
        raise UsageError(f"{where}.protocol", f"{proto} is the kernel's own (unspec, redirect, "
                                              "kernel: connected routes); pick another tag")
    return NetSource("net", target, proto, _addresses(body.get("addresses", {}), f"{where}.addresses"),
                     _routes(body.get("routes", []), f"{where}.routes", proto))


def _addresses(table, where: str) -> list:
    if not isinstance(table, dict):
        raise UsageError(where, 'expected a table: DEV = ["10.0.0.2/24", ...]')
    out = []
    for dev, items in table.items():
        link.check_name(dev, f"{where}.{dev}")
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise UsageError(f"{where}.{dev}", 'expected a list of addresses ("10.0.0.2/24")')
        for i, text in enumerate(items):
            label = f"{where}.{dev}[{i}]"
            subnet = Subnet(text, where=label)
            raw = subnet.address.bytes
            if (subnet.family == AF_INET and raw[0] == 127) or \
                    (subnet.family == AF_INET6 and raw[0] == 0xfe and raw[1] & 0xc0 == 0x80):
                raise UsageError(label, f"{text!r} is a host or link-local address, which the "
                                        "kernel scopes itself; only global addresses are reconciled")
            out.append((dev, subnet))
    return out


def _routes(items, where: str, proto: int) -> list:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UsageError(where, 'expected [[net.routes]] tables (to = "10.50.0.0/24", via = "10.0.0.1")')
    out, seen = [], {}
    for i, item in enumerate(items):
        label = f"{where}[{i}]"
        for key in item:
            if key not in ROUTE_KEYS:
                raise UsageError(f"{label}.{key}", f"unknown key (expected one of {', '.join(ROUTE_KEYS)})")
        for key in ("to", "via"):
            if not isinstance(item.get(key), str):
                raise UsageError(f"{label}.{key}", f"{item.get(key)!r}: expected an address string"
                                 if key in item else "missing (every route names to and via)")
        options = {"via": item["via"], "protocol": proto}
        for key in ("table", "metric"):
            if key in item:
                if isinstance(item[key], bool) or not isinstance(item[key], (int, str)):
                    raise UsageError(f"{label}.{key}", f"{item[key]!r}: expected a number")
                options[key] = item[key]
        try:
            body = route.request("add", item["to"], **options)[2]
        except UsageError as e:
            raise UsageError(f"{label}.{e.where}", e.expected) from None
        built = route.decode(body)
        key = diff.route_key(built)
        if key in seen:
            raise UsageError(label, f"the same destination, table and metric as {where}[{seen[key]}]")
        seen[key] = i
        out.append(RouteSpec(body, built))
    return out
