"""cgroup logic without a kernel: value parsing, path resolution, mountinfo, and the knob,
stats and tree code against a fake cgroupfs tree (plain files, as tests/kernel cannot
delegate memory/pids/cpu/io on this hybrid host)."""
import errno
import os

import pytest

from linx_core import cgroup
from linx_core.errors import UsageError


@pytest.mark.parametrize("knob, value, text", [
    ("memory.max", "256M", "268435456"),
    ("memory.max", "256MiB", "268435456"),
    ("memory.max", "1g", "1073741824"),
    ("memory.max", "4096", "4096"),
    ("memory.max", 4096, "4096"),
    ("memory.max", "max", "max"),
    ("memory.high", "512K", "524288"),
    ("memory.swap.max", "0", "0"),
    ("pids.max", "100", "100"),
    ("pids.max", "max", "max"),
    ("pids.max", "4194304", "4194304"),
    ("cpu.max", "50ms/100ms", "50000 100000"),
    ("cpu.max", "50000 100000", "50000 100000"),
    ("cpu.max", (50_000, 100_000), "50000 100000"),
    ("cpu.max", "200000", "200000 100000"),
    ("cpu.max", "max", "max 100000"),
    ("cpu.max", "max 1s", "max 1000000"),
    ("cpu.weight", "1", "1"),
    ("cpu.weight", "10000", "10000"),
    ("io.max", "8:16 rbps=2M wiops=120", "8:16 rbps=2097152 wiops=120"),
    ("io.max", "8:0 wbps=max riops=max", "8:0 wbps=max riops=max"),
])
def test_render_accepts(knob, value, text):
    assert cgroup.render(knob, value) == text


@pytest.mark.parametrize("knob, value, words", [
    ("memory.max", "256X", "expected bytes"),
    ("memory.max", "-1", "expected bytes"),
    ("memory.max", "1.5G", "expected bytes"),
    ("memory.max", "16E", "limit"),
    ("memory.max", "", "expected bytes"),
    ("pids.max", "4194305", "from 0 to 4194304"),
    ("pids.max", "-1", "from 0 to"),
    ("pids.max", True, "from 0 to"),
    ("cpu.weight", "0", "from 1 to 10000"),
    ("cpu.weight", "max", "from 1 to 10000"),
    ("cpu.max", "50ms/2s", "period"),
    ("cpu.max", "50/100000", "quota"),
    ("cpu.max", "a b", "QUOTA/PERIOD"),
    ("cpu.max", "1 2 3", "QUOTA/PERIOD"),
    ("io.max", "8:16", "DEVICE KEY=VALUE"),
    ("io.max", "8:16 speed=1", "KEY=VALUE"),
    ("io.max", "8:16 rbps=1", "above 1"),
    ("io.max", "/etc/passwd rbps=2", "block device"),
    ("nosuch.max", "1", "expected one of"),
])
def test_render_refuses(knob, value, words):
    with pytest.raises(UsageError) as e:
        cgroup.render(knob, value, "--flag")
    assert words in str(e.value)
    assert str(e.value).startswith("--flag: ")


def test_io_max_device_path(tmp_path):
    st = os.stat("/dev/loop0") if os.path.exists("/dev/loop0") else None
    if st is None:
        pytest.skip("no /dev/loop0")
    assert cgroup.render("io.max", "/dev/loop0 riops=10") == \
        f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} riops=10"


@pytest.mark.parametrize("text, rel", [
    ("a/b", "a/b"), ("/cg/a", "a"), ("a/../b", "b"), (".", ""), ("/cg", ""),
])
def test_resolve_inside(text, rel):
    assert cgroup.resolve(text, base="/cg") == os.path.normpath(os.path.join("/cg", rel))


@pytest.mark.parametrize("text", ["..", "../memory", "/sys/fs/cgroup/memory", "a/../../x", "/", "", "a\0b"])
def test_resolve_outside(text):
    with pytest.raises(UsageError) as e:
        cgroup.resolve(text, "--cgroup", base="/cg")
    assert str(e.value).startswith("--cgroup:")


def test_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(cgroup.ROOT_ENV, str(tmp_path) + "/")
    assert cgroup.root() == str(tmp_path)
    assert cgroup.resolve("x") == str(tmp_path / "x")
    assert cgroup.relative(str(tmp_path / "x" / "y")) == "/x/y"
    assert cgroup.relative(str(tmp_path)) == "/"


def test_mount_point_from_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n")
    assert cgroup.mount_point(str(info)) == "/sys/fs/cgroup/uni fied"
    info.write_text("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.mount_point(str(info))
    assert e.value.errno == errno.ENOENT


@pytest.fixture
def fake(tmp_path):
    """A cgroup directory as the kernel shows one with memory, pids, cpu and io enabled."""
    cg = tmp_path / "web"
    cg.mkdir()
    for name, text in {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
                       "pids.max": "max", "cpu.max": "max 100000", "cpu.weight": "100",
                       "io.max": "8:0 rbps=max wbps=1048576 riops=max wiops=max",
                       "cgroup.procs": "", "cgroup.subtree_control": ""}.items():
        (cg / name).write_text(text + "\n")
    return cg


def test_set_limits_writes_kernel_text(fake):
    undo = cgroup.set_limits(str(fake), {"memory.max": "256M", "pids.max": 100,
                                         "cpu.max": "50ms/100ms", "io.max": "8:16 rbps=1M"})
    assert (fake / "memory.max").read_text() == "268435456"
    assert (fake / "pids.max").read_text() == "100"
    assert (fake / "cpu.max").read_text() == "50000 100000"
    assert (fake / "io.max").read_text() == "8:16 rbps=1048576"
    # undo, newest first; io.max for a device it did not list resets every key
    assert undo == [("io.max", "8:16 rbps=max wbps=max riops=max wiops=max"),
                    ("cpu.max", "max 100000"), ("pids.max", "max"), ("memory.max", "max")]


def test_set_limits_checks_everything_before_writing(fake):
    with pytest.raises(UsageError):
        cgroup.set_limits(str(fake), {"memory.max": "1G", "cpu.weight": "0"})
    assert (fake / "memory.max").read_text() == "max\n"


def test_set_limits_puts_back_what_it_wrote(fake):
    (fake / "cpu.weight").unlink()
    (fake / "cpu.weight").mkdir()       # the kernel refusing: open() fails with EISDIR
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.set_limits(str(fake), {"memory.max": "1G", "io.max": "8:0 rbps=2M",
                                      "cpu.weight": 50})
    assert e.value.errno == errno.EISDIR
    assert (fake / "memory.max").read_text() == "max"
    assert (fake / "io.max").read_text() == "8:0 rbps=max wbps=1048576 riops=max wiops=max"


def test_missing_knob_hints_at_delegation(fake):
    (fake / "memory.max").unlink()
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.write(str(fake), "memory.max", "1")
    assert e.value.errno == errno.ENOENT
    assert "memory controller" in str(e.value) and "subtree_control" in str(e.value)


@pytest.mark.parametrize("name", ["", "..", "a/b", "../cgroup.procs"])
def test_file_names_are_checked(fake, name):
    with pytest.raises(UsageError):
        cgroup.read(str(fake), name)


def test_write_refuses_multi_line_values(fake):
    with pytest.raises(UsageError):
        cgroup.write(str(fake), "memory.max", "1\n2")


def test_stats_fields_and_missing_sources(fake):
    (fake / "cpu.stat").write_text("usage_usec 12345678\nuser_usec 10000000\nsystem_usec 2345678\n"
                                   "nr_periods 4\nnr_throttled 2\nthrottled_usec 777\n"
                                   "some_future_counter 5\n")
    (fake / "memory.current").write_text("44040192\n")
    s = cgroup.stats(str(fake))
    assert s.to_dict() == {"cpu_usec": 12345678, "cpu_user_usec": 10000000,
                           "cpu_system_usec": 2345678, "cpu_nr_throttled": 2,
                           "cpu_throttled_usec": 777, "memory_current": 44040192,
                           "memory_peak": None, "pids_current": None}


def test_stats_of_a_missing_cgroup(tmp_path):
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.stats(str(tmp_path / "nope"))
    assert (e.value.op, e.value.errno) == ("stats", errno.ENOENT)


def test_enable_controllers_one_at_a_time(fake, monkeypatch):
    writes = []
    real = cgroup.write

    def write(path, name, value):
        writes.append(value)
        if value == "+nosuch":
            raise cgroup.CgroupError("write", path, errno.EINVAL)
        real(path, name, value)

    monkeypatch.setattr(cgroup, "write", write)
    failed = cgroup.enable_controllers(str(fake), ["memory", "nosuch", "pids"])
    assert writes == ["+memory", "+nosuch", "+pids"]
    assert list(failed) == ["nosuch"] and failed["nosuch"].errno == errno.EINVAL
    assert cgroup.enable_controllers(str(fake), []) == {}


def test_enable_controllers_checks_names_first(fake):
    with pytest.raises(UsageError):
        cgroup.enable_controllers(str(fake), ["memory", "+cpu"])
    assert (fake / "cgroup.subtree_control").read_text() == "\n"


def test_tree(fake, monkeypatch):
    monkeypatch.setenv(cgroup.ROOT_ENV, str(fake.parent))
    (fake / "a").mkdir()
    (fake / "a" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (fake / "a" / "cgroup.procs").write_text("12\n13\n")
    (fake / "b").mkdir()
    (fake / "cgroup.subtree_control").write_text("memory pids\n")
    nodes = cgroup.tree(str(fake))
    assert [(n["path"], n["depth"], n["procs"], n["populated"]) for n in nodes] == \
        [("/web", 0, 0, None), ("/web/a", 1, 2, True), ("/web/b", 1, None, None)]
    assert nodes[0]["subtree_control"] == ["memory", "pids"]


def test_placement_validates_on_construction():
    with pytest.raises(UsageError):
        cgroup.Placement("/cg/x", {"memory.max": "lots"})


def test_placement_failure_removes_what_it_made(fake, monkeypatch):
    """A refused knob: the cgroup made for the workload is removed, nothing is left."""
    monkeypatch.setattr(cgroup, "destroy", lambda path, **kw: os.rmdir(path))
    path = str(fake.parent / "new")
    p = cgroup.Placement(path, {"memory.max": "1G"})
    with pytest.raises(cgroup.CgroupError) as e:
        p.apply(1234)           # the new directory has no memory.max: ENOENT
    assert e.value.errno == errno.ENOENT
    assert not os.path.exists(path)
    p.release()                 # nothing left to remove


def test_placement_keeps_what_existed(fake, monkeypatch):
    monkeypatch.setattr(cgroup, "destroy", lambda path, **kw: pytest.fail("destroyed"))
    p = cgroup.Placement(str(fake), {"pids.max": "10"})
    p.apply(4321)
    assert (fake / "cgroup.procs").read_text() == "4321"
    assert (fake / "pids.max").read_text() == "10"
    p.release()
    assert fake.is_dir()
