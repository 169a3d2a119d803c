"""The alert rules, how their hits combine into a customer's tier, and the limit advice.

See :mod:`graphkit.alerts` for the rules and tiers; every function here is a polars
computation over the earlier stages' frames (no per-row Python).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from graphkit.alerts.drivers import add_drivers
from graphkit.alerts.policy import TIER_RANK, Policy
from graphkit.alerts.wording import num_text, pct_text, score_text
from graphkit.schema import TIERS
from graphkit.tiers import TOLERANCE, budget_tiers, threshold_reached, tier_for

if TYPE_CHECKING:
    from graphkit.graph import RiskGraph

RESPONSES: dict[str, str] = {
    "green": "no action",
    "yellow": "soft intervention: notify the customer and guide their use of credit",
    "orange": "freeze further drawdowns or cut the limit",
    "red": "suspend the line and open a case",
}

# Rules in the order their reasons are listed (after the score reason).
RULES: tuple[str, ...] = (
    "defaulted",
    "circle_default",
    "banned_share",
    "burst",
    "ring",
    "cluster_orange",
    "cluster_red",
    "cosmetic",
)


ALERT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "line_id",
    "tier",
    "response",
    "reasons",
    "recommended_limit",
    "limit",
    "outstanding",
    "utilisation",
    "risk_score",
    "limit_reason",
    "rules",
)

HITS_SCHEMA = {"customer_id": pl.String, "rule": pl.String, "tier": pl.String, "reason": pl.String}


def _empty_hits() -> pl.DataFrame:
    return pl.DataFrame(schema=HITS_SCHEMA)


def _hits(frame: pl.DataFrame, rule: str, tier: str | pl.Expr, reason: pl.Expr) -> pl.DataFrame:
    tier_expr = pl.lit(tier) if isinstance(tier, str) else tier
    return frame.select(
        pl.col("customer_id").cast(pl.String),
        pl.lit(rule).alias("rule"),
        tier_expr.alias("tier"),
        reason.alias("reason"),
    )


# -- rules ---------------------------------------------------------------------------------------


def score_hits(scores: pl.DataFrame | None, policy: Policy) -> pl.DataFrame:
    """Customers whose ``risk_score`` reaches a score threshold, at the highest tier reached.

    Parameters: ``scores`` (customer_id, risk_score). Returns hits (customer_id, rule="score",
    tier, reason). O(n).
    """
    if scores is None or "risk_score" not in scores.columns:
        return _empty_hits()
    s = pl.col("risk_score")
    scored = scores.select("customer_id", "risk_score").with_columns(
        tier_for(s, policy).alias("score_tier"), threshold_reached(s, policy).alias("bound")
    )
    fired = scored.filter(pl.col("score_tier") != "green")
    reason = pl.format(
        "risk score {} at or above the {} threshold {}",
        score_text(s),
        pl.col("score_tier"),
        score_text(pl.col("bound")),
    )
    return _hits(fired, "score", pl.col("score_tier"), reason)


def defaulted_hits(defaulted: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Customers whose label says they defaulted (``defaulted``: customer_id, defaulted bool,
    null = unlabelled), at ``policy.rule_tiers["defaulted"]``.

    A known default is a fact, not a prediction: ``risk_score`` stays the model's calibrated
    probability (so labelled defaults do not all share a score of 1), and this rule asks the
    alert tier for them instead, with its own reason. O(n).
    """
    fired = defaulted.filter(pl.col("defaulted").fill_null(False))
    return _hits(
        fired, "defaulted", policy.rule_tiers["defaulted"], pl.lit("labelled as defaulted")
    )


def circle_default_hits(
    circle_membership: pl.DataFrame | None, defaulted: pl.DataFrame, policy: Policy
) -> pl.DataFrame:
    """Members of a guarantee circle that has at least one defaulted member.

    Parameters: ``circle_membership`` (customer_id, circle_id); ``defaulted`` (customer_id,
    defaulted: bool, null = unlabelled). Every member of such a circle is hit, the defaulted ones
    too. O(members).
    """
    if circle_membership is None or circle_membership.is_empty():
        return _empty_hits()
    members = circle_membership.select(
        pl.col("customer_id").cast(pl.String), pl.col("circle_id").cast(pl.String)
    ).join(defaulted, on="customer_id", how="left")
    per_circle = members.group_by("circle_id").agg(
        pl.col("defaulted").fill_null(False).sum().alias("defaulted_members")
    )
    fired = members.join(per_circle, on="circle_id").filter(pl.col("defaulted_members") > 0)
    plural = pl.when(pl.col("defaulted_members") == 1).then(pl.lit("")).otherwise(pl.lit("s"))
    reason = pl.format(
        "member of guarantee circle {} with {} defaulted member{}",
        pl.col("circle_id"),
        pl.col("defaulted_members"),
        plural,
    )
    return _hits(fired, "circle_default", policy.rule_tiers["circle_default"], reason)


def banned_share_hits(
    customer_flows: pl.DataFrame | None, policy: Policy, flows: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Customers whose drawn money reached banned sectors at a share >= ``policy.banned_share``.

    Parameters: ``customer_flows`` (customer_id, drawn_amount, banned_amount, banned_share);
    ``flows`` (per drawdown: drawdown_id, customer_id, banned_amount, min_hops_to_banned), when
    given, names the evidence: the drawdown that landed the most money in banned sectors and
    its hops (its paths are ``flow_paths.parquet``'s rows of that drawdown_id). Customers with
    nothing drawn never fire. O(n + drawdowns).
    """
    if customer_flows is None or customer_flows.is_empty():
        return _empty_hits()
    fired = customer_flows.filter(
        (pl.col("drawn_amount") > 0) & (pl.col("banned_share") >= policy.banned_share - TOLERANCE)
    )
    evidence = pl.lit("")
    if flows is not None and {"drawdown_id", "banned_amount"} <= set(flows.columns):
        top = evidence_drawdowns(flows).rename(
            {"evidence_drawdown": "top_drawdown", "evidence_hops": "top_hops"}
        )
        fired = fired.with_columns(pl.col("customer_id").cast(pl.String)).join(
            top, on="customer_id", how="left", maintain_order="left"
        )
        plural = pl.when(pl.col("top_hops") == 1).then(pl.lit("")).otherwise(pl.lit("s"))
        evidence = (
            pl.when(pl.col("top_drawdown").is_not_null())
            .then(
                pl.format(
                    ", most through drawdown {} ({} hop{})",
                    pl.col("top_drawdown"),
                    pl.col("top_hops"),
                    plural,
                )
            )
            .otherwise(pl.lit(""))
        )
    reason = pl.format(
        "{} of drawn money reached banned sectors (threshold {}){}",
        pct_text(pl.col("banned_share")),
        pl.lit(f"{policy.banned_share * 100:g}%"),
        evidence,
    )
    return _hits(fired, "banned_share", policy.rule_tiers["banned_share"], reason)


def evidence_drawdowns(flows: pl.DataFrame) -> pl.DataFrame:
    """Per customer, the drawdown that landed the most money in banned sectors: the evidence a
    ``banned_share`` alert names (ties: the smallest drawdown id).

    Parameters: ``flows`` (per drawdown: drawdown_id, customer_id, banned_amount,
    min_hops_to_banned). Returns (customer_id, evidence_drawdown, evidence_hops), customers
    with no banned money left out (all of them when ``flows`` lacks those columns).
    O(drawdowns log drawdowns).
    """
    needed = {"drawdown_id", "customer_id", "banned_amount", "min_hops_to_banned"}
    if not needed <= set(flows.columns):
        return pl.DataFrame(
            schema={
                "customer_id": pl.String,
                "evidence_drawdown": pl.String,
                "evidence_hops": pl.Int64,
            }
        )
    return (
        flows.filter(pl.col("banned_amount") > 0)
        .sort(["banned_amount", "drawdown_id"], descending=[True, False])
        .group_by(pl.col("customer_id").cast(pl.String), maintain_order=True)
        .first()
        .select(
            "customer_id",
            pl.col("drawdown_id").cast(pl.String).alias("evidence_drawdown"),
            pl.col("min_hops_to_banned").alias("evidence_hops"),
        )
    )


def daily_drawdowns(graph: RiskGraph) -> pl.DataFrame:
    """Drawdowns per customer per UTC day, over all of a customer's credit lines.

    Returns (customer_id, day: Date, drawdowns: Int64), ordered by customer id then day.
    O(D log D) for D drawdowns: one sort of a packed (customer, day) int64 key, which stays fast
    on a busy machine where a multi-threaded group-by on two columns does not.
    """
    edges = graph.edges["drawdown"]
    src = edges.get_column("src").to_numpy()
    customer = graph.line_customer()[src].astype(np.int64) if len(src) else np.empty(0, np.int64)
    day = edges.get_column("ts").dt.epoch("d").to_numpy().astype(np.int64)
    known = customer >= 0
    key = (customer[known] << 32) | (day[known] + (1 << 31))
    packed, counts = np.unique(key, return_counts=True)
    customer_idx = pl.Series(packed >> 32, dtype=pl.Int64)
    return pl.DataFrame(
        {
            "customer_id": graph.keys("Customer").gather(customer_idx),
            "day": pl.Series((packed & 0xFFFFFFFF) - (1 << 31), dtype=pl.Int32).cast(pl.Date),
            "drawdowns": pl.Series(counts, dtype=pl.Int64),
        }
    )


def burst_hits(daily: pl.DataFrame | None, policy: Policy) -> pl.DataFrame:
    """Customers with a day of at least ``policy.drawdowns_per_day`` drawdowns.

    Parameters: ``daily`` (customer_id, day, drawdowns) from :func:`daily_drawdowns`. With
    ``burst_lookback_days`` > 0 only days within that many days of the latest day count. The
    reason names the busiest day (the earliest of ties) and how many days reached the threshold.
    O(customer-days).
    """
    if daily is None or daily.is_empty():
        return _empty_hits()
    if policy.burst_lookback_days > 0:
        latest = daily.get_column("day").max()
        first = pl.lit(latest) - pl.duration(days=policy.burst_lookback_days - 1)
        daily = daily.filter(pl.col("day") >= first)
    threshold = policy.drawdowns_per_day
    fired = (
        daily.filter(pl.col("drawdowns") >= threshold)
        .sort(["customer_id", "drawdowns", "day"], descending=[False, True, False])
        .group_by("customer_id", maintain_order=True)
        .agg(
            pl.col("drawdowns").first().alias("most"),
            pl.col("day").first().alias("busiest"),
            pl.len().alias("days"),
        )
    )
    more = (
        pl.when(pl.col("days") > 1)
        .then(pl.format("; {} days at or above it", pl.col("days")))
        .otherwise(pl.lit(""))
    )
    reason = pl.format(
        "{} drawdowns on {} (threshold {}{})",
        pl.col("most"),
        pl.col("busiest").cast(pl.String),
        pl.lit(threshold),
        more,
    )
    return _hits(fired, "burst", policy.rule_tiers["burst"], reason)


def ring_hits(ring_membership: pl.DataFrame | None, policy: Policy) -> pl.DataFrame:
    """Members of a device-sharing ring. Parameters: (customer_id, ring_id). O(members)."""
    if ring_membership is None or ring_membership.is_empty():
        return _empty_hits()
    members = ring_membership.select(
        pl.col("customer_id").cast(pl.String), pl.col("ring_id").cast(pl.String)
    ).with_columns((pl.len().over("ring_id") - 1).alias("others"))
    plural = pl.when(pl.col("others") == 1).then(pl.lit("")).otherwise(pl.lit("s"))
    reason = pl.format(
        "shares devices with {} other customer{} in device ring {}",
        pl.col("others"),
        plural,
        pl.col("ring_id"),
    )
    return _hits(members, "ring", policy.rule_tiers["ring"], reason)


def cluster_hits(
    cluster_membership: pl.DataFrame | None, cluster_risk: pl.DataFrame | None, policy: Policy
) -> pl.DataFrame:
    """Members of a related-enterprise cluster whose tier is orange or red.

    Parameters: ``cluster_membership`` (customer_id, cluster_id); ``cluster_risk`` (cluster_id,
    ..., risk_score, tier). Rule ``cluster_orange`` or ``cluster_red`` by the cluster's tier.
    O(members).
    """
    if (
        cluster_membership is None
        or cluster_risk is None
        or cluster_membership.is_empty()
        or "tier" not in cluster_risk.columns
    ):
        return _empty_hits()
    risk = cluster_risk.select(
        pl.col("cluster_id").cast(pl.String),
        pl.col("tier").alias("cluster_tier"),
        (
            pl.col("risk_score")
            if "risk_score" in cluster_risk.columns
            else pl.lit(None, dtype=pl.Float64)
        ).alias("cluster_risk"),
    ).filter(pl.col("cluster_tier").is_in(["orange", "red"]))
    members = cluster_membership.select(
        pl.col("customer_id").cast(pl.String), pl.col("cluster_id").cast(pl.String)
    ).with_columns(pl.len().over("cluster_id").alias("size"))
    fired = members.join(risk, on="cluster_id")
    risk_text = (
        pl.when(pl.col("cluster_risk").is_not_null())
        .then(pl.format(", cluster risk {}", score_text(pl.col("cluster_risk"))))
        .otherwise(pl.lit(""))
    )
    reason = pl.format(
        "member of related-enterprise cluster {} ({} customers) whose tier is {}{}",
        pl.col("cluster_id"),
        pl.col("size"),
        pl.col("cluster_tier"),
        risk_text,
    )
    rule_tier = (
        pl.when(pl.col("cluster_tier") == "red")
        .then(pl.lit(policy.rule_tiers["cluster_red"]))
        .otherwise(pl.lit(policy.rule_tiers["cluster_orange"]))
    )
    fired = fired.with_columns(rule=pl.concat_str(pl.lit("cluster_"), pl.col("cluster_tier")))
    return fired.select("customer_id", "rule", rule_tier.alias("tier"), reason.alias("reason"))


def cosmetic_hits(features: pl.DataFrame | None, policy: Policy) -> pl.DataFrame:
    """Customers whose record shows the credit-cosmetics pattern (``cosmetic_pattern`` = 1).

    Parameters: ``features`` (customer_id, cosmetic_pattern, draw_share_of_limit,
    quick_repaid_share, draw_amount_regularity, draw_interval_regularity: gnn/cosmetics.py).
    A run without those features fires nothing. O(customers).
    """
    if features is None or "cosmetic_pattern" not in features.columns:
        return _empty_hits()
    fired = features.filter(pl.col("cosmetic_pattern") > 0)
    reason = pl.format(
        "credit cosmetics: small regular drawdowns ({} of the limit), {} repaid within a day; "
        "amount regularity {}, interval regularity {}",
        pct_text(pl.col("draw_share_of_limit")),
        pct_text(pl.col("quick_repaid_share")),
        score_text(pl.col("draw_amount_regularity")),
        score_text(pl.col("draw_interval_regularity")),
    )
    return _hits(fired, "cosmetic", policy.rule_tiers["cosmetic"], reason)


# -- combining -----------------------------------------------------------------------------------


def customer_tiers(
    customers: pl.Series, hits: pl.DataFrame, scores: pl.DataFrame | None
) -> pl.DataFrame:
    """One row per customer: the highest tier over its hits, its response and reasons.

    Reasons are listed from the most severe hit down (score first among equals, then
    :data:`RULES` order), joined with ``"; "``. Returns (customer_id, tier, response, risk_score,
    rules, reasons); customers without hits are green with empty reasons.
    """
    order = {rule: i for i, rule in enumerate(("score", *RULES))}
    ranked = hits.with_columns(
        pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8).alias("rank"),
        pl.col("rule").replace_strict(order, return_dtype=pl.Int8).alias("order"),
    ).sort(["customer_id", "rank", "order"], descending=[False, True, False])
    per_customer = ranked.group_by("customer_id", maintain_order=True).agg(
        pl.col("rank").max(),
        pl.col("rule").str.join(",").alias("rules"),
        pl.col("reason").str.join("; ").alias("reasons"),
    )
    frame = pl.DataFrame({"customer_id": customers.cast(pl.String)}).join(
        per_customer, on="customer_id", how="left", maintain_order="left"
    )
    if scores is not None and "risk_score" in scores.columns:
        frame = frame.join(
            scores.select(pl.col("customer_id").cast(pl.String), "risk_score"),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
    else:
        frame = frame.with_columns(risk_score=pl.lit(None, dtype=pl.Float64))
    tier = (
        pl.col("rank").fill_null(0).replace_strict(dict(enumerate(TIERS)), return_dtype=pl.String)
    )
    return frame.select(
        "customer_id",
        tier.alias("tier"),
        tier.replace_strict(RESPONSES, return_dtype=pl.String).alias("response"),
        "risk_score",
        pl.col("rules").fill_null(""),
        pl.col("reasons").fill_null(""),
    )


def apply_budget(
    tiers: pl.DataFrame, hits: pl.DataFrame, policy: Policy
) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """``tiers`` (from :func:`customer_tiers`) within the policy's alert budget.

    The tier asked for is the highest over the hits (kept as ``asked_tier``); demanding rules
    (``policy.demanding``) keep their tier; the tier itself is decided by
    :func:`graphkit.tiers.budget_tiers`. A customer the budget moves down gets the reason
    ``alert budget: orange asked, yellow given`` after its other reasons. Returns the frame and
    the budget report per tier (budget, kept, over, filled). O(n log n).
    """
    kept = (
        hits.filter(pl.col("rule").is_in(list(policy.demanding)))
        .with_columns(pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8).alias("r"))
        .group_by("customer_id")
        .agg(pl.col("r").max())
    )
    asked = tiers.rename({"tier": "asked_tier"}).join(
        kept, on="customer_id", how="left", maintain_order="left"
    )
    # Rule severity: how many rules other than the score send the customer to the tier it
    # asks for (the score itself orders the customers next): a customer a rule sends to red goes
    # before one its score alone sends there, and two rules before one.
    severity = (
        hits.join(asked.select("customer_id", "asked_tier"), on="customer_id")
        .filter((pl.col("tier") == pl.col("asked_tier")) & (pl.col("rule") != "score"))
        .group_by("customer_id")
        .agg(pl.col("rule").n_unique().cast(pl.Int32).alias("severity"))
    )
    asked = asked.join(severity, on="customer_id", how="left", maintain_order="left")
    frame = asked.select(
        "customer_id",
        pl.col("asked_tier").alias("asked"),
        pl.col("r")
        .fill_null(0)
        .replace_strict(dict(enumerate(TIERS)), return_dtype=pl.String)
        .alias("kept"),
        "risk_score",
        pl.col("severity").fill_null(0),
    )
    tier, report = budget_tiers(frame, policy.budget)
    moved = pl.col("tier") != pl.col("asked_tier")
    note = pl.format("alert budget: {} asked, {} given", pl.col("asked_tier"), pl.col("tier"))
    out = asked.with_columns(tier).with_columns(
        pl.col("tier").replace_strict(RESPONSES, return_dtype=pl.String).alias("response"),
        pl.when(moved & (pl.col("reasons") != ""))
        .then(pl.concat_str([pl.col("reasons"), note], separator="; "))
        .otherwise(pl.col("reasons"))
        .alias("reasons"),
    )
    return out.select(
        "customer_id", "tier", "response", "risk_score", "rules", "reasons", "asked_tier"
    ), report


def scores_within_budget(scores: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """``scores`` (customer_id, ..., tier) with each score's tier lowered to its customer's tier
    in ``customers`` (from :func:`apply_budget`) where the budget moved the customer down, so
    that ``scores.parquet`` and the alerts agree. O(n)."""
    rank = pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8)
    final = customers.select(pl.col("customer_id").cast(pl.String), rank.alias("_final"))
    return (
        scores.join(final, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            pl.min_horizontal(rank, pl.col("_final").fill_null(rank))
            .replace_strict(dict(enumerate(TIERS)), return_dtype=pl.String)
            .alias("tier")
        )
        .drop("_final")
    )


def line_exposure(graph: RiskGraph) -> pl.DataFrame:
    """Per credit line: its customer, limit and outstanding balance.

    ``outstanding = max(0, sum of drawdowns - sum of repayments paid)`` (a repayment counts as
    paid when ``paid_at`` is set). Returns (line_id, customer_id, limit, outstanding). O(lines +
    drawdowns + repayments).
    """
    lines = graph.nodes["CreditLine"].select("line_id", "customer_id", "limit")
    n = lines.height
    src = graph.edges["drawdown"].get_column("src").to_numpy()
    amount = graph.edges["drawdown"].get_column("amount").fill_null(0).to_numpy()
    drawn = np.bincount(src, weights=amount, minlength=n) if n else np.zeros(0)
    paid = graph.repayments.filter(pl.col("paid_at").is_not_null())
    line_ids = graph.ids("CreditLine", paid.get_column("line_id"))
    known = line_ids >= 0
    repaid = (
        np.bincount(
            line_ids[known],
            weights=paid.get_column("amount").fill_null(0).to_numpy()[known],
            minlength=n,
        )
        if n
        else np.zeros(0)
    )
    return lines.with_columns(
        outstanding=pl.Series(np.clip(drawn - repaid, 0.0, None), dtype=pl.Float64)
    )


def limit_advice(tiers: pl.DataFrame, lines: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """One row per credit line of every non-green customer, with a recommended limit.

    The rule (docs/alerts.md): with ``s`` the customer's risk score (0 when there is none) and
    the tier's ``min_cut``/``score_cut``::

        cut         = min(1, min_cut + score_cut * s)
        recommended = min(limit, max(outstanding, floor_to(limit * (1 - cut), round_to)))

    A limit is never raised and never cut below what is owed; red (cut 1) leaves no headroom.
    A non-green customer without credit lines gets one row with empty line fields.

    Parameters: ``tiers`` from :func:`customer_tiers`; ``lines`` from :func:`line_exposure`.
    Returns the columns of :data:`ALERT_COLUMNS`, most severe first. O(lines).
    """
    alerted = tiers.filter(pl.col("tier") != "green")
    rows = alerted.join(
        lines.select(pl.col("customer_id").cast(pl.String), "line_id", "limit", "outstanding"),
        on="customer_id",
        how="left",
    )
    min_cut = {t: r.min_cut for t, r in policy.limits.items()}
    score_cut = {t: r.score_cut for t, r in policy.limits.items()}
    s = pl.col("risk_score").fill_null(0.0)
    rows = rows.with_columns(
        pl.col("tier").replace_strict(min_cut, return_dtype=pl.Float64).alias("min_cut"),
        pl.col("tier").replace_strict(score_cut, return_dtype=pl.Float64).alias("score_cut"),
    ).with_columns(
        pl.min_horizontal(pl.lit(1.0), pl.col("min_cut") + pl.col("score_cut") * s).alias("cut")
    )
    target = pl.col("limit") * (1 - pl.col("cut"))
    if policy.round_to > 0:
        # A tiny epsilon keeps 55000.0000001-style float noise from rounding a step down.
        target = ((target + 1e-6) / policy.round_to).floor() * policy.round_to
    rows = rows.with_columns(target.alias("target")).with_columns(
        pl.min_horizontal("limit", pl.max_horizontal("outstanding", "target")).alias(
            "recommended_limit"
        ),
        (pl.col("outstanding") / pl.col("limit")).alias("utilisation"),
    )
    why_cut = pl.format(
        "{} cut {} ({} + {} x risk score {})",
        pl.col("tier"),
        pct_text(pl.col("cut")),
        pct_text(pl.col("min_cut")),
        pct_text(pl.col("score_cut")),
        score_text(s),
    )
    limit_reason = (
        pl.when(pl.col("line_id").is_null())
        .then(pl.lit("no credit line"))
        .when(pl.col("cut") <= 0)
        .then(pl.format("{}: limit {} kept", pl.col("tier"), num_text(pl.col("limit"))))
        .when(pl.col("outstanding") >= pl.col("limit"))
        .then(
            pl.format(
                "{}: the outstanding {} already reaches the limit {}: limit kept, no headroom left",
                why_cut,
                num_text(pl.col("outstanding")),
                num_text(pl.col("limit")),
            )
        )
        .when(pl.col("target") <= pl.col("outstanding"))
        .then(
            pl.format(
                "{} would go below the outstanding {}: limit set to the outstanding, "
                "no headroom left",
                why_cut,
                num_text(pl.col("outstanding")),
            )
        )
        .otherwise(
            pl.format(
                "{}: limit {} -> {}",
                why_cut,
                num_text(pl.col("limit")),
                num_text(pl.col("recommended_limit")),
            )
        )
    )
    return (
        rows.with_columns(
            limit_reason.alias("limit_reason"),
            pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8).alias("rank"),
        )
        .sort(
            ["rank", "risk_score", "customer_id", "line_id"],
            descending=[True, True, False, False],
            nulls_last=True,
        )
        .select(ALERT_COLUMNS)
    )


def recommended_limit(
    limit: float, outstanding: float, tier: str, risk_score: float | None, policy: Policy
) -> float:
    """The recommended limit of one line: the rule of :func:`limit_advice` for a single line
    (the live path's decisions; tested against :func:`limit_advice`). O(1)."""
    rule = policy.limits[tier]
    cut = min(1.0, rule.min_cut + rule.score_cut * (risk_score or 0.0))
    target = limit * (1 - cut)
    if policy.round_to > 0:
        target = math.floor((target + 1e-6) / policy.round_to) * policy.round_to
    return min(limit, max(outstanding, target))


@dataclass
class AlertResult:
    """Everything the alerts stage produces."""

    customers: pl.DataFrame  # customer_tiers(): every customer, green included
    alerts: pl.DataFrame  # limit_advice(): the alerts.csv rows
    hits: pl.DataFrame  # every rule hit (customer_id, rule, tier, reason)
    policy: Policy
    # Per tier: budget, kept (by demanding rules), over (past the budget), filled; empty when
    # the policy's budget mode is "absolute".
    budget: dict[str, dict[str, int]] = field(default_factory=dict)


def evaluate(
    graph: RiskGraph,
    policy: Policy,
    *,
    scores: pl.DataFrame | None = None,
    circle_membership: pl.DataFrame | None = None,
    customer_flows: pl.DataFrame | None = None,
    ring_membership: pl.DataFrame | None = None,
    cluster_membership: pl.DataFrame | None = None,
    cluster_risk: pl.DataFrame | None = None,
    features: pl.DataFrame | None = None,
    flows: pl.DataFrame | None = None,
) -> AlertResult:
    """Apply every rule whose inputs exist, combine tiers, and advise limits.

    Parameters: the risk graph (customers, labels, lines, drawdowns), the policy, and the
    earlier stages' frames, each optional (a rule whose input is None fires nothing):
    ``scores`` (customer_id, risk_score), ``circle_membership`` (customer_id, circle_id),
    ``customer_flows`` (customer_id, drawn_amount, banned_share), ``ring_membership``
    (customer_id, ring_id), ``cluster_membership`` (customer_id, cluster_id) and
    ``cluster_risk`` (cluster_id, size, risk_score, tier), ``features`` (customer_id, one
    column per feature: the drivers named in the reasons) and ``flows`` (per drawdown:
    drawdown_id, customer_id, banned_amount, min_hops_to_banned: the evidence of
    ``banned_share``).
    Complexity: O(customers + lines + drawdowns) joins.
    """
    customers = graph.nodes["Customer"]
    defaulted = customers.select(
        pl.col("customer_id").cast(pl.String), pl.col("defaulted").cast(pl.Boolean)
    )
    hits = pl.concat(
        [
            score_hits(scores, policy),
            defaulted_hits(defaulted, policy),
            circle_default_hits(circle_membership, defaulted, policy),
            banned_share_hits(customer_flows, policy, flows),
            burst_hits(daily_drawdowns(graph), policy),
            ring_hits(ring_membership, policy),
            cluster_hits(cluster_membership, cluster_risk, policy),
            cosmetic_hits(features, policy),
        ],
        how="vertical_relaxed",
    )
    tiers = customer_tiers(customers.get_column("customer_id"), hits, scores)
    budget: dict[str, dict[str, int]] = {}
    if policy.budget_mode == "budget":
        tiers, budget = apply_budget(tiers, hits, policy)
    tiers = add_drivers(tiers, defaulted, features)
    alerts = limit_advice(tiers, line_exposure(graph), policy)
    return AlertResult(customers=tiers, alerts=alerts, hits=hits, policy=policy, budget=budget)


def count_tiers(tiers: pl.DataFrame) -> dict[str, int]:
    """Customers per tier, every tier present (green first)."""
    counts = dict(tiers.group_by("tier").len().iter_rows())
    return {tier: int(counts.get(tier, 0)) for tier in TIERS}
