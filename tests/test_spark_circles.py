"""Circles on Spark equal the embedded engine's exactly: members, ids, cycles, amounts, reach."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.circles import guarantee_circles
from graphkit.config import CirclesConfig
from graphkit.graph import RiskGraph
from graphkit.spark.circles import guarantee_circles_spark
from graphkit.spark.tables import from_polars
from tests.spark_cases import random_tables


@settings(max_examples=2)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(2, 5), cap=st.integers(1, 6))
def test_spark_circles_equal_embedded(spark, seed, length, cap):
    tables = random_tables(seed)
    expected = guarantee_circles(RiskGraph.from_tables(tables), length, cap)
    got = guarantee_circles_spark(from_polars(spark, tables), CirclesConfig(length, cap))
    assert got.membership.equals(expected.membership)
    assert got.summary.equals(expected.summary)
