"""The VM group: tests marked `vm` need a full kernel (cgroup v2 with cpu, memory and pids;
the dummy, ipvlan and vlan drivers). They run only where tests/vm/run.py says so through
$LINX_VM (inside the VM it boots, or on a host that has all of that); anywhere else, the
normal `pytest tests` included, they are skipped with the way to run them."""
import os
import uuid

import pytest

import cgroupfs

INSIDE = os.environ.get("LINX_VM")


def pytest_collection_modifyitems(config, items):
    if INSIDE:
        return
    skip = pytest.mark.skip(reason="needs a full kernel: `make test-vm` runs it in a VM")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)


@pytest.fixture
def cgroup_parent():
    """A fresh cgroup under the cgroup2 root with cpu, memory and pids delegated to its
    children, as (absolute path, path relative to the mount). Removed afterwards, with
    anything a test left in it."""
    root = cgroupfs.root()
    name = f"linx-vm-{uuid.uuid4().hex[:8]}"
    path = os.path.join(root, name)
    os.mkdir(path)
    try:
        with open(os.path.join(path, "cgroup.subtree_control"), "w") as f:
            f.write("+cpu +memory +pids")
        yield path, name
    finally:
        cgroupfs.remove(path)
    assert not os.path.exists(path)
