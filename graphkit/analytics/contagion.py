"""Label-free contagion: who is hit, and how hard, when given customers default.

Two scores, each a pure function of the graph and a *seed set* of defaulted customers (no model,
no training labels):

**DebtRank on guarantee exposure** (Battiston et al. 2012). When borrower ``j`` defaults, its
guarantor ``i`` owes the guaranteed amount times the loss given default. The *impact* of ``j`` on
``i`` is ``W[j, i] = min(1, exposure(i -> j) * lgd / capacity(i))``, where ``capacity(i)`` is the
guarantor's ``registered_capital`` when positive, else the total limit of its credit lines, else
the total amount it guarantees (so losing every borrower exhausts it). Stress ``h`` in ``[0, 1]``
starts at 1 on the seeds; every distressed node passes its stress on exactly once (then it is
inactive) and ``h`` is capped at 1. The DebtRank of the seed set is the extra stress, weighted by
relative economic value (capacity share): ``R = sum_i v_i h_i(T) - sum_i v_i h_i(1)``.

**Personalised PageRank** over the weighted multiplex customer graph (guarantee, shareholding,
shared device and transfer ties; weights ``config.clusters.weights``), restarting at the seeds:
how much of a random walk that keeps returning to the defaulters lingers on each customer.

**contagion_score** in ``[0, 1]``: with ``p_i = min(1, ppr_i / max_{s in S} ppr_s)`` (pagerank
relative to the most central seed's; a lone neighbour of a lone seed gets ``damping``, a
neighbour of a seed with ``k`` equal ties roughly ``damping / k``),
``contagion_score = 1 - (1 - h_i)(1 - p_i)``: hit by either channel raises the score, and a seed
scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from graphkit.config import Config
from graphkit.graph import RiskGraph

TIE_TYPES = ("guarantee", "shareholding", "device", "transfer")


class UnknownCustomersError(ValueError):
    """Customer ids that are not in the graph; ``unknown`` lists them all."""

    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown
        super().__init__(f"unknown customer id(s): {', '.join(unknown)}")


@dataclass(frozen=True)
class DebtRankResult:
    """Stress per customer (``h`` in [0, 1], id order) and the DebtRank ``R`` of the seed set."""

    h: np.ndarray
    debtrank: float
    rounds_run: int


def guarantee_capacity(graph: RiskGraph) -> np.ndarray:
    """Loss-absorbing capacity per customer (float64, id order); see the module docstring."""
    n = graph.n("Customer")
    capital = graph.nodes["Customer"].get_column("registered_capital").fill_null(0.0).to_numpy()
    limits = np.zeros(n)
    src, _ = graph.endpoints("has_line")
    np.add.at(limits, src, graph.nodes["CreditLine"].get_column("limit").to_numpy())
    guaranteed = np.zeros(n)
    g_src, _ = graph.endpoints("guarantees")
    np.add.at(guaranteed, g_src, graph.edges["guarantees"].get_column("amount").to_numpy())
    return np.where(capital > 0, capital, np.where(limits > 0, limits, guaranteed))


def guarantee_impact(
    graph: RiskGraph, loss_given_default: float = 1.0
) -> tuple[sp.csr_array, np.ndarray]:
    """``(W, capacity)``: ``W[j, i]`` = impact of borrower ``j``'s default on guarantor ``i``.

    Duplicate guarantees of one pair add up. Complexity: O(V + E).
    """
    n = graph.n("Customer")
    capacity = guarantee_capacity(graph)
    guarantor, borrower = graph.endpoints("guarantees")
    exposure = graph.edges["guarantees"].get_column("amount").to_numpy() * loss_given_default
    summed = sp.csr_array((exposure, (borrower, guarantor)), shape=(n, n))
    summed.sum_duplicates()
    coo = summed.tocoo()
    cap = capacity[coo.col]
    weight = np.where(cap > 0, np.minimum(1.0, coo.data / np.where(cap > 0, cap, 1.0)), 1.0)
    return sp.csr_array((weight, (coo.row, coo.col)), shape=(n, n)), capacity


def debtrank(
    impact: sp.csr_array,
    seeds: np.ndarray,
    rounds: int = 10,
    value: np.ndarray | None = None,
    initial_stress: float = 1.0,
) -> DebtRankResult:
    """DebtRank with the "each node propagates once" rule (Battiston et al. 2012).

    Parameters:
        impact: ``(n, n)`` with ``impact[j, i]`` the share of ``i``'s capacity lost when ``j``
            fails completely.
        seeds: ids of the initially distressed nodes.
        rounds: maximum propagation rounds (stops earlier when nobody is distressed).
        value: relative economic value per node (normalised here); uniform when ``None``.
        initial_stress: ``h`` of the seeds at the start.

    Each round: ``h_i <- min(1, h_i + sum_{j distressed} impact[j, i] * h_j)``; distressed nodes
    become inactive, nodes whose ``h`` became positive and were never distressed become
    distressed. Returns :class:`DebtRankResult`. Complexity: O(rounds * E).

    Reference: S. Battiston, M. Puliga, R. Kaushik, P. Tasca, G. Caldarelli, "DebtRank: Too
    Central to Fail?", Scientific Reports 2, 541 (2012).
    """
    n = impact.shape[0]
    h = np.zeros(n)
    h[seeds] = initial_stress
    distressed = np.zeros(n, dtype=bool)
    distressed[seeds] = True
    inactive = np.zeros(n, dtype=bool)
    transposed = impact.T.tocsr()
    rounds_run = 0
    for _ in range(rounds):
        if not distressed.any():
            break
        rounds_run += 1
        new_h = np.minimum(1.0, h + transposed @ (h * distressed))
        inactive |= distressed
        distressed = (new_h > 0) & ~inactive
        h = new_h
    weights = np.ones(n) if value is None or value.sum() <= 0 else value.astype(np.float64)
    weights = weights / weights.sum() if n else weights
    initial = np.zeros(n)
    initial[seeds] = initial_stress
    return DebtRankResult(
        h=h, debtrank=float(weights @ h - weights @ initial), rounds_run=rounds_run
    )


def personalized_pagerank(
    adjacency: sp.csr_array,
    seeds: np.ndarray,
    damping: float = 0.85,
    tol: float = 1e-12,
    max_iter: int = 500,
) -> np.ndarray:
    """Personalised PageRank restarting uniformly at ``seeds`` (power iteration).

    ``adjacency[u, v]`` is the weight of the walk step u -> v (symmetric for undirected ties).
    Dangling nodes jump to the seeds, as networkx's ``pagerank(personalization=...)`` does.
    Returns a probability vector (sums to 1); all zeros when ``seeds`` is empty.
    Complexity: O(iterations * E).
    """
    n = adjacency.shape[0]
    scores = np.zeros(n)
    if n == 0 or len(seeds) == 0:
        return scores
    restart = np.zeros(n)
    restart[np.unique(seeds)] = 1.0
    restart /= restart.sum()
    out_weight = np.asarray(adjacency.sum(axis=1)).ravel()
    dangling = out_weight == 0
    inverse = np.where(dangling, 0.0, 1.0 / np.where(dangling, 1.0, out_weight))
    step = (sp.diags_array(inverse) @ adjacency).T.tocsr()
    scores = restart.copy()
    for _ in range(max_iter):
        updated = damping * (step @ scores + scores[dangling].sum() * restart)
        updated += (1.0 - damping) * restart
        if np.abs(updated - scores).sum() < tol:
            return updated
        scores = updated
    return scores


def customer_multiplex(
    graph: RiskGraph, config: Config
) -> tuple[sp.csr_array, dict[str, sp.csr_array]]:
    """The undirected weighted customer graph and one symmetric 0/1 tie matrix per layer.

    The layers and thresholds are the clusters' (:func:`graphkit.analytics.clusters.layer_ties`:
    guarantee, shareholding, non-hub shared device, net transfer); a pair's weight is the sum of
    ``config.clusters.weights`` over the layers tying it, so contagion walks the same graph the
    clusters are found on. Complexity: that of ``layer_ties``.
    """
    from graphkit.analytics.clusters import layer_ties

    n = graph.n("Customer")
    pairs = layer_ties(
        graph,
        config.clusters.shareholding_threshold,
        config.clusters.transfer_threshold,
        config.rings.max_customers_per_device,
    )
    ties: dict[str, sp.csr_array] = {}
    total = sp.csr_array((n, n))
    for name in TIE_TYPES:
        a = pairs[name].get_column("a").to_numpy()
        b = pairs[name].get_column("b").to_numpy()
        tie = sp.csr_array(
            (np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)
        )
        ties[name] = tie
        total = total + config.clusters.weights.get(name, 0.0) * tie
    total = total.tocsr()
    total.eliminate_zeros()
    return total, ties


def contagion_frame(
    graph: RiskGraph, seeds: np.ndarray, config: Config
) -> tuple[pl.DataFrame, DebtRankResult]:
    """Both scores and their combination for every customer, in id order.

    Columns: customer_id, contagion_score, debtrank (stress h), pagerank, loss_amount
    (``h * capacity``; 0 for seeds), seed (bool); and the seed set's :class:`DebtRankResult`.
    See the module docstring for the definitions. Complexity: O(rounds * E + iterations * E).
    """
    seeds = np.unique(np.asarray(seeds, dtype=np.int64))
    impact, capacity = guarantee_impact(graph, config.contagion.loss_given_default)
    stress = debtrank(impact, seeds, config.contagion.debtrank_rounds, value=capacity)
    multiplex, _ = customer_multiplex(graph, config)
    damping = config.contagion.pagerank_damping
    ppr = personalized_pagerank(multiplex, seeds, damping)
    is_seed = np.zeros(graph.n("Customer"), dtype=bool)
    is_seed[seeds] = True
    top_seed = ppr[seeds].max() if len(seeds) else 0.0
    proximity = np.minimum(1.0, ppr / top_seed) if top_seed > 0 else np.zeros_like(ppr)
    score = np.where(is_seed, 1.0, 1.0 - (1.0 - stress.h) * (1.0 - proximity))
    frame = pl.DataFrame(
        {
            "customer_id": graph.keys("Customer"),
            "contagion_score": np.clip(score, 0.0, 1.0),
            "debtrank": stress.h,
            "pagerank": ppr,
            "loss_amount": np.where(is_seed, 0.0, stress.h * capacity),
            "seed": is_seed,
        }
    )
    return frame, stress


@dataclass(frozen=True)
class Simulation:
    """A stress test: ``hits`` (customers hit, worst first) and the seed set's DebtRank."""

    hits: pl.DataFrame
    debtrank: float
    seeds: list[str]


def simulate_defaults(
    graph: RiskGraph, default_ids: list[str], config: Config, top: int | None = None
) -> Simulation:
    """ "If these customers default, who is hit and by how much".

    ``hits``: customer_id, stress (DebtRank h), loss_amount, pagerank, contagion_score, hops
    (ties from the nearest seed), path (``seed -guarantee-> ... -> customer``) for every
    non-seed customer with a positive score, by contagion_score then loss descending; at most
    ``top`` rows when given. Raises :class:`UnknownCustomersError` listing every unknown id.
    """
    ids = graph.ids("Customer", default_ids)
    unknown = [key for key, i in zip(default_ids, ids, strict=True) if i < 0]
    if unknown:
        raise UnknownCustomersError(unknown)
    scores, stress = contagion_frame(graph, ids, config)
    hits = (
        scores.with_row_index("cid")
        .filter(~pl.col("seed") & (pl.col("contagion_score") > 0))
        .sort(["contagion_score", "loss_amount", "cid"], descending=[True, True, False])
    )
    if top is not None:
        hits = hits.head(top)
    hops, paths = _paths(graph, config, ids, hits.get_column("cid").to_numpy())
    hits = hits.select(
        "customer_id",
        pl.col("debtrank").alias("stress"),
        "loss_amount",
        "pagerank",
        "contagion_score",
        pl.Series("hops", hops, dtype=pl.Int64),
        pl.Series("path", paths, dtype=pl.String),
    )
    return Simulation(hits=hits, debtrank=stress.debtrank, seeds=list(default_ids))


def _paths(
    graph: RiskGraph, config: Config, seeds: np.ndarray, targets: np.ndarray
) -> tuple[list[int | None], list[str | None]]:
    """Shortest tie path from the nearest seed to each target, labelled with tie types."""
    multiplex, ties = customer_multiplex(graph, config)
    n = graph.n("Customer")
    # A virtual source joined to every seed turns "nearest seed" into one BFS.
    source = np.full(len(np.unique(seeds)), n)
    links = sp.coo_array(multiplex)
    walk = sp.csr_array(
        (
            np.ones(links.nnz + len(source)),
            (np.concatenate([links.row, source]), np.concatenate([links.col, np.unique(seeds)])),
        ),
        shape=(n + 1, n + 1),
    )
    _, parent = breadth_first_order(walk, n, directed=False, return_predecessors=True)
    reached = np.flatnonzero(parent[:n] >= 0)
    labels = np.full(n, "", dtype=object)
    for name in TIE_TYPES:
        has = ties[name][parent[reached].clip(0, n - 1), reached] > 0
        has &= parent[reached] < n
        labels[reached[has]] = [f"{x}+{name}" if x else name for x in labels[reached[has]]]
    keys = graph.keys("Customer").to_list()
    hops: list[int | None] = []
    paths: list[str | None] = []
    for target in targets:
        chain = [int(target)]
        while chain[-1] < n and parent[chain[-1]] >= 0:
            chain.append(int(parent[chain[-1]]))
        if chain[-1] != n:
            hops.append(None)
            paths.append(None)
            continue
        chain = chain[:-1][::-1]
        text = keys[chain[0]]
        for node in chain[1:]:
            text += f" -{labels[node]}-> {keys[node]}"
        hops.append(len(chain) - 1)
        paths.append(text)
    return hops, paths
