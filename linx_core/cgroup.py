"""cgroup v2 through its filesystem: the path is the handle.

Only the v2 hierarchy: on a hybrid host it is not at /sys/fs/cgroup, so the mount point is
read from mountinfo (man 7 cgroups, "cgroups version 2"). v1 hierarchies are never touched:
every path a user gives goes through resolve(), which refuses anything outside the cgroup2
mount. Interface-file semantics follow Documentation/admin-guide/cgroup-v2.rst.
"""
import errno as _errno
import os
import re
import select
import stat as _stat
import time
from dataclasses import asdict, dataclass

from .errors import KernelError, LinxError, UsageError

# Tests point this at a fake cgroupfs tree on tmpfs: the controller knobs (memory, pids, cpu,
# io) are not delegable in v2 on a hybrid host, so their logic is checked against plain files.
ROOT_ENV = "LINX_CGROUP_ROOT"


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


def root() -> str:
    """The cgroup2 mount, or $LINX_CGROUP_ROOT when set."""
    return os.path.normpath(os.environ.get(ROOT_ENV) or mount_point())


def resolve(text: str, where: str = "PATH", base: str | None = None) -> str:
    """A cgroup path as given by a user -> the absolute directory. Relative paths are taken
    from the cgroup2 mount; absolute ones must lie under it (".." cannot climb out), so a
    v1 hierarchy beside it on a hybrid host is unreachable."""
    if not isinstance(text, str) or text == "" or "\0" in text or "\n" in text:
        raise UsageError(where, f"{text!r}: expected a cgroup path (relative to the cgroup2 "
                                "mount, or absolute under it)")
    base = base or root()
    path = os.path.normpath(os.path.join(base, text))
    if os.path.commonpath([path, base]) != base:
        raise UsageError(where, f"{text!r} is outside the cgroup2 mount {base}")
    return path


def relative(path: str, base: str | None = None) -> str:
    """The cgroup's name as /proc/PID/cgroup shows it: "/" for the root, "/a/b" below."""
    rel = os.path.relpath(path, base or root())
    return "/" if rel == "." else "/" + rel


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


# -- lifecycle -------------------------------------------------------------

def create(path: str) -> bool:
    """mkdir; an existing cgroup is success (idempotent, as the seed's create/1). Returns True
    when this call made it, so a caller knows whether removing it is its job."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise CgroupError("create", path, _errno.EEXIST, "exists and is not a directory") from None
        return False
    except OSError as e:
        raise CgroupError("create", path, e.errno) from None
    return True


def destroy(path: str, kill: bool = False, timeout: float = 10.0) -> None:
    """rmdir, which the kernel refuses with EBUSY while a process or a child cgroup is in it.
    kill=True first writes cgroup.kill (SIGKILL to the whole subtree, race-free against forks,
    Linux 5.14) and waits for cgroup.events to say "populated 0"."""
    if kill:
        if not os.path.isdir(path):
            raise CgroupError("destroy", path, _errno.ENOENT)
        write(path, "cgroup.kill", "1")
        wait_event(path, "populated", 0, timeout, "kill")
    try:
        os.rmdir(path)
    except OSError as e:
        detail = "it still has processes or child cgroups" if e.errno == _errno.EBUSY else None
        raise CgroupError("destroy", path, e.errno, detail) from None


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


def procs(path: str) -> list[int]:
    """The processes directly in the cgroup (cgroup.procs; not its descendants)."""
    return [int(line) for line in read(path, "cgroup.procs").split()]


# -- raw interface files ---------------------------------------------------

def _file(path: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\0" in name:
        raise UsageError("FILE", f"{name!r}: expected an interface file name such as memory.max")
    return os.path.join(path, name)


def _hint(name: str, err: int) -> str | None:
    """ENOENT on a controller file almost always means the controller is not delegated."""
    controller = name.split(".", 1)[0]
    if err == _errno.ENOENT and controller != "cgroup" and "." in name:
        return (f"no {name} here: is the {controller} controller enabled in the parent's "
                "cgroup.subtree_control?")
    return None


def read(path: str, name: str) -> str:
    """An interface file's text, without the newline cgroupfs always ends it with."""
    file = _file(path, name)
    try:
        with open(file) as f:
            return f.read().rstrip("\n")
    except OSError as e:
        raise CgroupError("read", file, e.errno, _hint(name, e.errno)) from None


def write(path: str, name: str, value) -> None:
    """One write(2) of str(value): cgroupfs parses each write as one whole command, so the
    kernel's refusal (EINVAL, EBUSY, ...) arrives from this very call. O_TRUNC, as a shell's
    `>` (kernfs ignores it; a plain-file fake tree needs it)."""
    file = _file(path, name)
    text = str(value)
    if "\n" in text.rstrip("\n") or "\0" in text:
        raise UsageError(name, f"{text!r}: a value must be one line without NUL")
    try:
        fd = os.open(file, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError("write", file, e.errno, _hint(name, e.errno)) from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise CgroupError("write", file, e.errno) from None
    finally:
        os.close(fd)


def events(path: str) -> dict[str, int]:
    """cgroup.events as a dict: populated (any process in the subtree), frozen."""
    return {k: int(v) for k, v in (line.split() for line in read(path, "cgroup.events").splitlines())}


def wait_event(path: str, key: str, value: int, timeout: float, op: str) -> None:
    """Block until cgroup.events has `key value`. The kernel notifies changes of the file as
    POLLPRI (kernfs_notify), so this sleeps in poll(2); a short poll period covers a missed
    notification. ETIMEDOUT after `timeout` seconds."""
    file = _file(path, "cgroup.events")
    deadline = time.monotonic() + timeout
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(op, file, e.errno) from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while True:
            text = os.pread(fd, 4096, 0).decode()
            current = dict(line.split() for line in text.splitlines())
            if current.get(key) == str(value):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise CgroupError(op, path, _errno.ETIMEDOUT,
                                  f"cgroup.events still says {key} {current.get(key)} after {timeout:g}s")
            poller.poll(min(left, 0.2) * 1000)
    finally:
        os.close(fd)


def freeze(path: str, timeout: float = 10.0) -> None:
    """Write 1 to cgroup.freeze and wait until cgroup.events reports frozen 1: the write only
    starts freezing; the subtree is stopped when the kernel says so (cgroup-v2.rst)."""
    write(path, "cgroup.freeze", "1")
    wait_event(path, "frozen", 1, timeout, "freeze")


def thaw(path: str, timeout: float = 10.0) -> None:
    """Write 0 to cgroup.freeze and wait for frozen 0; idempotent on a thawed cgroup."""
    write(path, "cgroup.freeze", "0")
    wait_event(path, "frozen", 0, timeout, "thaw")


# -- controllers -----------------------------------------------------------

CONTROLLER_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def enable_controllers(path: str, names: list[str]) -> dict[str, CgroupError]:
    """Write "+name" to cgroup.subtree_control one controller at a time: the kernel rejects a
    whole "+a +b" write when one name is bad, so one by one tells exactly which landed.
    Returns the failures by name ({} when all were accepted, or for an empty list)."""
    for name in names:
        if not isinstance(name, str) or not CONTROLLER_NAME.match(name):
            raise UsageError("CONTROLLER", f"{name!r}: expected a controller name such as memory")
    failed = {}
    for name in names:
        try:
            write(path, "cgroup.subtree_control", f"+{name}")
        except CgroupError as e:
            failed[name] = e
    return failed


# -- typed limits ----------------------------------------------------------
# Each parser takes what a user typed (or a number) and returns the exact text the kernel
# parses, raising UsageError first, so a bad value never reaches cgroupfs.

_SIZE = re.compile(r"(\d+)\s*([kmgtpe]?)(i?b)?\Z", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
_TIME = re.compile(r"(\d+)\s*(us|ms|s)?\Z")
_TIME_UNITS = {None: 1, "us": 1, "ms": 1000, "s": 1_000_000}
LONG_MAX = (1 << 63) - 1
PID_MAX_LIMIT = 4 * 1024 * 1024          # include/linux/threads.h; pids.max allows 0..this
CFS_PERIOD = (1000, 1_000_000)           # kernel/sched/core.c: 1 ms .. 1 s
CFS_QUOTA_MAX = (1 << 44) - 1            # max_cfs_runtime in microseconds
IO_KEYS = ("rbps", "wbps", "riops", "wiops")


def _size(text, where: str) -> str:
    """Bytes with an optional binary suffix (K, M, G, T, P, E, as the kernel's memparse), or
    max. The page counter holds at most LONG_MAX bytes (mm/page_counter.c)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, str):
        if text.strip() == "max":
            return "max"
        m = _SIZE.match(text.strip())
        if m:
            n = int(m.group(1)) * _UNITS[m.group(2).lower()]
            if n <= LONG_MAX:
                return str(n)
            raise UsageError(where, f"{text!r} is more than the kernel's limit of {LONG_MAX} bytes")
    raise UsageError(where, f"{text!r}: expected bytes (256M, 1G, 4096) or max")


def _count(text, where: str, low: int, high: int, what: str, allow_max: bool) -> str:
    if isinstance(text, str) and allow_max and text.strip() == "max":
        return "max"
    s = str(text).strip() if not isinstance(text, bool) else ""
    if s.isdigit() and low <= int(s) <= high:
        return str(int(s))
    alt = " or max" if allow_max else ""
    raise UsageError(where, f"{text!r}: expected {what} from {low} to {high}{alt}")


def _pids(text, where: str) -> str:
    return _count(text, where, 0, PID_MAX_LIMIT, "a number of processes", True)


def _weight(text, where: str) -> str:
    """CGROUP_WEIGHT_MIN..MAX (include/linux/cgroup.h); 100 is the default."""
    return _count(text, where, 1, 10000, "a weight", False)


def _usec(text: str) -> int | None:
    m = _TIME.match(text.strip())
    return int(m.group(1)) * _TIME_UNITS[m.group(2)] if m else None


def _cpu_max(value, where: str) -> str:
    """cpu.max is "QUOTA PERIOD" in microseconds, QUOTA possibly max. Accepted: (quota,
    period), "max", "max PERIOD", "QUOTA PERIOD", "QUOTA/PERIOD", with us/ms/s suffixes
    (50ms/100ms is half a CPU). A bare QUOTA keeps the default period of 100ms. The kernel
    refuses periods outside 1ms..1s and quotas under 1ms (tg_set_cfs_bandwidth)."""
    expected = f"{value!r}: expected QUOTA/PERIOD (50ms/100ms, 50000 100000), QUOTA, or max"
    if isinstance(value, tuple) and len(value) == 2:
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = value.replace("/", " ").split()
    else:
        raise UsageError(where, expected)
    if len(parts) not in (1, 2):
        raise UsageError(where, expected)
    quota = "max" if parts[0] == "max" else _usec(parts[0])
    period = _usec(parts[1]) if len(parts) == 2 else 100_000
    if quota is None or period is None:
        raise UsageError(where, expected)
    if not CFS_PERIOD[0] <= period <= CFS_PERIOD[1]:
        raise UsageError(where, f"{value!r}: the period must be from 1ms to 1s")
    if quota != "max" and not 1000 <= quota <= CFS_QUOTA_MAX:
        raise UsageError(where, f"{value!r}: the quota must be at least 1ms")
    return f"{quota} {period}"


def _io_max(value, where: str) -> str:
    """io.max takes one device per write: "MAJ:MIN rbps=N wbps=N riops=N wiops=N", any subset
    of the keys, each a number above 1 or max (blk-throttle's tg_set_limit). The device may be
    given as MAJ:MIN or as a block device path; byte rates take size suffixes (10M)."""
    parts = value.split() if isinstance(value, str) else []
    if len(parts) < 2:
        raise UsageError(where, f"{value!r}: expected DEVICE KEY=VALUE... with DEVICE as MAJ:MIN "
                                f"or /dev/NAME and KEY one of {', '.join(IO_KEYS)}")
    device = parts[0]
    if re.fullmatch(r"\d+:\d+", device) is None:
        try:
            st = os.stat(device)
        except OSError:
            st = None
        if st is None or not _stat.S_ISBLK(st.st_mode):
            raise UsageError(where, f"{device!r} is neither MAJ:MIN nor a block device")
        device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    out = [device]
    for item in parts[1:]:
        key, eq, text = item.partition("=")
        if key not in IO_KEYS or not eq:
            raise UsageError(where, f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(IO_KEYS)}")
        if text == "max":
            out.append(f"{key}=max")
            continue
        n = _size(text, where) if key.endswith("bps") else _count(text, where, 2, 2**32 - 1, key, True)
        if n != "max" and int(n) < 2:
            raise UsageError(where, f"{item!r}: a rate must be above 1, or max")
        out.append(f"{key}={n}")
    return " ".join(out)


LIMITS = {          # knob -> parser; cgroup-v2.rst, "Controllers"
    "memory.max": _size,
    "memory.high": _size,
    "memory.swap.max": _size,
    "pids.max": _pids,
    "cpu.max": _cpu_max,
    "cpu.weight": _weight,
    "io.max": _io_max,
}


def render(knob: str, value, where: str | None = None) -> str:
    """A limit's value -> the text the kernel parses; UsageError before any I/O."""
    if knob not in LIMITS:
        raise UsageError(where or "KNOB", f"{knob!r}: expected one of {', '.join(LIMITS)}")
    return LIMITS[knob](value, where or knob)


def _previous(path: str, knob: str, text: str) -> str:
    """What to write back to undo writing `text`: the current value, which reads back in the
    form the kernel parses, except io.max, which lists every limited device on its own line."""
    old = read(path, knob)
    if knob != "io.max":
        return old
    device = text.split(" ", 1)[0]
    for line in old.splitlines():
        if line.split(" ", 1)[0] == device:
            return line
    return device + "".join(f" {k}=max" for k in IO_KEYS)


def set_limits(path: str, limits: dict) -> list[tuple[str, str]]:
    """Validate every knob first, then write them in order. When the kernel refuses one, the
    ones already written are put back as they were and the error is raised. Returns what to
    write to undo the whole change (restore())."""
    texts = [(knob, render(knob, value)) for knob, value in limits.items()]
    undo: list[tuple[str, str]] = []
    try:
        for knob, text in texts:
            old = _previous(path, knob, text)
            write(path, knob, text)
            undo.insert(0, (knob, old))
    except LinxError:
        restore(path, undo)
        raise
    return undo


def restore(path: str, undo: list[tuple[str, str]]) -> None:
    """Write back what set_limits() returned; best effort, a failed write back is skipped."""
    for knob, old in undo:
        try:
            write(path, knob, old)
        except LinxError:
            pass


# -- counters --------------------------------------------------------------

@dataclass
class Stats:
    """The seed's Linx.Cgroup.Stats: each field None when its source file is missing (the
    controller is not delegated, or the kernel is too old, e.g. memory.peak before 5.19)."""
    cpu_usec: int | None = None
    cpu_user_usec: int | None = None
    cpu_system_usec: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_usec: int | None = None
    memory_current: int | None = None
    memory_peak: int | None = None
    pids_current: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_CPU_STAT = {"usage_usec": "cpu_usec", "user_usec": "cpu_user_usec",
             "system_usec": "cpu_system_usec", "nr_throttled": "cpu_nr_throttled",
             "throttled_usec": "cpu_throttled_usec"}
_SINGLE = {"memory.current": "memory_current", "memory.peak": "memory_peak",
           "pids.current": "pids_current"}


def stats(path: str) -> Stats:
    """Best effort: only a missing or unreadable cgroup directory is an error. Lines of
    cpu.stat this code does not know (a newer kernel's counters) are ignored."""
    try:
        os.listdir(path)
    except OSError as e:
        raise CgroupError("stats", path, e.errno) from None
    s = Stats()
    text = _maybe(path, "cpu.stat")
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key in _CPU_STAT and value.strip().isdigit():
            setattr(s, _CPU_STAT[key], int(value))
    for name, field in _SINGLE.items():
        text = _maybe(path, name)
        if text is not None and text.strip().isdigit():
            setattr(s, field, int(text))
    return s


def _maybe(path: str, name: str) -> str | None:
    try:
        with open(os.path.join(path, name)) as f:
            return f.read()
    except OSError:
        return None


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}".replace(".0", "")
        n /= 1024
    return str(n)


# -- the tree --------------------------------------------------------------

def tree(path: str) -> list[dict]:
    """The cgroup and its descendants, depth first in name order, each with what `ls` shows:
    name relative to the mount, depth, processes directly in it, populated/frozen from
    cgroup.events (None at the root, which has no such file), enabled controllers."""
    try:
        os.listdir(path)
    except OSError as e:
        raise CgroupError("list", path, e.errno) from None
    base = root()
    out = []

    def visit(dir_: str, depth: int) -> None:
        try:
            ev = events(dir_)
        except CgroupError:
            ev = {}
        try:
            nprocs = len(procs(dir_))
        except CgroupError:
            nprocs = None       # a threaded cgroup, or removed while walking
        out.append({
            "path": relative(dir_, base), "depth": depth, "procs": nprocs,
            "populated": bool(ev["populated"]) if "populated" in ev else None,
            "frozen": bool(ev["frozen"]) if "frozen" in ev else None,
            "subtree_control": (_maybe(dir_, "cgroup.subtree_control") or "").split(),
        })
        try:
            children = sorted(e.name for e in os.scandir(dir_) if e.is_dir(follow_symlinks=False))
        except OSError:
            return      # removed while walking
        for name in children:
            visit(os.path.join(dir_, name), depth + 1)

    visit(path, 0)
    return out


# -- `linx run --cgroup` -----------------------------------------------------

class Placement:
    """The workload's cgroup for `linx run --cgroup`: limits are validated when this is built
    (before anything is spawned); at the checkpoint the cgroup is made if missing, limited,
    and the parked child moved in, so its first instruction already runs inside the ceiling.
    A failure there undoes it all (a cgroup made here is removed, limits written back)."""

    def __init__(self, path: str, limits: dict, keep: bool = False):
        self.path, self.keep, self.created = path, keep, False
        self.limits = {knob: render(knob, value) for knob, value in limits.items()}

    def apply(self, pid: int) -> None:
        self.created = create(self.path)
        undo = []
        try:
            undo = set_limits(self.path, self.limits)
            add_process(self.path, pid)
        except LinxError:
            restore(self.path, undo)
            try:
                self._remove()
            except LinxError:
                pass        # the first error is the one to report
            raise

    def release(self) -> None:
        """After the workload ended: remove the cgroup if it was made here (unless keep).
        EBUSY means something the workload left behind still runs in it."""
        if not self.keep:
            self._remove()

    def _remove(self) -> None:
        if self.created:
            self.created = False
            destroy(self.path)
