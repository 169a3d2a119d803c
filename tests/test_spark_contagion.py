"""Contagion on Spark against the embedded engine: DebtRank to rounding, PageRank to a proven bound.

DebtRank runs the embedded rounds as joins, so stress, losses and the DebtRank of the seed set
differ from the embedded values by float rounding only (sums in another order): 1e-12 relative.

Personalised PageRank is not the same iteration on both engines (graphkit/spark/contagion.py):
the embedded power iteration stops once a step moves the vector by less than ``tol`` in L1,
which leaves it within ``tol * d / (1 - d)`` of the fixed point (the iteration is an L1
contraction by ``d``); Spark's Chebyshev iteration stops once its residual proves the same bound.
So the two pageranks are within ``2 * tol * d / (1 - d)`` in L1 (1.1e-11 at the defaults), plus
rounding (1e-15: the vectors sum to 1). ``contagion_score`` moves with ``pagerank / top`` (``top``
the largest seed's pagerank), so at most ``2 * bound / top`` apart; where two customers' embedded
values differ by more than twice a column's tolerance, Spark must order them the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.analytics.contagion import contagion_frame
from graphkit.config import Config
from graphkit.graph import RiskGraph
from graphkit.spark.contagion import PAGERANK_TOL, SparkContagion, contagion_spark
from graphkit.spark.tables import from_polars, read_tables
from loaders.frames import make_tables
from loaders.sources import read_input
from tests.spark_cases import random_tables

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
ROUNDING = 1e-12


def _same_order(got: np.ndarray, expected: np.ndarray, gap: float) -> None:
    """Every pair the embedded values separate by more than ``gap`` is ordered alike."""
    apart = (expected[:, None] - expected[None, :]) > gap
    assert np.all((got[:, None] - got[None, :])[apart] > 0)


def _assert_agrees(got: SparkContagion, graph: RiskGraph, config: Config) -> None:
    seeds = np.flatnonzero(graph.defaulted() == 1)
    frame, stress = contagion_frame(graph, seeds, config)
    expected = frame.sort("customer_id")
    result = got.frame
    assert result.columns == expected.columns
    assert result.schema == expected.schema
    assert result.get_column("customer_id").equals(expected.get_column("customer_id"))
    assert result.get_column("seed").equals(expected.get_column("seed"))
    assert got.seeds == len(seeds)
    assert got.debtrank_rounds == stress.rounds_run
    assert got.debtrank == pytest.approx(stress.debtrank, rel=ROUNDING, abs=ROUNDING)

    def column(name: str, frame: pl.DataFrame) -> np.ndarray:
        return frame.get_column(name).to_numpy()

    for name in ("debtrank", "loss_amount"):
        np.testing.assert_allclose(
            column(name, result), column(name, expected), rtol=ROUNDING, atol=ROUNDING
        )
        scale = 1.0 + float(np.abs(column(name, expected)).max(initial=0.0))
        _same_order(column(name, result), column(name, expected), 2 * ROUNDING * scale)

    d = config.contagion.pagerank_damping
    bound = 2 * PAGERANK_TOL * d / (1 - d) + 1e-15
    pagerank = column("pagerank", result)
    assert np.abs(pagerank - column("pagerank", expected)).sum() <= bound
    _same_order(pagerank, column("pagerank", expected), 2 * bound)
    if len(seeds):
        assert pagerank.sum() == pytest.approx(1.0, abs=1e-12)
        top = column("pagerank", expected)[seeds].max()
        score_tol = 2 * bound / top + ROUNDING
    else:
        assert not pagerank.any()
        score_tol = ROUNDING
    score = column("contagion_score", result)
    np.testing.assert_allclose(score, column("contagion_score", expected), rtol=0, atol=score_tol)
    _same_order(score, column("contagion_score", expected), 2 * score_tol)
    # A customer no walk from a seed reaches, and no stress reaches, scores exactly 0 on both.
    hit = (pl.col("contagion_score") > 0) & ~pl.col("seed")
    assert result.filter(hit).height == expected.filter(hit).height


def _with_capital_and_shares(tables: dict[str, pl.DataFrame], seed: int) -> dict:
    """``tables`` with registered capital on some customers (0 on others, so the capacity falls
    back to the lines and to the guaranteed amounts) and shareholdings across customers."""
    rng = np.random.default_rng(seed)
    customers = tables["customers"]
    ids = customers.get_column("customer_id").to_list()
    capital = [
        None if x < 0.4 else 0.0 if x < 0.6 else round(float(rng.random()) * 500 + 1, 2)
        for x in rng.random(len(ids))
    ]
    pairs = rng.integers(0, len(ids), size=(len(ids), 2))
    shares = {
        "holder_id": [ids[a] for a, _ in pairs],
        "company_id": [ids[b] for _, b in pairs],
        "share": [round(float(x), 3) for x in rng.random(len(ids))],
    }
    return {
        **tables,
        "customers": customers.with_columns(pl.Series("registered_capital", capital, pl.Float64)),
        "shareholdings": make_tables(shareholdings=shares)["shareholdings"],
    }


@settings(max_examples=2, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lgd=st.sampled_from([0.4, 1.0]),
    rounds=st.integers(1, 6),
    damping=st.sampled_from([0.6, 0.85]),
)
def test_spark_contagion_agrees_with_embedded(spark, seed, lgd, rounds, damping):
    tables = _with_capital_and_shares(random_tables(seed), seed)
    config = Config()
    config.contagion.loss_given_default = lgd
    config.contagion.debtrank_rounds = rounds
    config.contagion.pagerank_damping = damping
    got = contagion_spark(from_polars(spark, tables), config)
    _assert_agrees(got, RiskGraph.from_tables(tables), config)


def test_spark_contagion_on_the_sample_read_by_spark(spark):
    config = Config()
    got = contagion_spark(read_tables(spark, str(SAMPLE)), config)
    _assert_agrees(got, RiskGraph.from_tables(read_input(SAMPLE).tables), config)
    # The Chebyshev iteration needs far fewer joins than the embedded power iteration's steps.
    assert got.pagerank_steps < 80
