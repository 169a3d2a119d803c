"""Benchmark: the whole embedded pipeline at about 100k, 1M and 5M nodes, stage by stage.

For each size a generated network (``loaders.synthetic``, seed 20261129) is cached under
``bench/data/`` and ``graphkit.pipeline.run_pipeline`` runs on it in a fresh child process, so
each size's peak RSS is its own. A recording :class:`graphkit.progress.Progress` turns the
pipeline's task events into per-stage seconds and peak RSS (sampled every 20 ms), plus sub-steps
(files read, flows kernels, ...). Rows per second divides each stage's input rows by its time.

After the pipeline, in the same child, the baselines run on the snapshot the run wrote (the
networkx ones are the same algorithms as ``bench/analytics.py``'s, on this pipeline's graph;
that script's helpers are private and still changing shape, so the few lines are here):

* circles: networkx SCC + ``simple_cycles(length_bound=L)`` on the guarantee graph;
* rings: networkx bipartite projection + connected components, on the same (customer, device)
  use pairs the stage uses (``RiskGraph.device_uses``);
* clusters: networkx Louvain on the same weighted multiplex ties (``cluster_graph``);
* flows: ``bench/flows.py``'s ``Reference`` (imported): the per-drawdown DFS (min hops) and
  one-transfer-at-a-time ``first`` replay, on a random sample of drawdowns, checked against the
  run's ``flows.parquet`` (``agree``).

Each networkx baseline is handed its input ready-made and its graph build is not timed, so its
ratio compares it with the stage *minus the sub-step that builds that input* (``HANDED``): the
rings stage minus ``device uses`` (the (customer, device) pairs, cached on the graph and shared
with clusters, contagion and the GNN features) and the clusters stage minus ``cluster ties``
(the weighted multiplex). Those sub-steps are rows of their own, and the whole-stage ratio is
reported next to the kernel one.

networkx baselines run in a forked child with a timeout. At the large size they run on a
subsample: the customers of the generator's first chunk (250k customers; no tie crosses a
chunk, so the induced subgraph is exactly that chunk's network). Ratios are therefore per row:
(baseline seconds per input row) / (graphkit seconds per input row); with equal inputs this is
the plain time ratio. A baseline that times out gives a lower bound (">="). Both wall and CPU
seconds are recorded: on a shared machine CPU seconds are the steadier measure of cost.

The growth exponent of each stage is the slope of log(seconds) on log(nodes) over the sizes run
(CPU and wall). Stage starts and finishes are appended to ``bench/data/progress_<size>.log``.

Usage::

    .venv/bin/python bench/pipeline_scale.py [--sizes small,medium,large] [--no-baselines]
        [--baseline-timeout 900] [--profile]

Results of earlier sizes in ``bench/results/pipeline_scale.json`` are kept and merged (``--fresh``
drops them), so sizes can be run one at a time. ``--profile`` also writes a cProfile dump of
the pipeline per size to ``bench/data/profile_<size>.pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
from networkx.algorithms import bipartite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    DATA_DIR,
    RESULTS_DIR,
    RssSampler,
    StageRecorder,
    fmt,
    growth_exponent,
    machine_info,
    max_rss_mb,
    print_table,
    run_in_child,
    timed,
    timed_cpu,
    weighted_graph,
    write_result,
)

SEED = 20261129
SIZES = {"small": 20_000, "medium": 200_000, "large": 1_000_000}
GENERATOR_CHUNK = 250_000
TARGET_SECONDS = 15 * 60
TARGET_RSS_MB = 12 * 1024
TARGET_RATIOS = {"circles": 30.0, "clusters": 100.0, "rings": 15.0, "flows": 50.0}
FLOW_SAMPLE = {"small": 300, "medium": 60, "large": 15}
NAME = "pipeline_scale"

# What each stage's "rows" are: the input it has to look at (node labels / relationships).
STAGE_ROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pipeline": (("*",), ("*",)),
    "build graph": (("*",), ("*",)),
    "write snapshot": (("*",), ("*",)),
    "circles": ((), ("guarantees",)),
    "rings": ((), ("uses_device", "drawdown")),
    "device uses": ((), ("uses_device", "drawdown")),
    "flows": ((), ("transfer", "drawdown")),
    "clusters": ((), ("guarantees", "holds_shares", "uses_device", "transfer")),
    "cluster ties": ((), ("guarantees", "holds_shares", "uses_device", "transfer")),
    "contagion": (("Customer",), ("guarantees", "holds_shares", "uses_device", "transfer")),
    "gnn": (("Customer",), ("has_line", "drawdown", "transfer", "guarantees", "uses_device")),
    "scores": (("Customer",), ()),
    "cluster_risk": (("Customer",), ()),
    "alerts": (("Customer", "CreditLine"), ("drawdown",)),
    "report": (("Customer",), ()),
    "write outputs": (("*",), ("*",)),
}
# The sub-step of a stage that builds the input its baseline is handed ready-made; the baseline
# ratio leaves it out (both sides then start from the same input). Always shown as rows.
HANDED = {"rings": "device uses", "clusters": "cluster ties"}


def _load_module(name: str) -> ModuleType:
    """A sibling bench script as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------- data


def _stale(path: Path) -> bool:
    """True when ``path`` holds no generated input or one made with other generator rates."""
    truth = path / "_truth" / "truth.json"
    if not truth.is_file():
        return True
    from loaders.synthetic import Rates

    current = json.loads(json.dumps(asdict(Rates())))
    return json.loads(truth.read_text()).get("params", {}).get("rates") != current


def dataset(customers: int, seed: int = SEED) -> Path:
    """The cached generated input directory for ``customers``; generated on first use and again
    whenever the generator's rates changed since (a stale cache would measure old data)."""
    path = DATA_DIR / f"c{customers}_s{seed}"
    if _stale(path):
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(Path(sys.executable).with_name("graphkit")),
                "generate",
                str(path),
                "--customers",
                str(customers),
                "--seed",
                str(seed),
                "--quiet",
            ],
            check=True,
        )
    return path


def _stage_rows(summary: dict[str, dict[str, int]], stage: str) -> int | None:
    labels, rels = STAGE_ROWS.get(stage, ((), ()))
    if not labels and not rels:
        return None
    nodes, edges = summary["nodes"], summary["edges"]
    total = sum(nodes.values()) if labels == ("*",) else sum(nodes.get(x, 0) for x in labels)
    total += sum(edges.values()) if rels == ("*",) else sum(edges.get(x, 0) for x in rels)
    return total


# -------------------------------------------------------------------------------- baselines


def _prefix_customers(graph: Any, limit: int | None) -> np.ndarray | None:
    """Customer ids kept by the subsample (``None``: all)."""
    if limit is None or limit >= graph.n("Customer"):
        return None
    return np.arange(limit)


def _nx_circles(edges: np.ndarray, n: int, max_length: int) -> dict[str, Any]:
    build, graph = timed(lambda: _digraph(edges, n))

    def run() -> tuple[int, int]:
        circles = sum(1 for c in nx.strongly_connected_components(graph) if len(c) >= 2)
        cycles = sum(1 for _ in nx.simple_cycles(graph, length_bound=max_length))
        return circles, cycles

    seconds, cpu, (circles, cycles) = timed_cpu(run)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "build_seconds": build,
        "circles": circles,
        "cycles": cycles,
    }


def _digraph(edges: np.ndarray, n: int) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.tolist())
    return graph


def _nx_rings(links: np.ndarray, n: int, k: int, m: int) -> dict[str, Any]:
    def build() -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(zip(links[:, 0].tolist(), (links[:, 1] + n).tolist(), strict=True))
        return graph

    build_seconds, graph = timed(build)

    def run() -> int:
        devices = [v for v in range(n, graph.number_of_nodes()) if k <= graph.degree(v) <= m]
        shared = graph.subgraph(list(range(n)) + devices)
        users = [v for v in range(n) if shared.degree(v) > 0]
        projected = bipartite.projected_graph(shared, users)
        return sum(1 for _ in nx.connected_components(projected))

    seconds, cpu, rings = timed_cpu(run)
    return {"seconds": seconds, "cpu_seconds": cpu, "build_seconds": build_seconds, "rings": rings}


def _nx_louvain(pairs: np.ndarray, weights: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    build_seconds, graph = timed(lambda: weighted_graph(pairs, weights, n))
    seconds, cpu, communities = timed_cpu(
        lambda: nx.community.louvain_communities(graph, weight="weight", resolution=1, seed=seed)
    )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "build_seconds": build_seconds,
        "communities": len(communities),
    }


def _child_result(name: str, info: dict[str, Any] | None, rows: int) -> dict[str, Any]:
    return {
        "baseline": name,
        "rows": rows,
        "seconds": info.pop("seconds") if info else None,
        "cpu_seconds": info.pop("cpu_seconds") if info else None,
        "build_seconds": info.pop("build_seconds") if info else None,
        "detail": info,
    }


def baseline_circles(
    graph: Any, keep: np.ndarray | None, timeout: float, config: Any
) -> dict[str, Any]:
    src, dst = graph.endpoints("guarantees")
    n = graph.n("Customer")
    if keep is not None:
        inside = (src < len(keep)) & (dst < len(keep))
        src, dst, n = src[inside], dst[inside], len(keep)
    edges = np.column_stack([src, dst]).astype(np.int64)
    info = run_in_child(_nx_circles, (edges, n, config.circles.max_cycle_length), timeout)
    return _child_result("networkx SCC + simple_cycles(length_bound=L)", info, len(edges))


def baseline_rings(
    graph: Any, keep: np.ndarray | None, timeout: float, config: Any
) -> dict[str, Any]:
    pairs = graph.device_uses()
    n = graph.n("Customer")
    rows = graph.edges["uses_device"].height + graph.edges["drawdown"].height
    if keep is not None:
        share = pairs.filter(pl.col("customer") < len(keep)).height / max(pairs.height, 1)
        pairs, n = pairs.filter(pl.col("customer") < len(keep)), len(keep)
        rows = round(rows * share)
    links = pairs.select("customer", "device").to_numpy().astype(np.int64)
    k, m = config.rings.min_customers_per_device, config.rings.max_customers_per_device
    info = run_in_child(_nx_rings, (links, n, k, m), timeout)
    return _child_result("networkx bipartite projection + connected_components", info, rows)


def baseline_clusters(
    graph: Any, keep: np.ndarray | None, timeout: float, config: Any
) -> dict[str, Any]:
    from graphkit.analytics.clusters import cluster_graph

    built = cluster_graph(graph, config)
    weights = built.weights(config.clusters.weights)
    pairs = built.pairs[weights > 0]
    weights = weights[weights > 0]
    n = len(built.nodes)
    rows = sum(graph.edges[r].height for r in STAGE_ROWS["clusters"][1])
    if keep is not None:
        vertex_customer = np.asarray(built.nodes)
        inside = (vertex_customer[pairs[:, 0]] < len(keep)) & (
            vertex_customer[pairs[:, 1]] < len(keep)
        )
        rows = round(rows * inside.mean())
        pairs, weights = pairs[inside], weights[inside]
        used = np.unique(pairs)
        pairs = np.searchsorted(used, pairs)
        n = len(used)
    info = run_in_child(_nx_louvain, (pairs, weights, n, config.clusters.seed), timeout)
    return _child_result("networkx louvain_communities", info, rows)


def baseline_flows(graph: Any, flows: pl.DataFrame, sample: int, config: Any) -> dict[str, Any]:
    """Reference DFS + ``first`` replay on ``sample`` random drawdowns; per-drawdown rows."""
    reference_module = _load_module("flows")
    cfg = config.flows
    build_seconds, reference = timed(
        lambda: reference_module.Reference(graph, cfg.window_days, cfg.max_hops)
    )
    drawdowns = graph.edges["drawdown"].with_columns(us=pl.col("ts").dt.epoch("us"))
    rng = np.random.default_rng(SEED)
    chosen = np.sort(
        rng.choice(drawdowns.height, size=min(sample, drawdowns.height), replace=False)
    )
    picked = drawdowns[chosen]
    a0 = picked.get_column("dst").to_list()
    x0 = picked.get_column("amount").to_list()
    t0 = picked.get_column("us").to_list()
    start, cpu = time.perf_counter(), time.process_time()
    hops = [reference.min_hops(a, t) for a, t in zip(a0, t0, strict=True)]
    banned = [sum(reference.first(a, x, t)) for a, x, t in zip(a0, x0, t0, strict=True)]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    mine = (
        picked.select("drawdown_id")
        .join(flows, on="drawdown_id", how="left", maintain_order="left")
        .select("min_hops_to_banned", "banned_amount")
    )
    agree = mine.get_column("min_hops_to_banned").to_list() == hops and bool(
        np.allclose(mine.get_column("banned_amount").fill_null(0).to_numpy(), banned, atol=1e-6)
    )
    return {
        "baseline": "reference DFS (min hops) + one-transfer-at-a-time replay (first)",
        "rows": len(chosen),
        "rows_unit": "drawdowns",
        "seconds": seconds,
        "cpu_seconds": cpu,
        "build_seconds": build_seconds,
        "agree": agree,
        "detail": {"sample": len(chosen), "policy": cfg.policy},
    }


# ------------------------------------------------------------------------------------ child


def measure(
    size: str,
    baselines: bool,
    timeout: float,
    profile: bool,
    overrides: list[str],
    skip: list[str],
) -> dict[str, Any]:
    """Run the pipeline on the size's data in this process; stages, peaks, baselines."""
    from graphkit.config import Config, apply_overrides, parse_assignments
    from graphkit.pipeline import STAGE_NAMES, run_pipeline
    from graphkit.store.embedded import load_snapshot

    customers = SIZES[size]
    input_dir = dataset(customers)
    run_dir = DATA_DIR / "runs" / size
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config = apply_overrides(Config(), parse_assignments(overrides))
    stage_names = [name for name in STAGE_NAMES if name not in skip]
    load_at_start = os.getloadavg()
    with RssSampler() as sampler:
        log_path = DATA_DIR / f"progress_{size}.log"
        log_path.unlink(missing_ok=True)
        recorder = StageRecorder(sampler, log_path)
        profiler = cProfile.Profile() if profile else None
        recorder.start("pipeline")
        if profiler:
            profiler.enable()
        summary = run_pipeline(input_dir, run_dir, config, progress=recorder, stages=stage_names)
        if profiler:
            profiler.disable()
            profiler.dump_stats(DATA_DIR / f"profile_{size}.pstats")
        recorder.finish("pipeline")
    pipeline_peak = max_rss_mb()
    manifest = summary.manifest
    graph_summary = manifest["counts"]["graph"]
    nodes = sum(graph_summary["nodes"].values())
    edges = sum(graph_summary["edges"].values())
    input_rows = sum(f["rows"] for f in manifest["input"]["files"])
    stages = []
    for row in recorder.ordered():
        rows = input_rows if row.name == "read input" else _stage_rows(graph_summary, row.name)
        stages.append(
            {
                "stage": row.name,
                "depth": row.depth,
                "seconds": row.seconds,
                "cpu_seconds": row.cpu_seconds,
                "peak_rss_mb": row.peak_rss_mb,
                "end_rss_mb": row.end_rss_mb,
                "rows": rows,
                "rows_per_second": rows / row.seconds if rows and row.seconds > 0 else None,
            }
        )
    timings = manifest["timings_seconds"]
    result: dict[str, Any] = {
        "size": size,
        "customers": customers,
        "seed": SEED,
        "overrides": overrides,
        "profiled": profile,
        "skipped_stages": skip,
        "nodes": nodes,
        "edges": edges,
        "input_rows": input_rows,
        "graph": graph_summary,
        "total_seconds": next(r.seconds for r in recorder.rows if r.name == "pipeline"),
        "peak_rss_mb": pipeline_peak,
        "load_seconds": timings.get("load"),
        "manifest_timings": timings,
        "stages": stages,
        "load_average_start": list(load_at_start),
        "load_average_end": list(os.getloadavg()),
        "baselines": {},
    }
    if not baselines:
        return result
    graph = load_snapshot(run_dir / "snapshot")
    keep = _prefix_customers(graph, GENERATOR_CHUNK if size == "large" else None)
    result["baseline_subsample"] = (
        None if keep is None else f"first generator chunk: {len(keep):,} customers, induced ties"
    )
    # A skipped flows stage wrote no flows.parquet; its baseline is skipped with it below.
    flows = pl.read_parquet(run_dir / "flows.parquet") if "flows" not in skip else None
    runs = {
        "circles": lambda: baseline_circles(graph, keep, timeout, config),
        "rings": lambda: baseline_rings(graph, keep, timeout, config),
        "clusters": lambda: baseline_clusters(graph, keep, timeout, config),
        "flows": lambda: baseline_flows(graph, flows, FLOW_SAMPLE[size], config),
    }
    for stage, run in runs.items():
        if stage in skip:
            continue
        base = run()
        ours = next(s for s in stages if s["stage"] == stage)
        ours_rows = ours["rows"] if stage != "flows" else graph_summary["edges"]["drawdown"]
        handed = [s for s in stages if s["stage"] == HANDED.get(stage)]
        kernel = ours["seconds"] - sum(s["seconds"] for s in handed)
        kernel_cpu = ours["cpu_seconds"] - sum(s["cpu_seconds"] for s in handed)
        base["timeout"] = timeout
        base["ours_rows"] = ours_rows
        base["ours_seconds"] = kernel
        base["ours_cpu_seconds"] = kernel_cpu
        base["ours_scope"] = (
            f"{stage} stage minus its '{HANDED[stage]}' sub-step (the baseline's input)"
            if stage in HANDED
            else f"whole {stage} stage"
        )
        if base["seconds"] is None:
            base["ratio"] = base["cpu_ratio"] = base["stage_ratio"] = None
            base["ratio_floor"] = (timeout / base["rows"]) / (max(kernel, 1e-6) / ours_rows)
            base["stage_ratio_floor"] = (timeout / base["rows"]) / (ours["seconds"] / ours_rows)
        else:
            base["ratio"] = (base["seconds"] / base["rows"]) / (max(kernel, 1e-6) / ours_rows)
            base["cpu_ratio"] = (base["cpu_seconds"] / base["rows"]) / (
                max(kernel_cpu, 1e-6) / ours_rows
            )
            base["stage_ratio"] = (base["seconds"] / base["rows"]) / (ours["seconds"] / ours_rows)
        result["baselines"][stage] = base
    result["load_average_end"] = list(os.getloadavg())
    return result


# ----------------------------------------------------------------------------------- parent


def _run_child(size: str, args: argparse.Namespace) -> dict[str, Any]:
    dataset(SIZES[size])
    out = DATA_DIR / f"result_{size}.json"
    command = [sys.executable, __file__, "--child", size, "--baseline-timeout"]
    command += [str(args.baseline_timeout), "--child-out", str(out)]
    command += ["--no-baselines"] if args.no_baselines else []
    command += ["--profile"] if args.profile else []
    command += [f"--set={item}" for item in args.set]
    command += [f"--skip={name}" for name in args.skip]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def _ratio_text(base: dict[str, Any] | None, key: str = "ratio") -> str:
    if not base:
        return "-"
    if base.get(key) is not None:
        return f"{base[key]:,.0f}x"
    if base.get(f"{key}_floor") is not None:
        return f">= {base[f'{key}_floor']:,.0f}x"
    return "-"


def _shown(stage: dict[str, Any], detail: bool) -> bool:
    """Stages and their baseline-input sub-steps always; other sub-steps with ``detail``."""
    if stage["depth"] <= 1 or stage["stage"] in HANDED.values():
        return True
    return stage["depth"] == 2 and detail


def report(results: dict[str, dict[str, Any]], detail: bool = False) -> dict[str, Any]:
    """Print the per-size stage tables and the growth exponents; returns the exponents."""
    order = [s for s in SIZES if s in results]
    for size in order:
        r = results[size]
        rows = []
        for stage in r["stages"]:
            if not _shown(stage, detail):
                continue
            indent = "  " * max(stage["depth"] - 1, 0)
            base = r["baselines"].get(stage["stage"]) if stage["depth"] == 1 else None
            rows.append(
                [
                    indent + stage["stage"],
                    stage["seconds"],
                    stage.get("cpu_seconds"),
                    stage["peak_rss_mb"],
                    stage["rows"],
                    stage["rows_per_second"],
                    base["seconds"] if base else None,
                    _ratio_text(base),
                    _ratio_text(base, "cpu_ratio"),
                    _ratio_text(base, "stage_ratio"),
                    (str(base["agree"]) if base and base.get("agree") is not None else "-"),
                ]
            )
        sub = f"; baselines on {r['baseline_subsample']}" if r.get("baseline_subsample") else ""
        sub += "; under cProfile (slower)" if r.get("profiled") else ""
        sub += f"; skipped {', '.join(r['skipped_stages'])}" if r.get("skipped_stages") else ""
        sub += f"; {' '.join(r['overrides'])}" if r.get("overrides") else ""
        print_table(
            f"{size}: {r['customers']:,} customers, {r['nodes']:,} nodes, {r['edges']:,} edges "
            f"(load avg {r['load_average_start'][0]:.1f}){sub}",
            [
                "stage",
                "wall s",
                "CPU s",
                "peak RSS MB",
                "rows",
                "rows/s",
                "baseline s",
                "ratio",
                "CPU ratio",
                "whole-stage ratio",
                "agree",
            ],
            rows,
        )
        print(
            "ratio, CPU ratio: baseline vs the stage minus the sub-step building the input the "
            "baseline is handed (rings - device uses, clusters - cluster ties); whole-stage "
            "ratio: vs the stage with that sub-step. Ratios are per input row."
        )
    exponents: dict[str, dict[str, float | None]] = {}
    if len(order) >= 2:
        names = list(
            dict.fromkeys(
                s["stage"] for size in order for s in results[size]["stages"] if s["depth"] <= 1
            )
        )
        rows = []
        for name in names:
            wall, cpu = [], []
            for size in order:
                match = [s for s in results[size]["stages"] if s["stage"] == name]
                wall.append(match[0]["seconds"] if match else None)
                cpu.append(match[0].get("cpu_seconds") if match else None)
            nodes = [results[size]["nodes"] for size in order]
            exponents[name] = {
                "cpu": growth_exponent(nodes, cpu),
                "wall": growth_exponent(nodes, wall),
            }
            rows.append([name, *cpu, exponents[name]["cpu"], exponents[name]["wall"]])
        print_table(
            "growth: CPU seconds per size; exponent = slope of log(seconds) on log(nodes)",
            [
                "stage",
                *(f"{s} ({results[s]['nodes']:,} nodes)" for s in order),
                "exponent (CPU)",
                "exponent (wall)",
            ],
            rows,
        )
    for size in order:
        r = results[size]
        fits = r["total_seconds"] <= TARGET_SECONDS and r["peak_rss_mb"] <= TARGET_RSS_MB
        changed = [*r.get("overrides", []), *(f"skip {s}" for s in r.get("skipped_stages", []))]
        caveat = f" with {', '.join(changed)}, not the default pipeline" if changed else ""
        print(
            f"{size}: pipeline {r['total_seconds']:.0f} s, peak RSS {r['peak_rss_mb']:,.0f} MB"
            f"{caveat} (targets at 5M nodes: {TARGET_SECONDS} s, {TARGET_RSS_MB:,} MB: "
            f"{'within' if fits else 'NOT within'})"
        )
    return exponents


def _parent(name: str) -> str | None:
    """The stage whose baseline-input sub-step ``name`` is, if it is one."""
    return next((stage for stage, step in HANDED.items() if step == name), None)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The per-stage tables and the growth table as Markdown (for BENCHMARKS.md)."""
    order = [s for s in SIZES if s in results]
    lines = [
        "| stage | " + " | ".join(f"{s} wall s / CPU s / peak MB / rows/s" for s in order) + " |",
        "|---|" + "---|" * len(order),
    ]
    names = list(
        dict.fromkeys(
            s["stage"] for size in order for s in results[size]["stages"] if _shown(s, False)
        )
    )
    for name in names:
        cells = []
        for size in order:
            match = [s for s in results[size]["stages"] if s["stage"] == name]
            if not match:
                cells.append("-")
                continue
            m = match[0]
            cells.append(
                f"{fmt(m['seconds'])} / {fmt(m.get('cpu_seconds'))} / "
                f"{m['peak_rss_mb']:,.0f} / {fmt(m['rows_per_second'])}"
            )
        label = f"&nbsp;&nbsp;{name} (in {_parent(name)})" if _parent(name) else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| stage | size | baseline | graphkit s (stage / compared) | baseline s | ratio | "
        "CPU ratio | whole-stage ratio | agree |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for size in order:
        for stage, base in results[size]["baselines"].items():
            ours = next(s for s in results[size]["stages"] if s["stage"] == stage)
            compared = base.get("ours_seconds", ours["seconds"])
            lines.append(
                f"| {stage} | {size} | {base['baseline']} | {fmt(ours['seconds'])} / "
                f"{fmt(compared)} | {fmt(base['seconds'])} | {_ratio_text(base)} | "
                f"{_ratio_text(base, 'cpu_ratio')} | {_ratio_text(base, 'stage_ratio')} | "
                f"{base.get('agree', '-')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--baseline-timeout", type=float, default=900.0)
    parser.add_argument("--profile", action="store_true", help="cProfile dump per size")
    parser.add_argument("--fresh", action="store_true", help="drop earlier sizes' results")
    parser.add_argument(
        "--set", action="append", default=[], help="config override, e.g. gnn.epochs=20"
    )
    parser.add_argument(
        "--name", default=NAME, help="results file bench/results/NAME.json (to keep variants apart)"
    )
    parser.add_argument("--detail", action="store_true", help="show sub-steps too")
    parser.add_argument("--skip", action="append", default=[], help="a stage not to run")
    parser.add_argument(
        "--markdown", action="store_true", help="print the saved results as Markdown and stop"
    )
    parser.add_argument("--child", choices=sorted(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(
            args.child,
            not args.no_baselines,
            args.baseline_timeout,
            args.profile,
            args.set,
            args.skip,
        )
        args.child_out.write_text(json.dumps(result, indent=2, default=str))
        return
    if args.markdown:
        saved = json.loads((RESULTS_DIR / f"{args.name}.json").read_text())["sizes"]
        print(markdown(saved))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    previous = RESULTS_DIR / f"{args.name}.json"
    results: dict[str, dict[str, Any]] = {}
    if previous.is_file() and not args.fresh:
        results = json.loads(previous.read_text()).get("sizes", {})
    for size in sizes:
        results[size] = _run_child(size, args)
        results[size]["machine_at_run"] = machine_info()
    exponents = report(results, args.detail)
    path = write_result(
        args.name,
        {
            "seed": SEED,
            "targets": {
                "seconds": TARGET_SECONDS,
                "peak_rss_mb": TARGET_RSS_MB,
                "ratios": TARGET_RATIOS,
            },
            "sizes": {s: results[s] for s in SIZES if s in results},
            "growth_exponents": exponents,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
