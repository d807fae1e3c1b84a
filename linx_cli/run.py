"""`linx run`: spawn a workload into fresh namespaces, park it at the checkpoint, apply what
was asked, and run it. Exits with the workload's status."""
import sys

import typer

from ._app import new_app

app = new_app("Spawn a workload into fresh namespaces, set it up at the checkpoint, run it.")


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    argv: list[str] = typer.Argument(..., metavar="-- COMMAND [ARG]...",
                                     help="The workload; searched in its PATH when it has no slash."),
    ns: str = typer.Option("", "--ns", metavar="LIST",
                           help="Fresh namespaces: comma list of net,pid,mount,uts,ipc,user,cgroup,time, or all."),
    hostname: str = typer.Option(None, "--hostname", help="Hostname inside (needs --ns uts)."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory of the workload."),
    no_lo: bool = typer.Option(False, "--no-lo", help="Leave lo down in a new net namespace (unshare's default)."),
    env: list[str] = typer.Option([], "--env", "-e", metavar="KEY=VALUE",
                                  help="Set a variable (repeatable); KEY alone copies it from linx's environment."),
    clear_env: bool = typer.Option(False, "--clear-env", help="Start from an empty environment."),
    user: str = typer.Option(None, "--user", "-u", metavar="UID[:GID]",
                             help="Run as this uid/gid (supplementary groups cleared)."),
    no_new_privs: bool = typer.Option(False, "--no-new-privs", help="Set PR_SET_NO_NEW_PRIVS before exec."),
    mount_proc: bool = typer.Option(False, "--mount-proc",
                                    help="Mount a fresh /proc (needs --ns pid,mount)."),
    events: str = typer.Option(None, "--events", metavar="FILE",
                               help="Append the lifecycle events as JSON lines to FILE (- for stderr)."),
    checkpoint: list[str] = typer.Option([], "--checkpoint", metavar="CMD",
                                         help="Host shell command run at the checkpoint with $LINX_PID set; "
                                              "non-zero aborts the workload (repeatable)."),
    detach: bool = typer.Option(False, "--detach", "-d",
                                help="Run in the background as a session: print its name once it runs."),
    tty: bool = typer.Option(False, "--tty", "-t",
                             help="Give the workload a terminal (PTY); without -d, attach to it now."),
    name: str = typer.Option(None, "--name", help="Session name (default: generated when one is needed)."),
    restart: str = typer.Option("no", "--restart", metavar="no|on-failure|always",
                                help="Restart the workload when it ends (on-failure: non-zero exit, "
                                     "signal or setup error)."),
    max_restarts: int = typer.Option(0, "--max-restarts", metavar="N", help="At most N restarts (0: no limit)."),
    detach_keys: str = typer.Option("ctrl-p,ctrl-q", "--detach-keys", metavar="KEYS",
                                    help="Keys that detach from -t (none disables)."),
    map_uid: list[str] = typer.Option([], "--map-uid", metavar="INSIDE:OUTSIDE:LENGTH",
                                      help="uid range of the new user namespace (repeatable; needs --ns user)."),
    map_gid: list[str] = typer.Option([], "--map-gid", metavar="INSIDE:OUTSIDE:LENGTH",
                                      help="gid range of the new user namespace (repeatable; needs --ns user)."),
    map_root_user: bool = typer.Option(False, "--map-root-user", "-r",
                                       help="Map root inside to linx's euid/egid (needs --ns user)."),
    map_auto: bool = typer.Option(False, "--map-auto",
                                  help="Map linx's first /etc/subuid and /etc/subgid ranges (needs --ns user)."),
    cgroup_path: str = typer.Option(None, "--cgroup", metavar="PATH",
                                    help="Run in this cgroup v2 (relative to the cgroup2 mount, or under it); "
                                         "made if missing, and then removed when the workload ends."),
    keep_cgroup: bool = typer.Option(False, "--keep-cgroup", help="Leave the cgroup --cgroup made in place."),
    memory_max: str = typer.Option(None, "--memory-max", metavar="BYTES", help="memory.max of --cgroup (256M, 1G, max)."),
    memory_high: str = typer.Option(None, "--memory-high", metavar="BYTES", help="memory.high of --cgroup."),
    pids_max: str = typer.Option(None, "--pids-max", metavar="N", help="pids.max of --cgroup (a count, or max)."),
    cpu_max: str = typer.Option(None, "--cpu-max", metavar="QUOTA[/PERIOD]",
                                help="cpu.max of --cgroup (50ms/100ms is half a CPU; max)."),
    cpu_weight: str = typer.Option(None, "--cpu-weight", metavar="1-10000", help="cpu.weight of --cgroup."),
    cap_drop: str = typer.Option(None, "--cap-drop", metavar="LIST|all",
                                 help="Drop these capabilities from every set, bounding included (all: every one)."),
    cap_add: str = typer.Option(None, "--cap-add", metavar="LIST", help="Keep these despite --cap-drop (all)."),
    cap_keep: str = typer.Option(None, "--cap-keep", metavar="LIST",
                                 help="Keep only these: every other capability leaves the bounding, "
                                      "permitted, effective and inheritable sets."),
    cap_ambient: str = typer.Option(None, "--cap-ambient", metavar="LIST",
                                    help="Raise these in the ambient set: a non-root workload keeps them across exec."),
    seccomp_file: str = typer.Option(None, "--seccomp", metavar="FILE",
                                     help="Install a seccomp filter: a linx spec (JSON/TOML), a Docker profile, "
                                          "or BPF from `linx seccomp compile`."),
    seccomp_allow: str = typer.Option(None, "--seccomp-allow", metavar="LIST",
                                      help="Allow only these syscalls; any other kills the workload (SIGSYS)."),
    seccomp_deny: str = typer.Option(None, "--seccomp-deny", metavar="LIST",
                                     help="These syscalls fail with EPERM (or --seccomp-errno); the rest run."),
    seccomp_errno: str = typer.Option(None, "--seccomp-errno", metavar="NAME",
                                      help="The errno --seccomp-deny returns (EPERM, ENOSYS, or a number)."),
) -> None:
    """Spawn a workload into fresh namespaces, set it up at the checkpoint, run it.

    Exit status: the workload's own; 128+N when killed by signal N; 125 when linx failed
    before the workload started; 126 when it could not be executed; 127 when not found.
    """
    from linx_core import process
    from linx_core.errors import UsageError

    from . import _workload

    kinds = process.parse_namespaces(ns, "--ns")
    if hostname is not None and "uts" not in kinds:
        raise UsageError("--hostname", "needs a new UTS namespace (--ns uts), or it would rename the host")
    if mount_proc and not {"pid", "mnt"} <= set(kinds):
        raise UsageError("--mount-proc", "needs new pid and mount namespaces (--ns pid,mount)")
    steps = []   # host-side steps at the checkpoint, in ARCHITECTURE.md's order
    setgroups_denied = False
    if map_uid or map_gid or map_root_user or map_auto:
        if "user" not in kinds:
            raise UsageError("--map-uid/--map-gid/--map-root-user/--map-auto",
                             "needs a new user namespace (--ns user)")
        from linx_core import user as userns
        uid_map, gid_map = userns.plan(map_uid, map_gid, map_root_user, map_auto)
        steps.append(lambda pid: userns.setup_maps(pid, uid_map or None, gid_map or None))
        setgroups_denied = bool(gid_map)

    def at_checkpoint(host_pid: int) -> None:
        for step in steps:
            step(host_pid)

    settings = {"hostname": hostname, "cwd": cwd, "no_new_privs": no_new_privs,
                "mount_proc": mount_proc, "lo_up": "net" in kinds and not no_lo,
                **_workload.parse_user(user)}
    if setgroups_denied:   # deny comes before gid_map: --user keeps the groups it cannot clear
        settings.pop("groups", None)
    workload_env = _workload.parse_env(env, None if clear_env else process._env_list(None))
    if restart not in process.RESTART:
        raise UsageError("--restart", f"{restart!r}: expected no, on-failure or always")
    if max_restarts < 0:
        raise UsageError("--max-restarts", f"{max_restarts}: expected 0 or more")
    if restart != "no" and steps:
        raise UsageError("--restart", "restarts replay only --checkpoint commands and child-side "
                                      "settings; --map-* host-side steps cannot be replayed yet")
    limits = {"--memory-max": memory_max, "--memory-high": memory_high, "--pids-max": pids_max,
              "--cpu-max": cpu_max, "--cpu-weight": cpu_weight}
    placement = None
    if cgroup_path is not None or keep_cgroup or any(v is not None for v in limits.values()):
        from . import cgroup as cgroup_cli
        placement = cgroup_cli.placement(cgroup_path, keep_cgroup, limits, detach, restart)
        steps.append(placement.apply)
    if any(v is not None for v in (cap_drop, cap_add, cap_keep, cap_ambient, seccomp_file,
                                   seccomp_allow, seccomp_deny, seccomp_errno)):
        from . import seccomp as seccomp_cli     # child-side settings, computed last
        privileges = seccomp_cli.privileges(cap_drop, cap_add, cap_keep, cap_ambient, seccomp_file,
                                            seccomp_allow, seccomp_deny, seccomp_errno,
                                            no_new_privs, settings.get("uid"))
        steps.append(lambda pid: settings.update(privileges(pid)))
    keys = None
    if tty and not detach:
        from linx_core.tty import parse_detach_keys
        keys = parse_detach_keys(detach_keys)
    log = _workload.EventLog(events)
    session_kw, session_name = {}, None
    if detach or tty or name or restart != "no":
        from linx_core import sessions
        session_name, session_dir = sessions.create(name)
        session_kw = dict(session_dir=session_dir, detach=detach or tty, pty=tty,
                          meta={"name": session_name}, restart=restart,
                          max_restarts=max_restarts, hooks=checkpoint)
    follow = None
    if detach:
        follow = _workload.until_running
    elif tty:
        follow = _workload.attached(keys)
    try:
        session = process.Session.spawn(argv, kinds, env=workload_env, on_event=log, **session_kw)
        with session:
            status = _workload.drive(session, settings, checkpoint, at_checkpoint, follow)
    except BaseException:
        if session_name and not _workload.lives_on(locals().get("session")):
            sessions.remove(session_name)
        raise
    if placement and session.outcome is not None:    # not when the workload runs on, detached
        cgroup_cli.release(placement)
    if session_name and session.outcome is not None and \
            "running" not in [e["event"] for e in session.events_seen]:
        sessions.remove(session_name)     # it never ran: leave nothing behind
    elif detach:
        print(session_name)
    sys.exit(status)
