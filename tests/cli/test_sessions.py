"""Sessions, PTYs and attach, driven through real PTYs with pexpect (issue: sessions)."""
import json
import os
import pwd
import stat
import subprocess
import time
import uuid

import pexpect
import pytest

from conftest import LINX, linx


@pytest.fixture
def name():
    n = f"t-{uuid.uuid4().hex[:6]}"
    yield n
    linx("rm", "-f", n)


@pytest.fixture
def shell():
    """A host shell in a real PTY, as a person's terminal."""
    sh = pexpect.spawn("/bin/bash", ["--norc", "--noprofile"], encoding="utf-8", timeout=10,
                       dimensions=(30, 100))
    sh.sendline("PS1='host'$((6-5))'$ '")     # not exported: workloads keep their own prompt
    sh.expect_exact("host1$ ")
    yield sh
    sh.close(force=True)


def state(n):
    return json.loads(linx("inspect", n, "--json").stdout)


def last_status(sh) -> int:
    sh.sendline("echo status=$?")
    sh.expect(r"status=(\d+)\r")
    return int(sh.match.group(1))


def test_detached_session_lifecycle(name):
    r = linx("run", "-d", "--name", name, "--", "sh", "-c", "echo out-line; sleep 60")
    assert r.returncode == 0 and r.stdout.strip() == name
    st = state(name)
    assert st["status"] == "running" and st["argv"] == ["sh", "-c", "echo out-line; sleep 60"]
    assert st["ns"]["net"] == os.stat(f"/proc/{st['host_pid']}/ns/net").st_ino
    d = f"/run/linx/{name}"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f"{d}/ctl.sock").st_mode) == 0o600
    assert name in linx("ps", "-q").stdout.split()
    for _ in range(50):                               # the agent logs as the output comes
        if linx("logs", name).stdout:
            break
        time.sleep(0.1)
    assert linx("logs", name).stdout == "out-line\n"
    r = linx("rm", name)
    assert r.returncode == 2 and "running" in r.stderr
    assert linx("run", "-d", "--name", name, "--", "true").returncode == 2   # name in use
    assert linx("kill", "-s", "KILL", name).returncode == 0
    assert linx("wait", name).returncode == 137
    assert state(name)["status"] == "signaled"
    assert name not in linx("ps", "-q").stdout.split()
    assert name in linx("ps", "-a", "-q").stdout.split()
    assert linx("wait", name).returncode == 137          # still readable after the end
    assert linx("rm", name).returncode == 0
    assert not os.path.exists(d)


def test_setup_failure_leaves_no_session(name):
    r = linx("run", "-d", "--name", name, "--checkpoint", "false", "--", "sleep", "60")
    assert r.returncode == 125
    assert not os.path.exists(f"/run/linx/{name}")
    r = linx("run", "-d", "--name", name, "--", "/nope")
    assert r.returncode == 127 and not os.path.exists(f"/run/linx/{name}")
    assert linx("run", "--name", "bad/name", "--", "true").returncode == 2


def test_attach_detach_reattach_exit_status(name, shell):
    assert linx("run", "-dt", "--name", name, "--", "sh").returncode == 0
    shell.sendline("stty -g > /tmp/linx-stty-before-" + name)
    shell.expect_exact("host1$ ")
    shell.sendline(f"{LINX} attach {name}")
    time.sleep(0.3)
    shell.sendline("echo hi$((40+2))")
    shell.expect_exact("hi42")
    shell.sendline("stty size")
    shell.expect_exact("30 100")
    shell.setwinsize(41, 123)
    time.sleep(0.3)
    shell.sendline("stty size")
    shell.expect_exact("41 123")
    shell.send("\x10\x11")                                   # ctrl-p ctrl-q
    shell.expect_exact("host1$ ")
    shell.sendline(f"stty -g | cmp - /tmp/linx-stty-before-{name} && echo SAME-$((1))-TTY")
    shell.expect_exact("SAME-1-TTY")
    assert state(name)["status"] == "running"
    shell.sendline(f"{LINX} attach {name}")
    time.sleep(0.3)
    shell.sendline("exit 3")
    shell.expect_exact("host1$ ")
    assert last_status(shell) == 3
    assert linx("wait", name).returncode == 3
    os.unlink(f"/tmp/linx-stty-before-{name}")


def test_ctrl_c_goes_to_the_workload(name, shell):
    shell.sendline(f"{LINX} run -t --name {name} -- sh")
    time.sleep(0.5)
    shell.sendline("sleep 100")
    time.sleep(0.3)
    shell.sendintr()
    shell.sendline("echo after-$?-sleep")
    shell.expect_exact("after-130-sleep")
    shell.sendline("echo still-$((1))-here")
    shell.expect_exact("still-1-here")
    shell.sendline("exit 0")
    shell.expect_exact("host1$ ")
    assert last_status(shell) == 0


def test_detach_keys_literal_and_held_prefix(name, shell):
    assert linx("run", "-dt", "--name", name, "--", "sh", "-c",
                "stty raw -echo; head -c 16 | od -An -tx1").returncode == 0
    shell.sendline(f"{LINX} attach {name}")
    time.sleep(0.3)
    shell.send("\x10x")             # ctrl-p then x: both reach the workload
    shell.send("\x10\x10")          # ctrl-p twice: one ctrl-p
    shell.send("y" * 13)
    shell.expect_exact("host1$ ")    # 16 bytes: the workload ends, attach returns
    assert linx("wait", name).returncode == 0
    assert linx("logs", name).stdout.split() == ["10", "78", "10"] + ["79"] * 13


def test_two_clients_see_the_same_output(name):
    assert linx("run", "-dt", "--name", name, "--", "sh").returncode == 0
    a = pexpect.spawn(LINX, ["attach", name], encoding="utf-8", timeout=10)
    b = pexpect.spawn(LINX, ["attach", name], encoding="utf-8", timeout=10)
    time.sleep(0.5)
    a.sendline("echo from-a-$((6*7))")
    a.expect_exact("from-a-42")
    b.expect_exact("from-a-42")
    a.send("\x10\x11")
    a.expect(pexpect.EOF)
    a.close()
    assert a.exitstatus == 0
    b.sendline("echo from-b-$((5*5))")
    b.expect_exact("from-b-25")
    b.sendline("exit 4")
    b.expect(pexpect.EOF)
    b.close()
    assert b.exitstatus == 4


def test_attach_without_a_terminal_pipes_bytes(name):
    assert linx("run", "-dt", "--name", name, "--", "sh").returncode == 0
    r = subprocess.run([LINX, "attach", name], input="echo piped-$((1+1))\nexit 5\n", text=True,
                       capture_output=True, timeout=10)
    assert "piped-2" in r.stdout and r.returncode == 5


def test_killing_the_attach_client_leaves_the_workload(name):
    assert linx("run", "-dt", "--name", name, "--", "sh").returncode == 0
    a = pexpect.spawn(LINX, ["attach", name], timeout=10)
    time.sleep(0.3)
    a.kill(9)
    a.close(force=True)
    time.sleep(0.2)
    assert state(name)["status"] == "running"


def test_killing_the_agent_kills_the_workload_and_marks_failed(name):
    assert linx("run", "-d", "--name", name, "--", "sleep", "60").returncode == 0
    st = state(name)
    os.kill(st["agent_pid"], 9)
    time.sleep(0.3)
    assert not os.path.exists(f"/proc/{st['host_pid']}") or \
        open(f"/proc/{st['host_pid']}/stat").read().split(") ")[1][0] == "Z"
    ps = json.loads(linx("ps", "--json").stdout)
    assert [s["status"] for s in ps if s["name"] == name] == ["failed"]


def test_non_root_cannot_attach(name):
    assert linx("run", "-dt", "--name", name, "--", "sh").returncode == 0
    nobody = pwd.getpwnam("nobody")
    code = (f"import socket; s=socket.socket(socket.AF_UNIX); "
            f"s.connect('/run/linx/{name}/ctl.sock')")
    r = subprocess.run(["python3", "-c", code], capture_output=True, text=True,
                       user=nobody.pw_uid, group=nobody.pw_gid)
    assert r.returncode != 0 and "PermissionError" in r.stderr


def test_restart_on_failure(name, tmp_path):
    counter = tmp_path / "n"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]"
    r = linx("run", "--name", name, "--restart", "on-failure", "--", "sh", "-c", script)
    assert r.returncode == 0
    assert counter.read_text().strip() == "3"
    st = state(name)
    assert st["status"] == "exited" and st["exit_code"] == 0 and st["restarts"] == 2


def test_restart_max_and_detached(name, tmp_path):
    counter = tmp_path / "n"
    r = linx("run", "-d", "--name", name, "--restart", "always", "--max-restarts", "2", "--",
             "sh", "-c", f"echo x >> {counter}; exit 1")
    assert r.returncode == 0
    assert linx("wait", name).returncode == 1
    assert counter.read_text().count("x") == 3 and state(name)["restarts"] == 2
    assert linx("run", "--restart", "sometimes", "--", "true").returncode == 2


def test_exec_into_session_by_name_with_a_pty(name, shell):
    assert linx("run", "-d", "--name", name, "--ns", "net,uts", "--hostname", "inside", "--", "sleep", "60").returncode == 0
    ex = f"{name}-x"
    try:
        shell.sendline(f"{LINX} exec --target {name} -t --name {ex} -- sh")
        time.sleep(0.5)
        shell.sendline("hostname")
        shell.expect_exact("inside")
        shell.send("\x10\x11")
        shell.expect_exact("host1$ ")
        assert state(ex)["status"] == "running"
        shell.sendline(f"{LINX} attach {ex}")
        time.sleep(0.3)
        shell.sendline("exit 6")
        shell.expect_exact("host1$ ")
        assert last_status(shell) == 6
    finally:
        linx("rm", "-f", ex)


def test_logs_follow(name):
    assert linx("run", "-d", "--name", name, "--", "sh", "-c",
                "echo one; sleep 0.5; echo two; sleep 0.5; echo three").returncode == 0
    r = linx("logs", "-f", name, timeout=20)
    assert r.stdout.split() == ["one", "two", "three"]
