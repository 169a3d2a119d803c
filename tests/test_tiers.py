"""One tier rule, one threshold source: a score on a threshold gets the same tier in
scores.parquet, cluster_risk.parquet, alerts.csv and customer_alerts.parquet, also when a policy
file moves the thresholds away from the config's ``[alerts]``."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from graphkit.config import AlertsConfig, Config, apply_overrides
from graphkit.graph import RiskGraph
from graphkit.pipeline import (
    RunContext,
    alerts_stage,
    cluster_risk_stage,
    scores_stage,
    write_outputs,
)
from graphkit.tiers import TOLERANCE, tier_for
from loaders.frames import make_tables

# The policy file's thresholds (the config's [alerts] keeps 0.3 / 0.6 / 0.85).
YELLOW, ORANGE, RED = 0.2, 0.5, 0.7
# Scores on, just around and between the thresholds; float noise below a threshold (0.7 - 0.5
# is 0.19999999999999996) counts as on it, a millionth below does not.
SCORES = {
    "on_yellow": YELLOW,
    "noise_yellow": 0.7 - 0.5,
    "below_yellow": YELLOW - 1e-6,
    "on_orange": ORANGE,
    "noise_orange": 0.7 - 0.2,
    "below_orange": ORANGE - 1e-6,
    "on_red": RED,
    "noise_red": 1.38 - 0.68,
    "below_red": RED - 1e-6,
    "zero": 0.0,
    "one": 1.0,
}
EXPECTED = {
    "on_yellow": "yellow",
    "noise_yellow": "yellow",
    "below_yellow": "green",
    "on_orange": "orange",
    "noise_orange": "orange",
    "below_orange": "yellow",
    "on_red": "red",
    "noise_red": "red",
    "below_red": "orange",
    "zero": "green",
    "one": "red",
}


def oracle(score: float) -> str:
    """The tier by the policy's thresholds, written out by hand."""
    for tier, bound in (("red", RED), ("orange", ORANGE), ("yellow", YELLOW)):
        if score >= bound - TOLERANCE:
            return tier
    return "green"


def staged(tmp_path: Path) -> RunContext:
    """Each customer alone in its cluster, cluster risk = the member's score, no other rule
    input: every output's tier can only come from the score."""
    ids = list(SCORES)
    graph = RiskGraph.from_tables(
        make_tables(
            customers={"customer_id": ids, "kind": ["person"] * len(ids)},
            credit_lines={
                "line_id": [f"{c}-L1" for c in ids],
                "customer_id": ids,
                "limit": [10_000.0] * len(ids),
            },
        )
    )
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"[thresholds]\nyellow_score = {YELLOW}\norange_score = {ORANGE}\nred_score = {RED}\n"
    )
    config = apply_overrides(
        Config(),
        {
            "alerts.policy_file": str(policy),
            "clusters.risk_weights": {
                "default_rate": 0.0,
                "banned_share": 0.0,
                "circles": 0.0,
                "score": 1.0,
                "size": 0.0,
            },
        },
    )
    ctx = RunContext(graph=graph, config=config, out_dir=tmp_path)
    keys = graph.keys("Customer")
    ctx.results.contagion = pl.DataFrame({"customer_id": keys, "contagion_score": [0.0] * len(ids)})
    ctx.results.gnn = pl.DataFrame(
        {"customer_id": keys, "gnn_score": [SCORES[k] for k in keys.to_list()]}
    )
    ctx.results.cluster_membership = pl.DataFrame(
        {"customer_id": keys, "cluster_id": list(range(1, len(ids) + 1))}
    )
    ctx.results.circle_membership = pl.DataFrame(
        schema={"customer_id": pl.String, "circle_id": pl.Int64}
    )
    for stage in (scores_stage, cluster_risk_stage, alerts_stage):
        stage(ctx)
    write_outputs(ctx.outputs, tmp_path)
    return ctx


def test_the_policy_file_moves_the_thresholds_away_from_the_config() -> None:
    assert (AlertsConfig().yellow_score, AlertsConfig().orange_score) != (YELLOW, ORANGE)
    assert all(
        SCORES[f"noise_{t}"] < bound
        for t, bound in zip(("yellow", "orange", "red"), (YELLOW, ORANGE, RED), strict=True)
    )
    assert {k: oracle(v) for k, v in SCORES.items()} == EXPECTED


def test_a_score_on_a_threshold_gets_the_same_tier_in_every_output(tmp_path: Path) -> None:
    ctx = staged(tmp_path)
    scores = dict(pl.read_parquet(tmp_path / "scores.parquet").select("customer_id", "tier").rows())
    assert scores == EXPECTED
    members = ctx.results.cluster_membership
    risk = pl.read_parquet(tmp_path / "cluster_risk.parquet").join(members, on="cluster_id")
    assert dict(risk.select("customer_id", "tier").rows()) == EXPECTED
    # The cluster's score is the member's, exactly: the tier came from the same number.
    assert dict(risk.select("customer_id", "risk_score").rows()) == SCORES
    customers = pl.read_parquet(tmp_path / "customer_alerts.parquet")
    assert dict(customers.select("customer_id", "tier").rows()) == EXPECTED
    alerts = pl.read_csv(tmp_path / "alerts.csv", schema_overrides={"customer_id": pl.String})
    alerted = {k: v for k, v in EXPECTED.items() if v != "green"}
    assert dict(alerts.select("customer_id", "tier").rows()) == alerted
    hits = pl.read_parquet(tmp_path / "alert_hits.parquet").filter(pl.col("rule") == "score")
    assert dict(hits.select("customer_id", "tier").rows()) == alerted


@pytest.mark.parametrize("score", sorted(SCORES.values()))
def test_tier_for_agrees_on_numbers_series_and_expressions(score: float) -> None:
    policy = AlertsConfig(yellow_score=YELLOW, orange_score=ORANGE, red_score=RED)
    series = tier_for(pl.Series("s", [score]), policy)
    expr = pl.select(tier_for(pl.lit(score), policy)).item()
    assert tier_for(score, policy) == series.item() == expr == oracle(score)
