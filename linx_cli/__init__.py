"""linx_cli: the typer app. Command modules only wire options to linx_core; they import the
library inside the command body so `linx --help` loads nothing it does not print."""
