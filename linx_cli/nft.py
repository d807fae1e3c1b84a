"""`linx nft`: nf_tables rulesets in nft's own language, parsed and compiled by linx and
sent as one atomic batch over its own nfnetlink; read back and printed the way
`nft list ruleset` prints them."""
import sys

import typer

from ._app import new_app

HELP = "nf_tables rulesets in nft syntax: push, pull, diff, monitor, log (atomic, any netns)."
app = new_app(HELP)

NETNS_HELP = ("Work in this network namespace: pid:N, a namespace file, an ip netns name or "
              "a session (default: linx's own).")


def _read(path: str):
    """(text, name) of FILE, or of stdin for -."""
    from linx_core.errors import UsageError
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(path) as f:
            return f.read(), path
    except OSError as e:
        raise UsageError(path, e.strerror) from None


def _parse(path: str):
    import gc
    from linx_core.netfilter import parser, validate
    text, name = _read(path)
    rs = parser.parse(text, name)
    # This process runs one command: the ruleset lives until exit and holds no cycles, so the
    # collector need not walk it again (0.04 s of a 10,000-rule push).
    gc.freeze()
    validate.validate(rs)
    return rs


@app.command("push")
def push(file: str = typer.Argument(..., metavar="FILE", help="A ruleset file (- for stdin)."),
         netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP),
         mode: str = typer.Option("replace", "--mode", metavar="replace|reconcile",
                                  help="replace: rebuild each table of FILE; reconcile: send "
                                       "only what differs (rules matched by tag).")
         ) -> None:
    """Apply FILE as one transaction: each table it declares is destroyed and built again
    as written; other tables are untouched ('flush ruleset' in FILE flushes all first).
    All or nothing: a rule the kernel refuses leaves the previous ruleset in place.

    With --mode reconcile, only the minimal patch is sent (see `linx nft diff`), guarded
    by the ruleset generation: untouched rules keep their handles and counters, a changed
    tagged rule is replaced in place. If another writer commits meanwhile, it is retried
    3 times. Chains with more than one rule must tag all of them (comment "tag:NAME").

    Exit status: 0 applied, 1 the kernel refused (naming the rule and its line),
    2 FILE does not parse or validate (file:line:col and a caret).
    """
    from linx_core import target
    from linx_core.errors import UsageError
    from linx_core.netfilter import push as nft_push
    if mode not in ("replace", "reconcile"):
        raise UsageError("--mode", f"{mode!r}: expected replace or reconcile")
    t = target.parse(netns)
    rs = _parse(file)
    if mode == "reconcile":
        from linx_core.netfilter import reconcile
        reconcile.reconcile(rs, t)
    else:
        nft_push.push(rs, t)


@app.command("diff")
def diff(file: str = typer.Argument(..., metavar="FILE", help="A ruleset file (- for stdin)."),
         netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP),
         as_json: bool = typer.Option(False, "--json", help="Print the ops as JSON."),
         exit_code: bool = typer.Option(False, "--exit-code",
                                        help="Exit 1 when there are differences.")) -> None:
    """Print the minimal patch that `push --mode reconcile` would send to bring the
    namespace's tables to FILE's (tables FILE does not name are left out): one op per
    line, deletes first; "up to date" when there is nothing to do."""
    from linx_core import target
    from linx_core.netfilter import patch, reconcile
    rs = _parse(file)
    gen, _, p = reconcile.plan(rs, target.parse(netns))
    if as_json:
        import json
        print(json.dumps({"gen": gen, "summary": p.summary(), "ops": patch.to_json(p)},
                         indent=2))
    elif p.empty:
        print("up to date")
    else:
        for op in p.ops:
            print(patch.describe(op))
    if exit_code and not p.empty:
        raise typer.Exit(1)


@app.command("pull")
def pull(netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP),
         table: tuple[str, str] = typer.Option((None, None), "--table", metavar="FAMILY NAME",
                                               help="Only this table."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON: tables, chains, "
                                                            "rules (as nft text), sets.")
         ) -> None:
    """Print the namespace's ruleset as `nft list ruleset` prints it."""
    from linx_core import target
    from linx_core.errors import UsageError
    from linx_core.netfilter import formatter, proto
    from linx_core.netfilter import pull as nft_pull
    t = target.parse(netns)
    which = None
    if table[0] is not None:
        if table[0] not in proto.FAMILIES:
            raise UsageError("--table", f"{table[0]!r} is not a family "
                                        f"({', '.join(proto.FAMILIES)})")
        which = (table[0], table[1])
    rs = nft_pull.pull(t, which)
    if as_json:
        import json
        print(json.dumps(formatter.to_json(rs), indent=2))
    else:
        sys.stdout.write(formatter.format_ruleset(rs))


@app.command("fmt")
def fmt(file: str = typer.Argument(..., metavar="FILE", help="A ruleset file (- for stdin)."),
        check: bool = typer.Option(False, "--check", help="Exit 1 when FILE is not formatted."),
        write: bool = typer.Option(False, "--write", help="Rewrite FILE in place.")) -> None:
    """Print FILE in canonical nft syntax (what nft list prints). Comments and blank lines
    are not kept; includes and variables are expanded."""
    from linx_core.errors import UsageError
    from linx_core.netfilter import formatter, parser
    if check and write:
        raise UsageError("--check/--write", "give one of them")
    text, name = _read(file)
    out = formatter.format_ruleset(parser.parse(text, name))
    if check:
        if out != text:
            print(f"{name}: not formatted", file=sys.stderr)
            raise typer.Exit(1)
        return
    if write:
        if file == "-":
            raise UsageError("--write", "needs a FILE, not stdin")
        if out != text:
            with open(file, "w") as f:
                f.write(out)
        return
    sys.stdout.write(out)


@app.command("check")
def check(file: str = typer.Argument(..., metavar="FILE", help="A ruleset file (- for stdin)."),
          debug: str = typer.Option(None, "--debug", metavar="netlink",
                                    help="netlink: print each rule's kernel expressions as "
                                         "nft --debug=netlink does."),
          netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET",
                                    help="Resolve interface names (iif/oif) here.")) -> None:
    """Parse, validate and compile FILE without touching the kernel's ruleset."""
    from linx_core import target
    from linx_core.errors import UsageError
    from linx_core.netfilter import listing, push as nft_push
    if debug not in (None, "netlink"):
        raise UsageError("--debug", f"{debug!r}: expected netlink")
    rs = _parse(file)
    msgs = nft_push.plan(rs, target.parse(netns))
    if debug == "netlink":
        for m in msgs:
            if m.kind == "newrule":
                print(listing.rule_listing(m.family, m.attrs["table"], m.attrs["chain"],
                                           m.attrs))


@app.command("flush")
def flush(netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP)
          ) -> None:
    """Remove every table of the namespace (nft flush ruleset), in one transaction."""
    from linx_core import target
    from linx_core.netfilter import model, push as nft_push
    nft_push.push(model.Ruleset(flush=True), target.parse(netns))


delete_app = new_app("Delete nf_tables objects.")
app.add_typer(delete_app, name="delete")


@delete_app.command("table")
def delete_table(family: str = typer.Argument(..., metavar="FAMILY"),
                 name: str = typer.Argument(..., metavar="NAME"),
                 netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET",
                                           help=NETNS_HELP)) -> None:
    """Delete one table and everything in it (ENOENT, exit 1, when it does not exist)."""
    from linx_core import target
    from linx_core.errors import UsageError
    from linx_core.netfilter import proto, push as nft_push
    if family not in proto.FAMILIES:
        raise UsageError("FAMILY", f"{family!r} is not one of {', '.join(proto.FAMILIES)}")
    nft_push.delete_table(family, name, target.parse(netns))


@app.command("monitor")
def monitor(netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP),
            as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
            snapshot: bool = typer.Option(False, "--snapshot",
                                          help="Print the ruleset first, then only later "
                                               "changes (nothing lost or repeated)."),
            rcvbuf: int = typer.Option(4 << 20, "--rcvbuf", metavar="BYTES",
                                       help="Socket receive buffer; events beyond it are "
                                            "lost and reported as resync_needed.")) -> None:
    """Print ruleset changes as they are committed, by anyone, each stamped with the
    generation and the committing process (pid and name), until interrupted. Events of
    one commit are printed together, after it, followed by its new_gen line. When events
    were lost (the buffer overflowed) a resync_needed event is printed, and with
    --snapshot a fresh snapshot after it."""
    import json
    from linx_core import target
    from linx_core.netfilter import formatter, monitor as nft_monitor

    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def show_snapshot(m):
        gen, rs = m.snapshot()
        if as_json:
            out(json.dumps({"op": "snapshot", "gen": gen, **formatter.to_json(rs)}))
        else:
            out(f"# snapshot at generation {gen}")
            sys.stdout.write(formatter.format_ruleset(rs))
    if rcvbuf < 1024:
        from linx_core.errors import UsageError
        raise UsageError("--rcvbuf", f"{rcvbuf}: expected at least 1024 bytes")
    try:
        with nft_monitor.Monitor(target.parse(netns), rcvbuf) as m:
            if snapshot:
                show_snapshot(m)
            for ev in m.events():
                out(json.dumps(ev.to_json()) if as_json else ev.text())
                if snapshot and ev.op == "resync_needed":
                    show_snapshot(m)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


@app.command("log")
def log(group: int = typer.Option(..., "--group", "-g", metavar="N",
                                  help="The NFLOG group (`log group N` in a rule)."),
        copy: str = typer.Option("meta", "--copy", metavar="none|meta|packet[:SNAPLEN]",
                                 help="How much of each packet: none, meta (addresses, "
                                      "ports), packet (up to SNAPLEN bytes, in --json)."),
        netns: str = typer.Option(None, "--netns", "-n", metavar="TARGET", help=NETNS_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
        rcvbuf: int = typer.Option(4 << 20, "--rcvbuf", metavar="BYTES",
                                   help="Socket receive buffer; packets beyond it are lost "
                                        "and reported as resync_needed.")) -> None:
    """Print one line per packet logged to NFLOG group N (nfnetlink_log), until
    interrupted: time, prefix, in/out interfaces, MAC, mark, and a summary of the IP
    header (addresses, protocol, ports or ICMP type). EPERM (exit 1) when another
    process already listens on the group."""
    import json
    from linx_core import target
    from linx_core.netfilter import log as nflog
    mode, snaplen = nflog.parse_copy(copy)
    try:
        with nflog.Listener(group, target.parse(netns), mode, snaplen, rcvbuf) as lst:
            for p in lst.packets():
                if p is None:
                    line = (json.dumps({"op": "resync_needed"}) if as_json else
                            "# packets were lost (ENOBUFS)")
                else:
                    line = json.dumps(p.to_json()) if as_json else p.text()
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
