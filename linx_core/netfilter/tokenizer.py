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

One compiled regex finds every token with the blanks and comments before it, so the loop
below runs once per token; its alternatives are tried in order, words first (most tokens
are words), and a run of statement ends is one match.
"""
import ipaddress
import re

from .location import NftError, Source

# Blanks before a token are part of its match; comments and line continuations are a
# match of their own (rare). After a statement end, the separators, blanks and comments
# that follow are one match with it.
_MASTER = re.compile(r"""[ \t\r]*(?:
  ([A-Za-z_][A-Za-z0-9/\-_.]*+)(?![:*]|\\\*)                 # 1 word
| ([\n;])(?:[ \t\r\n;]+|\\\n|\#[^\n]*)*                      # 2 statement end(s)
| (\d{1,3}(?:\.\d{1,3}){3})(?![\w.])                         # 3 IPv4 address
| (\d++)(?![:\w])                                            # 4 decimal number
| (==|!=|<=|>=|<<|>>|[{}\]()<>,=&|^!/\-+])                  # 5 punctuation
| \\\n|\#[^\n]*                                              #   line continuation, comment
| ([A-Za-z_][A-Za-z0-9/\-_.]*+)(?=:)                         # 6 word before ':'
| ((?:\d+(?:ms|d|h|m|s))+)(?!\w)                             # 7 time string
| (8021q|8021ad)(?!\w)                                       # 8 vlan ether types
| (0[xX][0-9a-fA-F]+)(?!\w)                                  # 9 hex number
| (\d+)                                                      # 10 decimal number (before ':')
| ([:\[])                                                    # 11 ':' '['
| "([^"\n]*)"                                                # 12 quoted string
| ((?:[A-Za-z_.][A-Za-z0-9/\-_.]*)?\\?\*)                    # 13 wildcard
| (\.[A-Za-z0-9/\-_.]+)                                      # 14 word starting with '.'
| \$([A-Za-z_][A-Za-z0-9_]*)                                 # 15 variable
| @([A-Za-z_.][A-Za-z0-9/\-_.]*)                             # 16 set reference
| (\.)                                                       # 17 '.'
| \Z                                                         #   end of text
| (.)                                                        # 18 anything else: an error
)""", re.X | re.S)

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
    skip = 0            # an address literal ran past the regex's own tokens
    for m in _MASTER.finditer(text):
        g = m.lastindex
        if g is None:           # blanks, a comment, the end
            continue
        start = m.start(g)
        if start < skip:
            continue
        if g == 1 or g == 3 or g == 8 or g == 14:
            append(("w", m[g], start, source))
        elif g == 2:
            if out:             # nothing before: no statement to end
                append((";", ";", start, source))
        elif g == 4:
            append(("n", int(m[4]), start, source))
        elif g == 5 or g == 17:
            append((m[g], m[g], start, source))
        elif g == 12:
            append(("q", m[12], start - 1, source))
        elif g == 15:
            append(("$", m[15], start - 1, source))
        elif g == 16:
            append(("@", m[16], start - 1, source))
        elif g == 13:
            append(("a", m[13].replace("\\", ""), start, source))
        elif g == 7:
            append(("w", m[7], start, source))
        elif g == 18:
            raise NftError(source.loc(start), f"unexpected character {text[start]!r}")
        else:
            # Before a colon, or a colon or '[': an IPv6 or MAC literal scans as numbers,
            # words and colons, so look again here.
            if g == 11 or (text[start] in _HEXSTART if g == 6 else
                           m.end() < end and text[m.end()] == ":"):
                lit = _addr_literal(text, start)
                if lit is not None:
                    append(("w", lit[0], start, source))
                    skip = lit[1]
                    continue
            if g == 6 or g == 11:
                append(("w", m[6], start, source) if g == 6 else (m[11], m[11], start, source))
            else:
                append(("n", int(m[g], 10 if g == 10 else 16), start, source))
    if out and out[-1][0] != ";":
        append((";", ";", end, source))
    append(("eof", None, end, source))
    return out
