"""cgroup core behaviour against the real cgroup2 mount, in a test cgroup each test makes and
removes. Only core files are used (this hybrid host delegates no resource controller in v2);
state is checked through /proc/PID/cgroup, /proc/PID/stat and the kernel's own files."""
import errno
import os
import signal
import subprocess
import time
import uuid

import pytest

from linx_core import cgroup


def _kill_all(path: str) -> None:
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        try:
            with open(os.path.join(dirpath, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        for _ in range(100):
            with open(os.path.join(dirpath, "cgroup.events")) as f:
                if "populated 0" in f.read():
                    break
            time.sleep(0.02)
        os.rmdir(dirpath)


@pytest.fixture
def cg():
    """A fresh cgroup under the real cgroup2 mount, emptied and removed afterwards."""
    path = os.path.join(cgroup.mount_point(), f"linx-t-{uuid.uuid4().hex[:8]}")
    yield path
    if os.path.isdir(path):
        _kill_all(path)
    assert not os.path.exists(path)


def cgroup_of(pid: int) -> str:
    """The reference: the kernel's own view in /proc/PID/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


def state_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_mount_point_is_the_cgroup2_mount():
    out = subprocess.run(["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert cgroup.mount_point() == out[0]


def test_create_is_idempotent_and_destroy_removes(cg):
    assert cgroup.create(cg) is True
    assert cgroup.create(cg) is False
    assert os.path.exists(os.path.join(cg, "cgroup.procs"))     # made by the kernel: a cgroup
    cgroup.destroy(cg)
    assert not os.path.exists(cg)
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.destroy(cg)
    assert e.value.errno == errno.ENOENT


def test_create_without_parent_fails(cg):
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.create(os.path.join(cg, "a", "b"))
    assert (e.value.op, e.value.errno) == ("create", errno.ENOENT)
    assert str(e.value).startswith(f"cgroup create failed on {cg}/a/b: ENOENT (errno 2)")


def test_procs_events_and_ebusy(cg):
    cgroup.create(cg)
    assert cgroup.events(cg) == {"populated": 0, "frozen": 0}
    p = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_process(cg, p.pid)
        assert cgroup_of(p.pid) == cgroup.relative(cg)
        assert cgroup.procs(cg) == [p.pid]
        assert cgroup.events(cg)["populated"] == 1
        with pytest.raises(cgroup.CgroupError) as e:
            cgroup.destroy(cg)
        assert (e.value.op, e.value.errno) == ("destroy", errno.EBUSY)
        assert os.path.isdir(cg)
    finally:
        p.kill()
        p.wait()
    assert cgroup.events(cg)["populated"] == 0
    cgroup.destroy(cg)
    assert not os.path.exists(cg)


def test_add_process_of_a_missing_pid(cg):
    cgroup.create(cg)
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.add_process(cg, 2**22 + 1)
    assert e.value.errno == errno.ESRCH


def test_child_cgroup_makes_destroy_busy(cg):
    cgroup.create(cg)
    cgroup.create(os.path.join(cg, "child"))
    with pytest.raises(cgroup.CgroupError) as e:
        cgroup.destroy(cg)
    assert e.value.errno == errno.EBUSY


def _writer(cg: str, out: str) -> subprocess.Popen:
    """A process in cg that appends to `out` every 10 ms: progress visible from outside."""
    p = subprocess.Popen(["sh", "-c", f"while :; do echo x >> {out}; sleep 0.01; done"])
    cgroup.add_process(cg, p.pid)
    return p


def _grows(path: str, seconds: float = 0.3) -> bool:
    before = os.path.getsize(path) if os.path.exists(path) else 0
    time.sleep(seconds)
    return os.path.getsize(path) > before


def test_freeze_and_thaw(cg, tmp_path):
    cgroup.create(cg)
    out = str(tmp_path / "ticks")
    p = _writer(cg, out)
    try:
        assert _grows(out)
        cgroup.freeze(cg)
        assert cgroup.events(cg)["frozen"] == 1
        assert cgroup.read(cg, "cgroup.freeze") == "1"
        time.sleep(0.05)
        assert not _grows(out)
        cgroup.thaw(cg)
        assert cgroup.events(cg)["frozen"] == 0
        assert _grows(out)
        cgroup.thaw(cg)         # idempotent
    finally:
        p.kill()
        p.wait()


def test_freeze_reaches_descendant_cgroups(cg, tmp_path):
    cgroup.create(cg)
    child = os.path.join(cg, "inner")
    cgroup.create(child)
    out = str(tmp_path / "ticks")
    p = _writer(child, out)
    try:
        cgroup.freeze(cg)
        assert cgroup.events(child)["frozen"] == 1
        assert not _grows(out)
        cgroup.thaw(cg)
        assert _grows(out)
    finally:
        p.kill()
        p.wait()


def test_destroy_kill_empties_then_removes(cg):
    cgroup.create(cg)
    # a shell that forks once it is inside: cgroup.kill reaches what it forked too
    p = subprocess.Popen(["sh", "-c", "read go; sleep 60 & sleep 60; wait"], stdin=subprocess.PIPE)
    cgroup.add_process(cg, p.pid)
    p.stdin.write(b"go\n")
    p.stdin.close()
    deadline = time.time() + 5
    while len(cgroup.procs(cg)) < 3 and time.time() < deadline:
        time.sleep(0.01)
    grandchild = [pid for pid in cgroup.procs(cg) if pid != p.pid]
    assert len(grandchild) == 2
    cgroup.destroy(cg, kill=True)
    assert p.wait(5) == -signal.SIGKILL
    assert not os.path.exists(cg)
    for pid in grandchild:      # reparented to init, which reaps them
        assert not os.path.exists(f"/proc/{pid}") or state_of(pid) == "Z"


def test_stats_reads_cpu_stat(cg):
    cgroup.create(cg)
    p = subprocess.Popen(["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
    cgroup.add_process(cg, p.pid)
    p.wait()
    s = cgroup.stats(cg)
    with open(os.path.join(cg, "cpu.stat")) as f:
        ref = dict(line.split() for line in f)
    assert s.cpu_usec == int(ref["usage_usec"]) > 0
    assert s.cpu_user_usec == int(ref["user_usec"])
    assert s.cpu_system_usec == int(ref["system_usec"])
    # fields whose controller is not enabled here are None, present ones are numbers
    for name, field in (("memory.current", "memory_current"), ("pids.current", "pids_current")):
        assert (getattr(s, field) is None) == (not os.path.exists(os.path.join(cg, name)))
    if "nr_throttled" not in ref:
        assert s.cpu_nr_throttled is None


def test_enable_controllers_reports_each_refusal(cg):
    cgroup.create(cg)
    failed = cgroup.enable_controllers(cg, ["nosuch", "hugetlb"])
    # nosuch is no controller; hugetlb is not in this cgroup's cgroup.controllers
    # (the root does not delegate it) -- each refused on its own
    assert set(failed) == {"nosuch", "hugetlb"}
    assert all(e.errno in (errno.EINVAL, errno.ENOENT) for e in failed.values())
    assert failed["nosuch"].obj == os.path.join(cg, "cgroup.subtree_control")
    assert cgroup.read(cg, "cgroup.subtree_control") == ""


def test_tree_of_real_cgroups(cg):
    cgroup.create(cg)
    cgroup.create(os.path.join(cg, "b"))
    cgroup.create(os.path.join(cg, "a"))
    p = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_process(os.path.join(cg, "b"), p.pid)
        nodes = cgroup.tree(cg)
        rel = cgroup.relative(cg)
        assert [(n["path"], n["depth"], n["procs"], n["populated"]) for n in nodes] == [
            (rel, 0, 0, True), (rel + "/a", 1, 0, False), (rel + "/b", 1, 1, True)]
    finally:
        p.kill()
        p.wait()
