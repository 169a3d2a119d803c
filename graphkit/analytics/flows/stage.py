"""Pipeline stage ``flows`` (kept apart so the pipeline can take it over)."""

from __future__ import annotations

from typing import Any

from graphkit.analytics.flows.trace import trace_flows

__all__ = ["flows_stage"]


def flows_stage(ctx: Any) -> None:
    """Pipeline stage ``flows``: flows.parquet, flow_paths.parquet, transfer_cycles.parquet and
    ``results["customer_flows"]``; totals go to the manifest under ``flows``."""
    result = trace_flows(ctx.graph, ctx.config.flows, progress=ctx.progress)
    ctx.outputs["flows.parquet"] = result.flows
    ctx.outputs["flow_paths.parquet"] = result.paths
    ctx.outputs["transfer_cycles.parquet"] = result.cycles
    ctx.results["customer_flows"] = result.customer_flows
    ctx.counts["flow_drawdowns_reaching_banned"] = result.totals["drawdowns_reaching_banned"]
    ctx.counts["flow_drawdowns_capped"] = result.totals["drawdowns_capped"]
    ctx.counts["transfer_cycles"] = result.totals["transfer_cycles"]
    ctx.manifest_extra["flows"] = result.totals
