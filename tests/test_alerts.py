"""Alerts: every rule fires on its constructed case and not on the near miss; tiers combine by
max; limit advice follows the documented formula (independent oracle); policy errors name the key.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from graphkit.alerts import (
    RESPONSES,
    LimitRule,
    PolicyError,
    banned_share_hits,
    burst_hits,
    circle_default_hits,
    cluster_hits,
    customer_tiers,
    daily_drawdowns,
    default_policy_text,
    defaulted_hits,
    evaluate,
    feature_drivers,
    limit_advice,
    line_exposure,
    load_policy,
    parse_policy,
    read_alerts,
    ring_hits,
    score_hits,
    tier_counts,
)
from graphkit.config import AlertsConfig, Config
from graphkit.graph import RiskGraph
from graphkit.pipeline import RunContext, alerts_stage, write_outputs
from graphkit.schema import OUTPUTS, TIERS
from loaders.frames import make_tables

POLICY = load_policy(AlertsConfig())


def graph_with_drawdowns(stamps: dict[str, list[str]], customers: int = 3) -> RiskGraph:
    """Customers c0..c{n-1}, each with two lines; ``stamps`` maps line id -> drawdown times."""
    ids = [f"c{i}" for i in range(customers)]
    lines = [f"{c}-L{k}" for c in ids for k in (1, 2)]
    rows = [(line, ts) for line, times in stamps.items() for ts in times]
    return RiskGraph.from_tables(
        make_tables(
            customers={"customer_id": ids, "kind": ["person"] * customers},
            credit_lines={
                "line_id": lines,
                "customer_id": [line.split("-")[0] for line in lines],
                "limit": [10_000.0] * len(lines),
            },
            accounts={"account_id": ["acc"], "owner_id": ["c0"]},
            drawdowns={
                "drawdown_id": [f"d{i}" for i in range(len(rows))],
                "line_id": [line for line, _ in rows],
                "account_id": ["acc"] * len(rows),
                "amount": [100.0] * len(rows),
                "ts": [ts for _, ts in rows],
            },
        )
    )


def fired(hits: pl.DataFrame) -> set[str]:
    return set(hits.get_column("customer_id").to_list())


# -- burst ---------------------------------------------------------------------------------------


def test_burst_fires_at_five_drawdowns_a_day_across_lines() -> None:
    graph = graph_with_drawdowns(
        {
            "c0-L1": ["2025-03-04T01:00:00"] * 3,
            "c0-L2": ["2025-03-04T22:59:59", "2025-03-04T23:59:59"],
            "c1-L1": ["2025-03-04T01:00:00"] * 4,
        }
    )
    hits = burst_hits(daily_drawdowns(graph), POLICY)
    assert fired(hits) == {"c0"}
    assert hits.row(0, named=True) == {
        "customer_id": "c0",
        "rule": "burst",
        "tier": "orange",
        "reason": "5 drawdowns on 2025-03-04 (threshold 5)",
    }


def test_burst_near_miss_four_a_day_or_five_split_over_midnight_utc() -> None:
    graph = graph_with_drawdowns(
        {
            "c0-L1": ["2025-03-04T01:00:00"] * 4,
            # 5 within two hours, but 3 on one UTC day and 2 on the next.
            "c1-L1": ["2025-03-04T23:00:00"] * 3 + ["2025-03-05T00:30:00"] * 2,
        }
    )
    assert burst_hits(daily_drawdowns(graph), POLICY).is_empty()


def test_burst_reason_names_busiest_day_and_day_count() -> None:
    graph = graph_with_drawdowns(
        {"c2-L1": ["2025-01-01T10:00:00"] * 5 + ["2025-01-09T10:00:00"] * 7 + ["2025-02-01"] * 6}
    )
    (reason,) = burst_hits(daily_drawdowns(graph), POLICY).get_column("reason")
    assert reason == "7 drawdowns on 2025-01-09 (threshold 5; 3 days at or above it)"


def test_burst_lookback_ignores_old_days() -> None:
    graph = graph_with_drawdowns(
        {"c0-L1": ["2025-01-01T10:00:00"] * 6, "c1-L1": ["2025-01-31T10:00:00"] * 5}
    )
    policy = parse_policy({"thresholds": {"burst_lookback_days": 7}})
    assert fired(burst_hits(daily_drawdowns(graph), policy)) == {"c1"}
    policy = parse_policy({"thresholds": {"burst_lookback_days": 31}})
    assert fired(burst_hits(daily_drawdowns(graph), policy)) == {"c0", "c1"}


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 1), st.integers(0, 3 * 24 * 60)),
        max_size=60,
    ),
    st.integers(1, 6),
)
def test_burst_agrees_with_brute_force(events: list[tuple[int, int, int]], threshold: int) -> None:
    start = datetime(2025, 3, 1)
    stamps: dict[str, list[str]] = {}
    per_day: Counter[tuple[str, str]] = Counter()
    for customer, line, minute in events:
        ts = start + timedelta(minutes=minute)
        stamps.setdefault(f"c{customer}-L{line + 1}", []).append(ts.strftime("%Y-%m-%dT%H:%M:%S"))
        per_day[(f"c{customer}", ts.date().isoformat())] += 1
    expected = {c for (c, _day), n in per_day.items() if n >= threshold}
    graph = graph_with_drawdowns(stamps, customers=6)
    policy = parse_policy({"thresholds": {"drawdowns_per_day": threshold}})
    assert fired(burst_hits(daily_drawdowns(graph), policy)) == expected


# -- banned share --------------------------------------------------------------------------------


def flows(shares: dict[str, float], drawn: float = 1000.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": list(shares),
            "drawn_amount": [drawn] * len(shares),
            "banned_amount": [drawn * s for s in shares.values()],
            "banned_share": list(shares.values()),
        }
    )


def test_banned_share_fires_at_threshold_not_just_below() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 and 3/10 is 0.3: both are "30%" and fire.
    hits = banned_share_hits(
        flows({"at": 0.3, "float_noise": 0.1 + 0.2, "above": 0.42, "below": 0.29}), POLICY
    )
    assert fired(hits) == {"at", "float_noise", "above"}
    reasons = dict(hits.select("customer_id", "reason").iter_rows())
    assert reasons["above"] == "42% of drawn money reached banned sectors (threshold 30%)"
    assert reasons["at"] == "30% of drawn money reached banned sectors (threshold 30%)"
    assert set(hits.get_column("tier")) == {"orange"}


def test_banned_share_needs_drawn_money() -> None:
    assert banned_share_hits(flows({"nothing_drawn": 1.0}, drawn=0.0), POLICY).is_empty()


def test_banned_share_threshold_from_config() -> None:
    policy = load_policy(AlertsConfig(banned_share=0.5))
    assert fired(banned_share_hits(flows({"a": 0.42, "b": 0.5}), policy)) == {"b"}


# -- guarantee circle with a defaulted member ----------------------------------------------------


def test_circle_with_defaulted_member_fires_for_every_member() -> None:
    membership = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "x", "y", "z", "p", "q"],
            "circle_id": [7] * 3 + [8] * 3 + [9] * 2,
        }
    )
    defaulted = pl.DataFrame(
        {
            "customer_id": ["a", "b", "x", "y", "p", "outside"],
            "defaulted": [True, True, False, None, None, True],
        }
    )
    hits = circle_default_hits(membership, defaulted, POLICY)
    # Circle 8 has only labelled-good and unlabelled members; circle 9 is unlabelled; the
    # defaulted customer "outside" is in no circle and contaminates nobody.
    assert fired(hits) == {"a", "b", "c"}
    assert set(hits.get_column("reason")) == {
        "member of guarantee circle 7 with 2 defaulted members"
    }
    one = circle_default_hits(membership, defaulted.filter(pl.col("customer_id") != "b"), POLICY)
    assert set(one.get_column("reason")) == {"member of guarantee circle 7 with 1 defaulted member"}


def test_a_labelled_default_asks_its_rule_tier_with_its_own_reason() -> None:
    defaulted = pl.DataFrame(
        {"customer_id": ["a", "b", "c"], "defaulted": [True, False, None]},
        schema={"customer_id": pl.String, "defaulted": pl.Boolean},
    )
    hits = defaulted_hits(defaulted, POLICY)
    assert hits.rows() == [("a", "defaulted", "red", "labelled as defaulted")]
    quiet = parse_policy({"rule_tiers": {"defaulted": "orange"}})
    assert defaulted_hits(defaulted, quiet).get_column("tier").to_list() == ["orange"]
    # Through evaluate: the label is named once (the rule's reason, not again as a driver),
    # and the customer is red although its (calibrated) score alone asks for nothing.
    graph = RiskGraph.from_tables(
        make_tables(
            customers={"customer_id": ["a", "b"], "kind": ["person"] * 2},
            labels={"customer_id": ["a", "b"], "defaulted": [True, False]},
        )
    )
    scores = pl.DataFrame({"customer_id": ["a", "b"], "risk_score": [0.2, 0.1]})
    result = evaluate(graph, parse_policy({"budget": {"mode": "absolute"}}), scores=scores)
    rows = {r["customer_id"]: r for r in result.customers.iter_rows(named=True)}
    assert rows["a"]["tier"] == "red" and rows["b"]["tier"] == "green"
    assert rows["a"]["reasons"].count("labelled as defaulted") == 1


def test_circle_without_defaulted_member_does_not_fire() -> None:
    membership = pl.DataFrame({"customer_id": ["a", "b"], "circle_id": [1, 1]})
    defaulted = pl.DataFrame({"customer_id": ["a", "b"], "defaulted": [False, False]})
    assert circle_default_hits(membership, defaulted, POLICY).is_empty()


# -- device ring, cluster, score -----------------------------------------------------------------


def test_ring_members_fire_yellow_others_do_not() -> None:
    membership = pl.DataFrame(
        {"customer_id": ["a", "b", "c", "d", "e"], "ring_id": [3, 3, 3, 4, 4]}
    )
    hits = ring_hits(membership, POLICY)
    assert fired(hits) == {"a", "b", "c", "d", "e"}
    assert set(hits.get_column("tier")) == {"yellow"}
    reasons = dict(hits.select("customer_id", "reason").iter_rows())
    assert reasons["a"] == "shares devices with 2 other customers in device ring 3"
    assert reasons["d"] == "shares devices with 1 other customer in device ring 4"
    assert ring_hits(membership.head(0), POLICY).is_empty()


def test_cluster_rule_by_cluster_tier() -> None:
    membership = pl.DataFrame(
        {"customer_id": ["r1", "r2", "o1", "y1", "g1"], "cluster_id": [1, 1, 2, 3, 4]}
    )
    risk = pl.DataFrame(
        {
            "cluster_id": [1, 2, 3, 4],
            "size": [2, 1, 1, 1],
            "risk_score": [0.91, 0.65, 0.4, 0.1],
            "tier": ["red", "orange", "yellow", "green"],
        }
    )
    hits = cluster_hits(membership, risk, POLICY)
    tiers = dict(hits.select("customer_id", "tier").iter_rows())
    assert tiers == {"r1": "orange", "r2": "orange", "o1": "yellow"}
    rules = dict(hits.select("customer_id", "rule").iter_rows())
    assert rules == {"r1": "cluster_red", "r2": "cluster_red", "o1": "cluster_orange"}
    reasons = dict(hits.select("customer_id", "reason").iter_rows())
    assert reasons["r1"] == (
        "member of related-enterprise cluster 1 (2 customers) whose tier is red, cluster risk 0.91"
    )
    assert cluster_hits(membership, None, POLICY).is_empty()


def test_score_thresholds_fire_at_the_bound_not_below() -> None:
    scores = pl.DataFrame(
        {
            "customer_id": ["g", "y", "y_edge", "o", "r", "r_edge", "null"],
            "risk_score": [0.2999, 0.3, 0.5999, 0.6, 0.9, 0.85, None],
        }
    )
    hits = score_hits(scores, POLICY)
    tiers = dict(hits.select("customer_id", "tier").iter_rows())
    assert tiers == {"y": "yellow", "y_edge": "yellow", "o": "orange", "r": "red", "r_edge": "red"}
    reasons = dict(hits.select("customer_id", "reason").iter_rows())
    assert reasons["o"] == "risk score 0.60 at or above the orange threshold 0.60"


# -- combining -----------------------------------------------------------------------------------


def test_tier_is_the_highest_hit_and_reasons_list_most_severe_first() -> None:
    hits = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "rule": ["ring", "score", "banned_share", "ring"],
            "tier": ["yellow", "yellow", "orange", "yellow"],
            "reason": ["ring reason", "score reason", "banned reason", "b ring"],
        }
    )
    scores = pl.DataFrame({"customer_id": ["a", "b", "c"], "risk_score": [0.31, 0.1, 0.0]})
    tiers = customer_tiers(pl.Series(["a", "b", "c"]), hits, scores)
    rows = {r["customer_id"]: r for r in tiers.iter_rows(named=True)}
    assert rows["a"]["tier"] == "orange"
    assert rows["a"]["reasons"] == "banned reason; score reason; ring reason"
    assert rows["a"]["rules"] == "banned_share,score,ring"
    assert (
        rows["a"]["response"] == RESPONSES["orange"] == "freeze further drawdowns or cut the limit"
    )
    assert rows["b"]["tier"] == "yellow"
    assert (rows["c"]["tier"], rows["c"]["reasons"], rows["c"]["response"]) == (
        "green",
        "",
        "no action",
    )
    assert RESPONSES["red"] == "suspend the line and open a case"


def test_missing_stage_results_fire_nothing_and_are_not_mentioned() -> None:
    graph = graph_with_drawdowns({"c0-L1": ["2025-03-04T01:00:00"] * 6})
    result = evaluate(graph, POLICY)
    rows = {r["customer_id"]: r for r in result.customers.iter_rows(named=True)}
    assert rows["c0"]["tier"] == "orange"
    assert rows["c0"]["reasons"] == "6 drawdowns on 2025-03-04 (threshold 5)"
    assert rows["c1"]["tier"] == rows["c2"]["tier"] == "green"
    assert set(result.hits.get_column("rule")) == {"burst"}


# -- limit advice --------------------------------------------------------------------------------


def oracle_limit(limit: float, outstanding: float, tier: str, score: float | None) -> float:
    """The rule of docs/alerts.md, written independently."""
    rule: LimitRule = POLICY.limits[tier]
    cut = min(1.0, rule.min_cut + rule.score_cut * (score or 0.0))
    target = math.floor(limit * (1 - cut) / POLICY.round_to + 1e-9) * POLICY.round_to
    return min(limit, max(outstanding, target))


def advise(rows: list[tuple[str, float, float, str, float | None]]) -> pl.DataFrame:
    tiers = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "tier": [r[3] for r in rows],
            "response": [RESPONSES[r[3]] for r in rows],
            "risk_score": [r[4] for r in rows],
            "rules": ["x"] * len(rows),
            "reasons": ["r"] * len(rows),
        },
        schema_overrides={"risk_score": pl.Float64},
    )
    lines = pl.DataFrame(
        {
            "line_id": [f"L-{r[0]}" for r in rows],
            "customer_id": [r[0] for r in rows],
            "limit": [r[1] for r in rows],
            "outstanding": [r[2] for r in rows],
        }
    )
    return limit_advice(tiers, lines, POLICY)


def test_limit_advice_examples() -> None:
    out = advise(
        [
            ("orange", 100_000.0, 3_000.0, "orange", 0.3),
            ("orange_floor", 100_000.0, 80_000.0, "orange", 0.3),
            ("red", 50_000.0, 12_345.5, "red", 0.9),
            ("yellow", 100_000.0, 0.0, "yellow", 0.5),
            ("yellow_noscore", 100_000.0, 0.0, "yellow", None),
            ("green", 100_000.0, 0.0, "green", 0.1),
            ("red_over", 50_000.0, 70_000.0, "red", 0.9),
        ]
    )
    got = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert "green" not in got
    assert got["orange"]["recommended_limit"] == 55_000.0
    assert got["orange"]["limit_reason"] == (
        "orange cut 45% (30% + 50% x risk score 0.30): limit 100000 -> 55000"
    )
    assert got["orange_floor"]["recommended_limit"] == 80_000.0
    assert got["orange_floor"]["limit_reason"] == (
        "orange cut 45% (30% + 50% x risk score 0.30) would go below the outstanding 80000: "
        "limit set to the outstanding, no headroom left"
    )
    assert got["red"]["recommended_limit"] == 12_345.5
    assert got["red_over"]["recommended_limit"] == 50_000.0
    assert got["red_over"]["limit_reason"] == (
        "red cut 100% (100% + 0% x risk score 0.90): the outstanding 70000 already reaches the "
        "limit 50000: limit kept, no headroom left"
    )
    assert got["yellow"]["recommended_limit"] == 90_000.0
    assert got["yellow_noscore"]["recommended_limit"] == 100_000.0
    assert got["yellow_noscore"]["limit_reason"] == "yellow: limit 100000 kept"
    assert got["orange"]["utilisation"] == pytest.approx(0.03)
    assert list(out.get_column("customer_id")) == [
        "red",
        "red_over",
        "orange",
        "orange_floor",
        "yellow",
        "yellow_noscore",
    ]


@given(
    st.lists(
        st.tuples(
            st.floats(100, 1e7, allow_nan=False),
            st.floats(0, 2e7, allow_nan=False),
            st.sampled_from(TIERS[1:]),
            st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_limit_advice_agrees_with_oracle(
    rows: list[tuple[float, float, str, float | None]],
) -> None:
    out = advise([(f"c{i}", lim, owed, tier, s) for i, (lim, owed, tier, s) in enumerate(rows)])
    got = dict(out.select("customer_id", "recommended_limit").iter_rows())
    for i, (lim, owed, tier, score) in enumerate(rows):
        value = got[f"c{i}"]
        assert value == pytest.approx(oracle_limit(lim, owed, tier, score), abs=1e-6)
        assert value <= lim
        assert value >= min(owed, lim) - 1e-9
        if tier == "red":
            assert value == min(owed, lim)


def test_line_exposure_outstanding_is_drawn_minus_paid() -> None:
    tables = make_tables(
        customers={"customer_id": ["a"], "kind": ["enterprise"]},
        credit_lines={"line_id": ["L1", "L2"], "customer_id": ["a", "a"], "limit": [1000.0, 500.0]},
        accounts={"account_id": ["x"], "owner_id": ["a"]},
        drawdowns={
            "drawdown_id": ["d1", "d2", "d3"],
            "line_id": ["L1", "L1", "L2"],
            "account_id": ["x"] * 3,
            "amount": [300.0, 200.0, 100.0],
            "ts": ["2025-01-01"] * 3,
        },
        repayments={
            "line_id": ["L1", "L1", "L2"],
            "due_date": ["2025-02-01"] * 3,
            "paid_at": ["2025-02-01", None, "2025-02-01"],
            "amount": [150.0, 999.0, 400.0],
        },
    )
    exposure = line_exposure(RiskGraph.from_tables(tables))
    assert dict(exposure.select("line_id", "outstanding").iter_rows()) == {"L1": 350.0, "L2": 0.0}


def test_customer_without_lines_gets_one_row() -> None:
    tiers = pl.DataFrame(
        {
            "customer_id": ["a"],
            "tier": ["red"],
            "response": [RESPONSES["red"]],
            "risk_score": [0.9],
            "rules": ["score"],
            "reasons": ["r"],
        }
    )
    lines = pl.DataFrame(
        schema={
            "line_id": pl.String,
            "customer_id": pl.String,
            "limit": pl.Float64,
            "outstanding": pl.Float64,
        }
    )
    out = limit_advice(tiers, lines, POLICY)
    assert out.height == 1
    assert out.row(0, named=True)["line_id"] is None
    assert out.row(0, named=True)["limit_reason"] == "no credit line"


# -- policy file ---------------------------------------------------------------------------------


def test_packaged_policy_defaults_match_config_defaults() -> None:
    cfg = AlertsConfig()
    default = parse_policy({})
    assert (default.yellow_score, default.orange_score, default.red_score) == (
        cfg.yellow_score,
        cfg.orange_score,
        cfg.red_score,
    )
    assert default.drawdowns_per_day == cfg.drawdowns_per_day == 5
    assert default.banned_share == cfg.banned_share == 0.3
    assert default == load_policy(AlertsConfig()) == load_policy(None)
    assert "[rule_tiers]" in default_policy_text()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[rule_tiers]\nrign = 'yellow'\n", "rule_tiers.rign: unknown key"),
        ("[thresholdz]\nx = 1\n", "thresholdz: unknown key"),
        (
            "[thresholds]\ndrawdowns_per_day = 'five'\n",
            "thresholds.drawdowns_per_day: expected an integer",
        ),
        (
            "[thresholds]\ndrawdowns_per_day = 5.5\n",
            "thresholds.drawdowns_per_day: expected an integer",
        ),
        ("[thresholds]\nbanned_share = true\n", "thresholds.banned_share: expected a number"),
        ("[rule_tiers]\nring = 'purple'\n", "rule_tiers.ring: 'purple' is not a tier"),
        ("[rule_tiers]\nring = 2\n", "rule_tiers.ring: expected a string"),
        (
            "[thresholds]\norange_score = 0.2\n",
            "thresholds.orange_score: 0.2 is below thresholds.yellow_score",
        ),
        (
            "[thresholds]\nred_score = 0.5\n",
            "thresholds.red_score: 0.5 is below thresholds.orange_score",
        ),
        ("[thresholds]\nred_score = 1.5\n", "thresholds.red_score: 1.5 must be <= 1"),
        ("[thresholds]\nbanned_share = 1.2\n", "thresholds.banned_share: 1.2 not in [0, 1]"),
        ("[thresholds]\ndrawdowns_per_day = 0\n", "thresholds.drawdowns_per_day: must be >= 1"),
        ("[limits.orange]\nmin_cut = -0.1\n", "limits.orange.min_cut: -0.1 not in [0, 1]"),
        ("[limits]\norange = 0.5\n", "limits.orange: expected a table"),
        ("[limits.purple]\nmin_cut = 0.1\n", "limits.purple: unknown key"),
    ],
)
def test_bad_policy_file_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(AlertsConfig(policy_file=str(path)))
    assert names in str(err.value)
    assert str(path) in str(err.value)


def test_policy_file_missing_or_not_toml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(AlertsConfig(policy_file=str(tmp_path / "nope.toml")))
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path=bad)


def test_policy_layers_config_then_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[thresholds]\ndrawdowns_per_day = 7\n[rule_tiers]\nring = 'orange'\n")
    policy = load_policy(AlertsConfig(drawdowns_per_day=6, banned_share=0.4, policy_file=str(path)))
    assert policy.drawdowns_per_day == 7  # the file wins
    assert policy.banned_share == 0.4  # the config's [alerts] beats the packaged default
    assert policy.rule_tiers["ring"] == "orange"
    assert policy.rule_tiers["burst"] == "orange"


def test_config_thresholds_out_of_order_name_the_key() -> None:
    with pytest.raises(PolicyError, match=r"thresholds\.red_score"):
        load_policy(AlertsConfig(orange_score=0.9, red_score=0.8))


# -- the stage, the run directory and the command ------------------------------------------------


def staged_run(tmp_path: Path, budget: str = "absolute") -> Path:
    """Three customers: c0 bursts (orange), c1 scores 0.9 (red), c2 nothing. The default
    budget leaves three customers no place (1% of 3 is 0), so the tier tests run with
    ``budget = "absolute"``; ``"budget"`` shows the demanding burst overflowing it."""
    graph = graph_with_drawdowns({"c0-L1": ["2025-03-04T01:00:00"] * 5, "c0-L2": ["2025-03-05"]})
    policy = parse_policy({"budget": {"mode": budget}})
    ctx = RunContext(graph=graph, config=Config(), out_dir=tmp_path, policy=policy)
    ctx.results.scores = pl.DataFrame(
        {
            "customer_id": ["c0", "c1", "c2"],
            "contagion_score": [0.1, 0.2, 0.3],
            "gnn_score": [0.2, 0.95, 0.1],
            "risk_score": [0.1, 0.9, 0.2],
            "tier": ["green", "red", "green"],
        }
    )
    alerts_stage(ctx)
    write_outputs(ctx.outputs, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r1", **ctx.manifest_extra}))
    return tmp_path


def test_stage_writes_alerts_csv_per_line_of_alerted_customers(tmp_path: Path) -> None:
    run = staged_run(tmp_path)
    frame = pl.read_csv(run / "alerts.csv")
    assert (
        tuple(frame.columns[: len(OUTPUTS["alerts.csv"].columns)]) == OUTPUTS["alerts.csv"].columns
    )
    assert sorted(frame.select("customer_id", "line_id", "tier").iter_rows()) == [
        ("c0", "c0-L1", "orange"),
        ("c0", "c0-L2", "orange"),
        ("c1", "c1-L1", "red"),
        ("c1", "c1-L2", "red"),
    ]
    red = frame.filter(pl.col("tier") == "red")
    assert red.get_column("recommended_limit").to_list() == [0.0, 0.0]
    assert tier_counts(run) == {"green": 1, "yellow": 0, "orange": 1, "red": 1}
    assert read_alerts(run, "red").get_column("customer_id").unique().to_list() == ["c1"]


def test_a_demanding_rule_overflowing_the_budget_is_reported(tmp_path: Path) -> None:
    run = staged_run(tmp_path, budget="budget")
    # The burst keeps c0 orange with no place for it; c1's red score finds no place either.
    assert tier_counts(run) == {"green": 2, "yellow": 0, "orange": 1, "red": 0}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["alerts"]["budget"]["orange"] == {
        "budget": 0,
        "kept": 1,
        "over": 1,
        "filled": 1,
    }
    customers = pl.read_parquet(run / "customer_alerts.parquet")
    c1 = customers.filter(pl.col("customer_id") == "c1").row(0, named=True)
    assert (c1["asked_tier"], c1["tier"]) == ("red", "green")
    assert c1["reasons"].endswith("; alert budget: red asked, green given")
    scores = pl.read_parquet(run / "scores.parquet")
    assert dict(scores.select("customer_id", "tier").rows()) == dict.fromkeys(
        ["c0", "c1", "c2"], "green"
    )


def test_tier_counts_without_alerts_is_zero(tmp_path: Path) -> None:
    assert tier_counts(tmp_path) == dict.fromkeys(TIERS, 0)


def test_alerts_command(tmp_path: Path) -> None:
    from cli import app

    run = staged_run(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", str(run), "--min-tier", "orange", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = pl.read_csv(result.stdout.encode())
    assert set(rows.get_column("tier")) == {"orange", "red"}
    result = runner.invoke(app, ["alerts", str(run), "--min-tier", "red", "--format", "json"])
    assert [r["customer_id"] for r in json.loads(result.stdout)] == ["c1", "c1"]
    assert runner.invoke(app, ["alerts", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(app, ["alerts", str(run), "--min-tier", "purple"]).exit_code == 2


# -- reasons name drivers, not just the score ----------------------------------------------------

# A reason that only restates the score (or the budget's move of it).
SCORE_ONLY = r"^(risk score [0-9.]+ at or above the \w+ threshold [0-9.]+|alert budget: .*)$"


def non_score_reasons(reasons: str) -> list[str]:
    return [r for r in reasons.split("; ") if not re.match(SCORE_ONLY, r)]


def test_feature_drivers_name_the_features_a_customer_stands_out_in() -> None:
    features = pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(10)],
            "dpd_max": [0.0] * 8 + [30.0, 90.0],  # c9 highest: top 10%
            "late_count": [float(i) for i in range(10)],  # c9 top 10%, c8 top 20%
            "age_days": [1e6] * 9 + [2e6],  # not a driver
            "in_ring": [0.0] * 9 + [1.0],  # an indicator: not a driver
            # The bank's own column: high may be good (income), so not a driver.
            "extra_income": [1000.0 * i for i in range(10)],
        }
    )
    drivers = feature_drivers(features, pl.Series(["c9", "c8", "c0"]))
    got = dict(drivers.rows())
    assert got == {
        "c9": "unusually high: dpd_max 90 (top 10%), late_count 9 (top 10%)",
        "c8": "unusually high: dpd_max 30 (top 20%), late_count 8 (top 20%)",
    }  # c0: nothing positive, no driver


def test_an_alert_raised_by_the_score_alone_names_its_drivers() -> None:
    graph = graph_with_drawdowns({}, customers=4)
    scores = pl.DataFrame(
        {"customer_id": ["c0", "c1", "c2", "c3"], "risk_score": [0.95, 0.7, 0.1, 0.0]}
    )
    features = pl.DataFrame(
        {
            "customer_id": ["c0", "c1", "c2", "c3"],
            "dpd_max": [60.0, 5.0, 0.0, 0.0],
            "late_count": [4.0, 0.0, 1.0, 0.0],
        }
    )
    policy = parse_policy({"budget": {"mode": "absolute"}})
    result = evaluate(graph, policy, scores=scores, features=features)
    reasons = dict(result.customers.select("customer_id", "reasons").rows())
    assert reasons["c0"] == (
        "risk score 0.95 at or above the red threshold 0.85; "
        "unusually high: dpd_max 60 (top 25%), late_count 4 (top 25%)"
    )
    assert non_score_reasons(reasons["c1"]) == ["unusually high: dpd_max 5 (top 50%)"]
    assert reasons["c2"] == reasons["c3"] == ""  # green: no drivers listed


def test_banned_share_names_the_drawdown_that_carried_the_most() -> None:
    customer_flows = pl.DataFrame(
        {
            "customer_id": ["a"],
            "drawn_amount": [300.0],
            "banned_amount": [150.0],
            "banned_share": [0.5],
        }
    )
    flows = pl.DataFrame(
        {
            "drawdown_id": ["d1", "d2", "d3"],
            "customer_id": ["a"] * 3,
            "banned_amount": [50.0, 100.0, 0.0],
            "min_hops_to_banned": [1, 3, None],
        }
    )
    hits = banned_share_hits(customer_flows, load_policy(), flows)
    assert hits.get_column("reason").to_list() == [
        "50% of drawn money reached banned sectors (threshold 30%), most through drawdown d2 "
        "(3 hops)"
    ]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"mode": "quota"}, r"budget\.mode: 'quota' is not 'budget' or 'absolute'"),
        ({"red": 1.5}, r"budget\.red: 1\.5 not in \[0, 1\]"),
        ({"yellow": 0.5, "orange": 0.4, "red": 0.2}, r"budget: yellow \+ orange \+ red"),
        ({"demanding": ["brust"]}, r"budget\.demanding: 'brust' is not a rule"),
        ({"demanding": "burst"}, r"budget\.demanding: expected a list of strings"),
    ],
)
def test_a_bad_budget_names_the_key(budget: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy({"budget": budget}, "strict.toml")


def test_the_default_policy_has_the_documented_budget() -> None:
    policy = load_policy()
    assert policy.budget_mode == "budget"
    assert policy.budget == {"yellow": 0.08, "orange": 0.03, "red": 0.01}
    assert policy.demanding == ("burst", "circle_default")


def test_alerts_csv_links_open_customer_360_and_the_flow_alerts_drawdown(tmp_path: Path) -> None:
    from urllib.parse import parse_qs, urlsplit

    graph = graph_with_drawdowns({"c0-L1": ["2025-03-04T01:00:00"] * 5, "c0-L2": ["2025-03-05"]})
    config = Config()
    config.neo4j.browser_url = "https://neo4j.risk.example:7473"
    config.neo4j.bolt_uri = "neo4j+s://neo4j.risk.example:7687"
    config.flows.window_days, config.flows.max_hops = 7.5, 3
    policy = parse_policy({"budget": {"mode": "absolute"}})
    ctx = RunContext(graph=graph, config=config, out_dir=tmp_path, policy=policy)
    # c2's drawn money reached banned sectors (50%), most through dB and dC (a tie: dB).
    ctx.results.flows = pl.DataFrame(
        {
            "drawdown_id": ["dA", "dC", "dB", "dD"],
            "customer_id": ["c2", "c2", "c2", "c0"],
            "banned_amount": [100.0, 300.0, 300.0, 0.0],
            "min_hops_to_banned": [1, 4, 2, None],
        }
    )
    ctx.results.customer_flows = pl.DataFrame(
        {"customer_id": ["c2"], "drawn_amount": [1400.0], "banned_amount": [700.0]}
    ).with_columns(banned_share=pl.col("banned_amount") / pl.col("drawn_amount"))
    alerts_stage(ctx)
    write_outputs(ctx.outputs, tmp_path)
    frame = read_alerts(tmp_path)
    by_customer = {row["customer_id"]: row for row in frame.iter_rows(named=True)}
    assert set(by_customer) == {"c0", "c2"}  # c0 bursts, c2 banned share
    assert by_customer["c2"]["evidence_drawdown"] == "dB"
    assert by_customer["c0"]["evidence_drawdown"] is None
    assert by_customer["c0"]["fund_flow_trace_link"] is None

    def editor(link: str) -> str:
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.path) == (
            "https",
            "neo4j.risk.example:7473",
            "/browser/",
        )
        fields = parse_qs(parts.query, strict_parsing=True)
        assert fields["connectURL"] == ["neo4j+s://neo4j.risk.example:7687"]
        assert fields["cmd"] == ["edit"] and len(fields["arg"]) == 1
        return fields["arg"][0]

    for customer, row in by_customer.items():
        text = editor(row["customer_360_link"])
        assert text.startswith("// graphkit customer_360\n")
        assert f'MATCH (c:Customer {{customer_id: "{customer}"}})' in text and "$" not in text
    trace = editor(by_customer["c2"]["fund_flow_trace_link"])
    assert trace.startswith("// graphkit fund_flow_trace\n") and "$" not in trace
    assert '[dd:DRAWDOWN {drawdown_id: "dB"}]' in trace
    assert "duration({days: 7.5})" in trace and "WHERE f.hops < 3" in trace


def test_alert_links_equal_the_single_link_builders_for_hostile_ids() -> None:
    from graphkit.browser import customer_link, drawdown_link, with_links

    hostile = [
        '"}) DETACH DELETE n // \\" \' \n\r&#;中😀 $customer_id \\u0022 \u2028 \\\\u000a',
        "a/b:c?d=e&f#g",
        "GRAPHKITLINKVALUE",
        "c1",
    ]
    rules = ["banned_share", "ring,banned_share", "burst", "score"]
    alerts = pl.DataFrame({"customer_id": hostile, "rules": rules})
    evidence = pl.DataFrame({"customer_id": hostile, "evidence_drawdown": hostile[::-1]})
    links = with_links(alerts, evidence, "http://h:1", "bolt://h:2", 7.5, 3)
    for row, rule in zip(links.iter_rows(named=True), rules, strict=True):
        assert row["customer_360_link"] == customer_link(
            row["customer_id"], "http://h:1", "bolt://h:2"
        )
        if "banned_share" in rule:
            expected = drawdown_link(row["evidence_drawdown"], 7.5, 3, "http://h:1", "bolt://h:2")
            assert row["fund_flow_trace_link"] == expected
        else:
            assert row["evidence_drawdown"] is None and row["fund_flow_trace_link"] is None


def test_within_the_budget_a_rule_goes_before_a_score_alone() -> None:
    """Red holds one place of 100 and two customers ask for red: one sent there by a rule
    (a known default) with a low score, one by its score alone (0.99). The rule's customer takes
    red; the score's is moved down, with the budget's note in its reasons."""
    from graphkit.alerts import apply_budget

    ids = [f"C{i:03d}" for i in range(100)]
    hits = pl.DataFrame(
        {
            "customer_id": ["C000", "C000", "C001"],
            "rule": ["defaulted", "score", "score"],
            "tier": ["red", "yellow", "red"],
            "reason": ["labelled as defaulted", "risk score 0.40", "risk score 0.99"],
        }
    )
    scores = pl.DataFrame({"customer_id": ids, "risk_score": [0.40, 0.99] + [0.01] * 98})
    tiers = customer_tiers(pl.Series("customer_id", ids), hits, scores)
    policy = parse_policy({"budget": {"red": 0.01, "orange": 0.01, "yellow": 0.0}})
    placed, _ = apply_budget(tiers, hits, policy)
    got = dict(placed.select("customer_id", "tier").rows())
    assert (got["C000"], got["C001"]) == ("red", "orange")
    reasons = dict(placed.select("customer_id", "reasons").rows())
    assert "alert budget: red asked, orange given" in reasons["C001"]
