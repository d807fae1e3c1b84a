"""`linx caps` and `linx run --cap-*` as a shell user meets them; capsh and /proc/PID/status
are the oracles."""
import json
import shutil
import subprocess
import time

import pytest

from conftest import LINX, linx

pytestmark = pytest.mark.skipif(not shutil.which("capsh"), reason="capsh (libcap2-bin) missing")


def capsh_decode(hex_mask: str) -> str:
    return subprocess.run(["capsh", f"--decode={hex_mask}"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("mask", ["0", "3000", "0x1ffffffffff", "1fffeffffff", "60000000000",
                                  "ffffffffffffffff", "0x400"])
def test_decode_equals_capsh(mask):
    r = linx("caps", "decode", mask)
    assert r.returncode == 0 and r.stdout.strip() == capsh_decode(mask)


@pytest.mark.parametrize("mask", ["0", "3000", "0x1ffffffffff", "c000000000000400"])
def test_decode_json_is_capsh_decode_as_keys(mask):
    r = linx("caps", "decode", mask, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    hex_mask, _, names = capsh_decode(mask).partition("=")
    named = names.split(",") if names else []
    assert set(doc) == {"mask", "caps", "unknown"} and doc["mask"] == hex_mask
    assert doc["caps"] == [n for n in named if n.startswith("cap_")]
    assert doc["unknown"] == [int(n) for n in named if not n.startswith("cap_")]
    assert linx("caps", "decode", "nothex", "--json").returncode == 2


def test_decode_bad_input():
    r = linx("caps", "decode", "nothex")
    assert r.returncode == 2 and r.stderr.startswith("linx: HEX: 'nothex'")


def test_show_matches_proc_status():
    """A process with distinct sets (setpriv: inheritable, ambient, bounding without net_raw)."""
    p = subprocess.Popen(["setpriv", "--inh-caps", "+chown", "--ambient-caps", "+chown",
                          "--bounding-set", "-net_raw", "sleep", "20"])
    try:
        time.sleep(0.3)
        with open(f"/proc/{p.pid}/status") as f:
            status = dict(line.strip().split(":\t") for line in f if line.startswith("Cap"))
        doc = json.loads(linx("caps", "show", p.pid, "--json").stdout)
        assert doc["pid"] == p.pid
        for key, name in (("CapEff", "effective"), ("CapPrm", "permitted"), ("CapInh", "inheritable"),
                          ("CapBnd", "bounding"), ("CapAmb", "ambient")):
            mask = int(status[key], 16)
            assert int(doc[name]["mask"], 16) == mask
            want = capsh_decode(status[key]).split("=", 1)[1]
            assert ",".join(doc[name]["caps"]) == want
        text = linx("caps", "show", p.pid).stdout.splitlines()
        assert text[0].split() == ["SET", "MASK", "CAPABILITIES"] and len(text) == 6
        assert text[5].split() == ["ambient", "0x0000000000000001", "cap_chown"]
    finally:
        p.kill()
        p.wait()


def test_show_errors():
    r = linx("caps", "show", "999999999")
    assert r.returncode == 1 and "ENOENT" in r.stderr
    assert linx("caps", "show", "abc").returncode == 2


def _status_of(*run_args):
    r = linx("run", *run_args, "--", "grep", "^Cap", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    return {k: capsh_decode(v).split("=", 1)[1] for k, v in
            (line.split(":\t") for line in r.stdout.splitlines())}


def test_run_cap_keep_shows_only_that_cap():
    r = linx("run", "--cap-keep", "net_bind_service", "--", "capsh", "--print")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(":", 1) if ":" in line else line.split("=", 1) for line in r.stdout.splitlines()
                 if line.startswith(("Current:", "Bounding set", "Ambient set")))
    assert lines["Current"].strip() == "cap_net_bind_service=ep"
    assert lines["Bounding set "].strip() == "cap_net_bind_service"
    assert lines["Ambient set "].strip() == ""
    assert _status_of("--cap-keep", "net_bind_service") == {
        "CapInh": "", "CapPrm": "cap_net_bind_service", "CapEff": "cap_net_bind_service",
        "CapBnd": "cap_net_bind_service", "CapAmb": ""}


def test_run_cap_drop_and_add():
    assert set(_status_of("--cap-drop", "all").values()) == {""}
    st = _status_of("--cap-drop", "all", "--cap-add", "chown,kill")
    assert st["CapBnd"] == st["CapEff"] == "cap_chown,cap_kill"
    st = _status_of("--cap-drop", "net_raw")
    assert "cap_net_raw" not in st["CapBnd"] and "cap_net_admin" in st["CapBnd"]


BIND_80 = ("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 80))\nprint('bound')")


def test_ambient_lets_a_non_root_workload_bind_port_80():
    r = linx("run", "--ns", "net", "--user", "1000", "--cap-ambient", "net_bind_service", "--",
             "/usr/bin/python3", "-c", BIND_80)
    assert r.returncode == 0 and r.stdout.strip() == "bound", r.stderr
    r = linx("run", "--ns", "net", "--user", "1000", "--", "/usr/bin/python3", "-c", BIND_80)
    assert r.returncode == 1 and "PermissionError" in r.stderr
    st = _status_of("--user", "1000", "--cap-keep", "net_bind_service", "--cap-ambient", "net_bind_service")
    assert set(st.values()) == {"cap_net_bind_service"}


def test_run_cap_errors():
    r = linx("run", "--cap-drop", "net_admn", "--", "true")
    assert r.returncode == 2 and "--cap-drop" in r.stderr and "unknown capability 'net_admn'" in r.stderr
    r = linx("run", "--cap-keep", "chown", "--cap-drop", "kill", "--", "true")
    assert r.returncode == 2 and "--cap-keep" in r.stderr
    r = linx("run", "--cap-drop", "all", "--", LINX, "run", "--cap-add", "chown", "--", "true")
    assert r.returncode == 125 and "cap_chown not in the permitted set" in r.stderr
