"""The customer graph as PyG ``HeteroData``, and a neighbour sampler that needs no compiled extras.

One node type, ``customer``, with the standardised features of :mod:`gnn.features` as ``x`` and
the label as ``y`` (1 defaulted, 0 not, -1 unlabelled; the model never sees ``y`` as input). Edge
types are named by the direction messages flow (``src -> dst``: ``dst`` aggregates ``src``):

==================  ===============================================================
relation            edges
==================  ===============================================================
``guarantor_of``    guarantor -> borrower (a borrower hears from its guarantors)
``borrower_of``     borrower -> guarantor (a guarantor hears from whom it backs)
``holds_shares``    holder -> company
``held_by``         company -> holder
``shares_device``   customer <-> customer using a common non-hub device (linked or
                    drawn from)
``pays``            payer -> payee (transfers between their accounts, aggregated)
``paid_by``         payee -> payer
==================  ===============================================================

Only ties that existed at the snapshot are used (guarantees started, device links first seen,
transfers made by then). :class:`NeighbourSampler` draws mini-batches of seed customers with up
to ``fanout[k]`` sampled in-neighbours per relation at hop ``k`` from CSR arrays (numpy), the
GraphSAGE scheme, so training scales past memory without pyg-lib or torch-sparse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import torch
from torch_geometric.data import HeteroData

from gnn.features import _NO_EVENTS, CustomerFeatures, device_uses
from graphkit.graph import RiskGraph

NODE = "customer"
RELATIONS = (
    "guarantor_of",
    "borrower_of",
    "holds_shares",
    "held_by",
    "shares_device",
    "pays",
    "paid_by",
)


# A fanout no degree reaches: sampling with it takes every in-neighbour, so a batch's computation
# graph is its seeds' whole receptive field and its logits equal the full-graph ones.
WHOLE_NEIGHBOURHOOD = 1 << 40


def edge_type(relation: str) -> tuple[str, str, str]:
    return (NODE, relation, NODE)


def signed_log(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: tames amounts and counts before standardising."""
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass(frozen=True)
class Standardiser:
    """Signed log then z-score, with the statistics kept for scoring and explaining."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> Standardiser:
        logged = signed_log(raw.astype(np.float64))
        std = logged.std(axis=0)
        return cls(mean=logged.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return ((signed_log(raw.astype(np.float64)) - self.mean) / self.std).astype(np.float32)


def customer_edges(
    graph: RiskGraph, snapshot: datetime, max_device_users: int = 50
) -> dict[str, np.ndarray]:
    """``relation -> (2, E)`` int64 arrays of customer ids, unique pairs, no self loops.

    A device used by more than ``max_device_users`` customers is a hub and ties nobody (the
    rings' rule, ``rings.max_customers_per_device``). Complexity: O(E log E).
    """
    snap_date = snapshot.date() if snapshot < _NO_EVENTS else None
    guarantees = graph.edges["guarantees"]
    if snap_date is not None:
        guarantees = guarantees.filter(pl.col("start").is_null() | (pl.col("start") <= snap_date))
    shares = graph.edges["holds_shares"]
    links = device_uses(graph, snapshot)
    users = links.group_by("device").agg(pl.len().alias("users"))
    links = links.join(users.filter(pl.col("users") <= max_device_users), on="device", how="semi")
    device = links.join(links, on="device", suffix="_other").filter(
        pl.col("customer") != pl.col("customer_other")
    )
    owner = graph.account_owner_customer()
    transfers = graph.edges["transfer"].filter(pl.col("ts") <= snapshot)
    payer = owner[transfers.get_column("src").to_numpy()] if transfers.height else np.zeros(0)
    payee = owner[transfers.get_column("dst").to_numpy()] if transfers.height else np.zeros(0)
    paid = (payer >= 0) & (payee >= 0) & (payer != payee)

    def pairs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        keep = src != dst
        stacked = np.unique(np.stack([src[keep], dst[keep]]), axis=1)
        return stacked.reshape(2, -1)

    g_src, g_dst = (guarantees.get_column(c).to_numpy() for c in ("src", "dst"))
    s_src, s_dst = (shares.get_column(c).to_numpy() for c in ("src", "dst"))
    return {
        "guarantor_of": pairs(g_src, g_dst),
        "borrower_of": pairs(g_dst, g_src),
        "holds_shares": pairs(s_src, s_dst),
        "held_by": pairs(s_dst, s_src),
        "shares_device": pairs(
            device.get_column("customer").to_numpy(), device.get_column("customer_other").to_numpy()
        ),
        "pays": pairs(payer[paid], payee[paid]),
        "paid_by": pairs(payee[paid], payer[paid]),
    }


def build_data(
    graph: RiskGraph,
    features: CustomerFeatures,
    standardiser: Standardiser | None = None,
    max_device_users: int = 50,
) -> tuple[HeteroData, Standardiser]:
    """``HeteroData`` with ``customer.x`` (standardised features), ``customer.y`` and the edges.

    ``standardiser`` reuses saved statistics (scoring a saved model); fitted on all customers
    otherwise (unsupervised: no label is read).
    """
    raw = features.matrix()
    scaler = standardiser if standardiser is not None else Standardiser.fit(raw)
    data = HeteroData()
    data[NODE].x = torch.from_numpy(scaler.transform(raw))
    data[NODE].y = torch.from_numpy(graph.defaulted().astype(np.int64))
    for relation, pairs in customer_edges(graph, features.snapshot, max_device_users).items():
        data[edge_type(relation)].edge_index = torch.from_numpy(pairs)
    return data, scaler


def edge_index_dict(data: HeteroData) -> dict[tuple[str, str, str], torch.Tensor]:
    return {edge_type(r): data[edge_type(r)].edge_index for r in RELATIONS}


@dataclass(frozen=True)
class Batch:
    """A sampled subgraph: ``x`` of its nodes (seeds first), local edges, and global ids."""

    x: torch.Tensor
    edges: dict[tuple[str, str, str], torch.Tensor]
    node_ids: np.ndarray
    batch_size: int


class NeighbourSampler:
    """Mini-batches of seed customers with sampled in-neighbours per relation and hop.

    Parameters:
        data: the full graph (only its CSR arrays and features are read per batch).
        fanouts: neighbours sampled per relation at each hop (``len(fanouts)`` hops; use at
            least the model's number of layers). A node with fewer keeps all of them.
        batch_size: seed customers per batch.
        seed: numpy seed; the same seed gives the same batches.

    Complexity per batch: O(batch_size * prod(fanouts) * relations).
    """

    def __init__(
        self, data: HeteroData, fanouts: list[int], batch_size: int = 1024, seed: int = 0
    ) -> None:
        self.x = data[NODE].x
        self.n = self.x.shape[0]
        self.fanouts = fanouts
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.csr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for relation in RELATIONS:
            src, dst = data[edge_type(relation)].edge_index.numpy()
            order = np.argsort(dst, kind="stable")
            indptr = np.zeros(self.n + 1, dtype=np.int64)
            np.add.at(indptr, dst + 1, 1)
            self.csr[relation] = (np.cumsum(indptr), src[order])

    def batches(self, nodes: np.ndarray, shuffle: bool = True) -> Iterator[Batch]:
        """Yield :class:`Batch` es covering ``nodes`` once."""
        order = self.rng.permutation(nodes) if shuffle else np.asarray(nodes)
        for start in range(0, len(order), self.batch_size):
            yield self.sample(order[start : start + self.batch_size])

    def _sample_in(self, relation: str, frontier: np.ndarray, fanout: int):
        indptr, sources = self.csr[relation]
        degree = indptr[frontier + 1] - indptr[frontier]
        take = np.minimum(degree, fanout)
        total = int(take.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        first = np.repeat(np.cumsum(take) - take, take)
        position = np.arange(total) - first
        degree_rep = np.repeat(degree, take)
        drawn = np.floor(self.rng.random(total) * degree_rep).astype(np.int64)
        offset = np.where(degree_rep <= fanout, position, drawn)
        src = sources[np.repeat(indptr[frontier], take) + offset]
        return src, np.repeat(frontier, take)

    def sample(self, seeds: np.ndarray) -> Batch:
        """The sampled computation graph of ``seeds`` (seeds are local ids 0..len-1)."""
        seeds = np.asarray(seeds, dtype=np.int64)
        frontier = seeds
        sampled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {r: [] for r in RELATIONS}
        known = [seeds]
        for fanout in self.fanouts:
            new_nodes = []
            for relation in RELATIONS:
                src, dst = self._sample_in(relation, frontier, fanout)
                sampled[relation].append((src, dst))
                new_nodes.append(src)
            reached = np.unique(np.concatenate(new_nodes)) if new_nodes else np.zeros(0, np.int64)
            frontier = reached
            known.append(reached)
        everything = np.concatenate(known)
        _, first_seen = np.unique(everything, return_index=True)
        node_ids = everything[np.sort(first_seen)]
        local = np.full(self.n, -1, dtype=np.int64)
        local[node_ids] = np.arange(len(node_ids))
        edges = {}
        for relation, parts in sampled.items():
            src = np.concatenate([p[0] for p in parts])
            dst = np.concatenate([p[1] for p in parts])
            pairs = np.unique(np.stack([local[src], local[dst]]), axis=1).reshape(2, -1)
            edges[edge_type(relation)] = torch.from_numpy(pairs)
        return Batch(
            x=self.x[torch.from_numpy(node_ids)],
            edges=edges,
            node_ids=node_ids,
            batch_size=len(seeds),
        )


@dataclass(frozen=True)
class Subgraph:
    """A sample of labelled customers with their ``K``-hop in-neighbourhoods, in local ids.

    Built outside :mod:`gnn` (on Spark, :mod:`graphkit.spark.training`) and handed to
    :func:`gnn.fit.fit_subgraph`. Every node within ``K`` hops of a sampled customer (following
    edges against their direction, since ``dst`` hears from ``src``) is a node; every edge into
    a node less than ``K`` hops away is an edge. That is exactly the receptive field of a
    ``K``-layer model at the sampled customers, so their logits on the subgraph equal those on
    the whole graph (a node ``K`` hops out lacks its own in-edges, and nothing it computes reaches
    a sampled customer).

    Attributes:
        customer_ids: ``customer_id`` of each local id.
        raw: raw features, ``(nodes, features)`` float32 in the model's feature order.
        labels: 1 / 0 for the sampled customers, -1 for every other node (labelled or not:
            a neighbour's label is never read).
        edges: relation -> ``(2, E)`` int64 local ids, ``src`` then ``dst``.
        hops: each node's distance to the nearest sampled customer (0 for them).
    """

    customer_ids: pl.Series
    raw: np.ndarray
    labels: np.ndarray
    edges: dict[str, np.ndarray]
    hops: np.ndarray


def subgraph_data(subgraph: Subgraph, standardiser: Standardiser) -> HeteroData:
    """``HeteroData`` of a :class:`Subgraph` (``x`` standardised with ``standardiser``, the
    statistics of every customer, not of the subgraph's nodes alone)."""
    data = HeteroData()
    data[NODE].x = torch.from_numpy(standardiser.transform(subgraph.raw))
    data[NODE].y = torch.from_numpy(subgraph.labels.astype(np.int64))
    for relation in RELATIONS:
        pairs = subgraph.edges.get(relation, np.zeros((2, 0), dtype=np.int64))
        data[edge_type(relation)].edge_index = torch.from_numpy(
            np.asarray(pairs, dtype=np.int64).reshape(2, -1)
        )
    return data
