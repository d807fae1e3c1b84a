"""The VM group: tests marked `vm` need a full kernel (cgroup v2 with cpu, memory and pids;
the dummy, ipvlan and vlan drivers; nft flowtables and NFQUEUE). They run only where
tests/vm/run.py says so through $LINX_VM (inside the VM it boots, or on a host that has all
of that); anywhere else, the normal `pytest tests` included, they are skipped with the way to
run them."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
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


def _children(pid: int | str = "self") -> set[int]:
    out = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.update(map(int, f.read().split()))
        except OSError:
            pass
    return out


def _kill_new_children(before: set[int], expired: list) -> None:
    """Kill the processes started since `before`, and their descendants."""
    expired.append(True)
    todo = list(_children() - before)
    while todo:
        pid = todo.pop()
        try:
            todo += _children(pid)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def invoke(*args, timeout: int = 120) -> subprocess.CompletedProcess:
    """`linx ARGS...` through the CLI's entry point (linx_cli.main.main, what the console
    script calls), in this process: under emulation every new Python process costs 5-30 s
    of interpreter start and imports. stdout and stderr are captured at the fd level, so the
    output of a workload linx runs is caught too. After `timeout` seconds the processes the
    call started (linx-agent, the workload and its children) are killed and TimeoutError
    raised."""
    from linx_cli.main import main
    argv = [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_fds, saved_streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        expired: list = []
        watchdog = threading.Timer(timeout, _kill_new_children, (_children(), expired))
        watchdog.start()
        code = 0
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        finally:
            watchdog.cancel()
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((1, 2), saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if expired:
        raise TimeoutError(f"linx {' '.join(argv)} did not finish in {timeout}s; stderr: {stderr!r}")
    return subprocess.CompletedProcess(["linx", *argv], code, stdout, stderr)


@pytest.fixture
def linx():
    return invoke
