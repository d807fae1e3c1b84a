"""linx_core.mount's pure parts: the mountinfo parser (proc(5)), libmount's option merge,
the findmnt row, flag names."""
import pytest

from linx_core import mount
from linx_core.errors import UsageError

# proc(5)'s example line, then lines as kernel 6.x writes them
PROC5 = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"


def test_proc5_example():
    e = mount.parse_line(PROC5)
    assert e == mount.Entry(36, 35, "98:0", "/mnt1", "/mnt/parent", "rw,noatime", (("master", 1),),
                            "ext3", "/dev/root", "rw,errors=continue", "master:1")
    assert str(e) == "ext3 on /mnt/parent (rw,noatime)"


@pytest.mark.parametrize("raw, decoded", [
    (r"/mnt/with\040spaces", "/mnt/with spaces"),
    (r"/a\011tab", "/a\ttab"),
    (r"/a\012newline", "/a\nnewline"),
    (r"/back\134slash", "/back\\slash"),
    (r"/not\08octal", r"/not\08octal"),
    ("/plain", "/plain"),
])
def test_octal_escapes_in_paths(raw, decoded):
    e = mount.parse_line(f"70 67 0:41 {raw} {raw} rw - tmpfs {raw} rw")
    assert (e.root, e.mount_point, e.source) == (decoded, decoded, decoded)


def test_propagation_fields_shared_and_slave_at_once_and_unbindable():
    e = mount.parse_line("68 67 0:39 / /x rw,relatime shared:42 master:7 propagate_from:3 - tmpfs none rw")
    assert e.propagation == (("shared", 42), ("master", 7), ("propagate_from", 3))
    assert e.findmnt()["propagation"] == "shared,slave"
    e = mount.parse_line("70 67 0:41 / /y ro,nosuid unbindable - tmpfs tmpfs ro")
    assert e.propagation == (("unbindable", None),)
    assert e.findmnt()["propagation"] == "private,unbindable"
    e = mount.parse_line("71 67 0:41 / /z rw master:9 - tmpfs tmpfs rw")
    assert e.findmnt()["propagation"] == "private,slave"


def test_unknown_optional_tag_keeps_the_mount_and_the_raw_field():
    e = mount.parse_line("72 67 0:41 / /z rw shared:5 future:1 - tmpfs tmpfs rw")
    assert e.propagation == (("shared", 5),)
    assert e.opt_fields == "shared:5 future:1"


def test_empty_source_is_kept_empty_and_null_in_findmnt_row():
    e = mount.parse_line("69 67 0:40 / /t rw,relatime - tmpfs  rw")
    assert e.source == "" and e.super_options == "rw"
    assert e.findmnt()["source"] is None and e.findmnt()["opt-fields"] is None


@pytest.mark.parametrize("line", [
    "", "garbage", "1 2 3", "x 2 0:1 / / rw - tmpfs t rw", "1 2 0:1 / / rw tmpfs t rw",
    "1 2 01 / / rw - tmpfs t rw", "1 2 0:1 / / rw - tmpfs t",
])
def test_malformed_lines_are_skipped(line):
    assert mount.parse_line(line) is None
    assert mount.parse(f"{PROC5}\n{line}\n{PROC5}\n") == [mount.parse_line(PROC5)] * 2


def test_findmnt_row_keys_and_bind_source():
    e = mount.parse_line(r"68 67 0:39 /src /tmp/a\040b rw,relatime shared:3 - tmpfs none rw,size=1024k")
    assert e.findmnt() == {
        "id": 68, "parent": 67, "maj:min": "0:39", "fsroot": "/src", "target": "/tmp/a b",
        "source": "none[/src]", "fstype": "tmpfs", "options": "rw,relatime,size=1024k",
        "vfs-options": "rw,relatime", "fs-options": "rw,size=1024k", "propagation": "shared",
        "opt-fields": "shared:3"}


@pytest.mark.parametrize("vfs, fs, merged", [          # libmount's merge_optstr cases
    ("rw,noexec", "rw,journal=update", "rw,noexec,journal=update"),
    ("rw,noexec", "ro,journal=update", "ro,noexec,journal=update"),
    ("ro,nosuid,relatime", "ro", "ro,nosuid,relatime"),
    ("rw,relatime", "rw", "rw,relatime"),
    ("rw", "rw", "rw"),
    ("ro,relatime", "rw,size=4k", "ro,relatime,size=4k"),
])
def test_merge_options(vfs, fs, merged):
    assert mount.merge_options(vfs, fs) == merged


def test_flag_names():
    assert mount.flag_bits(["bind", "rec"]) == 4096 | 16384
    assert mount.flag_bits("ro,nosuid") == 3
    assert mount.flag_bits(["no-follow", "detach"], mount.UMOUNT_FLAGS) == 8 | 2
    with pytest.raises(UsageError, match="'readonly'"):
        mount.flag_bits(["ro", "readonly"])


def test_bad_input_is_a_usage_error_before_any_syscall():
    with pytest.raises(UsageError, match="flags: unknown flag 'bogus'"):
        mount.mount("none", "/nonexistent", "tmpfs", flags=["bogus"])
    with pytest.raises(UsageError, match="'umbindable'"):
        mount.set_propagation("/", "umbindable")
    with pytest.raises(UsageError, match="'lazy'"):
        mount.umount("/nonexistent", ["lazy"])
