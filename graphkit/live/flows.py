"""Fund flows kept current transfer by transfer (the live form of ``graphkit.analytics.flows``).

Every drawdown whose window ``[t0, t0 + W]`` is still open keeps a *trace*: its reach (minimum
hops per account it has reached), its taint in hop layers per account (the ``first`` policy's
replay), its banned amounts per hop and its hub-cap counters. A transfer is offered only to the
traces it can change: those holding taint at its source, and those reaching its source but not
yet its destination in as few hops (indexes by account, :class:`LiveFlows`), so the cost of a
transfer is the work of the traces it changes, not the number of open drawdowns or of the
traces that ever passed through its source.

Exactness. Both results are functions of the transfers inside the window taken in event order
(ARCHITECTURE section 5, docs/flows.md):

* *reach*: when events come in time order every earlier arrival precedes the transfer, so the
  least hop count per account is all a trace needs; transfers stamped with the same instant may
  be used in any order, so an account whose hop count drops re-offers its transfers of that
  instant (``_propagate``).
* *amount under* ``first``: each transfer moves ``min(m, taint of s in layers < H)``, lowest
  layer first, decided from the state just before it: a replay in (ts, transfer_id) order, which
  is the order events arrive in. The hub cap (``max_expand_per_hop``) counts, per (drawdown,
  account, layer), the transfers out of the account after its first tainted arrival, as batch
  does.
* *pruning*, as batch's: a trace keeps no reach entry, and no money, where no sink is within
  the hops it has left (over every transfer logged, ignoring time:
  :mod:`graphkit.live.distance`). Such money moves only to accounts and layers as unable, and
  competes for a transfer's room only with higher layers of its own account, unable too. A
  transfer that brings accounts nearer a sink re-traces the traces it may concern.

``fifo`` and ``proportional`` are streamable too (the balances they read are rebuilt from past
events only: Lindley's recursion runs forward in time), but this module replays ``first`` only;
see docs/live.md. A transfer that arrives late (before the latest transfer applied, within the
lateness tolerance), and a new drawdown, re-trace the traces concerned from the transfer log
(:meth:`LiveFlows.retrace`), which is exact whatever the arrival order.

Not kept live: the reach hub cap (batch ``capped`` drawdowns may differ) and round trips.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import Any

import numpy as np

from graphkit.live.closed import ClosedFlows
from graphkit.live.distance import SinkDistance
from graphkit.live.holdings import Holdings, any_row, step
from graphkit.live.paths import evidence_paths
from graphkit.live.reach import Numbers, Reach, below, onward
from graphkit.live.trace import Trace, TransferRecord, first_sink, writable

__all__ = ["LiveFlows", "Trace", "TransferRecord"]

_NEVER = (1 << 62, "")
_LAST = "\U0010ffff"  # sorts after any account id: (ts, tid, _LAST) follows that log entry


class LiveFlows:
    """Open traces, the transfer log per source account, and the sink accounts.

    Parameters: ``window_us`` (W), ``max_hops`` (H), ``cap`` (``flows.max_expand_per_hop``),
    ``keep_us`` (how long after its window a trace stays open for late transfers),
    ``evidence_k`` (evidence paths kept when a trace closes).

    ``reach[a]``: the traces (``Trace.uid``, sorted) that reached account ``a`` and each one's
    least hop count (:class:`~graphkit.live.reach.Reach`), so a transfer extends every trace
    that reaches its source in a few numpy steps: the entries of the source's table at ``h <
    H`` hops whose window is open (``_live``: in window for the transfers in order) and whose
    ``min_hops`` ``h + 1`` could lower (``_minh``, H + 1 for none), both indexed by trace
    number, are merged into the destination's table at ``h + 1``; those that entered or
    improved there go on. Python work is left for the traces that reach a sink (their
    ``min_hops``). A closed or re-traced trace's number leaves ``alive``; once half as many
    numbers died as are alive, the tables drop them one account per event (``_sweep``), so
    their memory stays bounded.
    ``holdings[a]``: where the open traces' money is at ``a``, a row per trace and a column
    per layer (:class:`~graphkit.live.holdings.Holdings`): a transfer out of ``a`` moves every
    holder's money in one numpy step (a Python step per holder when there are few). Per trace
    number, ``_t0`` / ``_end`` / ``_alive`` / ``_capped`` hold what that step filters on.
    ``closed``: the results of the drawdowns whose window ended, as columns
    (:class:`~graphkit.live.closed.ClosedFlows`): a trace leaves every index above when it
    closes (:meth:`expire`), so the open state is bounded by the window, not by history.
    """

    # accounts whose sets are cleared of dead trace numbers per event, once half as many
    # numbers died as are alive (each costs O(its sets): more per event buys less memory)
    SWEEP = 1

    def __init__(
        self, window_us: int, max_hops: int, cap: int, keep_us: int, evidence_k: int = 3
    ) -> None:
        self.window_us = window_us
        self.evidence_k = evidence_k
        self.max_hops = max_hops
        self.layers = max_hops + 1
        self._no_banned = (0.0,) * self.layers  # every open trace's banned amounts while none
        self.cap = cap
        self.keep_us = keep_us
        self.sinks: set[str] = set()
        self.distance = SinkDistance(max_hops)
        self.out_log: dict[str, list[tuple[int, str, str, float, str]]] = defaultdict(list)
        self.traces: dict[str, Trace] = {}
        self.closed = ClosedFlows(max_hops)
        # drawdown -> (a0, t0, t0 + W, X) of the traces closed live: enough to search evidence
        # paths after closing (an open trace holds the same; :meth:`origin` reads either)
        self.origins: dict[str, tuple[str, int, int, float]] = {}
        self.by_uid: dict[int, Trace] = {}
        self.reach: dict[str, Reach] = {}
        self.holdings: dict[str, Holdings] = {}
        self._t0 = np.zeros(1024, dtype=np.int64)
        self._end = np.zeros(1024, dtype=np.int64)
        self._alive = np.zeros(1024, dtype=bool)
        self._capped = np.zeros(1024, dtype=bool)
        # per trace number, window open and least hops to a sink so far: bytes (read and
        # written one at a time in Python at the speed of a list) under numpy views (read many
        # at a time by the reach tables' masks)
        self._live_bytes = bytearray(1024)
        self._minh_bytes = bytearray(1024)
        self._view_flags()
        self._uids = 0
        self._starts: list[tuple[int, int]] = []  # (t0, uid) of traces not yet in ``live``
        self._ends: list[tuple[int, int]] = []  # (end, uid) of traces in ``live``
        self._sweep: list[str] = []
        self._forgotten = 0  # trace numbers dropped since the last sweep started
        self._expiry: list[tuple[int, str]] = []
        self.last_transfer: tuple[int, str] = (-(1 << 62), "")

    @property
    def alive(self) -> Any:
        """The numbers of the open traces (``by_uid``'s keys: no set of its own)."""
        return self.by_uid.keys()

    def _view_flags(self) -> None:
        self._live = np.frombuffer(self._live_bytes, dtype=bool)
        self._minh = np.frombuffer(self._minh_bytes, dtype=np.int8)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_live"], state["_minh"]  # views: made again over the unpickled bytes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._view_flags()

    # -- events ------------------------------------------------------------------------------

    def add_drawdown(
        self,
        drawdown_id: str,
        account: str,
        amount: float,
        ts: int,
        line_id: str,
        customer_id: str | None,
    ) -> Trace:
        """Open a trace and trace it over the transfers already logged in its window.

        Cost: O(transfers out of the accounts it reaches, already logged at or after ``t0``)
        (usually none: drawdowns come before the transfers that move their money).
        """
        trace = Trace(drawdown_id, account, amount, ts, ts + self.window_us, customer_id, line_id)
        self.traces[drawdown_id] = trace
        heapq.heappush(self._expiry, (trace.end + self.keep_us, drawdown_id))
        self.retrace(trace)
        return trace

    def add_transfer(self, record: TransferRecord) -> list[Trace]:
        """Log a transfer and offer it to the open traces it can change.

        In event order this is one step of the replay of each of those traces: the traces
        reaching the source extend their reach together (:meth:`Reach.offers` and
        :meth:`_reach`: O(entries of the source's reach table + offered + the destination's
        entries), in numpy for tables past ``Reach.LIMIT`` entries, a few dozen array
        operations whatever the number of traces, in Python below it; O(1) Python per trace
        reaching a sink, and a merge per same-instant re-offer), and
        the traces holding taint at the source move it on together
        (:meth:`_move`: O(rows of the source's holdings table x H) in numpy, plus a dict
        look-up per holder at the destination and O(1) Python per holder reaching a sink). A
        late transfer (before the latest one applied) re-traces every open trace that reached
        its source instead. Returns the traces whose banned amount or reach changed, by
        drawdown id. A transfer that brings accounts nearer a sink than before
        (:class:`~graphkit.live.distance.SinkDistance`, O(1) to check) re-traces, after the
        step, the open traces whose pruned part it may have made useful.
        """
        ts, src, dst = record.ts, record.src, record.dst
        key = (ts, record.transfer_id)
        # the log entry is also every holdings cell's ``via`` when it is a first arrival
        entry = (ts, record.transfer_id, dst, record.amount, src)
        log = self.out_log[src]
        if not log or (log[-1][0], log[-1][1]) < key:
            position = len(log)
            log.append(entry)
        else:
            position = bisect_left(log, key)
            log.insert(position, entry)
        fell = self.distance.link(src, dst, self.sinks)
        if key < self.last_transfer:
            self._recount(src)
            return self._retrace({**self._reaching(src, ts), **self._concerned(fell)})
        self.last_transfer = key
        self._advance(ts)
        changed: dict[int, Trace] = {}
        table = self.reach.get(src)
        if table is not None and src not in self.sinks:
            uids, hops = table.offers(
                self.max_hops, self._live, self._minh, self._live_bytes, self._minh_bytes
            )
            if len(uids):
                self._reach(dst, uids, hops, ts, changed)
        if src not in self.sinks:
            self._move(src, dst, record.amount, entry, position, changed)
        if fell:
            # traced again after the step: a re-trace replaces what the step did to it (and
            # renumbers it, so the same trace may now be in ``changed`` twice)
            for trace in self._retrace(self._concerned(fell)):
                changed[trace.uid] = trace
        if not changed:
            return []
        by_drawdown = {trace.drawdown_id: trace for trace in changed.values()}
        return [by_drawdown[drawdown_id] for drawdown_id in sorted(by_drawdown)]

    def add_sink(self, account: str) -> list[Trace]:
        """``account`` is a banned sink from now on. Its senders come a hop from a sink: the
        traces that pruned them are traced again (:mod:`graphkit.live.distance`)."""
        self.sinks.add(account)
        return self._retrace(self._concerned(self.distance.add_sink(account, self.sinks)))

    def _concerned(self, fell: dict[str, int]) -> dict[str, Trace]:
        """The open traces a fall of sink distances may concern (``SinkDistance.concerned``)."""
        if not fell:
            return {}
        by_uid = self.by_uid
        found = (by_uid[uid] for uid in self.distance.concerned(fell, self.reach) if uid in by_uid)
        return {trace.drawdown_id: trace for trace in found}

    def _retrace(self, traces: dict[str, Trace]) -> list[Trace]:
        """Trace each of ``traces`` (by drawdown id) again from the log, in id order."""
        done = [traces[drawdown_id] for drawdown_id in sorted(traces)]
        for trace in done:
            self.retrace(trace)
        return done

    def _reaching(self, src: str, ts: int) -> dict[str, Trace]:
        """The open traces that reached ``src`` or hold money there, whose window holds
        ``ts``: those a late transfer out of ``src`` concerns."""
        uids: set[int] = set()
        table = self.holdings.get(src)
        if table is not None:
            held = any_row(table.taint[: table.n, : self.max_hops] > 0)
            uids.update(table.uid[: table.n][held].tolist())
        reached = self.reach.get(src)
        if reached is not None:
            uids.update(reached.as_dict())
        found = (self.by_uid[uid] for uid in uids & self.alive)
        return {t.drawdown_id: t for t in found if t.t0 <= ts <= t.end}

    def expire(self, now: int) -> list[str]:
        """Close the traces whose window (plus the lateness allowance) ended before ``now``,
        and clear dead trace numbers from the reach and holdings tables of ``SWEEP`` accounts.

        Cost: O(log n) per closed trace, plus O(size of the tables swept) in numpy.
        """
        done = []
        while self._expiry and self._expiry[0][0] < now:
            _, drawdown_id = heapq.heappop(self._expiry)
            trace = self.traces.pop(drawdown_id, None)
            if trace is not None:
                self.origins[drawdown_id] = (trace.account, trace.t0, trace.end, trace.amount)
            if trace is None:
                continue
            self._forget(trace)
            self.closed.add(trace)
            done.append(drawdown_id)
        self._sweep_some()
        return done

    def result(self, drawdown_id: str) -> dict[str, Any] | None:
        trace = self.traces.get(drawdown_id)
        return trace.summary() if trace is not None else self.closed.summary(drawdown_id)

    def results(self) -> list[dict[str, Any]]:
        """Every drawdown's result as a dict (closed, then open). O(drawdowns x H) in Python:
        for tests and comparisons; the outputs build a frame (``graphkit.live.outputs``)."""
        return [*self.closed.summaries(), *(t.summary() for t in self.traces.values())]

    # -- the trace numbers -------------------------------------------------------------------------

    def _number(self, trace: Trace) -> None:
        """Give ``trace`` a fresh number (its previous one, if any, is dead)."""
        self._forget(trace)
        self._uids += 1
        trace.uid = uid = self._uids
        self.by_uid[uid] = trace
        if uid >= len(self._alive):
            size = 2 * uid
            for name in ("_t0", "_end", "_alive", "_capped"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
            for name in ("_live_bytes", "_minh_bytes"):
                flags = bytearray(size)
                flags[: len(getattr(self, name))] = getattr(self, name)
                setattr(self, name, flags)
            self._view_flags()
        self._t0[uid], self._end[uid] = trace.t0, trace.end
        self._alive[uid], self._capped[uid] = True, False
        self._live_bytes[uid], self._minh_bytes[uid] = 0, self.max_hops + 1
        if trace.t0 <= self.last_transfer[0]:
            if trace.end >= self.last_transfer[0]:
                self._live_bytes[uid] = 1
                heapq.heappush(self._ends, (trace.end, uid))
        else:
            heapq.heappush(self._starts, (trace.t0, uid))

    def _forget(self, trace: Trace) -> None:
        uid = trace.uid
        if uid:
            self.by_uid.pop(uid, None)
            self._alive[uid] = False
            self._forgotten += 1
            self._live_bytes[uid] = 0

    def _advance(self, ts: int) -> None:
        """Transfers in order have reached ``ts``: windows that started join ``live``,
        windows that ended leave it (``_live``)."""
        starts, ends, live = self._starts, self._ends, self._live_bytes
        while starts and starts[0][0] <= ts:
            _, uid = heapq.heappop(starts)
            trace = self.by_uid.get(uid)
            if trace is not None and trace.end >= ts:
                live[uid] = 1
                heapq.heappush(ends, (trace.end, uid))
        while ends and ends[0][0] < ts:
            live[heapq.heappop(ends)[1]] = 0

    def _sweep_some(self) -> None:
        if not self._sweep:
            if self._forgotten < max(1000, len(self.alive) // 2):
                return
            self._forgotten = 0
            self._sweep = [*self.reach, *self.holdings]
        alive = self.alive
        for _ in range(min(self.SWEEP, len(self._sweep))):
            account = self._sweep.pop()
            reached = self.reach.get(account)
            if reached is not None:
                reached.compact(self._alive, alive)
                if not len(reached):
                    del self.reach[account]
            table = self.holdings.get(account)
            if table is not None:
                n = table.n
                if n > 64:
                    alive_rows = int(self._alive[table.uid[:n]].sum())
                else:
                    alive_rows = sum(1 for uid in table.row if uid in alive)
                if not alive_rows:
                    del self.holdings[account]
                elif n > 8 and 2 * alive_rows <= n:
                    # below that a table is within a few rows of its first size: no memory
                    # to win by copying it
                    table.compact(self._alive)

    def _set_min_hops(self, trace: Trace, hops: int) -> None:
        self._minh_bytes[trace.uid] = hops
        trace.min_hops = hops
        trace.version += 1

    # -- one step, in event order ------------------------------------------------------------

    def _reach(
        self,
        account: str,
        uids: Numbers,
        hops: Numbers,
        ts: int,
        changed: dict[int, Trace],
    ) -> None:
        """The traces ``uids`` (distinct: a list, or a sorted array) reach ``account`` in
        ``hops`` (one count per trace) at instant ``ts``: merged into its reach table
        (:meth:`Reach.merge`), those not there in as few hops go on: at a sink they may lower
        ``min_hops``, elsewhere the account re-offers its transfers of the same instant (equal
        times may go in any order).

        Cost per account merged into: O(offered) Python while it and the offer are small,
        else O(entries of its table + offered) in numpy (about 15 array calls); plus O(1)
        Python per trace reaching a sink."""
        work = [(account, uids, hops)]
        sinks, last, distance = self.sinks, self.max_hops, self.distance
        while work:
            account, uids, hops = work.pop()
            if account not in sinks:
                # a trace reaching an account in h hops with h + d > H (d: its hops to the
                # nearest sink over every transfer logged) reaches no sink through it for now:
                # no entry (SinkDistance); this includes every account other than a sink
                # reached in H hops
                uids, hops = below(uids, hops, last + 1 - distance.of(account, sinks))
                if not len(uids):
                    continue
            table = self.reach.get(account)
            if table is None:
                table = self.reach[account] = Reach()
            uids, hops = table.merge(uids, hops)
            if not len(uids):
                continue
            if account in self.sinks:
                if not isinstance(uids, list):
                    uids, hops = uids.tolist(), hops.tolist()
                for uid, h in zip(uids, hops, strict=True):
                    trace = self.by_uid[uid]
                    if trace.min_hops is None or h < trace.min_hops:
                        self._set_min_hops(trace, h)
                        changed[uid] = trace
                continue
            log = self.out_log.get(account, ())
            at = bisect_left(log, (ts,))
            if at == len(log) or log[at][0] != ts:
                continue
            uids, hops = onward(uids, hops, self.max_hops)
            while len(uids) and at < len(log) and log[at][0] == ts:
                work.append((log[at][2], uids, hops))
                at += 1

    # accounts whose holders are at most this many move in a Python step each: below it a
    # numpy step's fixed cost (about 10 array operations per layer) is more than theirs
    SMALL = 8

    def _move(
        self,
        src: str,
        dst: str,
        amount: float,
        key: tuple,
        position: int,
        changed: dict[int, Trace],
    ) -> None:
        """The traces holding taint at ``src`` whose window holds the transfer move it on
        (``first``): :func:`~graphkit.live.holdings.step` over their rows at once, or
        :meth:`_step_row` each when there are at most ``SMALL``; the same float operations
        per trace either way, so the same amounts.

        Cost: O(rows of ``src``'s table x H) in numpy to find the holders, then O(holders x
        layers held) in numpy plus a dict look-up per holder at ``dst`` (O(1) Python per
        holder reaching a sink, whose banned amount changes).
        """
        table = self.holdings.get(src)
        if table is None or not table.n:
            return
        ts, n, layers = key[0], table.n, self.max_hops
        if n <= self.SMALL:
            self._move_few(table, src, dst, amount, key, position, changed)
            return
        rows = np.flatnonzero(any_row(table.taint[:n, :layers] > 0))
        uids = table.uid[rows]
        here = self._alive[uids] & (self._t0[uids] <= ts) & (self._end[uids] >= ts)
        if not here.all():
            rows, uids = rows[here], uids[here]
        if not len(rows):
            return
        if len(rows) <= self.SMALL:
            by_uid = self.by_uid
            for r, uid in zip(rows.tolist(), uids.tolist(), strict=True):
                trace = by_uid[uid]
                version = trace.version
                self._step_row(trace, table, r, dst, amount, key, position, src)
                if trace.version != version:
                    changed[uid] = trace
            return
        capping = position >= self.cap
        taint = table.taint[rows, :layers]
        moved, capped = step(
            taint, table.since[rows, :layers] if capping else None, amount, position, self.cap
        )
        table.taint[rows, :layers] = taint
        holders = uids
        if capped.any():
            for uid in holders[capped & ~self._capped[holders]].tolist():
                self._mark_capped(uid)
        go = any_row(moved > 0)
        if go.any():
            self._arrive_many(holders[go].tolist(), dst, moved[go], key, src, changed)

    def _move_few(
        self,
        table: Holdings,
        src: str,
        dst: str,
        amount: float,
        key: tuple,
        position: int,
        changed: dict[int, Trace],
    ) -> None:
        """:meth:`_move` for a table of at most ``SMALL`` rows, in Python. O(rows x H)."""
        ts, layers, by_uid = key[0], self.max_hops, self.by_uid
        held = table.taint[: table.n, :layers].tolist()
        for r, uid in enumerate(table.uid[: table.n].tolist()):
            trace = by_uid.get(uid)
            if trace is None or not trace.t0 <= ts <= trace.end or max(held[r]) <= 0:
                continue
            version = trace.version
            self._step_row(trace, table, r, dst, amount, key, position, src)
            if trace.version != version:
                changed[uid] = trace

    def _mark_capped(self, uid: int) -> None:
        self._capped[uid] = True
        self.by_uid[uid].capped = True

    def _step_row(
        self,
        trace: Trace,
        table: Holdings,
        r: int,
        dst: str,
        amount: float,
        key: tuple,
        position: int,
        src: str,
    ) -> None:
        """Move ``min(amount, taint of src in layers < H)``, lowest layer first (``first``),
        for the one trace at row ``r`` of ``src``'s table.

        ``position``: the transfer's place among the transfers out of ``src``. A layer may use
        the transfer when fewer than ``cap`` transfers out of ``src`` came between its first
        tainted arrival and this one (batch's hub cap: the first ``cap`` outflows after the
        arrival), counted by ``Holdings.since``. O(H) Python.
        """
        held_by_layer = table.taint[r, : self.max_hops].tolist()
        capping = position >= self.cap
        room = amount
        moved: list[tuple[int, float]] = []
        for layer, held in enumerate(held_by_layer):
            if held <= 0:
                continue
            if room <= 0:
                break
            if capping and position + 1 - int(table.since[r, layer]) >= self.cap:
                if not trace.capped:
                    self._mark_capped(trace.uid)
                continue
            if held > room:
                table.taint[r, layer] = held - room
                moved.append((layer + 1, room))
                room = 0.0
                break
            table.taint[r, layer] = 0.0
            room -= held
            moved.append((layer + 1, held))
        for layer, take in moved:
            self._arrive(trace, dst, layer, take, key, src)

    def _room(self, account: str) -> int:
        """The highest layer in which money at ``account`` can still reach a sink: ``H - d``."""
        return self.max_hops - self.distance.of(account, self.sinks)

    def _table(self, account: str) -> Holdings:
        table = self.holdings.get(account)
        if table is None:
            table = self.holdings[account] = Holdings(self.layers, capacity=1)
        return table

    def _arrive(
        self,
        trace: Trace,
        account: str,
        layer: int,
        amount: float,
        key: tuple,
        source: str,
    ) -> None:
        """``amount`` of ``trace``'s money arrives at ``account`` in ``layer`` by the transfer
        ``key``: its log entry ``(ts, transfer_id, dst, amount, src)`` (kept as the cell's
        ``via`` on a first arrival: no tuple of its own), or ``(t0, "")`` for the drawdown's
        own account. Money that can reach no sink from there (``layer + d > H``,
        :mod:`graphkit.live.distance`) is not kept (as batch prunes it). O(log n)."""
        if layer > self._room(account):
            return
        table = self._table(account)
        r = table.row_of(trace.uid)
        if not table.since[r, layer]:
            log = self.out_log.get(account, ())
            table.since[r, layer] = 1 + bisect_right(log, (key[0], key[1], _LAST))
            table.via[r, layer] = key
        if account in self.sinks:
            writable(trace)[layer] += amount
            trace.version += 1
            first_sink(trace, layer, account)
            return
        table.taint[r, layer] = float(table.taint[r, layer]) + amount

    def _arrive_many(
        self,
        uids: list[int],
        account: str,
        moved: np.ndarray,
        key: tuple,
        source: str,
        changed: dict[int, Trace],
    ) -> None:
        """:meth:`_arrive` for several traces (distinct) at once: ``moved`` (traces, H) is
        what arrives in layers 1..H. A dict look-up per trace, the rest in numpy (adding 0.0
        where nothing arrives changes no amount); O(H) Python per trace when ``account`` is
        a sink. Layers that can reach no sink from there are not kept (:meth:`_arrive`)."""
        room = self._room(account)
        if room < self.max_hops:
            if room < 1:
                return
            moved[:, room:] = 0.0  # the caller's own array (a selection of its step's)
            keep = any_row(moved > 0)
            if not keep.all():
                moved = moved[keep]
                uids = [uid for uid, ok in zip(uids, keep.tolist(), strict=True) if ok]
        table = self._table(account)
        rows = table.rows_of(uids)
        new = (moved > 0) & (table.since[rows, 1:] == 0)
        if new.any():
            at, layer = np.nonzero(new)
            at, layer = rows[at], layer + 1
            log = self.out_log.get(account, ())
            table.since[at, layer] = 1 + bisect_right(log, (key[0], key[1], _LAST))
            via = np.empty(1, dtype=object)
            via[0] = key
            table.via[at, layer] = via
        if account not in self.sinks:
            table.taint[rows, 1:] += moved
            return
        by_uid = self.by_uid
        for uid, amounts in zip(uids, moved.tolist(), strict=True):
            trace = by_uid[uid]
            for layer, amount in enumerate(amounts, start=1):
                if amount > 0:
                    writable(trace)[layer] += amount
                    trace.version += 1
                    first_sink(trace, layer, account)
            changed[uid] = trace

    def _recount(self, account: str) -> None:
        """A transfer out of ``account`` was logged before later ones: count again, for every
        first arrival at ``account``, the transfers out logged by then. O(rows x H log n)."""
        table = self.holdings.get(account)
        if table is None:
            return
        log = self.out_log.get(account, ())
        for r, layer in zip(*np.nonzero(table.since[: table.n]), strict=True):
            via = table.via[r, layer]
            first = (via[0], via[1], _LAST)
            table.since[r, layer] = 1 + bisect_right(log, first)

    def money_path(self, drawdown_id: str) -> list[str]:
        """The transfers that first carried the drawdown's money into a sink (its lowest banned
        layer), then the sink: the path the taint took, read back from first arrivals. O(H)."""
        trace = self.traces.get(drawdown_id)
        if trace is None:
            return []
        for layer, amount in enumerate(trace.banned):
            if amount <= 0 or layer == 0:
                continue
            sink = trace.sink_at[layer]  # type: ignore[index]
            path, account = [], sink
            for h in range(layer, 0, -1):
                table = self.holdings[account]
                r = table.row[trace.uid]
                via = table.via[r, h]
                path.append(via[1])
                account = via[4]
            return [*reversed(path), sink]
        return []

    # -- from scratch --------------------------------------------------------------------------

    def retrace(self, trace: Trace) -> None:
        """Trace ``trace`` again from the transfer log: reach by an earliest-arrival search by
        hop (as batch), amounts by replaying the logged transfers out of tainted accounts in
        (ts, transfer_id) order. Exact whatever order the transfers arrived in.

        Cost: O(H x transfers out of reached accounts in the window x log).
        """
        self._number(trace)
        trace.sink_at = None
        trace.banned = self._no_banned  # a list of its own once money reaches a sink
        trace.min_hops, trace.capped = None, False
        uid, reach = trace.uid, self.reach
        for account, hops in self._reach_from_scratch(trace).items():
            table = reach.get(account)
            if table is None:
                table = reach[account] = Reach()
            table.add(uid, hops)
        self._replay_from_scratch(trace)
        trace.version += 1

    def window(self, account: str, start: int, end: int) -> list[tuple[int, str, str, float, str]]:
        """The transfers out of ``account`` with ``start <= ts <= end``. O(log n + found)."""
        log = self.out_log.get(account, ())
        lo = bisect_left(log, (start,))
        hi = bisect_left(log, (end + 1,))
        return log[lo:hi]

    def _reach_from_scratch(self, trace: Trace) -> dict[str, int]:
        """Least hops per account reached before the first sink (and ``min_hops``): an
        earliest-arrival search by hop over the log, as batch, which also stops a drawdown's
        search at its first sink. An account first reached at ``min_hops`` hops or more can
        never lower it (a transfer out of an account at ``h`` hops is offered only to traces
        whose ``min_hops`` exceeds ``h + 1``), so none is kept; nor, as in batch, is one
        reached in ``h`` hops with no sink within ``H - h`` transfers of it (``distance``; this
        includes every account other than a sink reached in H hops), which leads no money
        into a sink (see :meth:`_reach`)."""
        a0 = trace.account
        hops = {a0: 0}
        if a0 in self.sinks:
            self._set_min_hops(trace, 0)
            return hops
        best = {a0: trace.t0}
        frontier = {a0: trace.t0}
        sinks, last, distance = self.sinks, self.max_hops, self.distance
        for hop in range(1, last + 1):
            nxt: dict[str, int] = {}
            for account, arrival in frontier.items():
                for ts, _, dst, _, _ in self.window(account, arrival, trace.end):
                    if dst in sinks:
                        self._set_min_hops(trace, hop)
                        return hops
                    if (
                        hop + distance.of(dst, sinks) <= last
                        and ts < best.get(dst, _NEVER[0])
                        and ts < nxt.get(dst, _NEVER[0])
                    ):
                        nxt[dst] = ts
            for account, arrival in nxt.items():
                best[account] = arrival
                hops.setdefault(account, hop)
            frontier = nxt
            if not frontier:
                break
        return hops

    def _replay_from_scratch(self, trace: Trace) -> None:
        """Replay the logged transfers that move ``trace``'s money, in (ts, transfer_id) order.

        A cursor per account holding the money (a heap of each one's next transfer in the
        window), not every transfer out of every account reached: an account whose layers below
        H hold none of the trace's money is parked, since its transfers would move nothing (a
        step without money is a no-op), until money arrives there again; it then resumes after
        the transfer that brought it. At a busy account the money usually leaves with the first
        transfers and the rest of its window was stepped for nothing (most of a re-trace's work
        at 1M nodes). Cost: O((transfers that find the trace's money + arrivals) x (log n + H)).
        """
        if trace.account in self.sinks:
            writable(trace)[0] = trace.amount
            return
        if self._room(trace.account) < 0:
            return  # its money can reach no sink: nothing to follow (kept for its reach)
        self._arrive(trace, trace.account, 0, trace.amount, (trace.t0, ""), "")
        uid, end, layers = trace.uid, trace.end, self.max_hops
        out_log, holdings, sinks = self.out_log, self.holdings, self.sinks
        queue: list[tuple[int, str, int, str]] = []  # (ts, transfer_id, index in log, account)
        active: set[str] = set()

        def resume(account: str, after: tuple[int, str, str]) -> None:
            log = out_log.get(account)
            if log:
                i = bisect_right(log, after)
                if i < len(log) and log[i][0] <= end:
                    heapq.heappush(queue, (log[i][0], log[i][1], i, account))
                    active.add(account)

        def holds(account: str) -> bool:
            table = holdings.get(account)
            r = None if table is None else table.row.get(uid)
            return r is not None and max(table.taint[r, :layers].tolist()) > 0

        resume(trace.account, (trace.t0, "", _LAST))
        while queue:
            ts, tid, i, src = heapq.heappop(queue)
            log = out_log[src]
            entry = log[i]
            dst = entry[2]
            table = holdings[src]
            self._step_row(trace, table, table.row[uid], dst, entry[3], entry, i, src)
            if dst not in active and dst not in sinks and holds(dst):
                resume(dst, (ts, tid, _LAST))
            if holds(src) and i + 1 < len(log) and log[i + 1][0] <= end:
                heapq.heappush(queue, (log[i + 1][0], log[i + 1][1], i + 1, src))
            else:
                active.discard(src)

    # -- evidence -------------------------------------------------------------------------------

    def evidence_paths(
        self, drawdown_id: str, k: int, max_visits: int = 100_000
    ) -> tuple[list[dict[str, Any]], bool]:
        """The best ``k`` paths of a drawdown into a sink, ranked as batch
        (:func:`graphkit.live.paths.evidence_paths` has the definition and cost)."""
        origin = self.origin(drawdown_id)
        return evidence_paths(origin, self.sinks, self.window, self.max_hops, k, max_visits)

    def origin(self, drawdown_id: str) -> tuple[str, int, int, float] | None:
        """(a0, t0, t0 + W, X) of a drawdown applied live or open at the start, else None."""
        trace = self.traces.get(drawdown_id)
        if trace is not None:
            return (trace.account, trace.t0, trace.end, trace.amount)
        return self.origins.get(drawdown_id)
