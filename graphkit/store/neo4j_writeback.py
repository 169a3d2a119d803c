"""What a run writes back to Neo4j: the typed inputs, the per-customer properties, the counts.

:meth:`graphkit.store.neo4j.Neo4jTarget.write_back` sends what :func:`writeback_frame` and
:func:`derived_nodes` build from a :class:`WriteBackInputs` (the write-back model is in
:mod:`graphkit.store.neo4j`'s docstring); the pipeline fills the inputs from its results and
records the :class:`WriteBackCounts` in the run manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from graphkit.graph import RiskGraph
from graphkit.schema import WRITEBACK_PROPERTIES


@dataclass(frozen=True)
class WriteBackInputs:
    """A run's results to write back; any frame may be None (its stage did not run).

    Attributes:
        graph: the run's risk graph (every customer gets a row).
        circle_membership: customer_id, circle_id; circle_summary: one row per circle.
        ring_membership: customer_id, ring_id.
        customer_flows: customer_id, banned_share.
        cluster_membership: customer_id, cluster_id; cluster_risk: one row per cluster.
        contagion: customer_id, contagion_score; gnn: customer_id, gnn_score.
        scores: customer_id, contagion_score, gnn_score, risk_score, tier.
        alert_rows: the alerts.csv rows (customer_id, tier, rules, evidence_drawdown, ...);
            with the next three, the evidence of each alert (:mod:`graphkit.store.neo4j_evidence`).
        flow_paths: the flow_paths.parquet frame.
        ring_devices: ring_id, device_id (:func:`graphkit.analytics.rings.ring_devices`).
    """

    graph: RiskGraph
    circle_membership: pl.DataFrame | None = None
    circle_summary: pl.DataFrame | None = None
    ring_membership: pl.DataFrame | None = None
    customer_flows: pl.DataFrame | None = None
    cluster_membership: pl.DataFrame | None = None
    cluster_risk: pl.DataFrame | None = None
    contagion: pl.DataFrame | None = None
    gnn: pl.DataFrame | None = None
    scores: pl.DataFrame | None = None
    alert_rows: pl.DataFrame | None = None
    flow_paths: pl.DataFrame | None = None
    ring_devices: pl.DataFrame | None = None


@dataclass(frozen=True)
class WriteBackCounts:
    """What :meth:`Neo4jTarget.write_back` wrote for run ``run_id``."""

    run_id: str
    customers: int
    clusters: int
    circles: int
    in_cluster: int
    in_circle: int
    scored: int
    alerts: int = 0
    evidence: int = 0


# Where each write-back property comes from: (result key, column), first present wins.
_WRITEBACK_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "cluster_id": (("cluster_membership", "cluster_id"),),
    "circle_id": (("circle_membership", "circle_id"),),
    "ring_id": (("ring_membership", "ring_id"),),
    "banned_share": (("customer_flows", "banned_share"),),
    "contagion_score": (("scores", "contagion_score"), ("contagion", "contagion_score")),
    "gnn_score": (("scores", "gnn_score"), ("gnn", "gnn_score")),
    "risk_score": (("scores", "risk_score"),),
    "tier": (("scores", "tier"),),
}


def writeback_frame(inputs: WriteBackInputs) -> pl.DataFrame:
    """One row per customer of the graph: ``customer_id`` and every write-back property
    (:data:`graphkit.schema.WRITEBACK_PROPERTIES`, null where the run has no value)."""
    frame = inputs.graph.nodes["Customer"].select("customer_id")
    for prop, dtype in WRITEBACK_PROPERTIES.items():
        values = pl.lit(None, dtype=dtype).alias(prop)
        for result, column in _WRITEBACK_SOURCES[prop]:
            source = getattr(inputs, result)
            if isinstance(source, pl.DataFrame) and column in source.columns:
                values = source.select("customer_id", pl.col(column).cast(dtype).alias(prop))
                break
        if isinstance(values, pl.Expr):
            frame = frame.with_columns(values)
        else:
            unique = values.unique(subset="customer_id", keep="first", maintain_order=True)
            frame = frame.join(unique, on="customer_id", how="left", maintain_order="left")
    return frame


def derived_nodes(
    summary: pl.DataFrame | None, membership: pl.DataFrame | None, key: str
) -> pl.DataFrame:
    """Cluster or Circle nodes: the summary output's rows, plus any id only the membership has."""
    ids = pl.DataFrame(schema={key: pl.Int64})
    if membership is not None and key in membership.columns:
        ids = membership.select(pl.col(key).cast(pl.Int64)).unique().sort(key)
    if summary is None or key not in summary.columns:
        return ids
    summary = summary.with_columns(pl.col(key).cast(pl.Int64)).unique(subset=key, keep="first")
    missing = ids.join(summary.select(key), on=key, how="anti")
    return pl.concat([summary, missing], how="diagonal_relaxed")
