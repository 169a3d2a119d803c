"""Banned amounts: how much of each drawdown lands in banned sinks, per hop layer and policy.

The three policies share one replay (:func:`replay`): taint arrives at hop layer ``h``, what
reached a sink (or can no longer reach one) is booked, and the policy decides which outflows of
each tainted account carry the rest to layer ``h + 1``. Only that last step differs:

* ``first`` - loan money leaves first: a Lindley scan of the taint in each (drawdown, account)
  against the room each outflow has left after lower layers took their share.
* ``proportional`` - every outflow takes its share ``m / balance`` of what the account holds,
  over balances rebuilt from all events.
* ``fifo`` - money is a queue: a piece of taint is an interval of the account's enqueue
  coordinate and leaves with the outflows whose dequeue interval overlaps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np
import polars as pl

from graphkit.analytics.flows._arrays import (
    BATCH_SIZE,
    batches,
    expand_ranges,
    hub_cap,
    last_within,
    lookup,
    merge_sum,
    run_starts,
    search_within,
    shift_within,
)
from graphkit.analytics.flows.index import DrawdownArrays, FlowIndex, TransferArrays
from graphkit.config import FlowPolicy

__all__ = ["AmountResult", "banned_amounts", "replay", "replay_window"]

# Pieces of taint smaller than this (currency units) are float noise of interval arithmetic.
_NOISE = 1e-9


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
    policy: FlowPolicy,
    window_days: float,
    max_hops: int,
    max_expand_per_hop: int,
    batch_size: int = BATCH_SIZE,
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

    Parameters: ``drawdown_ids`` restricts to these drawdowns (in that order; all by default).
    ``policy`` is one of ``graphkit.config.FLOW_POLICIES`` (checked when the config is
    loaded). ``window_days`` is W and ``max_hops`` is H. ``max_expand_per_hop`` caps the
    outflows one (drawdown, account, layer) may use; ``capped`` marks drawdowns where the cap
    kept taint back. ``batch_size`` drawdowns are replayed together (memory only; results do not
    depend on it). ``ledger`` also returns where every piece of taint ended.

    ``prune`` stops following taint in layer ``h`` of an account that cannot reach a sink in
    ``H - h`` hops even ignoring time. That leaves the banned amounts exactly as they are: such
    taint can only move to accounts and layers that are just as unable, and it only competes for
    a transfer's room with higher layers of its own account, which are unable too. In the
    ``ledger`` it is booked where it was when given up; ``prune=False`` follows every piece.

    Returns: :class:`AmountResult` (``banned`` rows in the order of ``drawdown_ids``).

    Complexity: O(H * active events * log) where active events are the outflows of accounts
    that hold a drawdown's taint, inside its window.

    References: ARCHITECTURE section 5 and ``docs/flows.md`` (the rules); D. V. Lindley, "The
    theory of queues with a single server", Proc. Cambridge Phil. Soc. 48(2), 1952 (the
    recursion); Devaynes v Noble, "Clayton's Case" (1816) 1 Mer 572 (``fifo``).

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
        >>> from graphkit.analytics.flows import banned_amounts
        >>> result = banned_amounts(
        ...     index, policy="first", window_days=1, max_hops=3, max_expand_per_hop=100
        ... )
        >>> result.banned.tolist()  # 80 of the loan leaves account 0, 50 of it reaches the sink
        [[0.0, 0.0, 50.0, 0.0]]
    """
    dd = index.positions(drawdown_ids)
    banned = np.zeros((len(dd), max_hops + 1))
    capped = np.zeros(len(dd), dtype=bool)
    ledgers: list[pl.DataFrame] = []
    live = np.arange(len(dd))
    if prune:
        # a drawdown into an account that cannot reach a sink at all is done before it starts
        dist = index.distance_to_sink(max_hops)
        a0 = index.dd_account[dd]
        alive = index.sinks[a0] | (dist[a0] <= max_hops)
        live = np.flatnonzero(alive)
        if ledger:
            dead = np.flatnonzero(~alive)
            ledgers.append(_ledger_frame(dead, a0[dead], 0, index.dd_amount[dd[dead]]))
    for part in batches(len(live), batch_size):
        rows = live[part]
        last_rank = index.window_end_rank(dd[rows], window_days)
        b, c, led = replay(
            index,
            dd[rows],
            last_rank,
            policy=policy,
            max_hops=max_hops,
            max_expand_per_hop=max_expand_per_hop,
            prune=prune,
        )
        banned[rows], capped[rows] = b, c
        if ledger:
            ledgers.append(led.with_columns(drawdown=rows[led.get_column("drawdown").to_numpy()]))
    return AmountResult(
        drawdowns=dd,
        banned=banned,
        capped=capped,
        ledger=pl.concat(ledgers) if ledger and ledgers else (_empty_ledger() if ledger else None),
    )


def replay(
    index: FlowIndex,
    dd: np.ndarray,
    last_rank: np.ndarray,
    *,
    policy: FlowPolicy,
    max_hops: int,
    max_expand_per_hop: int,
    prune: bool = True,
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Replay the drawdowns at positions ``dd`` of ``index`` hop layer by hop layer.

    This is the kernel under :func:`banned_amounts` and :func:`replay_window`: drawdown
    ``dd[i]`` may use the transfers from its own event rank up to ``last_rank[i]``.

    Returns: ``banned`` (len(dd), H + 1), ``capped`` (len(dd),) and the ledger frame (drawdown
    = row of ``dd``, account, layer, amount) of where every piece of taint ended.

    Complexity: as :func:`banned_amounts`, for these drawdowns.
    """
    n = len(dd)
    banned = np.zeros((n, max_hops + 1))
    capped = np.zeros(n, dtype=bool)
    ledger: list[pl.DataFrame] = []
    dist = index.distance_to_sink(max_hops) if prune else None
    step = _POLICIES[policy](index, last_rank, max_expand_per_hop)
    arrivals = step.start(dd)
    for layer in range(max_hops + 1):
        moving = _arrive(index, arrivals, layer, max_hops, dist, banned, ledger)
        if moving is None:
            break
        moved = step.move(moving)
        capped[moved.cut] = True
        ledger.append(_ledger_frame(moved.held_drawdown, moved.held_account, layer, moved.held))
        arrivals = moved.onward
    return banned, capped, _concat_ledger(ledger)


def replay_window(
    sinks: np.ndarray,
    transfers: TransferArrays,
    drawdowns: DrawdownArrays,
    *,
    policy: FlowPolicy,
    max_hops: int,
    max_expand_per_hop: int,
    opening: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Banned amounts of drawdowns given as plain arrays, over the transfers given.

    The entry point for engines that cut a drawdown's window themselves (a live engine as
    transfers arrive, a Spark grouped-map UDF per drawdown): pass one drawdown and the transfers
    of its window ``[t0, t0 + W]`` and get what :func:`banned_amounts` gives for it. Every
    drawdown given is replayed over every transfer given from its own time on, so transfers
    after the window must be left out; earlier ones are never followed.

    Parameters: ``sinks`` flags the banned-sector accounts (accounts are numbered
    ``0..len(sinks)-1``); ``transfers`` and ``drawdowns`` as in :meth:`FlowIndex.from_arrays`.
    ``fifo`` and ``proportional`` replay against balances rebuilt from ``opening`` (per account,
    0 by default) over the events given: to match a run over the whole history, pass the
    balances at the window's start, or the earlier events (drawdowns included) themselves.

    Returns: ``banned`` (drawdowns, H + 1), the amount landing in sinks at hop layer 0..H, and
    ``capped`` (drawdowns,), where the hub cap held taint back.

    Complexity: O((T + D) log(T + D)) to index the arrays, then as :func:`banned_amounts`.

    Examples:
        >>> import numpy as np
        >>> from graphkit.analytics.flows import DrawdownArrays, TransferArrays, replay_window
        >>> banned, capped = replay_window(
        ...     np.array([False, False, True]),  # account 2 is a banned sink
        ...     TransferArrays(
        ...         src=np.array([0, 1]),
        ...         dst=np.array([1, 2]),
        ...         amount=np.array([80.0, 50.0]),
        ...         ts=np.array([10, 20]),
        ...     ),
        ...     DrawdownArrays(account=np.array([0]), amount=np.array([100.0]), ts=np.array([0])),
        ...     policy="first",
        ...     max_hops=6,
        ...     max_expand_per_hop=10_000,
        ... )
        >>> banned[0].tolist(), capped.tolist()
        ([0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0], [False])
    """
    index = FlowIndex.from_arrays(
        sinks=sinks, transfers=transfers, drawdowns=drawdowns, opening=opening
    )
    dd = np.arange(index.n_drawdowns, dtype=np.int64)
    last_rank = np.full(len(dd), len(index.event_ts) - 1, dtype=np.int64)
    banned, capped, _ = replay(
        index,
        dd,
        last_rank,
        policy=policy,
        max_hops=max_hops,
        max_expand_per_hop=max_expand_per_hop,
    )
    return banned, capped


@dataclass
class _Arrivals:
    """Pieces of taint arriving at one hop layer: piece ``i`` of drawdown row ``drawdown[i]``
    (a row of the replayed batch) is ``amount[i]`` at ``account[i]``.

    ``rank`` is the event rank of the inflow that brought it (``first``, ``proportional``);
    ``lo``/``hi`` its interval in the account's enqueue coordinate (``fifo``, where ``amount``
    is ``hi - lo``).
    """

    drawdown: np.ndarray
    account: np.ndarray
    amount: np.ndarray
    rank: np.ndarray | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def take(self, keep: np.ndarray) -> _Arrivals:
        """The pieces selected by ``keep`` (a mask or indices)."""
        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        return _Arrivals(**{k: None if v is None else v[keep] for k, v in columns.items()})


@dataclass
class _Moved:
    """What one layer's outflows did: the taint each (drawdown, account) still holds, the
    drawdown rows where the hub cap kept some back, and the arrivals at the next layer."""

    held_drawdown: np.ndarray
    held_account: np.ndarray
    held: np.ndarray
    cut: np.ndarray
    onward: _Arrivals


class _Policy(Protocol):
    """One amount policy: where a batch starts and how taint leaves a tainted account."""

    def start(self, dd: np.ndarray) -> _Arrivals: ...

    def move(self, arrivals: _Arrivals) -> _Moved: ...


def _arrive(
    index: FlowIndex,
    arrivals: _Arrivals,
    layer: int,
    max_hops: int,
    dist: np.ndarray | None,
    banned: np.ndarray,
    ledger: list[pl.DataFrame],
) -> _Arrivals | None:
    """Book the money arriving at hop ``layer`` in ``banned`` and ``ledger``: what reached a
    banned sink, what can no longer reach one within the hops left (``dist``), and at the last
    hop whatever is left. Returns the arrivals that move on, or None when none do."""
    d, v, amount = arrivals.drawdown, arrivals.account, arrivals.amount
    sink = index.sinks[v]
    banned[:, layer] = np.bincount(d[sink], weights=amount[sink], minlength=banned.shape[0])
    ledger.append(_ledger_frame(d[sink], v[sink], layer, amount[sink]))
    keep = ~sink
    if dist is not None:
        doomed = ~sink & (dist[v] > max_hops - layer)
        ledger.append(_ledger_frame(d[doomed], v[doomed], layer, amount[doomed]))
        keep &= ~doomed
    if layer == max_hops or not keep.any():
        ledger.append(_ledger_frame(d[keep], v[keep], layer, amount[keep]))
        return None
    return arrivals.take(keep)


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
    end, cut = hub_cap(start, end, cap)
    rows, positions = expand_ranges(start, end)
    return _Segments(
        seg_of_inflow=seg_of_inflow,
        seg_d=seg_d,
        seg_v=seg_v,
        out_seg=rows,
        out_transfer=index.out_order[positions],
        cut=cut,
    )


def _drawdown_arrivals(index: FlowIndex, dd: np.ndarray) -> _Arrivals:
    """Layer 0: each drawdown's whole amount at its account, arriving at its event rank."""
    d = np.arange(len(dd), dtype=np.int64)
    return _Arrivals(d, index.dd_account[dd], index.dd_amount[dd], rank=index.dd_rank[dd])


@dataclass
class _Events:
    """The inflows, then the outflows, of every segment, and the order that puts them in time
    within each segment (``seg`` is the segment of each event in that order)."""

    seg: np.ndarray
    order: np.ndarray
    n_in: int

    def in_time(self, inflows: np.ndarray, outflows: np.ndarray) -> np.ndarray:
        """Per-event values given as inflows then outflows, in time order."""
        return np.concatenate([inflows, outflows])[self.order]

    def outflows(self, in_time: np.ndarray) -> np.ndarray:
        """The outflows' values of per-event values given in time order."""
        values = np.empty(len(self.order))
        values[self.order] = in_time
        return values[self.n_in :]


def _events(
    index: FlowIndex,
    seg: _Segments,
    in_rank: np.ndarray,
    out_seg: np.ndarray,
    out_transfer: np.ndarray,
) -> _Events:
    """Order the events of each segment by rank, an outflow before an inflow of the same
    transfer (a self-transfer's outflow sees the balance before its own inflow)."""
    n_in, n_out = len(in_rank), len(out_seg)
    ev_seg = np.concatenate([seg.seg_of_inflow, out_seg])
    ev_rank = np.concatenate([in_rank, index.rank[out_transfer]])
    ev_in = np.concatenate([np.ones(n_in, np.int8), np.zeros(n_out, np.int8)])
    order = np.lexsort((ev_in, ev_rank, ev_seg))
    return _Events(seg=ev_seg[order], order=order, n_in=n_in)


class _First:
    """``first`` (ARCHITECTURE section 5): loan money leaves an account before any other.

    The taint of one (drawdown, account, layer) follows ``B <- max(B + x, 0)`` over its
    inflows and the *room* of each outflow: the transfer's amount less what lower layers of the
    same drawdown already moved with it (kept across layers in ``used``).
    """

    def __init__(self, index: FlowIndex, last_rank: np.ndarray, cap: int) -> None:
        self.index, self.last_rank, self.cap = index, last_rank, cap
        self.n_t = max(len(index.amount), 1)
        self.used_key, self.used_amt = np.zeros(0, dtype=np.int64), np.zeros(0)

    def start(self, dd: np.ndarray) -> _Arrivals:
        return _drawdown_arrivals(self.index, dd)

    def move(self, arrivals: _Arrivals) -> _Moved:
        index, n_t = self.index, self.n_t
        in_d, in_rank, in_amt = arrivals.drawdown, arrivals.rank, arrivals.amount
        assert in_rank is not None
        seg = _segments(index, in_d, arrivals.account, in_rank, self.last_rank, self.cap)
        o_d = seg.seg_d[seg.out_seg]
        used = lookup(self.used_key, self.used_amt, o_d * n_t + seg.out_transfer)
        room = index.amount[seg.out_transfer] - used
        live = room > 0
        out_seg, out_transfer, room = seg.out_seg[live], seg.out_transfer[live], room[live]
        events = _events(index, seg, in_rank, out_seg, out_transfer)
        balance = _lindley(events.seg, events.in_time(in_amt, -room))
        before = events.outflows(shift_within(events.seg, balance))
        moved = np.maximum(before - events.outflows(balance), 0.0)
        final = last_within(events.seg, balance, len(seg.seg_d))
        cut = seg.seg_d[seg.cut & (final > 0)]
        go = moved > 0
        out_seg, out_transfer, moved = out_seg[go], out_transfer[go], moved[go]
        out_d = seg.seg_d[out_seg]
        self.used_key, self.used_amt = merge_sum(
            np.concatenate([self.used_key, out_d * n_t + out_transfer]),
            np.concatenate([self.used_amt, moved]),
        )
        onward = _Arrivals(out_d, index.dst[out_transfer], moved, rank=index.rank[out_transfer])
        return _Moved(seg.seg_d, seg.seg_v, final, cut, onward)


class _Proportional:
    """``proportional``: an outflow of ``m`` from a rebuilt balance ``B`` takes the share
    ``min(m / B, 1)`` of the taint the account holds, so taint follows ``T <- T * keep + add``
    along each (drawdown, account, layer)."""

    def __init__(self, index: FlowIndex, last_rank: np.ndarray, cap: int) -> None:
        self.index, self.last_rank, self.cap = index, last_rank, cap

    def start(self, dd: np.ndarray) -> _Arrivals:
        return _drawdown_arrivals(self.index, dd)

    def move(self, arrivals: _Arrivals) -> _Moved:
        index = self.index
        in_d, in_rank, in_amt = arrivals.drawdown, arrivals.rank, arrivals.amount
        assert in_rank is not None
        seg = _segments(index, in_d, arrivals.account, in_rank, self.last_rank, self.cap)
        known = index.balances.balance_before[seg.out_transfer]
        share = np.where(
            known > index.amount[seg.out_transfer],
            index.amount[seg.out_transfer] / np.where(known > 0, known, 1.0),
            1.0,
        )
        events = _events(index, seg, in_rank, seg.out_seg, seg.out_transfer)
        add = events.in_time(in_amt, np.zeros(len(seg.out_seg)))
        keep = events.in_time(np.ones(len(in_d)), 1.0 - share)
        before, after = _linear_scan(events.seg, keep, add, len(seg.seg_d))
        moved = np.maximum(events.outflows(before - after + add), 0.0)
        final = last_within(events.seg, after, len(seg.seg_d))
        cut = seg.seg_d[seg.cut & (final > 0)]
        go = moved > 0
        out_seg, out_transfer, moved = seg.out_seg[go], seg.out_transfer[go], moved[go]
        onward = _Arrivals(
            seg.seg_d[out_seg], index.dst[out_transfer], moved, rank=index.rank[out_transfer]
        )
        return _Moved(seg.seg_d, seg.seg_v, final, cut, onward)


class _Fifo:
    """``fifo`` by position: money in an account is a queue; every inflow occupies an interval
    of the account's enqueue coordinate and every outflow an interval of its dequeue coordinate
    (both count the same money in the same order), so a piece of taint at ``[lo, hi)`` leaves
    with the outflows whose dequeue interval overlaps it, and lands at the same offset inside
    the receiver's interval for that transfer."""

    def __init__(self, index: FlowIndex, last_rank: np.ndarray, cap: int) -> None:
        self.index, self.last_rank, self.cap = index, last_rank, cap
        self.deq, self.enq = index.balances.deq_start, index.balances.enq_start
        # each account's outflows in CSR order have non-decreasing dequeue positions
        self.out_deq = self.deq[index.out_order]

    def start(self, dd: np.ndarray) -> _Arrivals:
        index = self.index
        lo = index.balances.dd_enq_start[dd]
        hi = lo + index.dd_amount[dd]
        d = np.arange(len(dd), dtype=np.int64)
        return _Arrivals(d, index.dd_account[dd], hi - lo, lo=lo, hi=hi)

    def move(self, arrivals: _Arrivals) -> _Moved:
        index, deq = self.index, self.deq
        iv_d, iv_v, iv_lo, iv_hi = arrivals.drawdown, arrivals.account, arrivals.lo, arrivals.hi
        assert iv_lo is not None and iv_hi is not None
        own_lo, own_hi = index.out_ptr[iv_v], index.out_ptr[iv_v + 1]
        first = search_within(self.out_deq, own_lo, own_hi, iv_lo, side="right") - 1
        first = np.maximum(first, own_lo)
        end = search_within(self.out_deq, own_lo, own_hi, iv_hi, side="left")
        _, window_end = index.out_range(iv_v, np.zeros(len(iv_v), np.int64), self.last_rank[iv_d])
        end = np.maximum(np.minimum(end, window_end), first)
        end, cut = hub_cap(first, end, self.cap)
        rows, positions = expand_ranges(first, end)
        transfer = index.out_order[positions]
        piece_lo = np.maximum(iv_lo[rows], deq[transfer])
        piece_hi = np.minimum(iv_hi[rows], deq[transfer] + index.amount[transfer])
        real = piece_hi - piece_lo > _NOISE
        rows, transfer = rows[real], transfer[real]
        piece_lo, piece_hi = piece_lo[real], piece_hi[real]
        left = (iv_hi - iv_lo) - np.bincount(rows, weights=piece_hi - piece_lo, minlength=len(iv_d))
        left = np.maximum(left, 0.0)
        offset = self.enq[transfer] - deq[transfer]
        lo, hi = piece_lo + offset, piece_hi + offset
        onward = _Arrivals(iv_d[rows], index.dst[transfer], hi - lo, lo=lo, hi=hi)
        return _Moved(iv_d, iv_v, left, iv_d[cut & (left > _NOISE)], onward)


_POLICIES: dict[str, Callable[[FlowIndex, np.ndarray, int], _Policy]] = {
    "first": _First,
    "fifo": _Fifo,
    "proportional": _Proportional,
}


def _lindley(seg: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per event, ``B`` after ``B <- max(B + x, 0)`` from 0 at each segment start (seg sorted)."""
    if not len(seg):
        return np.zeros(0)
    frame = pl.DataFrame({"seg": seg, "x": x}).with_columns(s=pl.col("x").cum_sum().over("seg"))
    frame = frame.with_columns(m=pl.col("s").cum_min().over("seg"))
    s, m = frame.get_column("s").to_numpy(), frame.get_column("m").to_numpy()
    return np.maximum(s - np.minimum(m, 0.0), 0.0)


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
    starts = run_starts(seg)
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


def _concat_ledger(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(parts) if parts else _empty_ledger()
    return frame.filter(pl.col("amount") > 0)
