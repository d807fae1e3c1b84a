"""seccomp: syscall filters built in Python and installed by the workload itself at the
checkpoint (seccomp(2), Documentation/userspace-api/seccomp_filter.rst).

The parent builds the cBPF bytes; the agent's child runs seccomp(SET_MODE_FILTER) on itself
last, right before execve (the kernel installs filters on the calling thread only).

The exec gate. A filter that does not allow execve would kill the agent's own execve of the
workload, which runs after the install: the seed's examples allow-list without execve and still
expect the workload to start. At the checkpoint linx therefore adds, for execve, write and
exit_group only (the agent's exec and its failure report), rules that allow them when the
instruction pointer lies in the parked child's executable file mappings (read from
/proc/PID/maps): the agent's code. execve replaces every mapping with the workload's, placed at
fresh random addresses, so the workload's own calls do not match and get the filter's verdict.
It relies on address randomization: with randomize_va_space=0 or ADDR_NO_RANDOMIZE linx refuses
rather than build a gate the workload could pass. A compiled BPF file is installed as written.
"""
from dataclasses import dataclass

from ..errors import LinxError, UsageError
from . import bpf, syscalls
from .compiler import compile_ruleset
from .rules import (ALLOW, Action, Builder, Cond, Rule, Ruleset, allow_list, build, cond,
                    deny_list, errno_number, to_rules)

__all__ = ["Action", "Builder", "Cond", "Rule", "Ruleset", "allow_list", "arch", "build",
           "builder", "compile_ruleset", "cond", "deny_list", "from_rules", "plan", "supported",
           "to_rules"]

GATED = ("execve", "write", "exit_group")
ADDR_NO_RANDOMIZE = 0x0040000           # <linux/personality.h>


def supported() -> bool:
    """True when /proc/self/status has a Seccomp: line (Linux >= 3.5)."""
    try:
        with open("/proc/self/status") as f:
            return "Seccomp:" in f.read()
    except OSError:
        return False


def arch() -> str | None:
    return syscalls.host_arch()


def builder() -> Builder:
    return Builder()


def from_rules(rules, default, arch=None) -> Ruleset:
    return build(rules, default, arch)


def exec_ranges(pid: int) -> list[tuple[int, int]]:
    """[start, end) of the executable file-backed mappings of a process, merged. The vsyscall
    page is left out: it sits at the same address in every process."""
    ranges = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                    lo, hi = (int(v, 16) for v in parts[0].split("-"))
                    if ranges and ranges[-1][1] == lo:
                        ranges[-1] = (ranges[-1][0], hi)
                    else:
                        ranges.append((lo, hi))
    except OSError as e:
        raise LinxError(f"seccomp: cannot read /proc/{pid}/maps for the exec gate: "
                        f"{e.strerror}") from None
    if not ranges:
        raise LinxError(f"seccomp: no executable mapping in /proc/{pid}/maps for the exec gate")
    return ranges


def _randomized(pid: int) -> bool:
    try:
        with open("/proc/sys/kernel/randomize_va_space") as f:
            if f.read().strip() == "0":
                return False
        with open(f"/proc/{pid}/personality") as f:
            return not int(f.read().strip(), 16) & ADDR_NO_RANDOMIZE
    except (OSError, ValueError):
        return True          # no way to tell; the kernel default randomizes


def with_exec_gate(ruleset: Ruleset, pid: int) -> Ruleset:
    """The ruleset plus the exec gate (module docstring) for the parked child `pid`, when the
    ruleset would not let the agent exec the workload; unchanged otherwise."""
    gated = [name for name in GATED if not ruleset.allows_unconditionally(name)]
    if "execve" not in gated:
        return ruleset
    if not _randomized(pid):
        raise LinxError("seccomp: the filter denies execve and address randomization is off "
                        "(kernel.randomize_va_space=0 or ADDR_NO_RANDOMIZE), so linx cannot tell "
                        "its own exec of the workload from the workload's: allow execve in the filter")
    gate = [Rule(name, ALLOW, (Cond("ip", ">=", lo), Cond("ip", "<", hi)))
            for name in gated for lo, hi in exec_ranges(pid)]
    return ruleset.with_rules_first(gate)


def record_settings(pid: int) -> dict:
    """The agent's settings to record what the parked child `pid` calls once it runs: a filter
    notifying every syscall made outside the child's current code (the agent's own calls up to
    execve run), and seccomp_notify, so the agent takes the listener and reports each syscall."""
    from .compiler import compile_catch_all
    if not _randomized(pid):
        raise LinxError("seccomp: recording tells the agent's calls from the workload's by "
                        "address, and address randomization is off")
    arch_name = syscalls.check_arch(None, "seccomp record")
    data = compile_catch_all(arch_name, exec_ranges(pid), Action(bpf.RET_USER_NOTIF))
    return {"seccomp": data, "seccomp_notify": 1}


def recorded(events, arch: str | None = None) -> set[str]:
    """The syscall names in a session's `syscall` events for the native arch (numbers the table
    does not name are kept as their number), plus execve: the workload was exec'd (by the
    agent, whose calls are not recorded), so a profile that is to start it must allow it."""
    arch = arch or syscalls.check_arch(None, "seccomp record")
    audit = syscalls.AUDIT_ARCH[arch]
    names = {"execve"}
    for ev in events:
        if ev.get("event") == "syscall" and ev["arch"] == audit:
            names.add(syscalls.name(ev["nr"], arch) or str(ev["nr"]))
    return names


@dataclass(frozen=True)
class Plan:
    """What `linx run --seccomp*` asked for, validated before anything runs; resolved into the
    agent's `seccomp` / `seccomp_flags` settings at the checkpoint."""
    kind: str                    # "rules", "docker", "bpf"
    value: object                # Ruleset; (path, parsed doc) for docker; bytes for bpf
    no_new_privs: bool

    def ruleset(self, caps: set[str]) -> Ruleset:
        """A Docker profile is resolved against the caps the workload keeps (CAP_* names of its
        bounding set), as moby does for includes/excludes caps."""
        if self.kind != "docker":
            return self.value
        from . import profile
        path, doc = self.value
        return profile.from_docker(doc, caps=caps, where=f"{path}:")[0]

    def settings(self, pid: int, caps: set[str], sys_admin: bool) -> dict:
        """-> {"seccomp": bytes, "seccomp_flags": int} for the child parked as `pid`. `caps`: the
        CAP_* names it keeps; `sys_admin`: whether CAP_SYS_ADMIN is in its effective set when
        the agent installs the filter. Without no_new_privs the kernel wants that cap
        (seccomp(2) EACCES): LinxError rather than a failed install."""
        if not self.no_new_privs and not sys_admin:
            raise LinxError("seccomp: installing a filter without --no-new-privs needs "
                            "CAP_SYS_ADMIN, which the workload will not have; add --no-new-privs")
        if self.kind == "bpf":
            return {"seccomp": self.value}
        ruleset = with_exec_gate(self.ruleset(caps), pid)
        return {"seccomp": compile_ruleset(ruleset), "seccomp_flags": ruleset.flags or None}


def plan(file: str | None = None, allow=None, deny=None, errno=None,
         no_new_privs: bool = False) -> Plan | None:
    """Validate `--seccomp FILE`, `--seccomp-allow LIST`, `--seccomp-deny LIST`,
    `--seccomp-errno NAME` (no syscall, no spawn). Allow and deny together make one filter:
    the allowed syscalls run, the denied fail with the errno, everything else is killed."""
    if file is None and allow is None and deny is None:
        if errno is not None:
            raise UsageError("--seccomp-errno", "goes with --seccomp-deny")
        return None
    if file is not None and (allow is not None or deny is not None):
        raise UsageError("--seccomp", "a filter file cannot be combined with "
                                      "--seccomp-allow/--seccomp-deny")
    if errno is not None and deny is None:
        raise UsageError("--seccomp-errno", "goes with --seccomp-deny")
    if file is not None:
        import json
        from . import profile
        kind, value, _ = profile.load(file)
        if kind == "docker":
            with open(file, "rb") as f:
                value = (file, json.loads(f.read()))
        return Plan(kind, value, no_new_privs)
    deny_action = Action.errno(errno if errno is not None else "EPERM", "--seccomp-errno")
    host = syscalls.check_arch(None, "--seccomp")
    allowed = _list(allow, "--seccomp-allow", host)
    denied = _list(deny, "--seccomp-deny", host)
    both = sorted(set(allowed) & set(denied))
    if both:
        raise UsageError("--seccomp-deny", f"{', '.join(both)} also in --seccomp-allow")
    rules = [(ALLOW, n) for n in allowed] + [(deny_action, n) for n in denied]
    return Plan("rules", build(rules, "kill_process" if allow is not None else "allow"), no_new_privs)


def _list(text, where: str, arch: str) -> list[str]:
    """A comma list of syscall names (or numbers the table names) -> names; unknown: UsageError."""
    if text is None:
        return []
    items = [n.strip() for n in text.split(",") if n.strip()] if isinstance(text, str) else list(text)
    if not items:
        raise UsageError(where, "the list of syscalls is empty")
    out = []
    for item in items:
        name = syscalls.name(syscalls.resolve(item, arch, where), arch)
        if name is None:
            raise UsageError(where, f"syscall number {item} has no name on {arch}")
        out.append(name)
    return out
