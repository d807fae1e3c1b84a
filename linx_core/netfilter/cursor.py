"""The parser's position in a token list (tokenizer.py), and the small reads every
construct is made of: look at a token, take it, or raise a located error naming what was
expected instead. The construct modules (declarations, statements, expressions, values)
are functions over one Cursor, one function per construct of nftables' parser_bison.y."""
from . import model as M
from .location import NftError


class Cursor:
    """Tokens, the index of the next one, the Ruleset the commands build, and the table
    being parsed (its family decides `ct saddr`'s type and which reject/nat forms fit)."""

    __slots__ = ("toks", "i", "rs", "family", "table")

    def __init__(self, tokens, ruleset=None):
        self.toks = tokens
        self.i = 0
        self.rs = ruleset if ruleset is not None else M.Ruleset()
        self.family = None          # family of the table being parsed (for ct saddr)
        self.table = None

    def peek(self, k=0):
        return self.toks[self.i + k]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, *values) -> bool:
        t = self.toks[self.i]
        return t[0] in ("w", ";", "eof") and t[1] in values or (
            t[0] not in ("w", "n", "q", "a", "$", "@") and t[0] in values)

    def at_word(self, *words) -> bool:
        t = self.toks[self.i]
        return t[0] == "w" and t[1] in words

    def accept(self, *values):
        if self.at(*values):
            return self.next()
        return None

    def loc(self, t=None):
        """Where a construct starts: its first token (location.as_loc makes the Loc)."""
        return t if t is not None else self.toks[self.i]

    def error(self, message, t=None):
        t = t if t is not None else self.toks[self.i]
        width = len(str(t[1])) if t[0] in ("w", "n") else 1
        return NftError(self.loc(t), message, width)

    def describe(self, t) -> str:
        kind, value = t[0], t[1]
        if kind == "eof":
            return "end of file"
        if kind == ";":
            return "end of statement"
        if kind == "q":
            return f'"{value}"'
        if kind == "@":
            return f"@{value}"
        return f"'{value}'"

    def expect(self, value, what=None):
        t = self.toks[self.i]
        if (t[0] == value and t[0] not in ("w", "n", "q")) or (t[0] == "w" and t[1] == value):
            self.i += 1
            return t
        raise self.error(f"unexpected {self.describe(t)}, expected {what or repr(value)}")

    def word(self, what="a name"):
        t = self.toks[self.i]
        if t[0] == "w":
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def name(self, what="a name"):
        """Identifiers; nft also takes quoted strings as names."""
        t = self.toks[self.i]
        if t[0] in ("w", "q"):
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def number(self, what="a number"):
        t = self.toks[self.i]
        if t[0] == "n":
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def string(self, what="a quoted string"):
        t = self.toks[self.i]
        if t[0] in ("q", "w"):
            self.i += 1
            return t[1]
        raise self.error(f"unexpected {self.describe(t)}, expected {what}")

    def end_of_stmt(self) -> bool:
        return self.toks[self.i][0] in (";", "}", "eof")

    def skip_seps(self):
        while self.toks[self.i][0] == ";":
            self.i += 1

    def end_item(self):
        t = self.toks[self.i]
        if t[0] == ";":
            self.i += 1
        elif t[0] not in ("}", "eof"):
            raise self.error(f"unexpected {self.describe(t)}, expected end of statement")

    def with_table(self, tbl):
        self.table, self.family = tbl, tbl.family

    def skip_block(self):
        depth = 1
        while depth:
            t = self.next()
            if t[0] == "{":
                depth += 1
            elif t[0] == "}":
                depth -= 1
            elif t[0] == "eof":
                raise self.error("unexpected end of file, expected '}'", t)
