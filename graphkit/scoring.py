"""Scoring stages of the run: contagion, gnn, scores; and the one tier function.

- ``contagion``: label-free stress from the customers labelled defaulted
  (:mod:`graphkit.analytics.contagion`); ``contagion.parquet`` and ``results["contagion"]``.
- ``gnn``: features as of the snapshot, the relational GNN (reading the out-of-fold tree prior of
  :mod:`gnn.prior` when the training split has ``gnn.tree_prior_min_positives`` defaults) and
  the two no-graph baselines on one leak-free split; ``model.pt`` and ``tree_prior.joblib``
  (sha256s in the manifest), ``model_eval.json``, ``features.parquet``, ``results["gnn"]``.
  Skipped, with the reason in the manifest, when ``gnn.enabled`` is false or there are fewer
  than :data:`MIN_CLASS` defaulted (or non-defaulted) labelled customers: ``gnn_score`` is then
  null.
- ``scores``: ``scores.parquet`` (customer_id, contagion_score, gnn_score, risk_score, tier) and
  ``results["scores"]``. With a GNN score, ``risk_score = max(gnn_score, contagion_score)`` (the
  stronger signal wins: the model rarely sees a fresh stress test coming, the stress test knows
  nothing of a customer's own behaviour). Without one (no labels, or too few),
  ``risk_score = max(contagion_score, rule_score)`` from label-free signals only
  (:func:`rule_scores`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from graphkit.config import AlertsConfig, Config

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

    from gnn.features import CustomerFeatures
    from gnn.train import Split, TrainedModel, TrainSettings
    from graphkit.pipeline import RunContext

MIN_CLASS = 20  # fewer labelled defaults (or non-defaults) than this: no GNN training


def tier_for(risk_score: float | pl.Series | pl.Expr, cfg: Config | AlertsConfig) -> Any:
    """Tier (green, yellow, orange, red) of a score, a Series of scores or a score expression.

    ``risk >= red_score`` is red, ``>= orange_score`` orange, ``>= yellow_score`` yellow, else
    green (thresholds from ``[alerts]``). A null score is green.
    """
    alerts = cfg.alerts if isinstance(cfg, Config) else cfg
    if isinstance(risk_score, int | float):
        if risk_score >= alerts.red_score:
            return "red"
        if risk_score >= alerts.orange_score:
            return "orange"
        return "yellow" if risk_score >= alerts.yellow_score else "green"
    expr = risk_score if isinstance(risk_score, pl.Expr) else pl.lit(risk_score)
    tier = (
        pl.when(expr >= alerts.red_score)
        .then(pl.lit("red"))
        .when(expr >= alerts.orange_score)
        .then(pl.lit("orange"))
        .when(expr >= alerts.yellow_score)
        .then(pl.lit("yellow"))
        .otherwise(pl.lit("green"))
    )
    if isinstance(risk_score, pl.Series):
        return pl.select(tier.alias(risk_score.name or "tier")).to_series()
    return tier


def rule_scores(features: pl.DataFrame, cfg: Config) -> pl.Series:
    """Label-free rule score per customer (features frame of :mod:`gnn.features`).

    Each rule hit lifts the score to a tier threshold: banned share >= ``alerts.banned_share``,
    ``alerts.drawdowns_per_day`` or more drawdowns on one day in the last 30 days, or an
    instalment 30+ days past due: orange; 90+ days past due: red; member of a guarantee circle
    or a device ring: yellow. The score is the highest lift (0 with no hit).
    """
    alerts = cfg.alerts

    def column(name: str) -> pl.Expr:
        return pl.col(name) if name in features.columns else pl.lit(0.0)

    orange = (
        (column("banned_share") >= alerts.banned_share)
        | (column("busiest_day_30d") >= alerts.drawdowns_per_day)
        | (column("dpd_max") >= 30)
    )
    score = (
        pl.when(column("dpd_max") >= 90)
        .then(alerts.red_score)
        .when(orange)
        .then(alerts.orange_score)
        .when((column("in_circle") > 0) | (column("in_ring") > 0))
        .then(alerts.yellow_score)
        .otherwise(0.0)
    )
    return features.select(score.cast(pl.Float64).alias("rule_score")).to_series()


def _features(ctx: RunContext) -> CustomerFeatures:
    from gnn.features import customer_features, snapshot_time

    if "features" not in ctx.results:
        cfg = ctx.config
        ctx.results["features"] = customer_features(
            ctx.graph,
            ctx.results,
            snapshot=snapshot_time(ctx.graph, cfg.gnn.snapshot),
            outflow_cap_hours=cfg.flows.window_days * 24.0,
        )
    return ctx.results["features"]


def contagion_stage(ctx: RunContext) -> None:
    """Stage ``contagion``: stress from the labelled defaults (none: every score 0)."""
    from graphkit.analytics.contagion import contagion_frame

    seeds = np.flatnonzero(ctx.graph.defaulted() == 1)
    frame, stress = contagion_frame(ctx.graph, seeds, ctx.config)
    ctx.outputs["contagion.parquet"] = frame
    ctx.results["contagion"] = frame.select(
        "customer_id", "contagion_score", "debtrank", "pagerank"
    )
    hit = int(((frame["contagion_score"] > 0) & ~frame["seed"]).sum())
    ctx.counts["contagion_seeds"] = len(seeds)
    ctx.counts["contagion_hit"] = hit
    ctx.manifest_extra["contagion"] = {"seeds": len(seeds), "hit": hit, "debtrank": stress.debtrank}


def gnn_stage(ctx: RunContext) -> None:
    """Stage ``gnn``: train, compare with the baselines, save, score; or skip, saying why."""
    from gnn.data import build_data
    from gnn.prior import PRIOR_FILE, add_prior_column, fit_tree_prior, save_prior
    from gnn.score import class_log_weight, save_model, score_customers
    from gnn.train import stratified_split, train_gnn

    cfg = ctx.config
    features = _features(ctx)
    ctx.outputs["features.parquet"] = features.frame
    labels = ctx.graph.defaulted()
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    reason = None
    if not cfg.gnn.enabled:
        reason = "gnn.enabled is false"
    elif min(positives, negatives) < MIN_CLASS:
        reason = (
            f"too few labels to train: {positives} defaulted and {negatives} non-defaulted "
            f"labelled customers (need {MIN_CLASS} of each)"
        )
    if reason is not None:
        ctx.manifest_extra["model"] = {"trained": False, "reason": reason}
        ctx.results["gnn"] = pl.DataFrame({"customer_id": ctx.graph.keys("Customer")}).with_columns(
            pl.lit(None, dtype=pl.Float64).alias("gnn_score")
        )
        return
    data, standardiser = build_data(
        ctx.graph, features, max_device_users=cfg.rings.max_customers_per_device
    )
    split = stratified_split(labels, cfg.gnn.seed)
    no_graph_features = data["customer"].x.numpy()
    prior = None
    prior_reason = tree_prior_reason(labels, split.train, cfg)
    if prior_reason is None:
        ctx.progress.log(f"gnn: tree prior over {cfg.gnn.tree_prior_folds} folds")
        prior, column = fit_tree_prior(
            no_graph_features, labels, split.train, cfg.gnn.seed, cfg.gnn.tree_prior_folds
        )
        add_prior_column(data, column)
    settings = train_settings(cfg, ctx.graph.n("Customer"))
    trained = train_gnn(data, split, settings, ctx.progress)
    log_weight = class_log_weight(labels, split.train)
    evaluation = model_evaluation(trained, data, no_graph_features, labels, split, cfg.gnn.seed)
    prior_digest = save_prior(ctx.out_dir / PRIOR_FILE, prior) if prior is not None else None
    path = ctx.out_dir / "model.pt"
    digest = save_model(
        path,
        trained,
        standardiser,
        features.names,
        features.snapshot,
        log_weight,
        cfg.rings.max_customers_per_device,
        prior_sha256=prior_digest,
    )
    scores = score_customers(trained.model, data, log_weight)
    (ctx.out_dir / "model_eval.json").write_text(json.dumps(evaluation, indent=2))
    ctx.manifest_extra["model"] = {
        "trained": True,
        "file": "model.pt",
        "sha256": digest,
        "tree_prior": (
            {"file": PRIOR_FILE, "sha256": prior_digest, "folds": cfg.gnn.tree_prior_folds}
            if prior_digest
            else {"used": False, "reason": prior_reason}
        ),
        "features": features.names,
        "snapshot": features.snapshot.isoformat(),
        "batch_size": settings.batch_size,  # None: full batch
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "stopped_by": trained.stopped_by,
        "dropped_features": features.dropped,
    }
    ctx.manifest_extra["model_eval"] = evaluation
    ctx.results["gnn"] = pl.DataFrame(
        {"customer_id": ctx.graph.keys("Customer"), "gnn_score": scores}
    )


def train_settings(cfg: Config, customers: int) -> TrainSettings:
    """The GNN's training settings from ``[gnn]`` for a graph of ``customers`` customers: full
    batch up to ``gnn.full_batch_max_customers``, above it mini-batches of ``gnn.batch_size``
    customers with their whole two-hop neighbourhoods; ``gnn.max_train_seconds`` as the budget."""
    from gnn.data import WHOLE_NEIGHBOURHOOD
    from gnn.train import TrainSettings

    return TrainSettings(
        hidden=cfg.gnn.hidden,
        epochs=cfg.gnn.epochs,
        patience=cfg.gnn.patience,
        learning_rate=cfg.gnn.learning_rate,
        seed=cfg.gnn.seed,
        max_seconds=cfg.gnn.max_train_seconds or None,
        batch_size=cfg.gnn.batch_size if customers > cfg.gnn.full_batch_max_customers else None,
        fanouts=(WHOLE_NEIGHBOURHOOD, WHOLE_NEIGHBOURHOOD),
    )


def tree_prior_reason(labels: np.ndarray, train: np.ndarray, cfg: Config) -> str | None:
    """Why the GNN trains without the tree prior (None: it trains with it)."""
    if not cfg.gnn.tree_prior_folds:
        return "gnn.tree_prior_folds is 0"
    positives = int((labels[train] == 1).sum())
    if positives < cfg.gnn.tree_prior_min_positives:
        return (
            f"{positives} defaults in the training split, fewer than "
            f"gnn.tree_prior_min_positives = {cfg.gnn.tree_prior_min_positives}"
        )
    return None


def model_evaluation(
    trained: TrainedModel,
    data: HeteroData,
    features: np.ndarray,
    labels: np.ndarray,
    split: Split,
    seed: int,
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC of the GNN and both baselines on the held-out test customers."""
    from gnn.train import baseline_scores, predict_logits, ranking_metrics

    test_labels = labels[split.test]
    gnn_logits = predict_logits(trained.model, data, split.test)
    models: dict[str, Any] = {
        "gnn": {
            **ranking_metrics(test_labels, gnn_logits),
            "train_seconds": round(trained.seconds, 3),
        }
    }
    for name, result in baseline_scores(features, labels, split, seed).items():
        models[name] = {
            **ranking_metrics(test_labels, result["scores"]),
            "train_seconds": round(result["train_seconds"], 3),
        }
    baselines = [n for n in models if n != "gnn"]
    best_baseline = max(baselines, key=lambda n: np.nan_to_num(models[n]["roc_auc"]))
    return {
        "split": {
            "train": len(split.train),
            "validation": len(split.val),
            "test": len(split.test),
            "test_positives": int(test_labels.sum()),
        },
        "models": models,
        "best_baseline": best_baseline,
        # The GNN earns its place only by beating the best baseline on each metric separately.
        "gnn_beats_best_baseline": all(
            models["gnn"][metric] > max(np.nan_to_num(models[n][metric]) for n in baselines)
            for metric in ("roc_auc", "pr_auc")
        ),
    }


def scores_stage(ctx: RunContext) -> None:
    """Stage ``scores``: combine contagion, gnn and (label-free) rule scores; tier them."""
    keys = pl.DataFrame({"customer_id": ctx.graph.keys("Customer")})
    contagion = ctx.results.get("contagion")
    gnn = ctx.results.get("gnn")
    frame = keys.with_columns(
        (
            contagion.get_column("contagion_score")
            if contagion is not None
            else pl.Series("contagion_score", np.zeros(keys.height))
        ).alias("contagion_score"),
        (
            gnn.get_column("gnn_score")
            if gnn is not None
            else pl.Series("gnn_score", [None] * keys.height, dtype=pl.Float64)
        ).alias("gnn_score"),
    )
    has_gnn = frame.get_column("gnn_score").null_count() < frame.height
    if has_gnn:
        risk = pl.max_horizontal("gnn_score", "contagion_score")
        basis = "max(gnn_score, contagion_score)"
    else:
        frame = frame.with_columns(rule_scores(_features(ctx).frame, ctx.config))
        risk = pl.max_horizontal("contagion_score", "rule_score")
        basis = "max(contagion_score, rule_score): no trained GNN"
    frame = frame.with_columns(risk.clip(0.0, 1.0).alias("risk_score"))
    frame = frame.select(
        "customer_id",
        "contagion_score",
        "gnn_score",
        "risk_score",
        tier_for(pl.col("risk_score"), ctx.config).alias("tier"),
    )
    ctx.outputs["scores.parquet"] = frame
    ctx.results["scores"] = frame
    ctx.manifest_extra["risk_score"] = basis
    for tier, count in frame.group_by("tier").len().iter_rows():
        ctx.counts[f"tier_{tier}"] = count
