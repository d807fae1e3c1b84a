"""bench/spec: a whole `linx run --spec` of the headline spec with `true` as the workload
(user+net+pid+mount+uts+ipc, uid maps, a cgroup with limits, a veth with addresses and a
default route, an owner nft table, a tmpfs, a sysctl, caps, seccomp), against linx with only
the namespaces and cgroup, against `runc run` and `crun run` of a busybox bundle with the same
namespaces and a cgroup with the same limits, and against unshare: in one run, all inside a
throwaway network namespace.

runc and crun never see this host's cgroup v1 hierarchies. On a pure cgroup v2 machine with
cpu, memory and pids delegated (the VM: `python tests/vm/run.py --bench bench/spec.py`, or
`make bench-vm`) every tool gets the same cgroup limits. On a hybrid host (v1 hierarchies
mounted) the bench re-runs itself in a "v2 view": a private mount and cgroup namespace, rooted
at a fresh leaf cgroup of the host's cgroup2 mount, with cgroup2 mounted at /sys/fs/cgroup and
the v1 mounts gone from sight. runc and crun then take the machine for a v2 one and work inside
that leaf; v2 has no memory, pids or cpu controller there, so every tool gets a cgroup without
limits. The leaf is removed afterwards.

    .venv/bin/python bench/spec.py [N]     N samples each (default 30; 3 in the VM)
"""
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

IN_VM = bool(os.environ.get("LINX_VM"))
EMULATED = ("In a VM under software emulation (qemu TCG), where everything runs 35-100x slower than "
            "on the host: the absolute times are not the host's; the ratios in this one run are "
            "the measure.")
HERE = os.path.dirname(os.path.abspath(__file__))
LINX = os.path.join(os.path.dirname(sys.executable), "linx")
NS = f"linx-bench-{os.getpid()}"
CGROOT = "/sys/fs/cgroup"
PARENT = f"linx-bench-{os.getpid()}"
# the same limits for every tool: linx's spec keys and flags, and the OCI resources
MEMORY, PIDS, QUOTA, PERIOD = 64 << 20, 64, 50_000, 100_000
NAMESPACES = ("user", "net", "pid", "mount", "uts", "ipc")
OCI_NAMESPACES = ("user", "network", "pid", "mount", "uts", "ipc")


def timed(label: str, argv: list[str], n: int) -> tuple[float, float]:
    """(best, median) wall time of n runs after one warm-up run, printed as they come."""
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    best, median = min(samples), statistics.median(samples)
    print(f"{label:44} best {best * 1e3:7.1f} ms   median {median * 1e3:7.1f} ms", flush=True)
    return best, median


def cgroup_mode() -> tuple[str, str | None]:
    """("limits", None) on a pure cgroup v2 machine delegating cpu, memory and pids;
    ("plain", None) in the v2 view (cgroup2 at CGROOT, nothing delegated); ("view", the
    cgroup2 mount) on a hybrid host, where the bench re-runs itself in the v2 view;
    ("none", why) when runc and crun cannot run at all."""
    v1, v2 = [], []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            kind = right.split(" ", 1)[0]
            (v1 if kind == "cgroup" else v2 if kind == "cgroup2" else []).append(left.split(" ")[4])
    if v1:
        return ("view", v2[0]) if v2 else ("none", "no cgroup2 mount")
    if CGROOT not in v2:
        return "none", f"cgroup2 is not mounted at {CGROOT}"
    with open(os.path.join(CGROOT, "cgroup.subtree_control")) as f:
        missing = {"cpu", "memory", "pids"} - set(f.read().split())
    return ("plain", None) if missing else ("limits", None)


def in_v2_view(cgroup2: str, argv: list[str]) -> int:
    """Run argv (this bench) in the v2 view rooted at a fresh leaf cgroup of `cgroup2`."""
    top = os.path.join(cgroup2, PARENT)
    leaf = os.path.join(top, "view")
    os.makedirs(leaf)
    inner = (f"umount -l {CGROOT} && mount -t cgroup2 none {CGROOT} && exec "
             + " ".join(map(shlex.quote, argv)))
    try:
        return subprocess.run(["sh", "-c", f'echo $$ > {leaf}/cgroup.procs && exec unshare '
                               f'--cgroup --mount --propagation private sh -c {shlex.quote(inner)}'
                               ]).returncode
    finally:
        remove_cgroup(top)


def cgroup_section(path: str, limits: bool) -> str:
    """The headline's cgroup section: PATH, with the limits every tool gets (if any)."""
    if not limits:
        return f'[cgroup]\npath = "{path}"\n\n'
    return (f'[cgroup]\npath = "{path}"\nmemory_max = {MEMORY}\npids_max = {PIDS}\n'
            f'cpu_max = "{QUOTA} {PERIOD}"\n\n')


def headline(work: str, cgroup: str | None) -> str:
    """examples/web.toml with its cgroup section replaced by `cgroup` (TOML text, or nothing)."""
    with open(os.path.join(HERE, "..", "examples", "web.toml")) as f:
        text = f.read()
    start, end = text.index("[cgroup]"), text.index("[net]")
    text = text[:start] + (cgroup or "") + text[end:]
    path = os.path.join(work, "headline.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def bundle(work: str, runtime: str, limits: bool) -> str:
    """An OCI bundle (busybox rootfs; `RUNTIME spec`'s defaults) running true with the
    headline's namespaces and root mapped to root, in PARENT/RUNTIME with linx's limits."""
    path = os.path.join(work, runtime)
    rootfs = os.path.join(path, "rootfs")
    os.makedirs(path)
    subprocess.run(["sh", os.path.join(HERE, "..", "examples", "mkrootfs.sh"), rootfs], check=True)
    os.symlink("busybox", os.path.join(rootfs, "bin", "true"))
    subprocess.run([runtime, "spec"], cwd=path, check=True)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["process"].update(args=["/bin/true"], terminal=False)
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in OCI_NAMESPACES]
    linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    for mount in config["mounts"]:         # gid 5 (tty) is not mapped: devpts would refuse it
        mount["options"] = [o for o in mount.get("options", []) if o != "gid=5"]
    linux["cgroupsPath"] = f"/{PARENT}/{runtime}"
    # the same limits as linx's, or none (then no device filter either: linx sets none, and
    # crun's eBPF filter needs CAP_SYS_RESOURCE to raise RLIMIT_MEMLOCK, which a sandbox may lack)
    linux["resources"] = {"memory": {"limit": MEMORY}, "pids": {"limit": PIDS},
                          "cpu": {"quota": QUOTA, "period": PERIOD}} if limits else {}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def remove_cgroup(path: str) -> None:
    """rmdir PATH bottom-up (every tool removes its own; this is for a run that failed)."""
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError as e:
            print(f"bench: cannot remove {dirpath}: {e}", file=sys.stderr)


def main():
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 3 if IN_VM else 30
    mode, why = cgroup_mode()
    if mode == "view":
        sys.exit(in_v2_view(why, [sys.executable, os.path.abspath(__file__), str(N)]))
    if IN_VM:
        print(EMULATED, flush=True)
    if mode == "plain":
        print("In a cgroup v2 view of a hybrid host (see the docstring): every tool's cgroup "
              "has no limits.", flush=True)
    print(f"{N} samples each (after one warm-up), inside a throwaway network namespace", flush=True)
    work = tempfile.mkdtemp()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    cgroup = None
    if mode != "none":
        cgroup = os.path.join(CGROOT, PARENT)
        os.mkdir(cgroup)
    try:
        net = ["nsenter", f"--net=/run/netns/{NS}"]
        ns_flags = ["--ns", ",".join(NAMESPACES), "--map-root-user"]
        limits = mode == "limits"
        if cgroup:
            ns_flags += ["--cgroup", f"{PARENT}/linx-ns"]
            if limits:
                with open(os.path.join(cgroup, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu +memory +pids")
                ns_flags += ["--memory-max", str(MEMORY), "--pids-max", str(PIDS),
                             "--cpu-max", f"{QUOTA} {PERIOD}"]
            section = cgroup_section(f"{PARENT}/linx", limits)
            what = "namespaces + cgroup" + ("" if limits else " (no limits)")
        else:
            section = None
            what = "namespaces (no cgroup)"
        spec = headline(work, section)
        full = net + [LINX, "run", "--spec", spec, "--", "true"]
        label = f"linx run --spec headline{'' if cgroup else ' (no cgroup)'}"
        linx_full = timed(label, full, N)
        linx_ns = timed(f"linx run, {what}", net + [LINX, "run", *ns_flags, "--", "true"], N)
        timed("unshare, the same namespaces + maps",
              ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount",
               "--uts", "--ipc", "true"], N)
        if mode == "none":
            print(f"runc, crun: not run: {why}")
            return
        for runtime in ("runc", "crun"):
            path = bundle(work, runtime, limits)
            state = os.path.join(work, f"{runtime}-state")
            argv = [runtime, "--root", state]
            if runtime == "crun":
                argv.append("--cgroup-manager=cgroupfs")
            other = timed(f"{runtime} run, {what}", net + argv + ["run", "--bundle", path, f"bench-{runtime}"], N)
            for name, (best, median) in (("full spec", linx_full), (what, linx_ns)):
                print(f"  linx {name} / {runtime}: best {best / other[0]:.2f}x, median {median / other[1]:.2f}x")
    finally:
        subprocess.run(["ip", "netns", "del", NS])
        if cgroup:
            remove_cgroup(cgroup)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
