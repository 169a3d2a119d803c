"""The GNN's one entry point: fit on a graph's labelled customers, compare, save and score.

:func:`fit_and_score` does what a run needs from :mod:`gnn` in one call: the leak-free split,
the out-of-fold tree prior of :mod:`gnn.prior` when the training split has
``gnn.tree_prior_min_positives`` defaults, the relational GNN, the two no-graph baselines on the
same held-out customers, ``model.pt`` (and ``tree_prior.joblib``) in the model directory, and a
score for every customer. It returns a :class:`GnnResult`; with too few labels (fewer than
:data:`MIN_CLASS` defaulted or non-defaulted customers) or ``gnn.enabled`` false it trains
nothing and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch_geometric.data import HeteroData

from gnn.data import WHOLE_NEIGHBOURHOOD, build_data
from gnn.explain import NetworkExplainer
from gnn.features import CustomerFeatures
from gnn.prior import PRIOR_FILE, add_prior_column, fit_tree_prior, save_prior
from gnn.score import MODEL_FILE, class_log_weight, save_model, score_customers
from gnn.train import (
    Split,
    TrainedModel,
    TrainSettings,
    baseline_scores,
    predict_logits,
    ranking_metrics,
    stratified_split,
    train_gnn,
)
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.progress import SILENT, Progress

MIN_CLASS = 20  # fewer labelled defaults (or non-defaults) than this: no GNN training


@dataclass
class GnnResult:
    """What :func:`fit_and_score` produced.

    Attributes:
        scores: ``gnn_score`` per customer in Customer id order (float64 in [0, 1]); None when
            nothing was trained.
        model: the manifest's ``model`` section (``trained``, and either the reason it was not
            or the model file, its sha256, the tree prior, features, snapshot and training facts).
        evaluation: ROC-AUC and PR-AUC of the GNN and both baselines on the test customers
            (:func:`model_evaluation`); None when nothing was trained.
        split: the train / validation / test split of the labelled customers (the stacking
            and calibration of ``risk_score`` reuse it); None when nothing was trained.
    """

    scores: np.ndarray | None
    model: dict[str, Any]
    evaluation: dict[str, Any] | None = None
    split: Split | None = None
    explainer: NetworkExplainer | None = None

    @property
    def trained(self) -> bool:
        return self.scores is not None


def skip_reason(labels: np.ndarray, config: Config) -> str | None:
    """Why no GNN is trained on ``labels`` (None: it is)."""
    if not config.gnn.enabled:
        return "gnn.enabled is false"
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    if min(positives, negatives) < MIN_CLASS:
        return (
            f"too few labels to train: {positives} defaulted and {negatives} non-defaulted "
            f"labelled customers (need {MIN_CLASS} of each)"
        )
    return None


def train_settings(cfg: Config, customers: int) -> TrainSettings:
    """The GNN's training settings from ``[gnn]`` for a graph of ``customers`` customers: full
    batch up to ``gnn.full_batch_max_customers``, above it mini-batches of ``gnn.batch_size``
    customers with their whole two-hop neighbourhoods; ``gnn.max_train_seconds`` as the budget."""
    return TrainSettings(
        hidden=cfg.gnn.hidden,
        epochs=cfg.gnn.epochs,
        patience=cfg.gnn.patience,
        learning_rate=cfg.gnn.learning_rate,
        seed=cfg.gnn.seed,
        max_seconds=cfg.gnn.max_train_seconds or None,
        batch_size=cfg.gnn.batch_size if customers > cfg.gnn.full_batch_max_customers else None,
        fanouts=(WHOLE_NEIGHBOURHOOD, WHOLE_NEIGHBOURHOOD),
    )


def tree_prior_reason(labels: np.ndarray, train: np.ndarray, cfg: Config) -> str | None:
    """Why the GNN trains without the tree prior (None: it trains with it)."""
    if not cfg.gnn.tree_prior_folds:
        return "gnn.tree_prior_folds is 0"
    positives = int((labels[train] == 1).sum())
    if positives < cfg.gnn.tree_prior_min_positives:
        return (
            f"{positives} defaults in the training split, fewer than "
            f"gnn.tree_prior_min_positives = {cfg.gnn.tree_prior_min_positives}"
        )
    return None


def model_evaluation(
    trained: TrainedModel,
    data: HeteroData,
    features: np.ndarray,
    labels: np.ndarray,
    split: Split,
    seed: int,
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC of the GNN and both baselines on the held-out test customers."""
    test_labels = labels[split.test]
    gnn_logits = predict_logits(trained.model, data, split.test)
    models: dict[str, Any] = {
        "gnn": {
            **ranking_metrics(test_labels, gnn_logits),
            "train_seconds": round(trained.seconds, 3),
        }
    }
    for name, result in baseline_scores(features, labels, split, seed).items():
        models[name] = {
            **ranking_metrics(test_labels, result["scores"]),
            "train_seconds": round(result["train_seconds"], 3),
        }
    baselines = [n for n in models if n != "gnn"]
    best_baseline = max(baselines, key=lambda n: np.nan_to_num(models[n]["roc_auc"]))
    return {
        "split": {
            "train": len(split.train),
            "validation": len(split.val),
            "test": len(split.test),
            "test_positives": int(test_labels.sum()),
        },
        "models": models,
        "best_baseline": best_baseline,
        # The GNN earns its place only by beating the best baseline on each metric separately.
        "gnn_beats_best_baseline": all(
            models["gnn"][metric] > max(np.nan_to_num(models[n][metric]) for n in baselines)
            for metric in ("roc_auc", "pr_auc")
        ),
    }


def fit_and_score(
    graph: RiskGraph,
    features: CustomerFeatures,
    config: Config,
    model_dir: Path,
    progress: Progress = SILENT,
) -> GnnResult:
    """Train the GNN on ``graph``'s labels, evaluate it, save it into ``model_dir`` and score.

    Parameters:
        graph: the risk graph (labels from ``graph.defaulted()``).
        features: every customer's features (:func:`gnn.features.customer_features`).
        config: ``[gnn]`` settings; ``rings.max_customers_per_device`` bounds device ties.
        model_dir: where ``model.pt`` and ``tree_prior.joblib`` are written (a run directory).
        progress: reports the tree prior and the training epochs.

    Returns a :class:`GnnResult`; nothing is trained or written when :func:`skip_reason` says
    so. Deterministic for ``gnn.seed`` on CPU (up to ``gnn.max_train_seconds``).
    """
    cfg = config
    labels = graph.defaulted()
    reason = skip_reason(labels, cfg)
    if reason is not None:
        return GnnResult(scores=None, model={"trained": False, "reason": reason})
    data, standardiser = build_data(
        graph, features, max_device_users=cfg.rings.max_customers_per_device
    )
    split = stratified_split(labels, cfg.gnn.seed)
    no_graph_features = data["customer"].x.numpy()
    prior = None
    prior_reason = tree_prior_reason(labels, split.train, cfg)
    if prior_reason is None:
        progress.log(f"gnn: tree prior over {cfg.gnn.tree_prior_folds} folds")
        prior, column = fit_tree_prior(
            no_graph_features, labels, split.train, cfg.gnn.seed, cfg.gnn.tree_prior_folds
        )
        add_prior_column(data, column)
    settings = train_settings(cfg, graph.n("Customer"))
    trained = train_gnn(data, split, settings, progress)
    log_weight = class_log_weight(labels, split.train)
    evaluation = model_evaluation(trained, data, no_graph_features, labels, split, cfg.gnn.seed)
    prior_digest = save_prior(model_dir / PRIOR_FILE, prior) if prior is not None else None
    digest = save_model(
        model_dir / MODEL_FILE,
        trained,
        standardiser,
        features.names,
        features.snapshot,
        log_weight,
        cfg.rings.max_customers_per_device,
        prior_sha256=prior_digest,
    )
    scores = score_customers(trained.model, data, log_weight)
    model = {
        "trained": True,
        "file": MODEL_FILE,
        "sha256": digest,
        "tree_prior": (
            {"file": PRIOR_FILE, "sha256": prior_digest, "folds": cfg.gnn.tree_prior_folds}
            if prior_digest
            else {"used": False, "reason": prior_reason}
        ),
        "features": features.names,
        "snapshot": features.snapshot.isoformat(),
        "batch_size": settings.batch_size,  # None: full batch
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "stopped_by": trained.stopped_by,
        "dropped_features": features.dropped,
    }
    explainer = NetworkExplainer(trained.model, data, graph.keys("Customer"), log_weight)
    return GnnResult(
        scores=scores, model=model, evaluation=evaluation, split=split, explainer=explainer
    )


__all__ = [
    "MIN_CLASS",
    "GnnResult",
    "fit_and_score",
    "model_evaluation",
    "skip_reason",
    "train_settings",
    "tree_prior_reason",
]
