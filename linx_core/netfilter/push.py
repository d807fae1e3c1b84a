"""Apply a ruleset to a network namespace as one nf_tables transaction (`linx nft push`).

Mode replace: the batch destroys each table the file declares and builds it again, so the
table ends up exactly as written; tables the file does not name are left alone. `flush
ruleset` in the file flushes everything first, as with nft -f. All of it is one batch:
the kernel applies the whole or nothing, so a refused rule leaves the previous ruleset in
place, and the refusal is reported against the rule's file:line:col.
"""
import socket

from .. import target as _target
from ..errors import KernelError
from . import bulk, compiler, encoder
from .location import as_loc


class NftKernelError(KernelError):
    """The kernel refused the batch; `obj` names the object and where it was written."""

    def __init__(self, op, obj, err, detail=None):
        super().__init__("nft", op, obj, err, detail)


def plan(ruleset, target=None) -> list:
    """The messages of the push batch. Interface names (`iif eth0`) resolve in the target
    namespace, where nft would have resolved them."""
    def build():
        msgs = compiler.compile(ruleset, ifindex=_ifindex)
        out = []
        if ruleset.flush:
            out.append(msgs.pop(0))
        # Replace: each table of the file is deleted (when there is one) and rebuilt.
        for m in msgs:
            if m.kind == "newtable":
                out += compiler.drop_table(m.family, m.attrs["name"], m.loc)
            out.append(m)
        return out
    t = target if isinstance(target, _target.Target) else _target.parse(target)
    with bulk():
        return _target.run_in(t, ["net"], build)


def _ifindex(name):
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def push(ruleset, target=None, *, owner: bool = False, genid: int | None = None):
    """Apply `ruleset` in `target`'s netns. With owner=True the tables get
    NFT_TABLE_F_OWNER and the open socket is returned: the tables live as long as it."""
    from ..netlink import nfnl
    if owner:
        for t in ruleset.tables.values():
            if "owner" not in t.flags:
                t.flags = t.flags + ("owner",)
    msgs = plan(ruleset, target)
    with bulk():
        wire_msgs = encoder.encode_all(msgs)
    sock = nfnl.open(target)
    try:
        try:
            nfnl.batch(sock, wire_msgs, genid=genid)
        except nfnl.BatchError as e:
            raise _located(e, msgs) from None
    except BaseException:
        sock.close()
        raise
    if owner:
        return sock
    sock.close()
    return None


def _located(e, msgs) -> NftKernelError:
    """The kernel's refusal, named by the message it refused and where that was written."""
    if e.index is None or e.index >= len(msgs):
        return NftKernelError("push", "the ruleset", e.errno, e.detail)
    m = msgs[e.index]
    obj = m.what
    if m.loc is not None:
        obj += f" at {as_loc(m.loc)}"
    return NftKernelError("push", obj, e.errno, e.detail)


def delete_table(family: str, name: str, target=None) -> None:
    """NFT_MSG_DELTABLE: the table and all it holds; ENOENT when there is none."""
    from ..netlink import nfnl
    msg = compiler.Msg("deltable", family, {"name": name}, None, f"table {family} {name}")
    with nfnl.open(target) as sock:
        try:
            nfnl.batch(sock, [encoder.encode(msg)])
        except nfnl.BatchError as e:
            raise _located(e, [msg]) from None
