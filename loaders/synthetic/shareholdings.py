"""Shareholdings: group holding trees, owners of small firms and minority stakes."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.world import (
    _Chunk,
    _dedupe_pairs,
)


def _shareholdings(c: _Chunk, roles: dict[str, Any]) -> None:
    """Group holding trees (shares >= 0.2), owners of small firms, and minority stakes < 0.2.

    A company's holders never own more than 100% in total.
    """
    rng, k, r = c.rng, c.k, c.rates
    holders: list[np.ndarray] = [np.empty(0, np.int64)]
    companies: list[np.ndarray] = [np.empty(0, np.int64)]
    shares: list[np.ndarray] = [np.empty(0)]
    for g, members in enumerate(roles["groups"]):
        pos = np.arange(roles["controllers"][g], len(members))
        parent = (rng.random(len(pos)) * pos).astype(np.int64)
        holders += [members[parent]]
        companies += [members[pos]]
        shares += [rng.uniform(0.3, 0.6, len(pos))]
        second = (rng.random(len(pos)) * (pos - 1)).astype(np.int64)
        second += second >= parent
        has_second = (pos >= 2) & (rng.random(len(pos)) < 0.5)
        holders += [members[second[has_second]]]
        companies += [members[pos[has_second]]]
        shares += [rng.uniform(0.2, 0.25, int(has_second.sum()))]
    enterprise = roles["enterprise"]
    background = roles["background"]
    bg_firms = background[enterprise[background]]
    bg_people = background[~enterprise[background]]
    if len(bg_people):
        owned = rng.permutation(bg_firms)[: round(r.owner_stakes_share * len(bg_firms))]
        holders += [bg_people[rng.integers(0, len(bg_people), len(owned))]]
        companies += [owned]
        shares += [rng.uniform(0.2, 0.85, len(owned))]
    firms = np.flatnonzero(enterprise)
    stakes = rng.permutation(firms)[: round(r.minority_stakes_share * len(firms))]
    holders += [rng.integers(0, k, len(stakes))]
    companies += [stakes]
    shares += [rng.uniform(0.01, 0.15, len(stakes))]
    holder, company, share = (np.concatenate(x) for x in (holders, companies, shares))
    distinct = holder != company
    holder, company, share = holder[distinct], company[distinct], share[distinct]
    keep = _dedupe_pairs(holder, company, k)
    c.tables["shareholdings"] = pl.DataFrame(
        {
            "holder_id": c.customer_ids(holder[keep]),
            "company_id": c.customer_ids(company[keep]),
            "share": pl.Series(np.round(share[keep], 4)),
        }
    )
