"""Ruleset -> cBPF, in pure Python (no libseccomp).

Shape of every program:
  1. the arch check: a syscall from another ABI (32-bit compat, or x32's numbers, which share
     AUDIT_ARCH_X86_64 but carry __X32_SYSCALL_BIT) gets the bad-arch action, kill_process;
  2. a binary search over the syscall number. The number line is cut into intervals of equal
     outcome (runs of syscalls with the same unconditional action merge, and so do the gaps,
     which get the default), and a balanced tree of `jge` picks the interval in log2(intervals)
     steps: what libseccomp's optimizer (SCMP_FLTATR_CTL_OPTIMIZE=2) does over single numbers;
  3. at each leaf a `ret`, or, for a syscall with argument rules, its chain of comparisons.
The tree is laid out so most branches are short; the assembler adds `ja` stubs where an 8-bit
offset is not enough, so the only limit is the kernel's BPF_MAXINSNS.
"""
from ..errors import UsageError
from . import bpf, syscalls
from .rules import Action, Ruleset

BAD_ARCH = Action(bpf.RET_KILL_PROCESS)
NO_SYSCALL = 0xFFFFFFFF


class FilterTooLong(UsageError):
    def __init__(self, count: int):
        super().__init__("seccomp filter", f"needs {count} BPF instructions; the kernel's limit "
                                           f"is {bpf.MAXINSNS} (BPF_MAXINSNS): split the rules "
                                           f"or use fewer argument conditions")


def _chains(ruleset: Ruleset) -> dict[int, list]:
    """Per syscall number, its chain without what cannot change the outcome: trailing rules whose
    action is the default; a syscall left with nothing, or with one unconditional default, goes."""
    out = {}
    for nr, chain in ruleset.numbered().items():
        chain = list(chain)
        while chain and chain[-1][1] == ruleset.default:
            chain.pop()
        if chain:
            out[nr] = chain
    return out


def _intervals(chains: dict, default: Action, arch: str) -> list[tuple[int, object]]:
    """[(start, outcome)] covering 0..2^32-1 in order; outcome is an Action (a plain ret) or a
    syscall number (a leaf with comparisons)."""
    end_of_native = syscalls.X32_SYSCALL_BIT if arch == "x86_64" else 1 << 32
    out: list = []

    def add(start, outcome):
        if out and out[-1][1] == outcome and not isinstance(outcome, int):
            return                       # same ret as the interval before: one interval
        out.append((start, outcome))

    cursor = 0
    for nr in sorted(chains):
        if nr > cursor:
            add(cursor, default)
        chain = chains[nr]
        add(nr, chain[0][1] if len(chain) == 1 and not chain[0][0] else nr)
        cursor = nr + 1
    if cursor < end_of_native:
        add(cursor, default)
    if end_of_native < 1 << 32:
        add(end_of_native, BAD_ARCH)
        add(NO_SYSCALL, default)          # -1: a tracer skipped the call; no ABI owns it
    return out


def _offsets(arg) -> tuple[int, int]:
    base = bpf.DATA_IP if arg == "ip" else bpf.DATA_ARGS + 8 * arg
    return base, base + 4          # (low word, high word), little-endian


def _emit_cond(asm: bpf.Asm, c, fail: bpf.Label) -> None:
    """Fall through when the u64 comparison holds, jump to `fail` when it doesn't."""
    lo_off, hi_off = _offsets(c.arg)
    v_hi, v_lo = c.value >> 32, c.value & 0xFFFFFFFF
    ok = bpf.Label()
    if c.op == "&=":
        m_hi, m_lo = c.mask >> 32, c.mask & 0xFFFFFFFF
        if m_hi or v_hi:
            asm.ld(hi_off)
            asm.alu(bpf.AND, m_hi)
            asm.jump(bpf.JEQ, v_hi, None, fail)
        asm.ld(lo_off)
        asm.alu(bpf.AND, m_lo)
        asm.jump(bpf.JEQ, v_lo, None, fail)
        return
    asm.ld(hi_off)
    if c.op == "==":
        asm.jump(bpf.JEQ, v_hi, None, fail)
        asm.ld(lo_off)
        asm.jump(bpf.JEQ, v_lo, None, fail)
        return
    if c.op == "!=":
        asm.jump(bpf.JEQ, v_hi, None, ok)
        asm.ld(lo_off)
        asm.jump(bpf.JEQ, v_lo, fail, None)
    elif c.op in (">", ">="):
        asm.jump(bpf.JGT, v_hi, ok, None)
        asm.jump(bpf.JEQ, v_hi, None, fail)
        asm.ld(lo_off)
        asm.jump(bpf.JGT if c.op == ">" else bpf.JGE, v_lo, None, fail)
    else:                                   # < and <=: the negations of >= and >
        asm.jump(bpf.JGT, v_hi, fail, None)
        asm.jump(bpf.JEQ, v_hi, None, ok)
        asm.ld(lo_off)
        asm.jump(bpf.JGE if c.op == "<" else bpf.JGT, v_lo, fail, None)
    asm.label(ok)


def _emit_leaf(asm: bpf.Asm, outcome, chains: dict, default: Action) -> None:
    if isinstance(outcome, Action):
        asm.ret(outcome.value)
        return
    for conds, action in chains[outcome]:
        nxt = bpf.Label()
        for c in conds:
            _emit_cond(asm, c, nxt)
        asm.ret(action.value)
        asm.label(nxt)
        if not conds:
            return                            # an unconditional rule ends the chain
    asm.ret(default.value)


def _emit_tree(asm: bpf.Asm, intervals: list, chains: dict, default: Action) -> None:
    """Balanced search: `jge start(mid)` sends the upper half right, the lower half falls through.
    A is the syscall number throughout, except inside a leaf (which always returns)."""
    stack = [(0, len(intervals))]
    while stack:
        item = stack.pop()
        if isinstance(item, bpf.Label):
            asm.label(item)
            continue
        lo, hi = item
        if hi - lo == 1:
            _emit_leaf(asm, intervals[lo][1], chains, default)
            continue
        mid = (lo + hi) // 2
        right = bpf.Label()
        asm.jump(bpf.JGE, intervals[mid][0], right, None)
        stack += [(mid, hi), right, (lo, mid)]      # popped in reverse: left, label, right


def compile_ruleset(ruleset: Ruleset) -> bytes:
    """The struct sock_filter array for `ruleset`; FilterTooLong past BPF_MAXINSNS."""
    chains = _chains(ruleset)
    asm = bpf.Asm()
    native = bpf.Label()
    asm.ld(bpf.DATA_ARCH)
    asm.jump(bpf.JEQ, syscalls.AUDIT_ARCH[ruleset.arch], native, None)
    asm.ret(BAD_ARCH.value)
    asm.label(native)
    asm.ld(bpf.DATA_NR)
    _emit_tree(asm, _intervals(chains, ruleset.default, ruleset.arch), chains, ruleset.default)
    program = asm.assemble()
    if len(program) > bpf.MAXINSNS:
        raise FilterTooLong(len(program))
    return bpf.encode(program)


def compile_catch_all(arch: str, ranges, action: Action) -> bytes:
    """Every syscall gets `action`, except those made from code in `ranges` ([lo, hi) of
    instruction pointers), which are allowed; other arches are killed. The recorder's filter
    (action user_notif): the agent's own calls before execve run, every call of the
    workload is notified."""
    from .rules import Cond
    asm = bpf.Asm()
    native = bpf.Label()
    asm.ld(bpf.DATA_ARCH)
    asm.jump(bpf.JEQ, syscalls.AUDIT_ARCH[arch], native, None)
    asm.ret(BAD_ARCH.value)
    asm.label(native)
    for lo, hi in ranges:
        nxt = bpf.Label()
        _emit_cond(asm, Cond("ip", ">=", lo), nxt)
        _emit_cond(asm, Cond("ip", "<", hi), nxt)
        asm.ret(bpf.RET_ALLOW)
        asm.label(nxt)
    asm.ret(action.value)
    return bpf.encode(asm.assemble())

