"""nft text -> tokens, after nftables' src/scanner.l (same token shapes, no start states:
the parser decides which words are keywords).

A token is a tuple (kind, value, offset, source):
  "w"  a word: identifier, address, time string (`1h30m`), anything nft's scanner calls STRING
  "n"  an integer (decimal or 0x hex)
  "q"  a quoted string, without its quotes
  "a"  an asterisk string (`eth*`, a wildcard)
  "$"  a variable reference, value the name
  "@"  a set reference, value the name
  ";"  a statement end: `;` or a newline (runs collapse into one)
  punctuation, kind == value: { } [ ] ( ) , . : = == != < > <= >= << >> & | ^ ! / * - +
  "eof"
"""
import ipaddress
import re

from .location import NftError, Source

_MASTER = re.compile(r"""
  (?P<sp>[ \t\r]+|\\\n|\#[^\n]*)
| (?P<nl>\n)
| "(?P<q>[^"\n]*)"
| (?P<ip4>\d{1,3}(?:\.\d{1,3}){3})(?![\w.])
| (?P<time>(?:\d+(?:ms|d|h|m|s))+)(?!\w)
| (?P<vlan>8021q|8021ad)(?!\w)
| (?P<hex>0[xX][0-9a-fA-F]+)(?!\w)
| (?P<dec>\d+)
| (?P<ast>(?:[A-Za-z_.][A-Za-z0-9/\-_.]*)?\\?\*)
| (?P<w>[A-Za-z_][A-Za-z0-9/\-_.]*|\.[A-Za-z0-9/\-_.]+)
| \$(?P<var>[A-Za-z_][A-Za-z0-9_]*)
| @(?P<at>[A-Za-z_.][A-Za-z0-9/\-_.]*)
| (?P<p>==|!=|<=|>=|<<|>>|[{}\[\]()<>,.:;=&|^!/*\-+])
| (?P<bad>.)
""", re.X | re.S)

# IPv6 and MAC literals: a run of hex digits and colons (an IPv4 tail allowed), checked
# afterwards; when it is neither, the text is scanned again as numbers, words and colons.
_HEXCOLON = re.compile(r"\[?([0-9A-Fa-f]*:[0-9A-Fa-f:]*(?:\.\d+)*)(\]?)(?![\w])")
_MAC = re.compile(r"(?:[0-9A-Fa-f]{1,2}:){5}[0-9A-Fa-f]{1,2}\Z")
_HEXSTART = frozenset("0123456789abcdefABCDEF:[")


def _addr_literal(text: str, pos: int):
    m = _HEXCOLON.match(text, pos)
    if m is None:
        return None
    body, close = m.group(1), m.group(2)
    bracket = text[pos] == "["
    if bracket != bool(close):
        return None
    if not bracket and _MAC.match(body):
        return body, m.end()
    if "::" in body or body.count(":") == 7:
        try:
            ipaddress.IPv6Address(body)
        except ValueError:
            return None
        return body, m.end()
    return None


def tokenize(source: Source) -> list:
    text = source.text
    out = []
    append = out.append
    end = len(text)
    last = ";"
    skip = 0            # an address literal ran past the regex's own tokens
    for m in _MASTER.finditer(text):
        kind = m.lastgroup
        if kind == "sp":
            continue
        start = m.start()
        if start < skip:
            continue
        pos = m.end()
        if kind == "w":
            if pos < end and text[pos] == ":" and text[start] in _HEXSTART:
                lit = _addr_literal(text, start)
                if lit is not None:
                    append(("w", lit[0], start, source))
                    skip, last = lit[1], "w"
                    continue
            append(("w", m.group("w"), start, source))
            last = "w"
            continue
        if kind == "nl":
            if last != ";":
                append((";", ";", start, source))
                last = ";"
            continue
        if kind == "p":
            value = m.group("p")
            if value == ";":
                if last != ";":
                    append((";", ";", start, source))
                    last = ";"
                continue
            if value in ":[":
                # An IPv6 or MAC literal scans as numbers, words and colons: look again
                # when a colon is at hand.
                lit = _addr_literal(text, start)
                if lit is not None:
                    append(("w", lit[0], start, source))
                    skip, last = lit[1], "w"
                    continue
            append((value, value, start, source))
            last = value
            continue
        if kind == "dec" or kind == "hex":
            if pos < end and text[pos] == ":":
                lit = _addr_literal(text, start)
                if lit is not None:
                    append(("w", lit[0], start, source))
                    skip, last = lit[1], "w"
                    continue
            append(("n", int(m.group(kind), 16 if kind == "hex" else 10), start, source))
            last = "n"
            continue
        if kind == "q":
            append(("q", m.group("q"), start, source))
        elif kind == "ast":
            append(("a", m.group("ast").replace("\\", ""), start, source))
        elif kind == "var":
            append(("$", m.group("var"), start, source))
        elif kind == "at":
            append(("@", m.group("at"), start, source))
        elif kind == "bad":
            raise NftError(source.loc(start), f"unexpected character {text[start]!r}")
        else:   # ip4, time, vlan
            append(("w", m.group(kind), start, source))
        last = out[-1][0]
    if last != ";":
        append((";", ";", end, source))
    append(("eof", None, end, source))
    return out
