"""Mounts: mount(2), umount2(2), pivot_root(2), and the /proc/PID/mountinfo parser.

The classic calls, not fsopen/fsmount/move_mount: each maps one-to-one onto what mount(8)
and umount(8) do and is one syscall on the calling thread. Every mutating verb takes `in_`,
a `target.Target`: the call runs on target.run_in's throwaway thread, which has unshared
CLONE_FS (setns into a mount namespace refuses a thread that shares its fs_struct) and
entered the target's mount namespace; the caller's thread never moves (mount_namespaces(7)).
"""
import errno
import os
import re
import threading
from dataclasses import dataclass

from .errors import KernelError, UsageError

# MS_* from <linux/mount.h>, in mount(2)'s order; names as mount(8) spells them.
FLAGS = {
    "ro": 1 << 0, "nosuid": 1 << 1, "nodev": 1 << 2, "noexec": 1 << 3, "sync": 1 << 4,
    "remount": 1 << 5, "mandlock": 1 << 6, "dirsync": 1 << 7, "noatime": 1 << 10,
    "nodiratime": 1 << 11, "bind": 1 << 12, "move": 1 << 13, "rec": 1 << 14,
    "silent": 1 << 15, "unbindable": 1 << 17, "private": 1 << 18, "slave": 1 << 19,
    "shared": 1 << 20, "relatime": 1 << 21, "strictatime": 1 << 24, "lazytime": 1 << 25,
}
PROPAGATION = ("private", "shared", "slave", "unbindable")
# MNT_* / UMOUNT_NOFOLLOW for umount2(2)
UMOUNT_FLAGS = {"force": 1, "detach": 2, "expire": 4, "no_follow": 8}
CLONE_FS = 0x00000200

# errnos whose cause is one of the documented kernel constraints, said at the failure site
HINTS = {
    ("move", 22): "a shared mount is involved (source, its parent or the target's parent); "
                  "make the parent private first",
    ("pivot_root", 22): "new_root must be a mount point (bind it onto itself), put_old a "
                        "directory under it, and neither side shared (make / private, --rec)",
    ("umount", 16): "busy; --detach unmounts lazily",
}


class MountError(KernelError):
    """op: mount, umount, pivot_root, chdir, create, fork or read; path: what it targeted."""

    def __init__(self, op: str, path: str, err: int, verb: str | None = None):
        self.path = path
        super().__init__("mount", op, path, err, HINTS.get((verb or op, err)))


# -- reading ---------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One line of mountinfo, proc(5): the ten fields the kernel records, paths decoded.
    propagation holds ("shared", N), ("master", N), ("propagate_from", N), ("unbindable", None);
    opt_fields keeps the optional fields verbatim, unknown tags included."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mount_point: str
    mount_options: str
    propagation: tuple
    fstype: str
    source: str
    super_options: str
    opt_fields: str = ""

    def __str__(self) -> str:
        return f"{self.fstype} on {self.mount_point} ({self.mount_options})"

    def findmnt(self) -> dict:
        """The row as `findmnt -J -l -o ID,PARENT,MAJ:MIN,FSROOT,TARGET,SOURCE,FSTYPE,OPTIONS,
        VFS-OPTIONS,FS-OPTIONS,PROPAGATION,OPT-FIELDS` prints it: its keys, SOURCE with
        [fsroot] for a bind of a subdirectory, OPTIONS merged as libmount does, empty as null."""
        source = self.source
        if self.root != "/":
            source = f"{source}[{self.root}]"
        tags = {kind for kind, _ in self.propagation}
        prop = "shared" if "shared" in tags else "private"
        prop += ",slave" if "master" in tags else ""
        prop += ",unbindable" if "unbindable" in tags else ""
        row = {"id": self.mount_id, "parent": self.parent_id, "maj:min": self.device,
               "fsroot": self.root, "target": self.mount_point, "source": source,
               "fstype": self.fstype, "options": merge_options(self.mount_options, self.super_options),
               "vfs-options": self.mount_options, "fs-options": self.super_options,
               "propagation": prop, "opt-fields": self.opt_fields}
        return {k: (None if v == "" else v) for k, v in row.items()}


_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash as \\ooo octal (fs/proc_namespace.c,
    mangle: " \\t\\n\\\\")."""
    if "\\" not in field:
        return field
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_line(line: str) -> Entry | None:
    """One mountinfo line, or None when it does not have mountinfo's shape. An optional field
    with an unknown tag is kept in opt_fields only: a future kernel's tag cannot drop a mount."""
    left, sep, right = line.partition(" - ")
    if not sep:
        return None
    fields = left.split(" ")
    tail = right.split(" ", 2)
    if len(fields) < 6 or len(tail) != 3:
        return None
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if fields[2].count(":") != 1:
        return None
    propagation = []
    for tag in fields[6:]:
        name, _, number = tag.partition(":")
        if name == "unbindable" and not number:
            propagation.append(("unbindable", None))
        elif name in ("shared", "master", "propagate_from") and number.isdigit():
            propagation.append((name, int(number)))
    return Entry(mount_id, parent_id, fields[2], unescape(fields[3]), unescape(fields[4]),
                 fields[5], tuple(propagation), unescape(tail[0]), unescape(tail[1]),
                 tail[2], " ".join(fields[6:]))


def parse(text: str) -> list[Entry]:
    """A whole mountinfo file; lines without mountinfo's shape are skipped."""
    return [e for e in map(parse_line, text.splitlines()) if e is not None]


def read(path: str) -> list[Entry]:
    """Parse a mountinfo-format file. Bytes are decoded as the filesystem encoding, so a
    path that is not UTF-8 survives (os.fsencode gives the bytes back)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MountError("read", path, e.errno) from None
    return parse(os.fsdecode(data))


def list_mounts(in_=None) -> list[Entry]:
    """The mount table of a target. pid:N and sessions read /proc/N/mountinfo from here (no
    setns: it already shows N's namespace, relative to N's root); a namespace file is entered
    on run_in's thread, which reads /proc/thread-self (/proc/self is the thread-group leader)."""
    from . import target as targets
    t = _target(in_)
    if t.kind == "host":
        return read("/proc/self/mountinfo")
    if t.kind in ("pid", "session"):
        pid = t.value if t.kind == "pid" else targets.session_pid(t.value)
        return read(f"/proc/{pid}/mountinfo")
    return targets.run_in(t, ["mnt"], read, "/proc/thread-self/mountinfo")


def merge_options(vfs: str, fs: str) -> str:
    """libmount's merge of per-mount and per-superblock options (findmnt's OPTIONS column):
    one rw/ro in front, ro when either side is read-only, the rest in order."""
    if vfs == fs:
        return vfs
    opts = f"{vfs},{fs}".split(",")
    rw = 0
    for _ in range(2):
        if "rw" in opts:
            opts.remove("rw")
            rw += 1
    ro = 0
    if rw != 2:
        for _ in range(2 - rw):
            if "ro" in opts:
                opts.remove("ro")
                ro += 1
    rest = [o for o in opts if o]
    return ",".join(["ro" if ro else "rw", *rest])


# -- changing --------------------------------------------------------------

def _target(in_):
    from . import target as targets
    if in_ is None or isinstance(in_, str):
        return targets.parse(in_, "in")
    return in_


def flag_bits(flags, table=FLAGS, where: str = "flags") -> int:
    """Flag names -> the OR'd bits; an unknown name is a UsageError naming it."""
    if isinstance(flags, str):
        flags = [f for f in flags.split(",") if f]
    bits = 0
    for name in flags:
        key = name.replace("-", "_")
        if key not in table:
            raise UsageError(where, f"unknown flag {name!r} (expected {', '.join(table)})")
        bits |= table[key]
    return bits


def _cstr(text: str | None):
    from ._sys import ffi
    return ffi.new("char[]", os.fsencode(text)) if text else ffi.NULL


def _mount(source, target, fstype, bits, data, verb) -> None:
    from ._sys import ffi, lib
    if lib.mount(_cstr(source), _cstr(target), _cstr(fstype), bits, _cstr(data)) < 0:
        raise MountError("mount", target, ffi.errno, verb)


def _umount(target, bits) -> None:
    from ._sys import ffi, lib
    if lib.umount2(_cstr(target), bits) < 0:
        raise MountError("umount", target, ffi.errno)


def _create(target: str) -> bool:
    """An empty file to mount over (a device node bound onto a fresh /dev tmpfs). True when
    it was made here, so a failed mount can remove it again."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    except OSError as e:
        raise MountError("create", target, e.errno) from None
    os.close(fd)
    return True


def _do_mount(source, target, fstype, bits, data, create, verb, remount_bits=None) -> None:
    """Runs inside the target namespace: optional placeholder, the mount, the read-only
    remount a bind needs (MS_RDONLY is ignored on the bind call itself, mount(2)); each
    later failure undoes the earlier steps."""
    made = _create(target) if create else False
    try:
        _mount(source, target, fstype, bits, data, verb)
        if remount_bits is not None:
            try:
                _mount(None, target, None, remount_bits, None, "remount")
            except MountError:
                _umount(target, UMOUNT_FLAGS["detach"])   # with any submounts a rec bind took
                raise
    except MountError:
        if made:
            os.unlink(target)
        raise


def _forked(target: str, fn, *args) -> None:
    """A proc filesystem belongs to the pid namespace of the task that mounts it, and setns
    on a pid namespace only moves a thread's future children (pid_namespaces(7)): fork one
    to do it. Its exit status carries the errno (255: it failed otherwise)."""
    try:
        pid = os.fork()
    except OSError as e:
        raise MountError("fork", target, e.errno) from None
    if pid == 0:
        code = 255
        try:
            fn(*args)
            code = 0
        except MountError as e:
            code = e.errno if 0 < e.errno < 255 else 255
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 255 or code < 0:
        raise MountError("fork", target, errno.ECHILD)
    if code:
        raise MountError("mount", target, code)


def mount(source: str, target: str, fstype: str = "", flags=(), data: str = "",
          create: bool = False, in_=None) -> None:
    """mount(2) with flags by name (FLAGS) and a filesystem-specific data string. A proc
    mount into a pid:N or session target also enters N's pid namespace, so that /proc shows
    the workload's processes, not ours."""
    bits = flag_bits(flags)
    t = _target(in_)
    kinds = ["mnt"]
    if fstype == "proc" and t.kind in ("pid", "session"):
        kinds.append("pid")
    from . import target as targets
    args = (source, target, fstype, bits, data, create, "mount")
    if "pid" in kinds:
        targets.run_in(t, kinds, _forked, target, _do_mount, *args)
    else:
        targets.run_in(t, kinds, _do_mount, *args)


def bind(source: str, target: str, flags=(), data: str = "", create: bool = False,
         in_=None) -> None:
    """MS_BIND (plus MS_REC with "rec"); other flags, "ro" among them, are applied by the
    MS_REMOUNT|MS_BIND call that follows, as mount(8) does, and the bind is undone if that
    fails. That remount changes the top mount only, not the submounts "rec" brought along."""
    bits = flag_bits(flags)
    bind_bits = FLAGS["bind"] | (bits & FLAGS["rec"])
    extra = bits & ~(FLAGS["bind"] | FLAGS["rec"])
    remount_bits = FLAGS["remount"] | FLAGS["bind"] | extra if extra else None
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _do_mount, source, target, None, bind_bits, data,
                   create, "bind", remount_bits)


def remount(target: str, flags=(), data: str = "", in_=None) -> None:
    """MS_REMOUNT with new flags; with "bind" only the per-mount flags of that mount change,
    without it the superblock (every mount of the filesystem) does."""
    bits = flag_bits(flags) | FLAGS["remount"]
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _mount, None, target, None, bits, data, "remount")


def move(source: str, target: str, in_=None) -> None:
    """MS_MOVE: the same mount, at a new place. EINVAL when a shared mount is involved."""
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _mount, source, target, None, FLAGS["move"], None,
                   "move")


def set_propagation(target: str, kind: str, rec: bool = False, in_=None) -> None:
    """mount --make-{private,shared,slave,unbindable}: a call form of its own, one
    propagation flag (plus MS_REC) and nothing else (Documentation/filesystems/sharedsubtree.rst)."""
    if kind not in PROPAGATION:
        raise UsageError("propagation", f"{kind!r}: expected one of {', '.join(PROPAGATION)}")
    bits = FLAGS[kind] | (FLAGS["rec"] if rec else 0)
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _mount, None, target, None, bits, None, kind)


def umount(target: str, flags=(), in_=None) -> None:
    """umount2(2); flags by name: force, detach, expire, no_follow."""
    bits = flag_bits(flags, UMOUNT_FLAGS)
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _umount, target, bits)


def pivot_root(new_root: str, put_old: str, in_=None) -> None:
    """pivot_root(2) from a thread of its own: the kernel wants the caller's cwd inside
    new_root, so the thread unshares CLONE_FS and chdirs there; the caller's cwd and root
    never change (beyond what pivot_root itself does to tasks rooted at the old root of the
    namespace it pivots)."""
    from . import target as targets
    targets.run_in(_target(in_), ["mnt"], _on_own_fs, _pivot, new_root, put_old)


def _pivot(new_root: str, put_old: str) -> None:
    from ._sys import ffi, lib
    new_abs, old_abs = os.path.abspath(new_root), os.path.abspath(put_old)
    try:
        os.chdir(new_abs)
    except OSError as e:
        raise MountError("chdir", new_root, e.errno) from None
    if lib.linx_pivot_root(os.fsencode(new_abs), os.fsencode(old_abs)) < 0:
        raise MountError("pivot_root", new_root, ffi.errno)


def _on_own_fs(fn, *args):
    """fn on a new thread with an fs_struct (cwd, root) of its own."""
    from ._sys import ffi, lib
    result: dict = {}

    def work():
        try:
            if lib.unshare(CLONE_FS) < 0:
                raise MountError("unshare", args[0], ffi.errno)
            result["value"] = fn(*args)
        except BaseException as e:   # carried to the caller's thread
            result["error"] = e

    t = threading.Thread(target=work, name="linx-fs")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
