"""Customer features on Spark equal the embedded ones (:func:`gnn.features.customer_features`).

Counts (drawdowns in a window, degrees, peers, late instalments, flags) must be equal exactly.
Float columns built from sums, means, standard deviations or medians are compared to 1e-9
relative: Spark adds the values of a group in the order its partitions deliver them and polars in
its own, and Spark's median interpolates as ``a + (b - a) / 2``, so the last bits may differ.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnn.features import CustomerFeatures, customer_features, snapshot_time
from graphkit.analytics.circles import guarantee_circles
from graphkit.analytics.rings import device_rings
from graphkit.extras import extra_features
from graphkit.graph import RiskGraph
from graphkit.spark.features import customer_extras, customer_features_spark
from graphkit.spark.tables import from_polars, read_tables
from loaders.sources import read_input
from tests.spark_cases import START, random_tables

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
# Columns that are sums, means, medians or ratios of floats; every other column is a count, a
# flag, a maximum or a whole-unit time difference and must match exactly.
FLOAT_SUMS = {
    "limit_total", "drawn_total", "repaid_total", "utilisation", "hours_to_outflow",
    "fast_outflow_share", "dpd_mean", "guarantee_amount_out", "guarantee_amount_in",
    "transfer_amount_out", "transfer_amount_in", "draw_amount_regularity",
    "draw_interval_regularity", "quick_repaid_share", "draw_share_of_limit", "cosmetic_score",
}  # fmt: skip


def feature_tables(seed: int) -> dict[str, pl.DataFrame]:
    """:func:`tests.spark_cases.random_tables` plus what the features read and those cases leave
    empty: creation times and capital, repayments (paid, late, unpaid), shareholdings, dated
    device links and guarantees, and one customer with regular small drawdowns each repaid at
    once (the credit-cosmetics pattern)."""
    tables = random_tables(seed)
    rng = np.random.default_rng(seed)
    customers = tables["customers"]
    n = customers.height
    day = timedelta(days=1)
    tables["customers"] = customers.with_columns(
        pl.Series("created_at", [START - int(d) * day for d in rng.integers(-5, 400, n)]),
        pl.Series("registered_capital", rng.integers(0, 10, n) * 1000.5),
    )
    # a cosmetics-like customer: equal drawdowns every 3 days on its first line, each repaid
    # within hours
    line = tables["credit_lines"].row(0, named=True)
    account = tables["accounts"].filter(pl.col("owner_id") == line["customer_id"]).row(0)[0]
    regular = pl.DataFrame(
        {
            "drawdown_id": [f"reg{i}" for i in range(6)],
            "line_id": [line["line_id"]] * 6,
            "account_id": [account] * 6,
            "amount": [60.0] * 6,
            "ts": [START + i * 3 * day + timedelta(hours=5) for i in range(6)],
        }
    )
    draws = pl.concat([tables["drawdowns"], regular], how="diagonal_relaxed")
    tables["drawdowns"] = draws.cast(tables["drawdowns"].schema)  # type: ignore[arg-type]
    lines = tables["credit_lines"].get_column("line_id").to_list()
    reps: dict[str, list] = {
        "line_id": [], "due_date": [], "paid_at": [], "amount": [], "days_past_due": []
    }  # fmt: skip
    for i in range(6):
        reps["line_id"].append(line["line_id"])
        reps["due_date"].append((START + i * 3 * day).date())
        reps["paid_at"].append(START + i * 3 * day + timedelta(hours=9, seconds=i))
        reps["amount"].append(60.0)
        reps["days_past_due"].append(None)
    for _ in range(3 * len(lines)):
        due = START + int(rng.integers(0, 50)) * day
        reps["line_id"].append(lines[int(rng.integers(len(lines)))])
        reps["due_date"].append(due.date())
        paid = rng.random()
        reps["paid_at"].append(
            due + timedelta(seconds=int(rng.integers(-86_400, 20 * 86_400))) if paid < 0.7 else None
        )
        reps["amount"].append(round(float(rng.random()) * 300, 2))
        reps["days_past_due"].append(int(rng.integers(0, 9)) if rng.random() < 0.4 else None)
    tables["repayments"] = pl.DataFrame(reps).cast(tables["repayments"].schema)  # type: ignore[arg-type]
    ids = customers.get_column("customer_id").to_list()
    holdings = {"holder_id": [], "company_id": [], "share": []}
    for _ in range(n // 2):
        a, b = rng.choice(n, 2, replace=False)
        holdings["holder_id"].append(ids[a])
        holdings["company_id"].append(ids[b])
        holdings["share"].append(0.5)
    tables["shareholdings"] = pl.DataFrame(holdings).cast(tables["shareholdings"].schema)  # type: ignore[arg-type]
    links = tables["device_links"]
    tables["device_links"] = links.with_columns(
        pl.Series(
            "first_seen",
            [START + int(d) * day if d >= 0 else None for d in rng.integers(-3, 50, links.height)],
            dtype=links.schema["first_seen"],
        )
    )
    guarantees = tables["guarantees"]
    g = guarantees.height
    tables["guarantees"] = guarantees.with_columns(
        pl.Series("start", [(START + int(d) * day).date() if d >= 0 else None
                            for d in rng.integers(-3, 50, g)], dtype=pl.Date),
        pl.Series("end", [(START + int(d) * day).date() if d >= 0 else None
                          for d in rng.integers(-10, 80, g)], dtype=pl.Date),
    )  # fmt: skip
    return tables


def assert_features_equal(got: CustomerFeatures, expected: CustomerFeatures) -> None:
    assert got.names == expected.names
    assert got.snapshot == expected.snapshot
    assert got.dropped == expected.dropped
    assert got.frame.columns == expected.frame.columns
    assert got.frame.schema == expected.frame.schema
    assert got.frame.get_column("customer_id").equals(expected.frame.get_column("customer_id"))
    wrong = []
    for name in expected.names:
        a = got.frame.get_column(name).to_numpy()
        b = expected.frame.get_column(name).to_numpy()
        if name in FLOAT_SUMS:
            same = np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            same = np.array_equal(a, b, equal_nan=True)
        if not same:
            bad = np.flatnonzero(~np.isclose(a, b, rtol=0, atol=0, equal_nan=True))[:3]
            wrong.append(
                f"{name}: rows {bad.tolist()} got {a[bad].tolist()} want {b[bad].tolist()}"
            )
    assert not wrong, "\n".join(wrong)


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), days_before=st.sampled_from([None, 10]))
def test_spark_features_equal_embedded(spark, seed, days_before):
    tables = feature_tables(seed)
    graph = RiskGraph.from_tables(tables)
    snapshot = snapshot_time(graph)
    if days_before is not None:  # a snapshot inside the history: every time filter bites
        snapshot = snapshot - timedelta(days=days_before, hours=7, seconds=13)
    circles = guarantee_circles(graph).membership.select("customer_id", "circle_id")
    rings = device_rings(graph, 2, 50).membership.select("customer_id", "ring_id")
    flows = pl.DataFrame(
        {
            "customer_id": graph.keys("Customer"),
            "banned_share": np.random.default_rng(seed).random(graph.n("Customer")),
        }
    )
    options = {
        "customer_flows": flows,
        "circle_membership": circles,
        "ring_membership": rings,
        "outflow_cap_hours": 15 * 24.0,
    }
    expected = customer_features(graph, snapshot=snapshot, **options)
    got, _ = customer_features_spark(
        from_polars(spark, tables), graph.keys("Customer"), snapshot, **options
    )
    assert_features_equal(got, expected)
    assert got.frame.get_column("late_count").sum() > 0
    assert got.frame.get_column("quick_repaid_share").max() > 0


@pytest.mark.timeout(1800)
def test_spark_features_on_the_sample_read_by_spark(spark):
    graph = RiskGraph.from_tables(read_input(SAMPLE).tables)
    snapshot = snapshot_time(graph)
    extras = extra_features(graph.nodes["Customer"])
    assert [e.column for e in extras] == ["bureau_score", "income"]
    expected = customer_features(graph, snapshot=snapshot)
    got, _ = customer_features_spark(
        read_tables(spark, str(SAMPLE)),
        graph.keys("Customer"),
        snapshot,
        extras=customer_extras(spark, str(SAMPLE), extras),
    )
    assert_features_equal(got, expected)
    assert got.frame.get_column("cosmetic_pattern").sum() > 0
