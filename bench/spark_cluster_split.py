"""What splitting a large component costs the Spark clusters in modularity.

The Spark engine solves a component of the tie graph with more than ``clusters.max_component_size``
customers by a distributed first pass, Leiden per part and a merge of the parts' communities
(:mod:`graphkit.spark.cluster_split`). This runs the Spark clusters stage on one network at
several max sizes in one ``local[2]`` session, next to the same stage with no split and the
embedded engine, and reports modularity, its relative gap to the unsplit Spark run and to the
embedded engine, ARI against the planted groups and against the embedded partition, the parts
(count, largest) and the time. Each max size runs in three variants of the merge, so the
before/after is in one process: ``capped`` (the contraction also capped at the max size and no
refinement: the rule before ``max_contraction_size`` and ``split_refine_rounds`` existed),
``whole`` (the contraction solved by one task, no refinement) and ``refined`` (the default:
whole, then ``split_refine_rounds`` rounds of local moves).

    python bench/spark_cluster_split.py --network planted:0 --sizes 60 30 16
    python bench/spark_cluster_split.py --network /work/data/net20k --sizes 8000 2000 500

Results: ``bench/results/spark_cluster_split_<name>.json`` and a table on screen.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import polars as pl
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_result  # noqa: E402
from graphkit.analytics.clusters import MEMBERSHIP_COLUMNS, related_clusters  # noqa: E402
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402

UNSPLIT = 2**62


def _network(name: str) -> tuple[str, dict[str, pl.DataFrame], pl.DataFrame]:
    """(label, tables, planted groups with customer_id, group_id)."""
    if name.startswith("planted:"):
        from tests.analytics_fixtures import planted_network

        planted = planted_network(int(name.split(":", 1)[1]))
        return f"planted{name.split(':', 1)[1]}", planted.tables, planted.groups
    from loaders.sources import read_input

    path = Path(name)
    groups = pl.read_parquet(path / "_truth" / "groups.parquet")
    return path.name, read_input(path).tables, groups


def _ari(groups: pl.DataFrame, membership: pl.DataFrame) -> float:
    joined = groups.join(membership, on="customer_id", how="left").with_row_index()
    joined = joined.with_columns(
        pl.col("cluster_id").fill_null(-pl.col("index").cast(pl.Int64) - 1)
    )
    return float(
        adjusted_rand_score(
            joined.get_column("group_id").to_list(), joined.get_column("cluster_id").to_list()
        )
    )


VARIANTS = {
    "capped": lambda size, rounds: {"max_contraction_size": size, "split_refine_rounds": 0},
    "whole": lambda size, rounds: {"split_refine_rounds": 0},
    "refined": lambda size, rounds: {"split_refine_rounds": rounds},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="planted:0")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 30, 16])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    from graphkit.spark.clusters import cluster_frames
    from graphkit.spark.rings import to_polars
    from graphkit.spark.session import start_session
    from graphkit.spark.tables import from_polars

    label, tables, groups = _network(args.network)
    config = Config()
    started = time.perf_counter()
    embedded = related_clusters(RiskGraph.from_tables(tables), config)
    rows = [
        {
            "engine": "embedded",
            "variant": "-",
            "max_component_size": None,
            "modularity": embedded.modularity,
            "ari": _ari(groups, embedded.membership),
            "ari_embedded": 1.0,
            "seconds": time.perf_counter() - started,
        }
    ]
    reference = embedded.membership.rename({"cluster_id": "group_id"}).drop("cluster_size")
    spark = start_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    frames = from_polars(spark, tables)
    whole = None
    runs = [(UNSPLIT, "-")] + [(s, v) for s in args.sizes for v in args.variants]
    for size, variant in runs:
        settings = {"max_component_size": size}
        if variant != "-":
            settings |= VARIANTS[variant](size, config.clusters.split_refine_rounds)
        cfg = dataclasses.replace(config, clusters=dataclasses.replace(config.clusters, **settings))
        started = time.perf_counter()
        membership, modularity, _, parts = cluster_frames(frames, cfg)
        found = to_polars(membership, MEMBERSHIP_COLUMNS)
        split = parts.toPandas()
        seconds = time.perf_counter() - started
        whole = modularity if whole is None else whole
        rows.append(
            {
                "engine": "spark",
                "variant": variant,
                "max_component_size": None if size == UNSPLIT else size,
                "modularity": modularity,
                "gap_to_unsplit": (whole - modularity) / whole if whole else 0.0,
                "gap_to_embedded": (embedded.modularity - modularity) / embedded.modularity,
                "ari": _ari(groups, found),
                "ari_embedded": _ari(reference, found),
                "parts": len(split),
                "largest_part": int(split["size"].max()) if len(split) else None,
                "levels": int(split["level"].max()) + 1 if len(split) else 0,
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    spark.stop()
    path = write_result(f"spark_cluster_split_{label}", {"network": args.network, "rows": rows})
    print_table(
        f"Spark clusters split, {label} ({path.name})",
        [
            "engine",
            "max size",
            "variant",
            "modularity",
            "gap unsplit",
            "gap embedded",
            "ARI",
            "ARI emb",
            "parts",
            "largest",
            "levels",
            "s",
        ],
        [
            [
                r["engine"],
                r["max_component_size"] or "-",
                r["variant"],
                round(r["modularity"], 5),
                round(r.get("gap_to_unsplit", 0.0), 4),
                round(r.get("gap_to_embedded", 0.0), 4),
                round(r["ari"], 4),
                round(r["ari_embedded"], 4),
                r.get("parts", "-"),
                r.get("largest_part") or "-",
                r.get("levels", "-"),
                round(r["seconds"], 1),
            ]
            for r in rows
        ],
    )


if __name__ == "__main__":
    main()
