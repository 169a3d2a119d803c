"""Leiden on Spark for components of any size: the rule that splits a component too large for one
executor, and the solver that applies it.

A component of at most ``clusters.max_component_size`` vertices is solved whole on one executor,
as before. A larger one is

1. **split** by a distributed first pass: weighted label propagation as DataFrame joins
   (:data:`LP_ROUNDS` rounds; in each round half of the vertices, chosen by a hash of vertex and
   round so that neighbours do not swap labels back and forth, take the label of largest summed
   tie weight among their neighbours, ties to their own label then the smallest; a label may
   only be taken while it has fewer than ``h = max // 2`` vertices). The vertices are then laid
   out in (component, label, vertex) order; a label is cut into pieces of at most ``h``
   consecutive vertices, and the pieces are packed into parts by their start offset in the
   component: part ``k`` holds the pieces starting in ``[k h, (k + 1) h)``, so a part has at
   most ``2h - 1 < max`` vertices (the last piece may run past ``(k + 1) h`` by ``h - 1``).
   Both the cut and the packing are position arithmetic after one distributed sort, so no task
   sees a whole component.
2. **solved per part** by igraph Leiden on an executor, with the *global* null model: each
   vertex weighs its strength in the whole graph (ties leaving the part included) and the
   resolution is ``gamma * S_part / 2m`` (igraph divides by the part's summed node weight
   ``S_part``), so each part's optimum is the global objective's restricted to that part.
3. **merged**: the communities found are contracted (a community becomes one vertex of its
   summed strength, with a self-tie of its internal weight) and the contraction is solved the
   same way: whole, by one Leiden task, when it has at most ``clusters.max_contraction_size``
   vertices (it is several times smaller than the component), split again when it does not, up
   to :data:`MAX_LEVELS` levels or until a level merges nothing.
4. **refined**: the merge moves whole communities only, so ``clusters.split_refine_rounds``
   rounds of distributed local moves follow (:func:`refine`): in each round half of the vertices
   (a hash of vertex and round) move to the neighbouring community of largest modularity gain,
   computed from joins of the ties with the labels and the communities' summed strengths; a
   round that does not raise the objective is dropped. Communities a move disconnected are then
   cut into their connected pieces (which never lowers modularity), so every community stays
   connected, as Leiden's are.

What this costs in modularity against solving each component whole is measured in
``docs/spark.md`` ("Clusters per component") and asserted with margin in
``tests/test_spark_clusters.py``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from graphkit.analytics.clusters import LeidenGraph
from graphkit.config import ClustersConfig
from graphkit.spark.components import connected_components, ordered_ids
from graphkit.spark.grouped import arrow_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Label-propagation rounds of the first pass; each is one join and two aggregations over the
# ties of the components being split.
LP_ROUNDS = 5
# Levels of split-solve-contract before a contraction that still does not fit is left as it is.
MAX_LEVELS = 4
LABEL_SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.int64())])
LABEL_DDL = "id long, label long"
WHOLE = -1  # the part of a component solved whole


def checkpoint(frame: DataFrame) -> DataFrame:
    """``frame`` computed once and cut from its lineage, *without* its size estimate.

    A local checkpoint keeps the estimate of the plan it cut, and an inner join's estimate is
    the product of its inputs'; label propagation joins each round's labels with the last's,
    so the estimate's digits grew fourfold a round and, a few rounds and one level later, the
    planner spent minutes multiplying BigIntegers. The checkpointed rows are re-wrapped as a
    DataFrame Spark knows no size of (its default estimate), so each round plans alike.
    """
    cut = frame.localCheckpoint()
    jdf = cut._jdf  # classic PySpark: the JVM Dataset
    fresh = jdf.sparkSession().createDataFrame(jdf.rdd(), jdf.schema())
    return type(cut)(fresh, cut.sparkSession)


def group_labels(rows: pa.Table, config: ClustersConfig, total_weight: float) -> pa.Table:
    """The grouped-map kernel: Leiden on one group (a whole component or one part).

    ``rows``: vertices (``kind`` 0: ``a`` the vertex id, ``weight`` its strength in the whole
    graph, ``key`` the order to number vertices in) and ties inside the group (``kind`` 1:
    ``a``, ``b``, ``weight``). A component solved whole at the first level (``mode`` 0) runs
    exactly as before the split existed: igraph's own node weights at resolution
    ``gamma * m_k / m``; every other group (``mode`` 1) uses the global strengths as node weights
    at resolution ``gamma * S / 2m``. Returns each vertex's community labelled by its smallest
    vertex id (unique across the whole graph).
    """
    frame = pl.from_arrow(rows)
    mode = int(frame.get_column("mode")[0])
    vertices = frame.filter(pl.col("kind") == 0).sort("key", "a")
    position = vertices.select(pl.col("a").alias("id")).with_row_index("pos")
    ties = frame.filter(pl.col("kind") == 1)
    local = (
        ties.join(position.rename({"id": "a", "pos": "pa"}), on="a")
        .join(position.rename({"id": "b", "pos": "pb"}), on="b")
        .sort("pa", "pb")
    )
    pairs = (
        np.column_stack([local.get_column("pa").to_numpy(), local.get_column("pb").to_numpy()])
        .astype(np.int64)
        .reshape(-1, 2)
    )
    weights = local.get_column("weight").to_numpy().astype(np.float64)
    built = LeidenGraph.build(vertices.height, pairs, weights)
    if mode == 0:
        share = float(weights.sum()) / total_weight if total_weight else 1.0
        membership = built.leiden(config.resolution * share, config.seed, config.leiden_iterations)
    else:
        strength = vertices.get_column("weight").to_numpy().astype(np.float64)
        scale = float(strength.sum()) / (2.0 * total_weight) if total_weight else 1.0
        membership = built.leiden(
            config.resolution * scale,
            config.seed,
            config.leiden_iterations,
            node_weights=strength,
        )
    out = pl.DataFrame({"id": position.get_column("id"), "community": membership})
    out = out.with_columns(pl.col("id").min().over("community").alias("label"))
    return arrow_rows(out, LABEL_SCHEMA)


def strengths(edges: DataFrame) -> DataFrame:
    """(id, strength): each vertex's summed tie weight, a self-tie counted twice."""
    from pyspark.sql import functions as F

    return (
        edges.select(F.col("a").alias("id"), "weight")
        .union(edges.select(F.col("b").alias("id"), "weight"))
        .groupBy("id")
        .agg(F.sum("weight").alias("strength"))
    )


def label_propagation(nodes: DataFrame, edges: DataFrame, cap: int) -> DataFrame:
    """(id, label) after :data:`LP_ROUNDS` rounds of size-capped weighted label propagation
    (module docstring, step 1). ``nodes`` (id), ``edges`` (a, b, weight); self-ties ignored."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.where(F.col("a") != F.col("b"))
    both = both.select(F.col("a").alias("u"), F.col("b").alias("v"), "weight").union(
        both.select(F.col("b").alias("u"), F.col("a").alias("v"), "weight")
    )
    labels = nodes.select("id", F.col("id").alias("label")).transform(checkpoint)
    for round_ in range(LP_ROUNDS):
        size = labels.groupBy("label").agg(F.count("*").alias("size"))
        current = labels.select(F.col("id").alias("u"), F.col("label").alias("cur"))
        score = (
            both.join(labels.select(F.col("id").alias("v"), "label"), "v")
            .groupBy("u", "label")
            .agg(F.sum("weight").alias("score"))
        )
        candidates = (
            score.join(size, "label")
            .join(current, "u")
            .where((F.col("size") < cap) | (F.col("label") == F.col("cur")))
        )
        order = Window.partitionBy("u").orderBy(
            F.col("score").desc(), (F.col("label") == F.col("cur")).desc(), F.col("label")
        )
        best = (
            candidates.withColumn("rank", F.row_number().over(order))
            .where(F.col("rank") == 1)
            .select("u", F.col("label").alias("best"))
        )
        turn = F.pmod(F.xxhash64("u", F.lit(round_)), F.lit(2)) == 0
        labels = (
            current.join(best, "u", "left")
            .select(
                F.col("u").alias("id"),
                F.when(turn & F.col("best").isNotNull(), F.col("best"))
                .otherwise(F.col("cur"))
                .alias("label"),
            )
            .transform(checkpoint)
        )
    return labels


def ties_inside(edges: DataFrame, labels: DataFrame) -> DataFrame:
    """The ties of ``edges`` (a, b, weight) whose two ends have the same label in ``labels``
    (id, label), with those labels (``la``, ``lb``): two joins of the E ties."""
    from pyspark.sql import functions as F

    return (
        edges.join(labels.select(F.col("id").alias("a"), F.col("label").alias("la")), "a")
        .join(labels.select(F.col("id").alias("b"), F.col("label").alias("lb")), "b")
        .where(F.col("la") == F.col("lb"))
    )


def partition_objective(
    edges: DataFrame, labels: DataFrame, strength: DataFrame, total: float, gamma: float
) -> float:
    """The communities' share of modularity at resolution ``gamma``: the sum over the
    communities of ``labels`` (id, label) of ``L_c / m - gamma (D_c / 2m)^2`` (``L_c`` the weight
    of ``edges`` (a, b, weight) inside, ``D_c`` the summed ``strength`` (id, strength))."""
    from pyspark.sql import functions as F

    inside = ties_inside(edges, labels).agg(F.sum("weight").alias("inside"))
    spread = (
        labels.join(strength, "id")
        .groupBy("label")
        .agg(F.sum("strength").alias("d"))
        .agg(F.sum(F.col("d") * F.col("d")).alias("spread"))
    )
    row = inside.crossJoin(spread).first()
    inner, squares = float(row["inside"] or 0.0), float(row["spread"] or 0.0)
    return inner / total - gamma * squares / (4.0 * total * total)


def refine(
    edges: DataFrame,
    labels: DataFrame,
    strength: DataFrame,
    total: float,
    gamma: float,
    rounds: int,
) -> DataFrame:
    """(id, label): ``labels`` improved by ``rounds`` rounds of distributed local moves, then
    each community cut into its connected pieces (module docstring, step 4).

    Parameters:
        edges: (a, b, weight) the ties among the vertices of ``labels`` (self-ties allowed: a
            contracted community's internal weight; they move with their vertex).
        labels: (id, label) a partition of those vertices.
        strength: (id, strength) each vertex's strength in the whole graph (self-ties twice).
        total: the whole graph's tie weight ``m``; gamma: the resolution.

    In a round, vertex ``u`` of strength ``k`` in community ``A`` may move to a neighbouring
    community ``B`` when ``k_uB - gamma k S_B / 2m > k_uA - gamma k (S_A - k) / 2m`` (``k_uX``
    its tie weight into ``X`` without self-ties, ``S_X`` the summed strengths: the modularity
    gain of the move); it takes the ``B`` of largest gain (ties: smallest label). Only the
    vertices a hash of (vertex, round) picks move, so two neighbours rarely swap; moves of one
    round are simultaneous, so their gains are estimates and the round is kept only if
    :func:`partition_objective` rose. Returns communities named by their smallest vertex id.

    Complexity: per round a join of the 2E arcs with the labels, three aggregations and one
    objective (two joins of the E ties); then the connected components of the ties inside
    communities (:func:`graphkit.spark.components.connected_components`).
    Reference: V. D. Blondel et al., *Fast unfolding of communities in large networks*, J. Stat.
    Mech. (2008) P10008 (the local-moving gain); V. A. Traag, L. Waltman, N. J. van Eck, *From
    Louvain to Leiden*, Sci. Rep. 9, 5233 (2019) (connected communities).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    arcs = edges.where(F.col("a") != F.col("b"))
    arcs = (
        arcs.select(F.col("a").alias("u"), F.col("b").alias("v"), "weight")
        .union(arcs.select(F.col("b").alias("u"), F.col("a").alias("v"), "weight"))
        .transform(checkpoint)
    )
    k = strength.select(F.col("id").alias("u"), F.col("strength").alias("k"))
    scale = gamma / (2.0 * total)
    current = labels.transform(checkpoint)
    score = partition_objective(edges, current, strength, total, gamma)
    for round_ in range(rounds):
        sums = (
            current.join(strength, "id")
            .groupBy("label")
            .agg(F.sum("strength").alias("s"))
            .transform(checkpoint)
        )
        tie = (
            arcs.join(current.select(F.col("id").alias("v"), "label"), "v")
            .groupBy("u", "label")
            .agg(F.sum("weight").alias("kin"))
        )
        mine = (
            current.select(F.col("id").alias("u"), F.col("label").alias("cur"))
            .join(k, "u")
            .join(sums.select(F.col("label").alias("cur"), F.col("s").alias("s_cur")), "cur")
        )
        own = tie.join(mine.select("u", "cur"), "u").where(F.col("label") == F.col("cur"))
        stay = mine.join(own.select("u", F.col("kin").alias("k_own")), "u", "left").select(
            "u",
            "cur",
            "k",
            (
                F.coalesce("k_own", F.lit(0.0))
                - F.lit(scale) * F.col("k") * (F.col("s_cur") - F.col("k"))
            ).alias("stay"),
        )
        turn = F.pmod(F.xxhash64("u", F.lit(round_), F.lit("refine")), F.lit(2)) == 0
        gains = (
            tie.join(stay.where(turn), "u")
            .where(F.col("label") != F.col("cur"))
            .join(sums, "label")
            .select(
                "u",
                "label",
                "stay",
                (F.col("kin") - F.lit(scale) * F.col("k") * F.col("s")).alias("gain"),
            )
            .where(F.col("gain") > F.col("stay") + 1e-12 * F.abs(F.col("stay")) + 1e-15)
        )
        order = Window.partitionBy("u").orderBy(F.col("gain").desc(), F.col("label"))
        best = (
            gains.withColumn("rank", F.row_number().over(order))
            .where(F.col("rank") == 1)
            .select(F.col("u").alias("id"), F.col("label").alias("to"))
        )
        moved = (
            current.join(best, "id", "left")
            .select("id", F.coalesce("to", "label").alias("label"))
            .transform(checkpoint)
        )
        moved_score = partition_objective(edges, moved, strength, total, gamma)
        if moved_score > score + 1e-12 * abs(score):
            current, score = moved, moved_score
    inside = (
        ties_inside(edges, current)
        .where(F.col("a") != F.col("b"))
        .select(F.col("a").alias("u"), F.col("b").alias("v"))
    )
    pieces = connected_components(inside)
    return (
        current.select("id")
        .join(pieces.select(F.col("node").alias("id"), "component"), "id", "left")
        .select("id", F.coalesce("component", "id").alias("label"))
        .transform(checkpoint)
    )


def split_parts(nodes: DataFrame, edges: DataFrame, max_size: int) -> DataFrame:
    """(id, part): the first pass (module docstring, step 1) over the vertices ``nodes``
    (id, component) of components to split and their ``edges`` (a, b, weight). Every part has
    fewer than ``max_size`` vertices (``max_size >= 2``)."""
    from pyspark.sql import functions as F

    h = max(max_size // 2, 1)
    labels = label_propagation(nodes.select("id"), edges, h)
    placed = ordered_ids(
        nodes.join(labels, "id"),
        [F.col("component").asc(), F.col("label").asc(), F.col("id").asc()],
        "position",
        offset=0,
    ).transform(checkpoint)
    label_start = placed.groupBy("component", "label").agg(F.min("position").alias("ls"))
    component_start = placed.groupBy("component").agg(F.min("position").alias("cs"))
    piece_start = F.col("ls") + F.floor((F.col("position") - F.col("ls")) / h) * h
    return (
        placed.join(label_start, ["component", "label"])
        .join(component_start, "component")
        .select("id", F.floor((piece_start - F.col("cs")) / h).cast("long").alias("part"))
    )


def solve(
    nodes: DataFrame,
    edges: DataFrame,
    config: ClustersConfig,
    total: float,
    level: int = 0,
) -> tuple[DataFrame, DataFrame]:
    """Communities of a weighted graph whose components may be too large for one executor.

    Parameters:
        nodes: (id long, component long, key string or null: the order an executor numbers a
            whole component's vertices in).
        edges: (a, b, weight) positive ties, ``a <= b``, both ends in one component.
        config: the clusters settings (``max_component_size``, resolution, seed, iterations).
        total: the whole graph's tie weight ``m`` (the null model's).
        level: 0 for the input graph, then one more per contraction.

    Returns: ``(labels, parts)``: (id, label), each vertex's community named by its smallest
    vertex id; and (level, component, part, size) for every part solved on its own.

    Complexity: components at most ``max_component_size``: one grouped map, Leiden per
    component. Larger ones: :data:`LP_ROUNDS` joins over their ties, one distributed sort, Leiden
    per part, the contraction's aggregations, then the same on the contraction.
    """
    from pyspark.sql import functions as F

    cap = config.max_component_size
    # The components to split are few (each has more than ``cap`` vertices): their ids and
    # sizes come to the driver.
    large_sizes = dict(
        nodes.groupBy("component")
        .agg(F.count("*").alias("n"))
        .where(F.col("n") > cap)
        .select("component", "n")
        .collect()
    )
    strength = strengths(edges)
    parts = big_nodes = big_edges = None
    if large_sizes:
        spark = nodes.sparkSession
        large = F.broadcast(spark.createDataFrame([(c,) for c in large_sizes], "component long"))
        big_nodes = nodes.join(large, "component").select("id", "component").transform(checkpoint)
        in_big = big_nodes.select(F.col("id").alias("a"))
        big_edges = edges.join(in_big, "a").transform(checkpoint)
        parts = split_parts(big_nodes, big_edges, cap)
    placed = nodes.join(strength, "id", "left")
    if parts is None:
        placed = placed.withColumn("part", F.lit(WHOLE).cast("long"))
    else:
        placed = placed.join(parts, "id", "left").withColumn(
            "part", F.coalesce("part", F.lit(WHOLE).cast("long"))
        )
    placed = placed.withColumn(
        "mode", F.when((F.col("part") == WHOLE) & F.lit(level == 0), 0).otherwise(1)
    ).transform(checkpoint)
    vertex_rows = placed.select(
        "component",
        "part",
        "mode",
        F.lit(0).alias("kind"),
        F.col("id").alias("a"),
        F.lit(None).cast("long").alias("b"),
        F.coalesce("strength", F.lit(0.0)).alias("weight"),
        F.col("key"),
    )
    where = placed.select("id", "component", "part", "mode")
    tie_rows = (
        edges.join(where.withColumnRenamed("id", "a"), "a")
        .join(where.select(F.col("id").alias("b"), F.col("part").alias("part_b")), "b")
        .where(F.col("part") == F.col("part_b"))
        .select(
            "component",
            "part",
            "mode",
            F.lit(1).alias("kind"),
            "a",
            "b",
            "weight",
            F.lit(None).cast("string").alias("key"),
        )
    )
    labels = (
        vertex_rows.union(tie_rows)
        .groupBy("component", "part")
        .applyInArrow(lambda rows: group_labels(rows, config, total), LABEL_DDL)
        .transform(checkpoint)
    )
    split_sizes = (
        placed.where(F.col("part") != WHOLE)
        .groupBy("component", "part")
        .agg(F.count("*").alias("size"))
        .select(F.lit(level).alias("level"), "component", "part", "size")
    )
    if parts is None or big_nodes is None or big_edges is None:
        return labels, split_sizes.transform(checkpoint)
    # Merge: contract the split components' communities and solve the contraction. Every frame
    # passed down is checkpointed: the planner's size estimates over a lineage of nested joins
    # grow as products (it spent minutes multiplying BigIntegers before this).
    big_labels = labels.join(big_nodes, "id").transform(checkpoint)
    super_nodes = (
        big_labels.select(
            F.col("label").alias("id"), "component", F.lit(None).cast("string").alias("key")
        )
        .distinct()
        .transform(checkpoint)
    )
    if level + 1 >= MAX_LEVELS or super_nodes.count() >= sum(large_sizes.values()):
        return labels, split_sizes.transform(checkpoint)
    name = big_labels.select("id", "label")
    super_edges = (
        big_edges.join(name.select(F.col("id").alias("a"), F.col("label").alias("la")), "a")
        .join(name.select(F.col("id").alias("b"), F.col("label").alias("lb")), "b")
        .groupBy(F.least("la", "lb").alias("a"), F.greatest("la", "lb").alias("b"))
        .agg(F.sum("weight").alias("weight"))
        .transform(checkpoint)
    )
    # The contraction is solved whole up to ``max_contraction_size`` vertices (module docstring,
    # step 3), split again above it.
    coarse = dataclasses.replace(config, max_component_size=config.max_contraction_size)
    merged, deeper = solve(super_nodes, super_edges, coarse, total, level + 1)
    relabelled = big_labels.join(
        merged.select(F.col("id").alias("label"), F.col("label").alias("to")), "label"
    ).select("id", F.col("to").alias("label"))
    if config.split_refine_rounds > 0:
        relabelled = refine(
            big_edges,
            relabelled.transform(checkpoint),
            strength.join(big_nodes.select("id"), "id"),
            total,
            config.resolution,
            config.split_refine_rounds,
        )
    kept = labels.join(big_nodes.select("id"), "id", "left_anti")
    return kept.union(relabelled).transform(checkpoint), split_sizes.union(deeper).transform(
        checkpoint
    )
