"""GNN scoring on Spark equals the driver's torch forward pass of the same model.

The executors run the model's layers in float64 numpy from its float32 weights, torch runs them
in float32, and the neighbour sums are added in another order: so scores agree to about 1e-7,
not bit for bit; 1e-6 is the bound asserted. The customer graph the executors build is the
driver's exactly (same pairs per relation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnn.data import RELATIONS, Standardiser, build_data, customer_edges
from gnn.features import customer_features, snapshot_time
from gnn.fit import fit_and_score
from gnn.models import build_model
from gnn.score import MODEL_FILE, score_customers
from gnn.train import TrainSettings
from graphkit.config import Config, apply_overrides
from graphkit.extras import extra_features
from graphkit.graph import RiskGraph
from graphkit.spark import scoring
from graphkit.spark.engine import SparkEngine
from graphkit.spark.rings import to_polars
from graphkit.spark.tables import from_polars, read_tables
from loaders.sources import read_input
from tests.test_spark_features import feature_tables

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def spark_edges(edges, keys: pl.Series) -> dict[str, np.ndarray]:
    """The Spark edge DataFrame as :func:`gnn.data.customer_edges`' arrays (sorted pairs)."""
    frame = to_polars(edges, {"src": pl.String, "dst": pl.String, "rel": pl.Int32})
    ids = pl.DataFrame({"customer_id": keys}).with_row_index("id")
    frame = frame.join(ids.rename({"customer_id": "src", "id": "s"}), on="src").join(
        ids.rename({"customer_id": "dst", "id": "d"}), on="dst"
    )
    out = {}
    for i, relation in enumerate(RELATIONS):
        part = frame.filter(pl.col("rel") == i).sort("s", "d")
        out[relation] = np.stack([part["s"].to_numpy(), part["d"].to_numpy()]).astype(np.int64)
    return out


@pytest.mark.timeout(2400)
@settings(max_examples=2, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    aggr=st.sampled_from(["sum", "mean"]),
    hub=st.sampled_from([2, 50]),
)
def test_spark_scoring_equals_torch_on_random_networks(spark, seed, aggr, hub):
    tables = feature_tables(seed)
    graph = RiskGraph.from_tables(tables)
    snapshot = snapshot_time(graph)
    features = customer_features(graph, snapshot=snapshot)
    spark_tables = from_polars(spark, tables)
    # the features' equality is tests/test_spark_features.py's; here the driver's frame is
    # handed to Spark, so this test costs only the edges and the layers
    frame = spark.createDataFrame(features.frame.to_pandas())
    edges = scoring.customer_edges(spark_tables, snapshot, hub)
    expected_edges = customer_edges(graph, snapshot, hub)
    got_edges = spark_edges(edges, graph.keys("Customer"))
    for relation in RELATIONS:
        assert np.array_equal(got_edges[relation], expected_edges[relation]), relation
    assert sum(e.shape[1] for e in expected_edges.values()) > 0
    # an untrained model with random weights: every weight matters, none is near zero
    shape = TrainSettings(hidden=8, layers=2, aggr=aggr)
    torch.manual_seed(seed % 1000)
    model = build_model(len(features.names), shape).eval()
    standardiser = Standardiser.fit(features.matrix())
    data, _ = build_data(graph, features, standardiser, max_device_users=hub)
    expected = score_customers(model, data, 0.7)
    saved = {
        "model": model,
        "settings": shape,
        "standardiser": standardiser,
        "log_weight": 0.7,
        "prior": None,
    }
    scored = to_polars(
        scoring.score_frame(frame, features.names, edges, saved),
        {"customer_id": pl.String, "gnn_score": pl.Float64},
    )
    got = (
        pl.DataFrame({"customer_id": graph.keys("Customer")})
        .join(scored, on="customer_id", how="left", maintain_order="left")
        .get_column("gnn_score")
        .to_numpy()
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.timeout(1800)
def test_spark_scores_equal_the_driver_model_on_the_sample(spark, tmp_path):
    graph = RiskGraph.from_tables(read_input(SAMPLE).tables)
    keys = graph.keys("Customer")
    # a low prior threshold, so the tree prior (broadcast with its fold models) is exercised
    config = apply_overrides(Config(), {"gnn.epochs": 5, "gnn.tree_prior_min_positives": 20})
    engine = SparkEngine(spark, read_tables(spark, str(SAMPLE)), str(SAMPLE))
    features, frame = engine.features(
        keys, snapshot_time(graph), extra_features(graph.nodes["Customer"])
    )
    result = fit_and_score(graph, features, config, tmp_path)
    assert result.scores is not None
    assert result.model["tree_prior"].get("file")
    got = engine.gnn_scores(frame, tmp_path / MODEL_FILE, keys)
    assert got.get_column("customer_id").equals(keys.rename("customer_id"))
    assert got.get_column("gnn_score").null_count() == 0
    np.testing.assert_allclose(got.get_column("gnn_score").to_numpy(), result.scores, atol=1e-6)
