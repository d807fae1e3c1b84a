"""Compiled messages -> nfnetlink requests: the nfgenmsg header, the NFTA_* attributes
(wire.py tables) and the flags nft sends with each kind (nftables src/mnl.c): NLM_F_CREATE
on every add, NLM_F_APPEND on rules, nothing on deletions."""
from ..netlink.codec import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL
from . import wire
from .proto import FAMILIES

FLAGS = {"newtable": NLM_F_CREATE, "newchain": NLM_F_CREATE,
         "newrule": NLM_F_CREATE | NLM_F_APPEND, "newset": NLM_F_CREATE,
         "newsetelem": NLM_F_CREATE, "newobj": NLM_F_CREATE, "newflowtable": NLM_F_CREATE,
         "deltable": 0, "destroytable": 0}


def nfgenmsg(family: int, res_id: int = 0) -> bytes:
    """struct nfgenmsg: family, NFNETLINK_V0, res_id in network order (nfnetlink.h)."""
    return bytes((family, 0)) + res_id.to_bytes(2, "big")


def family_id(name: str) -> int:
    return 0 if name == "unspec" else FAMILIES[name]


def msg_type(kind: str) -> int:
    return (wire.NFNL_SUBSYS_NFTABLES << 8) | wire.MSG[kind]


def encode(msg, exclusive: bool = False) -> tuple[int, int, bytes]:
    """One compiler.Msg as (nlmsg type, flags, body)."""
    table = wire.tables()[wire.MSG_TABLE[msg.kind]]
    flags = FLAGS[msg.kind] | (NLM_F_EXCL if exclusive and msg.kind == "newtable" else 0)
    body = nfgenmsg(family_id(msg.family)) + table.encode(msg.attrs)
    return msg_type(msg.kind), flags, body


def encode_all(msgs) -> list[tuple[int, int, bytes]]:
    return [encode(m) for m in msgs]
