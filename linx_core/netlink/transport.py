"""The one transport: an AF_NETLINK socket bound for life to a network namespace, and the three
ways to speak on it — talk() (one request, ACK or data), dump() (multipart listing) and
talk_many() (many requests per sendmsg, answered only when refused). Nothing else calls send.

A netlink socket belongs to the netns that was current when socket(2) ran, whatever thread
uses it later (netlink(7)), so open() creates it on target.run_in's throwaway thread and
the caller's thread never moves.
"""
import errno as _errno
import itertools
import socket as _socket
import struct

from .. import target as _target
from . import codec
from .codec import (NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
                    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, Msg, frame, split)
from .errors import DumpInterrupted, MalformedMessage, NetlinkError

NETLINK_ROUTE, NETLINK_NETFILTER, NETLINK_GENERIC = 0, 12, 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP = 1, 2
NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 10, 11, 12
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32

RECV_SIZE = 1 << 20         # larger than any datagram the kernel builds (dump skbs are ~32 KiB)
BUF_BYTES = 4 << 20         # socket buffers: room for thousands of ACKs or multicast events
_MSG_TRUNC = int(_socket.MSG_TRUNC)     # a plain int: the enum's | costs a call per recv


class Socket:
    """A netlink socket. `port` is the kernel-assigned nl_pid replies are addressed to;
    `target` the namespace it lives in. Use as a context manager or close()."""

    def __init__(self, sock: _socket.socket, protocol: int, target: _target.Target):
        self.sock, self.protocol, self.target = sock, protocol, target
        self.port = sock.getsockname()[0]
        self._seq = itertools.count(1)          # 0 is the kernel's own (unsolicited) messages
        self._buf = bytearray(RECV_SIZE)

    def fileno(self) -> int:
        return self.sock.fileno()

    def next_seq(self) -> int:
        return next(self._seq)

    def send(self, data: bytes) -> None:
        """One sendmsg of one or more framed messages (the kernel handles them in order)."""
        try:
            self.sock.send(data)
        except OSError as e:
            raise NetlinkError("send", str(self.target), e.errno) from None

    def recv(self, flags: int = 0) -> list[Msg]:
        """One datagram, split into messages. ENOBUFS (the kernel dropped messages for us,
        netlink(7)) is a NetlinkError the caller decides about; monitors resync on it."""
        try:
            n = self.sock.recv_into(self._buf, RECV_SIZE, flags | _MSG_TRUNC)
        except OSError as e:
            raise NetlinkError("recv", str(self.target), e.errno) from None
        if n > RECV_SIZE:
            raise MalformedMessage(f"a {n}-byte datagram does not fit the {RECV_SIZE}-byte buffer")
        return split(bytes(memoryview(self._buf)[:n]))

    def add_membership(self, group: int) -> None:
        """Join multicast group `group` (RTNLGRP_*, NFNLGRP_*) — numbers beyond 32 included."""
        self._setsockopt(NETLINK_ADD_MEMBERSHIP, group, "add_membership")

    def drop_membership(self, group: int) -> None:
        self._setsockopt(NETLINK_DROP_MEMBERSHIP, group, "drop_membership")

    def set_buffers(self, size: int = BUF_BYTES) -> None:
        """SO_RCVBUF/SO_SNDBUF, forced past net.core.rmem_max when we may (CAP_NET_ADMIN)."""
        for force, plain in ((SO_RCVBUFFORCE, _socket.SO_RCVBUF), (SO_SNDBUFFORCE, _socket.SO_SNDBUF)):
            try:
                self.sock.setsockopt(_socket.SOL_SOCKET, force, size)
            except OSError:
                self.sock.setsockopt(_socket.SOL_SOCKET, plain, size)

    def _setsockopt(self, opt: int, value: int, op: str) -> None:
        try:
            self.sock.setsockopt(SOL_NETLINK, opt, value)
        except OSError as e:
            raise NetlinkError(op, str(value), e.errno) from None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open(protocol: int = NETLINK_ROUTE, target=None, *, groups: int = 0) -> Socket:
    """A socket of `protocol` in `target`'s network namespace (a Target, a target string as
    target.parse takes, or None for ours). Extended ACKs on, requests not echoed back in
    ACKs (NETLINK_CAP_ACK), strict dump checking for rtnetlink (kernel-side filters)."""
    if not isinstance(target, _target.Target):
        target = _target.parse(target)

    def make():
        return _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)

    try:
        sock = _target.run_in(target, ["net"], make)
    except OSError as e:
        raise NetlinkError("socket", str(target), e.errno,
                           f"netlink protocol {protocol} is not available" if e.errno ==
                           _errno.EPROTONOSUPPORT else None) from None
    try:
        for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK) + ((NETLINK_GET_STRICT_CHK,)
                                                          if protocol == NETLINK_ROUTE else ()):
            try:
                sock.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:
                pass    # older kernels: plain errors, echoed requests, no strict checks
        sock.bind((0, groups))
        s = Socket(sock, protocol, target)
        s.set_buffers()
    except OSError as e:
        sock.close()
        raise NetlinkError("bind", str(target), e.errno) from None
    except BaseException:
        sock.close()
        raise
    return s


def _error(msg: Msg, op: str, obj: str | None, index: int | None = None) -> NetlinkError | None:
    err, text, offset = codec.parse_error(msg)
    if not err:
        return None
    return NetlinkError(op, obj, err, text, offset=offset, seq=msg.seq, index=index)


def _op(mtype: int, op: str | None) -> str:
    return op or f"request (type {mtype})"


def talk(sock: Socket, mtype: int, flags: int = 0, body: bytes = b"", *,
         op: str | None = None, obj: str | None = None) -> list[Msg]:
    """Send one request with NLM_F_REQUEST|NLM_F_ACK and return its data messages ([] for a
    bare ACK). Asking for the ACK means every call ends in data or an errno, as iproute2's
    rtnl_talk does. Replies are matched on our port and the request's fresh sequence
    number, so stale replies and multicast can't pass for the answer. A refusal raises
    NetlinkError(op, obj, errno, ext-ack text)."""
    seq = sock.next_seq()
    sock.send(frame(mtype, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body))
    out = []
    while True:
        for msg in sock.recv():
            if msg.seq != seq or msg.pid != sock.port:
                continue
            if msg.type == NLMSG_ERROR or msg.type == NLMSG_DONE:
                error = _error(msg, _op(mtype, op), obj)
                if error is not None:
                    raise error
                return out
            elif msg.type not in (NLMSG_NOOP, NLMSG_OVERRUN):
                out.append(msg)


def dump_iter(sock: Socket, mtype: int, body: bytes = b"", flags: int = 0, *,
              op: str | None = None, obj: str | None = None):
    """A NLM_F_DUMP request's answer as it arrives, one message at a time, so a listing of a
    million objects never holds them all. If the kernel marked the dump NLM_F_DUMP_INTR
    (the table changed meanwhile), DumpInterrupted is raised at the end, after what was
    read. Consume it to the end before the next request: the kernel continues a dump only
    as it is read, and refuses a second one on the socket (EBUSY) until then."""
    seq = sock.next_seq()
    sock.send(frame(mtype, flags | NLM_F_REQUEST | NLM_F_DUMP, seq, body))
    torn = False
    while True:
        for msg in sock.recv():
            if msg.seq != seq or msg.pid != sock.port:
                continue
            torn = torn or bool(msg.flags & NLM_F_DUMP_INTR)
            if msg.type == NLMSG_DONE or msg.type == NLMSG_ERROR:
                error = _error(msg, _op(mtype, op), obj)
                if error is not None:
                    raise error
                if torn:
                    raise DumpInterrupted(_op(mtype, op), obj)
                return
            if msg.type != NLMSG_NOOP and msg.type != NLMSG_OVERRUN:
                yield msg


def dump(sock: Socket, mtype: int, body: bytes = b"", flags: int = 0, *,
         op: str | None = None, obj: str | None = None, retries: int = 3) -> list[Msg]:
    """A NLM_F_DUMP request's multipart answer, up to NLMSG_DONE. When the kernel marks it
    NLM_F_DUMP_INTR (the table changed mid-dump) it is redone up to `retries` times, then
    DumpInterrupted is raised rather than a possibly inconsistent listing returned."""
    for attempt in range(retries + 1):
        try:
            return [*dump_iter(sock, mtype, body, flags, op=op, obj=obj)]
        except DumpInterrupted:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def talk_many(sock: Socket, requests, *, op: str | None = None, stop: bool = True,
              chunk_bytes: int = 64 << 10, chunk_count: int = 512) -> list[NetlinkError | None]:
    """Send requests (an iterable of (type, flags, body)) many to a sendmsg and return one
    result per request sent: None when applied, the NetlinkError (with .index, its
    position) when refused.

    Only the last request of a chunk asks for an ACK: the kernel answers the others only
    when it refuses them (netlink_rcv_skb acks on NLM_F_ACK or an error) and handles a
    sendmsg's messages in order, so once the last one is answered every earlier result is
    known, and a chunk the kernel accepts costs one sendmsg and one recv. It keeps going
    after a failure, so requests after a refused one in the same chunk may have been
    applied; the caller gets their results to undo them. With stop=True no further chunk
    is sent after one with a failure. A chunk is bounded so that, were every request
    refused, its errors would fit the receive buffer (one that does not fit is dropped,
    netlink_ack's MSG_DONTWAIT)."""
    results: list[NetlinkError | None] = []
    it = iter(requests)
    pack = codec.NLMSGHDR.pack
    while True:
        buf = bytearray()
        sent: dict[int, tuple[int, int]] = {}      # seq -> (index, type)
        last = last_flags = 0
        for mtype, flags, body in it:
            seq = sock.next_seq()
            sent[seq] = (len(results) + len(sent), mtype)
            last, last_flags = len(buf), flags | NLM_F_REQUEST
            length = 16 + len(body)
            buf += pack(length, mtype, last_flags, seq, 0)
            buf += body
            if length & 3:
                buf += _PAD[4 - (length & 3)]
            if len(buf) >= chunk_bytes or len(sent) >= chunk_count:
                break
        if not sent:
            return results
        _FLAGS.pack_into(buf, last + 6, last_flags | NLM_F_ACK)
        sock.send(bytes(buf))
        results.extend([None] * len(sent))
        last_seq, failed, answered = seq, False, False
        while not answered:
            for msg in sock.recv():
                if msg.type != NLMSG_ERROR or msg.pid != sock.port or msg.seq not in sent:
                    continue
                i, mtype = sent[msg.seq]
                error = results[i] = _error(msg, _op(mtype, op), None, i)
                failed = failed or error is not None
                answered = answered or msg.seq == last_seq
        if stop and failed:
            return results


_FLAGS = struct.Struct("=H")                    # nlmsg_flags, at offset 6 of the header
_PAD = (b"", b"\0", b"\0\0", b"\0\0\0")
