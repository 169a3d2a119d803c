"""Related-enterprise clusters (关联企业集群): communities of the multiplex customer graph.

Two customers are *tied* in a layer when

* ``guarantee``: one guarantees the other (either direction);
* ``shareholding``: one holds at least ``clusters.shareholding_threshold`` of the other;
* ``device``: they use a common device that is not a hub, i.e. a device used by at most
  ``rings.max_customers_per_device`` customers (the rings' hub rule; see
  :mod:`graphkit.analytics.rings`);
* ``transfer``: the net amount moved between their accounts, ``|sum(a -> b) - sum(b -> a)|``
  over all transfers between accounts they own, is above ``clusters.transfer_threshold``.

Each layer ties a pair at most once (a tie is a fact, not a count: a mutual guarantee and two
shared phones are one tie each). A pair's weight is the sum of ``clusters.weights[layer]`` over
the layers that tie it; pairs of weight 0 are not edges. Clusters are the communities found by
Leiden maximising modularity at resolution gamma (``clusters.resolution``) on this undirected
weighted graph, with a fixed seed: the same input and config give the same clusters, run after
run. Clusters smaller than ``clusters.min_cluster_size`` (singletons by default) are not reported.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import igraph as ig
import numpy as np
import polars as pl

from graphkit.analytics.rings import classify_devices, device_customer_pairs
from graphkit.config import CLUSTER_WEIGHT_KEYS, Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

LAYERS: tuple[str, ...] = CLUSTER_WEIGHT_KEYS
MEMBERSHIP_COLUMNS = {"customer_id": pl.String, "cluster_id": pl.Int64, "cluster_size": pl.Int64}
PAIR_SCHEMA = {"a": pl.Int32, "b": pl.Int32}


@dataclass(frozen=True)
class ClusterGraph:
    """The multiplex customer graph, built once and re-weighted per setting.

    Attributes:
        nodes: dense customer ids of the vertices (customers with a tie in any layer), ascending.
        pairs: ``(P, 2)`` int array of vertex positions ``a < b``, one row per tied pair.
        layers: ``(P, len(LAYERS))`` float array, 1.0 where the layer ties the pair.
        customer_ids: ``customer_id`` of each vertex.
    """

    nodes: np.ndarray
    pairs: np.ndarray
    layers: np.ndarray
    customer_ids: pl.Series

    def weights(self, layer_weights: Mapping[str, float]) -> np.ndarray:
        """Pair weights: the sum of ``layer_weights[layer]`` over the layers tying each pair."""
        vector = np.array([float(layer_weights.get(name, 0.0)) for name in LAYERS])
        return self.layers @ vector


@dataclass(frozen=True)
class ClusterResult:
    """Clusters of one setting.

    Attributes:
        membership: customer_id, cluster_id, cluster_size for customers in clusters of at least
            ``min_cluster_size``; ordered by cluster_id then customer_id.
        modularity: Newman modularity (resolution 1) of the full partition.
        ties: number of weighted pairs in the graph.
    """

    membership: pl.DataFrame
    modularity: float
    ties: int


def _ordered(a: pl.Expr, b: pl.Expr) -> list[pl.Expr]:
    return [pl.min_horizontal(a, b).alias("a"), pl.max_horizontal(a, b).alias("b")]


def layer_keys(
    graph: RiskGraph,
    shareholding_threshold: float = 0.2,
    transfer_threshold: float = 0.0,
    max_customers_per_device: int = 50,
) -> dict[str, np.ndarray]:
    """The tied pairs of each layer as sorted distinct int64 keys ``a * n + b`` with ``a <= b``.

    ``n`` is the number of customers; a pair is ``divmod(key, n)``. Guarantee and shareholding
    keys keep a customer tied to itself (``a == b``), as the input states it.

    Complexity: O(E log E) sorts of the guarantee and shareholding pairs; a hash group-by of
    the transfers; O(sum of n_d^2) for the device layer over non-hub devices d with n_d
    customers (at most ``max_customers_per_device`` each).
    """
    n = np.int64(max(graph.n("Customer"), 1))

    def keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        low, high = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        return _sorted_unique(low * n + high)

    guarantee = keys(*graph.endpoints("guarantees"))
    shares = graph.edges["holds_shares"]
    held = shares.get_column("share").to_numpy() >= shareholding_threshold
    holder, company = graph.endpoints("holds_shares")
    shareholding = keys(holder[held], company[held])

    # The device self-join stays in polars: it is a hash join on the device column, O(sum of
    # n_d^2) output rows, cheap next to the other layers (non-hub devices have few users).
    shared, _ = classify_devices(device_customer_pairs(graph), 2, max_customers_per_device)
    tied = shared.join(shared, on="device", suffix="_other").filter(
        pl.col("customer") < pl.col("customer_other")
    )
    device = keys(
        tied.get_column("customer").to_numpy(), tied.get_column("customer_other").to_numpy()
    )

    owner = graph.account_owner_customer()
    src, dst = graph.endpoints("transfer")
    transfers = pl.DataFrame(
        {
            "from": owner[src],
            "to": owner[dst],
            "amount": graph.edges["transfer"].get_column("amount").to_numpy(),
        },
        schema={"from": pl.Int32, "to": pl.Int32, "amount": pl.Float64},
    ).filter((pl.col("from") >= 0) & (pl.col("to") >= 0) & (pl.col("from") != pl.col("to")))
    net = (
        transfers.with_columns(
            *_ordered(pl.col("from"), pl.col("to")),
            pl.when(pl.col("from") < pl.col("to"))
            .then(pl.col("amount"))
            .otherwise(-pl.col("amount"))
            .alias("signed"),
        )
        .group_by("a", "b")
        .agg(pl.col("signed").sum().abs().alias("net"))
        .filter(pl.col("net") > transfer_threshold)
    )
    transfer = keys(net.get_column("a").to_numpy(), net.get_column("b").to_numpy())
    return {
        "guarantee": guarantee,
        "shareholding": shareholding,
        "device": device,
        "transfer": transfer,
    }


def layer_ties(
    graph: RiskGraph,
    shareholding_threshold: float = 0.2,
    transfer_threshold: float = 0.0,
    max_customers_per_device: int = 50,
) -> dict[str, pl.DataFrame]:
    """The tied customer pairs of each layer: ``{layer: frame(a, b)}`` with ``a <= b`` unique.

    :func:`layer_keys` as int32 frames ordered by ``(a, b)``. Complexity: that of
    :func:`layer_keys`.
    """
    n = np.int64(max(graph.n("Customer"), 1))
    ties = layer_keys(graph, shareholding_threshold, transfer_threshold, max_customers_per_device)
    frames = {}
    for name, keys in ties.items():
        a, b = np.divmod(keys, n)
        frames[name] = pl.DataFrame({"a": a, "b": b}, schema=PAIR_SCHEMA)
    return frames


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a sort is several times faster than numpy 2's hash-based unique
    on millions of int64 keys."""
    ordered = np.sort(values)
    return ordered[_run_starts(ordered)]


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Boolean mask of the positions where a sorted array's value changes (first is True)."""
    starts = np.ones(len(ordered), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    return starts


def cluster_graph(graph: RiskGraph, config: Config) -> ClusterGraph:
    """Build the multiplex :class:`ClusterGraph` with ``config.clusters`` thresholds.

    Pairs are ordered by ``(a, b)`` customer id and vertices by customer id, so the graph (and
    the Leiden result on it) depends on the input alone.

    Complexity: that of :func:`layer_keys`, plus one sort of the P layer ties and O(n) for
    the n customers.
    """
    ties = layer_keys(
        graph,
        config.clusters.shareholding_threshold,
        config.clusters.transfer_threshold,
        config.rings.max_customers_per_device,
    )
    # Each layer's keys are distinct, so after one sort of the codes key * L + layer a pair's
    # run of equal keys holds each layer tying it exactly once: the run gives the pair's row
    # and the code's remainder its layer column, without a search per layer.
    width = np.int64(len(LAYERS))
    codes = np.sort(np.concatenate([ties[name] * width + i for i, name in enumerate(LAYERS)]))
    key, layer = np.divmod(codes, width)
    new_pair = _run_starts(key)
    layers = np.zeros((int(new_pair.sum()), len(LAYERS)), dtype=np.float64)
    layers[np.cumsum(new_pair) - 1, layer] = 1.0
    a, b = np.divmod(key[new_pair], np.int64(max(graph.n("Customer"), 1)))
    # Vertices are the customers with a tie, in id order; a presence mask and its running count
    # relabel customer ids to vertex positions in O(n), with no sort or search.
    present = np.zeros(graph.n("Customer"), dtype=bool)
    present[a] = True
    present[b] = True
    position = np.cumsum(present) - 1
    return ClusterGraph(
        nodes=np.flatnonzero(present).astype(np.int32),
        pairs=np.column_stack([position[a], position[b]]).astype(np.int64).reshape(-1, 2),
        layers=layers,
        customer_ids=graph.keys("Customer").gather(np.flatnonzero(present)),
    )


@dataclass(frozen=True)
class LeidenGraph:
    """An igraph graph of the positive-weight pairs, built once for several Leiden runs.

    Attributes:
        graph: the undirected igraph graph over vertices ``0..n-1``.
        weights: the weight of each of its edges, as a list (what igraph takes).
        pairs: ``(E, 2)`` the kept pairs, in edge order.
        edge_weights: ``(E,)`` their weights.
    """

    graph: ig.Graph
    weights: list[float]
    pairs: np.ndarray
    edge_weights: np.ndarray

    @classmethod
    def build(cls, n: int, pairs: np.ndarray, weights: np.ndarray) -> LeidenGraph:
        """The graph of ``pairs`` over ``0..n-1``, edges of weight 0 dropped. O(n + E)."""
        keep = weights > 0
        kept = pairs[keep].reshape(-1, 2)
        # python-igraph converts a list of int tuples about three times faster than a numpy
        # array.
        edges = list(zip(kept[:, 0].tolist(), kept[:, 1].tolist(), strict=True))
        graph = ig.Graph(n=n, edges=edges, directed=False)
        return cls(graph, weights[keep].tolist(), kept, weights[keep])

    def leiden(
        self,
        resolution: float = 1.0,
        seed: int = 42,
        iterations: int = 2,
        initial_membership: np.ndarray | None = None,
        node_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Leiden's membership on this graph (see :func:`leiden`).

        ``node_weights``: each vertex's weight in modularity's null model; default igraph's,
        its strength, in which igraph counts no self-loop. Pass the strengths with
        self-loops counted twice (:meth:`strengths`) for a graph of aggregated communities.
        """
        state = random.getstate()
        try:
            random.seed(seed)
            partition = self.graph.community_leiden(
                objective_function="modularity",
                weights=self.weights,
                resolution=resolution,
                n_iterations=iterations,
                initial_membership=(
                    None if initial_membership is None else initial_membership.tolist()
                ),
                node_weights=None if node_weights is None else node_weights.tolist(),
            )
        finally:
            random.setstate(state)
        return np.asarray(partition.membership, dtype=np.int64)

    def strengths(self) -> np.ndarray:
        """Each vertex's summed edge weight, a self-loop counted twice (modularity's degree)."""
        n = self.graph.vcount()
        return np.bincount(self.pairs[:, 0], self.edge_weights, minlength=n) + np.bincount(
            self.pairs[:, 1], self.edge_weights, minlength=n
        )

    def modularity(self, membership: np.ndarray, resolution: float = 1.0) -> float:
        """Weighted Newman modularity of ``membership`` (:func:`partition_quality`)."""
        return float(cluster_quality(self.pairs, self.edge_weights, membership, resolution).sum())


def leiden(
    n: int,
    pairs: np.ndarray,
    weights: np.ndarray,
    resolution: float = 1.0,
    seed: int = 42,
    iterations: int = 2,
    initial_membership: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Leiden communities maximising modularity at ``resolution`` on a weighted graph.

    ``pairs`` are undirected edges over vertices ``0..n-1``; edges of weight 0 are dropped.
    igraph draws its random numbers from Python's :mod:`random`; it is seeded with ``seed`` for
    the call and its previous state restored, so the result is a function of the input alone.

    Returns ``(membership, modularity)``: a community index per vertex and the Newman
    modularity of that partition at resolution 1 (comparable across resolutions).

    ``iterations``: Leiden iterations (each improves the previous partition); -1 iterates until
    no vertex moves, which on large graphs takes tens of iterations for gains in the fourth
    decimal of modularity.

    ``initial_membership``: a community index per vertex (``0..n-1``) to start from instead of
    singletons (a warm start; see :mod:`graphkit.analytics.cluster_lineage`).

    To run Leiden several times on one graph, build it once with :meth:`LeidenGraph.build`.

    Complexity: O(E) per iteration (in practice; each iteration is a local-moving pass, a
    refinement and an aggregation).
    Reference: V. A. Traag, L. Waltman, N. J. van Eck, *From Louvain to Leiden: guaranteeing
    well-connected communities*, Sci. Rep. 9, 5233, 2019.
    """
    built = LeidenGraph.build(n, pairs, weights)
    membership = built.leiden(resolution, seed, iterations, initial_membership)
    return membership, built.modularity(membership)


def cluster_quality(
    pairs: np.ndarray,
    weights: np.ndarray,
    membership: np.ndarray,
    resolution: float = 1.0,
) -> np.ndarray:
    """Each community's term of the weighted Newman modularity of ``membership``.

    Entry ``c`` is ``L_c / m - gamma * (d_c / 2m)^2``, with ``L_c`` the weight of the pairs
    inside community ``c`` (a self-loop counted once), ``d_c`` the summed strength of its
    vertices (a self-loop counted twice) and ``m`` the total weight; the terms sum to the
    modularity (igraph's convention), and a partition that changes some communities changes
    only their terms. Communities are ``0..max(membership)``; pairs of weight 0 count for
    nothing; all zeros for a graph without weight.

    Complexity: O(n + E) (three bincounts).
    Reference: M. E. J. Newman, *Finding community structure in networks using the
    eigenvectors of matrices*, Phys. Rev. E 74, 036104, 2006.
    """
    labels = np.asarray(membership, dtype=np.int64)
    count = int(labels.max()) + 1 if len(labels) else 0
    total = float(weights.sum())
    if total <= 0:
        return np.zeros(count)
    a, b = pairs[:, 0], pairs[:, 1]
    inside = labels[a] == labels[b]
    internal = np.bincount(labels[a][inside], weights=weights[inside], minlength=count)
    strength = np.bincount(a, weights=weights, minlength=len(labels)) + np.bincount(
        b, weights=weights, minlength=len(labels)
    )
    degree = np.bincount(labels, weights=strength, minlength=count)
    return internal / total - resolution * (degree / (2.0 * total)) ** 2


def partition_quality(
    n: int,
    pairs: np.ndarray,
    weights: np.ndarray,
    membership: np.ndarray,
    resolution: float = 1.0,
) -> float:
    """Weighted Newman modularity of ``membership`` at ``resolution``: Leiden's objective.

    Q = 1/(2m) * sum_ij (A_ij - gamma * k_i k_j / (2m)) * [c_i = c_j] over the undirected
    ``pairs`` over vertices ``0..n-1`` with their ``weights`` (edges of weight 0 dropped); 0.0
    for a graph without edges. The sum of :func:`cluster_quality`. Complexity: O(n + E).
    Reference: M. E. J. Newman, *Finding community structure in networks using the
    eigenvectors of matrices*, Phys. Rev. E 74, 036104, 2006.
    """
    labels = np.asarray(membership, dtype=np.int64)
    if len(labels) < n:
        raise ValueError(f"membership has {len(labels)} entries for {n} vertices")
    return float(cluster_quality(pairs, weights, labels, resolution).sum())


def numbered_clusters(
    customer_ids: pl.Series, membership: np.ndarray, min_cluster_size: int = 2
) -> pl.DataFrame:
    """Number communities 1.. by size (largest first), then smallest customer_id.

    Returns customer_id, cluster_id, cluster_size for communities of at least
    ``min_cluster_size`` members, ordered by cluster_id then customer_id.
    """
    frame = pl.DataFrame({"customer_id": customer_ids, "community": membership})
    order = (
        frame.group_by("community")
        .agg(pl.len().alias("cluster_size"), pl.col("customer_id").min().alias("_first"))
        .filter(pl.col("cluster_size") >= min_cluster_size)
        .sort(["cluster_size", "_first"], descending=[True, False])
        .with_row_index("cluster_id", offset=1)
    )
    return (
        frame.join(order, on="community", how="inner")
        .select(
            "customer_id",
            pl.col("cluster_id").cast(pl.Int64),
            pl.col("cluster_size").cast(pl.Int64),
        )
        .sort("cluster_id", "customer_id")
    )


def related_clusters(
    graph: RiskGraph,
    config: Config | None = None,
    progress: Progress = SILENT,
    built: ClusterGraph | None = None,
) -> ClusterResult:
    """Related-enterprise clusters of ``graph`` with ``config.clusters`` (see module docstring).

    Parameters:
        graph: the risk graph.
        config: run configuration (clusters section; the rings hub threshold); defaults if None.
        built: a :class:`ClusterGraph` already built from ``graph`` with ``config``.

    Returns a :class:`ClusterResult`; cluster ids start at 1, largest cluster first.

    Complexity: building the graph (:func:`cluster_graph`) plus Leiden (:func:`leiden`).
    """
    cfg = config if config is not None else Config()
    multiplex = built if built is not None else cluster_graph(graph, cfg)
    weights = multiplex.weights(cfg.clusters.weights)
    progress.log(
        f"clusters: {len(multiplex.nodes)} tied customers, {int((weights > 0).sum())} ties"
    )
    membership, modularity = leiden(
        len(multiplex.nodes),
        multiplex.pairs,
        weights,
        cfg.clusters.resolution,
        cfg.clusters.seed,
        cfg.clusters.leiden_iterations,
    )
    frame = numbered_clusters(multiplex.customer_ids, membership, cfg.clusters.min_cluster_size)
    return ClusterResult(frame, modularity, int((weights > 0).sum()))
