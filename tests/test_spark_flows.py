"""Flows on Spark equal the embedded engine's exactly: banned amounts by hop, minimum hops
(from the hop-layered joins and from the replay kernel), flags and evidence paths."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.flows import trace_flows
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.spark.flows import UnsupportedPolicyError, flow_frames
from graphkit.spark.rings import to_polars
from graphkit.spark.tables import from_polars
from tests.spark_cases import random_tables


def _spark_flows(spark, tables, config):
    flows, paths = flow_frames(from_polars(spark, tables), config, buckets=3)
    expected_schema = trace_flows(RiskGraph.from_tables(tables), config, cycles=False)
    flow_schema = {**expected_schema.flows.schema, "kernel_min_hops": pl.Int32}
    return (
        to_polars(flows, flow_schema).sort("drawdown_id"),
        to_polars(paths, dict(expected_schema.paths.schema)).sort("drawdown_id", "path_rank"),
        expected_schema,
    )


@settings(max_examples=2)
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.sampled_from([5.0, 20.0, 30.0]),
    hops=st.integers(1, 4),
)
def test_spark_flows_equal_embedded(spark, seed, window, hops):
    tables = random_tables(seed)
    config = FlowsConfig(window_days=window, max_hops=hops)
    got, paths, expected = _spark_flows(spark, tables, config)
    # the joins' minimum hops and the replay kernel's agree with each other ...
    assert got.get_column("min_hops_to_banned").equals(
        got.get_column("kernel_min_hops"), check_names=False
    )
    # ... and every column equals the embedded engine's, bit for bit
    assert got.drop("kernel_min_hops").equals(expected.flows.sort("drawdown_id"))
    assert paths.equals(expected.paths.sort("drawdown_id", "path_rank"))


def test_spark_flows_refuse_policies_needing_whole_histories(spark):
    tables = random_tables(1, parts=1)
    with pytest.raises(UnsupportedPolicyError, match="fifo"):
        flow_frames(from_polars(spark, tables), FlowsConfig(policy="fifo"), buckets=1)
