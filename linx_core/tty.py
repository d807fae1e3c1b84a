"""The terminal side of attach: raw mode saved and restored, window size, the detach keys,
and the byte pump between the caller's terminal and a session's PTY (termios(3),
tty_ioctl(4)). The terminal is restored on every way out: return, exception, detach,
SIGTERM/SIGHUP, a lost agent."""
import contextlib
import fcntl
import os
import select
import signal
import struct
import termios

from .errors import UsageError

CTRL = {chr(c): c - 0x60 for c in range(0x61, 0x7b)}     # ctrl-a .. ctrl-z
CTRL.update({"@": 0, "[": 0x1b, "\\": 0x1c, "]": 0x1d, "^": 0x1e, "_": 0x1f})
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str) -> bytes:
    """docker's syntax: comma-separated `ctrl-X` or single characters; `none` disables."""
    if text == "none":
        return b""
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and key[5:].lower() in CTRL and len(key) == 6:
            out.append(CTRL[key[5:].lower()])
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise UsageError("--detach-keys", f"{key!r} is not ctrl-<letter> or a single character")
    if not out:
        raise UsageError("--detach-keys", "no keys given (use none to disable)")
    return bytes(out)


class DetachMatcher:
    """Finds the detach sequence in keystrokes across reads. A matched prefix is held back;
    when the next key does not continue it, the held bytes go to the workload. The first key
    pressed twice sends it once, literally, so ctrl-p still reaches the shell's history."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (bytes for the workload, whether the sequence completed)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if self.held:
                if b == self.keys[self.held]:
                    self.held += 1
                    if self.held == len(self.keys):
                        self.held = 0
                        return bytes(out), True
                    continue
                if self.held == 1 and b == self.keys[0]:
                    out.append(b)            # the first key twice: one literal
                    self.held = 0
                    continue
                out += self.keys[:self.held]
                self.held = 0
            if b == self.keys[0]:
                self.held = 1
                if len(self.keys) == 1:
                    self.held = 0
                    return bytes(out), True
            else:
                out.append(b)
        return bytes(out), False


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of a terminal, or None when fd is not one."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


class RawMode:
    """cfmakeraw(3) on enter, the exact saved termios back on exit (TCSAFLUSH would drop
    typed-ahead input, so TCSADRAIN)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = None

    def __enter__(self):
        if self.fd >= 0 and os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP |
                         termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
            mode[1] &= ~termios.OPOST
            mode[2] &= ~(termios.CSIZE | termios.PARENB)
            mode[2] |= termios.CS8
            mode[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSADRAIN, mode)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass          # the terminal hung up: nothing left to restore
            self.saved = None


class _Stop(Exception):
    pass


def attach(session, stdin_fd: int = 0, stdout_fd: int = 1, detach_keys: bytes = b"\x10\x11",
           stdin: bool = True, replay: bool = True) -> dict | None:
    """Pump bytes between this terminal and the session until the workload ends (returns its
    terminal event) or the detach keys are pressed (returns None). Without a terminal on
    stdin it pipes bytes with no raw mode."""
    matcher = DetachMatcher(detach_keys if os.isatty(stdin_fd) else b"")
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)

    stopping = []

    def stop(signo, _frame):
        if not stopping:          # once: a second SIGHUP must not break the restore
            stopping.append(signo)
            raise _Stop(signo)

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: None)
    stdin_open = stdin
    try:
        with RawMode(stdin_fd) if stdin else contextlib.nullcontext():
            size = window_size(stdin_fd) or window_size(stdout_fd)
            if size and session.pty:
                session.resize(*size)
            session.attach(replay=replay)
            while True:
                ev = session.next_event(0)
                while ev is not None:
                    if ev["event"] == "output":
                        _write_all(stdout_fd, ev["data"])
                    elif ev["event"] in ("exited", "signaled", "aborted", "error"):
                        return ev
                    ev = session.next_event(0)
                if session._sock is None:
                    return session.outcome
                fds = [session._sock, wake_r] + ([stdin_fd] if stdin_open else [])
                ready, _, _ = select.select(fds, [], [])
                if wake_r in ready:
                    try:
                        while os.read(wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                    size = window_size(stdin_fd) or window_size(stdout_fd)
                    if size and session.pty:
                        session.resize(*size)
                if stdin_open and stdin_fd in ready:
                    data = os.read(stdin_fd, 65536)
                    if not data:
                        stdin_open = False
                        continue
                    data, detached = matcher.feed(data)
                    if data:
                        session.write(data)
                    if detached:
                        return None
                if session._sock in ready:
                    session._read(0)
    except _Stop:
        return None
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for s, h in handlers.items():
            signal.signal(s, h)
        os.close(wake_r)
        os.close(wake_w)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
