"""Round trips on Spark: weak components of the customer transfer graph, the kernel per component.

A round trip (:func:`graphkit.analytics.flows.round_trips`) is a time-ordered cycle of
transfers between customer-owned accounts; every transfer of it lies in one strongly, hence one
weakly, connected component of the account graph whose edges are the transfers between two
distinct customer-owned accounts. So those weak components are found on Spark
(:func:`graphkit.spark.components.connected_components`); each component's accounts' outgoing
transfers are grouped onto one executor and the embedded kernel runs there on a
:class:`~graphkit.analytics.flows.FlowIndex` built from plain arrays. The outgoing transfers to
accounts outside the component (merchants, accounts of no customer) go with it: the kernel's
per-hop cap (``max_expand_per_hop``) counts every transfer out of an account in the time range,
before it keeps those that can close a cycle, so the group must see them for the caps (and the
cycles they cut) to be the embedded run's.

Cycles are then numbered across components by the embedded order (first transfer's time, then
its id, then the length, then the transfer ids in order) and cut at ``max_cycles``. The result
equals the embedded one exactly, ``capped`` flag included, except in two places where the
embedded kernel's answer depends on how it batches start transfers (100,000 a batch): its
partial-cycle valve (:data:`~graphkit.analytics.flows.cycles.MAX_CYCLE_FRONTIER`, 2M partial
cycles per hop of a batch), and, once more than ``max_cycles`` cycles exist, a per-hop cap hit
only in a start batch the embedded kernel no longer opens (it stops at the batch that reaches
``max_cycles``), which the Spark flag counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from graphkit.analytics.flows import DrawdownArrays, FlowIndex, TransferArrays, round_trips
from graphkit.analytics.flows.cycles import empty_cycles
from graphkit.config import FlowsConfig
from graphkit.spark.components import connected_components, ordered_ids
from graphkit.spark.grouped import arrow_rows
from graphkit.spark.rings import to_polars
from graphkit.spark.tables import customer_accounts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_NAMES = pa.list_(pa.string())
# One row per cycle (``kind`` 0) and one per component (``kind`` 1: was a cap hit there).
GROUP_SCHEMA = pa.schema(
    [
        ("kind", pa.int32()),
        ("capped", pa.bool_()),
        ("first_ts", pa.int64()),
        ("first_id", pa.string()),
        ("start_account", pa.string()),
        ("customer_id", pa.string()),
        ("length", pa.int32()),
        ("transfer_ids", _NAMES),
        ("amount", pa.float64()),
        ("duration_us", pa.int64()),
    ]
)
GROUP_DDL = (
    "kind int, capped boolean, first_ts long, first_id string, start_account string, "
    "customer_id string, length int, transfer_ids array<string>, amount double, "
    "duration_us long"
)
CYCLE_COLUMNS = dict(empty_cycles().schema)


def component_round_trips(rows: pa.Table, config: FlowsConfig) -> pa.Table:
    """The grouped-map kernel: round trips of one component.

    ``rows``: the transfers out of the component's accounts (transfer_id, src, dst, amount,
    ts in epoch microseconds, src_owner, dst_owner: the owning customer or null). Returns
    :data:`GROUP_SCHEMA` rows: one per cycle the embedded kernel lists, and one with its cap
    flag.
    """
    frame = pl.from_arrow(rows)
    ends = pl.concat(
        [
            frame.select(pl.col("src").alias("account"), pl.col("src_owner").alias("owner")),
            frame.select(pl.col("dst").alias("account"), pl.col("dst_owner").alias("owner")),
        ]
    ).unique("account", keep="first")
    accounts = ends.sort("account").with_row_index("pos")
    customers = accounts.get_column("owner").drop_nulls().unique().sort()
    customer_pos = pl.DataFrame({"owner": customers}).with_row_index("cpos")
    accounts = accounts.join(customer_pos, on="owner", how="left", maintain_order="left")
    position = accounts.select("account", "pos")
    local = frame.join(position.rename({"account": "src", "pos": "s"}), on="src").join(
        position.rename({"account": "dst", "pos": "d"}), on="dst"
    )
    index = FlowIndex.from_arrays(
        sinks=np.zeros(accounts.height, dtype=bool),
        transfers=TransferArrays(
            src=local.get_column("s").to_numpy().astype(np.int64),
            dst=local.get_column("d").to_numpy().astype(np.int64),
            amount=local.get_column("amount").to_numpy(),
            ts=local.get_column("ts").to_numpy(),
            ids=local.get_column("transfer_id"),
        ),
        drawdowns=DrawdownArrays(
            account=np.zeros(0, dtype=np.int64),
            amount=np.zeros(0),
            ts=np.zeros(0, dtype=np.int64),
        ),
        account_ids=accounts.get_column("account"),
        owner_customer=accounts.get_column("cpos").fill_null(-1).to_numpy().astype(np.int64),
        customer_ids=customers,
    )
    cycles, capped = round_trips(
        index,
        window_days=config.cycle_window_days,
        max_length=config.cycle_max_length,
        max_cycles=config.max_cycles,
        max_expand_per_hop=config.max_expand_per_hop,
    )
    first_ts = frame.select("transfer_id", pl.col("ts").alias("first_ts"))
    listed = (
        cycles.with_columns(
            pl.lit(0, dtype=pl.Int32).alias("kind"),
            pl.lit(None, dtype=pl.Boolean).alias("capped"),
            pl.col("transfer_ids").list.first().alias("transfer_id"),
            pl.col("duration").dt.total_microseconds().alias("duration_us"),
        )
        .join(first_ts, on="transfer_id", how="left")
        .rename({"transfer_id": "first_id"})
    )
    status = pl.DataFrame(
        {"kind": [1], "capped": [capped]}, schema={"kind": pl.Int32, "capped": pl.Boolean}
    )
    out = pl.concat([listed.select(GROUP_SCHEMA.names), status], how="diagonal_relaxed")
    return arrow_rows(out, GROUP_SCHEMA)


def round_trip_frames(
    tables: dict[str, DataFrame], config: FlowsConfig
) -> tuple[DataFrame, DataFrame]:
    """(cycles, flags): every component's cycles (at most ``max_cycles`` each) numbered by
    ``cycle_id`` in the embedded order (nothing collected), and one ``capped`` row per
    component.

    Complexity: the components' joins over the transfers between customer accounts, then the
    embedded kernel per component on its accounts' outgoing transfers.
    """
    from pyspark.sql import functions as F

    owners = customer_accounts(tables)

    def owner(end: str, name: str) -> DataFrame:
        return owners.select(F.col("account_id").alias(end), F.col("owner_id").alias(name))

    transfers = (
        tables["transfers"]
        .select(
            "transfer_id",
            F.col("src_account").alias("src"),
            F.col("dst_account").alias("dst"),
            "amount",
            F.unix_micros("ts").alias("ts"),
        )
        .join(owner("src", "src_owner"), "src")
        .join(owner("dst", "dst_owner"), "dst", "left")
        .localCheckpoint()
    )
    between = transfers.where(F.col("dst_owner").isNotNull() & (F.col("src") != F.col("dst")))
    vertices = (
        between.select(F.col("src").alias("account"))
        .union(between.select(F.col("dst").alias("account")))
        .distinct()
        .withColumn("node", F.monotonically_increasing_id())
        .localCheckpoint()
    )

    def node(end: str, name: str) -> DataFrame:
        return vertices.select(F.col("account").alias(end), F.col("node").alias(name))

    edges = between.join(node("src", "u"), "src").join(node("dst", "v"), "dst").select("u", "v")
    component = vertices.join(connected_components(edges), "node").select(
        F.col("account").alias("src"), "component"
    )
    # A cycle needs two transfers between distinct account pairs: skip smaller components.
    kept = (
        between.join(component, "src")
        .groupBy("component")
        .agg(F.countDistinct("src", "dst").alias("pairs"))
        .where(F.col("pairs") >= 2)
        .select("component")
    )
    per_component = (
        transfers.join(component.join(kept, "component"), "src")
        .groupBy("component")
        .applyInArrow(lambda rows: component_round_trips(rows, config), GROUP_DDL)
        .localCheckpoint()
    )
    flags = per_component.where(F.col("kind") == 1).select("capped")
    listed = per_component.where(F.col("kind") == 0)
    order = [F.col(name).asc() for name in ("first_ts", "first_id", "length", "transfer_ids")]
    return ordered_ids(listed, order, "cycle_id").localCheckpoint(), flags


def round_trips_spark(
    tables: dict[str, DataFrame], config: FlowsConfig
) -> tuple[pl.DataFrame, bool]:
    """:func:`graphkit.analytics.flows.round_trips` on Spark: the same frame (cycle_id,
    start_account, customer_id, length, transfer_ids, amount, duration) and capped flag; the
    cycles, not the transfers, come to the driver."""
    from pyspark.sql import functions as F

    cycles, flags = round_trip_frames(tables, config)
    # Capped: a cap hit in some component (its per-hop caps, or more than max_cycles there),
    # or more than max_cycles in all.
    capped = bool(flags.agg(F.max(F.col("capped").cast("int"))).first()[0] or 0)
    capped = capped or cycles.count() > config.max_cycles
    kept = cycles.where(F.col("cycle_id") <= config.max_cycles).withColumn(
        "duration", F.col("duration_us")
    )
    frame = to_polars(kept, {**CYCLE_COLUMNS, "duration": pl.Int64})
    frame = frame.with_columns(pl.col("duration").cast(pl.Duration("us"))).sort("cycle_id")
    return frame, capped
