"""Typed empty tables and in-memory table construction from the schema.

Used by the loaders (a missing table is an empty one), the generator, and tests that build small
graphs by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from graphkit.schema import TABLES


def empty_table(name: str) -> pl.DataFrame:
    """An empty frame with every column of table ``name`` in its schema dtype."""
    return pl.DataFrame(schema=TABLES[name].polars_schema)


def typed_table(name: str, data: Mapping[str, Sequence[Any]] | pl.DataFrame) -> pl.DataFrame:
    """Build table ``name`` from columns, casting to schema dtypes and adding missing optional ones.

    Strings in date/datetime columns are parsed as ISO-8601 (UTC when no zone). Extra columns are
    kept after the schema's. No validation happens here: see :mod:`loaders.sources`.
    """
    frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(dict(data))
    table = TABLES[name]
    exprs = []
    for col in table.columns:
        if col.name not in frame.columns:
            exprs.append(pl.lit(None, dtype=col.dtype).alias(col.name))
            continue
        current = frame.schema[col.name]
        if current == pl.String and col.dtype == pl.Date():
            exprs.append(pl.col(col.name).str.to_date().alias(col.name))
        elif current == pl.String and isinstance(col.dtype, pl.Datetime):
            exprs.append(
                pl.col(col.name).str.to_datetime(time_unit="us", time_zone="UTC").alias(col.name)
            )
        else:
            exprs.append(pl.col(col.name).cast(col.dtype).alias(col.name))
    extras = [c for c in frame.columns if c not in table.polars_schema]
    return frame.select(*exprs, *extras)


def make_tables(**tables: Mapping[str, Sequence[Any]] | pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every schema table: the given ones typed via :func:`typed_table`, the rest empty."""
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise KeyError(f"unknown tables: {', '.join(sorted(unknown))}")
    return {
        name: typed_table(name, tables[name]) if name in tables else empty_table(name)
        for name in TABLES
    }
