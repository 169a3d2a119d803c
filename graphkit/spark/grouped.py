"""Grouped maps: graphkit's embedded kernels run on the executors, one group at a time.

A grouped map receives every row of one group (a component, a bucket of drawdowns) as one Arrow
table, builds the small :class:`~graphkit.graph.RiskGraph` of that group with the loaders' own
table constructor, calls the embedded kernel on it, and returns Arrow rows. One kernel, two
engines: the Spark engine's exactness rests on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa

from graphkit.graph import RiskGraph
from loaders.frames import make_tables


def arrow_rows(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame``'s columns of ``schema``, as Arrow with exactly ``schema``'s types (Spark maps
    ``string``, not polars' ``large_string``, to its StringType)."""
    if frame.height == 0:
        return schema.empty_table()
    return frame.select(schema.names).to_arrow().cast(schema)


def group_graph(tables: Mapping[str, pl.DataFrame | dict[str, list]]) -> RiskGraph:
    """The RiskGraph of one group from the tables it needs (the rest empty)."""
    return RiskGraph.from_tables(make_tables(**tables))


KERNEL_LOG_ENV = "GRAPHKIT_SPARK_KERNEL_LOG"


def timed(name: str, kernel: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
    """``kernel`` as a grouped map that, when the executor's environment names a directory in
    ``GRAPHKIT_SPARK_KERNEL_LOG`` (``bench/spark.py`` sets it), appends ``name``, the seconds it
    took and its input rows to a per-process file there: the Python-worker side of a stage's
    time. Without the variable it is ``kernel`` plus one environment lookup per group."""

    def run(rows: pa.Table) -> pa.Table:
        directory = os.environ.get(KERNEL_LOG_ENV)
        if not directory:
            return kernel(rows)
        start = time.perf_counter()
        result = kernel(rows)
        seconds = time.perf_counter() - start
        with open(os.path.join(directory, f"{os.getpid()}.tsv"), "a") as log:
            log.write(f"{name}\t{seconds:.6f}\t{rows.num_rows}\n")
        return result

    return run
