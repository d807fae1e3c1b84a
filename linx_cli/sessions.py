"""Session verbs: ps, inspect, attach, kill, wait, logs, rm. Each is its own top-level
command (docker's shape); they share the session registry in linx_core.sessions."""
import sys

import typer

from ._app import new_app

ps = new_app("List sessions.")
inspect = new_app("Show one session in detail.")
attach = new_app("Attach this terminal to a session's PTY (ctrl-p ctrl-q detaches).")
kill = new_app("Send a signal to a session's workload.")
wait = new_app("Wait for a session's workload to end; exit with its status.")
logs = new_app("Print a session's output log.")
rm = new_app("Remove finished sessions (-f: kill running ones first).")


def _state_row(state: dict) -> dict:
    """The stable keys of --json."""
    meta = state.get("meta", {})
    return {"name": state["name"], "status": state["status"], "host_pid": state.get("host_pid"),
            "child_pid": state.get("child_pid"), "agent_pid": state.get("agent_pid"),
            "exit_code": state.get("exit_code"), "signal": state.get("signal"),
            "errno": state.get("errno"), "stage": state.get("stage"),
            "restarts": state.get("restarts", 0), "argv": meta.get("argv", []),
            "namespaces": meta.get("namespaces", []), "mode": meta.get("mode"),
            "pty": state.get("pty"), "started_at": meta.get("started_at"),
            "finished_at": state.get("finished_at")}


def _print_json(doc) -> None:
    import json
    print(json.dumps(doc, indent=2))


@ps.command("ps")
def ps_(all_: bool = typer.Option(False, "--all", "-a", help="Include finished sessions."),
        json_: bool = typer.Option(False, "--json",
                                   help='[{"name", "status", "host_pid", "exit_code", "argv", ...}, ...]: '
                                        'inspect --json\'s keys but "ns".'),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Names only.")) -> None:
    """List sessions."""
    from linx_core import sessions
    rows = []
    for name in sessions.names():
        try:
            state = sessions.read(name)
        except sessions.SessionNotFound:
            continue          # removed while we looked
        if all_ or state["status"] in sessions.LIVE + ("failed",):
            rows.append(_state_row(state))
    if json_:
        return _print_json(rows)
    if quiet:
        for r in rows:
            print(r["name"])
        return
    from . import _table
    _table.show(["NAME", "STATUS", "PID", "RESTARTS", "COMMAND"],
                [[r["name"], _status_text(r), str(r["host_pid"] or "-"), str(r["restarts"]),
                  " ".join(r["argv"])] for r in rows])


def _status_text(r: dict) -> str:
    if r["status"] == "exited":
        return f"exited ({r['exit_code']})"
    if r["status"] == "signaled":
        return f"signaled ({r['signal']})"
    if r["status"] == "error":
        return f"error ({r['stage']})"
    return r["status"]


@inspect.command("inspect")
def inspect_(name: str = typer.Argument(..., metavar="NAME"),
             json_: bool = typer.Option(False, "--json",
                                        help='{"name", "status", "host_pid", "exit_code", "signal", "argv", '
                                             '"ns": {KIND: INODE}, ...}')) -> None:
    """Show one session in detail."""
    import os
    import time

    from linx_core import sessions
    row = _state_row(sessions.read(name))
    row["ns"] = {}
    if row["status"] in ("running", "ready") and row["host_pid"]:
        for kind in sorted(os.listdir(f"/proc/{row['host_pid']}/ns")):
            try:
                row["ns"][kind] = os.stat(f"/proc/{row['host_pid']}/ns/{kind}").st_ino
            except OSError:
                pass
    if json_:
        return _print_json(row)
    for key, value in row.items():
        if key == "ns":
            value = " ".join(f"{k}:{v}" for k, v in value.items()) or "-"
        elif key in ("started_at", "finished_at") and value:
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
        elif isinstance(value, list):
            value = " ".join(value)
        print(f"{key + ':':<13}{'-' if value is None else value}")


@attach.command("attach")
def attach_(name: str = typer.Argument(..., metavar="NAME"),
            detach_keys: str = typer.Option("ctrl-p,ctrl-q", "--detach-keys", metavar="KEYS",
                                            help="Keys that detach (comma list of ctrl-X or characters; none disables)."),
            no_stdin: bool = typer.Option(False, "--no-stdin", help="Only watch: send no input."),
            ) -> None:
    """Attach this terminal to a session's PTY (ctrl-p ctrl-q detaches).

    Exit status: the workload's when it ends while attached; 0 on detach.
    """
    from linx_core import process, sessions, tty
    keys = tty.parse_detach_keys(detach_keys)
    session = process.Session.connect(name)
    session.pty = bool(sessions.read(name).get("pty"))
    with session:
        outcome = tty.attach(session, detach_keys=keys, stdin=not no_stdin, replay=True)
    sys.exit(_exit_for(name, outcome))


def _exit_for(name: str, outcome: dict | None) -> int:
    from linx_core import sessions

    from ._workload import exit_status
    if outcome is None:
        return 0
    if outcome["event"] == "error" and outcome.get("stage") == "agent_died":
        return sessions.exit_status(sessions.read(name))
    return exit_status(outcome)


@kill.command("kill")
def kill_(name: str = typer.Argument(..., metavar="NAME"),
          signal_: str = typer.Option("TERM", "--signal", "-s", metavar="SIG",
                                      help="Signal name or number (default TERM).")) -> None:
    """Send a signal to a session's workload."""
    from linx_core import process
    signo = parse_signal(signal_)
    session = process.Session.connect(name)
    with session:
        session.signal(signo)


def parse_signal(text: str) -> int:
    import signal as sig

    from linx_core.errors import UsageError
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    key = text.upper()
    key = key if key.startswith("SIG") else "SIG" + key
    try:
        return int(getattr(sig.Signals, key))
    except AttributeError:
        raise UsageError("--signal", f"{text!r} is not a signal name or number") from None


@wait.command("wait")
def wait_(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Wait for a session's workload to end; exit with its status."""
    from linx_core import process, sessions
    state = sessions.read(name)
    if state["status"] in sessions.LIVE:
        session = process.Session.connect(name)
        with session:
            session.subscribe_wait()
            outcome = session.wait()
        sys.exit(_exit_for(name, outcome))
    sys.exit(sessions.exit_status(state))


@logs.command("logs")
def logs_(name: str = typer.Argument(..., metavar="NAME"),
          follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output until the workload ends.")) -> None:
    """Print a session's output log."""
    import os

    from linx_core import process, sessions
    state = sessions.read(name)
    live = None
    if follow and state["status"] in sessions.LIVE:
        live = process.Session.connect(name)
        live.attach(replay=False)       # subscribe first: nothing written after the files is lost
    out = sys.stdout.buffer
    for part in ("log.1", "log"):
        try:
            with open(os.path.join(sessions.path(name), part), "rb") as f:
                out.write(f.read())
        except FileNotFoundError:
            pass
    out.flush()
    if live is not None:
        with live:
            for ev in live.events():
                if ev["event"] == "output":
                    out.write(ev["data"])
                    out.flush()


@rm.command("rm")
def rm_(names: list[str] = typer.Argument(..., metavar="NAME..."),
        force: bool = typer.Option(False, "--force", "-f", help="Kill a running session's workload first.")) -> None:
    """Remove finished sessions (-f: kill running ones first)."""
    from linx_core import process, sessions
    from linx_core.errors import UsageError
    for name in names:
        state = sessions.read(name)
        if state["status"] in sessions.LIVE:
            if not force:
                raise UsageError(name, "session is running (stop it first, or rm -f)")
            session = process.Session.connect(name)
            with session:
                session.subscribe_wait()
                session.signal(9)
                session.wait(10)
        sessions.remove(name)
