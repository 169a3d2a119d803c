"""Value parsing: how each source column becomes its schema dtype, and what a failure says.

CSV text is cast with ``strict=False`` on a vectorised fast path; a value failed where it was
present before the cast and is null after it. Timestamps in less common ISO-8601 spellings are
re-parsed by a fallback for just the rows the fast path left. Typed (Parquet) columns are
converted when their dtype can hold the kind, and are one column-level error when it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from graphkit.schema import Column, Kind

# Per converted column: whether its value failed (BAD) or was given at all (PRESENT).
BAD = "__graphkit_bad__"
PRESENT = "__graphkit_present__"
# What lossy UTF-8 decoding puts in place of invalid bytes.
REPLACEMENT = "\ufffd"
BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
# ASCII digits only: Python's \d also matches full-width and other Unicode digits, which polars
# does not parse as numbers.
_NUMERIC_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
# ISO-8601 as written: a four-digit year, two-digit month, day, hour, minute and second, an
# optional fraction, and an offset within those in use (-12:00 to +14:00). polars' parser alone
# also takes `2026-01-1`, `10:0:00` and `+2026-...`, so values must match these first. [0-9],
# not \d: polars' regex \d matches full-width digits too.
_ISO_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_ISO_CLOCK = "([01][0-9]|2[0-3]):[0-5][0-9]"
_ISO_OFFSET = "[+-]((0[0-9]|1[0-3]):?[0-5][0-9]|14:?00)"
ISO_DATE = f"^{_ISO_DAY}$"
# The spelling polars parses on its fast path (after a space became `T`).
_ISO_PLAIN_DATETIME = f"^{_ISO_DAY}T{_ISO_CLOCK}:[0-5][0-9]$"
# Every accepted spelling once normalised by parse_datetime (`T` separator, `Z` as +00:00).
ISO_DATETIME = f"^{_ISO_DAY}(T{_ISO_CLOCK}(:[0-5][0-9](\\.[0-9]+)?)?({_ISO_OFFSET})?)?$"
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass
class Conversion:
    """How one source column becomes its schema dtype.

    ``value`` is the converted column (null where conversion failed); ``present`` is true on rows
    that hold a value (None when conversion cannot fail), so a row failed where it is present
    and ``value`` is null. ``fallback`` converts the raw values of the rows ``value`` failed on
    when a slower parser accepts more (timestamps in their less common ISO-8601 spellings).
    """

    column: Column
    value: pl.Expr
    present: pl.Expr | None = None
    column_error: str | None = None
    fallback: Callable[[pl.Series], pl.Series] | None = None


def column_conversion(col: Column, source: pl.DataType, lossy: bool) -> Conversion:
    raw = pl.col(col.name)
    if source == pl.String:
        return _from_text(col, raw, lossy)
    if isinstance(source, pl.Categorical | pl.Enum):
        return _from_text(col, raw.cast(pl.String), lossy)
    return _from_typed(col, raw, source)


def _from_text(col: Column, raw: pl.Expr, lossy: bool) -> Conversion:
    if col.kind in (Kind.ID, Kind.TEXT):
        value = pl.when(raw != "").then(raw)
        if not lossy:
            return Conversion(col, value)
        replaced = raw.str.contains(REPLACEMENT, literal=True)
        return Conversion(col, pl.when(~replaced).then(value), raw != "")
    text = raw.str.strip_chars()
    present = text.is_not_null() & (text != "")
    if col.kind is Kind.FLOAT:
        number = text.cast(pl.Float64, strict=False)
        # polars reads `300.` as 300, but a number ending in its decimal point is what `300.0`
        # becomes when the write is cut there: it must not pass as a whole value.
        value = pl.when(number.is_finite() & ~text.str.ends_with(".")).then(number)
    elif col.kind is Kind.INT:
        value = text.cast(pl.Int64, strict=False)
    elif col.kind is Kind.BOOL:
        value = text.str.to_lowercase().replace_strict(
            BOOL_WORDS, default=None, return_dtype=pl.Boolean
        )
    elif col.kind is Kind.DATE:
        value = pl.when(text.str.contains(ISO_DATE)).then(
            text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False)
        )
        return Conversion(col, value, present, fallback=lambda s: parse_datetime(s).dt.date())
    else:
        # polars parses this one format on a fast path; other spellings (fractions, zones,
        # date only) are few in most files and go through the slower fallback.
        plain = text.str.replace(" ", "T", literal=True)
        parsed = plain.str.strptime(
            pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False, cache=False
        )
        value = pl.when(plain.str.contains(_ISO_PLAIN_DATETIME)).then(
            parsed.dt.replace_time_zone("UTC")
        )
        return Conversion(col, value, present, fallback=parse_datetime)
    return Conversion(col, value, present)


_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M%z",
)


def parse_datetime(raw: pl.Series) -> pl.Series:
    """ISO-8601 date or datetime, ``T`` or space separated, optional fraction and zone, as UTC.

    Values that do not match :data:`ISO_DATETIME` as written are null. Each format is tried
    only on the values the earlier ones left unparsed.
    """
    normalised = (
        raw.str.strip_chars()
        .str.replace(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[ tT]", "${1}T")
        .str.replace(r"[zZ]$", "+00:00")
    )
    text = pl.first()
    iso = (
        normalised.to_frame()
        .select(pl.when(text.str.contains(ISO_DATETIME)).then(text))
        .to_series()
    )
    parsed = pl.Series(raw.name, [None] * len(raw), dtype=pl.Datetime("us", "UTC"))
    # Files are usually uniform: try first the format that parses the first value.
    first = iso.drop_nulls().head(1)
    formats = sorted(
        _DATETIME_FORMATS,
        key=lambda f: first.str.to_datetime(f, time_zone="UTC", strict=False).null_count() > 0,
    )
    for fmt in formats:
        todo = parsed.is_null() & iso.is_not_null()
        if not todo.any():
            break
        positions = todo.arg_true()
        attempt = iso.gather(positions).str.to_datetime(
            fmt, time_unit="us", time_zone="UTC", strict=False, cache=False
        )
        parsed = parsed.scatter(positions, attempt)
    return parsed


def _from_typed(col: Column, raw: pl.Expr, source: pl.DataType) -> Conversion:
    """Conversion of a typed (Parquet) column; a dtype that cannot hold the kind is a column
    error, values that do not fit are row errors."""
    integer = source.is_integer()
    numeric = source.is_numeric()
    kind = col.kind
    if kind in (Kind.ID, Kind.TEXT) and (integer or source == pl.Null):
        return Conversion(col, raw.cast(pl.String))
    if kind is Kind.FLOAT and numeric:
        value = raw.cast(pl.Float64, strict=False)
        value = pl.when(value.is_finite()).then(value)
        return Conversion(col, value, raw.is_not_null())
    if kind is Kind.INT and numeric:
        value = raw.cast(pl.Int64, strict=False)
        if not integer:
            value = pl.when(raw == raw.round(0)).then(value)
        return Conversion(col, value, raw.is_not_null())
    if kind is Kind.BOOL and (source == pl.Boolean or integer):
        if source == pl.Boolean:
            return Conversion(col, raw)
        value = pl.when(raw == 1).then(True).when(raw == 0).then(False)
        return Conversion(col, value, raw.is_not_null())
    if kind is Kind.DATE and isinstance(source, pl.Date | pl.Datetime):
        return Conversion(col, _as_utc(raw, source).dt.date() if source != pl.Date else raw)
    if kind is Kind.DATETIME and isinstance(source, pl.Date | pl.Datetime):
        return Conversion(col, _as_utc(raw, source))
    if source == pl.Null:
        return Conversion(col, pl.lit(None, dtype=col.dtype))
    expected = {
        Kind.ID: "text or integer",
        Kind.TEXT: "text or integer",
        Kind.FLOAT: "a number",
        Kind.INT: "an integer",
        Kind.BOOL: "a boolean",
        Kind.DATE: "a date",
        Kind.DATETIME: "a datetime",
    }[kind]
    return Conversion(
        col,
        pl.lit(None, dtype=col.dtype),
        column_error=f"stored as {source}; expected {expected} (or text that parses as one)",
    )


def _as_utc(raw: pl.Expr, source: pl.DataType) -> pl.Expr:
    if isinstance(source, pl.Date):
        return raw.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    assert isinstance(source, pl.Datetime)
    value = raw.dt.cast_time_unit("us")
    if source.time_zone is None:
        return value.dt.replace_time_zone("UTC")
    return value.dt.convert_time_zone("UTC")


def bad_value_message(col: Column, value: object) -> str:
    text = str(value)
    if REPLACEMENT in text:
        return "invalid UTF-8 bytes (files must be UTF-8 encoded)"
    shown = repr(value)
    if col.kind is Kind.FLOAT:
        stripped = text.strip().lower()
        if stripped.endswith(".") and _NUMERIC_TEXT.fullmatch(stripped):
            return (
                f"{shown} is not a number: it ends in its decimal point (is the value cut short?)"
            )
        if stripped in _NOT_FINITE:
            return f"{shown} is not a finite number (NaN and infinity are not allowed)"
        if _NUMERIC_TEXT.fullmatch(stripped) or isinstance(value, float | int):
            return f"{shown} is beyond the float64 range"
        return f"{shown} is not a number"
    if col.kind is Kind.INT:
        if re.fullmatch(r"[+-]?\d+", text.strip(), re.ASCII) or isinstance(value, int):
            return f"{shown} is beyond the int64 range"
        return f"{shown} is not an integer"
    if col.kind is Kind.BOOL:
        return f"{shown} is not a boolean (true/false, 1/0, yes/no)"
    if col.kind is Kind.DATE:
        return f"{shown} is not an ISO-8601 date (YYYY-MM-DD)"
    return f"{shown} is not an ISO-8601 date or datetime"
