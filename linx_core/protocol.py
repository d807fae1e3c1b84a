"""The agent's wire format (agent/PROTOCOL.md): frames of tagged fields, both directions.

Pure code: encode requests, decode events, reject anything malformed with ProtocolError.
"""
import struct

from .errors import LinxError

VERSION = 1
HEADER = struct.Struct("<IBBH")          # length (whole frame), version, type, reserved
FIELD = struct.Struct("<HI")             # tag, length
MAX_FRAME = 1 << 20

# requests
SPAWN, PROCEED, ABORT, SIGNAL, ATTACH, INPUT, RESIZE, WAIT, HOLD = range(1, 10)
# events
READY, RUNNING, EXITED, SIGNALED, ABORTED, ERROR, REFUSED, RESTARTING, OUTPUT, SYSCALL = range(64, 74)
EVENT_NAMES = {READY: "ready", RUNNING: "running", EXITED: "exited", SIGNALED: "signaled",
               ABORTED: "aborted", ERROR: "error", REFUSED: "refused",
               RESTARTING: "restarting", OUTPUT: "output", SYSCALL: "syscall"}
TERMINAL = frozenset({"exited", "signaled", "aborted", "error"})

# (tag, codec); codecs: "s" str, "b" bytes, "4" u32, "8" u64. Ids from PROTOCOL.md.
REQUEST_FIELDS = {
    "argv": (1, "s"), "env": (2, "s"), "clone_flags": (3, "8"), "target_pid": (4, "4"),
    "join_ns": (5, "8"), "session_dir": (6, "s"), "detach": (7, "4"), "pty": (8, "4"),
    "meta": (9, "s"), "restart": (10, "4"), "max_restarts": (11, "4"), "hook": (12, "s"),
    "signo": (20, "4"), "replay": (21, "4"), "data": (22, "b"), "rows": (23, "4"),
    "cols": (24, "4"),
    "mount_proc": (30, "4"), "hostname": (31, "s"), "lo_up": (32, "4"), "cwd": (33, "s"),
    "gid": (34, "4"), "groups": (35, "s"), "uid": (36, "4"), "cap_bounding": (37, "8"),
    "cap_sets": (38, "b"), "cap_ambient": (39, "8"), "no_new_privs": (40, "4"),
    "seccomp": (41, "b"), "seccomp_flags": (42, "4"), "seccomp_notify": (43, "4"),
}
# per event type: {tag: (name, codec, required)}
EVENT_FIELDS = {
    READY: {50: ("host_pid", "4", True), 51: ("child_pid", "4", True)},
    RUNNING: {},
    EXITED: {52: ("code", "4", True)},
    SIGNALED: {53: ("signo", "4", True)},
    ABORTED: {},
    ERROR: {54: ("errno", "4", True), 55: ("stage", "s", True), 56: ("message", "s", False)},
    REFUSED: {57: ("request", "4", True), 54: ("errno", "4", True), 56: ("message", "s", True)},
    RESTARTING: {58: ("count", "4", True), 59: ("reason", "s", True)},
    OUTPUT: {60: ("data", "b", True)},
    SYSCALL: {61: ("nr", "4", True), 62: ("arch", "4", True)},
}


class ProtocolError(LinxError):
    """A malformed frame: the other end is broken or is not a linx agent of this version."""

    def __init__(self, what: str):
        super().__init__(f"agent protocol: {what}")


def _field(tag: int, codec: str, value) -> bytes:
    if codec == "4":
        data = struct.pack("<I", value)
    elif codec == "8":
        data = struct.pack("<Q", value)
    elif codec == "s":
        data = value.encode() if isinstance(value, str) else bytes(value)
        if b"\0" in data:
            raise ProtocolError(f"field {tag}: a string may not hold a NUL byte")
    else:
        data = bytes(value)
    return FIELD.pack(tag, len(data)) + data


def encode(mtype: int, fields: list[tuple[str, object]]) -> bytes:
    """One request frame; fields are (name, value) pairs, names from REQUEST_FIELDS."""
    body = b"".join(_field(*REQUEST_FIELDS[name], value) for name, value in fields)
    length = HEADER.size + len(body)
    if length > MAX_FRAME:
        raise ProtocolError(f"request of {length} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return HEADER.pack(length, VERSION, mtype, 0) + body


def decode_event(frame: bytes) -> dict:
    """One whole event frame -> {"event": name, ...fields}. Raises ProtocolError."""
    if len(frame) < HEADER.size:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than its header")
    length, version, mtype, reserved = HEADER.unpack_from(frame)
    if length != len(frame):
        raise ProtocolError(f"frame says {length} bytes, holds {len(frame)}")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version} (expected {VERSION})")
    if reserved:
        raise ProtocolError("reserved header bytes are not zero")
    spec = EVENT_FIELDS.get(mtype)
    if spec is None:
        raise ProtocolError(f"unknown event type {mtype}")
    out = {"event": EVENT_NAMES[mtype]}
    off = HEADER.size
    while off < length:
        if length - off < FIELD.size:
            raise ProtocolError(f"truncated field header at offset {off}")
        tag, flen = FIELD.unpack_from(frame, off)
        off += FIELD.size
        if flen > length - off:
            raise ProtocolError(f"field {tag} runs past the frame")
        if tag not in spec:
            raise ProtocolError(f"unknown field {tag} in {out['event']} event")
        name, codec, _ = spec[tag]
        if name in out:
            raise ProtocolError(f"field {tag} repeated")
        raw = frame[off:off + flen]
        off += flen
        if codec == "b":
            out[name] = raw
        elif codec in "48":
            if flen != int(codec):
                raise ProtocolError(f"field {tag} must be {codec} bytes, got {flen}")
            out[name] = int.from_bytes(raw, "little")
        else:
            if b"\0" in raw:
                raise ProtocolError(f"field {tag} holds a NUL byte")
            out[name] = raw.decode(errors="replace")
    for tag, (name, _, required) in spec.items():
        if required and name not in out:
            raise ProtocolError(f"{out['event']} event lacks required field {tag} ({name})")
    return out


class FrameReader:
    """Cuts a byte stream into frames; validates the length word before buffering."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            length = int.from_bytes(self.buf[:4], "little")
            if length < HEADER.size or length > MAX_FRAME:
                raise ProtocolError(f"frame length {length} out of range")
            if len(self.buf) < length:
                break
            frames.append(bytes(self.buf[:length]))
            del self.buf[:length]
        return frames
