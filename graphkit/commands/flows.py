"""Fund-flow commands: ``graphkit flows`` (the flows stage alone) and ``graphkit sweep flows``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from graphkit.commands.analytics import sweep_app
from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    ConfigFile,
    InputDir,
    Quiet,
    console,
    fail,
    invalid_input,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.config import FLOW_POLICIES, ConfigError, apply_overrides, load_config
from loaders.sources import InputError


def register(app: typer.Typer) -> None:
    app.command("flows")(flows)
    sweep_app.command("flows")(sweep_flows_command)


def flows(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to (re)create.")],
    config: ConfigFile = None,
    hops: Annotated[int | None, typer.Option(min=1, help="Max hops H (flows.max_hops).")] = None,
    window: Annotated[
        float | None, typer.Option(help="Window W in days (flows.window_days).")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help=f"Amount policy: {', '.join(FLOW_POLICIES)}.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Trace loan money into banned sectors: flows.parquet, flow_paths.parquet and
    transfer_cycles.parquet in OUT, totals in its manifest."""
    from graphkit.pipeline import run_pipeline

    try:
        cfg = apply_overrides(
            load_config(config),
            {"flows.max_hops": hops, "flows.window_days": window, "flows.policy": policy},
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    try:
        with progress_bars(quiet) as progress:
            summary = run_pipeline(input_dir, out, cfg, progress=progress, stages=["flows"])
    except InputError as exc:
        invalid_input(input_dir, exc.issues)
    if quiet:
        return
    totals = summary.manifest.get("flows", {})
    rows = [("run directory", str(summary.run_dir))]
    rows += [(k, v) for k, v in totals.items()]
    console.print(key_values(rows, title="graphkit flows"))
    flows_path = summary.run_dir / "flows.parquet"
    if flows_path.exists():
        top = (
            pl.read_parquet(flows_path)
            .sort("banned_share", "drawdown_id", descending=[True, False])
            .select(
                "drawdown_id",
                "customer_id",
                "amount",
                "banned_amount",
                "banned_share",
                "banned_amount_3plus",
                "min_hops_to_banned",
                "capped",
            )
            .head(10)
        )
        print_frame(top, "table", title="drawdowns with the highest banned share")


def sweep_flows_command(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the sweep files.")],
    hops: Annotated[str, typer.Option(help="Hop bounds: a grid a:b[:step] or a list.")] = "2:6",
    window: Annotated[str, typer.Option(help="Windows in days: a list or a grid.")] = "1,7,30",
    policy: Annotated[
        str | None, typer.Option(help=f"Policies, comma-separated ({', '.join(FLOW_POLICIES)}).")
    ] = None,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Banned share and share at >= 3 hops per (policy, hops, window): CSV and PNG in OUT."""
    from graphkit.analytics.flow_sweep import sweep_flows
    from graphkit.atomic import atomic_write_bytes
    from graphkit.commands.grid import parse_values
    from graphkit.pipeline import load_graph
    from graphkit.plots import plot_flow_sweep

    try:
        cfg = load_config(config)
        hop_values = parse_values(hops)
        windows = parse_values(window)
    except (ConfigError, ValueError) as exc:
        fail(f"sweep flows: {exc}", EXIT_INVALID_INPUT)
    if any(h != int(h) or h < 1 for h in hop_values):
        fail("sweep flows: hop bounds must be whole numbers >= 1", EXIT_INVALID_INPUT)
    if any(w <= 0 for w in windows):
        fail("sweep flows: windows must be > 0 days", EXIT_INVALID_INPUT)
    policies = [p.strip() for p in (policy or cfg.flows.policy).split(",") if p.strip()]
    if not policies:
        fail(
            f"sweep flows: no policy given (known: {', '.join(FLOW_POLICIES)})", EXIT_INVALID_INPUT
        )
    try:  # the config checks each policy, as it does the --policy of `graphkit flows`
        checked = [apply_overrides(cfg, {"flows.policy": p}).flows.policy for p in policies]
    except ConfigError as exc:
        fail(f"sweep flows: {exc}", EXIT_INVALID_INPUT)
    try:
        with progress_bars(quiet) as progress:
            graph, _ = load_graph(input_dir, progress)
            table = sweep_flows(
                graph,
                [int(h) for h in hop_values],
                windows,
                checked,
                cfg.flows,
                progress=progress,
            )
    except InputError as exc:
        invalid_input(input_dir, exc.issues)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "sweep_flows.csv", table.write_csv().encode())
    plot_path = out / ".sweep_flows.tmp.png"
    plot_flow_sweep(table, plot_path)
    plot_path.replace(out / "sweep_flows.png")
    if not quiet:
        shown = table.select(
            "policy",
            "max_hops",
            "window_days",
            "reaching_banned",
            "banned_share",
            "banned_share_3plus",
            "capped_drawdowns",
        )
        print_frame(shown, "table", title="sweep flows")
        console.print(f"wrote {out / 'sweep_flows.csv'} and {out / 'sweep_flows.png'}")
