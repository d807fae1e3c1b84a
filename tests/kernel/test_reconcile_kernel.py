"""Reconcile sources against the real kernel, each pass driven by hand: in a fresh netns
(a veth pair, since this kernel has no dummy driver) for addresses, routes and per-netns
sysctls, and in a test cgroup (real cgroup2 mount, core files only here) or a fake cgroupfs
tree for controller knobs. State is read back with `ip -j`, `ip monitor`, `sysctl -n` and
the cgroup files themselves."""
import json
import os
import subprocess
import time
import uuid

import pytest

from linx_core import cgroup, reconcile, target
from linx_core.netlink.rtnl.reconcile import section


def ip(ns, *args):
    out = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def addrs(ns, dev="va"):
    return sorted(f"{a['local']}/{a['prefixlen']}" for i in ip(ns, "addr", "show", "dev", dev)
                  for a in i["addr_info"] if a["scope"] == "global")


def routes(ns, *extra):
    """(dst, gateway, protocol, metric, table) of every route but the kernel's own."""
    out = []
    for family in ("-4", "-6"):
        for r in ip(ns, family, "route", "show", "table", "all", *extra):
            if r.get("protocol") in ("kernel", None) and "gateway" not in r:
                continue
            if r.get("table") == "local" or r.get("dst", "").startswith(("fe80", "ff00", "multicast")):
                continue
            out.append((r["dst"], r.get("gateway"), r.get("protocol", "boot"), r.get("metric"),
                        r.get("table", "main")))
    return sorted(out, key=str)


@pytest.fixture
def ns(netns):
    sh("ip", "-n", netns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    sh("ip", "-n", netns, "link", "set", "va", "up")
    sh("ip", "-n", netns, "link", "set", "vb", "up")
    return netns


def net(ns, text):
    """A [net] section (as the file's loader validates it) in the test netns."""
    import tomllib
    return section({**tomllib.loads(text), "netns": ns}, "net")


def passes(src, n=1, last=None):
    """Run n passes, threading last_applied; the last report."""
    last = {} if last is None else last
    for _ in range(n):
        r = reconcile.reconcile(src, last)
        last = r.last_applied
    return r


DESIRED = """
[addresses]
va = ["10.0.0.2/24", "fc00::2/64"]
[[routes]]
to = "10.50.0.0/24"
via = "10.0.0.1"
[[routes]]
to = "default"
via = "10.0.0.1"
metric = 10
[[routes]]
to = "10.60.0.0/24"
via = "10.0.0.1"
table = 100
[[routes]]
to = "fc01::/64"
via = "fc00::1"
"""


def test_net_converges_and_a_second_pass_plans_nothing(ns):
    src = net(ns, DESIRED)
    plan = src.plan({})
    assert [str(o) for o in plan] == [
        "create address 10.0.0.2/24 dev va", "create address fc00::2/64 dev va",
        "create route 10.50.0.0/24 via 10.0.0.1 proto 76",
        "create route default via 10.0.0.1 metric 10 proto 76",
        "create route 10.60.0.0/24 via 10.0.0.1 table 100 proto 76",
        "create route fc01::/64 via fc00::1 proto 76"]
    r = src.apply(plan, {})
    assert r.converged and len(r.applied) == 6
    assert addrs(ns) == ["10.0.0.2/24", "fc00::2/64"]
    assert routes(ns) == sorted([("10.50.0.0/24", "10.0.0.1", "76", None, "main"),
                                 ("default", "10.0.0.1", "76", 10, "main"),
                                 ("10.60.0.0/24", "10.0.0.1", "76", None, "100"),
                                 ("fc01::/64", "fc00::1", "76", 1024, "main")], key=str)
    assert src.plan(r.last_applied) == []
    assert r.to_json()["last_applied"] == {"addresses": ["10.0.0.2/24 dev va", "fc00::2/64 dev va"]}


def test_a_deleted_address_is_restored_and_a_foreign_one_left_alone(ns):
    src = net(ns, '[addresses]\nva = ["10.0.0.2/24", "10.0.1.2/24"]\n')
    last = passes(src).last_applied
    sh("ip", "-n", ns, "addr", "del", "10.0.0.2/24", "dev", "va")
    sh("ip", "-n", ns, "addr", "add", "10.0.9.9/24", "dev", "va")
    r = passes(src, last=last)
    assert [str(o) for o in r.applied] == ["create address 10.0.0.2/24 dev va"]
    assert addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24", "10.0.9.9/24"]
    assert src.plan(r.last_applied) == []


def test_only_installed_addresses_are_removed(ns):
    """10.0.0.2 was there before linx (never installed by it), 10.0.1.2 linx added; both
    leave the desired state: only 10.0.1.2 goes."""
    sh("ip", "-n", ns, "addr", "add", "10.0.0.2/24", "dev", "va")
    r = passes(net(ns, '[addresses]\nva = ["10.0.0.2/24", "10.0.1.2/24"]\n'))
    assert [str(o) for o in r.applied] == ["create address 10.0.1.2/24 dev va"]
    r2 = passes(net(ns, ""), last=r.last_applied)
    assert [str(o) for o in r2.applied] == ["delete address 10.0.1.2/24 dev va"]
    assert addrs(ns) == ["10.0.0.2/24"]
    assert r2.last_applied == {"addresses": {}}


def test_routes_of_another_protocol_are_never_touched_and_the_pass_fails_fast(ns):
    sh("ip", "-n", ns, "addr", "add", "10.0.0.2/24", "dev", "va")
    sh("ip", "-n", ns, "route", "add", "10.50.0.0/24", "via", "10.0.0.1")               # boot
    sh("ip", "-n", ns, "route", "add", "10.51.0.0/24", "via", "10.0.0.1", "proto", "static")
    before = routes(ns)
    src = net(ns, """
[[routes]]
to = "10.52.0.0/24"
via = "10.0.0.1"
[[routes]]
to = "10.50.0.0/24"
via = "10.0.0.254"
[[routes]]
to = "10.53.0.0/24"
via = "10.0.0.1"
""")
    r = passes(src)
    assert [str(o) for o in r.applied] == ["create route 10.52.0.0/24 via 10.0.0.1 proto 76"]
    (op, err), = r.failed
    assert str(op) == "create route 10.50.0.0/24 via 10.0.0.254 proto 76" and err.errno_name == "EEXIST"
    assert [str(o) for o in r.pending] == ["create route 10.53.0.0/24 via 10.0.0.1 proto 76"]
    assert not r.converged
    assert set(before) <= set(routes(ns))                  # both foreign routes as they were
    # an empty desired state deletes our route only
    r2 = passes(net(ns, ""))
    assert [str(o) for o in r2.applied] == ["delete route 10.52.0.0/24 via 10.0.0.1 proto 76"]
    assert routes(ns) == before


def test_a_gateway_change_is_a_replace_not_delete_and_add(ns):
    sh("ip", "-n", ns, "addr", "add", "10.0.0.2/24", "dev", "va")
    route = '[[routes]]\nto = "10.50.0.0/24"\nvia = "{}"\nmetric = 5\n'
    passes(net(ns, route.format("10.0.0.1")))
    mon = subprocess.Popen(["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        src = net(ns, route.format("10.0.0.254"))
        plan = src.plan({})
        assert [str(o) for o in plan] == ["update route 10.50.0.0/24 via 10.0.0.254 metric 5 proto 76"]
        assert src.apply(plan, {}).converged
        time.sleep(0.3)
    finally:
        mon.terminate()
    # only our route's events (the veth's IPv6 link-local routes may come and go meanwhile)
    events = [e for e in mon.communicate(timeout=5)[0].splitlines() if "10.50.0.0/24" in e]
    assert events == ["10.50.0.0/24 via 10.0.0.254 dev va proto 76 metric 5 "], events
    assert routes(ns) == [("10.50.0.0/24", "10.0.0.254", "76", 5, "main")]


def test_a_missing_interface_stops_the_pass_before_anything(ns):
    src = net(ns, '[addresses]\nva = ["10.0.0.2/24"]\nnope0 = ["10.1.0.2/24"]\n')
    with pytest.raises(Exception) as e:
        src.plan({})
    assert "ENODEV" in str(e.value) and "nope0" in str(e.value)
    assert addrs(ns) == []


def test_indices_are_resolved_every_pass(ns):
    src = net(ns, '[addresses]\nva = ["10.0.0.2/24"]\n')
    last = passes(src).last_applied
    sh("ip", "-n", ns, "link", "del", "va")
    sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    r = passes(src, last=last)
    assert [str(o) for o in r.applied] == ["create address 10.0.0.2/24 dev va"]
    assert addrs(ns) == ["10.0.0.2/24"]


# -- sysctl, in the netns only -----------------------------------------------------------

KEYS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.ip_default_ttl")


def inside(ns, key):
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", key], capture_output=True,
                          text=True, check=True).stdout.strip()


def host(key):
    return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, check=True).stdout.strip()


def test_sysctl_flipped_by_hand_is_restored_and_released_or_reverted(netns):
    before = [host(k) for k in KEYS]
    tgt = target.parse(netns)
    src = reconcile.SysctlSource("sysctl", tgt, {"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "77"})
    r = passes(src)
    assert [str(o) for o in r.applied] == ["set net.ipv4.ip_forward = 1", "set net.ipv4.ip_default_ttl = 77"]
    assert (inside(netns, "net.ipv4.ip_forward"), inside(netns, "net.ipv4.ip_default_ttl")) == ("1", "77")
    sh("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    r = passes(src, last=r.last_applied)
    assert [str(o) for o in r.applied] == ["set net.ipv4.ip_forward = 1"]
    assert inside(netns, "net.ipv4.ip_forward") == "1"
    # ttl leaves the file: released, the value stays
    r2 = passes(reconcile.SysctlSource("sysctl", tgt, {"net.ipv4.ip_forward": "1"}), last=r.last_applied)
    assert [str(o) for o in r2.applied] == ["release net.ipv4.ip_default_ttl"]
    assert inside(netns, "net.ipv4.ip_default_ttl") == "77"
    # forwarding leaves with revert_on_release: the original comes back
    r3 = passes(reconcile.SysctlSource("sysctl", tgt, {}, revert_on_release=True), last=r2.last_applied)
    assert [str(o) for o in r3.applied] == ["revert net.ipv4.ip_forward = 0"]
    assert inside(netns, "net.ipv4.ip_forward") == "0" and r3.last_applied == {}
    assert [host(k) for k in KEYS] == before


def test_sysctl_is_best_effort(netns):
    tgt = target.parse(netns)
    src = reconcile.SysctlSource("sysctl", tgt, {"net.ipv4.ip_default_ttl": "0",      # EINVAL
                                                 "net.ipv4.no_such_knob": "1",       # ENOENT
                                                 "net.ipv4.ip_forward": "1"})
    r = passes(src)
    assert [str(o) for o in r.applied] == ["set net.ipv4.ip_forward = 1"]
    assert {str(o): e.errno for o, e in r.failed} == {"set net.ipv4.ip_default_ttl = 0": 22,
                                                      "set net.ipv4.no_such_knob = 1": 2}
    assert r.pending == [] and not r.converged and inside(netns, "net.ipv4.ip_forward") == "1"


# -- cgroup limits -----------------------------------------------------------------------

@pytest.fixture
def cg():
    path = os.path.join(cgroup.mount_point(), f"linx-t-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def test_cgroup_knob_not_delegated_is_failed_and_retried_others_applied(cg):
    """pids is not enabled in v2 on this host: pids.max is not there and lands in failed
    every pass; cgroup.max.descendants (a core limit) is applied."""
    src = reconcile.CgroupSource("cg", cg, {"pids.max": "100", "cgroup.max.descendants": "5"})
    r = passes(src)
    assert [str(o) for o in r.applied] == ["set cgroup.max.descendants = 5"]
    (op, err), = r.failed
    assert str(op) == "set pids.max = 100" and "ENOENT" in str(err) and "pids" in str(err)
    assert open(f"{cg}/cgroup.max.descendants").read() == "5\n"
    r2 = passes(src, last=r.last_applied)
    assert r2.applied == [] and [str(o) for o, _ in r2.failed] == ["set pids.max = 100"]
    r3 = passes(reconcile.CgroupSource("cg", cg, {}, revert_on_release=True), last=r2.last_applied)
    assert [str(o) for o in r3.applied] == ["revert cgroup.max.descendants = max"]
    assert open(f"{cg}/cgroup.max.descendants").read() == "max\n"


def test_cgroup_fake_tree_knob_appears_and_is_applied_next_pass(tmp_path, monkeypatch):
    """A fake cgroupfs (plain files): memory.max is there, pids.max not yet."""
    monkeypatch.setenv("LINX_CGROUP_ROOT", str(tmp_path))
    web = tmp_path / "web"
    web.mkdir()
    (web / "memory.max").write_text("max\n")
    f = tmp_path / "desired.toml"
    f.write_text('[cgroup.web]\nmemory.max = "256M"\npids.max = 100\n')
    src, = reconcile.load(str(f))
    r = passes(src)
    assert [str(o) for o in r.applied] == [f"set memory.max = {256 << 20}"]
    assert [str(o) for o, _ in r.failed] == ["set pids.max = 100"]
    (web / "pids.max").write_text("max\n")
    r2 = passes(src, last=r.last_applied)
    assert [str(o) for o in r2.applied] == ["set pids.max = 100"] and r2.converged
    assert (web / "pids.max").read_text() == "100" and (web / "memory.max").read_text() == str(256 << 20)
    assert r2.last_applied == {"memory.max": {"applied": str(256 << 20), "original": "max"},
                               "pids.max": {"applied": "100", "original": "max"}}
    assert src.plan(r2.last_applied) == []
