"""Guarantee circles on Spark: weak components on Spark, the embedded kernel per component.

Every strongly connected component, every cycle and every customer upstream of a circle lies in
one weakly connected component of the guarantee graph. So the weak components are found on Spark
(:func:`graphkit.spark.components.connected_components`), each component's guarantees and
members are grouped onto one executor, and :func:`graphkit.analytics.circles.guarantee_circles`
(the embedded kernel: SCCs, bounded cycles, reach) runs there. Circle ids are then numbered
across components by the embedded rule: 1.. by smallest member ``customer_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from graphkit.analytics.circles import (
    MEMBERSHIP_COLUMNS,
    SUMMARY_COLUMNS,
    CircleResult,
    guarantee_circles,
)
from graphkit.config import CirclesConfig
from graphkit.spark.components import connected_components, ordered_ids
from graphkit.spark.grouped import arrow_rows, group_graph, timed
from graphkit.spark.rings import to_polars

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_NAMES = pa.list_(pa.string())
GROUP_SCHEMA = pa.schema(
    [
        ("component", pa.int64()),
        ("first_member", pa.string()),
        ("size", pa.int64()),
        ("members", _NAMES),
        ("internal_amount", pa.float64()),
        ("cycles", pa.list_(_NAMES)),
        ("cycles_listed", pa.int64()),
        ("cycles_capped", pa.bool_()),
        ("defaulted_members", pa.int64()),
        ("defaulted_ids", _NAMES),
        ("reach", pa.int64()),
    ]
)
GROUP_DDL = (
    "component long, first_member string, size long, members array<string>, "
    "internal_amount double, cycles array<array<string>>, cycles_listed long, "
    "cycles_capped boolean, defaulted_members long, defaulted_ids array<string>, reach long"
)


def component_circles(rows: pa.Table, config: CirclesConfig) -> pa.Table:
    """The grouped-map kernel: circles of one weak component.

    ``rows`` holds the component's guarantees (``kind`` 0: guarantor, borrower, amount, input
    ``row``) and members (``kind`` 1: customer_id in ``guarantor``, ``defaulted``). Returns one
    row per circle with :data:`GROUP_SCHEMA` (circle ids are assigned later, across components).
    """
    frame = pl.from_arrow(rows)
    component = frame.get_column("component")[0]
    edges = frame.filter(pl.col("kind") == 0).sort("row")
    members = frame.filter(pl.col("kind") == 1)
    labelled = members.filter(pl.col("defaulted").is_not_null())
    graph = group_graph(
        {
            "customers": {
                "customer_id": members.get_column("guarantor").to_list(),
                "kind": ["person"] * members.height,
            },
            "labels": {
                "customer_id": labelled.get_column("guarantor").to_list(),
                "defaulted": labelled.get_column("defaulted").to_list(),
            },
            "guarantees": {
                "guarantor_id": edges.get_column("guarantor").to_list(),
                "borrower_id": edges.get_column("borrower").to_list(),
                "amount": edges.get_column("amount").to_list(),
            },
        }
    )
    result = guarantee_circles(graph, config.max_cycle_length, config.max_cycles_listed)
    summary = result.summary.with_columns(
        pl.lit(component, dtype=pl.Int64).alias("component"),
        pl.col("members").list.min().alias("first_member"),
    )
    return arrow_rows(summary, GROUP_SCHEMA)


def bucket_circles(rows: pa.Table, config: CirclesConfig) -> pa.Table:
    """The grouped-map kernel: circles of every weak component hashed to one bucket.

    Same rows as :func:`component_circles`, for many components at once. A circle, its cycles
    and its upstream reach never leave their weak component, so the embedded kernel on the
    disjoint union of the bucket's components gives each circle exactly as on its component
    alone (internal amounts still summed in input ``row`` order), while the RiskGraph is built
    once per bucket instead of once per component (about 45 ms each at 1M nodes, which was
    nearly all of this stage's time). Each circle's ``component`` is its first member's.
    """
    members = pl.from_arrow(rows).filter(pl.col("kind") == 1)
    result = component_circles(rows, config)
    if result.num_rows == 0:
        return result
    of = members.select(first_member="guarantor", component="component")
    summary = pl.from_arrow(result).drop("component").join(of, on="first_member", how="left")
    return arrow_rows(summary, GROUP_SCHEMA)


def circle_frames(tables: dict[str, DataFrame], config: CirclesConfig) -> DataFrame:
    """Per circle, :data:`graphkit.analytics.circles.SUMMARY_COLUMNS` as a DataFrame (nothing
    collected). Complexity: the components' joins, then the embedded kernel per component."""
    from pyspark.sql import functions as F

    # ``row`` keeps the input order: the kernel sums each circle's internal amount in it, so
    # the floating-point sums are the embedded engine's to the last bit.
    guarantees = (
        tables["guarantees"]
        .select(
            F.col("guarantor_id").alias("guarantor"),
            F.col("borrower_id").alias("borrower"),
            F.col("amount"),
            F.monotonically_increasing_id().alias("row"),
        )
        .localCheckpoint()
    )
    vertices = (
        guarantees.select(F.col("guarantor").alias("customer_id"))
        .union(guarantees.select(F.col("borrower").alias("customer_id")))
        .distinct()
        .withColumn("node", F.monotonically_increasing_id())
        .localCheckpoint()
    )
    edges = (
        guarantees.join(vertices.withColumnRenamed("customer_id", "guarantor"), "guarantor")
        .withColumnRenamed("node", "u")
        .join(vertices.withColumnRenamed("customer_id", "borrower"), "borrower")
        .select("u", F.col("node").alias("v"))
    )
    component = vertices.join(connected_components(edges), "node").select(
        "customer_id", "component"
    )
    # A circle needs two guarantees between distinct customers: skip smaller components.
    pairs = (
        guarantees.join(component.withColumnRenamed("customer_id", "guarantor"), "guarantor")
        .groupBy("component")
        .agg(F.countDistinct("guarantor", "borrower").alias("pairs"))
        .where(F.col("pairs") >= 2)
        .select("component")
    )
    labels = tables["labels"].select("customer_id", "defaulted")
    member_rows = (
        component.join(pairs, "component")
        .join(labels, "customer_id", "left")
        .select(
            "component",
            F.lit(1).alias("kind"),
            F.col("customer_id").alias("guarantor"),
            F.lit(None).cast("string").alias("borrower"),
            F.lit(None).cast("double").alias("amount"),
            F.lit(None).cast("long").alias("row"),
            "defaulted",
        )
    )
    edge_rows = (
        guarantees.join(component.withColumnRenamed("customer_id", "guarantor"), "guarantor")
        .join(pairs, "component")
        .select(
            "component",
            F.lit(0).alias("kind"),
            "guarantor",
            "borrower",
            "amount",
            "row",
            F.lit(None).cast("boolean").alias("defaulted"),
        )
    )
    # Many small components per task: the kernel's fixed cost is paid per bucket.
    buckets = max(tables["guarantees"].sparkSession.sparkContext.defaultParallelism * 4, 1)
    per_component = (
        member_rows.union(edge_rows)
        .withColumn("bucket", F.pmod(F.xxhash64("component"), F.lit(buckets)))
        .groupBy("bucket")
        .applyInArrow(timed("circles", lambda rows: bucket_circles(rows, config)), GROUP_DDL)
    )
    numbered = ordered_ids(per_component, [F.col("first_member").asc()], "circle_id")
    return numbered.select(*SUMMARY_COLUMNS)


def guarantee_circles_spark(tables: dict[str, DataFrame], config: CirclesConfig) -> CircleResult:
    """:func:`graphkit.analytics.circles.guarantee_circles` on Spark, as the same
    :class:`CircleResult` (the circles, not the graph, come to the driver)."""
    from pyspark.sql import functions as F

    summary = circle_frames(tables, config).localCheckpoint()
    membership = summary.select("circle_id", F.explode("members").alias("customer_id"))
    return CircleResult(
        to_polars(membership, MEMBERSHIP_COLUMNS).sort("circle_id", "customer_id"),
        to_polars(summary, SUMMARY_COLUMNS).sort("circle_id"),
    )
