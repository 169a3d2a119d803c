"""Credit-cosmetics features (信用美容): a record kept perfect on purpose.

The seed: 15% of users keep a perfect repayment record with timed small drawdowns, and one model
was misled on 26% of cases. Such a customer draws a small, nearly constant amount at regular
intervals and repays each drawdown at once, so utilisation, lateness and the bureau score all
look clean. The pattern itself is the signal.

Definitions, per customer, over the drawdowns made by the snapshot (``ts <= snapshot``) and the
repayments paid by it (``paid_at <= snapshot``):

- ``draw_amount_regularity``: ``max(0, 1 - cv)`` of the drawdown amounts (cv = standard
  deviation / mean); 1 when every amount is the same.
- ``draw_interval_regularity``: ``max(0, 1 - cv)`` of the gaps between consecutive drawdowns
  (all the customer's lines together); 1 for a fixed schedule.
- ``quick_repaid_share``: share of drawdowns followed by a repayment on the same line within
  ``repay_hours`` (24) hours (the first repayment paid at or after the drawdown, as-of join).
- ``draw_share_of_limit``: median drawdown amount over the customer's total limit.
- ``cosmetic_score`` in [0, 1]: the product ``amount regularity x interval regularity x quick
  repaid share x smallness``, smallness = 1 up to ``max_share`` of the limit and falling linearly
  to 0 at twice that.
- ``cosmetic_pattern`` (0/1): at least ``min_drawdowns`` drawdowns, amount cv <= ``max_amount_cv``,
  gap cv <= ``max_gap_cv``, quick repaid share >= ``min_quick_share`` and draw share of limit
  <= ``max_share``.

The regularities need ``min_drawdowns`` (4) drawdowns; with fewer, they and the score are 0
("no evidence of the pattern"), as is every feature of a customer without drawdowns.

Measured on planted truth (``loaders/synthetic/cosmetics.py``): ``bench/cosmetics.py`` and
``docs/generator.md``.

Complexity: O(D log D + R log R) for D drawdowns and R repayments (sorts for the gaps and the
as-of join).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from graphkit.graph import RiskGraph

COSMETIC_NAMES = [
    "draw_amount_regularity",
    "draw_interval_regularity",
    "quick_repaid_share",
    "draw_share_of_limit",
    "cosmetic_score",
    "cosmetic_pattern",
]


# The flag's defaults, one place for both engines (graphkit/spark/features.py reads them too).
MIN_DRAWDOWNS = 4
REPAY_HOURS = 24.0
MAX_AMOUNT_CV = 0.25
MAX_GAP_CV = 0.5
MIN_QUICK_SHARE = 0.8
MAX_SHARE = 0.15


def cosmetic_features(
    graph: RiskGraph,
    snapshot: datetime,
    *,
    min_drawdowns: int = MIN_DRAWDOWNS,
    repay_hours: float = REPAY_HOURS,
    max_amount_cv: float = MAX_AMOUNT_CV,
    max_gap_cv: float = MAX_GAP_CV,
    min_quick_share: float = MIN_QUICK_SHARE,
    max_share: float = MAX_SHARE,
) -> pl.LazyFrame:
    """Per customer (``cid``, Int32 dense Customer id) the :data:`COSMETIC_NAMES` features.

    Parameters:
        graph: the risk graph.
        snapshot: no drawdown or repayment after it is read.
        min_drawdowns: drawdowns needed before regularity counts.
        repay_hours: a drawdown repaid within this many hours is "repaid at once".
        max_amount_cv, max_gap_cv, min_quick_share, max_share: the flag's thresholds.

    Returns:
        A lazy frame with one row per customer that drew by the snapshot (others: absent, i.e.
        0 once joined).
    """
    draws = graph.edges["drawdown"]
    line_customer = graph.line_customer()
    src = draws.get_column("src").to_numpy() if draws.height else np.array([], np.int64)
    cid = line_customer[src] if draws.height else np.array([], np.int32)
    lines = (
        graph.nodes["CreditLine"]
        .lazy()
        .with_row_index("line")
        .select(pl.col("line").cast(pl.Int64), "line_id", "limit")
    )
    drawn = (
        draws.lazy()
        .with_columns(
            pl.Series("cid", cid, dtype=pl.Int32), pl.col("src").cast(pl.Int64).alias("line")
        )
        .filter(pl.col("ts") <= snapshot)
        .select("cid", "line", "amount", "ts")
    )
    repaid = (
        graph.repayments.lazy()
        .filter(pl.col("paid_at").is_not_null() & (pl.col("paid_at") <= snapshot))
        .join(lines.select("line_id", "line"), on="line_id", how="inner")
        .select("line", "paid_at")
        .sort("paid_at")
    )
    matched = drawn.sort("ts").join_asof(
        repaid,
        left_on="ts",
        right_on="paid_at",
        by="line",
        strategy="forward",
        check_sortedness=False,
    )
    wait_h = (pl.col("paid_at") - pl.col("ts")).dt.total_seconds() / 3600.0
    gap = pl.col("ts").diff().dt.total_seconds() / 86_400.0
    per_customer = (
        matched.with_columns((wait_h <= repay_hours).fill_null(False).alias("quick"))
        .sort("cid", "ts")
        .with_columns(gap.over("cid").alias("gap"))
        .group_by("cid")
        .agg(
            pl.len().alias("n"),
            (pl.col("amount").std() / pl.col("amount").mean()).alias("amount_cv"),
            (pl.col("gap").std() / pl.col("gap").mean()).alias("gap_cv"),
            pl.col("quick").mean().alias("quick_repaid_share"),
            pl.col("amount").median().alias("median_amount"),
        )
    )
    limits = (
        lines.with_columns(
            pl.Series("cid", line_customer, dtype=pl.Int32)
            if graph.n("CreditLine")
            else pl.lit(None, pl.Int32).alias("cid")
        )
        .group_by("cid")
        .agg(pl.col("limit").sum().alias("limit_total"))
    )
    enough = pl.col("n") >= min_drawdowns

    def regularity(cv: str) -> pl.Expr:
        return pl.when(enough).then((1.0 - pl.col(cv)).clip(0.0, 1.0)).otherwise(0.0)

    share = (
        pl.when(pl.col("limit_total") > 0)
        .then(pl.col("median_amount") / pl.col("limit_total"))
        .otherwise(1.0)
    )
    smallness = ((2.0 * max_share - pl.col("draw_share_of_limit")) / max_share).clip(0.0, 1.0)
    return (
        per_customer.join(limits, on="cid", how="left")
        .with_columns(
            regularity("amount_cv").fill_null(0.0).alias("draw_amount_regularity"),
            regularity("gap_cv").fill_null(0.0).alias("draw_interval_regularity"),
            share.fill_null(1.0).alias("draw_share_of_limit"),
        )
        .with_columns(
            (
                pl.col("draw_amount_regularity")
                * pl.col("draw_interval_regularity")
                * pl.col("quick_repaid_share")
                * smallness
            ).alias("cosmetic_score"),
            (
                enough
                & (pl.col("amount_cv") <= max_amount_cv)
                & (pl.col("gap_cv") <= max_gap_cv)
                & (pl.col("quick_repaid_share") >= min_quick_share)
                & (pl.col("draw_share_of_limit") <= max_share)
            )
            .fill_null(False)
            .cast(pl.Float64)
            .alias("cosmetic_pattern"),
        )
        .select("cid", *COSMETIC_NAMES)
    )
