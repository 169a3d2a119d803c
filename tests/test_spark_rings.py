"""Rings on Spark equal the embedded engine's exactly: same members, same ids, same hubs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.rings import device_rings as embedded_rings
from graphkit.config import RingsConfig
from graphkit.graph import RiskGraph
from graphkit.spark import rings as spark_rings
from graphkit.spark.tables import from_polars
from tests.spark_cases import random_tables


@settings(max_examples=2)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 3), extra=st.integers(0, 2))
def test_spark_rings_equal_embedded(spark, seed, k, extra):
    tables = random_tables(seed)
    config = RingsConfig(min_customers_per_device=k, max_customers_per_device=k + extra)
    expected = embedded_rings(RiskGraph.from_tables(tables), k, k + extra)
    got = spark_rings.device_rings(from_polars(spark, tables), config)
    assert got.membership.equals(expected.membership)
    assert got.hubs.equals(expected.hubs)
