"""`linx sysctl`: read and write kernel tunables (/proc/sys), on the host or inside another
process's namespaces (--in), and apply sysctl.d files."""
import sys

import typer

from ._app import new_app

app = new_app("Read and write kernel tunables (/proc/sys), on the host or in a namespace.")

IN_HELP = ("Where: host (default), pid:N, a namespace file, an ip netns name or a session. "
           "Only for keys a namespace owns: net.*, kernel.hostname/domainname, IPC keys.")


def _target(text):
    from linx_core import target
    return target.parse(text, "--in")


def _dump(doc) -> None:
    import json
    print(json.dumps(doc, indent=2))


@app.command("get")
def get(keys: list[str] = typer.Argument(..., metavar="KEY..."),
        in_: str = typer.Option(None, "--in", metavar="TARGET", help=IN_HELP),
        as_json: bool = typer.Option(False, "--json", help='{"KEY": "VALUE", ...}: each key\'s value as text.')) -> None:
    """Print each key's value, one per line (as sysctl -n)."""
    from linx_core import sysctl
    target = _target(in_)
    for key in keys:
        sysctl.check_key(key)
    values = {key: sysctl.read(key, target) for key in keys}
    if as_json:
        _dump(values)
    else:
        for value in values.values():
            print(value)


@app.command("get-int")
def get_int(keys: list[str] = typer.Argument(..., metavar="KEY..."),
            in_: str = typer.Option(None, "--in", metavar="TARGET", help=IN_HELP),
            as_list: bool = typer.Option(False, "--list",
                                         help="The value is a list of integers (kernel.printk, tcp_rmem)."),
            as_json: bool = typer.Option(False, "--json", help='{"KEY": N, ...}')) -> None:
    """Print each key's value as an integer; exit 2 when it is not one."""
    from linx_core import sysctl
    target = _target(in_)
    for key in keys:
        sysctl.check_key(key)
    read = sysctl.read_ints if as_list else sysctl.read_int
    values = {key: read(key, target) for key in keys}
    if as_json:
        _dump(values)
    else:
        for value in values.values():
            print(" ".join(map(str, value)) if as_list else value)


@app.command("set")
def set_(assignments: list[str] = typer.Argument(..., metavar="KEY=VALUE..."),
         in_: str = typer.Option(None, "--in", metavar="TARGET", help=IN_HELP),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; the exit status says.")) -> None:
    """Write each KEY=VALUE in order and print KEY = VALUE for each (as sysctl -w). All are
    checked before the first write, and when the kernel refuses one, those already written
    are set back."""
    from linx_core import sysctl
    from linx_core.errors import UsageError
    values = {}
    for item in assignments:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(item, "expected KEY=VALUE")
        values[sysctl.check_key(key.strip())] = value.strip()
    sysctl.write_many(values, _target(in_))
    if not quiet:
        sys.stdout.writelines(f"{key} = {value}\n" for key, value in values.items())


@app.command("list")
def list_(prefix: str = typer.Argument("", metavar="[PREFIX]", help="A subtree (net.ipv4) or one key."),
          in_: str = typer.Option(None, "--in", metavar="TARGET",
                                  help=IN_HELP + " Lists only that namespace's keys."),
          as_json: bool = typer.Option(False, "--json", help='[{"key", "value"}, ...], sorted by key.')) -> None:
    """Print every readable key under PREFIX as KEY = VALUE, sorted (as sysctl -a)."""
    from linx_core import sysctl
    entries = sysctl.list_(prefix, _target(in_))
    if as_json:
        _dump([{"key": e.key, "value": e.value} for e in entries])
    else:
        sys.stdout.writelines(f"{e.key} = {e.value}\n" for e in entries)


@app.command("apply")
def apply(files: list[str] = typer.Argument(..., metavar="FILE..."),
          in_: str = typer.Option(None, "--in", metavar="TARGET", help=IN_HELP),
          as_json: bool = typer.Option(False, "--json",
                                       help='[{"file", "line", "key", "value", "status", "error"}, ...]: '
                                            'status ok, failed or ignored.'),
          quiet: bool = typer.Option(False, "--quiet", "-q",
                                     help="No report; only the keys that failed, on stderr.")) -> None:
    """Apply sysctl.conf / sysctl.d files (KEY = VALUE lines, # or ; comments, a "-" before
    KEY ignores a failure to set it). Every file is read and checked first: a bad line is
    reported as FILE:LINE and nothing is written. Then each key is set in order, best effort,
    and reported. Exit 1 when a key without "-" failed."""
    from linx_core import sysctl
    from linx_core.errors import UsageError, errno_text
    if quiet and as_json:
        raise UsageError("--quiet", "give --quiet or --json, not both")
    target = _target(in_)
    report = sysctl.apply(sysctl.load_conf(files), target)
    if as_json:
        _dump([{"file": r.assignment.file, "line": r.assignment.line, "key": r.assignment.key,
                "value": r.assignment.value, "status": r.status,
                "error": str(r.error) if r.error else None} for r in report])
    else:
        for r in report:
            a = r.assignment
            line = f"{a.file}:{a.line}: {a.key} = {a.value}: "
            if quiet:
                if r.status == "failed":
                    print(f"linx: {line}{errno_text(r.error.errno)}", file=sys.stderr)
            elif r.error is None:
                print(line + "ok")
            else:
                print(line + errno_text(r.error.errno) + (" (ignored)" if r.status == "ignored" else ""))
    if any(r.status == "failed" for r in report):
        raise typer.Exit(1)
