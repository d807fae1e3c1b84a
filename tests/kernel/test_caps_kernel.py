"""Capabilities applied by the agent at the checkpoint, read back from the kernel
(/proc/PID/status, decoded by capsh --decode) on the running workload."""
import shutil
import subprocess

import pytest

from linx_core import capabilities as caps
from linx_core.process import Session

NBS = 1 << caps.BITS["cap_net_bind_service"]


def capsh_decode(mask: int) -> list[str]:
    out = subprocess.run(["capsh", f"--decode=0x{mask:x}"], capture_output=True, text=True, check=True).stdout
    names = out.strip().split("=", 1)[1]
    return names.split(",") if names else []


def running(plan, extra=None, argv=("sleep", "30")):
    """Spawn, apply the plan's settings at the checkpoint, wait for `running`; -> (session, sets)."""
    s = Session.spawn(list(argv))
    pid = s.wait_ready()
    settings = plan.settings(caps.read(pid))
    s.proceed(**settings, **(extra or {}))
    while s.stage not in ("running",) and s.outcome is None:
        s.next_event(timeout=10)
    assert s.stage == "running", s.outcome
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f if line.startswith("Cap"))
    return s, {k: int(v, 16) for k, v in status.items()}


pytestmark = pytest.mark.skipif(not shutil.which("capsh"), reason="capsh (libcap2-bin) missing")


def test_keep_one_cap_in_every_set():
    s, st = running(caps.plan(keep="net_bind_service"))
    with s:
        assert {k: capsh_decode(v) for k, v in st.items()} == {
            "CapInh": [], "CapPrm": ["cap_net_bind_service"], "CapEff": ["cap_net_bind_service"],
            "CapBnd": ["cap_net_bind_service"], "CapAmb": []}


def test_drop_all_and_drop_some():
    s, st = running(caps.plan(drop="all"))
    with s:
        assert st == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    before = caps.read("self")
    s, st = running(caps.plan(drop="net_raw,sys_admin"))
    with s:
        gone = 1 << 13 | 1 << 21
        assert st["CapBnd"] == before.bounding & ~gone and st["CapEff"] == before.effective & ~gone
        assert "cap_net_raw" not in capsh_decode(st["CapBnd"])


def test_ambient_for_a_non_root_workload():
    """uid 1000 keeps net_bind_service through execve only because it is ambient."""
    s, st = running(caps.plan(keep="net_bind_service", ambient="net_bind_service"),
                    {"uid": 1000, "gid": 1000, "groups": ""})
    with s:
        assert st == {"CapInh": NBS, "CapPrm": NBS, "CapEff": NBS, "CapBnd": NBS, "CapAmb": NBS}
    s, st = running(caps.plan(keep="net_bind_service"), {"uid": 1000, "gid": 1000, "groups": ""})
    with s:
        assert st["CapEff"] == st["CapPrm"] == st["CapAmb"] == 0 and st["CapBnd"] == NBS


def test_a_kernel_refusal_is_a_stage_error():
    """Raising an ambient cap that is not inheritable: the child reports cap_set_ambient."""
    s = Session.spawn(["true"])
    pid = s.wait_ready()
    settings = caps.plan(keep="chown").settings(caps.read(pid))
    s.proceed(**settings, cap_ambient=NBS)
    outcome = s.wait(timeout=10)
    assert outcome["event"] == "error" and outcome["stage"] == "cap_set_ambient"
