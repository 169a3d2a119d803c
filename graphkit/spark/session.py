"""Starting the SparkSession graphkit's Spark engine runs on.

The master URL and every Spark setting are passed in (``graphkit run --spark-master URL
--spark-conf k=v``); nothing is read from globals except what Spark itself reads
(``SPARK_HOME``, ``spark-defaults.conf`` under ``spark-submit``). :data:`ENGINE_DEFAULTS` are
the settings graphkit needs to be exact (UTC session time zone: timestamps become the same epoch
microseconds as the embedded engine's) or small (no UI, few shuffle partitions on small inputs);
``conf`` overrides any of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"

ENGINE_DEFAULTS: dict[str, str] = {
    # Timestamps are instants; the input contract reads a time without a zone as UTC.
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Adaptive execution coalesces the shuffle partitions of small stages, so one default
    # serves a sample and a national book alike; a cluster run raises it with --spark-conf.
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "1g",
    "spark.executor.memory": "512m",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Grouped maps send one component (or one bucket of drawdowns) per Arrow batch.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
}


class SparkUnavailableError(RuntimeError):
    """The Spark engine was asked for but pyspark is not installed."""


def parse_conf(assignments: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` from ``--spark-conf`` as a mapping; a malformed item names itself."""
    conf: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--spark-conf expects key=value, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def start_session(
    master: str = DEFAULT_MASTER,
    conf: Mapping[str, str] | None = None,
    app_name: str = "graphkit",
) -> SparkSession:
    """A SparkSession on ``master`` with :data:`ENGINE_DEFAULTS` overridden by ``conf``.

    The Python workers run the interpreter that runs graphkit unless ``PYSPARK_PYTHON`` says
    otherwise: the grouped maps call graphkit's kernels, so the workers need graphkit's
    environment. Raises :class:`SparkUnavailableError` when pyspark is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - the extra is installed by make test
        raise SparkUnavailableError(
            "the Spark engine needs pyspark: pip install 'graphkit[spark]'"
        ) from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**ENGINE_DEFAULTS, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def describe(session: SparkSession) -> dict[str, object]:
    """What a run's manifest records about the engine: master, version, the settings used."""
    context = session.sparkContext
    keys = sorted(set(ENGINE_DEFAULTS) | {"spark.executor.cores", "spark.cores.max"})
    return {
        "engine": "spark",
        "master": context.master,
        "spark_version": session.version,
        "application_id": context.applicationId,
        "default_parallelism": context.defaultParallelism,
        "conf": {k: context.getConf().get(k) for k in keys if context.getConf().get(k)},
    }
