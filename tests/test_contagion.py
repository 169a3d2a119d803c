"""Label-free contagion: DebtRank against a hand-computed case, PPR against networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from graphkit.analytics.contagion import (
    UnknownCustomersError,
    contagion_frame,
    customer_multiplex,
    debtrank,
    guarantee_impact,
    personalized_pagerank,
    simulate_defaults,
)
from graphkit.config import Config
from graphkit.graph import RiskGraph
from loaders.frames import make_tables


def _chain_tables() -> dict:
    """A defaults; B guarantees A (50), C guarantees B (80), D guarantees A (30) and C (60).

    Capacities (registered capital): A 200, B 100, C 100, D 120.
    """
    return make_tables(
        customers={
            "customer_id": ["A", "B", "C", "D"],
            "kind": ["enterprise"] * 4,
            "registered_capital": [200.0, 100.0, 100.0, 120.0],
        },
        guarantees={
            "guarantor_id": ["B", "C", "D", "D"],
            "borrower_id": ["A", "B", "A", "C"],
            "amount": [50.0, 80.0, 30.0, 60.0],
        },
    )


def _chain_graph() -> RiskGraph:
    return RiskGraph.from_tables(_chain_tables())


def test_debtrank_matches_hand_computation():
    graph = _chain_graph()
    impact, capacity = guarantee_impact(graph, loss_given_default=1.0)
    # Impacts from the definition W[j, i] = exposure(i -> j) / capacity(i):
    # W[A,B] = 50/100, W[B,C] = 80/100, W[A,D] = 30/120, W[C,D] = 60/120.
    expected_w = np.zeros((4, 4))
    expected_w[0, 1], expected_w[1, 2], expected_w[0, 3], expected_w[2, 3] = 0.5, 0.8, 0.25, 0.5
    np.testing.assert_allclose(impact.toarray(), expected_w)
    result = debtrank(impact, np.array([0]), rounds=10, value=capacity)
    # Round 1: A (h=1) distressed -> h_B = 0.5, h_D = 0.25; A inactive; B, D distressed.
    # Round 2: B passes 0.8 * 0.5 -> h_C = 0.4; D guarantees nobody who depends on it.
    # Round 3: C passes 0.5 * 0.4 -> h_D = 0.25 + 0.2 = 0.45; D is already inactive: no echo.
    np.testing.assert_allclose(result.h, [1.0, 0.5, 0.4, 0.45])
    # R = sum v_i h_i(T) - sum v_i h_i(1), v = capacity share (200, 100, 100, 120) / 520.
    assert result.debtrank == pytest.approx((0.5 * 100 + 0.4 * 100 + 0.45 * 120) / 520)
    one_round = debtrank(impact, np.array([0]), rounds=1, value=capacity)
    np.testing.assert_allclose(one_round.h, [1.0, 0.5, 0.0, 0.25])


def test_debtrank_caps_stress_and_loss_given_default_scales():
    graph = _chain_graph()
    impact, _ = guarantee_impact(graph, loss_given_default=0.5)
    result = debtrank(impact, np.array([0]), rounds=10)
    # Halved exposures: h_B = 0.25, h_C = 0.4 * 0.25 = 0.1, h_D = 0.125 + 0.25 * 0.1 = 0.15.
    np.testing.assert_allclose(result.h, [1.0, 0.25, 0.1, 0.15])
    heavy = sp.csr_array(np.array([[0, 3.0], [0, 0]]))
    assert debtrank(heavy, np.array([0])).h[1] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_personalized_pagerank_matches_networkx(seed):
    rng = np.random.default_rng(seed)
    n = 30
    g = nx.gnp_random_graph(n, 0.08, seed=seed)
    for u, v in g.edges:
        g[u][v]["weight"] = float(rng.uniform(0.5, 2.0))
    g.add_nodes_from(range(n))
    adjacency = sp.csr_array(nx.to_scipy_sparse_array(g, nodelist=range(n), weight="weight"))
    seeds = rng.choice(n, size=3, replace=False)
    ours = personalized_pagerank(adjacency, seeds, damping=0.85)
    theirs = nx.pagerank(
        g,
        alpha=0.85,
        personalization={i: (1.0 if i in set(seeds) else 0.0) for i in range(n)},
        weight="weight",
        tol=1e-14,
        max_iter=1000,
    )
    np.testing.assert_allclose(ours, [theirs[i] for i in range(n)], atol=1e-9)


def test_scores_in_range_and_seed_is_one():
    graph = _chain_graph()
    frame, _ = contagion_frame(graph, np.array([0]), Config())
    scores = frame.get_column("contagion_score").to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[0] == 1.0
    # B (direct guarantor, half its capacity) is hit harder than C (two hops).
    assert scores[1] > scores[2] > 0


def test_multiplex_ties():
    tables = make_tables(
        customers={"customer_id": list("abcde"), "kind": ["person"] * 5},
        guarantees={"guarantor_id": ["a"], "borrower_id": ["b"], "amount": [1.0]},
        shareholdings={"holder_id": ["b", "c"], "company_id": ["c", "d"], "share": [0.5, 0.1]},
        device_links={"customer_id": ["d", "e"], "device_id": ["x", "x"]},
        accounts={"account_id": ["A1", "A5"], "owner_id": ["a", "e"]},
        transfers={
            "transfer_id": ["t"],
            "src_account": ["A5"],
            "dst_account": ["A1"],
            "amount": [9.0],
            "ts": ["2024-01-01T00:00:00"],
        },
    )
    graph = RiskGraph.from_tables(tables)
    total, ties = customer_multiplex(graph, Config())
    pairs = {
        name: {tuple(sorted(p)) for p in zip(*m.nonzero(), strict=True)} for name, m in ties.items()
    }
    assert pairs == {
        "guarantee": {(0, 1)},
        "shareholding": {(1, 2)},  # c -> d holds 0.1 < threshold 0.2
        "device": {(3, 4)},
        "transfer": {(0, 4)},
    }
    assert total[3, 4] == Config().clusters.weights["device"]
    assert (total != total.T).nnz == 0


def test_simulate_names_hits_paths_and_rejects_unknown_ids():
    graph = _chain_graph()
    result = simulate_defaults(graph, ["A"], Config())
    hits = result.hits
    assert hits.get_column("customer_id").to_list()[0] == "B"
    row = hits.filter(hits["customer_id"] == "C").row(0, named=True)
    assert row["stress"] == pytest.approx(0.4)
    assert row["loss_amount"] == pytest.approx(40.0)
    assert row["path"] in ("A -guarantee-> B -guarantee-> C", "A -guarantee-> D -guarantee-> C")
    assert row["hops"] == 2
    assert result.debtrank == pytest.approx(144 / 520)
    with pytest.raises(UnknownCustomersError) as err:
        simulate_defaults(graph, ["A", "nobody", "ghost"], Config())
    assert err.value.unknown == ["nobody", "ghost"]


def test_simulate_command_writes_hits_and_rejects_unknown_ids(tmp_path):
    import polars as pl
    from typer.testing import CliRunner

    from cli import app

    tables = _chain_tables()
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for name in ("customers", "guarantees"):
        tables[name].write_parquet(input_dir / f"{name}.parquet")
    out = tmp_path / "simulation.parquet"
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", str(input_dir), "--default", "A", "--out", str(out)])
    assert result.exit_code == 0, result.output
    hits = pl.read_parquet(out)
    assert hits.get_column("customer_id").to_list()[0] == "B"
    assert hits.columns[:4] == ["customer_id", "stress", "loss_amount", "pagerank"]
    bad = runner.invoke(app, ["simulate", str(input_dir), "-d", "A", "-d", "ZZ", "-d", "YY"])
    assert bad.exit_code == 2
    assert "ZZ, YY" in bad.output


def test_contagion_score_of_a_lone_guarantor():
    """One guarantee a -> b, b defaults: h_a = 100 / 1000; ppr_a / ppr_b = damping."""
    graph = RiskGraph.from_tables(
        make_tables(
            customers={
                "customer_id": ["a", "b"],
                "kind": ["enterprise"] * 2,
                "registered_capital": [1000.0, 500.0],
            },
            guarantees={"guarantor_id": ["a"], "borrower_id": ["b"], "amount": [100.0]},
        )
    )
    frame, _ = contagion_frame(graph, np.array([1]), Config())
    row = frame.row(0, named=True)
    d = Config().contagion.pagerank_damping
    assert row["debtrank"] == pytest.approx(0.1)
    assert row["pagerank"] == pytest.approx(d / (1 + d))
    assert row["contagion_score"] == pytest.approx(1 - (1 - 0.1) * (1 - d))
    assert row["loss_amount"] == pytest.approx(100.0)
