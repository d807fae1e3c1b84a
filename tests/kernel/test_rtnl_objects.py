"""rtnl objects against the kernel, in a fresh netns per test: what linx creates, `ip -j` and
pyroute2 read back; what `ip` creates, linx reads back the same (ARCHITECTURE.md, "Tests")."""
import errno
import json
import subprocess

import pytest

from linx_core.ip import IP, MAC
from linx_core.netlink import rtnl
from linx_core.netlink.errors import NetlinkError
from linx_core.netlink.rtnl import address, link, neighbour, route, rule, stats


def ip(ns, *args, check=True):
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=check)
    return json.loads(out.stdout) if out.stdout.strip() else []


def sh(ns, cmd):
    subprocess.run(f"ip -n {ns} " + cmd, shell=True, check=True)


@pytest.fixture
def sock(netns):
    with rtnl.open(netns) as s:
        yield s


@pytest.fixture
def pr2(netns):
    from pyroute2 import NetNS
    ns = NetNS(netns)
    yield ns
    ns.close()


def shared(ours: dict, theirs: dict) -> tuple[dict, dict]:
    keys = ours.keys() & theirs.keys()
    return {k: ours[k] for k in keys}, {k: theirs[k] for k in keys}


def test_socket_lives_in_its_netns(sock, netns):
    names = [l.name for l in link.list(sock)]
    assert names == ["lo"]                       # not the host's interfaces
    sh(netns, "link add v0 type veth peer name v1")
    assert sorted(l.name for l in link.list(sock)) == ["lo", "v0", "v1"]


def test_veth_macvlan_bridge(sock, netns, pr2):
    link.add(sock, "v0", "veth", peer="v1")
    link.add(sock, "mv0", "macvlan", parent="v0", mode="private")
    link.add(sock, "br0", "bridge")
    link.set(sock, "v1", master="br0", up=True, mtu=1400, address="02:aa:bb:cc:dd:01")
    links = {l["ifname"]: l for l in ip(netns, "-d", "link", "show")}
    assert links["v0"]["linkinfo"]["info_kind"] == "veth" and links["v0"]["link"] == "v1"
    assert links["mv0"]["linkinfo"]["info_data"]["mode"] == "private" and links["mv0"]["link"] == "v0"
    assert links["br0"]["linkinfo"]["info_kind"] == "bridge"
    assert links["v1"]["master"] == "br0" and links["v1"]["mtu"] == 1400
    assert links["v1"]["address"] == "02:aa:bb:cc:dd:01" and "UP" in links["v1"]["flags"]
    pl = {l.get("ifname"): l for l in pr2.get_links()}
    assert pl["v1"].get("master") == pl["br0"]["index"]
    assert pl["mv0"].get(("linkinfo", "data", "macvlan_mode")) in (1, "private")
    # and linx decodes what it made the way ip shows it
    ours = link.get(sock, "mv0")
    assert (ours.kind, ours.data["mode"], ours.parent) == ("macvlan", 1, pl["v0"]["index"])
    link.set(sock, "v1", master="", up=False, name="v9")
    links = {l["ifname"]: l for l in ip(netns, "link", "show")}
    assert "master" not in links["v9"] and "UP" not in links["v9"]["flags"]
    link.delete(sock, "mv0")
    assert "mv0" not in {l["ifname"] for l in ip(netns, "link", "show")}


def test_link_show_equals_ip(sock, netns):
    sh(netns, "link add a0 type veth peer name a1")
    sh(netns, "link add br1 type bridge")
    sh(netns, "link set a0 master br1")
    sh(netns, "link set a1 up")
    sh(netns, "link add m1 link a1 type macvlan mode vepa")
    sh(netns, "link add i1 type ifb")
    found = link.list(sock)
    by_index = {l.index: l for l in found}
    assert [link.to_json(l, by_index) for l in found] == ip(netns, "link", "show")


@pytest.mark.parametrize("kind", ["dummy", "ipvlan", "vlan"])
def test_missing_driver_is_a_clear_error(sock, kind):
    link.add(sock, "p0", "veth", peer="p1")
    options = {"dummy": {}, "ipvlan": {"parent": "p0"}, "vlan": {"parent": "p0", "vlan_id": 5}}[kind]
    try:
        link.add(sock, "k0", kind, **options)
    except NetlinkError as e:
        assert e.errno == errno.EOPNOTSUPP
        assert f'link type "{kind}" is not supported by this kernel' in str(e)
    else:   # a kernel with the driver: it must be there, as asked
        assert link.get(sock, "k0").kind == kind


def test_errors_name_the_interface(sock):
    with pytest.raises(NetlinkError) as e:
        link.get(sock, "nope0")
    assert e.value.errno == errno.ENODEV and 'no such interface "nope0"' in str(e.value)
    with pytest.raises(NetlinkError) as e:
        link.add(sock, "mv0", "macvlan", parent="nope1")
    assert 'no such parent interface "nope1"' in str(e.value)
    link.add(sock, "e0", "bridge")
    with pytest.raises(NetlinkError) as e:
        link.add(sock, "e0", "bridge")
    assert e.value.errno == errno.EEXIST


def test_move_to_netns_by_name_pid_and_path(sock, netns):
    other = netns + "-b"
    subprocess.run(["ip", "netns", "add", other], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", other, "sleep", "30"])
    try:
        link.add(sock, "m0", "veth", peer="m1")
        link.add(sock, "m2", "veth", peer="m3")
        link.add(sock, "m4", "veth", peer="m5")
        link.set(sock, "m1", netns=other)
        import time
        for _ in range(100):    # wait for the sleeper to be inside `other`
            try:
                if open(f"/proc/{sleeper.pid}/cmdline").read().startswith("sleep"):
                    break
            except OSError:
                pass
            time.sleep(0.02)
        link.set(sock, "m3", netns=f"pid:{sleeper.pid}")
        link.set(sock, "m5", netns=f"/run/netns/{other}")
        there = {l["ifname"] for l in ip(other, "link", "show")}
        assert {"m1", "m3", "m5"} <= there
        here = {l["ifname"] for l in ip(netns, "link", "show")}
        assert not {"m1", "m3", "m5"} & here
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_addresses(sock, netns, pr2):
    link.add(sock, "a0", "veth", peer="a1")
    idx = link.index(sock, "a0")
    address.add(sock, idx, "10.3.0.5/24", broadcast="+", label="a0:x")
    address.add(sock, idx, "fd00:3::5/64")
    info = ip(netns, "addr", "show", "dev", "a0")[0]["addr_info"]
    assert {(a["local"], a["prefixlen"]) for a in info} >= {("10.3.0.5", 24), ("fd00:3::5", 64)}
    assert {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in pr2.get_addr(index=idx)} >= \
        {("10.3.0.5", 24), ("fd00:3::5", 64)}
    mine = [address.to_json(a) for a in address.list(sock, idx)]
    for ours, theirs in zip(mine, info):
        assert shared(ours, theirs)[0] == shared(ours, theirs)[1]
        assert set(theirs) <= set(ours)
    with pytest.raises(NetlinkError) as e:
        address.add(sock, idx, "10.3.0.5/24")
    assert e.value.errno == errno.EEXIST
    address.delete(sock, idx, "10.3.0.5/24")
    address.delete(sock, idx, "fd00:3::5/64")
    assert not [a for a in ip(netns, "addr", "show", "dev", "a0")[0]["addr_info"]
                if a["scope"] == "global"]


def test_routes(sock, netns, pr2):
    sh(netns, "link add r0 type veth peer name r1")
    sh(netns, "link set r0 up")
    sh(netns, "link set r1 up")
    sh(netns, "addr add 10.4.0.1/24 dev r0")
    sh(netns, "addr add fd00:4::1/64 dev r0 nodad")
    oif = link.index(sock, "r0")
    route.add(sock, "10.50.0.0/24", via="10.4.0.2", table=1000, protocol=76, metric=5)
    route.add(sock, "10.51.0.0/24", oif=oif, protocol="static")
    route.add(sock, "default", via="10.4.0.254")
    route.add(sock, "fd00:9::/64", via="fd00:4::2", metric=100)
    with pytest.raises(NetlinkError) as e:
        route.add(sock, "10.50.0.0/24", via="10.4.0.2", table=1000, protocol=76, metric=5)
    assert e.value.errno == errno.EEXIST
    by_index = {l.index: l for l in link.list(sock)}
    for fam, args, table in ((2, ["route", "show"], 254), (0, ["route", "show", "table", "all"], None),
                             (10, ["-6", "route", "show"], 254), (2, ["route", "show", "table", "1000"], 1000)):
        assert [route.to_json(r, by_index, table) for r in route.list(sock, fam, table)] == ip(netns, *args)
    t1000 = pr2.get_routes(table=1000)
    assert [(r.get("dst"), r["dst_len"], r.get("gateway"), r["proto"], r.get("priority")) for r in t1000] == \
        [("10.50.0.0", 24, "10.4.0.2", 76, 5)]
    got = route.get(sock, "10.50.0.9")      # not in main: the lookup finds the default
    assert route.to_json(got, by_index) == ip(netns, "route", "get", "10.50.0.9")[0]
    assert route.to_json(route.get(sock, "fd00:9::1"), by_index) == ip(netns, "route", "get", "fd00:9::1")[0]
    route.replace(sock, "10.50.0.0/24", via="10.4.0.3", table=1000, protocol=76, metric=5)
    assert ip(netns, "route", "show", "table", "1000")[0]["gateway"] == "10.4.0.3"
    route.delete(sock, "10.50.0.0/24", table=1000)
    route.delete(sock, "default")
    assert ip(netns, "route", "show", "table", "1000") == []
    with pytest.raises(NetlinkError) as e:
        route.delete(sock, "10.99.0.0/24")
    assert e.value.errno == errno.ESRCH
    with pytest.raises(NetlinkError) as e:
        route.get(sock, "192.0.2.1")
    assert e.value.errno == errno.ENETUNREACH


def test_routes_made_by_ip_read_back(sock, netns):
    sh(netns, "link add r0 type veth peer name r1")
    sh(netns, "link set r0 up")
    sh(netns, "addr add 10.5.0.1/24 dev r0")
    sh(netns, "route add 10.60.0.0/16 via 10.5.0.9 table 3000 proto 200 metric 9")
    sh(netns, "route add blackhole 10.61.0.0/16")
    sh(netns, "route add unreachable 10.62.0.0/16 table 7")
    r = [r for r in route.list(sock, 2, 3000)][0]
    assert (str(r.dst), r.dst_len, str(r.gateway), r.table, r.protocol, r.metric) == \
        ("10.60.0.0", 16, "10.5.0.9", 3000, 200, 9)
    by_index = {l.index: l for l in link.list(sock)}
    assert [route.to_json(x, by_index) for x in route.list(sock, 0)] == ip(netns, "route", "show", "table", "all")


def test_neighbours(sock, netns, pr2):
    sh(netns, "link add n0 type veth peer name n1")
    idx = link.index(sock, "n0")
    neighbour.add(sock, idx, "10.6.0.9", "02:00:00:00:06:09")
    neighbour.add(sock, idx, "fd00:6::9", "02:00:00:00:06:0a", router=True)
    sh(netns, "neigh add 10.6.0.10 lladdr 02:00:00:00:06:10 dev n0")
    by_index = {l.index: l for l in link.list(sock)}
    assert [neighbour.to_json(n, by_index) for n in neighbour.list(sock)] == ip(netns, "neigh", "show")
    entry = [n for n in pr2.get_neighbours(ifindex=idx) if n.get("dst") == "10.6.0.9"][0]
    assert entry.get("lladdr") == "02:00:00:00:06:09"
    with pytest.raises(NetlinkError) as e:
        neighbour.add(sock, idx, "10.6.0.9", "02:00:00:00:06:09")
    assert e.value.errno == errno.EEXIST
    neighbour.delete(sock, idx, "10.6.0.9")
    assert "10.6.0.9" not in {n["dst"] for n in ip(netns, "neigh", "show")}


def test_rules(sock, netns, pr2):
    rule.add(sock, src="10.7.0.0/16", table=1000, priority=300)
    rule.add(sock, fwmark="0x10", fwmask="0xff", table="main", priority=301)
    rule.add(sock, dst="fd00:7::/48", table=77, priority=302)
    sh(netns, "rule add to 10.8.0.0/16 lookup 55 pref 303")
    assert [rule.to_json(r) for r in rule.list(sock, 2)] == ip(netns, "rule", "show")
    assert [rule.to_json(r) for r in rule.list(sock, 10)] == ip(netns, "-6", "rule", "show")
    r300 = [r for r in pr2.get_rules(family=2) if r.get("priority") == 300][0]
    assert (r300.get("src"), r300["src_len"], r300.get("table")) == ("10.7.0.0", 16, 1000)
    with pytest.raises(NetlinkError) as e:
        rule.add(sock, src="10.7.0.0/16", table=1000, priority=300)
    assert e.value.errno == errno.EEXIST
    rule.delete(sock, src="10.7.0.0/16", table=1000, priority=300)
    assert 300 not in {r["priority"] for r in ip(netns, "rule", "show")}


def test_stats(sock, netns):
    sh(netns, "link set lo up")
    subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.01", "-q", "127.0.0.1"],
                   check=True, capture_output=True)
    lo = stats.get(sock, 1)
    theirs = ip(netns, "-s", "link", "show", "lo")[0]["stats64"]
    ours = stats.to_json(lo)
    assert ours["rx"] == theirs["rx"] and ours["tx"] == theirs["tx"]
    assert ours["rx"]["packets"] >= 6
    assert {s.ifindex for s in stats.list(sock)} == {l.index for l in link.list(sock)}


def test_values_are_value_types(sock, netns):
    sh(netns, "link add t0 type veth peer name t1")
    idx = link.index(sock, "t0")
    address.add(sock, idx, "10.9.0.1/24")
    a = [a for a in address.list(sock, idx) if a.family == 2][0]
    assert a.address == IP("10.9.0.1") and isinstance(link.get(sock, "t0").address, MAC)
