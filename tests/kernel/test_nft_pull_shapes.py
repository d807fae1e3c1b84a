"""`linx nft pull` of a ruleset whose rules repeat a few shapes with other values, as big
generated rulesets do (the case decode_shapes makes fast): addresses, prefixes, ports,
ranges, interface names and wildcards, flags, ICMP types, protocol keys that select the
next header, and counters that hold packets, loaded by `nft -f` in a fresh netns and
printed exactly as `nft list ruleset` prints them."""
import random
import subprocess

from linx_core.netfilter import formatter, pull


def _rules(rnd: random.Random, family: str) -> list:
    out = []
    for i in range(40):
        a, b, p = rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 65536)
        n = rnd.randrange(10**12)
        proto = rnd.choice(("tcp", "udp"))
        out += [
            f"ip saddr 10.{a}.{b}.{i} tcp dport {p} counter packets {n} bytes {n * 60} accept",
            f"ip daddr 10.{a}.{b}.0/24 {proto} sport {p} drop",
            f"ip saddr 172.16.{a & 0xf0}.0/20 counter packets {i} bytes {n} drop",
            f"meta l4proto {proto} th dport {p} accept",
            f"ip protocol {proto} counter packets 0 bytes {i} accept",
            f"tcp dport {min(p, 60000)}-{min(p, 60000) + i + 1} accept",
            f'iifname "eth{i}" oifname "{rnd.choice(("veth", "br", "wg"))}*" accept',
            f"icmp type {rnd.choice(('echo-request', 'destination-unreachable'))} accept",
            f"ct state {rnd.choice(('established,related', 'new', 'invalid'))} accept",
            f"tcp flags & (syn | ack) == {rnd.choice(('syn', 'ack', 'syn | ack'))} accept",
            f"meta mark & 0x{rnd.randrange(1, 2**32):x} == 0x{b:x} drop",
            f"ip ttl {a} ip dscp {rnd.choice(('cs1', 'af11', 'ef'))} drop",
            f'ip saddr 192.0.2.{i} accept comment "rule {i} {proto}"',
            "iif lo accept" if i % 2 else "iif != lo drop",
            f"meta l4proto {rnd.choice(('igmp', 'tcp', 'udp'))} accept",
        ]
        if family == "inet":
            out.append(f"ip6 saddr 2001:db8::{a:x}:{i:x} tcp dport {p} accept")
    return out


def _ruleset(seed: int) -> str:
    rnd = random.Random(seed)
    text = []
    for family in ("ip", "inet"):
        text.append(f"table {family} shapes {{\n\tchain input {{\n"
                    f"\t\ttype filter hook input priority 0; policy accept;\n")
        text += [f"\t\t{r}\n" for r in _rules(rnd, family)]
        text.append("\t}\n}\n")
    return "".join(text)


def test_pull_of_repeated_shapes_prints_like_nft(netns, tmp_path):
    path = tmp_path / "shapes.nft"
    path.write_text(_ruleset(6))
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", str(path)], check=True)
    expected = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"],
                              capture_output=True, text=True, check=True).stdout
    assert expected.count("\n") > 1000
    assert formatter.format_ruleset(pull.pull(netns)) == expected


def test_cli_pull_of_repeated_shapes_prints_like_nft(netns, tmp_path, run_linx):
    path = tmp_path / "shapes.nft"
    path.write_text(_ruleset(7))
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", str(path)], check=True)
    expected = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"],
                              capture_output=True, text=True, check=True).stdout
    r = run_linx("nft", "pull", "--netns", netns)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected
