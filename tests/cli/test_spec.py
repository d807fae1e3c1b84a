"""The run spec end to end: the headline example's every effect seen from outside and
inside, a failure at every step rolled back, validation, the plan, concurrency."""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import LINX, linx

HERE = os.path.dirname(__file__)
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
WEB = os.path.join(EXAMPLES, "web.toml")
CGROOT = subprocess.run(["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"], capture_output=True,
                        text=True).stdout.split("\n")[0]


def in_netns(ns, *args, **kw):
    """linx with only the network namespace changed (ip netns exec would remount /sys and
    hide the cgroup2 mount)."""
    kw.setdefault("capture_output", True)
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", LINX, *map(str, args)], text=True,
                          timeout=60, **kw)


def links(ns):
    out = subprocess.run(["ip", "-n", ns, "-j", "link"], capture_output=True, text=True).stdout
    return sorted(l["ifname"] for l in json.loads(out))


def world(ns):
    """What a failed run must not leave behind (compare with same_world)."""
    cgroups = sorted(n for n in os.listdir(CGROOT) if n.startswith("linx-example"))
    sessions = sorted(n for n in os.listdir("/run/linx") if n.startswith(("f-", "cc-"))) \
        if os.path.exists("/run/linx") else []
    agents = subprocess.run(["ps", "-C", "linx-agent", "-o", "pid=,stat="], capture_output=True,
                            text=True).stdout
    live = sorted(l.split()[0] for l in agents.splitlines() if "Z" not in l.split()[1] and ours(l.split()[0]))
    return links(ns), cgroups, sessions, live


def ours(pid: str) -> bool:
    """An agent started by this test file (other suites may run beside it on a dev machine)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"tests/cli/test_spec.py" in f.read()
    except OSError:
        return False


def same_world(before, after) -> bool:
    """Equal, except that agents which were running before may have ended meanwhile."""
    return before[:3] == after[:3] and set(after[3]) <= set(before[3])


def test_headline_spec_every_effect(netns, tmp_path):
    ev = tmp_path / "ev"
    script = ("hostname; id -u; ip -j addr; ip -j route; cat /proc/sys/net/ipv4/ip_unprivileged_port_start;"
              "grep -E 'Cap(Bnd|Eff|Prm)|NoNewPrivs|^Seccomp:' /proc/self/status; mkdir /srv/x; echo mkdir=$?;"
              "echo pid=$$; busybox httpd -p 8080 -h /srv; sleep 3")
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", LINX, "run", "--spec", WEB, "--events", ev,
                          "--", "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if ev.exists() and '"running"' in ev.read_text():
            break
        time.sleep(0.05)
    pid = json.loads(ev.read_text().splitlines()[0])["host_pid"]
    time.sleep(0.5)
    # from outside, while it runs
    assert open(f"/proc/{pid}/uid_map").read().split() == ["0", "0", "1"]
    assert open(f"/proc/{pid}/setgroups").read().strip() == "deny"
    cg = os.path.join(CGROOT, "linx-example-web")
    assert str(pid) in open(os.path.join(cg, "cgroup.procs")).read().split()
    host_links = {l["ifname"]: l for l in json.loads(subprocess.run(["ip", "-n", netns, "-j", "addr"],
                                                                    capture_output=True, text=True).stdout)}
    assert "web0" in host_links
    assert [a["local"] for a in host_links["web0"]["addr_info"] if a["family"] == "inet"] == ["10.200.0.1"]
    ping = subprocess.run(["ip", "netns", "exec", netns, "ping", "-c1", "-W2", "10.200.0.2"], capture_output=True)
    assert ping.returncode == 0
    fetch = subprocess.run(["ip", "netns", "exec", netns, "busybox", "wget", "-q", "-O-",
                            "http://10.200.0.2:8080/"], capture_output=True, text=True)
    assert fetch.stdout == "hello from linx\n"      # written by the spec's hook at the checkpoint
    probe = ("import socket; s = socket.socket(); s.settimeout(1); "
             "print(s.connect_ex(('10.200.0.2', 8081)))")
    blocked = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", probe], capture_output=True,
                             text=True).stdout.strip()
    assert blocked == "11"              # dropped by the session's nft table (not refused: 111)
    listed = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "nft", "list", "ruleset"],
                            capture_output=True, text=True).stdout      # (nft 1.0.6 -j garbles owner flags)
    assert listed.startswith("table inet guard {") and "\tflags owner\n" in listed
    status = dict(line.split(":\t") for line in open(f"/proc/{pid}/status").read().splitlines()
                  if line.startswith(("CapBnd", "CapEff", "NoNewPrivs", "Seccomp:")))
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    lines = out.split("\n")
    assert lines[0] == "web" and lines[1] == "0"
    addrs = {l["ifname"]: [a["local"] for a in l["addr_info"] if a["family"] == "inet"]
             for l in json.loads(lines[2])}
    assert addrs == {"lo": ["127.0.0.1"], "eth0": ["10.200.0.2"]}
    routes = json.loads(lines[3])
    assert {"dst": "default", "gateway": "10.200.0.1", "dev": "eth0"}.items() <= routes[0].items()
    assert lines[4] == "1024"
    caps = subprocess.run(["capsh", "--decode=" + status["CapBnd"].strip()], capture_output=True, text=True).stdout
    assert caps.strip().endswith("=cap_net_bind_service")
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    assert "mkdir=1" in out and "Operation not permitted" in err
    assert "pid=1" in out
    # afterwards: the session's cgroup and host link are gone
    assert not os.path.exists(cg)
    assert "web0" not in links(netns)


STEPS = ["user", "cgroup", "net.links[0]", "net.inside", "nft", "mounts[0]", "sysctl", "hooks[0]"]


@pytest.mark.parametrize("step", STEPS)
def test_failure_at_every_step_leaves_nothing(netns, tmp_path, step):
    marker = tmp_path / "ran"
    before = world(netns)
    r = in_netns(netns, "run", "--spec", WEB, "--name", f"f-{uuid.uuid4().hex[:6]}", "--", "touch", marker,
                 env={**os.environ, "LINX_FAIL_STEP": step})
    assert r.returncode == 125, r.stderr
    assert f'checkpoint step "{step}" failed' in r.stderr
    assert not marker.exists()
    assert same_world(before, world(netns))


def test_kernel_refusal_mid_way_rolls_back(netns, tmp_path):
    """Input that validates but the kernel refuses: the host veth name is taken."""
    subprocess.run(["ip", "-n", netns, "link", "add", "web0", "type", "dummy"], capture_output=True)
    taken = subprocess.run(["ip", "-n", netns, "link", "add", "web0", "type", "bridge"], capture_output=True)
    before = world(netns)
    r = in_netns(netns, "run", "--spec", WEB, "--", "touch", tmp_path / "ran")
    assert r.returncode == 125
    assert 'checkpoint step "net.links[0]" failed' in r.stderr and "EEXIST" in r.stderr
    assert same_world(before, world(netns)) and not (tmp_path / "ran").exists()
    assert taken.returncode == 0


def test_five_errors_reported_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('''
namespaces = ["net", "typo"]
[net]
[[net.links]]
kind = "veth"
name = "eth0"
addresses = ["10.0.0/24"]
[[net.routes]]
via = "10.0.0"
[cgroup]
path = "x"
pids_max = "lots"
[sysctl]
"kernel.panic" = 1
''')
    r = linx("spec", "check", bad)
    assert r.returncode == 2
    text = r.stderr
    assert len(text.strip().split("\n")) == 5
    for key in ("namespaces", "net.links[0].addresses[0]", "net.routes[0].via", "cgroup.pids_max",
                "sysctl.kernel.panic"):
        assert f"{key}:" in text, (key, text)
    r2 = linx("run", "--spec", bad, "--", "true")
    assert r2.returncode == 2 and r2.stderr == r.stderr


def test_dry_run_prints_the_plan_in_order():
    r = linx("run", "--spec", WEB, "--dry-run", "--json")
    keys = [s["key"] for s in json.loads(r.stdout)["steps"]]
    assert keys == ["user", "cgroup", "net.links[0]", "net.inside", "nft", "mounts[0]", "sysctl", "hooks[0]",
                    "mounts[1]",
                    "hostname", "caps", "no_new_privs", "seccomp", "proceed"]
    r = linx("run", "--spec", WEB, "--hostname", "other", "--dry-run")
    assert "sethostname other" in r.stdout        # flags override the file


def test_json_schema_shipped_is_current():
    r = linx("spec", "schema")
    with open(os.path.join(EXAMPLES, "linx-spec.schema.json")) as f:
        assert json.loads(r.stdout) == json.load(f)


def test_every_example_spec_is_valid():
    subprocess.run(["sh", os.path.join(EXAMPLES, "mkrootfs.sh"), os.path.join(EXAMPLES, "rootfs")], check=True)
    specs = [os.path.join(EXAMPLES, f"{n}.toml") for n in ("web", "rootless", "bridge-a", "bridge-b", "pivot")]
    r = linx("spec", "check", *specs)
    assert r.returncode == 0, r.stderr


def test_twenty_concurrent_sessions(netns, tmp_path):
    procs, before = [], world(netns)
    for i in range(20):
        f = tmp_path / f"s{i}.toml"
        f.write_text(f'''namespaces = ["net", "uts"]
hostname = "s{i}"
[[net.links]]
kind = "veth"
name = "eth0"
host = "cc{i}"
host_addresses = ["10.201.{i}.1/24"]
addresses = ["10.201.{i}.2/24"]
''')
        procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", LINX, "run", "--spec", f,
                                       "--name", f"cc-{i}-{uuid.uuid4().hex[:4]}", "--", "sh", "-c",
                                       f"ip -br addr show eth0; sleep 2"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=60) for p in procs]
    outs = [o for o, _ in results]
    assert [p.returncode for p in procs] == [0] * 20, [e for _, e in results]
    assert all(f"10.201.{i}.2/24" in outs[i] for i in range(20))
    for p_name in os.listdir("/run/linx"):
        if p_name.startswith("cc-"):
            linx("rm", p_name)
    assert same_world(before, world(netns))


def test_example_rootless_shell():
    r = linx("run", "--spec", os.path.join(EXAMPLES, "rootless.toml"), "--", "sh", "-c",
             "id -u; hostname; echo $$; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    uid, host, pid, *uid_map = r.stdout.split()
    assert (uid, host, pid) == ("0", "rootless", "1")
    assert uid_map == ["0", str(os.geteuid()), "1"]


def test_example_two_sessions_on_a_bridge(netns):
    subprocess.run(["ip", "-n", netns, "link", "add", "br-linx", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "br-linx", "up"], check=True)
    name = f"br-a-{uuid.uuid4().hex[:4]}"
    r = in_netns(netns, "run", "-d", "--name", name, "--spec", os.path.join(EXAMPLES, "bridge-a.toml"))
    assert r.returncode == 0, r.stderr
    try:
        r = in_netns(netns, "run", "--spec", os.path.join(EXAMPLES, "bridge-b.toml"), "--",
                     "ping", "-c1", "-W3", "10.203.0.1")
        assert r.returncode == 0, r.stdout + r.stderr
        masters = {l["ifname"]: l.get("master") for l in json.loads(subprocess.run(
            ["ip", "-n", netns, "-j", "link"], capture_output=True, text=True).stdout)}
        assert masters["lxa0"] == "br-linx" and "lxb0" not in masters
    finally:
        linx("rm", "-f", name)


def test_macvlan_made_inside(netns, tmp_path):
    """A macvlan on a host interface, made directly in the workload's netns with its
    address; it goes with the netns, the parent stays."""
    subprocess.run(["ip", "-n", netns, "link", "add", "mvp0", "type", "veth", "peer", "name", "mvp1"],
                   check=True)
    before = links(netns)
    spec = tmp_path / "mv.toml"
    spec.write_text('namespaces = ["net"]\n[[net.links]]\nkind = "macvlan"\nname = "mv0"\n'
                    'parent = "mvp0"\nmode = "private"\naddresses = ["10.204.0.2/24"]\n')
    r = in_netns(netns, "run", "--spec", spec, "--", "ip", "-j", "-d", "addr", "show", "mv0")
    assert r.returncode == 0, r.stderr
    (mv,) = json.loads(r.stdout)
    assert mv["linkinfo"]["info_kind"] == "macvlan"
    assert mv["linkinfo"]["info_data"]["mode"] == "private"
    assert [a["local"] for a in mv["addr_info"] if a["family"] == "inet"] == ["10.204.0.2"]
    assert "UP" in mv["flags"]
    assert links(netns) == before


def test_veth_host_end_gone_when_linx_returns(netns, tmp_path):
    """The host end of a veth is deleted when the workload ends, not when its netns goes
    (here a process left behind keeps the netns alive), so the same spec can run again."""
    spec = tmp_path / "v.toml"
    spec.write_text('namespaces = ["net"]\n[[net.links]]\nkind = "veth"\nname = "eth0"\n'
                    'host = "again0"\naddresses = ["10.205.0.2/24"]\n')
    for _ in range(2):
        r = in_netns(netns, "run", "--spec", spec, "--", "sh", "-c",
                     "sleep 2 </dev/null >/dev/null 2>&1 & true")
        assert r.returncode == 0, r.stderr
        assert "again0" not in links(netns)


def test_example_pivot_root(tmp_path):
    subprocess.run(["sh", os.path.join(EXAMPLES, "mkrootfs.sh"), tmp_path / "rootfs"], check=True)
    spec = tmp_path / "pivot.toml"
    spec.write_text(open(os.path.join(EXAMPLES, "pivot.toml")).read())
    r = linx("run", "--spec", spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bin", "etc", "proc", "tmp", "inside", "the", "pivoted", "root"]
    r = linx("run", "--spec", spec, "--", "/bin/sh", "-c", "echo x > /etc/new")
    assert r.returncode != 0 and "Read-only" in r.stderr
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def test_owner_table_goes_when_the_workload_ends(tmp_path):
    """The netns outlives the workload here (we hold it open): the table must still go."""
    spec = tmp_path / "fw.toml"
    spec.write_text('''namespaces = ["net"]
[nft]
ruleset = "table ip owned { chain c { type filter hook input priority 0; } }"
''')
    ev = tmp_path / "ev"
    p = subprocess.Popen([LINX, "run", "--spec", spec, "--events", ev, "--", "sleep", "1"])
    for _ in range(100):
        if ev.exists() and '"running"' in ev.read_text():
            break
        time.sleep(0.05)
    pid = json.loads(ev.read_text().splitlines()[0])["host_pid"]
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        def tables():
            out = subprocess.run(["nsenter", f"--net=/proc/{os.getpid()}/fd/{fd}", "nft", "-j", "list", "tables"],
                                 capture_output=True, text=True).stdout
            return [t["table"]["name"] for t in json.loads(out)["nftables"] if "table" in t]
        assert tables() == ["owned"]
        assert p.wait(10) == 0
        assert tables() == []
    finally:
        os.close(fd)
