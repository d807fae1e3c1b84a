"""`linx seccomp`: compile filters to cBPF, list them, import Docker profiles, inspect a
process's filters, record what a workload calls. (`linx run --seccomp*` goes through the run
spec, linx_core/spec.py.)"""
import sys

import typer

from ._app import new_app

app = new_app("Compile, list and inspect seccomp syscall filters; import Docker profiles.")

ARCH_HELP = "Target architecture: x86_64 or aarch64 (default: this machine's)."


def _dump(doc) -> None:
    import json
    print(json.dumps(doc, indent=2))


def _write(path: str, data: bytes) -> None:
    """-o FILE, or stdout with -o -; written whole or not at all."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    import os
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        from linx_core.errors import UsageError
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(path, f"cannot write: {e.strerror}") from None


def _ruleset(spec: str, arch, caps: str | None):
    from linx_core.seccomp import profile
    from linx_core.errors import UsageError
    kind, value, skipped = profile.load(spec, arch, _cap_names(caps))
    if kind == "bpf":
        raise UsageError(spec, "is compiled BPF already; `linx seccomp disasm` lists it")
    _note_skipped(skipped, value.arch)
    return value


def _note_skipped(skipped: list, arch: str) -> None:
    """Docker profiles list every ABI's names (chown32, _llseek, ...); say how many went."""
    if skipped:
        shown = ", ".join(skipped[:6]) + (", ..." if len(skipped) > 6 else "")
        print(f"linx: note: {len(skipped)} names in the profile are not {arch} syscalls and were "
              f"skipped ({shown})", file=sys.stderr)


def _cap_names(caps: str | None) -> set[str]:
    """--caps LIST (Docker includes/excludes) -> CAP_* names; 'all' is every cap linx knows."""
    if not caps:
        return set()
    from linx_core import capabilities
    mask = capabilities.KNOWN_MASK if caps.strip().lower() == "all" else capabilities.parse(caps, "--caps")
    return {n.upper() for n in capabilities.names(mask)}


CAPS_HELP = ("Docker profiles: the capabilities the workload keeps (comma list, or all), "
             "for the profile's includes/excludes caps. Default: none.")


@app.command("compile")
def compile_(spec: str = typer.Argument(..., metavar="SPEC",
                                        help="A linx filter spec (JSON or .toml) or a Docker seccomp profile."),
             output: str = typer.Option(..., "-o", "--output", metavar="FILE",
                                        help="Where the struct sock_filter array goes (- for stdout)."),
             arch: str = typer.Option(None, "--arch", help=ARCH_HELP),
             caps: str = typer.Option(None, "--caps", metavar="LIST", help=CAPS_HELP)) -> None:
    """Compile a filter to cBPF: the bytes seccomp(2) takes, usable by `linx run --seccomp`,
    bwrap --seccomp and anything else that installs a struct sock_filter array."""
    from linx_core.seccomp import compile_ruleset
    ruleset = _ruleset(spec, arch, caps)
    data = compile_ruleset(ruleset)
    if not ruleset.allows_unconditionally("execve"):
        print("linx: note: this filter denies execve; a program installing it right before exec "
              "cannot start a workload (linx run --seccomp SPEC adds its exec gate; the compiled "
              "file is installed as written)", file=sys.stderr)
    _write(output, data)


@app.command("disasm")
def disasm(file: str = typer.Argument(..., metavar="FILE", help="Compiled BPF (a struct sock_filter array)."),
           arch: str = typer.Option(None, "--arch", help="Name syscalls for this arch (default: the one the filter checks)."),
           as_json: bool = typer.Option(False, "--json",
                                        help='{"arch", "instructions", "default", "actions", "by_arguments", "listing"}')) -> None:
    """List a compiled filter instruction by instruction, with the syscall each comparison
    names, then what it does to every syscall of the arch."""
    from linx_core.errors import UsageError
    from linx_core.seccomp import bpf, listing, syscalls
    if arch is not None:
        arch = syscalls.check_arch(arch, "--arch")
    try:
        with open(file, "rb") as f:
            program = bpf.decode(f.read())
    except OSError as e:
        raise UsageError(file, f"cannot read: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(file, f"not compiled BPF: {e}") from None
    lines = listing.disasm(program, arch)
    try:
        summary = listing.summary(program, arch)
    except ValueError as e:
        raise UsageError(file, f"not a runnable seccomp filter: {e}") from None
    if as_json:
        _dump({**summary, "listing": lines})
        return
    print("\n".join(lines))
    print()
    _print_summary(summary)


def _print_summary(summary: dict, indent: str = "") -> None:
    print(f"{indent}{summary['instructions']} instructions, {summary['arch'] or 'unknown arch'}; "
          f"default {summary['default']}")
    for action, names in summary["actions"].items():
        print(f"{indent}{action}: {', '.join(names)}")
    if summary["by_arguments"]:
        print(f"{indent}depends on arguments: {', '.join(summary['by_arguments'])}")


@app.command("import")
def import_(profile_path: str = typer.Argument(..., metavar="PROFILE.json", help="A Docker/OCI seccomp profile."),
            output: str = typer.Option(None, "-o", "--output", metavar="FILE",
                                       help="Write the linx spec here instead of stdout."),
            arch: str = typer.Option(None, "--arch", help=ARCH_HELP),
            caps: str = typer.Option(None, "--caps", metavar="LIST", help=CAPS_HELP)) -> None:
    """Translate a Docker seccomp profile into a linx filter spec (JSON) for one arch and
    capability set: includes/excludes resolved, names the arch lacks dropped (listed on stderr)."""
    import json
    from linx_core.errors import UsageError
    from linx_core.seccomp import profile
    kind, ruleset, skipped = profile.load(profile_path, arch, _cap_names(caps))
    if kind != "docker":
        raise UsageError(profile_path, "not a Docker seccomp profile (no defaultAction)")
    _note_skipped(skipped, ruleset.arch)
    text = json.dumps(profile.to_spec(ruleset), indent=2) + "\n"
    if output:
        _write(output, text.encode())
    else:
        sys.stdout.write(text)


@app.command("show")
def show(pid: int = typer.Argument(..., metavar="PID"),
         disasm_: bool = typer.Option(False, "--disasm", help="Also list every filter's instructions."),
         as_json: bool = typer.Option(False, "--json",
                                      help='{"pid", "mode", "filters", "no_new_privs", "programs": '
                                           '[{"arch", "default", "actions", ...}, ...]}, newest first')) -> None:
    """A process's seccomp mode and filters. The filters are read with PTRACE_SECCOMP_GET_FILTER
    (root: CAP_SYS_ADMIN), which stops the process for a moment; newest first."""
    from linx_core.seccomp import bpf, listing, proc
    state = proc.status(pid)
    programs = []
    if state["mode"] == "filter":
        for data in proc.filters(pid):
            program = bpf.decode(data)
            entry = listing.summary(program)
            if disasm_:
                entry["listing"] = listing.disasm(program)
            programs.append(entry)
    if as_json:
        _dump({**state, "programs": programs})
        return
    print(f"pid {state['pid']}: seccomp {state['mode']}, {state['filters']} filter(s), "
          f"no_new_privs {'on' if state['no_new_privs'] else 'off'}")
    for i, entry in enumerate(programs):
        print(f"filter {i}{' (newest)' if i == 0 else ''}:")
        _print_summary(entry, "  ")
        for line in entry.get("listing", []):
            print("    " + line)


@app.command("record", context_settings={"allow_interspersed_args": False})
def record(argv: list[str] = typer.Argument(..., metavar="-- COMMAND [ARG]...",
                                            help="The workload to record; searched in its PATH."),
           output: str = typer.Option(..., "-o", "--output", metavar="FILE",
                                      help="Where the profile goes (Docker/OCI seccomp JSON)."),
           default: str = typer.Option("kill_process", "--default", metavar="ACTION",
                                       help="The profile's action for every syscall not recorded: "
                                            "kill_process, kill_thread, trap, log or errno(NAME)."),
           ns: str = typer.Option("", "--ns", metavar="LIST", help="Fresh namespaces, as linx run --ns."),
           user: str = typer.Option(None, "--user", "-u", metavar="UID[:GID]", help="Run as this uid/gid."),
           no_new_privs: bool = typer.Option(False, "--no-new-privs",
                                             help="Set PR_SET_NO_NEW_PRIVS (needed without CAP_SYS_ADMIN).")) -> None:
    """Run a workload once and write the syscalls it made as an allow-list profile, which
    `linx run --seccomp FILE` (or Docker) then enforces. Every syscall of the workload is
    reported to the agent (SECCOMP_RET_USER_NOTIF) and let through unchanged
    (SECCOMP_USER_NOTIF_FLAG_CONTINUE): no ptrace, no bcc. Exits with the workload's status;
    the profile is written in any case."""
    import json
    from linx_core import capabilities, process, seccomp
    from linx_core.errors import UsageError
    from linx_core.seccomp import profile, rules, syscalls
    from . import _workload
    arch = syscalls.check_arch(None, "seccomp record")
    action = rules.Action.parse(default, "--default")
    profile.to_docker([], arch, action)           # an action Docker can spell, before running
    kinds = process.parse_namespaces(ns, "--ns")
    settings = {"no_new_privs": no_new_privs, **_workload.parse_user(user)}
    sys_admin = 1 << capabilities.BITS["cap_sys_admin"]
    if not no_new_privs and (settings.get("uid") or not capabilities.read("self").effective & sys_admin):
        raise UsageError("--no-new-privs", "recording installs a seccomp filter, which needs "
                                           "--no-new-privs without CAP_SYS_ADMIN")
    session = process.Session.spawn(argv, kinds)
    with session:
        status = _workload.drive(session, settings, lambda pid: settings.update(seccomp.record_settings(pid)))
    names = seccomp.recorded(session.events_seen, arch)
    _write(output, (json.dumps(profile.to_docker(names, arch, action), indent=2) + "\n").encode())
    print(f"linx: recorded {len(names)} syscalls into {output}", file=sys.stderr)
    sys.exit(status)
