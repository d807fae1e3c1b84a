"""Classic BPF as seccomp runs it: the instruction format, an assembler with labels, a listing,
and an interpreter (<linux/filter.h>, <linux/bpf_common.h>, Documentation/networking/filter.rst).

Conditional jumps carry 8-bit forward offsets; the assembler gives any branch that lands further
a `ja` stub (32-bit offset) right after it, so programs of any length up to the kernel's
BPF_MAXINSNS assemble. seccomp reads a struct seccomp_data (<linux/seccomp.h>): nr at 0, arch
at 4, instruction_pointer at 8, args[6] at 16 (u64 each, little-endian on x86_64 and aarch64).
"""
import struct

# opcode classes and fields
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
                                                       0x70, 0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
A = 0x10                      # BPF_RET source
TAX, TXA = 0x00, 0x80

MAXINSNS = 4096               # BPF_MAXINSNS: the kernel refuses longer programs (EINVAL)
INSN = struct.Struct("<HBBI")  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k

# seccomp return values (<linux/seccomp.h>): the high 16 bits are the action, the low the data
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF

DATA_NR, DATA_ARCH, DATA_IP, DATA_ARGS = 0, 4, 8, 16
DATA_SIZE = 64


class Label:
    """A jump target; place it with Asm.label()."""
    __slots__ = ()


class Asm:
    """Instructions with symbolic targets. Targets are forward only (seccomp programs are DAGs)."""

    def __init__(self):
        self.items: list = []   # Label or [code, k, jt, jf] with jt/jf a Label or None (= next)

    def label(self, lab: Label) -> None:
        self.items.append(lab)

    def ld(self, offset: int) -> None:
        self.items.append([LD | W | ABS, offset, None, None])

    def alu(self, op: int, k: int) -> None:
        self.items.append([ALU | op | K, k, None, None])

    def jump(self, op: int, k: int, jt: Label | None, jf: Label | None) -> None:
        self.items.append([JMP | op | K, k, jt, jf])

    def ja(self, target: Label) -> None:
        self.items.append([JMP | JA, 0, target, None])

    def ret(self, value: int) -> None:
        self.items.append([RET | K, value, None, None])

    def assemble(self) -> list[tuple[int, int, int, int]]:
        """-> [(code, jt, jf, k)]. Long branches get stubs until every offset fits in 8 bits."""
        items = list(self.items)
        while True:
            pos, n = {}, 0
            for item in items:
                if isinstance(item, Label):
                    pos[item] = n
                else:
                    n += 1
            out, fixes, i = [], [], 0
            for idx, item in enumerate(items):
                if isinstance(item, Label):
                    continue
                code, k, jt, jf = item
                if code == JMP | JA and jt is not None:
                    out.append((code, 0, 0, pos[jt] - i - 1))
                elif code & 0x07 == JMP:
                    offsets = [0 if t is None else pos[t] - i - 1 for t in (jt, jf)]
                    if any(o < 0 for o in offsets):
                        raise ValueError("backward jump")
                    far = [w for w, o in enumerate(offsets) if o > 255]
                    if far:
                        fixes.append((idx, far))
                    out.append((code, offsets[0], offsets[1], k))
                else:
                    out.append((code, 0, 0, k))
                i += 1
            if not fixes:
                return out
            for idx, far in reversed(fixes):
                item = list(items[idx])
                stubs, after = [], Label()
                for which in far:
                    stub = Label()
                    stubs += [stub, [JMP | JA, 0, item[2 + which], None]]
                    item[2 + which] = stub
                for which in (0, 1):       # "next" now means past the stubs
                    if item[2 + which] is None:
                        item[2 + which] = after
                items[idx:idx + 1] = [item] + stubs + [after]


def encode(program: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(INSN.pack(code, jt, jf, k) for code, jt, jf, k in program)


def decode(data: bytes) -> list[tuple[int, int, int, int]]:
    """A struct sock_filter array -> [(code, jt, jf, k)]; ValueError when it can't be one."""
    if not data or len(data) % INSN.size:
        raise ValueError(f"{len(data)} bytes is not a whole number of 8-byte BPF instructions")
    return [INSN.unpack_from(data, off) for off in range(0, len(data), INSN.size)]


def action_text(value: int, errno_name=None) -> str:
    """A seccomp return value as linx spells actions: allow, errno(EPERM), trace(3), ..."""
    action, data = value & RET_ACTION_FULL, value & RET_DATA
    if action == RET_ERRNO:
        return f"errno({errno_name(data) if errno_name else data})"
    names = {RET_KILL_PROCESS: "kill_process", RET_KILL_THREAD: "kill_thread", RET_TRAP: "trap",
             RET_TRACE: "trace", RET_LOG: "log", RET_ALLOW: "allow", RET_USER_NOTIF: "user_notif"}
    base = names.get(action, f"0x{value:08x}")
    return f"{base}({data})" if data and action in (RET_TRAP, RET_TRACE) else base


def _field_name(offset: int) -> str:
    if offset == DATA_NR:
        return "nr"
    if offset == DATA_ARCH:
        return "arch"
    if offset in (DATA_IP, DATA_IP + 4):
        return "ip." + ("lo" if offset == DATA_IP else "hi")
    if DATA_ARGS <= offset < DATA_SIZE:
        i, half = divmod(offset - DATA_ARGS, 8)
        return f"args[{i}]." + ("lo" if half == 0 else "hi")
    return f"data[{offset}]"


_JOPS = {JA: "ja", JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}
_AOPS = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or", AND: "and", LSH: "lsh",
         RSH: "rsh", NEG: "neg", MOD: "mod", XOR: "xor"}


def _successors(i: int, insn) -> list[int]:
    code, jt, jf, k = insn
    if code & 0x07 == RET:
        return []
    if code & 0x07 == JMP:
        return [i + 1 + k] if code & 0xF0 == JA else [i + 1 + jt, i + 1 + jf]
    return [i + 1]


def disasm(program, syscall_name=None, errno_name=None, arch_name=None) -> list[str]:
    """A readable listing, one line per instruction, with the field A holds at each comparison
    (followed along every path into the instruction) and the syscall a comparison against nr
    names (syscall_name(nr) -> str | None)."""
    held_in: dict[int, set] = {0: {None}}
    lines = []
    for i, (code, jt, jf, k) in enumerate(program):
        states = held_in.get(i, {None})
        held = next(iter(states)) if len(states) == 1 else None
        cls = code & 0x07
        note = ""
        if cls == LD and code & 0xE0 == ABS:
            held = _field_name(k)
            text = f"ld   {held}"
        elif cls == LD and code & 0xE0 == MEM:
            held, text = None, f"ld   M[{k}]"
        elif cls == LD and code & 0xE0 == IMM:
            held, text = None, f"ld   #0x{k:x}"
        elif cls == LDX:
            text = f"ldx  #0x{k:x}" if code & 0xE0 == IMM else f"ldx  M[{k}]"
        elif cls in (ST, STX):
            text = f"{'st' if cls == ST else 'stx'}   M[{k}]"
        elif cls == ALU:
            src = "x" if code & X else f"#0x{k:x}"
            text = f"{_AOPS.get(code & 0xF0, '?'):4} {src}"
            held = None if held is None else f"{held} {_AOPS.get(code & 0xF0, '?')} {src}"
        elif cls == JMP:
            op = code & 0xF0
            if op == JA:
                text = f"ja   {i + 1 + k:04d}"
            else:
                src = "x" if code & X else f"#0x{k:x}"
                text = f"{_JOPS.get(op, '?'):4} {src:<12} true {i + 1 + jt:04d}  false {i + 1 + jf:04d}"
                if held == "nr" and syscall_name and not code & X and op in (JEQ, JGE, JGT):
                    nm = syscall_name(k)
                    note = f"nr {'==' if op == JEQ else '>=' if op == JGE else '>'} {k}" + \
                        (f" ({nm})" if nm else "")
                elif held == "arch" and arch_name and op == JEQ:
                    note = f"arch == {arch_name(k) or hex(k)}"
                elif held:
                    note = held
        elif cls == RET:
            text = "ret  a" if code & 0x18 == A else f"ret  {action_text(k, errno_name)}"
        elif cls == MISC:
            held, text = None, ("tax" if code & 0xF8 == TAX else "txa")
        else:
            text = f"code 0x{code:04x}"
        for nxt in _successors(i, (code, jt, jf, k)):
            held_in.setdefault(nxt, set()).add(held)
        lines.append(f"{i:04d}  {text}" + (f"    ; {note}" if note else ""))
    return lines


def run(program, nr: int, arch: int, args=(0,) * 6, ip: int = 0, loads: set | None = None) -> tuple[int, int]:
    """Interpret the program over one seccomp_data: -> (return value, instructions executed);
    the offsets it read go into `loads` when given. Raises ValueError on what the kernel's
    checker would refuse at load."""
    data = struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, ip, *[a & (1 << 64) - 1 for a in
                                                              (list(args) + [0] * 6)[:6]])
    a = x = 0
    mem = [0] * 16
    pc = steps = 0
    while True:
        if pc >= len(program):
            raise ValueError("ran off the end of the program")
        code, jt, jf, k = program[pc]
        steps += 1
        pc += 1
        cls = code & 0x07
        if cls == LD:
            mode = code & 0xE0
            if mode == ABS:
                if code & 0x18 != W or k % 4 or k + 4 > DATA_SIZE:
                    raise ValueError(f"bad load at {pc - 1}")
                a = struct.unpack_from("<I", data, k)[0]
                if loads is not None:
                    loads.add(k)
            elif mode == MEM:
                a = mem[k]
            elif mode == IMM:
                a = k
            elif mode == LEN:
                a = DATA_SIZE
            else:
                raise ValueError(f"bad load at {pc - 1}")
        elif cls == LDX:
            x = mem[k] if code & 0xE0 == MEM else DATA_SIZE if code & 0xE0 == LEN else k
        elif cls == ST:
            mem[k] = a
        elif cls == STX:
            mem[k] = x
        elif cls == ALU:
            src = x if code & X else k
            op = code & 0xF0
            if op in (DIV, MOD) and src == 0:
                return 0, steps
            a = {ADD: lambda: a + src, SUB: lambda: a - src, MUL: lambda: a * src,
                 DIV: lambda: a // src, OR: lambda: a | src, AND: lambda: a & src,
                 LSH: lambda: a << (src & 31), RSH: lambda: a >> (src & 31), NEG: lambda: -a,
                 MOD: lambda: a % src, XOR: lambda: a ^ src}[op]() & 0xFFFFFFFF
        elif cls == JMP:
            op = code & 0xF0
            if op == JA:
                pc += k
                continue
            src = x if code & X else k
            cond = {JEQ: a == src, JGT: a > src, JGE: a >= src, JSET: bool(a & src)}[op]
            pc += jt if cond else jf
        elif cls == RET:
            return (a if code & 0x18 == A else k), steps
        elif cls == MISC:
            if code & 0xF8 == TAX:
                x = a
            else:
                a = x
