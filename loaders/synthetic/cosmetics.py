"""Credit cosmetics (信用美容): risky customers who keep a perfect record on purpose.

The seed: 15% of users keep a perfect repayment record with timed small drawdowns, and one risk
model was misled on 26% of cases. The generator plants such customers (``cosmetic_share`` of all
customers, persons only: the seed speaks of users) among the *risky* ones: chosen with odds
growing as ``exp(cosmetic_risk_tilt * risk)`` (three times higher for members of a
related-enterprise group, circle or ring, whose risk is shared with their neighbours), so they
default far more often than others. Their record shows none of it:

* as often as they drew before (at least ``cosmetic_min_drawdowns`` times in the window), now
  evenly spaced, every ``period`` days at about the same time of day, they draw a small, nearly
  constant amount (``cosmetic_amount_share`` of the limit, +/- 3%, rounded to 100) on their
  first line into their primary account, and
* repay each drawdown in full 1-20 hours later (a repayment row per drawdown, due at the end of
  its 30-day cycle, ``days_past_due`` 0), so utilisation stays near zero and nothing is late;
* their bureau score reflects that record (drawn as for a customer of latent risk -0.5).

This step runs after every other one of the chunk and draws from a stream of its own (a child of
the chunk's), so every other planted structure, label and amount stays as it was: only the
cosmetic customers' drawdowns, repayments and bureau score change. Their earlier drawdowns and
monthly statements are dropped; the new drawdowns get fresh numbers after the chunk's others
(drawdown ids are in time order except for these). Their other transfers (spending, payments
to people) stay: it is their own money.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.drawdowns import _pick_device
from loaders.synthetic.truth import TRUTH_SCHEMAS
from loaders.synthetic.world import (
    CHANNELS,
    DAY,
    HOUR,
    _Chunk,
    _dates,
    _ids,
    _timestamps,
)


def _cosmetics(
    c: _Chunk,
    roles: dict[str, Any],
    acc: dict[str, np.ndarray],
    dev: dict[str, np.ndarray],
    dd: dict[str, np.ndarray],
) -> None:
    """Pick the cosmetic customers and rewrite their drawdowns, repayments and bureau score."""
    rng = c.rng.spawn(1)[0]
    k, w, r = c.k, c.world, c.rates
    # Eligible: active persons whose every drawdown is an ordinary one (no burst, chain, noise
    # or laundered drawdown; diverters draw none of the ordinary kind), enough of them to show a
    # schedule.
    ordinary = np.bincount(dd["cust"][dd["tag"] == 0], minlength=k)
    special = np.bincount(dd["cust"][dd["tag"] != 0], minlength=k)
    eligible = np.flatnonzero(
        (ordinary >= r.cosmetic_min_drawdowns)
        & (special == 0)
        & ~roles["burst"]
        & ~roles["enterprise"]
    )
    n = min(round(r.cosmetic_share * k), len(eligible))
    in_unit = np.zeros(k, bool)
    for members in roles["groups"] + roles["circles"] + roles["rings"]:
        in_unit[members] = True
    weight = np.exp(r.cosmetic_risk_tilt * roles["risk"][eligible]) * (1 + 2 * in_unit[eligible])
    keys = rng.exponential(1.0, len(eligible)) / weight
    chosen = np.sort(eligible[np.argsort(keys, kind="stable")[:n]])
    is_cosmetic = np.zeros(k, bool)
    is_cosmetic[chosen] = True

    # As many drawdowns as before (the chunk's drawdown count, hence the laundered share, stays),
    # spread evenly over the window: every `period` days from a random first day, at the same
    # time of day (+/- an hour); the last leaves a day to repay it.
    count = ordinary[chosen].astype(np.int64)
    period = (w.days - 2) / count * rng.uniform(0.85, 1.0, n)
    first = rng.uniform(0.0, 1.0, n) * (w.days - 1.5 - (count - 1) * period)
    hour = rng.integers(9, 21, n)
    cust = np.repeat(chosen, count)
    idx = np.repeat(np.arange(n), count)
    step = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    day_float = first[idx] + step * period[idx]
    ts = (
        w.start_s
        + np.floor(day_float).astype(np.int64) * DAY
        + hour[idx] * HOUR
        + rng.integers(-HOUR, HOUR, len(cust))
    )
    ts = np.clip(ts, w.start_s, w.end_s - DAY)
    line_local = acc["first_line"][cust]
    alo, ahi = r.cosmetic_amount_share
    share = rng.uniform(alo, ahi, n)
    amount = np.maximum(
        np.round(
            acc["line_limit"][line_local] * share[idx] * rng.uniform(0.97, 1.03, len(cust)), -2
        ),
        100.0,
    )
    channel = np.where(rng.random(len(cust)) < 0.8, CHANNELS.index("app"), CHANNELS.index("web"))
    device = _pick_device(rng, dev, cust)
    order = np.lexsort((np.arange(len(ts)), ts))
    cust, idx, ts, line_local, amount, channel, device = (
        x[order] for x in (cust, idx, ts, line_local, amount, channel, device)
    )
    numbers = c.number("drawdown", len(cust))
    new = pl.DataFrame(
        {
            "drawdown_id": _ids("D", numbers, w.width),
            "line_id": _ids("L", acc["line_numbers"][line_local], w.width),
            "account_id": _ids("A", acc["primary"][cust], w.width),
            "amount": pl.Series(amount),
            "ts": _timestamps(ts),
            "channel": pl.Series(np.array(CHANNELS)[channel]),
            "device_id": _ids("V", np.maximum(device, 0), w.width).set(pl.Series(device < 0), None),
        }
    )
    drawdowns = c.tables["drawdowns"]
    c.tables["drawdowns"] = pl.concat(
        [drawdowns.filter(pl.Series(~is_cosmetic[dd["cust"]])), new]
    ).sort("ts", "drawdown_id", maintain_order=True)

    # Each drawdown repaid in full within hours; the monthly statements of their lines go.
    line_customer = np.repeat(np.arange(k), acc["n_lines"])
    their_lines = _ids("L", acc["line_numbers"][is_cosmetic[line_customer]], w.width)
    cycle = (ts - w.start_s) // (30 * DAY)
    paid = ts + rng.integers(HOUR, 20 * HOUR, len(ts))
    repaid = pl.DataFrame(
        {
            "line_id": new.get_column("line_id"),
            "due_date": _dates(w.start_day + 30 * (cycle + 1)),
            "paid_at": _timestamps(paid),
            "amount": new.get_column("amount"),
            "days_past_due": pl.Series(np.zeros(len(ts), np.int64)),
        }
    )
    repayments = c.tables["repayments"]
    c.tables["repayments"] = pl.concat(
        [repayments.filter(~pl.col("line_id").is_in(their_lines.implode())), repaid]
    ).sort("line_id", "due_date", "paid_at", maintain_order=True)

    # The bureau sees the perfect record: scored like a customer of latent risk -0.5.
    noise = rng.standard_normal(n)
    score = np.clip(np.round(650 - 55 * (0.7 * -0.5 + 0.7 * noise)), 300, 900).astype(np.int64)
    bureau = c.tables["customers"].get_column("bureau_score").to_numpy().copy()
    bureau[chosen] = score
    c.tables["customers"] = c.tables["customers"].with_columns(
        pl.Series("bureau_score", bureau, dtype=pl.Int64)
    )
    c.truth["cosmetics"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(chosen),
            "drawdowns": pl.Series(count, dtype=pl.Int64),
            "period_days": pl.Series(period, dtype=pl.Float64),
            "amount_share": pl.Series(share, dtype=pl.Float64),
        },
        schema=TRUTH_SCHEMAS["cosmetics"],
    )
