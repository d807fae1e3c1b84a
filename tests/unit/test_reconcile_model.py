"""The reconcile model without a kernel: the three-way knob diff, best-effort apply and
ownership, the desired-state file's validation (every error names its key), and the loop
(timer, hints, debounce, reload, failing passes, dead monitors) driven with fake sources."""
import os
import socket
import threading
import time

import pytest

from linx_core import reconcile
from linx_core.errors import KernelError, LinxError, UsageError
from linx_core.reconcile import Op, diff_knobs


# -- diff_knobs ---------------------------------------------------------------------------

def test_set_only_what_differs_compared_by_words():
    ops = diff_knobs({"a.b": "1", "k.printk": "4\t4\t1\t7", "c.d": "0"},
                     {"a.b": "1", "k.printk": "4 4 1 7", "c.d": "1", "e.f": "5"}, {}, revert=False)
    assert [(o.verb, o.obj, o.value, o.item) for o in ops] == [
        ("set", "c.d", "1", "0"), ("set", "e.f", "5", None)]     # e.f unreadable: no original


def test_original_is_captured_only_on_first_touch():
    ops = diff_knobs({"a.b": "7"}, {"a.b": "1"}, {"a.b": {"applied": "1", "original": "0"}},
                     revert=False)
    assert ops == [Op("set", "a.b", "1")] and ops[0].item is None


def test_released_keys_release_or_revert():
    owned = {"a.b": {"applied": "1", "original": "0"}, "c.d": {"applied": "1", "original": None}}
    assert [str(o) for o in diff_knobs({"a.b": "1", "c.d": "1"}, {}, owned, revert=False)] == [
        "release a.b", "release c.d"]
    # no original captured (it was unreadable): nothing to revert to, so release
    assert [str(o) for o in diff_knobs({"a.b": "1", "c.d": "1"}, {}, owned, revert=True)] == [
        "revert a.b = 0", "release c.d"]


def test_sets_come_before_releases():
    ops = diff_knobs({}, {"z.z": "1"}, {"a.a": {"applied": "1", "original": "0"}}, revert=False)
    assert [o.verb for o in ops] == ["set", "release"]


# -- Knobs: best-effort apply and ownership --------------------------------------------------

class Fake(reconcile.Knobs):
    """Knobs over a dict; names in `refuse` fail to write like a missing cgroup knob."""

    def __init__(self, key, kernel, desired, revert=False, refuse=()):
        super().__init__(key, desired, revert)
        self.kernel, self.refuse, self.scope_value = kernel, set(refuse), kernel
        self.scope = "fake"

    def released(self):
        return Fake(self.key, self.kernel, {}, self.revert, self.refuse)

    def read(self, name):
        return self.kernel.get(name)

    def write(self, name, text):
        if name in self.refuse:
            raise KernelError("fake", "write", name, 2)
        self.kernel[name] = text


def test_best_effort_every_op_tried_and_second_pass_empty():
    kernel = {"a.a": "0", "b.b": "0", "c.c": "0"}
    src = Fake("x", kernel, {"a.a": "1", "b.b": "1", "c.c": "1"}, refuse={"b.b"})
    r = reconcile.reconcile(src, {})
    assert [str(o) for o in r.applied] == ["set a.a = 1", "set c.c = 1"]
    assert [str(o) for o, _ in r.failed] == ["set b.b = 1"] and r.pending == []
    assert not r.converged
    assert kernel == {"a.a": "1", "b.b": "0", "c.c": "1"}
    assert set(r.last_applied) == {"a.a", "c.c"}        # never written: not owned
    src.refuse.clear()
    r2 = reconcile.reconcile(src, r.last_applied)        # retried next pass
    assert [str(o) for o in r2.applied] == ["set b.b = 1"] and r2.converged
    assert r2.last_applied["b.b"] == {"applied": "1", "original": "0"}
    r3 = reconcile.reconcile(src, r2.last_applied)
    assert r3.applied == [] and r3.converged and r3.last_applied == r2.last_applied


def test_drift_is_restored_and_the_first_original_kept():
    kernel = {"a.a": "0"}
    src = Fake("x", kernel, {"a.a": "1"})
    la = reconcile.reconcile(src, {}).last_applied
    kernel["a.a"] = "5"                                   # flipped by hand
    r = reconcile.reconcile(src, la)
    assert [str(o) for o in r.applied] == ["set a.a = 1"] and kernel["a.a"] == "1"
    assert r.last_applied["a.a"]["original"] == "0"


def test_already_matching_keys_are_managed_and_release_leaves_the_value():
    kernel = {"a.a": "1", "b.b": "0"}
    la = reconcile.reconcile(Fake("x", kernel, {"a.a": "1", "b.b": "1"}), {}).last_applied
    assert la == {"a.a": {"applied": "1", "original": "1"},
                  "b.b": {"applied": "1", "original": "0"}}
    r = reconcile.reconcile(Fake("x", kernel, {}), la)
    assert [str(o) for o in r.applied] == ["release a.a", "release b.b"]
    assert kernel == {"a.a": "1", "b.b": "1"} and r.last_applied == {}


def test_revert_on_release_writes_the_original_back_and_a_failed_revert_stays_owned():
    kernel = {"a.a": "0", "b.b": "0"}
    la = reconcile.reconcile(Fake("x", kernel, {"a.a": "1", "b.b": "1"}), {}).last_applied
    src = Fake("x", kernel, {}, revert=True, refuse={"b.b"})
    r = reconcile.reconcile(src, la)
    assert [str(o) for o in r.applied] == ["revert a.a = 0"]
    assert [str(o) for o, _ in r.failed] == ["revert b.b = 0"]
    assert kernel == {"a.a": "0", "b.b": "1"} and set(r.last_applied) == {"b.b"}


def test_report_json():
    kernel = {"a.a": "0"}
    r = reconcile.reconcile(Fake("sysctl", kernel, {"a.a": "1", "b.b": "2"}, refuse={"b.b"}), {})
    doc = r.to_json()
    assert doc["source"] == "sysctl" and doc["converged"] is False
    assert doc["applied"] == [{"op": "set", "object": "a.a", "value": "1"}]
    assert doc["failed"][0]["object"] == "b.b" and "ENOENT" in doc["failed"][0]["error"]
    assert doc["last_applied"] == {"a.a": {"applied": "1", "original": "0"}}


# -- cgroup value comparison ---------------------------------------------------------------

def test_cgroup_compare_pages_and_io_max_lines():
    src = reconcile.CgroupSource("c", "/x", {"io.max": "8:0 rbps=1048576"})
    page = os.sysconf("SC_PAGE_SIZE")
    assert src.same("memory.max", str(page), str(page + 1))       # the kernel rounds down
    assert not src.same("memory.max", str(page), str(2 * page))
    assert src.same("memory.max", "max", "max")
    io = "8:16 rbps=max wbps=5 riops=max wiops=max\n8:0 rbps=1048576 wbps=max riops=max wiops=max"
    assert src.same("io.max", io, "8:0 rbps=1048576")
    assert not src.same("io.max", io, "8:0 wbps=5")
    assert not src.same("io.max", "", "8:0 rbps=1048576")
    assert src.capture("io.max", io) == "8:0 rbps=1048576 wbps=max riops=max wiops=max"
    assert src.capture("io.max", "") == "8:0 rbps=max wbps=max riops=max wiops=max"
    assert src.same("cpu.max", "max 100000", "max  100000")


# -- the desired-state file ----------------------------------------------------------------

@pytest.fixture
def cgroot(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    root.mkdir()
    monkeypatch.setenv("LINX_CGROUP_ROOT", str(root))
    return root


def load(tmp_path, text):
    f = tmp_path / "desired.toml"
    f.write_text(text)
    return reconcile.load(str(f)), str(f)


def test_load_every_section(tmp_path, cgroot):
    sources, _ = load(tmp_path, """
[sysctl]
net.ipv4.ip_forward = 1
"kernel.printk" = [4, 4, 1, 7]
revert_on_release = true

[net]
protocol = "static"
[net.addresses]
eth0 = ["10.0.0.2/24", "fc00::2/64"]
eth1 = "10.1.0.2/16"
[[net.routes]]
to = "default"
via = "10.0.0.1"
[[net.routes]]
to = "10.50.0.0/24"
via = "10.0.0.1"
table = 100
metric = 50

[cgroup."web/a.b"]
memory.max = "256M"
"cpu.max" = "50ms/100ms"
"hugetlb.2MB.max" = 0
cgroup.max.descendants = 10
""")
    sysctl_, net, cg = sources
    assert (sysctl_.key, sysctl_.scope, sysctl_.revert) == ("sysctl", "host", True)
    assert sysctl_.desired == {"net.ipv4.ip_forward": "1", "kernel.printk": "4 4 1 7"}
    assert (net.key, net.scope, net.protocol) == ("net", "host", 4)
    assert [(d, str(s)) for d, s in net.addresses] == [
        ("eth0", "10.0.0.2/24"), ("eth0", "fc00::2/64"), ("eth1", "10.1.0.2/16")]
    assert [(r.built.table, r.built.metric, r.built.protocol, str(r.built.gateway))
            for r in net.routes] == [(254, None, 4, "10.0.0.1"), (100, 50, 4, "10.0.0.1")]
    assert cg.key == 'cgroup."web/a.b"' and cg.scope == str(cgroot / "web" / "a.b")
    assert cg.desired == {"memory.max": str(256 << 20), "cpu.max": "50000 100000",
                          "hugetlb.2MB.max": "0", "cgroup.max.descendants": "10"}


@pytest.mark.parametrize("text, where", [
    ("[sysctl\n", "not valid TOML"),
    ("[firewall]\n", "desired.toml: firewall: unknown section"),
    ("[sysctl]\nnet.ipv4.ip_forward = true\n", 'sysctl."net.ipv4.ip_forward": True: expected an integer'),
    ("[sysctl]\nforward = 1\n", 'sysctl."forward": expected a sysctl key'),
    ("[sysctl]\n\"net/ipv4\" = 1\n", 'sysctl."net/ipv4": expected dot-separated'),
    ("[sysctl]\nin = 5\n", "sysctl.in: 5: expected a target"),
    ("[sysctl]\nin = \"pid:1\"\nkernel.printk = 4\n", 'sysctl."kernel.printk": is host-global'),
    ("[sysctl]\nrevert_on_release = 1\n", "sysctl.revert_on_release: 1: expected true or false"),
    ("[net]\nnetns = \"no-such-netns-x\"\n", "net.netns: 'no-such-netns-x' is neither"),
    ("[net]\nlinks = []\n", "net.links: unknown key"),
    ("[net]\nprotocol = 2\n", "net.protocol: 2 is the kernel's own"),
    ("[net]\nprotocol = \"nope\"\n", "net.protocol: 'nope' is not a number"),
    ("[net.addresses]\neth0 = [\"10.0.0.300/24\"]\n", "net.addresses.eth0[0]: '10.0.0.300'"),
    ("[net.addresses]\neth0 = [\"fe80::1/64\"]\n", "net.addresses.eth0[0]: 'fe80::1/64' is a host or link-local"),
    ("[net.addresses]\neth0 = [\"127.0.0.2/8\"]\n", "net.addresses.eth0[0]: '127.0.0.2/8' is a host"),
    ("[net.addresses]\n\"a/b\" = [\"10.0.0.1/24\"]\n", "net.addresses.a/b"),
    ("[net.addresses]\neth0 = 5\n", "net.addresses.eth0: expected a list"),
    ("[[net.routes]]\nto = \"10.0.0.0/24\"\n", "net.routes[0].via: missing"),
    ("[[net.routes]]\nto = \"10.0.0.0/24\"\nvia = \"10.1\"\n", "net.routes[0].via: '10.1'"),
    ("[[net.routes]]\nto = \"10.0.0.1/24\"\nvia = \"10.1.0.1\"\n", "net.routes[0].to: 10.0.0.1/24 has host bits"),
    ("[[net.routes]]\nto = \"fc00::/64\"\nvia = \"10.1.0.1\"\n", "net.routes[0].via: gateway 10.1.0.1"),
    ("[[net.routes]]\nto = \"default\"\nvia = \"10.1.0.1\"\ndev = \"eth0\"\n", "net.routes[0].dev: unknown key"),
    ("[[net.routes]]\nto = \"default\"\nvia = \"10.1.0.1\"\nmetric = -1\n", "net.routes[0].metric: expected a number"),
    ("[[net.routes]]\nto = \"default\"\nvia = \"10.1.0.1\"\n[[net.routes]]\nto = \"0.0.0.0/0\"\nvia = \"10.1.0.2\"\n",
     "net.routes[1]: the same destination, table and metric as"),
    ("[cgroup.web]\n\"cgroup.procs\" = 1\n", 'cgroup."web"."cgroup.procs": cgroup.* files other than'),
    ("[cgroup.web]\nfoo.max = 1\n", 'cgroup."web"."foo.max": expected a limit knob'),
    ("[cgroup.web]\nmemory.max = \"lots\"\n", 'cgroup."web"."memory.max": \'lots\': expected bytes'),
    ("[cgroup.web]\nmemory.low = [1]\n", 'cgroup."web"."memory.low": [1]: expected a string'),
    ("[cgroup.\"../../etc\"]\npids.max = 1\n", "is outside the cgroup2 mount"),
    ("[nft]\nnetns = \"host\"\n", "nft: give exactly one of file or ruleset"),
    ("[nft]\nruleset = \"table ip t { chain c { counter; accept; } }\"\n",
     "untagged"),
    ("[cgroup.web]\n[cgroup.\"web/.\"]\n", 'cgroup."web/.": the same cgroup as cgroup."web"'),
])
def test_bad_files_name_the_key(tmp_path, cgroot, text, where):
    with pytest.raises(UsageError) as e:
        load(tmp_path, text)
    assert e.value.exit_status == 2
    assert where in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read the desired state"):
        reconcile.load(str(tmp_path / "nope.toml"))


# -- the loop -----------------------------------------------------------------------------

class Hints:
    """A socketpair standing in for a monitor: the test writes to `peer` to hint."""

    def __init__(self):
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.dead = False

    def fileno(self):
        return self.sock.fileno()

    def drain(self):
        if self.dead:
            raise KernelError("fake", "recv", "monitor", 9)
        try:
            while self.sock.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self):
        self.sock.close()
        self.peer.close()


class Source:
    """A fake source: wants `desired` in the dict `kernel`; records every pass."""

    def __init__(self, key, kernel, desired, scope="s", monitor=False, fail=None):
        self.key, self.scope, self.kernel, self.desired = key, scope, kernel, desired
        self.monitor, self.fail = monitor, fail
        self.passes, self.hints = [], []

    def released(self):
        out = Source(self.key, self.kernel, {}, self.scope, self.monitor)
        out.passes, out.hints = self.passes, self.hints
        return out

    def subscribe(self):
        if not self.monitor:
            return None
        self.hints.append(Hints())
        return self.hints[-1]

    def plan(self, last_applied):
        if self.fail:
            raise self.fail
        ops = [Op("set", k, v) for k, v in self.desired.items() if self.kernel.get(k) != v]
        return ops + [Op("delete", k) for k in last_applied if k not in self.desired and k in self.kernel]

    def apply(self, plan, last_applied):
        self.passes.append((time.monotonic(), [str(o) for o in plan]))
        owned = dict(last_applied)
        for op in plan:
            if op.verb == "set":
                self.kernel[op.obj] = op.value
                owned[op.obj] = True
            else:
                del self.kernel[op.obj]
                owned.pop(op.obj)
        return reconcile.Report(self.key, applied=plan, last_applied=owned)


class Running:
    """The loop on a thread, stopped and joined at the end."""

    def __init__(self, sources, interval=10.0, debounce=0.05):
        self.sources, self.events = sources, []
        self.loop = reconcile.Loop(lambda: self.load(), interval=interval, debounce=debounce,
                                   emit=lambda key, r: self.events.append((key, r)))
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def load(self):
        s = self.sources
        if isinstance(s, Exception):
            raise s
        return s() if callable(s) else s

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()


def wait_for(cond, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_first_pass_converges_then_the_timer_resyncs():
    kernel = {}
    src = Source("a", kernel, {"x": "1"})
    with Running([src], interval=0.1):
        assert wait_for(lambda: kernel == {"x": "1"})
        kernel["x"] = "drift"
        assert wait_for(lambda: kernel == {"x": "1"}, 1)
        assert wait_for(lambda: len(src.passes) >= 4, 1)
    assert src.passes[0][1] == ["set x = 1"]
    gaps = [b[0] - a[0] for a, b in zip(src.passes, src.passes[1:])]
    assert all(g >= 0.09 for g in gaps), gaps


def test_a_hint_wakes_the_loop_and_a_burst_is_one_pass():
    kernel = {}
    src = Source("a", kernel, {"x": "1"}, monitor=True)
    with Running([src], interval=60, debounce=0.1):
        assert wait_for(lambda: len(src.passes) == 1)
        kernel["x"] = "drift"
        t0 = time.monotonic()
        for _ in range(20):                      # a burst of events within the debounce
            src.hints[0].peer.send(b"e")
            time.sleep(0.002)
        assert wait_for(lambda: kernel == {"x": "1"}, 1)
        took = time.monotonic() - t0
        time.sleep(0.3)
    assert 0.09 <= took < 1.5                   # the debounce, then at once (interval: 60 s)
    assert len(src.passes) == 2                  # one pass for the whole burst, no timer pass


def test_a_dead_monitor_is_reopened_with_a_full_resync():
    kernel = {}
    src = Source("a", kernel, {"x": "1"}, monitor=True)
    with Running([src], interval=60) as run:
        assert wait_for(lambda: len(src.passes) == 1)
        kernel["x"] = "drift"
        src.hints[0].dead = True
        src.hints[0].peer.send(b"e")
        assert wait_for(lambda: kernel == {"x": "1"} and len(src.hints) == 2)
        assert any(isinstance(r, LinxError) and "recv" in str(r) for _, r in run.events)
        kernel["x"] = "drift again"              # the new monitor works
        src.hints[1].peer.send(b"e")
        assert wait_for(lambda: kernel == {"x": "1"})


def test_a_failing_pass_does_not_stop_the_loop_and_keeps_ownership():
    kernel = {}
    good = Source("good", kernel, {"g": "1"})
    bad = Source("bad", {}, {"b": "1"}, fail=KernelError("net", "open", "ns", 2))
    with Running([bad, good], interval=0.05) as run:
        assert wait_for(lambda: sum(1 for k, r in run.events if k == "bad") >= 3)
        bad.fail = None
        assert wait_for(lambda: bad.kernel == {"b": "1"})
    assert kernel == {"g": "1"}
    assert all(isinstance(r, LinxError) for k, r in run.events[:2] if k == "bad")


def test_reload_applies_the_new_desired_state_and_releases_what_left():
    kernel = {}
    a = Source("a", kernel, {"x": "1", "y": "2"})
    b = Source("b", kernel, {"z": "3"})
    files = [[a, b]]
    with Running(lambda: files[-1], interval=60, debounce=0.02) as run:
        assert wait_for(lambda: kernel == {"x": "1", "y": "2", "z": "3"})
        kernel["w"] = "foreign"
        files.append([Source("a", kernel, {"x": "1"})])     # y dropped, section b dropped
        run.loop.reload()
        assert wait_for(lambda: kernel == {"x": "1", "w": "foreign"})
        assert wait_for(lambda: ("b", "s") not in run.loop.entries)
        assert list(run.loop.entries) == [("a", "s")]
        run.sources = UsageError("desired.toml: net.protocol", "bad")
        run.loop.reload()
        assert wait_for(lambda: any(k == "file" for k, _ in run.events))
        kernel["x"] = "drift"                    # still converging on the last good file
        assert run.loop.entries[("a", "s")].source.desired == {"x": "1"}


def test_reloads_are_debounced():
    kernel = {}
    loads = []
    src = Source("a", kernel, {"x": "1"})

    def load():
        loads.append(time.monotonic())
        return [src]
    with Running(load, interval=60, debounce=0.15) as run:
        assert wait_for(lambda: len(src.passes) == 1)
        t0 = time.monotonic()
        for _ in range(5):
            run.loop.reload()
            time.sleep(0.01)
        assert wait_for(lambda: len(loads) == 2)
        time.sleep(0.3)
    assert len(loads) == 2 and loads[1] - t0 >= 0.14
