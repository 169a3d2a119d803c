"""Small planted networks for the analytics tests: groups, circles and rings with known answers.

Independent of ``loaders.synthetic`` so the analytics tests do not depend on the generator's
choices; the generator is tested against the same analytics where it is available.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from loaders.frames import make_tables


@dataclass
class Planted:
    tables: dict[str, pl.DataFrame]
    groups: pl.DataFrame  # group_id, customer_id
    circles: pl.DataFrame  # circle_id, customer_id
    rings: pl.DataFrame  # ring_id, customer_id


def customer_id(i: int) -> str:
    return f"C{i:05d}"


def planted_network(seed: int = 3, groups: int = 40, background: int = 400) -> Planted:
    """Related-enterprise groups (5-30 members, shareholding trees, guarantees inside, shared
    device pairs, net transfers), guarantee circles inside some groups, device rings among the
    background customers, one hub device, and sparse noise ties between groups.

    Guarantees outside circles follow one global order (a DAG), so the strongly connected
    components of size >= 2 are exactly the planted circles.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 31, groups)
    n_group = int(sizes.sum())
    n = n_group + background
    ids = [customer_id(i) for i in range(n)]
    group_of = np.repeat(np.arange(groups), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    # Circles first: guarantees outside circles are oriented by a rank in which a circle is one
    # "super node", so they can never close a cycle.
    circles = []
    rank = np.arange(n)
    for g in range(groups):
        if sizes[g] >= 6 and rng.random() < 0.5:
            members = np.arange(starts[g], starts[g] + sizes[g])
            circle = np.sort(rng.choice(members, int(rng.integers(2, 6)), replace=False))
            circles.append(circle)
            rank[circle] = circle[0]

    holders, companies, shares = [], [], []
    g_src, g_dst = [], []
    d_customer, d_device = [], []
    t_src, t_dst = [], []
    device_counter = 0

    def guarantee(a: int, b: int) -> None:
        g_src.append(a if rank[a] <= rank[b] else b)
        g_dst.append(b if rank[a] <= rank[b] else a)

    for g in range(groups):
        members = np.arange(starts[g], starts[g] + sizes[g])
        for j in range(1, len(members)):
            holders.append(members[rng.integers(0, j)])
            companies.append(members[j])
            shares.append(float(rng.uniform(0.2, 0.9)))
        for _ in range(len(members)):
            guarantee(*rng.choice(members, 2, replace=False))
        for _ in range(max(1, len(members) // 3)):
            a, b = rng.choice(members, 2, replace=False)
            d_customer += [a, b]
            d_device += [device_counter, device_counter]
            device_counter += 1
        for _ in range(len(members) // 2):
            a, b = rng.choice(members, 2, replace=False)
            t_src.append(a)
            t_dst.append(b)
    for circle in circles:
        # A cycle in a random order plus one chord back: every member reaches every other.
        cycle = rng.permutation(circle)
        for i in range(len(cycle)):
            g_src.append(cycle[i])
            g_dst.append(cycle[(i + 1) % len(cycle)])
        if len(cycle) >= 3:
            g_src.append(cycle[2])
            g_dst.append(cycle[0])
    for _ in range(groups // 2):
        guarantee(*rng.choice(n, 2, replace=False))
    # Device rings among background customers: blocks chained by one bridging member.
    rings = []
    pool = rng.permutation(np.arange(n_group, n))
    position = 0
    for _ in range(12):
        size = int(rng.integers(3, 10))
        members = pool[position : position + size]
        position += size
        rings.append(np.sort(members))
        n_dev = 1 if size < 6 else 2
        blocks = np.array_split(members, n_dev)
        for j, block in enumerate(blocks):
            users = np.concatenate([block, blocks[j + 1][:1]]) if j + 1 < n_dev else block
            d_customer += list(users)
            d_device += [device_counter] * len(users)
            device_counter += 1
    # Every customer has a private phone; one shop terminal (hub) serves many.
    d_customer += list(range(n))
    d_device += list(range(device_counter, device_counter + n))
    device_counter += n
    hub = rng.choice(n, 120, replace=False)
    d_customer += list(hub)
    d_device += [device_counter] * len(hub)

    accounts = [f"A{i:05d}" for i in range(n)]
    tables = make_tables(
        customers={
            "customer_id": ids,
            "kind": ["enterprise"] * n,
        },
        accounts={"account_id": accounts, "owner_id": ids},
        guarantees={
            "guarantor_id": [ids[a] for a in g_src],
            "borrower_id": [ids[b] for b in g_dst],
            "amount": [float(rng.integers(1, 100)) * 1000 for _ in g_src],
        },
        shareholdings={
            "holder_id": [ids[a] for a in holders],
            "company_id": [ids[b] for b in companies],
            "share": shares,
        },
        device_links=pl.DataFrame(
            {
                "customer_id": [ids[a] for a in d_customer],
                "device_id": [f"D{d:06d}" for d in d_device],
            }
        ).unique(maintain_order=True),
        transfers={
            "transfer_id": [f"T{i:05d}" for i in range(len(t_src))],
            "src_account": [accounts[a] for a in t_src],
            "dst_account": [accounts[b] for b in t_dst],
            "amount": [float(rng.integers(1, 50)) * 100 for _ in t_src],
            "ts": ["2025-01-01T00:00:00"] * len(t_src),
        },
    )
    group_frame = pl.DataFrame(
        {"group_id": group_of.astype(np.int64), "customer_id": ids[:n_group]}
    )
    circle_frame = pl.DataFrame(
        {
            "circle_id": np.repeat(np.arange(len(circles)), [len(c) for c in circles]),
            "customer_id": [ids[i] for c in circles for i in c],
        },
        schema={"circle_id": pl.Int64, "customer_id": pl.String},
    )
    ring_frame = pl.DataFrame(
        {
            "ring_id": np.repeat(np.arange(len(rings)), [len(r) for r in rings]),
            "customer_id": [ids[i] for r in rings for i in r],
        },
        schema={"ring_id": pl.Int64, "customer_id": pl.String},
    )
    return Planted(tables, group_frame, circle_frame, ring_frame)


def write_input(tables: dict[str, pl.DataFrame], directory: Path) -> Path:
    """Write non-empty tables as Parquet files of an input directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if frame.height or name == "customers":
            frame.write_parquet(directory / f"{name}.parquet")
    return directory


def as_sets(frame: pl.DataFrame, group: str) -> set[frozenset[str]]:
    """The groups of ``frame`` as a set of frozensets of customer_id."""
    return {
        frozenset(members)
        for members in frame.group_by(group).agg("customer_id").get_column("customer_id")
    }
