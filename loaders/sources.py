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

This module is the entry point and the order of the checks; each concern has its own module:
:mod:`loaders.readers` (CSV physical lines and Parquet files), :mod:`loaders.values` (value
parsing), :mod:`loaders.extras` (typing the columns beyond the contract), :mod:`loaders.rules`
(checks within a table), :mod:`loaders.references` (checks across tables),
:mod:`loaders.memory_guard` (files too large to read) and :mod:`loaders.issues` (what is reported
and how much).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from graphkit.control import write_control_file
from graphkit.extras import ExtraColumn, describe_extras
from graphkit.progress import SILENT, Progress, task
from graphkit.schema import TABLES, Table
from loaders.control import ControlPolicy, check_control
from loaders.extras import infer_extras
from loaders.frames import empty_table
from loaders.issues import ROW, InputError, IssueLog, ValidationIssue, issues_frame
from loaders.memory_guard import MEMORY_BUDGET_ENV, memory_budget, parse_size, refuse_oversized
from loaders.readers import CsvSource, ParquetSource, ReadTable, Reread, physical_lines
from loaders.references import check_references
from loaders.rules import check_rows, report_bad_values
from loaders.values import BAD, PRESENT, Conversion, column_conversion

__all__ = [
    "FORMATS",
    "MEMORY_BUDGET_ENV",
    "ROW",
    "ExtraColumn",
    "InputError",
    "Inspection",
    "LoadedInput",
    "SourceFile",
    "ValidationIssue",
    "inspect_directory",
    "issues_frame",
    "memory_budget",
    "parse_size",
    "physical_lines",
    "read_input",
    "validate_directory",
    "write_control",
]

FORMATS = ("csv", "parquet")


@dataclass
class SourceFile:
    """One table file that was read: its table, path, format (csv|parquet) and data rows."""

    table: str
    path: Path
    format: str
    rows: int


@dataclass
class LoadedInput:
    """Every schema table (empty when absent) in schema dtypes, and the files they came from.

    ``extras`` lists every extra column of every table read, typed, and whether the model reads
    it (:mod:`graphkit.extras`).
    """

    tables: dict[str, pl.DataFrame]
    files: list[SourceFile] = field(default_factory=list)
    extras: list[ExtraColumn] = field(default_factory=list)


@dataclass
class Inspection:
    """What ``graphkit validate`` reports: the contract violations (empty when valid) and the
    extra columns of the tables that could be read."""

    issues: list[ValidationIssue]
    extras: list[ExtraColumn]


def inspect_directory(
    directory: Path | str, max_issues_per_file: int = 100, *, require_control: bool = False
) -> Inspection:
    """Every contract violation in ``directory`` and its extra columns; with
    ``require_control`` a directory without a control file is a violation."""
    try:
        loaded = read_input(
            Path(directory),
            max_issues_per_file=max_issues_per_file,
            control="require" if require_control else "check",
        )
    except InputError as exc:
        return Inspection(exc.issues, exc.extras)
    return Inspection([], loaded.extras)


def validate_directory(
    directory: Path | str, max_issues_per_file: int = 100, *, require_control: bool = False
) -> list[ValidationIssue]:
    """Every contract violation in ``directory`` (empty when it is valid); with
    ``require_control`` a directory without a control file is one."""
    return inspect_directory(directory, max_issues_per_file, require_control=require_control).issues


def read_input(
    directory: Path | str,
    progress: Progress = SILENT,
    max_issues_per_file: int = 100,
    *,
    control: ControlPolicy = "check",
) -> LoadedInput:
    """Read and validate the input directory ``directory``.

    Parameters
    ----------
    directory : an input directory (ARCHITECTURE section 3).
    progress : receives one task per table file and one for the cross-table checks.
    max_issues_per_file : issues listed per file; beyond it one final "... and N more" issue.
    control : the control totals (``_control.csv`` / ``_control.json``, :mod:`loaders.control`):
        ``check`` compares them with the tables when the directory has them, ``require`` also
        refuses a directory without them, ``ignore`` does not look.

    Returns
    -------
    LoadedInput whose ``tables`` holds every schema table: schema columns first, in schema order
    and dtypes (absent optional columns are null), then any extra columns, typed
    (:mod:`loaders.extras`: integers, numbers, booleans, dates and datetimes found in text;
    Parquet types kept), and ``extras`` saying which of them the model reads.

    Raises
    ------
    InputError listing every issue of every file when anything is wrong.

    Complexity: linear in the input size (one scan per file, hash joins for keys and references).
    """
    directory = Path(directory)
    log = IssueLog(max_issues_per_file)
    if not directory.exists():
        raise InputError([ValidationIssue(str(directory), None, None, "directory not found")])
    if not directory.is_dir():
        raise InputError([ValidationIssue(str(directory), None, None, "not a directory")])

    found = _table_files(directory, log)
    oversized = refuse_oversized(found, log)
    read: dict[str, ReadTable] = {}
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
        check_references(read, found, log)
    check_control(directory, found, read, log, control)

    extras = [e for name in TABLES if name in read for e in read[name].extras]
    issues = log.issues()
    if issues:
        error = InputError(issues)
        error.extras = extras
        raise error
    tables = {
        name: _output_frame(TABLES[name], read[name]) if name in read else empty_table(name)
        for name in TABLES
    }
    return LoadedInput(tables, files, extras)


def write_control(directory: Path | str) -> Path:
    """Write ``directory/_control.csv`` for the input directory as it stands: every table file
    with its data rows, the sum of its amount column and its SHA-256; returns its path.

    The directory is read and validated first (an existing control file is not consulted and is
    replaced): a control file vouches only for input that passes every check. Raises
    :class:`InputError` when it does not.
    """
    directory = Path(directory)
    loaded = read_input(directory, control="ignore")
    return write_control_file(
        directory, {f.path.name: loaded.tables[f.table] for f in loaded.files}
    )


def _table_files(directory: Path, log: IssueLog) -> dict[str, Path]:
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


def _read_table(table: Table, path: Path, log: IssueLog) -> ReadTable | None:
    file = path.name
    if path.stat().st_size == 0:
        log.add(file, None, None, "file is empty (0 bytes); a table needs at least a header row")
        return None
    opener = CsvSource.open if path.suffix == ".csv" else ParquetSource.open
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
            col.name: column_conversion(col, source.schema[col.name], source.lossy)
            for col in present
        }
        exprs: list[pl.Expr] = [pl.col(ROW)]
        for name, conversion in conversions.items():
            exprs.append(conversion.value.alias(name))
            if conversion.present is not None:
                exprs.append(conversion.present.fill_null(False).alias(PRESENT + name))
        exprs += [pl.col(c) for c in extras]
        try:
            frame = source.collect(exprs)
        except Reread:
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
        (pl.col(PRESENT + n) & pl.col(n).is_null()).alias(BAD + n) for n in checked
    ).drop(PRESENT + n for n in checked)
    frame = _apply_fallbacks(frame, conversions, source)

    ragged = source.ragged_rows(frame, log)
    records = frame.height
    if ragged:
        frame = frame.filter(~pl.col(ROW).is_in(list(ragged)))
    report_bad_values(file, frame, conversions, source, log)
    check_rows(table, file, frame, conversions, log)
    # Keys lost to unreadable rows would make references into this table dangle spuriously.
    usable = not ragged and all(
        k in conversions
        and conversions[k].column_error is None
        and (conversions[k].present is None or not frame.get_column(BAD + k).any())
        for k in table.key
    )
    frame = frame.select(ROW, *conversions, *extras)
    frame, details = infer_extras(frame, extras)
    described = describe_extras(table.name, frame, extras, details)
    return ReadTable(file, frame, tuple(conversions), records, usable, described)


def _apply_fallbacks(
    frame: pl.DataFrame,
    conversions: dict[str, Conversion],
    source: CsvSource | ParquetSource,
) -> pl.DataFrame:
    """Re-convert the failed rows of columns with a fallback parser, in place.

    ``frame`` still holds every data row in order, so row ``r`` sits at position ``r - 1``.
    """
    for name, conversion in conversions.items():
        if conversion.fallback is None:
            continue
        bad = frame.get_column(BAD + name)
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


def _output_frame(table: Table, read: ReadTable) -> pl.DataFrame:
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
