"""sysctl checks that happen before any I/O: the seed's key grammar and value rules, which
namespace owns a key, what --in may target, and the sysctl.d parser."""
import pytest

from linx_core import sysctl, target
from linx_core.errors import UsageError


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "kernel.hostname", "vm.swappiness",
                                 "net.ipv4.conf.all.rp_filter", "debug.exception-trace", "abi"])
def test_good_keys(key):
    assert sysctl.check_key(key) == key
    assert sysctl.path_of(key) == "/proc/sys/" + key.replace(".", "/")


@pytest.mark.parametrize("key", ["", "net..ip_forward", "net.ipv4.../etc/passwd", ".net", "net.",
                                 "net/ipv4/ip_forward", "net.ipv4 .x", "net.ipv4.*", "a\nb", None, 1])
def test_bad_keys(key):
    with pytest.raises(UsageError) as e:
        sysctl.check_key(key)
    assert "sysctl key" in str(e.value)


@pytest.mark.parametrize("value, text", [
    (1, "1"), (-5, "-5"), ("ct0", "ct0"), ([4, 4, 1, 7], "4 4 1 7"), ((4096, 1), "4096 1"), ("", ""),
])
def test_render(value, text):
    assert sysctl.render(value) == text


@pytest.mark.parametrize("value, words", [
    ("ct0\nct1", "newline"), ("a\0b", "NUL"), ([4, 4, "1", 7], "not all integers"),
    ([], "not all integers"), (True, "expected"), (1.5, "expected"), ([1, True], "not all"),
])
def test_render_refuses(value, words):
    with pytest.raises(UsageError) as e:
        sysctl.render(value, "kernel.printk")
    assert words in str(e.value) and str(e.value).startswith("kernel.printk:")


@pytest.mark.parametrize("key, kind", [
    ("net.ipv4.ip_forward", "net"), ("net", "net"), ("net.core.somaxconn", "net"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
    ("kernel.msgmax", "ipc"), ("kernel.msg_next_id", "ipc"), ("kernel.sem", "ipc"),
    ("kernel.shmmax", "ipc"), ("kernel.shm_rmid_forced", "ipc"), ("fs.mqueue.msg_max", "ipc"),
    ("kernel.hostname2", None), ("kernel.printk", None), ("vm.swappiness", None),
    ("netfilter.x", None), ("fs.file-max", None), ("kernel", None), ("user.max_net_namespaces", None),
])
def test_owner(key, kind):
    assert sysctl.owner(key) == kind


@pytest.mark.parametrize("prefix, kinds", [
    ("", ["net", "uts", "ipc"]), ("kernel", ["uts", "ipc"]), ("net.ipv4", ["net"]),
    ("fs", ["ipc"]), ("fs.mqueue", ["ipc"]), ("vm", []), ("kernel.hostname", ["uts"]),
    ("kernel.printk", []),
])
def test_owners_under(prefix, kinds):
    assert sysctl.owners_under(prefix) == kinds


def test_kinds_for_targets():
    pid = target.Target("pid", "42")
    assert sysctl.kinds_for(target.Target("host"), ["vm.swappiness"]) == []
    assert sysctl.kinds_for(pid, ["net.ipv4.ip_forward", "kernel.hostname"]) == ["net", "uts"]
    assert sysctl.kinds_for(pid, ["kernel"], every=False) == ["uts", "ipc"]
    assert sysctl.kinds_for(target.Target("netns", "blue"), ["net.ipv4.ip_forward"]) == ["net"]
    assert sysctl.kinds_for(target.Target("netns", "blue"), [""], every=False) == ["net"]


@pytest.mark.parametrize("tgt, keys, words", [
    (target.Target("pid", "42"), ["net.ipv4.ip_forward", "kernel.printk"], "kernel.printk: is host-global"),
    (target.Target("pid", "42"), ["user.max_user_namespaces"], "host-global"),
    (target.Target("netns", "blue"), ["kernel.hostname"], "belongs to the uts namespace"),
])
def test_kinds_for_refuses(tgt, keys, words):
    with pytest.raises(UsageError) as e:
        sysctl.kinds_for(tgt, keys)
    assert words in str(e.value)


def test_list_refuses_a_global_subtree_in_a_namespace():
    with pytest.raises(UsageError) as e:
        sysctl.list_("vm", target.Target("pid", "1"))
    assert "host-global" in str(e.value)


CONF = """\
# a comment
; another comment

net.ipv4.ip_forward = 1
  kernel.printk=4 4 1 7
-net.ipv6.conf.all.disable_ipv6 =1
kernel.hostname = with spaces  inside
net.ipv4.tcp_rmem =
"""


def test_parse_conf():
    got, bad = sysctl.parse_conf(CONF, "x.conf")
    assert bad == []
    assert [(a.line, a.key, a.value, a.ignore_errors) for a in got] == [
        (4, "net.ipv4.ip_forward", "1", False),
        (5, "kernel.printk", "4 4 1 7", False),
        (6, "net.ipv6.conf.all.disable_ipv6", "1", True),
        (7, "kernel.hostname", "with spaces  inside", False),
        (8, "net.ipv4.tcp_rmem", "", False),
    ]
    assert {a.file for a in got} == {"x.conf"}


def test_parse_conf_bad_lines():
    _, bad = sysctl.parse_conf("net.ipv4.ip_forward = 1\nthis is wrong\nnet..x = 1\n"
                               "net.ipv4.conf.*.rp_filter = 1\n", "99-t.conf")
    assert [b.split(": ", 1)[0] for b in bad] == ["99-t.conf:2", "99-t.conf:3", "99-t.conf:4"]
    assert "expected KEY = VALUE" in bad[0]


def test_load_conf_reports_the_first_bad_line(tmp_path):
    good, broken = tmp_path / "10-good.conf", tmp_path / "20-bad.conf"
    good.write_text("net.ipv4.ip_forward = 1\n")
    broken.write_text("\n\nnot a line\nnet..x = 2\n")
    with pytest.raises(UsageError) as e:
        sysctl.load_conf([str(good), str(broken)])
    assert str(e.value).startswith(f"{broken}:3: expected KEY = VALUE")
    assert "and 1 more bad line" in str(e.value)
    with pytest.raises(UsageError) as e:
        sysctl.load_conf([str(tmp_path / "missing.conf")])
    assert "missing.conf" in str(e.value)


def test_apply_checks_namespaces_before_writing():
    conf, _ = sysctl.parse_conf("net.ipv4.ip_forward = 1\nvm.swappiness = 10\n", "t.conf")
    with pytest.raises(UsageError) as e:
        sysctl.apply(conf, target.Target("netns", "nonexistent"))
    assert str(e.value).startswith("t.conf:2: vm.swappiness: is host-global")
