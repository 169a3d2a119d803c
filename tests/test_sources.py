"""The happy path of loaders.sources: a valid directory (CSV + Parquet, BOM, Chinese text) loads
with exact dtypes, values and row counts; round trips through CSV and Parquet are exact."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli
from graphkit.schema import TABLES
from loaders.frames import make_tables
from loaders.sources import issues_frame, read_input, validate_directory
from tests.input_fixtures import VALID_ROWS, replace_csv, write_valid_input


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def start(self, task: str, total: int | None = None) -> None:
        self.events.append(("start", task))

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        self.events.append(("finish", task))

    def log(self, message: str) -> None:
        pass


def test_valid_directory_loads_every_table_typed(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    progress = RecordingProgress()
    loaded = read_input(directory, progress=progress)

    assert set(loaded.tables) == set(TABLES)
    for name, table in TABLES.items():
        frame = loaded.tables[name]
        assert frame.height == VALID_ROWS[name], name
        assert dict(frame.schema) | {} == table.polars_schema | {
            c: frame.schema[c] for c in frame.columns if c not in table.polars_schema
        }
        assert frame.columns[: len(table.columns)] == [c.name for c in table.columns]
    assert {(f.table, f.format, f.rows) for f in loaded.files} == {
        (name, "parquet" if name in ("accounts", "drawdowns", "shareholdings") else "csv", rows)
        for name, rows in VALID_ROWS.items()
    }
    assert ("start", "read customers.csv") in progress.events
    assert ("finish", "read accounts.parquet") in progress.events
    assert ("finish", "check references") in progress.events


def test_values_are_parsed_exactly(tmp_path: Path) -> None:
    tables = read_input(write_valid_input(tmp_path / "in")).tables
    customers = tables["customers"]
    # The BOM is not part of the first column's name; the extra column stays, typed by its
    # values (yes/no: a boolean).
    assert customers.columns[0] == "customer_id"
    assert customers.get_column("vip").to_list() == [True, None, None, False]
    assert customers.schema["vip"] == pl.Boolean
    assert customers.get_column("name").to_list() == [
        "华融实业有限公司",
        "Acme, Ltd.",
        "张三",
        "李四",
    ]
    assert customers.get_column("registered_capital").to_list() == [5e6, 1e6, None, None]
    assert customers.get_column("created_at").to_list() == [
        datetime(2020, 1, 1, 19, 4, 5, tzinfo=UTC),
        datetime(2020, 1, 2, tzinfo=UTC),
        datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC),
        None,
    ]
    assert tables["transfers"].get_column("ts").to_list() == [
        datetime(2020, 2, 2, 10, tzinfo=UTC),
        datetime(2020, 2, 3, 3, 0, 0, 500000, tzinfo=UTC),
    ]
    assert tables["sectors"].get_column("banned").to_list() == [True, False]
    assert tables["labels"].get_column("defaulted").to_list() == [False, True]
    assert tables["labels"].get_column("default_date").to_list() == [None, date(2020, 9, 1)]
    assert tables["repayments"].get_column("days_past_due").to_list() == [1, None]
    assert tables["repayments"].get_column("paid_at").to_list() == [
        datetime(2020, 3, 2, 10, tzinfo=UTC),
        None,
    ]
    # A naive Parquet datetime is taken as UTC.
    assert tables["drawdowns"].get_column("ts").to_list() == [datetime(2020, 2, 2, 9, tzinfo=UTC)]
    assert tables["credit_lines"].get_column("status").to_list() == ["active", None]


def test_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    replace_csv(directory, "labels", "customer_id,defaulted,default_date")
    loaded = read_input(directory)
    assert loaded.tables["labels"].height == 0
    assert loaded.tables["labels"].schema == TABLES["labels"].polars_schema


def test_missing_optional_tables_are_empty_and_typed(tmp_path: Path) -> None:
    directory = tmp_path / "in"
    directory.mkdir()
    replace_csv(directory, "customers", "customer_id,kind\nC1,person\n")
    (directory / "_truth").mkdir()
    (directory / "_truth" / "circles.parquet").write_bytes(b"ignored")
    (directory / "notes.csv").write_text("not a table")
    loaded = read_input(directory)
    assert [f.table for f in loaded.files] == ["customers"]
    for name, table in TABLES.items():
        assert loaded.tables[name].schema == table.polars_schema
    assert loaded.tables["transfers"].height == 0


def test_crlf_quotes_and_whitespace_are_read(tmp_path: Path) -> None:
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "customers.csv").write_bytes(
        b"customer_id , kind,name,registered_capital\r\n"
        b'C1,enterprise,"A ""quoted"", name", 12.5 \r\n'
        b'C2,person,"two\r\nlines",\r\n'
    )
    customers = read_input(directory).tables["customers"]
    assert customers.get_column("customer_id").to_list() == ["C1", "C2"]
    assert customers.get_column("name").to_list() == ['A "quoted", name', "two\r\nlines"]
    assert customers.get_column("registered_capital").to_list() == [12.5, None]


def test_typed_parquet_columns_are_converted(tmp_path: Path) -> None:
    directory = tmp_path / "in"
    directory.mkdir()
    pl.DataFrame(
        {
            "customer_id": [101, 102],
            "kind": pl.Series(["person", "enterprise"], dtype=pl.Categorical),
            "created_at": pl.Series([datetime(2020, 1, 1, 8), datetime(2020, 1, 2)])
            .dt.cast_time_unit("ms")
            .dt.replace_time_zone("Asia/Shanghai"),
            "registered_capital": pl.Series([1, 2], dtype=pl.Int32),
        }
    ).write_parquet(directory / "customers.parquet")
    pl.DataFrame(
        {"customer_id": [101, 102], "defaulted": [1, 0], "default_date": [date(2020, 5, 1), None]}
    ).write_parquet(directory / "labels.parquet")
    tables = read_input(directory).tables
    customers = tables["customers"]
    assert customers.get_column("customer_id").to_list() == ["101", "102"]
    assert customers.get_column("created_at").to_list() == [
        datetime(2020, 1, 1, 0, tzinfo=UTC),
        datetime(2020, 1, 1, 16, tzinfo=UTC),
    ]
    assert customers.get_column("registered_capital").to_list() == [1.0, 2.0]
    assert tables["labels"].get_column("defaulted").to_list() == [True, False]


def test_cli_validate_valid_directory(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    result = CliRunner().invoke(cli.app, ["validate", str(directory), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert validate_directory(directory) == []


def test_issues_frame_schema() -> None:
    frame = issues_frame([])
    assert frame.schema == {
        "file": pl.String,
        "row": pl.Int64,
        "column": pl.String,
        "message": pl.String,
    }


timestamps = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
amounts = st.floats(min_value=1e-6, max_value=1e15, allow_nan=False, allow_infinity=False)


@given(
    rows=st.lists(st.tuples(amounts, timestamps), min_size=0, max_size=20),
    as_parquet=st.booleans(),
)
def test_round_trip_is_exact(tmp_path_factory, rows, as_parquet: bool) -> None:
    directory = tmp_path_factory.mktemp("rt")
    n = len(rows)
    tables = make_tables(
        customers={"customer_id": ["客户1"], "kind": ["person"]},
        accounts={"account_id": ["a", "b"], "owner_id": ["客户1", "客户1"]},
        transfers={
            "transfer_id": [f"t{i}" for i in range(n)],
            "src_account": ["a"] * n,
            "dst_account": ["b"] * n,
            "amount": [r[0] for r in rows],
            "ts": pl.Series([r[1] for r in rows], dtype=pl.Datetime("us", "UTC")),
        },
    )
    for name in ("customers", "accounts", "transfers"):
        if as_parquet:
            tables[name].write_parquet(directory / f"{name}.parquet")
        else:
            tables[name].write_csv(directory / f"{name}.csv")
    loaded = read_input(directory).tables
    for name in ("customers", "accounts", "transfers"):
        assert loaded[name].equals(tables[name]), name
