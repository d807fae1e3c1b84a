"""Value types for addresses: IP (v4 or v6), Subnet (address + prefix) and MAC.

They hold the raw network-order bytes, which is what netlink carries (4 or 16 bytes for an
address, 6 for a MAC; the family is the length), so decoding a reply is a wrapper around a
slice. Text goes through inet_pton/inet_ntop, so strings read and print exactly as iproute2's
do. Every verb that takes one of these also takes its string form.
"""
import socket

from .errors import UsageError

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
_inet_pton = socket.inet_pton
_HEX = frozenset("0123456789abcdefABCDEF")


class IP:
    """An IPv4 or IPv6 address. `IP("10.0.0.5")`, `IP(b"\\n\\0\\0\\5")`, `IP(other_ip)`."""

    __slots__ = ("bytes",)

    def __init__(self, value, where: str = "address"):
        if value.__class__ is not str:
            if isinstance(value, IP):
                self.bytes = value.bytes
                return
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
                if len(raw) not in (4, 16):
                    raise UsageError(where, f"{len(raw)} bytes is not an IPv4 or IPv6 address")
                self.bytes = raw
                return
            value = str(value)
        try:
            self.bytes = _inet_pton(AF_INET6 if ":" in value else AF_INET, value)
        except (OSError, ValueError):       # ValueError: an embedded NUL
            raise UsageError(where, f"{value!r} is not an IPv4 or IPv6 address") from None

    @property
    def family(self) -> int:
        """AF_INET or AF_INET6, the number netlink headers carry."""
        return AF_INET if len(self.bytes) == 4 else AF_INET6

    @property
    def bits(self) -> int:
        return len(self.bytes) * 8

    def __int__(self) -> int:
        return int.from_bytes(self.bytes, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "IP":
        """No checks: for decoders that have checked the length (4 or 16) themselves."""
        ip = cls.__new__(cls)
        ip.bytes = raw
        return ip

    @classmethod
    def from_int(cls, value: int, family: int) -> "IP":
        return cls((value).to_bytes(4 if family == AF_INET else 16, "big"))

    def __str__(self) -> str:
        return socket.inet_ntop(self.family, self.bytes)

    def __repr__(self) -> str:
        return f"IP({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, IP) and other.bytes == self.bytes

    def __hash__(self) -> int:
        return hash(("IP", self.bytes))

    def __lt__(self, other: "IP") -> bool:
        return (len(self.bytes), self.bytes) < (len(other.bytes), other.bytes)


class Subnet:
    """An address with a prefix length, from CIDR text (`10.0.0.0/24`, `fc00::/16`).

    The address keeps its host bits (`10.0.42.5/24` is an interface address as much as a
    network); network() zeroes them. A bare address is a host subnet (/32 or /128), as in ip."""

    __slots__ = ("address", "prefix")

    def __init__(self, value, prefix: int | None = None, where: str = "subnet"):
        if isinstance(value, Subnet) and prefix is None:
            address, prefix = value.address, value.prefix
        elif value.__class__ is str and "/" in value and prefix is None:
            text, _, plen = value.partition("/")
            address = IP(text, where)
            if not (plen.isdecimal() and plen.isascii()):
                raise UsageError(where, f"{value!r}: prefix length {plen!r} is not a number")
            prefix = int(plen)
        else:
            address = IP(value, where)
        bits = len(address.bytes) * 8
        if prefix is None:
            prefix = bits
        if not 0 <= prefix <= bits:
            raise UsageError(where, f"prefix length {prefix} is out of range 0..{bits} for {address}")
        self.address, self.prefix = address, int(prefix)

    @property
    def family(self) -> int:
        return self.address.family

    def _mask(self) -> int:
        bits = self.address.bits
        return ((1 << bits) - 1) ^ ((1 << (bits - self.prefix)) - 1)

    def host_bits(self) -> int:
        """The address's bits past the prefix (0 for a network address)."""
        raw = self.address.bytes
        return int.from_bytes(raw, "big") & ((1 << (len(raw) * 8 - self.prefix)) - 1)

    def network(self) -> IP:
        return IP.from_int(int(self.address) & self._mask(), self.family)

    def broadcast(self) -> IP | None:
        """The IPv4 broadcast address; None for IPv6, which has none."""
        if self.family != AF_INET:
            return None
        return IP.from_int(int(self.address) | (~self._mask() & 0xFFFFFFFF), AF_INET)

    def contains(self, ip) -> bool:
        """False across families, as the spec's Subnet.contains? says."""
        ip = IP(ip)
        if ip.family != self.family:
            return False
        return int(ip) & self._mask() == int(self.address) & self._mask()

    __contains__ = contains

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix}"

    def __repr__(self) -> str:
        return f"Subnet({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Subnet) and (other.address, other.prefix) == (self.address, self.prefix)

    def __hash__(self) -> int:
        return hash(("Subnet", self.address.bytes, self.prefix))


class MAC:
    """A 48-bit link-layer address, `02:aa:bb:cc:dd:ee` (also `-` separated, any case)."""

    __slots__ = ("bytes",)

    def __init__(self, value, where: str = "MAC address"):
        if isinstance(value, MAC):
            raw = value.bytes
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) != 6:
                raise UsageError(where, f"{len(raw)} bytes is not a 6-byte MAC address")
        else:
            text = str(value)
            parts = text.replace("-", ":").split(":")
            if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in _HEX for c in p)
                                          for p in parts):
                raise UsageError(where, f"{text!r} is not a MAC address (expected xx:xx:xx:xx:xx:xx)")
            raw = bytes(int(p, 16) for p in parts)
        self.bytes = raw

    def __str__(self) -> str:
        return self.bytes.hex(":")

    def __repr__(self) -> str:
        return f"MAC({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MAC) and other.bytes == self.bytes

    def __hash__(self) -> int:
        return hash(("MAC", self.bytes))
