"""The GNN's one entry point: fit on a graph's labelled customers, compare, save and score.

:func:`fit_and_score` does what a run needs from :mod:`gnn` in one call: the leak-free split,
the out-of-fold tree prior of :mod:`gnn.prior` when the training split has
``gnn.tree_prior_min_positives`` defaults, the relational GNN, the two no-graph baselines on the
same held-out customers, ``model.pt`` (and ``tree_prior.joblib``) in the model directory, and a
score for every customer. It returns a :class:`GnnResult`; with too few labels (fewer than
:data:`MIN_CLASS` defaulted or non-defaulted customers) or ``gnn.enabled`` false it trains
nothing and says why.

:func:`fit_subgraph` is the same trainer for an engine that cannot hand over the whole graph
(the Spark engine): it trains on a sampled :class:`gnn.data.Subgraph` with a split made by the
caller (by default date), saves the same ``model.pt`` and scores nobody; the caller scores
with the saved model, and :func:`network_explainer` rebuilds the alerts' explainer from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from torch_geometric.data import HeteroData

from gnn.data import (
    NODE,
    WHOLE_NEIGHBOURHOOD,
    Standardiser,
    Subgraph,
    build_data,
    subgraph_data,
)
from gnn.explain import NetworkExplainer
from gnn.features import CustomerFeatures
from gnn.prior import PRIOR_FILE, TreePrior, add_prior_column, fit_tree_prior, save_prior
from gnn.score import MODEL_FILE, class_log_weight, load_model, save_model, score_customers
from gnn.train import (
    Split,
    TrainedModel,
    TrainSettings,
    baseline_scores,
    predict_logits,
    ranking_metrics,
    stratified_split,
    time_split,
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
            nothing was trained, or when the caller scores (:func:`fit_subgraph`).
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
        return bool(self.model.get("trained"))


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


@dataclass
class _Fitted:
    trained: TrainedModel
    log_weight: float
    prior: TreePrior | None
    evaluation: dict[str, Any]
    model: dict[str, Any]


def _fit(
    data: HeteroData,
    labels: np.ndarray,
    split: Split,
    standardiser: Standardiser,
    features: CustomerFeatures,
    config: Config,
    model_dir: Path,
    progress: Progress,
    log_weight_shift: float = 0.0,
    prior_keys: tuple[pl.Series, pl.Series] | None = None,
    split_rule: str = "random",
) -> _Fitted:
    """Tree prior, GNN, baselines, ``model.pt``: what both entries share. ``data`` is the
    graph trained on (whole or a sampled subgraph), ``labels`` and ``split`` in its node ids.
    ``prior_keys`` (the data's node ids, the run's customers) re-indexes the saved prior's folds
    onto the run's customers, so ``tree_prior.joblib`` reads the same however it was trained."""
    cfg = config
    no_graph_features = data[NODE].x.numpy()
    prior = None
    prior_reason = tree_prior_reason(labels, split.train, cfg)
    if prior_reason is None:
        progress.log(f"gnn: tree prior over {cfg.gnn.tree_prior_folds} folds")
        prior, column = fit_tree_prior(
            no_graph_features, labels, split.train, cfg.gnn.seed, cfg.gnn.tree_prior_folds
        )
        add_prior_column(data, column)
    settings = train_settings(cfg, data[NODE].num_nodes)
    trained = train_gnn(data, split, settings, progress)
    log_weight = class_log_weight(labels, split.train) + log_weight_shift
    evaluation = model_evaluation(trained, data, no_graph_features, labels, split, cfg.gnn.seed)
    evaluation["split"]["rule"] = split_rule
    saved_prior = prior
    if prior is not None and prior_keys is not None:
        saved_prior = reindex_prior(prior, *prior_keys)
    prior_digest = (
        save_prior(model_dir / PRIOR_FILE, saved_prior) if saved_prior is not None else None
    )
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
    return _Fitted(trained, log_weight, saved_prior, evaluation, model)


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
    split = choose_split(graph, labels, cfg)
    fitted = _fit(
        data, labels, split, standardiser, features, cfg, model_dir, progress,
        split_rule=cfg.gnn.split,
    )  # fmt: skip
    scores = score_customers(fitted.trained.model, data, fitted.log_weight)
    explainer = NetworkExplainer(
        fitted.trained.model, data, graph.keys("Customer"), fitted.log_weight
    )
    return GnnResult(
        scores=scores,
        model=fitted.model,
        evaluation=fitted.evaluation,
        split=split,
        explainer=explainer,
    )


def fit_subgraph(
    subgraph: Subgraph,
    split: Split,
    standardiser: Standardiser,
    features: CustomerFeatures,
    config: Config,
    model_dir: Path,
    progress: Progress = SILENT,
    *,
    log_weight_shift: float = 0.0,
    customer_keys: pl.Series | None = None,
    split_rule: str = "default_date",
) -> GnnResult:
    """Train the GNN on a sampled :class:`gnn.data.Subgraph` with a given split, evaluate it
    and save it into ``model_dir``; score nobody (the caller scores with the saved model).

    The same trainer, tree prior, baselines and ``model.pt`` as :func:`fit_and_score`; only
    where the graph, the split and the standardiser come from differs.

    Parameters:
        subgraph: the sampled customers with their neighbourhoods (labels 1/0 on them).
        split: train / validation / test, local ids of sampled customers.
        standardiser: the feature statistics over every customer (saved with the model).
        features: names, snapshot and dropped groups of the run's features (``frame`` unread).
        config: ``[gnn]`` settings.
        model_dir: where ``model.pt`` and ``tree_prior.joblib`` are written.
        log_weight_shift: added to ``log(negatives / positives)``: ``log(q_pos / q_neg)`` when
            the classes were sampled at rates ``q``, so scores read at the population's base rate.
        customer_keys: the run's customers in id order; the saved prior's folds are re-indexed
            onto them (``None``: left in the subgraph's ids).
        split_rule: the ``gnn.split`` rule ``split`` was drawn by, recorded in the evaluation.

    Returns a :class:`GnnResult` with ``scores`` and ``explainer`` None and ``split`` in the
    subgraph's ids; nothing trained when :func:`skip_reason` says so on the split's labels.
    """
    cfg = config
    labels = subgraph.labels
    reason = skip_reason(labels, cfg)
    if reason is None:
        reason = split_reason(labels, split)
    if reason is not None:
        return GnnResult(scores=None, model={"trained": False, "reason": reason})
    data = subgraph_data(subgraph, standardiser)
    keys = (subgraph.customer_ids, customer_keys) if customer_keys is not None else None
    fitted = _fit(
        data, labels, split, standardiser, features, cfg, model_dir, progress,
        log_weight_shift=log_weight_shift, prior_keys=keys, split_rule=split_rule,
    )  # fmt: skip
    return GnnResult(scores=None, model=fitted.model, evaluation=fitted.evaluation, split=split)


def choose_split(graph: RiskGraph, labels: np.ndarray, config: Config) -> Split:
    """The labelled customers' split by ``gnn.split``: stratified at random, or by default
    date (:func:`gnn.train.time_split`, the Spark engine's rule)."""
    if config.gnn.split == "default_date":
        customers = graph.nodes["Customer"]
        return time_split(
            customers.get_column("customer_id").to_list(),
            labels,
            customers.get_column("default_date").to_list(),
            config.gnn.seed,
        )
    return stratified_split(labels, config.gnn.seed)


def split_reason(labels: np.ndarray, split: Split) -> str | None:
    """Why a given split cannot train (None: it can): each part needs both classes."""
    for name, part in (("train", split.train), ("validation", split.val), ("test", split.test)):
        found = set(np.unique(labels[part]).tolist())
        if not {0, 1} <= found:
            return f"the {name} split lacks a class (labels there: {sorted(found)})"
    return None


def reindex_prior(prior: TreePrior, node_ids: pl.Series, customer_keys: pl.Series) -> TreePrior:
    """``prior`` with ``fold_of`` indexed by ``customer_keys`` instead of ``node_ids``
    (customers not among the nodes: -1, outside the training set)."""
    folds = pl.DataFrame({"customer_id": node_ids, "fold": prior.fold_of})
    fold_of = (
        pl.DataFrame({"customer_id": customer_keys})
        .join(folds, on="customer_id", how="left", maintain_order="left")
        .get_column("fold")
        .fill_null(-1)
        .to_numpy()
        .astype(np.int64)
    )
    return TreePrior(models=prior.models, fold_of=fold_of, mean=prior.mean, std=prior.std)


def network_explainer(
    graph: RiskGraph, features: CustomerFeatures, model_dir: Path
) -> NetworkExplainer:
    """The saved model over the whole ``graph`` with its inputs rebuilt as at training (saved
    standardiser, device bound, tree prior): the alerts' network reasons of a model trained
    elsewhere (:func:`fit_subgraph`)."""
    saved = load_model(model_dir / MODEL_FILE)
    data, _ = build_data(graph, features, saved["standardiser"], saved["max_device_users"])
    if saved["prior"] is not None:
        add_prior_column(data, saved["prior"].column(data[NODE].x.numpy()))
    return NetworkExplainer(saved["model"], data, graph.keys("Customer"), saved["log_weight"])


__all__ = [
    "MIN_CLASS",
    "GnnResult",
    "choose_split",
    "fit_and_score",
    "fit_subgraph",
    "model_evaluation",
    "network_explainer",
    "skip_reason",
    "split_reason",
    "train_settings",
    "tree_prior_reason",
]
