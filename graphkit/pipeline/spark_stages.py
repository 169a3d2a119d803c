"""The stages a Spark run replaces: the same outputs and results, computed by a SparkEngine.

``graphkit run --engine spark`` runs the pipeline with these adapters in place of the embedded
stages :data:`graphkit.spark.engine.SPARK_STAGES` names; every later stage reads the same results
either way. Each adapter publishes exactly what its embedded twin publishes (file names, columns,
``ctx.results`` fields, counts), so the run directory contract does not depend on the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphkit.analytics.flows import customer_banned_share, flow_totals
from graphkit.pipeline.context import RunContext, Stage

if TYPE_CHECKING:
    from graphkit.spark.engine import SparkEngine


def spark_stages(engine: SparkEngine) -> dict[str, Stage]:
    """Stage name -> adapter, for the stages :data:`graphkit.spark.engine.SPARK_STAGES`."""

    def circles(ctx: RunContext) -> None:
        result = engine.circles(ctx.config.circles)
        ctx.outputs["circles.parquet"] = result.membership
        ctx.outputs["circle_summary.parquet"] = result.summary
        ctx.results.circle_membership = result.membership.select("customer_id", "circle_id")
        ctx.counts["circles"] = result.summary.height
        ctx.counts["circles_capped"] = int(result.summary.get_column("cycles_capped").sum())

    def rings(ctx: RunContext) -> None:
        result = engine.rings(ctx.config.rings)
        ctx.outputs["rings.parquet"] = result.membership
        ctx.outputs["ring_hubs.parquet"] = result.hubs
        ctx.results.ring_membership = result.membership.select("customer_id", "ring_id")
        ctx.counts["rings"] = result.membership.get_column("ring_id").n_unique()
        ctx.counts["ring_hub_devices"] = result.hubs.height

    def flows(ctx: RunContext) -> None:
        cfg = ctx.config.flows
        flow_frame, paths = engine.flows(cfg)
        cycles, cycles_capped = engine.round_trips(cfg)
        totals = flow_totals(flow_frame, cfg, len(cycles), cycles_capped)
        ctx.outputs["flows.parquet"] = flow_frame
        ctx.outputs["flow_paths.parquet"] = paths
        ctx.outputs["transfer_cycles.parquet"] = cycles
        ctx.results.flows = flow_frame
        ctx.results.customer_flows = customer_banned_share(flow_frame)
        ctx.counts["flow_drawdowns_reaching_banned"] = totals["drawdowns_reaching_banned"]
        ctx.counts["flow_drawdowns_capped"] = totals["drawdowns_capped"]
        ctx.counts["transfer_cycles"] = totals["transfer_cycles"]
        ctx.manifest_extra["flows"] = totals

    def clusters(ctx: RunContext) -> None:
        result = engine.clusters(ctx.config)
        ctx.outputs["clusters.parquet"] = result.membership
        ctx.results.cluster_membership = result.membership.select("customer_id", "cluster_id")
        ctx.counts["clusters"] = result.membership.get_column("cluster_id").n_unique()
        ctx.manifest_extra.setdefault("analytics", {})["cluster_modularity"] = result.modularity

    return {"circles": circles, "rings": rings, "flows": flows, "clusters": clusters}
