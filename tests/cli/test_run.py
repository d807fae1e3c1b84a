"""`linx run` and `linx exec` as a shell user meets them."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import LINX, linx


def test_pid_namespace_with_fresh_proc():
    r = linx("run", "--ns", "pid,mount", "--mount-proc", "--", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    assert r.returncode == 0, r.stderr
    pid, nprocs = r.stdout.split()
    assert pid == "1" and int(nprocs) <= 3      # sh, ls, grep at most: only its own pid ns


def test_net_namespace_sees_only_lo_and_it_is_up():
    r = linx("run", "--ns", "net", "--", "ip", "-j", "link")
    links = json.loads(r.stdout)
    assert [l["ifname"] for l in links] == ["lo"]
    assert "UP" in links[0]["flags"]
    r = linx("run", "--ns", "net", "--no-lo", "--", "ip", "-j", "link")
    assert "UP" not in json.loads(r.stdout)[0]["flags"]


def test_hostname_in_new_uts_only():
    host = socket.gethostname()
    r = linx("run", "--ns", "uts", "--hostname", "linx-box", "--", "hostname")
    assert r.stdout.strip() == "linx-box"
    assert socket.gethostname() == host
    r = linx("run", "--hostname", "x", "--", "true")
    assert r.returncode == 2 and "--hostname" in r.stderr and "--ns uts" in r.stderr


def test_user_namespace_without_maps_is_nobody():
    assert linx("run", "--ns", "user", "--", "id", "-u").stdout.strip() == "65534"


def test_user_option():
    assert linx("run", "--user", "1234:4321", "--", "sh", "-c", "id -u; id -g; id -G").stdout.split() == ["1234", "4321", "4321"]
    r = linx("run", "--user", "bob", "--", "true")
    assert r.returncode == 2 and "--user" in r.stderr


@pytest.mark.parametrize("argv, status", [
    (["sh", "-c", "exit 7"], 7),
    (["sh", "-c", "kill -TERM $$"], 143),
    (["/nope"], 127),
    (["no-such-command-anywhere"], 127),
    (["true"], 0),
])
def test_exit_status(argv, status):
    assert linx("run", "--", *argv).returncode == status


def test_not_executable_is_126(tmp_path):
    f = tmp_path / "script"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(0o644)
    r = linx("run", "--", str(f))
    assert r.returncode == 126
    assert r.stderr.strip() == f'linx: execve "{f}": EACCES (Permission denied)'


def test_not_found_message():
    r = linx("run", "--", "/nope")
    assert r.stderr.strip() == 'linx: execve "/nope": ENOENT (No such file or directory)'


def test_bad_cwd_is_125_and_named(tmp_path):
    r = linx("run", "--cwd", str(tmp_path / "missing"), "--", "true")
    assert r.returncode == 125
    assert f'chdir "{tmp_path / "missing"}": ENOENT' in r.stderr


def test_env_and_clear_env():
    r = linx("run", "--clear-env", "--env", "A=1", "--env", "PATH=/usr/bin:/bin", "--", "env")
    assert sorted(r.stdout.split()) == ["A=1", "PATH=/usr/bin:/bin"]
    r = linx("run", "--env", "LINX_T=x", "--", "sh", "-c", "echo $LINX_T $HOME")
    assert r.stdout.split() == ["x", os.environ["HOME"]]


def test_no_new_privs():
    r = linx("run", "--no-new-privs", "--", "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "1"]
    r = linx("run", "--", "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "0"]


def read_events(path):
    return [json.loads(line) for line in open(path)]


@pytest.mark.parametrize("args, expected", [
    (["--", "true"], ["ready", "running", "exited"]),
    (["--", "sh", "-c", "kill -KILL $$"], ["ready", "running", "signaled"]),
    (["--", "/nope"], ["ready", "error"]),
    (["--checkpoint", "false", "--", "true"], ["ready", "aborted"]),
])
def test_events_order_with_exactly_one_terminal(tmp_path, args, expected):
    ev = tmp_path / "events"
    linx("run", "--events", ev, *args)
    got = [e["event"] for e in read_events(ev)]
    assert got == expected
    assert sum(e in ("exited", "signaled", "aborted", "error") for e in got) == 1


def test_checkpoint_abort_means_the_child_never_runs(tmp_path):
    marker = tmp_path / "marker"
    r = linx("run", "--ns", "net", "--checkpoint", "exit 3", "--", "touch", marker)
    assert r.returncode == 125
    assert 'checkpoint step "hooks[0]" failed: hook \'exit 3\' exited with status 3' in r.stderr
    assert not marker.exists()


def test_checkpoint_sees_the_parked_child(tmp_path):
    out = tmp_path / "out"
    r = linx("run", "--ns", "net", "--checkpoint",
             f"readlink /proc/$LINX_PID/ns/net > {out}; cat /proc/$LINX_PID/comm >> {out}",
             "--", "readlink", "/proc/self/ns/net")
    assert r.returncode == 0
    ns_at_checkpoint, comm = out.read_text().split()
    assert ns_at_checkpoint == r.stdout.strip()
    assert comm == "linx-agent"          # parked: the workload has not been exec'd yet


def test_exec_joins_netns_and_cgroup_of_target(tmp_path):
    ev = tmp_path / "ev"
    target = subprocess.Popen([LINX, "run", "--ns", "net,uts", "--hostname", "tgt", "--events", ev,
                               "--env", "MARK=target", "--", "sleep", "60"])
    try:
        for _ in range(100):
            if ev.exists() and any(e["event"] == "running" for e in read_events(ev)):
                break
            time.sleep(0.05)
        pid = read_events(ev)[0]["host_pid"]
        r = linx("exec", "--target", pid, "--", "sh", "-c", "readlink /proc/self/ns/net; hostname; cat /proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0] == os.readlink(f"/proc/{pid}/ns/net")
        assert lines[1] == "tgt"
        r = linx("exec", "--target", f"pid:{pid}", "--ns", "net", "--", "hostname")
        assert r.stdout.strip() == socket.gethostname()
        r = linx("exec", "--target", pid, "--env-from-target", "--", "sh", "-c", "echo $MARK")
        assert r.stdout.strip() == "target"
    finally:
        target.terminate()
        assert target.wait(10) == 143


def test_exec_bad_target():
    r = linx("exec", "--target", "99999999", "--", "true")
    assert r.returncode == 125 and "open_ns" in r.stderr
    r = linx("exec", "--target", "not/a/target", "--", "true")
    assert r.returncode == 2 and "--target" in r.stderr


def test_sigterm_to_linx_reaches_the_workload():
    p = subprocess.Popen([LINX, "run", "--", "sleep", "60"])
    time.sleep(0.5)
    p.terminate()
    assert p.wait(10) == 143


def test_hundred_runs_leave_nothing_behind():
    def agents():
        """Live agents (a detached one's zombie waits for init, which may not reap it here)."""
        ps = subprocess.run(["ps", "-C", "linx-agent", "-o", "pid=,stat="], capture_output=True, text=True)
        return sorted(line.split()[0] for line in ps.stdout.splitlines() if "Z" not in line.split()[1])
    def sessions():
        return sorted(os.listdir("/run/linx")) if os.path.exists("/run/linx") else []
    before_fds, before_sessions, before_agents = sorted(os.listdir("/proc/self/fd")), sessions(), agents()
    for _ in range(100):
        assert linx("run", "--ns", "all", "--", "true").returncode == 0
    assert agents() == before_agents
    assert sorted(os.listdir("/proc/self/fd")) == before_fds
    assert sessions() == before_sessions


def test_help_does_not_import_rich_or_the_library():
    code = ("import sys; from linx_cli import main; "
            "sys.argv=['linx','--help']\n"
            "try: main.main()\nexcept SystemExit: pass\n"
            "bad=[m for m in sys.modules if m.startswith(('rich','linx_core.netlink','linx_core.netfilter'))]\n"
            "print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().endswith("[]")
    code = code.replace("'--help'", "'run','--',  'true'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().endswith("[]")


def test_top_level_help_matches_each_command():
    from linx_cli.main import COMMANDS
    import importlib
    for name, (module, text) in COMMANDS.items():
        module, _, attr = module.partition(":")
        app = getattr(importlib.import_module(module), attr or "app")
        assert app.info.help == text, name


def test_exec_joins_the_targets_cgroup(tmp_path):
    cg = f"linx-test-exec-{os.getpid()}"
    ev = tmp_path / "ev"
    target = subprocess.Popen([LINX, "run", "--cgroup", cg, "--ns", "net", "--events", ev, "--", "sleep", "30"])
    try:
        for _ in range(100):
            if ev.exists() and '"running"' in ev.read_text():
                break
            time.sleep(0.05)
        pid = read_events(ev)[0]["host_pid"]
        r = linx("exec", "--target", pid, "--", "grep", "^0::", "/proc/self/cgroup")
        assert r.stdout.strip() == f"0::/{cg}"
        r = linx("exec", "--target", pid, "--no-cgroup", "--", "grep", "^0::", "/proc/self/cgroup")
        assert r.stdout.strip() != f"0::/{cg}"
    finally:
        target.terminate()
        target.wait(10)
