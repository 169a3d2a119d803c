"""The tier of a risk score: the one rule ``scores.parquet``, ``cluster_risk`` and the alerts use.

A score at or above ``red_score`` is red, at or above ``orange_score`` orange, at or above
``yellow_score`` yellow, else green; a null score is green. Scores are computed in floating
point (a share of exactly 30% may come out as 0.29999999999999999), so "at or above" allows
:data:`TOLERANCE` of slack: a score on a threshold gets the threshold's tier in every output.

The thresholds come from one place per run, the effective alert policy
(:func:`graphkit.alerts.load_policy`: the packaged policy, ``[alerts]``, the policy file); the
pipeline loads it once and hands it to every stage that tiers.

Within an alert budget (the policy's ``[budget]``), :func:`budget_tiers` is the one place that
decides how many customers each tier holds and who they are (docs/alerts.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, overload

import numpy as np
import polars as pl

from graphkit.config import Config
from graphkit.schema import TIERS

# Slack of every threshold comparison (see the module docstring).
TOLERANCE = 1e-9


class Thresholds(Protocol):
    """Score thresholds of the tiers (an ``AlertsConfig`` or an alert ``Policy``)."""

    @property
    def yellow_score(self) -> float: ...

    @property
    def orange_score(self) -> float: ...

    @property
    def red_score(self) -> float: ...


def _bounds(thresholds: Thresholds | Config) -> list[tuple[str, float]]:
    t = thresholds.alerts if isinstance(thresholds, Config) else thresholds
    return [("red", t.red_score), ("orange", t.orange_score), ("yellow", t.yellow_score)]


@overload
def tier_for(score: float, thresholds: Thresholds | Config) -> str: ...
@overload
def tier_for(score: pl.Series, thresholds: Thresholds | Config) -> pl.Series: ...
@overload
def tier_for(score: pl.Expr, thresholds: Thresholds | Config) -> pl.Expr: ...


def tier_for(
    score: float | pl.Series | pl.Expr, thresholds: Thresholds | Config
) -> str | pl.Series | pl.Expr:
    """Tier (green, yellow, orange, red) of a score, a Series of scores or a score expression.

    Parameters:
        score: a number, a Series (the result keeps its name) or a polars expression.
        thresholds: anything with ``yellow_score``, ``orange_score``, ``red_score`` (an alert
            policy, an ``AlertsConfig``), or a :class:`~graphkit.config.Config` (its ``[alerts]``).

    Returns the tier as text, a String Series or a String expression. O(1) per score.

    Examples:
        >>> from graphkit.config import AlertsConfig
        >>> [tier_for(s, AlertsConfig()) for s in (0.1, 0.3, 0.6, 0.85)]
        ['green', 'yellow', 'orange', 'red']
    """
    bounds = _bounds(thresholds)
    if isinstance(score, int | float):
        return next((name for name, bound in bounds if score >= bound - TOLERANCE), "green")
    expr = score if isinstance(score, pl.Expr) else pl.lit(score)
    tier: pl.Expr = pl.lit("green")
    for name, bound in reversed(bounds):
        tier = pl.when(expr >= bound - TOLERANCE).then(pl.lit(name)).otherwise(tier)
    if isinstance(score, pl.Series):
        return pl.select(tier.alias(score.name or "tier")).to_series()
    return tier


def threshold_reached(score: pl.Expr, thresholds: Thresholds | Config) -> pl.Expr:
    """The threshold of the tier :func:`tier_for` gives ``score`` (null for green)."""
    bound_expr: pl.Expr = pl.lit(None, dtype=pl.Float64)
    for _, bound in reversed(_bounds(thresholds)):
        bound_expr = pl.when(score >= bound - TOLERANCE).then(pl.lit(bound)).otherwise(bound_expr)
    return bound_expr


def budget_tiers(
    customers: pl.DataFrame, shares: Mapping[str, float]
) -> tuple[pl.Series, dict[str, dict[str, int]]]:
    """Tiers within an alert budget: each tier holds at most ``shares[tier]`` of the customers.

    Definition: ``customers`` has one row per customer with ``customer_id``, ``asked`` (the
    tier its score and rules ask for), ``kept`` (the tier demanding rules keep whatever the
    budget; green for none, never above ``asked``), ``risk_score`` (null allowed) and, optionally,
    ``severity`` (how many rules ask for the customer's ``asked`` tier). From red
    down to yellow, with ``budget = floor(share x customers)``: every customer not yet placed
    whose ``kept`` reaches the tier gets it (past the budget if need be); the remaining places
    go to the customers not yet placed whose ``asked`` reaches the tier, most severe first:
    higher ``asked``, then higher ``severity``, then higher ``risk_score`` (nulls last), then
    smaller ``customer_id``
    (so ties at the budget's edge are broken by customer id, deterministically). The others
    compete for the next tier down; whoever is left is green.

    Parameters:
        customers: the frame above.
        shares: the largest share of customers per tier (``yellow``, ``orange``, ``red``).

    Returns the tier per row (a String Series named ``tier``, in the frame's row order) and,
    per tier, ``budget`` (places), ``kept`` (customers demanding rules kept there), ``over``
    (how far they overflow the budget, 0 when they fit) and ``filled`` (customers placed).
    O(n log n): one sort, then vector passes.
    """
    rank = {tier: i for i, tier in enumerate(TIERS)}
    n = customers.height
    if "severity" not in customers.columns:
        customers = customers.with_columns(pl.lit(0, dtype=pl.Int32).alias("severity"))
    ordered = (
        customers.with_row_index("_row")
        .with_columns(
            pl.col("asked").replace_strict(rank, return_dtype=pl.Int8).alias("_asked"),
            pl.col("kept").replace_strict(rank, return_dtype=pl.Int8).alias("_kept"),
        )
        .sort(
            ["_asked", "severity", "risk_score", "customer_id"],
            descending=[True, True, True, False],
            nulls_last=True,
        )
    )
    asked = ordered.get_column("_asked").to_numpy()
    kept = ordered.get_column("_kept").to_numpy()
    placed = np.zeros(n, dtype=np.int8)  # green unless placed below
    free = np.ones(n, dtype=bool)
    report: dict[str, dict[str, int]] = {}
    for tier in ("red", "orange", "yellow"):
        level, budget = rank[tier], math.floor(shares[tier] * n + TOLERANCE)
        keep = free & (kept >= level)
        room = max(0, budget - int(keep.sum()))
        contenders = free & ~keep & (asked >= level)
        fill = contenders & (np.cumsum(contenders) <= room)
        placed[keep | fill] = level
        free &= ~(keep | fill)
        report[tier] = {
            "budget": budget,
            "kept": int(keep.sum()),
            "over": max(0, int(keep.sum()) - budget),
            "filled": int((keep | fill).sum()),
        }
    tiers = pl.DataFrame(
        {
            "_row": ordered.get_column("_row"),
            "tier": pl.Series(placed).replace_strict(
                dict(enumerate(TIERS)), return_dtype=pl.String
            ),
        }
    ).sort("_row")
    return tiers.get_column("tier"), report


__all__ = [
    "TIERS",
    "TOLERANCE",
    "Thresholds",
    "budget_tiers",
    "threshold_reached",
    "tier_for",
]
