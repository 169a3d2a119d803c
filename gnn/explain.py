"""Why a customer scored what it scored: the features, the neighbours, and the network facts.

*Features* by occlusion against the mean: each standardised feature of the customer is set to 0
(the population mean) in turn, and the drop in the customer's score is that feature's effect
(positive: the feature raised the score). *Neighbours* by node occlusion: each customer in the
model's receptive field (``layers`` hops over every relation) is cut off (all its edges
removed) in turn, and the drop in the score is its effect; each is listed with how it is tied
to the customer (``guarantor``, ``guaranteed borrower``, ``shareholder``, ``company held``,
``device peer``, ``payer``, ``payee``; ``via X`` for two hops). Both are exact for the model, one
forward pass per occlusion on the customer's computation graph only.

:func:`explain_saved_model` explains with a saved ``model.pt``; reading a run directory (and the
facts it holds for the customer) is :func:`graphkit.explain.explain_run`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch_geometric.data import HeteroData

from gnn.data import (
    NODE,
    RELATIONS,
    WHOLE_NEIGHBOURHOOD,
    Batch,
    NeighbourSampler,
    build_data,
    edge_type,
)
from gnn.features import CustomerFeatures
from gnn.models import RelationalSAGE
from gnn.prior import TreePrior, add_prior_column
from gnn.score import load_model, sigmoid
from graphkit.graph import RiskGraph

TIE_NAMES = {
    "guarantor_of": "guarantor",
    "borrower_of": "guaranteed borrower",
    "holds_shares": "shareholder",
    "held_by": "company held",
    "shares_device": "device peer",
    "pays": "payer",
    "paid_by": "payee",
}


@dataclass
class Explanation:
    """Features and neighbours that drove a customer's score, and its network facts.

    Attributes:
        customer_id: the customer.
        score: the GNN score (None when the run trained no model).
        features: feature, value (raw), effect (score drop when set to the mean), by |effect|.
        neighbours: customer_id, tie, hops, effect (score drop when cut off), by effect.
        facts: circle, cluster, ring, flow, contagion and score facts from the run directory.
    """

    customer_id: str
    score: float | None
    features: pl.DataFrame
    neighbours: pl.DataFrame
    facts: dict[str, Any] = field(default_factory=dict)


def _score(model: RelationalSAGE, batch: Batch, x: torch.Tensor, log_weight: float, edges=None):
    with torch.no_grad():
        logit = model(x, edges if edges is not None else batch.edges)[0].item()
    return float(sigmoid(np.array([logit - log_weight]))[0])


def _ties(batch: Batch, keys: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Hops and tie description of every subgraph node relative to node 0 (the customer)."""
    size = len(batch.node_ids)
    hops = np.full(size, -1)
    hops[0] = 0
    direct: dict[int, list[str]] = {}
    parent: dict[int, tuple[int, str]] = {}
    for relation in RELATIONS:
        src, dst = batch.edges[edge_type(relation)].numpy()
        for s in src[dst == 0]:
            direct.setdefault(int(s), []).append(TIE_NAMES[relation])
    for node in direct:
        hops[node] = 1
    for relation in RELATIONS:
        src, dst = batch.edges[edge_type(relation)].numpy()
        for s, d in zip(src, dst, strict=True):
            if hops[s] == -1 and hops[d] == 1 and int(s) not in parent:
                parent[int(s)] = (int(d), TIE_NAMES[relation])
    for node in parent:
        hops[node] = 2
    labels = []
    for node in range(size):
        if node in direct:
            labels.append("+".join(sorted(set(direct[node]))))
        elif node in parent:
            via, tie = parent[node]
            labels.append(f"{tie} via {keys[int(batch.node_ids[via])]}")
        else:
            labels.append("")
    return hops, labels


NEIGHBOUR_SCHEMA = {
    "customer_id": pl.String,
    "tie": pl.String,
    "hops": pl.Int64,
    "effect": pl.Float64,
}
# Occlusions are scored together as disjoint copies of the customer's subgraph, at most this
# many nodes per forward pass (bounds memory on a hub's large receptive field).
OCCLUSION_CHUNK_NODES = 50_000


def _cut_off_scores(
    model: RelationalSAGE, batch: Batch, cut: np.ndarray, log_weight: float
) -> np.ndarray:
    """The score of node 0 with each node of ``cut`` removed (all its edges), one per node.

    Exact per occlusion: copy ``k`` of the subgraph lacks node ``cut[k]``'s edges, and the
    copies share nothing, so one forward pass over their disjoint union scores them all.
    """
    size = batch.x.shape[0]
    per = max(1, OCCLUSION_CHUNK_NODES // size)
    scores = []
    for start in range(0, len(cut), per):
        part = torch.as_tensor(cut[start : start + per], dtype=torch.long).view(-1, 1)
        copies = part.shape[0]
        edges = {}
        for name, pairs in batch.edges.items():
            keep = (pairs[0].view(1, -1) != part) & (pairs[1].view(1, -1) != part)
            copy, column = keep.nonzero(as_tuple=True)
            edges[name] = pairs[:, column] + copy * size
        with torch.no_grad():
            logits = model(batch.x.repeat(copies, 1), edges)[torch.arange(copies) * size]
        scores.append(sigmoid(logits.numpy().astype(np.float64) - log_weight))
    return np.concatenate(scores) if scores else np.zeros(0)


def neighbour_effects(
    model: RelationalSAGE,
    batch: Batch,
    keys: pl.Series,
    log_weight: float,
    base: float,
    max_neighbours: int = 200,
) -> pl.DataFrame:
    """Every neighbour of ``batch``'s customer (node 0; at most ``max_neighbours``, nearest
    first) with its tie, hops and effect (``base`` minus the score with it cut off), by effect."""
    hops, ties = _ties(batch, keys)
    candidates = np.array(
        [i for i in np.argsort(hops, kind="stable") if hops[i] > 0][:max_neighbours], dtype=int
    )
    effects = base - _cut_off_scores(model, batch, candidates, log_weight)
    return pl.DataFrame(
        {
            "customer_id": [keys[int(batch.node_ids[node])] for node in candidates],
            "tie": [ties[node] for node in candidates],
            "hops": hops[candidates].astype(np.int64),
            "effect": effects,
        },
        schema=NEIGHBOUR_SCHEMA,
    ).sort("effect", descending=True, maintain_order=True)


def explain_customer(
    model: RelationalSAGE,
    data: HeteroData,
    customer: int,
    feature_names: list[str],
    raw_features: np.ndarray,
    keys: pl.Series,
    log_weight: float,
    max_neighbours: int = 200,
    prior: TreePrior | None = None,
) -> Explanation:
    """Explain the score of dense customer id ``customer`` (see the module docstring).

    ``raw_features`` is the customer's unstandardised feature row (for display). At most
    ``max_neighbours`` neighbours (nearest first) are occluded. With a tree ``prior`` (the
    model's last input column) an occluded feature also moves the customer's prior, so each
    effect is that of the whole model, trees and GNN. Complexity: O((features + neighbours) *
    receptive field).
    """
    layers = len(model.convs)
    sampler = NeighbourSampler(data, [WHOLE_NEIGHBOURHOOD] * layers, batch_size=1)
    batch = sampler.sample(np.array([customer]))
    model.eval()
    base = _score(model, batch, batch.x, log_weight)
    effects = []
    for j in range(len(feature_names)):
        occluded = batch.x.clone()
        occluded[0, j] = 0.0
        if prior is not None:
            own = occluded[0, : len(feature_names)].numpy()[None, :]
            occluded[0, -1] = float(prior.column(own, np.array([customer]))[0])
        effects.append(base - _score(model, batch, occluded, log_weight))
    features = pl.DataFrame(
        {"feature": feature_names, "value": raw_features.astype(np.float64), "effect": effects}
    ).sort(pl.col("effect").abs(), descending=True)
    neighbours = neighbour_effects(model, batch, keys, log_weight, base, max_neighbours)
    return Explanation(
        customer_id=str(keys[customer]), score=base, features=features, neighbours=neighbours
    )


def explain_saved_model(
    model_file: Path,
    graph: RiskGraph,
    features: pl.DataFrame,
    customer: int,
    top: int = 10,
) -> Explanation:
    """Explain dense customer id ``customer`` with the model saved at ``model_file``.

    ``features`` is the run's feature frame (``customer_id`` and the feature columns the model
    was saved with); the inputs are rebuilt exactly as at training (saved standardiser, device
    bound and tree prior). Keeps the ``top`` features and neighbours by effect.
    """
    saved = load_model(model_file)
    names = saved["feature_names"]
    customer_features = CustomerFeatures(frame=features, names=names, snapshot=saved["snapshot"])
    data, _ = build_data(graph, customer_features, saved["standardiser"], saved["max_device_users"])
    if saved["prior"] is not None:
        add_prior_column(data, saved["prior"].column(data[NODE].x.numpy()))
    explanation = explain_customer(
        saved["model"],
        data,
        customer,
        names,
        customer_features.matrix()[customer],
        graph.keys("Customer"),
        saved["log_weight"],
        prior=saved["prior"],
    )
    explanation.features = explanation.features.head(top)
    explanation.neighbours = explanation.neighbours.head(top)
    return explanation


@dataclass
class NetworkExplainer:
    """A model just trained, with the inputs it scored: explains without re-loading it.

    :func:`gnn.fit.fit_and_score` hands one back (``GnnResult.explainer``) so that a run can
    name the neighbours that drove its alerts (:meth:`top_neighbours`).
    """

    model: RelationalSAGE
    data: HeteroData
    keys: pl.Series
    log_weight: float

    def top_neighbours(
        self,
        customer_ids: list[str] | pl.Series,
        top: int = 2,
        min_effect: float = 0.0,
        max_neighbours: int = 200,
    ) -> pl.DataFrame:
        """The ``top`` neighbours of largest effect above ``min_effect`` of each customer, as
        :func:`explain_customer` ranks them (same occlusions, features left out).

        Returns customer_id, neighbour_id, tie, hops, effect (float64, score drop when the
        neighbour is cut off), customers in the order given, neighbours by effect; unknown ids
        and customers with no neighbour above ``min_effect`` have no row. Complexity per
        customer: O(neighbours * receptive field), the occlusions batched in few forward passes.
        """
        index = dict(zip(self.keys.to_list(), range(len(self.keys)), strict=True))
        layers = len(self.model.convs)
        sampler = NeighbourSampler(self.data, [WHOLE_NEIGHBOURHOOD] * layers, batch_size=1)
        self.model.eval()
        parts = []
        for customer_id in customer_ids:
            customer = index.get(str(customer_id))
            if customer is None:
                continue
            batch = sampler.sample(np.array([customer]))
            base = _score(self.model, batch, batch.x, self.log_weight)
            found = neighbour_effects(
                self.model, batch, self.keys, self.log_weight, base, max_neighbours
            )
            found = found.filter(pl.col("effect") > min_effect).head(top)
            if found.height:
                parts.append(
                    found.rename({"customer_id": "neighbour_id"}).select(
                        pl.lit(str(customer_id)).alias("customer_id"), pl.all()
                    )
                )
        if not parts:
            return pl.DataFrame(
                schema={"customer_id": pl.String, "neighbour_id": pl.String}
                | {k: v for k, v in NEIGHBOUR_SCHEMA.items() if k != "customer_id"}
            )
        return pl.concat(parts)
