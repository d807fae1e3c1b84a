"""`linx exec`: nsenter through the agent and its checkpoint. Joins the target's namespaces
and its cgroup v2, optionally takes its environment."""
import sys

import typer

from ._app import new_app

app = new_app("Run a command inside a running workload's namespaces and cgroup.")


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    argv: list[str] = typer.Argument(..., metavar="-- COMMAND [ARG]..."),
    target: str = typer.Option(..., "--target", metavar="PID|pid:N|SESSION",
                               help="The process (or session) whose namespaces to join."),
    ns: str = typer.Option(None, "--ns", metavar="LIST",
                           help="Join only these (default: every namespace the target does not share with linx)."),
    env: list[str] = typer.Option([], "--env", "-e", metavar="KEY=VALUE", help="Set a variable (repeatable)."),
    env_from_target: bool = typer.Option(False, "--env-from-target",
                                         help="Start from the target's environment instead of linx's."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory (default: / when joining the mount namespace)."),
    user: str = typer.Option(None, "--user", "-u", metavar="UID[:GID]", help="Run as this uid/gid."),
    no_cgroup: bool = typer.Option(False, "--no-cgroup", help="Stay in linx's cgroup."),
    events: str = typer.Option(None, "--events", metavar="FILE", help="Lifecycle events as JSON lines (- for stderr)."),
    tty: bool = typer.Option(False, "--tty", "-t", help="Give the command a terminal (PTY); without -d, attach to it now."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background as a session; print its name."),
    name: str = typer.Option(None, "--name", help="Session name for the exec'd process (default: generated when needed)."),
    detach_keys: str = typer.Option("ctrl-p,ctrl-q", "--detach-keys", metavar="KEYS",
                                    help="Keys that detach from -t (none disables)."),
) -> None:
    """Run a command inside a running workload's namespaces and cgroup.

    Exit status as for linx run.
    """
    from linx_core import cgroup, process

    from . import _workload

    pid = resolve_pid(target)
    kinds = process.parse_namespaces(ns, "--ns") if ns is not None else process.differing_namespaces(pid)
    base = process.environ_of(pid) if env_from_target else process.env_list(None)
    workload_env = _workload.parse_env(env, base)
    settings = {"cwd": cwd or ("/" if "mnt" in kinds else None), **_workload.parse_user(user)}

    def join_cgroup(host_pid: int, _session) -> None:
        theirs = cgroup.of_pid(pid)
        if theirs != cgroup.of_pid(host_pid):
            cgroup.add_process(theirs, host_pid)

    # an exec'd process with -t, -d or --name is a session of its own, re-attachable
    sys.exit(_workload.launch(
        lambda kw: process.Session.enter(pid, argv, kinds, env=workload_env,
                                         on_event=_workload.EventLog(events), **kw),
        settings, None if no_cgroup else join_cgroup, named=bool(tty or detach or name), name=name,
        detach=detach, tty=tty, detach_keys=detach_keys, session_kw={"meta": {"target": pid}}))


def resolve_pid(text: str) -> int:
    """PID, pid:N, or a session name."""
    from linx_core import target as targets
    if text.isdigit() and int(text) > 0:
        return int(text)
    t = targets.parse(text, "--target")
    if t.kind == "pid":
        return int(t.value)
    if t.kind == "session":
        from linx_core.sessions import host_pid
        return host_pid(t.value)
    from linx_core.errors import UsageError
    raise UsageError("--target", f"{text!r}: expected a PID, pid:N or a session name")
