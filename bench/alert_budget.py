"""Alert load and planted-risk catch of a finished run: the issue-16 numbers.

    python bench/alert_budget.py RUN_DIR INPUT_DIR [--out bench/results/alert_budget_NAME.json]

Reads ``RUN_DIR/customer_alerts.parquet`` and the generator's ground truth in
``INPUT_DIR/_truth/`` and prints, on screen and as JSON:

* the share of customers in orange or red;
* for each planted kind of risk, how many such customers there are and the share caught in
  orange or red. "Planted risky" is the union of: every planted default (labelled or not),
  every burst customer (a day of >= 5 drawdowns), every diverter (a planted chain from one of
  its drawdowns into a banned sector). ``unlabelled_defaults`` are the defaults the run could not
  see in its labels, the ones a score has to predict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl


def measure(run_dir: Path, input_dir: Path) -> dict[str, object]:
    tiers = pl.read_parquet(run_dir / "customer_alerts.parquet").select("customer_id", "tier")
    truth = input_dir / "_truth"
    defaults = pl.read_parquet(truth / "defaults.parquet")
    groups = {
        "defaults": defaults.get_column("customer_id"),
        "unlabelled_defaults": defaults.filter(~pl.col("labelled")).get_column("customer_id"),
        "bursts": pl.read_parquet(truth / "bursts.parquet").get_column("customer_id"),
        "diverters": pl.read_parquet(truth / "chains.parquet").get_column("customer_id"),
    }
    groups["planted_risky"] = pl.concat([groups["defaults"], groups["bursts"], groups["diverters"]])
    hot = tiers.filter(pl.col("tier").is_in(["orange", "red"])).get_column("customer_id")
    counts = dict(tiers.group_by("tier").len().iter_rows())
    out: dict[str, object] = {
        "run": str(run_dir),
        "customers": tiers.height,
        "tiers": {t: int(counts.get(t, 0)) for t in ("green", "yellow", "orange", "red")},
        "orange_red_share": round(hot.len() / tiers.height, 4),
    }
    for name, ids in groups.items():
        ids = ids.unique()
        caught = int(ids.is_in(hot.implode()).sum())
        out[name] = {
            "customers": ids.len(),
            "caught": caught,
            "caught_share": round(caught / max(ids.len(), 1), 4),
        }
    risky = groups["planted_risky"].unique()
    # Of the orange/red customers, how many are planted risky; and the most a run with this
    # many orange/red customers could catch (every one of them planted risky).
    out["orange_red_planted_risky_share"] = round(
        int(hot.is_in(risky.implode()).sum()) / max(hot.len(), 1), 4
    )
    out["catch_ceiling"] = round(min(1.0, hot.len() / max(risky.len(), 1)), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.run_dir, args.input_dir)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
