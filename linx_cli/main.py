"""The `linx` entry point: a command group that imports a command's module only when that
command runs. Displaying a group's help would otherwise load every command and, through
them, the library; the one-line helps below are what `linx --help` prints instead, and a
test checks they match each module's own help."""
import importlib
import sys

from typer.core import TyperGroup

from ._app import CONTEXT

# name: ("module[:typer app attribute, default app]", one-line help)
COMMANDS = {
    "run": ("linx_cli.run", "Spawn a workload into fresh namespaces, set it up at the checkpoint, run it."),
    "exec": ("linx_cli.exec_", "Run a command inside a running workload's namespaces and cgroup."),
    "net": ("linx_cli.net", "Network interfaces, addresses, routes, neighbours and rules in any netns (rtnetlink)."),
    "ps": ("linx_cli.sessions:ps", "List sessions."),
    "inspect": ("linx_cli.sessions:inspect", "Show one session in detail."),
    "attach": ("linx_cli.sessions:attach", "Attach this terminal to a session's PTY (ctrl-p ctrl-q detaches)."),
    "logs": ("linx_cli.sessions:logs", "Print a session's output log."),
    "kill": ("linx_cli.sessions:kill", "Send a signal to a session's workload."),
    "wait": ("linx_cli.sessions:wait", "Wait for a session's workload to end; exit with its status."),
    "rm": ("linx_cli.sessions:rm", "Remove finished sessions (-f: kill running ones first)."),
    "spec": ("linx_cli.spec", "Check run spec files, show their plan, print the JSON Schema."),
    "mount": ("linx_cli.mount", "Mount, bind, move, unmount and pivot the root, in any mount namespace; list mounts."),
    "user": ("linx_cli.user", "User namespace identity: read or write uid/gid maps and setgroups."),
    "cgroup": ("linx_cli.cgroup", "Create, limit, freeze and inspect cgroup v2 groups."),
    "sysctl": ("linx_cli.sysctl", "Read and write kernel tunables (/proc/sys), on the host or in a namespace."),
    "caps": ("linx_cli.caps", "Read a process's capability sets; decode capability masks."),
    "seccomp": ("linx_cli.seccomp", "Compile, list and inspect seccomp syscall filters; import Docker profiles."),
    "nft": ("linx_cli.nft", "nf_tables rulesets in nft syntax: push, pull, diff, monitor, log (atomic, any netns)."),
    "reconcile": ("linx_cli.reconcile", "Keep sysctls, addresses and routes, and cgroup limits converged on a desired-state file."),
}


class LazyGroup(TyperGroup):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import typer.main
        module, _, attr = COMMANDS[name][0].partition(":")
        cmd = typer.main.get_command(getattr(importlib.import_module(module), attr or "app"))
        cmd.name = name
        return cmd

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


cli = LazyGroup(
    name="linx", rich_markup_mode=None, no_args_is_help=True, context_settings=CONTEXT,
    help="Spawn workloads into fresh Linux namespaces and decide their identity, resources, "
         "network, firewall, mounts and privileges before their first instruction.\n\n"
         "Exit status: 0 success; 1 the operation failed; 2 bad usage or input; for run/exec "
         "the workload's own status, 128+N when killed by signal N, 125 when linx failed "
         "before the workload started, 126 when it could not be executed, 127 when not found.")


def main(argv=None) -> None:
    """The one place errors become output: one line on stderr and the error's exit status
    (a usage error too, with a pointer to --help, instead of click's three-line form)."""
    import click

    from linx_core.errors import LinxError
    try:
        status = cli.main(args=argv, prog_name="linx", standalone_mode=False)
    except LinxError as e:
        print(f"linx: {e}", file=sys.stderr)
        sys.exit(e.exit_status)
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.ctx.get_help())
        sys.exit(0)
    except click.UsageError as e:
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx else ""
        print(f"linx: {e.format_message()}{hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        print(f"linx: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def run() -> None:
    """The `linx` command: main(), then out without the interpreter's teardown, which for
    a one-shot command costs 25-45 ms (freeing every module and object), often more than
    the command's own work. Standard output and error are flushed first; linx keeps no
    other buffered file open past its command and registers no atexit handlers."""
    import os
    try:
        main()
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    try:
        sys.stdout.flush()
    except BrokenPipeError:          # the reader left: what Python itself exits with then
        status = status or 120
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(status)


if __name__ == "__main__":
    run()
