"""`linx sysctl` end to end, only ever writing inside namespaces the test made: a `linx run
--ns net` child reached with --in pid:N, or a fresh ip netns. sysctl(8) inside the namespace
(nsenter, ip netns exec) and on the host is the reference."""
import json
import signal
import subprocess
import time

import pytest

from conftest import LINX, linx


def host(*keys: str) -> list[str]:
    return subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True,
                          check=True).stdout.split("\n")[:len(keys)]


def inside(netns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-n", key],
                          capture_output=True, text=True, check=True).stdout.strip()


def one_line_error(r, code: int) -> str:
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linx: "), r.stderr
    return lines[0]


def test_set_in_a_child_at_the_checkpoint():
    """The issue's check: ip_forward set in a `linx run --ns net` child via --in pid:N."""
    before = host("net.ipv4.ip_forward", "net.ipv4.ip_default_ttl")
    read = ["--", "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_default_ttl"]
    plain = linx("run", "--ns", "net", *read, check=True)
    assert plain.stdout.split() == ["0", "64"]      # a fresh netns starts from the defaults
    r = linx("run", "--ns", "net", "--checkpoint",
             f"{LINX} sysctl set -q --in pid:$LINX_PID net.ipv4.ip_forward=1 net.ipv4.ip_default_ttl=77",
             *read, check=True)
    assert r.stdout.split() == ["1", "77"]
    assert host("net.ipv4.ip_forward", "net.ipv4.ip_default_ttl") == before


@pytest.fixture
def child(tmp_path):
    """A running `linx run --ns net,uts` workload; yields its host pid."""
    log = tmp_path / "events"
    proc = subprocess.Popen([LINX, "run", "--ns", "net,uts", "--events", str(log), "--", "sleep", "60"])
    pid = None
    for _ in range(500):
        if log.exists():
            evs = [json.loads(line) for line in log.read_text().splitlines()]
            pid = next((e["host_pid"] for e in evs if e["event"] == "ready"), None)
            if any(e["event"] == "running" for e in evs):
                break
        time.sleep(0.01)
    assert pid
    yield pid
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_get_set_list_in_a_running_child(child):
    hostname, forward = host("kernel.hostname", "net.ipv4.ip_forward")
    linx("sysctl", "set", "--in", f"pid:{child}", "net.ipv4.ip_forward=1",
         "kernel.hostname=linx-t-ct", check=True)
    ref = subprocess.run(["nsenter", "-t", str(child), "-n", "-u", "sysctl", "-n",
                          "net.ipv4.ip_forward", "kernel.hostname"], capture_output=True, text=True, check=True)
    assert ref.stdout.split() == ["1", "linx-t-ct"]
    r = linx("sysctl", "get", "--in", f"pid:{child}", "--json", "net.ipv4.ip_forward", "kernel.hostname",
             check=True)
    assert json.loads(r.stdout) == {"net.ipv4.ip_forward": "1", "kernel.hostname": "linx-t-ct"}
    r = linx("sysctl", "get-int", "--in", f"pid:{child}", "net.ipv4.ip_forward", "--json", check=True)
    assert json.loads(r.stdout) == {"net.ipv4.ip_forward": 1}
    r = linx("sysctl", "list", "--in", f"pid:{child}", "net.ipv4.ip_forward", check=True)
    assert r.stdout == "net.ipv4.ip_forward = 1\n"
    assert host("kernel.hostname", "net.ipv4.ip_forward") == [hostname, forward]


def test_list_json_in_a_netns(netns):
    r = linx("sysctl", "list", "--in", netns, "net.ipv4.conf.lo", "--json", check=True)
    doc = json.loads(r.stdout)
    assert doc and all(e["key"].startswith("net.ipv4.conf.lo.") for e in doc)
    got = {e["key"]: e["value"] for e in doc}
    assert got["net.ipv4.conf.lo.forwarding"] == inside(netns, "net.ipv4.conf.lo.forwarding")


@pytest.mark.parametrize("args, words", [
    (["net.ipv4.ip_forward=1", "net..x=1"], "sysctl key 'net..x'"),
    (["net.ipv4.ip_forward=1", "net.ipv4.ip_default_ttl=7\n8"], "newline"),
    (["net.ipv4.ip_forward=1", "vm.swappiness=10"], "vm.swappiness: is host-global"),
    (["net.ipv4.ip_forward=1", "kernel.hostname=x"], "belongs to the uts namespace"),
    (["net.ipv4.ip_forward=1", "net.ipv4.ip_default_ttl"], "expected KEY=VALUE"),
])
def test_bad_input_exits_2_and_writes_nothing(netns, args, words):
    err = one_line_error(linx("sysctl", "set", "--in", netns, *args), 2)
    assert words in err
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_set_prints_what_it_wrote_unless_quiet(netns):
    """As sysctl -w: KEY = VALUE per key written; -q (sysctl -q): nothing, the status says."""
    r = linx("sysctl", "set", "--in", netns, "net.ipv4.ip_forward=1", "net.ipv4.ip_default_ttl = 71")
    assert (r.returncode, r.stdout, r.stderr) == (0, "net.ipv4.ip_forward = 1\nnet.ipv4.ip_default_ttl = 71\n", "")
    r = linx("sysctl", "set", "-q", "--in", netns, "net.ipv4.ip_forward=0", "net.ipv4.ip_default_ttl=72")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert (inside(netns, "net.ipv4.ip_forward"), inside(netns, "net.ipv4.ip_default_ttl")) == ("0", "72")
    r = linx("sysctl", "set", "--quiet", "--in", netns, "net.ipv4.ip_forward=1", "net.ipv4.ip_default_ttl=0")
    assert r.stdout == "" and "EINVAL" in one_line_error(r, 1)
    assert inside(netns, "net.ipv4.ip_forward") == "0"
    r = linx("sysctl", "set", "-q", "--in", netns, "net.ipv4.ip_forward")
    assert r.stdout == "" and "expected KEY=VALUE" in one_line_error(r, 2)


def test_kernel_refusal_exits_1_and_undoes(netns):
    err = one_line_error(linx("sysctl", "set", "--in", netns, "net.ipv4.ip_forward=1",
                              "net.ipv4.ip_default_ttl=0"), 1)
    assert err == ('linx: sysctl write "net.ipv4.ip_default_ttl" failed on '
                   '/proc/sys/net/ipv4/ip_default_ttl: EINVAL (errno 22)')
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_reads_that_are_usage_errors():
    assert "is not an integer" in one_line_error(linx("sysctl", "get-int", "kernel.ostype"), 2)
    assert "ENOENT" in one_line_error(linx("sysctl", "get", "linx.does.not.exist"), 1)
    assert "open_ns" in one_line_error(linx("sysctl", "get", "--in", "pid:4194304", "net.ipv4.ip_forward"), 1)
    r = linx("sysctl", "get", "kernel.ostype", "--in", "host", check=True)
    assert r.stdout == "Linux\n"


def test_apply_reports_a_bad_line_and_writes_nothing(netns, tmp_path):
    conf = tmp_path / "60-t.conf"
    conf.write_text("net.ipv4.ip_forward = 1\n# fine\nnet.ipv4.ip_default_ttl 99\n")
    err = one_line_error(linx("sysctl", "apply", "--in", netns, conf), 2)
    assert err.startswith(f"linx: {conf}:3: expected KEY = VALUE")
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_apply_reports_per_key(netns, tmp_path):
    a, b = tmp_path / "10-a.conf", tmp_path / "20-b.conf"
    a.write_text("net.ipv4.ip_forward = 1\n-net.linx.nope = 1\n")
    b.write_text("; later file\nnet.ipv4.ip_default_ttl = 0\nnet.ipv4.ip_default_ttl = 99\n")
    r = linx("sysctl", "apply", "--in", netns, a, b)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"{a}:1: net.ipv4.ip_forward = 1: ok",
        f"{a}:2: net.linx.nope = 1: ENOENT (No such file or directory) (ignored)",
        f"{b}:2: net.ipv4.ip_default_ttl = 0: EINVAL (Invalid argument)",
        f"{b}:3: net.ipv4.ip_default_ttl = 99: ok",
    ]
    assert (inside(netns, "net.ipv4.ip_forward"), inside(netns, "net.ipv4.ip_default_ttl")) == ("1", "99")
    a.write_text("-net.linx.nope = 1\nnet.ipv4.ip_forward = 0\n")
    r = linx("sysctl", "apply", "--in", netns, "--json", a, check=True)     # ignored only: exit 0
    assert [(e["line"], e["status"]) for e in json.loads(r.stdout)] == [(1, "ignored"), (2, "ok")]
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_apply_quiet(netns, tmp_path):
    """-q: no report; exit 0 when every key without "-" was set, else 1 with only the failed
    keys on stderr (an ignored one is not mentioned)."""
    conf = tmp_path / "30-q.conf"
    conf.write_text("net.ipv4.ip_forward = 1\n-net.linx.nope = 1\n")
    r = linx("sysctl", "apply", "-q", "--in", netns, conf)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert inside(netns, "net.ipv4.ip_forward") == "1"
    conf.write_text("net.ipv4.ip_forward = 0\n-net.linx.nope = 1\nnet.ipv4.ip_default_ttl = 0\n")
    r = linx("sysctl", "apply", "--quiet", "--in", netns, conf)
    assert r.stdout == ""
    assert one_line_error(r, 1) == f"linx: {conf}:3: net.ipv4.ip_default_ttl = 0: EINVAL (Invalid argument)"
    assert inside(netns, "net.ipv4.ip_forward") == "0"
    r = linx("sysctl", "apply", "-q", "--json", "--in", netns, conf)
    assert r.stdout == "" and "--quiet" in one_line_error(r, 2)
