"""The wheel carries everything graphkit needs at run time, and it works from the wheel alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("graphkit-*.whl")
    return built


def test_wheel_contains_code_queries_and_policy(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    queries = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "cypher").rglob("*.cypher"))
    assert len(queries) >= 10
    assert set(queries) <= names
    assert {
        "cli.py",
        "graphkit/policy.toml",
        "graphkit/schema.py",
        "loaders/sources.py",
        "gnn/models.py",
        "cypher/__init__.py",
    } <= names
    assert not any(n.startswith(("tests/", "data/", "services/", "bench/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "graphkit = cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_runs_from_the_wheel_not_the_checkout(wheel: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(wheel)!r})\n"
        "import cli, cypher, graphkit.alerts as alerts\n"
        f"assert cypher.__file__.startswith({str(wheel)!r}), cypher.__file__\n"
        f"assert cli.__file__.startswith({str(wheel)!r}), cli.__file__\n"
        "queries = cypher.list_queries()\n"
        "assert len(queries) >= 10\n"
        "assert all(cypher.load_query(q.name).text for q in queries)\n"
        "alerts.load_policy()\n"
        "print(len(queries))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 10
