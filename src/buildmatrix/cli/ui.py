"""Terminal output: rich tables and progress for people, JSON for machines.

Human output goes to stderr so stdout stays clean for ``--format json`` and
``--format github``. Progress is a live display only on an interactive
terminal outside CI; elsewhere it is plain lines that read well in a log.
``SCREEN`` renders the library's ``buildmatrix.progress.Reporter`` calls this way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["SCREEN", "Screen", "emit_json", "interactive", "progress", "stderr", "stdout", "table"]

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)
# Rich assumes 80 columns when output is not a terminal; CI logs and files are
# read whole, so tables get room instead of folding every cell.
for _console in (stdout, stderr):
    if not _console.is_terminal and "COLUMNS" not in os.environ:
        _console.width = 200


def interactive() -> bool:
    return stderr.is_terminal and not os.environ.get("CI")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, byte-for-byte deterministic."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[str]]) -> FittingTable:
    result = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*row)
    return FittingTable(result, title, columns, rows)


class FittingTable:
    """A table where it fits; where it does not (80 columns), one record per row.

    Rich would otherwise fold cells mid-word, and a wheel's file name or a target
    id cut in two can be neither read nor copied.
    """

    def __init__(self, table: Table, title: str, columns: list[str], rows: list[list[str]]) -> None:
        self.table = table
        self.title = title
        self.columns = columns
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        natural = Measurement.get(console, options.update_width(100_000), self.table).maximum
        if natural <= options.max_width:
            yield self.table
            return
        yield Text(self.title, style="italic")
        for row in self.rows:
            first, *rest = row
            yield Text(first, style="bold")
            for name, value in zip(self.columns[1:], rest, strict=False):
                if value:
                    yield Text(f"  {name}: {Text.from_markup(value).plain}")


class Progress:
    """One line per step when not interactive; a rich live bar when it is."""

    def __init__(self, description: str, total: int) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self._rich: Any = None
        self._task: Any = None

    def advance(self, message: str) -> None:
        self.done += 1
        if self._rich is not None:
            self._rich.update(self._task, advance=1, description=f"{self.description}: {message}")
        else:
            # Plain log lines are never wrapped: CI logs are read and grepped whole.
            stderr.print(f"[{self.done}/{self.total}] {message}", markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """A line that stays, above the live bar when there is one."""
        if self._rich is not None:
            self._rich.console.print(message, markup=False)
        else:
            stderr.print(message, markup=False, soft_wrap=True)


@contextmanager
def progress(description: str, total: int) -> Iterator[Progress]:
    tracker = Progress(description, total)
    if not interactive():
        yield tracker
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        tracker._rich = bar
        tracker._task = bar.add_task(description, total=total)
        yield tracker


class Screen:
    """The library's reporter (``buildmatrix.progress.Reporter``) on stderr."""

    def note(self, message: str) -> None:
        stderr.print(message, markup=False, soft_wrap=True)

    def command(self, shown: str) -> None:
        # A plain print: under a live bar rich redirects stderr above it.
        print("+ " + shown, file=sys.stderr, flush=True)

    def steps(self, description: str, total: int) -> AbstractContextManager[Progress]:
        return progress(description, total)


SCREEN = Screen()
