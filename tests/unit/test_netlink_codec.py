"""The netlink codec against hand-built bytes from <linux/netlink.h>'s layouts."""
import struct

import pytest

from linx_core.ip import IP, MAC
from linx_core.netlink import codec
from linx_core.netlink.codec import Array, CStruct, Dispatch, Table
from linx_core.netlink.errors import MalformedMessage

INNER = Table("INNER", ((1, "mode", codec.u32),))
OUTER = Table("OUTER", (
    (1, "kind", codec.strz),
    (2, "data", Dispatch("kind", {"macvlan": INNER})),
    (3, "name", codec.strz),
    (4, "mtu", codec.u32),
    (5, "addr", codec.ipaddr),
    (6, "mac", codec.lladdr),
    (7, "up", codec.flag),
    (8, "port", codec.be16),
    (9, "list", Array(INNER, 1, nested_flag=True)),
    (10, "nest", Table("N", ((1, "x", codec.u8),), nested_flag=True)),
))


def test_frame_layout_and_padding():
    data = codec.frame(16, codec.NLM_F_REQUEST, 7, b"abcde", pid=9)
    assert len(data) == 24                       # 16 + 5, padded to 24
    assert struct.unpack_from("=IHHII", data) == (21, 16, 1, 7, 9)
    assert data[16:21] == b"abcde" and data[21:] == b"\0\0\0"


def test_split_several_messages():
    buf = codec.frame(1, 2, 3, b"x") + codec.frame(4, 5, 6, b"yyyy")
    msgs = codec.split(buf)
    assert [(m.type, m.flags, m.seq, m.body) for m in msgs] == [(1, 2, 3, b"x"), (4, 5, 6, b"yyyy")]


def test_split_rejects_overrun():
    buf = bytearray(codec.frame(1, 0, 1, b"abcd"))
    struct.pack_into("=I", buf, 0, 64)
    with pytest.raises(MalformedMessage):
        codec.split(bytes(buf))


def test_attr_encoding_matches_nla_layout():
    raw = OUTER.encode({"name": "v0", "mtu": 1400, "up": True, "port": 80})
    assert raw == (struct.pack("=HH", 7, 3) + b"v0\0\0" + struct.pack("=HHI", 8, 4, 1400)
                   + struct.pack("=HH", 4, 7) + struct.pack("=HH", 6, 8) + b"\x00\x50\0\0")


def test_roundtrip_nested_dispatch_array():
    values = {"kind": "macvlan", "data": {"mode": 4}, "name": "m0", "mtu": 9000,
              "addr": IP("fc00::1"), "mac": MAC("02:aa:bb:cc:dd:ee"), "up": True,
              "list": [{"mode": 1}, {"mode": 2}], "nest": {"x": 3}}
    raw = OUTER.encode(values)
    assert OUTER.decode(raw) == values


def test_nested_flag_set_only_when_asked():
    raw = OUTER.encode({"nest": {"x": 1}})
    assert struct.unpack_from("=HH", raw)[1] == 10 | codec.NLA_F_NESTED
    raw = OUTER.encode({"kind": "macvlan", "data": {"mode": 1}})
    assert struct.unpack_from("=HH", raw, 12)[1] == 2


def test_unknown_kind_stays_bytes_and_unknown_ids_skipped():
    raw = OUTER.encode({"kind": "weird", "data": b"\1\2"}) + struct.pack("=HH", 4, 99)
    assert OUTER.decode(raw) == {"kind": "weird", "data": b"\1\2"}


def test_none_values_are_left_off():
    assert OUTER.encode({"name": None, "mtu": 1}) == struct.pack("=HHI", 8, 4, 1)


def test_decode_bad_length_is_clean_error():
    with pytest.raises(MalformedMessage):
        OUTER.decode(struct.pack("=HHI", 12, 4, 1))        # overruns
    with pytest.raises(MalformedMessage):
        OUTER.decode(struct.pack("=HHH", 6, 4, 1))         # u32 in 2 bytes
    with pytest.raises(MalformedMessage):
        OUTER.decode(struct.pack("=HH", 2, 4))             # length below the header


def test_cstruct_older_and_newer_kernels():
    st = CStruct("=QQQ", ("a", "b", "c"))
    assert st.decode(struct.pack("=QQ", 1, 2)) == {"a": 1, "b": 2}
    assert st.decode(struct.pack("=QQQQ", 1, 2, 3, 4)) == {"a": 1, "b": 2, "c": 3}


def _error_msg(err, flags=0, tlvs=b"", request=b""):
    req = request or codec.frame(16, 5, 42, b"\0" * 16)
    echoed = req[:16] if flags & codec.NLM_F_CAPPED else req
    return codec.Msg(codec.NLMSG_ERROR, flags, 42, 0, struct.pack("=i", -err) + echoed + tlvs)


def test_parse_error_plain_ack_and_errno():
    assert codec.parse_error(_error_msg(0)) == (0, None, None)
    assert codec.parse_error(_error_msg(17)) == (17, None, None)


@pytest.mark.parametrize("capped", [0, codec.NLM_F_CAPPED])
def test_parse_error_extended_ack(capped):
    tlvs = (struct.pack("=HH", 4 + 12, 1) + b"bad mtu!!!!\0"
            + struct.pack("=HHI", 8, 2, 16 + 20))
    err, text, offset = codec.parse_error(_error_msg(22, capped | codec.NLM_F_ACK_TLVS, tlvs))
    assert (err, text, offset) == (22, "bad mtu!!!!", 20)


def test_parse_error_truncated():
    with pytest.raises(MalformedMessage):
        codec.parse_error(codec.Msg(codec.NLMSG_ERROR, codec.NLM_F_ACK_TLVS, 1, 0, b"\0\0\0\0"))
