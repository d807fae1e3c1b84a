"""The one way command modules make their typer app, so all share the CLI conventions:
-h/--help, no rich on help or errors (rich costs ~60 ms to import), no completion flags
(completions are generated files, see completions/)."""
import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, rich_markup_mode=None, add_completion=False,
                       no_args_is_help=True, pretty_exceptions_enable=False,
                       context_settings=CONTEXT)
