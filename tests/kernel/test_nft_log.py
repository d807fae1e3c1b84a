"""linx nft log: a `log group 5000` rule (installed by nft) in one of two fresh netns joined
by a veth pair, a ping across, and the event linx prints: prefix, interface, MAC (from
`ip -j link`), addresses, ICMP type and payload bytes."""
import json
import queue
import subprocess
import threading
import time
import uuid

import pytest

RULE = ('table inet t { chain input { type filter hook input priority 0; '
        'icmp type echo-request log prefix "ping-in " group 5000; }; }\n')


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def pair(netns):
    """netns (the logging side, 10.77.0.2 on vb) and a peer (10.77.0.1 on va)."""
    peer = f"linx-t-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", peer)
    try:
        ip("-n", peer, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", netns)
        ip("-n", peer, "addr", "add", "10.77.0.1/24", "dev", "va")
        ip("-n", netns, "addr", "add", "10.77.0.2/24", "dev", "vb")
        ip("-n", peer, "link", "set", "va", "up")
        ip("-n", netns, "link", "set", "vb", "up")
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=RULE,
                       text=True, check=True, timeout=30)
        yield netns, peer
    finally:
        ip("netns", "del", peer)


def test_ping_across_veth_is_logged_with_prefix_and_interface(pair, run_linx):
    ns, peer = pair
    p = subprocess.Popen([run_linx.__globals__["LINX"], "nft", "log", "--group", "5000",
                          "--copy", "packet:64", "--json", "--netns", ns],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in p.stdout], daemon=True).start()
    try:
        ev = None
        end = time.monotonic() + 20
        while ev is None and time.monotonic() < end:     # until the listener is bound
            subprocess.run(["ip", "netns", "exec", peer, "ping", "-c", "1", "-W", "1",
                            "10.77.0.2"], capture_output=True, timeout=30)
            try:
                ev = json.loads(lines.get(timeout=0.5))
            except queue.Empty:
                assert p.poll() is None, p.stderr.read()
    finally:
        p.terminate()
        p.wait(10)
    assert ev is not None, "no NFLOG event"
    mac = json.loads(subprocess.run(["ip", "-n", peer, "-j", "link", "show", "va"],
                                    capture_output=True, text=True).stdout)[0]["address"]
    assert ev["prefix"] == "ping-in "
    assert (ev["indev"], ev["outdev"], ev["hook"]) == ("vb", None, "input")
    assert ev["hwaddr"] == mac
    assert (ev["src"], ev["dst"], ev["proto"], ev["type"]) == ("10.77.0.1", "10.77.0.2",
                                                                "icmp", 8)
    assert ev["length"] == 64 and ev["payload"].startswith("45")  # IPv4, snaplen 64
    assert abs(ev["timestamp"] - time.time()) < 60


def test_second_listener_on_a_group_is_refused(pair, run_linx):
    from linx_core.netfilter import log
    ns, _ = pair
    with log.Listener(5000, ns):
        r = run_linx("nft", "log", "--group", "5000", "--netns", ns)
    assert r.returncode == 1 and "EPERM" in r.stderr and "group 5000" in r.stderr


def test_bad_copy_mode_is_usage(run_linx):
    r = run_linx("nft", "log", "--group", "1", "--copy", "packet:0")
    assert r.returncode == 2 and "--copy" in r.stderr
