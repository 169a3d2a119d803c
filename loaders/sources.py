"""Read an input directory into typed polars frames, validating the input contract.

An input directory holds each table of :data:`graphkit.schema.TABLES` as ``NAME.csv`` or
``NAME.parquet`` (ARCHITECTURE section 3). :func:`read_input` reads every table, converts it to
the schema's dtypes and checks everything the contract promises: required columns and values,
parsable numbers, booleans and ISO-8601 timestamps, value checks, duplicate keys, references
between tables, self-links. Problems are collected, never thrown one at a time: every issue names
the file, the 1-based data row (header excluded) and the column, and :class:`InputError` lists all
of them (capped per file) before anything is built.

The good path is vectorised: a CSV file is scanned by polars with every column as text, each column
is cast with ``strict=False``, and a row failed when its value was present before the cast and
null after it. Python only loops over the (capped) rows it reports.
"""

from __future__ import annotations

import csv
import os
import re
import resource
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psutil

from graphkit.progress import SILENT, Progress, task
from graphkit.schema import TABLES, Check, Column, Kind, Table
from loaders.frames import empty_table

FORMATS = ("csv", "parquet")
ROW = "__graphkit_row"
_BAD = "__graphkit_bad__"
_PRESENT = "__graphkit_present__"
_LAST_NULL = "__graphkit_last_null"
_DELIMITERS = {";": "';'", "|": "'|'", "\t": "tab"}
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_REPLACEMENT = "\ufffd"
# ASCII digits only: Python's \d also matches full-width and other Unicode digits, which polars
# does not parse as numbers.
_NUMERIC_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_CHECK_TEXT = {Check.POSITIVE: "> 0", Check.NON_NEGATIVE: ">= 0", Check.SHARE: "in (0, 1]"}
_HEADER_BYTES = 1 << 20
MEMORY_BUDGET_ENV = "GRAPHKIT_MEMORY_BUDGET"
# Peak memory to read and validate one file, as a multiple of its CSV size or of its Parquet
# data uncompressed (measured: 3.1x for a text-heavy CSV, 4.4x for a number-heavy one).
_CSV_EXPANSION = 5
_PARQUET_EXPANSION = 3
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@dataclass
class SourceFile:
    """One table file that was read: its table, path, format (csv|parquet) and data rows."""

    table: str
    path: Path
    format: str
    rows: int


@dataclass(frozen=True)
class ValidationIssue:
    """One problem with the input.

    ``file`` is the file name as found (``transfers.csv``), or the directory for directory-level
    problems. ``row`` is the 1-based data row, header excluded (physical CSV line ``row + 1`` when
    no value spans lines), or None for file- and column-level problems. ``column`` is the column
    concerned, or None.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column {self.column}"
        return f"{where}: {self.message}"


class InputError(Exception):
    """The input directory breaks the contract; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues = list(issues)
        first = f"; first: {self.issues[0]}" if self.issues else ""
        super().__init__(f"{len(self.issues)} input error(s){first}")


@dataclass
class LoadedInput:
    """Every schema table (empty when absent) in schema dtypes, and the files they came from."""

    tables: dict[str, pl.DataFrame]
    files: list[SourceFile] = field(default_factory=list)


def issues_frame(issues: Iterable[ValidationIssue]) -> pl.DataFrame:
    """The issues as a frame with columns file, row, column, message."""
    issues = list(issues)
    return pl.DataFrame(
        {
            "file": [i.file for i in issues],
            "row": [i.row for i in issues],
            "column": [i.column for i in issues],
            "message": [i.message for i in issues],
        },
        schema={"file": pl.String, "row": pl.Int64, "column": pl.String, "message": pl.String},
    )


def validate_directory(
    directory: Path | str, max_issues_per_file: int = 100
) -> list[ValidationIssue]:
    """Every contract violation in ``directory`` (empty when it is valid)."""
    try:
        read_input(Path(directory), max_issues_per_file=max_issues_per_file)
    except InputError as exc:
        return exc.issues
    return []


def read_input(
    directory: Path | str, progress: Progress = SILENT, max_issues_per_file: int = 100
) -> LoadedInput:
    """Read and validate the input directory ``directory``.

    Parameters
    ----------
    directory : an input directory (ARCHITECTURE section 3).
    progress : receives one task per table file and one for the cross-table checks.
    max_issues_per_file : issues listed per file; beyond it one final "... and N more" issue.

    Returns
    -------
    LoadedInput whose ``tables`` holds every schema table: schema columns first, in schema order
    and dtypes (absent optional columns are null), then any extra columns as read (text for CSV).

    Raises
    ------
    InputError listing every issue of every file when anything is wrong.

    Complexity: linear in the input size (one scan per file, hash joins for keys and references).
    """
    directory = Path(directory)
    log = _IssueLog(max_issues_per_file)
    if not directory.exists():
        raise InputError([ValidationIssue(str(directory), None, None, "directory not found")])
    if not directory.is_dir():
        raise InputError([ValidationIssue(str(directory), None, None, "not a directory")])

    found = _table_files(directory, log)
    oversized = _refuse_oversized(found, log)
    read: dict[str, _ReadTable] = {}
    files: list[SourceFile] = []
    for name, path in found.items():
        if name in oversized:
            continue
        with task(progress, f"read {path.name}"):
            table = _read_table(TABLES[name], path, log)
        if table is not None:
            read[name] = table
            files.append(SourceFile(name, path, path.suffix[1:], table.frame.height))
    with task(progress, "check references"):
        _check_references(read, found, log)

    issues = log.issues()
    if issues:
        raise InputError(issues)
    tables = {
        name: _output_frame(TABLES[name], read[name]) if name in read else empty_table(name)
        for name in TABLES
    }
    return LoadedInput(tables, files)


def parse_size(text: str) -> int:
    """Bytes from a size such as ``512M``, ``2G``, ``1.5GiB`` or ``100000``; ValueError if not."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 4G)")
    scale = 1024 ** ("kmgt".find(match.group(2).lower()) + 1) if match.group(2) else 1
    return int(float(match.group(1)) * scale)


def memory_budget() -> int:
    """Bytes this process can still allocate: ``$GRAPHKIT_MEMORY_BUDGET`` when set, else the
    least of the machine's available memory, the headroom under this process's address-space
    and data limits (``ulimit -v`` / ``-d``), and the headroom of its cgroup."""
    override = os.environ.get(MEMORY_BUDGET_ENV)
    if override:
        return parse_size(override)
    usage = psutil.Process().memory_info()
    limits = [psutil.virtual_memory().available]
    for kind, used in ((resource.RLIMIT_AS, usage.vms), (resource.RLIMIT_DATA, usage.data)):
        soft = resource.getrlimit(kind)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(max(soft - used, 0))
    cgroup = Path("/sys/fs/cgroup")
    try:
        ceiling = (cgroup / "memory.max").read_text().strip()
        if ceiling != "max":
            current = int((cgroup / "memory.current").read_text())
            limits.append(max(int(ceiling) - current, 0))
    except (OSError, ValueError):
        pass
    return min(limits)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _memory_needed(path: Path) -> tuple[int, str]:
    """Estimated peak bytes to read ``path``, and how its size was measured.

    A Parquet file's size says little (a repeated value compresses to nothing): its data is
    judged by the larger of its uncompressed pages and 16 bytes per value (a polars string
    view; numbers take 8).
    """
    size = path.stat().st_size
    if path.suffix != ".parquet":
        return size * _CSV_EXPANSION, f"{_bytes(size)} on disk"
    try:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        pages = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows, columns = meta.num_rows, meta.num_columns
    except Exception:  # unreadable: the read reports it; judge by the file size meanwhile
        return size * _PARQUET_EXPANSION, f"{_bytes(size)} on disk"
    data = max(pages, rows * columns * 16, size)
    measured = f"{rows:,} rows x {columns} columns (about {_bytes(data)} in memory)"
    return data * _PARQUET_EXPANSION, measured


def _refuse_oversized(found: dict[str, Path], log: _IssueLog) -> set[str]:
    """Tables whose file would not fit in memory, each reported; they are not read."""
    try:
        budget = memory_budget()
    except ValueError as exc:
        log.add(MEMORY_BUDGET_ENV, None, None, str(exc))
        return set(found)
    refused = set()
    for name, path in found.items():
        needed, measured = _memory_needed(path)
        if needed > budget:
            log.add(
                path.name,
                None,
                None,
                f"too large to read in memory: {measured} needs about {_bytes(needed)} but "
                f"only {_bytes(budget)} is available; refused rather than risk running out of "
                f"memory (free memory, split the table, or set {MEMORY_BUDGET_ENV} to override)",
            )
            refused.add(name)
    return refused


class _IssueLog:
    """Issues per file, at most ``cap`` listed and the rest counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._listed: dict[str, list[ValidationIssue]] = {}
        self._unlisted: dict[str, int] = {}

    def room(self, file: str) -> int:
        return max(self.cap - len(self._listed.get(file, [])), 0)

    def add(self, file: str, row: int | None, column: str | None, message: str) -> None:
        self.add_counted(file, 1, [(row, column, message)])

    def add_counted(
        self, file: str, total: int, listed: Iterable[tuple[int | None, str | None, str]]
    ) -> None:
        """Record ``total`` issues of which ``listed`` (at most :meth:`room`) are spelled out."""
        bucket = self._listed.setdefault(file, [])
        shown = 0
        for row, column, message in listed:
            if len(bucket) >= self.cap:
                break
            bucket.append(ValidationIssue(file, row, column, message))
            shown += 1
        if total > shown:
            self._unlisted[file] = self._unlisted.get(file, 0) + total - shown

    def issues(self) -> list[ValidationIssue]:
        out: list[ValidationIssue] = []
        for file, bucket in self._listed.items():
            out += sorted(bucket, key=lambda i: -1 if i.row is None else i.row)
            more = self._unlisted.get(file, 0)
            if more:
                out.append(ValidationIssue(file, None, None, f"... and {more} more issue(s)"))
        return out


@dataclass
class _ReadTable:
    """A table read from its file: ``frame`` has the row number, converted columns and extras."""

    file: str
    frame: pl.DataFrame
    columns: tuple[str, ...]
    # False when a file- or key-level problem makes the table unusable as a reference target.
    usable: bool = True


def _table_files(directory: Path, log: _IssueLog) -> dict[str, Path]:
    """The file of each table present, in schema order; reports missing and doubled tables."""
    by_table: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_file() and entry.stem in TABLES and entry.suffix[1:] in FORMATS:
            by_table.setdefault(entry.stem, []).append(entry)
    found: dict[str, Path] = {}
    for name, table in TABLES.items():
        paths = by_table.get(name, [])
        if len(paths) > 1:
            log.add(
                paths[0].name,
                None,
                None,
                f"both {name}.csv and {name}.parquet exist; keep exactly one",
            )
        elif paths:
            found[name] = paths[0]
        elif table.mandatory:
            log.add(
                f"{name}.csv",
                None,
                None,
                f"mandatory table {name!r} is missing: expected {name}.csv or {name}.parquet",
            )
    return found


def _read_table(table: Table, path: Path, log: _IssueLog) -> _ReadTable | None:
    file = path.name
    if path.stat().st_size == 0:
        log.add(file, None, None, "file is empty (0 bytes); a table needs at least a header row")
        return None
    opener = _CsvSource.open if path.suffix == ".csv" else _ParquetSource.open
    source = opener(path, log)
    if source is None:
        return None

    present = [c for c in table.columns if c.name in source.schema]
    for col in table.columns:
        if col.required and col.name not in source.schema:
            log.add(file, None, col.name, "required column is missing")
    extras = [c for c in source.schema if c not in table.polars_schema]
    while True:
        conversions = {
            col.name: _conversion(col, source.schema[col.name], source.lossy) for col in present
        }
        exprs: list[pl.Expr] = [pl.col(ROW)]
        for name, conversion in conversions.items():
            exprs.append(conversion.value.alias(name))
            if conversion.present is not None:
                exprs.append(conversion.present.fill_null(False).alias(_PRESENT + name))
        exprs += [pl.col(c) for c in extras]
        try:
            frame = source.collect(exprs)
        except _Reread:
            continue
        break
    if frame is None:
        return None
    for name, conversion in conversions.items():
        if conversion.column_error is not None:
            log.add(file, None, name, conversion.column_error)
    # A value failed to convert where one was given and the result is null.
    checked = [n for n, c in conversions.items() if c.present is not None]
    frame = frame.with_columns(
        (pl.col(_PRESENT + n) & pl.col(n).is_null()).alias(_BAD + n) for n in checked
    ).drop(_PRESENT + n for n in checked)
    frame = _apply_fallbacks(frame, conversions, source)

    ragged = source.ragged_rows(frame, log)
    if ragged:
        frame = frame.filter(~pl.col(ROW).is_in(list(ragged)))
    _report_bad_values(file, frame, conversions, source, log)
    _check_rows(table, file, frame, conversions, log)
    # Keys lost to unreadable rows would make references into this table dangle spuriously.
    usable = not ragged and all(
        k in conversions
        and conversions[k].column_error is None
        and (conversions[k].present is None or not frame.get_column(_BAD + k).any())
        for k in table.key
    )
    frame = frame.select(ROW, *conversions, *extras)
    return _ReadTable(file, frame, tuple(conversions), usable)


def _apply_fallbacks(
    frame: pl.DataFrame,
    conversions: dict[str, _Conversion],
    source: _CsvSource | _ParquetSource,
) -> pl.DataFrame:
    """Re-convert the failed rows of columns with a fallback parser, in place.

    ``frame`` still holds every data row in order, so row ``r`` sits at position ``r - 1``.
    """
    for name, conversion in conversions.items():
        if conversion.fallback is None:
            continue
        bad = frame.get_column(_BAD + name)
        if not bad.any():
            continue
        rows = frame.filter(bad).get_column(ROW)
        raw = source.raw_rows(rows.to_list(), [name])
        # Categorical text from Parquet is converted as text; its raw values are categorical.
        text = raw.get_column(name).cast(pl.String)
        retried = raw.select(ROW, conversion.fallback(text).alias(name)).filter(
            pl.col(name).is_not_null()
        )
        if retried.height == 0:
            continue
        positions = retried.get_column(ROW).cast(pl.Int64) - 1
        frame = frame.with_columns(
            frame.get_column(name).scatter(positions, retried.get_column(name)),
            bad.scatter(positions, False),
        )
    return frame


class _Reread(Exception):
    """The source changed how it reads (lossy decoding, ragged lines); plan the scan again."""


@dataclass
class _Conversion:
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


def _conversion(col: Column, source: pl.DataType, lossy: bool) -> _Conversion:
    raw = pl.col(col.name)
    if source == pl.String:
        return _from_text(col, raw, lossy)
    if isinstance(source, pl.Categorical | pl.Enum):
        return _from_text(col, raw.cast(pl.String), lossy)
    return _from_typed(col, raw, source)


def _from_text(col: Column, raw: pl.Expr, lossy: bool) -> _Conversion:
    if col.kind in (Kind.ID, Kind.TEXT):
        value = pl.when(raw != "").then(raw)
        if not lossy:
            return _Conversion(col, value)
        replaced = raw.str.contains(_REPLACEMENT, literal=True)
        return _Conversion(col, pl.when(~replaced).then(value), raw != "")
    text = raw.str.strip_chars()
    present = text.is_not_null() & (text != "")
    if col.kind is Kind.FLOAT:
        number = text.cast(pl.Float64, strict=False)
        value = pl.when(number.is_finite()).then(number)
    elif col.kind is Kind.INT:
        value = text.cast(pl.Int64, strict=False)
    elif col.kind is Kind.BOOL:
        value = text.str.to_lowercase().replace_strict(
            _BOOL_WORDS, default=None, return_dtype=pl.Boolean
        )
    elif col.kind is Kind.DATE:
        value = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, cache=False)
        return _Conversion(col, value, present, fallback=lambda s: _parse_datetime(s).dt.date())
    else:
        # polars parses this one format on a fast path; other spellings (fractions, zones,
        # date only) are few in most files and go through the slower fallback.
        value = (
            text.str.replace(" ", "T", literal=True)
            .str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False, cache=False)
            .dt.replace_time_zone("UTC")
        )
        return _Conversion(col, value, present, fallback=_parse_datetime)
    return _Conversion(col, value, present)


_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M%z",
)


def _parse_datetime(raw: pl.Series) -> pl.Series:
    """ISO-8601 date or datetime, ``T`` or space separated, optional fraction and zone, as UTC.

    Each format is tried only on the values the earlier ones left unparsed.
    """
    iso = (
        raw.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[ tT]", "${1}T")
        .str.replace(r"[zZ]$", "+00:00")
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


def _from_typed(col: Column, raw: pl.Expr, source: pl.DataType) -> _Conversion:
    """Conversion of a typed (Parquet) column; a dtype that cannot hold the kind is a column
    error, values that do not fit are row errors."""
    integer = source.is_integer()
    numeric = source.is_numeric()
    kind = col.kind
    if kind in (Kind.ID, Kind.TEXT) and (integer or source == pl.Null):
        return _Conversion(col, raw.cast(pl.String))
    if kind is Kind.FLOAT and numeric:
        value = raw.cast(pl.Float64, strict=False)
        value = pl.when(value.is_finite()).then(value)
        return _Conversion(col, value, raw.is_not_null())
    if kind is Kind.INT and numeric:
        value = raw.cast(pl.Int64, strict=False)
        if not integer:
            value = pl.when(raw == raw.round(0)).then(value)
        return _Conversion(col, value, raw.is_not_null())
    if kind is Kind.BOOL and (source == pl.Boolean or integer):
        if source == pl.Boolean:
            return _Conversion(col, raw)
        value = pl.when(raw == 1).then(True).when(raw == 0).then(False)
        return _Conversion(col, value, raw.is_not_null())
    if kind is Kind.DATE and isinstance(source, pl.Date | pl.Datetime):
        return _Conversion(col, _as_utc(raw, source).dt.date() if source != pl.Date else raw)
    if kind is Kind.DATETIME and isinstance(source, pl.Date | pl.Datetime):
        return _Conversion(col, _as_utc(raw, source))
    if source == pl.Null:
        return _Conversion(col, pl.lit(None, dtype=col.dtype))
    expected = {
        Kind.ID: "text or integer",
        Kind.TEXT: "text or integer",
        Kind.FLOAT: "a number",
        Kind.INT: "an integer",
        Kind.BOOL: "a boolean",
        Kind.DATE: "a date",
        Kind.DATETIME: "a datetime",
    }[kind]
    return _Conversion(
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


def _bad_value_message(col: Column, value: object) -> str:
    text = str(value)
    if _REPLACEMENT in text:
        return "invalid UTF-8 bytes (files must be UTF-8 encoded)"
    shown = repr(value)
    if col.kind is Kind.FLOAT:
        stripped = text.strip().lower()
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


def _report_bad_values(
    file: str,
    frame: pl.DataFrame,
    conversions: dict[str, _Conversion],
    source: _CsvSource | _ParquetSource,
    log: _IssueLog,
) -> None:
    """One issue per row and column whose value failed to convert, with the value as written."""
    failed: list[tuple[str, int, list[int]]] = []
    for name, conversion in conversions.items():
        if conversion.present is None:
            continue
        flags = frame.get_column(_BAD + name)
        total = int(flags.sum())
        if total:
            rows = frame.filter(flags).get_column(ROW).head(log.room(file)).to_list()
            failed.append((name, total, rows))
    if not failed:
        return
    wanted = sorted({r for _, _, rows in failed for r in rows})
    raw = source.raw_rows(wanted, [name for name, _, _ in failed])
    for name, total, rows in failed:
        col = conversions[name].column
        values = dict(
            zip(raw.get_column(ROW).to_list(), raw.get_column(name).to_list(), strict=True)
        )
        log.add_counted(
            file, total, ((r, name, _bad_value_message(col, values.get(r))) for r in rows)
        )


def _report_mask(
    file: str,
    frame: pl.DataFrame,
    mask: pl.Expr,
    column: str,
    message: Callable[..., str],
    log: _IssueLog,
    values: Sequence[str] = (),
) -> None:
    """Report every row of ``frame`` where ``mask`` holds; ``message(*values of the row)``."""
    hits = frame.filter(mask.fill_null(False))
    if hits.height == 0:
        return
    shown = hits.head(log.room(file)).select(ROW, *values)
    log.add_counted(
        file,
        hits.height,
        ((row[0], column, message(*row[1:])) for row in shown.iter_rows()),
    )


def _check_rows(
    table: Table,
    file: str,
    frame: pl.DataFrame,
    conversions: dict[str, _Conversion],
    log: _IssueLog,
) -> None:
    """Required values, choices, value checks, self-links and duplicate keys."""
    # (mask, column, message(*values), values): counted in one pass, listed where they hit.
    checks: list[tuple[pl.Expr, str, Callable[..., str], list[str]]] = []
    for name, conversion in conversions.items():
        col = conversion.column
        if conversion.column_error is not None:
            continue
        value = pl.col(name)
        if col.required:
            missing = value.is_null()
            if conversion.present is not None:
                missing = missing & ~pl.col(_BAD + name)
            checks.append((missing, name, lambda: "empty value in required column", []))
        if col.choices:
            allowed = ", ".join(col.choices)
            checks.append(
                (
                    value.is_not_null() & ~value.is_in(list(col.choices)),
                    name,
                    lambda v, allowed=allowed: f"{v!r} is not one of: {allowed}",
                    [name],
                )
            )
        if col.check is not None:
            violates = {
                Check.POSITIVE: value <= 0,
                Check.NON_NEGATIVE: value < 0,
                Check.SHARE: (value <= 0) | (value > 1),
            }[col.check]
            rule = _CHECK_TEXT[col.check]
            checks.append((violates, name, lambda v, rule=rule: f"{v!r} must be {rule}", [name]))
    for first, second in table.distinct:
        if first in conversions and second in conversions:
            checks.append(
                (
                    pl.col(first) == pl.col(second),
                    first,
                    lambda v, first=first, second=second: (
                        f"{first} equals {second} ({v!r}): a customer cannot be linked to itself"
                    ),
                    [first],
                )
            )
    if checks:
        counts = frame.select(
            mask.fill_null(False).sum().alias(str(i)) for i, (mask, *_) in enumerate(checks)
        ).row(0)
        for count, (mask, column, message, values) in zip(counts, checks, strict=True):
            if count:
                _report_mask(file, frame, mask, column, message, log, values)
    keys = list(table.key)
    if keys and all(k in conversions for k in keys):
        keyed = frame.select(ROW, *keys).filter(pl.all_horizontal(pl.col(keys).is_not_null()))
        first = (pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])).is_first_distinct()
        dupes = keyed.filter(~first)
        if dupes.height:
            firsts = (
                keyed.filter(first)
                .join(dupes.select(keys).unique(), on=keys, how="semi")
                .rename({ROW: "__first"})
            )
            dupes = dupes.join(firsts, on=keys, how="left").sort(ROW)
            label = ",".join(keys)
            _report_mask(
                file,
                dupes,
                pl.lit(True),
                label,
                lambda *vals: (
                    f"duplicate key {_key_text(keys, vals[:-1])} (first at row {vals[-1]})"
                ),
                log,
                [*keys, "__first"],
            )


def _key_text(keys: Sequence[str], values: Sequence[object]) -> str:
    if len(keys) == 1:
        return f"{keys[0]}={values[0]!r}"
    return "(" + ", ".join(keys) + ")=(" + ", ".join(repr(v) for v in values) + ")"


def _check_references(read: dict[str, _ReadTable], found: dict[str, Path], log: _IssueLog) -> None:
    """Dangling references, ambiguous account owners, and shareholdings in non-enterprises.

    A reference into a table that exists but could not be read, or into the mandatory customers
    table when it is missing, is not checked (that file's issue already says it); a reference
    into an absent optional table dangles.
    """
    keysets: dict[str, pl.Series | None] = {}
    for name, table in TABLES.items():
        if not table.key or len(table.key) != 1:
            continue
        if name in read:
            keysets[name] = read[name].frame.get_column(table.key[0]) if read[name].usable else None
        elif name in found or table.mandatory:
            # Unreadable, or missing although mandatory: that file's issue says it all.
            keysets[name] = None
        else:
            keysets[name] = pl.Series(table.key[0], [], dtype=pl.String)

    for name, source in read.items():
        for col in TABLES[name].columns:
            if not col.refs or col.name not in source.columns:
                continue
            targets = [keysets[t] for t in col.refs]
            if any(t is None for t in targets):
                continue
            known = pl.concat([t for t in targets if t is not None]).drop_nulls().alias(col.name)
            value = pl.col(col.name)
            where = " or ".join(f"{t}.{TABLES[t].key[0]}" for t in col.refs)
            dangling = (
                source.frame.select(ROW, col.name)
                .filter(value.is_not_null())
                .join(known.unique().to_frame(), on=col.name, how="anti")
                .sort(ROW)
            )
            _report_mask(
                source.file,
                dangling,
                pl.lit(True),
                col.name,
                lambda v, where=where: f"dangling reference {v!r}: not found in {where}",
                log,
                [col.name],
            )
            if len(col.refs) > 1:
                both = targets[0]
                for other in targets[1:]:
                    assert both is not None and other is not None
                    both = both.filter(both.is_in(other.implode()))
                assert both is not None
                if both.len():
                    owners = " and ".join(col.refs)
                    _report_mask(
                        source.file,
                        source.frame,
                        value.is_in(both.implode()),
                        col.name,
                        lambda v, owners=owners: (
                            f"ambiguous reference {v!r}: the id exists in both {owners}"
                        ),
                        log,
                        [col.name],
                    )

    holdings, customers = read.get("shareholdings"), read.get("customers")
    if (
        holdings is not None
        and customers is not None
        and "kind" in customers.columns
        and "customer_id" in customers.columns
        and "company_id" in holdings.columns
    ):
        non_enterprise = customers.frame.filter(pl.col("kind") != "enterprise").select(
            pl.col("customer_id").alias("company_id"), "kind"
        )
        joined = holdings.frame.select(ROW, "company_id").join(
            non_enterprise, on="company_id", how="inner"
        )
        _report_mask(
            holdings.file,
            joined,
            pl.lit(True),
            "company_id",
            lambda v, k: f"company_id {v!r} is a {k}, not an enterprise",
            log,
            ["company_id", "kind"],
        )


def _output_frame(table: Table, read: _ReadTable) -> pl.DataFrame:
    frame = read.frame
    extras = [c for c in frame.columns if c != ROW and c not in table.polars_schema]
    return frame.select(
        *(
            pl.col(c.name).cast(c.dtype)
            if c.name in frame.columns
            else pl.lit(None, c.dtype).alias(c.name)
            for c in table.columns
        ),
        *extras,
    )


class _CsvSource:
    """A comma-separated UTF-8 file with a header row, scanned with every column as text."""

    def __init__(self, path: Path, header: list[str], keep: dict[str, str], log: _IssueLog):
        self.path = path
        self.header = header
        self.keep = keep  # positional column -> header name (first occurrence of each name)
        self.log = log
        self.schema: dict[str, pl.DataType] = {name: pl.String() for name in keep.values()}
        self.lossy = False
        self.truncated = False

    @classmethod
    def open(cls, path: Path, log: _IssueLog) -> _CsvSource | None:
        file = path.name
        with path.open("rb") as fh:
            head = fh.read(_HEADER_BYTES)
        line = head.split(b"\n", 1)[0].rstrip(b"\r")
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            log.add(
                file,
                None,
                None,
                f"header row has invalid UTF-8 bytes at byte {exc.start}; "
                "files must be UTF-8 encoded",
            )
            return None
        if not text.strip():
            log.add(file, None, None, "the first line is empty; expected a header row")
            return None
        # polars reads a quoted header name across lines; this check reads only the first line,
        # so a name spanning lines would give the two readers different columns.
        if text.count('"') % 2:
            log.add(
                file,
                None,
                None,
                "the header row opens a quoted column name it does not close on the same line",
            )
            return None
        try:
            header = [name.strip() for name in next(csv.reader([text]))]
        except csv.Error as exc:
            log.add(file, None, None, f"the header row is not valid CSV: {exc}")
            return None
        if len(header) == 1:
            for delimiter, label in _DELIMITERS.items():
                if delimiter in header[0]:
                    log.add(
                        file,
                        None,
                        None,
                        f"looks like {label}-separated; graphkit reads comma-separated CSV",
                    )
                    return None
        keep: dict[str, str] = {}
        seen: dict[str, int] = {}
        for position, name in enumerate(header):
            name = name or f"column_{position + 1}"
            if name in seen:
                log.add(
                    file,
                    None,
                    name,
                    f"duplicate column name (header fields {seen[name] + 1} and {position + 1})",
                )
                continue
            seen[name] = position
            keep[f"c{position}"] = name
        return cls(path, header, keep, log)

    def _scan(self) -> pl.LazyFrame:
        return pl.scan_csv(
            self.path,
            has_header=True,
            schema={f"c{i}": pl.String() for i in range(len(self.header))},
            encoding="utf8-lossy" if self.lossy else "utf8",
            truncate_ragged_lines=self.truncated,
        ).with_row_index(ROW, offset=1)

    def _raw(self) -> pl.LazyFrame:
        return self._scan().select(
            ROW, *(pl.col(pos).alias(name) for pos, name in self.keep.items())
        )

    def collect(self, exprs: list[pl.Expr]) -> pl.DataFrame | None:
        """Run the conversion; raises :class:`_Reread` after switching to lossy decoding (invalid
        UTF-8) or to truncating long rows (reported as ragged rows), None when unreadable."""
        last = f"c{len(self.header) - 1}"
        query = self._scan().select(
            ROW,
            pl.col(last).is_null().alias(_LAST_NULL),
            *(pl.col(pos).alias(name) for pos, name in self.keep.items()),
        )
        try:
            return query.select(pl.col(_LAST_NULL), *exprs).collect(engine="streaming")
        except pl.exceptions.ComputeError as exc:
            text = str(exc).lower()
            if "utf-8" in text and not self.lossy:
                self.lossy = True
                raise _Reread from exc
            if "more fields" in text and not self.truncated:
                self.truncated = True
                raise _Reread from exc
            row = _unclosed_quote_row(self.path)
            if row is not None:
                self.log.add(
                    self.path.name,
                    row,
                    None,
                    "a quoted value opened in this row is never closed (is the file truncated?)",
                )
            else:
                self.log.add(self.path.name, None, None, f"unreadable CSV: {exc}")
            return None

    def ragged_rows(self, frame: pl.DataFrame, log: _IssueLog) -> set[int]:
        """Rows whose field count differs from the header's, reported; only searched when the
        scan saw too many fields or a null in the last column (a short row reads as nulls)."""
        if not self.truncated and not frame.get_column(_LAST_NULL).any():
            return set()
        counts = _field_counts(self.path)
        ragged = counts.filter(pl.col("fields") != len(self.header))
        if ragged.height == 0:
            return set()
        expected = len(self.header)
        log.add_counted(
            self.path.name,
            ragged.height,
            (
                (
                    row,
                    None,
                    "blank line"
                    if fields == 0
                    else f"row has {fields} field(s); the header has {expected}",
                )
                for row, fields in ragged.head(log.room(self.path.name)).iter_rows()
            ),
        )
        return set(ragged.get_column(ROW).to_list())

    def raw_rows(self, rows: list[int], columns: list[str]) -> pl.DataFrame:
        return _raw_rows(self._raw(), rows, columns)


def _raw_rows(raw: pl.LazyFrame, rows: list[int], columns: list[str]) -> pl.DataFrame:
    """The values as written of ``columns`` on data rows ``rows`` (any order)."""
    wanted = pl.LazyFrame({ROW: rows}, schema={ROW: pl.UInt32})
    return raw.select(ROW, *columns).join(wanted, on=ROW, how="semi").collect(engine="streaming")


def physical_lines(path: Path) -> pl.LazyFrame:
    """Every physical line of the file (ROW 0 = the header line), quotes not interpreted."""
    return pl.scan_csv(
        path,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        schema={"line": pl.String()},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
    ).with_row_index(ROW)


def _unclosed_quote_row(path: Path) -> int | None:
    """The data row where a quote opens that the file never closes, or None when the file's
    quotes pair up. The line where the running quote count last turned odd holds it."""
    quotes = pl.col("line").str.count_matches('"', literal=True).fill_null(0)
    odd = (quotes.cum_sum() % 2) == 1
    lines = physical_lines(path).select(ROW, odd.alias("odd")).collect(engine="streaming")
    if lines.height == 0 or not lines.get_column("odd")[-1]:
        return None
    opened = lines.filter(pl.col("odd") & ~pl.col("odd").shift(1, fill_value=False))
    row = int(opened.get_column(ROW)[-1])
    return row if row > 0 else None


def _field_counts(path: Path) -> pl.DataFrame:
    """Fields per data record (ROW, fields): vectorised per line when no quoted value spans
    lines, else by Python's csv module (exact, slower)."""
    lines = physical_lines(path).filter(pl.col(ROW) > 0).collect(engine="streaming")
    quotes = lines.get_column("line").str.count_matches('"', literal=True).fill_null(0)
    if not (quotes % 2 == 1).any():
        unquoted = pl.col("line").str.replace_all(r'"[^"]*"', "")
        return lines.select(
            pl.col(ROW).cast(pl.Int64),
            pl.when(pl.col("line").is_null())
            .then(0)
            .otherwise(unquoted.str.count_matches(",", literal=True) + 1)
            .alias("fields"),
        )
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        counts = [len(record) for record in reader]
    return pl.DataFrame(
        {ROW: range(1, len(counts) + 1), "fields": counts},
        schema={ROW: pl.Int64, "fields": pl.Int64},
    )


# A corrupt page can make polars panic (a BaseException) instead of raising an error.
_PARQUET_ERRORS = (Exception, pl.exceptions.PanicException)


class _ParquetSource:
    """A Parquet file; its columns keep their stored dtypes until converted."""

    lossy = False

    def __init__(self, path: Path, schema: dict[str, pl.DataType], log: _IssueLog) -> None:
        self.path = path
        self.schema = schema
        self.log = log

    @classmethod
    def open(cls, path: Path, log: _IssueLog) -> _ParquetSource | None:
        try:
            schema = dict(pl.scan_parquet(path).collect_schema())
        except _PARQUET_ERRORS as exc:  # polars raises several types for a corrupt file
            log.add(path.name, None, None, f"not a readable Parquet file: {exc}")
            return None
        return cls(path, schema, log)

    def _raw(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path).with_row_index(ROW, offset=1)

    def collect(self, exprs: list[pl.Expr]) -> pl.DataFrame | None:
        try:
            return self._raw().select(exprs).collect(engine="streaming")
        except _PARQUET_ERRORS as exc:
            self.log.add(self.path.name, None, None, f"not a readable Parquet file: {exc}")
            return None

    def ragged_rows(self, frame: pl.DataFrame, log: _IssueLog) -> set[int]:
        return set()

    def raw_rows(self, rows: list[int], columns: list[str]) -> pl.DataFrame:
        return _raw_rows(self._raw(), rows, columns)
