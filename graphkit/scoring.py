"""The risk score of every customer, and its tier.

:func:`risk_scores` combines the parts a run has: the ``gnn`` stage's ``gnn_score``, the
``contagion`` stage's ``contagion_score`` and the label-free ``rule_score``
(:func:`rule_scores`).

**With a trained GNN** (labels enough to split), ``risk_score`` is the *calibrated probability
of default within the labels' horizon*: the parts are stacked by a logistic regression fitted on
the GNN's validation customers and calibrated there by Platt scaling or isotonic regression
(:mod:`graphkit.calibration`). Nothing is fitted on the training customers (the GNN saw their
labels) or on the test customers (they judge the result, :attr:`ScoreResult.evaluation`).

The stress-test ``contagion_score`` seeds every labelled default, so a labelled customer's own
label would reach its own score (a seed scores 1). The stack therefore takes the contagion part
*seeded by the training split's defaults only* (``heldout_contagion``) for every customer: no
validation or test label reaches an input, and the same inputs score everyone.
``scores.parquet``'s ``contagion_score`` stays the stress test from every known default.

**Without one** (no labels, too few, or too few validation defaults to calibrate),
``risk_score`` keeps its label-free formula ``max(contagion_score, rule_score)`` (or
``max(gnn_score, contagion_score)`` with a GNN but too few validation defaults) and the result
says it is uncalibrated and why. The tier is :func:`graphkit.tiers.tier_for` of the run's alert
policy, the rule cluster risk and the alerts use too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from graphkit.calibration import ECE_BINS, fit_calibrator, score_metrics
from graphkit.config import Config
from graphkit.tiers import Thresholds, tier_for

# The output contract's leading columns, then the rule score (a part of the stack).
SCORE_COLUMNS = (
    "customer_id",
    "contagion_score",
    "gnn_score",
    "risk_score",
    "tier",
    "rule_score",
)


class SplitLike(Protocol):
    """The GNN's split (:class:`gnn.train.Split`): dense customer indices per part."""

    @property
    def train(self) -> np.ndarray: ...

    @property
    def val(self) -> np.ndarray: ...

    @property
    def test(self) -> np.ndarray: ...


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
    was made (for the manifest); ``calibration``: the manifest's ``calibration`` section
    (``calibrated`` true with the stacker and method, or false with the reason);
    ``evaluation``: held-out metrics of every score column on the test customers (None when
    uncalibrated)."""

    frame: pl.DataFrame
    basis: str
    calibration: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None


def top_score_share(scores: np.ndarray) -> float:
    """Share of customers whose score equals the highest score (0 for no customers)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(scores == scores.max())) if len(scores) else 0.0


def held_out_evaluation(
    columns: dict[str, np.ndarray], labels: np.ndarray, test: np.ndarray
) -> dict[str, Any]:
    """:func:`graphkit.calibration.score_metrics` of every score column on the ``test``
    customers, and how ``risk_score`` compares with the best other column by ROC-AUC."""
    y = labels[test]
    metrics = {name: score_metrics(y, values[test]) for name, values in columns.items()}
    parts = [n for n in metrics if n != "risk_score"]
    out: dict[str, Any] = {
        "split": "test",
        "ece_binning": f"{ECE_BINS} equal-mass bins (customers sorted by score)",
        "columns": metrics,
        "contagion_score_seeds": "defaulted customers of the training split only",
    }
    if parts and "risk_score" in metrics:
        best = max(parts, key=lambda n: np.nan_to_num(metrics[n]["roc_auc"]))
        out["best_part"] = best
        out["risk_minus_best_part_roc_auc"] = (
            metrics["risk_score"]["roc_auc"] - metrics[best]["roc_auc"]
        )
    return out


def risk_scores(
    customer_ids: pl.Series,
    thresholds: Thresholds,
    config: Config,
    *,
    contagion: pl.DataFrame | None = None,
    gnn: pl.DataFrame | None = None,
    features: pl.DataFrame | None = None,
    labels: np.ndarray | None = None,
    split: SplitLike | None = None,
    heldout_contagion: np.ndarray | None = None,
) -> ScoreResult:
    """Combine GNN, contagion and rule scores into ``risk_score`` and tier it.

    Parameters:
        customer_ids: every customer, in Customer id order.
        thresholds: the tier thresholds (the run's alert policy).
        config: ``[alerts]`` rule thresholds for :func:`rule_scores`; ``gnn.seed`` for the
            calibration's folds.
        contagion: contagion_score per customer in the same order (0 for all if None).
        gnn: gnn_score per customer in the same order (null for all if None).
        features: the features frame (for ``rule_score``); needed when no customer has a GNN
            score, optional otherwise (``rule_score`` is then null and not a part).
        labels: per customer 1 defaulted, 0 not, -1 unlabelled (``RiskGraph.defaulted``).
        split: the GNN's train / validation / test split of the labelled customers.
        heldout_contagion: contagion_score seeded by the training split's defaults only (the
            stack's contagion part; without it the stack has no contagion part).

    Returns a :class:`ScoreResult`. Calibrated when ``gnn``, ``labels`` and ``split`` are given
    and the validation split has enough defaults (:func:`graphkit.calibration.fit_calibrator`).
    O(customers) plus the calibration's fits on the validation customers.
    """
    n = len(customer_ids)
    keys = pl.DataFrame({"customer_id": customer_ids})
    frame = keys.with_columns(
        (
            contagion.get_column("contagion_score")
            if contagion is not None
            else pl.Series("contagion_score", np.zeros(n))
        ).alias("contagion_score"),
        (
            gnn.get_column("gnn_score")
            if gnn is not None
            else pl.Series("gnn_score", [None] * n, dtype=pl.Float64)
        ).alias("gnn_score"),
        (
            rule_scores(features, config)
            if features is not None
            else pl.Series("rule_score", [None] * n, dtype=pl.Float64)
        ).alias("rule_score"),
    )
    has_gnn = frame.get_column("gnn_score").null_count() < n
    calibration: dict[str, Any]
    evaluation = None
    if not has_gnn:
        if features is None:
            raise ValueError("risk_scores: no GNN score, so the rule scores need the features")
        risk = frame.select(pl.max_horizontal("contagion_score", "rule_score")).to_series()
        basis = "max(contagion_score, rule_score): no trained GNN"
        calibration = {"calibrated": False, "reason": "no trained GNN (no labels, or too few)"}
    else:
        parts = {"gnn_score": frame.get_column("gnn_score").to_numpy()}
        if heldout_contagion is not None:
            parts["contagion_score"] = np.asarray(heldout_contagion, dtype=np.float64)
        if features is not None:
            parts["rule_score"] = frame.get_column("rule_score").to_numpy()
        reason = None
        if labels is None or split is None:
            reason = "no labels or split given"
        else:
            val = np.asarray(split.val)
            try:
                calibrator = fit_calibrator(
                    {k: v[val] for k, v in parts.items()},
                    labels[val],
                    config.gnn.seed,
                    population=parts,
                )
            except ValueError as exc:
                reason = f"too few labels to calibrate: {exc}"
        if reason is None:
            values = calibrator.predict(parts)
            risk = pl.Series("risk_score", values)
            basis = (
                f"calibrated probability of default: {', '.join(parts)} stacked by logistic "
                f"regression and calibrated ({calibrator.method}) on the validation split"
            )
            calibration = calibrator.to_dict()
            assert labels is not None and split is not None
            evaluation = held_out_evaluation(
                {**parts, "risk_score": values}, labels, np.asarray(split.test)
            )
            evaluation["top_score_share"] = top_score_share(values)
        else:
            risk = frame.select(pl.max_horizontal("gnn_score", "contagion_score")).to_series()
            basis = f"max(gnn_score, contagion_score): uncalibrated ({reason})"
            calibration = {"calibrated": False, "reason": reason}
    frame = frame.with_columns(risk.clip(0.0, 1.0).alias("risk_score"))
    frame = frame.with_columns(tier_for(pl.col("risk_score"), thresholds).alias("tier")).select(
        SCORE_COLUMNS
    )
    return ScoreResult(frame=frame, basis=basis, calibration=calibration, evaluation=evaluation)


__all__ = [
    "SCORE_COLUMNS",
    "ScoreResult",
    "held_out_evaluation",
    "risk_scores",
    "rule_scores",
    "tier_for",
    "top_score_share",
]
