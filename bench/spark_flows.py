"""A/B of the Spark flows stage's strategies, in one process and one Spark session.

Strategies of :func:`graphkit.spark.flows.flow_frames` (``local[2]`` unless ``--master``):
``join``, the engine before: per-drawdown hop layers by the equi-join on the account filtered
on time afterwards; ``range``: the same per-drawdown layers, each arrival answered by a range
over its account's transfers sorted by time; ``buckets``, the default now: drawdowns sliced by
time, each bucket's reach walked as one by ranges, minimum hops from the replay kernel. For
each strategy in ``--strategies`` this times

- ``joins``: everything before the replay (the reach and each bucket's transfers), materialised;
- ``stage`` (unless ``--no-stage``; ``--stage-strategies`` to choose): the whole
  :func:`flow_frames` (joins, replay, results), right after that strategy's joins,

with the Spark jobs, the executors' run and CPU time and the shuffle bytes of each (the
driver's REST API), the rows each strategy keeps (reach rows, bucket transfer rows), whether
the per-drawdown strategies agree on minimum hops and holders, and (``stage``) whether the
flows equal the embedded engine's.

    python bench/spark_flows.py --input /work/data/net20k --name spark_flows_100k
    flock -w 300 /work/wt/_notes/bigmem.lock python bench/spark_flows.py \\
        --input /work/data/net200k --name spark_flows_1m --memory 6g \\
        --strategies buckets,join --stage-strategies buckets

Results: ``bench/results/<name>.json`` and a table on screen.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_result  # noqa: E402
from bench.spark import _stage_metrics  # noqa: E402
from graphkit.config import Config  # noqa: E402


def _frame(df, order: list[str]) -> pl.DataFrame:
    return pl.from_arrow(df.toArrow()).sort(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--name", default="spark_flows")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--memory", default="3g")
    parser.add_argument("--strategies", default="join,buckets", help="in the order they run")
    parser.add_argument("--no-stage", action="store_true", help="time only the joins")
    parser.add_argument(
        "--stage-strategies", help="the strategies whose whole stage is timed (default all)"
    )
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=20_000_000,
        help="compare per-drawdown holders across strategies up to this many rows",
    )
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from graphkit.spark.engine import BUCKETS_PER_CORE, SparkEngine
    from graphkit.spark.flow_ranges import bucket_reach, by_account_part, time_buckets, window_used
    from graphkit.spark.flows import flow_frames, flow_inputs, hop_layers, used_transfers
    from graphkit.spark.standalone import free_port

    port = free_port()
    settings = {
        "spark.ui.enabled": "true",
        "spark.ui.port": str(port),
        "spark.ui.retainedJobs": "20000",
        "spark.ui.retainedStages": "20000",
        "spark.sql.shuffle.partitions": "8",
        "spark.driver.memory": args.memory,
        "spark.executor.memory": args.memory,
    }
    engine = SparkEngine.open(str(args.input), args.master, settings)
    context = engine.session.sparkContext
    base = f"http://127.0.0.1:{port}/api/v1/applications/{context.applicationId}"
    tracker = context.statusTracker()
    config = Config().flows
    buckets = max(context.defaultParallelism * BUCKETS_PER_CORE, 1)

    def measured(group: str, run) -> tuple[object, dict]:
        context.setJobGroup(group, group)
        begin = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - begin
        jobs = sorted(tracker.getJobIdsForGroup(group))
        stages = sorted({s for j in jobs for s in (tracker.getJobInfo(j).stageIds or [])})
        return result, {
            "seconds": round(seconds, 2),
            "jobs": len(jobs),
            **_stage_metrics(base, stages),
        }

    drawdowns, transfers = flow_inputs(engine.tables, config)
    transfers = transfers.localCheckpoint()
    drawdowns = drawdowns.withColumn(
        "bucket", F.pmod(F.xxhash64("drawdown_id"), F.lit(buckets))
    ).localCheckpoint()
    counts = {"drawdowns": drawdowns.count(), "transfers": transfers.count()}

    def joins(strategy: str):
        """Everything before the replay: the reach and each bucket's transfers, materialised."""
        moved = transfers if strategy == "join" else by_account_part(transfers, buckets)
        if strategy == "buckets":
            sliced = time_buckets(drawdowns.drop("bucket"), buckets).localCheckpoint()
            holders = bucket_reach(sliced, moved, config.max_hops, buckets)
            return None, holders, window_used(holders, moved, buckets).localCheckpoint()
        min_hops, holders = hop_layers(drawdowns, moved, config.max_hops, strategy, buckets)
        holders = holders.join(drawdowns.select("drawdown_id", "bucket", "t0"), "drawdown_id")
        holders = holders.localCheckpoint()
        used = used_transfers(holders, moved, strategy, buckets).localCheckpoint()
        return min_hops.localCheckpoint(), holders, used

    report: dict[str, object] = {
        "input": str(args.input),
        "master": args.master,
        "buckets": buckets,
        "load_average_start": os.getloadavg(),
        **counts,
        "runs": {},
    }
    staged = set()
    if not args.no_stage:
        staged = set((args.stage_strategies or args.strategies).split(","))
    expected: list[pl.DataFrame] = []

    def embedded_flows() -> pl.DataFrame:
        if not expected:
            from graphkit.analytics.flows import trace_flows
            from graphkit.graph import RiskGraph
            from loaders.sources import read_input

            graph = RiskGraph.from_tables(read_input(args.input).tables)
            expected.append(trace_flows(graph, config, cycles=False).flows.sort("drawdown_id"))
        return expected[0]

    outputs = {}
    for strategy in args.strategies.split(","):
        (min_hops, holders, used), entry = measured(
            f"joins-{strategy}", lambda s=strategy: joins(s)
        )
        entry["holder_rows"] = holders.count()
        per_bucket = used.groupBy("bucket").count().collect()
        entry["bucket_transfer_rows"] = sum(row["count"] for row in per_bucket)
        entry["largest_bucket_transfer_rows"] = max((row["count"] for row in per_bucket), default=0)
        if min_hops is not None and entry["holder_rows"] <= args.compare_rows:
            outputs[strategy] = (
                _frame(min_hops, ["drawdown_id"]),
                _frame(holders.select("drawdown_id", "account", "t"), ["drawdown_id", "account"]),
            )
        report["runs"][f"joins-{strategy}"] = entry
        print(f"joins-{strategy}", entry, flush=True)
        write_result(args.name, report)  # a capped run keeps what it finished
        if strategy in staged:

            def stage(strategy: str = strategy) -> pl.DataFrame:
                flows, _ = flow_frames(engine.tables, config, buckets, strategy)
                return _frame(flows, ["drawdown_id"])

            flows, entry = measured(f"stage-{strategy}", stage)
            wanted = embedded_flows()
            entry["equal_embedded"] = flows.select(wanted.columns).equals(wanted)
            report["runs"][f"stage-{strategy}"] = entry
            print(f"stage-{strategy}", entry, flush=True)
            write_result(args.name, report)
    if len(outputs) > 1:
        first, *rest = outputs.values()
        report["per_drawdown_hops_equal"] = all(
            o[0].equals(first[0]) and o[1].equals(first[1]) for o in rest
        )
    report["load_average_end"] = os.getloadavg()
    engine.close()
    write_result(args.name, report)
    rows = [
        [
            name,
            e["seconds"],
            e["jobs"],
            e["shuffle_write_mb"],
            e["shuffle_read_mb"],
            e["executor_cpu_s"],
        ]
        for name, e in report["runs"].items()
    ]
    print_table(
        args.name, ["run", "s", "jobs", "shuffle write MB", "shuffle read MB", "cpu s"], rows
    )
    print("per-drawdown hops equal:", report.get("per_drawdown_hops_equal"))


if __name__ == "__main__":
    main()
