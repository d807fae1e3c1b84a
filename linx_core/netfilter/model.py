"""The ruleset model: tables -> chains -> rules, sets and maps, named objects, flowtables,
as plain values. A rule is a list of statements over expressions, at the level nft's own
syntax works (`tcp dport { 22, 80 } accept`), not kernel registers: the compiler lowers it,
the decoder raises kernel expressions back to it, and the formatter prints it.

Every node may carry a `loc` (where it was written); locations never take part in equality,
so parse(format(x)) == x and a pulled ruleset equals the one that was pushed.

Nodes are dataclasses (slots, eq, repr), built at the end of the module by _build().
"""
import re
from dataclasses import MISSING, dataclass, field, fields
from operator import attrgetter

from . import types as T

_NODES = []             # (class, eq) in the order written, for _build()
_FACTORY = object()     # "no argument": the default comes from the field's default_factory


def _node(cls=None, *, eq=True):
    """@dataclass(slots=True, eq=eq), with __init__, __repr__ and __eq__ compiled for all
    nodes at once by _build(): dataclasses compiles three small functions per class (about
    140 here), which was most of the import time of the parser and the decoder."""
    def register(c):
        _NODES.append((c, eq))
        return c
    return register(cls) if cls is not None else register


def _loc():
    return field(default=None, compare=False, repr=False)


# ---------------------------------------------------------------- expressions

@_node
class Payload:
    """A protocol header field: `tcp dport`, `arp saddr ip`."""
    proto: str
    field: str
    loc: object = _loc()


@_node
class RawPayload:
    """`@nh,96,32`: base (0 ll, 1 nh, 2 th), bit offset, bit length."""
    base: int
    offset: int
    bits: int
    loc: object = _loc()


@_node
class Meta:
    key: str
    loc: object = _loc()


@_node
class Ct:
    key: str
    dir: str | None = None        # "original" / "reply"
    family: str | None = None     # "ip" / "ip6" for `ct original ip saddr`
    loc: object = _loc()


@_node
class Fib:
    flags: tuple                  # ("saddr", "iif"), in nft's print order
    result: str                   # oif / oifname / type
    loc: object = _loc()


@_node
class Numgen:
    mode: str                     # inc / random
    mod: int
    offset: int = 0
    loc: object = _loc()


@_node
class Hash:
    kind: str                     # jhash / symhash
    expr: object
    mod: int
    seed: int | None = None
    offset: int = 0
    loc: object = _loc()


@_node
class Concat:
    items: tuple
    loc: object = _loc()


@_node
class Value:
    """A typed constant. v is an int, or a str for strings and interface names."""
    type: T.Type
    v: object
    loc: object = _loc()

    def __eq__(self, other):
        return (isinstance(other, Value) and self.v == other.v
                and self.type.name == other.type.name)

    def __hash__(self):
        return hash((self.type.name, self.v))


@_node
class Flags:
    """`established,related`: a bitmask value written as a list of flags."""
    type: T.Type
    v: int
    loc: object = _loc()

    def __eq__(self, other):
        return isinstance(other, Flags) and self.v == other.v and self.type.name == other.type.name


@_node
class Prefix:
    value: Value
    plen: int
    loc: object = _loc()


@_node
class Range:
    lo: object
    hi: object
    loc: object = _loc()


@_node
class Catchall:
    """`*` as a set element: matches whatever no other element does."""
    loc: object = _loc()


@_node
class Elem:
    """A set element with options: `1.2.3.4 timeout 10s comment "x"`."""
    key: object
    timeout: int | None = None
    expires: int | None = None
    comment: str | None = None
    stmts: tuple = ()
    loc: object = _loc()


@_node
class Mapping:
    key: object
    data: object
    loc: object = _loc()


def same_elements(a, b) -> bool:
    """Element lists compare as multisets: nft keeps no order in a set (it lists them
    sorted), so neither does the model."""
    return len(a) == len(b) and sorted(map(repr, a)) == sorted(map(repr, b))


@_node(eq=False)
class SetLit:
    """An anonymous set or map written inline: `{ 22, 80 }`, `{ 22 : accept }`."""
    elems: tuple
    loc: object = _loc()

    def __eq__(self, other):
        return isinstance(other, SetLit) and same_elements(self.elems, other.elems)


@_node
class SetRef:
    name: str
    loc: object = _loc()


@_node
class MapExpr:
    """`ip saddr map { ... }` / `tcp dport map @m`: a lookup that yields a value."""
    key: object
    mapping: object               # SetLit or SetRef
    loc: object = _loc()


@_node
class Binop:
    op: str                       # & | ^ << >>
    left: object
    right: object
    loc: object = _loc()


@_node
class Verdict:
    kind: str                     # accept drop continue return jump goto queue
    chain: str | None = None
    loc: object = _loc()


# ---------------------------------------------------------------- statements

@_node
class Match:
    """`left op right`; op "" is nft's implicit match (printed without an operator)."""
    left: object
    op: str
    right: object
    loc: object = _loc()


@_node
class VerdictStmt:
    verdict: Verdict
    loc: object = _loc()


@_node
class Vmap:
    """`tcp dport vmap { 22 : accept }`."""
    key: object
    mapping: object
    loc: object = _loc()


@_node
class Counter:
    packets: int | None = None
    bytes: int | None = None
    loc: object = _loc()


@_node
class Log:
    prefix: str | None = None
    level: str | None = None
    group: int | None = None
    snaplen: int | None = None
    qthreshold: int | None = None
    flags: tuple = ()
    loc: object = _loc()


@_node
class Limit:
    rate: int
    unit: str                     # second minute hour day week
    burst: int | None = None
    bytes: bool = False           # rate in bytes (rate_unit below), else packets
    over: bool = False
    loc: object = _loc()


@_node
class Quota:
    bytes: int
    used: int = 0
    over: bool = False
    loc: object = _loc()


@_node
class Reject:
    kind: str | None = None       # None, icmp, icmpv6, icmpx, tcp reset
    code: object = None           # Value
    loc: object = _loc()


@_node
class Nat:
    kind: str                     # snat dnat masquerade redirect
    family: str | None = None     # ip / ip6 when written `dnat ip to ...`
    addr: object = None
    port: object = None
    flags: tuple = ()
    concat: bool = False          # `dnat to ip daddr map { ... : addr . port }`
    loc: object = _loc()


@_node
class MetaSet:
    key: str
    expr: object
    loc: object = _loc()


@_node
class CtSet:
    key: str
    expr: object
    dir: str | None = None
    loc: object = _loc()


@_node
class Notrack:
    loc: object = _loc()


@_node
class SetStmt:
    """`add @s { ip saddr timeout 10s limit rate 10/second }` (op add/update/delete)."""
    op: str
    set: str
    key: object
    timeout: int | None = None
    stmts: tuple = ()
    data: object = None           # for maps: `update @m { ip saddr : 1 }`
    loc: object = _loc()


@_node
class Meter:
    """The old `meter NAME { key stmt }` syntax, a dynamic set under another name."""
    name: str
    key: object
    stmt: object
    timeout: int | None = None
    size: int | None = None
    loc: object = _loc()


@_node
class Queue:
    num: object = None            # Value or Range
    flags: tuple = ()
    loc: object = _loc()


@_node
class FlowOffload:
    flowtable: str
    loc: object = _loc()


@_node
class Synproxy:
    mss: int | None = None
    wscale: int | None = None
    flags: tuple = ()
    loc: object = _loc()


@_node
class Tproxy:
    family: str | None = None
    addr: object = None
    port: object = None
    loc: object = _loc()


@_node
class Objref:
    """`counter name "x"`, `quota name x`, `ct helper set "ftp"`, `limit name x`."""
    kind: str                     # counter quota limit ct helper ct timeout ct expectation synproxy
    name: object                  # str, or MapExpr for `counter name ip saddr map {...}`
    loc: object = _loc()


@_node
class Dup:
    addr: object = None
    dev: object = None
    loc: object = _loc()


@_node
class Fwd:
    dev: object
    family: str | None = None
    addr: object = None
    loc: object = _loc()


# ---------------------------------------------------------------- containers

@_node
class Rule:
    stmts: list
    comment: str | None = None
    tag: str | None = None
    handle: int | None = field(default=None, compare=False)
    loc: object = _loc()


def unwrap_element(e) -> tuple:
    """(key, mapped data or None, the Elem carrying its options or None) of a set element:
    a Mapping wraps an Elem or a key, an Elem wraps a key."""
    data = elem = None
    if isinstance(e, Mapping):
        data, e = e.data, e.key
    if isinstance(e, Elem):
        elem, e = e, e.key
    return e, data, elem


_TAG = re.compile(r"tag:([A-Za-z_][A-Za-z0-9_.-]*)(?: (.*))?\Z", re.S)


def split_tag(comment: str | None) -> tuple:
    """(tag, rest of the comment) of a rule comment: a rule's stable identity is written
    as a comment starting `tag:NAME` (README, "Rule tags"); (None, comment) without one."""
    if comment is not None:
        m = _TAG.match(comment)
        if m:
            return m.group(1), m.group(2)
    return None, comment


@_node
class Chain:
    name: str
    type: str | None = None       # base chains: filter nat route
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None     # accept / drop
    devices: tuple = ()
    comment: str | None = None
    offload: bool = False
    rules: list = field(default_factory=list)
    loc: object = _loc()

    @property
    def base(self) -> bool:
        return self.hook is not None


@_node(eq=False)
class Set:
    """A named set (kind "set"), map ("map") or dynamic meter ("meter")."""
    name: str
    kind: str = "set"
    key: tuple = ()               # Types; more than one is a concatenation
    data: object = None           # a Type or "verdict" for maps; tuple for concatenated data
    flags: tuple = ()             # constant interval timeout dynamic
    timeout: int | None = None
    gc_interval: int | None = None
    size: int | None = None
    policy: str | None = None
    auto_merge: bool = False
    counter: bool = False
    comment: str | None = None
    elements: list = field(default_factory=list)
    objtype: str | None = None    # maps to named objects: counter quota limit ...
    key_typeof: tuple | None = None
    loc: object = _loc()

    def __eq__(self, other):
        if not isinstance(other, Set):
            return False
        fields = ("name", "kind", "key", "data", "flags", "timeout", "gc_interval", "size",
                  "policy", "auto_merge", "counter", "comment", "objtype")
        return all(getattr(self, f) == getattr(other, f) for f in fields) and \
            same_elements(self.elements, other.elements)


@_node
class Obj:
    """A named stateful object: counter, quota, limit, ct helper, ct timeout, ct expectation,
    synproxy. `spec` holds the kind's fields."""
    kind: str
    name: str
    spec: dict = field(default_factory=dict)
    comment: str | None = None
    loc: object = _loc()


@_node
class Flowtable:
    name: str
    hook: str = "ingress"
    priority: int = 0
    devices: tuple = ()
    offload: bool = False
    counter: bool = False
    loc: object = _loc()


@_node
class Table:
    family: str
    name: str
    flags: tuple = ()             # dormant owner persist
    comment: str | None = None
    chains: dict = field(default_factory=dict)
    sets: dict = field(default_factory=dict)
    objects: dict = field(default_factory=dict)        # (kind, name) -> Obj
    flowtables: dict = field(default_factory=dict)
    progname: str | None = field(default=None, compare=False)   # owner's name, when pulled
    loc: object = _loc()


@_node
class Ruleset:
    """What a file says: `flush ruleset` first or not, tables to delete, and the tables it
    builds, in the order they first appear."""
    flush: bool = False
    deleted: list = field(default_factory=list)       # (family, name) to destroy
    tables: dict = field(default_factory=dict)        # (family, name) -> Table


def _build():
    """What dataclasses would write: __init__ (fields in order, defaults, default
    factories) as one source compiled once for all nodes; __repr__ (repr fields) and
    __eq__ (same class, compare fields; kept when the class writes its own) as closures
    over operator.attrgetter; __hash__ = None as dataclasses sets it for a mutable class
    with eq. Each class is then the dataclass(slots=True) of itself, so
    dataclasses.fields() and is_dataclass() see it as before."""
    env = {"_FACTORY": _FACTORY}
    src = []
    made = []
    for cls, eq in _NODES:
        name = cls.__name__
        own = dict(cls.__dict__)
        if not cls.__doc__:       # what dataclasses would write, without inspect.signature
            cls.__doc__ = f"{name}({', '.join(cls.__annotations__)})"
        new = dataclass(init=False, repr=False, eq=False, slots=True)(cls)
        fs = fields(new)
        params, body = [], []
        for f in fs:
            if f.default is not MISSING:
                env[f"_d_{name}_{f.name}"] = f.default
                params.append(f"{f.name}=_d_{name}_{f.name}")
                body.append(f"    self.{f.name} = {f.name}")
            elif f.default_factory is not MISSING:
                env[f"_f_{name}_{f.name}"] = f.default_factory
                params.append(f"{f.name}=_FACTORY")
                body.append(f"    self.{f.name} = _f_{name}_{f.name}() if {f.name} is _FACTORY "
                            f"else {f.name}")
            else:
                params.append(f.name)
                body.append(f"    self.{f.name} = {f.name}")
        src.append(f"def _init_{name}(self, {', '.join(params)}):\n" + "\n".join(body))
        new.__repr__ = _repr([f.name for f in fs if f.repr])
        if eq and "__eq__" not in own:
            new.__eq__ = _eq([f.name for f in fs if f.compare])
        if eq and "__hash__" not in own:
            new.__hash__ = None
        made.append(new)
    exec("\n".join(src), env)
    for new in made:
        init = env["_init_" + new.__name__]
        init.__name__, init.__qualname__ = "__init__", f"{new.__qualname__}.__init__"
        new.__init__ = init
        globals()[new.__name__] = new


def _repr(names):
    def __repr__(self):
        return self.__class__.__qualname__ + "(" + ", ".join(
            [f"{n}={getattr(self, n)!r}" for n in names]) + ")"
    return __repr__


def _eq(names):
    key = attrgetter(*names) if names else (lambda node: ())

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented
    return __eq__


_build()
