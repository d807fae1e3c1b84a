"""`linx run`: spawn a workload into fresh namespaces, park it at the checkpoint, apply what
was asked, and run it. Exits with the workload's status."""
import os
import sys

import typer

from ._app import new_app

app = new_app("Spawn a workload into fresh namespaces, set it up at the checkpoint, run it.")


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    argv: list[str] = typer.Argument(None, metavar="-- COMMAND [ARG]...",
                                     help="The workload; searched in its PATH when it has no slash."),
    spec_file: str = typer.Option(None, "--spec", metavar="FILE",
                                  help="A run spec (TOML or JSON) saying everything below; flags override it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every step in the order it would run, and stop."),
    json_: bool = typer.Option(False, "--json", help="With --dry-run: the plan as JSON."),
    ns: str = typer.Option(None, "--ns", metavar="LIST",
                           help="Fresh namespaces: comma list of net,pid,mount,uts,ipc,user,cgroup,time, or all."),
    hostname: str = typer.Option(None, "--hostname", help="Hostname inside (needs --ns uts)."),
    cwd: str = typer.Option(None, "--cwd", help="Working directory of the workload."),
    no_lo: bool = typer.Option(None, "--no-lo", help="Leave lo down in a new net namespace (unshare's default)."),
    env: list[str] = typer.Option([], "--env", "-e", metavar="KEY=VALUE",
                                  help="Set a variable (repeatable); KEY alone copies it from linx's environment."),
    clear_env: bool = typer.Option(None, "--clear-env", help="Start from an empty environment."),
    user: str = typer.Option(None, "--user", "-u", metavar="UID[:GID]",
                             help="Run as this uid/gid (supplementary groups cleared)."),
    no_new_privs: bool = typer.Option(None, "--no-new-privs", help="Set PR_SET_NO_NEW_PRIVS before exec."),
    mount_proc: bool = typer.Option(False, "--mount-proc",
                                    help="Mount a fresh /proc (needs --ns pid,mount)."),
    events: str = typer.Option(None, "--events", metavar="FILE",
                               help="Append the lifecycle events as JSON lines to FILE (- for stderr)."),
    checkpoint: list[str] = typer.Option([], "--checkpoint", metavar="CMD",
                                         help="Host shell command run at the checkpoint with $LINX_PID set; "
                                              "non-zero aborts the workload (repeatable)."),
    detach: bool = typer.Option(False, "--detach", "-d",
                                help="Run in the background as a session: print its name once it runs."),
    tty: bool = typer.Option(None, "--tty", "-t",
                             help="Give the workload a terminal (PTY); without -d, attach to it now."),
    name: str = typer.Option(None, "--name", help="Session name (default: generated when one is needed)."),
    restart: str = typer.Option(None, "--restart", metavar="no|on-failure|always",
                                help="Restart the workload when it ends (on-failure: non-zero exit, "
                                     "signal or setup error)."),
    max_restarts: int = typer.Option(None, "--max-restarts", metavar="N", help="At most N restarts (0: no limit)."),
    veth: list[str] = typer.Option([], "--veth", metavar="HOST,NAME[,ADDR/LEN[,HOSTADDR/LEN]]",
                                   help="A veth pair: HOST stays on the host, NAME is moved in (needs --ns net; repeatable)."),
    route: list[str] = typer.Option([], "--route", metavar="TO,VIA",
                                    help="A route inside (TO may be default; repeatable)."),
    nft_file: str = typer.Option(None, "--nft", metavar="FILE",
                                 help="An nft ruleset loaded in the workload's netns, gone when it ends."),
    tmpfs: list[str] = typer.Option([], "--tmpfs", metavar="PATH[:OPTIONS]",
                                    help="Mount a tmpfs in the workload's mount namespace (repeatable)."),
    bind: list[str] = typer.Option([], "--bind", metavar="SRC:DST[:ro]",
                                   help="Bind-mount a host path into the workload's mount namespace (repeatable)."),
    rootfs: str = typer.Option(None, "--rootfs", metavar="DIR", help="pivot_root into DIR (needs --ns mount)."),
    sysctl: list[str] = typer.Option([], "--sysctl", metavar="KEY=VALUE",
                                     help="A sysctl in the workload's namespaces (net.*, IPC keys; repeatable)."),
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
    keep_cgroup: bool = typer.Option(None, "--keep-cgroup", help="Leave the cgroup --cgroup made in place."),
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
    from linx_core import process, spec
    from linx_core.errors import UsageError

    from . import _workload

    flags = {"namespaces": ns and process.parse_namespaces(ns, "--ns"), "hostname": hostname,
             "cwd": cwd, "clear_env": clear_env, "run_as": user, "no_new_privs": no_new_privs,
             "env": dict(e.split("=", 1) for e in _workload.parse_env(env, None)) or None,
             "net": {"lo": False} if no_lo else None,
             "user": _drop_none({"uid": map_uid or None, "gid": map_gid or None,
                                 "root": map_root_user or None, "auto": map_auto or None}),
             "cgroup": _drop_none({"path": cgroup_path, "keep": keep_cgroup, "memory_max": memory_max,
                                   "memory_high": memory_high, "pids_max": pids_max,
                                   "cpu_max": cpu_max, "cpu_weight": _int(cpu_weight, "--cpu-weight")}),
             "caps": _drop_none({"drop": _items(cap_drop), "add": _items(cap_add),
                                 "keep": _items(cap_keep), "ambient": _items(cap_ambient)}),
             "seccomp": _drop_none({"profile": seccomp_file, "allow": _items(seccomp_allow),
                                    "deny": _items(seccomp_deny), "errno": seccomp_errno})}
    flags.update({"name": name, "tty": tty, "restart": restart, "max_restarts": max_restarts,
                  "sysctl": _pairs(sysctl, "--sysctl") or None, "rootfs": _rootfs(rootfs),
                  "nft": {"file": os.path.abspath(nft_file)} if nft_file else None})
    doc = spec.load(spec_file) if spec_file else {}
    doc = spec.merge(doc, _drop_none(flags))
    doc["hooks"] = doc.get("hooks", []) + list(checkpoint)
    extra_mounts = [_tmpfs(t) for t in tmpfs] + [_bind(b) for b in bind]
    if extra_mounts:
        doc["mounts"] = doc.get("mounts", []) + extra_mounts
    if veth or route:
        net = dict(doc.get("net", {}))
        net["links"] = net.get("links", []) + [_veth(v) for v in veth]
        net["routes"] = net.get("routes", []) + [_route(r) for r in route]
        doc["net"] = net
    name, tty = doc.get("name"), doc.get("tty", False)
    restart, max_restarts = doc.get("restart", "no"), doc.get("max_restarts", 0)
    if mount_proc:
        if not {"pid", "mnt"} <= set(doc.get("namespaces") or []):
            raise UsageError("--mount-proc", "needs new pid and mount namespaces (--ns pid,mount)")
        if not any(m.get("type") == "proc" for m in doc.get("mounts", []) if isinstance(m, dict)):
            doc["mounts"] = doc.get("mounts", []) + [{"type": "proc"}]
    try:
        plan = spec.plan(doc, spec_file or "linx run", argv=argv or None)
    except spec.SpecError as e:
        raise _as_flags(e, _drop_none(flags), spec_file) from None
    if dry_run:
        from .spec import show_plan
        show_plan(plan, json_)
        return
    replayable = all(step.key.startswith("hooks[") for step in plan.steps)
    if restart != "no" and not replayable:
        raise UsageError("--restart", "a restart replays the clone, the child-side settings and the "
                                      "--checkpoint commands; host-side steps (maps, cgroup, network, "
                                      "mounts, sysctls) cannot be replayed yet")
    if detach and plan.cleanup and not doc.get("cgroup", {}).get("keep"):
        raise UsageError("--cgroup", "with -d linx is gone when the workload ends and cannot "
                                     "remove the cgroup: add --keep-cgroup (cgroup.keep)")
    def finish():
        for warning in spec.finish(plan):
            print(f"linx: warning: {warning}", file=sys.stderr)

    sys.exit(_workload.launch(
        lambda kw: process.Session.spawn(plan.argv, plan.namespaces, env=plan.env,
                                         on_event=_workload.EventLog(events), **kw),
        lambda pid: spec.child_settings(plan, pid), lambda pid, session: spec.apply(plan, pid, session),
        named=bool(detach or tty or name or restart != "no"), name=name, detach=detach, tty=tty,
        detach_keys=detach_keys, finish=finish,
        session_kw=dict(restart=restart, max_restarts=max_restarts, hooks=doc["hooks"])))


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _items(text: str | None) -> list[str] | None:
    """A comma list flag -> a list (the spec's form)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _int(text: str | None, where: str) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        from linx_core.errors import UsageError
        raise UsageError(where, f"{text!r}: expected an integer")
    return int(text)


# spec key -> the flag that sets it, so an error in a value given on the command line names
# the flag the user typed
FLAG_OF = {"namespaces": "--ns", "hostname": "--hostname", "cwd": "--cwd", "env": "--env",
           "run_as": "--user", "user": "--map-uid/--map-gid/--map-root-user/--map-auto",
           "user.uid": "--map-uid", "user.gid": "--map-gid", "cgroup.keep": "--keep-cgroup",
           "cgroup.path": "--cgroup", "cgroup.memory_max": "--memory-max",
           "cgroup.memory_high": "--memory-high", "cgroup.pids_max": "--pids-max",
           "cgroup.cpu_max": "--cpu-max", "cgroup.cpu_weight": "--cpu-weight", "cgroup": "--cgroup",
           "caps": "--cap-drop/--cap-add/--cap-keep/--cap-ambient",
           "seccomp": "--seccomp/--seccomp-allow/--seccomp-deny/--seccomp-errno",
           "argv": "COMMAND", "sysctl": "--sysctl", "nft": "--nft", "rootfs": "--rootfs",
           "net.links": "--veth", "net.routes": "--route", "mounts": "--tmpfs/--bind",
           "restart": "--restart", "max_restarts": "--max-restarts", "name": "--name"}


def _as_flags(e, flags: dict, spec_file: str | None):
    """Rewrite `key: why` lines whose key came from a flag into `--flag: why`."""
    from linx_core.errors import UsageError
    lines = []
    for err in e.errors:
        key, _, why = err.partition(": ")
        top = key.split("[")[0]
        section = top.split(".")[0]
        flag = FLAG_OF.get(top) or FLAG_OF.get(section)
        if flag and (section in flags or section == "argv" or spec_file is None):
            lines.append(f"{flag}: {why}")
        else:
            lines.append(f"{spec_file or 'linx run'}: {err}")
    out = UsageError("", "\n".join(lines))
    out.errors = lines
    return out


def _usage(where: str, text: str, expected: str):
    from linx_core.errors import UsageError
    return UsageError(where, f"{text!r}: expected {expected}")


def _pairs(items: list[str], where: str) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise _usage(where, item, "KEY=VALUE")
        out[key] = value
    return out


def _rootfs(path: str | None):
    return {"path": os.path.abspath(path)} if path else None


def _tmpfs(text: str) -> dict:
    path, _, data = text.partition(":")
    if not path.startswith("/"):
        raise _usage("--tmpfs", text, "an absolute PATH[:OPTIONS]")
    return {"type": "tmpfs", "target": path, **({"data": data} if data else {})}


def _bind(text: str) -> dict:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/") or (len(parts) == 3 and parts[2] != "ro"):
        raise _usage("--bind", text, "SRC:DST[:ro] with DST absolute")
    return {"type": "bind", "source": os.path.abspath(parts[0]), "target": parts[1],
            **({"options": ["ro"]} if len(parts) == 3 else {})}


def _veth(text: str) -> dict:
    parts = text.split(",")
    if not 2 <= len(parts) <= 4 or not all(parts[:2]):
        raise _usage("--veth", text, "HOST,NAME[,ADDR/LEN[,HOSTADDR/LEN]]")
    link = {"kind": "veth", "host": parts[0], "name": parts[1]}
    if len(parts) > 2 and parts[2]:
        link["addresses"] = [parts[2]]
    if len(parts) > 3 and parts[3]:
        link["host_addresses"] = [parts[3]]
    return link


def _route(text: str) -> dict:
    to, comma, via = text.partition(",")
    if not comma or not to or not via:
        raise _usage("--route", text, "TO,VIA (TO may be default)")
    return {"to": to, "via": via}
