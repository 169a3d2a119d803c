"""Bad input of every kind: each case breaks one thing in a valid directory and asserts the exact
file, row and column of every issue; plus the committed corpus in tests/data/bad/ and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import cli
from loaders.sources import InputError, ValidationIssue, read_input, validate_directory
from tests.input_fixtures import append_csv, replace_csv, write_valid_input

CORPUS = Path(__file__).parent / "data" / "bad"
REPO = Path(__file__).resolve().parents[1]

Expected = tuple[str, int | None, str | None, str]


def _bytes_replace(name: str, old: bytes, new: bytes) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        path = d / name
        data = path.read_bytes()
        assert old in data
        path.write_bytes(data.replace(old, new))

    return mutate


def _parquet(name: str, data: dict[str, list[object]]) -> Callable[[Path], None]:
    return lambda d: pl.DataFrame(data).write_parquet(d / f"{name}.parquet")


DRAWDOWN = {"drawdown_id": ["D1", "D2"], "line_id": ["L1", "L1"], "account_id": ["A1", "A1"]}
TS = {"ts": ["2020-01-01", "2020-01-02T10:00:00"]}

# (case id, mutation of the valid directory, every expected issue: file, row, column, substring)
CASES: list[tuple[str, Callable[[Path], None], list[Expected]]] = [
    (
        "customers-missing",
        lambda d: (d / "customers.csv").unlink(),
        [("customers.csv", None, None, "mandatory table 'customers' is missing")],
    ),
    (
        "csv-and-parquet",
        _parquet("transfers", {"transfer_id": ["T9"]}),
        [("transfers.csv", None, None, "both transfers.csv and transfers.parquet exist")],
    ),
    (
        "zero-byte-file",
        lambda d: replace_csv(d, "labels", ""),
        [("labels.csv", None, None, "file is empty (0 bytes)")],
    ),
    (
        "non-utf8-value",
        _bytes_replace("customers.csv", "张三".encode(), b"\xd5\xc5\xc8\xfd"),
        [("customers.csv", 3, "name", "invalid UTF-8 bytes")],
    ),
    (
        "non-utf8-header",
        _bytes_replace("merchants.csv", b"sector", b"s\xe9ctor"),
        [("merchants.csv", None, None, "header row has invalid UTF-8 bytes at byte 13")],
    ),
    (
        "semicolon-delimiter",
        lambda d: replace_csv(d, "merchants", "merchant_id;sector\nM1;SEC1\nM2;GEN\n"),
        [("merchants.csv", None, None, "looks like ';'-separated")],
    ),
    (
        "tab-delimiter",
        lambda d: replace_csv(d, "merchants", "merchant_id\tsector\nM1\tSEC1\nM2\tGEN\n"),
        [("merchants.csv", None, None, "looks like tab-separated")],
    ),
    (
        "missing-required-column",
        lambda d: replace_csv(
            d, "transfers", "transfer_id,src_account,dst_account,ts\nT1,A1,A2,2020-02-02\n"
        ),
        [("transfers.csv", None, "amount", "required column is missing")],
    ),
    (
        "duplicate-header",
        lambda d: replace_csv(
            d, "merchants", "merchant_id,sector,sector\nM1,SEC1,GEN\nM2,GEN,GEN\n"
        ),
        [("merchants.csv", None, "sector", "duplicate column name (header fields 2 and 3)")],
    ),
    (
        "short-row",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,5\n"),
        [("transfers.csv", 3, None, "row has 4 field(s); the header has 5")],
    ),
    (
        "long-row",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,5,2020-01-01,extra\n"),
        [("transfers.csv", 3, None, "row has 6 field(s); the header has 5")],
    ),
    (
        "ragged-row-after-multiline-value",
        lambda d: append_csv(d, "customers", 'C9,person,"two\nlines",,,,,\nC10,person\n'),
        [("customers.csv", 6, None, "row has 2 field(s); the header has 8")],
    ),
    (
        "blank-line",
        lambda d: append_csv(d, "guarantees", "\nC3,C1,5,,\n"),
        [("guarantees.csv", 3, None, "blank line")],
    ),
    (
        "unparsable-number",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,12abc,2020-01-01\n"),
        [("transfers.csv", 3, "amount", "'12abc' is not a number")],
    ),
    (
        "unparsable-boolean",
        lambda d: append_csv(d, "labels", "C3,maybe,\n"),
        [("labels.csv", 3, "defaulted", "'maybe' is not a boolean")],
    ),
    (
        "impossible-date",
        lambda d: append_csv(d, "repayments", "L1,2020-02-30,,5,\n"),
        [("repayments.csv", 3, "due_date", "'2020-02-30' is not an ISO-8601 date")],
    ),
    (
        "unparsable-datetime",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,5,02/03/2020 10:00\n"),
        [("transfers.csv", 3, "ts", "'02/03/2020 10:00' is not an ISO-8601 date or datetime")],
    ),
    (
        "empty-required-value",
        lambda d: append_csv(d, "transfers", "T3,A1,,5,2020-01-01\n"),
        [("transfers.csv", 3, "dst_account", "empty value in required column")],
    ),
    (
        "nan-amount",
        lambda d: append_csv(d, "guarantees", "C3,C1,NaN,,\n"),
        [("guarantees.csv", 3, "amount", "'NaN' is not a finite number")],
    ),
    (
        "infinite-amount",
        lambda d: append_csv(d, "credit_lines", "L3,C2,-inf,,\n"),
        [("credit_lines.csv", 3, "limit", "'-inf' is not a finite number")],
    ),
    (
        "float-overflow",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,1e400,2020-01-01\n"),
        [("transfers.csv", 3, "amount", "'1e400' is beyond the float64 range")],
    ),
    (
        "int-overflow",
        lambda d: append_csv(d, "repayments", "L1,2020-05-01,,5,99999999999999999999\n"),
        [("repayments.csv", 3, "days_past_due", "is beyond the int64 range")],
    ),
    (
        "not-an-integer",
        lambda d: append_csv(d, "repayments", "L1,2020-05-01,,5,1.5\n"),
        [("repayments.csv", 3, "days_past_due", "'1.5' is not an integer")],
    ),
    (
        "kind-not-a-choice",
        lambda d: append_csv(d, "customers", "C5,company,x,,,,,\n"),
        [("customers.csv", 5, "kind", "'company' is not one of: person, enterprise")],
    ),
    (
        "negative-amount",
        lambda d: append_csv(d, "transfers", "T3,A1,A2,-5,2020-01-01\n"),
        [("transfers.csv", 3, "amount", "-5.0 must be > 0")],
    ),
    (
        "zero-limit",
        lambda d: append_csv(d, "credit_lines", "L3,C2,0,,\n"),
        [("credit_lines.csv", 3, "limit", "0.0 must be > 0")],
    ),
    (
        "negative-repayment",
        lambda d: append_csv(d, "repayments", "L1,2020-05-01,,-1,\n"),
        [("repayments.csv", 3, "amount", "-1.0 must be >= 0")],
    ),
    (
        "share-above-one",
        _parquet("shareholdings", {"holder_id": ["C3"], "company_id": ["C1"], "share": [1.5]}),
        [("shareholdings.parquet", 1, "share", "1.5 must be in (0, 1]")],
    ),
    (
        "duplicate-key",
        lambda d: append_csv(d, "customers", "C2,enterprise,dup,,,,,\n"),
        [("customers.csv", 5, "customer_id", "duplicate key customer_id='C2' (first at row 2)")],
    ),
    (
        "duplicate-composite-key",
        lambda d: append_csv(d, "device_links", "C3,DEV1,,\n"),
        [
            (
                "device_links.csv",
                3,
                "customer_id,device_id",
                "duplicate key (customer_id, device_id)=('C3', 'DEV1') (first at row 1)",
            )
        ],
    ),
    (
        "dangling-reference",
        lambda d: append_csv(d, "transfers", "T3,A1,A9,5,2020-01-01\n"),
        [("transfers.csv", 3, "dst_account", "dangling reference 'A9'")],
    ),
    (
        "dangling-owner",
        _parquet("accounts", {"account_id": ["A1", "A2"], "owner_id": ["C1", "X9"]}),
        [
            (
                "accounts.parquet",
                2,
                "owner_id",
                "'X9': not found in customers.customer_id or merchants.merchant_id",
            ),
            # The valid transfers and shareholdings refer to accounts that are gone now.
            ("transfers.csv", 2, "dst_account", "dangling reference 'A4'"),
        ],
    ),
    (
        "ambiguous-owner",
        lambda d: append_csv(d, "merchants", "C3,GEN\n"),
        [("accounts.parquet", 3, "owner_id", "ambiguous reference 'C3'")],
    ),
    (
        "self-guarantee",
        lambda d: append_csv(d, "guarantees", "C3,C3,5,,\n"),
        [("guarantees.csv", 3, "guarantor_id", "guarantor_id equals borrower_id ('C3')")],
    ),
    (
        "self-shareholding",
        _parquet("shareholdings", {"holder_id": ["C1"], "company_id": ["C1"], "share": [0.5]}),
        [("shareholdings.parquet", 1, "holder_id", "holder_id equals company_id ('C1')")],
    ),
    (
        "shares-in-a-person",
        _parquet("shareholdings", {"holder_id": ["C1"], "company_id": ["C3"], "share": [0.5]}),
        [("shareholdings.parquet", 1, "company_id", "'C3' is a person, not an enterprise")],
    ),
    (
        "parquet-text-amount",
        _parquet("drawdowns", DRAWDOWN | {"amount": ["5.5", "lots"]} | TS),
        [("drawdowns.parquet", 2, "amount", "'lots' is not a number")],
    ),
    (
        "parquet-boolean-amount",
        _parquet("drawdowns", DRAWDOWN | {"amount": [True, False]} | TS),
        [("drawdowns.parquet", None, "amount", "stored as Boolean; expected a number")],
    ),
    (
        "parquet-corrupt",
        lambda d: (d / "drawdowns.parquet").write_bytes(b"PAR1 not really parquet"),
        [("drawdowns.parquet", None, None, "not a readable Parquet file")],
    ),
    (
        "missing-optional-target-table",
        lambda d: (d / "credit_lines.csv").unlink(),
        [
            ("drawdowns.parquet", 1, "line_id", "dangling reference 'L1'"),
            ("repayments.csv", 1, "line_id", "dangling reference 'L1'"),
            ("repayments.csv", 2, "line_id", "dangling reference 'L2'"),
        ],
    ),
]


def _triples(issues: list[ValidationIssue]) -> list[tuple[str, int | None, str | None]]:
    return [(i.file, i.row, i.column) for i in issues]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, mutate: Callable[[Path], None], expected: list[Expected]
) -> None:
    directory = write_valid_input(tmp_path / "in")
    mutate(directory)
    issues = validate_directory(directory)
    assert sorted(_triples(issues), key=str) == sorted([e[:3] for e in expected], key=str), issues
    got = {(i.file, i.row, i.column): i.message for i in issues}
    for file, row, column, text in expected:
        assert text in got[(file, row, column)], got[(file, row, column)]


def test_there_are_at_least_twenty_kinds() -> None:
    assert len({c[0] for c in CASES}) >= 20


def test_directory_missing_and_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert validate_directory(missing) == [
        ValidationIssue(str(missing), None, None, "directory not found")
    ]
    plain = tmp_path / "file"
    plain.write_text("x")
    assert validate_directory(plain) == [ValidationIssue(str(plain), None, None, "not a directory")]


def test_all_issues_of_all_files_are_reported_together(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    append_csv(directory, "transfers", "T3,A1,A2,abc,2020-01-01\nT4,A1,A2,-1,never\n")
    append_csv(directory, "labels", "C3,perhaps,\n")
    with pytest.raises(InputError) as info:
        read_input(directory)
    assert _triples(info.value.issues) == [
        ("transfers.csv", 3, "amount"),
        ("transfers.csv", 4, "ts"),
        ("transfers.csv", 4, "amount"),
        ("labels.csv", 3, "defaulted"),
    ]
    assert str(info.value).startswith("4 input error(s); first: transfers.csv row 3 column amount")


def test_issues_are_capped_per_file_with_a_final_count(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    append_csv(
        directory, "transfers", "".join(f"X{i},A1,A2,-{i + 1},2020-01-01\n" for i in range(30))
    )
    issues = validate_directory(directory, max_issues_per_file=10)
    assert _triples(issues[:10]) == [("transfers.csv", r, "amount") for r in range(3, 13)]
    assert issues[10] == ValidationIssue("transfers.csv", None, None, "... and 20 more issue(s)")
    assert len(issues) == 11


def _corpus_cases() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_dir())


def test_corpus_has_at_least_thirty_cases() -> None:
    assert len(_corpus_cases()) >= 30


@pytest.mark.parametrize("case", _corpus_cases(), ids=lambda p: p.name)
def test_corpus_case(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    issues = validate_directory(case)
    assert len(issues) == expected["count"], issues
    first = issues[0]
    assert (first.file, first.row, first.column) == (
        expected["file"],
        expected["row"],
        expected["column"],
    ), issues
    assert expected["message"] in first.message


@pytest.mark.parametrize("case", _corpus_cases()[:3], ids=lambda p: p.name)
def test_cli_validate_exits_2_without_traceback(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    result = CliRunner().invoke(cli.app, ["validate", str(case), "--format", "json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    rows = json.loads(result.stdout)
    assert len(rows) == expected["count"]
    assert rows[0]["file"] == expected["file"] and rows[0]["row"] == expected["row"]


def test_installed_script_exits_2_without_traceback() -> None:
    case = _corpus_cases()[0]
    script = REPO / ".venv" / "bin" / "graphkit"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "import cli; cli.main()"]
    done = subprocess.run(
        [*command, "validate", str(case)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "input error" in done.stdout
