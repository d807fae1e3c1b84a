"""`linx net`: links, addresses, routes, neighbours and rules of any network namespace, in
ip's grammar (`linx net route add 10.0.0.0/24 via 10.1.0.1 dev eth0`), over linx's own
rtnetlink. `--json` prints the objects `ip -j` prints, with the same keys and values.

Text and JSON come from one place: the library shapes each object as ip -j does
(rtnl/<object>.to_json) and the text below is formatted from that same dict."""
import sys

import typer

from ._app import new_app

HELP = "Network interfaces, addresses, routes, neighbours and rules in any netns (rtnetlink)."
app = new_app(HELP)
WORDS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def options(ctx: typer.Context,
            netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET",
                                      help="Work in this network namespace: pid:N, a namespace file, "
                                           "an ip netns name or a session (default: linx's own)."),
            json: bool = typer.Option(False, "--json", "-j", help="Print JSON (ip -j's keys and values)."),
            inet: bool = typer.Option(False, "-4", help="IPv4 only."),
            inet6: bool = typer.Option(False, "-6", help="IPv6 only.")) -> None:
    """Network interfaces, addresses, routes, neighbours and rules in any netns (rtnetlink).

    Commands follow ip's grammar: linx net route add 10.0.0.0/24 via 10.1.0.1 dev eth0.
    Exit status: 0 success, 1 the kernel refused (errno name and its reason), 2 bad input.
    """
    from linx_core.errors import UsageError
    if inet and inet6:
        raise UsageError("-4/-6", "give one of them")
    ctx.obj = {"netns": netns, "json": json, "family": 2 if inet else 10 if inet6 else 0}


def _object_command(obj: str, synopsis: str):
    def command(ctx: typer.Context,
                words: list[str] = typer.Argument(None, metavar="VERB [ARGS]...")) -> None:
        _run(ctx.obj, [obj, *(words or [])])
    command.__doc__ = synopsis
    return command


for _name, _synopsis, _aliases in (
        ("link", "Interfaces: show [DEV] | add [link PARENT] NAME type veth|macvlan|ipvlan|vlan|bridge|dummy|ifb "
                 "[peer name P] [mode M] [id VID] [mtu N] [address MAC] | del DEV | set DEV [up|down] [mtu N] "
                 "[address MAC] [name NEW] [master DEV|nomaster] [netns TARGET]", ()),
        ("addr", "Addresses: show [dev DEV] | add|del ADDR/PLEN dev DEV [broadcast ADDR|+] [label L] "
                 "[scope S]", ("address",)),
        ("route", "Routes: show [table T|all] | get ADDR [from ADDR] [dev DEV] | "
                  "add|replace|change|append|del PREFIX|default [via ADDR] [dev DEV] [table T] "
                  "[proto P] [metric N] [scope S] [src ADDR] [onlink]", ()),
        ("neigh", "ARP/NDP entries: show [dev DEV] | add|replace|change|del ADDR lladdr MAC dev DEV "
                  "[nud STATE] [router]", ("neighbour", "neighbor")),
        ("rule", "Policy-routing rules: show | add|del [not] [from PREFIX] [to PREFIX] [fwmark M[/MASK]] "
                 "[table T] [priority N] [iif DEV] [oif DEV] [protocol P]", ())):
    _fn = _object_command(_name, _synopsis)
    app.command(_name, context_settings=WORDS, help=_synopsis)(_fn)
    for _alias in _aliases:
        app.command(_alias, context_settings=WORDS, help=_synopsis, hidden=True)(_fn)


@app.command("stats")
def stats(ctx: typer.Context, dev: str = typer.Argument(None, help="One interface (default: all).")) -> None:
    """Interface counters (rtnl_link_stats64): ip -s link's stats64."""
    from linx_core.netlink import rtnl
    from linx_core.netlink.rtnl import link, stats as rtstats
    with rtnl.open(ctx.obj["netns"]) as sock:
        by_index = {l.index: l for l in link.list(sock)}
        if dev is None:
            found = rtstats.list(sock)
        else:
            found = [rtstats.get(sock, link.index(sock, dev))]
    rows = []
    for s in found:
        name = by_index[s.ifindex].name if s.ifindex in by_index else f"if{s.ifindex}"
        rows.append({"ifindex": s.ifindex, "ifname": name, "stats64": rtstats.to_json(s)})
    if ctx.obj["json"]:
        _write(rows, True, None)
        return
    from ._table import show
    counters = ("bytes", "packets", "errors", "dropped")
    show(["IFACE", "RX bytes", "packets", "errors", "dropped", "TX bytes", "packets", "errors", "dropped"],
         [[r["ifname"], *(str(r["stats64"][d][c]) for d in ("rx", "tx") for c in counters)] for r in rows],
         right=range(1, 9))


@app.command("apply")
def apply(ctx: typer.Context, file: str = typer.Argument(..., help="Batch file, - for stdin.")) -> None:
    """Run a batch of commands, one per line as with ip -batch (`route add ...`, a leading
    `ip` allowed, # comments). Every line is checked first (exit 2 naming FILE:LINE, nothing
    applied); then they run in order on one socket, adds pipelined, stopping at the first
    failure, which is named by its line; lines before it stay applied."""
    from linx_core.errors import UsageError
    from linx_core.netlink import rtnl
    from linx_core.netlink.rtnl import command
    try:
        text = sys.stdin.read() if file == "-" else open(file).read()
    except OSError as e:
        raise UsageError(file, f"cannot read: {e.strerror}") from None
    commands = command.parse_batch(text, "<stdin>" if file == "-" else file, ctx.obj["family"])
    with rtnl.open(ctx.obj["netns"]) as sock:
        command.apply(sock, commands)


@app.command("monitor")
def monitor(ctx: typer.Context,
            objects: list[str] = typer.Argument(None, metavar="[link|addr|route|neigh|rule]...",
                                                help="What to watch (default: all)."),
            count: int = typer.Option(0, "--count", metavar="N", help="Stop after N events.")) -> None:
    """Stream changes as they happen (ip monitor); with --json one object per line. When the
    kernel drops events (the socket buffer overflowed) a resync-needed event says so."""
    from linx_core.errors import UsageError
    from linx_core.netlink import rtnl
    from linx_core.netlink.rtnl import command, link, monitor as rtmon
    wanted = []
    for word in objects or []:
        obj = command.OBJECTS.get(word)
        if obj is None:
            raise UsageError("monitor", f"{word!r} is not link, addr, route, neigh or rule")
        wanted.append(obj)
    as_json = ctx.obj["json"]
    with rtmon.open(ctx.obj["netns"], tuple(wanted) or tuple(rtmon.GROUPS)) as sock, \
            rtnl.open(ctx.obj["netns"]) as lsock:
        by_index = _LinkNames(lsock)
        seen = 0
        try:
            for event in rtmon.events(sock):
                if event.op == "unknown":
                    continue
                if isinstance(event.resource, link.Link):
                    by_index[event.resource.index] = event.resource
                line = _event_line(event, by_index, as_json)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                seen += 1
                if count and seen >= count:
                    break
        except KeyboardInterrupt:
            pass


class _LinkNames(dict):
    """ifindex -> Link for naming devices in events; an index not seen yet (a link made
    after the monitor started, when link events are not watched) is looked up then."""

    def __init__(self, sock):
        from linx_core.netlink.rtnl import link
        super().__init__((l.index, l) for l in link.list(sock))
        self.sock = sock

    def get(self, index, default=None):
        if index not in self:
            from linx_core.netlink.errors import NetlinkError
            from linx_core.netlink.rtnl import link
            try:
                self[index] = link.get(self.sock, index)
            except NetlinkError:
                return default
        return self[index]


# --- output --------------------------------------------------------------------------------

def _run(obj: dict, words: list[str]) -> None:
    import gc
    gc.disable()    # a listing allocates objects per route and makes no cycles: collections
    #                 would only rescan them (a third of a 100k-route dump's time)
    from linx_core.netlink import rtnl
    from linx_core.netlink.rtnl import command, link
    cmd = command.parse(words, "", obj["family"])
    with rtnl.open(obj["netns"]) as sock:
        result = command.run(sock, cmd)
        if result is None:
            return
        links = result if cmd.obj == "link" and "dev" not in cmd.args else link.list(sock)
        by_index = {l.index: l for l in links}
        if cmd.obj == "addr":
            from linx_core.netlink.rtnl import address
            shown = {a.index for a in result}
            rows = []
            for l in links:
                if "dev" in cmd.args and l.name != cmd.args["dev"]:
                    continue
                if obj["family"] and l.index not in shown:
                    continue
                row = link.to_json(l, by_index)
                row.pop("linkmode", None)
                row["addr_info"] = [address.to_json(a) for a in result if a.index == l.index]
                rows.append(row)
        else:
            shape = _shaper(cmd, by_index)
            rows = (shape(item) for item in result)
        _write(rows, obj["json"], TEXT[cmd.obj])


def _write(rows, as_json: bool, text, chunk: int = 2000) -> None:
    """Rows out as they come, `chunk` at a time: a 100k-route table is never held whole,
    neither as objects nor as text. JSON is one array, as ip -j prints."""
    import itertools
    import json
    out = sys.stdout
    rows = iter(rows)
    first = True
    if as_json:
        out.write("[")
    while True:
        batch = [*itertools.islice(rows, chunk)]
        if not batch:
            break
        if as_json:
            out.write(("" if first else ",") + json.dumps(batch, separators=(",", ":"))[1:-1])
        else:
            out.write("".join(text(r) + "\n" for r in batch))
        first = False
    if as_json:
        out.write("]\n")


def _shaper(cmd, by_index: dict):
    """The function that gives one object's ip -j shape (chosen once: a listing can be
    100k routes)."""
    from functools import partial

    from linx_core.netlink.rtnl import link, neighbour, route, rule
    if cmd.obj == "link":
        return partial(link.to_json, by_index=by_index)
    if cmd.obj == "route":
        table = cmd.args.get("table", 254) if cmd.verb == "show" else None
        return partial(route.to_json, by_index=by_index, table_filter=None if table == "all" else table)
    if cmd.obj == "neigh":
        return partial(neighbour.to_json, by_index=by_index)
    return rule.to_json


def _event_line(event, by_index: dict, as_json: bool) -> str:
    from linx_core.netlink.rtnl import address, link, monitor as rtmon, neighbour, route, rule
    if event.op == rtmon.RESYNC:
        return '{"event":"resync-needed"}' if as_json else "resync-needed: events were lost, re-read the state"
    r = event.resource
    kind = event.op.split("_", 1)[1]
    if kind == "link":
        row = link.to_json(r, by_index)
    elif kind == "addr":
        dev = by_index.get(r.index)
        row = {"ifindex": r.index, "dev": dev.name if dev else f"if{r.index}", **address.to_json(r)}
    elif kind == "route":
        row = route.to_json(r, by_index, None)
    elif kind == "neigh":
        row = neighbour.to_json(r, by_index)
    else:
        row = rule.to_json(r)
    if as_json:
        import json
        return json.dumps({"event": event.op, kind: row}, separators=(",", ":"))
    deleted = "Deleted " if event.op.startswith("del_") else ""
    text = TEXT[kind](row) if kind != "addr" else _addr_line(row)
    return f"[{kind.upper()}] {deleted}{text}"


def _words(row: dict, spec) -> str:
    """`key` -> "word value" when the key is there; spec entries are (key, word or "")."""
    out = []
    for key, word in spec:
        if key in row and row[key] is not None:
            out.append(f"{word} {row[key]}" if word else str(row[key]))
    return " ".join(out)


def _link_text(r: dict) -> str:
    name = r["ifname"] + (f"@{r['link']}" if r.get("link") else
                          f"@if{r['link_index']}" if "link_index" in r else "")
    head = f"{r['ifindex']}: {name}: <{','.join(r['flags'])}> " + _words(r, (
        ("mtu", "mtu"), ("qdisc", "qdisc"), ("master", "master"), ("operstate", "state"),
        ("linkmode", "mode"), ("group", "group"), ("txqlen", "qlen")))
    tail = f"    link/{r['link_type']} " + _words(r, (("address", ""), ("broadcast", "brd"),
                                                     ("permaddr", "permaddr")))
    return head + "\n" + tail.rstrip()


def _addr_line(a: dict) -> str:
    local = a.get("local", "")
    if "address" in a:
        local += f" peer {a['address']}"
    text = f"{a['family']} {local}/{a.get('prefixlen', '')} " + _words(a, (
        ("broadcast", "brd"), ("scope", "scope")))
    flags = [k for k in ("secondary", "temporary", "dynamic", "tentative", "deprecated", "dadfailed",
                         "noprefixroute", "nodad", "optimistic", "home", "mngtmpaddr", "autojoin",
                         "stable-privacy") if a.get(k)]
    text += "".join(" " + f for f in flags) + (f" {a['label']}" if "label" in a else "")
    if "valid_life_time" in a:
        def life(v):
            return "forever" if v == 0xFFFFFFFF else f"{v}sec"
        text += (f"\n       valid_lft {life(a['valid_life_time'])} "
                 f"preferred_lft {life(a['preferred_life_time'])}")
    return text


def _addr_text(r: dict) -> str:
    return _link_text(r) + "".join("\n    " + _addr_line(a) for a in r["addr_info"])


def _route_text(r: dict) -> str:
    text = _words(r, (("type", ""), ("dst", ""), ("from", "from"), ("gateway", "via"),
                      ("dev", "dev"), ("table", "table"), ("protocol", "proto"),
                      ("scope", "scope"), ("prefsrc", "src"), ("metric", "metric")))
    return text + "".join(" " + f for f in r.get("flags", [])) + \
        (f" pref {r['pref']}" if "pref" in r else "")


def _neigh_text(r: dict) -> str:
    text = _words(r, (("dst", ""), ("dev", "dev"), ("lladdr", "lladdr")))
    text += "".join(f" {k}" for k in ("router", "proxy", "extern_learn", "offload") if k in r)
    return text + "".join(" " + s for s in r.get("state", []))


def _rule_text(r: dict) -> str:
    src = r["src"] + (f"/{r['srclen']}" if "srclen" in r else "")
    text = f"{r['priority']}:\t" + ("not " if "not" in r else "") + f"from {src}"
    if "dst" in r:
        text += f" to {r['dst']}" + (f"/{r['dstlen']}" if "dstlen" in r else "")
    if "fwmark" in r:
        text += f" fwmark {r['fwmark']}" + (f"/{r['fwmask']}" if "fwmask" in r else "")
    text += "".join(f" {word} {r[key]}" for key, word in (("iif", "iif"), ("oif", "oif"),
                                                          ("table", "lookup"), ("goto", "goto"),
                                                          ("action", ""), ("protocol", "proto"))
                    if key in r)
    return text.replace("  ", " ")


TEXT = {"link": _link_text, "addr": _addr_text, "route": _route_text, "neigh": _neigh_text,
        "rule": _rule_text}
