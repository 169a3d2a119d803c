"""Related-enterprise clusters: layer ties against a brute-force oracle, planted groups, LFR
benchmark graphs, determinism across processes, and cluster risk computed by hand."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from graphkit.analytics.cluster_risk import cluster_risk
from graphkit.analytics.clusters import (
    LAYERS,
    cluster_graph,
    layer_ties,
    leiden,
    numbered_clusters,
    related_clusters,
)
from graphkit.config import Config, apply_overrides
from graphkit.graph import RiskGraph
from loaders.frames import make_tables
from tests.analytics_fixtures import planted_network, write_input

ROOT = Path(__file__).resolve().parents[1]


@st.composite
def multiplex_inputs(draw):
    n = draw(st.integers(2, 9))
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    guarantees = draw(st.lists(pair, max_size=2 * n))
    shares = draw(st.dictionaries(pair, st.sampled_from([0.05, 0.2, 0.5, 1.0]), max_size=2 * n))
    links = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, 4)), max_size=3 * n))
    # Accounts 0..n-1 belong to customers, accounts n.. to a merchant.
    account = st.integers(0, n + 1)
    transfers = draw(
        st.lists(st.tuples(account, account, st.sampled_from([1.0, 2.0, 5.0])), max_size=3 * n)
    )
    threshold = draw(st.sampled_from([0.2, 0.5]))
    net_threshold = draw(st.sampled_from([0.0, 1.5]))
    hub = draw(st.integers(2, 4))
    return n, guarantees, shares, links, transfers, threshold, net_threshold, hub


def _multiplex_tables(n, guarantees, shares, links, transfers):
    ids = [f"c{i}" for i in range(n)]
    accounts = [f"a{i}" for i in range(n + 2)]
    return make_tables(
        customers={"customer_id": ids, "kind": ["enterprise"] * n},
        merchants={"merchant_id": ["m0"], "sector": ["retail"]},
        sectors={"sector": ["retail"], "banned": [False]},
        accounts={"account_id": accounts, "owner_id": [*ids, "m0", "m0"]},
        guarantees={
            "guarantor_id": [ids[a] for a, _ in guarantees],
            "borrower_id": [ids[b] for _, b in guarantees],
            "amount": [1.0] * len(guarantees),
        },
        shareholdings={
            "holder_id": [ids[a] for a, _ in shares],
            "company_id": [ids[b] for _, b in shares],
            "share": list(shares.values()),
        },
        device_links={
            "customer_id": [ids[c] for c, _ in sorted(links)],
            "device_id": [f"d{d}" for _, d in sorted(links)],
        },
        transfers={
            "transfer_id": [f"t{i}" for i in range(len(transfers))],
            "src_account": [accounts[a] for a, _, _ in transfers],
            "dst_account": [accounts[b] for _, b, _ in transfers],
            "amount": [x for _, _, x in transfers],
            "ts": ["2025-01-01T00:00:00"] * len(transfers),
        },
    )


@settings(max_examples=200)
@given(multiplex_inputs())
def test_layer_ties_and_weights_match_brute_force(case):
    n, guarantees, shares, links, transfers, threshold, net_threshold, hub = case
    graph = RiskGraph.from_tables(_multiplex_tables(n, guarantees, shares, links, transfers))
    ties = layer_ties(graph, threshold, net_threshold, hub)

    expected: dict[str, set[tuple[int, int]]] = {name: set() for name in LAYERS}
    expected["guarantee"] = {tuple(sorted(p)) for p in guarantees}
    expected["shareholding"] = {tuple(sorted(p)) for p, s in shares.items() if s >= threshold}
    users = defaultdict(set)
    for c, d in links:
        users[d].add(c)
    for members in users.values():
        if len(members) <= hub:
            expected["device"] |= {(a, b) for a in members for b in members if a < b}
    net = defaultdict(float)
    for a, b, amount in transfers:
        if a < n and b < n and a != b:
            net[(min(a, b), max(a, b))] += amount if a < b else -amount
    expected["transfer"] = {p for p, v in net.items() if abs(v) > net_threshold}
    for name in LAYERS:
        got = set(ties[name].select("a", "b").iter_rows())
        assert got == expected[name], name

    weights = {"guarantee": 1.0, "shareholding": 2.0, "device": 4.0, "transfer": 8.0}
    cfg = apply_overrides(
        Config(),
        {
            "clusters.shareholding_threshold": threshold,
            "clusters.transfer_threshold": net_threshold,
            "rings.min_customers_per_device": 2,
            "rings.max_customers_per_device": hub,
        },
    )
    built = cluster_graph(graph, cfg)
    pair_weight = {
        (int(built.nodes[a]), int(built.nodes[b])): w
        for (a, b), w in zip(built.pairs.tolist(), built.weights(weights), strict=True)
    }
    brute = defaultdict(float)
    for name in LAYERS:
        for p in expected[name]:
            brute[p] += weights[name]
    assert pair_weight == dict(brute)


def _labels_over(truth: pl.DataFrame, found: pl.DataFrame, group: str) -> tuple[list, list]:
    joined = truth.join(found, on="customer_id", how="left").with_row_index()
    # A customer outside every cluster is its own singleton.
    joined = joined.with_columns(
        pl.col("cluster_id").fill_null(-pl.col("index").cast(pl.Int64) - 1)
    )
    return joined.get_column(group).to_list(), joined.get_column("cluster_id").to_list()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_groups_recovered(seed):
    planted = planted_network(seed)
    found = related_clusters(RiskGraph.from_tables(planted.tables)).membership
    truth, labels = _labels_over(planted.groups, found, "group_id")
    assert adjusted_rand_score(truth, labels) >= 0.9


@pytest.mark.parametrize(("customers", "seed"), [(3000, 11), (10_000, 12)])
def test_generated_groups_recovered(customers, seed):
    synthetic = pytest.importorskip("loaders.synthetic")
    if not hasattr(synthetic, "generate_tables"):
        pytest.skip("loaders.synthetic.generate_tables has not landed yet")
    data = synthetic.generate_tables(customers=customers, seed=seed)
    found = related_clusters(RiskGraph.from_tables(data.tables)).membership
    truth, labels = _labels_over(data.truth["groups"], found, "group_id")
    assert data.truth["groups"].get_column("group_id").n_unique() >= 15
    assert adjusted_rand_score(truth, labels) >= 0.9


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_lfr_benchmark_nmi(seed):
    n = 1000
    lfr = nx.LFR_benchmark_graph(
        n, 3, 1.5, 0.3, average_degree=15, max_degree=50, min_community=20, seed=seed
    )
    ids = [f"c{i:04d}" for i in range(n)]
    edges = list(lfr.edges())
    # Half the LFR edges become guarantees, half shareholdings: one multiplex graph.
    half = len(edges) // 2
    tables = make_tables(
        customers={"customer_id": ids, "kind": ["enterprise"] * n},
        guarantees={
            "guarantor_id": [ids[a] for a, _ in edges[:half]],
            "borrower_id": [ids[b] for _, b in edges[:half]],
            "amount": [1.0] * half,
        },
        shareholdings={
            "holder_id": [ids[a] for a, _ in edges[half:]],
            "company_id": [ids[b] for _, b in edges[half:]],
            "share": [0.5] * (len(edges) - half),
        },
    )
    found = related_clusters(RiskGraph.from_tables(tables)).membership
    community = {v: min(lfr.nodes[v]["community"]) for v in lfr}
    truth = pl.DataFrame({"customer_id": ids, "community": [community[i] for i in range(n)]})
    planted, labels = _labels_over(truth, found, "community")
    assert normalized_mutual_info_score(planted, labels) >= 0.9


def test_leiden_restores_random_state_and_repeats():
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 60, (200, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weights = np.ones(len(pairs))
    random.seed(123)
    before = random.random()
    random.seed(123)
    first, q1 = leiden(60, pairs, weights, 1.0, 7)
    assert random.random() == before
    second, q2 = leiden(60, pairs, weights, 1.0, 7)
    assert np.array_equal(first, second) and q1 == q2
    assert q1 > 0.2


def test_cluster_ids_by_size_then_smallest_member():
    ids = pl.Series(["b", "a", "c", "d", "e", "f", "g"])
    membership = np.array([0, 0, 1, 1, 1, 2, 3])
    frame = numbered_clusters(ids, membership, 2)
    assert frame.to_dicts() == [
        {"customer_id": "c", "cluster_id": 1, "cluster_size": 3},
        {"customer_id": "d", "cluster_id": 1, "cluster_size": 3},
        {"customer_id": "e", "cluster_id": 1, "cluster_size": 3},
        {"customer_id": "a", "cluster_id": 2, "cluster_size": 2},
        {"customer_id": "b", "cluster_id": 2, "cluster_size": 2},
    ]


_RUN = """
import sys
from graphkit.analytics.clusters import related_clusters
from graphkit.pipeline import load_graph
graph, _ = load_graph(sys.argv[1])
related_clusters(graph).membership.write_parquet(sys.argv[2])
"""


def test_same_input_same_clusters_in_fresh_processes(tmp_path):
    planted = planted_network(4)
    source = write_input(planted.tables, tmp_path / "in")
    outputs = []
    for run in range(2):
        out = tmp_path / f"clusters{run}.parquet"
        subprocess.run(
            [sys.executable, "-c", _RUN, str(source), str(out)],
            check=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": str(run + 1), "PATH": "/usr/bin:/bin"},
        )
        outputs.append(pl.read_parquet(out))
    assert outputs[0].height > 100
    assert outputs[0].equals(outputs[1])
    in_process = related_clusters(RiskGraph.from_tables(planted.tables)).membership
    assert in_process.equals(outputs[0])


def _risk_tables():
    customers = ["a", "b", "c", "d", "e"]
    return make_tables(
        customers={"customer_id": customers, "kind": ["enterprise"] * 5},
        credit_lines={
            "line_id": ["La", "Lb", "Lb2", "Lc", "Ld"],
            "customer_id": ["a", "b", "b", "c", "d"],
            "limit": [100.0, 200.0, 50.0, 300.0, 400.0],
        },
        accounts={"account_id": ["Aa", "Ab", "Ac", "Ad"], "owner_id": ["a", "b", "c", "d"]},
        drawdowns={
            "drawdown_id": ["w1", "w2", "w3", "w4"],
            "line_id": ["La", "La", "Lb", "Lc"],
            "account_id": ["Aa", "Aa", "Ab", "Ac"],
            "amount": [30.0, 20.0, 80.0, 10.0],
            "ts": ["2025-01-01T00:00:00"] * 4,
        },
        repayments={
            "line_id": ["La", "Lb", "Lc"],
            "due_date": ["2025-02-01"] * 3,
            "paid_at": ["2025-02-01T00:00:00", None, "2025-02-01T00:00:00"],
            "amount": [60.0, 40.0, 4.0],
        },
        guarantees={
            "guarantor_id": ["a", "b", "d"],
            "borrower_id": ["b", "a", "c"],
            "amount": [1.0, 1.0, 1.0],
        },
        labels={"customer_id": ["a", "b", "d"], "defaulted": [True, False, False]},
    )


def test_cluster_risk_by_hand():
    graph = RiskGraph.from_tables(_risk_tables())
    clusters = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "cluster_id": [1, 1, 2, 2]})
    circles = pl.DataFrame({"customer_id": ["a", "b"], "circle_id": [1, 1]})
    flows = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "drawn_amount": [50.0, 80.0, 10.0],
            "banned_amount": [10.0, 16.0, 0.0],
            "banned_share": [0.2, 0.2, 0.0],
        }
    )
    scores = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "risk_score": [0.9, 0.5, 0.1, 0.3]})
    table = cluster_risk(graph, clusters, circles, Config(), flows, scores)
    one, two = table.to_dicts()
    assert one["size"] == 2 and one["total_limit"] == 350.0
    # Line La: 50 drawn, 60 repaid -> 0; Lb: 80 drawn, nothing paid -> 80; Lb2 untouched.
    assert one["drawn_amount"] == 130.0 and one["drawn_exposure"] == 80.0
    assert (one["labelled"], one["defaulted"], one["default_rate"]) == (2, 1, 0.5)
    assert (one["circles_inside"], one["circles_touching"], one["circle_member_share"]) == (
        1,
        1,
        1.0,
    )
    assert one["banned_share"] == pytest.approx(26.0 / 130.0)
    assert one["mean_score"] == pytest.approx(0.7)
    size = np.log10(2) / 3
    expected = (0.35 * 0.5 + 0.25 * (26 / 130) + 0.15 * 1.0 + 0.15 * 0.7 + 0.10 * size) / 1.0
    assert one["risk_score"] == pytest.approx(expected)
    assert one["tier"] == "yellow"  # 0.3 <= score < 0.6 with the default alert thresholds
    # Cluster 2: c unlabelled, d labelled healthy; no circles; d drew nothing traced.
    assert two["total_limit"] == 700.0 and two["drawn_exposure"] == pytest.approx(6.0)
    assert two["default_rate"] == 0.0 and two["circles_touching"] == 0
    assert two["banned_share"] == 0.0
    without = cluster_risk(graph, clusters, circles, Config()).to_dicts()[0]
    assert without["banned_share"] is None and without["mean_score"] is None
    renormalised = (0.35 * 0.5 + 0.15 * 1.0 + 0.10 * size) / (0.35 + 0.15 + 0.10)
    assert without["risk_score"] == pytest.approx(renormalised)


def test_cluster_risk_stage_alone_computes_its_inputs(tmp_path):
    from graphkit.pipeline import run_pipeline

    source = write_input(_risk_tables(), tmp_path / "in")
    summary = run_pipeline(source, tmp_path / "run", Config(), stages=["cluster_risk"])
    parquet = pl.read_parquet(summary.run_dir / "cluster_risk.parquet")
    csv = pl.read_csv(summary.run_dir / "cluster_risk.csv")
    # a and b guarantee each other (a circle), d guarantees c: two clusters.
    assert parquet.height == 2 and csv.height == 2
    assert parquet.get_column("circles_inside").to_list() == [1, 0]
    assert json.loads((summary.run_dir / "manifest.json").read_text())["stages"] == ["cluster_risk"]
