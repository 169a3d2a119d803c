"""Small generated inputs with planted causes of default, for the scoring tests.

Every customer has a hidden risk ``r``; its own features show ``r`` noisily (bureau score,
delinquency, a drawdown burst for the riskiest). *Primary* defaults depend on ``r`` only.
*Contagion*: a guarantor of a defaulted borrower defaults with probability ``p_guarantee`` and a
device-ring mate of a defaulter with ``p_ring``, whatever its own features say; so only a model
that reads the neighbours can see it coming. ``truth`` records each default's cause and, for
contagion, the neighbour that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from loaders.frames import make_tables

SNAPSHOT = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Planted:
    tables: dict[str, pl.DataFrame]
    truth: pl.DataFrame  # customer_id, cause (primary|guarantee|ring|none), via (customer_id)


def planted_tables(
    customers: int = 1500,
    seed: int = 0,
    p_guarantee: float = 0.7,
    p_ring: float = 0.4,
) -> Planted:
    rng = np.random.default_rng(seed)
    n = customers
    ids = np.array([f"C{i:06d}" for i in range(n)])
    risk = rng.normal(size=n)
    bureau = 650 - 50 * risk + rng.normal(0, 45, n)
    income = rng.lognormal(10, 0.5, n)
    limit = np.round(rng.lognormal(10, 0.4, n), 2)

    draws_per = rng.poisson(2 + np.maximum(risk, 0))
    owner = np.repeat(np.arange(n), draws_per)
    offsets = rng.uniform(1, 60 * 24, len(owner))
    burst = np.flatnonzero(risk > np.quantile(risk, 0.95))
    burst_owner = np.repeat(burst, 6)
    burst_offsets = np.repeat(rng.uniform(2, 20 * 24, len(burst)), 6) + rng.uniform(
        0, 3, 6 * len(burst)
    )
    owner = np.concatenate([owner, burst_owner])
    offsets = np.concatenate([offsets, burst_offsets])
    ts = [SNAPSHOT - timedelta(hours=float(h)) for h in offsets]
    draw_amount = np.round(limit[owner] * rng.uniform(0.02, 0.15, len(owner)), 2)

    instalments = np.repeat(np.arange(n), 3)
    due = [
        (SNAPSHOT - timedelta(days=int(d))).date() for d in rng.integers(5, 90, len(instalments))
    ]
    dpd = rng.poisson(np.exp(risk[instalments] - 1.0) * 3)
    paid_at = [
        datetime.combine(d, datetime.min.time(), UTC) + timedelta(days=int(late))
        for d, late in zip(due, dpd, strict=True)
    ]

    guarantor = np.flatnonzero(rng.random(n) < 0.7)
    borrower = (guarantor + rng.integers(1, n, len(guarantor))) % n
    rings = n // 25
    ring_members = rng.permutation(n)[: 4 * rings].reshape(rings, 4)
    device_customer = ring_members.ravel()
    device_id = np.repeat([f"D{i:05d}" for i in range(len(ring_members))], 4)

    defaulted = rng.random(n) < 1 / (1 + np.exp(-(-3.8 + 1.6 * risk)))
    cause = np.where(defaulted, "primary", "none").astype(object)
    via = np.full(n, None, dtype=object)
    ring_of = np.full(n, -1)
    ring_of[device_customer] = np.repeat(np.arange(len(ring_members)), 4)
    for _ in range(3):
        hit_borrower = defaulted[borrower] & ~defaulted[guarantor]
        roll = rng.random(len(guarantor)) < p_guarantee
        newly = guarantor[hit_borrower & roll]
        sources = borrower[hit_borrower & roll]
        cause[newly] = "guarantee"
        via[newly] = ids[sources]
        defaulted[newly] = True
        ring_hit = np.zeros(len(ring_members), dtype=bool)
        ring_hit[ring_of[defaulted & (ring_of >= 0)]] = True
        candidates = np.flatnonzero((ring_of >= 0) & ~defaulted)
        candidates = candidates[ring_hit[ring_of[candidates]]]
        newly = candidates[rng.random(len(candidates)) < p_ring]
        cause[newly] = "ring"
        defaulted[newly] = True

    tables = make_tables(
        customers={
            "customer_id": ids,
            "kind": np.where(rng.random(n) < 0.5, "person", "enterprise"),
            "registered_capital": np.round(limit * 3, 2),
            "bureau_score": bureau,
            "income": income,
        },
        credit_lines={"line_id": [f"L{i}" for i in range(n)], "customer_id": ids, "limit": limit},
        accounts={"account_id": [f"A{i}" for i in range(n)], "owner_id": ids},
        drawdowns={
            "drawdown_id": [f"W{i}" for i in range(len(owner))],
            "line_id": [f"L{i}" for i in owner],
            "account_id": [f"A{i}" for i in owner],
            "amount": draw_amount,
            "ts": ts,
        },
        repayments={
            "line_id": [f"L{i}" for i in instalments],
            "due_date": due,
            "paid_at": paid_at,
            "amount": np.round(limit[instalments] * 0.05, 2),
            "days_past_due": dpd,
        },
        guarantees={
            "guarantor_id": ids[guarantor],
            "borrower_id": ids[borrower],
            "amount": np.round(limit[borrower] * 0.5, 2),
        },
        device_links={"customer_id": ids[device_customer], "device_id": device_id},
        labels={"customer_id": ids, "defaulted": defaulted},
    )
    truth = pl.DataFrame(
        {"customer_id": ids, "cause": cause.astype(str), "via": via.tolist()},
        schema={"customer_id": pl.String, "cause": pl.String, "via": pl.String},
    )
    return Planted(tables=tables, truth=truth)


@pytest.fixture
def one_thread():
    """One thread for torch and OpenMP: oversubscribing a busy machine slows tests 30-fold."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)
