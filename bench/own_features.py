"""Bring-your-own features benchmark: held-out AUROC with the bank's own columns as CSV, as
Parquet, and without them.

Generates a network (``loaders.synthetic``), adds ``k`` extra numeric columns to customers and
re-draws the labels with a logistic dependence on them (``tests/extras_fixtures.py``), leaves
30% of the labels out of the input, and runs the pipeline (circles .. scores) three times: the
customers table as CSV, as Parquet, and without the extra columns. Reports the ROC-AUC of
``gnn_score`` and ``risk_score`` on the held-out customers, and which extra columns the model read.

    .venv/bin/python bench/own_features.py --customers 2500 --seed 11 --k 4

Prints one line per run and writes ``bench/results/own_features.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "csv": {},
    "parquet": {"customers_format": "parquet"},
    "without": {"with_own": False},
}
STAGES = ["circles", "rings", "flows", "clusters", "contagion", "gnn", "scores"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--k", type=int, default=4, help="extra numeric columns")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/own_features.json")
    args = parser.parse_args()

    import torch

    from graphkit.pipeline import run_pipeline
    from tests.extras_fixtures import heldout_aurocs, own_feature_input, run_config

    torch.set_num_threads(1)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, kwargs in VARIANTS.items():
            made = own_feature_input(root / name, args.customers, args.seed, args.k, **kwargs)
            clock = time.perf_counter()
            manifest = run_pipeline(
                made.directory, root / f"run_{name}", run_config(), stages=STAGES
            ).manifest
            seconds = time.perf_counter() - clock
            aurocs = heldout_aurocs(root / f"run_{name}", made.heldout)
            evaluation = json.loads((root / f"run_{name}" / "model_eval.json").read_text())
            results[name] = {
                **{f"{column}_auroc": round(value, 4) for column, value in aurocs.items()},
                "heldout": made.heldout.height,
                "heldout_defaults": int(made.heldout.get_column("defaulted").sum()),
                "extras_used": [e["column"] for e in manifest["extras"]["used"]],
                "run_seconds": round(seconds, 1),
                # the run's own test split (model_eval.json): the calibration promises
                "model_eval_test": {
                    column: {k: metrics.get(k) for k in ("positives", "roc_auc", "ece")}
                    for column, metrics in evaluation.get("scores", {}).get("columns", {}).items()
                },
                "top_score_share": evaluation.get("scores", {}).get("top_score_share"),
            }
            print(name, json.dumps(results[name]), flush=True)
    report = {
        "customers": args.customers,
        "seed": args.seed,
        "k": args.k,
        "runs": results,
        "lift_gnn_score": round(
            results["csv"]["gnn_score_auroc"] - results["without"]["gnn_score_auroc"], 4
        ),
        "lift_risk_score": round(
            results["csv"]["risk_score_auroc"] - results["without"]["risk_score_auroc"], 4
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}))


if __name__ == "__main__":
    main()
