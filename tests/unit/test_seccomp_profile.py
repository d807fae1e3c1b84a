"""Filter files: the linx spec (JSON/TOML) with key-path errors, the Docker profile resolved the
way moby/runc resolve it, the spec written back, and file-kind detection."""
import json
import os

import pytest

from linx_core.errors import UsageError
from linx_core.seccomp import bpf, compile_ruleset, profile, rules
from linx_core.seccomp.rules import ALLOW, Action, cond

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seccomp")
SPEC = {"default": "kill_process", "arch": "x86_64", "flags": ["log"],
        "rules": [{"action": "allow", "syscalls": ["read", "write"]},
                  {"action": "errno(EPERM)", "syscalls": ["mkdir"]},
                  {"action": "allow", "syscalls": ["socket"],
                   "args": [{"arg": 0, "op": "==", "value": 1}]},
                  {"action": "allow", "syscalls": ["clone"],
                   "args": [{"arg": 0, "op": "&=", "mask": "0x7E020000", "value": 0}]}]}


def test_spec_loads():
    rs = profile.from_spec(SPEC)
    assert rs.default == Action.parse("kill_process") and rs.flags == 2
    assert [str(r) for r in rs.rules] == ["allow read", "allow write", "errno(EPERM) mkdir",
                                         "allow socket if args[0] == 1",
                                         "allow clone if args[0] & 0x7e020000 == 0x0"]


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.pop("default"), "seccomp.default: missing"),
    (lambda d: d.update(bogus=1), "seccomp.bogus: unknown key"),
    (lambda d: d["rules"][1].update(action="deny"), r"seccomp.rules\[1\].action: bad action 'deny'"),
    (lambda d: d["rules"][0]["syscalls"].append("not_a_syscall"), "unknown syscall 'not_a_syscall'"),
    (lambda d: d["rules"][0]["syscalls"].append("read"), "duplicate rule for read"),
    (lambda d: d["rules"][2]["args"][0].update(op="~"), r"seccomp.rules\[2\].args\[0\].op: bad operator"),
    (lambda d: d["rules"][2]["args"][0].update(value="x1"), r"args\[0\].value: 'x1' is not an integer"),
    (lambda d: d["rules"][0].update(syscalls=[]), r"rules\[0\].syscalls: expected a non-empty list"),
    (lambda d: d.update(flags=["nope"]), r"flags\[0\]: unknown flag"),
])
def test_spec_errors_name_the_key(mutate, where):
    doc = json.loads(json.dumps(SPEC))
    mutate(doc)
    with pytest.raises(UsageError, match=where):
        profile.from_spec(doc)


def test_spec_round_trip():
    """Grouped by action on the way out, but every syscall keeps its chain in order."""
    rs = profile.from_spec(SPEC)
    back = profile.from_spec(profile.to_spec(rs))
    assert back.numbered() == rs.numbered() and (back.default, back.flags) == (rs.default, rs.flags)
    docker, _ = _docker({"CAP_SYS_PTRACE"})
    assert profile.from_spec(profile.to_spec(docker)).numbered() == docker.numbered()


def test_toml_and_file_kinds(tmp_path):
    toml = tmp_path / "f.toml"
    toml.write_text('default = "allow"\n[[rules]]\naction = "errno(EPERM)"\nsyscalls = ["mkdir"]\n')
    kind, rs, _ = profile.load(str(toml), arch="x86_64")
    assert kind == "spec" and str(rs.rules[0]) == "errno(EPERM) mkdir"
    compiled = tmp_path / "f.bpf"
    compiled.write_bytes(compile_ruleset(rs))
    assert profile.load(str(compiled))[0] == "bpf"
    bad = tmp_path / "bad.json"
    bad.write_text('{"default": "allow", ')
    with pytest.raises(UsageError, match="bad.json: not valid JSON"):
        profile.load(str(bad))
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    with pytest.raises(UsageError, match="junk: not a seccomp spec"):
        profile.load(str(junk))
    with pytest.raises(UsageError, match="cannot read"):
        profile.load(str(tmp_path / "missing.json"))


def _docker(caps=(), arch="x86_64", kernel=(6, 18)):
    with open(os.path.join(DATA, "docker-default.json")) as f:
        return profile.from_docker(json.load(f), arch, caps, kernel)


def _chain(rs, name):
    return [(tuple(map(str, r.conds)), str(r.action)) for r in rs.rules if r.syscall == name]


def test_docker_default_without_caps():
    rs, skipped = _docker()
    assert str(rs.default) == "errno(EPERM)"
    assert _chain(rs, "read") == [((), "allow")]
    assert _chain(rs, "clone3") == [((), "errno(ENOSYS)")]                  # errnoRet 38
    assert _chain(rs, "clone") == [(("args[0] & 0x7e020000 == 0x0",), "allow")]  # valueTwo 0
    assert _chain(rs, "socket") == [(("args[0] != 0x28",), "allow")]
    assert len(_chain(rs, "personality")) == 5                            # one rule per value
    assert _chain(rs, "mount") == [] and _chain(rs, "reboot") == []        # caps not kept
    assert _chain(rs, "arch_prctl") == [((), "allow")]                     # includes arches amd64
    assert _chain(rs, "ptrace") == [((), "allow")]                         # minKernel 4.8
    assert "chown32" in skipped and "_llseek" in skipped and "read" not in skipped


def test_docker_default_with_sys_admin():
    rs, _ = _docker({"CAP_SYS_ADMIN"})
    assert _chain(rs, "clone") == [((), "allow")]       # excludes drop the masked rule
    assert _chain(rs, "clone3") == [((), "allow")]
    assert _chain(rs, "mount") == [((), "allow")]


def test_docker_arches_and_kernel():
    rs, _ = _docker(arch="aarch64", kernel=(4, 4))
    assert _chain(rs, "arch_prctl") == [] and _chain(rs, "ptrace") == []
    assert rs.arch == "aarch64" and _chain(rs, "openat") == [((), "allow")]


def test_docker_multiple_args_on_one_index_are_ored():
    doc = {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}
    rs, _ = profile.from_docker(doc, "x86_64")
    assert _chain(rs, "prctl") == [(("args[0] == 1",), "allow"), (("args[0] == 2",), "allow")]
    assert _chain(rs, "kill") == [(("args[0] == 1", "args[1] == 9"), "errno(EPERM)")]


def test_docker_errors():
    with pytest.raises(UsageError, match=r"p.syscalls\[0\].action: unknown action 'SCMP_ACT_NOTIFY'"):
        profile.from_docker({"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}, "x86_64", where="p")
    with pytest.raises(UsageError, match="p.mkdir: conflicting actions"):
        profile.from_docker({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]}, "x86_64", where="p")
    with pytest.raises(UsageError, match=r"p.syscalls\[0\].args\[0\].op: unknown operator"):
        profile.from_docker({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "EQ"}]}]},
            "x86_64", where="p")
    with pytest.raises(UsageError, match="no defaultAction"):
        profile.from_docker({"syscalls": []}, "x86_64")


def test_to_docker_is_an_allow_list_the_importer_reads():
    doc = profile.to_docker({"write", "read", "exit_group"}, "x86_64")
    rs, skipped = profile.from_docker(doc, "x86_64")
    assert not skipped and str(rs.default) == "kill_process"
    assert sorted(r.syscall for r in rs.rules) == ["exit_group", "read", "write"]
    prog = bpf.decode(compile_ruleset(rs))
    assert bpf.run(prog, 0, 0xC000003E)[0] == bpf.RET_ALLOW
    assert bpf.run(prog, 2, 0xC000003E)[0] == bpf.RET_KILL_PROCESS


def test_builder_equivalent_of_a_spec():
    rs = rules.Builder().allow("read").allow_if("socket", cond(0, "==", 1)).build(arch="x86_64")
    assert rs.rules[0] == rules.Rule("read", ALLOW)
