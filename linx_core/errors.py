"""One error model for the whole library (ARCHITECTURE.md, "Errors, one model").

Only these cross the library boundary. The CLI catches LinxError in one place, prints
str(error) on one line and exits with error.exit_status.
"""
import errno as _errno
import os

def errno_text(err: int) -> str:
    """`ENOENT (No such file or directory)`: the name first, for grep; the words for people."""
    name = _errno.errorcode.get(err, f"E{err}")
    return f"{name} ({os.strerror(err)})"


class LinxError(Exception):
    """Base of every error the library raises."""

    exit_status = 1


class UsageError(LinxError):
    """Bad input, caught before any syscall. Names the argument, file:line or key path."""

    exit_status = 2

    def __init__(self, where: str, expected: str):
        self.where, self.expected = where, expected
        super().__init__(f"{where}: {expected}" if where else expected)


class KernelError(LinxError):
    """The kernel said no: subsystem, operation, object, errno, and extended-ack text."""

    exit_status = 1

    def __init__(self, subsystem: str, op: str, obj: str | None, err: int,
                 detail: str | None = None):
        self.subsystem, self.op, self.obj, self.errno, self.detail = subsystem, op, obj, err, detail
        super().__init__(self._render())

    def _render(self) -> str:
        name = _errno.errorcode.get(self.errno, f"E{self.errno}")
        text = f"{self.subsystem} {self.op} failed"
        if self.obj:
            text += f" on {self.obj}"
        text += f": {name} (errno {self.errno})"
        if self.detail:
            text += f": {self.detail}"
        return text
