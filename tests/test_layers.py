"""The layering contract of pyproject.toml ([tool.importlinter], docs/architecture.md) holds,
and breaks when a module imports against it: checked by import-linter's own ``lint-imports``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphkit", "gnn", "loaders", "cypher")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on the tree at ``root`` (its pyproject.toml, its packages)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_the_layering_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the packages and pyproject.toml to plant violations in."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        # An algorithm module reaching up into the pipeline (the cycle issue 13 removed).
        (
            "graphkit.analytics.circles",
            "from graphkit.pipeline import RunContext  # noqa",
            "commands -> pipeline -> library -> gnn, loaders -> foundation BROKEN",
            "graphkit.analytics.circles -> graphkit.pipeline",
        ),
        # gnn reading a run directory through the store.
        (
            "gnn.explain",
            "from graphkit.store.embedded import load_snapshot  # noqa",
            "commands -> pipeline -> library -> gnn, loaders -> foundation BROKEN",
            "gnn.explain -> graphkit.store.embedded",
        ),
        # The foundation importing the graph's users.
        (
            "graphkit.config",
            "import graphkit.alerts  # noqa",
            "commands -> pipeline -> library -> gnn, loaders -> foundation BROKEN",
            "graphkit.config -> graphkit.alerts",
        ),
        # A stage adapter importing the run that calls it.
        (
            "graphkit.pipeline.stages",
            "from graphkit.pipeline.run import run_pipeline  # noqa",
            "the pipeline: run -> stages -> context BROKEN",
            "graphkit.pipeline.stages -> graphkit.pipeline.run",
        ),
        # Two library modules of one layer importing each other: a cycle, no layer crossed.
        (
            "graphkit.report",
            "import graphkit.export  # noqa",
            "no import cycles between sibling packages or modules BROKEN",
            "- .report -> .export",
        ),
    ],
)
def test_a_planted_violation_breaks_the_contract(
    tree_copy: Path, module: str, line: str, broken: str, named: str
) -> None:
    if module == "graphkit.report":  # the other half of the cycle
        plant(tree_copy, "graphkit.export", "import graphkit.report  # noqa")
    assert lint_imports(tree_copy).returncode == 0
    plant(tree_copy, module, line)
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
    assert named in result.stdout, result.stdout
