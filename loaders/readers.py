"""Reading table files: CSV scanned as text with its physical lines checked, and Parquet.

A CSV source checks its header (encoding, delimiter, duplicate names), scans every column as text,
switches to lossy decoding or truncated long rows when polars meets them, and counts fields per
physical line to report ragged rows and never-closed quotes. A Parquet source keeps its stored
dtypes. Both hand back the values as written of the rows an issue reports.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from graphkit.extras import ExtraColumn
from loaders.issues import ROW, IssueLog

_LAST_NULL = "__graphkit_last_null"
_DELIMITERS = {";": "';'", "|": "'|'", "\t": "tab"}
_HEADER_BYTES = 1 << 20
# polars' CSV reader finds rows differently when it parses only some columns: a quote inside an
# unquoted value (x"y) can fail a projected read ("CSV malformed: expected 2 rows, actual 1") of a
# file the full read accepts (polars 1.44). Every CSV read parses every column, so the conversion
# and the look-up of the values as written always agree on the rows.
_EVERY_COLUMN = pl.QueryOptFlags(projection_pushdown=False)


@dataclass
class ReadTable:
    """A table read from its file: ``frame`` has the row number, converted columns and typed
    extras."""

    file: str
    frame: pl.DataFrame
    columns: tuple[str, ...]
    # Data records in the file, ragged rows included (``frame`` leaves those out).
    records: int
    # False when a file- or key-level problem makes the table unusable as a reference target.
    usable: bool = True
    # The extra columns (beyond the contract), typed, and whether the model reads them.
    extras: list[ExtraColumn] = field(default_factory=list)


class Reread(Exception):
    """The source changed how it reads (lossy decoding, ragged lines); plan the scan again."""


class CsvSource:
    """A comma-separated UTF-8 file with a header row, scanned with every column as text."""

    def __init__(self, path: Path, header: list[str], keep: dict[str, str], log: IssueLog):
        self.path = path
        self.header = header
        self.keep = keep  # positional column -> header name (first occurrence of each name)
        self.log = log
        self.schema: dict[str, pl.DataType] = {name: pl.String() for name in keep.values()}
        self.lossy = False
        self.truncated = False

    @classmethod
    def open(cls, path: Path, log: IssueLog) -> CsvSource | None:
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
        """Run the conversion; raises :class:`Reread` after switching to lossy decoding (invalid
        UTF-8) or to truncating long rows (reported as ragged rows), None when unreadable."""
        last = f"c{len(self.header) - 1}"
        query = self._scan().select(
            ROW,
            pl.col(last).is_null().alias(_LAST_NULL),
            *(pl.col(pos).alias(name) for pos, name in self.keep.items()),
        )
        try:
            return query.select(pl.col(_LAST_NULL), *exprs).collect(
                engine="streaming", optimizations=_EVERY_COLUMN
            )
        except pl.exceptions.ComputeError as exc:
            text = str(exc).lower()
            if "utf-8" in text and not self.lossy:
                self.lossy = True
                raise Reread from exc
            if "more fields" in text and not self.truncated:
                self.truncated = True
                raise Reread from exc
            opened = _unclosed_quote(self.path)
            if opened is not None:
                row, field = opened
                self.log.add(
                    self.path.name,
                    row,
                    None,
                    "a quoted value opened in this row is never closed "
                    f"(in column {self._name(field)}; is the file truncated?)",
                )
            else:
                self.log.add(self.path.name, None, None, f"unreadable CSV: {exc}")
            return None

    def ragged_rows(self, frame: pl.DataFrame, log: IssueLog) -> set[int]:
        """Rows whose field count differs from the header's, reported; only searched when the
        scan saw too many fields or a null in the last column (a short row reads as nulls)."""
        if not self.truncated and not frame.get_column(_LAST_NULL).any():
            return set()
        counts = _field_counts(self.path)
        ragged = counts.filter(pl.col("fields") != len(self.header))
        if ragged.height == 0:
            return set()
        log.add_counted(
            self.path.name,
            ragged.height,
            (
                (
                    row,
                    None,
                    "blank line" if fields == 0 else self._field_count_message(fields),
                )
                for row, fields in ragged.head(log.room(self.path.name)).iter_rows()
            ),
        )
        return set(ragged.get_column(ROW).to_list())

    def raw_rows(self, rows: list[int], columns: list[str]) -> pl.DataFrame:
        return _raw_rows(self._raw(), rows, columns, _EVERY_COLUMN)

    def _name(self, position: int) -> str:
        """The header name of field ``position`` (0-based), as the columns are named."""
        if position >= len(self.header):
            return f"field {position + 1} (beyond the header)"
        return self.header[position] or f"column_{position + 1}"

    def _field_count_message(self, fields: int) -> str:
        """A ragged row; a short one also says where it stops, since a row cut short by a
        truncated write stops inside or just after its last field."""
        expected = len(self.header)
        text = f"row has {fields} field(s); the header has {expected}"
        if fields > expected:
            return text
        missing = [self._name(i) for i in range(fields, expected)]
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        return f"{text} (it ends in column {self._name(fields - 1)}; no value for {shown})"


def _raw_rows(
    raw: pl.LazyFrame,
    rows: list[int],
    columns: list[str],
    optimizations: pl.QueryOptFlags | None = None,
) -> pl.DataFrame:
    """The values as written of ``columns`` on data rows ``rows`` (any order)."""
    wanted = pl.LazyFrame({ROW: rows}, schema={ROW: pl.UInt32})
    query = raw.select(ROW, *columns).join(wanted, on=ROW, how="semi")
    return query.collect(engine="streaming", optimizations=optimizations or pl.QueryOptFlags())


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


def _unclosed_quote(path: Path) -> tuple[int, int] | None:
    """(data row, 0-based field) where a quote opens that the file never closes, or None when
    the file's quotes pair up. The line where the running quote count last turned odd holds it;
    that line starts outside any quoted value, so its fields can be counted from its start."""
    quotes = pl.col("line").str.count_matches('"', literal=True).fill_null(0)
    odd = (quotes.cum_sum() % 2) == 1
    lines = physical_lines(path).select(ROW, odd.alias("odd")).collect(engine="streaming")
    if lines.height == 0 or not lines.get_column("odd")[-1]:
        return None
    opened = lines.filter(pl.col("odd") & ~pl.col("odd").shift(1, fill_value=False))
    row = int(opened.get_column(ROW)[-1])
    if row == 0:
        return None
    line = physical_lines(path).filter(pl.col(ROW) == row).collect().get_column("line")[0]
    return row, _field_of_last_open_quote(line or "")


def _field_of_last_open_quote(line: str) -> int:
    """The 0-based field in which the last quoted value of ``line`` opens (commas inside quoted
    values do not separate fields)."""
    field = opened_in = 0
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
            if quoted:
                opened_in = field
        elif char == "," and not quoted:
            field += 1
    return opened_in


def _field_counts(path: Path) -> pl.DataFrame:
    """Fields per data record (ROW, fields): vectorised per line when no quoted value spans
    lines, else by Python's csv module (exact, slower)."""
    lines = physical_lines(path).filter(pl.col(ROW) > 0).collect(engine="streaming")
    quotes = lines.get_column("line").str.count_matches('"', literal=True).fill_null(0)
    if not (quotes % 2 == 1).any():
        # A quote opens a quoted value only at the start of a field (RFC 4180, as polars and
        # Python's csv read it); one inside an unquoted value (x"y) is a literal character.
        unquoted = pl.col("line").str.replace_all(r'(^|,)"(?:[^"]|"")*"', "${1}")
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


class ParquetSource:
    """A Parquet file; its columns keep their stored dtypes until converted."""

    lossy = False

    def __init__(self, path: Path, schema: dict[str, pl.DataType], log: IssueLog) -> None:
        self.path = path
        self.schema = schema
        self.log = log

    @classmethod
    def open(cls, path: Path, log: IssueLog) -> ParquetSource | None:
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

    def ragged_rows(self, frame: pl.DataFrame, log: IssueLog) -> set[int]:
        return set()

    def raw_rows(self, rows: list[int], columns: list[str]) -> pl.DataFrame:
        return _raw_rows(self._raw(), rows, columns)
