"""Perturbed cluster graphs: the next run's ties, for measuring how stable clusters are.

Used by ``tests/test_cluster_lineage.py`` and ``bench/cluster_lineage.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graphkit.analytics.clusters import ClusterGraph


def perturb_ties(multiplex: ClusterGraph, fraction: float, seed: int) -> ClusterGraph:
    """``multiplex`` with ``round(fraction * ties)`` ties changed at random.

    Half of the changes (rounded down) remove an existing tie, chosen uniformly; the rest add a
    tie between two tied customers chosen uniformly that were not tied, tied in the guarantee
    layer alone. Uniform new ties mostly join different clusters: the hard case for stable
    clusters, harder than a real day's changes, which stay mostly inside related groups.
    Vertices are kept (a customer whose ties were all removed stays, untied). Same arguments,
    same graph.
    """
    rng = np.random.default_rng(seed)
    ties = len(multiplex.pairs)
    n = len(multiplex.nodes)
    changes = round(fraction * ties)
    removed = changes // 2
    added = changes - removed
    keep = np.ones(ties, dtype=bool)
    keep[rng.choice(ties, size=removed, replace=False)] = False

    existing = set((multiplex.pairs[:, 0] * n + multiplex.pairs[:, 1]).tolist())
    new_pairs: list[tuple[int, int]] = []
    while len(new_pairs) < added:
        a, b = (int(v) for v in rng.integers(0, n, size=2))
        low, high = min(a, b), max(a, b)
        if low == high or low * n + high in existing:
            continue
        existing.add(low * n + high)
        new_pairs.append((low, high))
    layers = np.zeros((added, multiplex.layers.shape[1]), dtype=np.float64)
    layers[:, 0] = 1.0  # LAYERS[0] is the guarantee layer
    return replace(
        multiplex,
        pairs=np.vstack(
            [multiplex.pairs[keep], np.array(new_pairs, dtype=np.int64).reshape(-1, 2)]
        ),
        layers=np.vstack([multiplex.layers[keep], layers]),
    )
