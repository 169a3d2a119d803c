"""What a live state starts from: the snapshot's rows and a run directory's outputs.

:func:`snapshot_tables` turns a :class:`~graphkit.graph.RiskGraph` back into the input tables it
was built from (keys instead of dense ids), so the live state reads the same rows the batch run
read. :func:`read_run_outputs` reads the batch results the live path keeps between runs (scores,
clusters, cluster tiers, alert hits and tiers, fund flows of closed windows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from graphkit.graph import RiskGraph
from graphkit.schema import TABLES

RUN_OUTPUTS = (
    "flows.parquet",
    "flow_paths.parquet",
    "scores.parquet",
    "clusters.parquet",
    "cluster_risk.parquet",
    "customer_alerts.parquet",
    "alert_hits.parquet",
)


def interned(series: pl.Series) -> list[Any]:
    """The values of ``series`` as a list, strings interned (``sys.intern``; nulls stay None)
    and equal dates one object.

    Every polars read makes a new string object per value, so the same id read from several
    tables (a customer id in the customers, credit lines, scores and hits tables, an account id
    in every transfer row) was a separate object in each structure holding it, 50-60 bytes a
    copy. Interned, each id is one object however many structures refer to it (a pickled state
    keeps the sharing: pickle writes an object once). O(values)."""
    values = series.to_list()
    if series.dtype == pl.Date:  # one date object per distinct date (due dates repeat)
        seen: dict[Any, Any] = {}
        return [seen.setdefault(v, v) for v in values]
    if series.dtype != pl.String:
        return values
    if series.null_count():
        return [None if v is None else sys.intern(v) for v in values]
    return list(map(sys.intern, values))


def runs(column: pl.Series) -> tuple[list[Any], list[int], list[int]]:
    """The runs of equal values in a sorted ``column``: each run's value (interned) and its
    ``[start, end)`` rows, for cutting rows sorted by a key into per-key lists. O(rows) in
    polars and numpy, O(runs) Python."""
    import numpy as np

    if not column.len():
        return [], [], []
    starts = np.flatnonzero(
        np.r_[True, (column.slice(1) != column.slice(0, column.len() - 1)).to_numpy()]
    ).tolist()
    return interned(column.gather(starts)), starts, [*starts[1:], column.len()]


def columns(frame: pl.DataFrame) -> Any:
    """The rows of ``frame`` as tuples, read column by column, strings interned
    (:func:`interned`; ``iter_rows`` slices the frame per batch of rows: slow on frames of list
    columns). O(rows x columns)."""
    return zip(*(interned(frame.get_column(c)) for c in frame.columns), strict=True)


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts (``to_dicts``), strings interned. O(rows x columns)."""
    names = frame.columns
    return [dict(zip(names, row, strict=True)) for row in columns(frame)]


class LiveError(ValueError):
    """A run directory or configuration the live state cannot start from; says why."""


def snapshot_tables(graph: RiskGraph) -> dict[str, pl.DataFrame]:
    """The input tables of ``graph``: every schema table, schema columns first. O(V + E)."""

    def keys(label: str, ids: pl.Series) -> pl.Series:
        return graph.keys(label).gather(ids)

    def edge(rel: str, src_label: str, dst_label: str, src: str, dst: str) -> pl.DataFrame:
        frame = graph.edges[rel]
        return frame.with_columns(
            keys(src_label, frame.get_column("src")).alias(src),
            keys(dst_label, frame.get_column("dst")).alias(dst),
        ).drop("src", "dst")

    customers = graph.nodes["Customer"]
    labels = customers.filter(pl.col("defaulted").is_not_null()).select(
        "customer_id", "defaulted", "default_date"
    )
    tables = {
        "customers": customers.drop("defaulted", "default_date"),
        "sectors": graph.nodes["Sector"],
        "merchants": graph.nodes["Merchant"],
        "accounts": graph.nodes["Account"],
        "credit_lines": graph.nodes["CreditLine"],
        "drawdowns": edge("drawdown", "CreditLine", "Account", "line_id", "account_id"),
        "repayments": graph.repayments,
        "transfers": edge("transfer", "Account", "Account", "src_account", "dst_account"),
        "guarantees": edge("guarantees", "Customer", "Customer", "guarantor_id", "borrower_id"),
        "shareholdings": edge("holds_shares", "Customer", "Customer", "holder_id", "company_id"),
        "device_links": edge("uses_device", "Customer", "Device", "customer_id", "device_id"),
        "labels": labels,
    }
    out = {}
    for name, frame in tables.items():
        schema = [c.name for c in TABLES[name].columns]
        extras = [c for c in frame.columns if c not in schema]
        out[name] = frame.select(*schema, *extras)
    return out


def rows_for_events(frame: pl.DataFrame, table: str) -> list[dict[str, Any]]:
    """Rows of a schema table as dicts in the event kinds (datetimes as int microseconds)."""
    datetimes = [c.name for c in TABLES[table].columns if c.kind.value == "datetime"]
    return frame.with_columns(pl.col(c).dt.epoch("us") for c in datetimes).to_dicts()


def read_run_outputs(run_dir: Path) -> tuple[RiskGraph, dict[str, pl.DataFrame], dict[str, Any]]:
    """The snapshot graph, the outputs of :data:`RUN_OUTPUTS` that exist, and the manifest."""
    from graphkit.store.embedded import SnapshotError, load_snapshot

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise LiveError(f"{run_dir}: not a run directory (no manifest.json)")
    try:
        graph = load_snapshot(run_dir / "snapshot")
    except SnapshotError as exc:
        raise LiveError(str(exc)) from None
    outputs = {
        name: pl.read_parquet(run_dir / name) for name in RUN_OUTPUTS if (run_dir / name).is_file()
    }
    return graph, outputs, json.loads(manifest_path.read_text())
