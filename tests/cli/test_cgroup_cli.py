"""`linx cgroup` and `linx run --cgroup` end to end: core verbs against a test cgroup under
the real cgroup2 mount (removed afterwards), typed limits against a fake cgroupfs tree
($LINX_CGROUP_ROOT), checked through the kernel's files and /proc."""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from conftest import LINX, linx

MOUNT = subprocess.run(["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"],
                       capture_output=True, text=True).stdout.split()


@pytest.fixture
def cg():
    """(name relative to the cgroup2 mount, absolute path); emptied and removed afterwards."""
    name = f"linx-t-{uuid.uuid4().hex[:8]}"
    path = os.path.join(MOUNT[0], name)
    yield name, path
    for dirpath, _, _ in os.walk(path, topdown=False):
        with open(os.path.join(dirpath, "cgroup.kill"), "w") as f:
            f.write("1")
        for _ in range(200):
            with open(os.path.join(dirpath, "cgroup.events")) as f:
                if "populated 0" in f.read():
                    break
            time.sleep(0.01)
        os.rmdir(dirpath)


@pytest.fixture
def fake(tmp_path):
    """A fake cgroupfs root with one cgroup, web, showing the controller knobs."""
    web = tmp_path / "web"
    web.mkdir()
    for name, text in {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
                       "pids.max": "max", "cpu.max": "max 100000", "cpu.weight": "100",
                       "io.max": "", "cgroup.procs": ""}.items():
        (web / name).write_text(text + "\n")
    env = {**os.environ, "LINX_CGROUP_ROOT": str(tmp_path)}
    return web, env


def events(path: str) -> dict:
    with open(os.path.join(path, "cgroup.events")) as f:
        return dict(line.split() for line in f)


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


def one_line_error(r, code: int) -> str:
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linx: ")
    return lines[0]


def test_lifecycle(cg):
    name, path = cg
    r = linx("cgroup", "create", name, check=True)
    assert r.stdout.strip() == path and os.path.isfile(os.path.join(path, "cgroup.procs"))
    assert linx("cgroup", "create", path).returncode == 0          # idempotent, absolute form
    p = subprocess.Popen(["sleep", "60"])
    try:
        linx("cgroup", "add-process", name, p.pid, check=True)
        assert cgroup_of(p.pid) == "/" + name
        err = one_line_error(linx("cgroup", "destroy", name), 1)
        assert f"cgroup destroy failed on {path}: EBUSY (errno 16)" in err
        linx("cgroup", "freeze", name, check=True)
        assert events(path)["frozen"] == "1"
        linx("cgroup", "thaw", name, check=True)
        assert events(path)["frozen"] == "0"
        tree = json.loads(linx("cgroup", "ls", name, "--json", check=True).stdout)
        assert tree == [{"path": "/" + name, "depth": 0, "procs": 1, "populated": True,
                         "frozen": False, "subtree_control": []}]
        text = linx("cgroup", "ls", name, check=True).stdout.splitlines()
        assert text[0].split() == ["CGROUP", "PROCS", "POPULATED", "FROZEN", "CONTROLLERS"]
        assert text[1].split() == ["/" + name, "1", "yes", "no"]
        linx("cgroup", "destroy", "--kill", name, check=True)
        assert p.wait(5) == -9
    finally:
        p.kill()
        p.wait()
    assert not os.path.exists(path)


def test_create_quiet(cg):
    """-q: nothing printed, the exit status says; an error still goes to stderr."""
    name, path = cg
    r = linx("cgroup", "create", "-q", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "") and os.path.isdir(path)
    r = linx("cgroup", "create", "--quiet", path)                     # an existing one is fine
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = linx("cgroup", "create", "-q", f"{name}/no/such")               # mkdir, not mkdir -p
    assert r.stdout == "" and "ENOENT" in one_line_error(r, 1)


def test_ls_keeps_the_tree_shape(cg):
    """Children indented two spaces a level under their parent, depth first, as --json orders them."""
    name, path = cg
    for sub in (name, f"{name}/a", f"{name}/a/deep", f"{name}/b"):
        os.mkdir(os.path.join(MOUNT[0], sub))
    nodes = json.loads(linx("cgroup", "ls", name, "--json", check=True).stdout)
    assert [(n["path"], n["depth"]) for n in nodes] == [
        ("/" + name, 0), (f"/{name}/a", 1), (f"/{name}/a/deep", 2), (f"/{name}/b", 1)]
    text = linx("cgroup", "ls", name, check=True).stdout.splitlines()
    assert [(len(line) - len(line.lstrip()), line.split()[0]) for line in text[1:]] == \
        [(0, "/" + name), (2, "a"), (4, "deep"), (2, "b")]
    assert all(line.split()[1:3] == ["0", "no"] for line in text[1:])


def test_read_write_stats_json(cg):
    name, path = cg
    linx("cgroup", "create", name, check=True)
    r = linx("cgroup", "read", name, "cgroup.type", "--json", check=True)
    assert json.loads(r.stdout) == {"path": path, "file": "cgroup.type", "value": "domain"}
    linx("cgroup", "write", name, "cgroup.max.descendants", "3", check=True)
    with open(os.path.join(path, "cgroup.max.descendants")) as f:
        assert f.read().strip() == "3"
    err = one_line_error(linx("cgroup", "write", name, "cgroup.max.descendants", "lots"), 1)
    assert "EINVAL" in err
    stats = json.loads(linx("cgroup", "stats", name, "--json", check=True).stdout)
    with open(os.path.join(path, "cpu.stat")) as f:
        usage = int(dict(line.split() for line in f)["usage_usec"])
    assert stats["path"] == path and stats["cpu_usec"] == usage
    assert set(stats) == {"path", "cpu_usec", "cpu_user_usec", "cpu_system_usec", "cpu_nr_throttled",
                          "cpu_throttled_usec", "memory_current", "memory_peak", "pids_current"}


@pytest.mark.parametrize("path", ["/sys/fs/cgroup/memory/linx-t-v1", "../memory/linx-t-v1",
                                  "/tmp/linx-t-x", "a/../../linx-t-x"])
def test_paths_outside_the_mount_are_refused(path):
    err = one_line_error(linx("cgroup", "create", path), 2)
    assert "outside the cgroup2 mount" in err
    assert not os.path.exists("/sys/fs/cgroup/memory/linx-t-v1")
    assert not os.path.exists("/tmp/linx-t-x")


def test_enable_controllers_reports_per_controller(cg):
    name, path = cg
    linx("cgroup", "create", name, check=True)
    r = linx("cgroup", "enable-controllers", name, "nosuch", "hugetlb", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["enabled"] == [] and set(doc["failed"]) == {"nosuch", "hugetlb"}
    assert linx("cgroup", "enable-controllers", name, "+memory").returncode == 2


def test_set_limits_on_a_fake_tree(fake):
    web, env = fake
    linx("cgroup", "set", "web", "memory.max=256M", "memory.high=1G", "memory.swap.max=0",
         "pids.max=100", "cpu.max=50ms/100ms", "cpu.weight=50", "io.max=8:0 rbps=1M wiops=max",
         env=env, check=True)
    got = {n: (web / n).read_text() for n in ("memory.max", "memory.high", "memory.swap.max",
                                              "pids.max", "cpu.max", "cpu.weight", "io.max")}
    assert got == {"memory.max": "268435456", "memory.high": "1073741824", "memory.swap.max": "0",
                   "pids.max": "100", "cpu.max": "50000 100000", "cpu.weight": "50",
                   "io.max": "8:0 rbps=1048576 wiops=max"}


def test_bad_limit_writes_nothing(fake):
    web, env = fake
    err = one_line_error(linx("cgroup", "set", "web", "memory.max=1G", "cpu.max=1ms/5s", env=env), 2)
    assert err.startswith("linx: cpu.max:") and "period" in err
    assert (web / "memory.max").read_text() == "max\n"


def test_refused_limit_puts_the_others_back(fake):
    web, env = fake
    (web / "pids.max").unlink()     # as when the pids controller is not enabled
    err = one_line_error(linx("cgroup", "set", "web", "memory.max=1G", "pids.max=5", env=env), 1)
    assert "ENOENT" in err and "pids controller" in err
    assert (web / "memory.max").read_text() == "max"


def test_top_needs_a_terminal():
    err = one_line_error(linx("cgroup", "top"), 2)
    assert "not a terminal" in err


def test_top_in_a_terminal(cg):
    pexpect = pytest.importorskip("pexpect")
    name, _ = cg
    linx("cgroup", "create", name, check=True)
    child = pexpect.spawn(LINX, ["cgroup", "top", name, "--count", "2", "--interval", "0.2"],
                          dimensions=(30, 120), timeout=10, encoding="utf-8")
    child.expect("CGROUP")
    child.expect("CPU%")
    child.expect("/" + name)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("group", ["cgroup", "sysctl"])
def test_help_imports_neither_library_nor_rich(group):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "linx_cli.main", group, "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Usage: linx" in r.stdout
    modules = {line.split("|")[-1].strip() for line in r.stderr.splitlines()}
    assert not {"rich", f"linx_core.{group}"} & modules


# -- linx run --cgroup -------------------------------------------------------

def test_run_places_the_workload_then_removes_the_cgroup(cg):
    name, path = cg
    r = linx("run", "--cgroup", name, "--", "cat", "/proc/self/cgroup", check=True)
    assert f"0::/{name}" in r.stdout.splitlines()
    assert not os.path.exists(path)
    r = linx("run", "--cgroup", path, "--keep-cgroup", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7 and os.path.isdir(path)
    linx("run", "--cgroup", name, "--", "true", check=True)     # existed before: left alone
    assert os.path.isdir(path)


def test_run_refused_knob_aborts_and_removes_the_cgroup(cg, tmp_path):
    """memory is not delegated in v2 here: memory.max is missing, the write fails."""
    name, path = cg
    with open(os.path.join(MOUNT[0], "cgroup.subtree_control")) as f:
        if "memory" in f.read().split():
            pytest.skip("memory is delegated on this host")
    marker = tmp_path / "ran"
    r = linx("run", "--cgroup", name, "--memory-max", "256M", "--", "touch", marker)
    assert r.returncode == 125
    assert "memory.max" in r.stderr and "ENOENT" in r.stderr
    assert not marker.exists()
    assert not os.path.exists(path)


def test_run_sets_limits_before_the_workload_runs(fake):
    web, env = fake
    r = linx("run", "--cgroup", "web", "--memory-max", "256M", "--memory-high", "128M",
             "--pids-max", "10", "--cpu-max", "50ms/100ms", "--cpu-weight", "50",
             "--events", "-", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    ready = next(json.loads(line) for line in r.stderr.splitlines() if '"ready"' in line)
    assert (web / "cgroup.procs").read_text() == str(ready["host_pid"])
    assert {n: (web / n).read_text() for n in ("memory.max", "memory.high", "pids.max", "cpu.max",
                                               "cpu.weight")} == \
        {"memory.max": "268435456", "memory.high": "134217728", "pids.max": "10",
         "cpu.max": "50000 100000", "cpu.weight": "50"}
    assert web.is_dir()


@pytest.mark.parametrize("args, words", [
    (["--memory-max", "1G"], "--memory-max: needs --cgroup PATH"),
    (["--cgroup", "web", "--pids-max", "-3"], "--pids-max:"),
    (["--cgroup", "web", "--cpu-weight", "0"], "--cpu-weight:"),
    (["--cgroup", "../x"], "outside the cgroup2 mount"),
    (["--cgroup", "web", "-d"], "--keep-cgroup"),
])
def test_run_bad_cgroup_flags_exit_2_before_spawning(fake, args, words):
    web, env = fake
    r = linx("run", *args, "--events", "-", "--", "true", env=env)
    assert r.returncode == 2 and words in r.stderr
    assert "ready" not in r.stderr                          # nothing was spawned
    assert (web / "cgroup.procs").read_text() == "\n"


def test_run_leftover_process_is_a_warning(cg):
    name, path = cg
    r = linx("run", "--cgroup", name, "--", "sh", "-c", "sleep 30 >/dev/null 2>&1 & exit 3")
    assert r.returncode == 3
    assert "warning" in r.stderr and "EBUSY" in r.stderr
    assert os.path.isdir(path)      # the fixture kills what is left and removes it
