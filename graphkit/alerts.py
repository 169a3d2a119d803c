"""Alerts: four colours, three responses, and a recommended limit for every alerted credit line.

A customer's tier is the highest of

* its **score tier**: ``risk_score`` against the policy's yellow/orange/red thresholds, and
* the tier of every **rule** it hits: member of a guarantee circle with a defaulted member
  (``circle_default``), banned share of drawn money at or above a threshold (``banned_share``),
  a day with at least N drawdowns over all its lines (``burst``), member of a device-sharing ring
  (``ring``), member of an orange or red related-enterprise cluster (``cluster_orange``,
  ``cluster_red``).

A rule whose input is missing (its stage did not run) does not fire and is not mentioned.
Every hit carries a reason in plain words. The responses: green no action, yellow soft
intervention, orange freeze further drawdowns or cut the limit, red suspend the line and open a
case. Limit advice (see :func:`limit_advice`) gives each line of an alerted customer a
recommended limit and the reason for it. The policy (thresholds, rule tiers, limit factors) is a
TOML file: ``graphkit/policy.toml`` holds the documented defaults (docs/alerts.md).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from graphkit.config import AlertsConfig, ConfigError
from graphkit.schema import TIERS

if TYPE_CHECKING:
    from graphkit.graph import RiskGraph
    from graphkit.pipeline import RunContext

TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}

RESPONSES: dict[str, str] = {
    "green": "no action",
    "yellow": "soft intervention: notify the customer and guide their use of credit",
    "orange": "freeze further drawdowns or cut the limit",
    "red": "suspend the line and open a case",
}

# Rules in the order their reasons are listed (after the score reason).
RULES: tuple[str, ...] = (
    "circle_default",
    "banned_share",
    "burst",
    "ring",
    "cluster_orange",
    "cluster_red",
)

# Shares and scores are computed in floating point: a share of exactly 30% may come out as
# 0.29999999999999999; a threshold compares with this much slack so "at threshold" fires.
TOLERANCE = 1e-9

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


class PolicyError(ConfigError):
    """An alert policy file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class LimitRule:
    """How much of a line's limit a tier cuts: ``min(1, min_cut + score_cut x risk_score)``."""

    min_cut: float
    score_cut: float


@dataclass(frozen=True)
class Policy:
    """Alert thresholds, the tier each rule raises a customer to, and limit-advice factors."""

    yellow_score: float
    orange_score: float
    red_score: float
    drawdowns_per_day: int
    burst_lookback_days: int
    banned_share: float
    rule_tiers: dict[str, str]
    round_to: float
    limits: dict[str, LimitRule]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_policy_text() -> str:
    """The packaged default policy (``graphkit/policy.toml``), comments included."""
    return resources.files("graphkit").joinpath("policy.toml").read_text(encoding="utf-8")


def _default_policy_data() -> dict[str, Any]:
    return tomllib.loads(default_policy_text())


def _merge(defaults: dict[str, Any], data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``defaults`` overlaid with ``data``; every key must exist with the default's type."""
    merged = dict(defaults)
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in defaults:
            raise PolicyError(f"{path}: unknown key (known: {', '.join(sorted(defaults))})")
        current = defaults[key]
        if isinstance(current, dict):
            if not isinstance(value, dict):
                raise PolicyError(f"{path}: expected a table, got {value!r}")
            merged[key] = _merge(current, value, path)
        elif isinstance(current, int) and not isinstance(current, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(f"{path}: expected an integer, got {value!r}")
            merged[key] = value
        elif isinstance(current, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"{path}: expected a number, got {value!r}")
            merged[key] = float(value)
        elif isinstance(current, str):
            if not isinstance(value, str):
                raise PolicyError(f"{path}: expected a string, got {value!r}")
            merged[key] = value
        else:
            raise PolicyError(f"{path}: unsupported value {value!r}")
    return merged


def _build(data: dict[str, Any]) -> Policy:
    thresholds, tiers, limits = data["thresholds"], data["rule_tiers"], data["limits"]
    for rule, tier in tiers.items():
        if tier not in TIER_RANK:
            raise PolicyError(f"rule_tiers.{rule}: {tier!r} is not a tier ({', '.join(TIERS)})")
    if thresholds["yellow_score"] < 0:
        raise PolicyError(f"thresholds.yellow_score: {thresholds['yellow_score']} must be >= 0")
    if thresholds["red_score"] > 1:
        raise PolicyError(f"thresholds.red_score: {thresholds['red_score']} must be <= 1")
    for low_key, high_key in (("yellow_score", "orange_score"), ("orange_score", "red_score")):
        low, high = thresholds[low_key], thresholds[high_key]
        if low > high:
            raise PolicyError(
                f"thresholds.{high_key}: {high} is below thresholds.{low_key} {low}; "
                "scores must satisfy yellow_score <= orange_score <= red_score"
            )
    if thresholds["drawdowns_per_day"] < 1:
        raise PolicyError("thresholds.drawdowns_per_day: must be >= 1")
    if thresholds["burst_lookback_days"] < 0:
        raise PolicyError("thresholds.burst_lookback_days: must be >= 0 (0 = all history)")
    if not 0 <= thresholds["banned_share"] <= 1:
        raise PolicyError(f"thresholds.banned_share: {thresholds['banned_share']} not in [0, 1]")
    if limits["round_to"] < 0:
        raise PolicyError("limits.round_to: must be >= 0")
    rules: dict[str, LimitRule] = {}
    for tier in TIERS:
        for key in ("min_cut", "score_cut"):
            if not 0 <= limits[tier][key] <= 1:
                raise PolicyError(f"limits.{tier}.{key}: {limits[tier][key]} not in [0, 1]")
        rules[tier] = LimitRule(limits[tier]["min_cut"], limits[tier]["score_cut"])
    return Policy(
        yellow_score=thresholds["yellow_score"],
        orange_score=thresholds["orange_score"],
        red_score=thresholds["red_score"],
        drawdowns_per_day=thresholds["drawdowns_per_day"],
        burst_lookback_days=thresholds["burst_lookback_days"],
        banned_share=thresholds["banned_share"],
        rule_tiers=dict(tiers),
        round_to=limits["round_to"],
        limits=rules,
    )


def parse_policy(data: Mapping[str, Any], source: str = "policy") -> Policy:
    """A :class:`Policy` from a TOML-shaped mapping over the packaged defaults.

    Raises :class:`PolicyError` naming ``source`` and the offending key.
    """
    try:
        return _build(_merge(_default_policy_data(), data, ""))
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def load_policy(alerts: AlertsConfig | None = None, path: Path | str | None = None) -> Policy:
    """The effective alert policy.

    Layers, later wins: the packaged ``policy.toml``; the thresholds of the run config's
    ``[alerts]`` section; the policy file (``path``, else ``alerts.policy_file`` when set).
    """
    data = _default_policy_data()
    if alerts is not None:
        data = _merge(
            data,
            {
                "thresholds": {
                    "yellow_score": alerts.yellow_score,
                    "orange_score": alerts.orange_score,
                    "red_score": alerts.red_score,
                    "drawdowns_per_day": alerts.drawdowns_per_day,
                    "banned_share": alerts.banned_share,
                }
            },
            "",
        )
        if path is None and alerts.policy_file:
            path = alerts.policy_file
    source = "[alerts]"
    if path is not None:
        source = str(path)
        try:
            overrides = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyError(f"{path}: policy file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from None
        try:
            data = _merge(data, overrides, "")
        except PolicyError as exc:
            raise PolicyError(f"{path}: {exc}") from None
    try:
        return _build(data)
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


# -- formatting helpers (polars expressions, so reasons are built without row loops) ----------


def _num(expr: pl.Expr) -> pl.Expr:
    """An amount as text: whole numbers without decimals, others with two."""
    return (
        pl.when(expr == expr.round(0))
        .then(expr.round(0).cast(pl.Int64).cast(pl.String))
        .otherwise(expr.round(2).cast(pl.String))
    )


def _pct(expr: pl.Expr) -> pl.Expr:
    return (expr * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")


def _score(expr: pl.Expr) -> pl.Expr:
    """A score with two decimals ("0.70", not "0.7")."""
    cents = (expr * 100).round(0).cast(pl.Int64)
    return (cents // 100).cast(pl.String) + pl.lit(".") + (cents % 100).cast(pl.String).str.zfill(2)


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
    bounds = [("red", policy.red_score), ("orange", policy.orange_score)]
    bounds.append(("yellow", policy.yellow_score))
    s = pl.col("risk_score")
    tier = pl.lit(None, dtype=pl.String)
    threshold = pl.lit(None, dtype=pl.Float64)
    for name, bound in reversed(bounds):
        reached = s >= bound - TOLERANCE
        tier = pl.when(reached).then(pl.lit(name)).otherwise(tier)
        threshold = pl.when(reached).then(pl.lit(bound)).otherwise(threshold)
    scored = scores.select("customer_id", "risk_score").with_columns(
        tier.alias("score_tier"), threshold.alias("bound")
    )
    fired = scored.filter(pl.col("score_tier").is_not_null())
    reason = pl.format(
        "risk score {} at or above the {} threshold {}",
        _score(s),
        pl.col("score_tier"),
        _score(pl.col("bound")),
    )
    return _hits(fired, "score", pl.col("score_tier"), reason)


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


def banned_share_hits(customer_flows: pl.DataFrame | None, policy: Policy) -> pl.DataFrame:
    """Customers whose drawn money reached banned sectors at a share >= ``policy.banned_share``.

    Parameters: ``customer_flows`` (customer_id, drawn_amount, banned_amount, banned_share).
    Customers with nothing drawn never fire. O(n).
    """
    if customer_flows is None or customer_flows.is_empty():
        return _empty_hits()
    fired = customer_flows.filter(
        (pl.col("drawn_amount") > 0) & (pl.col("banned_share") >= policy.banned_share - TOLERANCE)
    )
    reason = pl.format(
        "{} of drawn money reached banned sectors (threshold {})",
        _pct(pl.col("banned_share")),
        pl.lit(f"{policy.banned_share * 100:g}%"),
    )
    return _hits(fired, "banned_share", policy.rule_tiers["banned_share"], reason)


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
        .then(pl.format(", cluster risk {}", _score(pl.col("cluster_risk"))))
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
        _pct(pl.col("cut")),
        _pct(pl.col("min_cut")),
        _pct(pl.col("score_cut")),
        _score(s),
    )
    limit_reason = (
        pl.when(pl.col("line_id").is_null())
        .then(pl.lit("no credit line"))
        .when(pl.col("cut") <= 0)
        .then(pl.format("{}: limit {} kept", pl.col("tier"), _num(pl.col("limit"))))
        .when(pl.col("outstanding") >= pl.col("limit"))
        .then(
            pl.format(
                "{}: the outstanding {} already reaches the limit {}: limit kept, no headroom left",
                why_cut,
                _num(pl.col("outstanding")),
                _num(pl.col("limit")),
            )
        )
        .when(pl.col("target") <= pl.col("outstanding"))
        .then(
            pl.format(
                "{} would go below the outstanding {}: limit set to the outstanding, "
                "no headroom left",
                why_cut,
                _num(pl.col("outstanding")),
            )
        )
        .otherwise(
            pl.format(
                "{}: limit {} -> {}",
                why_cut,
                _num(pl.col("limit")),
                _num(pl.col("recommended_limit")),
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


def evaluate(
    graph: RiskGraph,
    results: Mapping[str, Any],
    outputs: Mapping[str, pl.DataFrame],
    policy: Policy,
) -> AlertResult:
    """Apply every rule whose inputs exist, combine tiers, and advise limits.

    ``results`` holds the pipeline's per-customer frames (scores, circle_membership,
    ring_membership, customer_flows, cluster_membership); ``outputs`` may hold
    ``cluster_risk.parquet``. Complexity: O(customers + lines + drawdowns) joins.
    """
    customers = graph.nodes["Customer"]
    defaulted = customers.select(
        pl.col("customer_id").cast(pl.String), pl.col("defaulted").cast(pl.Boolean)
    )
    scores = results.get("scores")
    hits = pl.concat(
        [
            score_hits(scores, policy),
            circle_default_hits(results.get("circle_membership"), defaulted, policy),
            banned_share_hits(results.get("customer_flows"), policy),
            burst_hits(daily_drawdowns(graph), policy),
            ring_hits(results.get("ring_membership"), policy),
            cluster_hits(
                results.get("cluster_membership"), outputs.get("cluster_risk.parquet"), policy
            ),
        ],
        how="vertical_relaxed",
    )
    tiers = customer_tiers(customers.get_column("customer_id"), hits, scores)
    alerts = limit_advice(tiers, line_exposure(graph), policy)
    return AlertResult(customers=tiers, alerts=alerts, hits=hits, policy=policy)


def count_tiers(tiers: pl.DataFrame) -> dict[str, int]:
    """Customers per tier, every tier present (green first)."""
    counts = dict(tiers.group_by("tier").len().iter_rows())
    return {tier: int(counts.get(tier, 0)) for tier in TIERS}


def alerts_stage(ctx: RunContext) -> None:
    """Pipeline stage: ``alerts.csv``, ``customer_alerts.parquet``, ``alert_hits.parquet``."""
    policy = load_policy(ctx.config.alerts)
    result = evaluate(ctx.graph, ctx.results, ctx.outputs, policy)
    ctx.outputs["alerts.csv"] = result.alerts
    ctx.outputs["customer_alerts.parquet"] = result.customers
    ctx.outputs["alert_hits.parquet"] = result.hits
    ctx.results["alerts"] = result.customers
    tiers = count_tiers(result.customers)
    for tier, count in tiers.items():
        ctx.counts[f"customers_{tier}"] = count
    ctx.manifest_extra["alerts"] = {
        "tiers": tiers,
        "alerted_lines": result.alerts.filter(pl.col("line_id").is_not_null()).height,
        "policy": policy.to_dict(),
        "policy_file": ctx.config.alerts.policy_file or None,
    }


# -- reading a run directory ---------------------------------------------------------------------


class RunDirError(ValueError):
    """A run directory is missing or lacks the file asked for."""


def read_alerts(run_dir: Path | str, min_tier: str = "yellow") -> pl.DataFrame:
    """The rows of ``run_dir/alerts.csv`` at ``min_tier`` or above, most severe first."""
    if min_tier not in TIER_RANK:
        raise ValueError(f"unknown tier {min_tier!r} (one of {', '.join(TIERS)})")
    path = Path(run_dir) / "alerts.csv"
    if not path.is_file():
        raise RunDirError(f"{path}: not found (was the alerts stage run?)")
    frame = pl.read_csv(
        path,
        schema_overrides={"customer_id": pl.String, "line_id": pl.String, "rules": pl.String},
    )
    wanted = [t for t in TIERS if TIER_RANK[t] >= TIER_RANK[min_tier]]
    return frame.filter(pl.col("tier").is_in(wanted))


def tier_counts(run_dir: Path | str) -> dict[str, int]:
    """Customers per tier in a finished run (green first); all zero if no alerts were made.

    Read from ``customer_alerts.parquet`` (every customer), for ``graphkit run``'s summary.
    """
    path = Path(run_dir) / "customer_alerts.parquet"
    if not path.is_file():
        manifest = Path(run_dir) / "manifest.json"
        if manifest.is_file():
            saved = json.loads(manifest.read_text()).get("alerts", {}).get("tiers")
            if saved:
                return {tier: int(saved.get(tier, 0)) for tier in TIERS}
        return dict.fromkeys(TIERS, 0)
    return count_tiers(pl.read_parquet(path, columns=["tier"]))


def tier_summary(run_dir: Path | str) -> str:
    """One line such as ``"green 1830, yellow 112, orange 49, red 9"``."""
    return ", ".join(f"{tier} {n}" for tier, n in tier_counts(run_dir).items())


__all__ = [
    "RESPONSES",
    "RULES",
    "TIER_RANK",
    "AlertResult",
    "LimitRule",
    "Policy",
    "PolicyError",
    "alerts_stage",
    "banned_share_hits",
    "burst_hits",
    "circle_default_hits",
    "cluster_hits",
    "count_tiers",
    "customer_tiers",
    "daily_drawdowns",
    "default_policy_text",
    "evaluate",
    "limit_advice",
    "line_exposure",
    "load_policy",
    "parse_policy",
    "read_alerts",
    "ring_hits",
    "score_hits",
    "tier_counts",
    "tier_summary",
]
