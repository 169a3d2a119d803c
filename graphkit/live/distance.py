"""Hops from each account to the nearest banned sink, kept as transfers are logged.

The live form of batch's pruning (``FlowIndex.distance_to_sink``, docs/flows.md): a trace need
not follow its money, nor keep a reach entry, where it cannot reach a sink in the hops it has
left. ``d(a)``, the least number of transfers from ``a`` to a sink over every transfer logged so
far, ignoring time (sinks do not forward), is a lower bound on any time-respecting path, so an
account reached in ``h`` hops with ``h + d(a) > H`` can lead no money into a sink *now*.

Unlike batch, the live engine sees transfers arrive: a new transfer ``s -> t`` can lower
``d(s)`` and, through the accounts that sent to ``s``, theirs (each account's ``d`` falls at
most H times, since only values up to H are kept). :meth:`SinkDistance.link` lowers them and
returns which fell, and :meth:`SinkDistance.concerned` names the open traces whose pruned part
the fall may have made useful, for the engine to trace again from the log (exact whatever was
pruned before). Why those are all: take a trace and the shortest path that the fall opens for it
to a sink. The path's first account ``q`` not kept before (its predecessor ``p`` was kept, or
``q`` is the drawdown's own account, always kept) was pruned as ``h(q) + d_old(q) > H >= h(q) +
d_new(q)``: so ``d(q)`` fell, and the trace is in the reach table of ``q`` or of an account
that sent to ``q``. Money pruned by layer (a layer ``l`` at an account with ``l + d > H``) is
covered the same way: the trace is in that account's table.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from graphkit.live.load import interned, runs

__all__ = ["SinkDistance"]

# senders kept in a tuple up to this many (40 + 8 bytes each), in a set beyond (where looking
# one up must not walk them)
_TUPLE = 16


class SinkDistance:
    """``d(a)`` for every account within ``max_hops`` of a sink, and who sent to whom.

    ``near``: account -> ``d`` for the accounts other than sinks with ``d <= max_hops``
    (absent: farther, ``max_hops + 1``; a sink's is 0). ``senders``: account -> the distinct
    accounts other than sinks that sent to it (a tuple while few, then a set), for accounts
    other than sinks: what a fall of ``d`` climbs back along.
    """

    __slots__ = ("far", "max_hops", "near", "senders")

    def __init__(self, max_hops: int) -> None:
        self.max_hops = max_hops
        self.far = max_hops + 1
        self.near: dict[str, int] = {}
        self.senders: dict[str, tuple[str, ...] | set[str]] = {}

    def __getstate__(self) -> tuple:
        return self.max_hops, self.near, self.senders

    def __setstate__(self, state: tuple) -> None:
        self.max_hops, self.near, self.senders = state
        self.far = self.max_hops + 1

    def of(self, account: str, sinks: Collection[str]) -> int:
        """``d(account)``: 0 for a sink, ``max_hops + 1`` when farther than ``max_hops``. O(1)."""
        if account in sinks:
            return 0
        return self.near.get(account, self.far)

    def link(self, src: str, dst: str, sinks: Collection[str]) -> dict[str, int]:
        """A transfer ``src -> dst`` was logged: the accounts whose ``d`` fell, with the new
        value. O(1) when nothing falls (most transfers); else O(senders of the accounts that
        fell), each account falling at most ``max_hops`` times over the state's life."""
        if src in sinks:
            return {}
        if dst in sinks:
            reach = 1
        else:
            self._add_sender(dst, src)
            reach = self.near.get(dst, self.far) + 1
        return self._lower([(src, reach)], sinks)

    def add_sink(self, account: str, sinks: Collection[str]) -> dict[str, int]:
        """``account`` became a sink (it is in ``sinks`` already): the accounts that sent to it
        are one hop from one. O(senders of the accounts that fell)."""
        self.near.pop(account, None)
        found = self.senders.pop(account, ())
        return self._lower([(sender, 1) for sender in found], sinks)

    def _lower(self, todo: list[tuple[str, int]], sinks: Collection[str]) -> dict[str, int]:
        near, far, senders = self.near, self.far, self.senders
        fell: dict[str, int] = {}
        while todo:
            account, d = todo.pop()
            if d >= far or d >= near.get(account, far) or account in sinks:
                continue
            near[account] = fell[account] = d
            todo.extend((sender, d + 1) for sender in senders.get(account, ()))
        return fell

    def _add_sender(self, account: str, sender: str) -> None:
        known = self.senders.get(account)
        if known is None:
            self.senders[account] = (sender,)
        elif isinstance(known, set):
            known.add(sender)
        elif sender not in known:
            if len(known) < _TUPLE:
                self.senders[account] = (*known, sender)
            else:
                self.senders[account] = {*known, sender}

    def load(self, pairs: Any, sinks: Collection[str]) -> None:
        """Every transfer of a snapshot at once: ``pairs``, a polars frame of ``src`` and
        ``dst`` account ids (one row per transfer). The senders by account, and ``d`` level by
        level from the sinks, in polars; O(transfers) plus O(distinct pairs) Python to fill
        the dictionaries."""
        import polars as pl

        def accounts(ids: list[str]) -> pl.DataFrame:
            return pl.DataFrame({"account": ids}, schema={"account": pl.String})

        sink_ids = accounts(list(sinks))
        pairs = pairs.select("src", "dst").join(
            sink_ids, left_on="src", right_on="account", how="anti"
        )
        pairs = pairs.unique()
        level = pairs.join(sink_ids, left_on="dst", right_on="account", how="semi")
        pairs = pairs.join(sink_ids, left_on="dst", right_on="account", how="anti")
        near: dict[str, int] = {}
        for d in range(1, self.max_hops + 1):
            found = interned(level.get_column("src").unique())
            fresh = [account for account in found if account not in near]
            if not fresh:
                break
            near.update(dict.fromkeys(fresh, d))
            level = pairs.join(accounts(fresh), left_on="dst", right_on="account", how="semi")
        # senders cut by account from one sorted column, ids interned (one object per id
        # whatever holds it: the log, the reach and holdings tables, these tuples)
        self.near = near
        pairs = pairs.sort("dst")
        src = interned(pairs.get_column("src"))
        self.senders = {
            account: tuple(src[a:b]) if b - a <= _TUPLE else set(src[a:b])
            for account, a, b in zip(*runs(pairs.get_column("dst")), strict=True)
        }

    def concerned(self, fell: Mapping[str, int], reach: Mapping[str, Any]) -> set[int]:
        """The trace numbers whose pruned part a fall of ``d`` (``fell``: account -> new ``d``)
        may have made useful: those in the reach table of a fallen account ``q`` in at most
        ``H - d(q)`` hops, or of an account that sent to ``q`` in at most ``H - d(q) - 1``
        (module docstring). O(entries of those tables)."""
        last = self.max_hops
        found: set[int] = set()
        for account, d in fell.items():
            found.update(_within(reach.get(account), last - d))
            for sender in self.senders.get(account, ()):
                found.update(_within(reach.get(sender), last - d - 1))
        return found


def _within(table: Any, hops: int) -> list[int]:
    """The trace numbers of a reach table in at most ``hops`` hops."""
    if table is None or hops < 0:
        return []
    return [uid for uid, h in table.as_dict().items() if h <= hops]
