"""cgroup v2 controllers for real (the VM group): limits that `linx run --cgroup` sets hold a
workload, and `linx cgroup` delegates, freezes and reports; every check reads cgroupfs itself
(memory.events, pids.events, cpu.stat, cgroup.events), not linx's own report of it."""
import json
import os
import subprocess
import time

import pytest

from cgroupfs import keyed, read

pytestmark = pytest.mark.vm


def test_memory_max_oom_kills_a_hog(cgroup_parent, linx, tmp_path):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "hog")
    events = tmp_path / "events.jsonl"
    # dd reads 200 MiB from /dev/zero into one buffer, touching every page of it
    r = linx("run", "--cgroup", f"{rel}/hog", "--keep-cgroup", "--memory-max", "50M", "--events", events,
             "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1", timeout=120)
    assert r.returncode == 128 + 9, r.stderr
    last = json.loads(events.read_text().splitlines()[-1])
    assert (last["event"], last["signo"]) == ("signaled", 9)
    assert read(cg, "memory.max") == str(50 << 20)
    assert keyed(cg, "memory.events")["oom_kill"] >= 1
    peak = int(read(cg, "memory.peak"))
    assert 40 << 20 < peak <= 50 << 20          # it reached the ceiling and never passed it
    r = linx("cgroup", "stats", "--json", f"{rel}/hog")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memory_peak"] == peak


def test_pids_max_makes_a_fork_fail(cgroup_parent, linx):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "forks")
    # sh and four sleeps fill pids.max=5; the fifth fork fails. A pid namespace takes the
    # sleeps down with sh.
    r = linx("run", "--ns", "pid", "--cgroup", f"{rel}/forks", "--keep-cgroup", "--pids-max", "5",
             "--", "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 60 & done; wait")
    assert r.returncode != 0
    assert "fork" in r.stderr.lower(), r.stderr
    assert read(cg, "pids.max") == "5"
    assert keyed(cg, "pids.events")["max"] >= 1


def test_cpu_max_throttles(cgroup_parent, linx):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "spin")
    r = linx("run", "--cgroup", f"{rel}/spin", "--keep-cgroup", "--cpu-max", "10ms/100ms", "--",
             "timeout", "2", "sh", "-c", "while :; do :; done")
    assert r.returncode == 124, r.stderr          # timeout(1) ended the loop
    assert read(cg, "cpu.max") == "10000 100000"
    stat = keyed(cg, "cpu.stat")
    assert stat["nr_throttled"] >= 1 and stat["throttled_usec"] > 0
    assert stat["usage_usec"] < 1_000_000         # 2 s of spinning, unthrottled, is 2 s of CPU


def test_enable_controllers_one_by_one_with_partial_failure(cgroup_parent, linx):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "deleg")
    os.mkdir(cg)
    # io is a real controller the parent does not delegate (ENOENT), nosuch is none (EINVAL);
    # the ones around them still land
    r = linx("cgroup", "enable-controllers", "--json", f"{rel}/deleg", "memory", "io", "pids", "nosuch", "cpu")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["enabled"] == ["memory", "pids", "cpu"]
    assert {name: f["errno"] for name, f in doc["failed"].items()} == {"io": "ENOENT", "nosuch": "EINVAL"}
    assert read(cg, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    leaf = os.path.join(cg, "leaf")
    os.mkdir(leaf)
    assert [k for k in ("memory.max", "pids.max", "cpu.max", "io.max") if os.path.exists(os.path.join(leaf, k))] \
        == ["memory.max", "pids.max", "cpu.max"]


def test_freeze_stops_a_workload_and_thaw_resumes_it(cgroup_parent, linx):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "ice")
    os.mkdir(cg)
    with open(os.path.join(cg, "cpu.max"), "w") as f:
        f.write("10000 100000")         # spin at 10% of a CPU: the rest of the VM keeps going
    spin = subprocess.Popen(["sh", "-c", f"echo $$ > {cg}/cgroup.procs && exec sh -c 'while :; do :; done'"])
    try:
        deadline = time.monotonic() + 30
        while not read(cg, "cgroup.procs"):
            assert time.monotonic() < deadline and spin.poll() is None, "the workload never started"
            time.sleep(0.1)

        def cpu_over(seconds: float) -> int:
            before = keyed(cg, "cpu.stat")["usage_usec"]
            time.sleep(seconds)
            return keyed(cg, "cpu.stat")["usage_usec"] - before

        assert cpu_over(1) > 0
        assert linx("cgroup", "freeze", f"{rel}/ice").returncode == 0
        assert keyed(cg, "cgroup.events")["frozen"] == 1
        assert cpu_over(1) == 0
        assert linx("cgroup", "thaw", f"{rel}/ice").returncode == 0
        assert keyed(cg, "cgroup.events")["frozen"] == 0
        assert cpu_over(1) > 0
    finally:
        spin.kill()
        spin.wait()


def test_run_spec_cgroup_section_end_to_end(cgroup_parent, linx, tmp_path):
    """The spec's cgroup section: controllers enabled in a bare parent, a fresh linx-<random>
    cgroup made under it with the limits, the workload inside from its first instruction (it
    reads its own cgroup and knobs, then hogs memory and is OOM-killed), the cgroup gone after."""
    parent, rel = cgroup_parent
    bare = os.path.join(parent, "bare")
    os.mkdir(bare)
    root = os.path.dirname(parent)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'''
argv = ["sh", "-c", """
cg={root}$(cut -d: -f3 /proc/self/cgroup)
echo $cg; cat $cg/memory.max $cg/pids.max $cg/cpu.max
exec dd if=/dev/zero of=/dev/null bs=200M count=1
"""]
[cgroup]
parent = "{rel}/bare"
controllers = ["memory", "pids", "cpu"]
memory_max = "48M"
pids_max = "16"
cpu_max = "50ms/100ms"
''')
    r = linx("run", "--spec", spec, timeout=120)
    assert r.returncode == 128 + 9, r.stderr
    path, memory_max, pids_max, cpu_max = r.stdout.split("\n")[:4]
    assert os.path.dirname(path) == bare and os.path.basename(path).startswith("linx-")
    assert (memory_max, pids_max, cpu_max) == (str(48 << 20), "16", "50000 100000")
    assert read(bare, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    assert not os.path.exists(path)               # made by linx, removed when the workload ended


def test_reconcile_converges_real_knobs_and_repairs_drift(cgroup_parent, linx, tmp_path):
    """cgroupfs normalises what it is given (64M reads back 67108864, 20ms/100ms as
    "20000 100000"): a pass after convergence must still see nothing to do."""
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "rc")
    os.mkdir(cg)
    desired = tmp_path / "desired.toml"
    desired.write_text(f'[cgroup."{rel}/rc"]\nmemory.max = "64M"\npids.max = 20\ncpu.max = "20ms/100ms"\n')
    knobs = ("memory.max", "pids.max", "cpu.max")
    r = linx("reconcile", "--once", "--json", desired)
    assert r.returncode == 0, r.stderr
    assert [read(cg, k) for k in knobs] == [str(64 << 20), "20", "20000 100000"]
    with open(os.path.join(cg, "pids.max"), "w") as f:
        f.write("99")                             # drift
    r = linx("reconcile", "--diff", desired)
    assert r.returncode == 1 and "pids.max" in r.stdout and "memory.max" not in r.stdout, r.stdout
    assert linx("reconcile", "--once", desired).returncode == 0
    assert [read(cg, k) for k in knobs] == [str(64 << 20), "20", "20000 100000"]
    assert linx("reconcile", "--diff", desired).returncode == 0
