"""Shared fixtures. Kernel and CLI tests run as root, inside namespaces they make themselves,
and leave nothing behind (ARCHITECTURE.md, "Tests")."""
import os
import subprocess
import sys
import uuid

import pytest

BIN = os.path.dirname(sys.executable)
LINX = os.path.join(BIN, "linx")


def linx(*args, check=False, timeout=60, **kw) -> subprocess.CompletedProcess:
    """Run the installed `linx` CLI; text output captured."""
    kw.setdefault("capture_output", True)
    return subprocess.run([LINX, *map(str, args)], text=True, timeout=timeout, check=check, **kw)


@pytest.fixture
def run_linx():
    return linx


@pytest.fixture
def netns():
    """A fresh named network namespace (ip netns), deleted afterwards."""
    name = f"linx-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def mount_ns_pid(tmp_path):
    """The pid (as text) of a sleep in a fresh private mount namespace; afterwards, the host's
    table has nothing mounted under tmp_path."""
    import time
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "600"])
    ours = os.stat("/proc/self/ns/mnt").st_ino
    deadline = time.monotonic() + 10          # a loaded machine may take a while to exec it
    while True:
        try:
            if os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino != ours:
                break
        except FileNotFoundError:
            pass
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            holder.wait()
            pytest.fail("unshare did not make a mount namespace")
        time.sleep(0.01)
    yield str(holder.pid)
    holder.kill()
    holder.wait()
    from linx_core import mount
    assert [e.mount_point for e in mount.read("/proc/self/mountinfo")
            if (e.mount_point + "/").startswith(f"{tmp_path}/")] == []


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="kernel and CLI tests need root")
        for item in items:
            if "/unit/" not in str(item.fspath):
                item.add_marker(skip)
