"""Benchmark: guarantee circles, clusters and device rings against networkx, in one process.

Each stage runs on a generated graph of at least 1M edges (``--scale`` shrinks it for a quick
look) and is timed against the networkx equivalent on the same graph:

* circles: graphkit ``guarantee_circles`` (SCC + cycles up to length 6 + internal amounts +
  reach) vs networkx ``strongly_connected_components`` + ``simple_cycles(length_bound=6)``;
  1M random guarantees among 500k customers.
* clusters: graphkit ``related_clusters`` on the built multiplex (Leiden, including building its
  igraph graph, + numbering) vs networkx ``louvain_communities`` on the same weighted customer
  graph; a planted-partition multiplex of 1M ties (guarantees, shareholdings, shared devices,
  transfers). And the issue's reference workload, ``clusters (random edges)``: Leiden +
  numbering vs ``louvain_communities`` on 1M uniformly random edges over 250k vertices, where
  Louvain has no easy structure to settle on (stopped after ``--random-timeout``).
* rings: graphkit ``device_rings`` on the graph's (customer, device) use pairs vs networkx
  bipartite projection onto customers (shared, non-hub devices) + ``connected_components`` on
  the same pairs; 1M device links.

Both sides start from the same input: building the networkx graph objects is timed separately
and not counted in the ratio, and neither is graphkit's RiskGraph build nor the graphkit step
deriving the input networkx is handed ready-made (``cluster_graph`` for clusters,
``RiskGraph.device_uses`` for rings); those are reported as ``graphkit_input_seconds`` and in
the note, with the end-to-end ratio that counts them. Prints a table and writes
``bench/results/analytics.json``.

Usage: ``python bench/analytics.py [--scale 1.0] [--nx-timeout 3600] [--cycles-timeout 900]
[--only STAGE ...]``. networkx's bounded ``simple_cycles`` does not finish on the full circles
graph; it is stopped after ``--cycles-timeout`` and the ratio reported as a lower bound, and an
exact comparison (same cycle count) runs on a 1/100 subsample.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
from networkx.algorithms import bipartite
from rich.console import Console
from rich.table import Table
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import timed, weighted_graph  # noqa: E402
from graphkit.analytics.circles import guarantee_circles  # noqa: E402
from graphkit.analytics.clusters import (  # noqa: E402
    cluster_graph,
    leiden,
    numbered_clusters,
    related_clusters,
)
from graphkit.analytics.rings import device_rings  # noqa: E402
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from loaders.frames import make_tables  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "analytics.json"
TARGETS = {"circles": 30.0, "clusters": 100.0, "rings": 15.0}
MAX_CYCLE_LENGTH = 6


def _ids(prefix: str, n: int) -> pl.Series:
    digits = pl.Series(np.arange(n)).cast(pl.String).str.zfill(8)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def _customers(n: int) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": _ids("C", n), "kind": ["enterprise"] * n})


def _in_child(target: Callable[..., Any], args: tuple, timeout: float) -> tuple[float | None, Any]:
    """Run ``target(*args, queue)`` in a forked child; (seconds, payload) or (None, None)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    child.start()
    deadline = time.perf_counter() + timeout
    # Read before joining: a child cannot exit while its queued result is unread.
    result: tuple[float | None, Any] = (None, None)
    while time.perf_counter() < deadline:
        try:
            result = queue.get(timeout=1.0)
            break
        except Empty:
            if not child.is_alive():
                raise RuntimeError(f"networkx baseline {target.__name__} died") from None
    child.kill()
    child.join()
    return result


# ------------------------------------------------------------------------------------ circles


def _nx_circles(edges: np.ndarray, n: int, queue: Any) -> None:
    """Reports ("build"|"scc"|"cycles", seconds, value) as each part finishes."""
    seconds, graph = timed(lambda: _digraph(edges, n))
    queue.put(("build", seconds, None))
    seconds, components = timed(
        lambda: [c for c in nx.strongly_connected_components(graph) if len(c) >= 2]
    )
    queue.put(("scc", seconds, len(components)))
    seconds, cycles = timed(
        lambda: sum(1 for _ in nx.simple_cycles(graph, length_bound=MAX_CYCLE_LENGTH))
    )
    queue.put(("cycles", seconds, cycles))


def _digraph(edges: np.ndarray, n: int) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.tolist())
    return graph


def _messages(target: Callable[..., Any], args: tuple, timeout: float) -> dict[str, Any]:
    """Run ``target(*args, queue)`` in a forked child and collect its (name, seconds, value)
    messages until it has sent ``cycles`` or ``timeout`` seconds pass; ``killed_after`` is the
    seconds the unfinished part had run when the child was stopped."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    deadline = time.perf_counter() + timeout
    child.start()
    got: dict[str, Any] = {}
    last = time.perf_counter()
    while "cycles" not in got:
        if time.perf_counter() >= deadline:
            got["killed_after"] = time.perf_counter() - last
            break
        try:
            name, seconds, value = queue.get(timeout=1.0)
        except Empty:
            if not child.is_alive():
                raise RuntimeError("networkx circles baseline died") from None
            continue
        got[name] = (seconds, value)
        last = time.perf_counter()
    child.kill()
    child.join()
    return got


def bench_circles(
    scale: float, timeout: float, rng: np.random.Generator, label: str = "circles"
) -> dict[str, Any]:
    n, m = int(500_000 * scale), int(1_000_000 * scale)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    edges = np.column_stack([src[keep], dst[keep]])
    ids = _ids("C", n)
    tables = make_tables(
        customers=_customers(n),
        guarantees=pl.DataFrame(
            {
                "guarantor_id": ids.gather(edges[:, 0]),
                "borrower_id": ids.gather(edges[:, 1]),
                "amount": rng.uniform(1e4, 1e6, len(edges)),
            }
        ),
    )
    graph = RiskGraph.from_tables(tables)
    ours, result = timed(lambda: guarantee_circles(graph, MAX_CYCLE_LENGTH, 1000))
    cycles = int(result.summary.get_column("cycles_listed").sum())
    capped = int(result.summary.get_column("cycles_capped").sum())
    got = _messages(_nx_circles, (edges, n), timeout)
    row: dict[str, Any] = {
        "stage": label,
        "graph": f"{n:,} customers, {len(edges):,} guarantees",
        "edges": len(edges),
        "graphkit_seconds": ours,
        "networkx_build_seconds": got.get("build", (None,))[0],
        "agree": None,
        "detail": {
            "circles": result.summary.height,
            "largest_circle": int(result.summary.get_column("size").max()),
            "cycles_listed": cycles,
            "circles_capped": capped,
            "networkx_scc_seconds": got.get("scc", (None,))[0],
            "networkx_cycles_seconds": got.get("cycles", (None,))[0],
        },
    }
    if "cycles" in got:
        row["networkx_seconds"] = got["scc"][0] + got["cycles"][0]
        row["agree"] = got["scc"][1] == result.summary.height and (
            capped > 0 or got["cycles"][1] == cycles
        )
    else:
        row["networkx_seconds"] = None
        spent = (got["scc"][0] if "scc" in got else 0.0) + got.get("killed_after", 0.0)
        row["networkx_lower_bound_seconds"] = spent
        row["note"] = (
            f"networkx stopped after {spent:.0f} s "
            + ("in simple_cycles" if "scc" in got else "in strongly_connected_components")
            + "; the ratio is a lower bound"
        )
    return row


def _build_note(
    what: str, building: float, ours: float, theirs: float | None, info: dict | None
) -> str:
    """How long graphkit took to derive the input networkx is handed, and the ratio counting
    both sides' builds (graphkit's input + kernel vs networkx's graph build + algorithm)."""
    note = f"same {what} on both sides; graphkit derived them in {building:.2f} s"
    if theirs is not None and info is not None:
        end_to_end = (theirs + info["build_seconds"]) / (building + ours)
        note += (
            f", networkx built its graph in {info['build_seconds']:.1f} s; "
            f"counting both builds {end_to_end:.1f}x"
        )
    return note


# ----------------------------------------------------------------------------------- clusters


def _nx_louvain(pairs: np.ndarray, weights: np.ndarray, n: int, seed: int, queue: Any) -> None:
    build_seconds, graph = timed(lambda: weighted_graph(pairs, weights, n))
    seconds, communities = timed(
        lambda: nx.community.louvain_communities(graph, weight="weight", resolution=1, seed=seed)
    )
    membership = np.empty(n, dtype=np.int64)
    for label, members in enumerate(communities):
        membership[list(members)] = label
    modularity = nx.community.modularity(graph, communities, weight="weight")
    queue.put(
        (
            seconds,
            {
                "build_seconds": build_seconds,
                "membership": membership,
                "modularity": modularity,
                "communities": len(communities),
            },
        )
    )


def _multiplex_tables(scale: float, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Planted groups of 5-30 customers; 1M ties over four layers, 20% leaving the group."""
    n = int(200_000 * scale)
    sizes = rng.integers(5, 31, n // 5)
    sizes = sizes[np.cumsum(sizes) <= n]
    n = int(sizes.sum())
    group = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def ties(count: int, outside: float) -> tuple[np.ndarray, np.ndarray]:
        a = rng.integers(0, n, count)
        inside = starts[group[a]] + (rng.random(count) * sizes[group[a]]).astype(np.int64)
        b = np.where(rng.random(count) < outside, rng.integers(0, n, count), inside)
        keep = a != b
        return a[keep], b[keep]

    ids = _ids("C", n)
    g_a, g_b = ties(int(450_000 * scale), 0.2)
    s_a, s_b = ties(int(450_000 * scale), 0.2)
    share = pl.DataFrame({"holder": s_a, "company": s_b}).unique(["holder", "company"])
    t_a, t_b = ties(int(260_000 * scale), 0.2)
    accounts = _ids("A", n)
    # Devices: 50k devices of 2-4 users inside one group.
    d_user, d_device = [], []
    for device in range(int(50_000 * scale)):
        g = rng.integers(0, len(sizes))
        users = starts[g] + rng.choice(sizes[g], min(sizes[g], rng.integers(2, 5)), replace=False)
        d_user.append(users)
        d_device.append(np.full(len(users), device))
    links = pl.DataFrame(
        {
            "customer_id": ids.gather(np.concatenate(d_user)),
            "device_id": _ids("D", int(50_000 * scale)).gather(np.concatenate(d_device)),
        }
    ).unique()
    tables = make_tables(
        customers=_customers(n),
        accounts=pl.DataFrame({"account_id": accounts, "owner_id": ids}),
        guarantees=pl.DataFrame(
            {
                "guarantor_id": ids.gather(g_a),
                "borrower_id": ids.gather(g_b),
                "amount": np.full(len(g_a), 1e5),
            }
        ),
        shareholdings=pl.DataFrame(
            {
                "holder_id": ids.gather(share.get_column("holder")),
                "company_id": ids.gather(share.get_column("company")),
                "share": np.full(share.height, 0.3),
            }
        ),
        device_links=links,
        transfers=pl.DataFrame(
            {
                "transfer_id": _ids("T", len(t_a)),
                "src_account": accounts.gather(t_a),
                "dst_account": accounts.gather(t_b),
                "amount": np.full(len(t_a), 1000.0),
                "ts": pl.Series(["2025-01-01T00:00:00"] * len(t_a)),
            }
        ),
    )
    return tables, group


def bench_clusters(scale: float, timeout: float, rng: np.random.Generator) -> dict[str, Any]:
    tables, group = _multiplex_tables(scale, rng)
    graph = RiskGraph.from_tables(tables)
    config = Config()
    # networkx is handed the weighted ties cluster_graph builds, so that build is timed apart.
    building, built = timed(lambda: cluster_graph(graph, config))
    ours, result = timed(lambda: related_clusters(graph, config, built=built))
    weights = built.weights(config.clusters.weights)
    keep = weights > 0
    leiden_only, _ = timed(
        lambda: leiden(
            len(built.nodes),
            built.pairs,
            weights,
            config.clusters.resolution,
            config.clusters.seed,
            config.clusters.leiden_iterations,
        )
    )
    theirs, info = _in_child(
        _nx_louvain,
        (built.pairs[keep], weights[keep], len(built.nodes), config.clusters.seed),
        timeout,
    )
    found = (
        pl.DataFrame({"customer_id": graph.keys("Customer"), "group": group})
        .join(result.membership, on="customer_id", how="left")
        .with_row_index()
        .with_columns(pl.col("cluster_id").fill_null(-pl.col("index").cast(pl.Int64) - 1))
    )
    detail = {
        "customers": graph.n("Customer"),
        "tied_pairs": int(keep.sum()),
        "clusters": result.membership.get_column("cluster_id").n_unique(),
        "modularity": result.modularity,
        "ari_vs_planted": adjusted_rand_score(found["group"], found["cluster_id"]),
        "graphkit_leiden_only_seconds": leiden_only,
        "end_to_end_ratio": None,
    }
    if info is not None:
        planted_on_vertices = group[built.nodes]
        detail["networkx"] = {
            "build_seconds": info["build_seconds"],
            "modularity": info["modularity"],
            "communities": info["communities"],
            "ari_vs_planted_tied": adjusted_rand_score(planted_on_vertices, info["membership"]),
        }
        detail["leiden_only_ratio"] = theirs / leiden_only
        detail["end_to_end_ratio"] = (theirs + info["build_seconds"]) / (building + ours)
    note = _build_note("weighted ties", building, ours, theirs, info) + (
        f"; Leiden alone {leiden_only:.2f} s"
    )
    return {
        "stage": "clusters",
        "graph": f"{graph.n('Customer'):,} customers, {int(keep.sum()):,} weighted ties",
        "edges": int(keep.sum()),
        "graphkit_seconds": ours,
        "graphkit_input_seconds": building,
        "networkx_seconds": theirs,
        "networkx_build_seconds": info["build_seconds"] if info else None,
        "agree": None,
        "note": note,
        "detail": detail,
    }


def bench_clusters_random(scale: float, timeout: float, rng: np.random.Generator) -> dict[str, Any]:
    """The issue's reference workload: 1M uniformly random edges (G(n, m), n = m / 4)."""
    m = int(1_000_000 * scale)
    n = max(m // 4, 2)
    drawn = np.sort(rng.integers(0, n, size=(m + m // 50, 2)), axis=1)
    pairs = np.unique(drawn[drawn[:, 0] != drawn[:, 1]], axis=0)[:m]
    weights = np.ones(len(pairs))
    config = Config()
    ids = pl.Series(np.arange(n)).cast(pl.String)

    def ours_run() -> tuple[np.ndarray, float]:
        membership, modularity = leiden(
            n,
            pairs,
            weights,
            config.clusters.resolution,
            config.clusters.seed,
            config.clusters.leiden_iterations,
        )
        numbered_clusters(ids, membership)
        return membership, modularity

    ours, (membership, modularity) = timed(ours_run)
    theirs, info = _in_child(_nx_louvain, (pairs, weights, n, config.clusters.seed), timeout)
    detail: dict[str, Any] = {
        "vertices": n,
        "clusters": len(np.unique(membership)),
        "modularity": modularity,
    }
    if info is not None:
        detail["networkx"] = {
            "build_seconds": info["build_seconds"],
            "modularity": info["modularity"],
            "communities": info["communities"],
        }
    return {
        "stage": "clusters (random edges)",
        "graph": f"G(n, m): {n:,} vertices, {len(pairs):,} random edges",
        "edges": len(pairs),
        "graphkit_seconds": ours,
        "networkx_seconds": theirs,
        "networkx_build_seconds": info["build_seconds"] if info else None,
        "agree": None,
        "note": (
            "Leiden (incl. its igraph graph) + numbering vs networkx louvain_communities; "
            f"modularity {modularity:.3f}"
            + (
                f" vs networkx {info['modularity']:.3f}"
                if info
                else f"; networkx stopped after {timeout:.0f} s, the ratio is a lower bound"
            )
        ),
        "detail": detail,
    }


# -------------------------------------------------------------------------------------- rings


def _nx_rings(links: np.ndarray, n: int, k: int, m: int, queue: Any) -> None:
    def build() -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(range(n), bipartite=0)
        graph.add_edges_from(zip(links[:, 0].tolist(), (links[:, 1] + n).tolist(), strict=True))
        return graph

    build_seconds, graph = timed(build)

    def run() -> list[set[int]]:
        devices = [v for v, degree in graph.degree() if v >= n and k <= degree <= m]
        shared = graph.subgraph(list(range(n)) + devices)
        users = [v for v in range(n) if shared.degree(v) > 0]
        projected = bipartite.projected_graph(shared, users)
        return list(nx.connected_components(projected))

    seconds, rings = timed(run)
    queue.put(
        (seconds, {"build_seconds": build_seconds, "rings": sorted(sorted(r) for r in rings)})
    )


def bench_rings(scale: float, timeout: float, rng: np.random.Generator) -> dict[str, Any]:
    n, devices, m = int(500_000 * scale), int(400_000 * scale), int(1_000_000 * scale)
    # Heavy-tailed device popularity: most devices private, some shared, a few hubs.
    popularity = rng.pareto(1.2, devices) + 1
    device = rng.choice(devices, m, p=popularity / popularity.sum())
    customer = rng.integers(0, n, m)
    pairs = np.unique(np.column_stack([customer, device]), axis=0)
    config = Config()
    tables = make_tables(
        customers=_customers(n),
        device_links=pl.DataFrame(
            {
                "customer_id": _ids("C", n).gather(pairs[:, 0]),
                "device_id": _ids("D", devices).gather(pairs[:, 1]),
            }
        ),
    )
    graph = RiskGraph.from_tables(tables)
    k, hub = config.rings.min_customers_per_device, config.rings.max_customers_per_device
    # networkx is handed the (customer, device) pairs, so deriving them (cached on the graph,
    # shared with the clusters and GNN features) is timed apart.
    building, _ = timed(graph.device_uses)
    ours, result = timed(lambda: device_rings(graph, k, hub))
    theirs, info = _in_child(_nx_rings, (pairs, n, k, hub), timeout)
    agree = None
    if info is not None:
        ids = _ids("C", n)
        expected = {frozenset(ids.gather(r).to_list()) for r in info["rings"]}
        got = {
            frozenset(g)
            for g in result.membership.group_by("ring_id").agg("customer_id")["customer_id"]
        }
        agree = expected == got
        info = {"build_seconds": info["build_seconds"], "rings": len(info["rings"])}
    return {
        "stage": "rings",
        "graph": f"{n:,} customers, {len(pairs):,} device links",
        "edges": len(pairs),
        "graphkit_seconds": ours,
        "graphkit_input_seconds": building,
        "networkx_seconds": theirs,
        "networkx_build_seconds": info["build_seconds"] if info else None,
        "agree": agree,
        "note": _build_note("use pairs", building, ours, theirs, info),
        "detail": {
            "rings": result.membership.get_column("ring_id").n_unique(),
            "largest_ring": int(result.membership.get_column("ring_size").max()),
            "hub_devices": result.hubs.height,
            "networkx": info,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="graph size factor (1 = 1M)")
    parser.add_argument("--nx-timeout", type=float, default=3600.0, help="seconds per baseline")
    parser.add_argument(
        "--cycles-timeout",
        type=float,
        default=900.0,
        help="seconds for networkx SCC + simple_cycles on the full graph before it is stopped "
        "(at most --nx-timeout)",
    )
    parser.add_argument(
        "--only",
        choices=["circles", "circles_subsample", "clusters", "clusters_random", "rings"],
        action="append",
    )
    parser.add_argument(
        "--random-timeout",
        type=float,
        default=900.0,
        help="seconds for networkx Louvain on the random-edge graph before it is stopped "
        "(the ratio is then a lower bound)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(20261129)
    benches = {
        "circles": bench_circles,
        "circles_subsample": lambda scale, timeout, rng: bench_circles(
            scale / 100, timeout, rng, "circles (1/100 subsample)"
        ),
        "clusters": bench_clusters,
        "clusters_random": bench_clusters_random,
        "rings": bench_rings,
    }
    rows = []
    for name, bench in benches.items():
        if args.only and name not in args.only:
            continue
        timeout = {
            "circles": min(args.cycles_timeout, args.nx_timeout),
            "clusters_random": min(args.random_timeout, args.nx_timeout),
        }.get(name, args.nx_timeout)
        row = bench(args.scale, timeout, rng)
        row["target"] = TARGETS[name.split("_")[0]]
        if row["networkx_seconds"] is None:
            row["ratio"] = None
            row.setdefault("note", f"networkx did not finish in {timeout:.0f} s")
            lower = row.get("networkx_lower_bound_seconds", timeout)
            row["ratio_floor"] = lower / row["graphkit_seconds"]
        else:
            row["ratio"] = row["networkx_seconds"] / row["graphkit_seconds"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "detail"}, default=str), flush=True)

    table = Table(title=f"graphkit analytics vs networkx (scale {args.scale})")
    for column in ("stage", "graph", "graphkit s", "networkx s", "ratio", "target", "agree"):
        table.add_column(column)
    table.add_column("note", overflow="fold")
    for row in rows:
        ratio = (
            f"{row['ratio']:.1f}x" if row["ratio"] is not None else f">= {row['ratio_floor']:.1f}x"
        )
        theirs = row["networkx_seconds"]
        table.add_row(
            row["stage"],
            row["graph"],
            f"{row['graphkit_seconds']:.2f}",
            f"{theirs:.1f}" if theirs is not None else "timeout",
            ratio,
            f"{row['target']:.0f}x",
            str(row["agree"]) if row["agree"] is not None else "-",
            row.get("note", ""),
        )
    Console(width=160).print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.only and RESULTS.exists():
        # A partial run replaces its own rows and keeps the others of the last full run.
        previous = json.loads(RESULTS.read_text()).get("results", [])
        fresh = {row["stage"] for row in rows}
        rows = [row for row in previous if row["stage"] not in fresh] + rows
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "analytics",
                "created_at": datetime.now(UTC).isoformat(),
                "scale": args.scale,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": multiprocessing.cpu_count(),
                },
                "results": rows,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
