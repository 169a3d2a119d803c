"""The graphkit run: validate, build the graph, run the stages, publish a run directory.

:func:`run_pipeline` is what ``graphkit run`` calls. Each stage (:mod:`graphkit.pipeline.stages`)
is a function of a :class:`RunContext`: it reads the graph, the config and earlier stages'
typed ``results``, and adds output frames (``outputs``, keyed by file name in the run directory)
and results for later stages. Stages never write files themselves except through
``ctx.out_dir`` (the temporary run directory), so the run directory is published whole or not
at all; the manifest is written here, last.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from graphkit import __version__
from graphkit.atomic import atomic_directory
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.pipeline.context import RunContext, Stage
from graphkit.pipeline.stages import extras_section, select_stages
from graphkit.progress import SILENT, Progress, task
from graphkit.store.embedded import save_snapshot
from loaders.sources import LoadedInput, read_input

if TYPE_CHECKING:
    from graphkit.store.neo4j import Neo4jTarget, WriteBackCounts

# torch's OpenMP threads spin while they wait for each other. On a 2-core machine that is busy
# with anything else a spinning thread steals the core its partner needs, and GNN training ran
# 20-40x slower (bench/pipeline_scale.py, BENCHMARKS.md). Sleeping waiters cost little when
# the machine is idle. Set before torch is imported (stages import it lazily); a value the user
# exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class RunSummary:
    """What a finished run reports back to the CLI."""

    run_dir: Path
    manifest: dict[str, Any]


def _run_id_of(run_dir: Path) -> str | None:
    """The run id in ``run_dir``'s manifest, or None when it has no readable one."""
    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


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


def write_back(
    target: Neo4jTarget, ctx: RunContext, progress: Progress = SILENT, run_id: str | None = None
) -> WriteBackCounts:
    """Write ``ctx``'s results back to Neo4j (:meth:`Neo4jTarget.write_back`) and record what
    was written in the manifest's ``neo4j_write_back``. ``run_id`` defaults to the context's."""
    from graphkit.analytics.rings import ring_devices
    from graphkit.store.neo4j import WriteBackInputs

    r = ctx.results
    devices = None
    if r.ring_membership is not None and r.alert_rows is not None:
        rings = ctx.config.rings
        devices = ring_devices(
            ctx.graph,
            r.ring_membership,
            rings.min_customers_per_device,
            rings.max_customers_per_device,
        )
    inputs = WriteBackInputs(
        graph=ctx.graph,
        circle_membership=r.circle_membership,
        circle_summary=r.circle_summary,
        ring_membership=r.ring_membership,
        customer_flows=r.customer_flows,
        cluster_membership=r.cluster_membership,
        cluster_risk=r.cluster_risk,
        contagion=r.contagion,
        gnn=r.gnn,
        scores=r.scores,
        alert_rows=r.alert_rows,
        flow_paths=ctx.outputs.get("flow_paths.parquet"),
        ring_devices=devices,
    )
    counts = target.write_back(inputs, progress=progress, run_id=run_id or ctx.run_id or None)
    ctx.manifest_extra["neo4j_write_back"] = dict(counts.__dict__)
    return counts


def run_pipeline(
    input_dir: Path | str,
    out_dir: Path | str,
    config: Config,
    *,
    progress: Progress = SILENT,
    neo4j: Neo4jTarget | None = None,
    stages: list[str] | None = None,
    previous_run: Path | str | None = None,
    engine_stages: dict[str, Stage] | None = None,
    engine: dict[str, Any] | None = None,
) -> RunSummary:
    """Run graphkit on ``input_dir`` and publish the run directory ``out_dir`` atomically.

    ``neo4j`` (a :class:`graphkit.store.neo4j.Neo4jTarget`) also loads the graph into Neo4j and
    writes results back. ``stages`` restricts the run to the named stages (and no others).
    ``previous_run`` (a run directory) warm-starts clusters from its membership and keeps their
    ids (cluster_lineage.parquet); it is read before anything else, and
    :class:`graphkit.analytics.cluster_lineage.PreviousRunError` names what is wrong with it.
    ``engine_stages`` replaces stages by name (the Spark engine's,
    :mod:`graphkit.pipeline.spark_stages`) and ``engine`` describes that engine in the manifest
    (default: embedded).
    """
    replaced = engine_stages or {}
    selected = [(name, replaced.get(name, stage)) for name, stage in select_stages(stages)]
    previous = None
    previous_run_id = None
    if previous_run is not None:
        # Imported here: clusters bring igraph (and with it matplotlib), which `graphkit
        # validate` must not pay for under a tight memory limit (tests/test_limits.py).
        from graphkit.analytics.cluster_lineage import PreviousRunError, read_previous_clusters

        if "clusters" not in {name for name, _ in selected}:
            raise PreviousRunError(
                f"{previous_run}: --previous keeps cluster ids, but the clusters stage is not run"
            )
        previous = read_previous_clusters(Path(previous_run))
        previous_run_id = _run_id_of(Path(previous_run))
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    graph, loaded = load_graph(input_dir, progress)
    timings["load"] = round(time.perf_counter() - clock, 3)

    with atomic_directory(out_dir) as tmp:
        ctx = RunContext(
            graph=graph,
            config=config,
            out_dir=tmp,
            run_id=run_id,
            progress=progress,
            previous=previous,
        )
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
            write_back(neo4j, ctx, progress=progress)
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
            "extras": extras_section(loaded.extras, ctx),
            "timings_seconds": timings,
            "counts": {"graph": graph.summary(), "outputs": rows, **ctx.counts},
            **({"neo4j": neo4j.describe()} if neo4j is not None else {}),
            **({"previous_run_id": previous_run_id} if previous is not None else {}),
            **ctx.manifest_extra,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return RunSummary(run_dir=Path(out_dir), manifest=manifest)
