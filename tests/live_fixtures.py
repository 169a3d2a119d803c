"""Random small inputs for the live engine, and the exactness check against batch.

The inputs are adversarial at small scale: few distinct instants (ties between transfers and
with drawdowns), sinks in the middle of chains, self-transfers, guarantee cycles, devices that
cross the hub bound, rows without times, rows whose referenced customer is created later.
Rows of the keyless tables (guarantees, repayments) are distinct: the live engine takes a
repeated identical row as the same event (docs/live.md).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl

from gnn.features import customer_features, snapshot_time
from graphkit.analytics.circles import circle_membership
from graphkit.analytics.flows import trace_flows
from graphkit.analytics.rings import device_rings
from graphkit.config import Config, from_mapping
from graphkit.graph import RiskGraph
from graphkit.live import LiveState
from graphkit.live.events import datetime_to_us
from graphkit.live.outputs import circles_frame, flow_paths_frame, flows_frame, rings_frame
from graphkit.live.replay import apply_events, effective_times, replay_config, split_tables
from loaders.frames import make_tables

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
VELOCITY = (
    "drawdowns_1d",
    "drawdowns_7d",
    "drawdowns_30d",
    "busiest_day_drawdowns",
    "busiest_day_30d",
    "dpd_max",
    "dpd_mean",
    "late_count",
)


def small_config() -> Config:
    """Short windows and low bounds so that every rule boundary is crossed on small inputs."""
    return from_mapping(
        {
            "flows": {"window_days": 2.0, "max_hops": 3},
            "rings": {"min_customers_per_device": 2, "max_customers_per_device": 3},
            "circles": {"max_cycle_length": 4},
        }
    )


def random_tables(seed: int, size: int = 6) -> dict[str, pl.DataFrame]:
    """A valid random input of about ``size`` customers (times on a coarse hourly grid)."""
    rng = random.Random(seed)

    def when(p_null: float = 0.0) -> str | None:
        if rng.random() < p_null:
            return None
        return (EPOCH + timedelta(hours=rng.randrange(0, 24 * 6, 3))).isoformat()

    def day(p_null: float = 0.0) -> str | None:
        if rng.random() < p_null:
            return None
        return (EPOCH.date() + timedelta(days=rng.randrange(0, 6))).isoformat()

    customers = [f"C{i}" for i in range(size)]
    created = [when(0.5) for _ in customers]
    merchants = ["M0", "M1", "M2"]
    accounts = {f"A{c}": c for c in customers} | {f"B{c}": c for c in customers[: size // 2]}
    accounts |= {"AM0": "M0", "AM1": "M1", "AM2": "M2"}
    account_ids = list(accounts)
    lines = {f"L{c}": c for c in customers}
    devices = [f"V{i}" for i in range(4)]
    drawdowns = []
    for i in range(rng.randrange(2, 3 * size)):
        line = rng.choice(list(lines))
        drawdowns.append(
            {
                "drawdown_id": f"D{i:02d}",
                "line_id": line,
                "account_id": rng.choice([f"A{lines[line]}", *account_ids]),
                "amount": float(rng.randrange(1, 20) * 50),
                "ts": when(),
                "device_id": rng.choice([None, *devices]),
            }
        )
    transfers = []
    for i in range(rng.randrange(0, 6 * size)):
        transfers.append(
            {
                "transfer_id": f"T{rng.randrange(100):02d}{i:02d}",
                "src_account": rng.choice(account_ids),
                "dst_account": rng.choice(account_ids),
                "amount": float(rng.randrange(1, 30) * 25),
                "ts": when(),
            }
        )
    guarantees = []
    for _ in range(rng.randrange(0, 2 * size)):
        g, b = rng.sample(customers, 2)
        guarantees.append({"guarantor_id": g, "borrower_id": b, "amount": 100.0, "start": day(0.3)})
    links = {}
    for _ in range(rng.randrange(0, 2 * size)):
        links[(rng.choice(customers), rng.choice(devices))] = when(0.3)
    repayments = [
        {
            "line_id": rng.choice(list(lines)),
            "due_date": day(),
            "paid_at": when(0.4),
            "amount": 10.0,
            "days_past_due": rng.choice([None, 0, 3]),
        }
        for _ in range(rng.randrange(0, size))
    ]
    return make_tables(
        sectors={"sector": ["bad", "ok"], "banned": [True, False]},
        merchants={"merchant_id": merchants, "sector": ["bad", "ok", "bad"]},
        customers={
            "customer_id": customers,
            "kind": [rng.choice(["person", "enterprise"]) for _ in customers],
            "created_at": created,
        },
        labels={"customer_id": customers, "defaulted": [rng.random() < 0.3 for _ in customers]},
        accounts={"account_id": account_ids, "owner_id": list(accounts.values())},
        credit_lines={
            "line_id": list(lines),
            "customer_id": list(lines.values()),
            "limit": [10_000.0] * len(lines),
            "opened_at": [when(0.5) for _ in lines],
        },
        drawdowns=pl.DataFrame(
            drawdowns,
            schema={
                "drawdown_id": pl.String,
                "line_id": pl.String,
                "account_id": pl.String,
                "amount": pl.Float64,
                "ts": pl.String,
                "device_id": pl.String,
            },
        ),
        transfers=pl.DataFrame(
            transfers,
            schema={
                "transfer_id": pl.String,
                "src_account": pl.String,
                "dst_account": pl.String,
                "amount": pl.Float64,
                "ts": pl.String,
            },
        ).unique("transfer_id", keep="first", maintain_order=True),
        guarantees=pl.DataFrame(
            guarantees,
            schema={
                "guarantor_id": pl.String,
                "borrower_id": pl.String,
                "amount": pl.Float64,
                "start": pl.String,
            },
        ).unique(maintain_order=True),
        device_links=pl.DataFrame(
            [{"customer_id": c, "device_id": d, "first_seen": t} for (c, d), t in links.items()],
            schema={"customer_id": pl.String, "device_id": pl.String, "first_seen": pl.String},
        ),
        repayments=pl.DataFrame(
            repayments,
            schema={
                "line_id": pl.String,
                "due_date": pl.String,
                "paid_at": pl.String,
                "amount": pl.Float64,
                "days_past_due": pl.Int64,
            },
        ).unique(maintain_order=True),
    )


def all_cuts(tables: dict[str, pl.DataFrame]) -> list[datetime]:
    """A cut before and after every distinct effective time, plus before and after all rows."""
    times = sorted(
        {t for series in effective_times(tables).values() for t in series.drop_nulls().to_list()}
    )
    cuts = {EPOCH - timedelta(days=1), EPOCH + timedelta(days=60)}
    for us in times:
        at = EPOCH + timedelta(microseconds=us - datetime_to_us(EPOCH))
        cuts |= {at, at + timedelta(microseconds=1)}
    return sorted(cuts)


def groups(frame: pl.DataFrame, column: str) -> list[list[str]]:
    return sorted(
        sorted(g) for g in frame.group_by(column).agg("customer_id").get_column("customer_id")
    )


class Batch:
    """The batch answers on the whole input: the oracle of the exactness tests."""

    def __init__(self, tables: dict[str, pl.DataFrame], config: Config) -> None:
        graph = RiskGraph.from_tables(tables)
        self.circles = groups(circle_membership(graph), "circle_id")
        rings = config.rings
        self.rings = groups(
            device_rings(
                graph, rings.min_customers_per_device, rings.max_customers_per_device
            ).membership,
            "ring_id",
        )
        traced = trace_flows(graph, config.flows, cycles=False)
        self.flows = traced.flows.sort("drawdown_id")
        self.paths = traced.paths.sort("drawdown_id", "path_rank")
        self.snapshot = snapshot_time(graph)
        self.features = customer_features(graph, snapshot=self.snapshot).frame.select(
            "customer_id", *VELOCITY
        )


def replay_state(tables: dict[str, pl.DataFrame], cut: datetime, config: Config) -> LiveState:
    """Batch state on the rows before ``cut``, then every later row applied as an event."""
    before, events = split_tables(tables, cut)
    state = LiveState.from_graph(RiskGraph.from_tables(before), replay_config(config, events))
    _, counts = apply_events(state, events)
    assert counts["rejected"] == 0, counts
    return state


def assert_same_as_batch(state: LiveState, batch: Batch, where: str, *, reach: bool = True) -> None:
    """Circles, rings, flows and velocity features of ``state`` equal ``batch``'s
    (``reach=False``: amounts only, for hub caps, which batch also applies to reach)."""
    assert groups(circles_frame(state), "circle_id") == batch.circles, f"circles {where}"
    assert groups(rings_frame(state), "ring_id") == batch.rings, f"rings {where}"
    live = flows_frame(state)
    joined = batch.flows.join(live, on="drawdown_id", how="full", suffix="_live")
    assert joined.height == batch.flows.height == live.height, f"drawdowns {where}"
    for column in ("banned_amount", "banned_amount_3plus", "banned_share"):
        diff = (pl.col(column) - pl.col(f"{column}_live")).abs()
        bad = joined.filter(diff > 1e-6 * (1 + pl.col(column).abs()))
        assert bad.is_empty(), (
            f"{column} {where}: {bad.select('drawdown_id', column, f'{column}_live').to_dicts()}"
        )
    if not reach:
        return
    bad = joined.filter(pl.col("min_hops_to_banned").ne_missing(pl.col("min_hops_to_banned_live")))
    assert bad.is_empty(), f"min_hops_to_banned {where}: {bad.to_dicts()[:3]}"
    paths = flow_paths_frame(state).sort("drawdown_id", "path_rank")
    assert (
        paths.select(batch.paths.columns)
        .with_columns(pl.col("amount").round(6))
        .equals(batch.paths.with_columns(pl.col("amount").round(6)))
    ), f"evidence paths {where}"
    now = datetime_to_us(batch.snapshot)
    features = pl.DataFrame(
        [
            {"customer_id": c, **{k: state.velocity.features(c, now)[k] for k in VELOCITY}}
            for c in batch.features.get_column("customer_id")
        ]
    )
    expected = batch.features.sort("customer_id")
    got = features.sort("customer_id").select(expected.columns)
    assert got.equals(expected.cast(got.schema)), f"velocity {where}"
