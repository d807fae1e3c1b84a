"""Linux capabilities: the cap table, reading a process's five sets, and planning the child-side
settings the agent applies at the checkpoint (capabilities(7)).

Reading is host-side procfs (/proc/PID/status, proc(5)). Writing acts on the calling thread only
(capset(2), prctl PR_CAPBSET_DROP / PR_CAP_AMBIENT), so the parent only computes masks and the
child applies them itself, in the agent's order: drop bounding, set E/P/I, set ambient.
"""
from dataclasses import dataclass

from .errors import KernelError, LinxError, UsageError

# <linux/capability.h>: CAP_* numbers. A bit past this table is kept as its number, never dropped:
# a newer kernel may know caps we don't, and losing them from a mask would be a silent change.
CAPS = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)
BITS = {f"cap_{name}": bit for bit, name in enumerate(CAPS)}
ALL_MASK = (1 << 64) - 1          # every bit the kernel's u64 sets can hold
KNOWN_MASK = (1 << len(CAPS)) - 1
SETS = ("effective", "permitted", "inheritable", "bounding", "ambient")
_STATUS_KEYS = {"CapEff": "effective", "CapPrm": "permitted", "CapInh": "inheritable",
                "CapBnd": "bounding", "CapAmb": "ambient"}


class CapabilityError(KernelError):
    """A procfs read that failed (the seed's Linx.Capabilities.Error, operation :read)."""


def name_of(bit: int) -> str:
    """`cap_net_admin`, or the bit number as text for a cap the table doesn't know (as capsh)."""
    return f"cap_{CAPS[bit]}" if bit < len(CAPS) else str(bit)


def names(mask: int) -> list[str]:
    """The caps in a mask, lowest bit first (capsh --decode's order)."""
    return [name_of(bit) for bit in range(64) if mask >> bit & 1]


def decode(text: str) -> tuple[int, list[str]]:
    """`capsh --decode=HEX`: a hex mask (0x optional) -> (mask, names). Raises UsageError."""
    raw = text.strip().lower()
    digits = raw[2:] if raw.startswith("0x") else raw
    try:
        mask = int(digits, 16) if digits else -1
    except ValueError:
        mask = -1
    if not 0 <= mask <= ALL_MASK:
        raise UsageError("HEX", f"{text!r} is not a 64-bit hexadecimal capability mask")
    return mask, names(mask)


def format_decode(mask: int) -> str:
    """The exact line capsh --decode prints: 0x%016x=name,name,..."""
    return f"0x{mask:016x}=" + ",".join(names(mask))


def parse(items, where: str) -> int:
    """Cap names -> mask. Accepts `net_admin`, `cap_net_admin`, `CAP_NET_ADMIN`, a bit number, a
    comma list or an iterable of those. Unknown names are a UsageError naming `where`."""
    if isinstance(items, str):
        items = items.split(",")
    mask, bad = 0, []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        key = item.lower()
        if not key.startswith("cap_"):
            key = "cap_" + key
        if key in BITS:
            mask |= 1 << BITS[key]
        elif item.isdigit() and int(item) < 64:
            mask |= 1 << int(item)
        else:
            bad.append(item)
    if bad:
        raise UsageError(where, f"unknown capability {', '.join(map(repr, bad))} "
                                f"(expected names like net_admin or cap_net_admin; see `linx caps decode 1ffffffffff`)")
    return mask


@dataclass(frozen=True)
class State:
    """A process's five sets as u64 masks (the kernel's own representation)."""
    effective: int
    permitted: int
    inheritable: int
    bounding: int
    ambient: int

    def mask(self, which: str) -> int:
        return getattr(self, which)

    def as_dict(self) -> dict:
        """For --json: every set with its mask, names and the bits past the table."""
        return {s: {"mask": f"0x{self.mask(s):016x}",
                    "caps": [n for n in names(self.mask(s)) if n.startswith("cap_")],
                    "unknown": [b for b in range(len(CAPS), 64) if self.mask(s) >> b & 1]}
                for s in SETS}


def parse_status(text: str, path: str = "status") -> State:
    """The five Cap*: lines of /proc/PID/status (proc(5)) -> State."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in _STATUS_KEYS:
            found[_STATUS_KEYS[key]] = int(value.strip(), 16)
    missing = [k for k in _STATUS_KEYS.values() if k not in found]
    if missing:
        line = next(k for k, v in _STATUS_KEYS.items() if v == missing[0])
        raise LinxError(f"capabilities read failed on {path}: no {line}: line (bad_status)")
    return State(**found)


def read(pid: int | str = "self") -> State:
    """Read any process's sets from /proc/PID/status (world-readable; no privilege needed)."""
    path = f"/proc/{pid}/status"
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise CapabilityError("capabilities", "read", path, e.errno) from None
    return parse_status(text, path)


def supported() -> bool:
    """True when /proc/self/status has a CapBnd: line (Linux >= 2.6.25)."""
    try:
        with open("/proc/self/status") as f:
            return "CapBnd:" in f.read()
    except OSError:
        return False


@dataclass(frozen=True)
class Plan:
    """What `linx run --cap-*` asked for, validated before any syscall. Masks; None = not given.
    drop_all is `--cap-drop all`."""
    drop: int = 0
    drop_all: bool = False
    add: int = 0
    keep: int | None = None
    ambient: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.drop or self.drop_all or self.add or self.keep is not None
                    or self.ambient is not None)

    def target(self, state: State) -> int:
        """The caps the workload may hold at all: its bounding set after the change."""
        if self.keep is not None:
            target = self.keep
        elif self.drop_all:
            target = self.add
        else:
            target = (state.bounding & ~self.drop) | self.add
        return target | (self.ambient or 0)

    def settings(self, state: State) -> dict:
        """The agent's cap_bounding / cap_sets / cap_ambient for a child now in `state`.

        Bounding: drop what it holds outside the target (PR_CAPBSET_DROP needs CAP_SETPCAP even
        for a cap already gone, so only those). Permitted: what it has within the target. Effective =
        permitted, so the agent's later steps (seccomp without no_new_privs needs CAP_SYS_ADMIN)
        run with what was kept. Inheritable: within the target, plus the ambient caps, since an
        ambient cap must be in both permitted and inheritable (capabilities(7)).
        Raises LinxError when asked to grant a cap the child cannot have."""
        if self.empty:
            return {}
        wanted = self.add | (self.keep or 0) | (self.ambient or 0)
        missing = wanted & ~state.permitted
        if missing:
            raise LinxError(f"capabilities: {','.join(names(missing))} not in the permitted set "
                            f"the workload starts with (0x{state.permitted:016x}); "
                            f"capabilities can only be dropped")
        target = self.target(state)
        permitted = state.permitted & target
        inheritable = (state.inheritable & target) | (self.ambient or 0)
        out = {"cap_bounding": state.bounding & ~target,
               "cap_sets": b"".join(m.to_bytes(8, "little")
                                    for m in (permitted, permitted, inheritable))}
        if self.ambient is not None:
            out["cap_ambient"] = self.ambient
        return out

    def effective_after(self, state: State) -> int:
        """The effective set the child holds once the cap steps ran (for the seccomp NNP check)."""
        return state.permitted & self.target(state) if not self.empty else state.effective


def plan(drop=None, add=None, keep=None, ambient=None) -> Plan:
    """Validate `--cap-drop LIST|all`, `--cap-add`, `--cap-keep`, `--cap-ambient` (comma lists or
    iterables). --cap-keep says the whole set, so it excludes --cap-drop and --cap-add."""
    drop_all = isinstance(drop, str) and drop.strip().lower() == "all"
    if keep is not None and (drop or add):
        raise UsageError("--cap-keep", "names the whole set; it cannot be combined with "
                                       "--cap-drop or --cap-add")
    return Plan(drop=0 if drop_all or drop is None else parse(drop, "--cap-drop"),
                drop_all=drop_all,
                add=parse(add, "--cap-add") if add is not None else 0,
                keep=parse(keep, "--cap-keep") if keep is not None else None,
                ambient=parse(ambient, "--cap-ambient") if ambient is not None else None)
