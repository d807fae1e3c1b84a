"""`linx mount`: read the mount table, mount, unmount, bind, remount, move, change
propagation and pivot the root, in linx's mount namespace or a target's (--in)."""
import typer

from ._app import new_app

app = new_app("Mount, bind, move, unmount and pivot the root, in any mount namespace; list mounts.")

IN = typer.Option(None, "--in", metavar="TARGET",
                  help="Mount namespace to act in: host, pid:N, a namespace file or a session name.")
CREATE = typer.Option(False, "--create", help="Create an empty file at TARGET first if missing "
                                              "(to bind a file onto a fresh tmpfs).")

# one column per field: header, findmnt key (the text and --json come from the same row)
COLUMNS = (("TARGET", "target"), ("SOURCE", "source"), ("FSTYPE", "fstype"),
           ("OPTIONS", "options"), ("PROPAGATION", "propagation"))


def _in(text):
    from linx_core import target
    return target.parse(text, "--in")


@app.command("list")
def list_(
    in_: str = IN,
    file: str = typer.Option(None, "--file", metavar="FILE", help="Parse this mountinfo-format file instead."),
    json: bool = typer.Option(False, "--json", help='{"filesystems": [{"id", "target", "source", '
                                                    '"fstype", "options", "propagation", ...}]}: findmnt -J\'s keys.'),
) -> None:
    """List mounts (/proc/PID/mountinfo). --json prints {"filesystems": [...]} as
    `findmnt -J -l -o ID,PARENT,MAJ:MIN,FSROOT,TARGET,SOURCE,FSTYPE,OPTIONS,VFS-OPTIONS,
    FS-OPTIONS,PROPAGATION,OPT-FIELDS` does."""
    from linx_core import mount
    from linx_core.errors import UsageError
    if file and in_:
        raise UsageError("--file", "give --file or --in, not both")
    entries = mount.read(file) if file else mount.list_mounts(_in(in_))
    rows = [e.findmnt() for e in entries]
    if json:
        import json as _json
        print(_json.dumps({"filesystems": rows}, indent=2))
        return
    from ._table import show
    show([h for h, _ in COLUMNS], [[str(r[k] or "") for _, k in COLUMNS] for r in rows])


@app.command("mount")
def mount_(
    source: str = typer.Argument(..., help="Device, directory, or a name (none, tmpfs, proc)."),
    target: str = typer.Argument(...),
    fstype: str = typer.Option("", "--type", "-t", help="Filesystem type (tmpfs, proc, ext4, ...)."),
    data: str = typer.Option("", "--options", "-o", metavar="DATA",
                             help="Filesystem-specific options, passed as mount(2)'s data (size=64M,mode=755)."),
    flags: str = typer.Option("", "--flags", metavar="LIST",
                              help="Comma list of mount flags: ro,nosuid,nodev,noexec,sync,dirsync,noatime,"
                                   "nodiratime,relatime,strictatime,lazytime,mandlock,silent,bind,move,rec,"
                                   "remount,private,shared,slave,unbindable."),
    create: bool = CREATE,
    in_: str = IN,
) -> None:
    """Mount SOURCE on TARGET (mount(2)). A proc mount --in pid:N gets N's pid namespace."""
    from linx_core import mount
    mount.mount(source, target, fstype, flags, data, create=create, in_=_in(in_))


@app.command("umount")
def umount(
    target: str = typer.Argument(...),
    detach: bool = typer.Option(False, "--detach", "-l", help="Lazy: detach now, clean up when no longer busy (MNT_DETACH)."),
    force: bool = typer.Option(False, "--force", "-f", help="Force, for network filesystems (MNT_FORCE)."),
    expire: bool = typer.Option(False, "--expire", help="Mark as expired; a second call unmounts if unused (MNT_EXPIRE)."),
    no_follow: bool = typer.Option(False, "--no-follow", help="Do not follow TARGET if it is a symlink (UMOUNT_NOFOLLOW)."),
    in_: str = IN,
) -> None:
    """Unmount TARGET (umount2(2))."""
    from linx_core import mount
    chosen = {"detach": detach, "force": force, "expire": expire, "no_follow": no_follow}
    mount.umount(target, [k for k, v in chosen.items() if v], in_=_in(in_))


@app.command("bind")
def bind(
    source: str = typer.Argument(...),
    target: str = typer.Argument(...),
    rec: bool = typer.Option(False, "--rec", "-r", help="Recursive: bind the submounts too (MS_REC)."),
    ro: bool = typer.Option(False, "--ro", help="Read-only at TARGET (applied by a bind remount)."),
    create: bool = CREATE,
    in_: str = IN,
) -> None:
    """Make SOURCE visible at TARGET too (MS_BIND)."""
    from linx_core import mount
    mount.bind(source, target, [f for f, on in (("rec", rec), ("ro", ro)) if on],
               create=create, in_=_in(in_))


@app.command("remount")
def remount(
    target: str = typer.Argument(...),
    flags: str = typer.Option("", "--flags", metavar="LIST",
                              help="New flags, e.g. bind,ro: with bind only this mount changes, "
                                   "without it the whole filesystem."),
    data: str = typer.Option("", "--options", "-o", metavar="DATA", help="Filesystem-specific options."),
    in_: str = IN,
) -> None:
    """Change the flags of the mount at TARGET (MS_REMOUNT)."""
    from linx_core import mount
    mount.remount(target, flags, data, in_=_in(in_))


@app.command("move")
def move(source: str = typer.Argument(...), target: str = typer.Argument(...), in_: str = IN) -> None:
    """Move the mount at SOURCE to TARGET (MS_MOVE; no shared mount may be involved)."""
    from linx_core import mount
    mount.move(source, target, in_=_in(in_))


def _propagation(kind: str):
    def command(
        target: str = typer.Argument(...),
        rec: bool = typer.Option(False, "--rec", "-r", help="Also every mount below TARGET (MS_REC)."),
        in_: str = IN,
    ) -> None:
        from linx_core import mount
        mount.set_propagation(target, kind, rec, in_=_in(in_))
    command.__doc__ = f"Make the mount at TARGET {kind} (mount_namespaces(7))."
    return command


for _kind in ("private", "shared", "slave", "unbindable"):
    app.command(f"make-{_kind}")(_propagation(_kind))


@app.command("pivot-root")
def pivot_root(
    new_root: str = typer.Argument(..., help="A mount point (bind it onto itself first)."),
    put_old: str = typer.Argument(..., help="A directory under NEW_ROOT that receives the old root."),
    in_: str = IN,
) -> None:
    """Make NEW_ROOT the root of the mount namespace, the old root at PUT_OLD (pivot_root(2)).
    Runs on a thread of its own that chdirs into NEW_ROOT; linx's own cwd never changes."""
    from linx_core import mount
    mount.pivot_root(new_root, put_old, in_=_in(in_))
