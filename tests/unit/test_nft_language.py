"""The nft language, without a kernel: the whole corpus parses, formats idempotently and
parse(format(x)) == x; bad input is a located error (file:line:col, caret, exit 2); the
parser never fails any other way on random input (hypothesis)."""
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from linx_core.errors import UsageError
from linx_core.netfilter import compiler, formatter, parser, validate
from linx_core.netfilter.location import NftError
from nftoracle import CORPUS


def _ifindex(name):
    return {"lo": 1}.get(name, 7)


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_format_is_a_fixed_point(path):
    """format is idempotent and parse(format(x)) == x: the canonical text carries the
    whole model (tags included), and formatting it again changes nothing."""
    rs = parser.parse_file(path)
    text = formatter.format_ruleset(rs)
    again = parser.parse(text, "formatted")
    assert again == rs
    assert formatter.format_ruleset(again) == text


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_corpus_validates_and_compiles(path):
    rs = parser.parse_file(path)
    validate.validate(rs)
    msgs = compiler.compile(rs, ifindex=_ifindex)
    assert any(m.kind == "newtable" for m in msgs)


def parse_error(text: str) -> NftError:
    with pytest.raises(NftError) as info:
        rs = parser.parse(text, "bad.nft")
        validate.validate(rs)
        compiler.compile(rs, ifindex=_ifindex)
    assert isinstance(info.value, UsageError) and info.value.exit_status == 2
    return info.value


CHAIN = "table inet t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t\t%s\n\t}\n}\n"


@pytest.mark.parametrize("rule, col, words", [
    ("tcp dport ? accept", 13, "unexpected character '?'"),
    ("tcp dprt 22 accept", 7, "unknown tcp header field 'dprt'"),
    ("tcp dport nosuchservice accept", 13, "not a port number or a service name"),
    ("ip saddr 10.0.0.300 drop", 12, "is not an IPv4 address"),
    ("ip saddr 10.0.0.0/33 drop", 21, "prefix length 33"),
    ("ct state bogus accept", 12, "not a conntrack state"),
    ("tcp dport 22 acept", 16, "expected a statement"),
    ("meta foo 1", 8, "unknown meta key 'foo'"),
    ("jump nowhere", 3, "no chain 'nowhere'"),
    ("ip saddr @nosuchset drop", 12, "set nosuchset is not defined"),
    ("osf name \"Linux\" accept", 3, "osf (OS fingerprint) matches: not supported by linx"),
    ("tcp option maxseg size 1400", 3, "tcp option: not supported by linx"),
    ("ip ttl set 10", 3, "payload set statements"),
    ("masquerade", 3, "masquerade is only valid in a nat chain"),
    ("log level loud", 13, "unknown log level 'loud'"),
    ("limit rate 10/fortnight", 17, "bad time unit 'fortnight'"),
    ("tcp dport 30-20 accept", 13, "range is empty"),
    ("counter comment", 18, "expected a quoted comment"),
])
def test_errors_are_located(rule, col, words):
    e = parse_error(CHAIN % rule)
    assert str(e.loc) == f"bad.nft:4:{col}", str(e)
    assert words in e.message
    text = str(e)
    lines = text.splitlines()
    assert lines[0].startswith(f"bad.nft:4:{col}: ")
    assert lines[1] == "  | \t\t" + rule
    assert lines[2].index("^") == len("  | ") + col - 1


@pytest.mark.parametrize("text, where, words", [
    ("table inet t {\n\tchain c {\n\t\ttype nat hook forward priority 0;\n\t}\n}\n",
     "bad.nft:2:8", "a nat chain cannot use the forward hook"),
    ("table arp t {\n\tchain c {\n\t\ttype nat hook input priority 0;\n\t}\n}\n",
     "bad.nft:2:8", "chain type nat is not valid in the arp family"),
    ("table netdev t {\n\tchain c {\n\t\ttype filter hook ingress priority 0;\n\t}\n}\n",
     "bad.nft:2:8", "the ingress hook needs a device"),
    ("table ip t {\n\tchain c {\n\t\ttype filter hook ingress priority 0;\n\t}\n}\n",
     "bad.nft:2:8", "hook 'ingress' does not exist in the ip family"),
    ("table ip t {\n\tchain c {\n\t\tpolicy drop;\n\t}\n}\n",
     "bad.nft:2:8", "a policy needs a base chain"),
    ("table ip t {\n\tchain c {\n\t\ttype nat hook prerouting priority 0;\n"
     "\t\tmasquerade\n\t}\n}\n", "bad.nft:4:3", "masquerade is only valid in postrouting"),
    ("table ip t {\n\tchain c {\n\t\taccept comment \"tag:a\"\n"
     "\t\tdrop comment \"tag:a\"\n\t}\n}\n", "bad.nft:4:3", "duplicate rule tag 'a'"),
    ("table ip t {\n\tchain c {\n\t\taccept\n\t}\n}\nlist ruleset\n",
     "bad.nft:6:1", "'list' is not a ruleset command"),
    ("define x = 1\ntable ip t {\n\tchain c {\n\t\ttcp dport $y accept\n\t}\n}\n",
     "bad.nft:4:13", "$y is not defined"),
    ('include "nope.nft"\n', "bad.nft:1:9", "include 'nope.nft'"),
    ("table ip t {\n\tset s {\n\t\ttypeof ip saddr\n\t}\n}\n", "bad.nft:3:3",
     "typeof: not supported by linx yet"),
    ("table ip t {\n\tchain c {\n", "bad.nft:3:1", "unexpected end of file"),
    ("add rule ip missing c accept\n", "bad.nft:1:13", "table ip missing is not defined"),
])
def test_structural_errors(text, where, words):
    e = parse_error(text)
    assert str(e.loc) == where, str(e)
    assert words in e.message, str(e)


def test_tags_round_trip_through_comments():
    rs = parser.parse(CHAIN % 'tcp dport 22 accept comment "tag:ssh allow ssh"', "t.nft")
    rule = rs.tables[("inet", "t")].chains["c"].rules[0]
    assert (rule.tag, rule.comment) == ("ssh", "allow ssh")
    assert 'comment "tag:ssh allow ssh"' in formatter.format_ruleset(rs)


def test_include_is_relative_to_the_including_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "vars.nft").write_text("define port = 2222\n")
    main = tmp_path / "main.nft"
    main.write_text('include "sub/vars.nft"\n' + CHAIN % "tcp dport $port accept")
    rs = parser.parse_file(str(main))
    assert "tcp dport 2222 accept" in formatter.format_ruleset(rs)


WORDS = ["table", "chain", "set", "map", "inet", "ip", "ip6", "tcp", "udp", "dport", "saddr",
         "accept", "drop", "jump", "counter", "type", "filter", "hook", "input", "priority",
         "policy", "elements", "flags", "interval", "ct", "state", "established", "meta",
         "mark", "set", "log", "prefix", "limit", "rate", "over", "dnat", "to", "masquerade",
         "vmap", "map", "add", "rule", "element", "define", "include", "{", "}", ";", ",",
         ":", ".", "/", "-", "@s", "$v", "=", "==", "!=", "<", "22", "0x10", "10.0.0.1",
         "::1", "1h", '"x"', "eth*", "*", "\n", "#c\n", "&", "|", "(", ")", "[", "]"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=40))
def test_parser_fuzz_token_soup(words):
    text = " ".join(words)
    try:
        rs = parser.parse(text, "fuzz.nft")
        validate.validate(rs)
        compiler.compile(rs, ifindex=_ifindex)
        formatter.format_ruleset(rs)
    except NftError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_fuzz_any_text(text):
    try:
        parser.parse(text, "fuzz.nft")
    except NftError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(CORPUS) - 1), st.integers(0, 10_000), st.integers(1, 20))
def test_parser_fuzz_truncated_corpus(which, cut, drop):
    with open(CORPUS[which]) as f:
        text = f.read()
    cut %= max(1, len(text))
    mutated = text[:cut] + text[cut + drop:]
    try:
        rs = parser.parse(mutated, "fuzz.nft")
        validate.validate(rs)
        compiler.compile(rs, ifindex=_ifindex)
    except NftError:
        pass
