"""Scores in [0, 1] for every customer, and the saved model file.

Training weights defaults by ``w = negatives / positives``; that shifts every logit by about
``log w``, so scores subtract it again (the prior correction for class-weighted logistic loss):
a score reads as a default probability at the training base rate, not at 50/50.

``model.pt`` holds the state dict, the hyper-parameters, the feature names, the standardiser's
statistics, the snapshot and ``log w``: everything :mod:`gnn.explain` needs to rebuild the exact
inputs from a run directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from gnn.data import Standardiser
from gnn.models import RelationalSAGE, build_model
from gnn.prior import PRIOR_FILE, load_prior
from gnn.train import TrainedModel, TrainSettings, predict_logits

MODEL_FILE = "model.pt"  # the saved model's name in a run directory


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def score_customers(
    model: RelationalSAGE,
    data: HeteroData,
    log_weight: float,
    batch_size: int | None = None,
    fanouts: tuple[int, ...] = (10, 10),
) -> np.ndarray:
    """Scores of all customers in id order (float64 in [0, 1]).

    Full graph when ``batch_size`` is ``None``, else sampled neighbourhoods (seeded).
    """
    logits = predict_logits(model, data, None, batch_size, fanouts)
    return np.clip(sigmoid(logits - log_weight), 0.0, 1.0)


def class_log_weight(labels: np.ndarray, train: np.ndarray) -> float:
    """``log(negatives / positives)`` among the training customers."""
    positives = max(int((labels[train] == 1).sum()), 1)
    return float(np.log((len(train) - positives) / positives))


def save_model(
    path: Path,
    trained: TrainedModel,
    standardiser: Standardiser,
    feature_names: list[str],
    snapshot: datetime,
    log_weight: float,
    max_device_users: int = 50,
    prior_sha256: str | None = None,
) -> str:
    """Write ``model.pt``; returns its sha256.

    ``prior_sha256`` is that of the tree prior saved next to it (:mod:`gnn.prior`) when the model
    reads one: the model's last input column is then the prior.
    """
    payload = {
        "state_dict": trained.model.state_dict(),
        "settings": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(trained.settings).items()
        },
        "feature_names": list(feature_names),
        "mean": torch.from_numpy(standardiser.mean),
        "std": torch.from_numpy(standardiser.std),
        "snapshot": snapshot.isoformat(),
        "log_weight": log_weight,
        "max_device_users": max_device_users,
        "prior_sha256": prior_sha256 or "",
    }
    torch.save(payload, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(path: Path, prior_file: str = PRIOR_FILE) -> dict[str, Any]:
    """Read ``model.pt``: ``model`` (eval mode), ``standardiser``, ``feature_names``,
    ``snapshot`` (datetime), ``log_weight``, ``settings``, ``max_device_users`` and ``prior``
    (the :class:`gnn.prior.TreePrior` from ``prior_file`` next to it, checked against the
    recorded sha256; None when the model reads no prior)."""
    payload = torch.load(path, weights_only=True)
    raw = payload["settings"]
    settings = TrainSettings(**{**raw, "fanouts": tuple(raw["fanouts"])})
    prior = None
    if payload.get("prior_sha256"):
        prior = load_prior(path.parent / prior_file, payload["prior_sha256"])
    model = build_model(len(payload["feature_names"]) + (prior is not None), settings)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return {
        "model": model,
        "settings": settings,
        "standardiser": Standardiser(mean=payload["mean"].numpy(), std=payload["std"].numpy()),
        "feature_names": list(payload["feature_names"]),
        "snapshot": datetime.fromisoformat(payload["snapshot"]),
        "log_weight": float(payload["log_weight"]),
        "max_device_users": int(payload["max_device_users"]),
        "prior": prior,
    }
