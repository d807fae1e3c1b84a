"""The session registry: one directory per named session under the run directory.

`<run dir>/<name>/` (mode 0700) holds the agent's control socket `ctl.sock` (0600), the
agent-written `state.json` and the output log (`log`, `log.1`). The agent keeps state.json
current; when the agent is gone, the files are the truth, and a session whose agent died
before its workload's end is reported `failed`.
"""
import json
import os
import re
import shutil

from .errors import KernelError, LinxError, UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LIVE = ("created", "ready", "running", "restarting")


class SessionNotFound(LinxError):
    def __init__(self, name: str):
        super().__init__(f"no such session: {name!r}")


def run_dir() -> str:
    """/run/linx for root, $XDG_RUNTIME_DIR/linx otherwise (ARCHITECTURE.md)."""
    if os.geteuid() == 0:
        return "/run/linx"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/linx-{os.geteuid()}"
    return os.path.join(base, "linx")


def path(name: str) -> str:
    return os.path.join(run_dir(), name)


def check_name(name: str, where: str = "--name") -> str:
    if not NAME.fullmatch(name or ""):
        raise UsageError(where, f"{name!r} is not a session name (letters, digits, _ . -; "
                                "starting with a letter or digit; at most 64)")
    return name


def create(name: str | None) -> tuple[str, str]:
    """Make the session directory (0700; the name must be free). Returns (name, dir)."""
    root = run_dir()
    os.makedirs(root, mode=0o700, exist_ok=True)
    for _ in range(8):
        n = check_name(name) if name else "linx-" + os.urandom(3).hex()
        d = os.path.join(root, n)
        try:
            os.mkdir(d, 0o700)
            return n, d
        except FileExistsError:
            if name:
                raise UsageError("--name", f"session {name!r} already exists "
                                           f"(linx rm {name} to remove it)") from None
        except OSError as e:
            raise KernelError("session", "create", d, e.errno) from None
    raise LinxError("could not pick a free session name")


def agent_alive(pid: int | None) -> bool:
    """A process named linx-agent that is not a zombie (a detached agent's parent is init,
    which may be slow to reap it)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            comm_state = f.read().rsplit(")", 1)
    except OSError:
        return False
    return comm_state[0].endswith("(linx-agent") and comm_state[1].split()[0] != "Z"


def read(name: str) -> dict:
    """state.json plus `name`; a live status whose agent is gone becomes `failed`."""
    check_name(name, "session")
    p = os.path.join(path(name), "state.json")
    try:
        with open(p) as f:
            state = json.load(f)
    except FileNotFoundError:
        raise SessionNotFound(name) from None
    except (OSError, ValueError) as e:
        raise LinxError(f"session {name!r}: unreadable state {p}: {e}") from None
    state["name"] = name
    if state.get("status") in LIVE and not agent_alive(state.get("agent_pid")):
        state["status"] = "failed"
        state.setdefault("stage", "agent_died")
    return state


def names() -> list[str]:
    try:
        return sorted(n for n in os.listdir(run_dir())
                      if os.path.exists(os.path.join(run_dir(), n, "state.json")))
    except FileNotFoundError:
        return []


def remove(name: str) -> None:
    d = path(check_name(name, "session"))
    if not os.path.isdir(d):
        raise SessionNotFound(name)
    shutil.rmtree(d)


def host_pid(name: str) -> int:
    """The workload's host pid, for targets by session name."""
    state = read(name)
    if state["status"] not in ("running", "ready") or not state.get("host_pid"):
        raise UsageError("target", f"session {name!r} has no running workload ({state['status']})")
    return int(state["host_pid"])


def exit_status(state: dict) -> int:
    """A finished session's status as `linx wait` reports it (as for linx run)."""
    status = state["status"]
    if status == "exited":
        return state.get("exit_code", 0)
    if status == "signaled":
        return 128 + state.get("signal", 0)
    if status == "error" and state.get("stage") == "execve":
        return 127 if state.get("errno") in (2, 20) else 126
    return 125
