"""bench/net_route_apply: add 10,000 routes from a batch file, whole process:
`linx net apply` vs `ip -batch` (and a pyroute2 add loop), each into a fresh netns, in one
run. Prints the best of N runs, the ratios, and where linx's time goes (stages()). Run as
root:

    .venv/bin/python bench/net_route_apply.py [ROUTES] [RUNS]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROUTES = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LINX = os.path.join(os.path.dirname(sys.executable), "linx")

PYROUTE2 = """
import sys
from pyroute2 import NetNS
ns = NetNS(sys.argv[1])
idx = ns.link_lookup(ifname="b0")[0]
for i in range(int(sys.argv[2])):
    ns.route("add", dst=f"10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}/32", gateway="10.255.0.2", oif=idx)
ns.close()
"""


def fresh_netns() -> str:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    for cmd in ("link add b0 type veth peer name b1", "link set b0 up", "link set b1 up",
                "addr add 10.255.0.1/16 dev b0"):
        subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)
    return ns


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}   # as installed: bytecode cached


def timed(argv_of_ns, runs: int = RUNS, routes: int = ROUTES) -> tuple[float, float]:
    """Best (wall, cpu) over `runs`, each in a fresh netns that is checked and removed."""
    walls, cpus = [], []
    for _ in range(runs):
        ns = fresh_netns()
        try:
            t = time.perf_counter()
            p = subprocess.Popen(argv_of_ns(ns), stdout=subprocess.DEVNULL, env=ENV)
            _, status, ru = os.wait4(p.pid, 0)
            walls.append(time.perf_counter() - t)
            cpus.append(ru.ru_utime + ru.ru_stime)
            assert os.waitstatus_to_exitcode(status) == 0, argv_of_ns(ns)
            count = subprocess.run(["ip", "-n", ns, "route", "show", "via", "10.255.0.2"],
                                   capture_output=True, text=True).stdout.count("\n")
            assert count == routes, (argv_of_ns(ns)[0], count)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return min(walls), min(cpus)


STAGES = """
import gc, sys, time
gc.disable()                                # as in a short run: no collection of the batch
t0 = time.perf_counter()
from linx_core.netlink import rtnl
from linx_core.netlink.rtnl import command
t1 = time.perf_counter()
cmds = command.parse_batch(open(sys.argv[1]).read(), "batch")
t2 = time.perf_counter()
with rtnl.open(sys.argv[2]) as s:
    t3 = time.perf_counter()
    command.apply(s, cmds)
    t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t4 - t3)
"""


def stages(batch: str) -> str:
    """Where linx's time goes, each stage its best of RUNS: the whole process on an empty
    batch (interpreter, CLI, socket), then in one process: importing the netlink code,
    parsing the file into requests, and sending them (kernel work and answers included)."""
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as empty:
        start = timed(lambda ns: [LINX, "net", "-n", ns, "apply", empty.name], routes=0)[0]
    best = [float("inf")] * 3
    for _ in range(RUNS):
        ns = fresh_netns()
        try:
            out = subprocess.run([sys.executable, "-c", STAGES, batch, ns], capture_output=True,
                                 text=True, check=True, env=ENV).stdout
            best = [min(a, float(b)) for a, b in zip(best, out.split())]
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return (f"process on an empty batch {start:.3f}s; import {best[0]:.3f}s, parse + build "
            f"requests {best[1]:.3f}s ({best[1] / ROUTES * 1e6:.1f} us/line), send + kernel + "
            f"answers {best[2]:.3f}s")


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as f, \
            tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        for i in range(ROUTES):
            f.write(f"route add 10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 via 10.255.0.2 dev b0\n")
        f.flush()
        script.write(PYROUTE2)
        script.flush()
        ip_ = timed(lambda ns: ["ip", "-n", ns, "-batch", f.name])
        linx = timed(lambda ns: [LINX, "net", "-n", ns, "apply", f.name])
        pr2 = timed(lambda ns: [sys.executable, script.name, ns, str(ROUTES)], 1)   # ~30x slower: once
        print(f"{ROUTES} route adds, best of {RUNS}:")
        for name, (wall, cpu) in (("ip -batch", ip_), ("linx net apply", linx), ("pyroute2 add loop", pr2)):
            print(f"  {name:<18} {wall:7.3f} s wall  {cpu:7.3f} s cpu")
        print(f"  linx / ip: {linx[0] / ip_[0]:.2f}x wall, {linx[1] / ip_[1]:.2f}x cpu (target <= 2x); "
              f"pyroute2 / linx: {pr2[0] / linx[0]:.1f}x")
        print("  linx by stage: " + stages(f.name))


if __name__ == "__main__":
    main()
