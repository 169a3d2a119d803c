"""Training: a leak-free split, the GNN with early stopping, and the no-graph baselines.

The split is a stratified random split of the *labelled* customers only (unlabelled customers
are never negatives) into train / validation / test by a fixed seed (``gnn.split = "random"``),
or a split by default date (``"default_date"``, :func:`time_split`, the Spark engine's rule).
Features stop at the snapshot (:mod:`gnn.features`) and no label, own or neighbour's, is an
input: the model sees features and edges; labels only enter the loss, on training customers.

The baselines (logistic regression, gradient boosting) get exactly the same feature matrix
without the graph; all three are scored on the same held-out test customers.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from torch_geometric.data import HeteroData

from gnn.data import NODE, WHOLE_NEIGHBOURHOOD, NeighbourSampler, edge_index_dict
from gnn.models import RelationalSAGE, build_model
from graphkit.progress import SILENT, Progress


@dataclass(frozen=True)
class Split:
    """Customer ids (dense) of the train, validation and test sets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


# Train and validation shares of the labelled customers; the rest is test (every split's rule).
SPLIT_FRACTIONS = (0.6, 0.2)


def stratified_split(
    labels: np.ndarray, seed: int, fractions: tuple[float, float] = SPLIT_FRACTIONS
) -> Split:
    """Split labelled customers (``labels`` 0/1; -1 unlabelled is skipped) per class.

    ``fractions`` are the train and validation shares; the rest is test. Deterministic for a
    seed. Complexity: O(n).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_train = round(len(members) * fractions[0])
        n_val = round(len(members) * fractions[1])
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return Split(train=train, val=val, test=test)


# Hex digits of sha256 read as a number in [0, 1): 52 bits, exact in a float64 on every engine.
_HASH_DIGITS = 13


def id_hash(customer_ids: list[str], salt: str, seed: int) -> np.ndarray:
    """A seeded number uniform on [0, 1) per customer id: the first 52 bits of
    ``sha256(f"{salt}:{seed}:{id}")``. The Spark engine computes the same values with ``sha2``
    (:mod:`graphkit.spark.training`), so a rule built on them splits alike on both engines.
    Complexity: O(n) hashes (about a second per million ids)."""
    scale = float(16**_HASH_DIGITS)
    return (
        np.array(
            [
                int(hashlib.sha256(f"{salt}:{seed}:{c}".encode()).hexdigest()[:_HASH_DIGITS], 16)
                for c in customer_ids
            ],
            dtype=np.float64,
        )
        / scale
    )


def time_split(
    customer_ids: list[str],
    labels: np.ndarray,
    default_dates: list | np.ndarray,
    seed: int,
    fractions: tuple[float, float] = SPLIT_FRACTIONS,
) -> Split:
    """Split labelled customers by default date (``gnn.split = "default_date"``).

    Defaulted customers with a date are ordered by (date, :func:`id_hash`, id) and cut at
    ``round(n * fractions[0])`` (train, the earliest) and ``round(n * fractions[1])`` more
    (validation); the latest are test: no validation customer defaulted before a training one,
    no test customer before a validation one. Non-defaulted customers, and defaulted ones
    without a date, go by :func:`id_hash` on [0, 1): below ``fractions[0]`` train, below their
    sum validation, else test, so each part has both classes in about the same mix.

    Parameters:
        customer_ids: id of each dense customer.
        labels: 1 / 0 / -1 (unlabelled, skipped) per customer.
        default_dates: default date per customer (``datetime.date``, None without one).
        seed: the hashes' seed (``gnn.seed``).

    Complexity: O(n log n). The Spark engine applies the same rule
    (:func:`graphkit.spark.training.label_parts`) and gets the same parts.
    """
    u = id_hash(customer_ids, "split", seed)
    frame = pl.DataFrame(
        {
            "id": np.arange(len(labels), dtype=np.int64),
            "customer_id": pl.Series(customer_ids, dtype=pl.String),
            "label": np.asarray(labels, dtype=np.int8),
            "date": pl.Series(list(default_dates), dtype=pl.Date),
            "u": u,
        }
    ).filter(pl.col("label") >= 0)
    dated = frame.filter((pl.col("label") == 1) & pl.col("date").is_not_null())
    dated = dated.sort("date", "u", "customer_id")
    n = dated.height
    n_train, n_val = round(n * fractions[0]), round(n * fractions[1])
    others = frame.filter(~((pl.col("label") == 1) & pl.col("date").is_not_null()))
    rank_ids = dated.get_column("id").to_numpy()
    other_ids, other_u = others.get_column("id").to_numpy(), others.get_column("u").to_numpy()
    first, second = fractions[0], fractions[0] + fractions[1]
    parts = (
        np.concatenate([rank_ids[:n_train], other_ids[other_u < first]]),
        np.concatenate(
            [
                rank_ids[n_train : n_train + n_val],
                other_ids[(other_u >= first) & (other_u < second)],
            ]
        ),
        np.concatenate([rank_ids[n_train + n_val :], other_ids[other_u >= second]]),
    )
    train, val, test = (np.sort(p.astype(np.int64)) for p in parts)
    return Split(train=train, val=val, test=test)


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision); NaN when one class is missing."""
    if len(np.unique(labels)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
    }


@dataclass
class TrainSettings:
    """Hyper-parameters; the defaults are what the bench and the pipeline use."""

    hidden: int = 32
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 200
    patience: int = 20
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 7
    batch_size: int | None = None  # None: full batch
    fanouts: tuple[int, ...] = (10, 10)
    # Sum, not mean: exposure adds up over risky guarantors and ring mates, and a mean dilutes
    # one defaulting borrower among many sound ones (sum won 1-2 PR-AUC points in bench/scoring).
    aggr: str | list[str] = "sum"
    monitor: str = "loss"  # early stopping on validation "loss" or "auc"
    # Wall-clock budget for training; the best epoch so far is kept when it runs out. It bounds
    # the run on the seed's 5M-node network, at the price of speed-dependent results there.
    max_seconds: float | None = None


@dataclass
class TrainedModel:
    """A trained model and how it got there."""

    model: RelationalSAGE
    settings: TrainSettings
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs | patience | time budget


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def predict_logits(
    model: RelationalSAGE,
    data: HeteroData,
    nodes: np.ndarray | None = None,
    batch_size: int | None = None,
    fanouts: tuple[int, ...] = (10, 10),
    seed: int = 0,
) -> np.ndarray:
    """Logits of ``nodes`` (all customers when ``None``): full graph, or sampled batches."""
    model.eval()
    n = data[NODE].num_nodes
    wanted = np.arange(n) if nodes is None else np.asarray(nodes)
    with torch.no_grad():
        if batch_size is None:
            logits = model(data[NODE].x, edge_index_dict(data)).numpy()
            return logits[wanted]
        sampler = NeighbourSampler(data, list(fanouts), batch_size, seed)
        out = [
            model(b.x, b.edges)[: b.batch_size].numpy()
            for b in sampler.batches(wanted, shuffle=False)
        ]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_gnn(
    data: HeteroData,
    split: Split,
    settings: TrainSettings | None = None,
    progress: Progress = SILENT,
) -> TrainedModel:
    """Train :class:`RelationalSAGE` on the train customers, early-stopping on validation loss.

    The positive class is weighted by ``negatives / positives`` in the loss so rare defaults
    are not ignored. Full batch when ``settings.batch_size`` is ``None``; otherwise mini-batches
    of sampled neighbourhoods (:class:`gnn.data.NeighbourSampler`) and sampled validation.
    Keeps the weights of the epoch with the lowest validation loss; stops after ``patience``
    epochs without improvement. Deterministic for ``settings.seed`` (CPU).
    """
    cfg = settings or TrainSettings()
    _seed_everything(cfg.seed)
    started = time.perf_counter()
    x = data[NODE].x
    y = data[NODE].y.float()
    model = build_model(x.shape[1], cfg)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    positives = float((y[split.train] == 1).sum())
    pos_weight = torch.tensor((len(split.train) - positives) / max(positives, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    sampler = (
        NeighbourSampler(data, list(cfg.fanouts), cfg.batch_size, cfg.seed)
        if cfg.batch_size is not None
        else None
    )
    edges = edge_index_dict(data)
    train_idx = torch.from_numpy(split.train)
    val_y = y[torch.from_numpy(split.val)]
    # Whole-neighbourhood batches give the full-graph logits, and one full forward is cheaper.
    exact = all(fanout >= WHOLE_NEIGHBOURHOOD for fanout in cfg.fanouts)
    val_batch_size = None if exact else cfg.batch_size
    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    history: list[dict[str, float]] = []
    progress.start("train gnn", cfg.epochs)
    epoch = 0
    stopped_by = "epochs"
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        if sampler is None:
            optimiser.zero_grad()
            loss = loss_fn(model(x, edges)[train_idx], y[train_idx])
            loss.backward()
            optimiser.step()
            train_loss = float(loss.detach())
        else:
            losses = []
            for batch in sampler.batches(split.train):
                optimiser.zero_grad()
                logits = model(batch.x, batch.edges)[: batch.batch_size]
                loss = loss_fn(logits, y[torch.from_numpy(batch.node_ids[: batch.batch_size])])
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            train_loss = float(np.mean(losses))
        val_logits = torch.from_numpy(
            predict_logits(model, data, split.val, val_batch_size, cfg.fanouts, cfg.seed)
        )
        val_loss = float(loss_fn(val_logits, val_y))
        val_auc = ranking_metrics(val_y.numpy(), val_logits.numpy())["roc_auc"]
        history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc}
        )
        progress.advance("train gnn")
        criterion = val_loss if cfg.monitor == "loss" else -val_auc
        if criterion < best_loss - 1e-6:
            best_loss, best_state, best_epoch, stale = (
                criterion,
                copy.deepcopy(model.state_dict()),
                epoch,
                0,
            )
        else:
            stale += 1
            if stale >= cfg.patience:
                stopped_by = "patience"
                break
        if cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds:
            stopped_by = "time budget"
            break
    progress.finish("train gnn")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(
        model=model,
        settings=cfg,
        best_epoch=best_epoch,
        epochs_run=epoch,
        history=history,
        seconds=time.perf_counter() - started,
        stopped_by=stopped_by,
    )


def baseline_scores(
    features: np.ndarray, labels: np.ndarray, split: Split, seed: int
) -> dict[str, dict[str, Any]]:
    """Fit logistic regression and gradient boosting on the train customers' features.

    Returns ``{name: {"scores": test-set probabilities, "train_seconds", "score_seconds"}}``.
    Gradient boosting early-stops on its own internal validation fraction of the train set.
    """
    train_x, train_y = features[split.train], labels[split.train]
    models = {
        "logistic_regression": LogisticRegression(max_iter=2000, class_weight="balanced"),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, estimator in models.items():
        clock = time.perf_counter()
        estimator.fit(train_x, train_y)
        trained = time.perf_counter() - clock
        clock = time.perf_counter()
        scores = estimator.predict_proba(features[split.test])[:, 1]
        out[name] = {
            "scores": scores,
            "train_seconds": trained,
            "score_seconds": time.perf_counter() - clock,
        }
    return out
