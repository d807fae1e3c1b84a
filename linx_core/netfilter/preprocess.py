"""`include "FILE"` and `define NAME = VALUE` / `$NAME`, resolved on the token list before
the parser sees it, as nft's scanner and parser resolve them while reading
(src/scanner.l's include handling, parser_bison.y's define/redefine/undefine).
"""
import glob
import os

from .location import NftError, Source
from .tokenizer import tokenize


def expand(tokens, source_dir, variables, depth):
    """Resolve `include "FILE"` (relative to the including file, globs allowed) and
    `define NAME = VALUE` / `$NAME`, returning a flat token list (nft's scanner and
    parser do the same while reading)."""
    out = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        at_start = not out or out[-1][0] in (";", "{")
        if at_start and t[0] == "w" and t[1] == "include":
            pt = tokens[i + 1]
            if pt[0] != "q":
                raise NftError(pt[3].loc(pt[2]), "include: expected a quoted file name")
            for tok in _include(pt, source_dir, variables, depth):
                out.append(tok)
            i += 2
            continue
        if at_start and t[0] == "w" and t[1] in ("define", "redefine", "undefine"):
            nt = tokens[i + 1]
            if nt[0] != "w":
                raise NftError(nt[3].loc(nt[2]), f"{t[1]}: expected a variable name")
            if t[1] == "undefine":
                if nt[1] not in variables:
                    raise NftError(nt[3].loc(nt[2]), f"undefine: ${nt[1]} is not defined")
                del variables[nt[1]]
                i += 2
                continue
            eq = tokens[i + 2]
            if eq[0] != "=":
                raise NftError(eq[3].loc(eq[2]), f"{t[1]} {nt[1]}: expected '='")
            j, depth_b = i + 3, 0
            body = []
            while True:
                bt = tokens[j]
                if bt[0] == "eof" or (bt[0] == ";" and depth_b == 0):
                    break
                if bt[0] == "{":
                    depth_b += 1
                elif bt[0] == "}":
                    if depth_b == 0:
                        break
                    depth_b -= 1
                if bt[0] == "$":
                    body.extend(_var(bt, variables))
                else:
                    body.append(bt)
                j += 1
            if not body:
                raise NftError(eq[3].loc(eq[2]), f"define {nt[1]}: empty value")
            if t[1] == "define" and nt[1] in variables:
                raise NftError(nt[3].loc(nt[2]), f"${nt[1]} is already defined "
                                                  "(use redefine)")
            variables[nt[1]] = body
            i = j
            continue
        if t[0] == "$":
            out.extend(_var(t, variables))
            i += 1
            continue
        if t[0] == "eof" and depth:
            break
        if t[0] == ";" and out and out[-1][0] == ";":
            i += 1
            continue
        out.append(t)
        i += 1
    return out


def _var(t, variables):
    body = variables.get(t[1])
    if body is None:
        raise NftError(t[3].loc(t[2]), f"${t[1]} is not defined", len(t[1]) + 1)
    return body


def _include(pt, source_dir, variables, depth):
    path = pt[1]
    if depth > 16:
        raise NftError(pt[3].loc(pt[2]), "include: nested too deeply")
    # Relative to the including file first, then to the working directory.
    full = path if os.path.isabs(path) else os.path.join(source_dir, path)
    if not os.path.isabs(path) and not glob.glob(full) and glob.glob(path):
        full = path
    names = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
    out = []
    for name in names:
        try:
            with open(name) as f:
                text = f.read()
        except OSError as e:
            raise NftError(pt[3].loc(pt[2]), f"include {path!r}: {e.strerror}",
                           len(path) + 2) from None
        src = Source(name, text)
        toks = tokenize(src)
        out.extend(expand(toks, os.path.dirname(name), variables, depth + 1))
    return out
