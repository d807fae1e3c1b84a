"""`linx net` end to end: ip's grammar in, ip -j's JSON out, exit statuses, `apply`,
`monitor`, and a veth end handed to a `linx run --ns net` workload at its checkpoint."""
import json
import os
import subprocess
import sys
import time

import pytest


def ipj(ns, *args):
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def sh(ns, cmd):
    subprocess.run(f"ip -n {ns} " + cmd, shell=True, check=True)


def net(run_linx, ns, *args):
    return run_linx("net", "-n", ns, *args)


@pytest.fixture
def populated(netns):
    sh(netns, "link set lo up")
    sh(netns, "link add v0 type veth peer name v1")
    sh(netns, "link add br0 type bridge")
    sh(netns, "link set v1 master br0")
    sh(netns, "link set v0 up")
    sh(netns, "addr add 10.20.0.1/24 dev v0")
    sh(netns, "addr add fd00:20::1/64 dev v0 nodad")
    sh(netns, "route add 10.21.0.0/16 via 10.20.0.2 table 1000 proto 76 metric 7")
    sh(netns, "route add 10.22.0.0/16 via 10.20.0.2")
    sh(netns, "neigh add 10.20.0.9 lladdr 02:00:00:00:20:09 dev v0")
    sh(netns, "rule add from 10.20.0.0/24 lookup 1000 pref 100")
    return netns


def shared_equal(ours, theirs):
    """Equal on every key both print (recursively into addr_info); ip printing a key we
    don't is a failure. Our extra keys are fields this iproute2 is too old to show (an
    address's protocol, IFA_PROTO, is printed by iproute2 >= 6.2)."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert set(b) <= set(a), set(b) - set(a)
        for key in b:
            if key == "addr_info":
                shared_equal(a[key], b[key])
            else:
                assert a[key] == b[key], (key, a[key], b[key])


@pytest.mark.parametrize("args", [
    ["link", "show"], ["addr", "show"], ["route", "show"], ["route", "show", "table", "all"],
    ["route", "show", "table", "1000"], ["-6", "route", "show"], ["neigh", "show"], ["rule", "show"],
    ["addr", "show", "dev", "v0"], ["link", "show", "v1"], ["route", "get", "10.22.1.1"],
])
def test_json_equals_ip(run_linx, populated, args):
    fam = [a for a in args if a in ("-4", "-6")]
    rest = [a for a in args if a not in fam]
    r = run_linx("net", "-n", populated, "--json", *fam, *rest)
    assert r.returncode == 0, r.stderr
    shared_equal(json.loads(r.stdout), ipj(populated, *fam, *rest))


@pytest.mark.parametrize("args", [["link", "show"], ["addr", "show"], ["route", "show", "table", "all"],
                                  ["-6", "route", "show"], ["neigh", "show"], ["rule", "show"]])
def test_text_output_reads_like_ip(run_linx, populated, args):
    """The text is ip's, but for runs of spaces."""
    def norm(text):
        return [" ".join(line.split()) for line in text.splitlines()]
    r = net(run_linx, populated, *args)
    assert r.returncode == 0, r.stderr
    ref = subprocess.run(["ip", "-n", populated, *args], capture_output=True, text=True, check=True).stdout
    assert norm(r.stdout) == norm(ref)


def test_changes_read_back_with_ip(run_linx, netns):
    for args in (["link", "add", "a0", "type", "veth", "peer", "name", "a1"],
                 ["link", "add", "link", "a0", "name", "mv0", "type", "macvlan", "mode", "private"],
                 ["link", "set", "a0", "up", "mtu", "1400"],
                 ["addr", "add", "10.30.0.1/24", "dev", "a0"],
                 ["route", "add", "10.31.0.0/16", "via", "10.30.0.2", "table", "1000", "proto", "76", "metric", "3"],
                 ["route", "add", "default", "via", "10.30.0.254"],
                 ["neigh", "add", "10.30.0.7", "lladdr", "02:00:00:00:30:07", "dev", "a0"],
                 ["rule", "add", "fwmark", "0x5", "table", "1000", "pref", "50"]):
        r = net(run_linx, netns, *args)
        assert r.returncode == 0, (args, r.stderr)
    links = {l["ifname"]: l for l in ipj(netns, "-d", "link", "show")}
    assert links["mv0"]["linkinfo"]["info_data"]["mode"] == "private" and links["a0"]["mtu"] == 1400
    assert ipj(netns, "route", "show", "table", "1000") == [
        {"dst": "10.31.0.0/16", "gateway": "10.30.0.2", "dev": "a0", "protocol": "76", "metric": 3,
         "flags": ipj(netns, "route", "show", "table", "1000")[0]["flags"]}]
    assert ipj(netns, "route", "show", "default")[0]["gateway"] == "10.30.0.254"
    assert [r for r in ipj(netns, "rule", "show") if r["priority"] == 50][0]["fwmark"] == "0x5"
    r = net(run_linx, netns, "route", "del", "default")
    assert r.returncode == 0 and ipj(netns, "route", "show", "default") == []


@pytest.mark.parametrize("args, status, text", [
    (["link", "set", "nope0", "up"], 1, 'ENODEV (errno 19): no such interface "nope0"'),
    (["addr", "add", "10.0.0.1/24", "dev", "nope0"], 1, 'no such interface "nope0"'),
    (["route", "add", "10.22.0.0/16", "via", "10.20.0.2"], 1, "EEXIST (errno 17)"),
    (["route", "add", "10.40.0.0/16", "via", "fd00::1"], 2, "via: gateway fd00::1 and destination"),
    (["route", "add", "10.40.0.0/33", "via", "10.20.0.2"], 2, "to: prefix length 33 is out of range"),
    (["route", "add", "10.40.0/16"], 2, "to: '10.40.0' is not an IPv4 or IPv6 address"),
    (["addr", "add", "10.40.0.1/24"], 2, "dev: addr add needs dev NAME"),
    (["link", "add", "x0", "type", "ipvlan", "link", "v0"], 1, 'link type "ipvlan" is not supported by this kernel'),
    (["route", "get", "192.0.2.1"], 1, "ENETUNREACH"),
])
def test_errors(run_linx, populated, args, status, text):
    if "ipvlan" in args and os.path.exists("/sys/module/ipvlan"):
        pytest.skip("this kernel has ipvlan")
    before = ipj(populated, "route", "show", "table", "all")
    r = net(run_linx, populated, *args)
    assert r.returncode == status, r.stderr
    assert text in r.stderr and r.stderr.startswith("linx: ") and r.stderr.count("\n") == 1
    assert ipj(populated, "route", "show", "table", "all") == before


def test_apply_batch(run_linx, populated, tmp_path):
    batch = tmp_path / "net.batch"
    lines = ["# a batch", "link add b0 type veth peer name b1", "link set b0 up",
             "addr add 10.50.0.1/24 dev b0"]
    lines += [f"route add 10.51.{i}.0/24 via 10.50.0.2 dev b0 proto 76" for i in range(200)]
    lines += ["ip neigh add 10.50.0.5 lladdr 02:00:00:00:50:05 dev b0", "rule add to 10.51.0.0/16 lookup 9 pref 9"]
    batch.write_text("\n".join(lines) + "\n")
    r = net(run_linx, populated, "apply", batch)
    assert r.returncode == 0, r.stderr
    assert len(ipj(populated, "route", "show", "proto", "76")) == 200
    assert [n for n in ipj(populated, "neigh", "show") if n["dst"] == "10.50.0.5"]


def test_apply_stops_at_the_failing_line(run_linx, populated, tmp_path):
    batch = tmp_path / "net.batch"
    lines = [f"route add 10.60.{i}.0/24 via 10.20.0.2 proto 77" for i in range(100)]
    lines[60] = "route add 10.22.0.0/16 via 10.20.0.2"             # exists already: EEXIST
    batch.write_text("\n".join(lines) + "\n")
    r = net(run_linx, populated, "apply", batch)
    assert r.returncode == 1
    assert f"{batch}:61: EEXIST (errno 17)" in r.stderr, r.stderr
    got = {x["dst"] for x in ipj(populated, "route", "show", "proto", "77")}
    assert got == {f"10.60.{i}.0/24" for i in range(60)}           # before it: applied; after: not


def test_apply_stops_at_the_first_failure_of_a_chunk(run_linx, populated, tmp_path):
    """Adds go hundreds to a sendmsg and the kernel answers only refusals: with two in one
    chunk the first is the one named, and the adds after it that the kernel made are undone."""
    batch = tmp_path / "net.batch"
    lines = [f"route add 10.61.{i // 256}.{i % 256}/32 via 10.20.0.2 proto 79" for i in range(1200)]
    lines[700] = lines[690]                                         # EEXIST
    lines[705] = "route add 10.62.0.0/16 via 10.99.0.2"            # ENETUNREACH, same chunk
    batch.write_text("\n".join(lines) + "\n")
    r = net(run_linx, populated, "apply", batch)
    assert r.returncode == 1
    assert f"{batch}:701: EEXIST (errno 17)" in r.stderr, r.stderr
    got = {x["dst"] for x in ipj(populated, "route", "show", "proto", "79")}
    assert got == {f"10.61.{i // 256}.{i % 256}" for i in range(700)}


def test_apply_bad_line_applies_nothing(run_linx, populated, tmp_path):
    batch = tmp_path / "net.batch"
    batch.write_text("route add 10.70.0.0/24 via 10.20.0.2 proto 78\nroute add 10.71.0.0/24 via nowhere\n")
    r = net(run_linx, populated, "apply", batch)
    assert r.returncode == 2 and f"{batch}:2: via: 'nowhere'" in r.stderr
    assert ipj(populated, "route", "show", "proto", "78") == []


def test_stats_json(run_linx, populated):
    subprocess.run(["ip", "netns", "exec", populated, "ping", "-c", "2", "-i", "0.01", "-q", "127.0.0.1"],
                   check=True, capture_output=True)
    r = net(run_linx, populated, "--json", "stats", "lo")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)[0]
    theirs = ipj(populated, "-s", "link", "show", "lo")[0]
    assert ours["ifname"] == "lo" and ours["stats64"]["rx"] == theirs["stats64"]["rx"]


def test_stats_table_plain_when_piped_coloured_on_a_terminal(run_linx, populated):
    """The one table printer: two-space columns when piped, numbers as ip -s -j counts them;
    on a terminal rich's escapes, unless NO_COLOR is non-empty."""
    from tests.conftest import LINX
    r = net(run_linx, populated, "stats")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("  ")[0] == "IFACE" and "\x1b" not in r.stdout
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    for link in ipj(populated, "-s", "link", "show"):
        rx, tx = link["stats64"]["rx"], link["stats64"]["tx"]
        want = [rx["bytes"], rx["packets"], rx["errors"], rx["dropped"],
                tx["bytes"], tx["packets"], tx["errors"], tx["dropped"]]
        assert rows[link["ifname"]] == [str(n) for n in want], link["ifname"]

    def on_a_terminal(no_color):
        env = {**os.environ, "NO_COLOR": no_color, "COLUMNS": "200"}
        return subprocess.run(["script", "-qec", f"{LINX} net -n {populated} stats", "/dev/null"],
                              capture_output=True, text=True, env=env, check=True).stdout
    assert "\x1b[" in on_a_terminal("")
    plain = on_a_terminal("1")
    assert "\x1b" not in plain and plain.split()[:2] == ["IFACE", "RX"]


def listening(ns, mon, timeout=20.0):
    """Until an rtnetlink socket in `ns` has joined a multicast group (/proc/net/netlink's
    Groups): the monitor is subscribed, so no event made after this is missed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and mon.poll() is None:
        out = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "cat", "/proc/net/netlink"],
                             capture_output=True, text=True, check=True).stdout
        if any(f[1] == "0" and int(f[3], 16) for f in (line.split() for line in out.splitlines()[1:])):
            return
        time.sleep(0.05)
    raise AssertionError("the monitor did not subscribe")


def test_monitor_json_sees_ip_and_reports_loss(run_linx, netns):
    from tests.conftest import LINX
    mon = subprocess.Popen([LINX, "net", "-n", netns, "--json", "monitor", "addr", "--count", "1"],
                           stdout=subprocess.PIPE, text=True)
    try:
        listening(netns, mon)
        sh(netns, "link add m0 type veth peer name m1")
        sh(netns, "addr add 10.80.0.1/24 dev m0")
        out, _ = mon.communicate(timeout=10)
    finally:
        mon.kill()
    event = json.loads(out.splitlines()[0])
    assert event["event"] == "new_addr" and event["addr"]["local"] == "10.80.0.1"
    assert event["addr"]["dev"] == "m0"


def test_monitor_flood_in_full_or_resync(run_linx, netns, tmp_path):
    from tests.conftest import LINX
    batch = tmp_path / "flood"
    with open(batch, "w") as f:
        f.write("link add f0 type veth peer name f1\nlink set f0 up\naddr add 10.1.0.1/16 dev f0\n")
        for i in range(10000):
            f.write(f"route add 10.90.{i // 256}.{i % 256}/32 via 10.1.0.2\n")
    mon = subprocess.Popen([LINX, "net", "-n", netns, "--json", "monitor", "route"],
                           stdout=subprocess.PIPE, text=True)
    try:
        listening(netns, mon)
        subprocess.run(["ip", "-n", netns, "-batch", str(batch)], check=True)
        routes = resync = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and routes < 10000 and not resync:
            line = mon.stdout.readline()
            event = json.loads(line)
            if event["event"] == "resync-needed":
                resync += 1
            elif event["event"] == "new_route" and event["route"]["dst"].startswith("10.90."):
                routes += 1
    finally:
        mon.kill()
        mon.wait()
    assert routes == 10000 or resync


def test_help_does_not_load_netlink():
    code = ("import sys\nfrom linx_cli.main import main\ntry:\n    main(['net', '--help'])\n"
            "except SystemExit:\n    pass\nprint('linx_core.netlink' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_veth_into_a_workload_at_its_checkpoint(run_linx, netns):
    """One veth end stays in the test netns, the other moves into a `linx run --ns net`
    child while it is parked; the child pings across the pair as its first act."""
    sh(netns, "link add host0 type veth peer name ct0")
    sh(netns, "addr add 10.99.0.1/24 dev host0")
    sh(netns, "link set host0 up")
    sh(netns, "link set lo up")
    from tests.conftest import LINX
    inside = f"{LINX} net -n pid:$LINX_PID"
    checkpoint = (f"{LINX} net link set ct0 netns pid:$LINX_PID && "
                  f"{inside} addr add 10.99.0.2/24 dev ct0 && {inside} link set ct0 up && "
                  f"{inside} route add default via 10.99.0.1")
    r = subprocess.run(["ip", "netns", "exec", netns, LINX, "run", "--ns", "net", "--checkpoint", checkpoint,
                        "--", "ping", "-c", "1", "-W", "5", "10.99.0.1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 received" in r.stdout
    assert "ct0" not in {l["ifname"] for l in ipj(netns, "link", "show")}   # gone with the child


def test_session_as_target(run_linx, netns):
    """A link handed to a running session by name, then configured through it; read back
    with ip inside the session's netns."""
    import uuid

    from linx_core.target import parse
    name = f"net-{uuid.uuid4().hex[:6]}"
    r = run_linx("run", "-d", "--name", name, "--ns", "net", "--", "sleep", "30")
    assert r.returncode == 0, r.stderr
    try:
        sh(netns, "link add s0 type veth peer name s1")
        assert net(run_linx, netns, "link", "set", "s1", "netns", name).returncode == 0
        assert run_linx("net", "-n", name, "addr", "add", "10.77.0.2/24", "dev", "s1").returncode == 0
        inside = subprocess.run(["nsenter", f"--net={parse(name).ns_path('net')}",
                                 "ip", "-j", "addr", "show", "dev", "s1"],
                                capture_output=True, text=True, check=True).stdout
        assert [a["local"] for a in json.loads(inside)[0]["addr_info"]] == ["10.77.0.2"]
        assert "s1" not in {l["ifname"] for l in ipj(netns, "link", "show")}
    finally:
        run_linx("rm", "-f", name)
