"""`linx caps`: read any process's capability sets and decode masks (capabilities(7)).
Changing them is `linx run --cap-drop/--cap-add/--cap-keep/--cap-ambient`."""
import typer

from ._app import new_app

app = new_app("Read a process's capability sets; decode capability masks.")


@app.command("show")
def show(pid: str = typer.Argument("self", metavar="[PID]", help="A process id (default: linx itself)."),
         as_json: bool = typer.Option(False, "--json",
                                      help='{"pid", "effective": {"mask", "caps", "unknown"}, "permitted", '
                                           '"inheritable", "bounding", "ambient"}')) -> None:
    """Print the effective, permitted, inheritable, bounding and ambient sets of a process
    (from /proc/PID/status): mask and capability names, bits past linx's table as numbers."""
    from linx_core import capabilities
    from linx_core.errors import UsageError
    if pid != "self" and not pid.isdigit():
        raise UsageError("PID", f"{pid!r} is not a process id")
    state = capabilities.read(pid)
    if as_json:
        import json
        import os
        print(json.dumps({"pid": os.getpid() if pid == "self" else int(pid), **state.as_dict()}, indent=2))
        return
    from ._table import show as table
    table(["SET", "MASK", "CAPABILITIES"],
          [[s, f"0x{state.mask(s):016x}", ",".join(capabilities.names(state.mask(s))) or "-"]
           for s in capabilities.SETS])


@app.command("decode")
def decode(mask: str = typer.Argument(..., metavar="HEX", help="A capability mask, 0x optional."),
           as_json: bool = typer.Option(False, "--json",
                                        help='{"mask": "0x...", "caps": [...], "unknown": [BIT, ...]}, '
                                             'as one set of caps show --json')) -> None:
    """Print the mask and its capability names, as `capsh --decode=HEX` does."""
    from linx_core import capabilities
    value, names = capabilities.decode(mask)
    if as_json:
        import json
        print(json.dumps({"mask": f"0x{value:016x}", "caps": [n for n in names if n.startswith("cap_")],
                          "unknown": [int(n) for n in names if not n.startswith("cap_")]}, indent=2))
        return
    print(capabilities.format_decode(value))
