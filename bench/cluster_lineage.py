"""Benchmark: stable cluster ids under tie churn (issue 17), warm start against cold start.

On a generated network (``--customers``, default 20,000: about 100k nodes, the pipeline
benchmark's "small" size) the clusters of a scheduled series are settled first (a cold run,
then a warm start from it, as the first ``--previous`` run does). Then, for each churn fraction
(1%, 5%, 10% of ties changed, half removed and half added between uniformly random tied
customers: :func:`graphkit.analytics.perturb.perturb_ties`) and each seed:

* warm: :func:`graphkit.analytics.cluster_lineage.stable_clusters` from the settled membership;
* cold: ``related_clusters`` from singletons on the same ties, ids then carried by the same
  overlap rule (what carrying ids without a warm start would keep).

Reported per fraction (mean over seeds): share of previous clusters keeping their id (a
``same`` lineage row), warm and cold, over all clusters and over clusters of 3+ members; warm
modularity relative to cold (the issue's bound: no more than 0.5% below); whether every draw's
lineage adds up (:func:`lineage_adds_up`); seconds of each. Also the identical-input re-run
(clusters kept, membership unchanged). Prints a table and writes
``bench/results/cluster_lineage[_NAME].json``.

The network is ``graphkit generate``'s (``--customers``, ``--network-seed``), generated in
process, or read from ``--input DIR`` made by ``graphkit generate DIR --customers N --seed S``.

Usage: ``python bench/cluster_lineage.py [--customers 20000] [--seeds 3] [--name 100k]``.
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
    lineage_problems,
    stable_clusters,
    warm_clusters,
)
from graphkit.analytics.clusters import cluster_graph, related_clusters  # noqa: E402
from graphkit.analytics.perturb import perturb_ties  # noqa: E402
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from loaders.synthetic import generate_tables  # noqa: E402

FRACTIONS = (0.01, 0.05, 0.10)


def _kept(lineage: pl.DataFrame, previous: pl.DataFrame, min_size: int = 1) -> float:
    """Share of ``previous``'s clusters of at least ``min_size`` members keeping their id."""
    sizes = previous.group_by("cluster_id").len().filter(pl.col("len") >= min_size)
    same = lineage.filter(pl.col("relation") == "same").get_column("previous_cluster_id")
    return sizes.filter(pl.col("cluster_id").is_in(same.implode())).height / sizes.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--network-seed", type=int, default=5)
    parser.add_argument("--input", type=Path, default=None, help="a graphkit generate directory")
    parser.add_argument("--name", default="", help="suffix of the result file")
    args = parser.parse_args()

    if args.input is not None:
        from graphkit.pipeline.run import load_graph

        graph, _ = load_graph(args.input)
        args.customers = graph.n("Customer")
    else:
        data = generate_tables(customers=args.customers, seed=args.network_seed)
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
        "kept": _kept(lineage, previous),
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
            problems = lineage_problems(previous, warm.membership, warm_lineage)
            runs.append(
                {
                    "seed": seed,
                    "kept_warm": _kept(warm_lineage, previous),
                    "kept_warm_3plus": _kept(warm_lineage, previous, 3),
                    "kept_cold": _kept(cold_lineage, previous),
                    "kept_cold_3plus": _kept(cold_lineage, previous, 3),
                    "lineage_adds_up": not problems,
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
            if key not in ("seed", "relations", "lineage_adds_up")
        }
        results.append({"fraction": fraction, "runs": runs, "mean": mean})
        rows.append(
            [
                f"{fraction:.0%}",
                round(100 * mean["kept_warm"], 1),
                round(100 * min(r["kept_warm"] for r in runs), 1),
                round(100 * mean["kept_warm_3plus"], 1),
                round(100 * mean["kept_cold"], 1),
                round(100 * min(r["modularity_warm"] / r["modularity_cold"] - 1 for r in runs), 2),
                "yes" if all(r["lineage_adds_up"] for r in runs) else "NO",
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
            "kept % warm, 3+ members",
            "kept % cold",
            "worst modularity warm vs cold %",
            "lineage adds up",
            "warm s",
            "cold s",
        ],
        rows,
    )
    sizes = previous.group_by("cluster_id").len().get_column("len")
    path = write_result(
        "cluster_lineage" + (f"_{args.name}" if args.name else ""),
        {
            "customers": args.customers,
            "network_seed": None if args.input else args.network_seed,
            "input": str(args.input) if args.input else None,
            "cluster_sizes": {
                "2": int((sizes == 2).sum()),
                "3+": int((sizes >= 3).sum()),
                "max": int(sizes.max()),
            },
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
