"""Kernel tunables through /proc/sys (proc(5); the sysctl(2) syscall is gone since Linux 5.5).

Which value a read or write reaches is decided by the *calling thread's* namespaces, not by
the path: the per-namespace tables are looked up through current->nsproxy (net_ctl_header_lookup
in net/sysctl_net.c, the same for the UTS, IPC and mqueue tables). So reading another
namespace's value means doing the I/O on a thread that setns()ed there (target.run_in), and
the mount namespace is never needed: /proc/sys in our own mount namespace resolves per thread.
(/proc/self/net is different: it follows the thread-group leader, so a thread sees its own
network namespace there only through /proc/thread-self/net.)

Keys are the seed's dot form, checked before any I/O; values must not contain a newline or
NUL (the kernel's parser stops at a newline and would silently truncate).
"""
import errno as _errno
import os
import re
from dataclasses import dataclass

from . import target as targets
from .errors import KernelError, UsageError

PROC_SYS = "/proc/sys"
KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")

# Who owns which key (namespaces(7), network_namespaces(7), uts_namespaces(7),
# ipc_namespaces(7)). Everything else is host-global: the same value from every namespace,
# so --in is refused for it. user.max_*_namespaces belong to a user namespace, which a
# multithreaded process cannot join (setns(2) EINVAL), so they count as global here.
OWNERS = (
    (re.compile(r"net(\..*)?\Z"), "net"),
    (re.compile(r"kernel\.(hostname|domainname)\Z"), "uts"),
    (re.compile(r"kernel\.(msg|sem|shm)[^.]*\Z|fs\.mqueue(\..*)?\Z"), "ipc"),
)
# the top of each namespace's part of the tree, to tell which ones a prefix reaches into
ROOTS = {"net": ("net",), "uts": ("kernel.hostname", "kernel.domainname"),
         "ipc": ("kernel.shmmax", "fs.mqueue")}
# NS_GET_NSTYPE (<linux/nsfs.h>): _IO(0xb7, 0x3); answers a CLONE_NEW* flag
NS_GET_NSTYPE = 0xb703
CLONE_KIND = {0x40000000: "net", 0x04000000: "uts", 0x08000000: "ipc", 0x10000000: "user",
              0x20000000: "pid", 0x00020000: "mnt", 0x02000000: "cgroup", 0x00000080: "time"}
# a list skips what it cannot read: write-only knobs (EACCES even for root), stable_secret
# before it is set (EIO), knobs that vanish while walking (ENOENT)
UNREADABLE = {_errno.EACCES, _errno.EPERM, _errno.EIO, _errno.EINVAL, _errno.ENOENT,
              _errno.ENODEV, _errno.EOPNOTSUPP}


class SysctlError(KernelError):
    """`sysctl write "net.ipv4.ip_forward" failed on /proc/sys/net/ipv4/ip_forward: EACCES`."""

    def __init__(self, op: str, key: str, path: str, err: int):
        self.operation, self.key, self.path = op, key, path
        super().__init__("sysctl", f'{op} "{key}"', path, err)


@dataclass(frozen=True)
class Entry:
    key: str
    value: str


# -- validation (no I/O) -----------------------------------------------------

def check_key(key, where: str | None = None) -> str:
    if not isinstance(key, str) or not KEY.match(key):
        raise UsageError(where or f"sysctl key {key!r}",
                         "expected dot-separated names of letters, digits, _ and - "
                         "(net.ipv4.ip_forward)")
    return key


def path_of(key: str) -> str:
    return os.path.join(PROC_SYS, *key.split("."))


def render(value, key: str = "value") -> str:
    """int -> decimal; list of ints -> space separated (kernel.printk, tcp_rmem); str as is."""
    if isinstance(value, bool):
        raise UsageError(key, f"{value!r}: expected an integer, a string or a list of integers")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise UsageError(key, f"{list(value)!r}: not all integers")
        return " ".join(map(str, value))
    if isinstance(value, str):
        if "\n" in value:
            raise UsageError(key, f"{value!r}: contains a newline (the kernel would stop there)")
        if "\0" in value:
            raise UsageError(key, f"{value!r}: contains a NUL byte")
        return value
    raise UsageError(key, f"{value!r}: expected an integer, a string or a list of integers")


def owner(key: str) -> str | None:
    """The namespace kind whose copy of `key` a thread sees, or None for host-global keys."""
    for pattern, kind in OWNERS:
        if pattern.match(key):
            return kind
    return None


def owners_under(prefix: str) -> list[str]:
    """The namespace kinds owning some key at or under `prefix` ("" is the whole tree)."""
    return [kind for kind, tops in ROOTS.items()
            if prefix == "" or owner(prefix) == kind
            or any(top.startswith(prefix + ".") for top in tops)]


def _kind_of_file(path: str) -> str:
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise targets.TargetError("open_ns", path, e.errno) from None
    try:
        flag = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        raise UsageError("--in", f"{path!r} is not a namespace file") from None
    finally:
        os.close(fd)
    return CLONE_KIND.get(flag, "?")


def kinds_for(target, keys: list[str], every: bool = True, labels=None) -> list[str]:
    """Which namespaces of `target` to enter for `keys`. A UsageError, before any I/O, for a
    host-global key, or when the target cannot hold a key's namespace (an ip netns name, or
    a namespace file of another kind). every=False (a listing of prefixes) keeps the kinds
    the target has. labels name the keys in errors (FILE:LINE for apply)."""
    if target.kind == "host":
        return []
    labels = labels or [k or "the whole tree" for k in keys]
    wanted = []
    for key, label in zip(keys, labels):
        kinds = ([owner(key)] if owner(key) else []) if every else owners_under(key)
        if not kinds:
            raise UsageError(label, "is host-global (no namespace owns it): --in applies only "
                                    "to net.*, kernel.hostname, kernel.domainname and the IPC "
                                    "keys (kernel.msg*, kernel.sem*, kernel.shm*, fs.mqueue.*)")
        wanted += [k for k in kinds if k not in wanted]
    if target.kind in ("pid", "session"):
        return wanted
    have = "net" if target.kind == "netns" else _kind_of_file(target.value)
    for key, label in zip(keys, labels):
        kinds = [owner(key)] if every else owners_under(key)
        if have not in kinds:
            raise UsageError(label, f"belongs to the {'/'.join(kinds)} namespace, but --in "
                                    f"{target} is a {have} namespace")
    return [have]


# -- I/O ---------------------------------------------------------------------

def _read(key: str, op: str = "read") -> str:
    path = path_of(key)
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="surrogateescape").rstrip("\n")
    except OSError as e:
        raise SysctlError(op, key, path, e.errno) from None


def _write(key: str, text: str) -> None:
    """One write(2) at offset 0, so the kernel's refusal (EINVAL, EPERM) is this call's."""
    path = path_of(key)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SysctlError("write", key, path, e.errno) from None
    try:
        os.write(fd, text.encode(errors="surrogateescape"))
    except OSError as e:
        raise SysctlError("write", key, path, e.errno) from None
    finally:
        os.close(fd)


def _target(target):
    return target or targets.Target("host")


def read(key: str, target=None) -> str:
    """The value as the kernel prints it, without the trailing newline."""
    check_key(key)
    target = _target(target)
    return targets.run_in(target, kinds_for(target, [key]), _read, key)


def read_ints(key: str, target=None) -> list[int]:
    """The whitespace-separated integers of a tuple-shaped knob (kernel.printk, tcp_rmem)."""
    text = read(key, target)
    try:
        return [int(t) for t in text.split()]
    except ValueError:
        raise UsageError(key, f"{text!r} is not a list of integers") from None


def read_int(key: str, target=None) -> int:
    text = read(key, target)
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(key, f"{text!r} is not an integer") from None


def write(key: str, value, target=None) -> None:
    write_many({key: value}, target)


def write_many(values: dict, target=None) -> None:
    """Every key and value is checked first; then each key's old value is read and the new one
    written, in order. When the kernel refuses one, those already written get their old value
    back before the error is raised, so a failed call leaves things as they were."""
    texts = [(check_key(k), render(v, k)) for k, v in values.items()]
    target = _target(target)
    kinds = kinds_for(target, [k for k, _ in texts])
    if texts:
        targets.run_in(target, kinds, _write_all, texts)


def _write_all(texts: list[tuple[str, str]]) -> None:
    done = []
    try:
        for key, text in texts:
            old = _read(key)
            _write(key, text)
            done.append((key, old))
    except SysctlError:
        for key, old in reversed(done):
            try:
                _write(key, old)
            except SysctlError:
                pass
        raise


def list_(prefix: str = "", target=None) -> list[Entry]:
    """Every readable knob at or under `prefix` (a subtree, or a single leaf), sorted by key.
    Unreadable ones are skipped: this is "everything visible", as the seed's list/1. With a
    namespace target, only the keys of the namespaces entered are listed (the global ones
    would be the host's)."""
    if prefix:
        check_key(prefix)
    target = _target(target)
    kinds = kinds_for(target, [prefix], every=False)
    entries = targets.run_in(target, kinds, _walk, prefix)
    if target.kind != "host":
        entries = [e for e in entries if owner(e.key) in kinds]
    return entries


def _walk(prefix: str) -> list[Entry]:
    """Depth first, staying on the /proc/sys filesystem: a directory on another device is a
    mount (fs.binfmt_misc, often an automount that walking into would trigger)."""
    start = path_of(prefix) if prefix else PROC_SYS
    if not os.path.isdir(start):
        return [Entry(prefix, _read(prefix, "list"))]
    dev = os.stat(PROC_SYS).st_dev
    out = []

    def visit(path: str) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if e.stat(follow_symlinks=False).st_dev == dev:
                        visit(e.path)
                    continue
                with open(e.path, "rb") as f:
                    value = f.read().decode(errors="surrogateescape").rstrip("\n")
            except OSError as err:
                if err.errno in UNREADABLE:
                    continue
                raise SysctlError("list", _key_of(e.path), e.path, err.errno) from None
            out.append(Entry(_key_of(e.path), value))

    visit(start)
    out.sort(key=lambda e: e.key)
    return out


def _key_of(path: str) -> str:
    """Slashes to dots; a leaf name with a dot in it (eth0.10) is not round-trippable."""
    return os.path.relpath(path, PROC_SYS).replace("/", ".")


# -- sysctl.conf / sysctl.d ----------------------------------------------------

@dataclass(frozen=True)
class Assignment:
    file: str
    line: int
    key: str
    value: str
    ignore_errors: bool     # the key had a "-" prefix (sysctl.d(5))


def parse_conf(text: str, file: str) -> tuple[list[Assignment], list[str]]:
    """sysctl.d(5) syntax: "KEY = VALUE" lines; "#" and ";" start comments; blank lines are
    skipped; "-KEY" means a failure to set it is not an error. Returns the assignments and
    the bad lines, each as "FILE:LINE: what is wrong"."""
    out, bad = [], []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        ignore = key.startswith("-")
        if ignore:
            key = key[1:].strip()
        if not eq:
            bad.append(f"{file}:{n}: expected KEY = VALUE, got {line!r}")
        elif not KEY.match(key):
            bad.append(f"{file}:{n}: {key!r} is not a sysctl key (dot-separated names of "
                       "letters, digits, _ and -)")
        elif "\0" in value:
            bad.append(f"{file}:{n}: the value of {key} contains a NUL byte")
        else:
            out.append(Assignment(file, n, key, value, ignore))
    return out, bad


def load_conf(files: list[str]) -> list[Assignment]:
    """Read and parse every file before anything is written: a bad line anywhere is a
    UsageError naming FILE:LINE (and how many more there are), with nothing applied."""
    out, bad = [], []
    for file in files:
        try:
            with open(file) as f:
                text = f.read()
        except OSError as e:
            raise UsageError(file, f"cannot read: {os.strerror(e.errno)}") from None
        got, wrong = parse_conf(text, file)
        out += got
        bad += wrong
    if bad:
        more = f" (and {len(bad) - 1} more bad line{'s' * (len(bad) > 2)})" if len(bad) > 1 else ""
        raise UsageError("", bad[0] + more)
    return out


@dataclass(frozen=True)
class Applied:
    assignment: Assignment
    error: SysctlError | None = None

    @property
    def status(self) -> str:
        if self.error is None:
            return "ok"
        return "ignored" if self.assignment.ignore_errors else "failed"


def apply(assignments: list[Assignment], target=None) -> list[Applied]:
    """Write each assignment in order, best effort: one failing key does not stop the rest
    (as sysctl --system); the report says per key what happened. With a namespace target
    every key must be one the namespace owns (checked before any write)."""
    target = _target(target)
    kinds = kinds_for(target, [a.key for a in assignments],
                      labels=[f"{a.file}:{a.line}: {a.key}" for a in assignments])
    if not assignments:
        return []
    return targets.run_in(target, kinds, _apply_all, assignments)


def _apply_all(assignments: list[Assignment]) -> list[Applied]:
    out = []
    for a in assignments:
        try:
            _write(a.key, a.value)
            out.append(Applied(a))
        except SysctlError as e:
            out.append(Applied(a, e))
    return out
