"""The alert policy: score thresholds, the tier each rule raises a customer to, limit factors.

Layers, later wins: the packaged ``graphkit/policy.toml`` (the documented defaults,
docs/alerts.md); the thresholds of the run config's ``[alerts]``; a policy file
(``alerts.policy_file`` or a path). A policy is validated once, when it is loaded: unknown keys,
wrong types, tiers other than green/yellow/orange/red and thresholds out of order raise
:class:`PolicyError` naming the file and the key. The pipeline loads one per run and tiers
scores, cluster risk and alerts by it (:func:`graphkit.tiers.tier_for`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from graphkit.config import AlertsConfig, ConfigError
from graphkit.schema import TIERS

TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}


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
    # The alert budget: "budget" or "absolute"; the largest share of customers per tier
    # (yellow, orange, red); the rules whose tier is kept whatever the budget.
    budget_mode: str = "absolute"
    budget: dict[str, float] = field(default_factory=dict)
    demanding: tuple[str, ...] = ()

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
        elif isinstance(current, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"{path}: expected a list of strings, got {value!r}")
            merged[key] = list(value)
        elif isinstance(current, str):
            if not isinstance(value, str):
                raise PolicyError(f"{path}: expected a string, got {value!r}")
            merged[key] = value
        else:
            raise PolicyError(f"{path}: unsupported value {value!r}")
    return merged


def _build(data: dict[str, Any]) -> Policy:
    thresholds, tiers, limits = data["thresholds"], data["rule_tiers"], data["limits"]
    budget = data["budget"]
    if budget["mode"] not in ("budget", "absolute"):
        raise PolicyError(f"budget.mode: {budget['mode']!r} is not 'budget' or 'absolute'")
    for tier in ("yellow", "orange", "red"):
        if not 0 <= budget[tier] <= 1:
            raise PolicyError(f"budget.{tier}: {budget[tier]} not in [0, 1]")
    if budget["yellow"] + budget["orange"] + budget["red"] > 1 + 1e-9:
        raise PolicyError("budget: yellow + orange + red must not exceed 1 (all customers)")
    for rule in budget["demanding"]:
        if rule not in tiers:
            raise PolicyError(
                f"budget.demanding: {rule!r} is not a rule (known: {', '.join(sorted(tiers))})"
            )
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
        budget_mode=budget["mode"],
        budget={tier: float(budget[tier]) for tier in ("yellow", "orange", "red")},
        demanding=tuple(budget["demanding"]),
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
