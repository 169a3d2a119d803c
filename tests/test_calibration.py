"""The calibrated risk score: metrics against oracles, stacking and calibration on planted data,
and the run's promises on generated data and on the committed sample (issue 16, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from graphkit.calibration import (
    MAX_TOP_SHARE,
    expected_calibration_error,
    fit_calibrator,
    reliability_table,
    score_metrics,
)
from graphkit.config import Config, apply_overrides
from graphkit.graph import RiskGraph
from graphkit.pipeline import RunContext, contagion_stage, gnn_stage, scores_stage
from graphkit.report import reliability_chart
from graphkit.scoring import top_score_share
from tests.scoring_fixtures import one_thread, planted_tables

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_ece_is_the_count_weighted_gap_over_equal_mass_bins():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    # Three bins of two customers each, by score: (0.1, 0.2), (0.3, 0.4), (0.5, 0.6).
    gaps = [abs(0.15 - 0.0), abs(0.35 - 0.5), abs(0.55 - 1.0)]
    assert expected_calibration_error(labels, scores, bins=3) == pytest.approx(np.mean(gaps))
    table = reliability_table(labels, scores, bins=3)
    assert [row["customers"] for row in table] == [2, 2, 2]
    assert [row["default_rate"] for row in table] == [0.0, 0.5, 1.0]
    # A perfectly calibrated constant: no gap.
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5), bins=2) == 0.0
    metrics = score_metrics(labels, scores)
    assert metrics["brier"] == pytest.approx(np.mean((scores - labels) ** 2))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))


def _planted_parts(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three parts of a hidden log-odds: a strong noisy view (like the GNN, over-confident),
    a weak one that sees what the first misses (like contagion, not a probability at all) and
    a coarse rule score; labels drawn from the hidden log-odds (base rate about 8%)."""
    rng = np.random.default_rng(seed)
    own, network = rng.normal(size=n), rng.normal(size=n)
    truth = -3.2 + 1.3 * own + 0.8 * network
    labels = (rng.random(n) < _sigmoid(truth)).astype(np.int64)
    gnn = _sigmoid(2.0 * (-2.5 + 1.3 * own + 0.3 * network + rng.normal(0, 0.4, n)))
    contagion = np.where(network > 0.5, _sigmoid(network + rng.normal(0, 0.5, n)), 0.0)
    rule = np.where(own > 1.8, 0.6, np.where(own > 1.2, 0.3, 0.0))
    return {"gnn_score": gnn, "contagion_score": contagion, "rule_score": rule}, labels


def test_stacked_calibrated_score_beats_its_parts_and_is_calibrated():
    parts, labels = _planted_parts(40_000, seed=1)
    idx = np.random.default_rng(2).permutation(len(labels))
    val, test = idx[:10_000], idx[10_000:]
    calibrator = fit_calibrator({k: v[val] for k, v in parts.items()}, labels[val], 0, parts)
    risk = calibrator.predict(parts)
    assert ((risk >= 0) & (risk <= 1)).all()
    y = labels[test]
    assert y.sum() >= 200
    best = max(roc_auc_score(y, v[test]) for v in parts.values())
    assert roc_auc_score(y, risk[test]) >= best - 0.005
    assert expected_calibration_error(y, risk[test]) <= 0.03
    # The over-confident part alone is not calibrated: the stack fixed something real.
    assert expected_calibration_error(y, parts["gnn_score"][test]) > 0.03
    assert top_score_share(risk) <= MAX_TOP_SHARE
    section = calibrator.to_dict()
    assert section["calibrated"] and section["method"] in {"platt", "isotonic"}
    assert set(section["cross_validation"]) == {"platt", "isotonic"}


def test_isotonic_ties_are_broken_or_platt_is_preferred():
    # One part with few distinct values: an isotonic fit is a few steps, so its steps would
    # tie many customers; the result must still rank within them, or be Platt and say why.
    rng = np.random.default_rng(5)
    level = 0.1 + rng.integers(0, 4, 20_000) / 5
    labels = (rng.random(20_000) < 0.02 + 0.3 * level**2).astype(np.int64)
    gnn = level + rng.normal(0, 1e-3, 20_000)
    parts = {"gnn_score": gnn}
    calibrator = fit_calibrator({"gnn_score": gnn[:5000]}, labels[:5000], 0, parts)
    risk = calibrator.predict(parts)
    assert top_score_share(risk) <= MAX_TOP_SHARE
    # Strictly increasing in the part: distinct parts, distinct scores.
    order = np.argsort(gnn)
    assert (np.diff(risk[order]) >= 0).all()
    assert len(np.unique(risk)) == len(np.unique(gnn))
    # The isotonic fit is a step per level, each holding about a quarter of the customers: too
    # many share its top step, so Platt is used, and when isotonic had the lower Brier score the
    # report says why it was passed over.
    report = calibrator.report
    assert report["isotonic_top_step_share"] > 0.2
    assert calibrator.method == "platt"
    cv = report["cross_validation"]
    assert ("why_platt" in report) == (cv["isotonic"]["brier"] < cv["platt"]["brier"])


def test_an_isotonic_calibration_breaks_its_ties_by_the_stackers_logit():
    from graphkit.calibration import TIE_BREAK, Calibrator

    calibrator = Calibrator(
        names=["gnn_score"],
        mean=np.zeros(1),
        scale=np.ones(1),
        coef=np.ones(1),
        intercept=0.0,
        method="isotonic",
        platt=(1.0, 0.0),
        iso_x=np.array([-2.0, 0.0, 0.0001, 2.0]),
        iso_y=np.array([0.1, 0.1, 1.0, 1.0]),  # two flat steps, the top one at 1.0
    )
    gnn = np.linspace(0.02, 0.98, 500)
    risk = calibrator.predict({"gnn_score": gnn})
    assert (np.diff(risk) > 0).all()  # strictly increasing: no two customers tie
    assert risk.max() <= 1.0
    step = np.interp(calibrator.logit({"gnn_score": gnn}), calibrator.iso_x, calibrator.iso_y)
    assert np.abs(risk - step).max() <= TIE_BREAK


def test_too_few_validation_defaults_refuse_to_calibrate():
    parts, labels = _planted_parts(300, seed=3)
    labels[:] = 0
    labels[:5] = 1
    with pytest.raises(ValueError, match="5 defaulted"):
        fit_calibrator(parts, labels, 0)


def _held_out(evaluation: dict) -> dict:
    return evaluation["scores"]["columns"]


def _assert_promises(evaluation: dict, scores: pl.DataFrame) -> None:
    columns = _held_out(evaluation)
    assert set(columns) >= {"gnn_score", "contagion_score", "rule_score", "risk_score"}
    for metrics in columns.values():
        assert set(metrics) >= {"roc_auc", "pr_auc", "brier", "ece", "reliability"}
    best = max(m["roc_auc"] for name, m in columns.items() if name != "risk_score")
    assert columns["risk_score"]["roc_auc"] >= best - 0.005, columns
    if columns["risk_score"]["positives"] >= 200:
        assert columns["risk_score"]["ece"] <= 0.03
    risk = scores.get_column("risk_score").to_numpy()
    assert top_score_share(risk) <= 0.01
    assert evaluation["scores"]["top_score_share"] == pytest.approx(top_score_share(risk))


def test_generated_run_calibrates_on_validation_and_keeps_its_promises(tmp_path):
    planted = planted_tables(2500, seed=4)
    config = apply_overrides(Config(), {"gnn.epochs": 40, "gnn.hidden": 16})
    ctx = RunContext(graph=RiskGraph.from_tables(planted.tables), config=config, out_dir=tmp_path)
    for stage in (contagion_stage, gnn_stage, scores_stage):
        stage(ctx)
    evaluation = json.loads((tmp_path / "model_eval.json").read_text())
    assert evaluation == json.loads(json.dumps(ctx.manifest_extra["model_eval"]))
    assert ctx.manifest_extra["calibration"]["calibrated"] is True
    assert "calibrated probability" in ctx.manifest_extra["risk_score"]
    split = ctx.results.split
    assert evaluation["scores"]["columns"]["risk_score"]["customers"] == len(split.test)
    assert evaluation["calibration"]["validation"]["customers"] == len(split.val)
    _assert_promises(evaluation, ctx.outputs["scores.parquet"])
    # The stack's contagion part is seeded by training defaults only: a validation or test
    # default is not a seed there, so its held-out contagion score is below 1.
    labels = ctx.graph.defaulted()
    held = split.test[labels[split.test] == 1]
    contagion = ctx.outputs["scores.parquet"].get_column("contagion_score").to_numpy()
    assert (contagion[held] == 1.0).all()  # the stress test seeds every known default
    columns = _held_out(evaluation)
    assert columns["contagion_score"]["roc_auc"] < 0.99


def test_without_labels_the_scores_stay_label_free_and_say_uncalibrated(tmp_path):
    planted = planted_tables(800, seed=6)
    tables = {**planted.tables, "labels": planted.tables["labels"].head(0)}
    config = apply_overrides(Config(), {"gnn.epochs": 5})
    ctx = RunContext(graph=RiskGraph.from_tables(tables), config=config, out_dir=tmp_path)
    for stage in (contagion_stage, gnn_stage, scores_stage):
        stage(ctx)
    calibration = ctx.manifest_extra["calibration"]
    assert calibration["calibrated"] is False and "no trained GNN" in calibration["reason"]
    evaluation = json.loads((tmp_path / "model_eval.json").read_text())
    assert evaluation["calibration"]["calibrated"] is False and "scores" not in evaluation
    scores = ctx.outputs["scores.parquet"]
    expected = scores.select(pl.max_horizontal("contagion_score", "rule_score")).to_series()
    assert scores.get_column("risk_score").to_list() == expected.to_list()


def test_reliability_chart_draws_one_line_per_column():
    columns = {
        "risk_score": {"reliability": [{"mean_score": 0.1, "default_rate": 0.12}] * 3},
        "gnn_score": {"reliability": [{"mean_score": 0.2, "default_rate": 0.1}] * 2},
    }
    svg = reliability_chart(columns)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and svg.count("<circle") == 5


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from graphkit.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("runs") / "sample"
    run_pipeline(SAMPLE, out, Config())
    return out


def test_sample_risk_score_is_calibrated_ranks_and_does_not_saturate(sample_run: Path):
    evaluation = json.loads((sample_run / "model_eval.json").read_text())
    scores = pl.read_parquet(sample_run / "scores.parquet")
    _assert_promises(evaluation, scores)
    manifest = json.loads((sample_run / "manifest.json").read_text())
    assert manifest["calibration"]["calibrated"] is True
    report = (sample_run / "report.html").read_text()
    assert 'id="calibration"' in report and "reliability plot" in report
    # The alert budget holds with the calibrated score: orange + red within 5%.
    tiers = pl.read_parquet(sample_run / "customer_alerts.parquet").get_column("tier")
    assert tiers.is_in(["orange", "red"]).mean() <= 0.05


@pytest.mark.slow
def test_generated_20k_network_keeps_every_promise(tmp_path: Path):
    """``make bench``: a generated 20k-customer network (planted defaults, about 250 of them in
    the test split) run end to end with the default config: the calibrated score ranks at least
    as well as its best part (minus 0.005), its ECE is <= 0.03, at most 1% share its top score,
    and the alert budget keeps orange + red within 5%."""
    from graphkit.pipeline import run_pipeline
    from loaders.synthetic import generate

    network = tmp_path / "net"
    generate(network, 20_000, 16)
    out = tmp_path / "run"
    run_pipeline(network, out, Config())
    evaluation = json.loads((out / "model_eval.json").read_text())
    assert _held_out(evaluation)["risk_score"]["positives"] >= 200
    _assert_promises(evaluation, pl.read_parquet(out / "scores.parquet"))
    tiers = pl.read_parquet(out / "customer_alerts.parquet").get_column("tier")
    assert tiers.is_in(["orange", "red"]).mean() <= 0.05
