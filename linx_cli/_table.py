"""One way to print a table: rich, aligned and coloured, on a terminal (unless NO_COLOR is set
and not empty);
plain columns separated by two spaces otherwise, so scripts can cut them."""
import os
import sys


def show(headers: list[str], rows: list[list[str]], right=()) -> None:
    """`right`: indexes of the columns aligned right (counters). Cells are text, never rich
    markup: a cgroup or mount path may contain brackets."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):   # no-color.org: non-empty
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
        table = Table(box=None, header_style="bold", pad_edge=False)
        for i, h in enumerate(headers):
            table.add_column(h, justify="right" if i in right else "left")
        for r in rows:
            table.add_row(*(Text(str(x)) for x in r))
        Console().print(table)
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    for r in [headers, *rows]:
        print("  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                        for i, (x, w) in enumerate(zip(r, widths))).rstrip())
