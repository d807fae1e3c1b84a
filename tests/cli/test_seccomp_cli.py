"""`linx seccomp` and `linx run --seccomp*` as a shell user meets them: the workload's fate is
the oracle, and the kernel's own copy of the filter (PTRACE_SECCOMP_GET_FILTER via
`linx seccomp show`) for what was installed."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import LINX, linx

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seccomp")
DOCKER = os.path.join(DATA, "docker-default.json")


def test_allow_list_without_read_is_sigsys():
    r = linx("run", "--no-new-privs", "--seccomp-allow", "write,openat,close,exit_group", "--",
             "sh", "-c", "read x")
    assert r.returncode == 159


def test_deny_with_errno_and_the_workload_continues(tmp_path):
    r = linx("run", "--no-new-privs", "--seccomp-deny", "mkdir,mkdirat", "--seccomp-errno", "EPERM", "--",
             "sh", "-c", f"mkdir {tmp_path}/d || echo failed; echo continued")
    assert r.returncode == 0 and r.stdout.split() == ["failed", "continued"]
    assert "Operation not permitted" in r.stderr and not (tmp_path / "d").exists()


def test_docker_profile_follows_the_caps_kept():
    """Without CAP_SYS_ADMIN the profile's unshare rule is excluded: EPERM from the filter,
    where the same workload without the filter succeeds."""
    argv = ["--", "unshare", "--user", "true"]
    assert linx("run", "--cap-drop", "sys_admin", *argv).returncode == 0
    r = linx("run", "--no-new-privs", "--cap-drop", "sys_admin", "--seccomp", DOCKER, *argv)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr
    assert linx("run", "--no-new-privs", "--seccomp", DOCKER, *argv).returncode == 0
    assert linx("run", "--no-new-privs", "--seccomp", DOCKER, "--", "ls", "/").returncode == 0


def test_compile_disasm_and_run_the_file(tmp_path):
    spec = tmp_path / "f.json"
    spec.write_text(json.dumps({"default": "allow", "rules": [
        {"action": "errno(EROFS)", "syscalls": ["mkdir", "mkdirat"]},
        {"action": "errno(EAFNOSUPPORT)", "syscalls": ["socket"], "args": [{"arg": 0, "op": "==", "value": 40}]}]}))
    out = tmp_path / "f.bpf"
    r = linx("seccomp", "compile", spec, "-o", out)
    assert r.returncode == 0 and out.stat().st_size % 8 == 0
    stdout = subprocess.run([LINX, "seccomp", "compile", str(spec), "-o", "-"], capture_output=True).stdout
    assert stdout == out.read_bytes()
    listing = linx("seccomp", "disasm", out).stdout
    assert "(mkdir)" in listing and "errno(EROFS): mkdir, mkdirat" in listing
    assert "depends on arguments: socket" in listing
    doc = json.loads(linx("seccomp", "disasm", out, "--json").stdout)
    assert doc["default"] == "allow" and doc["actions"] == {"errno(EROFS)": ["mkdir", "mkdirat"]}
    r = linx("run", "--no-new-privs", "--seccomp", out, "--", "sh", "-c", f"mkdir {tmp_path}/d")
    assert r.returncode == 1 and "Read-only file system" in r.stderr


def test_compile_warns_when_execve_is_denied(tmp_path):
    spec = tmp_path / "f.json"
    spec.write_text('{"default": "kill_process", "rules": [{"action": "allow", "syscalls": ["read"]}]}')
    r = linx("seccomp", "compile", spec, "-o", tmp_path / "f.bpf")
    assert r.returncode == 0 and "denies execve" in r.stderr


def test_import_then_compile_is_the_same_filter(tmp_path):
    spec = tmp_path / "spec.json"
    r = linx("seccomp", "import", DOCKER, "--caps", "sys_ptrace", "-o", spec)
    assert r.returncode == 0 and "not x86_64 syscalls" in r.stderr or "not aarch64" in r.stderr
    doc = json.loads(spec.read_text())
    assert doc["default"] == "errno(EPERM)" and all("action" in x for x in doc["rules"])
    a, b = tmp_path / "a.bpf", tmp_path / "b.bpf"
    assert linx("seccomp", "compile", DOCKER, "--caps", "sys_ptrace", "-o", a).returncode == 0
    assert linx("seccomp", "compile", spec, "-o", b).returncode == 0
    sa = json.loads(linx("seccomp", "disasm", a, "--json").stdout)
    sb = json.loads(linx("seccomp", "disasm", b, "--json").stdout)
    assert sa["actions"] == sb["actions"] and sa["by_arguments"] == sb["by_arguments"]
    assert "ptrace" in sa["actions"]["allow"] and "mount" not in sa["actions"]["allow"]


def test_show_reads_the_kernel_copy(tmp_path):
    spec = tmp_path / "f.json"
    spec.write_text('{"default": "allow", "rules": [{"action": "errno(EPERM)", "syscalls": ["ptrace"]}]}')
    compiled = tmp_path / "f.bpf"
    linx("seccomp", "compile", spec, "-o", compiled, check=True)
    p = subprocess.Popen([LINX, "run", "--no-new-privs", "--seccomp", str(compiled), "--", "sleep", "20"])
    try:
        pid = None
        for _ in range(100):
            kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            for agent in kids:
                sleeper = subprocess.run(["pgrep", "-P", agent, "-x", "sleep"], capture_output=True,
                                         text=True).stdout.split()
                pid = int(sleeper[0]) if sleeper else None
            if pid:
                break
            time.sleep(0.05)
        assert pid
        doc = json.loads(linx("seccomp", "show", pid, "--json", "--disasm").stdout)
        assert (doc["mode"], doc["filters"], doc["no_new_privs"]) == ("filter", 1, True)
        prog = doc["programs"][0]
        assert prog["default"] == "allow" and prog["actions"] == {"errno(EPERM)": ["ptrace"]}
        assert prog["listing"] == json.loads(linx("seccomp", "disasm", compiled, "--json").stdout)["listing"]
        text = linx("seccomp", "show", pid).stdout
        assert text.startswith(f"pid {pid}: seccomp filter, 1 filter(s), no_new_privs on")
    finally:
        p.terminate()
        p.wait(timeout=10)
    assert linx("seccomp", "show", os.getpid()).stdout.startswith(f"pid {os.getpid()}: seccomp disabled")


@pytest.mark.parametrize("content, where", [
    ('{"default": "allow", "rules": [{"action": "allow", "syscalls": ["not_a_syscall"]}]}',
     "unknown syscall 'not_a_syscall'"),
    ('{"default": "allow", "rules": [{"action": "deny", "syscalls": ["read"]}]}', "bad action 'deny'"),
    ('{"default": "kill", "rules": [{"action": "allow", "syscalls": ["read", "read"]}]}', "duplicate rule for read"),
    ('{"default": "allow", "rules": [', "not valid JSON"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}',
     "unknown action 'SCMP_ACT_NOPE'"),
])
def test_bad_input_is_exit_2_naming_the_file(tmp_path, content, where):
    path = tmp_path / "bad.json"
    path.write_text(content)
    r = linx("seccomp", "compile", path, "-o", tmp_path / "out")
    assert r.returncode == 2 and str(path) in r.stderr and where in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    r = linx("run", "--no-new-privs", "--seccomp", path, "--", "true")
    assert r.returncode == 2 and where in r.stderr, r.stderr


def test_bad_flags_are_exit_2():
    for argv, text in ((["--seccomp-allow", "read,nope"], "unknown syscall 'nope'"),
                       (["--seccomp-errno", "EPERM"], "--seccomp-errno"),
                       (["--seccomp-deny", "mkdir", "--seccomp-errno", "EWHAT"], "unknown errno"),
                       (["--seccomp-allow", "read", "--seccomp-deny", "read"], "read"),
                       (["--user", "1000", "--seccomp-deny", "mkdir"], "--no-new-privs")):
        r = linx("run", *argv, "--", "true")
        assert r.returncode == 2 and text in r.stderr, (argv, r.stderr)


def test_too_long_for_the_kernel(tmp_path):
    rules = [{"action": "errno(EPERM)", "syscalls": ["ioctl"], "args": [{"arg": 1, "op": "==", "value": i}]}
             for i in range(1100)]
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps({"default": "allow", "rules": rules}))
    r = linx("seccomp", "compile", spec, "-o", tmp_path / "out")
    assert r.returncode == 2 and "the kernel's limit is 4096 (BPF_MAXINSNS)" in r.stderr


def test_help_does_not_load_the_compiler():
    code = ("import sys\nfrom linx_cli.main import main\ntry:\n    main(['seccomp', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('linx_core')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "linx_core.seccomp" not in out.splitlines()[-1]


def test_record_then_enforce(tmp_path):
    """A profile recorded from `ls /` lets `ls /` run as before, and kills a workload that
    calls a syscall ls never used (mkdir)."""
    prof = tmp_path / "ls.json"
    r = linx("seccomp", "record", "-o", prof, "--", "ls", "/")
    assert r.returncode == 0 and "recorded" in r.stderr
    doc = json.loads(prof.read_text())
    assert doc["defaultAction"] == "SCMP_ACT_KILL_PROCESS" and "getdents64" in doc["syscalls"][0]["names"]
    plain = subprocess.run(["ls", "/"], capture_output=True, text=True).stdout
    r = linx("run", "--no-new-privs", "--seccomp", prof, "--", "ls", "/")
    assert r.returncode == 0 and r.stdout == plain
    r = linx("run", "--no-new-privs", "--seccomp", prof, "--", "mkdir", tmp_path / "d")
    assert r.returncode == 159 and not (tmp_path / "d").exists()


def test_record_status_and_errors(tmp_path):
    prof = tmp_path / "p.json"
    assert linx("seccomp", "record", "-o", prof, "--", "sh", "-c", "exit 3").returncode == 3
    assert prof.exists()
    r = linx("seccomp", "record", "--default", "errno(ENOSYS)", "-o", prof, "--", "true")
    assert r.returncode == 0 and json.loads(prof.read_text())["defaultErrnoRet"] == 38
    r = linx("seccomp", "record", "--default", "trace", "-o", prof, "--", "true")
    assert r.returncode == 2 and "--default" in r.stderr
    r = linx("seccomp", "record", "--user", "1000", "-o", prof, "--", "true")
    assert r.returncode == 2 and "--no-new-privs" in r.stderr
