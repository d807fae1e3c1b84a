"""bench/spec: a whole `linx run --spec` of the headline spec with `true` as the workload
(user+net+pid+mount+uts+ipc, uid maps, a veth with addresses and a default route, an owner nft
table, a tmpfs, a sysctl, caps, seccomp), against `crun run` of a bundle with the same
namespaces and a busybox rootfs, and against linx with only those namespaces, in one run,
all inside a throwaway network namespace.

crun runs with --cgroup-manager=disabled and the spec's cgroup is left out of the linx run:
on this hybrid host crun and runc would put the container into the v1 hierarchies, which
nothing here may touch. runc has no way to skip cgroups, so it is not run.

    .venv/bin/python bench/spec.py [N]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
HERE = os.path.dirname(os.path.abspath(__file__))
LINX = os.path.join(os.path.dirname(sys.executable), "linx")
NS = f"linx-bench-{os.getpid()}"


def timed(argv, n) -> float:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    work = tempfile.mkdtemp()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        web = os.path.join(HERE, "..", "examples", "web.toml")
        spec = os.path.join(work, "headline.toml")
        with open(web) as f:
            text = f.read()
        start, end = text.index("[cgroup]"), text.index("[[net.links]]")
        with open(spec, "w") as f:
            f.write(text[:start] + text[end:])
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        subprocess.run(["sh", os.path.join(HERE, "..", "examples", "mkrootfs.sh"),
                        os.path.join(bundle, "rootfs")], check=True)
        subprocess.run(["crun", "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        config["process"]["args"] = ["/bin/sh", "-c", "true"]
        config["process"]["terminal"] = False
        config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")]
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        net = ["nsenter", f"--net=/run/netns/{NS}"]
        linx_full = timed(net + [LINX, "run", "--spec", spec, "--", "true"], N)
        linx_ns = timed(net + [LINX, "run", "--ns", "user,net,pid,mount,uts,ipc", "--map-root-user",
                               "--", "true"], N)
        unshare = timed(["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount",
                         "--uts", "--ipc", "true"], N)
        print(f"linx run --spec headline (every step): {linx_full * 1e3:.0f} ms")
        print(f"linx run, the same namespaces + maps:  {linx_ns * 1e3:.0f} ms")
        print(f"unshare, the same namespaces + maps:   {unshare * 1e3:.1f} ms")
        probe = subprocess.run(net + ["crun", "--cgroup-manager=disabled", "run", "--bundle", bundle,
                                      f"bench-{os.getpid()}"], capture_output=True, text=True)
        if probe.returncode:
            print(f"crun cannot run here: {probe.stderr.strip()} (runc would use the v1 hierarchies)")
        else:
            crun = timed(net + ["crun", "--cgroup-manager=disabled", "run", "--bundle", bundle,
                                f"bench-{os.getpid()}"], N)
            print(f"crun run, the same namespaces + maps:  {crun * 1e3:.0f} ms; "
                  f"ratio full spec / crun {linx_full / crun:.2f}x")
    finally:
        subprocess.run(["ip", "netns", "del", NS])
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
