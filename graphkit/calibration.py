"""A calibrated default probability stacked from score parts, and the metrics that judge it.

**Stacking.** The parts (``gnn_score``, ``contagion_score``, ``rule_score``: whatever a run
has) are combined by a logistic regression fitted on the *validation* customers of the GNN's
split, never on the training ones (the GNN has seen their labels) nor on the test ones (they
judge the result). Each part in ``[0, 1]`` enters as ``logit(clip(x, EPS, 1 - EPS))``
(:data:`EPS`), standardised; the rule score, a handful of levels, enters as it is.

A stack must earn its place: when its out-of-fold ROC-AUC on the validation customers is below
that of its best single part (a fixed score, so its validation ROC-AUC is honest), and that
part's top score is not shared by more than :data:`MAX_TOP_SHARE` of customers, the stacker is
refitted on that part alone, a monotone map that keeps the part's ranking. On small data
(the sample's few dozen validation defaults) the extra weights of a stack cost more ranking
than they add; on large data the stack wins and is kept. :class:`Calibrator` reports both
ROC-AUCs and which parts it uses.

**Calibration.** The stacker's logit ``z`` is mapped to a probability by Platt scaling (a
one-variable logistic regression on ``z``) or isotonic regression on ``z``. Both are fitted on
out-of-fold stacker logits of the validation customers (:data:`FOLDS` stratified folds: the
stacker of the other folds scores each fold), and the one of lower Brier score in a second
cross-validation over those logits wins, Platt on a tie. Isotonic regression is a step
function: every customer above the highest validation logit, and every customer in one step,
would share a score. So an isotonic winner is used only if its top step holds at most
:data:`MAX_TOP_SHARE` of all customers (otherwise Platt, and :class:`Calibrator` says why), and
its remaining ties are broken by the stacker's logit:
``p = (1 - TIE_BREAK) iso(z) + TIE_BREAK sigmoid(z)``, strictly increasing in ``z`` and at most
:data:`TIE_BREAK` from the isotonic value.

**Metrics** (:func:`score_metrics`): ROC-AUC, PR-AUC (average precision), Brier score and the
expected calibration error over :data:`ECE_BINS` equal-mass bins (customers sorted by score,
cut into bins of equal count; ``ECE = sum_b n_b / n |mean score_b - default rate_b|``).

Reference: Platt, "Probabilistic outputs for support vector machines" (1999); Zadrozny and
Elkan, "Transforming classifier scores into accurate multiclass probability estimates" (KDD
2002); Naeini et al., "Obtaining well calibrated probabilities using Bayesian binning" (AAAI
2015) for the ECE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-4  # parts are clipped to [EPS, 1 - EPS] before the logit
FOLDS = 5
ECE_BINS = 15
MAX_TOP_SHARE = 0.01  # an isotonic top step may hold at most this share of all customers
TIE_BREAK = 1e-4
MIN_VALIDATION_CLASS = 10  # fewer validation defaults (or non-defaults): no calibration
LEVEL_PARTS = frozenset({"rule_score"})  # parts that enter as they are, not as logits


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(x / (1.0 - x))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def part_matrix(parts: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The stacker's inputs: one column per part of ``names`` (logit or level, see above)."""
    columns = [
        np.asarray(parts[n], dtype=np.float64) if n in LEVEL_PARTS else _logit(parts[n])
        for n in names
    ]
    return np.column_stack(columns)


def expected_calibration_error(
    labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Expected calibration error over ``bins`` equal-mass bins (module docstring). O(n log n)."""
    table = reliability_table(labels, scores, bins)
    n = sum(row["customers"] for row in table)
    return float(
        sum(row["customers"] / n * abs(row["mean_score"] - row["default_rate"]) for row in table)
    )


def reliability_table(
    labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per equal-mass bin of ``scores``: customers, mean score, default rate (the points of a
    reliability plot). Customers are sorted by score (stable) and cut into ``bins`` runs of
    equal count (the first ``n mod bins`` one longer). O(n log n)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return []
    order = np.argsort(scores, kind="stable")
    return [
        {
            "customers": len(chunk),
            "mean_score": float(scores[chunk].mean()),
            "default_rate": float(labels[chunk].mean()),
        }
        for chunk in np.array_split(order, min(bins, len(scores)))
        if len(chunk)
    ]


def score_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC-AUC, PR-AUC, Brier score, ECE (:data:`ECE_BINS` equal-mass bins) and the reliability
    table of ``scores`` (in [0, 1]) against 0/1 ``labels``; the ranking metrics are NaN when one
    class is missing."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    both = len(np.unique(labels)) == 2
    return {
        "customers": len(labels),
        "positives": int(labels.sum()),
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if both else float("nan"),
        "brier": float(np.mean((scores - labels) ** 2)),
        "ece": expected_calibration_error(labels, scores),
        "reliability": reliability_table(labels, scores),
    }


@dataclass
class Calibrator:
    """A fitted stacker and calibration: :meth:`predict` maps parts to a probability.

    Attributes:
        names: the parts, in input order.
        mean, scale, coef, intercept: the standardiser and logistic regression of the stacker.
        method: ``platt`` or ``isotonic``.
        platt: (slope, intercept) of Platt scaling on the stacker's logit.
        iso_x, iso_y: the isotonic step function's knots (``np.interp``, clipped at the ends).
        report: how the method was chosen (cross-validated Brier and log-loss of both, the
            share of customers the isotonic fit alone would give its highest score, and why
            Platt was preferred when it was).
    """

    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    method: str
    platt: tuple[float, float]
    iso_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iso_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    report: dict[str, Any] = field(default_factory=dict)

    def logit(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """The stacker's logit ``z`` for ``parts`` (one array per name, equal lengths)."""
        x = (part_matrix(parts, self.names) - self.mean) / self.scale
        return x @ self.coef + self.intercept

    def predict(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated default probability per customer, in [0, 1]."""
        z = self.logit(parts)
        if self.method == "isotonic":
            iso = np.interp(z, self.iso_x, self.iso_y)
            return np.clip((1.0 - TIE_BREAK) * iso + TIE_BREAK * _sigmoid(z), 0.0, 1.0)
        slope, intercept = self.platt
        return _sigmoid(slope * z + intercept)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``calibration`` section (weights per standardised part)."""
        return {
            "calibrated": True,
            "fitted_on": "validation split",
            "parts": self.names,
            "stacker": {
                "model": "logistic regression on standardised logit(part) (rule_score as it is)",
                "coef": {n: round(float(c), 6) for n, c in zip(self.names, self.coef, strict=True)},
                "intercept": round(float(self.intercept), 6),
            },
            "method": self.method,
            **self.report,
        }


def _stacker(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def _out_of_fold(x: np.ndarray, y: np.ndarray, splitter: Any, seed: int) -> np.ndarray:
    """Each validation customer's stacker logit from the stacker fitted on the other folds."""
    out_of_fold = np.zeros(len(y))
    for train, held in splitter.split(x, y):
        mean, scale, model = _stacker(x[train], y[train], seed)
        out_of_fold[held] = model.decision_function((x[held] - mean) / scale)
    return out_of_fold


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _isotonic(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)
    return np.asarray(model.X_thresholds_), np.asarray(model.y_thresholds_)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_calibrator(
    parts: dict[str, np.ndarray],
    labels: np.ndarray,
    seed: int,
    population: dict[str, np.ndarray] | None = None,
) -> Calibrator:
    """Fit the stacker and choose and fit the calibration on validation customers.

    Parameters:
        parts: each part's score on the validation customers (same order as ``labels``).
        labels: 0/1 default labels of those customers.
        seed: fixes the folds.
        population: the parts of every customer to be scored, to measure how many would share
            an isotonic top step (None: the validation customers).

    Returns a :class:`Calibrator`. Raises ``ValueError`` with fewer than
    :data:`MIN_VALIDATION_CLASS` defaults or non-defaults. O(FOLDS^2 x n log n).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=np.int64)
    positives, negatives = int(y.sum()), int((1 - y).sum())
    if min(positives, negatives) < MIN_VALIDATION_CLASS:
        raise ValueError(
            f"{positives} defaulted and {negatives} non-defaulted validation customers "
            f"(need {MIN_VALIDATION_CLASS} of each)"
        )
    names = list(parts)
    x = part_matrix(parts, names)
    folds = min(FOLDS, positives, negatives)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out_of_fold = _out_of_fold(x, y, splitter, seed)
    stack_auc = float(roc_auc_score(y, out_of_fold))
    part_auc = {n: float(roc_auc_score(y, x[:, i])) for i, n in enumerate(names)}
    best = max(names, key=lambda n: part_auc[n])
    # A part with a crowded top (the rule levels; contagion's seeds at 1) would hand its ties
    # to the risk score: the stack, which breaks them, stays then.
    best_everyone = (population if population is not None else parts)[best]
    crowded = float(np.mean(best_everyone >= np.max(best_everyone))) > MAX_TOP_SHARE
    if len(names) > 1 and stack_auc < part_auc[best] and not crowded:
        column = names.index(best)
        names, x = [best], x[:, [column]]
        out_of_fold = _out_of_fold(x, y, splitter, seed)
    # Second cross-validation, over the out-of-fold logits: which calibration generalises.
    predicted = {"platt": np.zeros(len(y)), "isotonic": np.zeros(len(y))}
    for train, held in splitter.split(out_of_fold.reshape(-1, 1), y):
        slope, intercept = _platt(out_of_fold[train], y[train])
        predicted["platt"][held] = _sigmoid(slope * out_of_fold[held] + intercept)
        knots_x, knots_y = _isotonic(out_of_fold[train], y[train])
        predicted["isotonic"][held] = np.interp(out_of_fold[held], knots_x, knots_y)
    cv = {
        name: {
            "brier": round(float(np.mean((p - y) ** 2)), 6),
            "log_loss": round(_log_loss(y, p), 6),
        }
        for name, p in predicted.items()
    }
    mean, scale, model = _stacker(x, y, seed)
    platt = _platt(out_of_fold, y)
    iso_x, iso_y = _isotonic(out_of_fold, y)
    calibrator = Calibrator(
        names=names,
        mean=mean,
        scale=scale,
        coef=model.coef_[0].astype(np.float64),
        intercept=float(model.intercept_[0]),
        method="platt",
        platt=platt,
        iso_x=iso_x,
        iso_y=iso_y,
    )
    everyone = population if population is not None else parts
    z = calibrator.logit(everyone)
    iso = np.interp(z, iso_x, iso_y)
    top_share = float(np.mean(iso >= iso.max())) if len(iso) else 0.0
    report: dict[str, Any] = {
        "chosen_by": f"Brier score, {folds}-fold cross-validation on the validation split",
        "cross_validation": cv,
        "isotonic_top_step_share": round(top_share, 6),
        "stack_vs_parts": {
            "stack_out_of_fold_roc_auc": round(stack_auc, 6),
            "part_roc_auc": {n: round(a, 6) for n, a in part_auc.items()},
            "parts_used": names,
        },
        "validation": {"customers": len(y), "positives": positives},
    }
    if cv["isotonic"]["brier"] < cv["platt"]["brier"]:
        if top_share <= MAX_TOP_SHARE:
            calibrator.method = "isotonic"
            report["ties"] = f"isotonic steps broken by the stacker's logit (weight {TIE_BREAK:g})"
        else:
            report["why_platt"] = (
                f"isotonic had the lower Brier score but its top step would hold "
                f"{top_share:.1%} of customers (more than {MAX_TOP_SHARE:.0%})"
            )
    calibrator.report = report
    return calibrator


__all__ = [
    "ECE_BINS",
    "EPS",
    "FOLDS",
    "MAX_TOP_SHARE",
    "MIN_VALIDATION_CLASS",
    "TIE_BREAK",
    "Calibrator",
    "expected_calibration_error",
    "fit_calibrator",
    "part_matrix",
    "reliability_table",
    "score_metrics",
]
