"""Convert an LDBC FinBench snapshot into graphkit's input contract.

LDBC FinBench (the Linked Data Benchmark Council's financial benchmark) publishes a transaction
graph of persons, companies, accounts, loans and media as pipe-separated CSV files with a header
row. :func:`convert_finbench` maps it onto the tables of :data:`graphkit.schema.TABLES`;
:func:`import_finbench` writes them (Parquet or CSV) with an ``import_report.json`` and publishes
the directory atomically, after checking that it passes :func:`loaders.sources.validate_directory`.

Every mapping choice is documented in ``docs/finbench.md``. In short: ids are namespaced
(``P``/``C`` customers, ``A`` accounts, ``L`` loans, ``M`` merchants, ``MED`` devices, synthetic
``T``/``W``/``D`` ids numbered by source row), brokerage accounts become merchants of the banned
``securities`` sector, and anything that would break the contract (dangling references, self-links,
values out of range) is dropped and counted, so that for every output table
``output rows + dropped rows == source rows``.

Columns are read by name, so both the driver's sample layout and the newer datagen layout (extra
columns such as ``orderNum|comment|payType|goodsType`` on transfers and ``relation`` on
guarantees, ``accountType`` spelled correctly) are accepted; a transfer comment that itself
contains ``|`` is rejoined.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from graphkit.atomic import atomic_directory
from graphkit.progress import SILENT, Progress, task
from graphkit.schema import TABLES
from loaders.frames import typed_table
from loaders.sources import physical_lines, validate_directory

BANNED_SECTOR = "securities"
GENERAL_SECTOR = "general"
BROKERAGE_TYPE = "brokerage account"
DEFAULT_GUARANTEE_AMOUNT = 1.0
REPORT_FILE = "import_report.json"

# Alternative spellings of a column, tried in order after the canonical name.
_ALIASES = {
    "accountType": ("accoutType",),
    "relation": ("relationship",),
}
# Free-text columns: a row with surplus fields has a "|" inside this column's value.
_FREE_TEXT = ("comment",)
# Optional source columns kept as extra output columns (source name -> output name).
_TRANSFER_EXTRAS = {
    "orderNum": "order_num",
    "comment": "comment",
    "payType": "pay_type",
    "goodsType": "goods_type",
}


class FinbenchError(Exception):
    """The source directory is not a usable FinBench snapshot."""


@dataclass
class Mapping:
    """Row accounting for one output table: source rows in, output rows out, drops by reason."""

    sources: dict[str, int] = field(default_factory=dict)
    output_rows: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": dict(self.sources),
            "source_rows": sum(self.sources.values()),
            "output_rows": self.output_rows,
            "dropped": dict(self.dropped),
            "dropped_rows": sum(self.dropped.values()),
        }


@dataclass
class Conversion:
    """The converted tables and how every source row was accounted for."""

    tables: dict[str, pl.DataFrame]
    mappings: dict[str, Mapping]
    source_rows: dict[str, int]
    notes: dict[str, int]

    def report(self) -> dict[str, Any]:
        return {
            "source_rows": self.source_rows,
            "output_rows": {name: frame.height for name, frame in self.tables.items()},
            "mappings": {name: m.as_dict() for name, m in self.mappings.items()},
            "notes": self.notes,
        }


class _Source:
    """Reads the snapshot's files by column name, counting rows per file."""

    def __init__(self, directory: Path, progress: Progress) -> None:
        self.directory = directory
        self.progress = progress
        self.rows: dict[str, int] = {}
        self.malformed: dict[str, int] = {}

    def read(
        self, stem: str, columns: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> pl.DataFrame:
        """Columns ``columns`` (required) and ``optional`` of ``stem.csv`` as text, plus the
        1-based source row number ``row``; a missing file is an empty frame."""
        path = self.directory / f"{stem}.csv"
        wanted = (*columns, *optional)
        if not path.exists():
            return pl.DataFrame(
                schema={
                    "row": pl.Int64,
                    **dict.fromkeys(wanted, pl.String),
                    "_malformed": pl.Boolean,
                }
            )
        with task(self.progress, f"read {path.name}"):
            frame = _read_pipe_file(path)
        self.rows[path.name] = frame.height
        self.malformed[path.name] = int(frame.get_column("_malformed").sum())
        exprs = [pl.col("row")]
        for name in wanted:
            found = next((c for c in (name, *_ALIASES.get(name, ())) if c in frame.columns), None)
            if found is None and name in columns:
                raise FinbenchError(f"{path.name}: required column {name!r} is missing")
            exprs.append(
                pl.col(found).str.strip_chars().alias(name)
                if found is not None
                else pl.lit(None, pl.String).alias(name)
            )
        exprs.append(pl.col("_malformed"))
        return frame.select(exprs)


def _read_pipe_file(path: Path) -> pl.DataFrame:
    """All columns as text plus ``row`` and ``_malformed`` (wrong field count)."""
    try:
        frame = pl.read_csv(
            path, separator="|", quote_char=None, infer_schema=False, encoding="utf8-lossy"
        )
        blank = pl.all_horizontal(pl.all().is_null())
        return (
            frame.with_row_index("row", offset=1)
            .filter(~blank)
            .with_columns(pl.col("row").cast(pl.Int64), pl.lit(False).alias("_malformed"))
        )
    except pl.exceptions.ComputeError:
        return _read_ragged_pipe_file(path)


def _read_ragged_pipe_file(path: Path) -> pl.DataFrame:
    """Line by line: a row with surplus fields is rejoined around a free-text column when the
    file has one, otherwise (and for short rows) marked ``_malformed``."""
    lines = physical_lines(path).collect().get_column("line")
    header = lines[0].lstrip("\ufeff").split("|")
    width = len(header)
    free = next((header.index(c) for c in _FREE_TEXT if c in header), None)
    frame = (
        pl.DataFrame({"line": lines.slice(1)})
        .with_row_index("row", offset=1)
        .filter(pl.col("line").is_not_null() & (pl.col("line") != ""))
        .with_columns(pl.col("line").str.split("|").alias("parts"))
        .with_columns((pl.col("parts").list.len() - width).alias("surplus"))
    )
    parts, surplus = pl.col("parts"), pl.col("surplus")
    columns = []
    for j, name in enumerate(header):
        if free is None or j < free:
            value = parts.list.get(j, null_on_oob=True)
        elif j == free:
            value = parts.list.slice(free, surplus + 1).list.join("|")
        else:
            value = parts.list.get(surplus + j, null_on_oob=True)
        columns.append(value.alias(name))
    malformed = (surplus < 0) | ((surplus > 0) & (free is None))
    return frame.select(
        pl.col("row").cast(pl.Int64),
        *columns,
        malformed.alias("_malformed"),
    )


def _keep(frame: pl.DataFrame, mask: pl.Expr, mapping: Mapping, reason: str) -> pl.DataFrame:
    """Rows where ``mask`` holds; the others are counted as dropped for ``reason``."""
    kept = frame.filter(mask.fill_null(False))
    if kept.height < frame.height:
        mapping.dropped[reason] += frame.height - kept.height
    return kept


def _timestamp(name: str) -> pl.Expr:
    """FinBench ``2020-06-29 02:33:46.538`` (or ISO ``T``, or epoch milliseconds), as UTC."""
    text = pl.col(name)
    millis = text.cast(pl.Int64, strict=False)
    parsed = pl.coalesce(
        text.str.replace("T", " ", literal=True).str.to_datetime(
            "%Y-%m-%d %H:%M:%S%.f", time_unit="us", time_zone="UTC", strict=False
        ),
        text.str.to_datetime("%Y-%m-%d", time_unit="us", time_zone="UTC", strict=False),
    )
    from_millis = pl.from_epoch(millis, time_unit="ms").dt.cast_time_unit("us")
    return (
        pl.when(millis.is_not_null())
        .then(from_millis.dt.replace_time_zone("UTC"))
        .otherwise(parsed)
    )


def _number(name: str) -> pl.Expr:
    value = pl.col(name).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _boolean(name: str) -> pl.Expr:
    return (
        pl.col(name)
        .str.to_lowercase()
        .replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
    )


def _malformed_dropped(frame: pl.DataFrame, mapping: Mapping) -> pl.DataFrame:
    return _keep(frame, ~pl.col("_malformed"), mapping, "malformed_row")


def convert_finbench(source: Path | str, progress: Progress = SILENT) -> Conversion:
    """Map the FinBench snapshot in ``source`` onto graphkit's input tables.

    Parameters
    ----------
    source : directory holding ``Person.csv``, ``Company.csv``, ``Account.csv`` and any of the
        relationship files (a missing relationship file means no such rows).
    progress : receives one task per source file.

    Returns
    -------
    Conversion with every schema table (labels stays empty: FinBench has no default labels)
    and, per table, the source rows, output rows and dropped rows by reason.

    Complexity: linear in the snapshot (hash joins and group-bys, no per-row Python).
    """
    source = Path(source)
    if not source.is_dir():
        raise FinbenchError(f"{source}: not a directory")
    if not (source / "Person.csv").exists() and not (source / "Company.csv").exists():
        raise FinbenchError(f"{source}: no Person.csv or Company.csv; not a FinBench snapshot")
    src = _Source(source, progress)
    # Sectors and merchants are derived (from Account.csv's types), labels do not exist.
    maps = {name: Mapping() for name in TABLES if name not in ("sectors", "merchants", "labels")}
    notes: Counter[str] = Counter()

    customers = _customers(src, maps["customers"])
    customer_ids = customers.get_column("customer_id")
    accounts, merchants = _accounts(src, customer_ids, maps["accounts"], notes)
    account_ids = accounts.get_column("account_id")
    credit_lines = _credit_lines(src, customer_ids, maps["credit_lines"], notes)
    line_ids = credit_lines.get_column("line_id")
    tables = {
        "customers": customers,
        "sectors": pl.DataFrame(
            {
                "sector": [BANNED_SECTOR, GENERAL_SECTOR],
                "name": ["Securities brokerage", "General"],
                "banned": [True, False],
                "category": [BANNED_SECTOR, GENERAL_SECTOR],
            }
        ),
        "merchants": merchants,
        "accounts": accounts,
        "credit_lines": credit_lines,
        "drawdowns": _drawdowns(src, line_ids, account_ids, maps["drawdowns"]),
        "repayments": _repayments(src, line_ids, account_ids, maps["repayments"]),
        "transfers": _transfers(src, account_ids, maps["transfers"]),
        "guarantees": _guarantees(src, customer_ids, credit_lines, maps["guarantees"]),
        "shareholdings": _shareholdings(src, customers, maps["shareholdings"]),
        "device_links": _device_links(src, accounts, customer_ids, maps["device_links"]),
    }
    typed = {name: typed_table(name, tables[name]) for name in tables}
    typed["labels"] = typed_table("labels", pl.DataFrame(schema=TABLES["labels"].polars_schema))
    for name, frame in typed.items():
        if name in maps:
            maps[name].output_rows = frame.height
    notes.update({f"malformed_rows:{k}": v for k, v in src.malformed.items() if v})
    return Conversion(typed, maps, dict(src.rows), dict(notes))


def _customers(src: _Source, mapping: Mapping) -> pl.DataFrame:
    persons = src.read("Person", ("personId",), ("personName", "isBlocked", "createTime", "city"))
    companies = src.read(
        "Company",
        ("companyId",),
        ("companyName", "isBlocked", "createTime", "city", "business"),
    )
    mapping.sources = {"Person.csv": persons.height, "Company.csv": companies.height}
    persons = _malformed_dropped(persons, mapping)
    companies = _malformed_dropped(companies, mapping)
    frame = pl.concat(
        [
            persons.select(
                ("P" + pl.col("personId")).alias("customer_id"),
                pl.lit("person").alias("kind"),
                pl.col("personName").alias("name"),
                pl.lit(None, pl.String).alias("sector"),
                pl.col("city").alias("region"),
                _timestamp("createTime").alias("created_at"),
                _boolean("isBlocked").alias("is_blocked"),
            ),
            companies.select(
                ("C" + pl.col("companyId")).alias("customer_id"),
                pl.lit("enterprise").alias("kind"),
                pl.col("companyName").alias("name"),
                pl.col("business").alias("sector"),
                pl.col("city").alias("region"),
                _timestamp("createTime").alias("created_at"),
                _boolean("isBlocked").alias("is_blocked"),
            ),
        ]
    )
    frame = _keep(frame, pl.col("customer_id").is_not_null(), mapping, "missing_id")
    return _keep(frame, pl.col("customer_id").is_first_distinct(), mapping, "duplicate_id")


def _accounts(
    src: _Source, customer_ids: pl.Series, mapping: Mapping, notes: Counter[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = src.read("Account", ("accountId",), ("accountType", "isBlocked", "createTime"))
    mapping.sources = {"Account.csv": raw.height}
    raw = _malformed_dropped(raw, mapping)
    raw = _keep(raw, pl.col("accountId").is_not_null(), mapping, "missing_id")
    raw = _keep(raw, pl.col("accountId").is_first_distinct(), mapping, "duplicate_id")

    person_own = src.read("PersonOwnAccount", ("personId", "accountId"))
    company_own = src.read("CompanyOwnAccount", ("companyId", "accountId"))
    owners = pl.concat(
        [
            person_own.select(("P" + pl.col("personId")).alias("owner"), "accountId"),
            company_own.select(("C" + pl.col("companyId")).alias("owner"), "accountId"),
        ]
    )
    known = owners.filter(pl.col("owner").is_in(customer_ids.implode()))
    notes["ownerships_of_unknown_customers"] += owners.height - known.height
    first = known.filter(pl.col("accountId").is_first_distinct())
    notes["extra_owners_ignored"] += known.height - first.height
    notes["ownerships_of_unknown_accounts"] += first.filter(
        ~pl.col("accountId").is_in(raw.get_column("accountId").implode())
    ).height

    frame = raw.join(first, on="accountId", how="left").with_columns(
        pl.col("accountType").alias("account_type")
    )
    brokerage = pl.col("account_type").str.to_lowercase() == BROKERAGE_TYPE
    as_merchant = brokerage.fill_null(False) | pl.col("owner").is_null()
    notes["brokerage_accounts"] += int(frame.select(brokerage.fill_null(False).sum()).item())
    notes["accounts_without_known_owner"] += int(frame.get_column("owner").null_count())
    accounts = frame.select(
        ("A" + pl.col("accountId")).alias("account_id"),
        pl.when(as_merchant)
        .then("M" + pl.col("accountId"))
        .otherwise(pl.col("owner"))
        .alias("owner_id"),
        "account_type",
        _boolean("isBlocked").alias("is_blocked"),
        _timestamp("createTime").alias("created_at"),
        pl.col("owner").alias("original_owner"),
    )
    merchants = frame.filter(as_merchant).select(
        ("M" + pl.col("accountId")).alias("merchant_id"),
        pl.when(brokerage.fill_null(False))
        .then(pl.lit(BANNED_SECTOR))
        .otherwise(pl.lit(GENERAL_SECTOR))
        .alias("sector"),
        pl.when(brokerage.fill_null(False))
        .then(pl.lit("brokerage_account"))
        .otherwise(pl.lit("account_without_known_owner"))
        .alias("reason"),
    )
    return accounts, merchants


def _credit_lines(
    src: _Source, customer_ids: pl.Series, mapping: Mapping, notes: Counter[str]
) -> pl.DataFrame:
    loans = src.read(
        "Loan", ("loanId", "loanAmount"), ("balance", "createTime", "loanUsage", "interestRate")
    )
    person_apply = src.read("PersonApplyLoan", ("personId", "loanId"))
    company_apply = src.read("CompanyApplyLoan", ("companyId", "loanId"))
    mapping.sources = {"Loan.csv": loans.height}
    loans = _malformed_dropped(loans, mapping)
    loans = _keep(loans, pl.col("loanId").is_not_null(), mapping, "missing_id")
    loans = _keep(loans, pl.col("loanId").is_first_distinct(), mapping, "duplicate_id")
    applicants = pl.concat(
        [
            person_apply.select(("P" + pl.col("personId")).alias("customer_id"), "loanId"),
            company_apply.select(("C" + pl.col("companyId")).alias("customer_id"), "loanId"),
        ]
    )
    first = applicants.filter(pl.col("loanId").is_first_distinct())
    notes["extra_loan_applicants_ignored"] += applicants.height - first.height
    frame = loans.join(first, on="loanId", how="left")
    frame = _keep(frame, pl.col("customer_id").is_not_null(), mapping, "no_applicant")
    frame = _keep(
        frame, pl.col("customer_id").is_in(customer_ids.implode()), mapping, "unknown_applicant"
    )
    frame = frame.with_columns(_number("loanAmount").alias("limit"))
    frame = _keep(frame, pl.col("limit") > 0, mapping, "limit_not_positive")
    return frame.select(
        ("L" + pl.col("loanId")).alias("line_id"),
        "customer_id",
        "limit",
        _timestamp("createTime").alias("opened_at"),
        pl.lit(None, pl.String).alias("status"),
        _number("balance").alias("balance"),
        pl.col("loanUsage").alias("loan_usage"),
        _number("interestRate").alias("interest_rate"),
    )


def _movements(
    frame: pl.DataFrame, mapping: Mapping, amount_check: pl.Expr, reason: str
) -> pl.DataFrame:
    """Drop rows whose amount or timestamp does not parse or whose amount fails the check."""
    frame = frame.with_columns(
        _number("amount").alias("amount"), _timestamp("createTime").alias("ts")
    )
    frame = _keep(frame, pl.col("amount").is_not_null(), mapping, "amount_unparsable")
    frame = _keep(frame, amount_check, mapping, reason)
    return _keep(frame, pl.col("ts").is_not_null(), mapping, "time_unparsable")


def _drawdowns(
    src: _Source, line_ids: pl.Series, account_ids: pl.Series, mapping: Mapping
) -> pl.DataFrame:
    raw = src.read("LoanDepositAccount", ("loanId", "accountId", "amount", "createTime"))
    mapping.sources = {"LoanDepositAccount.csv": raw.height}
    frame = _malformed_dropped(raw, mapping).with_columns(
        ("D" + pl.col("row").cast(pl.String)).alias("drawdown_id"),
        ("L" + pl.col("loanId")).alias("line_id"),
        ("A" + pl.col("accountId")).alias("account_id"),
    )
    frame = _keep(frame, pl.col("line_id").is_in(line_ids.implode()), mapping, "unknown_line")
    frame = _keep(
        frame, pl.col("account_id").is_in(account_ids.implode()), mapping, "unknown_account"
    )
    frame = _movements(frame, mapping, pl.col("amount") > 0, "amount_not_positive")
    return frame.select(
        "drawdown_id",
        "line_id",
        "account_id",
        "amount",
        "ts",
        pl.lit(None, pl.String).alias("channel"),
        pl.lit(None, pl.String).alias("device_id"),
    )


def _repayments(
    src: _Source, line_ids: pl.Series, account_ids: pl.Series, mapping: Mapping
) -> pl.DataFrame:
    raw = src.read("AccountRepayLoan", ("accountId", "loanId", "amount", "createTime"))
    mapping.sources = {"AccountRepayLoan.csv": raw.height}
    frame = _malformed_dropped(raw, mapping).with_columns(
        ("L" + pl.col("loanId")).alias("line_id"),
        ("A" + pl.col("accountId")).alias("account_id"),
    )
    frame = _keep(frame, pl.col("line_id").is_in(line_ids.implode()), mapping, "unknown_line")
    frame = _movements(frame, mapping, pl.col("amount") >= 0, "amount_negative")
    return frame.select(
        "line_id",
        pl.col("ts").dt.date().alias("due_date"),
        pl.col("ts").alias("paid_at"),
        "amount",
        pl.lit(0, pl.Int64).alias("days_past_due"),
        # The repaying account: kept for reference, unknown accounts become null.
        pl.when(pl.col("account_id").is_in(account_ids.implode()))
        .then(pl.col("account_id"))
        .alias("account_id"),
    )


def _transfers(src: _Source, account_ids: pl.Series, mapping: Mapping) -> pl.DataFrame:
    extras = tuple(_TRANSFER_EXTRAS)
    transfers = src.read(
        "AccountTransferAccount", ("fromId", "toId", "amount", "createTime"), extras
    )
    withdrawals = src.read(
        "AccountWithdrawAccount", ("fromId", "toId", "amount", "createTime"), extras
    )
    mapping.sources = {
        "AccountTransferAccount.csv": transfers.height,
        "AccountWithdrawAccount.csv": withdrawals.height,
    }
    frame = pl.concat(
        [
            transfers.with_columns(
                ("T" + pl.col("row").cast(pl.String)).alias("transfer_id"),
                pl.lit("transfer").alias("kind"),
            ),
            withdrawals.with_columns(
                ("W" + pl.col("row").cast(pl.String)).alias("transfer_id"),
                pl.lit("withdraw").alias("kind"),
            ),
        ]
    )
    frame = _malformed_dropped(frame, mapping).with_columns(
        ("A" + pl.col("fromId")).alias("src_account"),
        ("A" + pl.col("toId")).alias("dst_account"),
    )
    known = account_ids.implode()
    frame = _keep(
        frame,
        pl.col("src_account").is_in(known) & pl.col("dst_account").is_in(known),
        mapping,
        "unknown_account",
    )
    frame = _movements(frame, mapping, pl.col("amount") > 0, "amount_not_positive")
    return frame.select(
        "transfer_id",
        "src_account",
        "dst_account",
        "amount",
        "ts",
        "kind",
        *(pl.col(name).alias(alias) for name, alias in _TRANSFER_EXTRAS.items()),
    )


def _guarantees(
    src: _Source, customer_ids: pl.Series, credit_lines: pl.DataFrame, mapping: Mapping
) -> pl.DataFrame:
    persons = src.read("PersonGuaranteePerson", ("fromId", "toId"), ("createTime", "relation"))
    companies = src.read("CompanyGuaranteeCompany", ("fromId", "toId"), ("createTime", "relation"))
    mapping.sources = {
        "PersonGuaranteePerson.csv": persons.height,
        "CompanyGuaranteeCompany.csv": companies.height,
    }
    frame = pl.concat(
        [
            persons.with_columns(
                ("P" + pl.col("fromId")).alias("guarantor_id"),
                ("P" + pl.col("toId")).alias("borrower_id"),
            ),
            companies.with_columns(
                ("C" + pl.col("fromId")).alias("guarantor_id"),
                ("C" + pl.col("toId")).alias("borrower_id"),
            ),
        ]
    )
    frame = _malformed_dropped(frame, mapping)
    frame = _keep(frame, pl.col("guarantor_id") != pl.col("borrower_id"), mapping, "self_guarantee")
    known = customer_ids.implode()
    frame = _keep(
        frame,
        pl.col("guarantor_id").is_in(known) & pl.col("borrower_id").is_in(known),
        mapping,
        "unknown_customer",
    )
    exposure = credit_lines.group_by("customer_id").agg(pl.col("limit").sum().alias("exposure"))
    frame = frame.join(exposure, left_on="borrower_id", right_on="customer_id", how="left")
    return frame.select(
        "guarantor_id",
        "borrower_id",
        pl.col("exposure").fill_null(DEFAULT_GUARANTEE_AMOUNT).alias("amount"),
        _timestamp("createTime").dt.date().alias("start"),
        pl.lit(None, pl.Date).alias("end"),
        pl.when(pl.col("exposure").is_null())
        .then(pl.lit("placeholder"))
        .otherwise(pl.lit("borrower_loans"))
        .alias("amount_basis"),
        "relation",
    )


def _shareholdings(src: _Source, customers: pl.DataFrame, mapping: Mapping) -> pl.DataFrame:
    persons = src.read("PersonInvestCompany", ("investorId", "companyId", "ratio"), ("createTime",))
    companies = src.read(
        "CompanyInvestCompany", ("investorId", "companyId", "ratio"), ("createTime",)
    )
    mapping.sources = {
        "PersonInvestCompany.csv": persons.height,
        "CompanyInvestCompany.csv": companies.height,
    }
    frame = pl.concat(
        [
            persons.with_columns(("P" + pl.col("investorId")).alias("holder_id")),
            companies.with_columns(("C" + pl.col("investorId")).alias("holder_id")),
        ]
    ).with_columns(("C" + pl.col("companyId")).alias("company_id"))
    frame = _malformed_dropped(frame, mapping)
    frame = _keep(frame, pl.col("holder_id") != pl.col("company_id"), mapping, "self_holding")
    enterprises = customers.filter(pl.col("kind") == "enterprise").get_column("customer_id")
    frame = _keep(
        frame,
        pl.col("holder_id").is_in(customers.get_column("customer_id").implode())
        & pl.col("company_id").is_in(enterprises.implode()),
        mapping,
        "unknown_customer",
    )
    frame = frame.with_columns(_number("ratio").alias("share"))
    frame = _keep(
        frame, (pl.col("share") > 0) & (pl.col("share") <= 1), mapping, "share_out_of_range"
    )
    grouped = frame.group_by("holder_id", "company_id", maintain_order=True).agg(
        pl.col("share").sum().clip(upper_bound=1.0),
        _timestamp("createTime").min().alias("created_at"),
        pl.len().alias("source_rows"),
    )
    if grouped.height < frame.height:
        mapping.dropped["merged_into_same_pair"] += frame.height - grouped.height
    return grouped


def _device_links(
    src: _Source, accounts: pl.DataFrame, customer_ids: pl.Series, mapping: Mapping
) -> pl.DataFrame:
    sign_ins = src.read("MediumSignInAccount", ("mediumId", "accountId"), ("createTime",))
    media = src.read("Medium", ("mediumId",), ("mediumType",))
    mapping.sources = {"MediumSignInAccount.csv": sign_ins.height}
    frame = _malformed_dropped(sign_ins, mapping).with_columns(
        ("A" + pl.col("accountId")).alias("account_id"),
        ("MED" + pl.col("mediumId")).alias("device_id"),
    )
    frame = _keep(
        frame,
        pl.col("account_id").is_in(accounts.get_column("account_id").implode()),
        mapping,
        "unknown_account",
    )
    # The person or company behind the account signs in, also for brokerage accounts.
    frame = frame.join(
        accounts.select("account_id", pl.col("original_owner").alias("customer_id")),
        on="account_id",
        how="left",
    )
    frame = _keep(
        frame,
        pl.col("customer_id").is_in(customer_ids.implode()),
        mapping,
        "account_without_known_owner",
    )
    medium_type = media.filter(pl.col("mediumId").is_first_distinct()).select(
        ("MED" + pl.col("mediumId")).alias("device_id"), pl.col("mediumType").alias("medium_type")
    )
    frame = frame.with_columns(_timestamp("createTime").alias("ts"))
    grouped = (
        frame.group_by("customer_id", "device_id", maintain_order=True)
        .agg(
            pl.col("ts").min().alias("first_seen"),
            pl.col("ts").max().alias("last_seen"),
            pl.len().alias("sign_ins"),
        )
        .join(medium_type, on="device_id", how="left")
    )
    if grouped.height < frame.height:
        mapping.dropped["merged_into_same_pair"] += frame.height - grouped.height
    return grouped


def import_finbench(
    source: Path | str,
    out: Path | str,
    fmt: str = "parquet",
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Convert ``source`` and publish the input directory ``out`` atomically.

    Writes one file per table (``fmt`` is ``parquet`` or ``csv``) and ``import_report.json``
    (the :meth:`Conversion.report` plus source and format). The directory is validated before it
    is published; a conversion that would not validate raises and leaves ``out`` untouched.
    Returns the report.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, not {fmt!r}")
    conversion = convert_finbench(source, progress)
    report = {"source": str(Path(source).absolute()), "format": fmt, **conversion.report()}
    with atomic_directory(out) as tmp:
        for name, frame in conversion.tables.items():
            with task(progress, f"write {name}.{fmt}"):
                if fmt == "parquet":
                    frame.write_parquet(tmp / f"{name}.parquet")
                else:
                    frame.write_csv(tmp / f"{name}.csv")
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        with task(progress, "validate"):
            issues = validate_directory(tmp)
        if issues:
            raise FinbenchError(
                f"converted data does not validate ({len(issues)} issue(s)); first: {issues[0]}"
            )
    return report
