"""Spawn and enter sessions over linx-agent: proceed, abort, signal, wait, info.

The agent (agent/linx-agent.c) is the workload's real parent: clone() inside Python is not
safe and a session must be able to outlive the command that started it. This module speaks
its protocol (agent/PROTOCOL.md) and turns frames into events.
"""
import os
import select
import socket
import time

from . import protocol
from .errors import LinxError, UsageError, errno_text

# CLONE_NEW* flags, <linux/sched.h>. "mount" is an alias of "mnt" for people used to unshare(1).
NAMESPACES = {
    "user": 0x10000000, "cgroup": 0x02000000, "ipc": 0x08000000, "uts": 0x04000000,
    "net": 0x40000000, "pid": 0x20000000, "mnt": 0x00020000, "time": 0x00000080,
}
ALIASES = {"mount": "mnt"}
ALL = tuple(NAMESPACES)
RESTART = {"no": 0, "on-failure": 1, "always": 2}

CHILD_SETTINGS = ("mount_proc", "hostname", "lo_up", "cwd", "gid", "groups", "uid",
                  "cap_bounding", "cap_sets", "cap_ambient", "no_new_privs",
                  "seccomp", "seccomp_flags", "seccomp_notify")


def agent_path() -> str:
    """The agent is built next to this package at install; LINX_AGENT overrides for development."""
    return os.environ.get("LINX_AGENT") or os.path.join(os.path.dirname(__file__), "linx-agent")


def parse_namespaces(value, where: str = "namespaces") -> list[str]:
    """`net,pid` / ["net", "pid"] / "all" -> canonical kinds. Raises UsageError, no syscall."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        items = list(value or ())
    if items == ["all"]:
        return list(ALL)
    out, bad = [], []
    for item in items:
        kind = ALIASES.get(item, item)
        if kind not in NAMESPACES:
            bad.append(item)
        elif kind not in out:
            out.append(kind)
    if bad:
        raise UsageError(where, f"unknown namespace {', '.join(map(repr, bad))} "
                                f"(expected {', '.join(ALL)}, or all)")
    return out


def flags_of(kinds) -> int:
    flags = 0
    for kind in kinds:
        flags |= NAMESPACES[kind]
    return flags


class SessionError(LinxError):
    """A request the session refuses in its current state (the seed's {:error, reason})."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class Session:
    """One workload and its agent. Events arrive in order from events()/next_event(),
    and go to on_event(event) as they are read, when given."""

    def __init__(self, mode: str, argv: list[str], on_event=None):
        self.mode = mode
        self.argv = list(argv)
        self.on_event = on_event
        self.host_pid: int | None = None
        self.child_pid: int | None = None
        self.stage = "starting"           # starting, ready, running, or the terminal event
        self.outcome: dict | None = None  # the terminal event
        self.events_seen: list[dict] = []
        self.started_at = time.time()
        self._reader = protocol.FrameReader()
        self._pending: list[dict] = []
        self._sock: socket.socket | None = None
        self.agent_pid: int | None = None
        self.restarts = 0
        self.session_dir = None
        self.detach = self.pty = False

    # -- starting ---------------------------------------------------------

    def _start(self, fields: list[tuple[str, object]]) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fd = child.fileno()
            extra = None
            if fd == 3:          # dup2(3, 3) would keep O_CLOEXEC: move it out of the way
                extra = os.dup(fd)
                fd = extra
            try:
                self.agent_pid = os.posix_spawn(
                    agent_path(), ["linx-agent"], os.environ,
                    file_actions=[(os.POSIX_SPAWN_DUP2, fd, 3)])
            except OSError as e:
                raise LinxError(f"cannot start the agent {agent_path()}: "
                                f"{errno_text(e.errno)}") from None
            finally:
                if extra is not None:
                    os.close(extra)
        finally:
            child.close()
        self._sock = parent
        self._send(protocol.encode(protocol.SPAWN, fields))

    @classmethod
    def spawn(cls, argv, namespaces=(), env=None, on_event=None, **session) -> "Session":
        """clone3() the child with fresh `namespaces` and park it at the checkpoint.
        env: list of "K=V" (None inherits this process's environment).
        session: session_dir, detach, pty, meta, restart, max_restarts, hooks (see _session)."""
        argv = _check_argv(argv)
        kinds = parse_namespaces(namespaces)
        env = env_list(env)
        s = cls("spawn", argv, on_event)
        s.namespaces = kinds
        s._start([("argv", a) for a in argv] + [("env", e) for e in env] +
                 [("clone_flags", flags_of(kinds))] + s._session(**session))
        return s

    @classmethod
    def enter(cls, target_pid: int, argv, namespaces=None, env=None, on_event=None,
              **session) -> "Session":
        """Join a target's namespaces (all it has that differ from ours by default) and fork
        the child there, parked at the checkpoint like spawn (nsenter, docker exec)."""
        argv = _check_argv(argv)
        if not isinstance(target_pid, int) or target_pid <= 0:
            raise UsageError("target", f"{target_pid!r} is not a process id")
        kinds = parse_namespaces(namespaces) if namespaces is not None else differing_namespaces(target_pid)
        env = env_list(env)
        s = cls("enter", argv, on_event)
        s.namespaces = kinds
        s.target_pid = target_pid
        s._start([("argv", a) for a in argv] + [("env", e) for e in env] +
                 [("target_pid", target_pid), ("join_ns", flags_of(kinds))] + s._session(**session))
        return s

    def _session(self, session_dir=None, detach=False, pty=False, meta=None, restart="no",
                 max_restarts=0, hooks=()) -> list:
        """A named session: the agent serves clients on session_dir/ctl.sock and keeps
        state.json; detach lets it outlive us; pty gives the workload a terminal; restart
        (no, on-failure, always) replays the clone, the child-side settings and `hooks`."""
        if restart not in RESTART:
            raise UsageError("--restart", f"{restart!r}: expected one of {', '.join(RESTART)}")
        if (detach or restart != "no") and not session_dir:
            raise UsageError("session", "detach and restart need a session directory")
        self.session_dir, self.detach, self.pty = session_dir, detach, pty
        fields = []
        if session_dir:
            import json
            fields += [("session_dir", session_dir),
                       ("meta", json.dumps({**(meta or {}), "argv": self.argv, "mode": self.mode,
                                            "namespaces": self.namespaces,
                                            "started_at": self.started_at}))]
        fields += [("detach", 1)] if detach else []
        fields += [("pty", 1)] if pty else []
        if restart != "no":
            fields += [("restart", RESTART[restart]), ("max_restarts", int(max_restarts))]
            fields += [("hook", h) for h in hooks]
        return fields

    @classmethod
    def connect(cls, name: str, on_event=None) -> "Session":
        """A client of a running named session, through its control socket."""
        from . import sessions
        state = sessions.read(name)
        if state["status"] not in sessions.LIVE:
            raise SessionError("no_process", f"session {name!r} is not running ({state['status']})")
        s = cls("client", state.get("meta", {}).get("argv", []), on_event)
        s.namespaces = state.get("meta", {}).get("namespaces", [])
        s.host_pid = state.get("host_pid")
        s.stage = "running" if state["status"] == "running" else "ready"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        path = os.path.join(sessions.path(name), "ctl.sock")
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            from .errors import KernelError
            raise KernelError("session", "connect", path, e.errno) from None
        s._sock = sock
        return s

    # -- clients of a session ---------------------------------------------

    def attach(self, replay: bool = False) -> None:
        """Receive the workload's terminal output as `output` events (replay: the recent
        output the agent keeps first), and its terminal event."""
        self._send(protocol.encode(protocol.ATTACH, [("replay", int(replay))]))

    def write(self, data: bytes) -> None:
        """Bytes to the workload's terminal, as if typed."""
        for i in range(0, len(data), 65536):
            self._send(protocol.encode(protocol.INPUT, [("data", data[i:i + 65536])]))

    def resize(self, rows: int, cols: int) -> None:
        self._send(protocol.encode(protocol.RESIZE, [("rows", rows), ("cols", cols)]))

    def hold(self, sock) -> None:
        """Give the agent an fd to keep open until the workload ends (SCM_RIGHTS), then close
        ours: an nft owner table lives exactly as long as its socket."""
        fd = sock.fileno()
        socket.send_fds(self._sock, [protocol.encode(protocol.HOLD, [])], [fd])
        sock.close()

    def subscribe_wait(self) -> None:
        """Ask for the terminal event even when not attached."""
        self._send(protocol.encode(protocol.WAIT, []))

    # -- requests ---------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.sendall(frame)
        except OSError:
            pass  # the agent is gone; the next read reports how

    def _require_live(self) -> None:
        if self.outcome is not None:
            raise SessionError("no_process", f"the workload has already ended ({self.outcome['event']})")

    def proceed(self, **settings) -> None:
        """Release the child: it applies the child-side settings (PROTOCOL.md, in its order)
        and execs. Settings: mount_proc, hostname, lo_up, cwd, gid, groups, uid, cap_*,
        no_new_privs, seccomp, seccomp_flags."""
        self._require_live()
        if self.stage == "starting":
            raise SessionError("not_ready", "the child has not reached the checkpoint")
        if self.stage != "ready":
            raise SessionError("already", "already proceeded")
        fields = []
        for name in CHILD_SETTINGS:
            value = settings.pop(name, None)
            if value is None or value is False:
                continue
            fields.append((name, int(value) if value is True else value))
        if settings:
            raise UsageError("proceed", f"unknown setting {', '.join(sorted(settings))}")
        self._send(protocol.encode(protocol.PROCEED, fields))
        self.stage = "proceeding"

    def abort(self) -> None:
        """Discard the parked child: it never runs. Before ready it fires at ready."""
        self._require_live()
        if self.stage in ("running",):
            raise SessionError("running", "the workload is past the checkpoint; send a signal")
        self._send(protocol.encode(protocol.ABORT, []))

    def signal(self, signo: int) -> None:
        """Before running, the agent buffers it and delivers it right after execve, in order."""
        self._require_live()
        if not 1 <= int(signo) < 65:
            raise UsageError("signal", f"{signo} is not a signal number")
        self._send(protocol.encode(protocol.SIGNAL, [("signo", int(signo))]))

    # -- events -----------------------------------------------------------

    def _read(self, timeout: float | None) -> bool:
        """Read what the agent sent; False on timeout."""
        if self._sock is None:
            return False
        if timeout is not None:
            ready, _, _ = select.select([self._sock], [], [], max(timeout, 0))
            if not ready:
                return False
        try:
            data = self._sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._agent_gone()
            return True
        try:
            frames = self._reader.feed(data)
            events = [protocol.decode_event(f) for f in frames]
        except protocol.ProtocolError:
            self._kill_agent()
            raise
        for ev in events:
            self._record(ev)
        return True

    def _record(self, ev: dict) -> None:
        name = ev["event"]
        if name in ("refused", "output"):
            self._pending.append(ev)
            return
        if name == "restarting":
            self.restarts = ev["count"]
            self.stage = "restarting"
        elif name == "ready":
            self.host_pid, self.child_pid = ev["host_pid"], ev["child_pid"]
            self.stage = "ready"
        elif name == "running":
            self.stage = "running"
        elif name in protocol.TERMINAL:
            self.stage = name
            self.outcome = ev
        self.events_seen.append(ev)
        self._pending.append(ev)
        if self.on_event:
            self.on_event(ev)
        if self.outcome is not None:
            self._finish()

    def _agent_gone(self) -> None:
        if self.outcome is None and self.mode == "client":
            self._finish()
            return
        if self.outcome is None:
            status = self._reap_agent(block=True)
            self._record({"event": "error", "errno": status, "stage": "agent_died",
                          "message": "the agent exited without a terminal event"})
        self._finish()

    def _finish(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._reap_agent(block=True)

    def _reap_agent(self, block: bool) -> int:
        if self.agent_pid is None:
            return 0
        try:
            pid, status = os.waitpid(self.agent_pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.agent_pid = None
            return 0
        if pid == 0:
            return 0
        self.agent_pid = None
        return os.waitstatus_to_exitcode(status)

    def _kill_agent(self) -> None:
        if self.agent_pid is not None:
            try:
                os.kill(self.agent_pid, 9)
            except ProcessLookupError:
                pass
        self._finish()

    def next_event(self, timeout: float | None = None) -> dict | None:
        """The next event in order, or None on timeout / when nothing more will come."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self._sock is None:
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._read(left)
        return self._pending.pop(0)

    def events(self):
        while (ev := self.next_event()) is not None:
            yield ev

    def wait_ready(self, timeout: float | None = None) -> int:
        """Block until the checkpoint; returns the host pid. Raises if it ends first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.stage == "starting" and self._sock is not None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise SessionError("timeout", "the child did not reach the checkpoint in time")
            self._read(left)
        if self.host_pid is None:
            raise SessionError("no_process", describe(self.outcome))
        return self.host_pid

    def wait(self, timeout: float | None = None) -> dict | None:
        """The terminal event, or None after `timeout` seconds (the session is unaffected)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.outcome is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._read(left)
        return self.outcome

    def info(self) -> dict:
        return {"mode": self.mode, "stage": self.stage, "argv": self.argv,
                "host_pid": self.host_pid, "child_pid": self.child_pid,
                "agent_pid": self.agent_pid, "namespaces": list(self.namespaces),
                "restarts": self.restarts, "session_dir": self.session_dir,
                "outcome": self.outcome, "started_at": self.started_at}

    def close(self) -> None:
        """Release the session. A detached session's agent (and workload) live on; a client
        just disconnects; otherwise the workload is killed with its agent."""
        if self.outcome is None and not self.detach and self.mode != "client":
            self._kill_agent()
        else:
            self._finish()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def describe(outcome: dict | None) -> str:
    if outcome is None:
        return "no outcome"
    name = outcome["event"]
    if name == "exited":
        return f"exited with status {outcome['code']}"
    if name == "signaled":
        return f"killed by signal {outcome['signo']}"
    if name == "aborted":
        return "aborted at the checkpoint"
    text = f"{outcome['stage']}: {errno_text(outcome['errno'])}"
    if outcome.get("message"):
        text = f"{outcome['stage']} ({outcome['message']}): {errno_text(outcome['errno'])}"
    return text


def _check_argv(argv) -> list[str]:
    if isinstance(argv, str) or not argv:
        raise UsageError("argv", "a non-empty list of arguments is required")
    argv = [str(a) for a in argv]
    if not argv[0]:
        raise UsageError("argv[0]", "the program name is empty")
    for i, a in enumerate(argv):
        if "\0" in a:
            raise UsageError(f"argv[{i}]", "holds a NUL byte")
    return argv


def env_list(env) -> list[str]:
    """"K=V" items, checked; None is this process's own environment."""
    if env is None:
        return [f"{k}={v}" for k, v in os.environ.items()]
    out = []
    for item in env:
        if "=" not in item or item.startswith("="):
            raise UsageError("env", f"{item!r} is not KEY=VALUE")
        out.append(item)
    return out


def differing_namespaces(pid: int) -> list[str]:
    """The kinds where `pid` has a namespace other than ours (joining our own user namespace
    is EINVAL, and joining the others is a no-op). An unreadable target keeps every kind,
    so the agent reports the failing open_ns_<kind> stage."""
    kinds = []
    for kind in ALL:
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{kind}")
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                return list(ALL)
            continue                  # the kernel lacks this kind
        except OSError:
            return list(ALL)
        ours = os.stat(f"/proc/self/ns/{kind}")
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            kinds.append(kind)
    return kinds


def environ_of(pid: int) -> list[str]:
    """A process's environment as it was at its execve, from /proc/PID/environ."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError as e:
        from .errors import KernelError
        raise KernelError("process", "read environment", f"/proc/{pid}/environ", e.errno) from None
    return [item.decode(errors="surrogateescape") for item in raw.split(b"\0") if item]
