"""Capabilities, pure: the table against the kernel header, decode against capsh, parsing, and
the masks a plan hands the agent."""
import random
import re
import shutil
import subprocess

import pytest

from linx_core import capabilities as caps
from linx_core.errors import LinxError, UsageError

HEADER = "/usr/include/linux/capability.h"


def test_table_matches_the_uapi_header():
    """Every CAP_* of <linux/capability.h> has its number in the table (41 on this kernel)."""
    with open(HEADER) as f:
        defines = dict(re.findall(r"#define\s+CAP_([A-Z_]+)\s+(\d+)\b", f.read()))
    defines = {f"cap_{k.lower()}": int(v) for k, v in defines.items()}
    assert len(caps.CAPS) == 41
    for name, bit in defines.items():
        assert caps.BITS[name] == bit


@pytest.mark.skipif(not shutil.which("capsh"), reason="capsh (libcap2-bin) missing")
def test_decode_equals_capsh():
    rng = random.Random(9)
    masks = [0, 1, 0x3000, 0x1FFFFFFFFFF, 0x1FFFEFFFFFF, 1 << 40, 1 << 41, 0x60000000000,
             (1 << 64) - 1] + [rng.getrandbits(64) for _ in range(20)]
    for mask in masks:
        want = subprocess.run(["capsh", f"--decode=0x{mask:x}"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert caps.format_decode(caps.decode(f"{mask:x}")[0]) == want


@pytest.mark.parametrize("text", ["zz", "", "0x", "1" * 17, "-1", "0x1g"])
def test_decode_rejects_what_is_not_a_mask(text):
    with pytest.raises(UsageError, match="HEX"):
        caps.decode(text)


def test_parse_spellings_and_errors():
    assert caps.parse("net_admin,CAP_NET_RAW, cap_sys_admin", "x") == (1 << 12) | (1 << 13) | (1 << 21)
    assert caps.parse(["40", "chown"], "x") == (1 << 40) | 1
    with pytest.raises(UsageError, match="--cap-drop: unknown capability 'net_admn'"):
        caps.parse("net_admn", "--cap-drop")


STATUS = """Name:\tsleep
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
"""


def test_parse_status_and_bad_status():
    state = caps.parse_status(STATUS)
    assert state.effective == state.bounding == 0x1FFFFFFFFFF and state.ambient == 0
    doc = state.as_dict()
    assert doc["bounding"]["caps"][-1] == "cap_checkpoint_restore" and doc["bounding"]["unknown"] == []
    with pytest.raises(LinxError, match="CapAmb"):
        caps.parse_status(STATUS.replace("CapAmb", "Foo"))


def test_unknown_bits_are_kept():
    state = caps.parse_status(STATUS.replace("CapBnd:\t000001ffffffffff", "CapBnd:\t000021ffffffffff"))
    assert state.as_dict()["bounding"]["unknown"] == [45]
    assert caps.names(state.bounding)[-1] == "45"


ROOT = caps.State(effective=0x1FFFEFFFFFF, permitted=0x1FFFEFFFFFF, inheritable=0,
                  bounding=0x1FFFEFFFFFF, ambient=0)   # root without cap_sys_resource
NBS = 1 << 10


def _sets(settings):
    raw = settings["cap_sets"]
    return [int.from_bytes(raw[i:i + 8], "little") for i in (0, 8, 16)]


def test_keep_drops_everything_else():
    s = caps.plan(keep="net_bind_service").settings(ROOT)
    assert s["cap_bounding"] == ROOT.bounding & ~NBS
    assert _sets(s) == [NBS, NBS, 0]
    assert "cap_ambient" not in s


def test_drop_all_then_add():
    s = caps.plan(drop="all", add="net_bind_service,net_raw").settings(ROOT)
    want = NBS | 1 << 13
    assert s["cap_bounding"] == ROOT.bounding & ~want and _sets(s) == [want, want, 0]


def test_drop_some():
    s = caps.plan(drop="net_raw,sys_admin").settings(ROOT)
    gone = 1 << 13 | 1 << 21
    assert s["cap_bounding"] == gone
    assert _sets(s)[1] == ROOT.permitted & ~gone


def test_ambient_goes_into_inheritable_and_is_kept():
    s = caps.plan(keep="chown", ambient="net_bind_service").settings(ROOT)
    assert _sets(s) == [NBS | 1, NBS | 1, NBS]
    assert s["cap_ambient"] == NBS and s["cap_bounding"] & NBS == 0


def test_only_what_the_child_holds_is_dropped_from_bounding():
    """PR_CAPBSET_DROP needs CAP_SETPCAP even for a cap already gone: never ask for those."""
    s = caps.plan(ambient="net_bind_service").settings(ROOT)
    assert s["cap_bounding"] == 0


def test_cannot_grant_what_the_child_lacks():
    with pytest.raises(LinxError, match="cap_sys_resource not in the permitted set"):
        caps.plan(keep="sys_resource").settings(ROOT)


def test_plan_validation():
    assert caps.plan().empty and caps.plan().settings(ROOT) == {}
    with pytest.raises(UsageError, match="--cap-keep"):
        caps.plan(keep="chown", drop="kill")
    with pytest.raises(UsageError, match="--cap-ambient: unknown capability"):
        caps.plan(ambient="bogus")
