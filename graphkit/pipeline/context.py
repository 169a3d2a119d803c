"""What a stage sees and leaves behind: :class:`RunContext` and its typed :class:`StageResults`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from graphkit.alerts import Policy, load_policy
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

if TYPE_CHECKING:
    from gnn.explain import NetworkExplainer
    from gnn.features import CustomerFeatures
    from gnn.train import Split
    from graphkit.analytics.cluster_lineage import PreviousClusters


@dataclass
class StageResults:
    """What stages hand to later stages; a field is None until the stage that fills it ran.

    Per-customer frames are keyed by ``customer_id``; per-cluster and per-circle frames by
    ``cluster_id`` and ``circle_id``.

    Attributes:
        circle_membership: customer_id, circle_id (``circles``).
        circle_summary: one row per guarantee circle (``circles``).
        ring_membership: customer_id, ring_id (``rings``).
        flows: one row per drawdown, the ``flows.parquet`` frame (``flows``).
        customer_flows: customer_id, drawn_amount, banned_amount, banned_share (``flows``).
        cluster_membership: customer_id, cluster_id (``clusters``).
        contagion: customer_id, contagion_score, debtrank, pagerank (``contagion``).
        features: every customer's features as of the snapshot (``gnn``, or ``scores``
            when it needs the rule scores).
        gnn: customer_id, gnn_score (null when no model was trained) (``gnn``).
        split: the GNN's train / validation / test split of the labelled customers (``gnn``;
            None when no model was trained); ``scores`` calibrates on it.
        explainer: the model ``gnn`` trained, with its inputs (None when none was trained);
            ``alerts`` names the neighbours that drove its red and orange customers' scores.
        scores: customer_id, contagion_score, gnn_score, risk_score, tier (``scores``).
        cluster_risk: one row per cluster with its risk score and tier (``cluster_risk``).
        alerts: every customer's final tier, response, risk_score and reasons (``alerts``).
        alert_rows: the ``alerts.csv`` rows, one per alerted customer's line (``alerts``).
    """

    circle_membership: pl.DataFrame | None = None
    circle_summary: pl.DataFrame | None = None
    ring_membership: pl.DataFrame | None = None
    flows: pl.DataFrame | None = None
    customer_flows: pl.DataFrame | None = None
    cluster_membership: pl.DataFrame | None = None
    contagion: pl.DataFrame | None = None
    features: CustomerFeatures | None = None
    gnn: pl.DataFrame | None = None
    split: Split | None = None
    explainer: NetworkExplainer | None = None
    scores: pl.DataFrame | None = None
    cluster_risk: pl.DataFrame | None = None
    alerts: pl.DataFrame | None = None
    alert_rows: pl.DataFrame | None = None


@dataclass
class RunContext:
    """What a stage sees: the graph, the config, earlier results, and where outputs go.

    Attributes:
        graph: the run's risk graph.
        config: the run's configuration.
        out_dir: the temporary run directory (published whole when the run succeeds).
        run_id: the run's id ("" outside a run).
        progress: where stages report.
        policy: the effective alert policy, loaded (and validated) once per run; its
            thresholds tier scores, cluster risk and alerts alike. Loaded from ``config`` when
            not given.
        outputs: frames to write, keyed by file name in the run directory.
        results: what stages hand to later stages.
        counts: numbers for the manifest's ``counts``.
        manifest_extra: sections added to the manifest.
        previous: the previous run's clusters (``--previous``): clusters warm-start from them
            and keep their ids; None for a cold start.
    """

    graph: RiskGraph
    config: Config
    out_dir: Path
    run_id: str = ""
    progress: Progress = SILENT
    policy: Policy | None = None
    outputs: dict[str, pl.DataFrame] = field(default_factory=dict)
    results: StageResults = field(default_factory=StageResults)
    counts: dict[str, int] = field(default_factory=dict)
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    previous: PreviousClusters | None = None

    def __post_init__(self) -> None:
        if self.policy is None:
            self.policy = load_policy(self.config.alerts)

    @property
    def alert_policy(self) -> Policy:
        """:attr:`policy`, typed as always present."""
        assert self.policy is not None  # set by __post_init__
        return self.policy


Stage = Callable[[RunContext], None]
