"""The tree prior: a customer's own-feature default log-odds from gradient-boosted trees.

The GNN reads it as one more input column, so message passing starts from what the best
no-graph model knows about each customer and about each neighbour, and has only to learn what
the neighbourhood adds (the "boost, then convolve" scheme of Ivanov & Prokhorenkova, *Boost then
Convolve: Gradient Boosting Meets Graph Neural Networks*, ICLR 2021, here in its stacked form).
Trees fit heavy-tailed features with thresholds that a small network learns slowly; without the
prior the GNN won ROC-AUC but lost PR-AUC to gradient boosting on the same features.

No label leaks through the column: the training customers are cut into ``folds`` folds and
each gets the log-odds of the trees fitted on the other folds (out of fold); every other
customer (validation, test, unlabelled) gets the mean of the fold models, none of which saw it.
:meth:`TreePrior.logits` reproduces exactly that rule for any rows, which is what the
explanations need to occlude a feature through both the trees and the GNN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from torch_geometric.data import HeteroData

from gnn.data import NODE

_EPS = 1e-6
PRIOR_FILE = "tree_prior.joblib"  # saved next to model.pt in a run directory


@dataclass
class TreePrior:
    """Fold models, each customer's fold and the column's standardisation.

    Attributes:
        models: one fitted classifier per fold (model ``f`` never saw fold ``f``).
        fold_of: fold of each customer by dense id; -1 for customers outside the training set.
        mean: mean of the log-odds column over all customers.
        std: its standard deviation (1 when constant).
    """

    models: list[HistGradientBoostingClassifier]
    fold_of: np.ndarray
    mean: float = 0.0
    std: float = 1.0

    def logits(self, features: np.ndarray, customers: np.ndarray) -> np.ndarray:
        """Prior log-odds of rows ``features`` belonging to dense ids ``customers``.

        A training customer in fold ``f`` gets model ``f``'s log-odds, anyone else the mean of
        all fold models' log-odds. Complexity: O(rows * trees * depth).
        """
        folds = self.fold_of[customers]
        out = np.zeros(len(features), dtype=np.float64)
        outside = folds < 0
        for fold, model in enumerate(self.models):
            inside = folds == fold
            wanted = inside | outside
            if not wanted.any():
                continue
            log_odds = _log_odds(model, features[wanted])
            out[wanted] += np.where(inside[wanted], log_odds, log_odds / len(self.models))
        return out

    def column(self, features: np.ndarray, customers: np.ndarray | None = None) -> np.ndarray:
        """The standardised input column for rows ``features`` of dense ids ``customers``
        (``None``: the rows are every customer in id order)."""
        ids = np.arange(len(features)) if customers is None else customers
        return ((self.logits(features, ids) - self.mean) / self.std).astype(np.float32)


def _log_odds(model: HistGradientBoostingClassifier, features: np.ndarray) -> np.ndarray:
    p = np.clip(model.predict_proba(features)[:, 1], _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_tree_prior(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, seed: int, folds: int = 5
) -> tuple[TreePrior, np.ndarray]:
    """Fit the fold models on the training customers and standardise the resulting column.

    Parameters:
        features: customer feature matrix (rows are dense customer ids).
        labels: 0/1 per customer (-1 unlabelled; only ``train`` rows are read).
        train: dense ids of the training customers.
        seed: fixes the fold assignment and the trees.
        folds: number of folds, at least 2.

    Returns the :class:`TreePrior` and its standardised column for every customer (the
    prediction pass that gives the standardisation gives the column too: it is not run twice).
    Complexity: ``folds`` gradient-boosting fits on ``(folds - 1) / folds`` of the training
    rows, then one prediction pass per fold model over every customer.
    """
    if folds < 2:
        raise ValueError(f"the tree prior needs at least 2 folds, got {folds}")
    rng = np.random.default_rng(seed)
    fold_of = np.full(len(features), -1, dtype=np.int64)
    shuffled = rng.permutation(train)
    for fold, members in enumerate(np.array_split(shuffled, folds)):
        fold_of[members] = fold
    models = []
    for fold in range(folds):
        fit_rows = train[fold_of[train] != fold]
        model = HistGradientBoostingClassifier(random_state=seed)
        models.append(model.fit(features[fit_rows], labels[fit_rows]))
    prior = TreePrior(models=models, fold_of=fold_of)
    logits = prior.logits(features, np.arange(len(features)))
    prior.mean = float(logits.mean())
    prior.std = float(logits.std()) or 1.0
    return prior, ((logits - prior.mean) / prior.std).astype(np.float32)


def add_prior_column(data: HeteroData, column: np.ndarray) -> None:
    """Append the prior ``column`` (one value per customer, :meth:`TreePrior.column`) to
    ``data``'s customer features, in place; the old ``x`` tensor is left as it was, so a matrix
    taken from it before stays the no-graph feature set."""
    x = data[NODE].x
    data[NODE].x = torch.cat([x, torch.from_numpy(column)[:, None]], dim=1)


def save_prior(path: Path, prior: TreePrior) -> str:
    """Write the fold models with joblib (scikit-learn has no other format); returns sha256."""
    joblib.dump(prior, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_prior(path: Path, sha256: str) -> TreePrior:
    """Read a saved prior after checking its sha256 (unpickling runs code: only trusted files).

    Raises ``ValueError`` when the file is not the one the model was saved with.
    """
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the {sha256} recorded with the model")
    prior = joblib.load(path)
    if not isinstance(prior, TreePrior):
        raise ValueError(f"{path}: not a tree prior")
    return prior
