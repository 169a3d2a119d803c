"""Core commands: run the pipeline, validate an input directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from loaders.sources import InputError, issues_frame, validate_directory

from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    console,
    err_console,
    fail,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.config import ConfigError, apply_overrides, load_config, parse_assignments

InputDir = Annotated[Path, typer.Argument(help="Input directory (CSV or Parquet per table).")]


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)


def run(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to (re)create.")],
    config: Annotated[Path | None, typer.Option(help="graphkit.toml with run parameters.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set flows.max_hops=4."),
    ] = None,
    stage: Annotated[
        list[str] | None, typer.Option(help="Run only these stages (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
) -> None:
    """Validate, build the graph, analyse, score and alert; publish OUT atomically."""
    from graphkit.pipeline import run_pipeline

    try:
        cfg = apply_overrides(load_config(config), parse_assignments(set_ or []))
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    try:
        with progress_bars(quiet) as progress:
            summary = run_pipeline(input_dir, out, cfg, progress=progress, stages=stage)
    except InputError as exc:
        print_frame(issues_frame(exc.issues), "table", title=f"{len(exc.issues)} input error(s)")
        fail(f"{input_dir}: invalid input; nothing was written", EXIT_INVALID_INPUT)
    if not quiet:
        counts = summary.manifest["counts"]
        rows = [("run directory", str(summary.run_dir)), ("run id", summary.manifest["run_id"])]
        rows += [(f"nodes: {k}", v) for k, v in counts["graph"]["nodes"].items()]
        rows += [(f"edges: {k}", v) for k, v in counts["graph"]["edges"].items()]
        rows += [(f"output: {k}", v) for k, v in counts["outputs"].items()]
        console.print(key_values(rows, title="graphkit run"))


def validate(
    input_dir: InputDir,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Check an input directory against the input contract; exit 2 on any error."""
    issues = validate_directory(input_dir)
    if issues:
        print_frame(issues_frame(issues), format, title=f"{len(issues)} input error(s)")
        raise typer.Exit(EXIT_INVALID_INPUT)
    if format == "json":
        print_frame(issues_frame([]), "json")
    else:
        err_console.print(f"[green]{input_dir}: valid[/]")
