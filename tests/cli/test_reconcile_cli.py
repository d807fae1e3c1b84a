"""`linx reconcile` end to end: the loop as a process in a fresh netns (a veth pair), healed
by hand-made drift, re-read on SIGHUP, killed with SIGKILL and restarted. The kernel's state
is read with `ip -j`, `ip monitor` and `sysctl -n`; cgroup knobs in a fake cgroupfs tree
(LINX_CGROUP_ROOT), since this host delegates no controller in v2."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import LINX, linx


def ip(ns, *args):
    out = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def addrs(ns, dev="va"):
    return sorted(f"{a['local']}/{a['prefixlen']}" for i in ip(ns, "addr", "show", "dev", dev)
                  for a in i["addr_info"] if a["scope"] == "global")


def routes(ns):
    return sorted((r["dst"], r.get("gateway"), r.get("protocol", "boot"))
                  for r in ip(ns, "route", "show") if r.get("protocol") != "kernel")


def inside(ns, key):
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", key], capture_output=True,
                          text=True, check=True).stdout.strip()


def wait_for(cond, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def ns(netns):
    sh("ip", "-n", netns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    sh("ip", "-n", netns, "link", "set", "va", "up")
    sh("ip", "-n", netns, "link", "set", "vb", "up")
    return netns


class Loop:
    """`linx reconcile FILE --json ...` in the background; stdout lines parsed as they come."""

    def __init__(self, file, *args, env=None):
        self.proc = subprocess.Popen([LINX, "reconcile", str(file), "--json", *args], text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})})
        self.reports = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.reports.append(json.loads(line))

    def ops(self, source=None):
        return [f"{op['op']} {op['object']}" for r in self.reports if source in (None, r["source"])
                for op in r.get("applied", [])]

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(5)
        self.reader.join(5)
        return rc


@pytest.fixture
def loops():
    started = []

    def start(*args, **kw):
        started.append(Loop(*args, **kw))
        return started[-1]
    yield start
    for loop in started:
        loop.stop(signal.SIGKILL)


NET = """
[net]
netns = "{ns}"
[net.addresses]
va = [{addresses}]
[[net.routes]]
to = "10.50.0.0/24"
via = "{gw}"
"""


def net_file(tmp_path, ns, addresses=("10.0.0.2/24", "10.0.1.2/24"), gw="10.0.0.1", extra=""):
    f = tmp_path / "desired.toml"
    f.write_text(NET.format(ns=ns, addresses=", ".join(f'"{a}"' for a in addresses), gw=gw) + extra)
    return f


def test_heal_reload_and_ownership(ns, tmp_path, loops):
    """Deleted by hand -> restored within one interval; dropped from the file + SIGHUP ->
    removed, because linx installed it; a foreign address and route are never touched."""
    f = net_file(tmp_path, ns)
    loop = loops(f, "--interval", "2s")
    assert wait_for(lambda: addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24"])
    assert wait_for(lambda: routes(ns) == [("10.50.0.0/24", "10.0.0.1", "76")])
    sh("ip", "-n", ns, "addr", "add", "10.0.9.9/24", "dev", "va")
    sh("ip", "-n", ns, "route", "add", "10.51.0.0/24", "via", "10.0.9.1", "proto", "static")
    sh("ip", "-n", ns, "addr", "del", "10.0.0.2/24", "dev", "va")
    assert wait_for(lambda: "10.0.0.2/24" in addrs(ns), 2.0)
    net_file(tmp_path, ns, addresses=("10.0.0.2/24",))
    loop.hup()
    assert wait_for(lambda: addrs(ns) == ["10.0.0.2/24", "10.0.9.9/24"], 2.0)
    time.sleep(0.3)
    assert addrs(ns) == ["10.0.0.2/24", "10.0.9.9/24"]
    assert sorted(routes(ns)) == [("10.50.0.0/24", "10.0.0.1", "76"), ("10.51.0.0/24", "10.0.9.1", "static")]
    assert loop.stop() == 0
    ops = loop.ops("net")
    assert ops.count("create address 10.0.0.2/24 dev va") == 2
    assert ops.count("delete address 10.0.1.2/24 dev va") == 1
    assert not any("10.0.9.9" in op or "10.51.0.0" in op for op in ops)
    assert all(r["converged"] for r in loop.reports)


def test_monitor_wakeup_restores_well_under_the_interval(ns, tmp_path, loops):
    loop = loops(net_file(tmp_path, ns), "--interval", "60s")
    assert wait_for(lambda: len(addrs(ns)) == 2)
    time.sleep(0.2)
    sh("ip", "-n", ns, "addr", "del", "10.0.1.2/24", "dev", "va")
    t0 = time.monotonic()
    assert wait_for(lambda: "10.0.1.2/24" in addrs(ns), 2.0)
    assert time.monotonic() - t0 < 2.0
    assert loop.proc.poll() is None


def test_gateway_change_on_sighup_is_one_replace(ns, tmp_path, loops):
    loop = loops(net_file(tmp_path, ns), "--interval", "60s")
    assert wait_for(lambda: routes(ns) == [("10.50.0.0/24", "10.0.0.1", "76")])
    time.sleep(0.3)       # the loop's own follow-up pass after its changes
    mon = subprocess.Popen(["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        net_file(tmp_path, ns, gw="10.0.1.1")
        loop.hup()
        assert wait_for(lambda: routes(ns) == [("10.50.0.0/24", "10.0.1.1", "76")])
        time.sleep(0.2)
    finally:
        mon.terminate()
    # only our route's events (the veth's IPv6 link-local routes may come and go meanwhile)
    events = [e for e in mon.communicate(timeout=5)[0].splitlines() if "10.50.0.0/24" in e]
    assert events == ["10.50.0.0/24 via 10.0.1.1 dev va proto 76 "], events
    assert "update route 10.50.0.0/24 via 10.0.1.1 proto 76" in loop.ops()


SYSCTL = """
[sysctl]
in = "{ns}"
revert_on_release = {revert}
net.ipv4.ip_forward = 1
{more}
"""


@pytest.mark.parametrize("revert", [False, True])
def test_sysctl_restored_then_released_or_reverted(netns, tmp_path, loops, revert):
    host = subprocess.run(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"],
                          capture_output=True, text=True).stdout
    f = tmp_path / "desired.toml"
    f.write_text(SYSCTL.format(ns=netns, revert=str(revert).lower(), more='"net.ipv4.ip_default_ttl" = 77'))
    loop = loops(f, "--interval", "200ms")
    assert wait_for(lambda: inside(netns, "net.ipv4.ip_default_ttl") == "77")
    sh("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=0")
    assert inside(netns, "net.ipv4.ip_forward") == "0"          # forwarding flips ip_forward too
    assert wait_for(lambda: inside(netns, "net.ipv4.ip_forward") == "1", 1.0)
    f.write_text(SYSCTL.format(ns=netns, revert=str(revert).lower(), more=""))
    loop.hup()
    verb = "revert net.ipv4.ip_default_ttl" if revert else "release net.ipv4.ip_default_ttl"
    assert wait_for(lambda: verb in loop.ops())
    assert inside(netns, "net.ipv4.ip_default_ttl") == ("64" if revert else "77")
    assert loop.stop() == 0
    assert loop.ops().count("set net.ipv4.ip_forward") >= 2
    assert subprocess.run(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"],
                          capture_output=True, text=True).stdout == host


def test_cgroup_knob_failed_every_pass_until_it_appears(tmp_path, loops):
    root = tmp_path / "cg"
    (root / "web").mkdir(parents=True)
    (root / "web" / "memory.max").write_text("max\n")
    f = tmp_path / "desired.toml"
    f.write_text('[cgroup.web]\nmemory.max = "64M"\npids.max = 10\n')
    loop = loops(f, "--interval", "100ms", env={"LINX_CGROUP_ROOT": str(root)})
    assert wait_for(lambda: len(loop.reports) >= 3)
    first, *rest = loop.reports
    assert [op["object"] for op in first["applied"]] == ["memory.max"]
    assert all([e["object"] for e in r["failed"]] == ["pids.max"] and not r["applied"] for r in rest)
    assert "ENOENT" in first["failed"][0]["error"]
    (root / "web" / "pids.max").write_text("max\n")
    assert wait_for(lambda: (root / "web" / "pids.max").read_text() == "10")
    assert (root / "web" / "memory.max").read_text() == str(64 << 20)
    assert wait_for(lambda: loop.reports[-1]["converged"])
    n = len(loop.reports)
    time.sleep(0.3)
    assert len(loop.reports) == n                 # converged: quiet


def test_kill_9_leaves_the_state_and_a_restart_deletes_nothing_it_did_not_install(ns, tmp_path, loops):
    f = net_file(tmp_path, ns, extra=SYSCTL.format(ns=ns, revert="true", more=""))
    loop = loops(f, "--interval", "60s")
    assert wait_for(lambda: addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24"] and
                    routes(ns) == [("10.50.0.0/24", "10.0.0.1", "76")])
    assert wait_for(lambda: inside(ns, "net.ipv4.ip_forward") == "1")
    loop.stop(signal.SIGKILL)
    assert addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24"]
    assert routes(ns) == [("10.50.0.0/24", "10.0.0.1", "76")] and inside(ns, "net.ipv4.ip_forward") == "1"
    # the restart no longer names 10.0.1.2 nor the sysctl: it did not install them, so
    # they stay (and there is no original to revert to: last_applied was never on disk)
    net_file(tmp_path, ns, addresses=("10.0.0.2/24",))
    again = loops(f, "--interval", "100ms")
    time.sleep(0.6)
    assert again.stop() == 0
    assert again.ops() == []
    assert addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24"]
    assert routes(ns) == [("10.50.0.0/24", "10.0.0.1", "76")] and inside(ns, "net.ipv4.ip_forward") == "1"


def test_a_failing_pass_does_not_stop_the_loop(ns, tmp_path, loops):
    """vc does not exist yet: every pass fails (nothing applied); when it appears, the link
    event wakes the loop and the address lands."""
    f = tmp_path / "desired.toml"
    f.write_text(f'[net]\nnetns = "{ns}"\n[net.addresses]\nva = ["10.0.0.2/24"]\nvc = ["10.0.2.2/24"]\n')
    loop = loops(f, "--interval", "100ms")
    assert wait_for(lambda: len(loop.reports) >= 3)
    assert all("ENODEV" in r["error"] and "vc" in r["error"] for r in loop.reports)
    assert addrs(ns) == []
    sh("ip", "-n", ns, "link", "add", "vc", "type", "veth", "peer", "name", "vd")
    assert wait_for(lambda: addrs(ns, "vc") == ["10.0.2.2/24"] and addrs(ns) == ["10.0.0.2/24"])


def test_a_bad_file_on_sighup_keeps_the_last_good_one(ns, tmp_path, loops):
    f = net_file(tmp_path, ns)
    loop = loops(f, "--interval", "60s")
    assert wait_for(lambda: len(addrs(ns)) == 2)
    f.write_text(f.read_text().replace('via = "10.0.0.1"', 'via = "10.0.0"'))
    loop.hup()
    assert wait_for(lambda: any("error" in r for r in loop.reports))
    err = next(r for r in loop.reports if "error" in r)
    assert err["source"] == "file" and "net.routes[0].via" in err["error"]
    sh("ip", "-n", ns, "addr", "del", "10.0.1.2/24", "dev", "va")
    assert wait_for(lambda: "10.0.1.2/24" in addrs(ns), 2.0)


# -- one-shot modes --------------------------------------------------------------------------

def test_diff_once_and_exit_statuses(ns, tmp_path):
    f = net_file(tmp_path, ns)
    r = linx("reconcile", f, "--diff")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == ["net: create address 10.0.0.2/24 dev va",
                                     "net: create address 10.0.1.2/24 dev va",
                                     "net: create route 10.50.0.0/24 via 10.0.0.1 proto 76"]
    assert addrs(ns) == [] and routes(ns) == []           # --diff changes nothing
    r = linx("reconcile", f, "--once")
    assert r.returncode == 0 and r.stdout.startswith("net: create address 10.0.0.2/24 dev va, ")
    assert addrs(ns) == ["10.0.0.2/24", "10.0.1.2/24"]
    r = linx("reconcile", f, "--diff", "--json")
    assert (r.returncode, json.loads(r.stdout)) == (0, [{"source": "net", "plan": []}])
    r = linx("reconcile", f, "--once")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = linx("reconcile", f, "--once", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["applied"] == []
    sh("ip", "-n", ns, "link", "del", "va")
    r = linx("reconcile", f, "--once")
    assert r.returncode == 1 and "ENODEV" in r.stderr and "va" in r.stderr


@pytest.mark.parametrize("text, where", [
    ('[net]\nnetns = "{ns}"\n[[net.routes]]\nto = "10.50.0.0/24"\nvia = "10.0.0"\n', "net.routes[0].via"),
    ('[net]\nnetns = "{ns}"\nfoo = 1\n', "net.foo: unknown key"),
    ('[sysctl]\nin = "{ns}"\nkernel.printk = 4\n', 'sysctl."kernel.printk": is host-global'),
    ('[sysctl\n', "not valid TOML"),
])
def test_bad_file_exits_2_naming_the_key_with_nothing_applied(ns, tmp_path, text, where):
    f = tmp_path / "desired.toml"
    f.write_text(text.format(ns=ns))
    for args in ([], ["--once"], ["--diff"]):
        r = linx("reconcile", f, *args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"linx: {f}") and where in lines[0], lines
    assert addrs(ns) == []


def test_bad_options(tmp_path):
    f = tmp_path / "desired.toml"
    f.write_text("")
    for args, where in ((["--interval", "0"], "--interval"), (["--debounce", "soon"], "--debounce"),
                        (["--diff", "--once"], "--diff")):
        r = linx("reconcile", f, *args)
        assert r.returncode == 2 and where in r.stderr, r.stderr
    assert linx("reconcile", tmp_path / "missing.toml", "--once").returncode == 2


def test_the_example_file(ns, tmp_path):
    """examples/desired-state.toml, pointed at the test netns and a fake cgroup tree."""
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "desired-state.toml")
    f = tmp_path / "desired.toml"
    f.write_text(open(example).read().replace("linx-demo", ns))
    sh("ip", "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
    sh("ip", "-n", ns, "link", "set", "veth0", "up")
    cg = tmp_path / "cg" / ns
    cg.mkdir(parents=True)
    for knob in ("memory.max", "pids.max", "cpu.max"):
        (cg / knob).write_text("max\n" if knob != "cpu.max" else "max 100000\n")
    env = {**os.environ, "LINX_CGROUP_ROOT": str(tmp_path / "cg")}
    r = linx("reconcile", f, "--once", env=env)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["sysctl", "net", f'cgroup."{ns}"']
    assert addrs(ns, "veth0") == ["10.0.42.2/24", "fd00:42::2/64"]
    assert [(x["dst"], x["gateway"], x["protocol"], x.get("metric"))
            for x in ip(ns, "route", "show", "table", "100")] == [("10.99.0.0/16", "10.0.42.254", "76", 50)]
    assert ("default", "10.0.42.1", "76") in routes(ns)
    assert (inside(ns, "net.ipv4.ip_forward"), inside(ns, "net.ipv4.conf.all.rp_filter")) == ("1", "2")
    assert [(cg / k).read_text() for k in ("memory.max", "pids.max", "cpu.max")] == [
        str(256 << 20), "100", "50000 100000"]
    r = linx("reconcile", f, "--diff", env=env)
    assert (r.returncode, r.stdout) == (0, "")


def test_help_imports_no_library():
    """Only what main() itself loads (the error model): no reconcile, netlink or rich."""
    code = ("import sys\nfrom linx_cli.main import main\ntry:\n    main(['reconcile', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith(('linx_core', 'rich'))))")
    r = subprocess.run([os.path.join(os.path.dirname(LINX), "python"), "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "['linx_core', 'linx_core.errors']", r.stdout
