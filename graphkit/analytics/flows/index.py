"""The flow index: transfers and drawdowns arranged for tracing, and rebuilt balances.

Every flow kernel reads a :class:`FlowIndex`: transfers in one *event order* (by time,
drawdowns before transfers at the same instant, then by id), a CSR of each account's outgoing
transfers sorted by event rank, and per transfer the balances that the ``fifo`` and
``proportional`` amount policies replay against. :meth:`FlowIndex.build` reads a
:class:`~graphkit.graph.RiskGraph`; :meth:`FlowIndex.from_arrays` takes plain numpy arrays (one
drawdown's window of transfers, say) so other engines can call the same kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from graphkit.graph import RiskGraph

__all__ = ["US_PER_DAY", "Balances", "DrawdownArrays", "FlowIndex", "TransferArrays"]

US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class TransferArrays:
    """Transfers as plain arrays: account numbers ``0..n_accounts-1``, ``ts`` in epoch
    microseconds. ``ids`` (strings) break ties between transfers at one instant; without them
    the given order does."""

    src: np.ndarray
    dst: np.ndarray
    amount: np.ndarray
    ts: np.ndarray
    ids: pl.Series | None = None


@dataclass(frozen=True)
class DrawdownArrays:
    """Drawdowns as plain arrays: the ``account`` the loan money lands in, its ``amount`` and
    ``ts`` (epoch microseconds); ``ids`` as for :class:`TransferArrays`; ``line`` the credit
    line number (only :func:`~graphkit.analytics.flows.trace_flows` reads it)."""

    account: np.ndarray
    amount: np.ndarray
    ts: np.ndarray
    ids: pl.Series | None = None
    line: np.ndarray | None = None


@dataclass(frozen=True)
class Balances:
    """Balances rebuilt over all events, for the ``fifo`` and ``proportional`` policies.

    Attributes:
        balance_before: per transfer, the rebuilt balance of its source just before it.
        deq_start: per transfer, where its outflow starts in the source's dequeue coordinate.
        enq_start: per transfer, where its inflow starts in the receiver's enqueue coordinate.
        dd_enq_start: per drawdown, the same for the drawdown's inflow into its account.
    """

    balance_before: np.ndarray
    deq_start: np.ndarray
    enq_start: np.ndarray
    dd_enq_start: np.ndarray


@dataclass(eq=False)
class FlowIndex:
    """Transfers and drawdowns arranged for tracing; build once with :meth:`build` (from a
    graph) or :meth:`from_arrays` (from plain arrays).

    Drawdowns and transfers share one *event order*: by time, drawdowns before transfers at the
    same instant, then by id. Transfer ``i`` is the ``i``-th transfer in that order.

    Attributes:
        n_accounts: number of accounts; ``sinks`` flags the banned-sector ones.
        src, dst, amount, ts, rank: per transfer (ts in epoch microseconds, rank = event rank).
        transfer_ids: transfer keys in transfer order; ``id_order`` their lexicographic rank.
        out_order: transfer indices sorted by ``(src, rank)``; ``out_key`` = src * stride + rank
            in that order; ``out_ptr`` the CSR row pointer over accounts.
        event_ts: the time of every event, in event order (sorted).
        dd_*: per drawdown, in the order given (``graph.edges["drawdown"]`` for a graph).
        owner_customer: per account, the customer owning it or -1; ``customer_ids`` their keys.
        balances: see :class:`Balances`.

    Examples:
        >>> index = FlowIndex.build(graph)  # doctest: +SKIP
        >>> index.n_drawdowns, index.n_accounts  # doctest: +SKIP
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
    balances: Balances = field(init=False, repr=False)
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
        return cls.from_arrays(
            sinks=graph.banned_sink_accounts(),
            transfers=TransferArrays(
                src=transfers.get_column("src").to_numpy(),
                dst=transfers.get_column("dst").to_numpy(),
                amount=transfers.get_column("amount").to_numpy(),
                ts=transfers.get_column("ts").dt.epoch("us").to_numpy(),
                ids=transfers.get_column("transfer_id"),
            ),
            drawdowns=DrawdownArrays(
                account=drawdowns.get_column("dst").to_numpy(),
                amount=drawdowns.get_column("amount").to_numpy(),
                ts=drawdowns.get_column("ts").dt.epoch("us").to_numpy(),
                ids=drawdowns.get_column("drawdown_id"),
                line=drawdowns.get_column("src").to_numpy(),
            ),
            opening=_opening_balances(graph, balances),
            account_ids=graph.keys("Account"),
            owner_customer=graph.account_owner_customer(),
            customer_ids=graph.keys("Customer"),
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        sinks: np.ndarray,
        transfers: TransferArrays,
        drawdowns: DrawdownArrays,
        opening: np.ndarray | None = None,
        account_ids: pl.Series | None = None,
        owner_customer: np.ndarray | None = None,
        customer_ids: pl.Series | None = None,
    ) -> FlowIndex:
        """Index transfers and drawdowns given as plain arrays over accounts ``0..len(sinks)-1``.

        Parameters: ``sinks`` flags the banned-sector accounts. ``opening`` is each account's
        balance before the first event (0 when absent); the ``fifo`` and ``proportional``
        policies replay against balances rebuilt from it over the events given, so to match a
        run over all history pass the balances at the window's start and every event in the
        window. ``account_ids`` name the accounts in the tables the kernels return (their
        numbers by default). ``owner_customer`` (customer number or -1 per account, all -1 by
        default) and ``customer_ids`` are what :func:`round_trips` needs.

        Returns: the index; kernels read it as they read one built from a graph.

        Raises: ``ValueError`` naming the field when arrays differ in length or an account
        number is outside ``0..len(sinks)-1``.

        Complexity: O((T + D) log(T + D)) for T transfers and D drawdowns.

        Examples:
            >>> import numpy as np
            >>> index = FlowIndex.from_arrays(
            ...     sinks=np.array([False, False, True]),
            ...     transfers=TransferArrays(
            ...         src=np.array([0, 1]),
            ...         dst=np.array([1, 2]),
            ...         amount=np.array([80.0, 50.0]),
            ...         ts=np.array([10, 20]),
            ...     ),
            ...     drawdowns=DrawdownArrays(
            ...         account=np.array([0]), amount=np.array([100.0]), ts=np.array([0])
            ...     ),
            ... )
            >>> index.n_drawdowns, index.n_accounts
            (1, 3)
        """
        sinks = np.asarray(sinks, dtype=bool)
        n_accounts = len(sinks)
        _check_arrays(n_accounts, transfers, drawdowns, opening)
        n_dd = len(drawdowns.account)
        n_t = len(transfers.src)
        t_names, t_keys = _names_and_keys(transfers.ids, n_t)
        d_names, d_keys = _names_and_keys(drawdowns.ids, n_dd)
        events = pl.concat(
            [
                pl.DataFrame(
                    {
                        "ts": np.asarray(drawdowns.ts, dtype=np.int64),
                        "kind": np.zeros(n_dd, dtype=np.int8),
                        "key": d_keys,
                        "pos": np.arange(n_dd, dtype=np.int64),
                    }
                ),
                pl.DataFrame(
                    {
                        "ts": np.asarray(transfers.ts, dtype=np.int64),
                        "kind": np.ones(n_t, dtype=np.int8),
                        "key": t_keys,
                        "pos": np.arange(n_t, dtype=np.int64),
                    }
                ),
            ]
        ).sort("ts", "kind", "key")
        event_ts = events.get_column("ts").to_numpy().astype(np.int64)
        kind = events.get_column("kind").to_numpy()
        pos = events.get_column("pos").to_numpy()
        ranks = np.arange(len(events), dtype=np.int64)

        transfer_pos = pos[kind == 1]
        t_src = np.asarray(transfers.src).astype(np.int64)[transfer_pos]
        t_dst = np.asarray(transfers.dst).astype(np.int64)[transfer_pos]
        t_amount = np.asarray(transfers.amount).astype(np.float64)[transfer_pos]
        t_ids = t_names.gather(transfer_pos)
        id_order = np.empty(len(t_ids), dtype=np.int64)
        id_order[t_keys.gather(transfer_pos).arg_sort().to_numpy()] = np.arange(len(t_ids))
        stride = len(events) + 1
        out_order = np.argsort(t_src, kind="stable")
        t_rank = ranks[kind == 1]

        dd_rank = np.empty(n_dd, dtype=np.int64)
        dd_rank[pos[kind == 0]] = ranks[kind == 0]
        if account_ids is None:
            account_ids = pl.Series(np.arange(n_accounts)).cast(pl.String)
        if owner_customer is None:
            owner_customer = np.full(n_accounts, -1)
        line = drawdowns.line if drawdowns.line is not None else np.zeros(n_dd)
        if customer_ids is None:
            customer_ids = pl.Series([], dtype=pl.String)
        index = cls(
            n_accounts=n_accounts,
            sinks=sinks,
            account_ids=account_ids,
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
            dd_account=np.asarray(drawdowns.account).astype(np.int64),
            dd_amount=np.asarray(drawdowns.amount).astype(np.float64),
            dd_ts=np.asarray(drawdowns.ts).astype(np.int64),
            dd_rank=dd_rank,
            dd_ids=d_names,
            dd_line=np.asarray(line).astype(np.int64),
            owner_customer=np.asarray(owner_customer).astype(np.int64),
            customer_ids=customer_ids
            if customer_ids is not None
            else pl.Series([], dtype=pl.String),
        )
        if opening is None:
            opening = np.zeros(n_accounts, dtype=np.float64)
        index.balances = _rebuild_balances(index, opening)
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


def _rebuild_balances(index: FlowIndex, opening: np.ndarray) -> Balances:
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
    by_row[row] = balance_before
    before = by_row[:n_t].copy()
    by_row[row] = dequeue
    deq_start = by_row[:n_t].copy()
    by_row[row] = enqueue
    return Balances(
        balance_before=before,
        deq_start=deq_start,
        enq_start=by_row[n_t : 2 * n_t].copy(),
        dd_enq_start=by_row[2 * n_t :].copy(),
    )


def _check_arrays(
    n_accounts: int,
    transfers: TransferArrays,
    drawdowns: DrawdownArrays,
    opening: np.ndarray | None,
) -> None:
    """Reject arrays that differ in length or name accounts outside ``0..n_accounts-1``."""
    groups = {
        "transfers": {name: getattr(transfers, name) for name in ("src", "dst", "amount", "ts")},
        "drawdowns": {name: getattr(drawdowns, name) for name in ("account", "amount", "ts")},
    }
    if transfers.ids is not None:
        groups["transfers"]["ids"] = transfers.ids
    for name in ("ids", "line"):
        if getattr(drawdowns, name) is not None:
            groups["drawdowns"][name] = getattr(drawdowns, name)
    for group, columns in groups.items():
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            found = ", ".join(f"{name} {n}" for name, n in lengths.items())
            raise ValueError(f"{group}: arrays differ in length ({found})")
    accounts = {
        "transfers.src": transfers.src,
        "transfers.dst": transfers.dst,
        "drawdowns.account": drawdowns.account,
    }
    for name, values in accounts.items():
        values = np.asarray(values)
        if len(values) and (values.min() < 0 or values.max() >= n_accounts):
            raise ValueError(f"{name}: account numbers must lie in 0..{n_accounts - 1}")
    if opening is not None and len(opening) != n_accounts:
        raise ValueError(f"opening: {len(opening)} balances for {n_accounts} accounts")


def _names_and_keys(ids: pl.Series | None, n: int) -> tuple[pl.Series, pl.Series]:
    """Ids to show and ids to break ties by: the given ids for both, or else the positions
    ``0..n-1`` shown as they are and zero-padded so that they sort like numbers."""
    if ids is not None:
        return ids, ids
    names = pl.Series(np.arange(n, dtype=np.int64)).cast(pl.String)
    return names, names.str.zfill(19)


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
