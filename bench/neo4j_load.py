"""Benchmark the batched Bolt load against naive one-row-per-transaction MERGE, in the same run.

For each size (about 100k and 1M relationships of generated data, ``loaders.synthetic``), on a
fresh Neo4j 5.26 server started here:

1. **batched**: :meth:`graphkit.store.neo4j.Neo4jTarget.load_graph` of the whole graph into an
   empty database (constraints first, ``UNWIND $rows ... MERGE`` in batches of ``--batch-size``):
   node rows per second and relationship rows per second.
2. **naive**: the same MERGE statements, one row per transaction (one ``execute_write`` per row,
   one session), on a *subsample* because the full naive load would take hours: the first
   ``--naive-rows`` customers (node rows) and the first ``--naive-rows`` transfers (relationship
   rows, their endpoint accounts already loaded), into a database with the same constraints.

The ratio is batched rows/s over naive rows/s. Prints a table and writes
``bench/results/neo4j_load.json``.

Usage: ``.venv/bin/python bench/neo4j_load.py [--sizes 5000,50000] [--naive-rows 2000]``
(sizes are generator customers; 5000 gives ~100k relationships, 50000 ~1M).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import neo4j

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import print_table, write_result  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from graphkit.progress import SILENT  # noqa: E402
from graphkit.schema import NODES, RELATIONSHIPS  # noqa: E402
from graphkit.store.neo4j import Neo4jTarget, bolt_frame  # noqa: E402
from graphkit.store.neo4j_server import Neo4jServer  # noqa: E402
from loaders.synthetic import generate_tables  # noqa: E402
from tests.neo4j_fixture import wipe_database  # noqa: E402


def naive_customers(driver: neo4j.Driver, graph: RiskGraph, rows: int) -> tuple[int, float]:
    frame = bolt_frame(graph.nodes["Customer"].head(rows))
    key = NODES["Customer"].key
    query = "MERGE (n:Customer {customer_id: $k}) SET n += $p"
    records = [(row[key], {c: v for c, v in row.items() if c != key}) for row in frame.to_dicts()]
    clock = time.perf_counter()
    with driver.session() as session:
        for k, p in records:
            session.execute_write(lambda tx, k=k, p=p: tx.run(query, k=k, p=p).consume())
    return len(records), time.perf_counter() - clock


def naive_transfers(driver: neo4j.Driver, graph: RiskGraph, rows: int) -> tuple[int, float]:
    spec = RELATIONSHIPS["transfer"]
    edges = graph.edges["transfer"].head(rows)
    keys = graph.keys("Account")
    frame = bolt_frame(
        edges.with_columns(
            keys.gather(edges.get_column("src")).alias("src"),
            keys.gather(edges.get_column("dst")).alias("dst"),
        )
    )
    query = (
        "MATCH (a:Account {account_id: $s}) MATCH (b:Account {account_id: $d}) "
        "MERGE (a)-[r:TRANSFER {transfer_id: $k}]->(b) SET r += $p"
    )
    records = [
        (
            row["src"],
            row["dst"],
            row["transfer_id"],
            {c: v for c, v in row.items() if c not in ("src", "dst", "transfer_id")},
        )
        for row in frame.to_dicts()
    ]
    assert spec.type == "TRANSFER"
    clock = time.perf_counter()
    with driver.session() as session:
        for s, d, k, p in records:
            session.execute_write(
                lambda tx, s=s, d=d, k=k, p=p: tx.run(query, s=s, d=d, k=k, p=p).consume()
            )
    return len(records), time.perf_counter() - clock


def measure(server: Neo4jServer, customers: int, batch_size: int, naive_rows: int) -> dict:
    graph = RiskGraph.from_tables(generate_tables(customers, seed=20261129).tables)
    summary = graph.summary()
    target = Neo4jTarget(server.uri, batch_size=batch_size)
    with neo4j.GraphDatabase.driver(server.uri) as driver:
        wipe_database(driver)
        counts = target.load_graph(graph)
        batched = {
            "node_rows": counts.node_rows,
            "relationship_rows": counts.relationship_rows,
            "node_seconds": round(counts.node_seconds, 2),
            "relationship_seconds": round(counts.relationship_seconds, 2),
            "nodes_per_second": counts.node_rows / counts.node_seconds,
            "relationships_per_second": counts.relationship_rows / counts.relationship_seconds,
        }
        again = target.load_graph(graph)
        assert (again.nodes_created, again.relationships_created) == (0, 0)

        # Naive: same constraints, customers into an empty database, then transfers between
        # accounts that are already there.
        wipe_database(driver)
        target.ensure_schema()
        node_rows, node_seconds = naive_customers(driver, graph, naive_rows)
        _load_accounts(target, graph)
        rel_rows, rel_seconds = naive_transfers(driver, graph, naive_rows)
    naive = {
        "node_rows": node_rows,
        "node_seconds": round(node_seconds, 2),
        "nodes_per_second": node_rows / node_seconds,
        "relationship_rows": rel_rows,
        "relationship_seconds": round(rel_seconds, 2),
        "relationships_per_second": rel_rows / rel_seconds,
        "subsample": True,
    }
    return {
        "customers": customers,
        "graph": summary,
        "batch_size": batch_size,
        "batched": batched,
        "naive": naive,
        "ratio_nodes": batched["nodes_per_second"] / naive["nodes_per_second"],
        "ratio_relationships": batched["relationships_per_second"]
        / naive["relationships_per_second"],
    }


def _load_accounts(target: Neo4jTarget, graph: RiskGraph) -> None:
    """Batched load of the Account nodes only (the naive transfers' endpoints)."""
    with target._driver() as driver:
        target._load_nodes(driver, "Account", graph.nodes["Account"], SILENT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5000,50000", help="generator customers per size")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--naive-rows", type=int, default=2000)
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="1g")
    args = parser.parse_args()
    results = []
    with Neo4jServer().start(heap=args.heap, pagecache=args.pagecache) as server:
        for customers in (int(s) for s in args.sizes.split(",")):
            results.append(measure(server, customers, args.batch_size, args.naive_rows))
            r = results[-1]
            print(
                f"{customers} customers: {r['batched']['relationship_rows']} relationships, "
                f"x{r['ratio_relationships']:.1f} relationships, x{r['ratio_nodes']:.1f} nodes",
                flush=True,
            )
    rows = []
    for r in results:
        for kind, count in (("nodes", "node_rows"), ("relationships", "relationship_rows")):
            rows.append(
                [
                    r["batched"]["relationship_rows"],
                    kind,
                    r["batched"][count],
                    r["batched"][f"{kind}_per_second"],
                    r["naive"][f"{kind}_per_second"],
                    r[f"ratio_{kind}"],
                ]
            )
    print_table(
        "Neo4j load: batched UNWIND MERGE vs one row per transaction (naive on a subsample)",
        ["graph rels", "rows", "batched rows", "batched rows/s", "naive rows/s", "ratio"],
        rows,
    )
    path = write_result(
        "neo4j_load",
        {
            "method": "batched = Neo4jTarget.load_graph of the whole generated graph; naive = the "
            "same MERGE one row per transaction on the first naive_rows customers / transfers",
            "naive_rows": args.naive_rows,
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
