"""The numbers the compiler writes and the decoder reads: registers, verdicts, comparison
operators, set and element flags, object types, NAT and log flags
(include/uapi/linux/netfilter/nf_tables.h, nf_log.h, nf_nat.h), and libnftnl's userdata
TLVs (include/libnftnl/udata.h) that nft stores beside tables, chains, rules and sets.
"""
from . import types as T

# enum nft_registers / NFT_REG32_*; nft_verdicts; NFT_DATA_VERDICT
REG_VERDICT, REG_1, REG32_00 = 0, 1, 8
VERDICT_CODES = {"continue": -1, "break": -2, "jump": -3, "goto": -4, "return": -5,
                 "drop": 0, "accept": 1, "queue": 3}
DATA_VERDICT = 0xffffff00
CMP_OPS = {"": 0, "==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
# NFT_SET_* flags
SET_ANONYMOUS, SET_CONSTANT, SET_INTERVAL, SET_MAP = 0x1, 0x2, 0x4, 0x8
SET_TIMEOUT, SET_EVAL, SET_OBJECT, SET_CONCAT, SET_EXPR = 0x10, 0x20, 0x40, 0x80, 0x100
SET_FLAG_BITS = {"constant": SET_CONSTANT, "interval": SET_INTERVAL, "timeout": SET_TIMEOUT,
                 "dynamic": SET_EVAL}
ELEM_INTERVAL_END, ELEM_CATCHALL = 1, 2
OBJ_TYPES = {"counter": 1, "quota": 2, "ct helper": 3, "limit": 4, "ct timeout": 7,
             "ct expectation": 9, "synproxy": 10}
TABLE_FLAGS = {"dormant": 1, "owner": 2, "persist": 4}
LOG_LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5,
              "info": 6, "debug": 7, "audit": 8}
LOG_FLAG_BITS = {"tcp sequence": 1, "tcp options": 2, "ip options": 4, "skuid": 8,
                 "ether": 0x20, "all": 0x2f}     # NF_LOG_* of nf_log.h
NAT_TYPES = {"snat": 0, "dnat": 1}
NAT_FLAGS = {"random": 4, "persistent": 8, "fully-random": 16}
NF_NAT_RANGE_PROTO_SPECIFIED = 2
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
# nft's enum byteorder, stored in set userdata
BYTEORDER = {T.HOST: 1, T.BIG: 2}
BATCH_ELEMS_BYTES = 48 * 1024       # NEWSETELEM payload per message (attributes are u16)


def udata(*items) -> bytes:
    """libnftnl's udata TLVs: type u8, length u8, value (include/libnftnl/udata.h)."""
    out = bytearray()
    for typ, value in items:
        out += bytes((typ, len(value))) + value
    return bytes(out)


def strz(s: str) -> bytes:
    return s.encode() + b"\0"


def put_reg(slot: int) -> int:
    """netlink_put_register(): a 32-bit slot as the 128-bit register name when aligned."""
    idx = slot - REG_1
    return REG_1 + idx // 4 if idx % 4 == 0 else REG32_00 + idx


def reg_space(nbytes: int) -> int:
    return (nbytes + 3) // 4
