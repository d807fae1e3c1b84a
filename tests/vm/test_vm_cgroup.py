"""cgroup v2 controllers for real (the VM group): limits that `linx run --cgroup` sets hold a
workload, and `linx cgroup` delegates, freezes and reports; every check reads cgroupfs itself
(memory.events, pids.events, cpu.stat, cgroup.events), not linx."""
import json
import os
import subprocess
import time

import pytest

from cgroupfs import keyed, read

pytestmark = pytest.mark.vm


def test_memory_max_oom_kills_a_hog(cgroup_parent, linx):
    parent, rel = cgroup_parent
    cg = os.path.join(parent, "hog")
    # dd reads 200 MiB from /dev/zero into one buffer, touching every page of it
    r = linx("run", "--cgroup", f"{rel}/hog", "--keep-cgroup", "--memory-max", "50M", "--",
                 "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1", timeout=120)
    assert r.returncode == 128 + 9, r.stderr
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
