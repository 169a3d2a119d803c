"""Credit cosmetics (信用美容): the generator plants risky customers with a perfect record kept on
purpose, and the features find them.

Generator: every planted customer's record is checked row by row (regular small drawdowns, each
repaid in full within hours, nothing late), their default rate against everyone else's, and
planting them changes nothing else (a run with ``cosmetic_share = 0`` as the oracle). Features:
exact values on a hand-built case (numpy as the oracle) and precision / recall of the
``cosmetic_pattern`` flag on planted truth.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from gnn.cosmetics import COSMETIC_NAMES
from gnn.features import customer_features
from graphkit.alerts import cosmetic_hits, evaluate, load_policy, parse_policy
from graphkit.graph import RiskGraph
from loaders.frames import make_tables
from loaders.synthetic import GeneratedData, Rates, generate_tables

CUSTOMERS = 2000
SEED = 11


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate_tables(CUSTOMERS, SEED)


def _cosmetic_rows(data: GeneratedData, table: str) -> pl.DataFrame:
    lines = data.tables["credit_lines"].select("line_id", "customer_id")
    planted = data.truth["cosmetics"].get_column("customer_id")
    return (
        data.tables[table]
        .join(lines, on="line_id")
        .filter(pl.col("customer_id").is_in(planted.implode()))
    )


def test_planted_customers_draw_small_regular_amounts_and_repay_at_once(
    data: GeneratedData,
) -> None:
    truth = data.truth["cosmetics"]
    assert truth.height == round(Rates().cosmetic_share * CUSTOMERS)
    customers = data.tables["customers"].join(truth, on="customer_id", how="semi")
    assert set(customers.get_column("kind")) == {"person"}
    draws = _cosmetic_rows(data, "drawdowns").sort("customer_id", "ts")
    repaid = _cosmetic_rows(data, "repayments")
    assert draws.get_column("customer_id").n_unique() == truth.height
    for cid, n, period, share in truth.iter_rows():
        mine = draws.filter(pl.col("customer_id") == cid)
        assert mine.height == n >= 4
        assert mine.get_column("line_id").n_unique() == 1
        amounts = mine.get_column("amount").to_numpy()
        assert amounts.max() <= 1.1 * amounts.min() + 100  # +/- 3%, rounded to 100
        line = mine.item(0, "line_id")
        limit = data.tables["credit_lines"].filter(pl.col("line_id") == line).item(0, "limit")
        assert 0.01 <= share <= 0.05
        expected = max(round(share * limit, -2), 100.0)
        assert np.abs(amounts - expected).max() <= 0.03 * share * limit + 100  # two roundings
        gaps = np.diff(mine.get_column("ts").dt.epoch("s").to_numpy()) / 86_400
        assert np.all(np.abs(gaps - period) <= 1 + 2 / 24)  # whole days, +/- an hour
        # Every drawdown has its own repayment: same line and amount, paid 1-20 hours later.
        theirs = repaid.filter(pl.col("customer_id") == cid).sort("paid_at")
        assert theirs.height == n
        assert theirs.get_column("amount").equals(mine.get_column("amount"))
        wait = (theirs.get_column("paid_at") - mine.get_column("ts")).dt.total_seconds()
        assert wait.min() >= 3600 and wait.max() < 20 * 3600
        assert theirs.get_column("days_past_due").max() == 0
    # No cosmetic customer bursts, launders or runs a fund chain.
    planted = truth.get_column("customer_id").implode()
    assert not data.truth["bursts"].get_column("customer_id").is_in(planted).any()
    assert not data.truth["chains"].get_column("customer_id").is_in(planted).any()


def test_planted_customers_are_risky(data: GeneratedData) -> None:
    planted = set(data.truth["cosmetics"].get_column("customer_id"))
    defaulted = set(data.truth["defaults"].get_column("customer_id"))
    others = set(data.tables["customers"].get_column("customer_id")) - planted
    rate_planted = len(planted & defaulted) / len(planted)
    rate_others = len(others & defaulted) / len(others)
    assert rate_planted > 2.5 * rate_others
    assert data.params["counts"]["planted"]["cosmetic_defaults"] == len(planted & defaulted)


def test_planting_changes_nothing_but_the_cosmetic_customers_rows() -> None:
    with_them = generate_tables(1000, 5)
    without = generate_tables(1000, 5, rates=replace(Rates(), cosmetic_share=0.0))
    assert without.truth["cosmetics"].height == 0
    planted = with_them.truth["cosmetics"].get_column("customer_id").implode()
    for name, frame in with_them.tables.items():
        if name not in ("drawdowns", "repayments", "customers"):
            assert frame.equals(without.tables[name]), name
    for name, frame in with_them.truth.items():
        if name != "cosmetics":
            assert frame.equals(without.truth[name]), name

    def others(data: GeneratedData, table: str) -> pl.DataFrame:
        lines = data.tables["credit_lines"].select("line_id", "customer_id")
        return (
            data.tables[table]
            .join(lines, on="line_id", how="left", maintain_order="left")
            .filter(~pl.col("customer_id").is_in(planted))
        )

    for table in ("drawdowns", "repayments"):
        assert others(with_them, table).equals(others(without, table)), table
    a, b = with_them.tables["customers"], without.tables["customers"]
    assert a.drop("bureau_score").equals(b.drop("bureau_score"))
    changed = a.filter(a.get_column("bureau_score") != b.get_column("bureau_score"))
    assert changed.get_column("customer_id").is_in(planted).all()


SNAP = datetime(2024, 3, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 1, 10, tzinfo=UTC)


def _hand_built() -> dict[str, dict]:
    """a: 100 every 7 days, each repaid 2 h later (the pattern); b: irregular, repaid monthly;
    c: regular and small but never repaid early; d: two drawdowns only."""
    a_ts = [T0 + timedelta(days=7 * i) for i in range(6)]
    b_ts = [T0 + timedelta(days=d) for d in (0, 1, 9, 30, 31)]
    c_ts = [T0 + timedelta(days=10 * i) for i in range(5)]
    d_ts = [T0, T0 + timedelta(days=3)]
    b_amounts = [500.0, 2000.0, 100.0, 900.0, 3000.0]
    iso = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in a_ts + b_ts + c_ts + d_ts]
    return {
        "customers": {"customer_id": ["a", "b", "c", "d"], "kind": ["person"] * 4},
        "credit_lines": {
            "line_id": ["La", "Lb", "Lc", "Ld"],
            "customer_id": ["a", "b", "c", "d"],
            "limit": [10_000.0, 10_000.0, 10_000.0, 10_000.0],
        },
        "accounts": {"account_id": ["Aa", "Ab", "Ac", "Ad"], "owner_id": ["a", "b", "c", "d"]},
        "drawdowns": {
            "drawdown_id": [f"d{i}" for i in range(len(iso))],
            "line_id": ["La"] * 6 + ["Lb"] * 5 + ["Lc"] * 5 + ["Ld"] * 2,
            "account_id": ["Aa"] * 6 + ["Ab"] * 5 + ["Ac"] * 5 + ["Ad"] * 2,
            "amount": [100.0] * 6 + b_amounts + [200.0] * 5 + [100.0, 100.0],
            "ts": iso,
        },
        "repayments": {
            "line_id": ["La"] * 6 + ["Lb", "Lc", "Ld", "Ld"],
            "due_date": ["2024-02-01"] * 8 + ["2024-01-31"] * 2,
            "paid_at": [(t + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") for t in a_ts]
            + ["2024-02-01T12:00:00", "2024-02-20T12:00:00"]
            + [(t + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S") for t in d_ts],
            "amount": [100.0] * 6 + [6500.0, 1000.0, 100.0, 100.0],
            "days_past_due": [0] * 10,
        },
    }


def test_cosmetic_features_by_hand() -> None:
    feats = customer_features(RiskGraph.from_tables(make_tables(**_hand_built())), snapshot=SNAP)
    assert set(COSMETIC_NAMES) <= set(feats.names)
    rows = {r["customer_id"]: r for r in feats.frame.to_dicts()}
    a, b, c, d = rows["a"], rows["b"], rows["c"], rows["d"]
    assert (a["draw_amount_regularity"], a["draw_interval_regularity"]) == (1.0, 1.0)
    assert (a["quick_repaid_share"], a["draw_share_of_limit"]) == (1.0, 0.01)
    assert (a["cosmetic_score"], a["cosmetic_pattern"]) == (1.0, 1.0)
    amounts = np.array([500.0, 2000.0, 100.0, 900.0, 3000.0])
    gaps = np.diff([0.0, 1.0, 9.0, 30.0, 31.0])
    oracle_amount = max(0.0, 1 - amounts.std(ddof=1) / amounts.mean())
    oracle_gap = max(0.0, 1 - gaps.std(ddof=1) / gaps.mean())
    assert b["draw_amount_regularity"] == pytest.approx(oracle_amount)
    assert b["draw_interval_regularity"] == pytest.approx(oracle_gap)
    assert b["draw_share_of_limit"] == pytest.approx(900.0 / 10_000)
    # Lb's one repayment (02-01 12:00) is 2 h after the 02-01 drawdown, 26 h after the 01-31 one.
    assert b["quick_repaid_share"] == pytest.approx(1 / 5)
    assert b["cosmetic_pattern"] == 0.0
    # c: regular and small, but its one repayment comes 10+ days after any drawdown.
    assert (c["draw_interval_regularity"], c["quick_repaid_share"]) == (1.0, 0.0)
    assert (c["cosmetic_score"], c["cosmetic_pattern"]) == (0.0, 0.0)
    # d: repaid at once, but two drawdowns are no pattern.
    assert d["quick_repaid_share"] == 1.0
    assert (d["draw_amount_regularity"], d["cosmetic_pattern"]) == (0.0, 0.0)
    assert (feats.frame.select(COSMETIC_NAMES).null_count().sum_horizontal() == 0).all()


def test_without_cosmetics_the_features_are_the_earlier_set() -> None:
    graph = RiskGraph.from_tables(make_tables(**_hand_built()))
    full = customer_features(graph, snapshot=SNAP)
    bare = customer_features(graph, snapshot=SNAP, cosmetics=False)
    assert bare.names == [n for n in full.names if n not in COSMETIC_NAMES]
    assert bare.frame.equals(full.frame.drop(COSMETIC_NAMES))


@pytest.mark.parametrize("seed", [11, 12])
def test_the_flag_finds_the_planted_customers(seed: int) -> None:
    data = generate_tables(3000, seed)
    feats = customer_features(RiskGraph.from_tables(data.tables))
    planted = data.truth["cosmetics"].get_column("customer_id")
    flagged = feats.frame.filter(pl.col("cosmetic_pattern") > 0).get_column("customer_id")
    hits = int(flagged.is_in(planted.implode()).sum())
    precision, recall = hits / max(flagged.len(), 1), hits / planted.len()
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    # The score ranks them too: every planted customer above the 95th percentile of the rest.
    score = feats.frame.with_columns(pl.col("customer_id").is_in(planted.implode()).alias("p"))
    rest = score.filter(~pl.col("p")).get_column("cosmetic_score").quantile(0.95)
    assert score.filter(pl.col("p")).get_column("cosmetic_score").min() > rest


def test_the_cosmetic_rule_fires_on_the_flag_at_the_policy_tier() -> None:
    tables = make_tables(**_hand_built())
    graph = RiskGraph.from_tables(tables)
    feats = customer_features(graph, snapshot=SNAP)
    hits = cosmetic_hits(feats.frame, load_policy(None))
    assert hits.get_column("customer_id").to_list() == ["a"]
    assert hits.get_column("tier").to_list() == ["yellow"]
    assert hits.item(0, "reason") == (
        "credit cosmetics: small regular drawdowns (1% of the limit), 100% repaid within a day; "
        "amount regularity 1.00, interval regularity 1.00"
    )
    orange = parse_policy({"rule_tiers": {"cosmetic": "orange"}})
    assert cosmetic_hits(feats.frame, orange).get_column("tier").to_list() == ["orange"]
    # Without the features (gnn.cosmetic_features = false) the rule cannot fire.
    bare = customer_features(graph, snapshot=SNAP, cosmetics=False)
    assert cosmetic_hits(bare.frame, load_policy(None)).is_empty()
    # Absolute tiers (a budget of 8% yellow leaves no place among four customers).
    absolute = parse_policy({"budget": {"mode": "absolute"}})
    tiers = evaluate(graph, absolute, features=feats.frame).customers.sort("customer_id")
    assert tiers.get_column("tier").to_list() == ["yellow", "green", "green", "green"]
