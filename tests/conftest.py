"""Shared test configuration: hypothesis profiles, and where this checkout's Neo4j launcher is.
The Neo4j fixtures are the plugin ``tests.neo4j_fixture`` (enabled in pyproject's pytest addopts).
"""

import os
from pathlib import Path

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
