"""What `linx run` and `linx exec` share: drive a parked session through the checkpoint to
its outcome, report events, and turn the outcome into the exit status a shell expects."""
import errno
import os
import signal
import sys

# exit statuses for failures before the workload ran (docker/podman's convention)
FAILED_BEFORE_START, NOT_EXECUTABLE, NOT_FOUND = 125, 126, 127


def exit_status(outcome: dict) -> int:
    """exited -> its code; signaled -> 128+N; execve ENOENT -> 127, other execve errors -> 126;
    any other failure before the workload ran (abort included) -> 125."""
    kind = outcome["event"]
    if kind == "exited":
        return outcome["code"]
    if kind == "signaled":
        return 128 + outcome["signo"]
    if kind == "error" and outcome["stage"] == "execve":
        return NOT_FOUND if outcome["errno"] in (errno.ENOENT, errno.ENOTDIR) else NOT_EXECUTABLE
    return FAILED_BEFORE_START


def error_line(outcome: dict, argv0: str, settings: dict) -> str:
    """`execve "/nope": ENOENT (No such file or directory)`: what failed, on what, and why."""
    from linx_core.errors import errno_text
    stage, err = outcome["stage"], outcome["errno"]
    obj = {"execve": argv0, "chdir": settings.get("cwd"),
           "hostname": settings.get("hostname")}.get(stage)
    text = f"{stage} {obj!r}".replace("'", '"') if obj else stage
    if outcome.get("message") and stage != "execve":
        text += f" ({outcome['message']})"
    return f"{text}: {errno_text(err)}"


class EventLog:
    """--events FILE: one JSON object per line per event; `-` is stderr."""

    def __init__(self, path: str | None):
        self.out = None
        if path == "-":
            self.out = sys.stderr
        elif path:
            self.out = open(path, "a", buffering=1)

    def __call__(self, event: dict) -> None:
        if self.out is not None:
            import json
            import time
            self.out.write(json.dumps({**event, "time": round(time.time(), 6)}) + "\n")
            self.out.flush()


def drive(session, settings, at_checkpoint=None, follow=None) -> int:
    """ready -> host-side steps -> proceed -> follow(session) -> exit status. settings: the
    child-side settings, or a function of the host pid that computes them at the checkpoint.
    follow returns the terminal event, or None when we leave the workload running (detach);
    the default waits. SIGTERM/SIGHUP to linx go to the workload; the terminal's SIGINT
    reaches it directly."""
    from linx_core.errors import LinxError

    def forward(signo, _frame):
        if session.outcome is None:
            session.signal(signo)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old[signal.SIGQUIT] = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    child: dict = {}
    try:
        try:
            host_pid = session.wait_ready()
        except LinxError:
            host_pid = None
        if host_pid is not None:
            failure = rollback = None
            try:
                if at_checkpoint:
                    at_checkpoint(host_pid)
                child = settings(host_pid) if callable(settings) else settings
            except LinxError as e:
                failure, rollback = str(e), getattr(e, "rollback", None)
            if failure:
                session.abort()
                session.wait()
                if rollback:
                    rollback()          # after the child is gone: it held the cgroup
                print(f"linx: {failure}", file=sys.stderr)
                return FAILED_BEFORE_START
            if follow is not None and session.pty:
                session.attach()      # before proceed: not one byte of output is missed
            session.proceed(**child)
        outcome = follow(session) if follow is not None and host_pid is not None else session.wait()
        if outcome is None:
            return 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if outcome["event"] == "error":
        print(f"linx: {error_line(outcome, session.argv[0], child)}", file=sys.stderr)
    elif outcome["event"] == "aborted":
        print("linx: the workload was aborted at the checkpoint", file=sys.stderr)
    return exit_status(outcome)


def parse_env(items: list[str], base: list[str] | None) -> list[str]:
    """--env K=V on top of base ("K=V" list); a bare K copies K from linx's environment."""
    from linx_core.errors import UsageError
    env = dict(item.split("=", 1) for item in (base or []) if "=" in item)
    for item in items:
        if "=" in item:
            key, value = item.split("=", 1)
        elif item in os.environ:
            key, value = item, os.environ[item]
        else:
            continue
        if not key:
            raise UsageError("--env", f"{item!r}: expected KEY=VALUE")
        env[key] = value
    return [f"{k}={v}" for k, v in env.items()]


def parse_user(text: str | None) -> dict:
    """--user UID[:GID] -> settings for the child's setresuid/setresgid (numbers only)."""
    if not text:
        return {}
    from linx_core.errors import UsageError
    uid, _, gid = text.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise UsageError("--user", f"{text!r}: expected UID[:GID] as numbers")
    out = {"uid": int(uid), "gid": int(gid or uid), "groups": ""}
    return out


def launch(start, settings, at_checkpoint=None, *, named: bool, name: str | None, detach: bool,
           tty: bool, detach_keys: str, session_kw: dict | None = None, finish=None) -> int:
    """What `run` and `exec` share around drive(): the session directory when one is wanted
    (removed again when the workload never ran), -d / -t following, and the name printed.
    start(kw) makes the Session; at_checkpoint(host_pid, session) runs the host-side steps;
    finish() runs after a workload that ended while we watched."""
    follow = None
    if detach:
        follow = until_running
    elif tty:
        from linx_core.tty import parse_detach_keys
        follow = attached(parse_detach_keys(detach_keys))     # checked before anything is made
    kw, session_name, session = {}, None, None
    if named:
        from linx_core import sessions
        session_name, session_dir = sessions.create(name)
        kw = dict(session_kw or {}, session_dir=session_dir, detach=detach or tty, pty=tty)
        kw["meta"] = {"name": session_name, **kw.get("meta", {})}
    try:
        session = start(kw)
        with session:
            status = drive(session, settings,
                           at_checkpoint and (lambda pid: at_checkpoint(pid, session)), follow)
    except BaseException:
        if session_name and not lives_on(session):
            sessions.remove(session_name)
        raise
    if finish and session.outcome is not None:     # not when the workload runs on, detached
        finish()
    if session_name and session.outcome is not None and \
            "running" not in [e["event"] for e in session.events_seen]:
        sessions.remove(session_name)              # it never ran: leave nothing behind
    elif detach:
        print(session_name)
    return status


def until_running(session) -> dict | None:
    """For -d: return once the workload runs (None), or its terminal event if it never did."""
    while session.outcome is None and session.stage != "running":
        if session.next_event() is None:
            break
    return session.outcome


def attached(detach_keys: bytes, stdin: bool = True):
    """For -t in the foreground: this terminal is the workload's until it ends or we detach."""
    def follow(session):
        from linx_core import tty
        return tty.attach(session, detach_keys=detach_keys, stdin=stdin, replay=False)
    return follow


def lives_on(session) -> bool:
    """Whether a detached session's workload runs on without us (keep its directory)."""
    return bool(session is not None and session.detach and session.outcome is None
                and session.stage == "running")
