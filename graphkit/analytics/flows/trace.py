"""The flows of a run: reach, evidence paths, banned amounts and round trips, as tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from graphkit.analytics.flows.amounts import AmountResult, banned_amounts
from graphkit.analytics.flows.cycles import empty_cycles, round_trips
from graphkit.analytics.flows.evidence import evidence_paths
from graphkit.analytics.flows.index import FlowIndex
from graphkit.analytics.flows.reachability import reach
from graphkit.config import FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

__all__ = ["FlowResult", "customer_banned_share", "flow_totals", "trace_flows"]


@dataclass
class FlowResult:
    """Everything the flows stage publishes.

    ``flows``: per drawdown (drawdown_id, amount, banned_amount, banned_amount_3plus,
    banned_share, min_hops_to_banned, banned_hop_0..banned_hop_H, policy, capped, line_id,
    customer_id). ``paths``: evidence paths. ``cycles``: round trips. ``customer_flows``: per
    customer with drawdowns (customer_id, drawn_amount, banned_amount, banned_amount_3plus,
    banned_share). ``totals``: portfolio figures (``banned_share_3plus`` is the seed's "38% of
    loan money reaches banned sectors after 3 or more transfers").
    """

    flows: pl.DataFrame
    paths: pl.DataFrame
    cycles: pl.DataFrame
    customer_flows: pl.DataFrame
    totals: dict[str, Any]


def trace_flows(
    graph: RiskGraph,
    config: FlowsConfig | None = None,
    *,
    balances: pl.DataFrame | None = None,
    index: FlowIndex | None = None,
    cycles: bool = True,
    progress: Progress = SILENT,
) -> FlowResult:
    """Reach, evidence paths, banned amounts (``config.policy``) and round trips for every
    drawdown of ``graph``.

    Definition: :func:`reach`, :func:`evidence_paths` (for the drawdowns that reach a sink),
    :func:`banned_amounts` and :func:`round_trips`, each with the settings of ``config``,
    joined per drawdown and summed per customer (:func:`customer_banned_share`).

    Parameters: ``config`` holds every setting (``FlowsConfig()``, the documented defaults, when
    None). ``balances`` (account_id, balance) are opening balances for ``fifo`` and
    ``proportional``; ``index`` reuses an index already built for ``graph``; ``cycles=False``
    skips round trips; ``progress`` hears of each step.

    Returns: :class:`FlowResult`.

    Complexity: the sum of the kernels', after one O((T + D) log(T + D)) index build.

    Examples:
        >>> from graphkit.graph import RiskGraph
        >>> from loaders.synthetic import generate_tables
        >>> graph = RiskGraph.from_tables(generate_tables(200, 7).tables)
        >>> result = trace_flows(graph)
        >>> result.flows.height == graph.edges["drawdown"].height
        True
        >>> result.totals["policy"], result.totals["max_hops"]
        ('first', 6)
    """
    cfg = config if config is not None else FlowsConfig()
    progress.start("flows: index")
    index = index if index is not None else FlowIndex.build(graph, balances)
    progress.finish("flows: index")
    common = {"window_days": cfg.window_days, "max_hops": cfg.max_hops}
    cap = cfg.max_expand_per_hop
    progress.start("flows: reach")
    hops = reach(index, max_expand_per_hop=cap, **common)
    progress.finish("flows: reach")
    progress.start("flows: evidence paths")
    reached = hops.filter(pl.col("min_hops_to_banned").is_not_null()).get_column("drawdown_id")
    paths, path_flags = evidence_paths(
        index,
        reached,
        paths_per_drawdown=cfg.evidence_paths,
        max_expand_per_hop=cap,
        max_paths_per_drawdown=cfg.max_paths_per_drawdown,
        **common,
    )
    progress.finish("flows: evidence paths")
    progress.start("flows: amounts")
    amounts = banned_amounts(index, policy=cfg.policy, max_expand_per_hop=cap, **common)
    progress.finish("flows: amounts")
    flows = _flows_frame(graph, index, cfg, hops, amounts, path_flags)
    customer_flows = customer_banned_share(flows)
    cycle_frame, cycles_capped = empty_cycles(), False
    if cycles:
        progress.start("flows: round trips")
        cycle_frame, cycles_capped = round_trips(
            index,
            window_days=cfg.cycle_window_days,
            max_length=cfg.cycle_max_length,
            max_cycles=cfg.max_cycles,
            max_expand_per_hop=cap,
        )
        progress.finish("flows: round trips")
    totals = flow_totals(flows, cfg, len(cycle_frame), cycles_capped)
    return FlowResult(flows, paths, cycle_frame, customer_flows, totals)


def _flows_frame(
    graph: RiskGraph,
    index: FlowIndex,
    cfg: FlowsConfig,
    hops: pl.DataFrame,
    amounts: AmountResult,
    path_flags: pl.DataFrame,
) -> pl.DataFrame:
    banned = amounts.banned
    x = index.dd_amount
    lines = index.dd_line
    customers = graph.line_customer()[lines] if len(lines) else np.zeros(0, dtype=np.int64)
    by_hop = {f"banned_hop_{h}": banned[:, h] for h in range(cfg.max_hops + 1)}
    frame = pl.DataFrame(
        {
            "drawdown_id": index.dd_ids,
            "amount": x,
            "banned_amount": banned.sum(axis=1),
            "banned_amount_3plus": banned[:, 3:].sum(axis=1),
            **by_hop,
            "amount_capped": amounts.capped,
            "line_id": graph.keys("CreditLine").gather(lines),
            "customer_id": graph.keys("Customer").gather(np.maximum(customers, 0)),
        }
    ).with_columns(banned_share=pl.col("banned_amount") / pl.col("amount"))
    frame = frame.join(hops, on="drawdown_id", how="left", maintain_order="left").join(
        path_flags.rename({"capped": "paths_capped"}),
        on="drawdown_id",
        how="left",
        maintain_order="left",
    )
    return frame.select(
        "drawdown_id",
        "amount",
        "banned_amount",
        "banned_amount_3plus",
        "banned_share",
        "min_hops_to_banned",
        *by_hop,
        policy=pl.lit(cfg.policy),
        capped=pl.col("capped") | pl.col("amount_capped") | pl.col("paths_capped").fill_null(False),
        line_id="line_id",
        customer_id="customer_id",
    )


def customer_banned_share(flows: pl.DataFrame) -> pl.DataFrame:
    """Per customer with drawdowns: drawn_amount, banned_amount, banned_amount_3plus,
    banned_share (= banned_amount / drawn_amount).

    Parameters: ``flows`` has a row per drawdown with customer_id, amount, banned_amount and
    banned_amount_3plus (``FlowResult.flows``).

    Returns: one row per customer, sorted by customer_id.

    Complexity: O(D) for D drawdowns (one group-by).

    Examples:
        >>> import polars as pl
        >>> flows = pl.DataFrame(
        ...     {
        ...         "customer_id": ["c0", "c0", "c1"],
        ...         "amount": [100.0, 100.0, 20.0],
        ...         "banned_amount": [30.0, 0.0, 5.0],
        ...         "banned_amount_3plus": [0.0, 0.0, 5.0],
        ...     }
        ... )
        >>> customer_banned_share(flows).select("customer_id", "banned_share").rows()
        [('c0', 0.15), ('c1', 0.25)]
    """
    return (
        flows.group_by("customer_id")
        .agg(
            drawn_amount=pl.col("amount").sum(),
            banned_amount=pl.col("banned_amount").sum(),
            banned_amount_3plus=pl.col("banned_amount_3plus").sum(),
        )
        .with_columns(banned_share=pl.col("banned_amount") / pl.col("drawn_amount"))
        .sort("customer_id")
    )


def flow_totals(
    flows: pl.DataFrame, cfg: FlowsConfig, n_cycles: int, cycles_capped: bool
) -> dict[str, Any]:
    """Portfolio figures of a flows frame for the manifest (drawn, banned, banned at >= 3
    hops and their shares, drawdowns reaching banned sectors, capped replays, cycles); the
    Spark engine publishes the same figures from its own frame. O(drawdowns)."""
    drawn = float(flows.get_column("amount").sum())
    banned = float(flows.get_column("banned_amount").sum())
    banned_3plus = float(flows.get_column("banned_amount_3plus").sum())
    return {
        "policy": cfg.policy,
        "window_days": cfg.window_days,
        "max_hops": cfg.max_hops,
        "drawdowns": flows.height,
        "drawn_amount": drawn,
        "banned_amount": banned,
        "banned_share": banned / drawn if drawn else 0.0,
        "banned_amount_3plus": banned_3plus,
        "banned_share_3plus": banned_3plus / drawn if drawn else 0.0,
        "banned_3plus_of_banned": banned_3plus / banned if banned else 0.0,
        "drawdowns_reaching_banned": int(
            flows.get_column("min_hops_to_banned").is_not_null().sum()
        ),
        "drawdowns_capped": int(flows.get_column("capped").sum()),
        "hub_cap_hit": bool(flows.get_column("capped").any()),
        "transfer_cycles": n_cycles,
        "cycle_cap_hit": cycles_capped,
    }
