"""Banned amounts: how much of each drawdown lands in banned sinks, per hop layer and policy."""

from __future__ import annotations

from dataclasses import dataclass

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
    shift_within,
)
from graphkit.analytics.flows.index import FlowIndex
from graphkit.config import FLOW_POLICIES

__all__ = ["AmountResult", "banned_amounts"]

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
    policy: str = "first",
    window_days: float = 30.0,
    max_hops: int = 6,
    max_expand_per_hop: int = 10_000,
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
    for part in batches(len(live), batch_size):
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
        room = index.amount[seg.out_transfer] - lookup(
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
        ev_before[order] = shift_within(ev_seg[order], balance)
        moved = np.maximum(ev_before[len(in_d) :] - ev_after[len(in_d) :], 0.0)
        final = last_within(ev_seg[order], balance, len(seg.seg_d))
        capped[seg.seg_d[seg.cut & (final > 0)]] = True
        ledger.append(_ledger_frame(seg.seg_d, seg.seg_v, layer, final))
        go = moved > 0
        out_seg, out_transfer, moved = out_seg[go], out_transfer[go], moved[go]
        out_d = seg.seg_d[out_seg]
        used_key, used_amt = merge_sum(
            np.concatenate([used_key, out_d * n_t + out_transfer]),
            np.concatenate([used_amt, moved]),
        )
        in_d, in_v = out_d, index.dst[out_transfer]
        in_rank, in_amt = index.rank[out_transfer], moved
    return banned, capped, _concat_ledger(ledger)


def _concat_ledger(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(parts) if parts else _empty_ledger()
    return frame.filter(pl.col("amount") > 0)


def _lindley(seg: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per event, ``B`` after ``B <- max(B + x, 0)`` from 0 at each segment start (seg sorted)."""
    if not len(seg):
        return np.zeros(0)
    frame = pl.DataFrame({"seg": seg, "x": x}).with_columns(s=pl.col("x").cum_sum().over("seg"))
    frame = frame.with_columns(m=pl.col("s").cum_min().over("seg"))
    s, m = frame.get_column("s").to_numpy(), frame.get_column("m").to_numpy()
    return np.maximum(s - np.minimum(m, 0.0), 0.0)


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
        final = last_within(ev_seg[order], after, len(seg.seg_d))
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
        end, cut = hub_cap(first, end, cap)
        rows, positions = expand_ranges(first, end)
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
