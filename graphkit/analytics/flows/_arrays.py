"""Segmented array primitives shared by the flow kernels.

Every kernel holds its frontier as flat numpy arrays of rows grouped into *segments* (runs of
equal, sorted keys such as a drawdown or a (drawdown, account) pair). These helpers expand CSR
ranges into rows and scan within segments without a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = [
    "BATCH_SIZE",
    "batches",
    "expand_ranges",
    "hub_cap",
    "last_within",
    "lookup",
    "merge_sum",
    "rank_within",
    "run_starts",
    "search_within",
    "shift_within",
]

# Drawdowns traced together; bounds the frontier held in memory at once. Batching never changes
# a result (drawdowns are independent), so this is a memory bound, not a setting of the analysis.
BATCH_SIZE = 100_000


def expand_ranges(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[start_i, end_i)``: the owning row of every position, and the position."""
    counts = np.maximum(end - start, 0)
    rows = np.repeat(np.arange(len(start), dtype=np.int64), counts)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    return rows, start[rows] + offsets


def batches(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of at most ``size`` rows."""
    for lo in range(0, n, max(size, 1)):
        yield slice(lo, min(lo + size, n))


def hub_cap(start: np.ndarray, end: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each range to its first ``cap`` positions; returns the new ends and who was cut."""
    cut = end - start > cap
    return np.where(cut, start + cap, end), cut


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values begins in ``sorted_values``."""
    starts = np.ones(len(sorted_values), dtype=bool)
    starts[1:] = sorted_values[1:] != sorted_values[:-1]
    return np.flatnonzero(starts)


def rank_within(group: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal (sorted) ``group`` values."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(len(group), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(group)), 0))
    return np.arange(len(group)) - first + 1


def shift_within(seg: np.ndarray, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``values`` of the previous row of the same segment (``fill`` at a segment start)."""
    shifted = np.empty_like(values)
    if not len(values):
        return shifted
    shifted[1:] = values[:-1]
    shifted[run_starts(seg)] = fill
    return shifted


def last_within(seg: np.ndarray, values: np.ndarray, n_seg: int) -> np.ndarray:
    """The last value of each segment id ``0..n_seg-1`` (seg sorted; 0 when absent)."""
    last = np.zeros(n_seg)
    if len(seg):
        ends = np.append(run_starts(seg)[1:], len(seg)) - 1
        last[seg[ends]] = values[ends]
    return last


def lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at ``wanted`` in the sorted ``keys`` (0 where absent)."""
    found = np.zeros(len(wanted))
    if len(keys):
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        hit = keys[at] == wanted
        found[hit] = values[at[hit]]
    return found


def merge_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``keys`` and the sum of ``values`` per key."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    if not len(keys):
        return keys, values
    starts = run_starts(keys)
    return keys[starts], np.add.reduceat(values, starts)


def search_within(
    keys: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray, side: str
) -> np.ndarray:
    """``np.searchsorted(keys[lo_i:hi_i], x_i, side) + lo_i`` for every query ``i`` at once.

    ``keys`` need only be sorted inside each range (e.g. per account of a CSR). A vectorised
    bisection: O(m log(longest range)) for m queries.
    """
    lo, hi = lo.astype(np.int64, copy=True), hi.astype(np.int64, copy=True)
    if not len(keys):
        return lo
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        probe = keys[np.minimum(mid, len(keys) - 1)]
        right = (probe <= x) if side == "right" else (probe < x)
        right &= open_
        lo = np.where(right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
