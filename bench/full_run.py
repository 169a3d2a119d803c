"""The whole ``graphkit run`` on one input, as a user runs it: wall time, peak RSS, stage times.

Runs ``graphkit run IN --out OUT --quiet`` in a child process under ``/usr/bin/time -v`` (the
child's own peak RSS, nothing of this script's), then reads the run's manifest for the graph
size, each stage's seconds, how GNN training stopped and the model evaluation.

    .venv/bin/graphkit generate bench/data/gen5m --customers 1000000 --seed 20261129 --quiet
    .venv/bin/python bench/full_run.py bench/data/gen5m --name pipeline_5m_default

Prints a table and writes ``bench/results/<name>.json``. Targets (issue #8): <= 15 minutes and
<= 12 GB peak RSS at 5M nodes / 20M edges.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, print_table, write_result  # noqa: E402

TARGET_SECONDS = 900
TARGET_RSS_GB = 12.0


def _time_field(report: str, label: str) -> str:
    match = re.search(rf"^\s*{re.escape(label)}: (.+)$", report, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/usr/bin/time printed no '{label}'")
    return match.group(1).strip()


def _wall_seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    return sum(value * 60**power for power, value in enumerate(reversed(parts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--name", default="pipeline_full_run")
    parser.add_argument("--set", action="append", default=[], help="config override k=v")
    args = parser.parse_args()
    load_before = machine_info()["load_average"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [str(ROOT / ".venv" / "bin" / "graphkit"), "run", str(args.input)]
        command += ["--out", str(out), "--quiet"]
        for assignment in args.set:
            command += ["--set", assignment]
        done = subprocess.run(
            ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(f"graphkit run failed ({done.returncode}):\n{done.stderr[-4000:]}")
        manifest = json.loads((out / "manifest.json").read_text())
    wall = _wall_seconds(_time_field(done.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)"))
    peak_gb = int(_time_field(done.stderr, "Maximum resident set size (kbytes)")) / 1e6
    graph = manifest["counts"]["graph"]
    nodes, edges = sum(graph["nodes"].values()), sum(graph["edges"].values())
    model = manifest.get("model", {})
    result = {
        "command": " ".join(["graphkit", *command[1:]]),
        "input": str(args.input),
        "nodes": nodes,
        "edges": edges,
        "wall_seconds": round(wall, 2),
        "user_seconds": float(_time_field(done.stderr, "User time (seconds)")),
        "system_seconds": float(_time_field(done.stderr, "System time (seconds)")),
        "peak_rss_gb": round(peak_gb, 2),
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_RSS_GB},
        "meets_targets": wall <= TARGET_SECONDS and peak_gb <= TARGET_RSS_GB,
        "stage_seconds": manifest["timings_seconds"],
        "model": {k: model.get(k) for k in ("epochs_run", "best_epoch", "stopped_by")}
        | {"tree_prior": model.get("tree_prior")},
        "model_eval": manifest.get("model_eval", {}).get("models"),
        "model_eval_split": manifest.get("model_eval", {}).get("split"),
        "load_average_before": load_before,
    }
    path = write_result(args.name, result)
    rows = [["total", wall, peak_gb]] + [
        [stage, seconds, None] for stage, seconds in manifest["timings_seconds"].items()
    ]
    print_table(
        f"graphkit run: {nodes:,} nodes, {edges:,} edges", ["stage", "seconds", "peak GB"], rows
    )
    for name, metrics in (result["model_eval"] or {}).items():
        print(f"{name:22s} ROC-AUC {metrics['roc_auc']:.4f}  PR-AUC {metrics['pr_auc']:.4f}")
    verdict = "meets" if result["meets_targets"] else "misses"
    print(f"{verdict} the targets (<= {TARGET_SECONDS} s, <= {TARGET_RSS_GB} GB); wrote {path}")


if __name__ == "__main__":
    main()
