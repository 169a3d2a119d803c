"""The live state's behaviour: validation, idempotency, lateness, alerts, decisions, checkpoints.

Hand-built cases with answers worked out by hand; the exactness against batch is
``test_live_exactness.py``.
"""

from __future__ import annotations

import pickle
import random
from datetime import datetime

import polars as pl
import pytest

from graphkit.alerts import limit_advice, load_policy, recommended_limit
from graphkit.config import from_mapping
from graphkit.graph import RiskGraph
from graphkit.live import EventRejected, LiveError, LiveState, parse_event
from graphkit.live.replay import split_tables
from loaders.frames import make_tables
from tests.live_fixtures import Batch, assert_same_as_batch, random_tables


def base_tables() -> dict[str, pl.DataFrame]:
    """Three enterprises, a banned merchant, one line each; C2 is labelled defaulted."""
    return make_tables(
        sectors={"sector": ["crypto", "food"], "banned": [True, False]},
        merchants={"merchant_id": ["M0", "M1"], "sector": ["crypto", "food"]},
        customers={
            "customer_id": ["C0", "C1", "C2"],
            "kind": ["enterprise"] * 3,
            "created_at": ["2025-01-01T00:00:00Z"] * 3,
        },
        labels={"customer_id": ["C0", "C1", "C2"], "defaulted": [False, False, True]},
        accounts={
            "account_id": ["A0", "A1", "A2", "AM0", "AM1"],
            "owner_id": ["C0", "C1", "C2", "M0", "M1"],
        },
        credit_lines={
            "line_id": ["L0", "L1", "L2"],
            "customer_id": ["C0", "C1", "C2"],
            "limit": [100_000.0, 50_000.0, 10_000.0],
            "opened_at": ["2025-01-01T00:00:00Z"] * 3,
        },
        guarantees={"guarantor_id": ["C0"], "borrower_id": ["C1"], "amount": [1000.0]},
        drawdowns={
            "drawdown_id": ["D0"],
            "line_id": ["L0"],
            "account_id": ["A0"],
            "amount": [1000.0],
            "ts": ["2025-01-02T00:00:00Z"],
        },
    )


@pytest.fixture
def state() -> LiveState:
    config = from_mapping({"live": {"max_lateness_seconds": 3600.0}})
    return LiveState.from_graph(RiskGraph.from_tables(base_tables()), config)


def transfer(tid: str, src: str, dst: str, amount: float, ts: str) -> dict:
    return {
        "type": "transfer",
        "transfer_id": tid,
        "src_account": src,
        "dst_account": dst,
        "amount": amount,
        "ts": ts,
    }


def drawdown(did: str, line: str, account: str, amount: float, ts: str, **extra) -> dict:
    return {
        "type": "drawdown",
        "drawdown_id": did,
        "line_id": line,
        "account_id": account,
        "amount": amount,
        "ts": ts,
        **extra,
    }


def messages(result) -> list[str]:
    return [str(i) for i in result.issues]


def test_bad_events_are_rejected_with_the_loaders_words_and_change_nothing(
    state: LiveState,
) -> None:
    before = pickle.dumps(state)
    cases = {
        "unknown type": ({"type": "payment", "id": "X"}, "unknown event type 'payment'"),
        "missing key": (
            transfer(None, "A0", "A1", 5.0, "2025-01-03T00:00:00Z"),
            "transfer event column transfer_id: empty value in required column",
        ),
        "dangling": (
            transfer("T9", "A0", "A404", 5.0, "2025-01-03T00:00:00Z"),
            "transfer event column dst_account: dangling reference 'A404': not found in "
            "accounts.account_id",
        ),
        "amount zero": (
            transfer("T9", "A0", "A1", 0, "2025-01-03T00:00:00Z"),
            "transfer event column amount: 0.0 must be > 0",
        ),
        "negative drawdown": (
            drawdown("D9", "L0", "A0", -5, "2025-01-03T00:00:00Z"),
            "drawdown event column amount: -5.0 must be > 0",
        ),
        "not a number": (
            transfer("T9", "A0", "A1", "lots", "2025-01-03T00:00:00Z"),
            "transfer event column amount: 'lots' is not a number",
        ),
        "bad time": (
            transfer("T9", "A0", "A1", 5.0, "yesterday"),
            "transfer event column ts: 'yesterday' is not an ISO-8601 date or datetime",
        ),
        "self guarantee": (
            {"type": "guarantee", "guarantor_id": "C0", "borrower_id": "C0", "amount": 1.0},
            "guarantee event column guarantor_id: guarantor_id equals borrower_id ('C0'): a "
            "customer cannot be linked to itself",
        ),
        "backwards": (
            transfer("T9", "A0", "A1", 5.0, "2025-01-01T00:00:00Z"),
            "is earlier than the latest event 2025-01-02T00:00:00Z by more than the tolerance "
            "of 3600 s",
        ),
    }
    for name, (event, expected) in cases.items():
        result = state.apply(event)
        assert result.status == "rejected", name
        assert any(expected in m for m in messages(result)), (name, messages(result))
    assert pickle.dumps(state) == before


def test_the_same_event_twice_is_a_no_op_and_a_clash_is_rejected(state: LiveState) -> None:
    event = transfer("T1", "A0", "A1", 5.0, "2025-01-02T01:00:00Z")
    assert state.apply(event).status == "applied"
    snapshot = pickle.dumps(state)
    assert state.apply(event).status == "duplicate"
    assert state.apply(dict(event, amount="5")).status == "duplicate"
    assert pickle.dumps(state) == snapshot
    clash = state.apply(dict(event, amount=6.0))
    assert clash.status == "rejected"
    assert "duplicate key transfer_id='T1'" in messages(clash)[0]
    # a row of the batch snapshot is known too (kept as a digest of its values), also after
    # a checkpoint round trip; the same key with other values is a clash
    restored = pickle.loads(pickle.dumps(state))
    for live in (state, restored):
        assert live.apply(drawdown("D0", "L0", "A0", 1000.0, "2025-01-02T00:00:00Z")).status == (
            "duplicate"
        )
        assert live.apply(drawdown("D0", "L0", "A0", 1000, "2025-01-02T00:00:00+00:00")).status == (
            "duplicate"
        )
        guarantee = {"type": "guarantee", "guarantor_id": "C0", "borrower_id": "C1"}
        assert live.apply(dict(guarantee, amount=1000.0)).status == "duplicate"
        clash = live.apply(drawdown("D0", "L0", "A0", 999.0, "2025-01-02T00:00:00Z"))
        assert clash.status == "rejected"
        assert "duplicate key drawdown_id='D0'" in messages(clash)[0]


def test_money_reaching_a_banned_sector_raises_an_alert_with_its_path(state: LiveState) -> None:
    state.apply(transfer("T1", "A0", "A1", 600.0, "2025-01-02T01:00:00Z"))
    result = state.apply(transfer("T2", "A1", "AM0", 500.0, "2025-01-02T02:00:00Z"))
    banned = [a for a in result.alerts if a.rule == "banned_flow"]
    assert len(banned) == 1 and banned[0].customer_id == "C0"
    assert banned[0].evidence == ("D0", "T1", "T2", "AM0")
    # 500 of C0's 1000 drawn reached the sink: share 50% >= 30%, orange
    share = [a for a in result.alerts if a.rule == "banned_share"]
    assert share and share[0].tier == "orange" and "50% of drawn money" in share[0].text
    assert state.flows.result("D0")["banned_amount"] == 500.0
    assert state.flows.result("D0")["min_hops_to_banned"] == 2
    view = state.customer("C0")
    assert view["tier"] == "orange"
    assert view["open_traces"][0]["evidence_paths"][0]["transfer_ids"] == ["T1", "T2"]
    assert [a.seq for a in state.alerts_after(0)] == list(range(1, len(state.feed) + 1))
    assert state.alerts_after(len(state.feed)) == []


def test_a_guarantee_closing_a_circle_with_a_defaulted_member_alerts_its_members(
    state: LiveState,
) -> None:
    assert (
        state.apply(
            {"type": "guarantee", "guarantor_id": "C1", "borrower_id": "C2", "amount": 5.0}
        ).alerts
        == []
    )
    result = state.apply(
        {"type": "guarantee", "guarantor_id": "C2", "borrower_id": "C0", "amount": 5.0}
    )
    hit = {a.customer_id: a for a in result.alerts if a.rule == "circle_default"}
    assert set(hit) == {"C0", "C1", "C2"}
    assert all(a.tier == "orange" for a in hit.values())
    assert hit["C0"].evidence == ("C2", "C0->C1->C2")
    assert state.customer("C1")["circle"]["members"] == ["C0", "C1", "C2"]


def test_five_drawdowns_a_day_turn_the_decision_to_review(state: LiveState) -> None:
    for i in range(4):
        result = state.apply(drawdown(f"D{i + 1}", "L1", "A1", 100.0, f"2025-01-03T0{i}:00:00Z"))
        assert result.decision.decision == "ACCEPT"
    frozen = pickle.dumps(state)
    proposed = {"line_id": "L1", "account_id": "A1", "amount": 100.0, "ts": "2025-01-03T05:00:00Z"}
    decision = state.decide(proposed)
    assert pickle.dumps(state) == frozen  # asking changes nothing
    assert (decision.decision, decision.tier) == ("REVIEW", "orange")
    assert decision.reasons[0].rule == "burst" and "5 drawdowns on 2025-01-03" in (
        decision.reasons[0].text
    )
    # the advised limit is the batch rule's for this line (4 x 100 drawn, no score)
    assert decision.recommended_limit == recommended_limit(
        50_000.0, 400.0, "orange", None, state.policy
    )
    applied = state.apply(drawdown("D5", "L1", "A1", 100.0, "2025-01-03T05:00:00Z"))
    assert applied.decision.decision == "REVIEW"
    assert [a.rule for a in applied.alerts] == ["burst"]
    with pytest.raises(EventRejected, match="dangling reference 'L404'"):
        state.decide(dict(proposed, line_id="L404"))


def test_late_transfers_within_the_tolerance_give_the_in_order_answer() -> None:
    """Events shuffled within the lateness tolerance: the fund flows still equal batch."""
    config = from_mapping(
        {
            "flows": {"window_days": 2.0, "max_hops": 3},
            "rings": {"min_customers_per_device": 2, "max_customers_per_device": 3},
            "live": {"max_lateness_seconds": 10 * 86_400.0},
        }
    )
    for seed in range(4):
        tables = random_tables(seed, 6)
        batch = Batch(tables, config)
        before, events = split_tables(tables, batch.snapshot.replace(year=2024))
        state = LiveState.from_graph(RiskGraph.from_tables(before), config)
        rng = random.Random(seed)
        # keep entity rows first (references), shuffle the money
        entities = [e for _, e in events if e.type not in ("drawdown", "transfer")]
        money = [e for _, e in events if e.type in ("drawdown", "transfer")]
        rng.shuffle(money)
        for event in entities + money:
            assert state.apply(event).status == "applied"
        assert_same_as_batch(state, batch, f"shuffled seed {seed}")


def test_checkpoint_restores_the_same_state(state: LiveState, tmp_path) -> None:
    state.apply(transfer("T1", "A0", "AM0", 300.0, "2025-01-02T01:00:00Z"))
    state.checkpoint(tmp_path / "state.pkl")
    restored = LiveState.restore(tmp_path / "state.pkl")
    assert restored.customer("C0") == state.customer("C0")
    event = transfer("T2", "A0", "AM0", 300.0, "2025-01-02T02:00:00Z")
    assert restored.apply(event).to_dict()["alerts"] == state.apply(event).to_dict()["alerts"]
    assert pickle.dumps(restored.flows.results()) == pickle.dumps(state.flows.results())


def test_velocity_is_checkpointed_packed_and_read_back_the_same(state: LiveState) -> None:
    """A checkpoint writes the velocity's time lists end to end in a few arrays (millions of
    small arrays pickled one by one left holes in the restored heap): read back, every line,
    time list and night list is the one written, and the lists still start empty on demand."""
    for i, ts in enumerate(
        ["2025-01-02T01:00:00Z", "2025-01-02T01:30:00Z", "2025-01-02T23:00:00Z"]
    ):
        assert state.apply(drawdown(f"DV{i}", "L0", "A0", 10.0, ts)).status == "applied"
    velocity = state.velocity
    assert any(len(line.times) for line in velocity.lines.values())
    assert any(not len(line.times) for line in velocity.lines.values())
    restored = pickle.loads(pickle.dumps(velocity))
    assert restored.lines == velocity.lines
    assert dict(restored.times) == dict(velocity.times)
    assert dict(restored.night) == dict(velocity.night)
    assert restored.repayments == velocity.repayments
    assert not len(restored.times["a customer seen for the first time"])
    now = 1_735_800_000_000_000
    assert restored.features("C0", now) == velocity.features("C0", now)


def test_events_round_trip_as_json_dicts() -> None:
    event = parse_event(transfer("T1", "A0", "A1", "12.5", "2025-01-02 01:00:00+02:00"))
    as_dict = event.to_dict()
    assert as_dict["ts"] == "2025-01-01T23:00:00Z" and as_dict["amount"] == 12.5
    assert parse_event(as_dict) == event


def test_recommended_limit_is_limit_advice_for_one_line() -> None:
    """The scalar rule the decisions use agrees with the batch frame rule everywhere."""
    policy = load_policy()
    rng = random.Random(5)
    rows = []
    for i in range(300):
        limit = float(rng.randrange(1, 500) * 1000)
        rows.append(
            (
                f"C{i}",
                rng.choice(["yellow", "orange", "red"]),
                rng.choice([None, rng.random()]),
                limit,
                rng.choice([0.0, limit * rng.random(), limit * 1.3]),
            )
        )
    tiers = pl.DataFrame(
        [(c, t, "", s) for c, t, s, _, _ in rows],
        schema={
            "customer_id": pl.String,
            "tier": pl.String,
            "response": pl.String,
            "risk_score": pl.Float64,
        },
        orient="row",
    ).with_columns(rules=pl.lit(""), reasons=pl.lit(""))
    lines = pl.DataFrame(
        [(f"L{c}", c, limit, out) for c, _, _, limit, out in rows],
        schema={
            "line_id": pl.String,
            "customer_id": pl.String,
            "limit": pl.Float64,
            "outstanding": pl.Float64,
        },
        orient="row",
    )
    advised = dict(
        limit_advice(tiers, lines, policy).select("customer_id", "recommended_limit").iter_rows()
    )
    for c, tier, score, limit, out in rows:
        assert recommended_limit(limit, out, tier, score, policy) == pytest.approx(advised[c])


def test_live_settings_are_validated_and_a_non_streamed_policy_is_refused() -> None:
    from graphkit.config import ConfigError
    from graphkit.live import LiveError

    with pytest.raises(ConfigError, match=r"\[live\] max_lateness_seconds must be >= 0"):
        from_mapping({"live": {"max_lateness_seconds": -1}})
    with pytest.raises(ConfigError, match=r"\[live\] tolerance: unknown key"):
        from_mapping({"live": {"tolerance": 5}})
    fifo = from_mapping({"flows": {"policy": "fifo"}})
    with pytest.raises(LiveError, match="'fifo' is not replayed live"):
        LiveState.from_graph(RiskGraph.from_tables(base_tables()), fifo)


def test_velocity_signals_fast_draws_night_and_overdue() -> None:
    from datetime import date

    from graphkit.live.events import datetime_to_us
    from graphkit.live.velocity import Velocity

    def us(text: str) -> int:
        return datetime_to_us(datetime.fromisoformat(text))

    velocity = Velocity(fast_minutes=10, night_start=0, night_end=6)
    velocity.add_line("L", "C", 10_000.0, us("2025-03-01T12:00:00+00:00"))
    velocity.add_drawdown("L", 3_000.0, us("2025-03-01T12:05:00+00:00"))  # 5 min after opening
    velocity.add_drawdown("L", 1_000.0, us("2025-03-01T14:00:00+00:00"))  # not fast
    velocity.add_repayment("L", date(2025, 3, 2), us("2025-03-02T01:00:00+00:00"), 500.0, 0)
    velocity.add_drawdown("L", 2_000.0, us("2025-03-02T01:09:00+00:00"))  # 9 min after repaying
    velocity.add_repayment("L", date(2025, 3, 5), None, 500.0, None)  # due, never paid
    line = velocity.line_features("L", us("2025-03-02T01:30:00+00:00"))
    assert line["fast_draw_share"] == pytest.approx(0.5)
    assert line["line_drawdowns_1h"] == 1 and line["line_drawdowns_1d"] == 3
    assert line["outstanding"] == 5_500.0
    features = velocity.features("C", us("2025-03-08T00:00:00+00:00"))
    assert features["overdue_repayments"] == 1 and features["dpd_max"] == 3
    assert velocity.features("C", us("2025-03-02T02:00:00+00:00"))["night_drawdowns_1d"] == 1


def test_a_new_customer_joins_its_strongest_ties_cluster_provisionally(state: LiveState) -> None:
    state.cluster_of.update({"C0": 7, "C1": 9})
    state.cluster_tier[9] = ("red", 0.9)
    state.cluster_size.update({7: 2, 9: 3})
    assert (
        state.apply(
            {
                "type": "customer",
                "customer_id": "N1",
                "kind": "enterprise",
                "created_at": "2025-01-02",
            }
        ).status
        == "applied"
    )
    state.apply({"type": "guarantee", "guarantor_id": "N1", "borrower_id": "C0", "amount": 5.0})
    assert state.customer("N1")["cluster"] == {"cluster_id": 7, "provisional": True}
    state.apply({"type": "guarantee", "guarantor_id": "C1", "borrower_id": "N1", "amount": 5.0})
    state.apply({"type": "shareholding", "holder_id": "C1", "company_id": "N1", "share": 0.5})
    view = state.customer("N1")
    assert view["cluster"] == {"cluster_id": 9, "provisional": True}
    assert view["tier"] == "orange" and view["reasons"][0]["rule"] == "cluster_red"
    # customers of the run keep the run's cluster
    state.apply({"type": "guarantee", "guarantor_id": "C2", "borrower_id": "C1", "amount": 5.0})
    assert state.customer("C2")["cluster"] is None


def test_a_checkpoint_of_another_layout_is_refused(state: LiveState, tmp_path, monkeypatch) -> None:
    """A state pickled with another layout number (another graphkit version's structures) is
    refused with a message when read back, not misread."""
    state.checkpoint(tmp_path / "same.pkl")
    assert LiveState.restore(tmp_path / "same.pkl").customer("C0") == state.customer("C0")
    monkeypatch.setattr(LiveState, "LAYOUT", LiveState.LAYOUT + 1)
    state.checkpoint(tmp_path / "other.pkl")
    monkeypatch.undo()
    with pytest.raises(LiveError, match="layout"):
        LiveState.restore(tmp_path / "other.pkl")
