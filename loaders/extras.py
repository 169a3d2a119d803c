"""Typing the extra columns of a table: numbers, booleans, dates and datetimes found in text.

A column beyond the input contract (:mod:`graphkit.extras`) comes from CSV as text. It is typed
by what every non-empty value is, under the contract's own parsing rules
(:mod:`loaders.values`): an integer when every value parses as one (``Int64``), a number when
every value parses as a finite number not ending in its decimal point (``Float64``), a boolean
when every value is true/false, yes/no or 1/0 (numbers win: a 0/1 column is an integer), an
ISO-8601 date (``Date``), an ISO-8601 date or datetime (``Datetime`` UTC), else it stays text as
written. One failing value keeps a column text, and the reason says which value and where:
a half-numeric column is more likely a mistake to fix than a feature to guess at.

Parquet extras keep their stored dtypes; a Parquet text column is typed the same way, so a table
gives the same columns as CSV and as Parquet. Every test is a vectorised polars operation over
the whole column, each parse done once; the only Python loop is over columns.
"""

from __future__ import annotations

import polars as pl

from loaders.issues import ROW
from loaders.values import BOOL_WORDS, ISO_DATE, parse_datetime

# What a column's values would need to be, in the order the kinds are tried.
_WANTED = {
    "number": "numbers",
    "boolean": "booleans (true/false, yes/no, 1/0)",
    "date": "ISO-8601 dates",
    "datetime": "ISO-8601 dates or datetimes",
}


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


class _Column:
    """One text column being typed: its trimmed values, which are given, and per kind tried the
    values that failed (``bad``)."""

    def __init__(self, raw: pl.Series, rows: pl.Series) -> None:
        self.raw = raw.cast(pl.String)
        self.rows = rows
        self.text = self.raw.str.strip_chars()
        self.present = (self.text.is_not_null() & (self.text != "")).fill_null(False)
        self.given = int(self.present.sum())
        self.bad: dict[str, pl.Series] = {}

    def failing(self, kind: str, parses: pl.Series) -> int:
        """Record the given values ``parses`` is not true for; returns how many."""
        self.bad[kind] = self.present & ~parses.fill_null(False)
        return int(self.bad[kind].sum())

    def reason(self) -> str:
        """Why the column stays text: the kind it is closest to, its failing values' count, the
        first failing row and its value as written."""
        counts = {kind: int(self.bad[kind].sum()) for kind in _WANTED if kind in self.bad}
        closest = min(counts, key=lambda k: counts[k])
        first = int(self.bad[closest].arg_true()[0])
        value = repr(self.raw[first])
        shown = value if len(value) <= 40 else value[:37] + "..."
        return (
            f"text: {counts[closest]} of {self.given} values are not {_WANTED[closest]}, "
            f"first at row {self.rows[first]}: {shown}"
        )


def _typed(column: _Column) -> pl.Series | None:
    """The column typed by its values, or None when it stays text (``column.bad`` then says
    why)."""
    text = column.text
    number = text.cast(pl.Float64, strict=False)
    # As for the contract's floats: `300.` is what `300.0` becomes when a write is cut there.
    if not column.failing("number", number.is_finite() & ~text.str.ends_with(".")):
        integer = text.cast(pl.Int64, strict=False)
        if not column.failing("integer", integer.is_not_null()):
            return integer
        return number
    words = text.str.to_lowercase()
    if not column.failing("boolean", words.is_in(list(BOOL_WORDS))):
        return words.replace_strict(BOOL_WORDS, default=None, return_dtype=pl.Boolean)
    day = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False)
    if not column.failing("date", text.str.contains(ISO_DATE) & day.is_not_null()):
        return day
    # Null where a value is not ISO-8601 as written (loaders.values.ISO_DATETIME).
    moment = parse_datetime(text)
    if not column.failing("datetime", moment.is_not_null()):
        return moment
    return None


def infer_extras(frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """Type the text columns among ``columns`` of ``frame`` (which carries the row number).

    Returns the frame with each typed column replaced in place (empty values null), and for each
    column left as text (with at least one value) why: how many values are not what the closest
    kind needs, the first such row and its value as written.
    """
    details: dict[str, str] = {}
    typed: list[pl.Series] = []
    rows = frame.get_column(ROW)
    for name in columns:
        if not _is_text(frame.schema[name]):
            continue
        column = _Column(frame.get_column(name), rows)
        if not column.given:
            continue
        values = _typed(column)
        if values is None:
            details[name] = column.reason()
        else:
            typed.append(pl.select(pl.when(column.present).then(values)).to_series().alias(name))
    if typed:
        frame = frame.with_columns(typed)
    return frame, details


__all__ = ["infer_extras"]
