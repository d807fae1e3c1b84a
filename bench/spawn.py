"""bench/spawn: spawn + proceed + wait of `true` with --ns pid,net,mount,uts,ipc, N times from
one Python process through linx_core.process, against `unshare --fork --pid --net --mount
--uts --ipc true` in the same run; and the whole `linx run -- true` CLI against the floor of
`python -c 'import typer'`. Prints per-spawn times and the ratios. Run as root:

    .venv/bin/python bench/spawn.py [N]
"""
import os
import statistics
import subprocess
import sys
import time

from linx_core import process

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
KINDS = ["pid", "net", "mnt", "uts", "ipc"]
BIN = os.path.dirname(sys.executable)


def per_call(fn, n):
    fn()  # warm
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), statistics.mean(samples)


def linx_spawn():
    s = process.Session.spawn(["/bin/true"], KINDS)
    s.wait_ready()
    s.proceed()
    assert s.wait()["code"] == 0


def posix_spawn_wait(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    os.waitpid(pid, 0)


def unshare():
    posix_spawn_wait(["/usr/bin/unshare", "--fork", "--pid", "--net", "--mount", "--uts", "--ipc", "/bin/true"])


def main():
    lib, lib_mean = per_call(linx_spawn, N)
    ref, ref_mean = per_call(unshare, N)
    print(f"library spawn (median/mean): {lib*1e3:.2f}/{lib_mean*1e3:.2f} ms   "
          f"unshare: {ref*1e3:.2f}/{ref_mean*1e3:.2f} ms   ratio {lib/ref:.2f}x (target <= 1.2x)")
    m = max(20, N // 10)
    cli, _ = per_call(lambda: posix_spawn_wait([os.path.join(BIN, "linx"), "run", "--", "true"]), m)
    floor, _ = per_call(lambda: posix_spawn_wait([sys.executable, "-c", "import typer"]), m)
    print(f"linx run -- true: {cli*1e3:.1f} ms   python -c 'import typer': {floor*1e3:.1f} ms   "
          f"ratio {cli/floor:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
