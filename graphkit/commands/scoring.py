"""Scoring commands: stress-test defaults, score an input, explain a customer's score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphkit.commands.render import (
    EXIT_INVALID_INPUT,
    ConfigFile,
    InputDir,
    console,
    fail,
    frame_table,
    key_values,
    print_frame,
    progress_bars,
)
from graphkit.config import Config, ConfigError, load_config


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("score")(score)
    app.command("explain")(explain)


def _config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)


def simulate(
    input_dir: InputDir,
    default: Annotated[
        list[str], typer.Option("--default", "-d", help="A customer that defaults (repeatable).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write every hit customer.")] = Path(
        "simulation.parquet"
    ),
    top: Annotated[int, typer.Option(help="Rows shown.")] = 20,
    config: ConfigFile = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """If these customers default, who is hit and by how much (DebtRank + personalised PageRank)."""
    from graphkit.analytics.contagion import UnknownCustomersError, simulate_defaults
    from graphkit.pipeline import load_graph
    from loaders.sources import InputError

    cfg = _config(config)
    try:
        with progress_bars(format != "table") as progress:
            graph, _ = load_graph(input_dir, progress)
    except InputError as exc:
        fail(f"{input_dir}: invalid input ({len(exc.issues)} error(s)); run graphkit validate")
    try:
        result = simulate_defaults(graph, default, cfg)
    except UnknownCustomersError as exc:
        fail(f"unknown customer id(s): {', '.join(exc.unknown)}", EXIT_INVALID_INPUT)
    result.hits.write_parquet(out)
    print_frame(
        result.hits.head(top),
        format,
        title=f"if {', '.join(result.seeds)} default: {result.hits.height} customers hit, "
        f"DebtRank {result.debtrank:.4f}",
    )
    if format == "table":
        console.print(f"all {result.hits.height} hit customers: {out}")


def score(
    input_dir: InputDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to (re)create.")],
    config: ConfigFile = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run the stages up to scoring (analytics, contagion, GNN, scores) and publish OUT."""
    from graphkit.pipeline import run_pipeline, stages_until
    from loaders.sources import InputError

    cfg = _config(config)
    wanted = [name for name, _ in stages_until("scores")]
    try:
        with progress_bars(quiet) as progress:
            summary = run_pipeline(input_dir, out, cfg, progress=progress, stages=wanted)
    except InputError as exc:
        fail(f"{input_dir}: invalid input ({len(exc.issues)} error(s)); run graphkit validate")
    if quiet:
        return
    manifest = summary.manifest
    evaluation = manifest.get("model_eval") or {}
    if evaluation.get("models"):
        rows = [
            (name, f"ROC-AUC {m['roc_auc']:.4f}   PR-AUC {m['pr_auc']:.4f}")
            for name, m in evaluation["models"].items()
        ]
        rows.append(("GNN beats best baseline", evaluation["gnn_beats_best_baseline"]))
        for name, m in evaluation.get("scores", {}).get("columns", {}).items():
            rows.append(
                (
                    name,
                    f"ROC-AUC {m['roc_auc']:.4f}   PR-AUC {m['pr_auc']:.4f}   "
                    f"Brier {m['brier']:.4f}   ECE {m['ece']:.4f}",
                )
            )
        console.print(key_values(rows, title="held-out test customers"))
    else:
        console.print(f"no GNN: {manifest.get('model', {}).get('reason', 'not run')}")
    console.print(f"scores: {summary.run_dir / 'scores.parquet'}  ({manifest['risk_score']})")


def explain(
    customer_id: Annotated[str, typer.Argument(help="The customer to explain.")],
    run: Annotated[Path, typer.Option("--run", help="A run directory (graphkit run/score).")],
    top: Annotated[int, typer.Option(help="Features and neighbours shown.")] = 10,
) -> None:
    """Which features and neighbours drove a customer's score, and its network facts."""
    from graphkit.explain import ExplainError, explain_run

    try:
        result = explain_run(run, customer_id, top)
    except ExplainError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    score_text = "no model" if result.score is None else f"{result.score:.4f}"
    console.print(f"[bold]{customer_id}[/]: gnn score {score_text}")
    console.print(frame_table(result.features, title="features (effect = score drop at mean)"))
    if result.neighbours.height:
        console.print(frame_table(result.neighbours, title="neighbours (effect = drop if cut)"))
    pairs = []
    for group, value in result.facts.items():
        for row in value if isinstance(value, list) else [value]:
            if isinstance(row, dict):
                pairs += [(f"{group}.{k}", v) for k, v in row.items() if k != "customer_id"]
            else:
                pairs.append((group, row))
    console.print(key_values(pairs, title="facts"))
