"""Guarantee circles against networkx (SCCs, bounded simple cycles, ancestors) and planted truth."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.circles import (
    SUMMARY_COLUMNS,
    bounded_simple_cycles,
    circle_membership,
    guarantee_circles,
)
from graphkit.graph import RiskGraph
from loaders.frames import make_tables
from tests.analytics_fixtures import as_sets, planted_network


def _graph(n: int, edges: list[tuple[int, int, float]], defaulted: list[bool]) -> RiskGraph:
    ids = [f"c{i:02d}" for i in range(n)]
    # Customer ids are shuffled against the dense ids so "smallest customer_id" is not "id 0".
    names = [ids[(7 * i + 3) % n] for i in range(n)] if n % 7 else ids
    return RiskGraph.from_tables(
        make_tables(
            customers={"customer_id": names, "kind": ["enterprise"] * n},
            guarantees={
                "guarantor_id": [names[a] for a, _, _ in edges],
                "borrower_id": [names[b] for _, b, _ in edges],
                "amount": [w for _, _, w in edges],
            },
            labels={"customer_id": names, "defaulted": defaulted},
        )
    )


def _rotate(cycle: list[str]) -> tuple[str, ...]:
    i = cycle.index(min(cycle))
    return tuple(cycle[i:] + cycle[:i])


@st.composite
def guarantee_graphs(draw):
    n = draw(st.integers(1, 11))
    edge = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(1, 9))
    raw = draw(st.lists(edge, max_size=draw(st.sampled_from([n, 2 * n, n * n]))))
    # Self-guarantees are input errors; parallel guarantees are kept (they add to the amount).
    edges = [(a, b, float(w)) for a, b, w in raw if a != b]
    defaulted = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    length = draw(st.integers(2, 7))
    cap = draw(st.sampled_from([0, 1, 3, 10, 10_000]))
    return n, edges, defaulted, length, cap


@settings(max_examples=200)
@given(guarantee_graphs())
def test_circles_match_networkx(case):
    n, edges, defaulted, length, cap = case
    graph = _graph(n, edges, defaulted)
    names = graph.keys("Customer").to_list()
    result = guarantee_circles(graph, max_cycle_length=length, max_cycles_listed=cap)

    oracle = nx.DiGraph()
    oracle.add_nodes_from(names)
    oracle.add_edges_from((names[a], names[b]) for a, b, _ in edges)
    components = {frozenset(c) for c in nx.strongly_connected_components(oracle) if len(c) >= 2}
    assert as_sets(result.membership, "circle_id") == components
    assert set(result.summary.get_column("circle_id")) == set(
        result.membership.get_column("circle_id")
    )

    all_cycles = {_rotate(c) for c in nx.simple_cycles(oracle, length_bound=length)}
    by_name = dict(zip(names, defaulted, strict=True))
    for row in result.summary.iter_rows(named=True):
        members = set(row["members"])
        assert row["size"] == len(members)
        listed = [tuple(c) for c in row["cycles"]]
        assert len(listed) == len(set(listed)) == row["cycles_listed"]
        expected = {c for c in all_cycles if c[0] in members}
        if len(expected) <= cap:
            assert set(listed) == expected
            assert not row["cycles_capped"]
        else:
            assert row["cycles_capped"]
            assert row["cycles_listed"] == cap
            assert set(listed) <= expected
            # The shortest cycles are the ones kept.
            if cap:
                dropped = expected - set(listed)
                assert max(map(len, listed)) <= min(map(len, dropped))
        internal = sum(w for a, b, w in edges if names[a] in members and names[b] in members)
        assert row["internal_amount"] == pytest.approx(internal)
        assert sorted(row["defaulted_ids"]) == sorted(m for m in members if by_name[m])
        assert row["defaulted_members"] == len(row["defaulted_ids"])
        ancestors = set().union(*(nx.ancestors(oracle, m) for m in members))
        assert row["reach"] == len(ancestors - members)
    assert circle_membership(graph).equals(result.membership)


@settings(max_examples=200)
@given(
    st.integers(1, 9).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=n * n),
            st.integers(2, 8),
        )
    )
)
def test_bounded_cycles_whole_graph_match_networkx(case):
    """The kernel directly, on one group: every cycle once, rotated to its smallest vertex."""
    n, pairs, length = case
    pairs = {(a, b) for a, b in pairs if a != b}
    oracle = nx.DiGraph()
    oracle.add_nodes_from(range(n))
    oracle.add_edges_from(pairs)
    src = np.array([a for a, _ in sorted(pairs)], dtype=np.int64)
    dst = np.array([b for _, b in sorted(pairs)], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
    cycles, counts = bounded_simple_cycles(indptr, dst, np.zeros(n, dtype=np.int64), length)
    found = [tuple(row) for rows in cycles.values() for row in rows.tolist()]
    expected = {_rotate(c) for c in nx.simple_cycles(oracle, length_bound=length)}
    assert len(found) == len(set(found)) == int(counts.sum())
    assert set(found) == expected


def test_cap_on_complete_graph_keeps_shortest_and_flags():
    n = 6
    edges = [(a, b, 1.0) for a, b in itertools.permutations(range(n), 2)]
    graph = _graph(n, edges, [False] * n)
    summary = guarantee_circles(graph, max_cycle_length=4, max_cycles_listed=20).summary
    row = summary.row(0, named=True)
    assert row["size"] == n and row["cycles_capped"] and row["cycles_listed"] == 20
    # K6 has 15 two-cycles and 40 three-cycles: 15 of length 2, then 5 of length 3.
    assert sorted(map(len, row["cycles"])) == [2] * 15 + [3] * 5
    uncapped = guarantee_circles(graph, max_cycle_length=4, max_cycles_listed=1000).summary
    # 15 + 40 + 90 elementary cycles of length <= 4 in K6.
    assert uncapped.row(0, named=True)["cycles_listed"] == 145
    assert not uncapped.row(0, named=True)["cycles_capped"]


def test_small_frontier_budget_splits_without_changing_the_answer():
    rng = np.random.default_rng(5)
    n = 40
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, (160, 2)) if a != b}
    src = np.array([a for a, _ in sorted(pairs)])
    dst = np.array([b for _, b in sorted(pairs)])
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    group = np.zeros(n, dtype=np.int64)
    whole, _ = bounded_simple_cycles(indptr, dst, group, 6)
    split, _ = bounded_simple_cycles(indptr, dst, group, 6, budget=7)

    def as_set(found):
        return {tuple(r) for rows in found.values() for r in rows.tolist()}

    assert as_set(whole) == as_set(split)
    assert len(as_set(whole)) > 50


def test_ids_and_order_are_deterministic():
    edges = [(0, 1, 5.0), (1, 0, 5.0), (2, 3, 1.0), (3, 2, 1.0), (4, 2, 2.0)]
    graph = _graph(5, edges, [False] * 5)
    result = guarantee_circles(graph)
    names = graph.keys("Customer").to_list()
    firsts = (
        result.membership.group_by("circle_id").agg(pl.col("customer_id").min()).sort("circle_id")
    )
    assert firsts.get_column("customer_id").to_list() == sorted(
        firsts.get_column("customer_id").to_list()
    )
    assert result.summary.get_column("circle_id").to_list() == [1, 2]
    assert dict(result.summary.schema) == SUMMARY_COLUMNS
    reach = dict(
        zip(
            result.summary.get_column("members").list.first(),
            result.summary.get_column("reach"),
            strict=True,
        )
    )
    assert reach[min(names[2], names[3])] == 1
    assert reach[min(names[0], names[1])] == 0


def test_no_guarantees_gives_empty_typed_frames():
    graph = _graph(3, [], [False] * 3)
    result = guarantee_circles(graph)
    assert result.membership.height == 0 and result.summary.height == 0
    assert result.summary.schema["cycles"] == pl.List(pl.List(pl.String))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_circles_found_exactly(seed):
    planted = planted_network(seed)
    result = guarantee_circles(RiskGraph.from_tables(planted.tables))
    assert as_sets(result.membership, "circle_id") == as_sets(planted.circles, "circle_id")


@pytest.mark.parametrize(("customers", "seed"), [(3000, 11), (20_000, 5)])
def test_generated_circles_found_exactly(customers, seed):
    synthetic = pytest.importorskip("loaders.synthetic")
    if not hasattr(synthetic, "generate_tables"):
        pytest.skip("loaders.synthetic.generate_tables has not landed yet")
    data = synthetic.generate_tables(customers=customers, seed=seed)
    result = guarantee_circles(RiskGraph.from_tables(data.tables))
    truth = data.truth["circles"]
    assert truth.height > 0
    assert as_sets(result.membership, "circle_id") == as_sets(truth, "circle_id")
