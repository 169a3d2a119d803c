"""The risk score of every customer, and its tier.

:func:`risk_scores` combines the ``contagion`` and ``gnn`` stages' scores. With a GNN score,
``risk_score = max(gnn_score, contagion_score)`` (the stronger signal wins: the model rarely
sees a fresh stress test coming, the stress test knows nothing of a customer's own behaviour).
Without one (no labels, or too few), ``risk_score = max(contagion_score, rule_score)`` from
label-free signals only (:func:`rule_scores`). The tier is :func:`graphkit.tiers.tier_for` of
the run's alert policy, the rule cluster risk and the alerts use too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from graphkit.config import Config
from graphkit.tiers import Thresholds, tier_for

SCORE_COLUMNS = ("customer_id", "contagion_score", "gnn_score", "risk_score", "tier")


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


@dataclass
class ScoreResult:
    """``frame``: one row per customer (:data:`SCORE_COLUMNS`); ``basis``: how ``risk_score``
    was combined (for the manifest)."""

    frame: pl.DataFrame
    basis: str


def risk_scores(
    customer_ids: pl.Series,
    thresholds: Thresholds,
    config: Config,
    *,
    contagion: pl.DataFrame | None = None,
    gnn: pl.DataFrame | None = None,
    features: pl.DataFrame | None = None,
) -> ScoreResult:
    """Combine contagion, GNN and (label-free) rule scores into ``risk_score`` and tier it.

    Parameters:
        customer_ids: every customer, in Customer id order.
        thresholds: the tier thresholds (the run's alert policy).
        config: ``[alerts]`` rule thresholds for :func:`rule_scores`.
        contagion: contagion_score per customer in the same order (0 for all if None).
        gnn: gnn_score per customer in the same order (null for all if None).
        features: the features frame, needed only when no customer has a GNN score.

    Returns a :class:`ScoreResult`. O(customers).
    """
    keys = pl.DataFrame({"customer_id": customer_ids})
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
        if features is None:
            raise ValueError("risk_scores: no GNN score, so the rule scores need the features")
        frame = frame.with_columns(rule_scores(features, config))
        risk = pl.max_horizontal("contagion_score", "rule_score")
        basis = "max(contagion_score, rule_score): no trained GNN"
    frame = frame.with_columns(risk.clip(0.0, 1.0).alias("risk_score"))
    frame = frame.select(
        *SCORE_COLUMNS[:-1], tier_for(pl.col("risk_score"), thresholds).alias("tier")
    )
    return ScoreResult(frame=frame, basis=basis)


__all__ = ["SCORE_COLUMNS", "ScoreResult", "risk_scores", "rule_scores", "tier_for"]
