"""Diff of two rulesets into a patch, without a kernel: the current side is a parsed ruleset
with handles given as the kernel would (1, 2, ... in order), and counters holding values."""
import pytest

from linx_core.errors import UsageError
from linx_core.netfilter import diff, model as M, parser, patch

BASE = """table inet fw {
  set blocked { type ipv4_addr; elements = { 10.0.0.1, 10.0.0.2 } }
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 22 counter accept comment "tag:ssh"
    tcp dport 80 counter accept comment "tag:http"
    ip saddr @blocked drop comment "tag:block"
  }
}
"""


def current(text=BASE):
    rs = parser.parse(text)
    h = 10
    for t in rs.tables.values():
        for c in t.chains.values():
            for r in c.rules:
                r.handle = h
                h += 1
                r.stmts = [M.Counter(7, 700) if isinstance(s, M.Counter) else s
                           for s in r.stmts]
    return rs


def ops(cur, text):
    p = diff.diff(cur, parser.parse(text))
    return [(o.kind, o.name, o.handle, o.before, o.value.tag if isinstance(o.value, M.Rule)
             else None) for o in p.ops]


def test_same_ruleset_is_empty_despite_counter_values():
    p = diff.diff(current(), parser.parse(BASE))
    assert p.empty and p.ops == []


def test_one_port_edit_is_one_replace_on_its_handle():
    assert ops(current(), BASE.replace("dport 22", "dport 2222")) == [
        ("replace_rule", "input", 10, None, "ssh")]


def test_elements_are_added_and_removed_not_replaced():
    p = diff.diff(current(), parser.parse(BASE.replace("10.0.0.2", "10.0.0.3")))
    assert [(o.kind, patch.describe(o)) for o in p.ops] == [
        ("delete_elements", "delete element inet fw blocked { 10.0.0.2 }"),
        ("add_elements", "add element inet fw blocked { 10.0.0.3 }")]


def test_new_rule_goes_before_the_next_kept_rule():
    text = BASE.replace('tcp dport 80', 'tcp dport 443 accept comment "tag:https"\n'
                                        '    tcp dport 80')
    assert ops(current(), text) == [("create_rule", "input", None, 11, "https")]


def test_new_last_rule_is_appended_and_removed_rule_deleted():
    text = BASE.replace('    tcp dport 80 counter accept comment "tag:http"\n', "").replace(
        '"tag:block"', '"tag:block"\n    udp dport 53 accept comment "tag:dns"')
    assert ops(current(), text) == [("delete_rule", "input", 11, None, None),
                                    ("create_rule", "input", None, None, "dns")]


def test_moved_rule_is_deleted_and_created_at_its_place():
    text = BASE.replace('    ip saddr @blocked drop comment "tag:block"\n', "").replace(
        "    tcp dport 22", '    ip saddr @blocked drop comment "tag:block"\n    tcp dport 22')
    assert ops(current(), text) == [("delete_rule", "input", 12, None, None),
                                    ("create_rule", "input", None, 10, "block")]


def test_policy_change_updates_the_chain_in_place():
    assert ops(current(), BASE.replace("policy accept", "policy drop")) == [
        ("update_chain", "input", None, None, None)]


def test_hook_change_recreates_chain_and_its_rules():
    got = ops(current(), BASE.replace("priority 0", "priority 10"))
    assert got[:2] == [("delete_chain", "input", None, None, None),
                       ("create_chain", "input", None, None, None)]
    assert [g[4] for g in got[2:]] == ["ssh", "http", "block"]


def test_set_declaration_change_recreates_it_and_rules_using_it():
    got = ops(current(), BASE.replace("type ipv4_addr;", "type ipv4_addr; flags interval;"))
    assert got == [("delete_rule", "input", 12, None, None),
                   ("delete_set", "blocked", None, None, None),
                   ("create_set", "blocked", None, None, None),
                   ("create_rule", "input", None, None, "block")]


def test_tables_not_in_the_file_are_out_of_scope():
    cur = current(BASE + "table ip docker { chain c { accept } }\n")
    assert diff.diff(cur, parser.parse(BASE)).empty


def test_new_table_is_one_op_and_patch_is_sorted():
    p = diff.diff(current(), parser.parse(BASE.replace("dport 22", "dport 23") +
                                          "table ip new { chain c { accept } }\n"))
    assert [o.kind for o in p.ops] == ["create_table", "replace_rule"]
    assert p.summary() == "2 ops: 1 create, 1 replace"


def test_untagged_multi_rule_chain_rebuilds_and_is_refused_for_reconcile():
    text = "table ip t { chain c { tcp dport 1 accept; tcp dport 2 accept } }\n"
    cur = current(text)
    got = ops(cur, text.replace("dport 1 ", "dport 3 "))
    assert got == [("replace_rule", "c", 10, None, None)]      # same length: positional
    got = ops(cur, text.replace("accept }", "accept; drop }"))
    assert [g[0] for g in got] == ["delete_rule", "delete_rule", "create_rule",
                                   "create_rule", "create_rule"]
    with pytest.raises(UsageError, match="chain ip t c: every rule needs a tag"):
        diff.validate_for_reconcile(parser.parse(text))
    diff.validate_for_reconcile(parser.parse("table ip t { chain c { accept } }"))


def test_flush_ruleset_refused_for_reconcile():
    with pytest.raises(UsageError, match="flush ruleset"):
        diff.validate_for_reconcile(parser.parse("flush ruleset\n" + BASE))


def test_patch_messages_are_o_changes():
    rules = "\n".join(f'    tcp dport {i} accept comment "tag:r{i}"' for i in range(1, 500))
    text = ("table inet big {\n  chain input {\n    type filter hook input priority 0;\n"
            + rules + "\n  }\n}\n")
    cur = current(text)
    desired = parser.parse(text.replace("dport 77 ", "dport 7777 "))
    p = diff.diff(cur, desired)
    msgs, wire = patch.messages(p, desired)
    assert len(wire) == 1 and [m.kind for m in msgs] == ["newrule"]
    from linx_core.netlink.codec import NLM_F_REPLACE
    assert wire[0][1] == NLM_F_REPLACE
    assert wire[0][2].endswith((76 + 10).to_bytes(8, "big"))       # NFTA_RULE_HANDLE
