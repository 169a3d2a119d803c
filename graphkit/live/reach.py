"""Per-account tables of which open fund-flow traces reached an account, and in how few hops.

The reach half of ``LiveFlows`` (the money is in :mod:`graphkit.live.holdings`). Every account an
open trace reached has a :class:`Reach` table: the trace numbers (``Trace.uid``) that reached it,
sorted, and each one's least hop count. A transfer ``s -> d`` then extends every trace reaching
``s`` with a few numpy steps, whatever the number of such traces: a mask over ``s``'s table
(hop count below H, window open, ``min_hops`` still lowerable, read from flag arrays indexed by
trace number) and one sorted merge into ``d``'s table (:meth:`Reach.merge`); tables few traces
reached stay dicts, where a short Python loop costs less (:class:`Reach`). Sets of trace
numbers per (account, hop count) did the same in C before, but walking thousands of int objects
per tail transfer cost about 0.75 ms; these arrays hold 9 bytes per (trace, account).

Reach is integer work (least hop counts), so its form does not touch the amounts' floats:
exactness is that each table holds, per trace, the least of the hop counts offered to it, as the
sets did (``tests/test_live_reach.py`` checks the tables against a dict per account and the
engine's step against a trace-by-trace loop).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Container

import numpy as np

__all__ = ["Reach", "below", "onward"]


_NO_UIDS = np.zeros(0, dtype=np.int64)
_NO_HOPS = np.zeros(0, dtype=np.int8)
# ``pending`` of every table in the dict form (never written: a table gets a dict of its own
# when it turns to arrays), instead of an empty dict each (64 bytes x 200k tables at 1M nodes)
_NO_PENDING: dict[int, int] = {}

Numbers = list[int] | np.ndarray  # trace numbers: a list (any order) or a sorted int64 array
Hops = list[int] | np.ndarray  # their hop counts, one each (int8 when an array)


def _sorted_arrays(table: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A dict table (trace number -> hops) as sorted ``uid`` (int64) and ``hops`` (int8)
    arrays. O(entries log entries)."""
    items = sorted(table.items())
    uids = np.array([uid for uid, _ in items], dtype=np.int64)
    hops = np.array([h for _, h in items], dtype=np.int8)
    return uids, hops


def _offered(
    table: dict[int, int], max_hops: int, live_bytes: bytearray, minh_bytes: bytearray
) -> tuple[list[int], list[int]]:
    """:meth:`Reach.offers` of a dict table (the dict form, or the pending traces): in the
    table's order, the traces in ``h < max_hops`` hops whose window is open and whose least
    hops to a sink ``h + 1`` would lower, at ``h + 1``. O(entries) Python."""
    uids, hops = [], []
    for uid, h in table.items():
        if h < max_hops and live_bytes[uid] and minh_bytes[uid] > h + 1:
            uids.append(uid)
            hops.append(h + 1)
    return uids, hops


class Reach:
    """The open traces that reached one account, and each one's least hop count.

    Up to ``LIMIT`` traces the table is a dict ``small`` (trace number -> hops): an account
    few traces reached (most of them) costs a few dict operations per transfer, less than the
    fixed cost of a numpy step. Past it the table is two arrays, ``uid`` (sorted, distinct)
    and ``hops``, of which the first ``n`` entries are used (``small`` is then None), and a
    transfer costs a few numpy steps whatever the number of traces; traces entering a few at
    a time wait in a dict ``pending`` (not in the arrays) until ``LIMIT`` of them are there,
    then enter the arrays in one copy, so that a sorted insertion's O(entries) copy is paid
    once per ``LIMIT`` traces, not per transfer. Numbers of closed or
    re-traced traces stay until the account is swept (:meth:`compact`). A dict of ints or two
    arrays: the cyclic collector tracks neither, however many traces reached the account.
    """

    __slots__ = ("hops", "n", "pending", "small", "uid")

    # entries kept in the dict form: below about this many a Python loop over the entries
    # costs less than the dozen numpy calls of the array form
    LIMIT = 64
    # offers merged into the arrays one by one in Python (below it, the vectorised merge's
    # fixed cost is more)
    FEW = 16

    def __init__(self) -> None:
        self.small: dict[int, int] | None = {}
        self.n = 0
        self.uid, self.hops = _NO_UIDS, _NO_HOPS  # no room: the first entry allocates
        self.pending: dict[int, int] = _NO_PENDING

    def __getstate__(self) -> tuple:
        if self.small is not None:
            return (self.small,)
        return self.uid[: self.n].copy(), self.hops[: self.n].copy(), dict(self.pending)

    def __setstate__(self, state: tuple) -> None:
        if len(state) == 1:
            self.small, self.n = state[0], 0
            self.uid, self.hops = _NO_UIDS, _NO_HOPS
            self.pending = _NO_PENDING
        else:
            self.small = None
            self.uid, self.hops, self.pending = state
            self.n = len(self.uid)

    def __len__(self) -> int:
        return len(self.small) if self.small is not None else self.n + len(self.pending)

    def as_dict(self) -> dict[int, int]:
        """Trace number -> hops. O(entries)."""
        if self.small is not None:
            return dict(self.small)
        n = self.n
        out = dict(zip(self.uid[:n].tolist(), self.hops[:n].tolist(), strict=True))
        out.update(self.pending)
        return out

    def _flush(self) -> None:
        """The pending traces into the arrays: one copy. O(entries)."""
        if self.pending:
            uids, hops = _sorted_arrays(self.pending)
            self.pending = {}
            self._insert(np.searchsorted(self.uid[: self.n], uids), uids, hops)

    def _promote(self) -> None:
        """From the dict form to the arrays. O(entries log entries)."""
        assert self.small is not None
        uids, hops = _sorted_arrays(self.small)
        n = len(uids)
        self.uid = np.zeros(2 * n, dtype=np.int64)
        self.hops = np.zeros(2 * n, dtype=np.int8)
        self.uid[:n] = uids
        self.hops[:n] = hops
        self.small, self.n, self.pending = None, n, {}

    def _reserve(self, need: int) -> None:
        if need <= len(self.uid):
            return
        capacity = max(need, 2 * len(self.uid))
        for name in ("uid", "hops"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(self, uid: int, hops: int) -> None:
        """Trace ``uid``, not in the table, reaches the account in ``hops``: a freshly
        numbered trace, so above every number in the table (it goes at the end of the arrays).
        O(1) amortised."""
        small = self.small
        if small is not None:
            small[uid] = hops
            if len(small) > self.LIMIT:
                self._promote()
            return
        n = self.n
        if n and uid <= int(self.uid[n - 1]):
            self.merge(np.array([uid], dtype=np.int64), np.array([hops], dtype=np.int8))
            return
        self._reserve(n + 1)
        self.uid[n] = uid
        self.hops[n] = hops
        self.n = n + 1

    def offers(
        self,
        max_hops: int,
        live: np.ndarray,
        minh: np.ndarray,
        live_bytes: bytearray,
        minh_bytes: bytearray,
    ) -> tuple[Numbers, Hops]:
        """What a transfer out of the account offers its destination: the traces here in
        ``h < max_hops`` hops whose window is open (``live``, a flag per trace number) and
        whose least hops to a sink ``h + 1`` would lower (``minh``, per trace number), at ``h +
        1``. ``live_bytes`` / ``minh_bytes``: the same flags as the bytes under those arrays,
        read one at a time. Lists from the dict form (O(entries) Python), arrays from the
        arrays (O(entries) in numpy, about ten calls)."""
        small = self.small
        if small is not None:
            return _offered(small, max_hops, live_bytes, minh_bytes)
        n = self.n
        have, held = self.uid[:n], self.hops[:n]
        go = (held < max_hops) & live[have]
        go &= minh[have] > held + 1
        uids, hops = have[go], held[go] + 1
        if self.pending:
            more_uids, more_hops = _offered(self.pending, max_hops, live_bytes, minh_bytes)
            if more_uids:
                uids = np.concatenate([uids, np.array(more_uids, dtype=np.int64)])
                hops = np.concatenate([hops, np.array(more_hops, dtype=np.int8)])
                order = np.argsort(uids, kind="stable")
                uids, hops = uids[order], hops[order]
        return uids, hops

    def merge(self, uids: Numbers, hops: Hops) -> tuple[Numbers, Hops]:
        """Offer traces ``uids`` (distinct) at ``hops``: each one not in the table enters, each
        one in it with more hops takes the new count. Returns the ``(uids, hops)`` offered that
        entered or improved (the others were here in as few hops already), as lists when both
        the table and the offer are small, else as arrays (sorted).

        Cost: O(offered) Python in the dict form (lists offered, or arrays of at most
        ``LIMIT``); into the arrays, O(offered) Python and a shift of the table's tail per
        trace entering for at most ``FEW`` offered, else O(entries + offered) in numpy (a
        binary search per offered trace and a copy of the table when some enter, about 15
        array calls whatever the sizes).
        """
        small = self.small
        if small is not None and (isinstance(uids, list) or len(uids) <= self.LIMIT):
            if not isinstance(uids, list):
                uids, hops = uids.tolist(), hops.tolist()
            got_uids, got_hops = [], []
            for uid, h in zip(uids, hops, strict=True):
                old = small.get(uid)
                if old is None or h < old:
                    small[uid] = h
                    got_uids.append(uid)
                    got_hops.append(h)
            if len(small) > self.LIMIT:
                self._promote()
            return got_uids, got_hops
        if small is not None:
            self._promote()
        if len(uids) <= self.FEW:
            if not isinstance(uids, list):
                uids, hops = uids.tolist(), hops.tolist()
            return self._merge_few(uids, hops)
        if isinstance(uids, list):
            order = np.argsort(np.array(uids, dtype=np.int64))
            uids = np.array(uids, dtype=np.int64)[order]
            hops = np.array(hops, dtype=np.int8)[order]
        return self._merge_arrays(uids, hops)

    def _merge_few(self, uids: list[int], hops: list[int]) -> tuple[list[int], list[int]]:
        """:meth:`merge` of at most ``FEW`` traces into the arrays: a binary search each (in
        Python for one or two, else one numpy call) and O(1) Python per trace; those that
        enter wait in ``pending`` (one copy of the arrays per ``LIMIT`` of them)."""
        n = self.n
        have, held = self.uid[:n], self.hops[:n]
        if len(uids) <= 2 or not n:
            places = [bisect_left(have, uid) for uid in uids]
            was = [int(have[at]) if at < n else None for at in places]
            was_hops = [int(held[at]) if at < n else 0 for at in places]
        else:
            found = np.searchsorted(have, uids)
            there = np.minimum(found, n - 1)
            places, was, was_hops = found.tolist(), have[there].tolist(), held[there].tolist()
        got_uids, got_hops = [], []
        pending = self.pending
        for uid, h, at, at_uid, at_hops in zip(uids, hops, places, was, was_hops, strict=True):
            if at_uid == uid:
                if h < at_hops:
                    held[at] = h
                    got_uids.append(uid)
                    got_hops.append(h)
                continue
            old = pending.get(uid)
            if old is None or h < old:
                pending[uid] = h
                got_uids.append(uid)
                got_hops.append(h)
        if len(pending) > self.LIMIT:
            self._flush()
        return got_uids, got_hops

    def _insert(self, places: np.ndarray, uids: np.ndarray, hops: np.ndarray) -> None:
        """Put ``uids`` (absent, sorted) at ``hops`` before the entries at ``places`` (their
        binary-search places among the first ``n``): one copy of the table. O(n + k) numpy."""
        n = self.n
        slots = places + np.arange(len(places))
        total = n + len(slots)
        keep = np.ones(total, dtype=bool)
        keep[slots] = False
        uid = np.empty(max(total, len(self.uid)), dtype=np.int64)
        hop = np.empty(len(uid), dtype=np.int8)
        uid[slots] = uids
        hop[slots] = hops
        uid[:total][keep] = self.uid[:n]
        hop[:total][keep] = self.hops[:n]
        self.uid, self.hops, self.n = uid, hop, total

    def _merge_arrays(self, uids: np.ndarray, hops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(uids):
            return uids, hops
        self._flush()
        n, k = self.n, len(uids)
        if not n or uids[0] > self.uid[n - 1]:  # all above the table: they go at the end
            self._reserve(n + k)
            self.uid[n : n + k] = uids
            self.hops[n : n + k] = hops
            self.n = n + k
            return uids, hops
        have, held = self.uid[:n], self.hops[:n]
        pos = np.searchsorted(have, uids)
        found = have[np.minimum(pos, n - 1)] == uids
        fresh = ~found
        at = pos[found]
        offered = hops[found]
        lower = offered < held[at]
        better = fresh.copy()
        if lower.any():
            held[at[lower]] = offered[lower]
            better[found] = lower
        if not fresh.any():
            return uids[better], hops[better]
        self._insert(pos[fresh], uids[fresh], hops[fresh])
        if better.all():
            return uids, hops
        return uids[better], hops[better]

    def compact(self, alive: np.ndarray, alive_set: Container[int] | None = None) -> None:
        """Drop the numbers of traces not ``alive`` (a flag per trace number; ``alive_set``,
        the same as a set, is read instead in the dict form when given); back to the dict
        form when few are left. O(entries)."""
        small = self.small
        if small is not None:
            if alive_set is not None:
                self.small = {uid: h for uid, h in small.items() if uid in alive_set}
                return
            flags = alive[list(small)].tolist() if small else []
            self.small = {uid: h for (uid, h), ok in zip(small.items(), flags, strict=True) if ok}
            return
        self._flush()
        n = self.n
        keep = np.flatnonzero(alive[self.uid[:n]])
        if len(keep) <= self.LIMIT // 2:
            self.__setstate__((self._dict_of(keep),))
        else:
            self.__setstate__((self.uid[keep], self.hops[keep], {}))

    def _dict_of(self, rows: np.ndarray) -> dict[int, int]:
        return dict(zip(self.uid[rows].tolist(), self.hops[rows].tolist(), strict=True))


def onward(uids: Numbers, hops: Hops, max_hops: int) -> tuple[Numbers, Hops]:
    """The traces of ``uids`` at fewer than ``max_hops`` hops (:func:`below`), at one hop more
    (a re-offer from the account they reached). Lists or arrays, as given."""
    uids, hops = below(uids, hops, max_hops)
    if isinstance(hops, list):
        return uids, [h + 1 for h in hops]
    return uids, hops + 1


def below(uids: Numbers, hops: Hops, max_hops: int) -> tuple[Numbers, Hops]:
    """The traces of ``uids`` at fewer than ``max_hops`` hops. Lists or arrays, as given."""
    if isinstance(hops, list):
        if not hops or max(hops) < max_hops:
            return uids, hops
        kept = [(uid, h) for uid, h in zip(uids, hops, strict=True) if h < max_hops]
        return [uid for uid, _ in kept], [h for _, h in kept]
    on = hops < max_hops
    if on.all():
        return uids, hops
    return uids[on], hops[on]
