"""Customers and their credit lines: roles (groups, circles, rings, latent risk), the customer
table with its extra features, lines and accounts, and the monthly repayments of each line."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.world import (
    CUSTOMER_SECTORS,
    DAY,
    HOUR,
    REGIONS,
    _Chunk,
    _dates,
    _ids,
    _lognormal,
    _money,
    _positions_in_groups,
    _sigmoid,
    _sizes,
    _split,
    _timestamps,
)

# Extra numeric customer features (banks bring their own; scoring uses any numeric extra).
CUSTOMER_EXTRAS: dict[str, pl.DataType] = {"bureau_score": pl.Int64(), "income": pl.Float64()}


def _shared_risk(
    c: _Chunk, groups: list[np.ndarray], circles: list[np.ndarray], rings: list[np.ndarray]
) -> np.ndarray:
    """Latent risk ~ N(0, 1): members of one group, circle or ring share ``shared_risk`` of it."""
    own = c.rng.standard_normal(c.k)
    share = c.rates.shared_risk
    units = groups + circles + rings
    if share <= 0 or not units:
        return own
    unit_of = np.full(c.k, -1, np.int64)
    for u, members in enumerate(units):
        unit_of[members] = u
    # A child stream: the shocks leave every other draw of the chunk where it was.
    shocks = c.rng.spawn(1)[0].standard_normal(len(units))
    member = unit_of >= 0
    risk = own.copy()
    risk[member] = np.sqrt(1 - share) * own[member] + np.sqrt(share) * shocks[unit_of[member]]
    return risk


def _roles(c: _Chunk) -> dict[str, Any]:
    """Assign customers to groups, circles and rings; decide kinds and latent risk."""
    rng, k, r = c.rng, c.k, c.rates
    order = rng.permutation(k)
    lo, hi = r.group_size
    group_sizes = _sizes(
        np.clip(lo + rng.poisson(7, k // lo + 1), lo, hi), round(r.group_share * k)
    )
    circle_draws = 2 + rng.choice(len(r.circle_size_probs), k // 2 + 1, p=r.circle_size_probs)
    circle_sizes = _sizes(circle_draws, round(r.circle_share * k))
    rlo, rhi = r.ring_size
    ring_sizes = _sizes(
        np.clip(rlo + rng.poisson(2.5, k // rlo + 1), rlo, rhi), round(r.ring_share * k)
    )
    n_group = int(group_sizes.sum())
    n_circle = int(circle_sizes.sum())
    n_ring = int(ring_sizes.sum())
    groups = _split(order[:n_group], group_sizes)
    standalone = _split(order[n_group : n_group + n_circle], circle_sizes)
    rings = _split(order[n_group + n_circle : n_group + n_circle + n_ring], ring_sizes)
    background = np.sort(order[n_group + n_circle + n_ring :])

    enterprise = rng.random(k) < r.enterprise_share
    controllers = 1 + (rng.random(len(groups)) < 0.4).astype(np.int64)
    if groups:
        members = np.concatenate(groups)
        enterprise[members] = _positions_in_groups(group_sizes) >= np.repeat(
            controllers, group_sizes
        )
    if standalone:
        members = np.concatenate(standalone)
        enterprise[members] = rng.random(len(members)) < 0.85
    if rings:
        enterprise[np.concatenate(rings)] = False

    circles: list[np.ndarray] = []
    group_of = np.full(k, -1, np.int64)
    for g, members in enumerate(groups):
        group_of[members] = g
        companies = members[controllers[g] :]
        size = 2 + rng.choice(len(r.circle_size_probs), p=r.circle_size_probs)
        if len(members) >= 4 and rng.random() < r.group_circle_prob:
            size = min(size, len(companies))
            circles.append(rng.permutation(companies)[:size])
    circles.extend(standalone)
    ring_of = np.full(k, -1, np.int64)
    for i, members in enumerate(rings):
        ring_of[members] = i

    risk = _shared_risk(c, groups, standalone, rings) + 0.6 * (ring_of >= 0)
    burst = rng.random(k) < _sigmoid(r.burst_logit + risk)
    active = (rng.random(k) < r.active_share) | burst | (ring_of >= 0)
    # Fund-chain and noise customers each get one dedicated disbursement account.
    special = rng.permutation(k)
    n_chain = round(r.chain_share * k)
    n_noise = round(r.noise_share * k)
    chain_customers = np.sort(special[:n_chain])
    noise_customers = np.sort(special[n_chain : n_chain + n_noise])
    active[chain_customers] = True
    active[noise_customers] = True
    return {
        "groups": groups,
        "controllers": controllers,
        "circles": circles,
        "rings": rings,
        "background": background,
        "enterprise": enterprise,
        "group_of": group_of,
        "ring_of": ring_of,
        "risk": risk,
        "burst": burst,
        "active": active,
        "chain_customers": chain_customers,
        "noise_customers": noise_customers,
    }


def _customers(c: _Chunk, roles: dict[str, Any]) -> None:
    rng, k, w = c.rng, c.k, c.world
    local = np.arange(k)
    enterprise = roles["enterprise"]
    region = rng.integers(0, len(REGIONS), k)
    group_region = rng.integers(0, len(REGIONS), len(roles["groups"]))
    in_group = roles["group_of"] >= 0
    region[in_group] = group_region[roles["group_of"][in_group]]
    sector = np.array(CUSTOMER_SECTORS)[rng.integers(0, len(CUSTOMER_SECTORS), k)]
    capital = np.round(_lognormal(rng, 5e6, 1.0, k), -3)
    created = w.start_s - rng.integers(30 * DAY, 3650 * DAY, k)
    noise = rng.standard_normal(k)
    score = np.clip(np.round(650 - 55 * (0.7 * roles["risk"] + 0.7 * noise)), 300, 900)
    income_median = np.where(enterprise, 1.2e7, 1.2e5) * np.exp(-0.15 * roles["risk"])
    income = np.round(_lognormal(rng, income_median, 0.6, k), -2)
    ids = c.customer_ids(local)
    kind = np.where(enterprise, "enterprise", "person")
    c.tables["customers"] = pl.DataFrame(
        {
            "customer_id": ids,
            "kind": pl.Series(kind),
            "name": pl.select(
                pl.concat_str(
                    pl.lit(pl.Series(np.where(enterprise, "Enterprise ", "Person "))), pl.lit(ids)
                )
            ).to_series(),
            "sector": pl.Series(sector).set(pl.Series(~enterprise), None),
            "region": pl.Series(np.array(REGIONS)[region]),
            "registered_capital": pl.Series(np.where(enterprise, capital, np.nan)).fill_nan(None),
            "created_at": _timestamps(created),
            "bureau_score": pl.Series(score.astype(np.int64)),
            "income": pl.Series(income),
        }
    )


def _lines_and_accounts(c: _Chunk, roles: dict[str, Any]) -> dict[str, np.ndarray]:
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    local = np.arange(k)
    enterprise = roles["enterprise"]
    n_lines = 1 + (rng.random(k) < r.second_line_share)
    line_customer = np.repeat(local, n_lines)
    line_numbers = c.number("line", len(line_customer))
    first_line = np.cumsum(n_lines) - n_lines  # local line index of each customer's first line
    median = np.where(enterprise[line_customer], 8e5, 5e4)
    limit = np.maximum(np.round(_lognormal(rng, median, 0.8, len(line_customer)), -3), 1000.0)
    opened = w.start_s - rng.integers(30 * DAY, 1100 * DAY, len(line_customer))
    frozen = (~roles["active"][line_customer]) & (rng.random(len(line_customer)) < 0.1)
    c.tables["credit_lines"] = pl.DataFrame(
        {
            "line_id": _ids("L", line_numbers, w.width),
            "customer_id": c.customer_ids(line_customer),
            "limit": pl.Series(limit),
            "opened_at": _timestamps(opened),
            "status": pl.Series(np.where(frozen, "frozen", "active")),
        }
    )

    special = np.zeros(k, bool)
    special[roles["chain_customers"]] = True
    special[roles["noise_customers"]] = True
    second = (~special) & (rng.random(k) < r.second_account_share)
    primary = c.number("account", k)
    second_owner = local[second]
    second_numbers = c.number("account", len(second_owner))
    dedicated_owner = np.concatenate([roles["chain_customers"], roles["noise_customers"]])
    dedicated_numbers = c.number("account", len(dedicated_owner))
    second_account = np.full(k, -1, np.int64)
    second_account[second_owner] = second_numbers
    dedicated = np.full(k, -1, np.int64)
    dedicated[dedicated_owner] = dedicated_numbers
    owners = np.concatenate([local, second_owner, dedicated_owner])
    c.tables["accounts"] = pl.DataFrame(
        {
            "account_id": _ids(
                "A", np.concatenate([primary, second_numbers, dedicated_numbers]), w.width
            ),
            "owner_id": c.customer_ids(owners),
        }
    )
    return {
        "line_numbers": line_numbers,
        "line_limit": limit,
        "first_line": first_line,
        "n_lines": n_lines,
        "primary": primary,
        "second": second_account,
        "dedicated": dedicated,
    }


def _repayments(
    c: _Chunk, roles: dict[str, Any], acc: dict[str, np.ndarray], dd: dict[str, np.ndarray]
) -> None:
    """Monthly statements per line; riskier customers pay later (days_past_due)."""
    rng, w = c.rng, c.world
    cycle = (dd["ts"] - w.start_s) // (30 * DAY)
    statements = (
        pl.DataFrame({"line": dd["line_local"], "cycle": cycle, "amount": dd["amount"]})
        .group_by("line", "cycle")
        .agg(pl.col("amount").sum())
        .sort("line", "cycle")
    )
    line = statements.get_column("line").to_numpy()
    due_day = w.start_day + 30 * (statements.get_column("cycle").to_numpy() + 1)
    keep = due_day <= w.start_day + w.days
    line, due_day = line[keep], due_day[keep]
    drawn = statements.get_column("amount").to_numpy()[keep]
    n = len(line)
    customer = np.repeat(np.arange(c.k), acc["n_lines"])[line]
    late = rng.random(n) < _sigmoid(
        -2.8 + 1.3 * roles["risk"][customer] + 0.5 * rng.standard_normal(n)
    )
    dpd = np.where(late, 1 + rng.geometric(0.12, n), 0)
    paid = due_day * DAY + dpd * DAY + rng.integers(8 * HOUR, 20 * HOUR, n)
    unpaid = paid >= w.end_s
    dpd = np.where(unpaid, np.maximum(w.start_day + w.days - due_day, 0), dpd)
    paid_at = _timestamps(paid).set(pl.Series(unpaid), None)
    c.tables["repayments"] = pl.DataFrame(
        {
            "line_id": _ids("L", acc["line_numbers"][line], w.width),
            "due_date": _dates(due_day),
            "paid_at": paid_at,
            "amount": pl.Series(_money(drawn * rng.uniform(0.2, 1.0, n))),
            "days_past_due": pl.Series(dpd.astype(np.int64)),
        }
    )
