"""``graphkit replay`` end to end: the batch half through the real pipeline, then the events."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from graphkit.live.replay import write_input
from tests.live_fixtures import Batch, groups, random_tables, small_config

CONFIG = """
[gnn]
enabled = false
[flows]
window_days = 2.0
max_hops = 3
[rings]
min_customers_per_device = 2
max_customers_per_device = 3
[circles]
max_cycle_length = 4
"""


@pytest.mark.parametrize("cut", ["2025-01-03T12:00:00", "2024-06-01"])
def test_replay_command_writes_the_backtest_equal_to_batch(tmp_path: Path, cut: str) -> None:
    tables = random_tables(21, 8)
    write_input(tables, tmp_path / "in")
    (tmp_path / "graphkit.toml").write_text(CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(tmp_path / "in"),
            "--cut",
            cut,
            "--out",
            str(out),
            "--config",
            str(tmp_path / "graphkit.toml"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {
        "circles.parquet",
        "rings.parquet",
        "flows.parquet",
        "flow_paths.parquet",
        "alerts.csv",
        "manifest.json",
        "decisions.parquet",
        "timeline.parquet",
    } <= names
    batch = Batch(tables, small_config())
    assert groups(pl.read_parquet(out / "circles.parquet"), "circle_id") == batch.circles
    assert groups(pl.read_parquet(out / "rings.parquet"), "ring_id") == batch.rings
    flows = pl.read_parquet(out / "flows.parquet")
    joined = batch.flows.join(flows, on="drawdown_id", suffix="_live")
    assert joined.height == batch.flows.height
    assert (joined["banned_amount"] - joined["banned_amount_live"]).abs().max() < 1e-6
    decisions = pl.read_parquet(out / "decisions.parquet")
    assert (
        decisions.columns[:9]
        == [
            "event_id",
            "event_type",
            "ts",
            "customer_id",
            "line_id",
            "decision",
            "tier",
            "reasons",
            "recommended_limit",
        ]
        and "apply_us" in decisions.columns
    )
    assert set(decisions["decision"]) <= {"ACCEPT", "REVIEW", "BLOCK"}
    timeline = pl.read_parquet(out / "timeline.parquet")
    assert timeline.columns == ["customer_id", "tier", "first_at", "event_id"]


def test_replay_command_refuses_a_bad_cut(tmp_path: Path) -> None:
    write_input(random_tables(1, 3), tmp_path / "in")
    result = CliRunner().invoke(
        app, ["replay", str(tmp_path / "in"), "--cut", "soon", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "not an ISO-8601" in result.output
    assert not (tmp_path / "o").exists()


def test_state_from_a_run_directory_reads_its_parameters_and_results(tmp_path: Path) -> None:
    import json

    from graphkit.config import from_mapping
    from graphkit.live import LiveState
    from graphkit.pipeline import run_pipeline

    write_input(random_tables(4, 8), tmp_path / "in")
    config = from_mapping({"gnn": {"enabled": False}, "flows": {"max_hops": 4}})
    run_pipeline(tmp_path / "in", tmp_path / "run", config)
    state = LiveState.from_run(tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert state.run_id == manifest["run_id"]
    assert state.config.flows.max_hops == 4  # the run's parameters, not the defaults
    batch_tiers = dict(
        pl.read_parquet(tmp_path / "run" / "customer_alerts.parquet")
        .select("customer_id", "tier")
        .iter_rows()
    )
    assert {c: state.current_tier(c) for c in batch_tiers} == batch_tiers
    for customer in batch_tiers:
        view = state.customer(customer)
        assert view["batch_tier"] == batch_tiers[customer]
        assert view["cluster"] is None or view["cluster"]["provisional"] is False
