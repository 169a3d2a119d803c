"""The Spark engine's stages next to the embedded engine's, on one network, and where the time goes.

For each stage that runs on Spark (rings, circles, flows, clusters, contagion, gnn_scoring) this
times the embedded kernel in this process and the Spark stage under each master asked for
(``local[N]``, or ``standaloneWxC``: a standalone cluster on loopback with W workers of C cores
started for the run), and checks that the Spark results equal the embedded ones (clusters:
modularity within 1%; contagion: DebtRank to 1e-9, PageRank within 1e-10 in L1, the same seeds
and hits; gnn_scoring: scores within 1e-6).

``gnn_scoring`` times scoring alone, with one model on both engines: this process computes the
embedded features, trains a model on the whole graph (``--gnn-epochs``, not timed as a stage)
and times the driver's full-graph pass of the saved model (customer graph, standardisation, tree
prior, torch); each Spark run reads the same features and ``model.pt`` and times
:meth:`graphkit.spark.engine.SparkEngine.gnn_scores` (customer graph as joins, layers on the
executors). ``contagion`` is the contagion stage seeded by the labelled defaults.
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
import shutil
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

STAGES = ("rings", "circles", "flows", "clusters", "contagion", "gnn_scoring")
KEYS = {"rings": ["ring_id", "customer_id"], "circles": ["circle_id"], "flows": ["drawdown_id"]}
# The directory with the features and the model gnn_scoring reads, for the Spark worker process.
GNN_DIR_ENV = "GRAPHKIT_BENCH_GNN_DIR"


def dataset(customers: int, seed: int) -> Path:
    """Generate (once) the network as Parquet tables under bench/data."""
    directory = DATA_DIR / f"spark-{customers}-{seed}"
    if not (directory / "customers.parquet").is_file():
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in generate_tables(customers, seed).tables.items():
            frame.write_parquet(directory / f"{name}.parquet")
    return directory


def gnn_model(graph: RiskGraph, config: Config, model_dir: Path) -> dict[str, float]:
    """(Not a timed stage.) The embedded features, written to ``model_dir/features.parquet``,
    and a model trained on them saved in ``model_dir``: the
    input of both engines' ``gnn_scoring``. Returns the seconds each step took."""
    from gnn.features import customer_features, snapshot_time
    from gnn.fit import fit_and_score

    begin = time.perf_counter()
    features = customer_features(graph, snapshot=snapshot_time(graph))
    features.frame.write_parquet(model_dir / "features.parquet")
    made = time.perf_counter()
    result = fit_and_score(graph, features, config, model_dir)
    if result.scores is None:
        raise RuntimeError(f"gnn_scoring: no model trained ({result.model.get('reason')})")
    return {"gnn_features": made - begin, "gnn_training": time.perf_counter() - made}


def gnn_scoring_embedded(graph: RiskGraph, model_dir: Path) -> pl.DataFrame:
    """The driver's scoring of every customer with the saved model (what a run with a trained
    model does): the customer graph and standardised inputs, the tree prior, torch's pass."""
    from gnn.data import NODE, build_data
    from gnn.features import CustomerFeatures
    from gnn.prior import add_prior_column
    from gnn.score import MODEL_FILE, load_model, score_customers

    saved = load_model(model_dir / MODEL_FILE)
    frame = pl.read_parquet(model_dir / "features.parquet")
    features = CustomerFeatures(
        frame=frame, names=saved["feature_names"], snapshot=saved["snapshot"]
    )
    data, _ = build_data(graph, features, saved["standardiser"], saved["max_device_users"])
    if saved["prior"] is not None:
        add_prior_column(data, saved["prior"].column(data[NODE].x.numpy()))
    scores = score_customers(saved["model"], data, saved["log_weight"])
    return pl.DataFrame({"customer_id": graph.keys("Customer"), "gnn_score": scores})


def embedded(
    directory: Path, config: Config, stages: list[str], gnn_dir: Path | None = None
) -> dict[str, object]:
    """Seconds per embedded stage (graph build apart), and the results to compare with."""
    import numpy as np

    from graphkit.analytics.contagion import contagion_frame
    from loaders.sources import read_input

    start = time.perf_counter()
    graph = RiskGraph.from_tables(read_input(directory).tables)
    build = time.perf_counter() - start
    prepared = {}
    if "gnn_scoring" in stages and gnn_dir is not None:
        prepared = gnn_model(graph, config, gnn_dir)
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
        "contagion": lambda: contagion_frame(graph, np.flatnonzero(graph.defaulted() == 1), config)[
            0
        ],
        "gnn_scoring": lambda: gnn_scoring_embedded(graph, gnn_dir),
    }
    timings, results = {"graph_build": build, **prepared}, {}
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
        "contagion": lambda: engine.contagion(config),
    }
    if "gnn_scoring" in stages:
        # The input (the driver's features, read once and cached) is loaded before the clock.
        from gnn.score import MODEL_FILE

        gnn_dir = Path(os.environ[GNN_DIR_ENV])
        features = engine.session.read.parquet(str(gnn_dir / "features.parquet")).cache()
        features.count()
        keys = pl.read_parquet(gnn_dir / "features.parquet", columns=["customer_id"])
        runs["gnn_scoring"] = lambda: engine.gnn_scores(
            features, gnn_dir / MODEL_FILE, keys.get_column("customer_id")
        )
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
        elif stage == "contagion":
            entry["pagerank_steps"] = result.pagerank_steps
            entry["debtrank_rounds"] = result.debtrank_rounds
            result = result.frame
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


def _differences(stage: str, got: pl.DataFrame, expected: pl.DataFrame) -> dict[str, float]:
    """How far a contagion or gnn_scoring result is from the embedded one, by customer_id."""
    both = expected.join(got, on="customer_id", how="full", suffix="_spark", coalesce=True)
    missing = int(both.null_count().sum_horizontal().item())
    if stage == "gnn_scoring":
        diff = (both["gnn_score"] - both["gnn_score_spark"]).abs()
        return {"missing": missing, "max_abs_score": float(diff.max() or 0.0)}
    hit = (pl.col("contagion_score") > 0) & ~pl.col("seed")
    hit_spark = (pl.col("contagion_score_spark") > 0) & ~pl.col("seed_spark")
    return {
        "missing": missing,
        "max_abs_debtrank": float((both["debtrank"] - both["debtrank_spark"]).abs().max()),
        "l1_pagerank": float((both["pagerank"] - both["pagerank_spark"]).abs().sum()),
        "seeds_differ": int((both["seed"] != both["seed_spark"]).sum()),
        "hits": int(both.select(hit.sum()).item()),
        "hits_spark": int(both.select(hit_spark.sum()).item()),
    }


def _equal(stage: str, got: pl.DataFrame, expected: object, modularity: float | None) -> bool:
    """Results equal (rings, circles, flows), modularity within 1% (clusters), or within the
    documented tolerances (contagion, gnn_scoring; module docstring)."""
    if stage == "clusters":
        return abs(modularity - expected.modularity) <= 0.01 * abs(expected.modularity)
    if stage in ("contagion", "gnn_scoring"):
        diff = _differences(stage, got, expected)
        if stage == "gnn_scoring":
            return diff["missing"] == 0 and diff["max_abs_score"] <= 1e-6
        return (
            diff["missing"] == 0
            and diff["max_abs_debtrank"] <= 1e-9
            and diff["l1_pagerank"] <= 1e-10
            and diff["seeds_differ"] == 0
            and diff["hits"] == diff["hits_spark"]
        )
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
    "contagion": (
        "customers", "labels", "guarantees", "shareholdings", "device_links", "drawdowns",
        "credit_lines", "accounts", "transfers",
    ),
    "gnn_scoring": (
        "customers", "guarantees", "shareholdings", "device_links", "accounts", "transfers",
    ),
}  # fmt: skip
TARGET_CUSTOMERS = 100_000_000
# At 100M every components input is far above the one-task limit: the star rounds cost ~2.6x
# the one-task stage at 100k (spark_100k_rounds.json) and their count grows ~2.1x from 1M to
# 500M nodes ((ln 5e8 / ln 1e6)^2); docs/spark.md, sizing assumption 3.
ROUNDS_FACTOR = {
    "rings": 5.5, "circles": 5.5, "clusters": 5.5, "flows": 1.0, "contagion": 1.0,
    "gnn_scoring": 1.0,
}  # fmt: skip


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
    wall rate (the fixed cost cancels). A result named later replaces an earlier one of the same
    stage, master and size (a re-run on a quieter machine supersedes a loaded one). The
    projection scales the rows linearly with customers (the generator's tables do), multiplies
    the components stages by :data:`ROUNDS_FACTOR` and gives core-hours at 100M customers at
    both rates.
    """
    points: dict[str, dict[str, dict[int, tuple[int, int, float, int, float]]]] = {}
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
                points.setdefault(stage, {}).setdefault(label, {})[customers] = (
                    customers,
                    stage_rows,
                    entry["seconds"],
                    cores,
                    cpu,
                )
    out: dict[str, object] = {}
    for stage, per_master in points.items():
        out[stage] = {}
        for label, by_size in per_master.items():
            series = sorted(by_size.values())
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
    parser.add_argument("--gnn-epochs", type=int, default=20, help="gnn_scoring's model")
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
    config = Config()
    config.gnn.epochs = args.gnn_epochs
    if "gnn_scoring" in stages and args.no_embedded:
        parser.error("gnn_scoring needs the embedded side (it trains the model)")
    gnn_dir = Path(tempfile.mkdtemp(prefix="spark-bench-gnn-"))
    os.environ[GNN_DIR_ENV] = str(gnn_dir)  # read by the Spark worker processes
    base = None if args.no_embedded else embedded(directory, config, stages, gnn_dir)
    runs: dict[str, dict] = {}
    payload: dict[str, object] = {
        "input": str(directory),
        "stages": stages,
        "spark": runs,
        "load_average_start": os.getloadavg(),
    }
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
            report["differences"] = {
                stage: _differences(stage, results[stage], base["results"][stage])
                for stage in results
                if stage in ("contagion", "gnn_scoring")
            }
        report["load_average_end"] = os.getloadavg()
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
    shutil.rmtree(gnn_dir, ignore_errors=True)
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
