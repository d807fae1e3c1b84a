"""Filter files: linx's own spec (JSON or TOML), the Docker/OCI seccomp profile, compiled BPF.

linx spec (every name must exist on the arch; errors name the key path):
    {"default": "kill_process", "arch": "x86_64", "flags": ["log"],
     "rules": [{"action": "allow", "syscalls": ["read", "write"]},
               {"action": "errno(EPERM)", "syscalls": ["mkdir"]},
               {"action": "allow", "syscalls": ["socket"], "args": [{"arg": 0, "op": "==", "value": 1}]}]}

Docker profile (moby profiles/seccomp/default.json, the OCI runtime-spec's linux.seccomp): resolved
for one arch and one capability set the way moby and runc do it: `includes`/`excludes` by arches,
caps (all listed caps present / any present) and minKernel; `names` (or the old `name`);
`errnoRet`, `defaultErrnoRet`; names the arch has no number for are skipped (runc ignores them);
args on distinct indexes are ANDed, several on the same index become one rule each (runc's
"multiple args" rule). archMap/architectures only say which ABIs to admit: linx filters are
single-arch, so 32-bit compat and x32 calls get the arch check's kill_process.
"""
import json
import os

from ..errors import UsageError
from . import bpf, syscalls
from .rules import Action, Cond, Rule, Ruleset, build, cond

FLAGS = {"tsync": 1, "log": 2, "spec_allow": 4}    # SECCOMP_FILTER_FLAG_* the spec may ask for
_DOCKER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_DOCKER_OPS = {"SCMP_CMP_NE": "!=", "SCMP_CMP_LT": "<", "SCMP_CMP_LE": "<=", "SCMP_CMP_EQ": "==",
               "SCMP_CMP_GE": ">=", "SCMP_CMP_GT": ">", "SCMP_CMP_MASKED_EQ": "&="}
_DOCKER_ARCH = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "aarch64")}
_SCMP_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


# -- linx spec -----------------------------------------------------------------------------

def _key(where: str, sub: str) -> str:
    """A key path under `where`: `seccomp.rules[0]`, or `file.json: rules[0]` for a file."""
    return f"{where} {sub}" if where.endswith(":") else f"{where}.{sub}"


def _expect(cond_ok: bool, where: str, text: str) -> None:
    if not cond_ok:
        raise UsageError(where, text)


def from_spec(doc, where: str = "seccomp", arch=None) -> Ruleset:
    """A parsed linx spec (dict) -> Ruleset. `arch` overrides the spec's (for compile --arch)."""
    _expect(isinstance(doc, dict), where.rstrip(":"), "expected a table with default and rules")
    unknown = set(doc) - {"default", "arch", "flags", "rules"}
    _expect(not unknown, _key(where, min(unknown) if unknown else ""),
            "unknown key (expected default, arch, flags, rules)")
    _expect("default" in doc, _key(where, "default"), "missing (the action for syscalls no rule names)")
    flags = 0
    for i, flag in enumerate(doc.get("flags", [])):
        _expect(flag in FLAGS, _key(where, f"flags[{i}]"), f"unknown flag {flag!r} (expected {', '.join(FLAGS)})")
        flags |= FLAGS[flag]
    rules_doc = doc.get("rules", [])
    _expect(isinstance(rules_doc, list), _key(where, "rules"), "expected a list of rules")
    rules = []
    for i, rd in enumerate(rules_doc):
        here = _key(where, f"rules[{i}]")
        _expect(isinstance(rd, dict), here, "expected a table with action and syscalls")
        unknown = set(rd) - {"action", "syscalls", "syscall", "args", "comment"}
        _expect(not unknown, f"{here}.{min(unknown) if unknown else ''}",
                "unknown key (expected action, syscalls, args, comment)")
        _expect("action" in rd, f"{here}.action", "missing")
        action = Action.parse(rd["action"], f"{here}.action")
        names = rd.get("syscalls", [rd["syscall"]] if "syscall" in rd else None)
        _expect(isinstance(names, list) and names and all(isinstance(n, str) for n in names),
                f"{here}.syscalls", "expected a non-empty list of syscall names")
        conds = []
        for j, ad in enumerate(rd.get("args", [])):
            there = f"{here}.args[{j}]"
            _expect(isinstance(ad, dict) and {"arg", "op", "value"} <= set(ad)
                    and set(ad) <= {"arg", "op", "value", "mask"}, there,
                    "expected {arg, op, value[, mask]}")
            conds.append(cond(ad["arg"], ad["op"], ad["value"], ad.get("mask"), there))
        rules += [(action, name, tuple(conds)) for name in names]
    return build(rules, Action.parse(doc["default"], _key(where, "default")),
                 arch or doc.get("arch"), flags, where=_key(where, "rules"))


def to_spec(ruleset: Ruleset) -> dict:
    """Ruleset -> linx spec. Conditional rules first, in order; then one entry per action for
    the unconditional ones (a syscall's unconditional rule is always its last, so its place
    relative to its own conditional rules is kept)."""
    out, grouped = [], {}
    for r in ruleset.rules:
        if r.conds:
            args = [{"arg": c.arg, "op": c.op, "value": c.value} | ({"mask": c.mask} if c.op == "&=" else {})
                    for c in r.conds]
            out.append({"action": str(r.action), "syscalls": [r.syscall], "args": args})
        else:
            grouped.setdefault(str(r.action), []).append(r.syscall)
    out += [{"action": a, "syscalls": names} for a, names in grouped.items()]
    doc = {"arch": ruleset.arch, "default": str(ruleset.default), "rules": out}
    flags = [name for name, bit in FLAGS.items() if ruleset.flags & bit]
    return doc | ({"flags": flags} if flags else {})


# -- Docker / OCI -----------------------------------------------------------------------------

def _docker_action(name, errno_ret, where: str) -> Action:
    table = {"SCMP_ACT_ALLOW": bpf.RET_ALLOW, "SCMP_ACT_KILL": bpf.RET_KILL_THREAD,
             "SCMP_ACT_KILL_THREAD": bpf.RET_KILL_THREAD, "SCMP_ACT_KILL_PROCESS": bpf.RET_KILL_PROCESS,
             "SCMP_ACT_TRAP": bpf.RET_TRAP, "SCMP_ACT_LOG": bpf.RET_LOG,
             "SCMP_ACT_ERRNO": bpf.RET_ERRNO, "SCMP_ACT_TRACE": bpf.RET_TRACE}
    if name not in table:
        raise UsageError(where, f"unknown action {name!r} (expected one of {', '.join(table)}; "
                                f"SCMP_ACT_NOTIFY needs a listener linx does not run)")
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        data = 1 if errno_ret is None else errno_ret          # libseccomp's default: EPERM
        _expect(isinstance(data, int) and 0 <= data <= 0xFFFF, where + ".errnoRet",
                f"{errno_ret!r} is not a number 0-65535")
        return Action(table[name] | data)
    return Action(table[name])


def _kernel_at_least(text: str, kernel: tuple) -> bool:
    try:
        want = tuple(int(p) for p in str(text).split(".")[:2])
    except ValueError:
        return False
    return kernel >= want


def _applies(entry: dict, arch: str, caps: set, kernel: tuple, where: str) -> bool:
    """moby's filter: includes need every listed cap and one listed arch; excludes drop the rule
    when any listed cap or arch matches."""
    arch_names = _DOCKER_ARCH[arch]
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    for key, val in (("includes", inc), ("excludes", exc)):
        _expect(isinstance(val, dict), f"{where}.{key}", "expected an object")
    if inc.get("arches") and not set(inc["arches"]) & set(arch_names):
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel):
        return False
    if exc.get("arches") and set(exc["arches"]) & set(arch_names):
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"], kernel):
        return False
    return True


def _docker_conds(args, where: str) -> list[tuple]:
    """OCI args -> alternatives (each a tuple of Conds, ANDed). Several comparisons on the same
    index are runc's 'multiple args' case: one rule per comparison (OR)."""
    if not args:
        return [()]
    _expect(isinstance(args, list), f"{where}.args", "expected a list")
    conds = []
    for j, a in enumerate(args):
        there = f"{where}.args[{j}]"
        _expect(isinstance(a, dict) and "index" in a and "op" in a, there,
                "expected {index, value, valueTwo, op}")
        _expect(a["op"] in _DOCKER_OPS, f"{there}.op",
                f"unknown operator {a['op']!r} (expected {', '.join(_DOCKER_OPS)})")
        op = _DOCKER_OPS[a["op"]]
        if op == "&=":     # OCI: (arg & value) == valueTwo
            conds.append(cond(a["index"], op, a.get("valueTwo", 0), a.get("value", 0), there))
        else:
            conds.append(cond(a["index"], op, a.get("value", 0), None, there))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) != len(indexes):
        return [(c,) for c in conds]
    return [tuple(conds)]


def from_docker(doc, arch=None, caps=frozenset(), kernel=None, where: str = "profile") -> tuple[Ruleset, list[str]]:
    """A parsed Docker profile -> (Ruleset, names skipped because `arch` has no such syscall).

    caps: the capability names (CAP_SYS_ADMIN, ...) the workload keeps, for includes/excludes.
    A syscall named by several entries: identical rules merge; an unconditional rule makes the
    conditional ones with its action redundant and goes last; two unconditional rules with
    different actions are a conflict (UsageError naming the syscall)."""
    arch = syscalls.check_arch(arch, _key(where, "arch"))
    _expect(isinstance(doc, dict) and "defaultAction" in doc, where.rstrip(":"),
            "not a Docker seccomp profile (no defaultAction)")
    kernel = kernel or tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2])
    caps = {c.upper() for c in caps}
    default = _docker_action(doc["defaultAction"], doc.get("defaultErrnoRet"), _key(where, "defaultAction"))
    flags = 0
    for i, flag in enumerate(doc.get("flags") or []):
        _expect(flag in _DOCKER_FLAGS, _key(where, f"flags[{i}]"), f"unknown flag {flag!r}")
        flags |= _DOCKER_FLAGS[flag]
    entries = doc.get("syscalls") or []
    _expect(isinstance(entries, list), _key(where, "syscalls"), "expected a list")
    chains: dict[str, list] = {}
    skipped = []
    for i, entry in enumerate(entries):
        here = _key(where, f"syscalls[{i}]")
        _expect(isinstance(entry, dict), here, "expected an object")
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else None)
        _expect(isinstance(names, list) and all(isinstance(n, str) for n in names), f"{here}.names",
                "expected a list of syscall names")
        _expect("action" in entry, f"{here}.action", "missing")
        action = _docker_action(entry["action"], entry.get("errnoRet"), f"{here}.action")
        alternatives = _docker_conds(entry.get("args"), here)
        if not _applies(entry, arch, caps, kernel, here):
            continue
        for name in names:
            if syscalls.number(name, arch) is None:
                if name not in skipped:
                    skipped.append(name)
                continue
            for conds in alternatives:
                chain = chains.setdefault(name, [])
                if (conds, action) not in chain:
                    chain.append((conds, action))
    rules = []
    for name, chain in chains.items():
        final = [a for c, a in chain if not c]
        if len(set(final)) > 1:
            raise UsageError(_key(where, name), "conflicting actions for the same syscall: "
                                                 + ", ".join(map(str, dict.fromkeys(final))))
        for conds, action in chain:
            if conds and not (final and action == final[0]):
                rules.append(Rule(name, action, conds))
        if final:
            rules.append(Rule(name, final[0]))
    return build(rules, default, arch, flags, where=_key(where, "syscalls")), skipped


def to_docker(names, arch: str, default: Action = Action(bpf.RET_KILL_PROCESS)) -> dict:
    """An allow-list in the Docker format (what `linx seccomp record` writes)."""
    kind = default.value & bpf.RET_ACTION_FULL
    docker = {bpf.RET_KILL_PROCESS: "SCMP_ACT_KILL_PROCESS", bpf.RET_KILL_THREAD: "SCMP_ACT_KILL_THREAD",
              bpf.RET_TRAP: "SCMP_ACT_TRAP", bpf.RET_LOG: "SCMP_ACT_LOG", bpf.RET_ERRNO: "SCMP_ACT_ERRNO"}
    if kind not in docker or (kind == bpf.RET_TRAP and default.value & bpf.RET_DATA):
        raise UsageError("--default", f"{default} has no Docker profile spelling (expected "
                                      f"kill_process, kill_thread, trap, log or errno(N))")
    doc = {"defaultAction": docker[kind]}
    if kind == bpf.RET_ERRNO:
        doc["defaultErrnoRet"] = default.value & bpf.RET_DATA
    return doc | {"architectures": [_SCMP_ARCH[arch]],
                  "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}


# -- files ------------------------------------------------------------------------------------

def load(path: str, arch=None, caps=frozenset()) -> tuple[str, object, list]:
    """Read a filter file: -> (kind, value, notes) with kind "spec"/"docker" (value a Ruleset)
    or "bpf" (value the raw program bytes). TOML by .toml suffix, JSON when the text starts
    with '{', otherwise compiled BPF as `linx seccomp compile` writes it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(path, f"cannot read: {os.strerror(e.errno)}") from None
    if path.endswith(".toml"):
        import tomllib
        try:
            doc = tomllib.loads(data.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise UsageError(path, f"not valid TOML: {e}") from None
        return "spec", from_spec(doc, f"{path}:", arch), []
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(path, f"not valid JSON: {e}") from None
        if isinstance(doc, dict) and "defaultAction" in doc:
            ruleset, skipped = from_docker(doc, arch, caps, where=f"{path}:")
            return "docker", ruleset, skipped
        return "spec", from_spec(doc, f"{path}:", arch), []
    try:
        program = bpf.decode(data)
    except ValueError as e:
        raise UsageError(path, f"not a seccomp spec (JSON/TOML), Docker profile or compiled "
                               f"BPF: {e}") from None
    if len(program) > bpf.MAXINSNS or program[-1][0] & 0x07 not in (bpf.RET, bpf.JMP):
        raise UsageError(path, "not a seccomp spec (JSON/TOML), Docker profile or compiled BPF")
    return "bpf", data, []
