"""linx_core.user against the real kernel: maps written to a child parked at the checkpoint in a
fresh user namespace, read back from /proc, and the identity the workload then has."""
import os
import tempfile

import pytest

from linx_core import user
from linx_core.errors import UsageError
from linx_core.process import Session
from linx_core.user import Map, UserError


@pytest.fixture
def parked():
    s = Session.spawn(["/bin/true"], ["user"])
    pid = s.wait_ready()
    yield pid
    if s.outcome is None:
        s.abort()
        s.wait(5)
    s.close()


def proc(pid, name):
    with open(f"/proc/{pid}/{name}") as f:
        return f.read()


def test_unwritten_maps_read_empty(parked):
    assert user.read_uid_map(parked) == [] and user.read_gid_map(parked) == []
    assert user.read_setgroups(parked) == "allow"


def test_setup_maps_writes_deny_then_both_maps(parked):
    uid = [(0, 100000, 1000), (1000, 200000, 10)]
    user.setup_maps(parked, uid=uid, gid=[(0, 300000, 65536)])
    assert user.parse_map(proc(parked, "uid_map")) == [Map(0, 100000, 1000), Map(1000, 200000, 10)]
    assert proc(parked, "gid_map").split() == ["0", "300000", "65536"]
    # the kernel refuses "deny" once gid_map is written: reading deny proves it came first
    assert proc(parked, "setgroups").strip() == "deny"
    assert user.read_uid_map(parked) == [Map(0, 100000, 1000), Map(1000, 200000, 10)]
    assert user.read_gid_map(parked) == [Map(0, 300000, 65536)]


def test_maps_are_write_once(parked):
    user.set_uid_map(parked, [(0, 100000, 1)])
    with pytest.raises(UserError) as e:
        user.set_uid_map(parked, [(0, 100000, 1)])
    assert (e.value.op, e.value.path, e.value.errno) == ("set_uid_map", f"/proc/{parked}/uid_map", 1)
    assert str(e.value) == f"user set_uid_map failed on /proc/{parked}/uid_map: EPERM (errno 1)"


def test_setgroups_skip_leaves_it_allowed(parked):
    user.setup_maps(parked, uid=[(0, 100000, 1)], gid=[(0, 100000, 1)], setgroups="skip")
    assert proc(parked, "setgroups").strip() == "allow"


def test_bad_map_writes_nothing(parked):
    with pytest.raises(UsageError):
        user.setup_maps(parked, uid=[(0, 100000, 10)], gid=[(0, 1, 5), (3, 9, 1)])
    assert proc(parked, "uid_map") == "" and proc(parked, "setgroups").strip() == "allow"


def test_dead_pid():
    with pytest.raises(UserError) as e:
        user.set_uid_map(9999999, [(0, 1000, 1)])
    assert (e.value.op, e.value.path, e.value.errno) == ("set_uid_map", "/proc/9999999/uid_map", 2)
    with pytest.raises(UserError) as e:
        user.read_gid_map(9999999)
    assert (e.value.op, e.value.errno) == ("read_gid_map", 2)


def test_workload_runs_as_the_mapped_ids():
    """Root inside maps to 100000 outside: what it creates on the host belongs to 100000."""
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:   # reachable by host uid 100000
        os.chmod(shared, 0o1777)
        made = os.path.join(shared, "made")
        s = Session.spawn(["/bin/sh", "-c", f"touch {made}"], ["user"])
        with s:
            pid = s.wait_ready()
            user.setup_maps(pid, uid=[(0, 100000, 65536)], gid=[(0, 100000, 65536)])
            s.proceed(uid=0, gid=0)       # setresuid(0) inside: CAP_SETUID in its own namespace
            assert s.wait(10) == {"event": "exited", "code": 0}
        st = os.stat(made)
        assert (st.st_uid, st.st_gid) == (100000, 100000)
