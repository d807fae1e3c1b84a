"""`linx run --map-*` and `linx user` as a shell user meets them; /proc/PID/{uid,gid}_map and
setgroups, read by a host-side --checkpoint command after the maps are written, are the oracle."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import LINX, linx

# at the checkpoint the maps are already written (user maps come first) and the child is parked
SNAPSHOT = "cat /proc/$LINX_PID/uid_map /proc/$LINX_PID/gid_map /proc/$LINX_PID/setgroups > {}"


def lines(path):
    return [line.split() for line in open(path).read().splitlines()]


def test_map_root_user_id_u_is_0_and_uid_map_shows_it(tmp_path):
    snap = tmp_path / "snap"
    r = linx("run", "--ns", "user", "--map-root-user", "--checkpoint", SNAPSHOT.format(snap), "--", "id", "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    euid, egid = str(os.geteuid()), str(os.getegid())
    assert lines(snap) == [["0", euid, "1"], ["0", egid, "1"], ["deny"]]
    # without the maps the same workload is nobody (the kernel's overflow uid)
    assert linx("run", "--ns", "user", "--", "id", "-u").stdout.strip() == "65534"


def test_several_ranges_and_becoming_root_inside(tmp_path):
    snap = tmp_path / "snap"
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:     # reachable by host uid 100000
        os.chmod(shared, 0o1777)
        r = linx("run", "--ns", "user", "--map-uid", "0:100000:1000", "--map-uid", "1000:200000:10",
                 "--map-gid", "0:300000:65536", "--user", "0:0", "--checkpoint", SNAPSHOT.format(snap),
                 "--", "sh", "-c", f"id -u; id -g; touch {shared}/made")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["0", "0"]
        st = os.stat(f"{shared}/made")
        assert (st.st_uid, st.st_gid) == (100000, 300000)
    assert lines(snap) == [["0", "100000", "1000"], ["1000", "200000", "10"],
                           ["0", "300000", "65536"], ["deny"]]


@pytest.mark.parametrize("args, named", [
    (["--map-uid", "0:1000"], "--map-uid: '0:1000': expected INSIDE:OUTSIDE:LENGTH"),
    (["--map-uid=-1:1000:1"], "--map-uid: '-1:1000:1'"),
    (["--map-gid", "0:1000:0"], "--map-gid: 0:1000:0: ids must be >= 0 and LENGTH > 0"),
    (["--map-uid", "0:1000:10", "--map-uid", "5:5000:1"], "--map-uid: 5:5000:1 overlaps 0:1000:10 inside"),
    (["--map-root-user", "--map-uid", "0:5000:1"], "--map-uid: 0:5000:1 overlaps 0:"),
    (["--map-uid", "0:4294967290:10"], "--map-uid: 0:4294967290:10: the range runs past"),
])
def test_bad_maps_exit_2_naming_the_entry_and_nothing_runs(tmp_path, args, named):
    marker = tmp_path / "ran"
    r = linx("run", "--ns", "user", *args, "--", "touch", marker)
    assert r.returncode == 2 and named in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not marker.exists()


def test_maps_need_a_user_namespace(tmp_path):
    for args in (["--map-root-user"], ["--map-uid", "0:0:1"], ["--map-auto"]):
        r = linx("run", "--ns", "pid", *args, "--", "touch", tmp_path / "ran")
        assert r.returncode == 2 and "--ns user" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_map_auto_uses_subuid_and_subgid(tmp_path):
    """/etc/subuid and /etc/subgid come from an overlay on /etc inside a private mount
    namespace; the host's /etc is only the overlay's read-only lower layer."""
    name = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    snap = tmp_path / "snap"
    script = f"""set -e
mount -t tmpfs none {tmp_path}/o && mkdir {tmp_path}/o/up {tmp_path}/o/work
mount -t overlay overlay -o lowerdir=/etc,upperdir={tmp_path}/o/up,workdir={tmp_path}/o/work /etc
printf 'someone:1:2\\n{name}:100000:65536\\n' > /etc/subuid
printf '{os.getegid()}:200000:5000\\n' > /etc/subgid
exec {LINX} run --ns user --map-auto --checkpoint '{SNAPSHOT.format(snap)}' -- true"""
    (tmp_path / "o").mkdir()
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert lines(snap) == [["0", "100000", "65536"], ["0", "200000", "5000"], ["deny"]]


def test_map_auto_without_a_range_is_a_usage_error(tmp_path):
    (tmp_path / "empty").write_text("")
    script = f"""mount --bind {tmp_path}/empty /etc/subuid 2>/dev/null
exec {LINX} run --ns user --map-auto -- true"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--map-auto:" in r.stderr and "/etc/subuid" in r.stderr


def test_user_show_and_map_on_a_parked_workload(tmp_path):
    """`linx user map` from a --checkpoint command, `linx user show` after it."""
    shown = tmp_path / "shown"
    steps = (f"{LINX} user map $LINX_PID --map-uid 0:100000:65536 --map-gid 0:100000:65536 && "
             f"{LINX} user show $LINX_PID --json > {shown} && {LINX} user show pid:$LINX_PID >> {shown}.txt")
    r = linx("run", "--ns", "user", "--checkpoint", steps, "--", "true")
    assert r.returncode == 0, r.stderr
    doc = json.loads(shown.read_text())
    assert doc["uid_map"] == [{"inside": 0, "outside": 100000, "length": 65536}] == doc["gid_map"]
    assert doc["setgroups"] == "deny"
    text = (tmp_path / "shown.txt").read_text().split("\n")
    assert text[1].split() == ["uid", "0", "100000", "65536"] and text[-2] == "setgroups deny"
    # our own maps: the initial namespace's identity map
    me = json.loads(linx("user", "show", str(os.getpid()), "--json").stdout)
    assert me["uid_map"] == [{"inside": 0, "outside": 0, "length": 4294967295}]


def test_user_map_errors():
    r = linx("user", "map", "9999999", "--map-uid", "0:1000:1")
    assert r.returncode == 1 and "set_uid_map failed on /proc/9999999/uid_map: ENOENT" in r.stderr
    r = linx("user", "map", str(os.getpid()), "--map-uid", "0:1000:1", "--setgroups", "sometimes")
    assert r.returncode == 2 and "sometimes" in r.stderr
    r = linx("user", "map", str(os.getpid()))
    assert r.returncode == 2 and "nothing to write" in r.stderr
    r = linx("user", "show", "9999999")
    assert r.returncode == 1 and "read_uid_map failed on /proc/9999999/uid_map: ENOENT" in r.stderr


def unprivileged_linx(drop):
    """How uid 4242 can run linx: the installed script, or (when the venv's interpreter lives
    where that uid cannot read, as under pyenv in /root) the system python of the same version
    on this checkout and the venv's site-packages."""
    from importlib.util import find_spec
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = os.pathsep.join(os.path.dirname(os.path.dirname(find_spec(m).origin)) for m in ("linx_core", "typer"))
    for argv in ([LINX], [f"/usr/bin/{version}", "-m", "linx_cli.main"]):
        cmd = [*drop, "env", f"PYTHONPATH={path}", *argv]
        if os.path.exists(argv[0]) and subprocess.run([*cmd, "--help"], capture_output=True).returncode == 0:
            return cmd
    pytest.skip("neither the checkout's interpreter nor the system one can run linx as uid 4242")


def test_rootless_map_root_user():
    """As an unprivileged uid: root inside is that uid outside (unshare -r)."""
    drop = ["setpriv", "--reuid", "4242", "--regid", "4242", "--clear-groups"]
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:     # reachable by uid 4242
        os.chmod(shared, 0o1777)
        snap = os.path.join(shared, "snap")
        linx_as_4242 = unprivileged_linx(drop)
        run = [*linx_as_4242, "run", "--ns", "user", "--map-root-user",
               "--checkpoint", SNAPSHOT.format(snap), "--", "id", "-u"]
        r = subprocess.run(run, capture_output=True, text=True, cwd="/",
                           env={**os.environ, "XDG_RUNTIME_DIR": shared})
        assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
        assert lines(snap) == [["0", "4242", "1"], ["0", "4242", "1"], ["deny"]]
        # a map the kernel refuses to an unprivileged writer aborts the workload before it runs
        marker = os.path.join(shared, "ran")
        r = subprocess.run([*linx_as_4242, "run", "--ns", "user", "--map-uid", "0:0:1", "--",
                            "touch", marker], capture_output=True, text=True, cwd="/",
                           env={**os.environ, "XDG_RUNTIME_DIR": shared})
        assert r.returncode == 125 and "set_uid_map failed" in r.stderr and "EPERM" in r.stderr, r.stderr
        assert not os.path.exists(marker)
