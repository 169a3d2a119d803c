"""The live engine's hops to the nearest sink (``graphkit.live.distance``) against networkx.

``SinkDistance`` keeps, as transfers are logged one by one, each account's least number of
transfers to a banned sink (sinks do not forward; values above H are "far"), and says which
accounts came nearer with each transfer: the live engine re-traces the traces those falls
concern. The oracle is a breadth-first search from the sinks over the reversed transfer graph
(networkx), recomputed from scratch after every transfer.
"""

from __future__ import annotations

import random

import networkx as nx
import polars as pl
import pytest

from graphkit.live.distance import SinkDistance


def oracle(edges: list[tuple[str, str]], sinks: set[str], max_hops: int) -> dict[str, int]:
    """Account -> hops to a sink, for accounts other than sinks within ``max_hops``."""
    graph = nx.DiGraph()
    graph.add_nodes_from(sinks)
    graph.add_edges_from((dst, src) for src, dst in edges if src not in sinks)
    lengths = nx.multi_source_dijkstra_path_length(graph, sinks, cutoff=max_hops)
    return {account: d for account, d in lengths.items() if account not in sinks}


@pytest.mark.parametrize("seed", range(30))
def test_each_transfer_leaves_the_distances_of_a_search_from_scratch(seed: int) -> None:
    """Random transfers among a few accounts (self-transfers, repeats, transfers out of
    sinks, a sink added half-way): after each, the kept distances are the oracle's and the
    falls reported are exactly the accounts that came nearer, with their new distance; a
    snapshot loaded at once gives the same distances and senders as the links one by one."""
    rng = random.Random(seed)
    max_hops = rng.choice([1, 2, 3, 6])
    accounts = [f"A{i}" for i in range(rng.randint(3, 14))]
    sinks = set(rng.sample(accounts, 1))
    distance = SinkDistance(max_hops)
    edges: list[tuple[str, str]] = []
    before: dict[str, int] = {}
    for step in range(120):
        if step == 60:
            late = rng.choice([a for a in accounts if a not in sinks])
            sinks.add(late)
            fell = distance.add_sink(late, sinks)
        else:
            src, dst = rng.choice(accounts), rng.choice(accounts)
            edges.append((src, dst))
            fell = distance.link(src, dst, sinks)
        want = oracle(edges, sinks, max_hops)
        assert distance.near == want, (seed, step)
        nearer = {a: d for a, d in want.items() if d < before.get(a, max_hops + 1)}
        assert fell == nearer, (seed, step)
        assert all(distance.of(a, sinks) == 0 for a in sinks)
        before = want
    loaded = SinkDistance(max_hops)
    loaded.load(pl.DataFrame(edges, schema=["src", "dst"], orient="row"), sinks)
    assert loaded.near == distance.near
    # a sink's transfers out are no way to a sink: the late sink may stay among the senders
    # of the one-by-one links (it is passed over), never among a loaded snapshot's
    senders = {a: set(found) - sinks for a, found in distance.senders.items() if a not in sinks}
    assert {a: set(found) for a, found in loaded.senders.items()} == {
        a: found for a, found in senders.items() if found
    }


def test_senders_move_from_a_tuple_to_a_set_past_sixteen() -> None:
    distance = SinkDistance(3)
    for i in range(40):
        distance.link(f"S{i % 20}", "T", set())
    assert isinstance(distance.senders["T"], set)
    assert distance.senders["T"] == {f"S{i}" for i in range(20)}


def test_a_snapshot_of_transfers_into_sinks_only_loads() -> None:
    distance = SinkDistance(3)
    distance.load(pl.DataFrame({"src": ["A", "S"], "dst": ["S", "B"]}), {"S"})
    assert distance.near == {"A": 1}
    assert distance.senders == {}
