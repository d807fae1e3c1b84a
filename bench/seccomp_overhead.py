"""Per-syscall overhead of the Docker default seccomp profile: linx's filter against
libseccomp's for the same rules (libseccomp 2.5 via ctypes, binary-tree optimizer, and its
default priority-ordered form).

Two measures, in one run:
  1. instructions the filter executes per syscall, by simulation: the mean over every syscall
     of the table, and over a busy server's mix;
  2. a real loop of cheap syscalls under each installed filter (bench/seccomp_getpid.c, built
     here with gcc), minus a getpid loop without a filter (the bare cost of entering the
     kernel). Since Linux 5.11 the kernel caches the verdict of syscalls a filter allows
     whatever their arguments and skips the filter for them, so the loop uses calls whose
     verdict the filter has to compute: personality(-1) (allowed by argument) and calls the
     profile denies (the filter returns EPERM; the syscall itself never runs).

    .venv/bin/python bench/seccomp_overhead.py [--iterations N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))

from test_seccomp_oracle import _known, libseccomp_bpf, run  # noqa: E402  (the oracle's driver)

from linx_core.seccomp import bpf, compile_ruleset, profile, syscalls  # noqa: E402

MIX = ["read", "write", "futex", "epoll_wait", "recvfrom", "sendto", "mmap", "munmap", "openat",
       "close", "newfstatat", "clock_nanosleep", "writev", "getrandom", "rt_sigprocmask"]
LOOP = [("personality", 0xFFFFFFFF), ("swapon", 0), ("kexec_load", 0), ("open_tree", 0)]


def mean_steps(program, arch, names):
    audit = syscalls.AUDIT_ARCH[arch]
    steps = [run(program, syscalls.number(n, arch), audit, (0,) * 6)[1] for n in names]
    return sum(steps) / len(steps)


def timed(helper, paths: dict, nr: int, arg0: int, n: int, repeats: int = 9) -> dict:
    """Median ns per call for each filter (and "none"), runs interleaved so drift hits all."""
    samples = {name: [] for name in paths}
    for _ in range(repeats):
        for name, path in paths.items():
            out = subprocess.run([helper, path, str(nr), str(n), str(arg0)], capture_output=True,
                                 text=True, check=True).stdout
            samples[name].append(float(out))
    return {name: sorted(v)[len(v) // 2] for name, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=500_000)
    args = ap.parse_args()
    arch = syscalls.host_arch()
    with open(os.path.join(ROOT, "tests", "data", "seccomp", "docker-default.json")) as f:
        ruleset = _known(profile.from_docker(json.load(f), arch)[0])
    mine = bpf.decode(compile_ruleset(ruleset))
    filters = {"linx": mine, "libseccomp -O2": libseccomp_bpf(ruleset, 2),
               "libseccomp -O1": libseccomp_bpf(ruleset, 1)}
    every = sorted(syscalls.table(arch))
    print(f"Docker default profile, {arch}, {len(ruleset.rules)} rules")
    print(f"{'filter':16} {'insns':>6} {'mean/syscall':>13} {'server mix':>11}")
    for name, prog in filters.items():
        print(f"{name:16} {len(prog):6} {mean_steps(prog, arch, every):13.2f} {mean_steps(prog, arch, MIX):11.2f}")
    base = mean_steps(filters["libseccomp -O2"], arch, every) / mean_steps(mine, arch, every)
    print(f"ratio libseccomp -O2 / linx, instructions per syscall: {base:.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        helper = os.path.join(tmp, "seccomp_getpid")
        subprocess.run(["gcc", "-O2", "-o", helper, os.path.join(HERE, "seccomp_getpid.c")], check=True)
        paths = {}
        for name, prog in filters.items():
            paths[name] = os.path.join(tmp, name.replace(" ", "_"))
            with open(paths[name], "wb") as f:
                f.write(bpf.encode(prog))
        base = timed(helper, {"none": "-"}, syscalls.number("getpid", arch), 0, args.iterations)["none"]
        print(f"\nns per call ({args.iterations} calls, median of 9); in brackets what the filter "
              f"adds to a bare syscall (getpid, no filter: {base:.1f} ns)")
        print(f"{'syscall':12} " + " ".join(f"{n:>22}" for n in filters))
        totals = dict.fromkeys(filters, 0.0)
        for sc, arg0 in LOOP:
            t = timed(helper, paths, syscalls.number(sc, arch), arg0, args.iterations)
            cells = []
            for name in filters:
                totals[name] += t[name] - base
                cells.append(f"{t[name]:8.1f} (+{t[name] - base:5.1f})")
            print(f"{sc:12} " + " ".join(f"{c:>22}" for c in cells))
        print("ratio of the added cost, libseccomp -O2 / linx: "
              f"{totals['libseccomp -O2'] / max(totals['linx'], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
