"""The evidence of each alert as graph elements Neo4j Browser can draw.

:meth:`graphkit.store.neo4j.Neo4jTarget.write_back` writes, for the run's alerted customers
(the ``alerts.csv`` rows), the frames :func:`evidence_frames` builds:

* ``(:Customer)-[:ALERTED]->(:Alert {customer_id, tier, response, rules, reasons,
  evidence_drawdown, run_id})``, one per alerted customer;
* ``(:Alert)-[:EVIDENCE]->(:Evidence {evidence_id, kind, run_id, ...})``, and from each evidence
  node ``[:ON_PATH {step}]`` to the existing nodes it runs through, in order:

  - ``kind: "flow_path"`` (also labelled ``FlowPath``), for a ``banned_share`` alert: each path
    of ``flow_paths.parquet`` of the drawdown the alert names (``evidence_drawdown``), with
    ``drawdown_id, path_rank, hops, transfer_ids, sink_account, amount``; ``ON_PATH`` to the
    disbursement account (step 0) and the destination account of each transfer (step i);
  - ``kind: "guarantee_cycle"`` (``GuaranteeCycle``), for a ``circle_default`` alert: up to
    :data:`CYCLES_PER_ALERT` listed cycles of the customer's circle that run through it
    (``circle_summary.parquet``'s ``cycles``, shortest first), with ``circle_id, cycle_rank,
    customer_ids``; ``ON_PATH`` to each guarantor in cycle order;
  - ``kind: "shared_devices"`` (``SharedDevices``), for a ``ring`` alert: the ring's shared
    devices (:func:`graphkit.analytics.rings.ring_devices`), with ``ring_id, device_ids``;
    ``ON_PATH`` to each device.

Evidence ids are ``flow:<drawdown_id>:<rank>``, ``cycle:<circle_id>:<rank>``, ``ring:<ring_id>``:
alerts that share evidence share the node. Like the other derived nodes these are the *current*
view: a write-back deletes the Alert and Evidence nodes of other runs and merges its own, so
writing a run again changes nothing. The queries draw the evidence as paths of the loaded graph
(``fund_flow_trace``'s ``evidence``, ``alert_evidence``): the ``TRANSFER`` relationships of a flow
path's ``transfer_ids`` in order, the ``GUARANTEES`` around a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from graphkit.graph import RiskGraph

ALERT_LABEL = "Alert"
EVIDENCE_LABEL = "Evidence"
# kind -> (extra label, label of the nodes ON_PATH points to, their key)
EVIDENCE_KINDS: dict[str, tuple[str, str, str]] = {
    "flow_path": ("FlowPath", "Account", "account_id"),
    "guarantee_cycle": ("GuaranteeCycle", "Customer", "customer_id"),
    "shared_devices": ("SharedDevices", "Device", "device_id"),
}
CYCLES_PER_ALERT = 3
EVIDENCE_SCHEMA: tuple[str, ...] = (
    "CREATE CONSTRAINT graphkit_alert_customer_id IF NOT EXISTS "
    "FOR (n:Alert) REQUIRE n.customer_id IS UNIQUE",
    "CREATE CONSTRAINT graphkit_evidence_evidence_id IF NOT EXISTS "
    "FOR (n:Evidence) REQUIRE n.evidence_id IS UNIQUE",
    "CREATE INDEX graphkit_evidence_drawdown_id IF NOT EXISTS FOR (n:Evidence) ON (n.drawdown_id)",
)
_ALERT_PROPS = ("tier", "response", "rules", "reasons", "risk_score", "evidence_drawdown")


@dataclass(frozen=True)
class EvidenceFrames:
    """What the write-back sends: ``alerts`` (customer_id and :data:`_ALERT_PROPS`), per kind
    the evidence ``nodes`` (evidence_id and properties), their ``steps`` (evidence_id, key of
    the node on the path, step) and ``links`` (customer_id, evidence_id)."""

    alerts: pl.DataFrame
    nodes: dict[str, pl.DataFrame]
    steps: dict[str, pl.DataFrame]
    links: pl.DataFrame


def _fired(rule: str) -> pl.Expr:
    return pl.col("rules").fill_null("").str.contains(f"(^|,){rule}(,|$)")


def alert_nodes(alert_rows: pl.DataFrame) -> pl.DataFrame:
    """One row per alerted customer of the ``alerts.csv`` rows (they repeat per credit line)."""
    columns = [c for c in _ALERT_PROPS if c in alert_rows.columns]
    return alert_rows.select(pl.col("customer_id").cast(pl.String), *columns).unique(
        subset="customer_id", keep="first", maintain_order=True
    )


def flow_evidence(
    alerts: pl.DataFrame, flow_paths: pl.DataFrame, graph: RiskGraph
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(nodes, steps, links) of the flow paths of each banned-share alert's drawdown."""
    if "evidence_drawdown" not in alerts.columns:
        alerts = alerts.with_columns(evidence_drawdown=pl.lit(None, dtype=pl.String))
    wanted = alerts.filter(
        _fired("banned_share") & pl.col("evidence_drawdown").is_not_null()
    ).select("customer_id", pl.col("evidence_drawdown").cast(pl.String).alias("drawdown_id"))
    paths = (
        flow_paths.with_columns(pl.col("drawdown_id").cast(pl.String))
        .join(wanted.select("drawdown_id").unique(), on="drawdown_id", how="semi")
        .with_columns(
            pl.format("flow:{}:{}", "drawdown_id", "path_rank").alias("evidence_id"),
            pl.col("transfer_ids").cast(pl.List(pl.String)),
        )
        .sort("drawdown_id", "path_rank")
    )
    nodes = paths.select(
        "evidence_id",
        "drawdown_id",
        pl.col("path_rank").cast(pl.Int64),
        pl.col("hops").cast(pl.Int64),
        "transfer_ids",
        pl.col("sink_account").cast(pl.String),
        pl.col("amount").cast(pl.Float64),
    )
    accounts = graph.keys("Account")
    drawdown_edges, transfer_edges = graph.edges["drawdown"], graph.edges["transfer"]
    drawdowns = pl.DataFrame(
        {
            "drawdown_id": drawdown_edges.get_column("drawdown_id").cast(pl.String),
            "d": accounts.gather(drawdown_edges.get_column("dst")),
        }
    )
    transfers = pl.DataFrame(
        {
            "transfer_id": transfer_edges.get_column("transfer_id").cast(pl.String),
            "d": accounts.gather(transfer_edges.get_column("dst")),
        }
    )
    start = nodes.join(drawdowns, on="drawdown_id").select(
        pl.col("evidence_id").alias("s"), "d", pl.lit(0, dtype=pl.Int64).alias("step")
    )
    hops = (
        nodes.select("evidence_id", "transfer_ids")
        .with_columns(pl.int_ranges(1, pl.col("transfer_ids").list.len() + 1).alias("step"))
        .explode("transfer_ids", "step", empty_as_null=True)
        .drop_nulls("transfer_ids")
        .join(transfers, left_on="transfer_ids", right_on="transfer_id")
        .select(pl.col("evidence_id").alias("s"), "d", pl.col("step").cast(pl.Int64))
    )
    links = wanted.join(paths.select("drawdown_id", "evidence_id"), on="drawdown_id").select(
        "customer_id", "evidence_id"
    )
    return nodes, pl.concat([start, hops]).sort("s", "step"), links


def cycle_evidence(
    alerts: pl.DataFrame, circle_membership: pl.DataFrame, circle_summary: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(nodes, steps, links) of the guarantee cycles through each circle-default alert's
    customer: up to :data:`CYCLES_PER_ALERT` per customer, in the summary's (shortest first)
    order."""
    hit = alerts.filter(_fired("circle_default")).select("customer_id")
    members = circle_membership.select(
        pl.col("customer_id").cast(pl.String), pl.col("circle_id").cast(pl.Int64)
    ).join(hit, on="customer_id", how="semi")
    cycles = (
        circle_summary.select(pl.col("circle_id").cast(pl.Int64), "cycles")
        .join(members.select("circle_id").unique(), on="circle_id", how="semi")
        .explode("cycles", empty_as_null=True)
        .drop_nulls("cycles")
        .with_columns(pl.int_range(1, pl.len() + 1).over("circle_id").alias("cycle_rank"))
        .with_columns(
            pl.format("cycle:{}:{}", "circle_id", "cycle_rank").alias("evidence_id"),
            pl.col("cycles").cast(pl.List(pl.String)).alias("customer_ids"),
        )
    )
    through = (
        cycles.select("evidence_id", "circle_id", "cycle_rank", "customer_ids")
        .explode("customer_ids", empty_as_null=True)
        .rename({"customer_ids": "customer_id"})
        .join(members, on=["customer_id", "circle_id"])
        .sort("customer_id", "cycle_rank")
        .group_by("customer_id", maintain_order=True)
        .head(CYCLES_PER_ALERT)
    )
    links = through.select("customer_id", "evidence_id")
    nodes = cycles.join(links.select("evidence_id").unique(), on="evidence_id", how="semi").select(
        "evidence_id",
        "circle_id",
        pl.col("cycle_rank").cast(pl.Int64),
        "customer_ids",
        pl.col("customer_ids").list.len().cast(pl.Int64).alias("length"),
    )
    steps = _steps(nodes, "customer_ids")
    return nodes.sort("evidence_id"), steps.sort("s", "step"), links


def _steps(nodes: pl.DataFrame, column: str) -> pl.DataFrame:
    """One row per element of each evidence node's ``column`` list: ``s`` (evidence id), ``d``
    (the element), ``step`` (its position from 0)."""
    return (
        nodes.select(
            pl.col("evidence_id").alias("s"),
            pl.col(column).alias("d"),
            pl.int_ranges(0, pl.col(column).list.len()).alias("step"),
        )
        .explode("d", "step", empty_as_null=False)
        .with_columns(pl.col("step").cast(pl.Int64))
    )


def ring_evidence(
    alerts: pl.DataFrame, ring_membership: pl.DataFrame, ring_devices: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(nodes, steps, links) of the shared devices of each ring alert's ring."""
    hit = alerts.filter(_fired("ring")).select("customer_id")
    members = (
        ring_membership.select(
            pl.col("customer_id").cast(pl.String), pl.col("ring_id").cast(pl.Int64)
        )
        .join(hit, on="customer_id", how="semi")
        .with_columns(pl.format("ring:{}", "ring_id").alias("evidence_id"))
    )
    devices = (
        ring_devices.select(pl.col("ring_id").cast(pl.Int64), pl.col("device_id").cast(pl.String))
        .join(members.select("ring_id").unique(), on="ring_id", how="semi")
        .sort("ring_id", "device_id")
    )
    nodes = (
        devices.group_by("ring_id", maintain_order=True)
        .agg(pl.col("device_id").alias("device_ids"))
        .select(pl.format("ring:{}", "ring_id").alias("evidence_id"), "ring_id", "device_ids")
    )
    steps = _steps(nodes, "device_ids")
    links = members.join(nodes.select("evidence_id"), on="evidence_id", how="semi").select(
        "customer_id", "evidence_id"
    )
    return nodes, steps, links


def evidence_frames(
    graph: RiskGraph,
    alert_rows: pl.DataFrame,
    *,
    flow_paths: pl.DataFrame | None = None,
    circle_membership: pl.DataFrame | None = None,
    circle_summary: pl.DataFrame | None = None,
    ring_membership: pl.DataFrame | None = None,
    ring_devices: pl.DataFrame | None = None,
) -> EvidenceFrames:
    """The alerts of ``alert_rows`` and the evidence of each kind whose inputs are present."""
    alerts = alert_nodes(alert_rows)
    parts: dict[str, tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]] = {}
    if flow_paths is not None and flow_paths.height:
        parts["flow_path"] = flow_evidence(alerts, flow_paths, graph)
    if (
        circle_membership is not None
        and circle_summary is not None
        and "cycles" in circle_summary.columns
    ):
        parts["guarantee_cycle"] = cycle_evidence(alerts, circle_membership, circle_summary)
    if ring_membership is not None and ring_devices is not None:
        parts["shared_devices"] = ring_evidence(alerts, ring_membership, ring_devices)
    links = pl.concat(
        [pl.DataFrame(schema={"customer_id": pl.String, "evidence_id": pl.String})]
        + [part[2] for part in parts.values()]
    ).unique(maintain_order=True)
    return EvidenceFrames(
        alerts=alerts,
        nodes={kind: part[0] for kind, part in parts.items()},
        steps={kind: part[1] for kind, part in parts.items()},
        links=links,
    )
