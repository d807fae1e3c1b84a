"""linx_core.process against the real kernel: the checkpoint, event order, signals, abort,
enter, and what happens when the agent dies."""
import os
import signal
import time

import pytest

from linx_core import process
from linx_core.errors import UsageError
from linx_core.process import Session, SessionError


def names(session):
    return [e["event"] for e in session.events_seen]


def gone(pid, within=3.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie still answers kill(0); it is gone for our purposes once not running
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_exited_event_order_and_child_pid():
    s = Session.spawn(["/bin/sh", "-c", "exit 7"], ["pid"])
    host = s.wait_ready()
    assert host > 1 and s.child_pid == 1
    s.proceed()
    assert s.wait() == {"event": "exited", "code": 7}
    assert names(s) == ["ready", "running", "exited"]
    assert s.info()["stage"] == "exited"


def test_signaled():
    s = Session.spawn(["/bin/sleep", "60"])
    s.wait_ready()
    s.proceed()
    assert s.next_event(5)["event"] == "ready"
    assert s.next_event(5)["event"] == "running"
    s.signal(signal.SIGTERM)
    assert s.wait(5) == {"event": "signaled", "signo": 15}
    assert names(s) == ["ready", "running", "signaled"]


def test_execve_error_is_the_only_terminal_event():
    s = Session.spawn(["/this/does/not/exist"])
    s.wait_ready()
    s.proceed()
    out = s.wait(5)
    assert out["event"] == "error" and out["stage"] == "execve" and out["errno"] == 2
    assert names(s) == ["ready", "error"]


def test_chdir_stage(tmp_path):
    s = Session.spawn(["/bin/true"])
    s.wait_ready()
    s.proceed(cwd=str(tmp_path / "missing"))
    out = s.wait(5)
    assert (out["event"], out["stage"], out["errno"]) == ("error", "chdir", 2)


def test_abort_at_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "ran"
    s = Session.spawn(["/bin/touch", str(marker)], ["net"])
    s.wait_ready()
    s.abort()
    assert s.wait(5) == {"event": "aborted"}
    assert names(s) == ["ready", "aborted"]
    assert not marker.exists()
    with pytest.raises(SessionError) as e:
        s.proceed()
    assert e.value.reason == "no_process"


def test_abort_before_ready_fires_at_ready(tmp_path):
    marker = tmp_path / "ran"
    s = Session.spawn(["/bin/touch", str(marker)])
    s.abort()                      # sent before the agent reported ready
    assert s.wait(5) == {"event": "aborted"}
    assert names(s) == ["ready", "aborted"]
    assert not marker.exists()


def test_abort_while_running_is_refused():
    s = Session.spawn(["/bin/sleep", "60"])
    s.wait_ready()
    s.proceed()
    while s.stage != "running":
        s.next_event(5)
    with pytest.raises(SessionError) as e:
        s.abort()
    assert e.value.reason == "running"
    s._send(process.protocol.encode(process.protocol.ABORT, []))   # the agent refuses it too
    assert s.next_event(5) == {"event": "refused", "request": 3, "errno": 16,
                               "message": "running: past the checkpoint, use a signal"}
    s.signal(9)
    assert s.wait(5)["event"] == "signaled"


def test_signals_at_checkpoint_are_buffered_and_delivered_in_order():
    # SIGCONT discards a pending SIGSTOP and SIGSTOP a pending SIGCONT, so only delivery in
    # the order sent (STOP, then CONT) lets the workload finish; reversed, it stays stopped.
    s = Session.spawn(["/bin/sh", "-c", "sleep 0.3; exit 5"])
    s.wait_ready()
    s.signal(signal.SIGSTOP)
    s.signal(signal.SIGCONT)
    s.proceed()
    assert s.wait(10) == {"event": "exited", "code": 5}
    assert names(s) == ["ready", "running", "exited"]


def test_signal_at_checkpoint_lands_after_exec():
    s = Session.spawn(["/bin/sleep", "60"])
    s.wait_ready()
    s.signal(signal.SIGTERM)
    time.sleep(0.1)
    assert s.stage == "ready"          # the parked child is untouched
    s.proceed()
    assert s.wait(5) == {"event": "signaled", "signo": 15}
    assert names(s) == ["ready", "running", "signaled"]


def test_killing_the_agent_kills_the_workload():
    s = Session.spawn(["/bin/sleep", "60"], ["pid", "net"])
    host = s.wait_ready()
    s.proceed()
    while s.stage != "running":
        s.next_event(5)
    os.kill(s.agent_pid, signal.SIGKILL)
    out = s.wait(5)
    assert out["event"] == "error" and out["stage"] == "agent_died"
    assert gone(host)


def test_killing_the_agent_while_parked_kills_the_child():
    s = Session.spawn(["/bin/sleep", "60"])
    host = s.wait_ready()
    os.kill(s.agent_pid, signal.SIGKILL)
    assert s.wait(5)["stage"] == "agent_died"
    assert gone(host)


def test_closing_the_library_side_kills_the_workload():
    s = Session.spawn(["/bin/sleep", "60"])
    host = s.wait_ready()
    s.proceed()
    s._sock.close()
    s._sock = None
    assert gone(host)
    s._reap_agent(block=True)


def test_enter_joins_the_target_namespaces(tmp_path):
    target = Session.spawn(["/bin/sleep", "60"], ["net", "uts"])
    tpid = target.wait_ready()
    target.proceed()
    out = tmp_path / "ns"
    probe = Session.enter(tpid, ["/bin/sh", "-c", f"readlink /proc/self/ns/net > {out}"])
    assert sorted(probe.namespaces) == ["net", "uts"]
    probe.wait_ready()
    probe.proceed()
    assert probe.wait(5) == {"event": "exited", "code": 0}
    assert out.read_text().strip() == os.readlink(f"/proc/{tpid}/ns/net")
    target.close()


def test_enter_bogus_target_fails_at_open_ns_user():
    probe = Session.enter(99999999, ["/bin/true"])
    out = probe.wait(5)
    assert (out["event"], out["errno"], out["stage"]) == ("error", 2, "open_ns_user")


@pytest.mark.parametrize("kwargs, where", [
    ({"argv": []}, "argv"),
    ({"argv": "/bin/true"}, "argv"),
    ({"argv": [""]}, "argv[0]"),
    ({"argv": ["/bin/true"], "namespaces": ["typo"]}, "namespaces"),
    ({"argv": ["/bin/true"], "env": ["NOEQUALS"]}, "env"),
])
def test_validation_before_any_syscall(kwargs, where):
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(UsageError) as e:
        Session.spawn(**kwargs)
    assert e.value.where == where
    assert set(os.listdir("/proc/self/fd")) == before


def test_many_sessions_leave_no_fd_and_no_process():
    def fds():
        return sorted(os.listdir("/proc/self/fd"))
    s = Session.spawn(["/bin/true"], process.ALL)
    s.wait_ready(); s.proceed(); s.wait()
    before = fds()
    for _ in range(50):
        s = Session.spawn(["/bin/true"], process.ALL)
        s.wait_ready()
        s.proceed()
        assert s.wait(5) == {"event": "exited", "code": 0}
    assert fds() == before
    assert agents_of(os.getpid()) == []       # every agent reaped


def agents_of(ppid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    comm, rest = f.read().rsplit(")", 1)
            except OSError:
                continue
            if comm.endswith("(linx-agent") and int(rest.split()[1]) == ppid:
                out.append(int(d))
    return out
