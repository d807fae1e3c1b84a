"""The agent's side of the protocol: malformed requests get an error event, never a crash,
and leave no child behind."""
import os
import socket
import struct
import subprocess

import pytest

from linx_core import process, protocol as p


def agent_with(frames: bytes) -> tuple[list[dict], int]:
    parent, child = socket.socketpair()
    proc = subprocess.Popen([process.agent_path()], pass_fds=(3, child.fileno()),
                            preexec_fn=lambda: os.dup2(child.fileno(), 3))
    child.close()
    parent.sendall(frames)
    parent.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := parent.recv(65536):
        data += chunk
    parent.close()
    code = proc.wait(timeout=10)
    return [p.decode_event(f) for f in p.FrameReader().feed(data)], code


def hdr(length, version=1, mtype=1, reserved=0):
    return p.HEADER.pack(length, version, mtype, reserved)


@pytest.mark.parametrize("frames, why", [
    (hdr(8, version=9), "unsupported protocol version 9"),
    (hdr(8, mtype=77), "unknown request type 77"),
    (hdr(4), "frame length 4 out of range"),
    (hdr(8, reserved=5), "reserved"),
    (hdr(8), "required field 1 missing"),
    (hdr(14) + p.FIELD.pack(1, 100), "runs past the frame"),
    (hdr(18) + p.FIELD.pack(3, 4) + b"\0" * 4, "must be 8 bytes"),
    (hdr(17) + p.FIELD.pack(1, 3) + b"a\0b", "NUL"),
    (hdr(16) + p.FIELD.pack(99, 2) + b"ab", "unknown field 99"),
    (p.encode(p.PROCEED, []), "first request must be spawn"),
])
def test_malformed_first_frame(frames, why):
    events, code = agent_with(frames)
    assert code == 2
    assert len(events) == 1
    ev = events[0]
    assert ev["event"] == "error" and ev["stage"] == "malformed_frame" and ev["errno"] == 71
    assert why in ev["message"]


def test_malformed_frame_after_spawn_kills_the_child():
    s = process.Session.spawn(["/bin/sleep", "60"])
    host_pid = s.wait_ready()
    s._send(hdr(8, mtype=200))
    outcome = s.wait(timeout=10)
    assert outcome["event"] == "error" and outcome["stage"] == "malformed_frame"
    assert "unknown request type 200" in outcome["message"]
    with pytest.raises(ProcessLookupError):
        os.kill(host_pid, 0)


def test_spawn_sent_twice_is_malformed():
    s = process.Session.spawn(["/bin/sleep", "60"])
    host_pid = s.wait_ready()
    s._send(p.encode(p.SPAWN, [("argv", "/bin/true")]))
    outcome = s.wait(timeout=10)
    assert (outcome["stage"], outcome["message"]) == ("malformed_frame", "spawn sent twice")
    with pytest.raises(ProcessLookupError):
        os.kill(host_pid, 0)


def test_agent_without_control_socket_says_so():
    r = subprocess.run([process.agent_path()], capture_output=True, text=True)
    assert r.returncode == 2 and "fd 3 is not the control socket" in r.stderr
