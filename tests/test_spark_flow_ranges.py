"""The range kernels of the Spark flows stage against brute force, and a busy account whose
window boundaries decide the answer, on every strategy, against the embedded engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.flows import trace_flows
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.spark.flow_ranges import PAIR_CHUNK, moves_in_windows, used_in_windows
from loaders.frames import make_tables

START = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW_DAYS = 10.0


def _random_sides(seed: int, n_arrivals: int, n_transfers: int):
    """Arrivals and transfers over few accounts and a coarse clock (ties and shared ends)."""
    rng = np.random.default_rng(seed)
    accounts = [f"a{i}" for i in range(4)]
    arrive = rng.integers(0, 12, n_arrivals)
    arrivals = pa.table(
        {
            "walker": pa.array([f"d{i}" for i in range(n_arrivals)], pa.string()),
            "bucket": pa.array(rng.integers(0, 3, n_arrivals), pa.int64()),
            "account": pa.array([accounts[i] for i in rng.integers(0, 4, n_arrivals)], pa.string()),
            "t": pa.array(arrive, pa.int64()),
            "end": pa.array(arrive + rng.integers(0, 6, n_arrivals), pa.int64()),
        }
    )
    dst = rng.integers(0, 5, n_transfers)
    transfers = pa.table(
        {
            "transfer_id": pa.array([f"x{i}" for i in range(n_transfers)], pa.string()),
            "src": pa.array([accounts[i] for i in rng.integers(0, 4, n_transfers)], pa.string()),
            "dst": pa.array([f"b{i}" for i in dst], pa.string()),
            "t": pa.array(rng.integers(0, 18, n_transfers), pa.int64()),
            "dst_sink": pa.array(dst < 2, pa.bool_()),  # a flag of the receiving account
        }
    )
    return arrivals, transfers


def _brute_pairs(arrivals: pa.Table, transfers: pa.Table) -> pl.DataFrame:
    a = pl.from_arrow(arrivals).rename({"t": "arrive"})
    x = pl.from_arrow(transfers)
    return a.join(x, left_on="account", right_on="src").filter(
        (pl.col("t") >= pl.col("arrive")) & (pl.col("t") <= pl.col("end"))
    )


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_arrivals=st.integers(0, 30),
    n_transfers=st.integers(0, 40),
    chunk=st.sampled_from([1, 3, PAIR_CHUNK]),
)
def test_kernels_equal_brute_force(seed, n_arrivals, n_transfers, chunk):
    # tiny chunks split one account's arrivals (and its transfers' windows) across chunks
    arrivals, transfers = _random_sides(seed, n_arrivals, n_transfers)
    pairs = _brute_pairs(arrivals, transfers)
    moves = pl.from_arrow(moves_in_windows(arrivals.drop(["bucket"]), transfers, chunk))
    expected = (
        pairs.group_by("walker", "dst")
        .agg(pl.col("t").min(), pl.col("end").first(), pl.col("dst_sink").first())
        .rename({"dst": "account", "dst_sink": "sink"})
        .select("walker", "account", "t", "end", "sink")
    )
    key = ["walker", "account"]
    assert moves.sort(key).equals(expected.sort(key))
    used = pl.from_arrow(used_in_windows(arrivals, transfers, chunk))
    expected_used = pairs.select("bucket", "transfer_id").unique()
    assert used.height == used.select("bucket", "transfer_id").n_unique()
    assert (
        used.select("bucket", "transfer_id")
        .sort("bucket", "transfer_id")
        .equals(expected_used.sort("bucket", "transfer_id"))
    )
    # the used rows carry the transfers' own columns
    assert used.drop("bucket").join(pl.from_arrow(transfers), on=used.columns[1:]).height == (
        used.height
    )


def _busy_account_tables() -> dict[str, pl.DataFrame]:
    """Thirteen drawdowns whose money meets at one hub (arrivals on days 0-11 and 15), which
    pays a banned sink and a forwarder at instants equal to arrivals, exactly at window ends,
    one microsecond past one, and one microsecond before the last arrival."""
    day, micro = timedelta(days=1), timedelta(microseconds=1)
    arrive = [START + i * day for i in [*range(12), 15]]
    end = [t + WINDOW_DAYS * day for t in arrive]
    customers = [f"c{i}" for i in range(len(arrive))]
    drawdowns, transfers = [], []
    for i, t in enumerate(arrive):
        drawdowns.append((f"D{i:02d}", f"L{i}", f"A{i}", 100.0 + i, t))
        # the account forwards to the hub at the drawdown's own instant
        transfers.append((f"T{i:02d}", f"A{i}", "HUB", 100.0 + i, t))
    out = [
        ("SINK", arrive[3]),  # == arrival 3: the last drawdown it serves at two hops
        ("FWD", arrive[4]),  # == arrival 4; FWD pays the sink exactly at 4's end
        ("SINK", end[4] + micro),  # one past drawdown 4's end: 4 needs three hops
        ("SINK", arrive[12] - micro),  # just before the last arrival: it reaches nothing
    ]
    for k, (dst, ts) in enumerate(out):
        # ids after the T's: at an equal instant the replay moves the hub's inflow first
        transfers.append((f"X{k}", "HUB", dst, 30.0 + 7 * k, ts))
    transfers.append(("Y0", "FWD", "SINK", 500.0, end[4]))  # exactly 4's window end
    return make_tables(
        customers={"customer_id": customers, "kind": ["person"] * len(customers)},
        credit_lines={
            "line_id": [f"L{i}" for i in range(len(arrive))],
            "customer_id": customers,
            "limit": [1000.0] * len(arrive),
        },
        sectors={"sector": ["casino", "ok"], "banned": [True, False]},
        merchants={"merchant_id": ["M0", "M1"], "sector": ["casino", "ok"]},
        accounts={
            "account_id": [f"A{i}" for i in range(len(arrive))] + ["HUB", "FWD", "SINK"],
            "owner_id": [*customers, "M1", "M1", "M0"],
        },
        drawdowns=pl.DataFrame(
            drawdowns,
            schema=["drawdown_id", "line_id", "account_id", "amount", "ts"],
            orient="row",
        ),
        transfers=pl.DataFrame(
            transfers,
            schema=["transfer_id", "src_account", "dst_account", "amount", "ts"],
            orient="row",
        ),
    )


@pytest.mark.parametrize("strategy", ["buckets", "range", "join"])
def test_busy_account_window_boundaries_equal_embedded(spark, strategy):
    from graphkit.spark.flows import flow_frames
    from graphkit.spark.rings import to_polars
    from graphkit.spark.tables import from_polars

    tables = _busy_account_tables()
    config = FlowsConfig(window_days=WINDOW_DAYS, max_hops=3)
    expected = trace_flows(RiskGraph.from_tables(tables), config, cycles=False)
    flows, paths = flow_frames(from_polars(spark, tables), config, buckets=2, strategy=strategy)
    schema = {**expected.flows.schema, "kernel_min_hops": pl.Int32}
    got = to_polars(flows, schema).sort("drawdown_id")
    assert got.drop("kernel_min_hops").equals(expected.flows.sort("drawdown_id"))
    assert got.get_column("min_hops_to_banned").equals(
        got.get_column("kernel_min_hops"), check_names=False
    )
    got_paths = to_polars(paths, dict(expected.paths.schema)).sort("drawdown_id", "path_rank")
    assert got_paths.equals(expected.paths.sort("drawdown_id", "path_rank"))
    # the case is not vacuous: the boundaries decide two hops, three hops or none
    hops = got.get_column("min_hops_to_banned").to_list()
    assert hops == [2, 2, 2, 2, 3, 2, 2, 2, 2, 2, 2, 2, None]
    # ... and the replay's amounts need the transfers at the boundaries in the buckets
    banned = dict(got.select("drawdown_id", "banned_amount").iter_rows())
    assert banned["D03"] > 0 and banned["D04"] > 0
