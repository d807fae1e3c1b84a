"""The agent wire codec (agent/PROTOCOL.md): round trips and every malformed-frame rule."""
import struct

import pytest

from linx_core import protocol as p


def frame(mtype, body=b"", version=1, reserved=0, length=None):
    n = p.HEADER.size + len(body) if length is None else length
    return p.HEADER.pack(n, version, mtype, reserved) + body


def field(tag, data):
    return p.FIELD.pack(tag, len(data)) + data


def test_encode_request_layout():
    f = p.encode(p.SIGNAL, [("signo", 15)])
    assert f == frame(p.SIGNAL, field(20, struct.pack("<I", 15)))


def test_encode_rejects_nul_in_string():
    with pytest.raises(p.ProtocolError, match="NUL"):
        p.encode(p.SPAWN, [("argv", "a\0b")])


def test_encode_rejects_oversized_frame():
    with pytest.raises(p.ProtocolError, match="frame limit"):
        p.encode(p.SPAWN, [("argv", "x" * p.MAX_FRAME)])


def test_decode_events():
    ready = frame(p.READY, field(50, struct.pack("<I", 42)) + field(51, struct.pack("<I", 1)))
    assert p.decode_event(ready) == {"event": "ready", "host_pid": 42, "child_pid": 1}
    err = frame(p.ERROR, field(54, struct.pack("<I", 2)) + field(55, b"execve"))
    assert p.decode_event(err) == {"event": "error", "errno": 2, "stage": "execve"}
    assert p.decode_event(frame(p.RUNNING)) == {"event": "running"}


@pytest.mark.parametrize("data, why", [
    (b"\x01\x00", "shorter than its header"),
    (frame(p.RUNNING, length=20), "frame says 20 bytes"),
    (frame(p.RUNNING, version=2), "version 2"),
    (frame(p.RUNNING, reserved=1), "reserved"),
    (frame(99), "unknown event type 99"),
    (frame(p.EXITED, b"\x34\x00\x04"), "truncated field header"),
    (frame(p.EXITED, p.FIELD.pack(52, 9) + b"\0" * 4), "runs past"),
    (frame(p.EXITED, field(99, b"\0" * 4)), "unknown field 99"),
    (frame(p.EXITED, field(52, b"\0" * 2)), "must be 4 bytes"),
    (frame(p.EXITED, field(52, b"\0" * 4) * 2), "repeated"),
    (frame(p.EXITED), "lacks required field 52"),
    (frame(p.ERROR, field(54, b"\0" * 4) + field(55, b"a\0b")), "NUL"),
])
def test_decode_rejects_malformed(data, why):
    with pytest.raises(p.ProtocolError, match=why):
        p.decode_event(data)


def test_frame_reader_cuts_across_reads_and_rejects_bad_length():
    a, b = frame(p.RUNNING), frame(p.ABORTED)
    r = p.FrameReader()
    assert r.feed((a + b)[:5]) == []
    assert r.feed((a + b)[5:]) == [a, b]
    with pytest.raises(p.ProtocolError, match="out of range"):
        p.FrameReader().feed(struct.pack("<I", 3))
    with pytest.raises(p.ProtocolError, match="out of range"):
        p.FrameReader().feed(struct.pack("<I", p.MAX_FRAME + 1))
