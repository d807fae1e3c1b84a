"""linx nft against the real kernel, each test in fresh network namespaces it makes itself,
checked with nft (-j) and ping: replace semantics, atomicity, located errors and exit
statuses, fmt/check, flush/delete, owner tables, the generation id, and packets dropped and
counted by a rule linx pushed."""
import json
import os
import subprocess
import uuid

import pytest

from linx_core.netlink import nfnl
from linx_core.netfilter import parser, push

RULESET = """table inet t {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 22 accept comment "tag:ssh"
	}
}
"""


def nft(ns, *args, check=True):
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True,
                       text=True, timeout=60)
    if check and r.returncode:
        raise AssertionError(r.stderr)
    return r.stdout


def tables(ns) -> list:
    doc = json.loads(nft(ns, "-j", "list", "tables"))
    return sorted((t["table"]["family"], t["table"]["name"]) for t in doc["nftables"]
                  if "table" in t)


def rules(ns, family, table) -> list:
    doc = json.loads(nft(ns, "-j", "list", "table", family, table))
    return [r["rule"] for r in doc["nftables"] if "rule" in r]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_push_then_nft_lists_it(netns, run_linx, tmp_path):
    f = write(tmp_path, "r.nft", RULESET)
    r = run_linx("nft", "push", f, "--netns", netns)
    assert r.returncode == 0, r.stderr
    assert nft(netns, "list", "ruleset") == RULESET.replace(
        "priority 0; policy accept;", "priority filter; policy accept;")


def test_push_replaces_its_tables_and_leaves_others(netns, run_linx, tmp_path):
    nft(netns, "add", "table", "ip", "other")
    nft(netns, "add", "chain", "ip", "other", "c")
    nft(netns, "add", "rule", "ip", "other", "c", "counter")
    first = write(tmp_path, "a.nft", RULESET)
    second = write(tmp_path, "b.nft", RULESET.replace("tcp dport 22", "udp dport 53"))
    assert run_linx("nft", "push", first, "-n", netns).returncode == 0
    assert run_linx("nft", "push", second, "-n", netns).returncode == 0
    got = rules(netns, "inet", "t")
    assert len(got) == 1 and got[0]["expr"][0]["match"]["left"]["payload"] == \
        {"protocol": "udp", "field": "dport"}
    assert tables(netns) == [("inet", "t"), ("ip", "other")]
    assert len(rules(netns, "ip", "other")) == 1


def test_parse_error_is_located_exit_2_and_applies_nothing(netns, run_linx, tmp_path):
    nft(netns, "add", "table", "ip", "keep")
    f = write(tmp_path, "bad.nft", RULESET.replace("tcp dport 22", "tcp dport ?"))
    r = run_linx("nft", "push", f, "-n", netns)
    assert r.returncode == 2
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"linx: {f}:4:13: unexpected character '?'")
    assert r.stderr.splitlines()[2].endswith("^")
    assert tables(netns) == [("ip", "keep")]


def test_kernel_refusal_names_the_rule_exit_1(netns, run_linx, tmp_path):
    f = write(tmp_path, "k.nft", RULESET.replace('tcp dport 22 accept comment "tag:ssh"',
                                                 'counter name "missing"'))
    r = run_linx("nft", "push", f, "-n", netns)
    assert r.returncode == 1
    assert f"rule in inet t input at {f}:4:3" in r.stderr
    assert "ENOENT" in r.stderr
    assert tables(netns) == []


def test_batch_is_atomic_at_the_500th_rule(netns, tmp_path):
    """A file whose 500th rule the kernel refuses leaves the previous ruleset intact."""
    push.push(parser.parse(RULESET, "before.nft"), netns)
    before = nft(netns, "list", "ruleset")
    lines = [f"\t\ttcp dport {1000 + i} counter accept" for i in range(499)]
    lines.append('\t\tcounter name "missing"')
    text = RULESET.replace('\t\ttcp dport 22 accept comment "tag:ssh"\n',
                           "\n".join(lines) + "\n")
    text += "table ip fresh {\n\tchain c {\n\t\taccept\n\t}\n}\n"
    with pytest.raises(push.NftKernelError) as info:
        push.push(parser.parse(text, "big.nft"), netns)
    assert "big.nft:503:3" in str(info.value)
    assert nft(netns, "list", "ruleset") == before


def test_pull_json_and_table_filter(netns, run_linx, tmp_path):
    push.push(parser.parse(RULESET + "table ip u {\n}\n", "r.nft"), netns)
    r = run_linx("nft", "pull", "-n", netns, "--table", "inet", "t", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    [t] = doc["tables"]
    assert (t["family"], t["name"]) == ("inet", "t")
    [rule] = t["chains"][0]["rules"]
    assert (rule["rule"], rule["tag"]) == ("tcp dport 22 accept", "ssh")
    r = run_linx("nft", "pull", "-n", netns, "--table", "inet", "nope")
    assert r.returncode == 1 and "ENOENT" in r.stderr


def test_fmt_check_write(run_linx, tmp_path):
    messy = "table inet t{chain input{type filter hook input priority 0\ntcp dport ssh accept}}"
    f = write(tmp_path, "m.nft", messy)
    r = run_linx("nft", "fmt", "--check", f)
    assert r.returncode == 1 and "not formatted" in r.stderr
    out = run_linx("nft", "fmt", f).stdout
    assert "\t\ttcp dport 22 accept\n" in out
    assert run_linx("nft", "fmt", "--write", f).returncode == 0
    assert (tmp_path / "m.nft").read_text() == out
    assert run_linx("nft", "fmt", "--check", f).returncode == 0


def test_check_debug_netlink_matches_nft(netns, run_linx, tmp_path):
    f = write(tmp_path, "r.nft", RULESET)
    r = run_linx("nft", "check", "--debug", "netlink", f)
    assert r.returncode == 0, r.stderr
    theirs = subprocess.run(["ip", "netns", "exec", netns, "nft", "-c", "--debug=netlink",
                             "-f", f], capture_output=True, text=True).stdout
    assert r.stdout.strip() in theirs
    assert tables(netns) == []


def test_flush_and_delete_table(netns, run_linx):
    nft(netns, "add", "table", "ip", "a")
    nft(netns, "add", "table", "inet", "b")
    assert run_linx("nft", "delete", "table", "ip", "a", "-n", netns).returncode == 0
    assert tables(netns) == [("inet", "b")]
    r = run_linx("nft", "delete", "table", "ip", "a", "-n", netns)
    assert r.returncode == 1 and "ENOENT" in r.stderr
    assert run_linx("nft", "flush", "-n", netns).returncode == 0
    assert tables(netns) == []


def test_owner_table_goes_with_its_socket(netns):
    sock = push.push(parser.parse(RULESET, "o.nft"), netns, owner=True)
    assert "# progname" in nft(netns, "list", "ruleset")
    sock.close()
    assert tables(netns) == []


def test_genid_moves_and_guards_a_batch(netns):
    with nfnl.open(netns) as sock:
        gen = nfnl.getgen(sock)["id"]
        push.push(parser.parse(RULESET, "g.nft"), netns)
        assert nfnl.getgen(sock)["id"] > gen
        with pytest.raises(push.NftKernelError) as info:
            push.push(parser.parse(RULESET, "g.nft"), netns, genid=gen)
        assert info.value.errno == 85    # ERESTART: the ruleset moved on


@pytest.fixture
def veth_pair():
    """Two network namespaces joined by a veth pair: a 10.99.0.1, b 10.99.0.2."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"linx-a-{tag}", f"linx-b-{tag}"
    for ns in (a, b):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name",
                        "vb", "netns", b], check=True)
        for ns, dev, addr in ((a, "va", "10.99.0.1/24"), (b, "vb", "10.99.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def ping(ns, addr) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", addr],
                          capture_output=True).returncode == 0


def test_traffic_is_dropped_and_counted(veth_pair, run_linx, tmp_path):
    a, b = veth_pair
    assert ping(a, "10.99.0.2")
    f = write(tmp_path, "drop.nft", """table inet guard {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr 10.99.0.1 icmp type echo-request counter drop
	}
}
""")
    assert run_linx("nft", "push", f, "-n", b).returncode == 0
    assert not ping(a, "10.99.0.2")
    assert not ping(a, "10.99.0.2")
    [rule] = rules(b, "inet", "guard")
    counter = next(e["counter"] for e in rule["expr"] if "counter" in e)
    assert counter["packets"] == 2 and counter["bytes"] == 2 * 84
    assert run_linx("nft", "flush", "-n", b).returncode == 0
    assert ping(a, "10.99.0.2")


def test_help_does_not_load_the_library():
    code = ("import sys; from linx_cli.main import main\n"
            "try:\n    main(['nft', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert not any(m.startswith(('linx_core.netfilter', 'linx_core.netlink'))"
            " for m in sys.modules), sorted(m for m in sys.modules if 'linx_core' in m)")
    r = subprocess.run([os.path.join(os.path.dirname(os.sys.executable), "python"), "-c",
                        code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
