"""`linx cgroup`: cgroup v2 through its filesystem. PATH is relative to the cgroup2 mount
(found in mountinfo) or absolute under it; anything else, v1 hierarchies included, is refused."""
import sys

import typer

from ._app import new_app

app = new_app("Create, limit, freeze and inspect cgroup v2 groups.")

PATH_HELP = "A cgroup: relative to the cgroup2 mount, or an absolute path under it."
TIMEOUT_HELP = "Seconds to wait for the kernel to report the change in cgroup.events."

# `linx run` flags for the typed limits, and the knob each sets
def _path(text: str) -> str:
    from linx_core import cgroup
    return cgroup.resolve(text)


def _dump(doc) -> None:
    import json
    print(json.dumps(doc, indent=2))


@app.command("create")
def create(path: str = typer.Argument(..., help=PATH_HELP),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; the exit status says.")) -> None:
    """Make a cgroup (an existing one is fine) and print its absolute path."""
    from linx_core import cgroup
    cg = _path(path)
    cgroup.create(cg)
    if not quiet:
        print(cg)


@app.command("destroy")
def destroy(path: str = typer.Argument(..., help=PATH_HELP),
            kill: bool = typer.Option(False, "--kill",
                                      help="First SIGKILL everything in it (cgroup.kill) and wait until it is empty."),
            timeout: float = typer.Option(10.0, "--timeout", min=0, help=TIMEOUT_HELP)) -> None:
    """Remove an empty cgroup; EBUSY while processes or child cgroups are in it."""
    from linx_core import cgroup
    cgroup.destroy(_path(path), kill=kill, timeout=timeout)


@app.command("add-process")
def add_process(path: str = typer.Argument(..., help=PATH_HELP),
                pids: list[int] = typer.Argument(..., metavar="PID...")) -> None:
    """Move processes (and so their future children) into the cgroup (cgroup.procs)."""
    from linx_core import cgroup
    from linx_core.errors import UsageError
    cg = _path(path)
    for pid in pids:
        if pid <= 0:
            raise UsageError("PID", f"{pid} is not a process id")
    for pid in pids:
        cgroup.add_process(cg, pid)


@app.command("read")
def read(path: str = typer.Argument(..., help=PATH_HELP),
         file: str = typer.Argument(..., help="An interface file: memory.current, cgroup.procs, ..."),
         as_json: bool = typer.Option(False, "--json", help='{"path", "file", "value"}')) -> None:
    """Print an interface file (trailing newline trimmed)."""
    from linx_core import cgroup
    cg = _path(path)
    value = cgroup.read(cg, file)
    if as_json:
        _dump({"path": cg, "file": file, "value": value})
    else:
        print(value)


@app.command("write")
def write(path: str = typer.Argument(..., help=PATH_HELP),
          file: str = typer.Argument(..., help="An interface file."),
          value: str = typer.Argument(..., help="Written as is, in one write(2).")) -> None:
    """Write a raw value to an interface file (for knobs without a typed setter: see `set`)."""
    from linx_core import cgroup
    cgroup.write(_path(path), file, value)


@app.command("set")
def set_(path: str = typer.Argument(..., help=PATH_HELP),
         limits: list[str] = typer.Argument(..., metavar="KNOB=VALUE...")) -> None:
    """Set typed limits: memory.max, memory.high, memory.swap.max (bytes: 256M, 1G, or max),
    pids.max (count or max), cpu.max (QUOTA/PERIOD: 50ms/100ms, 50000 100000, or max),
    cpu.weight (1-10000), io.max ("MAJ:MIN rbps=10M wiops=100", or /dev/NAME for MAJ:MIN).
    Every value is checked before the first write; when the kernel refuses one, the knobs
    already written are set back."""
    from linx_core import cgroup
    from linx_core.errors import UsageError
    values = {}
    for item in limits:
        knob, eq, value = item.partition("=")
        if not eq:
            raise UsageError(item, "expected KNOB=VALUE")
        values[knob] = cgroup.render(knob, value, knob)
    cgroup.set_limits(_path(path), values)


@app.command("freeze")
def freeze(path: str = typer.Argument(..., help=PATH_HELP),
           timeout: float = typer.Option(10.0, "--timeout", min=0, help=TIMEOUT_HELP)) -> None:
    """Stop every process in the cgroup and below; returns once cgroup.events says frozen."""
    from linx_core import cgroup
    cgroup.freeze(_path(path), timeout)


@app.command("thaw")
def thaw(path: str = typer.Argument(..., help=PATH_HELP),
         timeout: float = typer.Option(10.0, "--timeout", min=0, help=TIMEOUT_HELP)) -> None:
    """Let a frozen cgroup run again; returns once cgroup.events says it is not frozen."""
    from linx_core import cgroup
    cgroup.thaw(_path(path), timeout)


@app.command("stats")
def stats(path: str = typer.Argument(..., help=PATH_HELP),
          as_json: bool = typer.Option(False, "--json",
                                       help='{"path", "cpu_usec", "memory_current", "pids_current", ...}; '
                                            'null when a source file is missing.')) -> None:
    """CPU, memory and process counters (cpu.stat, memory.current, memory.peak, pids.current);
    a counter whose file is missing (controller not enabled) is shown as -."""
    from linx_core import cgroup
    cg = _path(path)
    s = cgroup.stats(cg).to_dict()
    if as_json:
        _dump({"path": cg, **s})
        return
    width = max(map(len, s))
    for name, value in s.items():
        print(f"{name:<{width}}  {'-' if value is None else value}")


@app.command("enable-controllers")
def enable_controllers(path: str = typer.Argument(..., help=PATH_HELP),
                       controllers: list[str] = typer.Argument(..., metavar="CONTROLLER..."),
                       as_json: bool = typer.Option(False, "--json", help='{"enabled": [...], "failed": {...}}')) -> None:
    """Let the cgroup's children use controllers (cgroup.subtree_control), one at a time, so a
    refused one does not undo the others. Reports each; exit 1 when any was refused."""
    from linx_core import cgroup
    from linx_core.errors import errno_text
    failed = cgroup.enable_controllers(_path(path), controllers)
    if as_json:
        _dump({"enabled": [c for c in controllers if c not in failed],
               "failed": {c: {"errno": errno_text(e.errno).split(" ")[0], "error": str(e)}
                          for c, e in failed.items()}})
    else:
        for c in controllers:
            print(f"{c}: {'enabled' if c not in failed else errno_text(failed[c].errno)}")
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def ls(path: str = typer.Argument(".", help=PATH_HELP + " Default: the whole hierarchy."),
       as_json: bool = typer.Option(False, "--json",
                                    help='[{"path", "depth", "procs", "populated", "frozen", '
                                         '"subtree_control"}, ...], depth first.')) -> None:
    """The cgroup tree: processes directly in each, populated/frozen, enabled controllers."""
    from linx_core import cgroup
    nodes = cgroup.tree(_path(path))
    if as_json:
        _dump(nodes)
        return

    from ._table import show

    def flag(v):
        return "-" if v is None else ("yes" if v else "no")

    rows = []
    for n in nodes:     # the tree is the first column's indent: two spaces a level
        name = n["path"] if n["depth"] == 0 else n["path"].rsplit("/", 1)[1]
        rows.append(["  " * n["depth"] + name, str(n["procs"] if n["procs"] is not None else "-"),
                     flag(n["populated"]), flag(n["frozen"]), " ".join(n["subtree_control"])])
    show(["CGROUP", "PROCS", "POPULATED", "FROZEN", "CONTROLLERS"], rows, right=(1,))


@app.command("top")
def top(path: str = typer.Argument(".", help=PATH_HELP + " Default: the whole hierarchy."),
        interval: float = typer.Option(1.0, "--interval", "-d", min=0.1, help="Seconds between refreshes."),
        count: int = typer.Option(0, "--count", "-n", min=0, help="Stop after N refreshes (0: until Ctrl-C).")) -> None:
    """A refreshing table of CPU, memory and processes per cgroup, busiest first. Needs a
    terminal; scripts should read `linx cgroup stats --json` instead."""
    from linx_core import cgroup
    from linx_core.errors import UsageError
    if not sys.stdout.isatty():
        raise UsageError("linx cgroup top", "stdout is not a terminal; for scripts use "
                                            "`linx cgroup stats --json` or `linx cgroup ls --json`")
    cg = _path(path)
    cgroup.tree(cg)     # a missing PATH fails here, before the screen is taken over
    import time

    from rich.live import Live
    from rich.table import Table

    def sample():
        out = {}
        for node in cgroup.tree(cg):
            try:
                out[node["path"]] = (node, cgroup.stats(cgroup.resolve(node["path"].lstrip("/") or ".")))
            except cgroup.CgroupError:
                continue    # removed while sampling
        return time.monotonic(), out

    def table(before, after) -> Table:
        (t0, old), (t1, new) = before, after
        t = Table(title=f"cgroups under {cgroup.relative(cg)} (every {interval:g}s, Ctrl-C quits)",
                  title_justify="left", box=None)
        for name, justify in (("CGROUP", "left"), ("CPU%", "right"), ("MEMORY", "right"),
                              ("PIDS", "right"), ("PROCS", "right")):
            t.add_column(name, justify=justify)
        rows = []
        for name, (node, s) in new.items():
            prev = old.get(name, (None, None))[1]
            cpu = None
            if s.cpu_usec is not None and prev is not None and prev.cpu_usec is not None and t1 > t0:
                cpu = (s.cpu_usec - prev.cpu_usec) / ((t1 - t0) * 1e6) * 100
            rows.append((cpu if cpu is not None else -1.0, name, node, s, cpu))
        rows.sort(key=lambda r: (-r[0], r[1]))
        for _, name, node, s, cpu in rows:
            t.add_row(name, "-" if cpu is None else f"{cpu:.1f}",
                      "-" if s.memory_current is None else cgroup.human_bytes(s.memory_current),
                      "-" if s.pids_current is None else str(s.pids_current),
                      "-" if node["procs"] is None else str(node["procs"]))
        return t

    previous = sample()
    shown = 0
    try:
        with Live(table(previous, previous), auto_refresh=False, screen=False) as live:
            while count == 0 or shown < count:
                time.sleep(interval)
                current = sample()
                live.update(table(previous, current), refresh=True)
                previous = current
                shown += 1
    except KeyboardInterrupt:
        pass
