"""Source text, locations, and the located error every stage raises for bad input.

Errors render as `file:line:col: message`, then the source line and a caret under the
column, as nft's own erec.c does. Tokens carry only an offset into their Source; the line
and column are worked out when an error needs them."""
import bisect

from ..errors import UsageError


class Source:
    """One file (or string) of nft text."""

    __slots__ = ("name", "text", "_starts")

    def __init__(self, name: str, text: str):
        self.name, self.text, self._starts = name, text, None

    def line_col(self, offset: int) -> tuple[int, int]:
        if self._starts is None:
            starts = [0]
            find = self.text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._starts = starts
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1

    def loc(self, offset: int) -> "Loc":
        return Loc(self, offset)


class Loc:
    """A place in a Source: the start of a token or a construct."""

    __slots__ = ("src", "offset")

    def __init__(self, src: Source, offset: int):
        self.src, self.offset = src, offset

    def __str__(self) -> str:
        line, col = self.src.line_col(self.offset)
        return f"{self.src.name}:{line}:{col}"

    def __repr__(self) -> str:
        return f"Loc({self})"

    def snippet(self, width: int = 1) -> str:
        line, col = self.src.line_col(self.offset)
        lines = self.src.text.split("\n")
        text = lines[line - 1] if line <= len(lines) else ""
        pad = "".join("\t" if c == "\t" else " " for c in text[:col - 1])
        return f"  | {text}\n  | {pad}{'^' * max(1, width)}"


def as_loc(where) -> "Loc | None":
    """A Loc from what model nodes keep: the parser stores the token a construct starts at
    (kind, value, offset, source) and only an error turns it into a Loc."""
    if where is None or isinstance(where, Loc):
        return where
    return Loc(where[3], where[2])


class NftError(UsageError):
    """Bad nft input and where it is; exit status 2 like every UsageError."""

    def __init__(self, loc: "Loc | tuple | None", message: str, width: int = 1):
        loc = as_loc(loc)
        self.loc, self.message, self.width = loc, message, width
        super().__init__(str(loc) if loc is not None else "", message)

    def __str__(self) -> str:
        head = super().__str__()
        if self.loc is None:
            return head
        return f"{head}\n{self.loc.snippet(self.width)}"
