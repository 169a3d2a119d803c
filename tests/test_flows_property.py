"""Fund-flow tracing against exhaustive references written here, over random temporal graphs.

The references are deliberately plain: a depth-first search over every simple time-respecting
path (reach, evidence paths), and per-drawdown replays of the transfers one at a time (the
``first`` rule of ARCHITECTURE section 5, a FIFO queue of lots, a proportional haircut). The
random graphs are small but adversarial: few distinct timestamps (ties), cycles and revisits,
self-transfers, sinks in the middle of chains, transfers before ``t0`` and after the window,
several drawdowns into the same account.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.flows import FlowIndex, banned_amounts, evidence_paths, reach, round_trips
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from loaders.frames import make_tables

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
BIG_CAP = 1_000_000


@dataclass(frozen=True)
class Transfer:
    tid: str
    src: str
    dst: str
    amount: float
    ts: datetime


@dataclass(frozen=True)
class Drawdown:
    did: str
    account: str
    amount: float
    ts: datetime


@dataclass
class Case:
    accounts: list[str]
    owners: dict[str, str]
    sinks: set[str]
    transfers: list[Transfer]
    drawdowns: list[Drawdown]
    opening: dict[str, float]
    window_days: int
    max_hops: int
    k: int

    def graph(self) -> RiskGraph:
        customers = sorted({o for o in self.owners.values() if o.startswith("c")} | {"c0"})
        merchants = sorted({o for o in self.owners.values() if o.startswith("m")})
        tables = make_tables(
            customers={"customer_id": customers, "kind": ["person"] * len(customers)},
            credit_lines={"line_id": ["l0"], "customer_id": ["c0"], "limit": [1e9]},
            accounts={
                "account_id": self.accounts,
                "owner_id": [self.owners[a] for a in self.accounts],
            },
            merchants={
                "merchant_id": merchants,
                "sector": ["bad" if m.startswith("mb") else "ok" for m in merchants],
            },
            sectors={"sector": ["bad", "ok"], "banned": [True, False]},
            drawdowns={
                "drawdown_id": [d.did for d in self.drawdowns],
                "line_id": ["l0"] * len(self.drawdowns),
                "account_id": [d.account for d in self.drawdowns],
                "amount": [d.amount for d in self.drawdowns],
                "ts": [d.ts for d in self.drawdowns],
            },
            transfers={
                "transfer_id": [t.tid for t in self.transfers],
                "src_account": [t.src for t in self.transfers],
                "dst_account": [t.dst for t in self.transfers],
                "amount": [t.amount for t in self.transfers],
                "ts": [t.ts for t in self.transfers],
            },
        )
        return RiskGraph.from_tables(tables)

    def balances(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"account_id": list(self.opening), "balance": list(self.opening.values())},
            schema={"account_id": pl.String, "balance": pl.Float64},
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_acc = draw(st.integers(2, 7))
    accounts = [f"a{i}" for i in range(n_acc)]
    owners = {}
    for a in accounts:
        owners[a] = draw(st.sampled_from(["c0", "c1", "c2", "mb0", "mb1", "mo0"]))
    sinks = {a for a in accounts if owners[a].startswith("mb")}
    n_days = draw(st.integers(1, 8))
    amounts = st.sampled_from([1.0, 2.0, 2.5, 5.0, 7.0, 10.0, 40.0, 100.0])
    n_t = draw(st.integers(0, 14))
    tids = draw(st.permutations([f"t{i:02d}" for i in range(n_t)]))
    transfers = [
        Transfer(
            tid=tids[i],
            src=draw(st.sampled_from(accounts)),
            dst=draw(st.sampled_from(accounts)),
            amount=draw(amounts),
            ts=EPOCH + timedelta(days=draw(st.integers(0, n_days))),
        )
        for i in range(n_t)
    ]
    n_d = draw(st.integers(1, 3))
    drawdowns = [
        Drawdown(
            did=f"d{i}",
            account=draw(st.sampled_from(accounts)),
            amount=draw(amounts),
            ts=EPOCH + timedelta(days=draw(st.integers(0, n_days))),
        )
        for i in range(n_d)
    ]
    opening = {
        a: draw(st.sampled_from([1.0, 5.0, 50.0]))
        for a in accounts
        if draw(st.booleans()) and draw(st.booleans())
    }
    return Case(
        accounts=accounts,
        owners=owners,
        sinks=sinks,
        transfers=transfers,
        drawdowns=drawdowns,
        opening=opening,
        window_days=draw(st.integers(0, n_days)),
        max_hops=draw(st.integers(1, 5)),
        k=draw(st.integers(1, 4)),
    )


# ---------------------------------------------------------------------------------- references


def reference_paths(case: Case, dd: Drawdown) -> list[tuple[float, int, tuple[str, ...], str]]:
    """Every simple time-respecting path from the drawdown into a sink, by DFS."""
    end = dd.ts + timedelta(days=case.window_days)
    if dd.account in case.sinks:
        return [(dd.amount, 0, (), dd.account)]
    found = []

    def dfs(account: str, last: datetime, visited: list[str], path: list[Transfer]) -> None:
        if len(path) == case.max_hops:
            return
        for t in case.transfers:
            if t.src != account or t.ts < last or t.ts > end or t.dst in visited:
                continue
            step = [*path, t]
            if t.dst in case.sinks:
                amount = min([dd.amount] + [p.amount for p in step])
                found.append((amount, len(step), tuple(p.tid for p in step), t.dst))
            else:
                dfs(t.dst, t.ts, [*visited, t.dst], step)

    dfs(dd.account, dd.ts, [dd.account], [])
    return found


def reference_first(case: Case, dd: Drawdown) -> dict[tuple[str, int], float]:
    """The ``first`` rule, one transfer at a time; returns taint per (account, layer)."""
    taint: dict[tuple[str, int], float] = defaultdict(float)
    taint[(dd.account, 0)] = dd.amount
    end = dd.ts + timedelta(days=case.window_days)
    for t in sorted(case.transfers, key=lambda t: (t.ts, t.tid)):
        if t.ts < dd.ts or t.ts > end or t.src in case.sinks:
            continue
        need, moves = t.amount, []
        for layer in range(case.max_hops):
            take = min(need, taint[(t.src, layer)])
            if take > 0:
                moves.append((layer, take))
                need -= take
        for layer, take in moves:
            taint[(t.src, layer)] -= take
            taint[(t.dst, layer + 1)] += take
    return taint


def _events(case: Case) -> list[tuple[datetime, int, str, object]]:
    return sorted(
        [(d.ts, 0, d.did, d) for d in case.drawdowns]
        + [(t.ts, 1, t.tid, t) for t in case.transfers],
        key=lambda e: (e[0], e[1], e[2]),
    )


def reference_fifo(case: Case, dd: Drawdown) -> dict[tuple[str, int], float]:
    """A queue of lots per account; the oldest lot leaves first; taint booked per layer."""
    queues: dict[str, deque[list]] = defaultdict(deque)
    for account, amount in case.opening.items():
        queues[account].append([amount, None])
    booked: dict[tuple[str, int], float] = defaultdict(float)
    end = dd.ts + timedelta(days=case.window_days)
    for ts, _, _, event in _events(case):
        if ts > end:
            break
        if isinstance(event, Drawdown):
            queues[event.account].append([event.amount, 0 if event is dd else None])
            continue
        need, pieces = event.amount, []
        queue = queues[event.src]
        while need > 0 and queue:
            lot = queue[0]
            take = min(need, lot[0])
            pieces.append((take, lot[1]))
            lot[0] -= take
            need -= take
            if lot[0] <= 0:
                queue.popleft()
        if need > 0:
            pieces.append((need, None))
        for amount, layer in pieces:
            if layer is None:
                queues[event.dst].append([amount, None])
            elif event.src in case.sinks or layer == case.max_hops:
                booked[(event.src, layer)] += amount
                queues[event.dst].append([amount, None])
            else:
                queues[event.dst].append([amount, layer + 1])
    for account, queue in queues.items():
        for amount, layer in queue:
            if layer is not None:
                booked[(account, layer)] += amount
    return booked


def reference_proportional(case: Case, dd: Drawdown) -> dict[tuple[str, int], float]:
    """Balances and taint per layer; an outflow carries its share of the balance's taint."""
    balance: dict[str, float] = defaultdict(float, case.opening)
    taint: dict[tuple[str, int], float] = defaultdict(float)
    end = dd.ts + timedelta(days=case.window_days)
    for ts, _, _, event in _events(case):
        if ts > end:
            break
        if isinstance(event, Drawdown):
            balance[event.account] += event.amount
            if event is dd:
                taint[(dd.account, 0)] += dd.amount
            continue
        known = balance[event.src]
        share = event.amount / known if known > event.amount else 1.0
        moves = []
        if event.src not in case.sinks:
            for layer in range(case.max_hops):
                carried = share * taint[(event.src, layer)]
                if carried > 0:
                    moves.append((layer, carried))
        for layer, carried in moves:
            taint[(event.src, layer)] -= carried
        balance[event.src] = max(known - event.amount, 0.0)
        balance[event.dst] += event.amount
        for layer, carried in moves:
            taint[(event.dst, layer + 1)] += carried
    return taint


REFERENCES = {
    "first": reference_first,
    "fifo": reference_fifo,
    "proportional": reference_proportional,
}


def banned_by_layer(case: Case, taint: dict[tuple[str, int], float]) -> np.ndarray:
    out = np.zeros(case.max_hops + 1)
    for (account, layer), amount in taint.items():
        if account in case.sinks:
            out[layer] += amount
    return out


# ------------------------------------------------------------------------------------- tests


@settings(max_examples=300)
@given(cases())
def test_reach_and_evidence_match_exhaustive_dfs(case: Case) -> None:
    index = FlowIndex.build(case.graph())
    got = reach(
        index, window_days=case.window_days, max_hops=case.max_hops, max_expand_per_hop=BIG_CAP
    )
    paths, flags = evidence_paths(
        index,
        window_days=case.window_days,
        max_hops=case.max_hops,
        paths_per_drawdown=case.k,
        max_expand_per_hop=BIG_CAP,
        max_paths_per_drawdown=BIG_CAP,
    )
    assert not got.get_column("capped").any() and not flags.get_column("capped").any()
    hops = dict(zip(got["drawdown_id"], got["min_hops_to_banned"], strict=True))
    for dd in case.drawdowns:
        expected = reference_paths(case, dd)
        assert hops[dd.did] == (min(p[1] for p in expected) if expected else None)
        best = sorted(expected, key=lambda p: (-p[0], p[1], p[2]))[: case.k]
        mine = paths.filter(pl.col("drawdown_id") == dd.did).sort("path_rank")
        assert mine.get_column("path_rank").to_list() == list(range(1, len(best) + 1))
        assert [
            (a, h, tuple(ids), s)
            for a, h, ids, s in mine.select(
                "amount", "hops", "transfer_ids", "sink_account"
            ).iter_rows()
        ] == best


@settings(max_examples=300)
@given(cases())
def test_first_amounts_match_replay_and_all_policies_conserve(case: Case) -> None:
    index = FlowIndex.build(case.graph(), case.balances())
    hops = reach(
        index, window_days=case.window_days, max_hops=case.max_hops, max_expand_per_hop=BIG_CAP
    ).get_column("min_hops_to_banned")
    for policy, reference in REFERENCES.items():
        result = banned_amounts(
            index,
            policy=policy,
            window_days=case.window_days,
            max_hops=case.max_hops,
            max_expand_per_hop=BIG_CAP,
            ledger=True,
            prune=False,
        )
        pruned = banned_amounts(
            index,
            policy=policy,
            window_days=case.window_days,
            max_hops=case.max_hops,
            max_expand_per_hop=BIG_CAP,
            ledger=True,
        )
        assert not result.capped.any() and not pruned.capped.any()
        np.testing.assert_allclose(pruned.banned, result.banned, atol=1e-9)
        assert pruned.ledger is not None and (pruned.ledger.get_column("amount") >= 0).all()
        conserved = pruned.ledger.group_by("drawdown").agg(pl.col("amount").sum())
        assert conserved.height == len(case.drawdowns)
        np.testing.assert_allclose(
            conserved.sort("drawdown").get_column("amount").to_numpy(),
            [d.amount for d in case.drawdowns],
        )
        ledger = result.ledger
        assert ledger is not None
        assert (ledger.get_column("amount") >= 0).all()
        for pos, dd in enumerate(case.drawdowns):
            expected = reference(case, dd)
            np.testing.assert_allclose(
                result.banned[pos], banned_by_layer(case, expected), atol=1e-6, err_msg=policy
            )
            mine = ledger.filter(pl.col("drawdown") == pos)
            assert mine.get_column("amount").sum() == pytest.approx(dd.amount, abs=1e-6)
            where = defaultdict(float)
            for account, layer, amount in mine.select("account", "layer", "amount").iter_rows():
                where[(case.accounts[account], layer)] += amount
            for key in set(where) | {k for k, v in expected.items() if v > 1e-9}:
                assert where[key] == pytest.approx(expected[key], abs=1e-6), (policy, key)
            # taint only travels along time-respecting walks, so it cannot land in a sink at a
            # layer below the minimum hop count
            landed = np.flatnonzero(result.banned[pos] > 1e-9)
            if len(landed):
                assert hops[pos] is not None and hops[pos] <= landed[0]


def reference_cycles(case: Case, window_days: int, max_length: int) -> set[tuple[str, ...]]:
    customer_owned = {a for a in case.accounts if case.owners[a].startswith("c")}
    found: set[tuple[str, ...]] = set()

    def dfs(home: str, end: datetime, account: str, last: datetime, visited, path) -> None:
        if len(path) == max_length:
            return
        for t in case.transfers:
            if t.src != account or t.ts <= last or t.ts > end:
                continue
            if t.dst == home:
                found.add((*path, t.tid))
            elif t.dst not in visited and t.dst in customer_owned:
                dfs(home, end, t.dst, t.ts, [*visited, t.dst], [*path, t.tid])

    for first in case.transfers:
        if first.src in customer_owned and first.dst in customer_owned and first.src != first.dst:
            end = first.ts + timedelta(days=window_days)
            dfs(first.src, end, first.dst, first.ts, [first.src, first.dst], [first.tid])
    return found


@settings(max_examples=300)
@given(cases(), st.integers(2, 5))
def test_round_trips_match_exhaustive_dfs(case: Case, max_length: int) -> None:
    index = FlowIndex.build(case.graph())
    cycles, capped = round_trips(
        index,
        window_days=case.window_days,
        max_length=max_length,
        max_cycles=FlowsConfig().max_cycles,
        max_expand_per_hop=BIG_CAP,
    )
    assert not capped
    mine = [tuple(ids) for ids in cycles.get_column("transfer_ids").to_list()]
    assert len(mine) == len(set(mine))
    assert set(mine) == reference_cycles(case, case.window_days, max_length)
    assert (cycles.get_column("length") == cycles.get_column("transfer_ids").list.len()).all()
