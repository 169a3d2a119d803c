"""Guarantees: circle cycles and chords, and acyclic group and background guarantees."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.world import (
    _Chunk,
    _dates,
    _dedupe_pairs,
    _money,
    _pairs,
)


def _guarantees(c: _Chunk, roles: dict[str, Any], acc: dict[str, np.ndarray]) -> None:
    """Circle cycles and chords, plus acyclic group and background guarantees."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    circles = roles["circles"]
    # Circles are contracted to one super node; every other guarantee goes up one random order
    # of super nodes, so no cycle appears outside a circle and no two circles merge.
    super_of = np.arange(k)
    for i, members in enumerate(circles):
        super_of[members] = k + i
    rank = rng.permutation(k + len(circles))[super_of]

    circle_a: list[np.ndarray] = [np.empty(0, np.int64)]
    circle_b: list[np.ndarray] = [np.empty(0, np.int64)]
    for members in circles:
        cycle = rng.permutation(members)
        circle_a += [cycle]
        circle_b += [np.roll(cycle, -1)]
        if len(members) >= 4:
            a, b = _pairs(rng, cycle, len(members) // 3)
            circle_a += [a]
            circle_b += [b]
    free_a: list[np.ndarray] = [np.empty(0, np.int64)]
    free_b: list[np.ndarray] = [np.empty(0, np.int64)]
    for members in roles["groups"]:
        a, b = _pairs(rng, members, len(members) // 2 + 1)
        free_a += [a]
        free_b += [b]
    a, b = _pairs(rng, np.arange(k), round(r.guarantees_per_customer * k))
    # Few background guarantees touch a group and none joins two: a group tied into the
    # background's giant component is merged with its neighbours by modularity (its
    # resolution limit grows with the graph), and the groups must stay recoverable.
    touches = (roles["group_of"][a] >= 0) | (roles["group_of"][b] >= 0)
    joins = (roles["group_of"][a] >= 0) & (roles["group_of"][b] >= 0)
    apart = ~joins & (~touches | (rng.random(len(a)) < r.group_leak))
    free_a += [a[apart]]
    free_b += [b[apart]]
    fa, fb = np.concatenate(free_a), np.concatenate(free_b)
    up = rank[fa] < rank[fb]
    fa, fb = np.where(up, fa, fb), np.where(up, fb, fa)
    differ = rank[fa] != rank[fb]
    guarantor = np.concatenate([*circle_a, fa[differ]])
    borrower = np.concatenate([*circle_b, fb[differ]])
    keep = _dedupe_pairs(guarantor, borrower, k)
    guarantor, borrower = guarantor[keep], borrower[keep]
    n = len(guarantor)
    limit = acc["line_limit"][acc["first_line"][borrower]]
    start = w.start_day - rng.integers(0, 700, n)
    c.tables["guarantees"] = pl.DataFrame(
        {
            "guarantor_id": c.customer_ids(guarantor),
            "borrower_id": c.customer_ids(borrower),
            "amount": pl.Series(_money(limit * rng.uniform(0.3, 1.0, n))),
            "start": _dates(start),
            "end": _dates(start + rng.integers(365, 1096, n)),
        }
    )
    c.truth["guarantee_edges"] = pl.DataFrame({"a": guarantor, "b": borrower})
