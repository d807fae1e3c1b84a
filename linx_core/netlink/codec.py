"""The netlink wire format, family-agnostic: the nlmsghdr frame and type-length-value
attributes (<linux/netlink.h>), with nested attributes, arrays and kind-dispatched payloads.

Attribute layouts are plain data with explicit ids (STYLE.md §2), compiled on first use:

    IFLA = Table("IFLA", (        # (id, name, codec); ids from <linux/if_link.h>
        (3, "ifname", strz),
        (4, "mtu", u32),
        (18, "linkinfo", LINKINFO),   # a nested attribute is another Table
    ))
    IFLA.encode({"ifname": "v0", "mtu": 1400})   # -> bytes, in the dict's order
    IFLA.decode(buf, off, end)                   # -> {"ifname": "v0", "mtu": 1400}

Decoding skips ids the table does not name and raises MalformedMessage (never IndexError or
struct.error) on anything that does not parse, so a hostile or truncated buffer is one clean
error.
"""
import struct
from typing import NamedTuple

from ..ip import IP, MAC
from .errors import MalformedMessage

# <linux/netlink.h>
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 0x01, 0x02, 0x04, 0x08
NLM_F_DUMP_INTR, NLM_F_DUMP_FILTERED = 0x10, 0x20
NLM_F_ROOT, NLM_F_MATCH, NLM_F_ATOMIC = 0x100, 0x200, 0x400
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
NLM_F_NONREC, NLM_F_BULK = 0x100, 0x200            # DELETE requests
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200         # flags of an NLMSG_ERROR ack
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS = 1, 2
NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_TYPE_MASK = 0x8000, 0x4000, 0x3FFF

NLMSGHDR = struct.Struct("=IHHII")      # len, type, flags, seq, pid
NLA = struct.Struct("=HH")              # nla_len, nla_type
NLMSGERR = struct.Struct("=i")          # error, then the request's nlmsghdr (and more)
_INT = struct.Struct("=i")


def align(n: int) -> int:
    return (n + 3) & ~3


class Msg(NamedTuple):
    """One message: header fields and the payload after the 16-byte header."""
    type: int
    flags: int
    seq: int
    pid: int
    body: bytes


def frame(mtype: int, flags: int, seq: int, body: bytes = b"", pid: int = 0) -> bytes:
    """One message, padded so frames concatenate into a multi-message buffer."""
    length = NLMSGHDR.size + len(body)
    return NLMSGHDR.pack(length, mtype, flags, seq, pid) + body + b"\0" * (align(length) - length)


def split(buf: bytes) -> list[Msg]:
    """A received buffer into its messages, in order. A tail too short for a header is
    padding; a length that overruns the buffer is MalformedMessage."""
    out = []
    off, end = 0, len(buf)
    unpack = NLMSGHDR.unpack_from
    new = tuple.__new__
    while off + 16 <= end:
        length, mtype, flags, seq, pid = unpack(buf, off)
        if length < 16 or off + length > end:
            raise MalformedMessage(f"message length {length} at offset {off} overruns the "
                                   f"{end}-byte buffer")
        out.append(new(Msg, (mtype, flags, seq, pid, buf[off + 16:off + length])))
        off += (length + 3) & ~3
    return out


def parse_error(msg: Msg) -> tuple[int, str | None, int | None]:
    """An NLMSG_ERROR (or a dump's NLMSG_DONE) into (errno, ext-ack message, ext-ack offset).
    errno is positive, 0 for a plain ACK. The TLVs follow the echoed request: its header
    alone when NLM_F_CAPPED, all of it otherwise."""
    body = msg.body
    if len(body) < 4:
        raise MalformedMessage(f"error message of {len(body)} bytes")
    err = -_INT.unpack_from(body)[0]
    text = offset = None
    if msg.flags & NLM_F_ACK_TLVS:
        start = 4
        if msg.type == NLMSG_ERROR:
            if len(body) < 20:
                raise MalformedMessage("error message shorter than its echoed header")
            start = 20 if msg.flags & NLM_F_CAPPED else 4 + align(NLMSGHDR.unpack_from(body, 4)[0])
        tlv = _NLMSGERR_ATTRS.decode(body, start)
        text, offset = tlv.get("msg"), tlv.get("offs")
        if offset is not None and msg.type == NLMSG_ERROR:
            offset -= 16  # the kernel counts from the request's nlmsghdr; we count in the body
    return err, text, offset


# --- scalar codecs -------------------------------------------------------------------------

class Scalar:
    """A fixed-size number in a struct format (`=I` native u32, `>I` big-endian u32)."""

    __slots__ = ("fmt", "_st")

    def __init__(self, fmt: str):
        self.fmt, self._st = fmt, struct.Struct(fmt)

    def encode(self, value) -> bytes:
        return self._st.pack(value)

    def decode(self, raw: bytes):
        return self._st.unpack(raw)[0]


u8, u16, u32, u64 = Scalar("=B"), Scalar("=H"), Scalar("=I"), Scalar("=Q")
s8, s16, s32, s64 = Scalar("=b"), Scalar("=h"), Scalar("=i"), Scalar("=q")
be16, be32, be64 = Scalar(">H"), Scalar(">I"), Scalar(">Q")


class _Strz:
    """A NUL-terminated string (NLA_NUL_STRING / NLA_STRING as the kernel sends names)."""

    def encode(self, value) -> bytes:
        return str(value).encode() + b"\0"

    def decode(self, raw: bytes) -> str:
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class _String:
    """A string without the terminating NUL (some NLA_STRING attributes want it bare)."""

    def encode(self, value) -> bytes:
        return str(value).encode()

    def decode(self, raw: bytes) -> str:
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class _Binary:
    def encode(self, value) -> bytes:
        return bytes(value)

    def decode(self, raw: bytes) -> bytes:
        return raw


class _Flag:
    """NLA_FLAG: present means true, no payload."""

    def encode(self, value) -> bytes:
        return b""

    def decode(self, raw: bytes) -> bool:
        return True


class _IP:
    """An address as its raw bytes; the family is the length (4 or 16)."""

    def encode(self, value) -> bytes:
        return value.bytes if type(value) is IP else IP(value).bytes

    def decode(self, raw: bytes) -> IP:
        if len(raw) != 4 and len(raw) != 16:
            raise MalformedMessage(f"{len(raw)}-byte address")
        return IP.from_bytes(raw)


class _MAC:
    """A link-layer address. Not always 6 bytes (ipip, infiniband), so other lengths stay bytes."""

    def encode(self, value) -> bytes:
        return value if isinstance(value, bytes) else MAC(value).bytes

    def decode(self, raw: bytes):
        return MAC(raw) if len(raw) == 6 else raw


strz, string, binary, flag, ipaddr, lladdr = _Strz(), _String(), _Binary(), _Flag(), _IP(), _MAC()


class CStruct:
    """A C struct carried as one attribute (ifa_cacheinfo, rtnl_link_stats64, ...): a dict of
    its fields. A payload shorter than the struct leaves the missing tail fields out (structs
    grow at the end across kernel versions); longer ones keep the known prefix."""

    def __init__(self, fmt: str, names: tuple[str, ...]):
        self._st, self.names = struct.Struct(fmt), names

    @property
    def size(self) -> int:
        return self._st.size

    def encode(self, value: dict) -> bytes:
        return self._st.pack(*(value.get(n) or 0 for n in self.names))

    def decode(self, raw: bytes) -> dict:
        if len(raw) >= self._st.size:
            return dict(zip(self.names, self._st.unpack_from(raw)))
        fmt = self._st.format
        prefix, byteorder = fmt[1:], fmt[0]
        n = 0
        while n < len(prefix) and struct.calcsize(byteorder + prefix[:n + 1]) <= len(raw):
            n += 1
        return dict(zip(self.names, struct.unpack_from(byteorder + prefix[:n], raw)))


# --- attribute tables ----------------------------------------------------------------------

class Table:
    """An attribute set: rows of (id, name, codec). As a codec it is a nested attribute whose
    payload is this set; `nested_flag` sets NLA_F_NESTED on the attribute that holds it
    (nfnetlink wants it, rtnetlink's iproute2 encoding leaves it off)."""

    def __init__(self, name: str, rows: tuple, *, nested_flag: bool = False):
        self.name, self.rows, self.nested_flag = name, rows, nested_flag
        self._by_id: dict | None = None
        self._by_name: dict | None = None
        self._fast: dict | None = None
        self._enc: dict | None = None

    def _compile(self):
        by_id, by_name, fast = {}, {}, {}
        for aid, name, codec in self.rows:
            if aid in by_id or name in by_name:
                raise ValueError(f"{self.name}: duplicate attribute {aid} {name!r}")
            by_id[aid] = (name, codec)
            by_name[name] = (aid, codec)
            # how decode() reads it: a struct in place, an address, a sibling-dependent
            # payload, or the codec's own decode on the payload slice
            if isinstance(codec, Scalar):
                fast[aid] = (name, _SCALAR, codec._st.unpack_from, codec._st.size)
            elif codec is ipaddr:
                fast[aid] = (name, _ADDRESS, None, 0)
            elif isinstance(codec, Dispatch):
                fast[aid] = (name, _DISPATCH, codec, 0)
            else:
                fast[aid] = (name, _CODEC, codec.decode, 0)
        self._by_id, self._by_name, self._fast = by_id, by_name, fast
        return fast

    def id(self, name: str) -> int:
        if self._by_name is None:
            self._compile()
        return self._by_name[name][0]

    def encode(self, values: dict) -> bytes:
        """Attributes in the dict's order; a None value is left off the wire. An int key is
        a raw attribute id whose value is already-encoded bytes."""
        enc = self._enc or self._compile_encode()
        pack = NLA.pack
        parts = []
        for name, value in values.items():
            if value is None:
                continue
            if type(name) is int:
                aid, payload = name, bytes(value)
            else:
                aid, encode, dispatch = enc[name]
                if dispatch is not None:
                    codec = dispatch.pick(values)
                    encode = codec.encode
                    if getattr(codec, "nested_flag", False):
                        aid |= NLA_F_NESTED
                payload = encode(value)
            length = 4 + len(payload)
            parts.append(pack(length, aid))
            parts.append(payload)
            if length & 3:
                parts.append(_PAD[4 - (length & 3)])
        return b"".join(parts)

    def _compile_encode(self) -> dict:
        """name -> (attribute type with NLA_F_NESTED when due, encode function, Dispatch)."""
        enc = {}
        for aid, name, codec in self.rows:
            if isinstance(codec, Dispatch):
                enc[name] = (aid, None, codec)
            else:
                encode = codec._st.pack if isinstance(codec, Scalar) else codec.encode
                enc[name] = (aid | (NLA_F_NESTED if getattr(codec, "nested_flag", False) else 0),
                             encode, None)
        self._enc = enc
        return enc

    def decode(self, buf: bytes, off: int = 0, end: int | None = None) -> dict:
        """The hot loop of every listing: a 100k-route dump runs it half a million times,
        so scalars are unpacked in place and addresses built without a call."""
        fast = self._fast or self._compile()
        out = {}
        deferred = None
        end = len(buf) if end is None else end
        unpack = NLA.unpack_from
        get = fast.get
        new_ip = IP.__new__
        try:
            while off + 4 <= end:
                alen, atype = unpack(buf, off)
                if alen < 4 or off + alen > end:
                    raise MalformedMessage(f"{self.name}: attribute {atype & NLA_TYPE_MASK} "
                                           f"length {alen} overruns its {end - off}-byte space")
                row = get(atype & NLA_TYPE_MASK)
                if row is not None:
                    name, how, fn, size = row
                    if how is _SCALAR:
                        if alen - 4 != size:
                            raise MalformedMessage(f"{self.name}: {name} has {alen - 4} bytes, not {size}")
                        out[name] = fn(buf, off + 4)[0]
                    elif how is _ADDRESS:
                        if alen != 8 and alen != 20:
                            raise MalformedMessage(f"{self.name}: {name} is a {alen - 4}-byte address")
                        ip = new_ip(IP)
                        ip.bytes = buf[off + 4:off + alen]
                        out[name] = ip
                    elif how is _CODEC:
                        out[name] = fn(buf[off + 4:off + alen])
                    else:
                        deferred = deferred or []
                        deferred.append((name, fn, buf[off + 4:off + alen]))
                off += (alen + 3) & ~3
            if deferred:
                for name, codec, raw in deferred:
                    out[name] = codec.pick(out).decode(raw)
        except MalformedMessage:
            raise
        except (struct.error, ValueError, TypeError, IndexError, KeyError, RecursionError) as e:
            raise MalformedMessage(f"{self.name}: {e}") from None
        return out


_SCALAR, _ADDRESS, _CODEC, _DISPATCH = "scalar", "address", "codec", "dispatch"
_PAD = (b"", b"\0", b"\0\0", b"\0\0\0")


class Array:
    """A nest of repeated attributes (nf_tables' NFTA_LIST_ELEM lists, IFLA_VFINFO_LIST):
    a list of values, each in an attribute of type `elem_id`."""

    def __init__(self, elem, elem_id: int = 1, *, nested_flag: bool = False):
        self.elem, self.elem_id, self.nested_flag = elem, elem_id, nested_flag

    def encode(self, values) -> bytes:
        aid = self.elem_id | (NLA_F_NESTED if getattr(self.elem, "nested_flag", False) else 0)
        parts = []
        for value in values:
            payload = self.elem.encode(value)
            length = 4 + len(payload)
            parts.append(NLA.pack(length, aid) + payload + b"\0" * (align(length) - length))
        return b"".join(parts)

    def decode(self, raw: bytes) -> list:
        out, off, end = [], 0, len(raw)
        while off + 4 <= end:
            alen, atype = NLA.unpack_from(raw, off)
            if alen < 4 or off + alen > end:
                raise MalformedMessage(f"array element length {alen} overruns its space")
            if atype & NLA_TYPE_MASK == self.elem_id:
                out.append(self.elem.decode(raw[off + 4:off + alen]))
            off += (alen + 3) & ~3
        return out


class Dispatch:
    """A payload whose layout depends on a sibling attribute: IFLA_INFO_DATA on
    IFLA_INFO_KIND, NFTA_EXPR_DATA on NFTA_EXPR_NAME. Unknown kinds stay raw bytes. The
    chosen codec's own nested_flag applies."""

    def __init__(self, on: str, choices: dict):
        self.on, self.choices = on, choices

    def pick(self, siblings: dict):
        return self.choices.get(siblings.get(self.on), binary)


_NLMSGERR_ATTRS = Table("NLMSGERR_ATTR", (
    (NLMSGERR_ATTR_MSG, "msg", strz),
    (NLMSGERR_ATTR_OFFS, "offs", u32),
))
