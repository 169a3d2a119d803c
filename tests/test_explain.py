"""Explanations name the planted cause: the defaulted borrower behind a guarantor's score; the
alerts' network reasons name the neighbours the explanation ranks top."""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from gnn.data import NODE, edge_index_dict
from gnn.explain import explain_customer
from gnn.score import load_model, sigmoid
from graphkit.alerts import TIER_RANK
from graphkit.config import Config, apply_overrides
from graphkit.explain import ExplainError, explain_run
from graphkit.pipeline import run_pipeline
from tests.scoring_fixtures import one_thread, planted_tables

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

# Red and orange customers whose reasons name their neighbours: fewer than the planted input's
# red and orange customers, so that the cap bites.
CAP = 12


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
            "alerts.explain_neighbours": CAP,
        },
    )
    run_pipeline(
        input_dir, Path(root) / "run", config, stages=["contagion", "gnn", "scores", "alerts"]
    )
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
    # The neighbours' occlusions, batched as disjoint copies, equal one full-graph re-score each.
    keys = graph.keys("Customer")
    edges = edge_index_dict(data)
    for row in explanation.neighbours.head(3).iter_rows(named=True):
        cut = int(graph.ids("Customer", [row["customer_id"]])[0])
        kept = {k: e[:, (e[0] != cut) & (e[1] != cut)] for k, e in edges.items()}
        with torch.no_grad():
            logit = saved["model"](data["customer"].x, kept)[customer].item()
        without = float(sigmoid(np.array([logit - saved["log_weight"]]))[0])
        assert row["effect"] == pytest.approx(full[customer] - without, abs=1e-6)
    assert keys[customer] == explanation.customer_id
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


NAMED = re.compile(r"(C\d+) \(([^,]+), (\d) hops?, \+(\d+\.\d{3})\)")


def _network(reasons: str) -> list[tuple[str, str, int, float]]:
    """The neighbours a reason names: (customer_id, tie, hops, effect), in order."""
    part = re.search(r"network: (.*)$", reasons)
    if part is None:
        return []
    return [(c, t, int(h), float(e)) for c, t, h, e in NAMED.findall(part.group(1))]


def test_network_reasons_name_the_top_neighbours(scored):
    """The neighbour a reason names first is the one the explanation of the saved model ranks
    top, with its tie and hops; cutting it off the whole graph lowers the customer's score by
    the effect the reason gives (an independent full-graph re-score)."""
    _, run = scored
    customers = pl.read_parquet(run / "customer_alerts.parquet")
    named = customers.filter(pl.col("reasons").str.contains("network: "))
    assert named.height >= CAP // 2
    saved = load_model(run / "model.pt")
    from gnn.data import build_data
    from gnn.features import CustomerFeatures
    from gnn.prior import add_prior_column
    from graphkit.store.embedded import load_snapshot

    graph = load_snapshot(run / "snapshot")
    frame = pl.read_parquet(run / "features.parquet")
    features = CustomerFeatures(frame, saved["feature_names"], saved["snapshot"])
    data, _ = build_data(graph, features, saved["standardiser"])
    add_prior_column(data, saved["prior"].column(data[NODE].x.numpy()))
    model = saved["model"].eval()
    edges = edge_index_dict(data)

    def score(customer: int, cut: int | None = None) -> float:
        kept = edges
        if cut is not None:
            kept = {k: e[:, (e[0] != cut) & (e[1] != cut)] for k, e in edges.items()}
        with torch.no_grad():
            logit = model(data[NODE].x, kept)[customer].item()
        return float(sigmoid(np.array([logit - saved["log_weight"]]))[0])

    for row in named.iter_rows(named=True):
        listed = _network(row["reasons"])
        assert 1 <= len(listed) <= 2, row["reasons"]
        neighbour, tie, hops, effect = listed[0]
        explanation = explain_run(run, row["customer_id"], top=5).neighbours
        top_effect = explanation.get_column("effect")[0]
        mine = explanation.filter(pl.col("customer_id") == neighbour).row(0, named=True)
        assert mine["effect"] >= top_effect - 1e-6, (row["customer_id"], explanation)
        assert (mine["tie"], mine["hops"]) == (tie, hops)
        customer, cut = (int(i) for i in graph.ids("Customer", [row["customer_id"], neighbour]))
        drop = score(customer) - score(customer, cut)
        assert drop > 0
        assert drop == pytest.approx(effect, abs=6e-4)
        # Hops as the graph says: a guarantee, shareholding, device or payment tie at one hop.
        direct = any(((e[0] == cut) & (e[1] == customer)).any() for e in edges.values())
        assert direct == (hops == 1)


def test_network_reasons_keep_the_cap_most_severe_first(scored):
    _, run = scored
    customers = pl.read_parquet(run / "customer_alerts.parquet")
    severe = customers.filter(pl.col("tier").is_in(["red", "orange"]))
    assert severe.height > CAP, "the cap must bite on this input"
    named = customers.filter(pl.col("reasons").str.contains("network: "))
    assert named.height <= CAP
    # The most severe CAP customers: red before orange, then by risk score (then id).
    first = (
        severe.with_columns(pl.col("tier").replace_strict(TIER_RANK).alias("rank"))
        .sort(["rank", "risk_score", "customer_id"], descending=[True, True, False])
        .head(CAP)
    )
    assert set(named.get_column("customer_id")) <= set(first.get_column("customer_id"))
    manifest = json.loads((run / "manifest.json").read_text())
    info = manifest["alerts"]["network_reasons"]
    assert info["cap"] == CAP and info["explained"] == CAP and info["named"] == named.height
    rows = pl.read_csv(run / "alerts.csv")
    in_csv = rows.filter(pl.col("reasons").str.contains("network: "))
    assert set(in_csv.get_column("customer_id")) == set(named.get_column("customer_id"))


def test_no_model_no_network_reasons(scored, tmp_path):
    """Without a trained model the reasons are those of a run that explains nothing."""
    _, run = scored
    outputs = []
    for cap in (CAP, 0):
        config = apply_overrides(Config(), {"gnn.enabled": False, "alerts.explain_neighbours": cap})
        out = tmp_path / f"cap{cap}"
        stages = ["contagion", "gnn", "scores", "alerts"]
        run_pipeline(run.parent / "input", out, config, stages=stages)
        outputs.append(pl.read_parquet(out / "customer_alerts.parquet"))
        assert "network_reasons" not in json.loads((out / "manifest.json").read_text())["alerts"]
    assert not outputs[0].get_column("reasons").str.contains("network: ").any()
    assert outputs[0].equals(outputs[1])
