"""Time-window range joins for the Spark flows stage: each arrival answered by a range.

The flows stage asks two questions of the transfers out of an account: which transfers leave
it inside ``[arrival, end]`` (the next hop of a frontier row), and which transfers a bucket of
drawdowns may use there (the amount replay's input). An equi-join on the account followed by
a filter on time meets every arrival with every transfer out of the account, so at a busy
account the work grows with the product of the two. Here the accounts are hashed into
*parts*; the transfers are partitioned by part once, and for each part the arrivals and the
transfers are cogrouped onto one executor, where the transfers are sorted by (account, time)
and every arrival's window is found by binary search (as the embedded
:class:`~graphkit.analytics.flows.index.FlowIndex` does). Only the pairs inside a window are
touched, and only what the next step reads is returned:

- :func:`window_moves`: per arrival, each account its window reaches, with the earliest
  transfer time to it (the hop's ``min(t)`` per (walker, account) needs nothing else);
- :func:`window_used`: per (bucket, account), each transfer inside the union of the bucket's
  windows there, once (the ``distinct`` the replay's input needs).

Even inside the windows, the pairs of a busy account grow with the product of the drawdowns'
money arriving and the transfers leaving, and each is a (drawdown, account) row of the next
frontier. So the stage does not walk drawdowns: :func:`time_buckets` slices them by time into
the replay's buckets and :func:`bucket_reach` walks each bucket as one (a busy account sees
each bucket once), which bounds a hop by buckets x accounts rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PART = "account_part"
ADAPTIVE = "spark.sql.adaptive.enabled"
# Pairs (arrival, transfer) expanded at once inside a kernel: bounds its memory at a busy
# account (~16 bytes a pair).
PAIR_CHUNK = 4_000_000


def account_part(account: str, parts: int) -> Column:
    """The part (``0..parts-1``) an account's rows are grouped into, from its id's hash."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(account), F.lit(parts))


def by_account_part(transfers: DataFrame, parts: int) -> DataFrame:
    """``transfers`` with their source's part, hash-partitioned by it and checkpointed: the
    cogroups of every hop then shuffle only the arrivals.

    The checkpoint is taken with adaptive execution off (restored after): under it the
    checkpoint's partitioning is unknown to the planner, which then shuffles the transfers
    again at every hop."""
    session = transfers.sparkSession
    previous = session.conf.get(ADAPTIVE, "true")
    session.conf.set(ADAPTIVE, "false")
    try:
        return (
            transfers.withColumn(PART, account_part("src", parts))
            .repartition(parts, PART)
            .localCheckpoint()
        )
    finally:
        session.conf.set(ADAPTIVE, previous)


def _codes(*columns: pa.ChunkedArray) -> list[np.ndarray]:
    """Integer codes of strings, shared across ``columns`` (equal strings, equal codes)."""
    chunks = [chunk.cast(pa.large_string()) for column in columns for chunk in column.chunks]
    whole = pa.chunked_array(chunks, type=pa.large_string()).combine_chunks()
    codes = pc.dictionary_encode(whole).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.split(codes, np.cumsum([len(column) for column in columns])[:-1])


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype(np.int64, copy=False)


def _time_ranks(*times: np.ndarray) -> list[np.ndarray]:
    """Dense ranks of instants across ``times`` (order kept): small keys to combine with codes."""
    _, inverse = np.unique(np.concatenate(times), return_inverse=True)
    return np.split(inverse.astype(np.int64), np.cumsum([len(t) for t in times])[:-1])


def _pairs(lo: np.ndarray, hi: np.ndarray, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (query, position) with ``lo[query] <= position < hi[query]``, in chunks of about
    ``chunk`` pairs (a query's pairs stay in one chunk), positions ascending within a query."""
    counts = np.maximum(hi - lo, 0)
    total = np.cumsum(counts)
    first = 0
    while first < len(lo):
        base = total[first - 1] if first else 0
        last = max(int(np.searchsorted(total, base + chunk, side="right")), first + 1)
        queries = np.arange(first, last)
        n = counts[queries]
        query = np.repeat(queries, n)
        starts = np.cumsum(n) - n
        position = lo[query] + np.arange(int(n.sum())) - np.repeat(starts, n)
        yield query, position
        first = last


def moves_in_windows(arrivals: pa.Table, transfers: pa.Table, chunk: int = PAIR_CHUNK) -> pa.Table:
    """The cogroup kernel of :func:`window_moves` for one part of the accounts.

    ``arrivals``: (walker, account, t, end), one row per (walker, account), the walker a
    drawdown or a bucket of drawdowns (any type); ``transfers``: (src, dst, t, dst_sink).
    Returns (walker, account, t, end, sink): for
    each arrival and each ``dst`` of a transfer out of its account with ``arrival.t <= t <=
    end``, one row with the earliest such ``t`` (``account`` = ``dst``, ``sink`` its flag).

    Complexity: O((A + T) log(A + T) + P log P) for A arrivals, T transfers and P pairs
    (arrival, transfer) inside a window; O(A + T + min(P, chunk)) memory (``chunk`` pairs are
    expanded at once, or one arrival's if more).
    """
    schema = pa.schema(
        [
            ("walker", arrivals.schema.field("walker").type),
            ("account", pa.string()),
            ("t", pa.int64()),
            ("end", pa.int64()),
            ("sink", pa.bool_()),
        ]
    )
    if arrivals.num_rows == 0 or transfers.num_rows == 0:
        return schema.empty_table()
    account, src, dst = _codes(arrivals["account"], transfers["src"], transfers["dst"])
    arrive, end, t = _ints(arrivals["t"]), _ints(arrivals["end"]), _ints(transfers["t"])
    arrive_r, end_r, t_r = _time_ranks(arrive, end, t)
    stride = int(max(arrive_r.max(), end_r.max(), t_r.max())) + 1
    keys = src * stride + t_r
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    lo = np.searchsorted(keys, account * stride + arrive_r, side="left")
    hi = np.searchsorted(keys, account * stride + end_r, side="right")
    n_dst = int(dst.max()) + 1
    sorted_dst = dst[order]
    kept_query, kept_transfer = [], []
    for query, position in _pairs(lo, hi, chunk):
        # Within a query the positions ascend in time, so a (query, dst)'s first pair is its
        # earliest transfer.
        _, first = np.unique(query * n_dst + sorted_dst[position], return_index=True)
        kept_query.append(query[first])
        kept_transfer.append(order[position[first]])
    if not kept_query:
        return schema.empty_table()
    query, transfer = np.concatenate(kept_query), np.concatenate(kept_transfer)
    return pa.table(
        [
            arrivals["walker"].take(query),
            transfers["dst"].take(transfer).cast(pa.string()),
            pa.array(t[transfer], pa.int64()),
            pa.array(end[query], pa.int64()),
            transfers["dst_sink"].take(transfer).cast(pa.bool_()),
        ],
        schema=schema,
    )


def used_in_windows(holders: pa.Table, transfers: pa.Table, chunk: int = PAIR_CHUNK) -> pa.Table:
    """The cogroup kernel of :func:`window_used` for one part of the accounts.

    ``holders``: (bucket, account, t, end), a window ``[t, end]`` in which a drawdown of
    ``bucket`` may hold taint at ``account``; ``transfers``: the transfers (``src``, ``t`` and
    any other columns). Returns ``bucket`` and the transfers' columns, one row per (bucket,
    transfer) whose ``t`` lies in at least one of the bucket's windows at its ``src``.

    Complexity: O((H + T) log(H + T) + T b log H) for H windows, T transfers and at most b
    buckets holding windows at one account.
    """
    columns = [name for name in transfers.column_names if name != PART]
    if holders.num_rows == 0 or transfers.num_rows == 0:
        return pa.table(
            [pa.array([], pa.int64()), *[transfers[c].slice(0, 0) for c in columns]],
            names=["bucket", *columns],
        )
    account, src = _codes(holders["account"], transfers["src"])
    bucket = _ints(holders["bucket"])
    start_r, end_r, t_r = _time_ranks(
        _ints(holders["t"]), _ints(holders["end"]), _ints(transfers["t"])
    )
    stride = int(max(start_r.max(), end_r.max(), t_r.max())) + 1
    n_buckets = int(bucket.max()) + 1
    # One group per (account, bucket), numbered in account order.
    groups, group = np.unique(account * n_buckets + bucket, return_inverse=True)
    keys = group * stride + start_r
    order = np.argsort(keys, kind="stable")
    keys, sorted_group = keys[order], group[order]
    # Group-wise running maximum of the window ends: earlier groups' keys are all smaller.
    reach = np.maximum.accumulate(group[order] * stride + end_r[order])
    group_account = groups // n_buckets
    lo = np.searchsorted(group_account, src, side="left")
    hi = np.searchsorted(group_account, src, side="right")
    kept_transfer, kept_group = [], []
    for transfer, candidate in _pairs(lo, hi, chunk):
        wanted = candidate * stride + t_r[transfer]
        # The last window of the group starting at or before t, and the furthest end so far.
        at = np.searchsorted(keys, wanted, side="right") - 1
        inside = at >= 0
        inside[inside] &= sorted_group[at[inside]] == candidate[inside]
        inside[inside] &= reach[at[inside]] >= wanted[inside]
        kept_transfer.append(transfer[inside])
        kept_group.append(candidate[inside])
    transfer = np.concatenate(kept_transfer) if kept_transfer else np.empty(0, np.int64)
    group_of = np.concatenate(kept_group) if kept_group else np.empty(0, np.int64)
    return pa.table(
        [
            pa.array(groups[group_of] % n_buckets, pa.int64()),
            *[transfers[c].take(transfer) for c in columns],
        ],
        names=["bucket", *columns],
    )


def window_moves(frontier: DataFrame, transfers: DataFrame, parts: int, walker: str) -> DataFrame:
    """One hop: (walker, account, t, end, sink) for each account reached from a frontier row
    (walker, account, t, end) by a transfer inside ``[t, end]``, at the earliest such transfer
    from that row; ``walker`` names the frontier's key column (a drawdown, a bucket).
    ``transfers``: from :func:`by_account_part` with ``parts``.

    Complexity: one shuffle of the frontier; per part :func:`moves_in_windows`.
    """
    from pyspark.sql import functions as F

    arrivals = frontier.select(
        F.col(walker).alias("walker"),
        "account",
        "t",
        "end",
        account_part("account", parts).alias(PART),
    )
    key_type = frontier.schema[walker].dataType.simpleString()
    ddl = f"walker {key_type}, account string, t bigint, `end` bigint, sink boolean"
    return (
        arrivals.groupBy(PART)
        .cogroup(transfers.select("src", "dst", "t", "dst_sink", PART).groupBy(PART))
        .applyInArrow(lambda left, right: moves_in_windows(left, right), ddl)
        .withColumnRenamed("walker", walker)
    )


def window_used(holders: DataFrame, transfers: DataFrame, parts: int) -> DataFrame:
    """(bucket, transfer columns) of each transfer inside some window (bucket, account, t, end)
    of ``holders`` at its source, once per bucket. ``transfers``: from :func:`by_account_part`.

    Complexity: one shuffle of the holders; per part :func:`used_in_windows`.
    """
    ddl = ", ".join(
        [
            "bucket bigint",
            *[
                f"`{f.name}` {f.dataType.simpleString()}"
                for f in transfers.schema
                if f.name != PART
            ],
        ]
    )
    windows = holders.select(
        "bucket", "account", "t", "end", account_part("account", parts).alias(PART)
    )
    return (
        windows.groupBy(PART)
        .cogroup(transfers.groupBy(PART))
        .applyInArrow(lambda left, right: used_in_windows(left, right), ddl)
    )


def time_buckets(drawdowns: DataFrame, buckets: int) -> DataFrame:
    """``drawdowns`` with a ``bucket`` column: ``buckets`` slices of about equal size in the
    order of their time ``t0`` (approximate quantiles, one small job). Slicing by time keeps a
    bucket's windows together, so the transfers its drawdowns may use span its slice plus one
    window, not the whole history.

    Complexity: one pass over the drawdowns (a quantile sketch, relative error 1e-3).
    """
    from pyspark.sql import functions as F

    probabilities = [i / buckets for i in range(1, buckets)]
    bounds = sorted(set(drawdowns.approxQuantile("t0", probabilities, 1e-3))) if buckets > 1 else []
    bucket = F.lit(0).cast("bigint")
    for bound in bounds:
        bucket = bucket + (F.col("t0") > F.lit(int(bound))).cast("bigint")
    return drawdowns.withColumn("bucket", bucket)


def bucket_reach(
    drawdowns: DataFrame, transfers: DataFrame, max_hops: int, parts: int
) -> DataFrame:
    """Where each bucket of drawdowns may hold taint: (bucket, account, t, end).

    A bucket walks as one: it starts at every drawdown account of the bucket (not a sink) at
    the earliest of their times, and a transfer inside ``[t, end]`` with ``end`` the latest
    window end of the bucket moves it on; ``t`` is the bucket's earliest arrival at the
    account over walks of fewer than ``max_hops`` hops (sinks do not forward). Every walk of a
    drawdown of the bucket that the replay can take (time-respecting, inside the drawdown's
    window, fewer than ``max_hops`` hops to the account it leaves) arrives at each account no
    earlier than ``t``, and within ``end``: the transfers out of these accounts inside
    ``[t, end]`` hold every transfer the bucket's replay can use.

    Parameters
    ----------
    drawdowns : DataFrame
        (bucket, a0, t0, end, a0_sink), as :func:`graphkit.spark.flows.flow_inputs` with a
        bucket.
    transfers : DataFrame
        From :func:`by_account_part` with ``parts``.

    Returns
    -------
    DataFrame (bucket, account, t, end), one row per (bucket, account) reached.

    Complexity
    ----------
    At most ``max_hops - 1`` hops, each one shuffle of the improved (bucket, account) rows and
    :func:`moves_in_windows` per part: O(B n) rows per hop for B buckets and n accounts, with
    no per-drawdown state (a busy account sees each bucket once, not each drawdown).
    """
    from pyspark.sql import functions as F

    deadline = drawdowns.groupBy("bucket").agg(F.max("end").alias("end"))
    frontier = (
        drawdowns.where(~F.col("a0_sink"))
        .groupBy("bucket", F.col("a0").alias("account"))
        .agg(F.min("t0").alias("t"))
        .join(F.broadcast(deadline), "bucket")
        .localCheckpoint()
    )
    best = frontier
    for _ in range(1, max_hops):
        moves = window_moves(frontier, transfers, parts, "bucket")
        arrivals = (
            moves.where(~F.col("sink"))
            .groupBy("bucket", "account")
            .agg(F.min("t").alias("t"), F.first("end").alias("end"))
        )
        frontier, best = improved(arrivals, best, "bucket")
    return best


def improved(arrivals: DataFrame, best: DataFrame, key: str) -> tuple[DataFrame, DataFrame]:
    """One hop's ``(frontier, best)`` from its ``arrivals`` (key, account, t, end): the
    arrivals earlier than any so far at their (key, account), and ``best`` with them. ``key``:
    the walk's unit (``bucket``, or ``drawdown_id`` for the per-drawdown layers). Both are
    checkpointed, so the next hop reads them once. O(arrivals + best) rows shuffled."""
    from pyspark.sql import functions as F

    known = best.select(key, "account", F.col("t").alias("known_t"))
    frontier = (
        arrivals.join(known, [key, "account"], "left")
        .where(F.col("known_t").isNull() | (F.col("t") < F.col("known_t")))
        .drop("known_t")
        .localCheckpoint()
    )
    best = (
        best.union(frontier)
        .groupBy(key, "account")
        .agg(F.min("t").alias("t"), F.first("end").alias("end"))
        .localCheckpoint()
    )
    return frontier, best
