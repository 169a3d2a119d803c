"""Explanations name the planted cause: the defaulted borrower behind a guarantor's score."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from gnn.explain import explain_customer
from graphkit.config import Config, apply_overrides
from graphkit.explain import ExplainError, explain_run
from graphkit.pipeline import run_pipeline
from tests.scoring_fixtures import one_thread, planted_tables

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@cache
def _scored_run(root: str):
    """A planted input written as Parquet, scored by the pipeline's scoring stages."""
    from pathlib import Path

    planted = planted_tables(1200, seed=2)
    input_dir = Path(root) / "input"
    input_dir.mkdir()
    for name, frame in planted.tables.items():
        frame.write_parquet(input_dir / f"{name}.parquet")
    # The prior is forced on (this input is below its default minimum of defaults) so the
    # explanations are tested through it.
    config = apply_overrides(
        Config(),
        {
            "gnn.epochs": 60,
            "gnn.hidden": 16,
            "gnn.patience": 15,
            "gnn.tree_prior_min_positives": 0,
        },
    )
    run_pipeline(input_dir, Path(root) / "run", config, stages=["contagion", "gnn", "scores"])
    return planted, Path(root) / "run"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return _scored_run(str(tmp_path_factory.mktemp("explain")))
    finally:
        torch.set_num_threads(threads)


def test_guarantee_contagion_names_the_defaulted_borrower(scored):
    planted, run = scored
    scores = pl.read_parquet(run / "scores.parquet")
    victims = (
        planted.truth.filter(pl.col("cause") == "guarantee")
        .join(scores, on="customer_id")
        .sort("gnn_score", descending=True)
        .head(8)
    )
    named = 0
    for row in victims.iter_rows(named=True):
        explanation = explain_run(run, row["customer_id"], top=3)
        top = explanation.neighbours.filter(pl.col("customer_id") == row["via"])
        if top.height and "guaranteed borrower" in top.get_column("tie")[0]:
            named += 1
    assert named >= 6, f"only {named} of {victims.height} name their defaulted borrower"


def test_burst_customers_have_the_burst_among_top_features(scored):
    _, run = scored
    features = pl.read_parquet(run / "features.parquet")
    bursty = features.filter(pl.col("busiest_day_drawdowns") >= 6).get_column("customer_id")
    hits = 0
    for customer in bursty.head(8):
        top = explain_run(run, customer, top=5).features.get_column("feature").to_list()
        hits += any(name.startswith(("busiest_day", "drawdowns_")) for name in top)
    assert hits >= 6


def test_effects_are_exact_occlusions(scored):
    """A feature's effect is the score drop when that feature alone is set to its mean, through
    both the tree prior (recomputed for the occluded row) and the GNN."""
    from gnn.data import build_data
    from gnn.features import CustomerFeatures
    from gnn.prior import add_prior_column
    from gnn.score import load_model, score_customers
    from graphkit.store.embedded import load_snapshot

    _, run = scored
    saved = load_model(run / "model.pt")
    graph = load_snapshot(run / "snapshot")
    frame = pl.read_parquet(run / "features.parquet")
    features = CustomerFeatures(frame, saved["feature_names"], saved["snapshot"])
    data, _ = build_data(graph, features, saved["standardiser"])
    prior = saved["prior"]
    assert prior is not None, "the default config trains with a tree prior"
    add_prior_column(data, prior.column(data["customer"].x.numpy()))
    scores = pl.read_parquet(run / "scores.parquet").get_column("gnn_score").to_numpy()
    customer = 17
    explanation = explain_customer(
        saved["model"],
        data,
        customer,
        saved["feature_names"],
        features.matrix()[customer],
        graph.keys("Customer"),
        saved["log_weight"],
        prior=prior,
    )
    full = score_customers(saved["model"], data, saved["log_weight"])
    np.testing.assert_allclose(full, scores, atol=1e-6)
    assert explanation.score == pytest.approx(full[customer], abs=1e-6)
    first = explanation.features.row(0, named=True)
    occluded = data["customer"].x.clone()
    occluded[customer, saved["feature_names"].index(first["feature"])] = 0.0
    n_features = len(saved["feature_names"])
    occluded[customer, -1] = float(
        prior.column(occluded[customer, :n_features].numpy()[None, :], np.array([customer]))[0]
    )
    data["customer"].x = occluded
    dropped = score_customers(saved["model"], data, saved["log_weight"])[customer]
    assert first["effect"] == pytest.approx(full[customer] - dropped, abs=1e-6)
    assert np.isfinite(explanation.neighbours.get_column("effect").to_numpy()).all()


def test_explain_command_and_errors(scored):
    planted, run = scored
    customer = planted.truth.filter(pl.col("cause") == "guarantee").get_column("customer_id")[0]
    result = CliRunner().invoke(app, ["explain", customer, "--run", str(run)])
    assert result.exit_code == 0, result.output
    assert "neighbours" in result.output and "scores.risk_score" in result.output
    with pytest.raises(ExplainError, match="unknown customer"):
        explain_run(run, "nobody")
    missing = CliRunner().invoke(app, ["explain", "nobody", "--run", str(run)])
    assert missing.exit_code == 2
