"""Cluster risk: what a related-enterprise cluster owes, how it behaves, and how risky it is.

Per cluster (see :mod:`graphkit.analytics.clusters`):

``size``
    members.
``total_limit``
    sum of the credit-line limits of the members.
``drawn_amount`` / ``drawn_exposure``
    sum of drawdowns on the members' lines; the exposure subtracts, line by line, the repayments
    already paid (``paid_at`` set) and floors each line at 0.
``labelled`` / ``defaulted`` / ``default_rate``
    members with a label, defaulted members, and their ratio (null when nobody is labelled).
``circles_inside`` / ``circles_touching`` / ``circle_member_share``
    guarantee circles whose members all lie in the cluster, circles with at least one member in
    it, and the share of the cluster's members that sit in some circle.
``banned_share``
    banned amount over drawn amount of the members, from the flows stage's ``customer_flows``;
    null when flows were not run or the members drew nothing traced.
``mean_score``
    mean ``risk_score`` of the members from the ``scores`` stage; null when scores were not run.
``risk_score``
    a weighted mean of components in [0, 1]: default_rate, banned_share, circle_member_share
    (``circles``), mean_score (``score``) and ``size`` = min(1, log10(size) / 3) (a 1000-member
    cluster counts fully). Weights are ``clusters.risk_weights`` (default 0.35, 0.25, 0.15,
    0.15, 0.10); a component that is null is left out and the remaining weights renormalised.
``tier``
    :func:`graphkit.tiers.tier_for` of the run's alert policy: the same rule and thresholds as
    customer scores and alerts.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress
from graphkit.tiers import Thresholds, tier_for

RISK_COLUMNS = {
    "cluster_id": pl.Int64,
    "size": pl.Int64,
    "total_limit": pl.Float64,
    "drawn_amount": pl.Float64,
    "drawn_exposure": pl.Float64,
    "labelled": pl.Int64,
    "defaulted": pl.Int64,
    "default_rate": pl.Float64,
    "circles_inside": pl.Int64,
    "circles_touching": pl.Int64,
    "circle_member_share": pl.Float64,
    "banned_share": pl.Float64,
    "mean_score": pl.Float64,
    "risk_score": pl.Float64,
    "tier": pl.String,
}
# Risk-score component -> the column it reads.
COMPONENTS = {
    "default_rate": "default_rate",
    "banned_share": "banned_share",
    "circles": "circle_member_share",
    "score": "mean_score",
    "size": "size_factor",
}
SIZE_SATURATION = 1000  # members at which the size component reaches 1


def customer_exposure(graph: RiskGraph) -> pl.DataFrame:
    """Per customer with credit lines: total_limit, drawn_amount, drawn_exposure.

    Exposure is per line ``max(0, drawn - paid repayments)``, summed over the customer's lines.
    """
    lines = graph.nodes["CreditLine"].select("line_id", "customer_id", "limit")
    drawdowns = graph.edges["drawdown"]
    drawn = pl.DataFrame(
        {
            "line_id": graph.keys("CreditLine").gather(drawdowns.get_column("src")),
            "amount": drawdowns.get_column("amount"),
        }
    )
    drawn = drawn.group_by("line_id").agg(pl.col("amount").sum().alias("drawn"))
    repaid = (
        graph.repayments.filter(pl.col("paid_at").is_not_null())
        .group_by("line_id")
        .agg(pl.col("amount").sum().alias("repaid"))
    )
    return (
        lines.join(drawn, on="line_id", how="left")
        .join(repaid, on="line_id", how="left")
        .with_columns(pl.col("drawn", "repaid").fill_null(0.0))
        .group_by("customer_id")
        .agg(
            pl.col("limit").sum().alias("total_limit"),
            pl.col("drawn").sum().alias("drawn_amount"),
            (pl.col("drawn") - pl.col("repaid")).clip(lower_bound=0).sum().alias("drawn_exposure"),
        )
    )


def cluster_risk(
    graph: RiskGraph,
    cluster_membership: pl.DataFrame,
    circle_membership: pl.DataFrame,
    config: Config | None = None,
    customer_flows: pl.DataFrame | None = None,
    scores: pl.DataFrame | None = None,
    progress: Progress = SILENT,
    thresholds: Thresholds | None = None,
) -> pl.DataFrame:
    """Risk profile of every cluster (columns :data:`RISK_COLUMNS`, see the module docstring).

    Parameters:
        graph: the risk graph (credit lines, drawdowns, repayments, labels).
        cluster_membership: customer_id, cluster_id.
        circle_membership: customer_id, circle_id.
        config: clusters.risk_weights and the alerts thresholds for tiers; defaults if None.
        customer_flows: customer_id, drawn_amount, banned_amount (optional).
        scores: customer_id, risk_score (optional).
        thresholds: the tier thresholds (the run's alert policy); ``config.alerts`` if None.

    Returns one row per cluster ordered by cluster_id. Complexity: O(V + E) joins.
    """
    cfg = config if config is not None else Config()
    if cluster_membership.height == 0:
        return pl.DataFrame(schema=RISK_COLUMNS)
    labels = graph.nodes["Customer"].select("customer_id", "defaulted")
    members = (
        cluster_membership.select("customer_id", "cluster_id")
        .join(labels, on="customer_id", how="left")
        .join(customer_exposure(graph), on="customer_id", how="left")
        .join(circle_membership.select("customer_id", "circle_id"), on="customer_id", how="left")
    )
    flows_known = customer_flows is not None
    if flows_known:
        members = members.join(
            customer_flows.select(
                "customer_id",
                pl.col("drawn_amount").alias("flow_drawn"),
                pl.col("banned_amount").alias("flow_banned"),
            ),
            on="customer_id",
            how="left",
        )
    else:
        members = members.with_columns(
            pl.lit(None, pl.Float64).alias("flow_drawn"),
            pl.lit(None, pl.Float64).alias("flow_banned"),
        )
    if scores is not None:
        members = members.join(
            scores.select("customer_id", pl.col("risk_score").alias("member_score")),
            on="customer_id",
            how="left",
        )
    else:
        members = members.with_columns(pl.lit(None, pl.Float64).alias("member_score"))

    circle_sizes = circle_membership.group_by("circle_id").agg(pl.len().alias("circle_size"))
    circles = (
        members.filter(pl.col("circle_id").is_not_null())
        .group_by("cluster_id", "circle_id")
        .agg(pl.len().alias("inside"))
        .join(circle_sizes, on="circle_id", how="left")
        .group_by("cluster_id")
        .agg(
            (pl.col("inside") == pl.col("circle_size")).sum().alias("circles_inside"),
            pl.len().alias("circles_touching"),
        )
    )
    drawn_traced = pl.col("flow_drawn").sum()
    table = (
        members.group_by("cluster_id")
        .agg(
            pl.len().alias("size"),
            pl.col("total_limit").fill_null(0).sum(),
            pl.col("drawn_amount").fill_null(0).sum(),
            pl.col("drawn_exposure").fill_null(0).sum(),
            pl.col("defaulted").is_not_null().sum().alias("labelled"),
            pl.col("defaulted").fill_null(False).sum().alias("defaulted"),
            pl.col("circle_id").is_not_null().mean().alias("circle_member_share"),
            pl.when(drawn_traced > 0)
            .then(pl.col("flow_banned").sum() / drawn_traced)
            .otherwise(None)
            .alias("banned_share"),
            pl.col("member_score").mean().alias("mean_score"),
        )
        .join(circles, on="cluster_id", how="left")
        .with_columns(
            pl.col("circles_inside", "circles_touching").fill_null(0),
            pl.when(pl.col("labelled") > 0)
            .then(pl.col("defaulted") / pl.col("labelled"))
            .otherwise(None)
            .alias("default_rate"),
            (pl.col("size").cast(pl.Float64).log10() / np.log10(SIZE_SATURATION))
            .clip(upper_bound=1.0)
            .alias("size_factor"),
        )
    )
    weights = cfg.clusters.risk_weights
    numerator = pl.sum_horizontal(
        pl.col(column).fill_null(0) * weights.get(name, 0.0) for name, column in COMPONENTS.items()
    )
    denominator = pl.sum_horizontal(
        pl.when(pl.col(column).is_not_null()).then(weights.get(name, 0.0)).otherwise(0.0)
        for name, column in COMPONENTS.items()
    )
    score = pl.when(denominator > 0).then(numerator / denominator).otherwise(0.0)
    table = table.with_columns(score.clip(0.0, 1.0).alias("risk_score")).with_columns(
        tier_for(pl.col("risk_score"), thresholds or cfg).alias("tier")
    )
    progress.log(f"cluster risk: {table.height} clusters")
    return table.select([pl.col(name).cast(dtype) for name, dtype in RISK_COLUMNS.items()]).sort(
        "cluster_id"
    )
