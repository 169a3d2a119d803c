"""``graphkit sweep flows``: banned share per (policy, hop bound, window) setting.

The seed's statistic is "38% of revolving-loan money reaches securities, crypto and other banned
sectors after three or more transfers": ``banned_share_3plus`` below, the banned amount that
arrived at hop layer >= 3 over the total drawn. The index is built once; reach is computed once
per window at the largest hop bound (a minimum hop count ``<= H`` is the same for every larger
bound), amounts once per setting (the hop bound changes where taint stops).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphkit.analytics.flows import FlowIndex, banned_amounts, reach
from graphkit.config import FlowPolicy, FlowsConfig
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

SWEEP_COLUMNS = (
    "policy",
    "max_hops",
    "window_days",
    "drawdowns",
    "drawn_amount",
    "reaching_banned",
    "banned_amount",
    "banned_share",
    "banned_amount_3plus",
    "banned_share_3plus",
    "capped_drawdowns",
)


def sweep_flows(
    graph: RiskGraph,
    hops: list[int],
    windows: list[float],
    policies: list[FlowPolicy] | None = None,
    config: FlowsConfig | None = None,
    *,
    balances: pl.DataFrame | None = None,
    progress: Progress = SILENT,
) -> pl.DataFrame:
    """One row per (policy, max_hops, window_days): drawdowns, drawn amount, drawdowns reaching
    a banned sink within the hop bound, banned amount and share, the same at >= 3 hops, and
    drawdowns where the hub cap (``config.max_expand_per_hop``) cut something.

    Complexity: one index build plus, per setting, one amount replay (see
    :func:`graphkit.analytics.flows.banned_amounts`).
    """
    cfg = config if config is not None else FlowsConfig()
    policies = policies or [cfg.policy]
    if not hops or min(hops) < 1:
        raise ValueError("hop bounds must be >= 1")
    if not windows or min(windows) <= 0:
        raise ValueError("windows must be > 0 days")
    index = FlowIndex.build(graph, balances)
    cap = cfg.max_expand_per_hop
    drawn = float(index.dd_amount.sum())
    rows = []
    total = len(policies) * len(hops) * len(windows)
    progress.start("sweep flows", total=total)
    for window in windows:
        reached = reach(index, window_days=window, max_hops=max(hops), max_expand_per_hop=cap)
        min_hops = reached.get_column("min_hops_to_banned").fill_null(-1).to_numpy()
        reach_capped = reached.get_column("capped").to_numpy()
        for policy in policies:
            for bound in hops:
                result = banned_amounts(
                    index, policy=policy, window_days=window, max_hops=bound, max_expand_per_hop=cap
                )
                banned = float(result.banned.sum())
                banned_3plus = float(result.banned[:, 3:].sum())
                rows.append(
                    {
                        "policy": policy,
                        "max_hops": bound,
                        "window_days": float(window),
                        "drawdowns": index.n_drawdowns,
                        "drawn_amount": drawn,
                        "reaching_banned": int(((min_hops >= 0) & (min_hops <= bound)).sum()),
                        "banned_amount": banned,
                        "banned_share": banned / drawn if drawn else 0.0,
                        "banned_amount_3plus": banned_3plus,
                        "banned_share_3plus": banned_3plus / drawn if drawn else 0.0,
                        "capped_drawdowns": int(np.sum(result.capped | reach_capped)),
                    }
                )
                progress.advance("sweep flows")
    progress.finish("sweep flows")
    return pl.DataFrame(rows, schema=_schema()).sort("policy", "max_hops", "window_days")


def _schema() -> dict[str, pl.DataType]:
    return {
        "policy": pl.String(),
        "max_hops": pl.Int64(),
        "window_days": pl.Float64(),
        "drawdowns": pl.Int64(),
        "drawn_amount": pl.Float64(),
        "reaching_banned": pl.Int64(),
        "banned_amount": pl.Float64(),
        "banned_share": pl.Float64(),
        "banned_amount_3plus": pl.Float64(),
        "banned_share_3plus": pl.Float64(),
        "capped_drawdowns": pl.Int64(),
    }
