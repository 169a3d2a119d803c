"""Cluster sweeps: how the related-enterprise clusters move with resolution and layer weights.

The multiplex graph is built once; every grid point re-weights it and runs Leiden with the
configured seed. Per point the sweep reports the number of clusters (of at least
``clusters.min_cluster_size`` members), the modularity (resolution 1), the largest cluster, the
*stability* (adjusted Rand index against the neighbouring grid point: the previous resolution
with the same weights, or for the first resolution the same resolution with the previous
weights) and, when planted groups are known, ARI and NMI against them on the group members
(a customer outside every cluster counts as its own singleton).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from graphkit.analytics.clusters import LAYERS, ClusterGraph, cluster_graph, leiden
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

SWEEP_COLUMNS = {
    "point": pl.Int64,
    "resolution": pl.Float64,
    **{f"w_{name}": pl.Float64 for name in LAYERS},
    "clusters": pl.Int64,
    "modularity": pl.Float64,
    "largest": pl.Int64,
    "stability_ari": pl.Float64,
    "truth_ari": pl.Float64,
    "truth_nmi": pl.Float64,
}
# Below this many tied pairs a Leiden run takes milliseconds and worker start-up would dominate.
PARALLEL_MIN_PAIRS = 50_000

_worker_graph: ClusterGraph | None = None


def _init_worker(graph: ClusterGraph) -> None:
    global _worker_graph
    _worker_graph = graph


def _worker_point(
    weights: dict[str, float], resolution: float, seed: int, iterations: int
) -> np.ndarray:
    assert _worker_graph is not None
    return _leiden_point(_worker_graph, weights, resolution, seed, iterations)


def _leiden_point(
    graph: ClusterGraph,
    weights: Mapping[str, float],
    resolution: float,
    seed: int,
    iterations: int,
) -> np.ndarray:
    membership, _ = leiden(
        len(graph.nodes), graph.pairs, graph.weights(weights), resolution, seed, iterations
    )
    return membership


def _truth_labels(
    graph: ClusterGraph, truth: pl.DataFrame, membership: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(planted, found) labels over the planted group members."""
    position = pl.DataFrame(
        {"customer_id": graph.customer_ids, "vertex": np.arange(len(graph.nodes))}
    )
    joined = truth.select("customer_id", "group_id").join(position, on="customer_id", how="left")
    vertex = joined.get_column("vertex").fill_null(-1).to_numpy()
    planted = joined.get_column("group_id").cast(pl.String).to_numpy()
    found = np.empty(len(vertex), dtype=np.int64)
    tied = vertex >= 0
    found[tied] = membership[vertex[tied]]
    # Untied members are singletons: labels that collide with no community.
    found[~tied] = len(graph.nodes) + np.arange(int((~tied).sum()))
    return planted, found


def sweep_clusters(
    graph: RiskGraph,
    config: Config,
    resolutions: Sequence[float],
    weight_sets: Sequence[Mapping[str, float]] | None = None,
    truth: pl.DataFrame | None = None,
    jobs: int = 2,
    progress: Progress = SILENT,
) -> pl.DataFrame:
    """Run Leiden over the grid ``weight_sets x resolutions`` (see the module docstring).

    Parameters:
        graph: the risk graph.
        config: the base configuration (thresholds, seed, min_cluster_size).
        resolutions: gamma values, in the order they are reported.
        weight_sets: layer weights per setting; ``None`` means the configured weights only.
        truth: planted groups (group_id, customer_id), e.g. ``_truth/groups.parquet``.
        jobs: worker processes for grid points on large graphs (1 runs in this process).

    Returns one row per grid point with the columns of :data:`SWEEP_COLUMNS`, weights-major.

    Complexity: one multiplex build plus one Leiden run per grid point.
    """
    sets = [dict(w) for w in weight_sets] if weight_sets else [dict(config.clusters.weights)]
    points = [(w, float(r)) for w in sets for r in resolutions]
    built = cluster_graph(graph, config)
    seed = config.clusters.seed
    iterations = config.clusters.leiden_iterations
    progress.start("sweep clusters", len(points))
    memberships: list[np.ndarray] = []
    if jobs > 1 and len(points) > 1 and len(built.pairs) >= PARALLEL_MIN_PAIRS:
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(built,),
        ) as pool:
            futures = [pool.submit(_worker_point, w, r, seed, iterations) for w, r in points]
            for future in futures:
                memberships.append(future.result())
                progress.advance("sweep clusters")
    else:
        for w, r in points:
            memberships.append(_leiden_point(built, w, r, seed, iterations))
            progress.advance("sweep clusters")
    progress.finish("sweep clusters")

    rows = []
    n_res = len(resolutions)
    for index, ((weights, resolution), membership) in enumerate(
        zip(points, memberships, strict=True)
    ):
        set_index, res_index = divmod(index, n_res)
        neighbour = index - 1 if res_index > 0 else (index - n_res if set_index > 0 else None)
        sizes = np.bincount(membership) if len(membership) else np.zeros(0, dtype=np.int64)
        pair_weights = built.weights(weights)
        keep = pair_weights > 0
        modularity = _modularity(
            len(built.nodes), built.pairs[keep], pair_weights[keep], membership
        )
        row = {
            "point": index,
            "resolution": resolution,
            **{f"w_{name}": float(weights.get(name, 0.0)) for name in LAYERS},
            "clusters": int((sizes >= config.clusters.min_cluster_size).sum()),
            "modularity": modularity,
            "largest": int(sizes.max()) if len(sizes) else 0,
            "stability_ari": (
                float(adjusted_rand_score(memberships[neighbour], membership))
                if neighbour is not None and len(membership)
                else None
            ),
            "truth_ari": None,
            "truth_nmi": None,
        }
        if truth is not None and truth.height:
            planted, found = _truth_labels(built, truth, membership)
            row["truth_ari"] = float(adjusted_rand_score(planted, found))
            row["truth_nmi"] = float(normalized_mutual_info_score(planted, found))
        rows.append(row)
    return pl.DataFrame(rows, schema=SWEEP_COLUMNS)


def _modularity(n: int, pairs: np.ndarray, weights: np.ndarray, membership: np.ndarray) -> float:
    """Newman modularity at resolution 1 of an undirected weighted graph, vectorised."""
    total = weights.sum()
    if total <= 0:
        return 0.0
    inside = membership[pairs[:, 0]] == membership[pairs[:, 1]]
    strength = np.bincount(pairs[:, 0], weights, n) + np.bincount(pairs[:, 1], weights, n)
    community_strength = np.bincount(membership, strength)
    return float(
        weights[inside].sum() / total - (community_strength**2).sum() / (4 * total * total)
    )
