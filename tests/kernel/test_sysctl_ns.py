"""sysctl against the real kernel, only inside namespaces the test makes (a fresh netns, and
UTS/IPC namespaces from unshare(1)); the host's values are read, never written. The
reference is sysctl(8) run inside the namespace (ip netns exec, nsenter)."""
import errno
import os
import subprocess
import time

import pytest

from linx_core import sysctl, target
from linx_core.errors import UsageError


def host(key: str) -> str:
    return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, check=True).stdout.strip()


def inside(netns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-n", key],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def unshared():
    """A sleeping process in fresh UTS and IPC namespaces (made by unshare(1)), killed after."""
    p = subprocess.Popen(["unshare", "--uts", "--ipc", "sleep", "60"])
    for _ in range(200):
        if os.readlink(f"/proc/{p.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"):
            break
        time.sleep(0.01)
    yield p.pid
    p.kill()
    p.wait()


def test_proc_sys_resolves_against_the_calling_thread(netns):
    """What the module relies on: a thread that setns()ed into a netns sees that netns's
    /proc/sys/net through our own /proc, while /proc/self/net still shows the thread-group
    leader's namespace (only /proc/thread-self/net follows the thread)."""
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_default_ttl=77"], check=True)

    def look():
        with open("/proc/sys/net/ipv4/ip_default_ttl") as f:
            ttl = f.read().strip()
        names = {}
        for proc in ("self", "thread-self"):
            with open(f"/proc/{proc}/net/dev") as f:
                names[proc] = {line.split(":")[0].strip() for line in f.readlines()[2:]}
        return ttl, names

    ttl, names = target.run_in(target.parse(netns), ["net"], look)
    assert ttl == "77" != host("net.ipv4.ip_default_ttl")
    assert names["thread-self"] == {"lo"}
    assert names["self"] == set(os.listdir("/sys/class/net"))


def test_read_and_write_in_a_netns(netns):
    t = target.parse(netns, "--in")
    before = host("net.ipv4.ip_forward")
    assert sysctl.read_int("net.ipv4.ip_forward", t) == 0
    sysctl.write("net.ipv4.ip_forward", 1, t)
    assert inside(netns, "net.ipv4.ip_forward") == "1"
    assert sysctl.read("net.ipv4.ip_forward", t) == "1"
    assert host("net.ipv4.ip_forward") == before
    sysctl.write("net.ipv4.tcp_rmem", [4096, 65536, 1048576], t)
    assert inside(netns, "net.ipv4.tcp_rmem").split() == ["4096", "65536", "1048576"]
    assert sysctl.read_ints("net.ipv4.tcp_rmem", t) == [4096, 65536, 1048576]


def test_a_refused_write_puts_back_the_earlier_ones(netns):
    t = target.parse(netns, "--in")
    with pytest.raises(sysctl.SysctlError) as e:
        # ip_default_ttl is 1..255: the kernel refuses 0 after ip_forward was written
        sysctl.write_many({"net.ipv4.ip_forward": 1, "net.ipv4.ip_default_ttl": 0}, t)
    assert (e.value.operation, e.value.errno, e.value.key) == ("write", errno.EINVAL, "net.ipv4.ip_default_ttl")
    assert str(e.value) == ('sysctl write "net.ipv4.ip_default_ttl" failed on '
                            '/proc/sys/net/ipv4/ip_default_ttl: EINVAL (errno 22)')
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_bad_input_writes_nothing(netns):
    t = target.parse(netns, "--in")
    for values in ({"net.ipv4.ip_forward": 1, "net..x": 1},
                   {"net.ipv4.ip_forward": 1, "net.ipv4.ip_default_ttl": "7\n8"},
                   {"net.ipv4.ip_forward": 1, "vm.swappiness": 10}):
        with pytest.raises(UsageError):
            sysctl.write_many(values, t)
    assert inside(netns, "net.ipv4.ip_forward") == "0"


def test_missing_key(netns):
    with pytest.raises(sysctl.SysctlError) as e:
        sysctl.read("net.linx.does.not.exist", target.parse(netns))
    assert (e.value.operation, e.value.errno) == ("read", errno.ENOENT)
    assert e.value.path == "/proc/sys/net/linx/does/not/exist"
    with pytest.raises(sysctl.SysctlError) as e:
        sysctl.list_("linx.does.not.exist")
    assert (e.value.operation, e.value.errno) == ("list", errno.ENOENT)


def test_list_in_a_netns_matches_sysctl(netns):
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_default_ttl=77"], check=True)
    entries = sysctl.list_("net.ipv4", target.parse(netns))
    got = {e.key: e.value for e in entries}
    assert [e.key for e in entries] == sorted(got)
    assert got["net.ipv4.ip_default_ttl"] == "77"
    ref = {}
    out = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-a", "--deprecated", "-r",
                          r"^net\.ipv4\."],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition(" = ")
        ref[key] = value
    assert set(got) == set(ref)
    # values that cannot move on their own (not counters, not random)
    stable = [k for k in ref if not k.startswith(("net.ipv4.route.gc", "net.ipv4.tcp_mem", "net.ipv4.udp_mem"))]
    assert {k: " ".join(got[k].split()) for k in stable} == {k: " ".join(ref[k].split()) for k in stable}


def test_list_a_leaf_and_the_host_tree():
    assert sysctl.list_("kernel.ostype") == [sysctl.Entry("kernel.ostype", "Linux")]
    keys = [e.key for e in sysctl.list_()]
    assert keys == sorted(keys) and "kernel.ostype" in keys and "vm.swappiness" in keys


def test_uts_and_ipc_through_a_pid(unshared):
    t = target.parse(f"pid:{unshared}", "--in")
    hostname = host("kernel.hostname")
    msgmax = host("kernel.msgmax")
    sysctl.write_many({"kernel.hostname": "linx-t-uts", "kernel.msgmax": 12345}, t)
    ref = subprocess.run(["nsenter", "-t", str(unshared), "-u", "-i", "sysctl", "-n",
                          "kernel.hostname", "kernel.msgmax"], capture_output=True, text=True, check=True)
    assert ref.stdout.split() == ["linx-t-uts", "12345"]
    assert sysctl.read("kernel.hostname", t) == "linx-t-uts"
    assert (host("kernel.hostname"), host("kernel.msgmax")) == (hostname, msgmax)
    listed = {e.key: e.value for e in sysctl.list_("kernel", t)}
    assert listed["kernel.hostname"] == "linx-t-uts" and listed["kernel.msgmax"] == "12345"
    assert "kernel.printk" not in listed     # global: not that namespace's to list


def test_a_namespace_file_of_the_wrong_kind(unshared):
    t = target.parse(f"/proc/{unshared}/ns/uts", "--in")
    with pytest.raises(UsageError) as e:
        sysctl.read("net.ipv4.ip_forward", t)
    assert "belongs to the net namespace" in str(e.value) and "is a uts namespace" in str(e.value)
    assert sysctl.read("kernel.hostname", t) == subprocess.run(
        ["nsenter", "-t", str(unshared), "-u", "hostname"], capture_output=True, text=True).stdout.strip()


def test_a_shared_namespace_takes_the_host_path():
    """pid:self shares every namespace: nothing to enter, the read is the host's."""
    t = target.parse(f"pid:{os.getpid()}", "--in")
    assert sysctl.read("kernel.hostname", t) == host("kernel.hostname")


def test_a_gone_process():
    with pytest.raises(target.TargetError) as e:
        sysctl.read("net.ipv4.ip_forward", target.parse("pid:4194304", "--in"))
    assert (e.value.stage, e.value.errno) == ("open_ns", errno.ENOENT)
    assert e.value.obj == "/proc/4194304/ns/net"


def test_apply_in_a_netns(netns, tmp_path):
    conf = tmp_path / "50-t.conf"
    conf.write_text("# test\nnet.ipv4.ip_forward = 1\n-net.linx.nope = 1\n"
                    "net.ipv4.ip_default_ttl = 0\nnet.ipv4.ip_default_ttl=99\n")
    report = sysctl.apply(sysctl.load_conf([str(conf)]), target.parse(netns))
    assert [(r.assignment.line, r.status, r.error and r.error.errno) for r in report] == [
        (2, "ok", None), (3, "ignored", errno.ENOENT), (4, "failed", errno.EINVAL), (5, "ok", None)]
    assert inside(netns, "net.ipv4.ip_forward") == "1"
    assert inside(netns, "net.ipv4.ip_default_ttl") == "99"
