"""The run report: one self-contained ``report.html`` that opens offline.

No scripts, fonts, images or style sheets are fetched: the CSS is inline and every chart is
inline SVG drawn here (cluster drawings use an igraph Kamada-Kawai layout, deterministic). Every
piece of data is HTML-escaped, because customer names, ids and sectors come from the input and
may hold markup.

Sections: counts by tier, the most severe alerts, cluster size distribution, the riskiest
clusters with a small drawing of each, banned share by hop, score distributions, the scores'
calibration (a reliability plot and held-out metrics, or why risk_score is uncalibrated), and
the run's parameters. A section whose stage did not run says so.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import igraph as ig
import numpy as np
import polars as pl

from graphkit import __version__
from graphkit.schema import TIERS

if TYPE_CHECKING:
    from graphkit.graph import RiskGraph

TIER_COLOURS: dict[str, str] = {
    "green": "#2e9d57",
    "yellow": "#e0b400",
    "orange": "#ef7d1a",
    "red": "#d2352b",
}
NEUTRAL = "#4a78b5"
TOP_CLUSTERS = 6
TOP_ALERTS = 25
MAX_DRAWN_MEMBERS = 60
SCORE_BINS = 10
SIZE_BINS: tuple[tuple[int, int | None], ...] = (
    (2, 2),
    (3, 3),
    (4, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, 100),
    (101, None),
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d2733;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#b9c4d0;font-size:13px}
main{padding:12px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:16px 0;padding:14px 18px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:6px 0}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e6eaef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.tier{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #e6eaef;border-radius:6px;padding:8px;width:360px}
.muted{color:#6b7785;font-size:13px}
svg text{font-family:inherit}
"""


@dataclass
class ReportInputs:
    """What the report draws from: the run's parameters, graph, manifest sections and frames.

    A frame that is None (its stage did not run) leaves its section saying so.

    Attributes:
        parameters: the run's configuration (``Config.to_dict()``).
        graph: the risk graph (for the cluster drawings); None leaves them out.
        extra: the manifest's extra sections (model, flows totals, ...).
        run_id: the run's id.
        scores: customer_id, contagion_score, gnn_score, risk_score, tier.
        cluster_membership: customer_id, cluster_id.
        cluster_risk: one row per cluster (cluster_id, size, risk_score, tier, ...).
        flows: one row per drawdown (the flows.parquet frame).
        alerts: every customer's final tier (customer_alerts.parquet).
        alert_rows: the alerts.csv rows.
    """

    parameters: Mapping[str, Any]
    graph: RiskGraph | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    scores: pl.DataFrame | None = None
    cluster_membership: pl.DataFrame | None = None
    cluster_risk: pl.DataFrame | None = None
    flows: pl.DataFrame | None = None
    alerts: pl.DataFrame | None = None
    alert_rows: pl.DataFrame | None = None


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(frame: pl.DataFrame, tier_column: str | None = "tier") -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for name, value in row.items():
            if name == tier_column and value in TIER_COLOURS:
                cells.append(
                    f'<td><span class="tier" style="background:{TIER_COLOURS[value]}">'
                    f"{_e(value)}</span></td>"
                )
            elif name.endswith("_link"):
                # A Browser deep link (graphkit.browser.with_links): an http(s) URL built from
                # the configured address, escaped as an attribute; labelled by its query.
                label = name.removesuffix("_link")
                cells.append(
                    f'<td><a href="{_e(value)}">{_e(label)}</a></td>' if value else "<td></td>"
                )
            elif isinstance(value, float) and name.endswith("score"):
                cells.append(f'<td class="num">{value:.2f}</td>')
            elif isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="num">{_e(_fmt(value))}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str] | None = None,
    value_labels: Sequence[str] | None = None,
    title: str = "",
    width: int = 520,
) -> str:
    """A horizontal bar chart as inline SVG (labels left, bars, values right)."""
    row, label_w, value_w = 22, 130, 90
    height = row * len(labels) + 10
    peak = max((v for v in values if v and v > 0), default=1.0)
    span = width - label_w - value_w
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        bar = 0.0 if not value or value <= 0 else span * value / peak
        colour = colours[i] if colours else NEUTRAL
        text = value_labels[i] if value_labels else _fmt(value)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row - 6}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + bar + 5:.1f}" y="{y + 15}" font-size="12">{_e(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _absent(stage: str) -> str:
    return f'<p class="muted">Not available: the {_e(stage)} stage did not run.</p>'


# -- sections ------------------------------------------------------------------------------------


def _tier_section(inputs: ReportInputs) -> str:
    tiers = inputs.alerts
    if tiers is None:
        return _section("Customers by tier", _absent("alerts"), "tiers")
    counts = dict(tiers.group_by("tier").len().iter_rows())
    values = [int(counts.get(t, 0)) for t in TIERS]
    total = sum(values) or 1
    chart = bar_chart(
        list(TIERS),
        values,
        [TIER_COLOURS[t] for t in TIERS],
        [f"{v:,} ({100 * v / total:.1f}%)" for v in values],
        title="customers by tier",
    )
    responses = pl.DataFrame(
        {
            "tier": list(TIERS),
            "customers": values,
            "response": [
                tiers.filter(pl.col("tier") == t).get_column("response").first() or ""
                for t in TIERS
            ],
        }
    )
    alerts = inputs.alert_rows
    lines = ""
    if alerts is not None:
        advised = alerts.filter(pl.col("line_id").is_not_null()).height
        lines = (
            f'<p class="muted">{advised:,} credit lines of alerted customers carry a recommended '
            "limit (alerts.csv).</p>"
        )
    return _section(
        "Customers by tier", chart + _table(responses) + lines + _budget_note(inputs), "tiers"
    )


def _budget_note(inputs: ReportInputs) -> str:
    """The alert budget per tier and, when demanding rules overflow it, by how much."""
    budget = inputs.extra.get("alerts", {}).get("budget")
    if not budget:
        return '<p class="muted">Alert budget off: tiers by the absolute thresholds.</p>'
    parts = []
    for tier in ("red", "orange", "yellow"):
        row = {key: int(value) for key, value in budget[tier].items()}
        over = f", <strong>{row['over']:,} over the budget</strong>" if row["over"] else ""
        parts.append(
            f"{tier} {row['filled']:,} of {row['budget']:,} places "
            f"({row['kept']:,} kept by demanding rules{over})"
        )
    # Every value is a tier name or a count this run computed: nothing from the input.
    return f'<p class="muted">Alert budget: {"; ".join(parts)}.</p>'


def _alerts_section(inputs: ReportInputs) -> str:
    tiers = inputs.alerts
    if tiers is None:
        return _section("Most severe alerts", _absent("alerts"), "alerts")
    rank = {t: i for i, t in enumerate(TIERS)}
    top = (
        tiers.filter(pl.col("tier") != "green")
        .with_columns(pl.col("tier").replace_strict(rank, return_dtype=pl.Int8).alias("_rank"))
        .sort(
            ["_rank", "risk_score", "customer_id"], descending=[True, True, False], nulls_last=True
        )
        .head(TOP_ALERTS)
    )
    if inputs.graph is not None and "name" in inputs.graph.nodes["Customer"].columns:
        names = inputs.graph.nodes["Customer"].select(pl.col("customer_id").cast(pl.String), "name")
        top = top.join(names, on="customer_id", how="left", maintain_order="left")
    else:
        top = top.with_columns(name=pl.lit(None, dtype=pl.String))
    columns = ["customer_id", "name", "tier", "risk_score", "reasons"]
    rows = inputs.alert_rows
    links = [
        c
        for c in ("customer_360_link", "fund_flow_trace_link")
        if rows is not None and c in rows.columns
    ]
    note_links = ""
    if rows is not None and links:
        per_customer = rows.select(pl.col("customer_id").cast(pl.String), *links).unique(
            subset="customer_id", keep="first", maintain_order=True
        )
        top = top.join(per_customer, on="customer_id", how="left", maintain_order="left")
        columns += links
        note_links = (
            " Each link opens Neo4j Browser with the customer's <code>customer_360</code> and, "
            "for a banned-share alert, its drawdown's <code>fund_flow_trace</code> filled in."
        )
    shown = top.select(columns)
    if shown.is_empty():
        return _section("Most severe alerts", '<p class="muted">No alerts.</p>', "alerts")
    note = f'<p class="muted">The {shown.height} most severe alerted customers.{note_links}</p>'
    return _section("Most severe alerts", note + _table(shown), "alerts")


def _cluster_sizes(inputs: ReportInputs) -> pl.DataFrame | None:
    membership = inputs.cluster_membership
    if membership is None:
        return None
    return membership.group_by("cluster_id").agg(pl.len().alias("size"))


def _size_section(inputs: ReportInputs) -> str:
    sizes = _cluster_sizes(inputs)
    if sizes is None:
        return _section("Cluster size distribution", _absent("clusters"), "sizes")
    labels, values = [], []
    column = sizes.get_column("size")
    for low, high in SIZE_BINS:
        inside = column >= low if high is None else (column >= low) & (column <= high)
        labels.append(f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}"))
        values.append(int(inside.sum()))
    summary = (
        f'<p class="muted">{sizes.height:,} clusters; largest {column.max() or 0:,} customers; '
        f"{int(column.sum() or 0):,} customers in clusters.</p>"
    )
    chart = bar_chart(labels, values, title="clusters by size (customers)")
    return _section("Cluster size distribution", summary + chart, "sizes")


def _member_edges(graph: RiskGraph, member_ids: np.ndarray) -> list[tuple[int, int, str]]:
    """Guarantee, shareholding, shared-device and transfer ties among ``member_ids``.

    ``member_ids`` are dense customer ids; returns (local index, local index, kind) with local
    indices into ``member_ids``. Transfer ties join customers whose accounts exchanged money
    (one tie per pair). O(E) filters per call.
    """
    local = {int(c): i for i, c in enumerate(member_ids)}
    wanted = pl.Series(member_ids.astype(np.int32)).implode()
    edges: list[tuple[int, int, str]] = []
    for rel in ("guarantees", "holds_shares"):
        inside = graph.edges[rel].filter(pl.col("src").is_in(wanted) & pl.col("dst").is_in(wanted))
        edges += [(local[s], local[d], rel) for s, d in inside.select("src", "dst").iter_rows()]
    uses = graph.edges["uses_device"].filter(pl.col("src").is_in(wanted))
    pairs = (
        uses.join(uses, on="dst", suffix="_other")
        .filter(pl.col("src") < pl.col("src_other"))
        .select("src", "src_other")
        .unique()
    )
    edges += [(local[s], local[d], "device") for s, d in pairs.iter_rows()]
    owner = graph.account_owner_customer()
    src, dst = graph.endpoints("transfer")
    if len(src):
        payer, payee = owner[src], owner[dst]
        inside = np.isin(payer, member_ids) & np.isin(payee, member_ids) & (payer != payee)
        ties = {(min(a, b), max(a, b)) for a, b in zip(payer[inside], payee[inside], strict=True)}
        edges += [(local[int(a)], local[int(b)], "transfer") for a, b in sorted(ties)]
    return edges


EDGE_COLOURS = {
    "guarantees": "#5b6b7c",
    "holds_shares": "#8c6bb1",
    "device": "#c0392b",
    "transfer": "#2a9d8f",
}


def cluster_drawing(
    n: int, edges: Sequence[tuple[int, int, str]], colours: Sequence[str], size: int = 340
) -> str:
    """A small inline-SVG drawing of one cluster (Kamada-Kawai layout, deterministic)."""
    graph = ig.Graph(n=n, edges=[(s, d) for s, d, _ in edges])
    coords = np.asarray(graph.layout_kamada_kawai().coords if n > 1 else [[0.0, 0.0]])
    low, high = coords.min(axis=0), coords.max(axis=0)
    flat = high - low <= 0
    pad = 14
    xy = pad + (coords - low) / np.where(flat, 1.0, high - low) * (size - 2 * pad)
    # A degenerate axis (one member, or members on a line) is centred, not pinned to an edge.
    xy[:, flat] = size / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img">'
    ]
    for s, d, kind in edges:
        (x1, y1), (x2, y2) = xy[s], xy[d]
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{EDGE_COLOURS.get(kind, "#999")}" stroke-width="1.2" opacity="0.7"/>'
        )
    radius = 6 if n <= 25 else 4
    for (x, y), colour in zip(xy, colours, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}" '
            'stroke="#fff" stroke-width="1"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _top_clusters_section(inputs: ReportInputs) -> str:
    title = "Riskiest clusters"
    membership = inputs.cluster_membership
    if membership is None:
        return _section(title, _absent("clusters"), "clusters")
    sizes = membership.group_by("cluster_id").agg(pl.len().alias("size"))
    risk = inputs.cluster_risk
    key = pl.col("cluster_id").cast(pl.String)
    table = sizes.with_columns(key)
    if risk is not None and "risk_score" in risk.columns:
        extra = [c for c in ("risk_score", "tier") if c in risk.columns]
        table = table.join(risk.select(key, *extra), on="cluster_id", how="left")
        table = table.sort(["risk_score", "size"], descending=True, nulls_last=True)
    else:
        table = table.sort(["size", "cluster_id"], descending=[True, False])
    top = table.head(TOP_CLUSTERS)
    if top.is_empty():
        return _section(title, '<p class="muted">No clusters.</p>', "clusters")
    tiers = inputs.alerts
    legend = (
        '<p class="muted">Dots are customers coloured by their tier; grey lines guarantees, '
        "purple shareholdings, red shared devices, teal transfers.</p>"
    )
    cards = []
    members_all = membership.select(pl.col("customer_id").cast(pl.String), key)
    for row in top.iter_rows(named=True):
        members = members_all.filter(pl.col("cluster_id") == row["cluster_id"]).head(
            MAX_DRAWN_MEMBERS
        )
        if tiers is not None:
            members = members.join(
                tiers.select("customer_id", "tier"), on="customer_id", how="left"
            )
            colours = [TIER_COLOURS.get(t or "", NEUTRAL) for t in members.get_column("tier")]
        else:
            colours = [NEUTRAL] * members.height
        drawing = ""
        if inputs.graph is not None:
            ids = inputs.graph.ids("Customer", members.get_column("customer_id"))
            edges = _member_edges(inputs.graph, ids)
            drawing = cluster_drawing(members.height, edges, colours)
        facts = [f"{row['size']:,} customer{'s' if row['size'] != 1 else ''}"]
        if row.get("risk_score") is not None:
            facts.append(f"risk {row['risk_score']:.2f}")
        if row.get("tier"):
            facts.append(f"tier {row['tier']}")
        if row["size"] > MAX_DRAWN_MEMBERS:
            facts.append(f"first {MAX_DRAWN_MEMBERS} drawn")
        cards.append(
            f'<div class="card"><h3>cluster {_e(row["cluster_id"])}</h3>'
            f'<p class="muted">{_e(", ".join(facts))}</p>{drawing}</div>'
        )
    return _section(title, legend + f'<div class="grid">{"".join(cards)}</div>', "clusters")


# The flows stage's banned amount by hop of arrival (banned_hop_0 .. banned_hop_H).
_HOP_COLUMN = re.compile(r"^banned(?:_amount)?_hop_?(\d+)$")


def _flows_section(inputs: ReportInputs) -> str:
    title = "Banned share by hop"
    flows = inputs.flows
    if flows is None or "banned_amount" not in flows.columns:
        return _section(title, _absent("flows"), "flows")
    drawn = float(flows.get_column("amount").sum() or 0.0)
    banned = float(flows.get_column("banned_amount").sum() or 0.0)
    facts = [
        ("drawdowns traced", f"{flows.height:,}"),
        ("drawn amount", _fmt(drawn)),
        (
            "reached banned sectors",
            f"{_fmt(banned)} ({100 * banned / drawn:.1f}%)" if drawn else "0",
        ),
    ]
    if "banned_amount_3plus" in flows.columns and banned:
        three = float(flows.get_column("banned_amount_3plus").sum() or 0.0)
        facts.append(("of the banned amount, at 3+ hops", f"{100 * three / banned:.1f}%"))
    hop_columns = sorted(
        ((int(m.group(1)), c) for c in flows.columns if (m := _HOP_COLUMN.match(c))),
    )
    if hop_columns and drawn:
        labels = [f"hop {h}" for h, _ in hop_columns]
        values = [float(flows.get_column(c).sum() or 0.0) / drawn for _, c in hop_columns]
        caption = "Share of all drawn money that reached banned sectors, by hop of arrival."
    elif "min_hops_to_banned" in flows.columns and drawn:
        by_hop = (
            flows.filter(pl.col("min_hops_to_banned").is_not_null())
            .group_by("min_hops_to_banned")
            .agg(pl.col("banned_amount").sum())
            .sort("min_hops_to_banned")
        )
        labels = [
            f"{h} hop{'s' if h != 1 else ''}" for h in by_hop.get_column("min_hops_to_banned")
        ]
        values = [v / drawn for v in by_hop.get_column("banned_amount")]
        caption = (
            "Share of all drawn money that reached banned sectors, by the drawdown's minimum hop "
            "count to a banned sink."
        )
    else:
        labels, values, caption = [], [], ""
    body = _table(pl.DataFrame({"measure": [k for k, _ in facts], "value": [v for _, v in facts]}))
    if labels:
        chart = bar_chart(
            labels, values, value_labels=[f"{100 * v:.1f}%" for v in values], title=caption
        )
        body += f'<p class="muted">{_e(caption)}</p>{chart}'
    return _section(title, body, "flows")


def _score_section(inputs: ReportInputs) -> str:
    title = "Score distributions"
    scores = inputs.scores
    if scores is None:
        return _section(title, _absent("scores"), "scores")
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    labels = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(SCORE_BINS)]
    charts = []
    for column in ("contagion_score", "gnn_score", "risk_score"):
        if column not in scores.columns:
            continue
        values = scores.get_column(column).drop_nulls().drop_nans().to_numpy()
        counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=edges)
        chart = bar_chart(labels, [int(c) for c in counts], width=360, title=column)
        mean = f"mean {values.mean():.3f}" if len(values) else "no values"
        charts.append(
            f'<div class="card"><h3>{_e(column)}</h3><p class="muted">{len(values):,} customers, '
            f"{_e(mean)}</p>{chart}</div>"
        )
    return _section(title, f'<div class="grid">{"".join(charts)}</div>', "scores")


RELIABILITY_COLOURS: dict[str, str] = {
    "risk_score": "#d2352b",
    "gnn_score": NEUTRAL,
    "contagion_score": "#8a5cb8",
    "rule_score": "#6b7785",
}


def reliability_chart(columns: Mapping[str, Any], size: int = 320) -> str:
    """A reliability plot as inline SVG: per score column, mean score (x) against the default
    rate (y) of each equal-mass bin, with the diagonal of perfect calibration. Both axes span
    [0, the largest value shown], so the low scores of a rare event are not squeezed."""
    points = {
        name: [(b["mean_score"], b["default_rate"]) for b in m.get("reliability", [])]
        for name, m in columns.items()
    }
    peak = max((max(x, y) for pts in points.values() for x, y in pts), default=1.0)
    peak = min(1.0, max(0.05, math.ceil(peak * 10) / 10))
    pad, span = 36, size - 50

    def xy(x: float, y: float) -> tuple[float, float]:
        return pad + span * x / peak, 10 + span * (1 - y / peak)

    x0, y0 = xy(0, 0)
    x1, y1 = xy(peak, peak)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 140}" height="{size}" '
        f'viewBox="0 0 {size + 140} {size}" role="img" aria-label="reliability plot">',
        f'<rect x="{pad}" y="10" width="{span}" height="{span}" fill="none" stroke="#dde3ea"/>',
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#9aa5b1" '
        'stroke-dasharray="4 3"/>',
        f'<text x="{pad}" y="{size - 8}" font-size="11">0</text>',
        f'<text x="{pad + span}" y="{size - 8}" font-size="11" text-anchor="end">{peak:g}</text>',
        f'<text x="{pad + span / 2}" y="{size - 8}" font-size="11" text-anchor="middle">'
        "mean score</text>",
        f'<text x="{pad - 4}" y="20" font-size="11" text-anchor="end">{peak:g}</text>',
        f'<text x="12" y="{10 + span / 2}" font-size="11" '
        f'transform="rotate(-90 12 {10 + span / 2})" text-anchor="middle">default rate</text>',
    ]
    for i, (name, pts) in enumerate(points.items()):
        colour = RELIABILITY_COLOURS.get(name, NEUTRAL)
        coords = [xy(min(x, peak), min(y, peak)) for x, y in pts]
        if coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
            parts.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in coords
            )
        parts.append(
            f'<rect x="{size - 4}" y="{14 + 18 * i}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{size + 10}" y="{23 + 18 * i}" font-size="12">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _calibration_section(inputs: ReportInputs) -> str:
    title = "Calibration of the scores"
    evaluation = inputs.extra.get("model_eval") or {}
    calibration = inputs.extra.get("calibration") or evaluation.get("calibration") or {}
    held_out = evaluation.get("scores")
    if inputs.scores is None and not calibration:
        return _section(title, _absent("scores"), "calibration")
    if not calibration.get("calibrated") or not held_out:
        reason = calibration.get("reason", "the run recorded no calibration")
        return _section(
            title,
            f'<p class="muted">risk_score is <b>uncalibrated</b>: {_e(reason)}. It is the '
            "label-free score, not a probability of default.</p>",
            "calibration",
        )
    columns = held_out.get("columns", {})
    frame = pl.DataFrame(
        {
            "score": list(columns),
            "ROC-AUC": [m["roc_auc"] for m in columns.values()],
            "PR-AUC": [m["pr_auc"] for m in columns.values()],
            "Brier": [m["brier"] for m in columns.values()],
            "ECE": [m["ece"] for m in columns.values()],
        },
        schema={
            "score": pl.String,
            "ROC-AUC": pl.Float64,
            "PR-AUC": pl.Float64,
            "Brier": pl.Float64,
            "ECE": pl.Float64,
        },
    )
    first = next(iter(columns.values()), {})
    note = (
        f"risk_score is the calibrated probability of default ({_e(calibration.get('method'))}"
        f" calibration of a stack of {_e(', '.join(calibration.get('parts', [])))}, fitted on "
        f"the validation split). Held-out test customers: {first.get('customers', 0):,}, "
        f"{first.get('positives', 0):,} defaulted; ECE over {_e(held_out.get('ece_binning'))}."
        " contagion_score here is seeded by the training split's defaults only."
    )
    body = (
        f'<p class="muted">{note}</p><div class="grid"><div>{reliability_chart(columns)}</div>'
        f"<div>{_table(frame, tier_column=None)}</div></div>"
    )
    return _section(title, body, "calibration")


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out.append((prefix, "" if value is None else str(value)))


def _parameters_section(inputs: ReportInputs) -> str:
    pairs: list[tuple[str, str]] = []
    _flatten("", inputs.parameters, pairs)
    policy = inputs.extra.get("alerts", {}).get("policy")
    if policy:
        _flatten("alert policy", policy, pairs)
    frame = pl.DataFrame(
        {"parameter": [k for k, _ in pairs], "value": [v for _, v in pairs]},
        schema={"parameter": pl.String, "value": pl.String},
    )
    return _section("Run parameters", _table(frame, tier_column=None), "parameters")


def build_report(inputs: ReportInputs) -> str:
    """The report as one HTML document (a string); escapes every value taken from the data."""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    counts = ""
    if inputs.graph is not None:
        summary = inputs.graph.summary()["nodes"]
        counts = ", ".join(
            f"{summary.get(k, 0):,} {k.lower()}s" for k in ("Customer", "CreditLine", "Account")
        )
    sections = [
        _tier_section(inputs),
        _alerts_section(inputs),
        _size_section(inputs),
        _top_clusters_section(inputs),
        _flows_section(inputs),
        _score_section(inputs),
        _calibration_section(inputs),
        _parameters_section(inputs),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>graphkit run report</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>graphkit run report</h1>"
        f"<p>{'run ' + _e(inputs.run_id) + ' · ' if inputs.run_id else ''}"
        f"{_e(created)} · graphkit {_e(__version__)}"
        f"{' · ' + _e(counts) if counts else ''}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )
