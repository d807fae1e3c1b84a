"""The filter model: actions, per-argument conditions, rules, a ruleset, and the ways to build one
(allow list, deny list, builder, plain rules). Pure values; compiler.py turns them into cBPF.

Semantics, per syscall: its rules are tried in order, the first whose conditions all hold
decides; when none does, the default action applies. Conditions compare a syscall argument
(or the instruction pointer) as a u64, as libseccomp does.
"""
import errno as _errno
from dataclasses import dataclass, field

from ..errors import UsageError
from . import bpf, syscalls

MAX_ERRNO = 4095      # the kernel clamps SECCOMP_RET_ERRNO data to MAX_ERRNO
_KINDS = {"allow": bpf.RET_ALLOW, "kill_process": bpf.RET_KILL_PROCESS, "kill": bpf.RET_KILL_PROCESS,
          "kill_thread": bpf.RET_KILL_THREAD, "trap": bpf.RET_TRAP, "errno": bpf.RET_ERRNO,
          "trace": bpf.RET_TRACE, "log": bpf.RET_LOG, "user_notif": bpf.RET_USER_NOTIF}
ACTION_NAMES = ("allow", "errno(NAME|N)", "kill_process", "kill_thread", "trap", "log", "trace")


def errno_number(value, where: str) -> int:
    """`EPERM`, `eperm` or `1` -> 1."""
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
    else:
        number = getattr(_errno, text.upper(), None)
        if not isinstance(number, int):
            raise UsageError(where, f"unknown errno {value!r} (expected a name like EPERM or a number)")
    if not 0 <= number <= MAX_ERRNO:
        raise UsageError(where, f"errno {number} is out of range (0-{MAX_ERRNO})")
    return number


def errno_name(number: int) -> str:
    return _errno.errorcode.get(number, str(number))


@dataclass(frozen=True)
class Action:
    """A seccomp verdict; `value` is the SECCOMP_RET_* word the filter returns."""
    value: int

    @classmethod
    def parse(cls, text, where: str = "action") -> "Action":
        """allow | kill_process | kill_thread | trap | log | trace | errno(EPERM) | errno(1) |
        trace(N) | trap(N); an Action passes through."""
        if isinstance(text, Action):
            return text
        raw = str(text).strip()
        kind, data = raw.lower(), None
        if raw.endswith(")") and "(" in raw:
            kind, _, data = raw[:-1].partition("(")
            kind = kind.strip().lower()
        if kind not in _KINDS or (data is not None and kind not in ("errno", "trace", "trap")):
            raise UsageError(where, f"bad action {text!r} (expected {', '.join(ACTION_NAMES)})")
        if kind == "errno":
            return cls(bpf.RET_ERRNO | errno_number(data if data is not None else "EPERM", where))
        if data is not None:
            if not data.strip().isdigit() or int(data) > 0xFFFF:
                raise UsageError(where, f"bad action {text!r}: data must be 0-65535")
            return cls(_KINDS[kind] | int(data))
        return cls(_KINDS[kind])

    @classmethod
    def errno(cls, value, where: str = "errno") -> "Action":
        return cls(bpf.RET_ERRNO | errno_number(value, where))

    def __str__(self) -> str:
        return bpf.action_text(self.value, errno_name)


ALLOW = Action(bpf.RET_ALLOW)
KILL_PROCESS = Action(bpf.RET_KILL_PROCESS)
EPERM = Action(bpf.RET_ERRNO | _errno.EPERM)

# comparison operators: linx spelling -> canonical (libseccomp's SCMP_CMP_* names in comments)
OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", "<=": "<=", "le": "<=",
       ">": ">", "gt": ">", ">=": ">=", "ge": ">=", "&=": "&=", "masked_eq": "&="}
U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Cond:
    """args[arg] <op> value, or (args[arg] & mask) == value for `&=`; arg may be "ip" for the
    instruction pointer (used by the exec gate)."""
    arg: int | str
    op: str
    value: int
    mask: int = U64

    def __str__(self) -> str:
        lhs = f"args[{self.arg}]" if self.arg != "ip" else "ip"
        if self.op == "&=":
            return f"{lhs} & 0x{self.mask:x} == 0x{self.value:x}"
        return f"{lhs} {self.op} 0x{self.value:x}" if self.value > 9 else f"{lhs} {self.op} {self.value}"


def _int(value, where: str) -> int:
    if isinstance(value, bool):
        raise UsageError(where, f"{value!r} is not an integer")
    if isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip(), 0)
        except ValueError:
            raise UsageError(where, f"{value!r} is not an integer") from None
    if number < 0:
        number &= U64        # -1 means all ones, as in C
    if number > U64:
        raise UsageError(where, f"{value!r} does not fit in 64 bits")
    return number


def cond(arg, op, value, mask=None, where: str = "args") -> Cond:
    """Validate one comparison: arg 0-5, a known operator, 64-bit values."""
    if not (isinstance(arg, int) and not isinstance(arg, bool) and 0 <= arg <= 5):
        raise UsageError(f"{where}.arg", f"{arg!r} is not an argument index (0-5)")
    canonical = OPS.get(str(op).lower())
    if canonical is None:
        raise UsageError(f"{where}.op", f"bad operator {op!r} (expected ==, !=, <, <=, >, >=, &=)")
    if canonical == "&=":
        if mask is None:
            raise UsageError(f"{where}.mask", "the &= operator needs a mask")
        mask = _int(mask, f"{where}.mask")
        # bits of value outside the mask can never match; libseccomp drops them the same way
        return Cond(arg, "&=", _int(value, f"{where}.value") & mask, mask)
    if mask is not None:
        raise UsageError(f"{where}.mask", f"a mask goes with &=, not {op}")
    return Cond(arg, canonical, _int(value, f"{where}.value"))


@dataclass(frozen=True)
class Rule:
    syscall: str
    action: Action
    conds: tuple = ()

    def __str__(self) -> str:
        text = f"{self.action} {self.syscall}"
        return text + (" if " + " and ".join(map(str, self.conds)) if self.conds else "")


@dataclass(frozen=True)
class Ruleset:
    """What a filter says, independent of its bytes: arch, default action, rules in order."""
    arch: str
    default: Action
    rules: tuple = ()
    flags: int = 0          # SECCOMP_FILTER_FLAG_* for the install

    def numbered(self) -> dict[int, list[tuple[tuple, Action]]]:
        """{syscall number: [(conds, action), ...]} in rule order."""
        out: dict[int, list] = {}
        for rule in self.rules:
            out.setdefault(syscalls.number(rule.syscall, self.arch), []).append((rule.conds, rule.action))
        return out

    def allows_unconditionally(self, name: str) -> bool:
        chain = [(r.conds, r.action) for r in self.rules if r.syscall == name]
        if not chain:
            return self.default == ALLOW
        return chain == [((), ALLOW)]

    def with_rules_first(self, rules) -> "Ruleset":
        return Ruleset(self.arch, self.default, tuple(rules) + self.rules, self.flags)


def build(rules, default, arch=None, flags: int = 0, where: str = "rules") -> Ruleset:
    """from_rules: [(action, syscall) | (action, syscall, conds) | Rule] + default -> Ruleset.
    Errors (UsageError naming the rule): bad action, unknown syscall, a duplicate rule (the same
    syscall and conditions twice, or any rule after an unconditional one for that syscall, which
    could never match)."""
    arch = syscalls.check_arch(arch)
    default = Action.parse(default, "default")
    out, seen = [], {}
    for i, item in enumerate(rules):
        here = f"{where}[{i}]"
        if isinstance(item, Rule):
            action, name, conds = item.action, item.syscall, item.conds
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            action, name = Action.parse(item[0], f"{here}.action"), item[1]
            conds = tuple(item[2]) if len(item) == 3 else ()
        else:
            raise UsageError(here, f"bad rule {item!r} (expected (action, syscall[, conditions]))")
        if not isinstance(name, str) or syscalls.number(name, arch) is None:
            raise UsageError(here, f"unknown syscall {name!r} on {arch}")
        if not all(isinstance(c, Cond) for c in conds):
            raise UsageError(here, "conditions must be built with seccomp.cond()")
        earlier = seen.setdefault(name, [])
        if any(not c for c in earlier) or tuple(conds) in earlier:
            raise UsageError(here, f"duplicate rule for {name}: an earlier rule already decides "
                                   f"every call this one matches")
        earlier.append(tuple(conds))
        out.append(Rule(name, action, tuple(conds)))
    return Ruleset(arch, default, tuple(out), flags)


def allow_list(names, default="kill_process", arch=None) -> Ruleset:
    """Only these syscalls; everything else gets `default` (kill_process: a contract)."""
    return build([(ALLOW, n) for n in _names(names, "allow")], default, arch, where="allow")


def deny_list(names, deny_action="errno(EPERM)", default="allow", arch=None) -> Ruleset:
    """Everything but these; they get `deny_action` (EPERM, Docker's shape)."""
    action = Action.parse(deny_action, "deny_action")
    return build([(action, n) for n in _names(names, "deny")], default, arch, where="deny")


def _names(names, where: str) -> list[str]:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise UsageError(where, "the list of syscalls is empty")
    return names


def to_rules(ruleset: Ruleset) -> tuple[list, Action]:
    """Inverse of build: ([(action, syscall[, conds])...], default)."""
    return ([(r.action, r.syscall, r.conds) if r.conds else (r.action, r.syscall)
             for r in ruleset.rules], ruleset.default)


@dataclass
class Builder:
    """The fluent form: Builder().allow("read").deny("ptrace").allow_if("socket", cond(0, "==", 1))
    .build(default="kill_process"). Validation happens at build(), as from_rules does."""
    rules: list = field(default_factory=list)

    def allow(self, syscall: str) -> "Builder":
        self.rules.append((ALLOW, syscall))
        return self

    def deny(self, syscall: str, errno="EPERM", action=None) -> "Builder":
        """errno(NAME) by default; `action` (kill_process, trap, ...) wins when given."""
        self.rules.append((action if action is not None else Action.errno(errno), syscall))
        return self

    def allow_if(self, syscall: str, *conds: Cond) -> "Builder":
        """Allow only when every condition holds, e.g. socket only for AF_UNIX."""
        self.rules.append((ALLOW, syscall, conds))
        return self

    def rule(self, action, syscall: str, *conds: Cond) -> "Builder":
        self.rules.append((action, syscall, conds))
        return self

    def build(self, default="kill_process", arch=None) -> Ruleset:
        return build(self.rules, default, arch, where="builder")
