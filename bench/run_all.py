"""Run every benchmark script in sequence with modest settings, then print one combined table.

This is what ``make bench`` runs after the slow tests. Each script runs in its own process (its
peak memory and failures stay its own), prints its own table and writes
``bench/results/<name>.json``; the combined table at the end reads those files back and shows
one headline per script. The pipeline runs at about 100k, 1M and 5M nodes (generated once and
cached under ``bench/data/``, regenerated when the generator changes), then the whole default
``graphkit run`` at 5M nodes / 20M edges; the other scripts run at modest settings. About 1.5
hours on a busy 2-core machine; their full-scale commands are in BENCHMARKS.md.

Usage: ``.venv/bin/python bench/run_all.py [--only pipeline_scale --only flows] [--list]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, ROOT, fmt, machine_info, print_table, write_result

# (script, arguments): cheap settings first, Neo4j last (it starts its own servers).
SCRIPTS: list[tuple[str, list[str]]] = [
    ("load_input", ["--transfers", "2000000"]),
    ("analytics", ["--scale", "0.2", "--nx-timeout", "600"]),
    ("flows", ["--customers", "20000", "--sample", "300", "--large", "100000"]),
    ("scoring", ["--customers", "100000"]),
    (
        "pipeline_scale",
        ["--sizes", "small,medium,large", "--set", "gnn.epochs=3", "--baseline-timeout", "300"],
    ),
    # The 5M-node input pipeline_scale's "large" size generated just before.
    ("full_run", ["bench/data/c1000000_s20261129", "--name", "pipeline_5m_default"]),
    ("serve", ["--size", "sample", "--size", "100k"]),
    ("neo4j_load", ["--sizes", "5000", "--naive-rows", "1000"]),
    ("neo4j_bulk", ["--relationships", "100000", "1000000", "--bolt-max", "100000"]),
]


def _ratio(value: Any) -> str:
    return f"{value:,.0f}x" if isinstance(value, int | float) else "-"


def _analytics(doc: dict[str, Any]) -> str:
    parts = []
    for row in doc["results"]:
        ratio = row.get("ratio")
        text = _ratio(ratio) if ratio is not None else f">= {_ratio(row.get('ratio_floor'))}"
        parts.append(f"{row['stage']} {text}")
    return "vs networkx: " + ", ".join(parts)


def _flows(doc: dict[str, Any]) -> str:
    speed = doc["comparison"]["speedup"]
    reach, first = _ratio(speed["reach"]), _ratio(speed["first"])
    return f"vs reference per drawdown: reach {reach}, first {first}"


def _load_input(doc: dict[str, Any]) -> str:
    return (
        f"{doc['transfers']:,} transfers: read_input {fmt(doc['time_ratio'])}x the time, "
        f"{fmt(doc['memory_ratio'])}x the memory of a bare typed read"
    )


def _pipeline_scale(doc: dict[str, Any]) -> str:
    parts = [
        f"{size} ({r['nodes']:,} nodes) {r['total_seconds']:.0f} s {r['peak_rss_mb']:,.0f} MB"
        for size, r in doc["sizes"].items()
    ]
    return "; ".join(parts)


def _full_run(doc: dict[str, Any]) -> str:
    verdict = "meets" if doc["meets_targets"] else "misses"
    return (
        f"graphkit run, {doc['nodes']:,} nodes / {doc['edges']:,} edges: "
        f"{doc['wall_seconds']:.0f} s, {doc['peak_rss_gb']:.1f} GB ({verdict} 15 min / 12 GB)"
    )


def _neo4j_load(doc: dict[str, Any]) -> str:
    parts = [
        f"{r['customers']:,} customers: nodes {_ratio(r['ratio_nodes'])}, "
        f"relationships {_ratio(r['ratio_relationships'])}"
        for r in doc["results"]
    ]
    return "batched vs per-row MERGE: " + "; ".join(parts)


def _neo4j_bulk(doc: dict[str, Any]) -> str:
    seed = doc["seed_network"]
    return (
        f"bulk import of {seed['from_relationships']:,} relationships: "
        f"{seed['seconds']['total']:,.0f} s ({'measured' if seed['measured'] else 'extrapolated'})"
    )


def _scoring(doc: dict[str, Any]) -> str:
    models = doc["models"]
    aucs = ", ".join(f"{name} {m['roc_auc']:.3f}" for name, m in models.items())
    return f"{doc['customers']:,} customers, ROC-AUC: {aucs}"


def _serve(doc: dict[str, Any]) -> str:
    parts = [
        f"{size}: p99 <= {r['target_p99_ms']:g} ms up to {r['highest_rate_under_target'] or 0:g} "
        f"decisions/s with {doc['events_rate']:g} events/s offered"
        for size, r in doc["results"].items()
    ]
    return "; ".join(parts)


HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "analytics": _analytics,
    "flows": _flows,
    "load_input": _load_input,
    "pipeline_scale": _pipeline_scale,
    "full_run": _full_run,
    "neo4j_load": _neo4j_load,
    "neo4j_bulk": _neo4j_bulk,
    "scoring": _scoring,
    "serve": _serve,
}


def headline(name: str, arguments: list[str]) -> str:
    """One line from the script's results file, ``bench/results/<name>.json`` or the ``--name``
    it was given (formats differ; unknown ones say so)."""
    result = arguments[arguments.index("--name") + 1] if "--name" in arguments else name
    path = RESULTS_DIR / f"{result}.json"
    if not path.is_file():
        return "no results file"
    try:
        return HEADLINES[name](json.loads(path.read_text()))
    except (KeyError, TypeError, IndexError, ValueError):
        return f"see {path.relative_to(ROOT)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[n for n, _ in SCRIPTS])
    parser.add_argument("--list", action="store_true", help="print the commands and stop")
    args = parser.parse_args()
    rows, summary = [], []
    for name, arguments in SCRIPTS:
        if args.only and name not in args.only:
            continue
        script = ROOT / "bench" / f"{name}.py"
        command = [sys.executable, str(script), *arguments]
        if args.list:
            print(" ".join([".venv/bin/python", f"bench/{name}.py", *arguments]))
            continue
        if not script.is_file():
            rows.append([name, "missing", None, "-"])
            continue
        print(f"\n=== {name}: {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, cwd=ROOT).returncode
        seconds = time.perf_counter() - start
        state = "ok" if status == 0 else f"exit {status}"
        rows.append([name, state, seconds, headline(name, arguments) if status == 0 else "-"])
        summary.append(
            {"script": name, "arguments": arguments, "status": status, "seconds": seconds}
        )
    if args.list:
        return
    print_table("make bench: all benchmarks", ["script", "status", "seconds", "headline"], rows)
    write_result("run_all", {"scripts": summary, "machine_at_end": machine_info()})
    if any(s["status"] != 0 for s in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
