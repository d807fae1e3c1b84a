"""`linx reconcile FILE`: keep the kernel converged on a desired-state file (linx_core/reconcile.py)."""
import re
import sys

import typer

from ._app import new_app

app = new_app("Keep sysctls, addresses and routes, and cgroup limits converged on a desired-state file.")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?\Z")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}


def duration(text: str, where: str, zero: bool) -> float:
    m = _DURATION.match(text.strip())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else -1
    if seconds < 0 or (seconds == 0 and not zero):
        from linx_core.errors import UsageError
        raise UsageError(where, f"{text!r}: expected a duration such as 5s, 500ms, 1m"
                                + ("" if zero else " (more than 0)"))
    return seconds


def _print_json(doc) -> None:
    import json
    print(json.dumps(doc), flush=True)


def _line(report) -> str:
    parts = [", ".join(map(str, report.applied))] if report.applied else []
    parts += [f"failed: {op}: {err}" for op, err in report.failed]
    if report.pending:
        parts.append(f"pending: {', '.join(map(str, report.pending))}")
    return f"{report.source}: " + "; ".join(parts)


def _emitter(as_json: bool, every: bool):
    """Print a pass that did or failed something; quiet when converged (every=True, for
    --once --json: each pass's report, so a script gets one per section). Reports go to
    stdout; a pass that could not run goes to stderr (text) or stdout as {"source", "error"}
    (JSON)."""
    from linx_core.errors import LinxError

    def emit(key, result) -> None:
        if isinstance(result, LinxError):
            if as_json:
                _print_json({"source": key, "error": str(result)})
            else:
                print(f"linx: {key}: {result}", file=sys.stderr, flush=True)
        elif as_json and every:
            _print_json(result.to_json())
        elif result.applied or not result.converged:
            if as_json:
                _print_json(result.to_json())
            else:
                print(_line(result), flush=True)
    return emit


@app.command("reconcile")
def reconcile(
    file: str = typer.Argument(..., metavar="FILE", help="The desired state (TOML)."),
    once: bool = typer.Option(False, "--once", help="One pass per section, then exit: 0 converged, 1 not."),
    diff: bool = typer.Option(False, "--diff",
                              help="Print what a pass would do, change nothing; exit 1 if anything, 0 if nothing."),
    interval: str = typer.Option("5s", "--interval", metavar="DURATION",
                                 help="Resync every section this often (5s, 500ms, 1m)."),
    debounce: str = typer.Option("100ms", "--debounce", metavar="DURATION",
                                 help="Coalesce change events and SIGHUPs arriving within this long."),
    as_json: bool = typer.Option(False, "--json",
                                 help='JSON lines, one report per pass: {"source", "converged", "applied", '
                                      '"failed", "pending", "last_applied"}; with --diff one document '
                                      '[{"source", "plan": [...]}, ...].'),
) -> None:
    """Keep sysctls, addresses and routes, and cgroup limits converged on a desired-state file.

    FILE is TOML, one section per kind of state, each converged on its own: [sysctl]
    (KEY = VALUE, in = TARGET, revert_on_release), [net] (netns = TARGET, protocol,
    [net.addresses] DEV = ["ADDR/LEN", ...], [[net.routes]] with to, via, table, metric) and
    [cgroup."PATH"] (KNOB = VALUE, revert_on_release); see examples/desired-state.toml.

    A pass observes a section's state, diffs it against FILE and applies the difference. Passes
    run every --interval, within --debounce of an rtnetlink change event (events are hints;
    the resync is the truth), and after SIGHUP, which re-reads FILE: a section or key removed
    from it is released. SIGTERM or SIGINT stop the loop, leaving the state as last applied.

    Only what linx owns is ever undone: routes carrying its protocol tag (default 76), and
    addresses it installed in this run (kept in memory, never on disk). A sysctl or knob
    leaving FILE keeps its value unless its section says revert_on_release = true. Links and
    cgroups are never created: a pass that needs a missing one fails and is retried.

    One line per pass that changed or failed something (quiet when converged); with --json
    one report per line. A pass that fails does not stop the loop. Exit status: 2 for a bad
    FILE (naming the key); --once 0 when converged, 1 if not; --diff 1 when a pass would
    change something, 0 when not."""
    from linx_core import reconcile as core
    from linx_core.errors import LinxError, UsageError
    if diff and once:
        raise UsageError("--diff", "cannot be combined with --once")
    period = duration(interval, "--interval", zero=False)
    delay = duration(debounce, "--debounce", zero=True)
    if diff:
        raise typer.Exit(_diff(core.load(file), as_json))
    emit = _emitter(as_json, every=once)
    if once:
        status = 0
        for source in core.load(file):
            try:
                report = core.reconcile(source, {})
            except LinxError as e:
                emit(source.key, e)
                status = 1
                continue
            emit(source.key, report)
            status |= not report.converged
        raise typer.Exit(status)
    import signal
    loop = core.Loop(lambda: core.load(file), interval=period, debounce=delay, emit=emit)
    signal.signal(signal.SIGHUP, lambda *_: loop.reload())
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    loop.run()


def _diff(sources, as_json: bool) -> int:
    plans = [(source.key, source.plan({})) for source in sources]
    if as_json:
        _print_json([{"source": key, "plan": [op.to_json() for op in plan]} for key, plan in plans])
    else:
        for key, plan in plans:
            for op in plan:
                print(f"{key}: {op}")
    return 1 if any(plan for _, plan in plans) else 0
