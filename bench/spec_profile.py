"""bench/spec_profile: where the time of `linx run --spec` of the headline (examples/web.toml as
bench/spec.py runs it: with its cgroup and limits on a pure cgroup v2 machine, without them on
a hybrid host) goes, with `true` as the workload, inside a throwaway network namespace:

1. process start: the venv's python doing nothing, and `linx --help`;
2. imports: `python -X importtime` of the whole run, by top-level module (cumulative);
3. phases, in one process (linx's own entry point, each phase timed by wrapping it): the
   first run (imports included) and the best of N later ones: spec load, plan, agent spawn
   until the child is parked, each checkpoint step, child settings, proceed until exit,
   cleanup;
4. cProfile of the later runs: linx's functions by cumulative time.

    .venv/bin/python bench/spec_profile.py [N]     (N later runs, default 10; 3 in the VM)
    python tests/vm/run.py --bench bench/spec_profile.py
"""
import collections
import cProfile
import importlib.util
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_spec", os.path.join(HERE, "spec.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
INSIDE = "LINX_BENCH_PROFILE_INSIDE"


def wall(argv: list[str], n: int) -> float:
    """Best wall time of n runs."""
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def importtime(argv: list[str]) -> None:
    """`python -X importtime` of argv: the total, and the top-level imports by cumulative time."""
    r = subprocess.run([sys.executable, "-X", "importtime", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=True)
    top = collections.Counter()
    total = 0
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:"):].split("|")
        total += int(self_us)
        if not name[1:].startswith(" "):          # top level: one space of indentation
            top[name.strip().split(".")[0]] += int(cumulative)
    print(f"\nimports (python -X importtime): {total / 1e3:.1f} ms in all; top-level, cumulative:")
    for name, us in top.most_common(14):
        print(f"  {us / 1e3:8.1f} ms  {name}")


class Phases:
    """Wall time of named calls, by wrapping functions of linx's modules (in this process only)."""

    def __init__(self):
        self.times: list[tuple[str, float]] = []

    def wrap(self, owner, name: str, label: str, static: bool = False) -> None:
        orig = getattr(owner, name)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                self.times.append((label, time.perf_counter() - t))
        setattr(owner, name, staticmethod(timed) if static else timed)

    def install(self) -> None:
        from linx_core import process, spec
        self.wrap(spec, "load", "spec load (TOML)")
        self.wrap(spec, "plan", "plan (validate, compile)")
        self.wrap(process.Session, "spawn", "agent spawn", static=True)
        self.wrap(process.Session, "wait_ready", "until the child is parked")
        self.wrap(spec, "child_settings", "child settings (caps, seccomp)")
        self.wrap(process.Session, "proceed", "proceed")
        self.wrap(process.Session, "wait", "proceed until the workload's exit")
        self.wrap(spec, "finish", "cleanup (cgroup removal)")
        apply = spec.apply

        def apply_timed(p, pid, session=None):
            for step in p.steps:
                self.wrap(step, "apply", f"step {step.key}")
            return apply(p, pid, session)
        spec.apply = apply_timed


def run_once(argv: list[str], host_links: list[str]) -> float:
    """One in-process run; then, untimed, wait for its host-side links to be gone: the kernel
    deletes them when it tears the workload's netns down, asynchronously, some ms after the
    workload ended, and the next run makes them again (EEXIST if still there)."""
    from linx_cli.main import main
    t = time.perf_counter()
    try:
        main(argv)
    except SystemExit as e:
        if e.code:
            raise RuntimeError(f"linx {' '.join(argv)} exited {e.code}") from None
    elapsed = time.perf_counter() - t
    deadline = time.monotonic() + 30
    names = {name for _, name in socket.if_nameindex()}
    while any(name in names for name in host_links):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the host side of {host_links} is still there 30 s after the run")
        time.sleep(0.005)
        names = {name for _, name in socket.if_nameindex()}
    return elapsed


def inside(spec: str, n: int) -> None:
    import tomllib
    argv = ["run", "--spec", spec, "--", "true"]
    with open(spec, "rb") as f:
        host_links = [link["host"] for link in tomllib.load(f).get("net", {}).get("links", [])]
    linx = os.path.join(os.path.dirname(sys.executable), "linx")
    print(f"process start: python -c pass {wall([sys.executable, '-c', 'pass'], 5) * 1e3:.1f} ms, "
          f"python -I -S -c pass {wall([sys.executable, '-I', '-S', '-c', 'pass'], 5) * 1e3:.1f} ms, "
          f"linx --help {wall([linx, '--help'], 3) * 1e3:.1f} ms; "
          f"linx run --spec: {wall([linx, *argv], 3) * 1e3:.1f} ms", flush=True)
    importtime([linx, *argv])
    phases = Phases()
    t = time.perf_counter()
    import linx_cli.main  # noqa: F401  (the entry point's own import, timed here)
    entry_import = time.perf_counter() - t
    phases.install()
    cold_total = run_once(argv, host_links)
    cold = list(phases.times)
    best: dict[str, float] = {}
    totals = []
    profile = cProfile.Profile()
    for _ in range(n):
        phases.times.clear()
        profile.enable()
        totals.append(run_once(argv, host_links))
        profile.disable()
        for label, secs in phases.times:
            best[label] = min(best.get(label, secs), secs)
    print(f"\nphases in one process: the first run (imports included) | the best of {n} later runs")
    print(f"  {entry_import * 1e3:9.1f} ms | {'':>9}     import linx_cli.main (typer, click)")
    for label, secs in cold:
        print(f"  {secs * 1e3:9.1f} ms | {best.get(label, 0) * 1e3:9.1f} ms  {label}")
    print(f"  {cold_total * 1e3:9.1f} ms | {min(totals) * 1e3:9.1f} ms  the whole run (main())")
    print(f"\ncProfile of the {n} later runs, linx's own functions by cumulative time (per run):")
    stats = pstats.Stats(profile)
    rows = []
    for (path, line, func), (_cc, calls, _tt, cum, _callers) in stats.stats.items():
        if "/linx_core/" in path or "/linx_cli/" in path:
            where = path[path.rindex("/linx_c") + 1:]
            rows.append((cum / n, calls / n, f"{where}:{line}({func})"))
    for cum, calls, name in sorted(rows, reverse=True)[:25]:
        print(f"  {cum * 1e3:9.2f} ms  {calls:6.0f} calls  {name}")


def main():
    if os.environ.get(INSIDE):
        inside(sys.argv[1], int(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3 if bench.IN_VM else 10
    if bench.IN_VM:
        print(bench.EMULATED)
    mode, _ = bench.cgroup_mode()
    work = tempfile.mkdtemp()
    subprocess.run(["ip", "netns", "add", bench.NS], check=True)
    cgroup = None
    if mode == "limits":
        cgroup = os.path.join(bench.CGROOT, bench.PARENT)
        os.mkdir(cgroup)
    try:
        section = None
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu +memory +pids")
            section = bench.cgroup_section(f"{bench.PARENT}/linx", True)
        print(f"the headline: examples/web.toml, {'with a cgroup and limits' if cgroup else 'without its cgroup'}")
        spec = bench.headline(work, section)
        net = ["nsenter", f"--net=/run/netns/{bench.NS}"]
        sys.stdout.flush()
        subprocess.run(net + [sys.executable, os.path.abspath(__file__), spec, str(n)],
                       env={**os.environ, INSIDE: "1"}, check=True)
    finally:
        subprocess.run(["ip", "netns", "del", bench.NS])
        if cgroup:
            bench.remove_cgroup(cgroup)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
