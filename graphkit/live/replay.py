"""The backtest: batch on the rows before a cut, then every later row as a live event.

:func:`split_tables` cuts validated input tables at ``T``. A row's *effective time* is the
latest of its own event time (``events.TIME_COLUMNS``) and the effective times of the rows it
refers to (an account of a customer created after ``T`` can only exist after it); rows without
any time are always before. Rows whose effective time is before ``T`` form the batch input;
the others become events in order of (effective time, table, key).

:func:`replay` starts a :class:`LiveState` from the batch run directory, applies the events and
writes the backtest directory atomically: the batch contract tables as of the end plus
``decisions.parquet`` and ``timeline.parquet``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from graphkit.atomic import atomic_directory
from graphkit.config import Config
from graphkit.live import outputs
from graphkit.live.events import (
    TABLE_EVENTS,
    TABLE_RANK,
    US_PER_SECOND,
    Event,
    datetime_to_us,
    event_key,
    event_time,
    us_to_iso,
)
from graphkit.live.load import rows_for_events
from graphkit.live.results import ApplyResult
from graphkit.live.state import LiveState
from graphkit.progress import SILENT, Progress, task

_NEVER = pl.lit(None, dtype=pl.Int64)
# Events applied between two progress reports.
_REPORT_EVERY = 10_000


def _own_time(table: str, frame: pl.DataFrame) -> pl.Expr:
    from graphkit.live.events import TIME_COLUMNS

    parts = []
    for column in TIME_COLUMNS.get(table, ()):
        dtype = frame.schema[column]
        us = (
            pl.col(column).cast(pl.Datetime("us")).dt.epoch("us")
            if dtype == pl.Date
            else pl.col(column).dt.epoch("us")
        )
        parts.append(us)
    return pl.coalesce(parts) if parts else _NEVER


def effective_times(tables: dict[str, pl.DataFrame]) -> dict[str, pl.Series]:
    """Per table, each row's effective time in microseconds (null: no time). O(rows) joins."""
    eff: dict[str, pl.DataFrame] = {}
    out: dict[str, pl.Series] = {}

    def of(table: str, key: str, column: str) -> pl.LazyFrame:
        return (
            eff[table].lazy().select(pl.col(key).alias(column), pl.col("_eff").alias(f"_{column}"))
        )

    def compute(table: str, refs: list[tuple[str, str, str]]) -> None:
        frame = tables[table]
        lazy = frame.lazy().with_columns(_own=_own_time(table, frame))
        extra = ["_own"]
        for ref_table, ref_key, column in refs:
            lazy = lazy.join(
                of(ref_table, ref_key, column), on=column, how="left", maintain_order="left"
            )
            extra.append(f"_{column}")
        result = lazy.with_columns(_eff=pl.max_horizontal(extra)).collect()
        out[table] = result.get_column("_eff")
        eff[table] = result

    compute("sectors", [])
    compute("merchants", [])
    compute("customers", [])
    compute("labels", [("customers", "customer_id", "customer_id")])
    owners = pl.concat(
        [
            eff["customers"].select(pl.col("customer_id").alias("owner_id"), "_eff"),
            eff["merchants"].select(pl.col("merchant_id").alias("owner_id"), "_eff"),
        ]
    )
    eff["_owners"] = owners
    compute("accounts", [("_owners", "owner_id", "owner_id")])
    compute("credit_lines", [("customers", "customer_id", "customer_id")])
    compute(
        "shareholdings",
        [("customers", "customer_id", "holder_id"), ("customers", "customer_id", "company_id")],
    )
    compute(
        "guarantees",
        [("customers", "customer_id", "guarantor_id"), ("customers", "customer_id", "borrower_id")],
    )
    compute("device_links", [("customers", "customer_id", "customer_id")])
    compute(
        "drawdowns",
        [("credit_lines", "line_id", "line_id"), ("accounts", "account_id", "account_id")],
    )
    compute(
        "transfers",
        [("accounts", "account_id", "src_account"), ("accounts", "account_id", "dst_account")],
    )
    compute("repayments", [("credit_lines", "line_id", "line_id")])
    return out


def split_tables(
    tables: dict[str, pl.DataFrame], cut: datetime
) -> tuple[dict[str, pl.DataFrame], list[tuple[int, Event]]]:
    """(tables before ``cut``, later rows as (effective time, event) in replay order)."""
    cut_us = datetime_to_us(cut)
    times = effective_times(tables)
    before: dict[str, pl.DataFrame] = {}
    events: list[tuple[int, Event]] = []
    for table, frame in tables.items():
        eff = times[table]
        early = eff.is_null() | (eff < cut_us)
        before[table] = frame.filter(early)
        later = frame.filter(~early)
        kind = TABLE_EVENTS[table]
        for at, values in zip(
            eff.filter(~early).to_list(), rows_for_events(later, table), strict=True
        ):
            event = Event(
                kind, table, values, event_time(table, values), event_key(kind, table, values)
            )
            events.append((at, event))
    events.sort(key=lambda pair: (pair[0], TABLE_RANK[pair[1].table], pair[1].key))
    return before, events


def replay_config(config: Config, events: list[tuple[int, Event]]) -> Config:
    """``config`` with a lateness allowance covering every event of ``events``.

    An event applies at its effective time; a row that waited for a row it refers to (a
    transfer from an account whose owner is created later) carries an older own time. Fund-flow
    windows stay open that much longer so that such a row still lands in them, as in batch.
    """
    delay = max((at - e.ts for at, e in events if e.ts is not None), default=0)
    seconds = delay / US_PER_SECOND
    if seconds <= config.live.max_lateness_seconds:
        return config
    live = dataclasses.replace(config.live, max_lateness_seconds=seconds)
    return dataclasses.replace(config, live=live)


def write_input(tables: dict[str, pl.DataFrame], directory: Path) -> Path:
    """Write tables as an input directory of Parquet files (the batch half of a replay)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(directory / f"{name}.parquet")
    return directory


@dataclass
class ReplaySummary:
    out_dir: Path
    manifest: dict[str, Any]


def apply_events(
    state: LiveState, events: list[tuple[int, Event]], progress: Progress = SILENT
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Apply ``events`` in order; returns the decision rows and counts by status.

    The cyclic garbage collector is paused for the loop (and the start-up heap frozen): the
    state grows by millions of small containers and holds no reference cycles, so each full
    collection would rescan all of it for nothing (hundreds of ms at 20k customers) while
    reference counting frees everything the events drop. It is restored afterwards.
    """
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        with task(progress, "replay: apply events", len(events)):
            return _apply_events(state, events, progress)
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _apply_events(
    state: LiveState, events: list[tuple[int, Event]], progress: Progress
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    decisions: list[dict[str, Any]] = []
    counts = {"applied": 0, "duplicate": 0, "rejected": 0}
    for done, (at, event) in enumerate(events, 1):
        if not done % _REPORT_EVERY:
            progress.advance("replay: apply events", _REPORT_EVERY)
        result = state.apply(event, at=at)
        counts[result.status] += 1
        if event.type == "drawdown":
            decisions.append(decision_row(state, event, result))
    return decisions, counts


def decision_row(state: LiveState, event: Event, result: ApplyResult) -> dict[str, Any]:
    """The ``decisions.parquet`` row of a drawdown event's result."""
    d = result.decision
    return {
        "event_id": event.key,
        "event_type": event.type,
        "ts": event.ts,
        "customer_id": d.customer_id if d else state.lines.get(event.get("line_id")),
        "line_id": event.get("line_id"),
        "decision": d.decision if d else "REJECTED",
        "tier": d.tier if d else None,
        "reasons": d.reasons_text() if d else "; ".join(str(i) for i in result.issues),
        "recommended_limit": d.recommended_limit if d else None,
        "apply_us": result.apply_us,
    }


def replay(
    run_dir: Path | str,
    events: list[tuple[int, Event]],
    out_dir: Path | str,
    config: Config,
    *,
    cut: datetime,
    extra_manifest: dict[str, Any] | None = None,
    progress: Progress = SILENT,
) -> ReplaySummary:
    """Start from the batch run ``run_dir``, apply ``events`` (from :func:`split_tables`) and
    publish ``out_dir`` whole or not at all. ``progress`` hears the start-up's steps and the
    events applied."""
    clock = time.perf_counter()
    state = LiveState.from_run(run_dir, replay_config(config, events), progress)
    startup = time.perf_counter() - clock
    clock = time.perf_counter()
    decisions, counts = apply_events(state, events, progress)
    apply_seconds = time.perf_counter() - clock
    with atomic_directory(out_dir) as tmp:
        clock = time.perf_counter()
        write_outputs(state, decisions, tmp)
        write_seconds = time.perf_counter() - clock
        manifest = {
            "run_id": f"replay-{datetime.now(UTC):%Y%m%dT%H%M%SZ}",
            "kind": "replay",
            "batch_run_id": state.run_id,
            "cut": cut.isoformat(),
            "end": us_to_iso(state.clock) if state.clock is not None else None,
            "parameters": config.to_dict(),
            "events": {**counts, "total": len(events)},
            "timings_seconds": {
                "startup": round(startup, 3),
                "apply": round(apply_seconds, 3),
                "write": round(write_seconds, 3),
            },
            "counts": {
                "circles": len(state.circles.members),
                "rings": len(state.rings.members),
                "alerts": len(state.feed),
                "decisions": len(decisions),
            },
            **(extra_manifest or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return ReplaySummary(Path(out_dir), manifest)


def write_outputs(
    state: LiveState, decisions: list[dict[str, Any]], directory: Path
) -> dict[str, float]:
    """Write the backtest tables of ``state`` (all but the manifest) into ``directory``; returns
    the seconds each took."""
    seconds: dict[str, float] = {}

    def timed(name: str, write: Any) -> None:
        clock = time.perf_counter()
        write()
        seconds[name] = round(time.perf_counter() - clock, 3)

    timed(
        "circles", lambda: outputs.circles_frame(state).write_parquet(directory / "circles.parquet")
    )
    timed("rings", lambda: outputs.rings_frame(state).write_parquet(directory / "rings.parquet"))
    timed("flows", lambda: outputs.flows_frame(state).write_parquet(directory / "flows.parquet"))
    timed(
        "flow_paths",
        lambda: outputs.flow_paths_frame(state).write_parquet(directory / "flow_paths.parquet"),
    )

    def alerts() -> None:
        frame, tiers = outputs.alert_frames(state)
        frame.write_csv(directory / "alerts.csv")
        tiers.write_parquet(directory / "customer_alerts.parquet")

    timed("alerts", alerts)
    timed(
        "decisions",
        lambda: decisions_frame(decisions).write_parquet(directory / "decisions.parquet"),
    )
    timed("timeline", lambda: timeline_frame(state).write_parquet(directory / "timeline.parquet"))
    return seconds


def decisions_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {
        "event_id": pl.String,
        "event_type": pl.String,
        "ts": pl.Int64,
        "customer_id": pl.String,
        "line_id": pl.String,
        "decision": pl.String,
        "tier": pl.String,
        "reasons": pl.String,
        "recommended_limit": pl.Float64,
        "apply_us": pl.Int64,
    }
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return frame.with_columns(pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def timeline_frame(state: LiveState) -> pl.DataFrame:
    """When each customer first reached each tier (batch tiers at the cut: event ``batch``)."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for customer, tier, at, event_id in state.timeline:
        if (customer, tier) in seen:
            continue
        seen.add((customer, tier))
        rows.append((customer, tier, at, event_id))
    return pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "tier": pl.String,
            "first_at": pl.Int64,
            "event_id": pl.String,
        },
        orient="row",
    ).with_columns(pl.col("first_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def prepare_replay(
    input_dir: Path | str, cut: datetime, work_dir: Path | str
) -> tuple[Path, list[tuple[int, Event]]]:
    """Validate ``input_dir`` (raises :class:`loaders.sources.InputError`), write its rows
    before ``cut`` as an input directory under ``work_dir``, and return that directory and the
    later rows as events in replay order."""
    from loaders.sources import read_input

    tables = read_input(Path(input_dir)).tables
    before, events = split_tables(tables, cut)
    return write_input(before, Path(work_dir) / "input"), events
