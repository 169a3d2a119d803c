"""Truncated deliveries and strict values (issue 17 item 1).

A file cut mid-write must not pass: every ``tests/data/bad/truncated-*`` case (a row cut inside a
date, a datetime, a number, an integer, a boolean, an id, a choice; a missing final field; a quoted
value left open) exits 2 through ``graphkit run`` naming file, row and column, and writes no run
directory. The values the contract accepts are pinned against hand-written lists: ISO-8601 as
written (four-digit year, two-digit month, day, hour, minute, second, offsets within -12:00 and
+14:00) and numbers that parse whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import cli
from loaders.sources import read_input, validate_directory
from tests.input_fixtures import write_valid_input

CORPUS = Path(__file__).parent / "data" / "bad"
REPO = Path(__file__).resolve().parents[1]
TRUNCATED = sorted(p for p in CORPUS.iterdir() if p.name.startswith("truncated-") and p.is_dir())


def test_the_corpus_covers_a_cut_inside_each_column_type() -> None:
    names = {p.name for p in TRUNCATED}
    for kind in ("date", "datetime-date", "datetime-time", "number-after-point", "integer"):
        assert f"truncated-in-{kind}" in names
    for kind in ("boolean", "id", "choice", "missing-final-field", "open-quote-mid-row"):
        assert f"truncated-{kind}" in names or f"truncated-in-{kind}" in names


@pytest.mark.parametrize("case", TRUNCATED, ids=lambda p: p.name)
def test_truncated_delivery_exits_2_with_file_row_and_column(case: Path, tmp_path: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.app, ["run", str(case), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "invalid input; nothing was written" in " ".join(result.output.split())
    assert expected["file"] in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

    shown = CliRunner().invoke(cli.app, ["validate", str(case), "--format", "json"])
    assert shown.exit_code == 2
    first = json.loads(shown.stdout)[0]
    assert (first["file"], first["row"], first["column"]) == (
        expected["file"],
        expected["row"],
        expected["column"],
    )
    assert expected["message"] in first["message"]
    # A file-level case (an unreadable Parquet footer) has no row; every CSV cut names its row
    # and its column, in the column field or, for a row that lost fields, in the message.
    if expected["file"].endswith(".csv"):
        assert first["row"] is not None
        assert first["column"] is not None or "in column " in first["message"]


def test_the_issue_example_through_the_installed_script(tmp_path: Path) -> None:
    """``...,300.0,2026-01-1``: the transfers file of issue 17, cut in its last row."""
    directory = write_valid_input(tmp_path / "in")
    path = directory / "transfers.csv"
    path.write_bytes(path.read_bytes() + b"T3,A1,A2,300.0,2026-01-1")
    script = REPO / ".venv" / "bin" / "graphkit"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]
    out = tmp_path / "run"
    done = subprocess.run(
        [*command, "run", str(directory), "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "2026-01-1" in done.stdout and "transfers.csv" in done.stdout
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# --- strict values: accepted and refused spellings -----------------------------------------

DATES = {
    "2024-03-01": date(2024, 3, 1),
    " 2024-03-01 ": date(2024, 3, 1),
    "2024-03-01T23:30:00-02:00": date(2024, 3, 2),  # a datetime keeps its UTC date
}
BAD_DATES = ["2024-3-01", "2024-03-1", "24-03-01", "+2024-03-01", "2024-03-01x", "2024-03-0"]
BAD_DATES += ["２０２４-03-01", "2024/03/01", "2024-02-30", "2024-03-01T9:00"]

DATETIMES = {
    "2024-03-01T09:30:00": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    "2024-03-01 09:30:00": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    "2024-03-01 09:30": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    "2024-03-01": datetime(2024, 3, 1, tzinfo=UTC),
    "2024-03-01T09:30:00.5Z": datetime(2024, 3, 1, 9, 30, 0, 500000, tzinfo=UTC),
    "2024-03-01t09:30:00z": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
    "2024-03-01T09:30:00+0800": datetime(2024, 3, 1, 1, 30, tzinfo=UTC),
    "2024-03-01T09:30+08:00": datetime(2024, 3, 1, 1, 30, tzinfo=UTC),
    "2024-03-01T09:30:00+14:00": datetime(2024, 2, 29, 19, 30, tzinfo=UTC),
    "2024-03-01T09:30:00-12:00": datetime(2024, 3, 1, 21, 30, tzinfo=UTC),
}
BAD_DATETIMES = [
    "2024-03-01T9:30:00",
    "2024-03-01T09:3",
    "2024-03-01T09:30:0",
    "2024-03-01T09:30:00.",
    "2024-03-01T24:00:00",
    "2024-03-01T09:60:00",
    "2024-03-01T09:30:60",
    "2024-3-1T09:30:00",
    "2024-03-01T09:30:00+15:00",
    "2024-03-01T09:30:00+08",
    "2024-03-01T09:30:00+08:0",
    "2024-03-01T09:30:00 +08:00",
    "2024-03-01T09:30:00+8:00",
    "12024-03-01T09:30:00",
]
NUMBERS = {"300.0": 300.0, ".5": 0.5, "1e6": 1e6, "+3.5": 3.5, "5E-3": 5e-3, " 7 ": 7.0}
NUMBERS |= {"5.e3": 5000.0}  # a point then an exponent: not a cut (a cut only drops a suffix)
BAD_NUMBERS = ["300.", " 300. ", "1.5e", "1e", "-", "+", "12abc", "1 000", "1,5", "0x10", "."]


def _one_column_input(tmp_path: Path, column: str, values: list[str], parquet: bool) -> Path:
    """customers plus guarantees whose ``column`` (start / amount) holds ``values``; customers'
    created_at holds them when ``column`` is created_at."""
    directory = tmp_path / "in"
    directory.mkdir(parents=True)
    n = len(values)
    customers = {"customer_id": [f"C{i}" for i in range(n + 1)], "kind": ["person"] * (n + 1)}
    guarantees = {
        "guarantor_id": [f"C{i}" for i in range(n)],
        "borrower_id": [f"C{i + 1}" for i in range(n)],
        "amount": ["1"] * n,
    }
    if column == "created_at":
        customers["created_at"] = [*values, ""]
    else:
        guarantees[column] = values
    for name, data in (("customers", customers), ("guarantees", guarantees)):
        frame = pl.DataFrame(data, schema=dict.fromkeys(data, pl.String))
        if parquet:
            frame.write_parquet(directory / f"{name}.parquet")
        else:
            frame.write_csv(directory / f"{name}.csv")
    return directory


def _read_column(directory: Path, column: str) -> list[object]:
    tables = read_input(directory).tables
    frame = tables["customers"] if column == "created_at" else tables["guarantees"]
    return frame.get_column(column).to_list()


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet-text"])
@pytest.mark.parametrize(
    ("column", "good", "bad"),
    [
        ("start", DATES, BAD_DATES),
        ("created_at", DATETIMES, BAD_DATETIMES),
        ("amount", NUMBERS, BAD_NUMBERS),
    ],
    ids=["date", "datetime", "number"],
)
def test_values_are_accepted_only_as_written_in_full(
    tmp_path: Path, column: str, good: dict[str, object], bad: list[str], parquet: bool
) -> None:
    accepted = _one_column_input(tmp_path / "good", column, list(good), parquet)
    values = _read_column(accepted, column)
    assert values[: len(good)] == list(good.values())

    refused = _one_column_input(tmp_path / "bad", column, bad, parquet)
    issues = validate_directory(refused)
    suffix = "parquet" if parquet else "csv"
    file = f"customers.{suffix}" if column == "created_at" else f"guarantees.{suffix}"
    flagged = [(i.file, i.row, i.column) for i in issues if i.column == column]
    assert flagged == [(file, row, column) for row in range(1, len(bad) + 1)], issues
    for issue, value in zip([i for i in issues if i.column == column], bad, strict=True):
        assert repr(value) in issue.message or repr(value.strip()) in issue.message
