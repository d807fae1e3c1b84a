"""`linx user`: read a process's uid/gid maps and setgroups gate, or write them (once) to a
process in a fresh user namespace, e.g. from a `linx run --checkpoint` command."""
import typer

from ._app import new_app

app = new_app("User namespace identity: read or write uid/gid maps and setgroups.")

TARGET = typer.Argument(..., metavar="PID|pid:N|SESSION", help="The process (its host pid).")


def _pid(text: str) -> int:
    from .exec_ import resolve_pid
    return resolve_pid(text)


@app.command("show")
def show(
    target: str = TARGET,
    json: bool = typer.Option(False, "--json", help='{"pid", "uid_map": [{"inside", "outside", "length"}], '
                                                    '"gid_map": [...], "setgroups"}'),
) -> None:
    """Show the uid map, gid map and setgroups of a process (/proc/PID/{uid,gid}_map)."""
    from linx_core import user
    pid = _pid(target)
    uid, gid, setgroups = user.read_uid_map(pid), user.read_gid_map(pid), user.read_setgroups(pid)
    if json:
        import json as _json
        print(_json.dumps({"pid": pid, "uid_map": [m.as_dict() for m in uid],
                           "gid_map": [m.as_dict() for m in gid], "setgroups": setgroups}, indent=2))
        return
    from ._table import show
    show(["MAP", "INSIDE", "OUTSIDE", "LENGTH"],
         [[name, str(m.inside), str(m.outside), str(m.length)]
          for name, maps in (("uid", uid), ("gid", gid)) for m in maps], right=(1, 2, 3))
    print(f"setgroups {setgroups}")


@app.command("map")
def map_(
    target: str = TARGET,
    map_uid: list[str] = typer.Option([], "--map-uid", metavar="INSIDE:OUTSIDE:LENGTH",
                                      help="A uid range (repeatable)."),
    map_gid: list[str] = typer.Option([], "--map-gid", metavar="INSIDE:OUTSIDE:LENGTH",
                                      help="A gid range (repeatable)."),
    map_root_user: bool = typer.Option(False, "--map-root-user", "-r",
                                       help="Map 0 inside to linx's euid and egid."),
    map_auto: bool = typer.Option(False, "--map-auto",
                                  help="Map linx's first ranges from /etc/subuid and /etc/subgid."),
    setgroups: str = typer.Option("deny", "--setgroups", metavar="deny|skip",
                                  help="Write deny to setgroups before gid_map (default), or leave it."),
) -> None:
    """Write the uid/gid maps of a process in a new user namespace (write-once), setgroups
    deny first. Every entry is checked before anything is written."""
    from linx_core import user
    from linx_core.errors import UsageError
    pid = _pid(target)
    uid, gid = user.plan(map_uid, map_gid, map_root_user, map_auto)
    if not uid and not gid:
        raise UsageError("map", "nothing to write: give --map-uid, --map-gid, --map-root-user or --map-auto")
    user.setup_maps(pid, uid or None, gid or None, setgroups)
