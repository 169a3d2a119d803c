"""Benchmark: stable cluster ids under tie churn (issue 17), warm start against cold start.

On a generated network (``--customers``, default 20,000: about 100k nodes, the pipeline
benchmark's "small" size) the clusters of a scheduled series are settled first (a cold run,
then a warm start from it, as the first ``--previous`` run does). Then, for each churn fraction
(1%, 5%, 10% of ties changed, half removed and half added between uniformly random tied
customers: :func:`graphkit.analytics.perturb.perturb_ties`) and each seed:

* warm: :func:`graphkit.analytics.cluster_lineage.stable_clusters` from the settled membership;
* cold: ``related_clusters`` from singletons on the same ties, ids then carried by the same
  overlap rule (what carrying ids without a warm start would keep).

Reported per fraction (mean over seeds): share of previous clusters keeping their id, warm and
cold; warm modularity relative to cold; seconds of each. Also the identical-input re-run
(clusters kept, membership unchanged). Prints a table and writes
``bench/results/cluster_lineage.json``.

Usage: ``python bench/cluster_lineage.py [--customers 20000] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_result  # noqa: E402
from graphkit.analytics.cluster_lineage import (  # noqa: E402
    carry_cluster_ids,
    stable_clusters,
    warm_clusters,
)
from graphkit.analytics.clusters import cluster_graph, related_clusters  # noqa: E402
from graphkit.analytics.perturb import perturb_ties  # noqa: E402
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from loaders.synthetic import generate_tables  # noqa: E402

FRACTIONS = (0.01, 0.05, 0.10)


def _kept(lineage: pl.DataFrame, clusters: int) -> float:
    return lineage.filter(pl.col("relation") == "same").height / clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    data = generate_tables(customers=args.customers, seed=5)
    graph = RiskGraph.from_tables(data.tables)
    nodes = sum(frame.height for frame in graph.nodes.values())
    config = Config()
    built = cluster_graph(graph, config)
    cold = related_clusters(graph, config, built=built)
    started = time.perf_counter()
    settled = warm_clusters(graph, cold.membership, config, built=built)
    settle_seconds = time.perf_counter() - started
    previous = settled.membership.select("customer_id", "cluster_id")
    clusters = previous.get_column("cluster_id").n_unique()

    started = time.perf_counter()
    again, lineage = stable_clusters(graph, previous, config, built=built)
    identical = {
        "seconds": time.perf_counter() - started,
        "kept": _kept(lineage, clusters),
        "membership_unchanged": again.membership.equals(settled.membership),
    }

    rows, results = [], []
    for fraction in FRACTIONS:
        runs = []
        for seed in range(1, args.seeds + 1):
            changed = perturb_ties(built, fraction, seed)
            started = time.perf_counter()
            warm, warm_lineage = stable_clusters(graph, previous, config, built=changed)
            warm_seconds = time.perf_counter() - started
            started = time.perf_counter()
            fresh = related_clusters(graph, config, built=changed)
            cold_seconds = time.perf_counter() - started
            _, cold_lineage = carry_cluster_ids(previous, fresh.membership)
            runs.append(
                {
                    "seed": seed,
                    "kept_warm": _kept(warm_lineage, clusters),
                    "kept_cold": _kept(cold_lineage, clusters),
                    "modularity_warm": warm.modularity,
                    "modularity_cold": fresh.modularity,
                    "seconds_warm": warm_seconds,
                    "seconds_cold": cold_seconds,
                    "relations": dict(
                        warm_lineage.get_column("relation").value_counts().iter_rows()
                    ),
                }
            )
        mean = {
            key: statistics.mean(r[key] for r in runs)
            for key in runs[0]
            if key not in ("seed", "relations")
        }
        results.append({"fraction": fraction, "runs": runs, "mean": mean})
        rows.append(
            [
                f"{fraction:.0%}",
                round(100 * mean["kept_warm"], 1),
                round(100 * min(r["kept_warm"] for r in runs), 1),
                round(100 * mean["kept_cold"], 1),
                round(100 * (mean["modularity_warm"] / mean["modularity_cold"] - 1), 2),
                round(mean["seconds_warm"], 2),
                round(mean["seconds_cold"], 2),
            ]
        )
    print(
        f"{args.customers:,} customers, {nodes:,} nodes, {len(built.pairs):,} ties, "
        f"{clusters:,} clusters; settling warm start {settle_seconds:.2f} s; identical re-run: "
        f"{identical['kept']:.1%} kept, membership unchanged {identical['membership_unchanged']}"
    )
    print_table(
        f"Stable cluster ids under tie churn (mean of {args.seeds} seeds)",
        [
            "ties changed",
            "kept % warm",
            "min kept % warm",
            "kept % cold",
            "modularity warm vs cold %",
            "warm s",
            "cold s",
        ],
        rows,
    )
    path = write_result(
        "cluster_lineage",
        {
            "customers": args.customers,
            "nodes": nodes,
            "ties": len(built.pairs),
            "clusters": clusters,
            "seeds": args.seeds,
            "settle_seconds": settle_seconds,
            "identical": identical,
            "churn": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
