"""Customer features: exact values on a hand-built graph, and the leakage guard."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from gnn.features import customer_features, snapshot_time
from graphkit.graph import RiskGraph
from loaders.frames import make_tables

SNAP = datetime(2024, 1, 10, 0, 0, tzinfo=UTC)


def _base(**extra: dict) -> dict[str, dict]:
    tables = {
        "customers": {
            "customer_id": ["a", "b", "c"],
            "kind": ["person", "enterprise", "person"],
            "bureau_score": [600, 700, 650],
            "region": ["x", "y", "z"],
        },
        "credit_lines": {
            "line_id": ["L1", "L2"],
            "customer_id": ["a", "b"],
            "limit": [100.0, 200.0],
        },
        "accounts": {"account_id": ["A1", "A2", "A3"], "owner_id": ["a", "b", "c"]},
        "drawdowns": {
            "drawdown_id": [f"d{i}" for i in range(7)],
            "line_id": ["L1"] * 5 + ["L2"] * 2,
            "account_id": ["A1"] * 5 + ["A2"] * 2,
            "amount": [10.0] * 5 + [50.0, 30.0],
            "ts": [
                "2024-01-09T01:00:00",
                "2024-01-09T02:00:00",
                "2024-01-09T03:00:00",
                "2024-01-09T04:00:00",
                "2024-01-09T05:00:00",
                "2023-12-20T00:00:00",
                "2024-01-05T00:00:00",
            ],
        },
        "transfers": {
            "transfer_id": ["t1", "t2"],
            "src_account": ["A1", "A2"],
            "dst_account": ["A3", "A3"],
            "amount": [5.0, 7.0],
            "ts": ["2024-01-09T03:30:00", "2024-01-06T00:00:00"],
        },
        "repayments": {
            "line_id": ["L1", "L1", "L2"],
            "due_date": ["2024-01-01", "2024-01-05", "2024-01-02"],
            "paid_at": ["2024-01-04T00:00:00", None, "2024-01-02T00:00:00"],
            "amount": [20.0, 5.0, 40.0],
            "days_past_due": [3, None, 0],
        },
        "guarantees": {"guarantor_id": ["a"], "borrower_id": ["b"], "amount": [50.0]},
        "device_links": {"customer_id": ["a", "c"], "device_id": ["X", "X"]},
        "labels": {"customer_id": ["a", "b"], "defaulted": [True, False]},
    }
    tables.update(extra)
    return tables


def _features(tables: dict, **kw):
    return customer_features(RiskGraph.from_tables(make_tables(**tables)), snapshot=SNAP, **kw)


def test_feature_values_by_hand():
    feats = _features(_base())
    rows = {r["customer_id"]: r for r in feats.frame.to_dicts()}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert feats.frame.get_column("customer_id").to_list() == ["a", "b", "c"]
    # Extra numeric customer columns are features; text ones are not.
    assert a["extra_bureau_score"] == 600 and "extra_region" not in feats.names
    assert (a["drawn_total"], a["repaid_total"], a["utilisation"]) == (50.0, 20.0, 0.3)
    assert b["utilisation"] == pytest.approx((80.0 - 40.0) / 200.0)
    assert (a["drawdowns_1d"], a["drawdowns_7d"], a["busiest_day_drawdowns"]) == (5, 5, 5)
    assert (b["drawdowns_7d"], b["drawdowns_30d"], b["busiest_day_drawdowns"]) == (1, 2, 1)
    # a: drawdowns at 01..05h, one outflow at 03:30 -> waits 2.5, 1.5, 0.5 h, then none (cap).
    assert a["hours_to_outflow"] == pytest.approx(2.5)
    assert a["fast_outflow_share"] == pytest.approx(3 / 5)
    # b: the 2023-12-20 drawdown waits 17 days for t2, the 2024-01-05 one 24 h.
    assert b["hours_to_outflow"] == pytest.approx((17 * 24 + 24) / 2)
    # a's second instalment (due 01-05) is unpaid at the snapshot: 5 days late.
    assert (a["dpd_max"], a["dpd_mean"], a["late_count"]) == (5.0, 4.0, 2.0)
    assert (a["guarantees_out"], b["guarantees_in"], b["guarantee_amount_in"]) == (1, 1, 50.0)
    assert (a["devices"], a["device_peers"], c["device_peers"]) == (1, 1, 1)
    assert (a["transfers_out"], c["transfers_in"], c["transfer_amount_in"]) == (1, 2, 12.0)
    assert c["hours_to_outflow"] == 30 * 24.0  # no drawdown: counted as the whole window


def _after_snapshot_events() -> dict:
    """Events dated after SNAP that would change almost every feature if they were read."""
    base = _base()
    base["drawdowns"] = {
        k: v + extra
        for (k, v), extra in zip(
            base["drawdowns"].items(),
            [
                ["late1", "late2"],
                ["L2", "L2"],
                ["A2", "A2"],
                [90.0, 90.0],
                ["2024-01-11T00:00:00", "2024-01-11T01:00:00"],
            ],
            strict=True,
        )
    }
    base["transfers"] = {
        "transfer_id": ["t1", "t2", "t3"],
        "src_account": ["A1", "A2", "A1"],
        "dst_account": ["A3", "A3", "A2"],
        "amount": [5.0, 7.0, 100.0],
        "ts": ["2024-01-09T03:30:00", "2024-01-06T00:00:00", "2024-01-09T05:30:00"],
    }
    # The repayment due 01-05 is paid after the snapshot (60 days late in the final data).
    base["repayments"] = {
        **base["repayments"],
        "paid_at": ["2024-01-04T00:00:00", "2024-03-05T00:00:00", "2024-01-02T00:00:00"],
        "days_past_due": [3, 60, 0],
    }
    base["guarantees"] = {
        "guarantor_id": ["a", "c"],
        "borrower_id": ["b", "b"],
        "amount": [50.0, 70.0],
        "start": [None, "2024-02-01"],
    }
    base["device_links"] = {
        "customer_id": ["a", "c", "b"],
        "device_id": ["X", "X", "X"],
        "first_seen": [None, None, "2024-02-01T00:00:00"],
    }
    return base


def test_events_after_the_snapshot_change_no_feature():
    before = _features(_base())
    after = _features(_after_snapshot_events())
    # t3 (05:30, before the snapshot) is the only new event that may count: a's last drawdown.
    changed = {
        n for n in before.names if not before.frame.get_column(n).equals(after.frame.get_column(n))
    }
    assert changed <= {
        "hours_to_outflow",
        "fast_outflow_share",
        "transfers_out",
        "transfer_amount_out",
        "transfers_in",
        "transfer_amount_in",
    }
    drop_t3 = _after_snapshot_events()
    drop_t3["transfers"] = _base()["transfers"]
    assert _features(drop_t3).frame.equals(before.frame)


def test_the_leakage_guard_can_fail():
    """Negative control: the same events dated before the snapshot do change features."""
    leaky = _after_snapshot_events()
    leaky["drawdowns"]["ts"][-2:] = ["2024-01-09T10:00:00", "2024-01-09T11:00:00"]
    leaky["repayments"]["paid_at"][1] = "2024-01-08T00:00:00"
    leaky["repayments"]["days_past_due"][1] = 3
    leaky["guarantees"]["start"][1] = "2024-01-01"
    leaky["device_links"]["first_seen"][2] = "2024-01-01T00:00:00"
    leaky["transfers"] = _base()["transfers"]
    before = _features(_base()).frame
    leaked = _features(leaky).frame
    for name in ("drawdowns_1d", "dpd_mean", "guarantees_in", "device_peers"):
        assert not before.get_column(name).equals(leaked.get_column(name)), name


def test_labels_are_never_features():
    tables = _base()
    flipped = {**tables, "labels": {"customer_id": ["a", "b"], "defaulted": [False, True]}}
    unlabelled = {k: v for k, v in tables.items() if k != "labels"}
    # A label column smuggled into customers is not a feature either.
    smuggled = {
        **tables,
        "customers": {**tables["customers"], "defaulted": [1, 0, 0], "default_date": [1, 2, 3]},
    }
    reference = _features(tables)
    for variant in (flipped, unlabelled, smuggled):
        assert _features(variant).frame.equals(reference.frame)
    assert not {"defaulted", "default_date"} & {n.removeprefix("extra_") for n in reference.names}


def test_network_facts_only_when_the_snapshot_covers_the_input():
    graph = RiskGraph.from_tables(make_tables(**_base()))
    results = {
        "ring_membership": pl.DataFrame({"customer_id": ["a", "c"], "ring_id": [1, 1]}),
        "customer_flows": pl.DataFrame(
            {
                "customer_id": ["a"],
                "drawn_amount": [50.0],
                "banned_amount": [20.0],
                "banned_share": [0.4],
            }
        ),
    }
    latest = snapshot_time(graph)
    assert latest == datetime(2024, 1, 9, 5, 0, tzinfo=UTC)
    full = customer_features(graph, **results)
    assert full.frame.get_column("ring_size").to_list() == [2.0, 0.0, 2.0]
    assert full.frame.get_column("banned_share").to_list() == [0.4, 0.0, 0.0]
    early = customer_features(graph, **results, snapshot=datetime(2024, 1, 1, tzinfo=UTC))
    assert "ring_size" not in early.names and "network facts" in early.dropped


def test_configured_snapshot_date_means_end_of_day():
    graph = RiskGraph.from_tables(make_tables(**_base()))
    assert snapshot_time(graph, "2024-01-05") == datetime(2024, 1, 5, 23, 59, 59, 999999, UTC)
    assert snapshot_time(graph, "2024-01-05T12:00:00") == datetime(2024, 1, 5, 12, tzinfo=UTC)
