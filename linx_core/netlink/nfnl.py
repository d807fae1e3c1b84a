"""nfnetlink (NETLINK_NETFILTER) over the shared transport: the nf_tables batch
transaction, the generation id, and dumps (include/uapi/linux/netfilter/nfnetlink.h).

Every nf_tables change travels between NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END in one
sendmsg: the kernel applies all of it or none. The kernel handles the batch inside sendmsg,
so by the time send returns every answer is queued: a refused message is answered with its
own error whether or not it asked, and no error means the commit happened. BATCH_END asks
for an ACK, but only kernels from 6.10 send one (earlier ones ignore the flag on batch
messages), so, as nft does, the answers are read without waiting for it. Asking nothing of
the other messages keeps a batch of 20,000 rules from filling the receive buffer with ACKs.
"""
import errno as _errno
import select

from . import transport
from .codec import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, Table, be32, frame, parse_error, strz
from .errors import NetlinkError

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFNL_BATCH_GENID = 1
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16

BATCH_ATTRS = Table("NFNL_BATCH", ((NFNL_BATCH_GENID, "genid", be32),))
GEN_ATTRS = Table("NFTA_GEN", ((1, "id", be32), (2, "proc_pid", be32), (3, "proc_name", strz)))


def open(target=None) -> transport.Socket:
    """A NETLINK_NETFILTER socket in `target`'s network namespace. Tables created with
    NFT_TABLE_F_OWNER through it vanish when it is closed."""
    return transport.open(transport.NETLINK_NETFILTER, target)


def nfgenmsg(family: int = 0, res_id: int = 0) -> bytes:
    """struct nfgenmsg: family, NFNETLINK_V0, res_id (big-endian)."""
    return bytes((family, 0)) + res_id.to_bytes(2, "big")


def msg_type(msg: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | msg


class BatchError(NetlinkError):
    """A batch the kernel refused; `index` is the position of the first refused message
    in the list given to batch() (None when the commit itself failed), `errors` all of
    them as (index, NetlinkError)."""


def batch(sock: transport.Socket, messages, *, genid: int | None = None) -> None:
    """Send `messages` ((type, flags, body) each) as one nf_tables transaction. Returns
    when the kernel has committed it; raises BatchError when it refused it, with nothing
    applied. With `genid`, the kernel refuses the batch (ERESTART) if the ruleset
    generation moved past it since it was read (NFNL_BATCH_GENID)."""
    begin_body = nfgenmsg(0, NFNL_SUBSYS_NFTABLES)
    if genid is not None:
        begin_body += BATCH_ATTRS.encode({"genid": genid})
    first = sock.next_seq()
    parts = [frame(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first, begin_body)]
    seqs = {}
    for i, (mtype, flags, body) in enumerate(messages):
        seq = sock.next_seq()
        seqs[seq] = i
        parts.append(frame(mtype, flags | NLM_F_REQUEST, seq, body))
    end = sock.next_seq()
    parts.append(frame(NFNL_MSG_BATCH_END, NLM_F_REQUEST | NLM_F_ACK, end,
                       nfgenmsg(0, NFNL_SUBSYS_NFTABLES)))
    data = b"".join(parts)
    if len(data) + (64 << 10) > transport.BUF_BYTES:
        sock.set_buffers(len(data) + (1 << 20))
    sock.send(data)
    errors = []
    commit_error = None
    while select.select([sock.sock], [], [], 0)[0]:     # what is queued: all there is
        try:
            msgs = sock.recv()
        except NetlinkError as e:
            if e.errno == _errno.ENOBUFS:   # more refusals than the buffer holds
                errors.append((None, e))
                break
            raise
        for msg in msgs:
            if msg.pid != sock.port or msg.type != NLMSG_ERROR:
                continue
            err, text, offset = parse_error(msg)
            if not err:                     # BATCH_END's ACK (6.10+)
                continue
            if msg.seq in seqs:
                errors.append((seqs[msg.seq], NetlinkError("batch", None, err, text,
                                                           offset=offset, seq=msg.seq,
                                                           index=seqs[msg.seq])))
            else:
                commit_error = NetlinkError("commit", None, err, text, seq=msg.seq)
    if errors:
        errors.sort(key=lambda x: (x[0] is None, x[0] or 0))
        index, first_err = errors[0]
        e = BatchError("batch", None, first_err.errno, first_err.detail,
                       offset=first_err.offset, seq=first_err.seq, index=index)
        e.errors = errors
        raise e
    if commit_error is not None:
        e = BatchError("commit", None, commit_error.errno, commit_error.detail)
        e.errors = []
        raise e


def getgen(sock: transport.Socket) -> dict:
    """NFT_MSG_GETGEN: {"id": generation, "proc_pid": ..., "proc_name": ...} of the last
    commit in the socket's netns."""
    replies = transport.talk(sock, msg_type(NFT_MSG_GETGEN), 0, nfgenmsg(), op="getgen")
    for msg in replies:
        if msg.type == msg_type(NFT_MSG_NEWGEN):
            return GEN_ATTRS.decode(msg.body, 4)
    raise NetlinkError("getgen", None, _errno.EBADMSG, "no NEWGEN in the answer")


def dump(sock: transport.Socket, msg: int, family: int = 0, body: bytes = b"",
         op: str | None = None, obj: str | None = None):
    """A GET* dump: the answer messages, each with its nfgenmsg family."""
    return transport.dump(sock, msg_type(msg), nfgenmsg(family) + body, op=op, obj=obj)
