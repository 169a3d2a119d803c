"""Neo4j initial load: offline bulk import (``graphkit.store.neo4j_bulk``) against the Bolt loader.

For each size, generates the synthetic network (``loaders.synthetic.generate_tables``, about 20
relationships and 5 nodes per customer), builds the RiskGraph, and times ``bulk_import`` into a
fresh Neo4j home, reporting its three steps separately: CSV writing (polars), the importer, and
the constraint/index build. Peak RSS is this process's and the Java child's (sampled). The
baseline is the Bolt loader (``Neo4jTarget.load_graph``, batched UNWIND MERGE) on the same graph
in the same process, at sizes up to ``--bolt-max`` relationships. The cost exponent is the
log-log slope of total seconds against relationships; the 5M-node / 20M-edge figure is measured
when that size is run, else extrapolated from it. Prints a table and writes
``bench/results/neo4j_bulk.json``.

    .venv/bin/python bench/neo4j_bulk.py --relationships 100000 1000000 5000000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from graphkit.graph import RiskGraph
from graphkit.store.neo4j import Neo4jTarget
from graphkit.store.neo4j_bulk import bulk_import
from graphkit.store.neo4j_server import Neo4jServer
from loaders.synthetic import generate_tables

RESULTS = Path(__file__).parent / "results" / "neo4j_bulk.json"
RELATIONSHIPS_PER_CUSTOMER = 20.0
SEED_RELATIONSHIPS = 20_000_000  # the seed's 5M-node network
TARGET_SECONDS = 20 * 60


class ChildMemory:
    """Samples the summed RSS of this process's children (the JVM) in a background thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self._interval):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def measure_bulk(graph: RiskGraph, workdir: Path, max_memory: str, heap: str) -> dict[str, Any]:
    home = workdir / "bulk-home"
    with ChildMemory() as java:
        result = bulk_import(graph, home, heap=heap, max_memory=max_memory)
    store_gb = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) / 1024**3
    shutil.rmtree(home)
    return {
        "nodes": result.node_rows,
        "relationships": result.relationship_rows,
        "properties": result.imported_properties,
        "csv_seconds": result.csv_seconds,
        "import_seconds": result.import_seconds,
        "schema_seconds": result.schema_seconds,
        "total_seconds": result.seconds,
        "csv_gb": result.csv_bytes / 1024**3,
        "store_gb": store_gb,
        "java_peak_rss_gb": java.peak / 1024**3,
        "rows_per_second": (result.node_rows + result.relationship_rows) / result.seconds,
        "import_rows_per_second": (result.node_rows + result.relationship_rows)
        / result.import_seconds,
    }


def measure_bolt(graph: RiskGraph, workdir: Path, heap: str) -> dict[str, Any]:
    home = workdir / "bolt-home"
    with (
        ChildMemory() as java,
        Neo4jServer().start(data_dir=home, heap=heap, pagecache="1g", timeout=600) as server,
    ):
        clock = time.perf_counter()
        counts = Neo4jTarget(uri=server.uri).load_graph(graph)
        seconds = time.perf_counter() - clock
    shutil.rmtree(home)
    rows = counts.node_rows + counts.relationship_rows
    return {
        "seconds": seconds,
        "node_seconds": counts.node_seconds,
        "relationship_seconds": counts.relationship_seconds,
        "rows_per_second": rows / seconds,
        "java_peak_rss_gb": java.peak / 1024**3,
    }


def _exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(size)."""
    if len(points) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--relationships",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="target relationship counts (customers = relationships / 20)",
    )
    parser.add_argument("--bolt-max", type=int, default=100_000, help="largest Bolt baseline")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--max-memory", default="4g", help="importer off-heap budget")
    parser.add_argument("--heap", default="2g", help="Java heap of importer and server")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for target in args.relationships:
        customers = max(int(target / RELATIONSHIPS_PER_CUSTOMER), 10)
        clock = time.perf_counter()
        graph = RiskGraph.from_tables(generate_tables(customers, args.seed).tables)
        prepared = time.perf_counter() - clock
        with tempfile.TemporaryDirectory(prefix="neo4j-bulk-bench-", dir=args.workdir) as tmp:
            row: dict[str, Any] = {"customers": customers, "generate_seconds": prepared}
            row["bulk"] = measure_bulk(graph, Path(tmp), args.max_memory, args.heap)
            if row["bulk"]["relationships"] <= args.bolt_max:
                row["bolt"] = measure_bolt(graph, Path(tmp), args.heap)
                row["bulk_speedup_over_bolt"] = (
                    row["bolt"]["seconds"] / row["bulk"]["total_seconds"]
                )
        row["python_peak_rss_gb"] = _peak_rss_gb()
        rows.append(row)
        del graph

    exponent = _exponent([(r["bulk"]["relationships"], r["bulk"]["total_seconds"]) for r in rows])
    largest = max(rows, key=lambda r: r["bulk"]["relationships"])
    measured_seed = largest["bulk"]["relationships"] >= 0.95 * SEED_RELATIONSHIPS
    scale = SEED_RELATIONSHIPS / largest["bulk"]["relationships"]
    seed_estimate = {
        step: largest["bulk"][f"{step}_seconds"] * scale ** max(exponent or 1.0, 1.0)
        for step in ("csv", "import", "schema", "total")
    }
    result = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "load_average_at_end": list(psutil.getloadavg()),
            "python": platform.python_version(),
        },
        "settings": {"max_memory": args.max_memory, "heap": args.heap, "seed": args.seed},
        "runs": rows,
        "time_exponent": exponent,
        "seed_network": {
            "measured": measured_seed,
            "from_relationships": largest["bulk"]["relationships"],
            "seconds": seed_estimate,
            "target_seconds": TARGET_SECONDS,
            "meets_target": seed_estimate["total"] <= TARGET_SECONDS,
        },
    }

    header = (
        f"{'relationships':>13}{'nodes':>11}{'csv s':>8}{'import s':>10}{'schema s':>10}"
        f"{'total s':>9}{'rows/s':>10}{'csv GB':>8}{'java GB':>9}{'bolt s':>9}{'ratio':>8}"
    )
    print(header)
    for r in rows:
        b = r["bulk"]
        bolt = r.get("bolt")
        print(
            f"{b['relationships']:>13,}{b['nodes']:>11,}{b['csv_seconds']:>8.1f}"
            f"{b['import_seconds']:>10.1f}{b['schema_seconds']:>10.1f}{b['total_seconds']:>9.1f}"
            f"{b['rows_per_second']:>10,.0f}{b['csv_gb']:>8.2f}{b['java_peak_rss_gb']:>9.2f}"
            + (
                f"{bolt['seconds']:>9.1f}{r['bulk_speedup_over_bolt']:>7.1f}x"
                if bolt
                else f"{'-':>9}{'-':>8}"
            )
        )
    if exponent is not None:
        print(f"time exponent (total seconds ~ relationships^k): k = {exponent:.2f}")
    kind = "measured" if measured_seed else "extrapolated"
    print(
        f"seed network (5M nodes / 20M relationships), {kind}: csv {seed_estimate['csv']:.0f} s, "
        f"import {seed_estimate['import']:.0f} s, schema {seed_estimate['schema']:.0f} s, "
        f"total {seed_estimate['total']:.0f} s (target {TARGET_SECONDS} s)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
