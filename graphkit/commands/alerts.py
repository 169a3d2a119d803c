"""Alert commands: list a run's alerts; export a run for schedulers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from graphkit.commands.render import (
    EXIT_FAILURE,
    EXIT_INVALID_INPUT,
    console,
    fail,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.schema import TIERS

RunDir = Annotated[Path, typer.Argument(help="A run directory made by `graphkit run`.")]

# The table view keeps the columns an analyst reads first; csv and json carry every column.
TABLE_COLUMNS = ("customer_id", "line_id", "tier", "recommended_limit", "limit", "reasons")
MONEY_COLUMNS = ("recommended_limit", "limit")


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
    app.command("export")(export)


def alerts(
    run_dir: RunDir,
    min_tier: Annotated[
        str, typer.Option("--min-tier", help=f"Lowest tier listed: {', '.join(TIERS[1:])}.")
    ] = "yellow",
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """List the alerts of RUN_DIR (one row per credit line), most severe first."""
    from graphkit.alerts import RunDirError, read_alerts

    if min_tier not in TIERS:
        fail(f"--min-tier: {min_tier!r} is not one of {', '.join(TIERS)}", EXIT_INVALID_INPUT)
    try:
        frame = read_alerts(run_dir, min_tier)
    except RunDirError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    if format == "table":
        frame = frame.select([c for c in TABLE_COLUMNS if c in frame.columns]).with_columns(
            pl.col(c).round(0).cast(pl.Int64) for c in MONEY_COLUMNS if c in frame.columns
        )
        title = f"{frame.get_column('customer_id').n_unique()} customers at {min_tier} or above"
        print_frame(frame, "table", title=title)
    else:
        print_frame(frame, format)


def export(
    run_dir: RunDir,
    to: Annotated[Path, typer.Option("--to", help="Export root; RUN_ID/ and latest go here.")],
    format: Annotated[
        str, typer.Option("--format", help="Comma list of parquet, csv, json.")
    ] = "parquet",
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            help="An earlier run, or an export root (the run of its latest export): "
            "export only what changed.",
        ),
    ] = None,
    epsilon: Annotated[
        float, typer.Option(help="Risk-score movement that counts as a change (--since).")
    ] = 0.01,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No output unless it fails.")
    ] = False,
) -> None:
    """Export cluster risk, scores and alerts of RUN_DIR atomically; repoint TO/latest.

    Exit codes: 0 exported (also when nothing changed since --since), 1 failure (destination
    not writable, disk full...), 2 bad input (missing or invalid run directory, bad --format).
    """
    from graphkit.export import ExportInputError, export_run

    try:
        with progress_bars(quiet) as progress:
            result = export_run(run_dir, to, format, since, epsilon=epsilon, progress=progress)
    except ExportInputError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    except OSError as exc:
        fail(f"export to {to} failed: {exc}; the previous export is still latest", EXIT_FAILURE)
    if quiet:
        return
    rows = [("export", str(result.directory)), ("latest", f"{result.latest} -> {result.run_id}")]
    if result.since_run_id is not None:
        rows += [
            ("since run", result.since_run_id),
            ("changed customers", result.changed_customers),
            ("changed clusters", result.changed_clusters),
        ]
    rows += [(f"rows: {name}", n) for name, n in result.rows.items()]
    rows.append(("formats", ", ".join(result.formats)))
    console.print(key_values(rows, title="graphkit export"))
