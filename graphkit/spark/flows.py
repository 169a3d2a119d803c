"""Fund-flow tracing on Spark: reach by hop layers, amounts by the embedded replay.

Definitions are those of :mod:`graphkit.analytics.flows` (ARCHITECTURE section 5).

*Buckets* (the default strategy of :func:`flow_frames`). Drawdowns are sliced by time into
buckets; each bucket's drawdowns and the transfers their taint may use are grouped onto one
executor, where :func:`graphkit.analytics.flows.trace_flows` (the embedded replay: amounts,
minimum hops, evidence paths and flags) runs on that small graph. Which transfers: a bucket
walks as one (:func:`graphkit.spark.flow_ranges.bucket_reach`), from its drawdowns' accounts at
the earliest of their times, with the latest window end of the bucket as its deadline, for
fewer than ``H`` hops, each hop answered by ranges over every account's transfers sorted by
time; the transfers out of the accounts it reaches, inside [its earliest arrival there, its
deadline], hold every transfer any of its drawdowns can move. A transfer that is in a bucket
for another drawdown's sake leaves a drawdown's result unchanged: under the ``first`` policy it
moves none of that drawdown's taint, and the replay orders events by time and id, which a
subset keeps. No row per (drawdown, account) is shuffled: the per-drawdown work is the replay's.

*Per-drawdown hop layers* (:func:`hop_layers`, strategies ``range`` and ``join``, kept to
measure against). From each drawdown (``a0`` at ``t0``) the frontier of (drawdown, account,
earliest arrival) meets the transfers out of each account at or after the arrival and within
``t0 + W``, at most ``H`` times. A row is kept only when it arrives earlier than any arrival at
that (drawdown, account) so far: a time-respecting walk of ``h`` hops to ``v`` at time ``t`` is
then always dominated by a kept row of at most ``h`` hops and no later time, so the first hop
whose join reaches a sink is ``min_hops_to_banned`` exactly (sinks do not forward). Its rows
grow with the reached (drawdown, account) pairs, faster than the network where busy accounts
gather many drawdowns' money.

The ``fifo`` and ``proportional`` policies read balances rebuilt over every event of an
account, which a bucket does not hold; the Spark engine refuses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from graphkit.analytics.flows import trace_flows
from graphkit.analytics.flows.index import US_PER_DAY
from graphkit.config import FlowsConfig
from graphkit.spark.flow_ranges import (
    PART,
    bucket_reach,
    by_account_part,
    improved,
    time_buckets,
    window_moves,
    window_used,
)
from graphkit.spark.grouped import arrow_rows, group_graph, timed

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SPARK_POLICIES = ("first",)
SINK_OWNER = "__banned_sink__"
SINK_SECTOR = "__banned__"


class UnsupportedPolicyError(ValueError):
    """A flow policy the Spark engine cannot replay exactly."""


def _paths_type() -> pa.DataType:
    return pa.list_(
        pa.struct(
            [
                ("path_rank", pa.int32()),
                ("hops", pa.int32()),
                ("transfer_ids", pa.list_(pa.string())),
                ("sink_account", pa.string()),
                ("amount", pa.float64()),
            ]
        )
    )


def bucket_schema(max_hops: int) -> tuple[pa.Schema, str]:
    """Arrow schema and Spark DDL of the rows the amount kernel returns, one per drawdown."""
    fields = [
        ("drawdown_id", pa.string()),
        ("banned_amount", pa.float64()),
        ("banned_amount_3plus", pa.float64()),
        ("banned_share", pa.float64()),
        ("kernel_min_hops", pa.int32()),
        *[(f"banned_hop_{h}", pa.float64()) for h in range(max_hops + 1)],
        ("capped", pa.bool_()),
        ("paths", _paths_type()),
    ]
    ddl = ", ".join(
        [
            "drawdown_id string, banned_amount double, banned_amount_3plus double",
            "banned_share double, kernel_min_hops int",
            *[f"banned_hop_{h} double" for h in range(max_hops + 1)],
            "capped boolean",
            "paths array<struct<path_rank:int, hops:int, transfer_ids:array<string>, "
            "sink_account:string, amount:double>>",
        ]
    )
    return pa.schema(fields), ddl


def _sink_accounts(tables: dict[str, DataFrame]) -> DataFrame:
    """account_id of every account owned by a merchant in a banned sector."""
    from pyspark.sql import functions as F

    banned = tables["sectors"].where(F.coalesce(F.col("banned"), F.lit(False))).select("sector")
    merchants = (
        tables["merchants"].join(banned, "sector").select(F.col("merchant_id").alias("owner_id"))
    )
    return tables["accounts"].join(merchants, "owner_id").select("account_id").distinct()


def flow_inputs(tables: dict[str, DataFrame], config: FlowsConfig) -> tuple[DataFrame, DataFrame]:
    """(drawdowns, transfers) as the joins use them: times in epoch microseconds, sink flags."""
    from pyspark.sql import functions as F

    sinks = _sink_accounts(tables).withColumn("sink", F.lit(True))
    window = round(config.window_days * US_PER_DAY)
    drawdowns = (
        tables["drawdowns"]
        .join(tables["credit_lines"].select("line_id", "customer_id"), "line_id", "left")
        .join(
            sinks.withColumnRenamed("account_id", "a0"), F.col("account_id") == F.col("a0"), "left"
        )
        .select(
            "drawdown_id",
            "line_id",
            "customer_id",
            F.col("account_id").alias("a0"),
            "amount",
            "ts",
            F.unix_micros("ts").alias("t0"),
            (F.unix_micros("ts") + F.lit(window)).alias("end"),
            F.coalesce(F.col("sink"), F.lit(False)).alias("a0_sink"),
        )
    )
    transfers = (
        tables["transfers"]
        .join(sinks.withColumnRenamed("account_id", "dst_account"), "dst_account", "left")
        .select(
            "transfer_id",
            F.col("src_account").alias("src"),
            F.col("dst_account").alias("dst"),
            "amount",
            "ts",
            F.unix_micros("ts").alias("t"),
            F.coalesce(F.col("sink"), F.lit(False)).alias("dst_sink"),
        )
    )
    return drawdowns, transfers


STRATEGIES = ("range", "join")


def _moves(frontier: DataFrame, transfers: DataFrame, strategy: str, parts: int) -> DataFrame:
    """One hop's (drawdown_id, account, t, end, sink) rows: by a range per arrival
    (``range``), or by the equi-join on the account filtered on time (``join``, the baseline)."""
    from pyspark.sql import functions as F

    if strategy == "range":
        return window_moves(frontier, transfers, parts, "drawdown_id")
    return frontier.join(
        transfers,
        (frontier.account == transfers.src)
        & (transfers.t >= frontier.t)
        & (transfers.t <= frontier.end),
    ).select(
        "drawdown_id",
        F.col("dst").alias("account"),
        transfers.t,
        "end",
        F.col("dst_sink").alias("sink"),
    )


def hop_layers(
    drawdowns: DataFrame,
    transfers: DataFrame,
    max_hops: int,
    strategy: str = "range",
    parts: int = 8,
) -> tuple[DataFrame, DataFrame]:
    """The hop-layered time-respecting joins.

    Parameters
    ----------
    drawdowns, transfers : DataFrame
        As :func:`flow_inputs` returns them (``transfers`` may already be partitioned by
        :func:`~graphkit.spark.flow_ranges.by_account_part` with ``parts``).
    max_hops : int
        Hops ``H`` to follow.
    strategy : "range" or "join"
        ``range``: each frontier row's next hop is answered by a range over its account's
        transfers sorted by time (:func:`~graphkit.spark.flow_ranges.window_moves`);
        ``join``: the equi-join on the account filtered on time, kept as the baseline the
        range is measured against (it meets every arrival at an account with every transfer
        out of it).
    parts : int
        Account parts of the ``range`` cogroups.

    Returns
    -------
    ``(min_hops, holders)``: (drawdown_id, min_hops_to_banned) for every drawdown that reaches
    a sink within ``max_hops`` hops, and (drawdown_id, account, t, end) for every account that
    can hold the drawdown's taint in a layer below ``max_hops`` (``a0`` included), ``t`` its
    earliest arrival there.

    Complexity
    ----------
    At most ``max_hops`` hops; the frontier holds only (drawdown, account) rows whose arrival
    improved. A hop costs, per account, O((A + T) log(A + T) + P log P) with ``range`` for A
    arrivals, T transfers out and P (arrival, transfer) pairs inside a window, against O(A T)
    with ``join``.
    """
    from pyspark.sql import functions as F

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "range" and PART not in transfers.columns:
        transfers = by_account_part(transfers, parts)
    hits = drawdowns.where("a0_sink").select("drawdown_id", F.lit(0).alias("hop"))
    frontier = (
        drawdowns.where(~F.col("a0_sink"))
        .select("drawdown_id", F.col("a0").alias("account"), F.col("t0").alias("t"), "end")
        .localCheckpoint()
    )
    best = frontier
    for hop in range(1, max_hops + 1):
        moves = _moves(frontier, transfers, strategy, parts)
        # One checkpoint per hop holds both the sinks it reaches and the next frontier, so the
        # hop's join runs once (not again when the hits are finally aggregated).
        arrivals = (
            moves.groupBy("drawdown_id", "account")
            .agg(F.min("t").alias("t"), F.first("end").alias("end"), F.max("sink").alias("sink"))
            .localCheckpoint()
        )
        hits = hits.union(arrivals.where("sink").select("drawdown_id", F.lit(hop).alias("hop")))
        if hop == max_hops:
            break
        frontier, best = improved(arrivals.where(~F.col("sink")).drop("sink"), best, "drawdown_id")
    min_hops = hits.groupBy("drawdown_id").agg(F.min("hop").cast("int").alias("min_hops_to_banned"))
    return min_hops, best.select("drawdown_id", "account", "t", "end")


def used_transfers(
    holders: DataFrame, transfers: DataFrame, strategy: str = "range", parts: int = 8
) -> DataFrame:
    """(bucket, transfer columns): each transfer a bucket's replay may use, once per bucket.

    ``holders``: (drawdown_id, bucket, account, t, t0, end), the rows of :func:`hop_layers`
    with the drawdown's bucket and time ``t0``. ``range``: a transfer is used by a bucket when
    it leaves a holder account of one of its drawdowns inside ``[t, end]``; under the ``first``
    policy no transfer before the earliest arrival of a drawdown's money at an account can
    carry it (the replay's walks are time-respecting, so they arrive there no earlier than the
    hop layers' earliest arrival). ``join`` (the baseline) keeps every transfer out of a holder
    inside ``[t0, end]``, by the equi-join on the account, and then deduplicates. ``parts`` as
    for :func:`hop_layers`.

    Complexity: ``range`` finds each transfer's windows per (bucket, account) by binary search,
    O((W + T) log(W + T) + T b log W) per part for W windows, T transfers and b buckets holding
    windows at one account; ``join`` meets every window with every transfer out of its account.
    """
    if strategy == "range":
        if PART not in transfers.columns:
            transfers = by_account_part(transfers, parts)
        return window_used(holders, transfers, parts)
    columns = [c for c in transfers.columns if c != PART]
    return (
        holders.join(
            transfers,
            (holders.account == transfers.src)
            & (transfers.t >= holders.t0)
            & (transfers.t <= holders.end),
        )
        .select("bucket", *[transfers[c] for c in columns])
        .distinct()
    )


def bucket_flows(rows: pa.Table, config: FlowsConfig) -> pa.Table:
    """The grouped-map kernel: trace one bucket of drawdowns with the embedded engine.

    ``rows``: drawdowns (``kind`` 0) and the transfers their taint may use (``kind`` 1), with the
    sink flag of every account they touch. Returns one row per drawdown (:func:`bucket_schema`).
    """
    frame = pl.from_arrow(rows)
    draws = frame.filter(pl.col("kind") == 0)
    moves = frame.filter(pl.col("kind") == 1)
    accounts = pl.concat(
        [
            draws.select(account_id="dst", sink="dst_sink"),
            moves.select(account_id="src", sink="src_sink"),
            moves.select(account_id="dst", sink="dst_sink"),
        ]
    ).unique("account_id")
    customers = draws.get_column("customer_id").unique()
    graph = group_graph(
        {
            "customers": {"customer_id": customers.to_list(), "kind": ["person"] * len(customers)},
            "credit_lines": draws.select(
                line_id="src", customer_id="customer_id", limit=pl.lit(1.0)
            ).unique("line_id"),
            "sectors": {"sector": [SINK_SECTOR], "banned": [True]},
            "merchants": {"merchant_id": [SINK_OWNER], "sector": [SINK_SECTOR]},
            "accounts": accounts.select(
                "account_id",
                owner_id=pl.when(pl.col("sink")).then(pl.lit(SINK_OWNER)),
            ),
            "drawdowns": draws.select(
                drawdown_id="id", line_id="src", account_id="dst", amount="amount", ts="ts"
            ),
            "transfers": moves.select(
                transfer_id="id", src_account="src", dst_account="dst", amount="amount", ts="ts"
            ),
        }
    )
    result = trace_flows(graph, config, cycles=False)
    paths = result.paths.group_by("drawdown_id").agg(
        pl.struct("path_rank", "hops", "transfer_ids", "sink_account", "amount").alias("paths")
    )
    flows = result.flows.rename({"min_hops_to_banned": "kernel_min_hops"}).join(
        paths, on="drawdown_id", how="left"
    )
    schema, _ = bucket_schema(config.max_hops)
    return arrow_rows(flows, schema)


def flow_frames(
    tables: dict[str, DataFrame],
    config: FlowsConfig,
    buckets: int,
    strategy: str = "buckets",
    parts: int | None = None,
) -> tuple[DataFrame, DataFrame]:
    """``(flows, paths)`` as DataFrames with the columns of the embedded ``flows.parquet`` and
    ``flow_paths.parquet`` (nothing collected).

    Parameters
    ----------
    buckets : int
        How many groups the drawdowns are split into for the amount replay (each is one
        task's graph).
    strategy : "buckets", "range" or "join"
        ``buckets`` (the default): drawdowns sliced by time into buckets, each bucket's reach
        walked as one (:func:`~graphkit.spark.flow_ranges.bucket_reach`), its transfers
        found by ranges, and ``min_hops_to_banned`` taken from the replay kernel; no row per
        (drawdown, account) is ever shuffled. ``range`` and ``join``: drawdowns hashed into
        buckets and the per-drawdown :func:`hop_layers` (with that strategy) giving the
        minimum hops and each drawdown's holders; kept to measure against.
    parts : int
        Account parts of the range cogroups (default ``buckets``).

    Complexity
    ----------
    ``buckets``: O(H B n) rows shuffled for H hops, B buckets and n accounts, plus each
    bucket's transfers (those of its time slice and one window after it, at the accounts it
    reaches) grouped once to its replay. ``range``/``join``: O(H R) for R reached (drawdown,
    account) pairs, which grows faster than the network where busy accounts gather many
    drawdowns' money.
    """
    from pyspark.sql import functions as F

    if config.policy not in SPARK_POLICIES:
        raise UnsupportedPolicyError(
            f"flows.policy={config.policy!r}: the Spark engine replays only "
            f"{', '.join(SPARK_POLICIES)} (fifo and proportional need every account's whole "
            "history in one place); use --engine embedded"
        )
    parts = parts or buckets
    if strategy not in (*STRATEGIES, "buckets"):
        raise ValueError(f"strategy must be buckets, range or join, got {strategy!r}")
    drawdowns, transfers = flow_inputs(tables, config)
    # The transfers (with their sink flags) are joined once per hop and once more for the
    # buckets: read and flag them once (for the ranges, partitioned by their account's part).
    if strategy == "join":
        transfers = transfers.localCheckpoint()
    else:
        transfers = by_account_part(transfers, parts)
    if strategy == "buckets":
        # read once (the quantiles and the hops both scan it); the bucket is a cheap expression
        drawdowns = time_buckets(drawdowns.localCheckpoint(), buckets)
        holders = bucket_reach(drawdowns, transfers, config.max_hops, parts)
        used = window_used(holders, transfers, parts)
        min_hops = None
    else:
        drawdowns = drawdowns.withColumn(
            "bucket", F.pmod(F.xxhash64("drawdown_id"), F.lit(buckets))
        ).localCheckpoint()
        min_hops, holders = hop_layers(drawdowns, transfers, config.max_hops, strategy, parts)
        holders = holders.join(drawdowns.select("drawdown_id", "bucket", "t0"), "drawdown_id")
        used = used_transfers(holders, transfers, strategy, parts)
    sinks = _sink_accounts(tables).withColumn("sink", F.lit(True))
    transfer_rows = used.join(sinks.withColumnRenamed("account_id", "src"), "src", "left").select(
        "bucket",
        F.lit(1).alias("kind"),
        F.col("transfer_id").alias("id"),
        "src",
        "dst",
        "amount",
        "ts",
        F.lit(None).cast("string").alias("customer_id"),
        F.coalesce(F.col("sink"), F.lit(False)).alias("src_sink"),
        "dst_sink",
    )
    drawdown_rows = drawdowns.select(
        "bucket",
        F.lit(0).alias("kind"),
        F.col("drawdown_id").alias("id"),
        F.col("line_id").alias("src"),
        F.col("a0").alias("dst"),
        "amount",
        "ts",
        "customer_id",
        F.lit(False).alias("src_sink"),
        F.col("a0_sink").alias("dst_sink"),
    )
    _, ddl = bucket_schema(config.max_hops)
    replayed = (
        drawdown_rows.union(transfer_rows)
        .groupBy("bucket")
        .applyInArrow(timed("flows", lambda rows: bucket_flows(rows, config)), ddl)
        .localCheckpoint()
    )
    hops = [f"banned_hop_{h}" for h in range(config.max_hops + 1)]
    flows = drawdowns.select("drawdown_id", "amount", "line_id", "customer_id").join(
        replayed, "drawdown_id"
    )
    if min_hops is None:
        # the replay kernel's minimum hops (its graph holds every walk the drawdown can take)
        flows = flows.withColumn("min_hops_to_banned", F.col("kernel_min_hops"))
    else:
        flows = flows.join(min_hops, "drawdown_id", "left")
    flows = flows.select(
        "drawdown_id",
        "amount",
        "banned_amount",
        "banned_amount_3plus",
        "banned_share",
        "min_hops_to_banned",
        *hops,
        F.lit(config.policy).alias("policy"),
        "capped",
        "line_id",
        "customer_id",
        "kernel_min_hops",
    )
    paths = replayed.select("drawdown_id", F.explode("paths").alias("p")).select(
        "drawdown_id", "p.*"
    )
    return flows, paths
