"""A small valid input directory (CSV and Parquet mixed, Chinese names, a BOM) for loader tests.

Tests start from :func:`write_valid_input` and break one thing at a time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

VALID_CSV: dict[str, str] = {
    "customers": (
        "\ufeffcustomer_id,kind,name,sector,region,registered_capital,created_at,vip\n"
        "C1,enterprise,华融实业有限公司,manufacturing,上海,5000000,2020-01-02T03:04:05+08:00,yes\n"
        'C2,enterprise,"Acme, Ltd.",trade,北京,1e6,2020-01-02,\n'
        "C3,person,张三,,,,2021-03-04 05:06:07,\n"
        "P4,person,李四,,,,,no\n"
    ),
    "sectors": ("sector,name,banned,category\nSEC1,证券,TRUE,securities\nGEN,general,no,general\n"),
    "merchants": "merchant_id,sector\nM1,SEC1\nM2,GEN\n",
    "credit_lines": (
        "line_id,customer_id,limit,opened_at,status\n"
        "L1,C1,1000000,2020-02-01,active\n"
        "L2,C3,50000,,\n"
    ),
    "repayments": (
        "line_id,due_date,paid_at,amount,days_past_due\n"
        "L1,2020-03-01,2020-03-02T10:00:00Z,1000,1\n"
        "L2,2020-04-01,,0,\n"
    ),
    "transfers": (
        "transfer_id,src_account,dst_account,amount,ts\n"
        "T1,A1,A2,250000,2020-02-02T10:00:00\n"
        "T2,A2,A4,200000,2020-02-03 11:00:00.5+08:00\n"
    ),
    "guarantees": (
        "guarantor_id,borrower_id,amount,start,end\n"
        "C1,C2,500000,2020-01-01,2021-01-01\n"
        "C2,C1,400000,,\n"
    ),
    "device_links": (
        "customer_id,device_id,first_seen,last_seen\nC3,DEV1,2020-01-01,2020-06-01\nP4,DEV1,,\n"
    ),
    "labels": "customer_id,defaulted,default_date\nC1,false,\nC2,yes,2020-09-01\n",
}

VALID_PARQUET: dict[str, pl.DataFrame] = {
    "accounts": pl.DataFrame(
        {"account_id": ["A1", "A2", "A3", "A4", "A5"], "owner_id": ["C1", "C2", "C3", "M1", "M2"]}
    ),
    "drawdowns": pl.DataFrame(
        {
            "drawdown_id": ["D1"],
            "line_id": ["L1"],
            "account_id": ["A1"],
            "amount": [300000.0],
            "ts": [datetime(2020, 2, 2, 9, 0)],
            "channel": ["app"],
            "device_id": ["DEV1"],
        }
    ),
    "shareholdings": pl.DataFrame(
        {"holder_id": ["C3", "C1"], "company_id": ["C1", "C2"], "share": [0.6, 1.0]}
    ),
}

VALID_ROWS = {name: text.count("\n") - 1 for name, text in VALID_CSV.items()} | {
    name: frame.height for name, frame in VALID_PARQUET.items()
}


def write_valid_input(directory: Path) -> Path:
    """Write the valid input into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in VALID_CSV.items():
        (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    for name, frame in VALID_PARQUET.items():
        frame.write_parquet(directory / f"{name}.parquet")
    return directory


def replace_csv(directory: Path, name: str, text: str) -> None:
    """Overwrite ``name.csv`` with ``text`` (UTF-8)."""
    (directory / f"{name}.csv").write_text(text, encoding="utf-8")


def append_csv(directory: Path, name: str, lines: str) -> None:
    """Append data lines to ``name.csv``."""
    with (directory / f"{name}.csv").open("a", encoding="utf-8") as fh:
        fh.write(lines)
