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


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="kernel and CLI tests need root")
        for item in items:
            if "/unit/" not in str(item.fspath):
                item.add_marker(skip)
