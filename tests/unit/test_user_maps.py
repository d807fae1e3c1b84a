"""linx_core.user's pure parts: map parsing, validation (the seed's bad_map cases and the
kernel's own rules), --map-* planning, /etc/subuid lookup."""
import os

import pytest

from linx_core import user
from linx_core.errors import UsageError
from linx_core.user import Map


def test_parse_map_skips_malformed_lines():
    text = "         0       1000          1\n         1     100000      65535\nbad line\n1 2\n3 4 0\n"
    assert user.parse_map(text) == [Map(0, 1000, 1), Map(1, 100000, 65535)]
    assert user.parse_map("") == []


def test_map_renders_compact_or_as_ranges():
    assert str(Map(0, 1000, 1)) == "0 -> 1000"
    assert str(Map(0, 100000, 65536)) == "0..65535 -> 100000..165535"


def test_validate_accepts_and_normalises():
    assert user.validate([(0, 1000, 1), Map(1, 100000, 65535)]) == [Map(0, 1000, 1), Map(1, 100000, 65535)]
    assert user.render([Map(0, 1000, 1), Map(1, 2000, 3)]) == "0 1000 1\n1 2000 3\n"


@pytest.mark.parametrize("mappings, text", [
    ([], "empty"),
    ([(0, 1000)], "0:1000: expected INSIDE:OUTSIDE:LENGTH"),
    ([(-1, 1000, 1)], "-1:1000:1: ids must be >= 0"),
    ([(0, 1000, 0)], "0:1000:0: ids must be >= 0 and LENGTH > 0"),
    ([(0, "1000", 1)], "0:1000:1: expected INSIDE:OUTSIDE:LENGTH, three integers"),
    ([(0, 1000, True)], "expected INSIDE:OUTSIDE:LENGTH"),
    ("0 1000 1", "expected a list"),
    ([(0, 1000, 5), (4, 2000, 1)], "4:2000:1 overlaps 0:1000:5 inside"),
    ([(0, 1000, 5), (10, 1004, 1)], "10:1004:1 overlaps 0:1000:5 outside"),
    ([(0, 2**32 - 2, 2)], "runs past id 4294967294"),
    ([(i, i, 1) for i in range(341)], "at most 340"),
    ([(i * 10**9 // 200, 4 * 10**9 - i, 1) for i in range(200)], "one write"),
])
def test_bad_maps_name_the_entry(mappings, text):
    with pytest.raises(UsageError) as e:
        user.validate(mappings, "--map-uid")
    assert e.value.exit_status == 2
    assert str(e.value).startswith("--map-uid: ") and text in str(e.value)


def test_parse_entry():
    assert user.parse_entry("0:1000:1", "--map-uid") == Map(0, 1000, 1)
    for bad in ("0:1000", "0:1000:1:2", "a:b:c", "-1:0:1", ""):
        with pytest.raises(UsageError, match=f"--map-uid: '{bad}'"):
            user.parse_entry(bad, "--map-uid")


@pytest.fixture
def subids(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n4242:200000:1000\nroot:300000:65536\nroot:400000:10\n")
    return str(path)


def test_subid_range_by_name_then_uid(subids):
    assert user.subid_range(subids, 0) == (300000, 65536)          # root, first line only
    assert user.subid_range(subids, 4242) == (200000, 1000)         # no passwd name: by number
    with pytest.raises(UsageError, match="--map-auto: no range for 4343 in"):
        user.subid_range(subids, 4343)
    with pytest.raises(UsageError, match="--map-auto: cannot read /nonexistent"):
        user.subid_range("/nonexistent", 0)


def test_plan(subids):
    assert user.plan(root_user=True, uid=1000, gid=100) == ([Map(0, 1000, 1)], [Map(0, 100, 1)])
    assert user.plan(["0:1000:1", "1:100000:65535"], uid=1, gid=1) == \
        ([Map(0, 1000, 1), Map(1, 100000, 65535)], [])
    assert user.plan(auto=True, uid=4242, gid=0, subuid=subids, subgid=subids) == \
        ([Map(0, 200000, 1000)], [Map(0, 300000, 65536)])
    assert user.plan(root_user=True, auto=True, uid=0, gid=0, subuid=subids, subgid=subids) == \
        ([Map(0, 0, 1), Map(1, 300000, 65536)], [Map(0, 0, 1), Map(1, 300000, 65536)])
    with pytest.raises(UsageError, match="--map-gid: 0:5:1 overlaps 0:100:1 inside"):
        user.plan(map_gid=["0:5:1"], root_user=True, uid=1000, gid=100)


def test_setup_maps_validates_everything_before_writing(tmp_path):
    # a pid that cannot exist: any write would fail with ENOENT, so a UsageError proves
    # nothing was attempted
    with pytest.raises(UsageError, match="gid map: .*overlaps"):
        user.setup_maps(2**22 + 1, uid=[(0, 1000, 1)], gid=[(0, 1, 2), (1, 5, 1)])
    with pytest.raises(UsageError, match="setgroups: 'sometimes'"):
        user.setup_maps(2**22 + 1, uid=[(0, 1000, 1)], gid=[(0, 1, 1)], setgroups="sometimes")
    assert os.path.exists("/proc/self/uid_map") == user.supported()
