"""Device rings against an independent oracle (networkx bipartite projection) and planted truth."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from networkx.algorithms import bipartite

from graphkit.analytics.rings import device_rings
from graphkit.graph import RiskGraph
from loaders.frames import make_tables
from tests.analytics_fixtures import as_sets, planted_network


def _tables(n: int, links: set[tuple[int, int]], draws: list[tuple[int, int | None]]):
    """``n`` customers, one credit line and account each; ``draws`` = (customer, device|None)."""
    customers = [f"c{i:02d}" for i in range(n)]
    return make_tables(
        customers={"customer_id": customers, "kind": ["person"] * n},
        credit_lines={
            "line_id": [f"L{i:02d}" for i in range(n)],
            "customer_id": customers,
            "limit": [1000.0] * n,
        },
        accounts={"account_id": [f"A{i:02d}" for i in range(n)], "owner_id": customers},
        device_links={
            "customer_id": [customers[c] for c, _ in sorted(links)],
            "device_id": [f"d{d}" for _, d in sorted(links)],
        },
        drawdowns={
            "drawdown_id": [f"W{i:03d}" for i in range(len(draws))],
            "line_id": [f"L{c:02d}" for c, _ in draws],
            "account_id": [f"A{c:02d}" for c, _ in draws],
            "amount": [10.0] * len(draws),
            "ts": ["2025-01-01T00:00:00"] * len(draws),
            "device_id": [None if d is None else f"d{d}" for _, d in draws],
        },
    )


def _oracle(n, links, draws, k, m, include_drawdowns=True):
    """Rings by the documented rule, computed with networkx: project, then components."""
    uses = set(links) | (
        {(c, d) for c, d in draws if d is not None} if include_drawdowns else set()
    )
    customers_of: dict[int, set[int]] = {}
    for c, d in uses:
        customers_of.setdefault(d, set()).add(c)
    shared = {d for d, cs in customers_of.items() if k <= len(cs) <= m}
    hubs = {f"d{d}": len(cs) for d, cs in customers_of.items() if len(cs) > m}
    b = nx.Graph()
    b.add_nodes_from((f"c{i:02d}" for i in range(n)), bipartite=0)
    b.add_nodes_from((f"d{d}" for d in shared), bipartite=1)
    b.add_edges_from((f"c{c:02d}", f"d{d}") for c, d in uses if d in shared)
    projected = bipartite.projected_graph(b, [f"c{i:02d}" for i in range(n)])
    in_ring = {f"c{c:02d}" for c, d in uses if d in shared}
    rings = {frozenset(comp) for comp in nx.connected_components(projected) if comp & in_ring}
    return rings, hubs


@settings(max_examples=200)
@given(
    st.integers(1, 14).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), max_size=3 * n),
            st.lists(
                st.tuples(st.integers(0, n - 1), st.none() | st.integers(0, 9)), max_size=2 * n
            ),
            st.integers(2, 4),
            st.integers(0, 4),
        )
    )
)
def test_rings_match_projection_components(case):
    n, links, draws, k, extra = case
    m = k + extra
    graph = RiskGraph.from_tables(_tables(n, links, draws))
    result = device_rings(graph, min_customers_per_device=k, max_customers_per_device=m)
    rings, hubs = _oracle(n, links, draws, k, m)
    assert as_sets(result.membership, "ring_id") == rings
    assert dict(result.hubs.iter_rows()) == hubs
    sizes = result.membership.group_by("ring_id").len()
    assert all(size >= k for size in sizes.get_column("len"))
    ids = sizes.sort("len", descending=True).get_column("ring_id").to_list()
    assert sorted(ids) == list(range(1, len(ids) + 1))
    assert result.membership.select("ring_size").to_series().to_list() == [
        len(next(r for r in rings if c in r)) for c in result.membership.get_column("customer_id")
    ]


def test_drawdown_devices_count_unless_excluded():
    links = {(0, 1), (1, 1)}
    draws = [(2, 1), (2, None)]
    graph = RiskGraph.from_tables(_tables(3, links, draws))
    assert device_rings(graph, 3, 50).membership.height == 3
    assert device_rings(graph, 3, 50, include_drawdown_devices=False).membership.height == 0


def test_hub_does_not_glue_rings():
    # Two rings of three; every one of their customers (and 40 others) also uses a shop terminal.
    links = {(c, 0) for c in range(3)} | {(c, 1) for c in range(3, 6)} | {(c, 9) for c in range(46)}
    graph = RiskGraph.from_tables(_tables(46, links, []))
    result = device_rings(graph, min_customers_per_device=3, max_customers_per_device=45)
    assert as_sets(result.membership, "ring_id") == {
        frozenset({"c00", "c01", "c02"}),
        frozenset({"c03", "c04", "c05"}),
    }
    assert result.hubs.to_dicts() == [{"device_id": "d9", "customers": 46}]
    glued = device_rings(graph, min_customers_per_device=3, max_customers_per_device=46)
    assert as_sets(glued.membership, "ring_id") == {frozenset(f"c{i:02d}" for i in range(46))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_rings_found_exactly(seed):
    planted = planted_network(seed)
    result = device_rings(RiskGraph.from_tables(planted.tables))
    assert as_sets(result.membership, "ring_id") == as_sets(planted.rings, "ring_id")
    assert result.hubs.get_column("customers").to_list() == [120]


@pytest.mark.parametrize(("customers", "seed"), [(3000, 11), (20_000, 5)])
def test_generated_rings_found_exactly(customers, seed):
    synthetic = pytest.importorskip("loaders.synthetic")
    if not hasattr(synthetic, "generate_tables"):
        pytest.skip("loaders.synthetic.generate_tables has not landed yet")
    data = synthetic.generate_tables(customers=customers, seed=seed)
    result = device_rings(RiskGraph.from_tables(data.tables))
    assert as_sets(result.membership, "ring_id") == as_sets(data.truth["rings"], "ring_id")
    assert set(result.hubs.get_column("device_id")) == set(
        data.truth["hub_devices"].get_column("device_id")
    )
