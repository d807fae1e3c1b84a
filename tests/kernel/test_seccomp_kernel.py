"""Filters installed by the agent at the checkpoint, judged by what the kernel does to the
workload, and read back from the kernel with PTRACE_SECCOMP_GET_FILTER."""
import json
import os

import pytest

from linx_core import seccomp
from linx_core.errors import LinxError
from linx_core.process import Session
from linx_core.seccomp import profile, proc, rules

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seccomp")
ALL_CAPS = {"CAP_SYS_ADMIN"}


def run(plan, argv, wait=True, **extra):
    s = Session.spawn(argv)
    pid = s.wait_ready()
    s.proceed(**plan.settings(pid, ALL_CAPS, True), **extra)
    return (s, s.wait(timeout=20)) if wait else (s, pid)


def spec_file(tmp_path, ruleset, name="f.json"):
    path = tmp_path / name
    path.write_text(json.dumps(profile.to_spec(ruleset)))
    return str(path)


def test_allow_list_without_read_kills_with_sigsys():
    """The seed's example: write, openat, close, exit_group only; no execve, yet the shell
    starts (the exec gate) and dies on a syscall the list lacks."""
    plan = seccomp.plan(allow="write,openat,close,exit_group", no_new_privs=True)
    s, outcome = run(plan, ["/bin/sh", "-c", "read x"], no_new_privs=True)
    assert "running" in [e["event"] for e in s.events_seen]
    assert outcome == {"event": "signaled", "signo": 31}


def test_deny_list_errno_and_the_workload_goes_on(tmp_path):
    plan = seccomp.plan(deny="mkdir,mkdirat", errno="EACCES", no_new_privs=True)
    out = tmp_path / "out"
    s, outcome = run(plan, ["/bin/sh", "-c", f"mkdir {tmp_path}/d 2>/dev/null; echo $? > {out}; "
                                             f"/usr/bin/python3 -c 'import os\ntry: os.mkdir(\"{tmp_path}/e\")\n"
                                             f"except OSError as e: print(e.errno)' >> {out}"],
                     no_new_privs=True)
    assert outcome == {"event": "exited", "code": 0}
    assert out.read_text().split() == ["1", "13"]       # mkdir(1) failed; errno EACCES
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_exec_gate_lets_only_the_agent_exec(tmp_path):
    """The Docker default profile without execve: the shell itself starts, but its own exec of
    /bin/true gets the profile's default, EPERM (sh: 126), and it goes on to write the status."""
    with open(os.path.join(DATA, "docker-default.json")) as f:
        ruleset, _ = profile.from_docker(json.load(f), caps=ALL_CAPS)
    ruleset = rules.Ruleset(ruleset.arch, ruleset.default,
                            tuple(r for r in ruleset.rules if r.syscall not in ("execve", "execveat")))
    plan = seccomp.plan(spec_file(tmp_path, ruleset), no_new_privs=True)
    out = tmp_path / "out"
    s, outcome = run(plan, ["/bin/sh", "-c", f"/bin/true; echo $? > {out}"], no_new_privs=True)
    assert outcome == {"event": "exited", "code": 0}
    assert out.read_text().strip() == "126"


def test_long_filter_over_255_instructions(tmp_path):
    """600+ instructions: far branches go through ja stubs; the kernel accepts it and it works."""
    names = [n for n in rules.syscalls.table(rules.syscalls.host_arch())
             if n not in ("mkdir", "execve", "write", "exit_group", "rt_sigreturn")][:120]
    rs = rules.build([("errno(EPERM)", n, (rules.cond(0, "==", 0xDEAD0000 + i),)) for i, n in enumerate(names)]
                     + [("errno(EXDEV)", "mkdir")], "allow")
    assert len(seccomp.compile_ruleset(rs)) // 8 > 255
    out = tmp_path / "out"
    plan = seccomp.plan(spec_file(tmp_path, rs), no_new_privs=True)
    s, outcome = run(plan, ["/usr/bin/python3", "-c", f"import os\ntry: os.mkdir('{tmp_path}/d')\n"
                                             f"except OSError as e: open('{out}', 'w').write(str(e.errno))"],
                     no_new_privs=True)
    assert outcome == {"event": "exited", "code": 0}
    assert out.read_text() == "18"                      # EXDEV, from the filter's last leaf


def test_kernel_holds_exactly_the_compiled_program(tmp_path):
    """A filter that allows execve gets no gate: the kernel's copy is the compiled bytes."""
    plan = seccomp.plan(deny="ptrace,kexec_load", no_new_privs=True)
    s, pid = run(plan, ["sleep", "30"], wait=False, no_new_privs=True)
    with s:
        while s.stage != "running" and s.outcome is None:
            s.next_event(timeout=10)
        assert proc.status(pid) == {"pid": pid, "mode": "filter", "filters": 1, "no_new_privs": True}
        assert proc.filters(pid) == [seccomp.compile_ruleset(plan.value)]


def test_compiled_bpf_file_is_installed_as_written(tmp_path):
    path = tmp_path / "f.bpf"
    path.write_bytes(seccomp.compile_ruleset(rules.deny_list(["mkdir"], "errno(ENOSPC)")))
    plan = seccomp.plan(str(path), no_new_privs=True)
    assert plan.kind == "bpf"
    s, pid = run(plan, ["sleep", "30"], wait=False, no_new_privs=True)
    with s:
        while s.stage != "running" and s.outcome is None:
            s.next_event(timeout=10)
        assert proc.filters(pid) == [path.read_bytes()]


def test_no_new_privs_or_cap_sys_admin_is_required():
    plan = seccomp.plan(allow="read,write,exit_group")
    s = Session.spawn(["true"])
    pid = s.wait_ready()
    with s:
        with pytest.raises(LinxError, match="needs CAP_SYS_ADMIN.*--no-new-privs"):
            plan.settings(pid, set(), False)
    # root with CAP_SYS_ADMIN may install without it, as the kernel allows
    s, outcome = run(seccomp.plan(deny="mkdir"), ["true"])
    assert outcome == {"event": "exited", "code": 0}


def test_status_of_a_process_without_filters():
    assert proc.status(os.getpid())["mode"] == "disabled"


def _strace_names(argv, tmp_path) -> set:
    """strace -f: the reference for what a command calls."""
    log = tmp_path / "strace.log"
    import subprocess
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), *argv], check=True, capture_output=True)
    import re
    return {m.group(1) for m in (re.match(r"(?:\d+ +)?([a-z0-9_]+)\(", line) for line in log.read_text().splitlines())
            if m}


@pytest.mark.skipif(not __import__("shutil").which("strace"), reason="strace missing")
def test_record_sees_what_strace_sees(tmp_path):
    """The agent's recording of `ls /` (USER_NOTIF, each syscall reported once) is the set
    strace -f reports for the same command; the agent's own calls before execve are not in it."""
    s = Session.spawn(["ls", "/"])
    pid = s.wait_ready()
    s.proceed(**seccomp.record_settings(pid))
    assert s.wait(timeout=20) == {"event": "exited", "code": 0}
    events = [e for e in s.events_seen if e["event"] == "syscall"]
    assert len(events) == len({(e["arch"], e["nr"]) for e in events})        # first sight only
    assert seccomp.recorded(events) == _strace_names(["ls", "/"], tmp_path)
    assert "setresuid" not in seccomp.recorded(events)
