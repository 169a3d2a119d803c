"""Reading the alerts of a finished run directory (``alerts.csv``, ``customer_alerts.parquet``)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from graphkit.alerts.policy import TIER_RANK
from graphkit.alerts.rules import count_tiers
from graphkit.schema import TIERS


class RunDirError(ValueError):
    """A run directory is missing or lacks the file asked for."""


def read_alerts(run_dir: Path | str, min_tier: str = "yellow") -> pl.DataFrame:
    """The rows of ``run_dir/alerts.csv`` at ``min_tier`` or above, most severe first."""
    if min_tier not in TIER_RANK:
        raise ValueError(f"unknown tier {min_tier!r} (one of {', '.join(TIERS)})")
    path = Path(run_dir) / "alerts.csv"
    if not path.is_file():
        raise RunDirError(f"{path}: not found (was the alerts stage run?)")
    frame = pl.read_csv(
        path,
        schema_overrides={"customer_id": pl.String, "line_id": pl.String, "rules": pl.String},
    )
    wanted = [t for t in TIERS if TIER_RANK[t] >= TIER_RANK[min_tier]]
    return frame.filter(pl.col("tier").is_in(wanted))


def tier_counts(run_dir: Path | str) -> dict[str, int]:
    """Customers per tier in a finished run (green first); all zero if no alerts were made.

    Read from ``customer_alerts.parquet`` (every customer), for ``graphkit run``'s summary.
    """
    path = Path(run_dir) / "customer_alerts.parquet"
    if not path.is_file():
        manifest = Path(run_dir) / "manifest.json"
        if manifest.is_file():
            saved = json.loads(manifest.read_text()).get("alerts", {}).get("tiers")
            if saved:
                return {tier: int(saved.get(tier, 0)) for tier in TIERS}
        return dict.fromkeys(TIERS, 0)
    return count_tiers(pl.read_parquet(path, columns=["tier"]))


def tier_summary(run_dir: Path | str) -> str:
    """One line such as ``"green 1830, yellow 112, orange 49, red 9"``."""
    return ", ".join(f"{tier} {n}" for tier, n in tier_counts(run_dir).items())
