"""Per-account tables of the open fund-flow traces' money (the arrays behind ``LiveFlows``).

Every account an open trace's money reached has a :class:`Holdings` table: a row per trace, a
column per hop layer. A transfer out of an account then moves the money of every trace holding
some there in one numpy step (:func:`step`), instead of a Python step per trace: the cost of a
transfer out of an account with hundreds of holders was that Python loop.

Exactness: each trace's money moves on its own (a trace's room is the transfer's amount, not
shared with other traces), so the step works row-wise; per row it does the same float
operations, in the same order, as the one-trace loop of ``LiveFlows._step_row`` (``held -
room``, ``room - held``, ``taint + amount``), which are elementwise in numpy and so give the
same bits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Holdings", "any_row", "step"]


class Holdings:
    """The open traces whose money reached one account: a row each, a column per hop layer.

    ``row``: trace number (``Trace.uid``) -> row; ``uid``: each row's trace number.
    ``taint``: the amount held per layer (the ``first`` policy's replay). Per layer, the first
    arrival of the trace's money there: ``via``, the transfer log's entry ``(ts, transfer_id,
    dst, amount, source account)`` of the transfer that brought it (the path the money took:
    evidence; the log's own tuple, shared, not a copy), and ``since`` (int32) one more than
    the number of transfers out of the account logged at or before it (0: no money arrived in
    that layer yet; the hub cap counts the account's transfers out after it). Three columns (time,
    transfer, source) of 8 bytes per cell were one, and ``since`` halved: 20 bytes per (row,
    layer) instead of 40, for tables whose rows mostly use one layer of H + 1.
    Rows of closed or re-traced traces stay until the account is swept (:meth:`compact`).
    Arrays and one dict of ints: the cyclic collector sees one object per account, however
    many traces reached it.
    """

    __slots__ = ("n", "row", "since", "taint", "uid", "via")

    def __init__(self, layers: int, capacity: int = 4) -> None:
        self.n = 0
        self.row: dict[int, int] = {}
        self.uid = np.zeros(capacity, dtype=np.int64)
        self.taint = np.zeros((capacity, layers))
        self.since = np.zeros((capacity, layers), dtype=np.int32)
        self.via = np.empty((capacity, layers), dtype=object)

    def __getstate__(self) -> tuple:
        n = self.n
        return (
            self.uid[:n].copy(),
            self.taint[:n].copy(),
            self.since[:n].copy(),
            self.via[:n].copy(),
        )

    def __setstate__(self, state: tuple) -> None:
        self.uid, self.taint, self.since, self.via = state
        self.n = len(self.uid)
        self.row = {uid: r for r, uid in enumerate(self.uid.tolist())}

    def _grow(self, need: int) -> None:
        capacity = max(need, 2 * len(self.uid))
        n = self.n

        def grown(old: np.ndarray) -> np.ndarray:
            # zeros beyond the rows copied, None in object arrays (np.empty's fill for them)
            shape = (capacity, *old.shape[1:])
            if old.dtype == object:
                new = np.empty(shape, dtype=object)
            else:
                new = np.zeros(shape, dtype=old.dtype)
            new[:n] = old[:n]
            return new

        self.uid = grown(self.uid)
        self.taint = grown(self.taint)
        self.since = grown(self.since)
        self.via = grown(self.via)

    def row_of(self, uid: int) -> int:
        """The row of trace ``uid``, added if absent. O(1) amortised."""
        r = self.row.get(uid)
        if r is None:
            r = self.n
            if r == len(self.uid):
                self._grow(r + 1)
            self.uid[r] = uid
            self.row[uid] = r
            self.n = r + 1
        return r

    def rows_of(self, uids: list[int]) -> np.ndarray:
        """The rows of traces ``uids`` (distinct), added if absent. O(len(uids)): a dict
        look-up each in Python, the rest in numpy."""
        get = self.row.get
        rows = np.array([get(uid, -1) for uid in uids], dtype=np.int64)
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            start, end = self.n, self.n + len(missing)
            if end > len(self.uid):
                self._grow(end)
            rows[missing] = np.arange(start, end)
            new = np.asarray(uids, dtype=np.int64)[missing]
            self.uid[start:end] = new
            self.row.update(zip(new.tolist(), range(start, end), strict=True))
            self.n = end
        return rows

    def compact(self, alive: np.ndarray) -> None:
        """Drop the rows of traces not ``alive`` (a flag per trace number). O(rows)."""
        keep = np.flatnonzero(alive[self.uid[: self.n]])
        self.__setstate__(
            (
                self.uid[keep],
                self.taint[keep],
                self.since[keep],
                self.via[keep],
            )
        )


def any_row(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=1)`` for a (rows, H) mask, column by column: numpy's reduction along a
    short last axis costs several times more. O(rows x H)."""
    out = mask[:, 0].copy()
    for column in range(1, mask.shape[1]):
        out |= mask[:, column]
    return out


def step(
    taint: np.ndarray, since: np.ndarray | None, amount: float, position: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """One transfer of ``amount`` out of an account, for every row of ``taint`` at once.

    ``taint``: (rows, H) the layers below H of the holding traces (updated in place);
    ``since``: the same rows' ``Holdings.since`` when the hub cap may bind (``position``,
    the transfer's place among the account's transfers out, is at least ``cap``), else None:
    a layer is capped when ``position - (since - 1) >= cap``.
    Per row, as ``LiveFlows._step_row``: lowest layer first, a layer holding taint gives
    ``min(held, room)`` unless ``cap`` or more transfers out came since its first arrival
    (then the row is capped and the layer skipped); the row stops at the first held layer
    with no room left. Returns ``moved`` (rows, H): the amount taken from each layer (to move
    one layer up), and ``capped`` (rows,): rows where the cap kept a layer back.

    The room before each layer is a running sum along the row, ``amount - held_0 - held_1
    ...`` (skipped layers add ``-0.0``, which changes nothing): ``np.cumsum`` adds left to
    right, so each value is the one the one-row loop computes, bit for bit; past the layer
    where a row stops it is 0 or below, so nothing further moves.

    Cost: O(rows x H) in numpy, a dozen array operations whatever the number of rows.
    """
    k, layers = taint.shape
    held = taint > 0
    run = np.empty((k, layers + 1))
    run[:, 0] = amount
    np.negative(taint, out=run[:, 1:])
    cut = None
    if since is not None:
        cut = held & (since <= position + 1 - cap)
        run[:, 1:][cut] = -0.0
    np.cumsum(run, axis=1, out=run)
    room = run[:, :layers]
    go = held & (room > 0)
    capped = np.zeros(k, dtype=bool)
    if cut is not None:
        capped = any_row(cut & go)
        go &= ~cut
    part = go & (taint > room)
    moved = np.where(part, room, np.where(go, taint, 0.0))
    taint[...] = np.where(part, taint - room, np.where(go, 0.0, taint))
    return moved, capped
