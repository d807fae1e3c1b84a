"""One way to print a table: rich, aligned and coloured, on a terminal (unless NO_COLOR is set
and not empty);
plain columns separated by two spaces otherwise, so scripts can cut them."""
import os
import sys


def show(headers: list[str], rows: list[list[str]]) -> None:
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):   # no-color.org: non-empty
        from rich.console import Console
        from rich.table import Table
        table = Table(box=None, header_style="bold", pad_edge=False)
        for h in headers:
            table.add_column(h)
        for r in rows:
            table.add_row(*r)
        Console().print(table)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for r in [headers, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
