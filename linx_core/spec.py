"""The run spec: one file (TOML; JSON accepted) that says everything applied at the
checkpoint, validated before any syscall, planned as a list of named steps, applied in
ARCHITECTURE.md's order with each step's undo recorded, and rolled back in reverse when a
later step fails:

    user maps -> cgroup -> network (host side, then inside) -> nft -> mounts/rootfs
    -> sysctls -> hooks -> child side (hostname, caps, no_new_privs, seccomp) -> proceed

This module composes the subsystems; it is the one place that imports them all.
"""
import json
import os
from dataclasses import dataclass, field

from .errors import LinxError, UsageError

# -- schema: one definition for validation, the JSON Schema and linx-spec(5) ---------------
# A type is "str", "bool", "int", "str|int", "list[str]", "map[str]" (values str or int), a dict (an
# object with these keys), or [dict] (a list of such objects). Each entry: (type, help).

LINK = {
    "kind": ("str", "veth, macvlan or ipvlan."),
    "name": ("str", "The interface's name inside the workload's network namespace."),
    "host": ("str", "veth: the host end's name (default: lx + the session's pid)."),
    "parent": ("str", "macvlan/ipvlan: the host interface it sits on."),
    "mode": ("str", "macvlan: bridge, private, vepa, passthru, source; ipvlan: l2, l3, l3s."),
    "mtu": ("int", "MTU of the interface (both ends of a veth)."),
    "addresses": ("list[str]", "Addresses inside, CIDR (10.0.0.2/24, fd00::2/64)."),
    "host_addresses": ("list[str]", "veth: addresses of the host end."),
    "master": ("str", "veth: a bridge on the host the host end joins."),
}
ROUTE = {
    "to": ("str", "Destination prefix, or default."),
    "via": ("str", "Gateway address."),
    "dev": ("str", "Output interface (default: the first link)."),
    "metric": ("int", "Route priority."),
}
MOUNT = {
    "type": ("str", "tmpfs, bind, proc or remount."),
    "source": ("str", "bind: the host path."),
    "target": ("str", "Where, in the workload's mount namespace."),
    "options": ("list[str]", "Flags: ro, nosuid, nodev, noexec, rec, ..."),
    "data": ("str", "Filesystem options (tmpfs: size=64m,mode=755)."),
}
SCHEMA = {
    "argv": ("list[str]", "The workload command; a command line after -- replaces it."),
    "namespaces": ("list[str]", "Fresh namespaces: net, pid, mount, uts, ipc, user, cgroup, time, or [\"all\"]."),
    "hostname": ("str", "Hostname inside (needs the uts namespace)."),
    "cwd": ("str", "Working directory of the workload."),
    "env": ("map[str]", "Environment variables to set."),
    "clear_env": ("bool", "Start from an empty environment."),
    "run_as": ("str", "UID[:GID] the workload runs as."),
    "no_new_privs": ("bool", "Set PR_SET_NO_NEW_PRIVS before exec."),
    "name": ("str", "Session name (a session is made when a name, tty, detach or restart is asked)."),
    "tty": ("bool", "Give the workload a terminal (PTY)."),
    "restart": ("str", "no, on-failure or always."),
    "max_restarts": ("int", "At most this many restarts (0: no limit)."),
    "user": ({
        "uid": ("list[str]", "uid map entries INSIDE:OUTSIDE:LENGTH."),
        "gid": ("list[str]", "gid map entries INSIDE:OUTSIDE:LENGTH."),
        "root": ("bool", "Map root inside to the caller's uid/gid."),
        "auto": ("bool", "Map the caller's /etc/subuid and /etc/subgid ranges."),
    }, "Identity: uid/gid maps of the new user namespace (setgroups deny comes first)."),
    "cgroup": ({
        "path": ("str", "The cgroup (relative to the cgroup2 mount); made if missing."),
        "parent": ("str", "Instead of path: make a new cgroup linx-<random> under this one."),
        "controllers": ("list[str]", "Controllers to enable in the parent's cgroup.subtree_control first."),
        "keep": ("bool", "Leave a cgroup linx made in place when the workload ends."),
        "memory_max": ("str|int", "memory.max (256M, 1G, max)."),
        "memory_high": ("str|int", "memory.high."),
        "memory_swap_max": ("str|int", "memory.swap.max."),
        "pids_max": ("str|int", "pids.max (a count, or max)."),
        "cpu_max": ("str", "cpu.max (50ms/100ms, or QUOTA PERIOD in µs, or max)."),
        "cpu_weight": ("int", "cpu.weight (1-10000)."),
    }, "Resources: the cgroup v2 the workload starts in, and its limits."),
    "net": ({
        "lo": ("bool", "Bring lo up (default true with a new net namespace)."),
        "links": ([LINK], "Interfaces made on the host and moved in."),
        "routes": ([ROUTE], "Routes inside."),
    }, "Network: links, addresses and routes, set up before the workload runs."),
    "nft": ({
        "ruleset": ("str", "nft ruleset text, loaded into the workload's network namespace."),
        "file": ("str", "A ruleset file instead (relative to the spec file)."),
    }, "Firewall: tables owned by the session, gone when the workload ends."),
    "mounts": ([MOUNT], "Mounts in the workload's mount namespace, in order."),
    "rootfs": ({
        "path": ("str", "A directory that becomes / (pivot_root; relative to the spec file); "
                        "the old root is detached."),
        "readonly": ("bool", "Make the new root read-only."),
    }, "A root filesystem to pivot into."),
    "sysctl": ("map[str]", "Kernel tunables in the workload's namespaces (net.*, kernel.hostname, IPC keys)."),
    "hooks": ("list[str]", "Host shell commands run at the checkpoint, $LINX_PID set; non-zero aborts."),
    "caps": ({
        "keep": ("list[str]", "Keep only these capabilities (all sets)."),
        "drop": ("list[str]", "Drop these (or [\"all\"])."),
        "add": ("list[str]", "Keep these after a drop."),
        "ambient": ("list[str]", "Raise these in the ambient set."),
    }, "Privilege: capability sets of the workload."),
    "seccomp": ({
        "profile": ("str", "A Docker/OCI seccomp profile, a linx rules file, or compiled BPF."),
        "allow": ("list[str]", "Allow-list: only these syscalls (others kill the process)."),
        "deny": ("list[str]", "Deny-list: these fail with `errno`."),
        "errno": ("str", "The errno denied syscalls return (default EPERM)."),
    }, "Syscalls: the filter installed last before exec."),
}


class SpecError(UsageError):
    """Every error of a spec at once, one per line, each naming its key path."""

    def __init__(self, source: str, errors: list[str]):
        self.errors = errors
        lines = [f"{source}: {e}" for e in errors]
        LinxError.__init__(self, "\n".join(lines) if len(lines) > 1 else lines[0])
        self.where, self.expected = source, "; ".join(errors)


# -- load -----------------------------------------------------------------

def load(path: str) -> dict:
    """TOML, or JSON when the file ends in .json or starts with `{`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(path, f"cannot read the spec: {os.strerror(e.errno)}") from None
    if path.endswith(".json") or raw.lstrip().startswith(b"{"):
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise UsageError(f"{path}:{getattr(e, 'lineno', '?')}", f"not valid JSON: {e.msg}") from None
    else:
        import tomllib
        try:
            doc = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UsageError(path, f"not valid TOML: {e}") from None
    if not isinstance(doc, dict):
        raise UsageError(path, "the spec must be a table/object at the top")
    doc.setdefault("_base", os.path.dirname(os.path.abspath(path)))
    return doc


def merge(base: dict, over: dict) -> dict:
    """Flags override the file: tables merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# -- validation -------------------------------------------------------------

def _shape(value, kind, path: str, errors: list[str]) -> None:
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a table")
            return
        for key, item in value.items():
            if key not in kind:
                errors.append(f"{path + '.' if path else ''}{key}: unknown key "
                              f"(expected one of {', '.join(kind)})")
            else:
                _shape(item, kind[key][0], f"{path + '.' if path else ''}{key}", errors)
    elif isinstance(kind, list):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list of tables")
            return
        for i, item in enumerate(value):
            _shape(item, kind[0], f"{path}[{i}]", errors)
    elif kind == "str":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string")
    elif kind == "str|int":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            errors.append(f"{path}: expected a string or an integer")
    elif kind == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer")
    elif kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{path}: expected a list of strings")
    elif kind == "map[str]":
        if not isinstance(value, dict) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                   for v in value.values()):
            errors.append(f"{path}: expected a table of strings or integers")


class _Collect:
    """Runs a library validator and records its UsageError under our key path."""

    def __init__(self):
        self.errors: list[str] = []

    def __call__(self, path: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UsageError as e:
            self.errors.append(f"{path}: {e.expected}")
        except LinxError as e:
            self.errors.append(f"{path}: {e}")
        return None


@dataclass
class Step:
    key: str                  # the spec key it comes from: `net.links[0]`
    title: str                # what it does, for --dry-run
    apply: object = None      # fn(ctx) -> undo fn or None; None for child-side steps
    phase: str = "host"       # host | child


@dataclass
class Plan:
    """What a validated spec does, in order. `settings` are the child-side ones the agent
    applies; `steps` run host-side at the checkpoint."""
    namespaces: list[str]
    argv: list[str]
    env: list[str] | None
    settings: dict
    cap_plan: object = None
    seccomp_plan: object = None
    steps: list[Step] = field(default_factory=list)
    child_steps: list[Step] = field(default_factory=list)
    cleanup: list = field(default_factory=list)     # fn() run after the workload ended

    def to_json(self) -> dict:
        return {"namespaces": self.namespaces, "argv": self.argv,
                "steps": [{"key": s.key, "phase": s.phase, "do": s.title}
                          for s in self.steps + self.child_steps] +
                         [{"key": "proceed", "phase": "child", "do": "execve " + " ".join(self.argv)}]}


def plan(doc: dict, source: str = "spec", argv=None) -> Plan:
    """Validate everything (all errors at once, SpecError) and build the plan. No syscall."""
    base = doc.get("_base")
    doc = {k: v for k, v in doc.items() if k != "_base"}
    errors: list[str] = []
    _shape(doc, SCHEMA, "", errors)
    if errors:
        raise SpecError(source, errors)
    check = _Collect()
    from . import process
    kinds = check("namespaces", process.parse_namespaces, doc.get("namespaces", []), "namespaces")
    if kinds is None:      # go on with the names that are right, to report every other error too
        kinds = process.parse_namespaces([n for n in doc["namespaces"] if
                                          process.ALIASES.get(n, n) in process.NAMESPACES])
    argv = list(argv or doc.get("argv") or [])
    if not argv:
        check.errors.append("argv: no workload command (give one after -- or as argv)")
    settings: dict = {}
    if doc.get("hostname") is not None:
        if "uts" not in kinds:
            check.errors.append("hostname: needs a new UTS namespace (--ns uts), or it would rename the host")
        settings["hostname"] = doc["hostname"]
    if doc.get("cwd") is not None:
        settings["cwd"] = doc["cwd"]
    if doc.get("no_new_privs"):
        settings["no_new_privs"] = True
    if doc.get("run_as"):
        uid, _, gid = doc["run_as"].partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            settings.update(uid=int(uid), gid=int(gid or uid), groups="")
        else:
            check.errors.append(f"run_as: {doc['run_as']!r}: expected UID[:GID] as numbers")
    env = None
    if doc.get("env") or doc.get("clear_env"):
        env = {} if doc.get("clear_env") else dict(os.environ)
        env.update({k: str(v) for k, v in (doc.get("env") or {}).items()})
        for k in env:
            if not k or "=" in k or "\0" in k:
                check.errors.append(f"env.{k}: not a variable name")
        env = [f"{k}={v}" for k, v in env.items()]
    if doc.get("restart", "no") not in ("no", "on-failure", "always"):
        check.errors.append(f"restart: {doc['restart']!r}: expected no, on-failure or always")
    if doc.get("max_restarts", 0) < 0:
        check.errors.append("max_restarts: expected 0 or more")
    if "name" in doc:
        from . import sessions
        check("name", sessions.check_name, doc["name"], "name")
    p = Plan(kinds, argv, env, settings)
    net = doc.get("net", {})
    if "net" in kinds:
        settings["lo_up"] = net.get("lo", True)
    elif net:
        check.errors.append("net: needs the net namespace")
    _plan_user(doc, kinds, p, check)
    _plan_cgroup(doc, p, check)
    _plan_net(net, kinds, p, check)
    _plan_nft(doc, kinds, p, check, base)
    _plan_mounts(doc, kinds, p, check, base)
    _plan_sysctl(doc, kinds, p, check)
    _plan_hooks(doc, p)
    _plan_child(doc, p, check)
    if check.errors:
        raise SpecError(source, check.errors)
    return p


def _plan_user(doc, kinds, p: Plan, check: _Collect) -> None:
    u = doc.get("user")
    if not u:
        return
    if "user" not in kinds:
        check.errors.append("user: maps need a new user namespace (--ns user)")
        return
    from . import user
    try:
        maps = user.plan(u.get("uid", []), u.get("gid", []), u.get("root", False), u.get("auto", False))
    except UsageError as e:
        key = {"--map-uid": "user.uid", "--map-gid": "user.gid"}.get(e.where, "user")
        check.errors.append(f"{key}: {e.expected}")
        maps = None
    if maps:
        uid_map, gid_map = maps
        if gid_map:
            p.settings.pop("groups", None)   # setgroups is denied before gid_map is written

        def apply(ctx):
            user.setup_maps(ctx.pid, uid_map or None, gid_map or None)
        shown = lambda maps: " ".join(f"{m.inside}:{m.outside}:{m.length}" for m in maps) or "-"
        p.steps.append(Step("user", f"uid_map {shown(uid_map)}; setgroups deny; gid_map {shown(gid_map)}",
                            apply))


CGROUP_KNOBS = {"memory_max": "memory.max", "memory_high": "memory.high",
                "memory_swap_max": "memory.swap.max", "pids_max": "pids.max",
                "cpu_max": "cpu.max", "cpu_weight": "cpu.weight"}


def _plan_cgroup(doc, p: Plan, check: _Collect) -> None:
    c = doc.get("cgroup")
    if not c:
        return
    from . import cgroup
    if ("path" in c) == ("parent" in c):
        if "path" in c:
            check.errors.append("cgroup: give path or parent, not both")
            return
        first = next((k for k in c if k not in ("keep", "controllers")), "keep")
        check.errors.append(f"cgroup.{first}: needs --cgroup PATH (cgroup.path, the cgroup to run in)")
        return
    if "parent" in c:
        parent = check("cgroup.parent", cgroup.resolve, c["parent"], "cgroup.parent")
        path = None if parent is None else os.path.join(parent, "linx-" + os.urandom(4).hex())
    else:
        path = check("cgroup.path", cgroup.resolve, c["path"], "cgroup.path")
    controllers = c.get("controllers", [])
    for name in controllers:
        if not cgroup.CONTROLLER_NAME.match(name):
            check.errors.append(f"cgroup.controllers: {name!r} is not a controller name")
    limits = {}
    for key, knob in CGROUP_KNOBS.items():
        if key in c:
            text = check(f"cgroup.{key}", cgroup.render, knob, c[key], f"cgroup.{key}")
            if text is not None:
                limits[knob] = text
    if path is None:
        return
    placement = cgroup.Placement(path, limits, c.get("keep", False))

    def apply(ctx):
        if controllers:
            failed = cgroup.enable_controllers(os.path.dirname(path), controllers)
            if failed:
                raise next(iter(failed.values()))
        placement.apply(ctx.pid)
        return placement._remove
    shown = ", ".join(f"{k}={v}" for k, v in limits.items())
    p.steps.append(Step("cgroup", f"cgroup {path}{' (' + shown + ')' if shown else ''}, "
                                  "move the workload in", apply))
    p.cleanup.append(placement.release)


def _plan_net(net, kinds, p: Plan, check: _Collect) -> None:
    if not net or "net" not in kinds:
        return
    from .ip import IP, Subnet
    from .netlink.rtnl import link as rtlink
    links = net.get("links", [])
    names = []
    for i, l in enumerate(links):
        where = f"net.links[{i}]"
        kind = l.get("kind")
        if kind not in ("veth", "macvlan", "ipvlan"):
            check.errors.append(f"{where}.kind: {kind!r}: expected veth, macvlan or ipvlan")
            continue
        if "name" not in l:
            check.errors.append(f"{where}.name: required")
            continue
        check(f"{where}.name", rtlink.check_name, l["name"], "name")
        if l["name"] in names:
            check.errors.append(f"{where}.name: {l['name']!r} used twice")
        names.append(l["name"])
        if kind == "veth" and "parent" in l:
            check.errors.append(f"{where}.parent: a veth has no parent")
        if kind != "veth" and "parent" not in l:
            check.errors.append(f"{where}.parent: a {kind} needs a parent interface")
        if kind != "veth" and ("host" in l or "host_addresses" in l or "master" in l):
            check.errors.append(f"{where}: host, host_addresses and master are for veth only")
        if "master" in l:
            check(f"{where}.master", rtlink.check_name, l["master"], "master")
        if "host" in l:
            check(f"{where}.host", rtlink.check_name, l["host"], "host")
        if "mtu" in l:
            check(f"{where}.mtu", rtlink.check_mtu, l["mtu"], "mtu")
        for key in ("addresses", "host_addresses"):
            for j, a in enumerate(l.get(key, [])):
                s = check(f"{where}.{key}[{j}]", Subnet, a, where=f"{where}.{key}[{j}]")
                if s is not None and "/" not in a:
                    check.errors.append(f"{where}.{key}[{j}]: {a!r} needs a prefix length (/24)")
        try:
            rtlink.add_request("lxcheck0", kind, parent=1 if kind != "veth" else None,
                               mode=l.get("mode"), peer="lxcheck1" if kind == "veth" else None)
        except UsageError as e:
            check.errors.append(f"{where}.{e.where}: {e.expected}")
    for i, r in enumerate(net.get("routes", [])):
        where = f"net.routes[{i}]"
        to = r.get("to", "default")
        if to != "default":
            check(f"{where}.to", Subnet, to, where=f"{where}.to")
        if "via" in r:
            check(f"{where}.via", IP, r["via"], f"{where}.via")
        if "dev" in r and r["dev"] not in names + ["lo"]:
            check.errors.append(f"{where}.dev: {r['dev']!r} is not one of net.links")
        if "via" not in r and "dev" not in r:
            check.errors.append(f"{where}: needs via or dev")
    for i, l in enumerate(links):
        if l.get("kind") in ("veth", "macvlan", "ipvlan") and "name" in l:
            p.steps.append(Step(f"net.links[{i}]", _link_title(l), _link_step(l, p)))
    if links or net.get("routes"):
        p.steps.append(Step("net.inside", "inside: links up, addresses, routes",
                            _inside_step(links, net.get("routes", []))))


def _link_title(l) -> str:
    if l["kind"] == "veth":
        return (f"veth {l.get('host', 'lx<pid>')} on the host, its peer {l['name']} inside"
                + (f", host addresses {', '.join(l['host_addresses'])}" if l.get("host_addresses") else ""))
    return f"{l['kind']} {l['name']} inside, on {l['parent']} ({l.get('mode', 'default mode')})"


def _link_step(l, p: Plan):
    """Create the link with its inside end already in the child's netns (IFLA_NET_NS_PID:
    no move, no rename, and the inside name need only be free there), then set up the host
    end of a veth. Undo: delete the host end (the peer goes with it) or the inside link.
    A veth's host end is also deleted when the workload ends: the netns takes it down only
    some time after its last process, and a second run of the same spec would meet it."""
    def apply(ctx):
        from .netlink import transport
        from .netlink.rtnl import address, link
        host_name = l.get("host") or f"lx{ctx.pid}"
        opts = {"mtu": l.get("mtu")} if l.get("mtu") else {}
        with transport.open() as host:
            if l["kind"] != "veth":
                link.add(host, l["name"], l["kind"], parent=l["parent"], mode=l.get("mode"),
                         netns_pid=ctx.pid, **opts)
                return _delete_link(f"pid:{ctx.pid}", l["name"])
            link.add(host, host_name, "veth", peer=l["name"], peer_netns_pid=ctx.pid, **opts)
            undo_host = _delete_link(None, host_name)
            try:
                idx = link.index(host, host_name)
                for a in l.get("host_addresses", []):
                    address.add(host, idx, a)
                if l.get("master"):
                    link.set(host, host_name, master=l["master"])
                link.set(host, host_name, up=True)
            except LinxError:
                undo_host()
                raise
        p.cleanup.append(undo_host)
        return undo_host
    return apply


def _inside_step(links, routes):
    def apply(ctx):
        from .netlink import transport
        from .netlink.rtnl import address, link, route
        with transport.open(target=f"pid:{ctx.pid}") as s:
            for l in links:
                idx = link.index(s, l["name"])
                for a in l.get("addresses", []):
                    address.add(s, idx, a)
                link.set(s, l["name"], up=True)
            for r in routes:
                dev = r.get("dev") or (links[0]["name"] if links else None)
                opts = {"via": r.get("via"), "metric": r.get("metric")}
                if dev:
                    opts["oif"] = link.index(s, dev)
                route.add(s, r.get("to", "default"), **{k: v for k, v in opts.items() if v is not None})
        return None   # everything inside goes with the namespace
    return apply


def _delete_link(target, name: str):
    """The undo of a link step: delete `name` in `target`'s netns (None: ours), best effort."""
    def undo():
        from .netlink import transport
        from .netlink.rtnl import link
        with transport.open(target=target) as s:
            link.delete(s, name)
    return lambda: _quiet(undo)


def _quiet(fn) -> None:
    """Undo is best effort: the first error is the one reported."""
    try:
        fn()
    except (LinxError, OSError):
        pass


def _plan_nft(doc, kinds, p: Plan, check: _Collect, base) -> None:
    n = doc.get("nft")
    if not n:
        return
    if "net" not in kinds:
        check.errors.append("nft: needs the net namespace (the tables live in the workload's)")
        return
    if ("ruleset" in n) == ("file" in n):
        check.errors.append("nft: give exactly one of ruleset or file")
        return
    text, name = n.get("ruleset"), "nft.ruleset"
    if "file" in n:
        name = os.path.join(base or ".", n["file"])
        try:
            with open(name) as f:
                text = f.read()
        except OSError as e:
            check.errors.append(f"nft.file: cannot read {name}: {os.strerror(e.errno)}")
            return
    from .netfilter import parser, validate

    def parse_and_validate():
        rs = parser.parse(text, name)
        validate.validate(rs)
        return rs
    ruleset = check("nft", parse_and_validate)
    if ruleset is None:
        return

    def apply(ctx):
        from . import target
        from .netfilter import push
        sock = push.push(ruleset, target.parse(f"pid:{ctx.pid}"), owner=True)
        ctx.hold(sock)           # the agent keeps the owning socket: the tables live as long
        return None              # as the workload, and go with it
    tables = ", ".join(f"{t.family} {t.name}" for t in ruleset.tables.values())
    p.steps.append(Step("nft", f"nft tables {tables} in the workload's netns, owned by the session "
                               "(gone when it ends)", apply))


def _plan_mounts(doc, kinds, p: Plan, check: _Collect, base=None) -> None:
    mounts, rootfs = doc.get("mounts", []), doc.get("rootfs")
    if not mounts and not rootfs:
        return
    if "mnt" not in kinds:
        check.errors.append(f"{'mounts' if mounts else 'rootfs'}: needs the mount namespace")
        return
    from . import mount
    for i, m in enumerate(mounts):
        where = f"mounts[{i}]"
        kind = m.get("type")
        if kind not in ("tmpfs", "bind", "proc", "remount"):
            check.errors.append(f"{where}.type: {kind!r}: expected tmpfs, bind, proc or remount")
            continue
        target = m.get("target", "/proc" if kind == "proc" else None)
        if not target or not target.startswith("/"):
            check.errors.append(f"{where}.target: an absolute path is required")
            continue
        if kind == "bind" and not m.get("source"):
            check.errors.append(f"{where}.source: a bind needs a source")
            continue
        flags = check(f"{where}.options", mount.flag_bits, m.get("options", []), mount.FLAGS,
                      f"{where}.options")
        if flags is None:
            continue
        if kind == "proc":
            # a proc mount shows the pid namespace of whoever mounts it: only the child can
            if "pid" not in kinds or target != "/proc":
                check.errors.append(f"{where}: proc is mounted by the workload itself on /proc "
                                    "and needs the pid namespace")
            p.settings["mount_proc"] = True
            p.child_steps.append(Step(where, "mount a fresh proc on /proc (in the child)", phase="child"))
            continue
        p.steps.append(Step(where, _mount_title(kind, m, target), _mount_step(kind, m, target)))
    if rootfs:
        path = os.path.join(base or os.getcwd(), rootfs.get("path", ""))   # relative to the spec file
        if "path" not in rootfs or not os.path.isdir(path):
            check.errors.append(f"rootfs.path: {rootfs.get('path')!r} is not a directory")
        else:
            rootfs = {**rootfs, "path": os.path.normpath(path)}
            p.steps.append(Step("rootfs", f"pivot_root into {rootfs['path']}"
                                          f"{' (read-only)' if rootfs.get('readonly') else ''}",
                                _rootfs_step(rootfs)))


def _mount_title(kind, m, target) -> str:
    opts = ",".join(m.get("options", []))
    if kind == "bind":
        return f"bind {m['source']} on {target}{' (' + opts + ')' if opts else ''}"
    if kind == "remount":
        return f"remount {target} {opts}"
    return f"tmpfs on {target}{' (' + m['data'] + ')' if m.get('data') else ''}"


def _mount_step(kind, m, target):
    def apply(ctx):
        from . import mount
        opts = m.get("options", [])
        where = f"pid:{ctx.pid}"
        if kind == "tmpfs":
            mount.mount("tmpfs", target, "tmpfs", opts, m.get("data", ""), create=True, in_=where)
        elif kind == "bind":
            mount.bind(m["source"], target, opts, create=True, in_=where)
        else:
            mount.remount(target, ["bind", *opts] if "bind" not in opts else opts, in_=where)
        return None   # the mount namespace, and every mount in it, goes with the workload
    return apply


def _rootfs_step(rootfs):
    def apply(ctx):
        from . import mount
        where = f"pid:{ctx.pid}"
        new = rootfs["path"]
        mount.set_propagation("/", "private", rec=True, in_=where)
        mount.bind(new, new, ["rec"], in_=where)               # pivot_root wants a mount point
        mount.pivot_root(new, new, in_=where)                  # old root stacked under the new
        mount.umount("/", ["detach"], in_=where)               # and detached from it
        if rootfs.get("readonly"):
            mount.remount("/", ["bind", "ro"], in_=where)
        return None
    return apply


def _plan_sysctl(doc, kinds, p: Plan, check: _Collect) -> None:
    values = doc.get("sysctl")
    if not values:
        return
    from . import sysctl
    texts = {}
    for key, value in values.items():
        k = check(f"sysctl.{key}", sysctl.check_key, key, f"sysctl.{key}")
        v = check(f"sysctl.{key}", sysctl.render, value, f"sysctl.{key}")
        if k is None or v is None:
            continue
        owner = sysctl.owner(k)
        ns = {"net": "net", "uts": "uts", "ipc": "ipc"}.get(owner or "")
        if ns is None or ns not in kinds:
            check.errors.append(f"sysctl.{key}: {key} is not in a namespace of the workload's own "
                                f"({'host-global' if ns is None else 'needs the ' + ns + ' namespace'}); "
                                "it would change the host")
            continue
        texts[k] = v

    def apply(ctx):
        from . import target
        sysctl.write_many(texts, target=target.parse(f"pid:{ctx.pid}"))
    if texts:
        p.steps.append(Step("sysctl", ", ".join(f"{k}={v}" for k, v in texts.items()), apply))


def _plan_hooks(doc, p: Plan) -> None:
    for i, command in enumerate(doc.get("hooks", [])):
        def apply(ctx, command=command, i=i):
            import subprocess
            status = subprocess.run(["/bin/sh", "-c", command],
                                    env={**os.environ, "LINX_PID": str(ctx.pid)}).returncode
            if status:
                raise LinxError(f"hook {command!r} exited with status {status}")
        p.steps.append(Step(f"hooks[{i}]", f"sh -c {command!r}", apply))


def _plan_child(doc, p: Plan, check: _Collect) -> None:
    """Child-side: hostname, caps, no_new_privs, seccomp, applied by the agent's child last.
    Validated here; resolved against the parked child in child_settings()."""
    if "hostname" in p.settings:
        p.child_steps.append(Step("hostname", f"sethostname {p.settings['hostname']}", phase="child"))
    caps, filt = doc.get("caps") or {}, doc.get("seccomp") or {}
    p.cap_plan = p.seccomp_plan = None
    if not caps and not filt:
        if p.settings.get("no_new_privs"):
            p.child_steps.append(Step("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)", phase="child"))
        return
    from . import capabilities, seccomp
    drop = caps.get("drop")
    cap_plan = check("caps", capabilities.plan, "all" if drop == ["all"] else drop, caps.get("add"),
                     caps.get("keep"), caps.get("ambient"))
    nnp = bool(p.settings.get("no_new_privs"))
    sec_plan = check("seccomp", seccomp.plan, filt.get("profile"), filt.get("allow"),
                     filt.get("deny"), filt.get("errno"), nnp) if filt else None
    if cap_plan is None or (filt and sec_plan is None):
        return
    if sec_plan is not None and not nnp:
        # what the kernel would refuse (EACCES), said before anything runs
        sys_admin = 1 << capabilities.BITS["cap_sys_admin"]
        dropped = (cap_plan.keep is not None and not cap_plan.keep & sys_admin) or \
            (cap_plan.drop_all and not cap_plan.add & sys_admin) or cap_plan.drop & sys_admin
        if dropped or (p.settings.get("uid") and cap_plan.empty):
            check.errors.append("seccomp: installing a filter without no_new_privs (--no-new-privs) "
                                "needs CAP_SYS_ADMIN, which the workload will not have")
            return
    if not cap_plan.empty:
        p.child_steps.append(Step("caps", "bounding set, then permitted/effective/inheritable, "
                                          "then ambient", phase="child"))
    if nnp:
        p.child_steps.append(Step("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)", phase="child"))
    if sec_plan is not None:
        p.child_steps.append(Step("seccomp", "install the filter (last, before execve)", phase="child"))
    p.cap_plan, p.seccomp_plan = cap_plan, sec_plan


def child_settings(p: Plan, pid: int) -> dict:
    """The child-side settings for the parked child `pid`: the cap masks from the sets it
    starts with; then the filter, a Docker profile's includes/excludes seeing the caps it
    keeps, the exec gate reading its mappings."""
    settings = dict(p.settings)
    cap_plan, sec_plan = p.cap_plan, p.seccomp_plan
    if cap_plan is None:
        return settings
    from . import capabilities
    state = capabilities.read(pid)
    settings.update(cap_plan.settings(state))
    if sec_plan is not None:
        if cap_plan.empty:
            bounding = state.bounding
            effective = 0 if settings.get("uid") else state.effective   # setresuid clears it
        else:
            bounding, effective = cap_plan.target(state), cap_plan.effective_after(state)
        names = {n.upper() for n in capabilities.names(bounding)}
        sys_admin = 1 << capabilities.BITS["cap_sys_admin"]
        settings.update(sec_plan.settings(pid, names, bool(effective & sys_admin)))
    return settings


# -- apply ---------------------------------------------------------------------

class CheckpointError(LinxError):
    """A step failed at the checkpoint; what it did before was undone."""

    exit_status = 125

    def __init__(self, key: str, cause: Exception):
        self.key, self.cause = key, cause
        self.rollback = lambda: None
        super().__init__(f'checkpoint step "{key}" failed: {cause}')


class Context:
    def __init__(self, pid: int, session):
        self.pid, self.session = pid, session

    def hold(self, sock) -> None:
        """Hand a socket to the agent, which keeps it open for the workload's life."""
        self.session.hold(sock)


def apply(p: Plan, pid: int, session=None) -> None:
    """Run the host-side steps in order. On a failure raise CheckpointError naming the step,
    whose rollback() undoes the done ones in reverse once the child is gone.
    LINX_FAIL_STEP=<key> makes that step fail (the fault-injection tests)."""
    ctx = Context(pid, session)
    undo = []
    fail = os.environ.get("LINX_FAIL_STEP")
    for step in p.steps:
        try:
            if fail == step.key:
                raise LinxError("failure injected by LINX_FAIL_STEP")
            u = step.apply(ctx)
        except BaseException as e:       # whatever it was, nothing done so far stays
            def rollback():
                for fn in reversed(undo):
                    _quiet(fn)
            if isinstance(e, (LinxError, OSError)):
                err = CheckpointError(step.key, e)
                err.rollback = rollback      # the caller aborts the child first (a cgroup
                raise err from None          # cannot be removed while it holds it), then this
            rollback()
            raise
        if u is not None:
            undo.append(u)


def finish(p: Plan) -> list[str]:
    """After the workload ended: release what the session made (cgroup). Returns warnings."""
    warnings = []
    for fn in p.cleanup:
        try:
            fn()
        except LinxError as e:
            warnings.append(str(e))
    return warnings


# -- JSON Schema ------------------------------------------------------------------

def json_schema() -> dict:
    """The JSON Schema of the run spec, from SCHEMA (editors validate specs with it)."""
    def conv(kind, help_text=None):
        if isinstance(kind, dict):
            out = {"type": "object", "additionalProperties": False,
                   "properties": {k: conv(*v) for k, v in kind.items()}}
        elif isinstance(kind, list):
            out = {"type": "array", "items": conv(kind[0])}
        else:
            out = {"str": {"type": "string"}, "bool": {"type": "boolean"},
                   "str|int": {"type": ["string", "integer"]},
                   "int": {"type": "integer"},
                   "list[str]": {"type": "array", "items": {"type": "string"}},
                   "map[str]": {"type": "object",
                                "additionalProperties": {"type": ["string", "integer"]}}}[kind]
        if help_text:
            out["description"] = help_text
        return out
    doc = conv(SCHEMA)
    doc.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "linx run spec"})
    return doc
