"""GNN: leak-free split, exact sampled inference, mini-batch vs full-batch, determinism, stages."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from gnn.data import RELATIONS, NeighbourSampler, build_data, edge_type
from gnn.features import customer_features
from gnn.models import RelationalSAGE
from gnn.prior import fit_tree_prior, load_prior, save_prior
from gnn.train import (
    TrainSettings,
    predict_logits,
    ranking_metrics,
    stratified_split,
    train_gnn,
)
from graphkit.config import Config, apply_overrides
from graphkit.graph import RiskGraph
from graphkit.pipeline import RunContext, contagion_stage, gnn_stage, scores_stage
from graphkit.scoring import tier_for
from tests.scoring_fixtures import one_thread, planted_tables

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

FAST = TrainSettings(epochs=60, patience=15, hidden=16, seed=3)


@cache
def _planted(customers: int = 1200, seed: int = 0):
    planted = planted_tables(customers, seed)
    graph = RiskGraph.from_tables(planted.tables)
    features = customer_features(graph)
    data, _ = build_data(graph, features)
    return planted, graph, features, data


def test_split_is_stratified_disjoint_and_labelled_only():
    labels = np.array([1] * 30 + [0] * 70 + [-1] * 50)
    split = stratified_split(labels, seed=5)
    parts = [split.train, split.val, split.test]
    assert sum(len(p) for p in parts) == 100
    assert len(np.unique(np.concatenate(parts))) == 100
    assert (labels[np.concatenate(parts)] >= 0).all()
    assert [int(labels[p].sum()) for p in parts] == [18, 6, 6]
    again = stratified_split(labels, seed=5)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parts, [again.train, again.val, again.test], strict=True)
    )


def test_edges_follow_the_message_direction():
    _, graph, _, data = _planted()
    g_src, g_dst = graph.endpoints("guarantees")
    guarantor_of = {tuple(p) for p in data[edge_type("guarantor_of")].edge_index.T.tolist()}
    borrower_of = {tuple(p) for p in data[edge_type("borrower_of")].edge_index.T.tolist()}
    assert guarantor_of == {(int(a), int(b)) for a, b in zip(g_src, g_dst, strict=True) if a != b}
    assert borrower_of == {(b, a) for a, b in guarantor_of}
    device = data[edge_type("shares_device")].edge_index
    assert device.shape[1] > 0
    assert {tuple(p) for p in device.T.tolist()} == {tuple(p) for p in device.flip(0).T.tolist()}


def test_sampled_inference_with_full_fanout_equals_full_batch():
    _, _, features, data = _planted()
    torch.manual_seed(0)
    model = RelationalSAGE(len(features.names), hidden=8).eval()
    full = predict_logits(model, data)
    sampled = predict_logits(model, data, batch_size=97, fanouts=(10_000, 10_000))
    np.testing.assert_allclose(sampled, full, rtol=1e-4, atol=1e-5)


def test_sampler_respects_fanout():
    _, _, _, data = _planted()
    sampler = NeighbourSampler(data, [2, 1], batch_size=50, seed=1)
    batch = sampler.sample(np.arange(50))
    assert np.array_equal(batch.node_ids[:50], np.arange(50))
    for relation in RELATIONS:
        _, dst = batch.edges[edge_type(relation)].numpy()
        seeds_in = np.bincount(dst[dst < 50], minlength=50)
        assert seeds_in.max(initial=0) <= 2 + 1  # hop-1 (<= 2) plus hop-2 (<= 1) draws


def test_gnn_beats_graphless_baselines_on_planted_contagion():
    """1,200 customers have too few defaults for the tree prior (gnn.tree_prior_min_positives),
    so this is the GNN alone; bench/scoring.py shows the prior's gain at 100k customers."""
    from gnn.fit import model_evaluation

    _, graph, _, data = _planted()
    labels = graph.defaulted()
    split = stratified_split(labels, 7)
    assert (labels[split.train] == 1).sum() < Config().gnn.tree_prior_min_positives
    trained = train_gnn(data, split, FAST)
    evaluation = model_evaluation(trained, data, data["customer"].x.numpy(), labels, split, 7)
    assert evaluation["gnn_beats_best_baseline"], evaluation["models"]


def test_tree_prior_of_a_training_customer_ignores_its_own_label():
    """Out of fold: flipping the labels of one fold leaves that fold's prior exactly as it was,
    while the other folds' priors move (their models saw the flipped labels)."""
    _, graph, _, data = _planted()
    x = data["customer"].x.numpy()
    labels = graph.defaulted()
    split = stratified_split(labels, 7)
    prior, column = fit_tree_prior(x, labels, split.train, seed=7, folds=3)
    np.testing.assert_array_equal(column, prior.column(x))
    fold0 = np.flatnonzero(prior.fold_of == 0)
    assert set(fold0) <= set(split.train) and (prior.fold_of[split.test] == -1).all()
    flipped = labels.copy()
    flipped[fold0] = 1 - flipped[fold0]
    again, _ = fit_tree_prior(x, flipped, split.train, seed=7, folds=3)
    everyone = np.arange(len(x))
    before, after = prior.logits(x, everyone), again.logits(x, everyone)
    np.testing.assert_array_equal(before[fold0], after[fold0])
    others = np.flatnonzero(prior.fold_of > 0)
    assert not np.allclose(before[others], after[others])


def test_saved_tree_prior_is_checked_against_its_digest(tmp_path):
    _, graph, _, data = _planted()
    x = data["customer"].x.numpy()
    labels = graph.defaulted()
    prior, _ = fit_tree_prior(x, labels, stratified_split(labels, 7).train, seed=7, folds=2)
    digest = save_prior(tmp_path / "prior.joblib", prior)
    loaded = load_prior(tmp_path / "prior.joblib", digest)
    everyone = np.arange(len(x))
    np.testing.assert_array_equal(loaded.logits(x, everyone), prior.logits(x, everyone))
    with pytest.raises(ValueError, match="sha256"):
        load_prior(tmp_path / "prior.joblib", "0" * 64)


def test_mini_batch_training_matches_full_batch_quality():
    _, graph, _, data = _planted()
    labels = graph.defaulted()
    split = stratified_split(labels, 7)
    full = train_gnn(data, split, FAST)
    mini = train_gnn(
        data, split, TrainSettings(**{**FAST.__dict__, "batch_size": 256, "fanouts": (8, 8)})
    )
    test_y = labels[split.test]
    auc_full = ranking_metrics(test_y, predict_logits(full.model, data, split.test))["roc_auc"]
    auc_mini = ranking_metrics(test_y, predict_logits(mini.model, data, split.test, 256, (8, 8)))[
        "roc_auc"
    ]
    assert auc_mini > 0.65
    assert abs(auc_full - auc_mini) < 0.05, (auc_full, auc_mini)


def test_training_is_deterministic_for_a_seed():
    _, graph, _, data = _planted()
    split = stratified_split(graph.defaulted(), 7)
    settings = TrainSettings(**{**FAST.__dict__, "epochs": 15})
    first = predict_logits(train_gnn(data, split, settings).model, data)
    second = predict_logits(train_gnn(data, split, settings).model, data)
    assert np.array_equal(first, second)
    other = predict_logits(
        train_gnn(data, split, TrainSettings(**{**settings.__dict__, "seed": 4})).model, data
    )
    assert not np.array_equal(first, other)


def _context(tmp_path: Path, tables: dict, **overrides) -> RunContext:
    config = apply_overrides(Config(), {"gnn.epochs": 40, "gnn.hidden": 16, **overrides})
    return RunContext(graph=RiskGraph.from_tables(tables), config=config, out_dir=tmp_path)


def test_stages_write_scores_in_range_model_and_evaluation(tmp_path):
    planted, *_ = _planted()
    ctx = _context(tmp_path, planted.tables)
    for stage in (contagion_stage, gnn_stage, scores_stage):
        stage(ctx)
    scores = ctx.outputs["scores.parquet"]
    assert scores.columns == [
        "customer_id",
        "contagion_score",
        "gnn_score",
        "risk_score",
        "tier",
        "rule_score",
    ]
    assert scores.height == ctx.graph.n("Customer")
    for col in ("contagion_score", "gnn_score", "rule_score", "risk_score"):
        values = scores.get_column(col)
        assert values.null_count() == 0 and values.min() >= 0 and values.max() <= 1
    assert (
        scores.get_column("tier").to_list()
        == tier_for(scores.get_column("risk_score"), ctx.config).to_list()
    )
    model = ctx.manifest_extra["model"]
    assert model["sha256"] == hashlib.sha256((tmp_path / "model.pt").read_bytes()).hexdigest()
    evaluation = json.loads((tmp_path / "model_eval.json").read_text())
    assert set(evaluation["models"]) == {"gnn", "logistic_regression", "gradient_boosting"}
    assert evaluation["calibration"]["calibrated"] is True
    assert evaluation == json.loads(json.dumps(ctx.manifest_extra["model_eval"]))
    # Defaulted customers score higher than the rest, on average.
    defaulted = ctx.graph.defaulted() == 1
    risk = scores.get_column("gnn_score").to_numpy()
    assert risk[defaulted].mean() > risk[~defaulted].mean()


def test_large_graphs_train_on_whole_neighbourhood_batches_and_score_exactly(tmp_path):
    """Above gnn.full_batch_max_customers the stage trains on mini-batches that carry each
    seed's whole two-hop neighbourhood, so the saved model's full-graph scores are the run's."""
    from gnn.prior import add_prior_column
    from gnn.score import load_model, score_customers

    planted, graph, features, _ = _planted()
    ctx = _context(
        tmp_path,
        planted.tables,
        **{
            "gnn.full_batch_max_customers": 100,
            "gnn.batch_size": 256,
            "gnn.tree_prior_min_positives": 0,
        },
    )
    for stage in (contagion_stage, gnn_stage, scores_stage):
        stage(ctx)
    assert ctx.manifest_extra["model"]["batch_size"] == 256
    assert ctx.manifest_extra["model_eval"]["models"]["gnn"]["roc_auc"] > 0.65
    saved = load_model(tmp_path / "model.pt")
    data, _ = build_data(graph, features, saved["standardiser"])
    add_prior_column(data, saved["prior"].column(data["customer"].x.numpy()))
    np.testing.assert_allclose(
        score_customers(saved["model"], data, saved["log_weight"]),
        ctx.outputs["scores.parquet"].get_column("gnn_score").to_numpy(),
        atol=1e-6,
    )


def test_too_few_labels_skip_training_and_fall_back_to_label_free_scores(tmp_path):
    planted, *_ = _planted()
    labels = planted.tables["labels"]
    few = labels.filter(pl.col("defaulted")).head(5).vstack(labels.filter(~pl.col("defaulted")))
    ctx = _context(tmp_path, {**planted.tables, "labels": few})
    for stage in (contagion_stage, gnn_stage, scores_stage):
        stage(ctx)
    assert ctx.manifest_extra["model"]["trained"] is False
    assert "5 defaulted" in ctx.manifest_extra["model"]["reason"]
    assert not (tmp_path / "model.pt").exists()
    scores = ctx.outputs["scores.parquet"]
    assert scores.get_column("gnn_score").null_count() == scores.height
    assert "rule_score" in ctx.manifest_extra["risk_score"]
    # A burst customer (six drawdowns in a day) is lifted to orange by the rules.
    bursty = ctx.results.features.frame.filter(pl.col("busiest_day_30d") >= 5)
    tiers = scores.join(bursty.select("customer_id"), on="customer_id").get_column("tier")
    assert bursty.height > 0 and set(tiers.to_list()) <= {"orange", "red"}


def test_tier_for_thresholds():
    cfg = Config()
    assert [tier_for(s, cfg) for s in (0.0, 0.3, 0.59, 0.6, 0.85, 1.0)] == [
        "green",
        "yellow",
        "yellow",
        "orange",
        "red",
        "red",
    ]
    series = tier_for(pl.Series("risk", [0.1, 0.7]), cfg)
    assert series.to_list() == ["green", "orange"]


def test_time_budget_stops_training_and_keeps_the_best_epoch():
    _, graph, _, data = _planted()
    split = stratified_split(graph.defaulted(), 7)
    unbounded = train_gnn(data, split, TrainSettings(**{**FAST.__dict__, "epochs": 6}))
    assert unbounded.stopped_by in ("epochs", "patience") and unbounded.epochs_run > 1
    bounded = train_gnn(
        data, split, TrainSettings(**{**FAST.__dict__, "epochs": 6, "max_seconds": 0.0})
    )
    assert bounded.stopped_by == "time budget"
    assert bounded.epochs_run == 1 and bounded.best_epoch == 1
