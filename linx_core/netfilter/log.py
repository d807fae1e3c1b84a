"""NFLOG listener (`linx nft log`): packets a `log group N` rule sends to userspace over
nfnetlink_log (include/uapi/linux/netfilter/nfnetlink_log.h, subsystem NFNL_SUBSYS_ULOG).

A socket binds one group with NFULNL_MSG_CONFIG (NFULA_CFG_CMD bind, then NFULA_CFG_MODE
with the copy mode and range); the kernel then sends one NFULNL_MSG_PACKET per logged
packet, to this socket only (a group has one listener per netns: a second bind is EPERM,
nfulnl_recv_config()).
Copy modes: none and meta carry no payload (the kernel treats them alike,
__build_packet_message()); none also leaves out the hardware address here; packet copies
up to SNAPLEN bytes.
"""
import errno as _errno
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

from .. import target as _target
from ..errors import UsageError
from ..netlink import transport
from ..netlink.codec import Table, be32, binary, strz
from ..netlink.errors import NetlinkError

NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
CMD_BIND, CMD_UNBIND = 1, 2
COPY = {"none": 0, "meta": 1, "packet": 2}
SNAPLEN_MAX = 0xFFFF
CONFIG = Table("NFULA_CFG", ((1, "cmd", binary), (2, "mode", binary), (3, "nlbufsiz", be32)))
PACKET = Table("NFULA", ((1, "hdr", binary), (2, "mark", be32), (3, "timestamp", binary),
                         (4, "indev", be32), (5, "outdev", be32), (6, "physindev", be32),
                         (7, "physoutdev", be32), (8, "hwaddr", binary), (9, "payload", binary),
                         (10, "prefix", strz), (11, "uid", be32), (12, "seq", be32),
                         (14, "gid", be32), (15, "hwtype", binary)))
HOOKS = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
IPPROTO = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}


def parse_copy(text: str) -> tuple[str, int]:
    """`none`, `meta`, `packet` or `packet:SNAPLEN` -> (mode, snaplen)."""
    mode, _, snap = text.partition(":")
    if mode not in COPY or (snap and mode != "packet"):
        raise UsageError("--copy", f"{text!r}: expected none, meta, packet or packet:SNAPLEN")
    if not snap:
        return mode, SNAPLEN_MAX if mode == "packet" else 0
    if not snap.isdigit() or not 1 <= int(snap) <= SNAPLEN_MAX:
        raise UsageError("--copy", f"{snap!r}: SNAPLEN must be 1..{SNAPLEN_MAX}")
    return mode, int(snap)


@dataclass(slots=True)
class Packet:
    group: int
    prefix: str | None = None
    hook: str | None = None
    protocol: int | None = None     # ethertype (hw_protocol)
    indev: str | None = None
    outdev: str | None = None
    hwaddr: str | None = None
    mark: int = 0
    timestamp: float | None = None
    uid: int | None = None
    gid: int | None = None
    payload: bytes = b""
    summary: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"group": self.group, "prefix": self.prefix, "hook": self.hook,
                "protocol": self.protocol, "indev": self.indev, "outdev": self.outdev,
                "hwaddr": self.hwaddr, "mark": self.mark, "timestamp": self.timestamp,
                "uid": self.uid, "gid": self.gid, "length": len(self.payload),
                **self.summary, "payload": self.payload.hex() or None}

    def text(self) -> str:
        """One line, after the kernel's own log line (nf_log_syslog): IN= OUT= MAC= ..."""
        parts = [f"{self.timestamp:.6f}" if self.timestamp is not None else "-"]
        if self.prefix:
            parts.append(self.prefix.rstrip())
        parts += [f"IN={self.indev or ''}", f"OUT={self.outdev or ''}"]
        if self.hwaddr:
            parts.append(f"MAC={self.hwaddr}")
        if self.mark:
            parts.append(f"MARK=0x{self.mark:x}")
        parts += [f"{k.upper()}={v}" for k, v in self.summary.items()]
        return " ".join(parts)


class Listener:
    """Bound to `group` in `target`'s netns until closed."""

    def __init__(self, group: int, target=None, copy: str = "meta", snaplen: int = 0,
                 rcvbuf: int = 4 << 20):
        if not 0 <= group <= 0xFFFF:
            raise UsageError("--group", f"{group}: expected 0..65535")
        self.group, self.copy = group, copy
        self.target = target if isinstance(target, _target.Target) else _target.parse(target)
        self.sock = transport.open(transport.NETLINK_NETFILTER, self.target)
        self.names = {}
        try:
            self.sock.set_buffers(rcvbuf)
            try:
                self._config({"cmd": bytes((CMD_BIND,))}, "bind")
            except NetlinkError as e:
                if e.errno != _errno.EPERM:
                    raise
                raise NetlinkError("nflog bind", f"group {group}", e.errno,
                                   "another socket already listens on this group") from None
            self._config({"mode": struct.pack(">IBx", snaplen, COPY[copy])}, "mode")
        except BaseException:
            self.sock.close()
            raise

    def _config(self, attrs, what):
        body = bytes((socket.AF_UNSPEC, 0)) + self.group.to_bytes(2, "big")
        transport.talk(self.sock, NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG, 0,
                       body + CONFIG.encode(attrs), op=f"nflog {what}",
                       obj=f"group {self.group}")

    def close(self) -> None:
        self.sock.close()       # the kernel unbinds the group when its socket goes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def packets(self):
        """Packets forever; None when the kernel dropped some (ENOBUFS)."""
        while True:
            try:
                msgs = self.sock.recv()
            except NetlinkError as e:
                if e.errno != _errno.ENOBUFS:
                    raise
                yield None
                continue
            for m in msgs:
                if m.type == (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) and len(m.body) >= 4:
                    yield self._packet(PACKET.decode(m.body, 4))

    def _packet(self, a: dict) -> Packet:
        p = Packet(self.group, prefix=a.get("prefix"), mark=a.get("mark", 0),
                   uid=a.get("uid"), gid=a.get("gid"), payload=a.get("payload", b""))
        if "hdr" in a:
            proto, hook = struct.unpack_from(">HB", a["hdr"])
            p.protocol, p.hook = proto, HOOKS.get(hook, str(hook))
        if "timestamp" in a:
            sec, usec = struct.unpack_from(">QQ", a["timestamp"])
            p.timestamp = sec + usec / 1e6
        p.indev = self._ifname(a.get("indev"))
        p.outdev = self._ifname(a.get("outdev"))
        if "hwaddr" in a and self.copy != "none":
            n = struct.unpack_from(">H", a["hwaddr"])[0]
            p.hwaddr = ":".join(f"{b:02x}" for b in a["hwaddr"][4:4 + n])
        p.summary = summary(p.protocol, p.payload)
        return p

    def _ifname(self, idx):
        """Interface names in the listener's netns, where the indexes mean something."""
        if idx is None:
            return None
        if idx not in self.names:
            def name():
                try:
                    return socket.if_indextoname(idx)
                except OSError:
                    return str(idx)
            self.names[idx] = _target.run_in(self.target, ["net"], name)
        return self.names[idx]


def summary(ethertype, data: bytes) -> dict:
    """src, dst, proto, ports or ICMP type of an IPv4/IPv6 packet (the payload starts at
    the network header)."""
    if len(data) >= 20 and data[0] >> 4 == 4:
        ihl = (data[0] & 15) * 4
        out = {"src": str(ipaddress.IPv4Address(data[12:16])),
               "dst": str(ipaddress.IPv4Address(data[16:20])),
               "proto": IPPROTO.get(data[9], str(data[9])), "len": int.from_bytes(data[2:4], "big")}
        l4, proto = data[ihl:], data[9]
    elif len(data) >= 40 and data[0] >> 4 == 6:
        out = {"src": str(ipaddress.IPv6Address(data[8:24])),
               "dst": str(ipaddress.IPv6Address(data[24:40])),
               "proto": IPPROTO.get(data[6], str(data[6])),
               "len": 40 + int.from_bytes(data[4:6], "big")}
        l4, proto = data[40:], data[6]
    else:
        return {}
    if proto in (6, 17, 132) and len(l4) >= 4:
        out["spt"], out["dpt"] = struct.unpack_from(">HH", l4)
    elif proto in (1, 58) and len(l4) >= 2:
        out["type"], out["code"] = l4[0], l4[1]
    return out
