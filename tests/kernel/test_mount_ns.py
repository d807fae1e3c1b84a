"""linx_core.mount against the real kernel. Every change happens in a private mount namespace
held by a sleeping process the test starts (`unshare -m --propagation private`) and is made
through in_=pid:N, so the host's mounts are never touched; findmnt --task N is the oracle."""
import json
import os
import subprocess

import pytest

from linx_core import mount, target
from linx_core.errors import KernelError, UsageError
from linx_core.process import Session
from linx_core.target import TargetError

COLUMNS = "ID,PARENT,MAJ:MIN,FSROOT,TARGET,SOURCE,FSTYPE,OPTIONS,VFS-OPTIONS,FS-OPTIONS,PROPAGATION,OPT-FIELDS"


def host_mounts_under(path):
    """Mount points of the host's table at or below path (other tests may change the rest)."""
    from linx_core import mount
    return [e.mount_point for e in mount.read("/proc/self/mountinfo")
            if (e.mount_point + "/").startswith(f"{path}/")]


@pytest.fixture
def ns(mount_ns_pid):
    """A private mount namespace, held by a sleep; the host's table is unchanged afterwards."""
    return target.Target("pid", mount_ns_pid)


def findmnt(t, path=None):
    """findmnt's rows for the namespace of t (or the one row for path), keyed by target."""
    args = ["findmnt", "-J", "-l", "-o", COLUMNS, "--task", t.value]
    out = subprocess.run(args + ([path] if path else []), capture_output=True, text=True).stdout
    return {r["target"]: r for r in json.loads(out)["filesystems"]} if out else {}


def test_list_equals_findmnt_with_escaped_paths(ns, tmp_path):
    weird = [tmp_path / "with space", tmp_path / "tab\there", tmp_path / "back\\slash"]
    for d in weird:
        d.mkdir()
        mount.mount("none", str(d), "tmpfs", data="size=1m", in_=ns)
    mine = [e.findmnt() for e in mount.list_mounts(ns)]
    assert {r["target"]: r for r in mine} == findmnt(ns)
    assert {str(d) for d in weird} <= {r["target"] for r in mine}
    # through the namespace file: run_in's thread reads /proc/thread-self/mountinfo
    by_file = mount.list_mounts(target.parse(f"/proc/{ns.value}/ns/mnt"))
    assert [e.findmnt() for e in by_file] == mine


def test_bind_remount_ro_move_umount(ns, tmp_path):
    src, dst, moved = (tmp_path / n for n in ("src", "dst", "moved"))
    for d in (src, dst, moved):
        d.mkdir()
    mount.mount("none", str(src), "tmpfs", in_=ns)

    mount.bind(str(src), str(dst), in_=ns)
    row = findmnt(ns)[str(dst)]
    assert row["maj:min"] == findmnt(ns)[str(src)]["maj:min"] and row["options"].startswith("rw,")

    mount.remount(str(dst), ["bind", "ro"], in_=ns)
    rows = findmnt(ns)
    assert rows[str(dst)]["vfs-options"].startswith("ro,")
    assert rows[str(src)]["vfs-options"].startswith("rw,")      # the source stays writable

    mount.move(str(dst), str(moved), in_=ns)
    rows = findmnt(ns)
    assert str(dst) not in rows and rows[str(moved)]["vfs-options"].startswith("ro,")

    mount.umount(str(moved), in_=ns)
    assert str(moved) not in findmnt(ns)
    mount.umount(str(src), ["detach"], in_=ns)
    assert str(src) not in findmnt(ns)


def test_bind_of_a_subdirectory_shows_its_fsroot(ns, tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    mount.bind(str(tmp_path / "a" / "deep"), str(tmp_path / "b"), in_=ns)
    row = findmnt(ns)[str(tmp_path / "b")]
    assert row["fsroot"].endswith("/a/deep") and row["source"].endswith(f"[{row['fsroot']}]")


def test_bind_ro_and_rec(ns, tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    mount.mount("none", str(tmp_path / "a" / "sub"), "tmpfs", in_=ns)
    mount.bind(str(tmp_path / "a"), str(tmp_path / "b"), ["rec", "ro"], in_=ns)
    rows = findmnt(ns)
    assert rows[str(tmp_path / "b")]["vfs-options"].split(",")[0] == "ro"
    assert rows[str(tmp_path / "b" / "sub")]["fstype"] == "tmpfs"      # rec took the submount
    mount.bind(str(tmp_path / "a"), str(tmp_path / "b"), in_=ns)        # without rec it does not
    points = [e.mount_point for e in mount.list_mounts(ns)]
    assert points.count(str(tmp_path / "b")) == 2 and points.count(str(tmp_path / "b" / "sub")) == 1


@pytest.mark.parametrize("kind, rec, shown", [
    ("shared", False, "shared"), ("unbindable", False, "private,unbindable"),
    ("private", False, "private"), ("slave", False, "private"), ("shared", True, "shared"),
])
def test_propagation(ns, tmp_path, kind, rec, shown):
    top, sub = tmp_path / "top", tmp_path / "top" / "sub"
    sub.mkdir(parents=True)
    mount.bind(str(top), str(top), in_=ns)              # a mount point whose subdirectory exists
    mount.mount("none", str(sub), "tmpfs", in_=ns)
    mount.set_propagation(str(top), kind, rec, in_=ns)
    rows = findmnt(ns)
    assert rows[str(top)]["propagation"] == shown
    assert rows[str(sub)]["propagation"] == (shown if rec else "private")


def test_slave_of_a_shared_peer(ns, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    mount.mount("none", str(a), "tmpfs", in_=ns)
    mount.set_propagation(str(a), "shared", in_=ns)
    mount.bind(str(a), str(b), in_=ns)                 # b joins a's peer group
    mount.set_propagation(str(b), "slave", in_=ns)
    rows = findmnt(ns)
    assert rows[str(b)]["propagation"] == "private,slave"
    assert rows[str(b)]["opt-fields"].startswith("master:")
    entry = next(e for e in mount.list_mounts(ns) if e.mount_point == str(b))
    assert entry.propagation[0][0] == "master"


def test_failed_mount_removes_the_placeholder_it_created(ns, tmp_path):
    where = tmp_path / "placeholder"
    with pytest.raises(KernelError) as e:
        mount.mount("none", str(where), "no-such-fs", create=True, in_=ns)
    assert e.value.errno == 19 and e.value.op == "mount"          # ENODEV
    assert not where.exists()
    mount.mount("none", str(tmp_path), "tmpfs", in_=ns)
    mount.bind("/dev/null", str(tmp_path / "null"), create=True, in_=ns)
    assert findmnt(ns)[str(tmp_path / "null")]["fstype"] == "devtmpfs"


def test_cross_namespace_failures_name_the_stage_and_the_ns_file():
    with pytest.raises(TargetError) as e:
        mount.mount("proc", "/proc", "proc", in_=target.parse("pid:9999999"))
    assert (e.value.stage, e.value.obj, e.value.errno) == ("open_ns", "/proc/9999999/ns/mnt", 2)
    with pytest.raises(UsageError):
        mount.umount("/x", in_="pid:zero")


def test_pivot_root_on_a_worker_thread_caller_cwd_unchanged(ns, tmp_path):
    root = tmp_path / "root"
    (root / "old").mkdir(parents=True)
    (root / "marker").write_text("x")
    mount.bind(str(root), str(root), in_=ns)
    cwd = os.getcwd()
    mount.pivot_root(str(root), str(root / "old"), in_=ns)
    assert os.getcwd() == cwd
    rows = findmnt(ns)
    assert rows["/"]["fsroot"].endswith("/root") and "/old" in rows
    mount.umount("/old", ["detach"], in_=ns)
    assert list(findmnt(ns)) == ["/"]
    with pytest.raises(KernelError) as e:
        mount.pivot_root("/nope", "/nope/old", in_=ns)
    assert (e.value.op, e.value.obj, e.value.errno) == ("chdir", "/nope", 2)


def test_proc_mount_into_a_parked_child_gets_its_pid_namespace(tmp_path):
    out = tmp_path / "out"
    s = Session.spawn(["/bin/sh", "-c", f"ls /proc | grep -c '^[0-9]' > {out}"], ["mnt", "pid"])
    with s:
        pid = s.wait_ready()
        t = target.parse(f"pid:{pid}")
        mount.set_propagation("/", "private", rec=True, in_=t)
        mount.mount("proc", "/proc", "proc", ["nosuid", "nodev", "noexec"], in_=t)
        s.proceed()
        assert s.wait(10) == {"event": "exited", "code": 0}
    assert int(out.read_text()) <= 3      # sh, ls, grep: only its own pid namespace
