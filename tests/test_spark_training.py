"""The GNN's training set on Spark: the time split, the capped sample, the neighbourhoods.

Oracles are independent of the Spark code: networkx shortest paths over the driver's customer
graph (:func:`gnn.data.customer_edges`) for the neighbourhoods, the driver's labels and default
dates for the split and the sample, and the saved model's full-graph logits (the embedded
inputs rebuilt from ``model.pt``) for the claim that the subgraph is the sampled customers'
whole receptive field.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnn.data import RELATIONS, customer_edges, subgraph_data
from gnn.features import customer_features, snapshot_time
from gnn.fit import fit_subgraph, network_explainer
from gnn.prior import add_prior_column
from gnn.score import MODEL_FILE, load_model
from gnn.train import id_hash, predict_logits, stratified_split, time_split
from graphkit.config import Config, ConfigError, apply_overrides
from graphkit.graph import RiskGraph
from graphkit.spark import scoring, training
from graphkit.spark.rings import to_polars
from graphkit.spark.tables import read_tables
from loaders.sources import read_input

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
HOPS = 2


def bfs_oracle(
    pairs: list[tuple[int, int, int]], seeds: list[int], hops: int
) -> tuple[dict[int, int], set[tuple[int, int, int]]]:
    """Distance of every node within ``hops`` of ``seeds`` against the edges' direction, and
    the edges into nodes closer than ``hops``: networkx, multi-source."""
    reverse = nx.DiGraph()
    reverse.add_nodes_from(seeds)
    reverse.add_edges_from((dst, src) for src, dst, _ in pairs)
    dist = nx.multi_source_dijkstra_path_length(reverse, set(seeds), cutoff=hops)
    edges = {(s, d, r) for s, d, r in pairs if d in dist and dist[d] < hops}
    return dict(dist), edges


@pytest.fixture(scope="module")
def sample_case(spark):
    graph = RiskGraph.from_tables(read_input(SAMPLE).tables)
    snapshot = snapshot_time(graph)
    features = customer_features(graph, snapshot=snapshot)
    tables = read_tables(spark, str(SAMPLE))
    # the features' equality is tests/test_spark_features.py's: the driver's frame is handed over
    frame = spark.createDataFrame(features.frame.to_pandas()).cache()
    edges = scoring.customer_edges(tables, snapshot, 50).localCheckpoint()
    return graph, features, tables, frame, edges


def driver_pairs(graph: RiskGraph, snapshot) -> list[tuple[int, int, int]]:
    found = customer_edges(graph, snapshot, 50)
    return [
        (int(s), int(d), r)
        for r, relation in enumerate(RELATIONS)
        for s, d in found[relation].T.tolist()
    ]


def test_time_split_orders_defaults_by_date_and_keeps_both_classes(spark, sample_case):
    graph, _, tables, _, _ = sample_case
    parts = to_polars(
        training.label_parts(tables, seed=7),
        {"customer_id": pl.String, "label": pl.Int8, "default_date": pl.Date, "part": pl.String},
    )
    customers = graph.nodes["Customer"].filter(pl.col("defaulted").is_not_null())
    assert parts.height == customers.height
    expected = customers.select("customer_id", pl.col("defaulted").cast(pl.Int8).alias("label"))
    assert (
        parts.select("customer_id", "label")
        .sort("customer_id")
        .equals(expected.sort("customer_id"))
    )
    dated = parts.filter((pl.col("label") == 1) & pl.col("default_date").is_not_null())
    n = dated.height
    sizes = dict(dated.group_by("part").len().iter_rows())
    train, validation = round(0.6 * n), round(0.2 * n)
    assert sizes == {"train": train, "validation": validation, "test": n - train - validation}
    spans = {
        p: (f.get_column("default_date").min(), f.get_column("default_date").max())
        for (p,), f in dated.group_by("part")
    }
    assert spans["train"][1] <= spans["validation"][0]
    assert spans["validation"][1] <= spans["test"][0]
    negatives = parts.filter(pl.col("label") == 0)
    shares = {p: c / negatives.height for p, c in negatives.group_by("part").len().iter_rows()}
    assert shares["train"] == pytest.approx(0.6, abs=0.05)
    assert shares["validation"] == pytest.approx(0.2, abs=0.05)
    for part in training.PARTS:
        assert set(parts.filter(pl.col("part") == part).get_column("label")) == {0, 1}


def spark_parts(
    spark, customers: list[str], labels, dates, seed: int, rule: str = "default_date"
) -> dict[str, str]:
    """customer_id -> part of :func:`graphkit.spark.training.label_parts` on these labels."""
    rows = [
        (c, None if lab < 0 else bool(lab), d)
        for c, lab, d in zip(customers, labels.tolist(), dates, strict=True)
    ]
    tables = {
        "customers": spark.createDataFrame([(c,) for c in customers], "customer_id string"),
        "labels": spark.createDataFrame(
            rows, "customer_id string, defaulted boolean, default_date date"
        ),
    }
    found = training.label_parts(tables, seed, rule=rule).select("customer_id", "part").collect()
    return {r["customer_id"]: r["part"] for r in found}


def driver_parts(customers: list[str], labels, dates, seed: int) -> dict[str, str]:
    split = time_split(customers, labels, np.array(dates, dtype=object), seed)
    return {
        customers[i]: name
        for name, part in zip(training.PARTS, (split.train, split.val, split.test), strict=True)
        for i in part
    }


def sample_customers(sample_case) -> tuple[list[str], np.ndarray, list]:
    """The sample's customer ids, default labels and default dates."""
    graph = sample_case[0]
    customers = graph.nodes["Customer"]
    ids = customers.get_column("customer_id").to_list()
    return ids, graph.defaulted(), customers.get_column("default_date").to_list()


def test_driver_and_spark_split_alike_on_the_sample(spark, sample_case):
    ids, labels, dates = sample_customers(sample_case)
    got = spark_parts(spark, ids, labels, dates, 7)
    assert got == driver_parts(ids, labels, dates, 7)
    assert len(got) == int((labels >= 0).sum())


def random_customers(seed: int) -> tuple[np.random.Generator, list[str], np.ndarray]:
    """20-119 customers with random ids and labels (-1 unlabelled, 0 good, 1 defaulted)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    ids = [f"k{v}" for v in rng.permutation(10 * n)[:n]]
    labels = rng.choice([-1, 0, 1], n, p=[0.2, 0.5, 0.3]).astype(np.int8)
    return rng, ids, labels


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_driver_and_spark_split_alike_on_random_labels(spark, seed):
    """Ties on a date, defaults without a date and unlabelled customers included."""
    rng, ids, labels = random_customers(seed)
    days = rng.integers(0, 5, len(ids))  # few distinct dates: many ties
    dates = [
        None if lab != 1 or rng.random() < 0.15 else date(2025, 1, 1) + timedelta(days=int(d))
        for lab, d in zip(labels.tolist(), days, strict=True)
    ]
    got = spark_parts(spark, ids, labels, dates, seed)
    expected = driver_parts(ids, labels, dates, seed)
    assert got == expected
    dated = [(d, got[c]) for c, d in zip(ids, dates, strict=True) if d is not None]
    order = {name: i for i, name in enumerate(training.PARTS)}
    for d1, p1 in dated:
        for d2, p2 in dated:
            if order[p1] < order[p2]:
                assert d1 <= d2  # an earlier part never defaulted after a later one


def hash_parts(customers: list[str], labels, seed: int) -> dict[str, str]:
    """The documented ``gnn.split = "random"`` rule on the driver: per class, customers in
    (``id_hash``, id) order, ``round(0.6 n)`` train, ``round(0.2 n)`` validation, rest test."""
    u = id_hash(customers, "split", seed)
    parts = {}
    for cls in (0, 1):
        members = sorted((u[i], c) for i, c in enumerate(customers) if labels[i] == cls)
        train, val = round(0.6 * len(members)), round(0.2 * len(members))
        for rank, (_, c) in enumerate(members):
            parts[c] = "train" if rank < train else "validation" if rank < train + val else "test"
    return parts


def test_random_split_on_spark_is_stratified_like_the_embedded_one(spark, sample_case):
    ids, labels, dates = sample_customers(sample_case)
    got = spark_parts(spark, ids, labels, dates, 7, rule="random")
    assert got == hash_parts(ids, labels, 7)
    # the embedded random split's shares, class by class (not its draw)
    embedded = stratified_split(labels, 7)
    for name, part in zip(
        training.PARTS, (embedded.train, embedded.val, embedded.test), strict=True
    ):
        for cls in (0, 1):
            mine = sum(1 for i, c in enumerate(ids) if labels[i] == cls and got.get(c) == name)
            assert mine == int((labels[part] == cls).sum())
    # not the time split: defaults of every part span the whole history
    spans = {
        name: [d for c, d in zip(ids, dates, strict=True) if got.get(c) == name and d is not None]
        for name in training.PARTS
    }
    assert min(spans["test"]) < max(spans["train"])
    # the training set drawn with the rule: its sampled customers keep their random parts
    _, features, tables, frame, edges = sample_case
    found = training.training_set(tables, edges, frame, features.names, 300, 7, HOPS, rule="random")
    assert found.facts["split"] == "random"
    names = found.subgraph.customer_ids
    for name, part in zip(
        training.PARTS, (found.split.train, found.split.val, found.split.test), strict=True
    ):
        assert {got[c] for c in names.gather(part).to_list()} == {name}


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_split_on_spark_follows_its_rule_on_random_labels(spark, seed):
    _, ids, labels = random_customers(seed)
    dates = [date(2025, 1, 1) if lab == 1 else None for lab in labels.tolist()]
    assert spark_parts(spark, ids, labels, dates, seed, rule="random") == hash_parts(
        ids, labels, seed
    )


def test_capped_sample_and_its_neighbourhood_equal_the_driver_oracle(spark, sample_case):
    graph, features, tables, frame, edges = sample_case
    cap = 300
    found = training.training_set(tables, edges, frame, features.names, cap, 7, HOPS)
    sub, facts = found.subgraph, found.facts
    labels = graph.defaulted()
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    # the cap, with every defaulted customer kept (121 < cap / 2) and the rest non-defaulted
    sampled = np.flatnonzero(sub.labels >= 0)
    assert len(sampled) == cap == facts["sampled"]
    assert int((sub.labels == 1).sum()) == n_pos == facts["sampled_defaulted"]
    assert facts["q_not_defaulted"] == pytest.approx((cap - n_pos) / n_neg)
    assert found.log_weight_shift == pytest.approx(np.log(n_neg / (cap - n_pos)))
    keys = graph.keys("Customer")
    dense_of = {k: i for i, k in enumerate(keys.to_list())}
    ids = sub.customer_ids.to_list()
    seeds = [dense_of[ids[i]] for i in sampled]
    assert [int(labels[s]) for s in seeds] == sub.labels[sampled].tolist()
    # the neighbourhood: networkx over the driver's customer graph
    dist, oracle_edges = bfs_oracle(driver_pairs(graph, features.snapshot), seeds, HOPS)
    assert {dense_of[c]: int(h) for c, h in zip(ids, sub.hops, strict=True)} == dist
    got_edges = {
        (dense_of[ids[s]], dense_of[ids[d]], r)
        for r, relation in enumerate(RELATIONS)
        for s, d in sub.edges[relation].T.tolist()
    }
    assert got_edges == oracle_edges
    assert len(oracle_edges) > cap  # the sample has neighbours to find
    assert facts["subgraph_nodes"] == len(ids) < graph.n("Customer")
    # feature rows of exactly those nodes
    rows = features.matrix()[[dense_of[c] for c in ids]]
    np.testing.assert_array_equal(sub.raw, rows)
    # the split covers the sampled customers, in time order of their defaults
    split = found.split
    parts = np.concatenate([split.train, split.val, split.test])
    assert sorted(parts.tolist()) == sampled.tolist()
    dates = graph.nodes["Customer"].get_column("default_date").to_numpy()

    def default_dates(part: np.ndarray):
        chosen = [dense_of[ids[i]] for i in part if sub.labels[i] == 1]
        return [d for d in dates[chosen] if d is not None]

    assert max(default_dates(split.train)) <= min(default_dates(split.val))
    assert max(default_dates(split.val)) <= min(default_dates(split.test))
    # held out beyond the sample: every labelled validation and test customer
    assert found.heldout.height == int(
        (found.heldout.get_column("part") != "train").sum()
    ) and found.heldout.height > len(split.val) + len(split.test)


@pytest.mark.timeout(900)
@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hops=st.integers(1, 3),
)
def test_neighbourhood_equals_bfs_on_random_graphs(spark, seed, hops):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    m = int(rng.integers(0, 3 * n))
    pairs = sorted(
        {
            (int(s), int(d), int(r))
            for s, d, r in zip(
                rng.integers(0, n, m), rng.integers(0, n, m), rng.integers(0, 7, m), strict=True
            )
            if s != d
        }
    )
    seeds = sorted({int(s) for s in rng.integers(0, n, int(rng.integers(1, 5)))})
    name = [f"c{i:03d}" for i in range(n)]
    edge_frame = spark.createDataFrame(
        [(name[s], name[d], r) for s, d, r in pairs],
        "src string, dst string, rel int",
    )
    seed_frame = spark.createDataFrame([(name[s],) for s in seeds], "customer_id string")
    nodes, sub_edges = training.neighbourhood(edge_frame, seed_frame, hops)
    got_nodes = {int(r["customer_id"][1:]): r["hop"] for r in nodes.collect()}
    got_edges = {(int(r["src"][1:]), int(r["dst"][1:]), r["rel"]) for r in sub_edges.collect()}
    dist, expected_edges = bfs_oracle(pairs, seeds, hops)
    assert got_nodes == dist
    assert got_edges == expected_edges


@pytest.mark.timeout(1200)
def test_model_trained_on_the_sample_scores_its_customers_as_on_the_whole_graph(
    spark, sample_case, tmp_path
):
    graph, features, tables, frame, edges = sample_case
    # the tree prior on (a low threshold), so its folds are re-indexed and checked too
    config = apply_overrides(Config(), {"gnn.epochs": 3, "gnn.tree_prior_min_positives": 20})
    found = training.training_set(
        tables, edges, frame, features.names, config.gnn.spark_train_customers, 7, HOPS
    )
    sub = found.subgraph
    assert int((sub.labels >= 0).sum()) == int((graph.defaulted() >= 0).sum())  # under the cap
    assert found.log_weight_shift == 0.0
    standardiser = training.standardiser_spark(frame, features.names)
    driver = type(standardiser).fit(features.matrix())
    np.testing.assert_allclose(standardiser.mean, driver.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(standardiser.std, driver.std, rtol=1e-5)
    keys = graph.keys("Customer")
    result = fit_subgraph(
        sub, found.split, standardiser, features, config, tmp_path, customer_keys=keys
    )
    assert result.trained and result.scores is None
    assert result.model["tree_prior"].get("file")
    assert result.evaluation["split"]["train"] == len(found.split.train)
    assert result.evaluation["split"]["test_positives"] > 0
    saved = load_model(tmp_path / MODEL_FILE)
    dense_of = {k: i for i, k in enumerate(keys.to_list())}
    dense = np.array([dense_of[c] for c in sub.customer_ids.to_list()])
    train_dense = np.sort(dense[found.split.train])
    assert np.array_equal(np.flatnonzero(saved["prior"].fold_of >= 0), train_dense)
    # the sampled customers' logits on the subgraph = their logits on the whole graph
    whole = network_explainer(graph, features, tmp_path)
    expected = predict_logits(whole.model, whole.data)[dense]
    data = subgraph_data(sub, saved["standardiser"])
    add_prior_column(data, saved["prior"].column(data["customer"].x.numpy(), dense))
    got = predict_logits(saved["model"], data)
    sampled = sub.labels >= 0
    np.testing.assert_allclose(got[sampled], expected[sampled], rtol=1e-5, atol=1e-5)
    far = sub.hops == HOPS  # nodes at the rim lack their own in-edges: not their full logits
    assert far.any()


def test_the_sample_cap_and_the_split_rule_are_validated():
    with pytest.raises(ConfigError, match="spark_train_customers"):
        apply_overrides(Config(), {"gnn.spark_train_customers": 10})
    with pytest.raises(ConfigError, match="split must be one of random, default_date"):
        apply_overrides(Config(), {"gnn.split": "by_month"})
