"""Ground truth: the schemas of ``_truth/``, defaults and labels (with contagion), the planted
structures and bursts, and the counts ``truth.json`` records."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from graphkit.schema import TABLES
from loaders.synthetic.world import (
    CAUSES,
    _Chunk,
    _dates,
    _sigmoid,
)

TRUTH_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "circles": {"circle_id": pl.Int64(), "customer_id": pl.String()},
    "groups": {"group_id": pl.Int64(), "customer_id": pl.String()},
    "rings": {"ring_id": pl.Int64(), "customer_id": pl.String()},
    "hub_devices": {"device_id": pl.String(), "customers": pl.Int64()},
    "chains": {
        "drawdown_id": pl.String(),
        "hops": pl.Int64(),
        "transfer_ids": pl.List(pl.String()),
        "customer_id": pl.String(),
        "account_id": pl.String(),
        "sink_account": pl.String(),
        "sink_sector": pl.String(),
        "kind": pl.String(),
        "banned_amount": pl.Float64(),
    },
    "noise_paths": {
        "drawdown_id": pl.String(),
        "kind": pl.String(),
        "hops": pl.Int64(),
        "transfer_ids": pl.List(pl.String()),
    },
    "bursts": {"customer_id": pl.String(), "day": pl.Date(), "drawdowns": pl.Int64()},
    "defaults": {
        "customer_id": pl.String(),
        "cause": pl.String(),
        "default_date": pl.Date(),
        "labelled": pl.Boolean(),
    },
    "cosmetics": {
        "customer_id": pl.String(),
        "drawdowns": pl.Int64(),
        "period_days": pl.Float64(),
        "amount_share": pl.Float64(),
    },
}


def _defaults(c: _Chunk, roles: dict[str, Any]) -> None:
    """Independent and burst defaults, then contagion waves along guarantee, circle, ring ties."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    end_day = w.start_day + w.days
    cause = np.full(k, -1, np.int64)
    day = np.zeros(k, np.int64)
    independent = rng.random(k) < _sigmoid(r.default_logit + 1.1 * roles["risk"])
    burst = roles["burst"] & (rng.random(k) < r.burst_default_prob)
    cause[independent] = CAUSES.index("independent")
    cause[burst] = CAUSES.index("burst")
    day[cause >= 0] = end_day + rng.integers(0, 60, int((cause >= 0).sum()))

    edges = c.truth.pop("guarantee_edges")
    g, b = edges.get_column("a").to_numpy(), edges.get_column("b").to_numpy()
    src = [b, g]
    dst = [g, b]
    prob = [np.full(len(g), r.guarantee_contagion), np.full(len(g), r.guarantee_contagion_back)]
    kind = [np.full(2 * len(g), CAUSES.index("guarantee_contagion"))]
    for structures, p, name in (
        (roles["circles"], r.circle_contagion, "circle"),
        (roles["rings"], r.ring_contagion, "ring_contagion"),
    ):
        for members in structures:
            s, d = np.meshgrid(members, members, indexing="ij")
            off = s != d
            src.append(s[off])
            dst.append(d[off])
            prob.append(np.full(int(off.sum()), p))
            kind.append(np.full(int(off.sum()), CAUSES.index(name)))
    e_src, e_dst, e_prob, e_kind = (np.concatenate(x) for x in (src, dst, prob, kind))
    # Circle beats guarantee beats ring when several ties pass the default on at once.
    priority = np.array([9, 9, 1, 2, 0])[e_kind]

    wave = cause >= 0
    for _ in range(r.contagion_waves):
        hit = wave[e_src] & (cause[e_dst] < 0) & (rng.random(len(e_src)) < e_prob)
        lag = rng.integers(3, 26, len(e_src))
        rows = np.flatnonzero(hit)
        rows = rows[np.lexsort((priority[rows], e_dst[rows]))]
        first = rows[np.unique(e_dst[rows], return_index=True)[1]]
        wave = np.zeros(k, bool)
        wave[e_dst[first]] = True
        cause[e_dst[first]] = e_kind[first]
        day[e_dst[first]] = day[e_src[first]] + lag[first]

    defaulted = np.flatnonzero(cause >= 0)
    labelled = rng.random(k) < r.label_share
    c.truth["defaults"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(defaulted),
            "cause": pl.Series(np.array(CAUSES)[cause[defaulted]], dtype=pl.String),
            "default_date": _dates(day[defaulted]),
            "labelled": pl.Series(labelled[defaulted]),
        },
        schema=TRUTH_SCHEMAS["defaults"],
    )
    rows = np.flatnonzero(labelled)
    is_default = cause[rows] >= 0
    c.tables["labels"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(rows),
            "defaulted": pl.Series(is_default),
            "default_date": _dates(day[rows]).set(pl.Series(~is_default), None),
        }
    )


def _structure_truth(c: _Chunk, roles: dict[str, Any]) -> None:
    for name, key, structures in (
        ("circles", "circle_id", roles["circles"]),
        ("groups", "group_id", roles["groups"]),
        ("rings", "ring_id", roles["rings"]),
    ):
        sizes = np.array([len(s) for s in structures], np.int64)
        members = np.concatenate(structures) if structures else np.empty(0, np.int64)
        ids = np.repeat(c.number(name, len(structures)), sizes)
        frame = pl.DataFrame(
            {key: pl.Series(ids, dtype=pl.Int64), "customer_id": c.customer_ids(members)},
            schema=TRUTH_SCHEMAS[name],
        )
        c.truth[name] = frame.sort(key, "customer_id")
    bursts = (
        c.tables["drawdowns"]
        .select("line_id", pl.col("ts").dt.date().alias("day"))
        .join(
            c.tables["credit_lines"].select("line_id", "customer_id"),
            on="line_id",
            maintain_order="left",
        )
        .group_by("customer_id", "day")
        .agg(pl.len().cast(pl.Int64).alias("drawdowns"))
        .filter(pl.col("drawdowns") >= 5)
        .sort("customer_id", "day")
    )
    c.truth["bursts"] = bursts.select(list(TRUTH_SCHEMAS["bursts"]))


class _Counts:
    """Row counts of tables and truth, and the graph's node and relationship counts."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.truth_frames: dict[str, list[pl.DataFrame]] = {name: [] for name in TRUTH_SCHEMAS}
        self.devices = 0
        self.drawn = 0.0
        self.laundered = 0.0

    def add(self, tables: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            self.rows[name] += frame.height
        if "device_links" in tables:  # devices never cross chunks; drawdowns reuse linked ones
            self.devices += tables["device_links"].get_column("device_id").n_unique()
        if "drawdowns" in tables:
            drawdowns = tables["drawdowns"]
            laundered = truth["chains"].filter(pl.col("kind") == "laundering")
            self.drawn += float(drawdowns.get_column("amount").sum())
            self.laundered += float(
                drawdowns.join(laundered, on="drawdown_id", how="semi").get_column("amount").sum()
            )
        for name, frame in truth.items():
            self.truth_frames[name].append(frame)

    def truth(self) -> dict[str, pl.DataFrame]:
        return {
            name: pl.concat([pl.DataFrame(schema=TRUTH_SCHEMAS[name]), *frames])
            for name, frames in self.truth_frames.items()
        }

    def summary(self, truth: dict[str, pl.DataFrame]) -> dict[str, Any]:
        rows = self.rows
        nodes = {
            "Customer": rows["customers"],
            "CreditLine": rows["credit_lines"],
            "Account": rows["accounts"],
            "Merchant": rows["merchants"],
            "Device": self.devices,
            "Sector": rows["sectors"],
        }
        edges = {
            "has_line": rows["credit_lines"],
            "drawdown": rows["drawdowns"],
            "owns": rows["accounts"],
            "transfer": rows["transfers"],
            "in_sector": rows["merchants"],
            "guarantees": rows["guarantees"],
            "holds_shares": rows["shareholdings"],
            "uses_device": rows["device_links"],
        }
        defaults = truth["defaults"]
        labelled = rows["labels"]
        chains = truth["chains"]
        laundering = chains.filter(pl.col("kind") == "laundering")
        drawn = max(self.drawn, 1e-9)
        banned = chains.get_column("banned_amount")
        banned_3plus = chains.filter(pl.col("hops") >= 3).get_column("banned_amount")
        return {
            "tables": dict(rows),
            "nodes": {**nodes, "total": sum(nodes.values())},
            "edges": {**edges, "total": sum(edges.values())},
            "planted": {
                "circles": truth["circles"].get_column("circle_id").n_unique(),
                "groups": truth["groups"].get_column("group_id").n_unique(),
                "rings": truth["rings"].get_column("ring_id").n_unique(),
                "hub_devices": truth["hub_devices"].height,
                "chains": truth["chains"].height,
                "chains_by_hops": {
                    str(h): n
                    for h, n in truth["chains"].group_by("hops").len().sort("hops").iter_rows()
                },
                "chains_by_kind": {
                    kind: chains.filter(pl.col("kind") == kind).height
                    for kind in ("chain", "laundering")
                },
                "diverters": laundering.get_column("customer_id").n_unique(),
                "laundered_drawdown_share": round(laundering.height / max(rows["drawdowns"], 1), 4),
                "laundered_amount_share": round(self.laundered / drawn, 4),
                # What graphkit's flow tracing finds with policy first, W=30 days, H=6.
                "banned_share": round(float(banned.sum()) / drawn, 4),
                "banned_share_3plus": round(float(banned_3plus.sum()) / drawn, 4),
                "noise_paths": truth["noise_paths"].height,
                "burst_days": truth["bursts"].height,
                "burst_customers": truth["bursts"].get_column("customer_id").n_unique(),
                "defaults": defaults.height,
                "defaults_by_cause": {
                    cause: defaults.filter(pl.col("cause") == cause).height for cause in CAUSES
                },
                "labelled": labelled,
                "default_rate": round(defaults.height / max(rows["customers"], 1), 4),
                "cosmetics": truth["cosmetics"].height,
                "cosmetic_defaults": truth["cosmetics"]
                .join(defaults, on="customer_id", how="semi")
                .height,
            },
        }
