"""`linx mount` as a shell user meets it. Changes go into a private mount namespace held by a
sleep the test starts (`unshare -m --propagation private`), through --in pid:N, or into a
`linx run` workload's own namespace; findmnt is the oracle. The host's table never changes."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LINX, linx

COLUMNS = "ID,PARENT,MAJ:MIN,FSROOT,TARGET,SOURCE,FSTYPE,OPTIONS,VFS-OPTIONS,FS-OPTIONS,PROPAGATION,OPT-FIELDS"


def host_mounts_under(path):
    """Mount points of the host's table at or below path (other tests may change the rest)."""
    from linx_core import mount
    return [e.mount_point for e in mount.read("/proc/self/mountinfo")
            if (e.mount_point + "/").startswith(f"{path}/")]


@pytest.fixture
def pid(mount_ns_pid):
    return mount_ns_pid


def findmnt(pid, *extra):
    out = subprocess.run(["findmnt", "-J", "--task", pid, *extra], capture_output=True, text=True).stdout
    return json.loads(out)["filesystems"] if out else []


def rows(pid):
    return {r["target"]: r for r in findmnt(pid, "-l", "-o", COLUMNS)}


def ok(*args):
    r = linx(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_list_json_equals_findmnt_including_a_path_with_a_space(pid, tmp_path):
    spaced = tmp_path / "mount point"
    spaced.mkdir()
    ok("mount", "mount", "none", spaced, "-t", "tmpfs", "-o", "size=1m,mode=700", "--in", f"pid:{pid}")
    mine = json.loads(ok("mount", "list", "--json", "--in", f"pid:{pid}"))["filesystems"]
    assert mine == findmnt(pid, "-l", "-o", COLUMNS)
    assert any(r["target"] == str(spaced) and r["options"] == "rw,relatime,size=1024k,mode=700" for r in mine)
    # plain `findmnt -J` (a tree, four columns): the same rows for the fields both show
    def flat(nodes):
        for n in nodes:
            yield {k: n[k] for k in ("target", "source", "fstype", "options")}
            yield from flat(n.get("children", []))
    assert sorted(map(str, flat(findmnt(pid)))) == \
        sorted(str({k: r[k] for k in ("target", "source", "fstype", "options")}) for r in mine)
    # entered through the namespace file, and as the table of the namespace we are in
    assert json.loads(ok("mount", "list", "--json", "--in", f"/proc/{pid}/ns/mnt"))["filesystems"] == mine
    inside = subprocess.run(["nsenter", "-t", pid, "-m", LINX, "mount", "list", "--json"],
                            capture_output=True, text=True, check=True).stdout
    there = subprocess.run(["nsenter", "-t", pid, "-m", "findmnt", "-J", "-l", "-o", COLUMNS],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(inside) == json.loads(there)


def test_list_text_and_file(pid, tmp_path):
    text = ok("mount", "list", "--in", f"pid:{pid}")
    assert text.splitlines()[0].split() == ["TARGET", "SOURCE", "FSTYPE", "OPTIONS", "PROPAGATION"]
    capture = tmp_path / "mountinfo"
    capture.write_text(r"36 35 98:0 /mnt1 /mnt/with\040space rw,noatime master:1 - ext3 /dev/root rw" "\n")
    row, = json.loads(ok("mount", "list", "--json", "--file", capture))["filesystems"]
    assert row["target"] == "/mnt/with space" and row["propagation"] == "private,slave"


def test_every_verb_equals_findmnt(pid, tmp_path):
    src, dst, moved, prop = (tmp_path / n for n in ("src", "dst", "moved", "prop"))
    for d in (src, dst, moved, prop):
        d.mkdir()
    at = ("--in", f"pid:{pid}")
    ok("mount", "mount", "tmpfs", src, "-t", "tmpfs", "--flags", "nosuid,nodev", *at)
    assert rows(pid)[str(src)]["vfs-options"] == "rw,nosuid,nodev,relatime"

    ok("mount", "bind", src, dst, *at)
    assert rows(pid)[str(dst)]["maj:min"] == rows(pid)[str(src)]["maj:min"]
    ok("mount", "remount", dst, "--flags", "bind,ro", *at)
    assert rows(pid)[str(dst)]["vfs-options"].startswith("ro,")
    assert rows(pid)[str(src)]["vfs-options"].startswith("rw,")

    ok("mount", "move", dst, moved, *at)
    assert str(dst) not in rows(pid) and rows(pid)[str(moved)]["vfs-options"].startswith("ro,")
    ok("mount", "umount", moved, *at)
    assert str(moved) not in rows(pid)

    ok("mount", "bind", src, prop, "--ro", *at)
    assert rows(pid)[str(prop)]["vfs-options"].startswith("ro,")
    for verb, shown in (("make-shared", "shared"), ("make-unbindable", "private,unbindable"),
                        ("make-private", "private"), ("make-shared", "shared")):
        ok("mount", verb, prop, *at)
        assert rows(pid)[str(prop)]["propagation"] == shown
    ok("mount", "bind", prop, dst, *at)                  # dst joins prop's peer group...
    ok("mount", "make-slave", dst, *at)                  # ...then receives from it only
    assert rows(pid)[str(dst)]["propagation"] == "private,slave"
    ok("mount", "make-private", "/", "--rec", *at)
    assert {r["propagation"] for r in rows(pid).values()} == {"private"}
    ok("mount", "umount", "--detach", src, *at)
    assert str(src) not in rows(pid)


def test_bad_input_exits_2_and_does_nothing(pid, tmp_path):
    before = rows(pid)
    at = ("--in", f"pid:{pid}")
    for args, named in ((("mount", "mount", "none", tmp_path, "-t", "tmpfs", "--flags", "ro,bogus", *at), "'bogus'"),
                        (("mount", "umount", tmp_path, "--in", "pid:x"), "--in"),
                        (("mount", "list", "--in", "no/such"), "--in"),
                        (("mount", "list", "--file", "/x", *at), "--file")):
        r = linx(*args)
        assert r.returncode == 2 and named in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert rows(pid) == before


def test_kernel_refusals_exit_1_with_the_errno_name(pid, tmp_path):
    r = linx("mount", "umount", tmp_path, "--in", f"pid:{pid}")
    assert r.returncode == 1 and "umount failed on" in r.stderr and "EINVAL" in r.stderr
    r = linx("mount", "mount", "proc", "/proc", "-t", "proc", "--in", "pid:9999999")
    assert r.returncode == 1 and "open_ns failed on /proc/9999999/ns/mnt: ENOENT" in r.stderr
    r = linx("mount", "pivot-root", "/nope", "/nope/old", "--in", f"pid:{pid}")
    assert r.returncode == 1 and "chdir failed on /nope: ENOENT" in r.stderr


@pytest.fixture
def rootfs(tmp_path):
    """A busybox-static rootfs: /bin/busybox and a few applets, a marker, a put_old dir."""
    root = tmp_path / "rootfs"
    for d in ("bin", "proc", "old_root"):
        (root / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc").mkdir()
    (root / "etc" / "marker").write_text("inside the rootfs\n")
    return root


def test_pivot_root_into_a_busybox_rootfs_and_run_a_command(rootfs, tmp_path):
    into = f"--in pid:$LINX_PID"
    ritual = " && ".join([
        f"{LINX} mount make-private / --rec {into}",
        f"{LINX} mount bind {rootfs} {rootfs} {into}",
        f"{LINX} mount pivot-root {rootfs} {rootfs}/old_root {into}",
        f"{LINX} mount umount /old_root --detach {into}",
        f"findmnt -J -l -o TARGET,FSROOT --task $LINX_PID > {tmp_path}/table",
    ])
    r = linx("run", "--ns", "mount,pid", "--mount-proc", "--cwd", "/", "--checkpoint", ritual, "--",
             "/bin/sh", "-c", "cat /etc/marker; ls /; ls /old_root | wc -l")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "inside the rootfs"
    assert r.stdout.split()[3:7] == ["bin", "etc", "old_root", "proc"]
    table = json.loads((tmp_path / "table").read_text())["filesystems"]
    assert table == [{"target": "/", "fsroot": table[0]["fsroot"]}]
    assert table[0]["fsroot"].endswith("/rootfs")
    assert host_mounts_under(tmp_path) == []


def test_proc_mount_into_a_workload_shows_its_pid_namespace():
    into = "--in pid:$LINX_PID"
    r = linx("run", "--ns", "mount,pid", "--checkpoint",
             f"{LINX} mount make-private / --rec {into} && {LINX} mount mount proc /proc -t proc {into}",
             "--", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    assert r.returncode == 0, r.stderr
    me, count = r.stdout.split()
    assert me == "1" and int(count) <= 3


def test_help_does_not_load_the_library():
    code = ("import sys; from linx_cli import mount, user; "
            "print(any(m.startswith('linx_core') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    assert linx("mount", "--help").returncode == 0 and "pivot-root" in linx("mount", "--help").stdout
