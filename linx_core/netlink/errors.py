"""Netlink's errors: what the kernel answered in NLMSG_ERROR (errno and the extended-ack text
and attribute offset, <linux/netlink.h> NLMSGERR_ATTR_*), a torn dump, an unreadable reply."""
import errno as _errno

from ..errors import KernelError


class NetlinkError(KernelError):
    """The kernel refused a request. `detail` is the extended-ack message (NLMSGERR_ATTR_MSG)
    or, when the kernel gave none, a sharper one from the caller; `offset` is the byte offset
    in the request of the attribute at fault (NLMSGERR_ATTR_OFFS), `seq` the request's
    sequence number and `index` its position in a pipelined batch (talk_many)."""

    def __init__(self, op: str, obj: str | None, err: int, detail: str | None = None, *,
                 offset: int | None = None, seq: int | None = None, index: int | None = None):
        self.offset, self.seq, self.index = offset, seq, index
        super().__init__("netlink", op, obj, err, detail)

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, f"E{self.errno}")

    def sharpen(self, detail: str, op: str | None = None, obj: str | None = None) -> "NetlinkError":
        """The same error with a better message where the kernel gave none (the seed's
        "no such parent interface" rather than a bare ENODEV)."""
        return NetlinkError(op or self.op, obj if obj is not None else self.obj, self.errno,
                            self.detail or detail, offset=self.offset, seq=self.seq,
                            index=self.index)


class DumpInterrupted(NetlinkError):
    """NLM_F_DUMP_INTR: the table changed while it was being dumped, so the listing may be
    inconsistent (iproute2: "Dump was interrupted and may be inconsistent")."""

    def __init__(self, op: str, obj: str | None = None):
        super().__init__(op, obj, _errno.EINTR, "dump was interrupted and may be inconsistent")


class MalformedMessage(NetlinkError):
    """A reply that does not parse: a length that overruns its buffer, a wrong-size value."""

    def __init__(self, what: str):
        super().__init__("decode", None, _errno.EBADMSG, what)
