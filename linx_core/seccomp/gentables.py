"""Regenerate the per-arch syscall tables from the kernel's own sources.

    python -m linx_core.seccomp.gentables SYSCALL_64_TBL UNISTD_H [OUTDIR]

x86_64: arch/x86/entry/syscalls/syscall_64.tbl, abis `common` and `64` (the x32 rows are another
ABI: their numbers carry __X32_SYSCALL_BIT and the filter's arch check rejects them).
aarch64: include/uapi/asm-generic/unistd.h, read as arm64's unistd.h includes it: 64-bit longs,
the __ARCH_WANT_* switches arch/arm64/include/uapi/asm/unistd.h sets, and the __NR3264_* aliases
resolved the 64-bit way (fcntl, lseek, mmap, ...). A small preprocessor evaluates the header's
#if/#ifdef lines instead of a hand-kept list, so a new kernel is one rerun away.
"""
import ast
import os
import re
import sys

# arch/arm64/include/uapi/asm/unistd.h (and, since 6.11, arch/arm64/kernel/Makefile.syscalls:
# abis renameat, rlimit, memfd_secret on top of common and 64).
AARCH64_DEFINES = {
    "__BITS_PER_LONG": 64, "__ARCH_WANT_RENAMEAT": 1, "__ARCH_WANT_NEW_STAT": 1,
    "__ARCH_WANT_SET_GET_RLIMIT": 1, "__ARCH_WANT_TIME32_SYSCALLS": 1,
    "__ARCH_WANT_SYS_CLONE3": 1, "__ARCH_WANT_MEMFD_SECRET": 1,
}
NOT_SYSCALLS = {"syscalls", "arch_specific_syscall"}
# what a #if line may contain once names are replaced by numbers
_EXPR_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare,
               ast.Eq, ast.NotEq, ast.Lt, ast.Gt, ast.LtE, ast.GtE, ast.Constant)


def parse_tbl(text: str, abis=("common", "64")) -> dict[str, int]:
    """syscall_64.tbl rows `<number> <abi> <name> [entry...]` -> {name: number}."""
    table = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        nr, abi, name = line.split()[:3]
        if abi in abis:
            table[name] = int(nr)
    return table


def _logical_lines(text: str):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"\\\n", " ", text).splitlines()


def _evaluate(expr: str, defines: dict) -> bool:
    """A #if expression of the header's kind: defined(X), X == N, !=, ||, &&, !."""
    expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                  lambda m: " 1 " if (m.group(1) or m.group(2)) in defines else " 0 ", expr)
    expr = re.sub(r"[A-Za-z_]\w*", lambda m: str(_value(m.group(0), defines) or 0), expr)
    expr = expr.replace("||", " or ").replace("&&", " and ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    tree = ast.parse(expr.strip(), mode="eval")
    if not all(isinstance(node, _EXPR_NODES) for node in ast.walk(tree)):
        raise ValueError(f"unsupported #if expression: {expr!r}")
    return bool(eval(compile(tree, "#if", "eval"), {"__builtins__": {}}))


def _value(name: str, defines: dict, depth: int = 0):
    value = defines.get(name)
    if isinstance(value, str) and depth < 8:
        value = value.strip()
        if re.fullmatch(r"\d+", value):
            return int(value)
        return _value(value, defines, depth + 1)
    return value


def parse_unistd(text: str, defines: dict) -> dict[str, int]:
    """asm-generic/unistd.h -> {name: number} for the configuration in `defines`."""
    defines = dict(defines)
    stack = []          # (this branch taken, some branch already taken, parent active)
    active = True
    for line in _logical_lines(text):
        m = re.match(r"\s*#\s*(\w+)\s*(.*)", line)
        if not m:
            continue
        directive, rest = m.group(1), m.group(2).strip()
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "if":
                taken = active and _evaluate(rest, defines)
            else:
                taken = active and ((rest in defines) == (directive == "ifdef"))
            stack.append((taken, taken, active))
            active = taken
        elif directive == "elif":
            _, done, parent = stack.pop()
            taken = parent and not done and _evaluate(rest, defines)
            stack.append((taken, done or taken, parent))
            active = taken
        elif directive == "else":
            _, done, parent = stack.pop()
            stack.append((parent and not done, True, parent))
            active = parent and not done
        elif directive == "endif":
            _, _, active = stack.pop()
        elif active and directive == "define":
            dm = re.match(r"(\w+)(\(.*?\))?\s*(.*)", rest)
            if dm and not dm.group(2):
                defines[dm.group(1)] = dm.group(3) or "1"
        elif active and directive == "undef":
            defines.pop(rest.split()[0], None)
    if stack:
        raise ValueError("unbalanced #if/#endif")
    table = {}
    for name in defines:
        if name.startswith("__NR_") and name[5:] not in NOT_SYSCALLS:
            nr = _value(name, defines)
            if isinstance(nr, int):
                table[name[5:]] = nr
    return table


def render(arch: str, table: dict[str, int], source: str) -> str:
    """The generated module: one dict, sorted by number."""
    rows = "".join(f"    {name!r}: {nr},\n" for name, nr in sorted(table.items(), key=lambda kv: (kv[1], kv[0])))
    return (f'"""{arch} syscall numbers, generated by linx_core/seccomp/gentables.py from the kernel\'s\n'
            f'{source}. Do not edit; rerun the generator."""\n'
            f"SYSCALLS = {{\n{rows}}}\n")


def generate(tbl_path: str, unistd_path: str) -> dict[str, str]:
    """{module file name: source text} for both arches."""
    with open(tbl_path) as f:
        x86 = parse_tbl(f.read())
    with open(unistd_path) as f:
        arm = parse_unistd(f.read(), AARCH64_DEFINES)
    return {"_x86_64.py": render("x86_64", x86, "arch/x86/entry/syscalls/syscall_64.tbl"),
            "_aarch64.py": render("aarch64", arm, "include/uapi/asm-generic/unistd.h")}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    outdir = argv[2] if len(argv) == 3 else os.path.dirname(os.path.abspath(__file__))
    for name, text in generate(argv[0], argv[1]).items():
        with open(os.path.join(outdir, name), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
