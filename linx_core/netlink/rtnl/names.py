"""Names for rtnetlink numbers, as iproute2 prints and reads them (lib/rt_names.c,
lib/ll_types.c): route protocols, tables, scopes and types, link groups and ARPHRD types.

The built-in tables are iproute2's; /etc/iproute2/{rt_protos,rt_tables,rt_scopes,group} (and
their .d/*.conf) are read on first use, as ip does, so a site's own names print the same in
`linx net` as in `ip`.
"""
import glob
import os

from ...errors import UsageError

CONFDIR = "/etc/iproute2"

_BUILTIN = {
    "rt_protos": {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated",
                  9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp",
                  15: "ntk", 16: "dhcp", 18: "keepalived", 42: "babel", 99: "openr",
                  186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp"},
    "rt_tables": {0: "unspec", 253: "default", 254: "main", 255: "local"},
    "rt_scopes": {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"},
    "group": {0: "default"},
    "rt_addrprotos": {0: "unspec", 1: "kernel_lo", 2: "kernel_ra", 3: "kernel_ll"},
}

ROUTE_TYPES = {0: "none", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
               5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw",
               10: "nat", 11: "xresolve"}

ARPHRD = {0: "netrom", 1: "ether", 2: "eether", 3: "ax25", 6: "ieee802", 32: "infiniband",
          256: "slip", 280: "can", 512: "ppp", 768: "ipip", 769: "tunnel6", 772: "loopback",
          776: "sit", 778: "gre", 801: "ieee802.11", 803: "ieee802.11/radiotap",
          804: "ieee802.15.4", 823: "gre6", 824: "netlink", 825: "6lowpan",
          65534: "none", 65535: "void"}

_cache: dict[str, tuple[dict, dict]] = {}


def _table(kind: str) -> tuple[dict, dict]:
    """(number -> name, name -> number), built-ins overlaid with the config files."""
    if kind not in _cache:
        n2a = dict(_BUILTIN[kind])
        for path in [os.path.join(CONFDIR, kind)] + sorted(glob.glob(os.path.join(CONFDIR, kind + ".d", "*.conf"))):
            try:
                with open(path) as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            for line in lines:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2:
                    try:
                        n2a[int(fields[0], 0)] = fields[1]
                    except ValueError:
                        pass
        _cache[kind] = (n2a, {v: k for k, v in n2a.items()})
    return _cache[kind]


def n2a(kind: str, number: int) -> str:
    """The name ip prints, or the number as text when there is none (`"76"`, `"1000"`)."""
    return _table(kind)[0].get(number, str(number))


def a2n(kind: str, text, where: str, limit: int) -> int:
    """A name or a number (decimal or 0x) up to `limit`; UsageError naming `where` otherwise."""
    if isinstance(text, int):
        number = text
    else:
        number = _table(kind)[1].get(text)
        if number is None:
            try:
                number = int(text, 0)
            except ValueError:
                names = ", ".join(sorted(set(_table(kind)[1]) - {"unspec"}))
                raise UsageError(where, f"{text!r} is not a number or one of {names}") from None
    if not 0 <= number <= limit:
        raise UsageError(where, f"{number} is out of range 0..{limit}")
    return number


def protocol(value, where: str = "protocol") -> int:
    return a2n("rt_protos", value, where, 255)


def table(value, where: str = "table") -> int:
    return a2n("rt_tables", value, where, 0xFFFFFFFF)


def scope(value, where: str = "scope") -> int:
    return a2n("rt_scopes", value, where, 255)


def route_type(text: str, where: str = "type") -> int:
    for number, name in ROUTE_TYPES.items():
        if name == text and number:
            return number
    raise UsageError(where, f"{text!r} is not a route type ({', '.join(list(ROUTE_TYPES.values())[1:])})")


def arphrd(number: int) -> str:
    return ARPHRD.get(number, f"[{number}]")
