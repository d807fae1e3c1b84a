"""Declarative, self-healing kernel state (the spec's Linx.Reconcile and its Source contract).

One reconcile pass is observe -> diff -> apply: `plan()` reads the kernel and returns the ops
that would converge it (the plan is a value; `linx reconcile --diff` prints it), `apply()` runs
them and returns a Report. A second pass after a successful one plans nothing.

A Source is one section of a desired-state file bound to its scope (a namespace target, a
cgroup path). Ownership decides what a pass may undo, as the spec says:
- routes are owned by their rtm_protocol tag (two-way, netlink/rtnl/reconcile.py);
- sysctls, cgroup knobs and addresses carry no owner in the kernel, so the reconciler keeps
  `last_applied` (three-way): what it manages, threaded from each pass into the next. It lives
  in memory only and dies with the loop, never persisted: the originals it captured are only
  meaningful while the node that captured them runs.

Strategies differ and show in the Report: sysctl and cgroup writes are independent, so a pass
is best-effort (every op is tried, failures collect in `failed`); rtnl ops are ordered, so a
pass is fail-fast (the first failure stops it, the rest is `pending`). Either way a partial
apply is a normal state the next pass corrects; there is no rollback.

The Loop drives the sources: a pass per source on a timer (resync is truth) and sooner when a
source's monitor says something changed (events are hints, never deltas); the desired state
is re-read on request (SIGHUP in the CLI). A pass that fails does not stop it.
"""
import errno as _errno
import os
import re
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .errors import LinxError, UsageError


# -- the shared vocabulary -----------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One step of a plan. `obj` names what it acts on as a person reads it (a sysctl key,
    "address 10.0.0.2/24 dev eth0"); `value` is what a write writes; `item` is what apply
    needs (a decoded object, a captured original), never printed."""
    verb: str                 # set, revert, release | create, update, delete
    obj: str
    value: str | None = None
    item: object = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.verb} {self.obj}" + (f" = {self.value}" if self.value is not None else "")

    def to_json(self) -> dict:
        out = {"op": self.verb, "object": self.obj}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass
class Report:
    """The outcome of one pass, the same shape for every source (the spec's *.Report)."""
    source: str
    applied: list = field(default_factory=list)      # [Op], in the order they ran
    failed: list = field(default_factory=list)       # [(Op, LinxError)]
    pending: list = field(default_factory=list)      # [Op] not tried (fail-fast only)
    last_applied: dict = field(default_factory=dict)
    owned: object = None                             # last_applied as JSON

    @property
    def converged(self) -> bool:
        return not self.failed and not self.pending

    def to_json(self) -> dict:
        return {"source": self.source, "converged": self.converged,
                "applied": [op.to_json() for op in self.applied],
                "failed": [{**op.to_json(), "error": str(err)} for op, err in self.failed],
                "pending": [op.to_json() for op in self.pending],
                "last_applied": self.owned}


class Hints:
    """A monitor's netlink socket used as wake-up hints: readable means "look now". What it
    says is drained unread, since a pass re-reads the full state anyway. ENOBUFS (the kernel
    dropped events for us, netlink(7)) is one more hint; any other error means the monitor is
    dead and the loop opens a new one with a full resync."""

    def __init__(self, sock):
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> None:
        from .netlink.errors import NetlinkError
        while True:
            try:
                self.sock.recv(socket.MSG_DONTWAIT)
            except NetlinkError as e:
                if e.errno == _errno.EAGAIN:
                    return
                if e.errno != _errno.ENOBUFS:
                    raise

    def close(self) -> None:
        self.sock.close()


class Source(Protocol):
    """A section of the desired state in its scope. `key` names the section as written
    (`sysctl`, `net`, `cgroup."web"`); `scope` where it acts. plan() raises a LinxError when
    the pass cannot run at all (the namespace is gone, an interface is unknown); apply()
    never raises for a refused op, it reports it."""
    key: str
    scope: str

    def plan(self, last_applied: dict) -> list[Op]: ...

    def apply(self, plan: list[Op], last_applied: dict) -> Report: ...

    def subscribe(self) -> Hints | None: ...

    def released(self) -> "Source":
        """The same scope and options with nothing desired: the last pass of a section that
        left the file, undoing what it owned."""
        ...


def reconcile(source: Source, last_applied: dict) -> Report:
    return source.apply(source.plan(last_applied), last_applied)


# -- flat three-way knobs: sysctl and cgroup limits -----------------------------------------

def tokens_equal(observed: str, wanted: str) -> bool:
    """The kernel prints some values with other separators than it reads (kernel.printk
    "4\\t4\\t1\\t7", cpu.max "max 100000"): compare the words."""
    return observed.split() == wanted.split()


def diff_knobs(observed: dict, desired: dict, last_applied: dict, *, revert: bool,
               same=lambda name, now, text: tokens_equal(now, text),
               capture=lambda name, text: text) -> list[Op]:
    """Pure. `set` for a desired name whose observed text differs (or that could not be
    read: the write will say why); then, in name order, for an owned name no longer desired,
    `revert` to the captured original (revert=True and one was captured) or `release` (stop
    managing it, the value stays). A set's item is the original to keep: what `capture`
    makes of the text seen before the first write, or None when the name is already owned."""
    ops = []
    for name, text in desired.items():
        now = observed.get(name)
        if now is None or not same(name, now, text):
            first = None if name in last_applied else capture(name, now)
            ops.append(Op("set", name, text, first))
    for name, record in sorted(last_applied.items()):
        if name not in desired:
            original = record.get("original")
            if revert and original is not None:
                ops.append(Op("revert", name, original))
            else:
                ops.append(Op("release", name))
    return ops


class Knobs:
    """A flat name -> text desired state with best-effort apply (the spec's
    Linx.Sysctl.Reconcile and Linx.Cgroup.Reconcile). last_applied is
    {name: {"applied": text, "original": text or None}}: a name is managed from the first
    pass that wants it, and its original is what was there before linx first wrote it."""

    def __init__(self, key: str, desired: dict[str, str], revert_on_release: bool):
        self.key, self.desired, self.revert = key, desired, revert_on_release

    def read(self, name: str) -> str | None:
        """The current text, or None when it cannot be read (the write will say why)."""
        raise NotImplementedError

    def write(self, name: str, text: str) -> None:
        """Raises the subsystem's LinxError when the kernel refuses."""
        raise NotImplementedError

    def same(self, name: str, observed: str, wanted: str) -> bool:
        return tokens_equal(observed, wanted)

    def capture(self, name: str, observed: str | None) -> str | None:
        return observed

    def released(self):
        return type(self)(self.key, self.scope_value, {}, self.revert)

    def subscribe(self) -> None:
        """Neither /proc/sys nor cgroupfs multicasts changes: timer only, as the spec's
        sources return :unsupported."""
        return None

    def plan(self, last_applied: dict) -> list[Op]:
        names = [*self.desired, *(n for n in last_applied if n not in self.desired)]
        observed = {}
        for name in names:
            text = self.read(name)
            if text is not None:
                observed[name] = text
        return diff_knobs(observed, self.desired, last_applied, revert=self.revert,
                          same=self.same, capture=self.capture)

    def apply(self, plan: list[Op], last_applied: dict) -> Report:
        report = Report(self.key)
        owned = {n: dict(r) for n, r in last_applied.items()}
        for op in plan:
            if op.verb != "release":
                try:
                    self.write(op.obj, op.value)
                except LinxError as e:
                    report.failed.append((op, e))
                    continue
            report.applied.append(op)
            if op.verb == "set":
                record = owned.setdefault(op.obj, {"original": op.item})
                record["applied"] = op.value
            else:
                owned.pop(op.obj, None)
        failed = {op.obj for op, _ in report.failed}
        for name, text in self.desired.items():     # so now (set, or already was): managed
            if name not in failed:
                owned.setdefault(name, {"original": text})["applied"] = text
        report.last_applied = owned
        report.owned = owned
        return report


class SysctlSource(Knobs):
    """[sysctl]: keys in the `in` target's namespaces (sysctl.py does the I/O there)."""

    def __init__(self, key: str, target, desired: dict, revert_on_release: bool = False):
        super().__init__(key, desired, revert_on_release)
        self.scope_value, self.scope = target, str(target)

    def read(self, name):
        from . import sysctl
        try:
            return sysctl.read(name, self.scope_value)
        except sysctl.SysctlError:
            return None

    def write(self, name, text):
        from . import sysctl
        sysctl.write(name, text, self.scope_value)


CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids", "rdma", "hugetlb", "misc")
CORE_LIMITS = ("cgroup.max.depth", "cgroup.max.descendants")     # cgroup-v2.rst, core files


class CgroupSource(Knobs):
    """[cgroup."PATH"]: limit knobs of one existing cgroup. Limits only: creating it,
    enabling controllers and moving processes are lifecycle, not reconciled state; a knob
    that is not there (controller not delegated, cgroup not made yet) fails and is retried."""

    def __init__(self, key: str, path: str, desired: dict, revert_on_release: bool = False):
        super().__init__(key, desired, revert_on_release)
        self.scope_value = self.scope = path

    def read(self, name):
        from . import cgroup
        try:
            return cgroup.read(self.scope, name)
        except cgroup.CgroupError:
            return None

    def write(self, name, text):
        from . import cgroup
        cgroup.write(self.scope, name, text)

    def same(self, name, observed, wanted):
        """memory.* read back whole pages (page_counter_memparse rounds down); io.max lists
        every limited device, and a desired line names one device and some of its keys."""
        if name == "io.max":
            device, *pairs = wanted.split()
            line = next((ln.split() for ln in observed.splitlines() if ln.split()[:1] == [device]), [])
            return set(pairs) <= set(line[1:])
        if name.startswith("memory.") and observed.isdigit() and wanted.isdigit():
            page = os.sysconf("SC_PAGE_SIZE")
            return int(observed) // page == int(wanted) // page
        return tokens_equal(observed, wanted)

    def capture(self, name, observed):
        """io.max is written one device at a time, so its original is that device's line
        (every key at max when the device had none)."""
        if name != "io.max" or observed is None:
            return observed
        device = self.desired[name].split()[0]
        for line in observed.splitlines():
            if line.split()[:1] == [device]:
                return line
        return f"{device} rbps=max wbps=max riops=max wiops=max"


# -- the desired-state file -----------------------------------------------------------------

SECTIONS = ("sysctl", "net", "cgroup", "nft")


def _flatten(table: dict, prefix: str = "") -> dict:
    """TOML reads `net.ipv4.ip_forward = 1` as nested tables; a dotted key is one name."""
    out = {}
    for k, v in table.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(where, f"{value!r}: expected true or false")
    return value


def _sysctl_section(body, where: str) -> SysctlSource:
    from . import sysctl, target
    if not isinstance(body, dict):
        raise UsageError(where, "expected a table of KEY = VALUE")
    body = dict(body)
    text = body.pop("in", None)
    if text is not None and not isinstance(text, str):
        raise UsageError(f"{where}.in", f"{text!r}: expected a target (host, pid:N, a netns name, "
                                        "a namespace file, a session)")
    tgt = target.parse(text, f"{where}.in")
    revert = _bool(body.pop("revert_on_release", False), f"{where}.revert_on_release")
    desired = {}
    for key, value in _flatten(body).items():
        label = f'{where}."{key}"'
        sysctl.check_key(key, label)
        if key.count(".") == 0:
            raise UsageError(label, "expected a sysctl key (net.ipv4.ip_forward), in, or revert_on_release")
        desired[key] = sysctl.render(value, label)
    sysctl.kinds_for(tgt, list(desired), labels=[f'{where}."{k}"' for k in desired])
    return SysctlSource("sysctl", tgt, desired, revert)


KNOB = re.compile(r"([a-z]+)\.[A-Za-z0-9_.]+\Z")


def _cgroup_section(path: str, body, where: str) -> CgroupSource:
    from . import cgroup
    if not isinstance(body, dict):
        raise UsageError(where, "expected a table of KNOB = VALUE")
    body = dict(body)
    directory = cgroup.resolve(path, where)
    revert = _bool(body.pop("revert_on_release", False), f"{where}.revert_on_release")
    desired = {}
    for knob, value in _flatten(body).items():
        label = f'{where}."{knob}"'
        if knob.startswith("cgroup.") and knob not in CORE_LIMITS:
            raise UsageError(label, "cgroup.* files other than cgroup.max.depth and "
                                    "cgroup.max.descendants are lifecycle (create, freeze, "
                                    "kill, membership), not limits")
        m = KNOB.match(knob)
        if m is None or m.group(1) not in CONTROLLERS + ("cgroup",):
            raise UsageError(label, "expected a limit knob CONTROLLER.NAME with CONTROLLER one of "
                                    f"{', '.join(CONTROLLERS)} (quote a path with dots or "
                                    'slashes: [cgroup."a/b.c"])')
        if knob in cgroup.LIMITS:
            desired[knob] = cgroup.render(knob, value, label)
        elif isinstance(value, (str, int)) and not isinstance(value, bool) and "\n" not in str(value):
            desired[knob] = str(value)
        else:
            raise UsageError(label, f"{value!r}: expected a string or an integer, on one line")
    return CgroupSource(f'cgroup."{path}"', directory, desired, revert)


def load(path: str) -> list:
    """The desired-state file -> its sources, in file order (sysctl, net, cgroups, nft).
    Everything is checked before any source touches the kernel; a UsageError names the file
    and the key."""
    import tomllib
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(path, f"cannot read the desired state: {os.strerror(e.errno)}") from None
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(path, f"not valid TOML: {e}") from None
    for key in doc:
        if key not in SECTIONS:
            raise UsageError(f"{path}: {key}", f"unknown section (expected {', '.join(SECTIONS)})")
    sources = []
    if "sysctl" in doc:
        sources.append(_sysctl_section(doc["sysctl"], f"{path}: sysctl"))
    if "net" in doc:
        from .netlink.rtnl import reconcile as net
        sources.append(net.section(doc["net"], f"{path}: net"))
    if "cgroup" in doc:
        if not isinstance(doc["cgroup"], dict):
            raise UsageError(f"{path}: cgroup", 'expected [cgroup."PATH"] tables')
        seen = {}
        for cg, body in doc["cgroup"].items():
            source = _cgroup_section(cg, body, f'{path}: cgroup."{cg}"')
            if source.scope in seen:        # two sections converging one cgroup would fight
                raise UsageError(f'{path}: cgroup."{cg}"', f'the same cgroup as cgroup."{seen[source.scope]}"')
            seen[source.scope] = cg
            sources.append(source)
    if "nft" in doc:
        from .netfilter import reconcile as nft
        sources.append(nft.section(doc["nft"], f"{path}: nft", os.path.dirname(os.path.abspath(path))))
    return sources


# -- the loop ---------------------------------------------------------------------------------

@dataclass
class _Entry:
    source: object
    last_applied: dict
    due: float
    hints: Hints | None = None
    leaving: bool = False       # its section left the file: passes with nothing desired until done


class Loop:
    """Level-triggered convergence of every source: a pass per source every `interval`
    seconds, `debounce` seconds after a monitor hint (hints in that window coalesce), and
    after a reload. `emit(key, report_or_error)` sees every pass. Single-threaded: select()
    on the monitors and a wake-up pipe that reload()/stop() (signal handlers) write to."""

    def __init__(self, load: Callable[[], list], *, interval: float, debounce: float,
                 emit: Callable, clock=time.monotonic):
        self.load, self.interval, self.debounce = load, interval, debounce
        self.emit, self.clock = emit, clock
        self.entries: dict[tuple, _Entry] = {}
        self._reload_at: float | None = None
        self._reload_requested = self._stopped = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # signal-safe requests
    def reload(self) -> None:
        self._reload_requested = True
        self._poke()

    def stop(self) -> None:
        self._stopped = True
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass        # the pipe is full: a wake-up is already pending

    def install(self, sources: list) -> None:
        """Take a new desired state. Sections still there keep their last_applied (a scope
        that changed is a new section); sections gone get released passes; all run now."""
        now = self.clock()
        fresh = {}
        for source in sources:
            ident = (source.key, source.scope)
            old = self.entries.pop(ident, None)
            if old is None:
                fresh[ident] = _Entry(source, {}, now)
            else:
                old.source, old.leaving, old.due = source, False, now
                fresh[ident] = old
        for ident, old in self.entries.items():
            if not old.leaving:
                old.source, old.leaving = old.source.released(), True
            old.due = now
            fresh[ident] = old
        self.entries = fresh

    def run(self) -> None:
        try:
            self.install(self.load())
            while not self._stopped:
                self._turn()
        finally:
            for e in self.entries.values():
                if e.hints is not None:
                    e.hints.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _turn(self) -> None:
        now = self.clock()
        deadlines = [e.due for e in self.entries.values()]
        if self._reload_at is not None:
            deadlines.append(self._reload_at)
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        watched = [e for e in self.entries.values() if e.hints is not None]
        try:
            ready, _, _ = select.select([self._wake_r, *(e.hints for e in watched)], [], [], timeout)
        except InterruptedError:
            ready = []
        now = self.clock()
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if self._reload_requested:
            self._reload_requested = False
            if self._reload_at is None:
                self._reload_at = now + self.debounce
        for e in watched:
            if e.hints in ready:
                try:
                    e.hints.drain()
                except LinxError as err:            # a dead monitor: resubscribe, resync
                    self.emit(e.source.key, err)
                    e.hints.close()
                    e.hints = None
                    e.due = now
                    continue
                e.due = min(e.due, now + self.debounce)
        if self._stopped:
            return
        if self._reload_at is not None and self._reload_at <= now:
            self._reload_at = None
            try:
                self.install(self.load())
            except LinxError as err:                # keep converging on the last good file
                self.emit("file", err)
        for ident, e in list(self.entries.items()):
            if e.due <= now and not self._stopped:
                self._pass(ident, e)

    def _pass(self, ident: tuple, e: _Entry) -> None:
        if e.hints is None:                         # subscribe first: no change slips between
            try:
                e.hints = e.source.subscribe()
            except LinxError as err:
                self.emit(e.source.key, err)
        try:
            report = reconcile(e.source, e.last_applied)
        except LinxError as err:                    # could not run at all: keep what we own
            self.emit(e.source.key, err)
            if e.leaving:                           # its scope is gone: nothing left to undo
                self._drop(ident, e)
                return
        else:
            e.last_applied = report.last_applied
            self.emit(e.source.key, report)
            if e.leaving and report.converged:
                self._drop(ident, e)
                return
        e.due = self.clock() + self.interval

    def _drop(self, ident: tuple, e: _Entry) -> None:
        if e.hints is not None:
            e.hints.close()
        del self.entries[ident]
