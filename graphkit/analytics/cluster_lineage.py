"""Stable cluster identities across runs: warm-started Leiden and ids carried by overlap.

A run given the previous run's membership (customer_id, cluster_id) starts Leiden from that
partition (:func:`warm_clusters`), so communities the new input did not disturb come back
unchanged, and then carries cluster ids over by overlap (:func:`carry_cluster_ids`):

* a current cluster ``c`` **keeps** the id of a previous cluster ``p`` when they share more than
  half of ``p``'s members *and* more than half of ``c``'s members
  (``2 * |p ∩ c| > |p|`` and ``2 * |p ∩ c| > |c|``, sizes as the two memberships list them).
  Both being strict majorities, each cluster has at most one such partner: the rule is a
  one-to-one matching, decided without any tie-break.
* every other current cluster gets a **new** id, above every id the series has issued (ids are
  never reused; :func:`read_previous_clusters` gives the high-water mark), numbered largest
  cluster first, then smallest customer_id.

The lineage frame (:data:`LINEAGE_SCHEMA`) says where each current cluster came from. One row
per pair of a current and a previous cluster sharing members, with ``shared_members`` =
``|p ∩ c|`` and ``relation``:

* ``same``: ``c`` kept ``p``'s id (``cluster_id == previous_cluster_id``);
* ``merge``: ``c`` is not ``p``'s continuation and takes members from two or more previous
  clusters (whether ``c`` has a new id or kept another one's); this row is the part from ``p``;
* ``split``: ``c`` is not ``p``'s continuation and ``p`` is its only previous source: a piece
  of ``p`` (or ``p`` grown past half new members).

plus one ``new`` row per current cluster with no previously clustered member
(``previous_cluster_id`` null, ``shared_members`` 0) and one ``gone`` row per previous cluster
none of whose members is in a current cluster (``cluster_id`` null, ``shared_members`` 0).

Invariants (tested in ``tests/test_cluster_lineage.py``):

1. For every previous cluster ``p``, the ``shared_members`` of its rows sum to the number of
   its members that are in some current cluster; it has a ``gone`` row exactly when that is 0.
2. For every current cluster ``c``, the ``shared_members`` of its rows sum to the number of its
   members that were in some previous cluster; it has a ``new`` row exactly when that is 0.
3. ``same`` rows pair each id with itself, at most once per id; every other current cluster's
   id is greater than every previous id.
4. Every previous and every current cluster id appears in the lineage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from graphkit.analytics.clusters import (
    ClusterGraph,
    ClusterResult,
    cluster_graph,
    leiden,
    numbered_clusters,
    partition_quality,
)
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

LINEAGE_SCHEMA = {
    "cluster_id": pl.Int64,
    "previous_cluster_id": pl.Int64,
    "shared_members": pl.Int64,
    "relation": pl.String,
}
RELATIONS: tuple[str, ...] = ("same", "split", "merge", "new", "gone")
# manifest.json key (under "analytics") of the largest cluster id a run series has issued.
HIGH_WATER_KEY = "cluster_id_high_water"


class PreviousRunError(ValueError):
    """A ``--previous`` run directory whose clusters cannot be read; the message names the file."""


@dataclass(frozen=True)
class PreviousClusters:
    """What a run needs from the previous run to keep cluster ids.

    Attributes:
        membership: customer_id, cluster_id of the previous run's ``clusters.parquet``.
        high_water: the largest cluster id ever issued in the series up to that run (retired
            ids included), so new ids start above it and are never reused.
    """

    membership: pl.DataFrame
    high_water: int

    def next_high_water(self, membership: pl.DataFrame) -> int:
        """The high-water mark to record for a run whose membership is ``membership``."""
        current = membership.get_column("cluster_id").max()
        return max(self.high_water, int(current) if current is not None else 0)


def read_previous_clusters(run_dir: Path) -> PreviousClusters:
    """The previous run's membership and id high-water mark, from ``run_dir``.

    Reads ``clusters.parquet`` (required) and the high-water mark from ``manifest.json``
    (``analytics.cluster_id_high_water``), falling back, for runs made before it was recorded,
    to the largest id in ``clusters.parquet`` and ``cluster_lineage.parquet``.

    Raises:
        PreviousRunError: ``clusters.parquet`` is missing, unreadable or lacks a column.
    """
    path = Path(run_dir) / "clusters.parquet"
    if not path.is_file():
        raise PreviousRunError(f"{path}: previous run has no clusters.parquet")
    try:
        membership = pl.read_parquet(path)
        membership = _check_membership(membership, "previous")
    except (OSError, pl.exceptions.PolarsError, ValueError) as exc:
        raise PreviousRunError(f"{path}: {exc}") from None
    marks = [membership.get_column("cluster_id").max() or 0]
    manifest = Path(run_dir) / "manifest.json"
    recorded = None
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8")).get("analytics", {})
            recorded = recorded.get(HIGH_WATER_KEY)
        except (OSError, ValueError, AttributeError):
            recorded = None
    if isinstance(recorded, int):
        marks.append(recorded)
    else:
        lineage = Path(run_dir) / "cluster_lineage.parquet"
        if lineage.is_file():
            ids = pl.read_parquet(lineage, columns=["cluster_id", "previous_cluster_id"])
            marks += [ids.get_column(c).max() or 0 for c in ids.columns]
    return PreviousClusters(membership, int(max(marks)))


def _check_membership(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """``frame``'s customer_id and cluster_id, refusing what would make the overlap ambiguous."""
    missing = [column for column in ("customer_id", "cluster_id") if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} membership: missing column(s) {', '.join(missing)}")
    pairs = frame.select(pl.col("customer_id"), pl.col("cluster_id").cast(pl.Int64))
    nulls = pairs.filter(pl.col("customer_id").is_null() | pl.col("cluster_id").is_null())
    if nulls.height:
        raise ValueError(
            f"{name} membership: {nulls.height} row(s) with a null customer_id/cluster_id"
        )
    repeated = pairs.filter(pl.col("customer_id").is_duplicated())
    if repeated.height:
        first = repeated.get_column("customer_id").sort()[0]
        raise ValueError(
            f"{name} membership: customer_id {first!r} is in more than one row "
            "(a customer belongs to one cluster)"
        )
    return pairs


def carry_cluster_ids(
    previous: pl.DataFrame, current: pl.DataFrame, first_new_id: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give ``current``'s clusters the ids of the ``previous`` clusters they continue.

    Definition: see the module docstring (majority-majority overlap keeps an id; every other
    cluster gets a new one; lineage rows and their invariants).

    Parameters:
        previous: the previous run's membership, customer_id and cluster_id (e.g. its
            ``clusters.parquet``); one row per customer.
        current: this run's membership, customer_id and cluster_id (other columns, such as
            cluster_size, are kept); one row per customer.
        first_new_id: the first id a new cluster may get; default one above the previous
            run's largest id. Pass a larger one to keep ids retired before the previous run
            from coming back.

    Returns:
        ``(membership, lineage)``: ``current`` with cluster_id replaced by the stable id,
        ordered by cluster_id then customer_id; and the lineage frame (:data:`LINEAGE_SCHEMA`)
        ordered by cluster_id (``gone`` rows last), then previous_cluster_id.

    Raises:
        ValueError: a frame lacks a column, has a null id, or lists a customer twice.

    Complexity: O(n) hash joins and group-bys over the n customers of the two memberships.
    """
    before = _check_membership(previous, "previous")
    now = _check_membership(current, "current")
    previous_max = before.get_column("cluster_id").max()
    floor = (int(previous_max) + 1) if previous_max is not None else 1
    first_new = floor if first_new_id is None else max(int(first_new_id), floor)

    previous_sizes = before.group_by("cluster_id").agg(pl.len().alias("previous_size"))
    current_sizes = now.group_by("cluster_id").agg(
        pl.len().alias("current_size"), pl.col("customer_id").min().alias("_first")
    )
    overlap = (
        now.rename({"cluster_id": "current"})
        .join(before.rename({"cluster_id": "previous"}), on="customer_id", how="inner")
        .group_by("current", "previous")
        .agg(pl.len().cast(pl.Int64).alias("shared_members"))
        .join(previous_sizes, left_on="previous", right_on="cluster_id", how="left")
        .join(current_sizes, left_on="current", right_on="cluster_id", how="left")
        .with_columns(
            (
                (2 * pl.col("shared_members") > pl.col("previous_size"))
                & (2 * pl.col("shared_members") > pl.col("current_size"))
            ).alias("_keeps"),
            pl.len().over("current").alias("_sources"),
        )
    )
    kept = overlap.filter("_keeps").select("current", pl.col("previous").alias("stable"))
    fresh = (
        current_sizes.join(kept, left_on="cluster_id", right_on="current", how="anti")
        .sort(["current_size", "_first"], descending=[True, False])
        .with_row_index("_rank")
        .select(
            pl.col("cluster_id").alias("current"),
            (pl.col("_rank").cast(pl.Int64) + first_new).alias("stable"),
        )
    )
    stable = pl.concat([kept, fresh])

    shared = overlap.join(stable, on="current", how="left").select(
        pl.col("stable").alias("cluster_id"),
        pl.col("previous").alias("previous_cluster_id"),
        "shared_members",
        pl.when("_keeps")
        .then(pl.lit("same"))
        .when(pl.col("_sources") >= 2)
        .then(pl.lit("merge"))
        .otherwise(pl.lit("split"))
        .alias("relation"),
    )
    new = stable.join(overlap, on="current", how="anti").select(
        pl.col("stable").alias("cluster_id"),
        pl.lit(None, pl.Int64).alias("previous_cluster_id"),
        pl.lit(0, pl.Int64).alias("shared_members"),
        pl.lit("new").alias("relation"),
    )
    gone = previous_sizes.join(
        overlap, left_on="cluster_id", right_on="previous", how="anti"
    ).select(
        pl.lit(None, pl.Int64).alias("cluster_id"),
        pl.col("cluster_id").alias("previous_cluster_id"),
        pl.lit(0, pl.Int64).alias("shared_members"),
        pl.lit("gone").alias("relation"),
    )
    lineage = (
        pl.concat([shared, new, gone])
        .cast(LINEAGE_SCHEMA)
        .sort(["cluster_id", "previous_cluster_id"], nulls_last=True)
    )
    membership = (
        current.with_columns(pl.col("cluster_id").cast(pl.Int64))
        .join(stable, left_on="cluster_id", right_on="current", how="left")
        .with_columns(pl.col("stable").alias("cluster_id"))
        .drop("stable")
        .sort("cluster_id", "customer_id")
    )
    return membership, lineage


def initial_membership(customer_ids: pl.Series, previous: pl.DataFrame) -> np.ndarray:
    """Leiden's starting partition over ``customer_ids`` (the vertices, in order).

    A customer of a previous cluster starts in that cluster (previous ids relabelled densely
    0..k-1 in id order); every other customer (new since the previous run, or not in a reported
    cluster then) starts alone, labelled k, k+1, ... in vertex order.

    Complexity: O(n) for the hash join over the n vertices, plus a sort of the k labels.
    """
    before = _check_membership(previous, "previous")
    frame = pl.DataFrame({"customer_id": customer_ids}).join(
        before, on="customer_id", how="left", maintain_order="left"
    )
    label = frame.get_column("cluster_id").rank("dense").cast(pl.Int64) - 1
    alone = label.is_null()
    start = int(label.max()) + 1 if label.is_not_null().any() else 0
    labels = label.fill_null(-1).to_numpy().copy()
    labels[alone.to_numpy()] = start + np.arange(int(alone.sum()), dtype=np.int64)
    return labels


def warm_clusters(
    graph: RiskGraph,
    previous: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = SILENT,
    built: ClusterGraph | None = None,
) -> ClusterResult:
    """Related-enterprise clusters of ``graph``, Leiden started from the ``previous`` partition.

    The clusters of :func:`graphkit.analytics.clusters.related_clusters` (same graph, weights,
    resolution, seed and size filter), except that Leiden starts from
    :func:`initial_membership` instead of singletons. The previous partition (new customers
    alone) is kept as it is when its modularity on the current graph is within
    ``clusters.keep_tolerance`` (relative) of a cold start's: so a re-run on identical input
    returns it unchanged, whether or not the previous run had converged. Otherwise Leiden runs
    ``clusters.warm_leiden_iterations`` iterations from it (default 2); each only improves its
    starting partition, so few customers move. Cluster ids are numbered afresh (1.., largest
    first); :func:`carry_cluster_ids` makes them stable.

    Parameters:
        graph: the risk graph.
        previous: the previous run's membership (customer_id, cluster_id).
        config: run configuration; defaults if None.
        built: a :class:`ClusterGraph` already built from ``graph`` with ``config``.

    Returns a :class:`ClusterResult`.

    Complexity: that of ``related_clusters`` plus O(n) for the starting partition.
    Reference: V. A. Traag, L. Waltman, N. J. van Eck, *From Louvain to Leiden: guaranteeing
    well-connected communities*, Sci. Rep. 9, 5233, 2019 (the algorithm refines any given
    partition).
    """
    cfg = config if config is not None else Config()
    multiplex = built if built is not None else cluster_graph(graph, cfg)
    weights = multiplex.weights(cfg.clusters.weights)
    start = initial_membership(multiplex.customer_ids, previous)
    progress.log(
        f"clusters: warm start from {int(start.max(initial=-1)) + 1} groups over "
        f"{len(multiplex.nodes)} tied customers"
    )
    n = len(multiplex.nodes)
    # Hysteresis: the previous partition stands while it is as good as a cold start within
    # keep_tolerance (the bound a stable id is allowed to cost), so an unchanged input changes
    # no cluster and a small change does not reshuffle communities for a tiny gain.
    _, cold = leiden(
        n,
        multiplex.pairs,
        weights,
        cfg.clusters.resolution,
        cfg.clusters.seed,
        cfg.clusters.leiden_iterations,
    )
    kept = partition_quality(n, multiplex.pairs, weights, start)
    if kept >= cold - cfg.clusters.keep_tolerance * abs(cold):
        progress.log(f"clusters: previous partition kept (modularity {kept:.4f}, cold {cold:.4f})")
        membership, modularity = start, kept
    else:
        membership, modularity = leiden(
            n,
            multiplex.pairs,
            weights,
            cfg.clusters.resolution,
            cfg.clusters.seed,
            cfg.clusters.warm_leiden_iterations,
            initial_membership=start,
        )
    frame = numbered_clusters(multiplex.customer_ids, membership, cfg.clusters.min_cluster_size)
    return ClusterResult(frame, modularity, int((weights > 0).sum()))


def stable_clusters(
    graph: RiskGraph,
    previous: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = SILENT,
    built: ClusterGraph | None = None,
    first_new_id: int | None = None,
) -> tuple[ClusterResult, pl.DataFrame]:
    """:func:`warm_clusters` then :func:`carry_cluster_ids`: clusters with stable ids.

    Returns ``(result, lineage)``: the :class:`ClusterResult` whose membership
    (customer_id, cluster_id, cluster_size) carries the previous run's ids, and the lineage
    frame. Complexity: that of the two.
    """
    result = warm_clusters(graph, previous, config, progress, built)
    membership, lineage = carry_cluster_ids(previous, result.membership, first_new_id)
    return ClusterResult(membership, result.modularity, result.ties), lineage
