"""wire.decode_setelems, the fast element reader of `linx nft pull`: it gives what the
NFTA_SET_ELEM_LIST attribute table gives, for every element message of the corpus and
for random or mutated bytes (or both raise MalformedMessage)."""

import pytest
from hypothesis import given, settings, strategies as st

from linx_core.netlink.errors import MalformedMessage
from linx_core.netfilter import encoder, wire
from nftoracle import CORPUS, compiled


def _bodies():
    out = []
    for path in CORPUS:
        for m in compiled(path):
            if m.kind == "newsetelem":
                out.append(encoder.encode(m)[2])
    return out


BODIES = _bodies()


def _both(body, off=4):
    try:
        fast = wire.decode_setelems(body, off)
    except MalformedMessage:
        fast = MalformedMessage
    try:
        slow = wire.tables()["setelem"].decode(body, off)
    except MalformedMessage:
        slow = MalformedMessage
    return fast, slow


def test_the_corpus_has_plain_and_other_elements():
    elems = [e for b in BODIES for e in wire.decode_setelems(b, 4)["elements"]]
    assert any(list(e) == ["key"] for e in elems)
    assert any(len(e) > 1 for e in elems)


@pytest.mark.parametrize("i", range(len(BODIES)))
def test_corpus_elements_decode_as_the_table_does(i):
    fast, slow = _both(BODIES[i])
    assert fast == slow


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(raw):
    fast, slow = _both(raw, 0)
    assert (fast is MalformedMessage) == (slow is MalformedMessage)
    if fast is not MalformedMessage:
        assert fast == slow


@settings(max_examples=600, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 255), st.integers(1, 4))
def test_fuzz_mutated_messages(which, pos, byte, count):
    body = BODIES[which % len(BODIES)]
    pos %= len(body)
    fast, slow = _both(body[:pos] + bytes([byte]) * count + body[pos + count:])
    assert fast == slow
