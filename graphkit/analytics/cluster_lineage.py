"""Stable cluster identities across runs: warm-started Leiden and ids carried by overlap.

A run given the previous run's membership (customer_id, cluster_id) starts from that partition
and changes it only where the new ties make it worth more than ``clusters.keep_tolerance`` of a
cold start's modularity, change by change (:func:`warm_clusters`, :func:`adopt_changes`,
:func:`restore_identities`), so communities the new input did not disturb come back unchanged;
it then carries cluster ids over by overlap (:func:`carry_cluster_ids`):

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
    LeidenGraph,
    cluster_graph,
    cluster_quality,
    numbered_clusters,
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


def lineage_problems(
    previous: pl.DataFrame, current: pl.DataFrame, lineage: pl.DataFrame
) -> list[str]:
    """What is wrong with ``lineage`` as the lineage from ``previous`` to ``current``.

    Checks the invariants of the module docstring: every previous cluster is accounted for
    once (one ``same`` row, or ``split``/``merge`` rows, or one ``gone`` row and nothing
    else) and every current cluster likewise (``same``, ``split``/``merge``, or one ``new``
    row); ``same`` pairs an id with itself; ``merge``/``split`` rows name a current cluster
    with several / one previous source; and ``shared_members`` add up to the members the two
    memberships (customer_id, cluster_id) have in common, per cluster on both sides.

    Returns a list of messages, empty when the lineage adds up. Complexity: O(n) group-bys.
    """
    before = _check_membership(previous, "previous")
    now = _check_membership(current, "current")
    problems: list[str] = []
    bad = lineage.filter(~pl.col("relation").is_in(list(RELATIONS)))
    if bad.height:
        problems.append(f"unknown relation(s) {sorted(set(bad.get_column('relation')))}")
    shared = (
        now.rename({"cluster_id": "c"})
        .join(before.rename({"cluster_id": "p"}), on="customer_id")
        .group_by("c", "p")
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )
    rows = lineage.filter(pl.col("relation").is_in(["same", "split", "merge"]))
    pairs = rows.select(
        pl.col("cluster_id").alias("c"),
        pl.col("previous_cluster_id").alias("p"),
        pl.col("shared_members").alias("m"),
    )
    differ = shared.join(pairs, on=["c", "p"], how="full", coalesce=True).filter(
        pl.col("n").fill_null(0) != pl.col("m").fill_null(0)
    )
    if differ.height:
        problems.append(f"{differ.height} (cluster, previous cluster) pair(s) with wrong counts")
    for side, ids, column, alone in (
        ("previous", before, "previous_cluster_id", "gone"),
        ("current", now, "cluster_id", "new"),
    ):
        per = (
            ids.select(pl.col("cluster_id").unique().alias(column))
            .join(lineage, on=column, how="full", coalesce=True)
            .group_by(column)
            .agg(
                (pl.col("relation") == "same").sum().alias("same"),
                (pl.col("relation") == alone).sum().alias("alone"),
                pl.col("relation").is_in(["split", "merge"]).sum().alias("parts"),
                pl.col("relation").is_null().all().alias("missing"),
            )
        )
        known = set(ids.get_column("cluster_id"))
        extra = set(per.get_column(column).drop_nulls()) - known
        if extra:
            problems.append(f"{side} id(s) {sorted(extra)[:5]} not in the {side} membership")
        missing = per.filter(pl.col("missing") & pl.col(column).is_not_null())
        if missing.height:
            problems.append(f"{missing.height} {side} cluster(s) missing from the lineage")
        twice = per.filter(
            (pl.col("same") > 1)
            | (pl.col("alone") > 1)
            | ((pl.col("alone") == 1) & ((pl.col("same") + pl.col("parts")) > 0))
        ).filter(pl.col(column).is_not_null())
        if twice.height:
            problems.append(f"{twice.height} {side} cluster(s) accounted for more than once")
    same = lineage.filter(pl.col("relation") == "same")
    if same.filter(pl.col("cluster_id") != pl.col("previous_cluster_id")).height:
        problems.append("a same row pairs two different ids")
    sources = rows.group_by("cluster_id").agg(pl.len().alias("sources"))
    wrong = rows.join(sources, on="cluster_id").filter(
        ((pl.col("relation") == "merge") & (pl.col("sources") < 2))
        | ((pl.col("relation") == "split") & (pl.col("sources") != 1))
    )
    if wrong.height:
        problems.append(f"{wrong.height} split/merge row(s) contradict the number of sources")
    return problems


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


def connected_pieces(n: int, pairs: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """``membership`` with every community cut into its connected pieces.

    Two vertices stay together when a path of ``pairs`` (the graph's positive-weight edges)
    joins them inside their community. A previous cluster whose ties were removed is no longer
    a related group; Leiden guarantees connected communities, and a warm start keeps that
    guarantee by starting from the pieces. Labels are arbitrary (``0..k-1``).

    Complexity: O(n + E) (a connected-components pass over the edges inside communities).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = pairs[:, 0], pairs[:, 1]
    inside = membership[a] == membership[b]
    graph = coo_matrix((np.ones(int(inside.sum())), (a[inside], b[inside])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


@dataclass(frozen=True)
class Adoption:
    """What :func:`adopt_changes` decided.

    Attributes:
        membership: a community label per vertex.
        quality: its modularity (at the resolution given).
        changes: changes proposed (components of the start/proposal overlap that differ).
        adopted: changes adopted; the others were rejected (their start communities kept).
        ids_at_stake: reported start communities that would lose their identity if every
            change were adopted; ``ids_saved`` of them were kept by rejecting changes.
    """

    membership: np.ndarray
    quality: float
    changes: int
    adopted: int
    ids_at_stake: int
    ids_saved: int


def adopt_changes(
    pairs: np.ndarray,
    weights: np.ndarray,
    start: np.ndarray,
    proposal: np.ndarray,
    floor: float,
    resolution: float = 1.0,
    min_cluster_size: int = 2,
) -> Adoption:
    """Hysteresis: adopt a proposal's changes to a partition only as far as quality requires.

    Definition. Link each community of ``start`` to each community of ``proposal`` sharing a
    vertex; a connected component of these links with more than one community on either side
    is a *change*: a set of vertices that ``start`` and ``proposal`` partition differently,
    while agreeing about everything else. Modularity is a sum of per-community terms
    (:func:`graphkit.analytics.clusters.cluster_quality`), so each change has an exact
    ``gain`` (its proposal communities' terms minus its start communities'), and any set of
    changes can be adopted independently, the quality being that of ``start`` plus their gains.

    A change is adopted unless rejecting it is affordable: changes are rejected, while the
    partition's quality stays at least ``floor``, in this order:

    1. changes that would cost reported start communities (``>= min_cluster_size`` members)
       their identity, i.e. leave one with no majority-majority partner in the proposal (the
       :func:`carry_cluster_ids` rule), in increasing order of gain per identity kept;
    2. then changes that only move vertices between communities that keep their identity, in
       increasing order of gain.

    Never rejected: changes of negative gain are never adopted, and a change that only adds
    vertices alone in ``start`` (customers new since the previous run) to communities, or
    groups them, without moving a vertex of a multi-member start community or costing an
    identity, is always adopted: new customers join their group at once.

    Parameters:
        pairs, weights: the graph's edges over vertices ``0..n-1`` (``(E, 2)`` and ``(E,)``).
        start: the current partition (a label per vertex), e.g. the previous run's clusters.
        proposal: a better partition, e.g. Leiden started from ``start``.
        floor: the least modularity (at ``resolution``) the result may have; typically a
            cold start's, less a tolerance.
        resolution: gamma of the modularity.
        min_cluster_size: communities smaller than this are not reported, so have no identity.

    Returns an :class:`Adoption`. If ``start``'s quality plus the changes that are always
    adopted is already at least ``floor``, every other change is rejected: a ``start`` that
    is good enough comes back unchanged.

    Complexity: O(n + E) for the quality terms, the overlap and its components, plus
    O(k log k) to order the k changes.
    Reference: the cost-of-change rule is hysteresis in the sense of evolutionary clustering
    (D. Chakrabarti, R. Kumar, A. Tomkins, *Evolutionary clustering*, KDD 2006: a snapshot's
    quality traded against its history's); the independence of changes is that of
    modularity's per-community terms (Newman 2006).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(start)
    _, s = np.unique(start, return_inverse=True)
    _, w = np.unique(proposal, return_inverse=True)
    s, w = s.astype(np.int64), w.astype(np.int64)
    ks = int(s.max()) + 1 if n else 0
    kw = int(w.max()) + 1 if n else 0
    q_start = cluster_quality(pairs, weights, s, resolution)
    q_proposal = cluster_quality(pairs, weights, w, resolution)
    links = coo_matrix((np.ones(n), (s, ks + w)), shape=(ks + kw, ks + kw))
    count, component = connected_components(links, directed=False)
    comp_s, comp_w = component[:ks], component[ks:]
    gain = np.bincount(comp_w, q_proposal, minlength=count) - np.bincount(
        comp_s, q_start, minlength=count
    )
    sides = np.bincount(comp_s, minlength=count) + np.bincount(comp_w, minlength=count)
    changed = sides > 2

    # Overlap of start and proposal communities: (start, proposal, shared vertices).
    code, shared = np.unique(s * kw + w, return_counts=True)
    over_s, over_w = np.divmod(code, kw)
    size_s, size_w = np.bincount(s, minlength=ks), np.bincount(w, minlength=kw)
    partner = (2 * shared > size_s[over_s]) & (2 * shared > size_w[over_w])
    has_partner = np.zeros(ks, dtype=bool)
    has_partner[over_s[partner]] = True
    orphaned = (size_s >= min_cluster_size) & ~has_partner
    lost = np.bincount(comp_s, weights=orphaned, minlength=count)
    # Growth only: every multi-member start community lies whole in one proposal community
    # that holds no other multi-member start community.
    multi = size_s[over_s] >= 2
    torn = multi & (shared < size_s[over_s])
    mixed = np.bincount(over_w[multi], minlength=kw) >= 2
    moves = np.bincount(comp_s[over_s[torn]], minlength=count) + np.bincount(
        comp_w[mixed], minlength=count
    )
    growth = changed & (moves == 0) & (lost == 0)

    adopt = changed & (gain > 0)
    optional = np.flatnonzero(adopt & ~growth)
    slack = float(q_start.sum() + gain[adopt].sum() - floor)
    costly = lost[optional] > 0
    price = np.where(costly, gain[optional] / np.maximum(lost[optional], 1), gain[optional])
    order = optional[np.lexsort((price, ~costly))]
    rejected = order[np.cumsum(gain[order]) <= slack]
    adopt[rejected] = False

    membership = np.where(adopt[comp_s[s]], ks + w, s)
    quality = float(q_start.sum() + gain[adopt].sum())
    return Adoption(
        membership=membership,
        quality=quality,
        changes=int(changed.sum()),
        adopted=int(adopt.sum()),
        ids_at_stake=int(lost[changed & (gain > 0)].sum()),
        ids_saved=int(lost[rejected].sum()),
    )


def _orphans(start: np.ndarray, membership: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """Per start community (dense labels), True when it is reported (``min_cluster_size``+
    members) and has no majority-majority partner in ``membership`` (dense labels)."""
    ks, kw = int(start.max()) + 1, int(membership.max()) + 1
    code, shared = np.unique(start * kw + membership, return_counts=True)
    over_s, over_w = np.divmod(code, kw)
    size_s = np.bincount(start, minlength=ks)
    size_w = np.bincount(membership, minlength=kw)
    partner = (2 * shared > size_s[over_s]) & (2 * shared > size_w[over_w])
    has_partner = np.zeros(ks, dtype=bool)
    has_partner[over_s[partner]] = True
    return (size_s >= min_cluster_size) & ~has_partner


def restore_identities(
    pairs: np.ndarray,
    weights: np.ndarray,
    start: np.ndarray,
    proposal: np.ndarray,
    floor: float,
    resolution: float = 1.0,
    min_cluster_size: int = 2,
) -> Adoption:
    """``proposal`` with the start communities it would lose put back, as far as ``floor`` allows.

    Definition. A reported start community (``min_cluster_size``+ members) is *lost* in
    ``proposal`` when no proposal community shares a strict majority of its members and of its
    own (the :func:`carry_cluster_ids` rule). *Restoring* it takes its members out of their
    proposal communities into one community again, as in ``start``. Each lost community's cost
    (the modularity a restoration gives up, computed from the per-community terms as if it were
    the only one) orders them; the cheapest are restored while the result's modularity, checked
    exactly, stays at least ``floor``. Finally every community is cut into its
    :func:`connected_pieces` (which never lowers modularity).

    Parameters: as :func:`adopt_changes`; ``proposal`` is typically Leiden from ``start``.

    Returns an :class:`Adoption` (``changes``: lost communities; ``adopted``: those left lost;
    ``ids_at_stake``/``ids_saved``: lost before / restored, counted exactly on the result).

    Complexity: O(n + E) per exact check, O(log k) checks over the k lost communities (the
    candidate list shrinks by a tenth per failed check), plus O(k log k) to order them.
    """
    n = len(start)
    _, s = np.unique(start, return_inverse=True)
    _, w = np.unique(proposal, return_inverse=True)
    s, w = s.astype(np.int64), w.astype(np.int64)
    ks, kw = int(s.max()) + 1, int(w.max()) + 1
    q_start = cluster_quality(pairs, weights, s, resolution)
    q_proposal = cluster_quality(pairs, weights, w, resolution)
    orphan = _orphans(s, w, min_cluster_size)
    lost = np.flatnonzero(orphan)
    total = float(weights.sum())
    a, b = pairs[:, 0], pairs[:, 1]
    strength = np.bincount(a, weights, minlength=n) + np.bincount(b, weights, minlength=n)
    # Restoring s alone changes the terms of the proposal communities w holding its members:
    # w loses their strength and the inner weight of its pairs touching them.
    mine = orphan[s]
    keys, where = np.unique(s[mine] * kw + w[mine], return_inverse=True)
    part_strength = np.bincount(where, strength[mine], minlength=len(keys))
    inner = w[a] == w[b]
    by_a = inner & orphan[s[a]]
    by_b = inner & orphan[s[b]] & (s[a] != s[b])
    touched = np.concatenate([s[a][by_a] * kw + w[a][by_a], s[b][by_b] * kw + w[b][by_b]])
    lost_inner = np.bincount(
        np.searchsorted(keys, touched),
        np.concatenate([weights[by_a], weights[by_b]]),
        minlength=len(keys),
    )
    key_s, key_w = np.divmod(keys, kw)
    inner_w = np.bincount(w[a][inner], weights[inner], minlength=kw)
    degree_w = np.bincount(w, strength, minlength=kw)
    after = (inner_w[key_w] - lost_inner) / total - resolution * (
        (degree_w[key_w] - part_strength) / (2.0 * total)
    ) ** 2
    gain = q_start + np.bincount(key_s, after - q_proposal[key_w], minlength=ks)
    order = lost[np.argsort(-gain[lost], kind="stable")]
    spent = np.cumsum(-gain[order])
    slack = float(q_proposal.sum() - floor)
    fits = np.flatnonzero(spent <= slack)
    take = int(fits.max()) + 1 if len(fits) else 0

    def restored(count: int) -> np.ndarray:
        back = np.zeros(ks, dtype=bool)
        back[order[:count]] = True
        return connected_pieces(n, pairs, np.where(back[s], kw + s, w))

    membership = restored(take)
    quality = float(cluster_quality(pairs, weights, membership, resolution).sum())
    while take > 0 and quality < floor:
        take -= max(1, take // 10)
        membership = restored(take)
        quality = float(cluster_quality(pairs, weights, membership, resolution).sum())
    _, dense = np.unique(membership, return_inverse=True)
    left = int(_orphans(s, dense.astype(np.int64), min_cluster_size).sum())
    return Adoption(
        membership=membership,
        quality=quality,
        changes=len(lost),
        adopted=left,
        ids_at_stake=len(lost),
        ids_saved=len(lost) - left,
    )


def _cluster_merges(
    network: LeidenGraph, start: np.ndarray, resolution: float, seed: int, iterations: int
) -> np.ndarray:
    """Leiden over ``start``'s communities as vertices: a partition coarser than ``start``.

    Each community becomes one vertex whose self-loop is its inner weight and whose node
    weight is its members' summed strength (so modularity is that of the full graph); Leiden
    from singletons then only merges whole communities. Returns a label per vertex of ``network``.
    """
    _, labels = np.unique(start, return_inverse=True)
    count = int(labels.max()) + 1
    a, b = labels[network.pairs[:, 0]], labels[network.pairs[:, 1]]
    code = np.minimum(a, b) * count + np.maximum(a, b)
    keys, inverse = np.unique(code, return_inverse=True)
    pairs = np.column_stack(np.divmod(keys, count)).astype(np.int64)
    weights = np.bincount(inverse, weights=network.edge_weights, minlength=len(keys))
    graph = LeidenGraph.build(count, pairs, weights)
    merged = graph.leiden(resolution, seed, iterations, node_weights=graph.strengths())
    return merged[labels]


def warm_clusters(
    graph: RiskGraph,
    previous: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = SILENT,
    built: ClusterGraph | None = None,
) -> ClusterResult:
    """Related-enterprise clusters of ``graph``, started from the ``previous`` partition.

    The clusters of :func:`graphkit.analytics.clusters.related_clusters` (same graph, weights,
    resolution, seed and size filter), except that they change from the previous run's only
    where the new ties make it worth it:

    1. the start is :func:`initial_membership` (previous clusters together, new customers
       alone), each cluster cut into its :func:`connected_pieces` on today's ties;
    2. Leiden runs ``clusters.warm_leiden_iterations`` iterations from it: the proposal;
    3. :func:`adopt_changes` keeps the start wherever the proposal's changes are not needed
       to stay within ``clusters.keep_tolerance`` (relative) of a cold start's modularity
       (Leiden from singletons, ``clusters.leiden_iterations``), rejecting first the changes
       that would cost a cluster its id.

    So an identical input returns the previous partition unchanged (when it is within the
    tolerance of a cold start, whether or not its Leiden had converged), new customers join
    their clusters at once, and modularity is never more than the tolerance below a cold
    start's. Cluster ids are numbered afresh (1.., largest first);
    :func:`carry_cluster_ids` makes them stable.

    Parameters:
        graph: the risk graph.
        previous: the previous run's membership (customer_id, cluster_id).
        config: run configuration; defaults if None.
        built: a :class:`ClusterGraph` already built from ``graph`` with ``config``.

    Returns a :class:`ClusterResult`; its modularity is at resolution 1, as a cold start's.

    Complexity: two Leiden runs on one igraph graph (built once), plus O(n + E) for the start
    and the adoption.
    Reference: V. A. Traag, L. Waltman, N. J. van Eck, *From Louvain to Leiden: guaranteeing
    well-connected communities*, Sci. Rep. 9, 5233, 2019 (the algorithm refines any given
    partition).
    """
    cfg = config if config is not None else Config()
    settings = cfg.clusters
    multiplex = built if built is not None else cluster_graph(graph, cfg)
    weights = multiplex.weights(settings.weights)
    n = len(multiplex.nodes)
    ties = int((weights > 0).sum())
    if n == 0:
        frame = numbered_clusters(multiplex.customer_ids, np.zeros(0, np.int64))
        return ClusterResult(frame, 0.0, ties)
    network = LeidenGraph.build(n, multiplex.pairs, weights)
    start = connected_pieces(n, network.pairs, initial_membership(multiplex.customer_ids, previous))
    gamma = settings.resolution
    cold = network.leiden(gamma, settings.seed, settings.leiden_iterations)
    cold_quality = network.modularity(cold, gamma)
    floor = cold_quality - settings.keep_tolerance * abs(cold_quality)
    # First, changes at the grain of whole clusters: merges of previous clusters and new
    # customers joining them (Leiden on the graph of the start's clusters). They are small and
    # independent, so hysteresis can reject exactly the ones that would cost an id.
    merges = _cluster_merges(network, start, gamma, settings.seed, settings.warm_leiden_iterations)
    adoption = adopt_changes(
        network.pairs, network.edge_weights, start, merges, floor, gamma, settings.min_cluster_size
    )
    lost = adoption.ids_at_stake - adoption.ids_saved
    if adoption.quality < floor or lost > 0:
        # Not enough: Leiden also moves customers between clusters, which gains modularity
        # that can pay for putting back the clusters it would lose. Taken when it is needed
        # for the tolerance, or when it keeps more ids.
        fine = network.leiden(
            gamma, settings.seed, settings.warm_leiden_iterations, initial_membership=merges
        )
        repaired = restore_identities(
            network.pairs,
            network.edge_weights,
            start,
            fine,
            floor,
            gamma,
            settings.min_cluster_size,
        )
        if adoption.quality < floor or repaired.ids_at_stake - repaired.ids_saved < lost:
            adoption = repaired
    progress.log(
        f"clusters: warm start over {n} tied customers; {adoption.adopted} of "
        f"{adoption.changes} proposed changes adopted, {adoption.ids_saved} of "
        f"{adoption.ids_at_stake} cluster ids at stake kept (modularity {adoption.quality:.4f}, "
        f"cold start {cold_quality:.4f})"
    )
    frame = numbered_clusters(
        multiplex.customer_ids, adoption.membership, settings.min_cluster_size
    )
    return ClusterResult(frame, network.modularity(adoption.membership), ties)


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
