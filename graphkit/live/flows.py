"""Fund flows kept current transfer by transfer (the live form of ``graphkit.analytics.flows``).

Every drawdown whose window ``[t0, t0 + W]`` is still open keeps a *trace*: its reach (minimum
hops per account it has reached), its taint in hop layers per account (the ``first`` policy's
replay), its banned amounts per hop and its hub-cap counters. A transfer is offered only to the
traces that have reached its source account (``watchers``), so the cost of a transfer is the
work of the traces it touches, not the number of open drawdowns.

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

``fifo`` and ``proportional`` are streamable too (the balances they read are rebuilt from past
events only: Lindley's recursion runs forward in time), but this module replays ``first`` only;
see docs/live.md. A transfer that arrives late (before the latest transfer applied, within the
lateness tolerance), and a new drawdown, re-trace the traces concerned from the transfer log
(:meth:`LiveFlows.retrace`), which is exact whatever the arrival order.

Not kept live: the reach hub cap (batch ``capped`` drawdowns may differ) and round trips.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

_NEVER = (1 << 62, "")
_LAST = "\U0010ffff"  # sorts after any account id: (ts, tid, _LAST) follows that log entry


@dataclass
class Trace:
    """One drawdown's open fund-flow trace.

    ``hops``: account -> least hops at which the trace reaches it. ``taint``: account -> list of
    H + 1 layer amounts. ``first``: account -> per layer < H, the (ts, transfer_id) of
    the layer's first tainted arrival (None before it): the hub cap counts the account's
    transfers out after it. ``via``: (account, layer) -> (transfer_id, source) of that first
    arrival: the path the money took (evidence). ``banned``: amount landed in sinks per layer.
    """

    drawdown_id: str
    account: str
    amount: float
    t0: int
    end: int
    customer_id: str | None
    line_id: str
    hops: dict[str, int] = field(default_factory=dict)
    taint: dict[str, list[float]] = field(default_factory=dict)
    first: dict[str, list[tuple[int, str] | None]] = field(default_factory=dict)
    via: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    banned: list[float] = field(default_factory=list)
    min_hops: int | None = None
    capped: bool = False
    # bumped whenever banned amounts or min_hops change (cheaper than comparing them)
    version: int = 0

    @property
    def banned_amount(self) -> float:
        return sum(self.banned)

    def summary(self) -> dict[str, Any]:
        total = self.banned_amount
        return {
            "drawdown_id": self.drawdown_id,
            "amount": self.amount,
            "banned_amount": total,
            "banned_amount_3plus": sum(self.banned[3:]),
            "banned_share": total / self.amount,
            "min_hops_to_banned": self.min_hops,
            "banned_hops": list(self.banned),
            "capped": self.capped,
            "line_id": self.line_id,
            "customer_id": self.customer_id,
        }


@dataclass(frozen=True)
class TransferRecord:
    ts: int
    transfer_id: str
    src: str
    dst: str
    amount: float


class LiveFlows:
    """Open traces, the transfer log per source account, and the sink accounts.

    Parameters: ``window_us`` (W), ``max_hops`` (H), ``cap`` (``flows.max_expand_per_hop``),
    ``keep_us`` (how long after its window a trace stays open for late transfers),
    ``evidence_k`` (evidence paths kept when a trace closes).
    """

    def __init__(
        self, window_us: int, max_hops: int, cap: int, keep_us: int, evidence_k: int = 3
    ) -> None:
        self.window_us = window_us
        self.evidence_k = evidence_k
        self.max_hops = max_hops
        self.cap = cap
        self.keep_us = keep_us
        self.sinks: set[str] = set()
        self.out_log: dict[str, list[tuple[int, str, str, float]]] = defaultdict(list)
        self.traces: dict[str, Trace] = {}
        self.closed: dict[str, dict[str, Any]] = {}
        # drawdown -> (a0, t0, t0 + W, X): enough to search evidence paths after closing
        self.origins: dict[str, tuple[str, int, int, float]] = {}
        self.watchers: dict[str, set[str]] = defaultdict(set)
        self._expiry: list[tuple[int, str]] = []
        self.last_transfer: tuple[int, str] = (-(1 << 62), "")

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
        self.origins[drawdown_id] = (account, ts, trace.end, amount)
        heapq.heappush(self._expiry, (trace.end + self.keep_us, drawdown_id))
        self.retrace(trace)
        return trace

    def add_transfer(self, record: TransferRecord) -> list[Trace]:
        """Log a transfer and offer it to every open trace that has reached its source.

        In event order this is one step of each touched trace's replay: O(traces watching the
        source x H) plus any same-instant re-offers. A late transfer (before the latest one
        applied) re-traces the watching traces from the log instead. Returns the traces whose
        banned amount or reach changed.
        """
        entry = (record.ts, record.transfer_id, record.dst, record.amount)
        log = self.out_log[record.src]
        late = (record.ts, record.transfer_id) < self.last_transfer
        if not log or (log[-1][0], log[-1][1]) < (record.ts, record.transfer_id):
            log.append(entry)
        else:
            insort(log, entry)
        if not late:
            self.last_transfer = (record.ts, record.transfer_id)
        changed = []
        src, key = record.src, (record.ts, record.transfer_id)
        watching = self.watchers.get(src, set())
        for drawdown_id in list(watching):
            trace = self.traces[drawdown_id]
            if not trace.t0 <= record.ts <= trace.end:
                continue
            if not late and not self._useful(trace, src):
                # no taint to move and no shorter way to a sink through it: stop offering
                # (taint arriving or a lower hop count offers it again)
                watching.discard(drawdown_id)
                continue
            before = trace.version
            if late:
                self.retrace(trace)
            else:
                self._step_reach(trace, src, record.dst, record.ts)
                self._step_amount(trace, src, record.dst, record.amount, key)
            if trace.version != before:
                changed.append(trace)
        return changed

    def expire(self, now: int) -> list[str]:
        """Close the traces whose window (plus the lateness allowance) ended before ``now``.

        Cost: O(log n) per closed trace plus its reached accounts.
        """
        done = []
        while self._expiry and self._expiry[0][0] < now:
            _, drawdown_id = heapq.heappop(self._expiry)
            trace = self.traces.get(drawdown_id)
            if trace is None:
                continue
            summary = trace.summary()
            del self.traces[drawdown_id]
            for account in trace.hops.keys() | trace.taint.keys():
                watching = self.watchers.get(account)
                if watching is not None:
                    watching.discard(drawdown_id)
                    if not watching:
                        del self.watchers[account]
            self.closed[drawdown_id] = summary
            done.append(drawdown_id)
        return done

    def result(self, drawdown_id: str) -> dict[str, Any] | None:
        trace = self.traces.get(drawdown_id)
        return trace.summary() if trace is not None else self.closed.get(drawdown_id)

    def results(self) -> list[dict[str, Any]]:
        return [*self.closed.values(), *(t.summary() for t in self.traces.values())]

    # -- one step, in event order ------------------------------------------------------------

    def _watch(self, trace: Trace, account: str) -> None:
        if account not in self.sinks:
            self.watchers[account].add(trace.drawdown_id)

    def _useful(self, trace: Trace, account: str) -> bool:
        """Whether a transfer out of ``account`` can change ``trace``: it holds taint there
        (below the last layer), or reaching on from there could lower ``min_hops``."""
        layers = trace.taint.get(account)
        if layers is not None and any(layers[: self.max_hops]):
            return True
        hops = trace.hops.get(account)
        return (
            hops is not None
            and hops < self.max_hops
            and (trace.min_hops is None or hops + 1 < trace.min_hops)
        )

    def _step_reach(self, trace: Trace, src: str, dst: str, ts: int) -> None:
        hops = trace.hops.get(src)
        if hops is None or hops >= self.max_hops or src in self.sinks:
            return
        known = trace.hops.get(dst)
        if known is not None and known <= hops + 1:
            return
        self._propagate(trace, [(dst, hops + 1)], ts)

    def _propagate(self, trace: Trace, arrivals: list[tuple[str, int]], ts: int) -> None:
        """Lower hop counts from ``arrivals`` at instant ``ts``; an account whose count drops
        re-offers its transfers of the same instant (equal times may go in any order)."""
        while arrivals:
            account, hops = arrivals.pop()
            known = trace.hops.get(account)
            if known is not None and known <= hops:
                continue
            trace.hops[account] = hops
            if account in self.sinks:
                if trace.min_hops is None or hops < trace.min_hops:
                    trace.min_hops = hops
                    trace.version += 1
                continue
            self._watch(trace, account)
            if hops >= self.max_hops:
                continue
            log = self.out_log.get(account, ())
            at = bisect_left(log, (ts,))
            while at < len(log) and log[at][0] == ts:
                arrivals.append((log[at][2], hops + 1))
                at += 1

    def _step_amount(
        self, trace: Trace, src: str, dst: str, amount: float, key: tuple[int, str]
    ) -> None:
        """Move ``min(amount, taint of src in layers < H)``, lowest layer first (``first``).

        A layer may use the transfer when fewer than ``cap`` transfers out of ``src`` came
        between its first tainted arrival and this one (batch's hub cap: the first ``cap``
        outflows after the arrival), counted in the log by bisection, only for layers that
        hold taint: O(H log n)."""
        firsts = trace.first.get(src)
        if firsts is None:
            return
        layers = trace.taint[src]
        room = amount
        moved: list[tuple[int, float]] = []
        log: list[tuple[int, str, str, float]] | None = None
        position = 0
        for layer in range(self.max_hops):
            held = layers[layer]
            if held <= 0 or room <= 0:
                continue
            if log is None:
                log = self.out_log[src]
                position = bisect_left(log, key)
            since = firsts[layer]
            if since is not None and position - bisect_right(log, (*since, _LAST)) >= self.cap:
                trace.capped = True
                continue
            take = held if held < room else room
            layers[layer] = held - take
            room -= take
            moved.append((layer + 1, take))
        for layer, take in moved:
            self._arrive(trace, dst, layer, take, key, src)

    def _arrive(
        self,
        trace: Trace,
        account: str,
        layer: int,
        amount: float,
        key: tuple[int, str],
        source: str,
    ) -> None:
        if (account, layer) not in trace.via:
            trace.via[(account, layer)] = (key[1], source)
        if account in self.sinks:
            trace.banned[layer] += amount
            trace.version += 1
            return
        layers = trace.taint.get(account)
        if layers is None:
            layers = trace.taint[account] = [0.0] * (self.max_hops + 1)
        layers[layer] += amount
        if layer < self.max_hops:
            firsts = trace.first.get(account)
            if firsts is None:
                firsts = trace.first[account] = [None] * self.max_hops
            if firsts[layer] is None:
                firsts[layer] = key
            self._watch(trace, account)

    def money_path(self, drawdown_id: str) -> list[str]:
        """The transfers that first carried the drawdown's money into a sink (its lowest banned
        layer), then the sink: the path the taint took, read back from first arrivals. O(H)."""
        trace = self.traces.get(drawdown_id)
        if trace is None:
            return []
        for layer, amount in enumerate(trace.banned):
            if amount <= 0 or layer == 0:
                continue
            sink = next(a for (a, h) in trace.via if h == layer and a in self.sinks)
            path, account = [], sink
            for h in range(layer, 0, -1):
                tid, account = trace.via[(account, h)]
                path.append(tid)
            return [*reversed(path), sink]
        return []

    # -- from scratch --------------------------------------------------------------------------

    def retrace(self, trace: Trace) -> None:
        """Trace ``trace`` again from the transfer log: reach by an earliest-arrival search by
        hop (as batch), amounts by replaying the logged transfers out of tainted accounts in
        (ts, transfer_id) order. Exact whatever order the transfers arrived in.

        Cost: O(H x transfers out of reached accounts in the window x log).
        """
        for account in trace.hops.keys() | trace.taint.keys():
            watching = self.watchers.get(account)
            if watching is not None:
                watching.discard(trace.drawdown_id)
        trace.hops, trace.taint, trace.first, trace.via = {}, {}, {}, {}
        trace.banned = [0.0] * (self.max_hops + 1)
        trace.min_hops, trace.capped = None, False
        self._reach_from_scratch(trace)
        self._replay_from_scratch(trace)
        trace.version += 1

    def _window(self, account: str, start: int, end: int) -> list[tuple[int, str, str, float]]:
        log = self.out_log.get(account, ())
        lo = bisect_left(log, (start,))
        hi = bisect_left(log, (end + 1,))
        return log[lo:hi]

    def _reach_from_scratch(self, trace: Trace) -> None:
        a0 = trace.account
        trace.hops[a0] = 0
        if a0 in self.sinks:
            trace.min_hops = 0
            return
        self._watch(trace, a0)
        best = {a0: trace.t0}
        frontier = {a0: trace.t0}
        for hop in range(1, self.max_hops + 1):
            nxt: dict[str, int] = {}
            for account, arrival in frontier.items():
                for ts, _, dst, _ in self._window(account, arrival, trace.end):
                    if dst in self.sinks:
                        if trace.min_hops is None:
                            trace.min_hops = hop
                        trace.hops.setdefault(dst, hop)
                        continue
                    if ts < best.get(dst, _NEVER[0]) and ts < nxt.get(dst, _NEVER[0]):
                        nxt[dst] = ts
            for account, arrival in nxt.items():
                best[account] = arrival
                trace.hops.setdefault(account, hop)
                self._watch(trace, account)
            frontier = nxt
            if not frontier:
                break

    def _replay_from_scratch(self, trace: Trace) -> None:
        if trace.account in self.sinks:
            trace.banned[0] = trace.amount
            return
        self._arrive(trace, trace.account, 0, trace.amount, (trace.t0, ""), "")
        queue: list[tuple[int, str, str, str, float]] = []
        pushed: set[str] = set()

        def push(account: str, after: tuple[int, str]) -> None:
            pushed.add(account)
            for ts, tid, dst, amount in self._window(account, after[0], trace.end):
                if (ts, tid) > after:
                    heapq.heappush(queue, (ts, tid, account, dst, amount))

        push(trace.account, (trace.t0, ""))
        while queue:
            ts, tid, src, dst, amount = heapq.heappop(queue)
            self._step_amount(trace, src, dst, amount, (ts, tid))
            if dst not in pushed and dst not in self.sinks and dst in trace.taint:
                push(dst, (ts, tid))

    # -- evidence -------------------------------------------------------------------------------

    def evidence_paths(
        self, drawdown_id: str, k: int, max_visits: int = 100_000
    ) -> tuple[list[dict[str, Any]], bool]:
        """The best ``k`` paths of a drawdown (open trace or closed) into a sink, ranked as
        batch: amount (``min(X, transfer amounts)``) descending, hops ascending, transfer ids
        in order.

        Paths are simple and time-respecting (equal times in any order) inside the window, at
        most H hops. First the window's transfers reachable from ``a0`` are collected (an
        earliest-arrival search) and each account's hops to a sink over them (a backward
        search); then a depth-first search enters only accounts that can still reach a sink in
        the hops left, and drops a path below the k-th complete one (a path's amount only falls
        as it grows). Returns (paths, capped): ``capped`` when ``max_visits`` partial paths
        were reached. Cost: O(window transfers reachable + partial paths explored).
        """
        origin = self.origins.get(drawdown_id)
        if origin is None or k <= 0:
            return [], False
        a0, t0, end, x = origin
        if a0 in self.sinks:
            return [{"hops": 0, "transfer_ids": [], "sink_account": a0, "amount": x}], False
        dist = self._distance_to_sink(a0, t0, end)
        if a0 not in dist:
            return [], False
        found: list[tuple[float, int, tuple[str, ...], str]] = []
        visits = 0
        capped = False
        max_hops = self.max_hops

        def dfs(account: str, arrival: int, amount: float, path: list[str], on: set[str]) -> None:
            nonlocal visits, capped
            left = max_hops - len(path) - 1
            for ts, tid, dst, value in self._window(account, arrival, end):
                if dst in on or dist.get(dst, max_hops + 1) > left:
                    continue
                carried = value if value < amount else amount
                if len(found) >= k and carried < -found[k - 1][0]:
                    continue
                visits += 1
                if visits > max_visits:
                    capped = True
                    return
                path.append(tid)
                if dst in self.sinks:
                    found.append((-carried, len(path), tuple(path), dst))
                    found.sort()
                    del found[k:]
                else:
                    on.add(dst)
                    dfs(dst, ts, carried, path, on)
                    on.discard(dst)
                path.pop()

        dfs(a0, t0, x, [], {a0})
        return [
            {"hops": hops, "transfer_ids": list(ids), "sink_account": sink, "amount": -neg}
            for neg, hops, ids, sink in found
        ], capped

    def _distance_to_sink(self, a0: str, t0: int, end: int) -> dict[str, int]:
        """Hops to a sink over the window's transfers reachable from ``a0`` (ignoring the time
        order between them: a lower bound, so pruning with it is exact)."""
        edges: dict[str, set[str]] = defaultdict(set)
        best = {a0: t0}
        frontier = {a0: t0}
        for _ in range(self.max_hops):
            nxt: dict[str, int] = {}
            for account, arrival in frontier.items():
                for ts, _, dst, _ in self._window(account, arrival, end):
                    edges[dst].add(account)
                    if dst in self.sinks:
                        continue
                    if ts < best.get(dst, _NEVER[0]) and ts < nxt.get(dst, _NEVER[0]):
                        nxt[dst] = ts
            best.update(nxt)
            frontier = nxt
            if not frontier:
                break
        dist: dict[str, int] = {}
        level = [a for a in edges if a in self.sinks]
        for hops in range(self.max_hops + 1):
            todo = []
            for account in level:
                if account not in dist:
                    dist[account] = hops
                    todo.extend(edges.get(account, ()))
            level = todo
            if not level:
                break
        return dist
