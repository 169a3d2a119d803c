"""Device-sharing rings on Spark: the rule of :mod:`graphkit.analytics.rings`, as joins.

Same definitions as the embedded engine: a customer uses a device it is linked to or drew money
from; a device with ``k <= n <= m`` distinct customers is shared, one with ``n > m`` a hub that
joins nobody; a ring is a connected component of customers and shared devices, numbered 1.. by
size (largest first), then by smallest member ``customer_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from graphkit.analytics.rings import HUB_COLUMNS, RING_COLUMNS, RingResult
from graphkit.config import RingsConfig
from graphkit.spark.components import connected_components, ordered_ids

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def device_uses(tables: dict[str, DataFrame]) -> DataFrame:
    """Distinct (customer_id, device_id) use pairs from device links and drawdowns."""
    from pyspark.sql import functions as F

    links = tables["device_links"].select("customer_id", "device_id")
    draws = (
        tables["drawdowns"]
        .where(F.col("device_id").isNotNull())
        .join(tables["credit_lines"].select("line_id", "customer_id"), "line_id")
        .select("customer_id", "device_id")
    )
    return links.union(draws).where(F.col("customer_id").isNotNull()).distinct()


def ring_frames(tables: dict[str, DataFrame], config: RingsConfig) -> tuple[DataFrame, DataFrame]:
    """Rings and hubs as DataFrames: (ring_id, customer_id, ring_size, shared_devices) and
    (device_id, customers). Nothing is collected.

    Complexity: a few shuffles over the P use pairs plus :func:`connected_components` over the
    shared pairs.
    """
    from pyspark.sql import functions as F

    uses = device_uses(tables)
    users = uses.groupBy("device_id").agg(F.count("*").alias("customers"))
    hubs = users.where(F.col("customers") > config.max_customers_per_device)
    shared = uses.join(
        users.where(
            (F.col("customers") >= config.min_customers_per_device)
            & (F.col("customers") <= config.max_customers_per_device)
        ).select("device_id"),
        "device_id",
    ).localCheckpoint()
    # One long id per vertex of the customer-device graph, fixed by a checkpoint (the ids of
    # monotonically_increasing_id depend on partitioning and must not be recomputed).
    vertices = (
        shared.select(F.lit(0).alias("kind"), F.col("customer_id").alias("key"))
        .union(shared.select(F.lit(1).alias("kind"), F.col("device_id").alias("key")))
        .distinct()
        .withColumn("node", F.monotonically_increasing_id())
        .localCheckpoint()
    )
    customers = vertices.where("kind = 0").select(F.col("key").alias("customer_id"), "node")
    devices = vertices.where("kind = 1").select(F.col("key").alias("device_id"), "node")
    edges = (
        shared.join(customers, "customer_id")
        .withColumnRenamed("node", "u")
        .join(devices, "device_id")
        .select("u", F.col("node").alias("v"))
    )
    component = connected_components(edges)
    members = (
        customers.join(component, "node")
        .join(
            shared.groupBy("customer_id").agg(F.count("*").alias("shared_devices")), "customer_id"
        )
        .select("customer_id", "component", "shared_devices")
    )
    rings = members.groupBy("component").agg(
        F.count("*").alias("ring_size"), F.min("customer_id").alias("_first")
    )
    numbered = ordered_ids(rings, [F.col("ring_size").desc(), F.col("_first").asc()], "ring_id")
    membership = members.join(numbered.select("component", "ring_id", "ring_size"), "component")
    return (
        membership.select(
            "ring_id",
            "customer_id",
            F.col("ring_size").cast("long"),
            F.col("shared_devices").cast("long"),
        ),
        hubs.select("device_id", F.col("customers").cast("long")),
    )


def device_rings(tables: dict[str, DataFrame], config: RingsConfig) -> RingResult:
    """:func:`graphkit.analytics.rings.device_rings` on Spark, returned as the same
    :class:`RingResult` (the results, not the graph, come to the driver)."""
    membership, hubs = ring_frames(tables, config)
    return RingResult(
        to_polars(membership, RING_COLUMNS).sort("ring_id", "customer_id"),
        to_polars(hubs, HUB_COLUMNS).sort(["customers", "device_id"], descending=[True, False]),
    )


def to_polars(frame: DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A result DataFrame as a polars frame with ``schema`` (its columns, in its order)."""
    table = frame.select(*schema).toArrow()
    return pl.from_arrow(table).cast(schema) if table.num_rows else pl.DataFrame(schema=schema)
