"""FinBench import: the shared sample converts with every source row accounted for and validates;
a hand-made snapshot in the newer datagen layout converts to exactly the expected tables."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import cli
from loaders.finbench import REPORT_FILE, FinbenchError, convert_finbench, import_finbench
from loaders.sources import read_input, validate_directory

SAMPLE = Path("/work/shared/data/finbench-sample")
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="FinBench sample not present")


def _rows(path: Path) -> list[dict[str, str]]:
    """An independent reader: Python's csv module on the pipe-separated file."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh, delimiter="|") if any(r.values())]


@pytest.fixture(scope="module")
def sample_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fb") / "sample"
    report = import_finbench(SAMPLE, out)
    return out, report


@needs_sample
def test_sample_every_source_row_is_accounted_for(sample_import: tuple[Path, dict]) -> None:
    out, report = sample_import
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["mappings"] == report["mappings"]
    for stem in [p.stem for p in SAMPLE.glob("*.csv")]:
        assert report["source_rows"][f"{stem}.csv"] == len(_rows(SAMPLE / f"{stem}.csv")), stem
    for table, mapping in report["mappings"].items():
        source_rows = sum(len(_rows(SAMPLE / f)) for f in mapping["sources"])
        written = pl.read_parquet(out / f"{table}.parquet").height
        assert written == mapping["output_rows"], table
        assert written + sum(mapping["dropped"].values()) == source_rows, table


@needs_sample
def test_sample_converted_directory_is_valid(sample_import: tuple[Path, dict]) -> None:
    out, _ = sample_import
    assert validate_directory(out) == []


@needs_sample
def test_sample_mapping_matches_an_independent_computation(
    sample_import: tuple[Path, dict],
) -> None:
    out, report = sample_import
    tables = read_input(out).tables
    persons, companies = _rows(SAMPLE / "Person.csv"), _rows(SAMPLE / "Company.csv")
    # Person and Company ids overlap in the source; both survive under their namespaces.
    assert tables["customers"].height == len(persons) + len(companies)
    assert {r["personId"] for r in persons} & {r["companyId"] for r in companies}

    accounts = _rows(SAMPLE / "Account.csv")
    brokerage = {r["accountId"] for r in accounts if r["accoutType"] == "brokerage account"}
    merchants = tables["merchants"]
    securities = merchants.filter(pl.col("sector") == "securities").get_column("merchant_id")
    assert sorted(securities.to_list()) == sorted(f"M{a}" for a in brokerage)
    assert tables["sectors"].filter(pl.col("banned")).get_column("sector").to_list() == [
        "securities"
    ]

    customers = {f"P{r['personId']}" for r in persons} | {f"C{r['companyId']}" for r in companies}
    owner = {}
    for r in _rows(SAMPLE / "PersonOwnAccount.csv"):
        owner.setdefault(r["accountId"], f"P{r['personId']}")
    for r in _rows(SAMPLE / "CompanyOwnAccount.csv"):
        owner.setdefault(r["accountId"], f"C{r['companyId']}")
    expected_owner = {
        f"A{a['accountId']}": (
            f"M{a['accountId']}"
            if a["accountId"] in brokerage or owner.get(a["accountId"]) not in customers
            else owner[a["accountId"]]
        )
        for a in accounts
    }
    assert dict(tables["accounts"].select("account_id", "owner_id").iter_rows()) == expected_owner

    # Guarantee amount: the borrower's total loan amount.
    applicant = {r["loanId"]: f"P{r['personId']}" for r in _rows(SAMPLE / "PersonApplyLoan.csv")}
    applicant |= {r["loanId"]: f"C{r['companyId']}" for r in _rows(SAMPLE / "CompanyApplyLoan.csv")}
    exposure: dict[str, float] = defaultdict(float)
    for loan in _rows(SAMPLE / "Loan.csv"):
        exposure[applicant[loan["loanId"]]] += float(loan["loanAmount"])
    expected_guarantees = sorted(
        (f"{p}{r['fromId']}", f"{p}{r['toId']}", exposure.get(f"{p}{r['toId']}", 1.0))
        for p, f in (("P", "PersonGuaranteePerson.csv"), ("C", "CompanyGuaranteeCompany.csv"))
        for r in _rows(SAMPLE / f)
    )
    got = sorted(tables["guarantees"].select("guarantor_id", "borrower_id", "amount").iter_rows())
    assert [g[:2] for g in got] == [e[:2] for e in expected_guarantees]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected_guarantees], rel=1e-12)

    # Device links: distinct (customer behind the account, medium) pairs.
    pairs = {
        (owner[r["accountId"]], f"MED{r['mediumId']}")
        for r in _rows(SAMPLE / "MediumSignInAccount.csv")
        if owner.get(r["accountId"]) in customers
    }
    links = tables["device_links"]
    assert set(links.select("customer_id", "device_id").iter_rows()) == pairs
    assert links.height == len(pairs)

    self_holdings = sum(
        r["investorId"] == r["companyId"] for r in _rows(SAMPLE / "CompanyInvestCompany.csv")
    )
    assert report["mappings"]["shareholdings"]["dropped"].get("self_holding", 0) == self_holdings
    assert tables["transfers"].get_column("transfer_id").head(2).to_list() == ["T1", "T2"]
    assert tables["labels"].height == 0


@needs_sample
def test_cli_imports_the_sample_as_csv(tmp_path: Path) -> None:
    out = tmp_path / "csv"
    result = CliRunner().invoke(
        cli.app, ["import", "finbench", str(SAMPLE), str(out), "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert "transfers" in result.stdout
    assert sorted(p.name for p in out.glob("*.csv")) == sorted(
        f"{name}.csv" for name in json.loads((out / REPORT_FILE).read_text())["output_rows"]
    )
    assert validate_directory(out) == []
    result = CliRunner().invoke(cli.app, ["validate", str(out), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


NEWER_LAYOUT = {
    "Person": [
        "personId|personName|isBlocked|createTime|gender|birthday|country|city",
        "1|Ann|false|2020-01-01 00:00:00.0|f|1990-01-01|CN|Shanghai",
        "2|Bo|true|2020-01-02 00:00:00|m|1991-01-01|CN|Beijing",
        "7|Kim|false|2020-01-03 00:00:00|f|1992-01-01|CN|Beijing",
    ],
    "Company": [
        "companyId|companyName|isBlocked|createTime|country|city|business|description|url",
        "7|Acme|false|2020-01-01 00:00:00|CN|Shenzhen|finance|d|u",
        "8|Beta|false|2020-01-01 00:00:00|CN|Hangzhou|retail|d|u",
    ],
    "Account": [
        "accountId|createTime|isBlocked|accountType|nickname|phonenum|email|freqLoginType|"
        "lastLoginTime|accountLevel",
        "10|2020-01-05 00:00:00|false|debit card|n|p|e|f|0|l",
        "11|2020-01-05 00:00:00|false|brokerage account|n|p|e|f|0|l",
        "12|2020-01-05 00:00:00|true|trust account|n|p|e|f|0|l",
        "13|2020-01-05 00:00:00|false|debit card|n|p|e|f|0|l",
        "14|2020-01-05 00:00:00|false|debit card|n|p|e|f|0|l",
    ],
    "PersonOwnAccount": [
        "personId|accountId|createTime",
        "1|10|2020-01-05 00:00:00",
        "2|14|2020-01-05 00:00:00",
        "99|13|2020-01-05 00:00:00",
    ],
    "CompanyOwnAccount": [
        "companyId|accountId|createTime",
        "7|11|2020-01-05 00:00:00",
        "8|12|2020-01-05 00:00:00",
    ],
    "AccountTransferAccount": [
        "fromId|toId|amount|createTime|orderNum|comment|payType|goodsType",
        "10|11|100.5|2020-03-01 10:00:00.5|1|a | comment with pipes|card|stock",
        "11|12|50|2020-03-02 10:00:00|2|c|wire|none",
        "12|99|7|2020-03-03 10:00:00|3|c|wire|none",
        "14|10|0|2020-03-04 10:00:00|4|c|wire|none",
    ],
    "AccountWithdrawAccount": ["fromId|toId|amount|createTime", "10|13|20|1583366400000"],
    "Loan": [
        "loanId|loanAmount|balance|createTime|loanUsage|interestRate",
        "30|1000.0|400.0|2020-02-01 00:00:00|car|0.01",
        "31|500|500|2020-02-01 00:00:00|trade|0.02",
        "32|700|700|2020-02-01 00:00:00|car|0.01",
        "33|800|800|2020-02-01 00:00:00|car|0.01",
    ],
    "PersonApplyLoan": [
        "personId|loanId|createTime|org",
        "1|30|2020-02-01 00:00:00|bank",
        "99|32|2020-02-01 00:00:00|bank",
    ],
    "CompanyApplyLoan": ["companyId|loanId|createTime|org", "8|31|2020-02-01 00:00:00|bank"],
    "LoanDepositAccount": [
        "loanId|accountId|amount|createTime",
        "30|10|300|2020-02-02 00:00:00",
        "32|10|100|2020-02-02 00:00:00",
        "31|12|200|2020-02-03 00:00:00",
    ],
    "AccountRepayLoan": ["accountId|loanId|amount|createTime", "10|30|50|2020-04-01 12:30:00"],
    "PersonGuaranteePerson": [
        "fromId|toId|createTime|relation",
        "2|1|2020-05-01 00:00:00|friend",
        "1|2|2020-05-02 00:00:00|family",
        "1|1|2020-05-03 00:00:00|self",
    ],
    "CompanyGuaranteeCompany": [
        "fromId|toId|createTime|relationship",
        "7|8|2020-05-04 00:00:00|business",
    ],
    "PersonInvestCompany": [
        "investorId|companyId|ratio|createTime",
        "1|7|0.7|2020-06-01 00:00:00",
        "1|7|0.6|2020-06-02 00:00:00",
        "2|8|1.5|2020-06-03 00:00:00",
        "2|7|0.2|2020-06-04 00:00:00",
    ],
    "CompanyInvestCompany": [
        "investorId|companyId|ratio|createTime",
        "7|8|0.3|2020-06-05 00:00:00",
        "8|8|0.5|2020-06-06 00:00:00",
    ],
    "Medium": [
        "mediumId|mediumType|isBlocked|createTime|lastLoginTime|riskLevel",
        "40|POS|true|2020-01-01 00:00:00|0|high",
    ],
    "MediumSignInAccount": [
        "mediumId|accountId|createTime|location",
        "40|10|2020-07-02 00:00:00|x",
        "40|10|2020-07-01 00:00:00|y",
        "40|11|2020-07-03 00:00:00|x",
        "40|13|2020-07-04 00:00:00|x",
        "41|99|2020-07-05 00:00:00|x",
    ],
}


def _write_snapshot(directory: Path) -> Path:
    directory.mkdir()
    for stem, lines in NEWER_LAYOUT.items():
        (directory / f"{stem}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_newer_layout_converts_exactly(tmp_path: Path) -> None:
    source = _write_snapshot(tmp_path / "snapshot")
    out = tmp_path / "out"
    report = import_finbench(source, out)
    assert validate_directory(out) == []
    t = read_input(out).tables

    assert t["customers"].select("customer_id", "kind", "name", "region").rows() == [
        ("P1", "person", "Ann", "Shanghai"),
        ("P2", "person", "Bo", "Beijing"),
        ("P7", "person", "Kim", "Beijing"),
        ("C7", "enterprise", "Acme", "Shenzhen"),
        ("C8", "enterprise", "Beta", "Hangzhou"),
    ]
    assert t["accounts"].select("account_id", "owner_id", "original_owner").rows() == [
        ("A10", "P1", "P1"),
        ("A11", "M11", "C7"),
        ("A12", "C8", "C8"),
        ("A13", "M13", None),
        ("A14", "P2", "P2"),
    ]
    assert t["merchants"].select("merchant_id", "sector").rows() == [
        ("M11", "securities"),
        ("M13", "general"),
    ]
    assert t["transfers"].select(
        "transfer_id", "src_account", "dst_account", "amount", "ts", "kind", "comment", "pay_type"
    ).rows() == [
        ("T1", "A10", "A11", 100.5, _utc(2020, 3, 1, 10, 0, 0, 500000), "transfer",
         "a | comment with pipes", "card"),
        ("T2", "A11", "A12", 50.0, _utc(2020, 3, 2, 10), "transfer", "c", "wire"),
        ("W1", "A10", "A13", 20.0, _utc(2020, 3, 5), "withdraw", None, None),
    ]  # fmt: skip
    assert t["credit_lines"].select("line_id", "customer_id", "limit").rows() == [
        ("L30", "P1", 1000.0),
        ("L31", "C8", 500.0),
    ]
    assert t["drawdowns"].select("drawdown_id", "line_id", "account_id", "amount").rows() == [
        ("D1", "L30", "A10", 300.0),
        ("D3", "L31", "A12", 200.0),
    ]
    assert t["repayments"].select(
        "line_id", "due_date", "paid_at", "amount", "days_past_due"
    ).rows() == [("L30", date(2020, 4, 1), _utc(2020, 4, 1, 12, 30), 50.0, 0)]
    assert t["guarantees"].select("guarantor_id", "borrower_id", "amount", "relation").rows() == [
        ("P2", "P1", 1000.0, "friend"),
        ("P1", "P2", 1.0, "family"),
        ("C7", "C8", 500.0, "business"),
    ]
    assert t["shareholdings"].select("holder_id", "company_id", "share").rows() == [
        ("P1", "C7", 1.0),
        ("P2", "C7", 0.2),
        ("C7", "C8", 0.3),
    ]
    assert t["device_links"].select(
        "customer_id", "device_id", "first_seen", "last_seen", "sign_ins", "medium_type"
    ).rows() == [
        ("P1", "MED40", _utc(2020, 7, 1), _utc(2020, 7, 2), 2, "POS"),
        ("C7", "MED40", _utc(2020, 7, 3), _utc(2020, 7, 3), 1, "POS"),
    ]

    dropped = {table: m["dropped"] for table, m in report["mappings"].items()}
    assert dropped == {
        "customers": {},
        "accounts": {},
        "credit_lines": {"no_applicant": 1, "unknown_applicant": 1},
        "drawdowns": {"unknown_line": 1},
        "repayments": {},
        "transfers": {"unknown_account": 1, "amount_not_positive": 1},
        "guarantees": {"self_guarantee": 1},
        "shareholdings": {"self_holding": 1, "share_out_of_range": 1, "merged_into_same_pair": 1},
        "device_links": {
            "unknown_account": 1,
            "account_without_known_owner": 1,
            "merged_into_same_pair": 1,
        },
    }
    for mapping in report["mappings"].values():
        assert mapping["output_rows"] + mapping["dropped_rows"] == mapping["source_rows"]


def test_surplus_fields_without_a_free_text_column_are_malformed(tmp_path: Path) -> None:
    source = _write_snapshot(tmp_path / "snapshot")
    (source / "AccountWithdrawAccount.csv").write_text(
        "fromId|toId|amount|createTime\n10|13|20|2020-03-05 00:00:00|surplus\n10|14|5|2020-03-06\n"
    )
    conversion = convert_finbench(source)
    assert conversion.mappings["transfers"].dropped["malformed_row"] == 1
    assert conversion.tables["transfers"].filter(pl.col("kind") == "withdraw").get_column(
        "transfer_id"
    ).to_list() == ["W2"]


def test_not_a_snapshot_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    with pytest.raises(FinbenchError, match="not a FinBench snapshot"):
        import_finbench(empty, out)
    assert not out.exists()
    result = CliRunner().invoke(cli.app, ["import", "finbench", str(empty), str(out)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and not out.exists()


def test_a_failed_import_leaves_the_previous_output(tmp_path: Path) -> None:
    source = _write_snapshot(tmp_path / "snapshot")
    out = tmp_path / "out"
    import_finbench(source, out, fmt="csv")
    before = sorted(p.name for p in out.iterdir())
    (source / "Loan.csv").write_text("loanId|balance\n30|5\n")
    with pytest.raises(FinbenchError, match=r"Loan\.csv: required column 'loanAmount' is missing"):
        import_finbench(source, out, fmt="csv")
    assert sorted(p.name for p in out.iterdir()) == before
    assert validate_directory(out) == []
