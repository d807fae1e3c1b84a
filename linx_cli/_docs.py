"""Generate man/ and completions/ from the command definitions themselves: every command
registered in main.COMMANDS, through typer.main.get_command, with its options, arguments and
help; linx-spec(5) from linx_core.spec.json_schema(). The files are checked in; a test fails
when they are stale. Regenerate with `make docs` (`python -m linx_cli._docs`).

Completion scripts are static tables plus a small walker per shell, so a TAB costs no Python
start; only dynamic values run a command: session names (`linx ps -a -q`), interface names
(/sys/class/net of the shell's own netns), sysctl keys (/proc/sys).
What a value completes to is inferred from its metavar or type (KIND_WORDS below); commands
whose argument is `VERB [ARGS]...` in ip's grammar get their verbs and keywords from the
synopsis in their help (`show [DEV] | del DEV | set DEV [mtu N] ...`).
"""
import inspect
import os
import re
import signal
import sys

import click

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a metavar word means for completion. First match wins, in this order.
KIND_WORDS = (
    ("command", {"COMMAND"}),
    ("interface", {"DEV", "IFACE", "IFNAME", "INTERFACE", "PARENT"}),
    ("target", {"TARGET", "SESSION"}),
    ("signal", {"SIG", "SIGNAL"}),
    ("file", {"FILE", "PATH", "DIR"}),
)
KIND_OPTIONS = {"--cwd": "dir", "--dev": "interface", "--file": "file"}


# -- the command tree ------------------------------------------------------------------------

class Node:
    """One command or group: its click object, context (for metavars and usage) and place."""

    def __init__(self, cmd: click.Command, ctx: click.Context, path: tuple[str, ...], parent=None):
        self.cmd, self.ctx, self.path, self.parent = cmd, ctx, path, parent
        self.subs: list[Node] = []          # visible subcommands, in registration order
        self.aliases: dict[str, str] = {}   # hidden name -> the visible command it repeats
        if isinstance(cmd, click.Group):
            names = cmd.list_commands(ctx)
            for name in names:
                sub = cmd.get_command(ctx, name)
                if sub.hidden:
                    twin = next((n for n in names if not cmd.get_command(ctx, n).hidden
                                 and cmd.get_command(ctx, n).help == sub.help), None)
                    if twin:
                        self.aliases[name] = twin
                    continue
                sub_ctx = click.Context(sub, parent=ctx, info_name=name)
                self.subs.append(Node(sub, sub_ctx, path + (name,), self))

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def params(self) -> list[click.Parameter]:
        out = [p for p in self.cmd.params if not getattr(p, "hidden", False)]
        help_opt = self.cmd.get_help_option(self.ctx)
        return out + ([help_opt] if help_opt else [])

    def usage(self) -> str:
        return " ".join([self.name, *self.cmd.collect_usage_pieces(self.ctx)])

    def walk(self):
        yield self
        for sub in self.subs:
            yield from sub.walk()


def tree() -> Node:
    from .main import cli
    ctx = click.Context(cli, info_name="linx", **cli.context_settings)
    return Node(cli, ctx, ("linx",))


def paragraphs(text: str | None) -> list[str]:
    """Click's help text: cleandoc'd, cut at \\f, paragraphs split on blank lines."""
    text = inspect.cleandoc(text or "").split("\f")[0]
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def short_help(node: Node) -> str:
    return node.cmd.get_short_help_str(limit=10_000)


def metavar(param: click.Parameter, ctx: click.Context) -> str:
    if isinstance(param, click.Option) and (param.is_flag or param.count):
        return ""
    return param.make_metavar(ctx)


# -- roff ------------------------------------------------------------------------------------

def esc(text: str) -> str:
    """Escape for roff text: backslash, hyphens (as \\- so options copy and search right),
    and a control character at the start of a line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def bold(text: str) -> str:
    return f"\\fB{esc(text)}\\fR"


def ital(text: str) -> str:
    return f"\\fI{esc(text)}\\fR"


def prose(text: str | None) -> list[str]:
    out = []
    for i, para in enumerate(paragraphs(text)):
        if i:
            out.append(".PP")
        if para.startswith("\b"):          # click's "do not rewrap" marker
            out += [".nf", esc(para[1:].strip("\n")), ".fi"]
        elif all(line.startswith(" ") for line in para.splitlines()):   # a literal block
            out += [".RS", ".nf", esc(inspect.cleandoc(para)), ".fi", ".RE"]
        else:
            out.append(esc(" ".join(line.strip() for line in para.splitlines())))
    return out


def th(name: str, section: int, version: str) -> str:
    return f'.TH {name.upper()} {section} "" "linx {version}" "linx manual"'


def option_lines(node: Node, with_help: bool = True) -> list[str]:
    out = []
    help_opt = node.cmd.get_help_option(node.ctx)
    for p in node.params():
        if not isinstance(p, click.Option) or (p is help_opt and not with_help):
            continue
        names = ", ".join(bold(o) for o in sorted(p.opts, key=len) + p.secondary_opts)
        mv = metavar(p, node.ctx)
        out += [".TP", names + (" " + ital(mv) if mv else "")]
        text = p.help or ""
        extra = []
        if p.required:
            extra.append("required")
        if p.multiple:
            extra.append("repeatable")
        default = p.default
        if isinstance(default, (list, tuple)):
            default = " ".join(str(d) for d in default if d is not None)
        if p.show_default and default not in (None, False, "") and not p.is_flag:
            extra.append(f"default: {default}")
        if extra:
            text += f" ({'; '.join(extra)})" if text else f"({'; '.join(extra)})"
        out += prose(text) if text else [""]
    return out


def argument_lines(node: Node) -> list[str]:
    out = []
    for p in node.params():
        if isinstance(p, click.Argument) and getattr(p, "help", None):
            out += [".TP", ital(metavar(p, node.ctx)), *prose(p.help)]
    return out


def command_page(node: Node, version: str) -> str:
    title = "-".join(node.path)
    lines = [th(title, 1, version), ".SH NAME", f"{esc(title)} \\- {esc(short_help(node))}",
             ".SH SYNOPSIS", bold(node.name) + " " + esc(node.usage()[len(node.name) + 1:]),
             ".SH DESCRIPTION", *prose(node.cmd.help)]
    if node.aliases:
        lines += [".PP", "Aliases: " + ", ".join(f"{bold(a)} for {bold(t)}" for a, t in node.aliases.items()) + "."]
    if arguments := argument_lines(node):
        lines += [".SH ARGUMENTS", *arguments]
    lines += [".SH OPTIONS", *option_lines(node)]
    subs = [n for n in node.walk() if n is not node and not n.subs]
    if subs:
        lines.append(".SH COMMANDS")
        for sub in subs:
            lines += [f'.SS "{esc(sub.usage().replace(" [OPTIONS]", "", not option_lines(sub, False)))}"']
            if any(isinstance(p, click.Argument) and (p.metavar or "").startswith("VERB") for p in sub.params()):
                lines += grammar_lines(sub)
            else:
                lines += prose(sub.cmd.help)
            aliases = [a for a, twin in sub.parent.aliases.items() if twin == sub.path[-1]]
            if aliases:
                lines += [".PP", "Also: " + ", ".join(bold(" ".join(sub.path[:-1] + (a,))) for a in aliases) + "."]
            lines += argument_lines(sub)
            if opts := option_lines(sub, False):
                lines += [".PP", "Options:", ".RS", *opts, ".RE"]
    lines += [".SH EXIT STATUS",
              ("As described above" if "Exit status" in (node.cmd.help or "") else
               "0 success, 1 the operation failed, 2 bad usage or input") + "; see " + bold("linx") + "(1).",
              ".SH SEE ALSO", bold("linx") + "(1)"]
    return "\n".join(lines) + "\n"


def synopsis(text: str) -> tuple[str, list[str]]:
    """`Interfaces: show [DEV] | del DEV` -> ("Interfaces", ["show [DEV]", "del DEV"])."""
    text = " ".join(paragraphs(text)[0].split())
    label, _, rest = text.partition(": ") if ": " in text.split(" | ")[0] else ("", "", text)
    return label, rest.split(" | ")


def grammar_lines(node: Node) -> list[str]:
    """An ip-grammar command: its label, then one synopsis line per alternative."""
    label, alternatives = synopsis(node.cmd.help)
    lines = ([esc(label) + ":"] if label else []) + [".PP", ".RS", ".ad l", ".in +4n"]
    for alt in alternatives:           # hanging indent: a long synopsis wraps under itself
        lines += [".ti -4n", bold(node.name + " " + alt.split()[0]) + " " + esc(" ".join(alt.split()[1:])), ".br"]
    return lines + [".in", ".ad", ".RE", *prose("\n\n".join(paragraphs(node.cmd.help)[1:]))]


def has_json(node: Node) -> bool:
    return any(isinstance(p, click.Option) and "--json" in p.opts for p in node.params())


def main_page(root: Node, version: str) -> str:
    from linx_core.errors import KernelError, UsageError

    from . import _workload
    reads = [n.name.removeprefix("linx ") for n in root.walk() if has_json(n)]
    status = [
        ("0", "Success."),
        (str(KernelError.exit_status), "The operation failed: the kernel refused (the errno name is printed) "
                                       "or the object was not found."),
        (str(UsageError.exit_status), "Bad usage or bad input, found before any syscall: nothing was changed."),
        (str(_workload.FAILED_BEFORE_START), "run, exec: linx failed before the workload started "
                                             "(a checkpoint step or command failed; it never ran)."),
        (str(_workload.NOT_EXECUTABLE), "run, exec: the command was found but could not be executed."),
        (str(_workload.NOT_FOUND), "run, exec: the command was not found."),
        ("128+N", "run, exec, wait, attach: the workload was killed by signal N."),
    ]
    lines = [th("linx", 1, version), ".SH NAME", "linx \\- " + esc(paragraphs(root.cmd.help)[0]),
             ".SH SYNOPSIS", bold("linx") + " " + ital("COMMAND") + " [" + ital("ARGS") + "]...",
             ".SH DESCRIPTION", *prose(root.cmd.help),
             ".SH COMMANDS"]
    for sub in root.subs:
        lines += [".TP", f"{bold('linx-' + sub.path[-1])}(1)", esc(short_help(sub))]
    lines += [".SH OPTIONS", *option_lines(root),
              ".SH OUTPUT",
              "Output for a person is an aligned table, coloured only when standard output is a "
              "terminal and " + bold("NO_COLOR") + " is not set; otherwise plain columns separated "
              "by two spaces, for " + bold("cut") + "(1) and " + bold("awk") + "(1).",
              ".PP",
              "Every read verb takes " + bold("--json") + ": one JSON document per call on standard "
              "output (JSON lines, one object per line, for streams), with stable keys, documented in "
              "the command's page; " + bold("linx net") + " uses the keys and values of "
              + bold("ip -j") + ". Verbs that print names take " + bold("-q") + ", "
              + bold("--quiet") + " (names only, or nothing: the exit status says).",
              ".PP", "Commands with " + bold("--json") + ":",
              ".RS", esc(", ".join(reads)) + ".", ".RE",
              ".SH ERRORS",
              "An error is one line on standard error, " + bold("linx: ") + "then what failed, on what, "
              "and why: the argument, file:line or key path and what was expected for bad input "
              "(exit status 2); the subsystem, operation, object and errno name for a kernel "
              "refusal (exit status 1), for example:",
              ".PP", ".RS", ".nf",
              *[esc(f"linx: {e}") for e in error_examples()],
              ".fi", ".RE",
              ".SH EXIT STATUS", *[f".TP\n{bold(code)}\n{esc(text)}" for code, text in status],
              ".SH ENVIRONMENT",
              ".TP", bold("NO_COLOR"), "When set, tables are never coloured.",
              ".TP", bold("LINX_PID"), "Set for " + bold("--checkpoint") + " commands: the host pid of "
              "the parked workload.",
              ".TP", bold("XDG_RUNTIME_DIR"), "Sessions of a user other than root live in "
              + ital("$XDG_RUNTIME_DIR/linx") + ".",
              ".SH FILES",
              ".TP", ital("/run/linx/NAME/"), "A session: its control socket, state file and output log.",
              ".SH SEE ALSO",
              ", ".join([f"{bold('linx-' + s.path[-1])}(1)" for s in root.subs] + [f"{bold('linx-spec')}(5)"]
                        + [f"{bold(t)}({s})" for t, s in (("unshare", 1), ("nsenter", 1), ("ip", 8),
                                                          ("nft", 8), ("namespaces", 7), ("cgroups", 7))])]
    return "\n".join(lines) + "\n"


def error_examples() -> list:
    """Real errors, made by the library's own code, so the page shows what linx prints."""
    import errno

    from linx_core import process
    from linx_core.errors import KernelError, UsageError
    try:
        process.parse_namespaces("netz", "--ns")
    except UsageError as e:
        bad_input = e
    return [bad_input, KernelError("netlink", "link get", "nosuchdev", errno.ENODEV,
                                   'no such interface "nosuchdev"')]


def spec_page(version: str) -> str:
    """linx-spec(5): one table per object of the schema, keys in definition order."""
    from linx_core import spec
    schema = spec.json_schema()
    lines = [th("linx-spec", 5, version), ".SH NAME", "linx-spec \\- " + esc(schema.get("title", "linx run spec")),
             ".SH DESCRIPTION",
             "A run spec is one file, TOML (JSON accepted), that says everything " + bold("linx run")
             + " applies at the checkpoint, after " + bold("clone") + "(2) and before the workload's first "
             "instruction: " + bold("linx run --spec") + " " + ital("FILE") + ". Every key has a "
             "command-line flag on " + bold("linx run") + " too; flags override the file. The steps "
             "run in this order, each undone in reverse if a later one fails:",
             ".PP", ".RS", ".nf", esc(inspect.cleandoc(paragraphs(spec.__doc__)[1])), ".fi", ".RE",
             ".PP",
             "Every key below is optional. An unknown key, or a value of the wrong type, is an error "
             "naming its key path (" + ital("net.routes[1].via") + "), exit status 2, before any syscall. "
             "The JSON Schema is printed by " + bold("linx spec schema") + ".",
             ".SH KEYS"]

    def type_of(node: dict) -> str:
        t = node.get("type")
        if t == "array":
            return f"array of {type_of(node['items'])}"
        if t == "object":
            return "table" if "properties" in node else "table of string or integer"
        return " or ".join(t) if isinstance(t, list) else t

    def keys(node: dict, prefix: str) -> None:
        nested = []
        for key, sub in node["properties"].items():
            path = f"{prefix}{key}"
            lines.extend([".TP", bold(path) + " (" + esc(type_of(sub)) + ")", esc(sub.get("description", ""))])
            inner = sub.get("items", sub)
            if "properties" in inner:
                nested.append((path + ("[]" if sub.get("type") == "array" else ""), inner))
        for path, inner in nested:
            lines.append(f'.SS "{esc(path)}"')
            keys(inner, path + ".")

    keys(schema, "")
    example = os.path.join(ROOT, "examples", "web.toml")      # the headline demo's spec
    if os.path.exists(example):
        with open(example) as f:
            lines += [".SH EXAMPLE", ".RS", ".nf", esc(f.read().rstrip("\n")), ".fi", ".RE"]
    lines += [".SH SEE ALSO", f"{bold('linx-run')}(1), {bold('linx-spec')}(1), {bold('linx')}(1)"]
    return "\n".join(lines) + "\n"


# -- completion model ------------------------------------------------------------------------

def kind_of(param: click.Parameter, node: Node) -> str:
    """What a value completes to: a choice list, a kind from KIND_WORDS, or "" (nothing)."""
    if isinstance(param.type, click.Choice):
        return "choice:" + ",".join(map(str, param.type.choices))
    if isinstance(param.type, (click.Path, click.File)):
        return "file"
    for name in getattr(param, "opts", ()):
        if name in KIND_OPTIONS:
            return KIND_OPTIONS[name]
    if isinstance(param, click.Argument) and not param.metavar:   # named, not described
        return "interface" if param.name.upper() in KIND_WORDS[1][1] else "file"
    mv = param.metavar or ""
    bare = mv.strip("[].")
    if re.fullmatch(r"[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)+", bare):
        return "choice:" + bare.replace("|", ",")
    words = set(re.findall(r"[A-Za-z]+", mv))
    if isinstance(param, click.Argument) and "NAME" in words and node.cmd.callback \
            and node.cmd.callback.__module__ == "linx_cli.sessions":
        return "session"          # the session verbs: attach, kill, rm, wait, logs, inspect
    if "KEY" in words and node.path[1:2] == ("sysctl",):
        return "sysctl"
    for kind, marks in KIND_WORDS:
        if words & marks:
            return kind
    return ""


def grammar(text: str) -> dict:
    """ip's grammar in a synopsis -> {verb: (keywords {word: kind or None}, positional kinds)}.

    `add [link PARENT] NAME type veth|macvlan [mtu N] | del DEV`: alternatives split on " | ",
    the first token is the verb (a|b for several); a lowercase word directly followed by a
    placeholder or by lowercase choices is a keyword taking that value, other lowercase words
    are bare keywords, other placeholders are positionals."""
    verbs = {}
    for alternative in synopsis(text)[1]:
        tokens = alternative.split()
        words, args = {}, []
        key = None
        for tok in tokens[1:]:
            opens, closes = tok.startswith("["), tok.endswith("]")
            alts = tok.strip("[]").split("|")
            if opens:
                key = None
            lower = [a for a in alts if re.fullmatch(r"[a-z][a-z0-9-]*", a)]
            holders = [a for a in alts if a not in lower]
            heads = [m[0] for a in holders if (m := re.match(r"[A-Z]+", a))]     # ADDR/PLEN -> ADDR
            kind = next((k for h in heads for k, marks in KIND_WORDS if h in marks), "")
            value = kind or ("choice:" + ",".join(lower) if lower else "")
            if key is not None and (holders or len(alts) > 1):
                words[key] = value or "-"
                if holders:
                    words.update({w: None for w in lower if w not in words})
                key = None
            elif len(alts) == 1 and lower:
                words.setdefault(alts[0], None)
                key = alts[0]
            else:
                words.update({w: None for w in lower if w not in words})
                if holders:
                    args.append(kind or "-")
                key = None
            if closes:
                key = None
        for verb in tokens[0].split("|") if tokens else ():
            old_words, old_args = verbs.get(verb, ({}, []))
            verbs[verb] = ({**old_words, **words}, old_args or args)
    return verbs


def model(root: Node) -> dict:
    """{path: {"subs": [(name, help)], "nav": [names], "opts": [(names, kind or None, help)],
    "words": {word: kind or None}, "args": [kinds], "more": last arg repeats}} for every node;
    a kind of None is a flag, "-" a value with nothing to complete."""
    out = {}

    def add(node: Node) -> None:
        entry = {"subs": [(s.path[-1], short_help(s)) for s in node.subs],
                 "nav": [s.path[-1] for s in node.subs] + list(node.aliases),
                 "opts": [], "words": {}, "args": [], "more": False}
        for p in node.params():
            if isinstance(p, click.Option):
                flag = p.is_flag or p.count
                entry["opts"].append((sorted(p.opts + p.secondary_opts, key=len),
                                      None if flag else kind_of(p, node) or "-", p.help or ""))
            elif p.metavar and p.metavar.startswith("VERB"):
                for verb, (words, args) in grammar(node.cmd.help or "").items():
                    entry["subs"].append((verb, ""))
                    entry["nav"].append(verb)
                    out[f"{node.name} {verb}"] = {"subs": [], "nav": [], "opts": entry["opts"],
                                                  "words": words, "args": args, "more": False}
            else:
                entry["args"].append(kind_of(p, node) or "-")
                entry["more"] = p.nargs == -1
        out[node.name] = entry
        for sub in node.subs:
            add(sub)
        for alias, twin in node.aliases.items():
            prefix = " ".join(node.path + (twin,))
            for key in [k for k in out if k == prefix or k.startswith(prefix + " ")]:
                out[" ".join(node.path + (alias,)) + key[len(prefix):]] = out[key]

    add(root)
    return out


SIGNALS = " ".join(s.name[3:] for s in sorted(signal.Signals, key=int) if not s.name.startswith("SIGRT"))


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def tables(m: dict) -> dict[str, dict[str, str]]:
    """The model as flat string tables every shell can hold: key -> value."""
    t = {"nav": {}, "subs": {}, "opts": {}, "vals": {}, "words": {}, "args": {}, "desc": {}}
    for path, e in m.items():
        t["nav"][path] = " ".join(e["nav"])
        t["subs"][path] = " ".join(name for name, _ in e["subs"])
        t["opts"][path] = " ".join(n for names, _, _ in e["opts"] for n in names)
        t["words"][path] = " ".join(e["words"])
        t["args"][path] = " ".join(e["args"]) + (" ..." if e["more"] else "")
        for names, kind, help_ in e["opts"]:
            for n in names:
                if kind is not None:
                    t["vals"][f"{path} {n}"] = kind
                t["desc"][f"{path} {n}"] = help_
        for word, kind in e["words"].items():
            if kind is not None:
                t["vals"][f"{path} {word}"] = kind
        for name, help_ in e["subs"]:
            t["desc"][f"{path} {name}"] = help_
    return t


HEADER = "generated by linx_cli/_docs.py from the command definitions (make docs); do not edit"


def assoc(name: str, table: dict[str, str]) -> str:
    rows = "".join(f"  [{sh_quote(k)}]={sh_quote(v)}\n" for k, v in table.items() if v)
    return f"{name}=(\n{rows})\n"


WALK_BASH = r'''
# Walk the words before the cursor: find the command path, the value an option or keyword
# is waiting for, the positional index, and whether "--" was passed.
_linx_walk() {
    local i w
    node=linx want="" pos=0 dd=0
    for ((i = 1; i < ${#words[@]} - 1; i++)); do
        w=${words[i]}
        if [[ -n $want ]]; then want=""; continue; fi
        if ((dd)); then ((pos++)); continue; fi
        if [[ $w == -- ]]; then dd=1; pos=0; continue; fi
        if [[ $w == -?* ]]; then
            [[ $w != *=* && -n ${_linx_vals["$node $w"]+x} ]] && want=$w
            continue
        fi
        if [[ " ${_linx_nav[$node]} " == *" $w "* ]]; then node="$node $w" pos=0; continue; fi
        if [[ " ${_linx_words[$node]} " == *" $w "* ]]; then
            [[ -n ${_linx_vals["$node $w"]+x} ]] && want=$w
            continue
        fi
        ((pos++))
    done
}
'''

BASH = r'''# bash completion for linx; {header}.
# Source it, or install it as /usr/share/bash-completion/completions/linx.

declare -gA _linx_nav _linx_subs _linx_opts _linx_vals _linx_words _linx_args
{tables}_linx_signals={signals}
{walk}
# Values of a kind: sessions from `linx ps`, interfaces from /sys/class/net, ...
_linx_values() {{
    local kind=$1 cur=$2 linx=$3
    case $kind in
        choice:*) kind=${{kind#choice:}}; compgen -W "${{kind//,/ }}" -- "$cur" ;;
        session) compgen -W "$("$linx" ps -a -q 2>/dev/null)" -- "$cur" ;;
        target) compgen -W "$("$linx" ps -q 2>/dev/null) $(ls /run/netns 2>/dev/null) pid:" -- "$cur" ;;
        interface) compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur" ;;
        signal) compgen -W "$_linx_signals" -- "$cur" ;;
        sysctl) compgen -W "$(cd /proc/sys 2>/dev/null && find . -type f 2>/dev/null | sed 's|^\./||; s|/|.|g')" -- "$cur" ;;
        command) compgen -c -- "$cur" ;;
        dir) compgen -d -- "$cur" ;;
        file) compgen -f -- "$cur" ;;
    esac
}}

_linx() {{
    local -a words=() vals=()
    local i node want pos dd cur kind pre= linx=${{COMP_WORDS[0]}}
    # rejoin --opt=value, which COMP_WORDBREAKS splits at "="
    for ((i = 0; i <= COMP_CWORD; i++)); do
        if ((i > 1)) && [[ ${{COMP_WORDS[i]}} == = || ${{COMP_WORDS[i-1]}} == = ]]; then
            words[-1]+=${{COMP_WORDS[i]}}
        else
            words+=("${{COMP_WORDS[i]}}")
        fi
    done
    cur=${{words[-1]}}
    _linx_walk
    if [[ -n $want ]]; then
        kind=${{_linx_vals["$node $want"]}}
    elif [[ $cur == --*=* && -n ${{_linx_vals["$node ${{cur%%=*}}"]+x}} ]]; then
        kind=${{_linx_vals["$node ${{cur%%=*}}"]}}
        [[ $COMP_WORDBREAKS == *=* ]] || pre=${{cur%%=*}}=
        cur=${{cur#*=}}
    elif ((dd)); then
        kind=file; ((pos == 0)) && [[ ${{_linx_args[$node]}} == command* ]] && kind=command
    elif [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${{_linx_opts[$node]}}" -- "$cur")
        return
    else
        local -a args=(${{_linx_args[$node]}})
        local n=${{#args[@]}}
        if ((n)) && [[ ${{args[n-1]}} == ... ]]; then ((n--, pos >= n)) && pos=$((n - 1)); fi
        ((pos < n)) && kind=${{args[pos]}}
        vals=($(compgen -W "${{_linx_subs[$node]}} ${{_linx_words[$node]}}" -- "$cur"))
    fi
    mapfile -t COMPREPLY < <( ((${{#vals[@]}})) && printf '%s\n' "${{vals[@]}}"; _linx_values "$kind" "$cur" "$linx")
    COMPREPLY=("${{COMPREPLY[@]/#/$pre}}")
    [[ $kind == file || $kind == dir || $kind == command ]] && compopt -o filenames 2>/dev/null
    return 0
}}

complete -F _linx linx
'''

ZSH = r'''#compdef linx
# zsh completion for linx; {header}.
# Install it as _linx in a directory of $fpath.

typeset -gA _linx_nav _linx_subs _linx_opts _linx_vals _linx_words _linx_args _linx_desc
{tables}
_linx_values() {{
    local kind=$1 linx=$2
    case $kind in
        choice:*) compadd -- ${{(s:,:)kind#choice:}} ;;
        session) compadd -- ${{(f)"$($linx ps -a -q 2>/dev/null)"}} ;;
        target) compadd -- ${{(f)"$($linx ps -q 2>/dev/null)"}} /run/netns/*(N:t) ; compadd -S '' -- pid: ;;
        interface) compadd -- /sys/class/net/*(N:t) ;;
        signal) compadd -- {signals} ;;
        sysctl) compadd -- ${{${{${{(f)"$(cd /proc/sys 2>/dev/null && find . -type f 2>/dev/null)"}}#./}}//\//.}} ;;
        command) _command_names -e ;;
        dir) _files -/ ;;
        file) _files ;;
    esac
}}

_linx() {{
    local node=linx want= pos=0 dd=0 i w kind cur=${{words[CURRENT]}}
    local -a descs args
    for (( i = 2; i < CURRENT; i++ )); do
        w=${{words[i]}}
        if [[ -n $want ]]; then want=; continue; fi
        if (( dd )); then (( pos++ )); continue; fi
        if [[ $w == -- ]]; then dd=1; pos=0; continue; fi
        if [[ $w == -?* ]]; then
            [[ $w != *=* && -n ${{_linx_vals[$node $w]+x}} ]] && want=$w
            continue
        fi
        if (( ${{${{=_linx_nav[$node]}}[(Ie)$w]}} )); then node="$node $w"; pos=0; continue; fi
        if (( ${{${{=_linx_words[$node]}}[(Ie)$w]}} )); then
            [[ -n ${{_linx_vals[$node $w]+x}} ]] && want=$w
            continue
        fi
        (( pos++ ))
    done
    if [[ -n $want ]]; then
        _linx_values "${{_linx_vals[$node $want]}}" $words[1]
    elif [[ $cur == --*=* && -n ${{_linx_vals[$node ${{cur%%=*}}]+x}} ]]; then
        compset -P '*='
        _linx_values "${{_linx_vals[$node ${{cur%%=*}}]}}" $words[1]
    elif (( dd )); then
        if (( pos == 0 )) && [[ ${{_linx_args[$node]}} == command* ]]; then _command_names -e; else _files; fi
    elif [[ $cur == -* ]]; then
        descs=()
        for w in ${{=_linx_opts[$node]}}; do descs+=("${{w//:/\\:}}:${{_linx_desc[$node $w]}}"); done
        _describe -t options option descs
    else
        descs=()
        for w in ${{=_linx_subs[$node]}}; do descs+=("$w:${{_linx_desc[$node $w]}}"); done
        (( $#descs )) && _describe -t commands command descs
        (( ${{#${{=_linx_words[$node]}}}} )) && compadd -- ${{=_linx_words[$node]}}
        args=(${{=_linx_args[$node]}})
        local n=$#args
        if (( n )) && [[ $args[n] == ... ]]; then (( n-- )); (( pos >= n )) && pos=$(( n - 1 )); fi
        (( pos < n )) && kind=$args[pos+1]
        [[ -n $kind ]] && _linx_values "$kind" $words[1]
    fi
    return 0
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _linx "$@"; else compdef _linx linx; fi
'''

FISH = r'''# fish completion for linx; {header}.
# Install it as linx.fish in a directory of $fish_complete_path.

function __linx_table --argument-names table key
    switch "$table/$key"
{cases}    end
end

function __linx_in --argument-names word list
    contains -- $word (string split ' ' -- $list)
end

function __linx_values --argument-names kind cur linx
    switch $kind
        case 'choice:*'
            string split , -- (string replace 'choice:' '' -- $kind)
        case session
            $linx ps -a -q 2>/dev/null
        case target
            $linx ps -q 2>/dev/null; ls /run/netns 2>/dev/null; echo pid:
        case interface
            ls /sys/class/net 2>/dev/null
        case signal
            string split ' ' -- {signals}
        case sysctl
            pushd /proc/sys; and find . -type f 2>/dev/null | string replace './' '' | string replace -a / .; popd
        case command
            __fish_complete_command $cur
        case dir
            __fish_complete_directories $cur
        case file
            __fish_complete_path $cur
    end
end

function __linx_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l node linx; set -l want; set -l pos 0; set -l dd 0
    for w in $tokens[2..-1]
        if test -n "$want"; set want; continue; end
        if test $dd = 1; set pos (math $pos + 1); continue; end
        if test "$w" = --; set dd 1; set pos 0; continue; end
        if string match -q -- '-?*' $w
            if not string match -q -- '*=*' $w; and __linx_table vals "$node $w" >/dev/null
                set want $w
            end
            continue
        end
        if __linx_in $w (__linx_table nav $node)
            set node "$node $w"; set pos 0; continue
        end
        if __linx_in $w (__linx_table words $node)
            __linx_table vals "$node $w" >/dev/null; and set want $w
            continue
        end
        set pos (math $pos + 1)
    end
    set -l kind
    if test -n "$want"
        set kind (__linx_table vals "$node $want")
    else if test $dd = 1
        set kind file
        test $pos = 0; and string match -q 'command*' -- (__linx_table args $node); and set kind command
    else if string match -q -- '--*=*' $cur
        set -l opt (string split -m1 = -- $cur)[1]
        for v in (__linx_values (__linx_table vals "$node $opt") (string split -m1 = -- $cur)[2] $tokens[1])
            echo $opt=$v
        end
        return
    else if string match -q -- '-*' $cur
        for o in (string split ' ' -- (__linx_table opts $node))
            printf '%s\t%s\n' $o (__linx_table desc "$node $o")
        end
        return
    else
        for s in (string split -n ' ' -- (__linx_table subs $node))
            printf '%s\t%s\n' $s (__linx_table desc "$node $s")
        end
        string split -n ' ' -- (__linx_table words $node)
        set -l args (string split -n ' ' -- (__linx_table args $node))
        set -l n (count $args)
        if test $n -gt 0; and test "$args[-1]" = ...
            set n (math $n - 1)
            test $pos -ge $n; and set pos (math $n - 1)
        end
        test $pos -lt $n; and set kind $args[(math $pos + 1)]
    end
    test -n "$kind"; and __linx_values $kind $cur $tokens[1]
end

complete -c linx -f -a '(__linx_complete)'
'''


def bash_script(t: dict) -> str:
    body = "".join(assoc(f"_linx_{n}", t[n]) for n in ("nav", "subs", "opts", "vals", "words", "args"))
    return BASH.format(header=HEADER, tables=body, signals=sh_quote(SIGNALS), walk=WALK_BASH.strip("\n"))


def zsh_script(t: dict) -> str:
    body = "".join(f"_linx_{n}=(\n" + "".join(f"  {sh_quote(k)} {sh_quote(v)}\n" for k, v in t[n].items()
                                            if v) + ")\n"
                   for n in ("nav", "subs", "opts", "vals", "words", "args", "desc"))
    return ZSH.format(header=HEADER, tables=body, signals=SIGNALS)


def fish_script(t: dict) -> str:
    cases = []
    for table in ("nav", "subs", "opts", "vals", "words", "args", "desc"):
        for key, value in t[table].items():
            if value:
                cases.append(f"        case {sh_quote(table + '/' + key)}\n            echo {sh_quote(value)}\n")
    cases.append("        case '*'\n            return 1\n")
    return FISH.format(header=HEADER, cases="".join(cases), signals=sh_quote(SIGNALS))


# -- all files -------------------------------------------------------------------------------

def build() -> dict[str, str]:
    """Every generated file: path relative to the repository -> content."""
    from importlib.metadata import version as dist_version
    version = dist_version("linx")
    root = tree()
    files = {"man/linx.1": main_page(root, version)}
    for sub in root.subs:
        files[f"man/linx-{sub.path[-1]}.1"] = command_page(sub, version)
    files["man/linx-spec.5"] = spec_page(version)
    t = tables(model(root))
    files["completions/linx.bash"] = bash_script(t)
    files["completions/_linx"] = zsh_script(t)
    files["completions/linx.fish"] = fish_script(t)
    return files


def stale(files: dict[str, str], root: str = ROOT) -> list[str]:
    """Paths that differ from what is on disk, and generated-looking files no longer made."""
    out = [p for p, text in files.items()
           if not os.path.exists(os.path.join(root, p)) or open(os.path.join(root, p)).read() != text]
    for d in ("man", "completions"):
        for f in sorted(os.listdir(os.path.join(root, d))):
            if f"{d}/{f}" not in files:
                out.append(f"{d}/{f}")
    return out


def main(argv: list[str]) -> int:
    """`python -m linx_cli._docs [--check]`: write the files (removing ones no longer made),
    or with --check list the stale ones and exit 1."""
    files = build()
    if "--check" in argv:
        bad = stale(files)
        for p in bad:
            print(f"stale: {p}", file=sys.stderr)
        return 1 if bad else 0
    for d in ("man", "completions"):
        os.makedirs(os.path.join(ROOT, d), exist_ok=True)
    for p in stale(files):
        full = os.path.join(ROOT, p)
        if p in files:
            with open(full, "w") as f:
                f.write(files[p])
        else:
            os.remove(full)
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
