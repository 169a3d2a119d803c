"""The batch contract tables as of a live state (ARCHITECTURE section 6), built at the end of a
replay (never per event): circles, rings, flows, evidence paths, alerts, velocity features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from graphkit.alerts import (
    RESPONSES,
    TIER_RANK,
    banned_share_hits,
    burst_hits,
    circle_default_hits,
    cluster_hits,
    customer_tiers,
    defaulted_hits,
    limit_advice,
    ring_hits,
    score_hits,
)
from graphkit.analytics.flows.evidence import PATH_SCHEMA

if TYPE_CHECKING:
    from graphkit.live.flows import LiveFlows
    from graphkit.live.state import LiveState


def circles_frame(state: LiveState) -> pl.DataFrame:
    """circle_id, customer_id; ids by each circle's smallest member, as batch numbers them."""
    groups = sorted(sorted(ms) for ms in state.circles.members.values() if len(ms) >= 2)
    rows = [(i, c) for i, members in enumerate(groups, start=1) for c in members]
    return pl.DataFrame(
        {"circle_id": [r[0] for r in rows], "customer_id": [r[1] for r in rows]},
        schema={"circle_id": pl.Int64, "customer_id": pl.String},
    )


def rings_frame(state: LiveState) -> pl.DataFrame:
    """ring_id, customer_id, ring_size, shared_devices; ids as batch (size desc, then first)."""
    rings = state.rings
    groups = sorted((sorted(ms) for ms in rings.members.values()), key=lambda ms: (-len(ms), ms[0]))
    ids, customers, sizes, shared = [], [], [], []
    for ring_id, members in enumerate(groups, start=1):
        for c in members:
            ids.append(ring_id)
            customers.append(c)
            sizes.append(len(members))
            shared.append(sum(1 for d in rings.customer_devices[c] if rings.shared(d)))
    return pl.DataFrame(
        {"ring_id": ids, "customer_id": customers, "ring_size": sizes, "shared_devices": shared},
        schema={
            "ring_id": pl.Int64,
            "customer_id": pl.String,
            "ring_size": pl.Int64,
            "shared_devices": pl.Int64,
        },
    )


def flows_frame(state: LiveState) -> pl.DataFrame:
    """flows.parquet: one row per drawdown (closed windows and open traces), by drawdown_id.
    Built from the columns of the closed results (:class:`~graphkit.live.closed.ClosedFlows`)
    plus one summary per open trace."""
    hops = state.config.flows.max_hops
    layers = [f"banned_hop_{h}" for h in range(hops + 1)]
    frame = _all_flows(state.flows)
    return (
        frame.with_columns(
            banned_amount=pl.sum_horizontal(layers),
            banned_amount_3plus=pl.sum_horizontal(layers[3:]) if hops >= 3 else pl.lit(0.0),
        )
        .select(
            "drawdown_id",
            pl.col("amount").cast(pl.Float64),
            "banned_amount",
            "banned_amount_3plus",
            (pl.col("banned_amount") / pl.col("amount")).alias("banned_share"),
            pl.col("min_hops_to_banned").cast(pl.Int32),
            *layers,
            pl.lit(state.config.flows.policy, dtype=pl.String).alias("policy"),
            pl.col("capped").cast(pl.Boolean),
            pl.col("line_id").cast(pl.String),
            pl.col("customer_id").cast(pl.String),
        )
        .sort("drawdown_id")
    )


def flow_paths_frame(state: LiveState) -> pl.DataFrame:
    """flow_paths.parquet: the evidence paths of every drawdown reaching a sink.

    Windows closed before the batch run keep the run's paths; the others are searched here, all
    at once, by the batch kernel (:func:`graphkit.analytics.flows.evidence_paths`) over the
    transfer log: the same paths as batch, at a columnar kernel's cost rather than one Python
    search per drawdown."""
    k = state.config.flows.evidence_paths
    schema = PATH_SCHEMA
    flows = state.flows
    frame = _all_flows(flows)
    reaching = frame.filter(pl.col("min_hops_to_banned").is_not_null())
    search = reaching.filter(~pl.col("from_batch")).get_column("drawdown_id").to_list()
    batch = flows.closed.batch_paths
    kept = (
        batch.join(
            reaching.filter(pl.col("from_batch")).select("drawdown_id"),
            on="drawdown_id",
            how="semi",
        )
        .cast(schema)
        .select(list(schema))
        if batch is not None
        else pl.DataFrame(schema=schema)
    )
    found = _search_paths(state, search, k) if search and k > 0 else pl.DataFrame(schema=schema)
    return pl.concat([kept, found.cast(schema).select(list(schema))]).sort(
        "drawdown_id", "path_rank"
    )


def _search_paths(state: LiveState, drawdown_ids: list[str], k: int) -> pl.DataFrame:
    """The batch evidence kernel on the live transfer log for ``drawdown_ids``. O(T log T)
    to index the log plus the kernel's cost."""
    import numpy as np

    from graphkit.analytics.flows.evidence import evidence_paths
    from graphkit.analytics.flows.index import DrawdownArrays, FlowIndex, TransferArrays

    flows, cfg = state.flows, state.config.flows
    number: dict[str, int] = {}

    def num(account: str) -> int:
        n = number.get(account)
        if n is None:
            n = number[account] = len(number)
        return n

    src, dst, amount, ts, ids = [], [], [], [], []
    for account, log in flows.out_log.items():
        a = num(account)
        for t, tid, to, value, _ in log:
            src.append(a)
            dst.append(num(to))
            amount.append(value)
            ts.append(t)
            ids.append(tid)
    origins = [flows.origin(did) for did in drawdown_ids]
    accounts = [num(a0) for a0, _, _, _ in origins]
    names = list(number)
    index = FlowIndex.from_arrays(
        sinks=np.array([name in flows.sinks for name in names], dtype=bool),
        transfers=TransferArrays(
            src=np.array(src, dtype=np.int64),
            dst=np.array(dst, dtype=np.int64),
            amount=np.array(amount, dtype=np.float64),
            ts=np.array(ts, dtype=np.int64),
            ids=pl.Series(ids, dtype=pl.String),
        ),
        drawdowns=DrawdownArrays(
            account=np.array(accounts, dtype=np.int64),
            amount=np.array([x for _, _, _, x in origins], dtype=np.float64),
            ts=np.array([t0 for _, t0, _, _ in origins], dtype=np.int64),
            ids=pl.Series(drawdown_ids, dtype=pl.String),
        ),
        account_ids=pl.Series(names, dtype=pl.String),
    )
    paths, _ = evidence_paths(
        index,
        window_days=cfg.window_days,
        max_hops=cfg.max_hops,
        paths_per_drawdown=k,
        max_expand_per_hop=cfg.max_expand_per_hop,
        max_paths_per_drawdown=cfg.max_paths_per_drawdown,
    )
    return paths


def customer_flows_frame(state: LiveState) -> pl.DataFrame:
    rows = [(c, *agg) for c, agg in state.customer_flow.items() if c is not None]
    return pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "drawn_amount": pl.Float64,
            "banned_amount": pl.Float64,
            "banned_amount_3plus": pl.Float64,
        },
        orient="row",
    ).with_columns(banned_share=pl.col("banned_amount") / pl.col("drawn_amount"))


def velocity_frame(state: LiveState, now: int) -> pl.DataFrame:
    """Per customer, the velocity features as of ``now`` (``Velocity.features``)."""
    rows = [{"customer_id": c, **state.velocity.features(c, now)} for c in sorted(state.customers)]
    return pl.DataFrame(rows)


def alert_frames(state: LiveState) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(alerts.csv rows, customer tiers) as of the state, by the batch alert functions; a
    customer's tier is then raised to its live tier (tiers never drop between runs)."""
    policy = state.policy
    scores = (
        pl.DataFrame(
            [{"customer_id": c, **s} for c, s in state.scores.items()],
            schema={
                "customer_id": pl.String,
                "risk_score": pl.Float64,
                "contagion_score": pl.Float64,
                "gnn_score": pl.Float64,
            },
        )
        if state.scores
        else None
    )
    defaulted = pl.DataFrame(
        {
            "customer_id": list(state.customers),
            "defaulted": [state.defaulted.get(c) for c in state.customers],
        },
        schema={"customer_id": pl.String, "defaulted": pl.Boolean},
    )
    circles = circles_frame(state)
    daily = pl.DataFrame(
        list(state.velocity.daily()),
        schema={"customer_id": pl.String, "day": pl.Int32, "drawdowns": pl.Int64},
        orient="row",
    ).with_columns(pl.col("day").cast(pl.Date))
    clusters = (
        pl.DataFrame(
            {"customer_id": list(state.cluster_of), "cluster_id": list(state.cluster_of.values())}
        )
        if state.cluster_of
        else None
    )
    cluster_risk = (
        pl.DataFrame(
            [(c, t, r) for c, (t, r) in state.cluster_tier.items()],
            schema={
                "cluster_id": clusters.schema["cluster_id"] if clusters is not None else pl.Int64,
                "tier": pl.String,
                "risk_score": pl.Float64,
            },
            orient="row",
        )
        if state.cluster_tier
        else None
    )
    hits = pl.concat(
        [
            score_hits(scores, policy),
            defaulted_hits(defaulted, policy),
            circle_default_hits(circles, defaulted, policy),
            banned_share_hits(customer_flows_frame(state), policy),
            burst_hits(daily, policy),
            ring_hits(rings_frame(state).select("customer_id", "ring_id"), policy),
            cluster_hits(clusters, cluster_risk, policy),
        ],
        how="vertical_relaxed",
    )
    tiers = customer_tiers(pl.Series(list(state.customers), dtype=pl.String), hits, scores)
    live = pl.DataFrame(
        {"customer_id": list(state.tier), "live_tier": list(state.tier.values())},
        schema={"customer_id": pl.String, "live_tier": pl.String},
    )
    rank = {v: k for k, v in TIER_RANK.items()}
    tiers = (
        tiers.join(live, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            pl.max_horizontal(
                pl.col("tier").replace_strict(TIER_RANK, return_dtype=pl.Int8),
                pl.col("live_tier").replace_strict(TIER_RANK, default=0, return_dtype=pl.Int8),
            )
            .replace_strict(rank, return_dtype=pl.String)
            .alias("tier")
        )
        .drop("live_tier")
        .with_columns(
            pl.col("tier").replace_strict(RESPONSES, return_dtype=pl.String).alias("response")
        )
    )
    lines = pl.DataFrame(
        [
            (
                line_id,
                owner,
                state.velocity.lines[line_id].limit,
                state.velocity.outstanding(line_id),
            )
            for line_id, owner in state.lines.items()
        ],
        schema={
            "line_id": pl.String,
            "customer_id": pl.String,
            "limit": pl.Float64,
            "outstanding": pl.Float64,
        },
        orient="row",
    )
    return limit_advice(tiers, lines, policy), tiers


def _all_flows(flows: LiveFlows) -> pl.DataFrame:
    """Every drawdown's result as a frame (:meth:`ClosedFlows.frame`'s columns, closed rows
    then open traces). Columnar for closed rows, O(open traces x H) Python."""
    closed = flows.closed.frame()
    open_rows = [t.summary() for t in flows.traces.values()]
    if not open_rows:
        return closed
    opened = pl.DataFrame(
        {
            "drawdown_id": [r["drawdown_id"] for r in open_rows],
            "amount": [float(r["amount"]) for r in open_rows],
            **{
                f"banned_hop_{h}": [float(r["banned_hops"][h]) for r in open_rows]
                for h in range(flows.layers)
            },
            "min_hops_to_banned": [r["min_hops_to_banned"] for r in open_rows],
            "capped": [bool(r["capped"]) for r in open_rows],
            "line_id": [r["line_id"] for r in open_rows],
            "customer_id": [r["customer_id"] for r in open_rows],
            "from_batch": [False] * len(open_rows),
        },
        schema=closed.schema,
    )
    return pl.concat([closed, opened])
