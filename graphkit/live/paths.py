"""Evidence paths of a drawdown's money into banned sinks, searched in the live transfer log.

The live form of ``graphkit.analytics.flows.evidence_paths`` (the same ranking), for one
drawdown on demand (an open trace's customer view), over :class:`~graphkit.live.flows.LiveFlows`'
transfer log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

_NEVER = 1 << 62

# (ts, transfer_id, dst, amount) of the transfers out of an account in [start, end]
Window = Callable[[str, int, int], list[tuple[int, str, str, float, str]]]


def evidence_paths(
    origin: tuple[str, int, int, float] | None,
    sinks: set[str],
    window: Window,
    max_hops: int,
    k: int,
    max_visits: int = 100_000,
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
    were reached. ``origin``: the drawdown's (a0, t0, t0 + W, X), None if unknown;
    ``window``: the logged transfers out of an account in a time range (``LiveFlows.window``).

    Cost: O(window transfers reachable + partial paths explored).
    """
    if origin is None or k <= 0:
        return [], False
    a0, t0, end, x = origin
    if a0 in sinks:
        return [{"hops": 0, "transfer_ids": [], "sink_account": a0, "amount": x}], False
    dist = _distance_to_sink(sinks, window, max_hops, a0, t0, end)
    if a0 not in dist:
        return [], False
    found: list[tuple[float, int, tuple[str, ...], str]] = []
    visits = 0
    capped = False

    def dfs(account: str, arrival: int, amount: float, path: list[str], on: set[str]) -> None:
        nonlocal visits, capped
        left = max_hops - len(path) - 1
        for ts, tid, dst, value, _ in window(account, arrival, end):
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
            if dst in sinks:
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


def _distance_to_sink(
    sinks: set[str], window: Window, max_hops: int, a0: str, t0: int, end: int
) -> dict[str, int]:
    """Hops to a sink over the window's transfers reachable from ``a0`` (ignoring the time
    order between them: a lower bound, so pruning with it is exact)."""
    edges: dict[str, set[str]] = defaultdict(set)
    best = {a0: t0}
    frontier = {a0: t0}
    for _ in range(max_hops):
        nxt: dict[str, int] = {}
        for account, arrival in frontier.items():
            for ts, _, dst, _, _ in window(account, arrival, end):
                edges[dst].add(account)
                if dst in sinks:
                    continue
                if ts < best.get(dst, _NEVER) and ts < nxt.get(dst, _NEVER):
                    nxt[dst] = ts
        best.update(nxt)
        frontier = nxt
        if not frontier:
            break
    dist: dict[str, int] = {}
    level = [a for a in edges if a in sinks]
    for hops in range(max_hops + 1):
        todo = []
        for account in level:
            if account not in dist:
                dist[account] = hops
                todo.extend(edges.get(account, ()))
        level = todo
        if not level:
            break
    return dist
