"""The Spark engine's stages next to the embedded engine's, on one network, and where the time goes.

For each stage that runs on Spark (rings, circles, flows, clusters) this times the embedded
kernel in this process and the Spark stage under each master asked for (``local[N]``, or
``standaloneWxC``: a standalone cluster on loopback with W workers of C cores started for the
run), and checks that the Spark results equal the embedded ones (clusters: modularity within 1%).
Per Spark stage it also records where the time went: the Spark jobs and stages it ran (a job
group per stage, ``statusTracker``), the executors' summed run and CPU time, the shuffle bytes
written and read and the input bytes (the driver's REST API, ``/api/v1/.../stages``), and the
seconds spent inside graphkit's kernels in the Python workers (the grouped maps'
``GRAPHKIT_SPARK_KERNEL_LOG``; clusters' Leiden map is not timed there).

    python bench/spark.py --input /work/data/net20k --name spark_100k \\
        --masters 'local[2],local[1],standalone2x1,standalone1x1'
    python bench/spark.py --customers 2000            # generates a small network under bench/data

Each Spark measurement runs in its own process (one SparkContext per process), capped at
``--cap`` seconds: a capped run keeps the stages it finished and says where it stopped.
Results: ``bench/results/<name>.json`` and a table on screen. Runs above ~1M nodes need several
GB: hold the big-memory lock (``flock /work/wt/_notes/bigmem.lock python bench/spark.py ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
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
KEYS = {"rings": ["ring_id", "customer_id"], "circles": ["circle_id"], "flows": ["drawdown_id"]}


def dataset(customers: int, seed: int) -> Path:
    """Generate (once) the network as Parquet tables under bench/data."""
    directory = DATA_DIR / f"spark-{customers}-{seed}"
    if not (directory / "customers.parquet").is_file():
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in generate_tables(customers, seed).tables.items():
            frame.write_parquet(directory / f"{name}.parquet")
    return directory


def embedded(directory: Path, config: Config, stages: list[str]) -> dict[str, object]:
    """Seconds per embedded stage (graph build apart), and the results to compare with."""
    from loaders.sources import read_input

    start = time.perf_counter()
    graph = RiskGraph.from_tables(read_input(directory).tables)
    build = time.perf_counter() - start
    runs = {
        "rings": lambda: (
            device_rings(
                graph, config.rings.min_customers_per_device, config.rings.max_customers_per_device
            ).membership
        ),
        "circles": lambda: (
            guarantee_circles(
                graph, config.circles.max_cycle_length, config.circles.max_cycles_listed
            ).summary
        ),
        "flows": lambda: trace_flows(graph, config.flows, cycles=False).flows,
        "clusters": lambda: related_clusters(graph, config),
    }
    timings, results = {"graph_build": build}, {}
    for stage in stages:
        begin = time.perf_counter()
        results[stage] = runs[stage]()
        timings[stage] = time.perf_counter() - begin
    summary = graph.summary()
    return {
        "timings": timings,
        "results": results,
        "nodes": sum(summary["nodes"].values()),
        "edges": sum(summary["edges"].values()),
    }


def _rest(url: str) -> object:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


def _stage_metrics(base: str, stage_ids: list[int]) -> dict[str, float]:
    """Summed executor time and bytes of ``stage_ids`` from the driver's REST API."""
    totals = dict.fromkeys(
        ("executor_run_s", "executor_cpu_s", "shuffle_write_mb", "shuffle_read_mb", "input_mb"),
        0.0,
    )
    totals["tasks"] = 0
    for stage_id in stage_ids:
        try:
            attempts = _rest(f"{base}/stages/{stage_id}")
        except OSError:
            continue
        for attempt in attempts:
            totals["tasks"] += attempt.get("numCompleteTasks", 0)
            totals["executor_run_s"] += attempt.get("executorRunTime", 0) / 1e3
            totals["executor_cpu_s"] += attempt.get("executorCpuTime", 0) / 1e9
            totals["shuffle_write_mb"] += attempt.get("shuffleWriteBytes", 0) / 2**20
            totals["shuffle_read_mb"] += attempt.get("shuffleReadBytes", 0) / 2**20
            totals["input_mb"] += attempt.get("inputBytes", 0) / 2**20
    return {k: round(v, 3) for k, v in totals.items()}


def _kernel_seconds(directory: Path) -> dict[str, list[float]]:
    """Per kernel name: [seconds, calls, rows, largest call's rows] over the workers' logs."""
    totals: dict[str, list[float]] = {}
    for path in directory.glob("*.tsv"):
        for line in path.read_text().splitlines():
            name, seconds, rows = line.split("\t")
            entry = totals.setdefault(name, [0.0, 0, 0, 0])
            entry[0] += float(seconds)
            entry[1] += 1
            entry[2] += int(rows)
            entry[3] = max(entry[3], int(rows))
    return totals


def spark_worker(directory: Path, master: str, out: Path, stages: list[str], conf: dict) -> None:
    """(In a subprocess.) Time each Spark stage on ``master``; after each stage rewrite
    ``out/timings.json`` (so a capped run keeps what it finished) and write the stage's result."""
    from graphkit.spark.engine import SparkEngine
    from graphkit.spark.grouped import KERNEL_LOG_ENV
    from graphkit.spark.standalone import free_port

    kernel_log = out / "kernels"
    kernel_log.mkdir()
    os.environ[KERNEL_LOG_ENV] = str(kernel_log)
    ui_port = free_port()
    settings = {
        "spark.ui.enabled": "true",
        "spark.ui.port": str(ui_port),
        "spark.ui.retainedJobs": "20000",
        "spark.ui.retainedStages": "20000",
        f"spark.executorEnv.{KERNEL_LOG_ENV}": str(kernel_log),
        **conf,
    }
    config = Config()
    report: dict[str, object] = {"conf": settings, "stages": {}}

    def save() -> None:
        (out / "timings.json").write_text(json.dumps(report))

    start = time.perf_counter()
    engine = SparkEngine.open(str(directory), master, settings)
    report["session_s"] = time.perf_counter() - start
    context = engine.session.sparkContext
    report["default_parallelism"] = context.defaultParallelism
    base = f"http://127.0.0.1:{ui_port}/api/v1/applications/{context.applicationId}"
    tracker = context.statusTracker()
    save()
    runs = {
        "rings": lambda: engine.rings(config.rings).membership,
        "circles": lambda: engine.circles(config.circles).summary,
        "flows": lambda: engine.flows(config.flows)[0],
        "clusters": lambda: engine.clusters(config),
    }
    for stage in stages:
        report["running"] = stage
        save()
        context.setJobGroup(stage, stage)
        before = _kernel_seconds(kernel_log)
        begin = time.perf_counter()
        result = runs[stage]()
        seconds = time.perf_counter() - begin
        jobs = sorted(tracker.getJobIdsForGroup(stage))
        stage_ids = sorted({s for j in jobs for s in (tracker.getJobInfo(j).stageIds or [])})
        after = _kernel_seconds(kernel_log)
        kernels = {
            name: {
                "seconds": round(value[0] - before.get(name, [0.0])[0], 3),
                "calls": value[1] - before.get(name, [0, 0])[1],
                "rows": value[2] - before.get(name, [0, 0, 0])[2],
                "largest_call_rows_so_far": value[3],
            }
            for name, value in after.items()
            if value[1] != before.get(name, [0, 0])[1]
        }
        entry = {
            "seconds": seconds,
            "jobs": len(jobs),
            "spark_stages": len(stage_ids),
            **_stage_metrics(base, stage_ids),
            "python_kernels": kernels,
        }
        if stage == "clusters":
            entry["modularity"] = result.modularity
            result = result.membership
        result.write_parquet(out / f"{stage}.parquet")
        report["stages"][stage] = entry
        report.pop("running")
        save()
    engine.close()


def _cluster_shape(label: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"standalone(\d+)x(\d+)", label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def spark_run(
    directory: Path, label: str, stages: list[str], conf: dict, cap: float, memory: str
) -> tuple[dict, dict[str, pl.DataFrame]]:
    """Run :func:`spark_worker` in a fresh process under ``label``'s master, at most ``cap``
    seconds; its report (``capped`` and the running stage if it ran out) and results."""
    from graphkit.spark.standalone import standalone_cluster

    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        out = Path(tmp)

        def run(master: str) -> dict:
            command = [sys.executable, __file__, "--worker", str(directory), master, tmp,
                       ",".join(stages), json.dumps(conf)]  # fmt: skip
            begin = time.perf_counter()
            try:
                subprocess.run(command, check=True, cwd=ROOT, timeout=cap)
                status = "done"
            except subprocess.TimeoutExpired:
                status = "capped"
            except subprocess.CalledProcessError as exc:
                status = f"failed ({exc.returncode})"
            path = out / "timings.json"
            report = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
            return {**report, "status": status, "wall_s": time.perf_counter() - begin}

        shape = _cluster_shape(label)
        if shape is None:
            report = run(label)
        else:
            start = time.perf_counter()
            with standalone_cluster(out / "cluster", workers=shape[0], cores=shape[1],
                                    memory=memory) as url:  # fmt: skip
                report = {"cluster_start_s": time.perf_counter() - start, **run(url)}
        results = {
            s: pl.read_parquet(out / f"{s}.parquet")
            for s in stages
            if (out / f"{s}.parquet").is_file()
        }
    return report, results


def _equal(stage: str, got: pl.DataFrame, expected: object, modularity: float | None) -> bool:
    """Results equal (rings, circles, flows) or modularity within 1% (clusters)."""
    if stage == "clusters":
        return abs(modularity - expected.modularity) <= 0.01 * abs(expected.modularity)
    return got.sort(KEYS[stage]).equals(expected.sort(KEYS[stage]))


# The input tables each stage reads: its "rows" in the throughput figures.
STAGE_TABLES = {
    "rings": ("device_links", "drawdowns", "credit_lines"),
    "circles": ("guarantees", "labels"),
    "flows": ("drawdowns", "transfers", "accounts", "credit_lines", "merchants"),
    "clusters": (
        "guarantees", "shareholdings", "device_links", "drawdowns", "credit_lines",
        "accounts", "customers", "transfers",
    ),
}  # fmt: skip
TARGET_CUSTOMERS = 100_000_000
# At 100M every components input is far above the one-task limit: the star rounds cost ~2.6x
# the one-task stage at 100k (spark_100k_rounds.json) and their count grows ~2.1x from 1M to
# 500M nodes ((ln 5e8 / ln 1e6)^2); docs/spark.md, sizing assumption 3.
ROUNDS_FACTOR = {"rings": 5.5, "circles": 5.5, "clusters": 5.5, "flows": 1.0}


def _rows(directory: Path) -> dict[str, int]:
    return {
        path.stem: pl.scan_parquet(path).select(pl.len()).collect().item()
        for path in directory.glob("*.parquet")
    }


def sizing(names: list[str]) -> dict[str, object]:
    """Per-core throughput per stage from bench results, and the 100M-customer projection.

    For each stage and master at the largest size that finished: rows read per core-second
    (the stage's input rows over its wall seconds times the master's cores: fixed cost and the
    machine's load included, pessimistic), rows per CPU-second (over the executors' CPU time
    plus the Python kernels' time: optimistic), and between the two largest sizes the marginal
    wall rate (the fixed cost cancels). The projection scales the rows linearly with customers
    (the generator's tables do), multiplies the components stages by :data:`ROUNDS_FACTOR` and
    gives core-hours at 100M customers at both rates.
    """
    points: dict[str, dict[str, list[tuple[int, int, float, int]]]] = {}
    for name in names:
        document = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
        rows = _rows(Path(document["input"]))
        customers = rows["customers"]
        for label, report in document["spark"].items():
            shape = _cluster_shape(label)
            cores = shape[0] * shape[1] if shape else int(label[6:-1])
            for stage, entry in report["stages"].items():
                stage_rows = sum(rows.get(t, 0) for t in STAGE_TABLES[stage])
                cpu = entry.get("executor_cpu_s", 0.0) + sum(
                    k["seconds"] for k in entry.get("python_kernels", {}).values()
                )
                points.setdefault(stage, {}).setdefault(label, []).append(
                    (customers, stage_rows, entry["seconds"], cores, cpu)
                )
    out: dict[str, object] = {}
    for stage, per_master in points.items():
        out[stage] = {}
        for label, series in per_master.items():
            series.sort()
            customers, rows, seconds, cores, cpu = series[-1]
            entry = {
                "largest_customers": customers,
                "rows": rows,
                "seconds": round(seconds, 1),
                "rows_per_core_s": round(rows / (seconds * cores), 1),
                "rows_per_cpu_s": round(rows / cpu, 1) if cpu else None,
            }
            if len(series) >= 2:
                _, r0, s0, _, _ = series[-2]
                if seconds > s0:
                    entry["marginal_rows_per_core_s"] = round(
                        (rows - r0) / ((seconds - s0) * cores), 1
                    )
            target_rows = rows * TARGET_CUSTOMERS / customers
            factor = ROUNDS_FACTOR[stage]
            entry["rows_at_100m"] = round(target_rows)
            entry["core_hours_at_100m_wall"] = round(
                target_rows * factor / entry["rows_per_core_s"] / 3600, 1
            )
            if entry["rows_per_cpu_s"]:
                entry["core_hours_at_100m_cpu"] = round(
                    target_rows * factor / entry["rows_per_cpu_s"] / 3600, 1
                )
            out[stage][label] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="an input directory (else --customers)")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default="spark", help="bench/results/NAME.json")
    parser.add_argument("--masters", default="local[2],standalone2x1")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--cap", type=float, default=1500.0, help="seconds per Spark run")
    parser.add_argument("--memory", default="2g", help="driver (local) / executor memory")
    parser.add_argument("--conf", action="append", default=[], help="extra Spark k=v")
    parser.add_argument("--no-embedded", action="store_true")
    parser.add_argument(
        "--sizing", help="comma-separated result names: write spark_sizing.json from them"
    )
    args = parser.parse_args()
    if args.sizing:
        model = sizing(args.sizing.split(","))
        write_result("spark_sizing", {"from": args.sizing.split(","), "stages": model})
        print(json.dumps(model, indent=1))
        return
    directory = args.input or dataset(args.customers, args.seed)
    stages = args.stages.split(",")
    conf = {
        "spark.sql.shuffle.partitions": "8",
        "spark.driver.memory": args.memory,
        "spark.executor.memory": args.memory,
    }
    conf.update(item.split("=", 1) for item in args.conf)
    base = None if args.no_embedded else embedded(directory, Config(), stages)
    runs: dict[str, dict] = {}
    payload: dict[str, object] = {"input": str(directory), "stages": stages, "spark": runs}
    if base:
        payload.update(
            nodes=base["nodes"],
            edges=base["edges"],
            embedded_seconds=base["timings"],
            embedded_cluster_modularity=(
                base["results"]["clusters"].modularity if "clusters" in stages else None
            ),
        )
    for label in args.masters.split(","):
        worker_memory = f"{int(args.memory.rstrip('g')) + 1}g"
        report, results = spark_run(directory, label, stages, conf, args.cap, worker_memory)
        if base:
            report["equal"] = {
                stage: _equal(
                    stage,
                    results[stage],
                    base["results"][stage],
                    report["stages"][stage].get("modularity"),
                )
                for stage in results
            }
        runs[label] = report
        write_result(args.name, payload)  # after every master, so a later crash loses nothing
    rows = []
    for stage in stages:
        row = [stage, f"{base['timings'][stage]:.2f}" if base else "-"]
        for report in runs.values():
            entry = report["stages"].get(stage)
            if entry is None:
                row.append(report["status"] if report.get("running") == stage else "-")
                continue
            ratio = f" ({entry['seconds'] / base['timings'][stage]:.0f}x)" if base else ""
            same = {True: " =", False: " !="}.get(report.get("equal", {}).get(stage), "")
            row.append(f"{entry['seconds']:.1f}{ratio}{same} {entry['jobs']}j")
        rows.append(row)
    print_table(
        f"Spark vs embedded on {directory}: seconds (ratio to embedded), '=' equal, jobs",
        ["stage", "embedded", *runs],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--worker":
        _, _, data, master, out, stages, conf = sys.argv
        spark_worker(Path(data), master, Path(out), stages.split(","), json.loads(conf))
    else:
        main()
