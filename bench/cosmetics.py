"""Credit cosmetics (issue 16 item 5): is the planted pattern found, and are such customers still
scored low?

    python bench/cosmetics.py [--customers 20000] [--seed 1] [--work DIR] [--keep]

Generates one network (``graphkit generate``, Parquet), then runs the full pipeline on it three
times with the default config and policy but for:

* ``before``: ``--set gnn.cosmetic_features=false``, the features as they were before
  ``gnn/cosmetics.py`` (so the ``cosmetic`` rule, which reads them, cannot fire either);
* ``features``: the features, but the ``cosmetic`` rule's tier set to green (a policy file):
  what the model alone makes of them;
* ``after``: as shipped (features, and the rule at its default tier, yellow).

Reports, against the generator's planted truth (``_truth/cosmetics.parquet``):

* precision and recall of the ``cosmetic_pattern`` flag (the "after" run's features.parquet);
* per run, how many planted cosmetic customers end green (``customer_alerts.parquet`` tier, the
  alert budget applied) and how many asked for green (``asked_tier``: the tier of the score
  thresholds and rules, what ``budget.mode = "absolute"`` gives), how many of them default
  (planted, labelled or not) and how many of those end green, their mean ``risk_score`` and
  ``gnn_score`` and median rank by each, and the tier counts of all customers.

Results go to ``bench/results/cosmetics_<N>k.json`` (N thousand customers) and the screen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402


def _graphkit(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "cli.py"), *args]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def flag_quality(features: pl.DataFrame, planted: pl.Series) -> dict[str, float | int]:
    """Precision and recall of ``cosmetic_pattern`` against the planted customers."""
    flagged = features.filter(pl.col("cosmetic_pattern") > 0).get_column("customer_id")
    hits = int(flagged.is_in(planted.implode()).sum())
    return {
        "planted": planted.len(),
        "flagged": flagged.len(),
        "true_positives": hits,
        "precision": round(hits / max(flagged.len(), 1), 4),
        "recall": round(hits / max(planted.len(), 1), 4),
    }


def run_outcome(run_dir: Path, planted: pl.Series, defaulted: pl.Series) -> dict[str, object]:
    """Tiers and scores of the planted cosmetic customers in one finished run."""
    tiers = pl.read_parquet(run_dir / "customer_alerts.parquet").select("customer_id", "tier")
    scores = pl.read_parquet(run_dir / "scores.parquet").select(
        "customer_id", "risk_score", "gnn_score"
    )
    alerts = pl.read_parquet(run_dir / "customer_alerts.parquet")
    asked = alerts.get_column("asked_tier" if "asked_tier" in alerts.columns else "tier")
    tiers = tiers.with_columns(asked.alias("asked_tier"))
    ranked = scores.with_columns(
        pl.col("risk_score").rank("average", descending=True).alias("risk_rank"),
        pl.col("gnn_score").rank("average", descending=True).alias("gnn_rank"),
    )
    mine = tiers.join(ranked, on="customer_id").filter(
        pl.col("customer_id").is_in(planted.implode())
    )
    bad = mine.filter(pl.col("customer_id").is_in(defaulted.implode()))
    counts = dict(tiers.group_by("tier").len().iter_rows())
    return {
        "tiers_all": {t: int(counts.get(t, 0)) for t in ("green", "yellow", "orange", "red")},
        "cosmetic_green": int((mine.get_column("tier") == "green").sum()),
        "cosmetic_asked_green": int((mine.get_column("asked_tier") == "green").sum()),
        "cosmetic_tiers": dict(sorted(mine.group_by("tier").len().iter_rows())),
        "cosmetic_defaulting": bad.height,
        "cosmetic_defaulting_green": int((bad.get_column("tier") == "green").sum()),
        "cosmetic_mean_risk_score": round(float(mine.get_column("risk_score").mean() or 0), 4),
        "cosmetic_mean_gnn_score": round(float(mine.get_column("gnn_score").mean() or 0), 4),
        "cosmetic_median_risk_rank": float(mine.get_column("risk_rank").median() or 0),
        "cosmetic_median_gnn_rank": float(mine.get_column("gnn_rank").median() or 0),
        "all_mean_risk_score": round(float(scores.get_column("risk_score").mean() or 0), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="gk-cosmetics-"))
    data = work / "input"
    if not data.exists():
        n, seed = str(args.customers), str(args.seed)
        _graphkit("generate", str(data), "--customers", n, "--seed", seed, "-q")
    truth = data / "_truth"
    planted = pl.read_parquet(truth / "cosmetics.parquet").get_column("customer_id")
    defaulted = pl.read_parquet(truth / "defaults.parquet").get_column("customer_id")
    result: dict[str, object] = {
        "customers": args.customers,
        "seed": args.seed,
        "command": " ".join(["python bench/cosmetics.py", *sys.argv[1:]]),
    }
    quiet_rule = work / "cosmetic_green.toml"
    quiet_rule.write_text('[rule_tiers]\ncosmetic = "green"\n')
    runs = {
        "before": ["--set", "gnn.cosmetic_features=false"],
        "features": ["--set", f"alerts.policy_file={quiet_rule}"],
        "after": [],
    }
    for name, extra in runs.items():
        out = work / name
        if not (out / "customer_alerts.parquet").exists():
            _graphkit("run", str(data), "--out", str(out), "-q", *extra)
        result[name] = run_outcome(out, planted, defaulted)
    features = pl.read_parquet(work / "after" / "features.parquet")
    result["flag"] = flag_quality(features, planted)
    before = pl.read_parquet(work / "before" / "features.parquet")
    result["before_has_cosmetic_features"] = "cosmetic_pattern" in before.columns
    print(json.dumps(result, indent=2))
    write_result(f"cosmetics_{args.customers // 1000}k", result)
    if not args.keep and args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
