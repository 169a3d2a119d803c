"""Alerts: four colours, three responses, and a recommended limit for every alerted credit line.

A customer's tier is the highest of

* its **score tier**: ``risk_score`` against the policy's yellow/orange/red thresholds, and
* the tier of every **rule** it hits: labelled as defaulted (``defaulted``), member of a
  guarantee circle with a defaulted member (``circle_default``), banned share of drawn money at
  or above a threshold (``banned_share``), a day with at least N drawdowns over all its lines
  (``burst``), member of a device-sharing ring (``ring``), member of an orange or red
  related-enterprise cluster (``cluster_orange``, ``cluster_red``), a record showing the
  credit-cosmetics pattern (``cosmetic``: small regular drawdowns each repaid at once, the
  ``cosmetic_pattern`` feature of gnn/cosmetics.py).

A rule whose input is missing (its stage did not run) does not fire and is not mentioned.
Every hit carries a reason in plain words. The responses: green no action, yellow soft
intervention, orange freeze further drawdowns or cut the limit, red suspend the line and open a
case. Limit advice (see :func:`limit_advice`) gives each line of an alerted customer a
recommended limit and the reason for it. The policy (thresholds, rule tiers, limit factors) is a
TOML file: ``graphkit/policy.toml`` holds the documented defaults (docs/alerts.md).
"""

from graphkit.alerts.drivers import NOT_DRIVERS, add_drivers, feature_drivers
from graphkit.alerts.network import (
    NETWORK_MIN_EFFECT,
    NETWORK_TIERS,
    NETWORK_TOP,
    append_reasons,
    network_reasons,
    to_explain,
)
from graphkit.alerts.policy import (
    TIER_RANK,
    LimitRule,
    Policy,
    PolicyError,
    default_policy_text,
    load_policy,
    parse_policy,
)
from graphkit.alerts.rules import (
    ALERT_COLUMNS,
    HITS_SCHEMA,
    RESPONSES,
    RULES,
    AlertResult,
    apply_budget,
    banned_share_hits,
    burst_hits,
    circle_default_hits,
    cluster_hits,
    cosmetic_hits,
    count_tiers,
    customer_tiers,
    daily_drawdowns,
    defaulted_hits,
    evaluate,
    evidence_drawdowns,
    limit_advice,
    line_exposure,
    recommended_limit,
    ring_hits,
    score_hits,
    scores_within_budget,
)
from graphkit.alerts.rundir import RunDirError, read_alerts, tier_counts, tier_summary

__all__ = [
    "ALERT_COLUMNS",
    "HITS_SCHEMA",
    "NETWORK_MIN_EFFECT",
    "NETWORK_TIERS",
    "NETWORK_TOP",
    "NOT_DRIVERS",
    "RESPONSES",
    "RULES",
    "TIER_RANK",
    "AlertResult",
    "LimitRule",
    "Policy",
    "PolicyError",
    "RunDirError",
    "add_drivers",
    "append_reasons",
    "apply_budget",
    "banned_share_hits",
    "burst_hits",
    "circle_default_hits",
    "cluster_hits",
    "cosmetic_hits",
    "count_tiers",
    "customer_tiers",
    "daily_drawdowns",
    "default_policy_text",
    "defaulted_hits",
    "evaluate",
    "evidence_drawdowns",
    "feature_drivers",
    "limit_advice",
    "line_exposure",
    "load_policy",
    "network_reasons",
    "parse_policy",
    "read_alerts",
    "recommended_limit",
    "ring_hits",
    "score_hits",
    "scores_within_budget",
    "tier_counts",
    "tier_summary",
    "to_explain",
]
