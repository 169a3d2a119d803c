"""Scale test (``make bench``): the whole pipeline on a generated 20k-customer network.

About 100k nodes and 400k edges, every stage with its default configuration. The run must
finish and every output must honour the contract, and the planted structures the generator
guarantees must come out exactly (circles are exactly the SCCs, planted fund chains are the only
time-respecting routes to a banned sink). No timing is asserted: ``bench/pipeline_scale.py``
measures time and memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from graphkit.config import Config
from graphkit.pipeline import run_pipeline
from graphkit.schema import OUTPUTS, TIERS
from graphkit.store.embedded import load_snapshot
from loaders.synthetic import generate

pytestmark = pytest.mark.slow

CUSTOMERS = 20_000
SEED = 20261129


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("scale") / "input"
    generate(directory, CUSTOMERS, SEED)
    return directory


@pytest.fixture(scope="module")
def run(network: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale_runs") / "run"
    run_pipeline(network, out, Config())
    return out


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)


def _groups(frame: pl.DataFrame, group: str) -> set[frozenset[str]]:
    members = frame.group_by(group).agg("customer_id").get_column("customer_id").to_list()
    return {frozenset(m) for m in members}


def test_every_output_file_has_its_contract_columns(run: Path) -> None:
    for name, spec in OUTPUTS.items():
        frame = _read(run / name)
        assert frame.columns[: len(spec.columns)] == list(spec.columns), name
    assert (run / "report.html").stat().st_size > 0
    assert (run / "cluster_risk.csv").is_file()


def test_manifest_counts_match_the_files_and_the_generator(run: Path, network: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    truth = json.loads((network / "_truth" / "truth.json").read_text())
    graph = manifest["counts"]["graph"]
    assert sum(graph["nodes"].values()) == truth["counts"]["nodes"]["total"]
    assert sum(graph["edges"].values()) == truth["counts"]["edges"]["total"]
    for name, rows in manifest["counts"]["outputs"].items():
        assert _read(run / name).height == rows, name
    stages = {"circles", "rings", "flows", "clusters", "contagion", "gnn", "scores", "alerts"}
    assert stages <= set(manifest["timings_seconds"])
    assert manifest["model"]["trained"] is True


def test_circles_are_exactly_the_planted_ones(run: Path, network: Path) -> None:
    found = _groups(pl.read_parquet(run / "circles.parquet"), "circle_id")
    planted = _groups(pl.read_parquet(network / "_truth" / "circles.parquet"), "circle_id")
    assert found == planted
    assert all(len(circle) >= 2 for circle in found)


def test_every_planted_ring_lies_inside_one_found_ring(run: Path, network: Path) -> None:
    rings = pl.read_parquet(run / "rings.parquet")
    assert rings.get_column("customer_id").is_unique().all()
    assert (rings.get_column("ring_size") >= Config().rings.min_customers_per_device).all()
    ring_of = dict(zip(rings["customer_id"].to_list(), rings["ring_id"].to_list(), strict=True))
    for members in _groups(pl.read_parquet(network / "_truth" / "rings.parquet"), "ring_id"):
        assert len({ring_of.get(c) for c in members}) == 1
        assert None not in {ring_of.get(c) for c in members}


def test_flows_cover_every_drawdown_and_find_exactly_the_planted_chains(
    run: Path, network: Path
) -> None:
    flows = pl.read_parquet(run / "flows.parquet")
    drawdowns = pl.read_parquet(network / "drawdowns.parquet")
    assert sorted(flows["drawdown_id"].to_list()) == sorted(drawdowns["drawdown_id"].to_list())
    assert (flows["banned_amount"] <= flows["amount"] * (1 + 1e-9)).all()
    assert (flows["banned_amount_3plus"] <= flows["banned_amount"] * (1 + 1e-9)).all()
    assert flows["banned_share"].is_between(0, 1).all()
    chains = pl.read_parquet(network / "_truth" / "chains.parquet").select("drawdown_id", "hops")
    reached = flows.filter(pl.col("min_hops_to_banned").is_not_null())
    assert dict(zip(reached["drawdown_id"], reached["min_hops_to_banned"], strict=True)) == dict(
        zip(chains["drawdown_id"], chains["hops"], strict=True)
    )


def test_every_customer_has_one_cluster_and_one_score(run: Path, network: Path) -> None:
    customers = pl.read_parquet(network / "customers.parquet").get_column("customer_id")
    clusters = pl.read_parquet(run / "clusters.parquet")
    assert clusters["customer_id"].is_unique().all()
    assert set(clusters["customer_id"]) <= set(customers)
    scores = pl.read_parquet(run / "scores.parquet")
    assert sorted(scores["customer_id"].to_list()) == sorted(customers.to_list())
    for column in ("contagion_score", "gnn_score", "risk_score"):
        assert scores[column].is_between(0, 1).all(), column
    assert set(scores["tier"].unique()) <= set(TIERS)


def test_alerts_name_known_lines_with_reasons_and_a_limit(run: Path, network: Path) -> None:
    alerts = pl.read_csv(run / "alerts.csv")
    lines = pl.read_parquet(network / "credit_lines.parquet").select("line_id", "customer_id")
    joined = alerts.join(lines, on="line_id", how="left", suffix="_line")
    assert (joined["customer_id"] == joined["customer_id_line"]).all()
    assert set(alerts["tier"].unique()) <= set(TIERS)
    flagged = alerts.filter(pl.col("tier") != "green")
    assert flagged.height > 0
    assert flagged["reasons"].str.len_chars().min() > 0
    assert (alerts["recommended_limit"] >= 0).all()


def test_snapshot_round_trips_at_scale(run: Path, network: Path) -> None:
    from graphkit.pipeline import load_graph

    graph, _ = load_graph(network)
    assert load_snapshot(run / "snapshot").equals(graph)
