"""Generated inputs whose defaults depend on the bank's own features, given as extra columns.

:func:`own_feature_input` generates a network with :mod:`loaders.synthetic`, adds ``k`` extra
numeric columns ``own_1 .. own_k`` to ``customers`` (standard normal, four decimals, some
missing) and re-draws every labelled customer's ``defaulted`` from a logistic model in which
those columns carry most of the signal (the generator's own default keeps some). Only a model
that reads the extra columns can rank the new labels well.

A share of the labelled customers is held out: their labels are left out of the input (the
customers stay), so no stage sees them, neither the GNN's training nor the contagion seeds (a
labelled default is a contagion seed, and its ``risk_score`` is 1). :func:`heldout_aurocs`
measures the ROC-AUC of ``gnn_score`` and ``risk_score`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from graphkit.config import Config, apply_overrides
from loaders.synthetic import CSV_DATETIME, generate_tables

OWN_PREFIX = "own_"


@dataclass(frozen=True)
class OwnFeatureInput:
    directory: Path
    columns: list[str]  # the extra columns the labels depend on
    default_rate: float
    heldout: pl.DataFrame  # customer_id, defaulted: the labels left out of the input


def _logit_labels(
    customers: pl.DataFrame, labels: pl.DataFrame, own: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """``labels`` with ``defaulted`` re-drawn: logit = -2.2 + own @ w + 1.0 * generated default,
    where ``w`` gives every extra column weight 1.2 / sqrt(k) (missing values count as 0)."""
    k = own.shape[1]
    position = {c: i for i, c in enumerate(customers.get_column("customer_id").to_list())}
    rows = np.array([position[c] for c in labels.get_column("customer_id").to_list()])
    weights = np.full(k, 1.2 / np.sqrt(k)) * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
    signal = np.nan_to_num(own[rows]) @ weights * np.sqrt(k)
    was = labels.get_column("defaulted").to_numpy().astype(float)
    logit = -2.2 + signal + 1.0 * was
    defaulted = rng.random(len(rows)) < 1.0 / (1.0 + np.exp(-logit))
    date = labels.get_column("default_date").fill_null(pl.lit(None)).max()
    return labels.with_columns(
        pl.Series("defaulted", defaulted),
        pl.when(pl.Series(defaulted)).then(pl.lit(date)).otherwise(None).alias("default_date"),
    )


def own_feature_input(
    directory: Path,
    customers: int = 2500,
    seed: int = 11,
    k: int = 4,
    *,
    with_own: bool = True,
    customers_format: str = "csv",
    holdout: float = 0.3,
    decoys: bool = False,
) -> OwnFeatureInput:
    """Write the input to ``directory``: every table as CSV (``customers`` as
    ``customers_format``), labels depending on ``k`` extra columns, ``holdout`` of them left
    out; ``with_own`` false writes the same labels without those columns. ``decoys`` adds the
    extra columns of :data:`DECOYS`, which the model must not read (``is_salaried`` aside)."""
    data = generate_tables(customers, seed)
    rng = np.random.default_rng(seed + 1000)
    tables = dict(data.tables)
    n = tables["customers"].height
    own = np.round(rng.normal(size=(n, k)), 4)
    own[rng.random((n, k)) < 0.02] = np.nan  # a few missing values, as a bank's data has
    names = [f"{OWN_PREFIX}{i + 1}" for i in range(k)]
    tables["labels"] = _logit_labels(tables["customers"], tables["labels"], own, rng)
    if with_own:
        tables["customers"] = tables["customers"].with_columns(
            pl.Series(name, own[:, i], dtype=pl.Float64).fill_nan(None)
            for i, name in enumerate(names)
        )
    if decoys:
        tables["customers"] = add_decoys(tables["customers"], rng)
    labels = tables["labels"]
    rate = float(labels.get_column("defaulted").mean() or 0.0)
    held = np.random.default_rng(seed + 2000).random(labels.height) < holdout
    tables["labels"] = labels.filter(pl.Series(~held))
    heldout = labels.filter(pl.Series(held)).select("customer_id", "defaulted")
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if name == "customers" and customers_format == "parquet":
            frame.write_parquet(directory / f"{name}.parquet")
        else:
            frame.write_csv(directory / f"{name}.csv", datetime_format=CSV_DATETIME)
    return OwnFeatureInput(directory, names if with_own else [], rate, heldout)


# Extra columns that are not features, and why (``is_salaried`` is one: a boolean).
BAD_ROW = 17  # the data row whose score_v2 is not a number
DECOYS: dict[str, str | None] = {
    "segment": "text: ",
    "score_v2": "text: 1 of ",
    "branch_flag": "constant: every value is 1",
    "notes": "all empty",
    "reviewed_on": "dates are not model features",
    "is_salaried": None,
}


def add_decoys(customers: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """``customers`` with the :data:`DECOYS` columns."""
    n = customers.height
    score = [f"{v:.2f}" for v in rng.normal(600, 50, n)]
    score[BAD_ROW - 1] = "n/a"
    return customers.with_columns(
        pl.Series("segment", rng.choice(["retail", "sme", "corporate"], n)),
        pl.Series("score_v2", score),
        pl.lit(1, dtype=pl.Int64).alias("branch_flag"),
        pl.lit(None, dtype=pl.String).alias("notes"),
        pl.Series(
            "reviewed_on", ["2025-03-01", "2025-04-15"] * (n // 2) + ["2025-05-01"] * (n % 2)
        ).str.to_date(),
        pl.Series("is_salaried", rng.random(n) < 0.4),
    )


# A run that trains in seconds on a few thousand customers: fewer epochs than the default.
FAST_GNN = {"gnn.epochs": 120, "gnn.patience": 20}


def run_config(**overrides: Any) -> Config:
    return apply_overrides(Config(), {**FAST_GNN, **overrides})


def heldout_aurocs(run_dir: Path, heldout: pl.DataFrame) -> dict[str, float]:
    """ROC-AUC of ``gnn_score`` and ``risk_score`` of the run in ``run_dir`` on the held-out
    customers ``heldout`` (customer_id, defaulted)."""
    from sklearn.metrics import roc_auc_score

    scores = heldout.join(pl.read_parquet(run_dir / "scores.parquet"), on="customer_id", how="left")
    y = scores.get_column("defaulted").to_numpy()
    return {
        column: float(roc_auc_score(y, scores.get_column(column).fill_null(0.0).to_numpy()))
        for column in ("gnn_score", "risk_score")
    }
