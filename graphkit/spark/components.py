"""Connected components and stable numbering on Spark DataFrames.

GraphFrames' ``connectedComponents`` would serve, but its JARs do not resolve from the Maven
repository this project builds from (``docs/spark.md``), so components are computed here by the
alternating *large-star* / *small-star* joins of Kiveris et al., which need O(log^2 n) rounds
whatever the graph's diameter (plain min-label propagation needs one round per diameter step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from graphkit.spark.grouped import timed

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# A safety valve far above the O(log^2 n) rounds the algorithm needs (about 30 at 1e9 nodes).
MAX_ROUNDS = 200
# Star rounds between convergence tests: a test is a job of its own, and a round past the fixed
# point changes nothing, so testing every other round halves the tests for at most one round.
CHECK_EVERY = 2
# Edge sets up to this size are solved in one task (scipy on one executor, a few hundred MB at
# the limit) rather than by O(log^2 n) rounds of shuffles, each a Spark job of fixed cost.
LOCAL_EDGES = 2_000_000
LOCAL_EDGES_CONF = "spark.graphkit.localComponentEdges"


class ComponentsDidNotConvergeError(RuntimeError):
    """Large-star/small-star ran :data:`MAX_ROUNDS` rounds without settling."""


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node links its larger neighbours to the smallest of its closed neighbourhood.

    ``edges`` are (u, v) with u > v; so is the result, which may repeat a pair (two nodes can
    send the same neighbour to the same minimum). Repeats change no minimum, so they are left
    to the next small-star's ``distinct`` instead of costing a shuffle of their own.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.union(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return (
        both.withColumn("m", smallest)
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("u"), F.col("m").alias("v"))
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node links itself and its smaller neighbours to the smallest of them.

    ``edges`` are (u, v) with u > v (every neighbour in ``v`` is smaller than ``u``); the result
    is too, without repeats.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    linked = edges.withColumn("m", F.min("v").over(Window.partitionBy("u")))
    neighbours = linked.select(F.col("v").alias("u"), F.col("m").alias("v"))
    selves = linked.select("u", F.col("m").alias("v"))
    return neighbours.union(selves).where(F.col("u") != F.col("v")).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """True when every larger end ``u`` has exactly one edge and no smaller end ``v`` is also a
    larger end: the edges are stars centred on their smallest node. The star steps keep each
    component's nodes connected, so then each star is one component (Kiveris et al.'s fixed
    point). One aggregation over the edges; no comparison with the previous round."""
    from pyspark.sql import functions as F

    ends = edges.select(F.col("u").alias("n"), F.lit(1).alias("out"), F.lit(0).alias("centre"))
    ends = ends.union(edges.select(F.col("v").alias("n"), F.lit(0), F.lit(1)))
    broken = (
        ends.groupBy("n")
        .agg(F.sum("out").alias("out"), F.max("centre").alias("centre"))
        .where((F.col("out") > 1) | ((F.col("out") == 1) & (F.col("centre") == 1)))
    )
    return broken.isEmpty()


def local_component_edges(spark: SparkSession) -> int:
    """:data:`LOCAL_EDGES`, or the session's ``spark.graphkit.localComponentEdges``."""
    return int(spark.conf.get(LOCAL_EDGES_CONF, str(LOCAL_EDGES)))


def _components_in_one_task(edges: DataFrame) -> DataFrame:
    """Components of a small edge set in one grouped map on one executor (scipy), one job
    instead of a few per star round. Same answer: ``component`` is the smallest node id."""
    from pyspark.sql import functions as F

    return (
        edges.withColumn("_one", F.lit(0))
        .groupBy("_one")
        .applyInArrow(timed("components", _one_task_kernel), "node long, component long")
    )


def _one_task_kernel(rows: pa.Table) -> pa.Table:
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    u = rows.column("u").to_numpy()
    v = rows.column("v").to_numpy()
    nodes, index = np.unique(np.concatenate([u, v]), return_inverse=True)
    count = len(nodes)
    adjacency = coo_matrix(
        (np.ones(len(u), dtype=np.int8), (index[: len(u)], index[len(u) :])), shape=(count, count)
    )
    _, labels = scipy_components(adjacency, directed=False)
    # nodes are sorted, so the first node seen of each label is its smallest.
    smallest = np.full(labels.max() + 1 if count else 0, -1, dtype=np.int64)
    first = np.unique(labels, return_index=True)[1]
    smallest[labels[first]] = nodes[first]
    return pa.table({"node": pa.array(nodes, pa.int64()), "component": smallest[labels]})


def connected_components(edges: DataFrame, local_edges: int | None = None) -> DataFrame:
    """Connected components of an undirected graph given by its edges.

    Parameters:
        edges: columns ``u``, ``v`` (long node ids); direction, duplicates and self-loops are
            ignored.
        local_edges: at most this many distinct edges are solved in one task
            (:func:`_components_in_one_task`); more by the distributed star rounds. Default:
            :func:`local_component_edges` (``--spark-conf spark.graphkit.localComponentEdges=N``;
            0 always runs the rounds).

    Returns: a DataFrame (``node``, ``component``) with one row per node that has an edge;
    ``component`` is the smallest node id of the node's component.

    Complexity: O(log^2 n) rounds of joins over O(E) rows (Kiveris et al. prove the bound for
    alternating large-star and small-star; in practice a handful of rounds). A round is three
    shuffles (the two per-node minima as window aggregates, one ``distinct``) and ends in a
    local checkpoint, which cuts the lineage; convergence is tested every
    :data:`CHECK_EVERY` rounds by one aggregation (:func:`_is_star_forest`).
    Reference: R. Kiveris, S. Lattanzi, V. Mirrokni, V. Rastogi, S. Vassilvitskii,
    *Connected Components in MapReduce and Beyond*, SoCC 2014.
    """
    from pyspark.sql import functions as F

    current = (
        edges.select(F.col("u").cast("long"), F.col("v").cast("long"))
        .where(F.col("u") != F.col("v"))
        .select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v"))
        .distinct()
        .localCheckpoint()
    )
    limit = local_component_edges(edges.sparkSession) if local_edges is None else local_edges
    if limit > 0 and current.count() <= limit:
        return _components_in_one_task(current)
    for rounds in range(1, MAX_ROUNDS + 1):
        current = _small_star(_large_star(current)).localCheckpoint()
        if rounds % CHECK_EVERY == 0 and _is_star_forest(current):
            break
    else:
        raise ComponentsDidNotConvergeError(f"no fixed point after {MAX_ROUNDS} rounds")
    centres = current.select(F.col("v").alias("node"), F.col("v").alias("component")).distinct()
    return current.select(F.col("u").alias("node"), F.col("v").alias("component")).union(centres)


def ordered_ids(frame: DataFrame, order: list[Column], name: str, offset: int = 1) -> DataFrame:
    """``frame`` with ``name``: offset, offset + 1, ... in the total order ``order``.

    The frame is range-partitioned by ``order``, numbered within each partition, and shifted by
    the sizes of the partitions before it (one small collect of one count per partition), so no
    single task sees every row. ``order`` must be total (no ties) for the ids to be stable.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ranked = (
        frame.orderBy(*order)
        .withColumn("_part", F.spark_partition_id())
        .withColumn("_local", F.row_number().over(Window.partitionBy("_part").orderBy(*order)))
        .localCheckpoint()
    )
    sizes = sorted(
        (row["_part"], row["count"]) for row in ranked.groupBy("_part").count().collect()
    )
    starts, running = [], offset - 1
    for part, count in sizes:
        starts.append((part, running))
        running += count
    spark = frame.sparkSession
    shift = spark.createDataFrame(starts, "_part int, _start long")
    return (
        ranked.join(F.broadcast(shift), "_part")
        .withColumn(name, (F.col("_start") + F.col("_local")).cast("long"))
        .drop("_part", "_local", "_start")
    )
