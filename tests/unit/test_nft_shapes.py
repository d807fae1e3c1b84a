"""decode_shapes, the fast path of `linx nft pull`: a rule decoded from the template of
another rule of its shape equals the rule decoded in full, whatever data its cmps and
counters hold (hypothesis varies them on every corpus rule); shapes are found and
reused; random and mutated bytes give clean errors only."""
import copy

import pytest
from hypothesis import given, settings, strategies as st

from linx_core.netlink.errors import MalformedMessage
from linx_core.netfilter import compiler, decode_shapes, decoder, encoder, parser, wire
from linx_core.netfilter.decoder import DecodeError
from nftoracle import CORPUS, compiled


def _rules():
    out = []
    for path in CORPUS:
        for m in compiled(path):
            if m.kind == "newrule" and any(e["name"] in ("cmp", "counter")
                                           for e in m.attrs["expressions"]):
                out.append(m)
    return out


RULES = _rules()


def _slow(family, body):
    try:
        return decoder.rule(family, wire.decode_rule(body, 4), {})
    except MalformedMessage as e:
        return type(e)


def _fast(shapes, family, body):
    try:
        return shapes.rule(family, shapes.attrs(body, 4), {})
    except MalformedMessage as e:
        return type(e)


def _varied(m, draw_bytes, draw_int):
    """m with every cmp's data and every counter's values replaced."""
    v = copy.copy(m)
    v.attrs = dict(m.attrs)
    exprs = []
    for e in m.attrs["expressions"]:
        if e["name"] == "cmp":
            e = {"name": "cmp", "data": {**e["data"],
                                         "data": draw_bytes(len(e["data"]["data"]))}}
        elif e["name"] == "counter":      # in the order the kernel dumps them
            e = {"name": "counter", "data": {"bytes": draw_int(), "packets": draw_int()}}
        exprs.append(e)
    v.attrs["expressions"] = exprs
    return v


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(RULES), st.data())
def test_a_template_gives_what_the_full_decoder_gives(m, data):
    body = encoder.encode(m)[2]
    other = encoder.encode(_varied(
        m, lambda n: data.draw(st.binary(min_size=n, max_size=n)),
        lambda: data.draw(st.integers(0, 2**64 - 1))))[2]
    shapes = decode_shapes.Rules()
    assert _fast(shapes, m.family, body) == _slow(m.family, body)
    for _ in range(6):      # read by checks, then by the shape's regular expression
        assert _fast(shapes, m.family, other) == _slow(m.family, other)
    assert _fast(shapes, m.family, body) == _slow(m.family, body)


def test_rules_of_one_shape_share_it_and_hit_the_template():
    m = next(m for m in RULES if m.family == "inet" and
             {e["name"] for e in m.attrs["expressions"]} >= {"cmp", "counter"} and
             _slow(m.family, encoder.encode(m)[2]) is not DecodeError)
    shapes = decode_shapes.Rules()
    attrs, bodies = [], []
    for i in range(20):
        v = _varied(m, lambda n: (i + 1).to_bytes(n, "big") if n <= 4 else bytes(n),
                    lambda: i)
        bodies.append(encoder.encode(v)[2])
        attrs.append(shapes.attrs(bodies[-1], 4))
    assert len({id(a["shape"]) for a in attrs}) == 1
    assert len(shapes.shapes) == 1
    assert attrs[0]["shape"].pattern is not None
    for body in bodies:
        assert _fast(shapes, m.family, body) == _slow(m.family, body)
    assert len(shapes.templates) == 1


def test_a_counter_is_a_varying_part():
    """The kernel's counter layout (bytes, then packets) is read as (packets, bytes)."""
    m = next(m for m in RULES if any(e["name"] == "counter" for e in m.attrs["expressions"]))
    v = _varied(m, bytes, lambda: 7)
    v.attrs["expressions"] = [
        {"name": "counter", "data": {"bytes": 1000, "packets": 3}} if e["name"] == "counter"
        else e for e in v.attrs["expressions"]]
    a = decode_shapes.Rules().attrs(encoder.encode(v)[2], 4)
    assert (3, 1000) in a["vary"]


SAMPLES = [(m.family, encoder.encode(m)[2]) for m in RULES[:200]]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(raw):
    _fast(decode_shapes.Rules(), "inet", raw)


@settings(max_examples=600, deadline=None)
@given(st.integers(0, len(SAMPLES) - 1), st.integers(0, 10_000), st.integers(0, 255),
       st.integers(1, 4))
def test_fuzz_mutated_rules(which, pos, byte, count):
    family, body = SAMPLES[which]
    shapes = decode_shapes.Rules()
    _fast(shapes, family, body)
    pos %= len(body)
    bad = body[:pos] + bytes([byte]) * count + body[pos + count:]
    _fast(shapes, family, bad)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fuzz_truncated(n):
    for family, body in SAMPLES[:50]:
        _fast(decode_shapes.Rules(), family, body[:len(body) - n - 1])


SAME_SHAPES = """
table inet t {
	chain c {
		ip protocol tcp tcp dport 22 accept
		ip protocol udp udp dport 22 accept
		meta l4proto tcp th dport 22 accept
		meta l4proto udp th dport 22 accept
		meta l4proto tcp tcp dport 22 accept
		meta l4proto udp udp dport 22 accept
		icmp type echo-request icmp id 7 accept
		icmp type destination-unreachable icmp mtu 7 accept
		meta nfproto ipv4 meta l4proto icmp accept
		meta nfproto ipv6 meta l4proto icmp accept
		ether type vlan vlan id 4 accept
		ether type ip ip saddr 10.0.0.1 accept
		tcp flags syn / syn,ack accept
		tcp flags != syn / syn,ack accept
		tcp flags & (syn | ack) != 0 accept
		tcp flags & (syn | ack) != syn accept
		iifname "eth0" accept
		iifname "eth*" accept
		tcp dport >= 10 tcp dport <= 20 accept
		tcp dport >= 30 tcp dport <= 40 accept
	}
}
table bridge b {
	chain c {
		ether type ip ip saddr 10.0.0.1 accept
		ether type ip6 ip6 saddr ::1 accept
		ether type vlan vlan id 4 accept
	}
}
"""


def test_rules_whose_values_select_headers_decode_as_in_full():
    """Pairs of rules of one shape where a value says which header follows (a protocol
    key, an ICMP type) or how a match reads (a zero flag mask, a wildcard): the template
    of the first must not make the second."""
    shapes = decode_shapes.Rules()
    n = 0
    for m in compiler.compile(parser.parse(SAME_SHAPES, "same.nft"), ifindex=lambda n: 1):
        if m.kind == "newrule":
            body = encoder.encode(m)[2]
            assert _fast(shapes, m.family, body) == _slow(m.family, body)
            n += 1
    assert n == 23 and len(shapes.shapes) < n
