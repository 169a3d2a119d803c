"""Extra columns: the columns of an input table beyond the input contract, and which of them the
model reads as features.

A bank brings its own features as extra columns (a bureau score, income, a behaviour score).
The loaders type a text extra column by what its values are (:mod:`loaders.extras`: numbers,
booleans, ISO-8601 dates or datetimes, else text); this module says, for a typed frame, what kind
each extra column is and whether it becomes a model feature, and why not when it does not. Both
the loaders (for ``graphkit validate`` and the run's manifest) and the features
(:mod:`gnn.features`) ask :func:`describe_extras`, so what ``validate`` promises is what the model
reads, and a table gives the same features whether it came as CSV or as Parquet.

The rule: an extra column is a feature when it belongs to ``customers`` (the model is a model of
customers; extras of other tables are kept, typed, and unused), holds numbers or booleans, has at
least one value, has no NaN or infinite value, takes at least two distinct values, and is not
named like a label column (``defaulted``, ``default_date``, ``customer_id``, or one of them and
an underscore first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from graphkit.schema import TABLES

# The tables whose extra columns the model reads.
FEATURE_TABLES: tuple[str, ...] = ("customers",)
# Label columns are never features, even when a table carries a column of that name, nor is a
# column whose name starts with one (``defaulted_right`` is what the graph's label join names
# the labels when customers smuggles in its own ``defaulted``).
LABEL_COLUMNS = frozenset(c.name for c in TABLES["labels"].columns) | {"customer_id"}


def label_like(name: str) -> bool:
    """Whether ``name`` is a label column's, or starts with one's and an underscore."""
    return any(name == label or name.startswith(label + "_") for label in LABEL_COLUMNS)


FEATURE_PREFIX = "extra_"
# Kinds a feature may have.
FEATURE_KINDS = frozenset({"integer", "number", "boolean"})


@dataclass(frozen=True)
class ExtraColumn:
    """One extra column of an input table and what the model makes of it.

    Attributes:
        table: the input table (``customers``).
        column: the column's name as written in the file's header.
        kind: ``integer``, ``number``, ``boolean``, ``date``, ``datetime``, ``text``, or the
            stored dtype for other Parquet types.
        feature: whether the model reads it (as ``extra_<column>``).
        reason: why it is not a feature ("" when it is).
    """

    table: str
    column: str
    kind: str
    feature: bool
    reason: str = ""

    @property
    def feature_name(self) -> str:
        return FEATURE_PREFIX + self.column

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "column": self.column, "kind": self.kind}
        if self.feature:
            out["feature"] = self.feature_name
        else:
            out["reason"] = self.reason
        return out


def extra_kind(dtype: pl.DataType) -> str:
    """The kind of an extra column stored as ``dtype``."""
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    if dtype == pl.Null:
        return "empty"
    return str(dtype)


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_extras(
    table: str,
    frame: pl.DataFrame,
    columns: Sequence[str],
    details: Mapping[str, str] | None = None,
) -> list[ExtraColumn]:
    """What each extra column ``columns`` of ``frame`` (table ``table``, typed) is, and whether
    the model reads it.

    ``details`` gives, per column left as text, why its values are not numbers (the loaders'
    inference says which value, on which row); it only words the reason.

    Complexity: one pass over the columns (a null count, a distinct count, a finiteness check).
    """
    details = details or {}
    if not columns:
        return []
    aggs: list[pl.Expr] = []
    for i, name in enumerate(columns):
        col = pl.col(name)
        aggs += [
            col.is_not_null().sum().alias(f"present{i}"),
            col.drop_nulls().n_unique().alias(f"distinct{i}"),
            col.drop_nulls().first().alias(f"first{i}"),
        ]
        if frame.schema[name].is_float():
            aggs.append((~col.is_finite()).sum().alias(f"nonfinite{i}"))
    stats = frame.select(aggs).row(0, named=True)
    out: list[ExtraColumn] = []
    for i, name in enumerate(columns):
        kind = extra_kind(frame.schema[name])
        present = int(stats[f"present{i}"])
        if kind == "text" and present:
            # Text counts as given only when it is not blank.
            present = int(
                frame.select((pl.col(name).cast(pl.String).str.strip_chars() != "").sum()).item()
            )
        nonfinite = int(stats.get(f"nonfinite{i}") or 0)
        reason = ""
        if table not in FEATURE_TABLES:
            reason = f"only extra columns of {', '.join(FEATURE_TABLES)} are model features"
        elif label_like(name):
            reason = "named like a label column; labels are never features"
        elif present == 0:
            reason = "all empty"
        elif kind not in FEATURE_KINDS:
            if kind == "text":
                reason = details.get(name, "text")
            elif kind in ("date", "datetime"):
                reason = (
                    "dates are not model features: whether a date was known at the snapshot "
                    "cannot be told"
                )
            else:
                reason = f"stored as {kind}: not a number"
        elif nonfinite:
            reason = f"{nonfinite} value(s) are NaN or infinite"
        elif int(stats[f"distinct{i}"]) < 2:
            reason = f"constant: every value is {_shown(stats[f'first{i}'])}"
        out.append(ExtraColumn(table, name, kind, not reason, reason))
    return out


def extra_features(frame: pl.DataFrame, table: str = "customers") -> list[ExtraColumn]:
    """The extra columns of input table ``table`` in ``frame`` (a typed table, or the graph's
    node frame, whose label columns are skipped) that the model reads, in column order."""
    schema = {c.name for c in TABLES[table].columns}
    columns = [c for c in frame.columns if c not in schema and not label_like(c)]
    return [e for e in describe_extras(table, frame, columns) if e.feature]


__all__ = [
    "FEATURE_KINDS",
    "FEATURE_PREFIX",
    "FEATURE_TABLES",
    "LABEL_COLUMNS",
    "ExtraColumn",
    "describe_extras",
    "extra_features",
    "extra_kind",
    "label_like",
]
