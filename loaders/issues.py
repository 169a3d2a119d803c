"""Validation issues: what is wrong with the input, where, and how many are listed per file.

Every issue names the file, the 1-based data row (header excluded) and the column; the reading,
value and reference checks of :mod:`loaders.sources` collect them in an :class:`IssueLog`, which
lists at most a cap per file and counts the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

# The 1-based data row (header excluded) that every frame read from a table file carries.
ROW = "__graphkit_row"


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
        # The extra columns of the tables that could be read (graphkit.extras.ExtraColumn).
        self.extras: list[Any] = []
        first = f"; first: {self.issues[0]}" if self.issues else ""
        super().__init__(f"{len(self.issues)} input error(s){first}")


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


class IssueLog:
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


def report_mask(
    file: str,
    frame: pl.DataFrame,
    mask: pl.Expr,
    column: str,
    message: Callable[..., str],
    log: IssueLog,
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
