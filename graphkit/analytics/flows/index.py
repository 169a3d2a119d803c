"""The flow index: transfers and drawdowns arranged for tracing, and rebuilt balances.

Every flow kernel reads a :class:`FlowIndex`: transfers in one *event order* (by time,
drawdowns before transfers at the same instant, then by id), a CSR of each account's outgoing
transfers sorted by event rank, and per transfer the balances that the ``fifo`` and
``proportional`` amount policies replay against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from graphkit.graph import RiskGraph

__all__ = ["US_PER_DAY", "FlowIndex"]

US_PER_DAY = 86_400_000_000


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
