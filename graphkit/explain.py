"""Explain a customer of a finished run: read the run directory, ask :mod:`gnn.explain` why.

:func:`explain_run` loads the run's snapshot and ``features.parquet``, adds the facts the run
directory holds for the customer (circle, cluster, ring, fund-flow totals, the contagion stress
and the scores) and, when the run trained a model, the features and neighbours that drove the
score (:func:`gnn.explain.explain_saved_model`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gnn.explain import Explanation, explain_saved_model
from gnn.score import MODEL_FILE
from graphkit.graph import RiskGraph
from graphkit.store.embedded import load_snapshot


class ExplainError(LookupError):
    """The run directory or the customer cannot be explained; the message says why."""


def _rows(path: Path, customer_id: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return pl.read_parquet(path).filter(pl.col("customer_id") == customer_id).to_dicts()


def run_facts(run_dir: Path, customer_id: str, graph: RiskGraph) -> dict[str, Any]:
    """Circle, cluster, ring, flow, contagion and score facts of ``customer_id`` in a run."""
    facts: dict[str, Any] = {}
    for name, file in (
        ("scores", "scores.parquet"),
        ("contagion", "contagion.parquet"),
        ("circles", "circles.parquet"),
        ("clusters", "clusters.parquet"),
        ("rings", "rings.parquet"),
    ):
        rows = _rows(run_dir / file, customer_id)
        if rows:
            facts[name] = rows if name in ("circles", "rings") else rows[0]
    flows_path = run_dir / "flows.parquet"
    if flows_path.is_file():
        customer = int(graph.ids("Customer", [customer_id])[0])
        lines = np.flatnonzero(graph.line_customer() == customer)
        draws = graph.edges["drawdown"].filter(pl.col("src").is_in(lines.tolist()))
        flows = pl.read_parquet(flows_path).join(
            draws.select("drawdown_id"), on="drawdown_id", how="semi"
        )
        if flows.height:
            total = flows.get_column("amount").sum()
            banned = flows.get_column("banned_amount").sum()
            facts["flows"] = {
                "drawdowns": flows.height,
                "drawn_amount": total,
                "banned_amount": banned,
                "banned_share": banned / total if total else 0.0,
                "banned_amount_3plus": flows.get_column("banned_amount_3plus").sum(),
                "min_hops_to_banned": flows.get_column("min_hops_to_banned").min(),
            }
    return facts


def explain_run(run_dir: Path | str, customer_id: str, top: int = 10) -> Explanation:
    """Explain ``customer_id`` from a run directory (its snapshot, features and ``model.pt``).

    Raises :class:`ExplainError` when the run has no snapshot or features, or the customer is
    unknown. Without a model (the run skipped training) the explanation has the customer's
    feature values and facts but no effects.
    """
    root = Path(run_dir)
    if not (root / "snapshot").is_dir() or not (root / "features.parquet").is_file():
        raise ExplainError(f"{root}: not a scored run directory (no snapshot or features)")
    graph = load_snapshot(root / "snapshot")
    customer = int(graph.ids("Customer", [customer_id])[0])
    if customer < 0:
        raise ExplainError(f"unknown customer id: {customer_id}")
    frame = pl.read_parquet(root / "features.parquet")
    facts = run_facts(root, customer_id, graph)
    if not (root / MODEL_FILE).is_file():
        manifest = json.loads((root / "manifest.json").read_text())
        names = [c for c in frame.columns if c != "customer_id"]
        values = frame.row(customer, named=True)
        facts["model"] = manifest.get("model", {}).get("reason", "no model in this run")
        return Explanation(
            customer_id=customer_id,
            score=None,
            features=pl.DataFrame(
                {"feature": names, "value": [float(values[n]) for n in names]}
            ).with_columns(pl.lit(None, dtype=pl.Float64).alias("effect")),
            neighbours=pl.DataFrame(
                schema={
                    "customer_id": pl.String,
                    "tie": pl.String,
                    "hops": pl.Int64,
                    "effect": pl.Float64,
                }
            ),
            facts=facts,
        )
    explanation = explain_saved_model(root / MODEL_FILE, graph, frame, customer, top)
    explanation.facts = facts
    return explanation


__all__ = ["ExplainError", "explain_run", "run_facts"]
