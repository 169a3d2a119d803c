"""Per-customer features as of a snapshot time, computed with polars.

Every feature describes what was knowable at the *snapshot*: events (drawdowns, transfers,
repayments, device links, guarantees) are filtered to ``ts <= snapshot`` before anything is
aggregated, and the label columns (``defaulted``, ``default_date``) are never read. The snapshot
is ``config.gnn.snapshot`` when set, else the latest event time in the input
(:func:`snapshot_time`).

Feature groups (names as in the returned frame):

- ``extra_<col>``: every column of ``customers`` beyond the schema's that holds numbers or
  booleans (a bank's own bureau score, income, ...), unless it is empty, constant or holds NaN
  or infinity (:func:`graphkit.extras.extra_features`, the rule ``graphkit validate`` reports;
  CSV extras are typed by the loaders, so CSV and Parquet give the same features), plus
  ``registered_capital`` and ``is_enterprise``; ``age_days`` since ``created_at``. A missing
  value counts as 0, as every feature's does.
- credit: ``limit_total``, ``drawn_total``, ``repaid_total``, ``utilisation`` (drawn - repaid over
  the total limit, >= 0).
- drawdown bursts: ``drawdowns_1d``, ``drawdowns_7d``, ``drawdowns_30d`` (in the day / 7 / 30
  days up to the snapshot), ``busiest_day_drawdowns`` (most drawdowns on one calendar day; the
  seed: 5 in a day came before a 12x jump in 48-hour default odds), ``busiest_day_30d``.
- cash-out speed: ``hours_to_outflow`` (median hours from a drawdown to the first transfer out of
  the receiving account; drawdowns with no outflow before the snapshot count as the flow window),
  ``fast_outflow_share`` (share of drawdowns followed by an outflow within 24 hours).
- delinquency: ``dpd_max``, ``dpd_mean``, ``late_count`` over instalments due by the snapshot;
  an instalment unpaid at the snapshot is late by the days since it fell due, so a payment made
  after the snapshot cannot change the feature.
- credit cosmetics (``cosmetics=True``, :mod:`gnn.cosmetics`): ``draw_amount_regularity``,
  ``draw_interval_regularity``, ``quick_repaid_share``, ``draw_share_of_limit``,
  ``cosmetic_score`` and the flag ``cosmetic_pattern``: small, regular drawdowns each repaid at
  once, a record kept perfect on purpose.
- network facts from earlier stages: ``banned_share`` (results["customer_flows"]),
  ``in_circle``/``circle_size``, ``in_cluster``/``cluster_size``, ``in_ring``/``ring_size``.
  Those stages see the whole input, so they are used only when the snapshot is at or after the
  latest event; otherwise they are left out and ``dropped`` says why.
- degrees: ``guarantees_out``/``guarantees_in`` (+ ``guarantee_amount_out``/``_in``, active at
  the snapshot), ``shares_out``/``shares_in``, ``devices``, ``device_peers`` (other customers on
  the same devices; a device is used when linked or drawn from), ``transfers_out``/
  ``transfers_in`` (+ amounts) via the customer's accounts.

Complexity: O(V + E log E) (sorts for the as-of join and the busiest day).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from gnn.cosmetics import COSMETIC_NAMES, cosmetic_features
from graphkit.extras import extra_features
from graphkit.graph import RiskGraph

_NO_EVENTS = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class CustomerFeatures:
    """Features keyed by ``customer_id`` in Customer id order.

    Attributes:
        frame: ``customer_id`` then one Float64 column per name in ``names`` (no nulls).
        names: feature names, in column order.
        snapshot: the time no feature looks past.
        dropped: feature groups left out, with the reason.
    """

    frame: pl.DataFrame
    names: list[str]
    snapshot: datetime
    dropped: dict[str, str] = field(default_factory=dict)

    def matrix(self) -> np.ndarray:
        """The features as a float32 ``(customers, len(names))`` array."""
        return self.frame.select(self.names).to_numpy().astype(np.float32)


# The feature columns in frame order after the customer's own columns, by family; the Spark
# engine (graphkit/spark/features.py) computes the same columns under the same names.
CREDIT_NAMES = ["limit_total", "drawn_total", "repaid_total"]
BURST_NAMES = [
    "drawdowns_1d",
    "drawdowns_7d",
    "drawdowns_30d",
    "busiest_day_drawdowns",
    "busiest_day_30d",
]
SPEED_NAMES = ["hours_to_outflow", "fast_outflow_share"]
DPD_NAMES = ["dpd_max", "dpd_mean", "late_count"]
DEGREE_NAMES = [
    "guarantees_out",
    "guarantee_amount_out",
    "guarantees_in",
    "guarantee_amount_in",
    "shares_out",
    "shares_in",
    "devices",
    "device_peers",
    "transfers_out",
    "transfer_amount_out",
    "transfers_in",
    "transfer_amount_in",
]


def latest_event_time(graph: RiskGraph) -> datetime | None:
    """The latest drawdown, transfer, repayment or device sighting in ``graph`` (None if none)."""
    candidates = [
        graph.edges["drawdown"].get_column("ts").max(),
        graph.edges["transfer"].get_column("ts").max(),
        graph.repayments.get_column("paid_at").max(),
        graph.edges["uses_device"].get_column("first_seen").max(),
    ]
    times = [t for t in candidates if t is not None]
    return max(times) if times else None  # type: ignore[type-var]


def snapshot_time(graph: RiskGraph, configured: str = "") -> datetime:
    """``configured`` (ISO date or datetime, UTC when no zone) or the latest event time.

    A graph without any event gets a far-future snapshot: nothing is excluded.
    """
    if configured:
        parsed = datetime.fromisoformat(configured)
        if len(configured) == 10:
            parsed = parsed + timedelta(days=1) - timedelta(microseconds=1)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    latest = latest_event_time(graph)
    return latest if latest is not None else _NO_EVENTS


def _customer_index(graph: RiskGraph) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"cid": np.arange(graph.n("Customer"), dtype=np.int32)}, schema={"cid": pl.Int32}
    )


def _per_customer(index: pl.LazyFrame, parts: list[pl.LazyFrame], names: list[str]) -> pl.LazyFrame:
    frame = index
    for part in parts:
        frame = frame.join(part, on="cid", how="left", maintain_order="left")
    return frame.with_columns(pl.col(n).cast(pl.Float64).fill_null(0.0) for n in names)


def _customer_columns(graph: RiskGraph, snapshot: datetime) -> tuple[pl.LazyFrame, list[str]]:
    customers = graph.nodes["Customer"]
    extras = extra_features(customers)
    exprs = [pl.col(e.column).cast(pl.Float64).alias(e.feature_name) for e in extras]
    exprs += [
        pl.col("registered_capital").alias("registered_capital"),
        (pl.col("kind") == "enterprise").cast(pl.Float64).alias("is_enterprise"),
        pl.when(pl.col("created_at") <= snapshot)
        .then((pl.lit(snapshot) - pl.col("created_at")).dt.total_hours() / 24.0)
        .otherwise(0.0)
        .alias("age_days"),
    ]
    names = [e.feature_name for e in extras] + ["registered_capital", "is_enterprise", "age_days"]
    frame = customers.lazy().with_row_index("cid").select(pl.col("cid").cast(pl.Int32), *exprs)
    return frame, names


def _drawdowns(graph: RiskGraph, snapshot: datetime) -> pl.LazyFrame:
    draws = graph.edges["drawdown"]
    line_customer = graph.line_customer()
    cid = line_customer[draws.get_column("src").to_numpy()] if draws.height else np.array([])
    return (
        draws.lazy()
        .with_columns(pl.Series("cid", cid, dtype=pl.Int32))
        .filter(pl.col("ts") <= snapshot)
        .select("cid", pl.col("dst").alias("account"), "amount", "ts")
    )


def _credit(graph: RiskGraph, draws: pl.LazyFrame, snapshot: datetime) -> list[pl.LazyFrame]:
    lines = (
        graph.nodes["CreditLine"]
        .lazy()
        .with_columns(pl.Series("cid", graph.line_customer(), dtype=pl.Int32))
    )
    limits = lines.group_by("cid").agg(pl.col("limit").sum().alias("limit_total"))
    drawn = draws.group_by("cid").agg(pl.col("amount").sum().alias("drawn_total"))
    repaid = (
        graph.repayments.lazy()
        .filter(pl.col("paid_at") <= snapshot)
        .join(lines.select("line_id", "cid"), on="line_id", how="inner")
        .group_by("cid")
        .agg(pl.col("amount").sum().alias("repaid_total"))
    )
    return [limits, drawn, repaid]


def _bursts(draws: pl.LazyFrame, snapshot: datetime) -> pl.LazyFrame:
    def within(days: int) -> pl.Expr:
        return (pl.col("ts") > snapshot - timedelta(days=days)).sum().alias(f"drawdowns_{days}d")

    counts = draws.group_by("cid").agg(within(1), within(7), within(30))
    per_day = (
        draws.group_by("cid", pl.col("ts").dt.date().alias("day"))
        .agg(pl.len().alias("n"))
        .group_by("cid")
        .agg(
            pl.col("n").max().alias("busiest_day_drawdowns"),
            pl.col("n")
            .filter(pl.col("day") > (snapshot - timedelta(days=30)).date())
            .max()
            .alias("busiest_day_30d"),
        )
    )
    return counts.join(per_day, on="cid", how="left")


def _outflow_speed(
    graph: RiskGraph, draws: pl.LazyFrame, snapshot: datetime, cap_hours: float
) -> pl.LazyFrame:
    outflows = (
        graph.edges["transfer"]
        .lazy()
        .filter(pl.col("ts") <= snapshot)
        .select(pl.col("src").alias("account"), pl.col("ts").alias("out_ts"))
        .sort("out_ts")
    )
    matched = draws.sort("ts").join_asof(
        outflows,
        left_on="ts",
        right_on="out_ts",
        by="account",
        strategy="forward",
        check_sortedness=False,
    )
    hours = (pl.col("out_ts") - pl.col("ts")).dt.total_seconds() / 3600.0
    return (
        matched.with_columns(hours.fill_null(cap_hours).clip(0.0, cap_hours).alias("hours"))
        .group_by("cid")
        .agg(
            pl.col("hours").median().alias("hours_to_outflow"),
            (pl.col("hours") <= 24.0).mean().alias("fast_outflow_share"),
        )
    )


def _delinquency(graph: RiskGraph, snapshot: datetime) -> pl.LazyFrame:
    lines = (
        graph.nodes["CreditLine"]
        .lazy()
        .with_columns(pl.Series("cid", graph.line_customer(), dtype=pl.Int32))
    )
    snap_date = snapshot.date() if snapshot < _NO_EVENTS else None
    due = graph.repayments.lazy()
    if snap_date is not None:
        due = due.filter(pl.col("due_date") <= snap_date)
    days_open = (
        (pl.lit(snap_date) - pl.col("due_date")).dt.total_days()
        if snap_date is not None
        else pl.col("days_past_due")
    )
    paid_late = (pl.col("paid_at").dt.date() - pl.col("due_date")).dt.total_days()
    dpd = (
        pl.when(pl.col("paid_at") <= snapshot)
        .then(pl.coalesce(pl.col("days_past_due"), paid_late))
        .otherwise(pl.min_horizontal(pl.col("days_past_due"), days_open))
        .fill_null(0)
        .clip(lower_bound=0)
        .cast(pl.Float64)
    )
    return (
        due.join(lines.select("line_id", "cid"), on="line_id", how="inner")
        .with_columns(dpd.alias("dpd"))
        .group_by("cid")
        .agg(
            pl.col("dpd").max().alias("dpd_max"),
            pl.col("dpd").mean().alias("dpd_mean"),
            (pl.col("dpd") > 0).sum().alias("late_count"),
        )
    )


def _degrees(graph: RiskGraph, snapshot: datetime) -> list[pl.LazyFrame]:
    snap_date = snapshot.date() if snapshot < _NO_EVENTS else None
    guarantees = graph.edges["guarantees"].lazy()
    if snap_date is not None:
        guarantees = guarantees.filter(
            (pl.col("start").is_null() | (pl.col("start") <= snap_date))
            & (pl.col("end").is_null() | (pl.col("end") >= snap_date))
        )
    g_out = guarantees.group_by(pl.col("src").alias("cid")).agg(
        pl.len().alias("guarantees_out"), pl.col("amount").sum().alias("guarantee_amount_out")
    )
    g_in = guarantees.group_by(pl.col("dst").alias("cid")).agg(
        pl.len().alias("guarantees_in"), pl.col("amount").sum().alias("guarantee_amount_in")
    )
    shares = graph.edges["holds_shares"].lazy()
    s_out = shares.group_by(pl.col("src").alias("cid")).agg(pl.len().alias("shares_out"))
    s_in = shares.group_by(pl.col("dst").alias("cid")).agg(pl.len().alias("shares_in"))
    links = device_uses(graph, snapshot).lazy().rename({"customer": "cid"})
    devices = links.group_by("cid").agg(pl.len().alias("devices"))
    peers = (
        links.join(links.rename({"cid": "peer"}), on="device")
        .filter(pl.col("peer") != pl.col("cid"))
        .group_by("cid")
        .agg(pl.col("peer").n_unique().alias("device_peers"))
    )
    owner = pl.Series(graph.account_owner_customer(), dtype=pl.Int32)
    transfers = graph.edges["transfer"].filter(pl.col("ts") <= snapshot)
    src_owner = owner.gather(transfers.get_column("src")) if transfers.height else owner.clear()
    dst_owner = owner.gather(transfers.get_column("dst")) if transfers.height else owner.clear()
    moves = transfers.lazy().select(
        "amount", src_owner.alias("from_cid"), dst_owner.alias("to_cid")
    )
    t_out = (
        moves.filter(pl.col("from_cid") >= 0)
        .group_by(pl.col("from_cid").alias("cid"))
        .agg(pl.len().alias("transfers_out"), pl.col("amount").sum().alias("transfer_amount_out"))
    )
    t_in = (
        moves.filter(pl.col("to_cid") >= 0)
        .group_by(pl.col("to_cid").alias("cid"))
        .agg(pl.len().alias("transfers_in"), pl.col("amount").sum().alias("transfer_amount_in"))
    )
    return [g_out, g_in, s_out, s_in, devices, peers, t_out, t_in]


def device_uses(graph: RiskGraph, snapshot: datetime) -> pl.DataFrame:
    """Distinct (customer, device) int32 pairs seen by the snapshot, by customer then device.

    A customer uses a device it is linked to (``device_links``, first seen by the snapshot) or
    drew money from (``drawdowns.device_id``, drawn by the snapshot), as the rings define it.
    This is :meth:`RiskGraph.device_uses`: the drawdown device strings are resolved once per
    graph and shared with the rings and clusters; a snapshot covering every event reuses the
    cached all-time pairs.
    """
    return graph.device_uses(snapshot)


def _membership(
    graph: RiskGraph, flows: pl.DataFrame | None, groups: dict[str, pl.DataFrame | None]
) -> tuple[list[pl.LazyFrame], list[str]]:
    parts: list[pl.LazyFrame] = []
    names: list[str] = []
    keys = graph.nodes["Customer"].select("customer_id").with_row_index("cid").lazy()
    keys = keys.with_columns(pl.col("cid").cast(pl.Int32))
    if flows is not None:
        parts.append(
            keys.join(flows.lazy().select("customer_id", "banned_share"), on="customer_id").select(
                "cid", "banned_share"
            )
        )
        names.append("banned_share")
    for prefix, frame in groups.items():
        group = f"{prefix}_id"
        if frame is None:
            continue
        sizes = (
            frame.lazy()
            .select("customer_id", group)
            .unique()
            .with_columns(pl.len().over(group).alias("size"))
            .group_by("customer_id")
            .agg(pl.col("size").max().alias(f"{prefix}_size"))
            .with_columns(pl.lit(1.0).alias(f"in_{prefix}"))
        )
        parts.append(
            keys.join(sizes, on="customer_id").select("cid", f"in_{prefix}", f"{prefix}_size")
        )
        names += [f"in_{prefix}", f"{prefix}_size"]
    return parts, names


def customer_features(
    graph: RiskGraph,
    *,
    customer_flows: pl.DataFrame | None = None,
    circle_membership: pl.DataFrame | None = None,
    cluster_membership: pl.DataFrame | None = None,
    ring_membership: pl.DataFrame | None = None,
    snapshot: datetime | None = None,
    outflow_cap_hours: float = 30 * 24.0,
    cosmetics: bool = True,
) -> CustomerFeatures:
    """Compute every customer's features as of ``snapshot`` (default: latest event time).

    Parameters:
        graph: the risk graph.
        customer_flows: customer_id, banned_share (the flows stage's); None: left out.
        circle_membership, cluster_membership, ring_membership: customer_id and circle_id,
            cluster_id or ring_id (the analytics stages'); None: left out.
        snapshot: no feature looks past this time.
        outflow_cap_hours: hours counted for a drawdown with no outflow (the flow window).
        cosmetics: add the credit-cosmetics features (:mod:`gnn.cosmetics`); False gives the
            feature set from before them.

    Returns:
        :class:`CustomerFeatures`, one row per customer in Customer id order, no nulls.
    """
    groups = {
        "circle": circle_membership,
        "cluster": cluster_membership,
        "ring": ring_membership,
    }
    snap = snapshot if snapshot is not None else snapshot_time(graph)
    index = _customer_index(graph)
    base, base_names = _customer_columns(graph, snap)
    draws = _drawdowns(graph, snap)
    parts = [
        base,
        *_credit(graph, draws, snap),
        _bursts(draws, snap),
        _outflow_speed(graph, draws, snap, outflow_cap_hours),
        _delinquency(graph, snap),
        *_degrees(graph, snap),
    ]
    names = base_names + CREDIT_NAMES + BURST_NAMES + SPEED_NAMES + DPD_NAMES + DEGREE_NAMES
    if cosmetics:
        parts.append(cosmetic_features(graph, snap))
        names += COSMETIC_NAMES
    dropped: dict[str, str] = {}
    latest = latest_event_time(graph)
    if latest is None or snap >= latest:
        member_parts, member_names = _membership(graph, customer_flows, groups)
        parts += member_parts
        names += member_names
    elif any(f is not None for f in (customer_flows, circle_membership, ring_membership)):
        dropped["network facts"] = (
            f"snapshot {snap.isoformat()} is before the latest event {latest.isoformat()}; "
            "circle, cluster, ring and flow results cover the whole input"
        )
    utilisation = (
        pl.when(pl.col("limit_total") > 0)
        .then((pl.col("drawn_total") - pl.col("repaid_total")) / pl.col("limit_total"))
        .otherwise(0.0)
        .clip(lower_bound=0.0)
        .alias("utilisation")
    )
    names.insert(names.index("repaid_total") + 1, "utilisation")
    frame = (
        _per_customer(index, parts, [n for n in names if n != "utilisation"])
        .with_columns(
            utilisation,
            pl.when(pl.col("drawn_total") > 0)
            .then(pl.col("hours_to_outflow"))
            .otherwise(outflow_cap_hours)
            .alias("hours_to_outflow"),
        )
        .sort("cid")
        .select(pl.Series("customer_id", graph.keys("Customer")), *names)
        .collect()
    )
    return CustomerFeatures(frame=frame, names=names, snapshot=snap, dropped=dropped)
