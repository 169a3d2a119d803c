"""Clusters on Spark: modularity within 1% of the embedded engine's, planted groups recovered.

Leiden runs per component with the resolution that makes the component's optimum the global
objective's (graphkit/spark/clusters.py); the partition is not bit-equal to the embedded one
(Leiden's seeded vertex order depends on the whole graph's numbering), modularity is compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import adjusted_rand_score

from graphkit.analytics.clusters import related_clusters
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.spark.clusters import related_clusters_spark
from graphkit.spark.tables import from_polars, read_tables
from loaders.sources import read_input
from tests.analytics_fixtures import planted_network
from tests.test_clusters import _labels_over

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def test_spark_clusters_recover_planted_groups(spark):
    planted = planted_network(0)
    expected = related_clusters(RiskGraph.from_tables(planted.tables))
    got = related_clusters_spark(from_polars(spark, planted.tables), Config())
    truth, labels = _labels_over(planted.groups, got.membership, "group_id")
    assert adjusted_rand_score(truth, labels) >= 0.9
    assert got.ties == expected.ties
    assert got.modularity == pytest.approx(expected.modularity, rel=0.01)


def test_spark_clusters_on_the_sample_read_by_spark(spark):
    expected = related_clusters(RiskGraph.from_tables(read_input(SAMPLE).tables))
    got = related_clusters_spark(read_tables(spark, str(SAMPLE)), Config())
    assert got.ties == expected.ties
    assert got.modularity == pytest.approx(expected.modularity, rel=0.01)
