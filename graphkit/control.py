"""Control totals: a delivery's own statement of what it holds, checked against what arrived.

Bank batch transfers travel with a control record: per file, how many records it holds and the
total of its amounts, so that the receiver can tell a complete delivery from one cut short,
doubled or swapped. graphkit reads and writes it as ``_control.csv`` (or ``_control.json``)
beside the files it describes::

    file,rows,amount_sum,sha256
    customers.csv,2000,,
    transfers.csv,20000,31415926.53,9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

``rows`` counts data records (header excluded); ``amount_sum`` is the sum of the file's
``amount`` column, blank for a file without one; ``sha256`` (optional, may be blank) is the
SHA-256 of the file's bytes. The JSON form holds the same fields:
``{"files": [{"file": "transfers.csv", "rows": 20000, "amount_sum": "31415926.53"}]}``.

Sums are compared within :data:`SUM_TOLERANCE` (half a cent) of an exact sum: each amount is split
into whole cents (summed as 128-bit integers, exactly) and a sub-cent remainder (summed in
float64), so the sum of a column of two-decimal amounts is exact for amounts below 9e13 whatever
the number of rows (larger ones are added one by one as the exact values of their floats). A
control written to the cent therefore matches; a difference of a cent or more never does.

This module is the file format and the comparison; :mod:`loaders.control` checks an input
directory with it, and :mod:`graphkit.export` writes one for each export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import polars as pl

from graphkit.atomic import atomic_write_bytes

CONTROL_CSV = "_control.csv"
CONTROL_JSON = "_control.json"
CONTROL_FILES = (CONTROL_CSV, CONTROL_JSON)
AMOUNT = "amount"
FIELDS = ("file", "rows", "amount_sum", "sha256")
# Two sums agree when they differ by at most half a cent: a sum written rounded to the cent.
SUM_TOLERANCE = Decimal("0.005")
_CENT = Decimal("0.01")
_EXACT_CENTS_BELOW = 2**53 / 100
_ROWS = re.compile(r"[0-9]+", re.ASCII)
_SUM = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Figures:
    """What a file holds: data rows, the sum of its amount column (None without one) and, when
    asked for, the SHA-256 of its bytes."""

    rows: int
    amount_sum: Decimal | None
    sha256: str | None = None


@dataclass(frozen=True)
class ControlEntry:
    """One line of a control file: ``row`` is its 1-based position (header excluded)."""

    row: int
    file: str
    rows: int
    amount_sum: Decimal | None
    sha256: str | None


class ControlProblem(NamedTuple):
    """A problem with a control file or a mismatch: control row (None for the whole file), the
    control column concerned (None when none), and what is wrong."""

    row: int | None
    column: str | None
    message: str


def amount_sum(frame: pl.DataFrame) -> Decimal | None:
    """The exact sum of ``frame``'s amount column (nulls skipped), None when it has none.

    Each amount is rounded to whole cents, which are summed as 128-bit integers; what the
    rounding left (non-zero only for amounts with more than two decimals) is summed in float64.
    Complexity: one vectorised pass.
    """
    if AMOUNT not in frame.columns:
        return None
    values = frame.get_column(AMOUNT).cast(pl.Float64).drop_nulls()
    # Beyond 2**53 cents a float64 no longer holds every cent; the few such amounts are added
    # one by one as the exact decimals of their floats.
    huge = values.abs() >= _EXACT_CENTS_BELOW
    exact = sum((Decimal(v) for v in values.filter(huge)), Decimal(0))
    values = values.filter(~huge)
    cents = (values * 100).round(0)
    whole = cents.cast(pl.Int128).sum() or 0
    rest = (values - cents / 100).sum() or 0.0
    return exact + Decimal(int(whole)) / 100 + Decimal(float(rest))


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes, hex encoded."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def figures(frame: pl.DataFrame, path: Path | None = None) -> Figures:
    """Rows and amount sum of ``frame``, plus the SHA-256 of ``path`` when given."""
    sha = file_sha256(path) if path is not None else None
    return Figures(frame.height, amount_sum(frame), sha)


def _sum_text(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def control_files(directory: Path) -> list[Path]:
    """The control files present in ``directory`` (none, one, or both forms)."""
    return [directory / name for name in CONTROL_FILES if (directory / name).is_file()]


def read_control(path: Path) -> tuple[list[ControlEntry], list[ControlProblem]]:
    """The entries of control file ``path`` (CSV or JSON by suffix), and its problems: unknown
    or missing columns, malformed values, files listed twice. Malformed entries are left out."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ControlProblem(None, None, f"unreadable control file: {exc}")]
    if path.suffix == ".json":
        records, problems = _json_records(text)
    else:
        records, problems = _csv_records(text)
    entries: list[ControlEntry] = []
    seen: dict[str, int] = {}
    for row, record in records:
        entry, bad = _entry(row, record)
        problems += bad
        if entry is None:
            continue
        if entry.file in seen:
            problems.append(
                ControlProblem(
                    row, "file", f"{entry.file} is listed twice (first at row {seen[entry.file]})"
                )
            )
            continue
        seen[entry.file] = row
        entries.append(entry)
    return entries, problems


def _csv_records(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[ControlProblem]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return [], [ControlProblem(None, None, "the control file is empty; expected a header row")]
    header = [name.strip() for name in rows[0]]
    problems = [
        ControlProblem(None, name or None, f"unknown column {name!r}; expected {', '.join(FIELDS)}")
        for name in header
        if name not in FIELDS
    ]
    problems += [
        ControlProblem(None, name, "required column is missing")
        for name in ("file", "rows")
        if name not in header
    ]
    if problems:
        return [], problems
    records = []
    for row, values in enumerate(rows[1:], start=1):
        if not values:  # a blank line
            continue
        if len(values) != len(header):
            problems.append(
                ControlProblem(
                    row, None, f"row has {len(values)} field(s); the header has {len(header)}"
                )
            )
            continue
        records.append((row, dict(zip(header, values, strict=True))))
    return records, problems


def _json_records(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[ControlProblem]]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        return [], [ControlProblem(None, None, f"not valid JSON: {exc}")]
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        return [], [ControlProblem(None, None, 'expected {"files": [{"file": ..., "rows": ...}]}')]
    records, problems = [], []
    for row, item in enumerate(files, start=1):
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            problems.append(
                ControlProblem(row, unknown[0], f"unknown field; expected {', '.join(FIELDS)}")
            )
            continue
        # JSON numbers and strings are both accepted; they are checked as text below.
        records.append(
            (
                row,
                {
                    k: "" if v is None else v if isinstance(v, str) else json.dumps(v)
                    for k, v in item.items()
                },
            )
        )
    return records, problems


def _entry(row: int, record: dict[str, str]) -> tuple[ControlEntry | None, list[ControlProblem]]:
    file = record.get("file", "").strip()
    rows = record.get("rows", "").strip()
    total = record.get("amount_sum", "").strip()
    sha = record.get("sha256", "").strip()
    problems = []
    if not file:
        problems.append(ControlProblem(row, "file", "empty value in required column"))
    if not _ROWS.fullmatch(rows):
        problems.append(ControlProblem(row, "rows", f"{rows!r} is not a row count (0, 1, 2, ...)"))
    if total and not _SUM.fullmatch(total):
        problems.append(
            ControlProblem(row, "amount_sum", f"{total!r} is not a decimal number (e.g. 1234.56)")
        )
    if sha and not _SHA256.fullmatch(sha):
        problems.append(ControlProblem(row, "sha256", f"{sha!r} is not 64 hexadecimal digits"))
    if problems:
        return None, problems
    entry = ControlEntry(
        row, file, int(rows), Decimal(total) if total else None, sha.lower() or None
    )
    return entry, []


def compare(entry: ControlEntry, found: Figures) -> list[ControlProblem]:
    """Where ``found`` (the file as it arrived) differs from what ``entry`` says, each problem
    naming the file and both figures. A sum is required exactly when the file has an amount
    column; a sha256 is compared only when the entry gives one."""
    problems = []
    file = entry.file
    if found.rows != entry.rows:
        problems.append(
            ControlProblem(
                entry.row,
                "rows",
                f"{file}: expected {entry.rows:,} rows (control file), found {found.rows:,}",
            )
        )
    if found.amount_sum is None and entry.amount_sum is not None:
        problems.append(
            ControlProblem(
                entry.row,
                "amount_sum",
                f"{file} has no {AMOUNT} column; leave amount_sum empty",
            )
        )
    elif found.amount_sum is not None and entry.amount_sum is None:
        problems.append(
            ControlProblem(
                entry.row,
                "amount_sum",
                f"{file} has an {AMOUNT} column: its sum is required "
                f"(found {_sum_text(found.amount_sum)})",
            )
        )
    elif (
        found.amount_sum is not None
        and entry.amount_sum is not None
        and abs(found.amount_sum - entry.amount_sum) > SUM_TOLERANCE
    ):
        problems.append(
            ControlProblem(
                entry.row,
                "amount_sum",
                f"{file}: expected {AMOUNT} sum {entry.amount_sum} (control file), "
                f"found {_sum_text(found.amount_sum)}",
            )
        )
    if entry.sha256 is not None and found.sha256 is not None and found.sha256 != entry.sha256:
        problems.append(
            ControlProblem(
                entry.row,
                "sha256",
                f"{file}: expected sha256 {entry.sha256} (control file), found {found.sha256}",
            )
        )
    return problems


def write_control_file(directory: Path | str, frames: Mapping[str, pl.DataFrame]) -> Path:
    """Write ``directory/_control.csv`` for ``frames`` (file name -> the frame that file holds):
    rows, amount sum to the cent, and each file's SHA-256. Written atomically; returns its path.
    """
    directory = Path(directory)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for file, frame in frames.items():
        found = figures(frame, directory / file)
        total = "" if found.amount_sum is None else _sum_text(found.amount_sum)
        writer.writerow([file, found.rows, total, found.sha256])
    path = directory / CONTROL_CSV
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path


def read_data_file(path: Path) -> pl.DataFrame:
    """A data file (Parquet, CSV or JSON rows) as a frame, amounts as numbers, for checking its
    figures; raises polars' or the OS's error when it cannot be read."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".json":
        return pl.read_json(path)
    frame = pl.read_csv(path, infer_schema=False)
    if AMOUNT in frame.columns:
        frame = frame.with_columns(pl.col(AMOUNT).cast(pl.Float64))
    return frame


def verify_control(directory: Path | str) -> list[ControlProblem]:
    """Check every file ``directory``'s control file lists (an export, say) against it; empty
    when all match. Reads each listed file whole."""
    directory = Path(directory)
    paths = control_files(directory)
    if not paths:
        return [ControlProblem(None, None, f"no {CONTROL_CSV} or {CONTROL_JSON} in {directory}")]
    entries, problems = read_control(paths[0])
    for entry in entries:
        path = directory / entry.file
        if not path.is_file():
            problems.append(ControlProblem(entry.row, "file", f"{entry.file} does not exist"))
            continue
        try:
            frame = read_data_file(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            problems.append(ControlProblem(entry.row, "file", f"{entry.file} is unreadable: {exc}"))
            continue
        found = figures(frame, path if entry.sha256 else None)
        problems += compare(entry, found)
    return problems
