"""Spark for the tests: one local SparkSession, and a real standalone cluster on loopback.

``spark`` is a ``local[2]`` session shared by every test of the session (a JVM start costs tens
of seconds on a busy 2-core machine). ``spark_cluster`` starts a standalone master and two
workers (one core, 1 GB each) from the pyspark distribution (:mod:`graphkit.spark.standalone`),
so the executors are separate JVMs and Python workers and every shuffle crosses processes; it
yields the master URL, for a ``graphkit run --engine spark`` subprocess (one process may hold
only one SparkContext, and the in-process one is the local session). Everything binds to
127.0.0.1 and is stopped at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    from graphkit.spark.session import start_session

    session = start_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a standalone master with two one-core workers, all on 127.0.0.1."""
    pytest.importorskip("pyspark")
    from graphkit.spark.standalone import standalone_cluster

    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), workers=2) as url:
        yield url
