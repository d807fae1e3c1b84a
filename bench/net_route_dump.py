"""bench/net_route_dump: list 100,000 routes, whole process, output into a pipe:
`linx net -j route show` vs `ip -j route show` vs a pyroute2 script (import + dump + JSON),
in one throwaway netns, in one run. Prints the best of N runs, CPU time, peak RSS, the
ratios, and where linx's time goes. Run as root:

    .venv/bin/python bench/net_route_dump.py [ROUTES] [RUNS]
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROUTES = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LINX = os.path.join(os.path.dirname(sys.executable), "linx")

PYROUTE2 = """
import json, sys
from pyroute2 import NetNS
ns = NetNS(sys.argv[1])
rows = [{"dst": r.get("dst"), "dst_len": r["dst_len"], "gateway": r.get("gateway"),
         "oif": r.get("oif")} for r in ns.get_routes(family=2, table=254)]
ns.close()
sys.stdout.write(json.dumps(rows))
"""


def measure(argv) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS KiB) of argv with stdout into a pipe we drain."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    while p.stdout.read(1 << 20):
        pass
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{argv[0]} failed: {p.returncode}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def best(argv, runs: int = RUNS) -> tuple[float, float, int]:
    runs = [measure(argv) for _ in range(runs)]
    return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)


def phases(ns: str) -> str:
    """linx's time by stage, in-process (same code the CLI runs)."""
    code = f"""
import gc, json, time
gc.disable()
t0 = time.perf_counter()
from linx_core.netlink import rtnl, transport
from linx_core.netlink.rtnl import link, route
t1 = time.perf_counter()
with rtnl.open({ns!r}) as s:
    msgs = transport.dump(s, route.RTM_GETROUTE, route.RTMSG.pack(2, 0, 0, 0, 254, 0, 0, 0, 0))
    t2 = time.perf_counter()
    routes = [route.decode(m.body) for m in msgs]
    t3 = time.perf_counter()
    by_index = {{l.index: l for l in link.list(s)}}
    rows = [route.to_json(r, by_index, 254) for r in routes]
    t4 = time.perf_counter()
    text = json.dumps(rows, separators=(",", ":"))
    t5 = time.perf_counter()
print(f"import {{t1 - t0:.3f}}s  dump (kernel + recv + split) {{t2 - t1:.3f}}s  decode {{t3 - t2:.3f}}s  "
      f"ip -j shape {{t4 - t3:.3f}}s  json {{t5 - t4:.3f}}s")
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main():
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".batch") as f:
            f.write("link add b0 type veth peer name b1\nlink set b0 up\nlink set b1 up\n"
                    "addr add 10.255.0.1/16 dev b0\n")
            for i in range(ROUTES):
                f.write(f"route add 10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 via 10.255.0.2\n")
            f.flush()
            subprocess.run(["ip", "-n", ns, "-batch", f.name], check=True)
        ip_ = best(["ip", "-n", ns, "-j", "route", "show"])
        linx = best([LINX, "net", "-n", ns, "-j", "route", "show"])
        with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
            script.write(PYROUTE2)
            script.flush()
            pr2 = best([sys.executable, script.name, ns], 1)    # ~50x slower: once is enough
        print(f"{ROUTES} routes, best of {RUNS}, stdout into a pipe:")
        for name, (wall, cpu, rss) in (("ip -j route show", ip_), ("linx net -j route show", linx),
                                       ("pyroute2 (import + dump)", pr2)):
            print(f"  {name:<26} {wall:7.3f} s wall  {cpu:7.3f} s cpu  {rss / 1024:6.0f} MiB peak")
        print(f"  linx / ip: {linx[0] / ip_[0]:.2f}x wall, {linx[1] / ip_[1]:.2f}x cpu (target <= 3x); "
              f"pyroute2 / linx: {pr2[0] / linx[0]:.1f}x")
        print("  linx by stage: " + phases(ns))
        # after measuring: a child's peak RSS counts this process's pages at fork time
        ours = json.loads(subprocess.run([LINX, "net", "-n", ns, "-j", "route", "show"],
                                         capture_output=True, check=True).stdout)
        theirs = json.loads(subprocess.run(["ip", "-n", ns, "-j", "route", "show"],
                                           capture_output=True, check=True).stdout)
        print("  same objects as ip -j:", ours == theirs)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
