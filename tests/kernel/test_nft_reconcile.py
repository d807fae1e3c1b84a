"""linx nft diff and push --mode reconcile against the kernel, in a fresh netns per test,
checked with `nft -j -a`: one edited rule is one in-place replace, the other rules keep
their handles and counter values, foreign tables survive, a concurrent writer is retried
(ERESTART from the generation check) and a writer that never stops is a clear error."""
import errno
import json
import subprocess

import pytest

from linx_core.netfilter import parser, reconcile

RULES = """table inet fw {
  set blocked { type ipv4_addr; elements = { 10.9.9.9 } }
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto icmp counter accept comment "tag:icmp"
    tcp dport 22 counter accept comment "tag:ssh"
    tcp dport 80 counter accept comment "tag:http"
    ip saddr @blocked counter drop comment "tag:block"
  }
}
"""


def sh(ns, *args, check=True):
    r = subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode:
        raise AssertionError(r.stderr)
    return r.stdout


def listing(ns, family="inet", table="fw") -> dict:
    """tag -> (handle, counter packets, expressions) from nft -j."""
    doc = json.loads(sh(ns, "nft", "-j", "-a", "list", "table", family, table))
    out = {}
    for r in (x["rule"] for x in doc["nftables"] if "rule" in x):
        counter = next((e["counter"]["packets"] for e in r["expr"] if "counter" in e), None)
        out[r.get("comment", r["handle"])] = (r["handle"], counter, json.dumps(r["expr"]))
    return out


@pytest.fixture
def fw(netns, tmp_path):
    """The ruleset installed by nft itself, with traffic counted on the icmp rule."""
    f = tmp_path / "fw.nft"
    f.write_text(RULES)
    sh(netns, "nft", "-f", str(f))
    sh(netns, "ip", "link", "set", "lo", "up")
    sh(netns, "ping", "-c", "3", "-i", "0.01", "-q", "127.0.0.1")
    return netns, tmp_path


def test_one_port_edit_is_one_replace_others_keep_handles_and_counters(fw, run_linx):
    ns, tmp = fw
    before = listing(ns)
    assert before["tag:icmp"][1] >= 6
    edited = tmp / "edited.nft"
    edited.write_text(RULES.replace("dport 22", "dport 2222"))
    r = run_linx("nft", "diff", edited, "--netns", ns, "--json")
    ops = json.loads(r.stdout)["ops"]
    assert [(o["op"], o["handle"], o["tag"]) for o in ops] == [
        ("replace_rule", before["tag:ssh"][0], "ssh")]
    r = run_linx("nft", "diff", edited, "--netns", ns, "--exit-code")
    assert r.returncode == 1 and r.stdout.startswith("replace rule inet fw input handle")
    r = run_linx("nft", "push", "--mode", "reconcile", edited, "--netns", ns)
    assert r.returncode == 0, r.stderr
    after = listing(ns)
    assert after.keys() == before.keys()
    for tag in ("tag:icmp", "tag:http", "tag:block"):
        assert after[tag] == before[tag]                 # handle, counter value, exprs
    assert after["tag:ssh"][0] == before["tag:ssh"][0]   # replaced in place
    assert "2222" in after["tag:ssh"][2] and "2222" not in before["tag:ssh"][2]
    r = run_linx("nft", "diff", edited, "--netns", ns, "--exit-code")
    assert (r.returncode, r.stdout) == (0, "up to date\n")


def test_tables_not_in_the_file_survive(fw, run_linx):
    ns, tmp = fw
    # a rule linx cannot decode (tcp options): the foreign table is not even read
    sh(ns, "nft", "add table ip docker; add chain ip docker c; "
                  "add rule ip docker c tcp option maxseg size 1400 counter")
    other = sh(ns, "nft", "-j", "-a", "list", "table", "ip", "docker")
    f = tmp / "e.nft"
    f.write_text(RULES.replace("10.9.9.9", "10.9.9.8"))
    r = run_linx("nft", "push", "--mode", "reconcile", f, "--netns", ns)
    assert r.returncode == 0, r.stderr
    assert sh(ns, "nft", "-j", "-a", "list", "table", "ip", "docker") == other
    assert "10.9.9.8" in sh(ns, "nft", "list", "set", "inet", "fw", "blocked")


def test_concurrent_writer_is_retried_and_converges(fw):
    ns, _ = fw
    calls = []

    def writer(attempt):
        calls.append(attempt)
        if attempt == 0:
            sh(ns, "nft", "add", "rule", "inet", "fw", "input", "udp", "dport", "9", "drop")
    desired = parser.parse(RULES.replace("dport 80", "dport 8080"))
    handle = listing(ns)["tag:http"][0]
    p = reconcile.reconcile(desired, ns, before_commit=writer)
    assert calls == [0, 1]
    after = listing(ns)
    assert after["tag:http"][0] == handle and "8080" in after["tag:http"][2]
    # the foreign rule is untagged; the second attempt's pull saw it and removed it
    assert [o.kind for o in p.ops] == ["delete_rule", "replace_rule"]
    assert len(after) == 4
    assert reconcile.plan(desired, ns)[2].empty


def test_writer_that_never_stops_is_a_clear_error(fw):
    ns, _ = fw
    calls = []

    def writer(attempt):
        calls.append(attempt)
        sh(ns, "nft", "add", "table", "ip", f"w{attempt}")
    before = listing(ns)
    with pytest.raises(reconcile.GenerationRace) as e:
        reconcile.reconcile(parser.parse(RULES.replace("dport 80", "dport 8080")), ns,
                            before_commit=writer)
    assert calls == [0, 1, 2, 3]
    assert e.value.errno == errno.ERESTART
    assert "ERESTART" in str(e.value) and "another writer" in str(e.value)
    assert listing(ns) == before


def test_untagged_multi_rule_chain_is_refused_naming_it(fw, run_linx):
    ns, tmp = fw
    f = tmp / "u.nft"
    f.write_text(RULES.replace(' comment "tag:http"', ""))
    before = listing(ns)
    r = run_linx("nft", "push", "--mode", "reconcile", f, "--netns", ns)
    assert r.returncode == 2
    assert "chain inet fw input: every rule needs a tag" in r.stderr
    assert listing(ns) == before
