"""The rules model and the compiler, pure: validation errors, the program's shape and limits,
and random rulesets whose compiled program must agree with the model's own semantics
(first matching rule per syscall, else the default)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linx_core.errors import UsageError
from linx_core.seccomp import bpf, compile_ruleset, listing, rules, syscalls, with_exec_gate
from linx_core.seccomp.compiler import FilterTooLong
from linx_core.seccomp.rules import ALLOW, Action, Cond, Rule, cond

U64 = (1 << 64) - 1
X86 = syscalls.AUDIT_ARCH["x86_64"]


def program(ruleset):
    return bpf.decode(compile_ruleset(ruleset))


def model(ruleset, nr, args, ip=0):
    """What the ruleset means, written straight from the docstring of rules.py."""
    if ruleset.arch == "x86_64" and syscalls.X32_SYSCALL_BIT <= nr < 0xFFFFFFFF:
        return bpf.RET_KILL_PROCESS
    name = syscalls.name(nr, ruleset.arch)
    for r in ruleset.rules:
        if r.syscall != name:
            continue
        if all(_holds(c, args, ip) for c in r.conds):
            return r.action.value
    return ruleset.default.value


def _holds(c, args, ip):
    v = ip if c.arg == "ip" else args[c.arg]
    return {"==": v == c.value, "!=": v != c.value, "<": v < c.value, "<=": v <= c.value,
            ">": v > c.value, ">=": v >= c.value, "&=": v & c.mask == c.value}[c.op]


def test_errors_name_what_is_wrong():
    with pytest.raises(UsageError, match=r"allow\[1\]: unknown syscall 'not_a_real_syscall'"):
        rules.allow_list(["read", "not_a_real_syscall"], arch="x86_64")
    with pytest.raises(UsageError, match="default: bad action 'not_an_action'"):
        rules.allow_list(["read"], default="not_an_action", arch="x86_64")
    with pytest.raises(UsageError, match=r"allow\[1\]: duplicate rule for read"):
        rules.allow_list(["read", "read"], arch="x86_64")
    with pytest.raises(UsageError, match=r"rules\[0\]: bad rule 'read'"):
        rules.build(["read"], "allow", "x86_64")
    with pytest.raises(UsageError, match="duplicate rule for socket"):     # shadowed: never matches
        rules.build([(ALLOW, "socket"), (ALLOW, "socket", (cond(0, "==", 1),))], "kill", "x86_64")
    with pytest.raises(UsageError, match="unknown errno 'EBOGUS'"):
        Action.parse("errno(EBOGUS)")
    with pytest.raises(UsageError, match="out of range"):
        Action.parse("errno(5000)")
    with pytest.raises(UsageError, match="argument index"):
        cond(6, "==", 1)
    with pytest.raises(UsageError, match="bad operator"):
        cond(0, "=~", 1)
    with pytest.raises(UsageError, match="needs a mask"):
        cond(0, "&=", 1)


def test_actions_round_trip():
    for text in ("allow", "kill_process", "kill_thread", "trap", "log", "trace", "errno(EPERM)",
                 "errno(ENOSYS)", "trace(3)", "trap(9)"):
        assert str(Action.parse(text)) == text
    assert Action.parse("errno(13)") == Action.parse("ERRNO(eacces)")
    assert Action.parse("kill") == Action.parse("kill_process")


def test_builder_and_to_rules():
    b = rules.Builder().allow("read").allow("write").deny("ptrace", errno="EACCES") \
        .deny("kexec_load", action="kill_process").allow_if("socket", cond(0, "==", 1))
    rs = b.build(default="allow", arch="aarch64")
    back, default = rules.to_rules(rs)
    assert default == ALLOW and back[2] == (Action.parse("errno(EACCES)"), "ptrace")
    assert rules.build(back, default, "aarch64") == rs


def test_shape_arch_check_and_x32():
    p = program(rules.deny_list(["mkdir"], arch="x86_64"))
    assert p[0] == (bpf.LD | bpf.W | bpf.ABS, 0, 0, bpf.DATA_ARCH)
    assert bpf.run(p, 83, X86)[0] == bpf.RET_ERRNO | 1
    assert bpf.run(p, 83, syscalls.AUDIT_ARCH["aarch64"])[0] == bpf.RET_KILL_PROCESS
    assert bpf.run(p, 83 | syscalls.X32_SYSCALL_BIT, X86)[0] == bpf.RET_KILL_PROCESS
    assert bpf.run(p, 0xFFFFFFFF, X86)[0] == bpf.RET_ALLOW      # -1: a tracer's skipped call


def test_binary_search_depth():
    """An allow-list of 100 scattered syscalls is decided in ~log2(intervals) jumps."""
    names = sorted(syscalls.table("x86_64"))[::4][:100]
    rs = rules.allow_list(names, arch="x86_64")
    p = program(rs)
    worst = max(bpf.run(p, nr, X86)[1] for nr in syscalls.table("x86_64").values())
    assert worst <= 3 + 9 + 1          # arch check + load, tree depth, ret


def test_kernel_limit_is_the_only_limit():
    many = [(rules.Action.parse("errno(EPERM)"), n, (cond(0, "==", i), cond(1, "==", i)))
            for n in list(syscalls.table("x86_64"))[:60] for i in range(40)]
    with pytest.raises(FilterTooLong, match=r"needs \d+ BPF instructions; the kernel's limit is 4096"):
        compile_ruleset(rules.build(many, "allow", "x86_64"))
    fits = rules.build(many[:300], "allow", "x86_64")
    assert 255 < len(program(fits)) <= bpf.MAXINSNS


def test_listing_names_syscalls_and_fields():
    rs = rules.Builder().allow("read").allow_if("socket", cond(0, "==", 1)).build(arch="x86_64")
    text = "\n".join(listing.disasm(program(rs)))
    assert "arch == x86_64" in text and "(socket)" in text and "args[0].lo" in text
    summary = listing.summary(program(rs))
    assert summary == {"arch": "x86_64", "instructions": len(program(rs)), "default": "kill_process",
                       "actions": {"allow": ["read"]}, "by_arguments": ["socket"]}


def test_exec_gate_rules(monkeypatch, tmp_path):
    """execve/write/exit_group allowed from the parked child's code only; others untouched."""
    import linx_core.seccomp as sc
    monkeypatch.setattr(sc, "exec_ranges", lambda pid: [(0x7F0000000000, 0x7F0000200000)])
    monkeypatch.setattr(sc, "_randomized", lambda pid: True)
    rs = rules.allow_list(["read", "write"], arch="x86_64")
    p = program(with_exec_gate(rs, 1))
    execve = syscalls.number("execve", "x86_64")
    assert bpf.run(p, execve, X86, ip=0x7F0000001234)[0] == bpf.RET_ALLOW
    assert bpf.run(p, execve, X86, ip=0x7F0000200000)[0] == bpf.RET_KILL_PROCESS
    assert bpf.run(p, execve, X86, ip=0x5555_0000_0000)[0] == bpf.RET_KILL_PROCESS
    assert bpf.run(p, 231, X86, ip=0x7F0000000010)[0] == bpf.RET_ALLOW          # exit_group
    assert bpf.run(p, 231, X86, ip=0x10)[0] == bpf.RET_KILL_PROCESS
    assert bpf.run(p, 1, X86, ip=0x10)[0] == bpf.RET_ALLOW                      # write: listed
    assert with_exec_gate(rules.deny_list(["mkdir"], arch="x86_64"), 1).rules[0].syscall == "mkdir"
    monkeypatch.setattr(sc, "_randomized", lambda pid: False)
    with pytest.raises(Exception, match="address randomization is off"):
        with_exec_gate(rs, 1)


NAMES = ["read", "write", "socket", "mmap", "prctl", "kill", "clone", "openat", "execve", "ioctl",
         "futex", "listns", "exit_group", "getpid"]
VALUES = [0, 1, 2, 7, 0xFFFFFFFF, 1 << 32, (1 << 32) + 7, U64]
ACTIONS = ["allow", "errno(EPERM)", "errno(EACCES)", "kill_process", "trap", "log", "trace(2)"]

@st.composite
def rulesets(draw):
    arch = draw(st.sampled_from(["x86_64", "aarch64"]))
    out = []
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=8)):
        for _ in range(draw(st.integers(1, 3))):
            cs = tuple(draw(st.lists(st.builds(lambda a, op, v, m: _cond(a, op, v, m),
                                               st.integers(0, 5), st.sampled_from(list("=!<>&") + ["<=", ">="]),
                                               st.sampled_from(VALUES), st.sampled_from(VALUES)),
                                     min_size=1, max_size=3)))
            out.append(Rule(name, Action.parse(draw(st.sampled_from(ACTIONS))), cs))
        if draw(st.booleans()):
            out.append(Rule(name, Action.parse(draw(st.sampled_from(ACTIONS)))))
    out = list({(r.syscall, r.conds): r for r in out}.values())
    return rules.build(out, draw(st.sampled_from(ACTIONS)), arch)


def _cond(arg, op, value, mask):
    op = {"=": "==", "!": "!=", "&": "&="}.get(op, op)
    if op == "&=":
        return cond(arg, op, value, mask)
    return cond(arg, op, value)


@settings(max_examples=80, deadline=None)
@given(rulesets(), st.lists(st.tuples(*[st.sampled_from(VALUES)] * 6), min_size=4, max_size=8))
def test_compiled_program_means_what_the_rules_say(rs, samples):
    p = program(rs)
    audit = syscalls.AUDIT_ARCH[rs.arch]
    for name in NAMES:
        nr = syscalls.number(name, rs.arch)
        for args in samples:
            assert bpf.run(p, nr, audit, args)[0] == model(rs, nr, args), (name, args, [str(r) for r in rs.rules])


def test_record_filter_shape():
    """Calls from the given code ranges run; every other call is notified; other arches die."""
    from linx_core.seccomp.compiler import compile_catch_all
    p = bpf.decode(compile_catch_all("x86_64", [(0x1000, 0x2000), (0x7F00_0000_0000, 0x7F00_0010_0000)],
                                     Action(bpf.RET_USER_NOTIF)))
    for nr, ip, want in ((59, 0x1800, bpf.RET_ALLOW), (1, 0x7F00_0000_0001, bpf.RET_ALLOW),
                         (1, 0x2000, bpf.RET_USER_NOTIF), (500, 0x5555_0000_0000, bpf.RET_USER_NOTIF),
                         (0xFFFFFFFF, 0, bpf.RET_USER_NOTIF)):
        assert bpf.run(p, nr, X86, ip=ip)[0] == want
    assert bpf.run(p, 1, syscalls.AUDIT_ARCH["aarch64"], ip=0x1800)[0] == bpf.RET_KILL_PROCESS


def test_recorded_names():
    from linx_core.seccomp import recorded
    events = [{"event": "syscall", "nr": 0, "arch": X86}, {"event": "syscall", "nr": 1, "arch": 0x40000003},
              {"event": "running"}, {"event": "syscall", "nr": 999, "arch": X86}]
    assert recorded(events, "x86_64") == {"execve", "read", "999"}
