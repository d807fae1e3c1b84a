"""The oracle: linx's filter against libseccomp's for the same rules, both programs run by an
interpreter written here (not linx's) over every syscall number of the table, numbers outside
it, and a sample of argument values. Same verdict for every input, or the test fails.

libseccomp is driven through ctypes (libseccomp2, Debian's libseccomp-dev) with the settings linx
uses: bad-arch action kill_process, binary-tree optimizer; seccomp_export_bpf gives its program.
"""
import ctypes
import ctypes.util
import itertools
import json
import os
import struct
import tempfile

import pytest

from linx_core.seccomp import compile_ruleset, profile, rules, syscalls
from linx_core.seccomp.rules import Ruleset, cond

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seccomp")
_LIB = ctypes.util.find_library("seccomp")
pytestmark = pytest.mark.skipif(not _LIB, reason="libseccomp2 missing")

SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_OPTIMIZE = 2, 8
SCMP_OPS = {"!=": 1, "<": 2, "<=": 3, "==": 4, ">=": 5, ">": 6, "&=": 7}
RET_KILL_PROCESS = 0x80000000


class _Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _lib():
    lib = ctypes.CDLL(_LIB, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_Cmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_arch_add.argtypes = lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    return lib


def libseccomp_knows(name: str, arch: str) -> bool:
    return _lib().seccomp_syscall_resolve_name_arch(syscalls.AUDIT_ARCH[arch], name.encode()) >= 0


def libseccomp_bpf(ruleset: Ruleset, optimize: int = 2) -> list:
    """libseccomp's program for the ruleset (rules whose syscall libseccomp 2.5 doesn't know
    must be left out by the caller; on the native arch numbers are passed through)."""
    lib = _lib()
    ctx = lib.seccomp_init(ruleset.default.value)
    assert ctx
    try:
        assert lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, RET_KILL_PROCESS) == 0
        assert lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, optimize) == 0
        native = os.uname().machine == ruleset.arch
        if not native:
            assert lib.seccomp_arch_add(ctx, syscalls.AUDIT_ARCH[ruleset.arch]) == 0
            assert lib.seccomp_arch_remove(ctx, 0) == 0        # SCMP_ARCH_NATIVE
        for r in ruleset.rules:
            if r.action == ruleset.default:
                continue              # libseccomp refuses them (EACCES); here they are all last
            cmps = (_Cmp * 6)(*[_Cmp(c.arg, SCMP_OPS[c.op], c.mask if c.op == "&=" else c.value,
                                     c.value if c.op == "&=" else 0) for c in r.conds])
            # off the native arch libseccomp takes a native number and translates it by name
            nr = syscalls.number(r.syscall, ruleset.arch) if native else \
                lib.seccomp_syscall_resolve_name(r.syscall.encode())
            rc = lib.seccomp_rule_add_array(ctx, r.action.value, nr, len(r.conds), cmps)
            assert rc == 0, (str(r), rc)
        with tempfile.TemporaryFile() as f:
            assert lib.seccomp_export_bpf(ctx, f.fileno()) == 0
            f.seek(0)
            data = f.read()
    finally:
        lib.seccomp_release(ctx)
    return [struct.unpack_from("<HBBI", data, i) for i in range(0, len(data), 8)]


def run(program, nr: int, arch: int, args) -> tuple[int, int]:
    """A cBPF interpreter for what seccomp filters use (ld abs, alu and, jumps, ret) ->
    (return value, instructions executed). Independent of linx_core.seccomp.bpf on purpose."""
    data = struct.pack("<IIQ6Q", nr, arch, 0, *args)
    a, pc, steps = 0, 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc, steps = pc + 1, steps + 1
        if code == 0x20:                       # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:                     # and #k
            a &= k
        elif code == 0x05:                     # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            hit = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if hit else jf
        elif code == 0x06:                     # ret #k
            return k, steps
        else:
            raise AssertionError(f"unexpected opcode 0x{code:x} at {pc - 1}")


NUMBERS = list(range(0, 600)) + [1000, 0x3FFFFFFF, 0x40000000, 0x40000001, 0x7FFFFFFF,
                                 0xFFFFFFFE, 0xFFFFFFFF]


def _arg_samples(ruleset):
    """0, all ones, the 32-bit edges, and every constant the rules compare with, +/- 1."""
    values = {0, 1, 0xFFFFFFFF, 1 << 32, (1 << 64) - 1}
    for r in ruleset.rules:
        for c in r.conds:
            values |= {c.value, (c.value + 1) & (1 << 64) - 1, (c.value - 1) & (1 << 64) - 1, c.mask}
    values = sorted(values)
    pairs = list(itertools.product(values, repeat=2))
    return [(a, b, b, a, a, b) for a, b in pairs]


def compare(ruleset: Ruleset, samples=None) -> tuple[float, float]:
    """Assert equal verdicts everywhere; -> mean instructions per syscall (linx, libseccomp)."""
    mine = [struct.unpack_from("<HBBI", d, 0) for d in
            (lambda b: [b[i:i + 8] for i in range(0, len(b), 8)])(compile_ruleset(ruleset))]
    theirs = libseccomp_bpf(ruleset)
    audit = syscalls.AUDIT_ARCH[ruleset.arch]
    with_args = {syscalls.number(r.syscall, ruleset.arch) for r in ruleset.rules if r.conds}
    samples = samples or _arg_samples(ruleset)
    steps_mine = steps_theirs = count = 0
    for nr in NUMBERS:
        for args in (samples if nr in with_args else [(0,) * 6, ((1 << 64) - 1,) * 6]):
            got, n1 = run(mine, nr, audit, args)
            want, n2 = run(theirs, nr, audit, args)
            assert got == want, (f"{ruleset.arch} nr {nr} ({syscalls.name(nr, ruleset.arch)}) "
                                 f"args {args}: linx 0x{got:08x}, libseccomp 0x{want:08x}")
            if args == (0,) * 6 and nr in syscalls.table(ruleset.arch).values():
                steps_mine, steps_theirs, count = steps_mine + n1, steps_theirs + n2, count + 1
    # a foreign arch never passes the check
    assert run(mine, 0, 0x40000003, (0,) * 6)[0] == RET_KILL_PROCESS
    return steps_mine / count, steps_theirs / count


def _known(ruleset: Ruleset) -> Ruleset:
    """Without the syscalls newer than libseccomp 2.5's tables (it can't name them off-native)."""
    return Ruleset(ruleset.arch, ruleset.default,
                   tuple(r for r in ruleset.rules if libseccomp_knows(r.syscall, ruleset.arch)))


ARCHES = ["x86_64", "aarch64"]
BASIC = ["read", "write", "openat", "close", "exit_group", "fstat", "mmap", "munmap", "mprotect",
         "brk", "rt_sigreturn", "rt_sigaction", "rt_sigprocmask", "futex", "getpid", "clone",
         "execve", "wait4", "pipe2", "dup3", "ioctl", "getdents64", "newfstatat", "prlimit64",
         "set_tid_address", "set_robust_list", "rseq", "getrandom", "statx", "faccessat2"]


@pytest.mark.parametrize("arch", ARCHES)
def test_allow_list(arch):
    compare(rules.allow_list(BASIC, arch=arch))


@pytest.mark.parametrize("arch", ARCHES)
def test_deny_list_with_every_action(arch):
    rs = rules.build([("errno(EPERM)", "mkdirat"), ("errno(EACCES)", "ptrace"), ("kill_process", "kexec_load"),
                      ("kill_thread", "reboot"), ("trap", "swapon"), ("log", "mount"), ("trace(7)", "pivot_root"),
                      ("errno(ENOSYS)", "clone3")], "allow", arch)
    compare(rs)


@pytest.mark.parametrize("arch", ARCHES)
def test_argument_comparisons(arch):
    """Every operator, 64-bit values across both halves, ANDed and ORed (several rules)."""
    b = rules.Builder().allow("read").allow("write")
    b.allow_if("socket", cond(0, "==", 1))                                         # AF_UNIX
    b.allow_if("socket", cond(0, "==", 2), cond(1, "&=", 1, mask=0xF))              # AF_INET, SOCK_STREAM
    b.rule("errno(EACCES)", "prctl", cond(0, ">", 10))
    b.rule("errno(EACCES)", "personality", cond(0, "<", 0x100000000))
    b.rule("trap", "personality", cond(0, ">=", 0x100000005))
    b.rule("log", "mmap", cond(2, "<=", 3), cond(3, "!=", 5))
    b.rule("errno(EPERM)", "kill", cond(1, "==", 9), cond(0, "<=", 0x1FFFFFFFF))
    b.allow_if("clone", cond(0, "&=", 0, mask=0x7E020000))
    b.rule("errno(EBADF)", "ioctl", cond(1, "&=", 0x11, mask=0x1))                  # value outside mask
    compare(b.build(default="errno(EPERM)", arch=arch))


def _docker(arch, caps):
    with open(os.path.join(DATA, "docker-default.json")) as f:
        return profile.from_docker(json.load(f), arch=arch, caps=caps)[0]


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("caps", [set(), {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}],
                         ids=["no-caps", "admin"])
def test_docker_default_profile(arch, caps):
    mine, theirs = compare(_known(_docker(arch, caps)))
    assert mine <= theirs        # the benchmark's target: no slower than libseccomp


def test_long_filter_with_stubs():
    """More than 255 instructions between a branch and its target: the assembler's ja stubs."""
    names = [n for n in syscalls.table("x86_64") if libseccomp_knows(n, "x86_64")][:150]
    rs = rules.build([("errno(EPERM)", n, (cond(0, "==", i), cond(1, ">", i * 3)))
                      for i, n in enumerate(names)], "allow", "x86_64")
    assert len(compile_ruleset(rs)) // 8 > 1000
    compare(rs, samples=[(0, 0, 0, 0, 0, 0), (5, 16, 0, 0, 0, 0), (5, 15, 0, 0, 0, 0),
                         (140, 421, 0, 0, 0, 0), (149, 448, 0, 0, 0, 0), (1 << 32, 0, 0, 0, 0, 0)])
