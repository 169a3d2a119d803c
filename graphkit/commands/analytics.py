"""Network analytics commands: one stage at a time (circles, clusters, rings) and sweeps.

``sweep_app`` is the ``graphkit sweep`` group; other analytics modules add their sweeps to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import polars as pl
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
    print_frame,
    progress_bars,
)
from graphkit.config import CLUSTER_WEIGHT_KEYS, Config, ConfigError, load_config
from loaders.sources import InputError

sweep_app = typer.Typer(
    name="sweep",
    help="Parameter sweeps for analysts: run a stage over a grid and compare the results.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("circles")(circles)
    app.command("clusters")(clusters)
    app.command("rings")(rings)
    app.add_typer(sweep_app, name="sweep")


def _config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)


def _run_stage(
    stage: str, input_dir: Path, out: Path, config: Path | None, quiet: bool, preview: Preview
) -> None:
    from graphkit.pipeline import run_pipeline

    cfg = _config(config)
    try:
        with progress_bars(quiet) as progress:
            summary = run_pipeline(input_dir, out, cfg, progress=progress, stages=[stage])
    except InputError as exc:
        invalid_input(input_dir, exc.issues)
    if quiet:
        return
    counts = summary.manifest["counts"]
    rows = [("run directory", str(summary.run_dir))]
    rows += [(f"output: {k}", v) for k, v in counts["outputs"].items()]
    rows += [(k, v) for k, v in counts.items() if k not in ("graph", "outputs")]
    console.print(key_values(rows, title=f"graphkit {stage}"))
    file, title, shape = preview
    print_frame(shape(pl.read_parquet(summary.run_dir / file)).head(10), "table", title=title)


Preview = tuple[str, str, Callable[[pl.DataFrame], pl.DataFrame]]


def _groups(key: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Members per group, largest first, with the first few member ids."""

    def shape(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.group_by(key)
            .agg(
                pl.len().alias("size"),
                pl.col("customer_id").sort().head(5).str.join(", ").alias("first members"),
            )
            .sort(["size", key], descending=[True, False])
        )

    return shape


def _largest_circles(frame: pl.DataFrame) -> pl.DataFrame:
    scalars = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
    return frame.select(scalars).sort(["size", "circle_id"], descending=[True, False])


def circles(
    input_dir: InputDir, out: OutDir, config: ConfigFile = None, quiet: Quiet = False
) -> None:
    """Guarantee circles (担保圈): circles.parquet and circle_summary.parquet in OUT."""
    preview = ("circle_summary.parquet", "largest circles", _largest_circles)
    _run_stage("circles", input_dir, out, config, quiet, preview)


def clusters(
    input_dir: InputDir, out: OutDir, config: ConfigFile = None, quiet: Quiet = False
) -> None:
    """Related-enterprise clusters (关联企业集群, Leiden): clusters.parquet in OUT."""
    preview = ("clusters.parquet", "largest clusters", _groups("cluster_id"))
    _run_stage("clusters", input_dir, out, config, quiet, preview)


def rings(
    input_dir: InputDir, out: OutDir, config: ConfigFile = None, quiet: Quiet = False
) -> None:
    """Device-sharing rings: rings.parquet and ring_hubs.parquet in OUT."""
    preview = ("rings.parquet", "largest rings", _groups("ring_id"))
    _run_stage("rings", input_dir, out, config, quiet, preview)


@sweep_app.command("clusters")
def sweep_clusters_command(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the sweep files.")],
    resolution: Annotated[
        str, typer.Option(help="Resolutions: a grid start:stop:step or a list a,b,c.")
    ] = "0.2:2.0:0.2",
    weights: Annotated[
        list[str] | None,
        typer.Option(
            help="Layer weights, e.g. guarantee=1,device=0.5 (repeatable; a value may be a grid "
            "0:1:0.5 or a list 0.5|1, expanded as a product). Unnamed layers keep the config."
        ),
    ] = None,
    config: ConfigFile = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for grid points.")] = 2,
    quiet: Quiet = False,
) -> None:
    """Run Leiden over a grid of resolutions and layer weights; write CSV and PNG in OUT."""
    from graphkit.analytics.sweeps import sweep_clusters
    from graphkit.atomic import atomic_write_bytes
    from graphkit.commands.grid import expand_product, parse_assignments, parse_values
    from graphkit.pipeline import load_graph
    from graphkit.plots import plot_cluster_sweep

    cfg = _config(config)
    try:
        resolutions = parse_values(resolution)
        weight_sets = [
            combo
            for spec in weights or []
            for combo in expand_product(
                cfg.clusters.weights, parse_assignments(spec, CLUSTER_WEIGHT_KEYS)
            )
        ]
    except ValueError as exc:
        fail(f"sweep clusters: {exc}", EXIT_INVALID_INPUT)
    if any(r <= 0 for r in resolutions):
        fail("sweep clusters: resolutions must be > 0", EXIT_INVALID_INPUT)
    if any(w < 0 for combo in weight_sets for w in combo.values()):
        fail("sweep clusters: weights must be >= 0", EXIT_INVALID_INPUT)
    truth_path = input_dir / "_truth" / "groups.parquet"
    truth = pl.read_parquet(truth_path) if truth_path.exists() else None
    try:
        with progress_bars(quiet) as progress:
            graph, _ = load_graph(input_dir, progress)
            table = sweep_clusters(
                graph, cfg, resolutions, weight_sets or None, truth, jobs, progress
            )
    except InputError as exc:
        invalid_input(input_dir, exc.issues)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "sweep_clusters.csv", table.write_csv().encode())
    plot_path = out / ".sweep_clusters.tmp.png"
    plot_cluster_sweep(table, plot_path)
    plot_path.replace(out / "sweep_clusters.png")
    if not quiet:
        title = "sweep clusters" + (" (truth: _truth/groups.parquet)" if truth is not None else "")
        print_frame(table.with_columns(pl.col(pl.Float64).round(3)), "table", title=title)
        console.print(f"wrote {out / 'sweep_clusters.csv'} and {out / 'sweep_clusters.png'}")
