"""A live process's seccomp state: the mode and filter count from /proc/PID/status (proc(5)),
and the filters themselves through PTRACE_SECCOMP_GET_FILTER (ptrace(2); CAP_SYS_ADMIN).

The kernel hands filters out only to a tracer whose tracee is stopped, so filters() seizes the
process, interrupts it, copies every filter and detaches: the process pauses for a moment but
sees no signal and no change.
"""
import errno
import os

from ..errors import KernelError

MODES = {0: "disabled", 1: "strict", 2: "filter"}
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 0x11, 0x4206, 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
WALL = 0x40000000


class SeccompError(KernelError):
    pass


def status(pid) -> dict:
    """{"pid", "mode", "filters", "no_new_privs"} from /proc/PID/status."""
    path = f"/proc/{pid}/status"
    try:
        with open(path) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError as e:
        raise SeccompError("seccomp", "read", path, e.errno) from None
    mode = int(fields.get("Seccomp", "0").strip())
    return {"pid": int(pid), "mode": MODES.get(mode, str(mode)),
            "filters": int(fields.get("Seccomp_filters", "0").strip()),
            "no_new_privs": fields.get("NoNewPrivs", "0").strip() == "1"}


def _ptrace(request: int, pid: int, addr: int = 0, data=None) -> int:
    from .. import _sys
    ret = _sys.lib.linx_ptrace(request, pid, addr, data if data is not None else _sys.ffi.NULL)
    if ret < 0:
        raise OSError(_sys.ffi.errno, os.strerror(_sys.ffi.errno))
    return ret


def filters(pid: int) -> list[bytes]:
    """Every filter of the process, newest first, as struct sock_filter arrays."""
    from .. import _sys
    pid = int(pid)
    try:
        _ptrace(PTRACE_SEIZE, pid)
    except OSError as e:
        raise SeccompError("seccomp", "attach (PTRACE_SEIZE)", f"pid {pid}", e.errno) from None
    out = []
    try:
        _ptrace(PTRACE_INTERRUPT, pid)
        os.waitpid(pid, WALL)
        for index in range(1 << 16):
            try:
                count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index)
            except OSError as e:
                if e.errno == errno.ENOENT:        # past the oldest filter
                    break
                raise SeccompError("seccomp", "read filter (PTRACE_SECCOMP_GET_FILTER)",
                                   f"pid {pid}", e.errno) from None
            buf = _sys.ffi.new("char[]", count * 8)
            _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
            out.append(bytes(_sys.ffi.buffer(buf)))
    except OSError as e:
        raise SeccompError("seccomp", "stop (PTRACE_INTERRUPT)", f"pid {pid}", e.errno) from None
    finally:
        try:
            _ptrace(PTRACE_DETACH, pid)
        except OSError:
            pass                                   # it exited meanwhile
    return out
