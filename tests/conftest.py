"""Shared test configuration: hypothesis profiles. The Neo4j fixtures are the plugin
``tests.neo4j_fixture`` (enabled in pyproject's pytest addopts)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "graphkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("graphkit")

pytest_plugins = ("tests.neo4j_fixture", "tests.spark_fixture")
