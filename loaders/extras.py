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
gives the same columns as CSV and as Parquet. Every test is a polars expression over the column;
the only Python loop is over columns.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from loaders.issues import ROW
from loaders.values import _BOOL_WORDS, ISO_DATE, ISO_DATETIME, parse_datetime

# What a column's values would need to be, in the order the kinds are tried.
_WANTED = {
    "number": "numbers",
    "boolean": "booleans (true/false, yes/no, 1/0)",
    "date": "ISO-8601 dates",
    "datetime": "ISO-8601 dates or datetimes",
}


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _tests(name: str) -> tuple[pl.Expr, dict[str, pl.Expr], pl.Expr, pl.Expr]:
    """(present, {kind: parses}, integer value, number value) of text column ``name``."""
    text = pl.col(name).cast(pl.String).str.strip_chars()
    present = text.is_not_null() & (text != "")
    number = text.cast(pl.Float64, strict=False)
    # As for the contract's floats: `300.` is what `300.0` becomes when a write is cut there.
    number_ok = number.is_finite() & ~text.str.ends_with(".")
    integer = text.cast(pl.Int64, strict=False)
    normalised = text.str.replace(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[ tT]", "${1}T").str.replace(
        r"[zZ]$", "+00:00"
    )
    tests = {
        "number": number_ok,
        "integer": integer.is_not_null(),
        "boolean": text.str.to_lowercase().is_in(list(_BOOL_WORDS)),
        "date": text.str.contains(ISO_DATE)
        & text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False).is_not_null(),
        # The datetime parser is a fallback over a Series; its result is checked after.
        "datetime": normalised.str.contains(ISO_DATETIME),
    }
    return present, tests, integer, pl.when(number_ok).then(number)


def _stats(
    frame: pl.DataFrame, name: str, present: pl.Expr, tests: dict[str, pl.Expr]
) -> dict[str, Any]:
    """Values given, and per test the values failing it, the first such row and its value."""
    aggs: list[pl.Expr] = [present.sum().alias("present")]
    for kind, ok in tests.items():
        bad = present & ~ok.fill_null(False)
        aggs += [
            bad.sum().alias(f"bad_{kind}"),
            pl.col(ROW).filter(bad).first().alias(f"row_{kind}"),
            pl.col(name).cast(pl.String).filter(bad).first().alias(f"value_{kind}"),
        ]
    return frame.lazy().select(aggs).collect().row(0, named=True)


def infer_extras(frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """Type the text columns among ``columns`` of ``frame`` (which carries the row number).

    Returns the frame with each typed column replaced in place, and for each column left as text
    (with at least one value) why: how many values are not what the closest kind needs, the first
    such row and its value as written.
    """
    details: dict[str, str] = {}
    typed: list[pl.Expr | pl.Series] = []
    for name in columns:
        if not _is_text(frame.schema[name]):
            continue
        present, tests, integer, number = _tests(name)
        # Numbers first: most extra columns are, and the text tests are not needed then.
        stats = _stats(frame, name, present, {k: tests[k] for k in ("number", "integer")})
        if not stats["present"]:
            continue
        if stats["bad_number"]:
            rest = {k: ok for k, ok in tests.items() if k not in ("number", "integer")}
            stats |= _stats(frame, name, present, rest)
        kind = next(
            (k for k in ("integer", "number", "boolean", "date") if not stats.get(f"bad_{k}", 1)),
            None,
        )
        if kind == "integer":
            typed.append(pl.when(present).then(integer).alias(name))
            continue
        if kind == "number":
            typed.append(pl.when(present).then(number).alias(name))
            continue
        if kind == "boolean":
            words = pl.col(name).cast(pl.String).str.strip_chars().str.to_lowercase()
            typed.append(
                pl.when(present)
                .then(words.replace_strict(_BOOL_WORDS, default=None, return_dtype=pl.Boolean))
                .alias(name)
            )
            continue
        if kind == "date":
            text = pl.col(name).cast(pl.String).str.strip_chars()
            typed.append(
                pl.when(present)
                .then(text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False))
                .alias(name)
            )
            continue
        if not stats["bad_datetime"]:
            raw = frame.get_column(name).cast(pl.String)
            parsed = parse_datetime(raw).alias(name)
            given = frame.select(present).to_series()
            unparsed = given & parsed.is_null()
            if not unparsed.any():
                typed.append(parsed)
                continue
            first = int(unparsed.arg_true()[0])
            stats["bad_datetime"] = int(unparsed.sum())
            stats["row_datetime"] = frame.get_column(ROW)[first]
            stats["value_datetime"] = raw[first]
        closest = min(_WANTED, key=lambda k: stats[f"bad_{k}"])
        value = stats[f"value_{closest}"]
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        details[name] = (
            f"text: {stats[f'bad_{closest}']} of {stats['present']} values are not "
            f"{_WANTED[closest]}, first at row {stats[f'row_{closest}']}: {shown}"
        )
    if typed:
        frame = frame.with_columns(typed)
    return frame, details


__all__ = ["infer_extras"]
