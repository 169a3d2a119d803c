"""The live path's commands: ``graphkit replay`` (the backtest of issue 14)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    ConfigFile,
    InputDir,
    OutDir,
    Quiet,
    console,
    fail,
    invalid_input,
    key_values,
    progress_bars,
)
from graphkit.config import ConfigError, load_config
from loaders.sources import InputError


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    input_dir: InputDir,
    cut: Annotated[
        str, typer.Option("--cut", help="ISO-8601 time: batch before it, events from it on.")
    ],
    out: OutDir,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Backtest the live engine: batch on the rows before --cut, then every later row as an
    event in order of (time, table, key); OUT holds the batch tables as of the end plus
    decisions.parquet and timeline.parquet."""
    from graphkit.live.load import LiveError
    from graphkit.live.replay import prepare_replay
    from graphkit.live.replay import replay as run_replay
    from graphkit.pipeline import run_pipeline

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    try:
        cut_at = datetime.fromisoformat(cut)
    except ValueError:
        fail(f"--cut {cut!r}: not an ISO-8601 date or datetime", EXIT_INVALID_INPUT)
    if cut_at.tzinfo is None:
        cut_at = cut_at.replace(tzinfo=UTC)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".graphkit-replay-", dir=out.parent) as work:
        try:
            before, events = prepare_replay(input_dir, cut_at, work)
            with progress_bars(quiet) as progress:
                run_pipeline(before, Path(work) / "run", cfg, progress=progress)
                summary = run_replay(
                    Path(work) / "run", events, out, cfg, cut=cut_at, progress=progress
                )
        except InputError as exc:
            invalid_input(input_dir, exc.issues)
        except LiveError as exc:
            fail(str(exc), EXIT_INVALID_INPUT)
    if not quiet:
        m = summary.manifest
        console.print(
            key_values(
                [
                    ("replay", str(summary.out_dir)),
                    ("cut", m["cut"]),
                    ("events", ", ".join(f"{k} {v:,}" for k, v in m["events"].items())),
                    ("decisions", f"{m['counts']['decisions']:,}"),
                    ("alerts raised", f"{m['counts']['alerts']:,}"),
                    (
                        "time",
                        f"start {m['timings_seconds']['startup']} s, apply "
                        f"{m['timings_seconds']['apply']} s",
                    ),
                ],
                title="graphkit replay",
            )
        )
