"""Reading cgroupfs directly: the oracle the VM group checks linx against."""
import os
import time


def root() -> str:
    """The first cgroup2 mount in /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return left.split(" ")[4]
    raise RuntimeError("no cgroup2 mount")


def read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def keyed(path: str, name: str) -> dict[str, int]:
    """A flat-keyed file (memory.events, cpu.stat, pids.events, cgroup.events) as a dict."""
    return {k: int(v) for k, v in (line.split() for line in read(path, name).splitlines())}


def remove(path: str, timeout: float = 30) -> None:
    """Kill what is left in the subtree (cgroup.kill), then rmdir it bottom-up."""
    if not os.path.isdir(path):
        return
    with open(os.path.join(path, "cgroup.kill"), "w") as f:
        f.write("1")
    deadline = time.monotonic() + timeout
    while keyed(path, "cgroup.events")["populated"] and time.monotonic() < deadline:
        time.sleep(0.1)
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        os.rmdir(dirpath)
