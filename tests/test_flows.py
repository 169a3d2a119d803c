"""Fund-flow tracing: hand-checked policies, caps, planted chains, the stage and the commands.

The exhaustive property tests are in ``tests/test_flows_property.py``.
"""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from graphkit.analytics.flow_sweep import SWEEP_COLUMNS, sweep_flows
from graphkit.analytics.flows import (
    DrawdownArrays,
    FlowIndex,
    TransferArrays,
    banned_amounts,
    evidence_paths,
    min_hops_to_banned,
    reach,
    replay_window,
    round_trips,
    trace_flows,
)
from graphkit.analytics.flows.index import US_PER_DAY
from graphkit.config import FlowsConfig, load_config
from graphkit.graph import RiskGraph
from graphkit.pipeline import run_pipeline
from graphkit.schema import OUTPUTS
from loaders.frames import make_tables

synthetic = pytest.importorskip("loaders.synthetic")

# The kernels take every setting explicitly; these tests use the config's defaults unless a
# test says otherwise.
CFG = FlowsConfig()


def knobs(**overrides: float) -> dict[str, float]:
    """The config's window, hop bound and hub cap, with ``overrides``."""
    base = {
        "window_days": CFG.window_days,
        "max_hops": CFG.max_hops,
        "max_expand_per_hop": CFG.max_expand_per_hop,
    }
    return base | overrides


def small_graph(
    transfers: list[tuple[str, str, str, float, str]],
    drawdowns: list[tuple[str, str, float, str]] | None = None,
) -> RiskGraph:
    """Accounts a0 (customer c0), a1, a2, hub (customer c1), s (banned merchant), ok (allowed)."""
    drawdowns = drawdowns or [("d0", "a0", 100.0, "2024-01-01")]
    return RiskGraph.from_tables(
        make_tables(
            customers={"customer_id": ["c0", "c1"], "kind": ["person", "enterprise"]},
            credit_lines={
                "line_id": ["l0", "l1"],
                "customer_id": ["c0", "c1"],
                "limit": [1e6, 1e6],
            },
            accounts={
                "account_id": ["a0", "a1", "a2", "hub", "s", "ok"],
                "owner_id": ["c0", "c1", "c1", "c1", "m_bad", "m_ok"],
            },
            merchants={"merchant_id": ["m_bad", "m_ok"], "sector": ["crypto", "food"]},
            sectors={"sector": ["crypto", "food"], "banned": [True, False]},
            drawdowns={
                "drawdown_id": [d[0] for d in drawdowns],
                "line_id": ["l0" if d[1] == "a0" else "l1" for d in drawdowns],
                "account_id": [d[1] for d in drawdowns],
                "amount": [d[2] for d in drawdowns],
                "ts": [d[3] for d in drawdowns],
            },
            transfers={
                "transfer_id": [t[0] for t in transfers],
                "src_account": [t[1] for t in transfers],
                "dst_account": [t[2] for t in transfers],
                "amount": [t[3] for t in transfers],
                "ts": [t[4] for t in transfers],
            },
        )
    )


def test_policies_on_a_hand_checked_example() -> None:
    graph = small_graph(
        [
            ("t1", "a0", "a1", 60.0, "2024-01-02"),
            ("t2", "a1", "s", 60.0, "2024-01-03"),
        ]
    )
    opening = pl.DataFrame({"account_id": ["a0"], "balance": [50.0]})
    index = FlowIndex.build(graph, opening)
    expected = {
        # all 60 of t1 is loan money, and all of it goes on to the sink
        "first": 60.0,
        # a0 holds 50 older money: t1 carries 50 old + 10 loan; t2 carries those 10 (+50 unseen)
        "fifo": 10.0,
        # t1 takes 60/150 of a0's balance, so 40 of the loan; t2 empties a1
        "proportional": 40.0,
    }
    for policy, banned in expected.items():
        result = banned_amounts(index, policy=policy, **knobs(max_hops=3), ledger=True)
        assert result.banned[0].tolist() == [0.0, 0.0, banned, 0.0], policy
        assert result.ledger is not None
        assert result.ledger.get_column("amount").sum() == pytest.approx(100.0)


def test_window_and_hop_bound() -> None:
    graph = small_graph(
        [
            ("t1", "a0", "a1", 100.0, "2024-01-02"),
            ("t2", "a1", "a2", 100.0, "2024-01-05"),
            ("t3", "a2", "s", 100.0, "2024-01-09"),
        ]
    )
    index = FlowIndex.build(graph)
    for window, hops, expected in [(30, 6, 3), (7, 6, None), (8, 6, 3), (30, 2, None)]:
        got = reach(index, **knobs(window_days=window, max_hops=hops))
        assert got.get_column("min_hops_to_banned").to_list() == [expected]
        amounts = banned_amounts(index, policy="first", **knobs(window_days=window, max_hops=hops))
        assert amounts.banned.sum() == (100.0 if expected else 0.0)


def test_transfer_before_the_drawdown_is_not_followed() -> None:
    graph = small_graph([("t1", "a0", "s", 100.0, "2023-12-31")])
    index = FlowIndex.build(graph)
    assert reach(index, **knobs()).get_column("min_hops_to_banned").to_list() == [None]
    assert banned_amounts(index, policy="first", **knobs()).banned.sum() == 0.0


def test_hub_cap_is_stated_and_taint_is_conserved() -> None:
    fan_out = [(f"h{i:02d}", "hub", "ok", 1.0, f"2024-01-02T00:{i:02d}:00") for i in range(20)]
    graph = small_graph(
        [
            ("t0", "a0", "hub", 100.0, "2024-01-01T12:00:00"),
            *fan_out,
            ("t9", "hub", "s", 50.0, "2024-01-03"),
        ]
    )
    index = FlowIndex.build(graph)
    uncapped = reach(index, **knobs(max_expand_per_hop=100))
    assert uncapped.get_column("min_hops_to_banned").to_list() == [2]
    assert not uncapped.get_column("capped").any()
    capped = reach(index, **knobs(max_expand_per_hop=5))
    assert capped.get_column("min_hops_to_banned").to_list() == [None]
    assert capped.get_column("capped").to_list() == [True]
    for policy in ("first", "fifo", "proportional"):
        result = banned_amounts(index, policy=policy, **knobs(max_expand_per_hop=5), ledger=True)
        assert result.capped.tolist() == [True]
        assert result.ledger is not None
        assert result.ledger.get_column("amount").sum() == pytest.approx(100.0)
        assert (result.ledger.get_column("amount") >= 0).all()
    full = banned_amounts(index, policy="first", **knobs(max_expand_per_hop=100))
    assert full.banned[0, 2] == 50.0 and not full.capped.any()
    cfg = FlowsConfig(max_expand_per_hop=5)
    totals = trace_flows(graph, cfg).totals
    assert totals["hub_cap_hit"] is True and totals["drawdowns_capped"] == 1


def test_drawdown_straight_into_a_sink_is_hop_zero() -> None:
    graph = small_graph(
        [], drawdowns=[("d0", "a0", 10.0, "2024-01-01"), ("d1", "s", 5.0, "2024-01-01")]
    )
    result = trace_flows(graph)
    flows = result.flows.sort("drawdown_id")
    assert flows.get_column("min_hops_to_banned").to_list() == [None, 0]
    assert flows.get_column("banned_hop_0").to_list() == [0.0, 5.0]
    assert flows.get_column("banned_share").to_list() == [0.0, 1.0]
    assert result.paths.get_column("hops").to_list() == [0]
    assert result.paths.get_column("transfer_ids").to_list() == [[]]


def test_min_hops_for_a_chosen_list_of_drawdowns() -> None:
    graph = small_graph(
        [("t1", "a0", "s", 10.0, "2024-01-02"), ("t2", "hub", "a0", 10.0, "2024-01-02")],
        drawdowns=[("d0", "a0", 10.0, "2024-01-01"), ("d1", "hub", 10.0, "2024-01-01")],
    )
    got = min_hops_to_banned(graph, ["d1", "d0"], window_days=30, max_hops=2)
    assert got.rows() == [("d1", 2), ("d0", 1)]
    one_hop = min_hops_to_banned(graph, ["d1"], window_days=CFG.window_days, max_hops=1)
    assert one_hop.rows() == [("d1", None)]
    with pytest.raises(KeyError, match="nope"):
        min_hops_to_banned(graph, ["nope"], window_days=CFG.window_days, max_hops=CFG.max_hops)


def test_customer_flows_add_up_per_customer() -> None:
    graph = small_graph(
        [("t1", "a0", "s", 30.0, "2024-01-02"), ("t2", "hub", "s", 5.0, "2024-01-02")],
        drawdowns=[
            ("d0", "a0", 100.0, "2024-01-01"),
            ("d1", "a0", 100.0, "2024-01-03"),
            ("d2", "hub", 20.0, "2024-01-01"),
        ],
    )
    result = trace_flows(graph)
    rows = {r["customer_id"]: r for r in result.customer_flows.to_dicts()}
    assert rows["c0"]["drawn_amount"] == 200.0 and rows["c0"]["banned_amount"] == 30.0
    assert rows["c0"]["banned_share"] == pytest.approx(0.15)
    assert rows["c1"]["banned_amount"] == 5.0 and rows["c1"]["banned_share"] == 0.25
    assert result.totals["banned_share"] == pytest.approx(35.0 / 220.0)


def test_round_trip_cap_is_reported() -> None:
    graph = small_graph(
        [
            ("t1", "a0", "a1", 10.0, "2024-01-02"),
            ("t2", "a1", "a0", 8.0, "2024-01-03"),
            ("t3", "a0", "a1", 5.0, "2024-01-04"),
            ("t4", "a1", "a0", 4.0, "2024-01-05"),
        ]
    )
    index = FlowIndex.build(graph)
    cycles, capped = round_trips(
        index, window_days=30, max_length=4, max_cycles=CFG.max_cycles, max_expand_per_hop=100
    )
    assert not capped
    assert sorted(map(tuple, cycles.get_column("transfer_ids").to_list())) == [
        ("t1", "t2"),
        ("t1", "t4"),
        ("t2", "t3"),
        ("t3", "t4"),
    ]
    assert cycles.filter(pl.col("transfer_ids").list.first() == "t1").get_column(
        "amount"
    ).to_list() == [8.0, 4.0]
    few, capped = round_trips(
        index, window_days=30, max_length=4, max_cycles=2, max_expand_per_hop=100
    )
    assert capped and few.height == 2


def test_empty_graph() -> None:
    graph = RiskGraph.from_tables(
        make_tables(customers={"customer_id": ["c0"], "kind": ["person"]})
    )
    result = trace_flows(graph)
    assert result.flows.height == 0 and result.paths.height == 0 and result.cycles.height == 0
    assert result.totals["banned_share"] == 0.0


@pytest.fixture(scope="module")
def generated() -> synthetic.GeneratedData:
    return synthetic.generate_tables(1500, 11)


def test_every_planted_chain_is_found_at_its_hop_count(generated: synthetic.GeneratedData) -> None:
    graph = RiskGraph.from_tables(generated.tables)
    chains = generated.truth["chains"]
    assert chains.height > 0
    result = trace_flows(graph)
    found = chains.join(result.flows, on="drawdown_id", how="left")
    assert found.height == chains.height
    assert (found.get_column("min_hops_to_banned") == found.get_column("hops")).all()
    # the generator plants nothing else that can reach a sink within 30 days
    reaching = result.flows.filter(pl.col("min_hops_to_banned").is_not_null())
    assert set(reaching.get_column("drawdown_id")) == set(chains.get_column("drawdown_id"))
    best = result.paths.filter(pl.col("path_rank") == 1).join(chains, on="drawdown_id")
    assert best.height == chains.height
    assert (best.get_column("transfer_ids") == best.get_column("transfer_ids_right")).all()
    assert (best.get_column("sink_account") == best.get_column("sink_account_right")).all()
    # noise paths go back in time or leave the window: never followed
    noise = generated.truth.get("noise_paths")
    if noise is not None and noise.height:
        flows = result.flows.join(noise.select("drawdown_id").unique(), on="drawdown_id")
        assert (
            flows.join(chains, on="drawdown_id", how="anti")
            .get_column("min_hops_to_banned")
            .null_count()
            == flows.join(chains, on="drawdown_id", how="anti").height
        )


def window_arrays(index: FlowIndex, transfers: np.ndarray, drawdowns: np.ndarray) -> tuple:
    """The selected transfers and drawdowns of ``index`` as the plain arrays an engine holds."""
    return (
        TransferArrays(
            src=index.src[transfers],
            dst=index.dst[transfers],
            amount=index.amount[transfers],
            ts=index.ts[transfers],
            ids=index.transfer_ids.gather(transfers),
        ),
        DrawdownArrays(
            account=index.dd_account[drawdowns],
            amount=index.dd_amount[drawdowns],
            ts=index.dd_ts[drawdowns],
            ids=index.dd_ids.gather(drawdowns),
        ),
    )


def test_one_drawdowns_window_as_arrays_replays_like_the_batch(
    generated: synthetic.GeneratedData,
) -> None:
    """What a live or Spark engine calls per drawdown gives the batch's amounts: ``first`` from
    the drawdown and its window alone, every policy when the earlier events come along (the
    balances ``fifo`` and ``proportional`` replay against depend on them)."""
    index = FlowIndex.build(RiskGraph.from_tables(generated.tables))
    chains = generated.truth["chains"].get_column("drawdown_id").head(12)
    window = round(CFG.window_days * US_PER_DAY)
    settings = {"max_hops": CFG.max_hops, "max_expand_per_hop": CFG.max_expand_per_hop}
    for policy in ("first", "fifo", "proportional"):
        batch = banned_amounts(index, chains, policy=policy, **knobs())
        assert batch.banned.sum() > 0
        for row, pos in enumerate(index.positions(chains)):
            t0 = index.dd_ts[pos]
            if policy == "first":
                in_window = np.flatnonzero((index.ts >= t0) & (index.ts <= t0 + window))
                arrays = window_arrays(index, in_window, np.array([pos]))
                at = 0
            else:
                before_end = np.flatnonzero(index.dd_ts <= t0 + window)
                arrays = window_arrays(index, np.flatnonzero(index.ts <= t0 + window), before_end)
                at = int(np.flatnonzero(before_end == pos)[0])
            banned, capped = replay_window(index.sinks, *arrays, policy=policy, **settings)
            np.testing.assert_allclose(banned[at], batch.banned[row], rtol=1e-12, atol=1e-9)
            assert capped[at] == batch.capped[row]


def test_arrays_that_do_not_fit_are_refused_by_name() -> None:
    one = np.array([0])
    drawdown = DrawdownArrays(account=one, amount=np.array([1.0]), ts=one)
    sinks = np.array([False, True])
    short = TransferArrays(src=one, dst=np.array([1, 1]), amount=np.array([1.0]), ts=one)
    with pytest.raises(ValueError, match=r"transfers: arrays differ in length \(src 1, dst 2"):
        FlowIndex.from_arrays(sinks=sinks, transfers=short, drawdowns=drawdown)
    outside = TransferArrays(src=one, dst=np.array([2]), amount=np.array([1.0]), ts=one)
    with pytest.raises(ValueError, match=r"transfers.dst: account numbers must lie in 0..1"):
        FlowIndex.from_arrays(sinks=sinks, transfers=outside, drawdowns=drawdown)
    fine = TransferArrays(src=one, dst=np.array([1]), amount=np.array([1.0]), ts=one)
    with pytest.raises(ValueError, match="opening: 3 balances for 2 accounts"):
        FlowIndex.from_arrays(sinks=sinks, transfers=fine, drawdowns=drawdown, opening=np.ones(3))


@pytest.mark.parametrize(
    "module",
    ["amounts", "cycles", "evidence", "index", "reachability", "trace"],
)
def test_docstring_examples_hold(module: str) -> None:
    found = doctest.testmod(importlib.import_module(f"graphkit.analytics.flows.{module}"))
    assert found.failed == 0 and found.attempted > 0


def test_planted_chains_under_every_policy_conserve(generated: synthetic.GeneratedData) -> None:
    graph = RiskGraph.from_tables(generated.tables)
    index = FlowIndex.build(graph)
    chains = generated.truth["chains"].get_column("drawdown_id")
    amounts = index.dd_amount[index.positions(chains)]
    for policy in ("first", "fifo", "proportional"):
        result = banned_amounts(index, chains, policy=policy, **knobs(), ledger=True)
        assert result.ledger is not None
        per_dd = result.ledger.group_by("drawdown").agg(pl.col("amount").sum()).sort("drawdown")
        np.testing.assert_allclose(per_dd.get_column("amount").to_numpy(), amounts, rtol=1e-9)
        assert (result.banned >= 0).all()
    paths, _ = evidence_paths(
        index,
        chains,
        **knobs(),
        paths_per_drawdown=CFG.evidence_paths,
        max_paths_per_drawdown=CFG.max_paths_per_drawdown,
    )
    assert set(paths.get_column("drawdown_id")) == set(chains)


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flows") / "input"
    synthetic.generate(out, 600, 5)
    return out


def test_stage_writes_the_contracted_outputs(input_dir: Path, tmp_path: Path) -> None:
    summary = run_pipeline(input_dir, tmp_path / "run", load_config(None), stages=["flows"])
    for name in ("flows.parquet", "flow_paths.parquet", "transfer_cycles.parquet"):
        frame = pl.read_parquet(tmp_path / "run" / name)
        lead = OUTPUTS[name].columns
        assert tuple(frame.columns[: len(lead)]) == lead
    flows = pl.read_parquet(tmp_path / "run" / "flows.parquet")
    assert [f"banned_hop_{h}" for h in range(7)] == [c for c in flows.columns if "hop_" in c]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["flows"]["drawdowns"] == flows.height
    assert manifest["flows"]["banned_amount_3plus"] == pytest.approx(
        flows.get_column("banned_amount_3plus").sum()
    )
    assert summary.manifest["stages"] == ["flows"]


def test_commands(input_dir: Path, tmp_path: Path) -> None:
    from cli import app

    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "flows",
            str(input_dir),
            "--out",
            str(tmp_path / "run"),
            "--hops",
            "4",
            "--policy",
            "fifo",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["parameters"]["flows"]["max_hops"] == 4
    assert manifest["flows"]["policy"] == "fifo"
    bad = runner.invoke(
        app, ["flows", str(input_dir), "--out", str(tmp_path / "x"), "--policy", "lifo", "--quiet"]
    )
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    result = runner.invoke(
        app,
        [
            "sweep",
            "flows",
            str(input_dir),
            "--hops",
            "2:3",
            "--window",
            "7,30",
            "--policy",
            "first,proportional",
            "--out",
            str(tmp_path / "sweep"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pl.read_csv(tmp_path / "sweep" / "sweep_flows.csv")
    assert tuple(table.columns) == SWEEP_COLUMNS and table.height == 8
    assert (tmp_path / "sweep" / "sweep_flows.png").stat().st_size > 0


def test_sweep_matches_single_runs(generated: synthetic.GeneratedData) -> None:
    graph = RiskGraph.from_tables(generated.tables)
    table = sweep_flows(graph, [2, 6], [7.0, 30.0], ["first", "fifo"])
    for row in table.iter_rows(named=True):
        cfg = FlowsConfig(
            max_hops=row["max_hops"], window_days=row["window_days"], policy=row["policy"]
        )
        totals = trace_flows(graph, cfg, cycles=False).totals
        assert row["banned_share"] == pytest.approx(totals["banned_share"])
        assert row["banned_share_3plus"] == pytest.approx(totals["banned_share_3plus"])
        assert row["reaching_banned"] == totals["drawdowns_reaching_banned"]
