"""The scoring model: a small relational GraphSAGE over the customer graph.

Built from PyG layers that run without compiled extras (``SAGEConv`` with sum or mean
aggregation uses torch's own scatter; ``HeteroConv`` sums the per-relation messages).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch_geometric.nn import HeteroConv, SAGEConv

from gnn.data import NODE, RELATIONS, edge_type


class ModelShape(Protocol):
    """The hyper-parameters that fix the model's layers (a ``TrainSettings`` has them)."""

    hidden: int
    layers: int
    dropout: float
    aggr: str | list[str]


class RelationalSAGE(nn.Module):
    """Relational GraphSAGE with residual layers and a jumping-knowledge head.

    ``h0 = relu(W x)``; layer ``k``: ``h_k = h_{k-1} + relu(sum_r SAGE_r(h_{k-1}))`` (one
    SAGEConv per relation, summing (by default) over that relation's in-neighbours); the head reads
    ``[h0, h1, ..., h_K]`` so the customer's own features reach it undiluted and the graph adds
    what its neighbourhood says. Returns one logit per node.

    Parameters:
        in_features: feature count.
        hidden: width of every layer.
        layers: message-passing rounds (hops).
        dropout: dropout before the head.
        relations: relation names (edge types ``(customer, r, customer)``).
        aggr: PyG aggregation of each relation's messages (``"sum"``, ``"mean"``, a list).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int = 32,
        layers: int = 2,
        dropout: float = 0.1,
        relations: tuple[str, ...] = RELATIONS,
        aggr: str | list[str] = "sum",
    ) -> None:
        super().__init__()
        self.relations = relations
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.convs = nn.ModuleList(
            HeteroConv(
                {edge_type(r): SAGEConv(hidden, hidden, aggr=aggr) for r in relations},
                aggr="sum",
            )
            for _ in range(layers)
        )
        # A linear read-out of the raw features: the model starts from what a logistic
        # regression sees, and the graph layers only have to add what the neighbourhood says.
        self.linear = nn.Linear(in_features, 1)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden * (layers + 1), hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(
        self, x: torch.Tensor, edges: dict[tuple[str, str, str], torch.Tensor]
    ) -> torch.Tensor:
        h = self.encoder(x)
        states = [h]
        for conv in self.convs:
            h = h + torch.relu(conv({NODE: h}, edges)[NODE])
            states.append(h)
        return (self.head(torch.cat(states, dim=-1)) + self.linear(x)).squeeze(-1)


def build_model(in_features: int, settings: ModelShape) -> RelationalSAGE:
    """The one way to build the scoring model: training, scoring a saved model and explaining
    one all call this with the settings the model was (or is to be) trained with.

    ``settings`` needs ``hidden``, ``layers``, ``dropout`` and ``aggr`` (a
    :class:`gnn.train.TrainSettings`); ``in_features`` counts the tree prior's column too.
    """
    return RelationalSAGE(
        in_features, settings.hidden, settings.layers, settings.dropout, aggr=settings.aggr
    )
