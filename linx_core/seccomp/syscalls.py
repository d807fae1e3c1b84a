"""Syscall name <-> number per architecture, and the AUDIT_ARCH_* value a filter checks.

The tables are the kernel's own (gentables.py); a number outside them is reported as None, never
an error, so a listing of a filter built for a newer kernel still reads.
"""
import importlib
import os

from ..errors import UsageError

ARCHES = ("x86_64", "aarch64")
# <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# The x32 ABI shares AUDIT_ARCH_X86_64 and marks its numbers with this bit (asm/unistd.h);
# a native filter must treat them as another arch.
X32_SYSCALL_BIT = 0x40000000
ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

_tables: dict[str, dict[str, int]] = {}
_reverse: dict[str, dict[int, str]] = {}


def host_arch() -> str | None:
    """The running kernel's arch if linx has a table for it (os.uname, not the Python build)."""
    machine = os.uname().machine
    machine = ALIASES.get(machine, machine)
    return machine if machine in ARCHES else None


def check_arch(arch: str | None, where: str = "arch") -> str:
    """None -> the host's; an alias (amd64, arm64) -> its canonical name; else UsageError."""
    if arch is None:
        arch = host_arch()
        if arch is None:
            raise UsageError(where, f"this machine ({os.uname().machine}) has no syscall table in "
                                    f"linx (expected one of {', '.join(ARCHES)})")
        return arch
    canonical = ALIASES.get(arch, arch)
    if canonical not in ARCHES:
        raise UsageError(where, f"unsupported architecture {arch!r} (expected {', '.join(ARCHES)})")
    return canonical


def table(arch: str) -> dict[str, int]:
    """{name: number} for one arch, loaded on first use."""
    if arch not in _tables:
        _tables[arch] = importlib.import_module(f"._{arch}", __package__).SYSCALLS
    return _tables[arch]


def number(name: str, arch: str) -> int | None:
    return table(arch).get(name)


def name(nr: int, arch: str) -> str | None:
    """The syscall with this number, or None when the table doesn't know it."""
    if arch not in _reverse:
        _reverse[arch] = {v: k for k, v in table(arch).items()}
    return _reverse[arch].get(nr)


def resolve(name_or_number, arch: str, where: str) -> int:
    """A name in the arch's table (or a number) -> its number; an unknown name is a UsageError:
    a typo must never silently widen or narrow a filter."""
    if isinstance(name_or_number, int) or str(name_or_number).isdigit():
        nr = int(name_or_number)
        if not 0 <= nr < X32_SYSCALL_BIT:
            raise UsageError(where, f"syscall number {nr} is out of range")
        return nr
    nr = table(arch).get(str(name_or_number))
    if nr is None:
        raise UsageError(where, f"unknown syscall {name_or_number!r} on {arch}")
    return nr
