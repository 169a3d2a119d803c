"""bench/compare_runs.py: two run directories agree table by table, or the diff says where."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "compare_runs.py"


def run_dir(path: Path, scores: list[float], run_id: str, order: list[int]) -> Path:
    path.mkdir()
    ids = ["c0", "c1", "c2"]
    pl.DataFrame(
        {"customer_id": [ids[i] for i in order], "risk_score": [scores[i] for i in order]}
    ).write_parquet(path / "scores.parquet")
    pl.DataFrame({"customer_id": ids, "tier": ["green", "red", "yellow"]}).write_csv(
        path / "alerts.csv"
    )
    manifest = {
        "run_id": run_id,
        "created_at": f"2026-12-06T0{len(run_id)}:00:00",
        "timings_seconds": {"circles": len(run_id) / 10},
        "input": {"directory": str(path), "files": [{"path": str(path / "x.csv"), "rows": 3}]},
        "counts": {"circles": 2},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def compare(a: Path, b: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(a), str(b), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_runs_that_differ_only_in_ids_times_paths_and_row_order_agree(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", [0.1, 0.9, 0.4], "run-a", [0, 1, 2])
    b = run_dir(tmp_path / "b", [0.1, 0.9, 0.4], "run-bb", [2, 0, 1])
    result = compare(a, b)
    assert result.returncode == 0, result.stdout
    assert "the runs agree" in result.stdout


def test_a_changed_value_is_named_with_its_file_column_and_values(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", [0.1, 0.9, 0.4], "run-a", [0, 1, 2])
    b = run_dir(tmp_path / "b", [0.1, 0.9, 0.4 + 1e-12], "run-a", [0, 1, 2])
    result = compare(a, b)
    assert result.returncode == 1
    assert "DIFFERS  scores.parquet" in result.stdout
    assert "column risk_score: 1 of 3 values differ" in result.stdout
    assert "1 of 3 files differ" in result.stdout
    # Within a tolerance the same runs agree.
    assert compare(a, b, "--atol", "1e-9").returncode == 0


def test_a_missing_table_and_a_changed_count_differ(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", [0.1, 0.9, 0.4], "run-a", [0, 1, 2])
    b = run_dir(tmp_path / "b", [0.1, 0.9, 0.4], "run-a", [0, 1, 2])
    (b / "alerts.csv").unlink()
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["counts"]["circles"] = 3
    (b / "manifest.json").write_text(json.dumps(manifest))
    result = compare(a, b)
    assert result.returncode == 1
    assert "alerts.csv" in result.stdout and "only in A" in result.stdout
    assert "manifest.counts.circles: 2 in A, 3 in B" in result.stdout


def test_a_directory_without_a_manifest_is_refused(tmp_path: Path) -> None:
    a = run_dir(tmp_path / "a", [0.1, 0.9, 0.4], "run-a", [0, 1, 2])
    result = compare(a, tmp_path)
    assert result.returncode == 2
    assert "not a run directory" in result.stderr
