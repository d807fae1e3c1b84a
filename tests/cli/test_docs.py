"""Man pages and shell completions (issue 13): the checked-in files are what the generator
makes from the commands now registered; the pages list every command and option; linx(1)'s
exit statuses are the real ones; the completion scripts, driven through bash's `complete`,
zsh's completion widget and fish's `complete -C`, complete commands, options, session names
(sessions this test starts; the oracle is the run directory) and interface names (veths in a
fresh netns; the oracle is `ip -j link`); and `make install-docs` put everything where man and
the shells look."""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import uuid

import click
import pexpect
import pytest

from conftest import BIN, LINX, linx
from linx_cli import _docs
from linx_cli.main import COMMANDS, cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = {"bash": f"{REPO}/completions/linx.bash", "zsh": f"{REPO}/completions/_linx",
           "fish": f"{REPO}/completions/linx.fish"}
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "LC_ALL": "C.UTF-8"}
ENV.pop("MANPATH", None)


def walk(cmd: click.Command, ctx: click.Context, path: tuple):
    """Every visible command below cmd, with its path: an independent walk of the click tree."""
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if not sub.hidden:
                yield from walk(sub, click.Context(sub, parent=ctx, info_name=name), path + (name,))


def commands():
    root = click.Context(cli, info_name="linx", **cli.context_settings)
    for name in COMMANDS:
        cmd = cli.get_command(root, name)
        yield name, cmd, click.Context(cmd, parent=root, info_name=name)


def render(page: str) -> str:
    """The page as man shows it (ASCII, one very long line per paragraph)."""
    return subprocess.run(f"man -E ascii -l {shlex.quote(page)} | col -bx", shell=True, text=True,
                          capture_output=True, env={**ENV, "MANWIDTH": "3000"}, check=True).stdout


# -- the pages ---------------------------------------------------------------------------------

def test_generated_files_are_current():
    stale = _docs.stale(_docs.build())
    assert not stale, f"stale generated files: {stale}; run `make docs`"


def test_every_command_and_option_is_on_its_page():
    for name, cmd, ctx in commands():
        text = render(f"{REPO}/man/linx-{name}.1")
        assert text.startswith(f"LINX-{name.upper()}(1)")
        for path, sub, sub_ctx in walk(cmd, ctx, ("linx", name)):
            assert " ".join(path) in text, f"linx-{name}(1) lacks {' '.join(path)}"
            for p in sub.params:
                if isinstance(p, click.Option) and not p.hidden:
                    for opt in p.opts:
                        assert re.search(rf"(^|[ ,]){re.escape(opt)}([ ,\n]|$)", text, re.M), \
                            f"linx-{name}(1) lacks {opt} of {' '.join(path)}"
                if p.help:
                    assert " ".join(p.help.split()[:4]) in " ".join(text.split())


def test_pages_render_without_errors():
    for page in glob.glob(f"{REPO}/man/*.[15]"):
        err = subprocess.run(["groff", "-man", "-z", "-ww", "-Tutf8", page], capture_output=True,
                             text=True, env=ENV).stderr
        problems = [l for l in err.splitlines() if "cannot adjust line" not in l]
        assert not problems, f"{page}: {problems}"


def test_linx_1_has_the_exit_statuses_and_the_json_convention():
    text = render(f"{REPO}/man/linx.1")
    statuses = text.split("\nEXIT STATUS\n")[1].split("\nENVIRONMENT\n")[0]
    assert re.findall(r"^ {7}(\S+)", statuses, re.M) == ["0", "1", "2", "125", "126", "127", "128+N"]
    assert "--json" in text.split("\nOUTPUT\n")[1] and "NO_COLOR" in text
    listed = text.split("Commands with --json:")[1].split("\n\n")[0]
    for name, cmd, ctx in commands():
        for path, sub, _ in walk(cmd, ctx, (name,)):
            if any(isinstance(p, click.Option) and "--json" in p.opts for p in sub.params):
                assert " ".join(path) in listed


def test_documented_exit_statuses_are_what_linx_run_returns():
    cases = {2: ["--ns", "nosuch", "--", "true"], 125: ["--checkpoint", "false", "--", "true"],
             126: ["--", "/etc/hostname"], 127: ["--", "/nonexistent-linx-doc"],
             128 + 9: ["--", "sh", "-c", "kill -9 $$"], 0: ["--", "true"], 3: ["--", "sh", "-c", "exit 3"]}
    for status, argv in cases.items():
        r = linx("run", *argv)
        assert r.returncode == status, (argv, r.stderr)
        assert len(r.stderr.splitlines()) <= 1, r.stderr      # errors: one line


def test_linx_spec_5_lists_every_key_of_the_schema():
    from linx_core import spec
    text = render(f"{REPO}/man/linx-spec.5")

    def keys(node, prefix):
        for key, sub in node["properties"].items():
            yield prefix + key
            inner = sub.get("items", sub)
            if "properties" in inner:
                yield from keys(inner, prefix + key + ("[]." if "items" in sub else "."))
    for key in keys(spec.json_schema(), ""):
        assert re.search(rf"^ +{re.escape(key)} \(", text, re.M), key


# -- installation ------------------------------------------------------------------------------

def test_pip_install_puts_pages_and_scripts_in_share():
    with open(f"{REPO}/pyproject.toml", "rb") as f:
        data_files = tomllib.load(f)["tool"]["setuptools"]["data-files"]
    installed = {os.path.relpath(f, REPO): dest for dest, patterns in data_files.items()
                 for p in patterns for f in glob.glob(f"{REPO}/{p}")}
    for page in glob.glob(f"{REPO}/man/*.[15]"):
        assert installed[os.path.relpath(page, REPO)] == f"share/man/man{page[-1]}"
    assert installed["completions/linx.bash"] == "share/bash-completion/completions"
    assert installed["completions/_linx"] == "share/zsh/site-functions"
    assert installed["completions/linx.fish"] == "share/fish/vendor_completions.d"


def test_man_finds_every_page_after_make():
    for page in glob.glob(f"{REPO}/man/*.[15]"):
        name, section = os.path.basename(page).rsplit(".", 1)
        found = subprocess.run(["man", "-w", section, name], capture_output=True, text=True, env=ENV)
        assert found.returncode == 0, f"man {section} {name}: {found.stderr} (make install-docs?)"
        assert os.path.realpath(found.stdout.strip()) == page


def test_shells_find_the_installed_completions():
    bash = subprocess.run(["bash", "-c", ". /usr/share/bash-completion/bash_completion; "
                           "__load_completion linx && complete -p linx"],
                          capture_output=True, text=True, env=ENV)
    assert bash.stdout.strip() == "complete -F _linx linx", bash.stderr
    zsh = subprocess.run(["zsh", "-f", "-c", "autoload -U compinit; compinit -u -D; print -r -- $_comps[linx]"],
                         capture_output=True, text=True, env=ENV)
    assert zsh.stdout.strip() == "_linx", zsh.stderr
    fish = subprocess.run(["fish", "-c", "complete -C 'linx ne'"], capture_output=True, text=True, env=ENV)
    assert fish.stdout.split("\t")[0] == "net", fish.stderr


# -- completion: what a value completes to -----------------------------------------------------

def test_value_kinds_come_from_metavars_and_types():
    @click.command()
    @click.option("--dev")
    @click.option("--out", metavar="FILE")
    @click.option("--mode", type=click.Choice(["a", "b"]))
    @click.option("--when", metavar="no|always")
    @click.option("--in", "in_", metavar="TARGET")
    @click.option("-s", metavar="SIG")
    @click.argument("iface", metavar="DEV")
    def cmd(**_):
        pass
    node = _docs.Node(cmd, click.Context(cmd, info_name="x"), ("x",))
    kinds = {names[-1]: kind for names, kind, _ in _docs.model(node)["x"]["opts"]}
    assert kinds == {"--dev": "interface", "--out": "file", "--mode": "choice:a,b",
                     "--when": "choice:no,always", "--in": "target", "-s": "signal", "--help": None}
    assert _docs.model(node)["x"]["args"] == ["interface"]


def test_ip_grammar_verbs_keywords_and_values():
    g = _docs.grammar("Interfaces: show [DEV] | add [link PARENT] NAME type veth|vlan [mtu N] "
                      "| set DEV [up|down] [master DEV|nomaster] [netns TARGET]")
    assert list(g) == ["show", "add", "set"]
    assert g["show"] == ({}, ["interface"])
    assert g["add"] == ({"link": "interface", "type": "choice:veth,vlan", "mtu": "-"}, ["-"])
    assert g["set"] == ({"up": None, "down": None, "master": "interface", "nomaster": None,
                         "netns": "target"}, ["interface"])


# -- completion: bash, through `complete` ------------------------------------------------------

def bash_complete(line: str, prefix: tuple = ()) -> list[str]:
    """Split the line as readline does (whitespace; "=" is a word break), set COMP_*, call the
    function `complete -p linx` names, and return COMPREPLY."""
    words = re.findall(r"[^\s=]+|=", line)
    if not line or line[-1].isspace():
        words.append("")
    script = (f"source {SCRIPTS['bash']}\nset -- $(complete -p linx)\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
              f"$3 linx {shlex.quote(words[-1])} {shlex.quote(words[-2])}\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run([*prefix, "bash", "-c", script], capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return sorted(set(r.stdout.split()))


def test_bash_commands_subcommands_and_options():
    assert bash_complete("linx ne") == ["net"]
    assert bash_complete("linx ") == sorted(COMMANDS)
    for name, cmd, ctx in commands():
        for path, sub, sub_ctx in walk(cmd, ctx, ("linx", name)):
            line = " ".join(path) + " "
            if isinstance(sub, click.Group):
                visible = [n for n in sub.list_commands(sub_ctx) if not sub.get_command(sub_ctx, n).hidden]
                assert set(visible) <= set(bash_complete(line)), line
            opts = {o for p in sub.get_params(sub_ctx) if isinstance(p, click.Option) and not p.hidden
                    for o in p.opts + p.secondary_opts if o.startswith("--")}
            assert set(bash_complete(line + "--")) == opts, line


def test_bash_option_values():
    assert bash_complete("linx run --restart ") == ["always", "no", "on-failure"]
    assert bash_complete("linx run --restart=o") == ["on-failure"]
    assert bash_complete("linx kill -s KI") == ["KILL"]
    assert "echo" in bash_complete("linx run -- ech")
    assert "net.ipv4.ip_forward" in bash_complete("linx sysctl get net.ipv4.ip_forw")
    assert bash_complete("linx net link add x type v") == ["veth", "vlan"]


@pytest.fixture(scope="module")
def sessions():
    """One running session and one that exited, under a prefix no other test uses."""
    prefix = f"lxdoc-{uuid.uuid4().hex[:6]}"
    up, done = f"{prefix}-up", f"{prefix}-done"
    try:
        linx("run", "-d", "--name", up, "--", "sleep", "60", check=True)
        linx("run", "--name", done, "--", "true", check=True)
        yield prefix, up, done
    finally:
        linx("rm", "-f", up, done)


def session_dirs(prefix: str) -> list[str]:
    from linx_core import sessions
    return sorted(n for n in os.listdir(sessions.run_dir()) if n.startswith(prefix))


@pytest.mark.parametrize("verb", ["attach", "kill", "rm", "wait", "logs", "inspect"])
def test_bash_session_names(sessions, verb):
    prefix, up, done = sessions
    assert session_dirs(prefix) == sorted([up, done])
    assert bash_complete(f"linx {verb} {prefix}") == session_dirs(prefix)
    assert bash_complete(f"linx {verb} --help {prefix}-u") == [up]


def test_bash_session_names_for_each_rm_argument(sessions):
    prefix, up, done = sessions
    assert bash_complete(f"linx rm {up} {prefix}") == session_dirs(prefix)


def test_bash_targets_are_live_sessions_and_netns_names(sessions, netns):
    """--target, --netns/-n, --in: a running session (not an exited one), an ip netns name, pid:."""
    prefix, up, done = sessions
    assert bash_complete(f"linx exec --target {prefix}") == [up]
    assert bash_complete(f"linx net -n {prefix}") == [up]
    assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert bash_complete(f"linx sysctl get --in {netns}") == [netns]
    assert bash_complete("linx mount list --in pi") == ["pid:"]


@pytest.fixture
def veths(netns):
    """A fresh netns with a veth pair; its interfaces as `ip -j link` reports them."""
    subprocess.run(["ip", "-n", netns, "link", "add", "lxa0", "type", "veth", "peer", "name", "lxb0"], check=True)
    names = [l["ifname"] for l in json.loads(subprocess.run(["ip", "-n", netns, "-j", "link"], check=True,
                                                            capture_output=True, text=True).stdout)]
    return netns, sorted(names)


def test_bash_interface_names(veths):
    netns, names = veths
    inside = ("ip", "netns", "exec", netns)
    assert sorted(names) == ["lo", "lxa0", "lxb0"]
    assert bash_complete("linx net addr add 10.0.0.1/24 dev ", inside) == names
    assert bash_complete("linx net link set lx", inside) == ["lxa0", "lxb0"]
    assert bash_complete("linx net link set lxa0 master lxb", inside) == ["lxb0"]
    assert bash_complete("linx net link del l", inside) == ["lo", "lxa0", "lxb0"]
    assert bash_complete("linx net route add default dev lxa", inside) == ["lxa0"]
    assert bash_complete("linx net stats lxb", inside) == ["lxb0"]
    assert bash_complete("linx net -j link show lxa", inside) == ["lxa0"]


def test_bash_tab_in_a_real_terminal(sessions):
    """readline, not just the function: `linx ne<TAB>` becomes `linx net `."""
    prefix, up, done = sessions
    sh = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env={**ENV, "TERM": "dumb"},
                       encoding="utf-8", timeout=30, dimensions=(24, 200))
    try:
        sh.sendline(f"source {SCRIPTS['bash']}; PS1='re''ady$ '")
        sh.expect_exact("ready$ ")
        for typed, expect in (("linx ne", "linx net "), (f"linx attach {prefix}-u", f"linx attach {up} ")):
            sh.send(typed + "\t#end")
            sh.expect_exact(expect + "#end")
            sh.sendcontrol("c")            # drop the line; it never runs
            sh.expect_exact("ready$ ")
    finally:
        sh.close(force=True)


# -- completion: zsh and fish ------------------------------------------------------------------

def zsh_complete(lines: list[str], prefix: tuple = ()) -> list[str]:
    """Type each line and TAB in an interactive zsh (compinit, our _linx first in fpath), then a
    key bound to a widget that saves the edited line: what TAB made of it."""
    out = f"/tmp/linx-zsh-{uuid.uuid4().hex[:8]}"
    sh = pexpect.spawn(prefix[0] if prefix else "zsh", [*prefix[1:], *(["zsh"] if prefix else []), "-f", "-i"],
                       env={**ENV, "TERM": "dumb", "OUT": out}, encoding="utf-8", timeout=30,
                       dimensions=(24, 200))
    got = []
    try:
        sh.sendline(f"fpath=({REPO}/completions $fpath); autoload -U compinit; compinit -u -D; "
                    "save() { print -rn -- $BUFFER > $OUT.new; mv $OUT.new $OUT; BUFFER=; zle accept-line }; "
                    "zle -N save; bindkey '^X' save; echo re''ady")
        sh.expect_exact("ready")
        for line in lines:
            sh.send(line + "\t\x18")
            deadline = time.time() + 10
            while not os.path.exists(out) and time.time() < deadline:
                time.sleep(0.05)
            with open(out) as f:
                got.append(f.read())
            os.unlink(out)
    finally:
        sh.close(force=True)
    return got


def test_zsh(sessions, veths):
    prefix, up, done = sessions
    assert zsh_complete(["linx ne", "linx run --mount-p", "linx run --restart=on", "linx kill -s KI",
                         f"linx kill {prefix}-u", f"linx rm {prefix}-d"]) == [
        "linx net ", "linx run --mount-proc ", "linx run --restart=on-failure ", "linx kill -s KILL ",
        f"linx kill {up} ", f"linx rm {done} "]
    netns, _ = veths
    assert zsh_complete(["linx net link set lxa", "linx net addr add 10.0.0.1/24 dev lxb"],
                        ("ip", "netns", "exec", netns)) == [
        "linx net link set lxa0 ", "linx net addr add 10.0.0.1/24 dev lxb0 "]


def fish_complete(line: str, prefix: tuple = ()) -> list[str]:
    r = subprocess.run([*prefix, "fish", "-N", "-c", f"source {SCRIPTS['fish']}; complete -C {shlex.quote(line)}"],
                       capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return sorted({l.split("\t")[0] for l in r.stdout.splitlines()})


def test_fish(sessions, veths):
    prefix, up, done = sessions
    assert fish_complete("linx ne") == ["net"]
    assert fish_complete("linx ") == sorted(COMMANDS)
    assert fish_complete("linx run --restart ") == ["always", "no", "on-failure"]
    for verb in ("attach", "kill", "rm", "wait", "logs", "inspect"):
        assert fish_complete(f"linx {verb} {prefix}") == session_dirs(prefix)
    netns, names = veths
    inside = ("ip", "netns", "exec", netns)
    assert fish_complete("linx net addr add 10.0.0.1/24 dev ", inside) == names
    assert fish_complete("linx net link set lx", inside) == ["lxa0", "lxb0"]
