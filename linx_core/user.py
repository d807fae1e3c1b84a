"""User namespaces: a workload's uid/gid maps and its setgroups gate, through procfs.

/proc/PID/uid_map, gid_map and setgroups are the whole API (user_namespaces(7)): no syscall
and no setns, the path names the namespace. The maps are write-once, so they are written at
the checkpoint, before the workload's first instruction, and checked here before any write.
"""
import os
from dataclasses import dataclass

from .errors import KernelError, UsageError

MAX_ID = 2**32 - 1          # (uid_t)-1 is never a valid id
MAX_EXTENTS = 340           # UID_GID_MAP_MAX_EXTENTS, kernel/user_namespace.c
MAX_WRITE = 4096            # one write() of less than PAGE_SIZE


class UserError(KernelError):
    """op: set_uid_map, set_gid_map, deny_setgroups, read_uid_map, read_gid_map, read_setgroups."""

    def __init__(self, op: str, path: str, err: int):
        self.path = path
        super().__init__("user", op, path, err)


@dataclass(frozen=True)
class Map:
    """One line of a map: ids inside..inside+length-1 are outside..outside+length-1 outside."""

    inside: int
    outside: int
    length: int

    def __str__(self) -> str:
        if self.length == 1:
            return f"{self.inside} -> {self.outside}"
        return (f"{self.inside}..{self.inside + self.length - 1} -> "
                f"{self.outside}..{self.outside + self.length - 1}")

    def as_dict(self) -> dict:
        return {"inside": self.inside, "outside": self.outside, "length": self.length}


# -- reading ---------------------------------------------------------------

def parse_map(text: str) -> list[Map]:
    """The kernel's "inside outside length" lines; a line that is not three non-negative
    integers with length > 0 is skipped (a future format cannot break a read)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts) and int(parts[2]) > 0:
            out.append(Map(*map(int, parts)))
    return out


def _read(pid: int, name: str) -> str:
    path = f"/proc/{pid}/{name}"
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise UserError(f"read_{name}", path, e.errno) from None


def read_uid_map(pid: int) -> list[Map]:
    """[] while the map is unwritten: every id inside is then the overflow uid (nobody)."""
    return parse_map(_read(pid, "uid_map"))


def read_gid_map(pid: int) -> list[Map]:
    return parse_map(_read(pid, "gid_map"))


def read_setgroups(pid: int) -> str:
    """"allow" or "deny"."""
    return _read(pid, "setgroups").strip()


def supported() -> bool:
    """User namespaces are configurable iff /proc/self/uid_map exists (Linux >= 3.8)."""
    return os.path.exists("/proc/self/uid_map")


# -- validating ------------------------------------------------------------

def _show(entry) -> str:
    if isinstance(entry, Map):
        return f"{entry.inside}:{entry.outside}:{entry.length}"
    if isinstance(entry, (tuple, list)):
        return ":".join(map(str, entry))
    return repr(entry)


def validate(mappings, where: str = "map") -> list[Map]:
    """The kernel's rules, checked before any write so a bad map is a UsageError naming the
    entry: at least one entry, each (inside, outside, length) of non-negative integers with
    length > 0 and no range past 2^32-2, no two ranges overlapping on either side, at most
    340 lines, and the whole map in one write smaller than a page."""
    if isinstance(mappings, (str, bytes)) or not hasattr(mappings, "__iter__"):
        raise UsageError(where, f"{mappings!r}: expected a list of INSIDE:OUTSIDE:LENGTH entries")
    out = []
    for entry in mappings:
        if isinstance(entry, Map):
            entry = (entry.inside, entry.outside, entry.length)
        if (not isinstance(entry, (tuple, list)) or len(entry) != 3
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in entry)):
            raise UsageError(where, f"{_show(entry)}: expected INSIDE:OUTSIDE:LENGTH, three integers")
        inside, outside, length = entry
        if inside < 0 or outside < 0 or length <= 0:
            raise UsageError(where, f"{_show(entry)}: ids must be >= 0 and LENGTH > 0")
        if inside + length > MAX_ID or outside + length > MAX_ID:
            raise UsageError(where, f"{_show(entry)}: the range runs past id {MAX_ID - 1}")
        new = Map(inside, outside, length)
        for old in out:
            for side in ("inside", "outside"):
                a, b = getattr(old, side), getattr(new, side)
                if a < b + new.length and b < a + old.length:
                    raise UsageError(where, f"{_show(new)} overlaps {_show(old)} {side} the namespace")
        out.append(new)
    if not out:
        raise UsageError(where, "the map is empty: expected at least one INSIDE:OUTSIDE:LENGTH")
    if len(out) > MAX_EXTENTS:
        raise UsageError(where, f"{len(out)} entries: the kernel takes at most {MAX_EXTENTS}")
    if len(render(out)) >= MAX_WRITE:
        raise UsageError(where, f"the map is {len(render(out))} bytes: it must fit one write "
                                f"of less than {MAX_WRITE}")
    return out


def parse_entry(text: str, where: str) -> Map:
    """`INSIDE:OUTSIDE:LENGTH` as --map-uid/--map-gid take it (unshare(1)'s --map-users form)."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise UsageError(where, f"{text!r}: expected INSIDE:OUTSIDE:LENGTH, three non-negative integers")
    return Map(*map(int, parts))


def subid_range(path: str, uid: int) -> tuple[int, int]:
    """The first `NAME-or-UID:START:COUNT` line of /etc/subuid or /etc/subgid (subuid(5))
    that names this uid (or gid) or its user name; a UsageError when there is none."""
    import pwd
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError("--map-auto", f"cannot read {path}: {os.strerror(e.errno)}") from None
    for line in lines:
        owner, _, rest = line.strip().partition(":")
        start, _, count = rest.partition(":")
        if owner in (str(uid), name) and start.isdigit() and count.isdigit() and int(count) > 0:
            return int(start), int(count)
    who = f"{name!r} ({uid})" if name else str(uid)
    raise UsageError("--map-auto", f"no range for {who} in {path}")


def plan(map_uid=(), map_gid=(), root_user: bool = False, auto: bool = False,
         uid: int | None = None, gid: int | None = None,
         subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> tuple[list[Map], list[Map]]:
    """The uid and gid maps the --map-* options ask for, validated: --map-root-user maps 0 to
    the caller's euid/egid (unshare -r), --map-auto the caller's first subordinate range at the
    next free inside id (0, or 1 after root), then each --map-uid/--map-gid entry."""
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    maps = []
    for entries, own, subfile, where in ((map_uid, uid, subuid, "--map-uid"),
                                         (map_gid, gid, subgid, "--map-gid")):
        out = [Map(0, own, 1)] if root_user else []
        if auto:
            start, count = subid_range(subfile, own)
            out.append(Map(len(out), start, count))
        out += [parse_entry(e, where) if isinstance(e, str) else e for e in entries]
        maps.append(validate(out, where) if out else [])
    return maps[0], maps[1]


# -- writing ---------------------------------------------------------------

def render(maps) -> str:
    return "".join(f"{m.inside} {m.outside} {m.length}\n" for m in maps)


def _write(pid: int, name: str, op: str, text: str) -> None:
    """One write(2) at offset 0: the kernel takes a map only whole and only once."""
    path = f"/proc/{pid}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(op, path, e.errno) from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise UserError(op, path, e.errno) from None
    finally:
        os.close(fd)


def deny_setgroups(pid: int) -> None:
    """Without CAP_SETGID in the parent namespace the kernel refuses gid_map until setgroups
    says deny (user_namespaces(7), "Interaction of user namespaces and setgroups(2)");
    writing deny again is harmless."""
    _write(pid, "setgroups", "deny_setgroups", "deny")


def set_uid_map(pid: int, mappings) -> None:
    _write(pid, "uid_map", "set_uid_map", render(validate(mappings, "uid map")))


def set_gid_map(pid: int, mappings) -> None:
    _write(pid, "gid_map", "set_gid_map", render(validate(mappings, "gid map")))


def setup_maps(pid: int, uid=None, gid=None, setgroups: str = "deny") -> None:
    """deny setgroups -> uid_map -> gid_map, every map validated before the first write.
    Either map may be omitted (left unwritten). Nothing is rolled back on failure: the maps are
    write-once and deny is idempotent; a checkpoint failure discards the workload anyway."""
    if setgroups not in ("deny", "skip"):
        raise UsageError("setgroups", f"{setgroups!r}: expected deny or skip")
    uid = validate(uid, "uid map") if uid is not None else None
    gid = validate(gid, "gid map") if gid is not None else None
    if gid is not None and setgroups == "deny":
        deny_setgroups(pid)
    if uid is not None:
        set_uid_map(pid, uid)
    if gid is not None:
        set_gid_map(pid, gid)
