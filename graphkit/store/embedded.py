"""Embedded snapshot store: a Parquet directory that round-trips a RiskGraph exactly.

Layout::

    nodes/<Label>.parquet      one file per node label, row order = dense id
    edges/<name>.parquet       one file per relationship (src, dst, properties)
    repayments.parquet
    snapshot.json              format version and counts

Frames are written with their exact dtypes, so ``load_snapshot(save_snapshot(g))`` equals ``g``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from graphkit.graph import RiskGraph

FORMAT_VERSION = 1


class SnapshotError(RuntimeError):
    """A snapshot directory is missing, incomplete or of another format version."""


def save_snapshot(graph: RiskGraph, directory: Path | str) -> Path:
    """Write ``graph`` under ``directory`` (created); returns the directory.

    The caller makes the write atomic (the pipeline writes into a temporary run directory).
    """
    root = Path(directory)
    (root / "nodes").mkdir(parents=True, exist_ok=True)
    (root / "edges").mkdir(parents=True, exist_ok=True)
    for label, frame in graph.nodes.items():
        frame.write_parquet(root / "nodes" / f"{label}.parquet")
    for name, frame in graph.edges.items():
        frame.write_parquet(root / "edges" / f"{name}.parquet")
    graph.repayments.write_parquet(root / "repayments.parquet")
    meta = {"format_version": FORMAT_VERSION, **graph.summary()}
    (root / "snapshot.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return root


def load_snapshot(directory: Path | str) -> RiskGraph:
    """Read a snapshot written by :func:`save_snapshot`."""
    root = Path(directory)
    meta_path = root / "snapshot.json"
    if not meta_path.is_file():
        raise SnapshotError(f"{root}: not a graphkit snapshot (no snapshot.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(
            f"{root}: snapshot format {meta.get('format_version')} is not {FORMAT_VERSION}"
        )
    try:
        nodes = {
            label: pl.read_parquet(root / "nodes" / f"{label}.parquet") for label in meta["nodes"]
        }
        edges = {
            name: pl.read_parquet(root / "edges" / f"{name}.parquet") for name in meta["edges"]
        }
        repayments = pl.read_parquet(root / "repayments.parquet")
    except FileNotFoundError as exc:
        raise SnapshotError(f"{root}: incomplete snapshot: {exc.filename}") from exc
    return RiskGraph(nodes=nodes, edges=edges, repayments=repayments)
