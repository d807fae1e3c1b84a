"""The decoders fed random and truncated bytes: they return a value or raise
MalformedMessage — never another exception, never a hang."""
import struct

from hypothesis import given, settings, strategies as st

from linx_core.netlink import codec
from linx_core.netlink.errors import MalformedMessage
from linx_core.netlink.rtnl import address, link, neighbour, route, rule, stats

def frame(request, seq):
    mtype, flags, body = request
    return codec.frame(mtype, flags, seq, body)


DECODERS = [link.decode, address.decode, route.decode, neighbour.decode, rule.decode, stats.decode]

VALID = [
    frame(link.add_request("v0", "veth", peer="v1", mtu=1400, address="02:00:00:00:00:01"), 1),
    frame(link.add_request("m0", "macvlan", parent=2), 2),
    frame(address.request("add", 3, "10.0.0.1/24", label="x", broadcast="+"), 3),
    frame(route.request("add", "fd00::/64", via="fd00::1", table=1000, metric=5), 4),
    frame(neighbour.request("add", 3, "10.0.0.2", "02:00:00:00:00:02"), 5),
    frame(rule.request("add", src="10.0.0.0/8", table=100, priority=3), 6),
]


def decode_all(buf: bytes) -> None:
    try:
        msgs = codec.split(buf)
    except MalformedMessage:
        return
    for msg in msgs:
        for decode in DECODERS:
            try:
                decode(msg.body)
            except MalformedMessage:
                pass
        try:
            codec.parse_error(msg._replace(type=codec.NLMSG_ERROR))
        except MalformedMessage:
            pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(buf):
    decode_all(buf)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_corrupted(valid, data):
    cut = data.draw(st.integers(0, len(valid)))
    decode_all(valid[:cut])
    pos = data.draw(st.integers(0, len(valid) - 1))
    byte = data.draw(st.integers(0, 255))
    corrupted = valid[:pos] + bytes([byte]) + valid[pos + 1:]
    decode_all(corrupted)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID), st.integers(0, 0xFFFF))
def test_hostile_attribute_lengths(valid, length):
    body = bytearray(codec.split(valid)[0].body)
    off = {16: 16, 20: 8, 24: 12, 28: 12, 32: 12}[struct.unpack_from("=H", valid, 4)[0]]
    if off + 4 <= len(body):
        struct.pack_into("=H", body, off, length)
    for decode in DECODERS:
        try:
            decode(bytes(body))
        except MalformedMessage:
            pass


def test_valid_messages_decode():
    assert link.decode(codec.split(VALID[0])[0].body).data["peer"]["ifname"] == "v1"
    assert str(route.decode(codec.split(VALID[3])[0].body).gateway) == "fd00::1"
