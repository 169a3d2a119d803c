"""Grouped maps: graphkit's embedded kernels run on the executors, one group at a time.

A grouped map receives every row of one group (a component, a bucket of drawdowns) as one Arrow
table, builds the small :class:`~graphkit.graph.RiskGraph` of that group with the loaders' own
table constructor, calls the embedded kernel on it, and returns Arrow rows. One kernel, two
engines: the Spark engine's exactness rests on it.
"""

from __future__ import annotations

from collections.abc import Mapping

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
