"""Kernel expressions as libnftnl prints them (src/expr/*.c *_snprintf), the listing
`nft --debug=netlink` shows: `[ payload load 2b @ transport header + 2 => reg 1 ]`.

`linx nft check --debug=netlink` prints it, and the golden tests compare it with what nft
prints for the same file, rule by rule.
"""
CMP = ("eq", "neq", "lt", "lte", "gt", "gte")
BASES = ("link", "network", "transport", "inner")
UNITS = {1: "second", 60: "minute", 3600: "hour", 86400: "day", 604800: "week"}
META_NAMES = {0: "len", 1: "protocol", 2: "priority", 3: "mark", 4: "iif", 5: "oif",
              6: "iifname", 7: "oifname", 8: "iiftype", 9: "oiftype", 10: "skuid",
              11: "skgid", 12: "nftrace", 13: "rtclassid", 14: "secmark", 15: "nfproto",
              16: "l4proto", 17: "bri_iifname", 18: "bri_oifname", 19: "pkttype", 20: "cpu",
              21: "iifgroup", 22: "oifgroup", 23: "cgroup", 24: "prandom", 25: "secpath",
              26: "iifkind", 27: "oifkind", 28: "bri_iifpvid", 29: "bri_iifvproto",
              30: "time", 31: "day", 32: "hour", 33: "sdif", 34: "sdifname"}
CT_NAMES = {0: "state", 1: "direction", 2: "status", 3: "mark", 4: "secmark", 5: "expiration",
            6: "helper", 7: "l3protocol", 8: "src", 9: "dst", 10: "protocol",
            11: "proto_src", 12: "proto_dst", 13: "label", 14: "packets", 15: "bytes",
            16: "avgpkt", 17: "zone", 18: "event", 19: "src_ip", 20: "dst_ip", 21: "src_ip6",
            22: "dst_ip6", 23: "id"}
VERDICTS = {-1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return", 0: "drop",
            1: "accept", 2: "stolen", 3: "queue", 4: "repeat", 5: "stop"}
FIB_RESULTS = {1: "oif", 2: "oifname", 3: "type"}
NAT_FAMILIES = {2: "ip", 10: "ip6"}


def words(b: bytes) -> str:
    """nftnl_data_reg_snprintf(): 32-bit words in host order, `0x%.8x ` each."""
    b = bytes(b)
    pad = b + b"\0" * (-len(b) % 4)
    return "".join(f"0x{int.from_bytes(pad[i:i + 4], 'little'):08x} "
                   for i in range(0, len(pad), 4))


def verdict_text(v: dict) -> str:
    s = VERDICTS.get(v["code"], "unknown") + " "
    if v.get("chain") is not None:
        s += f"-> {v['chain']} "
    return s


def expr_text(e: dict) -> str:
    name, d = e["name"], e.get("data", {})
    f = _PRINT.get(name)
    body = f(d) if f else ""
    return f"{name} {body}"


def _payload(d):
    if "sreg" in d:
        return (f"write reg {d['sreg']} => {d['len']}b @ {BASES[d['base']]} header + "
                f"{d['offset']} csum_type {d.get('csum_type', 0)} csum_off "
                f"{d.get('csum_offset', 0)} csum_flags 0x{d.get('csum_flags', 0):x} ")
    return f"load {d['len']}b @ {BASES[d['base']]} header + {d['offset']} => reg {d['dreg']} "


def _meta(d):
    key = META_NAMES.get(d["key"], "unknown")
    if "sreg" in d:
        return f"set {key} with reg {d['sreg']} "
    return f"load {key} => reg {d['dreg']} "


def _ct(d):
    key = CT_NAMES.get(d["key"], "unknown")
    s = f"set {key} with reg {d['sreg']} " if "sreg" in d else f"load {key} => reg {d['dreg']} "
    if "direction" in d:
        s += f", dir {('original', 'reply')[d['direction']]} "
    return s


def _cmp(d):
    return f"{CMP[d['op']]} reg {d['sreg']} " + words(d["data"])


def _bitwise(d):
    op = d.get("op", 0)
    if op == 0:
        return (f"reg {d['dreg']} = ( reg {d['sreg']} & " + words(d["mask"]) + ") ^ "
                + words(d["xor"]))
    return (f"reg {d['dreg']} = ( reg {d['sreg']} {'<<' if op == 1 else '>>'} "
            + words(d["data"]) + ") ")


def _immediate(d):
    s = f"reg {d['dreg']} "
    if isinstance(d["data"], dict):
        return s + verdict_text(d["data"])
    return s + words(d["data"])


def _lookup(d):
    s = f"reg {d['sreg']} set {d['set']} "
    if "dreg" in d:
        s += f"dreg {d['dreg']} "
    if d.get("flags"):
        s += f"0x{d['flags']:x} "
    return s


def _range(d):
    return f"{CMP[d['op']]} reg {d['sreg']} " + words(d["data_from"]) + words(d["data_to"])


def _counter(d):
    return f"pkts {d.get('packets', 0)} bytes {d.get('bytes', 0)} "


def _log(d):
    s = ""
    if "prefix" in d:
        s += f"prefix {d['prefix']} "
    if "group" in d:
        s += f"group {d['group']} snaplen {d.get('snaplen', 0)} qthreshold " \
             f"{d.get('qthreshold', 0)} "
    else:
        if "level" in d:
            s += f"level {d['level']} "
        fl = d.get("flags", 0)
        for bit, word in ((1, "tcpseq"), (2, "tcpopt"), (4, "ipopt"), (8, "uid"),
                          (0x20, "macdecode")):
            if fl & bit:
                s += word + " "
    return s


def _limit(d):
    return (f"rate {d['rate']}/{UNITS.get(d['unit'], 'error')} burst {d.get('burst', 0)} "
            f"type {'bytes' if d.get('type') else 'packets'} flags 0x{d.get('flags', 0):x} ")


def _quota(d):
    return f"bytes {d['bytes']} consumed {d.get('consumed', 0)} flags {d.get('flags', 0)} "


def _reject(d):
    return f"type {d['type']} code {d.get('icmp_code', 0)} "


def _nat(d):
    s = ("snat", "dnat")[d["type"]] + " " + NAT_FAMILIES.get(d["family"], "unknown") + " "
    return s + _regs(d)


def _regs(d):
    s = ""
    for k, label in (("reg_addr_min", "addr_min"), ("reg_addr_max", "addr_max"),
                     ("reg_proto_min", "proto_min"), ("reg_proto_max", "proto_max")):
        if k in d:
            s += f"{label} reg {d[k]} "
    if "flags" in d:
        s += f"flags 0x{d['flags']:x} "
    return s


def _byteorder(d):
    return (f"reg {d['dreg']} = {'ntoh' if d['op'] == 0 else 'hton'}(reg {d['sreg']}, "
            f"{d['size']}, {d['len']}) ")


def _dynset(d):
    s = f"{('add', 'update', 'delete')[d['op']]} reg_key {d['sreg_key']} set {d['set_name']} "
    if "sreg_data" in d:
        s += f"sreg_data {d['sreg_data']} "
    if "timeout" in d:
        s += f"timeout {d['timeout']}ms "
    inner = [d["expr"]] if "expr" in d else d.get("expressions", [])
    for e in inner:
        s += f"expr [ {e['name']} " + _PRINT[e["name"]](e.get("data", {})) + "] "
    return s


def _objref(d):
    if "set_name" in d:
        return f"sreg {d['set_sreg']} set {d['set_name']} "
    return f"type {d['imm_type']} name {d['imm_name']} "


def _fib(d):
    flags = d["flags"]
    present = flags & 32
    flags &= ~32
    s = ""
    for bit, name in ((1, "saddr"), (2, "daddr"), (4, "mark"), (8, "iif"), (16, "oif")):
        if flags & bit:
            s += name + " "
            flags &= ~bit
            if flags:
                s += ". "
    return s + f"{FIB_RESULTS.get(d['result'], 'unknown')}{' present' if present else ''} " \
               f"=> reg {d['dreg']} "


def _queue(d):
    s = ""
    if "num" in d:
        total = d["num"] + d.get("total", 1) - 1
        s += f"num {d['num']}"
        if d.get("total") and total != d["num"]:
            s += f"-{total}"
        s += " "
    if "sreg_qnum" in d:
        s += f"sreg_qnum {d['sreg_qnum']} "
    fl = d.get("flags", 0)
    if fl & 1:
        s += "bypass "
    if fl & 2:
        s += "fanout "
    return s


def _tproxy(d):
    s = ""
    if d.get("family"):
        s += NAT_FAMILIES.get(d["family"], "unknown") + " "
    if "reg_addr" in d:
        s += f"addr reg {d['reg_addr']} "
    if "reg_port" in d:
        s += f"port reg {d['reg_port']} "
    return s


def _numgen(d):
    s = f"reg {d['dreg']} = {'inc' if d['type'] == 0 else 'random'} mod {d['modulus']} "
    if d.get("offset"):
        s += f"offset {d['offset']} "
    return s


def _hash(d):
    if d.get("type") == 1:
        s = f"reg {d['dreg']} = symhash() % mod {d['modulus']} "
    else:
        s = (f"reg {d['dreg']} = jhash(reg {d['sreg']}, {d['len']}, 0x{d.get('seed', 0):x}) "
             f"% mod {d['modulus']} ")
    if d.get("offset"):
        s += f"offset {d['offset']} "
    return s


_PRINT = {
    "payload": _payload, "meta": _meta, "ct": _ct, "cmp": _cmp, "bitwise": _bitwise,
    "immediate": _immediate, "lookup": _lookup, "range": _range, "counter": _counter,
    "log": _log, "limit": _limit, "quota": _quota, "reject": _reject, "nat": _nat,
    "masq": _regs, "redir": _regs, "byteorder": _byteorder, "dynset": _dynset,
    "objref": _objref, "notrack": lambda d: "", "fib": _fib, "queue": _queue,
    "flow_offload": lambda d: f"flowtable {d['table_name']} ",
    "synproxy": lambda d: f"mss {d.get('mss', 0)} wscale {d.get('wscale', 0)} ",
    "tproxy": _tproxy, "numgen": _numgen, "hash": _hash,
}


def rule_listing(family: str, table: str, chain: str, attrs: dict) -> str:
    """One rule as nft --debug=netlink shows it (netlink_dump_rule)."""
    lines = [f"{family} {table} {chain}"]
    for e in attrs["expressions"]:
        lines.append(f"  [ {expr_text(e)}]")
    ud = attrs.get("userdata")
    if ud:
        lines.append("  userdata = { " + "".join(_udata_char(b) for b in ud) + " }")
    return "\n".join(lines)


def _udata_char(b: int) -> str:
    c = chr(b)
    return c if c.isprintable() and b < 128 else f"\\x{b:02x}"
