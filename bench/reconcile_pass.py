"""bench/reconcile_pass: what keeping N addresses and N routes converged costs per resync.

linx: one converged pass of the [net] source (open a socket in the netns, dump links,
addresses and routes, diff; nothing to apply), in-process, as the loop runs it every interval.
The peer a shell user would pick: re-assert everything every interval with `ip -batch` of
`addr replace` / `route replace` lines (idempotent, one process). Also the first pass from an
empty netns (linx --once, whole process) vs `ip -batch` of the same adds. Run as root:

    .venv/bin/python bench/reconcile_pass.py [N] [RUNS]
"""
import os
import subprocess
import sys
import tempfile
import time
import uuid

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LINX = os.path.join(os.path.dirname(sys.executable), "linx")


def fresh_netns() -> str:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    for cmd in ("link add b0 type veth peer name b1", "link set b0 up", "link set b1 up"):
        subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)
    return ns


def addresses():
    return [f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}/32" for i in range(N)]


def routes():
    return [f"10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}/32" for i in range(N)]


def desired(ns: str) -> str:
    lines = [f'[net]\nnetns = "{ns}"\n[net.addresses]\nb0 = [\n']
    lines += [f'  "{a}",\n' for a in ["10.255.0.1/16"] + addresses()]
    lines.append("]\n")
    lines += [f'[[net.routes]]\nto = "{r}"\nvia = "10.255.0.2"\n' for r in routes()]
    return "".join(lines)


def batch(verb: str) -> str:
    out = [f"addr {verb} 10.255.0.1/16 dev b0\n"]
    out += [f"addr {verb} {a} dev b0\n" for a in addresses()]
    out += [f"route {verb} {r} via 10.255.0.2 proto 76\n" for r in routes()]
    return "".join(out)


def best(fn, setup=lambda: None) -> float:
    times = []
    for _ in range(RUNS):
        setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def empty(ns: str) -> None:
    """Back to a netns with no address on b0 (its routes go with them)."""
    subprocess.run(["ip", "-n", ns, "addr", "flush", "dev", "b0"], check=True)
    subprocess.run(["ip", "-n", ns, "route", "flush", "proto", "76"], stderr=subprocess.DEVNULL)


def main() -> None:
    from linx_core import reconcile
    ns = fresh_netns()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "desired.toml")
            with open(f, "w") as out:
                out.write(desired(ns))
            adds, replaces = os.path.join(tmp, "add.batch"), os.path.join(tmp, "replace.batch")
            with open(adds, "w") as out:
                out.write(batch("add"))
            with open(replaces, "w") as out:
                out.write(batch("replace"))

            first_linx = best(lambda: subprocess.run([LINX, "reconcile", f, "--once"], check=True,
                                                     stdout=subprocess.DEVNULL), lambda: empty(ns))
            first_ip = best(lambda: subprocess.run(["ip", "-n", ns, "-batch", adds], check=True),
                            lambda: empty(ns))

            source, = reconcile.load(f)
            last = reconcile.reconcile(source, {}).last_applied
            assert source.plan(last) == []
            linx_pass = best(lambda: source.plan(last))
            ip_pass = best(lambda: subprocess.run(["ip", "-n", ns, "-batch", replaces], check=True))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    print(f"{N} addresses + {N} routes, best of {RUNS}")
    print(f"  first pass, whole process: linx reconcile --once {first_linx * 1000:8.1f} ms   "
          f"ip -batch add {first_ip * 1000:8.1f} ms   ratio {first_linx / first_ip:5.2f}x")
    print(f"  converged resync:          linx pass (in-process) {linx_pass * 1000:5.1f} ms   "
          f"ip -batch replace {ip_pass * 1000:8.1f} ms   ratio {linx_pass / ip_pass:5.2f}x")


if __name__ == "__main__":
    main()
