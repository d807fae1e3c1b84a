"""The detach-key matcher: matched across reads, held prefix flushed on mismatch, first key
twice sends it once."""
import pytest

from linx_core.errors import UsageError
from linx_core.tty import DetachMatcher, parse_detach_keys

CP, CQ = b"\x10", b"\x11"


def feed_all(keys, *chunks):
    m = DetachMatcher(keys)
    out, detached = b"", False
    for c in chunks:
        data, detached = m.feed(c)
        out += data
        if detached:
            break
    return out, detached


@pytest.mark.parametrize("chunks, out, detached", [
    ((b"abc",), b"abc", False),
    ((CP + CQ,), b"", True),
    ((b"ab" + CP, CQ + b"ignored"), b"ab", True),     # across reads
    ((CP, b"x"), CP + b"x", False),                   # held prefix flushed on mismatch
    ((CP + CP,), CP, False),                          # first key twice: once, literally
    ((CP + CP + CP + CQ,), CP, True),
    ((CP,), b"", False),                              # held until the next keystroke
])
def test_matcher(chunks, out, detached):
    assert feed_all(CP + CQ, *chunks) == (out, detached)


def test_three_key_sequence_and_disabled():
    assert feed_all(b"abc", b"abx") == (b"abx", False)
    assert feed_all(b"abc", b"a", b"b", b"c") == (b"", True)
    assert feed_all(b"", CP + CQ) == (CP + CQ, False)


def test_parse_detach_keys():
    assert parse_detach_keys("ctrl-p,ctrl-q") == CP + CQ
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("none") == b""
    with pytest.raises(UsageError, match="--detach-keys"):
        parse_detach_keys("ctrl-pp")
