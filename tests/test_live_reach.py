"""The live engine's reach tables against plain-Python oracles.

``graphkit.live.reach.Reach`` keeps, per account, the open traces that reached it and each one's
least hop count, as a dict while small and as sorted arrays past ``Reach.LIMIT``; a transfer
extends every trace reaching its source with a few numpy steps. These tests pin both halves
against loops written the obvious way: the table against a dict with ``min``, and the engine's
transfer step against a trace-by-trace relaxation (the reach rule of ``LiveFlows``: time-
respecting, at most H hops, window open, only while ``min_hops`` can still fall, same-instant
transfers re-offered). The exactness suite checks the engine's ``min_hops`` against batch.
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.live import reach
from graphkit.live.flows import LiveFlows, TransferRecord
from graphkit.live.reach import Reach

# one operation on a table: ("merge", [(uid, hops)], as_array) or ("add", hops) or
# ("compact", dead uids)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("merge"),
            st.dictionaries(
                st.integers(min_value=1, max_value=150),
                st.integers(min_value=0, max_value=6),
                max_size=90,
            ),
            st.booleans(),
        ),
        st.tuples(st.just("add"), st.integers(min_value=0, max_value=6), st.just(False)),
        st.tuples(st.just("compact"), st.sets(st.integers(1, 400), max_size=60), st.just(False)),
    ),
    max_size=25,
)


@settings(max_examples=300)
@given(ops=operations, limit=st.sampled_from([0, 2, 8, 64]), few=st.sampled_from([0, 1, 16]))
def test_table_equals_a_dict_with_min(ops, limit: int, few: int) -> None:
    saved = Reach.LIMIT, Reach.FEW
    Reach.LIMIT, Reach.FEW = limit, few
    try:
        table, oracle, fresh = Reach(), {}, 1000
        for kind, arg, as_array in ops:
            if kind == "merge":
                offered = sorted(arg.items())
                if not as_array:
                    random.Random(len(offered)).shuffle(offered)
                    uids, hops = [u for u, _ in offered], [h for _, h in offered]
                else:
                    uids = np.array([u for u, _ in offered], dtype=np.int64)
                    hops = np.array([h for _, h in offered], dtype=np.int8)
                want = {u: h for u, h in offered if h < oracle.get(u, 99)}
                got_uids, got_hops = table.merge(uids, hops)
                got_list = np.asarray(got_uids).tolist()
                got = dict(zip(got_list, np.asarray(got_hops).tolist(), strict=True))
                assert len(got) == len(got_uids)
                if not isinstance(got_uids, list):
                    assert list(got_uids) == sorted(got_uids)
                assert got == want
                oracle.update(want)
            elif kind == "add":
                fresh += 1
                table.add(fresh, arg)
                oracle[fresh] = arg
            else:
                alive = np.ones(2000, dtype=bool)
                alive[list(arg)] = False
                # the flags, or (in the dict form) the same as a set
                alive_set = set(np.flatnonzero(alive).tolist()) if len(arg) % 2 else None
                table.compact(alive, alive_set)
                oracle = {u: h for u, h in oracle.items() if u not in arg}
            assert table.as_dict() == oracle
            assert len(table) == len(oracle)
            if table.small is None:
                uid = table.uid[: table.n]
                assert (np.diff(uid) > 0).all()
                assert not set(uid.tolist()) & set(table.pending)
            assert pickle.loads(pickle.dumps(table)).as_dict() == oracle
            assert not reach._NO_PENDING  # the dict form's shared pending is never written
    finally:
        Reach.LIMIT, Reach.FEW = saved


class Relaxation:
    """The reach of every open trace, one trace at a time: the oracle for ``LiveFlows``."""

    def __init__(self, sinks: set[str], max_hops: int) -> None:
        self.sinks, self.max_hops = sinks, max_hops
        self.traces: dict[str, dict] = {}
        self.log: dict[str, list[tuple[int, str]]] = {}

    def drawdown(self, drawdown_id: str, account: str, t0: int, end: int) -> None:
        minh = 0 if account in self.sinks else None
        self.traces[drawdown_id] = {"t0": t0, "end": end, "reach": {account: 0}, "minh": minh}

    def transfer(self, ts: int, src: str, dst: str) -> None:
        self.log.setdefault(src, []).append((ts, dst))
        if src in self.sinks:
            return
        for trace in self.traces.values():
            hops = trace["reach"].get(src)
            if not trace["t0"] <= ts <= trace["end"] or hops is None or hops >= self.max_hops:
                continue
            if trace["minh"] is not None and trace["minh"] <= hops + 1:
                continue
            self.relax(trace, dst, hops + 1, ts)

    def distance(self, account: str) -> int:
        """Transfers from ``account`` to a sink over the whole log, ignoring time."""
        level, seen = {account}, {account}
        for d in range(self.max_hops + 1):
            if level & self.sinks:
                return d
            level = {dst for a in level if a not in self.sinks for _, dst in self.log.get(a, ())}
            level -= seen
            seen |= level
        return self.max_hops + 1

    def relax(self, trace: dict, account: str, hops: int, ts: int) -> None:
        if trace["reach"].get(account, 99) <= hops:
            return
        if account not in self.sinks and hops + self.distance(account) > self.max_hops:
            return  # no sink within the hops left: not kept
        trace["reach"][account] = hops
        if account in self.sinks:
            if trace["minh"] is None or hops < trace["minh"]:
                trace["minh"] = hops
            return
        if hops >= self.max_hops:
            return
        for at, dst in list(self.log.get(account, ())):
            if at == ts:
                self.relax(trace, dst, hops + 1, ts)


def engine_reach(flows: LiveFlows) -> dict[str, dict[str, int]]:
    """drawdown id -> {account: hops} read back from the engine's tables (open traces)."""
    out: dict[str, dict[str, int]] = {d: {} for d in flows.traces}
    by_uid = {trace.uid: d for d, trace in flows.traces.items()}
    for account, table in flows.reach.items():
        for uid, hops in table.as_dict().items():
            if uid in by_uid:
                out[by_uid[uid]][account] = hops
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("limit", [0, 4, 64])
def test_transfer_step_equals_a_trace_by_trace_relaxation(seed: int, limit: int, monkeypatch):
    """Drawdowns and in-order transfers on a few accounts (many traces per account, equal
    times, sinks, self-transfers), a checkpoint and restore half-way: every open trace's reach
    and ``min_hops`` as the oracle's."""
    monkeypatch.setattr(Reach, "LIMIT", limit)
    monkeypatch.setattr(Reach, "FEW", limit // 4)
    rng = random.Random(seed)
    max_hops, window = 3, 40
    accounts = [f"A{i}" for i in range(7)]
    sinks = set(rng.sample(accounts, 2))
    flows = LiveFlows(window, max_hops, cap=10**6, keep_us=0)
    flows.sinks = set(sinks)
    oracle = Relaxation(sinks, max_hops)
    now, drawdowns = 0, 0
    for step in range(400):
        if rng.random() < 0.25:
            # strictly after the last transfer: its reach starts at its own account
            now += 1
            drawdowns += 1
            did, account = f"D{drawdowns:03d}", rng.choice(accounts)
            flows.add_drawdown(did, account, 100.0, now, "L", None)
            oracle.drawdown(did, account, now, now + window)
        else:
            now += rng.choice([0, 0, 0, 1, 2])
            src, dst = rng.choice(accounts), rng.choice(accounts)
            flows.add_transfer(TransferRecord(now, f"T{step:04d}", src, dst, 10.0))
            oracle.transfer(now, src, dst)
        if step == 200:
            # a checkpoint in the middle: the flags' numpy views are made again over the bytes
            flows = pickle.loads(pickle.dumps(flows))
        if step % 50 == 49:
            for did in flows.expire(now):
                oracle.traces.pop(did)
            assert set(flows.traces) == set(oracle.traces)
    assert drawdowns > 20
    got = engine_reach(flows)
    for did, trace in oracle.traces.items():
        assert got[did] == trace["reach"], did
        assert flows.traces[did].min_hops == trace["minh"], did


def test_an_account_is_kept_only_while_a_sink_is_within_the_hops_left() -> None:
    """A trace reaching an account in h hops keeps no entry there while the account is more
    than H - h transfers from any sink (over every transfer logged, ignoring time): here the
    chain A0 -> A1 -> A2 -> A3 -> S is one hop too long for H = 3, in order and when re-traced.
    A transfer A2 -> S brings A2, A1 and A0 within reach: the trace is traced again, keeps the
    chain and reaches S in 3 hops (a re-trace stops at its first sink); a sink reached in H + 1
    hops never counts."""
    for retraced in (False, True):
        flows = LiveFlows(100, 3, cap=10**6, keep_us=0)
        flows.add_sink("S")
        chain = [("A0", "A1"), ("A1", "A2"), ("A2", "A3"), ("A3", "S"), ("A2", "S")]
        if not retraced:
            flows.add_drawdown("D", "A0", 100.0, 1, "L", None)
        for i, (src, dst) in enumerate(chain[:4]):
            flows.add_transfer(TransferRecord(2 + i, f"T{i}", src, dst, 10.0))
        if retraced:  # logged before the drawdown is known: traced from the log
            flows.add_drawdown("D", "A0", 100.0, 1, "L", None)
        assert engine_reach(flows) == {"D": {"A0": 0}}
        assert not flows.holdings  # nor is its money followed, not even at A0 (4 hops away)
        assert flows.traces["D"].min_hops is None  # A3 -> S would be a 4th hop
        assert flows.distance.near == {"A3": 1, "A2": 2, "A1": 3}
        flows.add_transfer(TransferRecord(9, "T9", *chain[4], 10.0))
        assert flows.distance.near == {"A3": 1, "A2": 1, "A1": 2, "A0": 3}
        assert flows.traces["D"].min_hops == 3
        assert engine_reach(flows)["D"] == {"A0": 0, "A1": 1, "A2": 2}  # traced again


def test_money_pruned_before_a_sink_came_within_reach_is_followed_again() -> None:
    """The drawdown's money goes A0 -> A1 -> A2 while A2 leads nowhere (not followed at all);
    a later A2 -> S brings the chain within H = 3 of a sink, and the money that waited at A2
    reaches S in the third layer, as a replay that never pruned would have it."""
    flows = LiveFlows(100, 3, cap=10**6, keep_us=0)
    flows.add_sink("S")
    flows.add_drawdown("D", "A0", 100.0, 1, "L", None)
    flows.add_transfer(TransferRecord(2, "T0", "A0", "A1", 10.0))
    flows.add_transfer(TransferRecord(3, "T1", "A1", "A2", 8.0))
    assert flows.traces["D"].banned_amount == 0
    assert not flows.holdings
    changed = flows.add_transfer(TransferRecord(4, "T2", "A2", "S", 5.0))
    assert [trace.drawdown_id for trace in changed] == ["D"]
    assert flows.traces["D"].banned == [0.0, 0.0, 0.0, 5.0]
    assert flows.money_path("D") == ["T0", "T1", "T2", "S"]
