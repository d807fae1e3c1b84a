"""ip's command grammar for the rtnl objects — `link|addr|route|neigh|rule VERB ARGS...` —
shared by `linx net` and `linx net apply` (one command per line, like `ip -batch`).

parse() turns words into a Command (a UsageError names the word at fault, before any
syscall); run() carries one out on a socket; apply() runs a batch, sending consecutive
`add`s of addresses, routes, neighbours and rules pipelined (many per sendmsg) and every
other command on its own, in order.
"""
import errno
import gc
from dataclasses import dataclass, field

from ...errors import UsageError
from ...ip import AF_INET, IP, MAC, Subnet
from .. import transport
from ..errors import NetlinkError
from . import address, link, names, neighbour, route, rule

OBJECTS = {"link": "link", "l": "link",
           "address": "addr", "addr": "addr", "a": "addr",
           "route": "route", "r": "route", "ro": "route",
           "neighbour": "neigh", "neighbor": "neigh", "neigh": "neigh", "n": "neigh",
           "rule": "rule", "ru": "rule"}
VERBS = {"show": "show", "list": "show", "ls": "show", "lst": "show", "sh": "show",
         "add": "add", "a": "add", "delete": "del", "del": "del", "d": "del",
         "set": "set", "replace": "replace", "change": "change", "append": "append",
         "get": "get"}
ALLOWED = {"link": ("show", "add", "del", "set"),
           "addr": ("show", "add", "del"),
           "route": ("show", "get", "add", "del", "replace", "change", "append"),
           "neigh": ("show", "add", "del", "replace", "change"),
           "rule": ("show", "add", "del")}
PIPELINED = {("addr", "add"), ("route", "add"), ("neigh", "add"), ("rule", "add")}


@dataclass(slots=True)
class Command:
    obj: str
    verb: str
    args: dict = field(default_factory=dict)
    where: str = ""          # "FILE:LINE" in a batch
    request: tuple | None = None   # a change's (type, flags, body), built by parse() with
    #                                no interface index yet: request() adds it

    def __str__(self) -> str:
        return f"{self.obj} {self.verb}"


class _Words:
    """The words after the verb, consumed left to right (`for word in w`, `w.value(key)`
    for a keyword's value); errors name `where`."""

    __slots__ = ("it", "where")

    def __init__(self, words, where):
        self.it, self.where = iter(words), where

    def __iter__(self):
        return self.it

    def value(self, key: str) -> str:
        word = next(self.it, None)
        if word is None:
            raise UsageError(self._at(key), f"{key!r} needs a value")
        return word

    def _at(self, key: str) -> str:
        return f"{self.where}: {key}" if self.where else key


def parse(words, where: str = "", family: int = 0) -> Command:
    """`["route", "add", "10.0.0.0/24", "via", "10.1.0.1"]` -> Command. `family` is -4/-6."""
    if not words:
        raise UsageError(where or "command", "expected link, addr, route, neigh or rule")
    obj = OBJECTS.get(words[0])
    if obj is None:
        raise UsageError(where or "object", f"{words[0]!r} is not link, addr, route, neigh or rule")
    verb = VERBS.get(words[1], words[1]) if len(words) > 1 else "show"
    if verb not in ALLOWED[obj]:
        raise UsageError(where or "verb", f"{obj} {words[1]!r}: expected one of {', '.join(ALLOWED[obj])}")
    cmd = Command(obj, verb, where=where)
    w = _Words(words[2:], where)
    _PARSERS[obj](cmd, w, family)
    if family:
        cmd.args.setdefault("family", family)
    return cmd


def _name(w: _Words, key: str) -> str:
    try:
        return link.check_name(w.value(key))
    except UsageError as e:
        raise UsageError(w._at(key), e.expected) from None


def _parse_link(cmd: Command, w: _Words, family: int) -> None:
    """show [dev] NAME | add [link PARENT] [name] NAME type KIND [KIND ARGS] [mtu N]
    [address MAC] | del [dev] NAME | set [dev] NAME up|down|mtu N|address MAC|name NEW|
    master DEV|nomaster|netns TARGET ..."""
    a = cmd.args
    target = "name" if cmd.verb == "add" else "dev"
    kind = None
    for word in w:
        if kind == "veth" and word == "peer":
            peer = w.value("peer name")
            a["peer"] = link.check_name(w.value("peer name") if peer == "name" else peer,
                                        w._at("peer name"))
        elif kind in ("macvlan", "ipvlan") and word == "mode":
            a["mode"] = w.value("mode")
        elif kind == "vlan" and word == "id":
            a["vlan_id"] = w.value("id")
        elif word == "type" and cmd.verb == "add":
            kind = a["kind"] = w.value("type")
        elif word == "name" and cmd.verb == "set":
            a["new_name"] = _name(w, "name")
        elif word in ("name", "dev") and target not in a:
            a[target] = _name(w, word)
        elif word == "link" and cmd.verb == "add":
            a["parent"] = _name(w, "link")
        elif word in ("up", "down") and cmd.verb == "set":
            a["up"] = word == "up"
        elif word == "mtu" and cmd.verb in ("add", "set"):
            a["mtu"] = link.check_mtu(w.value("mtu"), w._at("mtu"))
        elif word in ("address", "addr") and cmd.verb in ("add", "set"):
            a["address"] = MAC(w.value("address"), w._at("address"))
        elif word == "master" and cmd.verb == "set":
            a["master"] = _name(w, "master")
        elif word == "nomaster" and cmd.verb == "set":
            a["master"] = ""
        elif word == "netns" and cmd.verb == "set":
            a["netns"] = w.value("netns")
        elif target not in a:
            a[target] = _checked(word, w, target)
        else:
            raise UsageError(w._at(word), f"unexpected in `link {cmd.verb}`")
    if cmd.verb == "add":
        if "name" not in a:
            raise UsageError(w._at("name"), "link add needs a name")
        if "kind" not in a:
            raise UsageError(w._at("type"), "link add needs a type (type veth|macvlan|ipvlan|vlan|bridge|dummy|ifb)")
        try:
            link.add_request(a["name"], a["kind"], parent=0 if "parent" in a else None,
                             **{k: a[k] for k in ("peer", "mode", "vlan_id", "mtu", "address") if k in a})
        except UsageError as e:
            raise _placed(w, e) from None
    elif cmd.verb in ("del", "set") and "dev" not in a:
        raise UsageError(w._at("dev"), f"link {cmd.verb} needs an interface")
    elif cmd.verb == "set" and len(a) == 1:
        raise UsageError(w._at("set"), "link set needs something to change "
                                        "(up, down, mtu, address, name, master, nomaster, netns)")


def _placed(w: _Words, e: UsageError) -> UsageError:
    """A request builder's UsageError with this command's place. Requests are built at
    parse time, so every argument is checked before any syscall and a batch builds each
    request once."""
    if w.where and not e.where.startswith(w.where):
        return UsageError(w._at(e.where), e.expected)
    return e


def _checked(word: str, w: _Words, key: str) -> str:
    return link.check_name(word, w._at(key))


def _prefix(text: str, w: _Words, key: str, family: int):
    if text in ("default", "all", "any"):
        return "default"
    try:
        net = Subnet(text)
    except UsageError as e:
        raise UsageError(w._at(key), e.expected) from None
    if family and net.family != family:
        raise UsageError(w._at(key), f"{text!r} is not an {'IPv4' if family == AF_INET else 'IPv6'} prefix")
    return net


def _parse_addr(cmd: Command, w: _Words, family: int) -> None:
    a = cmd.args
    for word in w:
        if word == "dev":
            a["dev"] = _name(w, "dev")
        elif cmd.verb == "show":
            a["dev"] = _checked(word, w, "dev")
        elif word in ("broadcast", "brd") and cmd.verb == "add":
            a["broadcast"] = w.value("broadcast")
        elif word == "label" and cmd.verb == "add":
            a["label"] = w.value("label")
        elif word == "scope" and cmd.verb == "add":
            a["scope"] = names.scope(w.value("scope"), w._at("scope"))
        elif word == "local" or "subnet" not in a:
            text = w.value("local") if word == "local" else word
            if text == "default":
                raise UsageError(w._at("address"), "'default' is not an interface address")
            a["subnet"] = _prefix(text, w, "address", family)
        else:
            raise UsageError(w._at(word), f"unexpected in `addr {cmd.verb}`")
    if cmd.verb != "show":
        if "subnet" not in a:
            raise UsageError(w._at("address"), f"addr {cmd.verb} needs an address (ADDR/PLEN)")
        if "dev" not in a:
            raise UsageError(w._at("dev"), f"addr {cmd.verb} needs dev NAME")
        try:
            cmd.request = address.request(cmd.verb, 0, a["subnet"],
                                          **{k: a[k] for k in ("broadcast", "label", "scope") if k in a})
        except UsageError as e:
            raise _placed(w, e) from None


def _parse_route(cmd: Command, w: _Words, family: int) -> None:
    a = cmd.args
    for word in w:
        if "dst" not in a and (word[:1].isdigit() or ":" in word or word == "default"):
            a["dst"] = _prefix(word, w, "to", family)     # first: a batch line starts with it
        elif word == "via":
            text = w.value("via")
            if text in ("inet", "inet6"):
                text = w.value("via")
            try:
                a["via"] = IP(text)
            except UsageError as e:
                raise UsageError(w._at("via"), e.expected) from None
        elif word in ("dev", "oif"):
            a["dev"] = _name(w, word)
        elif word in ("table", "lookup"):
            text = w.value(word)
            a["table"] = "all" if text == "all" and cmd.verb == "show" else names.table(text, w._at(word))
        elif word in ("proto", "protocol"):
            a["protocol"] = names.protocol(w.value(word), w._at(word))
        elif word in ("metric", "priority", "preference"):
            value = w.value(word)
            if not value.isdigit() or int(value) > 0xFFFFFFFF:
                raise UsageError(w._at(word), f"{value!r} is not a metric (0..4294967295)")
            a["metric"] = int(value)
        elif word == "scope" and cmd.verb != "get":
            a["scope"] = names.scope(w.value("scope"), w._at("scope"))
        elif word == "src" and cmd.verb not in ("get", "show"):
            a["prefsrc"] = IP(w.value("src"), w._at("src"))
        elif word == "from" and cmd.verb == "get":
            a["src"] = IP(w.value("from"), w._at("from"))
        elif word == "mark" and cmd.verb == "get":
            value = w.value("mark")
            try:
                a["mark"] = int(value, 0)
            except ValueError:
                raise UsageError(w._at("mark"), f"{value!r} is not a number") from None
        elif word == "onlink" and cmd.verb not in ("get", "show"):
            a["onlink"] = True
        elif word in names.ROUTE_TYPES.values() and word not in ("none",) and "dst" not in a \
                and cmd.verb not in ("get", "show"):
            a["type"] = word
        elif word == "to":
            a["dst"] = _prefix(w.value("to"), w, "to", family)
        elif "dst" not in a:
            a["dst"] = _prefix(word, w, "to", family)
        else:
            raise UsageError(w._at(word), f"unexpected in `route {cmd.verb}`")
    if cmd.verb == "get":
        if "dst" not in a or a["dst"] == "default":
            raise UsageError(w._at("to"), "route get needs a destination address")
        a["dst"] = a["dst"].address
    elif cmd.verb != "show":
        if "dst" not in a:
            raise UsageError(w._at("to"), f"route {cmd.verb} needs a destination (PREFIX or default)")
        options = dict(a)           # what a change takes: via, table, protocol, metric, ...
        del options["dst"]
        options.pop("dev", None)    # sent as RTA_OIF once resolved (request())
        try:
            cmd.request = route.request(cmd.verb, a["dst"], family=family or None, **options)
        except UsageError as e:
            raise _placed(w, e) from None


def _parse_neigh(cmd: Command, w: _Words, family: int) -> None:
    a = cmd.args
    for word in w:
        if word == "dev":
            a["dev"] = _name(w, "dev")
        elif cmd.verb == "show":
            a["dev"] = _checked(word, w, "dev")
        elif word == "lladdr":
            a["lladdr"] = MAC(w.value("lladdr"), w._at("lladdr"))
        elif word == "nud":
            a["state"] = w.value("nud")
        elif word == "router":
            a["router"] = True
        elif word in ("to",) or "dst" not in a:
            text = w.value("to") if word == "to" else word
            a["dst"] = IP(text, w._at("to"))
        else:
            raise UsageError(w._at(word), f"unexpected in `neigh {cmd.verb}`")
    if cmd.verb != "show":
        for key in ("dst", "dev"):
            if key not in a:
                raise UsageError(w._at(key), f"neigh {cmd.verb} needs {'an address' if key == 'dst' else 'dev NAME'}")
        try:
            cmd.request = neighbour.request(cmd.verb, 0, a["dst"], a.get("lladdr"),
                                            **{k: a[k] for k in ("state", "router") if k in a})
        except UsageError as e:
            raise _placed(w, e) from None


def _parse_rule(cmd: Command, w: _Words, family: int) -> None:
    a = cmd.args
    for word in w:
        if word == "from":
            a["src"] = w.value("from")
        elif word == "to":
            a["dst"] = w.value("to")
        elif word == "fwmark":
            mark, _, mask = w.value("fwmark").partition("/")
            a["fwmark"] = mark
            if mask:
                a["fwmask"] = mask
        elif word in ("table", "lookup"):
            a["table"] = names.table(w.value(word), w._at(word))
        elif word in ("priority", "pref", "preference", "order"):
            a["priority"] = w.value(word)
        elif word in ("iif", "dev"):
            a["iif"] = _name(w, word)
        elif word == "oif":
            a["oif"] = _name(w, word)
        elif word in ("proto", "protocol"):
            a["protocol"] = names.protocol(w.value(word), w._at(word))
        elif word == "not":
            a["invert"] = True
        elif cmd.verb == "show":
            raise UsageError(w._at(word), "rule show takes no selectors here")
        else:
            raise UsageError(w._at(word), f"unexpected in `rule {cmd.verb}`")
    if cmd.verb != "show":
        if not a:
            raise UsageError(w._at("rule"), f"rule {cmd.verb} needs selectors")
        try:
            cmd.request = rule.request(cmd.verb, family=family or None, **a)
        except UsageError as e:
            raise _placed(w, e) from None


_PARSERS = {"link": _parse_link, "addr": _parse_addr, "route": _parse_route,
            "neigh": _parse_neigh, "rule": _parse_rule}


# --- carrying commands out ----------------------------------------------------------------

class Links:
    """name -> ifindex for the interfaces commands name, looked up as needed and forgotten
    when a link command may have changed them."""

    def __init__(self, sock):
        self.sock, self.names = sock, None

    def index(self, name: str, what: str = "interface") -> int:
        if self.names is None or name not in self.names:
            self.names = {l.name: l.index for l in link.list(self.sock)}
        if name not in self.names:
            raise NetlinkError("link get", name, errno.ENODEV, f"no such {what} \"{name}\"")
        return self.names[name]

    def forget(self) -> None:
        self.names = None


def request(cmd: Command, links: Links) -> tuple[int, int, bytes]:
    """The rtnetlink request of an addr/route/neigh/rule change: parse()'s request with the
    interface index filled in."""
    mtype, flags, body = cmd.request
    dev = cmd.args.get("dev")
    if dev is None:
        return cmd.request
    if cmd.obj == "route":
        return mtype, flags, route.with_oif(body, links.index(dev))
    module = address if cmd.obj == "addr" else neighbour
    return mtype, flags, module.with_index(body, links.index(dev))


def _sharpen(cmd: Command, e: NetlinkError) -> NetlinkError:
    module = {"addr": address, "route": route, "neigh": neighbour}.get(cmd.obj)
    return module.sharpen(e) if module else e


def _describe(cmd: Command) -> str:
    a = cmd.args
    for key in ("dst", "subnet", "name", "dev"):
        if key in a:
            return str(a[key])
    return ""


def run(sock, cmd: Command, links: Links | None = None):
    """Carry out one command. show/get return objects (routes as an iterator, read it to
    the end); changes return None."""
    links = links or Links(sock)
    a = cmd.args
    if cmd.verb == "show":
        family = a.get("family", 0)
        if cmd.obj == "link":
            return [link.get(sock, a["dev"])] if "dev" in a else link.list(sock)
        if cmd.obj == "addr":
            return address.list(sock, links.index(a["dev"]) if "dev" in a else 0, family)
        if cmd.obj == "route":
            table = a.get("table", 254)
            if table == "all":
                table = None
            elif not family:
                family = AF_INET    # ip route show: IPv4 unless -6 or table all
            return route.iterate(sock, family, table)
        if cmd.obj == "neigh":
            return neighbour.list(sock, links.index(a["dev"]) if "dev" in a else 0, family)
        return rule.list(sock, family or AF_INET)
    if cmd.obj == "route" and cmd.verb == "get":
        return [route.get(sock, a["dst"], src=a.get("src"), mark=a.get("mark"),
                          oif=links.index(a["dev"]) if "dev" in a else None)]
    if cmd.obj == "link":
        links.forget()
        if cmd.verb == "add":
            link.add(sock, a["name"], a["kind"], parent=a.get("parent"),
                     **{k: a[k] for k in ("peer", "mode", "vlan_id", "mtu", "address") if k in a})
        elif cmd.verb == "del":
            link.delete(sock, a["dev"])
        else:
            link.set(sock, a["dev"], **{k: a[k] for k in ("up", "mtu", "address", "master", "netns")
                                        if k in a}, **({"name": a["new_name"]} if "new_name" in a else {}))
        return None
    try:
        transport.talk(sock, *request(cmd, links), op=str(cmd), obj=cmd.where or _describe(cmd))
    except NetlinkError as e:
        raise _sharpen(cmd, e) from None
    return None


def apply(sock, commands) -> int:
    """Run a parsed batch in order, stopping at the first failure, which is raised with the
    failing command's `where`. Runs of pipelinable adds go many to a sendmsg; when one of
    them fails, the adds after it that the kernel had already applied are deleted again
    (an add is exclusive, so its delete removes exactly what it made), so the batch stops
    where `ip -batch` would. Returns the number of commands applied."""
    links = Links(sock)
    done = 0
    window: list = []

    def flush():
        nonlocal done
        if not window:
            return
        pending = list(window)
        window.clear()
        results = transport.talk_many(sock, [req for _, req in pending])
        failed = next((i for i, r in enumerate(results) if r is not None), None)
        if failed is None:
            done += len(pending)
            return
        undo = [(mtype + 1, 0, body) for (cmd, (mtype, _, body)), r in
                zip(pending[failed + 1:], results[failed + 1:]) if r is None]
        transport.talk_many(sock, undo, stop=False)
        cmd, err = pending[failed][0], results[failed]
        done += failed
        raise _sharpen(cmd, NetlinkError(str(cmd), cmd.where, err.errno, err.detail,
                                         offset=err.offset)) from None

    for cmd in commands:
        if (cmd.obj, cmd.verb) in PIPELINED:
            try:
                window.append((cmd, request(cmd, links)))
            except NetlinkError as e:
                flush()
                raise NetlinkError(str(cmd), cmd.where, e.errno, e.detail) from None
            if len(window) >= 4096:
                flush()
            continue
        flush()
        try:
            run(sock, cmd, links)
        except NetlinkError as e:
            raise NetlinkError(str(cmd), cmd.where, e.errno, e.detail, offset=e.offset) from None
        done += 1
    flush()
    return done


def parse_batch(text: str, path: str, family: int = 0) -> "list[Command]":
    """Every line of a batch file parsed before anything runs: a bad line is a UsageError
    naming FILE:LINE, with nothing applied. Blank lines and # comments are skipped; a line
    may start with `ip` as in an `ip -batch` file.

    The cyclic garbage collector is paused meanwhile: a batch builds several objects a line,
    none in a cycle, and its passes over them cost a fifth of the parse of 10,000 lines."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            words = (line[:line.index("#")] if "#" in line else line).split()
            if not words:
                continue
            if words[0] == "ip":
                words = words[1:]
            cmd = parse(words, f"{path}:{number}", family)
            if cmd.verb in ("show", "get"):
                raise UsageError(f"{path}:{number}", f"`{cmd}` reads; a batch only makes changes")
            out.append(cmd)
        return out
    finally:
        if collecting:
            gc.enable()
