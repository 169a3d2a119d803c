"""The stages a Spark run replaces: the same outputs and results, computed by a SparkEngine.

``graphkit run --engine spark`` runs the pipeline with these adapters in place of the embedded
stages :data:`graphkit.spark.engine.SPARK_STAGES` names; every later stage reads the same results
either way. Each adapter publishes exactly what its embedded twin publishes (file names, columns,
``ctx.results`` fields, counts), so the run directory contract does not depend on the engine.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import polars as pl

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

    def contagion(ctx: RunContext) -> None:
        result = engine.contagion(ctx.config)
        # Spark returns the frame by customer_id; the run directory lists customers in id order.
        ids = pl.DataFrame({"customer_id": ctx.graph.keys("Customer")})
        frame = ids.join(result.frame, on="customer_id", how="left", maintain_order="left")
        ctx.outputs["contagion.parquet"] = frame
        ctx.results.contagion = frame.select(
            "customer_id", "contagion_score", "debtrank", "pagerank"
        )
        hit = int(((frame["contagion_score"] > 0) & ~frame["seed"]).sum())
        ctx.counts["contagion_seeds"] = result.seeds
        ctx.counts["contagion_hit"] = hit
        ctx.manifest_extra["contagion"] = {
            "seeds": result.seeds,
            "hit": hit,
            "debtrank": result.debtrank,
        }

    def gnn(ctx: RunContext) -> None:
        # Features as Spark aggregations; the model trained on the driver from a sampled,
        # time-split set of labelled customers with their neighbourhoods, extracted by joins;
        # every customer scored on the executors with the saved model broadcast (docs/spark.md,
        # "Features and GNN").
        from gnn.features import snapshot_time
        from gnn.fit import fit_subgraph, network_explainer, skip_reason
        from gnn.score import MODEL_FILE
        from graphkit.extras import extra_features
        from graphkit.spark.features import latest_event_time

        cfg = ctx.config
        latest = None if cfg.gnn.snapshot else latest_event_time(engine.tables)
        snapshot = snapshot_time(ctx.graph, cfg.gnn.snapshot) if latest is None else latest
        keys = ctx.graph.keys("Customer")
        features, frame = engine.features(
            keys,
            snapshot,
            extra_features(ctx.graph.nodes["Customer"]),
            customer_flows=ctx.results.customer_flows,
            circle_membership=ctx.results.circle_membership,
            cluster_membership=ctx.results.cluster_membership,
            ring_membership=ctx.results.ring_membership,
            outflow_cap_hours=cfg.flows.window_days * 24.0,
            cosmetics=cfg.gnn.cosmetic_features,
        )
        ctx.results.features = features
        ctx.outputs["features.parquet"] = features.frame
        reason = skip_reason(ctx.graph.defaulted(), cfg)
        if reason is not None:
            ctx.manifest_extra["model"] = {"trained": False, "reason": reason}
            ctx.results.gnn = _null_scores(keys)
            frame.unpersist()
            return
        training, standardiser = engine.training_set(frame, features.names, snapshot, cfg)
        result = fit_subgraph(
            training.subgraph,
            training.split,
            standardiser,
            features,
            cfg,
            ctx.out_dir,
            ctx.progress,
            log_weight_shift=training.log_weight_shift,
            customer_keys=keys,
            split_rule=cfg.gnn.split,
        )
        ctx.manifest_extra["model"] = {
            **result.model,
            "training_set": training.facts,
            "split": cfg.gnn.split,
        }
        if not result.trained:
            ctx.results.gnn = _null_scores(keys)
            frame.unpersist()
            return
        ctx.results.split = training.run_split(keys)
        if result.evaluation is not None:
            (ctx.out_dir / "model_eval.json").write_text(json.dumps(result.evaluation, indent=2))
            ctx.manifest_extra["model_eval"] = result.evaluation
        ctx.results.gnn = engine.gnn_scores(frame, ctx.out_dir / MODEL_FILE, keys)
        if cfg.alerts.explain_neighbours > 0:
            ctx.results.explainer = network_explainer(ctx.graph, features, ctx.out_dir)
        frame.unpersist()

    return {
        "circles": circles,
        "rings": rings,
        "flows": flows,
        "clusters": clusters,
        "contagion": contagion,
        "gnn": gnn,
    }


def _null_scores(keys: pl.Series) -> pl.DataFrame:
    return pl.DataFrame(
        {"customer_id": keys, "gnn_score": pl.Series([None] * len(keys), dtype=pl.Float64)}
    )
