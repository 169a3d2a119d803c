"""Rendering helpers for the CLI: rich progress bars, tables, and error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from graphkit.progress import SILENT

# Options shared by several commands.
InputDir = Annotated[Path, typer.Argument(help="Input directory (CSV or Parquet per table).")]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Run directory to (re)create.")]
ConfigFile = Annotated[Path | None, typer.Option(help="graphkit.toml with run parameters.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")]

console = Console()
err_console = Console(stderr=True)

# Exit codes a scheduler can act on.
EXIT_FAILURE = 1
EXIT_INVALID_INPUT = 2
EXIT_UNAVAILABLE = 3


class RichProgress:
    """A :class:`graphkit.progress.Progress` rendered as rich progress bars on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int | None = None) -> None:
        self._tasks[task] = self._progress.add_task(task, total=total)

    def advance(self, task: str, amount: int = 1) -> None:
        if task in self._tasks:
            self._progress.advance(self._tasks[task], amount)

    def finish(self, task: str) -> None:
        task_id = self._tasks.pop(task, None)
        if task_id is not None:
            total = self._progress.tasks[task_id].total
            self._progress.update(
                task_id, completed=total if total is not None else 1, total=total or 1
            )

    def log(self, message: str) -> None:
        self._progress.console.log(message)


@contextmanager
def progress_bars(quiet: bool = False) -> Iterator[Any]:
    """Yield a Progress for library calls: rich bars on stderr, or nothing when ``quiet``."""
    if quiet:
        yield SILENT
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    with bars:
        yield RichProgress(bars)


def frame_table(frame: pl.DataFrame, title: str | None = None, max_rows: int = 50) -> Table:
    """A rich table of the first ``max_rows`` rows of ``frame``."""
    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(col, overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*("" if v is None else _fmt(v) for v in row))
    if frame.height > max_rows:
        table.caption = f"{max_rows} of {frame.height} rows"
    return table


# A column folded to fewer characters than this is hard to read; narrower content is not folded.
READABLE_COLUMN = 24


def table_width(frame: pl.DataFrame, max_rows: int = 50) -> int:
    """Terminal columns a readable table of ``frame`` needs: each column as wide as its widest
    cell or header, up to :data:`READABLE_COLUMN` (longer text folds onto more lines), plus
    rich's borders and padding (three characters a column, one more at the end)."""
    widths = [
        max(
            [len(col)]
            + [len("" if v is None else _fmt(v)) for v in frame.get_column(col).head(max_rows)]
        )
        for col in frame.columns
    ]
    return sum(min(w, READABLE_COLUMN) for w in widths) + 3 * len(widths) + 1


def frame_records(frame: pl.DataFrame, title: str | None = None, max_rows: int = 50) -> Group:
    """The first ``max_rows`` rows of ``frame`` vertically: one block per row, one field a
    line (for results too wide for the terminal)."""
    blocks: list[Any] = [Text(title, style="italic")] if title else []
    for number, row in enumerate(frame.head(max_rows).iter_rows(named=True), start=1):
        block = Table(title=f"row {number}", show_header=False, title_justify="left", expand=True)
        block.add_column("field", style="bold", no_wrap=True)
        block.add_column("value", overflow="fold", ratio=1)
        for key, value in row.items():
            block.add_row(key, "" if value is None else _fmt(value))
        blocks.append(block)
    if frame.height > max_rows:
        blocks.append(Text(f"{max_rows} of {frame.height} rows"))
    return Group(*blocks)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def print_frame(frame: pl.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    """Print ``frame`` as a rich table, CSV or JSON on stdout."""
    if fmt == "table":
        # A table squeezed into a narrow terminal folds every cell to a character or two: rows
        # that do not fit on one line are shown one field a line instead.
        if frame.width > 1 and table_width(frame) > console.width:
            console.print(frame_records(frame, title))
        else:
            console.print(frame_table(frame, title))
    elif fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.to_dicts(), indent=2, default=str, ensure_ascii=False))
        sys.stdout.write("\n")
    else:
        fail(f"unknown format {fmt!r} (table, csv or json)", EXIT_FAILURE)


def key_values(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> Table:
    """A two-column rich table."""
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in pairs:
        table.add_row(key, _fmt(value))
    return table


def invalid_input(input_dir: Path, issues: Sequence[Any], outcome: str = "written") -> None:
    """Print the validation issues as a table and exit 2: nothing was ``outcome``."""
    from loaders.sources import issues_frame

    print_frame(issues_frame(list(issues)), "table", title=f"{len(issues)} input error(s)")
    fail(f"{input_dir}: invalid input; nothing was {outcome}", EXIT_INVALID_INPUT)


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)
