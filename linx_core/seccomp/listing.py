"""Reading a compiled filter back: a listing with syscall names, and what it does per syscall.

The summary runs the program (bpf.run) for every syscall in the arch's table with all arguments
0; a syscall whose run reads an argument or the instruction pointer has argument rules. It
works on any cBPF seccomp filter, libseccomp's or the kernel's copy, not only linx's.
"""
from . import bpf, syscalls
from .rules import errno_name

# a number below the x32 bit that no kernel assigns: what it gets is the default action
_UNASSIGNED = syscalls.X32_SYSCALL_BIT - 2


def detect_arch(program) -> str | None:
    """The arch the filter's first comparison admits, when it starts with the usual check."""
    by_value = {v: k for k, v in syscalls.AUDIT_ARCH.items()}
    for i, (code, jt, jf, k) in enumerate(program[:4]):
        if code == bpf.LD | bpf.W | bpf.ABS and k == bpf.DATA_ARCH and i + 1 < len(program):
            nxt = program[i + 1]
            if nxt[0] == bpf.JMP | bpf.JEQ | bpf.K:
                return by_value.get(nxt[3])
    return None


def disasm(program, arch: str | None = None) -> list[str]:
    arch = arch or detect_arch(program)
    by_value = {v: k for k, v in syscalls.AUDIT_ARCH.items()}
    return bpf.disasm(program, (lambda nr: syscalls.name(nr, arch)) if arch else None,
                      errno_name, by_value.get)


def summary(program, arch: str | None = None) -> dict:
    """{"arch", "instructions", "default", "actions": {action: [syscalls]}, "by_arguments": [...]}
    for the syscalls whose verdict is not the default."""
    arch = arch or detect_arch(program) or syscalls.host_arch()
    audit = syscalls.AUDIT_ARCH.get(arch, 0)

    def verdict(nr, loads=None):
        return bpf.action_text(bpf.run(program, nr, audit, loads=loads)[0], errno_name)

    default = verdict(_UNASSIGNED)
    actions: dict[str, list] = {}
    by_args = []
    for name, nr in sorted(syscalls.table(arch).items(), key=lambda kv: kv[1]):
        loads: set = set()
        action = verdict(nr, loads)
        if any(offset >= bpf.DATA_IP for offset in loads):
            by_args.append(name)
        elif action != default:
            actions.setdefault(action, []).append(name)
    return {"arch": arch, "instructions": len(program), "default": default,
            "actions": actions, "by_arguments": by_args}
