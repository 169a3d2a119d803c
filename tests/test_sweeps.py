"""Grid parsing and the cluster sweep: rows, stability, truth scores, parallel == serial, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import igraph as ig
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from graphkit.analytics import sweeps
from graphkit.analytics.clusters import cluster_graph, leiden
from graphkit.analytics.sweeps import _modularity, sweep_clusters
from graphkit.commands.grid import (
    expand_product,
    parse_assignments,
    parse_grid,
    parse_list,
    parse_values,
)
from graphkit.config import Config
from graphkit.graph import RiskGraph
from tests.analytics_fixtures import planted_network, write_input

ROOT = Path(__file__).resolve().parents[1]


def test_parse_grid_inclusive_without_float_drift():
    assert parse_grid("0.2:2.0:0.2") == [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]
    assert parse_grid("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert parse_grid("1:3") == [1.0, 2.0, 3.0]
    assert parse_grid("3:1:-1") == [3.0, 2.0, 1.0]
    assert parse_grid("0:1:0.3") == [0.0, 0.3, 0.6, 0.9]
    assert parse_list("1,7,30") == [1.0, 7.0, 30.0]
    assert parse_values("0.5") == [0.5]
    assert parse_values("1:2:0.5") == [1.0, 1.5, 2.0]


@pytest.mark.parametrize("bad", ["1:2:0", "2:1:0.5", "a:b", "1:2:3:4", "1:inf:1", ""])
def test_parse_rejects_bad_specs(bad):
    with pytest.raises(ValueError):
        parse_values(bad)


def test_assignments_expand_as_product_over_base():
    spec = parse_assignments("device=0:1:0.5,transfer=1|2", ("guarantee", "device", "transfer"))
    assert spec == {"device": [0.0, 0.5, 1.0], "transfer": [1.0, 2.0]}
    combos = expand_product({"guarantee": 1.0, "device": 9.0, "transfer": 9.0}, spec)
    assert len(combos) == 6
    assert combos[0] == {"guarantee": 1.0, "device": 0.0, "transfer": 1.0}
    assert combos[-1] == {"guarantee": 1.0, "device": 1.0, "transfer": 2.0}
    with pytest.raises(ValueError, match="unknown name"):
        parse_assignments("phone=1", ("guarantee",))
    with pytest.raises(ValueError):
        parse_assignments("guarantee", ("guarantee",))


def test_modularity_matches_igraph():
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, 50, (300, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weights = rng.uniform(0.1, 2.0, len(pairs))
    membership = rng.integers(0, 5, 50)
    g = ig.Graph(n=50, edges=pairs, directed=False)
    expected = g.modularity(membership.tolist(), weights=weights.tolist())
    assert _modularity(50, pairs, weights, membership) == pytest.approx(expected)


@pytest.fixture(scope="module")
def planted():
    return planted_network(5)


def test_sweep_rows_stability_and_truth(planted):
    graph = RiskGraph.from_tables(planted.tables)
    cfg = Config()
    resolutions = [0.5, 1.0, 2.0]
    weight_sets = [dict(cfg.clusters.weights), {**cfg.clusters.weights, "device": 0.0}]
    table = sweep_clusters(graph, cfg, resolutions, weight_sets, planted.groups, jobs=1)
    assert table.height == 6
    assert table.get_column("resolution").to_list() == resolutions * 2
    assert table.get_column("w_device").to_list() == [0.5] * 3 + [0.0] * 3

    built = cluster_graph(graph, cfg)
    memberships = []
    for weights in weight_sets:
        for gamma in resolutions:
            membership, q = leiden(
                len(built.nodes),
                built.pairs,
                built.weights(weights),
                gamma,
                cfg.clusters.seed,
                cfg.clusters.leiden_iterations,
            )
            memberships.append(membership)
            row = table.row(len(memberships) - 1, named=True)
            assert row["modularity"] == pytest.approx(q)
            sizes = np.bincount(membership)
            assert row["largest"] == sizes.max()
            assert row["clusters"] == int((sizes >= 2).sum())
    stability = table.get_column("stability_ari").to_list()
    assert stability[0] is None
    # Neighbours: the previous resolution, or the same resolution under the previous weights.
    neighbours = {1: 0, 2: 1, 3: 0, 4: 3, 5: 4}
    for index, neighbour in neighbours.items():
        expected = adjusted_rand_score(memberships[neighbour], memberships[index])
        assert stability[index] == pytest.approx(expected)
    at_one = table.filter((pl.col("resolution") == 1.0) & (pl.col("w_device") == 0.5))
    assert at_one.get_column("truth_ari").item() >= 0.9
    assert at_one.get_column("truth_nmi").item() >= 0.9


def test_parallel_equals_serial(planted, monkeypatch):
    graph = RiskGraph.from_tables(planted.tables)
    serial = sweep_clusters(graph, Config(), [0.6, 1.4], None, None, jobs=1)
    monkeypatch.setattr(sweeps, "PARALLEL_MIN_PAIRS", 0)
    parallel = sweep_clusters(graph, Config(), [0.6, 1.4], None, None, jobs=2)
    assert parallel.equals(serial)
    assert serial.get_column("truth_ari").null_count() == 2


def test_sweep_command_writes_csv_and_png(planted, tmp_path):
    source = write_input(planted.tables, tmp_path / "in")
    (source / "_truth").mkdir()
    planted.groups.write_parquet(source / "_truth" / "groups.parquet")
    out = tmp_path / "sweep"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "sweep",
            "clusters",
            str(source),
            "--resolution",
            "0.5:1.5:0.5",
            "--weights",
            "device=0|0.5",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    table = pl.read_csv(out / "sweep_clusters.csv")
    assert table.height == 6
    assert table.get_column("truth_ari").null_count() == 0
    assert (out / "sweep_clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [
            *(sys.executable, str(ROOT / "cli.py"), "sweep", "clusters", str(source)),
            *("--resolution", "2:1:0.5", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "step" in bad.stderr
