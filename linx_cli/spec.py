"""`linx spec`: check a run spec, show its plan, print its JSON Schema."""
import typer

from ._app import new_app

app = new_app("Check run spec files, show their plan, print the JSON Schema.")


@app.command("check")
def check(files: list[str] = typer.Argument(..., metavar="FILE..."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; the exit status says.")) -> None:
    """Validate run specs: every error with its key path, exit 2; no side effect."""
    from linx_core import spec
    for f in files:
        spec.plan(spec.load(f), f, argv=["(argv)"])   # argv may come from the command line
        if not quiet:
            print(f"{f}: ok")


@app.command("plan")
def plan(file: str = typer.Argument(..., metavar="FILE"),
         argv: list[str] = typer.Argument(None, metavar="[-- COMMAND [ARG]...]"),
         json_: bool = typer.Option(False, "--json", help='{"namespaces", "argv", "steps": [{"key", "phase", "do"}, ...]}')) -> None:
    """Print every step of a spec in the order it will run (as linx run --spec F --dry-run)."""
    from linx_core import spec
    p = spec.plan(spec.load(file), file, argv=argv or None)
    show_plan(p, json_)


def show_plan(p, as_json: bool) -> None:
    doc = p.to_json()
    if as_json:
        import json
        print(json.dumps(doc, indent=2))
        return
    print(f"clone: namespaces {','.join(doc['namespaces']) or '(none)'}; park at the checkpoint")
    for i, step in enumerate(doc["steps"], 1):
        print(f"{i:>2}. {step['key']:<14} [{step['phase']}] {step['do']}")


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the run spec."""
    import json

    from linx_core import spec
    print(json.dumps(spec.json_schema(), indent=2))
