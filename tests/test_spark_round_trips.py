"""Round trips on Spark equal the embedded kernel's exactly: cycles, ids, order, caps, flag."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.flows import FlowIndex, round_trips
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.spark.round_trips import round_trips_spark
from graphkit.spark.tables import from_polars, read_tables
from loaders.sources import read_input
from tests.spark_cases import START, random_tables

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def dense_tables(seed: int) -> dict[str, pl.DataFrame]:
    """:func:`random_tables` plus, per part, 25 transfers between its customers' accounts in
    three weeks: many round trips of every length, sharing transfers and tied in time."""
    tables = random_tables(seed, parts=6, size=6)
    rng = np.random.default_rng(seed)
    owned = tables["accounts"].join(
        tables["customers"].select(pl.col("customer_id").alias("owner_id")), on="owner_id"
    )
    part = owned.get_column("account_id").str.extract(r"^(p\d+)")
    rows = []
    for p, accounts in owned.with_columns(part.alias("part")).group_by("part"):
        names = accounts.get_column("account_id").to_list()
        if len(names) < 2:
            continue
        for t in range(25):
            a, b = rng.choice(len(names), 2, replace=False)
            day = timedelta(days=int(rng.integers(0, 21)))
            rows.append(
                (f"{p[0]}X{t:02d}", names[a], names[b], float(rng.integers(1, 99)), START + day)
            )
    extra = pl.DataFrame(
        rows, schema=["transfer_id", "src_account", "dst_account", "amount", "ts"], orient="row"
    )
    transfers = tables["transfers"]
    tables["transfers"] = pl.concat([transfers, extra.cast(transfers.schema)])
    return tables


def _embedded(tables, config: FlowsConfig):
    return round_trips(
        FlowIndex.build(RiskGraph.from_tables(tables)),
        window_days=config.cycle_window_days,
        max_length=config.cycle_max_length,
        max_cycles=config.max_cycles,
        max_expand_per_hop=config.max_expand_per_hop,
    )


@settings(max_examples=3, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(2, 5),
    window=st.sampled_from([5.0, 20.0, 60.0]),
    expand=st.sampled_from([1, 2, 10_000]),
    max_cycles=st.sampled_from([0, 3, 100_000]),
)
def test_spark_round_trips_equal_embedded(spark, seed, length, window, expand, max_cycles):
    tables = dense_tables(seed)
    config = FlowsConfig(
        cycle_max_length=length,
        cycle_window_days=window,
        max_expand_per_hop=expand,
        max_cycles=max_cycles,
    )
    expected, expected_capped = _embedded(tables, config)
    got, capped = round_trips_spark(from_polars(spark, tables), config)
    assert got.equals(expected)
    assert capped == expected_capped


def test_spark_round_trips_on_the_sample_read_by_spark(spark):
    config = FlowsConfig()
    expected, expected_capped = _embedded(read_input(SAMPLE).tables, config)
    got, capped = round_trips_spark(read_tables(spark, str(SAMPLE)), config)
    assert expected.height > 0
    assert got.equals(expected)
    assert capped == expected_capped
