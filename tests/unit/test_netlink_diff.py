"""rtnl.diff against hand-built desired/observed states (spec: Linx.Netlink.Rtnl.Diff)."""
from linx_core.ip import IP
from linx_core.netlink.rtnl import address, diff, neighbour, route, rule
from linx_core.netlink.rtnl.link import Link


def ops(result):
    return sorted((op, str(getattr(item, "dst", None) or getattr(item, "address", None) or item.name))
                  for op, item in result)


def test_routes_two_way_by_protocol():
    desired = [route.build("10.1.0.0/24", via="10.0.0.1", protocol="static"),
               route.build("10.2.0.0/24", via="10.0.0.9", protocol="static"),
               route.build("default", via="10.0.0.1", protocol="static")]
    observed = [route.build("10.2.0.0/24", via="10.0.0.1", protocol="static"),   # gateway changed
                route.build("10.3.0.0/24", via="10.0.0.1", protocol="static"),   # ours, unwanted
                route.build("10.4.0.0/24", via="10.0.0.1", protocol="dhcp"),     # someone else's
                route.build("0.0.0.0/0", via="10.0.0.1", protocol="static")]     # default, same
    result = diff.routes(desired, observed, "static")
    assert ops(result) == [("create", "10.1.0.0"), ("delete", "10.3.0.0"), ("update", "10.2.0.0")]
    update = [item for op, item in result if op == "update"][0]
    assert update.gateway == IP("10.0.0.9")          # the desired object, to replace with


def test_route_key_defaults_and_tables():
    assert diff.route_key(route.build("default", via="10.0.0.1")) == \
        diff.route_key(route.build("0.0.0.0/0", via="10.0.0.2"))
    assert diff.route_key(route.build("10.0.0.0/8", via="10.0.0.1", table=1000))[0] == 1000
    assert diff.route_key(route.build("fd00::/64", via="fd00::1"))[-1] == 1024


def test_addresses_three_way_only_owned_deleted():
    mine, foreign, wanted = (address.build(2, "10.0.0.5/24"), address.build(2, "10.0.0.6/24"),
                             address.build(2, "10.0.0.7/24"))
    owned = {diff.address_key(mine), diff.address_key(wanted)}
    result = diff.addresses([wanted], [mine, foreign], owned)
    assert ops(result) == [("create", "10.0.0.7"), ("delete", "10.0.0.5")]


def test_addresses_ignore_link_local():
    ll = address.build(2, "fe80::1/64", scope="link")
    assert diff.addresses([], [ll], {diff.address_key(ll)}) == []


def test_neighbours_update_on_lladdr():
    a = neighbour.build(3, "10.0.0.1", "02:00:00:00:00:01")
    b = neighbour.build(3, "10.0.0.1", "02:00:00:00:00:02")
    assert [op for op, _ in diff.neighbours([a], [b], set())] == ["update"]
    assert diff.neighbours([a], [a], set()) == []


def test_rules_and_links():
    r = rule.build(src="10.0.0.0/24", table=100, priority=200)
    assert diff.rules([r], [], set()) == [("create", r)]
    assert diff.rules([], [r], set()) == []
    assert diff.rules([], [r], {diff.rule_key(r)}) == [("delete", r)]
    eth = Link(2, attrs={"ifname": "eth0"})
    assert diff.links([], [eth], {"eth0"}) == [("delete", eth)]
    assert diff.links([eth], [eth], {"eth0"}) == []


def test_second_pass_is_empty():
    desired = [route.build("10.1.0.0/24", via="10.0.0.1", protocol=76)]
    assert diff.routes(desired, desired, 76) == []
