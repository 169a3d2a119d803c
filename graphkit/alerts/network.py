"""Network reasons: the neighbours that drove a customer's GNN score, in an alert's reasons.

The neighbours and their effects come from the GNN's explanation (:mod:`gnn.explain`: each
neighbour cut off in turn, the drop in the customer's ``gnn_score`` is its effect); this module
only picks whom to explain (:func:`to_explain`), words the reason (:func:`network_reasons`) and
appends it (:func:`append_reasons`). The run's alerts stage joins them (docs/alerts.md, Rules,
"Network").
"""

from __future__ import annotations

import polars as pl

from graphkit.alerts.policy import TIER_RANK

# Tiers whose customers get a network reason, and how many neighbours each names.
NETWORK_TIERS: tuple[str, ...] = ("red", "orange")
NETWORK_TOP = 2
# A neighbour is named only when cutting it off lowers the score by at least this much (the
# reason rounds effects to three decimals, so a smaller one would read +0.000).
NETWORK_MIN_EFFECT = 0.001


def to_explain(customers: pl.DataFrame, cap: int) -> pl.Series:
    """The ids of at most ``cap`` customers of :data:`NETWORK_TIERS` in ``customers`` (tier,
    risk_score, customer_id), the most severe first: red before orange, then by risk_score
    (nulls last), then id. ``cap`` 0 or less: none. O(n log n)."""
    if cap <= 0:
        return pl.Series("customer_id", [], dtype=pl.String)
    return (
        customers.filter(pl.col("tier").is_in(list(NETWORK_TIERS)))
        .with_columns(pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8).alias("_r"))
        .sort(["_r", "risk_score", "customer_id"], descending=[True, True, False], nulls_last=True)
        .head(cap)
        .get_column("customer_id")
    )


def network_reasons(neighbours: pl.DataFrame) -> pl.DataFrame:
    """One reason per customer from its top neighbours (customer_id, neighbour_id, tie, hops,
    effect; in the order to name them): ``network: C0001234 (guarantor, 1 hop, +0.120),
    C0004321 (device peer via C0000007, 2 hops, +0.052)``, the effect being the drop in the
    customer's GNN score when that neighbour is cut off. Returns customer_id, reason. O(n)."""
    hops = pl.format(
        "{} hop{}",
        pl.col("hops"),
        pl.when(pl.col("hops") == 1).then(pl.lit("")).otherwise(pl.lit("s")),
    )
    thousandths = (pl.col("effect") * 1000).round().cast(pl.Int64)
    effect = pl.format(
        "+{}.{}",
        thousandths // 1000,
        (thousandths % 1000).cast(pl.String).str.zfill(3),
    )
    named = pl.format("{} ({}, {}, {})", pl.col("neighbour_id"), pl.col("tie"), hops, effect)
    return (
        neighbours.with_columns(named.alias("named"))
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("named").str.join(", "))
        .select("customer_id", pl.format("network: {}", pl.col("named")).alias("reason"))
    )


def append_reasons(frame: pl.DataFrame, reasons: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (customer_id, reasons, ...) with each customer's reason from ``reasons``
    (customer_id, reason) appended after its own, ``"; "``-separated; other rows unchanged. One
    customer may have several rows (one per credit line in alerts.csv). O(n)."""
    if reasons.is_empty():
        return frame
    joined = frame.join(
        reasons.select("customer_id", pl.col("reason").alias("_extra")),
        on="customer_id",
        how="left",
        maintain_order="left",
    )
    return joined.with_columns(
        pl.when(pl.col("_extra").is_null())
        .then(pl.col("reasons"))
        .when(pl.col("reasons").fill_null("") == "")
        .then(pl.col("_extra"))
        .otherwise(pl.concat_str([pl.col("reasons"), pl.col("_extra")], separator="; "))
        .alias("reasons")
    ).drop("_extra")


__all__ = [
    "NETWORK_MIN_EFFECT",
    "NETWORK_TIERS",
    "NETWORK_TOP",
    "append_reasons",
    "network_reasons",
    "to_explain",
]
