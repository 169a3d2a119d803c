"""A ``graphkit run`` or ``graphkit export`` killed with SIGKILL at any point leaves no partial run
directory and no broken ``latest``; the re-run succeeds and equals a clean run.

The run is timed once (the clean run), then killed right after start and at 10, 30, 50, 70 and
90 % of that duration, alternately over a previous complete run (which must survive intact) and
over a fresh target (which must not appear). Exports are killed the same way over a previous
export. Kills that land after the process finished are not counted as kills survived.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from graphkit.atomic import OLD_PREFIX, TMP_PREFIX

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
COMPARED = ("circles.parquet", "clusters.parquet", "flows.parquet")
RUN_FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
EXPORT_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95)


def _graphkit() -> list[str]:
    script = REPO / ".venv" / "bin" / "graphkit"
    return [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]


def _run_command(out: Path) -> list[str]:
    return [*_graphkit(), "run", str(SAMPLE), "--out", str(out), "--set", "gnn.epochs=5", "-q"]


def _export_command(run_dir: Path, to: Path) -> list[str]:
    return [*_graphkit(), "export", str(run_dir), "--to", str(to), "--format", "parquet,csv", "-q"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _timed(command: list[str]) -> float:
    clock = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return time.monotonic() - clock


def _kill_after(command: list[str], seconds: float) -> bool:
    """Start ``command``, SIGKILL it after ``seconds``; True if it was still running (killed)."""
    proc = subprocess.Popen(
        command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        return True
    assert proc.returncode == 0
    return False


def assert_complete_run(run_dir: Path) -> dict:
    """``run_dir`` is a whole run: its manifest and every output the manifest counts."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    outputs = manifest["counts"]["outputs"]
    assert outputs, manifest
    for name, rows in outputs.items():
        path = run_dir / name
        assert path.is_file(), name
        if name.endswith(".parquet"):
            assert pl.read_parquet(path).height == rows, name
    assert (run_dir / "snapshot" / "snapshot.json").is_file()
    return manifest


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((TMP_PREFIX, OLD_PREFIX)))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A clean run of the sample, and how long it took."""
    out = tmp_path_factory.mktemp("clean") / "run"
    return out, _timed(_run_command(out))


def test_run_killed_at_any_point_leaves_the_previous_run_or_nothing(
    tmp_path: Path, clean_run: tuple[Path, float]
) -> None:
    clean, duration = clean_run
    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "current"
    shutil.copytree(clean, out)
    previous = assert_complete_run(out)["run_id"]
    killed = 0
    for number, fraction in enumerate(RUN_FRACTIONS):
        # Alternate: over the previous run (it must survive) and over a fresh target.
        target = out if number % 2 == 0 else runs / f"fresh-{number}"
        was_killed = _kill_after(_run_command(target), max(fraction * duration, 0.05))
        killed += was_killed
        if target == out:
            # The previous run, or (killed after publishing, while cleaning up) the new one.
            previous = assert_complete_run(out)["run_id"]
        elif target.exists():
            assert_complete_run(target)
        visible = sorted(p.name for p in runs.iterdir() if not p.name.startswith("."))
        assert visible in (["current"], ["current", target.name]), visible
    assert killed >= len(RUN_FRACTIONS) - 1, f"only {killed} kills landed mid-run"

    _timed(_run_command(out))
    rerun = assert_complete_run(out)
    assert rerun["run_id"] != previous
    for name in COMPARED:
        assert pl.read_parquet(out / name).equals(pl.read_parquet(clean / name)), name
    # The re-run removed what the killed runs left behind (hidden temporary directories).
    assert [p for p in _leftovers(runs) if ".graphkit-tmp-current." in p] == []
    print(f"run kills survived: {killed}")


def _assert_latest_complete(to: Path) -> str:
    latest = to / "latest"
    assert latest.is_symlink()
    run_id = os.readlink(latest)
    summary = json.loads((latest / "export.json").read_text())
    assert summary["run_id"] == run_id
    for name, rows in summary["rows"].items():
        for fmt in summary["formats"]:
            assert (latest / f"{name}.{fmt}").is_file(), (name, fmt)
        assert pl.read_parquet(latest / f"{name}.parquet").height == rows
    return run_id


def test_export_killed_at_any_point_keeps_latest_whole(
    tmp_path: Path, clean_run: tuple[Path, float]
) -> None:
    clean, _ = clean_run
    # A second run id to export over the first: the same outputs under another manifest id.
    second = tmp_path / "second"
    shutil.copytree(clean, second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["run_id"] = manifest["run_id"] + "-second"
    (second / "manifest.json").write_text(json.dumps(manifest))

    to = tmp_path / "exports"
    _timed(_export_command(clean, to))
    first_id = _assert_latest_complete(to)
    # Timed into another root, so that ``to`` still has the first export as latest.
    duration = _timed(_export_command(second, tmp_path / "timing"))

    killed = 0
    for fraction in EXPORT_FRACTIONS:
        was_killed = _kill_after(_export_command(second, to), max(fraction * duration, 0.05))
        killed += was_killed
        current = _assert_latest_complete(to)
        assert current in (first_id, manifest["run_id"])
        if current == first_id:
            # Not yet published: the new export directory is absent or complete.
            new = to / manifest["run_id"]
            assert not new.exists() or (new / "export.json").is_file()
    assert killed >= len(EXPORT_FRACTIONS) - 2, f"only {killed} kills landed mid-export"
    _timed(_export_command(second, to))
    assert _assert_latest_complete(to) == manifest["run_id"]
    assert [p for p in _leftovers(to) if manifest["run_id"] in p] == []
    print(f"export kills survived: {killed}")
