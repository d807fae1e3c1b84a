"""Namespace targets: parse a target string, resolve it to namespace files, run a function
inside them on a throwaway thread (ARCHITECTURE.md, "Cross-namespace work").

Targets: `host` (default), `pid:N`, a path to a namespace file, an `ip netns` name
(/run/netns/NAME), or a linx session name. The calling thread never changes namespace:
the work runs on a new thread that unshare(CLONE_FS)s (so setns into a mount namespace is
allowed for a thread) and setns()es, and the thread ends with it.
"""
import os
import threading
from dataclasses import dataclass

from .errors import KernelError, LinxError, UsageError

CLONE_FS = 0x00000200
KINDS = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt", "time")


class TargetError(KernelError):
    """Entering a target failed; stage is open_ns, unshare, setns or thread; obj the ns file."""

    def __init__(self, stage: str, path: str, err: int):
        self.stage = stage
        super().__init__("namespace", stage, path, err)


@dataclass(frozen=True)
class Target:
    kind: str           # "host", "pid", "path", "netns", "session"
    value: str = ""

    def __str__(self) -> str:
        return {"host": "host", "pid": f"pid:{self.value}"}.get(self.kind, self.value)

    def ns_path(self, kind: str) -> str | None:
        """The namespace file for `kind`, or None for the host (nothing to enter)."""
        if self.kind == "host":
            return None
        if self.kind == "pid":
            return f"/proc/{self.value}/ns/{kind}"
        if self.kind == "session":
            from .sessions import host_pid
            return f"/proc/{host_pid(self.value)}/ns/{kind}"
        if self.kind == "netns":
            if kind != "net":
                raise UsageError("target", f"ip netns {self.value!r} names only a network namespace")
            return f"/run/netns/{self.value}"
        return self.value   # a namespace file path stands for the one namespace it is


def parse(text: str | None, where: str = "--netns") -> Target:
    """No syscall except, for a bare name, looking at which kind of name it is."""
    if text is None or text == "" or text == "host":
        return Target("host")
    if text.startswith("pid:"):
        pid = text[4:]
        if not pid.isdigit() or int(pid) <= 0:
            raise UsageError(where, f"{text!r}: expected pid:N with N a process id")
        return Target("pid", str(int(pid)))
    if text.startswith("/"):
        return Target("path", text)
    if "/" in text or text in (".", ".."):
        raise UsageError(where, f"{text!r} is not host, pid:N, a namespace file path, "
                                "an ip netns name or a session name")
    if os.path.exists(f"/run/netns/{text}"):
        return Target("netns", text)
    from .sessions import path
    if os.path.exists(path(text)):
        return Target("session", text)
    raise UsageError(where, f"{text!r} is neither an ip netns name nor a linx session")


def _same_as_ours(path: str, kind: str) -> bool:
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{kind}")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def run_in(target: Target, kinds, fn, *args, **kwargs):
    """Call fn(*args, **kwargs) inside the target's namespaces of `kinds`, returning its result
    or raising its exception. Namespaces already shared with us are skipped; so is the host."""
    paths = []
    for kind in kinds:
        path = target.ns_path(kind)
        if path is not None and not _same_as_ours(path, kind):
            paths.append((kind, path))
    if not paths:
        return fn(*args, **kwargs)
    from ._sys import ffi, lib

    result: dict = {}

    def work():
        try:
            fds = []
            try:
                for kind, path in paths:
                    try:
                        fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                    except OSError as e:
                        raise TargetError("open_ns", path, e.errno) from None
                if any(kind == "mnt" for kind, _ in paths) and lib.unshare(CLONE_FS) < 0:
                    raise TargetError("unshare", paths[0][1], ffi.errno)
                for fd, (kind, path) in zip(fds, paths):
                    if lib.setns(fd, 0) < 0:
                        raise TargetError("setns", path, ffi.errno)
            finally:
                for fd in fds:
                    os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # carried to the caller's thread
            result["error"] = e

    t = threading.Thread(target=work, name="linx-setns")
    try:
        t.start()
    except RuntimeError as e:
        raise LinxError(f"namespace thread failed: {e}") from None
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
