"""Control totals (issue 17 item 2): ``_control.csv`` / ``_control.json`` beside the tables.

A matching control file passes; a mismatch in rows, amount sum or sha256 is refused, naming the
table file and both figures; sums agree within half a cent and no more; ``validate
--require-control`` refuses a directory without one; ``graphkit generate`` and ``graphkit
export`` write control files that verify. Expected figures come from the fixture's text and
frames counted by hand, not from the code under test.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli
from graphkit.control import (
    CONTROL_CSV,
    CONTROL_JSON,
    SUM_TOLERANCE,
    amount_sum,
    read_control,
    verify_control,
)
from graphkit.export import export_run
from loaders.sources import ValidationIssue, validate_directory, write_control
from tests.input_fixtures import VALID_ROWS, append_csv, write_valid_input
from tests.test_export import CUR_CLUSTERS, CUR_CUSTOMERS, make_run

# The amounts of tests/input_fixtures.py, added up by hand.
AMOUNT_SUMS = {
    "transfers.csv": Decimal("450000.00"),  # 250000 + 200000
    "repayments.csv": Decimal("1000.00"),  # 1000 + 0
    "guarantees.csv": Decimal("900000.00"),  # 500000 + 400000
    "drawdowns.parquet": Decimal("300000.00"),
}


def _control_rows(directory: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((directory / CONTROL_CSV).read_text())))


def _write_rows(directory: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["file", "rows", "amount_sum", "sha256"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (directory / CONTROL_CSV).write_text(buffer.getvalue())


def _edit(directory: Path, file: str, **changes: str) -> int:
    """Change fields of ``file``'s control row; returns that row's 1-based number."""
    rows = _control_rows(directory)
    number = next(i for i, r in enumerate(rows, start=1) if r["file"] == file)
    rows[number - 1].update(changes)
    _write_rows(directory, rows)
    return number


@pytest.fixture
def controlled(tmp_path: Path) -> Path:
    directory = write_valid_input(tmp_path / "in")
    write_control(directory)
    return directory


def test_written_control_lists_every_table_with_its_figures(controlled: Path) -> None:
    rows = {r["file"]: r for r in _control_rows(controlled)}
    files = {p.name for p in controlled.iterdir() if p.name != CONTROL_CSV}
    assert set(rows) == files
    for file, row in rows.items():
        assert int(row["rows"]) == VALID_ROWS[file.split(".")[0]], file
        expected = AMOUNT_SUMS.get(file)
        assert row["amount_sum"] == ("" if expected is None else str(expected)), file
        assert len(row["sha256"]) == 64
    assert validate_directory(controlled) == []
    assert validate_directory(controlled, require_control=True) == []


def test_a_row_lost_at_a_line_boundary_is_refused_only_with_a_control(controlled: Path) -> None:
    """Whole rows cut off leave every value valid: only the row count and sum can tell."""
    path = controlled / "transfers.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    row = _edit(controlled, "transfers.csv", sha256="")
    issues = validate_directory(controlled)
    assert issues == [
        ValidationIssue(
            CONTROL_CSV, row, "rows", "transfers.csv: expected 2 rows (control file), found 1"
        ),
        ValidationIssue(
            CONTROL_CSV,
            row,
            "amount_sum",
            "transfers.csv: expected amount sum 450000.00 (control file), found 250000.00",
        ),
    ]
    (controlled / CONTROL_CSV).unlink()
    assert validate_directory(controlled) == []


def test_a_number_cut_to_a_valid_prefix_is_refused_by_the_sum(tmp_path: Path) -> None:
    """A last column ``400000`` cut to ``40``: still a number, so only the control sum catches
    it."""
    directory = write_valid_input(tmp_path / "in")
    path = directory / "guarantees.csv"
    path.write_text(
        "guarantor_id,borrower_id,start,end,amount\n"
        "C1,C2,2020-01-01,2021-01-01,500000\nC2,C1,,,400000\n"
    )
    write_control(directory)
    path.write_text(path.read_text()[: -len("0000\n")])
    row = _edit(directory, "guarantees.csv", sha256="")
    issues = validate_directory(directory)
    assert [(i.file, i.row, i.column) for i in issues] == [(CONTROL_CSV, row, "amount_sum")]
    assert "expected amount sum 900000.00 (control file), found 500040.00" in issues[0].message


def test_the_cli_refuses_a_mismatch_and_writes_no_run(controlled: Path, tmp_path: Path) -> None:
    row = _edit(controlled, "customers.csv", rows="5")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.app, ["run", str(controlled), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "invalid input; nothing was written" in " ".join(result.output.split())
    assert not out.exists()
    shown = CliRunner().invoke(cli.app, ["validate", str(controlled), "--format", "json"])
    assert shown.exit_code == 2
    assert json.loads(shown.stdout) == [
        {
            "file": CONTROL_CSV,
            "row": row,
            "column": "rows",
            "message": "customers.csv: expected 5 rows (control file), found 4",
        }
    ]


@pytest.mark.parametrize(
    ("stated", "accepted"),
    [
        ("450000.00", True),
        ("450000", True),
        ("450000.005", True),  # exactly half a cent off
        ("449999.995", True),
        ("450000.006", False),
        ("449999.99", False),  # a cent
        ("450000.01", False),
        ("45000.00", False),
    ],
)
def test_sums_agree_within_half_a_cent(controlled: Path, stated: str, accepted: bool) -> None:
    assert Decimal("0.005") == SUM_TOLERANCE
    _edit(controlled, "transfers.csv", amount_sum=stated)
    issues = validate_directory(controlled)
    assert (issues == []) == accepted, issues


def test_sum_is_exact_over_many_cents() -> None:
    """A million amounts of 0.01 and two more sum exactly (a plain float64 sum gives
    1000010000.1930001)."""
    frame = pl.DataFrame({"amount": [0.01] * 1_000_000 + [1e9 + 0.07, 0.123]})
    assert amount_sum(frame).quantize(Decimal("0.001")) == Decimal("1000010000.193")
    assert amount_sum(pl.DataFrame({"other": [1.0]})) is None


def test_a_changed_byte_is_refused_by_the_sha256(controlled: Path) -> None:
    path = controlled / "customers.csv"
    path.write_bytes(path.read_bytes().replace("张三".encode(), "张四".encode()))
    issues = validate_directory(controlled)
    assert [(i.file, i.column) for i in issues] == [(CONTROL_CSV, "sha256")]
    assert issues[0].message.startswith("customers.csv: expected sha256 ")
    assert "(control file), found " in issues[0].message


def test_problems_of_the_control_file_itself(controlled: Path) -> None:
    rows = _control_rows(controlled)
    by_file = {r["file"]: r for r in rows}
    by_file["transfers.csv"]["amount_sum"] = ""
    by_file["customers.csv"]["amount_sum"] = "5.00"
    by_file["labels.csv"]["rows"] = "two"
    by_file["sectors.csv"]["sha256"] = "abc"
    rows.append({"file": "README.txt", "rows": "1", "amount_sum": "", "sha256": ""})
    rows.append({"file": "gone.csv", "rows": "1", "amount_sum": "", "sha256": ""})
    rows.append(dict(by_file["merchants.csv"]))
    (controlled / "README.txt").write_text("hello\n")
    _write_rows(controlled, rows)
    issues = {(i.row, i.column): i.message for i in validate_directory(controlled)}
    number = {r["file"]: i for i, r in enumerate(rows[:12], start=1)}
    assert issues == {
        (number["customers.csv"], "amount_sum"): (
            "customers.csv has no amount column; leave amount_sum empty"
        ),
        (number["sectors.csv"], "sha256"): "'abc' is not 64 hexadecimal digits",
        (number["transfers.csv"], "amount_sum"): (
            "transfers.csv has an amount column: its sum is required (found 450000.00)"
        ),
        (number["labels.csv"], "rows"): "'two' is not a row count (0, 1, 2, ...)",
        (13, "file"): (
            "README.txt is not a table file of the input contract (NAME.csv or NAME.parquet)"
        ),
        (14, "file"): "gone.csv is not in the directory",
        (15, "file"): "merchants.csv is listed twice (first at row 3)",
        (None, "file"): ("labels.csv is not listed; the control file must list every table file"),
    }


def test_unknown_columns_and_both_forms(controlled: Path) -> None:
    text = (controlled / CONTROL_CSV).read_text().replace("amount_sum", "amount", 1)
    (controlled / CONTROL_CSV).write_text(text)
    issues = validate_directory(controlled)
    assert [(i.file, i.row, i.column) for i in issues] == [(CONTROL_CSV, None, "amount")]
    assert "unknown column 'amount'; expected file, rows, amount_sum, sha256" in issues[0].message
    (controlled / CONTROL_JSON).write_text('{"files": []}')
    assert [i.message for i in validate_directory(controlled)] == [
        f"both {CONTROL_CSV} and {CONTROL_JSON} exist; keep one"
    ]


def test_json_form(controlled: Path) -> None:
    rows = _control_rows(controlled)
    (controlled / CONTROL_CSV).unlink()
    document = {
        "files": [
            {
                "file": r["file"],
                "rows": int(r["rows"]),
                "amount_sum": float(r["amount_sum"]) if r["amount_sum"] else None,
            }
            for r in rows
        ]
    }
    (controlled / CONTROL_JSON).write_text(json.dumps(document))
    assert validate_directory(controlled, require_control=True) == []
    document["files"][0]["rows"] = 3
    (controlled / CONTROL_JSON).write_text(json.dumps(document))
    assert validate_directory(controlled) == [
        ValidationIssue(
            CONTROL_JSON, 1, "rows", "customers.csv: expected 3 rows (control file), found 4"
        )
    ]


def test_require_control(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    runner = CliRunner()
    assert runner.invoke(cli.app, ["validate", str(directory)]).exit_code == 0
    result = runner.invoke(
        cli.app, ["validate", str(directory), "--require-control", "--format", "json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout) == [
        {
            "file": CONTROL_CSV,
            "row": None,
            "column": None,
            "message": (
                "a control file is required (--require-control) but neither _control.csv "
                "nor _control.json exists"
            ),
        }
    ]
    write_control(directory)
    assert runner.invoke(cli.app, ["validate", str(directory), "--require-control"]).exit_code == 0


def test_a_control_is_not_written_for_invalid_input(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    append_csv(directory, "transfers", "T3,A1,A2,5,2026-01-1\n")
    with pytest.raises(Exception, match="input error"):
        write_control(directory)
    assert not (directory / CONTROL_CSV).exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generate_writes_a_control_that_verifies(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        cli.app, ["generate", str(out), "--customers", "300", "--seed", "5", "--format", fmt, "-q"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["file"]: r for r in _control_rows(out)}
    tables = sorted(p.name for p in out.glob(f"[!_]*.{fmt}"))
    assert sorted(rows) == tables
    for file, row in rows.items():
        path = out / file
        frame = pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path)
        assert int(row["rows"]) == frame.height, file
        if "amount" in frame.columns:
            stated = Decimal(row["amount_sum"])
            assert abs(stated - Decimal(repr(frame.get_column("amount").sum()))) < Decimal("0.01")
        else:
            assert row["amount_sum"] == ""
    assert validate_directory(out, require_control=True) == []


def test_export_writes_a_control_that_verifies(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "run-2", CUR_CLUSTERS, CUR_CUSTOMERS)
    result = export_run(run, tmp_path / "out", "parquet,csv,json")
    entries, problems = read_control(result.directory / CONTROL_CSV)
    assert problems == []
    exported = sorted(
        p.name for p in result.directory.iterdir() if p.suffix in (".parquet", ".csv", ".json")
    )
    exported.remove("export.json")
    exported.remove(CONTROL_CSV)
    assert sorted(e.file for e in entries) == exported
    heights = {"cluster_risk": 5, "scores": 6, "customer_alerts": 6, "alerts": 3}
    assert {e.file: e.rows for e in entries} == {
        f"{name}.{fmt}": n for name, n in heights.items() for fmt in ("parquet", "csv", "json")
    }
    assert verify_control(result.directory) == []
    (result.directory / "alerts.csv").write_text("customer_id\nx\n")
    assert [(p.column, p.message.split(":")[0]) for p in verify_control(result.directory)] == [
        ("rows", "alerts.csv"),
        ("sha256", "alerts.csv"),
    ]


cents = st.integers(1, 10**11)  # 0.01 .. 1e9 in cents


@settings(max_examples=30, deadline=None)
@given(
    amounts=st.lists(cents, min_size=1, max_size=40),
    victim=st.integers(0, 39),
    shift=st.integers(-(10**6), 10**6).filter(lambda s: s != 0),
    lost=st.integers(1, 5),
)
def test_any_change_of_a_cent_or_a_row_is_refused(
    amounts: list[int], victim: int, shift: int, lost: int
) -> None:
    """Planted truth: transfers with random two-decimal amounts. Their control matches; moving
    one amount by any whole number of cents, or losing the last rows at a line boundary, is
    refused, and the stated sum is the exact decimal total."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_valid_input(Path(tmp) / "in")
        lines = [f"T{i},A1,A2,{Decimal(c) / 100},2020-01-01" for i, c in enumerate(amounts)]
        path = directory / "transfers.csv"
        path.write_text("transfer_id,src_account,dst_account,amount,ts\n" + "\n".join(lines) + "\n")
        write_control(directory)
        stated = next(r for r in _control_rows(directory) if r["file"] == "transfers.csv")
        assert Decimal(stated["amount_sum"]) == Decimal(sum(amounts)) / 100
        assert validate_directory(directory) == []

        i = victim % len(amounts)
        moved = max(amounts[i] + shift, 1)
        if moved != amounts[i]:
            changed = list(lines)
            changed[i] = f"T{i},A1,A2,{Decimal(moved) / 100},2020-01-01"
            path.write_text(path.read_text().replace(lines[i] + "\n", changed[i] + "\n"))
            columns = {i.column for i in validate_directory(directory)}
            assert columns == {"amount_sum", "sha256"}
            path.write_text(path.read_text().replace(changed[i] + "\n", lines[i] + "\n"))
        assert validate_directory(directory) == []

        kept = lines[: max(len(lines) - lost, 0)]
        path.write_text(
            "transfer_id,src_account,dst_account,amount,ts\n" + "".join(f"{x}\n" for x in kept)
        )
        columns = {i.column for i in validate_directory(directory)}
        assert "rows" in columns and "sha256" in columns
