"""The [nft] source of linx reconcile: a rule deleted by hand comes back, and the other
rules keep their handles (and so their counters)."""
import json
import subprocess

from linx_core import reconcile

RULESET = """
table inet guard {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 22 counter accept comment "tag:ssh"
    tcp dport 80 counter accept comment "tag:web"
    tcp dport 443 counter accept comment "tag:tls"
  }
}
"""


def rules(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-a", "list", "table", "inet", "guard"],
                         capture_output=True, text=True, check=True).stdout
    return {r["rule"]["comment"]: r["rule"]["handle"] for r in json.loads(out)["nftables"] if "rule" in r}


def test_a_rule_deleted_by_hand_is_restored_others_keep_their_handles(netns, tmp_path):
    f = tmp_path / "state.toml"
    (tmp_path / "guard.nft").write_text(RULESET)
    f.write_text(f'[nft]\nnetns = "{netns}"\nfile = "guard.nft"\n')
    (src,) = reconcile.load(str(f))
    first = reconcile.reconcile(src, {})
    assert first.converged and first.applied
    before = rules(netns)
    assert sorted(before) == ["tag:ssh", "tag:tls", "tag:web"]
    assert reconcile.reconcile(src, {}).applied == []          # converged: a second pass is empty
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "rule", "inet", "guard", "input",
                    "handle", str(before["tag:web"])], check=True)
    again = reconcile.reconcile(src, {})
    assert [op.verb for op in again.applied] == ["create"]
    after = rules(netns)
    assert sorted(after) == ["tag:ssh", "tag:tls", "tag:web"]
    assert after["tag:ssh"] == before["tag:ssh"] and after["tag:tls"] == before["tag:tls"]
    assert after["tag:web"] != before["tag:web"]
    subprocess.run(["ip", "netns", "exec", netns, "nft", "add", "table", "ip", "foreign"], check=True)
    assert reconcile.reconcile(src, {}).applied == []          # tables not in the file: untouched
