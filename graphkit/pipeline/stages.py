"""The stages of a run: each adapts one library call to the :class:`RunContext`.

A stage reads the graph, the config and earlier stages' :class:`StageResults`, calls the library
(typed inputs, typed result), and files the result: frames to write in ``ctx.outputs`` (keyed
by file name), what later stages read in ``ctx.results``, numbers in ``ctx.counts`` and
sections in ``ctx.manifest_extra``. Library modules know nothing of the context; this module
is the only place that does.

Stage order (:data:`STAGE_NAMES`): circles, rings, flows, clusters, contagion, gnn, scores,
cluster_risk, alerts, report. A stage whose inputs a restricted run skipped computes what it
needs (cluster risk) or leaves the dependent part out (alerts, report).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from graphkit.pipeline.context import RunContext, Stage
from graphkit.progress import task

if TYPE_CHECKING:
    from gnn.features import CustomerFeatures
    from graphkit.extras import ExtraColumn


def circles_stage(ctx: RunContext) -> None:
    """``circles``: circles.parquet, circle_summary.parquet; circle membership and summary."""
    from graphkit.analytics.circles import guarantee_circles

    cfg = ctx.config.circles
    result = guarantee_circles(
        ctx.graph, cfg.max_cycle_length, cfg.max_cycles_listed, progress=ctx.progress
    )
    ctx.outputs["circles.parquet"] = result.membership
    ctx.outputs["circle_summary.parquet"] = result.summary
    ctx.results.circle_membership = result.membership.select("customer_id", "circle_id")
    ctx.results.circle_summary = result.summary
    ctx.counts["circles"] = result.summary.height
    ctx.counts["circles_capped"] = int(result.summary.get_column("cycles_capped").sum())


def rings_stage(ctx: RunContext) -> None:
    """``rings``: rings.parquet, ring_hubs.parquet; ring membership."""
    from graphkit.analytics.rings import device_rings

    cfg = ctx.config.rings
    # The device-use pairs are cached on the graph and serve the clusters, contagion and GNN
    # features too; built here as a task of their own, so that their cost is reported apart
    # from the ring kernel's.
    with task(ctx.progress, "device uses"):
        ctx.graph.device_uses()
    result = device_rings(
        ctx.graph,
        cfg.min_customers_per_device,
        cfg.max_customers_per_device,
        progress=ctx.progress,
    )
    ctx.outputs["rings.parquet"] = result.membership
    ctx.outputs["ring_hubs.parquet"] = result.hubs
    ctx.results.ring_membership = result.membership.select("customer_id", "ring_id")
    ctx.counts["rings"] = result.membership.get_column("ring_id").n_unique()
    ctx.counts["ring_hub_devices"] = result.hubs.height


def flows_stage(ctx: RunContext) -> None:
    """``flows``: flows.parquet, flow_paths.parquet, transfer_cycles.parquet; per-drawdown and
    per-customer flows; totals go to the manifest under ``flows``."""
    from graphkit.analytics.flows import trace_flows

    result = trace_flows(ctx.graph, ctx.config.flows, progress=ctx.progress)
    ctx.outputs["flows.parquet"] = result.flows
    ctx.outputs["flow_paths.parquet"] = result.paths
    ctx.outputs["transfer_cycles.parquet"] = result.cycles
    ctx.results.flows = result.flows
    ctx.results.customer_flows = result.customer_flows
    ctx.counts["flow_drawdowns_reaching_banned"] = result.totals["drawdowns_reaching_banned"]
    ctx.counts["flow_drawdowns_capped"] = result.totals["drawdowns_capped"]
    ctx.counts["transfer_cycles"] = result.totals["transfer_cycles"]
    ctx.manifest_extra["flows"] = result.totals


def clusters_stage(ctx: RunContext) -> None:
    """``clusters``: clusters.parquet; cluster membership; modularity in the manifest.

    With a previous run (``ctx.previous``) Leiden warm-starts from its membership and clusters
    keep their ids by overlap; cluster_lineage.parquet says where each cluster came from. The
    id high-water mark goes to the manifest on every run, so a later run never reuses an id.
    """
    from graphkit.analytics.cluster_lineage import HIGH_WATER_KEY, stable_clusters
    from graphkit.analytics.clusters import cluster_graph, related_clusters

    # Building the weighted ties is a task of its own, so that its cost is reported apart from
    # community detection's (a baseline handed the same ties compares against the latter).
    with task(ctx.progress, "cluster ties"):
        built = cluster_graph(ctx.graph, ctx.config)
    if ctx.previous is None:
        result = related_clusters(ctx.graph, ctx.config, ctx.progress, built=built)
        high_water = int(result.membership.get_column("cluster_id").max() or 0)
    else:
        result, lineage = stable_clusters(
            ctx.graph,
            ctx.previous.membership,
            ctx.config,
            ctx.progress,
            built=built,
            first_new_id=ctx.previous.high_water + 1,
        )
        ctx.outputs["cluster_lineage.parquet"] = lineage
        high_water = ctx.previous.next_high_water(result.membership)
    ctx.outputs["clusters.parquet"] = result.membership
    ctx.results.cluster_membership = result.membership.select("customer_id", "cluster_id")
    ctx.counts["clusters"] = result.membership.get_column("cluster_id").n_unique()
    analytics = ctx.manifest_extra.setdefault("analytics", {})
    analytics["cluster_modularity"] = result.modularity
    analytics[HIGH_WATER_KEY] = high_water


def contagion_stage(ctx: RunContext) -> None:
    """``contagion``: stress from the labelled defaults (none: every score 0)."""
    from graphkit.analytics.contagion import contagion_frame

    seeds = np.flatnonzero(ctx.graph.defaulted() == 1)
    frame, stress = contagion_frame(ctx.graph, seeds, ctx.config)
    ctx.outputs["contagion.parquet"] = frame
    ctx.results.contagion = frame.select("customer_id", "contagion_score", "debtrank", "pagerank")
    hit = int(((frame["contagion_score"] > 0) & ~frame["seed"]).sum())
    ctx.counts["contagion_seeds"] = len(seeds)
    ctx.counts["contagion_hit"] = hit
    ctx.manifest_extra["contagion"] = {"seeds": len(seeds), "hit": hit, "debtrank": stress.debtrank}


def _features(ctx: RunContext) -> CustomerFeatures:
    """The customers' features as of the snapshot, computed once per run."""
    from gnn.features import customer_features, snapshot_time

    if ctx.results.features is None:
        cfg = ctx.config
        ctx.results.features = customer_features(
            ctx.graph,
            customer_flows=ctx.results.customer_flows,
            circle_membership=ctx.results.circle_membership,
            cluster_membership=ctx.results.cluster_membership,
            ring_membership=ctx.results.ring_membership,
            snapshot=snapshot_time(ctx.graph, cfg.gnn.snapshot),
            outflow_cap_hours=cfg.flows.window_days * 24.0,
            cosmetics=cfg.gnn.cosmetic_features,
        )
    return ctx.results.features


def gnn_stage(ctx: RunContext) -> None:
    """``gnn``: train, compare with the baselines, save, score (:func:`gnn.fit.fit_and_score`);
    or skip, saying why in the manifest (``gnn_score`` is then null)."""
    from gnn.fit import fit_and_score

    features = _features(ctx)
    ctx.outputs["features.parquet"] = features.frame
    result = fit_and_score(ctx.graph, features, ctx.config, ctx.out_dir, ctx.progress)
    ctx.manifest_extra["model"] = result.model
    ctx.results.split = result.split
    ctx.results.explainer = result.explainer
    if result.evaluation is not None:
        (ctx.out_dir / "model_eval.json").write_text(json.dumps(result.evaluation, indent=2))
        ctx.manifest_extra["model_eval"] = result.evaluation
    ctx.results.gnn = pl.DataFrame(
        {
            "customer_id": ctx.graph.keys("Customer"),
            "gnn_score": pl.Series(result.scores, dtype=pl.Float64)
            if result.scores is not None
            else pl.Series([None] * ctx.graph.n("Customer"), dtype=pl.Float64),
        }
    )


def extras_section(extras: list[ExtraColumn], ctx: RunContext) -> dict[str, list[dict]]:
    """The manifest's ``extras``: the input's extra columns the model read (``used``, each with
    its feature name) and those it did not (``unused``, each with the reason), after the stages
    ran. A column fit to be a feature is unused when no model was trained."""
    model = ctx.manifest_extra.get("model")
    features = ctx.results.features
    used: list[dict] = []
    unused: list[dict] = []
    for extra in extras:
        entry = extra.to_dict()
        if extra.feature:
            if model is None:
                reason = "the gnn stage did not run"
            elif not model.get("trained"):
                reason = f"no model was trained: {model.get('reason', 'unknown')}"
            elif features is not None and extra.feature_name not in features.names:
                reason = "not among the model's features"
            else:
                used.append(entry)
                continue
            entry = {k: v for k, v in entry.items() if k != "feature"} | {"reason": reason}
        unused.append(entry)
    return {"used": used, "unused": unused}


def scores_stage(ctx: RunContext) -> None:
    """``scores``: scores.parquet (:func:`graphkit.scoring.risk_scores`), tiered by the policy.

    With the GNN's split, ``risk_score`` is stacked and calibrated on its validation customers,
    the stack's contagion part seeded by the training split's defaults only; the held-out
    metrics of every score column join ``model_eval.json`` under ``scores`` and the manifest
    gets ``calibration`` (calibrated or not, and why).
    """
    from graphkit.analytics.contagion import contagion_frame
    from graphkit.scoring import risk_scores

    contagion, gnn, split = ctx.results.contagion, ctx.results.gnn, ctx.results.split
    labels = ctx.graph.defaulted()
    heldout = None
    if split is not None and contagion is not None:
        seeds = split.train[labels[split.train] == 1]
        with task(ctx.progress, "held-out contagion"):
            frame, _ = contagion_frame(ctx.graph, seeds, ctx.config)
        heldout = frame.get_column("contagion_score").to_numpy()
    result = risk_scores(
        ctx.graph.keys("Customer"),
        ctx.alert_policy,
        ctx.config,
        contagion=contagion,
        gnn=gnn,
        features=_features(ctx).frame,
        labels=labels,
        split=split,
        heldout_contagion=heldout,
    )
    ctx.outputs["scores.parquet"] = result.frame
    ctx.results.scores = result.frame
    ctx.manifest_extra["risk_score"] = result.basis
    ctx.manifest_extra["calibration"] = result.calibration
    evaluation = dict(ctx.manifest_extra.get("model_eval") or {})
    evaluation["calibration"] = result.calibration
    if result.evaluation is not None:
        evaluation["scores"] = result.evaluation
    else:
        evaluation.pop("scores", None)
    (ctx.out_dir / "model_eval.json").write_text(json.dumps(evaluation, indent=2))
    ctx.manifest_extra["model_eval"] = evaluation
    for tier, count in result.frame.group_by("tier").len().iter_rows():
        ctx.counts[f"tier_{tier}"] = count


def cluster_risk_stage(ctx: RunContext) -> None:
    """``cluster_risk``: cluster_risk.parquet and .csv.

    Uses the clusters and circles of earlier stages, computing them when the run skipped them,
    and the flows and scores results when present; tiers by the run's policy.
    """
    from graphkit.analytics.circles import circle_membership
    from graphkit.analytics.cluster_risk import cluster_risk
    from graphkit.analytics.clusters import related_clusters

    clusters = ctx.results.cluster_membership
    if clusters is None:
        clusters = related_clusters(ctx.graph, ctx.config, ctx.progress).membership
    circles = ctx.results.circle_membership
    if circles is None:
        circles = circle_membership(ctx.graph)
    table = cluster_risk(
        ctx.graph,
        clusters,
        circles,
        ctx.config,
        customer_flows=ctx.results.customer_flows,
        scores=ctx.results.scores,
        progress=ctx.progress,
        thresholds=ctx.alert_policy,
    )
    ctx.outputs["cluster_risk.parquet"] = table
    ctx.outputs["cluster_risk.csv"] = table
    ctx.results.cluster_risk = table
    ctx.counts["clusters_red"] = int((table.get_column("tier") == "red").sum())


def _network_reasons(
    ctx: RunContext, customers: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """The network reason (customer_id, reason) of up to ``alerts.explain_neighbours`` red and
    orange customers, from the model the ``gnn`` stage trained (none trained: no rows), and
    what it cost for the manifest (None when nothing was explained)."""
    from graphkit.alerts import (
        NETWORK_MIN_EFFECT,
        NETWORK_TOP,
        network_reasons,
        to_explain,
    )

    cap = ctx.config.alerts.explain_neighbours
    explainer = ctx.results.explainer
    if explainer is None or cap <= 0:
        return pl.DataFrame(schema={"customer_id": pl.String, "reason": pl.String}), None
    chosen = to_explain(customers, cap)
    started = time.perf_counter()
    with task(ctx.progress, "network reasons"):
        neighbours = explainer.top_neighbours(chosen, NETWORK_TOP, NETWORK_MIN_EFFECT)
    reasons = network_reasons(neighbours)
    return reasons, {
        "cap": cap,
        "explained": chosen.len(),
        "named": reasons.height,
        "seconds": round(time.perf_counter() - started, 3),
    }


def alerts_stage(ctx: RunContext) -> None:
    """``alerts``: alerts.csv (with its deep links, :func:`graphkit.browser.with_links`),
    customer_alerts.parquet, alert_hits.parquet. With a GNN trained in this run, the reasons of
    the most severe red and orange customers name the neighbours that drove their score."""
    from graphkit.alerts import (
        append_reasons,
        count_tiers,
        evaluate,
        evidence_drawdowns,
        scores_within_budget,
    )
    from graphkit.browser import with_links

    policy = ctx.alert_policy
    result = evaluate(
        ctx.graph,
        policy,
        scores=ctx.results.scores,
        circle_membership=ctx.results.circle_membership,
        customer_flows=ctx.results.customer_flows,
        ring_membership=ctx.results.ring_membership,
        cluster_membership=ctx.results.cluster_membership,
        cluster_risk=ctx.results.cluster_risk,
        features=ctx.results.features.frame if ctx.results.features is not None else None,
        flows=ctx.results.flows,
    )
    if result.budget and ctx.results.scores is not None:
        scores = scores_within_budget(ctx.results.scores, result.customers)
        ctx.outputs["scores.parquet"] = ctx.results.scores = scores
        for tier, count in count_tiers(scores).items():
            ctx.counts[f"tier_{tier}"] = count
    network, network_info = _network_reasons(ctx, result.customers)
    result.customers = append_reasons(result.customers, network)
    result.alerts = append_reasons(result.alerts, network)
    # Each alert row carries the drawdown its banned-share hit names and the Browser links
    # that open its customer's customer_360 and that drawdown's fund_flow_trace.
    links = ctx.config.neo4j
    rows = with_links(
        result.alerts,
        evidence_drawdowns(ctx.results.flows) if ctx.results.flows is not None else None,
        links.browser_url,
        links.bolt_uri,
        ctx.config.flows.window_days,
        ctx.config.flows.max_hops,
    )
    ctx.outputs["alerts.csv"] = rows
    ctx.outputs["customer_alerts.parquet"] = result.customers
    ctx.outputs["alert_hits.parquet"] = result.hits
    ctx.results.alerts = result.customers
    ctx.results.alert_rows = rows
    tiers = count_tiers(result.customers)
    for tier, count in tiers.items():
        ctx.counts[f"customers_{tier}"] = count
    ctx.manifest_extra["alerts"] = {
        "tiers": tiers,
        "alerted_lines": result.alerts.filter(pl.col("line_id").is_not_null()).height,
        "policy": policy.to_dict(),
        "policy_file": ctx.config.alerts.policy_file or None,
    }
    if network_info is not None:
        ctx.manifest_extra["alerts"]["network_reasons"] = network_info
    if result.budget:
        ctx.manifest_extra["alerts"]["budget"] = result.budget
        ctx.counts["budget_overflow"] = sum(t["over"] for t in result.budget.values())


def report_stage(ctx: RunContext) -> None:
    """``report``: report.html, one self-contained page (:func:`graphkit.report.build_report`)."""
    from graphkit.report import ReportInputs, build_report

    inputs = ReportInputs(
        parameters=ctx.config.to_dict(),
        graph=ctx.graph,
        extra=ctx.manifest_extra,
        run_id=ctx.run_id,
        scores=ctx.results.scores,
        cluster_membership=ctx.results.cluster_membership,
        cluster_risk=ctx.results.cluster_risk,
        flows=ctx.results.flows,
        alerts=ctx.results.alerts,
        alert_rows=ctx.results.alert_rows,
    )
    path = ctx.out_dir / "report.html"
    path.write_text(build_report(inputs), encoding="utf-8")
    ctx.counts["report_bytes"] = path.stat().st_size


# The stage list, in dependency order.
STAGES: tuple[tuple[str, Stage], ...] = (
    ("circles", circles_stage),
    ("rings", rings_stage),
    ("flows", flows_stage),
    ("clusters", clusters_stage),
    ("contagion", contagion_stage),
    ("gnn", gnn_stage),
    ("scores", scores_stage),
    ("cluster_risk", cluster_risk_stage),
    ("alerts", alerts_stage),
    ("report", report_stage),
)
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)


def stages_until(name: str, *, inclusive: bool = True) -> list[tuple[str, Stage]]:
    """The stages up to ``name`` in run order (with ``name`` itself unless ``inclusive`` is
    false). Raises ``ValueError`` for an unknown stage name."""
    if name not in STAGE_NAMES:
        raise ValueError(f"unknown stage {name!r} (one of {', '.join(STAGE_NAMES)})")
    end = STAGE_NAMES.index(name) + (1 if inclusive else 0)
    return list(STAGES[:end])


def select_stages(names: list[str] | None) -> list[tuple[str, Stage]]:
    """The named stages in run order (all of them for None); unknown names raise ValueError."""
    if names is None:
        return list(STAGES)
    unknown = sorted(set(names) - set(STAGE_NAMES))
    if unknown:
        raise ValueError(f"unknown stage(s): {', '.join(unknown)}")
    return [(n, s) for n, s in STAGES if n in names]


__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "alerts_stage",
    "circles_stage",
    "cluster_risk_stage",
    "clusters_stage",
    "contagion_stage",
    "extras_section",
    "flows_stage",
    "gnn_stage",
    "report_stage",
    "rings_stage",
    "scores_stage",
    "select_stages",
    "stages_until",
]
