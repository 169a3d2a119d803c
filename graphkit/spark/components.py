"""Connected components and stable numbering on Spark DataFrames.

GraphFrames' ``connectedComponents`` would serve, but its JARs do not resolve from the Maven
repository this project builds from (``docs/spark.md``), so components are computed here by the
alternating *large-star* / *small-star* joins of Kiveris et al., which need O(log^2 n) rounds
whatever the graph's diameter (plain min-label propagation needs one round per diameter step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# A safety valve far above the O(log^2 n) rounds the algorithm needs (about 30 at 1e9 nodes).
MAX_ROUNDS = 200


class ComponentsDidNotConvergeError(RuntimeError):
    """Large-star/small-star ran :data:`MAX_ROUNDS` rounds without settling."""


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node links its larger neighbours to the smallest of its closed neighbourhood.

    ``edges`` are distinct (u, v) with u > v; the result is too.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.union(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return (
        both.withColumn("m", smallest)
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("u"), F.col("m").alias("v"))
        .distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node links itself and its smaller neighbours to the smallest of them.

    ``edges`` are distinct (u, v) with u > v (every neighbour in ``v`` is smaller than ``u``);
    the result is too.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    linked = edges.withColumn("m", F.min("v").over(Window.partitionBy("u")))
    neighbours = linked.select(F.col("v").alias("u"), F.col("m").alias("v"))
    selves = linked.select("u", F.col("m").alias("v"))
    return neighbours.union(selves).where(F.col("u") != F.col("v")).distinct()


def connected_components(edges: DataFrame) -> DataFrame:
    """Connected components of an undirected graph given by its edges.

    Parameters:
        edges: columns ``u``, ``v`` (long node ids); direction, duplicates and self-loops are
            ignored.

    Returns: a DataFrame (``node``, ``component``) with one row per node that has an edge;
    ``component`` is the smallest node id of the node's component.

    Complexity: O(log^2 n) rounds of joins over O(E) rows (Kiveris et al. prove the bound for
    alternating large-star and small-star; in practice a handful of rounds). Each round is
    cut from the lineage by a local checkpoint, so plans stay small; the per-node minima are
    window aggregates, so a star step is one shuffle by node and one distinct.
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
    for _ in range(MAX_ROUNDS):
        after = _small_star(_large_star(current)).localCheckpoint()
        # The edge set is a star forest, one star per component centred on its smallest node,
        # exactly when it stops changing.
        changed = (
            after.withColumn("_after", F.lit(True))
            .join(current.withColumn("_before", F.lit(True)), ["u", "v"], "full_outer")
            .where(F.col("_after").isNull() | F.col("_before").isNull())
        )
        if changed.isEmpty():
            break
        current = after
    else:
        raise ComponentsDidNotConvergeError(f"no fixed point after {MAX_ROUNDS} rounds")
    centres = after.select(F.col("v").alias("node"), F.col("v").alias("component")).distinct()
    return after.select(F.col("u").alias("node"), F.col("v").alias("component")).union(centres)


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
