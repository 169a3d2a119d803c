"""Bring-your-own features: extra columns typed from CSV, listed by ``validate`` and the manifest,
read by the model, and alike from CSV and Parquet (issue #16, item 1)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import cli
from gnn.features import customer_features
from graphkit.graph import RiskGraph
from graphkit.pipeline import run_pipeline
from loaders.sources import inspect_directory, read_input
from tests.extras_fixtures import (
    BAD_ROW,
    DECOYS,
    heldout_aurocs,
    own_feature_input,
    run_config,
)
from tests.input_fixtures import replace_csv, write_valid_input
from tests.scoring_fixtures import one_thread

# Every kind of extra column, four data rows each (the valid input's four customers).
EXTRA_COLUMNS: dict[str, list[str]] = {
    "int_col": ["1", "2", "", "+4"],
    "num_col": ["1.5", "2e3", " 3 ", "-0.25"],
    "cut_col": ["1", "2.", "3", "4"],
    "nan_col": ["1", "NaN", "3", "4"],
    "bool_col": ["yes", "No", "TRUE", "0"],
    "date_col": ["2024-01-01", "", "2024-02-29", "2023-12-31"],
    "dt_col": [
        "2024-01-01T10:00:00Z",
        "2024-01-01 10:00",
        "2024-01-02",
        "2024-01-01T10:00:00.5+08:00",
    ],
    "bad_date": ["2024-01-01", "2024-02-30", "2024-03-01", "2024-03-02"],
    "mixed": ["10", "abc", "30", "x"],
    "const_col": ["7", "7", "7", ""],
    "empty_col": ["", "", "", ""],
}
CUSTOMERS = [
    "C1,enterprise,Acme,manufacturing,上海,5000000,2020-01-02",
    "C2,enterprise,Beta,trade,北京,1e6,2020-01-02",
    "C3,person,张三,,,,2021-03-04",
    "P4,person,李四,,,,",
]


def _with_extras(directory: Path) -> Path:
    header = "customer_id,kind,name,sector,region,registered_capital,created_at,"
    lines = [header + ",".join(EXTRA_COLUMNS)]
    for i, row in enumerate(CUSTOMERS):
        lines.append(row + "," + ",".join(v[i] for v in EXTRA_COLUMNS.values()))
    replace_csv(write_valid_input(directory), "customers", "\n".join(lines) + "\n")
    return directory


def test_extra_columns_are_typed_by_their_values(tmp_path: Path) -> None:
    loaded = read_input(_with_extras(tmp_path / "in"))
    customers = loaded.tables["customers"]
    schema = customers.schema
    assert schema["int_col"] == pl.Int64
    assert customers.get_column("int_col").to_list() == [1, 2, None, 4]
    assert schema["num_col"] == pl.Float64
    assert customers.get_column("num_col").to_list() == [1.5, 2000.0, 3.0, -0.25]
    assert schema["bool_col"] == pl.Boolean
    assert customers.get_column("bool_col").to_list() == [True, False, True, False]
    assert customers.get_column("date_col").to_list() == [
        date(2024, 1, 1),
        None,
        date(2024, 2, 29),
        date(2023, 12, 31),
    ]
    assert customers.get_column("dt_col").to_list() == [
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 1, 2, 0, 0, 500000, tzinfo=UTC),
    ]
    # One value that fails keeps a column text, as written.
    for name in ("cut_col", "nan_col", "bad_date", "mixed"):
        assert schema[name] == pl.String, name
        assert customers.get_column(name).to_list() == EXTRA_COLUMNS[name], name
    assert customers.get_column("const_col").to_list() == [7, 7, 7, None]

    verdict = {e.column: e for e in loaded.extras}
    assert [e.column for e in loaded.extras if e.table == "customers"] == list(EXTRA_COLUMNS)
    assert {c for c, e in verdict.items() if e.feature} == {"int_col", "num_col", "bool_col"}
    assert verdict["int_col"].feature_name == "extra_int_col"
    assert verdict["cut_col"].reason == (
        "text: 1 of 4 values are not numbers, first at row 2: '2.'"
    )
    assert verdict["nan_col"].reason == (
        "text: 1 of 4 values are not numbers, first at row 2: 'NaN'"
    )
    assert verdict["bad_date"].reason == (
        "text: 1 of 4 values are not ISO-8601 dates, first at row 2: '2024-02-30'"
    )
    assert verdict["mixed"].reason == ("text: 2 of 4 values are not numbers, first at row 2: 'abc'")
    assert verdict["const_col"].reason == "constant: every value is 7"
    assert verdict["empty_col"].reason == "all empty"
    assert verdict["date_col"].kind == "date" and not verdict["date_col"].feature
    assert verdict["dt_col"].kind == "datetime" and "dates are not" in verdict["dt_col"].reason


def test_extras_of_other_tables_are_typed_but_not_features(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    replace_csv(
        directory,
        "credit_lines",
        "line_id,customer_id,limit,opened_at,status,internal_grade\n"
        "L1,C1,1000000,2020-02-01,active,3\n"
        "L2,C3,50000,,,5\n",
    )
    loaded = read_input(directory)
    assert loaded.tables["credit_lines"].get_column("internal_grade").to_list() == [3, 5]
    (grade,) = [e for e in loaded.extras if e.table == "credit_lines"]
    assert grade.kind == "integer" and not grade.feature
    assert grade.reason == "only extra columns of customers are model features"


def test_parquet_extras_keep_their_types_and_nan_is_no_feature(tmp_path: Path) -> None:
    directory = write_valid_input(tmp_path / "in")
    customers = read_input(directory).tables["customers"].drop("vip")
    (directory / "customers.csv").unlink()
    customers.with_columns(
        pl.Series("score", [1.5, float("nan"), 2.0, 3.0]),
        pl.Series("grade", [1, 2, 3, 4], dtype=pl.Int32),
        pl.Series("tags", [["a"], [], None, ["b", "c"]]),
        pl.Series("amount_text", ["1", "2", "3", "4.5"]),
    ).write_parquet(directory / "customers.parquet")
    loaded = read_input(directory)
    verdict = {e.column: e for e in loaded.extras}
    assert verdict["score"].reason == "1 value(s) are NaN or infinite"
    assert verdict["grade"].kind == "integer" and verdict["grade"].feature
    assert loaded.tables["customers"].schema["grade"] == pl.Int32
    assert verdict["tags"].reason == "stored as List(String): not a number"
    # Text in Parquet is typed as CSV text is.
    assert loaded.tables["customers"].get_column("amount_text").to_list() == [1.0, 2.0, 3.0, 4.5]
    assert verdict["amount_text"].feature
    features = customer_features(RiskGraph.from_tables(loaded.tables))
    assert [n for n in features.names if n.startswith("extra_")] == [
        "extra_grade",
        "extra_amount_text",
    ]


def test_validate_lists_the_extras_and_keeps_json_output(tmp_path: Path) -> None:
    directory = _with_extras(tmp_path / "in")
    runner = CliRunner()
    shown = runner.invoke(cli.app, ["validate", str(directory)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "extra columns: 3 of 11 will be model features" in text
    assert "extra_bool_col" in text and "cut_col" in text
    assert "first at row 2: '2.'" in text
    assert "constant: every value is 7" in text and "all empty" in text
    as_json = runner.invoke(cli.app, ["validate", str(directory), "--format", "json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []
    # An input with errors still lists the extra columns of the tables that could be read.
    replace_csv(directory, "merchants", "merchant_id,sector\nM1,NOPE\nM2,GEN\n")
    inspection = inspect_directory(directory)
    assert inspection.issues and len(inspection.extras) == len(EXTRA_COLUMNS)


def _customers_frame(directory: Path) -> tuple[list, pl.DataFrame]:
    loaded = read_input(directory)
    features = customer_features(RiskGraph.from_tables(loaded.tables))
    return loaded.extras, features.frame


def test_csv_and_parquet_of_one_table_give_identical_features(tmp_path: Path) -> None:
    as_csv = own_feature_input(tmp_path / "csv", 400, seed=3, decoys=True)
    own_feature_input(tmp_path / "parquet", 400, seed=3, decoys=True, customers_format="parquet")
    # The same table as an export tool may write it: every column stored as text.
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    for path in as_csv.directory.glob("*.csv"):
        if path.stem == "customers":
            frame = pl.read_csv(path, infer_schema=False)
            frame.write_parquet(text_dir / "customers.parquet")
        else:
            (text_dir / path.name).write_bytes(path.read_bytes())
    extras, frame = _customers_frame(as_csv.directory)
    names = [c for c in frame.columns if c.startswith("extra_")]
    assert names == [
        "extra_bureau_score",
        "extra_income",
        *(f"extra_{c}" for c in as_csv.columns),
        "extra_is_salaried",
    ]
    for other in ("parquet", "text"):
        other_extras, other_frame = _customers_frame(tmp_path / other)
        assert other_extras == extras, other
        assert other_frame.select(names).equals(frame.select(names)), other
        # The other features too; only to the last bits, because the repaid_total sum's order
        # is not fixed (it differs between two runs on one file, too).
        assert_frame_equal(other_frame, frame, check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def test_features_read_numeric_and_boolean_extras_only(tmp_path: Path) -> None:
    loaded = read_input(_with_extras(tmp_path / "in"))
    features = customer_features(RiskGraph.from_tables(loaded.tables))
    extras = [n for n in features.names if n.startswith("extra_")]
    assert extras == ["extra_int_col", "extra_num_col", "extra_bool_col"]
    rows = features.frame.select("customer_id", *extras).rows()
    # A missing value counts as 0, as every feature's does.
    assert rows == [
        ("C1", 1.0, 1.5, 1.0),
        ("C2", 2.0, 2000.0, 0.0),
        ("C3", 0.0, 3.0, 1.0),
        ("P4", 4.0, -0.25, 0.0),
    ]


def _run(directory: Path, out: Path) -> dict:
    stages = ["circles", "rings", "flows", "clusters", "contagion", "gnn", "scores"]
    return run_pipeline(directory, out, run_config(), stages=stages).manifest


@pytest.mark.usefixtures(one_thread.__name__)
def test_own_features_from_csv_are_used_and_lift_heldout_auroc(tmp_path: Path) -> None:
    """Labels that depend on four extra columns of customers.csv: the run lists them as used,
    the decoys as unused with the reason, and the held-out AUROC of gnn_score and risk_score
    beats the same run without the columns by a wide margin (about 0.35 when written)."""
    with_own = own_feature_input(tmp_path / "with", decoys=True)
    without = own_feature_input(tmp_path / "without", with_own=False)
    assert with_own.heldout.equals(without.heldout)
    manifest = _run(with_own.directory, tmp_path / "run_with")
    _run(without.directory, tmp_path / "run_without")

    used = {e["column"]: e for e in manifest["extras"]["used"]}
    unused = {e["column"]: e for e in manifest["extras"]["unused"]}
    assert set(with_own.columns) | {"is_salaried"} <= set(used)
    assert {f"extra_{c}" for c in with_own.columns} <= set(manifest["model"]["features"])
    for column, reason in DECOYS.items():
        if reason is None:
            assert used[column]["feature"] == f"extra_{column}"
        else:
            assert unused[column]["reason"].startswith(reason), unused[column]
    assert unused["score_v2"]["reason"].endswith(f"first at row {BAD_ROW}: 'n/a'")

    got = heldout_aurocs(tmp_path / "run_with", with_own.heldout)
    base = heldout_aurocs(tmp_path / "run_without", without.heldout)
    print(f"held-out AUROC with extras {got}, without {base}")
    assert got["gnn_score"] >= 0.75, got
    for column in ("gnn_score", "risk_score"):
        assert got[column] >= base[column] + 0.1, (column, got, base)


@pytest.mark.slow
@pytest.mark.usefixtures(one_thread.__name__)
def test_many_own_features_at_scale_csv_equals_parquet(tmp_path: Path) -> None:
    """The issue's shape, smaller: many extra columns (16) on 8,000 customers; CSV and Parquet
    runs score alike (not bit for bit: a feature sum's order is not fixed, see above), and both
    beat the run without the columns."""
    runs = {}
    for name, kwargs in {
        "csv": {},
        "parquet": {"customers_format": "parquet"},
        "without": {"with_own": False},
    }.items():
        made = own_feature_input(tmp_path / name, 8000, seed=5, k=16, **kwargs)
        _run(made.directory, tmp_path / f"run_{name}")
        runs[name] = heldout_aurocs(tmp_path / f"run_{name}", made.heldout)
    print(f"held-out AUROC: {runs}")
    for column in ("gnn_score", "risk_score"):
        assert abs(runs["csv"][column] - runs["parquet"][column]) < 0.01, runs
    for column in ("gnn_score", "risk_score"):
        assert runs["csv"][column] >= runs["without"][column] + 0.1, runs
