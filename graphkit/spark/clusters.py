"""Related-enterprise clusters on Spark: the multiplex as DataFrames, Leiden per component.

The ties and weights are those of :mod:`graphkit.analytics.clusters` (guarantee, shareholding
above the threshold, shared non-hub device, net transfers above the threshold; a pair's weight is
the sum of its layers' weights), built as joins. A modularity-maximising partition never puts two
connected components in one community, so the components of the positively weighted ties are
found on Spark and :func:`graphkit.analytics.clusters.leiden` (igraph) runs per component on the
executors. Global modularity at resolution gamma restricted to a component of total weight
``m_k`` is local modularity at resolution ``gamma * m_k / m`` (``m`` the whole graph's weight),
up to the positive factor ``m_k / m``; each component is solved with that resolution, so the
per-component optima add up to the global objective.

The partition is not bit-equal to the embedded engine's: igraph's Leiden visits vertices in a
seeded random order that depends on the vertex numbering of the whole graph. Modularity is the
contract (within 1% of the embedded engine's; ``tests/test_spark_clusters.py``).

A component of more than ``clusters.max_component_size`` tied customers is not sent to one
executor: it is split by a distributed first pass, solved per part and the parts' communities
merged by Leiden on their contraction (:mod:`graphkit.spark.cluster_split`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphkit.analytics.clusters import LAYERS, MEMBERSHIP_COLUMNS, ClusterResult
from graphkit.config import Config
from graphkit.spark.cluster_split import solve
from graphkit.spark.components import connected_components, ordered_ids
from graphkit.spark.rings import device_uses, to_polars
from graphkit.spark.tables import customer_accounts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def layer_pairs(tables: dict[str, DataFrame], config: Config) -> DataFrame:
    """(a, b, layer) for every tie, ``a <= b`` customer ids, each layer tying a pair once."""
    from pyspark.sql import functions as F

    def ordered(frame: DataFrame, x: str, y: str, layer: str) -> DataFrame:
        return frame.select(
            F.least(x, y).alias("a"), F.greatest(x, y).alias("b"), F.lit(layer).alias("layer")
        )

    cfg = config.clusters
    guarantee = ordered(tables["guarantees"], "guarantor_id", "borrower_id", "guarantee")
    shares = tables["shareholdings"].where(F.col("share") >= cfg.shareholding_threshold)
    shareholding = ordered(shares, "holder_id", "company_id", "shareholding")
    uses = device_uses(tables)
    users = uses.groupBy("device_id").agg(F.count("*").alias("n"))
    shared = uses.join(
        users.where((F.col("n") >= 2) & (F.col("n") <= config.rings.max_customers_per_device)),
        "device_id",
    ).select("device_id", "customer_id")
    other = shared.select("device_id", F.col("customer_id").alias("other"))
    device = ordered(
        shared.join(other, "device_id").where(F.col("customer_id") < F.col("other")),
        "customer_id",
        "other",
        "device",
    )
    owners = customer_accounts(tables)

    def owner(end: str, name: str) -> DataFrame:
        return owners.select(F.col("account_id").alias(end), F.col("owner_id").alias(name))

    moves = (
        tables["transfers"]
        .join(owner("src_account", "x"), "src_account")
        .join(owner("dst_account", "y"), "dst_account")
        .where(F.col("x") != F.col("y"))
    )
    net = (
        moves.select(
            F.least("x", "y").alias("a"),
            F.greatest("x", "y").alias("b"),
            F.when(F.col("x") < F.col("y"), F.col("amount")).otherwise(-F.col("amount")).alias("s"),
        )
        .groupBy("a", "b")
        .agg(F.abs(F.sum("s")).alias("net"))
        .where(F.col("net") > cfg.transfer_threshold)
        .select("a", "b", F.lit("transfer").alias("layer"))
    )
    return guarantee.union(shareholding).union(device).union(net).distinct()


def weighted_ties(tables: dict[str, DataFrame], config: Config) -> DataFrame:
    """(a, b, weight): every tied pair with the sum of its layers' weights (possibly 0)."""
    from pyspark.sql import functions as F

    weights = {name: float(config.clusters.weights.get(name, 0.0)) for name in LAYERS}
    weight = F.lit(0.0)
    for name, value in weights.items():
        weight = F.when(F.col("layer") == name, F.lit(value)).otherwise(weight)
    return layer_pairs(tables, config).groupBy("a", "b").agg(F.sum(weight).alias("weight"))


def cluster_frames(
    tables: dict[str, DataFrame], config: Config
) -> tuple[DataFrame, float, int, DataFrame]:
    """(customer_id, cluster_id, cluster_size) as a DataFrame, the partition's modularity
    (resolution 1, as the embedded engine reports it), the number of weighted ties, and the
    parts that components above ``clusters.max_component_size`` were split into (level,
    component, part, size; :mod:`graphkit.spark.cluster_split`)."""
    from pyspark.sql import functions as F

    ties = weighted_ties(tables, config).localCheckpoint()
    # Vertices numbered in customer_id order (one distributed sort), not by
    # monotonically_increasing_id, whose values follow the partitioning of the distinct: the
    # split's hashes of vertex ids (label propagation's turns, refinement's) must not change
    # from run to run, or neither does the partition of a split component.
    vertices = ordered_ids(
        ties.select(F.col("a").alias("customer_id"))
        .union(ties.select(F.col("b").alias("customer_id")))
        .distinct(),
        [F.col("customer_id")],
        "node",
        offset=0,
    ).localCheckpoint()
    positive = ties.where(F.col("weight") > 0)
    totals = positive.agg(F.sum("weight"), F.count("*")).first()
    total, tie_count = float(totals[0] or 0.0), int(totals[1])

    def node(end: str, name: str) -> DataFrame:
        return vertices.select(F.col("customer_id").alias(end), F.col("node").alias(name))

    edges = (
        positive.join(node("a", "u"), "a")
        .join(node("b", "v"), "b")
        .select(F.least("u", "v").alias("a"), F.greatest("u", "v").alias("b"), "weight")
        .localCheckpoint()
    )
    components = connected_components(edges.select(F.col("a").alias("u"), F.col("b").alias("v")))
    nodes = (
        vertices.join(components, "node", "left")
        .select(
            F.col("node").alias("id"),
            F.coalesce("component", "node").alias("component"),
            F.col("customer_id").alias("key"),
        )
        .localCheckpoint()
    )
    labels, parts = solve(nodes, edges, config.clusters, total)
    communities = (
        nodes.join(labels, "id")
        .select(F.col("key").alias("customer_id"), "component", F.col("label").alias("community"))
        .localCheckpoint()
    )
    modularity = _modularity(positive, communities, total)
    sizes = communities.groupBy("component", "community").agg(
        F.count("*").alias("cluster_size"), F.min("customer_id").alias("_first")
    )
    kept = sizes.where(F.col("cluster_size") >= config.clusters.min_cluster_size)
    numbered = ordered_ids(
        kept, [F.col("cluster_size").desc(), F.col("_first").asc()], "cluster_id"
    )
    membership = communities.join(numbered, ["component", "community"]).select(
        "customer_id", "cluster_id", F.col("cluster_size").cast("long")
    )
    return membership, modularity, tie_count, parts


def _modularity(ties: DataFrame, communities: DataFrame, total: float) -> float:
    """Newman modularity (resolution 1) of ``communities`` on the weighted ``ties``:
    sum over communities of L_c / m - (D_c / 2m)^2 (a self-tie adds its weight to L_c once and
    twice to D_c, igraph's convention)."""
    from pyspark.sql import functions as F

    if not total:
        return 0.0
    label = communities.select("customer_id", F.concat_ws(":", "component", "community").alias("c"))
    ends = ties.join(label.select(F.col("customer_id").alias("a"), F.col("c").alias("ca")), "a")
    ends = ends.join(label.select(F.col("customer_id").alias("b"), F.col("c").alias("cb")), "b")
    inside = (
        ends.where(F.col("ca") == F.col("cb"))
        .groupBy(F.col("ca").alias("c"))
        .agg(F.sum("weight").alias("inside"))
    )
    degree = (
        ends.select(F.col("ca").alias("c"), "weight")
        .union(ends.select(F.col("cb").alias("c"), "weight"))
        .groupBy("c")
        .agg(F.sum("weight").alias("degree"))
    )
    q = (
        degree.join(inside, "c", "left")
        .select(
            (F.coalesce("inside", F.lit(0.0)) / total - (F.col("degree") / (2 * total)) ** 2).alias(
                "q"
            )
        )
        .agg(F.sum("q"))
        .first()[0]
    )
    return float(q or 0.0)


def related_clusters_spark(tables: dict[str, DataFrame], config: Config) -> ClusterResult:
    """:func:`graphkit.analytics.clusters.related_clusters` on Spark, as a
    :class:`ClusterResult` (the clusters, not the graph, come to the driver)."""
    membership, modularity, ties, _ = cluster_frames(tables, config)
    frame = to_polars(membership, MEMBERSHIP_COLUMNS).sort("cluster_id", "customer_id")
    return ClusterResult(frame, modularity, ties)
