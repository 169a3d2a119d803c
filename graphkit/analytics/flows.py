"""Fund-flow tracing (资金流向): where loan money goes after a drawdown.

ARCHITECTURE section 5 is the contract; ``docs/flows.md`` writes out every rule. In short, a
drawdown of ``X`` into account ``a0`` at ``t0`` is followed forward over transfers that respect
time (each hop no earlier than the one before, the first no earlier than ``t0``), within the
window ``t0 + W`` and at most ``H`` hops. Accounts of merchants in banned sectors are *sinks*:
money that reaches one stays there.

* :func:`reach` - the minimum hop count at which a sink is reachable (an earliest-arrival
  breadth-first search; the shortest time-respecting walk is always a simple path).
* :func:`evidence_paths` - the best few simple time-respecting paths into a sink, ranked by
  amount (``min(X, every transfer amount on the path)``), then hops, then transfer ids.
* :func:`banned_amounts` - how much of ``X`` lands in sinks at each hop layer, under the
  policies ``first`` (loan money leaves first; the contract's replay), ``fifo`` (Clayton's rule
  over rebuilt balances) and ``proportional`` (haircut over rebuilt balances).
* :func:`round_trips` - time-ordered transfer cycles through customers' accounts.
* :func:`trace_flows` - all of the above for a run (the pipeline's ``flows`` stage calls it).

Every kernel works on all drawdowns of a batch at once: frontiers are numpy arrays of
``(drawdown, account, ...)`` rows expanded over a CSR of transfers sorted by ``(src, time)``;
balances within an account follow closed-form scans (segmented cumulative sums and minima), so no
Python loop runs per path, per drawdown or per transfer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graphkit.config import FLOW_POLICIES, FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

US_PER_DAY = 86_400_000_000
# Drawdowns traced together; bounds the frontier held in memory at once.
DEFAULT_BATCH = 100_000
# Round-trip enumeration keeps at most this many partial cycles per hop (memory safety valve;
# hitting it is reported like any other cap).
MAX_CYCLE_FRONTIER = 2_000_000
# Pieces of taint smaller than this (currency units) are float noise of interval arithmetic.
_NOISE = 1e-9


@dataclass(eq=False)
class FlowIndex:
    """Transfers and drawdowns of a graph arranged for tracing; build once with :meth:`build`.

    Drawdowns and transfers share one *event order*: by time, drawdowns before transfers at the
    same instant, then by id. Transfer ``i`` is the ``i``-th transfer in that order.

    Attributes:
        n_accounts: number of accounts; ``sinks`` flags the banned-sector ones.
        src, dst, amount, ts, rank: per transfer (ts in epoch microseconds, rank = event rank).
        transfer_ids: transfer keys in transfer order; ``id_order`` their lexicographic rank.
        out_order: transfer indices sorted by ``(src, rank)``; ``out_key`` = src * stride + rank
            in that order; ``out_ptr`` the CSR row pointer over accounts.
        event_ts: the time of every event, in event order (sorted).
        dd_*: per drawdown, in the order of ``graph.edges["drawdown"]``.
        balance_before: per transfer, the rebuilt balance of its source just before it.
        deq_start: per transfer, where its outflow starts in the source's dequeue coordinate.
        enq_start: per transfer, where its inflow starts in the receiver's enqueue coordinate.
        dd_enq_start: per drawdown, the same for the drawdown's inflow into its account.
    """

    n_accounts: int
    sinks: np.ndarray
    account_ids: pl.Series
    src: np.ndarray
    dst: np.ndarray
    amount: np.ndarray
    ts: np.ndarray
    rank: np.ndarray
    transfer_ids: pl.Series
    id_order: np.ndarray
    out_order: np.ndarray
    out_key: np.ndarray
    out_ptr: np.ndarray
    stride: int
    event_ts: np.ndarray
    dd_account: np.ndarray
    dd_amount: np.ndarray
    dd_ts: np.ndarray
    dd_rank: np.ndarray
    dd_ids: pl.Series
    dd_line: np.ndarray
    owner_customer: np.ndarray
    customer_ids: pl.Series
    _balances: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _distances: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, graph: RiskGraph, balances: pl.DataFrame | None = None) -> FlowIndex:
        """Index ``graph``'s transfers and drawdowns.

        ``balances`` (optional; columns ``account_id``, ``balance``) gives opening balances used
        by the ``fifo`` and ``proportional`` policies; accounts not listed open at 0.

        Complexity: O((T + D) log(T + D)) for T transfers and D drawdowns.
        """
        transfers = graph.edges["transfer"]
        drawdowns = graph.edges["drawdown"]
        events = pl.concat(
            [
                drawdowns.select(
                    ts=pl.col("ts").dt.epoch("us"),
                    kind=pl.lit(0, pl.Int8),
                    key=pl.col("drawdown_id"),
                    pos=pl.int_range(pl.len(), dtype=pl.Int64),
                ),
                transfers.select(
                    ts=pl.col("ts").dt.epoch("us"),
                    kind=pl.lit(1, pl.Int8),
                    key=pl.col("transfer_id"),
                    pos=pl.int_range(pl.len(), dtype=pl.Int64),
                ),
            ]
        ).sort("ts", "kind", "key")
        event_ts = events.get_column("ts").to_numpy().astype(np.int64)
        kind = events.get_column("kind").to_numpy()
        pos = events.get_column("pos").to_numpy()
        ranks = np.arange(len(events), dtype=np.int64)

        transfer_pos = pos[kind == 1]
        n_accounts = graph.n("Account")
        t_src = transfers.get_column("src").to_numpy().astype(np.int64)[transfer_pos]
        t_dst = transfers.get_column("dst").to_numpy().astype(np.int64)[transfer_pos]
        t_amount = transfers.get_column("amount").to_numpy().astype(np.float64)[transfer_pos]
        t_ids = transfers.get_column("transfer_id")[transfer_pos]
        id_order = np.empty(len(t_ids), dtype=np.int64)
        id_order[t_ids.arg_sort().to_numpy()] = np.arange(len(t_ids))
        stride = len(events) + 1
        out_order = np.argsort(t_src, kind="stable")
        t_rank = ranks[kind == 1]

        dd_rank = np.empty(drawdowns.height, dtype=np.int64)
        dd_rank[pos[kind == 0]] = ranks[kind == 0]
        index = cls(
            n_accounts=n_accounts,
            sinks=graph.banned_sink_accounts(),
            account_ids=graph.keys("Account"),
            src=t_src,
            dst=t_dst,
            amount=t_amount,
            ts=event_ts[kind == 1],
            rank=t_rank,
            transfer_ids=t_ids,
            id_order=id_order,
            out_order=out_order,
            out_key=t_src[out_order] * stride + t_rank[out_order],
            out_ptr=np.searchsorted(t_src[out_order], np.arange(n_accounts + 1)),
            stride=stride,
            event_ts=event_ts,
            dd_account=drawdowns.get_column("dst").to_numpy().astype(np.int64),
            dd_amount=drawdowns.get_column("amount").to_numpy().astype(np.float64),
            dd_ts=drawdowns.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64),
            dd_rank=dd_rank,
            dd_ids=drawdowns.get_column("drawdown_id"),
            dd_line=drawdowns.get_column("src").to_numpy().astype(np.int64),
            owner_customer=graph.account_owner_customer().astype(np.int64),
            customer_ids=graph.keys("Customer"),
        )
        index._balances = _rebuild_balances(index, _opening_balances(graph, balances))
        return index

    @property
    def n_drawdowns(self) -> int:
        return len(self.dd_amount)

    def positions(self, drawdown_ids: list[str] | pl.Series | None) -> np.ndarray:
        """Positions of ``drawdown_ids`` (all drawdowns when ``None``); unknown ids raise."""
        if drawdown_ids is None:
            return np.arange(self.n_drawdowns, dtype=np.int64)
        wanted = pl.DataFrame({"drawdown_id": pl.Series(drawdown_ids, dtype=pl.String)})
        known = pl.DataFrame({"drawdown_id": self.dd_ids}).with_row_index("pos")
        joined = wanted.join(known, on="drawdown_id", how="left", maintain_order="left")
        missing = joined.filter(pl.col("pos").is_null()).get_column("drawdown_id")
        if len(missing):
            raise KeyError(f"unknown drawdown ids: {', '.join(missing.head(5).to_list())}")
        return joined.get_column("pos").to_numpy().astype(np.int64)

    def distance_to_sink(self, max_hops: int) -> np.ndarray:
        """Hops from each account to a sink ignoring time (sinks do not forward), capped at
        ``max_hops + 1``: a lower bound on any time-respecting path; cached."""
        if max_hops not in self._distances:
            self._distances[max_hops] = _static_distance_to_sink(self, max_hops)
        return self._distances[max_hops]

    def window_end_rank(self, dd: np.ndarray, window_days: float) -> np.ndarray:
        """Last event rank with ``ts <= t0 + W`` for each drawdown position in ``dd``."""
        end = self.dd_ts[dd] + round(window_days * US_PER_DAY)
        return np.searchsorted(self.event_ts, end, side="right").astype(np.int64) - 1

    def out_range(
        self, accounts: np.ndarray, first_rank: np.ndarray, last_rank: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``[start, end)`` in ``out_order`` of each account's transfers whose event
        rank lies in ``[first_rank, last_rank]``."""
        base = accounts * self.stride
        start = np.searchsorted(self.out_key, base + first_rank, side="left")
        end = np.searchsorted(self.out_key, base + last_rank, side="right")
        return start, np.maximum(end, start)


def _opening_balances(graph: RiskGraph, balances: pl.DataFrame | None) -> np.ndarray:
    opening = np.zeros(graph.n("Account"), dtype=np.float64)
    if balances is None or balances.height == 0:
        return opening
    missing = {"account_id", "balance"} - set(balances.columns)
    if missing:
        raise ValueError(f"balances: missing column(s) {', '.join(sorted(missing))}")
    ids = graph.ids("Account", balances.get_column("account_id").cast(pl.String))
    if (ids < 0).any():
        raise ValueError("balances: unknown account_id(s)")
    values = balances.get_column("balance").cast(pl.Float64).fill_null(0.0).to_numpy()
    if (values < 0).any():
        raise ValueError("balances: opening balances must be >= 0")
    np.add.at(opening, ids, values)
    return opening


def _rebuild_balances(index: FlowIndex, opening: np.ndarray) -> dict[str, np.ndarray]:
    """Replay every account's money over all events (drawdowns and transfers in, transfers out).

    The balance follows the Lindley recursion ``B <- max(B + x, 0)``: an outflow larger than the
    known balance is paid by *outside* money (untainted, enqueued just before it leaves). Returns
    per transfer the source's balance just before it, where its outflow starts in the source's
    dequeue coordinate, and where its inflow starts in the receiver's enqueue coordinate (both
    coordinates count money in FIFO order; outside money included), and the same enqueue
    position for every drawdown.
    """
    n_t, n_d = len(index.amount), index.n_drawdowns
    events = pl.DataFrame(
        {
            "account": np.concatenate([index.src, index.dst, index.dd_account]),
            "rank": np.concatenate([index.rank, index.rank, index.dd_rank]),
            # an outflow sorts before an inflow of the same transfer (self-transfer)
            "inflow": np.concatenate([np.zeros(n_t), np.ones(n_t + n_d)]).astype(np.int8),
            "x": np.concatenate([-index.amount, index.amount, index.dd_amount]),
            "row": np.arange(2 * n_t + n_d, dtype=np.int64),
        }
    ).sort("account", "rank", "inflow")
    account = events.get_column("account").to_numpy()
    events = events.with_columns(
        opening=pl.Series(opening[account] if len(account) else np.zeros(0)),
        inflow_amount=pl.col("x").clip(lower_bound=0.0),
        outflow_amount=(-pl.col("x")).clip(lower_bound=0.0),
    ).with_columns(
        level=pl.col("opening") + pl.col("x").cum_sum().over("account"),
        cum_in=pl.col("inflow_amount").cum_sum().over("account"),
        cum_out=pl.col("outflow_amount").cum_sum().over("account"),
    )
    events = events.with_columns(
        outside=(-pl.min_horizontal(pl.col("level").cum_min().over("account"), 0.0)),
    ).with_columns(balance=pl.col("level") + pl.col("outside"))
    events = events.with_columns(
        balance_before=pl.col("balance").shift(1).over("account").fill_null(pl.col("opening")),
        outside_before=pl.col("outside").shift(1).over("account").fill_null(0.0),
    )
    row = events.get_column("row").to_numpy()
    balance_before = events.get_column("balance_before").to_numpy()
    enqueue = (
        events.get_column("opening").to_numpy()
        + events.get_column("cum_in").to_numpy()
        - events.get_column("inflow_amount").to_numpy()
        + events.get_column("outside_before").to_numpy()
    )
    dequeue = (
        events.get_column("cum_out").to_numpy() - events.get_column("outflow_amount").to_numpy()
    )
    by_row = np.empty(len(row), dtype=np.float64)
    result: dict[str, np.ndarray] = {}
    by_row[row] = balance_before
    result["balance_before"] = by_row[:n_t].copy()
    by_row[row] = dequeue
    result["deq_start"] = by_row[:n_t].copy()
    by_row[row] = enqueue
    result["enq_start"] = by_row[n_t : 2 * n_t].copy()
    result["dd_enq_start"] = by_row[2 * n_t :].copy()
    return result


def _expand(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[start_i, end_i)``: the owning row of every position, and the position."""
    counts = np.maximum(end - start, 0)
    rows = np.repeat(np.arange(len(start), dtype=np.int64), counts)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    return rows, start[rows] + offsets


def _batches(n: int, size: int) -> Iterator[slice]:
    for lo in range(0, n, max(size, 1)):
        yield slice(lo, min(lo + size, n))


def _hub_cap(start: np.ndarray, end: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each range to its first ``cap`` positions; returns the new ends and who was cut."""
    cut = end - start > cap
    return np.where(cut, start + cap, end), cut


# --------------------------------------------------------------------------------------------
# reach


def reach(
    index: FlowIndex,
    drawdown_ids: list[str] | pl.Series | None = None,
    *,
    window_days: float = 30.0,
    max_hops: int = 6,
    max_expand_per_hop: int = 10_000,
    batch_size: int = DEFAULT_BATCH,
) -> pl.DataFrame:
    """Minimum hop count from each drawdown to a banned sink on a time-respecting path.

    Definition: a path is transfers ``e1..ek`` with ``src(e1) = a0``, ``dst(ei) = src(ei+1)``,
    ``t0 <= ts(e1) <= ... <= ts(ek) <= t0 + W``, ``k <= H``, no account twice, and no sink
    before its last account. ``min_hops_to_banned`` is the least ``k`` whose last account is a
    sink (0 when ``a0`` itself is one), or null. Removing a loop from a time-respecting walk
    leaves a time-respecting walk, so the least ``k`` over walks equals that over simple paths:
    a breadth-first search keeping the earliest arrival time per (drawdown, account) is exact.

    Parameters: ``drawdown_ids`` restricts to these drawdowns (in that order; all by default).
    ``max_expand_per_hop`` caps how many transfers one account expands at one hop (the earliest
    ones); ``capped`` says it cut something for that drawdown.

    Returns: frame (drawdown_id, min_hops_to_banned Int32 nullable, capped Boolean).

    Complexity: O(H * sum of out-degrees reached) per drawdown, all drawdowns vectorised.
    """
    dd = index.positions(drawdown_ids)
    hops = np.full(len(dd), -1, dtype=np.int64)
    capped = np.zeros(len(dd), dtype=bool)
    for part in _batches(len(dd), batch_size):
        hops[part], capped[part] = _reach_batch(
            index, dd[part], window_days, max_hops, max_expand_per_hop
        )
    return pl.DataFrame(
        {"drawdown_id": index.dd_ids.gather(dd), "hops": hops, "capped": capped}
    ).select(
        "drawdown_id",
        min_hops_to_banned=pl.when(pl.col("hops") >= 0).then(pl.col("hops")).cast(pl.Int32),
        capped="capped",
    )


def _reach_batch(
    index: FlowIndex, dd: np.ndarray, window_days: float, max_hops: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    n_acc = max(index.n_accounts, 1)
    a0 = index.dd_account[dd]
    hops = np.where(index.sinks[a0], 0, -1).astype(np.int64)
    capped = np.zeros(len(dd), dtype=bool)
    dist = index.distance_to_sink(max_hops)
    f_d = np.flatnonzero((hops < 0) & (dist[a0] <= max_hops))
    last_rank = np.full(len(dd), -1, dtype=np.int64)
    last_rank[f_d] = index.window_end_rank(dd[f_d], window_days)
    f_v, f_t = a0[f_d], index.dd_ts[dd][f_d]
    best_key = f_d * n_acc + f_v
    order = np.argsort(best_key)
    best_key, best_t = best_key[order], f_t[order]
    for hop in range(1, max_hops + 1):
        if not len(f_d):
            break
        first_rank = np.searchsorted(index.event_ts, f_t, side="left").astype(np.int64)
        start, end = index.out_range(f_v, first_rank, last_rank[f_d])
        end, cut = _hub_cap(start, end, cap)
        capped[f_d[cut]] = True
        rows, positions = _expand(start, end)
        transfer = index.out_order[positions]
        d, v, t = f_d[rows], index.dst[transfer], index.ts[transfer]
        hit = index.sinks[v]
        hops[np.unique(d[hit])] = hop
        # an account that cannot reach a sink in the hops left is not worth a visit
        keep = ~hit & (hops[d] < 0) & (dist[v] <= max_hops - hop)
        d, v, t = d[keep], v[keep], t[keep]
        key = d * n_acc + v
        order = np.lexsort((t, key))
        key, t = key[order], t[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        key, t = key[first], t[first]
        at = np.searchsorted(best_key, key)
        present = at < len(best_key)
        present[present] = best_key[at[present]] == key[present]
        improved = ~present
        improved[present] = t[present] < best_t[at[present]]
        best_t[at[present & improved]] = t[present & improved]
        fresh = ~present
        best_key = np.concatenate([best_key, key[fresh]])
        best_t = np.concatenate([best_t, t[fresh]])
        order = np.argsort(best_key, kind="stable")
        best_key, best_t = best_key[order], best_t[order]
        key, t = key[improved], t[improved]
        f_d, f_v, f_t = key // n_acc, key % n_acc, t
    return hops, capped


def min_hops_to_banned(
    graph: RiskGraph,
    drawdown_ids: list[str] | pl.Series,
    *,
    window_days: float = 30.0,
    max_hops: int = 6,
) -> pl.DataFrame:
    """Per drawdown id, the minimum hops to a banned sink (see :func:`reach`), without hub cap.

    A convenience for cross-checks (e.g. against a Cypher trace): builds the index itself.
    Returns: frame (drawdown_id, min_hops_to_banned).
    """
    index = FlowIndex.build(graph)
    cap = max(len(index.amount), 1)
    return reach(
        index, drawdown_ids, window_days=window_days, max_hops=max_hops, max_expand_per_hop=cap
    ).select("drawdown_id", "min_hops_to_banned")


# --------------------------------------------------------------------------------------------
# evidence paths


def _static_distance_to_sink(index: FlowIndex, max_hops: int) -> np.ndarray:
    """Hops from each account to a sink ignoring time (sinks do not forward): a lower bound."""
    dist = np.where(index.sinks, 0, max_hops + 1).astype(np.int64)
    forwards = ~index.sinks[index.src]
    src, dst = index.src[forwards], index.dst[forwards]
    for _ in range(max_hops):
        candidate = np.full(index.n_accounts, max_hops + 1, dtype=np.int64)
        np.minimum.at(candidate, src, dist[dst] + 1)
        updated = np.minimum(dist, candidate)
        if np.array_equal(updated, dist):
            break
        dist = updated
    return dist


def evidence_paths(
    index: FlowIndex,
    drawdown_ids: list[str] | pl.Series | None = None,
    *,
    window_days: float = 30.0,
    max_hops: int = 6,
    paths_per_drawdown: int = 3,
    max_expand_per_hop: int = 10_000,
    max_paths_per_drawdown: int = 10_000,
    batch_size: int = DEFAULT_BATCH,
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

    Returns: (paths frame: drawdown_id, path_rank, hops, transfer_ids list[str], sink_account,
    amount; frame drawdown_id, capped).

    Complexity: O(number of partial paths kept * H), all drawdowns of a batch vectorised.
    """
    dd = index.positions(drawdown_ids)
    dist = index.distance_to_sink(max_hops)
    found: list[tuple[np.ndarray, ...]] = []
    capped = np.zeros(len(dd), dtype=bool)
    for part in _batches(len(dd), batch_size):
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
    path_rank = _rank_within(d)
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
    return pl.DataFrame(
        schema={
            "drawdown_id": pl.String,
            "path_rank": pl.Int32,
            "hops": pl.Int32,
            "transfer_ids": pl.List(pl.String),
            "sink_account": pl.String,
            "amount": pl.Float64,
        }
    )


def _rank_keys(
    index: FlowIndex, d: np.ndarray, amount: np.ndarray, hops: np.ndarray, transfers: np.ndarray
) -> tuple[np.ndarray, ...]:
    """np.lexsort keys (last is primary): drawdown, amount desc, hops, transfer ids in order."""
    id_rank = np.append(index.id_order, -1)[transfers]  # -1 (no transfer) maps to -1
    return (*(id_rank[:, j] for j in range(transfers.shape[1] - 1, -1, -1)), hops, -amount, d)


def _rank_within(group: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal (sorted) ``group`` values."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(len(group), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(group)), 0))
    return np.arange(len(group)) - first + 1


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
        end, cut = _hub_cap(start, end, cap)
        capped[f_d[cut]] = True
        rows, positions = _expand(start, end)
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
        keep_best = order[_rank_within(best[0][order]) <= k]
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
        keep = _rank_within(new_d[order]) <= max_partial
        capped[np.unique(new_d[order][~keep])] = True
        sel = order[keep]
        f_d, f_acc, f_tr, f_amt, f_t = new_d[sel], acc[sel], tr[sel], amt[sel], new_t[sel]
    return best, capped


def _kth_amount(d: np.ndarray, amount: np.ndarray, n: int, k: int) -> np.ndarray:
    """Per drawdown, the amount of its k-th best path (rows ranked best first), else -inf."""
    kth = np.full(n, -np.inf)
    if len(d):
        starts = _run_starts(d)
        ends = np.append(starts[1:], len(d)) - 1
        full = ends - starts + 1 >= k
        kth[d[ends[full]]] = amount[ends[full]]
    return kth


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    starts = np.ones(len(sorted_values), dtype=bool)
    starts[1:] = sorted_values[1:] != sorted_values[:-1]
    return np.flatnonzero(starts)


# --------------------------------------------------------------------------------------------
# amounts


@dataclass
class AmountResult:
    """Banned amounts per drawdown and, when asked for, where every piece of taint ended.

    ``banned`` is (drawdowns, H + 1): the amount landing in sinks at hop layer 0..H.
    ``ledger`` (when requested) is a frame (drawdown, account, layer, amount) of final taint
    positions; its amounts per drawdown add up to the drawdown's amount.
    """

    drawdowns: np.ndarray
    banned: np.ndarray
    capped: np.ndarray
    ledger: pl.DataFrame | None = None


def banned_amounts(
    index: FlowIndex,
    drawdown_ids: list[str] | pl.Series | None = None,
    *,
    policy: str = "first",
    window_days: float = 30.0,
    max_hops: int = 6,
    max_expand_per_hop: int = 10_000,
    batch_size: int = DEFAULT_BATCH,
    ledger: bool = False,
    prune: bool = True,
) -> AmountResult:
    """How much of each drawdown lands in banned sinks, per hop layer, under ``policy``.

    Definition (``first``, ARCHITECTURE section 5): replay transfers with ``t0 <= ts <= t0 + W``
    in (ts, transfer_id) order; layer 0 of ``a0`` holds ``X``; a transfer of ``m`` from a
    non-sink ``s`` moves ``min(m, taint of s in layers < H)``, lowest layer first, from layer
    ``h`` of ``s`` to layer ``h + 1`` of the receiver. ``fifo`` and ``proportional`` decide which
    money leaves from balances rebuilt over all events (see ``docs/flows.md``). Every policy
    conserves taint.

    The replay is layer by layer: the outflows of layer ``h`` depend only on inflows to layer
    ``h`` and on what lower layers already took from each transfer. Within one (drawdown,
    account, layer) the balance obeys ``B <- max(B + x, 0)``, whose closed form
    ``S_k - min(0, min_j S_j)`` over the running sum ``S`` is a segmented scan.
    ``max_expand_per_hop`` caps the outflows one (drawdown, account, layer) may use; ``capped``
    marks drawdowns where the cap kept taint back.

    ``prune`` stops following taint in layer ``h`` of an account that cannot reach a sink in
    ``H - h`` hops even ignoring time. That leaves the banned amounts exactly as they are: such
    taint can only move to accounts and layers that are just as unable, and it only competes for
    a transfer's room with higher layers of its own account, which are unable too. In the
    ``ledger`` it is booked where it was when given up; ``prune=False`` follows every piece.

    Complexity: O(H * active events * log) where active events are the outflows of accounts
    that hold a drawdown's taint, inside its window.
    """
    if policy not in FLOW_POLICIES:
        raise ValueError(f"policy must be one of {FLOW_POLICIES}, got {policy!r}")
    dd = index.positions(drawdown_ids)
    banned = np.zeros((len(dd), max_hops + 1))
    capped = np.zeros(len(dd), dtype=bool)
    ledgers: list[pl.DataFrame] = []
    replay = {"first": _replay_first, "fifo": _replay_fifo, "proportional": _replay_proportional}
    dist = index.distance_to_sink(max_hops) if prune else None
    live = np.arange(len(dd))
    if dist is not None:
        # a drawdown into an account that cannot reach a sink at all is done before it starts
        a0 = index.dd_account[dd]
        alive = index.sinks[a0] | (dist[a0] <= max_hops)
        live = np.flatnonzero(alive)
        if ledger:
            dead = np.flatnonzero(~alive)
            ledgers.append(_ledger_frame(dead, a0[dead], 0, index.dd_amount[dd[dead]]))
    for part in _batches(len(live), batch_size):
        rows = live[part]
        b, c, led = replay[policy](index, dd[rows], window_days, max_hops, max_expand_per_hop, dist)
        banned[rows], capped[rows] = b, c
        if ledger:
            ledgers.append(led.with_columns(drawdown=rows[led.get_column("drawdown").to_numpy()]))
    return AmountResult(
        drawdowns=dd,
        banned=banned,
        capped=capped,
        ledger=pl.concat(ledgers) if ledger and ledgers else (_empty_ledger() if ledger else None),
    )


def _empty_ledger() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"drawdown": pl.Int64, "account": pl.Int64, "layer": pl.Int64, "amount": pl.Float64}
    )


def _ledger_frame(d: np.ndarray, v: np.ndarray, layer: int, amount: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "drawdown": d.astype(np.int64),
            "account": v.astype(np.int64),
            "layer": np.full(len(d), layer, dtype=np.int64),
            "amount": amount.astype(np.float64),
        }
    )


@dataclass
class _Segments:
    """Tainted (drawdown, account) pairs of one layer and their candidate outflows."""

    seg_of_inflow: np.ndarray
    seg_d: np.ndarray
    seg_v: np.ndarray
    out_seg: np.ndarray
    out_transfer: np.ndarray
    cut: np.ndarray


def _segments(
    index: FlowIndex,
    d: np.ndarray,
    v: np.ndarray,
    rank: np.ndarray,
    last_rank: np.ndarray,
    cap: int,
) -> _Segments:
    """Group inflows by (drawdown, account) and list each group's outflows after its first
    inflow and inside the drawdown's window (at most ``cap``; sinks have none)."""
    n_acc = max(index.n_accounts, 1)
    key = d * n_acc + v
    seg_key, seg_of_inflow = np.unique(key, return_inverse=True)
    first = np.full(len(seg_key), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, seg_of_inflow, rank)
    seg_d, seg_v = seg_key // n_acc, seg_key % n_acc
    start, end = index.out_range(seg_v, first + 1, last_rank[seg_d])
    end = np.where(index.sinks[seg_v], start, end)
    end, cut = _hub_cap(start, end, cap)
    rows, positions = _expand(start, end)
    return _Segments(
        seg_of_inflow=seg_of_inflow,
        seg_d=seg_d,
        seg_v=seg_v,
        out_seg=rows,
        out_transfer=index.out_order[positions],
        cut=cut,
    )


def _event_order(seg: np.ndarray, rank: np.ndarray, inflow: np.ndarray) -> np.ndarray:
    """Order of events within each segment: by rank, an outflow before an inflow of the same
    transfer (a self-transfer's outflow sees the balance before its own inflow)."""
    return np.lexsort((inflow, rank, seg))


def _arrive(
    index: FlowIndex,
    layer: int,
    max_hops: int,
    dist: np.ndarray | None,
    banned: np.ndarray,
    ledger: list[pl.DataFrame],
    in_d: np.ndarray,
    in_v: np.ndarray,
    amount: np.ndarray,
    *carried: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """Book the money arriving at hop ``layer`` (``amount`` of drawdown ``in_d`` at account
    ``in_v``) in ``banned`` and ``ledger``: what reached a banned sink, what can no longer reach
    one within the hops left (``dist``), and at the last hop whatever is left. Returns
    ``(in_d, in_v, *carried)`` of the arrivals that move on, or None when none do. Shared by
    the amount policies, which replay hop by hop."""
    n = banned.shape[0]
    sink = index.sinks[in_v]
    banned[:, layer] = np.bincount(in_d[sink], weights=amount[sink], minlength=n)
    ledger.append(_ledger_frame(in_d[sink], in_v[sink], layer, amount[sink]))
    keep = ~sink
    if dist is not None:
        doomed = ~sink & (dist[in_v] > max_hops - layer)
        ledger.append(_ledger_frame(in_d[doomed], in_v[doomed], layer, amount[doomed]))
        keep &= ~doomed
    if layer == max_hops or not keep.any():
        ledger.append(_ledger_frame(in_d[keep], in_v[keep], layer, amount[keep]))
        return None
    return (in_d[keep], in_v[keep], *(values[keep] for values in carried))


def _replay_first(
    index: FlowIndex,
    dd: np.ndarray,
    window_days: float,
    max_hops: int,
    cap: int,
    dist: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    n, n_t = len(dd), max(len(index.amount), 1)
    banned = np.zeros((n, max_hops + 1))
    capped = np.zeros(n, dtype=bool)
    last_rank = index.window_end_rank(dd, window_days)
    ledger: list[pl.DataFrame] = []
    in_d = np.arange(n, dtype=np.int64)
    in_v, in_rank, in_amt = index.dd_account[dd], index.dd_rank[dd], index.dd_amount[dd]
    used_key, used_amt = np.zeros(0, dtype=np.int64), np.zeros(0)
    for layer in range(max_hops + 1):
        moving = _arrive(
            index, layer, max_hops, dist, banned, ledger, in_d, in_v, in_amt, in_rank, in_amt
        )
        if moving is None:
            break
        in_d, in_v, in_rank, in_amt = moving
        seg = _segments(index, in_d, in_v, in_rank, last_rank, cap)
        o_d = seg.seg_d[seg.out_seg]
        room = index.amount[seg.out_transfer] - _lookup(
            used_key, used_amt, o_d * n_t + seg.out_transfer
        )
        live = room > 0
        out_seg, out_transfer, room = seg.out_seg[live], seg.out_transfer[live], room[live]
        ev_seg = np.concatenate([seg.seg_of_inflow, out_seg])
        ev_rank = np.concatenate([in_rank, index.rank[out_transfer]])
        ev_in = np.concatenate([np.ones(len(in_d), np.int8), np.zeros(len(out_seg), np.int8)])
        ev_x = np.concatenate([in_amt, -room])
        order = _event_order(ev_seg, ev_rank, ev_in)
        balance = _lindley(ev_seg[order], ev_x[order])
        ev_after = np.empty(len(order))
        ev_after[order] = balance
        ev_before = np.empty(len(order))
        ev_before[order] = _shift_within(ev_seg[order], balance)
        moved = np.maximum(ev_before[len(in_d) :] - ev_after[len(in_d) :], 0.0)
        final = _last_within(ev_seg[order], balance, len(seg.seg_d))
        capped[seg.seg_d[seg.cut & (final > 0)]] = True
        ledger.append(_ledger_frame(seg.seg_d, seg.seg_v, layer, final))
        go = moved > 0
        out_seg, out_transfer, moved = out_seg[go], out_transfer[go], moved[go]
        out_d = seg.seg_d[out_seg]
        used_key, used_amt = _merge_sum(
            np.concatenate([used_key, out_d * n_t + out_transfer]),
            np.concatenate([used_amt, moved]),
        )
        in_d, in_v = out_d, index.dst[out_transfer]
        in_rank, in_amt = index.rank[out_transfer], moved
    return banned, capped, _concat_ledger(ledger)


def _concat_ledger(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(parts) if parts else _empty_ledger()
    return frame.filter(pl.col("amount") > 0)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at ``wanted`` in the sorted ``keys`` (0 where absent)."""
    found = np.zeros(len(wanted))
    if len(keys):
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        hit = keys[at] == wanted
        found[hit] = values[at[hit]]
    return found


def _merge_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    if not len(keys):
        return keys, values
    starts = _run_starts(keys)
    return keys[starts], np.add.reduceat(values, starts)


def _lindley(seg: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per event, ``B`` after ``B <- max(B + x, 0)`` from 0 at each segment start (seg sorted)."""
    if not len(seg):
        return np.zeros(0)
    frame = pl.DataFrame({"seg": seg, "x": x}).with_columns(s=pl.col("x").cum_sum().over("seg"))
    frame = frame.with_columns(m=pl.col("s").cum_min().over("seg"))
    s, m = frame.get_column("s").to_numpy(), frame.get_column("m").to_numpy()
    return np.maximum(s - np.minimum(m, 0.0), 0.0)


def _shift_within(seg: np.ndarray, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``values`` of the previous row of the same segment (``fill`` at a segment start)."""
    shifted = np.empty_like(values)
    if not len(values):
        return shifted
    shifted[1:] = values[:-1]
    shifted[_run_starts(seg)] = fill
    return shifted


def _last_within(seg: np.ndarray, values: np.ndarray, n_seg: int) -> np.ndarray:
    """The last value of each segment id ``0..n_seg-1`` (seg sorted; 0 when absent)."""
    last = np.zeros(n_seg)
    if len(seg):
        ends = np.append(_run_starts(seg)[1:], len(seg)) - 1
        last[seg[ends]] = values[ends]
    return last


def _replay_proportional(
    index: FlowIndex,
    dd: np.ndarray,
    window_days: float,
    max_hops: int,
    cap: int,
    dist: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    n = len(dd)
    banned = np.zeros((n, max_hops + 1))
    capped = np.zeros(n, dtype=bool)
    last_rank = index.window_end_rank(dd, window_days)
    balance_before = index._balances["balance_before"]
    ledger: list[pl.DataFrame] = []
    in_d = np.arange(n, dtype=np.int64)
    in_v, in_rank, in_amt = index.dd_account[dd], index.dd_rank[dd], index.dd_amount[dd]
    for layer in range(max_hops + 1):
        moving = _arrive(
            index, layer, max_hops, dist, banned, ledger, in_d, in_v, in_amt, in_rank, in_amt
        )
        if moving is None:
            break
        in_d, in_v, in_rank, in_amt = moving
        seg = _segments(index, in_d, in_v, in_rank, last_rank, cap)
        known = balance_before[seg.out_transfer]
        share = np.where(
            known > index.amount[seg.out_transfer],
            index.amount[seg.out_transfer] / np.where(known > 0, known, 1.0),
            1.0,
        )
        ev_seg = np.concatenate([seg.seg_of_inflow, seg.out_seg])
        ev_rank = np.concatenate([in_rank, index.rank[seg.out_transfer]])
        n_in = len(in_d)
        ev_in = np.concatenate([np.ones(n_in, np.int8), np.zeros(len(seg.out_seg), np.int8)])
        add = np.concatenate([in_amt, np.zeros(len(seg.out_seg))])
        keep_share = np.concatenate([np.ones(n_in), 1.0 - share])
        order = _event_order(ev_seg, ev_rank, ev_in)
        before, after = _linear_scan(ev_seg[order], keep_share[order], add[order], len(seg.seg_d))
        moved_sorted = before - after + add[order]
        moved = np.empty(len(order))
        moved[order] = moved_sorted
        moved = np.maximum(moved[n_in:], 0.0)
        final = _last_within(ev_seg[order], after, len(seg.seg_d))
        capped[seg.seg_d[seg.cut & (final > 0)]] = True
        ledger.append(_ledger_frame(seg.seg_d, seg.seg_v, layer, final))
        go = moved > 0
        out_seg, out_transfer, moved = seg.out_seg[go], seg.out_transfer[go], moved[go]
        in_d, in_v = seg.seg_d[out_seg], index.dst[out_transfer]
        in_rank, in_amt = index.rank[out_transfer], moved
    return banned, capped, _concat_ledger(ledger)


def _linear_scan(
    seg: np.ndarray, keep: np.ndarray, add: np.ndarray, n_seg: int
) -> tuple[np.ndarray, np.ndarray]:
    """``T <- T * keep + add`` along each segment (seg sorted), from 0; returns T before/after.

    Segments advance together, one event position per step, so the Python loop runs once per
    position (at most the longest segment, bounded by the hub cap), not once per event.
    """
    before, after = np.zeros(len(seg)), np.zeros(len(seg))
    if not len(seg):
        return before, after
    starts = _run_starts(seg)
    position = np.arange(len(seg)) - np.repeat(starts, np.diff(np.append(starts, len(seg))))
    by_position = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[by_position], np.arange(position.max() + 2))
    taint = np.zeros(n_seg)
    for step in range(len(bounds) - 1):
        idx = by_position[bounds[step] : bounds[step + 1]]
        owner = seg[idx]
        before[idx] = taint[owner]
        taint[owner] = taint[owner] * keep[idx] + add[idx]
        after[idx] = taint[owner]
    return before, after


def _replay_fifo(
    index: FlowIndex,
    dd: np.ndarray,
    window_days: float,
    max_hops: int,
    cap: int,
    dist: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """FIFO by position: money in an account is a queue; every inflow occupies an interval of the
    account's enqueue coordinate and every outflow an interval of its dequeue coordinate (both
    count the same money in the same order), so a piece of taint at ``[lo, hi)`` leaves with
    the outflows whose dequeue interval overlaps it, and lands at the same offset inside the
    receiver's interval for that transfer."""
    n = len(dd)
    banned = np.zeros((n, max_hops + 1))
    capped = np.zeros(n, dtype=bool)
    last_rank = index.window_end_rank(dd, window_days)
    deq, enq = index._balances["deq_start"], index._balances["enq_start"]
    out_src = index.src[index.out_order]
    # account + i * position sorts like (account, position): a segmented search key
    out_pos_key = out_src.astype(np.float64) + 1j * deq[index.out_order]
    ledger: list[pl.DataFrame] = []
    iv_d = np.arange(n, dtype=np.int64)
    iv_v = index.dd_account[dd]
    iv_lo = index._balances["dd_enq_start"][dd]
    iv_hi = iv_lo + index.dd_amount[dd]
    for layer in range(max_hops + 1):
        moving = _arrive(
            index, layer, max_hops, dist, banned, ledger, iv_d, iv_v, iv_hi - iv_lo, iv_lo, iv_hi
        )
        if moving is None:
            break
        iv_d, iv_v, iv_lo, iv_hi = moving
        account = iv_v.astype(np.float64)
        first = np.searchsorted(out_pos_key, account + 1j * iv_lo, side="right") - 1
        first = np.maximum(first, index.out_ptr[iv_v])
        end = np.searchsorted(out_pos_key, account + 1j * iv_hi, side="left")
        _, window_end = index.out_range(iv_v, np.zeros(len(iv_v), np.int64), last_rank[iv_d])
        end = np.maximum(np.minimum(end, window_end), first)
        end, cut = _hub_cap(first, end, cap)
        rows, positions = _expand(first, end)
        transfer = index.out_order[positions]
        piece_lo = np.maximum(iv_lo[rows], deq[transfer])
        piece_hi = np.minimum(iv_hi[rows], deq[transfer] + index.amount[transfer])
        real = piece_hi - piece_lo > _NOISE
        rows, transfer, piece_lo, piece_hi = (
            rows[real],
            transfer[real],
            piece_lo[real],
            piece_hi[real],
        )
        left = (iv_hi - iv_lo) - np.bincount(rows, weights=piece_hi - piece_lo, minlength=len(iv_d))
        left = np.maximum(left, 0.0)
        capped[iv_d[cut & (left > _NOISE)]] = True
        ledger.append(_ledger_frame(iv_d, iv_v, layer, left))
        offset = enq[transfer] - deq[transfer]
        iv_d, iv_v = iv_d[rows], index.dst[transfer]
        iv_lo, iv_hi = piece_lo + offset, piece_hi + offset
    return banned, capped, _concat_ledger(ledger)


# --------------------------------------------------------------------------------------------
# round trips


def round_trips(
    index: FlowIndex,
    *,
    window_days: float = 30.0,
    max_length: int = 6,
    max_cycles: int = 100_000,
    max_expand_per_hop: int = 10_000,
) -> tuple[pl.DataFrame, bool]:
    """Time-ordered transfer cycles through customers' accounts (round-tripping).

    Definition: transfers ``e1..ek`` (``2 <= k <= max_length``) with ``src(e1) = dst(ek) = a``,
    ``dst(ei) = src(ei+1)``, every account owned by a customer (merchant accounts are where
    commerce happens and are hubs; money through them is not a round trip), no account twice
    before returning to ``a``, each transfer strictly later than the one before and
    ``ts(ek) - ts(e1) <= window``.
    Each such sequence is reported once (its first transfer fixes its start). Only transfers
    inside one strongly connected component of the customer-to-customer transfer graph can lie
    on a cycle, so the enumeration starts and stays there; with one transfer left, it must go
    straight home. A cycle's amount is its smallest transfer.

    Caps: ``max_expand_per_hop`` transfers per partial cycle per hop, ``max_cycles`` cycles in
    all, and :data:`MAX_CYCLE_FRONTIER` partial cycles per hop; the second value returned says
    whether any cap was hit.

    Returns: (frame cycle_id, start_account, customer_id, length, transfer_ids, amount,
    duration; capped flag).

    Complexity: O(partial cycles * max_length) after an O(V + E) component pass.
    """
    n_t = len(index.amount)
    if n_t == 0 or index.n_accounts == 0:
        return _empty_cycles(), False
    between_customers = (index.owner_customer[index.src] >= 0) & (
        index.owner_customer[index.dst] >= 0
    )
    adjacency = sp.csr_array(
        (
            np.ones(int(between_customers.sum())),
            (index.src[between_customers], index.dst[between_customers]),
        ),
        shape=(index.n_accounts, index.n_accounts),
    )
    _, component = connected_components(adjacency, directed=True, connection="strong")
    customer_owned = index.owner_customer >= 0
    inside = (
        (component[index.src] == component[index.dst])
        & (index.src != index.dst)
        & customer_owned[index.src]
        & customer_owned[index.dst]
    )
    window = round(window_days * US_PER_DAY)
    starts = np.flatnonzero(inside)
    if not len(starts):
        return _empty_cycles(), False
    capped = False
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    total = 0
    for part in _batches(len(starts), max(MAX_CYCLE_FRONTIER // 20, 1)):
        batch, batch_capped = _cycles_from(
            index, starts[part], inside, window, max_length, max_expand_per_hop
        )
        capped |= batch_capped
        found.append(batch)
        total += len(batch[0])
        if total >= max_cycles:
            capped = capped or total > max_cycles
            break
    first_tr = np.concatenate([f[0] for f in found])
    length = np.concatenate([f[1] for f in found])
    transfers = np.concatenate([f[2] for f in found]) if found else np.zeros((0, max_length))
    if len(first_tr) > max_cycles:
        capped = True
    id_rank = np.append(index.id_order, -1)[transfers]
    columns = [id_rank[:, j] for j in range(transfers.shape[1] - 1, -1, -1)]
    order = np.lexsort((*columns, length, index.rank[first_tr]))[:max_cycles]
    first_tr, length, transfers = first_tr[order], length[order], transfers[order]
    if not len(first_tr):
        return _empty_cycles(), capped
    valid = transfers >= 0
    amount = np.append(index.amount, np.inf)[transfers].min(axis=1)
    last_tr = transfers[np.arange(len(transfers)), length - 1]
    path, step = np.nonzero(valid)
    ids = (
        pl.DataFrame(
            {"cycle": path, "transfer_id": index.transfer_ids.gather(transfers[path, step])}
        )
        .group_by("cycle", maintain_order=True)
        .agg(pl.col("transfer_id").alias("transfer_ids"))
    )
    start_account = index.src[first_tr]
    customer_ids = index.customer_ids.gather(index.owner_customer[start_account])
    frame = pl.DataFrame(
        {
            "cycle": np.arange(len(first_tr)),
            "cycle_id": pl.Series(np.arange(1, len(first_tr) + 1), dtype=pl.Int64),
            "start_account": index.account_ids.gather(start_account),
            "customer_id": customer_ids,
            "length": pl.Series(length, dtype=pl.Int32),
            "amount": amount,
            "duration": pl.Series(index.ts[last_tr] - index.ts[first_tr]).cast(pl.Duration("us")),
        }
    ).join(ids, on="cycle", how="left", maintain_order="left")
    return frame.select(
        "cycle_id", "start_account", "customer_id", "length", "transfer_ids", "amount", "duration"
    ), capped


def _has_edge(sorted_pairs: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(sorted_pairs, wanted), max(len(sorted_pairs) - 1, 0))
    return sorted_pairs[at] == wanted if len(sorted_pairs) else np.zeros(len(wanted), bool)


def _empty_cycles() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "cycle_id": pl.Int64,
            "start_account": pl.String,
            "customer_id": pl.String,
            "length": pl.Int32,
            "transfer_ids": pl.List(pl.String),
            "amount": pl.Float64,
            "duration": pl.Duration("us"),
        }
    )


def _cycles_from(
    index: FlowIndex,
    first: np.ndarray,
    inside: np.ndarray,
    window: int,
    max_length: int,
    cap: int,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], bool]:
    capped = False
    pairs = np.unique(index.src[inside] * index.n_accounts + index.dst[inside])
    home = index.src[first]
    acc = np.full((len(first), max_length), -1, dtype=np.int64)
    acc[:, 0], acc[:, 1] = home, index.dst[first]
    trs = np.full((len(first), max_length), -1, dtype=np.int64)
    trs[:, 0] = first
    f_row = np.arange(len(first))
    f_t = index.ts[first]
    deadline = index.ts[first] + window
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for hop in range(2, max_length + 1):
        if not len(f_row):
            break
        cur = acc[f_row, hop - 1]
        start_rank = np.searchsorted(index.event_ts, f_t, side="right").astype(np.int64)
        last = np.searchsorted(index.event_ts, deadline[f_row], side="right").astype(np.int64) - 1
        start, end = index.out_range(cur, start_rank, last)
        end, cut = _hub_cap(start, end, cap)
        capped |= bool(cut.any())
        rows, positions = _expand(start, end)
        transfer = index.out_order[positions]
        good = inside[transfer]
        rows, transfer = rows[good], transfer[good]
        origin = f_row[rows]
        nxt = index.dst[transfer]
        closes = nxt == home[origin]
        if closes.any():
            done = trs[origin[closes]].copy()
            done[:, hop - 1] = transfer[closes]
            out.append((first[origin[closes]], np.full(int(closes.sum()), hop), done))
        if hop == max_length:
            break
        fresh = ~closes & (acc[origin, :hop] != nxt[:, None]).all(axis=1)
        if hop + 1 == max_length:
            # one transfer left: it must go straight home
            fresh &= _has_edge(pairs, nxt * index.n_accounts + home[origin])
        origin, transfer, nxt = origin[fresh], transfer[fresh], nxt[fresh]
        if len(origin) > MAX_CYCLE_FRONTIER:
            capped = True
            origin, transfer, nxt = (
                origin[:MAX_CYCLE_FRONTIER],
                transfer[:MAX_CYCLE_FRONTIER],
                nxt[:MAX_CYCLE_FRONTIER],
            )
        new_acc = acc[origin].copy()
        new_acc[:, hop] = nxt
        new_trs = trs[origin].copy()
        new_trs[:, hop - 1] = transfer
        first, home, deadline = first[origin], home[origin], deadline[origin]
        acc, trs = new_acc, new_trs
        f_row, f_t = np.arange(len(origin)), index.ts[transfer]
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty, np.zeros((0, max_length), dtype=np.int64)), capped
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True)), capped  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class FlowResult:
    """Everything the flows stage publishes.

    ``flows``: per drawdown (drawdown_id, amount, banned_amount, banned_amount_3plus,
    banned_share, min_hops_to_banned, banned_hop_0..banned_hop_H, policy, capped, line_id,
    customer_id). ``paths``: evidence paths. ``cycles``: round trips. ``customer_flows``: per
    customer with drawdowns (customer_id, drawn_amount, banned_amount, banned_amount_3plus,
    banned_share). ``totals``: portfolio figures (``banned_share_3plus`` is the seed's "38% of
    loan money reaches banned sectors after 3 or more transfers").
    """

    flows: pl.DataFrame
    paths: pl.DataFrame
    cycles: pl.DataFrame
    customer_flows: pl.DataFrame
    totals: dict[str, Any]


def trace_flows(
    graph: RiskGraph,
    config: FlowsConfig | None = None,
    *,
    balances: pl.DataFrame | None = None,
    index: FlowIndex | None = None,
    cycles: bool = True,
    progress: Progress = SILENT,
) -> FlowResult:
    """Reach, evidence paths, banned amounts (``config.policy``) and round trips for every
    drawdown of ``graph``; ``balances`` are opening balances for ``fifo``/``proportional``."""
    cfg = config if config is not None else FlowsConfig()
    progress.start("flows: index")
    index = index if index is not None else FlowIndex.build(graph, balances)
    progress.finish("flows: index")
    common = {"window_days": cfg.window_days, "max_hops": cfg.max_hops}
    cap = cfg.max_expand_per_hop
    progress.start("flows: reach")
    hops = reach(index, max_expand_per_hop=cap, **common)
    progress.finish("flows: reach")
    progress.start("flows: evidence paths")
    reached = hops.filter(pl.col("min_hops_to_banned").is_not_null()).get_column("drawdown_id")
    paths, path_flags = evidence_paths(
        index,
        reached,
        paths_per_drawdown=cfg.evidence_paths,
        max_expand_per_hop=cap,
        max_paths_per_drawdown=cfg.max_paths_per_drawdown,
        **common,
    )
    progress.finish("flows: evidence paths")
    progress.start("flows: amounts")
    amounts = banned_amounts(index, policy=cfg.policy, max_expand_per_hop=cap, **common)
    progress.finish("flows: amounts")
    flows = _flows_frame(graph, index, cfg, hops, amounts, path_flags)
    customer_flows = customer_banned_share(flows)
    cycle_frame, cycles_capped = _empty_cycles(), False
    if cycles:
        progress.start("flows: round trips")
        cycle_frame, cycles_capped = round_trips(
            index,
            window_days=cfg.cycle_window_days,
            max_length=cfg.cycle_max_length,
            max_cycles=cfg.max_cycles,
            max_expand_per_hop=cap,
        )
        progress.finish("flows: round trips")
    totals = _totals(flows, cfg, len(cycle_frame), cycles_capped)
    return FlowResult(flows, paths, cycle_frame, customer_flows, totals)


def _flows_frame(
    graph: RiskGraph,
    index: FlowIndex,
    cfg: FlowsConfig,
    hops: pl.DataFrame,
    amounts: AmountResult,
    path_flags: pl.DataFrame,
) -> pl.DataFrame:
    banned = amounts.banned
    x = index.dd_amount
    lines = index.dd_line
    customers = graph.line_customer()[lines] if len(lines) else np.zeros(0, dtype=np.int64)
    by_hop = {f"banned_hop_{h}": banned[:, h] for h in range(cfg.max_hops + 1)}
    frame = pl.DataFrame(
        {
            "drawdown_id": index.dd_ids,
            "amount": x,
            "banned_amount": banned.sum(axis=1),
            "banned_amount_3plus": banned[:, 3:].sum(axis=1),
            **by_hop,
            "amount_capped": amounts.capped,
            "line_id": graph.keys("CreditLine").gather(lines),
            "customer_id": graph.keys("Customer").gather(np.maximum(customers, 0)),
        }
    ).with_columns(banned_share=pl.col("banned_amount") / pl.col("amount"))
    frame = frame.join(hops, on="drawdown_id", how="left", maintain_order="left").join(
        path_flags.rename({"capped": "paths_capped"}),
        on="drawdown_id",
        how="left",
        maintain_order="left",
    )
    return frame.select(
        "drawdown_id",
        "amount",
        "banned_amount",
        "banned_amount_3plus",
        "banned_share",
        "min_hops_to_banned",
        *by_hop,
        policy=pl.lit(cfg.policy),
        capped=pl.col("capped") | pl.col("amount_capped") | pl.col("paths_capped").fill_null(False),
        line_id="line_id",
        customer_id="customer_id",
    )


def customer_banned_share(flows: pl.DataFrame) -> pl.DataFrame:
    """Per customer with drawdowns: drawn_amount, banned_amount, banned_amount_3plus,
    banned_share (= banned_amount / drawn_amount)."""
    return (
        flows.group_by("customer_id")
        .agg(
            drawn_amount=pl.col("amount").sum(),
            banned_amount=pl.col("banned_amount").sum(),
            banned_amount_3plus=pl.col("banned_amount_3plus").sum(),
        )
        .with_columns(banned_share=pl.col("banned_amount") / pl.col("drawn_amount"))
        .sort("customer_id")
    )


def _totals(
    flows: pl.DataFrame, cfg: FlowsConfig, n_cycles: int, cycles_capped: bool
) -> dict[str, Any]:
    drawn = float(flows.get_column("amount").sum())
    banned = float(flows.get_column("banned_amount").sum())
    banned_3plus = float(flows.get_column("banned_amount_3plus").sum())
    return {
        "policy": cfg.policy,
        "window_days": cfg.window_days,
        "max_hops": cfg.max_hops,
        "drawdowns": flows.height,
        "drawn_amount": drawn,
        "banned_amount": banned,
        "banned_share": banned / drawn if drawn else 0.0,
        "banned_amount_3plus": banned_3plus,
        "banned_share_3plus": banned_3plus / drawn if drawn else 0.0,
        "banned_3plus_of_banned": banned_3plus / banned if banned else 0.0,
        "drawdowns_reaching_banned": int(
            flows.get_column("min_hops_to_banned").is_not_null().sum()
        ),
        "drawdowns_capped": int(flows.get_column("capped").sum()),
        "hub_cap_hit": bool(flows.get_column("capped").any()),
        "transfer_cycles": n_cycles,
        "cycle_cap_hit": cycles_capped,
    }
