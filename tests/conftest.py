"""Shared test configuration: hypothesis profiles, and where this checkout's Neo4j launcher is.
The Neo4j fixtures are the plugin ``tests.neo4j_fixture`` (enabled in pyproject's pytest addopts).
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from graphkit.store.neo4j_server import HOME_ENV

# The tests run from a checkout, where `make neo4j` builds the launcher into services/neo4j/target;
# a value set by the caller (the Makefile, or a launcher built elsewhere) wins.
os.environ.setdefault(HOME_ENV, str(Path(__file__).resolve().parents[1] / "services/neo4j/target"))

settings.register_profile(
    "graphkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("graphkit")

pytest_plugins = ("tests.neo4j_fixture", "tests.spark_fixture")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at afterwards (screenshots):
    ``$GRAPHKIT_TEST_ARTIFACTS``, else ``test-artifacts/`` at the repository root (git ignores
    it)."""
    default = Path(__file__).resolve().parents[1] / "test-artifacts"
    path = Path(os.environ.get("GRAPHKIT_TEST_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path
