"""cgroup v2 through its filesystem: the path is the handle.

Only the v2 hierarchy: on a hybrid host it is not at /sys/fs/cgroup, so the mount point is
read from mountinfo (man 7 cgroups, "cgroups version 2"). v1 hierarchies are never touched.
"""
import os

from .errors import KernelError, UsageError


class CgroupError(KernelError):
    def __init__(self, op: str, path: str, err: int, detail: str | None = None):
        super().__init__("cgroup", op, path, err, detail)


def mount_point(mountinfo: str = "/proc/self/mountinfo") -> str:
    """The first cgroup2 mount in mountinfo (fields after " - " are fstype, source, options)."""
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return _unescape(left.split(" ")[4])
    raise CgroupError("find", "cgroup2 mount", 2, "no cgroup2 filesystem is mounted")


def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def of_pid(pid: int) -> str:
    """The absolute v2 cgroup directory of a process ("0::/path" in /proc/PID/cgroup)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    rel = line[3:].rstrip("\n")
                    return os.path.join(mount_point(), rel.lstrip("/"))
    except OSError as e:
        raise CgroupError("read", f"/proc/{pid}/cgroup", e.errno) from None
    raise CgroupError("read", f"/proc/{pid}/cgroup", 2, "the process has no cgroup v2 entry")


def add_process(path: str, pid: int) -> None:
    """Move a process into a cgroup by writing its pid to cgroup.procs."""
    if not isinstance(pid, int) or pid <= 0:
        raise UsageError("pid", f"{pid!r} is not a process id")
    procs = os.path.join(path, "cgroup.procs")
    try:
        with open(procs, "w") as f:
            f.write(str(pid))
    except OSError as e:
        raise CgroupError("add-process", procs, e.errno) from None
