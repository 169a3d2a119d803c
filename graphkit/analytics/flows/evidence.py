"""Evidence paths: the best few simple time-respecting paths from a drawdown into a sink."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphkit.analytics.flows._arrays import (
    BATCH_SIZE,
    batches,
    expand_ranges,
    hub_cap,
    rank_within,
    run_starts,
)
from graphkit.analytics.flows.index import FlowIndex

__all__ = ["evidence_paths"]

# flow_paths.parquet's columns and types, whichever engine (embedded, live, Spark) wrote it.
PATH_SCHEMA: dict[str, pl.DataType] = {
    "drawdown_id": pl.String(),
    "path_rank": pl.Int32(),
    "hops": pl.Int32(),
    "transfer_ids": pl.List(pl.String),
    "sink_account": pl.String(),
    "amount": pl.Float64(),
}


def evidence_paths(
    index: FlowIndex,
    drawdown_ids: list[str] | pl.Series | None = None,
    *,
    window_days: float,
    max_hops: int,
    paths_per_drawdown: int,
    max_expand_per_hop: int,
    max_paths_per_drawdown: int,
    batch_size: int = BATCH_SIZE,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The best ``paths_per_drawdown`` paths from each drawdown into a banned sink.

    Definition: paths as in :func:`reach`. A path's amount is ``min(X, amounts of its
    transfers)`` (the most loan money it can have carried). Paths rank by amount (descending),
    then hops, then their transfer ids compared in order. A drawdown straight into a sink has
    one path of 0 hops.

    Enumeration is branch and bound over frontiers of partial paths: a partial path is dropped
    when its account cannot reach a sink in the remaining hops (static distance) or its amount
    cannot beat the ``k``-th complete path already found. ``max_expand_per_hop`` caps the
    transfers one partial path expands; ``max_paths_per_drawdown`` caps partial paths per
    drawdown per hop (the highest amounts are kept). Either cap sets ``capped``; without caps the
    result is exact.

    Parameters: ``drawdown_ids`` restricts to these drawdowns (all by default); ``window_days``
    is W, ``max_hops`` is H, ``paths_per_drawdown`` is k; the caps are described above;
    ``batch_size`` drawdowns are searched together (memory only).

    Returns: (paths frame: drawdown_id, path_rank, hops, transfer_ids list[str], sink_account,
    amount; frame drawdown_id, capped).

    Complexity: O(number of partial paths kept * H), all drawdowns of a batch vectorised.

    References: A. H. Land, A. G. Doig, "An automatic method of solving discrete programming
    problems", Econometrica 28(3), 1960 (branch and bound); Wu et al., "Path problems in
    temporal graphs", PVLDB 7(9), 2014 (time-respecting paths).

    Examples:
        >>> import numpy as np
        >>> from graphkit.analytics.flows import DrawdownArrays, FlowIndex, TransferArrays
        >>> index = FlowIndex.from_arrays(
        ...     sinks=np.array([False, False, True]),  # account 2 is a banned sink
        ...     transfers=TransferArrays(
        ...         src=np.array([0, 1]),
        ...         dst=np.array([1, 2]),
        ...         amount=np.array([80.0, 50.0]),
        ...         ts=np.array([10, 20]),  # epoch microseconds
        ...     ),
        ...     drawdowns=DrawdownArrays(
        ...         account=np.array([0]), amount=np.array([100.0]), ts=np.array([0])
        ...     ),
        ... )
        >>> from graphkit.analytics.flows import evidence_paths
        >>> paths, capped = evidence_paths(
        ...     index,
        ...     window_days=1,
        ...     max_hops=6,
        ...     paths_per_drawdown=3,
        ...     max_expand_per_hop=100,
        ...     max_paths_per_drawdown=100,
        ... )
        >>> paths.select("hops", "transfer_ids", "sink_account", "amount").rows()
        [(2, ['0', '1'], '2', 50.0)]
    """
    dd = index.positions(drawdown_ids)
    dist = index.distance_to_sink(max_hops)
    found: list[tuple[np.ndarray, ...]] = []
    capped = np.zeros(len(dd), dtype=bool)
    for part in batches(len(dd), batch_size):
        rows, cut = _evidence_batch(
            index,
            dd[part],
            dist,
            window_days,
            max_hops,
            paths_per_drawdown,
            max_expand_per_hop,
            max_paths_per_drawdown,
        )
        capped[part] = cut
        local_d, *rest = rows
        found.append((dd[part][local_d], *rest))
    flags = pl.DataFrame({"drawdown_id": index.dd_ids.gather(dd), "capped": capped})
    if not found or not sum(len(f[0]) for f in found):
        return _empty_paths(), flags
    d, hops, transfers, amount, sink = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort(_rank_keys(index, d, amount, hops, transfers))
    d, hops, transfers, amount, sink = (
        d[order],
        hops[order],
        transfers[order],
        amount[order],
        sink[order],
    )
    path_rank = rank_within(d)
    path, step = np.nonzero(transfers >= 0)
    ids = (
        pl.DataFrame(
            {"path": path, "transfer_id": index.transfer_ids.gather(transfers[path, step])}
        )
        .group_by("path", maintain_order=True)
        .agg("transfer_id")
    )
    paths = (
        pl.DataFrame(
            {
                "path": np.arange(len(d)),
                "drawdown_id": index.dd_ids.gather(d),
                "path_rank": pl.Series(path_rank, dtype=pl.Int32),
                "hops": pl.Series(hops, dtype=pl.Int32),
                "sink_account": index.account_ids.gather(sink),
                "amount": amount,
            }
        )
        .join(ids, on="path", how="left", maintain_order="left")
        .with_columns(pl.col("transfer_id").fill_null(pl.lit([], pl.List(pl.String))))
        .select(
            "drawdown_id",
            "path_rank",
            "hops",
            pl.col("transfer_id").alias("transfer_ids"),
            "sink_account",
            "amount",
        )
    )
    return paths, flags


def _empty_paths() -> pl.DataFrame:
    return pl.DataFrame(schema=PATH_SCHEMA)


def _rank_keys(
    index: FlowIndex, d: np.ndarray, amount: np.ndarray, hops: np.ndarray, transfers: np.ndarray
) -> tuple[np.ndarray, ...]:
    """np.lexsort keys (last is primary): drawdown, amount desc, hops, transfer ids in order."""
    id_rank = np.append(index.id_order, -1)[transfers]  # -1 (no transfer) maps to -1
    return (*(id_rank[:, j] for j in range(transfers.shape[1] - 1, -1, -1)), hops, -amount, d)


def _evidence_batch(
    index: FlowIndex,
    dd: np.ndarray,
    dist: np.ndarray,
    window_days: float,
    max_hops: int,
    k: int,
    cap: int,
    max_partial: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    n = len(dd)
    capped = np.zeros(n, dtype=bool)
    a0, x0, t0 = index.dd_account[dd], index.dd_amount[dd], index.dd_ts[dd]
    last_rank = index.window_end_rank(dd, window_days)
    width = max(max_hops, 1)
    at_sink = index.sinks[a0]
    best_d = np.flatnonzero(at_sink)
    best = (
        best_d,
        np.zeros(len(best_d), dtype=np.int64),
        np.full((len(best_d), width), -1, dtype=np.int64),
        x0[best_d],
        a0[best_d],
    )
    if k <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty, np.zeros((0, width), dtype=np.int64), np.zeros(0), empty), capped
    live = ~at_sink & (dist[a0] <= max_hops)
    f_d = np.flatnonzero(live)
    f_acc = np.full((len(f_d), max_hops + 1), -1, dtype=np.int64)
    f_acc[:, 0] = a0[f_d]
    f_tr = np.full((len(f_d), width), -1, dtype=np.int64)
    f_amt, f_t = x0[f_d], t0[f_d]
    threshold = np.full(n, -np.inf)
    for hop in range(1, max_hops + 1):
        if not len(f_d):
            break
        cur = f_acc[:, hop - 1]
        first_rank = np.searchsorted(index.event_ts, f_t, side="left").astype(np.int64)
        start, end = index.out_range(cur, first_rank, last_rank[f_d])
        end, cut = hub_cap(start, end, cap)
        capped[f_d[cut]] = True
        rows, positions = expand_ranges(start, end)
        transfer = index.out_order[positions]
        nxt = index.dst[transfer]
        amt = np.minimum(f_amt[rows], index.amount[transfer])
        ok = (f_acc[rows, :hop] != nxt[:, None]).all(axis=1)
        ok &= dist[nxt] <= max_hops - hop
        ok &= amt > threshold[f_d[rows]]
        rows, transfer, nxt, amt = rows[ok], transfer[ok], nxt[ok], amt[ok]
        tr = f_tr[rows].copy()
        tr[:, hop - 1] = transfer
        hit = index.sinks[nxt]
        best = tuple(
            np.concatenate([old, new])
            for old, new in zip(
                best,
                (
                    f_d[rows[hit]],
                    np.full(int(hit.sum()), hop, dtype=np.int64),
                    tr[hit],
                    amt[hit],
                    nxt[hit],
                ),
                strict=True,
            )
        )
        order = np.lexsort(_rank_keys(index, best[0], best[3], best[1], best[2]))
        keep_best = order[rank_within(best[0][order]) <= k]
        best = tuple(part[keep_best] for part in best)
        threshold = _kth_amount(best[0], best[3], n, k)
        go = ~hit & (hop < max_hops)
        rows, nxt, amt, tr, transfer = rows[go], nxt[go], amt[go], tr[go], transfer[go]
        go = amt > threshold[f_d[rows]]
        rows, nxt, amt, tr, transfer = rows[go], nxt[go], amt[go], tr[go], transfer[go]
        acc = f_acc[rows].copy()
        acc[:, hop] = nxt
        new_d, new_t = f_d[rows], index.ts[transfer]
        order = np.lexsort((-amt, new_d))
        keep = rank_within(new_d[order]) <= max_partial
        capped[np.unique(new_d[order][~keep])] = True
        sel = order[keep]
        f_d, f_acc, f_tr, f_amt, f_t = new_d[sel], acc[sel], tr[sel], amt[sel], new_t[sel]
    return best, capped


def _kth_amount(d: np.ndarray, amount: np.ndarray, n: int, k: int) -> np.ndarray:
    """Per drawdown, the amount of its k-th best path (rows ranked best first), else -inf."""
    kth = np.full(n, -np.inf)
    if len(d):
        starts = run_starts(d)
        ends = np.append(starts[1:], len(d)) - 1
        full = ends - starts + 1 >= k
        kth[d[ends[full]]] = amount[ends[full]]
    return kth
