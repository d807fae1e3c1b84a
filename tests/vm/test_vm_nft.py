"""nf_tables constructs a stock kernel has as modules and this host lacks (flowtables:
nf_flow_table, nft_flow_offload; NFQUEUE: nfnetlink_queue, nft_queue), loaded for real (the
VM group; the host only golden-checks their compiled expressions, tests/kernel/test_nft_oracle.py).

- The corpus files marked `linx-test: golden-only`, each in a fresh netns, through the same
  oracle as the host's: `linx nft push F` lists like `nft -f F`, and `linx nft pull` prints
  what `nft list ruleset` prints.
- Behaviour: a flowtable pushed by linx takes a TCP flow between two netns off the forward
  path (the forward chain's counter sees the handshake, not the payload); a `queue ... bypass`
  rule with no listener lets pings through and counts them, and without `bypass` drops them.

Secmark objects are not here: linx's parser refuses `secmark` (a located "not supported" error)."""
import json
import os
import subprocess
import time
import uuid

import pytest

from nftoracle import CORPUS, DATA, listing_of, marker, nft

pytestmark = pytest.mark.vm

GOLDEN_ONLY = [p for p in CORPUS if marker(p) == "golden-only"]


@pytest.mark.parametrize("path", GOLDEN_ONLY, ids=os.path.basename)
def test_push_lists_like_nft(netns, linx, path):
    nft(netns, "-I", DATA, "-f", path)
    expected = listing_of(netns)
    nft(netns, "flush", "ruleset")
    assert listing_of(netns) == ""
    r = linx("nft", "push", path, "--netns", netns)
    assert r.returncode == 0, r.stderr
    assert listing_of(netns) == expected


@pytest.mark.parametrize("path", GOLDEN_ONLY, ids=os.path.basename)
def test_pull_prints_like_nft(netns, linx, path):
    nft(netns, "-I", DATA, "-f", path)
    r = linx("nft", "pull", "--netns", netns)
    assert r.returncode == 0, r.stderr
    assert r.stdout == nft(netns, "list", "ruleset")


# -- behaviour ---------------------------------------------------------------

def sh(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=60, **kw)


def counter(ns: str, family: str, table: str, chain: str) -> dict:
    """The first counter statement of the chain, from `nft -j`: {"packets": N, "bytes": N}."""
    out = json.loads(nft(ns, "-j", "list", "chain", family, table, chain))
    for item in out["nftables"]:
        for stmt in item.get("rule", {}).get("expr", []):
            if "counter" in stmt:
                return stmt["counter"]
    raise AssertionError(f"no counter in {family} {table} {chain}")


def push_text(linx, tmp_path, ns: str, text: str) -> None:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.nft"
    path.write_text(text)
    r = linx("nft", "push", path, "--netns", ns)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def routed():
    """Three netns, client - router - server: a0 10.7.1.2 = va 10.7.1.1 (router), vb 10.7.2.1
    = b0 10.7.2.2, the router forwarding. Deleted afterwards."""
    a, r, b = (f"linx-t-{uuid.uuid4().hex[:8]}" for _ in range(3))
    made = []
    try:
        for ns in (a, r, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        for cmd in ([r, "link", "add", "va", "type", "veth", "peer", "name", "a0", "netns", a],
                    [r, "link", "add", "vb", "type", "veth", "peer", "name", "b0", "netns", b],
                    [a, "addr", "add", "10.7.1.2/24", "dev", "a0"],
                    [r, "addr", "add", "10.7.1.1/24", "dev", "va"],
                    [r, "addr", "add", "10.7.2.1/24", "dev", "vb"],
                    [b, "addr", "add", "10.7.2.2/24", "dev", "b0"],
                    [a, "link", "set", "a0", "up"], [r, "link", "set", "va", "up"],
                    [r, "link", "set", "vb", "up"], [b, "link", "set", "b0", "up"],
                    [a, "route", "add", "default", "via", "10.7.1.1"],
                    [b, "route", "add", "default", "via", "10.7.2.1"]):
            subprocess.run(["ip", "-n", *cmd], check=True)
        sh(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield a, r, b
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_flowtable_offloads_a_tcp_flow(routed, linx, tmp_path):
    """2 MB over one TCP connection through the router: all of it arrives, and the forward
    chain's counter (before `flow add @ft`) saw only the packets before the flow was offloaded
    (the handshake, the teardown), far less than the payload; without the flowtable it would
    count every byte."""
    a, r, b = routed
    push_text(linx, tmp_path, r, """table inet fastpath {
	flowtable ft {
		hook ingress priority filter
		devices = { va, vb }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip protocol tcp counter flow add @ft
	}
}
""")
    size = 2_000_000
    server = subprocess.Popen(["ip", "netns", "exec", b, "sh", "-c", "nc -l 10.7.2.2 5000 | wc -c"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not sh(b, "ss", "-Hltn", "sport = :5000").stdout.strip():
            assert time.monotonic() < deadline, "nc did not listen"
            time.sleep(0.1)
        sh(a, "sh", "-c", f"head -c {size} /dev/zero | nc -N -w 30 10.7.2.2 5000")
        received = int(server.communicate(timeout=60)[0])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert received == size
    seen = counter(r, "inet", "fastpath", "forward")
    assert 0 < seen["bytes"] < size // 10, seen


QUEUE = """table inet q {
	chain input {
		type filter hook input priority filter; policy accept;
		icmp type echo-request counter queue num 7%s
	}
}
"""


def test_queue_bypass_without_a_listener(netns, linx, tmp_path):
    """Nobody listens on queue 7: with `bypass` the pings pass and are counted; without it
    the kernel drops what it cannot queue."""
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    push_text(linx, tmp_path, netns, QUEUE % " bypass")
    assert nft(netns, "list", "chain", "inet", "q", "input").count("queue flags bypass to 7") == 1
    sh(netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "127.0.0.1")
    assert counter(netns, "inet", "q", "input")["packets"] == 3
    push_text(linx, tmp_path, netns, QUEUE % "")
    lost = sh(netns, "ping", "-c", "1", "-W", "1", "127.0.0.1", check=False)
    assert lost.returncode != 0, lost.stdout
    assert counter(netns, "inet", "q", "input")["packets"] == 1
