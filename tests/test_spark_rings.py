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


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), local=st.booleans())
def test_spark_components_equal_scipy(spark, seed, local):
    """Both component paths (one task, or the star rounds with their star-forest stopping test)
    give every node the smallest id of its scipy component."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    from graphkit.spark.components import connected_components

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    pairs = rng.integers(0, n, size=(int(rng.integers(1, 2 * n)), 2)) * 7 + 3
    frame = spark.createDataFrame([(int(a), int(b)) for a, b in pairs], "u long, v long")
    got = dict(connected_components(frame, local_edges=10**6 if local else 0).collect())
    nodes = np.unique(pairs[pairs[:, 0] != pairs[:, 1]])
    index = {node: i for i, node in enumerate(nodes)}
    kept = [(index[a], index[b]) for a, b in pairs if a != b]
    rows, cols = zip(*kept, strict=True) if kept else ((), ())
    graph = coo_matrix(([1] * len(kept), (rows, cols)), shape=(len(nodes), len(nodes)))
    labels = scipy_components(graph, directed=False)[1]
    smallest = {label: nodes[labels == label].min() for label in set(labels)}
    assert got == {int(node): int(smallest[labels[index[node]]]) for node in nodes}
