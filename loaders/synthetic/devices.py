"""Device links: own devices, pair-shared devices, device-sharing rings and hub terminals."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from loaders.synthetic.truth import TRUTH_SCHEMAS
from loaders.synthetic.world import (
    DAY,
    _Chunk,
    _ids,
    _pairs,
    _timestamps,
)


def _devices(c: _Chunk, roles: dict[str, Any]) -> dict[str, np.ndarray]:
    """Device links: own devices, pair-shared devices, ring devices and hub terminals."""
    rng, k, w, r = c.rng, c.k, c.world, c.rates
    local = np.arange(k)
    own_count = 1 + (rng.random(k) < r.personal_device_extra)
    link_customer = [np.repeat(local, own_count)]
    link_device = [c.number("device", int(own_count.sum()))]

    pair_a: list[np.ndarray] = []
    pair_b: list[np.ndarray] = []
    for members in roles["groups"]:
        a, b = _pairs(rng, members, max(1, len(members) // 3))
        pair_a.append(a)
        pair_b.append(b)
    pool = roles["background"]
    a, b = _pairs(rng, pool, round(r.shared_pair_share * len(pool) / 2))
    pair_a.append(a)
    pair_b.append(b)
    pa, pb = np.concatenate(pair_a), np.concatenate(pair_b)
    pair_devices = c.number("device", len(pa))
    link_customer += [pa, pb]
    link_device += [pair_devices, pair_devices]

    for members in roles["rings"]:
        n_dev = int(rng.integers(1, min(3, len(members) // 3) + 1))
        devices = c.number("device", n_dev)
        blocks = np.array_split(members, n_dev)
        for j, block in enumerate(blocks):
            bridge = blocks[j + 1][:1] if j + 1 < n_dev else block[:0]
            users = np.concatenate([block, bridge])
            link_customer.append(users)
            link_device.append(np.full(len(users), devices[j]))

    personal_customer = np.concatenate(link_customer)
    personal_device = np.concatenate(link_device)

    hub_customer: list[np.ndarray] = []
    hub_device: list[np.ndarray] = []
    n_hubs = max(1, round(k / r.customers_per_hub))
    for _ in range(n_hubs):
        size = min(len(pool), int(rng.integers(r.hub_size[0], r.hub_size[1] + 1)))
        if size < 3:
            break
        users = np.sort(rng.choice(pool, size, replace=False))
        hub_customer.append(users)
        hub_device.append(np.full(size, c.number("device", 1)[0]))
    hubs_c = np.concatenate(hub_customer) if hub_customer else np.empty(0, np.int64)
    hubs_d = np.concatenate(hub_device) if hub_device else np.empty(0, np.int64)

    customers = np.concatenate([personal_customer, hubs_c])
    devices = np.concatenate([personal_device, hubs_d])
    n = len(customers)
    first_seen = w.start_s - rng.integers(0, 700 * DAY, n)
    last_seen = rng.integers(w.start_s, w.end_s, n)  # every device is seen in the window
    order = np.lexsort((devices, customers))
    c.tables["device_links"] = pl.DataFrame(
        {
            "customer_id": c.customer_ids(customers[order]),
            "device_id": _ids("V", devices[order], w.width),
            "first_seen": _timestamps(first_seen[order]),
            "last_seen": _timestamps(last_seen[order]),
        }
    )
    hub_numbers = np.unique(hubs_d)
    c.truth["hub_devices"] = pl.DataFrame(
        {
            "device_id": _ids("V", hub_numbers, w.width),
            "customers": pl.Series(np.bincount(np.searchsorted(hub_numbers, hubs_d))).cast(
                pl.Int64
            ),
        },
        schema=TRUTH_SCHEMAS["hub_devices"],
    )
    # Devices a customer may draw down from (not the hub terminals), grouped by customer.
    by_customer = np.lexsort((personal_device, personal_customer))
    return {
        "device_of": personal_device[by_customer],
        "device_start": np.cumsum(np.bincount(personal_customer, minlength=k))
        - np.bincount(personal_customer, minlength=k),
        "device_count": np.bincount(personal_customer, minlength=k),
    }
