"""The Spark engine's stages next to the embedded engine's, on one generated network.

For each stage that runs on Spark (rings, circles, flows, clusters) this times the embedded
kernel and the Spark stage on ``local[2]`` and on a two-worker standalone cluster on loopback
(one core each), and checks on the way that the Spark results equal the embedded ones
(clusters: modularity within 1%). Spark on one 2-core machine is expected to be slower: the
table reports the ratio; the JSON also keeps the session start-up time and the number of Spark
jobs the stages ran (each job costs scheduling and JVM <-> Python transfer whatever its size,
which is where small inputs lose their time).

    python bench/spark.py --customers 20000          # ~100k nodes
    python bench/spark.py --customers 20000 --no-cluster

Each Spark measurement runs in its own process (one SparkContext per process). Results:
``bench/results/spark.json`` and a table on screen. Do not run 1M/5M on a shared 2-core box.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import DATA_DIR, print_table, write_result  # noqa: E402
from graphkit.analytics.circles import guarantee_circles  # noqa: E402
from graphkit.analytics.clusters import related_clusters  # noqa: E402
from graphkit.analytics.flows import trace_flows  # noqa: E402
from graphkit.analytics.rings import device_rings  # noqa: E402
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from loaders.synthetic import generate_tables  # noqa: E402

STAGES = ("rings", "circles", "flows", "clusters")


def dataset(customers: int, seed: int) -> Path:
    """Generate (once) the network as Parquet tables under bench/data."""
    directory = DATA_DIR / f"spark-{customers}-{seed}"
    if not (directory / "customers.parquet").is_file():
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in generate_tables(customers, seed).tables.items():
            frame.write_parquet(directory / f"{name}.parquet")
    return directory


def _tables(directory: Path) -> dict[str, pl.DataFrame]:
    from loaders.sources import read_input

    return read_input(directory).tables


def embedded(directory: Path, config: Config) -> dict[str, object]:
    """Seconds per embedded stage, and the results to compare with."""
    graph = RiskGraph.from_tables(_tables(directory))
    timings, results = {}, {}
    for stage, run in (
        ("rings", lambda: device_rings(graph, 3, 50).membership),
        ("circles", lambda: guarantee_circles(graph, 6, 1000).summary),
        ("flows", lambda: trace_flows(graph, config.flows, cycles=False).flows),
        ("clusters", lambda: related_clusters(graph, config)),
    ):
        start = time.perf_counter()
        results[stage] = run()
        timings[stage] = time.perf_counter() - start
    nodes = sum(graph.summary()["nodes"].values())
    edges = sum(graph.summary()["edges"].values())
    return {"timings": timings, "results": results, "nodes": nodes, "edges": edges}


def spark_worker(directory: Path, master: str, out: Path) -> None:
    """(In a subprocess.) Time each Spark stage on ``master``; write timings and results."""
    from graphkit.spark.engine import SparkEngine

    config = Config()
    start = time.perf_counter()
    engine = SparkEngine.open(str(directory), master, {"spark.sql.shuffle.partitions": "8"})
    timings = {"session": time.perf_counter() - start}
    for stage, run in (
        ("rings", lambda: engine.rings(config.rings).membership),
        ("circles", lambda: engine.circles(config.circles).summary),
        ("flows", lambda: engine.flows(config.flows)[0]),
        ("clusters", lambda: engine.clusters(config)),
    ):
        begin = time.perf_counter()
        result = run()
        timings[stage] = time.perf_counter() - begin
        if stage == "clusters":
            timings["cluster_modularity"] = result.modularity
            result = result.membership
        result.write_parquet(out / f"{stage}.parquet")
    tracker = engine.session.sparkContext.statusTracker()
    timings["jobs"] = len(tracker.getJobIdsForGroup(None) or [])
    engine.close()
    (out / "timings.json").write_text(json.dumps(timings))


def spark_run(directory: Path, master: str) -> tuple[dict[str, float], dict[str, pl.DataFrame]]:
    """Run :func:`spark_worker` in a fresh process; its timings and results."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--worker", str(directory), master, tmp]
        subprocess.run(command, check=True, cwd=ROOT)
        timings = json.loads((Path(tmp) / "timings.json").read_text())
        results = {s: pl.read_parquet(Path(tmp) / f"{s}.parquet") for s in STAGES}
    return timings, results


def _equal(stage: str, got: object, expected: object) -> bool:
    """Results equal (rings, circles, flows) or modularity within 1% (clusters)."""
    if stage == "clusters":
        return abs(got - expected.modularity) <= 0.01 * abs(expected.modularity)
    key = {"rings": ["ring_id", "customer_id"], "circles": ["circle_id"], "flows": ["drawdown_id"]}
    return got.sort(key[stage]).equals(expected.sort(key[stage]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-cluster", action="store_true", help="local[2] only")
    args = parser.parse_args()
    directory = dataset(args.customers, args.seed)
    base = embedded(directory, Config())
    masters = {"local[2]": "local[2]"}
    runs: dict[str, dict[str, float]] = {}
    exact: dict[str, dict[str, bool]] = {}

    def measure(label: str, master: str) -> None:
        timings, results = spark_run(directory, master)
        runs[label] = timings
        results["clusters"] = timings["cluster_modularity"]
        exact[label] = {s: _equal(s, results[s], base["results"][s]) for s in STAGES}

    for label, master in masters.items():
        measure(label, master)
    if not args.no_cluster:
        from graphkit.spark.standalone import standalone_cluster

        with (
            tempfile.TemporaryDirectory() as tmp,
            standalone_cluster(Path(tmp), workers=2, cores=1) as url,
        ):
            measure("standalone 2x1", url)
    rows = []
    for stage in STAGES:
        row = [stage, f"{base['timings'][stage]:.2f}"]
        for label in runs:
            seconds = runs[label][stage]
            ratio = seconds / base["timings"][stage]
            row.append(f"{seconds:.1f} ({ratio:.0f}x) {'=' if exact[label][stage] else '!='}")
        rows.append(row)
    print_table(
        f"Spark vs embedded, {args.customers:,} customers ({base['nodes']:,} nodes, "
        f"{base['edges']:,} edges); seconds (ratio), '=' results equal",
        ["stage", "embedded", *runs],
        rows,
    )
    write_result(
        "spark",
        {
            "customers": args.customers,
            "nodes": base["nodes"],
            "edges": base["edges"],
            "embedded_seconds": base["timings"],
            "spark_seconds": runs,
            "results_equal": exact,
            "embedded_cluster_modularity": base["results"]["clusters"].modularity,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        spark_worker(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
    else:
        main()
