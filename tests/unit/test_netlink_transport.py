"""talk/dump/talk_many against a scripted socket: sequence matching, ACKs, multipart,
NLM_F_DUMP_INTR retries, errors with extended ACK — without a kernel."""
import errno
import struct

import pytest

from linx_core.netlink import codec, transport
from linx_core.netlink.errors import DumpInterrupted, NetlinkError


class FakeSocket:
    """Answers each sent request with what `reply(seq, msgs)` returns (datagrams)."""

    port = 77

    def __init__(self, reply):
        self.reply, self.sent, self.queue, self._seq = reply, [], [], 0

    def next_seq(self):
        self._seq += 1
        return self._seq

    def send(self, data):
        msgs = codec.split(data)
        self.sent.append(msgs)
        self.queue.extend(self.reply(msgs))

    def recv(self):
        return codec.split(self.queue.pop(0))


def ack(seq, err=0, text=None, pid=77):
    tlv = b""
    flags = codec.NLM_F_CAPPED
    if text:
        flags |= codec.NLM_F_ACK_TLVS
        payload = text.encode() + b"\0"
        tlv = struct.pack("=HH", 4 + len(payload), 1) + payload + b"\0" * (-len(payload) % 4)
    body = struct.pack("=i", -err) + codec.frame(16, 5, seq, b"")[:16] + tlv
    return codec.frame(codec.NLMSG_ERROR, flags, seq, body, pid)


def data(seq, payload, flags=0, pid=77):
    return codec.frame(24, flags, seq, payload, pid)


def test_talk_returns_data_then_ack_and_skips_strangers():
    def reply(msgs):
        seq = msgs[0].seq
        assert msgs[0].flags & (codec.NLM_F_REQUEST | codec.NLM_F_ACK) == 5
        return [data(0, b"multicast") + data(seq + 100, b"stale") + data(seq, b"answer", pid=78),
                data(seq, b"answer") + ack(seq)]
    assert [m.body for m in transport.talk(FakeSocket(reply), 26, 0, b"q")] == [b"answer"]


def test_talk_raises_with_ext_ack_text():
    sock = FakeSocket(lambda msgs: [ack(msgs[0].seq, errno.EINVAL, "Invalid prefix")])
    with pytest.raises(NetlinkError) as e:
        transport.talk(sock, 24, 0, b"", op="route add", obj="10.0.0.1/24")
    assert (e.value.errno, e.value.detail) == (errno.EINVAL, "Invalid prefix")
    assert str(e.value) == "netlink route add failed on 10.0.0.1/24: EINVAL (errno 22): Invalid prefix"


def test_dump_collects_multipart_until_done():
    def reply(msgs):
        seq = msgs[0].seq
        assert msgs[0].flags & codec.NLM_F_DUMP == codec.NLM_F_DUMP
        return [data(seq, b"a", codec.NLM_F_MULTI) + data(seq, b"b", codec.NLM_F_MULTI),
                data(seq, b"c", codec.NLM_F_MULTI) + codec.frame(codec.NLMSG_DONE, codec.NLM_F_MULTI, seq,
                                                                 b"\0\0\0\0", 77)]
    assert [m.body for m in transport.dump(FakeSocket(reply), 26)] == [b"a", b"b", b"c"]


def test_dump_interrupted_is_retried_then_raised():
    calls = []

    def reply(msgs):
        seq = msgs[0].seq
        calls.append(seq)
        flags = codec.NLM_F_MULTI | (codec.NLM_F_DUMP_INTR if len(calls) < 3 else 0)
        return [data(seq, b"x", flags) + codec.frame(codec.NLMSG_DONE, flags, seq, b"\0\0\0\0", 77)]
    assert [m.body for m in transport.dump(FakeSocket(reply), 26)] == [b"x"]
    assert len(calls) == 3

    def always_torn(msgs):
        seq = msgs[0].seq
        flags = codec.NLM_F_MULTI | codec.NLM_F_DUMP_INTR
        return [data(seq, b"x", flags) + codec.frame(codec.NLMSG_DONE, flags, seq, b"\0\0\0\0", 77)]
    sock = FakeSocket(always_torn)
    with pytest.raises(DumpInterrupted):
        transport.dump(sock, 26, retries=2)
    assert len(sock.sent) == 3


def kernel_acks(msgs):
    """As netlink_rcv_skb: an answer for a refused request or one asking for an ACK."""
    out = b"".join(ack(m.seq, errno.EEXIST if m.body == b"dup" else 0) for m in msgs
                   if m.body == b"dup" or m.flags & codec.NLM_F_ACK)
    return [out] if out else []


def test_talk_many_one_result_per_request_in_chunks():
    sock = FakeSocket(kernel_acks)
    reqs = [(24, 0, b"ok")] * 5 + [(24, 0, b"dup")] + [(24, 0, b"ok")] * 6
    results = transport.talk_many(sock, reqs, chunk_count=4, stop=False)
    assert [r is None for r in results] == [True] * 5 + [False] + [True] * 6
    assert results[5].index == 5 and len(sock.sent) == 3
    sock = FakeSocket(kernel_acks)
    assert len(transport.talk_many(sock, reqs, chunk_count=4)) == 8      # stops after the chunk


def test_talk_many_asks_an_ack_of_each_chunks_last_request_only():
    sock = FakeSocket(kernel_acks)
    reqs = [(24, 0x400, b"ok")] * 6 + [(24, 0, b"dup")]
    results = transport.talk_many(sock, reqs, chunk_count=3, stop=False)
    assert [[m.flags for m in chunk] for chunk in sock.sent] == [[0x401, 0x401, 0x405]] * 2 + [[0x5]]
    assert [r is None for r in results] == [True] * 6 + [False]
    assert [m.seq for chunk in sock.sent for m in chunk] == list(range(1, 8))


def test_talk_many_skips_strangers_and_waits_for_the_last_answer():
    def reply(msgs):
        last = msgs[-1].seq
        return [ack(0, errno.ENOENT) + ack(last, pid=78) + ack(last + 1, errno.EEXIST),
                ack(msgs[0].seq, errno.EEXIST, "dup"), ack(last)]
    sock = FakeSocket(reply)
    results = transport.talk_many(sock, [(24, 0, b"a"), (24, 0, b"b")], op="route add")
    assert results[0].detail == "dup" and results[1] is None and not sock.queue
    assert str(results[0]) == "netlink route add failed: EEXIST (errno 17): dup"
