"""The graphkit run: validate, build the graph, analyse, score, alert, and publish a run directory.

:func:`run_pipeline` is what ``graphkit run`` calls. Each stage is a function of a
:class:`RunContext`: it reads the graph, the config and earlier stages' ``results``, and adds
output frames (``outputs``, keyed by file name in the run directory) and results for later
stages. Stages never write files themselves except through ``ctx.out_dir`` (the temporary run
directory), so the run directory is published whole or not at all.

Shared per-customer results (``ctx.results``), each a polars frame keyed by ``customer_id``:

=====================  ==============================================================
key                    columns
=====================  ==============================================================
``circle_membership``  customer_id, circle_id
``ring_membership``    customer_id, ring_id
``customer_flows``     customer_id, drawn_amount, banned_amount, banned_share
``cluster_membership`` customer_id, cluster_id
``contagion``          customer_id, contagion_score, debtrank, pagerank
``gnn``                customer_id, gnn_score
``scores``             customer_id, contagion_score, gnn_score, risk_score, tier
=====================  ==============================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from graphkit import __version__
from graphkit.atomic import atomic_directory
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress, task
from graphkit.store.embedded import save_snapshot
from loaders.sources import LoadedInput, read_input

# torch's OpenMP threads spin while they wait for each other. On a 2-core machine that is busy
# with anything else a spinning thread steals the core its partner needs, and GNN training ran
# 20-40x slower (bench/pipeline_scale.py, BENCHMARKS.md). Sleeping waiters cost little when
# the machine is idle. Set before torch is imported (stages import it lazily); a value the user
# exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class RunContext:
    """What a stage sees: the graph, the config, earlier results, and where outputs go."""

    graph: RiskGraph
    config: Config
    out_dir: Path
    run_id: str = ""
    progress: Progress = SILENT
    outputs: dict[str, pl.DataFrame] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    manifest_extra: dict[str, Any] = field(default_factory=dict)


Stage = Callable[[RunContext], None]


@dataclass
class RunSummary:
    """What a finished run reports back to the CLI."""

    run_dir: Path
    manifest: dict[str, Any]


def _stages() -> list[tuple[str, Stage]]:
    """The stage list, in dependency order; imported lazily so ``validate`` stays light."""
    from graphkit.alerts import alerts_stage
    from graphkit.analytics.circles import circles_stage
    from graphkit.analytics.cluster_risk import cluster_risk_stage
    from graphkit.analytics.clusters import clusters_stage
    from graphkit.analytics.flows import flows_stage
    from graphkit.analytics.rings import rings_stage
    from graphkit.report import report_stage
    from graphkit.scoring import contagion_stage, gnn_stage, scores_stage

    return [
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
    ]


def load_graph(input_dir: Path | str, progress: Progress = SILENT) -> tuple[RiskGraph, LoadedInput]:
    """Validate and read ``input_dir`` and build its :class:`RiskGraph`.

    Raises :class:`loaders.sources.InputError` (all problems listed) before anything is built.
    """
    with task(progress, "read input"):
        loaded = read_input(Path(input_dir), progress=progress)
    with task(progress, "build graph"):
        graph = RiskGraph.from_tables(loaded.tables)
    return graph, loaded


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_outputs(outputs: dict[str, pl.DataFrame], directory: Path) -> dict[str, int]:
    """Write each frame by its file name's extension; returns rows per file."""
    rows: dict[str, int] = {}
    for name, frame in outputs.items():
        path = directory / name
        if name.endswith(".parquet"):
            frame.write_parquet(path)
        elif name.endswith(".csv"):
            frame.write_csv(path)
        elif name.endswith(".json"):
            path.write_text(json.dumps(frame.to_dicts(), indent=2, default=str))
        else:
            raise ValueError(f"no writer for output {name!r}")
        rows[name] = frame.height
    return rows


def run_pipeline(
    input_dir: Path | str,
    out_dir: Path | str,
    config: Config,
    *,
    progress: Progress = SILENT,
    neo4j: Any = None,
    stages: list[str] | None = None,
    engine_stages: dict[str, Stage] | None = None,
    engine: dict[str, Any] | None = None,
) -> RunSummary:
    """Run graphkit on ``input_dir`` and publish the run directory ``out_dir`` atomically.

    ``neo4j`` (a :class:`graphkit.store.neo4j.Neo4jTarget`) also loads the graph into Neo4j and
    writes results back. ``stages`` restricts the run to the named stages (and no others).
    ``engine_stages`` replaces stages by name (the Spark engine's, :mod:`graphkit.pipeline_spark`)
    and ``engine`` describes that engine in the manifest (default: embedded).
    """
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    graph, loaded = load_graph(input_dir, progress)
    timings["load"] = round(time.perf_counter() - clock, 3)

    replaced = engine_stages or {}
    selected = [(n, replaced.get(n, s)) for n, s in _stages() if stages is None or n in stages]
    if stages is not None:
        unknown = sorted(set(stages) - {n for n, _ in _stages()})
        if unknown:
            raise ValueError(f"unknown stage(s): {', '.join(unknown)}")
    with atomic_directory(out_dir) as tmp:
        ctx = RunContext(graph=graph, config=config, out_dir=tmp, run_id=run_id, progress=progress)
        clock = time.perf_counter()
        with task(progress, "write snapshot"):
            save_snapshot(graph, tmp / "snapshot")
        timings["snapshot"] = round(time.perf_counter() - clock, 3)
        if neo4j is not None:
            clock = time.perf_counter()
            neo4j.load_graph(graph, progress=progress)
            timings["neo4j_load"] = round(time.perf_counter() - clock, 3)
        for name, stage in selected:
            clock = time.perf_counter()
            with task(progress, name):
                stage(ctx)
            timings[name] = round(time.perf_counter() - clock, 3)
        with task(progress, "write outputs"):
            rows = write_outputs(ctx.outputs, tmp)
        if neo4j is not None:
            clock = time.perf_counter()
            neo4j.write_back(ctx, progress=progress)
            timings["neo4j_write_back"] = round(time.perf_counter() - clock, 3)
        manifest = {
            "run_id": run_id,
            "graphkit_version": __version__,
            "created_at": started.isoformat(),
            "input": {
                "directory": str(Path(input_dir).absolute()),
                "files": [
                    {
                        "table": f.table,
                        "path": str(f.path),
                        "format": f.format,
                        "rows": f.rows,
                        "sha256": _file_digest(f.path),
                    }
                    for f in loaded.files
                ],
            },
            "engine": engine or {"engine": "embedded"},
            "parameters": config.to_dict(),
            "stages": [n for n, _ in selected],
            "timings_seconds": timings,
            "counts": {"graph": graph.summary(), "outputs": rows, **ctx.counts},
            **({"neo4j": neo4j.describe()} if neo4j is not None else {}),
            **ctx.manifest_extra,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return RunSummary(run_dir=Path(out_dir), manifest=manifest)
