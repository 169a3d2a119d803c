"""Data commands: ``graphkit import finbench`` converts an LDBC FinBench snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    console,
    fail,
    key_values,
    progress_bars,
)
from loaders.finbench import FinbenchError, import_finbench

import_app = typer.Typer(
    help="Convert external datasets into graphkit's input contract.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


@import_app.command("finbench")
def finbench(
    source: Annotated[Path, typer.Argument(help="LDBC FinBench snapshot (pipe-separated CSV).")],
    out: Annotated[Path, typer.Argument(help="Input directory to (re)create.")],
    format: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Convert a FinBench snapshot into a valid graphkit input directory, atomically."""
    if format not in ("parquet", "csv"):
        fail(f"unknown format {format!r} (parquet or csv)", EXIT_INVALID_INPUT)
    try:
        with progress_bars(quiet) as progress:
            report = import_finbench(source, out, format, progress)
    except FinbenchError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    if quiet:
        return
    rows: list[tuple[str, object]] = [("input directory", str(out))]
    for table, rows_out in report["output_rows"].items():
        mapping = report["mappings"].get(table)
        if mapping is None:
            rows.append((table, rows_out))
            continue
        dropped = ", ".join(f"{k} {v}" for k, v in mapping["dropped"].items())
        text = f"{rows_out} of {mapping['source_rows']}"
        rows.append((table, f"{text} (dropped: {dropped})" if dropped else text))
    console.print(key_values(rows, title="graphkit import finbench"))
