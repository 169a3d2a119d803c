"""Scoring benchmark: the relational GNN against the same features without the graph.

Generates a network with planted contagion (``loaders.synthetic.generate_tables``), runs the
analytics stages that feed the features (circles, rings, flows, clusters), then trains the GNN
with its tree prior (``gnn/prior.py``; full batch and sampled mini-batches), the GNN without the
prior (to show what the prior adds) and the two baselines (logistic regression, gradient
boosting) on one leak-free split, and reports ROC-AUC / PR-AUC on the held-out test customers
with train and score times (scoring = every customer).

    .venv/bin/python bench/scoring.py --customers 100000 --seed 11

Prints a table and writes ``bench/results/scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnn.data import build_data  # noqa: E402
from gnn.features import customer_features  # noqa: E402
from gnn.fit import train_settings, tree_prior_reason  # noqa: E402
from gnn.prior import add_prior_column, fit_tree_prior  # noqa: E402
from gnn.score import class_log_weight, score_customers  # noqa: E402
from gnn.train import (  # noqa: E402
    Split,
    TrainSettings,
    predict_logits,
    ranking_metrics,
    stratified_split,
    train_gnn,
)
from graphkit.config import Config  # noqa: E402
from graphkit.graph import RiskGraph  # noqa: E402
from graphkit.pipeline import RunContext, stages_until  # noqa: E402
from loaders.synthetic import Rates, generate_tables  # noqa: E402


def _baselines(x: np.ndarray, labels: np.ndarray, split: Split, seed: int) -> dict[str, dict]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    out = {}
    for name, model in (
        ("logistic_regression", LogisticRegression(max_iter=2000, class_weight="balanced")),
        ("gradient_boosting", HistGradientBoostingClassifier(random_state=seed)),
    ):
        clock = time.perf_counter()
        model.fit(x[split.train], labels[split.train])
        trained = time.perf_counter() - clock
        clock = time.perf_counter()
        every = model.predict_proba(x)[:, 1]
        scored = time.perf_counter() - clock
        out[name] = {
            **ranking_metrics(labels[split.test], every[split.test]),
            "train_seconds": trained,
            "score_seconds": scored,
        }
    return out


BASELINES = ("logistic_regression", "gradient_boosting")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument(
        "--rates", default="{}", help='generator Rates overrides (JSON): {"ring_contagion":0.8}'
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scoring.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}

    clock = time.perf_counter()
    rate_overrides = json.loads(args.rates)
    generated = generate_tables(args.customers, args.seed, rates=Rates(**rate_overrides))
    graph = RiskGraph.from_tables(generated.tables)
    timings["generate_and_build"] = time.perf_counter() - clock

    config = Config()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(graph=graph, config=config, out_dir=Path(tmp))
        for name, stage in stages_until("contagion", inclusive=False):
            clock = time.perf_counter()
            stage(ctx)
            timings[f"stage_{name}"] = time.perf_counter() - clock
    clock = time.perf_counter()
    results = ctx.results
    features = customer_features(
        graph,
        customer_flows=results.customer_flows,
        circle_membership=results.circle_membership,
        cluster_membership=results.cluster_membership,
        ring_membership=results.ring_membership,
        outflow_cap_hours=config.flows.window_days * 24,
    )
    data, _ = build_data(graph, features, max_device_users=config.rings.max_customers_per_device)
    timings["features_and_graph"] = time.perf_counter() - clock
    labels = graph.defaulted()
    split = stratified_split(labels, config.gnn.seed)
    x = data["customer"].x.numpy()

    models = _baselines(x, labels, split, config.gnn.seed)
    prior_reason = tree_prior_reason(labels, split.train, config)
    without_prior = data.clone()
    prior_seconds = 0.0
    if prior_reason is None:
        clock = time.perf_counter()
        _, column = fit_tree_prior(
            x, labels, split.train, config.gnn.seed, config.gnn.tree_prior_folds
        )
        add_prior_column(data, column)
        prior_seconds = time.perf_counter() - clock
    log_weight = class_log_weight(labels, split.train)
    # "gnn_without_prior" shows what the tree prior adds (docs/scoring.md, "What worked").
    for name, graph_data, batch_size in (
        ("gnn", data, None),
        ("gnn_minibatch", data, args.batch_size),
        ("gnn_without_prior", without_prior, None),
    ):
        # The pipeline's settings, without its time budget, full batch or on sampled
        # mini-batches (TrainSettings' default fanouts) as the benchmark compares them.
        settings = replace(
            train_settings(config, graph.n("Customer")),
            max_seconds=None,
            batch_size=batch_size,
            fanouts=TrainSettings().fanouts,
        )
        trained = train_gnn(graph_data, split, settings)
        clock = time.perf_counter()
        scores = score_customers(trained.model, graph_data, log_weight, batch_size)
        scored = time.perf_counter() - clock
        test_logits = predict_logits(trained.model, graph_data, split.test, batch_size)
        models[name] = {
            **ranking_metrics(labels[split.test], test_logits),
            # The prior's trees are part of training the GNN that reads them.
            "train_seconds": trained.seconds + (prior_seconds if graph_data is data else 0.0),
            "score_seconds": scored,
            "best_epoch": trained.best_epoch,
            "epochs_run": trained.epochs_run,
            "score_range": [float(scores.min()), float(scores.max())],
        }
    best = max(BASELINES, key=lambda n: models[n]["roc_auc"])
    wins = {
        name: bool(
            models[name]["roc_auc"] > max(models[b]["roc_auc"] for b in BASELINES)
            and models[name]["pr_auc"] > max(models[b]["pr_auc"] for b in BASELINES)
        )
        for name in ("gnn", "gnn_minibatch", "gnn_without_prior")
    }
    causes = generated.truth["defaults"].group_by("cause").len().sort("cause")
    result = {
        "customers": args.customers,
        "seed": args.seed,
        "rates": rate_overrides,
        "threads": args.threads,
        "machine": platform.machine(),
        "labelled": int((labels >= 0).sum()),
        "positives": int((labels == 1).sum()),
        "test": {"customers": len(split.test), "positives": int(labels[split.test].sum())},
        "default_causes": dict(causes.iter_rows()),
        "features": features.names,
        "models": models,
        "tree_prior": {
            "used": prior_reason is None,
            "reason": prior_reason,
            "folds": config.gnn.tree_prior_folds,
            "seconds": prior_seconds,
        },
        "best_baseline": best,
        "gnn_beats_best_baseline": wins,
        "roc_auc_ratio_gnn_vs_best": models["gnn"]["roc_auc"] / models[best]["roc_auc"],
        "pr_auc_ratio_gnn_vs_best": models["gnn"]["pr_auc"] / models[best]["pr_auc"],
        "timings_seconds": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    print(
        f"{args.customers:,} customers, {result['labelled']:,} labelled, "
        f"{result['positives']:,} defaulted; test {len(split.test):,} "
        f"({result['test']['positives']:,} defaulted); rates {rate_overrides or 'default'}"
    )
    print(f"{'model':22s} {'ROC-AUC':>8s} {'PR-AUC':>8s} {'train s':>9s} {'score s':>9s}")
    for name, m in models.items():
        print(
            f"{name:22s} {m['roc_auc']:8.4f} {m['pr_auc']:8.4f} "
            f"{m['train_seconds']:9.1f} {m['score_seconds']:9.2f}"
        )
    print(
        f"best baseline: {best}; GNN/best ROC-AUC x{result['roc_auc_ratio_gnn_vs_best']:.3f}, "
        f"PR-AUC x{result['pr_auc_ratio_gnn_vs_best']:.3f}; GNN beats it: {wins}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
