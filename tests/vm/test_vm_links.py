"""Link kinds a stock kernel has as modules (dummy, ipvlan, 8021q) and this host lacks: made by
`linx net link add` in a throwaway netns, read back with `ip -d -j`, and moved into a running
session's network namespace (the VM group)."""
import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.vm


def ip_link(netns: str, dev: str) -> dict:
    out = subprocess.run(["ip", "-n", netns, "-d", "-j", "link", "show", "dev", dev],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True)


@pytest.mark.parametrize("argv, kind, data", [
    (["d1", "type", "dummy"], "dummy", None),
    (["link", "p0", "iv", "type", "ipvlan", "mode", "l2"], "ipvlan", {"mode": "l2"}),
    (["link", "p0", "iv", "type", "ipvlan", "mode", "l3"], "ipvlan", {"mode": "l3"}),
    (["link", "p0", "v5", "type", "vlan", "id", "5"], "vlan", {"protocol": "802.1Q", "id": 5}),
], ids=["dummy", "ipvlan-l2", "ipvlan-l3", "vlan"])
def test_link_add(netns, linx, argv, kind, data):
    ip(netns, "link", "add", "p0", "type", "dummy")
    r = linx("net", "-n", netns, "link", "add", *argv)
    assert r.returncode == 0, r.stderr
    name = argv[2] if argv[0] == "link" else argv[0]
    got = ip_link(netns, name)
    assert got["linkinfo"]["info_kind"] == kind
    for key, value in (data or {}).items():
        assert got["linkinfo"]["info_data"][key] == value
    if argv[0] == "link":
        assert got["link"] == "p0"


def test_links_move_into_a_session_netns(netns, linx):
    """An ipvlan and a vlan on a dummy (made with ip), moved by `linx net link set ... netns
    SESSION`: they arrive whole (kind, ipvlan mode, vlan id) and the source netns lost them."""
    ip(netns, "link", "add", "p0", "type", "dummy")
    ip(netns, "link", "add", "link", "p0", "iv", "type", "ipvlan", "mode", "l2")
    ip(netns, "link", "add", "link", "p0", "v7", "type", "vlan", "id", "7")
    session = f"vm-{uuid.uuid4().hex[:8]}"
    r = linx("run", "-d", "--name", session, "--ns", "net", "--", "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        pid = json.loads(linx("inspect", "--json", session).stdout)["host_pid"]
        for dev in ("iv", "v7"):
            r = linx("net", "-n", netns, "link", "set", dev, "netns", session)
            assert r.returncode == 0, r.stderr
        shown = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-d", "-j", "link", "show"],
                               capture_output=True, text=True, check=True).stdout
        inside = {link["ifname"]: link for link in json.loads(shown)}
        assert sorted(inside) == ["iv", "lo", "v7"]
        assert inside["iv"]["linkinfo"]["info_kind"] == "ipvlan"
        assert inside["iv"]["linkinfo"]["info_data"]["mode"] == "l2"
        assert inside["v7"]["linkinfo"]["info_kind"] == "vlan"
        assert inside["v7"]["linkinfo"]["info_data"]["id"] == 7
        left = subprocess.run(["ip", "-n", netns, "-j", "link", "show"], capture_output=True,
                              text=True, check=True).stdout
        assert sorted(link["ifname"] for link in json.loads(left)) == ["lo", "p0"]
    finally:
        linx("rm", "-f", session)
